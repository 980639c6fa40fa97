/* The generic adapter: one process-wide pool of worker threads serving
 * requests of disks that have no native asynchronous I/O (or requests a
 * native back-end declines, such as discards, and bounced ones) with the
 * synchronous ops.
 *
 * Threads are started on demand, when a request is queued and fewer
 * threads are idle than requests wait, up to MAX_WORKERS; so a disk with
 * 64 requests in flight gets up to 64 threads blocked in pread at once,
 * which is what keeps a buffered file's queue full.  Idle threads wait on
 * one condition variable; they end after IDLE_SECONDS without work. */
#include "bdev-int.h"

#include <errno.h>
#include <time.h>

#define MAX_WORKERS 64
#define IDLE_SECONDS 10

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct bdev_req *head, **tail = &head;
static int nthreads, idle, pending;

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		struct bdev_req *rq;
		struct timespec until;
		int r;

		while (!head) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += IDLE_SECONDS;
			idle++;
			r = pthread_cond_timedwait(&cv, &mu, &until);
			idle--;
			if (r == ETIMEDOUT && !head) {
				nthreads--;
				pthread_mutex_unlock(&mu);
				return NULL;
			}
		}
		rq = head;
		head = rq->next;
		if (!head)
			tail = &head;
		pending--;
		pthread_mutex_unlock(&mu);
		r = bdev_serve_sync(rq->bd, rq);
		bdev_req_complete(rq, r);
		pthread_mutex_lock(&mu);
	}
}

void bdev_worker_queue(struct bdev_req *rq)
{
	bool serve_here = false;

	rq->next = NULL;
	pthread_mutex_lock(&mu);
	*tail = rq;
	tail = &rq->next;
	pending++;
	if (pending > idle && nthreads < MAX_WORKERS) {
		pthread_attr_t a;
		pthread_t t;

		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&a, 1 << 20);
		if (pthread_create(&t, &a, worker, NULL) == 0)
			nthreads++;
		else if (!nthreads)
			serve_here = true;   /* no thread at all: do not hang */
		pthread_attr_destroy(&a);
	}
	if (!serve_here)
		pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	/* No thread could be started and none runs: serve what is queued
	 * here rather than leave it hanging. */
	while (serve_here) {
		struct bdev_req *q;

		pthread_mutex_lock(&mu);
		q = nthreads ? NULL : head;
		if (q) {
			head = q->next;
			if (!head)
				tail = &head;
			pending--;
		}
		pthread_mutex_unlock(&mu);
		if (!q)
			break;
		bdev_req_complete(q, bdev_serve_sync(q->bd, q));
	}
}
