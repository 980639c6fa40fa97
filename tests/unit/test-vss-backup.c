/* The VSS coordinator end to end: the parent is the host (vmbus transport
 * + the VSS channel + the coordinator), a forked child is the guest
 * (tests/unit/vssguest.c) answering as Linux does, or refusing, or never
 * answering, or without the service, or misbehaving.  Disks are dynamic
 * VHDs behind a switch layer and a test gate (the drain); snapshots switch
 * them to differencing children created beside them.
 * tsan-test */
#include <errno.h>
#include <fcntl.h>
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

#include "common/bdev.h"
#include "tests/unit/ut.h"
#include "tests/unit/vssguest.h"
#include "vhd/vhd.h"
#include "vmbus/vmbus.h"
#include "vss/vss.h"

#define MEM_BYTES (16u << 20)
#define DISK_BYTES (8u << 20)
#define BLK 4096u
#define NBLK (DISK_BYTES / BLK)

/* ---- a gate layer: the VMM's drain (hold new I/O, wait for in-flight) ---- */

struct gate {
	struct bdev b;		/* must be first */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool held;
	int active;
};

static struct bdev *gate_enter(struct bdev *b)
{
	struct gate *g = (struct gate *)b;

	pthread_mutex_lock(&g->mu);
	while (g->held)
		pthread_cond_wait(&g->cv, &g->mu);
	g->active++;
	pthread_mutex_unlock(&g->mu);
	return b->lower;
}

static void gate_leave(struct bdev *b)
{
	struct gate *g = (struct gate *)b;

	pthread_mutex_lock(&g->mu);
	if (--g->active == 0)
		pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static int g_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	int r = bdev_read(gate_enter(b), buf, off, len);

	gate_leave(b);
	return r;
}

static int g_write(struct bdev *b, const void *buf, uint64_t off, size_t len, unsigned fl)
{
	int r = bdev_write(gate_enter(b), buf, off, len, fl);

	gate_leave(b);
	return r;
}

static int g_flush(struct bdev *b)
{
	int r = bdev_flush(gate_enter(b));

	gate_leave(b);
	return r;
}

static void g_close(struct bdev *b)
{
	struct gate *g = (struct gate *)b;

	bdev_close(b->lower);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	bdev_fini(b);
	free(g);
}

static const struct bdev_ops gate_ops = {
	.kind = "test-gate", .read = g_read, .write = g_write, .flush = g_flush,
	.close = g_close,
};

static struct bdev *gate_open(struct bdev *lower)
{
	struct gate *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	assert_int_equal(bdev_layer_init(&g->b, &gate_ops, NULL, lower, true), 0);
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	return &g->b;
}

static void gate_hold(struct bdev *b, bool hold)
{
	struct gate *g = (struct gate *)b;

	pthread_mutex_lock(&g->mu);
	g->held = hold;
	while (hold && g->active)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* ---- disks and the VMM's snapshot callbacks ---- */

#define MAX_DISKS 3

struct tdisk {
	char path[256], child[256];
	struct bdev *sw, *top;	/* switch over the VHD; gate over the switch */
	bool prepared, committed;
};

struct tset {
	int n;
	struct tdisk d[MAX_DISKS];
	char log[128];		/* call order: p0 p1 D c0 c1 R a0 ... */
	int fail_commit;	/* -1: none */
};

static char tmpdir[64];

static void logc(struct tset *t, char c, int i)
{
	size_t n = strlen(t->log);

	if (n + 3 < sizeof(t->log)) {
		t->log[n] = c;
		t->log[n + 1] = i < 0 ? '.' : (char)('0' + i);
		t->log[n + 2] = 0;
	}
}

static int cb_prepare(void *opaque, unsigned i)
{
	struct tset *t = opaque;
	struct tdisk *d = &t->d[i];
	struct vhd_create_opts co = { .type = VHD_TYPE_DIFF, .parent = d->path };
	struct bdev_err e = { 0 };

	logc(t, 'p', (int)i);
	int r = vhd_create(d->child, &co, &e);
	if (!r)
		d->prepared = true;
	return r;
}

static int cb_drain(void *opaque, unsigned n)
{
	struct tset *t = opaque;

	logc(t, 'D', -1);
	for (unsigned i = 0; i < n; i++)
		gate_hold(t->d[i].top, true);
	return 0;
}

static int cb_commit(void *opaque, unsigned i)
{
	struct tset *t = opaque;
	struct tdisk *d = &t->d[i];
	struct vhd_open_opts oo = { .flags = 0 };
	struct bdev_err e = { 0 };
	struct bdev *child, *old = NULL;
	int r;

	logc(t, 'c', (int)i);
	if ((int)i == t->fail_commit)
		return -EIO;
	/* everything acknowledged is on the parent before the child reads it */
	r = bdev_flush(bdev_switch_lower(d->sw));
	if (r)
		return r;
	child = vhd_open(d->child, &oo, &e);
	if (!child)
		return -e.code;
	r = bdev_switch_swap(d->sw, child, &old);
	if (r) {
		bdev_close(child);
		return r;
	}
	bdev_close(old);
	d->committed = true;
	return 0;
}

static void cb_resume(void *opaque, unsigned n)
{
	struct tset *t = opaque;

	logc(t, 'R', -1);
	for (unsigned i = 0; i < n; i++)
		gate_hold(t->d[i].top, false);
}

static void cb_abort(void *opaque, unsigned i)
{
	struct tset *t = opaque;

	logc(t, 'a', (int)i);
	unlink(t->d[i].child);
	t->d[i].prepared = false;
}

static const struct vss_snap_ops snap_ops = {
	.prepare = cb_prepare, .drain = cb_drain, .commit = cb_commit,
	.resume = cb_resume, .abort = cb_abort,
};

static void tset_open(struct tset *t, int n)
{
	memset(t, 0, sizeof(*t));
	t->n = n;
	t->fail_commit = -1;
	for (int i = 0; i < n; i++) {
		struct tdisk *d = &t->d[i];
		struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = DISK_BYTES };
		struct vhd_open_opts oo = { 0 };
		struct bdev_err e = { 0 };
		struct bdev *v;

		snprintf(d->path, sizeof(d->path), "%s/disk%d.vhd", tmpdir, i);
		snprintf(d->child, sizeof(d->child), "%s/disk%d.snap.vhd", tmpdir, i);
		assert_int_equal(vhd_create(d->path, &co, &e), 0);
		v = vhd_open(d->path, &oo, &e);
		assert_non_null(v);
		d->sw = bdev_switch_open(v, &e);
		assert_non_null(d->sw);
		d->top = gate_open(d->sw);
	}
}

static void tset_close(struct tset *t)
{
	for (int i = 0; i < t->n; i++)
		assert_int_equal(bdev_close(t->d[i].top), 0);
}

static void tset_unlink(struct tset *t)
{
	for (int i = 0; i < t->n; i++) {
		unlink(t->d[i].child);
		unlink(t->d[i].path);
	}
}

/* ---- the host: vmbus transport served on a thread ---- */

struct host {
	struct vmbus_host *h;
	struct vss *v;
	pthread_t thr;
	int stop;          /* atomic */
	char sock[128];
	pid_t pid;
	int stop_pipe[2], rep_pipe[2];
};

static void *host_thread(void *arg)
{
	struct host *H = arg;

	while (!__atomic_load_n(&H->stop, __ATOMIC_ACQUIRE)) {
		int r = vmbus_host_accept(H->h, 50);

		if (r)
			continue;
		while (!__atomic_load_n(&H->stop, __ATOMIC_ACQUIRE) && (r = vmbus_host_run(H->h, 20)) == 0)
			;
	}
	return NULL;
}

struct guest_report {
	char frozen;		/* 'f' frozen at the end, 't' thawed */
	int serve;		/* vssg_serve's result */
	int count[8];
	int negotiations;
};

/* The guest process: attach, report 'A', serve until told to stop, then
 * send a report. */
static void guest_main(struct host *H, enum vssg_mode mode, bool open_vss)
{
	struct guest_report rep = { 't', 0, { 0 }, 0 };
	struct vssg *g = NULL;
	char a = 'A';
	int r;

	close(H->stop_pipe[1]);
	close(H->rep_pipe[0]);
	r = vssg_attach(H->sock, open_vss, &g);
	if (r) {
		fprintf(stderr, "guest: attach: %s\n", strerror(-r));
		_exit(3);
	}
	if (write(H->rep_pipe[1], &a, 1) != 1)
		_exit(4);
	rep.serve = vssg_serve(g, mode, NULL, H->stop_pipe[0], 15000);
	rep.frozen = vssg_frozen(g) ? 'f' : 't';
	for (int i = 0; i < 8; i++)
		rep.count[i] = vssg_count(g, i);
	rep.negotiations = vssg_negotiations(g);
	if (write(H->rep_pipe[1], &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		_exit(5);
	vssg_detach(g);
	_exit(0);
}

static void host_start(struct host *H, enum vssg_mode mode, bool open_vss)
{
	struct vss_cfg cfg = { 0 };
	struct pollfd p;
	char a = 0;

	memset(H, 0, sizeof(*H));
	snprintf(H->sock, sizeof(H->sock), "%s/vmbus.sock", tmpdir);
	assert_int_equal(vmbus_host_new(MEM_BYTES, &H->h), 0);
	cfg.mgr = vmbus_host_mgr(H->h);
	memset(cfg.instance, 0x5a, 16);
	assert_int_equal(vss_new(&cfg, &H->v), 0);
	assert_int_equal(vmbus_host_listen(H->h, H->sock), 0);
	assert_int_equal(pipe(H->stop_pipe), 0);
	assert_int_equal(pipe(H->rep_pipe), 0);
	H->pid = fork();
	assert_true(H->pid >= 0);
	if (H->pid == 0)
		guest_main(H, mode, open_vss);
	close(H->stop_pipe[0]);
	close(H->rep_pipe[1]);
	assert_int_equal(pthread_create(&H->thr, NULL, host_thread, H), 0);
	p = (struct pollfd){ .fd = H->rep_pipe[0], .events = POLLIN };
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_int_equal(read(H->rep_pipe[0], &a, 1), 1);
	assert_int_equal(a, 'A');
}

/* Stop the guest, collect its report, stop the host. */
static void host_stop(struct host *H, struct guest_report *rep)
{
	struct pollfd p = { .fd = H->rep_pipe[0], .events = POLLIN };
	int status = -1;

	assert_int_equal(write(H->stop_pipe[1], "x", 1), 1);
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_int_equal(read(H->rep_pipe[0], rep, sizeof(*rep)), (ssize_t)sizeof(*rep));
	assert_int_equal(waitpid(H->pid, &status, 0), H->pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	__atomic_store_n(&H->stop, 1, __ATOMIC_RELEASE);
	pthread_join(H->thr, NULL);
	vmbus_host_free(H->h);
	vss_free(H->v);
	close(H->stop_pipe[1]);
	close(H->rep_pipe[0]);
	unlink(H->sock);
}

/* ---- fill and check blocks ---- */

static void put_blk(struct bdev *b, uint32_t blk, uint32_t seq)
{
	uint32_t buf[BLK / 4];

	for (size_t i = 0; i < BLK / 4; i++)
		buf[i] = seq;
	assert_int_equal(bdev_write(b, buf, (uint64_t)blk * BLK, BLK, 0), 0);
}

/* The block's seq (0 when never written); asserts the block is whole. */
static uint32_t get_blk(struct bdev *b, uint32_t blk)
{
	uint32_t buf[BLK / 4];

	assert_int_equal(bdev_read(b, buf, (uint64_t)blk * BLK, BLK), 0);
	for (size_t i = 1; i < BLK / 4; i++)
		assert_int_equal(buf[i], buf[0]);
	return buf[0];
}

static struct bdev *open_ro(const char *path, bool no_parent)
{
	struct vhd_open_opts oo = { .flags = VHD_O_RDONLY | (no_parent ? VHD_O_NO_PARENT : 0) };
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(path, &oo, &e);

	if (!b)
		fprintf(stderr, "%s\n", e.msg);
	assert_non_null(b);
	return b;
}

/* ---- tests ---- */

/* A writer keeps writing disk A then disk B (B's write depends on A's):
 * block k of both gets seq k + 1. */
struct writer {
	struct tset *t;
	int stop;          /* atomic */
	uint32_t done;     /* atomic */
};

static void *writer_thread(void *arg)
{
	struct writer *w = arg;

	/* the last two blocks are the test's; paced so that the backup
	 * (tens of ms) happens while it still writes */
	for (uint32_t k = 0; k < NBLK - 2 && !__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE); k++) {
		put_blk(w->t->d[0].top, k, k + 1);
		put_blk(w->t->d[1].top, k, k + 1);
		__atomic_store_n(&w->done, k + 1, __ATOMIC_RELEASE);
		usleep(500);
	}
	return NULL;
}

static void test_full_sequence(void **state)
{
	struct host H;
	struct tset t;
	struct writer w = { .t = &t };
	struct vss_result res;
	struct vss_backup_opts o = { .freeze_timeout_ms = 5000, .msg_timeout_ms = 5000 };
	struct guest_report rep;
	struct vss_stats st;
	pthread_t wt;
	uint32_t a = 0, b = 0;

	tset_open(&t, 2);
	put_blk(t.d[0].top, NBLK - 1, 0xBEF0);	/* before the freeze */
	host_start(&H, VSSG_NORMAL, true);
	assert_int_equal(pthread_create(&wt, NULL, writer_thread, &w), 0);
	for (int i = 0; i < 2000 && __atomic_load_n(&w.done, __ATOMIC_ACQUIRE) < 50; i++)
		usleep(1000);
	assert_int_equal(vss_backup(H.v, &snap_ops, &t, 2, &o, &res), 0);
	__atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
	pthread_join(wt, NULL);
	assert_int_equal(res.consistency, VSS_CONS_APP);
	assert_string_equal(vss_consistency_str(res.consistency), "application");
	assert_int_equal(res.committed, 2);
	assert_true(res.freeze_sent && res.thaw_sent && res.thaw_ok);
	assert_int_equal(res.hot_backup_flags, VSS_HBU_NO_AUTO_RECOVERY);
	assert_true(res.window_ns > 0 && res.held_ns > 0 && res.held_ns <= res.window_ns);
	assert_string_equal(t.log, "p0p1D.c0c1R.");
	put_blk(t.d[0].top, NBLK - 2, 0xAF7E);	/* after the thaw */
	vss_get_stats(H.v, &st);
	assert_true(st.negotiated && st.fw.major == 3 && st.msgver.major == 5);
	assert_int_equal(st.sent, 6);	/* negotiate, HOT_BACKUP, DM_INFO, FREEZE, THAW, BU */
	assert_int_equal(st.replies, 6);
	host_stop(&H, &rep);
	assert_int_equal(rep.frozen, 't');
	assert_int_equal(rep.negotiations, 1);
	assert_int_equal(rep.count[VSS_OP_FREEZE], 1);
	assert_int_equal(rep.count[VSS_OP_THAW], 1);
	assert_int_equal(rep.count[VSS_OP_BU_COMPLETE], 1);
	tset_close(&t);

	/* the parents hold one point in time: a prefix of the writes, and B's
	 * write k only if A's write k is there */
	struct bdev *pa = open_ro(t.d[0].path, false), *pb = open_ro(t.d[1].path, false);
	while (a < NBLK - 2 && get_blk(pa, a) == a + 1)
		a++;
	while (b < NBLK - 2 && get_blk(pb, b) == b + 1)
		b++;
	for (uint32_t k = a; k < NBLK - 2; k++)
		assert_int_equal(get_blk(pa, k), 0);
	for (uint32_t k = b; k < NBLK - 2; k++)
		assert_int_equal(get_blk(pb, k), 0);
	assert_true(a == b || a == b + 1);
	assert_true(a > 0 && a <= __atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	assert_int_equal(get_blk(pa, NBLK - 1), 0xBEF0);
	assert_int_equal(get_blk(pa, NBLK - 2), 0);
	bdev_close(pa);
	bdev_close(pb);
	/* the children (with their parents) hold everything */
	struct bdev *ca = open_ro(t.d[0].child, false);
	for (uint32_t k = 0; k < __atomic_load_n(&w.done, __ATOMIC_ACQUIRE); k++)
		assert_int_equal(get_blk(ca, k), k + 1);
	assert_int_equal(get_blk(ca, NBLK - 2), 0xAF7E);
	bdev_close(ca);
	/* and the writes after the switch only in the child itself */
	struct bdev *oa = open_ro(t.d[0].child, true);
	struct bdev_status bs;
	assert_int_equal(bdev_block_status(oa, 0, BLK, &bs), 0);
	bdev_close(oa);
	tset_unlink(&t);
}

/* A guest that refuses, times out, has no service or no daemon:
 * crash-consistent, THAW sent whenever FREEZE was, guest never frozen. */
static void crash_case(enum vssg_mode mode, bool open_vss, bool expect_freeze,
		       const char *why_part)
{
	struct host H;
	struct tset t;
	struct vss_result res;
	struct vss_backup_opts o = { .freeze_timeout_ms = 300, .msg_timeout_ms = 1000 };
	struct guest_report rep;

	tset_open(&t, 2);
	host_start(&H, mode, open_vss);
	if (open_vss) {
		struct vss_stats st;

		for (int i = 0; i < 2000; i++) {
			vss_get_stats(H.v, &st);
			if (st.open)
				break;
			usleep(1000);
		}
	}
	put_blk(t.d[0].top, 3, 33);
	assert_int_equal(vss_backup(H.v, &snap_ops, &t, 2, &o, &res), 0);
	put_blk(t.d[0].top, 4, 44);
	assert_int_equal(res.consistency, VSS_CONS_CRASH);
	assert_int_equal(res.committed, 2);
	assert_non_null(strstr(res.why, why_part));
	assert_int_equal(res.freeze_sent, expect_freeze);
	assert_int_equal(res.thaw_sent, expect_freeze);
	host_stop(&H, &rep);
	assert_int_equal(rep.frozen, 't');
	if (expect_freeze)
		assert_int_equal(rep.count[VSS_OP_THAW], 1);
	assert_int_equal(rep.count[VSS_OP_BU_COMPLETE], 0);
	tset_close(&t);
	struct bdev *p = open_ro(t.d[0].path, true);
	assert_int_equal(get_blk(p, 3), 33);
	assert_int_equal(get_blk(p, 4), 0);
	bdev_close(p);
	p = open_ro(t.d[0].child, false);
	assert_int_equal(get_blk(p, 4), 44);
	bdev_close(p);
	tset_unlink(&t);
}

static void test_refuse(void **state)
{
	crash_case(VSSG_REFUSE_FREEZE, true, true, "FREEZE: the guest refused");
}

static void test_timeout(void **state)
{
	/* the guest froze but its answer never came: THAW still goes */
	crash_case(VSSG_SILENT_FREEZE, true, true, "FREEZE: no answer");
}

static void test_no_service(void **state)
{
	crash_case(VSSG_NORMAL, false, false, "no VSS channel");
}

static void test_no_daemon(void **state)
{
	crash_case(VSSG_NO_DAEMON, true, false, "HOT_BACKUP: the guest refused");
}

static void test_no_channel_at_all(void **state)
{
	struct tset t;
	struct vss_result res;

	tset_open(&t, 1);
	assert_int_equal(vss_backup(NULL, &snap_ops, &t, 1, NULL, &res), 0);
	assert_int_equal(res.consistency, VSS_CONS_CRASH);
	assert_string_equal(res.why, "no VSS integration service");
	assert_string_equal(t.log, "p0D.c0R.");
	tset_close(&t);
	tset_unlink(&t);
}

static void test_require_app(void **state)
{
	struct host H;
	struct tset t;
	struct vss_result res;
	struct vss_backup_opts o = { .freeze_timeout_ms = 300, .msg_timeout_ms = 1000,
				     .require_app_consistent = true };
	struct guest_report rep;

	tset_open(&t, 2);
	host_start(&H, VSSG_REFUSE_FREEZE, true);
	assert_int_equal(vss_backup(H.v, &snap_ops, &t, 2, &o, &res), -EAGAIN);
	assert_int_equal(res.consistency, VSS_CONS_NONE);
	assert_int_equal(res.committed, 0);
	assert_true(res.thaw_sent);
	assert_string_equal(t.log, "p0p1a0a1");
	assert_int_equal(access(t.d[0].child, F_OK), -1);
	host_stop(&H, &rep);
	assert_int_equal(rep.frozen, 't');
	tset_close(&t);
	tset_unlink(&t);
}

static void test_commit_failure(void **state)
{
	struct host H;
	struct tset t;
	struct vss_result res;
	struct guest_report rep;

	tset_open(&t, 3);
	t.fail_commit = 1;
	host_start(&H, VSSG_NORMAL, true);
	assert_int_equal(vss_backup(H.v, &snap_ops, &t, 3, NULL, &res), -EIO);
	assert_int_equal(res.consistency, VSS_CONS_NONE);
	assert_int_equal(res.committed, 1);
	assert_true(res.thaw_sent && res.thaw_ok);
	assert_string_equal(t.log, "p0p1p2D.c0c1R.a1a2");
	host_stop(&H, &rep);
	assert_int_equal(rep.frozen, 't');
	assert_int_equal(rep.count[VSS_OP_THAW], 1);
	tset_close(&t);
	tset_unlink(&t);
}

/* Hostile guests: the host never crashes, never hangs past its timeouts,
 * falls back to crash-consistent. */
static void hostile_case(enum vssg_mode mode, bool chan_failed)
{
	struct host H;
	struct tset t;
	struct vss_result res;
	struct vss_backup_opts o = { .freeze_timeout_ms = 300, .msg_timeout_ms = 500 };
	struct guest_report rep;
	struct vss_stats st;

	tset_open(&t, 1);
	host_start(&H, mode, true);
	assert_int_equal(vss_backup(H.v, &snap_ops, &t, 1, &o, &res), 0);
	assert_int_equal(res.consistency, VSS_CONS_CRASH);
	assert_false(res.freeze_sent);
	vss_get_stats(H.v, &st);
	assert_int_equal(st.chan_failed, chan_failed ? 1 : 0);
	if (mode == VSSG_WRONG_ID)
		assert_true(st.bad >= 1 && st.timeouts == 1);
	host_stop(&H, &rep);
	assert_int_equal(rep.frozen, 't');
	tset_close(&t);
	tset_unlink(&t);
}

static void test_hostile_length(void **state) { hostile_case(VSSG_BAD_LENGTH, true); }
static void test_hostile_id(void **state) { hostile_case(VSSG_WRONG_ID, false); }
static void test_hostile_flags(void **state) { hostile_case(VSSG_REQUEST_FLAGS, true); }
static void test_hostile_flood(void **state) { hostile_case(VSSG_FLOOD, true); }

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-vss-%d", (int)getpid());
	ut_rmtree(tmpdir);
	return mkdir(tmpdir, 0700);
}

static int teardown(void **state)
{
	ut_rmtree(tmpdir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_sequence),
		cmocka_unit_test(test_refuse),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_no_service),
		cmocka_unit_test(test_no_daemon),
		cmocka_unit_test(test_no_channel_at_all),
		cmocka_unit_test(test_require_app),
		cmocka_unit_test(test_commit_failure),
		cmocka_unit_test(test_hostile_length),
		cmocka_unit_test(test_hostile_id),
		cmocka_unit_test(test_hostile_flags),
		cmocka_unit_test(test_hostile_flood),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
