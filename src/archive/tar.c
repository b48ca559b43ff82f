/*
 * ustar header encoding and a streaming writer that keeps each entry's
 * data equal to the size its header declared, and a streaming reader of
 * untrusted archives that never trusts a declared length beyond its named
 * limit. Field layout: POSIX.1-2001, pax "ustar Interchange Format" and
 * "pax Extended Header"; base-256 sizes: GNU tar's "numeric extension"
 * (the field's first byte 0x80, the value big-endian in the other 11
 * bytes); long names: GNU tar's 'L' entries.
 */
#include "config.h"

#include <stdlib.h>
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
#define F_NAME_LEN      100
#define F_PREFIX_LEN    155
#define F_VERSION       263
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
	case TAR_E_HEADER:
		return "bad tar header (checksum, magic or number field)";
	case TAR_E_TRUNCATED:
		return "archive truncated";
	case TAR_E_READ:
		return "read failed";
	case TAR_E_PAX:
		return "malformed pax or long-name record";
	case TAR_E_LIMIT:
		return "tar name or record too long";
	default:
		return "unknown tar error";
	}
}

/* ---- reader ------------------------------------------------------------- */

/* Consecutive pax/long-name records allowed before one real header. */
#define TAR_META_CHAIN_MAX      8
/* Decimal digits of a pax record length or size value. */
#define PAX_DIGITS_MAX          19

void
tar_reader_init(struct tar_reader *r, tar_source_fn *source, void *arg)
{
	memset(r, 0, sizeof(*r));
	r->source = source;
	r->arg = arg;
}

void
tar_reader_free(struct tar_reader *r)
{
	free(r->meta);
	r->meta = NULL;
}

static int
reader_fail(struct tar_reader *r, int rc)
{
	if (r->failed == 0)
		r->failed = rc;
	return r->failed;
}

/* Reads exactly len bytes; the input ending first is TAR_E_TRUNCATED. */
static int
read_full(struct tar_reader *r, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t n;

	while (len > 0) {
		n = 0;
		if (r->source(r->arg, p, len, &n) != 0)
			return reader_fail(r, TAR_E_READ);
		if (n == 0)
			return reader_fail(r, TAR_E_TRUNCATED);
		if (n > len)
			return reader_fail(r, TAR_E_READ);
		p += n;
		len -= n;
		r->offset += n;
	}
	return 0;
}

static int
skip(struct tar_reader *r, uint64_t n)
{
	uint8_t buf[4096];
	int rc;

	while (n > 0) {
		size_t step = n < sizeof(buf) ? (size_t)n : sizeof(buf);

		rc = read_full(r, buf, step);
		if (rc != 0)
			return rc;
		n -= step;
	}
	return 0;
}

/*
 * A numeric header field: octal digits (leading spaces allowed, ended by
 * NUL or space, only NULs and spaces after), or GNU base-256 when the
 * first byte has its high bit set. Negative base-256 values and values
 * above max are refused.
 */
static int
parse_number(const uint8_t *f, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	if (f[0] & 0x80) {
		if (f[0] & 0x40)
			return TAR_E_HEADER;    /* negative */
		v = f[0] & 0x3f;
		for (i = 1; i < len; i++) {
			if (v > (UINT64_MAX >> 8))
				return TAR_E_HEADER;
			v = (v << 8) | f[i];
		}
		if (v > max)
			return TAR_E_HEADER;
		*out = v;
		return 0;
	}
	while (i < len && f[i] == ' ')
		i++;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v > (max >> 3))
			return TAR_E_HEADER;
		v = (v << 3) | (uint64_t)(f[i] - '0');
	}
	if (v > max)
		return TAR_E_HEADER;
	for (; i < len; i++)
		if (f[i] != '\0' && f[i] != ' ')
			return TAR_E_HEADER;
	*out = v;
	return 0;
}

/* A decimal number of a pax record: 1..PAX_DIGITS_MAX digits, <= max. */
static int
parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > PAX_DIGITS_MAX)
		return TAR_E_PAX;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return TAR_E_PAX;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return TAR_E_PAX;
	*out = v;
	return 0;
}

static bool
checksum_ok(const uint8_t *b)
{
	uint64_t want;
	unsigned usum = 0;
	int ssum = 0;

	if (parse_number(b + F_CHKSUM, F_CHKSUM_LEN, 07777777, &want) != 0)
		return false;
	for (size_t i = 0; i < TAR_BLOCK_BYTES; i++) {
		uint8_t c = (i >= F_CHKSUM && i < F_CHKSUM + F_CHKSUM_LEN) ?
		    ' ' : b[i];

		usum += c;
		ssum += (signed char)c;
	}
	return want == usum || (ssum >= 0 && want == (uint64_t)ssum);
}

/* What pax and long-name records set for the next entry. */
struct pending {
	bool has_path, has_size;
	size_t pathlen;
	uint64_t size;
};

static int
set_path(struct tar_header *h, struct pending *pd, const char *p, size_t len)
{
	if (len > TAR_PATH_MAX_BYTES)
		return TAR_E_LIMIT;
	if (memchr(p, '\0', len) != NULL)
		return TAR_E_NAME;
	memcpy(h->name, p, len);
	h->name[len] = '\0';
	h->namelen = len;
	pd->has_path = true;
	pd->pathlen = len;
	return 0;
}

/*
 * Pax records, "LEN key=value\n" with LEN counting the whole record
 * (POSIX.1-2001 pax "pax Extended Header File Format"). apply is false for
 * a global ('g') header: checked, not applied.
 */
static int
parse_pax(struct tar_header *h, struct pending *pd, const char *p, size_t len,
    bool apply)
{
	size_t at = 0;

	while (at < len) {
		const char *rec = p + at, *sp, *eq;
		size_t avail = len - at;
		uint64_t rlen;
		int rc;

		if (rec[0] == '\0') {
			/* Trailing NUL padding some writers leave. */
			for (size_t i = at; i < len; i++)
				if (p[i] != '\0')
					return TAR_E_PAX;
			return 0;
		}
		sp = memchr(rec, ' ', avail < PAX_DIGITS_MAX + 1 ? avail :
		    PAX_DIGITS_MAX + 1);
		if (sp == NULL || parse_decimal(rec, (size_t)(sp - rec), avail,
		    &rlen) != 0 || rlen < (uint64_t)(sp - rec) + 3 ||
		    rec[rlen - 1] != '\n')
			return TAR_E_PAX;
		eq = memchr(sp + 1, '=', (size_t)(rec + rlen - 1 - (sp + 1)));
		if (eq == NULL || eq == sp + 1)
			return TAR_E_PAX;
		if (apply) {
			size_t klen = (size_t)(eq - (sp + 1));
			const char *v = eq + 1;
			size_t vlen = (size_t)(rec + rlen - 1 - v);

			if (klen == 4 && memcmp(sp + 1, "path", 4) == 0) {
				rc = set_path(h, pd, v, vlen);
				if (rc != 0)
					return rc;
			} else if (klen == 4 && memcmp(sp + 1, "size", 4) == 0) {
				if (parse_decimal(v, vlen, INT64_MAX,
				    &pd->size) != 0)
					return TAR_E_PAX;
				pd->has_size = true;
			}
		}
		at += (size_t)rlen;
	}
	return 0;
}

static size_t
field_len(const uint8_t *f, size_t max)
{
	const uint8_t *z = memchr(f, '\0', max);

	return z != NULL ? (size_t)(z - f) : max;
}

/* Reads a meta entry's data (size bytes) and its padding into r->meta. */
static int
read_meta(struct tar_reader *r, uint64_t size)
{
	int rc;

	if (size > TAR_META_MAX_BYTES)
		return reader_fail(r, TAR_E_LIMIT);
	if (r->meta == NULL) {
		r->meta = malloc(TAR_META_MAX_BYTES + 1);
		if (r->meta == NULL)
			return reader_fail(r, TAR_E_READ);
	}
	rc = read_full(r, r->meta, (size_t)size);
	if (rc == 0)
		rc = skip(r, (TAR_BLOCK_BYTES - size % TAR_BLOCK_BYTES) %
		    TAR_BLOCK_BYTES);
	return rc;
}

int
tar_reader_next(struct tar_reader *r, struct tar_header *h)
{
	uint8_t b[TAR_BLOCK_BYTES];
	struct pending pd = { .has_path = false };
	unsigned chain = 0;
	uint64_t size, mode;
	bool posix;
	int rc;

	h->name[0] = '\0';
	h->namelen = 0;
	if (r->failed != 0)
		return r->failed;
	if (r->ended)
		return 1;
	rc = skip(r, r->left + r->pad);
	if (rc != 0)
		return rc;
	r->left = r->pad = 0;
	for (;;) {
		h->offset = r->offset;
		rc = read_full(r, b, sizeof(b));
		if (rc != 0)
			return rc;
		if (memcmp(b, zero_block, sizeof(b)) == 0) {
			if (pd.has_path || pd.has_size || chain > 0)
				return reader_fail(r, TAR_E_TRUNCATED);
			r->ended = true;
			return 1;
		}
		if (!checksum_ok(b))
			return reader_fail(r, TAR_E_HEADER);
		if (memcmp(b + F_MAGIC, "ustar\0", 6) == 0 &&
		    memcmp(b + F_VERSION, "00", 2) == 0)
			posix = true;
		else if (memcmp(b + F_MAGIC, "ustar  \0", 8) == 0)
			posix = false;
		else
			return reader_fail(r, TAR_E_HEADER);
		if (parse_number(b + F_SIZE, F_SIZE_LEN, INT64_MAX, &size) != 0 ||
		    parse_number(b + F_MODE, F_MODE_LEN, TAR_MODE_MAX, &mode) != 0)
			return reader_fail(r, TAR_E_HEADER);
		switch (b[F_TYPE]) {
		case 'x':
		case 'g':
		case 'L':
		case 'K':
			if (++chain > TAR_META_CHAIN_MAX)
				return reader_fail(r, TAR_E_PAX);
			rc = read_meta(r, size);
			if (rc != 0)
				return rc;
			if (b[F_TYPE] == 'x' || b[F_TYPE] == 'g') {
				rc = parse_pax(h, &pd, r->meta, (size_t)size,
				    b[F_TYPE] == 'x');
			} else if (b[F_TYPE] == 'L') {
				size_t n = field_len((uint8_t *)r->meta,
				    (size_t)size);

				for (size_t i = n; i < size; i++)
					if (r->meta[i] != '\0')
						return reader_fail(r, TAR_E_NAME);
				rc = set_path(h, &pd, r->meta, n);
			}
			if (rc != 0)
				return reader_fail(r, rc);
			continue;
		default:
			break;
		}
		break;
	}
	if (!pd.has_path) {
		size_t nl = field_len(b + F_NAME, F_NAME_LEN);
		size_t pl = posix ? field_len(b + F_PREFIX, F_PREFIX_LEN) : 0;
		size_t at = 0;

		if (pl > 0) {
			memcpy(h->name, b + F_PREFIX, pl);
			h->name[pl] = '/';
			at = pl + 1;
		}
		memcpy(h->name + at, b + F_NAME, nl);
		h->namelen = at + nl;
		h->name[h->namelen] = '\0';
	}
	if (pd.has_size)
		size = pd.size;
	h->type = b[F_TYPE] == '\0' ? (char)TAR_TYPE_FILE : (char)b[F_TYPE];
	h->mode = (uint32_t)mode;
	h->size = size;
	r->left = size;
	r->pad = (TAR_BLOCK_BYTES - size % TAR_BLOCK_BYTES) % TAR_BLOCK_BYTES;
	return 0;
}

int
tar_reader_read(struct tar_reader *r, void *buf, size_t len, size_t *nread)
{
	size_t n = 0, want;

	*nread = 0;
	if (r->failed != 0)
		return r->failed;
	if (r->left == 0 || len == 0)
		return 0;
	want = r->left < len ? (size_t)r->left : len;
	if (r->source(r->arg, buf, want, &n) != 0)
		return reader_fail(r, TAR_E_READ);
	if (n == 0)
		return reader_fail(r, TAR_E_TRUNCATED);
	if (n > want)
		return reader_fail(r, TAR_E_READ);
	r->left -= n;
	r->offset += n;
	*nread = n;
	return 0;
}

int
tar_path_clean(const char *name, size_t len, char *out, size_t *outlen)
{
	size_t i = 0, o = 0;

	*outlen = 0;
	if (len == 0 || memchr(name, '\0', len) != NULL || name[0] == '/')
		return TAR_E_NAME;
	while (i < len) {
		size_t start = i, clen;

		while (i < len && name[i] != '/')
			i++;
		clen = i - start;
		if (i < len)
			i++;
		if (clen == 0 || (clen == 1 && name[start] == '.'))
			continue;
		if (clen == 2 && name[start] == '.' && name[start + 1] == '.')
			return TAR_E_NAME;
		if (o > 0)
			out[o++] = '/';
		memcpy(out + o, name + start, clen);
		o += clen;
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}
