/* vss coordinator: one snapshot of a running guest's disks at one point
 * in time (see vss_backup in vss.h).
 *
 *   PREPARE   every disk (children created: slow work outside the window)
 *   ASK       HOT_BACKUP, GET_DM_INFO, FREEZE (each bounded by a timeout)
 *   HOLD      drain: new I/O held on every disk, in-flight I/O finished
 *   COMMIT    every disk switched to its child, in order
 *   RESUME    I/O flows again (always after HOLD)
 *   THAW      always when FREEZE was sent, whatever happened since
 *   COMPLETE  BU_COMPLETE when the guest took part
 *
 * A missing channel, a refusal (status != S_OK), a timeout or a protocol
 * error while asking makes the snapshot crash-consistent: the disks are
 * still held and switched together, so it is the state a power cut at
 * that instant would leave.  Nothing here prints.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vss/vss.h"

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

__attribute__((format(printf, 2, 3)))
static void why(struct vss_result *res, const char *fmt, ...)
{
	va_list ap;

	if (res->why[0])	/* keep the first reason */
		return;
	va_start(ap, fmt);
	vsnprintf(res->why, sizeof(res->why), fmt, ap);
	va_end(ap);
}

const char *vss_consistency_str(enum vss_consistency c)
{
	switch (c) {
	case VSS_CONS_APP: return "application";
	case VSS_CONS_CRASH: return "crash";
	case VSS_CONS_NONE: break;
	}
	return "none";
}

static const char *op_name(enum vss_op op)
{
	switch (op) {
	case VSS_OP_HOT_BACKUP: return "HOT_BACKUP";
	case VSS_OP_GET_DM_INFO: return "GET_DM_INFO";
	case VSS_OP_FREEZE: return "FREEZE";
	case VSS_OP_THAW: return "THAW";
	case VSS_OP_BU_COMPLETE: return "BU_COMPLETE";
	default: return "VSS message";
	}
}

/* One message; true when the guest answered S_OK.  Failures are recorded
 * in res->why. */
static bool ask(struct vss *v, enum vss_op op, const struct vss_backup_opts *o,
		int timeout_ms, uint32_t *status, uint32_t *flags,
		struct vss_result *res)
{
	const struct vss_lun_info *luns = op == VSS_OP_FREEZE ? o->luns : NULL;
	uint32_t nluns = luns ? o->nluns : 0;
	int r;

	*status = VSS_E_FAIL;
	r = vss_transact(v, op, 0, luns, nluns, timeout_ms, status, flags);
	if (r == -ETIMEDOUT) {
		why(res, "%s: no answer from the guest in %d ms", op_name(op), timeout_ms);
		return false;
	}
	if (r == -ENOTCONN) {
		why(res, "%s: the guest has no VSS channel open", op_name(op));
		return false;
	}
	if (r) {
		struct vss_stats st;

		vss_get_stats(v, &st);
		why(res, "%s: %s (%s)", op_name(op), strerror(-r), st.last_error);
		return false;
	}
	if (*status != VSS_S_OK) {
		why(res, "%s: the guest refused (status %#x)", op_name(op), *status);
		return false;
	}
	return true;
}

/* HOT_BACKUP -> GET_DM_INFO -> FREEZE.  true when the guest is frozen;
 * res->freeze_sent tells whether a THAW is owed. */
static bool ask_freeze(struct vss *v, const struct vss_backup_opts *o,
		       int msg_ms, int freeze_ms, struct vss_result *res,
		       uint64_t *t_freeze)
{
	uint32_t st, fl = 0;

	if (!v) {
		why(res, "no VSS integration service");
		return false;
	}
	if (!ask(v, VSS_OP_HOT_BACKUP, o, msg_ms, &res->hot_backup_status,
		 &res->hot_backup_flags, res))
		return false;
	/* the answer is informational (Linux: flags 0) */
	(void)ask(v, VSS_OP_GET_DM_INFO, o, msg_ms, &st, &fl, res);
	res->why[0] = 0;
	*t_freeze = now_ns();
	res->freeze_sent = true;
	return ask(v, VSS_OP_FREEZE, o, freeze_ms, &res->freeze_status, NULL, res);
}

int vss_backup(struct vss *v, const struct vss_snap_ops *ops, void *opaque,
	       unsigned ndisks, const struct vss_backup_opts *o,
	       struct vss_result *res)
{
	static const struct vss_backup_opts dflt;
	int msg_ms, freeze_ms, r = 0;
	unsigned prepared = 0, i;
	uint64_t t_freeze = 0, t_hold;
	bool frozen;
	uint32_t st;

	if (!o)
		o = &dflt;
	memset(res, 0, sizeof(*res));
	msg_ms = o->msg_timeout_ms > 0 ? o->msg_timeout_ms : 5000;
	freeze_ms = o->freeze_timeout_ms > 0 ? o->freeze_timeout_ms : 10000;

	/* PREPARE */
	for (; prepared < ndisks; prepared++) {
		r = ops->prepare ? ops->prepare(opaque, prepared) : 0;
		if (r) {
			why(res, "disk %u: preparing the snapshot: %s", prepared, strerror(-r));
			goto abort;
		}
	}

	/* ASK */
	frozen = ask_freeze(v, o, msg_ms, freeze_ms, res, &t_freeze);
	if (!frozen && o->require_app_consistent) {
		r = -EAGAIN;
		goto thaw;
	}

	/* HOLD, COMMIT, RESUME */
	t_hold = now_ns();
	r = ops->drain ? ops->drain(opaque, ndisks) : 0;
	if (r) {
		why(res, "draining the disks: %s", strerror(-r));
	} else {
		for (i = 0; i < ndisks; i++) {
			r = ops->commit(opaque, i);
			if (r) {
				why(res, "disk %u: switching to the snapshot child: %s",
				    i, strerror(-r));
				break;
			}
			res->committed++;
		}
	}
	if (ops->resume)
		ops->resume(opaque, ndisks);
	res->held_ns = now_ns() - t_hold;
	if (!r)
		res->consistency = frozen ? VSS_CONS_APP : VSS_CONS_CRASH;

thaw:
	/* THAW whenever FREEZE went out: a guest that froze late (after our
	 * timeout) or whose answer was lost must not stay frozen */
	if (res->freeze_sent) {
		res->window_ns = now_ns() - t_freeze;
		res->thaw_sent = true;
		res->thaw_ok = ask(v, VSS_OP_THAW, o, msg_ms, &res->thaw_status,
				   NULL, res);
		if (res->thaw_ok && frozen && !o->skip_bu_complete)
			(void)ask(v, VSS_OP_BU_COMPLETE, o, msg_ms, &st, NULL, res);
	}
	if (res->consistency == VSS_CONS_APP)
		res->why[0] = 0;	/* a failed THAW does not undo the snapshot */
abort:
	for (i = res->committed; i < prepared; i++)
		if (ops->abort)
			ops->abort(opaque, i);
	return r;
}
