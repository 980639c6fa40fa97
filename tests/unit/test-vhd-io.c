/* VHD I/O through the bdev interface, for fixed, dynamic and differencing
 * images: reads and writes at odd byte offsets across sector, granule and
 * block boundaries; write_zeroes (a differencing image must hide its
 * parent's data); block status of data, zero and parent layers; flush makes
 * metadata visible to a second opener; reopening gives the same bytes.
 *
 * Every result is compared with an in-memory model of the disk, and the
 * image files are also decoded here by hand (footer -> header -> BAT ->
 * bitmaps -> data, big-endian, MSB-first bits) without the library, so a
 * bug that the library's reader and writer share would still show. */
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
#include "vhd/vhd-int.h"
#include "vhd/vhd.h"

#define BS (512u << 10)                       /* smallest block vhd_create allows */
#define DISK ((uint64_t)3 * BS + 1536)        /* 3.5 blocks less a bit: partial last block */

/* ---- helpers ---- */

struct fx {
	char dir[64];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-vhd-io.XXXXXX");
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

/* Bytes that differ at every offset and between seeds. */
static uint8_t pat(unsigned seed, uint64_t off)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ull ^ (seed * 0xbf58476d1ce4e5b9ull);

	return (uint8_t)(x >> 29 ^ x >> 47);
}

static void fill(uint8_t *buf, unsigned seed, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pat(seed, off + i);
}

static void create(const char *path, int type, uint64_t size,
		   const char *parent)
{
	struct vhd_create_opts o = { .type = type, .size = size,
				     .block_size = parent ? 0 : BS,
				     .parent = parent };
	struct bdev_err e = { 0 };

	if (vhd_create(path, &o, &e))
		fail_msg("vhd_create %s: %s", path, e.msg);
}

static struct bdev *open_rw(const char *path, unsigned flags)
{
	struct vhd_open_opts o = { .flags = flags };
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(path, &o, &e);

	if (!b)
		fail_msg("vhd_open %s: %s", path, e.msg);
	return b;
}

static void must(struct bdev *b, int r, const char *what)
{
	char msg[512];

	if (r)
		fail_msg("%s: %d: %s", what, r, bdev_errmsg(b, msg, sizeof(msg)));
}

/* Write through b and into the model. */
static void wr(struct bdev *b, uint8_t *model, unsigned seed, uint64_t off,
	       size_t len)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	fill(buf, seed, off, len);
	must(b, bdev_write(b, buf, off, len, 0), "write");
	memcpy(model + off, buf, len);
	free(buf);
}

static void expect_range(struct bdev *b, const uint8_t *model, uint64_t off,
			 size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	memset(buf, 0xcc, len);
	must(b, bdev_read(b, buf, off, len), "read");
	for (size_t i = 0; i < len; i++)
		if (buf[i] != model[off + i]) {
			uint8_t got = buf[i];

			free(buf);
			fail_msg("disk byte %llu is 0x%02x, expected 0x%02x",
				 (unsigned long long)(off + i), got,
				 model[off + i]);
		}
	free(buf);
}

/* Read the whole disk in pieces of an odd size. */
static void expect_all(struct bdev *b, const uint8_t *model)
{
	assert_true(b->size == DISK);
	for (uint64_t off = 0; off < DISK; off += 100003)
		expect_range(b, model, off, (size_t)UTIL_MIN(100003, DISK - off));
}

/* ---- decoding an image file by hand ---- */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	uint8_t *buf;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* The disk an image file describes, decoded here: fixed = the bytes before
 * the footer; sparse = for each block, its sectors whose bitmap bit is set,
 * other sectors from `parent` (or zeros).  Also checks that the footer
 * copy at offset 0 matches the end footer, and for differencing images,
 * that every bitmap byte is 0x00 or 0xff (the 4 KiB granule rule). */
static uint8_t *decode_file(const char *path, const uint8_t *parent)
{
	size_t flen;
	uint8_t *f = slurp(path, &flen), *disk;
	const uint8_t *foot = f + flen - 512;
	uint64_t size = be64(foot + 48);
	uint32_t type = be32(foot + 60);

	assert_memory_equal(foot, "conectix", 8);
	assert_true(size == DISK);
	disk = calloc(1, (size_t)size);
	assert_non_null(disk);
	if (type == VHD_TYPE_FIXED) {
		assert_true(flen == size + 512);
		memcpy(disk, f, (size_t)size);
		free(f);
		return disk;
	}
	assert_memory_equal(f, foot, 512);
	const uint8_t *h = f + be64(foot + 16);
	uint64_t bat = be64(h + 16);
	uint32_t entries = be32(h + 28), bs = be32(h + 32);

	assert_memory_equal(h, "cxsparse", 8);
	assert_int_equal(bs, BS);
	assert_int_equal(entries, (DISK + BS - 1) / BS);
	if (parent)
		memcpy(disk, parent, (size_t)size);
	for (uint32_t i = 0; i < entries; i++) {
		uint32_t sec = be32(f + bat + 4 * i);
		const uint8_t *bm, *data;

		if (sec == 0xffffffffu)
			continue;
		assert_true((uint64_t)sec * 512 + 512 + bs <= flen - 512);
		bm = f + (uint64_t)sec * 512;
		data = bm + 512;               /* bitmap of 1024 bits: 1 sector */
		/* Our writer aligns block data to 4 KiB in the file. */
		assert_int_equal(((uint64_t)sec * 512 + 512) % 4096, 0);
		for (uint32_t s = 0; s < bs / 512; s++) {
			uint64_t off = (uint64_t)i * bs + s * 512;

			if (type == VHD_TYPE_DIFF && s % 8 == 0)
				assert_true(bm[s / 8] == 0 || bm[s / 8] == 0xff);
			if (off >= size || !(bm[s / 8] & (0x80 >> (s % 8))))
				continue;
			memcpy(disk + off, data + s * 512, 512);
		}
	}
	free(f);
	return disk;
}

static void expect_file(const char *path, const uint8_t *model,
			const uint8_t *parent)
{
	uint8_t *disk = decode_file(path, parent);

	for (uint64_t i = 0; i < DISK; i++)
		if (disk[i] != model[i]) {
			uint8_t got = disk[i];

			free(disk);
			fail_msg("%s decoded by hand: byte %llu is 0x%02x, expected 0x%02x",
				 path, (unsigned long long)i, got, model[i]);
		}
	free(disk);
}

/* ---- odd writes ---- */

static const struct { uint64_t off; size_t len; } odd_writes[] = {
	{ 0, 1 },                        /* first byte */
	{ 1, 510 },                      /* inside sector 0 */
	{ 511, 2 },                      /* across sectors 0/1 */
	{ 4095, 2 },                     /* across granules 0/1 */
	{ 513, 1000 },
	{ 3 * 4096 + 5, 2 * 4096 - 10 }, /* partial granules at both ends */
	{ BS - 3, 7 },                   /* across blocks 0/1 */
	{ 2 * BS - 4097, 8195 },         /* across blocks 1/2, odd granules */
	{ BS + 100, BS + 1000 },         /* spans block 1, 2, 3 */
	{ DISK - 700, 700 },             /* up to the end, partial last block */
	{ DISK - 1, 1 },                 /* last byte */
	{ 2 * BS + 20000, 1 },           /* one byte in the middle of a block */
	{ 7, 3 },                        /* overwrite inside earlier data */
};

static void run_odd_writes(struct bdev *b, uint8_t *model)
{
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(odd_writes); i++) {
		uint64_t off = odd_writes[i].off, lo, hi;
		size_t len = odd_writes[i].len;

		wr(b, model, 10 + (unsigned)i, off, len);
		/* The write and 5000 bytes around it (neighbours untouched). */
		lo = off > 5000 ? off - 5000 : 0;
		hi = UTIL_MIN(DISK, off + len + 5000);
		expect_range(b, model, lo, (size_t)(hi - lo));
		/* Odd sub-ranges of it. */
		if (len > 3)
			expect_range(b, model, off + 1, len - 2);
	}
	expect_all(b, model);
}

/* Odd-offset writes into a new image of `type`, checked through the bdev,
 * in the file decoded by hand, and after reopening read-only. */
static void odd_offsets(struct fx *f, const char *name, int type,
			const char *kind)
{
	uint8_t *model = calloc(1, DISK);
	struct bdev *b;

	assert_non_null(model);
	create(pth(f, name), type, DISK, NULL);
	b = open_rw(pth(f, name), 0);
	assert_string_equal(b->ops->kind, kind);
	expect_all(b, model);
	run_odd_writes(b, model);
	must(b, bdev_flush(b), "flush");
	bdev_close(b);
	expect_file(pth(f, name), model, NULL);
	b = open_rw(pth(f, name), VHD_O_RDONLY);
	expect_all(b, model);
	bdev_close(b);
	free(model);
}

static void test_fixed_odd_offsets(void **state)
{
	odd_offsets(*state, "f.vhd", VHD_TYPE_FIXED, "vhd-fixed");
}

static void test_dynamic_odd_offsets(void **state)
{
	odd_offsets(*state, "d.vhd", VHD_TYPE_DYNAMIC, "vhd-sparse");
}

/* A dynamic parent with data in blocks 0, 1 and 3 (block 2 unallocated,
 * reads zeros); fills `model` with what it holds. */
static void make_parent(struct fx *f, const char *name, uint8_t *model)
{
	struct bdev *b;

	memset(model, 0, DISK);
	create(pth(f, name), VHD_TYPE_DYNAMIC, DISK, NULL);
	b = open_rw(pth(f, name), 0);
	wr(b, model, 1, 0, 2 * BS);
	wr(b, model, 2, 3 * BS, DISK - 3 * BS);
	bdev_close(b);
}

static void test_diff_odd_offsets(void **state)
{
	struct fx *f = *state;
	uint8_t *model = malloc(DISK), *pmodel = malloc(DISK);
	struct bdev *b;
	size_t plen, plen2;
	uint8_t *pfile, *pfile2;

	assert_non_null(model);
	assert_non_null(pmodel);
	make_parent(f, "p.vhd", pmodel);
	pfile = slurp(pth(f, "p.vhd"), &plen);
	create(pth(f, "c.vhd"), VHD_TYPE_DIFF, 0, pth(f, "p.vhd"));
	memcpy(model, pmodel, DISK);
	b = open_rw(pth(f, "c.vhd"), 0);
	expect_all(b, model);
	run_odd_writes(b, model);
	must(b, bdev_flush(b), "flush");
	bdev_close(b);
	/* The child's own sectors over the parent's bytes. */
	expect_file(pth(f, "c.vhd"), model, pmodel);
	b = open_rw(pth(f, "c.vhd"), VHD_O_RDONLY);
	expect_all(b, model);
	bdev_close(b);
	/* The parent was not touched. */
	pfile2 = slurp(pth(f, "p.vhd"), &plen2);
	assert_int_equal(plen, plen2);
	assert_memory_equal(pfile, pfile2, plen);
	free(pfile);
	free(pfile2);
	free(model);
	free(pmodel);
}

/* ---- write_zeroes ---- */

static const struct { uint64_t off, len; } zero_ranges[] = {
	{ 100, 50 },                  /* inside one sector */
	{ BS - 1000, 9000 },          /* across blocks 0/1, whole pages inside */
	{ 2 * BS, BS },               /* exactly block 2 */
	{ 4096 * 5 + 1, 4096 * 3 },   /* unaligned, partial granules */
	{ DISK - 513, 513 },          /* to the end of the disk */
};

static void zero_all(struct bdev *b, uint8_t *model, unsigned flags)
{
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(zero_ranges); i++) {
		uint64_t off = zero_ranges[i].off, len = zero_ranges[i].len;
		uint64_t lo = off > 4096 ? off - 4096 : 0;
		uint64_t hi = UTIL_MIN(DISK, off + len + 4096);

		must(b, bdev_write_zeroes(b, off, len, flags), "write_zeroes");
		memset(model + off, 0, len);
		expect_range(b, model, lo, (size_t)(hi - lo));
	}
	expect_all(b, model);
}

static uint32_t allocated(struct bdev *b)
{
	struct vhd_info i;

	assert_int_equal(vhd_get_info(vhd_of(b), &i), 0);
	return i.allocated_blocks;
}

static void test_dynamic_write_zeroes(void **state)
{
	struct fx *f = *state;
	uint8_t *model = calloc(1, DISK);
	struct bdev *b;

	assert_non_null(model);
	create(pth(f, "d.vhd"), VHD_TYPE_DYNAMIC, DISK, NULL);
	b = open_rw(pth(f, "d.vhd"), 0);
	/* Zeroing an unallocated block is free: nothing gets allocated,
	 * even when the caller refuses a slow fallback. */
	must(b, bdev_write_zeroes(b, BS + 7, BS, BDEV_NO_FALLBACK), "zeroes");
	assert_int_equal(allocated(b), 0);
	wr(b, model, 3, 0, DISK);
	assert_int_equal(allocated(b), 4);
	zero_all(b, model, 0);
	/* And again over fresh data, allowed to unmap. */
	wr(b, model, 4, 0, DISK);
	zero_all(b, model, BDEV_MAY_UNMAP);
	must(b, bdev_flush(b), "flush");
	bdev_close(b);
	expect_file(pth(f, "d.vhd"), model, NULL);
	b = open_rw(pth(f, "d.vhd"), VHD_O_RDONLY);
	expect_all(b, model);
	bdev_close(b);
	free(model);
}

static void test_fixed_write_zeroes(void **state)
{
	struct fx *f = *state;
	uint8_t *model = calloc(1, DISK);
	struct bdev *b;

	assert_non_null(model);
	create(pth(f, "f.vhd"), VHD_TYPE_FIXED, DISK, NULL);
	b = open_rw(pth(f, "f.vhd"), 0);
	wr(b, model, 5, 0, DISK);
	zero_all(b, model, 0);
	wr(b, model, 6, 0, DISK);
	zero_all(b, model, BDEV_MAY_UNMAP);
	bdev_close(b);
	/* The footer after the data survived the zeroing of the last bytes. */
	expect_file(pth(f, "f.vhd"), model, NULL);
	b = open_rw(pth(f, "f.vhd"), VHD_O_RDONLY);
	expect_all(b, model);
	bdev_close(b);
	free(model);
}

static void test_diff_write_zeroes_hides_parent(void **state)
{
	struct fx *f = *state;
	uint8_t *model = malloc(DISK), *pmodel = malloc(DISK), *before;
	struct bdev *b;

	assert_non_null(model);
	assert_non_null(pmodel);
	make_parent(f, "p.vhd", pmodel);
	create(pth(f, "c.vhd"), VHD_TYPE_DIFF, 0, pth(f, "p.vhd"));
	memcpy(model, pmodel, DISK);
	b = open_rw(pth(f, "c.vhd"), 0);
	/* Where the parent reads zeros (its block 2) and the child has
	 * nothing, zeroing needs no allocation. */
	must(b, bdev_write_zeroes(b, 2 * BS + 512, 4096, BDEV_NO_FALLBACK),
	     "zeroes over parent zeros");
	assert_int_equal(allocated(b), 0);
	/* Where the parent has data, a fast-only request is refused and
	 * leaves the data alone. */
	assert_int_equal(bdev_write_zeroes(b, 100, 50, BDEV_NO_FALLBACK),
			 -ENOTSUP);
	expect_range(b, model, 0, 8192);
	/* Zeroing an unallocated child block over parent data allocates. */
	zero_all(b, model, 0);
	assert_true(allocated(b) >= 2);
	/* Child data, then zeros over it. */
	wr(b, model, 7, BS / 2, BS);
	zero_all(b, model, BDEV_MAY_UNMAP);
	must(b, bdev_flush(b), "flush");
	bdev_close(b);
	expect_file(pth(f, "c.vhd"), model, pmodel);
	b = open_rw(pth(f, "c.vhd"), VHD_O_RDONLY);
	expect_all(b, model);
	bdev_close(b);
	/* The parent still has its data where the child reads zeros. */
	b = open_rw(pth(f, "p.vhd"), VHD_O_RDONLY);
	before = malloc(50);
	assert_non_null(before);
	must(b, bdev_read(b, before, 100, 50), "read parent");
	assert_memory_equal(before, pmodel + 100, 50);
	assert_false(util_is_zero(before, 50));
	free(before);
	bdev_close(b);
	free(model);
	free(pmodel);
}

/* ---- block status ---- */

static void expect_status(struct bdev *b, uint64_t off, uint64_t len,
			  uint64_t want_len, uint32_t want_flags, int want_depth)
{
	struct bdev_status st = { 0 };

	must(b, bdev_block_status(b, off, len, &st), "block_status");
	if (st.length != want_len || st.flags != want_flags ||
	    st.depth != want_depth)
		fail_msg("status(%llu, %llu) = len %llu flags 0x%x depth %d; expected len %llu flags 0x%x depth %d",
			 (unsigned long long)off, (unsigned long long)len,
			 (unsigned long long)st.length, st.flags, st.depth,
			 (unsigned long long)want_len, want_flags, want_depth);
}

#define DATA (BDEV_ST_DATA | BDEV_ST_ALLOC)
#define ZERO_PRESENT (BDEV_ST_ZERO | BDEV_ST_ALLOC)
#define ABSENT BDEV_ST_ZERO

static void test_block_status_dynamic(void **state)
{
	struct fx *f = *state;
	struct bdev *b;
	uint8_t one = 1;

	(void)state;
	create(pth(f, "d.vhd"), VHD_TYPE_DYNAMIC, DISK, NULL);
	b = open_rw(pth(f, "d.vhd"), 0);
	/* Nothing allocated: one extent over every block. */
	expect_status(b, 0, DISK, DISK, ABSENT, 0);
	expect_status(b, 12345, 1000, 1000, ABSENT, 0);
	/* One byte in block 1: the whole block is present (dynamic blocks
	 * are allocated with every bit set) and holds data. */
	must(b, bdev_write(b, &one, BS + 5, 1, 0), "write");
	expect_status(b, 0, DISK, BS, ABSENT, 0);
	expect_status(b, 100, DISK - 100, BS - 100, ABSENT, 0);
	expect_status(b, BS, DISK - BS, BS, DATA, 0);
	expect_status(b, BS + 777, 10, 10, DATA, 0);
	expect_status(b, 2 * BS, DISK - 2 * BS, DISK - 2 * BS, ABSENT, 0);
	/* The last, partial block. */
	must(b, bdev_write(b, &one, DISK - 1, 1, 0), "write");
	expect_status(b, 2 * BS, DISK - 2 * BS, BS, ABSENT, 0);
	expect_status(b, 3 * BS, DISK - 3 * BS, DISK - 3 * BS, DATA, 0);
	bdev_close(b);
}

static void test_block_status_layers(void **state)
{
	struct fx *f = *state;
	uint8_t *pmodel = malloc(DISK), one = 0x11;
	struct bdev *b;

	assert_non_null(pmodel);
	make_parent(f, "p.vhd", pmodel);      /* data in blocks 0, 1, 3 */
	create(pth(f, "c.vhd"), VHD_TYPE_DIFF, 0, pth(f, "p.vhd"));
	b = open_rw(pth(f, "c.vhd"), 0);
	/* One byte in block 2 granule 1: the child holds exactly that
	 * 4 KiB granule (copied up from the parent around the byte). */
	must(b, bdev_write(b, &one, 2 * BS + 4096 + 3, 1, 0), "write");
	/* Block 0: parent data, one layer down. */
	expect_status(b, 0, DISK, BS, DATA, 1);
	expect_status(b, 1000, 24, 24, DATA, 1);
	/* Block 2 before the granule: parent's unallocated block. */
	expect_status(b, 2 * BS, DISK - 2 * BS, 4096, ABSENT, 1);
	/* The granule. */
	expect_status(b, 2 * BS + 4096, DISK - 2 * BS - 4096, 4096, DATA, 0);
	expect_status(b, 2 * BS + 4096 + 100, 10, 10, DATA, 0);
	expect_status(b, 2 * BS + 4096 + 100, DISK - 2 * BS - 4096 - 100,
		      4096 - 100, DATA, 0);
	/* After it, back to the parent. */
	expect_status(b, 2 * BS + 8192, DISK - 2 * BS - 8192, BS - 8192,
		      ABSENT, 1);
	expect_status(b, 3 * BS, DISK - 3 * BS, DISK - 3 * BS, DATA, 1);
	bdev_close(b);

	/* A grandchild sees the base two layers down and the child's granule
	 * one layer down. */
	create(pth(f, "g.vhd"), VHD_TYPE_DIFF, 0, pth(f, "c.vhd"));
	b = open_rw(pth(f, "g.vhd"), VHD_O_RDONLY);
	expect_status(b, 0, DISK, BS, DATA, 2);
	expect_status(b, 2 * BS, 4096, 4096, ABSENT, 2);
	expect_status(b, 2 * BS + 4096, BS - 4096, 4096, DATA, 1);
	expect_status(b, 3 * BS, DISK - 3 * BS, DISK - 3 * BS, DATA, 2);
	bdev_close(b);
	free(pmodel);
}

static void test_block_status_fixed(void **state)
{
	struct fx *f = *state;
	struct bdev_status st;
	struct bdev *b;
	uint8_t one = 1;

	create(pth(f, "f.vhd"), VHD_TYPE_FIXED, DISK, NULL);
	b = open_rw(pth(f, "f.vhd"), 0);
	must(b, bdev_write(b, &one, BS, 1, 0), "write");
	for (uint64_t off = 0; off < DISK; off += st.length) {
		must(b, bdev_block_status(b, off, DISK - off, &st), "status");
		assert_true(st.flags & BDEV_ST_ALLOC);
		assert_int_equal(st.depth, 0);
		assert_true(st.length > 0 && st.length <= DISK - off);
		/* The byte written is reported as data. */
		if (off <= BS && BS < off + st.length)
			assert_true(st.flags & BDEV_ST_DATA);
	}
	bdev_close(b);
}

/* ---- discard ---- */

/* Discard is advisory: bytes outside the range never change; inside, a
 * dynamic image may read zeros afterwards, a differencing one must keep
 * its data (zeros would no longer show the parent). */
static void discard_case(struct fx *f, bool diff)
{
	uint8_t *model = malloc(DISK), *pmodel = malloc(DISK), *got = malloc(DISK);
	const uint64_t off = BS - 1000, len = 3 * 4096 + 2000;
	struct bdev *b;

	assert_non_null(model);
	assert_non_null(pmodel);
	assert_non_null(got);
	memset(model, 0, DISK);
	if (diff) {
		make_parent(f, "p.vhd", pmodel);
		create(pth(f, "c.vhd"), VHD_TYPE_DIFF, 0, pth(f, "p.vhd"));
		memcpy(model, pmodel, DISK);
		b = open_rw(pth(f, "c.vhd"), 0);
	} else {
		create(pth(f, "c.vhd"), VHD_TYPE_DYNAMIC, DISK, NULL);
		b = open_rw(pth(f, "c.vhd"), 0);
	}
	wr(b, model, 13, 0, 2 * BS);
	must(b, bdev_discard(b, off, len), "discard");
	must(b, bdev_read(b, got, 0, DISK), "read");
	for (uint64_t i = 0; i < DISK; i++) {
		bool inside = i >= off && i < off + len;

		if (got[i] == model[i] || (inside && !diff && got[i] == 0))
			continue;
		fail_msg("after discard, byte %llu (%s the range) is 0x%02x, expected 0x%02x",
			 (unsigned long long)i, inside ? "inside" : "outside",
			 got[i], model[i]);
	}
	bdev_close(b);
	/* What reads back is also what the file says. */
	memcpy(model, got, DISK);
	expect_file(pth(f, "c.vhd"), model, diff ? pmodel : NULL);
	free(model);
	free(pmodel);
	free(got);
}

static void test_discard_dynamic(void **state)
{
	discard_case(*state, false);
}

static void test_discard_diff_keeps_data(void **state)
{
	discard_case(*state, true);
}

/* ---- flush, FUA, read-only, bounds ---- */

static void test_flush_makes_writes_visible_to_new_opener(void **state)
{
	struct fx *f = *state;
	uint8_t *model = calloc(1, DISK);
	struct bdev *b, *r;

	assert_non_null(model);
	create(pth(f, "d.vhd"), VHD_TYPE_DYNAMIC, DISK, NULL);
	b = open_rw(pth(f, "d.vhd"), 0);
	wr(b, model, 8, BS + 99, 5000);
	wr(b, model, 9, 3 * BS + 1, 100);
	must(b, bdev_flush(b), "flush");
	/* A second, independent opener reads the file as it is now (with
	 * VHD_O_FORCE_SHARE: the writer's lock refuses a plain reader). */
	r = open_rw(pth(f, "d.vhd"), VHD_O_RDONLY | VHD_O_FORCE_SHARE);
	expect_all(r, model);
	bdev_close(r);
	expect_file(pth(f, "d.vhd"), model, NULL);
	/* A FUA write is durable and visible without a flush. */
	uint8_t buf[3000];

	fill(buf, 12, 2 * BS + 17, sizeof(buf));
	must(b, bdev_write(b, buf, 2 * BS + 17, sizeof(buf), BDEV_FUA), "fua");
	memcpy(model + 2 * BS + 17, buf, sizeof(buf));
	r = open_rw(pth(f, "d.vhd"), VHD_O_RDONLY | VHD_O_FORCE_SHARE);
	expect_all(r, model);
	bdev_close(r);
	bdev_close(b);
	free(model);
}

static void test_read_only_and_bounds(void **state)
{
	struct fx *f = *state;
	uint8_t buf[16] = { 0 };
	char msg[512];
	struct bdev *b;

	create(pth(f, "d.vhd"), VHD_TYPE_DYNAMIC, DISK, NULL);
	b = open_rw(pth(f, "d.vhd"), VHD_O_RDONLY);
	assert_true(b->read_only);
	assert_int_equal(bdev_write(b, buf, 0, 1, 0), -EROFS);
	assert_int_equal(bdev_write_zeroes(b, 0, 1, 0), -EROFS);
	assert_non_null(strstr(bdev_errmsg(b, msg, sizeof(msg)), "read-only"));
	assert_int_equal(bdev_read(b, buf, DISK - 8, 16), -EINVAL);
	assert_int_equal(bdev_read(b, buf, UINT64_MAX - 4, 8), -EINVAL);
	assert_int_equal(bdev_read(b, buf, DISK - 8, 8), 0);
	bdev_close(b);
	/* Nothing was allocated by the refused write. */
	b = open_rw(pth(f, "d.vhd"), 0);
	assert_int_equal(allocated(b), 0);
	assert_int_equal(bdev_write(b, buf, DISK, 1, 0), -EINVAL);
	bdev_close(b);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_fixed_odd_offsets),
		T(test_dynamic_odd_offsets),
		T(test_diff_odd_offsets),
		T(test_dynamic_write_zeroes),
		T(test_fixed_write_zeroes),
		T(test_diff_write_zeroes_hides_parent),
		T(test_block_status_dynamic),
		T(test_block_status_layers),
		T(test_block_status_fixed),
		T(test_discard_dynamic),
		T(test_discard_diff_keeps_data),
		T(test_flush_makes_writes_visible_to_new_opener),
		T(test_read_only_and_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
