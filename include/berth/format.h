/*
 * berth on-disk format, version 1.
 *
 * This header and docs/FORMAT.md describe the same thing and change together.
 * Everything here is shared by berthd and the tools: database names, key
 * layouts, record layouts, the chunk header, magic and version.
 *
 * All multi-byte integers inside keys are big-endian, so that LMDB's
 * memcmp ordering is numeric ordering. All multi-byte integers inside values
 * are little-endian. Records are encoded and decoded through the helpers
 * below, never by casting a struct over LMDB memory.
 */
#ifndef BERTH_FORMAT_H
#define BERTH_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FORMAT_MAGIC            "BERTHDB1"      /* 8 bytes, no NUL stored */
#define FORMAT_MAGIC_BYTES      8
#define FORMAT_VERSION          1u              /* what this build writes */
#define FORMAT_VERSION_MIN      1u              /* oldest it can upgrade from */

/* LMDB named databases. */
#define FORMAT_DB_META          "meta"
#define FORMAT_DB_BLOBS         "blobs"
#define FORMAT_DB_CHUNKS        "chunks"
#define FORMAT_DB_UPLOADS       "uploads"
#define FORMAT_DB_MANIFESTS     "manifests"
#define FORMAT_DB_REPOS         "repos"
#define FORMAT_DB_LINKS         "links"
#define FORMAT_DB_RLINKS        "rlinks"
#define FORMAT_DB_TAGS          "tags"
#define FORMAT_DB_REFS          "refs"
#define FORMAT_DB_REFERRERS     "referrers"
#define FORMAT_DB_COUNT         11

/* meta keys (ASCII, no NUL). */
#define FORMAT_META_HEADER      "header"        /* struct format_header */
#define FORMAT_META_NEXT_SET    "next-set"      /* u64 LE: next chunk set id */

/*
 * meta "header" value: magic[8], u32 version, u32 flags, u64 created.
 * Format 1 defines no flags: a nonzero value is refused as a newer format.
 */
#define FORMAT_HEADER_BYTES     24

/* Digest key: one algorithm byte, then the raw hash. */
#define FORMAT_DIGEST_SHA256    1u
#define FORMAT_HASH_BYTES       32
#define FORMAT_DIGEST_KEY_BYTES (1 + FORMAT_HASH_BYTES)

/* Longest repository name and tag accepted as key material. */
#define FORMAT_REPO_MAX_BYTES   255
#define FORMAT_TAG_MAX_BYTES    128
#define FORMAT_MEDIA_TYPE_MAX_BYTES 255

/*
 * blobs: digest key (33) -> blob record (48 bytes):
 *   u64 size        raw length of the blob
 *   u64 stored      bytes of chunk payload on disk (after compression)
 *   u64 set         chunk set id holding the blob's chunks
 *   u64 created     unix seconds when an upload of it last finished
 *                   (first, deduplicated or healing): starts GC's grace
 *   u32 nchunks     number of chunks in the set
 *   u32 flags       FORMAT_BLOB_F_*
 *   u64 reserved    0
 */
#define FORMAT_BLOB_BYTES       48
#define FORMAT_BLOB_F_QUARANTINE 0x1u   /* moved out of service by fsck */
#define FORMAT_BLOB_F_KNOWN     FORMAT_BLOB_F_QUARANTINE

/*
 * chunks: u64 BE set id, u64 BE raw offset of the chunk in its blob (16)
 *      -> chunk header (16) + payload (stored length bytes).
 *
 * Chunk header:
 *   u32 word0       bits 0..23 raw length, bits 24..31 codec
 *   u32 stored      payload length in bytes
 *   u64 checksum    XXH3-64 of the payload, seeded with the first 8 header
 *                   bytes (word0 | stored << 32), so lengths and codec are
 *                   covered too
 *
 * A full chunk holds FORMAT_CHUNK_RAW_MAX raw bytes. With a raw payload the
 * value is then 1 MiB - 16 bytes, which with LMDB's 16-byte page header fills
 * exactly 256 overflow pages of 4 KiB.
 */
#define FORMAT_CHUNK_KEY_BYTES  16
#define FORMAT_CHUNK_HDR_BYTES  16
#define FORMAT_CHUNK_RAW_MAX    ((1u << 20) - 32u)
#define FORMAT_CHUNK_RAW_LIMIT  ((1u << 24) - 1u)  /* what word0 can hold */
#define FORMAT_CODEC_RAW        0u
#define FORMAT_CODEC_ZSTD       1u

/*
 * uploads: 16 random bytes (upload id) -> upload record:
 *   u64 set         chunk set id the upload writes into
 *   u64 offset      bytes committed so far
 *   u64 created     unix seconds
 *   u64 updated     unix seconds of the last commit
 *   u32 flags       FORMAT_UPLOAD_F_*
 *   u32 nchunks     chunks written so far
 *   u64 stored      payload bytes of those chunks on disk
 *   sha256 state    FORMAT_SHA256_STATE_BYTES (see below)
 *   u16 repo length, repo bytes
 *
 * sha256 state: u32 h[8], u64 total length in bits, u32 n (bytes buffered,
 * 0..63), 64 buffered bytes (only the first n are meaningful, the rest 0).
 */
#define FORMAT_UPLOAD_ID_BYTES  16
#define FORMAT_SHA256_STATE_BYTES (32 + 8 + 4 + 64)
#define FORMAT_UPLOAD_FIXED_BYTES (48 + FORMAT_SHA256_STATE_BYTES + 2)
#define FORMAT_UPLOAD_F_NOCOMPRESS 0x1u /* first bytes were gzip/zstd */
#define FORMAT_UPLOAD_F_SNIFFED    0x2u /* the decision above was made */
#define FORMAT_UPLOAD_F_KNOWN      (FORMAT_UPLOAD_F_NOCOMPRESS | FORMAT_UPLOAD_F_SNIFFED)

/*
 * manifests: digest key (33) -> manifest record:
 *   u64 created     unix seconds
 *   u16 media type length (1..255), media type bytes
 *   chunk header (16) + payload: the exact manifest bytes, raw or zstd,
 *   with the blob chunk header and checksum but a raw length of up to
 *   FORMAT_CHUNK_RAW_LIMIT; zstd is always tried.
 */
#define FORMAT_MANIFEST_FIXED_BYTES (8 + 2)

/* repos: repository name -> u64 created. */
#define FORMAT_REPO_BYTES       8

/*
 * links: repo, 0x00, kind (1), digest key (33) -> u64 unix seconds of the
 *        latest link (re-linking rewrites it).
 * rlinks: kind (1), digest key (33), repo -> empty.
 * Every links record has its rlinks mirror and the reverse.
 */
#define FORMAT_LINK_BLOB        'b'
#define FORMAT_LINK_MANIFEST    'm'

/* tags: repo, 0x00, tag -> digest key (33), u64 updated. */
#define FORMAT_TAG_BYTES        (FORMAT_DIGEST_KEY_BYTES + 8)

/*
 * refs: source manifest digest key (33), kind (1), target digest key (33)
 *    -> u64 size declared by the descriptor.
 */
#define FORMAT_REF_CONFIG       1u
#define FORMAT_REF_LAYER        2u
#define FORMAT_REF_MANIFEST     3u
#define FORMAT_REF_SUBJECT      4u
#define FORMAT_REF_KEY_BYTES    (2 * FORMAT_DIGEST_KEY_BYTES + 1)

/*
 * referrers: repo, 0x00, subject digest key (33), referrer digest key (33)
 *    -> u64 size, u16 media type length, media type,
 *       u16 artifact type length, artifact type.
 */

static inline void
format_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void
format_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void
format_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void
format_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint16_t
format_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t
format_get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t
format_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t
format_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

#endif /* BERTH_FORMAT_H */
