/*
 * Uploads: bytes streamed into a chunk set under an upload id, hashed as
 * they arrive, and turned into a blob by finish.
 *
 * State lives in three places:
 * - caller side (offset, SHA-256 state, the staging buffer of bytes not yet
 *   a full chunk): touched only by the thread using the handle. Hashing
 *   here, while the bytes are hot in cache, keeps the writer thread free
 *   for the disk. Each chunk op carries the hash state as of its last byte;
 * - writer side (committed offset, stored bytes, chunk count, flags):
 *   touched only by op apply()/done() on the writer thread. Each chunk is
 *   committed with the upload record holding the op's hash state, so a
 *   restart resumes exactly where the last commit ended;
 * - shared (pending bytes, in-flight ops, sticky error): under up->lock.
 * A failed chunk op leaves the caller's hash ahead of what is stored, so
 * the handle is poisoned; store_upload_resume() starts again from what is
 * committed.
 *
 * The SHA-256 state is kept as OpenSSL's SHA256_CTX because OpenSSL 3
 * cannot export an EVP digest state; it is serialized field by field
 * (format.h) and never stored as a raw struct.
 */
#define OPENSSL_API_COMPAT 0x10101000L
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "store/store_int.h"
#include "util/log.h"

struct store_upload {
	struct store *st;
	uint8_t id[FORMAT_UPLOAD_ID_BYTES];
	char repo[FORMAT_REPO_MAX_BYTES];
	size_t repolen;
	uint64_t set;
	uint64_t created;

	/* caller side */
	uint64_t offset;
	bool verify_only;       /* bytes are hashed, not stored */
	SHA256_CTX sha;
	uint8_t *stage;
	size_t staged;

	/* shared, under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t pending;
	unsigned inflight;
	int error;
	bool ended;
	bool finishing;         /* a finish is queued: no more bytes */
	store_done_fn *on_commit;       /* after each op, on the writer thread */
	void *on_commit_arg;
	store_done_fn *on_idle;         /* when no op is in flight any more */
	void *on_idle_arg;

	/* writer side */
	uint64_t w_offset;
	uint64_t w_stored;
	uint32_t w_nchunks;
	uint32_t w_flags;
	bool w_failed;
};

/* What an op may roll back if its nested transaction is aborted. */
struct upload_wstate {
	uint64_t offset, stored;
	uint32_t nchunks, flags;
};

enum upload_op_kind {
	UPLOAD_OP_NEW,
	UPLOAD_OP_CHUNK,
	UPLOAD_OP_FINISH,
	UPLOAD_OP_CANCEL,
};

struct upload_op {
	struct store_op op;
	struct store_upload *up;
	enum upload_op_kind kind;
	uint8_t *data;          /* owned: chunk bytes */
	size_t len;
	uint8_t sha[FORMAT_SHA256_STATE_BYTES]; /* hash state after data */
	struct oci_digest got;  /* finish: digest of everything written */
	uint64_t got_size;
	struct oci_digest expect;
	uint64_t expect_size;
	bool verify_only;       /* finish: of an upload whose bytes were dropped */
	bool gone;              /* ... whose blob was deleted: upload removed */
};

void
upload_sha_state_encode(uint8_t *p, const SHA256_CTX *c)
{
	for (int i = 0; i < 8; i++)
		format_put_le32(p + 4 * i, c->h[i]);
	format_put_le64(p + 32, (uint64_t)c->Nh << 32 | c->Nl);
	format_put_le32(p + 40, c->num);
	memset(p + 44, 0, 64);
	memcpy(p + 44, c->data, c->num);
}

/* Rebuilds a hash state checked by record_upload_decode. */
static void
sha_state_decode(const struct upload_rec *r, SHA256_CTX *c)
{
	const uint8_t *p = r->sha_state;
	uint64_t bits = r->offset * 8;

	SHA256_Init(c);
	for (int i = 0; i < 8; i++)
		c->h[i] = format_get_le32(p + 4 * i);
	c->Nl = (SHA_LONG)bits;
	c->Nh = (SHA_LONG)(bits >> 32);
	c->num = r->sha_buffered;
	memcpy(c->data, p + 44, r->sha_buffered);
}

static void
upload_wstate_save(const struct store_upload *up, struct upload_wstate *s)
{
	s->offset = up->w_offset;
	s->stored = up->w_stored;
	s->nchunks = up->w_nchunks;
	s->flags = up->w_flags;
}

static void
upload_wstate_restore(struct store_upload *up, const struct upload_wstate *s)
{
	up->w_offset = s->offset;
	up->w_stored = s->stored;
	up->w_nchunks = s->nchunks;
	up->w_flags = s->flags;
}

static int
upload_record_put(struct store_wtxn *w, struct store_upload *up,
    const uint8_t sha[FORMAT_SHA256_STATE_BYTES])
{
	MDB_val k = { FORMAT_UPLOAD_ID_BYTES, up->id }, v;
	uint8_t *p;
	int rc;

	v.mv_size = FORMAT_UPLOAD_FIXED_BYTES + up->repolen;
	rc = mdb_put(w->txn, w->st->dbi[DBI_UPLOADS], &k, &v, MDB_RESERVE);
	if (rc != 0)
		return store_mdb_error(rc, "upload put");
	p = v.mv_data;
	format_put_le64(p, up->set);
	format_put_le64(p + 8, up->w_offset);
	format_put_le64(p + 16, up->created);
	format_put_le64(p + 24, w->now);
	format_put_le32(p + 32, up->w_flags);
	format_put_le32(p + 36, up->w_nchunks);
	format_put_le64(p + 40, up->w_stored);
	memcpy(p + 48, sha, FORMAT_SHA256_STATE_BYTES);
	format_put_le16(p + 48 + FORMAT_SHA256_STATE_BYTES, (uint16_t)up->repolen);
	memcpy(p + FORMAT_UPLOAD_FIXED_BYTES, up->repo, up->repolen);
	return 0;
}

static int
upload_record_parse(struct store_upload *up, const MDB_val *v)
{
	struct upload_rec r;
	int rc;

	rc = record_upload_decode(v->mv_data, v->mv_size, &r);
	if (rc != 0)
		return rc;
	up->set = r.set;
	up->w_offset = r.offset;
	up->offset = r.offset;
	up->created = r.created;
	up->w_flags = r.flags;
	up->w_nchunks = r.nchunks;
	up->w_stored = r.stored;
	memcpy(up->repo, r.repo, r.repolen);
	up->repolen = r.repolen;
	sha_state_decode(&r, &up->sha);
	return 0;
}

static int
next_set_id(struct store_wtxn *w, uint64_t *out)
{
	MDB_val k = { strlen(FORMAT_META_NEXT_SET), (void *)FORMAT_META_NEXT_SET };
	MDB_val v;
	uint8_t buf[8];
	uint64_t id = 1;
	int rc;

	rc = mdb_get(w->txn, w->st->dbi[DBI_META], &k, &v);
	if (rc == 0 && v.mv_size == 8)
		id = format_get_le64(v.mv_data);
	else if (rc == 0)
		return STORE_E_CORRUPT;
	else if (rc != MDB_NOTFOUND)
		return store_mdb_error(rc, "meta get");
	format_put_le64(buf, id + 1);
	v = (MDB_val){ sizeof(buf), buf };
	rc = mdb_put(w->txn, w->st->dbi[DBI_META], &k, &v, 0);
	if (rc != 0)
		return store_mdb_error(rc, "meta put");
	*out = id;
	return 0;
}

static int
upload_chunk_write(struct store_wtxn *w, struct store_upload *up,
    const uint8_t *data, size_t len)
{
	size_t stored;
	bool compress;
	int rc;

	if (len == 0)
		return 0;
	if (!(up->w_flags & FORMAT_UPLOAD_F_SNIFFED)) {
		up->w_flags |= FORMAT_UPLOAD_F_SNIFFED;
		if (chunk_is_compressed_stream(data, len))
			up->w_flags |= FORMAT_UPLOAD_F_NOCOMPRESS;
	}
	compress = !(up->w_flags & FORMAT_UPLOAD_F_NOCOMPRESS);
	rc = chunk_put(w, up->set, up->w_offset, data, len, compress, &stored);
	if (rc != 0)
		return rc;
	up->w_offset += len;
	up->w_stored += stored;
	up->w_nchunks++;
	return 0;
}

/*
 * Finishing a verify-only upload: the bytes were hashed on their way and
 * dropped, so the blob they name must still be stored; it is linked to
 * the upload's repository exactly as a deduplicated upload would be.
 */
static int
upload_verify_apply(struct store_wtxn *w, struct upload_op *uo)
{
	struct store_upload *up = uo->up;
	MDB_val k = { FORMAT_UPLOAD_ID_BYTES, up->id };
	struct store_blob_info info;
	uint64_t set;
	int rc;

	if (up->w_offset != 0)
		return STORE_E_FAILED;
	if (!oci_digest_equal(&uo->got, &uo->expect))
		return STORE_E_DIGEST;
	if (uo->expect_size != UINT64_MAX && uo->expect_size != uo->got_size)
		return STORE_E_SIZE;
	rc = blob_get(w->st, w->txn, &uo->got, &info, &set);
	if (rc == 0 && ((info.flags & FORMAT_BLOB_F_QUARANTINE) ||
	    info.size != uo->got_size))
		rc = STORE_E_NOTFOUND;
	if (rc == STORE_E_NOTFOUND) {
		/*
		 * Deleted meanwhile: nothing to continue from. The upload is
		 * removed and reported not found; the client uploads again.
		 */
		uo->gone = true;
	} else if (rc != 0) {
		return rc;
	} else {
		info.created = w->now;
		rc = blob_put(w, &info, set);
		if (rc == 0)
			rc = link_put(w, up->repo, up->repolen,
			    FORMAT_LINK_BLOB, &uo->got);
		if (rc != 0)
			return rc;
	}
	return store_mdb_error(mdb_del(w->txn, w->st->dbi[DBI_UPLOADS], &k, NULL),
	    "upload delete");
}

static int
upload_finish_apply(struct store_wtxn *w, struct upload_op *uo)
{
	struct store_upload *up = uo->up;
	MDB_val k = { FORMAT_UPLOAD_ID_BYTES, up->id };
	struct store_blob_info info;
	struct oci_digest got = uo->got;
	uint64_t set;
	int rc;

	if (uo->verify_only)
		return upload_verify_apply(w, uo);
	/* The caller hashed exactly what was committed before this op. */
	if (uo->got_size != up->w_offset)
		return STORE_E_FAILED;
	if (!oci_digest_equal(&got, &uo->expect))
		return STORE_E_DIGEST;
	if (uo->expect_size != UINT64_MAX && uo->expect_size != up->w_offset)
		return STORE_E_SIZE;

	rc = blob_get(w->st, w->txn, &got, &info, &set);
	if (rc == 0 && !(info.flags & FORMAT_BLOB_F_QUARANTINE)) {
		/*
		 * Deduplicated: the blob is already here. Its grace period
		 * starts again, as if it had just been uploaded: the manifest
		 * that needs it may be about to follow.
		 */
		rc = chunk_set_delete(w, up->set);
		if (rc != 0)
			return rc;
		info.created = w->now;
		rc = blob_put(w, &info, set);
	} else if (rc == 0 || rc == STORE_E_NOTFOUND) {
		/* New, or heals a quarantined blob by replacing its chunks. */
		rc = rc == 0 ? chunk_set_delete(w, set) : 0;
		if (rc != 0)
			return rc;
		info = (struct store_blob_info){
			.digest = got, .size = up->w_offset,
			.stored = up->w_stored, .created = w->now,
			.nchunks = up->w_nchunks,
		};
		rc = blob_put(w, &info, up->set);
	}
	if (rc != 0)
		return rc;
	rc = link_put(w, up->repo, up->repolen, FORMAT_LINK_BLOB, &got);
	if (rc != 0)
		return rc;
	k = (MDB_val){ FORMAT_UPLOAD_ID_BYTES, up->id };
	return store_mdb_error(mdb_del(w->txn, w->st->dbi[DBI_UPLOADS], &k, NULL),
	    "upload delete");
}

/*
 * The upload record must be the one this handle continues: present, same
 * chunk set, ending where the handle's committed offset ends. Anything else
 * means the upload was finished, cancelled or advanced through another
 * handle, and writing on would corrupt what that handle committed.
 */
static int
upload_record_check(struct store_wtxn *w, struct store_upload *up,
    bool need_offset)
{
	MDB_val k = { FORMAT_UPLOAD_ID_BYTES, up->id }, v;
	struct upload_rec r;
	int rc;

	rc = mdb_get(w->txn, w->st->dbi[DBI_UPLOADS], &k, &v);
	if (rc != 0)
		return store_mdb_error(rc, "upload get");
	rc = record_upload_decode(v.mv_data, v.mv_size, &r);
	if (rc != 0)
		return rc;
	if (r.set != up->set || (need_offset && r.offset != up->w_offset))
		return STORE_E_CONFLICT;
	return 0;
}

/* 16 random bytes do not collide; if they ever did, refuse, never share. */
static int
upload_id_unused(struct store_wtxn *w, struct store_upload *up)
{
	MDB_val k = { FORMAT_UPLOAD_ID_BYTES, up->id }, v;
	int rc = mdb_get(w->txn, w->st->dbi[DBI_UPLOADS], &k, &v);

	if (rc == 0)
		return STORE_E_CONFLICT;
	return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "upload get");
}

static bool
upload_failure_poisons(enum upload_op_kind kind, int rc)
{
	return kind == UPLOAD_OP_CHUNK || (rc != STORE_E_DIGEST && rc != STORE_E_SIZE);
}

static int
upload_apply(struct store_wtxn *w, struct store_op *op)
{
	struct upload_op *uo = (struct upload_op *)op;
	struct store_upload *up = uo->up;
	struct upload_wstate saved;
	MDB_val k = { FORMAT_UPLOAD_ID_BYTES, up->id };
	int rc;

	/* A poisoned upload can still be cancelled. */
	if (up->w_failed && uo->kind != UPLOAD_OP_CANCEL)
		return STORE_E_FAILED;
	upload_wstate_save(up, &saved);
	/* Cancel may end an upload another handle advanced: same set only. */
	if (uo->kind != UPLOAD_OP_NEW)
		rc = upload_record_check(w, up, uo->kind != UPLOAD_OP_CANCEL);
	else
		rc = upload_id_unused(w, up);
	if (rc != 0)
		goto out;
	switch (uo->kind) {
	case UPLOAD_OP_NEW:
		up->created = w->now;
		rc = next_set_id(w, &up->set);
		if (rc == 0)
			rc = upload_record_put(w, up, uo->sha);
		break;
	case UPLOAD_OP_CHUNK:
		rc = upload_chunk_write(w, up, uo->data, uo->len);
		if (rc == 0)
			rc = upload_record_put(w, up, uo->sha);
		/* The bytes now live in LMDB's dirty pages: do not hold two copies. */
		free(uo->data);
		uo->data = NULL;
		break;
	case UPLOAD_OP_FINISH:
		rc = upload_finish_apply(w, uo);
		break;
	case UPLOAD_OP_CANCEL:
		rc = chunk_set_delete(w, up->set);
		if (rc == 0)
			rc = store_mdb_error(mdb_del(w->txn,
			    w->st->dbi[DBI_UPLOADS], &k, NULL), "upload delete");
		break;
	default:
		rc = STORE_E_INVALID;
	}
out:
	/*
	 * The nested transaction is rolled back; so is the writer side. Later
	 * ops of this upload, maybe in this very batch, must not build on a
	 * chunk that is missing.
	 */
	if (rc != 0) {
		upload_wstate_restore(up, &saved);
		if (upload_failure_poisons(uo->kind, rc))
			up->w_failed = true;
	}
	return rc;
}

static void
upload_release(struct store_upload *up)
{
	store_done_fn *idle = NULL;
	void *idle_arg = NULL;

	pthread_mutex_lock(&up->lock);
	up->inflight--;
	if (up->inflight == 0) {
		idle = up->on_idle;
		idle_arg = up->on_idle_arg;
	}
	pthread_cond_broadcast(&up->cond);
	pthread_mutex_unlock(&up->lock);
	/* Nothing touches up after this: the callee may have it freed. */
	if (idle != NULL)
		idle(idle_arg, 0);
}

static void
upload_done(struct store_op *op, int rc)
{
	struct upload_op *uo = (struct upload_op *)op;
	struct store_upload *up = uo->up;
	store_done_fn *on_commit;
	void *on_commit_arg;
	bool gone = rc == 0 && uo->gone;

	if (gone)
		rc = STORE_E_NOTFOUND;
	/*
	 * A chunk that failed cannot be retried in place: the caller's offset
	 * already counts it. A finish that failed its digest or size check
	 * leaves the upload usable.
	 */
	if (rc != 0 && upload_failure_poisons(uo->kind, rc))
		up->w_failed = true;
	pthread_mutex_lock(&up->lock);
	if (rc != 0 && up->w_failed && up->error == 0)
		up->error = rc;
	/* Report the failure that poisoned the upload, not the echo of it. */
	if (rc == STORE_E_FAILED && up->error != 0)
		rc = up->error;
	if (gone || (rc == 0 && (uo->kind == UPLOAD_OP_FINISH ||
	    uo->kind == UPLOAD_OP_CANCEL)))
		up->ended = true;
	if (uo->kind == UPLOAD_OP_FINISH)
		up->finishing = false;
	up->pending -= uo->len;
	/* Taken before notify, which may lead the caller to set a new one. */
	on_commit = up->on_commit;
	on_commit_arg = up->on_commit_arg;
	pthread_mutex_unlock(&up->lock);
	free(uo->data);
	uo->data = NULL;
	/*
	 * The callback may still use the handle; the in-flight count drops
	 * only after it, as the last touch of up, so store_upload_free()
	 * cannot free the handle under it.
	 */
	if (op->notify != NULL)
		op->notify(op->notify_arg, rc);
	if (on_commit != NULL)
		on_commit(on_commit_arg, rc);
	free(op);
	upload_release(up);
}

static struct upload_op *
upload_op_new(struct store_upload *up, enum upload_op_kind kind)
{
	struct upload_op *uo = calloc(1, sizeof(*uo));

	if (uo == NULL)
		return NULL;
	uo->op.apply = upload_apply;
	uo->op.done = upload_done;
	uo->up = up;
	uo->kind = kind;
	upload_sha_state_encode(uo->sha, &up->sha);
	/* A new upload's record is made durable by its first flush. */
	if (kind != UPLOAD_OP_CHUNK && kind != UPLOAD_OP_NEW)
		uo->op.flags = STORE_OP_DURABLE;
	pthread_mutex_lock(&up->lock);
	up->inflight++;
	pthread_mutex_unlock(&up->lock);
	return uo;
}

/* Hands the staging buffer to the writer as one chunk op. */
static int
upload_stage_submit(struct store_upload *up)
{
	struct upload_op *uo;

	if (up->staged == 0)
		return 0;
	uo = upload_op_new(up, UPLOAD_OP_CHUNK);
	if (uo == NULL) {
		/* The staged bytes are counted and hashed: the handle is lost. */
		pthread_mutex_lock(&up->lock);
		if (up->error == 0)
			up->error = STORE_E_NOMEM;
		pthread_mutex_unlock(&up->lock);
		return STORE_E_NOMEM;
	}
	uo->data = up->stage;
	uo->len = up->staged;
	uo->op.bytes = up->staged;
	up->stage = NULL;
	up->staged = 0;
	pthread_mutex_lock(&up->lock);
	up->pending += uo->len;
	pthread_mutex_unlock(&up->lock);
	store_op_submit(up->st, &uo->op);
	return 0;
}

static int
upload_status(struct store_upload *up)
{
	int rc;

	pthread_mutex_lock(&up->lock);
	rc = up->error != 0 ? up->error : up->ended ? STORE_E_NOTFOUND :
	    up->finishing ? STORE_E_BUSY : 0;
	pthread_mutex_unlock(&up->lock);
	return rc;
}

static struct store_upload *
upload_alloc(struct store *st)
{
	struct store_upload *up = calloc(1, sizeof(*up));

	if (up == NULL)
		return NULL;
	up->st = st;
	pthread_mutex_init(&up->lock, NULL);
	pthread_cond_init(&up->cond, NULL);
	SHA256_Init(&up->sha);
	return up;
}

int
store_upload_new(struct store *st, const char *repo, size_t repolen,
    struct store_upload **out)
{
	struct store_waiter w;
	struct store_upload *up = NULL;
	int rc;

	*out = NULL;
	store_waiter_init(&w);
	rc = store_waiter_wait(&w, store_upload_new_async(st, repo, repolen, &up,
	    store_waiter_notify, &w));
	if (rc != 0) {
		store_upload_free(up);
		return rc;
	}
	*out = up;
	return 0;
}

int
store_upload_new_async(struct store *st, const char *repo, size_t repolen,
    struct store_upload **out, store_done_fn *done, void *arg)
{
	struct store_upload *up;
	struct upload_op *uo;

	*out = NULL;
	if (!oci_name_valid(repo, repolen) || done == NULL)
		return STORE_E_INVALID;
	up = upload_alloc(st);
	if (up == NULL)
		return STORE_E_NOMEM;
	memcpy(up->repo, repo, repolen);
	up->repolen = repolen;
	if (RAND_bytes(up->id, sizeof(up->id)) != 1) {
		store_upload_free(up);
		return STORE_E_IO;
	}
	uo = upload_op_new(up, UPLOAD_OP_NEW);
	if (uo == NULL) {
		store_upload_free(up);
		return STORE_E_NOMEM;
	}
	*out = up;
	store_op_go(st, &uo->op, done, arg);
	return 0;
}

int
store_upload_resume(struct store *st, const uint8_t id[FORMAT_UPLOAD_ID_BYTES],
    struct store_upload **out)
{
	struct store_upload *up;
	MDB_txn *txn = NULL;
	MDB_val k = { FORMAT_UPLOAD_ID_BYTES, (void *)id }, v;
	int rc;

	*out = NULL;
	up = upload_alloc(st);
	if (up == NULL)
		return STORE_E_NOMEM;
	memcpy(up->id, id, FORMAT_UPLOAD_ID_BYTES);
	rc = store_rtxn_begin(st, &txn);
	if (rc == 0) {
		rc = store_mdb_error(mdb_get(txn, st->dbi[DBI_UPLOADS], &k, &v),
		    "upload get");
		if (rc == 0)
			rc = upload_record_parse(up, &v);
		store_rtxn_end(txn);
	}
	if (rc != 0) {
		store_upload_free(up);
		return rc;
	}
	*out = up;
	return 0;
}

void
store_upload_free(struct store_upload *up)
{
	if (up == NULL)
		return;
	/* Queued ops point at the handle; let them finish first. */
	pthread_mutex_lock(&up->lock);
	while (up->inflight > 0)
		pthread_cond_wait(&up->cond, &up->lock);
	pthread_mutex_unlock(&up->lock);
	pthread_mutex_destroy(&up->lock);
	pthread_cond_destroy(&up->cond);
	free(up->stage);
	free(up);
}

void
store_upload_set_commit_cb(struct store_upload *up, store_done_fn *fn,
    void *arg)
{
	pthread_mutex_lock(&up->lock);
	up->on_commit = fn;
	up->on_commit_arg = arg;
	pthread_mutex_unlock(&up->lock);
}

bool
store_upload_set_idle_cb(struct store_upload *up, store_done_fn *fn,
    void *arg)
{
	bool idle;

	pthread_mutex_lock(&up->lock);
	up->on_idle = fn;
	up->on_idle_arg = arg;
	idle = up->inflight == 0;
	pthread_mutex_unlock(&up->lock);
	return idle;
}

bool
store_upload_busy(struct store_upload *up)
{
	bool busy;

	pthread_mutex_lock(&up->lock);
	busy = up->inflight > 0;
	pthread_mutex_unlock(&up->lock);
	return busy;
}

int
store_upload_set_repo(struct store_upload *up, const char *repo,
    size_t repolen)
{
	if (!oci_name_valid(repo, repolen) || repolen > sizeof(up->repo))
		return STORE_E_INVALID;
	/* The writer thread reads up->repo only while an op is queued. */
	pthread_mutex_lock(&up->lock);
	while (up->inflight > 0)
		pthread_cond_wait(&up->cond, &up->lock);
	memcpy(up->repo, repo, repolen);
	up->repolen = repolen;
	pthread_mutex_unlock(&up->lock);
	return 0;
}

const uint8_t *
store_upload_id(const struct store_upload *up)
{
	return up->id;
}

const char *
store_upload_repo(const struct store_upload *up, size_t *len)
{
	*len = up->repolen;
	return up->repo;
}

uint64_t
store_upload_offset(const struct store_upload *up)
{
	return up->offset;
}

int
store_upload_verify_only(struct store_upload *up)
{
	int rc = upload_status(up);

	if (rc != 0)
		return rc;
	if (up->offset != 0 || up->staged != 0)
		return STORE_E_INVALID;
	up->verify_only = true;
	return 0;
}

uint64_t
store_upload_pending(const struct store_upload *up)
{
	struct store_upload *u = (struct store_upload *)up;
	uint64_t n;

	pthread_mutex_lock(&u->lock);
	n = u->pending;
	pthread_mutex_unlock(&u->lock);
	return n;
}

int
store_upload_write_some(struct store_upload *up, const void *buf, size_t len,
    size_t *taken)
{
	size_t n = FORMAT_CHUNK_RAW_MAX - up->staged;
	int rc;

	*taken = 0;
	rc = upload_status(up);
	if (rc != 0)
		return rc;
	if (len > UINT64_MAX - up->offset)
		return STORE_E_INVALID;
	if (up->verify_only) {
		SHA256_Update(&up->sha, buf, len);
		up->offset += len;
		*taken = len;
		return 0;
	}
	if (len == 0)
		return 0;
	if (up->stage == NULL) {
		up->stage = malloc(FORMAT_CHUNK_RAW_MAX);
		if (up->stage == NULL)
			return STORE_E_NOMEM;
	}
	if (n > len)
		n = len;
	memcpy(up->stage + up->staged, buf, n);
	SHA256_Update(&up->sha, buf, n);
	up->staged += n;
	up->offset += n;
	*taken = n;
	if (up->staged == FORMAT_CHUNK_RAW_MAX)
		return upload_stage_submit(up);
	return 0;
}

int
store_upload_write(struct store_upload *up, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		size_t n;
		int rc = store_upload_write_some(up, p, len, &n);

		if (rc != 0)
			return rc;
		p += n;
		len -= n;
	}
	return upload_status(up);
}

/* Queues the staged tail and then op; op's notify gets the final result. */
static int
upload_submit_after_tail(struct store_upload *up, struct upload_op *uo,
    store_done_fn *done, void *arg)
{
	int rc = upload_stage_submit(up);

	if (rc != 0) {
		free(uo);
		upload_release(up);
		return rc;
	}
	uo->op.notify = done;
	uo->op.notify_arg = arg;
	store_op_submit(up->st, &uo->op);
	return 0;
}

/*
 * A flush is an empty chunk op marked durable, queued behind the tail: when
 * it completes, every earlier op of this upload is committed and synced.
 */
int
store_upload_flush_async(struct store_upload *up, store_done_fn *done, void *arg)
{
	struct upload_op *uo;
	int rc;

	rc = upload_status(up);
	if (rc != 0)
		return rc;
	uo = upload_op_new(up, UPLOAD_OP_CHUNK);
	if (uo == NULL)
		return STORE_E_NOMEM;
	uo->op.flags = STORE_OP_DURABLE;
	return upload_submit_after_tail(up, uo, done, arg);
}

int
store_upload_finish_async(struct store_upload *up, const struct oci_digest *expect,
    uint64_t expect_size, store_done_fn *done, void *arg)
{
	struct upload_op *uo;
	SHA256_CTX c;
	int rc;

	if (expect == NULL || expect->alg != OCI_DIGEST_SHA256)
		return STORE_E_INVALID;
	rc = upload_status(up);
	if (rc != 0)
		return rc;
	uo = upload_op_new(up, UPLOAD_OP_FINISH);
	if (uo == NULL)
		return STORE_E_NOMEM;
	c = up->sha;
	uo->got.alg = OCI_DIGEST_SHA256;
	SHA256_Final(uo->got.hash, &c);
	uo->got_size = up->offset;
	uo->verify_only = up->verify_only;
	uo->expect = *expect;
	uo->expect_size = expect_size;
	/* Set before the op can complete, which clears it. */
	pthread_mutex_lock(&up->lock);
	up->finishing = true;
	pthread_mutex_unlock(&up->lock);
	rc = upload_submit_after_tail(up, uo, done, arg);
	if (rc != 0) {
		pthread_mutex_lock(&up->lock);
		up->finishing = false;
		pthread_mutex_unlock(&up->lock);
	}
	return rc;
}

int
store_upload_flush(struct store_upload *up)
{
	struct store_waiter w;

	store_waiter_init(&w);
	return store_waiter_wait(&w, store_upload_flush_async(up,
	    store_waiter_notify, &w));
}

int
store_upload_finish(struct store_upload *up, const struct oci_digest *expect,
    uint64_t expect_size)
{
	struct store_waiter w;

	store_waiter_init(&w);
	return store_waiter_wait(&w, store_upload_finish_async(up, expect,
	    expect_size, store_waiter_notify, &w));
}

int
store_upload_cancel(struct store_upload *up)
{
	struct store_waiter w;

	store_waiter_init(&w);
	return store_waiter_wait(&w, store_upload_cancel_async(up,
	    store_waiter_notify, &w));
}

int
store_upload_cancel_async(struct store_upload *up, store_done_fn *done,
    void *arg)
{
	struct upload_op *uo;

	if (upload_status(up) == STORE_E_NOTFOUND || done == NULL)
		return done == NULL ? STORE_E_INVALID : STORE_E_NOTFOUND;
	uo = upload_op_new(up, UPLOAD_OP_CANCEL);
	if (uo == NULL)
		return STORE_E_NOMEM;
	/* Staged bytes are simply dropped; queued chunks land, then go. */
	free(up->stage);
	up->stage = NULL;
	up->staged = 0;
	return store_op_go(up->st, &uo->op, done, arg);
}
