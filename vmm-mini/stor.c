/* stor: a SCSI controller's disks for `vmm-mini host` and `vmm-mini run`:
 * the storage VSP on a vmbus manager, its LUNs (VHD chains, pass-through
 * files and devices), hot add and remove, and for disks behind a switch
 * layer, snapshots and merges while the guest runs.
 *
 * A writable switchable LUN's stack: the LUN -> gate (a switch used only
 * to hold everything above the chain, the tracking's notes included) ->
 * obs (change tracking of the image given, chain[0]: IMAGE.ctk, set when
 * the disk is added or at its first live backup) -> sw (the switch that
 * snapshots and merges swap) -> the VHD chain.  A read-only one: the LUN
 * -> sw -> the image.
 *
 * Locking: s->mu guards luns[] and serialises the control operations (a
 * merge holds it while the LUN's requests are held in its switch; the
 * storvsp threads never take it).  A snapshot in phases marks the LUN busy
 * instead, so that the phases run without s->mu; l->d.track is set with
 * s->mu held and read by the tracking's notes (atomic).
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

#include "backup/bkp.h"
#include "scsi/scsi.h"
#include "storvsp/storvsp.h"
#include "vhd/vhd.h"
#include "vmm-mini/vmm-merge.h"
#include "vmm-mini/vmm.h"

#define MAX_LUNS SCSI_MAX_LUNS
#define MAX_SNAPS 8		/* snapshot children on top of one image */

struct stor_lun {
	struct vmm_disk d;	/* d.bd: the disk as opened (track layer or image) */
	struct bdev *sw;	/* switch above d.bd (cfg.switchable) */
	struct bdev *obs;	/* writable switchable: tracking above sw */
	struct bdev *gate;	/* writable switchable: hold switch above obs */
	/* the VHD chain's files we made: chain[0] = the image given, chain[n]
	 * = the n-th snapshot child; the top one takes the writes */
	char *chain[MAX_SNAPS + 1];
	int nsnap;
	/* not NULL: what keeps the LUN busy ("a snapshot" from prepare to
	 * finish or abort); other control operations on it get -EBUSY */
	const char *busy;
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

/* -EBUSY (e filled) when LUN lun (l) is busy, else 0.  s->mu held. */
static int lun_busy(const struct stor_lun *l, int lun, struct vmm_stor_err *e)
{
	if (!l->busy)
		return 0;
	return err_set(e, EBUSY, "LUN %d is busy with %s", lun, l->busy);
}

/* What the LUN serves: the top of its stack. */
static struct bdev *lun_top(const struct stor_lun *l)
{
	return l->gate ? l->gate : l->obs ? l->obs : l->sw ? l->sw : l->d.bd;
}

/* The observer's hook: a write completed through it. */
static void lun_note(void *opaque, uint64_t off, uint64_t len)
{
	struct stor_lun *l = opaque;
	struct bkp_track *t = __atomic_load_n(&l->d.track, __ATOMIC_ACQUIRE);

	if (t)
		bkp_track_note(t, off, len);
}

/* Flush and close a LUN's disk (the top of its stack, which closes what is
 * behind it; then its tracking).  Called with s->mu held, the LUN out of
 * the target. */
static int lun_close(struct stor_lun *l, struct vmm_stor_err *e)
{
	struct bdev_err be = { 0 };
	int r;

	l->d.bd = lun_top(l);	/* each layer owns the one below */
	r = vmm_disk_close(&l->d, &be);
	if (r)
		err_set(e, -r, "%s", be.msg);
	lun_forget(l);
	return r;
}

/* The switch over the image l->d.bd, and for a writable LUN the tracking
 * (IMAGE.ctk if there is one) and the gate above it.  On error what was
 * made stays in l for lun_close. */
static int lun_stack(struct stor_lun *l, struct bdev_err *e)
{
	struct bdev_err te = { 0 };

	l->sw = bdev_switch_open(l->d.bd, e);
	if (!l->sw)
		return -(e->code ? e->code : ENOMEM);
	if (!l->d.ro) {
		if (strcmp(l->d.kind, "rbd"))   /* no IMAGE.ctk beside an RBD image */
			l->d.track = bkp_track_open(bdev_switch_lower(l->sw), l->d.path,
						    false, &te);
		l->obs = bdev_observe_open(l->sw, true, lun_note, l, e);
		if (!l->obs)
			return -(e->code ? e->code : ENOMEM);
		l->gate = bdev_switch_open(l->obs, e);
		if (!l->gate)
			return -(e->code ? e->code : ENOMEM);
	}
	return 0;
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
	r = s->cfg.switchable ? vmm_disk_open_bare(path, ro, &l->d, &be)
			      : vmm_disk_open(path, ro, &l->d, &be);
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
		r = lun_stack(l, &be);
		if (r) {
			err_set(e, -r, "%s", be.msg);
			goto fail;
		}
	}
	r = vsp_lun_add(s->v, (uint32_t)lun, lun_top(l), l->d.ro ? SCSI_LUN_READ_ONLY : 0);
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
	if (lun_busy(&s->luns[lun], lun, e)) {
		pthread_mutex_unlock(&s->mu);
		return -EBUSY;
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

/* Checks that LUN lun can switch and is not busy; returns it (s->mu
 * held) or NULL. */
static struct stor_lun *switchable_lun(struct vmm_stor *s, int lun, struct vmm_stor_err *e)
{
	struct stor_lun *l;

	if (lun < 0 || lun >= MAX_LUNS || !s->luns[lun].d.bd) {
		err_set(e, ENOENT, "no LUN %d", lun);
		return NULL;
	}
	l = &s->luns[lun];
	if (lun_busy(l, lun, e))
		return NULL;
	if (!l->sw) {
		err_set(e, ENOTSUP, "LUN %d cannot switch disks here", lun);
		return NULL;
	}
	if (l->d.ro || !l->gate || strncmp(l->d.kind, "vhd", 3)) {
		err_set(e, ENOTSUP, "LUN %d: snapshots need a writable VHD", lun);
		return NULL;
	}
	return l;
}

/* ---- snapshots in phases ---- */

struct vmm_stor_snap {
	struct vmm_stor *s;
	struct stor_lun *l;
	int lun;
	bool freeze;		/* a live backup's: freeze the tracking */
	char *name;		/* the child's file, created by prepare */
	struct bdev *cur;	/* committed: the chain the child replaced */
	struct bdev *old;	/* released: that chain, closed at finish/abort */
	struct bdev *nb;	/* committed: the child opened over it */
	struct bkp_track_frozen *fr;	/* committed, tracked: the marks */
	bool held, released;
};

/* A writable VHD LUN without IMAGE.ctk starts being tracked at its first
 * live backup (the file made now, before the freeze; the backup of this
 * freeze reads everything, the next one is incremental).  Only on the
 * image given (no snapshot child yet).  Failing that, it stays untracked.
 * Called with s->mu held, the LUN busy. */
static void lun_track_start(struct stor_lun *l)
{
	struct bdev_err te = { 0 };
	struct bkp_track *t;

	if (l->d.track || l->nsnap)
		return;
	t = bkp_track_open(bdev_switch_lower(l->sw), l->chain[0], true, &te);
	__atomic_store_n(&l->d.track, t, __ATOMIC_RELEASE);
}

static int snap_prepare(struct vmm_stor *s, int lun, bool freeze, struct vmm_stor_snap **out,
			struct vmm_stor_err *e)
{
	struct vhd_create_opts co = { .type = VHD_TYPE_DIFF };
	struct bdev_err be = { 0 };
	struct vmm_stor_snap *p;
	struct stor_lun *l;
	int r;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(e, ENOMEM, "out of memory");
	pthread_mutex_lock(&s->mu);
	l = switchable_lun(s, lun, e);
	if (!l) {
		r = -e->code;
		goto fail;
	}
	if (l->nsnap == MAX_SNAPS) {
		r = err_set(e, EMLINK, "LUN %d: %d snapshots already", lun, MAX_SNAPS);
		goto fail;
	}
	p->name = snap_name(l->chain[0], l->chain[l->nsnap]);
	if (!p->name) {
		r = err_set(e, ENOMEM, "no name for the snapshot child");
		goto fail;
	}
	/* Only the file: the child is opened (with its read-only view of the
	 * parent's metadata) at commit, once the parent is quiet. */
	co.parent = l->chain[l->nsnap];
	r = vhd_create(p->name, &co, &be);
	if (r) {
		err_set(e, be.code ? be.code : EIO, "%s", be.msg);
		goto fail;
	}
	p->s = s;
	p->l = l;
	p->lun = lun;
	p->freeze = freeze;
	l->busy = "a snapshot";
	if (freeze)
		lun_track_start(l);
	pthread_mutex_unlock(&s->mu);
	*out = p;
	return 0;
fail:
	pthread_mutex_unlock(&s->mu);
	free(p->name);
	free(p);
	return r;
}

int vmm_stor_snap_prepare(struct vmm_stor *s, int lun, struct vmm_stor_snap **out,
			  struct vmm_stor_err *e)
{
	return snap_prepare(s, lun, true, out, e);
}

/* The LUN's stack is its own: the LUN is busy, so no other control
 * operation touches it, and s->mu is not needed from here to release.
 * The gate holds: nothing runs below it, no tracking note either. */
int vmm_stor_snap_hold(struct vmm_stor_snap *p, struct vmm_stor_err *e)
{
	struct bdev *below;
	int r;

	if (p->held)
		return err_set(e, EINVAL, "LUN %d is held already", p->lun);
	r = bdev_switch_hold(p->l->gate, &below);
	if (r)
		return err_set(e, -r, "LUN %d: drain: %s", p->lun, bdev_last_error());
	p->held = true;
	return 0;
}

int vmm_stor_snap_commit(struct vmm_stor_snap *p, struct vmm_stor_err *e)
{
	struct vhd_open_opts oo = { .flags = VHD_O_DIRECT };
	struct bdev_err be = { 0 };
	struct bkp_track *t = __atomic_load_n(&p->l->d.track, __ATOMIC_ACQUIRE);
	struct bdev *nb;
	int r;

	if (!p->held || p->released || p->nb)
		return err_set(e, EINVAL, "LUN %d: commit needs the LUN held", p->lun);
	nb = vhd_open(p->name, &oo, &be);
	if (!nb)
		return err_set(e, be.code ? be.code : EIO, "%s", be.msg);
	/* The marks as of now (memory only).  Failing that (out of memory),
	 * the backup of this snapshot reads everything. */
	if (p->freeze && t)
		p->fr = bkp_track_freeze(t, &be);
	/* nothing runs below the gate: the swap only flushes and swaps */
	r = bdev_switch_swap(p->l->sw, nb, &p->cur);
	if (r) {
		bdev_close(nb);
		bkp_track_frozen_free(p->fr);
		p->fr = NULL;
		return err_set(e, -r, "LUN %d: %s", p->lun, bdev_last_error());
	}
	p->nb = nb;
	return 0;
}

void vmm_stor_snap_release(struct vmm_stor_snap *p)
{
	struct stor_lun *l = p->l;

	if (!p->held || p->released)
		return;
	(void)bdev_switch_release(l->gate, NULL);	/* cannot fail without a new disk */
	p->released = true;
	if (!p->nb)
		return;
	/* the old chain: nothing runs on it any more (the child holds its
	 * own read-only view of the image).  Closed at finish or abort, not
	 * here: its close flushes (two fdatasyncs), and release is inside a
	 * live backup's freeze window (bench/vss.sh: window 42 -> 7 ms). */
	p->old = p->cur;
	p->cur = NULL;
	pthread_mutex_lock(&p->s->mu);
	l->d.bd = p->nb;
	l->chain[++l->nsnap] = p->name;
	p->name = NULL;
	pthread_mutex_unlock(&p->s->mu);
}

/* realpath(path) into out, else path as it is. */
static void abs_path(const char *path, char *out, size_t cap)
{
	char *a = realpath(path, NULL);

	snprintf(out, cap, "%s", a ? a : path);
	free(a);
}

/* CHILD.frozen.ctk (malloc'd): a live backup's frozen tracking file. */
static char *frozen_ctk_name(const char *child)
{
	char *n = NULL;

	return asprintf(&n, "%s.frozen.ctk", child) < 0 ? NULL : n;
}

/* Ends the snapshot p (the LUN no longer busy) and frees it. */
static void snap_end(struct vmm_stor_snap *p)
{
	if (p->old)
		bdev_close(p->old);
	pthread_mutex_lock(&p->s->mu);
	p->l->busy = NULL;
	pthread_mutex_unlock(&p->s->mu);
	bkp_track_frozen_free(p->fr);
	free(p->name);
	free(p);
}

/* The frozen tracking file of the snapshot p (committed, released) beside
 * its child, named in info->ctk.  The LUN is busy: its chain stays. */
static int snap_write_ctk(struct vmm_stor_snap *p, struct vmm_stor_snap_info *info,
			  struct vmm_stor_err *e)
{
	struct stor_lun *l = p->l;
	struct bdev_err be = { 0 };
	struct bdev_file_info fi;
	char *ctk;
	int r;

	/* the frozen image: the child's parent, read only since the switch;
	 * found through the block layer, as any disk's backing file */
	if (bdev_file_info(p->nb, &fi) || !fi.backing)
		return err_set(e, EINVAL, "LUN %d: the snapshot child %s has no parent disk",
			       p->lun, l->chain[l->nsnap]);
	ctk = frozen_ctk_name(l->chain[l->nsnap]);
	if (!ctk)
		return err_set(e, ENOMEM, "out of memory");
	r = bkp_track_frozen_write(p->fr, fi.backing, l->chain[l->nsnap - 1],
				   ctk, &be);
	if (r)
		err_set(e, -r, "LUN %d: frozen tracking file: %s", p->lun, be.msg);
	else
		abs_path(ctk, info->ctk, sizeof(info->ctk));
	free(ctk);
	return r;
}

int vmm_stor_snap_finish(struct vmm_stor_snap *p, struct vmm_stor_snap_info *info,
			 struct vmm_stor_err *e)
{
	struct stor_lun *l = p->l;
	int r = 0;

	memset(info, 0, sizeof(*info));
	info->lun = p->lun;
	if (!p->released || !p->nb) {
		r = err_set(e, EINVAL, "LUN %d: the snapshot was not committed and released",
			    p->lun);
		vmm_stor_snap_abort(p);
		return r;
	}
	abs_path(l->chain[l->nsnap - 1], info->frozen, sizeof(info->frozen));
	abs_path(l->chain[l->nsnap], info->child, sizeof(info->child));
	if (p->fr)
		r = snap_write_ctk(p, info, e);
	snap_end(p);
	return r;
}

void vmm_stor_snap_abort(struct vmm_stor_snap *p)
{
	struct bdev *child;

	if (!p)
		return;
	if (p->held && !p->released && p->nb) {
		/* switched, but nothing of the guest's went to the child yet:
		 * back to the chain it replaced */
		if (bdev_switch_swap(p->l->sw, p->cur, &child) == 0) {
			bdev_close(child);
			p->nb = p->cur = NULL;
		}
	}
	/* the child stays (mergeable) when it could not be undone */
	vmm_stor_snap_release(p);
	if (p->name)		/* never served: nothing of the guest's in it */
		unlink(p->name);
	snap_end(p);
}

int vmm_stor_snapshot(struct vmm_stor *s, int lun, char **parent, char **child,
		      struct vmm_stor_err *e)
{
	struct vmm_stor_snap_info *info;
	struct vmm_stor_snap *p;
	int r;

	*parent = *child = NULL;
	info = malloc(sizeof(*info));
	if (!info)
		return err_set(e, ENOMEM, "out of memory");
	r = snap_prepare(s, lun, false, &p, e);
	if (r)
		goto out;
	r = vmm_stor_snap_hold(p, e);
	if (!r) {
		r = vmm_stor_snap_commit(p, e);
		vmm_stor_snap_release(p);
	}
	if (r) {
		vmm_stor_snap_abort(p);
		goto out;
	}
	pthread_mutex_lock(&s->mu);
	*parent = strdup(s->luns[lun].chain[s->luns[lun].nsnap - 1]);
	*child = strdup(s->luns[lun].chain[s->luns[lun].nsnap]);
	pthread_mutex_unlock(&s->mu);
	r = vmm_stor_snap_finish(p, info, e);
out:
	free(info);
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
				      l->d.kind, (unsigned long long)lun_top(l)->size,
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
		struct bdev *b = lun_top(l);

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

/* A merged child's frozen tracking file (if a live backup left one):
 * its image no longer exists. */
static void forget_frozen_ctk(const char *child)
{
	char *ctk = frozen_ctk_name(child);

	if (ctk)
		unlink(ctk);
	free(ctk);
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
		if (!snap && b)
			forget_frozen_ctk(b);
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
