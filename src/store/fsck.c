/*
 * berth-fsck's checks and repairs (include/berth/fsck.h, docs/FSCK.md).
 *
 * Three passes:
 * 1. collect: one read snapshot copies the keys (and small values) of every
 *    database except the chunk payloads into sorted arrays, decoding each
 *    record with the store's own decoders;
 * 2. cross-check: the arrays against each other, the invariants of
 *    FORMAT.md section 6, with refs and referrers recomputed from the
 *    parsed manifests;
 * 3. verify: worker threads read every blob and upload chunk by chunk (one
 *    short read transaction per chunk), check the tiling, each chunk's
 *    checksum and the SHA-256 of the whole. A finding is kept only if the
 *    blob or upload record still names the same set afterwards: chunks of
 *    a set never change while it is owned, so a finding about an owned set
 *    is real, and one about a set released meanwhile is not.
 * Each problem names the images it affects, found through the parsed
 * manifests (blob <- manifest <- index) and the tags naming them.
 */
#define OPENSSL_API_COMPAT 0x10101000L
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "berth/fsck.h"
#include "store/store_int.h"

#define FSCK_IMAGES_MAX 16      /* names listed per problem */

/* ---- sorted arrays of raw records -------------------------------------- */

struct kv {
	uint8_t *k;
	size_t kl;
	uint8_t *v;             /* NULL when the value is not kept */
	size_t vl;
};

struct kvs {
	struct kv *v;
	size_t n, cap;
};

/* LMDB's default order: memcmp, then the shorter first. */
static int
key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	if (c != 0)
		return c;
	return al < bl ? -1 : al > bl;
}

static int
kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;

	return key_cmp(x->k, x->kl, y->k, y->kl);
}

static int
kvs_add(struct kvs *s, const void *k, size_t kl, const void *v, size_t vl,
    bool keepval)
{
	struct kv *e;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct kv *nv = realloc(s->v, cap * sizeof(*nv));

		if (nv == NULL)
			return STORE_E_NOMEM;
		s->v = nv;
		s->cap = cap;
	}
	e = &s->v[s->n];
	e->k = malloc(kl + (keepval ? vl : 0) + 1);
	if (e->k == NULL)
		return STORE_E_NOMEM;
	memcpy(e->k, k, kl);
	e->kl = kl;
	e->v = NULL;
	e->vl = vl;
	if (keepval) {
		e->v = e->k + kl;
		if (vl > 0)
			memcpy(e->v, v, vl);
	}
	s->n++;
	return 0;
}

static void
kvs_free(struct kvs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].k);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static void
kvs_sort(struct kvs *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), kv_cmp);
}

/* Index of the first key >= k. */
static size_t
kvs_lower(const struct kvs *s, const uint8_t *k, size_t kl)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (key_cmp(s->v[mid].k, s->v[mid].kl, k, kl) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct kv *
kvs_find(const struct kvs *s, const uint8_t *k, size_t kl)
{
	size_t i = kvs_lower(s, k, kl);

	if (i < s->n && s->v[i].kl == kl && memcmp(s->v[i].k, k, kl) == 0)
		return &s->v[i];
	return NULL;
}

/* ---- what pass 1 collects ---------------------------------------------- */

struct fblob {
	uint8_t key[FORMAT_DIGEST_KEY_BYTES];
	struct store_blob_info info;
	uint64_t set;
	bool quarantine;        /* flagged now, or by this run's findings */
};

struct fupload {
	uint8_t id[FORMAT_UPLOAD_ID_BYTES];
	uint8_t *val;           /* the record, for the repair's comparison */
	size_t vlen;
	struct upload_rec rec;  /* borrows from val */
	bool expired;
};

struct fman {
	uint8_t key[FORMAT_DIGEST_KEY_BYTES];
	bool sound;             /* decodes, verifies, matches its digest */
	bool parsed;            /* and parses as a manifest */
	uint8_t *val;           /* the record, kept when it is not sound */
	size_t vlen;
	uint64_t len;
	char media_type[FORMAT_MEDIA_TYPE_MAX_BYTES + 1];
	struct oci_manifest m;  /* when parsed */
	char *why;              /* why it is not sound, or does not parse */
	bool linked;            /* some links record (R, m, this) exists */
};

/* A reference of a parsed manifest, reversed: who names target. */
struct fedge {
	uint8_t target[FORMAT_DIGEST_KEY_BYTES];
	uint8_t source[FORMAT_DIGEST_KEY_BYTES];
	uint8_t kind;
};

/* ---- repairs ------------------------------------------------------------ */

enum fix_kind {
	FIX_DEL,                /* delete key */
	FIX_DEL_IF_SAME,        /* delete key if its value is still val */
	FIX_PUT,                /* put key = val */
	FIX_PUT_NEW,            /* put key = val unless the key exists */
	FIX_QUARANTINE,         /* flag blob d if it still names set */
	FIX_DROP_SET,           /* delete the chunks of set if unowned */
	FIX_DROP_UPLOAD,        /* delete upload key and its set if still val */
	FIX_NEXT_SET,           /* raise next-set to at least set */
	FIX_UNLINK_MANIFEST,    /* manifest_unlink(repo, d) */
	FIX_DROP_MANIFEST,      /* manifest_drop(d) */
	FIX_REMOVE_MANIFEST,    /* unlink d everywhere if its record is val */
	FIX_DROP_BLOB_LINK,     /* link_del(repo, b, d) */
};

enum fix_guard {
	GUARD_NONE,
	GUARD_EXISTS,           /* gkey is present in gdbi */
	GUARD_ABSENT,           /* gkey is absent from gdbi */
};

struct fsck_fix {
	enum fix_kind kind;
	enum store_dbi dbi;
	uint8_t *key, *val;
	size_t klen, vlen;
	enum fix_guard guard;
	enum store_dbi gdbi;
	uint8_t gkey[STORE_KEY_MAX_BYTES];
	size_t gklen;
	uint64_t set;
	struct oci_digest d;
	char repo[FORMAT_REPO_MAX_BYTES + 1];
	size_t repolen;
};

/* ---- the run ----------------------------------------------------------- */

struct fsck {
	struct store *st;
	const struct fsck_options *o;
	struct fsck_report *r;
	size_t pcap;
	uint64_t now;

	bool have_next_set;
	uint64_t next_set;
	size_t next_set_bad;    /* length of a malformed value, else 0 */

	struct fblob *blobs;
	size_t nblobs, cblobs;
	struct fupload *uploads;
	size_t nuploads, cuploads;
	uint64_t *sets;         /* distinct set ids of chunks keys */
	size_t nsets, csets;
	struct fman *mans;
	size_t nmans, cmans;
	struct kvs repos, links, rlinks, tags, refs, referrers;
	struct fedge *edges;
	size_t nedges, cedges;
	ZSTD_DCtx *dctx;        /* the collecting thread's */
};

static void *
grow(void *p, size_t *cap, size_t n, size_t size)
{
	void *np;
	size_t c;

	if (n < *cap)
		return p;
	c = *cap ? *cap * 2 : 64;
	np = realloc(p, c * size);
	if (np != NULL)
		*cap = c;
	return np;
}

static char *
fmt(const char *f, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, f);
	n = vsnprintf(NULL, 0, f, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (s == NULL)
		return NULL;
	va_start(ap, f);
	vsnprintf(s, (size_t)n + 1, f, ap);
	va_end(ap);
	return s;
}

static void
dkey_str(const uint8_t *k, char out[OCI_DIGEST_STR_BYTES])
{
	struct oci_digest d;

	if (digest_from_key(k, FORMAT_DIGEST_KEY_BYTES, &d) != 0)
		snprintf(out, OCI_DIGEST_STR_BYTES, "(bad digest)");
	else
		oci_digest_format(&d, out);
}

/* Printable form of untrusted key bytes, for a detail line. */
static void
printable(const uint8_t *p, size_t n, char *out, size_t outsize)
{
	size_t j = 0;

	for (size_t i = 0; i < n && j + 5 < outsize; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			out[j++] = (char)p[i];
		else
			j += (size_t)snprintf(out + j, outsize - j, "\\x%02x",
			    p[i]);
	}
	out[j < outsize ? j : outsize - 1] = '\0';
}

static struct fsck_problem *
problem(struct fsck *f, const char *id, enum fsck_severity sev,
    char *object, char *detail)
{
	struct fsck_report *r = f->r;
	struct fsck_problem *p;
	void *np = grow(r->problems, &f->pcap, r->nproblems, sizeof(*p));

	if (np == NULL || object == NULL || detail == NULL) {
		free(object);
		free(detail);
		return NULL;
	}
	r->problems = np;
	p = &r->problems[r->nproblems++];
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->severity = sev;
	p->object = object;
	p->detail = detail;
	p->state = FSCK_FOUND;
	return p;
}

static struct fsck_fix *
fix_new(struct fsck_problem *p, enum fix_kind kind, const char *action)
{
	struct fsck_fix *x;

	if (p == NULL || (x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	x->kind = kind;
	p->fix = x;
	p->action = action;
	return x;
}

static void
fix_key(struct fsck_fix *x, enum store_dbi dbi, const void *k, size_t kl,
    const void *v, size_t vl)
{
	if (x == NULL)
		return;
	x->dbi = dbi;
	x->key = malloc(kl + vl + 1);
	if (x->key == NULL)
		return;
	memcpy(x->key, k, kl);
	x->klen = kl;
	x->val = x->key + kl;
	if (vl > 0)
		memcpy(x->val, v, vl);
	x->vlen = vl;
}

static void
fix_guard(struct fsck_fix *x, enum fix_guard g, enum store_dbi dbi,
    const void *k, size_t kl)
{
	if (x == NULL || kl > sizeof(x->gkey))
		return;
	x->guard = g;
	x->gdbi = dbi;
	memcpy(x->gkey, k, kl);
	x->gklen = kl;
}

static void
fix_repo(struct fsck_fix *x, const char *repo, size_t repolen)
{
	if (x == NULL || repolen > FORMAT_REPO_MAX_BYTES)
		return;
	memcpy(x->repo, repo, repolen);
	x->repo[repolen] = '\0';
	x->repolen = repolen;
}

/* ---- key layouts (FORMAT.md section 3) --------------------------------- */

static size_t
mk_link(uint8_t *k, const char *repo, size_t rl, uint8_t kind,
    const uint8_t *dk)
{
	memcpy(k, repo, rl);
	k[rl] = 0;
	k[rl + 1] = kind;
	memcpy(k + rl + 2, dk, FORMAT_DIGEST_KEY_BYTES);
	return rl + 2 + FORMAT_DIGEST_KEY_BYTES;
}

static size_t
mk_rlink(uint8_t *k, uint8_t kind, const uint8_t *dk, const char *repo,
    size_t rl)
{
	k[0] = kind;
	memcpy(k + 1, dk, FORMAT_DIGEST_KEY_BYTES);
	memcpy(k + 1 + FORMAT_DIGEST_KEY_BYTES, repo, rl);
	return 1 + FORMAT_DIGEST_KEY_BYTES + rl;
}

static size_t
mk_referrer(uint8_t *k, const char *repo, size_t rl, const uint8_t *subject,
    const uint8_t *referrer)
{
	memcpy(k, repo, rl);
	k[rl] = 0;
	memcpy(k + rl + 1, subject, FORMAT_DIGEST_KEY_BYTES);
	memcpy(k + rl + 1 + FORMAT_DIGEST_KEY_BYTES, referrer,
	    FORMAT_DIGEST_KEY_BYTES);
	return rl + 1 + 2 * FORMAT_DIGEST_KEY_BYTES;
}

static bool
dkey_ok(const uint8_t *k)
{
	return k[0] == FORMAT_DIGEST_SHA256;
}

/* A links key: name, 0, kind, digest key. */
static bool
parse_link(const uint8_t *k, size_t kl, size_t *rl, uint8_t *kind,
    const uint8_t **dk)
{
	if (kl < 3 + FORMAT_DIGEST_KEY_BYTES)
		return false;
	*rl = kl - 2 - FORMAT_DIGEST_KEY_BYTES;
	*kind = k[*rl + 1];
	*dk = k + *rl + 2;
	return k[*rl] == 0 && (*kind == FORMAT_LINK_BLOB ||
	    *kind == FORMAT_LINK_MANIFEST) && dkey_ok(*dk) &&
	    oci_name_valid((const char *)k, *rl);
}

/* An rlinks key: kind, digest key, name. */
static bool
parse_rlink(const uint8_t *k, size_t kl, size_t *rl)
{
	if (kl < 2 + FORMAT_DIGEST_KEY_BYTES)
		return false;
	*rl = kl - 1 - FORMAT_DIGEST_KEY_BYTES;
	return (k[0] == FORMAT_LINK_BLOB || k[0] == FORMAT_LINK_MANIFEST) &&
	    dkey_ok(k + 1) &&
	    oci_name_valid((const char *)k + 1 + FORMAT_DIGEST_KEY_BYTES, *rl);
}

/* A name, 0, rest key: the name's length, or -1. */
static ssize_t
name_len(const uint8_t *k, size_t kl)
{
	const uint8_t *z = memchr(k, 0, kl);

	if (z == NULL || !oci_name_valid((const char *)k, (size_t)(z - k)))
		return -1;
	return z - k;
}

/* ---- lookups ------------------------------------------------------------ */

static struct fblob *
blob_find(struct fsck *f, const uint8_t *dk)
{
	size_t lo = 0, hi = f->nblobs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(f->blobs[mid].key, dk, FORMAT_DIGEST_KEY_BYTES);

		if (c == 0)
			return &f->blobs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct fman *
man_find(struct fsck *f, const uint8_t *dk)
{
	size_t lo = 0, hi = f->nmans;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(f->mans[mid].key, dk, FORMAT_DIGEST_KEY_BYTES);

		if (c == 0)
			return &f->mans[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static bool
linked(struct fsck *f, const char *repo, size_t rl, uint8_t kind,
    const uint8_t *dk)
{
	uint8_t k[STORE_KEY_MAX_BYTES];

	if (rl > FORMAT_REPO_MAX_BYTES)
		return false;   /* no valid link has such a name */
	return kvs_find(&f->links, k, mk_link(k, repo, rl, kind, dk)) != NULL;
}

/* ---- images a problem affects ------------------------------------------ */

struct names {
	char **v;
	size_t n, cap;
	size_t more;
};

static void
names_add(struct names *s, char *name)
{
	void *np;

	if (name == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->v[i], name) == 0) {
			free(name);
			return;
		}
	}
	if (s->n >= FSCK_IMAGES_MAX) {
		s->more++;
		free(name);
		return;
	}
	np = grow(s->v, &s->cap, s->n, sizeof(*s->v));
	if (np == NULL) {
		free(name);
		return;
	}
	s->v = np;
	s->v[s->n++] = name;
}

static int
edge_cmp(const void *a, const void *b)
{
	const struct fedge *x = a, *y = b;
	int c = memcmp(x->target, y->target, FORMAT_DIGEST_KEY_BYTES);

	return c != 0 ? c : memcmp(x->source, y->source, FORMAT_DIGEST_KEY_BYTES);
}

/* Manifests naming target (as a blob or a child), into set (key list). */
struct dset {
	uint8_t (*v)[FORMAT_DIGEST_KEY_BYTES];
	size_t n, cap;
};

static bool
dset_has(const struct dset *s, const uint8_t *dk)
{
	for (size_t i = 0; i < s->n; i++)
		if (memcmp(s->v[i], dk, FORMAT_DIGEST_KEY_BYTES) == 0)
			return true;
	return false;
}

static void
dset_add(struct dset *s, const uint8_t *dk)
{
	void *np;

	if (dset_has(s, dk) || s->n >= 4096)
		return;
	np = grow(s->v, &s->cap, s->n, sizeof(*s->v));
	if (np == NULL)
		return;
	s->v = np;
	memcpy(s->v[s->n++], dk, FORMAT_DIGEST_KEY_BYTES);
}

/* Adds every manifest that names dk, then those naming them, ... */
static void
dset_parents(struct fsck *f, struct dset *s, const uint8_t *dk)
{
	struct fedge key;
	size_t lo = 0, hi = f->nedges;

	memcpy(key.target, dk, FORMAT_DIGEST_KEY_BYTES);
	memset(key.source, 0, sizeof(key.source));
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (edge_cmp(&f->edges[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < f->nedges &&
	    memcmp(f->edges[i].target, dk, FORMAT_DIGEST_KEY_BYTES) == 0; i++) {
		if (f->edges[i].kind == FORMAT_REF_SUBJECT ||
		    dset_has(s, f->edges[i].source))
			continue;
		dset_add(s, f->edges[i].source);
		dset_parents(f, s, f->edges[i].source);
	}
}

/*
 * Names of the images that use object dk (a blob or a manifest): each tag
 * of a repository naming one of the manifests found, else repo@digest of
 * the topmost manifests linked there.
 */
static void
images_of(struct fsck *f, const uint8_t *dk, bool is_manifest,
    const char *only_repo, size_t only_rl, struct fsck_problem *p)
{
	struct dset s = { 0 };
	struct names out = { 0 };

	if (p == NULL)
		return;
	if (is_manifest)
		dset_add(&s, dk);
	dset_parents(f, &s, dk);
	for (size_t i = 0; i < s.n; i++) {
		uint8_t pre[1 + FORMAT_DIGEST_KEY_BYTES];
		char ds[OCI_DIGEST_STR_BYTES];
		size_t j;

		pre[0] = FORMAT_LINK_MANIFEST;
		memcpy(pre + 1, s.v[i], FORMAT_DIGEST_KEY_BYTES);
		dkey_str(s.v[i], ds);
		for (j = kvs_lower(&f->rlinks, pre, sizeof(pre));
		    j < f->rlinks.n && f->rlinks.v[j].kl > sizeof(pre) &&
		    memcmp(f->rlinks.v[j].k, pre, sizeof(pre)) == 0; j++) {
			const char *repo = (const char *)f->rlinks.v[j].k +
			    sizeof(pre);
			size_t rl = f->rlinks.v[j].kl - sizeof(pre);
			bool tagged = false, parent = false;

			if (!oci_name_valid(repo, rl))
				continue;       /* reported as link-record-bad */
			if (only_repo != NULL && (rl != only_rl ||
			    memcmp(repo, only_repo, rl) != 0))
				continue;
			for (size_t t = 0; t < f->tags.n; t++) {
				const struct kv *e = &f->tags.v[t];

				if (e->kl <= rl || e->k[rl] != 0 ||
				    memcmp(e->k, repo, rl) != 0 ||
				    e->vl != FORMAT_TAG_BYTES ||
				    memcmp(e->v, s.v[i],
				    FORMAT_DIGEST_KEY_BYTES) != 0)
					continue;
				names_add(&out, fmt("%.*s:%.*s", (int)rl, repo,
				    (int)(e->kl - rl - 1),
				    (const char *)e->k + rl + 1));
				tagged = true;
			}
			/* An untagged child of a listed index adds nothing. */
			for (size_t q = 0; q < s.n && !tagged; q++) {
				struct fman *pm = man_find(f, s.v[q]);

				if (q == i || pm == NULL || !pm->parsed)
					continue;
				for (size_t x = 0; x < pm->m.nrefs; x++) {
					uint8_t ck[FORMAT_DIGEST_KEY_BYTES];

					digest_key(ck, &pm->m.refs[x].digest);
					if (pm->m.refs[x].kind == OCI_REF_MANIFEST &&
					    memcmp(ck, s.v[i], sizeof(ck)) == 0 &&
					    linked(f, repo, rl,
					    FORMAT_LINK_MANIFEST, s.v[q]))
						parent = true;
				}
			}
			if (!tagged && !parent)
				names_add(&out, fmt("%.*s@%s", (int)rl, repo,
				    ds));
		}
	}
	free(s.v);
	if (out.more > 0)
		names_add(&out, fmt("(and %zu more)", out.more));
	p->images = out.v;
	p->nimages = out.n;
}

static void
image_add(struct fsck_problem *p, char *name)
{
	struct names s = { p->images, p->nimages, p->nimages, 0 };

	names_add(&s, name);
	p->images = s.v;
	p->nimages = s.n;
}

/* ---- pass 1: collect --------------------------------------------------- */

typedef int scan_fn(struct fsck *f, const MDB_val *k, const MDB_val *v);

static int
scan(struct fsck *f, MDB_txn *txn, enum store_dbi dbi, scan_fn *fn)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc, frc = 0;

	rc = mdb_cursor_open(txn, f->st->dbi[dbi], &c);
	if (rc != 0)
		return store_mdb_error(rc, "fsck cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		frc = fn(f, &k, &v);
		if (frc != 0)
			break;
	}
	mdb_cursor_close(c);
	if (frc != 0)
		return frc;
	return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "fsck scan");
}

static int
scan_meta(struct fsck *f, const MDB_val *k, const MDB_val *v)
{
	char name[64];
	struct fsck_problem *p;

	if (k->mv_size == strlen(FORMAT_META_HEADER) &&
	    memcmp(k->mv_data, FORMAT_META_HEADER, k->mv_size) == 0)
		return 0;       /* store_open checked it */
	if (k->mv_size == strlen(FORMAT_META_NEXT_SET) &&
	    memcmp(k->mv_data, FORMAT_META_NEXT_SET, k->mv_size) == 0) {
		if (v->mv_size == 8) {
			f->have_next_set = true;
			f->next_set = format_get_le64(v->mv_data);
		} else {
			f->next_set_bad = v->mv_size;   /* check_sets reports */
		}
		return 0;
	}
	printable(k->mv_data, k->mv_size, name, sizeof(name));
	p = problem(f, "meta-unknown-key", FSCK_ERROR, fmt("meta %s", name),
	    fmt("key unknown to format %u", FORMAT_VERSION));
	return p == NULL ? STORE_E_NOMEM : 0;
}

static int
scan_blob(struct fsck *f, const MDB_val *k, const MDB_val *v)
{
	struct fblob *b;
	struct fsck_problem *p;
	char ks[128];
	void *np;

	np = grow(f->blobs, &f->cblobs, f->nblobs, sizeof(*b));
	if (np == NULL)
		return STORE_E_NOMEM;
	f->blobs = np;
	b = &f->blobs[f->nblobs];
	memset(b, 0, sizeof(*b));
	if (k->mv_size == FORMAT_DIGEST_KEY_BYTES && dkey_ok(k->mv_data) &&
	    record_blob_decode(v->mv_data, v->mv_size, &b->info, &b->set) == 0 &&
	    (b->set != 0 || b->info.nchunks == 0)) {    /* F4: no set 0 */
		memcpy(b->key, k->mv_data, FORMAT_DIGEST_KEY_BYTES);
		(void)digest_from_key(b->key, sizeof(b->key), &b->info.digest);
		b->quarantine = (b->info.flags & FORMAT_BLOB_F_QUARANTINE) != 0;
		f->nblobs++;
		return 0;
	}
	if (k->mv_size == FORMAT_DIGEST_KEY_BYTES && dkey_ok(k->mv_data))
		dkey_str(k->mv_data, ks);
	else
		printable(k->mv_data, k->mv_size, ks, sizeof(ks));
	p = problem(f, "blob-record-bad", FSCK_ERROR, fmt("blob %s", ks),
	    fmt("record of %zu bytes does not decode", v->mv_size));
	fix_key(fix_new(p, FIX_DEL_IF_SAME, "record deleted (its chunks "
	    "are deleted as orphans)"), DBI_BLOBS, k->mv_data, k->mv_size,
	    v->mv_data, v->mv_size);
	return p == NULL ? STORE_E_NOMEM : 0;
}

/* Jumps from set to set: one step per distinct set id, not per chunk. */
static int
scan_sets(struct fsck *f, MDB_txn *txn)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t key[FORMAT_CHUNK_KEY_BYTES];
	int rc;

	rc = mdb_cursor_open(txn, f->st->dbi[DBI_CHUNKS], &c);
	if (rc != 0)
		return store_mdb_error(rc, "fsck cursor");
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0) {
		uint64_t set;
		void *np;

		if (k.mv_size != FORMAT_CHUNK_KEY_BYTES) {
			char ks[128];
			struct fsck_problem *p;

			printable(k.mv_data, k.mv_size, ks, sizeof(ks));
			p = problem(f, "chunk-orphan", FSCK_ERROR,
			    fmt("chunk key %s", ks),
			    fmt("key of %zu bytes, not %d", k.mv_size,
			    FORMAT_CHUNK_KEY_BYTES));
			fix_key(fix_new(p, FIX_DEL, "deleted"), DBI_CHUNKS,
			    k.mv_data, k.mv_size, NULL, 0);
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		set = format_get_be64(k.mv_data);
		np = grow(f->sets, &f->csets, f->nsets, sizeof(*f->sets));
		if (np == NULL) {
			mdb_cursor_close(c);
			return STORE_E_NOMEM;
		}
		f->sets = np;
		f->sets[f->nsets++] = set;
		if (set == UINT64_MAX)
			break;
		chunk_key(key, set + 1, 0);
		k = (MDB_val){ sizeof(key), key };
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 :
	    store_mdb_error(rc, "fsck scan");
}

static int
scan_upload(struct fsck *f, const MDB_val *k, const MDB_val *v)
{
	struct fupload *u;
	struct fsck_problem *p;
	char ks[128];
	void *np;

	np = grow(f->uploads, &f->cuploads, f->nuploads, sizeof(*u));
	if (np == NULL)
		return STORE_E_NOMEM;
	f->uploads = np;
	u = &f->uploads[f->nuploads];
	memset(u, 0, sizeof(*u));
	u->val = malloc(v->mv_size + 1);
	if (u->val == NULL)
		return STORE_E_NOMEM;
	memcpy(u->val, v->mv_data, v->mv_size);
	u->vlen = v->mv_size;
	if (k->mv_size == FORMAT_UPLOAD_ID_BYTES &&
	    record_upload_decode(u->val, u->vlen, &u->rec) == 0 &&
	    oci_name_valid(u->rec.repo, u->rec.repolen) && u->rec.set != 0 &&
	    /* U4: NOCOMPRESS and any byte imply the decision was made */
	    ((u->rec.flags & FORMAT_UPLOAD_F_SNIFFED) ||
	    (!(u->rec.flags & FORMAT_UPLOAD_F_NOCOMPRESS) &&
	    u->rec.offset == 0))) {
		memcpy(u->id, k->mv_data, sizeof(u->id));
		f->nuploads++;
		return 0;
	}
	free(u->val);
	u->val = NULL;
	printable(k->mv_data, k->mv_size, ks, sizeof(ks));
	p = problem(f, "upload-record-bad", FSCK_ERROR, fmt("upload %s", ks),
	    fmt("record of %zu bytes does not decode", v->mv_size));
	fix_key(fix_new(p, FIX_DEL_IF_SAME, "record deleted (its chunks are "
	    "deleted as orphans)"), DBI_UPLOADS, k->mv_data, k->mv_size,
	    v->mv_data, v->mv_size);
	return p == NULL ? STORE_E_NOMEM : 0;
}

/* Decodes, verifies and parses one manifest record. */
static int
man_check(struct fman *m, const MDB_val *v, ZSTD_DCtx *dctx,
    char *why, size_t whysize)
{
	struct manifest_rec mr;
	struct chunk_hdr h;
	struct oci_digest d, want;
	uint8_t *raw = NULL;

	if (record_manifest_decode(v->mv_data, v->mv_size, &mr) != 0) {
		snprintf(why, whysize, "record does not decode");
		return 0;
	}
	memcpy(m->media_type, mr.media_type, mr.media_type_len);
	m->media_type[mr.media_type_len] = '\0';
	if (chunk_verify(mr.chunk, mr.chunk_len, FORMAT_CHUNK_RAW_LIMIT,
	    &h) != 0 || h.raw_len == 0) {
		snprintf(why, whysize, "stored bytes fail their checksum");
		return 0;
	}
	raw = malloc(h.raw_len);
	if (raw == NULL)
		return STORE_E_NOMEM;   /* not the manifest's fault */
	if (chunk_decode(mr.chunk, &h, dctx, raw, h.raw_len) != 0) {
		snprintf(why, whysize, "stored bytes do not decompress");
		goto out;
	}
	oci_digest_sha256(raw, h.raw_len, &d);
	(void)digest_from_key(m->key, sizeof(m->key), &want);
	if (!oci_digest_equal(&d, &want)) {
		snprintf(why, whysize, "content does not match its digest");
		goto out;
	}
	m->sound = true;
	m->len = h.raw_len;
	m->parsed = oci_manifest_parse(raw, h.raw_len, m->media_type,
	    strlen(m->media_type), &m->m, why, whysize) == 0;
out:
	free(raw);
	return 0;
}

static int
scan_man(struct fsck *f, const MDB_val *k, const MDB_val *v)
{
	struct fman *m;
	struct fsck_problem *p;
	char why[256] = "", ks[128];
	void *np;

	np = grow(f->mans, &f->cmans, f->nmans, sizeof(*m));
	if (np == NULL)
		return STORE_E_NOMEM;
	f->mans = np;
	m = &f->mans[f->nmans];
	memset(m, 0, sizeof(*m));
	if (k->mv_size != FORMAT_DIGEST_KEY_BYTES || !dkey_ok(k->mv_data)) {
		printable(k->mv_data, k->mv_size, ks, sizeof(ks));
		p = problem(f, "manifest-corrupt", FSCK_ERROR,
		    fmt("manifest key %s", ks), fmt("key is not a digest"));
		fix_key(fix_new(p, FIX_DEL, "deleted"), DBI_MANIFESTS,
		    k->mv_data, k->mv_size, NULL, 0);
		return p == NULL ? STORE_E_NOMEM : 0;
	}
	memcpy(m->key, k->mv_data, sizeof(m->key));
	f->nmans++;
	if (man_check(m, v, f->dctx, why, sizeof(why)) != 0)
		return STORE_E_NOMEM;
	if (!m->sound) {
		m->val = malloc(v->mv_size + 1);
		if (m->val == NULL)
			return STORE_E_NOMEM;
		memcpy(m->val, v->mv_data, v->mv_size);
		m->vlen = v->mv_size;
	}
	if (!m->parsed) {
		m->why = strdup(why);
		if (m->why == NULL)
			return STORE_E_NOMEM;
	}
	return 0;
}

static int
scan_kvs(struct fsck *f, MDB_txn *txn, enum store_dbi dbi, struct kvs *s,
    bool keepval)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(txn, f->st->dbi[dbi], &c);
	if (rc != 0)
		return store_mdb_error(rc, "fsck cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		int arc = kvs_add(s, k.mv_data, k.mv_size, v.mv_data,
		    v.mv_size, keepval);

		if (arc != 0) {
			mdb_cursor_close(c);
			return arc;
		}
	}
	mdb_cursor_close(c);
	kvs_sort(s);
	return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "fsck scan");
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
fblob_cmp(const void *a, const void *b)
{
	return memcmp(((const struct fblob *)a)->key,
	    ((const struct fblob *)b)->key, FORMAT_DIGEST_KEY_BYTES);
}

static int
fman_cmp(const void *a, const void *b)
{
	return memcmp(((const struct fman *)a)->key,
	    ((const struct fman *)b)->key, FORMAT_DIGEST_KEY_BYTES);
}

static int
collect(struct fsck *f)
{
	MDB_txn *txn;
	int rc;

	rc = store_rtxn_begin(f->st, &txn);
	if (rc != 0)
		return rc;
	rc = scan(f, txn, DBI_META, scan_meta);
	if (rc == 0)
		rc = scan(f, txn, DBI_BLOBS, scan_blob);
	if (rc == 0)
		rc = scan_sets(f, txn);
	if (rc == 0)
		rc = scan(f, txn, DBI_UPLOADS, scan_upload);
	if (rc == 0)
		rc = scan(f, txn, DBI_MANIFESTS, scan_man);
	if (rc == 0)
		rc = scan_kvs(f, txn, DBI_REPOS, &f->repos, false);
	if (rc == 0)
		rc = scan_kvs(f, txn, DBI_LINKS, &f->links, false);
	if (rc == 0)
		rc = scan_kvs(f, txn, DBI_RLINKS, &f->rlinks, false);
	if (rc == 0)
		rc = scan_kvs(f, txn, DBI_TAGS, &f->tags, true);
	if (rc == 0)
		rc = scan_kvs(f, txn, DBI_REFS, &f->refs, true);
	if (rc == 0)
		rc = scan_kvs(f, txn, DBI_REFERRERS, &f->referrers, true);
	store_rtxn_end(txn);
	/* Scans come in key order already; sorting keeps lookups honest. */
	if (f->nblobs > 1)
		qsort(f->blobs, f->nblobs, sizeof(*f->blobs), fblob_cmp);
	if (f->nmans > 1)
		qsort(f->mans, f->nmans, sizeof(*f->mans), fman_cmp);
	if (f->nsets > 1)
		qsort(f->sets, f->nsets, sizeof(*f->sets), u64_cmp);
	f->r->blobs = f->nblobs;
	f->r->uploads = f->nuploads;
	f->r->manifests = f->nmans;
	f->r->tags = f->tags.n;
	f->r->repos = f->repos.n;
	f->r->links = f->links.n;
	return rc;
}

/* ---- pass 2: cross-check ----------------------------------------------- */

struct owner {
	uint64_t set;
	bool upload;
	size_t idx;
};

static int
owner_cmp(const void *a, const void *b)
{
	const struct owner *x = a, *y = b;

	return x->set < y->set ? -1 : x->set > y->set;
}

static const char *
owner_name(struct fsck *f, const struct owner *o, char *buf, size_t n)
{
	char ds[OCI_DIGEST_STR_BYTES];

	if (o->upload) {
		snprintf(buf, n, "an upload to %.*s",
		    (int)f->uploads[o->idx].rec.repolen,
		    f->uploads[o->idx].rec.repo);
	} else {
		oci_digest_format(&f->blobs[o->idx].info.digest, ds);
		snprintf(buf, n, "blob %s", ds);
	}
	return buf;
}

/* Set ownership (B6, U5), orphan chunks (B7), the set counter (F3). */
static int
check_sets(struct fsck *f)
{
	struct owner *o;
	size_t n = 0, j = 0;
	uint64_t max = 0;

	o = calloc(f->nblobs + f->nuploads + 1, sizeof(*o));
	if (o == NULL)
		return STORE_E_NOMEM;
	for (size_t i = 0; i < f->nblobs; i++) {
		if (f->blobs[i].info.nchunks == 0 && f->blobs[i].info.size == 0)
			continue;       /* an empty blob's set has no chunk */
		o[n++] = (struct owner){ f->blobs[i].set, false, i };
	}
	for (size_t i = 0; i < f->nuploads; i++)
		o[n++] = (struct owner){ f->uploads[i].rec.set, true, i };
	qsort(o, n, sizeof(*o), owner_cmp);
	for (size_t i = 0; i < n; i++) {
		char a[128], b[128];
		struct fsck_problem *p;

		if (o[i].set > max)
			max = o[i].set;
		if (i == 0 || o[i].set != o[i - 1].set)
			continue;
		p = problem(f, "set-shared", FSCK_ERROR,
		    fmt("chunk set %llu", (unsigned long long)o[i].set),
		    fmt("named by both %s and %s",
		    owner_name(f, &o[i - 1], a, sizeof(a)),
		    owner_name(f, &o[i], b, sizeof(b))));
		if (p == NULL)
			goto nomem;
	}
	for (size_t i = 0; i < f->nsets; i++) {
		uint64_t s = f->sets[i];
		struct fsck_problem *p;
		struct fsck_fix *x;

		if (s > max)
			max = s;
		while (j < n && o[j].set < s)
			j++;
		if (j < n && o[j].set == s)
			continue;
		p = problem(f, "chunk-orphan", FSCK_ERROR,
		    fmt("chunk set %llu", (unsigned long long)s),
		    fmt("no blob or upload owns its chunks"));
		x = fix_new(p, FIX_DROP_SET, "chunks deleted");
		if (x == NULL)
			goto nomem;
		x->set = s;
	}
	free(o);
	if ((f->have_next_set && f->next_set <= max) || f->next_set_bad > 0 ||
	    (!f->have_next_set && max > 0)) {
		struct fsck_problem *p;
		struct fsck_fix *x;

		p = problem(f, "next-set-bad", FSCK_ERROR, fmt("meta next-set"),
		    f->next_set_bad > 0 ? fmt("value of %zu bytes, not 8",
		    f->next_set_bad) :
		    f->have_next_set ? fmt("%llu is not above set %llu in use",
		    (unsigned long long)f->next_set, (unsigned long long)max) :
		    fmt("missing, and set %llu is in use",
		    (unsigned long long)max));
		x = fix_new(p, FIX_NEXT_SET, "raised above every set in use");
		if (x == NULL)
			return STORE_E_NOMEM;
		x->set = max + 1;
	}
	return 0;
nomem:
	free(o);
	return STORE_E_NOMEM;
}

/* Links, their mirrors, repositories, linked objects (L1-L5). */
static int
check_links(struct fsck *f)
{
	const char *last_repo = NULL;
	size_t last_rl = 0;

	for (size_t i = 0; i < f->links.n; i++) {
		const struct kv *e = &f->links.v[i];
		uint8_t k[STORE_KEY_MAX_BYTES];
		const uint8_t *dk;
		const char *repo = (const char *)e->k;
		size_t rl, kl;
		uint8_t kind;
		char ds[OCI_DIGEST_STR_BYTES], ks[128];
		struct fsck_problem *p;
		struct fsck_fix *x;

		if (!parse_link(e->k, e->kl, &rl, &kind, &dk) || e->vl != 8) {
			printable(e->k, e->kl, ks, sizeof(ks));
			p = problem(f, "link-record-bad", FSCK_ERROR,
			    fmt("link %s", ks), fmt("key or value malformed"));
			fix_key(fix_new(p, FIX_DEL, "deleted"), DBI_LINKS, e->k,
			    e->kl, NULL, 0);
			if (p == NULL)
				return STORE_E_NOMEM;
			continue;
		}
		dkey_str(dk, ds);
		if (last_repo == NULL || rl != last_rl ||
		    memcmp(repo, last_repo, rl) != 0) {
			last_repo = repo;
			last_rl = rl;
			if (kvs_find(&f->repos, e->k, rl) == NULL) {
				uint8_t val[8];

				format_put_le64(val, f->now);
				p = problem(f, "repo-missing", FSCK_ERROR,
				    fmt("repository %.*s", (int)rl, repo),
				    fmt("has links but no repos record"));
				fix_key(fix_new(p, FIX_PUT_NEW, "record written"),
				    DBI_REPOS, repo, rl, val, sizeof(val));
				if (p == NULL)
					return STORE_E_NOMEM;
			}
		}
		kl = mk_rlink(k, kind, dk, repo, rl);
		if (kvs_find(&f->rlinks, k, kl) == NULL) {
			p = problem(f, "link-mirror-missing", FSCK_ERROR,
			    fmt("%s link %.*s -> %s", kind == FORMAT_LINK_BLOB ?
			    "blob" : "manifest", (int)rl, repo, ds),
			    fmt("the rlinks mirror is missing"));
			x = fix_new(p, FIX_PUT, "mirror written");
			fix_key(x, DBI_RLINKS, k, kl, NULL, 0);
			fix_guard(x, GUARD_EXISTS, DBI_LINKS, e->k, e->kl);
			if (p == NULL)
				return STORE_E_NOMEM;
		}
		if (kind == FORMAT_LINK_BLOB && blob_find(f, dk) == NULL) {
			p = problem(f, "link-blob-missing", FSCK_ERROR,
			    fmt("blob link %.*s -> %s", (int)rl, repo, ds),
			    fmt("the blob is not stored"));
			images_of(f, dk, false, repo, rl, p);
			x = fix_new(p, FIX_DROP_BLOB_LINK, "link deleted");
			fix_guard(x, GUARD_ABSENT, DBI_BLOBS, dk,
			    FORMAT_DIGEST_KEY_BYTES);
			if (x == NULL)
				return STORE_E_NOMEM;
			fix_repo(x, repo, rl);
			(void)digest_from_key(dk, FORMAT_DIGEST_KEY_BYTES, &x->d);
		} else if (kind == FORMAT_LINK_MANIFEST && man_find(f, dk) != NULL) {
			man_find(f, dk)->linked = true;
		} else if (kind == FORMAT_LINK_MANIFEST) {
			p = problem(f, "link-manifest-missing", FSCK_ERROR,
			    fmt("manifest link %.*s -> %s", (int)rl, repo, ds),
			    fmt("the manifest is not stored"));
			images_of(f, dk, true, repo, rl, p);
			x = fix_new(p, FIX_UNLINK_MANIFEST, "link, its tags and "
			    "referrers entries deleted");
			fix_guard(x, GUARD_ABSENT, DBI_MANIFESTS, dk,
			    FORMAT_DIGEST_KEY_BYTES);
			if (x == NULL)
				return STORE_E_NOMEM;
			fix_repo(x, repo, rl);
			(void)digest_from_key(dk, FORMAT_DIGEST_KEY_BYTES, &x->d);
		}
	}
	for (size_t i = 0; i < f->rlinks.n; i++) {
		const struct kv *e = &f->rlinks.v[i];
		uint8_t k[STORE_KEY_MAX_BYTES];
		size_t rl, kl;
		char ds[OCI_DIGEST_STR_BYTES], ks[128];
		struct fsck_problem *p;
		struct fsck_fix *x;

		if (!parse_rlink(e->k, e->kl, &rl) || e->vl != 0) {
			printable(e->k, e->kl, ks, sizeof(ks));
			p = problem(f, "link-record-bad", FSCK_ERROR,
			    fmt("rlink %s", ks), fmt("key or value malformed"));
			fix_key(fix_new(p, FIX_DEL, "deleted"), DBI_RLINKS,
			    e->k, e->kl, NULL, 0);
			if (p == NULL)
				return STORE_E_NOMEM;
			continue;
		}
		kl = mk_link(k, (const char *)e->k + 1 + FORMAT_DIGEST_KEY_BYTES,
		    rl, e->k[0], e->k + 1);
		if (kvs_find(&f->links, k, kl) != NULL)
			continue;
		dkey_str(e->k + 1, ds);
		p = problem(f, "link-mirror-extra", FSCK_ERROR,
		    fmt("rlink %.*s -> %s", (int)rl,
		    (const char *)e->k + 1 + FORMAT_DIGEST_KEY_BYTES, ds),
		    fmt("no links record for this mirror"));
		x = fix_new(p, FIX_DEL, "deleted");
		fix_key(x, DBI_RLINKS, e->k, e->kl, NULL, 0);
		fix_guard(x, GUARD_ABSENT, DBI_LINKS, k, kl);
		if (p == NULL)
			return STORE_E_NOMEM;
	}
	return 0;
}

/* Tags (M2). */
static int
check_tags(struct fsck *f)
{
	for (size_t i = 0; i < f->tags.n; i++) {
		const struct kv *e = &f->tags.v[i];
		ssize_t rl = name_len(e->k, e->kl);
		struct oci_digest d;
		uint64_t upd;
		char ds[OCI_DIGEST_STR_BYTES], ks[160];
		uint8_t lk[STORE_KEY_MAX_BYTES];
		struct fsck_problem *p;
		struct fsck_fix *x;

		printable(e->k, e->kl, ks, sizeof(ks));
		if (rl < 0 || !oci_tag_valid((const char *)e->k + rl + 1,
		    e->kl - (size_t)rl - 1) ||
		    record_tag_decode(e->v, e->vl, &d, &upd) != 0) {
			p = problem(f, "tag-record-bad", FSCK_ERROR,
			    fmt("tag %s", ks), fmt("key or value malformed"));
			fix_key(fix_new(p, FIX_DEL_IF_SAME, "deleted"), DBI_TAGS,
			    e->k, e->kl, e->v, e->vl);
			if (p == NULL)
				return STORE_E_NOMEM;
			continue;
		}
		if (linked(f, (const char *)e->k, (size_t)rl,
		    FORMAT_LINK_MANIFEST, e->v))
			continue;
		oci_digest_format(&d, ds);
		p = problem(f, "tag-dangling", FSCK_ERROR,
		    fmt("tag %.*s:%.*s", (int)rl, (const char *)e->k,
		    (int)(e->kl - (size_t)rl - 1), (const char *)e->k + rl + 1),
		    fmt("names %s, which the repository does not hold", ds));
		x = fix_new(p, FIX_DEL_IF_SAME, "tag deleted (push the image "
		    "again to restore it)");
		fix_key(x, DBI_TAGS, e->k, e->kl, e->v, e->vl);
		fix_guard(x, GUARD_ABSENT, DBI_LINKS, lk, mk_link(lk,
		    (const char *)e->k, (size_t)rl, FORMAT_LINK_MANIFEST, e->v));
		if (p == NULL)
			return STORE_E_NOMEM;
		image_add(p, fmt("%.*s:%.*s", (int)rl, (const char *)e->k,
		    (int)(e->kl - (size_t)rl - 1), (const char *)e->k + rl + 1));
	}
	return 0;
}

static int
add_edge(struct fsck *f, const uint8_t *target, const uint8_t *source,
    uint8_t kind)
{
	void *np = grow(f->edges, &f->cedges, f->nedges, sizeof(*f->edges));

	if (np == NULL)
		return STORE_E_NOMEM;
	f->edges = np;
	memcpy(f->edges[f->nedges].target, target, FORMAT_DIGEST_KEY_BYTES);
	memcpy(f->edges[f->nedges].source, source, FORMAT_DIGEST_KEY_BYTES);
	f->edges[f->nedges].kind = kind;
	f->nedges++;
	return 0;
}

/* Who names what, from the parsed manifests (for images_of). */
static int
build_edges(struct fsck *f)
{
	for (size_t i = 0; i < f->nmans; i++) {
		struct fman *m = &f->mans[i];

		for (size_t j = 0; m->parsed && j < m->m.nrefs; j++) {
			uint8_t tk[FORMAT_DIGEST_KEY_BYTES];

			digest_key(tk, &m->m.refs[j].digest);
			if (add_edge(f, tk, m->key, m->m.refs[j].kind) != 0)
				return STORE_E_NOMEM;
		}
	}
	if (f->nedges > 1)
		qsort(f->edges, f->nedges, sizeof(*f->edges), edge_cmp);
	return 0;
}

/*
 * Manifests: sound (M1), parse, linked somewhere (L6), and in every
 * repository linking them every blob and child they name is readable.
 */
static int
check_manifests(struct fsck *f)
{
	for (size_t i = 0; i < f->nmans; i++) {
		struct fman *m = &f->mans[i];
		uint8_t pre[1 + FORMAT_DIGEST_KEY_BYTES];
		char ds[OCI_DIGEST_STR_BYTES];
		struct fsck_problem *p;
		struct fsck_fix *x;
		size_t j;

		dkey_str(m->key, ds);
		pre[0] = FORMAT_LINK_MANIFEST;
		memcpy(pre + 1, m->key, FORMAT_DIGEST_KEY_BYTES);
		if (!m->linked) {
			p = problem(f, "manifest-unlinked", FSCK_ERROR,
			    fmt("manifest %s", ds),
			    fmt("no repository links it"));
			/* The drop itself re-checks links and mirrors. */
			x = fix_new(p, FIX_DROP_MANIFEST, "record and its refs "
			    "deleted");
			if (x == NULL)
				return STORE_E_NOMEM;
			(void)digest_from_key(m->key, sizeof(m->key), &x->d);
			continue;
		}
		if (!m->sound) {
			p = problem(f, "manifest-corrupt", FSCK_ERROR,
			    fmt("manifest %s", ds), fmt("%s", m->why));
			images_of(f, m->key, true, NULL, 0, p);
			x = fix_new(p, FIX_REMOVE_MANIFEST, "removed from every "
			    "repository with its tags (push the image again)");
			fix_key(x, DBI_MANIFESTS, m->key, sizeof(m->key), m->val,
			    m->vlen);
			if (x == NULL)
				return STORE_E_NOMEM;
			(void)digest_from_key(m->key, sizeof(m->key), &x->d);
			continue;
		}
		if (!m->parsed) {
			p = problem(f, "manifest-invalid", FSCK_WARNING,
			    fmt("manifest %s", ds), fmt("%s", m->why));
			images_of(f, m->key, true, NULL, 0, p);
			if (p == NULL)
				return STORE_E_NOMEM;
			continue;
		}
		for (j = kvs_lower(&f->rlinks, pre, sizeof(pre)); j < f->rlinks.n &&
		    f->rlinks.v[j].kl > sizeof(pre) &&
		    memcmp(f->rlinks.v[j].k, pre, sizeof(pre)) == 0; j++) {
			const char *repo = (const char *)f->rlinks.v[j].k +
			    sizeof(pre);
			size_t rl = f->rlinks.v[j].kl - sizeof(pre);

			if (!linked(f, repo, rl, FORMAT_LINK_MANIFEST, m->key))
				continue;       /* a lone mirror: reported */
			for (size_t r = 0; r < m->m.nrefs; r++) {
				const struct oci_ref *ref = &m->m.refs[r];
				uint8_t tk[FORMAT_DIGEST_KEY_BYTES];
				char ts[OCI_DIGEST_STR_BYTES];
				const char *id = NULL, *what;
				struct fblob *b;

				if (ref->kind == OCI_REF_SUBJECT || ref->external)
					continue;
				digest_key(tk, &ref->digest);
				oci_digest_format(&ref->digest, ts);
				what = ref->kind == OCI_REF_CONFIG ? "config" :
				    ref->kind == OCI_REF_LAYER ? "layer" :
				    "child manifest";
				if (ref->kind == OCI_REF_MANIFEST) {
					if (!linked(f, repo, rl,
					    FORMAT_LINK_MANIFEST, tk))
						id = "image-manifest-missing";
				} else if ((b = blob_find(f, tk)) == NULL) {
					id = "image-blob-missing";
				} else if (b->quarantine) {
					continue;       /* blob-quarantined */
				} else if (!linked(f, repo, rl, FORMAT_LINK_BLOB,
				    tk)) {
					id = "image-blob-unlinked";
				}
				if (id == NULL)
					continue;
				p = problem(f, id, FSCK_WARNING,
				    fmt("manifest %.*s@%s", (int)rl, repo, ds),
				    fmt("its %s %s is %s", what, ts,
				    strcmp(id, "image-blob-unlinked") == 0 ?
				    "stored but not linked to the repository" :
				    ref->kind == OCI_REF_MANIFEST ?
				    "not in the repository" : "not stored"));
				images_of(f, m->key, true, repo, rl, p);
				if (p == NULL)
					return STORE_E_NOMEM;
			}
		}
	}
	return 0;
}

/* The refs records every parsed manifest should have, sorted, deduped. */
static int
expected_refs(struct fsck *f, struct kvs *out)
{
	for (size_t i = 0; i < f->nmans; i++) {
		struct fman *m = &f->mans[i];
		size_t start = out->n;

		for (size_t j = 0; m->parsed && j < m->m.nrefs; j++) {
			uint8_t k[FORMAT_REF_KEY_BYTES], v[8];

			memcpy(k, m->key, FORMAT_DIGEST_KEY_BYTES);
			k[FORMAT_DIGEST_KEY_BYTES] = m->m.refs[j].kind;
			digest_key(k + FORMAT_DIGEST_KEY_BYTES + 1,
			    &m->m.refs[j].digest);
			format_put_le64(v, m->m.refs[j].size);
			/* A repeated descriptor: the last one is written. */
			for (size_t q = start; q < out->n; q++) {
				if (memcmp(out->v[q].k, k, sizeof(k)) == 0) {
					memcpy(out->v[q].v, v, sizeof(v));
					goto next;
				}
			}
			if (kvs_add(out, k, sizeof(k), v, sizeof(v), true) != 0)
				return STORE_E_NOMEM;
next:
			;
		}
	}
	kvs_sort(out);
	return 0;
}

static char *
ref_name(const uint8_t *k)
{
	char a[OCI_DIGEST_STR_BYTES], b[OCI_DIGEST_STR_BYTES];

	dkey_str(k, a);
	dkey_str(k + FORMAT_DIGEST_KEY_BYTES + 1, b);
	return fmt("ref %s -(%u)-> %s", a, k[FORMAT_DIGEST_KEY_BYTES], b);
}

/* refs against what the manifests say (M3, recomputed). */
static int
check_refs(struct fsck *f)
{
	struct kvs want = { 0 };
	size_t i = 0, j = 0;
	int rc = expected_refs(f, &want);

	while (rc == 0 && (i < f->refs.n || j < want.n)) {
		const struct kv *have = i < f->refs.n ? &f->refs.v[i] : NULL;
		const struct kv *exp = j < want.n ? &want.v[j] : NULL;
		int c = have == NULL ? 1 : exp == NULL ? -1 :
		    key_cmp(have->k, have->kl, exp->k, exp->kl);
		struct fsck_problem *p = NULL;
		struct fsck_fix *x;
		struct fman *src;

		if (c < 0) {
			i++;
			if (have->kl != FORMAT_REF_KEY_BYTES || have->vl != 8 ||
			    !dkey_ok(have->k) ||
			    !dkey_ok(have->k + FORMAT_DIGEST_KEY_BYTES + 1) ||
			    have->k[FORMAT_DIGEST_KEY_BYTES] < FORMAT_REF_CONFIG ||
			    have->k[FORMAT_DIGEST_KEY_BYTES] > FORMAT_REF_SUBJECT) {
				char ks[200];

				printable(have->k, have->kl, ks, sizeof(ks));
				p = problem(f, "refs-record-bad", FSCK_ERROR,
				    fmt("ref %s", ks), fmt("key or value "
				    "malformed"));
				fix_key(fix_new(p, FIX_DEL, "deleted"), DBI_REFS,
				    have->k, have->kl, NULL, 0);
			} else if ((src = man_find(f, have->k)) == NULL) {
				p = problem(f, "refs-orphan", FSCK_ERROR,
				    ref_name(have->k), fmt("its source manifest "
				    "is not stored"));
				x = fix_new(p, FIX_DEL, "deleted");
				fix_key(x, DBI_REFS, have->k, have->kl, NULL, 0);
				fix_guard(x, GUARD_ABSENT, DBI_MANIFESTS, have->k,
				    FORMAT_DIGEST_KEY_BYTES);
			} else if (src->parsed) {
				p = problem(f, "refs-mismatch", FSCK_ERROR,
				    ref_name(have->k), fmt("the manifest names "
				    "no such reference"));
				x = fix_new(p, FIX_DEL, "deleted");
				fix_key(x, DBI_REFS, have->k, have->kl, NULL, 0);
				fix_guard(x, GUARD_EXISTS, DBI_MANIFESTS, have->k,
				    FORMAT_DIGEST_KEY_BYTES);
			} else {
				continue;       /* unreadable source: reported */
			}
		} else if (c > 0) {
			j++;
			p = problem(f, "refs-mismatch", FSCK_ERROR,
			    ref_name(exp->k), fmt("missing: the manifest names "
			    "it"));
			x = fix_new(p, FIX_PUT, "written");
			fix_key(x, DBI_REFS, exp->k, exp->kl, exp->v, exp->vl);
			fix_guard(x, GUARD_EXISTS, DBI_MANIFESTS, exp->k,
			    FORMAT_DIGEST_KEY_BYTES);
		} else {
			i++;
			j++;
			if (have->vl == exp->vl &&
			    memcmp(have->v, exp->v, exp->vl) == 0)
				continue;
			p = problem(f, "refs-mismatch", FSCK_ERROR,
			    ref_name(exp->k), fmt("records a size other than "
			    "the manifest's"));
			x = fix_new(p, FIX_PUT, "rewritten");
			fix_key(x, DBI_REFS, exp->k, exp->kl, exp->v, exp->vl);
			fix_guard(x, GUARD_EXISTS, DBI_MANIFESTS, exp->k,
			    FORMAT_DIGEST_KEY_BYTES);
		}
		if (p == NULL)
			rc = STORE_E_NOMEM;
	}
	kvs_free(&want);
	return rc;
}

/* The referrers entries the manifest links call for (M4, M5). */
static int
expected_referrers(struct fsck *f, struct kvs *out)
{
	for (size_t i = 0; i < f->links.n; i++) {
		const struct kv *e = &f->links.v[i];
		uint8_t k[STORE_KEY_MAX_BYTES], v[12 + 2 * 255];
		uint8_t sk[FORMAT_DIGEST_KEY_BYTES];
		const uint8_t *dk;
		size_t rl, kl, ml, al;
		uint8_t kind;
		struct fman *m;

		if (!parse_link(e->k, e->kl, &rl, &kind, &dk) ||
		    kind != FORMAT_LINK_MANIFEST ||
		    (m = man_find(f, dk)) == NULL || !m->parsed ||
		    !m->m.has_subject)
			continue;
		digest_key(sk, &m->m.subject);
		kl = mk_referrer(k, (const char *)e->k, rl, sk, dk);
		ml = strlen(m->m.media_type);
		al = strlen(m->m.artifact_type);
		format_put_le64(v, m->len);
		format_put_le16(v + 8, (uint16_t)ml);
		memcpy(v + 10, m->m.media_type, ml);
		format_put_le16(v + 10 + ml, (uint16_t)al);
		memcpy(v + 12 + ml, m->m.artifact_type, al);
		if (kvs_add(out, k, kl, v, 12 + ml + al, true) != 0)
			return STORE_E_NOMEM;
	}
	kvs_sort(out);
	return 0;
}

static char *
referrer_name(const uint8_t *k, size_t kl, size_t rl)
{
	char a[OCI_DIGEST_STR_BYTES], b[OCI_DIGEST_STR_BYTES];

	(void)kl;
	dkey_str(k + rl + 1, a);
	dkey_str(k + rl + 1 + FORMAT_DIGEST_KEY_BYTES, b);
	return fmt("referrer %.*s: %s <- %s", (int)rl, (const char *)k, a, b);
}

static int
check_referrers(struct fsck *f)
{
	struct kvs want = { 0 };
	size_t i = 0, j = 0;
	int rc = expected_referrers(f, &want);

	while (rc == 0 && (i < f->referrers.n || j < want.n)) {
		const struct kv *have = i < f->referrers.n ?
		    &f->referrers.v[i] : NULL;
		const struct kv *exp = j < want.n ? &want.v[j] : NULL;
		int c = have == NULL ? 1 : exp == NULL ? -1 :
		    key_cmp(have->k, have->kl, exp->k, exp->kl);
		struct fsck_problem *p = NULL;
		struct fsck_fix *x;
		struct store_referrer sr;
		uint8_t lk[STORE_KEY_MAX_BYTES];
		ssize_t rl;

		if (c < 0) {
			i++;
			rl = name_len(have->k, have->kl);
			if (rl < 0 || have->kl != (size_t)rl + 1 +
			    2 * FORMAT_DIGEST_KEY_BYTES ||
			    !dkey_ok(have->k + rl + 1) ||
			    !dkey_ok(have->k + rl + 1 + FORMAT_DIGEST_KEY_BYTES) ||
			    record_referrer_decode(have->v, have->vl, &sr) != 0) {
				char ks[200];

				printable(have->k, have->kl, ks, sizeof(ks));
				p = problem(f, "referrers-record-bad",
				    FSCK_ERROR, fmt("referrer %s", ks),
				    fmt("key or value malformed"));
				fix_key(fix_new(p, FIX_DEL, "deleted"),
				    DBI_REFERRERS, have->k, have->kl, NULL, 0);
			} else {
				const uint8_t *rk = have->k + rl + 1 +
				    FORMAT_DIGEST_KEY_BYTES;
				size_t lkl = mk_link(lk, (const char *)have->k,
				    (size_t)rl, FORMAT_LINK_MANIFEST, rk);
				bool l = kvs_find(&f->links, lk, lkl) != NULL;
				struct fman *rm = man_find(f, rk);

				/* An unreadable referrer: reported on its own,
				 * and what it names cannot be known. */
				if (l && rm != NULL && !rm->parsed)
					continue;

				p = problem(f, "referrers-mismatch", FSCK_ERROR,
				    referrer_name(have->k, have->kl, (size_t)rl),
				    fmt(l ? "the referrer does not name this "
				    "subject" : "the repository does not hold "
				    "the referrer"));
				x = fix_new(p, FIX_DEL, "deleted");
				fix_key(x, DBI_REFERRERS, have->k, have->kl,
				    NULL, 0);
				if (!l)
					fix_guard(x, GUARD_ABSENT, DBI_LINKS, lk,
					    lkl);
			}
		} else {
			const struct kv *e = exp;
			size_t lkl;

			j++;
			if (c == 0) {
				i++;
				if (have->vl == exp->vl &&
				    memcmp(have->v, exp->v, exp->vl) == 0)
					continue;
			}
			rl = name_len(e->k, e->kl);
			p = problem(f, "referrers-mismatch", FSCK_ERROR,
			    referrer_name(e->k, e->kl, (size_t)rl),
			    fmt(c == 0 ? "entry differs from the referrer "
			    "manifest" : "missing: the referrer names the "
			    "subject"));
			x = fix_new(p, FIX_PUT, c == 0 ? "rewritten" : "written");
			fix_key(x, DBI_REFERRERS, e->k, e->kl, e->v, e->vl);
			lkl = mk_link(lk, (const char *)e->k, (size_t)rl,
			    FORMAT_LINK_MANIFEST,
			    e->k + rl + 1 + FORMAT_DIGEST_KEY_BYTES);
			fix_guard(x, GUARD_EXISTS, DBI_LINKS, lk, lkl);
		}
		if (p == NULL)
			rc = STORE_E_NOMEM;
	}
	kvs_free(&want);
	return rc;
}

/* Expired uploads, quarantined blobs. */
static int
check_housekeeping(struct fsck *f)
{
	for (size_t i = 0; i < f->nuploads; i++) {
		struct fupload *u = &f->uploads[i];
		struct fsck_problem *p;
		char id[2 * FORMAT_UPLOAD_ID_BYTES + 1];

		if (f->o->upload_expiry == 0 || u->rec.updated > f->now ||
		    f->now - u->rec.updated <= f->o->upload_expiry)
			continue;
		u->expired = true;
		for (size_t b = 0; b < sizeof(u->id); b++)
			snprintf(id + 2 * b, 3, "%02x", u->id[b]);
		p = problem(f, "upload-expired", FSCK_NOTICE,
		    fmt("upload %s to %.*s", id, (int)u->rec.repolen,
		    u->rec.repo), fmt("untouched for %llu s (%llu bytes)",
		    (unsigned long long)(f->now - u->rec.updated),
		    (unsigned long long)u->rec.offset));
		fix_key(fix_new(p, FIX_DROP_UPLOAD, "upload and its chunks "
		    "deleted"), DBI_UPLOADS, u->id, sizeof(u->id), u->val,
		    u->vlen);
		if (p == NULL)
			return STORE_E_NOMEM;
	}
	for (size_t i = 0; i < f->nblobs; i++) {
		struct fblob *b = &f->blobs[i];
		char ds[OCI_DIGEST_STR_BYTES];
		struct fsck_problem *p;

		if (!b->quarantine)
			continue;
		oci_digest_format(&b->info.digest, ds);
		p = problem(f, "blob-quarantined", FSCK_NOTICE,
		    fmt("blob %s", ds), fmt("out of service since an earlier "
		    "repair; pushing it again heals it"));
		images_of(f, b->key, false, NULL, 0, p);
		if (p == NULL)
			return STORE_E_NOMEM;
	}
	return 0;
}

/* ---- pass 3: read every blob and upload -------------------------------- */

struct item {
	bool upload;
	size_t idx;
	uint64_t set, size, stored;
	uint32_t nchunks;
	bool raw_only;          /* upload flagged NOCOMPRESS */
	uint32_t last_raw;      /* raw length of the chunk just checked */
	/* findings */
	const char *id;
	char why[160];
};

struct verify {
	struct fsck *f;
	struct item *items;
	size_t nitems;
	uint64_t total;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t next;            /* under lock */
	uint64_t done;          /* bytes; under lock */
	uint64_t chunks;        /* read; under lock */
	unsigned running;       /* under lock */
	int rc;                 /* first operational error; under lock */
};

struct worker {
	struct verify *vf;
	ZSTD_DCtx *dctx;
	uint8_t *raw;           /* a decompressed chunk */
};

/*
 * Finds the chunk of set at offset off or the next key after it, in a read
 * transaction left open in *txn (the caller ends it with chunk_done) so
 * the value is checked and hashed where it lies in the map: no copy.
 */
static int
chunk_next(struct worker *wk, uint64_t set, uint64_t off, MDB_txn **txn,
    bool *found, uint64_t *koff, MDB_val *val)
{
	struct store *st = wk->vf->f->st;
	uint8_t key[FORMAT_CHUNK_KEY_BYTES];
	MDB_cursor *c;
	MDB_val k = { sizeof(key), key };
	int rc;

	*found = false;
	rc = store_rtxn_begin(st, txn);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_open(*txn, st->dbi[DBI_CHUNKS], &c);
	if (rc != 0) {
		store_rtxn_end(*txn);
		return store_mdb_error(rc, "fsck cursor");
	}
	chunk_key(key, set, off);
	rc = mdb_cursor_get(c, &k, val, MDB_SET_RANGE);
	mdb_cursor_close(c);
	if (rc == 0 && k.mv_size == FORMAT_CHUNK_KEY_BYTES &&
	    format_get_be64(k.mv_data) == set) {
		*found = true;
		*koff = format_get_be64((const uint8_t *)k.mv_data + 8);
	} else if (rc != 0 && rc != MDB_NOTFOUND) {
		store_rtxn_end(*txn);
		return store_mdb_error(rc, "fsck chunk");
	}
	return 0;
}

/* Ends chunk_next's transaction and drops the value's pages from the
 * process (the page cache keeps them). */
static void
chunk_done(struct worker *wk, MDB_txn *txn, const MDB_val *val, bool found)
{
	store_rtxn_end(txn);
	if (found)
		chunk_unmap(wk->vf->f->st, val);
}

static void
progress_add(struct verify *vf, uint64_t n, uint64_t chunks)
{
	pthread_mutex_lock(&vf->lock);
	vf->done += n;
	vf->chunks += chunks;
	pthread_mutex_unlock(&vf->lock);
}

/*
 * Checks one chunk value (header, checksum, codec, decompression) and
 * hashes its content. 0 with it->id set on a finding; STORE_E_* if the
 * check could not run.
 */
static int
chunk_check(struct worker *wk, struct item *it, const MDB_val *v,
    uint64_t off, SHA256_CTX *sha, uint64_t *stored)
{
	const char *bad = it->upload ? "upload-chunks-bad" : "blob-chunks-bad";
	const char *corrupt = it->upload ? "upload-chunks-bad" : "chunk-corrupt";
	const uint8_t *enc = v->mv_data, *payload;
	struct chunk_hdr h;

	if (chunk_verify(enc, v->mv_size, FORMAT_CHUNK_RAW_MAX, &h) != 0 ||
	    h.raw_len == 0) {
		it->id = corrupt;
		snprintf(it->why, sizeof(it->why), "chunk at offset %llu "
		    "fails its checksum", (unsigned long long)off);
		return 0;
	}
	if (it->raw_only && h.codec != FORMAT_CODEC_RAW) {
		it->id = bad;
		snprintf(it->why, sizeof(it->why), "chunk at offset %llu "
		    "compressed in an upload that stores raw chunks",
		    (unsigned long long)off);
		return 0;
	}
	payload = enc + FORMAT_CHUNK_HDR_BYTES;
	if (h.codec != FORMAT_CODEC_RAW) {
		if (chunk_decode(enc, &h, wk->dctx, wk->raw,
		    FORMAT_CHUNK_RAW_MAX) != 0) {
			it->id = corrupt;
			snprintf(it->why, sizeof(it->why), "chunk at offset %llu "
			    "does not decompress", (unsigned long long)off);
			return 0;
		}
		payload = wk->raw;
	}
	SHA256_Update(sha, payload, h.raw_len);
	*stored += h.stored_len;
	it->last_raw = h.raw_len;
	return 0;
}

/* 0 with it->id set on a finding; STORE_E_* when reading failed. */
static int
verify_item(struct worker *wk, struct item *it)
{
	struct fsck *f = wk->vf->f;
	uint64_t off = 0, stored = 0, counted = 0;
	uint32_t n = 0, nreported = 0;
	SHA256_CTX sha;
	const char *bad = it->upload ? "upload-chunks-bad" : "blob-chunks-bad";
	int rc;

	SHA256_Init(&sha);
	for (;;) {
		uint64_t koff = 0;
		MDB_txn *txn;
		MDB_val val;
		bool found;

		rc = chunk_next(wk, it->set, off, &txn, &found, &koff, &val);
		if (rc != 0)
			return rc;
		if (found && koff == off && off < it->size)
			rc = chunk_check(wk, it, &val, off, &sha, &stored);
		chunk_done(wk, txn, &val, found);
		if (rc != 0)
			return rc;
		if (it->id != NULL)
			return 0;
		if (!found || koff != off) {
			if (off != it->size) {
				it->id = bad;
				snprintf(it->why, sizeof(it->why), "no chunk at "
				    "offset %llu of %llu", (unsigned long long)off,
				    (unsigned long long)it->size);
				return 0;
			}
			if (found) {
				it->id = bad;
				snprintf(it->why, sizeof(it->why), "a chunk at "
				    "offset %llu, past the end (%llu)",
				    (unsigned long long)koff,
				    (unsigned long long)it->size);
				return 0;
			}
			break;
		}
		if (off >= it->size) {
			it->id = bad;
			snprintf(it->why, sizeof(it->why), "a chunk at offset "
			    "%llu, past the end (%llu)", (unsigned long long)off,
			    (unsigned long long)it->size);
			return 0;
		}
		off += it->last_raw;
		n++;
		counted += it->last_raw;
		if (counted >= (4u << 20)) {
			progress_add(wk->vf, counted, n - nreported);
			nreported = n;
			counted = 0;
		}
	}
	progress_add(wk->vf, counted, n - nreported);
	if (n != it->nchunks || stored != it->stored) {
		it->id = bad;
		snprintf(it->why, sizeof(it->why), "%u chunks of %llu stored "
		    "bytes, the record says %u of %llu", n,
		    (unsigned long long)stored, it->nchunks,
		    (unsigned long long)it->stored);
		return 0;
	}
	if (it->upload) {
		uint8_t state[FORMAT_SHA256_STATE_BYTES];

		upload_sha_state_encode(state, &sha);
		if (memcmp(state, f->uploads[it->idx].rec.sha_state,
		    sizeof(state)) != 0) {
			it->id = bad;
			snprintf(it->why, sizeof(it->why), "its hash state does "
			    "not match its chunks");
		}
	} else {
		struct oci_digest got;

		got.alg = OCI_DIGEST_SHA256;
		SHA256_Final(got.hash, &sha);
		if (!oci_digest_equal(&got, &f->blobs[it->idx].info.digest)) {
			char ds[OCI_DIGEST_STR_BYTES];

			oci_digest_format(&got, ds);
			it->id = "blob-digest-mismatch";
			snprintf(it->why, sizeof(it->why), "content hashes to "
			    "%s", ds);
		}
	}
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *wk = arg;
	struct verify *vf = wk->vf;

	for (;;) {
		size_t i;
		int rc;

		pthread_mutex_lock(&vf->lock);
		i = vf->rc == 0 ? vf->next++ : vf->nitems;
		pthread_mutex_unlock(&vf->lock);
		if (i >= vf->nitems)
			break;
		rc = verify_item(wk, &vf->items[i]);
		if (rc != 0) {
			pthread_mutex_lock(&vf->lock);
			if (vf->rc == 0)
				vf->rc = rc;
			pthread_mutex_unlock(&vf->lock);
			break;
		}
	}
	pthread_mutex_lock(&vf->lock);
	vf->running--;
	pthread_cond_signal(&vf->cond);
	pthread_mutex_unlock(&vf->lock);
	return NULL;
}

/*
 * Whether the record that owned it->set at the snapshot still does: 1 yes,
 * 0 no, or STORE_E_* when it cannot be told (an operational error, not a
 * finding).
 */
static int
item_current(struct fsck *f, const struct item *it)
{
	MDB_txn *txn;
	MDB_val k, v;
	bool same = false;
	int rc;

	rc = store_rtxn_begin(f->st, &txn);
	if (rc != 0)
		return rc;
	if (it->upload) {
		struct fupload *u = &f->uploads[it->idx];

		k = (MDB_val){ sizeof(u->id), u->id };
		same = mdb_get(txn, f->st->dbi[DBI_UPLOADS], &k, &v) == 0 &&
		    v.mv_size == u->vlen && memcmp(v.mv_data, u->val,
		    u->vlen) == 0;
	} else {
		struct store_blob_info info;
		uint64_t set;

		same = blob_get(f->st, txn, &f->blobs[it->idx].info.digest,
		    &info, &set) == 0 && set == it->set;
	}
	store_rtxn_end(txn);
	return same ? 1 : 0;
}

static unsigned
jobs_default(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}

static int
verify_all(struct fsck *f)
{
	struct verify vf = { .f = f };
	struct worker *wks = NULL;
	pthread_t *tids = NULL;
	unsigned jobs = f->o->jobs ? f->o->jobs : jobs_default();
	unsigned started = 0;
	int rc = 0;

	vf.items = calloc(f->nblobs + f->nuploads + 1, sizeof(*vf.items));
	if (vf.items == NULL)
		return STORE_E_NOMEM;
	for (size_t i = 0; i < f->nblobs; i++) {
		struct fblob *b = &f->blobs[i];

		if (b->quarantine)
			continue;
		vf.items[vf.nitems++] = (struct item){ .idx = i, .set = b->set,
		    .size = b->info.size, .stored = b->info.stored,
		    .nchunks = b->info.nchunks };
		vf.total += b->info.size;
	}
	for (size_t i = 0; i < f->nuploads; i++) {
		struct fupload *u = &f->uploads[i];

		if (u->expired)
			continue;
		vf.items[vf.nitems++] = (struct item){ .upload = true, .idx = i,
		    .set = u->rec.set, .size = u->rec.offset,
		    .stored = u->rec.stored, .nchunks = u->rec.nchunks,
		    .raw_only = (u->rec.flags & FORMAT_UPLOAD_F_NOCOMPRESS) != 0 };
		vf.total += u->rec.offset;
	}
	if (jobs > 64)
		jobs = 64;
	if (jobs > vf.nitems)
		jobs = vf.nitems > 0 ? (unsigned)vf.nitems : 1;
	pthread_mutex_init(&vf.lock, NULL);
	pthread_cond_init(&vf.cond, NULL);
	wks = calloc(jobs, sizeof(*wks));
	tids = calloc(jobs, sizeof(*tids));
	if (wks == NULL || tids == NULL)
		rc = STORE_E_NOMEM;
	for (unsigned i = 0; rc == 0 && i < jobs; i++) {
		wks[i].vf = &vf;
		wks[i].dctx = ZSTD_createDCtx();
		wks[i].raw = malloc(FORMAT_CHUNK_RAW_MAX);
		if (wks[i].dctx == NULL || wks[i].raw == NULL) {
			rc = STORE_E_NOMEM;
			break;
		}
		pthread_mutex_lock(&vf.lock);
		vf.running++;
		pthread_mutex_unlock(&vf.lock);
		if (pthread_create(&tids[i], NULL, worker_main, &wks[i]) != 0) {
			pthread_mutex_lock(&vf.lock);
			vf.running--;
			pthread_mutex_unlock(&vf.lock);
			rc = STORE_E_NOMEM;
			break;
		}
		started++;
	}
	pthread_mutex_lock(&vf.lock);
	if (rc != 0 && vf.rc == 0)
		vf.rc = rc;     /* stops the started workers early */
	while (vf.running > 0) {
		struct timespec ts;
		uint64_t done;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		(void)pthread_cond_timedwait(&vf.cond, &vf.lock, &ts);
		done = vf.done;
		if (f->o->progress != NULL) {
			pthread_mutex_unlock(&vf.lock);
			f->o->progress(f->o->progress_arg, done, vf.total);
			pthread_mutex_lock(&vf.lock);
		}
	}
	rc = vf.rc;
	f->r->bytes_hashed = vf.done;
	f->r->chunks = vf.chunks;
	pthread_mutex_unlock(&vf.lock);
	if (f->o->progress != NULL)
		f->o->progress(f->o->progress_arg, vf.done, vf.total);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	for (unsigned i = 0; wks != NULL && i < jobs; i++) {
		ZSTD_freeDCtx(wks[i].dctx);
		free(wks[i].raw);
	}
	free(wks);
	free(tids);
	pthread_mutex_destroy(&vf.lock);
	pthread_cond_destroy(&vf.cond);

	for (size_t i = 0; rc == 0 && i < vf.nitems; i++) {
		struct item *it = &vf.items[i];
		struct fsck_problem *p;
		struct fsck_fix *x;
		char ds[OCI_DIGEST_STR_BYTES];

		if (it->id == NULL)
			continue;
		rc = item_current(f, it);
		if (rc <= 0) {
			if (rc == 0)
				continue;       /* changed meanwhile: not damage */
			break;
		}
		rc = 0;
		if (it->upload) {
			struct fupload *u = &f->uploads[it->idx];
			char id[2 * FORMAT_UPLOAD_ID_BYTES + 1];

			for (size_t b = 0; b < sizeof(u->id); b++)
				snprintf(id + 2 * b, 3, "%02x", u->id[b]);
			p = problem(f, it->id, FSCK_ERROR, fmt("upload %s to %.*s",
			    id, (int)u->rec.repolen, u->rec.repo),
			    fmt("%s", it->why));
			fix_key(fix_new(p, FIX_DROP_UPLOAD, "upload and its "
			    "chunks deleted (the client must upload again)"),
			    DBI_UPLOADS, u->id, sizeof(u->id), u->val, u->vlen);
		} else {
			struct fblob *b = &f->blobs[it->idx];

			oci_digest_format(&b->info.digest, ds);
			p = problem(f, it->id, FSCK_ERROR, fmt("blob %s", ds),
			    fmt("%s", it->why));
			images_of(f, b->key, false, NULL, 0, p);
			x = fix_new(p, FIX_QUARANTINE, "quarantined: pulls answer "
			    "BLOB_UNKNOWN until it is pushed again");
			if (x != NULL) {
				x->set = b->set;
				x->d = b->info.digest;
			}
		}
		if (p == NULL)
			rc = STORE_E_NOMEM;
	}
	free(vf.items);
	return rc;
}

/* ---- the whole check ---------------------------------------------------- */

static void
fsck_free(struct fsck *f)
{
	free(f->blobs);
	for (size_t i = 0; i < f->nuploads; i++)
		free(f->uploads[i].val);
	free(f->uploads);
	free(f->sets);
	for (size_t i = 0; i < f->nmans; i++) {
		if (f->mans[i].parsed)
			oci_manifest_free(&f->mans[i].m);
		free(f->mans[i].val);
		free(f->mans[i].why);
	}
	free(f->mans);
	kvs_free(&f->repos);
	kvs_free(&f->links);
	kvs_free(&f->rlinks);
	kvs_free(&f->tags);
	kvs_free(&f->refs);
	kvs_free(&f->referrers);
	free(f->edges);
	ZSTD_freeDCtx(f->dctx);
}

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
store_fsck(struct store *st, const struct fsck_options *o,
    struct fsck_report *out)
{
	static const struct fsck_options defaults = {
		.upload_expiry = FSCK_UPLOAD_EXPIRY_DEFAULT,
	};
	struct fsck f = { .st = st, .o = o != NULL ? o : &defaults, .r = out };
	double t0 = mono_now();
	int rc;

	memset(out, 0, sizeof(*out));
	f.now = store_now();
	f.dctx = ZSTD_createDCtx();
	if (f.dctx == NULL)
		return STORE_E_NOMEM;
	rc = collect(&f);
	chunk_unmap_all(st);
	if (rc == 0)
		rc = build_edges(&f);
	if (rc == 0)
		rc = check_sets(&f);
	if (rc == 0)
		rc = check_links(&f);
	if (rc == 0)
		rc = check_tags(&f);
	if (rc == 0)
		rc = check_manifests(&f);
	if (rc == 0)
		rc = check_refs(&f);
	if (rc == 0)
		rc = check_referrers(&f);
	if (rc == 0)
		rc = check_housekeeping(&f);
	if (rc == 0)
		rc = verify_all(&f);
	fsck_free(&f);
	out->seconds = mono_now() - t0;
	if (rc != 0)
		fsck_report_free(out);
	return rc;
}

/* ---- repair ------------------------------------------------------------- */

#define FIX_STALE 1     /* apply(): nothing done, the store changed */

struct fix_op {
	struct store_op op;
	const struct fsck_fix *x;
	int stale;
	int *stale_out;
};

static int
guard_holds(struct store_wtxn *w, const struct fsck_fix *x)
{
	MDB_val k = { x->gklen, (void *)x->gkey }, v;
	int rc;

	switch (x->guard) {
	case GUARD_NONE:
		return 1;
	case GUARD_EXISTS:
	case GUARD_ABSENT:
		rc = mdb_get(w->txn, w->st->dbi[x->gdbi], &k, &v);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_mdb_error(rc, "fsck guard");
		return (rc == 0) == (x->guard == GUARD_EXISTS);
	}
	return 0;
}

/* Whether key of dbi currently holds exactly x->val. */
static int
value_same(struct store_wtxn *w, const struct fsck_fix *x)
{
	MDB_val k = { x->klen, x->key }, v;
	int rc = mdb_get(w->txn, w->st->dbi[x->dbi], &k, &v);

	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return store_mdb_error(rc, "fsck get");
	return v.mv_size == x->vlen && memcmp(v.mv_data, x->val, x->vlen) == 0;
}

/* Whether any blob or upload record names set. */
static int
set_owned(struct store_wtxn *w, uint64_t set)
{
	static const enum store_dbi dbis[] = { DBI_BLOBS, DBI_UPLOADS };
	int owned = 0;

	for (size_t i = 0; i < 2 && owned == 0; i++) {
		MDB_cursor *c;
		MDB_val k, v;
		int rc;

		rc = mdb_cursor_open(w->txn, w->st->dbi[dbis[i]], &c);
		if (rc != 0)
			return store_mdb_error(rc, "fsck cursor");
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
		    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			struct store_blob_info info;
			struct upload_rec ur;
			uint64_t s;

			if (dbis[i] == DBI_BLOBS) {
				if (record_blob_decode(v.mv_data, v.mv_size,
				    &info, &s) == 0 && s == set) {
					owned = 1;
					break;
				}
			} else if (record_upload_decode(v.mv_data, v.mv_size,
			    &ur) == 0 && ur.set == set) {
				owned = 1;
				break;
			}
		}
		mdb_cursor_close(c);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_mdb_error(rc, "fsck scan");
	}
	return owned;
}

/* Removes a corrupt manifest from every repository linking it. */
static int
remove_manifest(struct store_wtxn *w, const struct fsck_fix *x)
{
	uint8_t pre[1 + FORMAT_DIGEST_KEY_BYTES];

	pre[0] = FORMAT_LINK_MANIFEST;
	digest_key(pre + 1, &x->d);
	for (;;) {
		char repo[FORMAT_REPO_MAX_BYTES];
		uint8_t key[STORE_KEY_MAX_BYTES];
		MDB_cursor *c;
		MDB_val k = { sizeof(pre), pre }, v;
		size_t rl;
		int rc;

		rc = mdb_cursor_open(w->txn, w->st->dbi[DBI_RLINKS], &c);
		if (rc != 0)
			return store_mdb_error(rc, "fsck cursor");
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size > sizeof(pre) &&
		    k.mv_size - sizeof(pre) <= sizeof(repo) &&
		    memcmp(k.mv_data, pre, sizeof(pre)) == 0) {
			rl = k.mv_size - sizeof(pre);
			memcpy(repo, (const uint8_t *)k.mv_data + sizeof(pre), rl);
		} else {
			rl = 0;
		}
		mdb_cursor_close(c);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_mdb_error(rc, "fsck scan");
		if (rl == 0)
			return manifest_drop(w, &x->d);
		rc = manifest_unlink(w, repo, rl, &x->d);
		if (rc == STORE_E_NOTFOUND) {
			/* A lone mirror (reported on its own): drop it. */
			memcpy(key, pre, sizeof(pre));
			memcpy(key + sizeof(pre), repo, rl);
			k = (MDB_val){ sizeof(pre) + rl, key };
			rc = mdb_del(w->txn, w->st->dbi[DBI_RLINKS], &k, NULL);
			rc = store_mdb_error(rc, "fsck rlink delete");
		}
		if (rc != 0)
			return rc;
	}
}

static int
fix_apply(struct store_wtxn *w, struct store_op *op)
{
	struct fix_op *fo = (struct fix_op *)op;
	const struct fsck_fix *x = fo->x;
	MDB_dbi dbi = w->st->dbi[x->dbi];
	MDB_val k = { x->klen, x->key }, v = { x->vlen, x->val };
	struct store_blob_info info;
	struct upload_rec ur;
	uint64_t set;
	int rc;

	rc = guard_holds(w, x);
	if (rc <= 0) {
		fo->stale = rc == 0;
		return rc;
	}
	switch (x->kind) {
	case FIX_DEL:
		rc = mdb_del(w->txn, dbi, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "fsck del");
	case FIX_DEL_IF_SAME:
		rc = value_same(w, x);
		if (rc <= 0) {
			fo->stale = rc == 0;
			return rc;
		}
		return store_mdb_error(mdb_del(w->txn, dbi, &k, NULL),
		    "fsck del");
	case FIX_PUT:
		return store_mdb_error(mdb_put(w->txn, dbi, &k, &v, 0),
		    "fsck put");
	case FIX_PUT_NEW:
		rc = mdb_put(w->txn, dbi, &k, &v, MDB_NOOVERWRITE);
		return rc == MDB_KEYEXIST ? 0 : store_mdb_error(rc, "fsck put");
	case FIX_QUARANTINE:
		rc = blob_get(w->st, w->txn, &x->d, &info, &set);
		if (rc == STORE_E_NOTFOUND || (rc == 0 && set != x->set)) {
			fo->stale = 1;
			return 0;
		}
		if (rc != 0)
			return rc;
		info.flags |= FORMAT_BLOB_F_QUARANTINE;
		return blob_put(w, &info, set);
	case FIX_DROP_SET:
		rc = set_owned(w, x->set);
		if (rc != 0) {
			fo->stale = rc > 0;
			return rc > 0 ? 0 : rc;
		}
		return chunk_set_delete(w, x->set);
	case FIX_DROP_UPLOAD:
		rc = value_same(w, x);
		if (rc <= 0) {
			fo->stale = rc == 0;
			return rc;
		}
		if (record_upload_decode(x->val, x->vlen, &ur) != 0)
			return STORE_E_CORRUPT;
		rc = chunk_set_delete(w, ur.set);
		if (rc != 0)
			return rc;
		return store_mdb_error(mdb_del(w->txn, dbi, &k, NULL),
		    "fsck del");
	case FIX_NEXT_SET: {
		uint8_t val[8];
		MDB_val nk = { strlen(FORMAT_META_NEXT_SET),
		    (void *)FORMAT_META_NEXT_SET }, nv;

		rc = mdb_get(w->txn, w->st->dbi[DBI_META], &nk, &nv);
		if (rc == 0 && nv.mv_size == 8 &&
		    format_get_le64(nv.mv_data) >= x->set)
			return 0;
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_mdb_error(rc, "fsck get");
		format_put_le64(val, x->set);
		nv = (MDB_val){ sizeof(val), val };
		return store_mdb_error(mdb_put(w->txn, w->st->dbi[DBI_META],
		    &nk, &nv, 0), "fsck put");
	}
	case FIX_UNLINK_MANIFEST:
		rc = manifest_unlink(w, x->repo, x->repolen, &x->d);
		if (rc == STORE_E_NOTFOUND) {
			fo->stale = 1;
			return 0;
		}
		return rc;
	case FIX_DROP_MANIFEST:
		rc = manifest_linked_anywhere(w, &x->d);
		if (rc != 0) {
			fo->stale = rc > 0;
			return rc > 0 ? 0 : rc;
		}
		return manifest_drop(w, &x->d);
	case FIX_REMOVE_MANIFEST:
		rc = value_same(w, x);
		if (rc <= 0) {
			fo->stale = rc == 0;
			return rc;
		}
		return remove_manifest(w, x);
	case FIX_DROP_BLOB_LINK:
		rc = link_del(w, x->repo, x->repolen, FORMAT_LINK_BLOB, &x->d);
		if (rc == STORE_E_NOTFOUND) {
			fo->stale = 1;
			return 0;
		}
		return rc;
	}
	return STORE_E_INVALID;
}

static void
fix_done(struct store_op *op, int rc)
{
	struct fix_op *fo = (struct fix_op *)op;

	if (rc == 0)
		*fo->stale_out = fo->stale;
	store_op_complete(op, rc);
}

int
store_fsck_repair(struct store *st, struct fsck_report *r)
{
	for (size_t i = 0; i < r->nproblems; i++) {
		struct fsck_problem *p = &r->problems[i];
		struct fix_op *fo;
		int stale = 0, rc;

		if (p->fix == NULL || p->state != FSCK_FOUND)
			continue;
		fo = calloc(1, sizeof(*fo));
		if (fo == NULL)
			return STORE_E_NOMEM;
		fo->op.apply = fix_apply;
		fo->op.done = fix_done;
		fo->op.flags = STORE_OP_DURABLE;
		fo->x = p->fix;
		fo->stale_out = &stale;
		rc = store_op_run(st, &fo->op);
		if (rc == STORE_E_READONLY || rc == STORE_E_CLOSED)
			return rc;
		if (rc != 0) {
			char *d = fmt("%s; repair failed: %s", p->detail,
			    store_strerror(rc));

			if (d != NULL) {
				free(p->detail);
				p->detail = d;
			}
			p->state = FSCK_FAILED;
		} else {
			p->state = stale ? FSCK_SKIPPED : FSCK_REPAIRED;
		}
	}
	return 0;
}

int
store_fsck_recheck(struct store *st, const struct fsck_options *o,
    struct fsck_report *r)
{
	struct fsck_report again;
	bool any = false;
	int rc;

	for (size_t i = 0; i < r->nproblems; i++)
		any = any || r->problems[i].state == FSCK_SKIPPED;
	if (!any)
		return 0;
	rc = store_fsck(st, o, &again);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < r->nproblems; i++) {
		struct fsck_problem *p = &r->problems[i];
		bool still = false;

		if (p->state != FSCK_SKIPPED)
			continue;
		for (size_t j = 0; j < again.nproblems && !still; j++)
			still = strcmp(again.problems[j].id, p->id) == 0 &&
			    strcmp(again.problems[j].object, p->object) == 0;
		if (!still)
			p->state = FSCK_RESOLVED;
	}
	fsck_report_free(&again);
	return 0;
}

void
fsck_report_free(struct fsck_report *r)
{
	for (size_t i = 0; i < r->nproblems; i++) {
		struct fsck_problem *p = &r->problems[i];

		free(p->object);
		free(p->detail);
		for (size_t j = 0; j < p->nimages; j++)
			free(p->images[j]);
		free(p->images);
		if (p->fix != NULL)
			free(p->fix->key);
		free(p->fix);
	}
	free(r->problems);
	memset(r, 0, sizeof(*r));
}

const char *
fsck_severity_name(enum fsck_severity s)
{
	switch (s) {
	case FSCK_NOTICE:
		return "notice";
	case FSCK_WARNING:
		return "warning";
	case FSCK_ERROR:
		return "error";
	}
	return "?";
}

const char *
fsck_state_name(enum fsck_state s)
{
	switch (s) {
	case FSCK_FOUND:
		return "found";
	case FSCK_REPAIRED:
		return "repaired";
	case FSCK_SKIPPED:
		return "skipped";
	case FSCK_FAILED:
		return "failed";
	case FSCK_RESOLVED:
		return "resolved";
	}
	return "?";
}
