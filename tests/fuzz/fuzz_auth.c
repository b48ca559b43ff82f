/*
 * Fuzz target: the htpasswd and access file parsers and the repository
 * pattern matcher of src/auth. The first byte picks which:
 *
 *   even  the rest, up to its first NUL, is an htpasswd file and what
 *         follows the NUL an access file (no NUL: no access file);
 *         auth_parse_check must give the same verdict twice and, when it
 *         refuses, a reason that is a terminated, non-empty string;
 *   odd   the rest, up to its first NUL, is a pattern and what follows
 *         a repository name; auth_pattern_match must agree with a
 *         memoized backtracking reference of the documented rule (`*`
 *         within a path component, `**` across, leftmost `**` first).
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The matcher refuses longer patterns and names; so does the reference. */
#define FUZZ_AUTH_PATTERN_MAX_BYTES 255
#define FUZZ_AUTH_WHY_BYTES 256

struct ref {
	const char *p, *s;
	size_t plen, slen;
	/* 0 unknown, 1 no match, 2 match; for (pattern, name) offsets */
	uint8_t memo[FUZZ_AUTH_PATTERN_MAX_BYTES + 1][FUZZ_AUTH_PATTERN_MAX_BYTES + 1];
};

static bool
ref_match(struct ref *m, size_t pi, size_t si)
{
	bool r = false;

	if (m->memo[pi][si] != 0)
		return m->memo[pi][si] == 2;
	if (pi == m->plen) {
		r = si == m->slen;
	} else if (m->p[pi] == '*' && pi + 1 < m->plen && m->p[pi + 1] == '*') {
		for (size_t k = si; k <= m->slen && !r; k++)
			r = ref_match(m, pi + 2, k);
	} else if (m->p[pi] == '*') {
		for (size_t k = si; k <= m->slen && !r; k++) {
			r = ref_match(m, pi + 1, k);
			if (k < m->slen && m->s[k] == '/')
				break;
		}
	} else {
		r = si < m->slen && m->s[si] == m->p[pi] &&
		    ref_match(m, pi + 1, si + 1);
	}
	m->memo[pi][si] = r ? 2 : 1;
	return r;
}

static void
fuzz_pattern(const char *in, size_t len)
{
	static struct ref m;
	const char *nul = memchr(in, '\0', len);
	size_t plen = nul != NULL ? (size_t)(nul - in) : len;
	const char *s = nul != NULL ? nul + 1 : in + len;
	size_t slen = nul != NULL ? len - plen - 1 : 0;
	bool got = auth_pattern_match(in, plen, s, slen), want;

	if (plen > FUZZ_AUTH_PATTERN_MAX_BYTES ||
	    slen > FUZZ_AUTH_PATTERN_MAX_BYTES) {
		if (got)
			abort();
		return;
	}
	memset(m.memo, 0, sizeof(m.memo));
	m.p = in;
	m.plen = plen;
	m.s = s;
	m.slen = slen;
	want = ref_match(&m, 0, 0);
	if (got != want)
		abort();
	/* Without a star, a pattern matches exactly itself. */
	if (memchr(in, '*', plen) == NULL &&
	    got != (plen == slen && memcmp(in, s, plen) == 0))
		abort();
}

static int
parse_once(const char *in, size_t len, char *why)
{
	const char *nul = memchr(in, '\0', len);
	size_t hlen = nul != NULL ? (size_t)(nul - in) : len;

	memset(why, 0x55, FUZZ_AUTH_WHY_BYTES);
	return auth_parse_check(in, hlen, nul != NULL ? nul + 1 : NULL,
	    nul != NULL ? len - hlen - 1 : 0, why, FUZZ_AUTH_WHY_BYTES);
}

static void
fuzz_files(const char *in, size_t len)
{
	char why1[FUZZ_AUTH_WHY_BYTES], why2[FUZZ_AUTH_WHY_BYTES];
	int rc1 = parse_once(in, len, why1);
	int rc2 = parse_once(in, len, why2);

	if (rc1 != rc2 || (rc1 != 0 && rc1 != -1))
		abort();
	if (rc1 != 0) {
		if (memchr(why1, '\0', sizeof(why1)) == NULL || why1[0] == '\0')
			abort();
		if (strcmp(why1, why2) != 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_pattern((const char *)data + 1, size - 1);
	else
		fuzz_files((const char *)data + 1, size - 1);
	return 0;
}
