/*
 * Store benchmark, run by hand (see tests/bench/README): writes and reads a
 * blob of incompressible data and one of text-like data through the store
 * API, and measures single-core OpenSSL SHA-256 speed in the same run,
 * since hashing is the floor cost of every write.
 *
 *   store_bench [--size MIB] [--rounds N] [--dir DIR] [--batch MIB]
 *
 * --batch sets the store's group commit size (berthd uses half its
 * --upload-buffer; the store's default otherwise).
 *
 * Prints one row per figure with the median over the rounds and its ratio
 * to SHA-256 speed, then the same rows as TSV lines starting with "tsv".
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "berth/store.h"
#include "../unit/testutil.h"

#define MiB ((size_t)1 << 20)
#define BENCH_WRITE_BYTES MiB           /* the size an HTTP layer hands over */
#define BENCH_ROUNDS_MAX 15

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* MB/s of EVP SHA-256 over buf, repeated to at least total bytes. */
static double
sha256_speed(const uint8_t *buf, size_t len, size_t total)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[32];
	double t0 = now_s();
	size_t done = 0;

	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	while (done < total) {
		EVP_DigestUpdate(ctx, buf, len);
		done += len;
	}
	EVP_DigestFinal_ex(ctx, md, NULL);
	EVP_MD_CTX_free(ctx);
	return (double)done / 1e6 / (now_s() - t0);
}

/* Streams `total` bytes of pattern buf into one blob; returns MB/s. */
static double
bench_write(struct store *st, const char *repo, const uint8_t *buf,
    size_t buflen, size_t total, struct oci_digest *d, uint64_t *stored)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	struct store_upload *up = NULL;
	struct store_blob_info info;
	unsigned int mdlen;
	double t0, t;
	size_t off;

	/* The expected digest, computed before the clock starts. */
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (off = 0; off < total; off += BENCH_WRITE_BYTES)
		EVP_DigestUpdate(ctx, buf + off % buflen, BENCH_WRITE_BYTES);
	d->alg = OCI_DIGEST_SHA256;
	EVP_DigestFinal_ex(ctx, d->hash, &mdlen);
	EVP_MD_CTX_free(ctx);

	t0 = now_s();
	if (store_upload_new(st, repo, strlen(repo), &up) != 0)
		abort();
	for (off = 0; off < total; off += BENCH_WRITE_BYTES) {
		/* Backpressure as the HTTP layer will apply it. */
		while (store_upload_pending(up) > 64 * MiB) {
			struct timespec ts = { 0, 200000 };

			nanosleep(&ts, NULL);
		}
		if (store_upload_write(up, buf + off % buflen, BENCH_WRITE_BYTES) != 0)
			abort();
	}
	if (store_upload_finish(up, d, total) != 0) {
		fprintf(stderr, "finish failed\n");
		abort();
	}
	t = now_s() - t0;
	store_upload_free(up);
	if (store_blob_stat(st, repo, strlen(repo), d, &info) != 0)
		abort();
	*stored = info.stored;
	return (double)total / 1e6 / t;
}

/*
 * The disk's ceiling for what a durable write must do: write `total` bytes
 * through the page cache into a file beside the store, then fdatasync.
 */
static double
disk_speed(const char *dir, const uint8_t *buf, size_t buflen, size_t total)
{
	char path[4096];
	double t0;
	int fd;

	snprintf(path, sizeof(path), "%s/ceiling.bin", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		abort();
	t0 = now_s();
	for (size_t off = 0; off < total; off += BENCH_WRITE_BYTES)
		if (write(fd, buf + off % buflen, BENCH_WRITE_BYTES) !=
		    (ssize_t)BENCH_WRITE_BYTES)
			abort();
	if (fdatasync(fd) != 0)
		abort();
	t0 = now_s() - t0;
	close(fd);
	unlink(path);
	return (double)total / 1e6 / t0;
}

static double
bench_read(struct store *st, const char *repo, const struct oci_digest *d,
    uint8_t *buf)
{
	struct store_blob_reader *r = NULL;
	uint64_t size, off = 0;
	double t0 = now_s();
	size_t n;

	if (store_blob_reader_open(st, repo, strlen(repo), d, &r) != 0)
		abort();
	size = store_blob_reader_size(r);
	while (off < size) {
		if (store_blob_reader_read(r, off, buf, BENCH_WRITE_BYTES, &n) != 0 ||
		    n == 0)
			abort();
		off += n;
	}
	store_blob_reader_close(r);
	return (double)size / 1e6 / (now_s() - t0);
}

int
main(int argc, char **argv)
{
	size_t size_mib = 1024, patlen = 64 * MiB;
	int rounds = 3;
	size_t batch_mib = 0;
	const char *base = NULL;
	double sha[BENCH_ROUNDS_MAX], wr[BENCH_ROUNDS_MAX], rr[BENCH_ROUNDS_MAX];
	double wt[BENCH_ROUNDS_MAX], rt[BENCH_ROUNDS_MAX], disk[BENCH_ROUNDS_MAX];
	uint64_t stored_raw = 0, stored_text = 0, seed = 42;
	uint8_t *rnd, *text, *buf;
	double msha, mdisk, m;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
			size_mib = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			base = argv[++i];
		else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
			batch_mib = strtoul(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: store_bench [--size MIB] "
			    "[--rounds N] [--dir DIR] [--batch MIB]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > BENCH_ROUNDS_MAX || size_mib < 1) {
		fprintf(stderr, "store_bench: rounds 1..%d, size >= 1\n",
		    BENCH_ROUNDS_MAX);
		return 2;
	}
	if (base != NULL)
		setenv("TMPDIR", base, 1);
	if (patlen > size_mib * MiB)
		patlen = size_mib * MiB;
	rnd = malloc(patlen);
	text = malloc(patlen);
	buf = malloc(BENCH_WRITE_BYTES);
	if (rnd == NULL || text == NULL || buf == NULL)
		return 1;
	tu_fill_random(rnd, patlen, &seed);
	tu_fill_text(text, patlen, &seed);

	for (int r = 0; r < rounds; r++) {
		char *dir = tu_tmpdir();
		struct store_options so = { .path = dir,
		    .flags = STORE_OPEN_CREATE, .batch_bytes = batch_mib * MiB };
		struct store *st = NULL;
		struct oci_digest d1, d2;
		int rc = store_open(&so, &st);

		if (rc != 0) {
			fprintf(stderr, "store_bench: %s: %s\n", dir,
			    store_strerror(rc));
			return 1;
		}
		sha[r] = sha256_speed(rnd, patlen, size_mib * MiB);
		disk[r] = disk_speed(dir, rnd, patlen, size_mib * MiB);
		wr[r] = bench_write(st, "bench/random", rnd, patlen,
		    size_mib * MiB, &d1, &stored_raw);
		rr[r] = bench_read(st, "bench/random", &d1, buf);
		wt[r] = bench_write(st, "bench/text", text, patlen,
		    size_mib * MiB, &d2, &stored_text);
		rt[r] = bench_read(st, "bench/text", &d2, buf);
		store_close(st);
		tu_rmdir(dir);
		fprintf(stderr, "round %d: sha256 %.0f, disk %.0f, write raw %.0f, "
		    "read raw %.0f, write text %.0f, read text %.0f MB/s\n", r + 1,
		    sha[r], disk[r], wr[r], rr[r], wt[r], rt[r]);
	}
	msha = median(sha, rounds);
	mdisk = median(disk, rounds);
	printf("%-34s %10s %10s %10s\n", "figure (median of rounds)", "value",
	    "vs sha256", "vs disk");
	printf("%-34s %7.0f MB/s %9s\n", "sha256 single core", msha, "1.00");
	printf("%-34s %7.0f MB/s %9.2f %10s\n", "disk: write + fdatasync", mdisk,
	    mdisk / msha, "1.00");
	m = median(wr, rounds);
	printf("%-34s %7.0f MB/s %9.2f %10.2f\n", "write incompressible", m,
	    m / msha, m / mdisk);
	printf("tsv\twrite_incompressible_mbps\t%.0f\t%.3f\t%.3f\n", m, m / msha,
	    m / mdisk);
	m = median(rr, rounds);
	printf("%-34s %7.0f MB/s %9.2f\n", "read incompressible (raw chunks)", m,
	    m / msha);
	printf("tsv\tread_raw_mbps\t%.0f\t%.3f\n", m, m / msha);
	m = median(wt, rounds);
	printf("%-34s %7.0f MB/s %9.2f %10.2f\n", "write text-like", m, m / msha,
	    m / mdisk);
	printf("tsv\twrite_text_mbps\t%.0f\t%.3f\t%.3f\n", m, m / msha, m / mdisk);
	m = median(rt, rounds);
	printf("%-34s %7.0f MB/s %9.2f\n", "read text-like (zstd chunks)", m,
	    m / msha);
	printf("tsv\tread_text_mbps\t%.0f\t%.3f\n", m, m / msha);
	printf("%-34s %9.1f %%\n", "stored/size, incompressible",
	    100.0 * (double)stored_raw / (double)(size_mib * MiB));
	printf("%-34s %9.1f %%\n", "stored/size, text-like",
	    100.0 * (double)stored_text / (double)(size_mib * MiB));
	printf("tsv\tsha256_mbps\t%.0f\ntsv\tdisk_mbps\t%.0f\n", msha, mdisk);
	printf("tsv\tstored_pct_text\t%.1f\n",
	    100.0 * (double)stored_text / (double)(size_mib * MiB));
	free(rnd);
	free(text);
	free(buf);
	return 0;
}
