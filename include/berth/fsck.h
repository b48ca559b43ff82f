/*
 * Checking and repairing a store (berth-fsck). The checks are the
 * invariants of docs/FORMAT.md section 6 plus what a client needs to pull
 * every image; docs/FSCK.md lists every problem id.
 *
 * store_fsck() reads: the records in one read snapshot, then every blob and
 * upload chunk by chunk in short read transactions on several threads, so
 * it can run beside berthd. A finding about a blob or upload that changed
 * while it was being read is dropped, not reported. store_fsck_repair() is
 * the one place that changes anything: each fix is its own write operation
 * and first re-checks, in its transaction, that what was found still holds.
 */
#ifndef BERTH_FSCK_H
#define BERTH_FSCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/store.h"

enum fsck_severity {
	FSCK_NOTICE,    /* housekeeping: expired uploads, quarantined blobs */
	FSCK_WARNING,   /* an image cannot be pulled whole; the store is sound */
	FSCK_ERROR,     /* a record or its bytes break an invariant */
};

enum fsck_state {
	FSCK_FOUND,     /* not repaired (no --repair, or no repair exists) */
	FSCK_REPAIRED,
	FSCK_SKIPPED,   /* the store changed since the check: run again */
	FSCK_FAILED,    /* the repair's write failed; see detail */
	FSCK_RESOLVED,  /* skipped, but gone when checked again after repair */
};

struct fsck_fix;

struct fsck_problem {
	const char *id;                 /* e.g. "chunk-corrupt"; static */
	enum fsck_severity severity;
	char *object;                   /* "blob sha256:...", "tag app:1" */
	char *detail;                   /* one line, what is wrong */
	char **images;                  /* images it affects: "repo:tag" */
	size_t nimages;
	const char *action;             /* what repair does, NULL if none */
	enum fsck_state state;
	struct fsck_fix *fix;           /* private */
};


struct fsck_options {
	unsigned jobs;                  /* hashing threads; 0: one per CPU */
	uint64_t upload_expiry;         /* seconds; 0: uploads never expire */
	store_progress_fn *progress;    /* called about 5 times a second */
	void *progress_arg;
};

struct fsck_report {
	struct fsck_problem *problems;
	size_t nproblems;
	uint64_t blobs, chunks, uploads, manifests, tags, repos, links;
	uint64_t bytes_hashed;
	double seconds;                 /* of the check */
};

#define FSCK_UPLOAD_EXPIRY_DEFAULT (24u * 3600u)

/* Checks the store; 0 with a report (free it) or STORE_E_*. */
int store_fsck(struct store *st, const struct fsck_options *o,
    struct fsck_report *out);

/*
 * Applies the fix of every problem that has one (the store must be open
 * read-write) and sets each problem's state. Returns 0 when every fix was
 * attempted (individual failures are in the states), or STORE_E_* when the
 * store could not be written at all.
 */
int store_fsck_repair(struct store *st, struct fsck_report *r);

/*
 * After a repair that skipped fixes (the store changed, often through an
 * earlier fix of the same run): checks the store again and marks each
 * skipped problem that is no longer found FSCK_RESOLVED.
 */
int store_fsck_recheck(struct store *st, const struct fsck_options *o,
    struct fsck_report *r);

void fsck_report_free(struct fsck_report *r);

const char *fsck_severity_name(enum fsck_severity s);
const char *fsck_state_name(enum fsck_state s);

#endif /* BERTH_FSCK_H */
