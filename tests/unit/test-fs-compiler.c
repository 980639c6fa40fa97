/* fs-compiler.h: FS_ARRAY_SIZE and FS_CONTAINER_OF give the right values;
 * FS_READ_ONCE keeps the type of what it reads (no integer promotion) and
 * FS_WRITE_ONCE stores exactly the value; the barriers can be called.
 * The compile-time refusals (a pointer to FS_ARRAY_SIZE, a wrong pointer
 * to FS_CONTAINER_OF, a struct to FS_READ_ONCE) are checked by compiling
 * snippets that must fail (test_refusals). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs-compiler.h"

FS_STATIC_ASSERT(sizeof(uint32_t) == 4, "file-scope static assert");

struct node {
	uint64_t key;
	uint16_t small;
	struct {
		int x;
	} inner;
	char name[5];
};

static void test_array_size(void **state)
{
	int a[7];
	struct node nodes[3];
	char s[] = "abc";

	(void)state;
	(void)a;
	(void)nodes;
	assert_int_equal(FS_ARRAY_SIZE(a), 7);
	assert_int_equal(FS_ARRAY_SIZE(nodes), 3);
	assert_int_equal(FS_ARRAY_SIZE(s), 4);
	assert_int_equal(FS_ARRAY_SIZE(nodes[0].name), 5);
}

static void test_container_of(void **state)
{
	struct node n;
	uint16_t *ps = &n.small;
	char (*pn)[5] = &n.name;

	(void)state;
	assert_ptr_equal(FS_CONTAINER_OF(ps, struct node, small), &n);
	assert_ptr_equal(FS_CONTAINER_OF(&n.key, struct node, key), &n);
	assert_ptr_equal(FS_CONTAINER_OF(&n.inner, struct node, inner), &n);
	assert_ptr_equal(FS_CONTAINER_OF(pn, struct node, name), &n);
}

static void test_once(void **state)
{
	uint8_t b = 0xff;
	int16_t s = -2;
	uint64_t q = 0;
	struct node *p = NULL, n;

	(void)state;
	/* Types are kept: _Generic picks on the unpromoted type. */
	assert_int_equal(_Generic(FS_READ_ONCE(b), uint8_t: 1, default: 0), 1);
	assert_int_equal(_Generic(FS_READ_ONCE(s), int16_t: 1, default: 0), 1);
	assert_int_equal(_Generic(FS_READ_ONCE(p), struct node *: 1, default: 0), 1);
	assert_int_equal(FS_READ_ONCE(b), 0xff);
	assert_int_equal(FS_READ_ONCE(s), -2);
	FS_WRITE_ONCE(q, UINT64_MAX - 1);
	assert_true(q == UINT64_MAX - 1);
	FS_WRITE_ONCE(b, 7);
	assert_int_equal(b, 7);
	FS_WRITE_ONCE(p, &n);
	assert_ptr_equal(FS_READ_ONCE(p), &n);
	FS_WRITE_ONCE(n.small, 9);
	assert_int_equal(FS_READ_ONCE(n.small), 9);
}

static void test_barriers_and_hints(void **state)
{
	volatile int hits = 0;
	int i;

	(void)state;
	fs_barrier();
	fs_smp_mb();
	fs_smp_rmb();
	fs_smp_wmb();
	for (i = 0; i < 10; i++)
		if (FS_LIKELY(i < 9))
			hits++;
		else if (FS_UNLIKELY(i == 9))
			hits += 100;
	assert_int_equal(hits, 109);
	assert_int_equal(FS_LIKELY(5), 1);
	assert_int_equal(FS_UNLIKELY(0), 0);
}

/* Each snippet must fail to compile with the project's compiler; a snippet
 * that compiles means a check was lost.  Runs from the top of the tree
 * (as make check does), with $CC or cc. */
static void test_refusals(void **state)
{
	static const char *const bad[] = {
		"int *p; unsigned long n = FS_ARRAY_SIZE(p);",
		"struct t { int a; long b; } t; int *q = &t.a;"
		" struct t *r = FS_CONTAINER_OF(q, struct t, b);",
		"struct t { long a, b; } t; struct t u = FS_READ_ONCE(t);",
		"struct t { long a, b; } t, u; void f(void) { FS_WRITE_ONCE(t, u); }",
		"FS_STATIC_ASSERT(1 == 2, \"false\");",
	};
	static const char *const good =
		"int a[3]; unsigned long n = FS_ARRAY_SIZE(a);";
	const char *cc = getenv("CC");
	char cmd[512], src[] = "/tmp/fs-compiler-XXXXXX.c";
	size_t i;
	int fd;

	(void)state;
	if (access("common/fs-compiler.h", R_OK))
		skip();                  /* not run from the top of the tree */
	if (!cc || !*cc)
		cc = "cc";
	fd = mkstemps(src, 2);
	assert_true(fd >= 0);
	for (i = 0; i <= FS_ARRAY_SIZE(bad); i++) {
		const char *body = i < FS_ARRAY_SIZE(bad) ? bad[i] : good;
		FILE *f = fopen(src, "w");
		int rc;

		assert_non_null(f);
		fprintf(f, "#include \"common/fs-compiler.h\"\n%s\n", body);
		fclose(f);
		snprintf(cmd, sizeof(cmd),
			 "%s -std=gnu11 -I. -fsyntax-only -Werror %s 2>/dev/null",
			 cc, src);
		rc = system(cmd);
		if (i < FS_ARRAY_SIZE(bad) && rc == 0)
			fail_msg("compiled, but must not: %s", body);
		if (i == FS_ARRAY_SIZE(bad) && rc != 0)
			fail_msg("did not compile, but must: %s", body);
	}
	close(fd);
	unlink(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_array_size),
		cmocka_unit_test(test_container_of),
		cmocka_unit_test(test_once),
		cmocka_unit_test(test_barriers_and_hints),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
