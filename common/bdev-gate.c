/* The write gate of disks that need aligned I/O (limits.align_off > 1).
 *
 * A bounced write that covers part of a block reads the block, patches it
 * and writes it back.  Any other write to that block landing between the
 * read and the write would be undone, so a read-modify-write runs alone:
 * it waits until no write is in flight, and writes submitted meanwhile are
 * held (asynchronous ones queued, synchronous callers waiting) until it
 * ends.  Misaligned writes are rare (the SCSI and NBD front ends send
 * whole blocks), so the simple exclusion costs nothing on the hot path
 * beyond one uncontended mutex per write.  All state is under b->mu. */
#include "bdev-int.h"

bool bdev_gate_write_enter(struct bdev *b, struct bdev_req *rq)
{
	bool go;

	pthread_mutex_lock(&b->mu);
	go = !b->gate_rmw;
	if (go) {
		b->gate_writes++;
		rq->priv_flags |= BDEV_RQ_GATED;
	} else {
		rq->next = NULL;
		*b->gate_tail = rq;
		b->gate_tail = &rq->next;
	}
	pthread_mutex_unlock(&b->mu);
	return go;
}

void bdev_gate_write_enter_wait(struct bdev *b)
{
	pthread_mutex_lock(&b->mu);
	while (b->gate_rmw)
		pthread_cond_wait(&b->cv, &b->mu);
	b->gate_writes++;
	pthread_mutex_unlock(&b->mu);
}

void bdev_gate_write_exit(struct bdev *b)
{
	pthread_mutex_lock(&b->mu);
	if (--b->gate_writes == 0 && b->gate_rmw)
		pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

void bdev_gate_rmw_begin(struct bdev *b)
{
	pthread_mutex_lock(&b->mu);
	b->gate_rmw++;
	while (b->gate_writes || b->gate_rmw_running)
		pthread_cond_wait(&b->cv, &b->mu);
	b->gate_rmw_running = true;
	pthread_mutex_unlock(&b->mu);
}

void bdev_gate_rmw_end(struct bdev *b)
{
	struct bdev_req *held = NULL;

	pthread_mutex_lock(&b->mu);
	b->gate_rmw_running = false;
	if (--b->gate_rmw == 0) {
		held = b->gate_held;
		b->gate_held = NULL;
		b->gate_tail = &b->gate_held;
		for (struct bdev_req *rq = held; rq; rq = rq->next) {
			b->gate_writes++;
			rq->priv_flags |= BDEV_RQ_GATED;
		}
	}
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	while (held) {
		struct bdev_req *rq = held;

		held = rq->next;
		bdev_dispatch(b, rq);
	}
}
