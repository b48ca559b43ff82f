/*
 * OCI names, tags and digests (OCI distribution-spec 1.1, "Pulling manifests"
 * and image-spec "Digests"). Every function takes a pointer and a length;
 * none reads past the length or needs a NUL terminator.
 */
#ifndef BERTH_OCI_H
#define BERTH_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCI_E_INVALID           (-200)  /* does not match the grammar */
#define OCI_E_UNSUPPORTED       (-201)  /* valid digest, algorithm not supported */

#define OCI_HASH_SHA256_BYTES   32
#define OCI_DIGEST_SHA256_HEX   64
/* "sha256:" + 64 hex digits + NUL */
#define OCI_DIGEST_STR_BYTES    (7 + OCI_DIGEST_SHA256_HEX + 1)
#define OCI_NAME_MAX_BYTES      255
#define OCI_TAG_MAX_BYTES       128

enum oci_digest_alg {
	OCI_DIGEST_SHA256 = 1,
};

/* A parsed digest: the algorithm and the raw hash bytes. */
struct oci_digest {
	uint8_t alg;
	uint8_t hash[OCI_HASH_SHA256_BYTES];
};

/*
 * Parses "algorithm:encoded". Returns 0 and fills *out, OCI_E_UNSUPPORTED for
 * a well-formed digest of another algorithm (sha512, ...), or OCI_E_INVALID.
 * Only lowercase hex is accepted for sha256, as the image-spec requires.
 */
int oci_digest_parse(const char *s, size_t len, struct oci_digest *out);

/* Writes "sha256:<hex>" and a NUL into out. */
void oci_digest_format(const struct oci_digest *d,
    char out[OCI_DIGEST_STR_BYTES]);

/* Computes the sha256 digest of buf. */
void oci_digest_sha256(const void *buf, size_t len, struct oci_digest *out);

bool oci_digest_equal(const struct oci_digest *a, const struct oci_digest *b);

/*
 * Repository name: path components of [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
 * joined by '/', at most OCI_NAME_MAX_BYTES in all.
 */
bool oci_name_valid(const char *s, size_t len);

/* Tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}. */
bool oci_tag_valid(const char *s, size_t len);

/* ---- manifests (image-spec manifest.md, image-index.md) ---------------- */

#define OCI_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define OCI_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define OCI_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

#define OCI_MANIFEST_REFS_MAX   4096    /* descriptors one manifest may list */
#define OCI_MEDIA_TYPE_MAX_BYTES 255

enum oci_ref_kind {
	OCI_REF_CONFIG = 1,
	OCI_REF_LAYER = 2,
	OCI_REF_MANIFEST = 3,
	OCI_REF_SUBJECT = 4,
};

struct oci_ref {
	uint8_t kind;           /* enum oci_ref_kind */
	bool external;          /* foreign/non-distributable: not pushed */
	struct oci_digest digest;
	uint64_t size;
};

struct oci_manifest {
	char media_type[OCI_MEDIA_TYPE_MAX_BYTES + 1];
	char artifact_type[OCI_MEDIA_TYPE_MAX_BYTES + 1];
	bool is_index;
	struct oci_ref *refs;   /* malloc'd */
	size_t nrefs;
	bool has_subject;
	struct oci_digest subject;
};

/*
 * Parses and checks a manifest or index of len bytes, as PUT with
 * Content-Type content_type (may be NULL/empty: taken from the document).
 * Returns 0, OCI_E_INVALID with a one-line reason in why, or
 * OCI_E_UNSUPPORTED (schema 1, unknown media type). Free with
 * oci_manifest_free().
 */
int oci_manifest_parse(const void *buf, size_t len, const char *content_type,
    size_t ctlen, struct oci_manifest *out, char *why, size_t whysize);
void oci_manifest_free(struct oci_manifest *m);

#endif /* BERTH_OCI_H */
