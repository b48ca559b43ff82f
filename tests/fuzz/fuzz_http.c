/*
 * Fuzz target: the HTTP request head parser and the chunked decoder. The
 * first byte picks which; the chunked decoder is fed in pieces whose sizes
 * come from the input, and must consume every byte or stop with an error.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "berth/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_request r;
	struct http_chunked c;
	size_t off = 1, step;

	if (size < 2)
		return 0;
	if (data[0] & 1) {
		if (http_request_parse((const char *)data + 1, size - 1, 64, 2048,
		    &r) == 0 && (r.path.p < (const char *)data ||
		    r.path.p + r.path.len > (const char *)data + size))
			abort();
		return 0;
	}
	step = (size_t)(data[0] >> 1) + 1;
	http_chunked_init(&c);
	while (off < size) {
		size_t n = size - off < step ? size - off : step, used = 0;

		while (used < n) {
			const uint8_t *d;
			size_t dl, k;
			int rc = http_chunked_feed(&c, data + off + used, n - used,
			    &k, &d, &dl);

			if (rc < 0)
				return 0;
			if (k > n - used || (dl > 0 && (d < data + off + used ||
			    d + dl > data + off + n)))
				abort();
			if (rc == 1)
				return 0;
			if (k == 0)
				abort();        /* no progress */
			used += k;
		}
		off += n;
	}
	return 0;
}
