/*
 * Bearer tokens as Docker's token authentication describes them: a client
 * refused with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`
 * asks the realm (berthd's own /token) for a token with its credentials,
 * then sends `Authorization: Bearer <token>`. Tokens are JWTs (RFC 7519)
 * signed with ES256 (ECDSA P-256, SHA-256; RFC 7518 3.4) by a key kept in
 * the data folder. They carry the user and the access granted:
 *   {"iss":"berth","sub":USER,"aud":SERVICE,"exp":..,"nbf":..,"iat":..,
 *    "jti":..,"access":[{"type":"repository","name":N,"actions":[..]}]}
 * The token text is untrusted input: it is parsed with explicit lengths
 * and limits, and only the one algorithm is accepted.
 */
#ifndef BERTH_TOKEN_H
#define BERTH_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"

#define TOKEN_ISSUER            "berth"
#define TOKEN_SERVICE_DEFAULT   "berth"
#define TOKEN_TTL_DEFAULT       300     /* seconds */
#define TOKEN_SKEW              60      /* clock leeway, seconds */
#define TOKEN_MAX_BYTES         8192
#define TOKEN_ACCESS_MAX        16
#define TOKEN_NAME_MAX_BYTES    255

/* One access entry: a repository (or "registry" "catalog") and actions. */
struct token_access {
	bool catalog;           /* type registry, name catalog */
	char name[TOKEN_NAME_MAX_BYTES + 1];
	unsigned actions;       /* AUTH_PULL | AUTH_PUSH | AUTH_DELETE */
};

struct token_claims {
	char user[AUTH_USER_MAX_BYTES + 1];     /* "" for an anonymous token */
	struct token_access access[TOKEN_ACCESS_MAX];
	size_t naccess;
};

struct token_key;

/*
 * The signing key in the PEM file path: loaded, or with create made
 * (P-256, mode 0600) if the file does not exist. NULL with a reason.
 */
struct token_key *token_key_load(const char *path, bool create, char *why,
    size_t whysize);
void token_key_free(struct token_key *k);

/*
 * Parses one scope parameter ("repository:NAME:pull,push" or
 * "registry:catalog:*") of len bytes. 0, or -1 if it is malformed or names
 * an invalid repository. Unknown actions are ignored.
 */
int token_scope_parse(const char *s, size_t len, struct token_access *out);

/* A signed token (malloc'd) for user (NULL: anonymous), or NULL. */
char *token_issue(const struct token_key *k, const char *service,
    const char *user, const struct token_access *access, size_t naccess,
    uint64_t now, uint64_t ttl);

/*
 * Verifies a token of len bytes for service at time now: its signature,
 * algorithm, issuer, audience and times. 0 with the claims, or -1.
 */
int token_verify(const struct token_key *k, const char *service,
    const char *jwt, size_t len, uint64_t now, struct token_claims *out);

/* Whether the claims grant the catalog (registry:catalog:*). */
bool token_catalog(const struct token_claims *c);

/* The actions the claims grant on repository name. */
unsigned token_actions(const struct token_claims *c, const char *name,
    size_t len);

#endif /* BERTH_TOKEN_H */
