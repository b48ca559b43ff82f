/*
 * HTTP/1.1 message framing (RFC 9112): a strict parser for a request head
 * held whole in memory, and an incremental decoder for chunked bodies.
 * Both take explicit lengths, never read past them, and allocate nothing;
 * what they return points into the caller's buffer.
 */
#ifndef BERTH_HTTP_H
#define BERTH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_E_BAD              (-400)  /* malformed: answer 400 */
#define HTTP_E_URI_TOO_LONG     (-414)
#define HTTP_E_EXPECTATION      (-417)  /* an Expect other than 100-continue */
#define HTTP_E_HEADERS_TOO_LARGE (-431)
#define HTTP_E_NOT_IMPLEMENTED  (-501)  /* a transfer coding other than chunked */
#define HTTP_E_VERSION          (-505)  /* not HTTP/1.0 or HTTP/1.1 */

#define HTTP_HEADER_COUNT_MAX   100     /* hard cap of the parser's array */
#define HTTP_CHUNK_LINE_MAX_BYTES 1024  /* chunk-size line with extensions */
#define HTTP_TRAILER_MAX_BYTES  8192

enum http_method {
	HTTP_OTHER = 0,
	HTTP_GET,
	HTTP_HEAD,
	HTTP_POST,
	HTTP_PUT,
	HTTP_PATCH,
	HTTP_DELETE,
};

struct http_slice {
	const char *p;
	size_t len;
};

struct http_header {
	struct http_slice name;
	struct http_slice value;        /* without surrounding whitespace */
};

struct http_request {
	enum http_method method;
	struct http_slice method_name;
	struct http_slice target;       /* origin-form: path and query */
	struct http_slice path;
	struct http_slice query;        /* after '?', may be empty */
	int minor;                      /* HTTP/1.minor: 0 or 1 */
	size_t nheaders;
	struct http_header headers[HTTP_HEADER_COUNT_MAX];

	/* Framing, derived from the headers. */
	bool has_length;
	uint64_t content_length;
	bool chunked;
	bool keep_alive;
	bool expect_continue;
};

/*
 * Parses a request head: buf[0..len) holds the request line and header
 * lines, each ending in CRLF, and the empty line that ends the head.
 * At most max_headers (<= HTTP_HEADER_COUNT_MAX) header fields and a target
 * of at most max_target bytes. Returns 0, or an HTTP_E_* code naming the
 * status to answer. Slices in *out point into buf.
 */
int http_request_parse(const char *buf, size_t len, size_t max_headers,
    size_t max_target, struct http_request *out);

/* The first header named name (case-insensitive), or NULL. */
const struct http_slice *http_request_header(const struct http_request *r,
    const char *name);

/* Case-insensitive comparison of a slice with a NUL-terminated string. */
bool http_slice_eq(struct http_slice s, const char *lit);

/*
 * Strict decimal: 1..20 digits, no sign or space, value <= max. Returns 0
 * or HTTP_E_BAD.
 */
int http_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out);

/*
 * A Range header value of len bytes for a representation of size bytes
 * (RFC 9110 14.1.2), one range: "bytes=a-b", "bytes=a-", "bytes=-n".
 * Returns 1 with [*first, *last] clamped to the size, 0 to ignore the
 * header (malformed, or several ranges: answer the whole), -1 when the
 * range cannot be satisfied (answer 416).
 */
int http_parse_range(const char *p, size_t len, uint64_t size,
    uint64_t *first, uint64_t *last);

/*
 * The start of an upload chunk's Content-Range ("START-END", as the
 * distribution-spec's chunked uploads send it, or "bytes START-END/...").
 * 0 with *start, or HTTP_E_BAD.
 */
int http_parse_content_range_start(const char *p, size_t len,
    uint64_t *start);

/* The value of a hex digit (either case), or -1. */
int http_hexval(char c);

/* Incremental decoder of Transfer-Encoding: chunked (RFC 9112 7.1). */
struct http_chunked {
	int state;
	uint64_t remaining;     /* data bytes left in the current chunk */
	size_t line;            /* bytes seen of the current size/trailer line */
	size_t trailer;         /* trailer bytes seen */
	int digits;
	bool ext;
};

void http_chunked_init(struct http_chunked *c);

/*
 * Consumes up to len bytes of in. *consumed is how many were used; when
 * body data was found, data and datalen name it (inside in) and the call
 * returns right after it, so a caller loops until it has used all of in.
 * Returns 1 when the final chunk and trailers are complete, 0 to continue,
 * HTTP_E_BAD on malformed framing.
 */
int http_chunked_feed(struct http_chunked *c, const uint8_t *in, size_t len,
    size_t *consumed, const uint8_t **data, size_t *datalen);

/*
 * Gives back the last n bytes of the data the previous feed returned (at
 * most its datalen), for a caller that took fewer: the caller counts
 * that many fewer bytes consumed, and the next feed from there returns
 * them again.
 */
void http_chunked_unread(struct http_chunked *c, size_t n);

#endif /* BERTH_HTTP_H */
