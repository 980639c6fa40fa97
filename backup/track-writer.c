/* Change tracking, the writer side: whoever writes a tracked image
 * (vhdtool through bkp_track_attach / bkp_track_layer, the storage VSP and
 * the VMM through bkp_track_open + bkp_track_note) stamps the granules it
 * writes in IMAGE.ctk; a running tracker can be frozen for a live backup
 * (bkp_track_freeze, bkp_track_frozen_write).  The file format, validity
 * and locking are in ctk-format.c.
 */
#include "bkp-int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

/* ---- the write side ---- */

struct bkp_track {
	int fd;
	struct bkp_ctkf c;                    /* as marked open */
	char *paths[CTK_MAX_LAYERS];
	bool overflow;                   /* a write past the tracked size */
	struct bkp_track *next;          /* registry of open trackers */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bkp_track *reg;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void close_all_at_exit(void)
{
	for (;;) {
		struct bkp_track *t;

		pthread_mutex_lock(&reg_lock);
		t = reg;
		pthread_mutex_unlock(&reg_lock);
		if (!t)
			return;
		bkp_track_close(t, NULL);
	}
}

static void reg_init(void)
{
	atexit(close_all_at_exit);
}

static void hook(void *opaque, uint64_t off, uint64_t len)
{
	struct bkp_track *t = opaque;
	uint64_t first = off / t->c.granule, last = (off + len - 1) / t->c.granule;
	uint32_t epoch = __atomic_load_n(&t->c.epoch, __ATOMIC_RELAXED);

	if (last >= t->c.nmarks) {
		__atomic_store_n(&t->overflow, true, __ATOMIC_RELAXED);
		last = t->c.nmarks ? t->c.nmarks - 1 : 0;
		if (first > last)
			return;
	}
	for (uint64_t i = first; i <= last; i++)
		__atomic_store_n(&t->c.marks[i], epoch, __ATOMIC_RELAXED);
}

/* Mark the file stale: another process holds it and we are about to
 * write the image without recording it. */
static void mark_stale(const char *ctk)
{
	int fd = open(ctk, O_WRONLY | O_CLOEXEC);
	struct stat st;
	uint8_t one[4];

	if (fd < 0)
		return;
	util_put_le32(one, 1);
	if (fstat(fd, &st) == 0 && st.st_size >= (off_t)CTK_HDR &&
	    util_pwrite_full(fd, one, 4, CTK_STALE_OFF) == 0)
		(void)fdatasync(fd);
	close(fd);
}

/* The tracking of b opened from image_path (file checked, marked open),
 * without a hook yet.  create: IMAGE.ctk is made when absent (a new
 * generation). */
static struct bkp_track *track_open(struct bdev *b, const char *image_path,
				    bool create, struct bdev_err *e)
{
	struct bkp_ctk_layer ids[CTK_MAX_LAYERS];
	struct bkp_track *t = NULL;
	char why[300], *ctk = NULL;
	uint32_t n = 0;
	int fd = -1, r;

	if (b->read_only || bkp_ctkf_is_tmpname(image_path)) {
		bdev_err_set(e, ENOENT, "%s: not tracked", image_path);
		return NULL;
	}
	ctk = bkp_ctkf_name(image_path);
	if (!ctk) {
		bdev_err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	if (!create && access(ctk, F_OK) < 0) {
		bdev_err_set(e, ENOENT, "%s: no change-tracking file", ctk);
		goto fail;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		bdev_err_set(e, ENOMEM, "out of memory");
		goto fail;
	}
	r = bkp_ctkf_collect(b, image_path, t->paths, ids, &n, why, sizeof(why));
	if (r) {
		bdev_err_set(e, -r, "%s: not tracked: %s", image_path, why);
		goto fail;
	}
	fd = bkp_ctkf_open_locked(ctk, create);
	if (fd == -EWOULDBLOCK) {
		/* A backup or another writer holds it: we cannot record our
		 * writes there, so nobody may trust it any more. */
		mark_stale(ctk);
		bdev_err_set(e, EBUSY, "%s: in use by another process; marked stale",
			     ctk);
		goto fail;
	}
	if (fd < 0) {
		bdev_err_set(e, -fd, "%s: %s", ctk, strerror(-fd));
		goto fail;
	}
	r = bkp_ctkf_read(fd, &t->c, why, sizeof(why));
	if (r == -ENOMEM)
		goto nomem;
	if (r || !bkp_ctkf_valid(&t->c, ids, n, b->size, bkp_ctkf_fd_dev(fd), why,
				 sizeof(why))) {
		/* Start a new generation: no backup can be its base. */
		r = bkp_ctkf_reset(&t->c, b->size, ids, n, CTK_ST_OPEN);
		if (r)
			goto io_fail;
		r = bkp_ctkf_write(fd, &t->c, true, true);
	} else {
		t->c.state = CTK_ST_OPEN;
		r = bkp_ctkf_write(fd, &t->c, false, false);
	}
	if (r)
		goto io_fail;
	t->fd = fd;
	pthread_once(&reg_once, reg_init);
	pthread_mutex_lock(&reg_lock);
	t->next = reg;
	reg = t;
	pthread_mutex_unlock(&reg_lock);
	free(ctk);
	return t;

nomem:
	r = -ENOMEM;
io_fail:
	bdev_err_set(e, -r, "%s: cannot update: %s", ctk, strerror(-r));
fail:
	if (fd >= 0)
		close(fd);
	if (t) {
		free(t->c.marks);
		bkp_ctkf_free_paths(t->paths, n);
		free(t);
	}
	free(ctk);
	return NULL;
}

struct bkp_track *bkp_track_attach(struct bdev *b, const char *image_path,
				   struct bdev_err *e)
{
	struct bkp_track *t;

	if (b->hook) {
		bdev_err_set(e, EBUSY, "%s: the disk already has a write hook",
			     image_path);
		return NULL;
	}
	t = track_open(b, image_path, false, e);
	if (t)
		bdev_set_write_hook(b, hook, t);
	return t;
}

struct bdev *bkp_track_layer(struct bdev *b, const char *image_path,
			     struct bkp_track **out, struct bdev_err *e)
{
	struct bkp_track *t = track_open(b, image_path, false, e);
	struct bdev *l;

	*out = NULL;
	if (!t)
		return NULL;
	l = bdev_observe_open(b, true, hook, t, e);
	if (!l) {
		(void)bkp_track_close(t, NULL);
		return NULL;
	}
	*out = t;
	return l;
}

struct bkp_track *bkp_track_open(struct bdev *b, const char *image_path,
				 bool create, struct bdev_err *e)
{
	return track_open(b, image_path, create, e);
}

void bkp_track_note(struct bkp_track *t, uint64_t off, uint64_t len)
{
	if (len)
		hook(t, off, len);
}

/* ---- freezing a running tracker (live backups) ---- */

struct bkp_track_frozen {
	struct bkp_ctkf c;		/* marks and epoch as of the freeze; layers unset */
};

struct bkp_track_frozen *bkp_track_freeze(struct bkp_track *t, struct bdev_err *e)
{
	struct bkp_track_frozen *f;
	uint32_t epoch = __atomic_load_n(&t->c.epoch, __ATOMIC_RELAXED);

	if (__atomic_load_n(&t->overflow, __ATOMIC_RELAXED)) {
		bdev_err_set(e, EINVAL, "change tracking: a write went past the tracked size");
		return NULL;
	}
	if (epoch >= UINT32_MAX - 1) {
		bdev_err_set(e, EOVERFLOW, "change tracking: the epoch is exhausted");
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (f) {
		f->c = t->c;
		f->c.marks = malloc((t->c.nmarks ? t->c.nmarks : 1) * sizeof(uint32_t));
	}
	if (!f || !f->c.marks) {
		free(f);
		bdev_err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	/* No write runs (the caller holds them), so the copy is exact; the
	 * hook reads the epoch afresh for every write. */
	for (uint64_t i = 0; i < t->c.nmarks; i++)
		f->c.marks[i] = __atomic_load_n(&t->c.marks[i], __ATOMIC_RELAXED);
	f->c.epoch = epoch;
	f->c.state = CTK_ST_CLEAN;
	f->c.stale = 0;
	f->c.nlayers = 0;
	__atomic_store_n(&t->c.epoch, epoch + 1, __ATOMIC_RELAXED);
	return f;
}

uint32_t bkp_track_frozen_epoch(const struct bkp_track_frozen *f)
{
	return f->c.epoch;
}

int bkp_track_frozen_write(const struct bkp_track_frozen *f, struct bdev *frozen,
			   const char *frozen_path, const char *ctk_path,
			   struct bdev_err *e)
{
	struct bkp_ctkf c = f->c;
	char *paths[CTK_MAX_LAYERS] = { 0 }, *tmp = NULL, why[300];
	uint32_t n = 0;
	int fd = -1, r;

	if (frozen->size != c.vsize) {
		bdev_err_set(e, EINVAL, "%s: the frozen image's size differs from the tracked size",
			     frozen_path);
		return -EINVAL;
	}
	r = bkp_ctkf_collect(frozen, frozen_path, paths, c.layer, &n, why,
			     sizeof(why));
	bkp_ctkf_free_paths(paths, n);
	if (r) {
		bdev_err_set(e, -r, "%s: %s", frozen_path, why);
		return r;
	}
	c.nlayers = n;
	tmp = util_tmpname(ctk_path);
	if (!tmp) {
		bdev_err_set(e, ENOMEM, "out of memory");
		return -ENOMEM;
	}
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	/* The layers' state was taken above, after the last write to the
	 * frozen image; proven like a writer's record (a later write to the
	 * frozen image, say a merge, gets a later timestamp). */
	r = bkp_ctkf_write(fd, &c, true, true);
	if (!r)
		r = bkp_ctkf_prove(fd, &c);
	if (!r)
		r = util_commit_file(fd, tmp, ctk_path);
	if (r)
		goto fail;
	close(fd);
	free(tmp);
	return 0;
fail:
	bdev_err_set(e, -r, "%s: %s", ctk_path, strerror(-r));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return r;
}

void bkp_track_frozen_free(struct bkp_track_frozen *f)
{
	if (!f)
		return;
	free(f->c.marks);
	free(f);
}

int bkp_track_close(struct bkp_track *t, struct bdev_err *e)
{
	struct bkp_ctk_layer now[CTK_MAX_LAYERS];
	int r;

	if (!t)
		return 0;
	pthread_mutex_lock(&reg_lock);
	for (struct bkp_track **p = &reg; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	r = bkp_ctkf_restat(t->paths, t->c.nlayers, t->c.layer, now);
	/* Only the leaf's writes were seen: a parent that changed meanwhile
	 * (a tool that opened it read-write too) changed what the disk
	 * reads without a record. */
	if (!r && !__atomic_load_n(&t->overflow, __ATOMIC_RELAXED) &&
	    bkp_ctkf_same_layers(t->c.layer + 1, now + 1, t->c.nlayers - 1, NULL, 0)) {
		memcpy(t->c.layer, now, sizeof(now[0]) * t->c.nlayers);
		t->c.state = CTK_ST_CLEAN;
	} else {
		t->c.state = CTK_ST_INVALID;
	}
	/* Written unproven first: a crash before the proof leaves it
	 * invalid. */
	t->c.proof_fs.tv_sec = t->c.proof_clock.tv_sec = 0;
	r = bkp_ctkf_write(t->fd, &t->c, true, false);
	/* Later writes by anyone must get a later timestamp than recorded. */
	if (!r && t->c.state == CTK_ST_CLEAN)
		r = bkp_ctkf_prove(t->fd, &t->c);
	if (r)
		bdev_err_set(e, -r, "change-tracking file: cannot update: %s",
			     strerror(-r));
	close(t->fd);
	free(t->c.marks);
	bkp_ctkf_free_paths(t->paths, t->c.nlayers);
	free(t);
	return r;
}

