#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "util/duration.h"

int
duration_parse(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0') {
		switch (*end) {
		case 's': mul = 1; break;
		case 'm': mul = 60; break;
		case 'h': mul = 3600; break;
		case 'd': mul = 86400; break;
		default: return -1;
		}
		if (end[1] != '\0')
			return -1;
	}
	/* At most 100 years: a period no timer or age check overflows. */
	if (v > DURATION_MAX_SECONDS / mul)
		return -1;
	*out = (uint64_t)v * mul;
	return 0;
}
