/* Image locks: writers and readers of other processes refuse each other
 * (a forked child plays the other process); opens inside one process share
 * the process's lock (a reader beside its own writer, as a VMM opening a
 * snapshot child of the disk it writes), a second writer in the process is
 * refused, and when the writer closes while readers remain the lock turns
 * shared; VHD_O_FORCE_SHARE reads without a lock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ut.h"

#include "common/bdev.h"
#include "vhd/vhd.h"

static char dir[64];

static int setup(void **state)
{
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = 4u << 20 };
	struct bdev_err e = { 0 };

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test-vhd-lock.XXXXXX");
	if (!mkdtemp(dir) || vhd_create(ut_path(dir, "a.vhd"), &co, &e))
		return -1;
	co.type = VHD_TYPE_DIFF;
	co.parent = ut_path(dir, "a.vhd");
	return vhd_create(ut_path(dir, "c.vhd"), &co, &e) ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	ut_rmtree(dir);
	return 0;
}

static struct bdev *open_as(const char *name, unsigned flags, int *code)
{
	struct vhd_open_opts o = { .flags = flags };
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(ut_path(dir, name), &o, &e);

	*code = b ? 0 : e.code;
	return b;
}

/* In another process: 0 when the open works, else its error code. */
static int other_process(const char *name, unsigned flags)
{
	pid_t pid = fork();
	int st, code;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct bdev *b = open_as(name, flags, &code);

		if (b)
			bdev_close(b);
		_exit(code & 0xff);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WEXITSTATUS(st);
}

static void test_processes_refuse_each_other(void **state)
{
	struct bdev *w, *r;
	int code;

	(void)state;
	w = open_as("a.vhd", 0, &code);
	assert_non_null(w);
	assert_int_equal(other_process("a.vhd", 0), EBUSY);
	assert_int_equal(other_process("a.vhd", VHD_O_RDONLY), EBUSY);
	assert_int_equal(other_process("a.vhd", VHD_O_RDONLY | VHD_O_FORCE_SHARE), 0);
	bdev_close(w);
	r = open_as("a.vhd", VHD_O_RDONLY, &code);
	assert_non_null(r);
	assert_int_equal(other_process("a.vhd", VHD_O_RDONLY), 0);
	assert_int_equal(other_process("a.vhd", 0), EBUSY);
	/* A child read-write holds its parent as a reader. */
	bdev_close(r);
	w = open_as("c.vhd", 0, &code);
	assert_non_null(w);
	assert_int_equal(other_process("a.vhd", 0), EBUSY);
	assert_int_equal(other_process("a.vhd", VHD_O_RDONLY), 0);
	bdev_close(w);
	assert_int_equal(other_process("a.vhd", 0), 0);
}

static void test_one_process_shares(void **state)
{
	struct bdev *w, *r, *c;
	int code;

	(void)state;
	w = open_as("a.vhd", 0, &code);
	assert_non_null(w);
	/* Its own reader shares the writer's lock (a snapshot child opened
	 * before the old chain is closed). */
	r = open_as("a.vhd", VHD_O_RDONLY, &code);
	assert_non_null(r);
	c = open_as("c.vhd", 0, &code);
	assert_non_null(c);
	/* A second writer in the process is refused. */
	assert_null(open_as("a.vhd", 0, &code));
	assert_int_equal(code, EBUSY);
	/* The writer goes: the lock turns shared, readers elsewhere may
	 * come, writers may not. */
	bdev_close(w);
	assert_int_equal(other_process("a.vhd", VHD_O_RDONLY), 0);
	assert_int_equal(other_process("a.vhd", 0), EBUSY);
	bdev_close(r);
	assert_int_equal(other_process("a.vhd", 0), EBUSY);   /* c's parent */
	bdev_close(c);
	/* Gone with the last open. */
	assert_int_equal(other_process("a.vhd", 0), 0);
	/* A writer where the process only reads: taken when nobody else
	 * reads. */
	r = open_as("a.vhd", VHD_O_RDONLY, &code);
	w = open_as("a.vhd", 0, &code);
	assert_non_null(w);
	assert_int_equal(other_process("a.vhd", VHD_O_RDONLY), EBUSY);
	bdev_close(w);
	assert_int_equal(other_process("a.vhd", VHD_O_RDONLY), 0);
	bdev_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_processes_refuse_each_other, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_process_shares, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
