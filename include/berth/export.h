/*
 * Exporting images from a store as one TAR archive that is at once an OCI
 * image layout (image-spec image-layout.md: oci-layout, index.json,
 * blobs/sha256/) and a `docker save` archive (manifest.json, repositories),
 * so that docker load (old and new), podman load and skopeo all read it.
 * docs/EXPORT.md describes the archive.
 *
 * The archive is streamed through a tar_sink_fn and never buffered whole:
 * every blob is read from the store chunk by chunk and hashed with
 * SHA-256 on the way; the last EXPORT_HOLD_BYTES of each blob are passed
 * on only once the whole blob matched its digest, so a corrupt blob never
 * reaches the sink complete. The same store and arguments always give the
 * same bytes.
 *
 * All functions return 0 or a negative EXPORT_E_* code; export_strerror()
 * names it, and the functions that take why/whysize put a one-line reason
 * there (naming the image and blob concerned).
 */
#ifndef BERTH_EXPORT_H
#define BERTH_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/oci.h"
#include "berth/store.h"
#include "berth/tar.h"

#define EXPORT_E_INVALID        (-400)  /* bad reference, platform or options */
#define EXPORT_E_NOTFOUND       (-401)  /* no such repository, tag, manifest, blob */
#define EXPORT_E_PLATFORM       (-402)  /* an index has no image for the platform */
#define EXPORT_E_CORRUPT        (-403)  /* stored bytes fail their digest or size */
#define EXPORT_E_UNSUPPORTED    (-404)  /* foreign layer, nested index, codec */
#define EXPORT_E_WRITE          (-405)  /* the sink failed */
#define EXPORT_E_NOMEM          (-406)
#define EXPORT_E_STORE          (-407)  /* another store error; see why */

/* An image config is read whole into memory; larger ones are refused. */
#define EXPORT_CONFIG_MAX_BYTES ((size_t)16 << 20)
/* Images (arguments) one archive may name. */
#define EXPORT_IMAGES_MAX       4096
/* Bytes of a blob held back until its digest is verified. */
#define EXPORT_HOLD_BYTES       ((size_t)64 << 10)
/* Modification time of every entry: the epoch, as docker save uses. */
#define EXPORT_MTIME            0
#define EXPORT_PLATFORM_FIELD_MAX_BYTES 31

/* A platform as an index lists it (image-spec image-index.md). */
struct export_platform {
	char os[EXPORT_PLATFORM_FIELD_MAX_BYTES + 1];
	char arch[EXPORT_PLATFORM_FIELD_MAX_BYTES + 1];
	char variant[EXPORT_PLATFORM_FIELD_MAX_BYTES + 1];     /* may be "" */
};

/*
 * Parses "OS/ARCH[/VARIANT]" (len bytes), each part [a-z0-9._-], at most
 * EXPORT_PLATFORM_FIELD_MAX_BYTES. Architecture aliases (x86_64, aarch64)
 * become their OCI names. Returns 0 or EXPORT_E_INVALID.
 */
int export_platform_parse(const char *s, size_t len,
    struct export_platform *out);

/*
 * The running host's platform: "linux" and uname(2)'s machine mapped to an
 * OCI architecture and variant (x86_64 -> amd64, aarch64 -> arm64/v8,
 * armv7l -> arm/v7, ...). Returns 0 or EXPORT_E_UNSUPPORTED for a machine
 * the table does not know (out then holds it unmapped).
 */
int export_platform_host(struct export_platform *out);

/* Writes "os/arch" or "os/arch/variant" and a NUL into buf. */
void export_platform_format(const struct export_platform *p, char *buf,
    size_t size);

/* An image argument: REPO:TAG, REPO@DIGEST, or REPO (meaning REPO:latest). */
struct export_ref {
	char repo[OCI_NAME_MAX_BYTES + 1];
	char tag[OCI_TAG_MAX_BYTES + 1];        /* "" for a digest reference */
	bool by_digest;
	struct oci_digest digest;               /* when by_digest */
};

/* Parses an image argument of len bytes. Returns 0 or EXPORT_E_INVALID. */
int export_ref_parse(const char *s, size_t len, struct export_ref *out);

/* Receives one informational line (no newline); line is borrowed. */
typedef void export_note_fn(void *arg, const char *line);

struct export_options {
	const char *const *images;      /* NUL-terminated arguments */
	size_t nimages;                 /* 1..EXPORT_IMAGES_MAX */
	/* Which image of an index; NULL: export_platform_host(). */
	const struct export_platform *platform;
	bool all_platforms;             /* keep whole indexes */
	bool uncompressed;              /* layers decompressed, by diff_id */
	export_note_fn *note;           /* may be NULL */
	void *note_arg;
};

/*
 * Resolves every image in o against st (read-only use), then streams the
 * archive to sink. Nothing reaches the sink before every image resolved
 * and, with o->uncompressed, every layer was decompressed once and matched
 * its config's diff_id; after that a failure (a blob corrupt or deleted
 * meanwhile, the sink failing) leaves a truncated archive with no
 * end-of-archive marker, which the caller must discard.
 * Returns 0 or an EXPORT_E_* code with a one-line reason in why.
 */
int export_write(struct store *st, const struct export_options *o,
    tar_sink_fn *sink, void *sink_arg, char *why, size_t whysize);

const char *export_strerror(int rc);

#endif /* BERTH_EXPORT_H */
