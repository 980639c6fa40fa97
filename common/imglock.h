/* imglock: one writer or many readers per disk image, between processes,
 * with OFD locks (as qemu locks its images), for VHD files, raw files and
 * block devices alike.
 *
 * A writer (a read-write open, a whole-image operation) holds an exclusive
 * lock: a second writer is refused instead of two processes writing over
 * each other, and files are not replaced or deleted under it
 * (common/publish.c tests the lock of the file it replaces).  A reader (a
 * read-only open: a served child's parent, a read-only export, info, a
 * backup source) holds a shared lock: writers are refused while it reads,
 * and it is refused while a writer writes, unless the caller takes no
 * lock (-U/--force-share).  The kernel drops a lock when the descriptor
 * closes, also on a crash.
 *
 * OFD locks belong to an open file description, so two opens of one file
 * in one process would refuse each other although the process orders
 * their use itself (a VMM opens a snapshot child, the parent read-only,
 * before closing the chain that wrote the parent).  img_lock_take shares
 * one lock among a process's opens of a file (see imglock.c).
 *
 * Return convention: 0 or -errno; nothing prints.  File systems without
 * locks: 0 (unprotected, as qemu goes on).
 */
#ifndef IMGLOCK_H
#define IMGLOCK_H

#include <stdbool.h>
#include <sys/types.h>

/* One open's share of its process's lock on a file. */
struct img_lock {
	int held;		/* 0 none, 1 reader, 2 writer */
	dev_t dev;
	ino_t ino;
};

/* Lock the file open on fd (for reading: shared; for writing: exclusive)
 * on behalf of one open, sharing the process's lock with its other opens
 * of the file (a second writer in the process is refused).  0; -EBUSY
 * when another process (or, for a writer, another writer here) holds a
 * conflicting lock, *by_writer telling whether that is a writer's; or
 * -errno.  A read lock needs fd open for reading, a write lock for
 * writing. */
int img_lock_take(struct img_lock *l, int fd, bool exclusive, bool *by_writer);
/* Give this open's share back: the lock goes with the process's last
 * open, or turns shared when only readers remain. */
void img_lock_drop(struct img_lock *l);

/* The bare lock on one descriptor (no sharing inside the process): for
 * whole-file operations that hold their own descriptor (check --repair). */
int img_lock_fd(int fd, bool exclusive, bool *by_writer);
/* "in use: ..." for a refused lock. */
const char *img_lock_why(bool exclusive, bool by_writer);

#endif
