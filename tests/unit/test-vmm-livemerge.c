/* Live merge (vmm-mini/merge.c) on real VHD files behind a switch layer,
 * with writer threads (writes and write-zeroes) running before, during and
 * after the merge: afterwards the switch serves the parent's writable
 * handle, the child's file is gone, and every 4 KiB block reads its last
 * write, through the switch and from the parent reopened alone (which
 * also checks clean).  Into a dynamic parent and into a differencing
 * parent (3-level chain).  Refusals leave the LUN on its chain with its
 * data: another child of the parent in the folder, a path that is not
 * the child's parent (checked by the UUIDs bdev_file_info reports, also
 * checked here).  tsan-test: the writers' threads set the merge's
 * marks while it copies (clean under ThreadSanitizer). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ut.h"

#include "common/bdev.h"
#include "vhd/vhd.h"
#include "vmm-mini/vmm-merge.h"
#include "vmm-mini/vmm.h"

#define DISK (24ull << 20)
#define GRAN 4096u
#define NBLK (DISK / GRAN)
#define WRITERS 3
#define AFTER 200		/* writes each writer makes after the merge */

struct fx {
	char dir[64];
	struct bdev *sw;
	/* model: version of each block's content (0 = zeros); writer t owns
	 * the blocks i with i % WRITERS == t */
	_Atomic uint32_t ver[NBLK];
	atomic_bool merged, stop;
	atomic_int errors;
	atomic_ulong during;	/* writes completed while the merge ran */
	char *parent_path, *child_path;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-vmm-livemerge.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->sw)
		bdev_close(f->sw);
	ut_rmtree(f->dir);
	free(f);
	return 0;
}

static void fill(uint8_t *b, uint64_t blk, uint32_t v)
{
	uint64_t *w = (uint64_t *)b;

	for (size_t i = 0; i < GRAN / 8; i++)
		w[i] = v ? ((blk << 32 | v) ^ (i * 0x9e3779b97f4a7c15ull)) : 0;
}

static int put(struct bdev *b, uint8_t *buf, uint64_t blk, uint32_t v)
{
	if (!v)
		return bdev_write_zeroes(b, blk * GRAN, GRAN, BDEV_MAY_UNMAP);
	fill(buf, blk, v);
	return bdev_write(b, buf, blk * GRAN, GRAN, 0);
}

static struct bdev *open_rw(const char *path)
{
	struct vhd_open_opts o = { .flags = VHD_O_DIRECT };
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(path, &o, &e);

	if (!b)
		fail_msg("%s", e.msg);
	return b;
}

static void create(const char *path, int type, const char *parent)
{
	struct vhd_create_opts co = { .type = type, .size = DISK, .parent = parent };
	struct bdev_err e = { 0 };

	if (vhd_create(path, &co, &e))
		fail_msg("%s", e.msg);
}

/* base.vhd (dynamic) with every 3rd block written; with mid, mid.vhd on
 * it with every 5th; then child.vhd behind the switch, every 7th block
 * written through it. */
static void build(struct fx *f, bool mid)
{
	uint8_t *buf = aligned_alloc(4096, GRAN);
	const char *names[] = { "base.vhd", "mid.vhd" };
	int levels = mid ? 2 : 1;
	struct bdev *b;

	assert_non_null(buf);
	for (int l = 0; l < levels; l++) {
		create(ut_path(f->dir, names[l]), l ? VHD_TYPE_DIFF : VHD_TYPE_DYNAMIC,
		       l ? ut_path(f->dir, names[l - 1]) : NULL);
		b = open_rw(ut_path(f->dir, names[l]));
		for (uint64_t i = 0; i < NBLK; i += l ? 5 : 3) {
			f->ver[i] = 1000 + (uint32_t)l;
			assert_int_equal(put(b, buf, i, f->ver[i]), 0);
		}
		assert_int_equal(bdev_close(b), 0);
	}
	f->parent_path = strdup(ut_path(f->dir, names[levels - 1]));
	f->child_path = strdup(ut_path(f->dir, "child.vhd"));
	create(f->child_path, VHD_TYPE_DIFF, f->parent_path);
	b = open_rw(f->child_path);
	f->sw = bdev_switch_open(b, &(struct bdev_err){ 0 });
	assert_non_null(f->sw);
	for (uint64_t i = 0; i < NBLK; i += 7) {
		f->ver[i] = 2000;
		assert_int_equal(put(f->sw, buf, i, f->ver[i]), 0);
	}
	free(buf);
}

static void verify(struct fx *f, struct bdev *b)
{
	uint8_t *got = aligned_alloc(4096, GRAN), *want = malloc(GRAN);
	unsigned bad = 0;

	assert_non_null(got);
	assert_non_null(want);
	for (uint64_t i = 0; i < NBLK; i++) {
		assert_int_equal(bdev_read(b, got, i * GRAN, GRAN), 0);
		fill(want, i, f->ver[i]);
		if (memcmp(got, want, GRAN) && bad++ < 5)
			print_error("block %llu: not version %u\n", (unsigned long long)i,
				    f->ver[i]);
	}
	free(got);
	free(want);
	assert_int_equal(bad, 0);
}

struct writer {
	struct fx *f;
	int t;
	pthread_t th;
};

static void *writer(void *arg)
{
	struct writer *w = arg;
	struct fx *f = w->f;
	uint8_t *buf = aligned_alloc(4096, GRAN);
	uint64_t x = 0x243f6a8885a308d3ull * (uint64_t)(w->t + 1);
	uint32_t v = 3000;
	int after = 0;

	while (buf && !atomic_load(&f->stop) && after < AFTER) {
		uint64_t blk;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		blk = (x % (NBLK / WRITERS)) * WRITERS + (uint64_t)w->t;
		v++;
		/* every 8th a write-zeroes: the model's version 0 */
		if (put(f->sw, buf, blk, v % 8 ? v : 0)) {
			atomic_fetch_add(&f->errors, 1);
			break;
		}
		f->ver[blk] = v % 8 ? v : 0;
		if (atomic_load(&f->merged))
			after++;
		else
			atomic_fetch_add(&f->during, 1);
	}
	free(buf);
	return NULL;
}

static void report(void *opaque, bool repaired, const char *msg)
{
	print_error("check: %s\n", msg);
}

static void run_merge(void **state, bool mid)
{
	struct fx *f = *state;
	struct writer w[WRITERS];
	struct vmm_merge_stats st = { 0 };
	struct vmm_stor_err e = { 0 };
	struct bdev *nb = NULL, *p;
	struct vhd_open_opts ro = { .flags = VHD_O_RDONLY };
	struct bdev_err be = { 0 };
	unsigned long before;
	int r, problems;

	build(f, mid);
	for (int t = 0; t < WRITERS; t++) {
		w[t] = (struct writer){ .f = f, .t = t };
		assert_int_equal(pthread_create(&w[t].th, NULL, writer, &w[t]), 0);
	}
	for (int i = 0; i < 30000 && atomic_load(&f->during) < 300 &&
			!atomic_load(&f->errors); i++)
		usleep(1000);
	before = atomic_load(&f->during);
	r = vmm_merge_live(f->sw, f->child_path, f->parent_path, &nb, &st, &e);
	atomic_store(&f->merged, true);
	if (r)
		atomic_store(&f->stop, true);
	for (int t = 0; t < WRITERS; t++)
		pthread_join(w[t].th, NULL);
	if (r)
		fail_msg("merge: %s", e.msg);
	print_message("merged %llu bytes in %d pass(es), %.3f s, held %llu us, %lu writes during\n",
		      (unsigned long long)st.bytes, st.passes, st.seconds,
		      (unsigned long long)st.held_us, atomic_load(&f->during) - before);
	assert_int_equal(atomic_load(&f->errors), 0);
	assert_non_null(nb);
	assert_ptr_equal(bdev_switch_lower(f->sw), nb);
	assert_true(access(f->child_path, F_OK) < 0 && errno == ENOENT);
	assert_true(st.passes >= 1);
	verify(f, f->sw);
	assert_int_equal(bdev_close(f->sw), 0);
	f->sw = NULL;
	p = vhd_open(f->parent_path, &ro, &be);
	if (!p)
		fail_msg("%s", be.msg);
	verify(f, p);
	bdev_close(p);
	problems = vhd_check(f->parent_path, 0, report, NULL, &be);
	assert_int_equal(problems, 0);
	free(f->parent_path);
	free(f->child_path);
}

static void test_into_dynamic(void **state)
{
	run_merge(state, false);
}

static void test_into_differencing(void **state)
{
	run_merge(state, true);
}

/* A refused merge changes nothing: the switch serves the chain, the child
 * is there, every block reads as before. */
static void refused(struct fx *f, const char *parent, int code)
{
	struct vmm_stor_err e = { 0 };
	struct bdev *nb = (struct bdev *)1, *chain = bdev_switch_lower(f->sw);

	assert_int_equal(vmm_merge_live(f->sw, f->child_path, parent, &nb, NULL, &e), -code);
	assert_int_equal(e.code, code);
	assert_true(e.msg[0]);
	assert_null(nb);
	assert_ptr_equal(bdev_switch_lower(f->sw), chain);
	assert_int_equal(access(f->child_path, F_OK), 0);
	verify(f, f->sw);
}

/* What the merge checks the parent by, seen through the block layer:
 * each differencing file names its parent's UUID (bdev_file_info's
 * backing_id), the id of the disk behind it; the dynamic base names
 * none. */
static void file_ids(struct fx *f)
{
	static const uint8_t zero[16];
	struct bdev_file_info c, m, b;

	assert_int_equal(bdev_file_info(f->sw, &c), 0);
	assert_string_equal(c.format, "vhd-differencing");
	assert_non_null(c.backing);
	assert_int_equal(bdev_file_info(c.backing, &m), 0);
	assert_string_equal(m.path, f->parent_path);
	assert_memory_equal(c.backing_id, m.id, 16);
	assert_memory_not_equal(m.id, zero, 16);
	assert_non_null(m.backing);
	assert_int_equal(bdev_file_info(m.backing, &b), 0);
	assert_string_equal(b.format, "vhd-dynamic");
	assert_memory_equal(m.backing_id, b.id, 16);
	assert_memory_not_equal(b.id, m.id, 16);
	assert_memory_equal(b.backing_id, zero, 16);
	assert_null(b.backing);
}

static void test_refusals(void **state)
{
	struct fx *f = *state;
	char *other;

	build(f, true);
	file_ids(f);
	/* base.vhd is not the child's parent (mid.vhd is) */
	refused(f, ut_path(f->dir, "base.vhd"), EINVAL);
	/* another child of the parent: the merge would change its data */
	other = strdup(ut_path(f->dir, "other.vhd"));
	create(other, VHD_TYPE_DIFF, f->parent_path);
	refused(f, f->parent_path, EBUSY);
	unlink(other);
	free(other);
	free(f->parent_path);
	free(f->child_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_into_dynamic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_into_differencing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
