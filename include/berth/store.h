/*
 * The berth store: one LMDB environment in a data folder holding blob chunks,
 * manifests, tags, repository links, referrers and upload sessions.
 *
 * Threads: one writer thread owned by the store performs every write, in
 * group commits; callers submit work and are told when it is committed
 * (asynchronously through a callback, or by waiting in the synchronous
 * wrappers). Reads run in the caller's thread in short read-only
 * transactions and see a consistent snapshot. Other processes may open the
 * same folder read-only (STORE_OPEN_READONLY) at the same time.
 *
 * Durability: an operation reported successful (blob finished, manifest put,
 * tag moved, upload flushed, delete) has been forced to disk and survives
 * kill -9 and power loss. Appended upload bytes not yet flushed may be lost,
 * but no half-written record is ever visible.
 *
 * All functions return 0 or a negative STORE_E_* code; store_strerror() names
 * it. Out-parameters are cleared on entry and filled only on success.
 */
#ifndef BERTH_STORE_H
#define BERTH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/format.h"
#include "berth/oci.h"

#define STORE_E_NOTFOUND        (-1)    /* no such blob/manifest/tag/upload/repo link */
#define STORE_E_INVALID         (-2)    /* bad argument: name, tag, digest, length */
#define STORE_E_DIGEST          (-3)    /* content does not match the expected digest */
#define STORE_E_SIZE            (-4)    /* content does not match the expected size */
#define STORE_E_CORRUPT         (-5)    /* a record failed verification */
#define STORE_E_MAP_FULL        (-6)    /* the LMDB map size is exhausted */
#define STORE_E_NOSPC           (-7)    /* the file system is full */
#define STORE_E_FORMAT_NEWER    (-8)    /* written by a newer berth */
#define STORE_E_FORMAT_OLD      (-9)    /* older format: open with STORE_OPEN_UPGRADE */
#define STORE_E_NOT_STORE       (-10)   /* the folder holds something else */
#define STORE_E_IO              (-11)   /* I/O or LMDB failure; see the log */
#define STORE_E_NOMEM           (-12)
#define STORE_E_RANGE           (-13)   /* offset past the end */
#define STORE_E_READONLY        (-14)   /* write on a read-only handle */
#define STORE_E_CLOSED          (-15)   /* the store is shutting down */
#define STORE_E_FAILED          (-16)   /* upload poisoned by an earlier error */
#define STORE_E_UNSUPPORTED     (-17)   /* digest algorithm not supported */
#define STORE_E_CONFLICT        (-18)   /* upload advanced or ended elsewhere */
#define STORE_E_BUSY            (-19)   /* upload is finishing */

#define STORE_MAP_SIZE_DEFAULT  ((uint64_t)1 << 40)     /* 1 TiB of address space */
#define STORE_ZSTD_LEVEL_DEFAULT 1
/*
 * Payload bytes a group commit may gather before it commits, unless the
 * store is opened with another figure: about one chunk, so that a push
 * holds little in memory (docs/PERFORMANCE.md has the measurements).
 */
#define STORE_BATCH_BYTES_DEFAULT ((size_t)1 << 20)
#define STORE_BATCH_BYTES_MAX   ((size_t)128 << 20)

/* store_open flags */
#define STORE_OPEN_CREATE       0x1u    /* create the folder and store if absent */
#define STORE_OPEN_READONLY     0x2u    /* no writer thread; for tools */
#define STORE_OPEN_UPGRADE      0x4u    /* upgrade an older format in place */

struct store;
struct store_upload;
struct store_blob_reader;

struct store_options {
	const char *path;       /* data folder */
	uint64_t map_size;      /* 0: STORE_MAP_SIZE_DEFAULT */
	unsigned flags;         /* STORE_OPEN_* */
	int zstd_level;         /* 0: STORE_ZSTD_LEVEL_DEFAULT */
	size_t batch_bytes;     /* 0: STORE_BATCH_BYTES_DEFAULT */
};

/* What a blob is; see format.h for the record it comes from. */
struct store_blob_info {
	struct oci_digest digest;
	uint64_t size;          /* raw bytes */
	uint64_t stored;        /* payload bytes on disk */
	uint64_t created;       /* unix seconds */
	uint32_t nchunks;
	uint32_t flags;
};

/* A reference from a manifest to another object, recorded for GC. */
struct store_ref {
	uint8_t kind;           /* FORMAT_REF_* */
	struct oci_digest digest;
	uint64_t size;
	bool external;          /* foreign layer, never pushed: not required */
};

/* A manifest to put: exact bytes plus what the caller parsed from them. */
struct store_manifest {
	struct oci_digest digest;       /* expected; verified against data */
	const char *media_type;         /* length media_type_len, no NUL needed */
	size_t media_type_len;
	const void *data;
	size_t len;
	const struct store_ref *refs;   /* config, layers, children, subject */
	size_t nrefs;
	const char *artifact_type;      /* for the referrers index; may be NULL */
	size_t artifact_type_len;
	/*
	 * Checked in the write transaction that stores the manifest: every
	 * config and layer blob (not external) is stored and in service and
	 * every child manifest is linked to the repository, else the put
	 * fails with STORE_E_NOTFOUND and writes nothing. Garbage collection
	 * deletes in its own transactions, so either it sees the manifest's
	 * refs or the put sees the blob gone: never a manifest naming
	 * nothing.
	 */
	bool require_refs;
};

/* One entry of the referrers index. Pointers valid during the callback. */
struct store_referrer {
	struct oci_digest digest;
	uint64_t size;
	const char *media_type;
	size_t media_type_len;
	const char *artifact_type;
	size_t artifact_type_len;
};

/*
 * Completion callback for asynchronous calls; runs on the writer thread.
 * It may use the upload handle, but must not free it: store_upload_free()
 * waits for the handle's callbacks to return.
 */
typedef void store_done_fn(void *arg, int rc);
/* Listing callback; name is borrowed for the call. Nonzero stops the walk. */
typedef int store_name_fn(void *arg, const char *name, size_t len);
typedef int store_referrer_fn(void *arg, const struct store_referrer *r);
typedef int store_blob_fn(void *arg, const struct store_blob_info *b);
/* Progress of long work: bytes done of total (0 if unknown). */
typedef void store_progress_fn(void *arg, uint64_t done, uint64_t total);

const char *store_strerror(int rc);

/*
 * Opens (or with STORE_OPEN_CREATE creates) the store in opts->path.
 * A store written by a newer berth is refused with STORE_E_FORMAT_NEWER; an
 * older one with STORE_E_FORMAT_OLD unless STORE_OPEN_UPGRADE is given.
 * The handle is freed by store_close().
 */
int store_open(const struct store_options *opts, struct store **out);

/* Waits for queued writes, stops the writer thread, closes LMDB. NULL ok. */
void store_close(struct store *st);

/*
 * Hands the free memory of the process's heap back to the kernel. The
 * store keeps two group commits' worth of freed heap while it writes;
 * call this once a burst of transfers is over (berthd: 2 s after the
 * last push or pull).
 */
void store_malloc_release(void);

/* Format version found on disk (after any upgrade). */
uint32_t store_format_version(const struct store *st);

/* Record counts and space, from one read snapshot. */
struct store_stats {
	uint32_t format_version;
	uint32_t page_size;
	uint64_t map_size;      /* bytes of address space reserved */
	uint64_t map_used;      /* bytes up to the last used page */
	uint64_t blobs, chunks, uploads, manifests, repos, tags, links,
	    refs, referrers;
};

int store_stats_get(struct store *st, struct store_stats *out);

/* What a readiness check needs, cheaply (one read transaction, statvfs). */
struct store_health {
	bool writable;          /* read-write and no failed commit since open */
	uint64_t map_size, map_used;
	uint64_t disk_free;     /* bytes free to unprivileged users */
};
int store_health(struct store *st, struct store_health *out);

/* Pages freed inside the file and waiting for reuse (LMDB's free list). */
int store_free_pages(struct store *st, uint64_t *out);

/* ---- uploads ----------------------------------------------------------- */

/*
 * Starts an upload bound to repository repo (validated against the OCI
 * grammar). The upload record is committed when this returns, and durable
 * from the upload's first flush or finish on (an upload a crash takes
 * before then held nothing acknowledged). The handle is freed by
 * store_upload_free(), which does not end the upload.
 */
int store_upload_new(struct store *st, const char *repo, size_t repolen,
    struct store_upload **out);

/*
 * The asynchronous form: *out is the handle at once; done(arg, rc) reports,
 * on the writer thread, whether the upload record was committed. The
 * handle may be written to before that: its operations queue behind the
 * record's, and if the record fails they fail with it.
 */
int store_upload_new_async(struct store *st, const char *repo, size_t repolen,
    struct store_upload **out, store_done_fn *done, void *arg);

/*
 * Re-opens an upload by id, e.g. after a restart, at its committed offset.
 * If another handle on the same upload commits first, this one gets
 * STORE_E_CONFLICT instead of writing over its bytes.
 */
int store_upload_resume(struct store *st,
    const uint8_t id[FORMAT_UPLOAD_ID_BYTES], struct store_upload **out);

void store_upload_free(struct store_upload *up);

/*
 * Calls fn(arg, 0) on the writer thread when the handle's last queued
 * operation has completed; returns true if none is queued now (fn is then
 * not called for the past). After fn runs, freeing the handle does not
 * wait. store_upload_busy() tells whether operations are still queued.
 */
bool store_upload_set_idle_cb(struct store_upload *up, store_done_fn *fn,
    void *arg);
bool store_upload_busy(struct store_upload *up);

/*
 * Binds the upload to another repository (validated against the OCI
 * grammar): the blob a later finish stores is linked to repo instead.
 * Waits until no operation of the handle is queued. The upload record
 * keeps the old name until the next flush or finish commits; a crash
 * before then leaves the upload under the old one. For importers that
 * learn an archive's image names only after its blobs.
 */
int store_upload_set_repo(struct store_upload *up, const char *repo,
    size_t repolen);

/* The upload id (16 bytes) and repository (not NUL-terminated). */
const uint8_t *store_upload_id(const struct store_upload *up);
const char *store_upload_repo(const struct store_upload *up, size_t *len);

/* Bytes accepted so far by store_upload_write (committed or queued). */
uint64_t store_upload_offset(const struct store_upload *up);

/*
 * Calls fn(arg, rc) on the writer thread after each operation of this
 * upload completes (a chunk committed, a flush, a finish): the moment
 * store_upload_pending() may have dropped. Set it while no operation is
 * queued; NULL removes it.
 */
void store_upload_set_commit_cb(struct store_upload *up, store_done_fn *fn,
    void *arg);

/* Bytes handed to the writer thread but not yet committed (backpressure). */
uint64_t store_upload_pending(const struct store_upload *up);

/*
 * For an upload of a blob the store already holds, when its digest is
 * known before the bytes arrive (a monolithic PUT ?digest=): later writes
 * are hashed and counted but not stored, and finish succeeds when the
 * digest (and size) match and the blob is still stored, linking it to the
 * upload's repository. Only before the first byte (STORE_E_INVALID
 * after). If the blob is deleted meanwhile, finish fails with
 * STORE_E_NOTFOUND and the client must upload again.
 */
int store_upload_verify_only(struct store_upload *up);

/*
 * Copies len bytes into the upload. Full chunks are queued to the writer
 * thread at once; this never waits for the disk. Once a chunk write has
 * failed, this and every later call on the handle return that first error:
 * the upload must be resumed (store_upload_resume) or cancelled.
 */
int store_upload_write(struct store_upload *up, const void *buf, size_t len);

/*
 * As store_upload_write, but stops right after the first full chunk it
 * queues: *taken is how many of the len bytes it copied (all of them if
 * no chunk filled up). A caller that pauses on store_upload_pending()
 * then leaves the rest where it is rather than starting the next chunk.
 */
int store_upload_write_some(struct store_upload *up, const void *buf,
    size_t len, size_t *taken);

/*
 * Commits every byte written so far, with the hash state, durably. After
 * success a restart resumes at store_upload_offset(). The async form calls
 * done(arg, rc) on the writer thread.
 */
int store_upload_flush(struct store_upload *up);
int store_upload_flush_async(struct store_upload *up, store_done_fn *done,
    void *arg);

/*
 * Ends the upload: writes any tail, checks the streamed digest against
 * *expect (STORE_E_DIGEST) and, if expect_size is not UINT64_MAX, the size
 * (STORE_E_SIZE). On a mismatch no blob is stored and the upload stays
 * open with every byte written so far committed. While a finish is queued,
 * writes and flushes return STORE_E_BUSY.
 * If the blob already exists its chunks are dropped (deduplicated). Either
 * way the blob is linked to the upload's repository and the upload record
 * is gone. The handle must still be freed.
 */
int store_upload_finish(struct store_upload *up, const struct oci_digest *expect,
    uint64_t expect_size);
int store_upload_finish_async(struct store_upload *up,
    const struct oci_digest *expect, uint64_t expect_size,
    store_done_fn *done, void *arg);

/* Deletes the upload and its chunks. The handle must still be freed. */
int store_upload_cancel(struct store_upload *up);
int store_upload_cancel_async(struct store_upload *up, store_done_fn *done,
    void *arg);

/* ---- blobs ------------------------------------------------------------- */

/*
 * Looks a blob up. With repo non-NULL the blob must also be linked to that
 * repository, else STORE_E_NOTFOUND.
 */
int store_blob_stat(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d, struct store_blob_info *out);

/*
 * Opens a reader on a blob (same repository rule as store_blob_stat).
 * Each read is its own short read transaction, so a slow reader never pins
 * old pages. Free with store_blob_reader_close().
 */
int store_blob_reader_open(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d, struct store_blob_reader **out);
uint64_t store_blob_reader_size(const struct store_blob_reader *r);

/*
 * Reads up to len bytes at offset into buf; *nread is what was read (less
 * than len only at the end of the blob). offset == size reads 0 bytes;
 * offset > size is STORE_E_RANGE. A chunk that fails its checksum or does
 * not decode is STORE_E_CORRUPT, and none of its bytes are returned.
 */
int store_blob_reader_read(struct store_blob_reader *r, uint64_t offset,
    void *buf, size_t len, size_t *nread);

/*
 * The same without a copy: reads the one chunk holding offset into a new
 * buffer that passes to the caller (*buf, release with free()). The
 * blob's bytes from offset are [*p, *p + *n): up to max of them, never
 * past the end of that chunk, so *n may be less than max anywhere; *n is
 * 0 only at the end of the blob (or for max 0). Errors as for
 * store_blob_reader_read(); *buf is NULL on error and at the end.
 */
int store_blob_reader_take(struct store_blob_reader *r, uint64_t offset,
    size_t max, void **buf, const uint8_t **p, size_t *n);
void store_blob_reader_close(struct store_blob_reader *r);

/* Links an existing blob to repo (cross-repository mount). */
int store_blob_link(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d);
/* Removes repo's link to a blob; the blob itself stays. */
int store_blob_unlink(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d);
/*
 * The asynchronous forms of the calls above and below: they check their
 * arguments (a failure is returned at once and done is not called), queue
 * the write and return 0; done(arg, rc) then runs on the writer thread
 * once the result is durable. Names are copied; a manifest's data, media
 * type and refs must stay valid until done.
 */
int store_blob_link_async(struct store *st, const char *repo,
    size_t repolen, const struct oci_digest *d, store_done_fn *done,
    void *arg);
int store_blob_unlink_async(struct store *st, const char *repo,
    size_t repolen, const struct oci_digest *d, store_done_fn *done,
    void *arg);
int store_manifest_put_async(struct store *st, const char *repo,
    size_t repolen, const struct store_manifest *m, const char *tag,
    size_t taglen, store_done_fn *done, void *arg);
int store_manifest_delete_async(struct store *st, const char *repo,
    size_t repolen, const struct oci_digest *d, store_done_fn *done,
    void *arg);
int store_tag_delete_async(struct store *st, const char *repo, size_t repolen,
    const char *tag, size_t taglen, store_done_fn *done, void *arg);

/* Deletes a blob, its chunks and every repository's link to it. */
int store_blob_delete(struct store *st, const struct oci_digest *d);

/* Calls fn for every blob in digest order, in one read snapshot. */
int store_blob_foreach(struct store *st, store_blob_fn *fn, void *arg);

/* ---- manifests and tags ------------------------------------------------ */

/*
 * Puts a manifest into repo: verifies m->digest against m->data, stores the
 * exact bytes with their media type, links them to repo, records m->refs
 * and, for a FORMAT_REF_SUBJECT ref, a referrers entry. With tag non-NULL
 * the tag is set to this manifest in the same transaction (a tag that
 * existed is moved).
 */
int store_manifest_put(struct store *st, const char *repo, size_t repolen,
    const struct store_manifest *m, const char *tag, size_t taglen);

/*
 * Gets a manifest linked to repo. *data (malloc'd, caller frees) holds the
 * exact bytes; *media_type (malloc'd, NUL-terminated, caller frees) may be
 * NULL if not wanted.
 */
int store_manifest_get(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d, void **data, size_t *len, char **media_type);

/* 0 if repo links manifest *d, STORE_E_NOTFOUND if not; reads nothing else. */
int store_manifest_exists(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d);

/*
 * Removes a manifest from repo with every tag of repo pointing at it and
 * its referrers entries. When no repository links it any more, the record
 * and its references go too.
 */
int store_manifest_delete(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d);

/* Points tag at a manifest already linked to repo (moving it if set). */
int store_tag_put(struct store *st, const char *repo, size_t repolen,
    const char *tag, size_t taglen, const struct oci_digest *d);
int store_tag_get(struct store *st, const char *repo, size_t repolen,
    const char *tag, size_t taglen, struct oci_digest *out);
/* Removes the tag only; the manifest stays. */
int store_tag_delete(struct store *st, const char *repo, size_t repolen,
    const char *tag, size_t taglen);

/*
 * Lists tags of repo in lexical order, at most n (0: no limit), starting
 * after last (NULL: from the start). STORE_E_NOTFOUND if the repository is
 * unknown.
 */
int store_tag_list(struct store *st, const char *repo, size_t repolen,
    const char *last, size_t lastlen, size_t n, store_name_fn *fn, void *arg);

/* Lists repositories in lexical order with the same paging rules. */
int store_repo_list(struct store *st, const char *last, size_t lastlen,
    size_t n, store_name_fn *fn, void *arg);

/* Lists the manifests of repo whose subject is *subject, in digest order. */
int store_referrers_list(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *subject, store_referrer_fn *fn, void *arg);

/*
 * Lists what manifest *d references (kind, digest, size), as recorded when
 * it was put. fn gets a struct store_ref per reference.
 */
typedef int store_ref_fn(void *arg, const struct store_ref *ref);
int store_refs_list(struct store *st, const struct oci_digest *d,
    store_ref_fn *fn, void *arg);

/* ---- backup ------------------------------------------------------------- */

/*
 * Writes a consistent copy of the store (one read snapshot; writers go on)
 * into the folder dest, which must not exist: dest is claimed as an empty
 * folder, the copy is made in a temporary folder beside it, forced to disk
 * and renamed over the empty one. On failure both are removed.
 * compact leaves out free pages (LMDB's MDB_CP_COMPACT). The copy is a
 * store berthd and the tools open as is. progress, if not NULL, is called
 * about 5 times a second with the bytes written so far.
 */
int store_backup(struct store *st, const char *dest, bool compact,
    store_progress_fn *progress, void *arg);

#endif /* BERTH_STORE_H */
