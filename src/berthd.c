/*
 * berthd: the berth registry daemon. Parses the command line, opens the
 * store, sets up TLS (generating a self-signed certificate on first start
 * when none is given), listens, and runs the event loop until SIGTERM or
 * SIGINT, after which in-flight requests get a grace period and the store
 * is closed cleanly. SIGHUP reloads the certificate.
 */
#define _DEFAULT_SOURCE         /* setgroups */
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
#include <sys/stat.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "api/api.h"
#include "auth/auth.h"
#include "auth/token.h"
#include "berth/gc.h"
#include "berth/store.h"
#include "http/server.h"
#include "http/tls.h"
#include "util/duration.h"
#include "util/log.h"

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

struct berthd {
	const char *data;
	const char *listen[BERTHD_LISTEN_MAX];
	size_t nlisten;
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
	struct event *drain_timer;
	int drain_left;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: berthd --data DIR [--listen ADDR:PORT]... "
	    "[--tls-cert FILE --tls-key FILE | --no-tls]\n"
	    "              [--max-blob-size BYTES] [--max-manifest-size BYTES]\n"
	    "              [--max-uploads N] [--max-connections N]\n"
	    "              [--max-header-bytes N] [--max-headers N] [--max-url-bytes N]\n"
	    "              [--header-timeout SECONDS] [--io-timeout SECONDS]\n"
	    "              [--zstd-level N]\n"
	    "              [--gc-interval DURATION] [--gc-grace DURATION] "
	    "[--gc-untagged]\n"
	    "              [--htpasswd FILE [--access FILE] [--token]] [--user NAME]\n"
	    "              [--log-level error|warn|info|debug]\n"
	    "       berthd --help | --version\n\n"
	    "  --data DIR            store folder (created if missing)\n"
	    "  --listen ADDR:PORT    address to serve; repeatable; [::1]:PORT "
	    "for IPv6\n"
	    "                        (default %s)\n"
	    "  --tls-cert, --tls-key PEM certificate chain and key; without "
	    "them a\n"
	    "                        self-signed certificate is made in "
	    "DIR/tls/\n"
	    "  --no-tls              serve plain HTTP (behind a TLS proxy)\n"
	    "  --max-blob-size       largest blob accepted (default %llu)\n"
	    "  --max-manifest-size   largest manifest accepted (default %zu)\n"
	    "  --zstd-level N        compression of uncompressed layers, 1-19 "
	    "(default %d):\n"
	    "                        higher stores less and costs push CPU\n"
	    "  --gc-interval D       collect garbage every D (default 1h; 0: "
	    "never)\n"
	    "  --gc-grace D          keep unreferenced data younger than D "
	    "(default 1h)\n"
	    "  --gc-untagged         also collect manifests no tag, index or "
	    "subject keeps\n"
	    "  --htpasswd FILE       require users of FILE (htpasswd -B) "
	    "(docs/AUTH.md)\n"
	    "  --access FILE         what each user may pull, push, delete "
	    "(default: all)\n"
	    "  --token               bearer tokens (ES256) from /token; key in "
	    "DIR/auth/\n"
	    "  --user NAME           started as root: run as NAME once the "
	    "ports,\n"
	    "                        store and keys are open\n",
	    BERTHD_LISTEN_DEFAULT,
	    (unsigned long long)API_MAX_BLOB_BYTES_DEFAULT,
	    API_MAX_MANIFEST_BYTES_DEFAULT, STORE_ZSTD_LEVEL_DEFAULT);
}

static int
parse_num(const char *opt, const char *s, uint64_t min, uint64_t max,
    uint64_t *out)
{
	if (http_parse_u64(s, strlen(s), max, out) != 0 || *out < min) {
		fprintf(stderr, "berthd: %s: want a number from %llu to %llu, "
		    "not '%s'\n", opt, (unsigned long long)min,
		    (unsigned long long)max, s);
		return -1;
	}
	return 0;
}

static int
parse_args(struct berthd *d, int argc, char **argv)
{
	uint64_t v;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--help") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(o, "--version") == 0) {
			printf("berthd %s (store format %u)\n", PACKAGE_VERSION,
			    FORMAT_VERSION);
			exit(0);
		} else if (strcmp(o, "--no-tls") == 0) {
			d->no_tls = true;
			continue;
		} else if (strcmp(o, "--gc-untagged") == 0) {
			d->gc.o.untagged = true;
			continue;
		} else if (strcmp(o, "--token") == 0) {
			d->token = true;
			continue;
		}
		if (val == NULL) {
			fprintf(stderr, "berthd: %s: missing value (see --help)\n",
			    o);
			return -1;
		}
		i++;
		if (strcmp(o, "--data") == 0) {
			d->data = val;
		} else if (strcmp(o, "--listen") == 0) {
			if (d->nlisten == BERTHD_LISTEN_MAX) {
				fprintf(stderr, "berthd: at most %d --listen\n",
				    BERTHD_LISTEN_MAX);
				return -1;
			}
			d->listen[d->nlisten++] = val;
		} else if (strcmp(o, "--user") == 0) {
			d->user = val;
		} else if (strcmp(o, "--htpasswd") == 0) {
			d->htpasswd = val;
		} else if (strcmp(o, "--access") == 0) {
			d->access = val;
		} else if (strcmp(o, "--tls-cert") == 0) {
			d->cert = val;
		} else if (strcmp(o, "--tls-key") == 0) {
			d->key = val;
		} else if (strcmp(o, "--max-blob-size") == 0) {
			if (parse_num(o, val, 1, UINT64_MAX, &d->api.max_blob_bytes))
				return -1;
		} else if (strcmp(o, "--max-manifest-size") == 0) {
			if (parse_num(o, val, 1024, FORMAT_CHUNK_RAW_LIMIT, &v))
				return -1;
			d->api.max_manifest_bytes = (size_t)v;
		} else if (strcmp(o, "--max-uploads") == 0) {
			if (parse_num(o, val, 1, 100000, &v))
				return -1;
			d->api.max_uploads = (size_t)v;
		} else if (strcmp(o, "--max-connections") == 0) {
			if (parse_num(o, val, 1, 1000000, &v))
				return -1;
			d->limits.max_connections = (size_t)v;
		} else if (strcmp(o, "--max-header-bytes") == 0) {
			if (parse_num(o, val, 1024, 1 << 20, &v))
				return -1;
			d->limits.header_max_bytes = (size_t)v;
		} else if (strcmp(o, "--max-headers") == 0) {
			if (parse_num(o, val, 8, HTTP_HEADER_COUNT_MAX, &v))
				return -1;
			d->limits.header_max_count = (size_t)v;
		} else if (strcmp(o, "--max-url-bytes") == 0) {
			if (parse_num(o, val, 256, 65536, &v))
				return -1;
			d->limits.url_max_bytes = (size_t)v;
		} else if (strcmp(o, "--header-timeout") == 0) {
			if (parse_num(o, val, 1, 3600, &v))
				return -1;
			d->limits.header_timeout_s = (int)v;
		} else if (strcmp(o, "--io-timeout") == 0) {
			if (parse_num(o, val, 1, 86400, &v))
				return -1;
			d->limits.io_timeout_s = (int)v;
		} else if (strcmp(o, "--zstd-level") == 0) {
			if (parse_num(o, val, 1, 19, &v))
				return -1;
			d->zstd_level = (int)v;
		} else if (strcmp(o, "--gc-interval") == 0 ||
		    strcmp(o, "--gc-grace") == 0) {
			if (duration_parse(val, &v) != 0) {
				fprintf(stderr, "berthd: %s: not a duration (like "
				    "90s, 30m, 1h, 7d): %s\n", o, val);
				return -1;
			}
			if (strcmp(o, "--gc-interval") == 0)
				d->gc.interval = v;
			else
				d->gc.o.grace = v;
		} else if (strcmp(o, "--log-level") == 0) {
			static const char *const lv[] = { "error", "warn", "info",
			    "debug" };
			size_t k;

			for (k = 0; k < 4 && strcmp(val, lv[k]) != 0; k++)
				;
			if (k == 4) {
				fprintf(stderr, "berthd: --log-level: want error, "
				    "warn, info or debug\n");
				return -1;
			}
			log_set_level((enum log_level)k);
		} else {
			fprintf(stderr, "berthd: unknown option %s (see --help)\n",
			    o);
			return -1;
		}
	}
	if (d->data == NULL) {
		fprintf(stderr, "berthd: --data DIR is required (see --help)\n");
		return -1;
	}
	if ((d->cert == NULL) != (d->key == NULL) ||
	    (d->no_tls && d->cert != NULL)) {
		fprintf(stderr, "berthd: give --tls-cert and --tls-key together, "
		    "or --no-tls alone\n");
		return -1;
	}
	if ((d->access != NULL || d->token) && d->htpasswd == NULL) {
		fprintf(stderr, "berthd: --access and --token need --htpasswd\n");
		return -1;
	}
	if (d->nlisten == 0)
		d->listen[d->nlisten++] = BERTHD_LISTEN_DEFAULT;
	return 0;
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
	open = http_server_stop_accepting(d->srv);
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
	auth_free(api_set_auth(d->api_handle, au));
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
	if (setgroups(1, &gid) != 0 || setgid(gid) != 0 ||
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
	if (!auth_reload(d))
		log_error("SIGHUP: keeping the old users and access rules");
	if (d->no_tls)
		return;
	ctx = tls_ctx_new(d->cert, d->key);
	if (ctx == NULL) {
		log_error("SIGHUP: keeping the old certificate");
		return;
	}
	http_server_set_tls(d->srv, ctx);
	log_info("SIGHUP: reloaded %s", d->cert);
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

int
main(int argc, char **argv)
{
	struct berthd d = {
		.api = { API_MAX_BLOB_BYTES_DEFAULT, API_MAX_MANIFEST_BYTES_DEFAULT,
		    API_MAX_UPLOADS_DEFAULT },
		.limits = { HTTP_HEADER_MAX_BYTES_DEFAULT,
		    HTTP_HEADER_MAX_COUNT_DEFAULT, HTTP_URL_MAX_BYTES_DEFAULT,
		    HTTP_HEADER_TIMEOUT_S_DEFAULT, HTTP_IO_TIMEOUT_S_DEFAULT,
		    HTTP_MAX_CONNECTIONS_DEFAULT },
		.gc = { .interval = BERTHD_GC_INTERVAL_S,
		    .o = { .grace = GC_GRACE_DEFAULT } },
	};
	struct store_options so = { .flags = STORE_OPEN_CREATE };
	struct store *st = NULL;
	struct api *api = NULL;
	struct event *sigs[3] = { NULL, NULL, NULL };
	char url[128];
	int rc, status = 1;

	if (parse_args(&d, argc, argv) != 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() != 0) {
		log_error("berthd: libevent without thread support");
		return 1;
	}
	so.path = d.data;
	so.zstd_level = d.zstd_level;
	rc = store_open(&so, &st);
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
	for (size_t i = 0; i < d.nlisten; i++) {
		if (http_server_listen(d.srv, d.listen[i], !d.no_tls, url,
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
	if (d.user != NULL && drop_privileges(d.user) != 0)
		goto out;
	if (gc_start(&d.gc, st) != 0)
		goto out;
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
