/*
 * Fuzz target: berth-fsck reads a whole database file it cannot trust.
 * The input is a list of raw records written into a fresh, valid, empty
 * store; then the store is checked read-only, repaired read-write and
 * checked again. Record encoding, repeated to the end of the input:
 *   u8 database (mod 11, FORMAT.md order), u8 key length, u16 LE value
 *   length, key bytes, value bytes.
 * Keys that LMDB refuses (empty, too long) are skipped.
 */
#define _XOPEN_SOURCE 700       /* nftw */
#include "config.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "berth/format.h"
#include "berth/fsck.h"
#include "berth/store.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const dbs[] = {
	FORMAT_DB_META, FORMAT_DB_BLOBS, FORMAT_DB_CHUNKS, FORMAT_DB_UPLOADS,
	FORMAT_DB_MANIFESTS, FORMAT_DB_REPOS, FORMAT_DB_LINKS, FORMAT_DB_RLINKS,
	FORMAT_DB_TAGS, FORMAT_DB_REFS, FORMAT_DB_REFERRERS,
};

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
write_records(const char *dir, const uint8_t *p, size_t n)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;

	if (mdb_env_create(&env) != 0)
		return;
	mdb_env_set_maxdbs(env, 16);
	mdb_env_set_mapsize(env, 64u << 20);
	if (mdb_env_open(env, dir, MDB_NOSYNC, 0600) != 0 ||
	    mdb_txn_begin(env, NULL, 0, &txn) != 0) {
		mdb_env_close(env);
		return;
	}
	while (n >= 4) {
		size_t kl = p[1], vl = (size_t)p[2] | (size_t)p[3] << 8;
		MDB_dbi dbi;
		MDB_val k, v;

		if (n - 4 < kl + vl)
			break;
		k = (MDB_val){ kl, (void *)(p + 4) };
		v = (MDB_val){ vl, (void *)(p + 4 + kl) };
		/* Never the header: the open check is not what is fuzzed. */
		if (kl > 0 && !(p[0] % 11 == 0 && kl == 6 &&
		    memcmp(p + 4, "header", 6) == 0) &&
		    mdb_dbi_open(txn, dbs[p[0] % 11], 0, &dbi) == 0)
			(void)mdb_put(txn, dbi, &k, &v, 0);
		p += 4 + kl + vl;
		n -= 4 + kl + vl;
	}
	mdb_txn_commit(txn);
	mdb_env_close(env);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[] = "/tmp/berth-fuzz-fsck-XXXXXX";
	struct store_options so = { .path = dir, .map_size = 64u << 20 };
	struct fsck_options fo = { .jobs = 1, .upload_expiry = 1 };
	struct fsck_report r;
	struct store *st = NULL;

	log_set_level(LOG_LEVEL_ERROR);
	if (mkdtemp(dir) == NULL)
		return 0;
	so.flags = STORE_OPEN_CREATE;
	if (store_open(&so, &st) != 0)
		goto out;
	store_close(st);
	st = NULL;
	write_records(dir, data, size);

	so.flags = STORE_OPEN_READONLY;
	if (store_open(&so, &st) == 0) {
		if (store_fsck(st, &fo, &r) == 0)
			fsck_report_free(&r);
		store_close(st);
		st = NULL;
	}
	so.flags = 0;
	if (store_open(&so, &st) == 0) {
		if (store_fsck(st, &fo, &r) == 0) {
			(void)store_fsck_repair(st, &r);
			fsck_report_free(&r);
			if (store_fsck(st, &fo, &r) == 0)
				fsck_report_free(&r);
		}
		store_close(st);
	}
out:
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}
