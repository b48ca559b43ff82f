/*
 * The archive tools' name grammars: the export's image references
 * (REPO:TAG, REPO@DIGEST, REPO) and platforms (OS/ARCH[/VARIANT] with
 * architecture aliases) and the host platform's mapping; the import's
 * mapping of archive image names to repositories and tags. Archives
 * themselves are checked by real loaders in tests/integration/.
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
#include "berth/import.h"

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

static void
test_import_name_map(void **state)
{
	static const struct {
		const char *in, *prefix, *repo, *tag;
	} ok[] = {
		{ "docker.io/library/alpine:3", NULL, "library/alpine", "3" },
		{ "alpine:3", NULL, "alpine", "3" },
		{ "localhost/app:1", NULL, "app", "1" },
		{ "127.0.0.1:5443/team/app:v2", NULL, "team/app", "v2" },
		{ "registry.example.com/team/app", NULL, "team/app", "" },
		{ "team/app:v1", "mirror", "mirror/team/app", "v1" },
		{ "localhost:5000/app:Latest_1.0", NULL, "app", "Latest_1.0" },
	};
	static const char *const bad[] = {
		"", "docker.io/", "Team/App:1", "app:-x", "app:",
		"app/:1", "a//b:1",
	};
	struct import_name n;
	char s[200];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(import_name_map(S(ok[i].in), ok[i].prefix, &n), 0);
		assert_string_equal(n.repo, ok[i].repo);
		assert_string_equal(n.tag, ok[i].tag);
	}
	/* A digest suffix is dropped: the manifest names itself. */
	snprintf(s, sizeof(s), "team/app@%s", D);
	assert_int_equal(import_name_map(S(s), NULL, &n), 0);
	assert_string_equal(n.repo, "team/app");
	assert_string_equal(n.tag, "");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(import_name_map(S(bad[i]), NULL, &n),
		    IMPORT_E_ARCHIVE);
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
		cmocka_unit_test(test_import_name_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
