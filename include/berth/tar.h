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

#endif /* BERTH_TAR_H */
