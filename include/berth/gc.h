/*
 * Garbage collection (berth-gc, and berthd's periodic run): removes blobs
 * no stored manifest references and, when asked, manifests that no tag,
 * index or live subject keeps, once they are older than a grace period.
 * docs/GC.md describes the rules.
 *
 * It runs while clients push: candidates come from one read snapshot, and
 * each small batch of deletions is one write operation that first checks
 * again, in its transaction, that every candidate is still garbage (not
 * referenced, not tagged, not pushed again since). A manifest put that
 * requires its references (store_manifest.require_refs, as berthd's API
 * does) checks them in its own transaction, so a push racing a
 * collection either keeps the blob or fails cleanly.
 */
#ifndef BERTH_GC_H
#define BERTH_GC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "berth/store.h"

#define GC_GRACE_DEFAULT        3600u   /* seconds */
#define GC_BATCH_MAX            64      /* deletions per write operation */
#define GC_BATCH_MAX_BYTES      ((uint64_t)1 << 30)     /* stored bytes */

/* One line per deletion (or planned deletion on a dry run). */
typedef void gc_note_fn(void *arg, const char *line);

struct gc_options {
	uint64_t grace;         /* seconds; objects younger are kept */
	bool untagged;          /* also collect unkept manifests */
	bool dry_run;           /* find and report, delete nothing */
	const atomic_int *stop; /* may be NULL; nonzero: stop between batches */
	gc_note_fn *note;       /* may be NULL */
	void *note_arg;
	/*
	 * May be NULL. Called on the caller's thread when the candidates of a
	 * phase are known and after each batch: done is the candidates
	 * handled (deleted, kept as changed meanwhile, or listed on a dry
	 * run), total the candidates found so far. total grows when a later
	 * phase (blobs after manifests, another round of referrers) finds
	 * its candidates; done never exceeds it.
	 */
	store_progress_fn *progress;
	void *progress_arg;
};

struct gc_report {
	uint64_t manifests;     /* manifest links removed (or to remove) */
	uint64_t blobs;         /* blobs deleted (or to delete) */
	uint64_t bytes;         /* their raw size */
	uint64_t stored;        /* their stored size: what is freed */
	uint64_t kept_young;    /* garbage kept by the grace period */
	uint64_t skipped;       /* changed since the snapshot, kept */
	uint64_t batches;       /* write operations */
	double seconds;
};

/* Runs one collection; 0 or STORE_E_*. The store must be read-write
 * unless o->dry_run. */
int store_gc(struct store *st, const struct gc_options *o,
    struct gc_report *out);

#endif /* BERTH_GC_H */
