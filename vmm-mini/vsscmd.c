/* vsscmd: the VSS integration channel of a VMM and the `backup-snapshot`
 * control command (the live-backup design, docs/ARCHITECTURE.md "vss/"):
 *
 *   {"cmd":"backup-snapshot","luns":"0,2","freeze_timeout":10000,"require_app":true}
 *
 * = vss_backup() (vss/coord.c) over the chosen LUNs with the snapshot
 * phases of stor.c (vmm_stor_snap_*):
 *   prepare every LUN (children created, before anything is asked of the
 *   guest) -> HOT_BACKUP, GET_DM_INFO, FREEZE -> hold every LUN (new I/O
 *   held, in-flight finished) -> commit every LUN -> release every LUN ->
 *   THAW (always once FREEZE went out) -> BU_COMPLETE -> finish every LUN
 *   (frozen tracking files written, outside the window).
 * "luns" absent: every LUN that can take a snapshot (a writable VHD);
 * LUNs that cannot (absent, read-only, pass-through) are left out.
 *
 * Success: {"ok":true,"consistency":"application"|"crash","why":"...",
 *           "window_us":N,"held_us":N,"disks":[{"lun":0,"frozen":"...",
 *           "child":"...","ctk":"..."|null},...]}
 * ("ctk" null: untracked, or its frozen tracking file could not be
 * written; the backup then reads the whole image.)
 * Failure: {"error":"...","consistency":"none"}: nothing stays switched
 * (LUNs switched before a failure are merged back).
 *
 * Runs on the control socket's thread; nothing here prints.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/scsi.h"
#include "vmm-mini/vmm.h"
#include "vss/vss.h"

#define MAX_LUNS SCSI_MAX_LUNS

int vmm_vss_offer(struct vmbus_mgr *mgr, struct vss **out)
{
	/* "vmm-minivss" + 1: this VMM's one VSS channel */
	struct vss_cfg vc = { .mgr = mgr,
			      .instance = { 0x76, 0x6d, 0x6d, 0x2d, 0x6d, 0x69, 0x6e, 0x69,
					    0x76, 0x73, 0x73, 0x00, 0x00, 0x00, 0x00, 0x01 } };

	return vss_new(&vc, out);
}

/* One backup-snapshot: the LUNs and their snapshots in progress. */
struct snapset {
	struct vmm_stor *s;
	unsigned n;
	int lun[MAX_LUNS];
	struct vmm_stor_snap *p[MAX_LUNS];	/* NULL once finished or aborted */
	bool held[MAX_LUNS];
	struct vmm_stor_snap_info info[MAX_LUNS];	/* filled by finish */
	char err[700];		/* the first failure of a phase */
};

__attribute__((format(printf, 2, 3)))
static void set_err(struct snapset *S, const char *fmt, ...)
{
	va_list ap;

	if (S->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(S->err, sizeof(S->err), fmt, ap);
	va_end(ap);
}

/* --- vss_snap_ops: the coordinator's view of the LUNs ---------------------- */

/* Preparing is done before vss_backup (the set of LUNs depends on it). */
static int op_prepare(void *opaque, unsigned i)
{
	(void)opaque;
	(void)i;
	return 0;
}

static int op_drain(void *opaque, unsigned n)
{
	struct snapset *S = opaque;
	struct vmm_stor_err e = { 0 };

	for (unsigned i = 0; i < n; i++) {
		int r = vmm_stor_snap_hold(S->p[i], &e);

		if (r) {
			set_err(S, "%s", e.msg);
			return r;	/* resume releases those held */
		}
		S->held[i] = true;
	}
	return 0;
}

static int op_commit(void *opaque, unsigned i)
{
	struct snapset *S = opaque;
	struct vmm_stor_err e = { 0 };
	int r = vmm_stor_snap_commit(S->p[i], &e);

	if (r)
		set_err(S, "%s", e.msg);
	return r;
}

static void op_resume(void *opaque, unsigned n)
{
	struct snapset *S = opaque;

	for (unsigned i = 0; i < n; i++)
		if (S->held[i]) {
			vmm_stor_snap_release(S->p[i]);
			S->held[i] = false;
		}
}

static void op_abort(void *opaque, unsigned i)
{
	struct snapset *S = opaque;

	vmm_stor_snap_abort(S->p[i]);
	S->p[i] = NULL;
}

static const struct vss_snap_ops snap_ops = {
	.prepare = op_prepare, .drain = op_drain, .commit = op_commit,
	.resume = op_resume, .abort = op_abort,
};

/* --- the command ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
static void answer_err(char *out, size_t cap, const char *fmt, ...)
{
	char msg[1000], js[2100];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vmm_json_str(js, sizeof(js), msg);
	snprintf(out, cap, "{\"error\":%s,\"consistency\":\"none\"}", js);
}

/* "0,2" -> S->lun[]; false with a message on a bad list. */
static bool parse_luns(struct snapset *S, const char *list, char *out, size_t cap)
{
	bool seen[MAX_LUNS] = { false };
	const char *p = list;

	while (*p) {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p || v < 0 || v >= MAX_LUNS || (*end && *end != ',')) {
			answer_err(out, cap, "\"luns\": want LUN numbers below %d and commas",
				   MAX_LUNS);
			return false;
		}
		if (seen[v]) {
			answer_err(out, cap, "\"luns\": LUN %ld named twice", v);
			return false;
		}
		seen[v] = true;
		S->lun[S->n++] = (int)v;
		p = *end ? end + 1 : end;
	}
	if (!S->n) {
		answer_err(out, cap, "\"luns\": no LUN named");
		return false;
	}
	return true;
}

/* Prepare the snapshot of every LUN asked for, or, with none asked for,
 * of every LUN that can take one.  false with the answer written (and
 * nothing left prepared) on failure. */
static bool prepare_all(struct snapset *S, bool all, char *out, size_t cap)
{
	struct vmm_stor_err e;
	unsigned k = 0;

	if (all)
		for (int l = 0; l < MAX_LUNS; l++)
			S->lun[S->n++] = l;
	for (unsigned i = 0; i < S->n; i++) {
		int r;

		memset(&e, 0, sizeof(e));
		r = vmm_stor_snap_prepare(S->s, S->lun[i], &S->p[k], &e);
		if (r && all && (r == -ENOENT || r == -ENOTSUP))
			continue;	/* no such LUN, or one that cannot snapshot */
		if (r) {
			for (unsigned j = 0; j < k; j++)
				vmm_stor_snap_abort(S->p[j]);
			answer_err(out, cap, "%s", e.msg);
			return false;
		}
		S->lun[k++] = S->lun[i];
	}
	S->n = k;
	if (!k) {
		answer_err(out, cap, "no LUN can take a snapshot (writable VHDs only)");
		return false;
	}
	return true;
}

/* Undo the snapshot of LUN lun that went in: its child merged back (the
 * merge removes the frozen tracking file too). */
static void undo(struct vmm_stor *s, int lun)
{
	struct vmm_stor_err e = { 0 };
	char *into = NULL, *child = NULL;

	if (vmm_stor_merge(s, lun, &into, &child, &e) == 0) {
		free(into);
		free(child);
	}
}

static size_t disk_json(char *out, size_t cap, const struct vmm_stor_snap_info *in)
{
	char fr[8300], ch[8300], ck[8300];

	vmm_json_str(fr, sizeof(fr), in->frozen);
	vmm_json_str(ch, sizeof(ch), in->child);
	if (in->ctk[0])
		vmm_json_str(ck, sizeof(ck), in->ctk);
	else
		strcpy(ck, "null");
	return (size_t)snprintf(out, cap, "{\"lun\":%d,\"frozen\":%s,\"child\":%s,\"ctk\":%s}",
				in->lun, fr, ch, ck);
}

static void backup_snapshot(struct vmm_stor *s, struct vss *v, const struct vmm_req *q,
			    char *out, size_t cap)
{
	struct snapset *S = calloc(1, sizeof(*S));
	struct vmm_stor_snap_info *info;
	struct vss_lun_info li[MAX_LUNS];
	struct vss_backup_opts o = { 0 };
	struct vss_result res;
	char why[500], *w;
	size_t len;
	int r;

	if (!S) {
		answer_err(out, cap, "out of memory");
		return;
	}
	S->s = s;
	info = S->info;
	if (q->luns[0] && !parse_luns(S, q->luns, out, cap))
		goto out;
	if (q->freeze_timeout < 0 || q->freeze_timeout > 3600000) {
		answer_err(out, cap, "\"freeze_timeout\": want milliseconds up to 3600000");
		goto out;
	}
	if (!prepare_all(S, !q->luns[0], out, cap))
		goto out;

	/* the FREEZE body names the LUNs (Linux reads none of it) */
	memset(li, 0, sizeof(li));
	for (unsigned i = 0; i < S->n; i++)
		li[i].lun = (uint8_t)S->lun[i];
	o.freeze_timeout_ms = q->freeze_timeout > 0 ? (int)q->freeze_timeout : 10000;
	o.require_app_consistent = q->require_app;
	o.luns = li;
	o.nluns = S->n;
	r = vss_backup(v, &snap_ops, S, S->n, &o, &res);

	/* finish what was committed (the frozen tracking files: outside the
	 * window).  A frozen tracking file that could not be written is not
	 * a failure: the snapshot stands, its "ctk" is null and the backup
	 * reads the whole image. */
	for (unsigned i = 0; i < res.committed; i++) {
		struct vmm_stor_err e = { 0 };

		(void)vmm_stor_snap_finish(S->p[i], &info[i], &e);
		S->p[i] = NULL;
	}
	if (r) {
		for (unsigned i = 0; i < res.committed; i++)
			undo(s, S->lun[i]);
		if (r == -EAGAIN)
			answer_err(out, cap, "the guest did not freeze (%s)", res.why);
		else
			answer_err(out, cap, "%s", S->err[0] ? S->err : res.why[0] ? res.why
										       : strerror(-r));
		goto out;
	}
	vmm_json_str(why, sizeof(why), res.why);
	len = (size_t)snprintf(out, cap, "{\"ok\":true,\"consistency\":\"%s\",\"why\":%s,"
				     "\"window_us\":%llu,\"held_us\":%llu,\"disks\":[",
			       vss_consistency_str(res.consistency), why,
			       (unsigned long long)(res.window_ns / 1000),
			       (unsigned long long)(res.held_ns / 1000));
	for (unsigned i = 0; i < S->n && len < cap; i++) {
		if (i)
			out[len++] = ',';
		len += disk_json(out + len, cap - len, &info[i]);
	}
	if (len + 3 > cap) {
		/* the snapshot could not be reported: do not leave it behind */
		for (unsigned i = 0; i < S->n; i++)
			undo(s, S->lun[i]);
		answer_err(out, cap, "the answer for %u disks does not fit in %zu bytes", S->n, cap);
		goto out;
	}
	w = out + len;
	memcpy(w, "]}", 3);
out:
	free(S);
}

bool vmm_vss_control(struct vmm_stor *s, struct vss *v, const struct vmm_req *q, char *out,
		     size_t cap)
{
	if (strcmp(q->cmd, "backup-snapshot"))
		return false;
	backup_snapshot(s, v, q, out, cap);
	return true;
}
