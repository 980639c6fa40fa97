/* The freestanding build rule (Makefile: tests/freestanding/guest/NAME.c ->
 * guest.bin -> guest-blob.o): the embedded image is non-empty, starts with
 * its header at offset 0, was linked at 1 MiB, and its size as the linker
 * saw it equals the embedded bytes.  Then the image is mapped at its load
 * address and its selftest runs: the fs-*.h headers compiled with
 * -ffreestanding -nostdlib compute what the hosted tests expect. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "tests/freestanding/fs-test-head.h"

extern const uint8_t tests_freestanding_guest_start[];
extern const uint8_t tests_freestanding_guest_end[];

static size_t blob_size(void)
{
	return (size_t)(tests_freestanding_guest_end -
			tests_freestanding_guest_start);
}

static void test_blob_is_sane(void **state)
{
	struct fs_test_head h;
	size_t n = blob_size();

	(void)state;
	assert_true(n > sizeof(h));
	assert_true(n < 1 << 20);
	memcpy(&h, tests_freestanding_guest_start, sizeof(h));
	assert_memory_equal(h.magic, FS_TEST_MAGIC, sizeof(h.magic));
	assert_int_equal(h.load_addr, FS_TEST_LOAD_ADDR);
	assert_int_equal(h.image_size, n);
	assert_true((uintptr_t)h.selftest >= h.load_addr + sizeof(h));
	assert_true((uintptr_t)h.selftest < h.load_addr + n);
}

static void test_selftest_runs(void **state)
{
	size_t n = blob_size();
	size_t len = (n + 4095) & ~(size_t)4095;
	struct fs_test_head h;
	void *at = (void *)(uintptr_t)FS_TEST_LOAD_ADDR;
	void *p;

	(void)state;
	p = mmap(at, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED || p != at) {
		if (p != MAP_FAILED)
			munmap(p, len);
		print_message("cannot map 1 MiB here (%s); not run\n",
			      p == MAP_FAILED ? strerror(errno) : "moved");
		skip();
	}
	memcpy(p, tests_freestanding_guest_start, n);
	/* Code and data share the flat image, as in a guest. */
	assert_int_equal(mprotect(p, len, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
	memcpy(&h, p, sizeof(h));
	assert_int_equal(h.selftest(), 0);
	assert_int_equal(munmap(p, len), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blob_is_sane),
		cmocka_unit_test(test_selftest_runs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
