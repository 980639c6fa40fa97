/* bdev errors on in-memory disks (tests/unit/memdisk.c): requests past
 * the end, to a read-only disk, or malformed are refused at once with
 * their class; injected back-end errors (EIO, ENOSPC, ENODEV, ENOTSUP,
 * EROFS) complete with their class while the requests around them
 * succeed; two threads failing at once each read their own message; close
 * reports a failed flush and still closes.  Both back-end kinds: a native
 * submit, and synchronous ops served by the worker pool. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memdisk.h"

#include "common/bdev.h"

#define DISK (4u << 20)

static void tr_prep(struct md_req *t, struct md_wait *w, enum bdev_op op,
		    uint64_t off, uint64_t len, int nseg, unsigned skew,
		    unsigned seed, uint8_t *model)
{
	assert_int_equal(md_req_prep(t, w, op, off, len, nseg, skew, seed,
				     model), 0);
}

static uint8_t *new_model(int fill)
{
	uint8_t *model = malloc(DISK);

	assert_non_null(model);
	memset(model, fill, DISK);
	return model;
}

/* The disk (read through the block layer, and its bytes) equals model. */
static void assert_model(struct memdisk *m, const uint8_t *model)
{
	uint8_t *buf = malloc(DISK);

	assert_non_null(buf);
	assert_int_equal(bdev_read(&m->b, buf, 0, DISK), 0);
	assert_memory_equal(buf, model, DISK);
	assert_memory_equal(m->data, model, DISK);
	free(buf);
}

static void errors(enum md_mode mode)
{
	static const struct { int err; enum bdev_ec ec; } inj[] = {
		{ -EIO, BDEV_EC_MEDIUM }, { -ENOSPC, BDEV_EC_NO_SPACE },
		{ -ENODEV, BDEV_EC_GONE }, { -ENOTSUP, BDEV_EC_UNSUPPORTED },
		{ -EROFS, BDEV_EC_READ_ONLY },
	};
	enum { NI = 5, NGOOD = 200 };
	struct memdisk *m = md_open(mode, DISK, 1, 0x66, 13);
	uint8_t *model = new_model(0x66);
	struct md_req *t = calloc(NGOOD + 16, sizeof(*t));
	struct md_wait w;
	int k = 0;

	assert_non_null(m);
	assert_non_null(t);
	for (int i = 0; i < NI; i++)
		md_fault(m, 3000000 + (uint64_t)i * 10000 + 77, inj[i].err, MD_ALL);
	md_wait_init(&w);
	md_set_stall(m, true);
	/* Good requests around the bad ones. */
	for (int i = 0; i < NGOOD; i++, k++) {
		tr_prep(&t[k], &w, i % 2 ? BDEV_OP_READ : BDEV_OP_WRITE,
			(uint64_t)i * 10000 + 1, 5000, 2, 1, (unsigned)i,
			i % 2 ? NULL : model);
		bdev_submit(&m->b, &t[k].rq);
	}
	for (int i = 0; i < NI; i++, k++) {
		/* Writes fail and leave the model alone: no model. */
		tr_prep(&t[k], &w, i % 2 ? BDEV_OP_READ : BDEV_OP_WRITE,
			3000000 + (uint64_t)i * 10000, 100, 1, 0, 1, NULL);
		bdev_submit(&m->b, &t[k].rq);
	}
	/* Refused by the block layer, at once. */
	tr_prep(&t[k++], &w, BDEV_OP_READ, DISK - 10, 11, 1, 0, 0, NULL);
	tr_prep(&t[k++], &w, BDEV_OP_WRITE, DISK + 512, 512, 1, 0, 0, NULL);
	tr_prep(&t[k++], &w, BDEV_OP_WRITE_ZEROES, UINT64_MAX - 10, 20, 1, 0, 0, NULL);
	tr_prep(&t[k], &w, BDEV_OP_WRITE, 0, 1000, 2, 0, 0, NULL);
	t[k++].rq.len = 999;                      /* iovec total != len */
	tr_prep(&t[k], &w, BDEV_OP_READ, 0, 1000, 1, 0, 0, NULL);
	t[k].rq.op = (enum bdev_op)42;
	t[k++].rq.iovcnt = 1;
	for (int i = NGOOD + NI; i < k; i++)
		bdev_submit(&m->b, &t[i].rq);
	md_wait_for(&w, k - NGOOD - NI);          /* no disk needed */
	md_set_stall(m, false);
	md_wait_for(&w, k);

	for (int i = 0; i < NGOOD; i++) {
		assert_int_equal(t[i].rq.status, 0);
		if (t[i].rq.op == BDEV_OP_READ)
			assert_memory_equal(md_req_data(&t[i]), model + t[i].rq.off, 5000);
	}

	for (int i = 0; i < NI; i++) {
		assert_int_equal(t[NGOOD + i].rq.status, inj[i].err);
		assert_int_equal(t[NGOOD + i].rq.ec, inj[i].ec);
	}
	for (int i = NGOOD + NI; i < NGOOD + NI + 3; i++) {
		assert_int_equal(t[i].rq.status, -EINVAL);
		assert_int_equal(t[i].rq.ec, BDEV_EC_RANGE);
	}
	for (int i = NGOOD + NI + 3; i < k; i++) {
		assert_int_equal(t[i].rq.status, -EINVAL);
		assert_int_equal(t[i].rq.ec, BDEV_EC_INVALID);
	}

	/* The synchronous calls: status and message. */
	{
		uint8_t b[100];

		assert_int_equal(bdev_read(&m->b, b, 3000000 + 2 * 10000, 100), -ENODEV);
		assert_non_null(strstr(bdev_last_error(), m->b.name));
		assert_int_equal(bdev_read(&m->b, b, DISK - 1, 2), -EINVAL);
		assert_non_null(strstr(bdev_last_error(), "past the end"));
		assert_int_equal(bdev_errclass(-ENOSPC), BDEV_EC_NO_SPACE);
		assert_string_equal(bdev_errclass_name(BDEV_EC_GONE), "device gone");
	}
	md_clear_faults(m);
	assert_model(m, model);

	/* Read-only: writes refused with READ_ONLY, reads and flush fine. */
	m->b.read_only = true;
	md_wait_init(&w);
	for (int i = 0; i < 4; i++) {
		enum bdev_op op[] = { BDEV_OP_WRITE, BDEV_OP_WRITE_ZEROES,
				      BDEV_OP_DISCARD, BDEV_OP_FLUSH };

		free(t[i].mem);
		tr_prep(&t[i], &w, op[i], 4096, 4096, 1, 0, 0, NULL);
		bdev_submit(&m->b, &t[i].rq);
	}
	md_wait_for(&w, 4);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(t[i].rq.status, -EROFS);
		assert_int_equal(t[i].rq.ec, BDEV_EC_READ_ONLY);
	}
	assert_int_equal(t[3].rq.status, 0);
	assert_int_equal(bdev_write(&m->b, model, 0, 512, 0), -EROFS);
	assert_non_null(strstr(bdev_last_error(), "read-only"));
	m->b.read_only = false;

	md_wait_fini(&w);
	for (int i = 0; i < k; i++)
		free(t[i].mem);
	assert_int_equal(bdev_close(&m->b), 0);
	free(t);
	free(model);
}

static void test_error_classes(void **state)
{
	errors(MD_NATIVE);
	errors(MD_SYNC);
}

/* Two threads fail different requests at the same time; each reads its
 * own message. */
struct tl_ctx {
	struct memdisk *m;
	pthread_barrier_t *bar;
	uint64_t off;
	int err;
	int wrong;
};

static void *tl_thread(void *arg)
{
	struct tl_ctx *c = arg;
	char want[32], buf[600];
	uint8_t b[64];

	snprintf(want, sizeof(want), "offset %llu ", (unsigned long long)c->off);
	for (int i = 0; i < 200; i++) {
		pthread_barrier_wait(c->bar);
		if (bdev_read(&c->m->b, b, c->off, sizeof(b)) != c->err)
			c->wrong++;
		pthread_barrier_wait(c->bar);   /* both failed: read messages */
		if (!strstr(bdev_last_error(), want) ||
		    !strstr(bdev_last_error(), strerror(-c->err)) ||
		    !strstr(bdev_errmsg(&c->m->b, buf, sizeof(buf)), want))
			c->wrong++;
	}
	return NULL;
}

static void test_thread_local_errors(void **state)
{
	for (int mode = MD_NATIVE; mode <= MD_SYNC; mode++) {
		struct memdisk *m = md_open(mode, DISK, 1, 0, 1);
		pthread_barrier_t bar;
		struct tl_ctx c[2] = {
			{ m, &bar, 12345, -EIO, 0 },
			{ m, &bar, 777777, -ENOSPC, 0 },
		};
		pthread_t th[2];

		assert_non_null(m);
		md_fault(m, c[0].off, c[0].err, MD_RW);
		md_fault(m, c[1].off, c[1].err, MD_RW);
		pthread_barrier_init(&bar, NULL, 2);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&th[i], NULL, tl_thread, &c[i]), 0);
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		assert_int_equal(c[0].wrong, 0);
		assert_int_equal(c[1].wrong, 0);
		pthread_barrier_destroy(&bar);
		assert_int_equal(bdev_close(&m->b), 0);
	}
}

static void test_close_flush_error(void **state)
{
	for (int mode = MD_NATIVE; mode <= MD_SYNC; mode++) {
		struct memdisk *m = md_open(mode, DISK, 1, 0, 1);
		uint8_t b[512] = { 1 };
		int closed = 0;

		assert_non_null(m);
		m->closed = &closed;
		assert_int_equal(bdev_write(&m->b, b, 0, sizeof(b), 0), 0);
		m->flush_err = -EIO;
		assert_int_equal(bdev_close(&m->b), -EIO);
		assert_int_equal(closed, 1);   /* closed and freed anyway */
		assert_non_null(strstr(bdev_last_error(), "flush"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_classes),
		cmocka_unit_test(test_thread_local_errors),
		cmocka_unit_test(test_close_flush_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
