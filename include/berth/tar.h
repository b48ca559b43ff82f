/*
 * A streaming writer of POSIX ustar archives (POSIX.1-2001 "pax" section
 * "ustar Interchange Format"), for archives that other tools read: every
 * header is a plain ustar header, names longer than 100 bytes are split
 * into the prefix and name fields, and sizes above the 11 octal digits a
 * ustar size field holds (8 GiB - 1) use the base-256 encoding of GNU tar
 * and star, which GNU tar, Go's archive/tar (docker, podman, skopeo) and
 * libarchive all read.
 *
 * The writer never buffers entry data: the caller declares an entry's size
 * in its header, then streams exactly that many bytes. The writer counts
 * them, refuses more, and refuses to end the entry on fewer, so a header
 * can never disagree with the data behind it.
 *
 * All functions return 0 or a negative TAR_E_* code; tar_strerror() names
 * it.
 */
#ifndef BERTH_TAR_H
#define BERTH_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAR_E_NAME              (-300)  /* name empty, has a NUL, or does not fit */
#define TAR_E_FIELD             (-301)  /* mode or mtime too large for its field */
#define TAR_E_SIZE              (-302)  /* data length differs from the header */
#define TAR_E_STATE             (-303)  /* call out of order */
#define TAR_E_WRITE             (-304)  /* the sink failed */
#define TAR_E_HEADER            (-305)  /* bad checksum, magic or number field */
#define TAR_E_TRUNCATED         (-306)  /* the input ended inside the archive */
#define TAR_E_READ              (-307)  /* the source failed */
#define TAR_E_PAX               (-308)  /* malformed pax or GNU long-name record */
#define TAR_E_LIMIT             (-309)  /* a name or record exceeds its limit */

#define TAR_BLOCK_BYTES         512
#define TAR_NAME_MAX_BYTES      100     /* ustar name field */
#define TAR_PREFIX_MAX_BYTES    155     /* ustar prefix field */
/* Largest size the 12-byte field holds in octal: 11 digits and a NUL. */
#define TAR_SIZE_OCTAL_MAX      UINT64_C(077777777777)
/* mode (8 bytes) and mtime (12 bytes) are always octal here. */
#define TAR_MODE_MAX            07777777u
#define TAR_MTIME_MAX           UINT64_C(077777777777)

enum tar_type {
	TAR_TYPE_FILE = '0',
	TAR_TYPE_HARDLINK = '1',
	TAR_TYPE_SYMLINK = '2',
	TAR_TYPE_DIR = '5',
};

/*
 * One entry's header. name is namelen bytes, need not be NUL-terminated,
 * and is stored as given (a directory's name conventionally ends in '/').
 * uid, gid are always 0 and uname, gname empty: the archive does not
 * depend on who wrote it.
 */
struct tar_entry {
	const char *name;
	size_t namelen;
	enum tar_type type;
	uint32_t mode;          /* permission bits, e.g. 0644 */
	uint64_t mtime;         /* unix seconds */
	uint64_t size;          /* data bytes; 0 for a directory */
};

/*
 * Encodes e into one 512-byte header block in out (fully overwritten,
 * also on error). A name of at most 100 bytes goes into the name field;
 * a longer one is split at a '/' into a prefix of at most 155 bytes and
 * a name of 1..100 bytes, else TAR_E_NAME. Returns 0, TAR_E_NAME or
 * TAR_E_FIELD. The same entry always gives the same bytes.
 */
int tar_header_encode(const struct tar_entry *e,
    uint8_t out[TAR_BLOCK_BYTES]);

/*
 * The sink: consumes len bytes of archive, returns 0 or nonzero to fail
 * (the writer then answers TAR_E_WRITE and stays failed).
 */
typedef int tar_sink_fn(void *arg, const void *buf, size_t len);

/* Caller-owned writer state; no resources to free. */
struct tar_writer {
	tar_sink_fn *sink;
	void *arg;
	uint64_t left;          /* data bytes the open entry still expects */
	uint64_t total;         /* archive bytes passed to the sink */
	bool open;              /* an entry's header was written, not ended */
	bool finished;
	int failed;             /* first error; every later call returns it */
};

void tar_writer_init(struct tar_writer *w, tar_sink_fn *sink, void *arg);

/* Writes e's header; e->size data bytes must follow before the next entry. */
int tar_writer_begin(struct tar_writer *w, const struct tar_entry *e);

/* Appends data to the open entry; more than its declared size is TAR_E_SIZE. */
int tar_writer_data(struct tar_writer *w, const void *buf, size_t len);

/*
 * Ends the open entry: TAR_E_SIZE if fewer bytes than declared were
 * written, else pads it with zeros to a whole block.
 */
int tar_writer_end(struct tar_writer *w);

/* A whole entry whose data is in memory: begin, data, end. */
int tar_writer_add(struct tar_writer *w, const struct tar_entry *e,
    const void *data);

/* Writes the end-of-archive marker: two zero blocks. */
int tar_writer_finish(struct tar_writer *w);

const char *tar_strerror(int rc);

/* ---- reading ------------------------------------------------------------
 *
 * A streaming reader of untrusted archives: POSIX ustar (name and prefix),
 * GNU tar's "ustar  " headers and base-256 numbers, pax extended headers
 * ('x' for the next entry, 'g' checked and otherwise ignored; the keys
 * "path" and "size" are applied, others skipped) and GNU long names ('L';
 * 'K' long link names are read and dropped). Every header's checksum is
 * verified (the unsigned sum, or the signed one some old tars wrote); a
 * header without the ustar magic (v7) is refused. Entries whose type is
 * not a file or directory are returned with their type so the caller can
 * refuse them by name; their data, if any, is skipped like any other.
 *
 * Bounds: a path (from any source) is at most TAR_PATH_MAX_BYTES, a pax
 * or long-name record at most TAR_META_MAX_BYTES; the reader allocates
 * nothing an entry declares beyond those. Sizes above INT64_MAX are
 * refused. The archive ends at the first all-zero header block; input
 * that ends before one is TAR_E_TRUNCATED.
 */
#define TAR_PATH_MAX_BYTES      4096
#define TAR_META_MAX_BYTES      ((size_t)64 << 10)

/*
 * The source: reads up to len bytes into buf, sets *nread (0 only at the
 * end of the input) and returns 0, or nonzero on failure (TAR_E_READ).
 */
typedef int tar_source_fn(void *arg, void *buf, size_t len, size_t *nread);

/* One entry as read. Valid until the next tar_reader_next(). */
struct tar_header {
	char name[TAR_PATH_MAX_BYTES + 1];      /* NUL-terminated; no NUL inside */
	size_t namelen;
	char type;              /* TAR_TYPE_FILE ('0', also for '\0'), '5', ... */
	uint32_t mode;
	uint64_t size;          /* data bytes that follow */
	uint64_t offset;        /* archive offset of the entry's header */
};

/* Caller-owned reader state; free with tar_reader_free(). */
struct tar_reader {
	tar_source_fn *source;
	void *arg;
	uint64_t offset;        /* archive bytes consumed */
	uint64_t left;          /* data bytes of the current entry not read */
	uint64_t pad;           /* padding bytes after them */
	bool ended;             /* the end-of-archive block was read */
	int failed;             /* first error; every later call returns it */
	char *meta;             /* scratch for pax and long-name records */
};

void tar_reader_init(struct tar_reader *r, tar_source_fn *source, void *arg);
void tar_reader_free(struct tar_reader *r);

/*
 * Skips what is left of the current entry and reads the next header into
 * *h. Returns 0 with an entry, 1 at the end of the archive, or a negative
 * TAR_E_* code (h->name then holds the name of the offending entry if it
 * got that far, else "").
 */
int tar_reader_next(struct tar_reader *r, struct tar_header *h);

/*
 * Reads up to len data bytes of the current entry into buf; *nread is 0
 * once the entry's data is consumed. A source that ends inside the data
 * is TAR_E_TRUNCATED.
 */
int tar_reader_read(struct tar_reader *r, void *buf, size_t len,
    size_t *nread);

/*
 * Checks an entry name of len bytes for use as a path inside the archive
 * and writes its canonical form (no "./" components, no repeated or
 * trailing '/') with a NUL into out (size >= len + 1), *outlen its length.
 * Refuses (TAR_E_NAME) an empty name, a NUL, an absolute path and any ".."
 * component; "." alone gives "".
 */
int tar_path_clean(const char *name, size_t len, char *out, size_t *outlen);

#endif /* BERTH_TAR_H */
