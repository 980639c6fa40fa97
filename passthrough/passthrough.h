/* passthrough: pass-through LUNs (a host block device or a regular file
 * served as a disk, O_DIRECT with libaio), and the libaio engine that fixed
 * VHDs use for their data area.
 *
 * Requests reach the disk without the page cache: reads and writes go out
 * with io_submit() from the submitting thread, completions are reaped by
 * one thread per disk woken through an eventfd, FUA is a per-write
 * RWF_DSYNC, flush an aio fdsync.  Discard and write-zeroes (ioctls,
 * fallocate) run on the block layer's workers.  The block layer bounces
 * requests that break the direct-I/O alignment, so the engine only ever
 * sees aligned ones. */
#ifndef PASSTHROUGH_H
#define PASSTHROUGH_H

#include <stdint.h>

#include "common/bdev.h"

#define PT_OPEN_RDONLY 0x1u
#define PT_OPEN_BUFFERED 0x2u  /* no O_DIRECT (file systems without it) */
#define PT_OPEN_NOLOCK 0x4u    /* read-only: take no image lock (-U) */

/* Open a block device or regular file.  Limits and identity come from the
 * device (logical/physical block size, maximum transfer, discard
 * granularity, read-only flag, WWN or serial from sysfs) or, for a file,
 * from its file system (direct-I/O alignment) and device+inode.  Where a
 * file system refuses O_DIRECT the file is opened buffered.  The image
 * lock of common/imglock.h is taken (exclusive when writable, shared when
 * read-only, none with PT_OPEN_NOLOCK on a read-only open): EBUSY "in
 * use" when another process holds a conflicting one.  NULL with e filled
 * on error. */
struct bdev *pt_open(const char *path, unsigned flags, struct bdev_err *e);

/* ---- the engine ---- */
struct pt_aio;

/* An engine serving requests on fd, for disk b (for messages).  NULL with
 * e filled. */
struct pt_aio *pt_aio_new(struct bdev *b, int fd, struct bdev_err *e);
/* Take a READ, WRITE or FLUSH request (aligned, checked) whose data lies
 * at file_off in the file: 0, the request then completes through
 * bdev_req_complete() on the engine's thread; or -ENOTSUP for other
 * operations. */
int pt_aio_submit(struct pt_aio *a, struct bdev_req *rq, uint64_t file_off);
/* Stop the completion thread and free the engine.  Call after
 * bdev_drain(): nothing may be in flight. */
void pt_aio_free(struct pt_aio *a);

/* Direct-I/O alignment of fd (offsets and lengths; memory): statx where
 * the kernel reports it, else a probe.  0 or -errno (no O_DIRECT). */
int pt_dio_align(int fd, uint32_t *off_align, uint32_t *mem_align);

#endif
