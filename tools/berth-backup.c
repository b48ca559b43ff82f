/*
 * berth-backup: a consistent copy of a store while berthd serves it.
 * Restoring is starting berthd (or any tool) on the copy.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "berth/fsck.h"
#include "berth/store.h"
#include "util/log.h"
#include "util/progress.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: berth-backup --data DIR [--compact] [--verify] [--quiet] DEST\n"
	    "  --data DIR  the store to copy (berthd may be running on it)\n"
	    "  --compact   leave out free pages: a smaller copy, slower to make\n"
	    "  --verify    check the copy with berth-fsck's checks afterwards\n"
	    "  --quiet     no progress bar\n"
	    "  DEST        a folder that must not exist yet; it becomes the copy\n"
	    "exit: 0 copied (and verified), 1 failed, 2 usage\n");
}

static void
on_progress(void *arg, uint64_t done, uint64_t total)
{
	/* The total is the source's size; a compact copy stops short of it. */
	progress_update(arg, done, done <= total ? total : 0);
}

/* Runs the fsck checks on the copy; 0 if it has no error. */
static int
verify(const char *dest, bool quiet)
{
	struct store_options so = { .path = dest, .flags = STORE_OPEN_READONLY };
	struct fsck_options fo = { .upload_expiry = 0 };
	struct fsck_report r;
	struct progress pr;
	struct store *st = NULL;
	size_t errors = 0;
	int rc;

	rc = store_open(&so, &st);
	if (rc != 0) {
		fprintf(stderr, "berth-backup: %s: the copy does not open: %s\n",
		    dest, store_strerror(rc));
		return -1;
	}
	progress_init(&pr, "berth-backup: verifying", quiet);
	fo.progress = on_progress;
	fo.progress_arg = &pr;
	rc = store_fsck(st, &fo, &r);
	progress_end(&pr);
	store_close(st);
	if (rc != 0) {
		fprintf(stderr, "berth-backup: %s: check failed: %s\n", dest,
		    store_strerror(rc));
		return -1;
	}
	for (size_t i = 0; i < r.nproblems; i++) {
		if (r.problems[i].severity != FSCK_ERROR)
			continue;
		errors++;
		fprintf(stderr, "berth-backup: %s: %s: %s: %s\n", dest,
		    r.problems[i].id, r.problems[i].object, r.problems[i].detail);
	}
	printf("berth-backup: verified %s: %" PRIu64 " blobs, %" PRIu64
	    " manifests, %" PRIu64 " tags, %zu errors\n", dest, r.blobs,
	    r.manifests, r.tags, errors);
	fsck_report_free(&r);
	return errors == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct store_options so = { .flags = STORE_OPEN_READONLY };
	struct store *st = NULL;
	struct progress pr;
	const char *dest = NULL;
	bool compact = false, check = false, quiet = false;
	char sz[16], file[4096];
	struct stat sb;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
			so.path = argv[++i];
		} else if (strcmp(argv[i], "--compact") == 0) {
			compact = true;
		} else if (strcmp(argv[i], "--verify") == 0) {
			check = true;
		} else if (strcmp(argv[i], "--quiet") == 0) {
			quiet = true;
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] != '-' && dest == NULL) {
			dest = argv[i];
		} else {
			fprintf(stderr, "berth-backup: unknown or extra argument: "
			    "%s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (so.path == NULL || dest == NULL) {
		fprintf(stderr, "berth-backup: --data DIR and DEST are required\n");
		usage(stderr);
		return 2;
	}
	log_set_level(LOG_LEVEL_WARN);
	rc = store_open(&so, &st);
	if (rc != 0) {
		fprintf(stderr, "berth-backup: %s: %s\n", so.path,
		    store_strerror(rc));
		return 1;
	}
	if (lstat(dest, &sb) == 0) {
		fprintf(stderr, "berth-backup: %s: already exists (the copy goes "
		    "into a new folder)\n", dest);
		store_close(st);
		return 1;
	}
	progress_init(&pr, "berth-backup: copying", quiet);
	rc = store_backup(st, dest, compact, on_progress, &pr);
	progress_end(&pr);
	store_close(st);
	if (rc != 0) {
		fprintf(stderr, "berth-backup: copying %s to %s failed: %s\n",
		    so.path, dest, store_strerror(rc));
		return 1;
	}
	snprintf(file, sizeof(file), "%s/data.mdb", dest);
	printf("berth-backup: %s copied to %s (%s%s)\n", so.path, dest,
	    progress_bytes(stat(file, &sb) == 0 ? (uint64_t)sb.st_size : 0, sz,
	    sizeof(sz)), compact ? ", compacted" : "");
	if (check && verify(dest, quiet) != 0)
		return 1;
	return 0;
}
