/*
 * The ustar header encoder and the streaming writer: field layout and
 * checksum, the prefix split of long names, base-256 sizes past 8 GiB,
 * byte-identical output for identical entries, and refusal of names and
 * data that do not fit; the reader: round trips with the writer (whole
 * and in 1-byte reads), pax, GNU long names and ustar prefixes, and
 * refusal of bad checksums, magic, numbers, pax records, over-long
 * records and truncated input; tar_path_clean's escapes.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "berth/tar.h"

#define S(x) x, strlen(x)

static struct tar_entry
file_entry(const char *name, uint64_t size)
{
	struct tar_entry e = { .name = name, .namelen = strlen(name),
	    .type = TAR_TYPE_FILE, .mode = 0644, .mtime = 0, .size = size };

	return e;
}

/* The checksum as a reader computes it: the field counted as spaces. */
static unsigned
checksum_of(const uint8_t *h)
{
	unsigned sum = 0;

	for (size_t i = 0; i < TAR_BLOCK_BYTES; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	return sum;
}

static uint64_t
octal_field(const uint8_t *f, size_t len)
{
	uint64_t v = 0;

	for (size_t i = 0; i < len && f[i] >= '0' && f[i] <= '7'; i++)
		v = v * 8 + (uint64_t)(f[i] - '0');
	return v;
}

static void
test_header_fields(void **state)
{
	struct tar_entry e = file_entry("manifest.json", 1234);
	uint8_t h[TAR_BLOCK_BYTES];

	(void)state;
	assert_int_equal(tar_header_encode(&e, h), 0);
	assert_memory_equal(h, "manifest.json", 14);   /* name, NUL-padded */
	assert_memory_equal(h + 100, "0000644", 8);     /* mode + NUL */
	assert_memory_equal(h + 108, "0000000", 8);     /* uid */
	assert_memory_equal(h + 116, "0000000", 8);     /* gid */
	assert_memory_equal(h + 124, "00000002322", 12); /* 1234 octal */
	assert_memory_equal(h + 136, "00000000000", 12); /* mtime 0 */
	assert_int_equal(h[156], '0');
	assert_memory_equal(h + 257, "ustar\0" "00", 8);
	/* uname and gname empty, no prefix. */
	for (size_t i = 265; i < 329; i++)
		assert_int_equal(h[i], 0);
	for (size_t i = 345; i < TAR_BLOCK_BYTES; i++)
		assert_int_equal(h[i], 0);
	/* Checksum: six octal digits, NUL, space. */
	assert_int_equal(h[154], '\0');
	assert_int_equal(h[155], ' ');
	assert_int_equal(octal_field(h + 148, 6), checksum_of(h));
}

static void
test_header_dir(void **state)
{
	struct tar_entry e = { .name = "blobs/sha256/", .namelen = 13,
	    .type = TAR_TYPE_DIR, .mode = 0755 };
	uint8_t h[TAR_BLOCK_BYTES];

	(void)state;
	assert_int_equal(tar_header_encode(&e, h), 0);
	assert_int_equal(h[156], '5');
	assert_memory_equal(h + 100, "0000755", 8);
	assert_memory_equal(h + 124, "00000000000", 12);
	/* A directory with data is refused. */
	e.size = 1;
	assert_int_equal(tar_header_encode(&e, h), TAR_E_FIELD);
}

static void
test_checksum_known_value(void **state)
{
	/* Summed field by field: an empty file "a", mode 0644, mtime 0. */
	struct tar_entry e = file_entry("a", 0);
	uint8_t h[TAR_BLOCK_BYTES];
	unsigned expect = 0;

	(void)state;
	assert_int_equal(tar_header_encode(&e, h), 0);
	expect += 'a';
	expect += '0' * 4 + '6' + '4' + '4';            /* mode */
	expect += '0' * 7 * 2;                          /* uid, gid */
	expect += '0' * 11 * 2;                         /* size, mtime */
	expect += ' ' * 8;                              /* chksum */
	expect += '0';                                  /* typeflag */
	expect += 'u' + 's' + 't' + 'a' + 'r' + '0' + '0';
	expect += '0' * 7 * 2;                          /* devmajor, devminor */
	assert_int_equal(octal_field(h + 148, 6), expect);
}

static void
test_long_name_prefix(void **state)
{
	char name[200];
	uint8_t h[TAR_BLOCK_BYTES];
	struct tar_entry e;

	(void)state;
	/* 77 bytes: the longest blob path, fits the name field whole. */
	snprintf(name, sizeof(name), "blobs/sha256/%064d", 0);
	e = file_entry(name, 1);
	assert_int_equal(strlen(name), 77);
	assert_int_equal(tar_header_encode(&e, h), 0);
	assert_memory_equal(h, name, 77);
	assert_int_equal(h[345], 0);

	/* 100 bytes exactly: still the name field, no NUL needed. */
	memset(name, 'n', 100);
	name[100] = '\0';
	e = file_entry(name, 1);
	assert_int_equal(tar_header_encode(&e, h), 0);
	assert_memory_equal(h, name, 100);
	assert_int_equal(h[345], 0);

	/* 140 bytes: split at a '/' into prefix and name. */
	memset(name, 'p', 60);
	name[60] = '/';
	memset(name + 61, 'q', 79);
	name[140] = '\0';
	e = file_entry(name, 1);
	assert_int_equal(tar_header_encode(&e, h), 0);
	assert_memory_equal(h + 345, name, 60);
	assert_int_equal(h[345 + 60], 0);
	assert_memory_equal(h, name + 61, 79);
	assert_int_equal(h[79], 0);
	assert_int_equal(octal_field(h + 148, 6), checksum_of(h));
}

static void
test_names_refused(void **state)
{
	char name[300];
	uint8_t h[TAR_BLOCK_BYTES];
	struct tar_entry e;

	(void)state;
	/* Over 100 bytes with no '/': nowhere to split. */
	memset(name, 'x', 101);
	name[101] = '\0';
	e = file_entry(name, 0);
	assert_int_equal(tar_header_encode(&e, h), TAR_E_NAME);
	/* The part after the only '/' is longer than 100 bytes. */
	name[10] = '/';
	memset(name + 11, 'y', 101);
	name[112] = '\0';
	e = file_entry(name, 0);
	assert_int_equal(tar_header_encode(&e, h), TAR_E_NAME);
	/* The part before the only '/' is longer than 155 bytes. */
	memset(name, 'z', 160);
	name[160] = '/';
	memcpy(name + 161, "f", 2);
	e = file_entry(name, 0);
	assert_int_equal(tar_header_encode(&e, h), TAR_E_NAME);
	/* Over 256 bytes cannot fit at all. */
	memset(name, 'a', 299);
	for (int i = 50; i < 299; i += 50)
		name[i] = '/';
	name[299] = '\0';
	e = file_entry(name, 0);
	assert_int_equal(tar_header_encode(&e, h), TAR_E_NAME);
	/* Empty, or with a NUL inside. */
	e = file_entry("", 0);
	assert_int_equal(tar_header_encode(&e, h), TAR_E_NAME);
	e.name = "a\0b";
	e.namelen = 3;
	assert_int_equal(tar_header_encode(&e, h), TAR_E_NAME);
	/* A refused header leaves a zero block, never half a header. */
	for (size_t i = 0; i < TAR_BLOCK_BYTES; i++)
		assert_int_equal(h[i], 0);
}

static void
test_size_octal_limit(void **state)
{
	struct tar_entry e = file_entry("big", TAR_SIZE_OCTAL_MAX);
	uint8_t h[TAR_BLOCK_BYTES];

	(void)state;
	/* 8 GiB - 1 is the largest octal size. */
	assert_int_equal(tar_header_encode(&e, h), 0);
	assert_memory_equal(h + 124, "77777777777", 12);
}

static void
test_size_base256(void **state)
{
	/* A 10 GB layer: past the octal field. */
	uint64_t sizes[] = { TAR_SIZE_OCTAL_MAX + 1, UINT64_C(10000000000),
	    UINT64_MAX };
	uint8_t h[TAR_BLOCK_BYTES];

	(void)state;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct tar_entry e = file_entry("layer", sizes[k]);
		uint64_t v = 0;

		assert_int_equal(tar_header_encode(&e, h), 0);
		assert_int_equal(h[124], 0x80);
		/* Big-endian in the last 11 bytes; 8 of them carry a u64. */
		for (size_t i = 125; i < 136; i++) {
			if (i < 128)
				assert_int_equal(h[i], 0);
			v = (v << 8) | h[i];
		}
		assert_true(v == sizes[k]);
		assert_int_equal(octal_field(h + 148, 6), checksum_of(h));
	}
	/* 10,000,000,000 = 0x2540BE400. */
	{
		struct tar_entry e = file_entry("layer", UINT64_C(10000000000));
		static const uint8_t want[12] = { 0x80, 0, 0, 0, 0, 0, 0, 0x02,
		    0x54, 0x0b, 0xe4, 0x00 };

		assert_int_equal(tar_header_encode(&e, h), 0);
		assert_memory_equal(h + 124, want, 12);
	}
}

static void
test_fields_out_of_range(void **state)
{
	struct tar_entry e = file_entry("f", 0);
	uint8_t h[TAR_BLOCK_BYTES];

	(void)state;
	e.mode = TAR_MODE_MAX + 1;
	assert_int_equal(tar_header_encode(&e, h), TAR_E_FIELD);
	e.mode = 0644;
	e.mtime = TAR_MTIME_MAX + 1;
	assert_int_equal(tar_header_encode(&e, h), TAR_E_FIELD);
	e.mtime = TAR_MTIME_MAX;
	assert_int_equal(tar_header_encode(&e, h), 0);
}

/* ---- the writer ------------------------------------------------------- */

struct mem {
	uint8_t *buf;
	size_t len;
	size_t fail_after;      /* 0: never */
};

static int
mem_sink(void *arg, const void *buf, size_t len)
{
	struct mem *m = arg;

	if (m->fail_after != 0 && m->len + len > m->fail_after)
		return -1;
	m->buf = realloc(m->buf, m->len + len);
	assert_non_null(m->buf);
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return 0;
}

static void
write_sample(struct mem *m)
{
	struct tar_writer w;
	struct tar_entry d = { .name = "blobs/", .namelen = 6,
	    .type = TAR_TYPE_DIR, .mode = 0755 };
	struct tar_entry f = file_entry("blobs/x", 700);
	uint8_t data[700];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	tar_writer_init(&w, mem_sink, m);
	assert_int_equal(tar_writer_add(&w, &d, NULL), 0);
	assert_int_equal(tar_writer_begin(&w, &f), 0);
	assert_int_equal(tar_writer_data(&w, data, 300), 0);
	assert_int_equal(tar_writer_data(&w, data + 300, 400), 0);
	assert_int_equal(tar_writer_end(&w), 0);
	assert_int_equal(tar_writer_finish(&w), 0);
	assert_int_equal(w.total, m->len);
}

static void
test_writer_layout_and_determinism(void **state)
{
	struct mem a = { NULL, 0, 0 }, b = { NULL, 0, 0 };

	(void)state;
	write_sample(&a);
	write_sample(&b);
	/* dir header, file header, 2 data blocks, 2 end blocks */
	assert_int_equal(a.len, 6 * TAR_BLOCK_BYTES);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.buf, b.buf, a.len);
	assert_int_equal(a.buf[512 + 156], '0');
	assert_int_equal(a.buf[1024 + 699], (uint8_t)(699 * 7));
	for (size_t i = 1024 + 700; i < a.len; i++)
		assert_int_equal(a.buf[i], 0);
	free(a.buf);
	free(b.buf);
}

static void
test_writer_size_enforced(void **state)
{
	struct mem m = { NULL, 0, 0 };
	struct tar_writer w;
	struct tar_entry f = file_entry("f", 10);
	uint8_t data[11] = { 0 };

	(void)state;
	tar_writer_init(&w, mem_sink, &m);
	assert_int_equal(tar_writer_begin(&w, &f), 0);
	assert_int_equal(tar_writer_data(&w, data, 5), 0);
	/* Fewer bytes than declared cannot end the entry... */
	assert_int_equal(tar_writer_end(&w), TAR_E_SIZE);
	/* ...and the writer stays failed. */
	assert_int_equal(tar_writer_finish(&w), TAR_E_SIZE);

	tar_writer_init(&w, mem_sink, &m);
	assert_int_equal(tar_writer_begin(&w, &f), 0);
	assert_int_equal(tar_writer_data(&w, data, 11), TAR_E_SIZE);

	tar_writer_init(&w, mem_sink, &m);
	assert_int_equal(tar_writer_data(&w, data, 1), TAR_E_STATE);
	assert_int_equal(tar_writer_begin(&w, &f), 0);
	assert_int_equal(tar_writer_begin(&w, &f), TAR_E_STATE);
	free(m.buf);
}

static void
test_writer_sink_failure(void **state)
{
	struct mem m = { NULL, 0, 600 };
	struct tar_writer w;
	struct tar_entry f = file_entry("f", 200);
	uint8_t data[200] = { 0 };

	(void)state;
	tar_writer_init(&w, mem_sink, &m);
	assert_int_equal(tar_writer_begin(&w, &f), 0);
	assert_int_equal(tar_writer_data(&w, data, 200), TAR_E_WRITE);
	assert_int_equal(tar_writer_end(&w), TAR_E_WRITE);
	assert_int_equal(tar_writer_finish(&w), TAR_E_WRITE);
	free(m.buf);
}


/* ---- reader ------------------------------------------------------------ */

struct src {
	const uint8_t *p;
	size_t len, at, step;
};

static int
mem_source(void *arg, void *buf, size_t len, size_t *nread)
{
	struct src *s = arg;
	size_t n = s->len - s->at;

	if (n > len)
		n = len;
	if (s->step != 0 && n > s->step)
		n = s->step;
	memcpy(buf, s->p + s->at, n);
	s->at += n;
	*nread = n;
	return 0;
}

/* Reads all of the current entry's data into a new buffer. */
static int
read_all(struct tar_reader *r, uint8_t **out, size_t *outlen)
{
	uint8_t *buf = NULL;
	size_t len = 0, n;
	uint8_t step[333];
	int rc;

	for (;;) {
		rc = tar_reader_read(r, step, sizeof(step), &n);
		if (rc != 0 || n == 0)
			break;
		buf = realloc(buf, len + n);
		assert_non_null(buf);
		memcpy(buf + len, step, n);
		len += n;
	}
	*out = buf;
	*outlen = len;
	return rc;
}

/* Sets a header block's type and recomputes its checksum. */
static void
retype(uint8_t *h, char type)
{
	unsigned sum;

	h[156] = (uint8_t)type;
	sum = checksum_of(h);
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
}

/* Appends one entry of type type with data to m (header then padding). */
static void
raw_entry(struct mem *m, const char *name, char type, const void *data,
    size_t len)
{
	struct tar_entry e = file_entry(name, len);
	uint8_t h[TAR_BLOCK_BYTES], zero[TAR_BLOCK_BYTES] = { 0 };

	assert_int_equal(tar_header_encode(&e, h), 0);
	retype(h, type);
	mem_sink(m, h, sizeof(h));
	if (len > 0)
		mem_sink(m, data, len);
	if (len % TAR_BLOCK_BYTES)
		mem_sink(m, zero, TAR_BLOCK_BYTES - len % TAR_BLOCK_BYTES);
}

static void
end_blocks(struct mem *m)
{
	uint8_t zero[2 * TAR_BLOCK_BYTES] = { 0 };

	mem_sink(m, zero, sizeof(zero));
}

static void
test_reader_round_trip(void **state)
{
	struct mem m = { NULL, 0, 0 };
	struct tar_header h;
	struct tar_reader r;
	uint8_t *data;
	size_t len;

	(void)state;
	write_sample(&m);
	/* Whole, and in 1- and 7-byte reads: the same entries. */
	for (size_t step = 0; step < 8; step += 7) {
		struct src s = { m.buf, m.len, 0, step ? step : 0 };

		if (step == 7)
			s.step = 1;
		tar_reader_init(&r, mem_source, &s);
		assert_int_equal(tar_reader_next(&r, &h), 0);
		assert_string_equal(h.name, "blobs/");
		assert_int_equal(h.type, TAR_TYPE_DIR);
		assert_int_equal(h.mode, 0755);
		assert_int_equal(tar_reader_next(&r, &h), 0);
		assert_string_equal(h.name, "blobs/x");
		assert_int_equal(h.type, TAR_TYPE_FILE);
		assert_int_equal(h.size, 700);
		assert_int_equal(h.offset, 512);
		assert_int_equal(read_all(&r, &data, &len), 0);
		assert_int_equal(len, 700);
		for (size_t i = 0; i < len; i++)
			assert_int_equal(data[i], (uint8_t)(i * 7));
		free(data);
		assert_int_equal(tar_reader_next(&r, &h), 1);
		assert_int_equal(tar_reader_next(&r, &h), 1);
		tar_reader_free(&r);
	}
	free(m.buf);
}

static void
test_reader_long_names(void **state)
{
	char longname[300], pax[400];
	struct mem m = { NULL, 0, 0 };
	struct tar_writer w;
	struct tar_header h;
	struct tar_reader r;
	struct src s;
	struct tar_entry e;
	int n;

	(void)state;
	/* ustar prefix + name, as the writer splits them. */
	memset(longname, 'a', sizeof(longname));
	memcpy(longname + 150, "/", 1);
	e = file_entry("", 3);
	e.name = longname;
	e.namelen = 200;
	tar_writer_init(&w, mem_sink, &m);
	assert_int_equal(tar_writer_add(&w, &e, "abc"), 0);
	/* a pax 'x' record naming the next entry, with its size */
	memset(longname, 'b', sizeof(longname));
	longname[299] = '\0';
	n = snprintf(pax, sizeof(pax), "%d path=%s\n", 309, longname);
	assert_int_equal(n, 309);
	n += snprintf(pax + n, sizeof(pax) - (size_t)n, "10 size=5\n");
	raw_entry(&m, "PaxHeaders/x", 'x', pax, (size_t)n);
	raw_entry(&m, "short", '0', "hello", 5);
	/* a GNU 'L' long name */
	raw_entry(&m, "././@LongLink", 'L', "gnu/long/name\0", 14);
	raw_entry(&m, "trunc", '0', "", 0);
	/* a symlink is returned with its type */
	raw_entry(&m, "link", '2', NULL, 0);
	end_blocks(&m);

	s = (struct src){ m.buf, m.len, 0, 0 };
	tar_reader_init(&r, mem_source, &s);
	assert_int_equal(tar_reader_next(&r, &h), 0);
	assert_int_equal(h.namelen, 200);
	assert_int_equal(h.name[150], '/');
	assert_int_equal(tar_reader_next(&r, &h), 0);
	assert_int_equal(h.namelen, 299);
	assert_string_equal(h.name, longname);
	assert_int_equal(h.size, 5);
	assert_int_equal(tar_reader_next(&r, &h), 0);
	assert_string_equal(h.name, "gnu/long/name");
	assert_int_equal(tar_reader_next(&r, &h), 0);
	assert_string_equal(h.name, "link");
	assert_int_equal(h.type, TAR_TYPE_SYMLINK);
	assert_int_equal(tar_reader_next(&r, &h), 1);
	tar_reader_free(&r);
	free(m.buf);
}

/* Reads entries until one fails; returns that code (1 at the end). */
static int
read_until_error(const uint8_t *p, size_t len, struct tar_header *h)
{
	struct src s = { p, len, 0, 0 };
	struct tar_reader r;
	uint8_t *data;
	size_t n;
	int rc;

	tar_reader_init(&r, mem_source, &s);
	while ((rc = tar_reader_next(&r, h)) == 0) {
		rc = read_all(&r, &data, &n);
		free(data);
		if (rc != 0)
			break;
	}
	tar_reader_free(&r);
	return rc;
}

static void
test_reader_malformed(void **state)
{
	struct mem m = { NULL, 0, 0 };
	struct tar_header h;
	uint8_t *b;

	(void)state;
	write_sample(&m);
	b = malloc(m.len);
	assert_non_null(b);

	/* A flipped byte breaks the checksum. */
	memcpy(b, m.buf, m.len);
	b[512 + 3] ^= 1;
	assert_int_equal(read_until_error(b, m.len, &h), TAR_E_HEADER);
	/* No ustar magic (v7): refused. */
	memcpy(b, m.buf, m.len);
	memset(b + 257, 0, 8);
	retype(b, '5');
	assert_int_equal(read_until_error(b, m.len, &h), TAR_E_HEADER);
	/* A negative base-256 size. */
	memcpy(b, m.buf, m.len);
	memset(b + 512 + 124, 0xff, 12);
	retype(b + 512, '0');
	assert_int_equal(read_until_error(b, m.len, &h), TAR_E_HEADER);
	/* Garbage in an octal field. */
	memcpy(b, m.buf, m.len);
	b[512 + 124] = '9';
	retype(b + 512, '0');
	assert_int_equal(read_until_error(b, m.len, &h), TAR_E_HEADER);
	/* Cut inside the data, at an entry boundary, inside a header. */
	assert_int_equal(read_until_error(m.buf, 1024 + 100, &h),
	    TAR_E_TRUNCATED);
	assert_string_equal(h.name, "blobs/x");
	assert_int_equal(read_until_error(m.buf, 2048, &h), TAR_E_TRUNCATED);
	assert_int_equal(read_until_error(m.buf, 512 + 200, &h),
	    TAR_E_TRUNCATED);
	assert_int_equal(read_until_error(m.buf, 0, &h), TAR_E_TRUNCATED);
	free(b);
	free(m.buf);
}

static void
test_reader_bad_pax(void **state)
{
	static const char *const bad[] = {
		"8 path=a\n",           /* length one short of the record */
		"x path=a\n",
		"10 patha\n\n",         /* no '=' */
		"11 size=1x\n",
		"99999999999999999999 path=a\n",
		"10 =ab\n\n\n",         /* empty key */
	};
	char rec[64];
	struct tar_header h;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mem m = { NULL, 0, 0 };

		raw_entry(&m, "pax", 'x', bad[i], strlen(bad[i]));
		raw_entry(&m, "f", '0', "", 0);
		end_blocks(&m);
		assert_int_equal(read_until_error(m.buf, m.len, &h), TAR_E_PAX);
		free(m.buf);
	}
	/* A NUL inside a pax path is refused. */
	{
		struct mem m = { NULL, 0, 0 };

		memcpy(rec, "12 path=a\0b\n", 12);
		raw_entry(&m, "pax", 'x', rec, 12);
		raw_entry(&m, "f", '0', "", 0);
		end_blocks(&m);
		assert_int_equal(read_until_error(m.buf, m.len, &h), TAR_E_NAME);
		free(m.buf);
	}
	/* Records and names past their limits. */
	{
		struct mem m = { NULL, 0, 0 };
		size_t big = TAR_META_MAX_BYTES + 1;
		char *p = calloc(1, big);

		assert_non_null(p);
		raw_entry(&m, "pax", 'x', p, big);
		end_blocks(&m);
		assert_int_equal(read_until_error(m.buf, m.len, &h), TAR_E_LIMIT);
		free(m.buf);
		free(p);
	}
	/* Pax headers only, then the end: truncated. */
	{
		struct mem m = { NULL, 0, 0 };

		raw_entry(&m, "pax", 'x', "9 path=a\n", 9);
		end_blocks(&m);
		assert_int_equal(read_until_error(m.buf, m.len, &h),
		    TAR_E_TRUNCATED);
		free(m.buf);
	}
}

static void
test_path_clean(void **state)
{
	static const struct {
		const char *in, *out;   /* out NULL: refused */
	} cases[] = {
		{ "blobs/sha256/ab", "blobs/sha256/ab" },
		{ "./manifest.json", "manifest.json" },
		{ "a//b/./c/", "a/b/c" },
		{ ".", "" },
		{ "..foo/x..", "..foo/x.." },
		{ "../x", NULL },
		{ "a/../b", NULL },
		{ "a/..", NULL },
		{ "/etc/passwd", NULL },
		{ "", NULL },
	};
	char out[64];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = tar_path_clean(cases[i].in, strlen(cases[i].in), out,
		    &n);

		if (cases[i].out == NULL) {
			assert_int_equal(rc, TAR_E_NAME);
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(out, cases[i].out);
			assert_int_equal(n, strlen(cases[i].out));
		}
	}
	assert_int_equal(tar_path_clean("a\0b", 3, out, &n), TAR_E_NAME);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_fields),
		cmocka_unit_test(test_header_dir),
		cmocka_unit_test(test_checksum_known_value),
		cmocka_unit_test(test_long_name_prefix),
		cmocka_unit_test(test_names_refused),
		cmocka_unit_test(test_size_octal_limit),
		cmocka_unit_test(test_size_base256),
		cmocka_unit_test(test_fields_out_of_range),
		cmocka_unit_test(test_writer_layout_and_determinism),
		cmocka_unit_test(test_writer_size_enforced),
		cmocka_unit_test(test_writer_sink_failure),
		cmocka_unit_test(test_reader_round_trip),
		cmocka_unit_test(test_reader_long_names),
		cmocka_unit_test(test_reader_malformed),
		cmocka_unit_test(test_reader_bad_pax),
		cmocka_unit_test(test_path_clean),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
