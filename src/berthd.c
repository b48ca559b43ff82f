/*
 * berthd: the berth registry daemon. Parses the command line, opens the
 * store, sets up TLS (generating a self-signed certificate on first start
 * when none is given), listens, and runs the event loop until SIGTERM or
 * SIGINT, after which in-flight requests get a grace period and the store
 * is closed cleanly. SIGHUP reloads the certificate.
 */
#define _DEFAULT_SOURCE         /* initgroups */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/stat.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>


#include "api/api.h"
#include "metrics/metrics.h"
#include "auth/auth.h"
#include "auth/token.h"
#include "berth/gc.h"
#include "berth/store.h"
#include "http/server.h"
#include "http/tls.h"
#include "util/duration.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/options.h"

#ifndef BERTH_SYSCONFDIR
#define BERTH_SYSCONFDIR "/etc"
#endif
/* The date the generated berthd.conf(5) carries. */
#define BERTHD_MANUAL_DATE "November 28, 2026"

#define BERTHD_LISTEN_DEFAULT   "127.0.0.1:5443"
#define BERTHD_LISTEN_MAX       8
#define BERTHD_DRAIN_S          10
#define BERTHD_GC_INTERVAL_S    3600u

/* The periodic collection: a thread of its own, off the event loop. */
struct gc_thread {
	struct store *st;
	struct gc_options o;
	uint64_t interval;      /* seconds; 0: never */
	pthread_t tid;
	bool started;
	atomic_int stop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

/*
 * Every option as configured: the command line over the configuration
 * file over the defaults (the table below). Numbers are held as uint64_t
 * and checked against the table's limits before they are used.
 */
struct conf {
	const char *config;
	const char *data;
	struct opt_list listen;
	const char *tls_cert, *tls_key;
	bool no_tls;
	uint64_t max_blob_size, max_manifest_size, max_uploads;
	uint64_t max_connections, max_header_bytes, max_headers, max_url_bytes;
	uint64_t header_timeout, io_timeout, zstd_level, min_body_rate;
	uint64_t upload_buffer;
	const char *log_level;
	bool log_syslog;
	const char *access_log_format;
	const char *metrics_listen;
	uint64_t gc_interval, gc_grace;
	bool gc_untagged;
	const char *htpasswd, *access;
	bool token;
	const char *token_realm;
	const char *user;
};

struct berthd {
	struct conf c;
	const char *data;
	struct opt_list listen;
	const char *cert, *key;
	char cert_buf[PATH_MAX], key_buf[PATH_MAX];
	bool no_tls;
	const char *htpasswd, *access;  /* authentication, if set */
	bool token;                     /* bearer tokens from /token */
	const char *user;               /* run as this user once set up */
	struct token_key *token_key;
	struct api *api_handle;
	int zstd_level;                 /* 0: the store's default */
	struct gc_thread gc;
	struct api_config api;
	struct http_limits limits;

	struct event_base *base;
	struct http_server *srv;
	struct http_server *metrics_srv;        /* --metrics-listen */
	struct store *st;
	struct event *drain_timer;
	int drain_left;
};

#define C(f) offsetof(struct conf, f)

static const char *const log_levels[] = { "error", "warn", "info", "debug",
    NULL };
static const char *const log_formats[] = { "text", "json", NULL };

/* Every option, in the order --help and berthd.conf(5) list them. */
static const struct opt options[] = {
	{ "config", OPT_STRING, C(config), 0, 0, NULL, "FILE", NULL,
	    "read options from FILE (default " BERTH_SYSCONFDIR
	    "/berth/berthd.conf if it exists)", NULL, true },
	{ "data", OPT_STRING, C(data), 0, 0, NULL, "DIR", NULL,
	    "the store's folder, created if missing (required)",
	    "The folder of the store: data.mdb, the generated certificate in "
	    "tls/ and the token key in auth/. Created if missing. Required.",
	    false },
	{ "listen", OPT_LIST, C(listen), 0, 0, NULL, "ADDR:PORT",
	    BERTHD_LISTEN_DEFAULT, "address to serve; repeatable; [::1]:PORT "
	    "for IPv6", "An address and port to serve the registry on; "
	    "[::]:443 for IPv6. Port 0 lets the kernel choose.", false },
	{ "tls-cert", OPT_STRING, C(tls_cert), 0, 0, NULL, "FILE", NULL,
	    "PEM certificate chain (with tls-key; default: self-signed in "
	    "DIR/tls/)", "The certificate chain in PEM, given with tls-key. "
	    "Without both, a self-signed certificate for localhost and this "
	    "host's addresses is made in DIR/tls/ on first start. Reloaded on "
	    "SIGHUP.", false },
	{ "tls-key", OPT_STRING, C(tls_key), 0, 0, NULL, "FILE", NULL,
	    "PEM private key of tls-cert", NULL, false },
	{ "no-tls", OPT_FLAG, C(no_tls), 0, 0, NULL, NULL, "false",
	    "serve plain HTTP (behind a TLS proxy only)", NULL, false },
	{ "max-blob-size", OPT_UINT, C(max_blob_size), 1, UINT64_MAX, NULL,
	    "BYTES", "10737418240", "largest blob accepted", NULL, false },
	{ "max-manifest-size", OPT_UINT, C(max_manifest_size), 1024,
	    FORMAT_CHUNK_RAW_LIMIT, NULL, "BYTES", "4194304",
	    "largest manifest accepted", NULL, false },
	{ "max-uploads", OPT_UINT, C(max_uploads), 1, 100000, NULL, "N", "256",
	    "upload sessions open at once", NULL, false },
	{ "upload-buffer", OPT_UINT, C(upload_buffer), (uint64_t)1 << 20,
	    2 * (uint64_t)STORE_BATCH_BYTES_MAX, NULL, "BYTES", "1048576",
	    "pushed bytes held in memory, all pushes together, until on disk",
	    "Pushed bytes berthd holds in memory, all pushes together, until "
	    "they are on disk; a push's reading pauses beyond its share. Half "
	    "of it (at least 1 MiB) is the most one group commit gathers. "
	    "Raising it (to 8388608, say) commits fewer, larger groups, "
	    "which lets a fast disk take pushes from a fast network sooner, "
	    "at that much more memory (docs/PERFORMANCE.md).", false },
	{ "max-connections", OPT_UINT, C(max_connections), 1, 1000000, NULL,
	    "N", "1024", "client connections at once; more are refused",
	    NULL, false },
	{ "max-header-bytes", OPT_UINT, C(max_header_bytes), 1024, 1 << 20,
	    NULL, "N", "16384", "largest request head", NULL, false },
	{ "max-headers", OPT_UINT, C(max_headers), 8, HTTP_HEADER_COUNT_MAX,
	    NULL, "N", "64", "most header fields in a request", NULL, false },
	{ "max-url-bytes", OPT_UINT, C(max_url_bytes), 256, 65536, NULL, "N",
	    "4096", "longest request target", NULL, false },
	{ "header-timeout", OPT_DURATION, C(header_timeout), 1, 3600, NULL,
	    "DURATION", "30s", "time a client has to send a request head",
	    NULL, false },
	{ "io-timeout", OPT_DURATION, C(io_timeout), 1, 86400, NULL,
	    "DURATION", "2m", "longest wait for a client's next bytes",
	    NULL, false },
	{ "min-body-rate", OPT_UINT, C(min_body_rate), 0, 1000000000, NULL,
	    "BYTES", "1024", "a request body slower than this many bytes a "
	    "second, on average over io-timeout, is cut off; 0: no limit",
	    NULL, false },
	{ "zstd-level", OPT_UINT, C(zstd_level), 1, 19, NULL, "N", "1",
	    "compression of uncompressed layers: higher stores less, costs "
	    "push CPU", NULL, false },
	{ "gc-interval", OPT_DURATION, C(gc_interval), 0, DURATION_MAX_SECONDS,
	    NULL, "DURATION", "1h", "collect garbage this often; 0: never",
	    NULL, false },
	{ "gc-grace", OPT_DURATION, C(gc_grace), 0, DURATION_MAX_SECONDS, NULL,
	    "DURATION", "1h", "keep unreferenced data younger than this",
	    NULL, false },
	{ "gc-untagged", OPT_FLAG, C(gc_untagged), 0, 0, NULL, NULL, "false",
	    "also collect manifests no tag, index or subject keeps", NULL,
	    false },
	{ "htpasswd", OPT_STRING, C(htpasswd), 0, 0, NULL, "FILE", NULL,
	    "require users of FILE (htpasswd -B); reloaded on SIGHUP",
	    "Users and bcrypt hashes as htpasswd -B writes them; with it every "
	    "request needs credentials (docs/AUTH.md). Reloaded on SIGHUP.",
	    false },
	{ "access", OPT_STRING, C(access), 0, 0, NULL, "FILE", NULL,
	    "what each user may pull, push, delete (default: everything)",
	    "Rights per repository pattern for users, groups and anonymous "
	    "clients; needs htpasswd. Reloaded on SIGHUP.", false },
	{ "token", OPT_FLAG, C(token), 0, 0, NULL, NULL, "false",
	    "bearer tokens (ES256) from /token; key in DIR/auth/", NULL, false },
	{ "token-realm", OPT_STRING, C(token_realm), 0, 0, NULL, "URL", NULL,
	    "where clients ask for tokens (default https://HOST/token, the "
	    "host they used)", "The realm of the Bearer challenge: where "
	    "clients send their credentials for a token. By default the "
	    "scheme berthd serves (https, or http with no-tls) and the host "
	    "the client used, then /token. Behind a proxy that terminates "
	    "TLS, set it to the proxy's https URL ending in /token, so that "
	    "credentials never travel in clear.", false },
	{ "user", OPT_STRING, C(user), 0, 0, NULL, "NAME", NULL,
	    "started as root: run as NAME once ports, store and keys are open",
	    NULL, false },
	{ "log-level", OPT_ENUM, C(log_level), 0, 0, log_levels,
	    "error|warn|info|debug", "info", "messages at least this important",
	    NULL, false },
	{ "log-syslog", OPT_FLAG, C(log_syslog), 0, 0, NULL, NULL, "false",
	    "log to syslog (daemon facility) instead of stderr", NULL, false },
	{ "access-log-format", OPT_ENUM, C(access_log_format), 0, 0,
	    log_formats, "text|json", "text", "one access log line per "
	    "request, as text or a JSON object", NULL, false },
	{ "metrics-listen", OPT_STRING, C(metrics_listen), 0, 0, NULL,
	    "ADDR:PORT", NULL, "serve Prometheus /metrics here (off by "
	    "default)", "An address and port serving GET /metrics in "
	    "Prometheus text format, plain HTTP, no authentication: bind it "
	    "to a trusted network. Off when not set.", false },
	{ NULL, OPT_FLAG, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, false },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: berthd --data DIR [OPTION]...\n"
	    "       berthd -n [OPTION]...   check the configuration and exit\n"
	    "       berthd --help | --version\n\n");
	opt_usage(options, f);
	fprintf(f, "\nEvery option is also a key of the configuration file "
	    "(berthd.conf(5));\nthe command line wins; --name=value works too "
	    "(--no-tls=false). Durations\ntake s, m, h, d.\n");
}

/*
 * Reads the command line and the configuration file into d->c, then
 * checks what depends on several options. Returns 0, 1 for -n (checked),
 * or -1 after printing why.
 */
static int
parse_args(struct berthd *d, int argc, char **argv, bool *check_only)
{
	const struct opt *given[128];
	const char *vals[128];
	size_t ngiven = 0;
	char why[512], deflt[PATH_MAX];
	struct stat sb;

	*check_only = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq;
		const struct opt *o;

		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--version") == 0) {
			printf("berthd %s (store format %u, sd_notify)\n",
			    PACKAGE_VERSION, FORMAT_VERSION);
			exit(0);
		} else if (strcmp(a, "--print-config-manual") == 0) {
			opt_mdoc(options, stdout, "berthd.conf",
			    BERTHD_MANUAL_DATE);
			exit(0);
		} else if (strcmp(a, "-n") == 0) {
			*check_only = true;
			continue;
		}
		eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
		o = strncmp(a, "--", 2) == 0 ? opt_find(options, a + 2,
		    eq != NULL ? (size_t)(eq - a - 2) : strlen(a) - 2) : NULL;
		if (o == NULL) {
			fprintf(stderr, "berthd: unknown option %s (see --help)\n",
			    a);
			return -1;
		}
		if (ngiven == sizeof(given) / sizeof(given[0])) {
			fprintf(stderr, "berthd: too many options\n");
			return -1;
		}
		given[ngiven] = o;
		vals[ngiven] = NULL;
		if (eq != NULL) {
			/* --name=value; for a flag, --no-tls=false turns off
			 * what the file turned on. */
			vals[ngiven] = eq + 1;
		} else if (o->type != OPT_FLAG) {
			if (i + 1 >= argc) {
				fprintf(stderr, "berthd: --%s: missing value (see "
				    "--help)\n", o->name);
				return -1;
			}
			vals[ngiven] = argv[++i];
		}
		if (o->offset == offsetof(struct conf, config))
			d->c.config = vals[ngiven];
		ngiven++;
	}
	/* The file first, so that the command line overrides it. */
	snprintf(deflt, sizeof(deflt), "%s/berth/berthd.conf", BERTH_SYSCONFDIR);
	if (d->c.config == NULL && stat(deflt, &sb) == 0)
		d->c.config = deflt;
	if (d->c.config != NULL &&
	    opt_load_file(options, &d->c, d->c.config, why, sizeof(why)) != 0) {
		fprintf(stderr, "berthd: %s\n", why);
		return -1;
	}
	for (size_t i = 0; i < ngiven; i++) {
		/* A list on the command line replaces the file's. */
		if (given[i]->type == OPT_LIST) {
			bool first = true;

			for (size_t j = 0; j < i; j++)
				first = first && given[j] != given[i];
			if (first)
				((struct opt_list *)((char *)&d->c +
				    given[i]->offset))->n = 0;
		}
		if (opt_set(given[i], &d->c, vals[i], why, sizeof(why)) != 0) {
			fprintf(stderr, "berthd: --%s\n", why);
			return -1;
		}
	}
	if (d->c.data == NULL) {
		fprintf(stderr, "berthd: data is required (--data DIR or data = "
		    "DIR in the configuration file)\n");
		return -1;
	}
	if ((d->c.tls_cert == NULL) != (d->c.tls_key == NULL) ||
	    (d->c.no_tls && d->c.tls_cert != NULL)) {
		fprintf(stderr, "berthd: give tls-cert and tls-key together, "
		    "or no-tls alone\n");
		return -1;
	}
	if ((d->c.access != NULL || d->c.token) && d->c.htpasswd == NULL) {
		fprintf(stderr, "berthd: access and token need htpasswd\n");
		return -1;
	}
	if (d->c.listen.n == 0)
		d->c.listen.v[d->c.listen.n++] = BERTHD_LISTEN_DEFAULT;
	/* What the rest of berthd reads. */
	d->data = d->c.data;
	d->listen = d->c.listen;
	d->cert = d->c.tls_cert;
	d->key = d->c.tls_key;
	d->no_tls = d->c.no_tls;
	d->htpasswd = d->c.htpasswd;
	d->access = d->c.access;
	d->token = d->c.token;
	d->user = d->c.user;
	d->zstd_level = (int)d->c.zstd_level;
	d->api.max_blob_bytes = d->c.max_blob_size;
	d->api.max_manifest_bytes = (size_t)d->c.max_manifest_size;
	d->api.max_uploads = (size_t)d->c.max_uploads;
	d->api.upload_buffer_bytes = d->c.upload_buffer;
	d->limits.max_connections = (size_t)d->c.max_connections;
	d->limits.header_max_bytes = (size_t)d->c.max_header_bytes;
	d->limits.header_max_count = (size_t)d->c.max_headers;
	d->limits.url_max_bytes = (size_t)d->c.max_url_bytes;
	d->limits.header_timeout_s = (int)d->c.header_timeout;
	d->limits.io_timeout_s = (int)d->c.io_timeout;
	d->limits.min_body_rate = d->c.min_body_rate;
	d->limits.access_log_json = strcmp(d->c.access_log_format, "json") == 0;
	d->gc.interval = d->c.gc_interval;
	d->gc.o.grace = d->c.gc_grace;
	d->gc.o.untagged = d->c.gc_untagged;
	for (int k = 0; log_levels[k] != NULL; k++)
		if (strcmp(d->c.log_level, log_levels[k]) == 0)
			log_set_level((enum log_level)k);
	return *check_only ? 1 : 0;
}

/* Tells systemd (Type=notify units) what berthd is doing. */
static void
notify(const char *state)
{
	service_notify(state);
}

/* The self-signed certificate in DIR/tls/, made on first start. */
static int
tls_default_paths(struct berthd *d)
{
	char dir[PATH_MAX];
	struct stat sb;
	char fp[TLS_FINGERPRINT_BYTES];

	if ((size_t)snprintf(dir, sizeof(dir), "%s/tls", d->data) >= sizeof(dir) ||
	    (size_t)snprintf(d->cert_buf, sizeof(d->cert_buf), "%s/tls/cert.pem",
	    d->data) >= sizeof(d->cert_buf) ||
	    (size_t)snprintf(d->key_buf, sizeof(d->key_buf), "%s/tls/key.pem",
	    d->data) >= sizeof(d->key_buf)) {
		log_error("berthd: --data path too long");
		return -1;
	}
	d->cert = d->cert_buf;
	d->key = d->key_buf;
	if (stat(d->cert, &sb) == 0 && stat(d->key, &sb) == 0)
		return 0;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		log_error("berthd: mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (tls_generate_self_signed(d->cert, d->key) != 0)
		return -1;
	if (tls_fingerprint(d->cert, fp) == 0)
		log_info("generated a self-signed certificate %s (SHA-256 %s); "
		    "clients must trust it", d->cert, fp);
	return 0;
}

static void
drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct berthd *d = arg;
	struct timeval tv = { 1, 0 };

	(void)fd;
	(void)what;
	if (http_server_connections(d->srv) == 0 || --d->drain_left <= 0) {
		event_base_loopexit(d->base, NULL);
		return;
	}
	evtimer_add(d->drain_timer, &tv);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct berthd *d = arg;
	struct timeval now = { 0, 0 };
	size_t open;

	(void)what;
	if (d->drain_timer != NULL)
		return;
	notify("STOPPING=1");
	open = http_server_stop_accepting(d->srv);
	if (d->metrics_srv != NULL)
		(void)http_server_stop_accepting(d->metrics_srv);
	log_info("signal %d: stopped accepting; %zu connection(s) open, waiting "
	    "up to %d s", (int)sig, open, BERTHD_DRAIN_S);
	d->drain_left = BERTHD_DRAIN_S;
	d->drain_timer = evtimer_new(d->base, drain_cb, d);
	evtimer_add(d->drain_timer, &now);
}

/* Loads the user and access files into the API; false if they are bad. */
static bool
auth_reload(struct berthd *d)
{
	struct auth *au;
	char why[512];
	size_t users, rules;

	if (d->htpasswd == NULL)
		return true;
	au = auth_load(d->htpasswd, d->access, why, sizeof(why));
	if (au == NULL) {
		log_error("auth: %s", why);
		return false;
	}
	auth_counts(au, &users, &rules);
	{
		struct auth *old = api_set_auth(d->api_handle, au);

		if (old != NULL)
			auth_inherit(au, old);
		auth_free(old);
	}
	log_info("auth: %zu users from %s, %s", users, d->htpasswd,
	    d->access != NULL ? "rules from the access file" :
	    "every user may pull, push and delete");
	if (d->access != NULL)
		log_info("auth: %zu rules from %s", rules, d->access);
	return true;
}

/*
 * Started as root with --user: gives up root for good once everything that
 * needs it (ports below 1024, the store and key files) is open. The
 * store's files stay usable through their open descriptors; files read
 * again later (certificate and user files on SIGHUP) must be readable by
 * the user.
 */
static int
drop_privileges(const char *name)
{
	struct passwd *pw = getpwnam(name);
	gid_t gid;

	if (pw == NULL) {
		log_error("berthd: --user %s: no such user", name);
		return -1;
	}
	if (geteuid() != 0) {
		if (pw->pw_uid == geteuid())
			return 0;
		log_error("berthd: --user %s: only root can change user", name);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_error("berthd: --user %s: that is root", name);
		return -1;
	}
	gid = pw->pw_gid;
	if (initgroups(name, gid) != 0 || setgid(gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		log_error("berthd: --user %s: %s", name, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0) {
		log_error("berthd: --user %s: root could be regained", name);
		return -1;
	}
	log_info("berthd: running as %s (uid %u, gid %u)", name,
	    (unsigned)pw->pw_uid, (unsigned)gid);
	return 0;
}

/* The token signing key in DATA/auth/, made on first start. */
static int
token_start(struct berthd *d)
{
	struct api_token t = { .ttl = TOKEN_TTL_DEFAULT, .tls = !d->no_tls };
	char dir[PATH_MAX], path[PATH_MAX + 32], why[512];

	if ((size_t)snprintf(dir, sizeof(dir), "%s/auth", d->data) >=
	    sizeof(dir) || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
		log_error("auth: cannot make %s/auth: %s", d->data,
		    strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/token-key.pem", dir);
	d->token_key = token_key_load(path, true, why, sizeof(why));
	if (d->token_key == NULL) {
		log_error("auth: %s", why);
		return -1;
	}
	t.key = d->token_key;
	t.realm = d->c.token_realm;
	snprintf(t.service, sizeof(t.service), "%s", TOKEN_SERVICE_DEFAULT);
	api_set_token(d->api_handle, &t);
	log_info("auth: bearer tokens from /token, signed with %s", path);
	return 0;
}

static void
hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct berthd *d = arg;
	SSL_CTX *ctx;

	(void)sig;
	(void)what;
	notify("RELOADING=1");
	if (!auth_reload(d))
		log_error("SIGHUP: keeping the old users and access rules");
	if (!d->no_tls) {
		ctx = tls_ctx_new(d->cert, d->key);
		if (ctx == NULL) {
			log_error("SIGHUP: keeping the old certificate");
		} else {
			http_server_set_tls(d->srv, ctx);
			log_info("SIGHUP: reloaded %s", d->cert);
		}
	}
	notify("READY=1");
}

/* The metrics listener: GET /metrics, nothing else. */
static void
metrics_handle(void *arg, struct http_conn *c, const struct http_request *r)
{
	struct berthd *d = arg;
	char *body;
	size_t len;

	if (!http_slice_eq(r->path, "/metrics")) {
		http_conn_reply(c, 404, "Content-Type: text/plain\r\n",
		    "not found\n", 10, r->method == HTTP_HEAD ?
		    HTTP_REPLY_HEAD_ONLY : 0);
		return;
	}
	if (r->method != HTTP_GET && r->method != HTTP_HEAD) {
		http_conn_reply(c, 405, "Allow: GET, HEAD\r\n", NULL, 0, 0);
		return;
	}
	body = metrics_render(d->st, &len);
	if (body == NULL) {
		http_conn_reply(c, 500, NULL, NULL, 0, 0);
		return;
	}
	http_conn_reply(c, 200, "Content-Type: text/plain; version=0.0.4; "
	    "charset=utf-8\r\n", body, len, r->method == HTTP_HEAD ?
	    HTTP_REPLY_HEAD_ONLY : 0);
	free(body);
}

static void
gc_note(void *arg, const char *line)
{
	(void)arg;
	log_info("gc: %s", line);
}

static void *
gc_main(void *arg)
{
	struct gc_thread *g = arg;

	pthread_mutex_lock(&g->lock);
	while (!atomic_load(&g->stop)) {
		struct timespec ts;
		struct gc_report r;
		int rc;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)g->interval;
		while (!atomic_load(&g->stop) &&
		    pthread_cond_timedwait(&g->cond, &g->lock, &ts) == 0)
			;
		if (atomic_load(&g->stop))
			break;
		pthread_mutex_unlock(&g->lock);
		rc = store_gc(g->st, &g->o, &r);
		if (rc != 0)
			log_error("gc: failed: %s", store_strerror(rc));
		else
			metrics_gc_run(r.blobs, r.manifests, r.stored);
		if (rc == 0)
			log_info("gc: deleted %llu manifests, %llu blobs, freed "
			    "%llu stored bytes in %.1f s (%llu kept by the grace "
			    "period, %llu changed meanwhile)",
			    (unsigned long long)r.manifests,
			    (unsigned long long)r.blobs,
			    (unsigned long long)r.stored, r.seconds,
			    (unsigned long long)r.kept_young,
			    (unsigned long long)r.skipped);
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

static int
gc_start(struct gc_thread *g, struct store *st)
{
	g->st = st;
	g->o.stop = &g->stop;
	g->o.note = gc_note;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	if (g->interval == 0)
		return 0;
	if (pthread_create(&g->tid, NULL, gc_main, g) != 0) {
		log_error("berthd: cannot start the collection thread");
		return -1;
	}
	g->started = true;
	log_info("berthd: garbage collection every %llu s, grace %llu s%s",
	    (unsigned long long)g->interval, (unsigned long long)g->o.grace,
	    g->o.untagged ? ", untagged manifests too" : "");
	return 0;
}

/* Stops a collection between batches and waits for the thread. */
static void
gc_stop(struct gc_thread *g)
{
	if (!g->started)
		return;
	pthread_mutex_lock(&g->lock);
	atomic_store(&g->stop, 1);
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->tid, NULL);
	g->started = false;
}

/* A duration in its largest exact unit: 90s, 5m, 1h, 7d. */
static void
print_duration(FILE *f, uint64_t v)
{
	if (v != 0 && v % 86400 == 0)
		fprintf(f, "%llud", (unsigned long long)(v / 86400));
	else if (v != 0 && v % 3600 == 0)
		fprintf(f, "%lluh", (unsigned long long)(v / 3600));
	else if (v != 0 && v % 60 == 0)
		fprintf(f, "%llum", (unsigned long long)(v / 60));
	else
		fprintf(f, "%llus", (unsigned long long)v);
}

/*
 * berthd -n: the options and the files they name are checked as a start
 * would (users and rules parsed, certificate and key loaded); the store
 * is not opened. Prints the configuration in effect, as a file would say
 * it. 0 if all is well, 2 with a message if not.
 */
static int
check_config(struct berthd *d)
{
	char why[512];

	if (d->htpasswd != NULL) {
		struct auth *au = auth_load(d->htpasswd, d->access, why,
		    sizeof(why));

		if (au == NULL) {
			fprintf(stderr, "berthd: %s\n", why);
			return 2;
		}
		auth_free(au);
	}
	if (!d->no_tls && d->cert != NULL) {
		SSL_CTX *ctx = tls_ctx_new(d->cert, d->key);

		if (ctx == NULL) {
			fprintf(stderr, "berthd: tls-cert/tls-key: cannot be "
			    "used (see the log line above)\n");
			return 2;
		}
		SSL_CTX_free(ctx);
	}
	if (d->user != NULL && getpwnam(d->user) == NULL) {
		fprintf(stderr, "berthd: user %s: no such user\n", d->user);
		return 2;
	}
	printf("# berthd %s: configuration in effect%s%s\n", PACKAGE_VERSION,
	    d->c.config != NULL ? ", from " : "",
	    d->c.config != NULL ? d->c.config : "");
	for (const struct opt *o = options; o->name != NULL; o++) {
		const void *v = (const char *)&d->c + o->offset;

		if (o->cli_only)
			continue;
		switch (o->type) {
		case OPT_LIST:
			for (size_t i = 0; i < ((const struct opt_list *)v)->n; i++)
				printf("%s = %s\n", o->name,
				    ((const struct opt_list *)v)->v[i]);
			break;
		case OPT_STRING:
		case OPT_ENUM:
			if (*(const char *const *)v != NULL)
				printf("%s = %s\n", o->name,
				    *(const char *const *)v);
			else
				printf("# %s is not set\n", o->name);
			break;
		case OPT_FLAG:
			printf("%s = %s\n", o->name, *(const bool *)v ? "true" :
			    "false");
			break;
		case OPT_UINT:
			printf("%s = %llu\n", o->name,
			    (unsigned long long)*(const uint64_t *)v);
			break;
		case OPT_DURATION:
			printf("%s = ", o->name);
			print_duration(stdout, *(const uint64_t *)v);
			putchar('\n');
			break;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct berthd d = {
		.c = {
			.max_blob_size = API_MAX_BLOB_BYTES_DEFAULT,
			.max_manifest_size = API_MAX_MANIFEST_BYTES_DEFAULT,
			.max_uploads = API_MAX_UPLOADS_DEFAULT,
			.upload_buffer = API_UPLOAD_BUFFER_BYTES_DEFAULT,
			.max_connections = HTTP_MAX_CONNECTIONS_DEFAULT,
			.max_header_bytes = HTTP_HEADER_MAX_BYTES_DEFAULT,
			.max_headers = HTTP_HEADER_MAX_COUNT_DEFAULT,
			.max_url_bytes = HTTP_URL_MAX_BYTES_DEFAULT,
			.header_timeout = HTTP_HEADER_TIMEOUT_S_DEFAULT,
			.io_timeout = HTTP_IO_TIMEOUT_S_DEFAULT,
			.min_body_rate = HTTP_MIN_BODY_RATE_DEFAULT,
			.zstd_level = STORE_ZSTD_LEVEL_DEFAULT,
			.gc_interval = BERTHD_GC_INTERVAL_S,
			.gc_grace = GC_GRACE_DEFAULT,
			.log_level = "info",
			.access_log_format = "text",
		},
	};
	bool check_only;
	struct store_options so = { .flags = STORE_OPEN_CREATE };
	struct store *st = NULL;
	struct api *api = NULL;
	struct event *sigs[3] = { NULL, NULL, NULL };
	char url[128];
	int rc, status = 1;

	rc = parse_args(&d, argc, argv, &check_only);
	if (rc < 0)
		return 2;
	if (check_only)
		return check_config(&d);
	if (d.c.log_syslog)
		log_to_syslog("berthd");
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() != 0) {
		log_error("berthd: libevent without thread support");
		return 1;
	}
	so.path = d.data;
	so.zstd_level = d.zstd_level;
	/* A group gathers half the buffer, and at least one full chunk. */
	so.batch_bytes = (size_t)(d.api.upload_buffer_bytes / 2);
	if (so.batch_bytes < STORE_BATCH_BYTES_DEFAULT)
		so.batch_bytes = STORE_BATCH_BYTES_DEFAULT;
	rc = store_open(&so, &st);
	d.st = st;
	if (rc != 0) {
		log_error("berthd: store %s: %s", d.data, store_strerror(rc));
		return 1;
	}
	d.base = event_base_new();
	if (d.base == NULL)
		goto out;
	api = api_new(st, d.base, &d.api);
	d.srv = http_server_new(d.base, &d.limits, api_handle, api);
	if (api == NULL || d.srv == NULL)
		goto out;
	d.api_handle = api;
	if (!auth_reload(&d))
		goto out;
	if (d.token && token_start(&d) != 0)
		goto out;
	if (d.htpasswd != NULL && d.no_tls)
		log_warn("auth: passwords cross the network in clear without "
		    "TLS; use --no-tls only behind a TLS proxy");
	if (!d.no_tls) {
		SSL_CTX *ctx;

		if (d.cert == NULL && tls_default_paths(&d) != 0)
			goto out;
		ctx = tls_ctx_new(d.cert, d.key);
		if (ctx == NULL)
			goto out;
		http_server_set_tls(d.srv, ctx);
	}
	for (size_t i = 0; i < d.listen.n; i++) {
		if (http_server_listen(d.srv, d.listen.v[i], !d.no_tls, url,
		    sizeof(url)) != 0)
			goto out;
		log_info("berthd %s listening on %s (data %s)", PACKAGE_VERSION,
		    url, d.data);
	}
	sigs[0] = evsignal_new(d.base, SIGTERM, stop_cb, &d);
	sigs[1] = evsignal_new(d.base, SIGINT, stop_cb, &d);
	sigs[2] = evsignal_new(d.base, SIGHUP, hup_cb, &d);
	for (int i = 0; i < 3; i++)
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) != 0)
			goto out;
	if (d.c.metrics_listen != NULL) {
		struct http_limits ml = d.limits;

		ml.access_log_json = false;
		ml.quiet = true;        /* scrapes are not registry traffic */
		d.metrics_srv = http_server_new(d.base, &ml, metrics_handle, &d);
		if (d.metrics_srv == NULL ||
		    http_server_listen(d.metrics_srv, d.c.metrics_listen, false,
		    url, sizeof(url)) != 0)
			goto out;
		log_info("berthd: metrics on %smetrics", url);
	}
	if (d.user != NULL && drop_privileges(d.user) != 0)
		goto out;
	if (gc_start(&d.gc, st) != 0)
		goto out;
	notify("READY=1");
	event_base_dispatch(d.base);
	log_info("berthd: stopping");
	status = 0;
out:
	for (int i = 0; i < 3; i++)
		if (sigs[i] != NULL)
			event_free(sigs[i]);
	if (d.drain_timer != NULL)
		event_free(d.drain_timer);
	/*
	 * The store drains its queue first: completions of writes still in
	 * flight wake events that must still exist. Then the sessions, then
	 * the loop.
	 */
	gc_stop(&d.gc);
	http_server_free(d.metrics_srv);
	http_server_free(d.srv);
	store_close(st);
	if (api != NULL)
		auth_free(api_set_auth(api, NULL));
	token_key_free(d.token_key);
	api_free(api);
	if (d.base != NULL)
		event_base_free(d.base);
	return status;
}
