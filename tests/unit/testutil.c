#define _GNU_SOURCE     /* memmem, asprintf: test helpers only */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "testutil.h"

char *
tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if (asprintf(&path, "%s/berth-test-XXXXXX", base) < 0)
		abort();
	if (mkdtemp(path) == NULL) {
		perror("mkdtemp");
		abort();
	}
	return path;
}

void
tu_rmdir(char *path)
{
	struct dirent *e;
	char buf[4096];
	DIR *d;

	/* The store's files and whatever else a test left: no subfolders. */
	d = opendir(path);
	if (d != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(buf, sizeof(buf), "%s/%s", path, e->d_name);
			unlink(buf);
		}
		closedir(d);
	}
	rmdir(path);
	free(path);
}

uint64_t
tu_seed(const char *who)
{
	const char *env = getenv("BERTH_TEST_SEED");
	uint64_t seed;

	if (env != NULL && *env != '\0')
		seed = strtoull(env, NULL, 0);
	else
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if (seed == 0)
		seed = 1;
	printf("# %s: seed %" PRIu64 " (BERTH_TEST_SEED=%" PRIu64 " replays)\n",
	    who, seed, seed);
	fflush(stdout);
	return seed;
}

uint64_t
tu_rand(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

void
tu_fill_random(void *buf, size_t len, uint64_t *state)
{
	uint8_t *p = buf;

	while (len >= 8) {
		uint64_t v = tu_rand(state);

		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	while (len-- > 0)
		*p++ = (uint8_t)tu_rand(state);
}

void
tu_fill_text(void *buf, size_t len, uint64_t *state)
{
	static const char *const words[] = {
		"static ", "int ", "return ", "struct ", "void ", "if (", ") {\n",
		"}\n", "for (i = 0; i < n; i++)", "\t", "#include <stdio.h>\n",
		"buffer", "length", "config", "usr/lib/", "share/doc/", " = ",
		"0644 ", "root ", "ustar  ", "00000000000 ", "\n", ";\n",
	};
	uint8_t *p = buf;
	size_t nwords = sizeof(words) / sizeof(words[0]);

	while (len > 0) {
		const char *w = words[tu_rand(state) % nwords];
		size_t n = strlen(w);

		if (n > len)
			n = len;
		memcpy(p, w, n);
		p += n;
		len -= n;
	}
}

struct store *
tu_open(const char *dir, uint64_t map_size)
{
	struct store_options o = { .path = dir, .map_size = map_size,
	    .flags = STORE_OPEN_CREATE };
	struct store *st = NULL;
	int rc = store_open(&o, &st);

	if (rc != 0) {
		fprintf(stderr, "tu_open %s: %s\n", dir, store_strerror(rc));
		return NULL;
	}
	return st;
}

int
tu_put_blob(struct store *st, const char *repo, const void *data, size_t len,
    size_t step, struct oci_digest *out)
{
	struct store_upload *up = NULL;
	const uint8_t *p = data;
	int rc;

	oci_digest_sha256(data, len, out);
	rc = store_upload_new(st, repo, strlen(repo), &up);
	if (rc != 0)
		return rc;
	for (size_t off = 0; off < len && rc == 0; off += step) {
		size_t n = len - off < step ? len - off : step;

		rc = store_upload_write(up, p + off, n);
	}
	if (rc == 0)
		rc = store_upload_finish(up, out, len);
	store_upload_free(up);
	return rc;
}

int
tu_read_blob(struct store *st, const char *repo, const struct oci_digest *d,
    void **data, size_t *len, size_t step)
{
	struct store_blob_reader *r = NULL;
	uint8_t *buf;
	size_t size, off = 0, n;
	int rc;

	*data = NULL;
	*len = 0;
	rc = store_blob_reader_open(st, repo, repo ? strlen(repo) : 0, d, &r);
	if (rc != 0)
		return rc;
	size = (size_t)store_blob_reader_size(r);
	buf = malloc(size + 1);
	if (buf == NULL)
		abort();
	while (off < size) {
		size_t want = size - off < step ? size - off : step;

		rc = store_blob_reader_read(r, off, buf + off, want, &n);
		if (rc != 0)
			break;
		if (n == 0) {
			rc = STORE_E_IO;
			break;
		}
		off += n;
	}
	store_blob_reader_close(r);
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*data = buf;
	*len = size;
	return 0;
}

int
tu_corrupt_file(const char *dir, const void *needle, size_t nlen, size_t at)
{
	char path[4096];
	struct stat sb;
	uint8_t *map;
	int fd, rc = -1;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	fd = open(path, O_RDWR);
	if (fd < 0 || fstat(fd, &sb) != 0)
		return -1;
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
	    fd, 0);
	if (map != MAP_FAILED) {
		uint8_t *hit = memmem(map, (size_t)sb.st_size, needle, nlen);

		if (hit != NULL) {
			hit[at] ^= 0x5a;
			msync(map, (size_t)sb.st_size, MS_SYNC);
			rc = 0;
		}
		munmap(map, (size_t)sb.st_size);
	}
	close(fd);
	return rc;
}

int
tu_stamp_version(const char *dir, uint32_t version)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k = { 6, (void *)"header" }, v;
	uint8_t h[FORMAT_HEADER_BYTES];
	int rc;

	memcpy(h, FORMAT_MAGIC, FORMAT_MAGIC_BYTES);
	format_put_le32(h + 8, version);
	format_put_le32(h + 12, 0);
	format_put_le64(h + 16, 0);
	v = (MDB_val){ sizeof(h), h };
	rc = mdb_env_create(&env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(env, 16);
	if (rc == 0)
		rc = mdb_env_open(env, dir, 0, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, FORMAT_DB_META, MDB_CREATE, &dbi);
	if (rc == 0)
		rc = mdb_put(txn, dbi, &k, &v, 0);
	if (rc == 0) {
		rc = mdb_txn_commit(txn);
		txn = NULL;
	}
	if (txn != NULL)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc;
}

/* One raw LMDB operation on a closed store: get (val out), put or delete. */
static int
tu_raw(const char *dir, const char *db, const void *key, size_t klen,
    const void *val, size_t vlen, int op, void **out, size_t *outlen)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	int rc;

	rc = mdb_env_create(&env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(env, 16);
	if (rc == 0)
		rc = mdb_env_set_mapsize(env, STORE_MAP_SIZE_DEFAULT);
	if (rc == 0)
		rc = mdb_env_open(env, dir, 0, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, op == 0 ? MDB_RDONLY : 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, db, 0, &dbi);
	if (rc == 0 && op == 0) {
		rc = mdb_get(txn, dbi, &k, &v);
		if (rc == 0) {
			*out = malloc(v.mv_size + 1);
			if (*out == NULL)
				rc = ENOMEM;
			else {
				memcpy(*out, v.mv_data, v.mv_size);
				*outlen = v.mv_size;
			}
		}
	} else if (rc == 0) {
		rc = op == 1 ? mdb_put(txn, dbi, &k, &v, 0) :
		    mdb_del(txn, dbi, &k, NULL);
	}
	if (rc == 0) {
		rc = mdb_txn_commit(txn);
		txn = NULL;
	}
	if (txn != NULL)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc;
}

int
tu_raw_get(const char *dir, const char *db, const void *key, size_t klen,
    void **val, size_t *vlen)
{
	return tu_raw(dir, db, key, klen, NULL, 0, 0, val, vlen);
}

int
tu_raw_put(const char *dir, const char *db, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	return tu_raw(dir, db, key, klen, val, vlen, 1, NULL, NULL);
}

int
tu_raw_del(const char *dir, const char *db, const void *key, size_t klen)
{
	return tu_raw(dir, db, key, klen, NULL, 0, 2, NULL, NULL);
}

int
tu_put_manifest(struct store *st, const char *repo, const char *json,
    const char *tag, bool require_refs, struct oci_digest *out)
{
	struct oci_manifest m;
	struct store_manifest sm;
	struct store_ref *refs;
	char why[256];
	int rc;

	if (oci_manifest_parse(json, strlen(json), NULL, 0, &m, why,
	    sizeof(why)) != 0) {
		fprintf(stderr, "tu_put_manifest: %s\n", why);
		return STORE_E_INVALID;
	}
	refs = calloc(m.nrefs + 1, sizeof(*refs));
	if (refs == NULL) {
		oci_manifest_free(&m);
		return STORE_E_NOMEM;
	}
	for (size_t i = 0; i < m.nrefs; i++) {
		refs[i].kind = m.refs[i].kind;
		refs[i].digest = m.refs[i].digest;
		refs[i].size = m.refs[i].size;
		refs[i].external = m.refs[i].external;
	}
	memset(&sm, 0, sizeof(sm));
	oci_digest_sha256(json, strlen(json), &sm.digest);
	sm.media_type = m.media_type;
	sm.media_type_len = strlen(m.media_type);
	sm.data = json;
	sm.len = strlen(json);
	sm.refs = refs;
	sm.nrefs = m.nrefs;
	sm.artifact_type = m.artifact_type[0] ? m.artifact_type : NULL;
	sm.artifact_type_len = strlen(m.artifact_type);
	sm.require_refs = require_refs;
	rc = store_manifest_put(st, repo, strlen(repo), &sm, tag,
	    tag != NULL ? strlen(tag) : 0);
	if (out != NULL)
		*out = sm.digest;
	free(refs);
	oci_manifest_free(&m);
	return rc;
}
