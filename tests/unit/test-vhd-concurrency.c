/* Concurrency: several threads write and read one dynamic image and one
 * differencing image at once, into the same blocks and the same sectors
 * (allocation races, partial-sector and partial-granule merges), and the
 * result must equal a serial model of the same writes.
 *
 * Byte ownership makes the model exact without fixing an order: byte b
 * belongs to thread (b / STRIPE) % NTHREADS, with an odd STRIPE so that
 * owners change inside sectors and granules.  Each thread writes only its
 * own bytes (random unaligned pieces of its stripes) and keeps the model of
 * them; it also reads its stripes back while the others write. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bdev.h"
#include "vhd/vhd.h"

#define NTHREADS 4
#define STRIPE 1000u           /* bytes; odd on purpose */
#define DISK (6u << 20)        /* spans several 512 KiB blocks */
#define OPS 5000
#define ROUNDS 3              /* reopen between rounds: metadata persisted */

struct worker {
	struct bdev *b;
	int id;
	uint8_t *model;         /* whole disk; only own bytes are touched */
	uint64_t seed;
	int failures;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t nstripes = DISK / STRIPE;
	uint8_t buf[STRIPE], got[STRIPE];

	for (int i = 0; i < OPS; i++) {
		/* One of my stripes, and a random piece of it. */
		uint64_t k = rnd(&w->seed) % (nstripes / NTHREADS);
		uint64_t stripe = k * NTHREADS + (uint64_t)w->id;
		uint32_t in = (uint32_t)(rnd(&w->seed) % STRIPE);
		uint32_t len = 1 + (uint32_t)(rnd(&w->seed) % (STRIPE - in));
		uint64_t off = stripe * STRIPE + in;

		if (rnd(&w->seed) % 3) {
			for (uint32_t j = 0; j < len; j++)
				buf[j] = (uint8_t)rnd(&w->seed);
			if (bdev_write(w->b, buf, off, len, 0)) {
				w->failures++;
				continue;
			}
			memcpy(w->model + off, buf, len);
		} else {
			if (bdev_read(w->b, got, off, len) ||
			    memcmp(got, w->model + off, len))
				w->failures++;
		}
		if (rnd(&w->seed) % 200 == 0 && bdev_flush(w->b))
			w->failures++;
	}
	return NULL;
}

/* Run the workers over b; model starts as the disk's current content. */
static void run_workers(struct bdev *b, uint8_t *model)
{
	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];

	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .b = b, .id = i, .model = model,
					.seed = 0x1234567ull * (uint64_t)(i + 1) };
		assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
}

static void expect_content(const char *path, const uint8_t *model)
{
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY };
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(path, &o, &e);
	uint8_t *got = malloc(DISK);

	assert_non_null(b);
	assert_non_null(got);
	assert_int_equal(bdev_read(b, got, 0, DISK), 0);
	assert_memory_equal(got, model, DISK);
	bdev_close(b);
	free(got);
}

static void noop_report(void *o, bool repaired, const char *msg)
{
	(void)o;
	(void)repaired;
	fprintf(stderr, "check: %s\n", msg);
}

static void expect_clean(const char *path)
{
	struct bdev_err e = { 0 };

	assert_int_equal(vhd_check(path, 0, noop_report, NULL, &e), 0);
}

static struct bdev *open_rw(const char *path)
{
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(path, NULL, &e);

	if (!b)
		fprintf(stderr, "%s\n", e.msg);
	assert_non_null(b);
	return b;
}

static char dir[] = "/tmp/test-vhd-conc-XXXXXX";

static void test_dynamic(void **state)
{
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = DISK,
				      .block_size = 512u << 10 };
	struct bdev_err e = { 0 };
	char path[256];
	uint8_t *model = calloc(1, DISK);
	struct bdev *b;

	(void)state;
	snprintf(path, sizeof(path), "%s/dyn.vhd", dir);
	assert_int_equal(vhd_create(path, &co, &e), 0);
	for (int round = 0; round < ROUNDS; round++) {
		b = open_rw(path);
		run_workers(b, model);
		bdev_close(b);
	}
	expect_content(path, model);
	expect_clean(path);
	free(model);
}

static void test_differencing(void **state)
{
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = DISK,
				      .block_size = 512u << 10 };
	struct vhd_create_opts cc = { .type = VHD_TYPE_DIFF };
	struct bdev_err e = { 0 };
	char base[256], child[256];
	uint8_t *model = malloc(DISK);
	struct bdev *b;

	(void)state;
	snprintf(base, sizeof(base), "%s/base.vhd", dir);
	snprintf(child, sizeof(child), "%s/child.vhd", dir);
	assert_int_equal(vhd_create(base, &co, &e), 0);
	/* Parent data in every other 256 KiB, so children read through it. */
	b = open_rw(base);
	memset(model, 0, DISK);
	for (uint64_t off = 0; off < DISK; off += 512u << 10)
		for (uint32_t i = 0; i < (256u << 10); i++)
			model[off + i] = (uint8_t)(i * 7 + off / 4096 + 1);
	assert_int_equal(bdev_write(b, model, 0, DISK, 0), 0);
	bdev_close(b);
	cc.parent = base;
	assert_int_equal(vhd_create(child, &cc, &e), 0);
	for (int round = 0; round < ROUNDS; round++) {
		b = open_rw(child);
		run_workers(b, model);
		bdev_close(b);
	}
	expect_content(child, model);
	expect_clean(child);
	free(model);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dynamic),
		cmocka_unit_test(test_differencing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
