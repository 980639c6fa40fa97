/* libFuzzer target: an arbitrary file opened as a VHD.
 *
 * Each input is written to IMG (img.vhd in a private folder that also
 * holds a small valid dynamic image, parent.vhd, so that differencing
 * inputs can find a parent), then:
 *   1. vhd_open read-only three ways (plain; VHD_O_NO_PARENT;
 *      ignore the parent UUID and use the CHS size), and on success read
 *      a few ranges, walk the block status and get the info;
 *   2. vhd_check without repair;
 *   3. when it opens read-write: write a pattern, read it back, flush,
 *      reopen and read it again; if check found no problem before, it
 *      must find none after the write either;
 *   4. rewrite the input, vhd_check --repair; when that leaves no
 *      problem, the image must open (VHD_O_NO_PARENT) and check again
 *      clean.
 * Crashes, leaks and UB are found by the sanitizers; broken invariants
 * (3, 4) abort with a message.
 *
 * tests/unit/test-vhd-fuzz-regress.c includes this file with
 * FUZZ_VHD_OPEN_NO_ENTRY defined and runs the same sequence over every
 * file of fuzz/corpus/fuzz-vhd-open/ in `make check`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bdev.h"
#include "common/util.h"
#include "vhd/vhd.h"

static char fz_dir[64], fz_img[128], fz_parent[128];
static void fz_cleanup(void);

#ifndef FUZZ_FAIL
#define FUZZ_FAIL(...) do { fprintf(stderr, "fuzz-vhd-open: " __VA_ARGS__); \
			    fputc('\n', stderr); fz_cleanup(); abort(); } while (0)
#endif

static void fz_cleanup(void)
{
	if (!fz_dir[0])
		return;
	unlink(fz_img);
	unlink(fz_parent);
	rmdir(fz_dir);
	fz_dir[0] = '\0';
}

/* Make the private folder and parent.vhd (1 MiB dynamic, 512 KiB blocks,
 * the first 4 KiB written).  Returns 0 or -1. */
static int fz_setup(void)
{
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC,
				      .size = 1 << 20, .block_size = 512 << 10 };
	struct bdev_err e = { 0 };
	uint8_t pat[4096];
	struct bdev *b;

	snprintf(fz_dir, sizeof(fz_dir), "/dev/shm/fuzz-vhd-XXXXXX");
	if (!mkdtemp(fz_dir)) {
		snprintf(fz_dir, sizeof(fz_dir), "/tmp/fuzz-vhd-XXXXXX");
		if (!mkdtemp(fz_dir))
			return -1;
	}
	snprintf(fz_img, sizeof(fz_img), "%s/img.vhd", fz_dir);
	snprintf(fz_parent, sizeof(fz_parent), "%s/parent.vhd", fz_dir);
	if (vhd_create(fz_parent, &co, &e))
		goto fail;
	b = vhd_open(fz_parent, NULL, &e);
	if (!b)
		goto fail;
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(i * 7 + 1);
	if (bdev_write(b, pat, 0, sizeof(pat), 0) || bdev_flush(b)) {
		bdev_close(b);
		goto fail;
	}
	bdev_close(b);
	return 0;
fail:
	fprintf(stderr, "fuzz-vhd-open: setup: %s\n", e.msg);
	fz_cleanup();
	return -1;
}

static int fz_write_file(const uint8_t *data, size_t size)
{
	int fd = open(fz_img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r;

	if (fd < 0)
		return -1;
	r = util_pwrite_full(fd, data, size, 0);
	close(fd);
	return r ? -1 : 0;
}

/* Read [off, off+len) (clipped to the disk); the result is not judged. */
static void fz_read(struct bdev *b, uint64_t off, uint64_t len)
{
	static uint8_t buf[3 * 4096];

	if (off >= b->size)
		return;
	len = UTIL_MIN(UTIL_MIN(len, b->size - off), (uint64_t)sizeof(buf));
	(void)bdev_read(b, buf, off, (size_t)len);
}

static void fz_exercise(struct bdev *b)
{
	struct bdev_status st;
	uint64_t off = 0;
	struct vhd *v = vhd_of(b);

	if (v) {
		struct vhd_info info;

		(void)vhd_get_info(v, &info);
	}
	/* Walk the allocation, a bounded number of extents. */
	for (int i = 0; i < 64 && off < b->size; i++) {
		if (bdev_block_status(b, off, b->size - off, &st))
			break;
		if (st.length == 0 || st.length > b->size - off)
			FUZZ_FAIL("block status returned length %llu at %llu",
				  (unsigned long long)st.length,
				  (unsigned long long)off);
		off += st.length;
	}
	fz_read(b, 0, 8192);
	fz_read(b, 511, 1027);                     /* unaligned */
	if (b->size > 4096)
		fz_read(b, b->size - 4096, 4096);  /* the end */
	fz_read(b, b->size / 2 - (b->size / 2) % 512, 3 * 4096);
	if (v && vhd_parent(v))
		fz_read(vhd_parent(v), 0, 4096);
}

static void fz_report(void *opaque, bool repaired, const char *msg)
{
	(void)opaque;
	(void)repaired;
	(void)msg;
}

static int fz_check(unsigned flags)
{
	struct bdev_err e = { 0 };

	return vhd_check(fz_img, flags, fz_report, NULL, &e);
}

/* Write a pattern through a read-write open, read it back, reopen and
 * read again.  Returns true when the write went through. */
static bool fz_write_test(void)
{
	struct vhd_open_opts o = { .flags = VHD_O_IGNORE_PARENT_UUID };
	struct bdev_err e = { 0 };
	uint8_t pat[4096 + 512], got[sizeof(pat)];
	uint64_t off;
	struct bdev *b;
	bool ok = false;

	b = vhd_open(fz_img, &o, &e);
	if (!b)
		return false;
	if (b->size < sizeof(pat)) {
		bdev_close(b);
		return false;
	}
	/* A sector-unaligned range in the middle of the disk. */
	off = (b->size - sizeof(pat)) / 3 + 100;
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(i * 13 + 5);
	if (!bdev_write(b, pat, off, sizeof(pat), 0)) {
		if (bdev_read(b, got, off, sizeof(got)))
			FUZZ_FAIL("read after a successful write failed");
		if (memcmp(got, pat, sizeof(pat)))
			FUZZ_FAIL("data read back differs from the data written");
		ok = !bdev_flush(b);
	}
	bdev_close(b);
	if (!ok)
		return false;
	o.flags |= VHD_O_RDONLY;
	b = vhd_open(fz_img, &o, &e);
	if (!b)
		FUZZ_FAIL("image does not open after a successful write: %s", e.msg);
	if (bdev_read(b, got, off, sizeof(got)) || memcmp(got, pat, sizeof(pat)))
		FUZZ_FAIL("data written and flushed is not there after reopening");
	bdev_close(b);
	return true;
}

static void fz_one(const uint8_t *data, size_t size)
{
	static const unsigned ro_flags[] = {
		VHD_O_RDONLY,
		VHD_O_RDONLY | VHD_O_NO_PARENT,
		VHD_O_RDONLY | VHD_O_IGNORE_PARENT_UUID | VHD_O_SIZE_CHS,
	};
	int before, after;

	if (fz_write_file(data, size))
		return;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(ro_flags); i++) {
		struct vhd_open_opts o = { .flags = ro_flags[i] };
		struct bdev_err e = { 0 };
		struct bdev *b = vhd_open(fz_img, &o, &e);

		if (!b) {
			if (!e.code || !e.msg[0])
				FUZZ_FAIL("vhd_open failed without a reason");
			continue;
		}
		fz_exercise(b);
		bdev_close(b);
	}
	before = fz_check(0);
	if (fz_write_test() && before == 0 && (after = fz_check(0)) != 0)
		FUZZ_FAIL("check was clean before a write and finds %d problem(s) after",
			  after);

	if (fz_write_file(data, size))
		return;
	if (fz_check(VHD_CHECK_REPAIR) == 0) {
		struct vhd_open_opts o = { .flags = VHD_O_RDONLY | VHD_O_NO_PARENT };
		struct bdev_err e = { 0 };
		struct bdev *b = vhd_open(fz_img, &o, &e);

		if (!b)
			FUZZ_FAIL("check --repair left no problem but open fails: %s",
				  e.msg);
		fz_exercise(b);
		bdev_close(b);
		if ((after = fz_check(0)) != 0)
			FUZZ_FAIL("check --repair left no problem but check then finds %d",
				  after);
	}
}

#ifndef FUZZ_VHD_OPEN_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;

	if (!ready) {
		if (fz_setup())
			abort();
		atexit(fz_cleanup);
		ready = true;
	}
	fz_one(data, size);
	return 0;
}
#endif
