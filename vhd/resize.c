/* Resize an image (change its disk size) in place.
 *
 * The disk size lives in the footer (the end one, and for sparse images the
 * copy at offset 0): current size, original size (libvhdi reads that one;
 * both are set to the new size) and the CHS geometry (vhd_geometry_for_size).
 *
 * Fixed, growing from S to S': write the old footer at S' first (the file
 * still reads as the old disk: a fixed image may be longer than it needs),
 * zero [S, S') (the old footer's place), then write the new footer at S'.
 * Shrinking (only zeros past S'): the new footer over the end one first,
 * then at S', then cut the file.
 *
 * Sparse, growing: zero the data past S in the last block (bytes the disk
 * never showed), make room for the larger BAT if its padded sectors do not
 * hold the new entries (locator data in the way is copied to the end of the
 * file and the header pointed at the copies; blocks in the way are copied
 * to the end and their BAT entries repointed), mark the new entries unused,
 * raise max_table_entries (header sector 0: one sector, written whole),
 * then the footers: the end one, then the copy.
 * Shrinking (--allow-shrink): blocks past the new end that hold nothing are
 * dropped, present sectors past the end of the last block cleared when they
 * are zeros; any data past the new end refuses the shrink before anything
 * changes.  Then the footers, then max_table_entries.
 *
 * Every step is ordered so that a crash leaves a valid image of the old or
 * the new size, showing the same data in the range both sizes share; the
 * only window where `check` would complain is between the end footer and
 * its copy at offset 0 (one sector write apart; `check --repair` rewrites
 * the copy).
 */
#include "vhd-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

#define HDR_MAX_ENTRIES 28     /* offsetof(struct vhd_header_disk, max_table_entries) */

_Static_assert(offsetof(struct vhd_header_disk, max_table_entries) ==
	       HDR_MAX_ENTRIES, "header max_table_entries");

static void patch_footer(uint8_t raw[512], uint64_t size)
{
	uint16_t c;
	uint8_t h, s;

	vhd_geometry_for_size(size, &c, &h, &s);
	util_put_be64(raw + offsetof(struct vhd_footer_disk, original_size), size);
	util_put_be64(raw + offsetof(struct vhd_footer_disk, current_size), size);
	util_put_be16(raw + offsetof(struct vhd_footer_disk, cylinders), c);
	raw[offsetof(struct vhd_footer_disk, heads)] = h;
	raw[offsetof(struct vhd_footer_disk, sectors)] = s;
}

static int zero_file_range(struct vhd *v, uint64_t off, uint64_t len)
{
	static const uint8_t zero[64 << 10];

	while (len) {
		size_t n = (size_t)UTIL_MIN(len, (uint64_t)sizeof(zero));
		int r = util_pwrite_full(v->fd, zero, n, off);

		if (r)
			return bdev_set_error(&v->b, r, "write at file offset %llu failed: %s",
					      (unsigned long long)off, strerror(-r));
		off += n;
		len -= n;
	}
	return 0;
}

/* True when [off, off+len) of the file reads as zeros. */
static int file_zero(struct vhd *v, uint64_t off, uint64_t len, bool *zero,
		     uint64_t *where)
{
	uint8_t *buf = malloc(1 << 20);
	int r = 0;

	if (!buf)
		return bdev_set_error(&v->b, ENOMEM, "out of memory");
	*zero = true;
	while (len && *zero) {
		bool data;
		uint64_t n;

		util_seek_extent(v->fd, off, len, &data, &n);
		if (data) {
			n = UTIL_MIN(n, (uint64_t)1 << 20);
			r = util_pread_full(v->fd, buf, (size_t)n, off, true);
			if (r) {
				r = bdev_set_error(&v->b, r, "read at file offset %llu failed: %s",
						   (unsigned long long)off, strerror(-r));
				break;
			}
			if (!util_is_zero(buf, (size_t)n)) {
				*zero = false;
				*where = off;
			}
		}
		off += n;
		len -= n;
	}
	free(buf);
	return r;
}

/* ---- fixed ---- */

static int fixed_resize(struct vhd *v, uint64_t size, unsigned flags)
{
	bool shrink = flags & VHD_RESIZE_SHRINK;
	uint64_t old = v->b.size, end = v->file_size - 512;
	uint8_t raw[512], nraw[512];
	int r;

	r = vhd_footer_read_raw(v, raw);
	if (r)
		return r;
	memcpy(nraw, raw, 512);
	patch_footer(nraw, size);
	if (size < old) {
		bool zero;
		uint64_t where = 0;

		if (!shrink)
			return bdev_set_error(&v->b, EINVAL, "the new size is smaller than the disk: shrinking needs --allow-shrink");
		zero = true;   /* VHD_RESIZE_DISCARD: whatever lies there goes */
		r = (flags & VHD_RESIZE_DISCARD) ? 0
		    : file_zero(v, size, old - size, &zero, &where);
		if (r)
			return r;
		if (!zero)
			return bdev_set_error(&v->b, ENOTEMPTY,
					      "cannot shrink: the disk holds data at offset %llu, past the new end",
					      (unsigned long long)where);
		r = vhd_footer_write_raw(v, nraw, end);
		if (!r)
			r = vhd_datasync(v);
		if (!r)
			r = vhd_footer_write_raw(v, nraw, size);
		if (!r)
			r = vhd_datasync(v);
		if (r)
			return r;
		if (ftruncate(v->fd, (off_t)(size + 512)) < 0 || fsync(v->fd) < 0)
			return bdev_set_error(&v->b, errno, "cannot shorten the file: %s",
					      strerror(errno));
		return 0;
	}
	/* Grow.  Reserve the space (so a full disk fails here, cleanly). */
	if (fallocate(v->fd, FALLOC_FL_KEEP_SIZE, (off_t)old,
		      (off_t)(size + 512 - old)) < 0 &&
	    errno != EOPNOTSUPP && errno != ENOSYS)
		return bdev_set_error(&v->b, errno, "cannot grow the file to %llu bytes: %s",
				      (unsigned long long)(size + 512), strerror(errno));
	if (size > end) {
		r = vhd_footer_write_raw(v, raw, size);   /* old size, new end */
		if (!r)
			r = vhd_datasync(v);
		if (r)
			return r;
		end = size;
	}
	r = zero_file_range(v, old, UTIL_MIN(size, v->file_size) - old);
	if (!r)
		r = vhd_datasync(v);
	if (!r)
		r = vhd_footer_write_raw(v, nraw, size);
	if (!r && end != size)
		r = vhd_footer_write_raw(v, nraw, end);
	if (!r)
		r = vhd_datasync(v);
	if (!r && end != size &&
	    (ftruncate(v->fd, (off_t)(size + 512)) < 0 || fsync(v->fd) < 0))
		r = bdev_set_error(&v->b, errno, "cannot shorten the file: %s",
				   strerror(errno));
	return r;
}

/* ---- sparse ---- */

/* Move the end footer to `to` (>= where it is). */
static int move_footer(struct vhd *v, uint64_t to)
{
	uint8_t raw[512];
	int r;

	if (to <= v->footer_off)
		return 0;
	r = vhd_footer_read_raw(v, raw);
	if (!r)
		r = vhd_footer_write_raw(v, raw, to);
	if (!r)
		r = vhd_datasync(v);
	if (!r)
		v->footer_off = to;
	return r;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Bytes reserved for locator l (as vhd_meta_ranges counts them). */
static uint64_t loc_len(const struct vhd_locator *l)
{
	uint64_t space = l->data_space < VHD_SECTOR ?
			 (uint64_t)l->data_space * VHD_SECTOR : l->data_space;

	return UTIL_MAX(util_align_up(l->data_length, VHD_SECTOR),
			util_align_up(space, VHD_SECTOR));
}

/* Copy the locator data inside [off, off+len) to the end of the file and
 * point the header at the copies (one 1 KiB header write inside the first
 * 4 KiB page). */
static int move_locators(struct vhd *v, uint64_t off, uint64_t len,
			 struct vhd_resize_stats *st)
{
	uint8_t hdr[1024];
	uint64_t pos = v->footer_off, newoff[8] = { 0 };
	bool any = false;
	int r;

	for (int i = 0; i < 8; i++) {
		const struct vhd_locator *l = &v->hdr.loc[i];

		if (!memcmp(l->code, "\0\0\0\0", 4) ||
		    (!l->data_length && !l->data_space) ||
		    !overlaps(l->data_offset, loc_len(l), off, len))
			continue;
		newoff[i] = pos;
		pos += loc_len(l);
		any = true;
	}
	if (!any)
		return 0;
	/* Footer past the copies first, then the copies over the old end. */
	{
		uint8_t raw[512];
		uint64_t at = v->footer_off;

		r = vhd_footer_read_raw(v, raw);
		if (!r)
			r = vhd_footer_write_raw(v, raw, pos);
		if (!r)
			r = zero_file_range(v, at, pos - at);
		for (int i = 0; i < 8 && !r; i++)
			if (newoff[i])
				r = vhd_file_copy(v, v->hdr.loc[i].data_offset, newoff[i],
						  v->hdr.loc[i].data_length);
		if (!r)
			r = vhd_datasync(v);
		if (r)
			return r;
		v->footer_off = pos;
	}
	r = util_pread_full(v->fd, hdr, 1024, v->footer.data_offset, false);
	if (r)
		return bdev_set_error(&v->b, r, "cannot read the dynamic header: %s",
				      strerror(-r));
	for (int i = 0; i < 8; i++) {
		if (!newoff[i])
			continue;
		util_put_be64(hdr + offsetof(struct vhd_header_disk, loc) +
			      (size_t)i * sizeof(struct vhd_locator_disk) +
			      offsetof(struct vhd_locator_disk, data_offset), newoff[i]);
		v->hdr.loc[i].data_offset = newoff[i];
	}
	util_put_be32(hdr + offsetof(struct vhd_header_disk, checksum), 0);
	util_put_be32(hdr + offsetof(struct vhd_header_disk, checksum),
		      vhd_checksum(hdr, 1024));
	r = util_pwrite_full(v->fd, hdr, 1024, v->footer.data_offset);
	if (r)
		return bdev_set_error(&v->b, r, "header write failed: %s", strerror(-r));
	st->locators_moved = true;
	return vhd_datasync(v);
}

/* Copy the blocks overlapping [off, off+len) to the end of the file and
 * repoint their BAT entries. */
static int move_blocks(struct vhd *v, uint64_t off, uint64_t len,
		       struct vhd_resize_stats *st)
{
	uint32_t entries = v->hdr.max_table_entries, lo = UINT32_MAX, hi = 0;
	uint32_t *idx = malloc(sizeof(*idx) * (entries ? entries : 1));
	uint64_t *to = malloc(sizeof(*to) * (entries ? entries : 1));
	uint32_t n = 0;
	int r = 0;

	if (!idx || !to) {
		free(idx);
		free(to);
		return bdev_set_error(&v->b, ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < entries && !r; i++) {
		if (v->bat[i] == VHD_BAT_UNUSED ||
		    !overlaps((uint64_t)v->bat[i] * VHD_SECTOR, vhd_block_span(v),
			      off, len))
			continue;
		r = vhd_block_append(v, i, &to[n]);
		idx[n++] = i;
	}
	if (!r && n)
		r = vhd_datasync(v);
	for (uint32_t k = 0; k < n && !r; k++) {
		v->bat[idx[k]] = (uint32_t)(to[k] / VHD_SECTOR);
		lo = UTIL_MIN(lo, idx[k]);
		hi = UTIL_MAX(hi, idx[k]);
	}
	if (!r && n) {
		r = vhd_bat_store(v, lo, hi);
		if (!r)
			r = vhd_datasync(v);
	}
	st->blocks_moved += n;
	free(idx);
	free(to);
	return r;
}

/* Write header sector 0 with max_table_entries = entries. */
static int set_max_entries(struct vhd *v, uint32_t entries)
{
	uint8_t hdr[1024];
	int r = util_pread_full(v->fd, hdr, 1024, v->footer.data_offset, false);

	if (r)
		return bdev_set_error(&v->b, r, "cannot read the dynamic header: %s",
				      strerror(-r));
	util_put_be32(hdr + HDR_MAX_ENTRIES, entries);
	util_put_be32(hdr + offsetof(struct vhd_header_disk, checksum), 0);
	util_put_be32(hdr + offsetof(struct vhd_header_disk, checksum),
		      vhd_checksum(hdr, 1024));
	/* Both fields live in the first sector: one sector write. */
	r = util_pwrite_full(v->fd, hdr, 512, v->footer.data_offset);
	if (r)
		return bdev_set_error(&v->b, r, "header write failed: %s", strerror(-r));
	return vhd_datasync(v);
}

/* The in-memory tables follow a grown BAT (new entries unused), so that
 * later steps can allocate blocks there and vhd_free frees the right
 * count. */
static int grow_tables(struct vhd *v, uint32_t entries)
{
	uint32_t old = v->hdr.max_table_entries;
	uint64_t secs = util_align_up((uint64_t)entries * 4, VHD_SECTOR) / VHD_SECTOR;
	uint32_t *bat = realloc(v->bat, sizeof(*bat) * entries);
	uint8_t **bm;
	uint8_t *bmd, *batd;

	if (bat)
		v->bat = bat;
	bm = bat ? realloc(v->bm, sizeof(*bm) * entries) : NULL;
	if (bm)
		v->bm = bm;
	bmd = bm ? calloc(entries, 1) : NULL;
	batd = bmd ? calloc(secs, 1) : NULL;
	if (!batd) {
		free(bmd);
		return bdev_set_error(&v->b, ENOMEM, "out of memory");
	}
	for (uint32_t i = old; i < entries; i++) {
		v->bat[i] = VHD_BAT_UNUSED;
		v->bm[i] = NULL;
	}
	memcpy(bmd, v->bm_dirty, old);
	free(v->bm_dirty);
	v->bm_dirty = bmd;
	memcpy(batd, v->bat_dirty,
	       util_align_up((uint64_t)old * 4, VHD_SECTOR) / VHD_SECTOR);
	free(v->bat_dirty);
	v->bat_dirty = batd;
	v->hdr.max_table_entries = entries;
	return 0;
}

/* Give the BAT room for `entries` entries (unused) and raise the header's
 * max_table_entries. */
static int grow_bat(struct vhd *v, uint32_t entries, struct vhd_resize_stats *st)
{
	uint32_t old = v->hdr.max_table_entries;
	uint64_t tbl = v->hdr.table_offset;
	uint64_t have = util_align_up((uint64_t)old * 4, VHD_SECTOR);
	uint64_t need = util_align_up((uint64_t)entries * 4, VHD_SECTOR);
	uint64_t from = tbl + (uint64_t)old * 4;
	uint8_t *buf;
	int r;

	if (need > have) {
		uint64_t roff = tbl + have, rlen = need - have;

		if (overlaps(roff, rlen, 0, VHD_SECTOR) ||
		    overlaps(roff, rlen, v->footer.data_offset, 1024))
			return bdev_set_error(&v->b, ENOTSUP,
					      "cannot grow the BAT: the dynamic header follows it (unusual layout); convert the image instead");
		/* The file must reach past the new BAT before blocks are
		 * appended, so that they land after it. */
		r = move_footer(v, roff + rlen);
		if (!r)
			r = move_locators(v, roff, rlen, st);
		if (!r)
			r = move_blocks(v, roff, rlen, st);
		if (r)
			return r;
	}
	/* New entries unused, and the sector padding after them 0xff too
	 * (as vhd_create and qemu write it). */
	buf = malloc(tbl + need - from);
	if (!buf)
		return bdev_set_error(&v->b, ENOMEM, "out of memory");
	memset(buf, 0xff, tbl + need - from);
	r = util_pwrite_full(v->fd, buf, tbl + need - from, from);
	free(buf);
	if (r)
		return bdev_set_error(&v->b, r, "BAT write failed: %s", strerror(-r));
	r = vhd_datasync(v);
	if (!r)
		r = set_max_entries(v, entries);
	return r ? r : grow_tables(v, entries);
}

/* The footers, end first. */
static int write_footers(struct vhd *v, uint64_t size)
{
	uint8_t raw[512];
	int r = vhd_footer_read_raw(v, raw);

	if (r)
		return r;
	patch_footer(raw, size);
	r = vhd_footer_write_raw(v, raw, v->footer_off);
	if (!r)
		r = vhd_datasync(v);
	if (!r)
		r = vhd_footer_write_raw(v, raw, 0);
	return r ? r : vhd_datasync(v);
}

/* Bytes [a, b) of allocated block blk's data must go: check they hold
 * nothing (dynamic: zeros; differencing: no sector present).  Sets *clear
 * when bitmap bits there must be cleared. */
static int tail_check(struct vhd *v, uint32_t blk, uint32_t a, uint8_t *bm,
		      bool discard, bool *clear)
{
	uint64_t bm_off = (uint64_t)v->bat[blk] * VHD_SECTOR;
	uint32_t s0 = a / VHD_SECTOR;
	bool zero;
	uint64_t where;
	int r;

	*clear = false;
	r = util_pread_full(v->fd, bm, v->bm_size, bm_off, false);
	if (r)
		return bdev_set_error(&v->b, r, "bitmap read failed: %s", strerror(-r));
	if (util_bit_run(bm, s0, v->spb - s0) == v->spb - s0 &&
	    !util_bit_test(bm, s0))
		return 0;
	if (discard) {
		/* Dropped: the data past the cut is zeroed (so a later grow
		 * shows zeros) and its sectors cleared. */
		r = zero_file_range(v, bm_off + v->bm_size + a, v->block_size - a);
		*clear = !r;
		return r;
	}
	/* Present sectors past the cut must read zeros (in a differencing
	 * image too: zeros there only hid the parent past the new end). */
	r = file_zero(v, bm_off + v->bm_size + a, v->block_size - a, &zero, &where);
	if (r)
		return r;
	if (!zero)
		return bdev_set_error(&v->b, ENOTEMPTY,
				      "cannot shrink: the disk holds data at offset %llu, past the new end",
				      (unsigned long long)(where - bm_off - v->bm_size +
							   (uint64_t)blk * v->block_size));
	*clear = true;
	return 0;
}

static int sparse_shrink(struct vhd *v, uint64_t size, unsigned flags,
			 struct vhd_resize_stats *st)
{
	bool discard = flags & VHD_RESIZE_DISCARD;
	uint32_t entries = v->hdr.max_table_entries;
	uint32_t keep = (uint32_t)((size + v->block_size - 1) / v->block_size);
	uint32_t last = keep - 1, cut = (uint32_t)(size - (uint64_t)last * v->block_size);
	uint32_t lo = UINT32_MAX, hi = 0;
	uint8_t *bm = malloc(v->bm_size);
	bool clear = false;
	int r = 0;

	if (!bm)
		return bdev_set_error(&v->b, ENOMEM, "out of memory");
	/* Checks first: nothing changes when the shrink is refused. */
	for (uint32_t i = keep; i < entries && !r && !discard; i++) {
		bool empty;

		if (v->bat[i] == VHD_BAT_UNUSED)
			continue;
		/* Zeros are no data: a differencing image's present zero
		 * sectors (which hid the parent) go too. */
		r = vhd_block_zero(v, i, &empty);
		if (!r && !empty)
			r = bdev_set_error(&v->b, ENOTEMPTY,
					   "cannot shrink: block %u (disk offset %llu) past the new end holds data",
					   i, (unsigned long long)i * v->block_size);
	}
	if (!r && cut < v->block_size && v->bat[last] != VHD_BAT_UNUSED)
		r = tail_check(v, last, cut, bm, discard, &clear);
	if (r)
		goto out;
	for (uint32_t i = keep; i < entries; i++)
		if (v->bat[i] != VHD_BAT_UNUSED) {
			v->bat[i] = VHD_BAT_UNUSED;
			lo = UTIL_MIN(lo, i);
			hi = UTIL_MAX(hi, i);
			st->blocks_dropped++;
		}
	if (st->blocks_dropped)
		r = vhd_bat_store(v, lo, hi);
	if (!r && clear) {
		/* Only whole bitmap bytes where possible: the byte holding
		 * the cut keeps the bits before it. */
		for (uint32_t s = cut / VHD_SECTOR; s < v->spb; s++)
			util_bit_clear(bm, s);
		r = util_pwrite_full(v->fd, bm, v->bm_size,
				     (uint64_t)v->bat[last] * VHD_SECTOR);
		if (r)
			r = bdev_set_error(&v->b, r, "bitmap write failed: %s", strerror(-r));
	}
	if (!r)
		r = vhd_datasync(v);
	if (!r)
		r = write_footers(v, size);
	if (!r && keep < entries)
		r = set_max_entries(v, keep);
out:
	free(bm);
	return r;
}

/* True when [off, off+len) of b reads as zeros (block status). */
static int reads_zero(struct bdev *b, uint64_t off, uint64_t len, bool *zero)
{
	*zero = true;
	while (len && *zero) {
		struct bdev_status bs;
		int r = bdev_block_status(b, off, len, &bs);

		if (r)
			return r;
		*zero = bs.flags & BDEV_ST_ZERO;
		off += bs.length;
		len -= bs.length;
	}
	return 0;
}

/* Make bytes [lo, hi) of block blk of a differencing image present and
 * zero (hiding the parent there).  Bitmap bytes stay 0x00 or 0xff (the
 * granule rule of io.c): the sectors of the first granule before lo get
 * the data the disk shows there now (the child's own, or the parent's),
 * so the disk reads the same below lo.  Data before bitmap: an allocated
 * block gets its data written and synced before its bitmap; a new block
 * is appended (no BAT entry yet: *new_off is set, the caller stores it). */
static int hide_in_block(struct vhd *v, struct bdev *parent, uint32_t blk,
			 uint32_t lo, uint32_t hi, uint64_t *new_off)
{
	uint64_t base = (uint64_t)blk * v->block_size, data;
	uint32_t s0 = lo / VHD_SECTOR, s1 = (hi + VHD_SECTOR - 1) / VHD_SECTOR;
	uint32_t g0 = s0 / 8 * 8, g1 = UTIL_MIN((s1 + 7) / 8 * 8, v->spb);
	bool alloc = v->bat[blk] != VHD_BAT_UNUSED;
	uint8_t *bm = calloc(1, v->bm_size);
	uint8_t *buf = calloc(g1 - g0, VHD_SECTOR);
	int r = 0;

	*new_off = 0;
	if (!bm || !buf) {
		r = bdev_set_error(&v->b, ENOMEM, "out of memory");
		goto out;
	}
	data = alloc ? (uint64_t)v->bat[blk] * VHD_SECTOR + v->bm_size : 0;
	if (alloc && (r = util_pread_full(v->fd, bm, v->bm_size,
					  data - v->bm_size, false))) {
		r = bdev_set_error(&v->b, r, "bitmap read failed: %s", strerror(-r));
		goto out;
	}
	for (uint32_t s = g0; s < s0 && !r; s++) {
		uint8_t *p = buf + (size_t)(s - g0) * VHD_SECTOR;
		uint64_t at = base + (uint64_t)s * VHD_SECTOR;

		if (alloc && util_bit_test(bm, s)) {
			r = util_pread_full(v->fd, p, VHD_SECTOR,
					    data + (uint64_t)s * VHD_SECTOR, false);
			if (r)
				r = bdev_set_error(&v->b, r, "read failed: %s", strerror(-r));
		} else if (at < parent->size) {
			r = bdev_read(parent, p, at, VHD_SECTOR);
			if (r) {
				char msg[512];

				r = bdev_set_error(&v->b, r, "parent: %s",
						   bdev_errmsg(parent, msg, sizeof(msg)));
			}
		}
	}
	if (r)
		goto out;
	util_bit_set_range(bm, g0, g1 - g0);
	if (!alloc) {
		r = vhd_block_append_new(v, bm, new_off);
		/* The new block's data is a hole: only the copied sectors. */
		if (!r && s0 > g0 &&
		    (r = util_pwrite_full(v->fd, buf, (size_t)(s0 - g0) * VHD_SECTOR,
					  *new_off + v->bm_size + (uint64_t)g0 * VHD_SECTOR)))
			r = bdev_set_error(&v->b, r, "write failed: %s", strerror(-r));
		goto out;
	}
	r = util_pwrite_full(v->fd, buf, (size_t)(g1 - g0) * VHD_SECTOR,
			     data + (uint64_t)g0 * VHD_SECTOR);
	if (r) {
		r = bdev_set_error(&v->b, r, "write failed: %s", strerror(-r));
		goto out;
	}
	r = vhd_datasync(v);
	if (!r && (r = util_pwrite_full(v->fd, bm, v->bm_size, data - v->bm_size)))
		r = bdev_set_error(&v->b, r, "bitmap write failed: %s", strerror(-r));
out:
	free(buf);
	free(bm);
	return r;
}

/* Differencing, growing from old to size: the range [old, min(size, P))
 * (P: the parent's disk size) would show the parent's data there, which
 * this disk never showed (it was shrunk, or is smaller than its parent).
 * The new area must read as zeros, as qemu makes it for an overlay over a
 * larger backing file.  Wherever the parent holds something non-zero
 * there, the child's sectors are made present and zero, before the
 * footers give the new size: until then they lie past the end of the
 * disk, so a crash leaves the old size reading the same.  New blocks are
 * appended with their bitmaps, synced, then entered in the BAT, synced. */
static int diff_hide_parent(struct vhd *v, uint64_t old, uint64_t size,
			    struct vhd_resize_stats *st)
{
	struct vhd_open_opts po = { .flags = VHD_O_RDONLY };
	char ppath[4096], why[1200];
	uint32_t lo = UINT32_MAX, hi = 0;
	struct bdev_err pe = { 0 };
	struct bdev *parent;
	uint64_t end;
	int r;

	r = vhd_find_parent(v->fd, v->path, &v->hdr, v->file_size, ppath,
			    sizeof(ppath), why, sizeof(why));
	if (r)
		return bdev_set_error(&v->b, -r, "cannot grow without the parent (its data past the old end must be hidden): %s",
				      why);
	parent = vhd_open(ppath, &po, &pe);
	if (!parent)
		return bdev_set_error(&v->b, pe.code, "cannot grow without the parent: %s",
				      pe.msg);
	end = UTIL_MIN(size, parent->size);
	for (uint64_t off = old; off < end && !r;) {
		uint32_t blk = (uint32_t)(off / v->block_size);
		uint64_t base = (uint64_t)blk * v->block_size;
		uint64_t stop = UTIL_MIN(end, base + v->block_size), at;
		bool zero;

		r = reads_zero(parent, off, stop - off, &zero);
		if (r) {
			char msg[512];

			r = bdev_set_error(&v->b, r, "parent: %s",
					   bdev_errmsg(parent, msg, sizeof(msg)));
		} else if (!zero) {
			r = hide_in_block(v, parent, blk, (uint32_t)(off - base),
					  (uint32_t)(stop - base), &at);
			if (!r && at) {
				v->bat[blk] = (uint32_t)(at / VHD_SECTOR);
				lo = UTIL_MIN(lo, blk);
				hi = UTIL_MAX(hi, blk);
			}
			st->blocks_hiding += !r;
		}
		off = stop;
	}
	bdev_close(parent);
	if (!r)
		r = vhd_datasync(v);
	if (!r && lo <= hi) {
		r = vhd_bat_store(v, lo, hi);
		if (!r)
			r = vhd_datasync(v);
	}
	return r;
}

static int sparse_grow(struct vhd *v, uint64_t size, struct vhd_resize_stats *st)
{
	uint64_t old = v->b.size;
	uint32_t last = (uint32_t)(old / v->block_size);
	uint64_t need = (size + v->block_size - 1) / v->block_size;
	int r = 0;

	if (need > UINT32_MAX / 4)
		return bdev_set_error(&v->b, EFBIG, "too many blocks");
	/* Bytes past the old end in its last block become visible. */
	if (old % v->block_size && last < v->hdr.max_table_entries &&
	    v->bat[last] != VHD_BAT_UNUSED) {
		uint64_t in = old % v->block_size;
		uint64_t stop = UTIL_MIN((uint64_t)v->block_size,
					 size - (uint64_t)last * v->block_size);

		r = zero_file_range(v, (uint64_t)v->bat[last] * VHD_SECTOR +
				    v->bm_size + in, stop - in);
		if (!r)
			r = vhd_datasync(v);
	}
	if (!r && need > v->hdr.max_table_entries)
		r = grow_bat(v, (uint32_t)need, st);
	if (!r && v->footer.type == VHD_TYPE_DIFF)
		r = diff_hide_parent(v, old, size, st);
	return r ? r : write_footers(v, size);
}

int vhd_resize(const char *path, uint64_t size, unsigned flags,
	       struct vhd_resize_stats *st, struct bdev_err *e)
{
	struct vhd_open_opts oo = { .flags = VHD_O_NO_PARENT };
	struct vhd_resize_stats dummy;
	struct bdev *b;
	struct vhd *v;
	int r;

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (size == 0 || size % VHD_SECTOR)
		return bdev_err_set(e, EINVAL, "%s: new size %llu is not a positive multiple of 512 bytes",
				    path, (unsigned long long)size);
	if (size > VHD_MAX_SIZE)
		return bdev_err_set(e, EFBIG, "%s: new size %llu is larger than the VHD limit of 2040 GiB",
				    path, (unsigned long long)size);
	b = vhd_open(path, &oo, e);
	if (!b)
		return -e->code;
	v = vhd_of(b);
	st->old_size = b->size;
	st->new_size = size;
	if (size == b->size)
		r = 0;
	else if (v->footer.type == VHD_TYPE_FIXED)
		r = fixed_resize(v, size, flags);
	else if (size > b->size)
		r = sparse_grow(v, size, st);
	else if (!(flags & VHD_RESIZE_SHRINK))
		r = bdev_set_error(b, EINVAL, "the new size is smaller than the disk: shrinking needs --allow-shrink");
	else
		r = sparse_shrink(v, size, flags, st);
	if (r)
		vhd_err_from(v, r, e);
	bdev_close(b);
	return r;
}
