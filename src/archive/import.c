/*
 * The import behind berth-import: one pass over a TAR stream that files
 * every regular entry into a store upload (hashed as it streams) or, for
 * the layout's JSON documents, into memory; then a plan built only from
 * verified bytes (which manifests to put in which repository, which blobs
 * each needs); then the commit: uploads finished, blobs linked, manifests
 * put children first, tags last. Until the commit starts, every failure
 * cancels every upload, so the store is left as it was.
 *
 * Invariants: a file's digest is the SHA-256 of the bytes that went into
 * its upload; a blobs/sha256/<hex> entry is accepted only if that digest
 * equals <hex>, a legacy <hex>.json config likewise; nothing from the
 * archive is parsed that is not bounded by IMPORT_JSON_MAX_BYTES and
 * IMPORT_JSON_DEPTH_MAX.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "berth/import.h"

#define IO_STEP_BYTES           ((size_t)1 << 20)
#define BLOB_PREFIX             "blobs/sha256/"
#define BLOB_PREFIX_LEN         (sizeof(BLOB_PREFIX) - 1)
#define MT_DOCKER_CONFIG        "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER         "application/vnd.docker.image.rootfs.diff.tar"
#define ANN_CONTAINERD_NAME     "io.containerd.image.name"
#define ANN_REF_NAME            "org.opencontainers.image.ref.name"

/* A regular file of the archive. */
struct file {
	char *path;                     /* canonical (tar_path_clean) */
	struct oci_digest digest;
	uint64_t size;
	struct store_upload *up;        /* NULL: none (duplicate) or ended */
	bool finished;                  /* the blob is in the store */
	char *data;                     /* kept in memory, or NULL */
	size_t len;
};

/* A manifest to put, in put order (children first). */
struct mput {
	char repo[OCI_NAME_MAX_BYTES + 1];
	struct oci_digest digest;
	const char *data;               /* borrowed from a file or owned */
	size_t len;
	char *owned;
	struct oci_manifest m;
};

/* A blob a manifest needs in a repository. */
struct need {
	char repo[OCI_NAME_MAX_BYTES + 1];
	struct oci_digest digest;
	uint64_t size;
};

/* A name to report (and, with a tag, to set) once everything is in. */
struct image {
	struct import_name name;
	struct oci_digest digest;
};

struct imp {
	struct store *st;
	const struct import_options *o;
	char *why;
	size_t whysize;

	struct file *files;
	size_t nfiles, capfiles;
	size_t kept;                    /* bytes held in memory */
	/* the layout's documents */
	char *index, *manifest, *layout;
	size_t index_len, manifest_len, layout_len;

	struct mput *puts;
	size_t nputs, capputs;
	struct need *needs;
	size_t nneeds, capneeds;
	struct image *images;
	size_t nimages, capimages;
	/* symbolic links seen where no file is expected: never followed */
	char **links;
	size_t nlinks, caplinks;
};

static int
fail(struct imp *im, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct imp *im, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(im->why, im->whysize, fmt, ap);
	va_end(ap);
	return rc;
}

/* Grows *arr (elements of size sz) to hold one more; 0 or -1. */
static int
grow(void **arr, size_t *cap, size_t n, size_t sz)
{
	size_t nc;
	void *p;

	if (n < *cap)
		return 0;
	nc = *cap ? *cap * 2 : 16;
	if (nc > SIZE_MAX / sz)
		return -1;
	p = realloc(*arr, nc * sz);
	if (p == NULL)
		return -1;
	*arr = p;
	*cap = nc;
	return 0;
}

/* ---- names -------------------------------------------------------------- */

int
import_name_map(const char *s, size_t len, const char *prefix,
    struct import_name *out)
{
	const char *at, *slash, *colon = NULL, *p = s;
	size_t n = len, plen = prefix != NULL ? strlen(prefix) : 0, rl, tl = 0;

	memset(out, 0, sizeof(*out));
	at = memchr(s, '@', len);
	if (at != NULL)
		n = (size_t)(at - s);
	/* A tag is after the last ':' that follows the last '/'. */
	for (size_t i = n; i > 0; i--) {
		if (s[i - 1] == '/')
			break;
		if (s[i - 1] == ':') {
			colon = s + i - 1;
			break;
		}
	}
	if (colon != NULL) {
		tl = n - (size_t)(colon - s) - 1;
		n = (size_t)(colon - s);
	}
	slash = memchr(p, '/', n);
	if (slash != NULL) {
		size_t hl = (size_t)(slash - p);

		if (memchr(p, '.', hl) != NULL || memchr(p, ':', hl) != NULL ||
		    (hl == 9 && memcmp(p, "localhost", 9) == 0)) {
			n -= hl + 1;
			p = slash + 1;
		}
	}
	rl = plen > 0 ? plen + 1 + n : n;
	if (rl > OCI_NAME_MAX_BYTES || tl > OCI_TAG_MAX_BYTES)
		return IMPORT_E_ARCHIVE;
	if (plen > 0) {
		memcpy(out->repo, prefix, plen);
		out->repo[plen] = '/';
		memcpy(out->repo + plen + 1, p, n);
	} else {
		memcpy(out->repo, p, n);
	}
	out->repo[rl] = '\0';
	if (colon != NULL)
		memcpy(out->tag, colon + 1, tl);
	out->tag[tl] = '\0';
	if (!oci_name_valid(out->repo, rl) ||
	    (colon != NULL && !oci_tag_valid(out->tag, tl))) {
		memset(out, 0, sizeof(*out));
		return IMPORT_E_ARCHIVE;
	}
	return 0;
}

/* ---- JSON ---------------------------------------------------------------- */

/* Nesting depth of a JSON text, strings skipped; true if within max. */
static bool
json_depth_ok(const char *p, size_t len, unsigned max)
{
	unsigned depth = 0;
	bool str = false, esc = false;

	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				str = false;
		} else if (c == '"') {
			str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				return false;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
	}
	return true;
}

static json_t *
json_doc(struct imp *im, const char *what, const char *p, size_t len, int *rc)
{
	json_error_t err;
	json_t *j;

	if (!json_depth_ok(p, len, IMPORT_JSON_DEPTH_MAX)) {
		*rc = fail(im, IMPORT_E_ARCHIVE, "%s: JSON nested deeper than %d",
		    what, IMPORT_JSON_DEPTH_MAX);
		return NULL;
	}
	j = json_loadb(p, len, JSON_REJECT_DUPLICATES, &err);
	if (j == NULL)
		*rc = fail(im, IMPORT_E_ARCHIVE, "%s: bad JSON: %s", what,
		    err.text);
	return j;
}

/* ---- files ---------------------------------------------------------------- */

static struct file *
file_by_path(struct imp *im, const char *path)
{
	for (size_t i = 0; i < im->nfiles; i++)
		if (strcmp(im->files[i].path, path) == 0)
			return &im->files[i];
	return NULL;
}

/* Refuses a path the archive's documents name that is a symbolic link. */
static int
missing(struct imp *im, const char *what, const char *kind, const char *path)
{
	for (size_t i = 0; i < im->nlinks; i++)
		if (strcmp(im->links[i], path) == 0)
			return fail(im, IMPORT_E_ARCHIVE, "entry %s: refused: a "
			    "symbolic link where a file is expected (%s %s)",
			    path, what, kind);
	return fail(im, IMPORT_E_ARCHIVE, "%s: %s %.300s is not in the archive",
	    what, kind, path);
}

/* The file that holds (or will hold) the blob d: one with an upload. */
static struct file *
file_by_digest(struct imp *im, const struct oci_digest *d)
{
	for (size_t i = 0; i < im->nfiles; i++)
		if ((im->files[i].up != NULL || im->files[i].finished) &&
		    oci_digest_equal(&im->files[i].digest, d))
			return &im->files[i];
	return NULL;
}

/* Any file whose bytes hash to d and are kept in memory. */
static struct file *
file_kept(struct imp *im, const struct oci_digest *d)
{
	for (size_t i = 0; i < im->nfiles; i++)
		if (im->files[i].data != NULL &&
		    oci_digest_equal(&im->files[i].digest, d))
			return &im->files[i];
	return NULL;
}

static bool
is_hex64(const char *s, size_t len)
{
	if (len != OCI_DIGEST_SHA256_HEX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The digest a name promises: blobs/sha256/<hex> or a legacy <hex>.json. */
static bool
name_digest(const char *path, struct oci_digest *d)
{
	char buf[OCI_DIGEST_STR_BYTES];
	size_t len = strlen(path);

	if (len == BLOB_PREFIX_LEN + OCI_DIGEST_SHA256_HEX &&
	    memcmp(path, BLOB_PREFIX, BLOB_PREFIX_LEN) == 0 &&
	    is_hex64(path + BLOB_PREFIX_LEN, OCI_DIGEST_SHA256_HEX))
		path += BLOB_PREFIX_LEN;
	else if (!(len == OCI_DIGEST_SHA256_HEX + 5 && is_hex64(path,
	    OCI_DIGEST_SHA256_HEX) && strcmp(path + OCI_DIGEST_SHA256_HEX,
	    ".json") == 0))
		return false;
	snprintf(buf, sizeof(buf), "sha256:%.64s", path);
	return oci_digest_parse(buf, strlen(buf), d) == 0;
}

/* Reads a whole small entry into memory (*out malloc'd). */
static int
read_small(struct imp *im, struct tar_reader *r, const struct tar_header *h,
    char **out, size_t *outlen)
{
	size_t got = 0, n;
	char *buf;
	int rc;

	if (h->size > IMPORT_JSON_MAX_BYTES)
		return fail(im, IMPORT_E_ARCHIVE, "entry %s: %llu bytes, more "
		    "than the %zu a JSON document may have", h->name,
		    (unsigned long long)h->size, IMPORT_JSON_MAX_BYTES);
	if (im->kept + h->size > IMPORT_MEMORY_MAX_BYTES)
		return fail(im, IMPORT_E_ARCHIVE, "entry %s: the archive's JSON "
		    "documents exceed %zu bytes", h->name,
		    IMPORT_MEMORY_MAX_BYTES);
	buf = malloc((size_t)h->size + 1);
	if (buf == NULL)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	while (got < h->size) {
		rc = tar_reader_read(r, buf + got, (size_t)h->size - got, &n);
		if (rc != 0) {
			free(buf);
			return fail(im, IMPORT_E_ARCHIVE, "entry %s: %s", h->name,
			    tar_strerror(rc));
		}
		got += n;
	}
	im->kept += got;
	*out = buf;
	*outlen = got;
	return 0;
}

static int
store_fail(struct imp *im, int rc, const char *what)
{
	return fail(im, IMPORT_E_STORE, "%s: %s", what, store_strerror(rc));
}

/* Streams an entry into a new upload, hashing it; keeps small JSON. */
static int
read_blob(struct imp *im, struct tar_reader *r, const struct tar_header *h,
    struct file *f, uint8_t *io)
{
	EVP_MD_CTX *md = NULL;
	uint8_t hash[OCI_HASH_SHA256_BYTES];
	struct oci_digest want;
	unsigned hlen = 0;
	bool keep, first = true;
	size_t n;
	int rc;

	rc = store_upload_new(im->st, IMPORT_STAGING_REPO,
	    strlen(IMPORT_STAGING_REPO), &f->up);
	if (rc != 0)
		return store_fail(im, rc, "starting an upload");
	keep = h->size <= IMPORT_JSON_MAX_BYTES &&
	    im->kept + h->size <= IMPORT_MEMORY_MAX_BYTES;
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		rc = fail(im, IMPORT_E_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		rc = tar_reader_read(r, io, IO_STEP_BYTES, &n);
		if (rc != 0) {
			rc = fail(im, IMPORT_E_ARCHIVE, "entry %s: %s", h->name,
			    tar_strerror(rc));
			goto out;
		}
		if (n == 0)
			break;
		if (first) {
			/* Only JSON documents can be manifests or configs. */
			keep = keep && io[0] == '{';
			if (keep) {
				f->data = malloc((size_t)h->size);
				if (f->data == NULL) {
					rc = fail(im, IMPORT_E_NOMEM,
					    "out of memory");
					goto out;
				}
			}
			first = false;
		}
		if (keep) {
			memcpy(f->data + f->len, io, n);
			f->len += n;
		}
		if (EVP_DigestUpdate(md, io, n) != 1) {
			rc = fail(im, IMPORT_E_NOMEM, "hashing failed");
			goto out;
		}
		rc = store_upload_write(f->up, io, n);
		if (rc == 0 && store_upload_pending(f->up) >
		    IMPORT_PENDING_MAX_BYTES)
			rc = store_upload_flush(f->up);
		if (rc != 0) {
			rc = store_fail(im, rc, h->name);
			goto out;
		}
		f->size += n;
	}
	if (keep)
		im->kept += f->len;
	if (EVP_DigestFinal_ex(md, hash, &hlen) != 1 || hlen != sizeof(hash)) {
		rc = fail(im, IMPORT_E_NOMEM, "hashing failed");
		goto out;
	}
	f->digest.alg = OCI_DIGEST_SHA256;
	memcpy(f->digest.hash, hash, sizeof(hash));
	if (name_digest(f->path, &want) && !oci_digest_equal(&want,
	    &f->digest)) {
		char ds[OCI_DIGEST_STR_BYTES];

		oci_digest_format(&f->digest, ds);
		rc = fail(im, IMPORT_E_ARCHIVE, "entry %s: content does not "
		    "match its name (it hashes to %s)", h->name, ds);
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

static void
upload_drop(struct file *f)
{
	if (f->up != NULL) {
		(void)store_upload_cancel(f->up);
		store_upload_free(f->up);
		f->up = NULL;
	}
}

/* A later copy of a blob already uploaded is not needed twice. */
static void
dedup(struct imp *im, struct file *f)
{
	for (size_t i = 0; i + 1 < im->nfiles; i++) {
		struct file *o = &im->files[i];

		if (o->up != NULL && o != f &&
		    oci_digest_equal(&o->digest, &f->digest)) {
			upload_drop(f);
			return;
		}
	}
}

static const char *
type_name(char t)
{
	switch (t) {
	case TAR_TYPE_SYMLINK:
		return "a symbolic link";
	case TAR_TYPE_HARDLINK:
		return "a hard link";
	case '3':
		return "a character device";
	case '4':
		return "a block device";
	case '6':
		return "a FIFO";
	default:
		return "not a regular file or directory";
	}
}

static int
read_archive(struct imp *im, tar_source_fn *src, void *src_arg)
{
	struct tar_reader r;
	struct tar_header *h = NULL;
	char *clean = NULL, **doc;
	size_t cl, *doclen;
	uint8_t *io = NULL;
	int rc;

	tar_reader_init(&r, src, src_arg);
	h = malloc(sizeof(*h));
	clean = malloc(TAR_PATH_MAX_BYTES + 1);
	io = malloc(IO_STEP_BYTES);
	if (h == NULL || clean == NULL || io == NULL) {
		rc = fail(im, IMPORT_E_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		rc = tar_reader_next(&r, h);
		if (rc == 1)
			break;
		if (rc == TAR_E_READ) {
			rc = fail(im, IMPORT_E_READ, "reading the archive failed");
			goto out;
		}
		if (rc != 0) {
			if (h->namelen > 0)
				rc = fail(im, IMPORT_E_ARCHIVE, "entry %s: %s",
				    h->name, tar_strerror(rc));
			else
				rc = fail(im, IMPORT_E_ARCHIVE, "archive offset "
				    "%llu: %s", (unsigned long long)h->offset,
				    tar_strerror(rc));
			goto out;
		}
		if (im->o->progress != NULL)
			im->o->progress(im->o->progress_arg, r.offset, 0);
		if (tar_path_clean(h->name, h->namelen, clean, &cl) != 0) {
			rc = fail(im, IMPORT_E_ARCHIVE, "entry %s: refused: an "
			    "absolute path or a '..' component", h->name);
			goto out;
		}
		if (h->type == TAR_TYPE_DIR)
			continue;
		/*
		 * containers/image (skopeo, podman) adds <id>/layer.tar
		 * symlinks to the <hex>.tar files its manifest.json names, for
		 * old loaders. A link is never followed: it is recorded, and
		 * refused if the archive's documents name it or it sits where
		 * a blob or document must be.
		 */
		if (h->type == TAR_TYPE_SYMLINK && strncmp(clean, "blobs/", 6) != 0 &&
		    strcmp(clean, "index.json") != 0 &&
		    strcmp(clean, "manifest.json") != 0 &&
		    strcmp(clean, "oci-layout") != 0 &&
		    im->nlinks < IMPORT_FILES_MAX) {
			if (grow((void **)&im->links, &im->caplinks, im->nlinks,
			    sizeof(*im->links)) != 0 ||
			    (im->links[im->nlinks] = strdup(clean)) == NULL) {
				rc = fail(im, IMPORT_E_NOMEM, "out of memory");
				goto out;
			}
			im->nlinks++;
			continue;
		}
		if (h->type != TAR_TYPE_FILE) {
			rc = fail(im, IMPORT_E_ARCHIVE, "entry %s: refused: %s",
			    h->name, type_name(h->type));
			goto out;
		}
		if (cl == 0) {
			rc = fail(im, IMPORT_E_ARCHIVE, "entry %s: refused: a "
			    "file with an empty name", h->name);
			goto out;
		}
		doc = NULL;
		doclen = NULL;
		if (strcmp(clean, "index.json") == 0) {
			doc = &im->index;
			doclen = &im->index_len;
		} else if (strcmp(clean, "manifest.json") == 0) {
			doc = &im->manifest;
			doclen = &im->manifest_len;
		} else if (strcmp(clean, "oci-layout") == 0) {
			doc = &im->layout;
			doclen = &im->layout_len;
		}
		if (doc != NULL && *doc != NULL) {
			rc = fail(im, IMPORT_E_ARCHIVE, "entry %s: appears twice",
			    h->name);
			goto out;
		}
		if (doc != NULL) {
			rc = read_small(im, &r, h, doc, doclen);
			if (rc != 0)
				goto out;
			continue;
		}
		/*
		 * The legacy layout's per-layer v1 metadata (<id>/json,
		 * <id>/VERSION) and its repositories file say nothing the
		 * configs and manifest.json do not.
		 */
		if (strcmp(clean, "repositories") == 0 || (strchr(clean, '/') &&
		    (strcmp(strrchr(clean, '/'), "/json") == 0 ||
		    strcmp(strrchr(clean, '/'), "/VERSION") == 0)))
			continue;
		if (strncmp(clean, "blobs/", 6) == 0 && !name_digest(clean,
		    &(struct oci_digest){ 0 })) {
			rc = fail(im, IMPORT_E_ARCHIVE, "entry %s: refused: blobs "
			    "must be named blobs/sha256/<64 lowercase hex>",
			    h->name);
			goto out;
		}
		if (file_by_path(im, clean) != NULL) {
			rc = fail(im, IMPORT_E_ARCHIVE, "entry %s: appears twice",
			    h->name);
			goto out;
		}
		if (im->nfiles >= IMPORT_FILES_MAX) {
			rc = fail(im, IMPORT_E_ARCHIVE, "entry %s: more than %d "
			    "files", h->name, IMPORT_FILES_MAX);
			goto out;
		}
		if (grow((void **)&im->files, &im->capfiles, im->nfiles,
		    sizeof(*im->files)) != 0) {
			rc = fail(im, IMPORT_E_NOMEM, "out of memory");
			goto out;
		}
		memset(&im->files[im->nfiles], 0, sizeof(*im->files));
		im->files[im->nfiles].path = strdup(clean);
		if (im->files[im->nfiles].path == NULL) {
			rc = fail(im, IMPORT_E_NOMEM, "out of memory");
			goto out;
		}
		im->nfiles++;
		rc = read_blob(im, &r, h, &im->files[im->nfiles - 1], io);
		if (rc != 0)
			goto out;
		dedup(im, &im->files[im->nfiles - 1]);
	}
	if (im->o->progress != NULL)
		im->o->progress(im->o->progress_arg, r.offset, r.offset);
	rc = 0;
out:
	tar_reader_free(&r);
	free(io);
	free(clean);
	free(h);
	return rc;
}

/* ---- the plan ------------------------------------------------------------- */

static int
add_need(struct imp *im, const char *repo, const struct oci_digest *d,
    uint64_t size)
{
	struct need *n;

	for (size_t i = 0; i < im->nneeds; i++)
		if (strcmp(im->needs[i].repo, repo) == 0 &&
		    oci_digest_equal(&im->needs[i].digest, d))
			return 0;
	if (grow((void **)&im->needs, &im->capneeds, im->nneeds,
	    sizeof(*im->needs)) != 0)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	n = &im->needs[im->nneeds++];
	snprintf(n->repo, sizeof(n->repo), "%s", repo);
	n->digest = *d;
	n->size = size;
	return 0;
}

static int
add_image(struct imp *im, const struct import_name *name,
    const struct oci_digest *d)
{
	if (im->nimages >= IMPORT_IMAGES_MAX)
		return fail(im, IMPORT_E_ARCHIVE, "more than %d image names",
		    IMPORT_IMAGES_MAX);
	if (grow((void **)&im->images, &im->capimages, im->nimages,
	    sizeof(*im->images)) != 0)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	im->images[im->nimages].name = *name;
	im->images[im->nimages].digest = *d;
	im->nimages++;
	return 0;
}

/* Every config and layer a manifest names, present with the right size. */
static int
plan_refs(struct imp *im, const char *repo, const struct mput *mp,
    unsigned depth);

/*
 * Plans manifest d (bytes data/len, or found in the archive when data is
 * NULL) into repo, its children first. mt: the descriptor's media type.
 */
static int
plan_manifest(struct imp *im, const char *repo, const struct oci_digest *d,
    const char *mt, const char *data, size_t len, char *owned,
    unsigned depth)
{
	char ds[OCI_DIGEST_STR_BYTES], why[256];
	struct mput *mp;
	struct file *f;
	int rc;

	oci_digest_format(d, ds);
	for (size_t i = 0; i < im->nputs; i++)
		if (strcmp(im->puts[i].repo, repo) == 0 &&
		    oci_digest_equal(&im->puts[i].digest, d)) {
			free(owned);
			return 0;
		}
	if (depth > IMPORT_NESTING_MAX) {
		free(owned);
		return fail(im, IMPORT_E_ARCHIVE, "manifest %s: indexes nested "
		    "deeper than %d", ds, IMPORT_NESTING_MAX);
	}
	if (data == NULL) {
		f = file_kept(im, d);
		if (f == NULL) {
			if (store_manifest_exists(im->st, repo, strlen(repo),
			    d) == 0)
				return 0;
			return fail(im, IMPORT_E_ARCHIVE, "manifest %s: not in "
			    "the archive as a JSON document of at most %zu "
			    "bytes, nor in the store", ds,
			    IMPORT_JSON_MAX_BYTES);
		}
		data = f->data;
		len = f->len;
	}
	if (!json_depth_ok(data, len, IMPORT_JSON_DEPTH_MAX)) {
		free(owned);
		return fail(im, IMPORT_E_ARCHIVE, "manifest %s: JSON nested "
		    "deeper than %d", ds, IMPORT_JSON_DEPTH_MAX);
	}
	if (grow((void **)&im->puts, &im->capputs, im->nputs,
	    sizeof(*im->puts)) != 0) {
		free(owned);
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	}
	mp = &im->puts[im->nputs];
	memset(mp, 0, sizeof(*mp));
	rc = oci_manifest_parse(data, len, mt, mt != NULL ? strlen(mt) : 0,
	    &mp->m, why, sizeof(why));
	if (rc != 0) {
		free(owned);
		return fail(im, IMPORT_E_ARCHIVE, "manifest %s: %s", ds,
		    rc == OCI_E_UNSUPPORTED ? "unsupported media type or "
		    "schema" : why);
	}
	snprintf(mp->repo, sizeof(mp->repo), "%s", repo);
	mp->digest = *d;
	mp->data = data;
	mp->len = len;
	mp->owned = owned;
	im->nputs++;
	/* Children go before this manifest: move it to the end afterwards. */
	{
		size_t at = im->nputs - 1;
		struct mput self;

		rc = plan_refs(im, repo, &im->puts[at], depth);
		if (rc != 0)
			return rc;
		if (at != im->nputs - 1) {
			self = im->puts[at];
			memmove(&im->puts[at], &im->puts[at + 1],
			    (im->nputs - at - 1) * sizeof(*im->puts));
			im->puts[im->nputs - 1] = self;
		}
	}
	return 0;
}

static int
plan_refs(struct imp *im, const char *repo, const struct mput *mp,
    unsigned depth)
{
	struct oci_manifest m = mp->m;  /* mp may move as puts grows */
	struct oci_digest md = mp->digest;
	char ds[OCI_DIGEST_STR_BYTES], ms[OCI_DIGEST_STR_BYTES];
	int rc;

	oci_digest_format(&md, ms);
	for (size_t i = 0; i < m.nrefs; i++) {
		const struct oci_ref *ref = &m.refs[i];
		struct store_blob_info info;
		struct file *f;

		if (ref->kind == OCI_REF_SUBJECT || ref->external)
			continue;
		oci_digest_format(&ref->digest, ds);
		if (ref->kind == OCI_REF_MANIFEST) {
			rc = plan_manifest(im, repo, &ref->digest, NULL, NULL, 0,
			    NULL, depth + 1);
			if (rc != 0)
				return rc;
			continue;
		}
		f = file_by_digest(im, &ref->digest);
		if (f != NULL) {
			if (f->size != ref->size)
				return fail(im, IMPORT_E_ARCHIVE, "blob %s of "
				    "manifest %s: %llu bytes, the manifest says "
				    "%llu", ds, ms, (unsigned long long)f->size,
				    (unsigned long long)ref->size);
		} else {
			rc = store_blob_stat(im->st, NULL, 0, &ref->digest,
			    &info);
			if (rc == STORE_E_NOTFOUND || (rc == 0 &&
			    info.size != ref->size))
				return fail(im, IMPORT_E_ARCHIVE, "blob %s of "
				    "manifest %s: not in the archive nor in the "
				    "store", ds, ms);
			if (rc != 0)
				return store_fail(im, rc, ds);
		}
		rc = add_need(im, repo, &ref->digest, ref->size);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Maps an archive name; names that are only a tag go to o->repo. */
static int
map_name(struct imp *im, const char *s, bool tag_only_ok,
    struct import_name *out)
{
	size_t len = strlen(s);

	if (tag_only_ok && memchr(s, '/', len) == NULL &&
	    memchr(s, ':', len) == NULL && memchr(s, '@', len) == NULL &&
	    oci_tag_valid(s, len)) {
		if (im->o->repo == NULL)
			return fail(im, IMPORT_E_ARCHIVE, "image named only by "
			    "the tag \"%s\": give --repo REPO", s);
		memset(out, 0, sizeof(*out));
		snprintf(out->repo, sizeof(out->repo), "%s", im->o->repo);
		snprintf(out->tag, sizeof(out->tag), "%s", s);
		return 0;
	}
	if (import_name_map(s, len, im->o->repo_prefix, out) != 0)
		return fail(im, IMPORT_E_ARCHIVE, "image name \"%.300s\": not a "
		    "valid repository name and tag", s);
	return 0;
}

static int
unnamed(struct imp *im, const char *what, struct import_name *out)
{
	if (im->o->repo == NULL)
		return fail(im, IMPORT_E_ARCHIVE, "%s has no image name: give "
		    "--repo REPO", what);
	memset(out, 0, sizeof(*out));
	snprintf(out->repo, sizeof(out->repo), "%s", im->o->repo);
	return 0;
}

/* An OCI image layout: index.json's descriptors and their annotations. */
static int
plan_oci(struct imp *im)
{
	json_t *idx = NULL, *mans, *d;
	struct import_name name;
	struct oci_digest dg;
	char what[96];
	size_t i;
	int rc = 0;

	if (im->layout != NULL) {
		json_t *l = json_doc(im, "oci-layout", im->layout,
		    im->layout_len, &rc);
		json_t *v = l != NULL ? json_object_get(l, "imageLayoutVersion") :
		    NULL;

		if (l == NULL)
			return rc;
		if (!json_is_string(v) || strncmp(json_string_value(v), "1.",
		    2) != 0)
			rc = fail(im, IMPORT_E_ARCHIVE, "oci-layout: unsupported "
			    "imageLayoutVersion");
		json_decref(l);
		if (rc != 0)
			return rc;
	}
	idx = json_doc(im, "index.json", im->index, im->index_len, &rc);
	if (idx == NULL)
		return rc;
	mans = json_object_get(idx, "manifests");
	if (!json_is_array(mans) || json_array_size(mans) > IMPORT_IMAGES_MAX) {
		rc = fail(im, IMPORT_E_ARCHIVE, "index.json: no manifests array "
		    "of at most %d descriptors", IMPORT_IMAGES_MAX);
		goto out;
	}
	json_array_foreach(mans, i, d) {
		json_t *jd = json_object_get(d, "digest");
		json_t *jmt = json_object_get(d, "mediaType");
		json_t *js = json_object_get(d, "size");
		json_t *ann = json_object_get(d, "annotations");
		json_t *cn = json_object_get(ann, ANN_CONTAINERD_NAME);
		json_t *rn = json_object_get(ann, ANN_REF_NAME);
		const char *mt = json_is_string(jmt) ? json_string_value(jmt) :
		    NULL;
		struct file *f;

		snprintf(what, sizeof(what), "index.json descriptor %zu", i);
		if (!json_is_string(jd) || oci_digest_parse(json_string_value(jd),
		    json_string_length(jd), &dg) != 0 || !json_is_integer(js) ||
		    json_integer_value(js) < 0) {
			rc = fail(im, IMPORT_E_ARCHIVE, "%s: bad digest or size",
			    what);
			goto out;
		}
		f = file_kept(im, &dg);
		if (f != NULL && f->len != (uint64_t)json_integer_value(js)) {
			rc = fail(im, IMPORT_E_ARCHIVE, "%s: size %lld, the blob "
			    "has %zu bytes", what,
			    (long long)json_integer_value(js), f->len);
			goto out;
		}
		if (json_is_string(cn))
			rc = map_name(im, json_string_value(cn), false, &name);
		else if (json_is_string(rn))
			rc = map_name(im, json_string_value(rn), true, &name);
		else
			rc = unnamed(im, what, &name);
		if (rc == 0)
			rc = plan_manifest(im, name.repo, &dg, mt, NULL, 0, NULL,
			    0);
		if (rc == 0)
			rc = add_image(im, &name, &dg);
		if (rc != 0)
			goto out;
	}
out:
	json_decref(idx);
	return rc;
}

/*
 * The classic docker save layout: per manifest.json item a Docker schema
 * 2 manifest is made whose config is the config file's bytes and whose
 * layers are the uncompressed layer tars, each of which must hash to the
 * config's rootfs.diff_ids entry (image-spec config.md "rootfs").
 */
static int
plan_legacy_item(struct imp *im, json_t *item, size_t i)
{
	json_t *jc = json_object_get(item, "Config");
	json_t *jl = json_object_get(item, "Layers");
	json_t *jt = json_object_get(item, "RepoTags");
	json_t *cfg = NULL, *diffs, *v;
	char what[64], *path = NULL, *man = NULL, ds[OCI_DIGEST_STR_BYTES];
	struct file *cf, *lf;
	struct oci_digest md, dd;
	struct import_name name;
	size_t n, cap, len = 0, k, pl;
	int rc = 0, w;

	snprintf(what, sizeof(what), "manifest.json item %zu", i);
	if (!json_is_string(jc) || !json_is_array(jl) ||
	    (jt != NULL && !json_is_null(jt) && !json_is_array(jt)))
		return fail(im, IMPORT_E_ARCHIVE, "%s: needs Config, Layers and "
		    "RepoTags", what);
	path = malloc(TAR_PATH_MAX_BYTES + 1);
	if (path == NULL)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	if (json_string_length(jc) > TAR_PATH_MAX_BYTES ||
	    tar_path_clean(json_string_value(jc), json_string_length(jc), path,
	    &pl) != 0) {
		rc = fail(im, IMPORT_E_ARCHIVE, "%s: config %.300s: a path that "
		    "leaves the archive", what, json_string_value(jc));
		goto out;
	}
	if ((cf = file_by_path(im, path)) == NULL) {
		rc = missing(im, what, "config", path);
		goto out;
	}
	if (cf->data == NULL) {
		rc = fail(im, IMPORT_E_ARCHIVE, "%s: config %s is not a JSON "
		    "document of at most %zu bytes", what, path,
		    IMPORT_JSON_MAX_BYTES);
		goto out;
	}
	cfg = json_doc(im, path, cf->data, cf->len, &rc);
	if (cfg == NULL)
		goto out;
	diffs = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
	n = json_array_size(jl);
	if (!json_is_array(diffs) || json_array_size(diffs) != n ||
	    n > OCI_MANIFEST_REFS_MAX - 1) {
		rc = fail(im, IMPORT_E_ARCHIVE, "%s: config %s lists %zu diff_ids "
		    "for %zu layers", what, path, json_array_size(diffs), n);
		goto out;
	}
	cap = 512 + (n + 1) * 256;
	man = malloc(cap);
	if (man == NULL) {
		rc = fail(im, IMPORT_E_NOMEM, "out of memory");
		goto out;
	}
	oci_digest_format(&cf->digest, ds);
	w = snprintf(man, cap, "{\"schemaVersion\":2,\"mediaType\":\"%s\","
	    "\"config\":{\"mediaType\":\"%s\",\"size\":%llu,\"digest\":\"%s\"},"
	    "\"layers\":[", OCI_MT_DOCKER_MANIFEST, MT_DOCKER_CONFIG,
	    (unsigned long long)cf->size, ds);
	len = (size_t)w;
	json_array_foreach(jl, k, v) {
		json_t *jd = json_array_get(diffs, k);

		if (!json_is_string(v) || json_string_length(v) >
		    TAR_PATH_MAX_BYTES || tar_path_clean(json_string_value(v),
		    json_string_length(v), path, &pl) != 0) {
			rc = fail(im, IMPORT_E_ARCHIVE, "%s: layer %zu: not a "
			    "path inside the archive", what, k);
			goto out;
		}
		if ((lf = file_by_path(im, path)) == NULL) {
			rc = missing(im, what, "layer", path);
			goto out;
		}
		if (!json_is_string(jd) || oci_digest_parse(json_string_value(jd),
		    json_string_length(jd), &dd) != 0 ||
		    !oci_digest_equal(&dd, &lf->digest)) {
			oci_digest_format(&lf->digest, ds);
			rc = fail(im, IMPORT_E_ARCHIVE, "%s: layer %s hashes to "
			    "%s, not to the config's diff_id %zu (layers of "
			    "this layout must be uncompressed tars)", what,
			    path, ds, k);
			goto out;
		}
		oci_digest_format(&lf->digest, ds);
		w = snprintf(man + len, cap - len, "%s{\"mediaType\":\"%s\","
		    "\"size\":%llu,\"digest\":\"%s\"}", k ? "," : "",
		    MT_DOCKER_LAYER, (unsigned long long)lf->size, ds);
		len += (size_t)w;
	}
	w = snprintf(man + len, cap - len, "]}");
	len += (size_t)w;
	oci_digest_sha256(man, len, &md);
	if (jt == NULL || json_is_null(jt) || json_array_size(jt) == 0) {
		rc = unnamed(im, what, &name);
		if (rc == 0)
			rc = plan_manifest(im, name.repo, &md,
			    OCI_MT_DOCKER_MANIFEST, man, len, man, 0);
		man = NULL;
		if (rc == 0)
			rc = add_image(im, &name, &md);
		goto out;
	}
	json_array_foreach(jt, k, v) {
		char *copy;

		if (!json_is_string(v)) {
			rc = fail(im, IMPORT_E_ARCHIVE, "%s: RepoTags %zu is not "
			    "a string", what, k);
			goto out;
		}
		rc = map_name(im, json_string_value(v), false, &name);
		if (rc != 0)
			goto out;
		/* Each put owns its bytes: one copy per repository. */
		copy = malloc(len);
		if (copy == NULL) {
			rc = fail(im, IMPORT_E_NOMEM, "out of memory");
			goto out;
		}
		memcpy(copy, man, len);
		rc = plan_manifest(im, name.repo, &md, OCI_MT_DOCKER_MANIFEST,
		    copy, len, copy, 0);
		if (rc == 0)
			rc = add_image(im, &name, &md);
		if (rc != 0)
			goto out;
	}
out:
	free(man);
	free(path);
	json_decref(cfg);
	return rc;
}

static int
plan_legacy(struct imp *im)
{
	json_t *j, *item;
	size_t i;
	int rc = 0;

	j = json_doc(im, "manifest.json", im->manifest, im->manifest_len, &rc);
	if (j == NULL)
		return rc;
	if (!json_is_array(j) || json_array_size(j) == 0 ||
	    json_array_size(j) > IMPORT_IMAGES_MAX) {
		rc = fail(im, IMPORT_E_ARCHIVE, "manifest.json: not an array of "
		    "1 to %d images", IMPORT_IMAGES_MAX);
		goto out;
	}
	json_array_foreach(j, i, item) {
		rc = plan_legacy_item(im, item, i);
		if (rc != 0)
			break;
	}
out:
	json_decref(j);
	return rc;
}

/* ---- the commit ------------------------------------------------------------ */

static int
commit(struct imp *im)
{
	char ds[OCI_DIGEST_STR_BYTES], line[OCI_NAME_MAX_BYTES +
	    OCI_TAG_MAX_BYTES + OCI_DIGEST_STR_BYTES + 2];
	struct store_ref *refs = NULL;
	int rc;

	/* Blobs: each upload finished once, into the first repository. */
	for (size_t i = 0; i < im->nneeds; i++) {
		struct need *n = &im->needs[i];
		struct file *f = file_by_digest(im, &n->digest);

		oci_digest_format(&n->digest, ds);
		if (f != NULL && !f->finished) {
			rc = store_upload_set_repo(f->up, n->repo,
			    strlen(n->repo));
			if (rc == 0)
				rc = store_upload_finish(f->up, &n->digest,
				    n->size);
			if (rc != 0)
				return store_fail(im, rc, ds);
			store_upload_free(f->up);
			f->up = NULL;
			f->finished = true;
			continue;
		}
		rc = store_blob_link(im->st, n->repo, strlen(n->repo),
		    &n->digest);
		if (rc != 0)
			return store_fail(im, rc, ds);
	}
	/* What no manifest names (manifests themselves, duplicates) goes. */
	for (size_t i = 0; i < im->nfiles; i++)
		upload_drop(&im->files[i]);
	for (size_t i = 0; i < im->nputs; i++) {
		struct mput *mp = &im->puts[i];
		struct store_manifest sm = { .digest = mp->digest };

		free(refs);
		refs = calloc(mp->m.nrefs + 1, sizeof(*refs));
		if (refs == NULL)
			return fail(im, IMPORT_E_NOMEM, "out of memory");
		for (size_t k = 0; k < mp->m.nrefs; k++) {
			refs[k].kind = mp->m.refs[k].kind;
			refs[k].digest = mp->m.refs[k].digest;
			refs[k].size = mp->m.refs[k].size;
			refs[k].external = mp->m.refs[k].external;
		}
		/*
		 * As for a push: the put re-checks in its own transaction that
		 * every blob is still there, so a concurrent garbage
		 * collection can never leave a manifest naming nothing.
		 */
		sm.require_refs = true;
		sm.media_type = mp->m.media_type;
		sm.media_type_len = strlen(mp->m.media_type);
		sm.data = mp->data;
		sm.len = mp->len;
		sm.refs = refs;
		sm.nrefs = mp->m.nrefs;
		sm.artifact_type = mp->m.artifact_type[0] ?
		    mp->m.artifact_type : NULL;
		sm.artifact_type_len = strlen(mp->m.artifact_type);
		rc = store_manifest_put(im->st, mp->repo, strlen(mp->repo), &sm,
		    NULL, 0);
		if (rc != 0) {
			free(refs);
			oci_digest_format(&mp->digest, ds);
			return store_fail(im, rc, ds);
		}
	}
	free(refs);
	/* Tags last: a name appears only once its image is complete. */
	for (size_t i = 0; i < im->nimages; i++) {
		struct image *g = &im->images[i];

		oci_digest_format(&g->digest, ds);
		if (g->name.tag[0] != '\0') {
			rc = store_tag_put(im->st, g->name.repo,
			    strlen(g->name.repo), g->name.tag,
			    strlen(g->name.tag), &g->digest);
			if (rc != 0)
				return store_fail(im, rc, g->name.tag);
			snprintf(line, sizeof(line), "%s:%s", g->name.repo,
			    g->name.tag);
		} else {
			snprintf(line, sizeof(line), "%s@%s", g->name.repo, ds);
		}
		if (im->o->image != NULL)
			im->o->image(im->o->image_arg, line, &g->digest);
	}
	return 0;
}

int
import_archive(struct store *st, const struct import_options *o,
    tar_source_fn *src, void *src_arg, char *why, size_t whysize)
{
	struct imp im = { .st = st, .o = o, .why = why, .whysize = whysize };
	struct import_name chk;
	int rc;

	if (whysize > 0)
		why[0] = '\0';
	if (o->repo != NULL && import_name_map(o->repo, strlen(o->repo), NULL,
	    &chk) != 0)
		return fail(&im, IMPORT_E_INVALID, "--repo %s: not a repository "
		    "name", o->repo);
	if (o->repo_prefix != NULL && !oci_name_valid(o->repo_prefix,
	    strlen(o->repo_prefix)))
		return fail(&im, IMPORT_E_INVALID, "--repo-prefix %s: not a "
		    "repository name", o->repo_prefix);
	rc = read_archive(&im, src, src_arg);
	if (rc == 0) {
		if (im.index != NULL)
			rc = plan_oci(&im);
		else if (im.manifest != NULL)
			rc = plan_legacy(&im);
		else
			rc = fail(&im, IMPORT_E_ARCHIVE, "not an image archive: "
			    "no index.json or manifest.json");
	}
	if (rc == 0)
		rc = commit(&im);
	for (size_t i = 0; i < im.nfiles; i++) {
		upload_drop(&im.files[i]);
		free(im.files[i].path);
		free(im.files[i].data);
	}
	for (size_t i = 0; i < im.nputs; i++) {
		oci_manifest_free(&im.puts[i].m);
		free(im.puts[i].owned);
	}
	for (size_t i = 0; i < im.nlinks; i++)
		free(im.links[i]);
	free(im.links);
	free(im.files);
	free(im.puts);
	free(im.needs);
	free(im.images);
	free(im.index);
	free(im.manifest);
	free(im.layout);
	return rc;
}

const char *
import_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "success";
	case IMPORT_E_INVALID:
		return "bad import options";
	case IMPORT_E_ARCHIVE:
		return "archive refused";
	case IMPORT_E_STORE:
		return "store error";
	case IMPORT_E_NOMEM:
		return "out of memory";
	case IMPORT_E_READ:
		return "reading the archive failed";
	default:
		return "unknown import error";
	}
}
