/*
 * Manifests, tags, repositories, references and referrers.
 *
 * A manifest record is global (one per digest); repositories reach it
 * through a manifest link. Putting a manifest records, in the same
 * transaction, its references (refs) and, when it has a subject, a
 * referrers entry for the repository. Deleting it from the last repository
 * that links it removes the record and its references.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

/* Longest manifest the record format can hold (24-bit raw length). */
#define MANIFEST_MAX_BYTES FORMAT_CHUNK_RAW_LIMIT

struct manifest_op {
	struct store_op op;
	const char *repo;               /* point into the buffers below */
	size_t repolen;
	const struct store_manifest *m; /* caller's, alive until done */
	const char *tag;
	size_t taglen;
	char repo_buf[FORMAT_REPO_MAX_BYTES];
	char tag_buf[FORMAT_TAG_MAX_BYTES];
	struct oci_digest digest;
	enum { MOP_PUT, MOP_DELETE, MOP_TAG_PUT, MOP_TAG_DELETE } kind;
};

/* tags key: repo, 0, tag. */
static int
tag_key(uint8_t *key, const char *repo, size_t repolen, const char *tag,
    size_t taglen)
{
	int n = repo_prefix(key, repo, repolen);

	if (n < 0)
		return n;
	if (!oci_tag_valid(tag, taglen))
		return STORE_E_INVALID;
	memcpy(key + n, tag, taglen);
	return n + (int)taglen;
}

/* referrers key: repo, 0, subject, referrer. */
static int
referrer_key(uint8_t *key, const char *repo, size_t repolen,
    const struct oci_digest *subject, const struct oci_digest *referrer)
{
	int n = repo_prefix(key, repo, repolen);

	if (n < 0)
		return n;
	digest_key(key + n, subject);
	n += FORMAT_DIGEST_KEY_BYTES;
	if (referrer != NULL) {
		digest_key(key + n, referrer);
		n += FORMAT_DIGEST_KEY_BYTES;
	}
	return n;
}

static int
tag_put(struct store_wtxn *w, const char *repo, size_t repolen,
    const char *tag, size_t taglen, const struct oci_digest *d)
{
	uint8_t key[STORE_KEY_MAX_BYTES], val[FORMAT_TAG_BYTES];
	MDB_val k, v = { sizeof(val), val };
	int n;

	n = tag_key(key, repo, repolen, tag, taglen);
	if (n < 0)
		return n;
	k = (MDB_val){ (size_t)n, key };
	digest_key(val, d);
	format_put_le64(val + FORMAT_DIGEST_KEY_BYTES, w->now);
	return store_mdb_error(mdb_put(w->txn, w->st->dbi[DBI_TAGS], &k, &v, 0),
	    "tag put");
}

static int
manifest_record_put(struct store_wtxn *w, const struct store_manifest *m)
{
	uint8_t key[FORMAT_DIGEST_KEY_BYTES];
	MDB_val k = { sizeof(key), key }, v;
	const uint8_t *enc;
	size_t enclen;
	uint8_t *p;
	int rc;

	digest_key(key, &m->digest);
	rc = mdb_get(w->txn, w->st->dbi[DBI_MANIFESTS], &k, &v);
	if (rc == 0)
		return 0;       /* same digest, same bytes */
	if (rc != MDB_NOTFOUND)
		return store_mdb_error(rc, "manifest get");
	rc = chunk_encode(w->st, m->data, m->len, true, &enc, &enclen);
	if (rc != 0)
		return rc;
	v.mv_size = FORMAT_MANIFEST_FIXED_BYTES + m->media_type_len + enclen;
	rc = mdb_put(w->txn, w->st->dbi[DBI_MANIFESTS], &k, &v, MDB_RESERVE);
	if (rc != 0)
		return store_mdb_error(rc, "manifest put");
	p = v.mv_data;
	format_put_le64(p, w->now);
	format_put_le16(p + 8, (uint16_t)m->media_type_len);
	memcpy(p + FORMAT_MANIFEST_FIXED_BYTES, m->media_type, m->media_type_len);
	memcpy(p + FORMAT_MANIFEST_FIXED_BYTES + m->media_type_len, enc, enclen);
	return 0;
}

static int
refs_put(struct store_wtxn *w, const char *repo, size_t repolen,
    const struct store_manifest *m)
{
	uint8_t key[STORE_KEY_MAX_BYTES], val[8 + 2 + 2 * 255 + 2];
	MDB_val k, v;
	size_t vlen;
	int n, rc;

	for (size_t i = 0; i < m->nrefs; i++) {
		const struct store_ref *r = &m->refs[i];

		digest_key(key, &m->digest);
		key[FORMAT_DIGEST_KEY_BYTES] = r->kind;
		digest_key(key + FORMAT_DIGEST_KEY_BYTES + 1, &r->digest);
		format_put_le64(val, r->size);
		k = (MDB_val){ FORMAT_REF_KEY_BYTES, key };
		v = (MDB_val){ 8, val };
		rc = mdb_put(w->txn, w->st->dbi[DBI_REFS], &k, &v, 0);
		if (rc != 0)
			return store_mdb_error(rc, "ref put");
		if (r->kind != FORMAT_REF_SUBJECT)
			continue;
		n = referrer_key(key, repo, repolen, &r->digest, &m->digest);
		if (n < 0)
			return n;
		format_put_le64(val, m->len);
		format_put_le16(val + 8, (uint16_t)m->media_type_len);
		memcpy(val + 10, m->media_type, m->media_type_len);
		vlen = 10 + m->media_type_len;
		format_put_le16(val + vlen, (uint16_t)m->artifact_type_len);
		if (m->artifact_type_len > 0)
			memcpy(val + vlen + 2, m->artifact_type, m->artifact_type_len);
		vlen += 2 + m->artifact_type_len;
		k = (MDB_val){ (size_t)n, key };
		v = (MDB_val){ vlen, val };
		rc = mdb_put(w->txn, w->st->dbi[DBI_REFERRERS], &k, &v, 0);
		if (rc != 0)
			return store_mdb_error(rc, "referrer put");
	}
	return 0;
}

/* See store_manifest.require_refs. */
static int
manifest_refs_present(struct store_wtxn *w, struct manifest_op *mo)
{
	for (size_t i = 0; i < mo->m->nrefs; i++) {
		const struct store_ref *r = &mo->m->refs[i];
		struct store_blob_info info;
		uint64_t set;
		int rc = 0;

		if (r->external)
			continue;
		if (r->kind == FORMAT_REF_CONFIG || r->kind == FORMAT_REF_LAYER) {
			rc = blob_get(w->st, w->txn, &r->digest, &info, &set);
			if (rc == 0 && (info.flags & FORMAT_BLOB_F_QUARANTINE))
				rc = STORE_E_NOTFOUND;
		} else if (r->kind == FORMAT_REF_MANIFEST) {
			rc = link_exists(w->st, w->txn, mo->repo, mo->repolen,
			    FORMAT_LINK_MANIFEST, &r->digest);
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
manifest_put_apply(struct store_wtxn *w, struct manifest_op *mo)
{
	int rc;

	if (mo->m->require_refs) {
		rc = manifest_refs_present(w, mo);
		if (rc != 0)
			return rc;
	}
	rc = manifest_record_put(w, mo->m);
	if (rc == 0)
		rc = link_put(w, mo->repo, mo->repolen, FORMAT_LINK_MANIFEST,
		    &mo->m->digest);
	if (rc == 0)
		rc = refs_put(w, mo->repo, mo->repolen, mo->m);
	if (rc == 0 && mo->tag != NULL)
		rc = tag_put(w, mo->repo, mo->repolen, mo->tag, mo->taglen,
		    &mo->m->digest);
	return rc;
}

/*
 * Calls fn on each key of db starting with prefix. fn may delete the item
 * under the cursor: after a cursor delete LMDB's MDB_NEXT yields the item
 * that followed it.
 */
static int
prefix_walk(struct store_wtxn *w, MDB_dbi dbi, const uint8_t *prefix,
    size_t plen, int (*fn)(struct store_wtxn *, MDB_cursor *, MDB_val *,
    MDB_val *, void *), void *arg)
{
	MDB_cursor *c = NULL;
	MDB_val k = { plen, (void *)prefix }, v;
	int rc, frc = 0;

	rc = mdb_cursor_open(w->txn, dbi, &c);
	if (rc != 0)
		return store_mdb_error(rc, "cursor");
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= plen &&
	    memcmp(k.mv_data, prefix, plen) == 0) {
		frc = fn(w, c, &k, &v, arg);
		if (frc != 0)
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (frc != 0)
		return frc;
	return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "scan");
}

/* Deletes a tag whose value names arg's digest. */
static int
untag_fn(struct store_wtxn *w, MDB_cursor *c, MDB_val *k, MDB_val *v,
    void *arg)
{
	uint8_t dk[FORMAT_DIGEST_KEY_BYTES];

	(void)w;
	(void)k;
	digest_key(dk, arg);
	if (v->mv_size == FORMAT_TAG_BYTES &&
	    memcmp(v->mv_data, dk, sizeof(dk)) == 0) {
		return store_mdb_error(mdb_cursor_del(c, 0), "tag delete");
	}
	return 0;
}

struct unref_ctx {
	const char *repo;
	size_t repolen;
	const struct oci_digest *d;
};

/* For each subject ref of the manifest, drop the repository's referrer. */
static int
unrefer_fn(struct store_wtxn *w, MDB_cursor *c, MDB_val *k, MDB_val *v,
    void *arg)
{
	struct unref_ctx *uc = arg;
	uint8_t key[STORE_KEY_MAX_BYTES];
	struct oci_digest subject;
	MDB_val rk;
	int n, rc;

	(void)c;
	(void)v;
	if (k->mv_size != FORMAT_REF_KEY_BYTES ||
	    ((const uint8_t *)k->mv_data)[FORMAT_DIGEST_KEY_BYTES] !=
	    FORMAT_REF_SUBJECT)
		return 0;
	rc = digest_from_key((const uint8_t *)k->mv_data +
	    FORMAT_DIGEST_KEY_BYTES + 1, FORMAT_DIGEST_KEY_BYTES, &subject);
	if (rc != 0)
		return rc;
	n = referrer_key(key, uc->repo, uc->repolen, &subject, uc->d);
	if (n < 0)
		return n;
	rk = (MDB_val){ (size_t)n, key };
	rc = mdb_del(w->txn, w->st->dbi[DBI_REFERRERS], &rk, NULL);
	return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "referrer delete");
}

static int
delete_fn(struct store_wtxn *w, MDB_cursor *c, MDB_val *k, MDB_val *v,
    void *arg)
{
	(void)w;
	(void)k;
	(void)v;
	(void)arg;
	return store_mdb_error(mdb_cursor_del(c, 0), "delete");
}

int
manifest_drop(struct store_wtxn *w, const struct oci_digest *d)
{
	uint8_t prefix[FORMAT_DIGEST_KEY_BYTES];
	MDB_val k;
	int rc;

	digest_key(prefix, d);
	rc = prefix_walk(w, w->st->dbi[DBI_REFS], prefix, FORMAT_DIGEST_KEY_BYTES,
	    delete_fn, NULL);
	if (rc != 0)
		return rc;
	k = (MDB_val){ FORMAT_DIGEST_KEY_BYTES, prefix };
	rc = mdb_del(w->txn, w->st->dbi[DBI_MANIFESTS], &k, NULL);
	/* A link whose record is missing (damage) can still be removed. */
	return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "manifest delete");
}

int
manifest_unlink(struct store_wtxn *w, const char *repo, size_t repolen,
    const struct oci_digest *d)
{
	uint8_t prefix[STORE_KEY_MAX_BYTES];
	struct unref_ctx uc = { repo, repolen, d };
	int n, rc;

	rc = link_exists(w->st, w->txn, repo, repolen, FORMAT_LINK_MANIFEST, d);
	if (rc != 0)
		return rc;
	rc = link_del(w, repo, repolen, FORMAT_LINK_MANIFEST, d);
	if (rc != 0)
		return rc;
	n = repo_prefix(prefix, repo, repolen);
	if (n < 0)
		return n;
	rc = prefix_walk(w, w->st->dbi[DBI_TAGS], prefix, (size_t)n, untag_fn,
	    (void *)d);
	if (rc != 0)
		return rc;
	digest_key(prefix, d);
	rc = prefix_walk(w, w->st->dbi[DBI_REFS], prefix, FORMAT_DIGEST_KEY_BYTES,
	    unrefer_fn, &uc);
	if (rc != 0)
		return rc;
	rc = manifest_linked_anywhere(w, d);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	/* No repository links it any more: the record and its refs go. */
	return manifest_drop(w, d);
}

int
manifest_linked_anywhere(struct store_wtxn *w, const struct oci_digest *d)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc, found = 0;

	rc = link_any(w->st, w->txn, FORMAT_LINK_MANIFEST, d);
	if (rc != 0)
		return rc;
	/* The mirrors say none; a links record without its mirror (damage)
	 * must still keep the manifest: ask every repository. */
	rc = mdb_cursor_open(w->txn, w->st->dbi[DBI_REPOS], &c);
	if (rc != 0)
		return store_mdb_error(rc, "cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		int lrc;

		if (k.mv_size == 0 || k.mv_size > FORMAT_REPO_MAX_BYTES)
			continue;
		lrc = link_exists(w->st, w->txn, k.mv_data, k.mv_size,
		    FORMAT_LINK_MANIFEST, d);
		if (lrc == 0) {
			found = 1;
			break;
		}
		if (lrc != STORE_E_NOTFOUND && lrc != STORE_E_INVALID) {
			mdb_cursor_close(c);
			return lrc;
		}
	}
	mdb_cursor_close(c);
	if (found)
		return 1;
	return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "scan");
}

static int
manifest_delete_apply(struct store_wtxn *w, struct manifest_op *mo)
{
	return manifest_unlink(w, mo->repo, mo->repolen, &mo->digest);
}

static int
tag_put_apply(struct store_wtxn *w, struct manifest_op *mo)
{
	int rc;

	rc = link_exists(w->st, w->txn, mo->repo, mo->repolen,
	    FORMAT_LINK_MANIFEST, &mo->digest);
	if (rc != 0)
		return rc;
	return tag_put(w, mo->repo, mo->repolen, mo->tag, mo->taglen, &mo->digest);
}

static int
tag_delete_apply(struct store_wtxn *w, struct manifest_op *mo)
{
	uint8_t key[STORE_KEY_MAX_BYTES];
	MDB_val k;
	int n;

	n = tag_key(key, mo->repo, mo->repolen, mo->tag, mo->taglen);
	if (n < 0)
		return n;
	k = (MDB_val){ (size_t)n, key };
	return store_mdb_error(mdb_del(w->txn, w->st->dbi[DBI_TAGS], &k, NULL),
	    "tag delete");
}

static int
manifest_apply(struct store_wtxn *w, struct store_op *op)
{
	struct manifest_op *mo = (struct manifest_op *)op;

	switch (mo->kind) {
	case MOP_PUT:
		return manifest_put_apply(w, mo);
	case MOP_DELETE:
		return manifest_delete_apply(w, mo);
	case MOP_TAG_PUT:
		return tag_put_apply(w, mo);
	case MOP_TAG_DELETE:
		return tag_delete_apply(w, mo);
	}
	return STORE_E_INVALID;
}

static int
manifest_op_run(struct store *st, struct manifest_op *tmpl, store_done_fn *done,
    void *arg)
{
	struct manifest_op *mo;

	if (!oci_name_valid(tmpl->repo, tmpl->repolen) ||
	    (tmpl->tag != NULL && !oci_tag_valid(tmpl->tag, tmpl->taglen)))
		return STORE_E_INVALID;
	mo = malloc(sizeof(*mo));
	if (mo == NULL)
		return STORE_E_NOMEM;
	*mo = *tmpl;
	/* Names are copied: an asynchronous caller's may not outlive the call. */
	memcpy(mo->repo_buf, tmpl->repo, tmpl->repolen);
	mo->repo = mo->repo_buf;
	if (tmpl->tag != NULL) {
		memcpy(mo->tag_buf, tmpl->tag, tmpl->taglen);
		mo->tag = mo->tag_buf;
	}
	mo->op.apply = manifest_apply;
	mo->op.done = store_op_done_default;
	mo->op.flags = STORE_OP_DURABLE;
	mo->op.bytes = tmpl->m != NULL ? tmpl->m->len : 0;
	return store_op_go(st, &mo->op, done, arg);
}

int
store_manifest_put(struct store *st, const char *repo, size_t repolen,
    const struct store_manifest *m, const char *tag, size_t taglen)
{
	return store_manifest_put_async(st, repo, repolen, m, tag, taglen, NULL,
	    NULL);
}

int
store_manifest_put_async(struct store *st, const char *repo, size_t repolen,
    const struct store_manifest *m, const char *tag, size_t taglen,
    store_done_fn *done, void *arg)
{
	struct manifest_op mo = {
		.repo = repo, .repolen = repolen, .m = m, .tag = tag,
		.taglen = taglen, .kind = MOP_PUT,
	};
	struct oci_digest got;

	if (m == NULL || m->data == NULL || m->len == 0 ||
	    m->len > MANIFEST_MAX_BYTES || m->media_type == NULL ||
	    m->media_type_len == 0 ||
	    m->media_type_len > FORMAT_MEDIA_TYPE_MAX_BYTES ||
	    m->artifact_type_len > FORMAT_MEDIA_TYPE_MAX_BYTES ||
	    (m->artifact_type == NULL && m->artifact_type_len > 0) ||
	    (m->nrefs > 0 && m->refs == NULL))
		return STORE_E_INVALID;
	if (m->digest.alg != OCI_DIGEST_SHA256)
		return STORE_E_UNSUPPORTED;
	for (size_t i = 0; i < m->nrefs; i++)
		if (m->refs[i].kind < FORMAT_REF_CONFIG ||
		    m->refs[i].kind > FORMAT_REF_SUBJECT ||
		    m->refs[i].digest.alg != OCI_DIGEST_SHA256)
			return STORE_E_INVALID;
	oci_digest_sha256(m->data, m->len, &got);
	if (!oci_digest_equal(&got, &m->digest))
		return STORE_E_DIGEST;
	return manifest_op_run(st, &mo, done, arg);
}

int
store_manifest_delete(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d)
{
	return store_manifest_delete_async(st, repo, repolen, d, NULL, NULL);
}

int
store_manifest_delete_async(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d, store_done_fn *done, void *arg)
{
	struct manifest_op mo = {
		.repo = repo, .repolen = repolen, .kind = MOP_DELETE,
	};

	if (d == NULL || d->alg != OCI_DIGEST_SHA256)
		return STORE_E_INVALID;
	mo.digest = *d;
	return manifest_op_run(st, &mo, done, arg);
}

int
store_tag_put(struct store *st, const char *repo, size_t repolen,
    const char *tag, size_t taglen, const struct oci_digest *d)
{
	struct manifest_op mo = {
		.repo = repo, .repolen = repolen, .tag = tag, .taglen = taglen,
		.kind = MOP_TAG_PUT,
	};

	if (d == NULL || d->alg != OCI_DIGEST_SHA256 || tag == NULL)
		return STORE_E_INVALID;
	mo.digest = *d;
	return manifest_op_run(st, &mo, NULL, NULL);
}

int
store_tag_delete(struct store *st, const char *repo, size_t repolen,
    const char *tag, size_t taglen)
{
	return store_tag_delete_async(st, repo, repolen, tag, taglen, NULL, NULL);
}

int
store_tag_delete_async(struct store *st, const char *repo, size_t repolen,
    const char *tag, size_t taglen, store_done_fn *done, void *arg)
{
	struct manifest_op mo = {
		.repo = repo, .repolen = repolen, .tag = tag, .taglen = taglen,
		.kind = MOP_TAG_DELETE,
	};

	if (tag == NULL)
		return STORE_E_INVALID;
	return manifest_op_run(st, &mo, done, arg);
}

/* ---- reads ------------------------------------------------------------- */

int
store_manifest_get(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d, void **data, size_t *len, char **media_type)
{
	uint8_t key[FORMAT_DIGEST_KEY_BYTES];
	MDB_val k = { sizeof(key), key }, v;
	MDB_txn *txn = NULL;
	ZSTD_DCtx *dctx = NULL;
	struct manifest_rec mr;
	struct chunk_hdr h;
	void *buf = NULL;
	char *mt = NULL;
	int rc;

	*data = NULL;
	*len = 0;
	if (media_type != NULL)
		*media_type = NULL;
	if (d == NULL || d->alg != OCI_DIGEST_SHA256 ||
	    !oci_name_valid(repo, repolen))
		return STORE_E_INVALID;
	rc = store_rtxn_begin(st, &txn);
	if (rc != 0)
		return rc;
	rc = link_exists(st, txn, repo, repolen, FORMAT_LINK_MANIFEST, d);
	if (rc != 0)
		goto out;
	digest_key(key, d);
	rc = mdb_get(txn, st->dbi[DBI_MANIFESTS], &k, &v);
	if (rc != 0) {
		/* A link without its record is damage, not absence. */
		rc = rc == MDB_NOTFOUND ? STORE_E_CORRUPT :
		    store_mdb_error(rc, "manifest get");
		goto out;
	}
	rc = record_manifest_decode(v.mv_data, v.mv_size, &mr);
	if (rc == 0)
		rc = chunk_verify(mr.chunk, mr.chunk_len, MANIFEST_MAX_BYTES, &h);
	if (rc != 0)
		goto out;
	buf = malloc(h.raw_len > 0 ? h.raw_len : 1);
	dctx = ZSTD_createDCtx();
	if (media_type != NULL)
		mt = malloc(mr.media_type_len + 1);
	if (buf == NULL || dctx == NULL || (media_type != NULL && mt == NULL)) {
		rc = STORE_E_NOMEM;
		goto out;
	}
	rc = chunk_decode(mr.chunk, &h, dctx, buf, h.raw_len);
	if (rc != 0)
		goto out;
	if (mt != NULL) {
		memcpy(mt, mr.media_type, mr.media_type_len);
		mt[mr.media_type_len] = '\0';
		*media_type = mt;
		mt = NULL;
	}
	*data = buf;
	*len = h.raw_len;
	buf = NULL;
out:
	store_rtxn_end(txn);
	ZSTD_freeDCtx(dctx);
	free(buf);
	free(mt);
	return rc;
}

int
store_manifest_exists(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *d)
{
	MDB_txn *txn = NULL;
	int rc;

	if (d == NULL || d->alg != OCI_DIGEST_SHA256 ||
	    !oci_name_valid(repo, repolen))
		return STORE_E_INVALID;
	rc = store_rtxn_begin(st, &txn);
	if (rc != 0)
		return rc;
	rc = link_exists(st, txn, repo, repolen, FORMAT_LINK_MANIFEST, d);
	store_rtxn_end(txn);
	return rc;
}

int
store_tag_get(struct store *st, const char *repo, size_t repolen,
    const char *tag, size_t taglen, struct oci_digest *out)
{
	uint8_t key[STORE_KEY_MAX_BYTES];
	MDB_txn *txn = NULL;
	MDB_val k, v;
	int n, rc;

	memset(out, 0, sizeof(*out));
	n = tag_key(key, repo, repolen, tag, taglen);
	if (n < 0)
		return n;
	rc = store_rtxn_begin(st, &txn);
	if (rc != 0)
		return rc;
	k = (MDB_val){ (size_t)n, key };
	rc = store_mdb_error(mdb_get(txn, st->dbi[DBI_TAGS], &k, &v), "tag get");
	if (rc == 0) {
		uint64_t updated;

		rc = record_tag_decode(v.mv_data, v.mv_size, out, &updated);
	}
	store_rtxn_end(txn);
	return rc;
}

/*
 * Lists keys of dbi that start with prefix, handing fn the part after it,
 * in order, after `last`, at most n (0: all).
 */
static int
name_list(struct store *st, MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix,
    size_t plen, const char *last, size_t lastlen, size_t n,
    store_name_fn *fn, void *arg)
{
	uint8_t key[STORE_KEY_MAX_BYTES];
	MDB_cursor *c = NULL;
	MDB_val k, v;
	size_t count = 0;
	int rc;

	(void)st;
	if (plen + lastlen > sizeof(key))
		return STORE_E_INVALID;
	memcpy(key, prefix, plen);
	if (last != NULL)
		memcpy(key + plen, last, lastlen);
	rc = mdb_cursor_open(txn, dbi, &c);
	if (rc != 0)
		return store_mdb_error(rc, "cursor");
	k = (MDB_val){ plen + (last != NULL ? lastlen : 0), key };
	rc = mdb_cursor_get(c, &k, &v, k.mv_size > 0 ? MDB_SET_RANGE : MDB_FIRST);
	/* `last` itself is excluded: the page starts strictly after it. */
	if (rc == 0 && last != NULL && k.mv_size == plen + lastlen &&
	    memcmp(k.mv_data, key, plen + lastlen) == 0)
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	while (rc == 0 && (n == 0 || count < n) && k.mv_size > plen &&
	    memcmp(k.mv_data, prefix, plen) == 0) {
		if (fn(arg, (const char *)k.mv_data + plen, k.mv_size - plen) != 0)
			break;
		count++;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "list");
}

int
store_tag_list(struct store *st, const char *repo, size_t repolen,
    const char *last, size_t lastlen, size_t n, store_name_fn *fn, void *arg)
{
	uint8_t prefix[FORMAT_REPO_MAX_BYTES + 1];
	MDB_txn *txn = NULL;
	MDB_val k, v;
	int plen, rc;

	plen = repo_prefix(prefix, repo, repolen);
	if (plen < 0)
		return plen;
	if (last != NULL && lastlen > FORMAT_TAG_MAX_BYTES)
		return STORE_E_INVALID;
	rc = store_rtxn_begin(st, &txn);
	if (rc != 0)
		return rc;
	k = (MDB_val){ repolen, (void *)repo };
	rc = store_mdb_error(mdb_get(txn, st->dbi[DBI_REPOS], &k, &v), "repo get");
	if (rc == 0)
		rc = name_list(st, txn, st->dbi[DBI_TAGS], prefix, (size_t)plen,
		    last, lastlen, n, fn, arg);
	store_rtxn_end(txn);
	return rc;
}

int
store_repo_list(struct store *st, const char *last, size_t lastlen, size_t n,
    store_name_fn *fn, void *arg)
{
	MDB_txn *txn = NULL;
	int rc;

	if (last != NULL && lastlen > FORMAT_REPO_MAX_BYTES)
		return STORE_E_INVALID;
	rc = store_rtxn_begin(st, &txn);
	if (rc != 0)
		return rc;
	rc = name_list(st, txn, st->dbi[DBI_REPOS], (const uint8_t *)"", 0, last,
	    lastlen, n, fn, arg);
	store_rtxn_end(txn);
	return rc;
}

int
store_referrers_list(struct store *st, const char *repo, size_t repolen,
    const struct oci_digest *subject, store_referrer_fn *fn, void *arg)
{
	uint8_t prefix[STORE_KEY_MAX_BYTES];
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	int plen, rc;

	if (subject == NULL || subject->alg != OCI_DIGEST_SHA256)
		return STORE_E_INVALID;
	plen = referrer_key(prefix, repo, repolen, subject, NULL);
	if (plen < 0)
		return plen;
	rc = store_rtxn_begin(st, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_open(txn, st->dbi[DBI_REFERRERS], &c);
	if (rc != 0) {
		rc = store_mdb_error(rc, "cursor");
		goto out;
	}
	k = (MDB_val){ (size_t)plen, prefix };
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == (size_t)plen + FORMAT_DIGEST_KEY_BYTES &&
	    memcmp(k.mv_data, prefix, (size_t)plen) == 0) {
		struct store_referrer r;

		if (record_referrer_decode(v.mv_data, v.mv_size, &r) != 0 ||
		    digest_from_key((const uint8_t *)k.mv_data + plen,
		    FORMAT_DIGEST_KEY_BYTES, &r.digest) != 0) {
			rc = STORE_E_CORRUPT;
			goto out;
		}
		if (fn(arg, &r) != 0)
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	rc = rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "referrers");
out:
	mdb_cursor_close(c);
	store_rtxn_end(txn);
	return rc;
}

int
store_refs_list(struct store *st, const struct oci_digest *d, store_ref_fn *fn,
    void *arg)
{
	uint8_t prefix[FORMAT_DIGEST_KEY_BYTES];
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	int rc;

	if (d == NULL || d->alg != OCI_DIGEST_SHA256)
		return STORE_E_INVALID;
	digest_key(prefix, d);
	rc = store_rtxn_begin(st, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_open(txn, st->dbi[DBI_REFS], &c);
	if (rc != 0) {
		rc = store_mdb_error(rc, "cursor");
		goto out;
	}
	k = (MDB_val){ sizeof(prefix), prefix };
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == FORMAT_REF_KEY_BYTES &&
	    memcmp(k.mv_data, prefix, sizeof(prefix)) == 0) {
		struct store_ref r;
		const uint8_t *kp = k.mv_data;

		memset(&r, 0, sizeof(r));
		r.kind = kp[FORMAT_DIGEST_KEY_BYTES];
		if (v.mv_size != 8 || digest_from_key(kp + FORMAT_DIGEST_KEY_BYTES + 1,
		    FORMAT_DIGEST_KEY_BYTES, &r.digest) != 0) {
			rc = STORE_E_CORRUPT;
			goto out;
		}
		r.size = format_get_le64(v.mv_data);
		if (fn(arg, &r) != 0)
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	rc = rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "refs");
out:
	mdb_cursor_close(c);
	store_rtxn_end(txn);
	return rc;
}
