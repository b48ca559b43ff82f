/*
 * HTTP/1.1 request heads and chunked bodies, parsed strictly (RFC 9112).
 *
 * What is refused, so that no two parsers on a path can disagree about
 * where a message ends (request smuggling): bare LF or CR, whitespace
 * before a header colon, obsolete line folding, control bytes in values,
 * a Content-Length that is not plain digits or that repeats with another
 * value, Content-Length together with Transfer-Encoding, any transfer
 * coding other than a lone "chunked", and a request target not in
 * origin-form.
 */
#include "config.h"

#include <string.h>

#include "berth/http.h"

#define HTTP_U64_DIGITS_MAX 20

static bool
is_tchar(unsigned char c)
{
	/* RFC 9110 5.6.2 token characters. */
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool
http_slice_eq(struct http_slice s, const char *lit)
{
	size_t n = strlen(lit);

	if (s.len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(s.p[i]) != lower(lit[i]))
			return false;
	return true;
}

int
http_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	*out = 0;
	if (len == 0 || len > HTTP_U64_DIGITS_MAX)
		return HTTP_E_BAD;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return HTTP_E_BAD;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return HTTP_E_BAD;
		v = v * 10 + d;
	}
	if (v > max)
		return HTTP_E_BAD;
	*out = v;
	return 0;
}

const struct http_slice *
http_request_header(const struct http_request *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (http_slice_eq(r->headers[i].name, name))
			return &r->headers[i].value;
	return NULL;
}

static const struct {
	const char *name;
	enum http_method method;
} methods[] = {
	{ "GET", HTTP_GET }, { "HEAD", HTTP_HEAD }, { "POST", HTTP_POST },
	{ "PUT", HTTP_PUT }, { "PATCH", HTTP_PATCH }, { "DELETE", HTTP_DELETE },
};

/* Finds the CRLF ending the line at p; returns its offset or -1. */
static long
line_end(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\r')
			return i + 1 < len && p[i + 1] == '\n' ? (long)i : -1;
		if (p[i] == '\n')
			return -1;      /* bare LF */
	}
	return -1;
}

static int
parse_request_line(const char *p, size_t n, size_t max_target,
    struct http_request *r)
{
	size_t i = 0, start;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ' ')
		return HTTP_E_BAD;
	r->method_name = (struct http_slice){ p, i };
	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
		if (strlen(methods[m].name) == i &&
		    memcmp(methods[m].name, p, i) == 0)
			r->method = methods[m].method;
	start = ++i;
	while (i < n && p[i] != ' ') {
		unsigned char c = (unsigned char)p[i];

		/* Visible ASCII only; no fragment in a request target. */
		if (c <= 0x20 || c >= 0x7f || c == '#')
			return HTTP_E_BAD;
		i++;
	}
	if (i == start || i >= n)
		return HTTP_E_BAD;
	if (i - start > max_target)
		return HTTP_E_URI_TOO_LONG;
	if (p[start] != '/')
		return HTTP_E_BAD;      /* origin-form only */
	r->target = (struct http_slice){ p + start, i - start };
	{
		const char *q = memchr(r->target.p, '?', r->target.len);

		r->path = (struct http_slice){ r->target.p,
		    q != NULL ? (size_t)(q - r->target.p) : r->target.len };
		if (q != NULL)
			r->query = (struct http_slice){ q + 1,
			    r->target.len - r->path.len - 1 };
	}
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0) {
		if (n - i == 8 && memcmp(p + i, "HTTP/", 5) == 0)
			return HTTP_E_VERSION;
		return HTTP_E_BAD;
	}
	if (p[i + 7] == '0')
		r->minor = 0;
	else if (p[i + 7] == '1')
		r->minor = 1;
	else
		return HTTP_E_VERSION;
	return 0;
}

static int
parse_header_line(const char *p, size_t n, struct http_header *h)
{
	size_t i = 0, vs, ve;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	/* No name, or whitespace (or anything) between name and colon. */
	if (i == 0 || i >= n || p[i] != ':')
		return HTTP_E_BAD;
	h->name = (struct http_slice){ p, i };
	vs = i + 1;
	while (vs < n && (p[vs] == ' ' || p[vs] == '\t'))
		vs++;
	ve = n;
	while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
		ve--;
	for (size_t k = vs; k < ve; k++) {
		unsigned char c = (unsigned char)p[k];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return HTTP_E_BAD;
	}
	h->value = (struct http_slice){ p + vs, ve - vs };
	return 0;
}

/* Connection: a comma list of tokens; only close/keep-alive matter. */
static void
parse_connection(struct http_slice v, bool *close, bool *keep)
{
	size_t i = 0;

	while (i < v.len) {
		size_t s, e;

		while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' ||
		    v.p[i] == ','))
			i++;
		s = i;
		while (i < v.len && v.p[i] != ',')
			i++;
		e = i;
		while (e > s && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t'))
			e--;
		if (http_slice_eq((struct http_slice){ v.p + s, e - s }, "close"))
			*close = true;
		else if (http_slice_eq((struct http_slice){ v.p + s, e - s },
		    "keep-alive"))
			*keep = true;
	}
}

static int
derive_framing(struct http_request *r)
{
	bool close = false, keep = false, te = false;

	for (size_t i = 0; i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];

		if (http_slice_eq(h->name, "content-length")) {
			uint64_t v;

			if (http_parse_u64(h->value.p, h->value.len, UINT64_MAX,
			    &v) != 0)
				return HTTP_E_BAD;
			if (r->has_length && v != r->content_length)
				return HTTP_E_BAD;
			r->has_length = true;
			r->content_length = v;
		} else if (http_slice_eq(h->name, "transfer-encoding")) {
			if (te)
				return HTTP_E_NOT_IMPLEMENTED;
			te = true;
			if (!http_slice_eq(h->value, "chunked"))
				return HTTP_E_NOT_IMPLEMENTED;
			r->chunked = true;
		} else if (http_slice_eq(h->name, "connection")) {
			parse_connection(h->value, &close, &keep);
		} else if (http_slice_eq(h->name, "expect")) {
			if (!http_slice_eq(h->value, "100-continue"))
				return HTTP_E_EXPECTATION;      /* RFC 9110 10.1.1 */
			r->expect_continue = r->minor == 1;
		} else if (http_slice_eq(h->name, "host") &&
		    http_request_header(r, "host") != &h->value) {
			return HTTP_E_BAD;      /* a second Host */
		}
	}
	/* RFC 9112 6.1: both framings at once is an attack, not a request. */
	if (r->chunked && r->has_length)
		return HTTP_E_BAD;
	if (r->chunked && r->minor == 0)
		return HTTP_E_BAD;
	r->keep_alive = r->minor == 1 ? !close : keep && !close;
	return 0;
}

int
http_request_parse(const char *buf, size_t len, size_t max_headers,
    size_t max_target, struct http_request *out)
{
	size_t off = 0;
	long e;
	int rc;

	memset(out, 0, sizeof(*out));
	if (max_headers > HTTP_HEADER_COUNT_MAX)
		max_headers = HTTP_HEADER_COUNT_MAX;
	e = line_end(buf, len);
	if (e < 0)
		return HTTP_E_BAD;
	rc = parse_request_line(buf, (size_t)e, max_target, out);
	if (rc != 0)
		goto fail;
	off = (size_t)e + 2;
	for (;;) {
		e = line_end(buf + off, len - off);
		if (e < 0) {
			rc = HTTP_E_BAD;
			goto fail;
		}
		if (e == 0)
			break;
		/* Obsolete line folding (RFC 9112 5.2) is refused. */
		if (buf[off] == ' ' || buf[off] == '\t') {
			rc = HTTP_E_BAD;
			goto fail;
		}
		if (out->nheaders == max_headers) {
			rc = HTTP_E_HEADERS_TOO_LARGE;
			goto fail;
		}
		rc = parse_header_line(buf + off, (size_t)e,
		    &out->headers[out->nheaders]);
		if (rc != 0)
			goto fail;
		out->nheaders++;
		off += (size_t)e + 2;
	}
	/* The head ends exactly at the empty line. */
	if (off + 2 != len) {
		rc = HTTP_E_BAD;
		goto fail;
	}
	rc = derive_framing(out);
	if (rc == 0)
		return 0;
fail:
	memset(out, 0, sizeof(*out));
	return rc;
}

/* ---- chunked bodies ---------------------------------------------------- */

enum {
	CH_SIZE,        /* hex digits of the chunk size */
	CH_EXT,         /* ;extension up to CR */
	CH_SIZE_LF,
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER,     /* start of a trailer line, or the final CRLF */
	CH_TRAILER_LINE,
	CH_TRAILER_LF,
	CH_FINAL_LF,
	CH_DONE,
};

void
http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CH_SIZE;
}

int
http_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void
http_chunked_unread(struct http_chunked *c, size_t n)
{
	if (n == 0)
		return;
	c->remaining += n;
	c->state = CH_DATA;
}

int
http_chunked_feed(struct http_chunked *c, const uint8_t *in, size_t len,
    size_t *consumed, const uint8_t **data, size_t *datalen)
{
	size_t i = 0;

	*consumed = 0;
	*data = NULL;
	*datalen = 0;
	while (i < len) {
		uint8_t b = in[i];
		int h;

		switch (c->state) {
		case CH_SIZE:
			h = http_hexval((char)b);
			if (h >= 0) {
				/* 15 hex digits: sizes stay far below 2^64. */
				if (++c->digits > 15)
					goto bad;
				c->remaining = c->remaining << 4 | (uint64_t)h;
			} else if (c->digits == 0) {
				goto bad;
			} else if (b == ';') {
				c->state = CH_EXT;
			} else if (b == '\r') {
				c->state = CH_SIZE_LF;
			} else {
				goto bad;
			}
			if (++c->line > HTTP_CHUNK_LINE_MAX_BYTES)
				goto bad;
			i++;
			break;
		case CH_EXT:
			if (b == '\r')
				c->state = CH_SIZE_LF;
			else if (b == '\n' || b == 0 || b == 0x7f)
				goto bad;
			if (++c->line > HTTP_CHUNK_LINE_MAX_BYTES)
				goto bad;
			i++;
			break;
		case CH_SIZE_LF:
			if (b != '\n')
				goto bad;
			i++;
			c->line = 0;
			c->digits = 0;
			c->state = c->remaining == 0 ? CH_TRAILER : CH_DATA;
			break;
		case CH_DATA: {
			size_t n = len - i;

			if (n > c->remaining)
				n = (size_t)c->remaining;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = CH_DATA_CR;
			*data = in + i;
			*datalen = n;
			*consumed = i + n;
			return 0;
		}
		case CH_DATA_CR:
			if (b != '\r')
				goto bad;
			c->state = CH_DATA_LF;
			i++;
			break;
		case CH_DATA_LF:
			if (b != '\n')
				goto bad;
			c->state = CH_SIZE;
			i++;
			break;
		case CH_TRAILER:
			if (b == '\r') {
				c->state = CH_FINAL_LF;
			} else if (is_tchar(b)) {
				c->state = CH_TRAILER_LINE;
			} else {
				goto bad;
			}
			if (++c->trailer > HTTP_TRAILER_MAX_BYTES)
				goto bad;
			i++;
			break;
		case CH_TRAILER_LINE:
			if (b == '\r')
				c->state = CH_TRAILER_LF;
			else if (b == '\n' || b == 0)
				goto bad;
			if (++c->trailer > HTTP_TRAILER_MAX_BYTES)
				goto bad;
			i++;
			break;
		case CH_TRAILER_LF:
			if (b != '\n')
				goto bad;
			c->state = CH_TRAILER;
			i++;
			break;
		case CH_FINAL_LF:
			if (b != '\n')
				goto bad;
			c->state = CH_DONE;
			*consumed = i + 1;
			return 1;
		case CH_DONE:
			*consumed = i;
			return 1;
		default:
			goto bad;
		}
	}
	*consumed = i;
	return c->state == CH_DONE ? 1 : 0;
bad:
	/* What was looked at is used up: the caller must not feed it again. */
	*consumed = i < len ? i + 1 : len;
	*data = NULL;
	*datalen = 0;
	return HTTP_E_BAD;
}

int
http_parse_range(const char *p, size_t len, uint64_t size, uint64_t *first,
    uint64_t *last)
{
	const char *dash;
	uint64_t a, b;

	if (len < 7 || memcmp(p, "bytes=", 6) != 0)
		return 0;
	p += 6;
	len -= 6;
	if (memchr(p, ',', len) != NULL)
		return 0;       /* several ranges: answer the whole blob */
	dash = memchr(p, '-', len);
	if (dash == NULL)
		return 0;
	if (dash == p) {
		if (http_parse_u64(p + 1, len - 1, UINT64_MAX, &b) != 0)
			return 0;
		if (b == 0 || size == 0)
			return -1;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 1;
	}
	if (http_parse_u64(p, (size_t)(dash - p), UINT64_MAX, &a) != 0)
		return 0;
	if ((size_t)(dash - p) + 1 == len) {
		b = size > 0 ? size - 1 : 0;
	} else if (http_parse_u64(dash + 1, len - (size_t)(dash - p) - 1,
	    UINT64_MAX, &b) != 0 || b < a) {
		return 0;
	}
	if (a >= size)
		return -1;
	*first = a;
	*last = b >= size ? size - 1 : b;
	return 1;
}

int
http_parse_content_range_start(const char *p, size_t len, uint64_t *start)
{
	const char *dash;

	if (len >= 6 && memcmp(p, "bytes ", 6) == 0) {
		p += 6;
		len -= 6;
	}
	dash = memchr(p, '-', len);
	if (dash == NULL)
		return HTTP_E_BAD;
	return http_parse_u64(p, (size_t)(dash - p), UINT64_MAX, start);
}
