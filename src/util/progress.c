#include "config.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "util/progress.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
progress_init(struct progress *p, const char *label, bool quiet)
{
	p->on = !quiet && isatty(STDERR_FILENO);
	p->label = label;
	p->unit = NULL;
	p->t0 = now();
	p->last = 0;
	p->drawn = false;
}

const char *
progress_bytes(uint64_t n, char *buf, unsigned size)
{
	static const char *const unit[] = { "B", "kB", "MB", "GB", "TB" };
	double v = (double)n;
	unsigned u = 0;

	while (v >= 1000 && u < 4) {
		v /= 1000;
		u++;
	}
	snprintf(buf, size, u == 0 ? "%.0f %s" : "%.1f %s", v, unit[u]);
	return buf;
}

/* A count, or with p->unit NULL a byte size, into buf. */
static const char *
amount(const struct progress *p, uint64_t n, char *buf, unsigned size)
{
	if (p->unit == NULL)
		return progress_bytes(n, buf, size);
	snprintf(buf, size, "%llu", (unsigned long long)n);
	return buf;
}

void
progress_update(struct progress *p, uint64_t done, uint64_t total)
{
	double t = now(), el = t - p->t0, rate;
	char a[16], b[16], r[16], eta[32] = "";

	if (!p->on || t - p->last < 0.2)
		return;
	p->last = t;
	rate = el > 0 ? (double)done / el : 0;
	if (total > 0 && rate > 0 && done <= total) {
		unsigned long s = (unsigned long)((double)(total - done) / rate);

		snprintf(eta, sizeof(eta), " ETA %lu:%02lu", s / 60, s % 60);
	}
	if (total > 0)
		fprintf(stderr, "\r%s %3u%% %s / %s%s%s  %s/s%s\033[K", p->label,
		    (unsigned)(done * 100 / total), amount(p, done, a, sizeof(a)),
		    amount(p, total, b, sizeof(b)), p->unit ? " " : "",
		    p->unit ? p->unit : "", amount(p, (uint64_t)rate, r,
		    sizeof(r)), eta);
	else
		fprintf(stderr, "\r%s %s%s%s  %s/s\033[K", p->label,
		    amount(p, done, a, sizeof(a)), p->unit ? " " : "",
		    p->unit ? p->unit : "", amount(p, (uint64_t)rate, r,
		    sizeof(r)));
	p->drawn = true;
}

void
progress_end(struct progress *p)
{
	if (p->on && p->drawn)
		fprintf(stderr, "\r\033[K");
	p->drawn = false;
}
