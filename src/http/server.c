/*
 * The HTTP/1.1 connection state machine on bufferevents.
 *
 * States: HEAD (waiting for a whole request head, under a deadline),
 * HANDLER (the handler owns the request), BODY (streaming the body to the
 * handler), WRITING (the response leaves; a streamed body is refilled as
 * the socket drains). Reading is enabled only in HEAD and BODY, so bytes of
 * a pipelined next request wait in the input buffer until the response to
 * this one is out. A connection that breaks while the handler owns it is
 * only marked: the handler's reply releases it.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>

#include <jansson.h>

#include "http/server.h"
#include "metrics/metrics.h"
#include "util/log.h"

#define HTTP_STREAM_CHUNK_BYTES ((size_t)1 << 20)
#define HTTP_STREAM_LOWMARK_BYTES ((size_t)256 << 10)
/* Most bytes read or written per socket event (libevent's default: 16 KiB). */
#define HTTP_IO_SLICE_BYTES ((size_t)256 << 10)
/*
 * TLS records (16 KiB at most) gather in a buffer of this size between
 * OpenSSL and the socket, so that one write(2) carries a slice's worth of
 * them rather than one each (docs/PERFORMANCE.md).
 */
#define HTTP_TLS_WBUF_BYTES HTTP_IO_SLICE_BYTES
#define HTTP_PEER_BYTES 64
#define HTTP_USER_BYTES 65
#define HTTP_LISTENERS_MAX 16
#define HTTP_STATUS_LINE_MAX 64
/*
 * After the last answer to a request whose body was not read, the rest of
 * the body is read and dropped for up to this long before the close, so the
 * client is not reset (losing the answer) while it still sends.
 */
#define HTTP_LINGER_MS 2000
#define HTTP_LINGER_MAX_S 10            /* however long the client sends */

/* Unread request bodies up to this size are drained to keep the connection. */
#define HTTP_DISCARD_MAX_BYTES ((uint64_t)1 << 20)

/* Buffer segments looked at per pass when a partial head is checked. */
#define HTTP_HEAD_IOVECS_MAX 16

enum conn_state { ST_HEAD, ST_HANDLER, ST_BODY, ST_WRITING, ST_LINGER };

struct http_server {
	struct event_base *base;
	struct http_limits limits;
	http_handler_fn *handler;
	void *handler_arg;
	SSL_CTX *ssl_ctx;
	struct evconnlistener *listeners[HTTP_LISTENERS_MAX];
	bool listener_tls[HTTP_LISTENERS_MAX];
	size_t nlisteners;
	size_t nconns;
};

struct http_conn {
	struct http_server *srv;
	struct bufferevent *bev;
	struct event *deadline;
	/*
	 * TLS: OpenSSL writes its records into wbuf, which reaches the socket
	 * when full or flushed (conn_flush); flush_ev waits for the socket
	 * when a flush could not finish.
	 */
	BIO *wbuf;
	struct event *flush_ev;
	enum conn_state state;
	bool tls;
	bool broken;            /* peer gone or protocol error: close when done */
	bool keep_alive;
	bool paused;
	char peer[HTTP_PEER_BYTES];
	char user[HTTP_USER_BYTES];     /* signed-in user of this request, or "-" */
	/* What the request is about (for the log and metrics). */
	int route;
	char repo[256], ref[136];
	char req_idstr[20];     /* "r" and a hex number, unique per process */
	uint64_t body_bytes;    /* request body bytes read */
	/* The body's rate window: since the body began or reading resumed. */
	struct timespec rate_t0;
	uint64_t rate_bytes0;

	char *head;             /* the current request head, owned */
	struct http_request req;
	struct timespec started;

	/* body */
	http_body_data_fn *on_data;
	http_body_end_fn *on_end;
	void *body_arg;
	uint64_t body_left;
	bool body_chunked;
	bool body_expected;     /* the request declared a body */
	bool body_read;         /* ... and it was read to its end */
	bool body_started;      /* reading it began (a reply never re-reads) */
	struct http_chunked chunked;

	/* a reply held back while an unread request body is discarded */
	struct timespec linger_start;
	bool discarding;
	uint64_t discarded;
	int held_status;
	char *held_headers;
	void *held_body;
	size_t held_len;
	unsigned held_flags;

	/* response */
	int status;
	uint64_t resp_bytes;
	uint64_t stream_left;
	http_stream_fill_fn *fill;
	http_stream_done_fn *stream_done;
	void *stream_arg;
};

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_try_head(struct http_conn *c);

static const char *
status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 307: return "Temporary Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: return "Status";
	}
}

static void
conn_free(struct http_conn *c)
{
	if (c->stream_done != NULL) {
		http_stream_done_fn *done = c->stream_done;

		c->stream_done = NULL;
		done(c->stream_arg);
	}
	free(c->held_headers);
	free(c->held_body);
	if (c->deadline != NULL)
		event_free(c->deadline);
	if (c->flush_ev != NULL)
		event_free(c->flush_ev);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	free(c->head);
	c->srv->nconns--;
	free(c);
}

void
http_conn_set_user(struct http_conn *c, const char *user)
{
	snprintf(c->user, sizeof(c->user), "%s", user);
}

void
http_conn_set_subject(struct http_conn *c, int route, const char *repo,
    const char *ref, size_t reflen)
{
	c->route = route;
	snprintf(c->repo, sizeof(c->repo), "%s", repo != NULL ? repo : "");
	if (reflen >= sizeof(c->ref))
		reflen = sizeof(c->ref) - 1;
	memcpy(c->ref, ref != NULL ? ref : "", ref != NULL ? reflen : 0);
	c->ref[ref != NULL ? reflen : 0] = '\0';
}

static void
access_log(struct http_conn *c)
{
	struct timespec now;
	double ms;

	if (c->head == NULL || c->srv->limits.quiet)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (double)(now.tv_sec - c->started.tv_sec) * 1e3 +
	    (double)(now.tv_nsec - c->started.tv_nsec) / 1e6;
	metrics_request((enum metrics_route)c->route, c->status, c->body_bytes,
	    c->resp_bytes, ms / 1e3);
	if (c->srv->limits.access_log_json) {
		/* jansson escapes what the client sent. */
		json_t *o = json_pack("{s:s,s:s,s:s,s:s%,s:s%,s:s,s:s,s:i,s:I,"
		    "s:I,s:f}", "id", c->req_idstr, "peer", c->peer, "user",
		    c->user[0] != '\0' ? c->user : "",
		    "method", c->req.method_name.p, c->req.method_name.len,
		    "target", c->req.target.p, c->req.target.len,
		    "repository", c->repo, "reference", c->ref,
		    "status", c->status, "bytes_in", (json_int_t)c->body_bytes,
		    "bytes_out", (json_int_t)c->resp_bytes, "ms", ms);
		char *line = o != NULL ? json_dumps(o, JSON_COMPACT |
		    JSON_ENSURE_ASCII) : NULL;

		if (line != NULL)
			log_info("access %s", line);
		free(line);
		json_decref(o);
		return;
	}
	log_info("access %s %s %s %.*s %.*s %d %llu %.1fms", c->req_idstr,
	    c->peer, c->user[0] != '\0' ? c->user : "-",
	    (int)c->req.method_name.len, c->req.method_name.p,
	    (int)c->req.target.len, c->req.target.p, c->status,
	    (unsigned long long)c->resp_bytes, ms);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	(void)fd;
	(void)what;
	/* Armed while waiting for a head or lingering: nobody owns the conn. */
	if (c->state == ST_HEAD)
		log_debug("http %s: request head not received in time", c->peer);
	conn_free(c);
}

/* The answer is out; drop what the client still sends, then close. */
static void
conn_linger(struct http_conn *c)
{
	struct timeval tv = { HTTP_LINGER_MS / 1000, (HTTP_LINGER_MS % 1000) * 1000 };

	c->state = ST_LINGER;
	clock_gettime(CLOCK_MONOTONIC, &c->linger_start);
	evbuffer_drain(bufferevent_get_input(c->bev),
	    evbuffer_get_length(bufferevent_get_input(c->bev)));
	bufferevent_disable(c->bev, EV_WRITE);
	/* Our FIN tells the client the answer is complete. */
	shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	bufferevent_enable(c->bev, EV_READ);
	evtimer_add(c->deadline, &tv);
}

static void
conn_wait_head(struct http_conn *c)
{
	struct timeval tv = { c->srv->limits.header_timeout_s, 0 };

	c->state = ST_HEAD;
	free(c->head);
	c->head = NULL;
	memset(&c->req, 0, sizeof(c->req));
	c->on_data = NULL;
	c->on_end = NULL;
	c->body_expected = false;
	c->body_read = false;
	c->body_started = false;
	c->paused = false;
	c->status = 0;
	c->resp_bytes = 0;
	c->user[0] = '\0';
	c->route = 0;
	{
		static uint64_t next_id;        /* the loop's thread only */

		snprintf(c->req_idstr, sizeof(c->req_idstr), "r%llx",
		    (unsigned long long)++next_id);
	}
	c->repo[0] = '\0';
	c->ref[0] = '\0';
	c->body_bytes = 0;
	evtimer_add(c->deadline, &tv);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_enable(c->bev, EV_READ);
	conn_try_head(c);
}

/* A response to a request that could not be parsed; then close. */
static void
conn_fail(struct http_conn *c, int status)
{
	char buf[256];
	int n;

	evtimer_del(c->deadline);
	bufferevent_disable(c->bev, EV_READ);
	c->keep_alive = false;
	c->status = status;
	c->state = ST_WRITING;
	n = snprintf(buf, sizeof(buf), "HTTP/1.1 %d %s\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n", status, status_text(status));
	bufferevent_write(c->bev, buf, (size_t)n);
	log_info("http %s: refused request: %d", c->peer, status);
}

/*
 * Whether the first n bytes of a head still arriving hold a bare LF, or a
 * CR followed by anything but LF (RFC 9112 2.2). The parser refuses these
 * once the head is whole; a client that ends its lines with bare LF only
 * would otherwise wait for the header timeout instead of its 400.
 */
static bool
head_has_bare_eol(struct evbuffer *in, size_t n)
{
	struct evbuffer_iovec v[HTTP_HEAD_IOVECS_MAX];
	struct evbuffer_ptr pos;
	unsigned char prev = 0;
	size_t seen = 0;
	int nv;

	if (evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET) != 0)
		return false;
	while (seen < n) {
		nv = evbuffer_peek(in, (ev_ssize_t)(n - seen), &pos, v,
		    HTTP_HEAD_IOVECS_MAX);
		if (nv <= 0)
			break;
		if (nv > HTTP_HEAD_IOVECS_MAX)
			nv = HTTP_HEAD_IOVECS_MAX;
		for (int i = 0; i < nv && seen < n; i++) {
			const unsigned char *b = v[i].iov_base;
			size_t len = v[i].iov_len < n - seen ? v[i].iov_len :
			    n - seen;

			for (size_t k = 0; k < len; k++) {
				if (b[k] == '\n' && prev != '\r')
					return true;
				if (prev == '\r' && b[k] != '\n')
					return true;
				prev = b[k];
			}
			seen += len;
		}
		if (evbuffer_ptr_set(in, &pos, seen, EVBUFFER_PTR_SET) != 0)
			break;
	}
	return false;
}

static void
conn_try_head(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	const struct http_limits *l = &c->srv->limits;
	size_t avail = evbuffer_get_length(in), headlen;
	struct evbuffer_ptr end;
	int rc;

	if (c->state != ST_HEAD || avail == 0)
		return;
	/* RFC 9112 2.2: empty lines before a request line are ignored. */
	while (avail >= 2) {
		char crlf[2];

		if (evbuffer_copyout(in, crlf, 2) != 2 || crlf[0] != '\r' ||
		    crlf[1] != '\n')
			break;
		evbuffer_drain(in, 2);
		avail -= 2;
	}
	if (avail == 0)
		return;
	/*
	 * A TLS ClientHello (handshake record 0x16, version 3.x) on a plain
	 * listener: clients probing for TLS must get an answer at once, not
	 * wait for a head that never comes.
	 */
	if (!c->tls) {
		unsigned char b[2];

		if (evbuffer_copyout(in, b, avail >= 2 ? 2 : 1) >= 1 &&
		    b[0] == 0x16 && (avail < 2 || b[1] == 0x03)) {
			conn_fail(c, 400);
			return;
		}
	}
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0) {
		if (head_has_bare_eol(in, avail < l->header_max_bytes ?
		    avail : l->header_max_bytes))
			conn_fail(c, 400);
		else if (avail > l->header_max_bytes)
			conn_fail(c, 431);
		return;
	}
	headlen = (size_t)end.pos + 4;
	if (headlen > l->header_max_bytes) {
		conn_fail(c, 431);
		return;
	}
	c->head = malloc(headlen);
	if (c->head == NULL) {
		conn_fail(c, 503);
		return;
	}
	evbuffer_remove(in, c->head, headlen);
	rc = http_request_parse(c->head, headlen, l->header_max_count,
	    l->url_max_bytes, &c->req);
	if (rc != 0) {
		conn_fail(c, -rc);
		return;
	}
	evtimer_del(c->deadline);
	bufferevent_disable(c->bev, EV_READ);
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	c->keep_alive = c->req.keep_alive;
	c->body_expected = c->req.chunked ||
	    (c->req.has_length && c->req.content_length > 0);
	c->state = ST_HANDLER;
	c->srv->handler(c->srv->handler_arg, c, &c->req);
}

static void
body_finish(struct http_conn *c, int status)
{
	http_body_end_fn *end = c->on_end;

	c->state = ST_HANDLER;
	bufferevent_disable(c->bev, EV_READ);
	if (status == 0)
		c->body_read = true;
	else if (status < 0)
		c->broken = true;
	else
		c->keep_alive = false;  /* answer, then close: position unknown */
	c->on_data = NULL;
	c->on_end = NULL;
	end(c->body_arg, status);
}

/*
 * Whether a handler that was offered n body bytes and took used kept to
 * its contract (all of them, or fewer with the body paused); if not, the
 * connection is failed with 500 rather than offering the bytes forever.
 */
static bool
body_taken(struct http_conn *c, size_t n, size_t used)
{
	if (used == n || (used < n && c->paused))
		return true;
	log_error("http %s: body handler took %zu of %zu bytes unpaused",
	    c->peer, used, n);
	body_finish(c, 500);
	return false;
}

/* Hands buffered body bytes to the handler until paused or out of data. */
static void
body_feed(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (c->state == ST_BODY && !c->paused) {
		struct evbuffer_iovec v;
		size_t used = 0;
		int rc = 0;

		if (!c->body_chunked && c->body_left == 0) {
			body_finish(c, 0);
			return;
		}
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return;
		if (!c->body_chunked) {
			size_t n = v.iov_len < c->body_left ? v.iov_len :
			    (size_t)c->body_left;

			used = n;
			rc = c->on_data(c->body_arg, v.iov_base, n, &used);
			if (rc == 0 && !body_taken(c, n, used))
				return;
			c->body_left -= used;
			c->body_bytes += used;
		} else {
			const uint8_t *d;
			size_t dl, took = 0;
			int crc = http_chunked_feed(&c->chunked, v.iov_base,
			    v.iov_len, &used, &d, &dl);

			if (crc < 0) {
				evbuffer_drain(in, used);
				body_finish(c, 400);
				return;
			}
			if (dl > 0) {
				took = dl;
				rc = c->on_data(c->body_arg, d, dl, &took);
				if (rc == 0 && !body_taken(c, dl, took))
					return;
				/* What was not taken is read again on resume. */
				http_chunked_unread(&c->chunked, dl - took);
				used -= dl - took;
			}
			c->body_bytes += took;
			evbuffer_drain(in, used);
			if (rc != 0) {
				body_finish(c, rc);
				return;
			}
			if (crc == 1) {
				body_finish(c, 0);
				return;
			}
			continue;
		}
		evbuffer_drain(in, used);
		if (rc != 0) {
			body_finish(c, rc);
			return;
		}
	}
}

static void
rate_window_start(struct http_conn *c)
{
	clock_gettime(CLOCK_MONOTONIC, &c->rate_t0);
	c->rate_bytes0 = c->body_bytes;
}

/*
 * Whether a body arrives slower than limits.min_body_rate, on average over
 * its window, once the window is longer than the I/O timeout: a client
 * dribbling one byte per timeout would otherwise hold its slot forever.
 */
static bool
body_too_slow(struct http_conn *c)
{
	const struct http_limits *l = &c->srv->limits;
	struct timespec now;
	double el;

	if (l->min_body_rate == 0 || c->paused)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &now);
	el = (double)(now.tv_sec - c->rate_t0.tv_sec) +
	    (double)(now.tv_nsec - c->rate_t0.tv_nsec) / 1e9;
	if (el <= (double)l->io_timeout_s)
		return false;
	if ((double)(c->body_bytes - c->rate_bytes0) / el <
	    (double)l->min_body_rate)
		return true;
	/* A fast start earns nothing later: each window is judged alone. */
	if (el > 2.0 * (double)l->io_timeout_s)
		rate_window_start(c);
	return false;
}

void
http_conn_read_body(struct http_conn *c, http_body_data_fn *data,
    http_body_end_fn *end, void *arg)
{
	struct timeval tv = { c->srv->limits.io_timeout_s, 0 };

	c->on_data = data;
	c->on_end = end;
	c->body_arg = arg;
	c->body_started = true;
	c->body_chunked = c->req.chunked;
	c->body_left = c->req.has_length ? c->req.content_length : 0;
	http_chunked_init(&c->chunked);
	c->state = ST_BODY;
	c->paused = false;
	rate_window_start(c);
	if (c->broken) {
		body_finish(c, -1);
		return;
	}
	if (c->req.expect_continue && c->body_expected)
		bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ);
	body_feed(c);
}

void
http_conn_pause(struct http_conn *c)
{
	if (c->state != ST_BODY || c->paused)
		return;
	c->paused = true;
	bufferevent_disable(c->bev, EV_READ);
}

void
http_conn_resume(struct http_conn *c)
{
	if (c->state != ST_BODY || !c->paused)
		return;
	c->paused = false;
	/* A pause is the server's doing: the client's rate starts afresh. */
	rate_window_start(c);
	bufferevent_enable(c->bev, EV_READ);
	body_feed(c);
}

struct event_base *
http_conn_base(struct http_conn *c)
{
	return c->srv->base;
}

const char *
http_conn_peer(const struct http_conn *c)
{
	return c->peer;
}

/* Status line and the headers every response carries. */
static void
reply_head(struct http_conn *c, int status, const char *headers,
    uint64_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	/*
	 * A body left unread (or read only in part) leaves the stream
	 * position unknown: this must be the last response.
	 */
	if (c->body_expected && !c->body_read)
		c->keep_alive = false;
	c->status = status;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status,
	    status_text(status));
	/* RFC 9110 8.6: no Content-Length on a 204. */
	if (status != 204)
		evbuffer_add_printf(out, "Content-Length: %llu\r\n",
		    (unsigned long long)len);
	evbuffer_add_printf(out, "Docker-Distribution-API-Version: registry/2.0"
	    "\r\n%s%s\r\n", headers != NULL ? headers : "",
	    !c->keep_alive ? "Connection: close\r\n" :
	    c->req.minor == 0 ? "Connection: keep-alive\r\n" : "");
}

/* A reply to a connection that broke meanwhile only releases it. */
static bool
reply_to_broken(struct http_conn *c, int status)
{
	if (!c->broken)
		return false;
	c->status = status;
	access_log(c);
	conn_free(c);
	return true;
}

static int
discard_data(void *arg, const uint8_t *p, size_t n, size_t *used)
{
	struct http_conn *c = arg;

	(void)p;
	(void)used;
	c->discarded += n;
	return c->discarded > HTTP_DISCARD_MAX_BYTES ? 413 : 0;
}

static void
discard_end(void *arg, int status)
{
	struct http_conn *c = arg;
	char *headers = c->held_headers;
	void *body = c->held_body;

	(void)status;   /* body_finish already chose keep-alive or broken */
	c->discarding = false;
	c->held_headers = NULL;
	c->held_body = NULL;
	http_conn_reply(c, c->held_status, headers, body, c->held_len,
	    c->held_flags);
	free(headers);
	free(body);
}

/*
 * A reply to a request whose body was not read: a client still sending
 * that body would meet a closed socket (and lose the reply to a reset), so
 * a small body is read and dropped first and the connection kept. Bodies
 * the client holds back for 100 Continue are never sent; large ones end
 * the connection after the reply.
 */
static bool
reply_hold_for_discard(struct http_conn *c, int status, const char *headers,
    const void *body, size_t len, unsigned flags)
{
	if (c->broken || c->discarding || !c->body_expected || c->body_read ||
	    c->body_started || c->state != ST_HANDLER || c->req.expect_continue ||
	    (c->req.has_length && c->req.content_length > HTTP_DISCARD_MAX_BYTES))
		return false;
	c->held_headers = strdup(headers != NULL ? headers : "");
	c->held_body = malloc(!(flags & HTTP_REPLY_HEAD_ONLY) && len > 0 ?
	    len : 1);
	if (c->held_headers == NULL || c->held_body == NULL) {
		free(c->held_headers);
		free(c->held_body);
		c->held_headers = NULL;
		c->held_body = NULL;
		return false;
	}
	if (!(flags & HTTP_REPLY_HEAD_ONLY) && body != NULL && len > 0)
		memcpy(c->held_body, body, len);
	c->held_status = status;
	c->held_len = len;
	c->held_flags = flags;
	c->discarding = true;
	c->discarded = 0;
	http_conn_read_body(c, discard_data, discard_end, c);
	return true;
}

void
http_conn_reply(struct http_conn *c, int status, const char *headers,
    const void *body, size_t len, unsigned flags)
{
	struct timeval tv = { c->srv->limits.io_timeout_s, 0 };

	if (reply_hold_for_discard(c, status, headers, body, len, flags) ||
	    reply_to_broken(c, status))
		return;
	c->state = ST_WRITING;
	reply_head(c, status, headers, len);
	if (!(flags & HTTP_REPLY_HEAD_ONLY) && len > 0) {
		bufferevent_write(c->bev, body, len);
		c->resp_bytes = len;
	}
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	bufferevent_enable(c->bev, EV_WRITE);
}

void
http_conn_reply_stream(struct http_conn *c, int status, const char *headers,
    uint64_t len, http_stream_fill_fn *fill, http_stream_done_fn *done,
    void *arg)
{
	struct timeval tv = { c->srv->limits.io_timeout_s, 0 };

	c->fill = fill;
	c->stream_done = done;
	c->stream_arg = arg;
	c->stream_left = len;
	if (reply_to_broken(c, status))
		return;
	c->state = ST_WRITING;
	reply_head(c, status, headers, len);
	bufferevent_setwatermark(c->bev, EV_WRITE, HTTP_STREAM_LOWMARK_BYTES, 0);
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	bufferevent_enable(c->bev, EV_WRITE);
	conn_write_cb(c->bev, c);
}

/*
 * Sends what OpenSSL left in the connection's write buffer: 1 when it is
 * empty, 0 when the socket is full (conn_flush_cb comes back to
 * conn_write_cb once it is out), -1 when the connection failed.
 */
static int
conn_flush(struct http_conn *c)
{
	struct timeval tv = { c->srv->limits.io_timeout_s, 0 };

	if (c->wbuf == NULL || BIO_wpending(c->wbuf) == 0)
		return 1;
	if (BIO_flush(c->wbuf) == 1)
		return 1;
	if (!BIO_should_retry(c->wbuf))
		return -1;
	log_debug("http %s: %d bytes wait for the socket", c->peer,
	    (int)BIO_wpending(c->wbuf));
	event_add(c->flush_ev, &tv);
	return 0;
}

/* An answer whose last bytes could not be sent: the connection ends. */
static void
conn_unsent(struct http_conn *c)
{
	log_debug("http %s: answer not sent", c->peer);
	c->broken = true;
	access_log(c);
	conn_free(c);
}

static void
conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	int rc = (what & EV_TIMEOUT) ? -1 : conn_flush(c);

	(void)fd;
	if (rc == 0)
		return;
	if (rc > 0) {
		conn_write_cb(c->bev, c);
		return;
	}
	/* Elsewhere libevent meets the broken socket on its next read. */
	if (c->state == ST_WRITING || c->state == ST_LINGER)
		conn_unsent(c);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(bev);
	int rc;

	if (c->state != ST_WRITING) {
		/* A 100 Continue, say: it must reach the client now. */
		if (evbuffer_get_length(out) == 0)
			(void)conn_flush(c);
		return;
	}
	while (c->stream_left > 0 &&
	    evbuffer_get_length(out) < HTTP_STREAM_CHUNK_BYTES) {
		size_t want = c->stream_left < HTTP_STREAM_CHUNK_BYTES ?
		    (size_t)c->stream_left : HTTP_STREAM_CHUNK_BYTES;
		long n = c->fill(c->stream_arg, out, want);

		if (n <= 0 || (uint64_t)n > c->stream_left) {
			log_warn("http %s: response body failed midway", c->peer);
			c->broken = true;
			access_log(c);
			conn_free(c);
			return;
		}
		c->stream_left -= (uint64_t)n;
		c->resp_bytes += (uint64_t)n;
	}
	if (c->stream_left > 0 || evbuffer_get_length(out) > 0)
		return;
	/* OpenSSL has every byte; the last records may wait in its buffer. */
	rc = conn_flush(c);
	if (rc == 0)
		return;
	if (rc < 0) {
		conn_unsent(c);
		return;
	}
	/* Everything is out. */
	if (c->stream_done != NULL) {
		http_stream_done_fn *done = c->stream_done;

		c->stream_done = NULL;
		done(c->stream_arg);
	}
	access_log(c);
	if (!c->keep_alive || c->broken) {
		if (!c->broken && c->body_expected && !c->body_read)
			conn_linger(c);
		else
			conn_free(c);
		return;
	}
	conn_wait_head(c);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;

	if (c->state == ST_HEAD) {
		conn_try_head(c);
	} else if (c->state == ST_BODY) {
		body_feed(c);
		if (c->state == ST_BODY && body_too_slow(c)) {
			log_info("http %s: body slower than %llu bytes/s: closed",
			    c->peer, (unsigned long long)
			    c->srv->limits.min_body_rate);
			c->broken = true;
			body_finish(c, -1);
		}
	}
	else if (c->state == ST_LINGER) {
		struct timeval tv = { HTTP_LINGER_MS / 1000,
		    (HTTP_LINGER_MS % 1000) * 1000 };
		struct timespec now;

		evbuffer_drain(bufferevent_get_input(bev),
		    evbuffer_get_length(bufferevent_get_input(bev)));
		/* Still sending: wait on, but not forever. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - c->linger_start.tv_sec < HTTP_LINGER_MAX_S)
			evtimer_add(c->deadline, &tv);
	}
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;

	(void)bev;
	/* A finished TLS handshake is news, not trouble. */
	if (what == BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_ERROR) {
		unsigned long e;

		while ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
			char buf[256];

			ERR_error_string_n(e, buf, sizeof(buf));
			log_debug("http %s: tls: %s", c->peer, buf);
		}
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_debug("http %s: timed out", c->peer);
	c->broken = true;
	switch (c->state) {
	case ST_HEAD:
		conn_free(c);
		break;
	case ST_BODY:
		body_finish(c, -1);
		break;
	case ST_HANDLER:
		/* The handler's reply releases the connection. */
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		break;
	case ST_WRITING:
		access_log(c);
		conn_free(c);
		break;
	case ST_LINGER:
		conn_free(c);
		break;
	}
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct http_server *s = arg;
	struct http_conn *c;
	bool tls = false;
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	(void)salen;
	for (size_t i = 0; i < s->nlisteners; i++)
		if (s->listeners[i] == l)
			tls = s->listener_tls[i];
	if (s->nconns >= s->limits.max_connections) {
		log_warn("http: connection limit (%zu) reached; refusing",
		    s->limits.max_connections);
		evutil_closesocket(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	/*
	 * Responses leave in several writes (head, TLS records, the tail of a
	 * body); with Nagle's algorithm the last small one waits for the ACK
	 * the client delays, 40 ms on Linux.
	 */
	{
		int one = 1;

		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	c->srv = s;
	c->tls = tls;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;

		evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

		evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(c->peer, sizeof(c->peer), "[%s]:%d", host, port);
	}
	if (tls) {
		SSL *ssl = SSL_new(s->ssl_ctx);
		BIO *sock = BIO_new_socket((int)fd, BIO_NOCLOSE);
		BIO *wbuf = BIO_new(BIO_f_buffer());

		if (ssl == NULL || sock == NULL || wbuf == NULL ||
		    BIO_set_write_buffer_size(wbuf, HTTP_TLS_WBUF_BYTES) != 1 ||
		    BIO_up_ref(sock) != 1) {
			SSL_free(ssl);
			BIO_free(sock);
			BIO_free(wbuf);
			evutil_closesocket(fd);
			free(c);
			return;
		}
		/*
		 * OpenSSL reads the socket directly and writes through wbuf;
		 * libevent finds the socket under both and takes them as set.
		 * SSL_free frees wbuf and both references to sock.
		 */
		BIO_push(wbuf, sock);
		SSL_set_bio(ssl, sock, wbuf);
		c->wbuf = wbuf;
		c->bev = bufferevent_openssl_socket_new(s->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		else
			SSL_free(ssl);
		c->flush_ev = event_new(s->base, fd, EV_WRITE, conn_flush_cb, c);
	} else {
		c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	c->deadline = evtimer_new(s->base, deadline_cb, c);
	s->nconns++;
	if (c->bev == NULL || c->deadline == NULL ||
	    (tls && c->flush_ev == NULL)) {
		if (c->bev == NULL)
			evutil_closesocket(fd);
		conn_free(c);
		return;
	}
	/*
	 * libevent moves at most 16 KiB per callback by default: a 1 GiB
	 * body would take 65536 trips through the loop each way.
	 */
	bufferevent_set_max_single_read(c->bev, HTTP_IO_SLICE_BYTES);
	bufferevent_set_max_single_write(c->bev, HTTP_IO_SLICE_BYTES);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	conn_wait_head(c);
}

struct http_server *
http_server_new(struct event_base *base, const struct http_limits *limits,
    http_handler_fn *handler, void *arg)
{
	struct http_server *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->base = base;
	s->limits = *limits;
	s->handler = handler;
	s->handler_arg = arg;
	return s;
}

void
http_server_set_tls(struct http_server *s, SSL_CTX *ctx)
{
	SSL_CTX_free(s->ssl_ctx);
	s->ssl_ctx = ctx;
}

/*
 * evutil_parse_sockaddr_port() refuses port 0, which asks the kernel for a
 * free port (tests use it); parse with port 1 and clear it.
 */
static int
listen_addr_parse(const char *addr, struct sockaddr_storage *ss, int *sslen)
{
	char buf[128];
	size_t n = strlen(addr);
	bool zero = n >= 2 && strcmp(addr + n - 2, ":0") == 0;

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, addr, n + 1);
	if (zero)
		buf[n - 1] = '1';
	if (evutil_parse_sockaddr_port(buf, (struct sockaddr *)ss, sslen) != 0)
		return -1;
	if (zero) {
		if (ss->ss_family == AF_INET)
			((struct sockaddr_in *)ss)->sin_port = 0;
		else
			((struct sockaddr_in6 *)ss)->sin6_port = 0;
	}
	return 0;
}

int
http_server_listen(struct http_server *s, const char *addr, bool tls,
    char *url, size_t urlsize)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct evconnlistener *l;
	char host[INET6_ADDRSTRLEN];
	int port;

	if (s->nlisteners == HTTP_LISTENERS_MAX) {
		log_error("http: at most %d listeners", HTTP_LISTENERS_MAX);
		return -1;
	}
	if (tls && s->ssl_ctx == NULL)
		return -1;
	memset(&ss, 0, sizeof(ss));
	if (listen_addr_parse(addr, &ss, &sslen) != 0) {
		log_error("http: cannot parse listen address %s (want ADDR:PORT)",
		    addr);
		return -1;
	}
	l = evconnlistener_new_bind(s->base, accept_cb, s,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    128, (struct sockaddr *)&ss, sslen);
	if (l == NULL) {
		log_error("http: cannot listen on %s: %s", addr, strerror(errno));
		return -1;
	}
	/* The real port, when 0 asked the kernel to pick one. */
	sslen = sizeof(ss);
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss,
	    (socklen_t *)&sslen);
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(url, urlsize, "%s://[%s]:%d/", tls ? "https" : "http",
		    host, port);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(url, urlsize, "%s://%s:%d/", tls ? "https" : "http",
		    host, port);
	}
	s->listeners[s->nlisteners] = l;
	s->listener_tls[s->nlisteners] = tls;
	s->nlisteners++;
	return 0;
}

size_t
http_server_stop_accepting(struct http_server *s)
{
	for (size_t i = 0; i < s->nlisteners; i++)
		evconnlistener_free(s->listeners[i]);
	s->nlisteners = 0;
	return s->nconns;
}

size_t
http_server_connections(const struct http_server *s)
{
	return s->nconns;
}

void
http_server_free(struct http_server *s)
{
	if (s == NULL)
		return;
	http_server_stop_accepting(s);
	SSL_CTX_free(s->ssl_ctx);
	free(s);
}
