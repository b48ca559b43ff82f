/*
 * The ustar header encoder and the streaming writer: field layout and
 * checksum, the prefix split of long names, base-256 sizes past 8 GiB,
 * byte-identical output for identical entries, and refusal of names and
 * data that do not fit.
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
