/* vmm-mini's disks without a guest: the control requests' new members
 * (vmm_req_parse), and snapshots in phases (prepare, hold, commit,
 * release, finish, abort) on a switchable controller: which files each
 * phase makes or removes, what the LUN serves after it, and that a LUN in
 * the middle of one is busy for every other control operation.  With a
 * guest process writing through the rings while a live backup's snapshot
 * freezes the tracking: the frozen tracking file marks exactly the
 * granules the frozen image got, and the live tracker marks with the next
 * epoch exactly those written after. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backup/bkp-int.h"
#include "tests/unit/storvsc.h"
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
	char img[PATH_MAX], child[PATH_MAX], ctk[PATH_MAX], frozen_ctk[PATH_MAX];
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
	snprintf(R->ctk, sizeof(R->ctk), "%s/a.vhd.ctk", tmpdir);
	snprintf(R->frozen_ctk, sizeof(R->frozen_ctk), "%s/a-snap1.vhd.frozen.ctk", tmpdir);
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
	unlink(R->frozen_ctk);
	unlink(R->ctk);
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
	/* the LUN had no IMAGE.ctk: tracked from this first live backup on */
	assert_true(exists(R.ctk));
	ctl(&R, "{\"cmd\":\"disks\"}", out, sizeof(out));
	assert_non_null(strstr(out, "\"tracked\":true"));
	assert_true(exists(R.frozen_ctk));
	assert_int_equal(info.ctk[0], '/');
	assert_non_null(strstr(info.ctk, "/a-snap1.vhd.frozen.ctk"));
	/* valid for a backup of the frozen image while the LUN runs */
	{
		struct vhd_open_opts oo = { .flags = VHD_O_RDONLY };
		struct bdev_err be = { 0 };
		struct bdev *src = vhd_open(info.frozen, &oo, &be);
		struct bkp_ctk_session *cs;
		char why[300] = "";

		assert_non_null(src);
		cs = bkp_ctk_begin_frozen(src, info.frozen, info.ctk, why, sizeof(why));
		if (!cs)
			fail_msg("frozen tracking file: %s", why);
		assert_int_equal(bkp_ctk_epoch(cs), 1);	/* a new generation's first */
		assert_true(bkp_ctk_end(cs));
		bdev_close(src);
	}
	/* not busy any more: the merge folds it back; the frozen tracking
	 * file goes with the child */
	ctl(&R, "{\"cmd\":\"merge\",\"lun\":0}", out, sizeof(out));
	assert_non_null(strstr(out, "\"ok\":true"));
	assert_false(exists(R.child));
	assert_false(exists(R.frozen_ctk));
	expect_snapshots(&R, 0, R.img);
	/* the one-step snapshot is the same phases */
	assert_int_equal(vmm_stor_snapshot(R.st, 0, &a, &b, &e), 0);
	assert_string_equal(a, R.img);
	assert_string_equal(b, R.child);
	free(a);
	free(b);
	expect_snapshots(&R, 1, R.child);
	assert_false(exists(R.frozen_ctk));	/* not a live backup's */
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

/* ---- a guest writing through the rings during a live backup's snapshot ---- */

#define IO_DISK (64u << 20)
#define IO_G (4u << 20)			/* the tracking granule */
#define IO_NG (IO_DISK / IO_G)
#define IO_PER_G 32u			/* 4 KiB writes to each granule, in order */
#define IO_QD 8

struct io_host {
	struct rig R;
	pthread_t thr;
	int stop;			/* atomic */
	char sock[300];
	pid_t pid;
	int go[2], rep[2];		/* parent -> guest, guest -> parent */
};

static void *io_host_thread(void *arg)
{
	struct io_host *H = arg;

	while (!__atomic_load_n(&H->stop, __ATOMIC_ACQUIRE)) {
		if (vmbus_host_accept(H->R.h, 50))
			continue;
		while (!__atomic_load_n(&H->stop, __ATOMIC_ACQUIRE) &&
		       vmbus_host_run(H->R.h, 20) == 0)
			;
	}
	return NULL;
}

/* The guest: attach, 'A'; write granule after granule (4 KiB each, every
 * byte nonzero and unique to the write) at queue depth 8; 'W' after the
 * first 64 writes, 'D' when all are done; exit status says what failed. */
static void io_guest(struct io_host *H)
{
	struct svc_req reqs[IO_QD];
	uint8_t tur[6] = { 0 }, *bufs[IO_QD];
	unsigned next = 0, done = 0, total = IO_NG * IO_PER_G;
	struct svc *c;
	int busy[IO_QD] = { 0 };

	close(H->go[1]);
	close(H->rep[0]);
	if (svc_attach(H->sock, &(struct svc_opts){ 0 }, &c))
		_exit(3);
	for (int i = 0; i < 5; i++) {	/* the unit attention of a new LUN */
		struct svc_req r;

		if (svc_cmd(c, 0, tur, 6, VSP_DATA_NONE, NULL, 0, &r))
			_exit(4);
		if (r.srb_status == VSP_SRB_SUCCESS)
			break;
	}
	for (int i = 0; i < IO_QD; i++)
		bufs[i] = svc_alloc(c, 4096);
	if (write(H->rep[1], "A", 1) != 1)
		_exit(5);
	while (done < total) {
		for (int i = 0; i < IO_QD && next < total; i++) {
			uint64_t off = (uint64_t)(next / IO_PER_G) * IO_G +
				       (uint64_t)(next % IO_PER_G) * 4096, lba = off / 512;
			struct svc_req *r = &reqs[i];

			if (busy[i])
				continue;
			memset(r, 0, sizeof(*r));
			memset(bufs[i], 0, 4096);
			for (size_t k = 0; k < 4096; k += 4) {
				uint32_t v = (next + 1) | 0x80000000u;

				memcpy(bufs[i] + k, &v, 4);
			}
			r->cdb[0] = 0x8A;	/* WRITE(16) */
			for (int k = 0; k < 8; k++)
				r->cdb[2 + k] = (uint8_t)(lba >> (56 - 8 * k));
			r->cdb[13] = 8;		/* 8 blocks of 512 */
			r->cdb_len = 16;
			r->data_in = VSP_DATA_OUT;
			r->buf = bufs[i];
			r->len = 4096;
			if (svc_submit(c, 0, r))
				break;
			busy[i] = 1;
			next++;
		}
		if (svc_poll(c, 10000) <= 0)
			_exit(6);
		for (int i = 0; i < IO_QD; i++) {
			if (!busy[i] || !reqs[i].done)
				continue;
			if (reqs[i].srb_status != VSP_SRB_SUCCESS)
				_exit(7);
			busy[i] = 0;
			if (++done == 64 && write(H->rep[1], "W", 1) != 1)
				_exit(5);
		}
	}
	if (write(H->rep[1], "D", 1) != 1)
		_exit(5);
	{
		char x;

		(void)!read(H->go[0], &x, 1);	/* detach when told */
	}
	svc_detach(c);
	_exit(0);
}

static char io_wait(struct io_host *H)
{
	struct pollfd p = { .fd = H->rep[0], .events = POLLIN };
	char c = 0;

	assert_int_equal(poll(&p, 1, 30000), 1);
	assert_int_equal(read(H->rep[0], &c, 1), 1);
	return c;
}

/* The 4 MiB granule g of the disk b. */
static void read_granule(struct bdev *b, unsigned g, uint8_t *buf)
{
	assert_int_equal(bdev_read(b, buf, (uint64_t)g * IO_G, IO_G), 0);
}

static bool all_zero(const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i])
			return false;
	return true;
}

static void test_live_freeze_under_io(void **state)
{
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = IO_DISK };
	struct vhd_open_opts ro = { .flags = VHD_O_RDONLY };
	struct vmm_stor_cfg cfg = { .switchable = true, .cpu = -1 };
	struct vmm_stor_snap_info info;
	struct vmm_stor_snap *p = NULL;
	struct vmm_stor_err e = { 0 };
	struct bdev_err be = { 0 };
	struct bkp_ctk_session *cs;
	struct io_host H;
	struct bdev *frozen, *child;
	uint8_t *a, *b;
	char why[300] = "", gen[33];
	unsigned nfrozen = 0, nafter = 0;
	uint32_t epoch;
	int status;
	bool valid;

	(void)state;
	memset(&H, 0, sizeof(H));
	snprintf(H.R.img, sizeof(H.R.img), "%s/io.vhd", tmpdir);
	snprintf(H.R.ctk, sizeof(H.R.ctk), "%s/io.vhd.ctk", tmpdir);
	snprintf(H.R.child, sizeof(H.R.child), "%s/io-snap1.vhd", tmpdir);
	snprintf(H.R.frozen_ctk, sizeof(H.R.frozen_ctk), "%s/io-snap1.vhd.frozen.ctk", tmpdir);
	snprintf(H.sock, sizeof(H.sock), "%s/vmbus.sock", tmpdir);
	assert_int_equal(vhd_create(H.R.img, &co, &be), 0);
	/* tracked from the start: a first backup made IMAGE.ctk */
	frozen = vhd_open(H.R.img, &ro, &be);
	assert_non_null(frozen);
	cs = bkp_ctk_begin(frozen, H.R.img, &valid, why, sizeof(why));
	assert_non_null(cs);
	assert_true(bkp_ctk_end(cs));
	bdev_close(frozen);

	assert_int_equal(vmbus_host_new(MEM_BYTES, &H.R.h), 0);
	cfg.mgr = vmbus_host_mgr(H.R.h);
	cfg.guest_mem = vmbus_host_guest_mem(H.R.h, &cfg.guest_bytes);
	assert_int_equal(vmm_stor_new(&cfg, &H.R.st), 0);
	assert_int_equal(vmm_stor_add(H.R.st, H.R.img, 0, false, &e), 0);
	assert_int_equal(vmbus_host_listen(H.R.h, H.sock), 0);
	assert_int_equal(pipe(H.go), 0);
	assert_int_equal(pipe(H.rep), 0);
	H.pid = fork();
	assert_true(H.pid >= 0);
	if (H.pid == 0)
		io_guest(&H);
	close(H.go[0]);
	close(H.rep[1]);
	assert_int_equal(pthread_create(&H.thr, NULL, io_host_thread, &H), 0);
	assert_int_equal(io_wait(&H), 'A');
	assert_int_equal(io_wait(&H), 'W');

	/* the live backup's snapshot while the guest writes */
	assert_int_equal(vmm_stor_snap_prepare(H.R.st, 0, &p, &e), 0);
	assert_int_equal(vmm_stor_snap_hold(p, &e), 0);
	assert_int_equal(vmm_stor_snap_commit(p, &e), 0);
	vmm_stor_snap_release(p);
	if (vmm_stor_snap_finish(p, &info, &e))
		fail_msg("finish: %s", e.msg);
	assert_int_not_equal(info.ctk[0], '\0');
	assert_int_equal(io_wait(&H), 'D');
	assert_int_equal(vmm_stor_flush(H.R.st, &e), 0);	/* the child's metadata */

	/* the frozen file marks exactly the granules the frozen image got */
	frozen = vhd_open(info.frozen, &ro, &be);
	assert_non_null(frozen);
	cs = bkp_ctk_begin_frozen(frozen, info.frozen, info.ctk, why, sizeof(why));
	if (!cs)
		fail_msg("frozen tracking file: %s", why);
	epoch = bkp_ctk_epoch(cs);
	bkp_ctk_ids(cs, gen, &(uint32_t){ 0 });
	a = malloc(IO_G);
	b = malloc(IO_G);
	assert_non_null(a);
	assert_non_null(b);
	child = vhd_open(info.child, &ro, &be);
	assert_non_null(child);
	bool after[IO_NG];

	for (unsigned g = 0; g < IO_NG; g++) {
		bool data, marked = bkp_ctk_changed(cs, 1, (uint64_t)g * IO_G, IO_G);

		read_granule(frozen, g, a);
		read_granule(child, g, b);
		data = !all_zero(a, IO_G);
		if (data != marked)
			fail_msg("granule %u: data in the frozen image %d, frozen mark %d", g, data,
				 marked);
		after[g] = memcmp(a, b, IO_G) != 0;
		nfrozen += data;
		nafter += after[g];
	}
	assert_true(bkp_ctk_end(cs));
	bdev_close(child);
	bdev_close(frozen);
	print_message("%u granules in the frozen image, %u written after the freeze\n",
		      nfrozen, nafter);

	/* the guest goes, the VMM closes: the live file marks the writes after
	 * the freeze with the next epoch, and only those */
	assert_int_equal(write(H.go[1], "x", 1), 1);
	assert_int_equal(waitpid(H.pid, &status, 0), H.pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	__atomic_store_n(&H.stop, 1, __ATOMIC_RELEASE);
	pthread_join(H.thr, NULL);
	assert_int_equal(vmm_stor_free(H.R.st, &e), 0);
	vmbus_host_free(H.R.h);
	frozen = vhd_open(H.R.img, &ro, &be);
	assert_non_null(frozen);
	cs = bkp_ctk_begin(frozen, H.R.img, &valid, why, sizeof(why));
	assert_non_null(cs);
	if (!valid)
		fail_msg("the image's tracking after the VM: %s", why);
	{
		char gen2[33];
		uint32_t since;

		bkp_ctk_ids(cs, gen2, &since);
		assert_string_equal(gen, gen2);
	}
	for (unsigned g = 0; g < IO_NG; g++)
		if (bkp_ctk_changed(cs, epoch + 1, (uint64_t)g * IO_G, IO_G) != after[g])
			fail_msg("granule %u: written after the freeze %d, but not marked so", g,
				 after[g]);
	bkp_ctk_abort(cs);
	bdev_close(frozen);
	free(a);
	free(b);
	close(H.go[1]);
	close(H.rep[0]);
	unlink(H.sock);
	unlink(H.R.frozen_ctk);
	unlink(H.R.child);
	unlink(H.R.ctk);
	unlink(H.R.img);
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
		cmocka_unit_test(test_live_freeze_under_io),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
