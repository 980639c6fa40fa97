/* vmm-mini's disks without a guest: the control requests' new members
 * (vmm_req_parse), and snapshots in phases (prepare, hold, commit,
 * release, finish, abort) on a switchable controller: which files each
 * phase makes or removes, what the LUN serves after it, and that a LUN in
 * the middle of one is busy for every other control operation. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/ut.h"
#include "vhd/vhd.h"
#include "vmbus/vmbus.h"
#include "vmm-mini/vmm.h"

#define MEM_BYTES (16u << 20)

static char tmpdir[256];

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* ---- vmm_req_parse ---- */

static void test_req_backup_members(void **state)
{
	struct vmm_req q;
	const char *why = NULL;

	(void)state;
	assert_int_equal(vmm_req_parse("{\"cmd\":\"backup-snapshot\",\"luns\":\"0,2,63\","
				       "\"freeze_timeout\":2500,\"require_app\":true}", &q, &why), 0);
	assert_string_equal(q.cmd, "backup-snapshot");
	assert_string_equal(q.luns, "0,2,63");
	assert_int_equal(q.freeze_timeout, 2500);
	assert_true(q.require_app);
	assert_int_equal(q.lun, -1);

	/* absent: every LUN, 10 s, crash consistency accepted */
	assert_int_equal(vmm_req_parse("{\"cmd\":\"backup-snapshot\"}", &q, &why), 0);
	assert_string_equal(q.luns, "");
	assert_int_equal(q.freeze_timeout, 10000);
	assert_false(q.require_app);
	assert_int_equal(vmm_req_parse("{\"require_app\":false,\"cmd\":\"x\",\"freeze_timeout\":0}",
				       &q, &why), 0);
	assert_false(q.require_app);
	assert_int_equal(q.freeze_timeout, 0);
}

static void test_req_bad_luns(void **state)
{
	static const char *bad[] = { "", ",", "0,", ",1", "64", "100", "1;2", "a", "0,,1",
				     "-1", " 1", "0001" };
	char line[200];
	struct vmm_req q;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;

		snprintf(line, sizeof(line), "{\"cmd\":\"backup-snapshot\",\"luns\":\"%s\"}", bad[i]);
		assert_int_equal(vmm_req_parse(line, &q, &why), -EINVAL);
		assert_non_null(why);
		assert_non_null(strstr(why, "luns"));
	}
	{
		const char *why = NULL;

		assert_int_equal(vmm_req_parse("{\"cmd\":\"x\",\"require_app\":1}", &q, &why), 0);
		assert_false(q.require_app);	/* a number is not a boolean */
		assert_int_equal(vmm_req_parse("{\"cmd\":\"x\",\"freeze_timeout\":\"5\"}", &q, &why), 0);
		assert_int_equal(q.freeze_timeout, 10000);
		assert_int_equal(vmm_req_parse("{\"cmd\":\"x\",\"freeze_timeout\":99999999999}",
					       &q, &why), -EINVAL);
	}
}

/* ---- a controller with one switchable dynamic VHD as LUN 0 ---- */

struct rig {
	struct vmbus_host *h;
	struct vmm_stor *st;
	char img[PATH_MAX], child[PATH_MAX];
};

static void rig_up(struct rig *R)
{
	struct vmm_stor_cfg cfg = { .switchable = true, .cpu = -1 };
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = 8u << 20 };
	struct bdev_err be = { 0 };
	struct vmm_stor_err e = { 0 };

	memset(R, 0, sizeof(*R));
	snprintf(R->img, sizeof(R->img), "%s/a.vhd", tmpdir);
	snprintf(R->child, sizeof(R->child), "%s/a-snap1.vhd", tmpdir);
	assert_int_equal(vhd_create(R->img, &co, &be), 0);
	assert_int_equal(vmbus_host_new(MEM_BYTES, &R->h), 0);
	cfg.mgr = vmbus_host_mgr(R->h);
	cfg.guest_mem = vmbus_host_guest_mem(R->h, &cfg.guest_bytes);
	assert_int_equal(vmm_stor_new(&cfg, &R->st), 0);
	assert_int_equal(vmm_stor_add(R->st, R->img, 0, false, &e), 0);
}

static void rig_down(struct rig *R)
{
	struct vmm_stor_err e = { 0 };

	assert_int_equal(vmm_stor_free(R->st, &e), 0);
	vmbus_host_free(R->h);
	unlink(R->child);
	unlink(R->img);
}

/* One control request through vmm_stor_control; the answer in out. */
static void ctl(struct rig *R, const char *line, char *out, size_t cap)
{
	struct vmm_req q;
	const char *why;

	assert_int_equal(vmm_req_parse(line, &q, &why), 0);
	assert_true(vmm_stor_control(R->st, &q, out, cap));
}

static void expect_snapshots(struct rig *R, int n, const char *top)
{
	char out[4096], want[PATH_MAX + 64];

	ctl(R, "{\"cmd\":\"disks\"}", out, sizeof(out));
	snprintf(want, sizeof(want), "\"top\":\"%s\",\"snapshots\":%d", top, n);
	if (!strstr(out, want))
		fail_msg("disks: %s (wanted %s)", out, want);
}

/* Every other operation on a busy LUN is refused with EBUSY, naming it. */
static void expect_busy(struct rig *R, struct vmm_stor_snap *p0)
{
	struct vmm_stor_snap *p = NULL;
	struct vmm_stor_err e = { 0 };
	char out[4096], *a, *b;

	assert_int_equal(vmm_stor_snap_prepare(R->st, 0, &p, &e), -EBUSY);
	assert_null(p);
	assert_non_null(strstr(e.msg, "LUN 0 is busy"));
	assert_int_equal(vmm_stor_snapshot(R->st, 0, &a, &b, &e), -EBUSY);
	assert_int_equal(vmm_stor_merge(R->st, 0, &a, &b, &e), -EBUSY);
	assert_int_equal(vmm_stor_remove(R->st, 0, &e), -EBUSY);
	ctl(R, "{\"cmd\":\"merge\",\"lun\":0}", out, sizeof(out));
	assert_non_null(strstr(out, "\"error\":\"LUN 0 is busy"));
	ctl(R, "{\"cmd\":\"disk-remove\",\"lun\":0}", out, sizeof(out));
	assert_non_null(strstr(out, "\"error\":\"LUN 0 is busy"));
	(void)p0;
}

static void test_snap_phases(void **state)
{
	struct vmm_stor_snap_info info;
	struct vmm_stor_snap *p = NULL;
	struct vmm_stor_err e = { 0 };
	struct rig R;
	char out[4096], *a, *b, *img_abs;

	(void)state;
	rig_up(&R);
	img_abs = realpath(R.img, NULL);
	assert_non_null(img_abs);
	assert_int_equal(vmm_stor_snap_prepare(R.st, 0, &p, &e), 0);
	assert_true(exists(R.child));	/* made before the freeze window */
	expect_snapshots(&R, 0, R.img);	/* not served yet */
	expect_busy(&R, p);
	assert_int_equal(vmm_stor_snap_hold(p, &e), 0);
	expect_busy(&R, p);
	assert_int_equal(vmm_stor_snap_commit(p, &e), 0);
	vmm_stor_snap_release(p);
	expect_snapshots(&R, 1, R.child);
	expect_busy(&R, p);
	assert_int_equal(vmm_stor_snap_finish(p, &info, &e), 0);
	assert_int_equal(info.lun, 0);
	assert_string_equal(info.frozen, img_abs);
	assert_int_equal(info.child[0], '/');
	assert_non_null(strstr(info.child, "/a-snap1.vhd"));
	assert_string_equal(info.ctk, "");	/* untracked */
	/* not busy any more: the merge folds it back */
	ctl(&R, "{\"cmd\":\"merge\",\"lun\":0}", out, sizeof(out));
	assert_non_null(strstr(out, "\"ok\":true"));
	assert_false(exists(R.child));
	expect_snapshots(&R, 0, R.img);
	/* the one-step snapshot is the same phases */
	assert_int_equal(vmm_stor_snapshot(R.st, 0, &a, &b, &e), 0);
	assert_string_equal(a, R.img);
	assert_string_equal(b, R.child);
	free(a);
	free(b);
	expect_snapshots(&R, 1, R.child);
	free(img_abs);
	rig_down(&R);
}

/* Abort at each point before the release: nothing stays switched, the
 * child file goes, the LUN is free again. */
static void test_snap_abort(void **state)
{
	struct vmm_stor_snap *p = NULL;
	struct vmm_stor_err e = { 0 };
	struct rig R;

	(void)state;
	rig_up(&R);
	for (int stage = 0; stage < 3; stage++) {
		assert_int_equal(vmm_stor_snap_prepare(R.st, 0, &p, &e), 0);
		assert_true(exists(R.child));
		if (stage >= 1)
			assert_int_equal(vmm_stor_snap_hold(p, &e), 0);
		if (stage >= 2)
			assert_int_equal(vmm_stor_snap_commit(p, &e), 0);
		vmm_stor_snap_abort(p);
		assert_false(exists(R.child));
		expect_snapshots(&R, 0, R.img);
	}
	/* hold, release without commit: finish refuses, cleans up like abort */
	{
		struct vmm_stor_snap_info info;

		assert_int_equal(vmm_stor_snap_prepare(R.st, 0, &p, &e), 0);
		assert_int_equal(vmm_stor_snap_hold(p, &e), 0);
		vmm_stor_snap_release(p);
		assert_int_equal(vmm_stor_snap_finish(p, &info, &e), -EINVAL);
		assert_false(exists(R.child));
		expect_snapshots(&R, 0, R.img);
	}
	/* committed and released, then aborted: the snapshot stays, mergeable */
	assert_int_equal(vmm_stor_snap_prepare(R.st, 0, &p, &e), 0);
	assert_int_equal(vmm_stor_snap_hold(p, &e), 0);
	assert_int_equal(vmm_stor_snap_commit(p, &e), 0);
	vmm_stor_snap_release(p);
	vmm_stor_snap_abort(p);
	assert_true(exists(R.child));
	expect_snapshots(&R, 1, R.child);
	{
		char *a, *b;

		assert_int_equal(vmm_stor_merge(R.st, 0, &a, &b, &e), 0);
		free(a);
		free(b);
	}
	assert_false(exists(R.child));
	rig_down(&R);
}

/* A LUN that cannot snapshot says why, and leaves no file. */
static void test_snap_refused(void **state)
{
	struct vmm_stor_snap *p = NULL;
	struct vmm_stor_err e = { 0 };
	struct rig R;

	(void)state;
	rig_up(&R);
	assert_int_equal(vmm_stor_snap_prepare(R.st, 5, &p, &e), -ENOENT);
	assert_null(p);
	assert_non_null(strstr(e.msg, "no LUN 5"));
	assert_int_equal(vmm_stor_add(R.st, R.img, 1, true, &e), 1);
	assert_int_equal(vmm_stor_snap_prepare(R.st, 1, &p, &e), -ENOTSUP);
	assert_null(p);
	assert_false(exists(R.child));
	rig_down(&R);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s/vmm-stor-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	ut_rmtree(tmpdir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_req_backup_members),
		cmocka_unit_test(test_req_bad_luns),
		cmocka_unit_test(test_snap_phases),
		cmocka_unit_test(test_snap_abort),
		cmocka_unit_test(test_snap_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
