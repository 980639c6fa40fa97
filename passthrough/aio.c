/* The libaio engine: READ, WRITE and FLUSH requests of one file
 * descriptor, submitted with io_submit() from the submitting thread and
 * completed on one reaper thread per engine.
 *
 * The reaper sleeps in read() on an eventfd that the kernel signals for
 * every completion (io_set_eventfd), then reaps with a non-blocking
 * io_getevents() until nothing is left; one wake-up covers every request
 * that finished meanwhile.  done() callbacks run on the reaper.
 *
 * At most PT_DEPTH requests are in the kernel; more (or an io_submit that
 * says EAGAIN) wait on an overflow list that the reaper submits after it
 * reaped something.  A request pushed there also kicks the eventfd, so an
 * idle reaper cannot leave it waiting.
 *
 * Errors are the request's own: a negative res is its -errno, a short
 * transfer is -EIO (the file shrank, or the device went away).  Kernels or
 * file systems without asynchronous fsync answer a FLUSH with -EINVAL;
 * the engine then syncs that one on the reaper with fdatasync() and
 * declines later FLUSHes (-ENOTSUP: the block layer's workers run the
 * disk's synchronous flush). */
#include "passthrough.h"

#include <errno.h>
#include <libaio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PT_DEPTH 256
#define PT_REAP 64

struct pt_aio {
	struct bdev *b;
	int fd;
	io_context_t ctx;
	int efd;
	pthread_t reaper;
	bool stop;               /* atomic */
	bool no_aio_fsync;       /* atomic */
	int inkernel;            /* atomic: iocbs submitted, not reaped */
	pthread_mutex_t mu;      /* the overflow list */
	struct bdev_req *over, **over_tail;
};

struct pt_iocb {
	struct iocb cb;
	struct bdev_req *rq;
};

static void kick(struct pt_aio *a)
{
	uint64_t one = 1;

	while (write(a->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void overflow(struct pt_aio *a, struct bdev_req *rq)
{
	rq->next = NULL;
	pthread_mutex_lock(&a->mu);
	*a->over_tail = rq;
	a->over_tail = &rq->next;
	pthread_mutex_unlock(&a->mu);
	kick(a);
}

/* Requests this thread holds while plugged (bdev_plug), for one engine
 * at a time: submitted with one io_submit at the unplug, so the device
 * is kicked once for the batch instead of once a request. */
static _Thread_local struct {
	struct pt_aio *a;
	int n;
	struct iocb *cbs[PT_REAP];
} held;

/* bdev_unplug (or a full batch): submit what this thread holds for a.
 * A refused iocb goes to the overflow list (EAGAIN) or completes with
 * its error; the rest are submitted again. */
static void submit_held(void *arg)
{
	struct pt_aio *a = arg;
	struct iocb *cbs[PT_REAP];
	int n = held.n, done = 0;

	if (held.a != a || !n)
		return;
	memcpy(cbs, held.cbs, sizeof(cbs[0]) * (size_t)n);
	held.n = 0;
	held.a = NULL;
	while (done < n) {
		int r = io_submit(a->ctx, n - done, cbs + done);
		struct pt_iocb *p;
		struct bdev_req *rq;

		if (r > 0) {
			done += r;
			continue;
		}
		p = cbs[done++]->data;
		rq = p->rq;
		__atomic_sub_fetch(&a->inkernel, 1, __ATOMIC_ACQ_REL);
		if (r == -EAGAIN) {
			overflow(a, rq);
			continue;
		}
		free(p);
		rq->be = NULL;
		bdev_req_complete(rq, r < 0 ? r : -EIO);
	}
}

/* Submit rq: 0 (in the kernel, held for the unplug, or on the overflow
 * list) or -errno. */
static int submit_one(struct pt_aio *a, struct bdev_req *rq, uint64_t foff)
{
	struct pt_iocb *p = rq->be;
	struct iocb *cbp;
	int r;

	if (!p) {
		p = malloc(sizeof(*p));
		if (!p)
			return -ENOMEM;
		switch (rq->op) {
		case BDEV_OP_READ:
			io_prep_preadv(&p->cb, a->fd, rq->iov, rq->iovcnt,
				       (long long)foff);
			break;
		case BDEV_OP_WRITE:
			io_prep_pwritev2(&p->cb, a->fd, rq->iov, rq->iovcnt,
					 (long long)foff,
					 (rq->flags & BDEV_FUA) ? RWF_DSYNC : 0);
			break;
		default:
			io_prep_fdsync(&p->cb, a->fd);
			break;
		}
		io_set_eventfd(&p->cb, a->efd);
		p->cb.data = p;
		p->rq = rq;
		rq->be = p;
	}
	if (__atomic_add_fetch(&a->inkernel, 1, __ATOMIC_ACQ_REL) > PT_DEPTH) {
		__atomic_sub_fetch(&a->inkernel, 1, __ATOMIC_ACQ_REL);
		overflow(a, rq);
		return 0;
	}
	cbp = &p->cb;
	if (held.n == PT_REAP && held.a == a)
		submit_held(a);
	if ((!held.n || held.a == a) && bdev_plug_defer(submit_held, a)) {
		held.a = a;
		held.cbs[held.n++] = cbp;
		return 0;
	}
	r = io_submit(a->ctx, 1, &cbp);
	if (r == 1)
		return 0;
	__atomic_sub_fetch(&a->inkernel, 1, __ATOMIC_ACQ_REL);
	if (r == -EAGAIN) {
		overflow(a, rq);
		return 0;
	}
	free(p);
	rq->be = NULL;
	return r < 0 ? r : -EIO;
}

int pt_aio_submit(struct pt_aio *a, struct bdev_req *rq, uint64_t file_off)
{
	if (rq->op != BDEV_OP_READ && rq->op != BDEV_OP_WRITE &&
	    rq->op != BDEV_OP_FLUSH)
		return -ENOTSUP;
	if (rq->op == BDEV_OP_FLUSH &&
	    __atomic_load_n(&a->no_aio_fsync, __ATOMIC_RELAXED))
		return -ENOTSUP;
	rq->be = NULL;
	return submit_one(a, rq, file_off);
}

static void finish(struct pt_aio *a, struct pt_iocb *p, long res)
{
	struct bdev_req *rq = p->rq;
	int st = 0;

	if (res < 0) {
		st = (int)res;
		if (rq->op == BDEV_OP_FLUSH && res == -EINVAL) {
			/* No asynchronous fsync here: sync this one now. */
			__atomic_store_n(&a->no_aio_fsync, true, __ATOMIC_RELAXED);
			st = fdatasync(a->fd) < 0 ? -errno : 0;
		}
	} else if (rq->op != BDEV_OP_FLUSH && (uint64_t)res != rq->len) {
		st = -EIO;
		rq->ec = BDEV_EC_MEDIUM;
	}
	free(p);
	rq->be = NULL;
	bdev_req_complete(rq, st);
}

static void submit_overflow(struct pt_aio *a)
{
	struct bdev_req *list;

	pthread_mutex_lock(&a->mu);
	list = a->over;
	a->over = NULL;
	a->over_tail = &a->over;
	pthread_mutex_unlock(&a->mu);
	while (list) {
		struct bdev_req *rq = list;
		int r;

		list = rq->next;
		r = submit_one(a, rq, 0);   /* prepared: offset already set */
		if (r)
			bdev_req_complete(rq, r);
	}
}

static void *reaper(void *arg)
{
	struct pt_aio *a = arg;
	struct io_event ev[PT_REAP];
	struct timespec zero = { 0, 0 };

	for (;;) {
		uint64_t n;
		int got;

		if (read(a->efd, &n, sizeof(n)) < 0 && errno != EINTR &&
		    errno != EAGAIN)
			break;
		do {
			got = io_getevents(a->ctx, 0, PT_REAP, ev, &zero);
			for (int i = 0; i < got; i++) {
				__atomic_sub_fetch(&a->inkernel, 1,
						   __ATOMIC_ACQ_REL);
				finish(a, ev[i].data, (long)ev[i].res);
			}
		} while (got == PT_REAP);
		submit_overflow(a);
		if (__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE) &&
		    !__atomic_load_n(&a->inkernel, __ATOMIC_ACQUIRE))
			break;
	}
	return NULL;
}

struct pt_aio *pt_aio_new(struct bdev *b, int fd, struct bdev_err *e)
{
	struct pt_aio *a = calloc(1, sizeof(*a));
	int r;

	if (!a) {
		bdev_err_set(e, ENOMEM, "%s: out of memory", b->name);
		return NULL;
	}
	a->b = b;
	a->fd = fd;
	a->efd = eventfd(0, EFD_CLOEXEC);
	if (a->efd < 0) {
		bdev_err_set(e, errno, "%s: eventfd: %s", b->name, strerror(errno));
		free(a);
		return NULL;
	}
	r = io_setup(PT_DEPTH, &a->ctx);
	if (r < 0) {
		bdev_err_set(e, -r, "%s: io_setup: %s (see /proc/sys/fs/aio-max-nr)",
			     b->name, strerror(-r));
		close(a->efd);
		free(a);
		return NULL;
	}
	pthread_mutex_init(&a->mu, NULL);
	a->over_tail = &a->over;
	r = pthread_create(&a->reaper, NULL, reaper, a);
	if (r) {
		bdev_err_set(e, r, "%s: cannot start the completion thread: %s",
			     b->name, strerror(r));
		io_destroy(a->ctx);
		close(a->efd);
		pthread_mutex_destroy(&a->mu);
		free(a);
		return NULL;
	}
	return a;
}

void pt_aio_free(struct pt_aio *a)
{
	if (!a)
		return;
	__atomic_store_n(&a->stop, true, __ATOMIC_RELEASE);
	kick(a);
	pthread_join(a->reaper, NULL);
	io_destroy(a->ctx);
	close(a->efd);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
