/* rbd: a block device back-end on a Ceph RBD image through librbd.
 *
 * A disk is named as qemu names it:
 *     rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:conf=PATH][:id=USER]
 * Without conf=, librados finds the cluster as it always does (CEPH_CONF,
 * then /etc/ceph/ceph.conf).  With @SNAP the image is opened read-only at
 * that snapshot.  Reads, writes, flush, discard and write-zeroes go to
 * librbd's asynchronous calls (rbd_aio_*); block status comes from
 * rbd_diff_iterate2 (whole objects), queried once per large window and
 * cached until the next change.  No image lock of ours: librbd's
 * exclusive-lock feature arbitrates between writers. */
#ifndef RBD_RBD_H
#define RBD_RBD_H

#include <stdbool.h>
#include <stdint.h>

#include "bdev.h"

#define RBD_OPEN_RDONLY 0x1u

/* A parsed name.  Strings point into buf. */
struct rbd_spec {
	char buf[1024];
	const char *pool, *ns, *image, *snap, *conf, *id;  /* ns: NULL */
};

/* True when name uses the rbd: spelling. */
bool rbd_is_name(const char *name);
/* Parse "rbd:POOL[/NS]/IMAGE[@SNAP][:conf=PATH][:id=USER]".  0 or -EINVAL with
 * a message in e. */
int rbd_parse(const char *name, struct rbd_spec *s, struct bdev_err *e);
/* Open the image named.  NULL with e filled on failure. */
struct bdev *rbd_open_bdev(const char *name, unsigned flags,
			   struct bdev_err *e);
/* Create the image named (no @SNAP) with size bytes, then open it for
 * writing.  An existing image is -EEXIST unless replace: then it is
 * resized to size and its content discarded.  NULL with e filled. */
struct bdev *rbd_create_bdev(const char *name, uint64_t size, bool replace,
			     struct bdev_err *e);

/* ---- Snapshots and their differences (backups use them as the change
 * source of an RBD image: see tools/vhdtool/backup-rbd.c) ----
 * b is a disk rbd_open_bdev opened (any mode: snapshots are taken through
 * a handle of their own on the same pool).  0 or -errno with e filled. */
bool rbd_bdev_is(const struct bdev *b);
int rbd_bdev_snap_create(struct bdev *b, const char *snap, struct bdev_err *e);
/* -ENOENT when there is no such snapshot. */
int rbd_bdev_snap_remove(struct bdev *b, const char *snap, struct bdev_err *e);
/* The names of the image's snapshots starting with prefix: *names is one
 * malloc'd array of *n pointers followed by the strings (free(*names)). */
int rbd_bdev_snap_list(struct bdev *b, const char *prefix, char ***names,
		       size_t *n, struct bdev_err *e);
/* A running backup claims the snapshot it reads, so that another backup
 * of the same image committing meanwhile does not remove it: NULL with e
 * filled on failure.  Unclaim when done (NULL is fine).  Claims of a
 * process that died lapse within the OSD's watch timeout (30 s). */
struct rbd_claim;
struct rbd_claim *rbd_bdev_snap_claim(struct bdev *b, const char *snap,
				      struct bdev_err *e);
void rbd_bdev_snap_unclaim(struct rbd_claim *c);
/* 1 when a live process claims snap of b's image, 0 when none does (a
 * lapsed claim is cleared), -errno with e filled. */
int rbd_bdev_snap_claimed(struct bdev *b, const char *snap, struct bdev_err *e);
/* Open snapshot snap of b's image, read-only.  NULL with e filled. */
struct bdev *rbd_bdev_snap_open(struct bdev *b, const char *snap,
				struct bdev_err *e);

struct rbd_extent {
	uint64_t off, len;
};
/* The extents that differ between snapshot from and what b shows (its
 * snapshot, or the live image), sorted and merged (*ext malloc'd).  Whole
 * objects when the image has fast-diff.  0 when known; 1 when they are
 * not (the object map or fast-diff of either side is flagged invalid, or
 * snapshot from is gone): why says so and the caller reads everything;
 * -errno (e filled) when the cluster failed. */
int rbd_bdev_diff(struct bdev *b, const char *from, struct rbd_extent **ext,
		  size_t *n, char *why, size_t wl, struct bdev_err *e);

#endif
