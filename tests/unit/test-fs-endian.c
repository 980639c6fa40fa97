/* fs-endian.h: little- and big-endian loads and stores of 16/32/64 bits put
 * the bytes in the right order at any (odd) address, touch nothing beside
 * the value, and a load reads back what a store wrote. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/fs-endian.h"

static const uint8_t seq[8] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };

static void test_loads(void **state)
{
	uint8_t buf[16];
	size_t at;

	(void)state;
	/* Every alignment, bytes 01 02 ... 08 at buf + at. */
	for (at = 0; at < 8; at++) {
		memset(buf, 0xee, sizeof(buf));
		memcpy(buf + at, seq, 8);
		assert_int_equal(fs_load_le16(buf + at), 0x0201);
		assert_int_equal(fs_load_be16(buf + at), 0x0102);
		assert_int_equal(fs_load_le32(buf + at), 0x04030201u);
		assert_int_equal(fs_load_be32(buf + at), 0x01020304u);
		assert_true(fs_load_le64(buf + at) == 0x0807060504030201ull);
		assert_true(fs_load_be64(buf + at) == 0x0102030405060708ull);
	}
	/* High bits are not sign-extended. */
	memset(buf, 0xff, 8);
	assert_int_equal(fs_load_be16(buf), 0xffff);
	assert_true(fs_load_le32(buf) == 0xffffffffu);
	assert_true(fs_load_be64(buf) == UINT64_MAX);
}

static void test_stores(void **state)
{
	uint8_t buf[16], want[16];
	size_t at;

	(void)state;
	for (at = 0; at < 8; at++) {
		memset(want, 0xee, sizeof(want));
		memcpy(want + at, seq, 8);

		memset(buf, 0xee, sizeof(buf));
		fs_store_be64(buf + at, 0x0102030405060708ull);
		assert_memory_equal(buf, want, sizeof(buf));
		memset(buf, 0xee, sizeof(buf));
		fs_store_le64(buf + at, 0x0807060504030201ull);
		assert_memory_equal(buf, want, sizeof(buf));

		memset(buf, 0xee, sizeof(buf));
		fs_store_be32(buf + at, 0x01020304u);
		fs_store_le32(buf + at + 4, 0x08070605u);
		assert_memory_equal(buf, want, sizeof(buf));

		memset(buf, 0xee, sizeof(buf));
		fs_store_le16(buf + at, 0x0201);
		fs_store_be16(buf + at + 2, 0x0304);
		fs_store_le16(buf + at + 4, 0x0605);
		fs_store_be16(buf + at + 6, 0x0708);
		assert_memory_equal(buf, want, sizeof(buf));
	}
}

static void test_round_trip(void **state)
{
	uint8_t buf[9];
	uint64_t v = 0x9e3779b97f4a7c15ull;
	int i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		v = v * 6364136223846793005ull + 1442695040888963407ull;
		fs_store_le64(buf + 1, v);
		assert_true(fs_load_le64(buf + 1) == v);
		fs_store_be64(buf + 1, v);
		assert_true(fs_load_be64(buf + 1) == v);
		/* Big-endian bytes read little-endian: the byte swap. */
		assert_true(fs_load_le64(buf + 1) == __builtin_bswap64(v));
		fs_store_be32(buf, (uint32_t)v);
		assert_true(fs_load_be32(buf) == (uint32_t)v);
		assert_true(fs_load_le32(buf) == __builtin_bswap32((uint32_t)v));
		fs_store_le16(buf + 3, (uint16_t)v);
		assert_true(fs_load_le16(buf + 3) == (uint16_t)v);
		assert_true(fs_load_be16(buf + 3) == __builtin_bswap16((uint16_t)v));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loads),
		cmocka_unit_test(test_stores),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
