/* bdev: argument checks, error messages and change-tracking hook shared by
 * all back-ends; see bdev.h for the contract. */
#include "bdev.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bdev_init(struct bdev *b, const struct bdev_ops *ops, const char *name,
	      uint64_t size, uint32_t sector_size, bool read_only)
{
	memset(b, 0, sizeof(*b));
	b->ops = ops;
	b->size = size;
	b->sector_size = sector_size;
	b->read_only = read_only;
	b->name = strdup(name ? name : "?");
	if (!b->name)
		return -ENOMEM;
	pthread_mutex_init(&b->err_lock, NULL);
	return 0;
}

void bdev_fini(struct bdev *b)
{
	free((char *)b->name);
	b->name = NULL;
	pthread_mutex_destroy(&b->err_lock);
}

static void vset(char *dst, size_t len, const char *prefix, int code,
		 const char *fmt, va_list ap)
{
	int n = 0;

	if (prefix)
		n = snprintf(dst, len, "%s: ", prefix);
	if (n < 0 || (size_t)n >= len)
		n = 0;
	if (fmt)
		vsnprintf(dst + n, len - (size_t)n, fmt, ap);
	else
		snprintf(dst + n, len - (size_t)n, "%s", strerror(code));
}

int bdev_set_error(struct bdev *b, int code, const char *fmt, ...)
{
	va_list ap;

	if (code < 0)
		code = -code;
	pthread_mutex_lock(&b->err_lock);
	va_start(ap, fmt);
	vset(b->errmsg, sizeof(b->errmsg), b->name, code, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&b->err_lock);
	return -code;
}

int bdev_err_set(struct bdev_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (code < 0)
		code = -code;
	if (!e)
		return -code;
	e->code = code;
	va_start(ap, fmt);
	vset(e->msg, sizeof(e->msg), NULL, code, fmt, ap);
	va_end(ap);
	return -code;
}

const char *bdev_errmsg(struct bdev *b, char *buf, size_t buflen)
{
	pthread_mutex_lock(&b->err_lock);
	snprintf(buf, buflen, "%s", b->errmsg[0] ? b->errmsg : "unknown error");
	pthread_mutex_unlock(&b->err_lock);
	return buf;
}

/* Common checks: range inside the disk, writable when writing. */
static int check(struct bdev *b, uint64_t off, uint64_t len, bool write)
{
	if (!util_range_ok(off, len, b->size))
		return bdev_set_error(b, EINVAL,
			"request at offset %llu length %llu is past the end of the disk (%llu bytes)",
			(unsigned long long)off, (unsigned long long)len,
			(unsigned long long)b->size);
	if (write && b->read_only)
		return bdev_set_error(b, EROFS, "disk is open read-only");
	return 0;
}

static void track(struct bdev *b, uint64_t off, uint64_t len)
{
	if (b->hook && len)
		b->hook(b->hook_opaque, off, len);
}

int bdev_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	int r = check(b, off, len, false);

	if (r || !len)
		return r;
	return b->ops->read(b, buf, off, len);
}

int bdev_write(struct bdev *b, const void *buf, uint64_t off, size_t len,
	       unsigned flags)
{
	int r = check(b, off, len, true);

	if (r || !len)
		return r;
	r = b->ops->write(b, buf, off, len, flags);
	if (!r)
		track(b, off, len);
	return r;
}

int bdev_flush(struct bdev *b)
{
	if (b->read_only || !b->ops->flush)
		return 0;
	return b->ops->flush(b);
}

int bdev_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	int r = check(b, off, len, true);

	if (r || !len || !b->ops->discard)
		return r;
	r = b->ops->discard(b, off, len);
	if (!r)
		track(b, off, len);
	return r;
}

/* Fallback for back-ends without write_zeroes: write a zero buffer. */
static int zero_by_writing(struct bdev *b, uint64_t off, uint64_t len,
			   unsigned flags)
{
	size_t chunk = (size_t)UTIL_MIN(len, (uint64_t)1 << 20);
	void *zero = calloc(1, chunk);
	int r = 0;

	if (!zero)
		return bdev_set_error(b, ENOMEM, "out of memory");
	while (len && !r) {
		size_t n = (size_t)UTIL_MIN(len, chunk);

		r = b->ops->write(b, zero, off, n, flags & BDEV_FUA);
		off += n;
		len -= n;
	}
	free(zero);
	return r;
}

int bdev_write_zeroes(struct bdev *b, uint64_t off, uint64_t len,
		      unsigned flags)
{
	int r = check(b, off, len, true);

	if (r || !len)
		return r;
	/* A back-end answers -EOPNOTSUPP when it has no fast way. */
	r = b->ops->write_zeroes ? b->ops->write_zeroes(b, off, len, flags)
				 : -EOPNOTSUPP;
	if (r == -EOPNOTSUPP || r == -ENOTSUP)
		r = (flags & BDEV_NO_FALLBACK) ? -ENOTSUP
					       : zero_by_writing(b, off, len, flags);
	if (!r)
		track(b, off, len);
	return r;
}

int bdev_block_status(struct bdev *b, uint64_t off, uint64_t len,
		      struct bdev_status *st)
{
	int r = check(b, off, len, false);

	if (r)
		return r;
	if (!len)
		return bdev_set_error(b, EINVAL, "block status of an empty range");
	if (!b->ops->block_status) {
		st->length = len;
		st->flags = BDEV_ST_DATA | BDEV_ST_ALLOC;
		st->depth = 0;
		return 0;
	}
	r = b->ops->block_status(b, off, len, st);
	if (!r && (st->length == 0 || st->length > len))
		return bdev_set_error(b, EIO, "back-end returned a bad extent");
	return r;
}

void bdev_writeback(struct bdev *b)
{
	if (!b->read_only && b->ops->writeback)
		b->ops->writeback(b);
}

void bdev_close(struct bdev *b)
{
	if (b)
		b->ops->close(b);
}

void bdev_set_write_hook(struct bdev *b, bdev_write_hook_fn fn, void *opaque)
{
	b->hook_opaque = opaque;
	b->hook = fn;
}
