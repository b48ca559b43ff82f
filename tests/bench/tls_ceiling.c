/*
 * TLS ceiling server, used by the benchmark scripts (see tests/bench/README):
 * the smallest HTTPS/1.1 server that still does what a registry must do per
 * byte, so the same curl client run against it shows what this machine can
 * do over TLS on loopback at best.
 *
 *   sink    every request body (Content-Length or chunked) is read and
 *           hashed with SHA-256, then answered 201 with the digest, like a
 *           blob upload;
 *   source  every GET is answered with --size bytes (default 1 GiB) of
 *           random data, sent from one 1 MiB buffer, like a blob download.
 *
 *   tls_ceiling --cert PEM --key PEM --port N --mode sink|source
 *       [--size BYTES]
 *
 * Listens on 127.0.0.1:N, prints "ready" once listening, serves one
 * connection at a time (keep-alive: many requests per connection) and exits
 * 0 on SIGTERM or SIGINT. TLS 1.2+ with OpenSSL's default ciphers and
 * groups, so curl negotiates what it would with any stock server.
 *
 * Not part of the autotools build; build it alone:
 *
 *   gcc -std=c11 -O2 -Wall -Wextra -Werror -o tests/bench/tls_ceiling \
 *       tests/bench/tls_ceiling.c $(pkg-config --cflags --libs openssl)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define READ_BUF_SIZE (256 * KiB)
#define HEAD_MAX (16 * KiB)
#define LINE_MAX_LEN (4 * KiB)          /* a chunk-size or trailer line */
#define TRAILERS_MAX (16 * KiB)
#define SOURCE_BUF_SIZE MiB
#define DEFAULT_SIZE ((uint64_t)1 << 30)
#define IO_WAKEUP_S 1
#define METHOD_MAX 16

#define USAGE "usage: tls_ceiling --cert PEM --key PEM --port N " \
	"--mode sink|source [--size BYTES]"

enum mode { MODE_SINK, MODE_SOURCE };

struct options {
	const char *cert;
	const char *key;
	int port;
	enum mode mode;
	uint64_t size;
};

/* What stays the same for every connection. */
struct server {
	SSL_CTX *ctx;
	enum mode mode;
	uint64_t size;                  /* source: bytes per GET */
	unsigned char *source;          /* source: SOURCE_BUF_SIZE random bytes */
	EVP_MD *sha256;
};

/* One connection's state; the buffers are allocated once and reused. */
struct conn {
	SSL *ssl;
	unsigned char *buf;             /* READ_BUF_SIZE */
	size_t pos, len;                /* unread bytes are buf[pos, len) */
	size_t scanned;                 /* no delimiter starts before this */
	bool clean;                     /* SSL_shutdown is still allowed */
	EVP_MD_CTX *md;
};

struct request {
	char method[METHOD_MAX];
	bool http11;
	bool has_length;
	uint64_t length;
	bool chunked;
	bool expect_continue;
	bool close;
};

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* ---- arguments ---- */

static bool
parse_u64(const unsigned char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned)s[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool
arg_u64(const char *s, uint64_t *out)
{
	return parse_u64((const unsigned char *)s, strlen(s), out);
}

static bool
bad_args(const char *msg, const char *arg)
{
	fprintf(stderr, "tls_ceiling: %s%s%s (%s)\n", msg,
	    arg != NULL ? ": " : "", arg != NULL ? arg : "", USAGE);
	return false;
}

static bool
set_option(struct options *o, const char *name, const char *val)
{
	uint64_t v;

	if (strcmp(name, "--cert") == 0)
		o->cert = val;
	else if (strcmp(name, "--key") == 0)
		o->key = val;
	else if (strcmp(name, "--port") == 0) {
		if (!arg_u64(val, &v) || v < 1 || v > 65535)
			return bad_args("bad --port", val);
		o->port = (int)v;
	} else if (strcmp(name, "--mode") == 0) {
		if (strcmp(val, "sink") == 0)
			o->mode = MODE_SINK;
		else if (strcmp(val, "source") == 0)
			o->mode = MODE_SOURCE;
		else
			return bad_args("bad --mode", val);
	} else if (strcmp(name, "--size") == 0) {
		if (!arg_u64(val, &o->size))
			return bad_args("bad --size", val);
	} else
		return bad_args("unknown option", name);
	return true;
}

static bool
parse_options(int argc, char **argv, struct options *o)
{
	bool have_mode = false;
	int i;

	memset(o, 0, sizeof(*o));
	o->size = DEFAULT_SIZE;
	for (i = 1; i < argc; i += 2) {
		if (i + 1 >= argc)
			return bad_args("missing value for", argv[i]);
		if (!set_option(o, argv[i], argv[i + 1]))
			return false;
		have_mode |= strcmp(argv[i], "--mode") == 0;
	}
	if (o->cert == NULL || o->key == NULL || o->port == 0 || !have_mode)
		return bad_args("--cert, --key, --port and --mode are required",
		    NULL);
	return true;
}

/* ---- setup ---- */

static void
tls_error(const char *what, const char *arg)
{
	char err[256] = "unknown error";
	unsigned long e = ERR_peek_error();     /* the first: the cause */

	if (e != 0)
		ERR_error_string_n(e, err, sizeof(err));
	fprintf(stderr, "tls_ceiling: %s%s%s: %s\n", what,
	    arg != NULL ? " " : "", arg != NULL ? arg : "", err);
}

static SSL_CTX *
make_ctx(const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		tls_error("SSL_CTX_new", NULL);
		return NULL;
	}
	/*
	 * The floor and the suites are berthd's (src/http/tls.h): the
	 * ceiling must use the cipher berthd's clients get. Record buffers are kept
	 * between reads (releasing them costs allocations per record), and
	 * SSL_write must send everything it is given.
	 */
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
	    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") ||
	    !SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:"
	    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
	    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
	    "ECDHE-RSA-CHACHA20-POLY1305")) {
		tls_error("protocol floor or cipher suites", NULL);
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_clear_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_error("cannot load certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_error("cannot load key", key);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * Non-blocking only so that accept() after pselect() cannot hang with the
 * stop signals blocked when the client gave up in between.
 */
static int
listen_on(int port)
{
	struct sockaddr_in sa;
	int fd, one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 16) != 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		fprintf(stderr, "tls_ceiling: listen on 127.0.0.1:%d: %s\n",
		    port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * The stop signals stay blocked except while waiting in pselect() or
 * serving a connection, so one cannot slip in between the check of the
 * flag and the wait. No SA_RESTART: they must interrupt blocking I/O.
 * SIGPIPE is ignored because a client that hangs up is an I/O error.
 */
static bool
install_signals(sigset_t *stop_sigs, sigset_t *run_mask)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return false;
	sa.sa_handler = on_signal;
	if (sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGINT, &sa, NULL) != 0)
		return false;
	sigemptyset(stop_sigs);
	sigaddset(stop_sigs, SIGTERM);
	sigaddset(stop_sigs, SIGINT);
	return sigprocmask(SIG_BLOCK, stop_sigs, run_mask) == 0;
}

/* ---- TLS I/O ---- */

/*
 * After a failed call: true if it should be repeated as it was. WANT_*
 * also comes back on blocking sockets when a signal or the I/O wake-up
 * timeout (see tune_socket) interrupts the syscall.
 */
static bool
should_retry(struct conn *c, int ret)
{
	int err = SSL_get_error(c->ssl, ret);

	if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) &&
	    !stop)
		return true;
	/* Only after the peer's close_notify is our own one still valid. */
	c->clean = err == SSL_ERROR_ZERO_RETURN;
	return false;
}

/*
 * Reads what TLS has into the free end of the buffer. Unread bytes are
 * moved to the front only when the end is reached; that happens only for
 * a head or line in progress, which is small, since bodies are consumed
 * whole before the next read.
 */
static bool
conn_fill(struct conn *c)
{
	size_t n;

	if (c->pos == c->len) {
		c->pos = c->len = c->scanned = 0;
	} else if (c->len == READ_BUF_SIZE) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->scanned = c->scanned > c->pos ? c->scanned - c->pos : 0;
		c->len -= c->pos;
		c->pos = 0;
		if (c->len == READ_BUF_SIZE)
			return false;
	}
	for (;;) {
		int ret = SSL_read_ex(c->ssl, c->buf + c->len,
		    READ_BUF_SIZE - c->len, &n);

		if (ret == 1) {
			c->len += n;
			return true;
		}
		if (!should_retry(c, ret))
			return false;
	}
}

/*
 * Finds delim among the unread bytes, reading more as needed but never
 * letting them grow past max without it. Returns 1 with *end just past
 * the delimiter, 0 when the connection failed or ended, -1 if too long.
 */
static int
conn_find(struct conn *c, const char *delim, size_t dlen, size_t max,
    size_t *end)
{
	for (;;) {
		size_t i = c->scanned > c->pos ? c->scanned : c->pos;

		for (; i + dlen <= c->len; i++) {
			if (memcmp(c->buf + i, delim, dlen) == 0) {
				*end = i + dlen;
				c->scanned = 0;
				return 1;
			}
		}
		if (c->len - c->pos >= max)
			return -1;
		/* A delimiter may straddle the end of what we have. */
		c->scanned = c->len >= dlen ? c->len - dlen + 1 : 0;
		if (!conn_fill(c))
			return 0;
	}
}

static bool
send_all(struct conn *c, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t n;

	while (len > 0) {
		int ret = SSL_write_ex(c->ssl, p, len, &n);

		if (ret == 1) {
			p += n;
			len -= n;
		} else if (!should_retry(c, ret)) {
			/* A retry repeats the call unchanged, as OpenSSL needs. */
			return false;
		}
	}
	return true;
}

static bool
send_str(struct conn *c, const char *s)
{
	return send_all(c, s, strlen(s));
}

/* The reply to a request we will not serve; the connection then closes. */
static void
send_error(struct conn *c, int status)
{
	const char *text = status == 405 ? "Method Not Allowed" :
	    status == 431 ? "Request Header Fields Too Large" :
	    status == 501 ? "Not Implemented" : "Bad Request";
	char buf[160];
	int n;

	n = snprintf(buf, sizeof(buf), "HTTP/1.1 %d %s\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n", status, text);
	if (n > 0 && (size_t)n < sizeof(buf))
		send_all(c, buf, (size_t)n);
}

/* ---- request head ---- */

static size_t
find_crlf(const unsigned char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i++)
		if (s[i] == '\r' && s[i + 1] == '\n')
			return i;
	return n;
}

static bool
ci_equal(const unsigned char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && strncasecmp((const char *)s, lit, n) == 0;
}

static void
trim(const unsigned char **s, size_t *n)
{
	while (*n > 0 && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* Whether a comma-separated header value lists token. */
static bool
has_token(const unsigned char *s, size_t n, const char *token)
{
	while (n > 0) {
		const unsigned char *comma = memchr(s, ',', n);
		size_t len = comma != NULL ? (size_t)(comma - s) : n;
		const unsigned char *t = s;
		size_t tlen = len;

		trim(&t, &tlen);
		if (ci_equal(t, tlen, token))
			return true;
		s += len;
		n -= len;
		if (n > 0) {
			s++;
			n--;
		}
	}
	return false;
}

/* METHOD SP target SP HTTP/1.x */
static bool
parse_request_line(const unsigned char *s, size_t n, struct request *r)
{
	const unsigned char *sp = memchr(s, ' ', n);
	size_t mlen = sp != NULL ? (size_t)(sp - s) : 0;
	size_t v = n;

	if (mlen == 0 || mlen >= METHOD_MAX)
		return false;
	memcpy(r->method, s, mlen);
	r->method[mlen] = '\0';
	while (v > 0 && s[v - 1] != ' ')
		v--;
	if (v <= mlen + 1 || n - v != 8)
		return false;
	if (memcmp(s + v, "HTTP/1.1", 8) == 0)
		r->http11 = true;
	else if (memcmp(s + v, "HTTP/1.0", 8) == 0)
		r->close = true;        /* keep-alive for 1.0 is not worth it */
	else
		return false;
	return true;
}

/* Returns 0 or the HTTP status to refuse the request with. */
static int
parse_header(const unsigned char *s, size_t n, struct request *r)
{
	const unsigned char *colon = memchr(s, ':', n);
	size_t nlen = colon != NULL ? (size_t)(colon - s) : 0;
	const unsigned char *v = s + nlen + 1;
	size_t vlen = n - nlen - 1;
	uint64_t len;

	if (nlen == 0 || s[nlen - 1] == ' ' || s[nlen - 1] == '\t')
		return 400;
	trim(&v, &vlen);
	if (ci_equal(s, nlen, "content-length")) {
		if (!parse_u64(v, vlen, &len) ||
		    (r->has_length && len != r->length))
			return 400;
		r->has_length = true;
		r->length = len;
	} else if (ci_equal(s, nlen, "transfer-encoding")) {
		/* Other codings would have to be decoded before hashing. */
		if (!ci_equal(v, vlen, "chunked"))
			return 501;
		r->chunked = true;
	} else if (ci_equal(s, nlen, "expect")) {
		r->expect_continue = ci_equal(v, vlen, "100-continue");
	} else if (ci_equal(s, nlen, "connection")) {
		r->close |= has_token(v, vlen, "close");
	}
	return 0;
}

/* h holds the whole head including its final CRLFCRLF. */
static int
parse_head(const unsigned char *h, size_t n, struct request *r)
{
	size_t p, e;
	int st;

	memset(r, 0, sizeof(*r));
	/* Empty lines before a request are allowed (RFC 9112, 2.2). */
	while (n >= 2 && h[0] == '\r' && h[1] == '\n') {
		h += 2;
		n -= 2;
	}
	e = find_crlf(h, n);
	if (!parse_request_line(h, e, r))
		return 400;
	for (p = e + 2; p < n; p = e + 2) {
		e = p + find_crlf(h + p, n - p);
		if (e == p || e == n)
			break;
		if ((st = parse_header(h + p, e - p, r)) != 0)
			return st;
	}
	return 0;
}

/* Returns 0 with *r filled, -1 if the connection is over, or a status. */
static int
read_head(struct conn *c, struct request *r)
{
	size_t start, end;
	int ret;

	do {
		ret = conn_find(c, "\r\n\r\n", 4, HEAD_MAX, &end);
		if (ret == 0)
			return -1;
		if (ret < 0)
			return 431;
		start = c->pos;
		c->pos = end;
		/* Two empty lines, which may precede a request (RFC 9112, 2.2). */
	} while (end - start == 4);
	return parse_head(c->buf + start, end - start, r);
}

/* ---- request body ---- */

/* Consumes n body bytes, hashing them if md is set. */
static bool
read_fixed(struct conn *c, uint64_t n, EVP_MD_CTX *md)
{
	while (n > 0) {
		size_t take;

		if (stop)
			return false;
		if (c->pos == c->len && !conn_fill(c))
			return false;
		take = c->len - c->pos;
		if (take > n)
			take = (size_t)n;
		if (md != NULL && !EVP_DigestUpdate(md, c->buf + c->pos, take))
			return false;
		c->pos += take;
		n -= take;
	}
	return true;
}

static int
hex_digit(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* chunk-size [ BWS ; chunk-ext ], without the CRLF */
static bool
parse_chunk_size(const unsigned char *s, size_t n, uint64_t *size)
{
	uint64_t v = 0;
	size_t i;
	int d;

	for (i = 0; i < n && (d = hex_digit(s[i])) >= 0; i++) {
		if (v > UINT64_MAX >> 4)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	if (i == 0)
		return false;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i < n && s[i] != ';')
		return false;
	*size = v;
	return true;
}

/* Consumes one CRLF-terminated line: buf[*start, *start + *len). */
static bool
read_line(struct conn *c, size_t *start, size_t *len)
{
	size_t end;

	if (conn_find(c, "\r\n", 2, LINE_MAX_LEN, &end) != 1)
		return false;
	*start = c->pos;
	*len = end - 2 - c->pos;
	c->pos = end;
	return true;
}

static bool
skip_trailers(struct conn *c)
{
	size_t start, len, total = 0;

	do {
		if (!read_line(c, &start, &len) || (total += len) > TRAILERS_MAX)
			return false;
	} while (len > 0);
	return true;
}

static bool
read_chunked(struct conn *c, EVP_MD_CTX *md)
{
	size_t start, len;
	uint64_t size;

	for (;;) {
		if (!read_line(c, &start, &len) ||
		    !parse_chunk_size(c->buf + start, len, &size))
			return false;
		if (size == 0)
			return skip_trailers(c);
		/* The data is followed by a CRLF of its own. */
		if (!read_fixed(c, size, md) || !read_line(c, &start, &len) ||
		    len != 0)
			return false;
	}
}

static bool
read_body(struct conn *c, const struct request *r, EVP_MD_CTX *md)
{
	bool has_body = r->chunked || r->length > 0;

	/* curl waits a while for this before sending a large body. */
	if (has_body && r->expect_continue && r->http11 &&
	    !send_str(c, "HTTP/1.1 100 Continue\r\n\r\n"))
		return false;
	if (r->chunked)
		return read_chunked(c, md);
	return read_fixed(c, r->length, md);
}

/* ---- modes ---- */

static void
to_hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool
serve_sink(const struct server *s, struct conn *c, const struct request *r)
{
	unsigned char dig[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	char resp[256];
	unsigned int dlen;
	int n;

	if (!EVP_DigestInit_ex(c->md, s->sha256, NULL) ||
	    !read_body(c, r, c->md) ||
	    !EVP_DigestFinal_ex(c->md, dig, &dlen))
		return false;
	to_hex(dig, dlen, hex);
	n = snprintf(resp, sizeof(resp), "HTTP/1.1 201 Created\r\n"
	    "Content-Length: 0\r\nDocker-Content-Digest: sha256:%s\r\n\r\n",
	    hex);
	return n > 0 && (size_t)n < sizeof(resp) &&
	    send_all(c, resp, (size_t)n);
}

/*
 * The body repeats the random buffer: TLS cost does not depend on it. The
 * stop flag is checked per write since a slow reader keeps one SSL_write
 * busy without it ever returning WANT_WRITE.
 */
static bool
send_source(const struct server *s, struct conn *c)
{
	uint64_t left = s->size;

	while (left > 0) {
		size_t n = left < SOURCE_BUF_SIZE ? (size_t)left :
		    SOURCE_BUF_SIZE;

		if (stop || !send_all(c, s->source, n))
			return false;
		left -= n;
	}
	return true;
}

static bool
serve_source(const struct server *s, struct conn *c, const struct request *r)
{
	bool head = strcmp(r->method, "HEAD") == 0;
	char resp[192];
	int n;

	/* Any body is dropped so that the next head is found where it is. */
	if (!read_body(c, r, NULL))
		return false;
	if (!head && strcmp(r->method, "GET") != 0) {
		send_error(c, 405);
		return false;
	}
	n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %"
	    PRIu64 "\r\nContent-Type: application/octet-stream\r\n\r\n",
	    s->size);
	if (n <= 0 || (size_t)n >= sizeof(resp) ||
	    !send_all(c, resp, (size_t)n))
		return false;
	return head || send_source(s, c);
}

/* Returns whether the connection may carry another request. */
static bool
serve_request(const struct server *s, struct conn *c)
{
	struct request r;
	int st = read_head(c, &r);
	bool ok;

	if (st < 0)
		return false;
	if (st > 0) {
		send_error(c, st);
		return false;
	}
	ok = s->mode == MODE_SINK ? serve_sink(s, c, &r) :
	    serve_source(s, c, &r);
	return ok && !r.close;
}

/* ---- connections ---- */

static void
tune_socket(int fd)
{
	struct timeval tv = { .tv_sec = IO_WAKEUP_S, .tv_usec = 0 };
	int one = 1;
	int fl = fcntl(fd, F_GETFL);

	/* Some systems pass the listener's O_NONBLOCK on to accepted sockets. */
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	/* Replies are small single writes: Nagle must not hold them back. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/*
	 * Blocking I/O still wakes up every second (OpenSSL reports it as
	 * WANT_*), so a stop signal that lands between the check of the flag
	 * and the syscall cannot leave us waiting on an idle client.
	 */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static bool
tls_accept(struct conn *c)
{
	for (;;) {
		int ret = SSL_accept(c->ssl);

		if (ret == 1)
			return true;
		if (!should_retry(c, ret))
			return false;
	}
}

/* Serves requests until the client leaves or fails; closes fd. */
static void
serve_conn(const struct server *s, struct conn *c, int fd)
{
	tune_socket(fd);
	/* SSL_get_error needs an empty queue; nothing is left on success. */
	ERR_clear_error();
	c->pos = c->len = c->scanned = 0;
	c->clean = true;
	c->ssl = SSL_new(s->ctx);
	if (c->ssl != NULL && SSL_set_fd(c->ssl, fd) == 1 && tls_accept(c)) {
		while (!stop && serve_request(s, c))
			;
	}
	/*
	 * Our close_notify, without waiting for the client's; not when
	 * stopping, as it could wait on a slow client.
	 */
	if (c->ssl != NULL && c->clean && !stop)
		SSL_shutdown(c->ssl);
	SSL_free(c->ssl);
	c->ssl = NULL;
	close(fd);
}

static int
wait_accept(int lfd, const sigset_t *run_mask)
{
	fd_set rd;

	FD_ZERO(&rd);
	FD_SET(lfd, &rd);
	if (pselect(lfd + 1, &rd, NULL, NULL, NULL, run_mask) < 0)
		return -1;
	return accept(lfd, NULL, NULL);
}

static int
run(const struct server *s, struct conn *c, int lfd,
    const sigset_t *stop_sigs, const sigset_t *run_mask)
{
	while (!stop) {
		int fd = wait_accept(lfd, run_mask);

		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "tls_ceiling: accept: %s\n",
			    strerror(errno));
			return 1;
		}
		/* Let a stop signal interrupt the connection's I/O. */
		sigprocmask(SIG_SETMASK, run_mask, NULL);
		serve_conn(s, c, fd);
		sigprocmask(SIG_BLOCK, stop_sigs, NULL);
	}
	return 0;
}

/* ---- main ---- */

static bool
setup(const struct options *o, struct server *s, struct conn *c)
{
	s->mode = o->mode;
	s->size = o->size;
	s->ctx = make_ctx(o->cert, o->key);
	if (s->ctx == NULL)
		return false;
	s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	c->md = EVP_MD_CTX_new();
	c->buf = malloc(READ_BUF_SIZE);
	if (s->sha256 == NULL || c->md == NULL || c->buf == NULL) {
		tls_error("out of memory or no SHA-256", NULL);
		return false;
	}
	if (s->mode == MODE_SOURCE) {
		s->source = malloc(SOURCE_BUF_SIZE);
		if (s->source == NULL ||
		    RAND_bytes(s->source, (int)SOURCE_BUF_SIZE) != 1) {
			tls_error("cannot make the source buffer", NULL);
			return false;
		}
	}
	return true;
}

static void
teardown(struct server *s, struct conn *c)
{
	free(c->buf);
	EVP_MD_CTX_free(c->md);
	free(s->source);
	EVP_MD_free(s->sha256);
	SSL_CTX_free(s->ctx);
}

int
main(int argc, char **argv)
{
	struct options o;
	struct server s;
	struct conn c;
	sigset_t stop_sigs, run_mask;
	int lfd, rc = 1;

	if (!parse_options(argc, argv, &o))
		return 2;
	memset(&s, 0, sizeof(s));
	memset(&c, 0, sizeof(c));
	if (!install_signals(&stop_sigs, &run_mask)) {
		fprintf(stderr, "tls_ceiling: signals: %s\n", strerror(errno));
		return 1;
	}
	if (setup(&o, &s, &c) && (lfd = listen_on(o.port)) >= 0) {
		printf("ready\n");
		fflush(stdout);
		rc = run(&s, &c, lfd, &stop_sigs, &run_mask);
		close(lfd);
	}
	teardown(&s, &c);
	return rc;
}
