/* Differencing chains: base <- child <- grandchild made with vhd_create,
 * written at every level through bdev_write and read back through the
 * chain; how a child finds its parent (relative locator resolved against
 * the child's folder, not the working directory; absolute locator; the
 * parent's file name beside the child); a parent whose UUID differs is
 * refused unless overridden; cycles and over-deep chains are refused. */
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
#include <unistd.h>

#include <cmocka.h>

#include "ut.h"

#include "common/bdev.h"
#include "common/util.h"
#include "vhd/vhd-int.h"
#include "vhd/vhd.h"

#define BS (512u << 10)
#define DISK ((uint64_t)4 * BS)

struct fx {
	char dir[64];
	char cwd[PATH_MAX];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || !getcwd(f->cwd, sizeof(f->cwd)))
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-vhd-chain.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (chdir(f->cwd))
		return -1;
	ut_rmtree(f->dir);
	free(f);
	return 0;
}

/* "DIR/name" in one of 8 rotating buffers. */
static char *pth(struct fx *f, const char *name)
{
	return ut_path(f->dir, name);
}

static void mkdirs(struct fx *f, const char *name)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", pth(f, name));
	for (char *s = tmp + strlen(f->dir) + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(tmp, 0755);
			*s = '/';
		}
	assert_int_equal(mkdir(tmp, 0755), 0);
}

static uint8_t pat(unsigned seed, uint64_t off)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ull ^ (seed * 0xbf58476d1ce4e5b9ull);

	return (uint8_t)(x >> 29 ^ x >> 47);
}

static void create_base(const char *path, int type)
{
	struct vhd_create_opts o = { .type = type, .size = DISK,
				     .block_size = type == VHD_TYPE_FIXED ? 0 : BS };
	struct bdev_err e = { 0 };

	if (vhd_create(path, &o, &e))
		fail_msg("vhd_create %s: %s", path, e.msg);
}

static void create_child(const char *path, const char *parent)
{
	struct vhd_create_opts o = { .type = VHD_TYPE_DIFF, .parent = parent };
	struct bdev_err e = { 0 };

	if (vhd_create(path, &o, &e))
		fail_msg("vhd_create %s (parent %s): %s", path, parent, e.msg);
}

static struct bdev *open_ok(const char *path, unsigned flags)
{
	struct vhd_open_opts o = { .flags = flags };
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(path, &o, &e);

	if (!b)
		fail_msg("vhd_open %s: %s", path, e.msg);
	return b;
}

/* vhd_open must fail with `code` and a message containing `needle`. */
static void open_fails(const char *path, const struct vhd_open_opts *o,
		       int code, const char *needle)
{
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(path, o, &e);

	if (b) {
		bdev_close(b);
		fail_msg("vhd_open %s succeeded, expected error %d", path, code);
	}
	if (e.code != code || !strstr(e.msg, needle))
		fail_msg("vhd_open %s: error %d \"%s\"; expected %d with \"%s\"",
			 path, e.code, e.msg, code, needle);
}

static void wr(struct bdev *b, uint8_t *model, unsigned seed, uint64_t off,
	       size_t len)
{
	uint8_t *buf = malloc(len);
	char msg[512];

	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = pat(seed, off + i);
	if (bdev_write(b, buf, off, len, 0))
		fail_msg("write: %s", bdev_errmsg(b, msg, sizeof(msg)));
	memcpy(model + off, buf, len);
	free(buf);
}

static void expect_disk(struct bdev *b, const uint8_t *model)
{
	uint8_t *buf = malloc(DISK);
	char msg[512];

	assert_non_null(buf);
	assert_true(b->size == DISK);
	/* In odd-sized pieces, so reads start mid-sector and mid-block. */
	for (uint64_t off = 0; off < DISK; off += 77777) {
		size_t n = (size_t)UTIL_MIN(77777, DISK - off);

		if (bdev_read(b, buf + off, off, n))
			fail_msg("read: %s", bdev_errmsg(b, msg, sizeof(msg)));
	}
	for (uint64_t i = 0; i < DISK; i++)
		if (buf[i] != model[i]) {
			uint8_t got = buf[i];

			free(buf);
			fail_msg("%s: byte %llu is 0x%02x, expected 0x%02x",
				 b->name, (unsigned long long)i, got, model[i]);
		}
	free(buf);
}

static void expect_path_is(const char *got, const char *want)
{
	struct stat a, b;

	assert_int_equal(stat(got, &a), 0);
	assert_int_equal(stat(want, &b), 0);
	if (a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		fail_msg("parent found at %s, expected %s", got, want);
}

static void file_hash(const char *path, uint64_t *sum, off_t *size)
{
	int fd = open(path, O_RDONLY);
	uint8_t buf[65536];
	ssize_t n;
	off_t pos = 0;

	assert_true(fd >= 0);
	*sum = 1469598103934665603ull;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			*sum = (*sum ^ buf[i]) * 1099511628211ull;
		pos += n;
	}
	close(fd);
	*size = pos;
}

/* ---- reading and writing through a three-level chain ---- */

static void three_levels(struct fx *f, int base_type)
{
	uint8_t *mb = calloc(1, DISK), *mc = malloc(DISK), *mg = malloc(DISK);
	uint64_t hb, hb2, hc, hc2;
	off_t sb, sb2, sc, sc2;
	struct vhd_info info;
	struct bdev *b, *c, *p;
	char *base = pth(f, "base.vhd"), *child = pth(f, "child.vhd"),
	     *grand = pth(f, "grand.vhd");

	assert_non_null(mb);
	assert_non_null(mc);
	assert_non_null(mg);
	create_base(base, base_type);
	b = open_ok(base, 0);
	wr(b, mb, 1, 0, 700 << 10);               /* blocks 0 and 1 */
	wr(b, mb, 2, 3 * BS / 2 + 3, 5000);       /* block 2 */
	wr(b, mb, 3, DISK - 10, 10);              /* block 3 */
	bdev_close(b);

	create_child(child, base);
	file_hash(base, &hb, &sb);
	memcpy(mc, mb, DISK);
	c = open_ok(child, 0);
	expect_disk(c, mc);
	wr(c, mc, 4, 100, 1);                     /* one byte over base data */
	wr(c, mc, 5, BS - 2000, 4097);            /* across blocks 0/1 */
	wr(c, mc, 6, 3 * BS + 777, 3000);         /* over base zeros */
	wr(c, mc, 7, 3 * BS / 2 + 4000, 2);       /* inside base's block-2 data */
	expect_disk(c, mc);
	bdev_close(c);
	file_hash(base, &hb2, &sb2);
	assert_true(hb == hb2 && sb == sb2);      /* the parent is untouched */

	create_child(grand, child);
	file_hash(child, &hc, &sc);
	memcpy(mg, mc, DISK);
	c = open_ok(grand, 0);
	wr(c, mg, 8, 300 * 1024 + 5, 9000);
	wr(c, mg, 9, 101, 3);                     /* beside the child's byte */
	wr(c, mg, 10, DISK - 1, 1);
	expect_disk(c, mg);
	bdev_close(c);
	file_hash(child, &hc2, &sc2);
	assert_true(hc == hc2 && sc == sc2);
	file_hash(base, &hb2, &sb2);
	assert_true(hb == hb2 && sb == sb2);

	/* Each level reads its own view. */
	c = open_ok(grand, VHD_O_RDONLY);
	expect_disk(c, mg);
	/* The chain as the handles see it: grand -> child -> base. */
	p = vhd_parent(vhd_of(c));
	assert_non_null(p);
	expect_disk(p, mc);
	assert_int_equal(vhd_get_info(vhd_of(c), &info), 0);
	assert_int_equal(info.type, VHD_TYPE_DIFF);
	assert_string_equal(info.parent_name, "child.vhd");
	expect_path_is(info.parent_path, child);
	assert_int_equal(vhd_get_info(vhd_of(p), &info), 0);
	assert_string_equal(info.parent_name, "base.vhd");
	expect_path_is(info.parent_path, base);
	p = vhd_parent(vhd_of(p));
	assert_non_null(p);
	expect_disk(p, mb);
	assert_null(vhd_parent(vhd_of(p)));
	assert_true(p->read_only);                /* parents open read-only */
	bdev_close(c);
	c = open_ok(child, VHD_O_RDONLY);
	expect_disk(c, mc);
	bdev_close(c);
	b = open_ok(base, VHD_O_RDONLY);
	expect_disk(b, mb);
	bdev_close(b);
	free(mb);
	free(mc);
	free(mg);
}

static void test_three_levels_over_dynamic_base(void **state)
{
	three_levels(*state, VHD_TYPE_DYNAMIC);
}

static void test_three_levels_over_fixed_base(void **state)
{
	three_levels(*state, VHD_TYPE_FIXED);
}

static void test_child_records_parent_uuid_and_name(void **state)
{
	struct fx *f = *state;
	struct vhd_info pi, ci;
	struct bdev *p, *c;

	create_base(pth(f, "base.vhd"), VHD_TYPE_DYNAMIC);
	create_child(pth(f, "c.vhd"), pth(f, "base.vhd"));
	p = open_ok(pth(f, "base.vhd"), VHD_O_RDONLY);
	c = open_ok(pth(f, "c.vhd"), VHD_O_RDONLY);
	assert_int_equal(vhd_get_info(vhd_of(p), &pi), 0);
	assert_int_equal(vhd_get_info(vhd_of(c), &ci), 0);
	assert_memory_equal(ci.parent_uuid, pi.uuid, 16);
	assert_memory_not_equal(ci.uuid, pi.uuid, 16);
	assert_true(c->size == p->size);
	assert_int_equal(ci.block_size, pi.block_size);   /* inherits */
	bdev_close(c);
	bdev_close(p);
}

/* ---- finding the parent ---- */

/* base in a/base/, child in a/child/ (relative locator
 * "./../base/base.vhd"); returns the base's model. */
static uint8_t *make_split_tree(struct fx *f)
{
	uint8_t *m = calloc(1, DISK);
	struct bdev *b;

	assert_non_null(m);
	mkdirs(f, "a/base");
	mkdirs(f, "a/child");
	create_base(pth(f, "a/base/base.vhd"), VHD_TYPE_DYNAMIC);
	b = open_ok(pth(f, "a/base/base.vhd"), 0);
	wr(b, m, 21, 0, DISK);
	bdev_close(b);
	create_child(pth(f, "a/child/c.vhd"), pth(f, "a/base/base.vhd"));
	return m;
}

static void test_relative_locator_against_child_folder(void **state)
{
	struct fx *f = *state;
	uint8_t *m = make_split_tree(f), *decoy = calloc(1, DISK);
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY };
	struct vhd_info info;
	struct bdev *b;

	assert_non_null(decoy);
	/* Move the tree: the absolute locator now points nowhere, and there
	 * is no base.vhd beside the child; only the relative locator works. */
	assert_int_equal(rename(pth(f, "a"), pth(f, "b")), 0);
	/* A decoy where "../base/base.vhd" lands relative to the working
	 * directory (as opposed to the child's folder). */
	mkdirs(f, "decoy/x");
	mkdirs(f, "decoy/base");
	create_base(pth(f, "decoy/base/base.vhd"), VHD_TYPE_DYNAMIC);
	assert_int_equal(chdir(pth(f, "decoy/x")), 0);
	b = open_ok("../../b/child/c.vhd", VHD_O_RDONLY);
	expect_disk(b, m);
	assert_int_equal(vhd_get_info(vhd_of(b), &info), 0);
	expect_path_is(info.parent_path, pth(f, "b/base/base.vhd"));
	bdev_close(b);
	/* From inside the child's folder, by bare name. */
	assert_int_equal(chdir(pth(f, "b/child")), 0);
	b = open_ok("c.vhd", VHD_O_RDONLY);
	expect_disk(b, m);
	bdev_close(b);
	/* By absolute path from anywhere. */
	assert_int_equal(chdir("/"), 0);
	b = open_ok(pth(f, "b/child/c.vhd"), VHD_O_RDONLY);
	expect_disk(b, m);
	bdev_close(b);
	/* If the decoy is what the child finds, the UUID check catches it:
	 * put the decoy where the relative locator points. */
	assert_int_equal(rename(pth(f, "b/base/base.vhd"), pth(f, "real.vhd")), 0);
	assert_int_equal(rename(pth(f, "decoy/base/base.vhd"),
				pth(f, "b/base/base.vhd")), 0);
	open_fails(pth(f, "b/child/c.vhd"), &o, EINVAL, "UUID");
	free(decoy);
	free(m);
}

static void test_absolute_locator(void **state)
{
	struct fx *f = *state;
	uint8_t *m = make_split_tree(f);
	struct vhd_info info;
	struct bdev *b;

	/* Move the child away: the relative locator breaks, and there is no
	 * base.vhd beside it; the absolute one still points at the base. */
	mkdirs(f, "elsewhere/deeper");
	assert_int_equal(rename(pth(f, "a/child/c.vhd"),
				pth(f, "elsewhere/deeper/c.vhd")), 0);
	assert_int_equal(chdir(pth(f, "elsewhere")), 0);
	b = open_ok("deeper/c.vhd", VHD_O_RDONLY);
	expect_disk(b, m);
	assert_int_equal(vhd_get_info(vhd_of(b), &info), 0);
	expect_path_is(info.parent_path, pth(f, "a/base/base.vhd"));
	bdev_close(b);
	free(m);
}

static void test_parent_by_name_beside_child(void **state)
{
	struct fx *f = *state;
	uint8_t *m = make_split_tree(f);
	struct vhd_info info;
	struct bdev *b;

	/* Both files moved into one new folder: neither locator works, the
	 * header's parent name ("base.vhd") beside the child does. */
	mkdirs(f, "flat");
	assert_int_equal(rename(pth(f, "a/child/c.vhd"), pth(f, "flat/c.vhd")), 0);
	assert_int_equal(rename(pth(f, "a/base/base.vhd"),
				pth(f, "flat/base.vhd")), 0);
	assert_int_equal(chdir("/"), 0);
	b = open_ok(pth(f, "flat/c.vhd"), VHD_O_RDONLY);
	expect_disk(b, m);
	assert_int_equal(vhd_get_info(vhd_of(b), &info), 0);
	expect_path_is(info.parent_path, pth(f, "flat/base.vhd"));
	bdev_close(b);
	free(m);
}

static void test_parent_missing_says_what_was_tried(void **state)
{
	struct fx *f = *state;
	uint8_t *m = make_split_tree(f);
	struct vhd_open_opts o = { 0 };
	struct vhd_info info;
	struct bdev *b;

	assert_int_equal(unlink(pth(f, "a/base/base.vhd")), 0);
	open_fails(pth(f, "a/child/c.vhd"), &o, ENOENT, "parent image not found");
	open_fails(pth(f, "a/child/c.vhd"), &o, ENOENT, "base.vhd");
	/* Info-only opening does not need the parent; reads that need it
	 * fail cleanly. */
	o.flags = VHD_O_RDONLY | VHD_O_NO_PARENT;
	b = open_ok(pth(f, "a/child/c.vhd"), o.flags);
	assert_int_equal(vhd_get_info(vhd_of(b), &info), 0);
	assert_string_equal(info.parent_name, "base.vhd");
	assert_string_equal(info.parent_path, "");
	assert_int_equal(bdev_read(b, m, 0, 512), -ENOENT);
	bdev_close(b);
	free(m);
}

/* Rewrite the dynamic header of `path` (at offset 512) through fn, which
 * may also write locator data with fd; the checksum is recomputed. */
static void edit_header(const char *path,
			void (*fn)(struct vhd_header *h, int fd, void *arg),
			void *arg)
{
	uint8_t buf[1024];
	struct vhd_header h;
	char why[300];
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, 1024, 512), 1024);
	assert_int_equal(vhd_header_decode(buf, &h, why, sizeof(why)), 0);
	fn(&h, fd, arg);
	vhd_header_encode(&h, buf);
	assert_int_equal(pwrite(fd, buf, 1024, 512), 1024);
	close(fd);
}

/* Put `data` (len bytes) into locator i's space, with code `code`. */
static void set_loc(struct vhd_header *h, int fd, int i, const char *code,
		    const void *data, uint32_t len)
{
	assert_true(len <= 512);
	memcpy(h->loc[i].code, code, 4);
	h->loc[i].data_length = len;
	assert_int_equal(pwrite(fd, data, len, (off_t)h->loc[i].data_offset),
			 (ssize_t)len);
}

static void set_loc_utf16(struct vhd_header *h, int fd, int i,
			  const char *code, const char *s)
{
	uint8_t u[512];
	int n = vhd_utf16_encode(s, u, sizeof(u), true);

	assert_true(n > 0);
	set_loc(h, fd, i, code, u, (uint32_t)n);
}

static void set_name(struct vhd_header *h, const char *name)
{
	memset(h->parent_name, 0, sizeof(h->parent_name));
	assert_true(vhd_utf16_encode(name, h->parent_name,
				     sizeof(h->parent_name), false) > 0);
}

/* As Hyper-V writes them: W2ku "C:\...\base.vhd", W2ru ".\base.vhd". */
static void hyperv_style(struct vhd_header *h, int fd, void *arg)
{
	(void)arg;
	set_loc_utf16(h, fd, 0, "W2ku", "C:\\Hyper-V\\Virtual Hard Disks\\base.vhd");
	set_loc_utf16(h, fd, 1, "W2ru", ".\\gone\\base.vhd");
	set_name(h, "other.vhd");
}

static void test_windows_drive_locator_uses_file_name_beside_child(void **state)
{
	struct fx *f = *state;
	uint8_t *m = calloc(1, DISK);
	struct vhd_info info;
	struct bdev *b;

	assert_non_null(m);
	create_base(pth(f, "base.vhd"), VHD_TYPE_DYNAMIC);
	b = open_ok(pth(f, "base.vhd"), 0);
	wr(b, m, 41, 1000, 70000);
	bdev_close(b);
	create_child(pth(f, "c.vhd"), pth(f, "base.vhd"));
	/* Only the drive path's file name can lead to the parent. */
	edit_header(pth(f, "c.vhd"), hyperv_style, NULL);
	assert_int_equal(chdir("/"), 0);
	b = open_ok(pth(f, "c.vhd"), VHD_O_RDONLY);
	expect_disk(b, m);
	assert_int_equal(vhd_get_info(vhd_of(b), &info), 0);
	expect_path_is(info.parent_path, pth(f, "base.vhd"));
	assert_string_equal(info.parent_name, "other.vhd");
	bdev_close(b);
	free(m);
}

/* Only a MacX locator (UTF-8 file URL) pointing at the moved parent. */
static void macx_only(struct vhd_header *h, int fd, void *arg)
{
	const char *url = arg;

	memset(h->loc[1].code, 0, 4);
	set_loc(h, fd, 0, "MacX", url, (uint32_t)strlen(url));
	set_name(h, "other.vhd");
}

static void test_macx_locator(void **state)
{
	struct fx *f = *state;
	uint8_t *m = make_split_tree(f);
	char url[PATH_MAX + 8];
	struct vhd_info info;
	struct bdev *b;

	/* Two names one byte apart: UTF-8 has no 2-byte units, so both an
	 * odd and an even locator length must work. */
	assert_int_equal(rename(pth(f, "a/base/base.vhd"), pth(f, "moved.vhd")), 0);
	for (int i = 0; i < 2; i++) {
		const char *name = i ? "moved1.vhd" : "moved.vhd";

		if (i)
			assert_int_equal(rename(pth(f, "moved.vhd"), pth(f, name)), 0);
		snprintf(url, sizeof(url), "file://%s", pth(f, name));
		edit_header(pth(f, "a/child/c.vhd"), macx_only, url);
		b = open_ok(pth(f, "a/child/c.vhd"), VHD_O_RDONLY);
		expect_disk(b, m);
		assert_int_equal(vhd_get_info(vhd_of(b), &info), 0);
		expect_path_is(info.parent_path, pth(f, name));
		bdev_close(b);
	}
	free(m);
}

/* Damaged locators: a lone surrogate, odd length, data past the end of
 * the file, an absurd length.  All are skipped; the parent name works. */
static void broken_locators(struct vhd_header *h, int fd, void *arg)
{
	static const uint8_t lone[] = { '.', 0, '\\', 0, 0x3d, 0xd8, 'x', 0 };

	(void)arg;
	set_loc(h, fd, 0, "W2ku", lone, sizeof(lone));
	set_loc_utf16(h, fd, 1, "W2ru", ".\\nothere.vhd");
	h->loc[1].data_length = 7;                      /* odd */
	memcpy(h->loc[2].code, "W2ru", 4);
	h->loc[2].data_offset = 1ull << 40;             /* past the end */
	h->loc[2].data_length = 20;
	memcpy(h->loc[3].code, "W2ku", 4);
	h->loc[3].data_offset = h->loc[0].data_offset;
	h->loc[3].data_length = 0xfffffffe;             /* absurd */
}

static void test_broken_locators_fall_back_to_name(void **state)
{
	struct fx *f = *state;
	uint8_t *m = calloc(1, DISK);
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY };
	struct bdev *b;

	assert_non_null(m);
	create_base(pth(f, "base.vhd"), VHD_TYPE_DYNAMIC);
	create_child(pth(f, "c.vhd"), pth(f, "base.vhd"));
	edit_header(pth(f, "c.vhd"), broken_locators, NULL);
	b = open_ok(pth(f, "c.vhd"), VHD_O_RDONLY);
	expect_disk(b, m);
	bdev_close(b);
	/* Without the name either: not found, one clear message. */
	assert_int_equal(rename(pth(f, "base.vhd"), pth(f, "b2.vhd")), 0);
	open_fails(pth(f, "c.vhd"), &o, ENOENT, "parent image not found");
	free(m);
}

/* ---- UUID, cycles, depth ---- */

static void test_parent_uuid_mismatch_refused_unless_overridden(void **state)
{
	struct fx *f = *state;
	struct vhd_create_opts o = { .type = VHD_TYPE_DYNAMIC, .size = DISK,
				     .block_size = BS, .overwrite = true };
	struct vhd_open_opts oo = { .flags = VHD_O_RDONLY };
	struct bdev_err e = { 0 };
	uint8_t *m = calloc(1, DISK);
	struct vhd_info pi, ci;
	struct bdev *b;

	assert_non_null(m);
	create_base(pth(f, "base.vhd"), VHD_TYPE_DYNAMIC);
	create_child(pth(f, "c.vhd"), pth(f, "base.vhd"));
	/* A new image under the parent's name: a different UUID. */
	assert_int_equal(vhd_create(pth(f, "base.vhd"), &o, &e), 0);
	b = open_ok(pth(f, "base.vhd"), 0);
	wr(b, m, 31, 0, 4096);
	bdev_close(b);
	open_fails(pth(f, "c.vhd"), &oo, EINVAL, "UUID");
	oo.flags |= VHD_O_IGNORE_PARENT_UUID;
	b = open_ok(pth(f, "c.vhd"), oo.flags);
	expect_disk(b, m);       /* reads the new parent, as asked */
	assert_int_equal(vhd_get_info(vhd_of(b), &ci), 0);
	assert_int_equal(vhd_get_info(vhd_of(vhd_parent(vhd_of(b))), &pi), 0);
	assert_memory_not_equal(ci.parent_uuid, pi.uuid, 16);
	bdev_close(b);
	free(m);
}

static void test_cycle_detected(void **state)
{
	struct fx *f = *state;
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY };

	/* a <- b, then a replaced by a child of b: b -> a -> b. */
	create_base(pth(f, "a.vhd"), VHD_TYPE_DYNAMIC);
	create_child(pth(f, "b.vhd"), pth(f, "a.vhd"));
	create_child(pth(f, "x.vhd"), pth(f, "b.vhd"));
	assert_int_equal(rename(pth(f, "x.vhd"), pth(f, "a.vhd")), 0);
	open_fails(pth(f, "b.vhd"), &o, ELOOP, "cycle");
	open_fails(pth(f, "a.vhd"), &o, ELOOP, "cycle");
	/* Not even the UUID override opens it. */
	o.flags |= VHD_O_IGNORE_PARENT_UUID;
	open_fails(pth(f, "b.vhd"), &o, ELOOP, "cycle");
}

static void test_self_parent_cycle(void **state)
{
	struct fx *f = *state;
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY };

	/* A child that names itself as parent (renamed over its parent). */
	create_base(pth(f, "s.vhd"), VHD_TYPE_DYNAMIC);
	create_child(pth(f, "t.vhd"), pth(f, "s.vhd"));
	assert_int_equal(rename(pth(f, "t.vhd"), pth(f, "s.vhd")), 0);
	open_fails(pth(f, "s.vhd"), &o, ELOOP, "cycle");
}

/* A chain of n layers: l1 (base) .. ln; returns the top's name. */
static const char *make_chain(struct fx *f, int n)
{
	static char top[32];
	char prev[32], cur[32];

	snprintf(prev, sizeof(prev), "l1.vhd");
	create_base(pth(f, prev), VHD_TYPE_DYNAMIC);
	for (int i = 2; i <= n; i++) {
		snprintf(cur, sizeof(cur), "l%d.vhd", i);
		create_child(pth(f, cur), pth(f, prev));
		snprintf(prev, sizeof(prev), "%s", cur);
	}
	snprintf(top, sizeof(top), "%s", prev);
	return top;
}

static void test_depth_limit(void **state)
{
	struct fx *f = *state;
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY, .max_depth = 5 };
	const char *top = make_chain(f, 5);
	struct bdev_status st;
	struct bdev *b;
	uint8_t one = 0x42, got = 0;

	/* Data in the base shows through four layers. */
	b = open_ok(pth(f, "l1.vhd"), 0);
	assert_int_equal(bdev_write(b, &one, 12345, 1, 0), 0);
	bdev_close(b);
	b = vhd_open(pth(f, top), &o, NULL);
	assert_non_null(b);
	assert_int_equal(bdev_read(b, &got, 12345, 1), 0);
	assert_int_equal(got, 0x42);
	assert_int_equal(bdev_block_status(b, 12345, 1, &st), 0);
	assert_int_equal(st.depth, 4);
	bdev_close(b);
	o.max_depth = 4;
	open_fails(pth(f, top), &o, ELOOP, "too deep");
	open_fails(pth(f, top), &o, ELOOP, "4 layers");
}

/* Give the image at path the footer UUID uuid (both footers). */
static void set_uuid(const char *path, const uint8_t uuid[16])
{
	int fd = open(path, O_RDWR);
	struct vhd_footer ft;
	uint8_t raw[512];
	char why[200];
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(util_pread_full(fd, raw, 512, (uint64_t)st.st_size - 512,
					 false), 0);
	assert_int_equal(vhd_footer_decode(raw, &ft, why, sizeof(why)), 0);
	memcpy(ft.uuid, uuid, 16);
	vhd_footer_encode(&ft, raw);
	assert_int_equal(util_pwrite_full(fd, raw, 512, (uint64_t)st.st_size - 512), 0);
	assert_int_equal(util_pwrite_full(fd, raw, 512, 0), 0);
	close(fd);
}

static void count_problem(void *opaque, bool repaired, const char *msg)
{
	(void)repaired;
	if (strstr(msg, "chain too deep"))
		(*(int *)opaque)++;
}

static void test_default_depth_limit_is_32(void **state)
{
	struct fx *f = *state;
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY };
	struct vhd_create_opts co = { .type = VHD_TYPE_DIFF };
	struct bdev_err e = { 0 };
	uint8_t uuid[16];
	struct bdev *b;
	int deep = 0;

	(void)make_chain(f, VHD_DEFAULT_MAX_DEPTH);
	b = open_ok(pth(f, "l32.vhd"), VHD_O_RDONLY);
	memcpy(uuid, vhd_of(b)->footer.uuid, 16);
	bdev_close(b);
	/* A 33rd layer would be unusable: create refuses it. */
	co.parent = pth(f, "l32.vhd");
	assert_int_equal(vhd_create(pth(f, "l33.vhd"), &co, &e), -ELOOP);
	assert_non_null(strstr(e.msg, "32 layers"));
	assert_int_not_equal(access(pth(f, "l33.vhd"), F_OK), 0);
	/* One made by hand (a new bottom layer under l1, with l1's UUID):
	 * open refuses it and check says why. */
	b = open_ok(pth(f, "l1.vhd"), VHD_O_RDONLY);
	memcpy(uuid, vhd_of(b)->footer.uuid, 16);
	bdev_close(b);
	assert_int_equal(rename(pth(f, "l1.vhd"), pth(f, "l0.vhd")), 0);
	create_child(pth(f, "l1.vhd"), pth(f, "l0.vhd"));
	set_uuid(pth(f, "l1.vhd"), uuid);
	open_fails(pth(f, "l32.vhd"), &o, ELOOP, "32 layers");
	assert_true(vhd_check(pth(f, "l32.vhd"), 0, count_problem, &deep, &e) > 0);
	assert_int_equal(deep, 1);
	assert_int_equal(vhd_check(pth(f, "l31.vhd"), 0, count_problem, &deep, &e), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_three_levels_over_dynamic_base),
		T(test_three_levels_over_fixed_base),
		T(test_child_records_parent_uuid_and_name),
		T(test_relative_locator_against_child_folder),
		T(test_absolute_locator),
		T(test_parent_by_name_beside_child),
		T(test_parent_missing_says_what_was_tried),
		T(test_windows_drive_locator_uses_file_name_beside_child),
		T(test_macx_locator),
		T(test_broken_locators_fall_back_to_name),
		T(test_parent_uuid_mismatch_refused_unless_overridden),
		T(test_cycle_detected),
		T(test_self_parent_cycle),
		T(test_depth_limit),
		T(test_default_depth_limit_is_32),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
