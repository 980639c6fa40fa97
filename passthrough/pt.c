/* The pass-through back-end: a host block device or a regular file served
 * as a disk with O_DIRECT.
 *
 * Requests from bdev_submit() go to the libaio engine (aio.c); the
 * synchronous ops (bdev_read() and friends, and the block layer's workers
 * for discard and write-zeroes) use pread/pwritev2 on the same descriptor,
 * which costs no thread hand-off.  The block layer only sends requests
 * aligned to limits.align_off/align_mem, so nothing here bounces.
 *
 * Limits and identity are read once at open: for a block device from its
 * ioctls and sysfs, for a file from statx (direct-I/O alignment) and its
 * file system.  A regular file whose size is not a multiple of the
 * direct-I/O alignment is opened buffered: its last block could not be
 * written directly without extending the file.  Block devices have whole
 * blocks by construction. */
#include "passthrough.h"

#include "common/imglock.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

struct pt {
	struct bdev b;          /* must be first */
	int fd;
	bool blockdev;
	bool direct;
	struct pt_aio *aio;     /* NULL when buffered */
	struct img_lock lock;
};

static struct pt *PT(struct bdev *b)
{
	return (struct pt *)b;
}

static int io_err(struct bdev *b, int r, const char *what, uint64_t off)
{
	return bdev_set_error(b, r, "%s at offset %llu failed: %s", what,
			      (unsigned long long)off, strerror(-r));
}

static int pt_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	int r = util_pread_full(PT(b)->fd, buf, len, off, false);

	return r ? io_err(b, r, "read", off) : 0;
}

static int pt_write(struct bdev *b, const void *buf, uint64_t off,
		    size_t len, unsigned flags)
{
	int fl = (flags & BDEV_FUA) ? RWF_DSYNC : 0;
	const uint8_t *p = buf;

	while (len) {
		struct iovec v = { (void *)p, len };
		ssize_t n = pwritev2(PT(b)->fd, &v, 1, (off_t)off, fl);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return io_err(b, n < 0 ? -errno : -EIO, "write", off);
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int pt_flush(struct bdev *b)
{
	if (fdatasync(PT(b)->fd) < 0)
		return bdev_set_error(b, errno, "flush failed: %s", strerror(errno));
	return 0;
}

static int pt_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	struct pt *p = PT(b);

	/* Advisory: a device or file system without it keeps the data. */
	if (p->blockdev) {
		uint64_t range[2] = { off, len };

		(void)ioctl(p->fd, BLKDISCARD, range);
	} else {
		(void)fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)off, (off_t)len);
	}
	return 0;
}

static int pt_write_zeroes(struct bdev *b, uint64_t off, uint64_t len,
			   unsigned flags)
{
	struct pt *p = PT(b);
	int r;

	if (p->blockdev) {
		uint64_t range[2] = { off, len };

		r = ioctl(p->fd, BLKZEROOUT, range);
	} else {
		int mode = (flags & BDEV_MAY_UNMAP) ?
			   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE :
			   FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;

		r = fallocate(p->fd, mode, (off_t)off, (off_t)len);
	}
	if (r < 0)
		return -EOPNOTSUPP;   /* the block layer writes zeros */
	return (flags & BDEV_FUA) ? pt_flush(b) : 0;
}

static int pt_block_status(struct bdev *b, uint64_t off, uint64_t len,
			   struct bdev_status *st)
{
	bool data = true;

	st->depth = 0;
	st->length = len;
	if (!PT(b)->blockdev)
		util_seek_extent(PT(b)->fd, off, len, &data, &st->length);
	st->flags = BDEV_ST_ALLOC | (data ? BDEV_ST_DATA : BDEV_ST_ZERO);
	return 0;
}

static int pt_submit(struct bdev *b, struct bdev_req *rq)
{
	return PT(b)->aio ? pt_aio_submit(PT(b)->aio, rq, rq->off) : -ENOTSUP;
}

static void pt_writeback(struct bdev *b)
{
	if (!PT(b)->direct)
		(void)sync_file_range(PT(b)->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

static void pt_close(struct bdev *b)
{
	struct pt *p = PT(b);

	pt_aio_free(p->aio);
	img_lock_drop(&p->lock);
	close(p->fd);
	bdev_fini(b);
	free(p);
}

static const struct bdev_ops pt_ops = {
	.kind = "passthrough",
	.read = pt_read,
	.write = pt_write,
	.flush = pt_flush,
	.discard = pt_discard,
	.write_zeroes = pt_write_zeroes,
	.block_status = pt_block_status,
	.submit = pt_submit,
	.writeback = pt_writeback,
	.close = pt_close,
};

/* ---- alignment ---- */

#ifndef STATX_DIOALIGN
#define STATX_DIOALIGN 0x00002000U
#endif

int pt_dio_align(int fd, uint32_t *off_align, uint32_t *mem_align)
{
	struct statx sx;
	void *buf;
	ssize_t n;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN)) {
		if (!sx.stx_dio_offset_align)
			return -EINVAL;   /* no direct I/O on this file */
		*off_align = sx.stx_dio_offset_align;
		*mem_align = sx.stx_dio_mem_align ? sx.stx_dio_mem_align : 1;
		return 0;
	}
	/* Older kernels: try 512 bytes, else 4096. */
	if (posix_memalign(&buf, 4096, 4096))
		return -ENOMEM;
	n = pread(fd, buf, 512, 0);
	free(buf);
	*mem_align = *off_align = (n < 0 && errno == EINVAL) ? 4096 : 512;
	return 0;
}

/* ---- identity and limits of block devices (sysfs) ---- */

/* Read a sysfs attribute of the device (or of its whole disk when it is a
 * partition) into buf, trimmed.  0 or -1. */
static int sys_attr(dev_t rdev, const char *attr, char *buf, size_t len)
{
	char path[256];
	FILE *f;
	size_t n;

	for (int up = 0; up < 2; up++) {
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s%s",
			 major(rdev), minor(rdev), up ? "../" : "", attr);
		f = fopen(path, "re");
		if (!f)
			continue;
		n = fread(buf, 1, len - 1, f);
		fclose(f);
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
			n--;
		buf[n] = '\0';
		if (n)
			return 0;
	}
	return -1;
}

static uint64_t sys_num(dev_t rdev, const char *attr)
{
	char buf[64];

	return sys_attr(rdev, attr, buf, sizeof(buf)) ? 0
						     : strtoull(buf, NULL, 10);
}

/* id <- the first 16 bytes of SHA-256 over the given bytes. */
static void hash_id(uint8_t id[16], const void *data, size_t len)
{
	uint8_t d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(data, len, d, &n, EVP_sha256(), NULL) || n < 16)
		memset(d, 0, 16);
	memcpy(id, d, 16);
}

static void hex_serial(struct bdev_ident *id)
{
	for (int i = 0; i < 16; i++)
		snprintf(id->serial + 2 * i, 3, "%02x", id->id[i]);
}

static void blockdev_ident(struct pt *p, const struct stat *st)
{
	struct bdev_ident *id = &p->b.ident;
	char buf[256], back[300];

	if (!sys_attr(st->st_rdev, "wwid", buf, sizeof(buf)) ||
	    !sys_attr(st->st_rdev, "device/wwid", buf, sizeof(buf)) ||
	    !sys_attr(st->st_rdev, "serial", buf, sizeof(buf)) ||
	    !sys_attr(st->st_rdev, "device/serial", buf, sizeof(buf))) {
		id->from_device = true;
		hash_id(id->id, buf, strlen(buf));
		snprintf(id->serial, sizeof(id->serial), "%s", buf);
		return;
	}
	/* A loop device: what it is backed by. */
	if (!sys_attr(st->st_rdev, "loop/backing_file", back, sizeof(back))) {
		struct stat bs;

		if (stat(back, &bs) == 0) {
			uint64_t k[2] = { bs.st_dev, bs.st_ino };

			hash_id(id->id, k, sizeof(k));
			hex_serial(id);
			return;
		}
	}
	snprintf(buf, sizeof(buf), "dev:%u:%u", major(st->st_rdev),
		 minor(st->st_rdev));
	hash_id(id->id, buf, strlen(buf));
	hex_serial(id);
}

static int blockdev_limits(struct pt *p, const struct stat *st, uint64_t *size,
			   bool *ro, struct bdev_err *e, const char *path)
{
	struct bdev_limits *l = &p->b.limits;
	int lbs = 512, pbs = 0, rof = 0;
	unsigned int io_opt = 0;

	if (ioctl(p->fd, BLKGETSIZE64, size) < 0)
		return bdev_err_set(e, errno, "%s: cannot read the device size: %s",
				    path, strerror(errno));
	if (ioctl(p->fd, BLKSSZGET, &lbs) < 0 || (lbs != 512 && lbs != 4096))
		return bdev_err_set(e, EINVAL,
				    "%s: logical block size %d is not supported (512 or 4096)",
				    path, lbs);
	if (ioctl(p->fd, BLKPBSZGET, &pbs) < 0 || pbs < lbs)
		pbs = lbs;
	if (ioctl(p->fd, BLKROGET, &rof) == 0 && rof)
		*ro = true;
	(void)ioctl(p->fd, BLKIOOPT, &io_opt);
	l->logical_block = (uint32_t)lbs;
	l->physical_block = (uint32_t)pbs;
	l->align_off = p->direct ? (uint32_t)lbs : 1;
	l->align_mem = p->direct ? (uint32_t)lbs : 1;
	l->max_transfer = (uint32_t)UTIL_MIN(sys_num(st->st_rdev,
						     "queue/max_sectors_kb") * 1024,
					     (uint64_t)UINT32_MAX);
	l->opt_transfer = io_opt;
	l->unmap_granularity = (uint32_t)sys_num(st->st_rdev,
						 "queue/discard_granularity");
	l->unmap_zeroes = false;    /* BLKZEROOUT is the way to zero */
	l->fua_native = true;
	return 0;
}

static void file_limits(struct pt *p, const struct stat *st)
{
	struct bdev_limits *l = &p->b.limits;
	uint32_t off_al = 1, mem_al = 1;
	uint64_t k[2] = { st->st_dev, st->st_ino };

	if (p->direct && pt_dio_align(p->fd, &off_al, &mem_al))
		off_al = mem_al = 4096;
	l->logical_block = off_al > 512 ? 4096 : 512;
	l->physical_block = UTIL_MAX((uint32_t)st->st_blksize, l->logical_block);
	l->align_off = p->direct ? off_al : 1;
	l->align_mem = p->direct ? mem_al : 1;
	l->max_transfer = 0;
	l->opt_transfer = 0;
	l->unmap_granularity = (uint32_t)st->st_blksize;
	l->unmap_zeroes = true;     /* punched holes read as zeros */
	l->fua_native = p->direct;
	hash_id(p->b.ident.id, k, sizeof(k));
	hex_serial(&p->b.ident);
}

static int open_fd(const char *path, bool ro, bool direct)
{
	return open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK |
		    (direct ? O_DIRECT : 0));
}

struct bdev *pt_open(const char *path, unsigned flags, struct bdev_err *e)
{
	bool ro = flags & PT_OPEN_RDONLY, direct = !(flags & PT_OPEN_BUFFERED);
	struct pt *p = calloc(1, sizeof(*p));
	struct bdev_limits lim;
	struct bdev_ident ident;
	struct stat st;
	uint64_t size = 0;
	int r;

	if (!p) {
		bdev_err_set(e, ENOMEM, "%s: out of memory", path);
		return NULL;
	}
	p->fd = open_fd(path, ro, direct);
	if (p->fd < 0 && errno == EINVAL && direct) {
		direct = false;    /* a file system without O_DIRECT */
		p->fd = open_fd(path, ro, false);
	}
	if (p->fd < 0) {
		bdev_err_set(e, errno, "%s: cannot open: %s", path, strerror(errno));
		free(p);
		return NULL;
	}
	p->direct = direct;
	if (fstat(p->fd, &st) < 0 ||
	    fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		bdev_err_set(e, errno, "%s: %s", path, strerror(errno));
		goto fail;
	}
	p->blockdev = S_ISBLK(st.st_mode);
	if (p->blockdev) {
		if (blockdev_limits(p, &st, &size, &ro, e, path))
			goto fail;
		blockdev_ident(p, &st);
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
		file_limits(p, &st);
		if (p->direct && size % p->b.limits.align_off) {
			/* The last block cannot be written directly. */
			close(p->fd);
			p->direct = false;
			p->fd = open_fd(path, ro, false);
			if (p->fd < 0 || fcntl(p->fd, F_SETFL,
					       fcntl(p->fd, F_GETFL) & ~O_NONBLOCK) < 0) {
				bdev_err_set(e, errno, "%s: cannot open: %s", path,
					     strerror(errno));
				goto fail;
			}
			file_limits(p, &st);
		}
	} else {
		bdev_err_set(e, EINVAL, "%s: not a block device or regular file",
			     path);
		goto fail;
	}
	if (!(ro && (flags & PT_OPEN_NOLOCK))) {
		bool by_writer;

		r = img_lock_take(&p->lock, p->fd, !ro, &by_writer);
		if (r) {
			if (r == -EBUSY)
				bdev_err_set(e, EBUSY, "%s: %s", path, img_lock_why(!ro, by_writer));
			else
				bdev_err_set(e, -r, "%s: cannot lock: %s", path, strerror(-r));
			goto fail;
		}
	}
	lim = p->b.limits;
	ident = p->b.ident;
	r = bdev_init(&p->b, &pt_ops, path, size, lim.logical_block, ro);
	if (r) {
		bdev_err_set(e, ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	p->b.limits = lim;
	p->b.ident = ident;
	if (p->direct) {
		p->aio = pt_aio_new(&p->b, p->fd, e);
		if (!p->aio)
			goto fail_init;
	}
	return &p->b;

fail_init:
	bdev_fini(&p->b);
fail:
	img_lock_drop(&p->lock);
	if (p->fd >= 0)
		close(p->fd);
	free(p);
	return NULL;
}
