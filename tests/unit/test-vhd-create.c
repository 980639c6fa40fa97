/* vhd_create: the files it writes, decoded here by hand against the VHD
 * specification (footer and its copy, dynamic header, empty BAT, parent
 * name and W2ku/W2ru locators of a differencing image), and its refusals,
 * which leave neither the destination nor a temporary file behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ut.h"

#include "vhd/vhd-int.h"
#include "vhd/vhd.h"

struct fx {
	char dir[64];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-vhd-create.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ut_rmtree(f->dir);
	free(f);
	return 0;
}

static char *pth(struct fx *f, const char *name)
{
	return ut_path(f->dir, name);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static uint32_t sum_except(const uint8_t *p, size_t len, size_t csum_at)
{
	uint32_t s = 0;

	for (size_t i = 0; i < len; i++)
		if (i < csum_at || i >= csum_at + 4)
			s += p[i];
	return ~s;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	uint8_t *buf;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static int entries_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* The footer at p, checked field by field for an image we made. */
static void check_footer(const uint8_t *p, uint32_t type, uint64_t size)
{
	uint32_t now = (uint32_t)(time(NULL) - 946684800);

	assert_memory_equal(p, "conectix", 8);
	assert_int_equal(be32(p + 8), 2);                 /* features */
	assert_int_equal(be32(p + 12), 0x00010000);       /* version */
	if (type == VHD_TYPE_FIXED)
		assert_true(be64(p + 16) == UINT64_MAX);
	else
		assert_true(be64(p + 16) == 512);
	assert_true(be32(p + 24) <= now && be32(p + 24) + 60 >= now);
	assert_memory_equal(p + 28, "vhdt", 4);
	assert_memory_equal(p + 36, "Wi2k", 4);
	assert_true(be64(p + 40) == size);                /* original */
	assert_true(be64(p + 48) == size);                /* current */
	assert_int_equal(be32(p + 60), type);
	assert_int_equal(be32(p + 64), sum_except(p, 512, 64));
	assert_int_equal(p[68 + 6] >> 4, 4);              /* UUID v4 */
	assert_int_equal(p[84], 0);                       /* saved state */
	for (int i = 85; i < 512; i++)
		assert_int_equal(p[i], 0);
}

static void create_ok(const char *path, int type, uint64_t size,
		      uint32_t bs, const char *parent)
{
	struct vhd_create_opts o = { .type = type, .size = size,
				     .block_size = bs, .parent = parent };
	struct bdev_err e = { 0 };

	if (vhd_create(path, &o, &e))
		fail_msg("vhd_create %s: %s", path, e.msg);
}

static void test_fixed_layout(void **state)
{
	struct fx *f = *state;
	const uint64_t size = (5ull << 20) + 512;
	size_t len;
	uint8_t *p;

	create_ok(pth(f, "f.vhd"), VHD_TYPE_FIXED, size, 0, NULL);
	p = slurp(pth(f, "f.vhd"), &len);
	assert_true(len == size + 512);
	check_footer(p + size, VHD_TYPE_FIXED, size);
	for (uint64_t i = 0; i < size; i++)
		if (p[i])
			fail_msg("fixed data byte %llu is not zero",
				 (unsigned long long)i);
	free(p);
}

static void test_dynamic_layout(void **state)
{
	struct fx *f = *state;
	const uint64_t size = (9ull << 20) + 512;   /* 5 blocks of 2 MiB */
	size_t len;
	uint8_t *p;

	create_ok(pth(f, "d.vhd"), VHD_TYPE_DYNAMIC, size, 0, NULL);
	p = slurp(pth(f, "d.vhd"), &len);
	/* footer copy, header, one BAT sector, footer */
	assert_int_equal(len, 512 + 1024 + 512 + 512);
	check_footer(p + len - 512, VHD_TYPE_DYNAMIC, size);
	assert_memory_equal(p, p + len - 512, 512);
	const uint8_t *h = p + 512;

	assert_memory_equal(h, "cxsparse", 8);
	assert_true(be64(h + 8) == UINT64_MAX);
	assert_true(be64(h + 16) == 1536);                /* BAT */
	assert_int_equal(be32(h + 24), 0x00010000);
	assert_int_equal(be32(h + 28), 5);                /* ceil(size / 2M) */
	assert_int_equal(be32(h + 32), 2u << 20);         /* default block */
	assert_int_equal(be32(h + 36), sum_except(h, 1024, 36));
	for (int i = 40; i < 1024; i++)                   /* no parent */
		assert_int_equal(h[i], 0);
	for (int i = 0; i < 5 * 4; i++)                   /* BAT: unused */
		assert_int_equal(p[1536 + i], 0xff);
	free(p);

	/* A block size of our choice, and a BAT of several sectors. */
	create_ok(pth(f, "d2.vhd"), VHD_TYPE_DYNAMIC, 200ull << 20, 512u << 10,
		  NULL);
	p = slurp(pth(f, "d2.vhd"), &len);
	h = p + 512;
	assert_int_equal(be32(h + 28), 400);
	assert_int_equal(be32(h + 32), 512u << 10);
	assert_int_equal(len, 1536 + 2048 + 512);   /* 400*4 = 1600 -> 4 sectors */
	free(p);
}

static void check_locator_utf16le(const uint8_t *file, size_t len,
				  const uint8_t *l, const char *code,
				  const char *want)
{
	uint64_t off = be64(l + 16);
	uint32_t space = be32(l + 4), dlen = be32(l + 8);
	size_t n = strlen(want);

	assert_memory_equal(l, code, 4);
	assert_int_equal(dlen, 2 * n);
	assert_true(space >= dlen && space % 512 == 0);
	assert_true(off % 512 == 0 && off + space <= len - 512);
	for (size_t i = 0; i < n; i++) {
		/* ASCII paths: each unit is the byte then a zero byte. */
		if (file[off + 2 * i] != (uint8_t)want[i] || file[off + 2 * i + 1])
			fail_msg("%s locator unit %zu is %02x%02x, expected '%c'",
				 code, i, file[off + 2 * i], file[off + 2 * i + 1],
				 want[i]);
	}
}

static void test_diff_layout_locators_and_name(void **state)
{
	struct fx *f = *state;
	char abs_win[PATH_MAX], parent_abs[PATH_MAX];
	uint8_t *p, *c;
	size_t plen, clen;
	struct stat st;

	assert_int_equal(mkdir(pth(f, "base"), 0755), 0);
	assert_int_equal(mkdir(pth(f, "kids"), 0755), 0);
	create_ok(pth(f, "base/parent.vhd"), VHD_TYPE_DYNAMIC, 6ull << 20,
		  1u << 20, NULL);
	create_ok(pth(f, "kids/c.vhd"), VHD_TYPE_DIFF, 0, 0,
		  pth(f, "base/parent.vhd"));
	p = slurp(pth(f, "base/parent.vhd"), &plen);
	c = slurp(pth(f, "kids/c.vhd"), &clen);
	check_footer(c + clen - 512, VHD_TYPE_DIFF, 6ull << 20);
	assert_memory_equal(c, c + clen - 512, 512);
	/* A fresh UUID of its own. */
	assert_memory_not_equal(c + 68, p + 68, 16);
	const uint8_t *h = c + 512;

	assert_int_equal(be32(h + 36), sum_except(h, 1024, 36));
	assert_int_equal(be32(h + 32), 1u << 20);         /* parent's block */
	assert_int_equal(be32(h + 28), 6);
	assert_memory_equal(h + 40, p + 68, 16);          /* parent UUID */
	assert_int_equal(stat(pth(f, "base/parent.vhd"), &st), 0);
	assert_int_equal(be32(h + 56), (uint32_t)(st.st_mtime - 946684800));
	/* Parent name: UTF-16BE "parent.vhd", zero padded. */
	const char *name = "parent.vhd";

	for (size_t i = 0; i < 256; i++) {
		uint16_t u = (uint16_t)(h[64 + 2 * i] << 8 | h[65 + 2 * i]);

		assert_int_equal(u, i < strlen(name) ? (uint8_t)name[i] : 0);
	}
	/* W2ku: the absolute path with backslashes; W2ru: relative to the
	 * child's folder, ".\" first, as Hyper-V writes them. */
	assert_non_null(realpath(pth(f, "base/parent.vhd"), parent_abs));
	for (size_t i = 0; i <= strlen(parent_abs); i++)
		abs_win[i] = parent_abs[i] == '/' ? '\\' : parent_abs[i];
	check_locator_utf16le(c, clen, h + 576, "W2ku", abs_win);
	check_locator_utf16le(c, clen, h + 600, "W2ru", ".\\..\\base\\parent.vhd");
	/* The two locators do not overlap. */
	assert_true(be64(h + 576 + 16) + be32(h + 576 + 4) <= be64(h + 600 + 16) ||
		    be64(h + 600 + 16) + be32(h + 600 + 4) <= be64(h + 576 + 16));
	/* And they lie after the BAT. */
	assert_true(be64(h + 576 + 16) >= be64(h + 16) + 512);
	for (int i = 2; i < 8; i++)
		for (int k = 0; k < 24; k++)
			assert_int_equal(h[576 + 24 * i + k], 0);
	free(p);
	free(c);
}

static void test_diff_parent_with_unicode_name(void **state)
{
	struct fx *f = *state;
	const char *name = "b\xc3\xa4se \xf0\x9f\x98\x80.vhd";   /* "bäse 😀.vhd" */
	struct vhd_info info;
	struct bdev_err e = { 0 };
	struct bdev *b;
	uint8_t one = 7, got = 0;

	create_ok(pth(f, name), VHD_TYPE_DYNAMIC, 1ull << 20, 0, NULL);
	b = vhd_open(pth(f, name), NULL, &e);
	assert_non_null(b);
	assert_int_equal(bdev_write(b, &one, 777, 1, 0), 0);
	bdev_close(b);
	create_ok(pth(f, "c.vhd"), VHD_TYPE_DIFF, 0, 0, pth(f, name));
	b = vhd_open(pth(f, "c.vhd"), NULL, &e);
	assert_non_null(b);
	assert_int_equal(vhd_get_info(vhd_of(b), &info), 0);
	assert_string_equal(info.parent_name, name);
	assert_int_equal(bdev_read(b, &got, 777, 1), 0);
	assert_int_equal(got, 7);
	bdev_close(b);
}

/* Expect vhd_create to fail with code and leave the folder as it was. */
static void create_fails(struct fx *f, const char *name,
			 const struct vhd_create_opts *o, int code)
{
	struct bdev_err e = { 0 };
	int before = entries_in(f->dir);
	int r = vhd_create(pth(f, name), o, &e);

	if (r != -code || e.code != code)
		fail_msg("vhd_create %s: %d (%s), expected %d", name, r, e.msg, -code);
	assert_true(e.msg[0] != '\0');
	assert_int_equal(entries_in(f->dir), before);
}

static void test_refusals_leave_nothing_behind(void **state)
{
	struct fx *f = *state;
	struct vhd_create_opts o;
	size_t len1, len2;
	uint8_t *a, *b;

#define O(...) (o = (struct vhd_create_opts){ __VA_ARGS__ }, &o)
	create_fails(f, "x.vhd", O(.type = 1, .size = 1 << 20), EINVAL);
	create_fails(f, "x.vhd", O(.type = 5, .size = 1 << 20), EINVAL);
	create_fails(f, "x.vhd", O(.type = VHD_TYPE_DYNAMIC, .size = 0), EINVAL);
	create_fails(f, "x.vhd", O(.type = VHD_TYPE_FIXED, .size = 1000), EINVAL);
	create_fails(f, "x.vhd", O(.type = VHD_TYPE_DYNAMIC,
				   .size = VHD_MAX_SIZE + 512), EFBIG);
	create_fails(f, "x.vhd", O(.type = VHD_TYPE_DYNAMIC, .size = 1 << 20,
				   .block_size = 3u << 20), EINVAL);
	create_fails(f, "x.vhd", O(.type = VHD_TYPE_DYNAMIC, .size = 1 << 20,
				   .block_size = 256u << 10), EINVAL);
	create_fails(f, "x.vhd", O(.type = VHD_TYPE_DYNAMIC, .size = 1 << 20,
				   .block_size = 512u << 20), EINVAL);
	create_fails(f, "x.vhd", O(.type = VHD_TYPE_DIFF), EINVAL);
	create_fails(f, "x.vhd", O(.type = VHD_TYPE_DYNAMIC, .size = 1 << 20,
				   .parent = "p.vhd"), EINVAL);
	create_fails(f, "x.vhd", O(.type = VHD_TYPE_DIFF,
				   .parent = pth(f, "missing.vhd")), ENOENT);
	/* A parent that is not a VHD at all. */
	int fd = open(pth(f, "raw.img"), O_CREAT | O_WRONLY, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	create_fails(f, "x.vhd", O(.type = VHD_TYPE_DIFF,
				   .parent = pth(f, "raw.img")), ENOVHD);
	/* An existing file is kept unless overwrite is asked for. */
	create_ok(pth(f, "e.vhd"), VHD_TYPE_DYNAMIC, 1 << 20, 0, NULL);
	a = slurp(pth(f, "e.vhd"), &len1);
	create_fails(f, "e.vhd", O(.type = VHD_TYPE_FIXED, .size = 2 << 20), EEXIST);
	b = slurp(pth(f, "e.vhd"), &len2);
	assert_true(len1 == len2);
	assert_memory_equal(a, b, len1);
	free(b);
	struct bdev_err e = { 0 };

	assert_int_equal(vhd_create(pth(f, "e.vhd"), O(.type = VHD_TYPE_FIXED,
							.size = 2 << 20,
							.overwrite = true), &e), 0);
	b = slurp(pth(f, "e.vhd"), &len2);
	assert_true(len2 == (2 << 20) + 512);
	check_footer(b + (2 << 20), VHD_TYPE_FIXED, 2 << 20);
	free(a);
	free(b);
	/* The largest size is accepted (a sparse image costs only its BAT). */
	create_ok(pth(f, "max.vhd"), VHD_TYPE_DYNAMIC, VHD_MAX_SIZE, 0, NULL);
#undef O
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_fixed_layout),
		T(test_dynamic_layout),
		T(test_diff_layout_locators_and_name),
		T(test_diff_parent_with_unicode_name),
		T(test_refusals_leave_nothing_behind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
