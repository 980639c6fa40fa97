/* Creating fixed, dynamic and differencing images.  The image is built
 * under a temporary name beside the destination, synced, and renamed into
 * place (common/publish.c), so the destination name never shows a partial
 * file; a replaced file keeps its owner and mode. */
#include "vhd-int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/publish.h"
#include "common/util.h"

#define CREATOR_APP "vhdt"
#define CREATOR_VERSION 0x00010000u

static void init_footer(struct vhd_footer *f, int type, uint64_t size,
			const uint8_t uuid[16])
{
	memset(f, 0, sizeof(*f));
	f->features = 2;
	f->version = 0x00010000;
	f->data_offset = type == VHD_TYPE_FIXED ? VHD_NO_OFFSET : 512;
	f->timestamp = vhd_time_now();
	memcpy(f->creator_app, CREATOR_APP, 4);
	f->creator_version = CREATOR_VERSION;
	memcpy(f->creator_os, "Wi2k", 4);
	/* libvhdi reads the original size, qemu the current one: keep equal. */
	f->original_size = size;
	f->current_size = size;
	vhd_geometry_for_size(size, &f->cylinders, &f->heads, &f->sectors);
	f->type = (uint32_t)type;
	memcpy(f->uuid, uuid, 16);
}

/* Encode `path` as a UTF-16LE locator; returns its byte length. */
static int put_locator(struct vhd_locator *l, const char *code,
		       const char *path, uint64_t at, uint8_t *buf,
		       size_t buflen)
{
	char win[4096];
	size_t n = strlen(path);
	int len;

	if (n >= sizeof(win))
		return -ENAMETOOLONG;
	for (size_t i = 0; i <= n; i++)
		win[i] = path[i] == '/' ? '\\' : path[i];
	len = vhd_utf16_encode(win, buf, buflen, true);
	if (len < 0)
		return len;
	memcpy(l->code, code, 4);
	l->data_length = (uint32_t)len;
	/* Bytes, as Hyper-V and Virtual PC write it (the spec says sectors;
	 * readers accept both). */
	l->data_space = (uint32_t)util_align_up((uint64_t)len ? (uint64_t)len : 1,
						VHD_SECTOR);
	l->data_offset = at;
	return len;
}

struct parent_facts {
	uint64_t size;
	uint32_t block_size;
	uint8_t uuid[16];
	uint32_t mtime;
	char abs[PATH_MAX];
	int layers;               /* the chain's files, parent first */
	dev_t dev[VHD_DEFAULT_MAX_DEPTH];
	ino_t ino[VHD_DEFAULT_MAX_DEPTH];
};

static int parent_facts(const char *parent, struct parent_facts *pf,
			struct bdev_err *e)
{
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY };
	struct bdev *b = vhd_open(parent, &o, e);
	struct vhd *v;
	struct stat st;

	if (!b)
		return -e->code;
	v = vhd_of(b);
	/* The child is one more layer: a chain open refuses more than
	 * VHD_DEFAULT_MAX_DEPTH, so no command could open it. */
	if (v->layers >= VHD_DEFAULT_MAX_DEPTH) {
		int layers = v->layers;

		bdev_close(b);
		return bdev_err_set(e, ELOOP,
				    "%s: its chain has %d layers, the most an image can have; a child of it could not be opened (merge some layers first)",
				    parent, layers);
	}
	pf->size = b->size;
	pf->block_size = v->footer.type == VHD_TYPE_FIXED ? 0 : v->block_size;
	memcpy(pf->uuid, v->footer.uuid, 16);
	if (fstat(v->fd, &st) < 0 || !realpath(parent, pf->abs)) {
		int err = errno;

		bdev_close(b);
		return bdev_err_set(e, err, "%s: %s", parent, strerror(err));
	}
	pf->mtime = vhd_time_from_unix((int64_t)st.st_mtime);
	pf->layers = 0;
	for (struct vhd *l = v; l && pf->layers < VHD_DEFAULT_MAX_DEPTH;
	     l = l->parent ? vhd_of(l->parent) : NULL) {
		if (fstat(l->fd, &st) < 0)
			continue;
		pf->dev[pf->layers] = st.st_dev;
		pf->ino[pf->layers++] = st.st_ino;
	}
	bdev_close(b);
	return 0;
}

static int check_opts(const char *path, const struct vhd_create_opts *o,
		      struct bdev_err *e)
{
	if (o->type != VHD_TYPE_FIXED && o->type != VHD_TYPE_DYNAMIC &&
	    o->type != VHD_TYPE_DIFF)
		return bdev_err_set(e, EINVAL, "%s: unknown image type %d", path,
				    o->type);
	if (o->type == VHD_TYPE_DIFF ? !o->parent : o->parent != NULL)
		return bdev_err_set(e, EINVAL, "%s: a parent goes with a differencing image only",
				    path);
	if (o->type != VHD_TYPE_DIFF) {
		if (o->size == 0 || o->size % VHD_SECTOR)
			return bdev_err_set(e, EINVAL,
					    "%s: size %llu is not a positive multiple of 512 bytes",
					    path, (unsigned long long)o->size);
		if (o->size > VHD_MAX_SIZE)
			return bdev_err_set(e, EFBIG,
					    "%s: size %llu is larger than the VHD limit of 2040 GiB",
					    path, (unsigned long long)o->size);
	}
	if (o->block_size && (!util_is_pow2(o->block_size) ||
			      o->block_size < (512u << 10) ||
			      o->block_size > VHD_MAX_BLOCK_SIZE))
		return bdev_err_set(e, EINVAL,
				    "%s: block size %u is not a power of two from 512 KiB to 256 MiB",
				    path, o->block_size);
	return 0;
}

/* Write the whole metadata of a sparse image into fd; `where` is the path
 * the image will have (symlinks followed), for the relative locator. */
static int write_sparse(int fd, const char *path, const char *where,
			const struct vhd_create_opts *o,
			const struct parent_facts *pf, uint64_t size,
			uint32_t block_size, struct bdev_err *e)
{
	uint32_t entries = (uint32_t)((size + block_size - 1) / block_size);
	uint64_t bat_bytes = util_align_up((uint64_t)entries * 4, VHD_SECTOR);
	uint64_t loc_off = 1536 + bat_bytes, end = loc_off;
	struct vhd_header h;
	struct vhd_footer f;
	uint8_t uuid[16], foot[512], hdr[1024], *meta;
	uint8_t loc_abs[8192], loc_rel[8192];
	int la = 0, lr = 0, r;

	memset(&h, 0, sizeof(h));
	h.table_offset = 1536;
	h.version = 0x00010000;
	h.max_table_entries = entries;
	h.block_size = block_size;
	if (pf) {
		char *dir = util_dirname(where), absdir[PATH_MAX], rel[PATH_MAX],
		     relwin[PATH_MAX + 2];

		if (!dir || !realpath(dir, absdir)) {
			free(dir);
			return bdev_err_set(e, errno ? errno : ENOMEM,
					    "%s: cannot resolve its folder", path);
		}
		free(dir);
		if (vhd_relpath(absdir, pf->abs, rel, sizeof(rel)))
			return bdev_err_set(e, ENAMETOOLONG, "%s: parent path too long", path);
		/* A backslash is the path separator inside locators (and
		 * readers turn it into '/' in the header's name too): a name
		 * holding one would come back as another path, so the child
		 * could never find its parent again. */
		if (strchr(pf->abs, '\\') || strchr(rel, '\\'))
			return bdev_err_set(e, EINVAL,
					    "%s: parent %s: its path (%s) contains a backslash, which a VHD parent locator cannot carry (it is the path separator there); rename it",
					    path, o->parent, pf->abs);
		snprintf(relwin, sizeof(relwin), "./%s", rel);
		memcpy(h.parent_uuid, pf->uuid, 16);
		h.parent_timestamp = pf->mtime;
		r = vhd_utf16_encode(util_basename(pf->abs), h.parent_name,
				     sizeof(h.parent_name), false);
		if (r < 0)
			return bdev_err_set(e, -r, "%s: parent file name %s cannot be stored",
					    path, util_basename(pf->abs));
		la = put_locator(&h.loc[0], "W2ku", pf->abs, loc_off, loc_abs,
				 sizeof(loc_abs));
		if (la >= 0)
			lr = put_locator(&h.loc[1], "W2ru", relwin,
					 loc_off + h.loc[0].data_space, loc_rel,
					 sizeof(loc_rel));
		if (la < 0 || lr < 0)
			return bdev_err_set(e, ENAMETOOLONG,
					    "%s: parent path cannot be stored in a locator",
					    path);
		end = loc_off + h.loc[0].data_space + h.loc[1].data_space;
	}
	r = vhd_uuid_generate(uuid);
	if (r)
		return bdev_err_set(e, -r, "%s: no random numbers: %s", path,
				    strerror(-r));
	init_footer(&f, o->type, size, uuid);
	vhd_footer_encode(&f, foot);
	vhd_header_encode(&h, hdr);
	meta = malloc(end + 512);
	if (!meta)
		return bdev_err_set(e, ENOMEM, "%s: out of memory", path);
	memset(meta, 0, end + 512);
	memcpy(meta, foot, 512);
	memcpy(meta + 512, hdr, 1024);
	memset(meta + 1536, 0xff, bat_bytes);   /* padding too, as qemu does */
	if (pf) {
		memcpy(meta + loc_off, loc_abs, (size_t)la);
		memcpy(meta + h.loc[1].data_offset, loc_rel, (size_t)lr);
	}
	memcpy(meta + end, foot, 512);
	r = util_pwrite_full(fd, meta, end + 512, 0);
	free(meta);
	return r ? bdev_err_set(e, -r, "%s: write failed: %s", path, strerror(-r))
		 : 0;
}

/* The file being replaced must not be one the new image reads: a child
 * replacing its own parent (or an ancestor) would lose that data and point
 * at itself.  st is the existing target. */
static int replaces_own_chain(const char *path, const char *parent,
			      const struct parent_facts *pf,
			      const struct stat *st, struct bdev_err *e)
{
	for (int i = 0; i < pf->layers; i++)
		if (pf->dev[i] == st->st_dev && pf->ino[i] == st->st_ino)
			return bdev_err_set(e, EINVAL,
					    "%s: is %s or part of its chain; it cannot be replaced by a child of it",
					    path, parent);
	return 0;
}

int vhd_create(const char *path, const struct vhd_create_opts *o,
	       struct bdev_err *e)
{
	struct parent_facts pf;
	struct publish pub;
	uint64_t size = o->size;
	uint32_t bs = o->block_size ? o->block_size : VHD_DEFAULT_BLOCK_SIZE;
	int fd = -1, r;

	r = check_opts(path, o, e);
	if (r)
		return r;
	/* The parent chain is opened (reader locks) and closed before the
	 * destination is locked: the destination may be part of it. */
	if (o->type == VHD_TYPE_DIFF) {
		r = parent_facts(o->parent, &pf, e);
		if (r)
			return r;
		size = pf.size;
		if (!o->block_size && pf.block_size)
			bs = pf.block_size;
	}
	r = publish_begin(&pub, path, o->overwrite ? PUBLISH_REPLACE : 0, e);
	if (!r && pub.exists && o->type == VHD_TYPE_DIFF)
		r = replaces_own_chain(path, o->parent, &pf, &pub.st, e);
	if (r)
		goto out;
	fd = open(pub.tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
		  publish_mode(&pub));
	if (fd < 0) {
		r = bdev_err_set(e, errno, "%s: cannot create: %s", path,
				 strerror(errno));
		goto out;
	}
	r = publish_adopt(&pub, fd, e);
	if (r)
		goto out;
	if (o->type == VHD_TYPE_FIXED) {
		struct vhd_footer f;
		uint8_t uuid[16], foot[512];

		r = vhd_uuid_generate(uuid);
		if (!r) {
			init_footer(&f, VHD_TYPE_FIXED, size, uuid);
			vhd_footer_encode(&f, foot);
			r = util_pwrite_full(fd, foot, 512, size);
		}
		if (r)
			bdev_err_set(e, -r, "%s: write failed: %s", path,
				     strerror(-r));
	} else {
		r = write_sparse(fd, path, pub.target, o,
				 o->type == VHD_TYPE_DIFF ? &pf : NULL, size, bs, e);
	}
	if (!r)
		r = publish_commit(&pub, fd, e);
out:
	if (fd >= 0)
		close(fd);
	publish_end(&pub);
	return r;
}
