/* The raw-file back-end: a regular file or a block device, buffered I/O.
 * Holes found with SEEK_DATA/SEEK_HOLE report as zero.  Requests go straight
 * to pread/pwrite, which are safe to issue from several threads. */
#include "bdev.h"
#include "imglock.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_bdev {
	struct bdev b;          /* must be first */
	int fd;
	bool is_blockdev;
	struct img_lock lock;
};

static struct file_bdev *fb(struct bdev *b)
{
	return (struct file_bdev *)b;
}

static int file_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	int r = util_pread_full(fb(b)->fd, buf, len, off, true);

	return r ? bdev_set_error(b, r, "read at offset %llu failed: %s",
				  (unsigned long long)off, strerror(-r)) : 0;
}

static int file_flush(struct bdev *b)
{
	if (fdatasync(fb(b)->fd) < 0)
		return bdev_set_error(b, errno, "flush failed: %s",
				      strerror(errno));
	return 0;
}

static int file_write(struct bdev *b, const void *buf, uint64_t off,
		      size_t len, unsigned flags)
{
	int r = util_pwrite_full(fb(b)->fd, buf, len, off);

	if (r)
		return bdev_set_error(b, r, "write at offset %llu failed: %s",
				      (unsigned long long)off, strerror(-r));
	return (flags & BDEV_FUA) ? file_flush(b) : 0;
}

static int file_write_zeroes(struct bdev *b, uint64_t off, uint64_t len,
			     unsigned flags)
{
	struct file_bdev *f = fb(b);
	int mode = FALLOC_FL_ZERO_RANGE;

	if (f->is_blockdev) {
		uint64_t range[2] = { off, len };

		if (ioctl(f->fd, BLKZEROOUT, range) == 0)
			goto done;
		return -EOPNOTSUPP;
	}
	if (flags & BDEV_MAY_UNMAP)
		mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	if (fallocate(f->fd, mode, (off_t)off, (off_t)len) < 0) {
		if (mode != FALLOC_FL_ZERO_RANGE &&
		    fallocate(f->fd, FALLOC_FL_ZERO_RANGE, (off_t)off,
			      (off_t)len) == 0)
			goto done;
		return -EOPNOTSUPP;   /* bdev_write_zeroes writes zeros */
	}
done:
	return (flags & BDEV_FUA) ? file_flush(b) : 0;
}

static int file_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	struct file_bdev *f = fb(b);

	/* Advisory: failure to punch is not an error. */
	if (!f->is_blockdev)
		(void)fallocate(f->fd, FALLOC_FL_PUNCH_HOLE |
				FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
	return 0;
}

static int file_block_status(struct bdev *b, uint64_t off, uint64_t len,
			     struct bdev_status *st)
{
	struct file_bdev *f = fb(b);
	bool data = true;

	st->depth = 0;
	st->length = len;
	if (!f->is_blockdev)
		util_seek_extent(f->fd, off, len, &data, &st->length);
	st->flags = BDEV_ST_ALLOC | (data ? BDEV_ST_DATA : BDEV_ST_ZERO);
	return 0;
}

static void file_writeback(struct bdev *b)
{
	(void)sync_file_range(fb(b)->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

/* A raw file has no id of its own and nothing behind it. */
static int file_file_info(struct bdev *b, struct bdev_file_info *fi)
{
	fi->path = b->name;
	fi->format = "raw";
	return 0;
}

static void file_close(struct bdev *b)
{
	struct file_bdev *f = fb(b);

	img_lock_drop(&f->lock);
	close(f->fd);
	bdev_fini(b);
	free(f);
}

static const struct bdev_ops file_ops = {
	.kind = "raw",
	.read = file_read,
	.write = file_write,
	.flush = file_flush,
	.discard = file_discard,
	.write_zeroes = file_write_zeroes,
	.block_status = file_block_status,
	.close = file_close,
	.writeback = file_writeback,
	.file_info = file_file_info,
};

struct bdev *bdev_file_open(const char *path, unsigned flags,
			    struct bdev_err *e)
{
	bool ro = flags & BDEV_OPEN_RDONLY;
	struct file_bdev *f;
	struct stat st;
	uint64_t size;
	int fd, r, ssz = 512;

	/* O_NONBLOCK so that opening a FIFO cannot block; cleared below. */
	fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		bdev_err_set(e, errno, "%s: cannot open: %s", path,
			     strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		r = errno;
		goto fail_errno;
	}
	r = util_fd_size(fd, &st, &size);
	if (r == -EINVAL) {
		bdev_err_set(e, EINVAL, "%s: not a regular file or block device",
			     path);
		close(fd);
		return NULL;
	}
	if (r) {
		r = -r;
		goto fail_errno;
	}
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKSSZGET, &ssz) < 0)
		ssz = 512;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		r = errno;
		goto fail_errno;
	}
	f = calloc(1, sizeof(*f));
	if (!f || bdev_init(&f->b, &file_ops, path, size, (uint32_t)ssz, ro)) {
		free(f);
		bdev_err_set(e, ENOMEM, "%s: out of memory", path);
		close(fd);
		return NULL;
	}
	f->fd = fd;
	f->is_blockdev = S_ISBLK(st.st_mode);
	if (!(ro && (flags & BDEV_OPEN_NOLOCK))) {
		bool by_writer;

		r = img_lock_take(&f->lock, fd, !ro, &by_writer);
		if (r) {
			if (r == -EBUSY)
				bdev_err_set(e, EBUSY, "%s: %s", path, img_lock_why(!ro, by_writer));
			else
				bdev_err_set(e, -r, "%s: cannot lock: %s", path, strerror(-r));
			bdev_fini(&f->b);
			free(f);
			close(fd);
			return NULL;
		}
	}
	return &f->b;

fail_errno:
	bdev_err_set(e, r, "%s: %s", path, strerror(r));
	close(fd);
	return NULL;
}
