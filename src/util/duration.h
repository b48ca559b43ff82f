/* Durations on command lines: "90", "90s", "30m", "24h", "7d". */
#ifndef BERTH_DURATION_H
#define BERTH_DURATION_H

#include <stdint.h>

#define DURATION_MAX_SECONDS    ((uint64_t)100 * 366 * 86400)

/* Parses s (NUL-terminated) into seconds; 0 or -1 if it is not one. */
int duration_parse(const char *s, uint64_t *out);

#endif
