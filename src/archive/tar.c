/*
 * ustar header encoding and a streaming writer that keeps each entry's
 * data equal to the size its header declared. Field layout: POSIX.1-2001,
 * pax "ustar Interchange Format"; base-256 sizes: GNU tar's "numeric
 * extension" (the field's first byte 0x80, the value big-endian in the
 * other 11 bytes).
 */
#include "config.h"

#include <string.h>

#include "berth/tar.h"

/* Byte offsets and lengths of the ustar header fields. */
#define F_NAME          0
#define F_MODE          100
#define F_MODE_LEN      8
#define F_UID           108
#define F_GID           116
#define F_ID_LEN        8
#define F_SIZE          124
#define F_SIZE_LEN      12
#define F_MTIME         136
#define F_MTIME_LEN     12
#define F_CHKSUM        148
#define F_CHKSUM_LEN    8
#define F_TYPE          156
#define F_MAGIC         257     /* "ustar\0" then version "00" */
#define F_DEVMAJOR      329
#define F_DEVMINOR      337
#define F_DEV_LEN       8
#define F_PREFIX        345

static const uint8_t zero_block[TAR_BLOCK_BYTES];

/* len-1 zero-padded octal digits and a NUL; the caller checked the range. */
static void
put_octal(uint8_t *field, size_t len, uint64_t v)
{
	field[len - 1] = '\0';
	for (size_t i = len - 1; i > 0; i--) {
		field[i - 1] = (uint8_t)('0' + (v & 7));
		v >>= 3;
	}
}

/* GNU base-256: marker bit in the first byte, big-endian value after it. */
static void
put_base256(uint8_t *field, size_t len, uint64_t v)
{
	memset(field, 0, len);
	field[0] = 0x80;
	for (size_t i = len - 1; i > 0 && v != 0; i--) {
		field[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

/*
 * Splits name at a '/' so that the part before fits the prefix field and
 * the part after the name field. Of the places that work, the first is
 * taken: the longest name part, as GNU tar does. Returns the index of the
 * '/' or -1.
 */
static long
split_name(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < len && i <= TAR_PREFIX_MAX_BYTES; i++) {
		if (name[i] != '/')
			continue;
		if (i == 0)
			continue;       /* an empty prefix would lose the '/' */
		if (len - i - 1 >= 1 && len - i - 1 <= TAR_NAME_MAX_BYTES)
			return (long)i;
	}
	return -1;
}

int
tar_header_encode(const struct tar_entry *e, uint8_t out[TAR_BLOCK_BYTES])
{
	unsigned sum = 0;
	long cut;

	memset(out, 0, TAR_BLOCK_BYTES);
	if (e->name == NULL || e->namelen == 0 ||
	    memchr(e->name, '\0', e->namelen) != NULL)
		return TAR_E_NAME;
	if (e->mode > TAR_MODE_MAX || e->mtime > TAR_MTIME_MAX ||
	    (e->type != TAR_TYPE_FILE && e->type != TAR_TYPE_DIR) ||
	    (e->type == TAR_TYPE_DIR && e->size != 0))
		return TAR_E_FIELD;
	if (e->namelen <= TAR_NAME_MAX_BYTES) {
		memcpy(out + F_NAME, e->name, e->namelen);
	} else {
		cut = split_name(e->name, e->namelen);
		if (cut < 0)
			return TAR_E_NAME;
		memcpy(out + F_PREFIX, e->name, (size_t)cut);
		memcpy(out + F_NAME, e->name + cut + 1,
		    e->namelen - (size_t)cut - 1);
	}
	put_octal(out + F_MODE, F_MODE_LEN, e->mode);
	put_octal(out + F_UID, F_ID_LEN, 0);
	put_octal(out + F_GID, F_ID_LEN, 0);
	if (e->size <= TAR_SIZE_OCTAL_MAX)
		put_octal(out + F_SIZE, F_SIZE_LEN, e->size);
	else
		put_base256(out + F_SIZE, F_SIZE_LEN, e->size);
	put_octal(out + F_MTIME, F_MTIME_LEN, e->mtime);
	out[F_TYPE] = (uint8_t)e->type;
	memcpy(out + F_MAGIC, "ustar\0" "00", 8);
	put_octal(out + F_DEVMAJOR, F_DEV_LEN, 0);
	put_octal(out + F_DEVMINOR, F_DEV_LEN, 0);
	/* The checksum is summed with its own field read as spaces. */
	memset(out + F_CHKSUM, ' ', F_CHKSUM_LEN);
	for (size_t i = 0; i < TAR_BLOCK_BYTES; i++)
		sum += out[i];
	/* Six octal digits, a NUL, a space: the form every tar writes. */
	put_octal(out + F_CHKSUM, 7, sum);
	out[F_CHKSUM + 7] = ' ';
	return 0;
}

void
tar_writer_init(struct tar_writer *w, tar_sink_fn *sink, void *arg)
{
	memset(w, 0, sizeof(*w));
	w->sink = sink;
	w->arg = arg;
}

static int
emit(struct tar_writer *w, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	if (w->sink(w->arg, buf, len) != 0) {
		w->failed = TAR_E_WRITE;
		return w->failed;
	}
	w->total += len;
	return 0;
}

int
tar_writer_begin(struct tar_writer *w, const struct tar_entry *e)
{
	uint8_t hdr[TAR_BLOCK_BYTES];
	int rc;

	if (w->failed != 0)
		return w->failed;
	if (w->open || w->finished)
		return TAR_E_STATE;
	rc = tar_header_encode(e, hdr);
	if (rc != 0)
		return rc;
	rc = emit(w, hdr, sizeof(hdr));
	if (rc != 0)
		return rc;
	w->open = true;
	w->left = e->size;
	return 0;
}

int
tar_writer_data(struct tar_writer *w, const void *buf, size_t len)
{
	if (w->failed != 0)
		return w->failed;
	if (!w->open)
		return TAR_E_STATE;
	if (len > w->left) {
		w->failed = TAR_E_SIZE;
		return w->failed;
	}
	w->left -= len;
	return emit(w, buf, len);
}

int
tar_writer_end(struct tar_writer *w)
{
	size_t pad;
	int rc;

	if (w->failed != 0)
		return w->failed;
	if (!w->open)
		return TAR_E_STATE;
	if (w->left != 0) {
		w->failed = TAR_E_SIZE;
		return w->failed;
	}
	/* Headers are whole blocks, so the data ends where total says. */
	pad = (size_t)((TAR_BLOCK_BYTES - w->total % TAR_BLOCK_BYTES) %
	    TAR_BLOCK_BYTES);
	rc = emit(w, zero_block, pad);
	if (rc != 0)
		return rc;
	w->open = false;
	return 0;
}

int
tar_writer_add(struct tar_writer *w, const struct tar_entry *e,
    const void *data)
{
	int rc;

	if (e->size > SIZE_MAX)
		return TAR_E_SIZE;
	rc = tar_writer_begin(w, e);
	if (rc == 0 && e->size > 0)
		rc = tar_writer_data(w, data, (size_t)e->size);
	if (rc == 0)
		rc = tar_writer_end(w);
	return rc;
}

int
tar_writer_finish(struct tar_writer *w)
{
	int rc;

	if (w->failed != 0)
		return w->failed;
	if (w->open || w->finished)
		return TAR_E_STATE;
	rc = emit(w, zero_block, sizeof(zero_block));
	if (rc == 0)
		rc = emit(w, zero_block, sizeof(zero_block));
	if (rc == 0)
		w->finished = true;
	return rc;
}

const char *
tar_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "success";
	case TAR_E_NAME:
		return "name does not fit a ustar header";
	case TAR_E_FIELD:
		return "header field out of range";
	case TAR_E_SIZE:
		return "entry data does not match its declared size";
	case TAR_E_STATE:
		return "tar writer call out of order";
	case TAR_E_WRITE:
		return "write failed";
	default:
		return "unknown tar error";
	}
}
