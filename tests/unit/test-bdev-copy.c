/* bdev_copy on real files and VHD chains: every byte arrives whatever the
 * chunk size and reader count (slot ring wrapping many times); zero ranges
 * stay holes in a zeroed destination and are zeroed in a dirty one; with
 * max_depth only the child's ranges are copied; a progress callback can
 * cancel, leaving a prefix; bad lengths are refused with a message. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ut.h"

#include "common/bdev.h"
#include "common/util.h"
#include "vhd/vhd.h"

#define DISK (5u << 20)

struct fx {
	char dir[64];
	uint8_t *model;            /* what the source disk holds */
};

static char *pth(struct fx *f, const char *name)
{
	return ut_path(f->dir, name);
}

/* Non-zero bytes that differ per offset and seed. */
static uint8_t pat(unsigned seed, uint64_t off)
{
	return (uint8_t)(((off * 2654435761u) >> 13) + seed * 31 + 1) | 1;
}

/* The source: data at odd offsets and lengths, written zeros, holes. */
static const struct { uint64_t off, len; int zero; } pieces[] = {
	{ 0, 5000, 0 },
	{ 8192, 4096, 1 },               /* written zeros inside data */
	{ 1 << 20, 3 * 4096 + 17, 0 },
	{ (2 << 20) - 100, 300, 0 },     /* across a 2 MiB boundary */
	{ 3 << 20, 1 << 20, 1 },         /* a whole MiB of written zeros */
	{ DISK - 513, 513, 0 },          /* the very end */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	int fd;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-bdev-copy.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->model = calloc(1, DISK);
	fd = open(pth(f, "src.raw"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (!f->model || fd < 0 || ftruncate(fd, DISK) < 0)
		return -1;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(pieces); i++) {
		for (uint64_t o = 0; o < pieces[i].len; o++)
			f->model[pieces[i].off + o] = pieces[i].zero ? 0 :
				pat(1, pieces[i].off + o);
		if (util_pwrite_full(fd, f->model + pieces[i].off, pieces[i].len,
				     pieces[i].off))
			return -1;
	}
	close(fd);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ut_rmtree(f->dir);
	free(f->model);
	free(f);
	return 0;
}

static struct bdev *open_file(const char *path, bool create, uint64_t size,
			      int fill)
{
	struct bdev_err e = { 0 };
	struct bdev *b;

	if (create) {
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		uint8_t *buf = malloc(size);

		assert_non_null(buf);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, (off_t)size), 0);
		if (fill) {
			memset(buf, fill, size);
			assert_int_equal(util_pwrite_full(fd, buf, size, 0), 0);
		}
		free(buf);
		close(fd);
	}
	b = bdev_file_open(path, 0, &e);
	assert_non_null(b);
	return b;
}

static void assert_disk(struct bdev *b, const uint8_t *want, uint64_t len)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	assert_int_equal(bdev_read(b, buf, 0, len), 0);
	for (uint64_t i = 0; i < len; i++)
		if (buf[i] != want[i])
			fail_msg("byte %llu is %u, expected %u", (unsigned long long)i,
				 buf[i], want[i]);
	free(buf);
}

/* Chunk sizes from one granule up, 1 to 5 readers: the same bytes. */
static void test_every_byte(void **state)
{
	static const struct { uint32_t chunk; int readers; } v[] = {
		{ 4096, 1 }, { 12288, 3 }, { 65536, 5 }, { 0, 0 }, { 4u << 20, 2 },
	};
	struct fx *f = *state;

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(v); i++) {
		struct bdev *src = open_file(pth(f, "src.raw"), false, 0, 0);
		struct bdev *dst = open_file(pth(f, "dst.raw"), true, DISK, 0);
		struct bdev_copy_opts o = { .chunk = v[i].chunk,
					    .readers = v[i].readers,
					    .dst_zeroed = true };
		struct bdev_copy_stats st;
		struct bdev_err e = { 0 };
		struct stat sb;

		assert_int_equal(bdev_copy(src, dst, DISK, &o, &st, &e), 0);
		assert_disk(dst, f->model, DISK);
		/* Data: the 4 KiB granules that hold a non-zero byte. */
		assert_true(st.data_bytes >= 5000 + 3 * 4096 + 17 + 300 + 513);
		assert_true(st.data_bytes <= 9 * 4096);
		assert_int_equal(st.data_bytes + st.zero_bytes, DISK);
		assert_int_equal(st.skip_bytes, 0);
		bdev_close(dst);
		bdev_close(src);
		/* The written zeros were not written: the output is sparse. */
		assert_int_equal(stat(pth(f, "dst.raw"), &sb), 0);
		assert_true((uint64_t)sb.st_blocks * 512 <= 12 * 4096);
	}
}

/* A dirty destination: zero ranges are zeroed, not skipped. */
static void test_dirty_destination(void **state)
{
	struct fx *f = *state;
	struct bdev *src = open_file(pth(f, "src.raw"), false, 0, 0);
	struct bdev *dst = open_file(pth(f, "dirty.raw"), true, DISK + 4096, 0xaa);
	struct bdev_copy_opts o = { .chunk = 65536 };
	struct bdev_err e = { 0 };
	uint8_t tail[4096], aa[4096];

	assert_int_equal(bdev_copy(src, dst, DISK, &o, NULL, &e), 0);
	assert_disk(dst, f->model, DISK);
	/* Past len: untouched. */
	memset(aa, 0xaa, sizeof(aa));
	assert_int_equal(bdev_read(dst, tail, DISK, sizeof(tail)), 0);
	assert_memory_equal(tail, aa, sizeof(tail));
	bdev_close(dst);
	bdev_close(src);
}

/* max_depth 1 on a differencing child: only the child's ranges reach the
 * destination; the rest of it stays as it was. */
static void test_max_depth(void **state)
{
	struct fx *f = *state;
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = DISK,
				      .block_size = 512u << 10 };
	struct vhd_open_opts oo = { 0 };
	struct bdev_copy_opts o = { .max_depth = 1, .chunk = 1u << 20 };
	struct bdev_copy_stats st;
	struct bdev_err e = { 0 };
	struct bdev *base, *child, *dst;
	uint8_t *want = malloc(DISK), *buf = malloc(DISK);

	assert_non_null(want);
	assert_non_null(buf);
	assert_int_equal(vhd_create(pth(f, "base.vhd"), &co, &e), 0);
	base = vhd_open(pth(f, "base.vhd"), &oo, &e);
	assert_non_null(base);
	for (uint64_t i = 0; i < DISK; i++)
		buf[i] = pat(2, i);
	assert_int_equal(bdev_write(base, buf, 0, DISK, 0), 0);
	bdev_close(base);
	co = (struct vhd_create_opts){ .type = VHD_TYPE_DIFF,
				       .parent = pth(f, "base.vhd") };
	assert_int_equal(vhd_create(pth(f, "child.vhd"), &co, &e), 0);
	child = vhd_open(pth(f, "child.vhd"), &oo, &e);
	assert_non_null(child);
	/* The child holds 10000 bytes at 700000 and zeros at 2 MiB. */
	memset(want, 0x55, DISK);
	for (uint64_t i = 0; i < 10000; i++)
		buf[i] = pat(3, i);
	assert_int_equal(bdev_write(child, buf, 700000, 10000, 0), 0);
	memset(buf, 0, 65536);
	assert_int_equal(bdev_write(child, buf, 2u << 20, 65536, 0), 0);
	assert_int_equal(bdev_flush(child), 0);
	/* Expected: the destination's 0x55 except where the child holds
	 * sectors: there, what the child shows (whole 4 KiB granules,
	 * the rest of each from the parent). */
	assert_int_equal(bdev_read(child, buf, 0, DISK), 0);
	for (uint64_t g = 700000 / 4096 * 4096; g < util_align_up(710000, 4096); g++)
		want[g] = buf[g];
	for (uint64_t g = 2u << 20; g < (2u << 20) + 65536; g++)
		want[g] = buf[g];
	dst = open_file(pth(f, "d.raw"), true, DISK, 0x55);
	assert_int_equal(bdev_copy(child, dst, DISK, &o, &st, &e), 0);
	assert_true(st.skip_bytes > 0);
	assert_int_equal(st.zero_bytes, 65536);
	assert_disk(dst, want, DISK);
	bdev_close(dst);
	bdev_close(child);
	free(want);
	free(buf);
}

/* A layer counting what the copy asks of the source. */
struct counting {
	struct bdev b;
	unsigned long status_calls, reads;
	uint64_t read_bytes;
};

static int cnt_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	struct counting *c = (struct counting *)b;

	__atomic_add_fetch(&c->reads, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->read_bytes, len, __ATOMIC_RELAXED);
	return bdev_read(b->lower, buf, off, len);
}

static int cnt_status(struct bdev *b, uint64_t off, uint64_t len, struct bdev_status *st)
{
	struct counting *c = (struct counting *)b;

	__atomic_add_fetch(&c->status_calls, 1, __ATOMIC_RELAXED);
	return bdev_block_status(b->lower, off, len, st);
}

static void cnt_close(struct bdev *b)
{
	bdev_fini(b);	/* the struct is the test's (on its stack) */
}

static const struct bdev_ops cnt_ops = {
	.kind = "counting",
	.read = cnt_read,
	.block_status = cnt_status,
	.close = cnt_close,
};

/* Work follows the data, not the disk's size: a 1 TiB dynamic disk that
 * holds two small pieces is copied with a few block-status calls and
 * reads of those two chunks only (it was one status call and one thread
 * hand-off per 2 MiB: 35 s for 2 TiB), into a 1 TiB dynamic destination
 * that ends holding just those blocks; with max_depth the same. */
static void test_work_follows_data(void **state)
{
	struct fx *f = *state;
	const uint64_t size = 1ull << 40;
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = size };
	struct vhd_open_opts oo = { 0 };
	struct bdev_copy_stats st;
	struct bdev_err e = { 0 };
	struct counting c = { 0 };
	struct bdev *src, *dst;
	uint8_t a[4096], b[4096];

	memset(a, 0xa5, sizeof(a));
	assert_int_equal(vhd_create(pth(f, "huge.vhd"), &co, &e), 0);
	assert_int_equal(vhd_create(pth(f, "huge2.vhd"), &co, &e), 0);
	src = vhd_open(pth(f, "huge.vhd"), &oo, &e);
	assert_non_null(src);
	assert_int_equal(bdev_write(src, a, 12345 * 4096ull, sizeof(a), 0), 0);
	assert_int_equal(bdev_write(src, a, size - 8192, sizeof(a), 0), 0);
	assert_int_equal(bdev_layer_init(&c.b, &cnt_ops, "counting", src, false), 0);
	dst = vhd_open(pth(f, "huge2.vhd"), &oo, &e);
	assert_non_null(dst);
	{
		struct bdev_copy_opts o = { .dst_zeroed = true };

		assert_int_equal(bdev_copy(&c.b, dst, size, &o, &st, &e), 0);
	}
	assert_true(c.status_calls < 32);
	assert_true(c.reads <= 8);
	assert_true(c.read_bytes <= 2 * (2u << 20));
	assert_int_equal(st.data_bytes, 2 * sizeof(a));
	assert_int_equal(bdev_read(dst, b, 12345 * 4096ull, sizeof(b)), 0);
	assert_memory_equal(a, b, sizeof(b));
	assert_int_equal(bdev_read(dst, b, size - 8192, sizeof(b)), 0);
	assert_memory_equal(a, b, sizeof(b));
	/* with max_depth: the ranges no layer holds are one skip item each */
	c.status_calls = c.reads = 0;
	{
		struct bdev_copy_opts o = { .max_depth = 1 };

		assert_int_equal(bdev_copy(&c.b, dst, size, &o, &st, &e), 0);
	}
	assert_true(c.status_calls < 32);
	assert_true(c.reads <= 8);
	assert_true(st.skip_bytes > size - (8u << 20));
	bdev_close(dst);
	bdev_close(&c.b);
	bdev_close(src);
}

static int cancel_after;

static int cancel_cb(void *opaque, uint64_t done, uint64_t total)
{
	uint64_t *last = opaque;

	(void)total;
	*last = done;
	return --cancel_after <= 0;
}

/* Cancelled from the progress callback: -ECANCELED, a prefix written. */
static void test_cancel(void **state)
{
	struct fx *f = *state;
	struct bdev *src = open_file(pth(f, "src.raw"), false, 0, 0);
	struct bdev *dst = open_file(pth(f, "c.raw"), true, DISK, 0);
	uint64_t last = 0;
	struct bdev_copy_opts o = { .chunk = 1u << 20, .dst_zeroed = true,
				    .progress = cancel_cb, .opaque = &last };
	struct bdev_err e = { 0 };

	cancel_after = 2;
	assert_int_equal(bdev_copy(src, dst, DISK, &o, NULL, &e), -ECANCELED);
	assert_int_equal(e.code, ECANCELED);
	assert_int_equal(last, 2u << 20);
	assert_disk(dst, f->model, 2u << 20);
	bdev_close(dst);
	bdev_close(src);
}

static void test_bad_length(void **state)
{
	struct fx *f = *state;
	struct bdev *src = open_file(pth(f, "src.raw"), false, 0, 0);
	struct bdev *dst = open_file(pth(f, "small.raw"), true, 4096, 0);
	struct bdev_copy_opts o = { .chunk = 1000 };
	struct bdev_err e = { 0 };

	assert_int_equal(bdev_copy(src, dst, DISK, NULL, NULL, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "cannot copy"));
	assert_int_equal(bdev_copy(src, dst, 4096, &o, NULL, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "multiple of 4096"));
	assert_int_equal(bdev_copy(src, dst, 0, NULL, NULL, &e), 0);
	bdev_close(dst);
	bdev_close(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_destination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_work_follows_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_length, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
