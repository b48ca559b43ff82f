/*
 * The store API against a real LMDB file in a temporary folder: every call,
 * success and error paths.
 */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <xxhash.h>

#include "berth/store.h"
#include "testutil.h"

#define S(x) x, strlen(x)
#define MiB ((size_t)1 << 20)

static uint64_t seed_state;

struct fixture {
	char *dir;
	struct store *st;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = tu_tmpdir();
	f->st = tu_open(f->dir, 0);
	if (f->st == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	tu_rmdir(f->dir);
	free(f);
	return 0;
}

static void
reopen(struct fixture *f)
{
	store_close(f->st);
	f->st = tu_open(f->dir, 0);
	assert_non_null(f->st);
}

static uint8_t *
random_bytes(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	tu_fill_random(p, len, &seed_state);
	return p;
}

static void
assert_blob_equals(struct store *st, const char *repo,
    const struct oci_digest *d, const uint8_t *want, size_t len, size_t step)
{
	void *got = NULL;
	size_t n = 0;

	assert_int_equal(tu_read_blob(st, repo, d, &got, &n, step), 0);
	assert_int_equal(n, len);
	assert_memory_equal(got, want, len);
	free(got);
}

/* ---- environment ------------------------------------------------------- */

static void
test_open_missing_and_foreign(void **state)
{
	struct store_options o = { 0 };
	struct store *st = NULL;
	char *dir = tu_tmpdir();
	char path[4096];
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/none", dir);
	o.path = path;
	assert_int_equal(store_open(&o, &st), STORE_E_NOTFOUND);
	assert_null(st);
	o.flags = STORE_OPEN_READONLY | STORE_OPEN_CREATE;
	assert_int_equal(store_open(&o, &st), STORE_E_INVALID);

	/* A folder holding some other file named data.mdb. */
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not an lmdb file, just text....", 31), 31);
	for (int i = 0; i < 400; i++)
		assert_int_equal(write(fd, "0123456789", 10), 10);
	close(fd);
	o.path = dir;
	o.flags = STORE_OPEN_CREATE;
	assert_int_equal(store_open(&o, &st), STORE_E_NOT_STORE);
	assert_null(st);
	tu_rmdir(dir);
}

static void
test_open_existing_without_create(void **state)
{
	struct fixture *f = *state;
	struct store_options o = { .path = f->dir };
	struct store *st = NULL;

	assert_int_equal(store_format_version(f->st), FORMAT_VERSION);
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(store_open(&o, &st), 0);
	assert_int_equal(store_format_version(st), FORMAT_VERSION);
	f->st = st;
}

static void
test_format_newer_refused(void **state)
{
	struct fixture *f = *state;
	struct store_options o = { .path = f->dir, .flags = STORE_OPEN_CREATE };
	struct store *st = NULL;

	store_close(f->st);
	f->st = NULL;
	assert_int_equal(tu_stamp_version(f->dir, FORMAT_VERSION + 1), 0);
	assert_int_equal(store_open(&o, &st), STORE_E_FORMAT_NEWER);
	o.flags = STORE_OPEN_UPGRADE;
	assert_int_equal(store_open(&o, &st), STORE_E_FORMAT_NEWER);
	o.flags = STORE_OPEN_READONLY;
	assert_int_equal(store_open(&o, &st), STORE_E_FORMAT_NEWER);
	assert_null(st);
	/* Refusing changed nothing: the stamp is still the newer one. */
	o.flags = 0;
	assert_int_equal(store_open(&o, &st), STORE_E_FORMAT_NEWER);
	assert_int_equal(tu_stamp_version(f->dir, FORMAT_VERSION), 0);
	f->st = tu_open(f->dir, 0);
	assert_non_null(f->st);
}

static void
test_format_older_needs_upgrade(void **state)
{
	struct fixture *f = *state;
	struct store_options o = { .path = f->dir };
	struct store *st = NULL;

	store_close(f->st);
	f->st = NULL;
	assert_int_equal(tu_stamp_version(f->dir, FORMAT_VERSION - 1), 0);
	assert_int_equal(store_open(&o, &st), STORE_E_FORMAT_OLD);
	o.flags = STORE_OPEN_READONLY;
	assert_int_equal(store_open(&o, &st), STORE_E_FORMAT_OLD);
	/* Format 1 is the first: there is nothing older to upgrade from. */
	o.flags = STORE_OPEN_UPGRADE;
	assert_int_equal(store_open(&o, &st), STORE_E_FORMAT_OLD);
	assert_null(st);
	assert_int_equal(tu_stamp_version(f->dir, FORMAT_VERSION), 0);
	f->st = tu_open(f->dir, 0);
	assert_non_null(f->st);
}

/*
 * A read-only handle in another process, as a tool beside the server: LMDB
 * must not be opened twice in one process, so the reader is a child.
 */
static void
test_readonly_handle(void **state)
{
	struct fixture *f = *state;
	struct oci_digest d;
	uint8_t *data = random_bytes(5000);
	int status;
	pid_t pid;

	assert_int_equal(tu_put_blob(f->st, "ro/test", data, 5000, 777, &d), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store_options o = { .path = f->dir,
		    .flags = STORE_OPEN_READONLY };
		struct store *ro = NULL;
		struct store_upload *up = NULL;
		struct store_blob_info info;
		void *got = NULL;
		size_t n = 0;

		if (store_open(&o, &ro) != 0)
			_exit(10);
		if (store_blob_stat(ro, S("ro/test"), &d, &info) != 0 ||
		    info.size != 5000)
			_exit(11);
		if (tu_read_blob(ro, "ro/test", &d, &got, &n, 1000) != 0 ||
		    n != 5000 || memcmp(got, data, n) != 0)
			_exit(12);
		if (store_upload_new(ro, S("ro/test"), &up) != STORE_E_READONLY ||
		    store_blob_delete(ro, &d) != STORE_E_READONLY)
			_exit(13);
		store_close(ro);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(data);
}

static void
test_refused_open_changes_nothing(void **state)
{
	struct fixture *f = *state;
	struct store_options o = { .path = f->dir };
	struct store *st = NULL;
	char path[4096];
	struct stat before, after;
	char *empty = tu_tmpdir();

	store_close(f->st);
	f->st = NULL;
	assert_int_equal(tu_stamp_version(f->dir, FORMAT_VERSION + 1), 0);
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	assert_int_equal(stat(path, &before), 0);
	o.flags = STORE_OPEN_CREATE | STORE_OPEN_UPGRADE;
	assert_int_equal(store_open(&o, &st), STORE_E_FORMAT_NEWER);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(before.st_size, after.st_size);
	assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
	assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	assert_int_equal(tu_stamp_version(f->dir, FORMAT_VERSION), 0);
	f->st = tu_open(f->dir, 0);
	assert_non_null(f->st);

	/* An empty folder opened without create: refused, left empty. */
	o.path = empty;
	o.flags = 0;
	assert_int_equal(store_open(&o, &st), STORE_E_NOT_STORE);
	snprintf(path, sizeof(path), "%s/data.mdb", empty);
	assert_int_not_equal(stat(path, &after), 0);
	o.flags = STORE_OPEN_READONLY;
	assert_int_equal(store_open(&o, &st), STORE_E_NOT_STORE);
	assert_null(st);
	tu_rmdir(empty);
}

/* ---- uploads ----------------------------------------------------------- */

static void
test_upload_small(void **state)
{
	struct fixture *f = *state;
	struct store_blob_info info;
	struct oci_digest d;

	assert_int_equal(tu_put_blob(f->st, "lib/small", "hello", 5, 5, &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("lib/small"), &d, &info), 0);
	assert_int_equal(info.size, 5);
	assert_int_equal(info.nchunks, 1);
	assert_true(oci_digest_equal(&info.digest, &d));
	assert_blob_equals(f->st, "lib/small", &d, (const uint8_t *)"hello", 5, 2);
}

static void
test_upload_empty_blob(void **state)
{
	struct fixture *f = *state;
	struct store_blob_info info;
	struct oci_digest d;
	struct store_blob_reader *r = NULL;
	uint8_t b;
	size_t n = 99;

	assert_int_equal(tu_put_blob(f->st, "lib/empty", "", 0, 1, &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("lib/empty"), &d, &info), 0);
	assert_int_equal(info.size, 0);
	assert_int_equal(info.nchunks, 0);
	assert_int_equal(store_blob_reader_open(f->st, S("lib/empty"), &d, &r), 0);
	assert_int_equal(store_blob_reader_read(r, 0, &b, 1, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_blob_reader_read(r, 1, &b, 1, &n), STORE_E_RANGE);
	store_blob_reader_close(r);
}

static void
test_upload_multichunk_and_ranges(void **state)
{
	struct fixture *f = *state;
	size_t len = 3 * MiB + MiB / 2 + 13;
	uint8_t *data = random_bytes(len), *buf = malloc(len);
	struct store_blob_reader *r = NULL;
	struct store_blob_info info;
	struct oci_digest d;
	size_t n;

	assert_int_equal(tu_put_blob(f->st, "big/one", data, len, 65537, &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("big/one"), &d, &info), 0);
	assert_int_equal(info.size, len);
	assert_int_equal(info.nchunks, (len + FORMAT_CHUNK_RAW_MAX - 1) /
	    FORMAT_CHUNK_RAW_MAX);
	/* Random data stays raw: stored equals size. */
	assert_int_equal(info.stored, len);
	assert_blob_equals(f->st, "big/one", &d, data, len, len);
	assert_blob_equals(f->st, "big/one", &d, data, len, 4096 + 7);

	assert_int_equal(store_blob_reader_open(f->st, S("big/one"), &d, &r), 0);
	assert_int_equal(store_blob_reader_size(r), len);
	/* Ranges straddling chunk boundaries, and the last byte. */
	for (int i = 0; i < 200; i++) {
		uint64_t off = tu_rand(&seed_state) % len;
		size_t want = 1 + tu_rand(&seed_state) % (2 * MiB);

		assert_int_equal(store_blob_reader_read(r, off, buf, want, &n), 0);
		assert_int_equal(n, want < len - off ? want : len - off);
		assert_memory_equal(buf, data + off, n);
	}
	assert_int_equal(store_blob_reader_read(r, FORMAT_CHUNK_RAW_MAX - 1, buf, 2,
	    &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(buf, data + FORMAT_CHUNK_RAW_MAX - 1, 2);
	assert_int_equal(store_blob_reader_read(r, len - 1, buf, 10, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(buf[0], data[len - 1]);
	assert_int_equal(store_blob_reader_read(r, len, buf, 10, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_blob_reader_read(r, len + 1, buf, 10, &n),
	    STORE_E_RANGE);
	store_blob_reader_close(r);
	free(data);
	free(buf);
}

static void
test_upload_digest_mismatch(void **state)
{
	struct fixture *f = *state;
	struct store_upload *up = NULL, *again = NULL;
	struct store_blob_info info;
	struct store_stats s;
	struct oci_digest right, wrong;
	uint8_t *data = random_bytes(2 * MiB);

	oci_digest_sha256(data, 2 * MiB, &right);
	oci_digest_sha256(data, 2 * MiB - 1, &wrong);
	assert_int_equal(store_upload_new(f->st, S("bad/digest"), &up), 0);
	assert_int_equal(store_upload_write(up, data, 2 * MiB), 0);
	assert_int_equal(store_upload_finish(up, &wrong, UINT64_MAX), STORE_E_DIGEST);
	assert_int_equal(store_blob_stat(f->st, NULL, 0, &wrong, &info),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_blob_stat(f->st, NULL, 0, &right, &info),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_stats_get(f->st, &s), 0);
	assert_int_equal(s.blobs, 0);
	/* Wrong size, right digest: also refused. */
	assert_int_equal(store_upload_finish(up, &right, 2 * MiB + 1), STORE_E_SIZE);
	assert_int_equal(store_blob_stat(f->st, NULL, 0, &right, &info),
	    STORE_E_NOTFOUND);
	/* The upload is still open and can finish correctly. */
	assert_int_equal(store_upload_finish(up, &right, 2 * MiB), 0);
	assert_int_equal(store_blob_stat(f->st, S("bad/digest"), &right, &info), 0);
	/* Once finished the upload is gone. */
	assert_int_equal(store_upload_write(up, "x", 1), STORE_E_NOTFOUND);
	assert_int_equal(store_upload_finish(up, &right, 2 * MiB),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_upload_resume(f->st, store_upload_id(up), &again),
	    STORE_E_NOTFOUND);
	assert_null(again);
	store_upload_free(up);
	free(data);
}

/*
 * Verify-only uploads (a monolithic PUT of a blob already stored): the
 * bytes are hashed, not stored; finish links the stored blob, refuses a
 * mismatch, and fails if the blob went away meanwhile.
 */
static void
test_upload_verify_only(void **state)
{
	struct fixture *f = *state;
	struct store_upload *up = NULL, *again = NULL;
	struct store_blob_info info;
	struct store_stats s0, s1;
	struct oci_digest d;
	uint8_t *data = random_bytes(3 * MiB);
	void *back = NULL;
	size_t len = 0;

	assert_int_equal(tu_put_blob(f->st, "v/first", data, 3 * MiB, MiB, &d), 0);
	assert_int_equal(store_stats_get(f->st, &s0), 0);
	/* Only before the first byte. */
	assert_int_equal(store_upload_new(f->st, S("v/late"), &up), 0);
	assert_int_equal(store_upload_write(up, data, 1), 0);
	assert_int_equal(store_upload_verify_only(up), STORE_E_INVALID);
	assert_int_equal(store_upload_cancel(up), 0);
	store_upload_free(up);
	/* The same bytes again: linked, nothing more stored. */
	assert_int_equal(store_upload_new(f->st, S("v/second"), &up), 0);
	assert_int_equal(store_upload_verify_only(up), 0);
	assert_int_equal(store_upload_write(up, data, 3 * MiB), 0);
	assert_int_equal(store_upload_finish(up, &d, 3 * MiB), 0);
	store_upload_free(up);
	assert_int_equal(store_blob_stat(f->st, S("v/second"), &d, &info), 0);
	assert_int_equal(info.size, 3 * MiB);
	assert_int_equal(store_stats_get(f->st, &s1), 0);
	assert_int_equal(s1.blobs, s0.blobs);
	assert_int_equal(s1.chunks, s0.chunks);
	assert_int_equal(tu_read_blob(f->st, "v/second", &d, &back, &len, MiB), 0);
	assert_int_equal(len, 3 * MiB);
	assert_memory_equal(back, data, len);
	free(back);
	/* Other bytes under the stored digest: refused, nothing linked. */
	assert_int_equal(store_upload_new(f->st, S("v/wrong"), &up), 0);
	assert_int_equal(store_upload_verify_only(up), 0);
	data[0] ^= 1;
	assert_int_equal(store_upload_write(up, data, 3 * MiB), 0);
	assert_int_equal(store_upload_finish(up, &d, UINT64_MAX), STORE_E_DIGEST);
	data[0] ^= 1;
	assert_int_equal(store_upload_cancel(up), 0);
	store_upload_free(up);
	assert_int_equal(store_blob_stat(f->st, S("v/wrong"), &d, &info),
	    STORE_E_NOTFOUND);
	/* The blob deleted while the bytes were on their way: not found. */
	assert_int_equal(store_upload_new(f->st, S("v/gone"), &up), 0);
	assert_int_equal(store_upload_verify_only(up), 0);
	assert_int_equal(store_upload_write(up, data, 3 * MiB), 0);
	assert_int_equal(store_blob_delete(f->st, &d), 0);
	assert_int_equal(store_upload_finish(up, &d, UINT64_MAX), STORE_E_NOTFOUND);
	/* ... and the upload is removed from the store with it. */
	assert_int_equal(store_upload_resume(f->st, store_upload_id(up), &again),
	    STORE_E_NOTFOUND);
	store_upload_free(up);
	assert_int_equal(store_blob_stat(f->st, NULL, 0, &d, &info),
	    STORE_E_NOTFOUND);
	free(data);
}

/* The process's resident file-backed pages, in KiB (/proc/self/status). */
static long
rss_file_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[128];
	long kib = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "RssFile: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/*
 * Reading a blob and deleting its chunks (a deduplicated upload) leave
 * the blob's pages in the page cache, not mapped into the process: a
 * 32 MiB blob must not add anywhere near 32 MiB of resident file pages.
 */
static void
test_reads_and_deletes_do_not_map_blobs(void **state)
{
	struct fixture *f = *state;
	const size_t len = 128 * MiB;
	uint8_t *data = random_bytes(len);
	struct store_blob_reader *r = NULL;
	struct oci_digest d;
	uint64_t off = 0;
	long before, after;

	assert_int_equal(tu_put_blob(f->st, "m/first", data, len, MiB, &d), 0);
	before = rss_file_kib();
	assert_true(before >= 0);
	assert_int_equal(store_blob_reader_open(f->st, S("m/first"), &d, &r), 0);
	while (off < len) {
		const uint8_t *p;
		void *chunk;
		size_t n;

		assert_int_equal(store_blob_reader_take(r, off, MiB, &chunk, &p,
		    &n), 0);
		assert_true(n > 0);
		assert_memory_equal(p, data + off, n);
		free(chunk);
		off += n;
	}
	store_blob_reader_close(r);
	after = rss_file_kib();
	assert_true(after - before < 8 * 1024);
	/*
	 * The same bytes again: deduplicated, the upload's chunks deleted.
	 * Deleting maps each run's first page and the kernel's window around
	 * it, which reaches back into the run before; what stays mapped must
	 * not grow with the blob (it was ~40 KiB per chunk here and in
	 * berthd). The chunks are written and the writer left idle first, as
	 * between a client's last PATCH and its PUT.
	 */
	{
		struct store_upload *up = NULL;

		assert_int_equal(store_upload_new(f->st, S("m/second"), &up), 0);
		assert_int_equal(store_upload_write(up, data, len), 0);
		assert_int_equal(store_upload_flush(up), 0);
		sleep(1);
		before = rss_file_kib();
		assert_int_equal(store_upload_finish(up, &d, len), 0);
		after = rss_file_kib();
		store_upload_free(up);
	}
	if (after - before >= 1024)
		fail_msg("deleting 128 chunks left %ld KiB mapped", after - before);
	free(data);
}

static void
test_upload_cancel(void **state)
{
	struct fixture *f = *state;
	struct store_upload *up = NULL, *again = NULL;
	struct store_stats s;
	uint8_t id[FORMAT_UPLOAD_ID_BYTES];
	uint8_t *data = random_bytes(3 * MiB);

	assert_int_equal(store_upload_new(f->st, S("cancel/me"), &up), 0);
	memcpy(id, store_upload_id(up), sizeof(id));
	assert_int_equal(store_upload_write(up, data, 3 * MiB), 0);
	assert_int_equal(store_upload_flush(up), 0);
	assert_int_equal(store_stats_get(f->st, &s), 0);
	assert_int_equal(s.uploads, 1);
	assert_true(s.chunks >= 3);
	assert_int_equal(store_upload_cancel(up), 0);
	store_upload_free(up);
	assert_int_equal(store_stats_get(f->st, &s), 0);
	assert_int_equal(s.uploads, 0);
	assert_int_equal(s.chunks, 0);
	assert_int_equal(store_upload_resume(f->st, id, &again), STORE_E_NOTFOUND);
	assert_null(again);
	free(data);
}

static void
test_upload_resume_after_restart(void **state)
{
	struct fixture *f = *state;
	size_t len = 5 * MiB / 2 + 12345, half = len / 2 + 3;
	uint8_t *data = random_bytes(len);
	uint8_t id[FORMAT_UPLOAD_ID_BYTES];
	struct store_upload *up = NULL;
	struct store_blob_info info;
	struct oci_digest d;
	size_t repolen;
	const char *repo;

	oci_digest_sha256(data, len, &d);
	assert_int_equal(store_upload_new(f->st, S("resume/me"), &up), 0);
	memcpy(id, store_upload_id(up), sizeof(id));
	/* Odd-sized writes so the hash state holds a partial block. */
	assert_int_equal(store_upload_write(up, data, 1001), 0);
	assert_int_equal(store_upload_write(up, data + 1001, half - 1001), 0);
	assert_int_equal(store_upload_flush(up), 0);
	assert_int_equal(store_upload_offset(up), half);
	store_upload_free(up);
	up = NULL;

	reopen(f);
	assert_int_equal(store_upload_resume(f->st, id, &up), 0);
	assert_int_equal(store_upload_offset(up), half);
	repo = store_upload_repo(up, &repolen);
	assert_int_equal(repolen, strlen("resume/me"));
	assert_memory_equal(repo, "resume/me", repolen);
	assert_int_equal(store_upload_write(up, data + half, len - half), 0);
	assert_int_equal(store_upload_finish(up, &d, len), 0);
	store_upload_free(up);
	assert_int_equal(store_blob_stat(f->st, S("resume/me"), &d, &info), 0);
	assert_int_equal(info.size, len);
	assert_blob_equals(f->st, "resume/me", &d, data, len, MiB);
	free(data);
}

static void
test_upload_unflushed_bytes_not_resumed(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = random_bytes(MiB);
	uint8_t id[FORMAT_UPLOAD_ID_BYTES];
	struct store_upload *up = NULL;

	assert_int_equal(store_upload_new(f->st, S("resume/partial"), &up), 0);
	memcpy(id, store_upload_id(up), sizeof(id));
	assert_int_equal(store_upload_write(up, data, 1000), 0);
	assert_int_equal(store_upload_flush(up), 0);
	/* Staged but never flushed: not part of the committed state. */
	assert_int_equal(store_upload_write(up, data + 1000, 5000), 0);
	assert_int_equal(store_upload_offset(up), 6000);
	store_upload_free(up);
	up = NULL;
	reopen(f);
	assert_int_equal(store_upload_resume(f->st, id, &up), 0);
	assert_int_equal(store_upload_offset(up), 1000);
	store_upload_free(up);
	free(data);
}

static void
test_upload_dedup(void **state)
{
	struct fixture *f = *state;
	size_t len = 2 * MiB + 99;
	uint8_t *data = random_bytes(len);
	struct store_blob_info a, b;
	struct store_stats s1, s2;
	struct oci_digest d1, d2;

	assert_int_equal(tu_put_blob(f->st, "dedup/a", data, len, MiB, &d1), 0);
	assert_int_equal(store_stats_get(f->st, &s1), 0);
	assert_int_equal(store_blob_stat(f->st, S("dedup/a"), &d1, &a), 0);
	assert_int_equal(tu_put_blob(f->st, "dedup/b", data, len, 333333, &d2), 0);
	assert_true(oci_digest_equal(&d1, &d2));
	assert_int_equal(store_stats_get(f->st, &s2), 0);
	/* No copy: same number of chunks and blobs, one more link. */
	assert_int_equal(s2.blobs, 1);
	assert_int_equal(s2.chunks, s1.chunks);
	assert_int_equal(s2.links, s1.links + 1);
	assert_int_equal(store_blob_stat(f->st, S("dedup/b"), &d1, &b), 0);
	/* Same record, same set; only the grace period starts again. */
	assert_int_equal(a.size, b.size);
	assert_int_equal(a.nchunks, b.nchunks);
	assert_true(b.created >= a.created);
	assert_blob_equals(f->st, "dedup/b", &d1, data, len, MiB);
	free(data);
}

static void
test_compression_choice(void **state)
{
	struct fixture *f = *state;
	size_t len = 4 * MiB;
	uint8_t *text = malloc(len);
	struct store_blob_info info;
	struct oci_digest d;

	tu_fill_text(text, len, &seed_state);
	assert_int_equal(tu_put_blob(f->st, "zst/text", text, len, 100000, &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("zst/text"), &d, &info), 0);
	assert_int_equal(info.size, len);
	assert_true(info.stored * 100 <= info.size * 30);
	assert_blob_equals(f->st, "zst/text", &d, text, len, 77777);

	/* The same text behind a gzip magic is treated as compressed: raw. */
	text[0] = 0x1f;
	text[1] = 0x8b;
	assert_int_equal(tu_put_blob(f->st, "zst/gz", text, len, MiB, &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("zst/gz"), &d, &info), 0);
	assert_int_equal(info.stored, len);
	assert_blob_equals(f->st, "zst/gz", &d, text, len, MiB);
	/* zstd frame magic too. */
	memcpy(text, "\x28\xb5\x2f\xfd", 4);
	assert_int_equal(tu_put_blob(f->st, "zst/zst", text, len, MiB, &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("zst/zst"), &d, &info), 0);
	assert_int_equal(info.stored, len);
	free(text);
}

/*
 * Each chunk is judged on its own: incompressible chunks are stored raw,
 * and a compressible chunk right after one is still compressed.
 */
static void
test_compression_per_chunk(void **state)
{
	struct fixture *f = *state;
	size_t len = 8 * MiB;
	uint8_t *data = random_bytes(len);
	uint8_t *text = malloc(MiB);
	struct store_blob_info info;
	struct oci_digest d;

	assert_int_equal(tu_put_blob(f->st, "zst/random", data, len, MiB, &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("zst/random"), &d, &info), 0);
	assert_int_equal(info.stored, len);
	assert_blob_equals(f->st, "zst/random", &d, data, len, MiB);

	/* Random and text MiBs in turn; no magic in front. */
	assert_non_null(text);
	tu_fill_text(text, MiB, &seed_state);
	for (size_t off = MiB; off < len; off += 2 * MiB)
		memcpy(data + off, text, MiB);
	data[0] = 0;
	assert_int_equal(tu_put_blob(f->st, "zst/mixed", data, len, 300000, &d),
	    0);
	assert_int_equal(store_blob_stat(f->st, S("zst/mixed"), &d, &info), 0);
	/* Half the bytes are text that zstd shrinks to under a third. */
	assert_true(info.stored * 100 <= info.size * 70);
	assert_blob_equals(f->st, "zst/mixed", &d, data, len, 123457);
	free(text);
	free(data);
}

static void
test_upload_async_write(void **state)
{
	struct fixture *f = *state;
	size_t len = 8 * MiB;
	uint8_t *data = random_bytes(len);
	struct store_upload *up = NULL;
	struct oci_digest d;

	oci_digest_sha256(data, len, &d);
	assert_int_equal(store_upload_new(f->st, S("async/one"), &up), 0);
	for (size_t off = 0; off < len; off += MiB)
		assert_int_equal(store_upload_write(up, data + off, MiB), 0);
	/* Writes never wait: pending is what the writer has yet to commit. */
	assert_true(store_upload_pending(up) <= len);
	assert_int_equal(store_upload_flush(up), 0);
	assert_int_equal(store_upload_pending(up), 0);
	assert_int_equal(store_upload_finish(up, &d, len), 0);
	store_upload_free(up);
	assert_blob_equals(f->st, "async/one", &d, data, len, 3 * MiB);
	free(data);
}

static void
test_upload_two_handles_conflict(void **state)
{
	struct fixture *f = *state;
	size_t len = 3 * MiB;
	uint8_t *data = random_bytes(len);
	struct store_upload *a = NULL, *b = NULL;
	struct oci_digest d;

	oci_digest_sha256(data, len, &d);
	assert_int_equal(store_upload_new(f->st, S("two/handles"), &a), 0);
	assert_int_equal(store_upload_write(a, data, MiB), 0);
	assert_int_equal(store_upload_flush(a), 0);
	/* A second handle on the same upload, as a retried request makes. */
	assert_int_equal(store_upload_resume(f->st, store_upload_id(a), &b), 0);
	assert_int_equal(store_upload_offset(b), MiB);
	assert_int_equal(store_upload_write(a, data + MiB, MiB), 0);
	assert_int_equal(store_upload_flush(a), 0);
	/* b is behind what is stored: it may not write over a's bytes. */
	assert_int_equal(store_upload_write(b, data + MiB, 7), 0);
	assert_int_equal(store_upload_flush(b), STORE_E_CONFLICT);
	assert_int_equal(store_upload_write(b, data, 1), STORE_E_CONFLICT);
	store_upload_free(b);
	assert_int_equal(store_upload_write(a, data + 2 * MiB, MiB), 0);
	assert_int_equal(store_upload_finish(a, &d, len), 0);
	/* After the finish, a stale handle cannot bring the upload back. */
	assert_int_equal(store_upload_resume(f->st, store_upload_id(a), &b),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_upload_flush(a), STORE_E_NOTFOUND);
	store_upload_free(a);
	assert_blob_equals(f->st, "two/handles", &d, data, len, MiB);
	free(data);
}

static void
test_upload_no_bytes_while_finishing(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = random_bytes(2 * MiB);
	struct store_upload *up = NULL;
	struct store_blob_info info;
	struct oci_digest d;
	int rc;

	oci_digest_sha256(data, 2 * MiB, &d);
	assert_int_equal(store_upload_new(f->st, S("finishing"), &up), 0);
	assert_int_equal(store_upload_write(up, data, 2 * MiB), 0);
	assert_int_equal(store_upload_finish_async(up, &d, 2 * MiB, NULL, NULL), 0);
	/* Either still finishing or already finished: never accepted. */
	rc = store_upload_write(up, data, 10);
	assert_true(rc == STORE_E_BUSY || rc == STORE_E_NOTFOUND);
	store_upload_free(up);  /* waits for the finish */
	assert_int_equal(store_blob_stat(f->st, S("finishing"), &d, &info), 0);
	assert_int_equal(info.size, 2 * MiB);
	free(data);
}

static void
test_upload_invalid(void **state)
{
	struct fixture *f = *state;
	struct store_upload *up = NULL;
	struct oci_digest d = { 0 };
	uint8_t id[FORMAT_UPLOAD_ID_BYTES] = { 1, 2, 3 };

	assert_int_equal(store_upload_new(f->st, S("Bad/Name"), &up),
	    STORE_E_INVALID);
	assert_null(up);
	assert_int_equal(store_upload_new(f->st, S(""), &up), STORE_E_INVALID);
	assert_int_equal(store_upload_resume(f->st, id, &up), STORE_E_NOTFOUND);
	assert_int_equal(store_upload_new(f->st, S("ok"), &up), 0);
	/* A digest with no algorithm set is not a digest. */
	assert_int_equal(store_upload_finish(up, &d, UINT64_MAX), STORE_E_INVALID);
	assert_int_equal(store_upload_finish(up, NULL, UINT64_MAX), STORE_E_INVALID);
	assert_int_equal(store_upload_cancel(up), 0);
	assert_int_equal(store_upload_cancel(up), STORE_E_NOTFOUND);
	store_upload_free(up);
}

/* ---- blobs ------------------------------------------------------------- */

static void
test_blob_links_and_mount(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = random_bytes(10000);
	struct store_blob_info info;
	struct oci_digest d, other;

	assert_int_equal(tu_put_blob(f->st, "src/repo", data, 10000, 4096, &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("dst/repo"), &d, &info),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_blob_reader_open(f->st, S("dst/repo"), &d,
	    &(struct store_blob_reader *){ NULL }), STORE_E_NOTFOUND);
	/* Cross-repository mount. */
	assert_int_equal(store_blob_link(f->st, S("dst/repo"), &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("dst/repo"), &d, &info), 0);
	assert_blob_equals(f->st, "dst/repo", &d, data, 10000, 10000);
	assert_int_equal(store_blob_unlink(f->st, S("dst/repo"), &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("dst/repo"), &d, &info),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_blob_unlink(f->st, S("dst/repo"), &d),
	    STORE_E_NOTFOUND);
	/* Unlinking one repository leaves the blob to the others. */
	assert_int_equal(store_blob_stat(f->st, S("src/repo"), &d, &info), 0);
	/* Mounting what does not exist fails. */
	oci_digest_sha256("nope", 4, &other);
	assert_int_equal(store_blob_link(f->st, S("dst/repo"), &other),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_blob_link(f->st, S("BAD"), &d), STORE_E_INVALID);
	free(data);
}

static void
test_blob_delete(void **state)
{
	struct fixture *f = *state;
	size_t len = 3 * MiB;
	uint8_t *data = random_bytes(len);
	struct store_blob_info info;
	struct store_stats s;
	struct oci_digest d;

	assert_int_equal(tu_put_blob(f->st, "del/a", data, len, MiB, &d), 0);
	assert_int_equal(store_blob_link(f->st, S("del/b"), &d), 0);
	assert_int_equal(store_blob_delete(f->st, &d), 0);
	assert_int_equal(store_blob_stat(f->st, NULL, 0, &d, &info),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_blob_stat(f->st, S("del/b"), &d, &info),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_stats_get(f->st, &s), 0);
	assert_int_equal(s.blobs, 0);
	assert_int_equal(s.chunks, 0);
	assert_int_equal(s.links, 0);
	assert_int_equal(store_blob_delete(f->st, &d), STORE_E_NOTFOUND);
	/* A re-push after delete works. */
	assert_int_equal(tu_put_blob(f->st, "del/a", data, len, MiB, &d), 0);
	assert_blob_equals(f->st, "del/a", &d, data, len, MiB);
	free(data);
}

static void
test_blob_reader_survives_delete(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = random_bytes(2 * MiB), buf[100];
	struct store_blob_reader *r = NULL;
	struct oci_digest d;
	size_t n;

	assert_int_equal(tu_put_blob(f->st, "gone/soon", data, 2 * MiB, MiB, &d), 0);
	assert_int_equal(store_blob_reader_open(f->st, S("gone/soon"), &d, &r), 0);
	assert_int_equal(store_blob_delete(f->st, &d), 0);
	/* The next read sees the deletion, cleanly. */
	assert_int_equal(store_blob_reader_read(r, 0, buf, sizeof(buf), &n),
	    STORE_E_NOTFOUND);
	store_blob_reader_close(r);
	free(data);
}

struct collect {
	int count;
	struct oci_digest last;
};

static int
collect_blob(void *arg, const struct store_blob_info *b)
{
	struct collect *c = arg;

	c->count++;
	c->last = b->digest;
	return 0;
}

/* Readers hold no LMDB reader slot between reads. */
static void
test_many_open_readers(void **state)
{
	struct fixture *f = *state;
	enum { NREADERS = 1500 };
	struct store_blob_reader **r = calloc(NREADERS, sizeof(*r));
	uint8_t *data = random_bytes(3000), buf[10];
	struct oci_digest d;
	size_t n;

	assert_int_equal(tu_put_blob(f->st, "many/readers", data, 3000, 3000, &d), 0);
	for (int i = 0; i < NREADERS; i++) {
		assert_int_equal(store_blob_reader_open(f->st, S("many/readers"), &d,
		    &r[i]), 0);
		assert_int_equal(store_blob_reader_read(r[i], (uint64_t)i, buf, 1,
		    &n), 0);
		assert_int_equal(buf[0], data[i]);
	}
	for (int i = 0; i < NREADERS; i++)
		store_blob_reader_close(r[i]);
	free(r);
	free(data);
}

static void
test_blob_foreach(void **state)
{
	struct fixture *f = *state;
	struct collect c = { 0 };
	struct oci_digest d;

	for (int i = 0; i < 5; i++) {
		char buf[16];

		snprintf(buf, sizeof(buf), "blob-%d", i);
		assert_int_equal(tu_put_blob(f->st, "each", buf, strlen(buf), 3,
		    &d), 0);
	}
	assert_int_equal(store_blob_foreach(f->st, collect_blob, &c), 0);
	assert_int_equal(c.count, 5);
}

static void
test_corrupt_chunk_detected(void **state)
{
	struct fixture *f = *state;
	size_t len = 3 * MiB;
	uint8_t *data = random_bytes(len), *buf = malloc(len);
	struct store_blob_reader *r = NULL;
	struct store_blob_info info;
	struct oci_digest d;
	size_t n;

	assert_int_equal(tu_put_blob(f->st, "rot/blob", data, len, MiB, &d), 0);
	store_close(f->st);
	f->st = NULL;
	/* Flip one byte in the middle of the second chunk's payload. */
	assert_int_equal(tu_corrupt_file(f->dir, data + FORMAT_CHUNK_RAW_MAX +
	    5000, 64, 10), 0);
	f->st = tu_open(f->dir, 0);
	assert_non_null(f->st);
	assert_int_equal(store_blob_stat(f->st, S("rot/blob"), &d, &info), 0);
	assert_int_equal(store_blob_reader_open(f->st, S("rot/blob"), &d, &r), 0);
	/* The first chunk is fine; the second is never served. */
	assert_int_equal(store_blob_reader_read(r, 0, buf, 1000, &n), 0);
	assert_memory_equal(buf, data, 1000);
	memset(buf, 0, len);
	assert_int_equal(store_blob_reader_read(r, 0, buf, len, &n),
	    STORE_E_CORRUPT);
	assert_int_equal(n, 0);
	assert_int_equal(store_blob_reader_read(r, FORMAT_CHUNK_RAW_MAX + 1, buf,
	    10, &n), STORE_E_CORRUPT);
	assert_int_equal(store_blob_reader_read(r, 2 * FORMAT_CHUNK_RAW_MAX, buf,
	    10, &n), 0);
	assert_memory_equal(buf, data + 2 * FORMAT_CHUNK_RAW_MAX, 10);
	store_blob_reader_close(r);
	free(data);
	free(buf);
}

static void
test_corrupt_compressed_chunk_detected(void **state)
{
	struct fixture *f = *state;
	size_t len = FORMAT_CHUNK_RAW_MAX;
	uint8_t *text = malloc(len), *got = NULL;
	struct oci_digest d;
	struct store_blob_info info;
	size_t n;
	uint8_t hdr[8];

	tu_fill_text(text, len, &seed_state);
	assert_int_equal(tu_put_blob(f->st, "rot/zst", text, len, len, &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("rot/zst"), &d, &info), 0);
	assert_true(info.stored < len);
	store_close(f->st);
	f->st = NULL;
	/* Find the chunk by its header: raw length | zstd codec, stored. */
	format_put_le32(hdr, (uint32_t)len | (FORMAT_CODEC_ZSTD << 24));
	format_put_le32(hdr + 4, (uint32_t)info.stored);
	assert_int_equal(tu_corrupt_file(f->dir, hdr, sizeof(hdr),
	    FORMAT_CHUNK_HDR_BYTES + 100), 0);
	f->st = tu_open(f->dir, 0);
	assert_int_equal(tu_read_blob(f->st, "rot/zst", &d, (void **)&got, &n,
	    len), STORE_E_CORRUPT);
	assert_null(got);
	free(text);
}

/*
 * The checksum in a stored chunk's header is the format's (FORMAT.md): XXH3
 * 64 of the payload seeded with the header's first eight bytes, computed
 * here with libxxhash's portable entry point, whichever vector unit the
 * store's own calls picked.
 */
static void
test_chunk_checksum_is_the_formats(void **state)
{
	struct fixture *f = *state;
	size_t len = FORMAT_CHUNK_RAW_MAX, flen, i;
	uint8_t *data = malloc(len), *file = NULL, hdr[8];
	struct oci_digest d;
	char path[4096];
	FILE *fp;
	int found = 0;

	tu_fill_random(data, len, &seed_state);
	assert_int_equal(tu_put_blob(f->st, "sum/raw", data, len, len, &d), 0);
	store_close(f->st);
	f->st = NULL;
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	flen = (size_t)ftell(fp);
	rewind(fp);
	file = malloc(flen);
	assert_int_equal(fread(file, 1, flen, fp), flen);
	fclose(fp);
	format_put_le32(hdr, (uint32_t)len | (FORMAT_CODEC_RAW << 24));
	format_put_le32(hdr + 4, (uint32_t)len);
	for (i = 0; i + FORMAT_CHUNK_HDR_BYTES + len <= flen; i++) {
		const uint8_t *p = file + i;

		if (memcmp(p, hdr, sizeof(hdr)) != 0 ||
		    memcmp(p + FORMAT_CHUNK_HDR_BYTES, data, len) != 0)
			continue;
		assert_true(format_get_le64(p + 8) == XXH3_64bits_withSeed(
		    p + FORMAT_CHUNK_HDR_BYTES, len, format_get_le64(p)));
		found++;
	}
	assert_int_equal(found, 1);
	f->st = tu_open(f->dir, 0);
	free(file);
	free(data);
}

/* ---- manifests, tags, repositories, referrers -------------------------- */

static const char OCI_MANIFEST[] = "application/vnd.oci.image.manifest.v1+json";

static void
make_manifest(char *buf, size_t cap, const char *salt,
    struct store_manifest *m, struct store_ref *refs,
    const struct oci_digest *subject)
{
	size_t n = 0;

	memset(m, 0, sizeof(*m));
	snprintf(buf, cap, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"x\":\"%s\"}",
	    OCI_MANIFEST, salt);
	oci_digest_sha256(buf, strlen(buf), &m->digest);
	m->data = buf;
	m->len = strlen(buf);
	m->media_type = OCI_MANIFEST;
	m->media_type_len = strlen(OCI_MANIFEST);
	refs[n].kind = FORMAT_REF_CONFIG;
	oci_digest_sha256("config", 6, &refs[n].digest);
	refs[n++].size = 6;
	refs[n].kind = FORMAT_REF_LAYER;
	oci_digest_sha256(salt, strlen(salt), &refs[n].digest);
	refs[n++].size = strlen(salt);
	if (subject != NULL) {
		refs[n].kind = FORMAT_REF_SUBJECT;
		refs[n].digest = *subject;
		refs[n++].size = 100;
		m->artifact_type = "application/vnd.example.sbom";
		m->artifact_type_len = strlen(m->artifact_type);
	}
	m->refs = refs;
	m->nrefs = n;
}

static void
test_manifest_put_get_delete(void **state)
{
	struct fixture *f = *state;
	struct store_manifest m;
	struct store_ref refs[3];
	struct oci_digest got;
	char buf[512], *mt = NULL;
	void *data = NULL;
	size_t len;

	make_manifest(buf, sizeof(buf), "one", &m, refs, NULL);
	assert_int_equal(store_manifest_put(f->st, S("app/web"), &m, S("v1")), 0);
	assert_int_equal(store_manifest_get(f->st, S("app/web"), &m.digest, &data,
	    &len, &mt), 0);
	assert_int_equal(len, m.len);
	assert_memory_equal(data, m.data, len);
	assert_string_equal(mt, OCI_MANIFEST);
	free(data);
	free(mt);
	assert_int_equal(store_tag_get(f->st, S("app/web"), S("v1"), &got), 0);
	assert_true(oci_digest_equal(&got, &m.digest));
	/* Not linked to another repository. */
	assert_int_equal(store_manifest_get(f->st, S("app/other"), &m.digest,
	    &data, &len, NULL), STORE_E_NOTFOUND);
	assert_null(data);
	/* Delete removes the manifest from the repository with its tags. */
	assert_int_equal(store_manifest_delete(f->st, S("app/web"), &m.digest), 0);
	assert_int_equal(store_manifest_get(f->st, S("app/web"), &m.digest,
	    &data, &len, NULL), STORE_E_NOTFOUND);
	assert_int_equal(store_tag_get(f->st, S("app/web"), S("v1"), &got),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_manifest_delete(f->st, S("app/web"), &m.digest),
	    STORE_E_NOTFOUND);
}

static void
test_manifest_bad_input(void **state)
{
	struct fixture *f = *state;
	struct store_manifest m;
	struct store_ref refs[3];
	struct store_stats s;
	char buf[512];

	make_manifest(buf, sizeof(buf), "bad", &m, refs, NULL);
	m.digest.hash[0] ^= 1;
	assert_int_equal(store_manifest_put(f->st, S("app/web"), &m, S("v1")),
	    STORE_E_DIGEST);
	m.digest.hash[0] ^= 1;
	assert_int_equal(store_manifest_put(f->st, S("App"), &m, NULL, 0),
	    STORE_E_INVALID);
	assert_int_equal(store_manifest_put(f->st, S("app/web"), &m, S("-bad")),
	    STORE_E_INVALID);
	m.media_type_len = 0;
	assert_int_equal(store_manifest_put(f->st, S("app/web"), &m, NULL, 0),
	    STORE_E_INVALID);
	m.media_type_len = strlen(OCI_MANIFEST);
	refs[0].kind = 99;
	assert_int_equal(store_manifest_put(f->st, S("app/web"), &m, NULL, 0),
	    STORE_E_INVALID);
	assert_int_equal(store_stats_get(f->st, &s), 0);
	assert_int_equal(s.manifests, 0);
	assert_int_equal(s.tags, 0);
	assert_int_equal(s.repos, 0);
}

static void
test_tag_overwrite_and_untag(void **state)
{
	struct fixture *f = *state;
	struct store_manifest m1, m2;
	struct store_ref r1[3], r2[3];
	struct oci_digest got;
	char b1[512], b2[512];
	void *data = NULL;
	size_t len;

	make_manifest(b1, sizeof(b1), "first", &m1, r1, NULL);
	make_manifest(b2, sizeof(b2), "second", &m2, r2, NULL);
	assert_int_equal(store_manifest_put(f->st, S("tags/x"), &m1, S("latest")), 0);
	assert_int_equal(store_manifest_put(f->st, S("tags/x"), &m2, S("latest")), 0);
	assert_int_equal(store_tag_get(f->st, S("tags/x"), S("latest"), &got), 0);
	assert_true(oci_digest_equal(&got, &m2.digest));
	/* Moving back with store_tag_put. */
	assert_int_equal(store_tag_put(f->st, S("tags/x"), S("latest"), &m1.digest), 0);
	assert_int_equal(store_tag_get(f->st, S("tags/x"), S("latest"), &got), 0);
	assert_true(oci_digest_equal(&got, &m1.digest));
	/* A tag may only name a manifest in its repository. */
	assert_int_equal(store_tag_put(f->st, S("tags/y"), S("latest"), &m1.digest),
	    STORE_E_NOTFOUND);
	/* Untag keeps the manifest. */
	assert_int_equal(store_tag_delete(f->st, S("tags/x"), S("latest")), 0);
	assert_int_equal(store_tag_get(f->st, S("tags/x"), S("latest"), &got),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_manifest_get(f->st, S("tags/x"), &m1.digest, &data,
	    &len, NULL), 0);
	free(data);
	assert_int_equal(store_tag_delete(f->st, S("tags/x"), S("latest")),
	    STORE_E_NOTFOUND);
}

struct names {
	int n;
	char v[64][130];
};

static int
collect_name(void *arg, const char *name, size_t len)
{
	struct names *c = arg;

	assert_true(len < sizeof(c->v[0]));
	memcpy(c->v[c->n], name, len);
	c->v[c->n][len] = '\0';
	c->n++;
	return 0;
}

static void
test_tag_list_pagination(void **state)
{
	struct fixture *f = *state;
	struct store_manifest m;
	struct store_ref refs[3];
	struct names got;
	char buf[512], tag[16];
	int order[20];

	make_manifest(buf, sizeof(buf), "paged", &m, refs, NULL);
	assert_int_equal(store_manifest_put(f->st, S("page/r"), &m, NULL, 0), 0);
	for (int i = 0; i < 20; i++)
		order[i] = i;
	for (int i = 19; i > 0; i--) {
		int j = (int)(tu_rand(&seed_state) % (uint64_t)(i + 1)), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < 20; i++) {
		snprintf(tag, sizeof(tag), "t%02d", order[i]);
		assert_int_equal(store_tag_put(f->st, S("page/r"), S(tag), &m.digest), 0);
	}
	/* A tag in a repository whose name extends this one's stays apart. */
	assert_int_equal(store_manifest_put(f->st, S("page/r2"), &m, S("zzz")), 0);

	memset(&got, 0, sizeof(got));
	assert_int_equal(store_tag_list(f->st, S("page/r"), NULL, 0, 0,
	    collect_name, &got), 0);
	assert_int_equal(got.n, 20);
	for (int i = 0; i < 20; i++) {
		snprintf(tag, sizeof(tag), "t%02d", i);
		assert_string_equal(got.v[i], tag);
	}
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_tag_list(f->st, S("page/r"), NULL, 0, 5,
	    collect_name, &got), 0);
	assert_int_equal(got.n, 5);
	assert_string_equal(got.v[4], "t04");
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_tag_list(f->st, S("page/r"), S("t04"), 5,
	    collect_name, &got), 0);
	assert_int_equal(got.n, 5);
	assert_string_equal(got.v[0], "t05");
	assert_string_equal(got.v[4], "t09");
	/* `last` need not exist. */
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_tag_list(f->st, S("page/r"), S("t175"), 0,
	    collect_name, &got), 0);
	assert_int_equal(got.n, 2);
	assert_string_equal(got.v[0], "t18");
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_tag_list(f->st, S("page/r"), S("t19"), 0,
	    collect_name, &got), 0);
	assert_int_equal(got.n, 0);
	assert_int_equal(store_tag_list(f->st, S("page/none"), NULL, 0, 0,
	    collect_name, &got), STORE_E_NOTFOUND);
	assert_int_equal(store_tag_list(f->st, S("Bad"), NULL, 0, 0,
	    collect_name, &got), STORE_E_INVALID);
}

static void
test_repo_list_pagination(void **state)
{
	struct fixture *f = *state;
	static const char *const repos[] = { "zeta", "alpha/one", "alpha",
	    "mid/x/y", "beta" };
	static const char *const sorted[] = { "alpha", "alpha/one", "beta",
	    "mid/x/y", "zeta" };
	struct names got;
	struct oci_digest d;

	for (size_t i = 0; i < 5; i++)
		assert_int_equal(tu_put_blob(f->st, repos[i], "x", 1, 1, &d), 0);
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_repo_list(f->st, NULL, 0, 0, collect_name, &got), 0);
	assert_int_equal(got.n, 5);
	for (int i = 0; i < 5; i++)
		assert_string_equal(got.v[i], sorted[i]);
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_repo_list(f->st, NULL, 0, 2, collect_name, &got), 0);
	assert_int_equal(got.n, 2);
	assert_string_equal(got.v[1], "alpha/one");
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_repo_list(f->st, S("alpha/one"), 2, collect_name,
	    &got), 0);
	assert_int_equal(got.n, 2);
	assert_string_equal(got.v[0], "beta");
	assert_string_equal(got.v[1], "mid/x/y");
}

struct refl {
	int n;
	struct oci_digest d[8];
	char at[8][64];
};

static int
collect_referrer(void *arg, const struct store_referrer *r)
{
	struct refl *c = arg;

	c->d[c->n] = r->digest;
	memcpy(c->at[c->n], r->artifact_type, r->artifact_type_len);
	c->at[c->n][r->artifact_type_len] = '\0';
	c->n++;
	return 0;
}

static int
collect_ref(void *arg, const struct store_ref *r)
{
	int *kinds = arg;

	kinds[r->kind]++;
	return 0;
}

static void
test_referrers_and_refs(void **state)
{
	struct fixture *f = *state;
	struct store_manifest img, sbom;
	struct store_ref r1[3], r2[3];
	struct refl got;
	int kinds[8] = { 0 };
	char b1[512], b2[512];

	make_manifest(b1, sizeof(b1), "image", &img, r1, NULL);
	make_manifest(b2, sizeof(b2), "sbom", &sbom, r2, &img.digest);
	assert_int_equal(store_manifest_put(f->st, S("ref/app"), &img, S("v1")), 0);
	assert_int_equal(store_manifest_put(f->st, S("ref/app"), &sbom, NULL, 0), 0);

	memset(&got, 0, sizeof(got));
	assert_int_equal(store_referrers_list(f->st, S("ref/app"), &img.digest,
	    collect_referrer, &got), 0);
	assert_int_equal(got.n, 1);
	assert_true(oci_digest_equal(&got.d[0], &sbom.digest));
	assert_string_equal(got.at[0], "application/vnd.example.sbom");
	/* Per repository. */
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_referrers_list(f->st, S("ref/other"), &img.digest,
	    collect_referrer, &got), 0);
	assert_int_equal(got.n, 0);

	assert_int_equal(store_refs_list(f->st, &sbom.digest, collect_ref, kinds), 0);
	assert_int_equal(kinds[FORMAT_REF_CONFIG], 1);
	assert_int_equal(kinds[FORMAT_REF_LAYER], 1);
	assert_int_equal(kinds[FORMAT_REF_SUBJECT], 1);

	/* Deleting the referrer drops its index entry and, last link gone, refs. */
	assert_int_equal(store_manifest_delete(f->st, S("ref/app"), &sbom.digest), 0);
	memset(&got, 0, sizeof(got));
	assert_int_equal(store_referrers_list(f->st, S("ref/app"), &img.digest,
	    collect_referrer, &got), 0);
	assert_int_equal(got.n, 0);
	memset(kinds, 0, sizeof(kinds));
	assert_int_equal(store_refs_list(f->st, &sbom.digest, collect_ref, kinds), 0);
	assert_int_equal(kinds[FORMAT_REF_CONFIG] + kinds[FORMAT_REF_LAYER] +
	    kinds[FORMAT_REF_SUBJECT], 0);
}

static void
test_manifest_shared_between_repos(void **state)
{
	struct fixture *f = *state;
	struct store_manifest m;
	struct store_ref refs[3];
	struct store_stats s;
	char buf[512];
	void *data = NULL;
	size_t len;
	int kinds[8] = { 0 };

	make_manifest(buf, sizeof(buf), "shared", &m, refs, NULL);
	assert_int_equal(store_manifest_put(f->st, S("one"), &m, S("a")), 0);
	assert_int_equal(store_manifest_put(f->st, S("two"), &m, S("b")), 0);
	assert_int_equal(store_stats_get(f->st, &s), 0);
	assert_int_equal(s.manifests, 1);
	assert_int_equal(store_manifest_delete(f->st, S("one"), &m.digest), 0);
	assert_int_equal(store_manifest_get(f->st, S("two"), &m.digest, &data,
	    &len, NULL), 0);
	free(data);
	assert_int_equal(store_refs_list(f->st, &m.digest, collect_ref, kinds), 0);
	assert_int_equal(kinds[FORMAT_REF_CONFIG], 1);
	assert_int_equal(store_manifest_delete(f->st, S("two"), &m.digest), 0);
	assert_int_equal(store_stats_get(f->st, &s), 0);
	assert_int_equal(s.manifests, 0);
	assert_int_equal(s.refs, 0);
	assert_int_equal(s.tags, 0);
}

/* ---- map full ---------------------------------------------------------- */

static void
test_map_full_and_recovery(void **state)
{
	char *dir = tu_tmpdir();
	struct store *st = tu_open(dir, 8 * MiB);
	struct oci_digest d[32];
	struct store_blob_info info;
	uint8_t *data[32];
	int n = 0, rc = 0;

	(void)state;
	assert_non_null(st);
	for (n = 0; n < 32; n++) {
		data[n] = random_bytes(MiB);
		rc = tu_put_blob(st, "full/repo", data[n], MiB, MiB / 4, &d[n]);
		if (rc != 0)
			break;
	}
	assert_int_equal(rc, STORE_E_MAP_FULL);
	assert_true(n >= 2);
	/* What was stored is still readable... */
	for (int i = 0; i < n; i++)
		assert_blob_equals(st, "full/repo", &d[i], data[i], MiB, MiB);
	assert_int_equal(store_blob_stat(st, NULL, 0, &d[n], &info),
	    STORE_E_NOTFOUND);
	/* ...deletes work, and free the space for new writes. */
	assert_int_equal(store_blob_delete(st, &d[0]), 0);
	assert_int_equal(store_blob_delete(st, &d[1]), 0);
	assert_int_equal(tu_put_blob(st, "full/repo", data[n], MiB, MiB, &d[n]), 0);
	assert_blob_equals(st, "full/repo", &d[n], data[n], MiB, MiB);
	store_close(st);
	/* And the store reopens cleanly. */
	st = tu_open(dir, 8 * MiB);
	assert_non_null(st);
	assert_blob_equals(st, "full/repo", &d[n], data[n], MiB, MiB);
	store_close(st);
	for (int i = 0; i <= n && i < 32; i++)
		free(data[i]);
	tu_rmdir(dir);
}

/*
 * store_upload_write_some stops right after the chunk it fills, so a
 * caller that pauses there starts no further chunk buffer; the bytes it
 * did not take are written by later calls, and the blob is whole.
 */
static void
test_upload_write_some(void **state)
{
	struct fixture *f = *state;
	size_t len = 2 * MiB + 100, off = 0, k = 0;
	uint8_t *data = random_bytes(len);
	struct store_upload *up = NULL;
	struct oci_digest d;

	oci_digest_sha256(data, len, &d);
	assert_int_equal(store_upload_new(f->st, S("some/writes"), &up), 0);
	assert_int_equal(store_upload_write_some(up, data, 10, &k), 0);
	assert_int_equal(k, 10);
	off += k;
	/* Offered everything else: takes up to the end of the first chunk. */
	assert_int_equal(store_upload_write_some(up, data + off, len - off, &k),
	    0);
	assert_int_equal(k, FORMAT_CHUNK_RAW_MAX - 10);
	off += k;
	assert_int_equal(store_upload_offset(up), FORMAT_CHUNK_RAW_MAX);
	/* The full chunk went to the writer (pending until it commits). */
	assert_int_equal(store_upload_flush(up), 0);
	assert_int_equal(store_upload_pending(up), 0);
	while (off < len) {
		assert_int_equal(store_upload_write_some(up, data + off,
		    len - off, &k), 0);
		assert_true(k > 0 && k <= FORMAT_CHUNK_RAW_MAX);
		off += k;
	}
	assert_int_equal(store_upload_write_some(up, data, 0, &k), 0);
	assert_int_equal(k, 0);
	assert_int_equal(store_upload_finish(up, &d, len), 0);
	store_upload_free(up);
	assert_blob_equals(f->st, "some/writes", &d, data, len, 65536);
	free(data);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_missing_and_foreign),
		T(test_open_existing_without_create),
		T(test_format_newer_refused),
		T(test_format_older_needs_upgrade),
		T(test_readonly_handle),
		T(test_refused_open_changes_nothing),
		T(test_upload_small),
		T(test_upload_empty_blob),
		T(test_upload_multichunk_and_ranges),
		T(test_upload_write_some),
		T(test_upload_digest_mismatch),
		T(test_upload_verify_only),
		T(test_reads_and_deletes_do_not_map_blobs),
		T(test_upload_cancel),
		T(test_upload_resume_after_restart),
		T(test_upload_unflushed_bytes_not_resumed),
		T(test_upload_dedup),
		T(test_compression_choice),
		T(test_compression_per_chunk),
		T(test_upload_async_write),
		T(test_upload_two_handles_conflict),
		T(test_upload_no_bytes_while_finishing),
		T(test_upload_invalid),
		T(test_blob_links_and_mount),
		T(test_blob_delete),
		T(test_blob_reader_survives_delete),
		T(test_many_open_readers),
		T(test_blob_foreach),
		T(test_corrupt_chunk_detected),
		T(test_corrupt_compressed_chunk_detected),
		T(test_chunk_checksum_is_the_formats),
		T(test_manifest_put_get_delete),
		T(test_manifest_bad_input),
		T(test_tag_overwrite_and_untag),
		T(test_tag_list_pagination),
		T(test_repo_list_pagination),
		T(test_referrers_and_refs),
		T(test_manifest_shared_between_repos),
		cmocka_unit_test(test_map_full_and_recovery),
	};

	seed_state = tu_seed("test_store");
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
