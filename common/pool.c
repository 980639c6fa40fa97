// SPDX-License-Identifier: MIT
/* One worker pool for the parallel jobs (backup create/restore/verify,
 * bdev_copy's readers): see pool.h. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "pool.h"

static void *trampoline(void *arg)
{
	struct pool_slot *s = arg;
	struct pool *p = s->p;

	p->fn(p->arg, s->index);
	pthread_mutex_lock(&p->lock);
	p->running--;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int pool_start(struct pool *p, int threads, pool_fn fn, void *arg,
	       struct bdev_err *e)
{
	memset(p, 0, sizeof(*p));
	p->fn = fn;
	p->arg = arg;
	if (threads <= 0)
		threads = 1;
	if (threads > POOL_MAX)
		threads = POOL_MAX;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	pthread_mutex_lock(&p->lock);
	for (; p->started < threads; p->started++) {
		struct pool_slot *s = &p->slot[p->started];

		s->p = p;
		s->index = p->started;
		p->running++;
		if (pthread_create(&s->tid, NULL, trampoline, s)) {
			p->running--;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (!p->started) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		return bdev_err_set(e, EAGAIN, "cannot start worker threads");
	}
	return p->started;
}

int pool_wait(struct pool *p, unsigned tick_ms, pool_tick_fn tick, void *targ,
	      struct bdev_err *e)
{
	int r;

	pthread_mutex_lock(&p->lock);
	while (p->running) {
		struct timespec t;

		if (!tick) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_sec += tick_ms / 1000;
		t.tv_nsec += (long)(tick_ms % 1000) * 1000000;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->cond, &p->lock, &t);
		if (p->running) {
			pthread_mutex_unlock(&p->lock);
			tick(p, targ);
			pthread_mutex_lock(&p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->started; i++)
		pthread_join(p->slot[i].tid, NULL);
	r = p->err;
	if (r && e)
		*e = p->e;
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	return r;
}

void pool_fail(struct pool *p, int r, const struct bdev_err *e)
{
	pthread_mutex_lock(&p->lock);
	if (!p->err) {
		p->err = r < 0 ? r : -r;
		if (e)
			p->e = *e;
		else
			bdev_err_set(&p->e, -p->err, "%s", strerror(-p->err));
	}
	pthread_mutex_unlock(&p->lock);
	__atomic_store_n(&p->stop, true, __ATOMIC_RELAXED);
}

bool pool_stopping(const struct pool *p)
{
	return __atomic_load_n(&p->stop, __ATOMIC_RELAXED);
}

int pool_running(struct pool *p)
{
	int n;

	pthread_mutex_lock(&p->lock);
	n = p->running;
	pthread_mutex_unlock(&p->lock);
	return n;
}
