/* bkp_create: read a disk in chunks on all cores, hash, deduplicate and
 * store them, then write the index and, last, the manifest.
 *
 * Incremental: when SOURCE.ctk is valid and the repository holds a backup
 * of the same tracking generation, only chunks written since that backup
 * are read; the others take its digests (their files are touched, and a
 * chunk gone meanwhile, or quarantined by verify, is read again).
 * Otherwise every chunk is read, except ranges the disk reports as zero
 * (block status).
 *
 * A disk with snapshots of its own (o->snaps, an RBD image): the backup
 * takes one, reads it instead of the live disk, and an incremental reads
 * only what the disk reports changed since the snapshot of the newest
 * earlier backup of the same disk; that snapshot is dropped once the new
 * backup is visible, so exactly one stays.
 *
 * Live backups (o->group set): src is an image a running VMM froze; the
 * frozen tracking file it wrote stands in for SOURCE.ctk, read only (the
 * VMM's tracker keeps SOURCE.ctk), and the manifest takes the VMM's
 * consistency ("application" or "crash"), the group, LUN and freeze
 * window.
 *
 * A chunk read from the source is never deduplicated against a stored
 * file on the strength of its name: the file must prove it holds the data
 * (bkp_store_put; --full also inflates compressed files), and a damaged
 * one is replaced.  So a rotten chunk cannot poison a backup that has the
 * data at hand.
 *
 * gc safety: the backup registers itself (writers/ID) before it touches or
 * stores any chunk, and every chunk it references is touched or stored
 * under chunks.lock; see the grace rule in docs/backup-format.md. */
#include "bkp-int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/pool.h"
#include "common/util.h"

struct cjob {
	struct bkp_repo *r;
	struct bdev *src;
	uint64_t size, n;
	uint32_t cs;
	uint8_t (*d)[BKP_DIGEST];     /* the index being built */
	uint8_t *reuse;               /* 1: digest taken from the base */
	/* atomics */
	uint64_t next, done_bytes;
	uint64_t chunks_read, chunks_new, chunks_zero;
	uint64_t bytes_read, bytes_new, bytes_stored, chunks_replaced;
	bool deep;                    /* --full: inflate existing chunks to compare */
	struct pool pool;
	/* read by the progress tick */
	bkp_progress_fn progress;
	void *opaque;
	const volatile sig_atomic_t *cancel;
};

static void add(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static void job_fail(struct cjob *j, int r, const char *msg)
{
	struct bdev_err e;

	bdev_err_set(&e, r, "%s", msg);
	pool_fail(&j->pool, r, &e);
}

/* Whether the disk reports [off, off+len) as reading zeros. */
static int is_hole(struct bdev *b, uint64_t off, uint64_t len, bool *zero)
{
	*zero = false;
	while (len) {
		struct bdev_status st;
		int r = bdev_block_status(b, off, len, &st);

		if (r)
			return r;
		if (!(st.flags & BDEV_ST_ZERO))
			return 0;
		off += st.length;
		len -= st.length;
	}
	*zero = true;
	return 0;
}

static int src_err(struct cjob *j, int r, struct bdev_err *e)
{
	char msg[600];

	return bdev_err_set(e, r, "%s", bdev_errmsg(j->src, msg, sizeof(msg)));
}

/* Chunk i into the index (and the store).  0 or -errno with e filled. */
static int one_chunk(struct cjob *j, struct bkp_store *st, uint64_t i,
		     uint8_t *buf, struct bdev_err *e)
{
	uint64_t off = i * j->cs, added;
	size_t len = (size_t)UTIL_MIN((uint64_t)j->cs, j->size - off);
	bool zero;
	int r;

	if (j->reuse[i]) {
		if (bkp_digest_is_zero(j->d[i])) {
			add(&j->chunks_zero, 1);
			return 0;
		}
		if (bkp_store_touch(st, j->d[i]) == 0)
			return 0;
		/* Gone since the base was written (gc): read it again. */
	}
	r = is_hole(j->src, off, len, &zero);
	if (r)
		return src_err(j, r, e);
	if (!zero) {
		r = bdev_read(j->src, buf, off, len);
		if (r)
			return src_err(j, r, e);
		add(&j->chunks_read, 1);
		add(&j->bytes_read, len);
		zero = util_is_zero(buf, len);
	}
	if (zero) {
		memset(j->d[i], 0, BKP_DIGEST);
		add(&j->chunks_zero, 1);
		return 0;
	}
	bkp_sha256(buf, len, j->d[i]);
	r = bkp_store_put(st, j->d[i], buf, len, &added, e);
	if (r)
		return r;
	if (added) {
		add(&j->chunks_new, 1);
		add(&j->bytes_new, len);
		add(&j->bytes_stored, added);
	}
	return 0;
}

static void worker(void *arg, int index)
{
	struct cjob *j = arg;
	struct bkp_store st = { .lockfd = -1 };
	struct bdev_err e = { 0 };
	uint8_t *buf = malloc(j->cs);
	int r = buf ? bkp_store_init(&st, j->r, &e)
		    : bdev_err_set(&e, ENOMEM, "out of memory");

	(void)index;
	st.deep = j->deep;
	while (!r && !pool_stopping(&j->pool)) {
		uint64_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);

		if (i >= j->n)
			break;
		/* a cancel seen here too: a short backup may end before the
		 * first tick, and a cancelled one must never commit */
		if (j->cancel && *j->cancel) {
			job_fail(j, -ECANCELED, "interrupted");
			break;
		}
		r = one_chunk(j, &st, i, buf, &e);
		add(&j->done_bytes, UTIL_MIN((uint64_t)j->cs, j->size - i * j->cs));
	}
	if (r)
		job_fail(j, r, e.msg);
	add(&j->chunks_replaced, st.replaced);
	bkp_store_fini(&st);
	free(buf);
}

/* Every quarter second while the workers run: cancellation, progress. */
static void tick(struct pool *p, void *arg)
{
	struct cjob *j = arg;

	if (j->cancel && *j->cancel && !pool_stopping(p))
		job_fail(j, -ECANCELED, "interrupted");
	if (j->progress)
		j->progress(j->opaque, __atomic_load_n(&j->done_bytes,
						       __ATOMIC_RELAXED), j->size);
}

/* Run the workers; the calling thread reports progress. */
static int run_workers(struct cjob *j, int threads, bkp_progress_fn progress,
		       void *opaque, const volatile sig_atomic_t *cancel,
		       struct bdev_err *e)
{
	int r;

	if (threads <= 0)
		threads = bkp_repo_threads(j->r, 0);
	if ((uint64_t)threads > j->n)
		threads = j->n ? (int)j->n : 1;
	j->progress = progress;
	j->opaque = opaque;
	j->cancel = cancel;
	r = pool_start(&j->pool, threads, worker, j, e);
	if (r < 0)
		return r;
	r = pool_wait(&j->pool, 250, tick, j, e);
	if (r)
		return r;
	if (progress)
		progress(opaque, j->size, j->size);
	return 0;
}

/* Source description: format, disk id, and a stable path. */
static void describe(struct bdev *src, const char *source, struct bkp_info *b)
{
	struct bdev_file_info fi;
	char *real = source ? realpath(source, NULL) : NULL;
	struct stat st;
	const struct bdev *bottom = src;

	snprintf(b->source, sizeof(b->source), "%s",
		 real ? real : source ? source : src->name);
	free(real);
	while (bottom->lower)
		bottom = bottom->lower;
	if (!strcmp(bottom->ops->kind, "rbd") && src->ident.serial[0]) {
		/* A Ceph RBD image: its id in the pool (rbd/rbd.c). */
		snprintf(b->source_format, sizeof(b->source_format), "rbd");
		snprintf(b->disk_id, sizeof(b->disk_id), "%s", src->ident.serial);
	} else if (bdev_file_info(src, &fi) == 0 && !strncmp(fi.format, "vhd-", 4)) {
		char h[33];

		/* The VHD's UUID, 8-4-4-4-12. */
		bkp_hex(fi.id, sizeof(fi.id), h);
		snprintf(b->source_format, sizeof(b->source_format), "%s",
			 fi.format);
		snprintf(b->disk_id, sizeof(b->disk_id), "%.8s-%.4s-%.4s-%.4s-%.12s",
			 h, h + 8, h + 12, h + 16, h + 20);
	} else if (source && stat(source, &st) == 0 && S_ISBLK(st.st_mode)) {
		snprintf(b->source_format, sizeof(b->source_format), "block-device");
		snprintf(b->disk_id, sizeof(b->disk_id), "block:%u:%u",
			 major(st.st_rdev), minor(st.st_rdev));
	} else {
		snprintf(b->source_format, sizeof(b->source_format), "raw");
		if (source && stat(source, &st) == 0)
			snprintf(b->disk_id, sizeof(b->disk_id), "raw:%llu:%llu",
				 (unsigned long long)st.st_dev,
				 (unsigned long long)st.st_ino);
		else
			snprintf(b->disk_id, sizeof(b->disk_id), "unknown");
	}
}

/* The newest backup that can serve as the base: of this tracking
 * generation (gen not NULL) or of this disk with a snapshot recorded
 * (disk_id not NULL); same chunk and disk size, its index intact.  Fills
 * base and x. */
struct base_find {
	struct bkp_repo *r;
	const char *gen, *disk_id;
	uint32_t epoch;
	uint64_t size;
	struct bkp_info *base;
	struct bkp_index *x;
};

static bool base_match(void *opaque, const struct bkp_info *b)
{
	struct base_find *f = opaque;
	char iwhy[200];

	if (f->gen && (strcmp(b->ctk_generation, f->gen) || b->ctk_since > f->epoch))
		return false;
	if (!f->gen && (strcmp(b->disk_id, f->disk_id) || !b->snapshot[0]))
		return false;
	if (b->virtual_size != f->size || b->chunk_size != f->r->chunk_size)
		return false;
	if (bkp_index_read(f->r, b->id, b->index_sha256, f->x, iwhy,
			   sizeof(iwhy)))
		return false;
	*f->base = *b;
	return true;
}

static bool find_base(struct bkp_repo *r, const char *gen, uint32_t epoch,
		      const char *disk_id, uint64_t size, struct bkp_info *base,
		      struct bkp_index *x, char *why, size_t wl)
{
	struct base_find f = { .r = r, .gen = gen, .disk_id = disk_id,
			       .epoch = epoch, .size = size, .base = base, .x = x };
	struct bdev_err e;

	if (gen)
		snprintf(why, wl, "no earlier backup of this disk in the repository with the current change tracking");
	else
		snprintf(why, wl, "no earlier backup of this disk with a snapshot in the repository");
	return bkp_find_newest(r, base_match, &f, &e) == 1;
}

/* Snapshots as the change source: take one, read it, and find what
 * changed since the base's.  0 (*have_base says whether there is a
 * base; why says why not) or -errno with e filled. */
static int snap_begin(struct bkp_repo *r, const struct bkp_create_opts *o,
		      struct bkp_info *b, struct bdev **src, bool *taken,
		      struct bkp_info *base, struct bkp_index *bx,
		      bool *have_base, char *why, size_t wl, struct bdev_err *e)
{
	const struct bkp_snapshots *sn = o->snaps;
	struct bdev *snap = NULL;
	int rc = sn->take(sn->opaque, b->id, b->snapshot, &snap, e);

	if (rc)
		return rc;
	*taken = true;
	if (snap->size != (*src)->size)
		return bdev_err_set(e, EIO, "%s: the snapshot %s has another size than the disk",
				    (*src)->name, b->snapshot);
	*src = snap;
	if (o->full) {
		snprintf(why, wl, "full backup requested");
		return 0;
	}
	if (!find_base(r, NULL, 0, b->disk_id, snap->size, base, bx, why, wl))
		return 0;
	rc = sn->diff(sn->opaque, base->snapshot, why, wl, e);
	if (rc < 0)
		return rc;
	*have_base = rc == 0;
	if (!*have_base)
		bkp_index_free(bx);
	return 0;
}

int bkp_create(struct bkp_repo *r, struct bdev *src,
	       const struct bkp_create_opts *o, struct bkp_info *out,
	       struct bdev_err *e)
{
	struct cjob *j = calloc(1, sizeof(*j));
	struct bkp_ctk_session *ctk = NULL;
	struct bkp_info *b = out, base;
	struct bkp_index bx = { 0 }, x;
	struct timespec t0, c0, t1;
	bool valid = false, have_base = false, taken = false;
	char why[300] = "";
	int wfd = -1, rc;

	if (!j)
		return bdev_err_set(e, ENOMEM, "out of memory");
	if (o->group && (!bkp_group_valid(o->group) || !o->consistency ||
			 (strcmp(o->consistency, "application") &&
			  strcmp(o->consistency, "crash")))) {
		free(j);
		return bdev_err_set(e, EINVAL, "a live backup needs a group (letters, digits, '-') and consistency application or crash");
	}
	if (o->snaps && (o->group || o->no_track)) {
		free(j);
		return bdev_err_set(e, EINVAL, "snapshots as change source exclude live backups and --no-track");
	}
	memset(b, 0, sizeof(*b));
	clock_gettime(CLOCK_REALTIME, &t0);
	c0 = bkp_now_coarse();
	rc = bkp_id_new(t0, b->id);
	if (rc) {
		bdev_err_set(e, -rc, "random bytes: %s", strerror(-rc));
		goto out;
	}
	b->time = t0.tv_sec;
	b->time_nsec = (uint32_t)t0.tv_nsec;
	b->virtual_size = src->size;
	b->chunk_size = r->chunk_size;
	describe(src, o->source, b);
	if (o->group) {
		snprintf(b->group, sizeof(b->group), "%s", o->group);
		b->vm_lun = o->vm_lun;
		b->freeze_window_us = o->freeze_window_us;
	}

	/* Register before touching any chunk (gc's cutoff). */
	wfd = bkp_writer_register(r, b->id, c0, e);
	if (wfd < 0) {
		rc = wfd;
		goto out;
	}
	if (o->snaps) {
		rc = snap_begin(r, o, b, &src, &taken, &base, &bx, &have_base,
				why, sizeof(why), e);
		if (rc)
			goto out;
	} else if (o->group && o->frozen_ctk && o->source && !o->no_track) {
		char fwhy[sizeof(why) - 40];

		ctk = bkp_ctk_begin_frozen(src, o->source, o->frozen_ctk, fwhy,
					   sizeof(fwhy));
		valid = ctk != NULL;
		if (!ctk)
			snprintf(why, sizeof(why), "frozen tracking file: %s", fwhy);
	} else if (o->source && !o->no_track && !o->group) {
		ctk = bkp_ctk_begin(src, o->source, &valid, why, sizeof(why));
	} else {
		snprintf(why, sizeof(why), "change tracking not used");
	}
	if (ctk) {
		bkp_ctk_ids(ctk, b->ctk_generation, &b->ctk_since);
		if (valid && !o->full)
			have_base = find_base(r, b->ctk_generation,
					      bkp_ctk_epoch(ctk), NULL, src->size,
					      &base, &bx, why, sizeof(why));
		if (o->full)
			snprintf(why, sizeof(why), "full backup requested");
	}

	j->r = r;
	j->src = src;
	j->deep = o->full;
	j->size = src->size;
	j->cs = r->chunk_size;
	j->n = j->size / j->cs + (j->size % j->cs != 0);
	j->d = calloc(j->n ? j->n : 1, BKP_DIGEST);
	j->reuse = calloc(j->n ? j->n : 1, 1);
	if (!j->d || !j->reuse) {
		rc = bdev_err_set(e, ENOMEM, "out of memory");
		goto out;
	}
	if (have_base) {
		for (uint64_t i = 0; i < j->n; i++) {
			uint64_t off = i * j->cs;
			uint64_t len = UTIL_MIN((uint64_t)j->cs, j->size - off);

			if (ctk ? !bkp_ctk_changed(ctk, base.ctk_since, off, len)
				: !o->snaps->changed(o->snaps->opaque, off, len)) {
				memcpy(j->d[i], bx.d[i], BKP_DIGEST);
				j->reuse[i] = 1;
			}
		}
		b->incremental = true;
		snprintf(b->parent, sizeof(b->parent), "%s", base.id);
		why[0] = '\0';
	}
	snprintf(b->reason, sizeof(b->reason), "%s", why);

	rc = run_workers(j, o->threads, o->progress, o->opaque, o->cancel, e);
	if (!rc)
		rc = bkp_sync_repo(r, e);
	if (rc)
		goto out;

	if (taken) {
		/* A snapshot: one point in time, as after a crash. */
		snprintf(b->consistency, sizeof(b->consistency), "crash");
	} else if (!ctk) {
		snprintf(b->consistency, sizeof(b->consistency), "%s",
			 o->group ? o->consistency : "unverified");
	} else if (bkp_ctk_end(ctk)) {
		snprintf(b->consistency, sizeof(b->consistency), "%s",
			 o->group ? o->consistency : "offline");
	} else {
		/* Written while we read it: not a point-in-time image, and
		 * tracking cannot say what changed after it. */
		snprintf(b->consistency, sizeof(b->consistency), "inconsistent");
		b->ctk_generation[0] = '\0';
		b->ctk_since = 0;
	}
	ctk = NULL;
	b->chunks = j->n;
	b->chunks_zero = j->chunks_zero;
	b->chunks_read = j->chunks_read;
	b->chunks_new = j->chunks_new;
	b->chunks_replaced = j->chunks_replaced;
	b->bytes_read = j->bytes_read;
	b->bytes_new = j->bytes_new;
	b->bytes_stored = j->bytes_stored;
	x.chunk_size = j->cs;
	x.virtual_size = j->size;
	x.n = j->n;
	x.d = j->d;
	rc = bkp_index_write(r, b->id, &x, b->index_sha256, e);
	if (rc)
		goto out;
	clock_gettime(CLOCK_REALTIME, &t1);
	b->seconds = (double)(t1.tv_sec - t0.tv_sec) +
		     (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	/* The manifest makes the backup visible. */
	rc = bkp_manifest_write(r, b, e);
	if (rc && rc != -EEXIST) {
		/* -EEXIST: a different manifest holds this ID (ours would
		 * have read back equal): its index is not ours to remove. */
		char key[BKP_ID_MAX + 16];

		snprintf(key, sizeof(key), "backups/%s.idx", b->id);
		(void)bkp_os_delete(r, key, NULL);
	}
out:
	if (taken)
		o->snaps->end(o->snaps->opaque, rc == 0);
	bkp_ctk_abort(ctk);
	if (wfd >= 0)
		bkp_writer_unregister(r, b->id, wfd);
	bkp_index_free(&bx);
	free(j->d);
	free(j->reuse);
	free(j);
	return rc;
}
