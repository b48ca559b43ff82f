/*
 * Fuzz target: the chunked body decoder (http_chunked_feed) fed the same
 * bytes twice, once whole and once in pieces whose sizes come from a
 * generator seeded by the input's first four bytes. The decoder must
 * reach the same verdict and hand over the same body bytes however the
 * stream is split (TCP and TLS split it anywhere), consume every byte it
 * is given or stop with an error, never point outside what it was given,
 * and never claim more body bytes than a chunk size announced. The split
 * reader also takes only part of some data runs and gives the rest back
 * (http_chunked_unread), as a paused body does; that too must not change
 * the body.
 *
 * Input: 4 bytes of seed, then the chunked stream.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHUNKED_OUT_MAX_BYTES ((size_t)1 << 20)

struct decoded {
	int verdict;            /* 1 done, 0 wants more, <0 error */
	size_t consumed;        /* bytes used up to the verdict */
	size_t outlen;
	uint8_t *out;
};

/* xorshift32: piece sizes 1..64, sometimes 0 to test empty feeds. */
static size_t
next_piece(uint32_t *st)
{
	uint32_t x = *st;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*st = x;
	return (x & 0xff) < 8 ? 0 : (size_t)(x % 64) + 1;
}

/*
 * Decodes in[0..len) in pieces (seed 0: whole). Aborts on a broken
 * invariant; fills *d.
 */
static void
decode(const uint8_t *in, size_t len, uint32_t seed, struct decoded *d)
{
	struct http_chunked c;
	uint32_t st = seed;
	size_t off = 0;

	memset(d, 0, sizeof(*d));
	d->out = malloc(len > 0 ? len : 1);
	if (d->out == NULL)
		abort();
	http_chunked_init(&c);
	while (off < len) {
		size_t n = seed == 0 ? len - off : next_piece(&st), used = 0;

		if (n > len - off)
			n = len - off;
		/* An empty feed must be a no-op that asks for more. */
		if (n == 0) {
			const uint8_t *p;
			size_t k, dl;
			int rc = http_chunked_feed(&c, in + off, 0, &k, &p, &dl);

			if (k != 0 || dl != 0 || (rc != 0 && rc != 1))
				abort();
			continue;
		}
		while (used < n) {
			const uint8_t *p;
			size_t k, dl;
			int rc = http_chunked_feed(&c, in + off + used, n - used,
			    &k, &p, &dl);

			if (k > n - used)
				abort();
			if (rc < 0) {
				if (dl != 0 || p != NULL || k == 0)
					abort();
				d->verdict = rc;
				d->consumed = off + used + k;
				return;
			}
			if (dl > 0) {
				/* Body bytes lie inside what was fed, and were consumed. */
				if (p < in + off + used || p + dl > in + off + used + k)
					abort();
				/* Sometimes take only a part, give the rest back. */
				if (seed != 0 && dl > 1) {
					size_t take = next_piece(&st);

					if (take > 0 && take < dl) {
						http_chunked_unread(&c, dl - take);
						k -= dl - take;
						dl = take;
					}
				}
				if (d->outlen + dl > len)
					abort();
				memcpy(d->out + d->outlen, p, dl);
				d->outlen += dl;
			}
			used += k;
			if (rc == 1) {
				d->verdict = 1;
				d->consumed = off + used;
				return;
			}
			if (k == 0)
				abort();        /* no progress */
		}
		off += n;
	}
	d->verdict = 0;
	d->consumed = len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct decoded whole, split;
	uint32_t seed;

	if (size < 4 || size - 4 > FUZZ_CHUNKED_OUT_MAX_BYTES)
		return 0;
	seed = (uint32_t)data[0] | (uint32_t)data[1] << 8 |
	    (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
	if (seed == 0)
		seed = 1;
	decode(data + 4, size - 4, 0, &whole);
	decode(data + 4, size - 4, seed, &split);
	if ((whole.verdict < 0) != (split.verdict < 0) ||
	    (whole.verdict >= 0 && whole.verdict != split.verdict))
		abort();
	/* The same body, up to the end or to where framing broke. */
	if (whole.outlen != split.outlen ||
	    memcmp(whole.out, split.out, whole.outlen) != 0)
		abort();
	/* A message ends, or breaks, at the same byte however it was split. */
	if (whole.verdict != 0 && whole.consumed != split.consumed)
		abort();
	free(whole.out);
	free(split.out);
	return 0;
}
