/*
 * Key construction and repository links.
 *
 * A link says "repository R may read object (kind, digest)". It is kept in
 * two databases so both directions are range scans: links (repo first, for
 * a repository's contents) and rlinks (object first, for "who uses this").
 * link_put/link_del always change both, and the repos record is created on
 * a repository's first link.
 */
#include "config.h"

#include <string.h>

#include "store/store_int.h"

void
digest_key(uint8_t key[FORMAT_DIGEST_KEY_BYTES], const struct oci_digest *d)
{
	key[0] = FORMAT_DIGEST_SHA256;
	memcpy(key + 1, d->hash, FORMAT_HASH_BYTES);
}

int
digest_from_key(const uint8_t *key, size_t len, struct oci_digest *d)
{
	memset(d, 0, sizeof(*d));
	if (len < FORMAT_DIGEST_KEY_BYTES || key[0] != FORMAT_DIGEST_SHA256)
		return STORE_E_CORRUPT;
	d->alg = OCI_DIGEST_SHA256;
	memcpy(d->hash, key + 1, FORMAT_HASH_BYTES);
	return 0;
}

int
repo_prefix(uint8_t *key, const char *repo, size_t repolen)
{
	if (!oci_name_valid(repo, repolen))
		return STORE_E_INVALID;
	memcpy(key, repo, repolen);
	key[repolen] = 0;
	return (int)repolen + 1;
}

/* links key: repo, 0, kind, digest key. */
static int
link_key(uint8_t *key, const char *repo, size_t repolen, uint8_t kind,
    const struct oci_digest *d)
{
	int n = repo_prefix(key, repo, repolen);

	if (n < 0)
		return n;
	key[n] = kind;
	digest_key(key + n + 1, d);
	return n + 1 + FORMAT_DIGEST_KEY_BYTES;
}

/* rlinks key: kind, digest key, repo. */
static size_t
rlink_key(uint8_t *key, const char *repo, size_t repolen, uint8_t kind,
    const struct oci_digest *d)
{
	key[0] = kind;
	digest_key(key + 1, d);
	memcpy(key + 1 + FORMAT_DIGEST_KEY_BYTES, repo, repolen);
	return 1 + FORMAT_DIGEST_KEY_BYTES + repolen;
}

int
link_put(struct store_wtxn *w, const char *repo, size_t repolen, uint8_t kind,
    const struct oci_digest *d)
{
	uint8_t key[STORE_KEY_MAX_BYTES], rkey[STORE_KEY_MAX_BYTES];
	uint8_t stamp[8];
	MDB_val k, v;
	int n, rc;

	n = link_key(key, repo, repolen, kind, d);
	if (n < 0)
		return n;
	format_put_le64(stamp, w->now);
	k = (MDB_val){ (size_t)n, key };
	v = (MDB_val){ sizeof(stamp), stamp };
	rc = mdb_put(w->txn, w->st->dbi[DBI_LINKS], &k, &v, 0);
	if (rc != 0)
		return store_mdb_error(rc, "link put");
	k = (MDB_val){ rlink_key(rkey, repo, repolen, kind, d), rkey };
	v = (MDB_val){ 0, NULL };
	rc = mdb_put(w->txn, w->st->dbi[DBI_RLINKS], &k, &v, 0);
	if (rc != 0)
		return store_mdb_error(rc, "rlink put");
	/* The repos record keeps its first creation time. */
	k = (MDB_val){ repolen, (void *)repo };
	v = (MDB_val){ sizeof(stamp), stamp };
	rc = mdb_put(w->txn, w->st->dbi[DBI_REPOS], &k, &v, MDB_NOOVERWRITE);
	if (rc != 0 && rc != MDB_KEYEXIST)
		return store_mdb_error(rc, "repo put");
	return 0;
}

int
link_del(struct store_wtxn *w, const char *repo, size_t repolen, uint8_t kind,
    const struct oci_digest *d)
{
	uint8_t key[STORE_KEY_MAX_BYTES];
	MDB_val k;
	int n, rc;

	n = link_key(key, repo, repolen, kind, d);
	if (n < 0)
		return n;
	k = (MDB_val){ (size_t)n, key };
	rc = mdb_del(w->txn, w->st->dbi[DBI_LINKS], &k, NULL);
	if (rc != 0)
		return store_mdb_error(rc, "link delete");
	k = (MDB_val){ rlink_key(key, repo, repolen, kind, d), key };
	rc = mdb_del(w->txn, w->st->dbi[DBI_RLINKS], &k, NULL);
	if (rc == MDB_NOTFOUND)
		return 0;       /* tolerated: fsck reports the asymmetry */
	return store_mdb_error(rc, "rlink delete");
}

int
link_exists(struct store *st, MDB_txn *txn, const char *repo, size_t repolen,
    uint8_t kind, const struct oci_digest *d)
{
	uint8_t key[STORE_KEY_MAX_BYTES];
	MDB_val k, v;
	int n;

	n = link_key(key, repo, repolen, kind, d);
	if (n < 0)
		return n;
	k = (MDB_val){ (size_t)n, key };
	return store_mdb_error(mdb_get(txn, st->dbi[DBI_LINKS], &k, &v),
	    "link get");
}

/* Positions c on the first rlinks record of (kind, d); 1 found, 0 none. */
static int
rlink_first(MDB_cursor *c, uint8_t *prefix, uint8_t kind,
    const struct oci_digest *d, MDB_val *k)
{
	MDB_val v;
	int rc;

	prefix[0] = kind;
	digest_key(prefix + 1, d);
	*k = (MDB_val){ 1 + FORMAT_DIGEST_KEY_BYTES, prefix };
	rc = mdb_cursor_get(c, k, &v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return store_mdb_error(rc, "rlink scan");
	return k->mv_size > 1 + FORMAT_DIGEST_KEY_BYTES &&
	    memcmp(k->mv_data, prefix, 1 + FORMAT_DIGEST_KEY_BYTES) == 0;
}

int
link_any(struct store *st, MDB_txn *txn, uint8_t kind,
    const struct oci_digest *d)
{
	uint8_t prefix[1 + FORMAT_DIGEST_KEY_BYTES];
	MDB_cursor *c = NULL;
	MDB_val k;
	int rc;

	rc = mdb_cursor_open(txn, st->dbi[DBI_RLINKS], &c);
	if (rc != 0)
		return store_mdb_error(rc, "cursor");
	rc = rlink_first(c, prefix, kind, d, &k);
	mdb_cursor_close(c);
	return rc;
}

int
link_del_all(struct store_wtxn *w, uint8_t kind, const struct oci_digest *d)
{
	uint8_t prefix[1 + FORMAT_DIGEST_KEY_BYTES];
	uint8_t repo[FORMAT_REPO_MAX_BYTES];
	MDB_cursor *c = NULL;
	MDB_val k;
	size_t repolen;
	int rc;

	rc = mdb_cursor_open(w->txn, w->st->dbi[DBI_RLINKS], &c);
	if (rc != 0)
		return store_mdb_error(rc, "cursor");
	/* Each link_del removes the rlink, so the first match moves on. */
	while ((rc = rlink_first(c, prefix, kind, d, &k)) == 1) {
		repolen = k.mv_size - 1 - FORMAT_DIGEST_KEY_BYTES;
		if (repolen > sizeof(repo)) {
			rc = STORE_E_CORRUPT;
			break;
		}
		memcpy(repo, (const uint8_t *)k.mv_data + 1 +
		    FORMAT_DIGEST_KEY_BYTES, repolen);
		rc = link_del(w, (const char *)repo, repolen, kind, d);
		if (rc == STORE_E_NOTFOUND || rc == STORE_E_INVALID) {
			/* A lone or damaged rlink: drop it so the walk ends. */
			rc = store_mdb_error(mdb_cursor_del(c, 0), "rlink delete");
		}
		if (rc != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc < 0 ? rc : 0;
}
