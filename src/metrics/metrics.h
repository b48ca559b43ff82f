/*
 * Counters for Prometheus (GET /metrics on berthd's --metrics-listen):
 * requests by route and status, latency histograms by route, bytes in and
 * out, garbage collection. Updated from the event loop and the collection
 * thread with atomics; read by the renderer, which adds the store's own
 * figures (counts, stored bytes, map use) at scrape time.
 */
#ifndef BERTH_METRICS_H
#define BERTH_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "berth/store.h"

/* Routes, as labels; an index into the tables below. */
enum metrics_route {
	MR_OTHER,       /* not an API path */
	MR_BASE,        /* /v2/ */
	MR_CATALOG,
	MR_TAGS,
	MR_MANIFEST,
	MR_BLOB,
	MR_UPLOAD,      /* start, chunks, finish */
	MR_REFERRERS,
	MR_TOKEN,
	MR_HEALTH,
	MR_COUNT
};

void metrics_request(enum metrics_route route, int status, uint64_t bytes_in,
    uint64_t bytes_out, double seconds);
void metrics_gc_run(uint64_t blobs, uint64_t manifests, uint64_t stored);
void metrics_set_uploads(uint64_t n);

/*
 * The whole exposition (text format 0.0.4) as a malloc'd string, with
 * the store's figures read now. NULL without memory.
 */
char *metrics_render(struct store *st, size_t *len);

#endif /* BERTH_METRICS_H */
