/*
 * store_fsck and store_fsck_repair on real stores: a fixture with images,
 * an index, a referrer, a cross-repository link and an open upload; each
 * test damages the LMDB file in one way, checks the findings, repairs and
 * checks that a second run is clean.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/format.h"
#include "berth/fsck.h"
#include "berth/store.h"
#include "testutil.h"

#define S(x) x, strlen(x)

static uint64_t seed_state;

struct fixture {
	char *dir;
	struct store *st;
	uint8_t *layer1, *layer2;
	size_t layer1_len, layer2_len;
	struct oci_digest config, layer1_d, layer2_d, empty, man, index, ref;
	size_t man_len;
	uint8_t upload_id[FORMAT_UPLOAD_ID_BYTES];
};

static void
dkey(uint8_t k[FORMAT_DIGEST_KEY_BYTES], const struct oci_digest *d)
{
	k[0] = FORMAT_DIGEST_SHA256;
	memcpy(k + 1, d->hash, 32);
}

static size_t
put_manifest(struct store *st, const char *repo, const char *json,
    const char *tag, struct oci_digest *out)
{
	assert_int_equal(tu_put_manifest(st, repo, json, tag, false, out), 0);
	return strlen(json);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char c[] = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":"
	    "{\"type\":\"layers\",\"diff_ids\":[]}}";
	char json[2048], d1[OCI_DIGEST_STR_BYTES], d2[OCI_DIGEST_STR_BYTES],
	    d3[OCI_DIGEST_STR_BYTES], d4[OCI_DIGEST_STR_BYTES];
	struct store_upload *up;
	uint8_t *part;

	f->dir = tu_tmpdir();
	f->st = tu_open(f->dir, 0);
	assert_non_null(f->st);
	f->layer1_len = (5u << 20) / 2;         /* three chunks, raw */
	f->layer1 = malloc(f->layer1_len);
	tu_fill_random(f->layer1, f->layer1_len, &seed_state);
	f->layer2_len = 100000;                 /* one chunk, compressed */
	f->layer2 = malloc(f->layer2_len);
	tu_fill_text(f->layer2, f->layer2_len, &seed_state);
	assert_int_equal(tu_put_blob(f->st, "app", c, strlen(c), 7, &f->config), 0);
	assert_int_equal(tu_put_blob(f->st, "app", f->layer1, f->layer1_len,
	    300000, &f->layer1_d), 0);
	assert_int_equal(tu_put_blob(f->st, "app", f->layer2, f->layer2_len,
	    4096, &f->layer2_d), 0);
	assert_int_equal(tu_put_blob(f->st, "app", "{}", 2, 2, &f->empty), 0);
	assert_int_equal(store_blob_link(f->st, S("other"), &f->layer1_d), 0);

	oci_digest_format(&f->config, d1);
	oci_digest_format(&f->layer1_d, d2);
	oci_digest_format(&f->layer2_d, d3);
	snprintf(json, sizeof(json), "{\"schemaVersion\":2,\"mediaType\":"
	    "\"application/vnd.oci.image.manifest.v1+json\",\"config\":"
	    "{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
	    "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":"
	    "\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\","
	    "\"size\":%zu},{\"mediaType\":\"application/vnd.oci.image.layer."
	    "v1.tar\",\"digest\":\"%s\",\"size\":%zu}]}", d1, strlen(c), d2,
	    f->layer1_len, d3, f->layer2_len);
	f->man_len = put_manifest(f->st, "app", json, "1.0", &f->man);

	oci_digest_format(&f->man, d4);
	snprintf(json, sizeof(json), "{\"schemaVersion\":2,\"mediaType\":"
	    "\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
	    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	    "\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"architecture\":"
	    "\"amd64\",\"os\":\"linux\"}}]}", d4, f->man_len);
	put_manifest(f->st, "app", json, "multi", &f->index);

	oci_digest_format(&f->empty, d2);
	snprintf(json, sizeof(json), "{\"schemaVersion\":2,\"mediaType\":"
	    "\"application/vnd.oci.image.manifest.v1+json\",\"artifactType\":"
	    "\"application/vnd.example.sbom\",\"config\":{\"mediaType\":"
	    "\"application/vnd.oci.empty.v1+json\",\"digest\":\"%s\","
	    "\"size\":2},\"layers\":[{\"mediaType\":\"application/vnd.oci."
	    "empty.v1+json\",\"digest\":\"%s\",\"size\":2}],\"subject\":"
	    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	    "\"digest\":\"%s\",\"size\":%zu}}", d2, d2, d4, f->man_len);
	put_manifest(f->st, "app", json, NULL, &f->ref);

	/* An upload in progress: two chunks committed. */
	assert_int_equal(store_upload_new(f->st, S("app"), &up), 0);
	part = malloc(1600000);
	tu_fill_random(part, 1600000, &seed_state);
	assert_int_equal(store_upload_write(up, part, 1600000), 0);
	assert_int_equal(store_upload_flush(up), 0);
	memcpy(f->upload_id, store_upload_id(up), sizeof(f->upload_id));
	store_upload_free(up);
	free(part);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	tu_rmdir(f->dir);
	free(f->layer1);
	free(f->layer2);
	free(f);
	return 0;
}

static void
close_store(struct fixture *f)
{
	store_close(f->st);
	f->st = NULL;
}

static void
open_store(struct fixture *f)
{
	f->st = tu_open(f->dir, 0);
	assert_non_null(f->st);
}

static void
check(struct fixture *f, uint64_t expiry, struct fsck_report *r)
{
	struct fsck_options o = { .jobs = 2, .upload_expiry = expiry };

	assert_int_equal(store_fsck(f->st, &o, r), 0);
	for (size_t i = 0; i < r->nproblems; i++)
		print_message("# %s %s: %s: %s\n",
		    fsck_severity_name(r->problems[i].severity),
		    r->problems[i].id, r->problems[i].object,
		    r->problems[i].detail);
}

static size_t
count_id(const struct fsck_report *r, const char *id)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nproblems; i++)
		n += strcmp(r->problems[i].id, id) == 0;
	return n;
}

static const struct fsck_problem *
find(const struct fsck_report *r, const char *id)
{
	for (size_t i = 0; i < r->nproblems; i++)
		if (strcmp(r->problems[i].id, id) == 0)
			return &r->problems[i];
	fail_msg("no problem %s", id);
	return NULL;
}

static bool
has_image(const struct fsck_problem *p, const char *name)
{
	for (size_t i = 0; i < p->nimages; i++)
		if (strcmp(p->images[i], name) == 0)
			return true;
	return false;
}

static size_t
count_severity(const struct fsck_report *r, enum fsck_severity s)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nproblems; i++)
		n += r->problems[i].severity == s;
	return n;
}

static void
repair_all(struct fixture *f, struct fsck_report *r)
{
	assert_int_equal(store_fsck_repair(f->st, r), 0);
	for (size_t i = 0; i < r->nproblems; i++) {
		if (r->problems[i].fix != NULL)
			assert_int_equal(r->problems[i].state, FSCK_REPAIRED);
		else
			assert_int_equal(r->problems[i].state, FSCK_FOUND);
	}
}

static void
test_clean_store(void **state)
{
	struct fixture *f = *state;
	struct fsck_report r;

	check(f, FSCK_UPLOAD_EXPIRY_DEFAULT, &r);
	assert_int_equal(r.nproblems, 0);
	assert_int_equal(r.blobs, 4);
	assert_int_equal(r.manifests, 3);
	assert_int_equal(r.uploads, 1);
	assert_int_equal(r.tags, 2);
	/* Every blob and the upload's bytes were read. */
	assert_int_equal(r.bytes_hashed, f->layer1_len + f->layer2_len + 2 +
	    strlen("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":"
	    "{\"type\":\"layers\",\"diff_ids\":[]}}") + 1600000);
	fsck_report_free(&r);
}

static void
test_corrupt_chunk_quarantine_and_heal(void **state)
{
	struct fixture *f = *state;
	const struct fsck_problem *p;
	struct store_blob_info info;
	struct fsck_report r;
	struct oci_digest d;
	char ds[OCI_DIGEST_STR_BYTES];

	close_store(f);
	/* A byte inside the second chunk of layer1 (stored raw). */
	assert_int_equal(tu_corrupt_file(f->dir, f->layer1 + 1200000, 64, 5), 0);
	open_store(f);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 1);
	p = find(&r, "chunk-corrupt");
	assert_int_equal(p->severity, FSCK_ERROR);
	oci_digest_format(&f->layer1_d, ds);
	assert_non_null(strstr(p->object, ds));
	assert_non_null(strstr(p->detail, "offset 1048544"));
	assert_true(has_image(p, "app:1.0"));
	assert_true(has_image(p, "app:multi"));
	assert_int_equal(p->nimages, 2);
	repair_all(f, &r);
	fsck_report_free(&r);

	/* Out of service: not found through a repository. */
	assert_int_equal(store_blob_stat(f->st, S("app"), &f->layer1_d, &info),
	    STORE_E_NOTFOUND);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 1);
	p = find(&r, "blob-quarantined");
	assert_int_equal(p->severity, FSCK_NOTICE);
	assert_true(has_image(p, "app:1.0"));
	fsck_report_free(&r);

	/* Pushing the blob again heals it; the store is clean. */
	assert_int_equal(tu_put_blob(f->st, "app", f->layer1, f->layer1_len,
	    1 << 20, &d), 0);
	assert_int_equal(store_blob_stat(f->st, S("app"), &f->layer1_d, &info),
	    0);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 0);
	fsck_report_free(&r);
}

static void
test_blob_record_deleted(void **state)
{
	struct fixture *f = *state;
	const struct fsck_problem *p;
	struct fsck_report r;
	uint8_t k[FORMAT_DIGEST_KEY_BYTES];

	close_store(f);
	dkey(k, &f->layer2_d);
	assert_int_equal(tu_raw_del(f->dir, FORMAT_DB_BLOBS, k, sizeof(k)), 0);
	open_store(f);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 3);
	p = find(&r, "link-blob-missing");
	assert_true(has_image(p, "app:1.0"));
	assert_int_equal(p->severity, FSCK_ERROR);
	assert_int_equal(find(&r, "chunk-orphan")->severity, FSCK_ERROR);
	p = find(&r, "image-blob-missing");
	assert_int_equal(p->severity, FSCK_WARNING);
	assert_true(has_image(p, "app:1.0"));
	assert_true(has_image(p, "app:multi"));
	repair_all(f, &r);
	fsck_report_free(&r);

	/* No error left; the image stays broken until pushed again. */
	check(f, 0, &r);
	assert_int_equal(count_severity(&r, FSCK_ERROR), 0);
	assert_int_equal(r.nproblems, 1);
	assert_int_equal(count_id(&r, "image-blob-missing"), 1);
	fsck_report_free(&r);
}

static void
test_dangling_tag(void **state)
{
	struct fixture *f = *state;
	struct fsck_report r;
	struct oci_digest d, ghost;
	uint8_t val[FORMAT_TAG_BYTES];

	oci_digest_sha256("nothing", 7, &ghost);
	dkey(val, &ghost);
	memset(val + FORMAT_DIGEST_KEY_BYTES, 0, 8);
	close_store(f);
	assert_int_equal(tu_raw_put(f->dir, FORMAT_DB_TAGS, "app\0ghost", 9, val,
	    sizeof(val)), 0);
	open_store(f);
	assert_int_equal(store_tag_get(f->st, S("app"), S("ghost"), &d), 0);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 1);
	assert_true(has_image(find(&r, "tag-dangling"), "app:ghost"));
	repair_all(f, &r);
	fsck_report_free(&r);
	assert_int_equal(store_tag_get(f->st, S("app"), S("ghost"), &d),
	    STORE_E_NOTFOUND);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 0);
	fsck_report_free(&r);
}

struct seen {
	char buf[4096];
	size_t len;
};

static int
ref_seen(void *arg, const struct store_ref *ref)
{
	struct seen *s = arg;
	char ds[OCI_DIGEST_STR_BYTES];

	oci_digest_format(&ref->digest, ds);
	s->len += (size_t)snprintf(s->buf + s->len, sizeof(s->buf) - s->len,
	    "%u %s %llu\n", ref->kind, ds, (unsigned long long)ref->size);
	return 0;
}

static int
referrer_seen(void *arg, const struct store_referrer *rr)
{
	struct seen *s = arg;
	char ds[OCI_DIGEST_STR_BYTES];

	oci_digest_format(&rr->digest, ds);
	s->len += (size_t)snprintf(s->buf + s->len, sizeof(s->buf) - s->len,
	    "%s %llu %.*s %.*s\n", ds, (unsigned long long)rr->size,
	    (int)rr->media_type_len, rr->media_type,
	    (int)rr->artifact_type_len, rr->artifact_type);
	return 0;
}

static void
test_derived_records_rebuilt(void **state)
{
	struct fixture *f = *state;
	struct seen refs0 = { .len = 0 }, refs1 = { .len = 0 };
	struct seen rr0 = { .len = 0 }, rr1 = { .len = 0 };
	struct fsck_report r;
	struct oci_digest bogus;
	uint8_t k[128], size[8] = { 1 };

	assert_int_equal(store_refs_list(f->st, &f->man, ref_seen, &refs0), 0);
	assert_int_equal(store_referrers_list(f->st, S("app"), &f->man,
	    referrer_seen, &rr0), 0);
	assert_true(refs0.len > 0 && rr0.len > 0);
	close_store(f);
	/* rlinks mirror of other's blob link */
	k[0] = 'b';
	dkey(k + 1, &f->layer1_d);
	memcpy(k + 34, "other", 5);
	assert_int_equal(tu_raw_del(f->dir, FORMAT_DB_RLINKS, k, 39), 0);
	/* one refs record of the manifest, and a bogus one */
	dkey(k, &f->man);
	k[33] = FORMAT_REF_LAYER;
	dkey(k + 34, &f->layer1_d);
	assert_int_equal(tu_raw_del(f->dir, FORMAT_DB_REFS, k, 67), 0);
	oci_digest_sha256("bogus", 5, &bogus);
	dkey(k + 34, &bogus);
	assert_int_equal(tu_raw_put(f->dir, FORMAT_DB_REFS, k, 67, size, 8), 0);
	/* the referrers entry (app, man, ref) */
	memcpy(k, "app", 3);
	k[3] = 0;
	dkey(k + 4, &f->man);
	dkey(k + 37, &f->ref);
	assert_int_equal(tu_raw_del(f->dir, FORMAT_DB_REFERRERS, k, 70), 0);
	/* the repos record of "other" */
	assert_int_equal(tu_raw_del(f->dir, FORMAT_DB_REPOS, "other", 5), 0);
	open_store(f);

	check(f, 0, &r);
	assert_int_equal(count_id(&r, "link-mirror-missing"), 1);
	assert_int_equal(count_id(&r, "refs-mismatch"), 2);
	assert_int_equal(count_id(&r, "referrers-mismatch"), 1);
	assert_int_equal(count_id(&r, "repo-missing"), 1);
	assert_int_equal(r.nproblems, 5);
	repair_all(f, &r);
	fsck_report_free(&r);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 0);
	fsck_report_free(&r);

	/* The rebuilt records are the ones the store wrote. */
	assert_int_equal(store_refs_list(f->st, &f->man, ref_seen, &refs1), 0);
	assert_int_equal(store_referrers_list(f->st, S("app"), &f->man,
	    referrer_seen, &rr1), 0);
	assert_string_equal(refs0.buf, refs1.buf);
	assert_string_equal(rr0.buf, rr1.buf);
}

static void
test_expired_upload(void **state)
{
	struct fixture *f = *state;
	struct store_upload *up;
	struct store_stats s0, s1;
	struct fsck_report r;

	/* Fresh: the upload's chunks and hash state check out. */
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 0);
	fsck_report_free(&r);
	sleep(2);
	check(f, 1, &r);
	assert_int_equal(r.nproblems, 1);
	assert_int_equal(find(&r, "upload-expired")->severity, FSCK_NOTICE);
	assert_int_equal(store_stats_get(f->st, &s0), 0);
	repair_all(f, &r);
	fsck_report_free(&r);
	assert_int_equal(store_stats_get(f->st, &s1), 0);
	assert_int_equal(s1.uploads, 0);
	assert_int_equal(s1.chunks, s0.chunks - 2);
	assert_int_equal(store_upload_resume(f->st, f->upload_id, &up),
	    STORE_E_NOTFOUND);
	check(f, 1, &r);
	assert_int_equal(r.nproblems, 0);
	fsck_report_free(&r);
}

static void
test_upload_state_damage(void **state)
{
	struct fixture *f = *state;
	struct fsck_report r;
	uint8_t *v = NULL;
	size_t vl = 0;

	close_store(f);
	assert_int_equal(tu_raw_get(f->dir, FORMAT_DB_UPLOADS, f->upload_id,
	    sizeof(f->upload_id), (void **)&v, &vl), 0);
	/* The first word of the hash state: still decodes, no longer true. */
	assert_true(vl > 80);
	v[48] ^= 0x40;
	assert_int_equal(tu_raw_put(f->dir, FORMAT_DB_UPLOADS, f->upload_id,
	    sizeof(f->upload_id), v, vl), 0);
	free(v);
	open_store(f);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 1);
	assert_non_null(strstr(find(&r, "upload-chunks-bad")->detail,
	    "hash state"));
	repair_all(f, &r);
	fsck_report_free(&r);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 0);
	fsck_report_free(&r);
}

static void
test_corrupt_manifest(void **state)
{
	struct fixture *f = *state;
	const struct fsck_problem *p;
	struct fsck_report r;
	struct oci_digest d;
	uint8_t k[FORMAT_DIGEST_KEY_BYTES], *v = NULL;
	size_t vl = 0;

	close_store(f);
	dkey(k, &f->man);
	assert_int_equal(tu_raw_get(f->dir, FORMAT_DB_MANIFESTS, k, sizeof(k),
	    (void **)&v, &vl), 0);
	v[vl - 1] ^= 0x01;
	assert_int_equal(tu_raw_put(f->dir, FORMAT_DB_MANIFESTS, k, sizeof(k),
	    v, vl), 0);
	free(v);
	open_store(f);
	check(f, 0, &r);
	p = find(&r, "manifest-corrupt");
	assert_true(has_image(p, "app:1.0"));
	assert_true(has_image(p, "app:multi"));
	assert_int_equal(count_severity(&r, FSCK_ERROR), 1);
	repair_all(f, &r);
	fsck_report_free(&r);
	assert_int_equal(store_tag_get(f->st, S("app"), S("1.0"), &d),
	    STORE_E_NOTFOUND);
	check(f, 0, &r);
	assert_int_equal(count_severity(&r, FSCK_ERROR), 0);
	/* The index still names it: a broken image, reported. */
	assert_true(has_image(find(&r, "image-manifest-missing"), "app:multi"));
	fsck_report_free(&r);
}

static void
test_orphan_chunks_and_counter(void **state)
{
	struct fixture *f = *state;
	struct fsck_report r;
	uint8_t k[FORMAT_CHUNK_KEY_BYTES] = { 0 }, junk[100] = { 7 };

	k[5] = 0x0f;    /* set 0x0f0000: beyond next-set */
	close_store(f);
	assert_int_equal(tu_raw_put(f->dir, FORMAT_DB_CHUNKS, k, sizeof(k), junk,
	    sizeof(junk)), 0);
	open_store(f);
	check(f, 0, &r);
	assert_int_equal(count_id(&r, "chunk-orphan"), 1);
	assert_int_equal(count_id(&r, "next-set-bad"), 1);
	assert_int_equal(r.nproblems, 2);
	repair_all(f, &r);
	fsck_report_free(&r);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 0);
	fsck_report_free(&r);
}

static void
test_digest_mismatch(void **state)
{
	struct fixture *f = *state;
	struct fsck_report r;
	struct oci_digest fake;
	uint8_t k[FORMAT_DIGEST_KEY_BYTES], *v = NULL;
	size_t vl = 0;

	/* layer2's record moved under another digest: content mismatches. */
	close_store(f);
	dkey(k, &f->layer2_d);
	assert_int_equal(tu_raw_get(f->dir, FORMAT_DB_BLOBS, k, sizeof(k),
	    (void **)&v, &vl), 0);
	assert_int_equal(tu_raw_del(f->dir, FORMAT_DB_BLOBS, k, sizeof(k)), 0);
	oci_digest_sha256("fake", 4, &fake);
	dkey(k, &fake);
	assert_int_equal(tu_raw_put(f->dir, FORMAT_DB_BLOBS, k, sizeof(k), v,
	    vl), 0);
	free(v);
	open_store(f);
	check(f, 0, &r);
	assert_int_equal(count_id(&r, "blob-digest-mismatch"), 1);
	assert_int_equal(count_id(&r, "link-blob-missing"), 1);
	repair_all(f, &r);
	fsck_report_free(&r);
	check(f, 0, &r);
	assert_int_equal(count_severity(&r, FSCK_ERROR), 0);
	assert_int_equal(count_id(&r, "blob-quarantined"), 1);
	fsck_report_free(&r);
}

static void
test_unparsable_referrer_keeps_its_entry(void **state)
{
	struct fixture *f = *state;
	struct seen before = { .len = 0 }, after = { .len = 0 };
	struct fsck_report r;
	uint8_t k[FORMAT_DIGEST_KEY_BYTES], *v = NULL;
	size_t vl = 0;

	assert_int_equal(store_referrers_list(f->st, S("app"), &f->man,
	    referrer_seen, &before), 0);
	close_store(f);
	/* The media type is outside the checksummed chunk: the manifest
	 * stays sound but no longer parses as what its record says. */
	dkey(k, &f->ref);
	assert_int_equal(tu_raw_get(f->dir, FORMAT_DB_MANIFESTS, k, sizeof(k),
	    (void **)&v, &vl), 0);
	v[12] ^= 0x01;
	assert_int_equal(tu_raw_put(f->dir, FORMAT_DB_MANIFESTS, k, sizeof(k),
	    v, vl), 0);
	free(v);
	open_store(f);
	check(f, 0, &r);
	assert_int_equal(count_id(&r, "manifest-invalid"), 1);
	assert_int_equal(count_severity(&r, FSCK_ERROR), 0);
	repair_all(f, &r);
	fsck_report_free(&r);
	assert_int_equal(store_referrers_list(f->st, S("app"), &f->man,
	    referrer_seen, &after), 0);
	assert_string_equal(before.buf, after.buf);
}

static void
test_lost_mirror_is_not_an_unlinked_manifest(void **state)
{
	struct fixture *f = *state;
	struct fsck_report r;
	struct oci_digest d;
	uint8_t k[600];

	close_store(f);
	k[0] = 'm';
	dkey(k + 1, &f->man);
	memcpy(k + 34, "app", 3);
	assert_int_equal(tu_raw_del(f->dir, FORMAT_DB_RLINKS, k, 37), 0);
	/* and an rlinks key whose "name" is far too long */
	memset(k + 34, 'a', 477);
	assert_int_equal(tu_raw_put(f->dir, FORMAT_DB_RLINKS, k, 511, "", 0), 0);
	open_store(f);
	check(f, 0, &r);
	assert_int_equal(count_id(&r, "link-mirror-missing"), 1);
	assert_int_equal(count_id(&r, "link-record-bad"), 1);
	assert_int_equal(count_id(&r, "manifest-unlinked"), 0);
	assert_int_equal(r.nproblems, 2);
	repair_all(f, &r);
	fsck_report_free(&r);
	assert_int_equal(store_tag_get(f->st, S("app"), S("1.0"), &d), 0);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 0);
	fsck_report_free(&r);
}

static void
test_malformed_counter(void **state)
{
	struct fixture *f = *state;
	struct fsck_report r;

	close_store(f);
	assert_int_equal(tu_raw_put(f->dir, FORMAT_DB_META, "next-set", 8, "abc",
	    3), 0);
	open_store(f);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 1);
	assert_non_null(strstr(find(&r, "next-set-bad")->detail, "3 bytes"));
	repair_all(f, &r);
	fsck_report_free(&r);
	check(f, 0, &r);
	assert_int_equal(r.nproblems, 0);
	fsck_report_free(&r);
}

/* Writers keep pushing, unlinking and deleting while fsck runs. */
struct churn {
	struct store *st;
	volatile int stop;
	int rc;
};

static void *
churn_main(void *arg)
{
	struct churn *c = arg;
	uint64_t seed = 42;
	size_t len = 3u << 20;
	uint8_t *buf = malloc(len);

	for (unsigned i = 0; !c->stop && c->rc == 0; i++) {
		struct oci_digest d;

		tu_fill_random(buf, len, &seed);
		c->rc = tu_put_blob(c->st, "churn", buf, len - i % 7, 65536, &d);
		if (c->rc == 0 && i % 2 == 0)
			c->rc = store_blob_delete(c->st, &d);
	}
	free(buf);
	return NULL;
}

static void
test_beside_writers(void **state)
{
	struct fixture *f = *state;
	struct churn c = { .st = f->st };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, churn_main, &c), 0);
	for (int i = 0; i < 8; i++) {
		struct fsck_report r;

		check(f, 0, &r);
		assert_int_equal(r.nproblems, 0);
		fsck_report_free(&r);
	}
	c.stop = 1;
	pthread_join(t, NULL);
	assert_int_equal(c.rc, 0);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_clean_store),
		T(test_corrupt_chunk_quarantine_and_heal),
		T(test_blob_record_deleted),
		T(test_dangling_tag),
		T(test_derived_records_rebuilt),
		T(test_expired_upload),
		T(test_upload_state_damage),
		T(test_corrupt_manifest),
		T(test_orphan_chunks_and_counter),
		T(test_digest_mismatch),
		T(test_unparsable_referrer_keeps_its_entry),
		T(test_lost_mirror_is_not_an_unlinked_manifest),
		T(test_malformed_counter),
		T(test_beside_writers),
	};

	seed_state = tu_seed("test_fsck");
	return cmocka_run_group_tests_name("fsck", tests, NULL, NULL);
}
