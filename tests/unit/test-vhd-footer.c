/* VHD footer: encode writes each field at the offset the specification
 * gives (big-endian), the checksum is the one's complement of the byte sum,
 * decode round-trips, and each malformed footer is rejected for its own
 * reason.  Expected bytes are computed here by hand, not by the library. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "vhd/vhd-int.h"

/* A footer with every field set to a distinct value. */
static void sample(struct vhd_footer *f, uint32_t type)
{
	memset(f, 0, sizeof(*f));
	f->features = 2;
	f->version = 0x00010000;
	f->data_offset = type == VHD_TYPE_FIXED ? VHD_NO_OFFSET : 512;
	f->timestamp = 0x12345678;
	memcpy(f->creator_app, "vhdt", 4);
	f->creator_version = 0x000a0005;
	memcpy(f->creator_os, "Wi2k", 4);
	f->original_size = 0x0102030405060000ull;
	f->current_size = 0x0000000123456000ull;
	f->cylinders = 0xabcd;
	f->heads = 16;
	f->sectors = 63;
	f->type = type;
	for (int i = 0; i < 16; i++)
		f->uuid[i] = (uint8_t)(0xa0 + i);
	f->saved_state = 1;
}

/* Sum of all bytes except the checksum field (64..67), complemented:
 * written out independently of vhd_checksum(). */
static uint32_t hand_checksum(const uint8_t *b)
{
	uint32_t s = 0;

	for (int i = 0; i < 512; i++)
		if (i < 64 || i > 67)
			s += b[i];
	return ~s;
}

static uint32_t be32_at(const uint8_t *b, int off)
{
	return (uint32_t)b[off] << 24 | (uint32_t)b[off + 1] << 16 |
	       (uint32_t)b[off + 2] << 8 | b[off + 3];
}

static uint64_t be64_at(const uint8_t *b, int off)
{
	return (uint64_t)be32_at(b, off) << 32 | be32_at(b, off + 4);
}

/* Re-seal a hand-modified footer so that only the field under test is
 * wrong. */
static void reseal(uint8_t *b)
{
	uint32_t c;

	memset(b + 64, 0, 4);
	c = hand_checksum(b);
	b[64] = (uint8_t)(c >> 24);
	b[65] = (uint8_t)(c >> 16);
	b[66] = (uint8_t)(c >> 8);
	b[67] = (uint8_t)c;
}

static void test_encode_places_fields_big_endian(void **state)
{
	struct vhd_footer f;
	uint8_t b[512];

	(void)state;
	sample(&f, VHD_TYPE_DYNAMIC);
	memset(b, 0x5a, sizeof(b));
	vhd_footer_encode(&f, b);
	assert_memory_equal(b, "conectix", 8);
	assert_int_equal(be32_at(b, 8), 2);
	assert_int_equal(be32_at(b, 12), 0x00010000);
	assert_true(be64_at(b, 16) == 512);
	assert_int_equal(be32_at(b, 24), 0x12345678);
	assert_memory_equal(b + 28, "vhdt", 4);
	assert_int_equal(be32_at(b, 32), 0x000a0005);
	assert_memory_equal(b + 36, "Wi2k", 4);
	assert_true(be64_at(b, 40) == 0x0102030405060000ull);
	assert_true(be64_at(b, 48) == 0x0000000123456000ull);
	assert_int_equal(b[56], 0xab);
	assert_int_equal(b[57], 0xcd);
	assert_int_equal(b[58], 16);
	assert_int_equal(b[59], 63);
	assert_int_equal(be32_at(b, 60), VHD_TYPE_DYNAMIC);
	for (int i = 0; i < 16; i++)
		assert_int_equal(b[68 + i], 0xa0 + i);
	assert_int_equal(b[84], 1);
	/* Reserved bytes are zero (not left over from the buffer). */
	for (int i = 85; i < 512; i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(be32_at(b, 64), hand_checksum(b));
}

static void test_checksum_is_complement_of_byte_sum(void **state)
{
	uint8_t b[512] = { 0 };

	(void)state;
	/* Empty buffer: ~0. */
	assert_int_equal(vhd_checksum(b, sizeof(b)), 0xffffffffu);
	/* "conectix" = 99+111+110+101+99+116+105+120 = 861 = 0x35d. */
	memcpy(b, "conectix", 8);
	assert_int_equal(vhd_checksum(b, sizeof(b)), ~0x35du);
	/* 512 bytes of 0xff: 512 * 255 = 130560 = 0x1fe00 (no byte wrap). */
	memset(b, 0xff, sizeof(b));
	assert_int_equal(vhd_checksum(b, sizeof(b)), ~0x1fe00u);
	/* A length of zero sums nothing. */
	assert_int_equal(vhd_checksum(b, 0), 0xffffffffu);
}

static void test_decode_round_trips_every_field(void **state)
{
	uint32_t types[] = { VHD_TYPE_FIXED, VHD_TYPE_DYNAMIC, VHD_TYPE_DIFF };

	(void)state;
	for (size_t t = 0; t < 3; t++) {
		struct vhd_footer f, g;
		uint8_t b[512], again[512];
		char why[200] = "";

		sample(&f, types[t]);
		vhd_footer_encode(&f, b);
		memset(&g, 0x77, sizeof(g));
		assert_int_equal(vhd_footer_decode(b, &g, why, sizeof(why)), 0);
		assert_int_equal(g.features, f.features);
		assert_int_equal(g.version, f.version);
		assert_true(g.data_offset == f.data_offset);
		assert_int_equal(g.timestamp, f.timestamp);
		assert_memory_equal(g.creator_app, f.creator_app, 4);
		assert_int_equal(g.creator_version, f.creator_version);
		assert_memory_equal(g.creator_os, f.creator_os, 4);
		assert_true(g.original_size == f.original_size);
		assert_true(g.current_size == f.current_size);
		assert_int_equal(g.cylinders, f.cylinders);
		assert_int_equal(g.heads, f.heads);
		assert_int_equal(g.sectors, f.sectors);
		assert_int_equal(g.type, f.type);
		assert_memory_equal(g.uuid, f.uuid, 16);
		assert_int_equal(g.saved_state, f.saved_state);
		assert_int_equal(g.checksum, be32_at(b, 64));
		/* Encoding the decoded footer gives the same bytes. */
		vhd_footer_encode(&g, again);
		assert_memory_equal(again, b, 512);
	}
}

/* The first 88 bytes of the footer qemu-img 7.2 wrote for
 * `qemu-img create -f vpc x.vhd 10M` (the other 424 are zero), checksum
 * 0xffffee09 included: decode accepts another implementation's checksum and
 * reads its fields, and encode reproduces the same 512 bytes. */
static const uint8_t qemu_footer[88] = {
	0x63, 0x6f, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x78, 0x00, 0x00, 0x00, 0x02,
	0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
	0x32, 0x94, 0x54, 0xeb, 0x71, 0x65, 0x6d, 0x75, 0x00, 0x05, 0x00, 0x03,
	0x57, 0x69, 0x32, 0x6b, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x70, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x70, 0x00, 0x01, 0x2e, 0x04, 0x11,
	0x00, 0x00, 0x00, 0x03, 0xff, 0xff, 0xee, 0x09, 0x47, 0xf2, 0x87, 0x09,
	0x05, 0xae, 0x42, 0x84, 0xba, 0x49, 0x34, 0x17, 0xd1, 0x70, 0x54, 0xe6,
	0x00, 0x00, 0x00, 0x00
};

static void test_decode_accepts_qemu_footer(void **state)
{
	struct vhd_footer f;
	uint8_t b[512] = { 0 }, again[512];
	char why[200];

	(void)state;
	memcpy(b, qemu_footer, sizeof(qemu_footer));
	assert_int_equal(vhd_footer_decode(b, &f, why, sizeof(why)), 0);
	assert_int_equal(f.checksum, 0xffffee09u);
	assert_true(f.current_size == 10514432);
	assert_true(f.original_size == 10514432);
	assert_int_equal(f.cylinders, 302);
	assert_int_equal(f.heads, 4);
	assert_int_equal(f.sectors, 17);
	assert_int_equal(f.type, VHD_TYPE_DYNAMIC);
	assert_true(f.data_offset == 512);
	assert_int_equal(f.timestamp, 0x329454eb);
	assert_memory_equal(f.creator_app, "qemu", 4);
	assert_memory_equal(f.creator_os, "Wi2k", 4);
	assert_int_equal(f.creator_version, 0x00050003);
	assert_int_equal(f.uuid[0], 0x47);
	assert_int_equal(f.uuid[15], 0xe6);
	vhd_footer_encode(&f, again);
	assert_memory_equal(again, b, 512);
}

static int decode_modified(uint32_t type, void (*mod)(uint8_t *b),
			   bool seal, char *why, size_t whylen)
{
	struct vhd_footer f;
	uint8_t b[512];

	sample(&f, type);
	vhd_footer_encode(&f, b);
	mod(b);
	if (seal)
		reseal(b);
	why[0] = '\0';
	return vhd_footer_decode(b, &f, why, whylen);
}

static void mod_cookie(uint8_t *b) { b[7] = 'y'; }
static void mod_byte(uint8_t *b) { b[300] ^= 1; }
static void mod_version2(uint8_t *b) { b[13] = 2; }
static void mod_version0(uint8_t *b) { b[12] = b[13] = b[14] = b[15] = 0; }
static void mod_version1_1(uint8_t *b) { b[15] = 1; }
static void mod_type(uint8_t *b) { b[63] = 5; }
static void mod_type0(uint8_t *b) { b[63] = 0; }
static void mod_type1(uint8_t *b) { b[63] = 1; }
static void mod_type_high(uint8_t *b) { b[60] = 1; }   /* 0x01000003 */
static void mod_off_ones(uint8_t *b) { memset(b + 16, 0xff, 8); }
static void mod_off_512(uint8_t *b) { memset(b + 16, 0, 8); b[22] = 2; }
static void mod_off_odd(uint8_t *b) { b[23] = 0x01; }   /* 512 -> 513 */
static void mod_size_odd(uint8_t *b) { b[55] |= 0x01; }
static void mod_checksum_only(uint8_t *b) { b[67] ^= 0x80; }

static void test_rejects_bad_cookie(void **state)
{
	char why[200];

	(void)state;
	/* Even with a matching checksum. */
	assert_int_equal(decode_modified(VHD_TYPE_DYNAMIC, mod_cookie, true, why,
					 sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "conectix"));
	assert_false(vhd_is_footer_cookie("conectiy"));
	assert_true(vhd_is_footer_cookie("conectix"));
	assert_false(vhd_is_footer_cookie("CONECTIX"));
}

static void test_rejects_bad_checksum(void **state)
{
	char why[200];

	(void)state;
	/* One bit flipped in a reserved byte: only the checksum can tell. */
	assert_int_equal(decode_modified(VHD_TYPE_DYNAMIC, mod_byte, false, why,
					 sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "checksum"));
	/* The checksum field itself damaged. */
	assert_int_equal(decode_modified(VHD_TYPE_FIXED, mod_checksum_only, false,
					 why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "checksum"));
}

static void test_rejects_bad_version(void **state)
{
	char why[200];

	(void)state;
	assert_int_equal(decode_modified(VHD_TYPE_DYNAMIC, mod_version2, true, why,
					 sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "version 2.0"));
	assert_int_equal(decode_modified(VHD_TYPE_DYNAMIC, mod_version0, true, why,
					 sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "version"));
	/* A minor revision of 1.x is still version 1. */
	assert_int_equal(decode_modified(VHD_TYPE_DYNAMIC, mod_version1_1, true,
					 why, sizeof(why)), 0);
}

static void test_rejects_bad_type(void **state)
{
	void (*mods[])(uint8_t *) = { mod_type, mod_type0, mod_type1,
				      mod_type_high };
	char why[200];

	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(mods); i++) {
		assert_int_equal(decode_modified(VHD_TYPE_DYNAMIC, mods[i], true,
						 why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "disk type"));
	}
}

static void test_rejects_bad_data_offset(void **state)
{
	char why[200];

	(void)state;
	/* Dynamic/differencing need a header offset, not all ones. */
	assert_int_equal(decode_modified(VHD_TYPE_DYNAMIC, mod_off_ones, true, why,
					 sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "data offset"));
	assert_int_equal(decode_modified(VHD_TYPE_DIFF, mod_off_ones, true, why,
					 sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "data offset"));
	/* ... on a sector boundary. */
	assert_int_equal(decode_modified(VHD_TYPE_DYNAMIC, mod_off_odd, true, why,
					 sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "data offset"));
	/* Fixed disks have none (all ones). */
	assert_int_equal(decode_modified(VHD_TYPE_FIXED, mod_off_512, true, why,
					 sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "data offset"));
}

static void test_rejects_size_not_sector_multiple(void **state)
{
	char why[200];

	(void)state;
	assert_int_equal(decode_modified(VHD_TYPE_FIXED, mod_size_odd, true, why,
					 sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "multiple of 512"));
}

static void test_time_epoch_is_2000(void **state)
{
	(void)state;
	/* 2000-01-01T00:00:00Z is Unix 946684800. */
	assert_int_equal(vhd_time_from_unix(946684800), 0);
	assert_int_equal(vhd_time_from_unix(946684800 + 86400), 86400);
	assert_true(vhd_time_to_unix(0) == 946684800);
	assert_true(vhd_time_to_unix(86400) == 946684800 + 86400);
	/* Before the epoch clamps to 0, past 2136 to the maximum. */
	assert_int_equal(vhd_time_from_unix(0), 0);
	assert_int_equal(vhd_time_from_unix(946684800ll + 0x100000000ll),
			 0xffffffffu);
	assert_true(vhd_time_now() > 700000000u);   /* after 2022 */
}

static void test_uuid_is_v4_and_formats(void **state)
{
	uint8_t u[16], w[16];
	char s[40];
	static const uint8_t k[16] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
				       0xef, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba,
				       0xdc, 0xfe };

	(void)state;
	assert_int_equal(vhd_uuid_generate(u), 0);
	assert_int_equal(vhd_uuid_generate(w), 0);
	assert_memory_not_equal(u, w, 16);
	assert_int_equal(u[6] >> 4, 4);
	assert_int_equal(u[8] >> 6, 2);
	assert_string_equal(vhd_uuid_str(k, s),
			    "01234567-89ab-cdef-1032-547698badcfe");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_places_fields_big_endian),
		cmocka_unit_test(test_checksum_is_complement_of_byte_sum),
		cmocka_unit_test(test_decode_round_trips_every_field),
		cmocka_unit_test(test_decode_accepts_qemu_footer),
		cmocka_unit_test(test_rejects_bad_cookie),
		cmocka_unit_test(test_rejects_bad_checksum),
		cmocka_unit_test(test_rejects_bad_version),
		cmocka_unit_test(test_rejects_bad_type),
		cmocka_unit_test(test_rejects_bad_data_offset),
		cmocka_unit_test(test_rejects_size_not_sector_multiple),
		cmocka_unit_test(test_time_epoch_is_2000),
		cmocka_unit_test(test_uuid_is_v4_and_formats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
