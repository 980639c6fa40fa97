/* publish: see publish.h. */
#include "publish.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* Follow symlinks from path to the file they finally name (which need not
 * exist: a dangling link is published at its target, as open(O_CREAT)
 * would create it).  Folders on the way are left as they are: a rename
 * works through them.  Returns a malloc'd path or NULL with errno set. */
static char *follow_links(const char *path)
{
	char cur[PATH_MAX], link[PATH_MAX];
	struct stat st;

	if (snprintf(cur, sizeof(cur), "%s", path) >= (int)sizeof(cur)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	for (int hops = 0; hops < 40; hops++) {   /* the kernel's limit */
		ssize_t n;

		if (lstat(cur, &st) < 0 || !S_ISLNK(st.st_mode))
			return strdup(cur);
		n = readlink(cur, link, sizeof(link) - 1);
		if (n < 0)
			return NULL;
		link[n] = '\0';
		if (link[0] != '/') {   /* relative to the link's folder */
			char *dir = util_dirname(cur);
			int m;

			if (!dir)
				return NULL;
			m = snprintf(cur, sizeof(cur), "%s/%s", dir, link);
			free(dir);
			if (m >= (int)sizeof(cur)) {
				errno = ENAMETOOLONG;
				return NULL;
			}
		} else {
			memcpy(cur, link, (size_t)n + 1);
		}
	}
	errno = ELOOP;
	return NULL;
}

static const char *kind_of(mode_t m)
{
	return S_ISCHR(m) ? "a character device" : S_ISFIFO(m) ? "a FIFO"
	       : S_ISSOCK(m) ? "a socket" : S_ISDIR(m) ? "a folder"
	       : "not a regular file";
}

/* The writer lock on the file about to be replaced (an OFD lock on the
 * whole file, as vhd_open takes it): a process serving, writing or reading
 * it holds a lock of its own, and replacing the file under it would leave
 * it working on the unlinked old file (acknowledged writes vanish).  With
 * no write access to the old file (the folder may still allow a rename),
 * only test for such a lock. */
static int lock_target(struct publish *p, struct bdev_err *e)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = open(p->target, O_RDWR | O_CLOEXEC | O_NONBLOCK), r;

	if (fd >= 0) {
		r = fcntl(fd, F_OFD_SETLK, &fl);
	} else {
		fd = open(p->target, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return 0;   /* nobody can hold it through a descriptor we cannot open either */
		r = fcntl(fd, F_OFD_GETLK, &fl);
		if (r == 0 && fl.l_type != F_UNLCK) {
			r = -1;
			errno = EAGAIN;
		}
	}
	if (r < 0 && errno != EINVAL && errno != ENOLCK) {
		close(fd);
		return bdev_err_set(e, EBUSY,
				    "%s: in use: another process has it open (served, written, or read as a parent); not replaced",
				    p->path);
	}
	p->lock_fd = fd;
	p->locked = true;
	return 0;
}

int publish_begin(struct publish *p, const char *path, unsigned flags,
		  struct bdev_err *e)
{
	int r;

	memset(p, 0, sizeof(*p));
	p->path = path;
	p->target = follow_links(path);
	if (!p->target)
		return bdev_err_set(e, errno, "%s: %s", path, strerror(errno));
	if (stat(p->target, &p->st) == 0) {
		p->exists = true;
	} else if (errno != ENOENT) {
		return bdev_err_set(e, errno, "%s: %s", path, strerror(errno));
	}
	if (p->exists && S_ISBLK(p->st.st_mode)) {
		if (!(flags & PUBLISH_DEVICE))
			return bdev_err_set(e, EINVAL,
					    "%s: is a block device; only a raw image can be written onto it",
					    path);
	} else if (p->exists && !S_ISREG(p->st.st_mode)) {
		/* Renaming over it would replace the node (/dev/null, a
		 * FIFO a reader waits on) with a regular file; writing into
		 * it would lose the data.  qemu-img refuses these too. */
		return bdev_err_set(e, S_ISDIR(p->st.st_mode) ? EISDIR : EINVAL,
				    "%s: is %s; only a regular file or a block device can be a destination",
				    path, kind_of(p->st.st_mode));
	}
	if (p->exists && !(flags & PUBLISH_REPLACE))
		return bdev_err_set(e, EEXIST,
				    "%s: already exists (use --force to replace it)",
				    path);
	if (p->exists && S_ISBLK(p->st.st_mode)) {
		p->in_place = true;
		return 0;
	}
	if (p->exists) {
		r = lock_target(p, e);
		if (r)
			return r;
	}
	p->tmp = util_tmpname(p->target);
	if (!p->tmp)
		return bdev_err_set(e, ENOMEM, "%s: out of memory", path);
	return 0;
}

mode_t publish_mode(const struct publish *p)
{
	return p->exists ? 0600 : 0644;
}

int publish_adopt(struct publish *p, int fd, struct bdev_err *e)
{
	uid_t uid = p->st.st_uid;
	gid_t gid = p->st.st_gid;
	mode_t mode = p->st.st_mode & 0777;
	struct stat now;
	int r;

	if (!p->exists || p->in_place || p->adopted)
		return 0;
	r = fd >= 0 ? fstat(fd, &now) : stat(p->tmp, &now);
	if (r < 0)
		return bdev_err_set(e, errno, "%s: %s", p->path, strerror(errno));
	if (now.st_uid != uid || now.st_gid != gid) {
		r = fd >= 0 ? fchown(fd, uid, gid) : chown(p->tmp, uid, gid);
		if (r < 0)
			return bdev_err_set(e, errno,
					    "%s: cannot keep its owner (uid %u, gid %u) for the new file: %s; nothing was replaced",
					    p->path, (unsigned)uid, (unsigned)gid,
					    strerror(errno));
	}
	/* After chown, which may clear bits. */
	r = fd >= 0 ? fchmod(fd, mode) : chmod(p->tmp, mode);
	if (r < 0)
		return bdev_err_set(e, errno, "%s: cannot keep its mode %04o: %s",
				    p->path, (unsigned)mode, strerror(errno));
	p->adopted = true;
	return 0;
}

int publish_commit(struct publish *p, int fd, struct bdev_err *e)
{
	int r;

	if (p->in_place || !p->tmp)
		return bdev_err_set(e, EINVAL, "%s: nothing to publish", p->path);
	if (fd >= 0 && fsync(fd) < 0)
		return bdev_err_set(e, errno, "%s: fsync failed: %s", p->path,
				    strerror(errno));
	r = publish_adopt(p, fd, e);
	if (r)
		return r;
	/* Nothing was there at begin: do not replace what appeared since. */
	if (renameat2(AT_FDCWD, p->tmp, AT_FDCWD, p->target,
		      p->exists ? 0 : RENAME_NOREPLACE) < 0) {
		int err = errno;

		if (err == EINVAL && !p->exists &&
		    rename(p->tmp, p->target) == 0)
			goto renamed;   /* no RENAME_NOREPLACE here (some NFS) */
		return bdev_err_set(e, err, "%s: %s", p->path,
				    err == EEXIST ? "already exists (created meanwhile)"
				    : strerror(err));
	}
renamed:
	p->committed = true;
	r = util_fsync_dir(p->target);
	if (r)
		return bdev_err_set(e, -r, "%s: cannot sync its folder: %s",
				    p->path, strerror(-r));
	return 0;
}

void publish_end(struct publish *p)
{
	if (p->tmp && !p->committed)
		unlink(p->tmp);
	if (p->locked)
		close(p->lock_fd);
	p->locked = false;
	free(p->tmp);
	free(p->target);
	p->tmp = p->target = NULL;
}
