/* bkp_restore: write a backup out as a raw file or a fixed/dynamic VHD.
 * Every chunk is checked against its digest before it is written; zero
 * chunks and zero pieces of chunks are not written, so the output is
 * sparse (a dynamic VHD allocates only blocks with data).  The output is
 * built under a temporary name beside dest and renamed when complete
 * (common/publish.c); a block device as dest is written in place. */
#include "bkp-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/pool.h"
#include "common/publish.h"
#include "common/util.h"

#define RAW_PIECE (64u << 10)

struct rjob {
	struct bkp_repo *r;
	const char *id;
	struct bkp_index x;
	int fd;                  /* raw output */
	struct bdev *out;        /* VHD output */
	uint32_t piece;          /* zero pieces of this size are skipped */
	uint64_t next, done;     /* atomics */
	struct pool pool;
	const struct bkp_restore_opts *o;
};

static int put(struct rjob *j, const uint8_t *buf, uint64_t off, size_t len,
	       struct bdev_err *e)
{
	int r;

	if (j->out) {
		r = bdev_write(j->out, buf, off, len, 0);
		if (r) {
			char msg[600];

			return bdev_err_set(e, r, "%s",
					    bdev_errmsg(j->out, msg, sizeof(msg)));
		}
		return 0;
	}
	r = util_pwrite_full(j->fd, buf, len, off);
	return r ? bdev_err_set(e, r, "write failed: %s", strerror(-r)) : 0;
}

static int restore_chunk(struct rjob *j, uint64_t i, uint8_t *buf,
			 uint8_t *fbuf, struct bdev_err *e)
{
	uint64_t off = i * j->x.chunk_size;
	char why[200], hex[2 * BKP_DIGEST + 1];
	ssize_t n;

	if (bkp_digest_is_zero(j->x.d[i]))
		return 0;
	n = bkp_chunk_load(j->r, j->x.d[i], buf, j->x.chunk_size, fbuf, NULL,
			   why, sizeof(why));
	if (n >= 0 && (uint64_t)n != UTIL_MIN((uint64_t)j->x.chunk_size,
					      j->x.virtual_size - off)) {
		snprintf(why, sizeof(why), "chunk holds %zd bytes, the disk needs %llu",
			 n, (unsigned long long)UTIL_MIN((uint64_t)j->x.chunk_size,
							 j->x.virtual_size - off));
		n = -EBADMSG;
	}
	if (n < 0) {
		bkp_hex(j->x.d[i], BKP_DIGEST, hex);
		return bdev_err_set(e, -n, "backup %s: chunk %llu (disk offset %llu) %s: %s",
				    j->id, (unsigned long long)i,
				    (unsigned long long)off, hex, why);
	}
	for (size_t p = 0; p < (size_t)n; p += j->piece) {
		size_t len = UTIL_MIN((size_t)j->piece, (size_t)n - p);
		int r;

		if (util_is_zero(buf + p, len))
			continue;
		r = put(j, buf + p, off + p, len, e);
		if (r)
			return r;
	}
	/* A raw file: start its writeback now, while other chunks are still
	 * fetched, so that the fsync before publishing finds little left. */
	if (!j->out && j->fd >= 0)
		(void)sync_file_range(j->fd, (off_t)off, (off_t)n, SYNC_FILE_RANGE_WRITE);
	return 0;
}

static void rworker(void *arg, int index)
{
	struct rjob *j = arg;
	uint8_t *buf = malloc(j->x.chunk_size);
	uint8_t *fbuf = malloc(bkp_chunk_bound(j->x.chunk_size));
	struct bdev_err e = { 0 };
	int r = 0;

	(void)index;
	if (!buf || !fbuf) {
		r = bdev_err_set(&e, ENOMEM, "out of memory");
		pool_fail(&j->pool, r, &e);
	}
	while (!r && !pool_stopping(&j->pool)) {
		uint64_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);

		if (i >= j->x.n)
			break;
		r = restore_chunk(j, i, buf, fbuf, &e);
		if (r)
			pool_fail(&j->pool, r, &e);
		__atomic_fetch_add(&j->done, 1, __ATOMIC_RELAXED);
	}
	free(buf);
	free(fbuf);
}

/* Every quarter second while the workers run: progress. */
static void rtick(struct pool *p, void *arg)
{
	struct rjob *j = arg;
	uint64_t done = __atomic_load_n(&j->done, __ATOMIC_RELAXED);

	if (done >= j->x.n || pool_stopping(p))
		return;
	j->o->progress(j->o->opaque, UTIL_MIN(done * j->x.chunk_size,
					      j->x.virtual_size),
		       j->x.virtual_size);
}

static int run(struct rjob *j, const struct bkp_restore_opts *o,
	       struct bdev_err *e)
{
	int r;

	j->o = o;
	r = pool_start(&j->pool, bkp_repo_threads(j->r, o->threads), rworker,
		       j, e);
	if (r < 0)
		return r;
	if (o->progress)
		rtick(&j->pool, j);
	r = pool_wait(&j->pool, 250, o->progress ? rtick : NULL, j, e);
	if (r)
		return r;
	if (o->progress)
		o->progress(o->opaque, j->x.virtual_size, j->x.virtual_size);
	return 0;
}

/* A block device as dest is written in place: zeroed first (the chunks
 * then go in as into a new sparse file), through the raw-file bdev. */
static int open_device(struct rjob *j, const char *dev, struct bdev_err *e)
{
	int r;

	j->out = bdev_file_open(dev, 0, e);
	if (!j->out)
		return -e->code;
	if (j->out->size < j->x.virtual_size)
		return bdev_err_set(e, ENOSPC, "%s: device holds %llu bytes; the disk needs %llu",
				    dev, (unsigned long long)j->out->size,
				    (unsigned long long)j->x.virtual_size);
	r = bdev_write_zeroes(j->out, 0, j->x.virtual_size, BDEV_MAY_UNMAP);
	if (r) {
		char msg[600];

		return bdev_err_set(e, r, "%s", bdev_errmsg(j->out, msg, sizeof(msg)));
	}
	j->piece = RAW_PIECE;
	return 0;
}

/* Create the output under its temporary name (owner and mode of a file it
 * replaces): a sparse raw file, or an image the caller's create hook makes
 * and opens rw. */
static int open_output(struct rjob *j, struct publish *p,
		       const struct bkp_restore_opts *o, struct bdev_err *e)
{
	const char *tmp = p->tmp;
	uint32_t piece = 0;

	if (p->in_place)
		return open_device(j, p->target, e);
	if (o->format == BKP_OUT_RAW) {
		j->fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			     publish_mode(p));
		if (j->fd < 0)
			return bdev_err_set(e, errno, "%s: cannot create: %s", tmp,
					    strerror(errno));
		if (ftruncate(j->fd, (off_t)j->x.virtual_size) < 0)
			return bdev_err_set(e, errno, "%s: cannot size: %s", tmp,
					    strerror(errno));
		j->piece = RAW_PIECE;
		return publish_adopt(p, j->fd, e);
	}
	j->out = o->create(o->create_opaque, tmp, o->format, j->x.virtual_size,
			   &piece, e);
	if (!j->out) {
		char why[sizeof(e->msg)];

		/* name the backup; the hook said what does not fit */
		snprintf(why, sizeof(why), "%s", e->msg);
		return bdev_err_set(e, e->code ? e->code : EIO, "backup %s: %s", j->id, why);
	}
	if (publish_adopt(p, -1, e))
		return -e->code;
	j->piece = piece ? piece : RAW_PIECE;
	return 0;
}

/* Flush and close the output; returns an fd of it to fsync (or -errno;
 * -1 for a device, which the flush made durable). */
static int close_output(struct rjob *j, const char *tmp, struct bdev_err *e)
{
	int fd, r;

	if (!j->out)
		return j->fd;
	r = bdev_flush(j->out);
	if (r) {
		char msg[600];

		bdev_err_set(e, r, "%s", bdev_errmsg(j->out, msg, sizeof(msg)));
	}
	bdev_close(j->out);
	j->out = NULL;
	if (r || !tmp)
		return r ? r : -1;
	fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bdev_err_set(e, errno, "%s: %s", tmp, strerror(errno));
	j->fd = fd;
	return fd;
}

int bkp_restore(struct bkp_repo *r, const char *id, const char *dest,
		const struct bkp_restore_opts *o, struct bdev_err *e)
{
	struct rjob j = { .r = r, .fd = -1 };
	struct publish p = { 0 };
	struct bkp_info b;
	char why[256];
	int rc, fd;

	rc = bkp_show(r, id, &b, e);
	if (rc)
		return rc;
	j.id = b.id;
	if (o->format != BKP_OUT_RAW &&
	    ((o->format != BKP_OUT_FIXED && o->format != BKP_OUT_DYNAMIC) || !o->create))
		return bdev_err_set(e, EINVAL, "restore: output format %d unknown or no image maker given",
				    o->format);
	rc = bkp_index_read(r, b.id, b.index_sha256, &j.x, why, sizeof(why));
	if (rc)
		return bdev_err_set(e, -rc, "backup %s: %s", b.id, why);
	if (j.x.virtual_size != b.virtual_size || j.x.chunk_size != b.chunk_size) {
		rc = bdev_err_set(e, EBADMSG, "backup %s: index does not match its manifest",
				  b.id);
		goto out;
	}
	/* Symlinks followed, block devices written in place (raw only),
	 * other devices and FIFOs refused (common/publish.c). */
	rc = publish_begin(&p, dest, (o->overwrite ? PUBLISH_REPLACE : 0) |
			   (o->format == BKP_OUT_RAW ? PUBLISH_DEVICE : 0), e);
	if (!rc)
		rc = open_output(&j, &p, o, e);
	if (!rc)
		rc = run(&j, o, e);
	fd = close_output(&j, p.tmp, rc ? NULL : e);
	if (!rc && fd < 0 && !p.in_place)
		rc = fd;
	if (!rc && !p.in_place)
		rc = publish_commit(&p, fd, e);
out:
	if (j.out)
		bdev_close(j.out);
	if (j.fd >= 0)
		close(j.fd);
	publish_end(&p);
	bkp_index_free(&j.x);
	return rc;
}
