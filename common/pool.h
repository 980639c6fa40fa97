/* SPDX-License-Identifier: MIT */
/*
 * pool: one set of worker threads over a shared job.
 *
 * pool_start() runs fn(arg, index) on up to N threads (fewer when
 * pthread_create fails; never zero without an error).  The calling thread
 * then either does its own part (bdev_copy's writer) or calls pool_wait(),
 * which ticks a callback every tick_ms while workers run (progress,
 * cancellation), and joins them.  A worker (or the tick) reports the first
 * error with pool_fail(); the others see pool_stopping() and end early.
 */
#ifndef POOL_H
#define POOL_H

#include <pthread.h>
#include <stdbool.h>

#include "bdev.h"

#define POOL_MAX 64

struct pool;
typedef void (*pool_fn)(void *arg, int index);
typedef void (*pool_tick_fn)(struct pool *p, void *arg);

struct pool_slot {
	struct pool *p;
	int index;
	pthread_t tid;
};

struct pool {
	pool_fn fn;
	void *arg;
	int started;
	struct pool_slot slot[POOL_MAX];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int running;            /* guarded by lock */
	int err;                /* first error, -errno; guarded by lock */
	struct bdev_err e;
	bool stop;              /* atomic */
};

/* Start min(threads, POOL_MAX) workers (threads <= 0: one).  Returns the
 * number started (>= 1), or -EAGAIN with e set when none could be. */
int pool_start(struct pool *p, int threads, pool_fn fn, void *arg,
	       struct bdev_err *e);
/* Until every worker returned: every tick_ms call tick(p, targ) (tick may
 * be NULL).  Then join them and free the pool's resources.  Returns the
 * first error recorded by pool_fail (e filled), else 0. */
int pool_wait(struct pool *p, unsigned tick_ms, pool_tick_fn tick, void *targ,
	      struct bdev_err *e);
/* Record r (-errno or errno) with message e as the pool's error when it is
 * the first one; tell every worker to stop. */
void pool_fail(struct pool *p, int r, const struct bdev_err *e);
/* Whether pool_fail was called. */
bool pool_stopping(const struct pool *p);
/* Workers still running (for a tick). */
int pool_running(struct pool *p);

#endif
