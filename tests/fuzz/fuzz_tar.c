/*
 * Fuzz target: the streaming TAR reader over untrusted bytes. The input
 * is served to the reader in pieces whose sizes come from the input's
 * first byte (short reads must not change the result); every entry's
 * name is run through tar_path_clean and its data read to the end. The
 * same input read whole and in pieces must give the same entries.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct src {
	const uint8_t *p;
	size_t len, at, step;
};

static int
mem_source(void *arg, void *buf, size_t len, size_t *nread)
{
	struct src *s = arg;
	size_t n = s->len - s->at;

	if (n > len)
		n = len;
	if (s->step != 0 && n > s->step)
		n = s->step;
	memcpy(buf, s->p + s->at, n);
	s->at += n;
	*nread = n;
	return 0;
}

/* A cleaned name must be relative, with no "", "." or ".." component. */
static int
bad_clean(const char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t s = i;

		while (i < len && p[i] != '/')
			i++;
		if (i == s || (i - s == 1 && p[s] == '.') ||
		    (i - s == 2 && p[s] == '.' && p[s + 1] == '.'))
			return 1;
		i++;
	}
	return len > 0 && p[len - 1] == '/';
}

/* Reads the whole archive; returns a checksum of what was seen. */
static uint64_t
walk(const uint8_t *data, size_t size, size_t step, int *last)
{
	struct src s = { data, size, 0, step };
	struct tar_reader r;
	struct tar_header *h = malloc(sizeof(*h));
	char *clean = malloc(TAR_PATH_MAX_BYTES + 1);
	uint8_t buf[700];
	uint64_t sum = 0;
	size_t n, cl;
	int rc = 0;

	if (h == NULL || clean == NULL)
		abort();
	tar_reader_init(&r, mem_source, &s);
	for (unsigned i = 0; i < 10000; i++) {
		rc = tar_reader_next(&r, h);
		if (rc != 0)
			break;
		if (strlen(h->name) != h->namelen)
			abort();
		if (tar_path_clean(h->name, h->namelen, clean, &cl) == 0) {
			if (cl > h->namelen || bad_clean(clean, cl))
				abort();
			sum = sum * 31 + cl;
		}
		sum = sum * 31 + h->size + (uint8_t)h->type;
		if (i % 2 == 0)
			continue;       /* left to tar_reader_next to skip */
		do {
			rc = tar_reader_read(&r, buf, sizeof(buf), &n);
			for (size_t k = 0; k < n; k++)
				sum = sum * 31 + buf[k];
		} while (rc == 0 && n > 0);
		if (rc != 0)
			break;
	}
	tar_reader_free(&r);
	free(clean);
	free(h);
	*last = rc;
	return sum;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t step;
	int rc1, rc2;

	if (size < 1)
		return 0;
	step = (size_t)(data[0] % 64) + 1;
	if (walk(data + 1, size - 1, 0, &rc1) !=
	    walk(data + 1, size - 1, step, &rc2) || rc1 != rc2)
		abort();
	return 0;
}
