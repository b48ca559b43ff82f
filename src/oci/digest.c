/*
 * Digests, repository names and tags: strict grammar checks on
 * length-delimited input (OCI image-spec "Digests", distribution-spec
 * "Pulling manifests").
 */
#include "config.h"

#include <string.h>

#include <openssl/evp.h>

#include "berth/oci.h"

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool
is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/*
 * image-spec: algorithm ::= component (separator component)*,
 * component ::= [a-z0-9]+, separator ::= [+._-]; encoded ::= [a-zA-Z0-9=_-]+.
 */
static bool
algorithm_valid(const char *s, size_t len)
{
	bool need_component = true;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (is_lower_alnum(c))
			need_component = false;
		else if ((c == '+' || c == '.' || c == '_' || c == '-') &&
		    !need_component)
			need_component = true;
		else
			return false;
	}
	return !need_component;
}

static bool
encoded_valid(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '=' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int
oci_digest_parse(const char *s, size_t len, struct oci_digest *out)
{
	const char *colon;
	size_t alen, elen;

	memset(out, 0, sizeof(*out));
	if (s == NULL || len == 0)
		return OCI_E_INVALID;
	colon = memchr(s, ':', len);
	if (colon == NULL)
		return OCI_E_INVALID;
	alen = (size_t)(colon - s);
	elen = len - alen - 1;
	if (!algorithm_valid(s, alen) || !encoded_valid(colon + 1, elen))
		return OCI_E_INVALID;
	if (alen != 6 || memcmp(s, "sha256", 6) != 0)
		return OCI_E_UNSUPPORTED;
	if (elen != OCI_DIGEST_SHA256_HEX)
		return OCI_E_INVALID;
	for (size_t i = 0; i < OCI_HASH_SHA256_BYTES; i++) {
		int hi = hexval(colon[1 + 2 * i]);
		int lo = hexval(colon[2 + 2 * i]);

		if (hi < 0 || lo < 0) {
			memset(out, 0, sizeof(*out));
			return OCI_E_INVALID;
		}
		out->hash[i] = (uint8_t)(hi << 4 | lo);
	}
	out->alg = OCI_DIGEST_SHA256;
	return 0;
}

void
oci_digest_format(const struct oci_digest *d, char out[OCI_DIGEST_STR_BYTES])
{
	static const char hex[] = "0123456789abcdef";

	memcpy(out, "sha256:", 7);
	for (size_t i = 0; i < OCI_HASH_SHA256_BYTES; i++) {
		out[7 + 2 * i] = hex[d->hash[i] >> 4];
		out[8 + 2 * i] = hex[d->hash[i] & 0xf];
	}
	out[OCI_DIGEST_STR_BYTES - 1] = '\0';
}

void
oci_digest_sha256(const void *buf, size_t len, struct oci_digest *out)
{
	unsigned int n = 0;

	memset(out, 0, sizeof(*out));
	EVP_Digest(buf, len, out->hash, &n, EVP_sha256(), NULL);
	out->alg = OCI_DIGEST_SHA256;
}

bool
oci_digest_equal(const struct oci_digest *a, const struct oci_digest *b)
{
	return a->alg == b->alg && memcmp(a->hash, b->hash, sizeof(a->hash)) == 0;
}

/*
 * distribution-spec: <name> matches
 * [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 */
bool
oci_name_valid(const char *s, size_t len)
{
	size_t i = 0;

	if (s == NULL || len == 0 || len > OCI_NAME_MAX_BYTES)
		return false;
	for (;;) {
		/* One path component. */
		if (i >= len || !is_lower_alnum(s[i]))
			return false;
		while (i < len && is_lower_alnum(s[i]))
			i++;
		while (i < len && s[i] != '/') {
			size_t sep = i;

			if (s[i] == '.') {
				i++;
			} else if (s[i] == '_') {
				i++;
				if (i < len && s[i] == '_')
					i++;
			} else if (s[i] == '-') {
				while (i < len && s[i] == '-')
					i++;
			} else {
				return false;
			}
			if (i == sep || i >= len || !is_lower_alnum(s[i]))
				return false;
			while (i < len && is_lower_alnum(s[i]))
				i++;
		}
		if (i == len)
			return true;
		i++;            /* the '/' */
	}
}

bool
oci_tag_valid(const char *s, size_t len)
{
	if (s == NULL || len == 0 || len > OCI_TAG_MAX_BYTES)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_';

		if (!word && (i == 0 || (c != '.' && c != '-')))
			return false;
	}
	return true;
}
