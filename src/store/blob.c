/*
 * Blobs: records in "blobs" pointing at a chunk set, repository links, and
 * ranged reads. A reader holds no transaction (nor LMDB reader slot)
 * between calls, so a slow download never pins pages the writer has freed
 * and idle downloads never exhaust the reader table.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

struct store_blob_reader {
	struct store *st;
	MDB_txn *txn;           /* only during a read */
	ZSTD_DCtx *dctx;        /* made when a zstd chunk is first read */
	struct oci_digest digest;
	uint64_t size;
	uint64_t set;
};

static void
blob_encode(uint8_t rec[FORMAT_BLOB_BYTES], const struct store_blob_info *b,
    uint64_t set)
{
	format_put_le64(rec, b->size);
	format_put_le64(rec + 8, b->stored);
	format_put_le64(rec + 16, set);
	format_put_le64(rec + 24, b->created);
	format_put_le32(rec + 32, b->nchunks);
	format_put_le32(rec + 36, b->flags);
	format_put_le64(rec + 40, 0);
}

int
blob_put(struct store_wtxn *w, const struct store_blob_info *b, uint64_t set)
{
	uint8_t key[FORMAT_DIGEST_KEY_BYTES], rec[FORMAT_BLOB_BYTES];
	MDB_val k = { sizeof(key), key }, v = { sizeof(rec), rec };

	digest_key(key, &b->digest);
	blob_encode(rec, b, set);
	return store_mdb_error(mdb_put(w->txn, w->st->dbi[DBI_BLOBS], &k, &v, 0),
	    "blob put");
}

int
blob_get(struct store *st, MDB_txn *txn, const struct oci_digest *d,
    struct store_blob_info *info, uint64_t *set)
{
	uint8_t key[FORMAT_DIGEST_KEY_BYTES];
	MDB_val k = { sizeof(key), key }, v;
	int rc;

	memset(info, 0, sizeof(*info));
	*set = 0;
	digest_key(key, d);
	rc = mdb_get(txn, st->dbi[DBI_BLOBS], &k, &v);
	if (rc != 0)
		return store_mdb_error(rc, "blob get");
	rc = record_blob_decode(v.mv_data, v.mv_size, info, set);
	info->digest = *d;
	return rc;
}

/* Looks a blob up for a repository (repo NULL: any); quarantined is gone. */
static int
blob_lookup(struct store *st, MDB_txn *txn, const char *repo, size_t repolen,
    const struct oci_digest *d, struct store_blob_info *info, uint64_t *set)
{
	int rc;

	if (d == NULL || d->alg != OCI_DIGEST_SHA256)
		return STORE_E_INVALID;
	if (repo != NULL && !oci_name_valid(repo, repolen))
		return STORE_E_INVALID;
	rc = blob_get(st, txn, d, info, set);
	if (rc != 0 || repo == NULL)
		return rc;
	if (info->flags & FORMAT_BLOB_F_QUARANTINE)
		rc = STORE_E_NOTFOUND;
	else
		rc = link_exists(st, txn, repo, repolen, FORMAT_LINK_BLOB, d);
	if (rc != 0) {
		memset(info, 0, sizeof(*info));
		*set = 0;
	}
	return rc;
}

int
store_blob_stat(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d, struct store_blob_info *out)
{
	MDB_txn *txn = NULL;
	uint64_t set;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = store_rtxn_begin(st, &txn);
	if (rc != 0)
		return rc;
	rc = blob_lookup(st, txn, repo, repolen, d, out, &set);
	store_rtxn_end(txn);
	return rc;
}

int
store_blob_reader_open(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d, struct store_blob_reader **out)
{
	struct store_blob_reader *r;
	struct store_blob_info info;
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return STORE_E_NOMEM;
	r->st = st;
	rc = store_rtxn_begin(st, &r->txn);
	if (rc != 0)
		goto fail;
	rc = blob_lookup(st, r->txn, repo, repolen, d, &info, &r->set);
	store_rtxn_end(r->txn);
	r->txn = NULL;
	if (rc != 0)
		goto fail;
	r->digest = *d;
	r->size = info.size;
	*out = r;
	return 0;
fail:
	store_blob_reader_close(r);
	return rc;
}

uint64_t
store_blob_reader_size(const struct store_blob_reader *r)
{
	return r->size;
}

void
store_blob_reader_close(struct store_blob_reader *r)
{
	if (r == NULL)
		return;
	ZSTD_freeDCtx(r->dctx);
	free(r);
}

/*
 * Finds the chunk of r's set holding offset off: the last key <= (set, off).
 * Leaves k/v on it and *start at its blob offset; the value is not read
 * yet. STORE_E_CORRUPT when the blob exists but the chunk does not,
 * STORE_E_NOTFOUND when the blob was deleted meanwhile.
 */
static int
reader_seek(struct store_blob_reader *r, MDB_cursor *c, uint64_t off,
    MDB_val *k, MDB_val *v, uint64_t *start)
{
	uint8_t key[FORMAT_CHUNK_KEY_BYTES];
	struct store_blob_info info;
	uint64_t set;
	int rc;

	*start = 0;
	chunk_key(key, r->set, off);
	*k = (MDB_val){ sizeof(key), key };
	rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(c, k, v, MDB_LAST);
	else if (rc == 0 && (k->mv_size != FORMAT_CHUNK_KEY_BYTES ||
	    memcmp(k->mv_data, key, sizeof(key)) > 0))
		rc = mdb_cursor_get(c, k, v, MDB_PREV);
	if (rc == 0 && (k->mv_size != FORMAT_CHUNK_KEY_BYTES ||
	    format_get_be64(k->mv_data) != r->set))
		rc = MDB_NOTFOUND;
	if (rc == 0) {
		*start = format_get_be64((const uint8_t *)k->mv_data + 8);
		if (*start > off || v->mv_size < FORMAT_CHUNK_HDR_BYTES ||
		    v->mv_size > FORMAT_CHUNK_HDR_BYTES + FORMAT_CHUNK_RAW_MAX)
			return STORE_E_CORRUPT;
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		return store_mdb_error(rc, "chunk seek");
	rc = blob_get(r->st, r->txn, &r->digest, &info, &set);
	if (rc == 0 && set == r->set)
		return STORE_E_CORRUPT;
	return rc == 0 || rc == STORE_E_NOTFOUND ? STORE_E_NOTFOUND : rc;
}

/*
 * The chunk holding offset, verified and decoded in a new buffer: *buf
 * (free() it) holds the chunk's raw bytes at *raw, the chunk starting at
 * blob offset *start and holding *len bytes. A raw chunk is decoded where
 * it was read, behind its header, so it is copied once (by pread).
 */
static int
reader_load(struct store_blob_reader *r, uint64_t offset, void **buf,
    const uint8_t **raw, uint64_t *start, size_t *len)
{
	MDB_cursor *c = NULL;
	MDB_val k, v;
	struct chunk_hdr h;
	uint8_t *val = NULL, *out = NULL;
	int rc;

	*buf = NULL;
	*raw = NULL;
	*len = 0;
	rc = store_rtxn_begin(r->st, &r->txn);
	if (rc != 0)
		return rc;
	rc = store_mdb_error(mdb_cursor_open(r->txn, r->st->dbi[DBI_CHUNKS], &c),
	    "cursor");
	if (rc == 0)
		rc = reader_seek(r, c, offset, &k, &v, start);
	if (rc == 0 && (val = malloc(v.mv_size)) == NULL)
		rc = STORE_E_NOMEM;
	if (rc == 0)
		rc = chunk_fetch(r->st, &v, val);
	/* Finding the value mapped its first pages; they are not read again. */
	if (rc == 0)
		chunk_unmap(r->st, &v);
	mdb_cursor_close(c);
	store_rtxn_end(r->txn);
	r->txn = NULL;
	if (rc == 0)
		rc = chunk_verify(val, v.mv_size, FORMAT_CHUNK_RAW_MAX, &h);
	if (rc == 0 && offset - *start >= h.raw_len)
		rc = STORE_E_CORRUPT;   /* a gap between chunks */
	if (rc == 0 && h.codec != FORMAT_CODEC_RAW) {
		/* Made on first use: most layers are stored raw, HEAD reads none. */
		if (r->dctx == NULL)
			r->dctx = ZSTD_createDCtx();
		out = r->dctx != NULL ? malloc(h.raw_len) : NULL;
		rc = out == NULL ? STORE_E_NOMEM :
		    chunk_decode(val, &h, r->dctx, out, h.raw_len);
		free(val);
		val = NULL;
	}
	if (rc != 0) {
		free(val);
		free(out);
		return rc;
	}
	*buf = out != NULL ? out : val;
	*raw = out != NULL ? out : val + FORMAT_CHUNK_HDR_BYTES;
	*len = h.raw_len;
	return 0;
}

int
store_blob_reader_take(struct store_blob_reader *r, uint64_t offset,
    size_t max, void **buf, const uint8_t **p, size_t *n)
{
	const uint8_t *raw;
	uint64_t start;
	size_t len, skip;
	int rc;

	*buf = NULL;
	*p = NULL;
	*n = 0;
	if (offset > r->size)
		return STORE_E_RANGE;
	if (offset == r->size || max == 0)
		return 0;
	rc = reader_load(r, offset, buf, &raw, &start, &len);
	if (rc != 0)
		return rc;
	skip = (size_t)(offset - start);
	*p = raw + skip;
	*n = len - skip;
	if (*n > r->size - offset)
		*n = (size_t)(r->size - offset);
	if (*n > max)
		*n = max;
	return 0;
}

int
store_blob_reader_read(struct store_blob_reader *r, uint64_t offset, void *buf,
    size_t len, size_t *nread)
{
	uint8_t *dst = buf;
	size_t done = 0;
	int rc = 0;

	*nread = 0;
	if (offset > r->size)
		return STORE_E_RANGE;
	while (done < len) {
		const uint8_t *p;
		void *chunk;
		size_t n;

		rc = store_blob_reader_take(r, offset + done, len - done,
		    &chunk, &p, &n);
		if (rc != 0 || n == 0)
			break;
		memcpy(dst + done, p, n);
		free(chunk);
		done += n;
	}
	if (rc != 0)
		return rc;
	*nread = done;
	return 0;
}

/* ---- writes ------------------------------------------------------------ */

struct blob_op {
	struct store_op op;
	char repo[FORMAT_REPO_MAX_BYTES];
	size_t repolen;
	struct oci_digest digest;
};

static int
blob_link_apply(struct store_wtxn *w, struct store_op *op)
{
	struct blob_op *b = (struct blob_op *)op;
	struct store_blob_info info;
	uint64_t set;
	int rc;

	rc = blob_get(w->st, w->txn, &b->digest, &info, &set);
	if (rc != 0)
		return rc;
	if (info.flags & FORMAT_BLOB_F_QUARANTINE)
		return STORE_E_NOTFOUND;
	/* A mount, like a push, starts a fresh collection grace period. */
	info.created = w->now;
	rc = blob_put(w, &info, set);
	if (rc != 0)
		return rc;
	return link_put(w, b->repo, b->repolen, FORMAT_LINK_BLOB, &b->digest);
}

static int
blob_unlink_apply(struct store_wtxn *w, struct store_op *op)
{
	struct blob_op *b = (struct blob_op *)op;

	return link_del(w, b->repo, b->repolen, FORMAT_LINK_BLOB, &b->digest);
}

int
blob_remove(struct store_wtxn *w, const struct oci_digest *d)
{
	uint8_t key[FORMAT_DIGEST_KEY_BYTES];
	MDB_val k = { sizeof(key), key };
	struct store_blob_info info;
	uint64_t set;
	int rc;

	rc = blob_get(w->st, w->txn, d, &info, &set);
	if (rc != 0)
		return rc;
	rc = chunk_set_delete(w, set);
	if (rc == 0)
		rc = link_del_all(w, FORMAT_LINK_BLOB, d);
	if (rc != 0)
		return rc;
	digest_key(key, d);
	return store_mdb_error(mdb_del(w->txn, w->st->dbi[DBI_BLOBS], &k, NULL),
	    "blob delete");
}

static int
blob_delete_apply(struct store_wtxn *w, struct store_op *op)
{
	return blob_remove(w, &((struct blob_op *)op)->digest);
}

static int
blob_op_run(struct store *st, int (*apply)(struct store_wtxn *, struct store_op *),
    const char *repo, size_t repolen, const struct oci_digest *d,
    store_done_fn *done, void *arg)
{
	struct blob_op *b;

	if (d == NULL || d->alg != OCI_DIGEST_SHA256)
		return STORE_E_INVALID;
	if (apply != blob_delete_apply && !oci_name_valid(repo, repolen))
		return STORE_E_INVALID;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return STORE_E_NOMEM;
	b->op.apply = apply;
	b->op.done = store_op_done_default;
	b->op.flags = STORE_OP_DURABLE;
	if (repo != NULL)
		memcpy(b->repo, repo, repolen);
	b->repolen = repolen;
	b->digest = *d;
	return store_op_go(st, &b->op, done, arg);
}

int
store_blob_link(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d)
{
	return blob_op_run(st, blob_link_apply, repo, repolen, d, NULL, NULL);
}

int
store_blob_unlink(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d)
{
	return blob_op_run(st, blob_unlink_apply, repo, repolen, d, NULL, NULL);
}

int
store_blob_link_async(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d, store_done_fn *done, void *arg)
{
	return blob_op_run(st, blob_link_apply, repo, repolen, d, done, arg);
}

int
store_blob_unlink_async(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d, store_done_fn *done, void *arg)
{
	return blob_op_run(st, blob_unlink_apply, repo, repolen, d, done, arg);
}

int
store_blob_delete(struct store *st, const struct oci_digest *d)
{
	return blob_op_run(st, blob_delete_apply, NULL, 0, d, NULL, NULL);
}

int
store_blob_foreach(struct store *st, store_blob_fn *fn, void *arg)
{
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	struct store_blob_info info;
	struct oci_digest d;
	uint64_t set;
	int rc;

	rc = store_rtxn_begin(st, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_open(txn, st->dbi[DBI_BLOBS], &c);
	if (rc != 0) {
		rc = store_mdb_error(rc, "cursor");
		goto out;
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != FORMAT_DIGEST_KEY_BYTES ||
		    digest_from_key(k.mv_data, k.mv_size, &d) != 0) {
			rc = STORE_E_CORRUPT;
			goto out;
		}
		rc = blob_get(st, txn, &d, &info, &set);
		if (rc == 0 && fn(arg, &info) != 0)
			break;
		if (rc != 0)
			goto out;
	}
	rc = (rc == MDB_NOTFOUND || rc == 0) ? 0 : store_mdb_error(rc, "blob scan");
out:
	mdb_cursor_close(c);
	store_rtxn_end(txn);
	return rc;
}
