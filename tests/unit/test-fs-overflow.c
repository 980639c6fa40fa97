/* fs-overflow.h: checked add and multiply report overflow exactly at the
 * type's limit (uint32_t, uint64_t, size_t) and store the wrapped result;
 * fs_range_ok accepts off + len <= size without computing an overflowing
 * off + len. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/fs-overflow.h"

static void test_add(void **state)
{
	uint32_t r32;
	uint64_t r64;
	size_t rs;

	(void)state;
	assert_false(fs_add_overflow_u32(UINT32_MAX - 1, 1, &r32));
	assert_true(r32 == UINT32_MAX);
	assert_true(fs_add_overflow_u32(UINT32_MAX, 1, &r32));
	assert_true(r32 == 0);
	assert_true(fs_add_overflow_u32(0x80000000u, 0x80000001u, &r32));
	assert_true(r32 == 1);

	assert_false(fs_add_overflow_u64(UINT64_MAX - 5, 5, &r64));
	assert_true(r64 == UINT64_MAX);
	assert_true(fs_add_overflow_u64(UINT64_MAX - 5, 6, &r64));
	assert_true(r64 == 0);
	/* 32-bit limits mean nothing to the 64-bit check. */
	assert_false(fs_add_overflow_u64(UINT32_MAX, 1, &r64));
	assert_true(r64 == 1ull << 32);

	assert_false(fs_add_overflow_size(SIZE_MAX - 1, 1, &rs));
	assert_true(rs == SIZE_MAX);
	assert_true(fs_add_overflow_size(SIZE_MAX, SIZE_MAX, &rs));
	assert_true(rs == SIZE_MAX - 1);
}

static void test_mul(void **state)
{
	uint32_t r32;
	uint64_t r64;
	size_t rs;

	(void)state;
	assert_false(fs_mul_overflow_u32(0xffff, 0x10001, &r32));
	assert_true(r32 == UINT32_MAX);
	assert_true(fs_mul_overflow_u32(0x10000, 0x10000, &r32));
	assert_true(r32 == 0);
	assert_false(fs_mul_overflow_u32(0, UINT32_MAX, &r32));
	assert_true(r32 == 0);

	assert_false(fs_mul_overflow_u64(0x10000, 0x10000, &r64));
	assert_true(r64 == 1ull << 32);
	assert_false(fs_mul_overflow_u64(UINT32_MAX, UINT32_MAX + 2ull, &r64));
	assert_true(r64 == UINT64_MAX);
	assert_true(fs_mul_overflow_u64(1ull << 32, 1ull << 32, &r64));
	assert_true(r64 == 0);
	/* A 2 TiB disk's sector count times 512: fine; times 2^55: not. */
	assert_false(fs_mul_overflow_u64(1ull << 32, 512, &r64));
	assert_true(fs_mul_overflow_u64(1ull << 32, 1ull << 55, &r64));

	assert_false(fs_mul_overflow_size(SIZE_MAX / 3, 3, &rs));
	assert_true(rs == SIZE_MAX / 3 * 3);
	assert_true(fs_mul_overflow_size(SIZE_MAX / 2 + 1, 2, &rs));
	assert_true(rs == 0);
}

static void test_range(void **state)
{
	(void)state;
	assert_true(fs_range_ok(0, 0, 0));
	assert_true(fs_range_ok(0, 512, 512));
	assert_true(fs_range_ok(512, 0, 512));      /* empty, at the end */
	assert_true(fs_range_ok(100, 412, 512));
	assert_false(fs_range_ok(100, 413, 512));
	assert_false(fs_range_ok(513, 0, 512));     /* starts past the end */
	assert_false(fs_range_ok(1, UINT64_MAX, UINT64_MAX));
	/* off + len wraps to a small number: still refused. */
	assert_false(fs_range_ok(UINT64_MAX - 10, 20, 4096));
	assert_false(fs_range_ok(16, UINT64_MAX - 8, 4096));
	assert_true(fs_range_ok(UINT64_MAX - 10, 10, UINT64_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add),
		cmocka_unit_test(test_mul),
		cmocka_unit_test(test_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
