/* bdev internals shared by the files of the block layer (bdev.c,
 * bdev-gate.c, bdev-bounce.c, bdev-worker.c, bdev-layer.c).  Not for
 * back-ends or callers. */
#ifndef BDEV_INT_H
#define BDEV_INT_H

#include "bdev.h"

/* bdev_req.priv_flags */
#define BDEV_RQ_CHILD 0x1u  /* issued by the block layer for a parent request:
                             * not tracked, not gated */
#define BDEV_RQ_GATED 0x2u  /* counted in bd->gate_writes */

struct bdev_waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

void bdev_inflight_inc(struct bdev *b);
void bdev_inflight_dec(struct bdev *b);

/* True when rq meets b's offset, length and memory alignment. */
bool bdev_req_aligned(const struct bdev *b, const struct bdev_req *rq);
/* Serve a checked request on this thread (bouncing when misaligned);
 * returns its status.  Used by the workers and the synchronous calls. */
int bdev_serve_sync(struct bdev *b, struct bdev_req *rq);
/* Issue a child of parent (same op and flags, the given buffers and range)
 * through b's native submit and wait for it; -ENOTSUP when the back-end
 * declines it. */
int bdev_native_wait(struct bdev *b, struct bdev_req *parent,
		     const struct iovec *iov, int iovcnt, uint64_t off,
		     uint64_t len);
/* Route a checked request that may go now: native submit, the lower disk
 * of a layer, or the workers. */
void bdev_dispatch(struct bdev *b, struct bdev_req *rq);

/* bdev-bounce.c: serve a misaligned request through aligned buffers,
 * calling serve() with aligned child requests; writes covering part of a
 * block are read-modify-writes under the gate. */
int bdev_bounce(struct bdev *b, struct bdev_req *rq,
		int (*serve)(struct bdev *, struct bdev_req *));

/* bdev-gate.c: on disks with limits.align_off > 1, aligned writes and
 * read-modify-writes exclude each other.  enter() returns false when rq was
 * held (bdev_dispatch()ed when the RMW ends). */
bool bdev_gate_write_enter(struct bdev *b, struct bdev_req *rq);
void bdev_gate_write_enter_wait(struct bdev *b);
void bdev_gate_write_exit(struct bdev *b);
void bdev_gate_rmw_begin(struct bdev *b);
void bdev_gate_rmw_end(struct bdev *b);

/* bdev-worker.c: serve rq on a worker thread (bdev_serve_sync, then
 * bdev_req_complete). */
void bdev_worker_queue(struct bdev_req *rq);

/* bdev-layer.c */
/* True when layer b has no operation of its own for op (pass it down). */
bool bdev_layer_passes(const struct bdev *b, enum bdev_op op);
/* Send rq to b->lower as a child request; rq completes with its status. */
void bdev_layer_forward(struct bdev *b, struct bdev_req *rq);

#endif
