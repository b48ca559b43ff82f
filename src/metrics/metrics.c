#include "config.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

#define STATUS_SLOTS    600     /* status codes 0..599 */

static const char *const route_names[MR_COUNT] = {
	"other", "base", "catalog", "tags", "manifest", "blob", "upload",
	"referrers", "token", "health",
};

/* Upper bounds of the latency buckets, seconds; +Inf is the count. */
static const double buckets[] = {
	0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static atomic_uint_fast64_t requests[MR_COUNT][STATUS_SLOTS];
static atomic_uint_fast64_t latency[MR_COUNT][NBUCKETS];
static atomic_uint_fast64_t latency_count[MR_COUNT];
static atomic_uint_fast64_t latency_micros[MR_COUNT];
static atomic_uint_fast64_t bytes_in_total, bytes_out_total;
static atomic_uint_fast64_t gc_runs, gc_blobs, gc_manifests, gc_stored;
static atomic_uint_fast64_t uploads_open;

void
metrics_request(enum metrics_route route, int status, uint64_t bytes_in,
    uint64_t bytes_out, double seconds)
{
	if ((unsigned)route >= MR_COUNT)
		route = MR_OTHER;
	if (status < 0 || status >= STATUS_SLOTS)
		status = 0;
	atomic_fetch_add(&requests[route][status], 1);
	for (size_t i = 0; i < NBUCKETS; i++)
		if (seconds <= buckets[i])
			atomic_fetch_add(&latency[route][i], 1);
	atomic_fetch_add(&latency_count[route], 1);
	atomic_fetch_add(&latency_micros[route], (uint64_t)(seconds * 1e6));
	atomic_fetch_add(&bytes_in_total, bytes_in);
	atomic_fetch_add(&bytes_out_total, bytes_out);
}

void
metrics_gc_run(uint64_t blobs, uint64_t manifests, uint64_t stored)
{
	atomic_fetch_add(&gc_runs, 1);
	atomic_fetch_add(&gc_blobs, blobs);
	atomic_fetch_add(&gc_manifests, manifests);
	atomic_fetch_add(&gc_stored, stored);
}

void
metrics_set_uploads(uint64_t n)
{
	atomic_store(&uploads_open, n);
}

struct out {
	char *p;
	size_t len, cap;
	int failed;
};

static void out_add(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
out_add(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = 1;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		{
			size_t cap = o->cap * 2 + (size_t)n;
			char *np = realloc(o->p, cap);

			if (np == NULL) {
				o->failed = 1;
				return;
			}
			o->p = np;
			o->cap = cap;
		}
	}
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	out_add(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct blob_sums {
	uint64_t raw, stored;
};

static int
blob_sum(void *arg, const struct store_blob_info *b)
{
	struct blob_sums *s = arg;

	s->raw += b->size;
	s->stored += b->stored;
	return 0;
}

char *
metrics_render(struct store *st, size_t *len)
{
	struct out o = { .cap = 16384 };
	struct store_stats ss;
	struct blob_sums bs = { 0, 0 };
	uint64_t free_pages = 0;

	o.p = malloc(o.cap);
	if (o.p == NULL)
		return NULL;
	o.p[0] = '\0';
	family(&o, "berth_http_requests_total", "counter",
	    "Requests answered, by route and status.");
	for (int r = 0; r < MR_COUNT; r++)
		for (int s = 0; s < STATUS_SLOTS; s++) {
			uint64_t v = atomic_load(&requests[r][s]);

			if (v > 0)
				out_add(&o, "berth_http_requests_total{route=\"%s\","
				    "status=\"%d\"} %llu\n", route_names[r], s,
				    (unsigned long long)v);
		}
	family(&o, "berth_http_request_duration_seconds", "histogram",
	    "Time from a request's head to the end of its answer, by route.");
	for (int r = 0; r < MR_COUNT; r++) {
		uint64_t n = atomic_load(&latency_count[r]);

		if (n == 0)
			continue;
		for (size_t i = 0; i < NBUCKETS; i++)
			out_add(&o, "berth_http_request_duration_seconds_bucket{"
			    "route=\"%s\",le=\"%g\"} %llu\n", route_names[r],
			    buckets[i], (unsigned long long)atomic_load(
			    &latency[r][i]));
		out_add(&o, "berth_http_request_duration_seconds_bucket{route="
		    "\"%s\",le=\"+Inf\"} %llu\n", route_names[r],
		    (unsigned long long)n);
		out_add(&o, "berth_http_request_duration_seconds_sum{route="
		    "\"%s\"} %.6f\n", route_names[r],
		    (double)atomic_load(&latency_micros[r]) / 1e6);
		out_add(&o, "berth_http_request_duration_seconds_count{route="
		    "\"%s\"} %llu\n", route_names[r], (unsigned long long)n);
	}
	family(&o, "berth_http_received_bytes_total", "counter",
	    "Request body bytes read.");
	out_add(&o, "berth_http_received_bytes_total %llu\n",
	    (unsigned long long)atomic_load(&bytes_in_total));
	family(&o, "berth_http_sent_bytes_total", "counter",
	    "Response bytes written.");
	out_add(&o, "berth_http_sent_bytes_total %llu\n",
	    (unsigned long long)atomic_load(&bytes_out_total));
	family(&o, "berth_uploads_open", "gauge", "Upload sessions open.");
	out_add(&o, "berth_uploads_open %llu\n",
	    (unsigned long long)atomic_load(&uploads_open));
	family(&o, "berth_gc_runs_total", "counter", "Garbage collections run.");
	out_add(&o, "berth_gc_runs_total %llu\n",
	    (unsigned long long)atomic_load(&gc_runs));
	family(&o, "berth_gc_deleted_blobs_total", "counter",
	    "Blobs deleted by garbage collection.");
	out_add(&o, "berth_gc_deleted_blobs_total %llu\n",
	    (unsigned long long)atomic_load(&gc_blobs));
	family(&o, "berth_gc_deleted_manifests_total", "counter",
	    "Manifest links removed by garbage collection.");
	out_add(&o, "berth_gc_deleted_manifests_total %llu\n",
	    (unsigned long long)atomic_load(&gc_manifests));
	family(&o, "berth_gc_reclaimed_bytes_total", "counter",
	    "Stored bytes freed by garbage collection.");
	out_add(&o, "berth_gc_reclaimed_bytes_total %llu\n",
	    (unsigned long long)atomic_load(&gc_stored));
	if (store_stats_get(st, &ss) == 0) {
		static const struct {
			const char *name;
			size_t off;
		} counts[] = {
			{ "blobs", offsetof(struct store_stats, blobs) },
			{ "manifests", offsetof(struct store_stats, manifests) },
			{ "repositories", offsetof(struct store_stats, repos) },
			{ "tags", offsetof(struct store_stats, tags) },
			{ "uploads", offsetof(struct store_stats, uploads) },
		};

		family(&o, "berth_store_objects", "gauge",
		    "Records in the store, by kind.");
		for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
			out_add(&o, "berth_store_objects{kind=\"%s\"} %llu\n",
			    counts[i].name, (unsigned long long)
			    *(const uint64_t *)((const char *)&ss + counts[i].off));
		family(&o, "berth_store_map_size_bytes", "gauge",
		    "Address space reserved for the store.");
		out_add(&o, "berth_store_map_size_bytes %llu\n",
		    (unsigned long long)ss.map_size);
		family(&o, "berth_store_map_used_bytes", "gauge",
		    "Bytes of the store's file up to its last used page.");
		out_add(&o, "berth_store_map_used_bytes %llu\n",
		    (unsigned long long)ss.map_used);
		if (store_free_pages(st, &free_pages) == 0) {
			family(&o, "berth_store_free_bytes", "gauge",
			    "Freed pages inside the store's file, for reuse.");
			out_add(&o, "berth_store_free_bytes %llu\n",
			    (unsigned long long)(free_pages * ss.page_size));
		}
	}
	if (store_blob_foreach(st, blob_sum, &bs) == 0) {
		family(&o, "berth_store_blob_bytes", "gauge",
		    "Blob bytes: raw (as pushed) and stored (after compression).");
		out_add(&o, "berth_store_blob_bytes{form=\"raw\"} %llu\n",
		    (unsigned long long)bs.raw);
		out_add(&o, "berth_store_blob_bytes{form=\"stored\"} %llu\n",
		    (unsigned long long)bs.stored);
		family(&o, "berth_store_compression_ratio", "gauge",
		    "Stored bytes over raw bytes of all blobs (1 when empty).");
		out_add(&o, "berth_store_compression_ratio %.6f\n", bs.raw > 0 ?
		    (double)bs.stored / (double)bs.raw : 1.0);
	}
	if (o.failed) {
		free(o.p);
		return NULL;
	}
	*len = o.len;
	return o.p;
}
