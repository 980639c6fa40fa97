/* The fuzz-vhd-open sequence (open three ways, read, block status, check,
 * write and read back, check --repair) over every file of the seed corpus
 * fuzz/corpus/fuzz-vhd-open/, which holds the valid seeds and every input
 * that once crashed or broke an invariant (crash-*).  Runs from the
 * repository root, like every test of `make check`. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define FUZZ_VHD_OPEN_NO_ENTRY
#define FUZZ_FAIL(...) fail_msg(__VA_ARGS__)
#include "fuzz/fuzz-vhd-open.c"

#define CORPUS "fuzz/corpus/fuzz-vhd-open"

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(util_pread_full(fd, buf, *len, 0, false), 0);
	close(fd);
	return buf;
}

static void test_corpus_replays_clean(void **state)
{
	DIR *d = opendir(CORPUS);
	struct dirent *de;
	int files = 0, crashes = 0;

	(void)state;
	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[512];
		uint8_t *data;
		size_t len;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", CORPUS, de->d_name);
		data = slurp(path, &len);
		print_message("  %s (%zu bytes)\n", de->d_name, len);
		fz_one(data, len);
		free(data);
		files++;
		crashes += !strncmp(de->d_name, "crash-", 6);
	}
	closedir(d);
	/* The valid seeds and at least one reproducer must be there. */
	assert_true(files >= 8);
	assert_true(crashes >= 1);
}

/* The seeds that are valid images must really open: otherwise the
 * corpus (and the replay above) would test only the error paths. */
static void test_valid_seeds_open(void **state)
{
	static const char *const valid[] = {
		"fixed-32k.vhd", "dynamic-64k-4k-blocks.vhd",
		"dynamic-torn-footer.vhd", "qemu-fixed-16k.vhd",
		"qemu-dynamic-empty.vhd",
	};
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(valid); i++) {
		struct vhd_open_opts o = { .flags = VHD_O_RDONLY };
		struct bdev_err e = { 0 };
		char path[512];
		struct bdev *b;

		snprintf(path, sizeof(path), "%s/%s", CORPUS, valid[i]);
		b = vhd_open(path, &o, &e);
		if (!b)
			fail_msg("%s", e.msg);
		bdev_close(b);
	}
}

/* The private folder with parent.vhd; removed even when a test fails. */
static int setup(void **state)
{
	(void)state;
	return fz_setup();
}

static int teardown(void **state)
{
	(void)state;
	fz_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_seeds_open),
		cmocka_unit_test(test_corpus_replays_clean),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
