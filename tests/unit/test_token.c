/*
 * Bearer tokens (src/auth/token.c): a key made on first use and read back,
 * tokens that verify with their claims, and every way a token must fail:
 * another key, a changed header, payload or signature, another algorithm,
 * expiry, another service, malformed text. Scope parameters.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "auth/token.h"
#include "testutil.h"

#define S(x) x, strlen(x)
#define NOW 1800000000u

struct fixture {
	char *dir;
	char path[512];
	struct token_key *k;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char why[256];

	f->dir = tu_tmpdir();
	snprintf(f->path, sizeof(f->path), "%s/key.pem", f->dir);
	f->k = token_key_load(f->path, true, why, sizeof(why));
	*state = f;
	return f->k == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	token_key_free(f->k);
	tu_rmdir(f->dir);
	free(f);
	return 0;
}

static char *
issue(struct fixture *f, const char *user)
{
	struct token_access a[2];

	assert_int_equal(token_scope_parse(S("repository:team/app:pull,push"),
	    &a[0]), 0);
	assert_int_equal(token_scope_parse(S("registry:catalog:*"), &a[1]), 0);
	return token_issue(f->k, "berth", user, a, 2, NOW, 300);
}

static void
test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct token_claims c;
	struct stat sb;
	char *t = issue(f, "alice"), why[256];
	struct token_key *again;

	assert_non_null(t);
	assert_int_equal(token_verify(f->k, "berth", S(t), NOW + 10, &c), 0);
	assert_string_equal(c.user, "alice");
	assert_int_equal(c.naccess, 2);
	assert_int_equal(token_actions(&c, S("team/app")), AUTH_PULL | AUTH_PUSH);
	assert_int_equal(token_actions(&c, S("team/other")), 0);
	assert_true(c.access[1].catalog);
	/* The key file is private and reads back as the same key. */
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	again = token_key_load(f->path, false, why, sizeof(why));
	assert_non_null(again);
	assert_int_equal(token_verify(again, "berth", S(t), NOW, &c), 0);
	token_key_free(again);
	free(t);
	/* Anonymous. */
	t = token_issue(f->k, "berth", NULL, NULL, 0, NOW, 300);
	assert_int_equal(token_verify(f->k, "berth", S(t), NOW, &c), 0);
	assert_string_equal(c.user, "");
	assert_int_equal(c.naccess, 0);
	free(t);
}

static void
test_refusals(void **state)
{
	struct fixture *f = *state;
	struct token_claims c;
	struct token_key *other;
	char *t = issue(f, "alice"), *m, otherpath[600], why[256];
	char *d1, *d2;
	size_t n = strlen(t);

	/* time and audience */
	assert_int_equal(token_verify(f->k, "berth", t, n, NOW + 300 + TOKEN_SKEW
	    + 1, &c), -1);
	assert_int_equal(token_verify(f->k, "berth", t, n, NOW - TOKEN_SKEW - 1,
	    &c), -1);
	assert_int_equal(token_verify(f->k, "other", t, n, NOW, &c), -1);
	/* another key */
	snprintf(otherpath, sizeof(otherpath), "%s/other.pem", f->dir);
	other = token_key_load(otherpath, true, why, sizeof(why));
	assert_non_null(other);
	assert_int_equal(token_verify(other, "berth", t, n, NOW, &c), -1);
	token_key_free(other);
	/* every byte of every part matters */
	m = strdup(t);
	d1 = strchr(m, '.');
	d2 = strchr(d1 + 1, '.');
	for (char *p = m; p < m + n; p += 7) {
		char keep = *p;

		if (*p == '.')
			continue;
		*p = *p == 'A' ? 'B' : 'A';
		assert_int_equal(token_verify(f->k, "berth", m, n, NOW, &c), -1);
		*p = keep;
	}
	assert_int_equal(token_verify(f->k, "berth", m, n, NOW, &c), 0);
	/* truncated, extra part, empty, oversized */
	assert_int_equal(token_verify(f->k, "berth", m, n - 1, NOW, &c), -1);
	assert_int_equal(token_verify(f->k, "berth", m, (size_t)(d2 - m), NOW,
	    &c), -1);
	assert_int_equal(token_verify(f->k, "berth", S(""), NOW, &c), -1);
	assert_int_equal(token_verify(f->k, "berth", m, TOKEN_MAX_BYTES + 1, NOW,
	    &c), -1);
	(void)d1;
	free(m);
	free(t);
}

/* A header naming another algorithm, with the payload and signature of a
 * real token: refused before anything else is believed. */
static void
test_other_algorithms(void **state)
{
	struct fixture *f = *state;
	static const char *const heads[] = {
		"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",          /* none */
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",         /* HS256 */
		"eyJhbGciOiJFUzI1NiIsImNyaXQiOlsieCJdfQ",       /* ES256 + crit */
		"eyJhbGciOiJFUzI1NiIsImFsZyI6Im5vbmUifQ",       /* duplicate alg */
	};
	struct token_claims c;
	char *t = issue(f, "alice"), buf[4096];
	const char *rest = strchr(t, '.');

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s", heads[i], rest);
		assert_int_equal(token_verify(f->k, "berth", S(buf), NOW, &c), -1);
	}
	/* no signature at all */
	snprintf(buf, sizeof(buf), "%.*s.", (int)(strrchr(t, '.') - t), t);
	assert_int_equal(token_verify(f->k, "berth", S(buf), NOW, &c), -1);
	free(t);
}

static void
test_scopes(void **state)
{
	struct token_access a;

	(void)state;
	assert_int_equal(token_scope_parse(S("repository:a/b:pull"), &a), 0);
	assert_string_equal(a.name, "a/b");
	assert_int_equal(a.actions, AUTH_PULL);
	assert_int_equal(token_scope_parse(S("repository:a:*"), &a), 0);
	assert_int_equal(a.actions, AUTH_ALL);
	assert_int_equal(token_scope_parse(S("repository:a:push,delete,x"), &a), 0);
	assert_int_equal(a.actions, AUTH_PUSH | AUTH_DELETE);
	assert_int_equal(token_scope_parse(S("registry:catalog:*"), &a), 0);
	assert_true(a.catalog);
	assert_int_equal(token_scope_parse(S("repository:Bad:pull"), &a), -1);
	assert_int_equal(token_scope_parse(S("repository:pull"), &a), -1);
	assert_int_equal(token_scope_parse(S("repository::pull"), &a), -1);
	assert_int_equal(token_scope_parse(S("thing:a:pull"), &a), -1);
	assert_int_equal(token_scope_parse(S(""), &a), -1);
}

static void
test_bad_key_files(void **state)
{
	struct fixture *f = *state;
	char path[600], why[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/none.pem", f->dir);
	assert_null(token_key_load(path, false, why, sizeof(why)));
	snprintf(path, sizeof(path), "%s/junk.pem", f->dir);
	fp = fopen(path, "w");
	fputs("not a key\n", fp);
	fclose(fp);
	assert_null(token_key_load(path, true, why, sizeof(why)));
	assert_non_null(strstr(why, "not a P-256 private key"));
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_round_trip),
		T(test_refusals),
		T(test_other_algorithms),
		cmocka_unit_test(test_scopes),
		T(test_bad_key_files),
	};

	return cmocka_run_group_tests_name("token", tests, NULL, NULL);
}
