/* check and repair.  Works on the file itself (not through vhd_open) so it
 * can describe damage that open refuses.  Repairs: a lost or torn end
 * footer rebuilt from the copy at offset 0 (and a damaged copy from the end
 * footer), BAT entries pointing past the end of the file cleared.
 *
 * A file cut short (its end footer lost, the end is data) keeps what
 * survived: the footer is rebuilt after the last block that still has its
 * bitmap, so the part of a block before the cut is kept; what was lost
 * (present sectors past the cut, blocks whose bitmap was cut off) is
 * reported as "data lost" and stays counted as a problem: a repair never
 * ends with "no problems" when data could not be recovered. */
#include "vhd-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

struct ck {
	const char *path;
	unsigned flags;
	vhd_check_report_fn report;
	void *opaque;
	int problems;
	int fd;
	uint64_t size;
	/* End footer lost (the file was cut or grown): rebuilt at
	 * footer_at from the copy at offset 0 once the blocks are known. */
	bool footer_lost;
	uint64_t cut;              /* file size as found */
	uint64_t footer_at;
	uint8_t copy[512];
};

static void problem(struct ck *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void problem(struct ck *c, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->problems++;
	c->report(c->opaque, false, msg);
}

static void repaired(struct ck *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void repaired(struct ck *c, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->problems--;
	c->report(c->opaque, true, msg);
}

/* Space the file holds that nothing uses: a problem of its own class
 * ("leaked: ", see vhd.h), never repaired here (compact reclaims it). */
static void leaked(struct ck *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void leaked(struct ck *c, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	int n = snprintf(msg, sizeof(msg), "%s", VHD_CHECK_LEAK);

	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	c->problems++;
	c->report(c->opaque, false, msg);
}

static bool repairing(struct ck *c)
{
	return c->flags & VHD_CHECK_REPAIR;
}

/* Footers: returns the footer to trust in *f, or -EINVAL when none is
 * valid (the check cannot go on). */
static int check_footers(struct ck *c, struct vhd_footer *f,
			 uint64_t *footer_off)
{
	uint8_t end[512] = { 0 }, start[512] = { 0 };
	char why_end[200], why_start[200];
	struct vhd_footer fe, fs;
	bool ok_end, ok_start;

	if (c->size >= 512 && (util_pread_full(c->fd, end, 512, c->size - 512, false) ||
			       util_pread_full(c->fd, start, 512, 0, false)))
		return -EIO;
	ok_end = c->size >= 512 && !vhd_footer_decode(end, &fe, why_end, sizeof(why_end));
	ok_start = c->size >= 512 &&
		   !vhd_footer_decode(start, &fs, why_start, sizeof(why_start));
	*footer_off = c->size - 512;
	if (ok_end) {
		*f = fe;
		if (fe.type != VHD_TYPE_FIXED && (!ok_start || memcmp(start, end, 512))) {
			problem(c, "footer copy at offset 0 %s", ok_start ?
				"differs from the end footer" : "is damaged");
			if (repairing(c) && !util_pwrite_full(c->fd, end, 512, 0))
				repaired(c, "rewrote the footer copy at offset 0 from the end footer");
		}
		return 0;
	}
	if (!ok_start || fs.type == VHD_TYPE_FIXED) {
		if (c->size < 512 || (!vhd_is_footer_cookie(end) &&
				      !vhd_is_footer_cookie(start)))
			return -ENOVHD;
		else
			problem(c, "bad footer: %s",
				vhd_is_footer_cookie(end) ? why_end : why_start);
		return -EINVAL;
	}
	*f = fs;
	problem(c, "end footer is %s (%s)", vhd_is_footer_cookie(end) ? "torn" : "missing",
		why_end);
	/* Torn: replace it in place.  Missing (the end is data): append,
	 * after the blocks that survived (check_sparse moves footer_at). */
	if (!vhd_is_footer_cookie(end)) {
		*footer_off = util_align_up(c->size, 512);
		c->footer_lost = true;
		c->cut = c->size;
		c->footer_at = *footer_off;
		memcpy(c->copy, start, 512);
		return 0;
	}
	if (repairing(c)) {
		if (!util_pwrite_full(c->fd, start, 512, *footer_off)) {
			c->size = *footer_off + 512;
			repaired(c, "rebuilt the end footer at offset %llu from the copy at offset 0",
				 (unsigned long long)*footer_off);
		}
	}
	return 0;
}

static void check_geometry(struct ck *c, const struct vhd_footer *f)
{
	uint64_t chs = (uint64_t)f->cylinders * f->heads * f->sectors * VHD_SECTOR;

	if (f->original_size != f->current_size)
		c->report(c->opaque, false, "note: original size differs from current size (libvhdi reads the original size)");
	if (chs != f->current_size && chs != VHD_MAX_GEOMETRY_SECTORS * VHD_SECTOR &&
	    (!memcmp(f->creator_app, "vpc ", 4) || !memcmp(f->creator_app, "qemu", 4)))
		c->report(c->opaque, false, "note: CHS size differs from the current size; served with the CHS size like qemu");
}

static int write_bat_entry(struct ck *c, const struct vhd_header *h, uint32_t i)
{
	uint8_t v[4];

	util_put_be32(v, VHD_BAT_UNUSED);
	return util_pwrite_full(c->fd, v, 4, h->table_offset + 4ull * i);
}

/* Repair: clear BAT entry i whose block was lost.  Reported, but not
 * counted as repaired: the data stays lost, so the problem stays. */
static void clear_lost(struct ck *c, const struct vhd_header *h, uint32_t i)
{
	char msg[80];

	if (!repairing(c) || write_bat_entry(c, h, i))
		return;
	snprintf(msg, sizeof(msg), "cleared BAT entry %u", i);
	c->report(c->opaque, true, msg);
}

/* Write the rebuilt end footer of a file that lost it (see struct ck). */
static void rebuild_lost_footer(struct ck *c)
{
	if (!c->footer_lost || !repairing(c))
		return;
	if (!util_pwrite_full(c->fd, c->copy, 512, c->footer_at)) {
		c->size = c->footer_at + 512;
		repaired(c, "rebuilt the end footer at offset %llu from the copy at offset 0",
			 (unsigned long long)c->footer_at);
	}
}

/* The file was cut at c->cut: blocks whose bitmap survived are kept (the
 * footer goes after them, their lost tail reads as zeros), blocks whose
 * bitmap was cut off are lost whole.  Every lost present sector is
 * reported as data lost (a problem that stays).  Sets *footer_off. */
static void cut_blocks(struct ck *c, const struct vhd_header *h, uint32_t *bat,
		       uint32_t bm_size, uint64_t disk_size, uint64_t meta_end,
		       uint64_t *footer_off)
{
	uint64_t span = bm_size + (uint64_t)h->block_size, end = *footer_off;
	uint32_t spb = h->block_size / VHD_SECTOR;
	uint8_t *bm = malloc(bm_size);

	if (!bm) {
		problem(c, "out of memory");
		return;
	}
	for (uint32_t i = 0; i < h->max_table_entries; i++) {
		uint64_t off = (uint64_t)bat[i] * VHD_SECTOR, first = (uint64_t)i * h->block_size;
		uint64_t live = first < disk_size ? UTIL_MIN((uint64_t)spb,
				(disk_size - first) / VHD_SECTOR) : 0;
		uint64_t s0, lo = UINT64_MAX, hi = 0;

		if (bat[i] == VHD_BAT_UNUSED || off < meta_end || off + span <= c->cut)
			continue;
		if (off + bm_size > c->cut ||
		    util_pread_full(c->fd, bm, bm_size, off, false)) {
			if (first < disk_size)
				problem(c, "data lost: block %u (disk bytes %llu-%llu) lay past the end of the file (cut at %llu), its bitmap with it",
					i, (unsigned long long)first,
					(unsigned long long)(first + live * VHD_SECTOR - 1),
					(unsigned long long)c->cut);
			else
				problem(c, "BAT entry %u is beyond the disk size and points past the end of the file", i);
			clear_lost(c, h, i);
			bat[i] = VHD_BAT_UNUSED;
			continue;
		}
		/* Kept: the footer goes after it; sectors from the cut on
		 * read as zeros. */
		end = UTIL_MAX(end, off + span);
		s0 = (c->cut - off - bm_size) / VHD_SECTOR;
		for (uint64_t s = s0; s < live; s++)
			if (util_bit_test(bm, s)) {
				lo = UTIL_MIN(lo, s);
				hi = s;
			}
		if (lo <= hi)
			problem(c, "data lost: block %u: disk bytes %llu-%llu lay past the end of the file (cut at %llu); the rest of the block is kept, the lost part reads as zeros",
				i, (unsigned long long)(first + UTIL_MAX(lo * VHD_SECTOR,
						c->cut - off - bm_size)),
				(unsigned long long)(first + (hi + 1) * VHD_SECTOR - 1),
				(unsigned long long)c->cut);
	}
	free(bm);
	*footer_off = end;
	c->footer_at = end;
}

/* Unused space: stretches between the metadata and the footer that no
 * metadata range and no BAT entry covers, at least one block span long
 * (shorter gaps are alignment padding: blocks' data sits on 4 KiB
 * boundaries).
 * - At the end of the file (after the last block, before the footer) it is
 *   leaked space, a problem: what a block written whose BAT entry never
 *   was (a crash between the two) leaves, or a BAT entry cleared by hand.
 * - Inside the file it is a note: resize moves blocks out of the BAT's way
 *   and merge and compact leave holes that way by design; compact fills
 *   them.
 * Entries already reported as bad are UNUSED here; overlapping ones were
 * reported by vhd_bat_validate. */
static void find_leaks(struct ck *c, const struct vhd_footer *f,
		       const struct vhd_header *h, const uint32_t *bat,
		       uint64_t span, uint64_t footer_off)
{
	struct vhd_range *r;
	uint64_t end = 0;
	int n = vhd_meta_ranges_of(f, h, h->max_table_entries, &r);

	if (n < 0) {
		problem(c, "out of memory");
		return;
	}
	for (uint32_t i = 0; i < h->max_table_entries; i++)
		if (bat[i] != VHD_BAT_UNUSED)
			r[n++] = (struct vhd_range){ (uint64_t)bat[i] * VHD_SECTOR, span };
	vhd_range_sort(r, (size_t)n);
	for (int i = 0; i <= n; i++) {
		uint64_t off = i < n ? UTIL_MIN(r[i].off, footer_off) : footer_off;

		if (off > end && off - end >= span) {
			if (i == n) {
				leaked(c, "file bytes %llu-%llu (%llu bytes) before the footer are not used by any block (compact reclaims them)",
				       (unsigned long long)end, (unsigned long long)(off - 1),
				       (unsigned long long)(off - end));
			} else {
				char msg[200];

				snprintf(msg, sizeof(msg),
					 "note: file bytes %llu-%llu (%llu bytes) are not used by any block (compact reclaims them)",
					 (unsigned long long)end, (unsigned long long)(off - 1),
					 (unsigned long long)(off - end));
				c->report(c->opaque, false, msg);
			}
		}
		if (i < n)
			end = UTIL_MAX(end, r[i].off + r[i].len);
	}
	free(r);
}

static void check_sparse(struct ck *c, const struct vhd_footer *f,
			 uint64_t footer_off)
{
	uint8_t hb[1024];
	char why[300];
	struct vhd_header h;
	uint64_t bat_bytes, meta_end, span, need, disk_size;
	uint32_t *bat, bm_size;
	uint8_t *raw, *bm;

	if (!util_range_ok(f->data_offset, 1024, footer_off) ||
	    util_pread_full(c->fd, hb, 1024, f->data_offset, false)) {
		problem(c, "dynamic header at offset %llu is outside the file",
			(unsigned long long)f->data_offset);
		return;
	}
	if (vhd_header_decode(hb, &h, why, sizeof(why))) {
		problem(c, "%s", why);
		return;
	}
	disk_size = vhd_footer_disk_size(f, 0);
	need = (disk_size + h.block_size - 1) / h.block_size;
	if (need > h.max_table_entries) {
		problem(c, "BAT has %u entries but the disk size needs %llu",
			h.max_table_entries, (unsigned long long)need);
		return;
	}
	if (h.max_table_entries > VHD_MAX_TABLE_ENTRIES(h.block_size)) {
		problem(c, "BAT has %u entries, more than %llu (the most a 2040 GiB disk with %u-byte blocks can use, and at most %llu)",
			h.max_table_entries,
			(unsigned long long)VHD_MAX_TABLE_ENTRIES(h.block_size),
			h.block_size, VHD_BAT_ENTRIES_CAP);
		return;
	}
	bat_bytes = util_align_up((uint64_t)h.max_table_entries * 4, VHD_SECTOR);
	if (!util_range_ok(h.table_offset, bat_bytes, footer_off)) {
		problem(c, "BAT of %u entries at offset %llu does not fit in the file",
			h.max_table_entries, (unsigned long long)h.table_offset);
		return;
	}
	raw = malloc(bat_bytes);
	bat = malloc(4 * (size_t)h.max_table_entries);
	bm_size = vhd_bitmap_size(h.block_size);
	bm = malloc(bm_size);
	if (!raw || !bat || !bm ||
	    util_pread_full(c->fd, raw, bat_bytes, h.table_offset, false)) {
		problem(c, "cannot read the BAT");
		goto out;
	}
	for (uint32_t i = 0; i < h.max_table_entries; i++)
		bat[i] = util_get_be32(raw + 4ull * i);
	meta_end = UTIL_MAX(f->data_offset + 1024, h.table_offset + bat_bytes);
	span = bm_size + (uint64_t)h.block_size;
	if (c->footer_lost)
		cut_blocks(c, &h, bat, bm_size, disk_size, meta_end, &footer_off);
	/* Entries past the end of the file: report, optionally clear. */
	for (uint32_t i = 0; i < h.max_table_entries; i++) {
		uint64_t off = (uint64_t)bat[i] * VHD_SECTOR;

		if (bat[i] == VHD_BAT_UNUSED || off + span <= footer_off)
			continue;
		if (i >= need) {
			problem(c, "BAT entry %u is beyond the disk size and points past the end of the file", i);
			if (repairing(c) && !write_bat_entry(c, &h, i))
				repaired(c, "cleared BAT entry %u", i);
		} else {
			/* Clearing it loses the block: a problem that stays,
			 * never "no problems" after the repair. */
			problem(c, "data lost: BAT entry %u: block at offset %llu ends past the end of the file (footer at %llu); disk bytes %llu-%llu",
				i, (unsigned long long)off, (unsigned long long)footer_off,
				(unsigned long long)i * h.block_size,
				(unsigned long long)(UTIL_MIN((uint64_t)(i + 1) * h.block_size,
							      disk_size) - 1));
			clear_lost(c, &h, i);
		}
		/* Reported: the checks below skip it (no second report). */
		bat[i] = VHD_BAT_UNUSED;
	}
	/* Overlaps and metadata collisions (first one found). */
	if (vhd_bat_validate(bat, h.max_table_entries, h.block_size, meta_end,
			     footer_off, why, sizeof(why)))
		problem(c, "%s", why);
	/* Bitmaps: bits for sectors past the end of the disk. */
	for (uint32_t i = 0; i < h.max_table_entries; i++) {
		uint64_t first = (uint64_t)i * h.block_size;
		uint32_t spb = h.block_size / VHD_SECTOR;

		if (bat[i] == VHD_BAT_UNUSED ||
		    (uint64_t)bat[i] * VHD_SECTOR + span > footer_off)
			continue;
		if (util_pread_full(c->fd, bm, bm_size,
				    (uint64_t)bat[i] * VHD_SECTOR, false)) {
			problem(c, "cannot read the bitmap of block %u", i);
			continue;
		}
		if (first >= disk_size) {
			leaked(c, "block %u is allocated but lies past the end of the disk (%llu bytes nothing reads; compact reclaims them)",
			       i, (unsigned long long)span);
			continue;
		}
		/* qemu and our own writer allocate a dynamic image's last,
		 * partial block with every bit set: worth a note, not damage. */
		for (uint64_t s = (disk_size - first) / VHD_SECTOR; s < spb; s++)
			if (util_bit_test(bm, s)) {
				char msg[200];

				snprintf(msg, sizeof(msg),
					 "note: block %u: bitmap marks sector %llu present, past the end of the disk",
					 i, (unsigned long long)(first / VHD_SECTOR + s));
				c->report(c->opaque, false, msg);
				break;
			}
	}
	if (!c->footer_lost)
		find_leaks(c, f, &h, bat, span, footer_off);
	if (f->type == VHD_TYPE_DIFF) {
		char ppath[4096], pwhy[1200];
		struct vhd_open_opts o = { .flags = VHD_O_RDONLY |
			((c->flags & VHD_CHECK_FORCE_SHARE) ? VHD_O_FORCE_SHARE : 0) };
		struct bdev_err e = { 0 };
		struct bdev *p;

		if (vhd_find_parent(c->fd, c->path, &h, c->size, ppath,
				    sizeof(ppath), pwhy, sizeof(pwhy))) {
			problem(c, "%s", pwhy);
			goto out;
		}
		p = vhd_open(ppath, &o, &e);
		if (!p) {
			problem(c, "parent: %s", e.msg);
			goto out;
		}
		/* The limit open applies: this image is one more layer. */
		if (vhd_of(p)->layers >= VHD_DEFAULT_MAX_DEPTH)
			problem(c, "chain too deep: %d layers with this image, more than %d, so no command can open it (merge some layers)",
				vhd_of(p)->layers + 1, VHD_DEFAULT_MAX_DEPTH);
		if (memcmp(vhd_of(p)->footer.uuid, h.parent_uuid, 16)) {
			char a[40], b[40];

			problem(c, "parent %s has UUID %s but this image expects %s",
				ppath, vhd_uuid_str(vhd_of(p)->footer.uuid, a),
				vhd_uuid_str(h.parent_uuid, b));
		}
		bdev_close(p);
	}
out:
	free(raw);
	free(bat);
	free(bm);
}

int vhd_check(const char *path, unsigned flags, vhd_check_report_fn report,
	      void *opaque, struct bdev_err *e)
{
	struct ck c = { .path = path, .flags = flags, .report = report,
			.opaque = opaque };
	struct vhd_footer f;
	uint64_t footer_off;
	struct stat st;
	int r;

	/* O_NONBLOCK: a FIFO must not block; no effect on regular files. */
	c.fd = open(path, ((flags & VHD_CHECK_REPAIR) ? O_RDWR : O_RDONLY) |
		    O_CLOEXEC | O_NONBLOCK);
	if (c.fd < 0)
		return bdev_err_set(e, errno, "%s: cannot open: %s", path,
				    strerror(errno));
	/* A file, or a block device holding a VHD (as open takes it). */
	if (fstat(c.fd, &st) < 0 || util_fd_size(c.fd, &st, &c.size)) {
		close(c.fd);
		return bdev_err_set(e, EINVAL, "%s: not a regular file or block device", path);
	}
	if (S_ISBLK(st.st_mode) && (flags & VHD_CHECK_REPAIR)) {
		close(c.fd);
		return bdev_err_set(e, EROFS, "%s: a VHD on a block device is checked, not "
				    "repaired (a repair may need to move its end)", path);
	}
	/* Repair writes: exclusive.  A check reads: shared, so it does not
	 * judge an image another process is changing (unless forced). */
	if ((flags & VHD_CHECK_REPAIR) || !(flags & VHD_CHECK_FORCE_SHARE)) {
		bool ex = flags & VHD_CHECK_REPAIR, by_writer;

		if (img_lock_fd(c.fd, ex, &by_writer)) {
			close(c.fd);
			return bdev_err_set(e, EBUSY, "%s: %s%s", path,
					    img_lock_why(ex, by_writer),
					    ex ? "; not repairing" : "");
		}
	}
	r = check_footers(&c, &f, &footer_off);
	if (r == -EIO) {
		close(c.fd);
		return bdev_err_set(e, EIO, "%s: cannot read", path);
	}
	if (r == -ENOVHD) {
		close(c.fd);
		return bdev_err_set(e, ENOVHD, "%s: not a VHD image (no VHD footer at the end or at offset 0)",
				    path);
	}
	if (r == 0) {
		/* The size open serves (CHS for qemu's images), as open
		 * judges it. */
		uint64_t disk_size = vhd_footer_disk_size(&f, 0);

		check_geometry(&c, &f);
		if (disk_size > VHD_MAX_SIZE) {
			problem(&c, "disk size %llu is larger than the VHD limit of 2040 GiB",
				(unsigned long long)disk_size);
		} else if (f.type == VHD_TYPE_FIXED) {
			if (c.size - 512 < disk_size)
				problem(&c, "fixed image is truncated: %llu data bytes for a %llu-byte disk",
					(unsigned long long)(c.size - 512),
					(unsigned long long)disk_size);
		} else {
			check_sparse(&c, &f, footer_off);
		}
		rebuild_lost_footer(&c);
	}
	if ((flags & VHD_CHECK_REPAIR) && fsync(c.fd) < 0) {
		r = errno;
		close(c.fd);
		return bdev_err_set(e, r, "%s: fsync failed: %s", path, strerror(r));
	}
	close(c.fd);
	return c.problems;
}
