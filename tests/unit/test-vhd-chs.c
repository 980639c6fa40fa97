/* Disk geometry and disk size.
 *  - vhd_chs follows the CHS algorithm of the VHD specification (appendix
 *    "CHS calculation"); expected values are traced through that algorithm
 *    by hand, and compared with the geometry qemu-img 7.2 writes.
 *  - vhd_geometry_for_size: the spec CHS when it gives exactly the size,
 *    else the maximum 65535/16/255 (which every qemu reads as "use the
 *    current size").
 *  - vhd_footer_disk_size: creators "vpc " and "qemu" are served with the
 *    CHS size unless the geometry is the maximum; others with the current
 *    size; VHD_O_SIZE_FOOTER / VHD_O_SIZE_CHS override. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "vhd/vhd-int.h"
#include "vhd/vhd.h"

static void expect_chs(uint64_t sectors, unsigned c, unsigned h, unsigned s)
{
	uint16_t gc;
	uint8_t gh, gs;

	vhd_chs(sectors, &gc, &gh, &gs);
	if (gc != c || gh != h || gs != s)
		fail_msg("vhd_chs(%llu) = %u/%u/%u, expected %u/%u/%u",
			 (unsigned long long)sectors, gc, gh, gs, c, h, s);
}

static void test_chs_spec_algorithm_by_hand(void **state)
{
	(void)state;
	/* 68 sectors: spt 17, cth 4, heads max(1, 4) = 4, cyl 1. */
	expect_chs(68, 1, 4, 17);
	/* 20000: cth 1176, heads ceil(1176/1024) = 2 -> 4, cyl 294. */
	expect_chs(20000, 294, 4, 17);
	/* 139264 = 17*8192: cth 8192 >= 8*1024, so spt 31, heads 16,
	 * cth 4492, cyl 280. */
	expect_chs(139264, 280, 16, 31);
	/* 1048576 (512 MiB): 17 -> heads 61 > 16; 31 -> cth 33825 >= 16384;
	 * 63 -> cth 16644, cyl 1040. */
	expect_chs(1048576, 1040, 16, 63);
	/* Just below 65535*16*63: still 63 sectors, cth 1048559, cyl 65534. */
	expect_chs(65535ull * 16 * 63 - 1, 65534, 16, 63);
	/* At 65535*16*63: 255 sectors, 16 heads, cth 259056, cyl 16191. */
	expect_chs(65535ull * 16 * 63, 16191, 16, 255);
	/* The maximum, and anything larger, is 65535/16/255. */
	expect_chs(65535ull * 16 * 255, 65535, 16, 255);
	expect_chs(65535ull * 16 * 255 + 1, 65535, 16, 255);
	expect_chs((uint64_t)4 << 40, 65535, 16, 255);
	/* Zero sectors: cylinder 0. */
	expect_chs(0, 0, 4, 17);
}

/* `qemu-img create -f vpc x.vhd SIZE` (qemu 7.2): the geometry and the
 * current size qemu wrote into the footer. */
static const struct {
	uint64_t requested, qemu_size;
	unsigned c, h, s;
} qemu_table[] = {
	{ 1ull << 20, 1079296, 31, 4, 17 },
	{ 10ull << 20, 10514432, 302, 4, 17 },
	{ 20ull << 20, 20994048, 603, 4, 17 },
	{ 100ull << 20, 104865792, 1004, 12, 17 },
	{ 127ull << 20, 133171200, 1020, 15, 17 },
	{ 500ull << 20, 524353536, 1016, 16, 63 },
	{ 1ull << 30, 1073995776, 2081, 16, 63 },
	{ 4ull << 30, 4295467008ull, 8323, 16, 63 },
	{ 32ull << 30, 34361303040ull, 16449, 16, 255 },
	{ 127ull << 30, 136365219840ull, 65279, 16, 255 },
};

static void test_chs_matches_qemu_img(void **state)
{
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(qemu_table); i++) {
		uint64_t want = qemu_table[i].requested / 512, sec = want;
		uint16_t c;
		uint8_t h, s;

		/* qemu's footer geometry is the spec CHS of its size. */
		expect_chs(qemu_table[i].qemu_size / 512, qemu_table[i].c,
			   qemu_table[i].h, qemu_table[i].s);
		assert_true((uint64_t)qemu_table[i].c * qemu_table[i].h *
			    qemu_table[i].s * 512 == qemu_table[i].qemu_size);
		/* qemu rounds the size up: the CHS of the first sector count
		 * at or above the request whose product covers it. */
		for (;;) {
			vhd_chs(sec, &c, &h, &s);
			if ((uint64_t)c * h * s >= want)
				break;
			sec++;
		}
		assert_int_equal(c, qemu_table[i].c);
		assert_int_equal(h, qemu_table[i].h);
		assert_int_equal(s, qemu_table[i].s);
	}
}

static void expect_geometry(uint64_t size, unsigned c, unsigned h, unsigned s)
{
	uint16_t gc;
	uint8_t gh, gs;

	vhd_geometry_for_size(size, &gc, &gh, &gs);
	if (gc != c || gh != h || gs != s)
		fail_msg("vhd_geometry_for_size(%llu) = %u/%u/%u, expected %u/%u/%u",
			 (unsigned long long)size, gc, gh, gs, c, h, s);
}

static void test_geometry_for_size_max_rule(void **state)
{
	(void)state;
	/* Sizes that are exactly a spec CHS keep it. */
	expect_geometry(10514432, 302, 4, 17);
	expect_geometry(133171200, 1020, 15, 17);
	expect_geometry(136365219840ull, 65279, 16, 255);
	expect_geometry(68 * 512, 1, 4, 17);
	/* The maximum geometry's own size. */
	expect_geometry(65535ull * 16 * 255 * 512, 65535, 16, 255);
	/* Anything else gets the maximum, so qemu serves the current size. */
	expect_geometry(10ull << 20, 65535, 16, 255);
	expect_geometry(100ull << 20, 65535, 16, 255);
	expect_geometry((10ull << 20) + 512, 65535, 16, 255);
	expect_geometry(1ull << 30, 65535, 16, 255);
	expect_geometry(512, 65535, 16, 255);
	expect_geometry(10514432 + 512, 65535, 16, 255);
	expect_geometry(200ull << 30, 65535, 16, 255);
	expect_geometry(2040ull << 30, 65535, 16, 255);
}

static struct vhd_footer footer(const char *app, uint16_t c, uint8_t h,
				uint8_t s, uint64_t cur)
{
	struct vhd_footer f;

	memset(&f, 0, sizeof(f));
	memcpy(f.creator_app, app, 4);
	f.cylinders = c;
	f.heads = h;
	f.sectors = s;
	f.current_size = cur;
	f.original_size = cur;
	return f;
}

static void test_disk_size_creator_rules(void **state)
{
	const uint64_t cur = 10ull << 20, chs = 302ull * 4 * 17 * 512;
	struct vhd_footer f;

	(void)state;
	/* Virtual PC and qemu: the CHS size. */
	f = footer("vpc ", 302, 4, 17, cur);
	assert_true(vhd_footer_disk_size(&f, 0) == chs);
	f = footer("qemu", 302, 4, 17, cur);
	assert_true(vhd_footer_disk_size(&f, 0) == chs);
	/* Everyone else (Hyper-V "win ", Disk2VHD "d2v ", us): current. */
	f = footer("win ", 302, 4, 17, cur);
	assert_true(vhd_footer_disk_size(&f, 0) == cur);
	f = footer("vhdt", 302, 4, 17, cur);
	assert_true(vhd_footer_disk_size(&f, 0) == cur);
	f = footer("vpc\0", 302, 4, 17, cur);
	assert_true(vhd_footer_disk_size(&f, 0) == cur);
	/* Maximum geometry: "the size is in current_size", whoever wrote it. */
	f = footer("qemu", 65535, 16, 255, cur);
	assert_true(vhd_footer_disk_size(&f, 0) == cur);
	f = footer("vpc ", 65535, 16, 255, 200ull << 30);
	assert_true(vhd_footer_disk_size(&f, 0) == 200ull << 30);
	/* No geometry at all: current size. */
	f = footer("vpc ", 0, 0, 0, cur);
	assert_true(vhd_footer_disk_size(&f, 0) == cur);
	/* Flags override the creator rule. */
	f = footer("qemu", 302, 4, 17, cur);
	assert_true(vhd_footer_disk_size(&f, VHD_O_SIZE_FOOTER) == cur);
	f = footer("win ", 302, 4, 17, cur);
	assert_true(vhd_footer_disk_size(&f, VHD_O_SIZE_CHS) == chs);
	/* ... but not the maximum-geometry rule. */
	f = footer("win ", 65535, 16, 255, cur);
	assert_true(vhd_footer_disk_size(&f, VHD_O_SIZE_CHS) == cur);
}

/* End to end: an image we create is served with exactly its size and
 * carries the geometry rule; the same file relabelled as written by
 * Virtual PC with a smaller CHS is served with the CHS size, unless the
 * caller asks for the footer's size. */
static void test_open_serves_creator_size(void **state)
{
	char dir[] = "/tmp/test-vhd-chs.XXXXXX", path[64];
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC,
				      .size = (10ull << 20) + 512,
				      .block_size = 512u << 10 };
	struct vhd_open_opts oo = { .flags = VHD_O_RDONLY };
	struct bdev_err e = { 0 };
	struct vhd_footer f;
	struct vhd_info info;
	uint8_t buf[512];
	char why[200];
	struct bdev *b;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/d.vhd", dir);
	assert_int_equal(vhd_create(path, &co, &e), 0);
	b = vhd_open(path, &oo, &e);
	assert_non_null(b);
	assert_true(b->size == (10ull << 20) + 512);
	assert_int_equal(vhd_get_info(vhd_of(b), &info), 0);
	assert_int_equal(info.cylinders, 65535);
	assert_int_equal(info.heads, 16);
	assert_int_equal(info.sectors, 255);
	assert_true(info.current_size == (10ull << 20) + 512);
	assert_true(info.original_size == (10ull << 20) + 512);
	bdev_close(b);

	/* Relabel both footers: creator "vpc ", geometry 302/4/17. */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	off_t end = lseek(fd, 0, SEEK_END) - 512;
	assert_int_equal(pread(fd, buf, 512, end), 512);
	assert_int_equal(vhd_footer_decode(buf, &f, why, sizeof(why)), 0);
	memcpy(f.creator_app, "vpc ", 4);
	f.cylinders = 302;
	f.heads = 4;
	f.sectors = 17;
	vhd_footer_encode(&f, buf);
	assert_int_equal(pwrite(fd, buf, 512, end), 512);
	assert_int_equal(pwrite(fd, buf, 512, 0), 512);
	close(fd);
	b = vhd_open(path, &oo, &e);
	assert_non_null(b);
	assert_true(b->size == 302ull * 4 * 17 * 512);
	bdev_close(b);
	oo.flags |= VHD_O_SIZE_FOOTER;
	b = vhd_open(path, &oo, &e);
	assert_non_null(b);
	assert_true(b->size == (10ull << 20) + 512);
	bdev_close(b);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chs_spec_algorithm_by_hand),
		cmocka_unit_test(test_chs_matches_qemu_img),
		cmocka_unit_test(test_geometry_for_size_max_rule),
		cmocka_unit_test(test_disk_size_creator_rules),
		cmocka_unit_test(test_open_serves_creator_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
