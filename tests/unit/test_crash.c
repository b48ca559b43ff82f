/*
 * Crash safety: a child process pushes blobs, manifests, tags and flushed
 * upload prefixes in a loop and reports each acknowledged operation on a
 * pipe; the parent kills it with SIGKILL at a random moment, reopens the
 * store and checks that everything acknowledged is intact and verifies,
 * that an acknowledged upload resumes to the right digest, and that no
 * blob in the store is partial or corrupt.
 *
 * BERTH_TEST_SEED replays a run; BERTH_CRASH_CYCLES sets the cycle count
 * (default 50).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/store.h"
#include "testutil.h"

#define CRASH_CYCLES_DEFAULT    50
#define CRASH_BLOB_MAX_BYTES    (3u << 19)      /* 1.5 MiB */
#define CRASH_UPLOAD_BYTES      ((size_t)5 << 19)
#define CRASH_KILL_MIN_MS       5
#define CRASH_KILL_SPAN_MS      120
#define ACK_LINE_MAX            256

static const char MT[] = "application/vnd.oci.image.manifest.v1+json";

static void
ack(int fd, const char *fmt, ...)
{
	char line[ACK_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line: atomic on a pipe (n < PIPE_BUF). */
	if (n > 0 && write(fd, line, (size_t)n) != n)
		_exit(3);
}

static void
hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* The upload of cycle c has content derived from (seed, c) alone. */
static void
upload_content(uint64_t seed, int cycle, uint8_t *buf, size_t len)
{
	uint64_t s = seed ^ ((uint64_t)(cycle + 1) * 0x9e3779b97f4a7c15ULL);

	tu_fill_random(buf, len, &s);
}

static void __attribute__((noreturn))
child(const char *dir, uint64_t seed, int cycle, int fd)
{
	struct store *st = tu_open(dir, 0);
	uint64_t s = seed ^ (uint64_t)cycle << 40;
	uint8_t *buf = malloc(CRASH_UPLOAD_BYTES);
	uint8_t *blob = malloc(CRASH_BLOB_MAX_BYTES);
	struct store_upload *up = NULL;
	char idhex[2 * FORMAT_UPLOAD_ID_BYTES + 1];
	char dstr[OCI_DIGEST_STR_BYTES];

	if (st == NULL || buf == NULL || blob == NULL)
		_exit(2);
	/* One resumable upload per cycle, flushed in steps. */
	upload_content(seed, cycle, buf, CRASH_UPLOAD_BYTES);
	if (store_upload_new(st, "crash/upload", 12, &up) != 0)
		_exit(2);
	hex(store_upload_id(up), FORMAT_UPLOAD_ID_BYTES, idhex);
	for (int i = 0;; i++) {
		struct oci_digest d;
		size_t len = (size_t)(tu_rand(&s) % CRASH_BLOB_MAX_BYTES);
		char manifest[512], tag[32];
		struct store_manifest m = { 0 };
		struct store_ref ref;
		uint64_t off = store_upload_offset(up);

		if (off < CRASH_UPLOAD_BYTES) {
			size_t n = CRASH_UPLOAD_BYTES - off < 300001 ?
			    CRASH_UPLOAD_BYTES - off : 300001;

			if (store_upload_write(up, buf + off, n) != 0 ||
			    store_upload_flush(up) != 0)
				_exit(4);
			ack(fd, "U %s %" PRIu64 "\n", idhex, off + n);
		}

		tu_fill_random(blob, len, &s);
		if (tu_put_blob(st, "crash/blobs", blob, len, 65536 + i, &d) != 0)
			_exit(5);
		oci_digest_format(&d, dstr);
		ack(fd, "B %s %zu\n", dstr, len);

		snprintf(manifest, sizeof(manifest), "{\"schemaVersion\":2,"
		    "\"mediaType\":\"%s\",\"layers\":[{\"digest\":\"%s\"}],"
		    "\"n\":\"%d-%d\"}", MT, dstr, cycle, i);
		snprintf(tag, sizeof(tag), "c%d-%d", cycle, i);
		oci_digest_sha256(manifest, strlen(manifest), &m.digest);
		m.data = manifest;
		m.len = strlen(manifest);
		m.media_type = MT;
		m.media_type_len = strlen(MT);
		ref.kind = FORMAT_REF_LAYER;
		ref.digest = d;
		ref.size = len;
		m.refs = &ref;
		m.nrefs = 1;
		if (store_manifest_put(st, "crash/images", 12, &m, tag,
		    strlen(tag)) != 0)
			_exit(6);
		oci_digest_format(&m.digest, dstr);
		ack(fd, "M %s %s\n", dstr, tag);
	}
}

struct verify_ctx {
	struct store *st;
	int blobs;
	int bad;
};

static int
verify_blob(void *arg, const struct store_blob_info *b)
{
	struct verify_ctx *vc = arg;
	struct oci_digest got;
	void *data = NULL;
	size_t len = 0;
	int rc;

	vc->blobs++;
	rc = tu_read_blob(vc->st, NULL, &b->digest, &data, &len, 1 << 20);
	if (rc == 0)
		oci_digest_sha256(data, len, &got);
	if (rc != 0 || len != b->size || !oci_digest_equal(&got, &b->digest)) {
		char d[OCI_DIGEST_STR_BYTES];

		oci_digest_format(&b->digest, d);
		fprintf(stderr, "bad blob %s: %s\n", d, store_strerror(rc));
		vc->bad++;
	}
	free(data);
	return 0;
}

static int
parse_hex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* Checks every acknowledged line of one cycle against the reopened store. */
static void
verify_acks(struct store *st, char *acks, uint64_t seed, int cycle,
    int *nacks)
{
	uint8_t id[FORMAT_UPLOAD_ID_BYTES];
	uint64_t upload_acked = 0;
	bool have_upload = false;
	char *save = NULL;

	for (char *line = strtok_r(acks, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char a[160], b[160];
		struct oci_digest d, got;

		(*nacks)++;
		if (sscanf(line, "%*c %159s %159s", a, b) != 2)
			fail_msg("bad ack line: %s", line);
		if (line[0] == 'U') {
			assert_int_equal(parse_hex(a, id, sizeof(id)), 0);
			upload_acked = strtoull(b, NULL, 10);
			have_upload = true;
			continue;
		}
		assert_int_equal(oci_digest_parse(a, strlen(a), &d), 0);
		if (line[0] == 'B') {
			struct store_blob_info info;

			assert_int_equal(store_blob_stat(st, "crash/blobs", 11, &d,
			    &info), 0);
			assert_int_equal(info.size, strtoull(b, NULL, 10));
		} else if (line[0] == 'M') {
			void *data = NULL;
			size_t len;

			assert_int_equal(store_manifest_get(st, "crash/images", 12,
			    &d, &data, &len, NULL), 0);
			oci_digest_sha256(data, len, &got);
			assert_true(oci_digest_equal(&got, &d));
			free(data);
			assert_int_equal(store_tag_get(st, "crash/images", 12, b,
			    strlen(b), &got), 0);
			assert_true(oci_digest_equal(&got, &d));
		} else {
			fail_msg("unknown ack: %s", line);
		}
	}
	if (have_upload) {
		struct store_upload *up = NULL;
		uint8_t *buf = malloc(CRASH_UPLOAD_BYTES);
		struct oci_digest want;
		uint64_t off;

		assert_non_null(buf);
		upload_content(seed, cycle, buf, CRASH_UPLOAD_BYTES);
		oci_digest_sha256(buf, CRASH_UPLOAD_BYTES, &want);
		assert_int_equal(store_upload_resume(st, id, &up), 0);
		off = store_upload_offset(up);
		/* A later flush may have committed without its ack. */
		assert_true(off >= upload_acked);
		assert_true(off <= CRASH_UPLOAD_BYTES);
		assert_int_equal(store_upload_write(up, buf + off,
		    CRASH_UPLOAD_BYTES - off), 0);
		assert_int_equal(store_upload_finish(up, &want, CRASH_UPLOAD_BYTES), 0);
		store_upload_free(up);
		free(buf);
	}
}

static void
test_kill9_cycles(void **state)
{
	const char *env = getenv("BERTH_CRASH_CYCLES");
	int cycles = env != NULL ? atoi(env) : CRASH_CYCLES_DEFAULT;
	uint64_t seed = tu_seed("test_crash"), rs = seed;
	char *dir = tu_tmpdir();
	int total_acks = 0, total_blobs = 0;

	(void)state;
	for (int cycle = 0; cycle < cycles; cycle++) {
		struct verify_ctx vc = { 0 };
		struct timespec ts;
		size_t cap = 1 << 16, used = 0;
		char *acks = malloc(cap);
		int fds[2], status;
		long ms;
		ssize_t n;
		pid_t pid;

		assert_non_null(acks);
		assert_int_equal(pipe(fds), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			child(dir, seed, cycle, fds[1]);
		}
		close(fds[1]);
		ms = CRASH_KILL_MIN_MS + (long)(tu_rand(&rs) % CRASH_KILL_SPAN_MS);
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			fail_msg("cycle %d: child exited with %d before the kill",
			    cycle, WEXITSTATUS(status));
		while ((n = read(fds[0], acks + used, cap - used - 1)) > 0) {
			used += (size_t)n;
			if (cap - used < 1024) {
				cap *= 2;
				acks = realloc(acks, cap);
				assert_non_null(acks);
			}
		}
		close(fds[0]);
		acks[used] = '\0';

		vc.st = tu_open(dir, 0);
		assert_non_null(vc.st);
		verify_acks(vc.st, acks, seed, cycle, &total_acks);
		assert_int_equal(store_blob_foreach(vc.st, verify_blob, &vc), 0);
		assert_int_equal(vc.bad, 0);
		total_blobs = vc.blobs;
		store_close(vc.st);
		free(acks);
	}
	printf("# %d cycles, %d acknowledged operations checked, %d blobs "
	    "verified at the end\n", cycles, total_acks, total_blobs);
	assert_true(cycles == 0 || total_acks > 0);
	tu_rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill9_cycles),
	};

	return cmocka_run_group_tests_name("crash", tests, NULL, NULL);
}
