/*
 * A one-line progress bar on stderr for long tool runs: bytes done, rate
 * and time left. Prints nothing unless stderr is a terminal and the tool
 * was not asked to be quiet.
 */
#ifndef BERTH_PROGRESS_H
#define BERTH_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
	bool on;
	const char *label;
	/* NULL (progress_init's): done and total are bytes; else they count
	 * things of this name ("objects"), printed as plain numbers. */
	const char *unit;
	double t0, last;
	bool drawn;
};

void progress_init(struct progress *p, const char *label, bool quiet);
/* Redraws at most 5 times a second; total 0 means unknown. */
void progress_update(struct progress *p, uint64_t done, uint64_t total);
/* Clears the line. */
void progress_end(struct progress *p);

/* "1.2 GB" style, into buf. */
const char *progress_bytes(uint64_t n, char *buf, unsigned size);

#endif
