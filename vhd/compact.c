/* Compact a dynamic or differencing image in place.
 *
 * 1. Find the blocks that hold nothing the disk shows (dynamic: every
 *    present sector is zero; differencing: no sector present) and blocks
 *    past the end of the disk.  Clear their BAT entries; sync.  The image
 *    reads the same: such blocks read as zeros / as the parent anyway.
 * 2. Move blocks from the end of the file into the holes: copy each
 *    (bitmap and data) into a free place nearer the start; sync; point the
 *    BAT entries at the copies; sync.  Every hole we fill was free before
 *    this step began and every source lies past every hole, so a crash
 *    anywhere leaves the old copy referenced and intact, or the new one.
 * 3. Write the footer right after the last block; sync; cut the file
 *    there.  Until the cut, the old footer still ends the file.
 * Every moment in between is a valid image that reads the same.
 */
#include "vhd-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

struct blk {
	uint64_t off;      /* bitmap offset in the file */
	uint32_t idx;      /* BAT index */
};

static int cmp_blk(const void *a, const void *b)
{
	const struct blk *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

struct free_iter {
	const struct vhd_range *used;   /* sorted occupied ranges */
	size_t n, i;                    /* next occupied range */
	uint64_t pos, end;              /* scan position, end of usable area */
	uint64_t span, bm;
};

/* The next free place for a block at or after it->pos: data on a 4 KiB
 * boundary when that fits, else anywhere sector-aligned.  Returns false
 * when no room is left before it->end. */
static bool next_slot(struct free_iter *it, uint64_t *slot)
{
	for (;;) {
		uint64_t gap_end = it->i < it->n ? it->used[it->i].off : it->end;
		uint64_t pos = util_align_up(it->pos, VHD_SECTOR);
		uint64_t al = util_align_up(pos + it->bm, VHD_DATA_ALIGN) - it->bm;

		gap_end = UTIL_MIN(gap_end, it->end);
		if (al + it->span <= gap_end) {
			*slot = al;
			it->pos = al + it->span;
			return true;
		}
		if (pos + it->span <= gap_end) {
			*slot = pos;
			it->pos = pos + it->span;
			return true;
		}
		if (it->i >= it->n || it->used[it->i].off >= it->end)
			return false;
		it->pos = UTIL_MAX(it->pos, it->used[it->i].off + it->used[it->i].len);
		it->i++;
	}
}

/* Progress in thousandths: scanning 0-500, moving 500-950, the commits
 * after that.  Called between steps (every moment is a safe point). */
#define PROGRESS_TOTAL 1000

static int progress(struct vhd *v, const struct vhd_compact_opts *o,
		    uint64_t done)
{
	if (o && o->progress && o->progress(o->opaque, done, PROGRESS_TOTAL))
		return bdev_set_error(&v->b, ECANCELED, "interrupted");
	return 0;
}

/* Step 1: drop empty blocks.  Returns the number of live blocks left in
 * *live (sorted by offset) or -errno. */
static int drop_empty(struct vhd *v, const struct vhd_compact_opts *o,
		      struct vhd_compact_stats *st, struct blk **live_out,
		      uint32_t *nlive_out)
{
	uint32_t entries = v->hdr.max_table_entries, nlive = 0, lo = UINT32_MAX,
		 hi = 0, nalloc = 0, done = 0;
	struct blk *live;
	int r = 0;

	for (uint32_t i = 0; i < entries; i++)
		nalloc += v->bat[i] != VHD_BAT_UNUSED;
	live = malloc(sizeof(*live) * (nalloc ? nalloc : 1));
	if (!live)
		return bdev_set_error(&v->b, ENOMEM, "out of memory");
	for (uint32_t i = 0; i < entries && !r; i++) {
		bool empty;

		if (v->bat[i] == VHD_BAT_UNUSED)
			continue;
		r = vhd_block_empty(v, i, &empty);
		if (!r)
			r = progress(v, o, 500ull * ++done / nalloc);
		if (r)
			break;
		if (empty) {
			v->bat[i] = VHD_BAT_UNUSED;
			lo = UTIL_MIN(lo, i);
			hi = UTIL_MAX(hi, i);
			st->blocks_dropped++;
		} else {
			live[nlive].off = (uint64_t)v->bat[i] * VHD_SECTOR;
			live[nlive++].idx = i;
		}
	}
	st->blocks_before = nalloc;
	if (!r && st->blocks_dropped) {
		r = vhd_bat_store(v, lo, hi);
		if (!r)
			r = vhd_datasync(v);
		if (!r)
			r = progress(v, o, 500);
	}
	if (r) {
		free(live);
		return r;
	}
	qsort(live, nlive, sizeof(*live), cmp_blk);
	*live_out = live;
	*nlive_out = nlive;
	return 0;
}

/* Step 2: move tail blocks into holes.  live[] is sorted and updated. */
static int fill_holes(struct vhd *v, const struct vhd_compact_opts *o,
		      struct vhd_compact_stats *st, struct blk *live,
		      uint32_t nlive)
{
	struct vhd_range *meta, *used;
	struct free_iter it;
	uint32_t *moved, nmoved = 0, lo = UINT32_MAX, hi = 0;
	uint64_t *to;
	int nmeta, r = 0;

	nmeta = vhd_meta_ranges(v, &meta);
	if (nmeta < 0)
		return bdev_set_error(&v->b, ENOMEM, "out of memory");
	used = malloc(sizeof(*used) * ((size_t)nmeta + nlive + 1));
	moved = malloc(sizeof(*moved) * (nlive + 1));
	to = malloc(sizeof(*to) * (nlive + 1));
	if (!used || !moved || !to) {
		r = bdev_set_error(&v->b, ENOMEM, "out of memory");
		goto out;
	}
	/* Occupied: metadata and live blocks, merged in offset order. */
	{
		size_t a = 0, b = 0, n = 0;

		while (a < (size_t)nmeta || b < nlive) {
			if (b >= nlive || (a < (size_t)nmeta && meta[a].off < live[b].off))
				used[n++] = meta[a++];
			else
				used[n++] = (struct vhd_range){ live[b++].off,
								vhd_block_span(v) };
		}
		it = (struct free_iter){ .used = used, .n = n,
			.pos = vhd_meta_end(v), .end = v->footer_off,
			.span = vhd_block_span(v), .bm = v->bm_size };
	}
	/* Pair the lowest free places with the highest blocks. */
	for (uint32_t t = nlive; t-- > 0;) {
		uint64_t slot;

		if (!next_slot(&it, &slot) || slot >= live[t].off)
			break;
		moved[nmoved] = t;
		to[nmoved++] = slot;
	}
	for (uint32_t k = 0; k < nmoved && !r; k++) {
		r = vhd_file_copy(v, live[moved[k]].off, to[k], vhd_block_span(v));
		if (!r)
			r = progress(v, o, 500 + 450ull * (k + 1) / nmoved);
	}
	if (!r && nmoved)
		r = vhd_datasync(v);
	if (!r && nmoved)
		r = progress(v, o, 950);
	if (r)
		goto out;   /* the copies are unreferenced: harmless */
	for (uint32_t k = 0; k < nmoved; k++) {
		struct blk *b = &live[moved[k]];

		b->off = to[k];
		v->bat[b->idx] = (uint32_t)(to[k] / VHD_SECTOR);
		lo = UTIL_MIN(lo, b->idx);
		hi = UTIL_MAX(hi, b->idx);
	}
	if (nmoved) {
		r = vhd_bat_store(v, lo, hi);
		if (!r)
			r = vhd_datasync(v);
		if (!r)
			r = progress(v, o, 960);
	}
	st->blocks_moved = nmoved;
out:
	free(meta);
	free(used);
	free(moved);
	free(to);
	return r;
}

/* Step 3: footer right after the last thing in use, then cut. */
static int cut_tail(struct vhd *v, const struct vhd_compact_opts *o,
		    const struct blk *live, uint32_t nlive)
{
	struct vhd_range *meta;
	uint64_t end = 0;
	uint8_t raw[512];
	int nmeta, r;

	nmeta = vhd_meta_ranges(v, &meta);
	if (nmeta < 0)
		return bdev_set_error(&v->b, ENOMEM, "out of memory");
	end = vhd_meta_end(v);
	for (int i = 0; i < nmeta; i++)
		end = UTIL_MAX(end, UTIL_MIN(meta[i].off + meta[i].len, v->footer_off));
	free(meta);
	for (uint32_t i = 0; i < nlive; i++)
		end = UTIL_MAX(end, live[i].off + vhd_block_span(v));
	end = util_align_up(end, VHD_SECTOR);
	if (end >= v->footer_off)
		return 0;
	r = vhd_footer_read_raw(v, raw);
	if (!r)
		r = vhd_footer_write_raw(v, raw, end);
	if (!r)
		r = vhd_datasync(v);
	if (!r)
		r = progress(v, o, 980);
	if (r)
		return r;
	if (ftruncate(v->fd, (off_t)(end + 512)) < 0 || fsync(v->fd) < 0)
		return bdev_set_error(&v->b, errno, "cannot shorten the file: %s",
				      strerror(errno));
	v->footer_off = end;
	return progress(v, o, PROGRESS_TOTAL);
}

static int compact_open(struct bdev *b, const struct vhd_compact_opts *o,
		     struct vhd_compact_stats *st)
{
	struct vhd *v = vhd_of(b);
	struct vhd_compact_stats dummy;
	struct blk *live = NULL;
	uint32_t nlive = 0;
	int r;

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (!v || b->read_only)
		return bdev_set_error(b, EINVAL, "compact needs a VHD open read-write");
	if (v->footer.type == VHD_TYPE_FIXED)
		return bdev_set_error(b, EINVAL,
				      "is a fixed image: only dynamic and differencing images can be compacted (convert it with -O dynamic instead)");
	/* Our own writes must be on disk before we look at the file. */
	r = bdev_flush(b);
	if (r)
		return r;
	st->size_before = st->size_after = v->footer_off + 512;
	r = drop_empty(v, o, st, &live, &nlive);
	if (!r)
		r = fill_holes(v, o, st, live, nlive);
	if (!r)
		r = cut_tail(v, o, live, nlive);
	st->size_after = v->footer_off + 512;
	free(live);
	return r;
}

int vhd_compact(const char *path, const struct vhd_compact_opts *o,
		struct vhd_compact_stats *st, struct bdev_err *e)
{
	struct vhd_open_opts oo = { .flags = VHD_O_NO_PARENT };
	struct bdev *b = vhd_open(path, &oo, e);
	int r;

	if (!b)
		return -e->code;
	r = compact_open(b, o, st);
	if (r)
		vhd_err_from(vhd_of(b), r, e);
	bdev_close(b);
	return r;
}
