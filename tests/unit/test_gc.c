/*
 * store_gc on real stores: the grace period, what tags, indexes and
 * subjects keep, dry runs, the put that loses a race with a collection,
 * and collections running while a writer pushes, retags and deletes,
 * after which every tagged image is whole and fsck finds nothing; and the
 * progress callback across batches and phases.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "berth/fsck.h"
#include "berth/gc.h"
#include "berth/store.h"
#include "testutil.h"

#define S(x) x, strlen(x)

static uint64_t seed_state;

struct fixture {
	char *dir;
	struct store *st;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = tu_tmpdir();
	f->st = tu_open(f->dir, 0);
	*state = f;
	return f->st == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	tu_rmdir(f->dir);
	free(f);
	return 0;
}

/* An image of one config and one layer in repo; returns the manifest. */
static void
image(struct store *st, const char *repo, const char *name, const char *tag,
    struct oci_digest *man, struct oci_digest *layer)
{
	char cfg[128], json[1024], cs[OCI_DIGEST_STR_BYTES],
	    ls[OCI_DIGEST_STR_BYTES];
	struct oci_digest c;
	size_t len = 200000;
	uint8_t *data = malloc(len);

	tu_fill_random(data, len, &seed_state);
	snprintf(cfg, sizeof(cfg), "{\"architecture\":\"amd64\",\"os\":\"linux\","
	    "\"name\":\"%s\"}", name);
	assert_int_equal(tu_put_blob(st, repo, cfg, strlen(cfg), 64, &c), 0);
	assert_int_equal(tu_put_blob(st, repo, data, len, 65536, layer), 0);
	oci_digest_format(&c, cs);
	oci_digest_format(layer, ls);
	snprintf(json, sizeof(json), "{\"schemaVersion\":2,\"mediaType\":"
	    "\"application/vnd.oci.image.manifest.v1+json\",\"config\":"
	    "{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
	    "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":"
	    "\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\","
	    "\"size\":%zu}]}", cs, strlen(cfg), ls, len);
	assert_int_equal(tu_put_manifest(st, repo, json, tag, true, man), 0);
	free(data);
}

/* A referrer (an SBOM) of subject in repo; its one layer is "{}". */
static void
referrer(struct store *st, const char *repo, const struct oci_digest *subject,
    struct oci_digest *out)
{
	char json[1024], es[OCI_DIGEST_STR_BYTES], ss[OCI_DIGEST_STR_BYTES];
	struct oci_digest e;

	assert_int_equal(tu_put_blob(st, repo, "{}", 2, 2, &e), 0);
	oci_digest_format(&e, es);
	oci_digest_format(subject, ss);
	snprintf(json, sizeof(json), "{\"schemaVersion\":2,\"mediaType\":"
	    "\"application/vnd.oci.image.manifest.v1+json\",\"artifactType\":"
	    "\"application/vnd.example.sbom\",\"config\":{\"mediaType\":"
	    "\"application/vnd.oci.empty.v1+json\",\"digest\":\"%s\","
	    "\"size\":2},\"layers\":[{\"mediaType\":\"application/vnd.oci."
	    "empty.v1+json\",\"digest\":\"%s\",\"size\":2}],\"subject\":"
	    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	    "\"digest\":\"%s\",\"size\":1}}", es, es, ss);
	assert_int_equal(tu_put_manifest(st, repo, json, NULL, true, out), 0);
}

static void
gc(struct store *st, uint64_t grace, bool untagged, bool dry,
    struct gc_report *r)
{
	struct gc_options o = { .grace = grace, .untagged = untagged,
	    .dry_run = dry };

	assert_int_equal(store_gc(st, &o, r), 0);
}

/* fsck finds no problem at all (no broken image either). */
static void
assert_sound(struct store *st)
{
	struct fsck_options o = { .jobs = 2 };
	struct fsck_report r;

	assert_int_equal(store_fsck(st, &o, &r), 0);
	for (size_t i = 0; i < r.nproblems; i++)
		print_message("# %s %s: %s\n", r.problems[i].id,
		    r.problems[i].object, r.problems[i].detail);
	assert_int_equal(r.nproblems, 0);
	fsck_report_free(&r);
}

static bool
blob_there(struct store *st, const struct oci_digest *d)
{
	struct store_blob_info info;

	return store_blob_stat(st, NULL, 0, d, &info) == 0;
}

static void
test_unreferenced_blobs_and_grace(void **state)
{
	struct fixture *f = *state;
	struct oci_digest man, layer, loose;
	struct gc_report r;
	uint8_t junk[5000];

	image(f->st, "app", "a", "1", &man, &layer);
	tu_fill_random(junk, sizeof(junk), &seed_state);
	assert_int_equal(tu_put_blob(f->st, "app", junk, sizeof(junk), 999,
	    &loose), 0);
	/* Young: kept. */
	gc(f->st, 3600, false, false, &r);
	assert_int_equal(r.blobs, 0);
	assert_int_equal(r.kept_young, 1);
	assert_true(blob_there(f->st, &loose));
	/* Dry run: reported, kept. */
	gc(f->st, 0, false, true, &r);
	assert_int_equal(r.blobs, 1);
	assert_int_equal(r.bytes, sizeof(junk));
	assert_true(blob_there(f->st, &loose));
	/* Old enough: deleted; the image's blobs stay. */
	gc(f->st, 0, false, false, &r);
	assert_int_equal(r.blobs, 1);
	assert_int_equal(r.bytes, sizeof(junk));
	assert_true(r.stored >= sizeof(junk));
	assert_false(blob_there(f->st, &loose));
	assert_true(blob_there(f->st, &layer));
	assert_sound(f->st);
	/* Nothing more to do. */
	gc(f->st, 0, false, false, &r);
	assert_int_equal(r.blobs + r.manifests, 0);
}

static void
test_deleted_manifest_frees_its_blobs(void **state)
{
	struct fixture *f = *state;
	struct oci_digest a, la, b, lb;
	struct gc_report r;

	image(f->st, "app", "a", "1", &a, &la);
	image(f->st, "app", "b", "2", &b, &lb);
	assert_int_equal(store_manifest_delete(f->st, S("app"), &b), 0);
	gc(f->st, 0, false, false, &r);
	assert_int_equal(r.blobs, 2);   /* b's config and layer */
	assert_false(blob_there(f->st, &lb));
	assert_true(blob_there(f->st, &la));
	assert_sound(f->st);
}

static void
test_untagged_manifests(void **state)
{
	struct fixture *f = *state;
	struct oci_digest tagged, tl, loose, ll, child, cl, idx, sbom, sbom2;
	struct gc_report r;
	char json[1024], cs[OCI_DIGEST_STR_BYTES];

	image(f->st, "app", "tagged", "1", &tagged, &tl);
	image(f->st, "app", "loose", NULL, &loose, &ll);
	image(f->st, "app", "child", NULL, &child, &cl);
	oci_digest_format(&child, cs);
	snprintf(json, sizeof(json), "{\"schemaVersion\":2,\"mediaType\":"
	    "\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
	    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	    "\"digest\":\"%s\",\"size\":1,\"platform\":{\"architecture\":"
	    "\"arm64\",\"os\":\"linux\"}}]}", cs);
	assert_int_equal(tu_put_manifest(f->st, "app", json, "multi", true,
	    &idx), 0);
	referrer(f->st, "app", &tagged, &sbom);         /* kept by its subject */
	referrer(f->st, "app", &loose, &sbom2);         /* goes with it */

	/* Without --untagged manifests stay. */
	gc(f->st, 0, false, false, &r);
	assert_int_equal(r.manifests, 0);
	assert_int_equal(r.blobs, 0);
	/* A grace period keeps young manifests. */
	gc(f->st, 3600, true, false, &r);
	assert_int_equal(r.manifests, 0);
	/* Dry run. */
	gc(f->st, 0, true, true, &r);
	assert_int_equal(r.manifests, 2);
	assert_int_equal(store_manifest_exists(f->st, S("app"), &loose), 0);

	gc(f->st, 0, true, false, &r);
	assert_int_equal(r.manifests, 2);       /* loose and its SBOM */
	assert_int_equal(r.blobs, 2);           /* loose's config and layer */
	assert_int_equal(store_manifest_exists(f->st, S("app"), &loose),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_manifest_exists(f->st, S("app"), &sbom2),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_manifest_exists(f->st, S("app"), &tagged), 0);
	assert_int_equal(store_manifest_exists(f->st, S("app"), &child), 0);
	assert_int_equal(store_manifest_exists(f->st, S("app"), &sbom), 0);
	assert_true(blob_there(f->st, &cl));
	assert_false(blob_there(f->st, &ll));
	assert_sound(f->st);

	/* Untagging the index lets its child go too. */
	assert_int_equal(store_tag_delete(f->st, S("app"), S("multi")), 0);
	gc(f->st, 0, true, false, &r);
	assert_int_equal(r.manifests, 2);
	assert_false(blob_there(f->st, &cl));
	assert_sound(f->st);
}

static void
test_put_after_collection_fails_cleanly(void **state)
{
	struct fixture *f = *state;
	struct oci_digest man, layer, got;
	struct gc_report r;
	char json[1024], ls[OCI_DIGEST_STR_BYTES];

	image(f->st, "app", "a", "1", &man, &layer);
	assert_int_equal(store_manifest_delete(f->st, S("app"), &man), 0);
	gc(f->st, 0, false, false, &r);
	assert_false(blob_there(f->st, &layer));
	/* A client that saw the layer before it went pushes a manifest. */
	oci_digest_format(&layer, ls);
	snprintf(json, sizeof(json), "{\"schemaVersion\":2,\"mediaType\":"
	    "\"application/vnd.oci.image.manifest.v1+json\",\"config\":"
	    "{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
	    "\"digest\":\"%s\",\"size\":1},\"layers\":[]}", ls);
	assert_int_equal(tu_put_manifest(f->st, "app", json, "2", true, &got),
	    STORE_E_NOTFOUND);
	assert_int_equal(store_tag_get(f->st, S("app"), S("2"), &got),
	    STORE_E_NOTFOUND);
	assert_sound(f->st);
}

struct churn {
	struct store *st;
	atomic_int stop;
	atomic_uint pushes;
	unsigned retries;
};

static void *
churn_main(void *arg)
{
	struct churn *c = arg;
	char tag[32];

	for (unsigned i = 0; !atomic_load(&c->stop); i++) {
		struct oci_digest man, layer;

		snprintf(tag, sizeof(tag), "t%u", i % 5);
		/* image() asserts; a lost race shows as a failed put: retry. */
		for (;;) {
			char cfg[64], json[1024], cs[OCI_DIGEST_STR_BYTES],
			    ls[OCI_DIGEST_STR_BYTES];
			struct oci_digest cd;
			uint8_t data[30000];
			int rc;

			tu_fill_random(data, sizeof(data), &seed_state);
			snprintf(cfg, sizeof(cfg), "{\"n\":%u}", i);
			if (tu_put_blob(c->st, "churn", cfg, strlen(cfg), 64,
			    &cd) != 0 || tu_put_blob(c->st, "churn", data,
			    sizeof(data), 8192, &layer) != 0)
				return NULL;
			oci_digest_format(&cd, cs);
			oci_digest_format(&layer, ls);
			snprintf(json, sizeof(json), "{\"schemaVersion\":2,"
			    "\"mediaType\":\"application/vnd.oci.image.manifest."
			    "v1+json\",\"config\":{\"mediaType\":\"application/"
			    "vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
			    "\"size\":%zu},\"layers\":[{\"mediaType\":\"application"
			    "/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\","
			    "\"size\":%zu}]}", cs, strlen(cfg), ls, sizeof(data));
			rc = tu_put_manifest(c->st, "churn", json, tag, true,
			    &man);
			if (rc == 0)
				break;
			if (rc != STORE_E_NOTFOUND)
				return NULL;
			c->retries++;
		}
		c->pushes++;
		if (i % 3 == 0)
			(void)store_manifest_delete(c->st, S("churn"), &man);
	}
	return NULL;
}

static void
test_collections_beside_pushes(void **state)
{
	struct fixture *f = *state;
	struct churn c = { .st = f->st };
	struct gc_report r;
	uint64_t deleted = 0;
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, churn_main, &c), 0);
	/* At least 30 collections and 15 pushes (slow builds take longer). */
	for (int i = 0; (i < 30 || c.pushes < 15) && i < 6000; i++) {
		gc(f->st, 0, true, false, &r);
		deleted += r.blobs;
		nanosleep(&(struct timespec){ 0, 20000000 }, NULL);
	}
	atomic_store(&c.stop, 1);
	pthread_join(t, NULL);
	print_message("# %u pushes, %u lost a race and retried, %llu blobs "
	    "collected\n", atomic_load(&c.pushes), c.retries,
	    (unsigned long long)deleted);
	assert_true(c.pushes >= 15);
	assert_true(deleted > 0);
	/* Every tagged image is whole: fsck reports no broken image. */
	assert_sound(f->st);
	gc(f->st, 0, true, false, &r);
	assert_sound(f->st);
}

/* What the progress callback saw. */
struct seen {
	uint64_t calls, done, total;
	bool monotonic;
};

static void
on_progress(void *arg, uint64_t done, uint64_t total)
{
	struct seen *s = arg;

	if (done < s->done || total < s->total || done > total)
		s->monotonic = false;
	s->calls++;
	s->done = done;
	s->total = total;
}

/* Progress counts every candidate handled, across batches and phases,
 * and ends with done == total; a dry run reports the same. */
static void
test_progress(void **state)
{
	struct fixture *f = *state;
	struct oci_digest man, layer, d;
	struct gc_report r;
	const uint64_t loose = 2 * GC_BATCH_MAX + 2;

	image(f->st, "app", "a", NULL, &man, &layer);   /* untagged */
	for (uint64_t i = 0; i < loose; i++) {
		uint8_t junk[32];

		tu_fill_random(junk, sizeof(junk), &seed_state);
		assert_int_equal(tu_put_blob(f->st, "app", junk, sizeof(junk),
		    32, &d), 0);
	}
	for (int dry = 1; dry >= 0; dry--) {
		struct seen s = { .monotonic = true };
		struct gc_options o = { .grace = 0, .untagged = true,
		    .dry_run = dry, .progress = on_progress,
		    .progress_arg = &s };

		assert_int_equal(store_gc(f->st, &o, &r), 0);
		assert_true(s.monotonic);
		/* a phase start and at least one call per batch */
		assert_true(s.calls >= 4);
		assert_int_equal(s.done, s.total);
		if (dry) {
			/* the manifest, and the loose blobs (not yet the
			 * manifest's, which only become garbage after it) */
			assert_int_equal(s.total, 1 + loose);
		} else {
			/* the manifest, then its config and layer too */
			assert_int_equal(s.total, 1 + loose + 2);
			assert_int_equal(r.manifests + r.blobs + r.skipped,
			    s.total);
		}
	}
	assert_sound(f->st);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_unreferenced_blobs_and_grace),
		T(test_deleted_manifest_frees_its_blobs),
		T(test_untagged_manifests),
		T(test_put_after_collection_fails_cleanly),
		T(test_collections_beside_pushes),
		T(test_progress),
	};

	seed_state = tu_seed("test_gc");
	return cmocka_run_group_tests_name("gc", tests, NULL, NULL);
}
