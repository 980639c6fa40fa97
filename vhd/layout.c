/* File-layout helpers shared by compact, resize and merge: where the
 * metadata lies, copying and appending blocks, storing BAT entries,
 * telling an empty block, and raw footer access.  They work on an image
 * opened with vhd_open() whose file nobody else writes meanwhile. */
#include "vhd-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

#define COPY_BUF (1u << 20)

int vhd_err_from(struct vhd *v, int r, struct bdev_err *e)
{
	char msg[sizeof(e->msg)];

	return bdev_err_set(e, r, "%s", bdev_errmsg(&v->b, msg, sizeof(msg)));
}

int vhd_datasync(struct vhd *v)
{
	if (fdatasync(v->fd) < 0)
		return bdev_set_error(&v->b, errno, "sync failed: %s",
				      strerror(errno));
	return 0;
}

uint64_t vhd_meta_end(const struct vhd *v)
{
	uint64_t bat = util_align_up((uint64_t)v->hdr.max_table_entries * 4,
				     VHD_SECTOR);

	return UTIL_MAX(v->footer.data_offset + 1024, v->hdr.table_offset + bat);
}

static int cmp_range(const void *a, const void *b)
{
	const struct vhd_range *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

void vhd_range_sort(struct vhd_range *r, size_t n)
{
	qsort(r, n, sizeof(*r), cmp_range);
}

int vhd_meta_ranges(const struct vhd *v, struct vhd_range **out)
{
	return vhd_meta_ranges_of(&v->footer, &v->hdr, 0, out);
}

int vhd_meta_ranges_of(const struct vhd_footer *f, const struct vhd_header *h,
		       size_t extra, struct vhd_range **out)
{
	struct vhd_range *r = calloc(11 + extra, sizeof(*r));
	int n = 0;

	if (!r)
		return -ENOMEM;
	r[n++] = (struct vhd_range){ 0, VHD_SECTOR };
	r[n++] = (struct vhd_range){ f->data_offset, 1024 };
	r[n++] = (struct vhd_range){ h->table_offset,
		util_align_up((uint64_t)h->max_table_entries * 4, VHD_SECTOR) };
	for (int i = 0; i < 8; i++) {
		const struct vhd_locator *l = &h->loc[i];
		uint64_t len, space;

		if (!memcmp(l->code, "\0\0\0\0", 4) ||
		    (!l->data_length && !l->data_space))
			continue;
		/* data_space is sectors in the specification and bytes in
		 * what Hyper-V writes: reserve the larger reading that is
		 * plausible, and at least the data itself. */
		space = l->data_space < VHD_SECTOR ?
			(uint64_t)l->data_space * VHD_SECTOR : l->data_space;
		len = UTIL_MAX(util_align_up(l->data_length, VHD_SECTOR),
			       util_align_up(space, VHD_SECTOR));
		r[n++] = (struct vhd_range){ l->data_offset / VHD_SECTOR * VHD_SECTOR,
			UTIL_MIN(len, (uint64_t)VHD_MAX_LOCATOR_LEN * 4) + VHD_SECTOR };
	}
	vhd_range_sort(r, (size_t)n);
	*out = r;
	return n;
}

int vhd_file_copy(struct vhd *v, uint64_t from, uint64_t to, uint64_t len)
{
	uint8_t *buf = NULL;
	int r = 0;

	/* In-kernel copy first: no trip through our buffers. */
	while (len) {
		loff_t in = (loff_t)from, o = (loff_t)to;
		ssize_t n = copy_file_range(v->fd, &in, v->fd, &o,
					    (size_t)UTIL_MIN(len, (uint64_t)1 << 30), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		from += (uint64_t)n;
		to += (uint64_t)n;
		len -= (uint64_t)n;
	}
	if (len)
		buf = malloc(COPY_BUF);
	if (len && !buf)
		return bdev_set_error(&v->b, ENOMEM, "out of memory");
	while (len && !r) {
		size_t n = (size_t)UTIL_MIN(len, (uint64_t)COPY_BUF);

		r = util_pread_full(v->fd, buf, n, from, false);
		if (r) {
			r = bdev_set_error(&v->b, r, "read at file offset %llu failed: %s",
					   (unsigned long long)from, strerror(-r));
			break;
		}
		r = util_pwrite_full(v->fd, buf, n, to);
		if (r)
			r = bdev_set_error(&v->b, r, "write at file offset %llu failed: %s",
					   (unsigned long long)to, strerror(-r));
		from += n;
		to += n;
		len -= n;
	}
	free(buf);
	return r;
}

int vhd_bat_store(struct vhd *v, uint32_t first, uint32_t last)
{
	uint32_t s0 = first / (VHD_SECTOR / 4), s1 = last / (VHD_SECTOR / 4);
	size_t n = (size_t)(s1 - s0 + 1) * VHD_SECTOR;
	uint64_t off = v->hdr.table_offset + (uint64_t)s0 * VHD_SECTOR;
	uint8_t *buf = malloc(n);
	int r;

	if (!buf)
		return bdev_set_error(&v->b, ENOMEM, "out of memory");
	/* Start from the disk's bytes so the padding after the last entry
	 * stays what it was. */
	r = util_pread_full(v->fd, buf, n, off, false);
	for (uint64_t i = (uint64_t)s0 * (VHD_SECTOR / 4);
	     !r && i < (uint64_t)(s1 + 1) * (VHD_SECTOR / 4) &&
	     i < v->hdr.max_table_entries; i++)
		util_put_be32(buf + (i - (uint64_t)s0 * (VHD_SECTOR / 4)) * 4,
			      v->bat[i]);
	if (!r)
		r = util_pwrite_full(v->fd, buf, n, off);
	free(buf);
	if (r)
		return bdev_set_error(&v->b, r, "BAT write at file offset %llu failed: %s",
				      (unsigned long long)off, strerror(-r));
	return 0;
}

/* True when every sector of data[0, n) (sector s0 of the block onwards)
 * that the bitmap marks present is zero. */
static bool present_zero(const uint8_t *bm, uint32_t s0, const uint8_t *data,
			 size_t n)
{
	if (util_is_zero(data, n))
		return true;
	for (size_t i = 0; i < n; i += VHD_SECTOR)
		if (util_bit_test(bm, s0 + i / VHD_SECTOR) &&
		    !util_is_zero(data + i, UTIL_MIN((size_t)VHD_SECTOR, n - i)))
			return false;
	return true;
}

/* Whether allocated block blk holds nothing: no present sector, or (when
 * !present_counts) only present sectors reading as zeros. */
static int block_check(struct vhd *v, uint32_t blk, bool present_counts,
		       bool *empty)
{
	uint64_t bm_off = (uint64_t)v->bat[blk] * VHD_SECTOR;
	uint64_t first = (uint64_t)blk * v->block_size;
	uint32_t live = 0;
	uint8_t *bm, *buf = NULL;
	uint64_t pos = 0;
	size_t step = 64u << 10;
	int r;

	*empty = true;
	if (first < v->b.size)
		live = (uint32_t)(UTIL_MIN((uint64_t)v->block_size,
					   v->b.size - first) / VHD_SECTOR);
	if (!live)
		return 0;
	bm = malloc(v->bm_size);
	if (!bm)
		return bdev_set_error(&v->b, ENOMEM, "out of memory");
	r = util_pread_full(v->fd, bm, v->bm_size, bm_off, false);
	if (r) {
		free(bm);
		return bdev_set_error(&v->b, r, "bitmap read at file offset %llu failed: %s",
				      (unsigned long long)bm_off, strerror(-r));
	}
	if (util_bit_run(bm, 0, live) == live && !util_bit_test(bm, 0))
		goto out;                  /* nothing present */
	*empty = false;
	if (present_counts)
		goto out;                  /* present sectors hide the parent */
	buf = malloc(COPY_BUF);
	if (!buf) {
		r = bdev_set_error(&v->b, ENOMEM, "out of memory");
		goto out;
	}
	*empty = true;
	while (*empty && pos < (uint64_t)live * VHD_SECTOR) {
		uint64_t doff = bm_off + v->bm_size + pos, ext;
		bool data;

		util_seek_extent(v->fd, doff, (uint64_t)live * VHD_SECTOR - pos,
				 &data, &ext);
		if (!data) {                /* a hole reads as zeros */
			pos += ext;
			continue;
		}
		/* Small reads first: data usually shows in the first bytes. */
		size_t n = (size_t)UTIL_MIN(ext, (uint64_t)step);

		r = util_pread_full(v->fd, buf, n, doff, false);
		if (r) {
			r = bdev_set_error(&v->b, r, "read at file offset %llu failed: %s",
					   (unsigned long long)doff, strerror(-r));
			break;
		}
		*empty = present_zero(bm, (uint32_t)(pos / VHD_SECTOR), buf, n);
		pos += n;
		step = COPY_BUF;
	}
out:
	free(buf);
	free(bm);
	return r;
}

int vhd_block_empty(struct vhd *v, uint32_t blk, bool *empty)
{
	return block_check(v, blk, v->footer.type == VHD_TYPE_DIFF, empty);
}

int vhd_block_zero(struct vhd *v, uint32_t blk, bool *zero)
{
	return block_check(v, blk, false, zero);
}

int vhd_footer_read_raw(struct vhd *v, uint8_t raw[512])
{
	uint64_t off = v->footer.type == VHD_TYPE_FIXED ? v->file_size - 512
							 : v->footer_off;
	int r = util_pread_full(v->fd, raw, 512, off, false);

	if (r)
		return bdev_set_error(&v->b, r, "footer read at file offset %llu failed: %s",
				      (unsigned long long)off, strerror(-r));
	return 0;
}

int vhd_footer_write_raw(struct vhd *v, uint8_t raw[512], uint64_t off)
{
	int r;

	util_put_be32(raw + offsetof(struct vhd_footer_disk, checksum), 0);
	util_put_be32(raw + offsetof(struct vhd_footer_disk, checksum),
		      vhd_checksum(raw, 512));
	r = util_pwrite_full(v->fd, raw, 512, off);
	if (r)
		return bdev_set_error(&v->b, r, "footer write at file offset %llu failed: %s",
				      (unsigned long long)off, strerror(-r));
	return 0;
}

/* Make room for one more block at the end of the file: the footer is
 * written past it first (so the file always ends with a footer), the old
 * footer's place zeroed.  With reserve the space is allocated first
 * (fallocate), so a full disk fails here; without, the block's data is
 * left a hole that reads as zeros.  Sets where its bitmap goes and the new
 * end of the blocks (the footer's offset); v->footer_off is not changed. */
static int block_room(struct vhd *v, bool reserve, uint64_t *bm_off_out,
		      uint64_t *new_end_out)
{
	uint64_t bm_off = util_align_up(v->footer_off + v->bm_size,
					VHD_DATA_ALIGN) - v->bm_size;
	uint64_t new_end = bm_off + vhd_block_span(v);
	uint8_t raw[512];
	int r;

	if (bm_off / VHD_SECTOR >= VHD_BAT_UNUSED)
		return bdev_set_error(&v->b, EFBIG,
				      "image file would grow past 2 TiB, the VHD limit");
	if (reserve &&
	    fallocate(v->fd, FALLOC_FL_KEEP_SIZE, (off_t)v->footer_off,
		      (off_t)(new_end + 512 - v->footer_off)) < 0 &&
	    errno != EOPNOTSUPP && errno != ENOSYS)
		return bdev_set_error(&v->b, errno,
				      "cannot grow the file by %llu bytes: %s",
				      (unsigned long long)(new_end + 512 - v->footer_off),
				      strerror(errno));
	r = vhd_footer_read_raw(v, raw);
	if (!r)
		r = vhd_footer_write_raw(v, raw, new_end);
	if (r)
		return r;
	/* Zero the old footer's place: it is no longer the end. */
	if (bm_off > v->footer_off) {
		uint8_t *zero = calloc(1, bm_off - v->footer_off);

		if (!zero)
			return bdev_set_error(&v->b, ENOMEM, "out of memory");
		r = util_pwrite_full(v->fd, zero, bm_off - v->footer_off,
				     v->footer_off);
		free(zero);
		if (r)
			return bdev_set_error(&v->b, r, "write at file offset %llu failed: %s",
					      (unsigned long long)v->footer_off,
					      strerror(-r));
	}
	*bm_off_out = bm_off;
	*new_end_out = new_end;
	return 0;
}

int vhd_block_append(struct vhd *v, uint32_t blk, uint64_t *new_off)
{
	uint64_t bm_off, new_end;
	int r = block_room(v, true, &bm_off, &new_end);

	if (!r)
		r = vhd_file_copy(v, (uint64_t)v->bat[blk] * VHD_SECTOR, bm_off,
				  vhd_block_span(v));
	if (r)
		return r;
	v->footer_off = new_end;
	*new_off = bm_off;
	return 0;
}

int vhd_block_append_new(struct vhd *v, const uint8_t *bm, uint64_t *new_off)
{
	uint64_t bm_off, new_end;
	int r = block_room(v, false, &bm_off, &new_end);

	if (r)
		return r;
	r = util_pwrite_full(v->fd, bm, v->bm_size, bm_off);
	if (r)
		return bdev_set_error(&v->b, r, "bitmap write failed: %s", strerror(-r));
	v->footer_off = new_end;
	*new_off = bm_off;
	return 0;
}
