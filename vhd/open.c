/* Opening a VHD: footer (end, or the copy at offset 0), dynamic header,
 * BAT validation, and the parent chain (locators, then the header's parent
 * name; UUID check; depth limit and cycle detection). */
#include "vhd-int.h"
#include "passthrough/passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

/* Files of the chain being opened, for cycle detection. */
struct chain_seen {
	dev_t dev[VHD_DEFAULT_MAX_DEPTH * 4];
	ino_t ino[VHD_DEFAULT_MAX_DEPTH * 4];
	int n;
	int max_depth;             /* the limit, for messages */
};

static struct bdev *open_layer(const char *path, unsigned flags,
			       int depth_left, struct chain_seen *seen,
			       struct bdev_err *e);

struct vhd *vhd_of(struct bdev *b)
{
	if (b && (b->ops == &vhd_fixed_ops || b->ops == &vhd_sparse_ops))
		return (struct vhd *)b;
	return NULL;
}

struct bdev *vhd_parent(struct vhd *v)
{
	return v->parent;
}

const char *vhd_path(struct vhd *v)
{
	return v->path;
}

int vhd_file_info(struct bdev *b, struct bdev_file_info *fi)
{
	struct vhd *v = (struct vhd *)b;

	fi->path = v->path;
	fi->format = v->footer.type == VHD_TYPE_FIXED ? "vhd-fixed" :
		     v->footer.type == VHD_TYPE_DYNAMIC ? "vhd-dynamic" :
		     "vhd-differencing";
	memcpy(fi->id, v->footer.uuid, 16);
	fi->backing = v->parent;
	if (v->footer.type == VHD_TYPE_DIFF)
		memcpy(fi->backing_id, v->hdr.parent_uuid, 16);
	return 0;
}

int vhd_bat_validate(const uint32_t *bat, uint32_t entries,
		     uint32_t block_size, uint64_t meta_end,
		     uint64_t footer_off, char *why, size_t whylen)
{
	uint64_t span = vhd_bitmap_size(block_size) + (uint64_t)block_size;
	/* Map: first sector of each block -> index, to find overlaps in
	 * O(n log n) without allocating per entry twice. */
	struct ent { uint32_t sec, idx; } *v;
	uint32_t n = 0;
	int r = 0;

	v = malloc(sizeof(*v) * (entries ? entries : 1));
	if (!v) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < entries; i++) {
		uint64_t off = (uint64_t)bat[i] * VHD_SECTOR;

		if (bat[i] == VHD_BAT_UNUSED)
			continue;
		if (off < meta_end) {
			snprintf(why, whylen,
				 "BAT entry %u points at offset %llu, inside the image metadata",
				 i, (unsigned long long)off);
			r = -EINVAL;
			goto out;
		}
		if (off + span > footer_off) {
			snprintf(why, whylen,
				 "BAT entry %u: block at offset %llu ends past the end of the file (footer at %llu)",
				 i, (unsigned long long)off,
				 (unsigned long long)footer_off);
			r = -EINVAL;
			goto out;
		}
		v[n].sec = bat[i];
		v[n].idx = i;
		n++;
	}
	/* Sort by sector (shell sort keeps this dependency free and fast
	 * enough for a million entries). */
	for (uint32_t gap = n / 2; gap > 0; gap /= 2)
		for (uint32_t i = gap; i < n; i++) {
			struct ent t = v[i];
			uint32_t j = i;

			for (; j >= gap && v[j - gap].sec > t.sec; j -= gap)
				v[j] = v[j - gap];
			v[j] = t;
		}
	for (uint32_t i = 1; i < n; i++)
		if ((uint64_t)v[i].sec * VHD_SECTOR <
		    (uint64_t)v[i - 1].sec * VHD_SECTOR + span) {
			snprintf(why, whylen,
				 "BAT entries %u and %u point at overlapping blocks (offsets %llu and %llu)",
				 v[i - 1].idx, v[i].idx,
				 (unsigned long long)v[i - 1].sec * VHD_SECTOR,
				 (unsigned long long)v[i].sec * VHD_SECTOR);
			r = -EINVAL;
			goto out;
		}
out:
	free(v);
	return r;
}

/* Read the locator string of entry i into out (UTF-8).  0 or -errno. */
static int read_locator(int fd, const struct vhd_locator *l,
			uint64_t file_size, char *out, size_t outlen)
{
	uint8_t *buf;
	int r;

	/* UTF-16 comes in 2-byte units; MacX (UTF-8) any length. */
	if (l->data_length == 0 || l->data_length > VHD_MAX_LOCATOR_LEN ||
	    (l->data_length % 2 && memcmp(l->code, "MacX", 4)) ||
	    !util_range_ok(l->data_offset, l->data_length, file_size))
		return -EINVAL;
	buf = malloc(l->data_length);
	if (!buf)
		return -ENOMEM;
	r = util_pread_full(fd, buf, l->data_length, l->data_offset, false);
	if (!r) {
		bool le = memcmp(l->code, "MacX", 4) != 0;

		if (!le) {  /* MacX: UTF-8 */
			if (l->data_length >= outlen)
				r = -EINVAL;
			else {
				memcpy(out, buf, l->data_length);
				out[l->data_length] = '\0';
			}
		} else {
			r = vhd_utf16_decode(buf, l->data_length, out, outlen,
					     true);
			r = r < 0 ? r : 0;
		}
	}
	free(buf);
	return r;
}

static bool try_candidate(const char *dir, const char *name, char *out,
			  size_t outlen, char *tried, size_t triedlen)
{
	size_t used = strlen(tried);
	struct stat st;
	int n;

	if (name[0] == '/')
		n = snprintf(out, outlen, "%s", name);
	else
		n = snprintf(out, outlen, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= outlen)
		return false;
	if (used + strlen(out) + 3 < triedlen)
		snprintf(tried + used, triedlen - used, "%s%s", used ? ", " : "",
			 out);
	/* Only a regular file can be the parent: a locator that decodes to
	 * "" or "..", or names a FIFO, must not end the search. */
	return stat(out, &st) == 0 && S_ISREG(st.st_mode);
}

int vhd_find_parent(int fd, const char *child_path,
		    const struct vhd_header *h, uint64_t file_size,
		    char *out, size_t outlen, char *why, size_t whylen)
{
	static const char *const order[] = { "W2ru", "W2ku", "MacX" };
	char *dir = util_dirname(child_path);
	char tried[1024] = "";
	char loc[4096], posix[4096], name[1100];
	const char *base;
	bool found = false;

	if (!dir)
		return -ENOMEM;
	for (size_t k = 0; k < UTIL_ARRAY_SIZE(order) && !found; k++)
		for (int i = 0; i < 8 && !found; i++) {
			const struct vhd_locator *l = &h->loc[i];
			int r;

			if (memcmp(l->code, order[k], 4))
				continue;
			if (read_locator(fd, l, file_size, loc, sizeof(loc)))
				continue;
			r = vhd_locator_to_posix(loc, posix, sizeof(posix), &base);
			if (r == -ENAMETOOLONG)
				continue;
			if (r == 0)
				found = try_candidate(dir, posix, out, outlen,
						      tried, sizeof(tried));
			/* A Windows drive path: try its file name beside us. */
			if (!found && r == -EINVAL && *base)
				found = try_candidate(dir, base, out, outlen,
						      tried, sizeof(tried));
		}
	if (!found && vhd_utf16_decode(h->parent_name, sizeof(h->parent_name),
				       name, sizeof(name), false) > 0) {
		if (!vhd_locator_to_posix(name, posix, sizeof(posix), &base) ||
		    *base)
			found = try_candidate(dir, base, out, outlen, tried,
					      sizeof(tried));
	}
	free(dir);
	if (found)
		return 0;
	snprintf(why, whylen, "parent image not found (tried: %s)",
		 tried[0] ? tried : "no usable locator or parent name");
	return -ENOENT;
}

static void vhd_free(struct vhd *v)
{
	if (v->bm)
		for (uint32_t i = 0; i < v->hdr.max_table_entries; i++)
			free(v->bm[i]);
	free(v->bm);
	free(v->bm_dirty);
	free(v->bat_dirty);
	free(v->bat);
	free(v->path);
	free(v->parent_path);
	if (v->parent)
		bdev_close(v->parent);
	img_lock_drop(&v->lock_img);
	pt_aio_free(v->aio);
	if (v->dfd >= 0)
		close(v->dfd);
	if (v->fd >= 0)
		close(v->fd);
	pthread_mutex_destroy(&v->lock);
	pthread_mutex_destroy(&v->alloc_lock);
	pthread_mutex_destroy(&v->flush_lock);
	pthread_rwlock_destroy(&v->rmw_lock);
	if (v->b.name)
		bdev_fini(&v->b);
	free(v);
}

/* Footer: the end copy, or for dynamic/differencing images the copy at
 * offset 0 when the end one is damaged (read-only then). */
static int read_footer(struct vhd *v, const char *path, bool rdonly,
		       struct bdev_err *e)
{
	uint8_t end[512], start[512];
	char why_end[200] = "", why_start[200] = "";
	int r_end, r_start;
	struct vhd_footer fs;

	if (v->file_size < 512)
		return bdev_err_set(e, ENOVHD,
				    "%s: not a VHD image (file is only %llu bytes)",
				    path, (unsigned long long)v->file_size);
	int r = util_pread_full(v->fd, end, 512, v->file_size - 512, false);

	if (!r)
		r = util_pread_full(v->fd, start, 512, 0, false);
	if (r)
		return bdev_err_set(e, -r, "%s: cannot read: %s", path,
				    strerror(-r));
	r_end = vhd_footer_decode(end, &v->footer, why_end, sizeof(why_end));
	if (r_end == 0)
		return 0;
	r_start = vhd_footer_decode(start, &fs, why_start, sizeof(why_start));
	if (!vhd_is_footer_cookie(end) && !vhd_is_footer_cookie(start))
		return bdev_err_set(e, ENOVHD,
				    "%s: not a VHD image (no \"conectix\" footer at the end or at offset 0)",
				    path);
	if (r_start == 0 && fs.type != VHD_TYPE_FIXED) {
		if (!rdonly)
			return bdev_err_set(e, EINVAL,
				"%s: end footer is damaged (%s); the copy at offset 0 is valid: run 'vhdtool check --repair'",
				path, why_end);
		v->footer = fs;
		v->used_copy = true;
		/* No footer cookie at the end: the footer was lost (the file
		 * cut short or grown), not torn, and the last sector may be
		 * data: blocks may reach the end of the file. */
		if (!vhd_is_footer_cookie(end))
			v->footer_off = v->file_size;
		return 0;
	}
	return bdev_err_set(e, EINVAL, "%s: bad VHD footer: %s", path,
			    vhd_is_footer_cookie(end) ? why_end : why_start);
}

static int open_sparse(struct vhd *v, const char *path, struct bdev_err *e)
{
	uint8_t hbuf[1024];
	char why[300];
	uint64_t bat_bytes, meta_end, need;
	struct vhd_header *h = &v->hdr;
	uint8_t *raw;
	int r;

	if (!util_range_ok(v->footer.data_offset, 1024, v->footer_off))
		return bdev_err_set(e, EINVAL,
				    "%s: dynamic header offset %llu is past the end of the file",
				    path, (unsigned long long)v->footer.data_offset);
	r = util_pread_full(v->fd, hbuf, 1024, v->footer.data_offset, false);
	if (r)
		return bdev_err_set(e, r, "%s: cannot read the dynamic header: %s",
				    path, strerror(-r));
	if (vhd_header_decode(hbuf, h, why, sizeof(why)))
		return bdev_err_set(e, EINVAL, "%s: %s", path, why);
	v->block_size = h->block_size;
	v->bm_size = vhd_bitmap_size(h->block_size);
	v->spb = h->block_size / VHD_SECTOR;
	need = (v->b.size + h->block_size - 1) / h->block_size;
	if (need > h->max_table_entries)
		return bdev_err_set(e, EINVAL,
				    "%s: BAT has %u entries but the disk size needs %llu",
				    path, h->max_table_entries,
				    (unsigned long long)need);
	/* Bounds the BAT we read and the memory it takes (13 bytes an
	 * entry), even when a sparse file is large enough to hold it. */
	if (h->max_table_entries > VHD_MAX_TABLE_ENTRIES(h->block_size))
		return bdev_err_set(e, EINVAL,
				    "%s: BAT has %u entries, more than %llu (the most a 2040 GiB disk with %u-byte blocks can use, and at most %llu)",
				    path, h->max_table_entries,
				    (unsigned long long)VHD_MAX_TABLE_ENTRIES(h->block_size),
				    h->block_size, VHD_BAT_ENTRIES_CAP);
	v->nblocks = (uint32_t)need;
	bat_bytes = util_align_up((uint64_t)h->max_table_entries * 4, VHD_SECTOR);
	if (!util_range_ok(h->table_offset, bat_bytes, v->footer_off))
		return bdev_err_set(e, EINVAL,
				    "%s: BAT of %u entries at offset %llu does not fit in the file",
				    path, h->max_table_entries,
				    (unsigned long long)h->table_offset);
	raw = malloc(bat_bytes);
	v->bat = malloc(sizeof(uint32_t) * h->max_table_entries);
	v->bm = calloc(h->max_table_entries, sizeof(uint8_t *));
	v->bm_dirty = calloc(h->max_table_entries, 1);
	v->bat_dirty = calloc(bat_bytes / VHD_SECTOR, 1);
	if (!raw || !v->bat || !v->bm || !v->bm_dirty || !v->bat_dirty) {
		free(raw);
		return bdev_err_set(e, ENOMEM, "%s: out of memory for a BAT of %u entries",
				    path, h->max_table_entries);
	}
	r = util_pread_full(v->fd, raw, bat_bytes, h->table_offset, false);
	if (r) {
		free(raw);
		return bdev_err_set(e, r, "%s: cannot read the BAT: %s", path,
				    strerror(-r));
	}
	for (uint32_t i = 0; i < h->max_table_entries; i++)
		v->bat[i] = util_get_be32(raw + 4 * (uint64_t)i);
	free(raw);
	/* Metadata ends after the header and the BAT, whichever is later. */
	meta_end = UTIL_MAX(v->footer.data_offset + 1024,
			    h->table_offset + bat_bytes);
	if (vhd_bat_validate(v->bat, h->max_table_entries, h->block_size,
			     meta_end, v->footer_off, why, sizeof(why)))
		return bdev_err_set(e, EINVAL, "%s: %s", path, why);
	return 0;
}

static int open_parent(struct vhd *v, const char *path, unsigned flags,
		       int depth_left, struct chain_seen *seen,
		       struct bdev_err *e)
{
	char ppath[4096], why[1200];
	struct vhd *pv;
	int r;

	if (depth_left <= 1)
		return bdev_err_set(e, ELOOP,
				    "%s: chain too deep (more than %d layers)",
				    path, seen->max_depth);
	r = vhd_find_parent(v->fd, path, &v->hdr, v->file_size, ppath,
			    sizeof(ppath), why, sizeof(why));
	if (r)
		return bdev_err_set(e, -r, "%s: %s", path, why);
	v->parent_path = strdup(ppath);
	if (!v->parent_path)
		return bdev_err_set(e, ENOMEM, "%s: out of memory", path);
	v->parent = open_layer(ppath, (flags & VHD_O_PARENT_RW) ? flags
			       : flags | VHD_O_RDONLY, depth_left - 1, seen, e);
	if (!v->parent) {
		/* Say which child needed the parent that failed.  A parent
		 * that is no VHD (ENOVHD) must not make the child, which is
		 * one, look like a raw file to callers. */
		char inner[sizeof(e->msg)];
		const char *cause = inner, *p;

		snprintf(inner, sizeof(inner), "%s", e->msg);
		/* In a deep chain, drop middle layers rather than the cause
		 * at the end of the message. */
		while (strlen(path) + 10 + strlen(cause) >= sizeof(e->msg) &&
		       (p = strstr(cause, ": parent: ")))
			cause = p + 10;
		return bdev_err_set(e, e->code == ENOVHD ? EINVAL : e->code,
				    "%s: parent: %s", path, cause);
	}
	pv = vhd_of(v->parent);
	if (memcmp(pv->footer.uuid, v->hdr.parent_uuid, 16) &&
	    !(flags & VHD_O_IGNORE_PARENT_UUID)) {
		char a[40], b[40];

		return bdev_err_set(e, EINVAL,
			"%s: parent %s has UUID %s but the child expects %s (use the override to open anyway)",
			path, ppath, vhd_uuid_str(pv->footer.uuid, a),
			vhd_uuid_str(v->hdr.parent_uuid, b));
	}
	v->layers = 1 + pv->layers;
	return 0;
}

/* Limits and identity: 512-byte sectors with 4 KiB physical blocks (the
 * data of blocks we allocate starts on 4 KiB), the footer's UUID as the
 * disk's identity.  Sparse images deallocate nothing on discard (it is
 * advisory) but zero whole blocks they hold on write-zeroes. */
static void set_limits(struct vhd *v)
{
	struct bdev_limits *l = &v->b.limits;

	l->physical_block = 4096;
	l->opt_transfer = v->footer.type == VHD_TYPE_FIXED ? 0 : v->block_size;
	l->unmap_granularity = v->footer.type == VHD_TYPE_FIXED ? 4096
							     : v->block_size;
	l->unmap_zeroes = false;
	memcpy(v->b.ident.id, v->footer.uuid, 16);
	for (int i = 0; i < 16; i++)
		snprintf(v->b.ident.serial + 2 * i, 3, "%02x", v->footer.uuid[i]);
}

/* VHD_O_DIRECT: a second descriptor with O_DIRECT and a libaio engine for
 * data I/O.  A file system without O_DIRECT, or a fixed image whose data
 * area does not end on the direct-I/O block (its last block would overlap
 * the footer), stays buffered: that is not an error. */
static int open_direct(struct vhd *v, struct bdev_err *e)
{
	uint32_t off_al, mem_al;

	v->dfd = open(v->path, (v->b.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC |
		      O_DIRECT);
	if (v->dfd < 0)
		return 0;
	if (pt_dio_align(v->dfd, &off_al, &mem_al) || off_al > 4096 ||
	    (v->footer.type == VHD_TYPE_FIXED && v->b.size % off_al)) {
		close(v->dfd);
		v->dfd = -1;
		return 0;
	}
	v->aio = pt_aio_new(&v->b, v->dfd, e);
	if (!v->aio)
		return -1;
	v->b.limits.align_off = off_al;
	v->b.limits.align_mem = mem_al;
	v->b.limits.fua_native = true;
	return 0;
}

static struct bdev *open_layer(const char *path, unsigned flags,
			       int depth_left, struct chain_seen *seen,
			       struct bdev_err *e)
{
	bool rdonly = flags & VHD_O_RDONLY;
	struct vhd *v;
	struct stat st;
	uint64_t size;
	int r;

	v = calloc(1, sizeof(*v));
	if (!v) {
		bdev_err_set(e, ENOMEM, "%s: out of memory", path);
		return NULL;
	}
	v->fd = -1;
	v->dfd = -1;
	pthread_mutex_init(&v->lock, NULL);
	pthread_mutex_init(&v->alloc_lock, NULL);
	pthread_mutex_init(&v->flush_lock, NULL);
	pthread_rwlock_init(&v->rmw_lock, NULL);
	v->open_flags = flags;
	v->layers = 1;
	v->path = strdup(path);
	if (!v->path) {
		bdev_err_set(e, ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	/* O_NONBLOCK: a FIFO named by a (hostile) parent locator must not
	 * block the open; it has no effect on the regular files we accept. */
	v->fd = open(path, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (v->fd < 0) {
		bdev_err_set(e, errno, "%s: cannot open: %s", path,
			     strerror(errno));
		goto fail;
	}
	if (fstat(v->fd, &st) < 0) {
		bdev_err_set(e, errno, "%s: %s", path, strerror(errno));
		goto fail;
	}
	/* A regular file, or a block device holding a VHD (an LV, a loop
	 * device): its footer is probed at the device's end, as a file's. */
	r = util_fd_size(v->fd, &st, &v->file_size);
	if (r == -EINVAL) {
		bdev_err_set(e, ENOVHD, "%s: not a regular file or block device", path);
		goto fail;
	}
	if (r) {
		bdev_err_set(e, -r, "%s: cannot read the device size: %s", path,
			     strerror(-r));
		goto fail;
	}
	v->on_blockdev = S_ISBLK(st.st_mode);
	for (int i = 0; i < seen->n; i++)
		if (seen->dev[i] == st.st_dev && seen->ino[i] == st.st_ino) {
			bdev_err_set(e, ELOOP,
				     "%s: parent cycle (this file is already in the chain)",
				     path);
			goto fail;
		}
	if (seen->n < (int)UTIL_ARRAY_SIZE(seen->dev)) {
		seen->dev[seen->n] = st.st_dev;
		seen->ino[seen->n++] = st.st_ino;
	}
	if (!rdonly || !(flags & VHD_O_FORCE_SHARE)) {
		bool by_writer;

		if (img_lock_take(&v->lock_img, v->fd, !rdonly, &by_writer)) {
			bdev_err_set(e, EBUSY, "%s: %s", path,
				     img_lock_why(!rdonly, by_writer));
			goto fail;
		}
	}
	v->footer_off = v->file_size - 512;
	if (read_footer(v, path, rdonly, e))
		goto fail;
	/* A device cannot grow: a sparse VHD on one is read only. */
	if (v->on_blockdev && !rdonly && v->footer.type != VHD_TYPE_FIXED) {
		bdev_err_set(e, EROFS, "%s: a dynamic or differencing VHD on a block device "
			     "can only be read (it cannot grow there); -f raw writes the "
			     "device's bytes", path);
		goto fail;
	}
	size = vhd_footer_disk_size(&v->footer, flags);
	if (size > VHD_MAX_SIZE) {
		bdev_err_set(e, EFBIG, "%s: disk size %llu is larger than the VHD limit of 2040 GiB",
			     path, (unsigned long long)size);
		goto fail;
	}
	r = bdev_init(&v->b, v->footer.type == VHD_TYPE_FIXED ? &vhd_fixed_ops
		      : &vhd_sparse_ops, path, size, VHD_SECTOR, rdonly);
	if (r) {
		bdev_err_set(e, ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	if (v->footer.type == VHD_TYPE_FIXED) {
		if (v->file_size - 512 < size) {
			bdev_err_set(e, EINVAL,
				     "%s: fixed image is truncated: %llu data bytes for a %llu-byte disk",
				     path, (unsigned long long)(v->file_size - 512),
				     (unsigned long long)size);
			goto fail;
		}
		v->footer_off = size;
		set_limits(v);
		if ((flags & VHD_O_DIRECT) && open_direct(v, e))
			goto fail;
		return &v->b;
	}
	if (open_sparse(v, path, e))
		goto fail;
	if (v->footer.type == VHD_TYPE_DIFF && !(flags & VHD_O_NO_PARENT) &&
	    open_parent(v, path, flags, depth_left, seen, e))
		goto fail;
	set_limits(v);
	if ((flags & VHD_O_DIRECT) && open_direct(v, e))
		goto fail;
	return &v->b;
fail:
	vhd_free(v);
	return NULL;
}

struct bdev *vhd_open(const char *path, const struct vhd_open_opts *o,
		      struct bdev_err *e)
{
	struct vhd_open_opts def = { 0 };
	struct chain_seen seen = { .n = 0 };
	int depth;

	if (!o)
		o = &def;
	depth = o->max_depth > 0 ? o->max_depth : VHD_DEFAULT_MAX_DEPTH;
	seen.max_depth = depth;
	return open_layer(path, o->flags, depth, &seen, e);
}

void vhd_destroy(struct vhd *v)
{
	vhd_free(v);
}

int vhd_get_info(struct vhd *v, struct vhd_info *out)
{
	memset(out, 0, sizeof(*out));
	out->type = (int)v->footer.type;
	out->size = v->b.size;
	out->current_size = v->footer.current_size;
	out->original_size = v->footer.original_size;
	pthread_mutex_lock(&v->lock);
	out->file_size = v->footer_off + 512;
	if (v->footer.type == VHD_TYPE_FIXED || v->used_copy)
		out->file_size = v->file_size;
	pthread_mutex_unlock(&v->lock);
	out->cylinders = v->footer.cylinders;
	out->heads = v->footer.heads;
	out->sectors = v->footer.sectors;
	memcpy(out->creator_app, v->footer.creator_app, 4);
	out->creator_version = v->footer.creator_version;
	memcpy(out->creator_os, v->footer.creator_os, 4);
	for (int i = 0; i < 4; i++) {
		if (out->creator_app[i] && (out->creator_app[i] < 0x20 ||
					    out->creator_app[i] > 0x7e))
			out->creator_app[i] = '?';
		if (out->creator_os[i] && (out->creator_os[i] < 0x20 ||
					   out->creator_os[i] > 0x7e))
			out->creator_os[i] = '?';
	}
	out->timestamp = v->footer.timestamp;
	memcpy(out->uuid, v->footer.uuid, 16);
	out->saved_state = v->footer.saved_state;
	out->used_footer_copy = v->used_copy;
	if (v->footer.type == VHD_TYPE_FIXED)
		return 0;
	out->block_size = v->block_size;
	out->max_table_entries = v->hdr.max_table_entries;
	out->table_offset = v->hdr.table_offset;
	pthread_mutex_lock(&v->lock);
	for (uint32_t i = 0; i < v->hdr.max_table_entries; i++)
		out->allocated_blocks += v->bat[i] != VHD_BAT_UNUSED;
	pthread_mutex_unlock(&v->lock);
	if (v->footer.type != VHD_TYPE_DIFF)
		return 0;
	memcpy(out->parent_uuid, v->hdr.parent_uuid, 16);
	out->parent_timestamp = v->hdr.parent_timestamp;
	if (vhd_utf16_decode(v->hdr.parent_name, sizeof(v->hdr.parent_name),
			     out->parent_name, sizeof(out->parent_name), false) < 0)
		snprintf(out->parent_name, sizeof(out->parent_name), "?");
	if (v->parent_path)
		snprintf(out->parent_path, sizeof(out->parent_path), "%s",
			 v->parent_path);
	return 0;
}
