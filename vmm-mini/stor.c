/* stor: a SCSI controller's disks for `vmm-mini host` and `vmm-mini run`:
 * the storage VSP on a vmbus manager, its LUNs (VHD chains, pass-through
 * files and devices), hot add and remove, and for disks behind a switch
 * layer, snapshots and merges while the guest runs.
 *
 * Locking: s->mu guards luns[] and serialises the control operations (a
 * snapshot or merge holds it while the LUN's requests are held in its
 * switch; the storvsp threads never take it).
 */
#include <errno.h>
#include <stdarg.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scsi/scsi.h"
#include "storvsp/storvsp.h"
#include "vhd/vhd.h"
#include "vmm-mini/vmm-merge.h"
#include "vmm-mini/vmm.h"

#define MAX_LUNS SCSI_MAX_LUNS
#define MAX_SNAPS 8		/* snapshot children on top of one image */

struct stor_lun {
	struct vmm_disk d;	/* d.bd: the disk as opened (track layer or image) */
	struct bdev *sw;	/* switch above d.bd (cfg.switchable), what the LUN serves */
	/* the VHD chain's files we made: chain[0] = the image given, chain[n]
	 * = the n-th snapshot child; the top one takes the writes */
	char *chain[MAX_SNAPS + 1];
	int nsnap;
};

struct vmm_stor {
	struct vmm_stor_cfg cfg;
	struct vsp *v;
	pthread_mutex_t mu;
	struct stor_lun luns[MAX_LUNS];
};

#define err_set vmm_stor_err_set	/* vmm-merge.h: merge.c's too */

int vmm_stor_err_set(struct vmm_stor_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->code = code;
	return -code;
}

int vmm_stor_new(const struct vmm_stor_cfg *cfg, struct vmm_stor **out)
{
	struct vmm_stor *s = calloc(1, sizeof(*s));
	struct vsp_cfg vc = { 0 };
	int r;

	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	vc.mgr = cfg->mgr;
	vc.guest_mem = cfg->guest_mem;
	vc.guest_bytes = cfg->guest_bytes;
	vc.max_transfer = cfg->max_transfer;
	vc.max_subchannels = cfg->subchannels;
	vc.cpu = cfg->cpu;
	vc.instance = (struct vmbus_guid){ { 0x76, 0x6d, 0x6d, 0x2d, 0x6d, 0x69, 0x6e, 0x69,
					     0x73, 0x63, 0x73, 0x69, 0x00, 0x00, 0x00, 0x01 } };
	r = vsp_new(&vc, &s->v);
	if (r) {
		free(s);
		return r;
	}
	pthread_mutex_init(&s->mu, NULL);
	*out = s;
	return 0;
}

struct vsp *vmm_stor_vsp(struct vmm_stor *s)
{
	return s->v;
}

static void lun_forget(struct stor_lun *l)
{
	for (int i = 0; i <= MAX_SNAPS; i++)
		free(l->chain[i]);
	memset(l, 0, sizeof(*l));
}

/* Flush and close a LUN's disk (its switch first, which closes what is
 * behind it).  Called with s->mu held, the LUN out of the target. */
static int lun_close(struct stor_lun *l, struct vmm_stor_err *e)
{
	struct bdev_err be = { 0 };
	int r;

	if (l->sw)
		l->d.bd = l->sw;	/* the switch owns the current chain */
	r = vmm_disk_close(&l->d, &be);
	if (r)
		err_set(e, -r, "%s", be.msg);
	lun_forget(l);
	return r;
}

int vmm_stor_add(struct vmm_stor *s, const char *path, int lun, bool ro,
		 struct vmm_stor_err *e)
{
	struct bdev_err be = { 0 };
	struct stor_lun *l;
	int r;

	pthread_mutex_lock(&s->mu);
	if (lun < 0)
		for (lun = 0; lun < MAX_LUNS && s->luns[lun].d.bd; lun++)
			;
	if (lun >= MAX_LUNS || s->luns[lun].d.bd) {
		pthread_mutex_unlock(&s->mu);
		return lun >= MAX_LUNS ? err_set(e, ENOSPC, "no free LUN")
				       : err_set(e, EEXIST, "LUN %d is in use", lun);
	}
	l = &s->luns[lun];
	r = vmm_disk_open(path, ro, &l->d, &be);
	if (r) {
		pthread_mutex_unlock(&s->mu);
		return err_set(e, -r, "%s", be.msg);
	}
	l->chain[0] = strdup(path);
	if (!l->chain[0]) {
		r = err_set(e, ENOMEM, "out of memory");
		goto fail;
	}
	if (s->cfg.switchable) {
		l->sw = bdev_switch_open(l->d.bd, &be);
		if (!l->sw) {
			r = err_set(e, be.code ? be.code : ENOMEM, "%s", be.msg);
			goto fail;
		}
	}
	r = vsp_lun_add(s->v, (uint32_t)lun, l->sw ? l->sw : l->d.bd,
			l->d.ro ? SCSI_LUN_READ_ONLY : 0);
	if (r) {
		err_set(e, -r, "LUN %d: %s", lun, strerror(-r));
		goto fail;
	}
	pthread_mutex_unlock(&s->mu);
	return lun;
fail:
	{
		struct vmm_stor_err e2;

		lun_close(l, &e2);
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

int vmm_stor_remove(struct vmm_stor *s, int lun, struct vmm_stor_err *e)
{
	int r;

	pthread_mutex_lock(&s->mu);
	if (lun < 0 || lun >= MAX_LUNS || !s->luns[lun].d.bd) {
		pthread_mutex_unlock(&s->mu);
		return err_set(e, ENOENT, "no LUN %d", lun);
	}
	r = vsp_lun_remove(s->v, (uint32_t)lun);	/* waits for its commands */
	if (r)
		err_set(e, -r, "LUN %d: %s", lun, strerror(-r));
	else
		r = lun_close(&s->luns[lun], e);
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* "DIR/NAME-snapN.vhd" beside top for the first N that does not exist. */
static char *snap_name(const char *base, const char *top)
{
	char *b = strdup(base), *t = strdup(top), *out = NULL;
	const char *name, *dir;
	size_t n;

	if (!b || !t)
		goto done;
	name = basename(b);
	dir = dirname(t);
	n = strlen(name);
	if (n > 4 && !strcasecmp(name + n - 4, ".vhd"))
		n -= 4;
	for (int i = 1; i < 1000; i++) {
		struct stat st;

		free(out);
		if (asprintf(&out, "%s/%.*s-snap%d.vhd", dir, (int)n, name, i) < 0) {
			out = NULL;
			break;
		}
		if (stat(out, &st) < 0 && errno == ENOENT)
			goto done;
	}
	free(out);
	out = NULL;
done:
	free(b);
	free(t);
	return out;
}

/* Checks that LUN lun can switch; returns it (s->mu held) or NULL. */
static struct stor_lun *switchable_lun(struct vmm_stor *s, int lun, struct vmm_stor_err *e)
{
	struct stor_lun *l;

	if (lun < 0 || lun >= MAX_LUNS || !s->luns[lun].d.bd) {
		err_set(e, ENOENT, "no LUN %d", lun);
		return NULL;
	}
	l = &s->luns[lun];
	if (!l->sw) {
		err_set(e, ENOTSUP, "LUN %d cannot switch disks here", lun);
		return NULL;
	}
	if (l->d.ro || l->d.track || strncmp(l->d.kind, "vhd", 3)) {
		err_set(e, ENOTSUP, "LUN %d: snapshots need a writable VHD without change tracking",
			lun);
		return NULL;
	}
	return l;
}

int vmm_stor_snapshot(struct vmm_stor *s, int lun, char **parent, char **child,
		      struct vmm_stor_err *e)
{
	struct vhd_create_opts co = { .type = VHD_TYPE_DIFF };
	struct vhd_open_opts oo = { .flags = VHD_O_DIRECT };
	struct bdev_err be = { 0 };
	struct bdev *cur, *nb;
	struct stor_lun *l;
	char *name = NULL;
	int r;

	*parent = *child = NULL;
	pthread_mutex_lock(&s->mu);
	l = switchable_lun(s, lun, e);
	if (!l) {
		r = -e->code;
		goto out;
	}
	if (l->nsnap == MAX_SNAPS) {
		r = err_set(e, EMLINK, "LUN %d: %d snapshots already", lun, MAX_SNAPS);
		goto out;
	}
	name = snap_name(l->chain[0], l->chain[l->nsnap]);
	if (!name) {
		r = err_set(e, ENOMEM, "no name for the snapshot child");
		goto out;
	}
	/* The LUN quiet and flushed: what the parent holds is final before
	 * the child (and its read-only view of the parent) is made. */
	r = bdev_switch_hold(l->sw, &cur);
	if (r) {
		err_set(e, -r, "LUN %d: drain: %s", lun, bdev_last_error());
		goto out;
	}
	co.parent = l->chain[l->nsnap];
	r = vhd_create(name, &co, &be);
	nb = r ? NULL : vhd_open(name, &oo, &be);
	if (!nb) {
		bdev_switch_release(l->sw, NULL);
		if (!r)
			unlink(name);
		r = err_set(e, be.code ? be.code : EIO, "%s", be.msg);
		goto out;
	}
	r = bdev_switch_release(l->sw, nb);
	if (r) {
		bdev_close(nb);
		unlink(name);
		err_set(e, -r, "LUN %d: %s", lun, bdev_last_error());
		goto out;
	}
	/* the old chain: nothing runs on it any more */
	bdev_close(cur);
	l->d.bd = nb;
	l->chain[++l->nsnap] = name;
	*parent = strdup(l->chain[l->nsnap - 1]);
	*child = strdup(name);
	name = NULL;
out:
	pthread_mutex_unlock(&s->mu);
	free(name);
	return r;
}

int vmm_stor_merge(struct vmm_stor *s, int lun, char **into, char **child,
		   struct vmm_merge_stats *st, struct vmm_stor_err *e)
{
	struct stor_lun *l;
	struct bdev *nb;
	int r;

	*into = *child = NULL;
	pthread_mutex_lock(&s->mu);
	l = switchable_lun(s, lun, e);
	if (!l) {
		r = -e->code;
		goto out;
	}
	if (l->nsnap == 0) {
		r = err_set(e, ENOENT, "LUN %d has no snapshot child to merge", lun);
		goto out;
	}
	/* Live (merge.c): the guest's requests are held only for the last
	 * step; on failure the LUN serves the chain as before. */
	r = vmm_merge_live(l->sw, l->chain[l->nsnap], l->chain[l->nsnap - 1], &nb, st, e);
	if (r)
		goto out;
	l->d.bd = nb;
	*child = l->chain[l->nsnap];
	l->chain[l->nsnap--] = NULL;
	*into = strdup(l->chain[l->nsnap]);
out:
	pthread_mutex_unlock(&s->mu);
	return r;
}

int vmm_stor_disks_json(struct vmm_stor *s, char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "{\"disks\":[");
	char js[1200], tp[1200];

	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < MAX_LUNS && n < cap; i++) {
		struct stor_lun *l = &s->luns[i];

		if (!l->d.bd)
			continue;
		vmm_json_str(js, sizeof(js), l->chain[0]);
		vmm_json_str(tp, sizeof(tp), l->chain[l->nsnap]);
		n += (size_t)snprintf(out + n, cap - n,
				      "%s{\"lun\":%d,\"path\":%s,\"top\":%s,\"snapshots\":%d,\"kind\":\"%s\",\"size\":%llu,\"ro\":%s,\"tracked\":%s}",
				      out[n - 1] == '[' ? "" : ",", i, js, tp, l->nsnap,
				      l->d.kind, (unsigned long long)(l->sw ? l->sw : l->d.bd)->size,
				      l->d.ro ? "true" : "false", l->d.track ? "true" : "false");
	}
	pthread_mutex_unlock(&s->mu);
	if (n < cap)
		n += (size_t)snprintf(out + n, cap - n, "]}");
	return n < cap ? 0 : -ENOSPC;
}

int vmm_stor_flush(struct vmm_stor *s, struct vmm_stor_err *e)
{
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < MAX_LUNS; i++) {
		struct stor_lun *l = &s->luns[i];
		struct bdev *b = l->sw ? l->sw : l->d.bd;

		if (b && !l->d.ro && bdev_flush(b) && !rc)
			rc = err_set(e, EIO, "LUN %d: flush: %s", i, bdev_last_error());
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int vmm_stor_quiesce(struct vmm_stor *s, int timeout_ms)
{
	return vsp_quiesce(s->v, timeout_ms);
}

int vmm_stor_free(struct vmm_stor *s, struct vmm_stor_err *e)
{
	int rc = 0;

	if (!s)
		return 0;
	vsp_free(s->v);		/* removes the LUNs from the target */
	for (int i = 0; i < MAX_LUNS; i++) {
		struct vmm_stor_err e2;

		if (s->luns[i].d.bd && lun_close(&s->luns[i], &e2) && !rc) {
			*e = e2;
			rc = -e2.code;
		}
	}
	pthread_mutex_destroy(&s->mu);
	free(s);
	return rc;
}

/* One answer: {"error": msg}. */
static void answer_err(char *out, size_t cap, const char *msg)
{
	char js[1200];

	vmm_json_str(js, sizeof(js), msg);
	snprintf(out, cap, "{\"error\":%s}", js);
}

bool vmm_stor_control(struct vmm_stor *s, const struct vmm_req *q, char *out, size_t cap)
{
	struct vmm_stor_err e = { 0 };
	char j1[1200], j2[1200];
	int r;

	if (!strcmp(q->cmd, "disks")) {
		if (vmm_stor_disks_json(s, out, cap))
			answer_err(out, cap, "too many disks for one answer");
	} else if (!strcmp(q->cmd, "disk-add")) {
		if (!q->path[0]) {
			answer_err(out, cap, "disk-add needs \"path\"");
			return true;
		}
		r = vmm_stor_add(s, q->path, (int)q->lun, q->ro, &e);
		if (r < 0)
			answer_err(out, cap, e.msg);
		else
			snprintf(out, cap, "{\"ok\":true,\"lun\":%d}", r);
	} else if (!strcmp(q->cmd, "disk-remove")) {
		if (q->lun < 0) {
			answer_err(out, cap, "disk-remove needs \"lun\"");
			return true;
		}
		if (vmm_stor_remove(s, (int)q->lun, &e) < 0)
			answer_err(out, cap, e.msg);
		else
			snprintf(out, cap, "{\"ok\":true}");
	} else if (!strcmp(q->cmd, "snapshot") || !strcmp(q->cmd, "merge")) {
		bool snap = q->cmd[0] == 's';
		struct vmm_merge_stats ms = { 0 };
		char *a, *b;

		if (q->lun < 0) {
			answer_err(out, cap, snap ? "snapshot needs \"lun\"" : "merge needs \"lun\"");
			return true;
		}
		r = snap ? vmm_stor_snapshot(s, (int)q->lun, &a, &b, &e)
			 : vmm_stor_merge(s, (int)q->lun, &a, &b, &ms, &e);
		if (r < 0) {
			answer_err(out, cap, e.msg);
			return true;
		}
		vmm_json_str(j1, sizeof(j1), a ? a : "");
		vmm_json_str(j2, sizeof(j2), b ? b : "");
		if (snap)
			snprintf(out, cap, "{\"ok\":true,\"lun\":%d,\"parent\":%s,\"child\":%s}",
				 (int)q->lun, j1, j2);
		else
			snprintf(out, cap, "{\"ok\":true,\"lun\":%d,\"into\":%s,\"merged\":%s,"
				 "\"seconds\":%.3f,\"held_us\":%llu,\"bytes\":%llu,\"passes\":%d}",
				 (int)q->lun, j1, j2, ms.seconds,
				 (unsigned long long)ms.held_us,
				 (unsigned long long)ms.bytes, ms.passes);
		free(a);
		free(b);
	} else if (!strcmp(q->cmd, "stats")) {
		struct vsp_stats st;

		vsp_get_stats(s->v, &st);
		snprintf(out, cap, "{\"packets\":%llu,\"srbs\":%llu,\"errors\":%llu,\"channels_open\":%u,\"channels_failed\":%llu,\"version\":%u}",
			 (unsigned long long)st.packets, (unsigned long long)st.srbs,
			 (unsigned long long)st.srb_errors, st.channels_open,
			 (unsigned long long)st.chan_failed, st.version);
	} else {
		return false;
	}
	return true;
}
