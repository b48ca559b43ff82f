/*
 * berth-stat: opens a store (creating it with --init) and prints its format
 * version, record counts and space use. Read-only unless --init is given,
 * so it is safe beside a running berthd.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/store.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: berth-stat --data DIR [--init]\n"
	    "  --data DIR   the store's data folder\n"
	    "  --init       create the store if it does not exist\n");
}

int
main(int argc, char **argv)
{
	struct store_options opts = { .flags = STORE_OPEN_READONLY };
	struct store_stats s;
	struct store *st = NULL;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
			opts.path = argv[++i];
		} else if (strcmp(argv[i], "--init") == 0) {
			opts.flags = STORE_OPEN_CREATE;
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "berth-stat: unknown argument: %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (opts.path == NULL) {
		usage(stderr);
		return 2;
	}
	rc = store_open(&opts, &st);
	if (rc != 0) {
		fprintf(stderr, "berth-stat: %s: %s\n", opts.path, store_strerror(rc));
		return 1;
	}
	rc = store_stats_get(st, &s);
	if (rc != 0) {
		fprintf(stderr, "berth-stat: %s: %s\n", opts.path, store_strerror(rc));
		store_close(st);
		return 1;
	}
	printf("path\t%s\nformat\t%" PRIu32 "\npage_size\t%" PRIu32 "\n"
	    "map_size\t%" PRIu64 "\nmap_used\t%" PRIu64 "\nblobs\t%" PRIu64 "\n"
	    "chunks\t%" PRIu64 "\nuploads\t%" PRIu64 "\nmanifests\t%" PRIu64 "\n"
	    "repositories\t%" PRIu64 "\ntags\t%" PRIu64 "\nlinks\t%" PRIu64 "\n"
	    "refs\t%" PRIu64 "\nreferrers\t%" PRIu64 "\n",
	    opts.path, s.format_version, s.page_size, s.map_size, s.map_used,
	    s.blobs, s.chunks, s.uploads, s.manifests, s.repos, s.tags, s.links,
	    s.refs, s.referrers);
	store_close(st);
	return 0;
}
