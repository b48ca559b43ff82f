/*
 * The export's argument grammars: image references (REPO:TAG, REPO@DIGEST,
 * REPO) and platforms (OS/ARCH[/VARIANT] with architecture aliases), and
 * the host platform's mapping. The archive itself is checked by real
 * loaders in tests/integration/test_export.sh.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "berth/export.h"

#define S(x) x, strlen(x)

static const char D[] =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void
test_ref_parse(void **state)
{
	struct export_ref r;
	char s[200];

	(void)state;
	assert_int_equal(export_ref_parse(S("team/app:v1"), &r), 0);
	assert_string_equal(r.repo, "team/app");
	assert_string_equal(r.tag, "v1");
	assert_false(r.by_digest);
	assert_int_equal(export_ref_parse(S("app"), &r), 0);
	assert_string_equal(r.repo, "app");
	assert_string_equal(r.tag, "latest");
	snprintf(s, sizeof(s), "team/app@%s", D);
	assert_int_equal(export_ref_parse(S(s), &r), 0);
	assert_string_equal(r.repo, "team/app");
	assert_string_equal(r.tag, "");
	assert_true(r.by_digest);
	/* The length bounds the parse. */
	assert_int_equal(export_ref_parse("team/app:v1junk", 11, &r), 0);
	assert_string_equal(r.tag, "v1");
}

static void
test_ref_refused(void **state)
{
	struct export_ref r;

	(void)state;
	assert_int_equal(export_ref_parse(S("Team/App:v1"), &r), EXPORT_E_INVALID);
	assert_int_equal(export_ref_parse(S("team/app:"), &r), EXPORT_E_INVALID);
	assert_int_equal(export_ref_parse(S(":v1"), &r), EXPORT_E_INVALID);
	assert_int_equal(export_ref_parse(S("host:5000/app:v1"), &r),
	    EXPORT_E_INVALID);
	assert_int_equal(export_ref_parse(S("team/app@sha256:abc"), &r),
	    EXPORT_E_INVALID);
	assert_int_equal(export_ref_parse(S("team/app:-x"), &r),
	    EXPORT_E_INVALID);
	assert_int_equal(export_ref_parse(S(""), &r), EXPORT_E_INVALID);
}

static void
test_platform_parse(void **state)
{
	struct export_platform p;
	char buf[128];

	(void)state;
	assert_int_equal(export_platform_parse(S("linux/amd64"), &p), 0);
	export_platform_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, "linux/amd64");
	assert_int_equal(export_platform_parse(S("linux/arm/v6"), &p), 0);
	export_platform_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, "linux/arm/v6");
	/* uname names are aliases of OCI architectures. */
	assert_int_equal(export_platform_parse(S("linux/aarch64"), &p), 0);
	export_platform_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, "linux/arm64/v8");
	assert_int_equal(export_platform_parse(S("linux/x86_64"), &p), 0);
	export_platform_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, "linux/amd64");
	/* A variant given is kept. */
	assert_int_equal(export_platform_parse(S("linux/armv7l/v6"), &p), 0);
	export_platform_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, "linux/arm/v6");
}

static void
test_platform_refused(void **state)
{
	struct export_platform p;

	(void)state;
	assert_int_equal(export_platform_parse(S("linux"), &p), EXPORT_E_INVALID);
	assert_int_equal(export_platform_parse(S("linux/"), &p), EXPORT_E_INVALID);
	assert_int_equal(export_platform_parse(S("/amd64"), &p), EXPORT_E_INVALID);
	assert_int_equal(export_platform_parse(S("linux/arm/v7/x"), &p),
	    EXPORT_E_INVALID);
	assert_int_equal(export_platform_parse(S("Linux/AMD64"), &p),
	    EXPORT_E_INVALID);
	assert_int_equal(export_platform_parse(
	    S("linux/a23456789012345678901234567890123"), &p), EXPORT_E_INVALID);
}

static void
test_platform_host(void **state)
{
	struct export_platform p;

	(void)state;
	/* Every machine this runs on is in the table (amd64, arm64, ...). */
	assert_int_equal(export_platform_host(&p), 0);
	assert_string_equal(p.os, "linux");
	assert_true(p.arch[0] != '\0');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_parse),
		cmocka_unit_test(test_ref_refused),
		cmocka_unit_test(test_platform_parse),
		cmocka_unit_test(test_platform_refused),
		cmocka_unit_test(test_platform_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
