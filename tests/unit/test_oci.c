/* Digests, repository names and tags against the OCI grammars. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "berth/oci.h"

#define S(x) x, strlen(x)

static const char EMPTY_SHA256[] =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void
test_digest_roundtrip(void **state)
{
	struct oci_digest d, e;
	char buf[OCI_DIGEST_STR_BYTES];

	(void)state;
	assert_int_equal(oci_digest_parse(S(EMPTY_SHA256), &d), 0);
	oci_digest_format(&d, buf);
	assert_string_equal(buf, EMPTY_SHA256);
	oci_digest_sha256("", 0, &e);
	assert_true(oci_digest_equal(&d, &e));
}

static void
test_digest_rejects(void **state)
{
	struct oci_digest d;
	char upper[sizeof(EMPTY_SHA256)];

	(void)state;
	assert_int_equal(oci_digest_parse(S(""), &d), OCI_E_INVALID);
	assert_int_equal(oci_digest_parse(S("sha256"), &d), OCI_E_INVALID);
	assert_int_equal(oci_digest_parse(S("sha256:"), &d), OCI_E_INVALID);
	assert_int_equal(oci_digest_parse(S("sha256:abc"), &d), OCI_E_INVALID);
	assert_int_equal(oci_digest_parse(EMPTY_SHA256, strlen(EMPTY_SHA256) - 1,
	    &d), OCI_E_INVALID);
	memcpy(upper, EMPTY_SHA256, sizeof(upper));
	upper[10] = 'B';
	assert_int_equal(oci_digest_parse(S(upper), &d), OCI_E_INVALID);
	assert_int_equal(oci_digest_parse(S(":abc"), &d), OCI_E_INVALID);
	assert_int_equal(oci_digest_parse(S("SHA256:abc"), &d), OCI_E_INVALID);
	assert_int_equal(oci_digest_parse(S("sha512:abcd"), &d),
	    OCI_E_UNSUPPORTED);
	assert_int_equal(oci_digest_parse(S("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"),
	    &d), OCI_E_UNSUPPORTED);
	/* The length bounds the parse: a valid digest followed by junk. */
	assert_int_equal(oci_digest_parse(EMPTY_SHA256, strlen(EMPTY_SHA256), &d), 0);
	assert_int_equal(d.alg, OCI_DIGEST_SHA256);
}

static void
test_names(void **state)
{
	char longname[300];

	(void)state;
	assert_true(oci_name_valid(S("library/ubuntu")));
	assert_true(oci_name_valid(S("a")));
	assert_true(oci_name_valid(S("a.b_c__d---e/f0")));
	assert_true(oci_name_valid(S("team/app/api-server")));
	assert_false(oci_name_valid(S("")));
	assert_false(oci_name_valid(S("Upper")));
	assert_false(oci_name_valid(S("a//b")));
	assert_false(oci_name_valid(S("/a")));
	assert_false(oci_name_valid(S("a/")));
	assert_false(oci_name_valid(S("a..b")));
	assert_false(oci_name_valid(S("a___b")));
	assert_false(oci_name_valid(S("-a")));
	assert_false(oci_name_valid(S("a-")));
	assert_false(oci_name_valid(S("a b")));
	assert_false(oci_name_valid("a\0b", 3));
	memset(longname, 'a', sizeof(longname));
	assert_true(oci_name_valid(longname, OCI_NAME_MAX_BYTES));
	assert_false(oci_name_valid(longname, OCI_NAME_MAX_BYTES + 1));
}

static void
test_tags(void **state)
{
	char longtag[200];

	(void)state;
	assert_true(oci_tag_valid(S("latest")));
	assert_true(oci_tag_valid(S("v1.2.3-rc.1_arm64")));
	assert_true(oci_tag_valid(S("_x")));
	assert_false(oci_tag_valid(S("")));
	assert_false(oci_tag_valid(S(".x")));
	assert_false(oci_tag_valid(S("-x")));
	assert_false(oci_tag_valid(S("a/b")));
	assert_false(oci_tag_valid(S("a:b")));
	memset(longtag, 'a', sizeof(longtag));
	assert_true(oci_tag_valid(longtag, OCI_TAG_MAX_BYTES));
	assert_false(oci_tag_valid(longtag, OCI_TAG_MAX_BYTES + 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_roundtrip),
		cmocka_unit_test(test_digest_rejects),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_tags),
	};

	return cmocka_run_group_tests_name("oci", tests, NULL, NULL);
}
