/* Parent locator strings: UTF-8 <-> UTF-16 (LE for W2ru/W2ku locators, BE
 * for the header's parent name) including surrogate pairs and invalid
 * input, turning a Windows/Mac locator into a POSIX path, and the relative
 * path a child stores to find its parent.  Expected UTF-16 bytes are
 * written out from the Unicode code points by hand. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vhd/vhd-int.h"

static void check_encode(const char *s, bool le, const uint8_t *want,
			 int wantlen)
{
	uint8_t out[64];

	memset(out, 0xee, sizeof(out));
	assert_int_equal(vhd_utf16_encode(s, out, sizeof(out), le), wantlen);
	assert_memory_equal(out, want, (size_t)wantlen);
	assert_int_equal(out[wantlen], 0xee);   /* nothing written past */
}

static void test_encode_ascii_le_and_be(void **state)
{
	static const uint8_t le[] = { 'a', 0, '\\', 0, 'Z', 0, '1', 0 };
	static const uint8_t be[] = { 0, 'a', 0, '\\', 0, 'Z', 0, '1' };

	(void)state;
	check_encode("a\\Z1", true, le, 8);
	check_encode("a\\Z1", false, be, 8);
	check_encode("", true, le, 0);
}

static void test_encode_bmp_and_surrogates(void **state)
{
	/* U+00E9 (C3 A9), U+20AC (E2 82 AC), U+1F600 (F0 9F 98 80) =
	 * D83D DE00, U+10FFFF (F4 8F BF BF) = DBFF DFFF. */
	static const uint8_t le[] = { 0xe9, 0x00, 0xac, 0x20, 0x3d, 0xd8, 0x00,
				      0xde, 0xff, 0xdb, 0xff, 0xdf, 'x', 0 };
	static const uint8_t be[] = { 0x00, 0xe9, 0x20, 0xac, 0xd8, 0x3d, 0xde,
				      0x00, 0xdb, 0xff, 0xdf, 0xff, 0, 'x' };
	const char *s = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbfx";

	(void)state;
	check_encode(s, true, le, sizeof(le));
	check_encode(s, false, be, sizeof(be));
	/* U+10000, the first code point needing a pair: D800 DC00. */
	static const uint8_t first[] = { 0xd8, 0x00, 0xdc, 0x00 };
	check_encode("\xf0\x90\x80\x80", false, first, 4);
}

static void test_encode_rejects_invalid_utf8(void **state)
{
	static const char *const bad[] = {
		"\x80",                 /* lone continuation byte */
		"a\xc3",                /* truncated 2-byte sequence */
		"\xe2\x82",             /* truncated 3-byte sequence */
		"\xe2\x28\xac",         /* bad continuation */
		"\xff",                 /* never valid */
		"\xf8\x88\x80\x80\x80", /* 5-byte form */
		"\xed\xa0\x80",         /* U+D800: a surrogate encoded in UTF-8 */
		"\xed\xbf\xbf",         /* U+DFFF */
		"\xf4\x90\x80\x80",     /* U+110000, past Unicode */
		"\xc0\xaf",             /* overlong '/' */
		"\xe0\x80\xaf",         /* overlong '/' */
		"\xf0\x80\x80\xaf",     /* overlong '/' */
		"\xc1\xbf",             /* overlong U+007F */
	};
	uint8_t out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(vhd_utf16_encode(bad[i], out, sizeof(out), true),
				 -EINVAL);
}

static void test_encode_too_long(void **state)
{
	uint8_t out[8];

	(void)state;
	/* Exactly fits: 4 units. */
	assert_int_equal(vhd_utf16_encode("abcd", out, 8, true), 8);
	assert_int_equal(vhd_utf16_encode("abcde", out, 8, true), -ENAMETOOLONG);
	/* A pair that would be split by the end of the buffer. */
	assert_int_equal(vhd_utf16_encode("abc\xf0\x9f\x98\x80", out, 8, true),
			 -ENAMETOOLONG);
	/* The header's parent name field holds 256 units. */
	char name[300];
	uint8_t field[512];

	memset(name, 'n', 256);
	name[256] = '\0';
	assert_int_equal(vhd_utf16_encode(name, field, sizeof(field), false), 512);
	name[256] = 'n';
	name[257] = '\0';
	assert_int_equal(vhd_utf16_encode(name, field, sizeof(field), false),
			 -ENAMETOOLONG);
}

static void test_decode_le_be_and_pairs(void **state)
{
	static const uint8_t le[] = { 'p', 0, 0xe9, 0x00, 0xac, 0x20, 0x3d, 0xd8,
				      0x00, 0xde, '.', 0 };
	static const uint8_t be[] = { 0, 'p', 0x00, 0xe9, 0x20, 0xac, 0xd8, 0x3d,
				      0xde, 0x00, 0, '.' };
	const char *want = "p\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80.";
	char out[64];

	(void)state;
	assert_int_equal(vhd_utf16_decode(le, sizeof(le), out, sizeof(out), true),
			 (int)strlen(want));
	assert_string_equal(out, want);
	assert_int_equal(vhd_utf16_decode(be, sizeof(be), out, sizeof(out), false),
			 (int)strlen(want));
	assert_string_equal(out, want);
}

static void test_decode_stops_at_nul_and_odd_byte(void **state)
{
	/* The parent name field is NUL padded; data after the NUL unit is
	 * not part of the name. */
	static const uint8_t padded[] = { 0, 'a', 0, 'b', 0, 0, 0, 'c', 0, 0 };
	/* A trailing odd byte is not a unit. */
	static const uint8_t odd[] = { 'x', 0, 'y' };
	char out[16];

	(void)state;
	assert_int_equal(vhd_utf16_decode(padded, sizeof(padded), out,
					  sizeof(out), false), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(vhd_utf16_decode(odd, sizeof(odd), out, sizeof(out),
					  true), 1);
	assert_string_equal(out, "x");
	assert_int_equal(vhd_utf16_decode(odd, 0, out, sizeof(out), true), 0);
	assert_string_equal(out, "");
}

static void test_decode_rejects_bad_surrogates(void **state)
{
	static const uint8_t lone_hi_end[] = { 'a', 0, 0x3d, 0xd8 };
	static const uint8_t hi_then_bmp[] = { 0x3d, 0xd8, 'a', 0 };
	static const uint8_t hi_then_hi[] = { 0x3d, 0xd8, 0x3d, 0xd8 };
	static const uint8_t lone_lo[] = { 0x00, 0xde, 'a', 0 };
	static const uint8_t hi_then_nul[] = { 0x3d, 0xd8, 0, 0 };
	char out[16];

	(void)state;
	assert_int_equal(vhd_utf16_decode(lone_hi_end, sizeof(lone_hi_end), out,
					  sizeof(out), true), -EINVAL);
	assert_int_equal(vhd_utf16_decode(hi_then_bmp, sizeof(hi_then_bmp), out,
					  sizeof(out), true), -EINVAL);
	assert_int_equal(vhd_utf16_decode(hi_then_hi, sizeof(hi_then_hi), out,
					  sizeof(out), true), -EINVAL);
	assert_int_equal(vhd_utf16_decode(lone_lo, sizeof(lone_lo), out,
					  sizeof(out), true), -EINVAL);
	assert_int_equal(vhd_utf16_decode(hi_then_nul, sizeof(hi_then_nul), out,
					  sizeof(out), true), -EINVAL);
}

static void test_decode_output_too_small(void **state)
{
	static const uint8_t le[] = { 'a', 0, 'b', 0, 0xe9, 0 };   /* "ab\u00e9" */
	char out[8];

	(void)state;
	/* Needs 4 bytes + NUL. */
	assert_int_equal(vhd_utf16_decode(le, sizeof(le), out, 5, true), 4);
	memset(out, 'z', sizeof(out));
	assert_int_equal(vhd_utf16_decode(le, sizeof(le), out, 4, true), -EINVAL);
	assert_int_equal(vhd_utf16_decode(le, sizeof(le), out, 0, true), -EINVAL);
	assert_int_equal(out[4], 'z');   /* no write past outlen */
}

static void test_encode_decode_round_trip(void **state)
{
	static const char *const s[] = {
		"..\\base\\parent disk.vhd",
		"C:\\Hyper-V\\\xe6\x97\xa5\xe6\x9c\xac\\\xf0\x9f\x92\xbe.vhd",
		"\xd0\x94\xd0\xb8\xd1\x81\xd0\xba",
	};
	uint8_t u[256];
	char back[256];

	(void)state;
	for (size_t i = 0; i < 3; i++)
		for (int le = 0; le < 2; le++) {
			int n = vhd_utf16_encode(s[i], u, sizeof(u), le);

			assert_true(n > 0);
			assert_int_equal(vhd_utf16_decode(u, (size_t)n, back,
							  sizeof(back), le),
					 (int)strlen(s[i]));
			assert_string_equal(back, s[i]);
		}
}

static void check_posix(const char *in, int ret, const char *out_want,
			const char *base_want)
{
	char out[128];
	const char *base = NULL;

	assert_int_equal(vhd_locator_to_posix(in, out, sizeof(out), &base), ret);
	if (out_want)
		assert_string_equal(out, out_want);
	assert_non_null(base);
	assert_string_equal(base, base_want);
}

static void test_locator_to_posix(void **state)
{
	char small[8];

	(void)state;
	/* Hyper-V's relative locator: ".\" prefix, backslashes. */
	check_posix(".\\parent.vhd", 0, "parent.vhd", "parent.vhd");
	check_posix(".\\..\\base\\p.vhd", 0, "../base/p.vhd", "p.vhd");
	check_posix("..\\base\\p.vhd", 0, "../base/p.vhd", "p.vhd");
	check_posix(".\\.\\p.vhd", 0, "p.vhd", "p.vhd");
	/* Already POSIX. */
	check_posix("/srv/vm/p.vhd", 0, "/srv/vm/p.vhd", "p.vhd");
	check_posix("sub/p.vhd", 0, "sub/p.vhd", "p.vhd");
	/* MacX: a file URL. */
	check_posix("file:///Users/me/p.vhd", 0, "/Users/me/p.vhd", "p.vhd");
	/* Windows drive paths cannot be used, but their file name can. */
	check_posix("C:\\VMs\\Disks\\p.vhd", -EINVAL, NULL, "p.vhd");
	check_posix("d:\\p.vhd", -EINVAL, NULL, "p.vhd");
	/* ".." is kept: it is a real parent folder, not a prefix to drop. */
	check_posix("..p.vhd", 0, "..p.vhd", "..p.vhd");
	/* Too long for the output. */
	assert_int_equal(vhd_locator_to_posix("abcdefgh", small, sizeof(small),
					      NULL), -ENAMETOOLONG);
	assert_int_equal(vhd_locator_to_posix("abcdefg", small, sizeof(small),
					      NULL), 0);
	assert_string_equal(small, "abcdefg");
}

static void check_rel(const char *from, const char *to, const char *want)
{
	char out[256];

	assert_int_equal(vhd_relpath(from, to, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_relpath(void **state)
{
	char small[10];

	(void)state;
	check_rel("/a/b", "/a/b/p.vhd", "p.vhd");
	check_rel("/a/b", "/a/b/c/p.vhd", "c/p.vhd");
	check_rel("/a/b", "/a/p.vhd", "../p.vhd");
	check_rel("/a/b/c", "/x/y/p.vhd", "../../../x/y/p.vhd");
	check_rel("/", "/p.vhd", "p.vhd");
	check_rel("/a", "/p.vhd", "../p.vhd");
	/* Shared name prefixes are not shared folders. */
	check_rel("/a/bc", "/a/b/p.vhd", "../b/p.vhd");
	check_rel("/a/b", "/a/bc/p.vhd", "../bc/p.vhd");
	check_rel("/vm/disk", "/vm/disks/p.vhd", "../disks/p.vhd");
	/* Output limits. */
	assert_int_equal(vhd_relpath("/a/b/c", "/x/p.vhd", small, sizeof(small)),
			 -ENAMETOOLONG);
	assert_int_equal(vhd_relpath("/a", "/a/1234567890", small, sizeof(small)),
			 -ENAMETOOLONG);
	assert_int_equal(vhd_relpath("/a", "/a/123456789", small, sizeof(small)),
			 0);
	assert_string_equal(small, "123456789");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_ascii_le_and_be),
		cmocka_unit_test(test_encode_bmp_and_surrogates),
		cmocka_unit_test(test_encode_rejects_invalid_utf8),
		cmocka_unit_test(test_encode_too_long),
		cmocka_unit_test(test_decode_le_be_and_pairs),
		cmocka_unit_test(test_decode_stops_at_nul_and_odd_byte),
		cmocka_unit_test(test_decode_rejects_bad_surrogates),
		cmocka_unit_test(test_decode_output_too_small),
		cmocka_unit_test(test_encode_decode_round_trip),
		cmocka_unit_test(test_locator_to_posix),
		cmocka_unit_test(test_relpath),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
