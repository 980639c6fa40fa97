/* common/pool: every started worker runs once with its own index; the
 * first pool_fail wins and stops the others; the calling thread ticks
 * while workers run (a tick can stop them, as a cancel does); when
 * pthread_create fails the pool runs with fewer threads, and with none it
 * is an error.  tsan-test */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/pool.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

struct job {
	struct pool *p;
	uint64_t next, total, done;   /* atomics */
	uint64_t fail_at;             /* item whose worker fails; 0: none */
	int seen[POOL_MAX];           /* atomics: runs per worker index */
	int ticks;                    /* atomic */
	int wait_ticks;               /* workers wait for this many ticks */
	int tick_saw_idle;            /* a tick with no worker running */
	int timed_out;                /* a bounded wait gave up */
};

static void nap(void)
{
	struct timespec d = { 0, 1000000 };

	nanosleep(&d, NULL);
}

static void work(void *arg, int index)
{
	struct job *j = arg;

	__atomic_fetch_add(&j->seen[index], 1, __ATOMIC_RELAXED);
	for (int n = 0; j->wait_ticks &&
	     __atomic_load_n(&j->ticks, __ATOMIC_RELAXED) < j->wait_ticks &&
	     !pool_stopping(j->p); n++) {
		if (n == 20000) {      /* 20 s: the ticks never came */
			__atomic_store_n(&j->timed_out, 1, __ATOMIC_RELAXED);
			return;
		}
		nap();
	}
	while (!pool_stopping(j->p)) {
		uint64_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		struct bdev_err e;

		if (i >= j->total)
			break;
		__atomic_fetch_add(&j->done, 1, __ATOMIC_RELAXED);
		if (j->fail_at && i == j->fail_at) {
			bdev_err_set(&e, EIO, "item %llu", (unsigned long long)i);
			pool_fail(j->p, -EIO, &e);
		}
	}
	/* Errors after the first one are not reported. */
	if (j->fail_at) {
		struct bdev_err e;

		bdev_err_set(&e, EXDEV, "late error of worker %d", index);
		pool_fail(j->p, -EXDEV, &e);
	}
}

static void test_all_workers_run(void **state)
{
	struct pool p;
	struct job j = { .p = &p, .total = 100000 };
	struct bdev_err e = { 0 };

	(void)state;
	assert_int_equal(pool_start(&p, 8, work, &j, &e), 8);
	assert_int_equal(pool_wait(&p, 0, NULL, NULL, &e), 0);
	assert_int_equal(j.done, j.total);
	for (int i = 0; i < POOL_MAX; i++)
		assert_int_equal(j.seen[i], i < 8 ? 1 : 0);
}

static void test_threads_clamped(void **state)
{
	struct pool p;
	struct job j = { .p = &p, .total = 10 };

	(void)state;
	assert_int_equal(pool_start(&p, 0, work, &j, NULL), 1);
	assert_int_equal(pool_wait(&p, 0, NULL, NULL, NULL), 0);
	assert_int_equal(j.seen[0], 1);
	assert_int_equal(j.done, 10);
	memset(&j, 0, sizeof(j));
	j.p = &p;
	assert_int_equal(pool_start(&p, POOL_MAX + 10, work, &j, NULL), POOL_MAX);
	assert_int_equal(pool_wait(&p, 0, NULL, NULL, NULL), 0);
	for (int i = 0; i < POOL_MAX; i++)
		assert_int_equal(j.seen[i], 1);
}

static void test_first_error_stops(void **state)
{
	struct pool p;
	struct job j = { .p = &p, .total = UINT64_MAX, .fail_at = 100 };
	struct bdev_err e = { 0 };

	(void)state;
	assert_int_equal(pool_start(&p, 4, work, &j, &e), 4);
	/* Without the stop the workers would run for ever. */
	assert_int_equal(pool_wait(&p, 0, NULL, NULL, &e), -EIO);
	assert_int_equal(e.code, EIO);
	assert_string_equal(e.msg, "item 100");
	assert_true(j.done > 100);
}

static void count_tick(struct pool *p, void *arg)
{
	struct job *j = arg;

	if (!pool_running(p))
		j->tick_saw_idle = 1;
	__atomic_fetch_add(&j->ticks, 1, __ATOMIC_RELAXED);
}

static void test_ticks_while_running(void **state)
{
	struct pool p;
	struct job j = { .p = &p, .total = 1000, .wait_ticks = 3 };

	(void)state;
	assert_int_equal(pool_start(&p, 2, work, &j, NULL), 2);
	assert_int_equal(pool_wait(&p, 5, count_tick, &j, NULL), 0);
	assert_false(j.timed_out);
	assert_true(j.ticks >= 3);
	assert_false(j.tick_saw_idle);
	assert_int_equal(j.done, 1000);
}

static void cancel_tick(struct pool *p, void *arg)
{
	struct job *j = arg;
	struct bdev_err e;

	if (__atomic_add_fetch(&j->ticks, 1, __ATOMIC_RELAXED) == 2) {
		bdev_err_set(&e, ECANCELED, "interrupted");
		pool_fail(p, -ECANCELED, &e);
	}
}

static void test_tick_cancels(void **state)
{
	struct pool p;
	/* The workers wait for ticks that come only until the cancel. */
	struct job j = { .p = &p, .total = 1000, .wait_ticks = 1000000 };
	struct bdev_err e = { 0 };

	(void)state;
	assert_int_equal(pool_start(&p, 3, work, &j, &e), 3);
	assert_int_equal(pool_wait(&p, 5, cancel_tick, &j, &e), -ECANCELED);
	assert_false(j.timed_out);
	assert_string_equal(e.msg, "interrupted");
	assert_true(j.ticks >= 2);
	assert_int_equal(j.done, 0);
}

/* In a child whose address space is capped at what it maps now plus
 * extra bytes, start 64 workers: returns the count started (>= 0, or
 * -errno as the exit status 100 + errno), after checking each ran once. */
static int limited_start(unsigned long extra)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (!pid) {
		struct pool p;
		struct job j = { .p = &p, .total = 100 };
		struct bdev_err e = { 0 };
		unsigned long kb = 0;
		char line[256];
		FILE *f = fopen("/proc/self/status", "r");
		struct rlimit rl;
		int n;

		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "VmSize: %lu kB", &kb) == 1)
				break;
		if (!kb)
			_exit(99);
		fclose(f);
		rl.rlim_cur = rl.rlim_max = kb * 1024 + extra;
		if (setrlimit(RLIMIT_AS, &rl))
			_exit(98);
		n = pool_start(&p, 64, work, &j, &e);
		if (n < 0)
			_exit(e.code == EAGAIN &&
			      !strcmp(e.msg, "cannot start worker threads") ? 100 + EAGAIN : 97);
		if (pool_wait(&p, 0, NULL, NULL, &e) || j.done != 100)
			_exit(96);
		for (int i = 0; i < POOL_MAX; i++)
			if (j.seen[i] != (i < n))
				_exit(95);
		_exit(n);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void test_fewer_threads(void **state)
{
	int n;

	(void)state;
	if (SANITIZED)
		skip();    /* the sanitizers' own mappings need the room */
	/* Room for a few 8 MiB stacks (plus any cached ones): some start. */
	n = limited_start(20ul << 20);
	assert_true(n >= 1 && n < 64);
	/* No room: none starts, and that is the error. */
	assert_int_equal(limited_start(0), 100 + EAGAIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fewer_threads),
		cmocka_unit_test(test_all_workers_run),
		cmocka_unit_test(test_threads_clamped),
		cmocka_unit_test(test_first_error_stops),
		cmocka_unit_test(test_ticks_while_running),
		cmocka_unit_test(test_tick_cancels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
