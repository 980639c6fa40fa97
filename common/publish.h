/* publish: the one way a finished file is put under its name (convert,
 * create, backup restore, the backup repository's small files).
 *
 *   publish_begin()   looks at the destination: symlinks are followed to
 *                     the file they name (which is what gets replaced); an
 *                     existing block device is written in place when the
 *                     caller can (PUBLISH_DEVICE); character devices, FIFOs,
 *                     sockets and folders are refused; an existing file is
 *                     replaced only with PUBLISH_REPLACE, and only when no
 *                     other process has it open with a lock (an image being
 *                     served, written, or read as a parent): the writer
 *                     lock is taken on it and held until publish_end, so
 *                     nothing starts using the old file meanwhile.  Picks
 *                     a temporary name beside the target.
 *   the caller        creates p->tmp (mode publish_mode()) and writes it
 *   publish_adopt()   gives the temporary file the replaced file's owner,
 *                     group and permission bits; call it right after
 *                     creating the file, before data goes in (commit does
 *                     it too if the caller did not)
 *   publish_commit()  fsync, rename over the target (RENAME_NOREPLACE when
 *                     nothing was there at begin), fsync the folder
 *   publish_end()     removes the temporary file unless committed; frees
 *
 * Crash safety: until the rename the target is untouched; after it, the
 * target is the complete new file.  A crash can leave the temporary file
 * (".NAME.tmp.PID.N" beside the target) behind, never a partial target.
 * Messages name the path the caller gave, never the temporary name.
 * Functions return 0 or -errno with e filled. */
#ifndef PUBLISH_H
#define PUBLISH_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "bdev.h"

#define PUBLISH_REPLACE 0x1u  /* an existing file may be replaced */
#define PUBLISH_DEVICE  0x2u  /* an existing block device is written in place */

struct publish {
	const char *path;      /* as the caller gave it (messages) */
	char *target;          /* path with symlinks followed (malloc'd) */
	char *tmp;             /* temporary name beside target; NULL in place */
	bool exists;           /* target existed at begin (st is valid) */
	bool in_place;         /* target is a block device: write target */
	bool adopted, committed;
	bool locked;           /* lock_fd holds the lock on the old target */
	int lock_fd;
	struct stat st;        /* the existing target */
};

int publish_begin(struct publish *p, const char *path, unsigned flags,
		  struct bdev_err *e);
/* Mode to create p->tmp with: 0644 for a new file; 0600 when replacing
 * (publish_adopt then sets the replaced file's bits), so a private image's
 * data is never readable by others under the temporary name. */
mode_t publish_mode(const struct publish *p);
/* Owner, group and permission bits of the replaced file onto the
 * temporary file (fd, or by name when fd < 0).  A no-op for new files.
 * -EPERM when the owner cannot be kept (not root): nothing is replaced. */
int publish_adopt(struct publish *p, int fd, struct bdev_err *e);
/* fsync fd (if >= 0; the caller closes it), adopt, rename, fsync the
 * folder.  Not for in-place targets (the caller flushes those). */
int publish_commit(struct publish *p, int fd, struct bdev_err *e);
void publish_end(struct publish *p);

#endif
