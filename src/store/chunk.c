/*
 * Chunks: self-describing pieces of blob (and manifest) payload.
 *
 * This file is the only one that knows how payload bytes are laid out and
 * where they live; the rest of the store puts, reads and deletes chunks by
 * (set, offset). Every chunk read is verified (header sanity, then the
 * XXH3 checksum over the payload, seeded with the header) before a single
 * byte is decoded or returned.
 */
/* madvise(MADV_DONTNEED) is not in POSIX; posix_madvise's is a no-op. */
#define _DEFAULT_SOURCE
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>
#ifdef HAVE_XXH_X86DISPATCH
/* Makes the XXH3 calls below pick the CPU's widest vector unit. */
#include <xxh_x86dispatch.h>
#endif

#include "store/store_int.h"
#include "util/log.h"

/*
 * Values at least this large live in overflow pages of their own, which
 * chunk_fetch() reads with pread; smaller ones sit in B-tree leaf pages
 * that every lookup maps anyway.
 */
#define CHUNK_PREAD_MIN_BYTES ((size_t)16 << 10)

/* Linux's fault-around window (fault_around_bytes, 64 KiB by default). */
#define CHUNK_FAULT_AROUND_BYTES ((uintptr_t)64 << 10)

/* zstd must save at least 1/32 (~3%) of a chunk to be worth decoding. */
#define CHUNK_MIN_SAVING_SHIFT 5

/*
 * Chunks at least CHUNK_PROBE_MIN_BYTES long are sampled before they are
 * compressed: zstd level 1 on CHUNK_PROBE_SLICES slices of
 * CHUNK_PROBE_SLICE_BYTES spread evenly over the chunk. Unless the slices
 * shrink by 1/64 together, the chunk is stored raw untried: incompressible
 * bytes make zstd's output longer than its input, so the bar can be low
 * and keep every chunk worth compressing (a bar of 1/16 lost 1 % of the
 * tar corpus's saving, docs/PERFORMANCE.md). An incompressible chunk so
 * costs 64 KiB of the fastest level rather than all of it at the
 * configured one, and needs no chunk-sized output buffer.
 */
#define CHUNK_PROBE_MIN_BYTES   ((size_t)128 << 10)
#define CHUNK_PROBE_SLICES      4
#define CHUNK_PROBE_SAVING_SHIFT 6

void
chunk_key(uint8_t key[FORMAT_CHUNK_KEY_BYTES], uint64_t set, uint64_t off)
{
	format_put_be64(key, set);
	format_put_be64(key + 8, off);
}

bool
chunk_is_compressed_stream(const void *data, size_t len)
{
	const uint8_t *p = data;

	if (len >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		return true;    /* gzip, RFC 1952 */
	if (len >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f &&
	    p[3] == 0xfd)
		return true;    /* zstd frame, RFC 8878 */
	return false;
}

static uint64_t
chunk_checksum(const uint8_t hdr[8], const void *payload, size_t len)
{
	return XXH3_64bits_withSeed(payload, len, format_get_le64(hdr));
}

static void
chunk_write_hdr(uint8_t *hdr, uint8_t codec, size_t raw, const void *payload,
    size_t stored)
{
	format_put_le32(hdr, (uint32_t)raw | (uint32_t)codec << 24);
	format_put_le32(hdr + 4, (uint32_t)stored);
	format_put_le64(hdr + 8, chunk_checksum(hdr, payload, stored));
}

int
chunk_verify(const void *val, size_t vlen, size_t raw_max, struct chunk_hdr *out)
{
	const uint8_t *p = val;
	uint32_t word0;

	memset(out, 0, sizeof(*out));
	if (vlen < FORMAT_CHUNK_HDR_BYTES)
		return STORE_E_CORRUPT;
	word0 = format_get_le32(p);
	out->raw_len = word0 & 0xffffffu;
	out->codec = (uint8_t)(word0 >> 24);
	out->stored_len = format_get_le32(p + 4);
	out->checksum = format_get_le64(p + 8);
	if (out->stored_len != vlen - FORMAT_CHUNK_HDR_BYTES ||
	    out->raw_len > raw_max ||
	    (out->codec != FORMAT_CODEC_RAW && out->codec != FORMAT_CODEC_ZSTD) ||
	    (out->codec == FORMAT_CODEC_RAW && out->raw_len != out->stored_len) ||
	    chunk_checksum(p, p + FORMAT_CHUNK_HDR_BYTES, out->stored_len) !=
	    out->checksum) {
		memset(out, 0, sizeof(*out));
		return STORE_E_CORRUPT;
	}
	return 0;
}

/* Whether a value of size n at p lies in the map (not in a dirty page). */
static bool
chunk_in_map(const struct store *st, const uint8_t *p, size_t n)
{
	return st->map != NULL && p >= st->map &&
	    (size_t)(p - st->map) <= st->mapsize &&
	    n <= st->mapsize - (size_t)(p - st->map);
}

/*
 * Deleting a large value makes LMDB read its overflow pages' header, and
 * the kernel maps the whole run of cached pages around it into the
 * process: deleting a 1 GiB blob would add 1 GiB to the resident size.
 * The pages hold nothing this process will read again, so drop the
 * mapping (the page cache keeps the bytes; readers of an older snapshot
 * fault them back in). The kernel maps a fault's whole aligned window
 * (CHUNK_FAULT_AROUND_BYTES), which reaches back before the run's first
 * page into the run before it: that part is dropped too, or deleting a
 * 1 GiB blob chunk by chunk left 44 MiB of earlier runs mapped. Only
 * mappings go: the map is read-only, and a page LMDB still uses (a leaf
 * in the window) is faulted back in on its next read.
 */
void
chunk_unmap(const struct store *st, const MDB_val *v)
{
	const uint8_t *p = v->mv_data;
	uintptr_t lo, hi, base = (uintptr_t)st->map;
	long pg = sysconf(_SC_PAGESIZE);

	if (v->mv_size < CHUNK_PREAD_MIN_BYTES || pg <= 0 ||
	    !chunk_in_map(st, p, v->mv_size))
		return;
	/* The run starts on a page (the value follows a page header). */
	lo = (uintptr_t)p & ~((uintptr_t)pg - 1);
	hi = ((uintptr_t)p + v->mv_size + (uintptr_t)pg - 1) &
	    ~((uintptr_t)pg - 1);
	/* The fault's window, inside the map (which starts on a page). */
	lo = lo - base < CHUNK_FAULT_AROUND_BYTES ? base :
	    base + ((lo - base) & ~(CHUNK_FAULT_AROUND_BYTES - 1));
	if (hi - lo < CHUNK_FAULT_AROUND_BYTES)
		hi = lo + CHUNK_FAULT_AROUND_BYTES;
	if (hi > base + st->mapsize)
		hi = base + st->mapsize;
	(void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void
chunk_unmap_all(const struct store *st)
{
	if (st->map != NULL)
		(void)madvise((void *)(uintptr_t)st->map, st->mapsize,
		    MADV_DONTNEED);
}

int
chunk_fetch(struct store *st, const MDB_val *v, void *dst)
{
	const uint8_t *p = v->mv_data;
	uint8_t *d = dst;
	size_t done = 0;
	off_t off;

	/* The map starts at file offset 0: a pointer into it is an offset. */
	if (v->mv_size < CHUNK_PREAD_MIN_BYTES ||
	    !chunk_in_map(st, p, v->mv_size)) {
		memcpy(dst, v->mv_data, v->mv_size);
		return 0;
	}
	off = (off_t)(p - st->map);
	while (done < v->mv_size) {
		ssize_t n = pread(st->fd, d + done, v->mv_size - done,
		    off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("store: read chunk at %lld: %s",
			    (long long)(off + (off_t)done),
			    n < 0 ? strerror(errno) : "end of file");
			return STORE_E_IO;
		}
		done += (size_t)n;
	}
	return 0;
}

int
chunk_decode(const void *val, const struct chunk_hdr *h, ZSTD_DCtx *dctx,
    void *out, size_t outcap)
{
	const uint8_t *payload = (const uint8_t *)val + FORMAT_CHUNK_HDR_BYTES;
	size_t n;

	if (outcap < h->raw_len)
		return STORE_E_INVALID;
	if (h->codec == FORMAT_CODEC_RAW) {
		memcpy(out, payload, h->raw_len);
		return 0;
	}
	n = ZSTD_decompressDCtx(dctx, out, h->raw_len, payload, h->stored_len);
	if (ZSTD_isError(n) || n != h->raw_len)
		return STORE_E_CORRUPT;
	return 0;
}

void
chunk_release(struct store *st)
{
	ZSTD_freeCCtx(st->cctx);
	st->cctx = NULL;
	free(st->scratch);
	st->scratch = NULL;
	st->scratch_cap = 0;
}

static int
scratch_reserve(struct store *st, size_t need)
{
	uint8_t *p;

	if (st->scratch_cap >= need)
		return 0;
	p = realloc(st->scratch, need);
	if (p == NULL)
		return STORE_E_NOMEM;
	st->scratch = p;
	st->scratch_cap = need;
	return 0;
}

/* Whether the sampled slices of a chunk say zstd is worth trying on it. */
static bool
chunk_probe(struct store *st, const uint8_t *raw, size_t len)
{
	size_t in = 0, out = 0, n;

	if (len < CHUNK_PROBE_MIN_BYTES)
		return true;
	for (size_t i = 0; i < CHUNK_PROBE_SLICES; i++) {
		/* Output room of one slice: a slice that does not fit is raw. */
		n = ZSTD_compressCCtx(st->cctx, st->probe, sizeof(st->probe),
		    raw + len / CHUNK_PROBE_SLICES * i, CHUNK_PROBE_SLICE_BYTES, 1);
		in += CHUNK_PROBE_SLICE_BYTES;
		out += ZSTD_isError(n) ? CHUNK_PROBE_SLICE_BYTES : n;
	}
	return out <= in - (in >> CHUNK_PROBE_SAVING_SHIFT);
}

/*
 * Compresses into scratch after the header. Returns the payload length, or
 * 0 when the chunk should stay raw (the probe or zstd failed, or zstd saved
 * too little).
 */
static size_t
chunk_try_compress(struct store *st, const void *raw, size_t len)
{
	size_t bound = ZSTD_compressBound(len), n;

	if (len == 0)
		return 0;
	if (st->cctx == NULL) {
		st->cctx = ZSTD_createCCtx();
		if (st->cctx == NULL)
			return 0;
	}
	if (!chunk_probe(st, raw, len) ||
	    scratch_reserve(st, FORMAT_CHUNK_HDR_BYTES + bound) != 0)
		return 0;
	n = ZSTD_compressCCtx(st->cctx, st->scratch + FORMAT_CHUNK_HDR_BYTES,
	    bound, raw, len, st->zstd_level);
	if (ZSTD_isError(n) || n > len - (len >> CHUNK_MIN_SAVING_SHIFT))
		return 0;
	return n;
}

int
chunk_encode(struct store *st, const void *raw, size_t len, bool compress,
    const uint8_t **enc, size_t *enclen)
{
	size_t n = 0;
	int rc;

	*enc = NULL;
	*enclen = 0;
	if (len > FORMAT_CHUNK_RAW_LIMIT)
		return STORE_E_INVALID;
	if (compress)
		n = chunk_try_compress(st, raw, len);
	if (n > 0) {
		chunk_write_hdr(st->scratch, FORMAT_CODEC_ZSTD, len,
		    st->scratch + FORMAT_CHUNK_HDR_BYTES, n);
	} else {
		rc = scratch_reserve(st, FORMAT_CHUNK_HDR_BYTES + len);
		if (rc != 0)
			return rc;
		if (len > 0)
			memcpy(st->scratch + FORMAT_CHUNK_HDR_BYTES, raw, len);
		chunk_write_hdr(st->scratch, FORMAT_CODEC_RAW, len,
		    st->scratch + FORMAT_CHUNK_HDR_BYTES, len);
		n = len;
	}
	*enc = st->scratch;
	*enclen = FORMAT_CHUNK_HDR_BYTES + n;
	return 0;
}

int
chunk_put(struct store_wtxn *w, uint64_t set, uint64_t off, const void *raw,
    size_t len, bool compress, size_t *stored)
{
	uint8_t key[FORMAT_CHUNK_KEY_BYTES];
	MDB_val k = { sizeof(key), key }, v;
	size_t n = 0;
	int rc;

	*stored = 0;
	if (len == 0 || len > FORMAT_CHUNK_RAW_MAX)
		return STORE_E_INVALID;
	chunk_key(key, set, off);
	if (compress)
		n = chunk_try_compress(w->st, raw, len);
	v.mv_size = FORMAT_CHUNK_HDR_BYTES + (n > 0 ? n : len);
	rc = mdb_put(w->txn, w->st->dbi[DBI_CHUNKS], &k, &v, MDB_RESERVE);
	if (rc != 0)
		return store_mdb_error(rc, "chunk put");
	/* Raw payloads are copied once, straight into the reserved value. */
	if (n > 0) {
		memcpy((uint8_t *)v.mv_data + FORMAT_CHUNK_HDR_BYTES,
		    w->st->scratch + FORMAT_CHUNK_HDR_BYTES, n);
		chunk_write_hdr(v.mv_data, FORMAT_CODEC_ZSTD, len,
		    (uint8_t *)v.mv_data + FORMAT_CHUNK_HDR_BYTES, n);
	} else {
		n = len;
		memcpy((uint8_t *)v.mv_data + FORMAT_CHUNK_HDR_BYTES, raw, len);
		chunk_write_hdr(v.mv_data, FORMAT_CODEC_RAW, len,
		    (uint8_t *)v.mv_data + FORMAT_CHUNK_HDR_BYTES, len);
	}
	*stored = n;
	return 0;
}

int
chunk_set_delete(struct store_wtxn *w, uint64_t set)
{
	uint8_t key[FORMAT_CHUNK_KEY_BYTES];
	MDB_val k = { sizeof(key), key }, v;
	MDB_cursor *c = NULL;
	int rc;

	chunk_key(key, set, 0);
	rc = mdb_cursor_open(w->txn, w->st->dbi[DBI_CHUNKS], &c);
	if (rc != 0)
		return store_mdb_error(rc, "cursor");
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size != FORMAT_CHUNK_KEY_BYTES ||
		    format_get_be64(k.mv_data) != set)
			break;
		rc = mdb_cursor_del(c, 0);
		if (rc != 0)
			break;
		chunk_unmap(w->st, &v);
		/* After a delete LMDB's MDB_NEXT yields the following item. */
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	return store_mdb_error(rc, "chunk delete");
}
