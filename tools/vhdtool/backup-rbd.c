/* Backups of a Ceph RBD image: the image's own snapshots as the change
 * source of bkp_create (struct bkp_snapshots), on rbd/rbd.h.
 *
 * Each backup takes the snapshot "vhdstack-bkp-ID" and reads it, not the
 * live image.  An incremental reads what rbd_diff_iterate2 reports changed
 * between the previous backup's snapshot and the new one (whole objects
 * with fast-diff); an object map flagged invalid or a previous snapshot
 * that is gone make it a full backup with the reason.  The snapshot is
 * claimed while the backup runs (rbd_bdev_snap_claim).  Once the backup is
 * committed, every other vhdstack-bkp-* snapshot of the image that no live
 * backup claims is removed: one stays, the next backup's base, plus those
 * that concurrent backups of the same image are still reading. */
#include "vhdtool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rbd/rbd.h"

#define SNAP_PREFIX "vhdstack-bkp-"

static struct vt_rbd_snaps *V(void *opaque)
{
	return opaque;
}

static int take(void *opaque, const char *id, char name[BKP_SNAP_MAX],
		struct bdev **snap, struct bdev_err *e)
{
	struct vt_rbd_snaps *v = V(opaque);
	int rc;

	snprintf(v->name, sizeof(v->name), SNAP_PREFIX "%s", id);
	rc = rbd_bdev_snap_create(v->img, v->name, e);
	if (rc)
		return rc;
	v->claim = rbd_bdev_snap_claim(v->img, v->name, e);
	v->snap = v->claim ? rbd_bdev_snap_open(v->img, v->name, e) : NULL;
	if (!v->snap) {
		struct bdev_err e2;

		rbd_bdev_snap_unclaim(v->claim);
		v->claim = NULL;
		(void)rbd_bdev_snap_remove(v->img, v->name, &e2);
		return -(e->code ? e->code : EIO);
	}
	snprintf(name, BKP_SNAP_MAX, "%s", v->name);
	*snap = v->snap;
	return 0;
}

static int diff(void *opaque, const char *base, char *why, size_t wl,
		struct bdev_err *e)
{
	struct vt_rbd_snaps *v = V(opaque);

	return rbd_bdev_diff(v->snap, base, &v->ext, &v->n, why, wl, e);
}

static bool changed(void *opaque, uint64_t off, uint64_t len)
{
	struct vt_rbd_snaps *v = V(opaque);
	size_t lo = 0, hi = v->n;

	/* The first extent ending after off. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->ext[mid].off + v->ext[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->n && v->ext[lo].off < off + len;
}

static void drop(struct vt_rbd_snaps *v, const char *snap)
{
	struct bdev_err e = { 0 };

	if (rbd_bdev_snap_remove(v->img, snap, &e) && e.code != ENOENT)
		vt_err(NULL, "warning: %s", e.msg);
}

static void end(void *opaque, bool committed)
{
	struct vt_rbd_snaps *v = V(opaque);
	struct bdev_err e = { 0 };
	char **names;
	size_t n;

	if (v->snap)
		bdev_close(v->snap);
	v->snap = NULL;
	rbd_bdev_snap_unclaim(v->claim);
	v->claim = NULL;
	if (!committed) {
		drop(v, v->name);
		return;
	}
	if (rbd_bdev_snap_list(v->img, SNAP_PREFIX, &names, &n, &e)) {
		vt_err(NULL, "warning: earlier backup snapshots stay: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int live;

		if (!strcmp(names[i], v->name))
			continue;
		live = rbd_bdev_snap_claimed(v->img, names[i], &e);
		if (live < 0)
			vt_err(NULL, "warning: backup snapshot %s stays: %s", names[i], e.msg);
		else if (!live)
			drop(v, names[i]);
	}
	free(names);
}

bool vt_rbd_snaps_init(struct vt_rbd_snaps *v, struct bdev *img)
{
	struct rbd_spec s;
	struct bdev_err e;

	memset(v, 0, sizeof(*v));
	/* An image opened at a snapshot (@SNAP) is read as it is. */
	if (!rbd_bdev_is(img) || rbd_parse(img->name, &s, &e) || s.snap)
		return false;
	v->img = img;
	v->s = (struct bkp_snapshots){ .opaque = v, .take = take, .diff = diff,
				       .changed = changed, .end = end };
	return true;
}

void vt_rbd_snaps_fini(struct vt_rbd_snaps *v)
{
	free(v->ext);
	v->ext = NULL;
	v->n = 0;
}
