/* bdev layers over in-memory disks (tests/unit/memdisk.c): two observe
 * layers stacked both see every completed write, write-zeroes and discard
 * with its range (requests and synchronous calls), never reads or failed
 * writes; the switch layer holds requests while it swaps, flushes the old
 * disk first, lands every request on the disk that was current, and
 * refuses a disk of another size. */
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
#define BLK 4096u
#define NBLK (DISK / BLK)

/* ---- observers ---- */

struct ev {
	uint64_t off, len;
};

struct obs {
	pthread_mutex_t mu;
	struct ev ev[1024];
	int n;
};

static void obs_fn(void *opaque, uint64_t off, uint64_t len)
{
	struct obs *o = opaque;

	pthread_mutex_lock(&o->mu);
	if (o->n < (int)UTIL_ARRAY_SIZE(o->ev))
		o->ev[o->n] = (struct ev){ off, len };
	o->n++;
	pthread_mutex_unlock(&o->mu);
}

static int ev_cmp(const void *a, const void *b)
{
	const struct ev *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* o saw exactly the events in want (any order); then forget them. */
static void assert_events(struct obs *o, struct ev *want, int n)
{
	pthread_mutex_lock(&o->mu);
	assert_int_equal(o->n, n);
	qsort(o->ev, (size_t)n, sizeof(*want), ev_cmp);
	qsort(want, (size_t)n, sizeof(*want), ev_cmp);
	for (int i = 0; i < n; i++) {
		assert_int_equal(o->ev[i].off, want[i].off);
		assert_int_equal(o->ev[i].len, want[i].len);
	}
	o->n = 0;
	pthread_mutex_unlock(&o->mu);
}

struct req {
	struct bdev_req rq;
	struct iovec iov[3];
	uint8_t *buf;
	struct md_wait *w;
};

static void req_done(struct bdev_req *rq)
{
	md_wait_add(((struct req *)rq->opaque)->w);
}

static void test_two_observers(void **state)
{
	enum { N = 240 };
	struct memdisk *m = md_open(MD_NATIVE, DISK, 512, 0x10, 21);
	struct obs o1 = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct obs o2 = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct bdev_err e = { 0 };
	struct bdev *l1, *l2;
	uint8_t *model = malloc(DISK), *buf = malloc(DISK);
	struct req *r = calloc(N, sizeof(*r));
	struct ev want[N];
	struct md_wait w;
	int nw = 0, closed = 0;

	assert_non_null(m);
	assert_non_null(model);
	assert_non_null(buf);
	assert_non_null(r);
	m->closed = &closed;
	memset(model, 0x10, DISK);
	l1 = bdev_observe_open(&m->b, true, obs_fn, &o1, &e);
	assert_non_null(l1);
	l2 = bdev_observe_open(l1, true, obs_fn, &o2, &e);
	assert_non_null(l2);
	assert_int_equal(l2->size, DISK);
	md_fault(m, 16 * 8192 + 600, -EIO, MD_ALL);   /* slot 16 fails */

	/* Requests: slot i (8 KiB) gets one write, write-zeroes, discard
	 * or read, with misaligned edges now and then. */
	md_wait_init(&w);
	for (int i = 0; i < N; i++) {
		struct req *q = &r[i];
		uint64_t off = (uint64_t)i * 8192 + (i % 3 ? 512 : 7);
		uint64_t len = i % 5 ? 4096 : 3000 + (uint64_t)i;
		enum bdev_op op = i % 7 == 3 ? BDEV_OP_READ :
				  i % 7 == 5 ? BDEV_OP_WRITE_ZEROES :
				  i % 7 == 6 ? BDEV_OP_DISCARD : BDEV_OP_WRITE;

		q->w = &w;
		q->buf = malloc(len);
		assert_non_null(q->buf);
		q->rq = (struct bdev_req){ .op = op, .off = off, .len = len,
			.done = req_done, .opaque = q };
		if (op == BDEV_OP_READ || op == BDEV_OP_WRITE) {
			q->iov[0] = (struct iovec){ q->buf, 1000 };
			q->iov[1] = (struct iovec){ q->buf + 1000, len - 1000 };
			q->rq.iov = q->iov;
			q->rq.iovcnt = 2;
		}
		for (uint64_t k = 0; k < len; k++) {
			q->buf[k] = md_pat((unsigned)i, off + k);
			if (op != BDEV_OP_READ && i != 16)
				model[off + k] = op == BDEV_OP_WRITE ? q->buf[k] : 0;
		}
		if (op != BDEV_OP_READ && i != 16)
			want[nw++] = (struct ev){ off, len };
		bdev_submit(l2, &q->rq);
	}
	md_wait_for(&w, N);
	for (int i = 0; i < N; i++) {
		if (i == 16) {
			assert_int_equal(r[i].rq.status, -EIO);
			assert_int_equal(r[i].rq.ec, BDEV_EC_MEDIUM);
		} else {
			assert_int_equal(r[i].rq.status, 0);
		}
		if (r[i].rq.op == BDEV_OP_READ)   /* reads pass through */
			assert_memory_equal(r[i].buf, model + r[i].rq.off,
					    r[i].rq.len);
		free(r[i].buf);
	}
	md_wait_fini(&w);
	assert_events(&o1, want, nw);
	assert_events(&o2, want, nw);
	md_clear_faults(m);
	assert_int_equal(bdev_read(l2, buf, 0, DISK), 0);
	assert_memory_equal(buf, model, DISK);
	assert_memory_equal(m->data, model, DISK);
	assert_int_equal(o1.n + o2.n, 0);   /* reads are not seen */

	/* Synchronous calls through both layers. */
	memset(buf, 0x5a, 20000);
	assert_int_equal(bdev_write(l2, buf, 1234567, 20000, 0), 0);
	want[0] = (struct ev){ 1234567, 20000 };
	assert_events(&o1, want, 1);
	want[0] = (struct ev){ 1234567, 20000 };
	assert_events(&o2, want, 1);
	assert_int_equal(bdev_write_zeroes(l2, 1234567 + 100, 300, 0), 0);
	assert_int_equal(bdev_discard(l2, 2u << 20, 65536), 0);
	for (int k = 0; k < 2; k++) {
		struct obs *o = k ? &o2 : &o1;

		want[0] = (struct ev){ 1234567 + 100, 300 };
		want[1] = (struct ev){ 2u << 20, 65536 };
		assert_events(o, want, 2);
	}
	memset(model + 1234567, 0x5a, 20000);
	memset(model + 1234567 + 100, 0, 300);
	memset(model + (2u << 20), 0, 65536);
	assert_int_equal(bdev_read(l2, buf, 0, DISK), 0);
	assert_memory_equal(buf, model, DISK);
	/* A failed synchronous write is not seen. */
	md_fault(m, 3000000, -ENOSPC, MD_ALL);
	assert_int_equal(bdev_write(l2, buf, 3000000 - 10, 100, 0), -ENOSPC);
	assert_int_equal(o1.n + o2.n, 0);
	assert_int_equal(bdev_flush(l2), 0);
	assert_true(md_get(m, &m->flushes) >= 1);
	assert_int_equal(md_get(m, &m->bad_align), 0);

	assert_int_equal(bdev_close(l2), 0);   /* closes l1 and the disk */
	assert_int_equal(closed, 1);
	free(r);
	free(buf);
	free(model);
}

/* ---- switch ---- */

struct swreq {
	struct bdev_req rq;
	struct iovec iov;
	uint8_t buf[BLK];
	struct md_wait *w;
	int submitted_after_swap;   /* the swap had returned */
	int done_before_swap;       /* done() ran before the swap began */
};

static int swap_began, swap_ended;

static void sw_done(struct bdev_req *rq)
{
	struct swreq *s = rq->opaque;

	s->done_before_swap = !__atomic_load_n(&swap_began, __ATOMIC_SEQ_CST);
	md_wait_add(s->w);
}

static void sw_prep(struct swreq *s, struct md_wait *w, uint64_t blk)
{
	for (unsigned k = 0; k < BLK; k++)
		s->buf[k] = md_pat((unsigned)blk, blk * BLK + k);
	s->iov = (struct iovec){ s->buf, BLK };
	s->w = w;
	s->rq = (struct bdev_req){ .op = BDEV_OP_WRITE, .off = blk * BLK,
		.len = BLK, .iov = &s->iov, .iovcnt = 1, .done = sw_done,
		.opaque = s };
	s->submitted_after_swap = __atomic_load_n(&swap_ended, __ATOMIC_SEQ_CST);
}

/* Block blk was written once, on the disk with id want_id, and the
 * other disk still has its fill there. */
static void assert_landed(struct memdisk *a, struct memdisk *b,
			  const uint8_t *written_by, uint64_t blk,
			  const struct swreq *s)
{
	struct memdisk *on = written_by[blk] == a->id ? a : b;
	struct memdisk *off = on == a ? b : a;

	assert_int_equal(s->rq.status, 0);
	assert_true(written_by[blk] == a->id || written_by[blk] == b->id);
	assert_memory_equal(on->data + blk * BLK, s->buf, BLK);
	for (unsigned k = 0; k < BLK; k++)
		assert_int_equal(off->data[blk * BLK + k], off == a ? 0xaa : 0xbb);
	if (s->submitted_after_swap)
		assert_int_equal(written_by[blk], b->id);
	if (s->done_before_swap)
		assert_int_equal(written_by[blk], a->id);
}

struct swap_arg {
	struct bdev *sw, *to, *old;
	int r;
};

static void *swap_thread(void *arg)
{
	struct swap_arg *a = arg;

	__atomic_store_n(&swap_began, 1, __ATOMIC_SEQ_CST);
	a->r = bdev_switch_swap(a->sw, a->to, &a->old);
	__atomic_store_n(&swap_ended, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Deterministic: requests in flight on the old disk, then requests that
 * arrive while the swap waits for them (held), then release. */
static void test_switch_holds(void **state)
{
	enum { NA = 100, NP = 200, NH = 100 };
	uint8_t *wb = calloc(NBLK, 1);
	struct memdisk *a = md_open(MD_NATIVE, DISK, 1, 0xaa, 1);
	struct memdisk *b = md_open(MD_NATIVE, DISK, 4096, 0xbb, 2);
	struct swreq *s = calloc(NA + NP + NH, sizeof(*s));
	struct swap_arg sa = { 0 };
	struct bdev_err e = { 0 };
	struct md_wait w;
	pthread_t th;
	int np, held_probe = -1, n;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(s);
	swap_began = swap_ended = 0;
	a->written_by = b->written_by = wb;
	sa.sw = bdev_switch_open(&a->b, &e);
	sa.to = &b->b;
	assert_non_null(sa.sw);
	md_wait_init(&w);
	md_set_stall(a, true);
	for (int i = 0; i < NA; i++) {
		sw_prep(&s[i], &w, (uint64_t)i);
		bdev_submit(sa.sw, &s[i].rq);
	}
	assert_int_equal(md_queued(a), NA);
	assert_int_equal(pthread_create(&th, NULL, swap_thread, &sa), 0);
	/* Probe until a request no longer reaches a: the switch holds. */
	for (np = 0; np < NP && held_probe < 0; np++) {
		int before = md_get(a, &a->received);

		sw_prep(&s[NA + np], &w, (uint64_t)(NA + np));
		bdev_submit(sa.sw, &s[NA + np].rq);
		if (md_get(a, &a->received) == before)
			held_probe = NA + np;
		else
			usleep(1000);
	}
	assert_true(held_probe >= 0);
	for (int i = 0; i < NH; i++) {
		sw_prep(&s[NA + NP + i], &w, (uint64_t)(NA + NP + i));
		bdev_submit(sa.sw, &s[NA + NP + i].rq);
	}
	assert_int_equal(md_wait_count(&w), 0);     /* a stalls, rest held */
	assert_int_equal(md_get(b, &b->received), 0);
	n = NA + np + NH;
	md_set_stall(a, false);
	pthread_join(th, NULL);
	assert_int_equal(sa.r, 0);
	assert_ptr_equal(sa.old, &a->b);
	assert_ptr_equal(bdev_switch_lower(sa.sw), &b->b);
	md_wait_for(&w, n);
	bdev_drain(sa.sw);
	for (int i = 0; i < NA + NP + NH; i++) {
		if (i >= NA + np && i < NA + NP)
			continue;   /* probes not sent */
		assert_landed(a, b, wb, (uint64_t)i, &s[i]);
		if (i < held_probe)
			assert_int_equal(wb[i], a->id);
		else   /* held, then sent to the new disk */
			assert_int_equal(wb[i], b->id);
	}
	/* The old disk was flushed before the new one saw a write. */
	assert_int_equal(md_get(a, &a->flushes), 1);
	assert_true(a->flush_seq < b->first_write_seq);
	assert_int_equal(a->bad_align + b->bad_align, 0);
	md_wait_fini(&w);
	assert_int_equal(bdev_close(sa.old), 0);
	assert_int_equal(bdev_close(sa.sw), 0);
	free(s);
	free(wb);
}

/* Threads submit writes while the disk is swapped under them. */
struct sub_arg {
	struct bdev *sw;
	struct swreq *s;
	uint64_t first;
	int n;
	struct md_wait w;
	int *total;
};

static void *submitter(void *arg)
{
	struct sub_arg *a = arg;

	for (int i = 0; i < a->n; i++) {
		md_wait_for(&a->w, i - 16);    /* at most 16 in flight */
		sw_prep(&a->s[i], &a->w, a->first + (uint64_t)i);
		bdev_submit(a->sw, &a->s[i].rq);
		__atomic_add_fetch(a->total, 1, __ATOMIC_SEQ_CST);
		if (i % 8 == 0)
			sched_yield();
	}
	md_wait_for(&a->w, a->n);
	return NULL;
}

static void test_switch_threads(void **state)
{
	enum { T = 4, PER = NBLK / T };
	uint8_t *wb = calloc(NBLK, 1);
	struct memdisk *a = md_open(MD_NATIVE, DISK, 512, 0xaa, 5);
	struct memdisk *b = md_open(MD_SYNC, DISK, 1, 0xbb, 6);
	struct swreq *s = calloc(NBLK, sizeof(*s));
	struct sub_arg sub[T];
	struct swap_arg sa = { 0 };
	struct bdev_err e = { 0 };
	pthread_t th[T];
	int total = 0;

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(s);
	swap_began = swap_ended = 0;
	a->written_by = b->written_by = wb;
	sa.sw = bdev_switch_open(&a->b, &e);
	sa.to = &b->b;
	assert_non_null(sa.sw);
	for (int t = 0; t < T; t++) {
		sub[t] = (struct sub_arg){ .sw = sa.sw, .s = s + t * PER,
			.first = (uint64_t)t * PER, .n = PER, .total = &total };
		md_wait_init(&sub[t].w);
		assert_int_equal(pthread_create(&th[t], NULL, submitter, &sub[t]), 0);
	}
	while (__atomic_load_n(&total, __ATOMIC_SEQ_CST) < (int)NBLK / 3)
		sched_yield();
	swap_thread(&sa);   /* mid-run, on this thread */
	assert_int_equal(sa.r, 0);
	for (int t = 0; t < T; t++) {
		pthread_join(th[t], NULL);
		md_wait_fini(&sub[t].w);
	}
	bdev_drain(sa.sw);
	for (unsigned i = 0; i < NBLK; i++)
		assert_landed(a, b, wb, i, &s[i]);
	assert_int_equal(md_get(a, &a->flushes), 1);
	assert_int_equal(a->bad_align + b->bad_align, 0);
	assert_int_equal(bdev_close(sa.old), 0);
	assert_int_equal(bdev_close(sa.sw), 0);
	free(s);
	free(wb);
}

static void test_switch_refuses(void **state)
{
	struct memdisk *a = md_open(MD_SYNC, DISK, 1, 0xaa, 1);
	struct memdisk *small = md_open(MD_SYNC, DISK / 2, 1, 0, 1);
	struct memdisk *ro = md_open(MD_SYNC, DISK, 1, 0, 1);
	struct memdisk *big_blk = md_open(MD_SYNC, DISK, 1, 0, 1);
	struct bdev_err e = { 0 };
	struct bdev *sw, *old = NULL;
	uint8_t buf[512];

	assert_non_null(a);
	assert_non_null(small);
	assert_non_null(ro);
	assert_non_null(big_blk);
	ro->b.read_only = true;
	big_blk->b.limits.logical_block = 4096;
	sw = bdev_switch_open(&a->b, &e);
	assert_non_null(sw);
	assert_int_equal(bdev_switch_swap(sw, &small->b, &old), -EINVAL);
	assert_non_null(strstr(bdev_last_error(), "cannot switch"));
	assert_int_equal(bdev_switch_swap(sw, &big_blk->b, &old), -EINVAL);
	assert_int_equal(bdev_switch_swap(sw, &ro->b, &old), -EROFS);
	assert_int_equal(bdev_switch_swap(&a->b, &ro->b, &old), -EINVAL);
	assert_null(old);
	assert_ptr_equal(bdev_switch_lower(sw), &a->b);
	/* Still working, on the old disk. */
	memset(buf, 0x42, sizeof(buf));
	assert_int_equal(bdev_write(sw, buf, 4096, sizeof(buf), 0), 0);
	assert_int_equal(a->data[4096], 0x42);
	assert_int_equal(bdev_close(sw), 0);
	assert_int_equal(bdev_close(&small->b), 0);
	assert_int_equal(bdev_close(&ro->b), 0);
	assert_int_equal(bdev_close(&big_blk->b), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_observers),
		cmocka_unit_test(test_switch_holds),
		cmocka_unit_test(test_switch_threads),
		cmocka_unit_test(test_switch_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
