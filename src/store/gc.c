/*
 * Garbage collection (include/berth/gc.h, docs/GC.md).
 *
 * Manifests (only with o->untagged), per repository: a manifest linked to
 * the repository is kept if a tag of the repository names it, if a kept
 * index of the repository lists it, or if its subject (it is a referrer:
 * signature, SBOM) is kept; the rest, once linked longer than the grace
 * period, lose their link (manifest_unlink: with their referrers entries,
 * and the record and refs when no repository links them any more).
 * Referrers go after the manifests they refer to, deepest chains last.
 *
 * Blobs: a blob no stored manifest names as config or layer (no refs
 * record of kind 1 or 2 targets it), older than the grace period (its
 * `created`, which every push or mount of it renews), is deleted with its
 * chunks and links.
 *
 * Both phases take candidates from one read snapshot and delete in
 * batches of at most GC_BATCH_MAX objects (GC_BATCH_MAX_BYTES of chunks),
 * each one write operation that re-checks every candidate in its
 * transaction: the link or blob record unchanged since the snapshot, no
 * tag, no refs record from a linked manifest. What changed is skipped.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/gc.h"
#include "store/store_int.h"

struct mlink {
	char repo[FORMAT_REPO_MAX_BYTES + 1];
	size_t rl;
	uint8_t key[FORMAT_DIGEST_KEY_BYTES];
	uint64_t linked;
	bool kept;
	int depth;              /* referrer chain length among candidates */
};

struct gref {
	uint8_t src[FORMAT_DIGEST_KEY_BYTES];
	uint8_t kind;
	uint8_t tgt[FORMAT_DIGEST_KEY_BYTES];
};

struct gblob {
	uint8_t key[FORMAT_DIGEST_KEY_BYTES];
	uint64_t created, size, stored;
};

struct gc {
	struct store *st;
	const struct gc_options *o;
	struct gc_report *r;
	uint64_t now;
	struct mlink *ml;
	size_t nml, cml;
	struct gref *refs;
	size_t nrefs, crefs;
	struct gblob *blobs;
	size_t nblobs, cblobs;
	/* tags as (repo, manifest) pairs, in key order: grouped by repo */
	struct mlink *tags;
	size_t ntags, ctags;
	/* candidates handled and found, for o->progress */
	uint64_t pdone, ptotal;
};

/* Makes room for one more element; false (p unchanged) without memory. */
static bool
grow(void **p, size_t *cap, size_t n, size_t size)
{
	void *np;
	size_t c;

	if (n < *cap)
		return true;
	c = *cap ? *cap * 2 : 256;
	np = realloc(*p, c * size);
	if (np == NULL)
		return false;
	*p = np;
	*cap = c;
	return true;
}

static void
note(struct gc *g, const char *verb, const char *what, const char *repo,
    size_t rl, const uint8_t *dk, uint64_t bytes)
{
	struct oci_digest d;
	char ds[OCI_DIGEST_STR_BYTES], line[512];

	if (g->o->note == NULL)
		return;
	(void)digest_from_key(dk, FORMAT_DIGEST_KEY_BYTES, &d);
	oci_digest_format(&d, ds);
	if (repo != NULL)
		snprintf(line, sizeof(line), "%s %s %.*s@%s", verb, what,
		    (int)rl, repo, ds);
	else
		snprintf(line, sizeof(line), "%s %s %s (%llu bytes)", verb, what,
		    ds, (unsigned long long)bytes);
	g->o->note(g->o->note_arg, line);
}

static void
gc_reset(struct gc *g)
{
	free(g->ml);
	free(g->refs);
	free(g->blobs);
	free(g->tags);
	g->ml = NULL;
	g->refs = NULL;
	g->blobs = NULL;
	g->tags = NULL;
	g->nml = g->cml = g->nrefs = g->crefs = 0;
	g->nblobs = g->cblobs = g->ntags = g->ctags = 0;
}

/* ---- the snapshot ------------------------------------------------------- */

static int
cursor_walk(struct gc *g, MDB_txn *txn, enum store_dbi dbi,
    int (*fn)(struct gc *, const MDB_val *, const MDB_val *))
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc, frc = 0;

	rc = mdb_cursor_open(txn, g->st->dbi[dbi], &c);
	if (rc != 0)
		return store_mdb_error(rc, "gc cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && frc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		frc = fn(g, &k, &v);
	mdb_cursor_close(c);
	if (frc != 0)
		return frc;
	return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "gc scan");
}

/* Manifest links: name, 0, 'm', digest key; value u64 time. */
static int
take_link(struct gc *g, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *p = k->mv_data;
	size_t rl;
	struct mlink *m;

	if (k->mv_size < 3 + FORMAT_DIGEST_KEY_BYTES || v->mv_size != 8)
		return 0;       /* malformed: berth-fsck's business */
	rl = k->mv_size - 2 - FORMAT_DIGEST_KEY_BYTES;
	if (p[rl] != 0 || p[rl + 1] != FORMAT_LINK_MANIFEST ||
	    !oci_name_valid((const char *)p, rl))
		return 0;       /* malformed: berth-fsck's business */
	if (!grow((void **)&g->ml, &g->cml, g->nml, sizeof(*g->ml)))
		return STORE_E_NOMEM;
	m = &g->ml[g->nml++];
	memset(m, 0, sizeof(*m));
	memcpy(m->repo, p, rl);
	m->rl = rl;
	memcpy(m->key, p + rl + 2, FORMAT_DIGEST_KEY_BYTES);
	m->linked = format_get_le64(v->mv_data);
	return 0;
}

static int
take_tag(struct gc *g, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *p = k->mv_data, *z = memchr(p, 0, k->mv_size);
	struct mlink *t;

	if (z == NULL || v->mv_size != FORMAT_TAG_BYTES ||
	    !oci_name_valid((const char *)p, (size_t)(z - p)))
		return 0;
	if (!grow((void **)&g->tags, &g->ctags, g->ntags, sizeof(*g->tags)))
		return STORE_E_NOMEM;
	t = &g->tags[g->ntags++];
	memset(t, 0, sizeof(*t));
	t->rl = (size_t)(z - p);
	memcpy(t->repo, p, t->rl);
	memcpy(t->key, v->mv_data, FORMAT_DIGEST_KEY_BYTES);
	return 0;
}

static int
take_ref(struct gc *g, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *p = k->mv_data;
	struct gref *r;

	(void)v;
	if (k->mv_size != FORMAT_REF_KEY_BYTES)
		return 0;
	if (!grow((void **)&g->refs, &g->crefs, g->nrefs, sizeof(*g->refs)))
		return STORE_E_NOMEM;
	r = &g->refs[g->nrefs++];
	memcpy(r->src, p, FORMAT_DIGEST_KEY_BYTES);
	r->kind = p[FORMAT_DIGEST_KEY_BYTES];
	memcpy(r->tgt, p + FORMAT_DIGEST_KEY_BYTES + 1, FORMAT_DIGEST_KEY_BYTES);
	return 0;
}

static int
take_blob(struct gc *g, const MDB_val *k, const MDB_val *v)
{
	struct store_blob_info info;
	struct gblob *b;
	uint64_t set;

	if (k->mv_size != FORMAT_DIGEST_KEY_BYTES ||
	    record_blob_decode(v->mv_data, v->mv_size, &info, &set) != 0)
		return 0;
	if (!grow((void **)&g->blobs, &g->cblobs, g->nblobs, sizeof(*g->blobs)))
		return STORE_E_NOMEM;
	b = &g->blobs[g->nblobs++];
	memcpy(b->key, k->mv_data, FORMAT_DIGEST_KEY_BYTES);
	b->created = info.created;
	b->size = info.size;
	b->stored = info.stored;
	return 0;
}

static int
snapshot(struct gc *g, bool manifests)
{
	MDB_txn *txn;
	int rc;

	gc_reset(g);
	rc = store_rtxn_begin(g->st, &txn);
	if (rc != 0)
		return rc;
	if (manifests) {
		rc = cursor_walk(g, txn, DBI_LINKS, take_link);
		if (rc == 0)
			rc = cursor_walk(g, txn, DBI_TAGS, take_tag);
	} else {
		rc = cursor_walk(g, txn, DBI_BLOBS, take_blob);
	}
	if (rc == 0)
		rc = cursor_walk(g, txn, DBI_REFS, take_ref);
	store_rtxn_end(txn);
	return rc;
}

/* ---- which manifests are kept ------------------------------------------ */

/* First ref of src (refs come in key order: by source). */
static size_t
refs_of(const struct gc *g, const uint8_t *src)
{
	size_t lo = 0, hi = g->nrefs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(g->refs[mid].src, src, FORMAT_DIGEST_KEY_BYTES) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The link of dk within the repository group [lo, hi) of g->ml. */
static struct mlink *
group_find(struct gc *g, size_t lo, size_t hi, const uint8_t *dk)
{
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(g->ml[mid].key, dk, FORMAT_DIGEST_KEY_BYTES);

		if (c == 0)
			return &g->ml[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Repository names in LMDB key order (name, 0, ...): bytes, then length. */
static int
repo_cmp(const struct mlink *a, const struct mlink *b)
{
	int c = memcmp(a->repo, b->repo, a->rl < b->rl ? a->rl : b->rl);

	if (c != 0)
		return c;
	return (a->rl > b->rl) - (a->rl < b->rl);
}

/* Marks, per repository, the manifests it keeps, and referrer depths. */
static void
mark_kept(struct gc *g)
{
	size_t t = 0;

	for (size_t lo = 0, hi; lo < g->nml; lo = hi) {
		bool changed = true;

		for (hi = lo + 1; hi < g->nml && repo_cmp(&g->ml[lo], &g->ml[hi]) == 0;
		    hi++)
			;
		while (t < g->ntags && repo_cmp(&g->tags[t], &g->ml[lo]) < 0)
			t++;
		for (; t < g->ntags && repo_cmp(&g->tags[t], &g->ml[lo]) == 0; t++) {
			struct mlink *m = group_find(g, lo, hi, g->tags[t].key);

			if (m != NULL)
				m->kept = true;
		}
		while (changed) {
			changed = false;
			for (size_t i = lo; i < hi; i++) {
				for (size_t j = refs_of(g, g->ml[i].key);
				    j < g->nrefs && memcmp(g->refs[j].src,
				    g->ml[i].key, FORMAT_DIGEST_KEY_BYTES) == 0;
				    j++) {
					struct mlink *o = group_find(g, lo, hi,
					    g->refs[j].tgt);

					if (o == NULL)
						continue;
					/* a kept index keeps its children */
					if (g->refs[j].kind == FORMAT_REF_MANIFEST &&
					    g->ml[i].kept && !o->kept) {
						o->kept = changed = true;
					}
					/* a kept subject keeps its referrers */
					if (g->refs[j].kind == FORMAT_REF_SUBJECT &&
					    o->kept && !g->ml[i].kept) {
						g->ml[i].kept = changed = true;
					}
				}
			}
		}
		/* referrer depth among the unkept: referrers go last */
		for (int pass = 0; pass < 8; pass++) {
			for (size_t i = lo; i < hi; i++) {
				for (size_t j = refs_of(g, g->ml[i].key);
				    j < g->nrefs && memcmp(g->refs[j].src,
				    g->ml[i].key, FORMAT_DIGEST_KEY_BYTES) == 0;
				    j++) {
					struct mlink *o;

					if (g->refs[j].kind != FORMAT_REF_SUBJECT)
						continue;
					o = group_find(g, lo, hi, g->refs[j].tgt);
					if (o != NULL && o->depth + 1 >
					    g->ml[i].depth)
						g->ml[i].depth = o->depth + 1;
				}
			}
		}
	}
}

/* ---- batches ----------------------------------------------------------- */

struct gc_item {
	struct mlink *m;        /* manifest phase */
	struct gblob *b;        /* blob phase */
	bool done;
};

struct gc_op {
	struct store_op op;
	struct gc_item *items;  /* the caller's; read-only in apply() */
	size_t n;
	bool blobs;
	bool *done;             /* apply()'s results, published by done() */
};

static int
item_key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, FORMAT_DIGEST_KEY_BYTES);
}

/*
 * Sorted digest keys of the batch's targets that a refs record of one of
 * the kinds in kinds (a bit per kind) names, with their sources.
 */
struct hit {
	uint8_t tgt[FORMAT_DIGEST_KEY_BYTES];
	uint8_t src[FORMAT_DIGEST_KEY_BYTES];
};

static int
refs_hits(struct store_wtxn *w, const uint8_t (*keys)[FORMAT_DIGEST_KEY_BYTES],
    size_t nkeys, unsigned kinds, struct hit **out, size_t *nout)
{
	MDB_cursor *c;
	MDB_val k, v;
	size_t cap = 0;
	int rc;

	*out = NULL;
	*nout = 0;
	rc = mdb_cursor_open(w->txn, w->st->dbi[DBI_REFS], &c);
	if (rc != 0)
		return store_mdb_error(rc, "gc cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const uint8_t *p = k.mv_data;
		struct hit *h;

		if (k.mv_size != FORMAT_REF_KEY_BYTES ||
		    p[FORMAT_DIGEST_KEY_BYTES] >= 8 ||
		    !(kinds & 1u << p[FORMAT_DIGEST_KEY_BYTES]) ||
		    bsearch(p + FORMAT_DIGEST_KEY_BYTES + 1, keys, nkeys,
		    FORMAT_DIGEST_KEY_BYTES, item_key_cmp) == NULL)
			continue;
		if (!grow((void **)out, &cap, *nout, sizeof(**out))) {
			mdb_cursor_close(c);
			free(*out);
			*out = NULL;
			return STORE_E_NOMEM;
		}
		h = &(*out)[(*nout)++];
		memcpy(h->tgt, p + FORMAT_DIGEST_KEY_BYTES + 1,
		    FORMAT_DIGEST_KEY_BYTES);
		memcpy(h->src, p, FORMAT_DIGEST_KEY_BYTES);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "gc scan");
}

/* Whether a tag of repo names dk. */
static int
tagged(struct store_wtxn *w, const struct mlink *m)
{
	uint8_t pre[FORMAT_REPO_MAX_BYTES + 1];
	MDB_cursor *c;
	MDB_val k = { m->rl + 1, pre }, v;
	int rc, found = 0;

	memcpy(pre, m->repo, m->rl);
	pre[m->rl] = 0;
	rc = mdb_cursor_open(w->txn, w->st->dbi[DBI_TAGS], &c);
	if (rc != 0)
		return store_mdb_error(rc, "gc cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 &&
	    k.mv_size > m->rl && memcmp(k.mv_data, pre, m->rl + 1) == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (v.mv_size == FORMAT_TAG_BYTES &&
		    memcmp(v.mv_data, m->key, FORMAT_DIGEST_KEY_BYTES) == 0) {
			found = 1;
			break;
		}
	}
	mdb_cursor_close(c);
	if (found)
		return 1;
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "gc scan");
}

static int
manifest_item(struct store_wtxn *w, const struct gc_item *it, bool *done,
    const struct hit *hits, size_t nhits)
{
	const struct mlink *m = it->m;
	struct oci_digest d;
	uint8_t key[STORE_KEY_MAX_BYTES];
	MDB_val k = { m->rl + 2 + FORMAT_DIGEST_KEY_BYTES, key }, v;
	int rc;

	memcpy(key, m->repo, m->rl);
	key[m->rl] = 0;
	key[m->rl + 1] = FORMAT_LINK_MANIFEST;
	memcpy(key + m->rl + 2, m->key, FORMAT_DIGEST_KEY_BYTES);
	rc = mdb_get(w->txn, w->st->dbi[DBI_LINKS], &k, &v);
	if (rc == MDB_NOTFOUND || (rc == 0 && (v.mv_size != 8 ||
	    format_get_le64(v.mv_data) != m->linked)))
		return 0;       /* gone, or pushed again */
	if (rc != 0)
		return store_mdb_error(rc, "gc link");
	rc = tagged(w, m);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	/* An index of the repository lists it (children hits), or its
	 * subject is still linked there. */
	for (size_t i = 0; i < nhits; i++) {
		struct oci_digest src;

		if (memcmp(hits[i].tgt, m->key, FORMAT_DIGEST_KEY_BYTES) != 0)
			continue;
		(void)digest_from_key(hits[i].src, FORMAT_DIGEST_KEY_BYTES, &src);
		rc = link_exists(w->st, w->txn, m->repo, m->rl,
		    FORMAT_LINK_MANIFEST, &src);
		if (rc != STORE_E_NOTFOUND)
			return rc;      /* 0: kept by a linked index */
	}
	{
		uint8_t pre[FORMAT_DIGEST_KEY_BYTES + 1];
		MDB_cursor *c;
		MDB_val rk = { sizeof(pre), pre }, rv;
		int keep = 0;

		memcpy(pre, m->key, FORMAT_DIGEST_KEY_BYTES);
		pre[FORMAT_DIGEST_KEY_BYTES] = FORMAT_REF_SUBJECT;
		rc = mdb_cursor_open(w->txn, w->st->dbi[DBI_REFS], &c);
		if (rc != 0)
			return store_mdb_error(rc, "gc cursor");
		for (rc = mdb_cursor_get(c, &rk, &rv, MDB_SET_RANGE); rc == 0 &&
		    rk.mv_size == FORMAT_REF_KEY_BYTES &&
		    memcmp(rk.mv_data, pre, sizeof(pre)) == 0;
		    rc = mdb_cursor_get(c, &rk, &rv, MDB_NEXT)) {
			struct oci_digest s;

			(void)digest_from_key((const uint8_t *)rk.mv_data +
			    sizeof(pre), FORMAT_DIGEST_KEY_BYTES, &s);
			if (link_exists(w->st, w->txn, m->repo, m->rl,
			    FORMAT_LINK_MANIFEST, &s) == 0) {
				keep = 1;
				break;
			}
		}
		mdb_cursor_close(c);
		if (keep)
			return 0;
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_mdb_error(rc, "gc scan");
	}
	(void)digest_from_key(m->key, FORMAT_DIGEST_KEY_BYTES, &d);
	rc = manifest_unlink(w, m->repo, m->rl, &d);
	if (rc == 0)
		*done = true;
	/* Gone meanwhile, or a record berth-fsck will report: kept. */
	return rc == STORE_E_NOTFOUND || rc == STORE_E_INVALID ? 0 : rc;
}

static int
blob_item(struct store_wtxn *w, const struct gc_item *it, bool *done,
    const struct hit *hits, size_t nhits)
{
	struct store_blob_info info;
	struct oci_digest d;
	uint64_t set;
	int rc;

	for (size_t i = 0; i < nhits; i++)
		if (memcmp(hits[i].tgt, it->b->key, FORMAT_DIGEST_KEY_BYTES) == 0)
			return 0;       /* a manifest names it now */
	(void)digest_from_key(it->b->key, FORMAT_DIGEST_KEY_BYTES, &d);
	rc = blob_get(w->st, w->txn, &d, &info, &set);
	if (rc == STORE_E_NOTFOUND || (rc == 0 && info.created !=
	    it->b->created))
		return 0;       /* gone, or pushed again */
	if (rc != 0)
		return rc;
	rc = blob_remove(w, &d);
	if (rc == 0)
		*done = true;
	return rc;
}

static int
gc_apply(struct store_wtxn *w, struct store_op *op)
{
	struct gc_op *go = (struct gc_op *)op;
	uint8_t (*keys)[FORMAT_DIGEST_KEY_BYTES];
	struct hit *hits = NULL;
	size_t nhits = 0;
	int rc;

	keys = malloc(go->n * sizeof(*keys));
	if (keys == NULL)
		return STORE_E_NOMEM;
	for (size_t i = 0; i < go->n; i++) {
		go->done[i] = false;
		memcpy(keys[i], go->blobs ? go->items[i].b->key :
		    go->items[i].m->key, FORMAT_DIGEST_KEY_BYTES);
	}
	qsort(keys, go->n, sizeof(*keys), item_key_cmp);
	rc = refs_hits(w, (const uint8_t (*)[FORMAT_DIGEST_KEY_BYTES])keys, go->n,
	    go->blobs ? (1u << FORMAT_REF_CONFIG | 1u << FORMAT_REF_LAYER) :
	    1u << FORMAT_REF_MANIFEST, &hits, &nhits);
	for (size_t i = 0; rc == 0 && i < go->n; i++)
		rc = go->blobs ? blob_item(w, &go->items[i], &go->done[i], hits,
		    nhits) : manifest_item(w, &go->items[i], &go->done[i], hits,
		    nhits);
	free(hits);
	free(keys);
	return rc;
}

static void
gc_done(struct store_op *op, int rc)
{
	struct gc_op *go = (struct gc_op *)op;

	for (size_t i = 0; rc == 0 && i < go->n; i++)
		go->items[i].done = go->done[i];
	free(go->done);
	store_op_complete(op, rc);
}

/* Runs one batch; counts what it did. */
static int
run_batch(struct gc *g, struct gc_item *items, size_t n, bool blobs)
{
	struct gc_op *go;
	int rc;

	if (n == 0)
		return 0;
	if (g->o->dry_run) {
		for (size_t i = 0; i < n; i++) {
			if (blobs) {
				g->r->blobs++;
				g->r->bytes += items[i].b->size;
				g->r->stored += items[i].b->stored;
				note(g, "would delete", "blob", NULL, 0,
				    items[i].b->key, items[i].b->size);
			} else {
				g->r->manifests++;
				note(g, "would delete", "manifest",
				    items[i].m->repo, items[i].m->rl,
				    items[i].m->key, 0);
			}
		}
		return 0;
	}
	go = calloc(1, sizeof(*go));
	if (go != NULL)
		go->done = calloc(n, sizeof(*go->done));
	if (go == NULL || go->done == NULL) {
		free(go);
		return STORE_E_NOMEM;
	}
	go->op.apply = gc_apply;
	go->op.done = gc_done;
	go->op.flags = STORE_OP_DURABLE;
	go->items = items;
	go->n = n;
	go->blobs = blobs;
	rc = store_op_run(g->st, &go->op);
	g->r->batches++;
	if (rc != 0)
		return rc;
	/* The op is freed; done() copied the results into items. */
	for (size_t i = 0; i < n; i++) {
		if (!items[i].done) {
			g->r->skipped++;
			continue;
		}
		if (blobs) {
			g->r->blobs++;
			g->r->bytes += items[i].b->size;
			g->r->stored += items[i].b->stored;
			note(g, "deleted", "blob", NULL, 0, items[i].b->key,
			    items[i].b->size);
		} else {
			g->r->manifests++;
			note(g, "deleted", "manifest", items[i].m->repo,
			    items[i].m->rl, items[i].m->key, 0);
		}
	}
	return 0;
}

/* Reports n more candidates found, then d more handled. */
static void
progress(struct gc *g, uint64_t n, uint64_t d)
{
	g->ptotal += n;
	g->pdone += d;
	if (g->o->progress != NULL)
		g->o->progress(g->o->progress_arg, g->pdone, g->ptotal);
}

static bool
stopped(const struct gc *g)
{
	return g->o->stop != NULL && atomic_load(g->o->stop) != 0;
}

/* Whether time t is within the grace period (a future t counts as new). */
static bool
young(const struct gc *g, uint64_t t)
{
	return t > g->now || g->now - t < g->o->grace;
}

static int
depth_cmp(const void *a, const void *b)
{
	const struct gc_item *x = a, *y = b;

	return (x->m->depth > y->m->depth) - (x->m->depth < y->m->depth);
}

static int
manifests_phase(struct gc *g, uint64_t *deleted)
{
	struct gc_item *items;
	size_t n = 0;
	uint64_t before = g->r->manifests;
	int rc;

	rc = snapshot(g, true);
	if (rc != 0)
		return rc;
	mark_kept(g);
	items = calloc(g->nml + 1, sizeof(*items));
	if (items == NULL)
		return STORE_E_NOMEM;
	for (size_t i = 0; i < g->nml; i++) {
		if (g->ml[i].kept)
			continue;
		if (young(g, g->ml[i].linked)) {
			g->r->kept_young++;
			continue;
		}
		items[n++].m = &g->ml[i];
	}
	qsort(items, n, sizeof(*items), depth_cmp);
	progress(g, n, 0);
	for (size_t i = 0; rc == 0 && i < n && !stopped(g); i += GC_BATCH_MAX) {
		size_t m = n - i < GC_BATCH_MAX ? n - i : GC_BATCH_MAX;

		rc = run_batch(g, items + i, m, false);
		if (rc == 0)
			progress(g, 0, m);
	}
	free(items);
	*deleted = g->r->manifests - before;
	return rc;
}

static int
gref_tgt_cmp(const void *a, const void *b)
{
	return memcmp(((const struct gref *)a)->tgt, ((const struct gref *)b)->tgt,
	    FORMAT_DIGEST_KEY_BYTES);
}

static int
blobs_phase(struct gc *g)
{
	struct gc_item *items;
	size_t n = 0;
	int rc;

	rc = snapshot(g, false);
	if (rc != 0)
		return rc;
	if (g->nrefs > 1)
		qsort(g->refs, g->nrefs, sizeof(*g->refs), gref_tgt_cmp);
	items = calloc(g->nblobs + 1, sizeof(*items));
	if (items == NULL)
		return STORE_E_NOMEM;
	for (size_t i = 0; i < g->nblobs; i++) {
		struct gref key;
		size_t lo = 0, hi = g->nrefs;
		bool used = false;

		memcpy(key.tgt, g->blobs[i].key, FORMAT_DIGEST_KEY_BYTES);
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (gref_tgt_cmp(&g->refs[mid], &key) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < g->nrefs && gref_tgt_cmp(&g->refs[lo], &key) == 0;
		    lo++)
			if (g->refs[lo].kind == FORMAT_REF_CONFIG ||
			    g->refs[lo].kind == FORMAT_REF_LAYER)
				used = true;
		if (used)
			continue;
		if (young(g, g->blobs[i].created)) {
			g->r->kept_young++;
			continue;
		}
		items[n++].b = &g->blobs[i];
	}
	progress(g, n, 0);
	for (size_t i = 0; rc == 0 && i < n && !stopped(g);) {
		size_t m = 0;
		uint64_t bytes = 0;

		while (i + m < n && m < GC_BATCH_MAX &&
		    (m == 0 || bytes + items[i + m].b->stored <=
		    GC_BATCH_MAX_BYTES)) {
			bytes += items[i + m].b->stored;
			m++;
		}
		rc = run_batch(g, items + i, m, true);
		if (rc == 0)
			progress(g, 0, m);
		i += m;
	}
	free(items);
	return rc;
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
store_gc(struct store *st, const struct gc_options *o, struct gc_report *out)
{
	struct gc g = { .st = st, .o = o, .r = out };
	double t0 = mono();
	int rc = 0;

	memset(out, 0, sizeof(*out));
	g.now = store_now();
	if (o->untagged) {
		/* Referrer chains can need another round once their subject
		 * is gone; a round that deletes nothing ends it. */
		for (int round = 0; round < 4 && rc == 0 && !stopped(&g);
		    round++) {
			uint64_t deleted = 0;

			/* Each round counts what it keeps afresh. */
			out->skipped = 0;
			out->kept_young = 0;
			rc = manifests_phase(&g, &deleted);
			if (deleted == 0 || o->dry_run)
				break;
		}
	}
	if (rc == 0 && !stopped(&g))
		rc = blobs_phase(&g);
	gc_reset(&g);
	out->seconds = mono() - t0;
	return rc;
}
