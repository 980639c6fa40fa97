/* Bouncing: requests that break a disk's alignment (limits.align_off for
 * offsets and lengths, limits.align_mem for buffers, as O_DIRECT needs)
 * are served here through aligned buffers, once for every back-end.
 *
 *  - read: the covering aligned range is read into a bounce buffer and the
 *    asked-for bytes copied out;
 *  - write with aligned offset and length but unaligned buffers: copied
 *    into an aligned buffer and written;
 *  - write covering part of a block: read-modify-write of each partial
 *    block, run alone through the gate (bdev-gate.c), the aligned middle
 *    copied and written as above;
 *  - large requests go in pieces of at most BOUNCE_MAX bytes;
 *  - write-zeroes: the aligned middle is zeroed as usual, the partial edge
 *    blocks are read-modify-written with zeros; discard drops the partial
 *    edges unless the disk promises zeros after unmap, then it zeroes them.
 */
#include "bdev-int.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Bounce buffers are at most this big: larger requests go in pieces. */
#define BOUNCE_MAX (4u << 20)

static void *bounce_alloc(struct bdev *b, uint64_t n)
{
	size_t al = UTIL_MAX(UTIL_MAX(b->limits.align_mem, b->limits.align_off),
			     (uint32_t)sizeof(void *));
	void *p = NULL;

	if (posix_memalign(&p, al, (size_t)n))
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

/* Reads: the covering aligned range, a piece at a time. */
static int bounce_read(struct bdev *b, struct bdev_req *rq,
		       int (*serve)(struct bdev *, struct bdev_req *))
{
	uint64_t ao = b->limits.align_off;
	uint64_t a0 = rq->off / ao * ao;
	uint64_t a1 = util_align_up(rq->off + rq->len, ao);
	uint64_t piece = UTIL_MIN(a1 - a0, util_align_up(BOUNCE_MAX, ao));
	uint8_t *buf = bounce_alloc(b, piece);
	int r = 0;

	if (!buf)
		return nomem(b);
	for (uint64_t p = a0; p < a1 && !r; p += piece) {
		uint64_t n = UTIL_MIN(piece, a1 - p);
		uint64_t from = UTIL_MAX(p, rq->off);
		uint64_t to = UTIL_MIN(p + n, rq->off + rq->len);

		r = serve_one(b, BDEV_OP_READ, 0, buf, p, n, serve);
		if (!r)
			iov_copy(rq->iov, rq->iovcnt, from - rq->off,
				 buf + (from - p), to - from, true);
	}
	free(buf);
	return r;
}

/* Read-modify-write of [off, off+len), which lies inside one aligned
 * block, with bytes from src at skip (or zeros when src is NULL).  Runs
 * alone on the disk (the gate). */
static int rmw_block(struct bdev *b, const struct bdev_req *src,
		     uint64_t skip, uint64_t off, uint64_t len, unsigned flags,
		     int (*serve)(struct bdev *, struct bdev_req *))
{
	uint64_t ao = b->limits.align_off, a0 = off / ao * ao;
	uint8_t *buf = bounce_alloc(b, ao);
	int r;

	if (!buf)
		return nomem(b);
	bdev_gate_rmw_begin(b);
	r = serve_one(b, BDEV_OP_READ, 0, buf, a0, ao, serve);
	if (!r) {
		if (src)
			iov_copy(src->iov, src->iovcnt, skip, buf + (off - a0),
				 len, false);
		else
			memset(buf + (off - a0), 0, (size_t)len);
		r = serve_one(b, BDEV_OP_WRITE, flags, buf, a0, ao, serve);
	}
	bdev_gate_rmw_end(b);
	free(buf);
	return r;
}

/* Write aligned [off, off+len) from rq's buffers at skip, copied into
 * aligned buffers a piece at a time. */
static int copy_write(struct bdev *b, struct bdev_req *rq, uint64_t skip,
		      uint64_t off, uint64_t len,
		      int (*serve)(struct bdev *, struct bdev_req *))
{
	uint64_t piece = UTIL_MIN(len, BOUNCE_MAX);
	uint8_t *buf;
	int r = 0;

	if (!len)
		return 0;
	buf = bounce_alloc(b, piece);
	if (!buf)
		return nomem(b);
	for (uint64_t done = 0; done < len && !r; done += piece) {
		uint64_t n = UTIL_MIN(piece, len - done);

		iov_copy(rq->iov, rq->iovcnt, skip + done, buf, n, false);
		bdev_gate_write_enter_wait(b);
		r = serve_one(b, BDEV_OP_WRITE, rq->flags, buf, off + done, n,
			      serve);
		bdev_gate_write_exit(b);
	}
	free(buf);
	return r;
}

/* Split [off, off+len) into a partial first block, an aligned middle and
 * a partial last block. */
static void split(uint64_t ao, uint64_t off, uint64_t len, uint64_t *head,
		  uint64_t *mid, uint64_t *tail)
{
	*head = off % ao ? UTIL_MIN(len, ao - off % ao) : 0;
	*mid = (len - *head) / ao * ao;
	*tail = len - *head - *mid;
}

static int bounce_write(struct bdev *b, struct bdev_req *rq,
			int (*serve)(struct bdev *, struct bdev_req *))
{
	uint64_t head, mid, tail;
	int r = 0;

	split(b->limits.align_off, rq->off, rq->len, &head, &mid, &tail);
	if (head)
		r = rmw_block(b, rq, 0, rq->off, head, rq->flags, serve);
	if (!r)
		r = copy_write(b, rq, head, rq->off + head, mid, serve);
	if (!r && tail)
		r = rmw_block(b, rq, head + mid, rq->off + head + mid, tail,
			      rq->flags, serve);
	return r;
}

/* Write-zeroes and discard: the aligned middle as usual, the edges by
 * read-modify-write (or not at all for a discard that promises nothing). */
static int bounce_zero(struct bdev *b, struct bdev_req *rq,
		       int (*serve)(struct bdev *, struct bdev_req *))
{
	bool edges = rq->op == BDEV_OP_WRITE_ZEROES || b->limits.unmap_zeroes;
	unsigned fl = rq->flags & BDEV_FUA;
	uint64_t head, mid, tail;
	int r = 0;

	split(b->limits.align_off, rq->off, rq->len, &head, &mid, &tail);
	if (edges && head)
		r = rmw_block(b, NULL, 0, rq->off, head, fl, serve);
	if (!r && edges && tail)
		r = rmw_block(b, NULL, 0, rq->off + head + mid, tail, fl, serve);
	if (!r && mid) {
		bdev_gate_write_enter_wait(b);
		r = serve_one(b, rq->op, rq->flags, NULL, rq->off + head, mid,
			      serve);
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
