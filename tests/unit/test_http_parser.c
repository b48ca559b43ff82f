/* The HTTP/1.1 head parser and chunked decoder: accepted forms, and every
 * refusal that keeps two parsers from disagreeing on message boundaries. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "berth/http.h"

static struct http_request req;

static int
parse(const char *s)
{
	return http_request_parse(s, strlen(s), 64, 2048, &req);
}

static void
test_simple_get(void **state)
{
	(void)state;
	assert_int_equal(parse("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(req.method, HTTP_GET);
	assert_true(http_slice_eq(req.path, "/v2/"));
	assert_int_equal(req.query.len, 0);
	assert_int_equal(req.minor, 1);
	assert_true(req.keep_alive);
	assert_false(req.has_length);
	assert_false(req.chunked);
	assert_true(http_slice_eq(*http_request_header(&req, "HOST"), "x"));
	assert_null(http_request_header(&req, "accept"));
}

static void
test_query_and_headers(void **state)
{
	(void)state;
	assert_int_equal(parse("PUT /v2/a/blobs/uploads/x?digest=sha256:1&y= HTTP/1.1\r\n"
	    "Content-Length:  12 \r\nExpect: 100-continue\r\nConnection: Close\r\n\r\n"), 0);
	assert_int_equal(req.method, HTTP_PUT);
	assert_true(http_slice_eq(req.path, "/v2/a/blobs/uploads/x"));
	assert_true(http_slice_eq(req.query, "digest=sha256:1&y="));
	assert_true(req.has_length);
	assert_int_equal(req.content_length, 12);
	assert_true(req.expect_continue);
	assert_false(req.keep_alive);
}

static void
test_http10(void **state)
{
	(void)state;
	assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n"), 0);
	assert_false(req.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0);
	assert_true(req.keep_alive);
	assert_int_equal(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    HTTP_E_BAD);
}

static void
test_refusals(void **state)
{
	static const struct {
		const char *in;
		int rc;
	} cases[] = {
		{ "GET / HTTP/1.1\n\r\n", HTTP_E_BAD },                 /* bare LF */
		{ "GET / HTTP/1.1\r\nA: b\n\r\n", HTTP_E_BAD },
		{ "GET  / HTTP/1.1\r\n\r\n", HTTP_E_BAD },
		{ "GET / HTTP/1.1 \r\n\r\n", HTTP_E_BAD },
		{ "GET http://x/ HTTP/1.1\r\n\r\n", HTTP_E_BAD },       /* absolute-form */
		{ "GET * HTTP/1.1\r\n\r\n", HTTP_E_BAD },
		{ "GET /a#b HTTP/1.1\r\n\r\n", HTTP_E_BAD },
		{ "GET /\x01 HTTP/1.1\r\n\r\n", HTTP_E_BAD },
		{ "GET / HTTP/2.0\r\n\r\n", HTTP_E_VERSION },
		{ "GET / HTTP/1.2\r\n\r\n", HTTP_E_VERSION },
		{ "GET / HTTX/1.1\r\n\r\n", HTTP_E_BAD },
		{ "G(T / HTTP/1.1\r\n\r\n", HTTP_E_BAD },
		{ "GET / HTTP/1.1\r\nA : b\r\n\r\n", HTTP_E_BAD },     /* space before colon */
		{ "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", HTTP_E_BAD }, /* obs-fold */
		{ "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", HTTP_E_BAD },
		{ "GET / HTTP/1.1\r\n: b\r\n\r\n", HTTP_E_BAD },
		{ "GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", HTTP_E_BAD },
		{ "GET / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", HTTP_E_BAD },
		{ "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", HTTP_E_BAD },
		{ "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HTTP_E_BAD },
		{ "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_E_BAD },
		{ "GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HTTP_E_NOT_IMPLEMENTED },
		{ "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_E_NOT_IMPLEMENTED },
		{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HTTP_E_BAD },
		{ "GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", HTTP_E_EXPECTATION },
		{ "GET / HTTP/1.1\r\n\r\nX", HTTP_E_BAD },              /* bytes past the head */
		{ "GET / HTTP/1.1\r\n", HTTP_E_BAD },                   /* no empty line */
		{ "", HTTP_E_BAD },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = parse(cases[i].in);

		if (rc != cases[i].rc)
			fail_msg("case %zu: got %d, want %d", i, rc, cases[i].rc);
	}
	/* Repeated equal Content-Length values are one length. */
	assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n"), 0);
}

static void
test_limits(void **state)
{
	char buf[8192];
	size_t n;

	(void)state;
	n = (size_t)snprintf(buf, sizeof(buf), "GET /%0*d HTTP/1.1\r\n\r\n", 3000, 0);
	assert_int_equal(http_request_parse(buf, n, 64, 2048, &req),
	    HTTP_E_URI_TOO_LONG);
	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: y\r\n", i);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
	assert_int_equal(http_request_parse(buf, n, 64, 2048, &req),
	    HTTP_E_HEADERS_TOO_LARGE);
	assert_int_equal(http_request_parse(buf, n, 100, 2048, &req), 0);
	assert_int_equal(req.nheaders, 65);
}

static void
test_parse_u64(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(http_parse_u64("18446744073709551615", 20, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(http_parse_u64("18446744073709551616", 20, UINT64_MAX, &v),
	    HTTP_E_BAD);
	assert_int_equal(http_parse_u64("10", 2, 9, &v), HTTP_E_BAD);
	assert_int_equal(http_parse_u64("", 0, 9, &v), HTTP_E_BAD);
	assert_int_equal(http_parse_u64("-1", 2, 9, &v), HTTP_E_BAD);
	assert_int_equal(http_parse_u64("007", 3, 9, &v), 0);
	assert_int_equal(v, 7);
}

/* Feeds s in pieces of `step` bytes; collects the body into out. */
static int
chunked_run(const char *s, size_t step, char *out, size_t *outlen)
{
	struct http_chunked c;
	size_t len = strlen(s), off = 0;
	int rc = 0;

	http_chunked_init(&c);
	*outlen = 0;
	while (off < len && rc == 0) {
		size_t n = len - off < step ? len - off : step, used = 0;

		while (used < n && rc == 0) {
			const uint8_t *d;
			size_t dl, k;

			rc = http_chunked_feed(&c, (const uint8_t *)s + off + used,
			    n - used, &k, &d, &dl);
			if (rc < 0)
				return rc;
			if (dl > 0)
				memcpy(out + *outlen, d, dl);
			*outlen += dl;
			used += k;
			if (k == 0 && rc == 0)
				return -1;
		}
		off += used;
	}
	return rc == 1 ? (int)(len - off) : rc;
}

static void
test_chunked(void **state)
{
	const char *body = "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
	char out[128];
	size_t n;

	(void)state;
	for (size_t step = 1; step <= strlen(body); step++) {
		assert_int_equal(chunked_run(body, step, out, &n), 0);
		assert_int_equal(n, 16);
		assert_memory_equal(out, "hello 0123456789", 16);
	}
	assert_int_equal(chunked_run("0\r\n\r\n", 3, out, &n), 0);
	assert_int_equal(n, 0);
	/* What follows the body is left for the next request. */
	assert_int_equal(chunked_run("1\r\nx\r\n0\r\n\r\nGET", 100, out, &n), 3);
}

/*
 * A reader that takes at most `take` bytes of each data run and gives the
 * rest back (http_chunked_unread) gets the same body, however the stream
 * is split.
 */
static void
test_chunked_unread(void **state)
{
	const char *s = "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n"
	    "0\r\n\r\n";
	size_t len = strlen(s);

	(void)state;
	for (size_t take = 1; take <= 4; take++) {
		for (size_t step = 1; step <= len; step++) {
			struct http_chunked c;
			char out[64];
			size_t outlen = 0, off = 0;
			int rc = 0;

			http_chunked_init(&c);
			while (off < len && rc == 0) {
				size_t n = len - off < step ? len - off : step;
				const uint8_t *d;
				size_t dl, k;

				rc = http_chunked_feed(&c, (const uint8_t *)s +
				    off, n, &k, &d, &dl);
				assert_true(rc >= 0);
				if (dl > take) {
					http_chunked_unread(&c, dl - take);
					k -= dl - take;
					dl = take;
				}
				if (dl > 0)
					memcpy(out + outlen, d, dl);
				outlen += dl;
				off += k;
			}
			assert_int_equal(rc, 1);
			assert_int_equal(off, len);
			assert_int_equal(outlen, 16);
			assert_memory_equal(out, "hello 0123456789", 16);
		}
	}
}

static void
test_chunked_refusals(void **state)
{
	static const char *const bad[] = {
		"x\r\n", "\r\n", "5\n", "5\r\nhelloX\r\n", "5\r\nhello\rX",
		"-1\r\n", "1000000000000000\r\n", "0\r\nbad trailer\n",
		"0\r\n\rX", "5 \r\n",
	};
	char out[128];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (chunked_run(bad[i], 1, out, &n) != HTTP_E_BAD)
			fail_msg("case %zu accepted", i);
}

static void
test_ranges(void **state)
{
	uint64_t a = 0, b = 0;

	(void)state;
	assert_int_equal(http_parse_range("bytes=0-99", 10, 1000, &a, &b), 1);
	assert_true(a == 0 && b == 99);
	assert_int_equal(http_parse_range("bytes=900-", 10, 1000, &a, &b), 1);
	assert_true(a == 900 && b == 999);
	assert_int_equal(http_parse_range("bytes=-100", 10, 1000, &a, &b), 1);
	assert_true(a == 900 && b == 999);
	assert_int_equal(http_parse_range("bytes=-100", 10, 10, &a, &b), 1);
	assert_true(a == 0 && b == 9);
	assert_int_equal(http_parse_range("bytes=5-999999", 14, 10, &a, &b), 1);
	assert_true(a == 5 && b == 9);
	/* unsatisfiable */
	assert_int_equal(http_parse_range("bytes=10-20", 11, 10, &a, &b), -1);
	assert_int_equal(http_parse_range("bytes=-0", 8, 10, &a, &b), -1);
	assert_int_equal(http_parse_range("bytes=0-", 8, 0, &a, &b), -1);
	/* ignored: the whole answer */
	assert_int_equal(http_parse_range("bytes=0-1,5-6", 13, 10, &a, &b), 0);
	assert_int_equal(http_parse_range("bytes=5-1", 9, 10, &a, &b), 0);
	assert_int_equal(http_parse_range("items=0-1", 9, 10, &a, &b), 0);
	assert_int_equal(http_parse_range("bytes=x-1", 9, 10, &a, &b), 0);
	assert_int_equal(http_parse_range("bytes=+1-2", 10, 10, &a, &b), 0);
	assert_int_equal(http_parse_range("bytes=99999999999999999999-", 27, 10,
	    &a, &b), 0);
	/* upload chunks */
	assert_int_equal(http_parse_content_range_start("0-1048575", 9, &a), 0);
	assert_int_equal(a, 0);
	assert_int_equal(http_parse_content_range_start("bytes 100-199/200", 17,
	    &a), 0);
	assert_int_equal(a, 100);
	assert_int_equal(http_parse_content_range_start("100", 3, &a),
	    HTTP_E_BAD);
	assert_int_equal(http_parse_content_range_start("-5", 2, &a), HTTP_E_BAD);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_get),
		cmocka_unit_test(test_query_and_headers),
		cmocka_unit_test(test_http10),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_chunked_unread),
		cmocka_unit_test(test_chunked_refusals),
		cmocka_unit_test(test_ranges),
	};

	return cmocka_run_group_tests_name("http_parser", tests, NULL, NULL);
}
