/*
 * berth-gc: one garbage collection of a store, beside a running berthd or
 * not (docs/GC.md). berthd also collects on its own (--gc-interval).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/gc.h"
#include "berth/store.h"
#include "util/duration.h"
#include "util/log.h"
#include "util/progress.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: berth-gc --data DIR [--dry-run] [--grace DURATION] "
	    "[--untagged] [--verbose]\n"
	    "                [--quiet]\n"
	    "  --data DIR      the store (berthd may be running on it)\n"
	    "  --dry-run       list what would be deleted, delete nothing\n"
	    "  --grace D       keep what is younger than D (default 1h; s, m, "
	    "h, d)\n"
	    "  --untagged      also delete manifests no tag, index or kept "
	    "subject keeps\n"
	    "  --verbose       print each deletion\n"
	    "  --quiet         no progress bar\n"
	    "exit: 0 done, 1 failed, 2 usage\n");
}

/* The bar is cleared before a line so that the two never share one. */
static void
on_note(void *arg, const char *line)
{
	struct progress *pr = arg;

	progress_end(pr);
	printf("berth-gc: %s\n", line);
	if (pr->on)
		fflush(stdout);
}

static void
on_progress(void *arg, uint64_t done, uint64_t total)
{
	progress_update(arg, done, total);
}

int
main(int argc, char **argv)
{
	struct store_options so = { 0 };
	struct gc_options go = { .grace = GC_GRACE_DEFAULT };
	struct gc_report r;
	struct store *st = NULL;
	struct progress pr;
	bool verbose = false, quiet = false;
	char a[16], b[16];
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--data") == 0 && v != NULL) {
			so.path = v;
			i++;
		} else if (strcmp(o, "--grace") == 0 && v != NULL) {
			if (duration_parse(v, &go.grace) != 0) {
				fprintf(stderr, "berth-gc: --grace: not a "
				    "duration (like 90s, 30m, 1h, 7d): %s\n", v);
				return 2;
			}
			i++;
		} else if (strcmp(o, "--dry-run") == 0) {
			go.dry_run = true;
		} else if (strcmp(o, "--untagged") == 0) {
			go.untagged = true;
		} else if (strcmp(o, "--verbose") == 0) {
			verbose = true;
		} else if (strcmp(o, "--quiet") == 0) {
			quiet = true;
		} else if (strcmp(o, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "berth-gc: unknown or incomplete argument: "
			    "%s\n", o);
			usage(stderr);
			return 2;
		}
	}
	if (so.path == NULL) {
		fprintf(stderr, "berth-gc: --data DIR is required\n");
		usage(stderr);
		return 2;
	}
	if (go.dry_run)
		so.flags = STORE_OPEN_READONLY;
	progress_init(&pr, go.dry_run ? "berth-gc: checking" :
	    "berth-gc: collecting", quiet);
	pr.unit = "objects";
	if (go.dry_run || verbose) {
		go.note = on_note;
		go.note_arg = &pr;
	}
	go.progress = on_progress;
	go.progress_arg = &pr;
	log_set_level(LOG_LEVEL_WARN);
	rc = store_open(&so, &st);
	if (rc != 0) {
		fprintf(stderr, "berth-gc: %s: %s\n", so.path, store_strerror(rc));
		return 1;
	}
	rc = store_gc(st, &go, &r);
	progress_end(&pr);
	store_close(st);
	if (rc != 0) {
		fprintf(stderr, "berth-gc: %s: collection failed: %s\n", so.path,
		    store_strerror(rc));
		return 1;
	}
	printf("berth-gc: %s %" PRIu64 " manifests, %" PRIu64 " blobs (%s, %s "
	    "stored) in %.1f s; %" PRIu64 " kept by the grace period, %" PRIu64
	    " changed meanwhile and kept\n", go.dry_run ? "would delete" :
	    "deleted", r.manifests, r.blobs, progress_bytes(r.bytes, a,
	    sizeof(a)), progress_bytes(r.stored, b, sizeof(b)), r.seconds,
	    r.kept_young, r.skipped);
	return 0;
}
