/*
 * OCI Distribution API 1.1 handlers (distribution-spec "Endpoints").
 *
 * Routing is a table of (method, route kind) -> handler with the access
 * each needs. Blob uploads are sessions that outlive a request: a session
 * holds the store's upload handle, and completions from the store's writer
 * thread reach the event loop through the session's wake event. A session
 * is freed only on the loop thread, after store_upload_free() has waited
 * for every callback of its handle, so no callback can outlive it.
 */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "api/api.h"
#include "auth/auth.h"
#include "auth/token.h"
#include "metrics/metrics.h"
#include "berth/oci.h"
#include "util/log.h"

#define API_HEADERS_MAX_BYTES   2048
#define API_QUERY_VALUE_MAX_BYTES 512
#define API_UPLOAD_TABLE_SIZE   256
#define API_UUID_HEX            (2 * FORMAT_UPLOAD_ID_BYTES)

enum route_kind {
	R_BASE,         /* /v2/ */
	R_CATALOG,      /* /v2/_catalog */
	R_TAGS,         /* /v2/<name>/tags/list */
	R_MANIFEST,     /* /v2/<name>/manifests/<reference> */
	R_BLOB,         /* /v2/<name>/blobs/<digest> */
	R_UPLOADS,      /* /v2/<name>/blobs/uploads/ */
	R_UPLOAD,       /* /v2/<name>/blobs/uploads/<uuid> */
	R_REFERRERS,    /* /v2/<name>/referrers/<digest> */
};

struct route {
	enum route_kind kind;
	char name[OCI_NAME_MAX_BYTES + 1];
	size_t namelen;
	struct http_slice ref;  /* reference, digest or uuid */
};

struct api;

struct session {
	struct api *api;
	struct session *next;           /* hash chain */
	uint8_t id[FORMAT_UPLOAD_ID_BYTES];
	char uuid[API_UUID_HEX + 1];
	struct store_upload *up;
	char repo[OCI_NAME_MAX_BYTES + 1];
	size_t repolen;
	struct event *wake;

	/* completion from the writer thread, under lock */
	pthread_mutex_t lock;
	bool ready;
	int result;

	/* the request being served, on the loop thread */
	struct http_conn *conn;
	enum { PH_IDLE, PH_BODY, PH_FLUSH, PH_FINISH } phase;
	bool monolithic;                /* POST ?digest=: cancelled on failure */
	bool dying;                     /* retired: freed once the store is done */
	time_t idle_since;              /* when the last request on it ended */
	bool paused;
	bool streaming;                 /* counted in api->nstreaming */
	bool verifying;                 /* store_upload_verify_only() is on */
	struct oci_digest expect;
};

struct api {
	struct store *st;
	struct event_base *base;
	struct api_config cfg;
	struct session *table[API_UPLOAD_TABLE_SIZE];
	size_t nsessions;
	size_t nstreaming;              /* sessions reading a request body */
	struct event *release;          /* frees the heap after transfers */
	struct auth *auth;              /* NULL: no authentication */
	struct api_token token;         /* bearer tokens, when token.key */
	/* The request being dispatched (handlers read it synchronously). */
	const char *user;               /* signed-in user, NULL if anonymous */
	char user_buf[AUTH_USER_MAX_BYTES + 1];
	bool bearer;                    /* ... and claims holds its token's */
	struct token_claims claims;
};

/* ---- memory ------------------------------------------------------------ */

/*
 * No push has streamed and no pull has ended for a while: the buffers that
 * carried their bytes go back to the kernel, so that berthd between
 * transfers is as small as before them.
 */
static void
api_release_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;

	(void)fd;
	(void)what;
	if (a->nstreaming == 0)
		store_malloc_release();
}

/* A transfer that used large buffers ended: release them a little later. */
static void
api_heap_used(struct api *a)
{
	const struct timeval later = { API_HEAP_RELEASE_DELAY_S, 0 };

	if (a->release != NULL)
		(void)evtimer_add(a->release, &later);
}

/* ---- replies ----------------------------------------------------------- */

struct hdrs {
	char buf[API_HEADERS_MAX_BYTES];
	size_t len;
};

static void hdr_add(struct hdrs *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
hdr_add(struct hdrs *h, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(h->buf + h->len, sizeof(h->buf) - h->len, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(h->buf) - h->len)
		h->len += (size_t)n;
}

/* distribution-spec "Error Codes": {"errors":[{code,message,detail}]}. */
static void
reply_error(struct http_conn *c, const struct http_request *r, int status,
    const char *code, const char *message, const char *detail)
{
	json_t *doc = json_pack("{s:[{s:s,s:s,s:s*}]}", "errors", "code", code,
	    "message", message, "detail", detail);
	char *body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

	json_decref(doc);
	http_conn_reply(c, status, "Content-Type: application/json\r\n",
	    body != NULL ? body : "", body != NULL ? strlen(body) : 0,
	    r != NULL && r->method == HTTP_HEAD ? HTTP_REPLY_HEAD_ONLY : 0);
	free(body);
}

static void
reply_json(struct http_conn *c, int status, const char *extra, json_t *doc)
{
	char *body = json_dumps(doc, JSON_COMPACT);
	struct hdrs h = { .len = 0 };

	hdr_add(&h, "Content-Type: application/json\r\n%s", extra ? extra : "");
	http_conn_reply(c, status, h.buf, body != NULL ? body : "{}",
	    body != NULL ? strlen(body) : 2, 0);
	free(body);
	json_decref(doc);
}

/* One place that turns a store error into a status and an OCI code. */
static void
reply_store_error(struct http_conn *c, const struct http_request *r, int rc,
    const char *unknown_code)
{
	switch (rc) {
	case STORE_E_NOTFOUND:
		reply_error(c, r, 404, unknown_code, "unknown to registry", NULL);
		break;
	case STORE_E_INVALID:
		reply_error(c, r, 400, "NAME_INVALID", "invalid name or reference",
		    NULL);
		break;
	case STORE_E_DIGEST:
		reply_error(c, r, 400, "DIGEST_INVALID",
		    "provided digest did not match uploaded content", NULL);
		break;
	case STORE_E_SIZE:
		reply_error(c, r, 400, "SIZE_INVALID",
		    "provided length did not match content length", NULL);
		break;
	case STORE_E_UNSUPPORTED:
		reply_error(c, r, 400, "DIGEST_INVALID",
		    "unsupported digest algorithm", NULL);
		break;
	case STORE_E_CONFLICT:
	case STORE_E_BUSY:
		reply_error(c, r, 409, "BLOB_UPLOAD_INVALID",
		    "upload is in use by another request", NULL);
		break;
	case STORE_E_MAP_FULL:
	case STORE_E_NOSPC:
		reply_error(c, r, 507, "UNKNOWN", "registry storage is full", NULL);
		break;
	default:
		log_error("api: store: %s", store_strerror(rc));
		reply_error(c, r, 500, "UNKNOWN", "internal error", NULL);
		break;
	}
}

/* ---- waiting for the store without blocking the loop -------------------- */

/*
 * A durable store write started from a handler: the store reports from its
 * writer thread, the wake event brings the result to the loop, and cont
 * continues the request there.
 */
struct api_async {
	struct event *ev;
	pthread_mutex_t lock;
	int rc;
	void (*cont)(void *ctx, int rc);
	void *ctx;
};

static void
async_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_async *aa = arg;
	void (*cont)(void *, int) = aa->cont;
	void *ctx = aa->ctx;
	int rc;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&aa->lock);
	rc = aa->rc;
	pthread_mutex_unlock(&aa->lock);
	event_free(aa->ev);
	pthread_mutex_destroy(&aa->lock);
	free(aa);
	cont(ctx, rc);
}

/* store_done_fn: runs on the writer thread. */
static void
async_notify(void *arg, int rc)
{
	struct api_async *aa = arg;

	pthread_mutex_lock(&aa->lock);
	aa->rc = rc;
	pthread_mutex_unlock(&aa->lock);
	event_active(aa->ev, EV_TIMEOUT, 0);
}

static struct api_async *
async_new(struct api *a, void (*cont)(void *, int), void *ctx)
{
	struct api_async *aa = calloc(1, sizeof(*aa));

	if (aa == NULL)
		return NULL;
	aa->ev = event_new(a->base, -1, 0, async_cb, aa);
	if (aa->ev == NULL) {
		free(aa);
		return NULL;
	}
	pthread_mutex_init(&aa->lock, NULL);
	aa->cont = cont;
	aa->ctx = ctx;
	return aa;
}

/* Used when the store refused the call outright: done will not come. */
static void
async_cancel(struct api_async *aa)
{
	event_free(aa->ev);
	pthread_mutex_destroy(&aa->lock);
	free(aa);
}

/* A request waiting on a store write, answered plainly when it is done. */
struct simple_wait {
	struct http_conn *c;
	int ok_status;
	const char *unknown_code;
	char audit[512];        /* logged when the change is made, or "" */
};

static void
simple_done(void *ctx, int rc)
{
	struct simple_wait *sw = ctx;

	if (rc != 0) {
		reply_store_error(sw->c, NULL, rc, sw->unknown_code);
	} else {
		if (sw->audit[0] != '\0')
			log_info("audit: %s", sw->audit);
		http_conn_reply(sw->c, sw->ok_status, NULL, NULL, 0, 0);
	}
	free(sw);
}

/* "USER deleted REPO@REF" style lines name who did it, or "anonymous". */
static void
audit_text(char *out, size_t size, struct api *a, const char *verb,
    const struct route *rt, const char *what)
{
	snprintf(out, size, "%s %s %s %s:%.*s", a->user != NULL ? a->user :
	    "anonymous", verb, what, rt->name, (int)rt->ref.len, rt->ref.p);
}

/*
 * Starts an async store call through start(aa) and answers ok_status when
 * it succeeds, or the mapped error.
 */
static void
reply_after(struct api *a, struct http_conn *c, const struct http_request *r,
    int ok_status, const char *unknown_code,
    int (*start)(void *call, struct api_async *aa), void *call,
    const char *audit)
{
	struct simple_wait *sw = calloc(1, sizeof(*sw));
	struct api_async *aa = sw != NULL ? async_new(a, simple_done, sw) : NULL;
	int rc;

	if (aa == NULL) {
		free(sw);
		reply_error(c, r, 500, "UNKNOWN", "out of memory", NULL);
		return;
	}
	sw->c = c;
	sw->ok_status = ok_status;
	sw->unknown_code = unknown_code;
	snprintf(sw->audit, sizeof(sw->audit), "%s", audit != NULL ? audit : "");
	rc = start(call, aa);
	if (rc != 0) {
		async_cancel(aa);
		free(sw);
		reply_store_error(c, r, rc, unknown_code);
	}
}

/* ---- request pieces ---------------------------------------------------- */

/*
 * The value of key in a query string, percent-decoded into out (NUL
 * terminated). Returns its length, -1 if absent, -2 if malformed or too long.
 */
static long
query_nth(struct http_slice q, const char *key, unsigned nth, char *out,
    size_t outsz)
{
	size_t klen = strlen(key), i = 0;

	while (i < q.len) {
		size_t s = i, e;
		const char *eq;

		while (i < q.len && q.p[i] != '&')
			i++;
		e = i++;
		eq = memchr(q.p + s, '=', e - s);
		if ((eq != NULL ? (size_t)(eq - (q.p + s)) : e - s) != klen ||
		    memcmp(q.p + s, key, klen) != 0)
			continue;
		if (nth-- > 0)
			continue;
		if (eq == NULL) {
			out[0] = '\0';
			return 0;
		}
		{
			size_t n = 0;

			for (const char *p = eq + 1; p < q.p + e; p++) {
				int ch = (unsigned char)*p;

				if (ch == '%') {
					int hi, lo;

					if (q.p + e - p < 3)
						return -2;
					hi = http_hexval(p[1]);
					lo = http_hexval(p[2]);
					if (hi < 0 || lo < 0)
						return -2;
					ch = hi << 4 | lo;
					p += 2;
				} else if (ch == '+') {
					ch = ' ';
				}
				if (ch == 0 || n + 1 >= outsz)
					return -2;
				out[n++] = (char)ch;
			}
			out[n] = '\0';
			return (long)n;
		}
	}
	return -1;
}

/* Finds the last occurrence of needle in s. */
static const char *
slice_rfind(struct http_slice s, const char *needle)
{
	size_t n = strlen(needle);

	if (s.len < n)
		return NULL;
	for (size_t i = s.len - n + 1; i-- > 0;)
		if (memcmp(s.p + i, needle, n) == 0)
			return s.p + i;
	return NULL;
}

/* The first value of key; as query_nth. */
static long
query_get(struct http_slice q, const char *key, char *out, size_t outsz)
{
	return query_nth(q, key, 0, out, outsz);
}

/*
 * Splits /v2/<name>/<what>/<ref>. Returns 0, or 404 for a path outside
 * the API, 400 (NAME_INVALID) for a bad repository name.
 */
static int
route_parse(struct http_slice path, struct route *rt)
{
	static const struct {
		const char *sep;
		enum route_kind kind;
	} seps[] = {
		{ "/blobs/uploads/", R_UPLOAD },
		{ "/manifests/", R_MANIFEST },
		{ "/referrers/", R_REFERRERS },
		{ "/blobs/", R_BLOB },
	};
	struct http_slice rest;
	const char *hit = NULL;
	size_t i;

	memset(rt, 0, sizeof(*rt));
	if (http_slice_eq(path, "/v2/") || http_slice_eq(path, "/v2")) {
		rt->kind = R_BASE;
		return 0;
	}
	if (path.len < 4 || memcmp(path.p, "/v2/", 4) != 0)
		return 404;
	rest = (struct http_slice){ path.p + 4, path.len - 4 };
	if (http_slice_eq(rest, "_catalog")) {
		rt->kind = R_CATALOG;
		return 0;
	}
	if (rest.len > 10 && memcmp(rest.p + rest.len - 10, "/tags/list", 10) == 0) {
		rt->kind = R_TAGS;
		hit = rest.p + rest.len - 10;
	} else if (rest.len > 14 && memcmp(rest.p + rest.len - 14,
	    "/blobs/uploads", 14) == 0) {
		/* ".../blobs/uploads" without the trailing slash. */
		hit = rest.p + rest.len - 14;
		rt->kind = R_UPLOADS;
	} else {
		for (i = 0; i < sizeof(seps) / sizeof(seps[0]); i++) {
			hit = slice_rfind(rest, seps[i].sep);
			if (hit != NULL) {
				rt->kind = seps[i].kind;
				rt->ref.p = hit + strlen(seps[i].sep);
				rt->ref.len = (size_t)(rest.p + rest.len - rt->ref.p);
				break;
			}
		}
		if (hit == NULL)
			return 404;
		if (rt->kind == R_UPLOAD && rt->ref.len == 0)
			rt->kind = R_UPLOADS;
		if (rt->kind != R_UPLOADS && rt->kind != R_TAGS &&
		    (rt->ref.len == 0 || memchr(rt->ref.p, '/', rt->ref.len)))
			return 404;
	}
	rt->namelen = (size_t)(hit - rest.p);
	if (!oci_name_valid(rest.p, rt->namelen))
		return 400;
	memcpy(rt->name, rest.p, rt->namelen);
	rt->name[rt->namelen] = '\0';
	return 0;
}

static bool
parse_digest(struct http_slice s, struct oci_digest *d)
{
	return oci_digest_parse(s.p, s.len, d) == 0;
}

/* ---- /v2/ --------------------------------------------------------------- */

static void
h_base(struct api *a, struct http_conn *c, const struct http_request *r,
    const struct route *rt)
{
	(void)a;
	(void)rt;
	http_conn_reply(c, 200, "Content-Type: application/json\r\n", "{}", 2,
	    r->method == HTTP_HEAD ? HTTP_REPLY_HEAD_ONLY : 0);
}

/* ---- blobs -------------------------------------------------------------- */

struct blob_stream {
	struct api *a;
	struct store_blob_reader *r;
	uint64_t off;
};

static void
blob_chunk_free(const void *data, size_t len, void *chunk)
{
	(void)data;
	(void)len;
	free(chunk);
}

/* One chunk per call, handed to the output buffer without a copy. */
static long
blob_fill(void *arg, struct evbuffer *out, size_t max)
{
	struct blob_stream *bs = arg;
	const uint8_t *p;
	void *chunk;
	size_t n = 0;

	if (store_blob_reader_take(bs->r, bs->off, max, &chunk, &p, &n) != 0 ||
	    n == 0) {
		log_error("api: blob read failed at offset %llu",
		    (unsigned long long)bs->off);
		free(chunk);
		return -1;
	}
	if (evbuffer_add_reference(out, p, n, blob_chunk_free, chunk) != 0) {
		free(chunk);
		return -1;
	}
	bs->off += n;
	return (long)n;
}

static void
blob_stream_done(void *arg)
{
	struct blob_stream *bs = arg;

	store_blob_reader_close(bs->r);
	api_heap_used(bs->a);
	free(bs);
}

static void
h_blob_get(struct api *a, struct http_conn *c, const struct http_request *r,
    const struct route *rt)
{
	struct blob_stream *bs;
	struct store_blob_reader *reader = NULL;
	struct oci_digest d;
	char ds[OCI_DIGEST_STR_BYTES];
	struct hdrs h = { .len = 0 };
	uint64_t size, first = 0, last = 0;
	int rc, range;

	if (!parse_digest(rt->ref, &d)) {
		reply_error(c, r, 400, "DIGEST_INVALID", "invalid digest", NULL);
		return;
	}
	rc = store_blob_reader_open(a->st, rt->name, rt->namelen, &d, &reader);
	if (rc != 0) {
		reply_store_error(c, r, rc, "BLOB_UNKNOWN");
		return;
	}
	size = store_blob_reader_size(reader);
	oci_digest_format(&d, ds);
	hdr_add(&h, "Content-Type: application/octet-stream\r\n"
	    "Docker-Content-Digest: %s\r\nAccept-Ranges: bytes\r\n", ds);
	{
		const struct http_slice *rh = http_request_header(r, "range");

		range = rh != NULL ? http_parse_range(rh->p, rh->len, size, &first,
		    &last) : 0;
	}
	if (range < 0) {
		store_blob_reader_close(reader);
		hdr_add(&h, "Content-Range: bytes */%llu\r\n",
		    (unsigned long long)size);
		http_conn_reply(c, 416, h.buf, NULL, 0, 0);
		return;
	}
	if (range == 0) {
		first = 0;
		last = size > 0 ? size - 1 : 0;
	} else {
		hdr_add(&h, "Content-Range: bytes %llu-%llu/%llu\r\n",
		    (unsigned long long)first, (unsigned long long)last,
		    (unsigned long long)size);
	}
	if (r->method == HTTP_HEAD || size == 0) {
		store_blob_reader_close(reader);
		http_conn_reply(c, range ? 206 : 200, h.buf, NULL,
		    size == 0 ? 0 : (size_t)(last - first + 1), HTTP_REPLY_HEAD_ONLY);
		return;
	}
	bs = calloc(1, sizeof(*bs));
	if (bs == NULL) {
		store_blob_reader_close(reader);
		reply_error(c, r, 500, "UNKNOWN", "out of memory", NULL);
		return;
	}
	bs->a = a;
	bs->r = reader;
	bs->off = first;
	http_conn_reply_stream(c, range ? 206 : 200, h.buf, last - first + 1,
	    blob_fill, blob_stream_done, bs);
}

struct blob_delete_call {
	struct api *a;
	const struct route *rt;
	const struct oci_digest *d;
};

static int
start_blob_unlink(void *arg, struct api_async *aa)
{
	struct blob_delete_call *bc = arg;

	return store_blob_unlink_async(bc->a->st, bc->rt->name, bc->rt->namelen,
	    bc->d, async_notify, aa);
}

static void
h_blob_delete(struct api *a, struct http_conn *c, const struct http_request *r,
    const struct route *rt)
{
	struct oci_digest d;

	if (!parse_digest(rt->ref, &d)) {
		reply_error(c, r, 400, "DIGEST_INVALID", "invalid digest", NULL);
		return;
	}
	struct blob_delete_call call = { a, rt, &d };
	char audit[512];

	audit_text(audit, sizeof(audit), a, "deleted", rt, "blob");
	reply_after(a, c, r, 202, "BLOB_UNKNOWN", start_blob_unlink, &call,
	    audit);
}

/* ---- upload sessions ---------------------------------------------------- */

static unsigned
session_slot(const uint8_t id[FORMAT_UPLOAD_ID_BYTES])
{
	return (unsigned)(id[0] | id[1] << 8) % API_UPLOAD_TABLE_SIZE;
}

static struct session *
session_find(struct api *a, const uint8_t id[FORMAT_UPLOAD_ID_BYTES])
{
	struct session *s = a->table[session_slot(id)];

	while (s != NULL && memcmp(s->id, id, FORMAT_UPLOAD_ID_BYTES) != 0)
		s = s->next;
	return s;
}

static void session_wake_cb(evutil_socket_t fd, short what, void *arg);
static bool session_evict_idle(struct api *a);

/*
 * Writer thread: an operation of the upload completed, or (as the idle
 * callback of a retired session) the last one did. The loop looks.
 */
static void
session_on_commit(void *arg, int rc)
{
	struct session *s = arg;

	(void)rc;
	event_active(s->wake, EV_TIMEOUT, 0);
}

/* Writer thread: a flush or finish completed with rc. */
static void
session_on_result(void *arg, int rc)
{
	struct session *s = arg;

	pthread_mutex_lock(&s->lock);
	s->result = rc;
	s->ready = true;
	pthread_mutex_unlock(&s->lock);
	event_active(s->wake, EV_TIMEOUT, 0);
}

static struct session *
session_new(struct api *a, struct store_upload *up, bool monolithic)
{
	struct session *s = calloc(1, sizeof(*s));
	const char *repo;

	if (s == NULL)
		return NULL;
	s->wake = event_new(a->base, -1, 0, session_wake_cb, s);
	if (s->wake == NULL) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->api = a;
	s->up = up;
	s->monolithic = monolithic;
	memcpy(s->id, store_upload_id(up), FORMAT_UPLOAD_ID_BYTES);
	for (size_t i = 0; i < FORMAT_UPLOAD_ID_BYTES; i++)
		snprintf(s->uuid + 2 * i, 3, "%02x", s->id[i]);
	repo = store_upload_repo(up, &s->repolen);
	memcpy(s->repo, repo, s->repolen);
	s->repo[s->repolen] = '\0';
	store_upload_set_commit_cb(up, session_on_commit, s);
	/* Monolithic ones too, so that api_free() finds every session. */
	{
		unsigned slot = session_slot(s->id);

		s->next = a->table[slot];
		a->table[slot] = s;
		a->nsessions++;
		metrics_set_uploads(a->nsessions);
	}
	s->idle_since = time(NULL);
	return s;
}

/*
 * Bytes a session may have queued for the writer before its body is
 * paused: one share of the upload buffer per body being read,
 * so that concurrent pushes together hold no more than one push does.
 */
static uint64_t
session_pending_high(const struct session *s)
{
	size_t n = s->api->nstreaming > 0 ? s->api->nstreaming : 1;
	uint64_t buf = s->api->cfg.upload_buffer_bytes != 0 ?
	    s->api->cfg.upload_buffer_bytes : API_UPLOAD_BUFFER_BYTES_DEFAULT;
	uint64_t high = buf / n;

	return high < API_UPLOAD_PENDING_MIN_BYTES ?
	    API_UPLOAD_PENDING_MIN_BYTES : high;
}

static void
session_stream_end(struct session *s)
{
	if (s->streaming) {
		s->streaming = false;
		s->api->nstreaming--;
		if (s->api->nstreaming == 0)
			api_heap_used(s->api);
	}
}

/*
 * Releases a session and its handle (the upload itself stays in the store
 * unless it was finished or cancelled). store_upload_free() waits for the
 * handle's callbacks, so none can reach the session after this.
 */
static void
session_free(struct session *s)
{
	struct api *a = s->api;
	struct session **pp = &a->table[session_slot(s->id)];

	while (*pp != NULL && *pp != s)
		pp = &(*pp)->next;
	if (*pp == s) {
		*pp = s->next;
		a->nsessions--;
		metrics_set_uploads(a->nsessions);
	}
	session_stream_end(s);
	store_upload_free(s->up);
	event_free(s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void
store_ignore(void *arg, int rc)
{
	(void)arg;
	(void)rc;
}

/*
 * Takes a session out of service without waiting on the loop for the
 * store: it leaves the table at once (a later request resumes the upload
 * from the store) and is freed when its handle's queued operations are
 * done. With cancel, the upload is deleted too.
 */
static void
session_retire(struct session *s, bool cancel)
{
	struct api *a = s->api;
	struct session **pp = &a->table[session_slot(s->id)];

	while (*pp != NULL && *pp != s)
		pp = &(*pp)->next;
	if (*pp == s) {
		*pp = s->next;
		a->nsessions--;
		metrics_set_uploads(a->nsessions);
	}
	s->next = NULL;
	s->dying = true;
	s->conn = NULL;
	session_stream_end(s);
	if (cancel)
		(void)store_upload_cancel_async(s->up, store_ignore, NULL);
	if (store_upload_set_idle_cb(s->up, session_on_commit, s))
		session_free(s);
}

static void
upload_location(struct hdrs *h, const struct session *s)
{
	uint64_t off = store_upload_offset(s->up);

	hdr_add(h, "Location: /v2/%s/blobs/uploads/%s\r\nDocker-Upload-UUID: %s\r\n"
	    "Range: 0-%llu\r\n", s->repo, s->uuid, s->uuid,
	    (unsigned long long)(off > 0 ? off - 1 : 0));
}

/* The request's work on the session is over; the session stays. */
static void
session_reply(struct session *s, int status, const char *headers)
{
	struct http_conn *c = s->conn;

	s->conn = NULL;
	s->phase = PH_IDLE;
	s->paused = false;
	s->idle_since = time(NULL);
	http_conn_reply(c, status, headers, NULL, 0, 0);
}

/* A body that broke off: the handle is dropped and resumes from the store. */
static void
session_abort(struct session *s, int status)
{
	struct http_conn *c = s->conn;

	session_retire(s, s->monolithic);
	if (status == 413)
		reply_error(c, NULL, 413, "SIZE_INVALID",
		    "blob exceeds the registry's size limit", NULL);
	else if (status == 507)
		reply_error(c, NULL, 507, "UNKNOWN", "registry storage is full",
		    NULL);
	else if (status > 0)
		reply_error(c, NULL, status, "BLOB_UPLOAD_INVALID",
		    "upload body failed", NULL);
	else
		http_conn_reply(c, 400, NULL, NULL, 0, 0);      /* peer is gone */
}

static void
session_finished(struct session *s, int rc)
{
	struct http_conn *c = s->conn;
	char ds[OCI_DIGEST_STR_BYTES];
	struct hdrs h = { .len = 0 };
	char repo[OCI_NAME_MAX_BYTES + 1];

	if (rc == STORE_E_DIGEST || rc == STORE_E_SIZE) {
		/* The upload stays open (distribution-spec: DIGEST_INVALID). */
		s->conn = NULL;
		s->phase = PH_IDLE;
		/* Nothing of a verified body was kept to continue from. */
		if (s->monolithic || s->verifying)
			session_retire(s, true);
		reply_store_error(c, NULL, rc, "BLOB_UPLOAD_UNKNOWN");
		return;
	}
	memcpy(repo, s->repo, s->repolen + 1);
	oci_digest_format(&s->expect, ds);
	/* A failed monolithic upload has no URL to resume: drop it. */
	if (rc != 0)
		session_retire(s, s->monolithic || s->verifying);
	else
		session_free(s);
	if (rc != 0) {
		reply_store_error(c, NULL, rc, "BLOB_UPLOAD_UNKNOWN");
		return;
	}
	hdr_add(&h, "Location: /v2/%s/blobs/%s\r\nDocker-Content-Digest: %s\r\n",
	    repo, ds, ds);
	http_conn_reply(c, 201, h.buf, NULL, 0, 0);
}

static void
session_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct hdrs h = { .len = 0 };
	bool ready;
	int rc;

	(void)fd;
	(void)what;
	if (s->dying) {
		if (!store_upload_busy(s->up))
			session_free(s);
		return;
	}
	pthread_mutex_lock(&s->lock);
	ready = s->ready;
	rc = s->result;
	s->ready = false;
	pthread_mutex_unlock(&s->lock);
	if (ready && s->phase == PH_FLUSH) {
		if (rc != 0) {
			s->phase = PH_IDLE;
			session_abort(s, rc == STORE_E_NOSPC ||
			    rc == STORE_E_MAP_FULL ? 507 : 500);
			return;
		}
		upload_location(&h, s);
		session_reply(s, 202, h.buf);
		return;
	}
	if (ready && s->phase == PH_FINISH) {
		session_finished(s, rc);
		return;
	}
	/*
	 * Reading resumes as soon as the body is back under its share: the
	 * pending bytes fall a whole chunk at a time, so one chunk stays
	 * queued for the writer while the next is read (draining to half
	 * the share left the writer idle between chunks with a 1 MiB buffer).
	 */
	if (s->paused && s->conn != NULL &&
	    store_upload_pending(s->up) < session_pending_high(s)) {
		s->paused = false;
		http_conn_resume(s->conn);
	}
}

/*
 * Takes body bytes a chunk at a time; once the body has more than its
 * share queued it pauses and leaves the rest in the connection's buffer,
 * so no further chunk buffer is started while the writer catches up.
 */
static int
session_body_data(void *arg, const uint8_t *p, size_t n, size_t *used)
{
	struct session *s = arg;
	size_t done = 0;

	if (store_upload_offset(s->up) + n > s->api->cfg.max_blob_bytes)
		return 413;
	while (done < n) {
		size_t k;
		int rc = store_upload_write_some(s->up, p + done, n - done, &k);

		if (rc != 0)
			return rc == STORE_E_NOSPC || rc == STORE_E_MAP_FULL ?
			    507 : 500;
		done += k;
		if (store_upload_pending(s->up) > session_pending_high(s)) {
			s->paused = true;
			http_conn_pause(s->conn);
			break;
		}
	}
	*used = done;
	return 0;
}

static void
session_body_end(void *arg, int status)
{
	struct session *s = arg;
	bool finish = s->phase == PH_FINISH;
	int rc;

	session_stream_end(s);
	if (status != 0) {
		session_abort(s, status);
		return;
	}
	s->phase = finish ? PH_FINISH : PH_FLUSH;
	rc = finish ? store_upload_finish_async(s->up, &s->expect, UINT64_MAX,
	    session_on_result, s) : store_upload_flush_async(s->up,
	    session_on_result, s);
	if (rc != 0) {
		s->phase = PH_IDLE;
		if (finish) {
			session_finished(s, rc);
		} else {
			session_abort(s, 500);
		}
	}
}

/* Starts streaming the request body into the session; finish at the end. */
static void
session_stream(struct session *s, struct http_conn *c,
    const struct http_request *r, bool finish)
{
	uint64_t off = store_upload_offset(s->up);
	struct store_blob_info info;

	if (off > s->api->cfg.max_blob_bytes || (r->has_length &&
	    r->content_length > s->api->cfg.max_blob_bytes - off)) {
		/* Refused before a byte of the body is read. */
		s->conn = c;
		session_abort(s, 413);
		return;
	}
	/*
	 * A monolithic upload of a blob already stored (a base layer pushed
	 * to one more repository): hash the body, store nothing.
	 */
	if (finish && off == 0 && store_blob_stat(s->api->st, NULL, 0,
	    &s->expect, &info) == 0 &&
	    !(info.flags & FORMAT_BLOB_F_QUARANTINE) &&
	    (!r->has_length || r->content_length == info.size) &&
	    store_upload_verify_only(s->up) == 0)
		s->verifying = true;
	s->conn = c;
	s->paused = false;
	if (!s->streaming) {
		s->streaming = true;
		s->api->nstreaming++;
	}
	/* The phase also tells session_body_end whether to finish or flush. */
	s->phase = finish ? PH_FINISH : PH_BODY;
	http_conn_read_body(c, session_body_data, session_body_end, s);
}

static int
session_lookup(struct api *a, const struct route *rt, struct session **out)
{
	uint8_t id[FORMAT_UPLOAD_ID_BYTES];
	struct store_upload *up = NULL;
	struct session *s;
	size_t repolen;
	const char *repo;
	bool resumed = false;
	int rc;

	*out = NULL;
	if (rt->ref.len != API_UUID_HEX)
		return STORE_E_NOTFOUND;
	for (size_t i = 0; i < FORMAT_UPLOAD_ID_BYTES; i++) {
		int hi = http_hexval(rt->ref.p[2 * i]);
		int lo = http_hexval(rt->ref.p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return STORE_E_NOTFOUND;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	s = session_find(a, id);
	if (s == NULL) {
		/* Not in memory: an upload from before a restart or eviction. */
		rc = store_upload_resume(a->st, id, &up);
		if (rc != 0)
			return rc;
		if (up != NULL && a->nsessions >= a->cfg.max_uploads)
			(void)session_evict_idle(a);
		s = session_new(a, up, false);
		if (s == NULL) {
			store_upload_free(up);
			return STORE_E_NOMEM;
		}
		resumed = true;
	}
	repo = s->repo;
	repolen = s->repolen;
	if (repolen != rt->namelen || memcmp(repo, rt->name, repolen) != 0) {
		if (resumed)
			session_free(s);        /* idle: nothing queued */
		return STORE_E_NOTFOUND;
	}
	if (s->conn != NULL)
		return STORE_E_BUSY;
	*out = s;
	return 0;
}

/* An upload start waiting on the store (mount link, then maybe a new upload). */
struct upload_start {
	struct api *a;
	struct http_conn *c;
	const struct http_request *r;   /* alive until the reply */
	struct route rt;
	struct oci_digest d;            /* mount source, or ?digest= */
	bool monolithic;
	struct store_upload *up;
};

static void upload_start_new(struct upload_start *us);

/*
 * Frees the session idle the longest (its upload stays in the store and
 * resumes on its next request), so abandoned uploads cannot hold every
 * slot. Returns false when every session is busy.
 */
static bool
session_evict_idle(struct api *a)
{
	struct session *oldest = NULL;

	for (size_t i = 0; i < API_UPLOAD_TABLE_SIZE; i++)
		for (struct session *s = a->table[i]; s != NULL; s = s->next)
			if (s->conn == NULL && !s->monolithic &&
			    (oldest == NULL || s->idle_since < oldest->idle_since))
				oldest = s;
	if (oldest == NULL)
		return false;
	session_retire(oldest, false);
	return true;
}

/* Puts a new upload in a session and answers (or streams a monolithic body). */
static void
upload_start_session(struct upload_start *us)
{
	struct http_conn *c = us->c;
	struct session *s;
	struct hdrs h = { .len = 0 };

	s = session_new(us->a, us->up, us->monolithic);
	if (s == NULL) {
		(void)store_upload_cancel(us->up);
		store_upload_free(us->up);
		reply_error(c, us->r, 500, "UNKNOWN", "out of memory", NULL);
		free(us);
		return;
	}
	if (us->monolithic) {
		s->expect = us->d;
		session_stream(s, c, us->r, true);
	} else {
		upload_location(&h, s);
		http_conn_reply(c, 202, h.buf, NULL, 0, 0);
	}
	free(us);
}

static void
upload_start_new(struct upload_start *us)
{
	int rc;

	if (us->a->nsessions >= us->a->cfg.max_uploads &&
	    !session_evict_idle(us->a)) {
		reply_error(us->c, us->r, 429, "TOOMANYREQUESTS",
		    "too many uploads in progress", NULL);
		free(us);
		return;
	}
	/*
	 * Not waited for: the upload's record is queued ahead of anything
	 * written to it, and it becomes durable with the upload's first
	 * durable operation (a PATCH's reply, the finish). An upload that
	 * a crash takes before then held no acknowledged bytes; the client
	 * learns it is unknown (404) and starts again. If the record cannot
	 * be written, the handle fails and so does the next request on it.
	 */
	rc = store_upload_new_async(us->a->st, us->rt.name, us->rt.namelen,
	    &us->up, store_ignore, NULL);
	if (rc != 0) {
		reply_store_error(us->c, us->r, rc, "NAME_UNKNOWN");
		free(us);
		return;
	}
	upload_start_session(us);
}

static void
upload_start_mounted(void *ctx, int rc)
{
	struct upload_start *us = ctx;
	char ds[OCI_DIGEST_STR_BYTES];
	struct hdrs h = { .len = 0 };

	if (rc != 0) {
		/* Not mountable after all: an ordinary upload (distribution-spec). */
		upload_start_new(us);
		return;
	}
	oci_digest_format(&us->d, ds);
	hdr_add(&h, "Location: /v2/%s/blobs/%s\r\nDocker-Content-Digest: %s\r\n",
	    us->rt.name, ds, ds);
	http_conn_reply(us->c, 201, h.buf, NULL, 0, 0);
	free(us);
}

static void
h_upload_start(struct api *a, struct http_conn *c, const struct http_request *r,
    const struct route *rt)
{
	char val[API_QUERY_VALUE_MAX_BYTES], from[API_QUERY_VALUE_MAX_BYTES];
	struct upload_start *us;
	struct oci_digest d;
	long n;

	us = calloc(1, sizeof(*us));
	if (us == NULL) {
		reply_error(c, r, 500, "UNKNOWN", "out of memory", NULL);
		return;
	}
	us->a = a;
	us->c = c;
	us->r = r;
	us->rt = *rt;
	/* Cross-repository mount: ?mount=<digest>&from=<repository>. */
	n = query_get(r->query, "mount", val, sizeof(val));
	if (n > 0 && query_get(r->query, "from", from, sizeof(from)) > 0 &&
	    oci_digest_parse(val, (size_t)n, &d) == 0 &&
	    oci_name_valid(from, strlen(from))) {
		struct store_blob_info info;
		struct api_async *aa;

		/* Mounting reads the source: the caller must be able to pull it. */
		if ((a->auth == NULL || ((auth_rights(a->auth, a->user, from,
		    strlen(from)) & AUTH_PULL) && (!a->bearer ||
		    (token_actions(&a->claims, from, strlen(from)) &
		    AUTH_PULL)))) &&
		    store_blob_stat(a->st, from, strlen(from), &d, &info) == 0 &&
		    (aa = async_new(a, upload_start_mounted, us)) != NULL) {
			us->d = d;
			if (store_blob_link_async(a->st, rt->name, rt->namelen, &d,
			    async_notify, aa) == 0)
				return;
			async_cancel(aa);
		}
		/* Not mountable: an ordinary upload (distribution-spec). */
	}
	n = query_get(r->query, "digest", val, sizeof(val));
	if (n == -2 || (n >= 0 && oci_digest_parse(val, (size_t)n, &d) != 0)) {
		reply_error(c, r, 400, "DIGEST_INVALID", "invalid digest", NULL);
		free(us);
		return;
	}
	if (n < 0 && (r->chunked || (r->has_length && r->content_length > 0))) {
		reply_error(c, r, 400, "BLOB_UPLOAD_INVALID",
		    "a body needs ?digest=", NULL);
		free(us);
		return;
	}
	us->monolithic = n >= 0;
	if (us->monolithic)
		us->d = d;
	upload_start_new(us);
}

static void
upload_cancelled(void *ctx, int rc)
{
	struct session *s = ctx;
	struct http_conn *c = s->conn;

	s->conn = NULL;
	session_free(s);
	if (rc != 0)
		reply_store_error(c, NULL, rc, "BLOB_UPLOAD_UNKNOWN");
	else
		http_conn_reply(c, 204, NULL, NULL, 0, 0);
}

static void
h_upload(struct api *a, struct http_conn *c, const struct http_request *r,
    const struct route *rt)
{
	char val[API_QUERY_VALUE_MAX_BYTES];
	struct session *s = NULL;
	struct hdrs h = { .len = 0 };
	long n;
	int rc;

	rc = session_lookup(a, rt, &s);
	if (rc != 0) {
		reply_store_error(c, r, rc, "BLOB_UPLOAD_UNKNOWN");
		return;
	}
	switch (r->method) {
	case HTTP_GET:
		upload_location(&h, s);
		http_conn_reply(c, 204, h.buf, NULL, 0, 0);
		return;
	case HTTP_DELETE: {
		struct api_async *aa = async_new(a, upload_cancelled, s);

		if (aa == NULL) {
			reply_error(c, r, 500, "UNKNOWN", "out of memory", NULL);
			return;
		}
		s->conn = c;    /* busy until the store answers */
		rc = store_upload_cancel_async(s->up, async_notify, aa);
		if (rc != 0) {
			async_cancel(aa);
			s->conn = NULL;
			session_free(s);
			reply_store_error(c, r, rc, "BLOB_UPLOAD_UNKNOWN");
		}
		return;
	}
	case HTTP_PATCH: {
		const struct http_slice *cr = http_request_header(r,
		    "content-range");

		/* Chunked uploads must arrive in order (distribution-spec). */
		if (cr != NULL) {
			uint64_t start;

			if (http_parse_content_range_start(cr->p, cr->len,
			    &start) != 0 || start != store_upload_offset(s->up)) {
				upload_location(&h, s);
				http_conn_reply(c, 416, h.buf, NULL, 0, 0);
				return;
			}
		}
		session_stream(s, c, r, false);
		return;
	}
	case HTTP_PUT:
		n = query_get(r->query, "digest", val, sizeof(val));
		if (n < 0 || oci_digest_parse(val, (size_t)n, &s->expect) != 0) {
			reply_error(c, r, 400, "DIGEST_INVALID",
			    "PUT needs a valid ?digest=", NULL);
			return;
		}
		session_stream(s, c, r, true);
		return;
	default:
		reply_error(c, r, 405, "UNSUPPORTED", "method not allowed", NULL);
		return;
	}
}

/* ---- manifests ---------------------------------------------------------- */

struct manifest_put {
	struct api *a;
	struct http_conn *c;
	struct route rt;
	char *buf;
	size_t len, cap;
	char ctype[OCI_MEDIA_TYPE_MAX_BYTES + 1];
	size_t ctlen;
	/* kept until the store has written it */
	struct oci_manifest m;
	struct store_ref *refs;
	struct store_manifest sm;
	char headers[API_HEADERS_MAX_BYTES];
	char audit[512];
};

static int
manifest_body_data(void *arg, const uint8_t *p, size_t n, size_t *used)
{
	struct manifest_put *mp = arg;

	(void)used;
	if (n > mp->a->cfg.max_manifest_bytes - mp->len)
		return 413;
	if (mp->len + n > mp->cap) {
		size_t cap = mp->cap ? mp->cap : 16384;
		char *nb;

		while (cap < mp->len + n)
			cap *= 2;
		if (cap > mp->a->cfg.max_manifest_bytes)
			cap = mp->a->cfg.max_manifest_bytes;
		nb = realloc(mp->buf, cap);
		if (nb == NULL)
			return 500;
		mp->buf = nb;
		mp->cap = cap;
	}
	memcpy(mp->buf + mp->len, p, n);
	mp->len += n;
	return 0;
}

static void
manifest_put_free(struct manifest_put *mp)
{
	free(mp->refs);
	oci_manifest_free(&mp->m);
	free(mp->buf);
	free(mp);
}

static void
manifest_put_done(void *ctx, int rc)
{
	struct manifest_put *mp = ctx;

	if (rc == STORE_E_NOTFOUND)
		/* A blob or child went away since the check (deleted, or GC). */
		reply_error(mp->c, NULL, 400, "MANIFEST_BLOB_UNKNOWN",
		    "manifest references a blob or manifest unknown to the "
		    "repository", NULL);
	else if (rc != 0)
		reply_store_error(mp->c, NULL, rc, "NAME_UNKNOWN");
	else {
		log_info("audit: %s", mp->audit);
		http_conn_reply(mp->c, 201, mp->headers, NULL, 0, 0);
	}
	manifest_put_free(mp);
}

/* Every blob and child manifest the manifest names must be in the repo. */
static int
manifest_refs_check(struct api *a, const struct route *rt,
    const struct oci_manifest *m, char *why, size_t whysize)
{
	for (size_t i = 0; i < m->nrefs; i++) {
		const struct oci_ref *ref = &m->refs[i];
		char ds[OCI_DIGEST_STR_BYTES];
		int rc;

		if (ref->kind == OCI_REF_SUBJECT || ref->external)
			continue;
		if (ref->kind == OCI_REF_MANIFEST) {
			rc = store_manifest_exists(a->st, rt->name, rt->namelen,
			    &ref->digest);
		} else {
			struct store_blob_info info;

			rc = store_blob_stat(a->st, rt->name, rt->namelen,
			    &ref->digest, &info);
		}
		if (rc != 0) {
			oci_digest_format(&ref->digest, ds);
			snprintf(why, whysize, "%s", ds);
			return rc;
		}
	}
	return 0;
}

static void
manifest_body_end(void *arg, int status)
{
	struct manifest_put *mp = arg;
	struct http_conn *c = mp->c;
	struct api *a = mp->a;
	const struct route *rt = &mp->rt;
	struct oci_manifest *m = &mp->m;
	struct store_manifest *sm = &mp->sm;
	struct api_async *aa;
	struct oci_digest got, want;
	char why[256], ds[OCI_DIGEST_STR_BYTES];
	struct hdrs h = { .len = 0 };
	bool by_digest;
	int rc;

	if (status != 0) {
		if (status == 413)
			reply_error(c, NULL, 413, "SIZE_INVALID",
			    "manifest exceeds the size limit", NULL);
		else if (status > 0)
			reply_error(c, NULL, status, "MANIFEST_INVALID",
			    "bad request body", NULL);
		else
			http_conn_reply(c, 400, NULL, NULL, 0, 0);
		manifest_put_free(mp);
		return;
	}
	rc = oci_manifest_parse(mp->buf, mp->len, mp->ctlen ? mp->ctype : NULL,
	    mp->ctlen, m, why, sizeof(why));
	if (rc != 0) {
		reply_error(c, NULL, 400, "MANIFEST_INVALID", "manifest invalid",
		    why);
		goto fail;
	}
	oci_digest_sha256(mp->buf, mp->len, &got);
	by_digest = memchr(rt->ref.p, ':', rt->ref.len) != NULL;
	if (by_digest && (oci_digest_parse(rt->ref.p, rt->ref.len, &want) != 0 ||
	    !oci_digest_equal(&want, &got))) {
		reply_error(c, NULL, 400, "DIGEST_INVALID",
		    "manifest digest does not match the reference", NULL);
		goto fail;
	}
	rc = manifest_refs_check(a, rt, m, why, sizeof(why));
	if (rc == STORE_E_NOTFOUND) {
		reply_error(c, NULL, 400, "MANIFEST_BLOB_UNKNOWN",
		    "manifest references a blob or manifest unknown to the "
		    "repository", why);
		goto fail;
	} else if (rc != 0) {
		reply_store_error(c, NULL, rc, "MANIFEST_BLOB_UNKNOWN");
		goto fail;
	}
	mp->refs = calloc(m->nrefs + 1, sizeof(*mp->refs));
	aa = mp->refs != NULL ? async_new(a, manifest_put_done, mp) : NULL;
	if (aa == NULL) {
		reply_error(c, NULL, 500, "UNKNOWN", "out of memory", NULL);
		goto fail;
	}
	for (size_t i = 0; i < m->nrefs; i++) {
		mp->refs[i].kind = m->refs[i].kind;
		mp->refs[i].digest = m->refs[i].digest;
		mp->refs[i].size = m->refs[i].size;
		mp->refs[i].external = m->refs[i].external;
	}
	memset(sm, 0, sizeof(*sm));
	sm->digest = got;
	sm->media_type = m->media_type;
	sm->media_type_len = strlen(m->media_type);
	sm->data = mp->buf;
	sm->len = mp->len;
	sm->refs = mp->refs;
	sm->nrefs = m->nrefs;
	sm->artifact_type = m->artifact_type[0] ? m->artifact_type : NULL;
	sm->artifact_type_len = strlen(m->artifact_type);
	sm->require_refs = true;
	oci_digest_format(&got, ds);
	hdr_add(&h, "Location: /v2/%s/manifests/%s\r\nDocker-Content-Digest: %s\r\n",
	    rt->name, ds, ds);
	if (m->has_subject) {
		char ss[OCI_DIGEST_STR_BYTES];

		oci_digest_format(&m->subject, ss);
		hdr_add(&h, "OCI-Subject: %s\r\n", ss);
	}
	memcpy(mp->headers, h.buf, h.len + 1);
	rc = store_manifest_put_async(a->st, rt->name, rt->namelen, sm,
	    by_digest ? NULL : rt->ref.p, by_digest ? 0 : rt->ref.len,
	    async_notify, aa);
	if (rc != 0) {
		async_cancel(aa);
		reply_store_error(c, NULL, rc, "NAME_UNKNOWN");
		goto fail;
	}
	return;
fail:
	manifest_put_free(mp);
}

struct manifest_delete_call {
	struct api *a;
	const struct route *rt;
	const struct oci_digest *d;
	bool by_digest;
};

static int
start_manifest_delete(void *arg, struct api_async *aa)
{
	struct manifest_delete_call *mc = arg;
	const struct route *rt = mc->rt;

	if (mc->by_digest)
		return store_manifest_delete_async(mc->a->st, rt->name,
		    rt->namelen, mc->d, async_notify, aa);
	return store_tag_delete_async(mc->a->st, rt->name, rt->namelen,
	    rt->ref.p, rt->ref.len, async_notify, aa);
}

/*
 * Content negotiation (RFC 9110 12.5.1): berth stores manifests as pushed
 * and never converts them, so it serves one only if the client accepts
 * its media type, a wildcard covering it, or sent no Accept at all.
 */
static bool
accept_allows(const struct http_slice *accept, const char *mt)
{
	size_t mtlen = strlen(mt), i = 0;
	const char *slash = strchr(mt, '/');

	if (accept == NULL || accept->len == 0)
		return true;
	while (i < accept->len) {
		size_t s, e;

		while (i < accept->len && (accept->p[i] == ' ' ||
		    accept->p[i] == ','))
			i++;
		s = i;
		while (i < accept->len && accept->p[i] != ',')
			i++;
		e = s;
		while (e < i && accept->p[e] != ';' && accept->p[e] != ' ')
			e++;
		if ((e - s == mtlen && memcmp(accept->p + s, mt, mtlen) == 0) ||
		    (e - s == 3 && memcmp(accept->p + s, "*/*", 3) == 0) ||
		    (slash != NULL && e - s == (size_t)(slash - mt) + 2 &&
		    memcmp(accept->p + s, mt, (size_t)(slash - mt) + 1) == 0 &&
		    accept->p[e - 1] == '*'))
			return true;
	}
	return false;
}

/* Clients (dockerd, containerd) send one Accept line per media type. */
static bool
accept_allows_any(const struct http_request *r, const char *mt)
{
	bool seen = false;

	for (size_t i = 0; i < r->nheaders; i++) {
		if (!http_slice_eq(r->headers[i].name, "accept") ||
		    r->headers[i].value.len == 0)
			continue;
		seen = true;
		if (accept_allows(&r->headers[i].value, mt))
			return true;
	}
	return !seen;
}

static int
resolve_reference(struct api *a, const struct route *rt, struct oci_digest *d,
    bool *by_digest)
{
	*by_digest = memchr(rt->ref.p, ':', rt->ref.len) != NULL;
	if (*by_digest)
		return oci_digest_parse(rt->ref.p, rt->ref.len, d) == 0 ? 0 :
		    STORE_E_INVALID;
	if (!oci_tag_valid(rt->ref.p, rt->ref.len))
		return STORE_E_INVALID;
	return store_tag_get(a->st, rt->name, rt->namelen, rt->ref.p,
	    rt->ref.len, d);
}

static void
h_manifest(struct api *a, struct http_conn *c, const struct http_request *r,
    const struct route *rt)
{
	struct oci_digest d;
	bool by_digest;
	int rc;

	if (r->method == HTTP_PUT) {
		struct manifest_put *mp;
		const struct http_slice *ct = http_request_header(r,
		    "content-type");

		if (memchr(rt->ref.p, ':', rt->ref.len) == NULL &&
		    !oci_tag_valid(rt->ref.p, rt->ref.len)) {
			reply_error(c, r, 400, "TAG_INVALID", "invalid tag", NULL);
			return;
		}
		if (r->has_length && r->content_length > a->cfg.max_manifest_bytes) {
			reply_error(c, r, 413, "SIZE_INVALID",
			    "manifest exceeds the size limit", NULL);
			return;
		}
		mp = calloc(1, sizeof(*mp));
		if (mp == NULL) {
			reply_error(c, r, 500, "UNKNOWN", "out of memory", NULL);
			return;
		}
		mp->a = a;
		mp->c = c;
		mp->rt = *rt;
		audit_text(mp->audit, sizeof(mp->audit), a, "pushed", rt,
		    "manifest");
		if (ct != NULL && ct->len < sizeof(mp->ctype)) {
			memcpy(mp->ctype, ct->p, ct->len);
			mp->ctlen = ct->len;
		}
		/* rt->ref points into the request head, alive until the reply. */
		http_conn_read_body(c, manifest_body_data, manifest_body_end, mp);
		return;
	}
	rc = resolve_reference(a, rt, &d, &by_digest);
	if (rc == STORE_E_INVALID) {
		reply_error(c, r, 400, by_digest ? "DIGEST_INVALID" : "TAG_INVALID",
		    "invalid reference", NULL);
		return;
	}
	if (r->method == HTTP_DELETE) {
		struct manifest_delete_call call = { a, rt, &d, by_digest };

		/* DELETE by tag untags; by digest deletes (distribution-spec). */
		char audit[512];

		audit_text(audit, sizeof(audit), a, "deleted", rt, by_digest ?
		    "manifest" : "tag");
		if (rc != 0)
			reply_store_error(c, r, rc, "MANIFEST_UNKNOWN");
		else
			reply_after(a, c, r, 202, "MANIFEST_UNKNOWN",
			    start_manifest_delete, &call, audit);
		return;
	}
	if (rc == 0) {
		void *data = NULL;
		size_t len = 0;
		char *mt = NULL, ds[OCI_DIGEST_STR_BYTES];
		struct hdrs h = { .len = 0 };

		rc = store_manifest_get(a->st, rt->name, rt->namelen, &d, &data,
		    &len, &mt);
		if (rc == 0 && !accept_allows_any(r, mt)) {
			free(data);
			free(mt);
			reply_error(c, r, 404, "MANIFEST_UNKNOWN",
			    "the manifest's media type is not in Accept", NULL);
			return;
		}
		if (rc == 0) {
			oci_digest_format(&d, ds);
			hdr_add(&h, "Content-Type: %s\r\nDocker-Content-Digest: %s\r\n"
			    "ETag: \"%s\"\r\n", mt, ds, ds);
			http_conn_reply(c, 200, h.buf, data, len,
			    r->method == HTTP_HEAD ? HTTP_REPLY_HEAD_ONLY : 0);
			free(data);
			free(mt);
			return;
		}
	}
	reply_store_error(c, r, rc, "MANIFEST_UNKNOWN");
}

/* ---- listings ---------------------------------------------------------- */

struct list_ctx {
	json_t *arr;
	size_t n;
	char last[OCI_NAME_MAX_BYTES + 1];
	/* catalog with authentication: only what the caller may pull */
	const struct auth *auth;
	const char *user;
	size_t want;
};

static int
list_collect(void *arg, const char *name, size_t len)
{
	struct list_ctx *lc = arg;

	if (lc->auth != NULL) {
		if (lc->n >= lc->want)
			return 1;
		if (!(auth_rights(lc->auth, lc->user, name, len) & AUTH_PULL))
			return 0;
	}
	json_array_append_new(lc->arr, json_stringn(name, len));
	if (len < sizeof(lc->last)) {
		memcpy(lc->last, name, len);
		lc->last[len] = '\0';
	}
	lc->n++;
	return 0;
}

/* Reads n and last; returns 0 or -1 (malformed). */
static int
list_params(const struct http_request *r, size_t *n, char *last, size_t lastsz,
    bool *has_last)
{
	char val[32];
	long k;
	uint64_t v;

	*n = API_LIST_MAX_DEFAULT;
	k = query_get(r->query, "n", val, sizeof(val));
	if (k == -2)
		return -1;
	if (k >= 0) {
		if (http_parse_u64(val, (size_t)k, UINT64_MAX, &v) != 0)
			return -1;
		*n = v < API_LIST_MAX_DEFAULT ? (size_t)v : API_LIST_MAX_DEFAULT;
	}
	k = query_get(r->query, "last", last, lastsz);
	if (k == -2)
		return -1;
	*has_last = k >= 0;
	return 0;
}

static void
h_list(struct api *a, struct http_conn *c, const struct http_request *r,
    const struct route *rt)
{
	struct list_ctx lc = { .n = 0 };
	char last[OCI_NAME_MAX_BYTES + 1] = "";
	struct hdrs h = { .len = 0 };
	bool has_last;
	size_t n;
	json_t *doc;
	int rc;

	if (list_params(r, &n, last, sizeof(last), &has_last) != 0) {
		reply_error(c, r, 400, "PAGINATION_NUMBER_INVALID",
		    "invalid n or last", NULL);
		return;
	}
	lc.arr = json_array();
	if (n == 0) {
		rc = 0;
	} else if (rt->kind == R_TAGS) {
		rc = store_tag_list(a->st, rt->name, rt->namelen,
		    has_last ? last : NULL, strlen(last), n, list_collect, &lc);
	} else if (a->auth != NULL) {
		/* Filtered: walk on past hidden names until the page is full. */
		lc.auth = a->auth;
		lc.user = a->user;
		lc.want = n;
		rc = store_repo_list(a->st, has_last ? last : NULL, strlen(last),
		    0, list_collect, &lc);
	} else {
		rc = store_repo_list(a->st, has_last ? last : NULL, strlen(last),
		    n, list_collect, &lc);
	}
	if (rc != 0) {
		json_decref(lc.arr);
		reply_store_error(c, r, rc, "NAME_UNKNOWN");
		return;
	}
	/* A full page may have more after it: say where (RFC 8288 Link). */
	if (lc.n == n && n > 0)
		hdr_add(&h, "Link: </v2/%s%s?n=%zu&last=%s>; rel=\"next\"\r\n",
		    rt->kind == R_TAGS ? rt->name : "_catalog",
		    rt->kind == R_TAGS ? "/tags/list" : "", n, lc.last);
	if (rt->kind == R_TAGS)
		doc = json_pack("{s:s,s:o}", "name", rt->name, "tags", lc.arr);
	else
		doc = json_pack("{s:o}", "repositories", lc.arr);
	reply_json(c, 200, h.buf, doc);
}

struct referrers_ctx {
	struct api *a;
	const struct route *rt;
	json_t *arr;
	const char *filter;
};

/* The referrer's own annotations, as the referrers API returns them. */
static json_t *
referrer_annotations(struct referrers_ctx *rc, const struct oci_digest *d)
{
	void *data = NULL;
	size_t len = 0;
	json_t *doc, *ann = NULL;

	if (store_manifest_get(rc->a->st, rc->rt->name, rc->rt->namelen, d, &data,
	    &len, NULL) != 0)
		return NULL;
	doc = json_loadb(data, len, 0, NULL);
	free(data);
	if (doc != NULL) {
		ann = json_object_get(doc, "annotations");
		if (json_is_object(ann) && json_object_size(ann) > 0)
			json_incref(ann);
		else
			ann = NULL;
		json_decref(doc);
	}
	return ann;
}

static int
referrer_collect(void *arg, const struct store_referrer *ref)
{
	struct referrers_ctx *rc = arg;
	char ds[OCI_DIGEST_STR_BYTES];
	json_t *d;

	if (rc->filter != NULL && (ref->artifact_type_len != strlen(rc->filter) ||
	    memcmp(ref->artifact_type, rc->filter, ref->artifact_type_len) != 0))
		return 0;
	oci_digest_format(&ref->digest, ds);
	d = json_pack("{s:s%,s:s,s:I}", "mediaType", ref->media_type,
	    ref->media_type_len, "digest", ds, "size", (json_int_t)ref->size);
	if (d != NULL && ref->artifact_type_len > 0)
		json_object_set_new(d, "artifactType",
		    json_stringn(ref->artifact_type, ref->artifact_type_len));
	if (d != NULL) {
		json_t *ann = referrer_annotations(rc, &ref->digest);

		if (ann != NULL)
			json_object_set_new(d, "annotations", ann);
	}
	if (d != NULL)
		json_array_append_new(rc->arr, d);
	return 0;
}

static void
h_referrers(struct api *a, struct http_conn *c, const struct http_request *r,
    const struct route *rt)
{
	struct referrers_ctx rc = { .a = a, .rt = rt, .filter = NULL };
	char at[API_QUERY_VALUE_MAX_BYTES];
	struct oci_digest d;
	struct hdrs h = { .len = 0 };
	json_t *doc;
	int err;

	if (!parse_digest(rt->ref, &d)) {
		reply_error(c, r, 400, "DIGEST_INVALID", "invalid digest", NULL);
		return;
	}
	if (query_get(r->query, "artifactType", at, sizeof(at)) >= 0) {
		rc.filter = at;
		hdr_add(&h, "OCI-Filters-Applied: artifactType\r\n");
	}
	rc.arr = json_array();
	err = store_referrers_list(a->st, rt->name, rt->namelen, &d,
	    referrer_collect, &rc);
	if (err != 0) {
		json_decref(rc.arr);
		reply_store_error(c, r, err, "NAME_UNKNOWN");
		return;
	}
	doc = json_pack("{s:i,s:s,s:o}", "schemaVersion", 2, "mediaType",
	    OCI_MT_OCI_INDEX, "manifests", rc.arr);
	hdr_add(&h, "Content-Type: %s\r\n", OCI_MT_OCI_INDEX);
	{
		char *body = json_dumps(doc, JSON_COMPACT);

		http_conn_reply(c, 200, h.buf, body, body ? strlen(body) : 0, 0);
		free(body);
		json_decref(doc);
	}
}

/* ---- routing ------------------------------------------------------------ */

typedef void route_fn(struct api *a, struct http_conn *c,
    const struct http_request *r, const struct route *rt);

static const struct {
	enum http_method method;
	enum route_kind kind;
	route_fn *fn;
	enum api_access access;
} routes[] = {
	{ HTTP_GET, R_BASE, h_base, API_ACCESS_NONE },
	{ HTTP_HEAD, R_BASE, h_base, API_ACCESS_NONE },
	{ HTTP_GET, R_CATALOG, h_list, API_ACCESS_CATALOG },
	{ HTTP_GET, R_TAGS, h_list, API_ACCESS_PULL },
	{ HTTP_GET, R_MANIFEST, h_manifest, API_ACCESS_PULL },
	{ HTTP_HEAD, R_MANIFEST, h_manifest, API_ACCESS_PULL },
	{ HTTP_PUT, R_MANIFEST, h_manifest, API_ACCESS_PUSH },
	{ HTTP_DELETE, R_MANIFEST, h_manifest, API_ACCESS_DELETE },
	{ HTTP_GET, R_BLOB, h_blob_get, API_ACCESS_PULL },
	{ HTTP_HEAD, R_BLOB, h_blob_get, API_ACCESS_PULL },
	{ HTTP_DELETE, R_BLOB, h_blob_delete, API_ACCESS_DELETE },
	{ HTTP_POST, R_UPLOADS, h_upload_start, API_ACCESS_PUSH },
	{ HTTP_GET, R_UPLOAD, h_upload, API_ACCESS_PUSH },
	{ HTTP_PATCH, R_UPLOAD, h_upload, API_ACCESS_PUSH },
	{ HTTP_PUT, R_UPLOAD, h_upload, API_ACCESS_PUSH },
	{ HTTP_DELETE, R_UPLOAD, h_upload, API_ACCESS_PUSH },
	{ HTTP_GET, R_REFERRERS, h_referrers, API_ACCESS_PULL },
};

static const char *
method_name(enum http_method m)
{
	switch (m) {
	case HTTP_GET: return "GET";
	case HTTP_HEAD: return "HEAD";
	case HTTP_POST: return "POST";
	case HTTP_PUT: return "PUT";
	case HTTP_PATCH: return "PATCH";
	case HTTP_DELETE: return "DELETE";
	default: return "";
	}
}

/* The host clients used, for the token realm; "localhost" if odd. */
static void
request_host(const struct http_request *r, char *out, size_t outsz)
{
	const struct http_slice *h = http_request_header(r, "Host");
	bool ok = h != NULL && h->len > 0 && h->len < outsz;

	for (size_t i = 0; ok && i < h->len; i++) {
		char c = h->p[i];

		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':' ||
		    c == '[' || c == ']';
	}
	if (ok) {
		memcpy(out, h->p, h->len);
		out[h->len] = '\0';
	} else {
		snprintf(out, outsz, "localhost");
	}
}

/*
 * 401 with the challenge clients answer with credentials: Basic, or in
 * token mode Bearer naming the realm and the scope the request needs.
 */
static void
reply_unauthorized(struct api *a, struct http_conn *c,
    const struct http_request *r, const struct route *rt,
    enum api_access access, const char *message)
{
	json_t *doc = json_pack("{s:[{s:s,s:s}]}", "errors", "code",
	    "UNAUTHORIZED", "message", message);
	char *body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
	struct hdrs h = { .len = 0 };

	json_decref(doc);
	hdr_add(&h, "Content-Type: application/json\r\n");
	if (a->token.key != NULL) {
		char host[256];
		const char *actions = access == API_ACCESS_PUSH ? "pull,push" :
		    access == API_ACCESS_DELETE ? "delete" : "pull";

		request_host(r, host, sizeof(host));
		if (a->token.realm != NULL)
			hdr_add(&h, "WWW-Authenticate: Bearer realm=\"%s\","
			    "service=\"%s\"", a->token.realm, a->token.service);
		else
			hdr_add(&h, "WWW-Authenticate: Bearer realm=\"%s://%s/"
			    "token\",service=\"%s\"", a->token.tls ? "https" :
			    "http", host, a->token.service);
		if (access == API_ACCESS_CATALOG)
			hdr_add(&h, ",scope=\"registry:catalog:*\"");
		else if (access != API_ACCESS_NONE)
			hdr_add(&h, ",scope=\"repository:%s:%s\"", rt->name,
			    actions);
		hdr_add(&h, "\r\n");
	} else {
		hdr_add(&h, "WWW-Authenticate: Basic realm=\"berth\"\r\n");
	}
	http_conn_reply(c, 401, h.buf, body != NULL ? body : "",
	    body != NULL ? strlen(body) : 0,
	    r->method == HTTP_HEAD ? HTTP_REPLY_HEAD_ONLY : 0);
	free(body);
}

static void
reply_busy(struct http_conn *c, const struct http_request *r)
{
	static const char busy[] = "{\"errors\":[{\"code\":"
	    "\"TOOMANYREQUESTS\",\"message\":\"too many password "
	    "checks; retry\"}]}";

	http_conn_reply(c, 429, "Content-Type: application/json\r\n"
	    "Retry-After: 1\r\n", busy, sizeof(busy) - 1,
	    r->method == HTTP_HEAD ? HTTP_REPLY_HEAD_ONLY : 0);
}

static bool
is_bearer(const struct http_slice *h)
{
	return h != NULL && h->len > 7 && strncasecmp(h->p, "Bearer ", 7) == 0;
}

/*
 * Checks credentials (Basic, or a Bearer token in token mode) and the
 * route's access; answers 401, 403 or 429 and returns false when the
 * request may not go on. Sets a->user.
 */
static bool
authorize(struct api *a, struct http_conn *c, const struct http_request *r,
    const struct route *rt, enum api_access access)
{
	const struct http_slice *h = http_request_header(r, "Authorization");
	struct token_claims *tc = &a->claims;
	bool bearer = a->token.key != NULL && is_bearer(h);
	bool signed_in;
	unsigned need = 0, have;
	int rc;

	a->user = NULL;
	a->bearer = bearer;
	if (bearer) {
		if (token_verify(a->token.key, a->token.service, h->p + 7,
		    h->len - 7, (uint64_t)time(NULL), tc) != 0 ||
		    (tc->user[0] != '\0' &&
		    !auth_user_exists(a->auth, tc->user))) {
			/* A user removed since the token was made: no more. */
			reply_unauthorized(a, c, r, rt, access,
			    "token invalid or expired");
			return false;
		}
		if (tc->user[0] != '\0') {
			snprintf(a->user_buf, sizeof(a->user_buf), "%s", tc->user);
			a->user = a->user_buf;
		}
	} else {
		rc = auth_basic(a->auth, h != NULL ? h->p : NULL,
		    h != NULL ? h->len : 0, (uint64_t)time(NULL),
		    http_conn_peer(c), a->user_buf);
		if (rc == AUTH_BUSY) {
			reply_busy(c, r);
			return false;
		}
		if (rc == AUTH_BAD) {
			reply_unauthorized(a, c, r, rt, access,
			    "wrong user name or password");
			return false;
		}
		if (rc == AUTH_OK)
			a->user = a->user_buf;
	}
	if (a->user != NULL)
		http_conn_set_user(c, a->user);
	/* An anonymous token still counts as having asked. */
	signed_in = a->user != NULL || bearer;
	switch (access) {
	case API_ACCESS_NONE:
		/* The version check: where clients learn to send credentials. */
		if (!signed_in) {
			reply_unauthorized(a, c, r, rt, access,
			    "authentication required");
			return false;
		}
		return true;
	case API_ACCESS_CATALOG:
		if ((!signed_in && !auth_anonymous_any(a->auth)) ||
		    (bearer && !token_catalog(tc))) {
			reply_unauthorized(a, c, r, rt, access,
			    "authentication required");
			return false;
		}
		return true;        /* the list shows only what may be pulled */
	case API_ACCESS_PULL:
		need = AUTH_PULL;
		break;
	case API_ACCESS_PUSH:
		need = AUTH_PUSH;
		break;
	case API_ACCESS_DELETE:
		need = AUTH_DELETE;
		break;
	}
	/* What the rules give the caller now; a token may give less. */
	have = auth_rights(a->auth, a->user, rt->name, rt->namelen);
	if ((have & need) == need &&
	    (!bearer || (token_actions(tc, rt->name, rt->namelen) & need) ==
	    need))
		return true;
	if ((have & need) == need || a->user == NULL)
		/* Rights the token lacks: ask for a token that has them. */
		reply_unauthorized(a, c, r, rt, access,
		    "authentication required");
	else
		reply_error(c, r, 403, "DENIED", "requested access to the "
		    "resource is denied", NULL);
	return false;
}

/*
 * GET /token (Docker's token authentication): Basic credentials or none
 * (anonymous), service, one or more scope parameters. The token grants,
 * of what each scope asks, what the access rules give the caller.
 */
static void
h_token(struct api *a, struct http_conn *c, const struct http_request *r)
{
	const struct http_slice *h = http_request_header(r, "Authorization");
	struct token_access acc[TOKEN_ACCESS_MAX];
	char val[API_QUERY_VALUE_MAX_BYTES], *tok, *body;
	const char *user = NULL;
	size_t nacc = 0;
	uint64_t now = (uint64_t)time(NULL);
	long n;
	int rc;

	rc = auth_basic(a->auth, h != NULL ? h->p : NULL, h != NULL ? h->len : 0,
	    now, http_conn_peer(c), a->user_buf);
	if (rc == AUTH_BUSY) {
		reply_busy(c, r);
		return;
	}
	if (rc == AUTH_BAD || (rc == AUTH_NONE && !auth_anonymous_any(a->auth))) {
		json_t *doc = json_pack("{s:[{s:s,s:s}]}", "errors", "code",
		    "UNAUTHORIZED", "message", rc == AUTH_BAD ?
		    "wrong user name or password" : "authentication required");
		char *b = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

		json_decref(doc);
		http_conn_reply(c, 401, "Content-Type: application/json\r\n"
		    "WWW-Authenticate: Basic realm=\"berth\"\r\n",
		    b != NULL ? b : "", b != NULL ? strlen(b) : 0, 0);
		free(b);
		return;
	}
	if (rc == AUTH_OK) {
		user = a->user_buf;
		http_conn_set_user(c, user);
	}
	n = query_get(r->query, "service", val, sizeof(val));
	if (n >= 0 && strcmp(val, a->token.service) != 0) {
		reply_error(c, r, 400, "UNSUPPORTED", "unknown service", val);
		return;
	}
	for (unsigned i = 0; nacc < TOKEN_ACCESS_MAX; i++) {
		char *sp, *save = NULL;

		n = query_nth(r->query, "scope", i, val, sizeof(val));
		if (n == -1)
			break;
		if (n < 0) {
			reply_error(c, r, 400, "UNSUPPORTED", "malformed scope",
			    NULL);
			return;
		}
		/* Several scopes may also share one parameter, space-separated. */
		for (sp = strtok_r(val, " ", &save); sp != NULL &&
		    nacc < TOKEN_ACCESS_MAX; sp = strtok_r(NULL, " ", &save)) {
			struct token_access *t = &acc[nacc];

			if (token_scope_parse(sp, strlen(sp), t) != 0)
				continue;       /* unknown kinds grant nothing */
			if (t->catalog) {
				nacc++;
				continue;
			}
			t->actions &= auth_rights(a->auth, user, t->name,
			    strlen(t->name));
			if (t->actions != 0)
				nacc++;
		}
	}
	tok = token_issue(a->token.key, a->token.service, user, acc, nacc, now,
	    a->token.ttl);
	if (tok == NULL) {
		reply_error(c, r, 500, "UNKNOWN", "cannot sign a token", NULL);
		return;
	}
	{
		char issued[32];
		time_t t = (time_t)now;
		struct tm tm;
		json_t *doc;

		gmtime_r(&t, &tm);
		strftime(issued, sizeof(issued), "%Y-%m-%dT%H:%M:%SZ", &tm);
		doc = json_pack("{s:s,s:s,s:I,s:s}", "token", tok, "access_token",
		    tok, "expires_in", (json_int_t)a->token.ttl, "issued_at",
		    issued);
		body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
		json_decref(doc);
	}
	free(tok);
	if (body == NULL) {
		reply_error(c, r, 500, "UNKNOWN", "out of memory", NULL);
		return;
	}
	http_conn_reply(c, 200, "Content-Type: application/json\r\n"
	    "Cache-Control: no-store\r\n", body, strlen(body), 0);
	free(body);
}

/* Below these a store is not ready for pushes. */
#define API_READY_MAP_FREE_PERCENT      2
#define API_READY_DISK_FREE_BYTES       ((uint64_t)256 << 20)

/*
 * GET /healthz: the process answers. GET /readyz: the store is open,
 * takes writes, and its map and disk have room; 503 with the reason if
 * not. Both unauthenticated and cheap, for load balancers.
 */
static void
h_health(struct api *a, struct http_conn *c, const struct http_request *r,
    bool ready)
{
	struct store_health sh;
	const char *why = NULL;
	char body[256];
	int n;

	if (ready) {
		if (store_health(a->st, &sh) != 0)
			why = "the store cannot be read";
		else if (!sh.writable)
			why = "the store refuses writes after a failed commit";
		else if (sh.map_size > 0 && (sh.map_size - sh.map_used) * 100 <
		    sh.map_size * API_READY_MAP_FREE_PERCENT)
			why = "the store's map is nearly full";
		else if (sh.disk_free < API_READY_DISK_FREE_BYTES)
			why = "the disk is nearly full";
	}
	n = snprintf(body, sizeof(body), why != NULL ?
	    "{\"status\":\"unavailable\",\"reason\":\"%s\"}" :
	    "{\"status\":\"%s\"}", why != NULL ? why : ready ? "ready" :
	    "alive");
	http_conn_reply(c, why != NULL ? 503 : 200,
	    "Content-Type: application/json\r\nCache-Control: no-store\r\n",
	    body, (size_t)n, r->method == HTTP_HEAD ? HTTP_REPLY_HEAD_ONLY : 0);
}

void
api_set_token(struct api *a, const struct api_token *t)
{
	a->token = *t;
}

struct auth *
api_set_auth(struct api *a, struct auth *auth)
{
	struct auth *old = a->auth;

	a->auth = auth;
	return old;
}

void
api_handle(void *arg, struct http_conn *c, const struct http_request *r)
{
	struct api *a = arg;
	struct route rt;
	bool path_known = false;
	int rc;

	if ((r->method == HTTP_GET || r->method == HTTP_HEAD) &&
	    (http_slice_eq(r->path, "/healthz") ||
	    http_slice_eq(r->path, "/readyz"))) {
		http_conn_set_subject(c, MR_HEALTH, NULL, NULL, 0);
		h_health(a, c, r, r->path.len == 7);
		return;
	}
	if (a->token.key != NULL && a->auth != NULL && r->path.len == 6 &&
	    memcmp(r->path.p, "/token", 6) == 0) {
		http_conn_set_subject(c, MR_TOKEN, NULL, NULL, 0);
		if (r->method == HTTP_GET)
			h_token(a, c, r);
		else
			reply_error(c, r, 405, "UNSUPPORTED", "use GET", NULL);
		return;
	}
	rc = route_parse(r->path, &rt);
	if (rc == 400) {
		reply_error(c, r, 400, "NAME_INVALID", "invalid repository name",
		    NULL);
		return;
	}
	if (rc != 0) {
		reply_error(c, r, 404, "NAME_UNKNOWN", "not an API path", NULL);
		return;
	}
	{
		static const enum metrics_route mr[] = {
			[R_BASE] = MR_BASE, [R_CATALOG] = MR_CATALOG,
			[R_TAGS] = MR_TAGS, [R_MANIFEST] = MR_MANIFEST,
			[R_BLOB] = MR_BLOB, [R_UPLOADS] = MR_UPLOAD,
			[R_UPLOAD] = MR_UPLOAD, [R_REFERRERS] = MR_REFERRERS,
		};

		http_conn_set_subject(c, mr[rt.kind], rt.name, rt.ref.p,
		    rt.ref.len);
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (routes[i].kind != rt.kind)
			continue;
		path_known = true;
		if (routes[i].method == r->method) {
			a->user = NULL;
			a->bearer = false;
			if (a->auth != NULL &&
			    !authorize(a, c, r, &rt, routes[i].access))
				return;
			routes[i].fn(a, c, r, &rt);
			a->user = NULL;
			return;
		}
	}
	if (path_known) {
		struct hdrs h = { .len = 0 };
		char *body = NULL;
		json_t *doc;
		const char *sep = "";

		/* RFC 9110 15.5.6: a 405 lists what the path does allow. */
		hdr_add(&h, "Content-Type: application/json\r\nAllow: ");
		for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
			if (routes[i].kind != rt.kind)
				continue;
			hdr_add(&h, "%s%s", sep, method_name(routes[i].method));
			sep = ", ";
		}
		hdr_add(&h, "\r\n");
		doc = json_pack("{s:[{s:s,s:s}]}", "errors", "code", "UNSUPPORTED",
		    "message", "method not supported on this path");
		if (doc != NULL)
			body = json_dumps(doc, JSON_COMPACT);
		json_decref(doc);
		http_conn_reply(c, 405, h.buf, body != NULL ? body : "",
		    body != NULL ? strlen(body) : 0,
		    r->method == HTTP_HEAD ? HTTP_REPLY_HEAD_ONLY : 0);
		free(body);
		return;
	}
	reply_error(c, r, 404, "UNSUPPORTED", "method not supported on this path",
	    NULL);
}

struct api *
api_new(struct store *st, struct event_base *base, const struct api_config *cfg)
{
	struct api *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->st = st;
	a->base = base;
	a->cfg = *cfg;
	a->release = evtimer_new(base, api_release_cb, a);
	if (a->release == NULL) {
		free(a);
		return NULL;
	}
	return a;
}

void
api_free(struct api *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < API_UPLOAD_TABLE_SIZE; i++)
		while (a->table[i] != NULL)
			session_free(a->table[i]);
	if (a->release != NULL)
		event_free(a->release);
	free(a);
}
