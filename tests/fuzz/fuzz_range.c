/*
 * Fuzz target: Range (blob GET) and Content-Range (upload PATCH) values.
 * The first 8 input bytes are the representation's size (little-endian),
 * the rest the header value. A satisfied range must lie inside the size.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t n = 0, first = 0, last = 0, start;

	if (size < 8)
		return 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | data[i];
	if (http_parse_range((const char *)data + 8, size - 8, n, &first,
	    &last) == 1 && (first > last || last >= n))
		abort();
	(void)http_parse_content_range_start((const char *)data + 8, size - 8,
	    &start);
	return 0;
}
