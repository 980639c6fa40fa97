/* Image locks between processes, and how opens inside one process share
 * them (imglock.h): VHD images (vhd/open.c), raw files and block devices
 * (bdev-file.c, passthrough/pt.c) alike.
 *
 * OFD locks belong to an open file description, so two opens of one file
 * in one process would refuse each other, although the process orders
 * their use itself (a VMM makes a snapshot child of the disk it writes and
 * opens it, the parent read-only, before closing the old chain).  The
 * process therefore holds one lock per file: a dup of the first
 * descriptor keeps it, with counts of the process's readers and writers.
 * A second writer in the process is refused like one in another process;
 * readers share whatever lock the process holds; when the last writer
 * closes while readers remain, the lock is turned shared (a conversion of
 * the same lock, so no other process can slip in between).  A child made
 * by fork() shares its parent's descriptors but not its opens: it ignores
 * the entries it inherited, and its own opens lock like another
 * process's. */
#include "imglock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct held {
	pid_t pid;                 /* entries a fork inherited are not ours */
	dev_t dev;
	ino_t ino;
	int fd;                    /* holds the OFD lock (a dup) */
	bool exclusive;            /* the lock's mode now */
	int readers, writers;      /* this process's opens */
	struct held *next;
};

/* Guards the list; held for the lock calls, which do not block
 * (F_OFD_SETLK). */
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static struct held *held_list;

static int set_lock(int fd, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET };

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	/* File systems without locks: go on unprotected, as qemu does. */
	return (errno == EINVAL || errno == ENOLCK) ? 0 : -EBUSY;
}

int img_lock_fd(int fd, bool exclusive, bool *by_writer)
{
	int r = set_lock(fd, exclusive ? F_WRLCK : F_RDLCK);

	if (by_writer) {
		struct flock q = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

		*by_writer = r && fcntl(fd, F_OFD_GETLK, &q) == 0 &&
			     q.l_type == F_WRLCK;
	}
	return r;
}

const char *img_lock_why(bool exclusive, bool by_writer)
{
	if (!exclusive)
		return "in use: another process has it open for writing (-U/--force-share reads it anyway)";
	return by_writer ? "in use: another process has it open for writing"
	       : "in use: another process is reading it (it is served, or the parent of an image in use)";
}

static struct held *find(dev_t dev, ino_t ino, struct held ***link)
{
	struct held **pp = &held_list;

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->dev == dev && (*pp)->ino == ino &&
		    (*pp)->pid == getpid())
			break;
	if (link)
		*link = pp;
	return *pp;
}

/* A writer where this process only reads: the shared lock is let go and
 * the exclusive one taken on the writer's descriptor; if another process
 * reads too, the shared lock is taken back and the writer refused. */
static int upgrade(struct held *h, int fd, bool *by_writer)
{
	int nfd, r;

	(void)set_lock(h->fd, F_UNLCK);
	r = img_lock_fd(fd, true, by_writer);
	if (r) {
		(void)set_lock(h->fd, F_RDLCK);
		return r;
	}
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0) {
		(void)set_lock(fd, F_UNLCK);
		(void)set_lock(h->fd, F_RDLCK);
		return -errno;
	}
	close(h->fd);
	h->fd = nfd;
	h->exclusive = true;
	return 0;
}

int img_lock_take(struct img_lock *l, int fd, bool exclusive, bool *by_writer)
{
	struct held *h;
	struct stat st;
	dev_t dev;
	ino_t ino;
	int r = 0;

	*by_writer = false;
	l->held = 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	dev = st.st_dev;
	ino = st.st_ino;
	pthread_mutex_lock(&held_mu);
	h = find(dev, ino, NULL);
	if (!h) {
		h = calloc(1, sizeof(*h));
		if (!h) {
			r = -ENOMEM;
			goto out;
		}
		r = img_lock_fd(fd, exclusive, by_writer);
		h->fd = r ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (!r && h->fd < 0)
			r = -errno;
		if (r) {
			free(h);
			goto out;
		}
		h->pid = getpid();
		h->dev = dev;
		h->ino = ino;
		h->exclusive = exclusive;
		h->next = held_list;
		held_list = h;
	} else if (exclusive && h->writers) {
		*by_writer = true;     /* a second writer, in this process */
		r = -EBUSY;
		goto out;
	} else if (exclusive && !h->exclusive) {
		r = upgrade(h, fd, by_writer);
		if (r)
			goto out;
	}
	if (exclusive)
		h->writers++;
	else
		h->readers++;
	l->dev = dev;
	l->ino = ino;
	l->held = exclusive ? 2 : 1;
out:
	pthread_mutex_unlock(&held_mu);
	return r;
}

void img_lock_drop(struct img_lock *l)
{
	struct held *h, **link;

	if (!l->held)
		return;
	pthread_mutex_lock(&held_mu);
	h = find(l->dev, l->ino, &link);
	if (h) {
		if (l->held == 2)
			h->writers--;
		else
			h->readers--;
		if (!h->writers && !h->readers) {
			*link = h->next;
			close(h->fd);      /* the lock goes with it */
			free(h);
		} else if (!h->writers && h->exclusive) {
			(void)set_lock(h->fd, F_RDLCK);
			h->exclusive = false;
		}
	}
	pthread_mutex_unlock(&held_mu);
	l->held = 0;
}
