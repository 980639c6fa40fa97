/* Bouncing: requests that break a disk's alignment (limits.align_off for
 * offsets and lengths, limits.align_mem for buffers, as O_DIRECT needs)
 * are served here through aligned buffers, once for every back-end.
 *
 *  - read: the covering aligned range is read into a bounce buffer and the
 *    asked-for bytes copied out;
 *  - write with aligned offset and length but unaligned buffers: copied
 *    into an aligned buffer and written;
 *  - write covering part of a block: read-modify-write of the covering
 *    range (only its partial first and last blocks are read), run alone
 *    through the gate (bdev-gate.c);
 *  - write-zeroes: the aligned middle is zeroed as usual, the partial edge
 *    blocks are read-modify-written with zeros; discard drops the partial
 *    edges unless the disk promises zeros after unmap, then it zeroes them.
 */
#include "bdev-int.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *bounce_alloc(struct bdev *b, uint64_t n)
{
	size_t al = UTIL_MAX(UTIL_MAX(b->limits.align_mem, b->limits.align_off),
			     (uint32_t)sizeof(void *));
	void *p = NULL;

	if (n > (64u << 20) + 2 * (uint64_t)al || posix_memalign(&p, al, (size_t)n))
		return NULL;
	return p;
}

/* Copy n bytes between buf and the iovec starting skip bytes into it. */
static void iov_copy(const struct iovec *iov, int cnt, uint64_t skip,
		     void *buf, uint64_t n, bool to_iov)
{
	uint8_t *p = buf;

	for (int i = 0; i < cnt && n; i++) {
		uint64_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l = UTIL_MIN(l - skip, n);
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + skip, p, (size_t)l);
		else
			memcpy(p, (uint8_t *)iov[i].iov_base + skip, (size_t)l);
		p += l;
		n -= l;
		skip = 0;
	}
}

static int serve_one(struct bdev *b, enum bdev_op op, unsigned flags,
		     void *buf, uint64_t off, uint64_t len,
		     int (*serve)(struct bdev *, struct bdev_req *))
{
	struct iovec v = { buf, (size_t)len };
	struct bdev_req c = {
		.op = op, .flags = flags, .off = off, .len = len,
		.iov = buf ? &v : NULL, .iovcnt = buf ? 1 : 0, .bd = b,
		.priv_flags = BDEV_RQ_CHILD,
	};

	return serve(b, &c);
}

static int nomem(struct bdev *b)
{
	return bdev_set_error(b, ENOMEM, "out of memory for an alignment bounce buffer");
}

static int bounce_read(struct bdev *b, struct bdev_req *rq,
		       int (*serve)(struct bdev *, struct bdev_req *))
{
	uint64_t ao = b->limits.align_off;
	uint64_t a0 = rq->off / ao * ao;
	uint64_t a1 = util_align_up(rq->off + rq->len, ao);
	uint8_t *buf = bounce_alloc(b, a1 - a0);
	int r;

	if (!buf)
		return nomem(b);
	r = serve_one(b, BDEV_OP_READ, 0, buf, a0, a1 - a0, serve);
	if (!r)
		iov_copy(rq->iov, rq->iovcnt, 0, buf + (rq->off - a0), rq->len,
			 true);
	free(buf);
	return r;
}

/* Read-modify-write of [off, off+len) with bytes from src (an iovec) or
 * zeros (src NULL).  Runs alone on the disk. */
static int rmw(struct bdev *b, const struct bdev_req *src, uint64_t off,
	       uint64_t len, unsigned flags,
	       int (*serve)(struct bdev *, struct bdev_req *))
{
	uint64_t ao = b->limits.align_off;
	uint64_t a0 = off / ao * ao, a1 = util_align_up(off + len, ao);
	uint8_t *buf = bounce_alloc(b, a1 - a0);
	int r = 0;

	if (!buf)
		return nomem(b);
	bdev_gate_rmw_begin(b);
	if (off != a0)
		r = serve_one(b, BDEV_OP_READ, 0, buf, a0, ao, serve);
	if (!r && (off + len) % ao && (a1 - ao != a0 || off == a0))
		r = serve_one(b, BDEV_OP_READ, 0, buf + (a1 - a0 - ao),
			      a1 - ao, ao, serve);
	if (!r) {
		if (src)
			iov_copy(src->iov, src->iovcnt, 0, buf + (off - a0), len,
				 false);
		else
			memset(buf + (off - a0), 0, (size_t)len);
		r = serve_one(b, BDEV_OP_WRITE, flags, buf, a0, a1 - a0, serve);
	}
	bdev_gate_rmw_end(b);
	free(buf);
	return r;
}

static int bounce_write(struct bdev *b, struct bdev_req *rq,
			int (*serve)(struct bdev *, struct bdev_req *))
{
	uint64_t ao = b->limits.align_off;
	uint8_t *buf;
	int r;

	if ((rq->off | rq->len) % ao)
		return rmw(b, rq, rq->off, rq->len, rq->flags, serve);
	/* Only the buffers are misaligned. */
	buf = bounce_alloc(b, rq->len);
	if (!buf)
		return nomem(b);
	iov_copy(rq->iov, rq->iovcnt, 0, buf, rq->len, false);
	bdev_gate_write_enter_wait(b);
	r = serve_one(b, BDEV_OP_WRITE, rq->flags, buf, rq->off, rq->len, serve);
	bdev_gate_write_exit(b);
	free(buf);
	return r;
}

/* Write-zeroes and discard: the aligned middle as usual, the edges by
 * read-modify-write (or not at all for a discard that promises nothing). */
static int bounce_zero(struct bdev *b, struct bdev_req *rq,
		       int (*serve)(struct bdev *, struct bdev_req *))
{
	uint64_t ao = b->limits.align_off, end = rq->off + rq->len;
	uint64_t m0 = util_align_up(rq->off, ao), m1 = end / ao * ao;
	bool edges = rq->op == BDEV_OP_WRITE_ZEROES || b->limits.unmap_zeroes;
	unsigned fl = rq->flags & BDEV_FUA;
	int r = 0;

	if (m0 >= m1) {   /* inside one block, or two partial ones */
		return edges ? rmw(b, NULL, rq->off, rq->len, fl, serve) : 0;
	}
	if (edges && rq->off < m0)
		r = rmw(b, NULL, rq->off, m0 - rq->off, fl, serve);
	if (!r && edges && end > m1)
		r = rmw(b, NULL, m1, end - m1, fl, serve);
	if (!r) {
		bdev_gate_write_enter_wait(b);
		r = serve_one(b, rq->op, rq->flags, NULL, m0, m1 - m0, serve);
		bdev_gate_write_exit(b);
	}
	return r;
}

int bdev_bounce(struct bdev *b, struct bdev_req *rq,
		int (*serve)(struct bdev *, struct bdev_req *))
{
	switch (rq->op) {
	case BDEV_OP_READ:
		return bounce_read(b, rq, serve);
	case BDEV_OP_WRITE:
		return bounce_write(b, rq, serve);
	case BDEV_OP_WRITE_ZEROES:
	case BDEV_OP_DISCARD:
		return bounce_zero(b, rq, serve);
	default:
		return serve(b, rq);
	}
}
