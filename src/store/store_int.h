/*
 * Internals of the store shared between its files. Nothing outside
 * src/store/ includes this.
 *
 * Invariants:
 * - Only txn.c begins, commits and aborts LMDB transactions.
 * - Write transactions exist only on the writer thread, inside an op's
 *   apply(); an apply() never touches caller-visible memory, it works on
 *   writer-side state and the database; done() publishes results after the
 *   group commit is known to have succeeded (or failed).
 * - MDB_val data is borrowed until its transaction ends.
 */
#ifndef BERTH_STORE_INT_H
#define BERTH_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>
#include <zstd.h>

#include "berth/store.h"

enum store_dbi {
	DBI_META,
	DBI_BLOBS,
	DBI_CHUNKS,
	DBI_UPLOADS,
	DBI_MANIFESTS,
	DBI_REPOS,
	DBI_LINKS,
	DBI_RLINKS,
	DBI_TAGS,
	DBI_REFS,
	DBI_REFERRERS,
	DBI_COUNT
};

/* A slice chunk_probe() samples; see chunk.c. */
#define CHUNK_PROBE_SLICE_BYTES ((size_t)16 << 10)

struct store {
	char *path;             /* the data folder */
	MDB_env *env;
	int fd;                 /* LMDB's data file, for chunk_fetch() */
	const uint8_t *map;     /* LMDB's map of it, from file offset 0 */
	size_t mapsize;
	MDB_dbi dbi[DBI_COUNT];
	uint32_t version;
	unsigned flags;
	int zstd_level;
	size_t batch_bytes;     /* payload per group commit */

	/* Writer thread and its queue, guarded by lock. */
	pthread_t writer;
	bool writer_started;    /* accepting ops; cleared by the writer on exit */
	bool writer_joinable;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_op *head;
	struct store_op **tail;
	bool stopping;

	/* Writer-thread only. */
	bool broken;            /* a failed commit or sync: no more writes */
	atomic_int refusing_writes;     /* broken, readable from any thread */
	ZSTD_CCtx *cctx;
	uint8_t probe[CHUNK_PROBE_SLICE_BYTES]; /* chunk_probe()'s output */
	uint8_t *scratch;
	size_t scratch_cap;
	size_t map_bytes;       /* payload committed since chunk_unmap_all() */
	unsigned map_commits;   /* commits since chunk_unmap_all() */
};

/* A write transaction as seen by an op's apply(). */
struct store_wtxn {
	struct store *st;
	MDB_txn *txn;
	uint64_t now;           /* unix seconds, one value per group commit */
};

#define STORE_OP_DURABLE        0x1u    /* force the disk before done() */

/*
 * A unit of write work. Ops are malloc'd by their submitter with the op as
 * the first member of a larger struct; done() must end by calling
 * store_op_complete(), which notifies and frees.
 */
struct store_op {
	struct store_op *next;
	int (*apply)(struct store_wtxn *w, struct store_op *op);
	void (*done)(struct store_op *op, int rc);
	unsigned flags;
	size_t bytes;                   /* payload weight, for batching */
	int rc;                         /* apply()'s result, set by the writer */
	store_done_fn *notify;
	void *notify_arg;
};

/* ---- txn.c ------------------------------------------------------------- */

/* Maps an LMDB or errno code to STORE_E_*; logs what is not expected. */
int store_mdb_error(int rc, const char *what);

/* Starts/stops the writer thread. */
int store_writer_start(struct store *st);
void store_writer_stop(struct store *st);

/* Queues an op; on a closed store completes it with STORE_E_CLOSED. */
void store_op_submit(struct store *st, struct store_op *op);

/*
 * Waiting for an asynchronous completion from another thread:
 * init, pass store_waiter_notify and the waiter as the callback, then
 * store_waiter_wait(w, rc) with rc the submitting call's result (it only
 * waits when rc is 0) returns the completion's result and destroys w.
 */
struct store_waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool finished;
	int rc;
};
void store_waiter_init(struct store_waiter *w);
void store_waiter_notify(void *arg, int rc);
int store_waiter_wait(struct store_waiter *w, int rc);

/* Queues an op and waits for its completion; returns its result. */
int store_op_run(struct store *st, struct store_op *op);

/*
 * With done NULL, store_op_run(); else queues op to report done(arg, rc)
 * from the writer thread, and returns 0.
 */
int store_op_go(struct store *st, struct store_op *op, store_done_fn *done,
    void *arg);

/* Calls op->notify (if any) with rc, then frees op. */
void store_op_complete(struct store_op *op, int rc);

/* Default done(): just completes. */
void store_op_done_default(struct store_op *op, int rc);

/*
 * Runs fn inside one transaction on the calling thread, before the writer
 * thread exists (open only): a write transaction, committed durably, or on
 * a read-only store a read transaction, committed so that database handles
 * opened in it stay valid.
 */
int store_txn_run_now(struct store *st,
    int (*fn)(struct store_wtxn *w, void *arg), void *arg);

/* Read-only transactions, short-lived, usable from any thread. */
int store_rtxn_begin(struct store *st, MDB_txn **out);
void store_rtxn_end(MDB_txn *txn);

/* ---- chunk.c ----------------------------------------------------------- */

struct chunk_hdr {
	uint32_t raw_len;
	uint32_t stored_len;
	uint8_t codec;
	uint64_t checksum;
};

/*
 * Parses and verifies an encoded chunk (header and checksum) of vlen bytes.
 * Returns STORE_E_CORRUPT if anything is off; the bytes are untrusted.
 */
int chunk_verify(const void *val, size_t vlen, size_t raw_max,
    struct chunk_hdr *out);

/*
 * Copies an encoded chunk (a value of "chunks" found in a live read
 * transaction) into dst, which holds v->mv_size bytes. Large values are
 * read from the data file with pread rather than through the map, so a
 * download does not leave the blob's pages mapped into the process (they
 * stay in the page cache, where they belong, not in berthd's resident
 * size). Nothing is verified: pass the copy to chunk_verify().
 */
int chunk_fetch(struct store *st, const MDB_val *v, void *dst);

/*
 * Drops the process's mapping of every page of the map. A commit reads
 * B-tree pages through the map, and the kernel maps the cached pages
 * around each (chunk data, mostly) with it; without this the resident
 * size grows by megabytes per commit. The page cache keeps the pages;
 * the next access maps them again.
 */
void chunk_unmap_all(const struct store *st);

/* Drops the process's mapping of one large value's pages (v found in the
 * map); smaller values and values outside the map are left alone. */
void chunk_unmap(const struct store *st, const MDB_val *v);

/*
 * Decodes a verified chunk into out (capacity outcap >= h->raw_len).
 * STORE_E_CORRUPT if the payload does not decode to exactly raw_len bytes.
 */
int chunk_decode(const void *val, const struct chunk_hdr *h, ZSTD_DCtx *dctx,
    void *out, size_t outcap);

/*
 * Encodes raw bytes as a chunk into the writer's scratch buffer, compressed
 * when compress is true and zstd saves enough. *enc is valid until the next
 * call on this store's writer thread.
 */
int chunk_encode(struct store *st, const void *raw, size_t len, bool compress,
    const uint8_t **enc, size_t *enclen);

/*
 * Frees the writer's compression context and scratch buffer (made again
 * when next needed); writer thread only.
 */
void chunk_release(struct store *st);

/* Encodes and stores one chunk of set at raw offset off. */
int chunk_put(struct store_wtxn *w, uint64_t set, uint64_t off,
    const void *raw, size_t len, bool compress, size_t *stored);

/* Deletes every chunk of a set. */
int chunk_set_delete(struct store_wtxn *w, uint64_t set);

void chunk_key(uint8_t key[FORMAT_CHUNK_KEY_BYTES], uint64_t set, uint64_t off);

/* True if data starts like gzip or zstd output. */
bool chunk_is_compressed_stream(const void *data, size_t len);

/* ---- keys.c ------------------------------------------------------------ */

#define STORE_KEY_MAX_BYTES 511         /* LMDB's default maximum key size */

void digest_key(uint8_t key[FORMAT_DIGEST_KEY_BYTES], const struct oci_digest *d);
int digest_from_key(const uint8_t *key, size_t len, struct oci_digest *d);

/* Validates repo and writes repo, 0x00 into key; returns the length or <0. */
int repo_prefix(uint8_t *key, const char *repo, size_t repolen);

/* Link records (both directions) and the repos record. */
int link_put(struct store_wtxn *w, const char *repo, size_t repolen,
    uint8_t kind, const struct oci_digest *d);
int link_del(struct store_wtxn *w, const char *repo, size_t repolen,
    uint8_t kind, const struct oci_digest *d);
int link_exists(struct store *st, MDB_txn *txn, const char *repo,
    size_t repolen, uint8_t kind, const struct oci_digest *d);
/* Deletes every link of (kind, d) in every repository. */
int link_del_all(struct store_wtxn *w, uint8_t kind, const struct oci_digest *d);
/* 1 if any repository links (kind, d), 0 if none, <0 on error. */
int link_any(struct store *st, MDB_txn *txn, uint8_t kind,
    const struct oci_digest *d);

/* ---- record.c: decoders of untrusted record values ------------------- */

struct upload_rec {
	uint64_t set, offset, created, updated, stored;
	uint32_t flags, nchunks;
	uint32_t sha_buffered;          /* bytes in the hash's partial block */
	const uint8_t *sha_state;       /* FORMAT_SHA256_STATE_BYTES, borrowed */
	const char *repo;               /* borrowed, not NUL-terminated */
	size_t repolen;
};

struct manifest_rec {
	uint64_t created;
	const char *media_type;         /* borrowed */
	size_t media_type_len;
	const uint8_t *chunk;           /* encoded chunk, borrowed */
	size_t chunk_len;
};

/* Each returns 0 or STORE_E_CORRUPT; pointers borrow from val. */
int record_blob_decode(const void *val, size_t len,
    struct store_blob_info *info, uint64_t *set);
int record_upload_decode(const void *val, size_t len, struct upload_rec *out);
int record_manifest_decode(const void *val, size_t len,
    struct manifest_rec *out);
int record_tag_decode(const void *val, size_t len, struct oci_digest *d,
    uint64_t *updated);
/* r->digest is left zero: it lives in the key. */
int record_referrer_decode(const void *val, size_t len,
    struct store_referrer *r);

/* ---- blob.c ------------------------------------------------------------ */

int blob_get(struct store *st, MDB_txn *txn, const struct oci_digest *d,
    struct store_blob_info *info, uint64_t *set);
/* Deletes blob d: its chunks, every repository's link, the record. */
int blob_remove(struct store_wtxn *w, const struct oci_digest *d);
/* Writes the blobs record of b->digest pointing at set. */
int blob_put(struct store_wtxn *w, const struct store_blob_info *b,
    uint64_t set);

/* ---- manifest.c -------------------------------------------------------- */

/*
 * Removes repo's link to manifest d with the tags of repo naming it and
 * its referrers entries in repo; when no repository links it any more,
 * also its refs and record (manifest_drop). STORE_E_NOTFOUND if repo does
 * not link it.
 */
int manifest_unlink(struct store_wtxn *w, const char *repo, size_t repolen,
    const struct oci_digest *d);
/*
 * 1 if any repository links manifest d (by a links record or its mirror),
 * 0 if none, or STORE_E_*.
 */
int manifest_linked_anywhere(struct store_wtxn *w, const struct oci_digest *d);
/* Deletes the refs and the record of manifest d; a missing record is ok. */
int manifest_drop(struct store_wtxn *w, const struct oci_digest *d);

/* ---- upload.c ---------------------------------------------------------- */

struct SHA256state_st;
/* Serializes a SHA-256 state as an upload record holds it (format.h). */
void upload_sha_state_encode(uint8_t *p, const struct SHA256state_st *c);

/* ---- env.c ------------------------------------------------------------- */

uint64_t store_now(void);

/* Tunes glibc malloc for chunk-sized allocations; once per process. */
void store_malloc_tune(size_t batch_bytes);
/* Gives back the free top of the calling thread's arena, then trims. */
void store_malloc_release_arena(void);

#endif /* BERTH_STORE_INT_H */
