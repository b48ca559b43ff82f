/*
 * hload: a small HTTP/1.1-over-TLS keep-alive load generator, run by hand
 * (see tests/bench/README). It exists because wrk and h2load hang on HEAD
 * responses: their response parser is not told the request was HEAD, so it
 * waits for the body that Content-Length announces.
 *
 * Build (standalone, not part of make):
 *
 *   gcc -std=c11 -O2 -Wall -Wextra -Werror -o tests/bench/hload \
 *       tests/bench/hload.c $(pkg-config --cflags --libs openssl) -lm
 *
 * Usage:
 *
 *   hload -c CONNS -d SECONDS [-t THREADS] [-m GET|HEAD]
 *         [-H 'Name: value']... --cacert PEM https://IP[:PORT]/PATH
 *
 * The host must be an IP literal (127.0.0.1, [::1]); the server certificate
 * is verified against the PEM file and must name that IP in its
 * subjectAltName. Defaults: 64 connections, 2 threads, GET.
 *
 * Each connection connects, does the TLS handshake, then sends one request
 * at a time (no pipelining) and reads the whole response (head of at most
 * 16 KiB; Content-Length, chunked, or until close; no body for HEAD, 1xx,
 * 204 and 304) before sending the next. Connections are split among the
 * threads; each thread drives its own with non-blocking sockets and epoll.
 * A broken connection counts one error and is reopened (after 10 ms if it
 * broke before its handshake finished). Latency is measured from the start
 * of sending a request to the end of its response, into a log-linear
 * histogram (relative error below 0.4%). Only requests completed within
 * the -d window (which starts before the first connect) are counted.
 *
 * Prints, on stdout:
 *
 *   requests N
 *   seconds S
 *   rps R
 *   p50_ms X
 *   p99_ms Y
 *   non2xx K
 *   errors E
 *
 * and, on stderr, the first error message if any error occurred. Exits 1
 * with a one-line message on bad arguments or if a first probe connection
 * (before the window starts) cannot be established.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define CONNS_MAX 10000
#define THREADS_MAX 256
#define SECONDS_MAX 86400.0
#define HEADERS_MAX 64
#define HEADER_LEN_MAX 1024
#define PATH_LEN_MAX 4096
#define REQ_LEN_MAX 16384
#define HEAD_MAX 16384          /* response status line + headers */
#define CHUNK_LINE_MAX 4096     /* chunk-size line with extensions */
#define TRAILER_MAX 16384
#define ERR_LEN 200
#define PROBE_TIMEOUT_MS 10000
#define RETRY_NS 10000000LL     /* before reopening a never-ready conn */
#define EVENTS_MAX 64

/* Log-linear histogram of microseconds: exact below 2^HIST_LIN_BITS, then
 * 2^HIST_SUB_BITS buckets per power of two up to 2^HIST_MSB_MAX. */
#define HIST_LIN_BITS 8
#define HIST_SUB_BITS 7
#define HIST_MSB_MAX 40
#define HIST_LIN ((size_t)1 << HIST_LIN_BITS)
#define HIST_SUB ((size_t)1 << HIST_SUB_BITS)
#define HIST_BUCKETS \
	(HIST_LIN + (size_t)(HIST_MSB_MAX - HIST_LIN_BITS + 1) * HIST_SUB)

enum cstate {
	C_RETRY,        /* closed; reopen at retry_at */
	C_CONNECTING,
	C_HANDSHAKE,
	C_READY,        /* between requests */
	C_WRITING,
	C_READING,
};

enum bmode {
	B_NONE,
	B_LENGTH,
	B_CHUNKED,
	B_CLOSE,        /* until the server closes */
};

enum chstate {
	CH_SIZE,
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER,
};

struct worker;

struct conn {
	struct worker *w;
	int fd;
	SSL *ssl;
	enum cstate state;
	uint32_t want;          /* epoll events the state machine waits for */
	uint32_t reg;           /* events registered with epoll, 0: none */
	int ready_once;         /* handshake finished on this socket */
	int64_t retry_at;
	int64_t t_start;
	size_t woff;            /* bytes of the request sent */
	/* response */
	int head_done;
	size_t len;             /* bytes in buf (head phase) */
	int status;
	int close_after;
	enum bmode bmode;
	uint64_t remaining;     /* B_LENGTH, or the current chunk */
	enum chstate ch;
	int ch_digits;
	int ch_ext;
	size_t ch_line;
	size_t trailer;
	char buf[HEAD_MAX];
};

struct worker {
	pthread_t tid;
	int ep;
	struct conn *conns;
	size_t nconns;
	size_t nretry;
	int64_t deadline;
	uint64_t requests;
	uint64_t non2xx;
	uint64_t errors;
	uint64_t ready;         /* handshakes finished */
	char first_err[ERR_LEN];
	uint64_t hist[HIST_BUCKETS];
};

/* Shared, read-only once the threads start. */
static SSL_CTX *g_ctx;
static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static int g_head;
static char g_req[REQ_LEN_MAX];
static size_t g_reqlen;

static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("hload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- histogram ---- */

static size_t
hist_index(uint64_t us)
{
	int msb;

	if (us < HIST_LIN)
		return (size_t)us;
	msb = 63 - __builtin_clzll(us);
	if (msb > HIST_MSB_MAX)
		return HIST_BUCKETS - 1;
	return HIST_LIN + (size_t)(msb - HIST_LIN_BITS) * HIST_SUB +
	    (size_t)((us >> (msb - HIST_SUB_BITS)) - HIST_SUB);
}

/* The middle of bucket i, in microseconds. */
static double
hist_value(size_t i)
{
	size_t k;
	int msb;
	double width;

	if (i < HIST_LIN)
		return (double)i;
	k = i - HIST_LIN;
	msb = HIST_LIN_BITS + (int)(k / HIST_SUB);
	width = ldexp(1.0, msb - HIST_SUB_BITS);
	return (double)(HIST_SUB + k % HIST_SUB) * width + width / 2.0;
}

static double
hist_percentile_ms(const uint64_t *h, uint64_t total, double p)
{
	uint64_t rank, cum = 0;
	size_t i;

	if (total == 0)
		return 0.0;
	rank = (uint64_t)ceil(p / 100.0 * (double)total);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		cum += h[i];
		if (cum >= rank)
			return hist_value(i) / 1000.0;
	}
	return hist_value(HIST_BUCKETS - 1) / 1000.0;
}

/* ---- connections ---- */

static void
note_err(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	if (w->first_err[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(w->first_err, sizeof(w->first_err), fmt, ap);
	va_end(ap);
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);   /* also leaves the epoll set */
		c->fd = -1;
	}
	c->reg = 0;
	c->want = 0;
}

/* Close c and reopen it at delay_ns from now. */
static void
conn_schedule(struct conn *c, int64_t delay_ns)
{
	conn_close(c);
	c->state = C_RETRY;
	c->retry_at = now_ns() + delay_ns;
	c->w->nretry++;
}

/* A connection error: count it (within the window) and reopen. */
static void
conn_fail(struct conn *c, const char *fmt, ...)
{
	struct worker *w = c->w;
	va_list ap;

	if (now_ns() < w->deadline) {
		w->errors++;
		if (w->first_err[0] == '\0') {
			va_start(ap, fmt);
			vsnprintf(w->first_err, sizeof(w->first_err), fmt, ap);
			va_end(ap);
		}
	}
	conn_schedule(c, c->ready_once ? 0 : RETRY_NS);
}

/* Describe the last TLS failure of c into out. */
static void
tls_err(struct conn *c, int ret, int sslerr, char *out, size_t outlen)
{
	unsigned long e = ERR_peek_last_error();
	long vr;

	if (c->state == C_HANDSHAKE && c->ssl != NULL &&
	    (vr = SSL_get_verify_result(c->ssl)) != X509_V_OK) {
		snprintf(out, outlen, "certificate verify failed: %s",
		    X509_verify_cert_error_string(vr));
		return;
	}
	if (e != 0) {
		char buf[160];

		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(out, outlen, "TLS error: %s", buf);
	} else if (sslerr == SSL_ERROR_SYSCALL && errno != 0 && ret < 0) {
		snprintf(out, outlen, "TLS: %s", strerror(errno));
	} else if (sslerr == SSL_ERROR_ZERO_RETURN || sslerr == SSL_ERROR_SYSCALL) {
		snprintf(out, outlen, "connection closed by server");
	} else {
		snprintf(out, outlen, "TLS error %d", sslerr);
	}
}

/* A TLS call that must wait for the socket: which event, then true. */
static int
tls_blocked(struct conn *c, int sslerr)
{
	if (sslerr == SSL_ERROR_WANT_READ) {
		c->want = EPOLLIN;
		return 1;
	}
	if (sslerr == SSL_ERROR_WANT_WRITE) {
		c->want = EPOLLOUT;
		return 1;
	}
	return 0;
}

/* Fails c after a TLS call (what: "handshake", "write", "read") failed. */
static void
tls_fail(struct conn *c, int ret, int sslerr, const char *what)
{
	char err[256];

	tls_err(c, ret, sslerr, err, sizeof(err));
	conn_fail(c, "%s: %s", what, err);
}

static void
conn_open(struct conn *c)
{
	struct worker *w = c->w;
	struct epoll_event ev;
	int one = 1;

	c->ready_once = 0;
	c->fd = socket(g_addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_fail(c, "socket: %s", strerror(errno));
		return;
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (const struct sockaddr *)&g_addr, g_addrlen) != 0 &&
	    errno != EINPROGRESS) {
		conn_fail(c, "connect: %s", strerror(errno));
		return;
	}
	/* Writable once connected (at once if connect returned 0). */
	c->state = C_CONNECTING;
	c->want = EPOLLOUT;
	if (w->ep >= 0) {
		memset(&ev, 0, sizeof(ev));
		ev.events = c->want;
		ev.data.ptr = c;
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
			conn_fail(c, "epoll_ctl: %s", strerror(errno));
			return;
		}
		c->reg = c->want;
	}
}

static void
resp_reset(struct conn *c)
{
	c->head_done = 0;
	c->len = 0;
	c->status = 0;
	c->close_after = 0;
	c->bmode = B_NONE;
	c->remaining = 0;
	c->ch = CH_SIZE;
	c->ch_digits = 0;
	c->ch_ext = 0;
	c->ch_line = 0;
	c->trailer = 0;
}

static int
lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/* Whether the comma-separated list v[0..n) holds token tok (any case). */
static int
has_token(const char *v, size_t n, const char *tok, int last_only)
{
	size_t i = 0, tl = strlen(tok), s, e;
	int found = 0;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e == s)
			continue;
		found = e - s == tl && strncasecmp(v + s, tok, tl) == 0;
		if (found && !last_only)
			return 1;
	}
	return found;
}

static int
name_is(const char *n, size_t nl, const char *want)
{
	return nl == strlen(want) && strncasecmp(n, want, nl) == 0;
}

/*
 * Parse the head in buf[0..hl) (hl includes the blank line). Returns 0, or
 * -1 with a message in err.
 */
static int
parse_head(struct conn *c, size_t hl, char *err, size_t errlen)
{
	const char *b = c->buf, *line, *eol, *colon;
	size_t pos, ll, nl, vs, ve;
	int minor, have_cl = 0, chunked = 0, keepalive = 0, close_tok = 0;
	uint64_t cl = 0;

	/* Status line: HTTP/1.x SSS[ reason] */
	eol = memchr(b, '\n', hl);
	if (eol == NULL) {
		snprintf(err, errlen, "bad status line");
		return -1;
	}
	ll = (size_t)(eol - b);
	if (ll > 0 && b[ll - 1] == '\r')
		ll--;
	if (ll < 12 || memcmp(b, "HTTP/1.", 7) != 0 ||
	    (b[7] != '0' && b[7] != '1') || b[8] != ' ' ||
	    b[9] < '1' || b[9] > '5' || b[10] < '0' || b[10] > '9' ||
	    b[11] < '0' || b[11] > '9' || (ll > 12 && b[12] != ' ')) {
		snprintf(err, errlen, "bad status line");
		return -1;
	}
	minor = b[7] - '0';
	c->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	pos = (size_t)(eol - b) + 1;

	while (pos < hl) {
		line = b + pos;
		eol = memchr(line, '\n', hl - pos);
		if (eol == NULL)
			break;
		ll = (size_t)(eol - line);
		pos += ll + 1;
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			break;          /* the blank line */
		if (line[0] == ' ' || line[0] == '\t')
			continue;       /* obsolete folding: ignored */
		colon = memchr(line, ':', ll);
		if (colon == NULL || colon == line) {
			snprintf(err, errlen, "bad header line");
			return -1;
		}
		nl = (size_t)(colon - line);
		vs = nl + 1;
		while (vs < ll && (line[vs] == ' ' || line[vs] == '\t'))
			vs++;
		ve = ll;
		while (ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
			ve--;
		if (name_is(line, nl, "content-length")) {
			uint64_t v = 0;
			size_t i;

			if (ve == vs) {
				snprintf(err, errlen, "bad Content-Length");
				return -1;
			}
			for (i = vs; i < ve; i++) {
				if (line[i] < '0' || line[i] > '9' ||
				    v > (UINT64_C(1) << 58)) {
					snprintf(err, errlen, "bad Content-Length");
					return -1;
				}
				v = v * 10 + (uint64_t)(line[i] - '0');
			}
			if (have_cl && v != cl) {
				snprintf(err, errlen, "conflicting Content-Length");
				return -1;
			}
			have_cl = 1;
			cl = v;
		} else if (name_is(line, nl, "transfer-encoding")) {
			if (!has_token(line + vs, ve - vs, "chunked", 1)) {
				snprintf(err, errlen,
				    "unsupported Transfer-Encoding");
				return -1;
			}
			chunked = 1;
		} else if (name_is(line, nl, "connection")) {
			if (has_token(line + vs, ve - vs, "close", 0))
				close_tok = 1;
			if (has_token(line + vs, ve - vs, "keep-alive", 0))
				keepalive = 1;
		}
	}
	c->close_after = close_tok || (minor == 0 && !keepalive);
	if (g_head || c->status < 200 || c->status == 204 || c->status == 304) {
		c->bmode = B_NONE;
	} else if (chunked) {
		c->bmode = B_CHUNKED;
	} else if (have_cl) {
		c->bmode = cl > 0 ? B_LENGTH : B_NONE;
		c->remaining = cl;
	} else {
		c->bmode = B_CLOSE;
		c->close_after = 1;
	}
	return 0;
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = lower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/*
 * Feed body bytes p[0..n). Returns 1 when the body is complete (with
 * *used set to the bytes it took), 0 if it needs more, -1 on a framing
 * error (message in err).
 */
static int
body_feed(struct conn *c, const char *p, size_t n, size_t *used,
    char *err, size_t errlen)
{
	size_t i = 0, take;
	int h;

	*used = 0;
	switch (c->bmode) {
	case B_NONE:
		return 1;
	case B_CLOSE:
		*used = n;
		return 0;
	case B_LENGTH:
		take = c->remaining < n ? (size_t)c->remaining : n;
		c->remaining -= take;
		*used = take;
		return c->remaining == 0;
	case B_CHUNKED:
		break;
	}
	while (i < n) {
		switch (c->ch) {
		case CH_SIZE:
			if (++c->ch_line > CHUNK_LINE_MAX) {
				snprintf(err, errlen, "chunk-size line too long");
				return -1;
			}
			if (p[i] == '\n') {
				if (c->ch_digits == 0) {
					snprintf(err, errlen, "bad chunk size");
					return -1;
				}
				c->ch_line = 0;
				c->ch = c->remaining == 0 ? CH_TRAILER : CH_DATA;
			} else if (!c->ch_ext &&
			    (h = hexval((unsigned char)p[i])) >= 0) {
				if (c->remaining > (UINT64_C(1) << 56)) {
					snprintf(err, errlen, "chunk too large");
					return -1;
				}
				c->remaining = c->remaining * 16 + (uint64_t)h;
				c->ch_digits++;
			} else if (c->ch_digits == 0) {
				snprintf(err, errlen, "bad chunk size");
				return -1;
			} else {
				c->ch_ext = 1;  /* ;ext, spaces or CR */
			}
			i++;
			break;
		case CH_DATA:
			take = n - i;
			if (c->remaining < take)
				take = (size_t)c->remaining;
			c->remaining -= take;
			i += take;
			if (c->remaining == 0)
				c->ch = CH_DATA_CR;
			break;
		case CH_DATA_CR:
		case CH_DATA_LF:
			if (p[i] == '\r' && c->ch == CH_DATA_CR) {
				c->ch = CH_DATA_LF;
			} else if (p[i] == '\n') {
				c->ch = CH_SIZE;
				c->ch_digits = 0;
				c->ch_ext = 0;
				c->ch_line = 0;
			} else {
				snprintf(err, errlen, "missing CRLF after chunk");
				return -1;
			}
			i++;
			break;
		case CH_TRAILER:
			if (++c->trailer > TRAILER_MAX) {
				snprintf(err, errlen, "trailer too long");
				return -1;
			}
			if (p[i] == '\n') {
				i++;
				if (c->ch_line == 0) {
					*used = i;
					return 1;
				}
				c->ch_line = 0;
			} else {
				if (p[i] != '\r')
					c->ch_line++;
				i++;
			}
			break;
		}
	}
	*used = i;
	return 0;
}

/* The response is complete: account for it and go on. */
static void
resp_done(struct conn *c)
{
	struct worker *w = c->w;
	int64_t t = now_ns();

	if (t <= w->deadline) {
		w->requests++;
		if (c->status < 200 || c->status > 299)
			w->non2xx++;
		w->hist[hist_index((uint64_t)(t - c->t_start) / 1000)]++;
	}
	if (c->close_after)
		conn_schedule(c, 0);    /* not an error */
	else
		c->state = C_READY;
}

/* End of head in b[0..n): the offset just past the blank line, or 0. */
static size_t
head_end(const char *b, size_t n, size_t from)
{
	size_t i;

	for (i = from; i < n; i++) {
		if (b[i] != '\n')
			continue;
		if (i + 1 < n && b[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/*
 * Process bytes just read into the head buffer (head phase) or the start
 * of buf (body phase). Returns 1 if the response is complete, 0 if more is
 * needed, -1 on error (message in err).
 */
static int
resp_input(struct conn *c, size_t n, char *err, size_t errlen)
{
	size_t used, he, from;
	int r;

	if (c->head_done) {
		r = body_feed(c, c->buf, n, &used, err, errlen);
		if (r == 1 && used != n) {
			snprintf(err, errlen, "data after the response");
			return -1;
		}
		return r;
	}
	from = c->len > 3 ? c->len - 3 : 0;
	c->len += n;
	for (;;) {
		he = head_end(c->buf, c->len, from);
		if (he == 0) {
			if (c->len >= sizeof(c->buf)) {
				snprintf(err, errlen,
				    "response head over %d bytes", HEAD_MAX);
				return -1;
			}
			return 0;
		}
		if (parse_head(c, he, err, errlen) != 0)
			return -1;
		if (c->status == 101) {
			snprintf(err, errlen, "unexpected 101 response");
			return -1;
		}
		if (c->status >= 200)
			break;
		/* Interim 1xx: drop it and parse what follows. */
		memmove(c->buf, c->buf + he, c->len - he);
		c->len -= he;
		from = 0;
	}
	c->head_done = 1;
	r = body_feed(c, c->buf + he, c->len - he, &used, err, errlen);
	if (r == 1 && used != c->len - he) {
		snprintf(err, errlen, "data after the response");
		return -1;
	}
	return r;
}

/* Run c's state machine until it must wait. */
static void
conn_drive(struct conn *c, int stop_when_ready)
{
	char err[ERR_LEN];
	int r, e, so;
	socklen_t sl;

	for (;;) {
		switch (c->state) {
		case C_RETRY:
			return;
		case C_CONNECTING:
			so = 0;
			sl = sizeof(so);
			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so, &sl) != 0)
				so = errno;
			if (so != 0) {
				conn_fail(c, "connect: %s", strerror(so));
				return;
			}
			c->ssl = SSL_new(g_ctx);
			if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
				conn_fail(c, "SSL_new failed");
				return;
			}
			SSL_set_connect_state(c->ssl);
			c->state = C_HANDSHAKE;
			break;
		case C_HANDSHAKE:
			ERR_clear_error();
			errno = 0;
			r = SSL_connect(c->ssl);
			if (r == 1) {
				c->ready_once = 1;
				c->w->ready++;
				c->state = C_READY;
				break;
			}
			e = SSL_get_error(c->ssl, r);
			if (!tls_blocked(c, e))
				tls_fail(c, r, e, "handshake");
			return;
		case C_READY:
			if (stop_when_ready)
				return;
			c->t_start = now_ns();
			c->woff = 0;
			resp_reset(c);
			c->state = C_WRITING;
			break;
		case C_WRITING:
			ERR_clear_error();
			errno = 0;
			r = SSL_write(c->ssl, g_req + c->woff,
			    (int)(g_reqlen - c->woff));
			if (r > 0) {
				c->woff += (size_t)r;
				if (c->woff == g_reqlen)
					c->state = C_READING;
				break;
			}
			e = SSL_get_error(c->ssl, r);
			if (!tls_blocked(c, e))
				tls_fail(c, r, e, "write");
			return;
		case C_READING: {
			char *dst;
			size_t room;

			if (c->head_done) {
				dst = c->buf;
				room = sizeof(c->buf);
			} else {
				dst = c->buf + c->len;
				room = sizeof(c->buf) - c->len;
			}
			ERR_clear_error();
			errno = 0;
			r = SSL_read(c->ssl, dst, (int)room);
			if (r > 0) {
				r = resp_input(c, (size_t)r, err, sizeof(err));
				if (r < 0) {
					conn_fail(c, "response: %s", err);
					return;
				}
				if (r == 1)
					resp_done(c);
				break;
			}
			e = SSL_get_error(c->ssl, r);
			if (tls_blocked(c, e))
				return;
			if (e == SSL_ERROR_ZERO_RETURN && c->head_done &&
			    c->bmode == B_CLOSE) {
				resp_done(c);   /* schedules the reopen */
				return;
			}
			tls_fail(c, r, e, "read");
			return;
		}
		}
	}
}

static void
conn_sync_events(struct conn *c)
{
	struct epoll_event ev;

	if (c->fd < 0 || c->state == C_RETRY || c->want == c->reg)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = c->want;
	ev.data.ptr = c;
	if (epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
		conn_fail(c, "epoll_ctl: %s", strerror(errno));
		return;
	}
	c->reg = c->want;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[EVENTS_MAX];
	int64_t now, next, wait_ns;
	size_t i;
	int n, k, timeout;

	for (i = 0; i < w->nconns; i++)
		conn_open(&w->conns[i]);
	for (;;) {
		now = now_ns();
		if (now >= w->deadline)
			break;
		next = w->deadline;
		if (w->nretry > 0) {
			for (i = 0; i < w->nconns; i++) {
				struct conn *c = &w->conns[i];

				if (c->state != C_RETRY)
					continue;
				if (c->retry_at <= now) {
					w->nretry--;
					conn_open(c);
				} else if (c->retry_at < next) {
					next = c->retry_at;
				}
			}
			/* conn_open may have failed and rescheduled. */
			for (i = 0; i < w->nconns && w->nretry > 0; i++)
				if (w->conns[i].state == C_RETRY &&
				    w->conns[i].retry_at < next)
					next = w->conns[i].retry_at;
		}
		wait_ns = next - now;
		if (wait_ns < 0)
			wait_ns = 0;
		timeout = (int)((wait_ns + 999999) / 1000000);
		n = epoll_wait(w->ep, evs, EVENTS_MAX, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			note_err(w, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;

			/* A conn closed earlier in this batch stays closed
			 * until the next round, so its events are stale. */
			if (c->state == C_RETRY)
				continue;
			conn_drive(c, 0);
			conn_sync_events(c);
		}
	}
	for (i = 0; i < w->nconns; i++)
		conn_close(&w->conns[i]);
	return NULL;
}

/* ---- set-up ---- */

static void
usage(void)
{
	die("usage: hload -c CONNS -d SECONDS [-t THREADS] [-m GET|HEAD] "
	    "[-H 'Name: value']... --cacert PEM https://IP[:PORT]/PATH");
}

static long
parse_long(const char *s, const char *what, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		die("%s must be an integer from %ld to %ld: '%s'", what, lo, hi, s);
	return v;
}

static int
is_tchar(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Append s[0..n) to the request, or die. */
static void
req_add(const char *s, size_t n)
{
	if (n > sizeof(g_req) - g_reqlen)
		die("request longer than %d bytes", REQ_LEN_MAX);
	memcpy(g_req + g_reqlen, s, n);
	g_reqlen += n;
}

static void
req_adds(const char *s)
{
	req_add(s, strlen(s));
}

/*
 * Split an https URL into the address g_addr, host (IP text, no brackets,
 * for certificate checks), the Host header value and the path.
 */
static void
parse_url(const char *url, char *host, size_t hostlen, char *hosthdr,
    size_t hosthdrlen, char *path, size_t pathlen)
{
	const char *p, *h, *he, *ps;
	size_t hl, pl, i;
	long port = 443;
	int v6 = 0;

	if (strncasecmp(url, "https://", 8) != 0)
		die("URL must start with https://: '%s'", url);
	p = url + 8;
	if (*p == '[') {
		v6 = 1;
		h = p + 1;
		he = strchr(h, ']');
		if (he == NULL)
			die("missing ']' in URL: '%s'", url);
		p = he + 1;
	} else {
		h = p;
		he = h + strcspn(h, ":/?#");
		p = he;
	}
	hl = (size_t)(he - h);
	if (hl == 0 || hl >= hostlen)
		die("bad host in URL: '%s'", url);
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (*p == ':') {
		char num[8];
		size_t nl;

		p++;
		nl = strcspn(p, "/?#");
		if (nl == 0 || nl >= sizeof(num))
			die("bad port in URL: '%s'", url);
		memcpy(num, p, nl);
		num[nl] = '\0';
		port = parse_long(num, "port", 1, 65535);
		p += nl;
	} else if (*p != '\0' && *p != '/' && *p != '?' && *p != '#') {
		die("bad URL: '%s'", url);
	}

	memset(&g_addr, 0, sizeof(g_addr));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&g_addr;

		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			die("host must be an IP literal: '%s'", host);
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		g_addrlen = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&g_addr;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			die("host must be an IP literal: '%s'", host);
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		g_addrlen = sizeof(*a);
	}
	if (snprintf(hosthdr, hosthdrlen, v6 ? "[%s]" : "%s", host) >=
	    (int)hosthdrlen)
		die("host too long");
	if (port != 443) {
		size_t l = strlen(hosthdr);

		if (snprintf(hosthdr + l, hosthdrlen - l, ":%ld", port) >=
		    (int)(hosthdrlen - l))
			die("host too long");
	}

	/* Path and query, without any fragment. */
	ps = p;
	pl = strcspn(ps, "#");
	if (pl == 0) {
		ps = "/";
		pl = 1;
	}
	if (pl + 2 > pathlen)
		die("path longer than %d bytes", PATH_LEN_MAX);
	i = 0;
	if (ps[0] != '/')
		path[i++] = '/';        /* "https://h?q" */
	for (; pl > 0; pl--, ps++) {
		unsigned char ch = (unsigned char)*ps;

		if (ch <= ' ' || ch == 0x7f)
			die("bad character in URL path: '%s'", url);
		path[i++] = (char)ch;
	}
	path[i] = '\0';
}

/* Validate "Name: value" and append it as a header line. */
static void
add_header(const char *hdr, int *has_host)
{
	const char *colon = strchr(hdr, ':'), *v;
	size_t nl, i, vl;

	if (strlen(hdr) > HEADER_LEN_MAX)
		die("header longer than %d bytes: '%.40s...'", HEADER_LEN_MAX, hdr);
	if (colon == NULL || colon == hdr)
		die("header must be 'Name: value': '%s'", hdr);
	nl = (size_t)(colon - hdr);
	for (i = 0; i < nl; i++)
		if (!is_tchar((unsigned char)hdr[i]))
			die("bad header name: '%s'", hdr);
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	vl = strlen(v);
	while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	for (i = 0; i < vl; i++) {
		unsigned char ch = (unsigned char)v[i];

		if ((ch < ' ' && ch != '\t') || ch == 0x7f)
			die("bad character in header value: '%s'", hdr);
	}
	if (nl == 4 && strncasecmp(hdr, "host", 4) == 0)
		*has_host = 1;
	req_add(hdr, nl);
	req_adds(": ");
	req_add(v, vl);
	req_adds("\r\n");
}

static void
raise_nofile(long conns)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)conns + 32;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		die("%ld connections need %lu file descriptors; the limit is %lu",
		    conns, (unsigned long)need, (unsigned long)rl.rlim_max);
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
}

/* One connection and handshake before the window opens, to fail early. */
static void
probe(const char *url)
{
	struct worker *w;
	struct conn *c;
	struct pollfd pfd;
	int64_t end;
	int r;

	w = calloc(1, sizeof(*w));
	c = calloc(1, sizeof(*c));
	if (w == NULL || c == NULL)
		die("out of memory");
	w->ep = -1;
	w->deadline = INT64_MAX;
	c->w = w;
	c->fd = -1;
	end = now_ns() + (int64_t)PROBE_TIMEOUT_MS * 1000000;
	conn_open(c);
	while (c->state != C_RETRY) {
		int64_t left = end - now_ns();

		if (left <= 0)
			die("cannot connect to %s: timed out", url);
		pfd.fd = c->fd;
		pfd.events = (short)((c->want & EPOLLIN ? POLLIN : 0) |
		    (c->want & EPOLLOUT ? POLLOUT : 0));
		pfd.revents = 0;
		r = poll(&pfd, 1, (int)((left + 999999) / 1000000));
		if (r < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (r <= 0)
			continue;
		conn_drive(c, 1);
		if (c->state == C_READY)
			break;
	}
	if (c->state != C_READY)
		die("cannot connect to %s: %s", url, w->first_err);
	conn_close(c);
	free(c);
	free(w);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cacert", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *method = "GET", *cacert = NULL, *url;
	const char *headers[HEADERS_MAX];
	size_t nheaders = 0, i, base, extra;
	long conns = 64, threads = 2;
	double seconds = -1.0, p50, p99, rps;
	char host[INET6_ADDRSTRLEN + 1], hosthdr[INET6_ADDRSTRLEN + 16];
	char path[PATH_LEN_MAX + 2], *end;
	struct worker **ws;
	uint64_t *hist;
	uint64_t requests = 0, non2xx = 0, errors = 0, ready = 0;
	const char *first_err = NULL;
	int opt, has_host = 0;
	int64_t t0, deadline;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "c:d:t:m:H:h", longopts,
	    NULL)) != -1) {
		switch (opt) {
		case 'c':
			conns = parse_long(optarg, "-c", 1, CONNS_MAX);
			break;
		case 'd':
			errno = 0;
			seconds = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !(seconds > 0.0 && seconds <= SECONDS_MAX))
				die("-d must be a number of seconds above 0 and "
				    "at most %.0f: '%s'", SECONDS_MAX, optarg);
			break;
		case 't':
			threads = parse_long(optarg, "-t", 1, THREADS_MAX);
			break;
		case 'm':
			if (strcmp(optarg, "GET") != 0 &&
			    strcmp(optarg, "HEAD") != 0)
				die("-m must be GET or HEAD: '%s'", optarg);
			method = optarg;
			break;
		case 'H':
			if (nheaders == HEADERS_MAX)
				die("at most %d -H headers", HEADERS_MAX);
			headers[nheaders++] = optarg;
			break;
		case 'C':
			cacert = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1 || seconds < 0.0 || cacert == NULL)
		usage();
	url = argv[optind];
	g_head = strcmp(method, "HEAD") == 0;
	if (threads > conns)
		threads = conns;

	parse_url(url, host, sizeof(host), hosthdr, sizeof(hosthdr), path,
	    sizeof(path));
	req_adds(method);
	req_adds(" ");
	req_adds(path);
	req_adds(" HTTP/1.1\r\n");
	for (i = 0; i < nheaders; i++)
		if (strncasecmp(headers[i], "host:", 5) == 0)
			has_host = 1;
	if (!has_host) {
		req_adds("Host: ");
		req_adds(hosthdr);
		req_adds("\r\n");
	}
	for (i = 0; i < nheaders; i++)
		add_header(headers[i], &has_host);
	req_adds("\r\n");

	signal(SIGPIPE, SIG_IGN);
	raise_nofile(conns);

	g_ctx = SSL_CTX_new(TLS_client_method());
	if (g_ctx == NULL)
		die("SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(g_ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(g_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_options(g_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (SSL_CTX_load_verify_locations(g_ctx, cacert, NULL) != 1)
		die("cannot load CA file '%s'", cacert);
	SSL_CTX_set_verify(g_ctx, SSL_VERIFY_PEER, NULL);
	if (X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(g_ctx), host) != 1)
		die("bad IP for certificate check: '%s'", host);
	{
		static const unsigned char alpn[] = "\x08http/1.1";

		if (SSL_CTX_set_alpn_protos(g_ctx, alpn, sizeof(alpn) - 1) != 0)
			die("SSL_CTX_set_alpn_protos failed");
	}

	probe(url);

	ws = calloc((size_t)threads, sizeof(*ws));
	if (ws == NULL)
		die("out of memory");
	t0 = now_ns();
	deadline = t0 + (int64_t)llround(seconds * 1e9);
	base = (size_t)conns / (size_t)threads;
	extra = (size_t)conns % (size_t)threads;
	for (i = 0; i < (size_t)threads; i++) {
		struct worker *w;
		size_t j;
		int rc;

		w = ws[i] = calloc(1, sizeof(*w));
		if (w == NULL)
			die("out of memory");
		w->nconns = base + (i < extra ? 1 : 0);
		w->conns = calloc(w->nconns, sizeof(*w->conns));
		if (w->conns == NULL)
			die("out of memory");
		for (j = 0; j < w->nconns; j++) {
			w->conns[j].w = w;
			w->conns[j].fd = -1;
			w->conns[j].state = C_RETRY;
		}
		w->deadline = deadline;
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		if (w->ep < 0)
			die("epoll_create1: %s", strerror(errno));
		rc = pthread_create(&w->tid, NULL, worker_main, w);
		if (rc != 0)
			die("pthread_create: %s", strerror(rc));
	}

	hist = calloc(HIST_BUCKETS, sizeof(*hist));
	if (hist == NULL)
		die("out of memory");
	for (i = 0; i < (size_t)threads; i++) {
		struct worker *w = ws[i];
		size_t b;

		pthread_join(w->tid, NULL);
		requests += w->requests;
		non2xx += w->non2xx;
		errors += w->errors;
		ready += w->ready;
		for (b = 0; b < HIST_BUCKETS; b++)
			hist[b] += w->hist[b];
		if (first_err == NULL && w->first_err[0] != '\0')
			first_err = w->first_err;
	}
	if (ready == 0)
		die("no connection could be established to %s: %s", url,
		    first_err != NULL ? first_err : "no handshake finished");

	p50 = hist_percentile_ms(hist, requests, 50.0);
	p99 = hist_percentile_ms(hist, requests, 99.0);
	rps = (double)requests / seconds;
	printf("requests %" PRIu64 "\n", requests);
	printf("seconds %.3f\n", seconds);
	printf("rps %.1f\n", rps);
	printf("p50_ms %.3f\n", p50);
	printf("p99_ms %.3f\n", p99);
	printf("non2xx %" PRIu64 "\n", non2xx);
	printf("errors %" PRIu64 "\n", errors);
	if (errors > 0 && first_err != NULL)
		fprintf(stderr, "hload: first error: %s\n", first_err);

	for (i = 0; i < (size_t)threads; i++) {
		close(ws[i]->ep);
		free(ws[i]->conns);
		free(ws[i]);
	}
	free(ws);
	free(hist);
	SSL_CTX_free(g_ctx);
	return 0;
}
