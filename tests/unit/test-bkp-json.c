/* The manifest parser: what we write parses back field for field, and
 * damaged or hostile text is refused with a reason, never a crash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "backup/bkp-int.h"

static struct bkp_json *parse(const char *s, char *why, size_t wl)
{
	return bkp_json_parse(s, strlen(s), why, wl);
}

static void test_values(void **state)
{
	char why[200];
	struct bkp_json *j = parse(
		" {\"a\": 18446744073709551615, \"b\": -5, \"c\": 1.5e3, "
		"\"d\": \"x\\u00e9\\n\\\"\", \"e\": [true, false, null, {}], "
		"\"f\": {\"g\": []}} ", why, sizeof(why));
	const struct bkp_json *v;

	(void)state;
	assert_non_null(j);
	v = bkp_json_get(j, "a");
	assert_true(v->is_u64);
	assert_true(v->u64 == UINT64_MAX);
	assert_false(v->is_i64);
	v = bkp_json_get(j, "b");
	assert_false(v->is_u64);
	assert_true(v->is_i64 && v->i64 == -5);
	v = bkp_json_get(j, "c");
	assert_true(v->type == BKP_J_NUM && v->num == 1500.0 && !v->is_u64);
	assert_string_equal(bkp_json_get(j, "d")->s, "x\xc3\xa9\n\"");
	v = bkp_json_get(j, "e");
	assert_int_equal(v->type, BKP_J_ARR);
	assert_int_equal(v->n, 4);
	assert_true(v->v[0]->b && !v->v[1]->b && v->v[2]->type == BKP_J_NULL);
	assert_int_equal(bkp_json_get(bkp_json_get(j, "f"), "g")->type, BKP_J_ARR);
	assert_null(bkp_json_get(j, "missing"));
	bkp_json_free(j);
}

static void test_refused(void **state)
{
	static const char *const bad[] = {
		"", "{", "}", "{\"a\" 1}", "{\"a\": 1,}", "[1 2]", "{\"a\": tru}",
		"\"unterminated", "\"nul\\u0000\"", "\"bad\\q\"", "\"ctl\x01\"",
		"{\"a\": 1} x", "+1", "1e999", "{\"a\": \"\\ud800\"}", "[-]",
		"{\"a\": \"\\u12\"}", "nul", "{1: 2}",
	};
	char why[200];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct bkp_json *j = parse(bad[i], why, sizeof(why));

		if (j)
			fail_msg("accepted: %s", bad[i]);
		assert_true(why[0] != '\0');
	}
}

static void test_deep_nesting(void **state)
{
	char buf[4096], why[200];

	(void)state;
	memset(buf, '[', 2000);
	memset(buf + 2000, ']', 2000);
	buf[4000] = '\0';
	assert_null(parse(buf, why, sizeof(why)));
	assert_non_null(strstr(why, "deeply"));
	/* Within the limit it parses. */
	assert_non_null(strcpy(buf, "[[[[[[[[[[1]]]]]]]]]]"));
	bkp_json_free(parse(buf, why, sizeof(why)));
}

/* Every prefix of a manifest-like text is refused (truncated files). */
static void test_truncations(void **state)
{
	struct bkp_info b = { 0 };
	char why[200], *text;
	size_t len;

	(void)state;
	strcpy(b.id, "20250101T000000Z-01234567");
	strcpy(b.source, "/tmp/dir with \"quotes\"\\and\tcontrols");
	strcpy(b.source_format, "raw");
	strcpy(b.disk_id, "raw:1:2");
	strcpy(b.consistency, "offline");
	memset(b.index_sha256, 'a', 64);
	b.chunk_size = 4096;
	text = bkp_info_json(&b);
	assert_non_null(text);
	len = strlen(text);
	for (size_t n = 0; n < len; n++)
		assert_null(bkp_json_parse(text, n, why, sizeof(why)));
	struct bkp_json *j = bkp_json_parse(text, len, why, sizeof(why));
	assert_non_null(j);
	assert_string_equal(bkp_json_get(j, "source")->s, b.source);
	assert_int_equal(bkp_json_get(j, "parent")->type, BKP_J_NULL);
	assert_string_equal(bkp_json_get(j, "kind")->s, "full");
	bkp_json_free(j);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_truncations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
