/* rbd: a block device back-end on a Ceph RBD image through librbd.
 *
 * A disk is named as qemu names it:
 *     rbd:POOL/IMAGE[@SNAP][:conf=PATH][:id=USER]
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
	const char *pool, *image, *snap, *conf, *id;
};

/* True when name uses the rbd: spelling. */
bool rbd_is_name(const char *name);
/* Parse "rbd:POOL/IMAGE[@SNAP][:conf=PATH][:id=USER]".  0 or -EINVAL with
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

#endif
