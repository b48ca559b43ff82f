/*
 * Fuzz target: digest, repository name and tag grammars. Every input is
 * tried as each; a digest that parses must format back to the same text.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char out[OCI_DIGEST_STR_BYTES];
	struct oci_digest d;

	if (oci_digest_parse(s, size, &d) == 0) {
		oci_digest_format(&d, out);
		if (size != strlen(out) || memcmp(out, s, size) != 0)
			abort();
	}
	(void)oci_name_valid(s, size);
	(void)oci_tag_valid(s, size);
	return 0;
}
