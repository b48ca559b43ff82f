/*
 * berth-export's engine: resolves image arguments against the store into a
 * plan (a list of archive entries, each a directory, bytes in memory, a
 * stored blob, or a stored layer to decompress), then writes the entries
 * in name order through the TAR writer.
 *
 * Invariants:
 * - Every entry under blobs/sha256/ carries the digest its name states,
 *   and its bytes are hashed while they are written; a mismatch ends the
 *   export before the entry's last EXPORT_HOLD_BYTES are passed on.
 * - Entries are unique by name; the first image naming a blob is the one
 *   error messages cite.
 * - The plan is complete before the first byte is written: unknown names,
 *   missing manifests and blobs and, with --uncompressed, bad layers fail
 *   with nothing written.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <zlib.h>
#include <zstd.h>

#include "berth/export.h"

#define WHY(...) do { if (x->why != NULL) snprintf(x->why, x->whysize, __VA_ARGS__); } while (0)

#define MT_OCI_CONFIG           "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER_TAR        "application/vnd.oci.image.layer.v1.tar"
#define ANN_IMAGE_NAME          "io.containerd.image.name"
#define ANN_REF_NAME            "org.opencontainers.image.ref.name"
#define OCI_LAYOUT_JSON         "{\"imageLayoutVersion\":\"1.0.0\"}"

/* blobs/sha256/ + 64 hex digits + NUL */
#define ENTRY_NAME_MAX_BYTES    (13 + OCI_DIGEST_SHA256_HEX + 1)
/* Bytes asked of the store per read, and decompressed per step. */
#define READ_STEP_BYTES         ((size_t)1 << 20)
#define INFLATE_OUT_BYTES       ((size_t)256 << 10)

enum entry_kind {
	ENT_DIR,
	ENT_MEM,        /* bytes owned by the entry */
	ENT_BLOB,       /* a stored blob, byte for byte */
	ENT_LAYER,      /* a stored layer, decompressed */
};

enum codec {
	CODEC_NONE,
	CODEC_GZIP,
	CODEC_ZSTD,
};

struct entry {
	char name[ENTRY_NAME_MAX_BYTES];
	enum entry_kind kind;
	uint64_t size;                  /* bytes in the archive */
	uint8_t *mem;                   /* ENT_MEM */
	struct oci_digest digest;       /* what the entry's bytes hash to */
	struct oci_digest src;          /* ENT_LAYER: the compressed blob */
	uint64_t src_size;
	enum codec codec;
	const char *repo;               /* borrowed from the image's ref */
	const char *image;              /* the image's name, for messages */
	const char *role;               /* "layer", "config", ... */
};

/* One manifest.json item: an image manifest and the names it carries. */
struct item {
	struct oci_digest manifest;     /* the registry's manifest */
	json_t *obj;                    /* { Config, RepoTags, Layers } */
	char top_layer[OCI_DIGEST_SHA256_HEX + 1];
};

/* What add_image() learned of one image manifest. */
struct image_info {
	struct oci_digest out_digest;   /* the manifest as archived */
	const char *out_mt;
	uint64_t out_size;
	struct export_platform plat;    /* from the config */
	json_t *config_path;
	json_t *layer_paths;
	char top_layer[OCI_DIGEST_SHA256_HEX + 1];
};

/* An image as the archive names it: REPO:TAG or REPO@DIGEST, and a NUL. */
#define EXPORT_NAME_BYTES       (OCI_NAME_MAX_BYTES + OCI_TAG_MAX_BYTES + \
	OCI_DIGEST_STR_BYTES + 2)

struct export {
	struct store *st;
	const struct export_options *o;
	struct export_platform want;
	char *why;
	size_t whysize;
	struct entry *ents;
	size_t nents, capents;
	struct item *items;
	size_t nitems;
	struct export_ref *refs;
	char (*names)[EXPORT_NAME_BYTES];       /* per ref: REPO:TAG or REPO@D */
	json_t *index;                  /* index.json's manifests array */
	json_t *manifest;               /* manifest.json */
	json_t *repos;                  /* repositories */
	struct tar_writer tw;
	uint8_t *hold;
	size_t holdlen;
	uint8_t *zout;
};

/* ---- small helpers ------------------------------------------------------ */

static void
digest_hex(const struct oci_digest *d, char out[OCI_DIGEST_SHA256_HEX + 1])
{
	char s[OCI_DIGEST_STR_BYTES];

	oci_digest_format(d, s);
	memcpy(out, s + 7, OCI_DIGEST_SHA256_HEX + 1);
}

static void
blob_name(const struct oci_digest *d, char out[ENTRY_NAME_MAX_BYTES])
{
	char hex[OCI_DIGEST_SHA256_HEX + 1];

	digest_hex(d, hex);
	snprintf(out, ENTRY_NAME_MAX_BYTES, "blobs/sha256/%s", hex);
}

static int
store_rc(struct export *x, int rc, const char *what)
{
	switch (rc) {
	case STORE_E_NOTFOUND:
		WHY("%s: not in the store", what);
		return EXPORT_E_NOTFOUND;
	case STORE_E_CORRUPT:
	case STORE_E_DIGEST:
	case STORE_E_SIZE:
		WHY("%s: corrupt in the store (%s)", what, store_strerror(rc));
		return EXPORT_E_CORRUPT;
	case STORE_E_NOMEM:
		WHY("%s: out of memory", what);
		return EXPORT_E_NOMEM;
	default:
		WHY("%s: %s", what, store_strerror(rc));
		return EXPORT_E_STORE;
	}
}

/* A streaming SHA-256, as the store's digests use (image-spec descriptor.md). */
struct hash {
	EVP_MD_CTX *ctx;
};

static int
hash_begin(struct hash *h)
{
	h->ctx = EVP_MD_CTX_new();
	if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(h->ctx);
		h->ctx = NULL;
		return EXPORT_E_NOMEM;
	}
	return 0;
}

static int
hash_update(struct hash *h, const void *p, size_t n)
{
	return EVP_DigestUpdate(h->ctx, p, n) == 1 ? 0 : EXPORT_E_NOMEM;
}

static int
hash_end(struct hash *h, struct oci_digest *out)
{
	unsigned len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	out->alg = OCI_DIGEST_SHA256;
	rc = EVP_DigestFinal_ex(h->ctx, out->hash, &len) == 1 &&
	    len == OCI_HASH_SHA256_BYTES ? 0 : EXPORT_E_NOMEM;
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
	return rc;
}

static void
hash_drop(struct hash *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

/* ---- platforms and references ------------------------------------------- */

/* uname machine names and OCI architecture aliases (containerd's table). */
static const struct {
	const char *name;
	const char *arch;
	const char *variant;
} arch_map[] = {
	{ "x86_64", "amd64", "" },
	{ "x86-64", "amd64", "" },
	{ "amd64", "amd64", "" },
	{ "aarch64", "arm64", "v8" },
	{ "arm64", "arm64", "v8" },
	{ "armv8l", "arm", "v8" },
	{ "armv7l", "arm", "v7" },
	{ "armhf", "arm", "v7" },
	{ "armv6l", "arm", "v6" },
	{ "armel", "arm", "v6" },
	{ "armv5tel", "arm", "v5" },
	{ "armv5tejl", "arm", "v5" },
	{ "i386", "386", "" },
	{ "i486", "386", "" },
	{ "i586", "386", "" },
	{ "i686", "386", "" },
	{ "ppc64le", "ppc64le", "" },
	{ "s390x", "s390x", "" },
	{ "riscv64", "riscv64", "" },
	{ "mips64", "mips64", "" },
	{ "mips64el", "mips64le", "" },
	{ "loongarch64", "loong64", "" },
};

static bool
platform_part_valid(const char *s, size_t len)
{
	if (len == 0 || len > EXPORT_PLATFORM_FIELD_MAX_BYTES)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* An architecture alias becomes its OCI name; a variant only if none given. */
static void
platform_normalize_arch(struct export_platform *p)
{
	for (size_t i = 0; i < sizeof(arch_map) / sizeof(arch_map[0]); i++) {
		if (strcmp(p->arch, arch_map[i].name) != 0 ||
		    strcmp(arch_map[i].name, arch_map[i].arch) == 0)
			continue;
		snprintf(p->arch, sizeof(p->arch), "%s", arch_map[i].arch);
		if (p->variant[0] == '\0')
			snprintf(p->variant, sizeof(p->variant), "%s",
			    arch_map[i].variant);
		return;
	}
}

int
export_platform_parse(const char *s, size_t len, struct export_platform *out)
{
	const char *part[3];
	size_t plen[3], n = 0, start = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '/')
			continue;
		if (n == 3)
			return EXPORT_E_INVALID;
		part[n] = s + start;
		plen[n] = i - start;
		if (!platform_part_valid(part[n], plen[n]))
			return EXPORT_E_INVALID;
		n++;
		start = i + 1;
	}
	if (n < 2)
		return EXPORT_E_INVALID;
	memcpy(out->os, part[0], plen[0]);
	memcpy(out->arch, part[1], plen[1]);
	if (n == 3)
		memcpy(out->variant, part[2], plen[2]);
	platform_normalize_arch(out);
	return 0;
}

int
export_platform_host(struct export_platform *out)
{
	struct utsname u;

	memset(out, 0, sizeof(*out));
	snprintf(out->os, sizeof(out->os), "linux");
	if (uname(&u) != 0)
		return EXPORT_E_UNSUPPORTED;
	for (size_t i = 0; i < sizeof(arch_map) / sizeof(arch_map[0]); i++) {
		if (strcmp(u.machine, arch_map[i].name) == 0) {
			snprintf(out->arch, sizeof(out->arch), "%s",
			    arch_map[i].arch);
			snprintf(out->variant, sizeof(out->variant), "%s",
			    arch_map[i].variant);
			return 0;
		}
	}
	snprintf(out->arch, sizeof(out->arch), "%.*s",
	    EXPORT_PLATFORM_FIELD_MAX_BYTES, u.machine);
	return EXPORT_E_UNSUPPORTED;
}

void
export_platform_format(const struct export_platform *p, char *buf,
    size_t size)
{
	snprintf(buf, size, "%s/%s%s%s", p->os[0] != '\0' ? p->os : "unknown",
	    p->arch[0] != '\0' ? p->arch : "unknown",
	    p->variant[0] != '\0' ? "/" : "", p->variant);
}

/* The variant an empty one stands for (containerd's normalization). */
static const char *
variant_default(const struct export_platform *p)
{
	if (p->variant[0] != '\0')
		return p->variant;
	if (strcmp(p->arch, "arm64") == 0)
		return "v8";
	if (strcmp(p->arch, "arm") == 0)
		return "v7";
	return "";
}

/* A want without a variant takes any variant of its architecture. */
static bool
platform_match(const struct export_platform *want,
    const struct export_platform *have)
{
	if (strcmp(want->os, have->os) != 0 ||
	    strcmp(want->arch, have->arch) != 0)
		return false;
	if (want->variant[0] == '\0')
		return true;
	return strcmp(variant_default(want), variant_default(have)) == 0;
}

int
export_ref_parse(const char *s, size_t len, struct export_ref *out)
{
	const char *at, *colon = NULL, *slash = NULL;
	size_t rlen;

	memset(out, 0, sizeof(*out));
	at = memchr(s, '@', len);
	if (at != NULL) {
		rlen = (size_t)(at - s);
		if (oci_digest_parse(at + 1, len - rlen - 1, &out->digest) != 0)
			return EXPORT_E_INVALID;
		out->by_digest = true;
	} else {
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '/')
				slash = s + i;
			else if (s[i] == ':')
				colon = s + i;
		}
		if (colon != NULL && slash != NULL && colon < slash)
			return EXPORT_E_INVALID;
		rlen = colon != NULL ? (size_t)(colon - s) : len;
		if (colon != NULL) {
			size_t tlen = len - rlen - 1;

			if (!oci_tag_valid(colon + 1, tlen))
				return EXPORT_E_INVALID;
			memcpy(out->tag, colon + 1, tlen);
		} else {
			memcpy(out->tag, "latest", 7);
		}
	}
	if (!oci_name_valid(s, rlen))
		return EXPORT_E_INVALID;
	memcpy(out->repo, s, rlen);
	out->repo[rlen] = '\0';
	return 0;
}

/* ---- the plan ----------------------------------------------------------- */

static struct entry *
entry_find(struct export *x, const char *name)
{
	for (size_t i = 0; i < x->nents; i++)
		if (strcmp(x->ents[i].name, name) == 0)
			return &x->ents[i];
	return NULL;
}

/*
 * Adds an entry unless one of that name exists (then *mem is freed: equal
 * names mean equal digests, so equal bytes). Takes ownership of mem.
 */
static int
entry_add(struct export *x, const struct entry *e)
{
	struct entry *n;

	if (entry_find(x, e->name) != NULL) {
		free(e->mem);
		return 0;
	}
	if (x->nents == x->capents) {
		size_t cap = x->capents == 0 ? 64 : x->capents * 2;

		n = realloc(x->ents, cap * sizeof(*n));
		if (n == NULL) {
			free(e->mem);
			return EXPORT_E_NOMEM;
		}
		x->ents = n;
		x->capents = cap;
	}
	x->ents[x->nents++] = *e;
	return 0;
}

/* Adds bytes held in memory under name; takes ownership of data. */
static int
entry_add_mem(struct export *x, const char *name, void *data, size_t len,
    const struct oci_digest *d, const char *image, const char *role)
{
	struct entry e = { .kind = ENT_MEM, .mem = data, .size = len,
	    .image = image, .role = role };

	snprintf(e.name, sizeof(e.name), "%s", name);
	if (d != NULL)
		e.digest = *d;
	return entry_add(x, &e);
}

static int
entry_add_dir(struct export *x, const char *name)
{
	struct entry e = { .kind = ENT_DIR };

	snprintf(e.name, sizeof(e.name), "%s", name);
	return entry_add(x, &e);
}

/* A JSON document as an entry: compact, keys in insertion order. */
static int
entry_add_json(struct export *x, const char *name, json_t *doc)
{
	char *s = json_dumps(doc, JSON_COMPACT);

	if (s == NULL)
		return EXPORT_E_NOMEM;
	return entry_add_mem(x, name, s, strlen(s), NULL, NULL, NULL);
}

/*
 * Reads a whole blob (a config) into memory, verifying its size and
 * digest. *out is malloc'd and passes to the caller.
 */
static int
blob_read_all(struct export *x, const char *repo, const struct oci_digest *d,
    uint64_t want_size, const char *image, const char *role, uint8_t **out,
    size_t *outlen)
{
	struct store_blob_reader *r = NULL;
	struct oci_digest got;
	char ds[OCI_DIGEST_STR_BYTES], what[256];
	uint8_t *buf = NULL;
	uint64_t size;
	size_t nread = 0;
	int rc;

	*out = NULL;
	*outlen = 0;
	oci_digest_format(d, ds);
	snprintf(what, sizeof(what), "%s %s of %s", role, ds, image);
	rc = store_blob_reader_open(x->st, repo, strlen(repo), d, &r);
	if (rc != 0)
		return store_rc(x, rc, what);
	size = store_blob_reader_size(r);
	if (size != want_size) {
		WHY("%s: the store holds %llu bytes, the manifest says %llu",
		    what, (unsigned long long)size,
		    (unsigned long long)want_size);
		rc = EXPORT_E_CORRUPT;
		goto out;
	}
	if (size > EXPORT_CONFIG_MAX_BYTES) {
		WHY("%s: larger than %zu bytes", what, EXPORT_CONFIG_MAX_BYTES);
		rc = EXPORT_E_UNSUPPORTED;
		goto out;
	}
	buf = malloc(size > 0 ? (size_t)size : 1);
	if (buf == NULL) {
		rc = EXPORT_E_NOMEM;
		goto out;
	}
	rc = store_blob_reader_read(r, 0, buf, (size_t)size, &nread);
	if (rc != 0) {
		rc = store_rc(x, rc, what);
		goto out;
	}
	oci_digest_sha256(buf, nread, &got);
	if (nread != size || !oci_digest_equal(&got, d)) {
		WHY("%s: stored bytes do not match the digest", what);
		rc = EXPORT_E_CORRUPT;
		goto out;
	}
	*out = buf;
	*outlen = nread;
	buf = NULL;
out:
	free(buf);
	store_blob_reader_close(r);
	return rc;
}

/* Gets a manifest's bytes and checks them against their digest. */
static int
manifest_fetch(struct export *x, const char *repo, const struct oci_digest *d,
    const char *image, void **data, size_t *len, char **mt)
{
	struct oci_digest got;
	char ds[OCI_DIGEST_STR_BYTES], what[256];
	int rc;

	oci_digest_format(d, ds);
	snprintf(what, sizeof(what), "manifest %s of %s", ds, image);
	rc = store_manifest_get(x->st, repo, strlen(repo), d, data, len, mt);
	if (rc != 0)
		return store_rc(x, rc, what);
	oci_digest_sha256(*data, *len, &got);
	if (!oci_digest_equal(&got, d)) {
		WHY("%s: stored bytes do not match the digest", what);
		free(*data);
		free(*mt);
		*data = NULL;
		*mt = NULL;
		return EXPORT_E_CORRUPT;
	}
	return 0;
}

static bool
json_str_copy(json_t *o, const char *key, char *out, size_t size)
{
	json_t *v = json_object_get(o, key);

	out[0] = '\0';
	if (v == NULL)
		return true;
	if (!json_is_string(v) || json_string_length(v) >= size)
		return false;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return true;
}

static void
platform_from_json(json_t *o, struct export_platform *p)
{
	memset(p, 0, sizeof(*p));
	if (!json_is_object(o) ||
	    !json_str_copy(o, "os", p->os, sizeof(p->os)) ||
	    !json_str_copy(o, "architecture", p->arch, sizeof(p->arch)) ||
	    !json_str_copy(o, "variant", p->variant, sizeof(p->variant)))
		memset(p, 0, sizeof(*p));
}

/* A descriptor's digest and size (image-spec descriptor.md). */
static bool
descriptor_get(json_t *d, struct oci_digest *dg, uint64_t *size,
    const char **mt)
{
	json_t *v = json_object_get(d, "digest");
	json_t *s = json_object_get(d, "size");
	json_t *m = json_object_get(d, "mediaType");

	if (!json_is_string(v) || !json_is_integer(s) ||
	    json_integer_value(s) < 0 || (m != NULL && !json_is_string(m)))
		return false;
	if (oci_digest_parse(json_string_value(v), json_string_length(v),
	    dg) != 0)
		return false;
	*size = (uint64_t)json_integer_value(s);
	*mt = m != NULL ? json_string_value(m) : "";
	return true;
}

static bool
is_index_mt(const char *mt)
{
	return strcmp(mt, OCI_MT_OCI_INDEX) == 0 ||
	    strcmp(mt, OCI_MT_DOCKER_LIST) == 0;
}

/*
 * The compression of a layer from its media type (image-spec layer.md,
 * and Docker's image manifest v2 schema 2).
 */
static int
layer_codec(const char *mt, enum codec *out)
{
	size_t n = strlen(mt);

	if (strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar.gzip") == 0 ||
	    (n > 5 && strcmp(mt + n - 5, "+gzip") == 0))
		*out = CODEC_GZIP;
	else if (strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar.zstd") == 0 ||
	    (n > 5 && strcmp(mt + n - 5, "+zstd") == 0))
		*out = CODEC_ZSTD;
	else if (strcmp(mt, MT_OCI_LAYER_TAR) == 0 ||
	    strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar") == 0)
		*out = CODEC_NONE;
	else
		return EXPORT_E_UNSUPPORTED;
	return 0;
}

static int layer_pass(struct export *x, const struct entry *e, bool write,
    uint64_t *raw_size);

/*
 * Plans one image manifest: its config and layers (as stored, or
 * decompressed with --uncompressed, then under a new manifest), and the
 * manifest itself. Fills *info.
 */
static int
add_image(struct export *x, const char *repo, const struct oci_digest *d,
    const char *image, struct image_info *info)
{
	void *data = NULL;
	char *mt = NULL, name[ENTRY_NAME_MAX_BYTES], ds[OCI_DIGEST_STR_BYTES];
	char dhex[OCI_DIGEST_STR_BYTES];
	size_t len = 0, cfglen = 0;
	uint8_t *cfg = NULL;
	json_error_t jerr;
	json_t *root = NULL, *config = NULL, *layers, *l, *diffs = NULL;
	json_t *newman = NULL, *newlayers = NULL;
	struct oci_digest cd;
	uint64_t csize;
	const char *cmt;
	size_t i;
	int rc;

	memset(info, 0, sizeof(*info));
	oci_digest_format(d, ds);
	rc = manifest_fetch(x, repo, d, image, &data, &len, &mt);
	if (rc != 0)
		return rc;
	rc = EXPORT_E_CORRUPT;
	root = json_loadb(data, len, 0, &jerr);
	layers = json_object_get(root, "layers");
	if (!json_is_object(root) || !json_is_array(layers) ||
	    !descriptor_get(json_object_get(root, "config"), &cd, &csize,
	    &cmt)) {
		WHY("manifest %s of %s: not an image manifest", ds, image);
		goto out;
	}
	rc = blob_read_all(x, repo, &cd, csize, image, "config", &cfg, &cfglen);
	if (rc != 0)
		goto out;
	rc = EXPORT_E_CORRUPT;
	config = json_loadb((const char *)cfg, cfglen, 0, &jerr);
	platform_from_json(config, &info->plat);
	diffs = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	blob_name(&cd, name);
	rc = entry_add_mem(x, name, cfg, cfglen, &cd, image, "config");
	cfg = NULL;
	if (rc != 0)
		goto out;
	info->config_path = json_string(name);
	info->layer_paths = json_array();
	if (info->config_path == NULL || info->layer_paths == NULL) {
		rc = EXPORT_E_NOMEM;
		goto out;
	}
	if (x->o->uncompressed) {
		if (!json_is_array(diffs) ||
		    json_array_size(diffs) != json_array_size(layers)) {
			WHY("%s: config %s lists %zu diff_ids for %zu layers",
			    image, name + 13, json_array_size(diffs),
			    json_array_size(layers));
			rc = EXPORT_E_CORRUPT;
			goto out;
		}
		newlayers = json_array();
		if (newlayers == NULL) {
			rc = EXPORT_E_NOMEM;
			goto out;
		}
	}
	json_array_foreach(layers, i, l) {
		struct entry e = { .image = image, .role = "layer",
		    .repo = repo };
		struct store_blob_info bi;
		const char *lmt;
		uint64_t lsize;

		if (!descriptor_get(l, &e.src, &lsize, &lmt)) {
			WHY("manifest %s of %s: layer %zu is not a descriptor",
			    ds, image, i);
			rc = EXPORT_E_CORRUPT;
			goto out;
		}
		oci_digest_format(&e.src, dhex);
		if (strstr(lmt, ".foreign.") != NULL ||
		    strstr(lmt, ".nondistributable.") != NULL) {
			WHY("layer %s of %s is foreign: the registry does not "
			    "hold it", dhex, image);
			rc = EXPORT_E_UNSUPPORTED;
			goto out;
		}
		rc = store_blob_stat(x->st, repo, strlen(repo), &e.src, &bi);
		if (rc != 0) {
			char what[256];

			snprintf(what, sizeof(what), "layer %s of %s", dhex,
			    image);
			rc = store_rc(x, rc, what);
			goto out;
		}
		if (bi.size != lsize) {
			WHY("layer %s of %s: the store holds %llu bytes, the "
			    "manifest says %llu", dhex, image,
			    (unsigned long long)bi.size,
			    (unsigned long long)lsize);
			rc = EXPORT_E_CORRUPT;
			goto out;
		}
		e.src_size = lsize;
		if (!x->o->uncompressed) {
			e.kind = ENT_BLOB;
			e.digest = e.src;
			e.size = lsize;
		} else {
			json_t *dv = json_array_get(diffs, i), *nl;
			struct entry *have;

			if (!json_is_string(dv) || oci_digest_parse(
			    json_string_value(dv), json_string_length(dv),
			    &e.digest) != 0) {
				WHY("%s: config diff_id %zu is not a digest",
				    image, i);
				rc = EXPORT_E_CORRUPT;
				goto out;
			}
			if (layer_codec(lmt, &e.codec) != 0) {
				WHY("layer %s of %s: unknown media type %s",
				    dhex, image, lmt);
				rc = EXPORT_E_UNSUPPORTED;
				goto out;
			}
			e.kind = ENT_LAYER;
			blob_name(&e.digest, e.name);
			have = entry_find(x, e.name);
			if (have != NULL && have->kind == ENT_LAYER)
				e.size = have->size;
			else if ((rc = layer_pass(x, &e, false, &e.size)) != 0)
				goto out;
			nl = json_pack("{s:s, s:o, s:I}", "mediaType",
			    MT_OCI_LAYER_TAR, "digest", json_incref(dv),
			    "size", (json_int_t)e.size);
			if (nl == NULL || json_array_append_new(newlayers,
			    nl) != 0) {
				rc = EXPORT_E_NOMEM;
				goto out;
			}
		}
		blob_name(&e.digest, e.name);
		digest_hex(&e.digest, info->top_layer);
		if (json_array_append_new(info->layer_paths,
		    json_string(e.name)) != 0) {
			rc = EXPORT_E_NOMEM;
			goto out;
		}
		rc = entry_add(x, &e);
		if (rc != 0)
			goto out;
	}
	if (x->o->uncompressed) {
		char *s;

		/* What classic docker save writes: OCI types, raw tar layers. */
		oci_digest_format(&cd, dhex);
		newman = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:O}",
		    "schemaVersion", 2, "mediaType", OCI_MT_OCI_MANIFEST,
		    "config", "mediaType", MT_OCI_CONFIG, "digest", dhex,
		    "size", (json_int_t)csize, "layers", newlayers);
		if (newman == NULL) {
			rc = EXPORT_E_NOMEM;
			goto out;
		}
		s = json_dumps(newman, JSON_COMPACT);
		if (s == NULL) {
			rc = EXPORT_E_NOMEM;
			goto out;
		}
		oci_digest_sha256(s, strlen(s), &info->out_digest);
		info->out_mt = OCI_MT_OCI_MANIFEST;
		info->out_size = strlen(s);
		blob_name(&info->out_digest, name);
		rc = entry_add_mem(x, name, s, strlen(s), &info->out_digest,
		    image, "manifest");
	} else {
		info->out_digest = *d;
		info->out_mt = is_index_mt(mt) ? NULL : (mt != NULL &&
		    strcmp(mt, OCI_MT_DOCKER_MANIFEST) == 0 ?
		    OCI_MT_DOCKER_MANIFEST : OCI_MT_OCI_MANIFEST);
		info->out_size = len;
		blob_name(d, name);
		rc = entry_add_mem(x, name, data, len, d, image, "manifest");
		data = NULL;
	}
out:
	if (rc != 0) {
		json_decref(info->config_path);
		json_decref(info->layer_paths);
		info->config_path = NULL;
		info->layer_paths = NULL;
	}
	json_decref(newman);
	json_decref(newlayers);
	json_decref(config);
	json_decref(root);
	free(cfg);
	free(data);
	free(mt);
	return rc;
}

/* Adds name to the manifest.json item of image manifest d, creating it. */
static int
item_add(struct export *x, const struct oci_digest *d,
    const struct image_info *info, const struct export_ref *ref,
    const char *name)
{
	struct item *it = NULL, *n;
	json_t *tags, *v;
	size_t i;

	for (i = 0; i < x->nitems; i++)
		if (oci_digest_equal(&x->items[i].manifest, d))
			it = &x->items[i];
	if (it == NULL) {
		n = realloc(x->items, (x->nitems + 1) * sizeof(*n));
		if (n == NULL)
			return EXPORT_E_NOMEM;
		x->items = n;
		it = &x->items[x->nitems];
		memset(it, 0, sizeof(*it));
		it->manifest = *d;
		memcpy(it->top_layer, info->top_layer, sizeof(it->top_layer));
		it->obj = json_pack("{s:O, s:[], s:O}", "Config",
		    info->config_path, "RepoTags", "Layers", info->layer_paths);
		if (it->obj == NULL || json_array_append(x->manifest,
		    it->obj) != 0) {
			json_decref(it->obj);
			return EXPORT_E_NOMEM;
		}
		x->nitems++;
	}
	if (ref->by_digest)
		return 0;
	tags = json_object_get(it->obj, "RepoTags");
	json_array_foreach(tags, i, v)
		if (strcmp(json_string_value(v), name) == 0)
			return 0;
	if (json_array_append_new(tags, json_string(name)) != 0)
		return EXPORT_E_NOMEM;
	/* repositories: the legacy {"repo": {"tag": top layer}} map. */
	v = json_object_get(x->repos, ref->repo);
	if (v == NULL) {
		v = json_object();
		if (v == NULL || json_object_set_new(x->repos, ref->repo, v) != 0)
			return EXPORT_E_NOMEM;
	}
	if (json_object_set_new(v, ref->tag, json_string(it->top_layer)) != 0)
		return EXPORT_E_NOMEM;
	return 0;
}

/* One index.json descriptor per name given, as docker save writes it. */
static int
index_add(struct export *x, const char *name, const struct export_ref *ref,
    const struct oci_digest *d, const char *mt, uint64_t size,
    const struct export_platform *plat)
{
	char ds[OCI_DIGEST_STR_BYTES];
	json_t *desc, *ann, *v;
	size_t i;

	json_array_foreach(x->index, i, v) {
		json_t *a = json_object_get(v, "annotations");

		if (strcmp(json_string_value(json_object_get(a, ANN_IMAGE_NAME)),
		    name) == 0)
			return 0;
	}
	oci_digest_format(d, ds);
	ann = ref->by_digest ? json_pack("{s:s}", ANN_IMAGE_NAME, name) :
	    json_pack("{s:s, s:s}", ANN_IMAGE_NAME, name, ANN_REF_NAME,
	    ref->tag);
	desc = json_pack("{s:s, s:s, s:I, s:o}", "mediaType", mt, "digest", ds,
	    "size", (json_int_t)size, "annotations", ann);
	if (desc != NULL && plat != NULL && plat->os[0] != '\0') {
		json_t *p = json_pack("{s:s, s:s}", "architecture", plat->arch,
		    "os", plat->os);

		if (p != NULL && plat->variant[0] != '\0')
			json_object_set_new(p, "variant",
			    json_string(plat->variant));
		json_object_set_new(desc, "platform", p);
	}
	if (desc == NULL || json_array_append_new(x->index, desc) != 0)
		return EXPORT_E_NOMEM;
	return 0;
}

static void
note(struct export *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
note(struct export *x, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (x->o->note == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	x->o->note(x->o->note_arg, line);
}

static int
stop_walk(void *arg, const char *name, size_t len)
{
	(void)arg;
	(void)name;
	(void)len;
	return 1;
}

/* Resolves one image, named as the archive names it, and plans it. */
static int
add_resolved(struct export *x, const char *name, const struct export_ref *ref)
{
	struct oci_digest top, chosen = { .alg = 0 };
	struct export_platform cplat = { .os = "" };
	struct image_info info = { .config_path = NULL };
	void *data = NULL;
	char *mt = NULL, avail[512] = "", want[128], ps[128];
	char ds[OCI_DIGEST_STR_BYTES], bname[ENTRY_NAME_MAX_BYTES];
	size_t len = 0, i;
	json_t *root = NULL, *mans, *m;
	bool found = false;
	int rc;

	if (ref->by_digest) {
		top = ref->digest;
	} else {
		rc = store_tag_get(x->st, ref->repo, strlen(ref->repo), ref->tag,
		    strlen(ref->tag), &top);
		if (rc == STORE_E_NOTFOUND) {
			rc = store_tag_list(x->st, ref->repo, strlen(ref->repo),
			    NULL, 0, 1, stop_walk, NULL);
			WHY("%s: %s", name, rc == STORE_E_NOTFOUND ?
			    "no such repository" : "no such tag");
			return EXPORT_E_NOTFOUND;
		}
		if (rc != 0)
			return store_rc(x, rc, name);
	}
	rc = manifest_fetch(x, ref->repo, &top, name, &data, &len, &mt);
	if (rc == EXPORT_E_NOTFOUND) {
		WHY("%s: no such manifest in %s", name, ref->repo);
		return rc;
	}
	if (rc != 0)
		return rc;
	oci_digest_format(&top, ds);
	export_platform_format(&x->want, want, sizeof(want));
	if (mt == NULL || !is_index_mt(mt)) {
		rc = add_image(x, ref->repo, &top, name, &info);
		if (rc != 0)
			goto out;
		export_platform_format(&info.plat, ps, sizeof(ps));
		note(x, "%s -> %s %s", name, ps, ds);
		rc = index_add(x, name, ref, &info.out_digest, info.out_mt,
		    info.out_size, &info.plat);
		if (rc == 0)
			rc = item_add(x, &top, &info, ref, name);
		goto out;
	}
	root = json_loadb(data, len, 0, NULL);
	mans = json_object_get(root, "manifests");
	if (!json_is_array(mans)) {
		WHY("%s: index %s has no manifests array", name, ds);
		rc = EXPORT_E_CORRUPT;
		goto out;
	}
	/* The first child for the platform, in index order (image-index.md). */
	json_array_foreach(mans, i, m) {
		struct export_platform p;
		struct oci_digest cd;
		uint64_t csize;
		const char *cmt;
		size_t al = strlen(avail);

		if (!descriptor_get(m, &cd, &csize, &cmt)) {
			WHY("%s: index %s: entry %zu is not a descriptor", name,
			    ds, i);
			rc = EXPORT_E_CORRUPT;
			goto out;
		}
		platform_from_json(json_object_get(m, "platform"), &p);
		if (!p.os[0] || strcmp(p.os, "unknown") == 0 || is_index_mt(cmt))
			continue;       /* attestations, nested indexes */
		export_platform_format(&p, ps, sizeof(ps));
		snprintf(avail + al, sizeof(avail) - al, "%s%s",
		    al > 0 ? ", " : "", ps);
		if (!found && platform_match(&x->want, &p)) {
			found = true;
			chosen = cd;
			cplat = p;
			if (strcmp(p.arch, "arm64") == 0 && !p.variant[0])
				snprintf(cplat.variant, sizeof(cplat.variant),
				    "v8");
		}
	}
	if (!found && !x->o->all_platforms) {
		WHY("%s: no image for %s; the index has %s", name, want,
		    avail[0] != '\0' ? avail : "none");
		rc = EXPORT_E_PLATFORM;
		goto out;
	}
	if (x->o->all_platforms) {
		json_array_foreach(mans, i, m) {
			struct image_info ci;
			struct oci_digest cd;
			uint64_t csize;
			const char *cmt;

			descriptor_get(m, &cd, &csize, &cmt);
			if (is_index_mt(cmt)) {
				oci_digest_format(&cd, ds);
				WHY("%s: nested index %s is not supported",
				    name, ds);
				rc = EXPORT_E_UNSUPPORTED;
				goto out;
			}
			rc = add_image(x, ref->repo, &cd, name, &ci);
			if (rc != 0)
				goto out;
			/* An index may list the chosen digest twice. */
			if (found && oci_digest_equal(&cd, &chosen) &&
			    info.config_path == NULL) {
				info = ci;
			} else {
				json_decref(ci.config_path);
				json_decref(ci.layer_paths);
			}
		}
		blob_name(&top, bname);
		rc = entry_add_mem(x, bname, data, len, &top, name, "index");
		data = NULL;
		if (rc != 0)
			goto out;
		rc = index_add(x, name, ref, &top, mt, len, NULL);
		if (rc != 0)
			goto out;
		if (!found) {
			note(x, "%s -> all platforms %s; no %s image for "
			    "manifest.json", name, ds, want);
			goto out;
		}
		export_platform_format(&cplat, ps, sizeof(ps));
		oci_digest_format(&chosen, ds);
		note(x, "%s -> all platforms; manifest.json: %s %s", name, ps,
		    ds);
		rc = item_add(x, &chosen, &info, ref, name);
		goto out;
	}
	rc = add_image(x, ref->repo, &chosen, name, &info);
	if (rc != 0)
		goto out;
	export_platform_format(&cplat, ps, sizeof(ps));
	oci_digest_format(&chosen, ds);
	note(x, "%s -> %s %s", name, ps, ds);
	rc = index_add(x, name, ref, &info.out_digest, info.out_mt,
	    info.out_size, &cplat);
	if (rc == 0)
		rc = item_add(x, &chosen, &info, ref, name);
out:
	json_decref(info.config_path);
	json_decref(info.layer_paths);
	json_decref(root);
	free(data);
	free(mt);
	return rc;
}

/*
 * Resolves one argument and plans everything it needs. The archive (and
 * every message) names the image by its parsed reference, REPO:TAG or
 * REPO@DIGEST: `team/app` and `team/app:latest` are one name, and a bare
 * REPO still carries its tag in RepoTags, which docker load requires.
 */
static int
add_argument(struct export *x, const struct export_ref *ref,
    char name[EXPORT_NAME_BYTES])
{
	char rds[OCI_DIGEST_STR_BYTES];

	if (ref->by_digest) {
		oci_digest_format(&ref->digest, rds);
		snprintf(name, EXPORT_NAME_BYTES, "%s@%s", ref->repo, rds);
	} else {
		snprintf(name, EXPORT_NAME_BYTES, "%s:%s", ref->repo, ref->tag);
	}
	return add_resolved(x, name, ref);
}

/* ---- writing ------------------------------------------------------------ */

/*
 * Passes bytes on to the open tar entry, keeping the last
 * EXPORT_HOLD_BYTES back until hold_flush() after verification.
 */
static int
hold_put(struct export *x, const uint8_t *p, size_t n)
{
	size_t over, from_hold;

	if (x->holdlen + n > EXPORT_HOLD_BYTES) {
		over = x->holdlen + n - EXPORT_HOLD_BYTES;
		from_hold = over < x->holdlen ? over : x->holdlen;
		if (tar_writer_data(&x->tw, x->hold, from_hold) != 0)
			return EXPORT_E_WRITE;
		memmove(x->hold, x->hold + from_hold, x->holdlen - from_hold);
		x->holdlen -= from_hold;
		over -= from_hold;
		if (tar_writer_data(&x->tw, p, over) != 0)
			return EXPORT_E_WRITE;
		p += over;
		n -= over;
	}
	memcpy(x->hold + x->holdlen, p, n);
	x->holdlen += n;
	return 0;
}

static int
hold_flush(struct export *x)
{
	int rc = tar_writer_data(&x->tw, x->hold, x->holdlen);

	x->holdlen = 0;
	return rc != 0 ? EXPORT_E_WRITE : 0;
}

static void
entry_what(const struct entry *e, char *buf, size_t size)
{
	char ds[OCI_DIGEST_STR_BYTES];

	oci_digest_format(e->kind == ENT_LAYER ? &e->src : &e->digest, ds);
	snprintf(buf, size, "%s %s of %s", e->role, ds, e->image);
}

/*
 * The next verified piece of a stored blob from offset off (one chunk at
 * most): 0 with *buf to free, or an EXPORT_E_* code with the reason set
 * (a store error, or the blob ending before its recorded size).
 */
static int
read_step(struct export *x, struct store_blob_reader *r, uint64_t off,
    const char *what, void **buf, const uint8_t **p, size_t *n)
{
	int rc;

	*buf = NULL;
	*n = 0;
	rc = store_blob_reader_take(r, off, READ_STEP_BYTES, buf, p, n);
	if (rc != 0)
		return store_rc(x, rc, what);
	if (*n == 0) {
		WHY("%s: ends early in the store", what);
		free(*buf);
		*buf = NULL;
		return EXPORT_E_CORRUPT;
	}
	return 0;
}

/* Streams a stored blob into the open entry, verifying it. */
static int
write_blob(struct export *x, const struct entry *e)
{
	struct store_blob_reader *r = NULL;
	struct hash h = { NULL };
	struct oci_digest got;
	char what[256];
	uint64_t off = 0;
	int rc;

	entry_what(e, what, sizeof(what));
	rc = store_blob_reader_open(x->st, e->repo, strlen(e->repo), &e->digest,
	    &r);
	if (rc != 0)
		return store_rc(x, rc, what);
	if (store_blob_reader_size(r) != e->size) {
		WHY("%s: its size changed in the store", what);
		rc = EXPORT_E_CORRUPT;
		goto out;
	}
	rc = hash_begin(&h);
	while (rc == 0 && off < e->size) {
		void *buf = NULL;
		const uint8_t *p;
		size_t n = 0;

		rc = read_step(x, r, off, what, &buf, &p, &n);
		if (rc != 0)
			break;
		rc = hash_update(&h, p, n);
		if (rc == 0)
			rc = hold_put(x, p, n);
		off += n;
		free(buf);
	}
	if (rc == 0) {
		rc = hash_end(&h, &got);
		if (rc == 0 && !oci_digest_equal(&got, &e->digest)) {
			WHY("%s: stored bytes do not match the digest", what);
			rc = EXPORT_E_CORRUPT;
		}
	}
	if (rc == 0)
		rc = hold_flush(x);
out:
	hash_drop(&h);
	x->holdlen = 0;
	store_blob_reader_close(r);
	return rc;
}

/*
 * Decompressed layer bytes: hashed (the diff_id), counted and, when
 * writing, passed on.
 */
struct layer_out {
	struct export *x;
	struct hash raw;
	uint64_t size;
	bool write;
};

static int
layer_emit(struct layer_out *lo, const uint8_t *p, size_t n)
{
	int rc;

	if (n == 0)
		return 0;
	lo->size += n;
	rc = hash_update(&lo->raw, p, n);
	if (rc == 0 && lo->write)
		rc = hold_put(lo->x, p, n);
	return rc;
}

/* State of one decompression; gzip members and zstd frames may repeat. */
struct inflater {
	enum codec codec;
	z_stream z;
	bool z_init;
	bool z_end;             /* the last gzip member ended */
	ZSTD_DCtx *zd;
	size_t zd_hint;         /* 0 when a zstd frame just ended */
};

static int
inflater_feed(struct inflater *in, struct layer_out *lo, const uint8_t *p,
    size_t n, uint8_t *out)
{
	int rc = 0;

	if (in->codec == CODEC_NONE)
		return layer_emit(lo, p, n);
	if (in->codec == CODEC_ZSTD) {
		ZSTD_inBuffer ib = { p, n, 0 };

		while (rc == 0 && ib.pos < ib.size) {
			ZSTD_outBuffer ob = { out, INFLATE_OUT_BYTES, 0 };
			size_t r = ZSTD_decompressStream(in->zd, &ob, &ib);

			if (ZSTD_isError(r))
				return EXPORT_E_CORRUPT;
			in->zd_hint = r;
			rc = layer_emit(lo, out, ob.pos);
		}
		/* Flush what the context still holds for this input. */
		while (rc == 0 && in->zd_hint != 0) {
			ZSTD_outBuffer ob = { out, INFLATE_OUT_BYTES, 0 };
			size_t r = ZSTD_decompressStream(in->zd, &ob, &ib);

			if (ZSTD_isError(r))
				return EXPORT_E_CORRUPT;
			in->zd_hint = r;
			rc = layer_emit(lo, out, ob.pos);
			if (ob.pos == 0)
				break;
		}
		return rc;
	}
	in->z.next_in = (Bytef *)(uintptr_t)p;
	in->z.avail_in = (uInt)n;
	while (rc == 0 && in->z.avail_in > 0) {
		int zr;

		if (in->z_end) {
			/* RFC 1952 2.2: a gzip file is a series of members. */
			if (inflateReset(&in->z) != Z_OK)
				return EXPORT_E_CORRUPT;
			in->z_end = false;
		}
		in->z.next_out = out;
		in->z.avail_out = (uInt)INFLATE_OUT_BYTES;
		zr = inflate(&in->z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
			return EXPORT_E_CORRUPT;
		rc = layer_emit(lo, out, INFLATE_OUT_BYTES - in->z.avail_out);
		if (zr == Z_STREAM_END)
			in->z_end = true;
		else if (zr == Z_BUF_ERROR && in->z.avail_out != 0)
			break;
	}
	/* Output may remain with all input consumed. */
	while (rc == 0 && !in->z_end && in->z.avail_out == 0) {
		int zr;

		in->z.next_out = out;
		in->z.avail_out = (uInt)INFLATE_OUT_BYTES;
		zr = inflate(&in->z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
			return EXPORT_E_CORRUPT;
		rc = layer_emit(lo, out, INFLATE_OUT_BYTES - in->z.avail_out);
		if (zr == Z_STREAM_END)
			in->z_end = true;
	}
	return rc;
}

/* True when the compressed stream ended cleanly. */
static bool
inflater_done(const struct inflater *in)
{
	if (in->codec == CODEC_GZIP)
		return in->z_end;
	if (in->codec == CODEC_ZSTD)
		return in->zd_hint == 0;
	return true;
}

/*
 * One pass over a stored layer: reads the compressed blob (hashing it
 * against e->src), decompresses it (hashing it against e->digest, the
 * diff_id) and, if write, passes the tar bytes to the open entry.
 * *raw_size is the decompressed length. The plan runs it once to learn
 * the size a header needs; writing runs it again, so nothing is buffered.
 */
static int
layer_pass(struct export *x, const struct entry *e, bool write,
    uint64_t *raw_size)
{
	struct store_blob_reader *r = NULL;
	struct layer_out lo = { .x = x, .write = write };
	struct inflater in = { .codec = e->codec };
	struct hash src = { NULL };
	struct oci_digest got;
	char what[256], dd[OCI_DIGEST_STR_BYTES];
	uint64_t off = 0;
	int rc;

	*raw_size = 0;
	entry_what(e, what, sizeof(what));
	oci_digest_format(&e->digest, dd);
	if (x->zout == NULL && (x->zout = malloc(INFLATE_OUT_BYTES)) == NULL)
		return EXPORT_E_NOMEM;
	rc = store_blob_reader_open(x->st, e->repo, strlen(e->repo), &e->src,
	    &r);
	if (rc != 0)
		return store_rc(x, rc, what);
	if (hash_begin(&src) != 0 || hash_begin(&lo.raw) != 0) {
		rc = EXPORT_E_NOMEM;
		goto out;
	}
	if (in.codec == CODEC_GZIP) {
		/* 16 + MAX_WBITS: gzip wrapper only (zlib manual, inflateInit2). */
		if (inflateInit2(&in.z, 16 + MAX_WBITS) != Z_OK) {
			rc = EXPORT_E_NOMEM;
			goto out;
		}
		in.z_init = true;
	} else if (in.codec == CODEC_ZSTD) {
		in.zd = ZSTD_createDCtx();
		if (in.zd == NULL) {
			rc = EXPORT_E_NOMEM;
			goto out;
		}
		in.zd_hint = 1;
	}
	while (rc == 0 && off < e->src_size) {
		void *buf = NULL;
		const uint8_t *p;
		size_t n = 0;

		rc = read_step(x, r, off, what, &buf, &p, &n);
		if (rc != 0)
			break;
		rc = hash_update(&src, p, n);
		if (rc == 0) {
			rc = inflater_feed(&in, &lo, p, n, x->zout);
			if (rc == EXPORT_E_CORRUPT)
				WHY("%s: does not decompress", what);
		}
		off += n;
		free(buf);
	}
	if (rc != 0)
		goto out;
	if (hash_end(&src, &got) != 0) {
		rc = EXPORT_E_NOMEM;
		goto out;
	}
	if (!oci_digest_equal(&got, &e->src)) {
		WHY("%s: stored bytes do not match the digest", what);
		rc = EXPORT_E_CORRUPT;
		goto out;
	}
	if (!inflater_done(&in)) {
		WHY("%s: compressed data ends early", what);
		rc = EXPORT_E_CORRUPT;
		goto out;
	}
	if (hash_end(&lo.raw, &got) != 0) {
		rc = EXPORT_E_NOMEM;
		goto out;
	}
	if (!oci_digest_equal(&got, &e->digest)) {
		WHY("%s: decompresses to a tar that does not match diff_id %s",
		    what, dd);
		rc = EXPORT_E_CORRUPT;
		goto out;
	}
	if (write && lo.size != e->size) {
		WHY("%s: decompressed size changed", what);
		rc = EXPORT_E_CORRUPT;
		goto out;
	}
	if (write)
		rc = hold_flush(x);
	*raw_size = lo.size;
out:
	hash_drop(&src);
	hash_drop(&lo.raw);
	if (in.z_init)
		inflateEnd(&in.z);
	ZSTD_freeDCtx(in.zd);
	x->holdlen = 0;
	store_blob_reader_close(r);
	return rc;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name,
	    ((const struct entry *)b)->name);
}

static int
write_entries(struct export *x)
{
	int rc = 0;

	qsort(x->ents, x->nents, sizeof(*x->ents), entry_cmp);
	for (size_t i = 0; i < x->nents && rc == 0; i++) {
		const struct entry *e = &x->ents[i];
		struct tar_entry te = {
			.name = e->name, .namelen = strlen(e->name),
			.type = e->kind == ENT_DIR ? TAR_TYPE_DIR :
			    TAR_TYPE_FILE,
			.mode = e->kind == ENT_DIR ? 0755 : 0644,
			.mtime = EXPORT_MTIME, .size = e->size,
		};
		uint64_t raw;

		rc = tar_writer_begin(&x->tw, &te);
		if (rc != 0) {
			WHY("%s: %s", e->name, tar_strerror(rc));
			return rc == TAR_E_WRITE ? EXPORT_E_WRITE :
			    EXPORT_E_UNSUPPORTED;
		}
		switch (e->kind) {
		case ENT_DIR:
			break;
		case ENT_MEM:
			if (e->mem != NULL && e->size > 0) {
				struct oci_digest got;

				/* Manifests and configs were checked when read. */
				if (e->role != NULL) {
					oci_digest_sha256(e->mem, e->size, &got);
					if (!oci_digest_equal(&got, &e->digest)) {
						WHY("%s: changed in memory",
						    e->name);
						return EXPORT_E_CORRUPT;
					}
				}
				if (tar_writer_data(&x->tw, e->mem,
				    (size_t)e->size) != 0)
					rc = EXPORT_E_WRITE;
			}
			break;
		case ENT_BLOB:
			rc = write_blob(x, e);
			break;
		case ENT_LAYER:
			rc = layer_pass(x, e, true, &raw);
			break;
		}
		if (rc == 0 && tar_writer_end(&x->tw) != 0)
			rc = EXPORT_E_WRITE;
	}
	if (rc == 0 && tar_writer_finish(&x->tw) != 0)
		rc = EXPORT_E_WRITE;
	if (rc == EXPORT_E_WRITE)
		WHY("writing the archive failed");
	return rc;
}

int
export_write(struct store *st, const struct export_options *o,
    tar_sink_fn *sink, void *sink_arg, char *why, size_t whysize)
{
	struct export xs = { .st = st, .o = o, .why = why, .whysize = whysize };
	struct export *x = &xs;
	json_t *index = NULL;
	char *layout;
	int rc = EXPORT_E_NOMEM;

	if (why != NULL && whysize > 0)
		why[0] = '\0';
	if (o->nimages == 0 || o->nimages > EXPORT_IMAGES_MAX) {
		WHY("between 1 and %d images, please", EXPORT_IMAGES_MAX);
		return EXPORT_E_INVALID;
	}
	if (o->uncompressed && o->all_platforms) {
		WHY("--uncompressed and --all-platforms do not combine");
		return EXPORT_E_INVALID;
	}
	if (o->platform != NULL)
		x->want = *o->platform;
	else
		export_platform_host(&x->want);
	tar_writer_init(&x->tw, sink, sink_arg);
	x->refs = calloc(o->nimages, sizeof(*x->refs));
	x->names = calloc(o->nimages, sizeof(*x->names));
	x->hold = malloc(EXPORT_HOLD_BYTES);
	x->index = json_array();
	x->manifest = json_array();
	x->repos = json_object();
	if (x->refs == NULL || x->names == NULL || x->hold == NULL ||
	    x->index == NULL ||
	    x->manifest == NULL || x->repos == NULL)
		goto out;
	for (size_t i = 0; i < o->nimages; i++) {
		if (export_ref_parse(o->images[i], strlen(o->images[i]),
		    &x->refs[i]) != 0) {
			WHY("%s: not REPO:TAG or REPO@DIGEST", o->images[i]);
			rc = EXPORT_E_INVALID;
			goto out;
		}
	}
	rc = entry_add_dir(x, "blobs/");
	if (rc == 0)
		rc = entry_add_dir(x, "blobs/sha256/");
	for (size_t i = 0; i < o->nimages && rc == 0; i++)
		rc = add_argument(x, &x->refs[i], x->names[i]);
	if (rc != 0)
		goto out;
	rc = EXPORT_E_NOMEM;
	index = json_pack("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType",
	    OCI_MT_OCI_INDEX, "manifests", x->index);
	if (index == NULL)
		goto out;
	layout = strdup(OCI_LAYOUT_JSON);
	if (layout == NULL)
		goto out;
	rc = entry_add_mem(x, "oci-layout", layout, strlen(layout), NULL, NULL,
	    NULL);
	if (rc == 0)
		rc = entry_add_json(x, "index.json", index);
	if (rc == 0)
		rc = entry_add_json(x, "manifest.json", x->manifest);
	if (rc == 0)
		rc = entry_add_json(x, "repositories", x->repos);
	if (rc == 0)
		rc = write_entries(x);
out:
	if (rc == EXPORT_E_NOMEM && (why == NULL || why[0] == '\0'))
		WHY("out of memory");
	for (size_t i = 0; i < x->nents; i++)
		free(x->ents[i].mem);
	free(x->ents);
	for (size_t i = 0; i < x->nitems; i++)
		json_decref(x->items[i].obj);
	free(x->items);
	free(x->refs);
	free(x->names);
	free(x->hold);
	free(x->zout);
	json_decref(index);
	json_decref(x->index);
	json_decref(x->manifest);
	json_decref(x->repos);
	return rc;
}

const char *
export_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "success";
	case EXPORT_E_INVALID:
		return "invalid argument";
	case EXPORT_E_NOTFOUND:
		return "not found";
	case EXPORT_E_PLATFORM:
		return "no image for the platform";
	case EXPORT_E_CORRUPT:
		return "corrupt data";
	case EXPORT_E_UNSUPPORTED:
		return "not supported";
	case EXPORT_E_WRITE:
		return "write failed";
	case EXPORT_E_NOMEM:
		return "out of memory";
	case EXPORT_E_STORE:
		return "store error";
	default:
		return "unknown export error";
	}
}
