/*
 * The store environment: opening the data folder, the format header and
 * version check, upgrades, and closing.
 */
#include "config.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "store/store_int.h"
#include "util/log.h"

#define STORE_MAX_DBS 16
/*
 * Read transactions are short (one per call), but every reading thread
 * and every tool process holds one while it reads.
 */
#define STORE_MAX_READERS 1024

/*
 * glibc gives freed heap tops back to the kernel past 128 KiB and serves
 * allocations of 1 MiB and more with fresh mmaps. LMDB allocates each dirty
 * 1 MiB chunk page run with malloc and frees it at commit, so by default
 * every chunk pays 256 page faults and the zeroing of 1 MiB on its way to
 * disk. Keeping two group commits' worth of freed heap instead, and at
 * least 8 MiB (a pull has several 1 MiB chunk buffers in flight; a 2 MiB
 * threshold made every pulled chunk fault its pages in afresh and cost a
 * third more CPU per GB), is bounded and was measured to cut the writer's
 * per-chunk work about threefold (docs/PERFORMANCE.md);
 * store_malloc_release() gives it back when idle.
 */
#define STORE_MALLOC_MMAP_BYTES ((size_t)32 << 20)
#define STORE_MALLOC_TRIM_MIN_BYTES ((size_t)8 << 20)
/*
 * glibc shrinks a thread's arena only in a free() of at least 64 KiB
 * (its FASTBIN_CONSOLIDATION_THRESHOLD), and then only down to the trim
 * threshold; store_malloc_release_arena() frees one block this large with
 * the threshold lowered to glibc's default for that one free.
 */
#define STORE_MALLOC_ARENA_PROBE_BYTES ((size_t)96 << 10)
#define STORE_MALLOC_TRIM_DEFAULT_BYTES ((size_t)128 << 10)

static pthread_mutex_t malloc_lock = PTHREAD_MUTEX_INITIALIZER;
static bool malloc_tuned;
static size_t malloc_trim_bytes;        /* the threshold set by the tuning */

void
store_malloc_release(void)
{
#ifdef __GLIBC__
	(void)malloc_trim(0);
#endif
}

/*
 * malloc_trim() gives back the free pages inside every arena and the top
 * of the main heap, but not the top of a thread's own arena: the writer's
 * stays as large as its busiest group left it (1.6 MiB after a round of
 * pushes, measured), unless a large free() meets a low trim threshold.
 * Called by a thread going idle, for its own arena.
 */
void
store_malloc_release_arena(void)
{
#ifdef __GLIBC__
	/* volatile: a compiler may drop a malloc() whose block is unused. */
	void *volatile probe;

	pthread_mutex_lock(&malloc_lock);
	if (malloc_tuned) {
		probe = malloc(STORE_MALLOC_ARENA_PROBE_BYTES);
		mallopt(M_TRIM_THRESHOLD, (int)STORE_MALLOC_TRIM_DEFAULT_BYTES);
		free(probe);
		mallopt(M_TRIM_THRESHOLD, (int)malloc_trim_bytes);
	}
	pthread_mutex_unlock(&malloc_lock);
	(void)malloc_trim(0);
#endif
}

/* Keeps two group commits' worth of heap; the first store opened decides. */
void
store_malloc_tune(size_t batch_bytes)
{
	pthread_mutex_lock(&malloc_lock);
	if (!malloc_tuned) {
#ifdef __GLIBC__
		malloc_trim_bytes = 2 * batch_bytes >
		    STORE_MALLOC_TRIM_MIN_BYTES ? 2 * batch_bytes :
		    STORE_MALLOC_TRIM_MIN_BYTES;
		mallopt(M_MMAP_THRESHOLD, (int)STORE_MALLOC_MMAP_BYTES);
		mallopt(M_TRIM_THRESHOLD, (int)malloc_trim_bytes);
#else
		(void)batch_bytes;
#endif
		malloc_tuned = true;
	}
	pthread_mutex_unlock(&malloc_lock);
}

/*
 * Finds LMDB's map of the data file among the process's mappings (LMDB
 * does not tell where it is unless the map is fixed), so that chunk_fetch()
 * can turn a value's address into a file offset. Without it (not Linux,
 * or not found) chunks are copied through the map.
 */
static void
store_map_locate(struct store *st)
{
	mdb_filehandle_t fd;
	struct stat sb;
	FILE *f;
	char line[512];

	st->map = NULL;
	if (mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &sb) != 0)
		return;
	f = fopen("/proc/self/maps", "r");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long long lo, hi, off, ino;
		unsigned maj, min;
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &lo, &hi,
		    perms, &off, &maj, &min, &ino) != 7)
			continue;
		if (ino == (unsigned long long)sb.st_ino && off == 0 &&
		    makedev(maj, min) == sb.st_dev && perms[3] == 's' &&
		    hi > lo) {
			st->fd = fd;
			st->map = (const uint8_t *)(uintptr_t)lo;
			st->mapsize = (size_t)(hi - lo);
			break;
		}
	}
	fclose(f);
}

static const char *const dbi_names[DBI_COUNT] = {
	[DBI_META] = FORMAT_DB_META,
	[DBI_BLOBS] = FORMAT_DB_BLOBS,
	[DBI_CHUNKS] = FORMAT_DB_CHUNKS,
	[DBI_UPLOADS] = FORMAT_DB_UPLOADS,
	[DBI_MANIFESTS] = FORMAT_DB_MANIFESTS,
	[DBI_REPOS] = FORMAT_DB_REPOS,
	[DBI_LINKS] = FORMAT_DB_LINKS,
	[DBI_RLINKS] = FORMAT_DB_RLINKS,
	[DBI_TAGS] = FORMAT_DB_TAGS,
	[DBI_REFS] = FORMAT_DB_REFS,
	[DBI_REFERRERS] = FORMAT_DB_REFERRERS,
};

uint64_t
store_now(void)
{
	return (uint64_t)time(NULL);
}

const char *
store_strerror(int rc)
{
	switch (rc) {
	case 0: return "success";
	case STORE_E_NOTFOUND: return "not found";
	case STORE_E_INVALID: return "invalid argument";
	case STORE_E_DIGEST: return "content does not match its digest";
	case STORE_E_SIZE: return "content does not match its size";
	case STORE_E_CORRUPT: return "stored data is corrupt";
	case STORE_E_MAP_FULL: return "store map is full (raise the map size)";
	case STORE_E_NOSPC: return "no space left on device";
	case STORE_E_FORMAT_NEWER: return "store was written by a newer berth";
	case STORE_E_FORMAT_OLD: return "store has an older format and must be upgraded";
	case STORE_E_NOT_STORE: return "folder does not hold a berth store";
	case STORE_E_IO: return "store I/O error";
	case STORE_E_NOMEM: return "out of memory";
	case STORE_E_RANGE: return "offset past the end";
	case STORE_E_READONLY: return "store is open read-only";
	case STORE_E_CLOSED: return "store is closed";
	case STORE_E_FAILED: return "upload failed earlier and cannot continue";
	case STORE_E_UNSUPPORTED: return "unsupported digest algorithm";
	case STORE_E_CONFLICT: return "upload was changed through another handle";
	case STORE_E_BUSY: return "upload is finishing";
	default: return "unknown store error";
	}
}

uint32_t
store_format_version(const struct store *st)
{
	return st->version;
}

static void
header_encode(uint8_t h[FORMAT_HEADER_BYTES], uint32_t version, uint64_t created)
{
	memcpy(h, FORMAT_MAGIC, FORMAT_MAGIC_BYTES);
	format_put_le32(h + 8, version);
	format_put_le32(h + 12, 0);
	format_put_le64(h + 16, created);
}

static int
header_write(struct store_wtxn *w, uint32_t version, uint64_t created)
{
	uint8_t h[FORMAT_HEADER_BYTES];
	MDB_val k = { strlen(FORMAT_META_HEADER), (void *)FORMAT_META_HEADER };
	MDB_val v = { sizeof(h), h };

	header_encode(h, version, created);
	return store_mdb_error(mdb_put(w->txn, w->st->dbi[DBI_META], &k, &v, 0),
	    "write header");
}

/*
 * One step per format version: upgrade_step(v) turns a version-v store into
 * a version v+1 store inside the caller's transaction (meta_open's), before
 * the other databases are opened: a step opens or creates what it needs.
 * Format 1 is the first, so there is no step yet and older stamps cannot be
 * upgraded.
 */
static int
upgrade_step(struct store_wtxn *w, uint32_t from)
{
	(void)w;
	log_error("store: no upgrade path from format %u", from);
	return STORE_E_FORMAT_OLD;
}

struct meta_ctx {
	unsigned flags;
	uint32_t version;       /* out: as found, created or upgraded to */
};

static int
dbi_open_one(struct store_wtxn *w, enum store_dbi i, bool create)
{
	int rc = mdb_dbi_open(w->txn, dbi_names[i], create ? MDB_CREATE : 0,
	    &w->st->dbi[i]);

	if (rc == MDB_NOTFOUND)
		return i == DBI_META ? STORE_E_NOT_STORE : STORE_E_CORRUPT;
	return store_mdb_error(rc, "open database");
}

/*
 * The whole open check in one transaction, so that a refused store is
 * left exactly as it was: open "meta", read the header, decide (create,
 * refuse or upgrade), and only then open, or for a new store create, the
 * other databases. A read-only handle runs this in a read transaction and
 * never gets as far as creating or upgrading.
 */
static int
meta_open(struct store_wtxn *w, void *arg)
{
	struct meta_ctx *mc = arg;
	MDB_val k = { strlen(FORMAT_META_HEADER), (void *)FORMAT_META_HEADER }, v;
	bool create = mc->flags & STORE_OPEN_CREATE;
	bool fresh = false;
	uint64_t created;
	int rc;

	rc = dbi_open_one(w, DBI_META, create);
	if (rc != 0)
		return rc;
	rc = mdb_get(w->txn, w->st->dbi[DBI_META], &k, &v);
	if (rc == MDB_NOTFOUND) {
		if (!create)
			return STORE_E_NOT_STORE;
		fresh = true;
		mc->version = FORMAT_VERSION;
		rc = header_write(w, FORMAT_VERSION, w->now);
		if (rc != 0)
			return rc;
	} else if (rc != 0) {
		return store_mdb_error(rc, "read header");
	} else {
		if (v.mv_size != FORMAT_HEADER_BYTES ||
		    memcmp(v.mv_data, FORMAT_MAGIC, FORMAT_MAGIC_BYTES) != 0)
			return STORE_E_NOT_STORE;
		mc->version = format_get_le32((const uint8_t *)v.mv_data + 8);
		created = format_get_le64((const uint8_t *)v.mv_data + 16);
		if (mc->version > FORMAT_VERSION ||
		    format_get_le32((const uint8_t *)v.mv_data + 12) != 0)
			return STORE_E_FORMAT_NEWER;
		if (mc->version < FORMAT_VERSION) {
			if (!(mc->flags & STORE_OPEN_UPGRADE) ||
			    mc->version < FORMAT_VERSION_MIN)
				return STORE_E_FORMAT_OLD;
			for (uint32_t from = mc->version; from < FORMAT_VERSION;
			    from++) {
				rc = upgrade_step(w, from);
				if (rc != 0)
					return rc;
				log_info("store: upgraded format %u to %u", from,
				    from + 1);
			}
			mc->version = FORMAT_VERSION;
			rc = header_write(w, FORMAT_VERSION, created);
			if (rc != 0)
				return rc;
		}
	}
	for (int i = DBI_META + 1; i < DBI_COUNT; i++) {
		rc = dbi_open_one(w, (enum store_dbi)i, fresh);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
ensure_folder(const char *path, bool create)
{
	struct stat sb;
	int e;

	if (stat(path, &sb) == 0) {
		/* The returned codes say it all; callers report them. */
		if (!S_ISDIR(sb.st_mode)) {
			log_debug("store: %s is not a folder", path);
			return STORE_E_NOT_STORE;
		}
		return 0;
	}
	e = errno;
	if (e == ENOENT && !create) {
		log_debug("store: %s: %s", path, strerror(e));
		return STORE_E_NOTFOUND;
	}
	if (e != ENOENT) {
		log_error("store: %s: %s", path, strerror(e));
		return STORE_E_IO;
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		e = errno;
		log_error("store: mkdir %s: %s", path, strerror(e));
		return STORE_E_IO;
	}
	return 0;
}

/* Without STORE_OPEN_CREATE, a folder with no data file holds no store. */
static int
ensure_data_file(const char *path)
{
	char file[4096];
	struct stat sb;

	if ((size_t)snprintf(file, sizeof(file), "%s/data.mdb", path) >=
	    sizeof(file))
		return STORE_E_INVALID;
	if (stat(file, &sb) == 0)
		return 0;
	log_debug("store: %s holds no store (no data.mdb)", path);
	return STORE_E_NOT_STORE;
}

int
store_open(const struct store_options *opts, struct store **out)
{
	struct store *st = NULL;
	struct meta_ctx mc = { 0 };
	unsigned envflags = MDB_NOTLS | MDB_NOMETASYNC;
	size_t batch;
	int rc, stale = 0;

	*out = NULL;
	if (opts == NULL || opts->path == NULL ||
	    ((opts->flags & STORE_OPEN_READONLY) &&
	    (opts->flags & (STORE_OPEN_CREATE | STORE_OPEN_UPGRADE))))
		return STORE_E_INVALID;
	rc = ensure_folder(opts->path, opts->flags & STORE_OPEN_CREATE);
	if (rc == 0 && !(opts->flags & STORE_OPEN_CREATE))
		rc = ensure_data_file(opts->path);
	if (rc != 0)
		return rc;
	if (opts->batch_bytes > STORE_BATCH_BYTES_MAX)
		return STORE_E_INVALID;
	batch = opts->batch_bytes != 0 ? opts->batch_bytes :
	    STORE_BATCH_BYTES_DEFAULT;
	store_malloc_tune(batch);

	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return STORE_E_NOMEM;
	st->flags = opts->flags;
	st->path = strdup(opts->path);
	st->zstd_level = opts->zstd_level != 0 ? opts->zstd_level :
	    STORE_ZSTD_LEVEL_DEFAULT;
	st->batch_bytes = batch;
	pthread_mutex_init(&st->lock, NULL);
	{
		pthread_condattr_t ca;

		/* The writer's idle timer must not move with the wall clock. */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&st->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	st->tail = &st->head;
	if (st->path == NULL) {
		rc = STORE_E_NOMEM;
		goto out;
	}

	if (opts->flags & STORE_OPEN_READONLY)
		envflags |= MDB_RDONLY;
	rc = mdb_env_create(&st->env);
	if (rc != 0) {
		st->env = NULL;
		rc = store_mdb_error(rc, "create environment");
		goto out;
	}
	mdb_env_set_maxdbs(st->env, STORE_MAX_DBS);
	mdb_env_set_maxreaders(st->env, STORE_MAX_READERS);
	rc = mdb_env_set_mapsize(st->env, opts->map_size != 0 ? opts->map_size :
	    STORE_MAP_SIZE_DEFAULT);
	if (rc != 0) {
		rc = store_mdb_error(rc, "set map size");
		goto out;
	}
	rc = mdb_env_open(st->env, opts->path, envflags, 0600);
	if (rc != 0) {
		log_error("store: open %s: %s", opts->path, mdb_strerror(rc));
		rc = rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
		    rc == ENOENT ? STORE_E_NOT_STORE : store_mdb_error(rc, "open");
		goto out;
	}
	store_map_locate(st);
	/* Reader slots of processes that died (kill -9) would pin old pages. */
	if (mdb_reader_check(st->env, &stale) == 0 && stale > 0)
		log_info("store: cleared %d stale reader slot(s)", stale);
	mc.flags = opts->flags;
	rc = store_txn_run_now(st, meta_open, &mc);
	st->version = mc.version;
	if (rc != 0) {
		if (rc == STORE_E_FORMAT_NEWER)
			log_error("store: %s has format %u; this berth reads up "
			    "to %u", opts->path, st->version, FORMAT_VERSION);
		else if (rc == STORE_E_FORMAT_OLD)
			log_error("store: %s has format %u; open it with the "
			    "upgrade option to move it to %u", opts->path,
			    st->version, FORMAT_VERSION);
		goto out;
	}
	if (!(opts->flags & STORE_OPEN_READONLY)) {
		rc = store_writer_start(st);
		if (rc != 0)
			goto out;
	}
	*out = st;
	st = NULL;
	rc = 0;
out:
	store_close(st);
	return rc;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	store_writer_stop(st);
	if (st->env != NULL)
		mdb_env_close(st->env);
	ZSTD_freeCCtx(st->cctx);
	free(st->scratch);
	free(st->path);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
}

int
store_stats_get(struct store *st, struct store_stats *out)
{
	static const struct {
		enum store_dbi dbi;
		size_t offset;
	} counted[] = {
		{ DBI_BLOBS, offsetof(struct store_stats, blobs) },
		{ DBI_CHUNKS, offsetof(struct store_stats, chunks) },
		{ DBI_UPLOADS, offsetof(struct store_stats, uploads) },
		{ DBI_MANIFESTS, offsetof(struct store_stats, manifests) },
		{ DBI_REPOS, offsetof(struct store_stats, repos) },
		{ DBI_TAGS, offsetof(struct store_stats, tags) },
		{ DBI_LINKS, offsetof(struct store_stats, links) },
		{ DBI_REFS, offsetof(struct store_stats, refs) },
		{ DBI_REFERRERS, offsetof(struct store_stats, referrers) },
	};
	MDB_envinfo info;
	MDB_stat ms;
	MDB_txn *txn = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = store_rtxn_begin(st, &txn);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < sizeof(counted) / sizeof(counted[0]); i++) {
		rc = mdb_stat(txn, st->dbi[counted[i].dbi], &ms);
		if (rc != 0) {
			rc = store_mdb_error(rc, "stat");
			goto out;
		}
		*(uint64_t *)((char *)out + counted[i].offset) = ms.ms_entries;
	}
	rc = mdb_env_info(st->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(st->env, &ms);
	if (rc != 0) {
		rc = store_mdb_error(rc, "env info");
		goto out;
	}
	out->format_version = st->version;
	out->page_size = ms.ms_psize;
	out->map_size = info.me_mapsize;
	out->map_used = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
out:
	store_rtxn_end(txn);
	return rc;
}

int
store_health(struct store *st, struct store_health *out)
{
	struct store_stats s;
	struct statvfs vfs;
	int rc;

	memset(out, 0, sizeof(*out));
	out->writable = (st->flags & STORE_OPEN_READONLY) == 0 &&
	    atomic_load(&st->refusing_writes) == 0;
	rc = store_stats_get(st, &s);
	if (rc != 0)
		return rc;
	out->map_size = s.map_size;
	out->map_used = s.map_used;
	if (statvfs(st->path, &vfs) == 0)
		out->disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	else
		out->disk_free = UINT64_MAX;    /* unknown: not judged */
	return 0;
}

int
store_free_pages(struct store *st, uint64_t *out)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	*out = 0;
	rc = store_rtxn_begin(st, &txn);
	if (rc != 0)
		return rc;
	/* LMDB's free list is database 0: each value counts its pages first. */
	rc = mdb_cursor_open(txn, 0, &c);
	if (rc == 0) {
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
		    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			size_t n;

			if (v.mv_size < sizeof(n))
				continue;
			memcpy(&n, v.mv_data, sizeof(n));
			*out += n;
		}
		mdb_cursor_close(c);
	}
	store_rtxn_end(txn);
	return rc == MDB_NOTFOUND ? 0 : store_mdb_error(rc, "free list");
}
