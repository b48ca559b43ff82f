/*
 * Importing image archives into a store: `docker save` archives (the
 * classic layout with <id>/layer.tar, <id>.json configs and manifest.json,
 * and the OCI layout Docker 25 and later write) and OCI image layout
 * archives (oci-layout, index.json, blobs/sha256/). docs/IMPORT.md
 * describes what is accepted and how images are named.
 *
 * This works on the store directly, as an administrator's tool: blobs an
 * archive names that the store already holds (in any repository) are
 * linked into the target repository, and no access rules are checked.
 *
 * An archive is read once, as a stream (it may come from a pipe): every
 * regular file other than the layout's own JSON documents is hashed on
 * the way and either kept in memory (at most IMPORT_SMALL_MAX_BYTES) or
 * streamed into a store upload; JSON documents, and blobs that may be
 * manifests or configs (at most IMPORT_JSON_MAX_BYTES, starting with
 * '{'), are also kept in memory. References are resolved only once
 * the whole archive is read. Nothing becomes visible before every digest
 * is verified and every referenced blob is present (in the archive or
 * already in the store): then uploads are finished (the store checks each
 * digest again), small blobs uploaded, blobs linked, manifests put
 * (children before indexes) and tags set last. On any failure before the
 * commit every open upload is cancelled.
 *
 * All functions return 0 or a negative IMPORT_E_* code; import_strerror()
 * names it, and the functions that take why/whysize put a one-line reason
 * there, naming the entry, blob or image concerned.
 */
#ifndef BERTH_IMPORT_H
#define BERTH_IMPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/oci.h"
#include "berth/store.h"
#include "berth/tar.h"

#define IMPORT_E_INVALID        (-500)  /* bad options */
#define IMPORT_E_ARCHIVE        (-501)  /* the archive is refused; see why */
#define IMPORT_E_STORE          (-502)  /* a store operation failed */
#define IMPORT_E_NOMEM          (-503)
#define IMPORT_E_READ           (-504)  /* the source failed or was interrupted */

/* index.json, manifest.json, configs, manifests: berthd's manifest limit. */
#define IMPORT_JSON_MAX_BYTES   ((size_t)4 << 20)
/* Nesting of arrays and objects in any JSON document read. */
#define IMPORT_JSON_DEPTH_MAX   64
/*
 * Everything an import holds in memory together: JSON documents, small
 * files, generated manifests, and the plan (parsed references, the blobs
 * and manifests to link into each repository).
 */
#define IMPORT_MEMORY_MAX_BYTES ((size_t)256 << 20)
/*
 * Regular files of at most this size are kept in memory instead of being
 * uploaded while the archive is read (while the memory limit allows); the
 * ones the plan needs are uploaded at commit time.
 */
#define IMPORT_SMALL_MAX_BYTES  ((size_t)64 << 10)
/*
 * Work units planning may spend on one archive: each reference of each
 * distinct manifest parsed, each layer of a manifest.json item, and each
 * blob, child manifest and manifest planned into each repository (about
 * one store operation at commit time each).
 */
#define IMPORT_PLAN_REFS_MAX    65536
/* JSON bytes parsed while planning (configs are parsed once per item). */
#define IMPORT_PLAN_PARSE_MAX_BYTES ((size_t)512 << 20)
/* Regular files one archive may hold (each is an upload). */
#define IMPORT_FILES_MAX        20000
/* Images (index.json descriptors, manifest.json items) per archive. */
#define IMPORT_IMAGES_MAX       4096
/* Index -> manifest nesting followed. */
#define IMPORT_NESTING_MAX      4
/* Upload bytes queued to the store before a flush waits for the disk. */
#define IMPORT_PENDING_MAX_BYTES ((uint64_t)64 << 20)
/* Repository uploads are bound to until the archive names the image. */
#define IMPORT_STAGING_REPO     "berth-import"

/* A name mapped to the store: repository and, if the name had one, tag. */
struct import_name {
	char repo[OCI_NAME_MAX_BYTES + 1];
	char tag[OCI_TAG_MAX_BYTES + 1];        /* "" for none */
};

/*
 * Maps an image name as archives carry it (`docker.io/library/alpine:3`,
 * `localhost/app:1`, `team/app`, `team/app@sha256:...`) to a repository
 * and tag of the store: a digest suffix is dropped, a first path
 * component that names a registry host (contains '.' or ':', or is
 * `localhost`) is dropped, and prefix (may be NULL) is prepended with a
 * '/'. Returns 0 or IMPORT_E_ARCHIVE if the result is not a valid
 * repository name and tag.
 */
int import_name_map(const char *s, size_t len, const char *prefix,
    struct import_name *out);

/* One imported image: name is "repo:tag" or "repo@sha256:..." (borrowed). */
typedef void import_image_fn(void *arg, const char *name,
    const struct oci_digest *d);

struct import_options {
	const char *repo_prefix;        /* prepended to every repository; NULL */
	/*
	 * Repository for images the archive names by tag only (an OCI
	 * layout's ref.name "v1") or not at all; NULL: such images are
	 * refused.
	 */
	const char *repo;
	import_image_fn *image;         /* called per image imported; may be NULL */
	void *image_arg;
	store_progress_fn *progress;    /* archive bytes read; may be NULL */
	void *progress_arg;
	/*
	 * May be NULL. Checked between entries, after the read and before
	 * the commit: once nonzero the import stops with IMPORT_E_READ and
	 * commits nothing. A commit that has started runs to its end.
	 */
	const atomic_int *stop;
};

/*
 * Reads one archive from src and imports it into st (opened read-write).
 * Returns 0, or an IMPORT_E_* code with a one-line reason in why:
 * IMPORT_E_READ when src failed or o->stop was set (the caller holds the
 * source's errno). On failure before the commit phase the store is as it
 * was (uploads that were started are cancelled). docs/IMPORT.md says what a failure during
 * the commit phase, or a crash, can leave.
 */
int import_archive(struct store *st, const struct import_options *o,
    tar_source_fn *src, void *src_arg, char *why, size_t whysize);

const char *import_strerror(int rc);

#endif /* BERTH_IMPORT_H */
