/*
 * ES256 JSON Web Tokens for the bearer flow (token.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "auth/token.h"
#include "berth/oci.h"

#define TOKEN_HEADER_MAX_BYTES  512
#define TOKEN_SIG_BYTES         64      /* r and s, 32 bytes each */

struct token_key {
	EVP_PKEY *pkey;
};

/* ---- base64url without padding (RFC 4648 section 5) --------------------- */

static const char b64u[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Writes the encoding of n bytes and a NUL into out (4 * n / 3 + 4). */
static size_t
b64u_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];

		out[o++] = b64u[v >> 18];
		out[o++] = b64u[(v >> 12) & 63];
		out[o++] = b64u[(v >> 6) & 63];
		out[o++] = b64u[v & 63];
	}
	if (n - i == 1) {
		out[o++] = b64u[in[i] >> 2];
		out[o++] = b64u[(in[i] & 3) << 4];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];

		out[o++] = b64u[v >> 10];
		out[o++] = b64u[(v >> 4) & 63];
		out[o++] = b64u[(v & 15) << 2];
	}
	out[o] = '\0';
	return o;
}

static int
b64u_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Strict: no padding, no stray bits; -1 if malformed or over cap. */
static int
b64u_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *len)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = b64u_val(in[i]);

		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if ((acc & ((1u << bits) - 1)) != 0)
		return -1;      /* non-canonical trailing bits */
	*len = o;
	return 0;
}

/* ---- the key ------------------------------------------------------------ */

struct token_key *
token_key_load(const char *path, bool create, char *why, size_t whysize)
{
	struct token_key *k = calloc(1, sizeof(*k));
	FILE *f = NULL;
	int fd;

	if (k == NULL) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	f = fopen(path, "r");
	if (f == NULL && errno == ENOENT && create) {
		k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		f = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (k->pkey == NULL || f == NULL ||
		    PEM_write_PrivateKey(f, k->pkey, NULL, NULL, 0, NULL,
		    NULL) != 1 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
			snprintf(why, whysize, "%s: cannot write a new key: %s",
			    path, strerror(errno));
			if (f != NULL)
				fclose(f);
			else if (fd >= 0)
				close(fd);
			(void)unlink(path);
			token_key_free(k);
			return NULL;
		}
		fclose(f);
		return k;
	}
	if (f == NULL) {
		snprintf(why, whysize, "%s: %s", path, strerror(errno));
		token_key_free(k);
		return NULL;
	}
	k->pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k->pkey == NULL || EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_EC ||
	    EVP_PKEY_get_bits(k->pkey) != 256) {
		snprintf(why, whysize, "%s: not a P-256 private key in PEM", path);
		token_key_free(k);
		return NULL;
	}
	return k;
}

void
token_key_free(struct token_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

/* ---- scopes and claims -------------------------------------------------- */

int
token_scope_parse(const char *s, size_t len, struct token_access *out)
{
	const char *c1 = memchr(s, ':', len), *c2 = NULL;
	size_t nl;

	memset(out, 0, sizeof(*out));
	for (size_t i = len; i > 0; i--) {
		if (s[i - 1] == ':') {
			c2 = s + i - 1;
			break;
		}
	}
	if (c1 == NULL || c2 == NULL || c2 == c1)
		return -1;
	nl = (size_t)(c2 - c1 - 1);
	if ((size_t)(c1 - s) == 8 && memcmp(s, "registry", 8) == 0 &&
	    nl == 7 && memcmp(c1 + 1, "catalog", 7) == 0) {
		out->catalog = true;
		out->actions = AUTH_PULL;
		return 0;
	}
	if ((size_t)(c1 - s) != 10 || memcmp(s, "repository", 10) != 0 ||
	    nl > TOKEN_NAME_MAX_BYTES || !oci_name_valid(c1 + 1, nl))
		return -1;
	memcpy(out->name, c1 + 1, nl);
	for (const char *p = c2 + 1, *end = s + len; p < end;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		size_t n = comma != NULL ? (size_t)(comma - p) : (size_t)(end - p);

		if (n == 4 && memcmp(p, "pull", 4) == 0)
			out->actions |= AUTH_PULL;
		else if (n == 4 && memcmp(p, "push", 4) == 0)
			out->actions |= AUTH_PUSH;
		else if (n == 6 && memcmp(p, "delete", 6) == 0)
			out->actions |= AUTH_DELETE;
		else if (n == 1 && *p == '*')
			out->actions |= AUTH_ALL;
		p += n + (comma != NULL ? 1 : 0);
	}
	return 0;
}

static json_t *
access_json(const struct token_access *a, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr != NULL && i < n; i++) {
		json_t *acts = json_array();

		if (a[i].catalog) {
			json_array_append_new(acts, json_string("*"));
			json_array_append_new(arr, json_pack("{s:s,s:s,s:o}",
			    "type", "registry", "name", "catalog", "actions",
			    acts));
			continue;
		}
		if (a[i].actions & AUTH_PULL)
			json_array_append_new(acts, json_string("pull"));
		if (a[i].actions & AUTH_PUSH)
			json_array_append_new(acts, json_string("push"));
		if (a[i].actions & AUTH_DELETE)
			json_array_append_new(acts, json_string("delete"));
		json_array_append_new(arr, json_pack("{s:s,s:s,s:o}", "type",
		    "repository", "name", a[i].name, "actions", acts));
	}
	return arr;
}

/* ---- signing ------------------------------------------------------------ */

static int
sign(const struct token_key *k, const char *in, size_t n, uint8_t raw[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[80];
	const unsigned char *p = der;
	size_t dl = sizeof(der);
	ECDSA_SIG *sig = NULL;
	int rc = -1;

	if (md != NULL &&
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
	    EVP_DigestSign(md, der, &dl, (const unsigned char *)in, n) == 1 &&
	    (sig = d2i_ECDSA_SIG(NULL, &p, (long)dl)) != NULL &&
	    BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) == 32 &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) == 32)
		rc = 0;
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	return rc;
}

static bool
verify_sig(const struct token_key *k, const char *in, size_t n,
    const uint8_t raw[64])
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *der = NULL;
	int dl;
	bool ok = false;

	if (sig == NULL || r == NULL || s == NULL || md == NULL ||
	    ECDSA_SIG_set0(sig, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		goto out;
	}
	dl = i2d_ECDSA_SIG(sig, &der);
	ok = dl > 0 &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
	    EVP_DigestVerify(md, der, (size_t)dl, (const unsigned char *)in,
	    n) == 1;
out:
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	return ok;
}

char *
token_issue(const struct token_key *k, const char *service, const char *user,
    const struct token_access *access, size_t naccess, uint64_t now,
    uint64_t ttl)
{
	static const char header[] = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";
	uint8_t jti[16], sig[TOKEN_SIG_BYTES];
	char jtis[33], *payload = NULL, *out = NULL;
	size_t pl, hl, n;
	json_t *claims;

	if (RAND_bytes(jti, sizeof(jti)) != 1)
		return NULL;
	for (size_t i = 0; i < sizeof(jti); i++)
		snprintf(jtis + 2 * i, 3, "%02x", jti[i]);
	claims = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:o}", "iss",
	    TOKEN_ISSUER, "sub", user != NULL ? user : "", "aud", service,
	    "exp", (json_int_t)(now + ttl), "nbf", (json_int_t)now, "iat",
	    (json_int_t)now, "jti", jtis, "access",
	    access_json(access, naccess));
	if (claims != NULL)
		payload = json_dumps(claims, JSON_COMPACT);
	json_decref(claims);
	if (payload == NULL)
		return NULL;
	pl = strlen(payload);
	hl = sizeof(header) - 1;
	out = malloc((hl + pl + TOKEN_SIG_BYTES) * 4 / 3 + 16);
	if (out == NULL)
		goto done;
	n = b64u_encode((const uint8_t *)header, hl, out);
	out[n++] = '.';
	n += b64u_encode((const uint8_t *)payload, pl, out + n);
	if (sign(k, out, n, sig) != 0) {
		free(out);
		out = NULL;
		goto done;
	}
	out[n++] = '.';
	b64u_encode(sig, sizeof(sig), out + n);
done:
	free(payload);
	return out;
}

/* ---- verifying ---------------------------------------------------------- */

static bool
aud_ok(json_t *aud, const char *service)
{
	size_t i;
	json_t *v;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), service) == 0;
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), service) == 0)
			return true;
	return false;
}

static int
claims_read(json_t *c, const char *service, uint64_t now,
    struct token_claims *out)
{
	json_t *iss = json_object_get(c, "iss"), *sub = json_object_get(c, "sub");
	json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
	json_t *acc = json_object_get(c, "access"), *e;
	size_t i;

	if (!json_is_string(iss) || strcmp(json_string_value(iss),
	    TOKEN_ISSUER) != 0 || !aud_ok(json_object_get(c, "aud"), service) ||
	    !json_is_integer(exp) || json_integer_value(exp) < 0 ||
	    (uint64_t)json_integer_value(exp) + TOKEN_SKEW < now ||
	    (nbf != NULL && (!json_is_integer(nbf) ||
	    json_integer_value(nbf) > (json_int_t)(now + TOKEN_SKEW))) ||
	    !json_is_string(sub) ||
	    strlen(json_string_value(sub)) > AUTH_USER_MAX_BYTES ||
	    (acc != NULL && (!json_is_array(acc) ||
	    json_array_size(acc) > TOKEN_ACCESS_MAX)))
		return -1;
	snprintf(out->user, sizeof(out->user), "%s", json_string_value(sub));
	json_array_foreach(acc, i, e) {
		struct token_access *a = &out->access[out->naccess];
		json_t *type = json_object_get(e, "type");
		json_t *name = json_object_get(e, "name");
		json_t *acts = json_object_get(e, "actions"), *v;
		size_t j;

		if (!json_is_string(type) || !json_is_string(name) ||
		    !json_is_array(acts))
			return -1;
		memset(a, 0, sizeof(*a));
		if (strcmp(json_string_value(type), "registry") == 0 &&
		    strcmp(json_string_value(name), "catalog") == 0) {
			a->catalog = true;
		} else if (strcmp(json_string_value(type), "repository") == 0 &&
		    strlen(json_string_value(name)) <= TOKEN_NAME_MAX_BYTES &&
		    oci_name_valid(json_string_value(name),
		    strlen(json_string_value(name)))) {
			snprintf(a->name, sizeof(a->name), "%s",
			    json_string_value(name));
		} else {
			return -1;
		}
		json_array_foreach(acts, j, v) {
			const char *s = json_string_value(v);

			if (s == NULL)
				return -1;
			if (strcmp(s, "pull") == 0 || strcmp(s, "*") == 0)
				a->actions |= AUTH_PULL;
			if (strcmp(s, "push") == 0 || strcmp(s, "*") == 0)
				a->actions |= AUTH_PUSH;
			if (strcmp(s, "delete") == 0 || strcmp(s, "*") == 0)
				a->actions |= AUTH_DELETE;
		}
		out->naccess++;
	}
	return 0;
}

int
token_verify(const struct token_key *k, const char *service, const char *jwt,
    size_t len, uint64_t now, struct token_claims *out)
{
	const char *d1, *d2;
	uint8_t head[TOKEN_HEADER_MAX_BYTES], sig[TOKEN_SIG_BYTES + 1];
	uint8_t *body = NULL;
	size_t hl, sl, bl;
	json_t *h = NULL, *c = NULL;
	json_error_t err;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > TOKEN_MAX_BYTES ||
	    (d1 = memchr(jwt, '.', len)) == NULL ||
	    (d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jwt))) == NULL ||
	    memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - jwt)) != NULL)
		return -1;
	/* The header names the algorithm: only ES256, nothing else. */
	if (b64u_decode(jwt, (size_t)(d1 - jwt), head, sizeof(head), &hl) != 0 ||
	    (h = json_loadb((const char *)head, hl, JSON_REJECT_DUPLICATES,
	    &err)) == NULL || !json_is_object(h) ||
	    !json_is_string(json_object_get(h, "alg")) ||
	    strcmp(json_string_value(json_object_get(h, "alg")), "ES256") != 0 ||
	    json_object_get(h, "crit") != NULL)
		goto out;
	if (b64u_decode(d2 + 1, len - (size_t)(d2 + 1 - jwt), sig, sizeof(sig),
	    &sl) != 0 || sl != TOKEN_SIG_BYTES ||
	    !verify_sig(k, jwt, (size_t)(d2 - jwt), sig))
		goto out;
	/* Signed by this key: the claims are berthd's own. */
	body = malloc(len);
	if (body == NULL || b64u_decode(d1 + 1, (size_t)(d2 - d1 - 1), body, len,
	    &bl) != 0)
		goto out;
	c = json_loadb((const char *)body, bl, JSON_REJECT_DUPLICATES, &err);
	if (c == NULL || !json_is_object(c))
		goto out;
	rc = claims_read(c, service, now, out);
out:
	json_decref(h);
	json_decref(c);
	free(body);
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

unsigned
token_actions(const struct token_claims *c, const char *name, size_t len)
{
	unsigned a = 0;

	for (size_t i = 0; i < c->naccess; i++)
		if (!c->access[i].catalog && strlen(c->access[i].name) == len &&
		    memcmp(c->access[i].name, name, len) == 0)
			a |= c->access[i].actions;
	return a;
}

bool
token_catalog(const struct token_claims *c)
{
	for (size_t i = 0; i < c->naccess; i++)
		if (c->access[i].catalog)
			return true;
	return false;
}
