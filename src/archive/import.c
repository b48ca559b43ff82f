/*
 * The import behind berth-import: one pass over a TAR stream that files
 * every regular entry into memory (small files, the layout's JSON
 * documents) or a store upload (hashed as it streams); then a plan built
 * only from verified bytes (which manifests to put in which repository,
 * which blobs each needs); then the commit: small needed blobs uploaded,
 * uploads finished, blobs linked, manifests put children first, tags
 * last. Until the commit starts, every failure cancels every upload, so
 * the store is left as it was.
 *
 * Invariants: a file's digest is the SHA-256 of its bytes; a
 * blobs/sha256/<hex> entry is accepted only if that digest equals <hex>,
 * a legacy <hex>.json config likewise; nothing from the archive is parsed
 * that is not bounded by IMPORT_JSON_MAX_BYTES and IMPORT_JSON_DEPTH_MAX.
 * Planning is bounded: each distinct manifest is parsed once and shared
 * by every repository it goes to, lookups go through hash tables, the
 * work is counted against IMPORT_PLAN_REFS_MAX and IMPORT_PLAN_PARSE_MAX_BYTES
 * and what planning holds against IMPORT_MEMORY_MAX_BYTES.
 */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "berth/import.h"

#define IO_STEP_BYTES           ((size_t)1 << 20)
#define BLOB_PREFIX             "blobs/sha256/"
#define BLOB_PREFIX_LEN         (sizeof(BLOB_PREFIX) - 1)
#define MT_DOCKER_CONFIG        "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER         "application/vnd.docker.image.rootfs.diff.tar"
#define ANN_CONTAINERD_NAME     "io.containerd.image.name"
#define ANN_REF_NAME            "org.opencontainers.image.ref.name"
/* What one hash table entry costs beside its element, for the budget. */
#define HT_ENTRY_BYTES          (4 * sizeof(uint32_t))

/* A regular file of the archive. */
struct file {
	char *path;                     /* canonical (tar_path_clean) */
	struct oci_digest digest;
	uint64_t size;
	struct store_upload *up;        /* NULL: none (in memory, duplicate) or ended */
	bool finished;                  /* the blob is in the store */
	bool dup;                       /* same bytes as an earlier file */
	bool small;                     /* no upload: all its bytes in data */
	char *data;                     /* kept in memory, or NULL */
	size_t len;
};

/* A blob or child manifest a manifest lists, each once. */
struct mref {
	struct oci_digest digest;
	uint64_t size;
};

/* A distinct manifest of the plan, parsed once for every repository. */
struct man {
	struct oci_digest digest;
	const char *data;               /* borrowed from a file or owned; NULL:
	                                 * only in the store */
	size_t len;
	char *owned;
	bool parsed;
	struct oci_manifest m;
	struct mref *blobs;             /* configs and layers, not external */
	size_t nblobs;
	struct mref *kids;              /* child manifests */
	size_t nkids;
};

/* A manifest to put into a repository, in put order (children first). */
struct mput {
	uint32_t repo;
	uint32_t man;
};

/* A blob a manifest needs in a repository. */
struct need {
	uint32_t repo;
	struct oci_digest digest;
	uint64_t size;
};

/* A name to report (and, with a tag, to set) once everything is in. */
struct image {
	struct import_name name;
	struct oci_digest digest;
};

/* Open addressing over indexes of an array: slot holds index + 1, 0 empty. */
struct htab {
	uint32_t *slot;
	size_t cap, n;
};

struct imp {
	struct store *st;
	const struct import_options *o;
	char *why;
	size_t whysize;
	uint64_t seed;                  /* keys the hash tables */

	struct file *files;
	size_t nfiles, capfiles;
	struct htab by_path, by_digest; /* files; by_digest: first copy only */
	char repo[OCI_NAME_MAX_BYTES + 1];      /* --repo, prefixed; "" none */
	size_t mem;                     /* bytes held, against the limit */
	uint64_t work;                  /* against IMPORT_PLAN_REFS_MAX */
	size_t parsed;                  /* JSON bytes parsed while planning */
	/* the layout's documents */
	char *index, *manifest, *layout;
	size_t index_len, manifest_len, layout_len;

	char **repos;
	size_t nrepos, caprepos;
	struct htab repo_ht;
	struct man *mans;
	size_t nmans, capmans;
	struct htab man_ht;
	struct mput *puts;
	size_t nputs, capputs;
	struct htab put_ht;
	struct need *needs;
	size_t nneeds, capneeds;
	struct htab need_ht;
	struct image *images;
	size_t nimages, capimages;
	/* symbolic links seen where no file is expected: never followed */
	char **links;
	size_t nlinks, caplinks;
	struct htab link_ht;
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

/* Counts bytes held against IMPORT_MEMORY_MAX_BYTES; 0 or a refusal. */
static int
charge_mem(struct imp *im, size_t bytes, const char *what)
{
	if (bytes > IMPORT_MEMORY_MAX_BYTES - im->mem)
		return fail(im, IMPORT_E_ARCHIVE, "%s: the archive needs more "
		    "than %zu bytes of memory to import", what,
		    IMPORT_MEMORY_MAX_BYTES);
	im->mem += bytes;
	return 0;
}

/* Counts planning work against IMPORT_PLAN_REFS_MAX; 0 or a refusal. */
static int
charge_work(struct imp *im, uint64_t units)
{
	im->work += units;
	if (im->work > IMPORT_PLAN_REFS_MAX)
		return fail(im, IMPORT_E_ARCHIVE, "refused: the archive's images "
		    "need more than %d references planned across %zu "
		    "repositories", IMPORT_PLAN_REFS_MAX, im->nrepos);
	return 0;
}

/* ---- hash tables ---------------------------------------------------------- */

typedef uint64_t ht_hash_fn(const struct imp *im, uint32_t idx);
typedef bool ht_eq_fn(const struct imp *im, uint32_t idx, const void *key);

static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* Keyed by a random seed, so an archive cannot aim at one bucket. */
static uint64_t
hash_bytes(const struct imp *im, const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t h = mix64(im->seed ^ len), w;

	while (len >= 8) {
		memcpy(&w, b, 8);
		h = mix64(h ^ w) + im->seed;
		b += 8;
		len -= 8;
	}
	w = 0;
	memcpy(&w, b, len);
	return mix64(h ^ w);
}

static uint64_t
hash_digest(const struct imp *im, const struct oci_digest *d)
{
	uint64_t w;

	memcpy(&w, d->hash, sizeof(w));
	return mix64(w ^ im->seed);
}

/* The index stored under key, or -1. */
static long
ht_get(const struct htab *t, uint64_t h, ht_eq_fn *eq, const struct imp *im,
    const void *key)
{
	size_t i;

	if (t->cap == 0)
		return -1;
	for (i = h & (t->cap - 1); t->slot[i] != 0; i = (i + 1) & (t->cap - 1))
		if (eq(im, t->slot[i] - 1, key))
			return (long)(t->slot[i] - 1);
	return -1;
}

/* Adds idx (not yet present); 0 or -1 (out of memory). */
static int
ht_put(struct htab *t, struct imp *im, ht_hash_fn *hf, uint32_t idx)
{
	size_t i;

	if ((t->n + 1) * 2 > t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 64;
		uint32_t *ns = calloc(nc, sizeof(*ns));

		if (ns == NULL)
			return -1;
		for (size_t k = 0; k < t->cap; k++) {
			if (t->slot[k] == 0)
				continue;
			for (i = hf(im, t->slot[k] - 1) & (nc - 1); ns[i] != 0;
			    i = (i + 1) & (nc - 1))
				;
			ns[i] = t->slot[k];
		}
		free(t->slot);
		t->slot = ns;
		t->cap = nc;
	}
	for (i = hf(im, idx) & (t->cap - 1); t->slot[i] != 0;
	    i = (i + 1) & (t->cap - 1))
		;
	t->slot[i] = idx + 1;
	t->n++;
	return 0;
}

static void
ht_free(struct htab *t)
{
	free(t->slot);
	t->slot = NULL;
	t->cap = t->n = 0;
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


/* Parses a JSON document, its bytes counted against the planning budget. */
static json_t *
json_doc(struct imp *im, const char *what, const char *p, size_t len, int *rc)
{
	json_error_t err;
	json_t *j;

	if (len > IMPORT_PLAN_PARSE_MAX_BYTES - im->parsed) {
		*rc = fail(im, IMPORT_E_ARCHIVE, "%s: refused: the archive's "
		    "documents to parse exceed %zu bytes", what,
		    IMPORT_PLAN_PARSE_MAX_BYTES);
		return NULL;
	}
	im->parsed += len;
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

static uint64_t
file_path_hash(const struct imp *im, uint32_t idx)
{
	const char *p = im->files[idx].path;

	return hash_bytes(im, p, strlen(p));
}

static bool
file_path_eq(const struct imp *im, uint32_t idx, const void *key)
{
	return strcmp(im->files[idx].path, key) == 0;
}

static uint64_t
file_digest_hash(const struct imp *im, uint32_t idx)
{
	return hash_digest(im, &im->files[idx].digest);
}

static bool
file_digest_eq(const struct imp *im, uint32_t idx, const void *key)
{
	return oci_digest_equal(&im->files[idx].digest, key);
}

static struct file *
file_by_path(struct imp *im, const char *path)
{
	long i = ht_get(&im->by_path, hash_bytes(im, path, strlen(path)),
	    file_path_eq, im, path);

	return i < 0 ? NULL : &im->files[i];
}

/*
 * The file that holds the blob d: the first copy in the archive, the one
 * with the upload or the bytes in memory. Later copies hold nothing.
 */
static struct file *
file_by_digest(struct imp *im, const struct oci_digest *d)
{
	long i = ht_get(&im->by_digest, hash_digest(im, d), file_digest_eq, im,
	    d);

	return i < 0 ? NULL : &im->files[i];
}

/* The bytes of blob d if the archive has them in memory, else NULL. */
static struct file *
file_kept(struct imp *im, const struct oci_digest *d)
{
	struct file *f = file_by_digest(im, d);

	return f != NULL && f->data != NULL ? f : NULL;
}

static uint64_t
link_hash(const struct imp *im, uint32_t idx)
{
	return hash_bytes(im, im->links[idx], strlen(im->links[idx]));
}

static bool
link_eq(const struct imp *im, uint32_t idx, const void *key)
{
	return strcmp(im->links[idx], key) == 0;
}

/* Refuses a path the archive's documents name that is a symbolic link. */
static int
missing(struct imp *im, const char *what, const char *kind, const char *path)
{
	if (ht_get(&im->link_ht, hash_bytes(im, path, strlen(path)), link_eq,
	    im, path) >= 0)
		return fail(im, IMPORT_E_ARCHIVE, "entry %s: refused: a "
		    "symbolic link where a file is expected (%s %s)",
		    path, what, kind);
	return fail(im, IMPORT_E_ARCHIVE, "%s: %s %.300s is not in the archive",
	    what, kind, path);
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

/* A failed tar_reader_read: the source's failure is not the archive's. */
static int
read_fail(struct imp *im, const struct tar_header *h, int rc)
{
	if (rc == TAR_E_READ)
		return fail(im, IMPORT_E_READ, "entry %s: reading the archive "
		    "failed or was interrupted; nothing imported", h->name);
	return fail(im, IMPORT_E_ARCHIVE, "entry %s: %s", h->name,
	    tar_strerror(rc));
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
	rc = charge_mem(im, (size_t)h->size, h->name);
	if (rc != 0)
		return rc;
	buf = malloc((size_t)h->size + 1);
	if (buf == NULL)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	while (got < h->size) {
		rc = tar_reader_read(r, buf + got, (size_t)h->size - got, &n);
		if (rc != 0) {
			free(buf);
			return read_fail(im, h, rc);
		}
		got += n;
	}
	*out = buf;
	*outlen = got;
	return 0;
}

static int
store_fail(struct imp *im, int rc, const char *what)
{
	return fail(im, IMPORT_E_STORE, "%s: %s", what, store_strerror(rc));
}

/*
 * Reads an entry, hashing it: a small one only into memory, a larger one
 * into a new upload (and into memory too if it may be a manifest or a
 * config: a JSON document within IMPORT_JSON_MAX_BYTES).
 */
static int
read_blob(struct imp *im, struct tar_reader *r, const struct tar_header *h,
    struct file *f, uint8_t *io)
{
	EVP_MD_CTX *md = NULL;
	uint8_t hash[OCI_HASH_SHA256_BYTES];
	struct oci_digest want;
	unsigned hlen = 0;
	bool keep, small, first = true;
	size_t n;
	int rc;

	small = h->size <= IMPORT_SMALL_MAX_BYTES &&
	    h->size <= IMPORT_MEMORY_MAX_BYTES - im->mem;
	f->small = small;
	keep = small || (h->size <= IMPORT_JSON_MAX_BYTES &&
	    h->size <= IMPORT_MEMORY_MAX_BYTES - im->mem);
	if (!small) {
		rc = store_upload_new(im->st, IMPORT_STAGING_REPO,
		    strlen(IMPORT_STAGING_REPO), &f->up);
		if (rc != 0)
			return store_fail(im, rc, "starting an upload");
	}
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		rc = fail(im, IMPORT_E_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		rc = tar_reader_read(r, io, IO_STEP_BYTES, &n);
		if (rc != 0) {
			rc = read_fail(im, h, rc);
			goto out;
		}
		if (n == 0)
			break;
		if (first) {
			/* Only JSON documents can be manifests or configs. */
			keep = keep && (small || io[0] == '{');
			if (keep) {
				f->data = malloc((size_t)h->size);
				if (f->data == NULL) {
					rc = fail(im, IMPORT_E_NOMEM,
					    "out of memory");
					goto out;
				}
				im->mem += (size_t)h->size;
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
		if (f->up != NULL) {
			rc = store_upload_write(f->up, io, n);
			if (rc == 0 && store_upload_pending(f->up) >
			    IMPORT_PENDING_MAX_BYTES)
				rc = store_upload_flush(f->up);
			if (rc != 0) {
				rc = store_fail(im, rc, h->name);
				goto out;
			}
		}
		f->size += n;
	}
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

/*
 * Cancels an upload that will not be finished. store_upload_cancel is a
 * single store operation, so refusing an archive costs one per upload.
 */
static void
upload_drop(struct file *f)
{
	if (f->up != NULL) {
		(void)store_upload_cancel(f->up);
		store_upload_free(f->up);
		f->up = NULL;
	}
}

/*
 * Files the just-read file f (index idx): a later copy of bytes seen
 * before holds nothing; the first copy is found by digest.
 */
static int
dedup(struct imp *im, struct file *f, uint32_t idx)
{
	if (file_by_digest(im, &f->digest) != NULL) {
		upload_drop(f);
		if (f->data != NULL) {
			im->mem -= f->len;
			free(f->data);
			f->data = NULL;
			f->len = 0;
		}
		f->dup = true;
		return 0;
	}
	if (ht_put(&im->by_digest, im, file_digest_hash, idx) != 0)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	return 0;
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

static bool
stopped(const struct imp *im)
{
	return im->o->stop != NULL && atomic_load(im->o->stop) != 0;
}

static int
interrupted(struct imp *im)
{
	return fail(im, IMPORT_E_READ, "interrupted; nothing imported");
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
		if (stopped(im)) {
			rc = interrupted(im);
			goto out;
		}
		rc = tar_reader_next(&r, h);
		if (rc == 1)
			break;
		if (rc == TAR_E_READ) {
			rc = fail(im, IMPORT_E_READ, "reading the archive failed "
			    "or was interrupted; nothing imported");
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
			if (ht_get(&im->link_ht, hash_bytes(im, clean, cl),
			    link_eq, im, clean) >= 0)
				continue;
			if (grow((void **)&im->links, &im->caplinks, im->nlinks,
			    sizeof(*im->links)) != 0 ||
			    (im->links[im->nlinks] = strdup(clean)) == NULL) {
				rc = fail(im, IMPORT_E_NOMEM, "out of memory");
				goto out;
			}
			im->nlinks++;
			if (ht_put(&im->link_ht, im, link_hash,
			    (uint32_t)(im->nlinks - 1)) != 0) {
				rc = fail(im, IMPORT_E_NOMEM, "out of memory");
				goto out;
			}
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
		if (ht_put(&im->by_path, im, file_path_hash,
		    (uint32_t)(im->nfiles - 1)) != 0) {
			rc = fail(im, IMPORT_E_NOMEM, "out of memory");
			goto out;
		}
		rc = read_blob(im, &r, h, &im->files[im->nfiles - 1], io);
		if (rc == 0)
			rc = dedup(im, &im->files[im->nfiles - 1],
			    (uint32_t)(im->nfiles - 1));
		if (rc != 0)
			goto out;
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

static uint64_t
repo_hash(const struct imp *im, uint32_t idx)
{
	return hash_bytes(im, im->repos[idx], strlen(im->repos[idx]));
}

static bool
repo_eq(const struct imp *im, uint32_t idx, const void *key)
{
	return strcmp(im->repos[idx], key) == 0;
}

/* The number of repository name, added on first use. */
static int
repo_id(struct imp *im, const char *name, uint32_t *out)
{
	size_t len = strlen(name);
	long i = ht_get(&im->repo_ht, hash_bytes(im, name, len), repo_eq, im,
	    name);
	int rc;

	if (i >= 0) {
		*out = (uint32_t)i;
		return 0;
	}
	rc = charge_mem(im, len + 1 + sizeof(char *) + HT_ENTRY_BYTES, name);
	if (rc != 0)
		return rc;
	if (grow((void **)&im->repos, &im->caprepos, im->nrepos,
	    sizeof(*im->repos)) != 0 ||
	    (im->repos[im->nrepos] = strdup(name)) == NULL)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	im->nrepos++;
	if (ht_put(&im->repo_ht, im, repo_hash, (uint32_t)(im->nrepos - 1)) != 0)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	*out = (uint32_t)(im->nrepos - 1);
	return 0;
}

static uint64_t
man_hash(const struct imp *im, uint32_t idx)
{
	return hash_digest(im, &im->mans[idx].digest);
}

static bool
man_eq(const struct imp *im, uint32_t idx, const void *key)
{
	return oci_digest_equal(&im->mans[idx].digest, key);
}

static long
man_find(struct imp *im, const struct oci_digest *d)
{
	return ht_get(&im->man_ht, hash_digest(im, d), man_eq, im, d);
}

/*
 * Adds manifest d with its bytes (data NULL: only in the store, len its
 * length there). Takes owned (the bytes, or NULL when borrowed) in every
 * case; its length must already be charged.
 */
static int
man_add(struct imp *im, const struct oci_digest *d, const char *data,
    size_t len, char *owned, uint32_t *out)
{
	struct man *m;
	int rc;

	rc = charge_mem(im, sizeof(*m) + HT_ENTRY_BYTES, "manifest");
	if (rc == 0 && grow((void **)&im->mans, &im->capmans, im->nmans,
	    sizeof(*im->mans)) != 0)
		rc = fail(im, IMPORT_E_NOMEM, "out of memory");
	if (rc != 0) {
		free(owned);
		return rc;
	}
	m = &im->mans[im->nmans];
	memset(m, 0, sizeof(*m));
	m->digest = *d;
	m->data = data;
	m->len = len;
	m->owned = owned;
	im->nmans++;
	if (ht_put(&im->man_ht, im, man_hash, (uint32_t)(im->nmans - 1)) != 0)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	*out = (uint32_t)(im->nmans - 1);
	return 0;
}

static int
mref_cmp(const void *a, const void *b)
{
	const struct mref *x = a, *y = b;
	int c = memcmp(x->digest.hash, y->digest.hash, sizeof(x->digest.hash));

	if (c != 0)
		return c;
	return x->size < y->size ? -1 : x->size > y->size;
}

/*
 * Sorts refs and drops repeats; the same digest with two sizes refuses
 * the manifest (ms names it).
 */
static int
mref_unique(struct imp *im, struct mref *r, size_t *n, const char *ms)
{
	char ds[OCI_DIGEST_STR_BYTES];
	size_t k = 0;

	if (*n == 0)
		return 0;
	qsort(r, *n, sizeof(*r), mref_cmp);
	for (size_t i = 1; i < *n; i++) {
		if (oci_digest_equal(&r[i].digest, &r[k].digest)) {
			if (r[i].size != r[k].size) {
				oci_digest_format(&r[i].digest, ds);
				return fail(im, IMPORT_E_ARCHIVE, "manifest %s "
				    "lists %s with two sizes", ms, ds);
			}
			continue;
		}
		r[++k] = r[i];
	}
	*n = k + 1;
	return 0;
}

/*
 * Parses manifest mi once (mt: the descriptor's media type, or NULL) and
 * checks every config and layer it names: present in the archive or the
 * store (any repository), with the size the manifest says. Child
 * manifests are checked when planned into a repository.
 */
static int
man_parse(struct imp *im, uint32_t mi, const char *mt)
{
	struct man *m = &im->mans[mi];
	char why[256], ds[OCI_DIGEST_STR_BYTES], ms[OCI_DIGEST_STR_BYTES];
	size_t nb = 0, nk = 0;
	int rc;

	oci_digest_format(&m->digest, ms);
	if (m->len > IMPORT_PLAN_PARSE_MAX_BYTES - im->parsed)
		return fail(im, IMPORT_E_ARCHIVE, "manifest %s: refused: the "
		    "archive's documents to parse exceed %zu bytes", ms,
		    IMPORT_PLAN_PARSE_MAX_BYTES);
	im->parsed += m->len;
	if (!json_depth_ok(m->data, m->len, IMPORT_JSON_DEPTH_MAX))
		return fail(im, IMPORT_E_ARCHIVE, "manifest %s: JSON nested "
		    "deeper than %d", ms, IMPORT_JSON_DEPTH_MAX);
	rc = oci_manifest_parse(m->data, m->len, mt, mt != NULL ? strlen(mt) :
	    0, &m->m, why, sizeof(why));
	if (rc != 0)
		return fail(im, IMPORT_E_ARCHIVE, "manifest %s: %s", ms,
		    rc == OCI_E_UNSUPPORTED ? "unsupported media type or "
		    "schema" : why);
	m->parsed = true;
	rc = charge_work(im, m->m.nrefs);
	if (rc == 0)
		rc = charge_mem(im, m->m.nrefs * (sizeof(struct oci_ref) +
		    sizeof(struct mref)), ms);
	if (rc != 0)
		return rc;
	if (m->m.nrefs > 0) {
		m->blobs = calloc(m->m.nrefs, sizeof(*m->blobs));
		m->kids = calloc(m->m.nrefs, sizeof(*m->kids));
		if (m->blobs == NULL || m->kids == NULL)
			return fail(im, IMPORT_E_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < m->m.nrefs; i++) {
		const struct oci_ref *ref = &m->m.refs[i];
		struct mref *to;

		if (ref->kind == OCI_REF_SUBJECT || ref->external)
			continue;
		to = ref->kind == OCI_REF_MANIFEST ? &m->kids[nk++] :
		    &m->blobs[nb++];
		to->digest = ref->digest;
		to->size = ref->size;
	}
	rc = mref_unique(im, m->blobs, &nb, ms);
	if (rc == 0)
		rc = mref_unique(im, m->kids, &nk, ms);
	if (rc != 0)
		return rc;
	m->nblobs = nb;
	m->nkids = nk;
	for (size_t i = 0; i < m->nblobs; i++) {
		const struct mref *b = &m->blobs[i];
		struct store_blob_info info;
		struct file *f = file_by_digest(im, &b->digest);

		oci_digest_format(&b->digest, ds);
		if (f != NULL) {
			if (f->size != b->size)
				return fail(im, IMPORT_E_ARCHIVE, "blob %s of "
				    "manifest %s: %llu bytes, the manifest says "
				    "%llu", ds, ms, (unsigned long long)f->size,
				    (unsigned long long)b->size);
			continue;
		}
		rc = store_blob_stat(im->st, NULL, 0, &b->digest, &info);
		if (rc == STORE_E_NOTFOUND || (rc == 0 && info.size != b->size))
			return fail(im, IMPORT_E_ARCHIVE, "blob %s of manifest "
			    "%s: not in the archive nor in the store", ds, ms);
		if (rc != 0)
			return store_fail(im, rc, ds);
	}
	return 0;
}

struct need_key {
	uint32_t repo;
	const struct oci_digest *d;
};

static uint64_t
need_key_hash(const struct imp *im, uint32_t repo, const struct oci_digest *d)
{
	return mix64(hash_digest(im, d) ^ repo);
}

static uint64_t
need_hash(const struct imp *im, uint32_t idx)
{
	return need_key_hash(im, im->needs[idx].repo, &im->needs[idx].digest);
}

static bool
need_eq(const struct imp *im, uint32_t idx, const void *key)
{
	const struct need_key *k = key;

	return im->needs[idx].repo == k->repo &&
	    oci_digest_equal(&im->needs[idx].digest, k->d);
}

static int
add_need(struct imp *im, uint32_t repo, const struct oci_digest *d,
    uint64_t size)
{
	struct need_key k = { .repo = repo, .d = d };
	struct need *n;
	int rc;

	if (ht_get(&im->need_ht, need_key_hash(im, repo, d), need_eq, im,
	    &k) >= 0)
		return 0;
	rc = charge_mem(im, sizeof(*n) + HT_ENTRY_BYTES, "plan");
	if (rc != 0)
		return rc;
	if (grow((void **)&im->needs, &im->capneeds, im->nneeds,
	    sizeof(*im->needs)) != 0)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	n = &im->needs[im->nneeds++];
	n->repo = repo;
	n->digest = *d;
	n->size = size;
	if (ht_put(&im->need_ht, im, need_hash, (uint32_t)(im->nneeds - 1)) != 0)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	return 0;
}

static uint64_t
put_key_hash(const struct imp *im, uint32_t repo, uint32_t man)
{
	return mix64(((uint64_t)repo << 32 | man) ^ im->seed);
}

static uint64_t
put_hash(const struct imp *im, uint32_t idx)
{
	return put_key_hash(im, im->puts[idx].repo, im->puts[idx].man);
}

static bool
put_eq(const struct imp *im, uint32_t idx, const void *key)
{
	const struct mput *k = key;

	return im->puts[idx].repo == k->repo && im->puts[idx].man == k->man;
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

/*
 * A manifest the archive does not hold: it must already be in repo, with
 * want_size bytes (UINT64_MAX: any) when a descriptor names its size.
 */
static int
plan_stored(struct imp *im, uint32_t repo, const struct oci_digest *d,
    uint64_t want_size, const char *ds)
{
	const char *rn = im->repos[repo];
	uint32_t mi;
	long i;
	void *data = NULL;
	size_t len = 0;
	int rc;

	rc = charge_work(im, 1);
	if (rc != 0)
		return rc;
	rc = store_manifest_exists(im->st, rn, strlen(rn), d);
	if (rc == STORE_E_NOTFOUND)
		return fail(im, IMPORT_E_ARCHIVE, "manifest %s: not in the "
		    "archive as a JSON document of at most %zu bytes, nor in "
		    "the store", ds, IMPORT_JSON_MAX_BYTES);
	if (rc != 0)
		return store_fail(im, rc, ds);
	if (want_size == UINT64_MAX)
		return 0;
	/* Its length is read once: the digest fixes the bytes. */
	i = man_find(im, d);
	if (i < 0) {
		rc = store_manifest_get(im->st, rn, strlen(rn), d, &data, &len,
		    NULL);
		free(data);
		if (rc != 0)
			return store_fail(im, rc, ds);
		rc = man_add(im, d, NULL, len, NULL, &mi);
		if (rc != 0)
			return rc;
		i = (long)mi;
	}
	if (im->mans[i].len != want_size)
		return fail(im, IMPORT_E_ARCHIVE, "manifest %s: %zu bytes in the "
		    "store, its descriptor says %llu", ds, im->mans[i].len,
		    (unsigned long long)want_size);
	return 0;
}

/*
 * Plans manifest d into repository repo, its children first: found among
 * the manifests already known, else in the archive, else it must be in
 * the store. mt: the descriptor's media type (NULL: none); want_size:
 * the descriptor's size (UINT64_MAX: none).
 */
static int
plan_manifest(struct imp *im, uint32_t repo, const struct oci_digest *d,
    const char *mt, uint64_t want_size, unsigned depth)
{
	char ds[OCI_DIGEST_STR_BYTES];
	struct mput key = { .repo = repo };
	struct man *m;
	struct file *f;
	uint32_t mi;
	long i;
	int rc;

	oci_digest_format(d, ds);
	i = man_find(im, d);
	if (i < 0) {
		f = file_kept(im, d);
		if (f == NULL)
			return plan_stored(im, repo, d, want_size, ds);
		rc = man_add(im, d, f->data, f->len, NULL, &mi);
		if (rc != 0)
			return rc;
		i = (long)mi;
	}
	mi = (uint32_t)i;
	if (im->mans[mi].data == NULL)
		return plan_stored(im, repo, d, want_size, ds);
	if (want_size != UINT64_MAX && im->mans[mi].len != want_size)
		return fail(im, IMPORT_E_ARCHIVE, "manifest %s: %zu bytes, its "
		    "descriptor says %llu", ds, im->mans[mi].len,
		    (unsigned long long)want_size);
	key.man = mi;
	if (ht_get(&im->put_ht, put_key_hash(im, repo, mi), put_eq, im,
	    &key) >= 0)
		return charge_work(im, 1);
	if (depth > IMPORT_NESTING_MAX)
		return fail(im, IMPORT_E_ARCHIVE, "manifest %s: indexes nested "
		    "deeper than %d", ds, IMPORT_NESTING_MAX);
	if (!im->mans[mi].parsed) {
		rc = man_parse(im, mi, mt);
		if (rc != 0)
			return rc;
	} else if (mt != NULL && strcmp(mt, im->mans[mi].m.media_type) != 0) {
		return fail(im, IMPORT_E_ARCHIVE, "manifest %s: described as "
		    "%s and as %s", ds, mt, im->mans[mi].m.media_type);
	}
	m = &im->mans[mi];
	rc = charge_work(im, 1 + m->nblobs + m->nkids);
	for (size_t k = 0; rc == 0 && k < im->mans[mi].nkids; k++) {
		struct mref kid = im->mans[mi].kids[k];

		/* mans may move as children are added. */
		rc = plan_manifest(im, repo, &kid.digest, NULL, kid.size,
		    depth + 1);
	}
	for (size_t k = 0; rc == 0 && k < im->mans[mi].nblobs; k++)
		rc = add_need(im, repo, &im->mans[mi].blobs[k].digest,
		    im->mans[mi].blobs[k].size);
	if (rc != 0)
		return rc;
	/* Appended after its children: puts run in this order. */
	if (ht_get(&im->put_ht, put_key_hash(im, repo, mi), put_eq, im,
	    &key) >= 0)
		return 0;
	rc = charge_mem(im, sizeof(struct mput) + HT_ENTRY_BYTES, "plan");
	if (rc != 0)
		return rc;
	if (grow((void **)&im->puts, &im->capputs, im->nputs,
	    sizeof(*im->puts)) != 0)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	im->puts[im->nputs++] = key;
	if (ht_put(&im->put_ht, im, put_hash, (uint32_t)(im->nputs - 1)) != 0)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
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
		snprintf(out->repo, sizeof(out->repo), "%s", im->repo);
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
	snprintf(out->repo, sizeof(out->repo), "%s", im->repo);
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
	uint32_t repo;
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

		snprintf(what, sizeof(what), "index.json descriptor %zu", i);
		if (!json_is_string(jd) || oci_digest_parse(json_string_value(jd),
		    json_string_length(jd), &dg) != 0 || !json_is_integer(js) ||
		    json_integer_value(js) < 0) {
			rc = fail(im, IMPORT_E_ARCHIVE, "%s: bad digest or size",
			    what);
			goto out;
		}
		if (json_is_string(cn))
			rc = map_name(im, json_string_value(cn), false, &name);
		else if (json_is_string(rn))
			rc = map_name(im, json_string_value(rn), true, &name);
		else
			rc = unnamed(im, what, &name);
		if (rc == 0)
			rc = repo_id(im, name.repo, &repo);
		if (rc == 0)
			rc = plan_manifest(im, repo, &dg, mt,
			    (uint64_t)json_integer_value(js), 0);
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
 * config's rootfs.diff_ids entry (image-spec config.md "rootfs"). The
 * manifest is made once per item and shared by all its RepoTags.
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
	uint32_t repo, mi;
	size_t n, cap, len = 0, k, pl;
	int rc = 0, w;

	snprintf(what, sizeof(what), "manifest.json item %zu", i);
	if (!json_is_string(jc) || !json_is_array(jl) ||
	    (jt != NULL && !json_is_null(jt) && !json_is_array(jt)))
		return fail(im, IMPORT_E_ARCHIVE, "%s: needs Config, Layers and "
		    "RepoTags", what);
	rc = charge_work(im, 1 + json_array_size(jl));
	if (rc != 0)
		return rc;
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
	/* A copy of bytes seen earlier holds nothing: use the first. */
	cf = file_by_digest(im, &cf->digest);
	if (cf->data == NULL || cf->size > IMPORT_JSON_MAX_BYTES) {
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
	/* Items that make the same manifest share it. */
	if (man_find(im, &md) < 0) {
		rc = charge_mem(im, len, what);
		if (rc == 0)
			rc = man_add(im, &md, man, len, man, &mi);
		else
			free(man);
		man = NULL;
		if (rc != 0)
			goto out;
	}
	if (jt == NULL || json_is_null(jt) || json_array_size(jt) == 0) {
		rc = unnamed(im, what, &name);
		if (rc == 0)
			rc = repo_id(im, name.repo, &repo);
		if (rc == 0)
			rc = plan_manifest(im, repo, &md, OCI_MT_DOCKER_MANIFEST,
			    UINT64_MAX, 0);
		if (rc == 0)
			rc = add_image(im, &name, &md);
		goto out;
	}
	json_array_foreach(jt, k, v) {
		if (!json_is_string(v)) {
			rc = fail(im, IMPORT_E_ARCHIVE, "%s: RepoTags %zu is not "
			    "a string", what, k);
			goto out;
		}
		rc = map_name(im, json_string_value(v), false, &name);
		if (rc == 0)
			rc = repo_id(im, name.repo, &repo);
		if (rc == 0)
			rc = plan_manifest(im, repo, &md, OCI_MT_DOCKER_MANIFEST,
			    UINT64_MAX, 0);
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

/* Stores a blob held in memory into repo with one upload. */
static int
upload_small(struct imp *im, struct file *f, const char *repo,
    const struct need *n)
{
	struct store_upload *up = NULL;
	int rc;

	rc = store_upload_new(im->st, repo, strlen(repo), &up);
	if (rc != 0)
		return rc;
	if (f->len > 0)
		rc = store_upload_write(up, f->data, f->len);
	if (rc == 0)
		rc = store_upload_finish(up, &n->digest, n->size);
	if (rc != 0)
		(void)store_upload_cancel(up);
	store_upload_free(up);
	return rc;
}

/*
 * Links of blobs already stored to further repositories, queued together
 * so that they share group commits (each is durable, and alone it would
 * cost a commit and its syncs): link_add() queues one, link_wait() waits
 * for all and gives the first failure with the blob's digest.
 */
struct link_batch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t pending;
	int rc;                         /* the first failure, or 0 */
	struct oci_digest failed;       /* its blob */
};

struct link_call {
	struct link_batch *b;
	struct oci_digest digest;
};

static void
link_done(void *arg, int rc)
{
	struct link_call *lc = arg;
	struct link_batch *b = lc->b;

	pthread_mutex_lock(&b->lock);
	if (rc != 0 && b->rc == 0) {
		b->rc = rc;
		b->failed = lc->digest;
	}
	if (--b->pending == 0)
		pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

static int
link_add(struct imp *im, struct link_batch *b, struct link_call *lc,
    const char *repo, const struct oci_digest *d)
{
	int rc;

	lc->b = b;
	lc->digest = *d;
	pthread_mutex_lock(&b->lock);
	b->pending++;
	pthread_mutex_unlock(&b->lock);
	rc = store_blob_link_async(im->st, repo, strlen(repo), d, link_done,
	    lc);
	if (rc != 0) {
		/* Not queued: its callback will not come. */
		pthread_mutex_lock(&b->lock);
		b->pending--;
		pthread_mutex_unlock(&b->lock);
	}
	return rc;
}

static int
link_wait(struct link_batch *b, struct oci_digest *failed)
{
	int rc;

	pthread_mutex_lock(&b->lock);
	while (b->pending > 0)
		pthread_cond_wait(&b->cond, &b->lock);
	rc = b->rc;
	*failed = b->failed;
	pthread_mutex_unlock(&b->lock);
	return rc;
}

static int
commit(struct imp *im)
{
	char ds[OCI_DIGEST_STR_BYTES], line[OCI_NAME_MAX_BYTES +
	    OCI_TAG_MAX_BYTES + OCI_DIGEST_STR_BYTES + 2];
	struct store_ref *refs = NULL;
	struct link_batch links = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	struct link_call *calls;
	struct oci_digest failed;
	int rc, lrc;

	/* Blobs: each stored once, into the first repository; linked after. */
	calls = calloc(im->nneeds > 0 ? im->nneeds : 1, sizeof(*calls));
	if (calls == NULL)
		return fail(im, IMPORT_E_NOMEM, "out of memory");
	rc = 0;
	for (size_t i = 0; rc == 0 && i < im->nneeds; i++) {
		struct need *n = &im->needs[i];
		const char *repo = im->repos[n->repo];
		struct file *f = file_by_digest(im, &n->digest);

		oci_digest_format(&n->digest, ds);
		if (f != NULL && !f->finished && f->up != NULL) {
			rc = store_upload_set_repo(f->up, repo, strlen(repo));
			if (rc == 0)
				rc = store_upload_finish(f->up, &n->digest,
				    n->size);
			if (rc == 0) {
				store_upload_free(f->up);
				f->up = NULL;
				f->finished = true;
			}
		} else if (f != NULL && !f->finished && f->small) {
			rc = upload_small(im, f, repo, n);
			if (rc == 0)
				f->finished = true;
		} else {
			/* Queued behind the finishes above, so applied after. */
			rc = link_add(im, &links, &calls[i], repo, &n->digest);
		}
	}
	lrc = link_wait(&links, &failed);
	free(calls);
	if (rc != 0)
		return store_fail(im, rc, ds);
	if (lrc != 0) {
		oci_digest_format(&failed, ds);
		return store_fail(im, lrc, ds);
	}
	/* What no manifest names (manifests themselves, duplicates) goes. */
	for (size_t i = 0; i < im->nfiles; i++)
		upload_drop(&im->files[i]);
	for (size_t i = 0; i < im->nputs; i++) {
		const struct mput *mp = &im->puts[i];
		const struct man *m = &im->mans[mp->man];
		const char *repo = im->repos[mp->repo];
		struct store_manifest sm = { .digest = m->digest };

		free(refs);
		refs = calloc(m->m.nrefs + 1, sizeof(*refs));
		if (refs == NULL)
			return fail(im, IMPORT_E_NOMEM, "out of memory");
		for (size_t k = 0; k < m->m.nrefs; k++) {
			refs[k].kind = m->m.refs[k].kind;
			refs[k].digest = m->m.refs[k].digest;
			refs[k].size = m->m.refs[k].size;
			refs[k].external = m->m.refs[k].external;
		}
		/*
		 * As for a push: the put re-checks in its own transaction that
		 * every blob is still there, so a concurrent garbage
		 * collection can never leave a manifest naming nothing.
		 */
		sm.require_refs = true;
		sm.media_type = m->m.media_type;
		sm.media_type_len = strlen(m->m.media_type);
		sm.data = m->data;
		sm.len = m->len;
		sm.refs = refs;
		sm.nrefs = m->m.nrefs;
		sm.artifact_type = m->m.artifact_type[0] ?
		    m->m.artifact_type : NULL;
		sm.artifact_type_len = strlen(m->m.artifact_type);
		rc = store_manifest_put(im->st, repo, strlen(repo), &sm, NULL, 0);
		if (rc != 0) {
			free(refs);
			oci_digest_format(&m->digest, ds);
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
	size_t pl = o->repo_prefix != NULL ? strlen(o->repo_prefix) : 0;
	int rc;

	if (whysize > 0)
		why[0] = '\0';
	if (o->repo_prefix != NULL && !oci_name_valid(o->repo_prefix, pl))
		return fail(&im, IMPORT_E_INVALID, "--repo-prefix %s: not a "
		    "repository name", o->repo_prefix);
	/* --repo-prefix applies to --repo as to every other name. */
	if (o->repo != NULL) {
		int n = pl > 0 ? snprintf(im.repo, sizeof(im.repo), "%s/%s",
		    o->repo_prefix, o->repo) : snprintf(im.repo,
		    sizeof(im.repo), "%s", o->repo);

		if (n < 0 || (size_t)n >= sizeof(im.repo) ||
		    !oci_name_valid(im.repo, (size_t)n))
			return fail(&im, IMPORT_E_INVALID, "--repo %s: not a "
			    "repository name (with the prefix, at most %d "
			    "bytes)", o->repo, OCI_NAME_MAX_BYTES);
	}
	if (RAND_bytes((unsigned char *)&im.seed, sizeof(im.seed)) != 1)
		return fail(&im, IMPORT_E_NOMEM, "no random bytes for the hash "
		    "tables");
	rc = read_archive(&im, src, src_arg);
	if (rc == 0 && stopped(&im))
		rc = interrupted(&im);
	if (rc == 0) {
		if (im.index != NULL)
			rc = plan_oci(&im);
		else if (im.manifest != NULL)
			rc = plan_legacy(&im);
		else
			rc = fail(&im, IMPORT_E_ARCHIVE, "not an image archive: "
			    "no index.json or manifest.json");
	}
	/* The last moment to stop with nothing changed. */
	if (rc == 0 && stopped(&im))
		rc = interrupted(&im);
	if (rc == 0)
		rc = commit(&im);
	for (size_t i = 0; i < im.nfiles; i++) {
		upload_drop(&im.files[i]);
		free(im.files[i].path);
		free(im.files[i].data);
	}
	for (size_t i = 0; i < im.nmans; i++) {
		oci_manifest_free(&im.mans[i].m);
		free(im.mans[i].owned);
		free(im.mans[i].blobs);
		free(im.mans[i].kids);
	}
	for (size_t i = 0; i < im.nrepos; i++)
		free(im.repos[i]);
	for (size_t i = 0; i < im.nlinks; i++)
		free(im.links[i]);
	ht_free(&im.by_path);
	ht_free(&im.by_digest);
	ht_free(&im.repo_ht);
	ht_free(&im.man_ht);
	ht_free(&im.put_ht);
	ht_free(&im.need_ht);
	ht_free(&im.link_ht);
	free(im.repos);
	free(im.links);
	free(im.files);
	free(im.mans);
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
		return "reading the archive failed or was interrupted";
	default:
		return "unknown import error";
	}
}
