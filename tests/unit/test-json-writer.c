/* common/json: string escaping (qemu's rules for bytes that are not
 * UTF-8: each bad sequence one \uFFFD), the layout (objects on one line,
 * array elements one a line), and the buffer form's truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"

static void expect_quote(const char *in, const char *want)
{
	char buf[256];
	size_t n = json_quote_buf(buf, sizeof(buf), in);

	if (strcmp(buf, want) || n != strlen(want))
		fail_msg("json_quote(\"%s\") = %s (%zu); expected %s", in, buf, n, want);
}

static void test_escapes(void **state)
{
	(void)state;
	expect_quote("plain", "\"plain\"");
	expect_quote("a\"b\\c", "\"a\\\"b\\\\c\"");
	expect_quote("t\tn\nr\r\x01\x1f", "\"t\\tn\\nr\\r\\u0001\\u001F\"");
	expect_quote("", "\"\"");
	expect_quote(NULL, "null");
}

static void test_valid_utf8_passes(void **state)
{
	(void)state;
	expect_quote("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f",
		     "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"");
	expect_quote("\xf4\x8f\xbf\xbd", "\"\xf4\x8f\xbf\xbd\"");   /* U+10FFFD */
}

static void test_invalid_utf8(void **state)
{
	(void)state;
	/* A stray continuation byte, 0xFE and 0xFF: one each. */
	expect_quote("a\x80z", "\"a\\uFFFDz\"");
	expect_quote("\xfe\xff", "\"\\uFFFD\\uFFFD\"");
	/* Cut short: the lead byte and the continuation bytes it took. */
	expect_quote("\xc3(", "\"\\uFFFD(\"");
	expect_quote("\xe2\x82(", "\"\\uFFFD(\"");
	expect_quote("\xe2\x82", "\"\\uFFFD\"");
	/* Whole sequences that are overlong, surrogates, past U+10FFFF, or
	 * noncharacters: one each. */
	expect_quote("\xc0\xaf", "\"\\uFFFD\"");
	expect_quote("\xe0\x80\xaf", "\"\\uFFFD\"");
	expect_quote("\xed\xa0\x80", "\"\\uFFFD\"");
	expect_quote("\xf4\x90\x80\x80", "\"\\uFFFD\"");
	expect_quote("\xef\xbf\xbe", "\"\\uFFFD\"");
	expect_quote("\xef\xb7\x90", "\"\\uFFFD\"");
	/* Five- and six-byte forms (not UTF-8 any more). */
	expect_quote("\xf8\x88\x80\x80\x80x", "\"\\uFFFDx\"");
}

static void test_buffer_truncates(void **state)
{
	(void)state;
	char buf[6];
	size_t n = json_quote_buf(buf, sizeof(buf), "abcdefgh");

	assert_int_equal(n, 10);
	assert_string_equal(buf, "\"abcd");
	assert_int_equal(json_quote_buf(NULL, 0, "x"), 3);
}

static void test_layout(void **state)
{
	(void)state;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	struct json j;

	assert_non_null(f);
	json_begin(&j, f);
	json_obj(&j);
	json_kv_str(&j, "name", "x\xff");
	json_kv_u64(&j, "size", 18446744073709551615ull);
	json_key(&j, "list");
	json_arr(&j);
	json_obj(&j);
	json_kv_bool(&j, "a", true);
	json_key(&j, "n");
	json_i64(&j, -5);
	json_end_obj(&j);
	json_null(&j);
	json_double(&j, 1.5, 3);
	json_end_arr(&j);
	json_key(&j, "empty");
	json_arr(&j);
	json_end_arr(&j);
	json_key(&j, "raw");
	json_raw(&j, "{\"k\": 1}");
	json_end_obj(&j);
	assert_int_equal(json_finish(&j), 0);
	fclose(f);
	assert_string_equal(out,
		"{\"name\": \"x\\uFFFD\", \"size\": 18446744073709551615, \"list\": [\n"
		"    {\"a\": true, \"n\": -5},\n"
		"    null,\n"
		"    1.500\n"
		"  ], \"empty\": [], \"raw\": {\"k\": 1}}\n");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_valid_utf8_passes),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_buffer_truncates),
		cmocka_unit_test(test_layout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
