/*
 * htpasswd and access files, Basic credentials, rights (auth.h).
 *
 * The files are operator input but still parsed with explicit lengths and
 * limits: a line over AUTH_LINE_MAX_BYTES, a file over AUTH_FILE_MAX_BYTES,
 * a byte outside the grammar is an error naming the file and line.
 */
#define _DEFAULT_SOURCE         /* crypt_r */
#include "config.h"

#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/auth.h"

#define AUTH_GROUPS_MAX         1024
#define AUTH_GROUP_MEMBERS_MAX  4096
#define AUTH_RULES_MAX          16384
#define AUTH_USERS_MAX          100000
#define AUTH_BCRYPT_BYTES       60
#define AUTH_PATTERN_MAX_BYTES  255


struct user {
	char name[AUTH_USER_MAX_BYTES + 1];
	char hash[AUTH_BCRYPT_BYTES + 1];
};

enum who { WHO_USER, WHO_GROUP, WHO_SIGNED_IN, WHO_ANYONE };

struct rule {
	enum who who;
	char name[AUTH_USER_MAX_BYTES + 1];     /* user or group */
	char pattern[AUTH_PATTERN_MAX_BYTES + 1];
	unsigned rights;
};

struct group {
	char name[AUTH_USER_MAX_BYTES + 1];
	char (*members)[AUTH_USER_MAX_BYTES + 1];
	size_t nmembers;
};

struct cache_entry {
	uint8_t key[32];
	uint64_t expires;
	char user[AUTH_USER_MAX_BYTES + 1];
	char hash[AUTH_BCRYPT_BYTES + 1];       /* the user's when verified */
	bool good;              /* the password matched; else it did not */
};

/* Password checks a peer may make per second, and its burst. */
#define AUTH_PEER_PER_SECOND    5
#define AUTH_PEERS              256

struct peer_bucket {
	uint8_t key[16];        /* hash of the peer's address */
	double tokens;
	uint64_t refilled;
};

struct auth {
	struct user *users;     /* sorted by name */
	size_t nusers;
	struct group *groups;
	size_t ngroups;
	struct rule *rules;
	size_t nrules;
	bool no_access_file;
	uint8_t secret[32];     /* keys the cache; never leaves the process */
	struct cache_entry cache[AUTH_CACHE_ENTRIES];
	double tokens;
	uint64_t refilled;
	struct peer_bucket peers[AUTH_PEERS];
	/* Checked when the user is unknown: a hash of the highest cost
	 * loaded, so that the answer takes as long as for a known user. */
	char dummy[AUTH_BCRYPT_BYTES + 1];
	struct crypt_data *cd;
};

static void
say(char *why, size_t whysize, const char *file, size_t line,
    const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(why, whysize, "%s:%zu: ", file, line);
	if (n < 0 || (size_t)n >= whysize)
		return;
	va_start(ap, fmt);
	vsnprintf(why + n, whysize - (size_t)n, fmt, ap);
	va_end(ap);
}

static int
read_file(const char *path, char **out, size_t *len, char *why,
    size_t whysize)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		snprintf(why, whysize, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf = malloc(AUTH_FILE_MAX_BYTES + 1);
	if (buf == NULL) {
		fclose(f);
		snprintf(why, whysize, "%s: out of memory", path);
		return -1;
	}
	n = fread(buf, 1, AUTH_FILE_MAX_BYTES + 1, f);
	if (ferror(f) || n > AUTH_FILE_MAX_BYTES) {
		snprintf(why, whysize, "%s: %s", path, ferror(f) ?
		    "read error" : "larger than 4 MiB");
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static bool
user_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
	    c == '@';
}

static bool
name_ok(const char *s, size_t n)
{
	if (n == 0 || n > AUTH_USER_MAX_BYTES)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!user_char(s[i]))
			return false;
	return true;
}

/* A bcrypt hash as htpasswd -B writes it: $2y$NN$ + 53 of [./A-Za-z0-9]. */
static bool
bcrypt_ok(const char *s, size_t n)
{
	if (n != AUTH_BCRYPT_BYTES || s[0] != '$' || s[1] != '2' ||
	    (s[2] != 'y' && s[2] != 'b' && s[2] != 'a') || s[3] != '$' ||
	    s[4] < '0' || s[4] > '3' || s[5] < '0' || s[5] > '9' || s[6] != '$')
		return false;
	for (size_t i = 7; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '/'))
			return false;
	}
	return true;
}

/*
 * Calls fn for each line of text (without its end, CR stripped), skipping
 * empty lines and # comments. Lines over the limit are errors.
 */
static int
each_line(const char *file, const char *text, size_t len, char *why,
    size_t whysize, int (*fn)(void *, const char *, size_t, size_t, char *,
    size_t), void *arg)
{
	size_t lineno = 0;

	for (size_t i = 0; i < len;) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - text) : len, n = end - i;
		const char *p = text + i;

		lineno++;
		i = nl != NULL ? end + 1 : len;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > AUTH_LINE_MAX_BYTES) {
			say(why, whysize, file, lineno, "line longer than %d bytes",
			    AUTH_LINE_MAX_BYTES);
			return -1;
		}
		if (memchr(p, '\0', n) != NULL) {
			say(why, whysize, file, lineno, "NUL byte");
			return -1;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		if (n == 0 || *p == '#')
			continue;
		if (fn(arg, p, n, lineno, why, whysize) != 0) {
			/* fn wrote "what"; prefix file:line. */
			char tmp[512];

			snprintf(tmp, sizeof(tmp), "%s", why);
			say(why, whysize, file, lineno, "%s", tmp);
			return -1;
		}
	}
	return 0;
}

static int
user_cmp(const void *a, const void *b)
{
	return strcmp(((const struct user *)a)->name,
	    ((const struct user *)b)->name);
}

static const struct user *
user_find(const struct auth *a, const char *name)
{
	struct user key;

	if (a->nusers == 0 || strlen(name) > AUTH_USER_MAX_BYTES)
		return NULL;    /* bsearch wants an array, even of none */
	snprintf(key.name, sizeof(key.name), "%s", name);
	return bsearch(&key, a->users, a->nusers, sizeof(*a->users), user_cmp);
}

static int
htpasswd_line(void *arg, const char *p, size_t n, size_t lineno, char *why,
    size_t whysize)
{
	struct auth *a = arg;
	const char *colon = memchr(p, ':', n);
	size_t ul, hl;
	struct user *u;

	(void)lineno;
	if (colon == NULL) {
		snprintf(why, whysize, "want USER:HASH");
		return -1;
	}
	ul = (size_t)(colon - p);
	hl = n - ul - 1;
	if (!name_ok(p, ul)) {
		snprintf(why, whysize, "user name: 1-%d of A-Z a-z 0-9 . _ - @",
		    AUTH_USER_MAX_BYTES);
		return -1;
	}
	if (!bcrypt_ok(colon + 1, hl)) {
		snprintf(why, whysize, "user %.*s: only bcrypt hashes ($2y$, as "
		    "htpasswd -B writes) are accepted", (int)ul, p);
		return -1;
	}
	if (a->nusers >= AUTH_USERS_MAX) {
		snprintf(why, whysize, "more than %d users", AUTH_USERS_MAX);
		return -1;
	}
	if ((a->nusers & (a->nusers - 1)) == 0 || a->nusers == 0) {
		size_t cap = a->nusers ? a->nusers * 2 : 16;
		struct user *nu = realloc(a->users, cap * sizeof(*nu));

		if (nu == NULL) {
			snprintf(why, whysize, "out of memory");
			return -1;
		}
		a->users = nu;
	}
	u = &a->users[a->nusers++];
	memcpy(u->name, p, ul);
	u->name[ul] = '\0';
	memcpy(u->hash, colon + 1, hl);
	u->hash[hl] = '\0';
	return 0;
}

/* Splits a line into at most max whitespace-separated words. */
static size_t
words(const char *p, size_t n, const char **w, size_t *wl, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k < max;) {
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i == n)
			break;
		w[k] = p + i;
		while (i < n && p[i] != ' ' && p[i] != '\t')
			i++;
		wl[k] = (size_t)(p + i - w[k]);
		k++;
	}
	return k;
}

static bool
pattern_ok(const char *s, size_t n)
{
	if (n == 0 || n > AUTH_PATTERN_MAX_BYTES)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-' || c == '/' || c == '*'))
			return false;
	}
	return true;
}

static struct group *
group_find(const struct auth *a, const char *name, size_t n)
{
	for (size_t i = 0; i < a->ngroups; i++)
		if (strlen(a->groups[i].name) == n &&
		    memcmp(a->groups[i].name, name, n) == 0)
			return &a->groups[i];
	return NULL;
}

static bool
user_known(const struct auth *a, const char *name, size_t n)
{
	char buf[AUTH_USER_MAX_BYTES + 1];

	if (n > AUTH_USER_MAX_BYTES)
		return false;
	memcpy(buf, name, n);
	buf[n] = '\0';
	return user_find(a, buf) != NULL;
}

static int
access_line(void *arg, const char *p, size_t n, size_t lineno, char *why,
    size_t whysize)
{
	struct auth *a = arg;
	const char *w[AUTH_GROUP_MEMBERS_MAX + 3];
	size_t wl[AUTH_GROUP_MEMBERS_MAX + 3], k;

	(void)lineno;
	k = words(p, n, w, wl, sizeof(w) / sizeof(w[0]));
	if (wl[0] == 5 && memcmp(w[0], "group", 5) == 0) {
		struct group *g;

		if (k < 2 || !name_ok(w[1], wl[1]) || w[1][0] == '@') {
			snprintf(why, whysize, "want: group NAME USER...");
			return -1;
		}
		if (group_find(a, w[1], wl[1]) != NULL) {
			snprintf(why, whysize, "group %.*s defined twice",
			    (int)wl[1], w[1]);
			return -1;
		}
		if (a->ngroups >= AUTH_GROUPS_MAX ||
		    k - 2 > AUTH_GROUP_MEMBERS_MAX) {
			snprintf(why, whysize, "too many groups or members");
			return -1;
		}
		if ((a->ngroups & (a->ngroups - 1)) == 0 || a->ngroups == 0) {
			size_t cap = a->ngroups ? a->ngroups * 2 : 8;
			struct group *ng = realloc(a->groups, cap * sizeof(*ng));

			if (ng == NULL) {
				snprintf(why, whysize, "out of memory");
				return -1;
			}
			a->groups = ng;
		}
		g = &a->groups[a->ngroups];
		memset(g, 0, sizeof(*g));
		memcpy(g->name, w[1], wl[1]);
		g->members = calloc(k > 2 ? k - 2 : 1, sizeof(*g->members));
		if (g->members == NULL) {
			snprintf(why, whysize, "out of memory");
			return -1;
		}
		a->ngroups++;
		for (size_t i = 2; i < k; i++) {
			if (!user_known(a, w[i], wl[i])) {
				snprintf(why, whysize, "group %s: unknown user %.*s",
				    g->name, (int)wl[i], w[i]);
				return -1;
			}
			memcpy(g->members[g->nmembers++], w[i], wl[i]);
		}
		return 0;
	}
	if (wl[0] == 5 && memcmp(w[0], "allow", 5) == 0 && k == 4) {
		struct rule r;
		const char *rp = w[3];
		size_t rn = wl[3];

		memset(&r, 0, sizeof(r));
		if (wl[1] == 1 && w[1][0] == '*') {
			r.who = WHO_SIGNED_IN;
		} else if (wl[1] == 9 && memcmp(w[1], "anonymous", 9) == 0) {
			r.who = WHO_ANYONE;
		} else if (w[1][0] == '@') {
			if (group_find(a, w[1] + 1, wl[1] - 1) == NULL) {
				snprintf(why, whysize, "unknown group %.*s (define "
				    "it above)", (int)wl[1], w[1]);
				return -1;
			}
			r.who = WHO_GROUP;
			memcpy(r.name, w[1] + 1, wl[1] - 1);
		} else {
			if (!user_known(a, w[1], wl[1])) {
				snprintf(why, whysize, "unknown user %.*s",
				    (int)wl[1], w[1]);
				return -1;
			}
			r.who = WHO_USER;
			memcpy(r.name, w[1], wl[1]);
		}
		if (!pattern_ok(w[2], wl[2])) {
			snprintf(why, whysize, "pattern %.*s: repository name "
			    "characters and * only", (int)wl[2], w[2]);
			return -1;
		}
		memcpy(r.pattern, w[2], wl[2]);
		while (rn > 0) {
			const char *c = memchr(rp, ',', rn);
			size_t tl = c != NULL ? (size_t)(c - rp) : rn;

			if (tl == 4 && memcmp(rp, "pull", 4) == 0)
				r.rights |= AUTH_PULL;
			else if (tl == 4 && memcmp(rp, "push", 4) == 0)
				r.rights |= AUTH_PUSH;
			else if (tl == 6 && memcmp(rp, "delete", 6) == 0)
				r.rights |= AUTH_DELETE;
			else if (tl == 3 && memcmp(rp, "all", 3) == 0)
				r.rights |= AUTH_ALL;
			else {
				snprintf(why, whysize, "right %.*s: want pull, "
				    "push, delete or all, comma-separated",
				    (int)tl, rp);
				return -1;
			}
			rn -= c != NULL ? tl + 1 : tl;
			rp += c != NULL ? tl + 1 : tl;
			if (c != NULL && rn == 0) {
				snprintf(why, whysize, "trailing comma");
				return -1;
			}
		}
		if (a->nrules >= AUTH_RULES_MAX) {
			snprintf(why, whysize, "more than %d rules",
			    AUTH_RULES_MAX);
			return -1;
		}
		if ((a->nrules & (a->nrules - 1)) == 0 || a->nrules == 0) {
			size_t cap = a->nrules ? a->nrules * 2 : 16;
			struct rule *nr = realloc(a->rules, cap * sizeof(*nr));

			if (nr == NULL) {
				snprintf(why, whysize, "out of memory");
				return -1;
			}
			a->rules = nr;
		}
		a->rules[a->nrules++] = r;
		return 0;
	}
	snprintf(why, whysize, "want: group NAME USER... | allow WHO PATTERN "
	    "RIGHTS");
	return -1;
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	free(a->users);
	for (size_t i = 0; i < a->ngroups; i++)
		free(a->groups[i].members);
	free(a->groups);
	free(a->rules);
	if (a->cd != NULL)
		OPENSSL_cleanse(a->cd, sizeof(*a->cd));
	free(a->cd);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

static struct auth *
auth_parse(const char *hname, const char *htext, size_t hlen,
    const char *aname, const char *atext, size_t alen, char *why,
    size_t whysize)
{
	struct auth *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	if (each_line(hname, htext, hlen, why, whysize, htpasswd_line, a) != 0)
		goto fail;
	if (a->nusers > 1)
		qsort(a->users, a->nusers, sizeof(*a->users), user_cmp);
	for (size_t i = 1; i < a->nusers; i++) {
		if (strcmp(a->users[i].name, a->users[i - 1].name) == 0) {
			snprintf(why, whysize, "%s: user %s appears twice", hname,
			    a->users[i].name);
			goto fail;
		}
	}
	a->no_access_file = atext == NULL;
	if (atext != NULL &&
	    each_line(aname, atext, alen, why, whysize, access_line, a) != 0)
		goto fail;
	return a;
fail:
	auth_free(a);
	return NULL;
}

int
auth_parse_check(const char *htpasswd, size_t hlen, const char *access,
    size_t alen, char *why, size_t whysize)
{
	struct auth *a = auth_parse("htpasswd", htpasswd, hlen, "access", access,
	    alen, why, whysize);

	auth_free(a);
	return a != NULL ? 0 : -1;
}

/* The dummy hash: random password, the highest cost of the users. */
static int
make_dummy(struct auth *a)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	uint8_t rnd[16], pw[17];
	unsigned long cost = 5;
	const char *h;

	for (size_t i = 0; i < a->nusers; i++) {
		unsigned long c = (unsigned long)(a->users[i].hash[4] - '0') * 10 +
		    (unsigned long)(a->users[i].hash[5] - '0');

		if (c > cost)
			cost = c;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1 || RAND_bytes(pw, 16) != 1)
		return -1;
	for (size_t i = 0; i < 16; i++)
		pw[i] = (uint8_t)('a' + pw[i] % 26);
	pw[16] = '\0';
	if (crypt_gensalt_rn("$2y$", cost, (const char *)rnd, sizeof(rnd), salt,
	    sizeof(salt)) == NULL)
		return -1;
	h = crypt_r((const char *)pw, salt, a->cd);
	if (h == NULL || strlen(h) != AUTH_BCRYPT_BYTES)
		return -1;
	memcpy(a->dummy, h, AUTH_BCRYPT_BYTES + 1);
	return 0;
}

bool
auth_user_exists(const struct auth *a, const char *name)
{
	return user_find(a, name) != NULL;
}

void
auth_inherit(struct auth *a, const struct auth *old)
{
	/* Remembered passwords stay valid while their user's hash is the
	 * same: a reload does not send everyone back through bcrypt. */
	memcpy(a->secret, old->secret, sizeof(a->secret));
	memcpy(a->cache, old->cache, sizeof(a->cache));
	memcpy(a->peers, old->peers, sizeof(a->peers));
	a->tokens = old->tokens;
	a->refilled = old->refilled;
}

struct auth *
auth_load(const char *htpasswd, const char *access, char *why, size_t whysize)
{
	char *ht = NULL, *ac = NULL;
	size_t hl = 0, al = 0;
	struct auth *a = NULL;

	if (read_file(htpasswd, &ht, &hl, why, whysize) != 0)
		return NULL;
	if (access != NULL && read_file(access, &ac, &al, why, whysize) != 0)
		goto out;
	a = auth_parse(htpasswd, ht, hl, access, ac, al, why, whysize);
	if (a == NULL)
		goto out;
	a->cd = calloc(1, sizeof(*a->cd));
	if (a->cd == NULL || RAND_bytes(a->secret, sizeof(a->secret)) != 1 ||
	    make_dummy(a) != 0) {
		snprintf(why, whysize, "out of memory or randomness");
		auth_free(a);
		a = NULL;
		goto out;
	}
	a->tokens = 2 * AUTH_VERIFY_PER_SECOND;
out:
	if (ht != NULL)
		OPENSSL_cleanse(ht, hl);
	free(ht);
	free(ac);
	return a;
}

void
auth_counts(const struct auth *a, size_t *users, size_t *rules)
{
	*users = a->nusers;
	*rules = a->nrules;
}

/* Strict base64 (RFC 4648 section 4, padded); -1 if malformed. */
static int
b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
	uint32_t acc = 0;
	size_t o = 0, pad = 0;

	if (n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		int v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else if (c == '=' && i >= n - 2) {
			pad++;
			v = 0;
		} else
			return -1;
		if (pad > 0 && c != '=')
			return -1;
		acc = acc << 6 | (uint32_t)v;
		if (i % 4 == 3) {
			uint8_t b[3] = { (uint8_t)(acc >> 16), (uint8_t)(acc >> 8),
			    (uint8_t)acc };
			size_t take = 3 - (i == n - 1 ? pad : 0);

			if (o + take > cap)
				return -1;
			memcpy(out + o, b, take);
			o += take;
			acc = 0;
		}
	}
	*outlen = o;
	return 0;
}

static void
refill(struct auth *a, uint64_t now)
{
	if (now > a->refilled) {
		a->tokens += (double)(now - a->refilled) * AUTH_VERIFY_PER_SECOND;
		if (a->tokens > 2 * AUTH_VERIFY_PER_SECOND)
			a->tokens = 2 * AUTH_VERIFY_PER_SECOND;
		a->refilled = now;
	}
}

/* The peer's own budget of checks; false when it is spent. */
static bool
peer_take(struct auth *a, const char *peer, uint64_t now)
{
	uint8_t h[32];
	unsigned hl = sizeof(h);
	struct peer_bucket *b;
	size_t n = strlen(peer);
	const char *colon = strrchr(peer, ':');

	/* The address, not the port: "1.2.3.4:5678", "[::1]:5678". */
	if (colon != NULL)
		n = (size_t)(colon - peer);
	if (HMAC(EVP_sha256(), a->secret, sizeof(a->secret),
	    (const unsigned char *)peer, n, h, &hl) == NULL)
		return true;
	b = &a->peers[(h[0] | (unsigned)h[1] << 8) % AUTH_PEERS];
	if (memcmp(b->key, h, sizeof(b->key)) != 0) {
		memcpy(b->key, h, sizeof(b->key));
		b->tokens = 2 * AUTH_PEER_PER_SECOND;
		b->refilled = now;
	}
	if (now > b->refilled) {
		b->tokens += (double)(now - b->refilled) * AUTH_PEER_PER_SECOND;
		if (b->tokens > 2 * AUTH_PEER_PER_SECOND)
			b->tokens = 2 * AUTH_PEER_PER_SECOND;
		b->refilled = now;
	}
	if (b->tokens < 1)
		return false;
	b->tokens -= 1;
	return true;
}

/*
 * The remembered answers: each key may sit in either slot of a pair. A
 * wrong password only takes a slot that holds nothing live, so a client
 * spraying guesses cannot push signed-in users out of the cache and back
 * onto the check budget it is exhausting; a right one takes a free slot,
 * else one holding a wrong password, else the one that expires first.
 */
_Static_assert(AUTH_CACHE_ENTRIES % 2 == 0, "cache slots come in pairs");

static size_t
cache_pair(const uint8_t key[32])
{
	return ((key[0] | (size_t)key[1] << 8) % AUTH_CACHE_ENTRIES) &
	    ~(size_t)1;
}

static struct cache_entry *
cache_find(struct auth *a, const uint8_t key[32], uint64_t now)
{
	size_t i = cache_pair(key);

	for (size_t j = i; j < i + 2; j++)
		if (a->cache[j].expires > now &&
		    CRYPTO_memcmp(a->cache[j].key, key, 32) == 0)
			return &a->cache[j];
	return NULL;
}

/* Where a checked answer goes; same is where cache_find found its key. */
static struct cache_entry *
cache_slot(struct auth *a, const uint8_t key[32], uint64_t now, bool good,
    struct cache_entry *same)
{
	size_t i = cache_pair(key);
	struct cache_entry *e = &a->cache[i], *f = &a->cache[i + 1];

	if (same != NULL)
		return same;
	if (e->expires <= now)
		return e;
	if (f->expires <= now)
		return f;
	if (!good)
		return NULL;
	if (!e->good || !f->good)
		return !e->good ? e : f;
	return e->expires <= f->expires ? e : f;
}

int
auth_basic(struct auth *a, const char *value, size_t len, uint64_t now,
    const char *peer, char *user)
{
	uint8_t raw[AUTH_USER_MAX_BYTES + 1 + AUTH_PASSWORD_MAX_BYTES + 4];
	uint8_t key[32];
	unsigned keylen = sizeof(key);
	const uint8_t *colon;
	const struct user *u;
	char name[AUTH_USER_MAX_BYTES + 1], pw[AUTH_PASSWORD_MAX_BYTES + 1];
	struct cache_entry *ce;
	const char *got;
	size_t rl, ul, pl;
	int rc = AUTH_BAD;

	if (value == NULL || len == 0)
		return AUTH_NONE;
	if (len < 6 || strncasecmp(value, "Basic ", 6) != 0)
		return AUTH_BAD;
	value += 6;
	len -= 6;
	while (len > 0 && *value == ' ') {
		value++;
		len--;
	}
	if (b64_decode(value, len, raw, sizeof(raw) - 1, &rl) != 0)
		return AUTH_BAD;
	colon = memchr(raw, ':', rl);
	if (colon == NULL)
		goto out;
	ul = (size_t)(colon - raw);
	pl = rl - ul - 1;
	if (!name_ok((const char *)raw, ul) || pl > AUTH_PASSWORD_MAX_BYTES ||
	    memchr(colon + 1, '\0', pl) != NULL)
		goto out;
	memcpy(name, raw, ul);
	name[ul] = '\0';
	memcpy(pw, colon + 1, pl);
	pw[pl] = '\0';
	/* The cache key is a keyed hash of user and password (never kept). */
	u = user_find(a, name);
	if (HMAC(EVP_sha256(), a->secret, sizeof(a->secret), raw, rl, key,
	    &keylen) == NULL)
		goto out;
	ce = cache_find(a, key, now);
	if (u != NULL && ce != NULL &&
	    strcmp(ce->user, name) == 0 && strcmp(ce->hash, u->hash) == 0) {
		/* The same answer as last time, without spending a check. */
		if (ce->good) {
			memcpy(user, name, ul + 1);
			rc = AUTH_OK;
		}
		goto out;
	}
	/* Each peer has its own budget, and all share the global one. */
	refill(a, now);
	if (a->tokens < 1 || (peer != NULL && !peer_take(a, peer, now))) {
		rc = AUTH_BUSY;
		goto out;
	}
	a->tokens -= 1;
	got = crypt_r(pw, u != NULL ? u->hash : a->dummy, a->cd);
	if (u != NULL && got != NULL) {
		bool good = strlen(got) == AUTH_BCRYPT_BYTES &&
		    CRYPTO_memcmp(got, u->hash, AUTH_BCRYPT_BYTES) == 0;

		/* Remembered either way (a wrong one only in a free slot): a
		 * client retrying a wrong password costs one check a minute,
		 * a right one one per ten. */
		ce = cache_slot(a, key, now, good, ce);
		if (ce != NULL) {
			memcpy(ce->key, key, sizeof(key));
			ce->expires = now + (good ? AUTH_CACHE_SECONDS :
			    AUTH_BAD_CACHE_SECONDS);
			memcpy(ce->user, name, ul + 1);
			memcpy(ce->hash, u->hash, sizeof(ce->hash));
			ce->good = good;
		}
		if (good) {
			memcpy(user, name, ul + 1);
			rc = AUTH_OK;
		}
	}
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(pw, sizeof(pw));
	return rc;
}

bool
auth_pattern_match(const char *pat, size_t plen, const char *s, size_t slen)
{
	/* ok[j]: pattern prefix so far matches s[0..j). */
	bool ok[AUTH_PATTERN_MAX_BYTES + 2], next[AUTH_PATTERN_MAX_BYTES + 2];

	if (slen > AUTH_PATTERN_MAX_BYTES || plen > AUTH_PATTERN_MAX_BYTES)
		return false;
	memset(ok, 0, sizeof(ok));
	ok[0] = true;
	for (size_t i = 0; i < plen; i++) {
		memset(next, 0, sizeof(next));
		if (pat[i] == '*' && i + 1 < plen && pat[i + 1] == '*') {
			/* ** : any run, slashes included */
			bool any = false;

			for (size_t j = 0; j <= slen; j++) {
				any = any || ok[j];
				next[j] = any;
			}
			i++;
		} else if (pat[i] == '*') {
			/* * : any run within one path component */
			for (size_t j = 0; j <= slen; j++) {
				if (!ok[j])
					continue;
				next[j] = true;
				for (size_t k = j; k < slen && s[k] != '/'; k++)
					next[k + 1] = true;
			}
		} else {
			for (size_t j = 0; j < slen; j++)
				if (ok[j] && s[j] == pat[i])
					next[j + 1] = true;
		}
		memcpy(ok, next, sizeof(ok));
	}
	return ok[slen];
}

static bool
in_group(const struct auth *a, const char *group, const char *user)
{
	const struct group *g = group_find(a, group, strlen(group));

	for (size_t i = 0; g != NULL && i < g->nmembers; i++)
		if (strcmp(g->members[i], user) == 0)
			return true;
	return false;
}

unsigned
auth_rights(const struct auth *a, const char *user, const char *repo,
    size_t repolen)
{
	unsigned rights = 0;

	if (a->no_access_file)
		return user != NULL ? AUTH_ALL : 0;
	for (size_t i = 0; i < a->nrules && rights != AUTH_ALL; i++) {
		const struct rule *r = &a->rules[i];
		bool who;

		switch (r->who) {
		case WHO_ANYONE:
			who = true;
			break;
		case WHO_SIGNED_IN:
			who = user != NULL;
			break;
		case WHO_USER:
			who = user != NULL && strcmp(r->name, user) == 0;
			break;
		case WHO_GROUP:
			who = user != NULL && in_group(a, r->name, user);
			break;
		default:
			who = false;
			break;
		}
		if (who && (r->rights & ~rights) != 0 &&
		    auth_pattern_match(r->pattern, strlen(r->pattern), repo,
		    repolen))
			rights |= r->rights;
	}
	return rights;
}

bool
auth_anonymous_any(const struct auth *a)
{
	for (size_t i = 0; i < a->nrules; i++)
		if (a->rules[i].who == WHO_ANYONE && a->rules[i].rights != 0)
			return true;
	return false;
}
