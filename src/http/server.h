/*
 * berthd's HTTP/1.1 server on libevent bufferevents (plain or OpenSSL).
 *
 * One request at a time per connection: the head is parsed whole (strict
 * parser, size and count limits), handed to the handler, and the next
 * pipelined request is read only after the response has been written, so
 * responses leave in request order. Bodies stream to the handler as they
 * arrive; the handler can pause reading while it catches up.
 *
 * Handler contract: after http_handler_fn is called, the handler answers
 * exactly once with http_conn_reply() or http_conn_reply_stream(), later if
 * it likes, even if the client went away meanwhile (the reply then only
 * releases the connection). Everything runs on the event loop's thread but
 * http_conn_wake-style callbacks, which the handler bounces itself.
 */
#ifndef BERTH_HTTP_SERVER_H
#define BERTH_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "berth/http.h"

struct http_limits {
	size_t header_max_bytes;        /* request line + headers */
	size_t header_max_count;
	size_t url_max_bytes;
	int header_timeout_s;           /* to receive a whole head (and idle) */
	int io_timeout_s;               /* no progress reading a body or writing */
	size_t max_connections;
	bool access_log_json;           /* one JSON object per request */
	uint64_t min_body_rate;         /* bytes/s over io_timeout_s; 0: none */
	bool quiet;                     /* no access log or request metrics */
};

#define HTTP_HEADER_MAX_BYTES_DEFAULT   (16 * 1024)
#define HTTP_HEADER_MAX_COUNT_DEFAULT   64
#define HTTP_URL_MAX_BYTES_DEFAULT      4096
#define HTTP_HEADER_TIMEOUT_S_DEFAULT   30
#define HTTP_IO_TIMEOUT_S_DEFAULT       120
#define HTTP_MAX_CONNECTIONS_DEFAULT    1024
#define HTTP_MIN_BODY_RATE_DEFAULT      1024    /* bytes/s */

struct http_server;
struct http_conn;

typedef void http_handler_fn(void *arg, struct http_conn *c,
    const struct http_request *r);

/*
 * Body callbacks: data returns 0, or an HTTP status to stop reading. It
 * takes all n bytes (*used is n on entry) unless it pauses the body
 * (http_conn_pause) and sets *used to what it took: the rest is offered
 * again after http_conn_resume.
 */
typedef int http_body_data_fn(void *arg, const uint8_t *p, size_t n,
    size_t *used);
/*
 * status 0: the whole body arrived; < 0: the connection broke or the body
 * was cut short; > 0: the body's framing was bad (answer that status).
 */
typedef void http_body_end_fn(void *arg, int status);

/*
 * Adds up to max bytes of the response body to out; returns the number
 * added (> 0), or -1 on failure (the connection is then closed: the status
 * line has left already).
 */
typedef long http_stream_fill_fn(void *arg, struct evbuffer *out, size_t max);
typedef void http_stream_done_fn(void *arg);

struct http_server *http_server_new(struct event_base *base,
    const struct http_limits *limits, http_handler_fn *handler, void *arg);
void http_server_free(struct http_server *s);

/*
 * Listens on "ADDR:PORT" ("[::1]:PORT" for IPv6). With ctx non-NULL the
 * listener speaks TLS. Writes the URL it serves into url. 0 or -1 (logged).
 */
int http_server_listen(struct http_server *s, const char *addr, bool tls,
    char *url, size_t urlsize);

/* Replaces the TLS context for new connections (SIGHUP); takes ownership. */
void http_server_set_tls(struct http_server *s, SSL_CTX *ctx);

/* Stops accepting; returns how many connections are still open. */
size_t http_server_stop_accepting(struct http_server *s);
size_t http_server_connections(const struct http_server *s);

/* ---- for handlers ------------------------------------------------------ */

struct event_base *http_conn_base(struct http_conn *c);
const char *http_conn_peer(const struct http_conn *c);

/*
 * Starts reading the request body into the callbacks. Sends 100 Continue
 * first when the client asked for it, so call this only after the request
 * was checked (size, access). A request without a body ends at once.
 */
void http_conn_read_body(struct http_conn *c, http_body_data_fn *data,
    http_body_end_fn *end, void *arg);
void http_conn_pause(struct http_conn *c);
void http_conn_resume(struct http_conn *c);

#define HTTP_REPLY_HEAD_ONLY 0x1u       /* Content-Length: len, no body */

/*
 * Answers: status line, Content-Length, the API version header, the
 * caller's header lines (each "Name: value\r\n", may be NULL), then body.
 */
/* The signed-in user the access log names for the current request. */
void http_conn_set_user(struct http_conn *c, const char *user);

/*
 * What the current request is about, for the access log and the metrics:
 * the route (enum metrics_route), and the repository and reference (tag,
 * digest or upload id; may be empty).
 */
void http_conn_set_subject(struct http_conn *c, int route, const char *repo,
    const char *ref, size_t reflen);

void http_conn_reply(struct http_conn *c, int status, const char *headers,
    const void *body, size_t len, unsigned flags);

/* Answers with a body of len bytes produced by fill as the socket drains. */
void http_conn_reply_stream(struct http_conn *c, int status,
    const char *headers, uint64_t len, http_stream_fill_fn *fill,
    http_stream_done_fn *done, void *arg);

#endif
