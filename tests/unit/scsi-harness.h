/* Test harness shared by tests/unit/test-scsi-*.c: an in-memory disk
 * (per-block allocation map for block status, error injection, and a
 * "hold" mode that keeps submitted requests until released, in any order,
 * to observe commands in flight), and a command runner that waits for
 * done().  Everything is static so each test uses what it needs. */
#ifndef SCSI_HARNESS_H
#define SCSI_HARNESS_H

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/bdev.h"
#include "common/util.h"
#include "scsi/scsi.h"

/* ---- the memory disk ---- */

struct memdisk {
	struct bdev b;                /* first */
	uint8_t *data;
	uint8_t *alloc;               /* per logical block: allocated */
	pthread_mutex_t mu;
	/* observation and faults */
	int fail_op;                  /* enum bdev_op + 1; 0 none */
	int fail_err;                 /* positive errno */
	unsigned last_flags[5];       /* flags of the last request per op */
	int count[5];                 /* requests per op */
	/* hold mode */
	bool hold;
	struct bdev_req *held[256];
	int nheld;
};

static inline int md_fault(struct memdisk *m, enum bdev_op op, unsigned flags)
{
	int r = 0;

	pthread_mutex_lock(&m->mu);
	m->last_flags[op] = flags;
	m->count[op]++;
	if (m->fail_op == (int)op + 1)
		r = -m->fail_err;
	pthread_mutex_unlock(&m->mu);
	return r;
}

static inline void md_mark(struct memdisk *m, uint64_t off, uint64_t len, uint8_t v)
{
	uint32_t bs = m->b.limits.logical_block;

	for (uint64_t b = off / bs; b * bs < off + len; b++)
		m->alloc[b] = v;
}

static inline int md_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	struct memdisk *m = (struct memdisk *)b;
	int r = md_fault(m, BDEV_OP_READ, 0);

	if (!r)
		memcpy(buf, m->data + off, len);
	return r;
}

static inline int md_write(struct bdev *b, const void *buf, uint64_t off, size_t len,
		    unsigned flags)
{
	struct memdisk *m = (struct memdisk *)b;
	int r = md_fault(m, BDEV_OP_WRITE, flags);

	if (!r) {
		memcpy(m->data + off, buf, len);
		md_mark(m, off, len, 1);
	}
	return r;
}

static inline int md_flush(struct bdev *b)
{
	return md_fault((struct memdisk *)b, BDEV_OP_FLUSH, 0);
}

static inline int md_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	struct memdisk *m = (struct memdisk *)b;
	int r = md_fault(m, BDEV_OP_DISCARD, 0);

	if (!r) {
		memset(m->data + off, 0, len);
		md_mark(m, off, len, 0);
	}
	return r;
}

static inline int md_zero(struct bdev *b, uint64_t off, uint64_t len, unsigned flags)
{
	struct memdisk *m = (struct memdisk *)b;
	int r = md_fault(m, BDEV_OP_WRITE_ZEROES, flags);

	if (!r) {
		memset(m->data + off, 0, len);
		md_mark(m, off, len, (flags & BDEV_MAY_UNMAP) ? 0 : 1);
	}
	return r;
}

static inline int md_status(struct bdev *b, uint64_t off, uint64_t len,
		     struct bdev_status *st)
{
	struct memdisk *m = (struct memdisk *)b;
	uint32_t bs = m->b.limits.logical_block;
	uint64_t blk = off / bs, end = off + len;
	uint8_t a = m->alloc[blk];
	uint64_t e = (blk + 1) * bs;

	while (e < end && m->alloc[e / bs] == a)
		e += bs;
	st->length = UTIL_MIN(e, end) - off;
	st->flags = a ? BDEV_ST_DATA | BDEV_ST_ALLOC : BDEV_ST_ZERO;
	st->depth = 0;
	return 0;
}

static inline void md_close(struct bdev *b)
{
	struct memdisk *m = (struct memdisk *)b;

	free(m->data);
	free(m->alloc);
	pthread_mutex_destroy(&m->mu);
	bdev_fini(b);
	free(m);
}

/* Serve rq now with the synchronous ops, then complete it. */
static inline void md_serve(struct memdisk *m, struct bdev_req *rq)
{
	uint64_t off = rq->off;
	int r = 0;

	switch (rq->op) {
	case BDEV_OP_READ:
	case BDEV_OP_WRITE:
		for (int i = 0; i < rq->iovcnt && !r; i++) {
			r = rq->op == BDEV_OP_READ
				? md_read(&m->b, rq->iov[i].iov_base, off, rq->iov[i].iov_len)
				: md_write(&m->b, rq->iov[i].iov_base, off,
					   rq->iov[i].iov_len, rq->flags);
			off += rq->iov[i].iov_len;
		}
		break;
	case BDEV_OP_FLUSH: r = md_flush(&m->b); break;
	case BDEV_OP_DISCARD: r = md_discard(&m->b, rq->off, rq->len); break;
	case BDEV_OP_WRITE_ZEROES: r = md_zero(&m->b, rq->off, rq->len, rq->flags); break;
	}
	bdev_req_complete(rq, r);
}

/* Native submit: held requests wait for md_release; otherwise the worker
 * pool serves them (asynchronously, on its threads). */
static inline int md_submit(struct bdev *b, struct bdev_req *rq)
{
	struct memdisk *m = (struct memdisk *)b;

	pthread_mutex_lock(&m->mu);
	if (!m->hold || m->nheld == 256) {
		pthread_mutex_unlock(&m->mu);
		return -ENOTSUP;
	}
	m->held[m->nheld++] = rq;
	pthread_mutex_unlock(&m->mu);
	return 0;
}

static const struct bdev_ops md_ops = {
	.kind = "mem",
	.read = md_read,
	.write = md_write,
	.flush = md_flush,
	.discard = md_discard,
	.write_zeroes = md_zero,
	.block_status = md_status,
	.close = md_close,
	.submit = md_submit,
};

/* A disk of size bytes with logical block bs and physical block phys;
 * unmap when unmap is true (deallocated blocks read as zeros). */
static inline struct memdisk *md_new(uint64_t size, uint32_t bs, uint32_t phys,
			      bool unmap)
{
	struct memdisk *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	assert_int_equal(bdev_init(&m->b, &md_ops, "mem", size, bs, false), 0);
	m->b.limits.physical_block = phys;
	m->b.limits.unmap_granularity = unmap ? bs : 0;
	m->b.limits.unmap_zeroes = unmap;
	m->b.limits.opt_transfer = 65536;
	memcpy(m->b.ident.id, "0123456789abcdef", 16);
	snprintf(m->b.ident.serial, sizeof(m->b.ident.serial), "SER-%u", bs);
	m->data = calloc(1, size);
	m->alloc = calloc(1, size / bs + 1);
	assert_non_null(m->data);
	assert_non_null(m->alloc);
	pthread_mutex_init(&m->mu, NULL);
	return m;
}

/* Number of held requests (waits up to 5 s for at least want). */
static inline int md_wait_held(struct memdisk *m, int want)
{
	int n = 0;

	for (int i = 0; i < 5000; i++) {
		pthread_mutex_lock(&m->mu);
		n = m->nheld;
		pthread_mutex_unlock(&m->mu);
		if (n >= want)
			break;
		usleep(1000);
	}
	return n;
}

/* Serve the held requests, last first (out of order); stop holding. */
static inline void md_release(struct memdisk *m)
{
	struct bdev_req *rq[256];
	int n;

	pthread_mutex_lock(&m->mu);
	m->hold = false;
	n = m->nheld;
	memcpy(rq, m->held, sizeof(rq[0]) * (size_t)n);
	m->nheld = 0;
	pthread_mutex_unlock(&m->mu);
	while (n--)
		md_serve(m, rq[n]);
}

/* ---- running commands ---- */

struct tc {
	struct scsi_cmd c;
	struct iovec iov[4];
	bool done;
};

static pthread_mutex_t tc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tc_cv = PTHREAD_COND_INITIALIZER;

static inline void tc_done(struct scsi_cmd *c)
{
	struct tc *x = c->opaque;

	pthread_mutex_lock(&tc_mu);
	x->done = true;
	pthread_cond_broadcast(&tc_cv);
	pthread_mutex_unlock(&tc_mu);
}

/* Prepare x: CDB bytes, buffer (may be NULL), initiator. */
static inline void tc_prep(struct tc *x, uint32_t lun, uint64_t itn, const uint8_t *cdb,
		    size_t cdblen, enum scsi_dir dir, void *buf, size_t len)
{
	memset(x, 0, sizeof(*x));
	x->c.lun = lun;
	memcpy(x->c.cdb, cdb, cdblen);
	x->c.cdb_len = 16 > cdblen ? 16 : (uint8_t)cdblen;
	x->c.dir = dir;
	x->iov[0] = (struct iovec){ buf, len };
	x->c.iov = x->iov;
	x->c.iovcnt = buf ? 1 : 0;
	x->c.initiator = itn;
	x->c.done = tc_done;
	x->c.opaque = x;
}

static inline bool tc_is_done(struct tc *x)
{
	bool d;

	pthread_mutex_lock(&tc_mu);
	d = x->done;
	pthread_mutex_unlock(&tc_mu);
	return d;
}

static inline void tc_wait(struct tc *x)
{
	pthread_mutex_lock(&tc_mu);
	while (!x->done)
		pthread_cond_wait(&tc_cv, &tc_mu);
	pthread_mutex_unlock(&tc_mu);
}

/* Run one command to completion; returns its status. */
static inline uint8_t run(struct scsi_target *t, struct tc *x, uint32_t lun,
		   uint64_t itn, const uint8_t *cdb, size_t cdblen,
		   enum scsi_dir dir, void *buf, size_t len)
{
	tc_prep(x, lun, itn, cdb, cdblen, dir, buf, len);
	scsi_submit(t, &x->c);
	tc_wait(x);
	return x->c.status;
}

#define assert_sense(x, key, asc, ascq) do {                              \
	assert_int_equal((x)->c.status, SCSI_CHECK_CONDITION);             \
	assert_int_equal((x)->c.sense_len, 18);                            \
	assert_int_equal((x)->c.sense[0] & 0x7f, 0x70);                    \
	assert_int_equal((x)->c.sense[2] & 0x0f, (key));                   \
	assert_int_equal((x)->c.sense[7], 10);                             \
	assert_int_equal((x)->c.sense[12], (asc));                         \
	assert_int_equal((x)->c.sense[13], (ascq));                        \
} while (0)

/* INVALID FIELD IN CDB pointing at byte (bit < 0: no bit pointer). */
#define assert_field(x, byte, bit) do {                                    \
	assert_sense((x), 5, 0x24, 0);                                     \
	assert_int_equal((x)->c.sense[15], 0x80 | 0x40 |                   \
			 ((bit) >= 0 ? 0x08 | (bit) : 0));                 \
	assert_int_equal(util_get_be16(&(x)->c.sense[16]), (byte));        \
} while (0)

/* Clear the power-on unit attention of itn on lun (TEST UNIT READY). */
static inline void clear_ua(struct scsi_target *t, uint32_t lun, uint64_t itn)
{
	static const uint8_t tur[6] = { 0 };
	struct tc x;

	for (int i = 0; i < 8; i++)
		if (run(t, &x, lun, itn, tur, 6, SCSI_DIR_NONE, NULL, 0) == SCSI_GOOD)
			return;
	fail_msg("unit attention does not clear");
}

/* CDB builders */
static inline void cdb16(uint8_t *c, uint8_t op, uint64_t lba, uint32_t n)
{
	memset(c, 0, 16);
	c[0] = op;
	util_put_be64(c + 2, lba);
	util_put_be32(c + 10, n);
}

static inline void cdb10(uint8_t *c, uint8_t op, uint32_t lba, uint16_t n)
{
	memset(c, 0, 10);
	c[0] = op;
	util_put_be32(c + 2, lba);
	util_put_be16(c + 7, n);
}

#endif
