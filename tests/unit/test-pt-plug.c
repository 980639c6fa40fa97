/* tsan-test: plugged submission (bdev_plug / bdev_unplug) on the
 * pass-through libaio engine with real files: requests one thread submits
 * while plugged reach the kernel together at the outermost unplug (one
 * io_submit a batch, more than one batch when over the engine's 64),
 * across two disks (two engines) interleaved, with nested plugs, writes
 * and reads; a plugged thread may drain a disk; every request completes
 * and the data equals the model.
 * Skipped when the file system refuses O_DIRECT (the engine is then not
 * used). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/bdev.h"
#include "passthrough/passthrough.h"

#define DISK (1u << 20)
#define BS 4096u
#define NREQ 150		/* > 2 batches of 64, < DISK / BS */

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, failed;
};

struct treq {
	struct bdev_req rq;
	struct iovec iov;
	struct waiter *w;
};

static void treq_done(struct bdev_req *rq)
{
	struct treq *t = rq->opaque;

	pthread_mutex_lock(&t->w->mu);
	t->w->done++;
	if (rq->status)
		t->w->failed++;
	pthread_cond_signal(&t->w->cv);
	pthread_mutex_unlock(&t->w->mu);
}

/* Wait (bounded: 20 s) until n requests completed. */
static void wait_done(struct waiter *w, int n)
{
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 20;
	pthread_mutex_lock(&w->mu);
	while (w->done < n)
		if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&w->mu);
	assert_int_equal(w->done, n);
	assert_int_equal(w->failed, 0);
}

struct fixture {
	char path[2][64];
	struct bdev *b[2];
	uint8_t *model[2];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	assert_non_null(f);
	for (int d = 0; d < 2; d++) {
		struct bdev_err e = { 0 };
		int fd;

		snprintf(f->path[d], sizeof(f->path[d]), "%s/ptplug.XXXXXX", dir);
		fd = mkstemp(f->path[d]);
		assert_true(fd >= 0);
		f->model[d] = malloc(DISK);
		assert_non_null(f->model[d]);
		for (uint32_t i = 0; i < DISK; i++)
			f->model[d][i] = (uint8_t)(i * 7 + d * 13 + (i >> 12));
		assert_int_equal(pwrite(fd, f->model[d], DISK, 0), (ssize_t)DISK);
		close(fd);
		f->b[d] = pt_open(f->path[d], 0, &e);
		if (!f->b[d]) {
			print_message("pt_open: %s\n", e.msg);
			unlink(f->path[d]);
			return -1;
		}
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (int d = 0; d < 2; d++) {
		if (f->b[d])
			bdev_close(f->b[d]);
		unlink(f->path[d]);
		free(f->model[d]);
	}
	free(f);
	return 0;
}

static void prep(struct treq *t, struct waiter *w, struct bdev_req **out,
		 enum bdev_op op, uint64_t off, uint8_t *buf)
{
	memset(t, 0, sizeof(*t));
	t->w = w;
	t->iov.iov_base = buf;
	t->iov.iov_len = BS;
	t->rq.op = op;
	t->rq.off = off;
	t->rq.len = BS;
	t->rq.iov = &t->iov;
	t->rq.iovcnt = 1;
	t->rq.done = treq_done;
	t->rq.opaque = t;
	*out = &t->rq;
}

/* Plugged writes then plugged reads, two disks interleaved, nested. */
static void test_plugged_batches(void **state)
{
	struct fixture *f = *state;
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	struct treq *t = calloc(NREQ, sizeof(*t));
	uint8_t *buf = aligned_alloc(BS, (size_t)NREQ * BS);
	unsigned x = 12345;
	uint64_t off[NREQ];
	int disk[NREQ];

	assert_non_null(t);
	assert_non_null(buf);
	/* writes: distinct blocks (NREQ < blocks a disk), new bytes */
	for (int i = 0; i < NREQ; i++) {
		disk[i] = i < NREQ / 2 ? 0 : i % 2;	/* a run on one, then alternating */
		off[i] = (uint64_t)i * BS;
		memset(buf + (size_t)i * BS, 0xa0 + i % 50, BS);
		memcpy(f->model[disk[i]] + off[i], buf + (size_t)i * BS, BS);
	}
	bdev_plug();
	bdev_plug();
	for (int i = 0; i < NREQ; i++) {
		struct bdev_req *rq;

		prep(&t[i], &w, &rq, BDEV_OP_WRITE, off[i], buf + (size_t)i * BS);
		bdev_submit(f->b[disk[i]], rq);
	}
	bdev_unplug();
	bdev_unplug();
	wait_done(&w, NREQ);

	/* reads at random blocks, plugged, compared with the model */
	memset(buf, 0, (size_t)NREQ * BS);
	w.done = 0;
	bdev_plug();
	for (int i = 0; i < NREQ; i++) {
		struct bdev_req *rq;

		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		off[i] = (uint64_t)(x % (DISK / BS)) * BS;
		prep(&t[i], &w, &rq, BDEV_OP_READ, off[i], buf + (size_t)i * BS);
		bdev_submit(f->b[disk[i]], rq);
	}
	bdev_unplug();
	wait_done(&w, NREQ);
	for (int i = 0; i < NREQ; i++)
		assert_memory_equal(buf + (size_t)i * BS, f->model[disk[i]] + off[i], BS);
	free(buf);
	free(t);
}

/* A plugged thread that drains a disk first submits what it holds (else
 * it would wait for itself): every request done when bdev_drain returns. */
static void test_drain_while_plugged(void **state)
{
	struct fixture *f = *state;
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	struct treq t[10];
	uint8_t *buf = aligned_alloc(BS, 10 * BS);

	assert_non_null(buf);
	bdev_plug();
	for (int i = 0; i < 10; i++) {
		struct bdev_req *rq;

		prep(&t[i], &w, &rq, BDEV_OP_READ, (uint64_t)(20 + i) * BS,
		     buf + (size_t)i * BS);
		bdev_submit(f->b[0], rq);
	}
	bdev_drain(f->b[0]);
	pthread_mutex_lock(&w.mu);
	assert_int_equal(w.done, 10);
	pthread_mutex_unlock(&w.mu);
	bdev_unplug();
	assert_int_equal(w.failed, 0);
	for (int i = 0; i < 10; i++)
		assert_memory_equal(buf + (size_t)i * BS, f->model[0] + (20 + i) * BS, BS);
	free(buf);
}

/* Unplugged submission is unchanged: each request goes straight in. */
static void test_unplugged(void **state)
{
	struct fixture *f = *state;
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	struct treq t;
	struct bdev_req *rq;
	uint8_t *buf = aligned_alloc(BS, BS);

	assert_non_null(buf);
	prep(&t, &w, &rq, BDEV_OP_READ, 8 * BS, buf);
	bdev_submit(f->b[1], rq);
	wait_done(&w, 1);
	assert_memory_equal(buf, f->model[1] + 8 * BS, BS);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plugged_batches),
		cmocka_unit_test(test_drain_while_plugged),
		cmocka_unit_test(test_unplugged),
	};
	int fd;
	char probe[64];
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	/* O_DIRECT refused here (tmpfs): the engine is not used */
	snprintf(probe, sizeof(probe), "%s/ptplug.XXXXXX", dir);
	fd = mkstemp(probe);
	if (fd < 0)
		return 77;
	close(fd);
	fd = open(probe, O_RDWR | O_DIRECT);
	unlink(probe);
	if (fd < 0) {
		printf("skipped: %s refuses O_DIRECT\n", dir);
		return 77;
	}
	close(fd);
	alarm(120);	/* a request held forever hangs: fail instead */
	return cmocka_run_group_tests(tests, setup, teardown);
}
