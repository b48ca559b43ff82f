/*
 * Authentication and authorization for berthd (docs/AUTH.md).
 *
 * Users and their bcrypt password hashes come from an htpasswd file (as
 * Apache's `htpasswd -B` writes it); rights come from an access file that
 * grants pull, push and delete on repository name patterns to users,
 * groups, every signed-in user, or anyone (anonymous). Both files are
 * loaded into one immutable struct auth; a reload builds a new one and
 * swaps it in, so a bad edit never leaves the server half-configured.
 *
 * bcrypt is slow on purpose (tens of milliseconds); berthd checks
 * credentials on its event loop, so a verified user/password pair is
 * remembered (by a keyed hash, never in clear) for AUTH_CACHE_SECONDS, and
 * at most AUTH_VERIFY_PER_SECOND bcrypt checks run per second: beyond
 * that a request is answered 429 without checking.
 */
#ifndef BERTH_AUTH_H
#define BERTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_PULL       0x1u
#define AUTH_PUSH       0x2u
#define AUTH_DELETE     0x4u
#define AUTH_ALL        (AUTH_PULL | AUTH_PUSH | AUTH_DELETE)

#define AUTH_USER_MAX_BYTES     64
#define AUTH_PASSWORD_MAX_BYTES 256     /* bcrypt reads the first 72 */
#define AUTH_FILE_MAX_BYTES     ((size_t)4 << 20)
#define AUTH_LINE_MAX_BYTES     4096
#define AUTH_CACHE_SECONDS      600
#define AUTH_BAD_CACHE_SECONDS  60      /* a wrong password, remembered */
#define AUTH_CACHE_ENTRIES      1024
#define AUTH_VERIFY_PER_SECOND  10

/* auth_basic results */
#define AUTH_OK         0
#define AUTH_NONE       1       /* no credentials given */
#define AUTH_BAD        2       /* malformed, unknown user or wrong password */
#define AUTH_BUSY       3       /* too many password checks: try later */

struct auth;

/*
 * Loads the htpasswd file (required) and the access file (NULL: every
 * signed-in user may do everything, anonymous nothing). NULL on error
 * with one line in why: "FILE:LINE: what is wrong".
 */
struct auth *auth_load(const char *htpasswd, const char *access, char *why,
    size_t whysize);
void auth_free(struct auth *a);

/*
 * Checks an Authorization header value (NULL or empty: AUTH_NONE). On
 * AUTH_OK the user name is copied into user (AUTH_USER_MAX_BYTES + 1).
 * now is the caller's clock in seconds (for the cache and the rates);
 * peer ("ADDR:PORT", may be NULL) has its own budget of checks, so one
 * client's wrong passwords cannot spend everyone's.
 */
int auth_basic(struct auth *a, const char *value, size_t len, uint64_t now,
    const char *peer, char *user);

/* Whether user name is in the loaded htpasswd file. */
bool auth_user_exists(const struct auth *a, const char *name);

/*
 * Carries remembered passwords (still valid while a user's hash is
 * unchanged) and the check budgets over from old to a freshly loaded a.
 */
void auth_inherit(struct auth *a, const struct auth *old);

/* Rights (AUTH_* bits) of user (NULL: anonymous) on repository repo. */
unsigned auth_rights(const struct auth *a, const char *user, const char *repo,
    size_t repolen);

/* Whether any rule grants anything to anonymous clients. */
bool auth_anonymous_any(const struct auth *a);

/* Users and rules loaded, for the log line of a (re)load. */
void auth_counts(const struct auth *a, size_t *users, size_t *rules);

/*
 * Parsers, for the fuzz targets: the htpasswd and access file texts of
 * len bytes. 0 or -1 with a reason in why; the result is freed.
 */
int auth_parse_check(const char *htpasswd, size_t hlen, const char *access,
    size_t alen, char *why, size_t whysize);

/* Whether pattern (`*` within a path component, `**` across) matches s. */
bool auth_pattern_match(const char *pat, size_t plen, const char *s,
    size_t slen);

#endif /* BERTH_AUTH_H */
