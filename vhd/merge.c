/* Merge a differencing image into its parent, or into an ancestor several
 * levels up.
 *
 * Every range that a layer above the ancestor holds is read through the
 * child's chain (so it is exactly what the child shows) and written into
 * the ancestor; the ancestor is flushed; then the merged-away files are
 * deleted, the child last.
 *
 * Restartable: until the deletions, the layers above the ancestor still
 * hold every range that was copied, so the child's chain reads the same
 * whatever part of the copy reached the ancestor, and running the merge
 * again writes the same bytes again and completes it.  The ancestor itself
 * stays a valid image at every moment (its own allocation rules).
 *
 * What the merge changes can break other images: another child of the
 * ancestor or of an intermediate layer would read different data, and
 * children of deleted files lose their parent.  The folders of the chain
 * are searched for such children (a differencing image whose parent UUID
 * is one of those files'), and the merge refuses unless forced.
 */
#include "vhd-int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

struct layer {
	char path[PATH_MAX];  /* as the chain found it */
	uint64_t size;        /* its disk size */
	uint8_t uuid[16];
	dev_t dev;
	ino_t ino;
};

struct chain {
	struct layer l[VHD_DEFAULT_MAX_DEPTH * 4];
	int n;
};

static int list_chain(struct bdev *b, struct chain *c, struct bdev_err *e)
{
	struct vhd *v = vhd_of(b);

	c->n = 0;
	while (v && c->n < (int)UTIL_ARRAY_SIZE(c->l)) {
		struct layer *l = &c->l[c->n++];
		struct stat st;

		if (fstat(v->fd, &st) < 0)
			return bdev_err_set(e, errno, "%s: %s", v->path, strerror(errno));
		snprintf(l->path, sizeof(l->path), "%s", v->path);
		l->size = v->b.size;
		memcpy(l->uuid, v->footer.uuid, 16);
		l->dev = st.st_dev;
		l->ino = st.st_ino;
		v = v->parent ? vhd_of(v->parent) : NULL;
	}
	return 0;
}

static int chain_index(const struct chain *c, dev_t dev, ino_t ino)
{
	for (int i = 0; i < c->n; i++)
		if (c->l[i].dev == dev && c->l[i].ino == ino)
			return i;
	return -1;
}

/* Look at one file: if it is a differencing image (not in the chain) whose
 * parent is a layer the merge affects, describe the conflict in e. */
static int check_candidate(const struct chain *c, int depth, bool keep,
			   const char *path, struct bdev_err *e)
{
	/* No reader lock: a child in use elsewhere must still be found. */
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY | VHD_O_NO_PARENT |
					   VHD_O_FORCE_SHARE };
	struct bdev_err ignore;
	struct stat st;
	struct bdev *b;
	struct vhd *v;
	int r = 0;

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
	    chain_index(c, st.st_dev, st.st_ino) >= 0)
		return 0;
	b = vhd_open(path, &o, &ignore);
	if (!b)
		return 0;
	v = vhd_of(b);
	if (v->footer.type == VHD_TYPE_DIFF)
		for (int i = keep ? 1 : 0; i <= depth; i++) {
			if (memcmp(v->hdr.parent_uuid, c->l[i].uuid, 16))
				continue;
			r = bdev_err_set(e, EBUSY,
				"refusing to merge: %s depends on %s, %s (--force merges anyway)",
				path, c->l[i].path,
				i == depth ? "which the merge changes" :
				!keep ? "which the merge removes" :
				"whose parent the merge changes");
			break;
		}
	bdev_close(b);
	return r;
}

/* Search the folders of the affected layers for other children. */
static int find_dependents(const struct chain *c, int depth, bool keep,
			   struct bdev_err *e)
{
	char seen[8][PATH_MAX];
	int nseen = 0, r = 0;

	for (int i = 0; i <= depth && !r; i++) {
		char *dir = util_dirname(c->l[i].path), real[PATH_MAX];
		DIR *d;
		struct dirent *de;
		bool dup = false;

		if (!dir)
			return bdev_err_set(e, ENOMEM, "out of memory");
		if (!realpath(dir, real))
			snprintf(real, sizeof(real), "%s", dir);
		for (int k = 0; k < nseen; k++)
			dup |= !strcmp(seen[k], real);
		if (dup) {
			free(dir);
			continue;
		}
		if (nseen < 8)
			snprintf(seen[nseen++], PATH_MAX, "%s", real);
		d = opendir(dir);
		if (!d) {
			r = bdev_err_set(e, errno, "%s: cannot list the folder to look for other children: %s",
					 dir, strerror(errno));
			free(dir);
			break;
		}
		while (!r && (de = readdir(d))) {
			char path[PATH_MAX];

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
			    (int)sizeof(path))
				continue;
			r = check_candidate(c, depth, keep, path, e);
		}
		closedir(d);
		free(dir);
	}
	return r;
}

static int find_target(const struct chain *c, const char *into,
		       const char *child, struct bdev_err *e)
{
	struct stat st;
	int i;

	if (!into)
		return 1;
	if (stat(into, &st) < 0)
		return bdev_err_set(e, errno, "%s: %s", into, strerror(errno));
	i = chain_index(c, st.st_dev, st.st_ino);
	if (i == 0)
		return bdev_err_set(e, EINVAL, "%s: cannot merge an image into itself", into);
	if (i < 0)
		return bdev_err_set(e, EINVAL, "%s is not an ancestor of %s", into, child);
	return i;
}

/* Past the end of a layer smaller than the child, the child's chain reads
 * zeros wherever no layer above holds data, whatever the ancestor holds
 * there (a layer was shrunk).  The copy writes only what layers above the
 * ancestor hold, so the ancestor must be zeroed in those ranges too, or
 * the merged disk would show its stale data.  Idempotent, like the copy. */
static int zero_unheld(struct bdev *top, struct bdev *dst,
		       const struct chain *c, int depth, struct bdev_err *e)
{
	uint64_t m = c->l[depth].size, end = UTIL_MIN(top->size, dst->size);

	for (int i = 1; i < depth; i++)
		m = UTIL_MIN(m, c->l[i].size);
	while (m < end) {
		struct bdev_status bs;
		int r = bdev_block_status(top, m, end - m, &bs);

		if (r)
			return vhd_err_from(vhd_of(top), r, e);
		if (!(bs.flags & BDEV_ST_ALLOC) || bs.depth >= depth) {
			r = bdev_write_zeroes(dst, m, bs.length, BDEV_MAY_UNMAP);
			if (r)
				return vhd_err_from(vhd_of(dst), r, e);
		}
		m += bs.length;
	}
	return 0;
}

int vhd_merge_check(struct bdev *child, struct bdev_err *e)
{
	struct chain *c;
	int r;

	if (!vhd_of(child) || !vhd_of(child)->parent)
		return bdev_err_set(e, EINVAL, "%s is not a differencing image: there is nothing to merge",
				    child->name);
	c = malloc(sizeof(*c));
	if (!c)
		return bdev_err_set(e, ENOMEM, "out of memory");
	r = list_chain(child, c, e);
	if (!r)
		r = find_dependents(c, 1, false, e);
	free(c);
	return r;
}

/* The whole chain read-write (VHD_O_PARENT_RW): every layer holds the
 * writer lock, so while the merge runs no other process writes or reads
 * (serves, uses as a parent) a file it changes or removes, and the
 * ancestor is written through the chain's own handle (a second open of it
 * would conflict with that lock).  Opening read-write writes nothing. */
static struct bdev *open_chain(const char *child, struct bdev_err *e)
{
	struct vhd_open_opts o = { .flags = VHD_O_PARENT_RW };

	return vhd_open(child, &o, e);
}

static struct bdev *layer_at(struct bdev *top, int depth)
{
	struct bdev *b = top;

	while (b && depth-- > 0)
		b = vhd_parent(vhd_of(b));
	return b;
}

/* Resize the ancestor by name: the chain (and its locks) is closed around
 * it and opened again.  Killed in between, the chain reads the same. */
static int resize_ancestor(struct bdev **top, const char *child,
			   const char *path, uint64_t size, unsigned flags,
			   struct bdev_err *e)
{
	struct vhd_resize_stats rs;
	int r;

	bdev_close(*top);
	*top = NULL;
	r = vhd_resize(path, size, flags, &rs, e);
	if (r)
		return r;
	*top = open_chain(child, e);
	return *top ? 0 : -e->code;
}

int vhd_merge(const char *child, const struct vhd_merge_opts *o,
	      struct vhd_merge_stats *st, struct bdev_err *e)
{
	static const struct vhd_merge_opts def;
	struct vhd_merge_stats dummy;
	struct bdev_copy_stats cs;
	struct bdev *top, *dst;
	struct chain *c;
	uint64_t size;
	int depth, r = 0;

	if (!o)
		o = &def;
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	c = malloc(sizeof(*c));
	if (!c)
		return bdev_err_set(e, ENOMEM, "out of memory");
	top = open_chain(child, e);
	if (!top) {
		free(c);
		return -e->code;
	}
	if (vhd_of(top)->footer.type != VHD_TYPE_DIFF) {
		r = bdev_err_set(e, EINVAL, "%s is a %s image, not a differencing one: there is nothing to merge",
				 child, vhd_of(top)->footer.type == VHD_TYPE_FIXED ?
				 "fixed" : "dynamic");
		goto out;
	}
	r = list_chain(top, c, e);
	if (r)
		goto out;
	depth = find_target(c, o->into, child, e);
	if (depth < 0) {
		r = depth;
		goto out;
	}
	if (!o->force) {
		r = find_dependents(c, depth, o->keep, e);
		if (r)
			goto out;
	}
	size = top->size;
	if (size > c->l[depth].size) {
		/* The child was grown: grow the ancestor first (itself
		 * crash-safe; the chain reads zeros past a smaller parent's
		 * end, as the grown ancestor does). */
		r = resize_ancestor(&top, child, c->l[depth].path, size, 0, e);
		if (r)
			goto out;
		st->grown = true;
	}
	dst = layer_at(top, depth);
	{
		struct bdev_copy_opts co = {
			.max_depth = depth,
			.progress = o->progress,
			.opaque = o->opaque,
		};

		r = bdev_copy(top, dst, size, &co, &cs, e);
		if (!r)
			r = zero_unheld(top, dst, c, depth, e);
		if (r)
			goto out;
	}
	st->layers = depth;
	st->bytes = cs.data_bytes + cs.zero_bytes;
	snprintf(st->into, sizeof(st->into), "%s", c->l[depth].path);
	r = bdev_flush(dst);
	if (r) {
		vhd_err_from(vhd_of(dst), r, e);
		goto out;
	}
	if (size < dst->size) {
		/* The child was shrunk: so is the ancestor, its data past the
		 * child's end dropped (the child never showed it).  Before
		 * the removals: killed here, the chain still reads the same
		 * and a second run completes the merge. */
		r = resize_ancestor(&top, child, c->l[depth].path, size,
				    VHD_RESIZE_SHRINK | VHD_RESIZE_DISCARD, e);
		if (r)
			goto out;
		st->shrunk = true;
	}
	if (!o->keep) {
		/* Nearest the ancestor first, the child last.  A crash between
		 * two unlinks leaves the child without a parent (it cannot be
		 * opened, so cannot be misused); the other order would leave
		 * an intermediate layer that looks like a valid snapshot of
		 * the ancestor, and merging it again would overwrite newer
		 * data with its older data.  The chain is still open: its
		 * locks keep other processes off the files until they are
		 * gone. */
		for (int i = depth - 1; i >= 0; i--) {
			if (unlink(c->l[i].path) < 0 && errno != ENOENT) {
				r = bdev_err_set(e, errno,
					"merged into %s, but cannot remove %s: %s",
					c->l[depth].path, c->l[i].path, strerror(errno));
				goto out;
			}
			(void)util_fsync_dir(c->l[i].path);
			st->removed++;
		}
	}
out:
	if (top)
		bdev_close(top);
	free(c);
	return r;
}
