/* VHD I/O: the bdev ops of fixed and sparse (dynamic, differencing) images.
 *
 * Locking (sparse images):
 *  - v->lock guards the BAT, the bm[] pointers, the dirty flags and
 *    footer_off; it is held for metadata only, never across I/O: a block's
 *    allocation and the one-time load of its bitmap drop it while they
 *    read or write.
 *  - v->alloc_lock: one allocation at a time, held across its I/O, so
 *    blocks are appended in order; taken before v->lock.
 *  - Bitmap bits only ever go from 0 to 1 while an image is open, and a bit
 *    is set after the data it covers was written; a reader that races with
 *    a writer sees either state, both valid.
 *  - v->rmw_lock: ordinary writes hold it shared; a read-modify-write of a
 *    partly written granule holds it exclusive, so no write can slip
 *    between its read and its write.
 *  - v->flush_lock: one flush at a time, so a flush that returns has every
 *    earlier write's metadata on disk.
 *
 * Granules: in a differencing image data is written in 4 KiB groups of 8
 * sectors (one bitmap byte), copying the rest of a group from the parent,
 * so that bitmap bytes are always 0x00 or 0xff (libvhdi misreads mixed
 * bytes).  Dynamic images allocate blocks with all bits set.
 */
#include "vhd-int.h"
#include "passthrough/passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

static struct vhd *V(struct bdev *b)
{
	return (struct vhd *)b;
}

static int io_error(struct vhd *v, int r, const char *what, uint64_t off)
{
	return bdev_set_error(&v->b, r, "%s at file offset %llu failed: %s",
			      what, (unsigned long long)off, strerror(-r));
}

/* ---- fixed ---- */

/* The descriptor for data I/O: the O_DIRECT one when there is one (the
 * block layer then sends only aligned requests). */
static int data_fd(struct vhd *v)
{
	return v->dfd >= 0 ? v->dfd : v->fd;
}

static int fixed_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	int r = util_pread_full(data_fd(V(b)), buf, len, off, false);

	return r ? io_error(V(b), r, "read", off) : 0;
}

static void mark_unsynced(struct vhd *v)
{
	__atomic_store_n(&v->unsynced, 1, __ATOMIC_RELEASE);
}

/* fdatasync unless nothing was written since the last one.  The flag is
 * cleared before syncing: a write finishing after that sets it again. */
static int vhd_sync_if_needed(struct vhd *v)
{
	if (!__atomic_exchange_n(&v->unsynced, 0, __ATOMIC_ACQ_REL))
		return 0;
	if (fdatasync(v->fd) < 0) {
		mark_unsynced(v);
		return bdev_set_error(&v->b, errno, "flush failed: %s",
				      strerror(errno));
	}
	return 0;
}

static int vhd_sync(struct vhd *v)
{
	if (fdatasync(v->fd) < 0)
		return bdev_set_error(&v->b, errno, "flush failed: %s",
				      strerror(errno));
	return 0;
}

static int fixed_write(struct bdev *b, const void *buf, uint64_t off,
		       size_t len, unsigned flags)
{
	int r = util_pwrite_full(data_fd(V(b)), buf, len, off);

	if (r)
		return io_error(V(b), r, "write", off);
	mark_unsynced(V(b));
	return (flags & BDEV_FUA) ? vhd_sync_if_needed(V(b)) : 0;
}

static int fixed_flush(struct bdev *b)
{
	return vhd_sync_if_needed(V(b));
}

static int fixed_write_zeroes(struct bdev *b, uint64_t off, uint64_t len,
			      unsigned flags)
{
	int mode = (flags & BDEV_MAY_UNMAP) ?
		   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE :
		   FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;

	if (fallocate(V(b)->fd, mode, (off_t)off, (off_t)len) < 0)
		return -EOPNOTSUPP;
	mark_unsynced(V(b));
	return (flags & BDEV_FUA) ? vhd_sync_if_needed(V(b)) : 0;
}

static int fixed_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	/* Advisory; the data area ends before the footer, so it is safe. */
	(void)fallocate(V(b)->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			(off_t)off, (off_t)len);
	return 0;
}

static int fixed_block_status(struct bdev *b, uint64_t off, uint64_t len,
			      struct bdev_status *st)
{
	bool data;

	util_seek_extent(V(b)->fd, off, len, &data, &st->length);
	st->flags = BDEV_ST_ALLOC | (data ? BDEV_ST_DATA : BDEV_ST_ZERO);
	st->depth = 0;
	return 0;
}

/* Hint: start writeback of the whole file without waiting. */
static void vhd_writeback(struct bdev *b)
{
	(void)sync_file_range(V(b)->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

static void vhd_close(struct bdev *b)
{
	if (!b->read_only)
		(void)b->ops->flush(b);
	vhd_destroy(V(b));
}

/* Native reads and writes on the direct descriptor; flushes go to the
 * workers (fixed_flush knows whether anything needs syncing). */
static int fixed_submit(struct bdev *b, struct bdev_req *rq)
{
	struct vhd *v = V(b);

	if (!v->aio || (rq->op != BDEV_OP_READ && rq->op != BDEV_OP_WRITE))
		return -ENOTSUP;
	if (rq->op == BDEV_OP_WRITE && !(rq->flags & BDEV_FUA))
		mark_unsynced(v);
	return pt_aio_submit(v->aio, rq, rq->off);
}

const struct bdev_ops vhd_fixed_ops = {
	.submit = fixed_submit,
	.kind = "vhd-fixed",
	.read = fixed_read,
	.write = fixed_write,
	.flush = fixed_flush,
	.discard = fixed_discard,
	.write_zeroes = fixed_write_zeroes,
	.block_status = fixed_block_status,
	.close = vhd_close,
	.writeback = vhd_writeback,
	.file_info = vhd_file_info,
};

/* ---- sparse: metadata helpers (v->lock held) ---- */

static uint64_t data_off(struct vhd *v, uint32_t blk)
{
	return (uint64_t)v->bat[blk] * VHD_SECTOR + v->bm_size;
}

/* The cached bitmap of allocated block blk, loaded on first use.  Called
 * with v->lock held; the lock is dropped while the bitmap is read (other
 * requests go on meanwhile) and held again on return.  A bitmap another
 * thread installed meanwhile wins: it may already have new bits. */
static int bm_get(struct vhd *v, uint32_t blk, uint8_t **out)
{
	uint8_t *p = v->bm[blk];
	uint64_t off = (uint64_t)v->bat[blk] * VHD_SECTOR;
	int r;

	if (!p) {
		p = malloc(v->bm_size);
		if (!p)
			return bdev_set_error(&v->b, ENOMEM, "out of memory");
		pthread_mutex_unlock(&v->lock);
		r = util_pread_full(v->fd, p, v->bm_size, off, false);
		pthread_mutex_lock(&v->lock);
		if (r) {
			free(p);
			return io_error(v, r, "bitmap read", off);
		}
		if (v->bm[blk]) {
			free(p);
			p = v->bm[blk];
		} else {
			v->bm[blk] = p;
		}
	}
	*out = p;
	return 0;
}

/* The run of equal bits starting at sector sec of a cached bitmap (at most
 * max) and their value.  Writers set bits under v->lock while others read,
 * so the bits are read under it too (a plain concurrent read is a data
 * race in C, even though bits only go from 0 to 1). */
static uint64_t bm_run(struct vhd *v, const uint8_t *bm, uint64_t sec,
		       uint64_t max, bool *set)
{
	uint64_t run;

	pthread_mutex_lock(&v->lock);
	*set = util_bit_test(bm, sec);
	run = util_bit_run(bm, sec, max);
	pthread_mutex_unlock(&v->lock);
	return run;
}

/* Whether sectors [s0, s1) of a cached bitmap are all present; under
 * v->lock for the reason above. */
static bool bm_all_set(struct vhd *v, const uint8_t *bm, uint64_t s0,
		       uint64_t s1)
{
	bool set;

	return bm_run(v, bm, s0, s1 - s0, &set) == s1 - s0 && set;
}

/* Allocate block blk at the end of the file.  The new footer is written
 * first (past the block), then the block's bitmap over the old footer, so
 * the file always ends with a valid footer; the BAT entry reaches the disk
 * only at the next flush, after this block's data is durable.
 *
 * Called with v->alloc_lock and v->lock held.  v->lock is dropped for the
 * I/O, so readers and writers of other blocks do not wait for it;
 * alloc_lock keeps allocations in file order (each one writes where the
 * previous one put the footer).  Until the BAT entry is set below, the
 * block reads as unallocated. */
static int alloc_block(struct vhd *v, uint32_t blk)
{
	bool diff = v->footer.type == VHD_TYPE_DIFF;
	uint64_t foot_off = v->footer_off;
	uint64_t bm_off = util_align_up(foot_off + v->bm_size,
					VHD_DATA_ALIGN) - v->bm_size;
	uint64_t new_end = bm_off + v->bm_size + v->block_size;
	uint64_t head = bm_off + v->bm_size - foot_off;
	uint8_t foot[512], *buf = NULL, *bm = NULL;
	int r = 0;

	if (bm_off / VHD_SECTOR >= VHD_BAT_UNUSED)
		return bdev_set_error(&v->b, EFBIG,
				      "image file would grow past 2 TiB, the VHD limit");
	vhd_footer_encode(&v->footer, foot);
	pthread_mutex_unlock(&v->lock);
	/* Reserve the space first so a full disk fails cleanly here. */
	if (fallocate(v->fd, FALLOC_FL_KEEP_SIZE, (off_t)bm_off,
		      (off_t)(new_end + 512 - bm_off)) < 0 &&
	    errno != EOPNOTSUPP && errno != ENOSYS) {
		r = bdev_set_error(&v->b, errno,
				   "cannot allocate a block at file offset %llu: %s",
				   (unsigned long long)bm_off, strerror(errno));
		goto out;
	}
	r = util_pwrite_full(v->fd, foot, 512, new_end);
	if (r) {
		r = io_error(v, r, "footer write", new_end);
		goto out;
	}
	buf = calloc(1, head);
	bm = malloc(v->bm_size);
	if (!buf || !bm) {
		r = bdev_set_error(&v->b, ENOMEM, "out of memory");
		goto out;
	}
	memset(bm, diff ? 0 : 0xff, v->bm_size);
	memcpy(buf + head - v->bm_size, bm, v->bm_size);
	r = util_pwrite_full(v->fd, buf, head, foot_off);
	if (r)
		r = io_error(v, r, "bitmap write", foot_off);
out:
	free(buf);
	pthread_mutex_lock(&v->lock);
	if (r) {
		free(bm);
		return r;
	}
	mark_unsynced(v);
	v->footer_off = new_end;
	free(v->bm[blk]);
	v->bm[blk] = bm;
	v->bat[blk] = (uint32_t)(bm_off / VHD_SECTOR);
	v->bat_dirty[blk / (VHD_SECTOR / 4)] = 1;
	v->meta_dirty = true;
	return 0;
}

/* ---- sparse: read ---- */

static int read_parent(struct vhd *v, void *buf, uint64_t off, size_t n)
{
	uint64_t psize;
	size_t have;
	int r;

	if (!v->parent)
		return bdev_set_error(&v->b, ENOENT,
				      "parent image is not open; cannot read offset %llu",
				      (unsigned long long)off);
	psize = v->parent->size;
	have = off >= psize ? 0 : (size_t)UTIL_MIN((uint64_t)n, psize - off);
	if (have) {
		r = bdev_read(v->parent, buf, off, have);
		if (r) {
			char msg[512];

			return bdev_set_error(&v->b, r, "reading parent: %s",
					      bdev_errmsg(v->parent, msg, sizeof(msg)));
		}
	}
	memset((uint8_t *)buf + have, 0, n - have);
	return 0;
}

/* Read n bytes at byte `in` of block blk (all inside the block). */
static int read_in_block(struct vhd *v, uint32_t blk, uint32_t in,
			 uint8_t *buf, uint32_t n)
{
	bool diff = v->footer.type == VHD_TYPE_DIFF;
	uint64_t base = (uint64_t)blk * v->block_size;
	uint8_t *bm = NULL;
	uint32_t pos = in, end = in + n;
	uint64_t doff = 0;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	if (v->bat[blk] != VHD_BAT_UNUSED) {
		r = bm_get(v, blk, &bm);
		doff = data_off(v, blk);
	}
	pthread_mutex_unlock(&v->lock);
	if (r)
		return r;
	if (!bm) {
		if (diff)
			return read_parent(v, buf, base + in, n);
		memset(buf, 0, n);
		return 0;
	}
	while (pos < end) {
		uint32_t sec = pos / VHD_SECTOR;
		bool set;
		uint64_t run = bm_run(v, bm, sec, v->spb - sec, &set);
		uint32_t stop = (uint32_t)UTIL_MIN((uint64_t)end,
						   (sec + run) * VHD_SECTOR);
		uint8_t *dst = buf + (pos - in);

		if (set) {
			r = util_pread_full(v->fd, dst, stop - pos, doff + pos,
					    false);
			if (r)
				return io_error(v, r, "read", doff + pos);
		} else if (diff) {
			r = read_parent(v, dst, base + pos, stop - pos);
			if (r)
				return r;
		} else {
			memset(dst, 0, stop - pos);
		}
		pos = stop;
	}
	return 0;
}

static int sparse_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	struct vhd *v = V(b);
	uint8_t *p = buf;

	while (len) {
		uint32_t blk = (uint32_t)(off / v->block_size);
		uint32_t in = (uint32_t)(off % v->block_size);
		uint32_t n = (uint32_t)UTIL_MIN((uint64_t)len,
						(uint64_t)v->block_size - in);
		int r = read_in_block(v, blk, in, p, n);

		if (r)
			return r;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* ---- sparse: write ---- */

/* Write n bytes at byte `in` of block blk, allocating it if needed, then
 * mark the sectors present.  Callers make sure that any sector only partly
 * covered, or any granule only partly covered in a differencing image, is
 * already present (or is handled by rmw_granule). */
static int write_in_block(struct vhd *v, uint32_t blk, uint32_t in,
			  const uint8_t *buf, uint32_t n)
{
	uint32_t s0 = in / VHD_SECTOR;
	uint32_t s1 = (in + n + VHD_SECTOR - 1) / VHD_SECTOR;
	uint8_t *bm = NULL;
	uint64_t doff = 0;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	if (v->bat[blk] == VHD_BAT_UNUSED) {
		/* Lock order: alloc_lock, then lock. */
		pthread_mutex_unlock(&v->lock);
		pthread_mutex_lock(&v->alloc_lock);
		pthread_mutex_lock(&v->lock);
		if (v->bat[blk] == VHD_BAT_UNUSED)
			r = alloc_block(v, blk);
		pthread_mutex_unlock(&v->alloc_lock);
	}
	if (!r)
		r = bm_get(v, blk, &bm);
	if (!r)
		doff = data_off(v, blk);
	pthread_mutex_unlock(&v->lock);
	if (r)
		return r;
	r = util_pwrite_full(v->fd, buf, n, doff + in);
	if (r)
		return io_error(v, r, "write", doff + in);
	mark_unsynced(v);
	pthread_mutex_lock(&v->lock);
	if (!util_bit_test(bm, s0) || util_bit_run(bm, s0, s1 - s0) != s1 - s0) {
		util_bit_set_range(bm, s0, s1 - s0);
		v->bm_dirty[blk] = 1;
		v->meta_dirty = true;
	}
	pthread_mutex_unlock(&v->lock);
	return 0;
}

static uint32_t granule(struct vhd *v)
{
	if (v->footer.type == VHD_TYPE_DIFF)
		return UTIL_MIN(8 * VHD_SECTOR, v->block_size);
	return VHD_SECTOR;
}

/* True when a write covering only part of the granule at byte g of block
 * blk may write directly: every sector of the granule is present, or the
 * block is an unallocated block of a dynamic image (reads as zeros). */
static bool granule_ready(struct vhd *v, uint32_t blk, uint32_t g)
{
	uint32_t s0 = g / VHD_SECTOR, ns = granule(v) / VHD_SECTOR;
	uint8_t *bm = NULL;
	bool ok;

	pthread_mutex_lock(&v->lock);
	if (v->bat[blk] == VHD_BAT_UNUSED) {
		ok = v->footer.type != VHD_TYPE_DIFF;
	} else if (bm_get(v, blk, &bm)) {
		ok = false;
	} else {
		ok = util_bit_test(bm, s0) && util_bit_run(bm, s0, ns) == ns;
	}
	pthread_mutex_unlock(&v->lock);
	return ok;
}

/* Read-modify-write of the granule at byte g of block blk, taking bytes
 * [in, in+n) from buf.  Caller holds rmw_lock exclusive. */
static int rmw_granule(struct vhd *v, uint32_t blk, uint32_t g, uint32_t in,
		       const uint8_t *buf, uint32_t n)
{
	uint32_t gs = granule(v);
	uint8_t tmp[8 * VHD_SECTOR];
	int r;

	r = read_in_block(v, blk, g, tmp, gs);
	if (r)
		return r;
	memcpy(tmp + (in - g), buf, n);
	return write_in_block(v, blk, g, tmp, gs);
}

/* Write a piece that lies inside one granule but does not cover it. */
static int write_partial(struct vhd *v, uint32_t blk, uint32_t in,
			 const uint8_t *buf, uint32_t n)
{
	uint32_t g = in / granule(v) * granule(v);
	int r;

	if (granule_ready(v, blk, g))
		return write_in_block(v, blk, in, buf, n);
	/* Upgrade to exclusive: nothing else writes while we merge. */
	pthread_rwlock_unlock(&v->rmw_lock);
	pthread_rwlock_wrlock(&v->rmw_lock);
	if (granule_ready(v, blk, g))
		r = write_in_block(v, blk, in, buf, n);
	else
		r = rmw_granule(v, blk, g, in, buf, n);
	pthread_rwlock_unlock(&v->rmw_lock);
	pthread_rwlock_rdlock(&v->rmw_lock);
	return r;
}

static int sparse_flush(struct bdev *b);

static int sparse_write(struct bdev *b, const void *buf, uint64_t off,
			size_t len, unsigned flags)
{
	struct vhd *v = V(b);
	const uint8_t *p = buf;
	uint32_t gs = granule(v);
	int r = 0;

	pthread_rwlock_rdlock(&v->rmw_lock);
	while (len && !r) {
		uint32_t blk = (uint32_t)(off / v->block_size);
		uint32_t in = (uint32_t)(off % v->block_size);
		uint32_t n = (uint32_t)UTIL_MIN((uint64_t)len,
						(uint64_t)v->block_size - in);
		uint32_t head = in % gs ? UTIL_MIN(n, gs - in % gs) : 0;
		uint32_t tail = (n - head) % gs;
		uint32_t mid = n - head - tail;

		if (head)
			r = write_partial(v, blk, in, p, head);
		if (!r && mid)
			r = write_in_block(v, blk, in + head, p + head, mid);
		if (!r && tail)
			r = write_partial(v, blk, in + head + mid,
					  p + head + mid, tail);
		p += n;
		off += n;
		len -= n;
	}
	pthread_rwlock_unlock(&v->rmw_lock);
	if (!r && (flags & BDEV_FUA))
		r = sparse_flush(b);
	return r;
}

/* ---- sparse: flush ---- */

struct dirty_bm {
	uint64_t off;
	uint8_t *data;
};

/* Write the dirty bitmaps and BAT sectors collected under v->lock.  The
 * first fdatasync makes every write that set a bit (and every new block)
 * durable before the metadata that makes it visible. */
static int sparse_flush(struct bdev *b)
{
	struct vhd *v = V(b);
	uint32_t bat_secs = (uint32_t)(util_align_up(
		(uint64_t)v->hdr.max_table_entries * 4, VHD_SECTOR) / VHD_SECTOR);
	struct dirty_bm *bms = NULL;
	uint8_t *bat_img = NULL, *bat_mark = NULL;
	uint32_t nbm = 0;
	int r = 0;

	pthread_mutex_lock(&v->flush_lock);
	pthread_mutex_lock(&v->lock);
	if (!v->meta_dirty) {
		pthread_mutex_unlock(&v->lock);
		r = vhd_sync_if_needed(v);
		goto out;
	}
	for (uint32_t i = 0; i < v->hdr.max_table_entries; i++)
		nbm += v->bm_dirty[i];
	bms = calloc(nbm ? nbm : 1, sizeof(*bms));
	bat_img = malloc((size_t)bat_secs * VHD_SECTOR);
	bat_mark = malloc(bat_secs);
	if (!bms || !bat_img || !bat_mark) {
		pthread_mutex_unlock(&v->lock);
		r = bdev_set_error(b, ENOMEM, "out of memory");
		goto out;
	}
	nbm = 0;
	for (uint32_t i = 0; i < v->hdr.max_table_entries && !r; i++) {
		if (!v->bm_dirty[i])
			continue;
		bms[nbm].off = (uint64_t)v->bat[i] * VHD_SECTOR;
		bms[nbm].data = malloc(v->bm_size);
		if (!bms[nbm].data) {
			r = bdev_set_error(b, ENOMEM, "out of memory");
			break;
		}
		memcpy(bms[nbm++].data, v->bm[i], v->bm_size);
	}
	if (!r) {
		memset(bat_img, 0xff, (size_t)bat_secs * VHD_SECTOR);
		for (uint32_t i = 0; i < v->hdr.max_table_entries; i++)
			util_put_be32(bat_img + 4 * (uint64_t)i, v->bat[i]);
		memcpy(bat_mark, v->bat_dirty, bat_secs);
		memset(v->bat_dirty, 0, bat_secs);
		memset(v->bm_dirty, 0, v->hdr.max_table_entries);
		v->meta_dirty = false;
	}
	pthread_mutex_unlock(&v->lock);
	if (r)
		goto out;
	__atomic_store_n(&v->unsynced, 0, __ATOMIC_RELEASE);
	r = vhd_sync(v);
	for (uint32_t i = 0; i < nbm && !r; i++) {
		r = util_pwrite_full(v->fd, bms[i].data, v->bm_size, bms[i].off);
		if (r)
			r = io_error(v, r, "bitmap write", bms[i].off);
	}
	for (uint32_t s = 0; s < bat_secs && !r; s++) {
		uint32_t e = s;

		if (!bat_mark[s])
			continue;
		while (e + 1 < bat_secs && bat_mark[e + 1])
			e++;
		r = util_pwrite_full(v->fd, bat_img + (uint64_t)s * VHD_SECTOR,
				     (size_t)(e - s + 1) * VHD_SECTOR,
				     v->hdr.table_offset + (uint64_t)s * VHD_SECTOR);
		if (r)
			r = io_error(v, r, "BAT write", v->hdr.table_offset);
		s = e;
	}
	if (!r)
		r = vhd_sync(v);
	if (r) {
		/* Write everything again at the next flush. */
		pthread_mutex_lock(&v->lock);
		for (uint32_t s = 0; s < bat_secs; s++)
			v->bat_dirty[s] |= bat_mark[s];
		for (uint32_t i = 0; i < v->hdr.max_table_entries; i++)
			if (v->bat[i] != VHD_BAT_UNUSED && v->bm[i])
				v->bm_dirty[i] = 1;
		v->meta_dirty = true;
		pthread_mutex_unlock(&v->lock);
		mark_unsynced(v);
	}
out:
	for (uint32_t i = 0; i < nbm; i++)
		free(bms[i].data);
	free(bms);
	free(bat_img);
	free(bat_mark);
	pthread_mutex_unlock(&v->flush_lock);
	return r;
}

/* ---- sparse: zeroing, discard, block status ---- */

static int zero_bytes(struct vhd *v, uint64_t off, uint64_t n)
{
	static const uint8_t zero[VHD_DATA_ALIGN];

	while (n) {
		size_t m = (size_t)UTIL_MIN(n, sizeof(zero));
		int r = util_pwrite_full(v->fd, zero, m, off);

		if (r)
			return io_error(v, r, "write", off);
		mark_unsynced(v);
		off += m;
		n -= m;
	}
	return 0;
}

/* Zero [in, in+n) of allocated block blk of a dynamic image whose sectors
 * there are all present: punch the page-aligned middle (reads zeros, frees
 * space; readers that ignore the bitmap see zeros too), write the edges.
 * Returns 1 when the range was not all present (caller writes zeros). */
static int dyn_zero_allocated(struct vhd *v, uint32_t blk, uint32_t in,
			      uint32_t n, bool edges)
{
	uint32_t s0 = in / VHD_SECTOR;
	uint32_t s1 = (in + n + VHD_SECTOR - 1) / VHD_SECTOR;
	uint32_t a = (uint32_t)util_align_up(in, VHD_DATA_ALIGN);
	uint32_t z = (in + n) / VHD_DATA_ALIGN * VHD_DATA_ALIGN;
	uint8_t *bm;
	uint64_t doff;
	int r;

	pthread_mutex_lock(&v->lock);
	r = bm_get(v, blk, &bm);
	doff = data_off(v, blk);
	pthread_mutex_unlock(&v->lock);
	if (r)
		return r;
	if (!bm_all_set(v, bm, s0, s1))
		return 1;
	if (a >= z)             /* no whole page inside: write it all */
		a = z = in + n;
	else if (fallocate(v->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			   (off_t)(doff + a), (off_t)(z - a)) < 0)
		return 1;
	mark_unsynced(v);
	if (!edges)
		return 0;
	r = zero_bytes(v, doff + in, a - in);
	return r ? r : zero_bytes(v, doff + z, in + n - z);
}

static bool block_allocated(struct vhd *v, uint32_t blk)
{
	bool a;

	pthread_mutex_lock(&v->lock);
	a = v->bat[blk] != VHD_BAT_UNUSED;
	pthread_mutex_unlock(&v->lock);
	return a;
}

/* True when [off, off+n) reads as zeros in the parent chain. */
static bool parent_zero(struct vhd *v, uint64_t off, uint64_t n)
{
	while (n) {
		struct bdev_status st;

		if (!v->parent || off >= v->parent->size)
			return v->parent != NULL;
		if (bdev_block_status(v->parent, off,
				      UTIL_MIN(n, v->parent->size - off), &st) ||
		    !(st.flags & BDEV_ST_ZERO))
			return false;
		off += st.length;
		n -= st.length;
	}
	return true;
}

/* Whether zeroing [off, off+len) needs no data writes: dynamic blocks
 * unallocated or fully present (punched), differencing blocks unallocated
 * over a zero parent.  Used to refuse a fast zero before changing
 * anything, as NBD's FAST_ZERO requires. */
static bool zero_is_fast(struct vhd *v, uint64_t off, uint64_t len)
{
	bool diff = v->footer.type == VHD_TYPE_DIFF;

	while (len) {
		uint32_t blk = (uint32_t)(off / v->block_size);
		uint32_t in = (uint32_t)(off % v->block_size);
		uint32_t n = (uint32_t)UTIL_MIN(len, (uint64_t)v->block_size - in);
		uint32_t s0 = in / VHD_SECTOR;
		uint32_t s1 = (in + n + VHD_SECTOR - 1) / VHD_SECTOR;
		uint8_t *bm = NULL;
		bool ok;

		pthread_mutex_lock(&v->lock);
		if (v->bat[blk] == VHD_BAT_UNUSED)
			ok = true;
		else if (diff || bm_get(v, blk, &bm))
			ok = false;
		else
			ok = util_bit_test(bm, s0) &&
			     util_bit_run(bm, s0, s1 - s0) == s1 - s0;
		pthread_mutex_unlock(&v->lock);
		if (!ok || (diff && !bm && !parent_zero(v, off, n)))
			return false;
		off += n;
		len -= n;
	}
	return true;
}

static int sparse_write_zeroes(struct bdev *b, uint64_t off, uint64_t len,
			       unsigned flags)
{
	struct vhd *v = V(b);
	bool diff = v->footer.type == VHD_TYPE_DIFF;
	int r = 0;

	if ((flags & BDEV_NO_FALLBACK) && !zero_is_fast(v, off, len))
		return -ENOTSUP;

	while (len && !r) {
		uint32_t blk = (uint32_t)(off / v->block_size);
		uint32_t in = (uint32_t)(off % v->block_size);
		uint32_t n = (uint32_t)UTIL_MIN(len, (uint64_t)v->block_size - in);

		if (!block_allocated(v, blk)) {
			/* Dynamic: already zeros.  Differencing: only when
			 * the parent reads zeros there too. */
			if (diff && !parent_zero(v, off, n))
				r = 1;
		} else if (!diff) {
			pthread_rwlock_rdlock(&v->rmw_lock);
			r = dyn_zero_allocated(v, blk, in, n, true);
			pthread_rwlock_unlock(&v->rmw_lock);
		} else {
			r = 1;
		}
		if (r == 1) {
			if (flags & BDEV_NO_FALLBACK)
				return -ENOTSUP;
			r = 0;
			for (uint64_t pos = 0; pos < n && !r; pos += 1 << 20) {
				static const uint8_t zero[1 << 20];
				size_t m = (size_t)UTIL_MIN(n - pos, sizeof(zero));

				r = sparse_write(b, zero, off + pos, m, 0);
			}
		}
		off += n;
		len -= n;
	}
	if (!r && (flags & BDEV_FUA))
		r = sparse_flush(b);
	return r;
}

static int sparse_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	struct vhd *v = V(b);

	/* Advisory.  In a dynamic image, whole pages of fully present blocks
	 * are punched out (they read as zeros afterwards); a differencing
	 * image keeps its data, since zeros there would hide the parent. */
	if (v->footer.type == VHD_TYPE_DIFF)
		return 0;
	while (len) {
		uint32_t blk = (uint32_t)(off / v->block_size);
		uint32_t in = (uint32_t)(off % v->block_size);
		uint32_t n = (uint32_t)UTIL_MIN(len, (uint64_t)v->block_size - in);

		pthread_rwlock_rdlock(&v->rmw_lock);
		if (block_allocated(v, blk))
			(void)dyn_zero_allocated(v, blk, in, n, false);
		pthread_rwlock_unlock(&v->rmw_lock);
		off += n;
		len -= n;
	}
	return 0;
}

static int parent_status(struct vhd *v, uint64_t off, uint64_t len,
			 struct bdev_status *st)
{
	int r;

	if (!v->parent || off >= v->parent->size) {
		st->length = len;
		st->flags = BDEV_ST_ZERO;
		st->depth = v->layers - 1;
		return 0;
	}
	r = bdev_block_status(v->parent, off, UTIL_MIN(len, v->parent->size - off),
			      st);
	if (r) {
		char msg[512];

		return bdev_set_error(&v->b, r, "parent: %s",
				      bdev_errmsg(v->parent, msg, sizeof(msg)));
	}
	st->depth += 1;
	return 0;
}

static int sparse_block_status(struct bdev *b, uint64_t off, uint64_t len,
			       struct bdev_status *st)
{
	struct vhd *v = V(b);
	bool diff = v->footer.type == VHD_TYPE_DIFF;
	uint32_t blk = (uint32_t)(off / v->block_size);
	uint32_t in = (uint32_t)(off % v->block_size);
	uint64_t n = UTIL_MIN(len, (uint64_t)v->block_size - in);
	uint8_t *bm = NULL;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	if (v->bat[blk] != VHD_BAT_UNUSED) {
		r = bm_get(v, blk, &bm);
	} else {
		/* Extend over following unallocated blocks. */
		for (uint32_t k = blk + 1; n < len && k < v->nblocks &&
		     v->bat[k] == VHD_BAT_UNUSED; k++)
			n += UTIL_MIN(len - n, (uint64_t)v->block_size);
	}
	pthread_mutex_unlock(&v->lock);
	if (r)
		return r;
	if (!bm) {
		if (diff)
			return parent_status(v, off, n, st);
		st->length = n;
		st->flags = BDEV_ST_ZERO;
		st->depth = v->layers - 1;
		return 0;
	}
	uint32_t sec = in / VHD_SECTOR;
	uint32_t last = (uint32_t)((in + n + VHD_SECTOR - 1) / VHD_SECTOR);
	bool set;
	uint64_t run = bm_run(v, bm, sec, last - sec, &set);

	n = UTIL_MIN(n, run * VHD_SECTOR + (uint64_t)sec * VHD_SECTOR - in);
	if (set) {
		st->length = n;
		st->flags = BDEV_ST_DATA | BDEV_ST_ALLOC;
		st->depth = 0;
		return 0;
	}
	if (diff)
		return parent_status(v, off, n, st);
	st->length = n;
	st->flags = BDEV_ST_ZERO | BDEV_ST_ALLOC;
	st->depth = 0;
	return 0;
}

/* Native I/O for the common case of a sparse image opened with
 * VHD_O_DIRECT: a read or write inside one allocated block whose bitmap is
 * loaded and whose sectors (whole granules, for a differencing image) are
 * all present needs no metadata change, so it goes to the libaio engine at
 * the block's data offset.  Everything else (allocation, bitmap bits to
 * set, parent reads, a data offset the direct-I/O alignment does not
 * allow) is declined and served by the synchronous ops on a worker.
 * Nothing can move a block's data while the image is open, so the offset
 * taken under the lock stays right after it is dropped; bits only go from
 * 0 to 1, so "all present" stays true. */
static int sparse_submit(struct bdev *b, struct bdev_req *rq)
{
	struct vhd *v = V(b);
	uint32_t blk, in, s0, s1, g;
	uint64_t doff = 0;
	bool ok = false;

	if (!v->aio || (rq->op != BDEV_OP_READ && rq->op != BDEV_OP_WRITE))
		return -ENOTSUP;
	blk = (uint32_t)(rq->off / v->block_size);
	in = (uint32_t)(rq->off % v->block_size);
	if (rq->len > v->block_size - in)
		return -ENOTSUP;
	g = granule(v) / VHD_SECTOR;
	s0 = in / VHD_SECTOR / g * g;
	s1 = (uint32_t)UTIL_MIN(util_align_up((in + rq->len + VHD_SECTOR - 1) /
					      VHD_SECTOR, g), v->spb);
	pthread_mutex_lock(&v->lock);
	if (v->bat[blk] != VHD_BAT_UNUSED && v->bm[blk]) {
		ok = util_bit_test(v->bm[blk], s0) &&
		     util_bit_run(v->bm[blk], s0, s1 - s0) == s1 - s0;
		doff = data_off(v, blk) + in;
		/* FUA must also make the block's BAT entry durable: only
		 * the flush path does that. */
		if ((rq->flags & BDEV_FUA) && v->meta_dirty)
			ok = false;
	}
	pthread_mutex_unlock(&v->lock);
	if (!ok || doff % v->b.limits.align_off)
		return -ENOTSUP;
	if (rq->op == BDEV_OP_WRITE && !(rq->flags & BDEV_FUA))
		mark_unsynced(v);
	return pt_aio_submit(v->aio, rq, doff);
}

const struct bdev_ops vhd_sparse_ops = {
	.kind = "vhd-sparse",
	.submit = sparse_submit,
	.read = sparse_read,
	.write = sparse_write,
	.flush = sparse_flush,
	.discard = sparse_discard,
	.write_zeroes = sparse_write_zeroes,
	.block_status = sparse_block_status,
	.close = vhd_close,
	.writeback = vhd_writeback,
	.file_info = vhd_file_info,
};
