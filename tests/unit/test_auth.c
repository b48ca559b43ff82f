/*
 * htpasswd and access files, Basic credentials and rights (src/auth):
 * real bcrypt hashes as `htpasswd -B` wrote them, every grammar error named
 * with its file and line, the pattern language, who gets what, the cache
 * of verified passwords and the limit on password checks.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "auth/auth.h"
#include "testutil.h"

#define S(x) x, strlen(x)

/* htpasswd -nbB -C 4 NAME PASSWORD */
static const char HTPASSWD[] =
    "# users\n"
    "alice:$2y$04$lmjpjsalGO0jzlpOnOqxJOH4q55KhulNsE8WdNQTYZD7sva6qW/Fm\n"
    "bob:$2y$04$ejHnppccUkGKdK28YV3eOORZ7zcfG32KVwcMRT2H5ppVWhRHFxPFC\r\n"
    "\n"
    "carol:$2y$04$1aWfb4QwpiAgAOAdI0NFXOhB.2IOGcCzQjY3o5PXG3zTpsodbvRb.\n";

static const char ACCESS[] =
    "group devs alice bob\n"
    "allow @devs team/** pull,push\n"
    "allow alice team/** delete\n"
    "allow carol team/app pull\n"
    "allow * shared/* pull\n"
    "allow anonymous public/** pull\n";

#define ALICE "Basic YWxpY2U6YXBwbGU="          /* alice:apple */
#define ALICE_WRONG "Basic YWxpY2U6d3Jvbmc="    /* alice:wrong */
#define NOBODY "Basic bm9ib2R5OmFwcGxl"         /* nobody:apple */
#define CAROL "Basic Y2Fyb2w6Y2hlcnJ5"          /* carol:cherry */

struct fixture {
	char *dir;
	char ht[512], ac[512];
};

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = tu_tmpdir();
	snprintf(f->ht, sizeof(f->ht), "%s/htpasswd", f->dir);
	snprintf(f->ac, sizeof(f->ac), "%s/access", f->dir);
	write_file(f->ht, HTPASSWD);
	write_file(f->ac, ACCESS);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tu_rmdir(f->dir);
	free(f);
	return 0;
}

static struct auth *
load(struct fixture *f, bool access)
{
	char why[512] = "";
	struct auth *a = auth_load(f->ht, access ? f->ac : NULL, why, sizeof(why));

	if (a == NULL)
		fail_msg("%s", why);
	return a;
}

static void
test_basic_credentials(void **state)
{
	struct fixture *f = *state;
	struct auth *a = load(f, true);
	char user[AUTH_USER_MAX_BYTES + 1];

	assert_int_equal(auth_basic(a, NULL, 0, 1000, NULL, user), AUTH_NONE);
	assert_int_equal(auth_basic(a, S(ALICE), 1000, NULL, user), AUTH_OK);
	assert_string_equal(user, "alice");
	assert_int_equal(auth_basic(a, S("basic  Y2Fyb2w6Y2hlcnJ5"), 1000, NULL, user),
	    AUTH_OK);
	assert_string_equal(user, "carol");
	assert_int_equal(auth_basic(a, S(ALICE_WRONG), 1000, NULL, user), AUTH_BAD);
	assert_int_equal(auth_basic(a, S(NOBODY), 1000, NULL, user), AUTH_BAD);
	/* malformed: scheme, base64, padding, no colon, NUL, long */
	assert_int_equal(auth_basic(a, S("Bearer abc"), 1000, NULL, user), AUTH_BAD);
	assert_int_equal(auth_basic(a, S("Basic YWxpY2U6YXBwbGU"), 1000, NULL, user),
	    AUTH_BAD);
	assert_int_equal(auth_basic(a, S("Basic YWxp=2U6"), 1000, NULL, user), AUTH_BAD);
	assert_int_equal(auth_basic(a, S("Basic YWxpY2U="), 1000, NULL, user), AUTH_BAD);
	assert_int_equal(auth_basic(a, S("Basic YWxpY2U6AGFwcGxl"), 1000, NULL, user),
	    AUTH_BAD);
	assert_int_equal(auth_basic(a, S("Basic "
	    "YWxpY2U6eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4"
	    "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4"),
	    1000, NULL, user), AUTH_BAD);
	auth_free(a);
}

/* "Basic " and base64 of USER:PASSWORD, into out. */
static const char *
basic(char *out, size_t size, const char *user, const char *pw)
{
	char raw[256];
	int n = snprintf(raw, sizeof(raw), "%s:%s", user, pw);

	assert_true(size > 6 + 4 * ((size_t)n + 2) / 3 + 1);
	memcpy(out, "Basic ", 6);
	EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)raw, n);
	return out;
}

static void
test_check_limit_and_cache(void **state)
{
	struct fixture *f = *state;
	struct auth *a = load(f, true);
	char user[AUTH_USER_MAX_BYTES + 1];
	int busy = 0, bad = 0;

	/* A verified password is remembered: no check is spent on it. */
	assert_int_equal(auth_basic(a, S(ALICE), 2000, NULL, user), AUTH_OK);
	/* A wrong password is remembered too: repeating it is free. */
	assert_int_equal(auth_basic(a, S(ALICE_WRONG), 2000, NULL, user),
	    AUTH_BAD);
	/* Different wrong passwords spend checks until the limit answers
	 * "busy". */
	for (int i = 0; i < 5 * AUTH_VERIFY_PER_SECOND; i++) {
		char h[128], pw[32];
		int rc;

		snprintf(pw, sizeof(pw), "guess%d", i);
		basic(h, sizeof(h), "alice", pw);
		rc = auth_basic(a, S(h), 2000, NULL, user);
		busy += rc == AUTH_BUSY;
		bad += rc == AUTH_BAD;
	}
	assert_true(busy > 0);
	assert_true(bad <= 2 * AUTH_VERIFY_PER_SECOND);
	assert_int_equal(auth_basic(a, S(ALICE_WRONG), 2000, NULL, user),
	    AUTH_BAD);
	/* The remembered password still works while checks are exhausted. */
	assert_int_equal(auth_basic(a, S(ALICE), 2000, NULL, user), AUTH_OK);
	assert_int_equal(auth_basic(a, S(CAROL), 2000, NULL, user), AUTH_BUSY);
	/* A second later there are checks again. */
	assert_int_equal(auth_basic(a, S(CAROL), 2001, NULL, user), AUTH_OK);
	/* One client's wrong passwords spend its own budget first. */
	{
		int mine = 0, other;

		for (int i = 0; i < 4 * AUTH_VERIFY_PER_SECOND; i++) {
			char h[128], pw[32];

			snprintf(pw, sizeof(pw), "other%d", i);
			mine += auth_basic(a, S(basic(h, sizeof(h), "alice",
			    pw)), 3000, "192.0.2.7:4000", user) == AUTH_BUSY;
		}
		assert_true(mine > 0);
		other = auth_basic(a, S(CAROL), 3000, "192.0.2.8:4000", user);
		assert_int_equal(other, AUTH_OK);
	}
	/* The memory expires. */
	assert_int_equal(auth_basic(a, S(ALICE), 2000 + AUTH_CACHE_SECONDS + 5,
	    NULL, user), AUTH_OK);
	auth_free(a);
}

/*
 * Wrong passwords, each one checked (a new second every
 * AUTH_VERIFY_PER_SECOND of them, so the budget never runs out, and all
 * within alice's AUTH_CACHE_SECONDS), never push a remembered right one
 * out of the cache: once checks are exhausted alice still signs in. With
 * one slot per key, 2000 checked guesses took alice's slot in most runs.
 */
static void
test_guesses_keep_signed_in_users(void **state)
{
	struct fixture *f = *state;
	struct auth *a = load(f, true);
	char user[AUTH_USER_MAX_BYTES + 1];
	uint64_t now = 5000;
	int busy = 0;

	assert_int_equal(auth_basic(a, S(ALICE), now, NULL, user), AUTH_OK);
	for (int i = 0; i < 2000; i++) {
		char h[128], pw[32];

		snprintf(pw, sizeof(pw), "spray%d", i);
		basic(h, sizeof(h), "bob", pw);
		if (i % AUTH_VERIFY_PER_SECOND == 0)
			now++;
		assert_int_equal(auth_basic(a, S(h), now, NULL, user),
		    AUTH_BAD);
	}
	/* Exhaust this second's checks, then alice comes back. */
	for (int i = 0; i < 4 * AUTH_VERIFY_PER_SECOND; i++) {
		char h[128], pw[32];

		snprintf(pw, sizeof(pw), "more%d", i);
		basic(h, sizeof(h), "bob", pw);
		busy += auth_basic(a, S(h), now, NULL, user) == AUTH_BUSY;
	}
	assert_true(busy > 0);
	assert_true(now < 5000 + AUTH_CACHE_SECONDS);
	assert_int_equal(auth_basic(a, S(ALICE), now, NULL, user), AUTH_OK);
	assert_string_equal(user, "alice");
	auth_free(a);
}

static void
test_rights(void **state)
{
	struct fixture *f = *state;
	struct auth *a = load(f, true), *b = load(f, false);

	assert_int_equal(auth_rights(a, "alice", S("team/app")), AUTH_ALL);
	assert_int_equal(auth_rights(a, "alice", S("team/x/y")), AUTH_ALL);
	assert_int_equal(auth_rights(a, "bob", S("team/app")),
	    AUTH_PULL | AUTH_PUSH);
	assert_int_equal(auth_rights(a, "carol", S("team/app")), AUTH_PULL);
	assert_int_equal(auth_rights(a, "carol", S("team/other")), 0);
	assert_int_equal(auth_rights(a, "carol", S("shared/lib")), AUTH_PULL);
	assert_int_equal(auth_rights(a, "carol", S("shared/lib/deep")), 0);
	assert_int_equal(auth_rights(a, NULL, S("shared/lib")), 0);
	assert_int_equal(auth_rights(a, NULL, S("public/a/b")), AUTH_PULL);
	assert_int_equal(auth_rights(a, "bob", S("public/a")), AUTH_PULL);
	assert_int_equal(auth_rights(a, NULL, S("team/app")), 0);
	assert_int_equal(auth_rights(a, "alice", S("teamx/app")), 0);
	assert_true(auth_anonymous_any(a));
	/* No access file: every signed-in user, everything; anonymous none. */
	assert_int_equal(auth_rights(b, "carol", S("any/thing")), AUTH_ALL);
	assert_int_equal(auth_rights(b, NULL, S("any/thing")), 0);
	assert_false(auth_anonymous_any(b));
	auth_free(a);
	auth_free(b);
}

static void
test_patterns(void **state)
{
	(void)state;
	assert_true(auth_pattern_match(S("app"), S("app")));
	assert_false(auth_pattern_match(S("app"), S("apps")));
	assert_true(auth_pattern_match(S("team/*"), S("team/a")));
	assert_false(auth_pattern_match(S("team/*"), S("team/a/b")));
	assert_false(auth_pattern_match(S("team/*"), S("team")));
	assert_true(auth_pattern_match(S("team/**"), S("team/a/b")));
	assert_true(auth_pattern_match(S("**"), S("x/y/z")));
	assert_true(auth_pattern_match(S("*/app"), S("team/app")));
	assert_false(auth_pattern_match(S("*/app"), S("a/b/app")));
	assert_true(auth_pattern_match(S("**/app"), S("a/b/app")));
	assert_true(auth_pattern_match(S("a*b*c"), S("aXbYc")));
	assert_false(auth_pattern_match(S("a*b*c"), S("aXb/c")));
	assert_true(auth_pattern_match(S("*"), S("")));
	assert_false(auth_pattern_match(S("a"), S("")));
}

static void
expect_error(const char *ht, const char *ac, const char *want)
{
	char why[512] = "";

	assert_int_equal(auth_parse_check(ht, strlen(ht), ac,
	    ac != NULL ? strlen(ac) : 0, why, sizeof(why)), -1);
	if (strstr(why, want) == NULL)
		fail_msg("got \"%s\", want \"%s\"", why, want);
}

static void
test_file_errors(void **state)
{
	char big[AUTH_LINE_MAX_BYTES + 64];

	(void)state;
	assert_int_equal(auth_parse_check(S(HTPASSWD), S(ACCESS), NULL, 0), 0);
	expect_error("dave:$apr1$895LTqfJ$CWhZ9NYMwWhH82pK7REu70\n", NULL,
	    "htpasswd:1: user dave: only bcrypt");
	expect_error("alice\n", NULL, "htpasswd:1: want USER:HASH");
	expect_error("# x\nal ice:$2y$04$lmjpjsalGO0jzlpOnOqxJOH4q55KhulNsE8WdNQTY"
	    "ZD7sva6qW/Fm\n", NULL, "htpasswd:2: user name");
	expect_error("alice:$2y$04$lmjpjsalGO0jzlpOnOqxJOH4q55KhulNsE8WdNQTYZD7sva"
	    "6qW/Fm\nalice:$2y$04$lmjpjsalGO0jzlpOnOqxJOH4q55KhulNsE8WdNQTYZD7s"
	    "va6qW/Fm\n", NULL, "user alice appears twice");
	expect_error(HTPASSWD, "allow mallory team/* pull\n",
	    "access:1: unknown user mallory");
	expect_error(HTPASSWD, "\nallow @ops team/* pull\n",
	    "access:2: unknown group @ops");
	expect_error(HTPASSWD, "allow alice Team/* pull\n", "access:1: pattern");
	expect_error(HTPASSWD, "allow alice team/* pull,write\n",
	    "access:1: right write");
	expect_error(HTPASSWD, "allow alice team/* pull,\n", "trailing comma");
	expect_error(HTPASSWD, "allow alice team/*\n", "access:1: want:");
	expect_error(HTPASSWD, "group devs alice zed\n",
	    "access:1: group devs: unknown user zed");
	expect_error(HTPASSWD, "group devs alice\ngroup devs bob\n",
	    "access:2: group devs defined twice");
	expect_error(HTPASSWD, "deny alice team/* pull\n", "access:1: want:");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	expect_error(HTPASSWD, big, "access:1: line longer");
	expect_error("alice:x\0y\n", NULL, "htpasswd:1:");
}

static void
test_missing_file(void **state)
{
	struct fixture *f = *state;
	char why[512] = "", path[600];

	snprintf(path, sizeof(path), "%s/none", f->dir);
	assert_null(auth_load(path, NULL, why, sizeof(why)));
	assert_non_null(strstr(why, "No such file"));
	assert_null(auth_load(f->ht, path, why, sizeof(why)));
	assert_non_null(strstr(why, path));
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_basic_credentials),
		T(test_check_limit_and_cache),
		T(test_guesses_keep_signed_in_users),
		T(test_rights),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_file_errors),
		T(test_missing_file),
	};

	return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
