/* util_parse_size: integers with optional binary K/M/G/T suffixes and an
 * optional "B"/"iB"; everything else is -EINVAL, values past 2^64-1 are
 * -ERANGE.  util_fmt_size: the human form used in messages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"

static void expect_ok(const char *s, uint64_t want)
{
	uint64_t v = 0x5a5a5a5a;
	int r = util_parse_size(s, &v);

	if (r != 0 || v != want)
		fail_msg("util_parse_size(\"%s\") = %d, %llu; expected 0, %llu", s,
			 r, (unsigned long long)v, (unsigned long long)want);
}

static void expect_err(const char *s, int err)
{
	uint64_t v = 0x5a5a5a5a;
	int r = util_parse_size(s, &v);

	if (r != err)
		fail_msg("util_parse_size(\"%s\") = %d (value %llu); expected %d",
			 s ? s : "(null)", r, (unsigned long long)v, err);
	assert_true(v == 0x5a5a5a5a);   /* untouched on error */
}

static void test_plain_numbers(void **state)
{
	(void)state;
	expect_ok("0", 0);
	expect_ok("512", 512);
	expect_ok("10485760", 10485760);
	expect_ok("007", 7);
	expect_ok("18446744073709551615", UINT64_MAX);
	expect_ok("100B", 100);
	expect_ok("100b", 100);
}

static void test_binary_suffixes(void **state)
{
	(void)state;
	expect_ok("1K", 1024);
	expect_ok("1k", 1024);
	expect_ok("3M", 3u << 20);
	expect_ok("10m", 10u << 20);
	expect_ok("1G", 1ull << 30);
	expect_ok("2040g", 2040ull << 30);
	expect_ok("2T", 2ull << 40);
	expect_ok("4KiB", 4096);
	expect_ok("4kib", 4096);
	expect_ok("4KB", 4096);
	expect_ok("4kb", 4096);
	expect_ok("127MiB", 127ull << 20);
	expect_ok("0G", 0);
}

static void test_rejects_malformed(void **state)
{
	static const char *const bad[] = {
		"", "K", "B", "x", "1X", "1KK", "1 K", "1K ", " 1", "1 ", "\t1",
		"\t-1", "\n5", "-1", "+1", "-0", "1.5G", "1,5G", "0x10", "1e3",
		"1iB", "1Bi", "1KiBB", "1MiBx", "1KBB", "10M10", "--1",
	};

	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++)
		expect_err(bad[i], -EINVAL);
	expect_err(NULL, -EINVAL);
}

static void test_overflow(void **state)
{
	(void)state;
	/* 2^64 and beyond. */
	expect_err("18446744073709551616", -ERANGE);
	expect_err("99999999999999999999999", -ERANGE);
	/* 2^24 TiB = 2^64; one less fits. */
	expect_err("16777216T", -ERANGE);
	expect_ok("16777215T", (16777215ull) << 40);
	/* 2^34 GiB = 2^64. */
	expect_err("17179869184G", -ERANGE);
	expect_ok("17179869183G", 17179869183ull << 30);
	/* 2^54 KiB = 2^64. */
	expect_err("18014398509481984K", -ERANGE);
	expect_ok("18014398509481983K", 18014398509481983ull << 10);
	expect_err("17592186044416M", -ERANGE);
}

static void test_fmt_size(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(util_fmt_size(0, buf, sizeof(buf)), "0 B");
	assert_string_equal(util_fmt_size(1023, buf, sizeof(buf)), "1023 B");
	assert_string_equal(util_fmt_size(1024, buf, sizeof(buf)), "1.0 KiB");
	assert_string_equal(util_fmt_size(1536, buf, sizeof(buf)), "1.5 KiB");
	assert_string_equal(util_fmt_size(10ull << 20, buf, sizeof(buf)),
			    "10.0 MiB");
	assert_string_equal(util_fmt_size(2ull << 30, buf, sizeof(buf)),
			    "2.0 GiB");
	assert_string_equal(util_fmt_size(2048ull << 40, buf, sizeof(buf)),
			    "2048.0 TiB");
	/* Truncated to the buffer, still terminated. */
	assert_string_equal(util_fmt_size(2ull << 30, buf, 4), "2.0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_numbers),
		cmocka_unit_test(test_binary_suffixes),
		cmocka_unit_test(test_rejects_malformed),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_fmt_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
