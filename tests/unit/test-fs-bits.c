/* fs-bits.h: powers of two, ilog2, rounding, and both bitmap layouts.
 * The find-next functions are compared with a bit-by-bit model on random
 * bitmaps, every start and end, so the word- and byte-skipping paths and
 * their edges (start inside a byte, end inside a word) are all covered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/fs-bits.h"

static uint64_t rnd_state = 0x853c49e6748fea9bull;

static uint64_t rnd(void)
{
	rnd_state = rnd_state * 6364136223846793005ull + 1442695040888963407ull;
	return rnd_state >> 11;
}

static void test_arith(void **state)
{
	int i;

	(void)state;
	assert_false(fs_is_power_of_2(0));
	assert_true(fs_is_power_of_2(1));
	assert_true(fs_is_power_of_2(1ull << 63));
	assert_false(fs_is_power_of_2(3));
	assert_false(fs_is_power_of_2(UINT64_MAX));
	assert_int_equal(fs_ilog2(0), -1);
	assert_int_equal(fs_ilog2(1), 0);
	assert_int_equal(fs_ilog2(4095), 11);
	assert_int_equal(fs_ilog2(4096), 12);
	assert_int_equal(fs_ilog2(UINT64_MAX), 63);
	for (i = 0; i < 64; i++) {
		assert_int_equal(fs_ilog2(1ull << i), i);
		assert_true(fs_is_power_of_2(1ull << i));
	}

	assert_true(fs_div_round_up(0, 512) == 0);
	assert_true(fs_div_round_up(1, 512) == 1);
	assert_true(fs_div_round_up(512, 512) == 1);
	assert_true(fs_div_round_up(513, 512) == 2);
	/* n + d - 1 would overflow here; the result must not. */
	assert_true(fs_div_round_up(UINT64_MAX, 2) == (UINT64_MAX >> 1) + 1);

	assert_true(fs_align_down(4097, 4096) == 4096);
	assert_true(fs_align_down(4095, 4096) == 0);
	assert_true(fs_align_up(0, 4096) == 0);
	assert_true(fs_align_up(1, 4096) == 4096);
	assert_true(fs_align_up(4096, 4096) == 4096);
	assert_true(fs_align_up(4097, 4096) == 8192);
	/* Any alignment, not only powers of two. */
	assert_true(fs_align_up(10, 3) == 12);
	assert_true(fs_align_down(10, 3) == 9);
}

static void test_word_bitmap(void **state)
{
	uint64_t map[3] = { 0 };

	(void)state;
	fs_bit_set(map, 0);
	fs_bit_set(map, 63);
	fs_bit_set(map, 64);
	fs_bit_set(map, 191);
	assert_true(map[0] == (1ull | 1ull << 63));
	assert_true(map[1] == 1);
	assert_true(map[2] == 1ull << 63);
	assert_true(fs_bit_test(map, 63) && !fs_bit_test(map, 62));
	fs_bit_clear(map, 63);
	assert_true(map[0] == 1);
	assert_false(fs_bit_test(map, 63));

	assert_int_equal(fs_find_next_bit(map, 0, 192, true), 0);
	assert_int_equal(fs_find_next_bit(map, 1, 192, true), 64);
	assert_int_equal(fs_find_next_bit(map, 65, 192, true), 191);
	assert_int_equal(fs_find_next_bit(map, 65, 191, true), 191);  /* none: end */
	assert_int_equal(fs_find_next_bit(map, 0, 192, false), 1);
	assert_int_equal(fs_find_next_bit(map, 5, 5, true), 5);       /* empty */
}

static size_t model_words(const uint64_t *map, size_t s, size_t e, bool v)
{
	for (; s < e; s++)
		if (fs_bit_test(map, s) == v)
			return s;
	return e;
}

static uint64_t model_bytes(const uint8_t *bm, uint64_t s, uint64_t e, bool v)
{
	for (; s < e; s++)
		if (((bm[s / 8] >> (7 - s % 8)) & 1) == v)
			return s;
	return e;
}

/* Random bitmaps: sparse, dense, and runs long enough for the 64-bit
 * skips. */
static void fill(uint8_t *b, size_t n, int kind)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t r = rnd();

		if (kind == 0)
			b[i] = (r % 23) ? 0 : (uint8_t)(1u << (r >> 8) % 8);
		else if (kind == 1)
			b[i] = (r % 23) ? 0xff : (uint8_t)~(1u << (r >> 8) % 8);
		else
			b[i] = (uint8_t)r;
	}
}

static void test_find_next_models(void **state)
{
	uint64_t map[5];
	uint8_t bm[40];
	int round, kind;

	(void)state;
	for (round = 0; round < 20; round++) {
		for (kind = 0; kind < 3; kind++) {
			size_t s, e;

			fill((uint8_t *)map, sizeof(map), kind);
			fill(bm, sizeof(bm), kind);
			for (s = 0; s <= 320; s += 1 + (size_t)(rnd() % 5)) {
				for (e = s; e <= 320; e += 1 + (size_t)(rnd() % 7)) {
					int v;

					for (v = 0; v < 2; v++) {
						assert_int_equal(fs_find_next_bit(map, s, e, v),
								 model_words(map, s, e, v));
						assert_int_equal(fs_be_find_next_bit(bm, s, e, v),
								 model_bytes(bm, s, e, v));
					}
				}
			}
		}
	}
}

static void test_be_bitmap(void **state)
{
	uint8_t bm[4] = { 0 };

	(void)state;
	fs_be_bit_set(bm, 0);
	fs_be_bit_set(bm, 7);
	fs_be_bit_set(bm, 9);
	assert_int_equal(bm[0], 0x81);     /* most significant bit first */
	assert_int_equal(bm[1], 0x40);
	assert_true(fs_be_bit_test(bm, 9) && !fs_be_bit_test(bm, 8));
	fs_be_bit_clear(bm, 0);
	assert_int_equal(bm[0], 0x01);
	assert_int_equal(fs_be_find_next_bit(bm, 0, 32, true), 7);
	assert_int_equal(fs_be_find_next_bit(bm, 8, 32, true), 9);
	assert_int_equal(fs_be_find_next_bit(bm, 10, 32, true), 32);
	assert_int_equal(fs_be_find_next_bit(bm, 7, 32, false), 8);
	/* start past end gives end */
	assert_int_equal(fs_be_find_next_bit(bm, 20, 10, true), 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arith),
		cmocka_unit_test(test_word_bitmap),
		cmocka_unit_test(test_be_bitmap),
		cmocka_unit_test(test_find_next_models),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
