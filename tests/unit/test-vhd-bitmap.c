/* VHD sector bitmaps: bit i lives in byte i/8 at mask 0x80 >> (i%8)
 * (most significant bit first, as the specification and Hyper-V use);
 * util_bit_run counts equal bits up to a maximum; util_bit_set_range sets
 * exactly [i, i+n) and nothing beside it.  The run and range functions are
 * checked against a plain bit-by-bit model on many pseudo-random cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"

static void test_bit_order_is_msb_first(void **state)
{
	uint8_t bm[4] = { 0 };

	(void)state;
	util_bit_set(bm, 0);
	assert_int_equal(bm[0], 0x80);
	util_bit_set(bm, 7);
	assert_int_equal(bm[0], 0x81);
	util_bit_set(bm, 9);
	assert_int_equal(bm[1], 0x40);
	util_bit_set(bm, 31);
	assert_int_equal(bm[3], 0x01);
	assert_int_equal(bm[2], 0x00);
	assert_true(util_bit_test(bm, 0));
	assert_false(util_bit_test(bm, 1));
	assert_true(util_bit_test(bm, 9));
	assert_false(util_bit_test(bm, 8));
	util_bit_clear(bm, 0);
	assert_int_equal(bm[0], 0x01);
	util_bit_clear(bm, 7);
	assert_int_equal(bm[0], 0x00);
	assert_int_equal(bm[1], 0x40);
	/* A byte 0x0f from disk: sectors 4..7 present, 0..3 not. */
	bm[0] = 0x0f;
	for (int i = 0; i < 8; i++)
		assert_int_equal(util_bit_test(bm, (uint64_t)i), i >= 4);
}

static void test_run_lengths(void **state)
{
	uint8_t bm[8] = { 0xff, 0xff, 0xf0, 0x00, 0x00, 0x01, 0x80, 0x00 };

	(void)state;
	/* Bits 0..19 set, 20..46 clear, 47..48 set, 49..63 clear. */
	assert_int_equal(util_bit_run(bm, 0, 64), 20);
	assert_int_equal(util_bit_run(bm, 3, 64), 17);
	assert_int_equal(util_bit_run(bm, 19, 64), 1);
	assert_int_equal(util_bit_run(bm, 20, 64), 27);
	assert_int_equal(util_bit_run(bm, 24, 64), 23);
	assert_int_equal(util_bit_run(bm, 47, 17), 2);
	assert_int_equal(util_bit_run(bm, 48, 16), 1);
	assert_int_equal(util_bit_run(bm, 49, 15), 15);
	/* The maximum caps the run, in the middle of a byte or at one. */
	assert_int_equal(util_bit_run(bm, 0, 5), 5);
	assert_int_equal(util_bit_run(bm, 0, 16), 16);
	assert_int_equal(util_bit_run(bm, 20, 1), 1);
	assert_int_equal(util_bit_run(bm, 21, 10), 10);
}

/* Reference model: bit by bit. */
static uint64_t model_run(const uint8_t *bm, uint64_t i, uint64_t max)
{
	bool v = (bm[i / 8] >> (7 - i % 8)) & 1;
	uint64_t n = 1;

	while (n < max && (((bm[(i + n) / 8] >> (7 - (i + n) % 8)) & 1) == v))
		n++;
	return n;
}

static uint32_t rng = 12345;
static uint32_t next(void)
{
	rng = rng * 1103515245u + 12345u;
	return rng >> 8;
}

static void test_run_matches_model(void **state)
{
	uint8_t bm[64];

	(void)state;
	for (int round = 0; round < 400; round++) {
		/* Long runs: mostly whole 0x00/0xff bytes with a few mixed. */
		for (size_t k = 0; k < sizeof(bm); k++) {
			uint32_t r = next() % 8;

			bm[k] = r < 3 ? 0x00 : r < 6 ? 0xff : (uint8_t)next();
		}
		for (int q = 0; q < 20; q++) {
			uint64_t i = next() % (sizeof(bm) * 8);
			uint64_t max = 1 + next() % (sizeof(bm) * 8 - i);

			assert_int_equal(util_bit_run(bm, i, max),
					 model_run(bm, i, max));
		}
	}
}

static void test_set_range_edges(void **state)
{
	uint8_t bm[8];

	(void)state;
	/* Inside one byte. */
	memset(bm, 0, sizeof(bm));
	util_bit_set_range(bm, 10, 3);
	assert_int_equal(bm[1], 0x38);
	assert_int_equal(bm[0] | bm[2], 0);
	/* n = 0 changes nothing, also at an unaligned start. */
	memset(bm, 0, sizeof(bm));
	util_bit_set_range(bm, 5, 0);
	util_bit_set_range(bm, 16, 0);
	for (int k = 0; k < 8; k++)
		assert_int_equal(bm[k], 0);
	/* Aligned start, whole bytes. */
	util_bit_set_range(bm, 8, 16);
	assert_int_equal(bm[0], 0x00);
	assert_int_equal(bm[1], 0xff);
	assert_int_equal(bm[2], 0xff);
	assert_int_equal(bm[3], 0x00);
	/* Unaligned start and end spanning whole bytes: bits 5..34. */
	memset(bm, 0, sizeof(bm));
	util_bit_set_range(bm, 5, 30);
	assert_int_equal(bm[0], 0x07);
	assert_int_equal(bm[1], 0xff);
	assert_int_equal(bm[2], 0xff);
	assert_int_equal(bm[3], 0xff);
	assert_int_equal(bm[4], 0xe0);
	assert_int_equal(bm[5], 0x00);
	/* Ends exactly on a byte boundary from an unaligned start. */
	memset(bm, 0, sizeof(bm));
	util_bit_set_range(bm, 3, 13);
	assert_int_equal(bm[0], 0x1f);
	assert_int_equal(bm[1], 0xff);
	assert_int_equal(bm[2], 0x00);
	/* The very last bit of the map, and a range up to the end. */
	memset(bm, 0, sizeof(bm));
	util_bit_set_range(bm, 63, 1);
	assert_int_equal(bm[7], 0x01);
	util_bit_set_range(bm, 52, 12);
	assert_int_equal(bm[6], 0x0f);
	assert_int_equal(bm[7], 0xff);
	assert_int_equal(bm[5], 0x00);
	/* Setting leaves bits already set, set. */
	memset(bm, 0, sizeof(bm));
	bm[2] = 0x81;
	util_bit_set_range(bm, 17, 2);
	assert_int_equal(bm[2], 0xe1);
}

static void test_set_range_matches_model(void **state)
{
	uint8_t bm[40], model[40];

	(void)state;
	for (int round = 0; round < 2000; round++) {
		uint64_t i = next() % 320;
		uint64_t n = next() % (320 - i + 1);

		for (size_t k = 0; k < sizeof(bm); k++)
			bm[k] = model[k] = (uint8_t)(next() & next());
		util_bit_set_range(bm, i, n);
		for (uint64_t k = i; k < i + n; k++)
			model[k / 8] |= (uint8_t)(0x80 >> (k % 8));
		assert_memory_equal(bm, model, sizeof(bm));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bit_order_is_msb_first),
		cmocka_unit_test(test_run_lengths),
		cmocka_unit_test(test_run_matches_model),
		cmocka_unit_test(test_set_range_edges),
		cmocka_unit_test(test_set_range_matches_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
