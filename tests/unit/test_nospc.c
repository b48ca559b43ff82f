/*
 * A full file system: the store sits on an 8 MiB tmpfs (mounted in a
 * private mount namespace of a child process, so nothing outside sees it)
 * with a map far larger, and blobs are pushed until the disk is full. The
 * push gets STORE_E_NOSPC; everything stored before stays readable;
 * deleting a blob makes room and pushes work again; the store reopens.
 * Needs root for the mount; without it the test is reported as skipped.
 */
#define _GNU_SOURCE     /* unshare, CLONE_NEWNS */
#include "config.h"

#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/store.h"
#include "testutil.h"

#define NOSPC_FS_BYTES  "8m"
#define NOSPC_MAP_BYTES ((uint64_t)256 << 20)
#define NOSPC_BLOB_BYTES ((size_t)1 << 20)
#define NOSPC_MAX_BLOBS 32
#define EXIT_SKIP 77

/* Child: returns the line number of the first failed check, 0 if none. */
static int
nospc_child(const char *mnt, uint64_t seed)
{
	static uint8_t data[NOSPC_MAX_BLOBS][NOSPC_BLOB_BYTES];
	struct oci_digest d[NOSPC_MAX_BLOBS];
	struct store_options o = { .path = mnt, .map_size = NOSPC_MAP_BYTES,
	    .flags = STORE_OPEN_CREATE };
	struct store *st = NULL;
	int n, rc = 0;

#define CHECK(x) do { if (!(x)) return __LINE__; } while (0)
	CHECK(store_open(&o, &st) == 0);
	for (n = 0; n < NOSPC_MAX_BLOBS; n++) {
		tu_fill_random(data[n], NOSPC_BLOB_BYTES, &seed);
		rc = tu_put_blob(st, "nospc/repo", data[n], NOSPC_BLOB_BYTES,
		    NOSPC_BLOB_BYTES / 3, &d[n]);
		if (rc != 0)
			break;
	}
	fprintf(stderr, "# disk full after %d blobs: %s\n", n, store_strerror(rc));
	CHECK(rc == STORE_E_NOSPC);
	CHECK(n >= 2 && n < NOSPC_MAX_BLOBS);
	for (int i = 0; i < n; i++) {
		void *got = NULL;
		size_t len = 0;

		CHECK(tu_read_blob(st, "nospc/repo", &d[i], &got, &len,
		    NOSPC_BLOB_BYTES) == 0);
		CHECK(len == NOSPC_BLOB_BYTES && memcmp(got, data[i], len) == 0);
		free(got);
	}
	CHECK(store_blob_delete(st, &d[0]) == 0);
	CHECK(store_blob_delete(st, &d[1]) == 0);
	CHECK(tu_put_blob(st, "nospc/repo", data[n], NOSPC_BLOB_BYTES,
	    NOSPC_BLOB_BYTES, &d[n]) == 0);
	store_close(st);
	st = NULL;
	CHECK(store_open(&o, &st) == 0);
	{
		void *got = NULL;
		size_t len = 0;

		CHECK(tu_read_blob(st, "nospc/repo", &d[n], &got, &len,
		    NOSPC_BLOB_BYTES) == 0);
		CHECK(memcmp(got, data[n], len) == 0);
		free(got);
	}
	store_close(st);
	return 0;
#undef CHECK
}

static void
test_disk_full(void **state)
{
	uint64_t seed = tu_seed("test_nospc");
	char *mnt = tu_tmpdir();
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) != 0 ||
		    mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
		    mount("tmpfs", mnt, "tmpfs", 0, "size=" NOSPC_FS_BYTES) != 0) {
			perror("# mount tmpfs");
			_exit(EXIT_SKIP);
		}
		status = nospc_child(mnt, seed);
		if (status != 0)
			fprintf(stderr, "# check failed at %s:%d\n", __FILE__,
			    status);
		_exit(status == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	tu_rmdir(mnt);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == EXIT_SKIP)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disk_full),
	};

	return cmocka_run_group_tests_name("nospc", tests, NULL, NULL);
}
