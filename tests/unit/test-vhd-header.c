/* VHD dynamic header: encode writes each field at the specification's
 * offset, decode round-trips (parent name, all eight locators), accepts the
 * header qemu-img writes, and rejects each malformed header for its own
 * reason.  Also the sector bitmap size per block size. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "vhd/vhd-int.h"

static uint32_t be32_at(const uint8_t *b, int off)
{
	return (uint32_t)b[off] << 24 | (uint32_t)b[off + 1] << 16 |
	       (uint32_t)b[off + 2] << 8 | b[off + 3];
}

static uint64_t be64_at(const uint8_t *b, int off)
{
	return (uint64_t)be32_at(b, off) << 32 | be32_at(b, off + 4);
}

/* ~(sum of the 1024 bytes except 36..39), written out by hand. */
static uint32_t hand_checksum(const uint8_t *b)
{
	uint32_t s = 0;

	for (int i = 0; i < 1024; i++)
		if (i < 36 || i > 39)
			s += b[i];
	return ~s;
}

static void reseal(uint8_t *b)
{
	uint32_t c;

	memset(b + 36, 0, 4);
	c = hand_checksum(b);
	b[36] = (uint8_t)(c >> 24);
	b[37] = (uint8_t)(c >> 16);
	b[38] = (uint8_t)(c >> 8);
	b[39] = (uint8_t)c;
}

static void sample(struct vhd_header *h)
{
	static const char *const codes[8] = { "W2ku", "W2ru", "MacX", "Wi2r",
					      "Wi2k", "Mac ", "\0\0\0\0", "W2ru" };

	memset(h, 0, sizeof(*h));
	h->table_offset = 0x0000000100000600ull;
	h->version = 0x00010000;
	h->max_table_entries = 0x00012345;
	h->block_size = 2u << 20;
	for (int i = 0; i < 16; i++)
		h->parent_uuid[i] = (uint8_t)(0x10 * i + 1);
	h->parent_timestamp = 0x0badcafe;
	for (int i = 0; i < 512; i++)
		h->parent_name[i] = (uint8_t)(i * 7 + 3);
	for (int i = 0; i < 8; i++) {
		memcpy(h->loc[i].code, codes[i], 4);
		h->loc[i].data_space = 0x200u * (uint32_t)(i + 1);
		h->loc[i].data_length = 0x30u + (uint32_t)i;
		h->loc[i].data_offset = 0x1000000000ull + 0x10000ull * (uint64_t)i;
	}
}

static void test_encode_places_fields_big_endian(void **state)
{
	struct vhd_header h;
	uint8_t b[1024];

	(void)state;
	sample(&h);
	memset(b, 0x5a, sizeof(b));
	vhd_header_encode(&h, b);
	assert_memory_equal(b, "cxsparse", 8);
	assert_true(be64_at(b, 8) == 0xffffffffffffffffull);   /* data offset */
	assert_true(be64_at(b, 16) == 0x0000000100000600ull);
	assert_int_equal(be32_at(b, 24), 0x00010000);
	assert_int_equal(be32_at(b, 28), 0x00012345);
	assert_int_equal(be32_at(b, 32), 2u << 20);
	for (int i = 0; i < 16; i++)
		assert_int_equal(b[40 + i], 0x10 * i + 1);
	assert_int_equal(be32_at(b, 56), 0x0badcafe);
	assert_int_equal(be32_at(b, 60), 0);                     /* reserved */
	for (int i = 0; i < 512; i++)
		assert_int_equal(b[64 + i], (uint8_t)(i * 7 + 3));
	for (int i = 0; i < 8; i++) {
		const uint8_t *l = b + 576 + 24 * i;

		assert_memory_equal(l, h.loc[i].code, 4);
		assert_int_equal(be32_at(l, 4), 0x200u * (uint32_t)(i + 1));
		assert_int_equal(be32_at(l, 8), 0x30u + (uint32_t)i);
		assert_int_equal(be32_at(l, 12), 0);                 /* reserved */
		assert_true(be64_at(l, 16) == 0x1000000000ull + 0x10000ull * (uint64_t)i);
	}
	for (int i = 768; i < 1024; i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(be32_at(b, 36), hand_checksum(b));
}

static void test_decode_round_trips_every_field(void **state)
{
	struct vhd_header h, g;
	uint8_t b[1024], again[1024];
	char why[300];

	(void)state;
	sample(&h);
	vhd_header_encode(&h, b);
	memset(&g, 0x77, sizeof(g));
	assert_int_equal(vhd_header_decode(b, &g, why, sizeof(why)), 0);
	assert_true(g.table_offset == h.table_offset);
	assert_int_equal(g.version, h.version);
	assert_int_equal(g.max_table_entries, h.max_table_entries);
	assert_int_equal(g.block_size, h.block_size);
	assert_int_equal(g.checksum, be32_at(b, 36));
	assert_memory_equal(g.parent_uuid, h.parent_uuid, 16);
	assert_int_equal(g.parent_timestamp, h.parent_timestamp);
	assert_memory_equal(g.parent_name, h.parent_name, 512);
	for (int i = 0; i < 8; i++) {
		assert_memory_equal(g.loc[i].code, h.loc[i].code, 4);
		assert_int_equal(g.loc[i].data_space, h.loc[i].data_space);
		assert_int_equal(g.loc[i].data_length, h.loc[i].data_length);
		assert_true(g.loc[i].data_offset == h.loc[i].data_offset);
	}
	vhd_header_encode(&g, again);
	assert_memory_equal(again, b, 1024);
}

/* The first 40 bytes of the header qemu-img 7.2 wrote for
 * `qemu-img create -f vpc x.vhd 10M` (the rest is zero): BAT at 1536,
 * 6 entries, 2 MiB blocks, qemu's checksum 0xfffff471. */
static const uint8_t qemu_header[40] = {
	0x63, 0x78, 0x73, 0x70, 0x61, 0x72, 0x73, 0x65,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00,
	0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06,
	0x00, 0x20, 0x00, 0x00, 0xff, 0xff, 0xf4, 0x71,
};

static void test_decode_accepts_qemu_header(void **state)
{
	struct vhd_header h;
	uint8_t b[1024] = { 0 }, again[1024];
	char why[300];

	(void)state;
	memcpy(b, qemu_header, sizeof(qemu_header));
	assert_int_equal(vhd_header_decode(b, &h, why, sizeof(why)), 0);
	assert_int_equal(h.checksum, 0xfffff471u);
	assert_true(h.table_offset == 1536);
	assert_int_equal(h.max_table_entries, 6);
	assert_int_equal(h.block_size, 2u << 20);
	assert_int_equal(h.version, 0x00010000);
	vhd_header_encode(&h, again);
	assert_memory_equal(again, b, 1024);
}

/* Encode the sample with one field changed, re-seal, decode. */
static int decode_with(void (*mod)(struct vhd_header *h), bool seal_after_raw,
		       void (*raw)(uint8_t *b), char *why, size_t whylen)
{
	struct vhd_header h;
	uint8_t b[1024];

	sample(&h);
	if (mod)
		mod(&h);
	vhd_header_encode(&h, b);
	if (raw) {
		raw(b);
		if (seal_after_raw)
			reseal(b);
	}
	why[0] = '\0';
	return vhd_header_decode(b, &h, why, whylen);
}

static void raw_cookie(uint8_t *b) { b[0] = 'C'; }
static void raw_flip(uint8_t *b) { b[900] ^= 0x10; }
static void m_version2(struct vhd_header *h) { h->version = 0x00020000; }
static void m_version0(struct vhd_header *h) { h->version = 0x00000001; }
static void m_bs_npow2(struct vhd_header *h) { h->block_size = 3u << 20; }
static void m_bs_small(struct vhd_header *h) { h->block_size = 256; }
static void m_bs_big(struct vhd_header *h) { h->block_size = 512u << 20; }
static void m_bs_zero(struct vhd_header *h) { h->block_size = 0; }
static void m_bs_min(struct vhd_header *h) { h->block_size = 512; }
static void m_bs_max(struct vhd_header *h) { h->block_size = 256u << 20; }
static void m_bat_zero(struct vhd_header *h) { h->table_offset = 0; }
static void m_bat_odd(struct vhd_header *h) { h->table_offset = 1537; }

static void test_rejects_bad_cookie(void **state)
{
	char why[300];

	(void)state;
	assert_int_equal(decode_with(NULL, true, raw_cookie, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "cxsparse"));
}

static void test_rejects_bad_checksum(void **state)
{
	char why[300];

	(void)state;
	assert_int_equal(decode_with(NULL, false, raw_flip, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "checksum"));
}

static void test_rejects_bad_version(void **state)
{
	char why[300];

	(void)state;
	assert_int_equal(decode_with(m_version2, false, NULL, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "version 2.0"));
	assert_int_equal(decode_with(m_version0, false, NULL, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "version 0.1"));
}

static void test_rejects_bad_block_size(void **state)
{
	void (*bad[])(struct vhd_header *) = { m_bs_npow2, m_bs_small, m_bs_big,
					       m_bs_zero };
	char why[300];

	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++) {
		assert_int_equal(decode_with(bad[i], false, NULL, why, sizeof(why)),
				 -EINVAL);
		assert_non_null(strstr(why, "block size"));
	}
	/* The limits themselves are fine. */
	assert_int_equal(decode_with(m_bs_min, false, NULL, why, sizeof(why)), 0);
	assert_int_equal(decode_with(m_bs_max, false, NULL, why, sizeof(why)), 0);
}

static void test_rejects_bad_table_offset(void **state)
{
	char why[300];

	(void)state;
	assert_int_equal(decode_with(m_bat_zero, false, NULL, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "BAT offset"));
	assert_int_equal(decode_with(m_bat_odd, false, NULL, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "BAT offset"));
}

static void test_bitmap_size_is_whole_sectors(void **state)
{
	(void)state;
	/* One bit per 512-byte sector, rounded up to a 512-byte sector. */
	assert_int_equal(vhd_bitmap_size(512), 512);             /* 1 bit */
	assert_int_equal(vhd_bitmap_size(4096), 512);            /* 8 bits */
	assert_int_equal(vhd_bitmap_size(512u << 10), 512);      /* 1024 bits */
	assert_int_equal(vhd_bitmap_size(2u << 20), 512);        /* 4096 bits */
	assert_int_equal(vhd_bitmap_size(4u << 20), 1024);       /* 8192 bits */
	assert_int_equal(vhd_bitmap_size(256u << 20), 65536);    /* 524288 bits */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_places_fields_big_endian),
		cmocka_unit_test(test_decode_round_trips_every_field),
		cmocka_unit_test(test_decode_accepts_qemu_header),
		cmocka_unit_test(test_rejects_bad_cookie),
		cmocka_unit_test(test_rejects_bad_checksum),
		cmocka_unit_test(test_rejects_bad_version),
		cmocka_unit_test(test_rejects_bad_block_size),
		cmocka_unit_test(test_rejects_bad_table_offset),
		cmocka_unit_test(test_bitmap_size_is_whole_sectors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
