/* bdev requests on in-memory disks (tests/unit/memdisk.c): hundreds of
 * requests in flight completing out of order, many-segment iovecs,
 * bouncing of misaligned requests (the disk counts any misaligned request
 * it receives), the read-modify-write gate, the write-zeroes fallback,
 * drain, and the synchronous calls on a disk that has only a native
 * submit.  Every data test compares the disk with a model copy.  (Errors:
 * test-bdev-error.c; layers: test-bdev-layer.c.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "memdisk.h"

#include "common/bdev.h"
#include "common/util.h"

#define DISK (4u << 20)
#define NREQ 512
#define SLOT (DISK / NREQ)         /* 8 KiB: one request's own range */

/* Prepare a request (memdisk.h), failing the test when out of memory. */
static void tr_prep(struct md_req *t, struct md_wait *w, enum bdev_op op,
		    uint64_t off, uint64_t len, int nseg, unsigned skew,
		    unsigned seed, uint8_t *model)
{
	assert_int_equal(md_req_prep(t, w, op, off, len, nseg, skew, seed,
				     model), 0);
}

static void assert_model(struct memdisk *m, const uint8_t *model)
{
	uint8_t *buf = aligned_alloc(4096, DISK);

	assert_non_null(buf);
	assert_int_equal(bdev_read(&m->b, buf, 0, DISK), 0);
	assert_memory_equal(buf, model, DISK);
	assert_memory_equal(m->data, model, DISK);
	free(buf);
	assert_int_equal(md_get(m, &m->bad_align), 0);
}

static uint8_t *new_model(int fill)
{
	uint8_t *model = malloc(DISK);

	assert_non_null(model);
	memset(model, fill, DISK);
	return model;
}

/* NREQ writes, then NREQ reads, all in flight at once: each request has
 * its own SLOT (a random sub-range), so the outcome does not depend on the
 * order the disk completes them in. */
static void many_in_flight(enum md_mode mode, uint32_t align)
{
	struct memdisk *m = md_open(mode, DISK, align, 0x11, 7);
	uint8_t *model = new_model(0x11);
	struct md_req *t = calloc(NREQ, sizeof(*t));
	struct md_wait w;
	unsigned seed = 99;

	assert_non_null(m);
	assert_non_null(t);
	for (int pass = 0; pass < 2; pass++) {
		enum bdev_op op = pass ? BDEV_OP_READ : BDEV_OP_WRITE;

		md_wait_init(&w);
		md_set_stall(m, true);
		for (int i = 0; i < NREQ; i++) {
			uint64_t a = align > 1 ? align : 1;
			uint64_t off = (uint64_t)rand_r(&seed) % (SLOT / 2) / a * a;
			uint64_t len = 1 + (uint64_t)rand_r(&seed) % (SLOT / 2);

			len = util_align_up(len, a);
			/* Aligned requests go to the disk as they are. */
			tr_prep(&t[i], &w, op, (uint64_t)i * SLOT + off, len,
				align > 1 ? 1 : 1 + i % 4, 0, (unsigned)i, model);
			bdev_submit(&m->b, &t[i].rq);
		}
		if (mode == MD_NATIVE)  /* all queued in the disk at once */
			assert_int_equal(md_queued(m), NREQ);
		md_set_stall(m, false);
		md_wait_for(&w, NREQ);
		for (int i = 0; i < NREQ; i++) {
			assert_int_equal(t[i].rq.status, 0);
			assert_int_equal(t[i].rq.ec, BDEV_EC_OK);
			if (op == BDEV_OP_READ)
				assert_memory_equal(md_req_data(&t[i]),
						    model + t[i].rq.off,
						    t[i].rq.len);
			free(t[i].mem);
		}
		md_wait_fini(&w);
	}
	assert_model(m, model);
	assert_int_equal(bdev_close(&m->b), 0);
	free(t);
	free(model);
}

static void test_many_native(void **state)
{
	many_in_flight(MD_NATIVE, 1);
	many_in_flight(MD_NATIVE, 4096);
}

static void test_many_workers(void **state)
{
	many_in_flight(MD_SYNC, 1);
	many_in_flight(MD_SYNC, 512);
}

/* 64 segments of odd sizes at odd buffer addresses, through bdev_submit
 * and bdev_writev/bdev_readv, on aligned and unaligned disks. */
static void iovecs(enum md_mode mode, uint32_t align)
{
	struct memdisk *m = md_open(mode, DISK, align, 0x22, 5);
	uint8_t *model = new_model(0x22);
	struct md_req t[8];
	struct md_wait w;

	assert_non_null(m);
	md_wait_init(&w);
	for (int i = 0; i < 8; i++) {
		tr_prep(&t[i], &w, BDEV_OP_WRITE, (uint64_t)i * 300000 + 7 * i,
			20000 + 4096 * (uint64_t)i, 64, i, 40 + i, model);
		bdev_submit(&m->b, &t[i].rq);
	}
	md_wait_for(&w, 8);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(t[i].rq.status, 0);
		free(t[i].mem);
	}
	/* The synchronous forms: 64 segments again. */
	for (int i = 0; i < 4; i++) {
		struct md_req s;

		tr_prep(&s, &w, BDEV_OP_WRITE, 3000000 + (uint64_t)i * 50001,
			40000, 64, 3, 80 + i, model);
		assert_int_equal(bdev_writev(&m->b, s.iov, s.rq.iovcnt, s.rq.off,
					     BDEV_FUA), 0);
		free(s.mem);
	}
	md_wait_fini(&w);
	md_wait_init(&w);
	for (int i = 0; i < 8; i++) {
		tr_prep(&t[i], &w, BDEV_OP_READ, (uint64_t)i * 299999 + 3,
			30000 + 1000 * (uint64_t)i, 64, i + 1, 0, NULL);
		bdev_submit(&m->b, &t[i].rq);
	}
	md_wait_for(&w, 8);
	for (int i = 0; i < 8; i++) {
		struct md_req s;

		assert_int_equal(t[i].rq.status, 0);
		assert_int_equal(t[i].rq.iovcnt, 64);
		assert_memory_equal(md_req_data(&t[i]), model + t[i].rq.off,
				    t[i].rq.len);
		tr_prep(&s, &w, BDEV_OP_READ, t[i].rq.off + 1, t[i].rq.len, 64,
			5, 0, NULL);
		assert_int_equal(bdev_readv(&m->b, s.iov, s.rq.iovcnt, s.rq.off), 0);
		assert_memory_equal(md_req_data(&s), model + s.rq.off, s.rq.len);
		free(s.mem);
		free(t[i].mem);
	}
	md_wait_fini(&w);
	assert_model(m, model);
	assert_int_equal(bdev_close(&m->b), 0);
	free(model);
}

static void test_iovec_segments(void **state)
{
	iovecs(MD_NATIVE, 1);
	iovecs(MD_NATIVE, 512);
	iovecs(MD_NATIVE, 4096);
	iovecs(MD_SYNC, 1);
	iovecs(MD_SYNC, 4096);
}

/* Misaligned writes sharing blocks with each other and aligned writes to
 * the blocks next to them, all in flight at once: without the gate a
 * read-modify-write would undo a neighbour's bytes.  Then misaligned
 * reads, write-zeroes and discards. */
static void bounce(enum md_mode mode, uint32_t align)
{
	struct memdisk *m = md_open(mode, DISK, align, 0x33, 11);
	uint8_t *model = new_model(0x33);
	enum { N = 192 };
	struct md_req *t = calloc(N, sizeof(*t));
	struct md_wait w;
	uint64_t a = align;

	assert_non_null(m);
	assert_non_null(t);
	for (int round = 0; round < 3; round++) {
		md_wait_init(&w);
		for (int i = 0; i < N; i++) {
			/* Blocks in threes: 3k+1 gets 3 misaligned pieces (one
			 * crossing into 3k+2), 3k gets an aligned write. */
			uint64_t base = (uint64_t)(i / 4) * 3 * a + (uint64_t)round * N * a;
			int k = i % 4;

			if (k == 3)
				tr_prep(&t[i], &w, BDEV_OP_WRITE, base, a, 1,
					round ? 0 : 1, 500 + i, model);
			else
				tr_prep(&t[i], &w, BDEV_OP_WRITE,
					base + a + 1 + (uint64_t)k * a / 3,
					k == 2 ? a : a / 3 - 1, 1 + k, k + 1,
					500 + i, model);
			bdev_submit(&m->b, &t[i].rq);
		}
		md_wait_for(&w, N);
		for (int i = 0; i < N; i++) {
			assert_int_equal(t[i].rq.status, 0);
			free(t[i].mem);
		}
		md_wait_fini(&w);
	}
	assert_model(m, model);

	/* Misaligned reads into misaligned buffers. */
	md_wait_init(&w);
	for (int i = 0; i < N; i++) {
		tr_prep(&t[i], &w, BDEV_OP_READ, (uint64_t)i * 20011 + 1,
			1 + (uint64_t)i * 97 % 9000, 1 + i % 3, i % 7, 0, NULL);
		bdev_submit(&m->b, &t[i].rq);
	}
	md_wait_for(&w, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(t[i].rq.status, 0);
		assert_memory_equal(md_req_data(&t[i]), model + t[i].rq.off, t[i].rq.len);
		free(t[i].mem);
	}
	md_wait_fini(&w);

	/* Write-zeroes and discards with misaligned edges (the disk promises
	 * zeros after unmap, so the edges are zeroed too), concurrent with
	 * misaligned writes next to them; and a few synchronous ones. */
	md_wait_init(&w);
	for (int i = 0; i < 64; i++) {
		uint64_t base = 2000000 + (uint64_t)i * 4 * a;

		if (i % 2)
			tr_prep(&t[i], &w, i % 4 == 1 ? BDEV_OP_DISCARD :
				BDEV_OP_WRITE_ZEROES, base + 3, 2 * a + 5, 1, 0,
				0, model);
		else
			tr_prep(&t[i], &w, BDEV_OP_WRITE, base - 2 * a + 9,
				a - 20, 2, 1, 900 + i, model);
		bdev_submit(&m->b, &t[i].rq);
	}
	md_wait_for(&w, 64);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(t[i].rq.status, 0);
		free(t[i].mem);
	}
	md_wait_fini(&w);
	assert_int_equal(bdev_write_zeroes(&m->b, 3333, 3, 0), 0);
	memset(model + 3333, 0, 3);
	assert_int_equal(bdev_discard(&m->b, 100000 + 1, 3 * a), 0);
	memset(model + 100001, 0, 3 * a);
	assert_model(m, model);

	/* A disk without zeros after unmap: only the whole blocks inside a
	 * misaligned discard go. */
	m->b.limits.unmap_zeroes = false;
	assert_int_equal(bdev_discard(&m->b, 8 * a + 1, 3 * a), 0);
	memset(model + 9 * a, 0, 2 * a);
	assert_int_equal(bdev_discard(&m->b, 20 * a + 1, a - 2), 0);
	assert_model(m, model);

	assert_int_equal(bdev_close(&m->b), 0);
	free(t);
	free(model);
}

static void test_bounce_native(void **state)
{
	bounce(MD_NATIVE, 4096);
	bounce(MD_NATIVE, 512);
}

static void test_bounce_sync(void **state)
{
	bounce(MD_SYNC, 4096);
	bounce(MD_SYNC, 512);
}

/* The fallback of write-zeroes (writing a zero buffer) must meet the
 * disk's alignment too. */
static void test_write_zeroes_fallback(void **state)
{
	struct memdisk *m = md_open(MD_SYNC_NOWZ, DISK, 4096, 0x44, 1);
	uint8_t *model = new_model(0x44);

	assert_non_null(m);
	assert_int_equal(bdev_write_zeroes(&m->b, 8192, 3 << 20, 0), 0);
	memset(model + 8192, 0, 3 << 20);
	assert_int_equal(bdev_write_zeroes(&m->b, 5, 10000, 0), 0);
	memset(model + 5, 0, 10000);
	assert_int_equal(bdev_write_zeroes(&m->b, 0, 4096, BDEV_NO_FALLBACK),
			 -ENOTSUP);
	assert_model(m, model);
	assert_int_equal(bdev_close(&m->b), 0);
	free(model);
}

/* ---- drain ---- */

struct drain_ctx {
	struct memdisk *m;
	struct md_req *t;
	int n;
	int chained;           /* done() of the first n submits one more */
	int done;              /* done() calls finished (atomic) */
	int seen_by_drain;
	int drained;           /* atomic */
};

static void drain_done(struct bdev_req *rq)
{
	struct md_req *t = rq->opaque;
	struct drain_ctx *c = t->ctx;
	long i = t - c->t;

	if (i < c->n && c->chained) {
		/* Submit a follow-up from done(): drain must wait for it. */
		struct md_req *u = &c->t[c->n + i];

		u->rq = (struct bdev_req){ .op = BDEV_OP_READ, .off = rq->off,
			.len = rq->len, .iov = u->iov, .iovcnt = 1,
			.done = drain_done, .opaque = u };
		u->iov[0] = t->iov[0];
		u->ctx = c;
		bdev_submit(&c->m->b, &u->rq);
	}
	sched_yield();
	__atomic_add_fetch(&c->done, 1, __ATOMIC_SEQ_CST);
}

static void *drain_thread(void *arg)
{
	struct drain_ctx *c = arg;

	bdev_drain(&c->m->b);
	c->seen_by_drain = __atomic_load_n(&c->done, __ATOMIC_SEQ_CST);
	__atomic_store_n(&c->drained, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void drain(enum md_mode mode)
{
	struct drain_ctx c = { .n = 300, .chained = 1 };
	uint8_t *buf = malloc(DISK);
	pthread_t th;

	c.m = md_open(mode, DISK, 1, 0x55, 3);
	c.t = calloc(2 * (size_t)c.n, sizeof(*c.t));
	assert_non_null(c.m);
	assert_non_null(buf);
	md_set_stall(c.m, true);
	for (int i = 0; i < c.n; i++) {
		struct md_req *t = &c.t[i];

		t->iov[0] = (struct iovec){ buf + i * 4096, 4096 };
		t->ctx = &c;
		t->rq = (struct bdev_req){ .op = i % 2 ? BDEV_OP_READ : BDEV_OP_WRITE,
			.off = (uint64_t)i * 4096, .len = 4096, .iov = t->iov,
			.iovcnt = 1, .done = drain_done, .opaque = t };
		bdev_submit(&c.m->b, &t->rq);
	}
	assert_int_equal(pthread_create(&th, NULL, drain_thread, &c), 0);
	if (mode == MD_NATIVE) {
		/* Nothing can complete while the disk stalls. */
		usleep(20000);
		assert_int_equal(__atomic_load_n(&c.drained, __ATOMIC_SEQ_CST), 0);
		assert_int_equal(__atomic_load_n(&c.done, __ATOMIC_SEQ_CST), 0);
	}
	md_set_stall(c.m, false);
	pthread_join(th, NULL);
	assert_int_equal(c.seen_by_drain, 2 * c.n);
	bdev_drain(&c.m->b);   /* nothing in flight: returns at once */
	assert_int_equal(bdev_close(&c.m->b), 0);
	free(c.t);
	free(buf);
}

static void test_drain(void **state)
{
	drain(MD_NATIVE);
	drain(MD_SYNC);
}

/* drain then close (which frees the disk) while the last completion may
 * still be on its way out of the block layer: under ASan a use after free
 * shows here. */
static void count_done(struct bdev_req *rq)
{
	__atomic_add_fetch((int *)rq->opaque, 1, __ATOMIC_SEQ_CST);
}

static void test_drain_then_close(void **state)
{
	uint8_t buf[512];

	for (int i = 0; i < 300; i++) {
		struct memdisk *m = md_open(i % 2 ? MD_NATIVE : MD_SYNC, 65536, 1,
					    0, (unsigned)i);
		struct iovec v = { buf, sizeof(buf) };
		struct bdev_req rq = { .op = BDEV_OP_READ, .len = sizeof(buf),
				       .iov = &v, .iovcnt = 1, .done = count_done };
		int n = 0;

		assert_non_null(m);
		rq.opaque = &n;
		bdev_submit(&m->b, &rq);
		bdev_drain(&m->b);
		assert_int_equal(n, 1);
		assert_int_equal(rq.status, 0);
		assert_int_equal(bdev_close(&m->b), 0);
	}
}

/* ---- synchronous calls on a native-only disk ---- */

static void test_sync_on_native(void **state)
{
	struct memdisk *m = md_open(MD_NATIVE, DISK, 4096, 0x77, 17);
	uint8_t *model = new_model(0x77);
	uint8_t *buf = aligned_alloc(4096, 1 << 20);
	struct md_req s;
	struct md_wait w;
	int got;

	assert_non_null(m);
	assert_non_null(buf);
	md_wait_init(&w);
	for (int i = 0; i < 6; i++) {
		uint64_t off = (uint64_t)i * 300000 + (i % 2 ? 0 : 4096 * 3 + i);
		uint64_t len = i % 3 ? 8192 * (uint64_t)i : 1234;

		tr_prep(&s, &w, BDEV_OP_WRITE, off, len, 1, i % 2, 300 + i, model);
		assert_int_equal(bdev_write(&m->b, md_req_data(&s), off, len, 0), 0);
		free(s.mem);
		tr_prep(&s, &w, BDEV_OP_WRITE, off + 100000, len, 64, 1, 400 + i, model);
		assert_int_equal(bdev_writev(&m->b, s.iov, s.rq.iovcnt, off + 100000, 0), 0);
		free(s.mem);
	}
	assert_int_equal(bdev_read(&m->b, buf, 4096, 65536), 0);
	assert_memory_equal(buf, model + 4096, 65536);
	assert_int_equal(bdev_read(&m->b, buf + 3, 12345, 54321), 0);
	assert_memory_equal(buf + 3, model + 12345, 54321);
	tr_prep(&s, &w, BDEV_OP_READ, 299999, 70000, 64, 3, 0, NULL);
	assert_int_equal(bdev_readv(&m->b, s.iov, s.rq.iovcnt, 299999), 0);
	assert_memory_equal(md_req_data(&s), model + 299999, 70000);
	free(s.mem);
	got = md_get(m, &m->received);
	assert_true(got > 0);      /* served through the native submit */

	/* Flush, write-zeroes and discard reach the disk too. */
	assert_int_equal(bdev_flush(&m->b), 0);
	assert_int_equal(md_get(m, &m->flushes), 1);
	assert_int_equal(bdev_write_zeroes(&m->b, 8192, 16384, 0), 0);
	memset(model + 8192, 0, 16384);
	assert_int_equal(bdev_write_zeroes(&m->b, 1000001, 9999, 0), 0);
	memset(model + 1000001, 0, 9999);
	assert_int_equal(bdev_discard(&m->b, 2000000 + 4096, 8192), 0);
	memset(model + 2000000 + 4096, 0, 8192);
	assert_model(m, model);

	/* A disk that declines discards in submit: the worker serves them
	 * (nothing left to serve them with: a no-op, not an error). */
	m->decline_ops = 1u << BDEV_OP_DISCARD;
	assert_int_equal(bdev_discard(&m->b, 0, 4096), 0);
	md_wait_fini(&w);
	assert_int_equal(bdev_close(&m->b), 0);
	free(buf);
	free(model);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_native),
		cmocka_unit_test(test_many_workers),
		cmocka_unit_test(test_iovec_segments),
		cmocka_unit_test(test_bounce_native),
		cmocka_unit_test(test_bounce_sync),
		cmocka_unit_test(test_write_zeroes_fallback),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_drain_then_close),
		cmocka_unit_test(test_sync_on_native),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
