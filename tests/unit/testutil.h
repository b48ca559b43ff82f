/*
 * Helpers for the store tests: temporary folders, deterministic data, and
 * byte surgery on a real LMDB file.
 */
#ifndef BERTH_TESTUTIL_H
#define BERTH_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/store.h"

/* A new empty folder under $TMPDIR (or /tmp); caller frees the string. */
char *tu_tmpdir(void);
/* Removes a folder made by tu_tmpdir and the files in it; frees path. */
void tu_rmdir(char *path);

/* Seed from $BERTH_TEST_SEED or the clock; printed so a run can be replayed. */
uint64_t tu_seed(const char *who);
uint64_t tu_rand(uint64_t *state);
/* Incompressible bytes. */
void tu_fill_random(void *buf, size_t len, uint64_t *state);
/* Text-like bytes that zstd compresses well, like a tar of source files. */
void tu_fill_text(void *buf, size_t len, uint64_t *state);

/* Opens (creating) a store in dir; map_size 0 for the default. */
struct store *tu_open(const char *dir, uint64_t map_size);

/* Uploads data as one blob into repo in writes of `step` bytes. */
int tu_put_blob(struct store *st, const char *repo, const void *data,
    size_t len, size_t step, struct oci_digest *out);

/* Reads a whole blob through a reader in reads of `step` bytes. */
int tu_read_blob(struct store *st, const char *repo, const struct oci_digest *d,
    void **data, size_t *len, size_t step);

/*
 * Flips one byte of the first place where needle (nlen bytes) occurs in
 * dir/data.mdb, at needle offset `at`. Returns 0 if found.
 */
int tu_corrupt_file(const char *dir, const void *needle, size_t nlen, size_t at);

/* Writes a raw meta header with the given version, bypassing the store. */
int tu_stamp_version(const char *dir, uint32_t version);

/*
 * Parses json as a manifest and stores it into repo (tagged if tag is not
 * NULL) with the references the parser found, as berthd's API does.
 */
int tu_put_manifest(struct store *st, const char *repo, const char *json,
    const char *tag, bool require_refs, struct oci_digest *out);

/*
 * Raw record surgery on a closed store: get (malloc'd copy), put, delete
 * of one key in the named database. Return 0 or an LMDB code.
 */
int tu_raw_get(const char *dir, const char *db, const void *key, size_t klen,
    void **val, size_t *vlen);
int tu_raw_put(const char *dir, const char *db, const void *key, size_t klen,
    const void *val, size_t vlen);
int tu_raw_del(const char *dir, const char *db, const void *key, size_t klen);

#endif
