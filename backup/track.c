/* Change tracking: IMAGE.ctk beside an image (format in
 * docs/backup-format.md, "Change-tracking file").
 *
 * For each granule (4 MiB) of the disk the file holds the tracking epoch
 * in which it was last written (0: not since the generation began).
 * Writers stamp granules with the file's current epoch; each backup
 * advances the epoch, so "written since backup B" is "mark >= B's since".
 *
 * Validity: the file is tied to the image by the UUID (VHD footer) and
 * device, inode, size, mtime and ctime of every layer of the chain, the
 * disk size and a random generation id.  A writer marks it "open" (durably)
 * before its first write and "clean" with the layers' new state when it
 * finishes; a file left "open" (crash), a layer whose state differs (a
 * foreign tool wrote it: ctime cannot be set back), a record whose
 * timestamps are not proven distinguishable from a later write ("racy",
 * below), or a "stale" flag (a second writer that could not take the lock)
 * make it invalid.  An invalid
 * file is reset to a new generation, so no earlier backup can serve as the
 * base of an incremental.
 *
 * Locking: whoever uses the file (a writer for its whole session, a backup
 * for its whole read) holds flock(LOCK_EX) on it, taken without waiting.
 */
#include "bkp-int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/util.h"
#include "vhd/vhd.h"

#define CTK_HDR        4096u
#define CTK_CRC_OFF    4088u   /* CRC-32 of bytes 0..4087 */
#define CTK_STALE_OFF  4092u   /* not covered by the CRC */
#define CTK_LAYERS_OFF 128u
#define CTK_LAYER_SIZE 64u
#define CTK_MAX_LAYERS 32
#define CTK_GRANULE    (4u << 20)
#define CTK_MAX_MARKS  (1u << 24)   /* 64 TiB at 4 MiB */

#define ST_CLEAN   1u
#define ST_OPEN    2u
#define ST_INVALID 3u

_Static_assert(CTK_LAYERS_OFF + CTK_MAX_LAYERS * CTK_LAYER_SIZE <= CTK_CRC_OFF,
	       "ctk layers fit the header");

struct layer_id {
	uint8_t uuid[16];        /* VHD footer UUID; zero for raw files */
	uint64_t dev, ino, size;
	int64_t mtime_sec, ctime_sec;
	uint32_t mtime_nsec, ctime_nsec;
};

struct ctk {
	uint32_t state, granule, epoch, nlayers, stale;
	uint64_t vsize, nmarks;
	uint8_t gen[16];
	/* When the layer records were proven (ctk_prove), on the tracking
	 * file's own filesystem clock (its mtime) and on the system clock;
	 * zero: not proven. */
	struct timespec proof_fs, proof_clock;
	struct layer_id layer[CTK_MAX_LAYERS];
	uint32_t *marks;
};

/* ---- encoding ---- */

static void put_le64(uint8_t *p, uint64_t v)
{
	util_put_le32(p, (uint32_t)v);
	util_put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)util_get_le32(p + 4) << 32 | util_get_le32(p);
}

static uint32_t marks_crc(const struct ctk *c)
{
	uint8_t buf[4096];
	uLong crc = crc32(0, NULL, 0);

	/* CRC of the little-endian array, in pieces. */
	for (uint64_t i = 0; i < c->nmarks; ) {
		size_t n = 0;

		for (; n < sizeof(buf) / 4 && i < c->nmarks; n++, i++)
			util_put_le32(buf + 4 * n, c->marks[i]);
		crc = crc32(crc, buf, (uInt)(4 * n));
	}
	return (uint32_t)crc;
}

static void encode_hdr(const struct ctk *c, uint8_t *h)
{
	memset(h, 0, CTK_HDR);
	memcpy(h, "vhdsctk\0", 8);
	util_put_le32(h + 8, 1);
	util_put_le32(h + 12, CTK_HDR);
	util_put_le32(h + 16, c->state);
	util_put_le32(h + 20, c->granule);
	put_le64(h + 24, c->vsize);
	memcpy(h + 32, c->gen, 16);
	util_put_le32(h + 48, c->epoch);
	util_put_le32(h + 52, c->nlayers);
	put_le64(h + 56, c->nmarks);
	util_put_le32(h + 64, marks_crc(c));
	put_le64(h + 68, (uint64_t)c->proof_fs.tv_sec);
	util_put_le32(h + 76, (uint32_t)c->proof_fs.tv_nsec);
	put_le64(h + 80, (uint64_t)c->proof_clock.tv_sec);
	util_put_le32(h + 88, (uint32_t)c->proof_clock.tv_nsec);
	for (uint32_t i = 0; i < c->nlayers; i++) {
		uint8_t *l = h + CTK_LAYERS_OFF + i * CTK_LAYER_SIZE;
		const struct layer_id *x = &c->layer[i];

		memcpy(l, x->uuid, 16);
		put_le64(l + 16, x->dev);
		put_le64(l + 24, x->ino);
		put_le64(l + 32, x->size);
		put_le64(l + 40, (uint64_t)x->mtime_sec);
		util_put_le32(l + 48, x->mtime_nsec);
		util_put_le32(l + 52, x->ctime_nsec);
		put_le64(l + 56, (uint64_t)x->ctime_sec);
	}
	util_put_le32(h + CTK_CRC_OFF, (uint32_t)crc32(0, h, CTK_CRC_OFF));
	util_put_le32(h + CTK_STALE_OFF, c->stale);
}

/* Read and check the file; -EBADMSG with why when damaged. */
static int ctk_read(int fd, struct ctk *c, char *why, size_t wl)
{
	uint8_t h[CTK_HDR], *mb;
	int r;

	memset(c, 0, sizeof(*c));
	r = util_pread_full(fd, h, CTK_HDR, 0, false);
	if (r) {
		snprintf(why, wl, "tracking file is truncated or unreadable");
		return -EBADMSG;
	}
	if (memcmp(h, "vhdsctk\0", 8) || util_get_le32(h + 8) != 1 ||
	    util_get_le32(h + 12) != CTK_HDR ||
	    util_get_le32(h + CTK_CRC_OFF) != (uint32_t)crc32(0, h, CTK_CRC_OFF)) {
		snprintf(why, wl, "tracking file header is damaged");
		return -EBADMSG;
	}
	c->state = util_get_le32(h + 16);
	c->granule = util_get_le32(h + 20);
	c->vsize = get_le64(h + 24);
	memcpy(c->gen, h + 32, 16);
	c->epoch = util_get_le32(h + 48);
	c->nlayers = util_get_le32(h + 52);
	c->nmarks = get_le64(h + 56);
	c->stale = util_get_le32(h + CTK_STALE_OFF);
	c->proof_fs.tv_sec = (time_t)get_le64(h + 68);
	c->proof_fs.tv_nsec = util_get_le32(h + 76);
	c->proof_clock.tv_sec = (time_t)get_le64(h + 80);
	c->proof_clock.tv_nsec = util_get_le32(h + 88);
	if (c->proof_fs.tv_nsec >= 1000000000 ||
	    c->proof_clock.tv_nsec >= 1000000000) {
		snprintf(why, wl, "tracking file header has bad fields");
		return -EBADMSG;
	}
	if (!util_is_pow2(c->granule) || c->granule < 4096 ||
	    c->nlayers < 1 || c->nlayers > CTK_MAX_LAYERS ||
	    c->nmarks > CTK_MAX_MARKS ||
	    c->nmarks != c->vsize / c->granule + (c->vsize % c->granule != 0)) {
		snprintf(why, wl, "tracking file header has bad fields");
		return -EBADMSG;
	}
	for (uint32_t i = 0; i < c->nlayers; i++) {
		const uint8_t *l = h + CTK_LAYERS_OFF + i * CTK_LAYER_SIZE;
		struct layer_id *x = &c->layer[i];

		memcpy(x->uuid, l, 16);
		x->dev = get_le64(l + 16);
		x->ino = get_le64(l + 24);
		x->size = get_le64(l + 32);
		x->mtime_sec = (int64_t)get_le64(l + 40);
		x->mtime_nsec = util_get_le32(l + 48);
		x->ctime_nsec = util_get_le32(l + 52);
		x->ctime_sec = (int64_t)get_le64(l + 56);
	}
	c->marks = calloc(c->nmarks ? c->nmarks : 1, sizeof(uint32_t));
	mb = malloc(c->nmarks * 4 + 1);
	if (!c->marks || !mb) {
		free(mb);
		snprintf(why, wl, "out of memory");
		return -ENOMEM;
	}
	r = util_pread_full(fd, mb, c->nmarks * 4, CTK_HDR, false);
	for (uint64_t i = 0; !r && i < c->nmarks; i++)
		c->marks[i] = util_get_le32(mb + 4 * i);
	free(mb);
	if (r || marks_crc(c) != util_get_le32(h + 64)) {
		snprintf(why, wl, "tracking file marks are damaged");
		return -EBADMSG;
	}
	return 0;
}

/* Write marks and header (the stale word only when with_stale: a reset),
 * then fdatasync. */
static int ctk_write(int fd, const struct ctk *c, bool marks, bool with_stale)
{
	uint8_t h[CTK_HDR];
	int r = 0;

	if (marks) {
		uint8_t *mb = malloc(c->nmarks * 4 + 1);

		if (!mb)
			return -ENOMEM;
		for (uint64_t i = 0; i < c->nmarks; i++)
			util_put_le32(mb + 4 * i, c->marks[i]);
		r = util_pwrite_full(fd, mb, c->nmarks * 4, CTK_HDR);
		free(mb);
		if (!r && ftruncate(fd, (off_t)(CTK_HDR + c->nmarks * 4)) < 0)
			r = -errno;
	}
	encode_hdr(c, h);
	if (!r)
		r = util_pwrite_full(fd, h, with_stale ? CTK_HDR : CTK_STALE_OFF, 0);
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	return r;
}

/* ---- the image's identity ---- */

static void fill_stat(struct layer_id *x, const struct stat *st)
{
	x->dev = (uint64_t)st->st_dev;
	x->ino = (uint64_t)st->st_ino;
	x->size = (uint64_t)st->st_size;
	x->mtime_sec = st->st_mtim.tv_sec;
	x->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	x->ctime_sec = st->st_ctim.tv_sec;
	x->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
}

/* Layers of the disk b opened from path: real paths (malloc'd) and
 * identities.  -ENOTSUP for block devices and chains too deep. */
static int collect(struct bdev *b, const char *path,
		   char *paths[CTK_MAX_LAYERS], struct layer_id *ids,
		   uint32_t *n, char *why, size_t wl)
{
	struct vhd *v = vhd_of(b);
	struct stat st;

	*n = 0;
	memset(ids, 0, sizeof(*ids) * CTK_MAX_LAYERS);
	for (;;) {
		const char *p = v ? vhd_path(v) : path;

		if (*n == CTK_MAX_LAYERS) {
			snprintf(why, wl, "chain deeper than %d layers", CTK_MAX_LAYERS);
			return -ENOTSUP;
		}
		if (stat(p, &st) < 0) {
			snprintf(why, wl, "%s: %s", p, strerror(errno));
			return -errno;
		}
		if (!S_ISREG(st.st_mode)) {
			snprintf(why, wl, "not a regular file (block devices are not tracked)");
			return -ENOTSUP;
		}
		paths[*n] = realpath(p, NULL);
		if (!paths[*n]) {
			snprintf(why, wl, "%s: %s", p, strerror(errno));
			return -errno;
		}
		fill_stat(&ids[*n], &st);
		if (v) {
			struct vhd_info info;

			if (vhd_get_info(v, &info) == 0)
				memcpy(ids[*n].uuid, info.uuid, 16);
		}
		(*n)++;
		if (!v || !vhd_parent(v))
			return 0;
		v = vhd_of(vhd_parent(v));
		if (!v) {
			snprintf(why, wl, "chain has a parent that is not a VHD");
			return -ENOTSUP;
		}
	}
}

/* Re-stat saved paths, keeping the recorded UUIDs. */
static int restat(char *const *paths, uint32_t n, const struct layer_id *old,
		  struct layer_id *out)
{
	for (uint32_t i = 0; i < n; i++) {
		struct stat st;

		if (stat(paths[i], &st) < 0)
			return -errno;
		out[i] = old[i];
		fill_stat(&out[i], &st);
	}
	return 0;
}

static void free_paths(char **paths, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		free(paths[i]);
		paths[i] = NULL;
	}
}

static bool same_layers(const struct layer_id *a, const struct layer_id *b,
			uint32_t n, char *why, size_t wl)
{
	for (uint32_t i = 0; i < n; i++) {
		const char *what = NULL;

		if (memcmp(a[i].uuid, b[i].uuid, 16))
			what = "was replaced (its UUID differs)";
		else if (a[i].dev != b[i].dev || a[i].ino != b[i].ino)
			what = "was replaced by another file";
		else if (a[i].size != b[i].size || a[i].mtime_sec != b[i].mtime_sec ||
			 a[i].mtime_nsec != b[i].mtime_nsec ||
			 a[i].ctime_sec != b[i].ctime_sec ||
			 a[i].ctime_nsec != b[i].ctime_nsec)
			what = "was modified outside vhdstack (size, mtime or ctime differ)";
		if (what) {
			if (why)
				snprintf(why, wl, "change tracking invalid: %s %s",
					 i ? "a parent image" : "the image", what);
			return false;
		}
	}
	return true;
}

static struct timespec latest_change(const struct layer_id *x, uint32_t n)
{
	struct timespec t = { 0, 0 };

	for (uint32_t i = 0; i < n; i++) {
		struct timespec m = { x[i].mtime_sec, x[i].mtime_nsec };
		struct timespec c = { x[i].ctime_sec, x[i].ctime_nsec };

		if (bkp_ts_cmp(m, t) > 0)
			t = m;
		if (bkp_ts_cmp(c, t) > 0)
			t = c;
	}
	return t;
}

/* ---- racy timestamps ----
 *
 * A layer record (size, mtime, ctime) proves the file unchanged only if
 * any later write would give it a different timestamp.  The kernel
 * truncates timestamps to the filesystem's granularity (1 s on ext3, ext4
 * with 128-byte inodes, some NFS servers; 2 s on FAT), so a write in the
 * same second as the record would leave mtime and ctime exactly as
 * recorded.  Git calls such index entries "racy".  Rule: a record is
 * trusted only when it was proven, after it was taken, that the clock the
 * file's timestamps come from had moved past them:
 *  - a layer on the tracking file's filesystem (the usual case: the
 *    leaf, and parents in the same folder): its latest timestamp must be
 *    strictly before the tracking file's own mtime read after writing the
 *    record (the filesystem's clock at its own granularity; on NFS the
 *    server's clock, so client clock skew does not matter);
 *  - a layer on another filesystem: before the system clock at that
 *    moment, less 2 s (the coarsest granularity, FAT's) when the
 *    timestamps have no nanoseconds.
 * The proof is recorded in the header; a record without it (a crash
 * before it was written, files of older versions) is invalid. */

/* Whether layer x's record was proven by c's proof times; ctk_dev is the
 * device of the tracking file. */
static bool layer_proven(const struct ctk *c, const struct layer_id *x,
			 uint64_t ctk_dev)
{
	struct timespec last = latest_change(x, 1);

	if (x->dev == ctk_dev)
		return c->proof_fs.tv_sec > 0 && bkp_ts_cmp(last, c->proof_fs) < 0;
	if (!x->mtime_nsec && !x->ctime_nsec)
		last.tv_sec += 2;
	return c->proof_clock.tv_sec > 0 && bkp_ts_cmp(last, c->proof_clock) < 0;
}

/* Device of the open file fd (0 if unknown: then no layer matches and
 * the stricter clock rule applies). */
static uint64_t fd_dev(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_dev : 0;
}

static bool layers_proven(const struct ctk *c, uint64_t ctk_dev)
{
	for (uint32_t i = 0; i < c->nlayers; i++)
		if (!layer_proven(c, &c->layer[i], ctk_dev))
			return false;
	return true;
}

/* Prove the layer records of c (already written to fd, durably): rewrite
 * the header, which sets the tracking file's mtime to the filesystem's
 * "now", until that is past every recorded timestamp; then record the
 * proof.  Waits at most a few seconds (one second on a filesystem with
 * 1-second timestamps, a clock tick otherwise).  When it cannot prove
 * them (timestamps in the future) the record stays unproven, hence
 * invalid: the next backup reads everything.  The proof itself is not
 * made durable: losing it only costs a full backup. */
static int ctk_prove(int fd, struct ctk *c)
{
	static const struct timespec zero = { 0, 0 };
	uint8_t h[CTK_HDR];
	struct stat st;

	for (int i = 0; i < 500; i++) {
		struct timespec clk = bkp_now_coarse(), pause = { 0, 10000000 };

		c->proof_fs = c->proof_clock = zero;
		int r;

		encode_hdr(c, h);
		r = util_pwrite_full(fd, h, CTK_STALE_OFF, 0);
		if (r)
			return r;
		if (fstat(fd, &st) < 0)
			return -errno;
		c->proof_fs = st.st_mtim;
		c->proof_clock = clk;
		if (layers_proven(c, (uint64_t)st.st_dev)) {
			encode_hdr(c, h);
			return util_pwrite_full(fd, h, CTK_STALE_OFF, 0);
		}
		nanosleep(&pause, NULL);
	}
	c->proof_fs = c->proof_clock = zero;
	return 0;
}

/* Whether c describes the disk now (ids, n layers, size vsize); ctk_dev
 * is the tracking file's device. */
static bool ctk_valid(const struct ctk *c, const struct layer_id *ids,
		      uint32_t n, uint64_t vsize, uint64_t ctk_dev,
		      char *why, size_t wl)
{
	if (c->state == ST_OPEN) {
		snprintf(why, wl, "change tracking invalid: the last writer did not close it cleanly (crash, or still writing)");
		return false;
	}
	if (c->state != ST_CLEAN) {
		snprintf(why, wl, "change tracking invalid: the image changed while a backup read it, or a parent changed under a writer");
		return false;
	}
	if (c->stale) {
		snprintf(why, wl, "change tracking invalid: a second writer opened the image while tracking was held");
		return false;
	}
	if (c->vsize != vsize || c->granule != CTK_GRANULE) {
		snprintf(why, wl, "change tracking invalid: the disk size changed");
		return false;
	}
	if (c->nlayers != n) {
		snprintf(why, wl, "change tracking invalid: the chain changed (%u layers, was %u)",
			 n, c->nlayers);
		return false;
	}
	if (!same_layers(c->layer, ids, n, why, wl))
		return false;
	if (!layers_proven(c, ctk_dev)) {
		snprintf(why, wl, "change tracking invalid: the image's timestamps were recorded within the filesystem's timestamp resolution of a write, so a later write could not be told apart");
		return false;
	}
	return true;
}

/* A new generation for disk size vsize: epoch 1, no marks. */
static int ctk_reset(struct ctk *c, uint64_t vsize, const struct layer_id *ids,
		     uint32_t n, uint32_t state)
{
	int r;

	free(c->marks);
	memset(c, 0, sizeof(*c));
	c->granule = CTK_GRANULE;
	c->vsize = vsize;
	c->nmarks = vsize / CTK_GRANULE + (vsize % CTK_GRANULE != 0);
	if (c->nmarks > CTK_MAX_MARKS)
		return -EFBIG;
	c->marks = calloc(c->nmarks ? c->nmarks : 1, sizeof(uint32_t));
	if (!c->marks)
		return -ENOMEM;
	r = util_random(c->gen, sizeof(c->gen));
	if (r)
		return r;
	c->epoch = 1;
	c->state = state;
	c->nlayers = n;
	memcpy(c->layer, ids, n * sizeof(*ids));
	return 0;
}

static char *ctk_name(const char *image)
{
	char *p = NULL;

	return asprintf(&p, "%s.ctk", image) < 0 ? NULL : p;
}

/* Open (O_CREAT when create) and lock the tracking file without waiting.
 * -EWOULDBLOCK when another process holds it. */
static int ctk_open_locked(const char *path, bool create)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = -errno;

		close(fd);
		return r == -EAGAIN ? -EWOULDBLOCK : r;
	}
	return fd;
}

/* ---- the write side ---- */

struct bkp_track {
	int fd;
	struct ctk c;                    /* as marked open */
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

static bool is_tmpname(const char *path)
{
	const char *b = util_basename(path);

	return b[0] == '.' && strstr(b, ".tmp.");
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
	struct layer_id ids[CTK_MAX_LAYERS];
	struct bkp_track *t = NULL;
	char why[300], *ctk = NULL;
	uint32_t n = 0;
	int fd = -1, r;

	if (b->read_only || is_tmpname(image_path)) {
		bdev_err_set(e, ENOENT, "%s: not tracked", image_path);
		return NULL;
	}
	ctk = ctk_name(image_path);
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
	r = collect(b, image_path, t->paths, ids, &n, why, sizeof(why));
	if (r) {
		bdev_err_set(e, -r, "%s: not tracked: %s", image_path, why);
		goto fail;
	}
	fd = ctk_open_locked(ctk, create);
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
	r = ctk_read(fd, &t->c, why, sizeof(why));
	if (r == -ENOMEM)
		goto nomem;
	if (r || !ctk_valid(&t->c, ids, n, b->size, fd_dev(fd), why,
				 sizeof(why))) {
		/* Start a new generation: no backup can be its base. */
		r = ctk_reset(&t->c, b->size, ids, n, ST_OPEN);
		if (r)
			goto io_fail;
		r = ctk_write(fd, &t->c, true, true);
	} else {
		t->c.state = ST_OPEN;
		r = ctk_write(fd, &t->c, false, false);
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
		free_paths(t->paths, n);
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
	struct ctk c;		/* marks and epoch as of the freeze; layers unset */
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
	f->c.state = ST_CLEAN;
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
	struct ctk c = f->c;
	char *paths[CTK_MAX_LAYERS] = { 0 }, *tmp = NULL, why[300];
	uint32_t n = 0;
	int fd = -1, r;

	if (frozen->size != c.vsize) {
		bdev_err_set(e, EINVAL, "%s: the frozen image's size differs from the tracked size",
			     frozen_path);
		return -EINVAL;
	}
	r = collect(frozen, frozen_path, paths, c.layer, &n, why, sizeof(why));
	free_paths(paths, n);
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
	r = ctk_write(fd, &c, true, true);
	if (!r)
		r = ctk_prove(fd, &c);
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
	struct layer_id now[CTK_MAX_LAYERS];
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
	r = restat(t->paths, t->c.nlayers, t->c.layer, now);
	/* Only the leaf's writes were seen: a parent that changed meanwhile
	 * (a tool that opened it read-write too) changed what the disk
	 * reads without a record. */
	if (!r && !__atomic_load_n(&t->overflow, __ATOMIC_RELAXED) &&
	    same_layers(t->c.layer + 1, now + 1, t->c.nlayers - 1, NULL, 0)) {
		memcpy(t->c.layer, now, sizeof(now[0]) * t->c.nlayers);
		t->c.state = ST_CLEAN;
	} else {
		t->c.state = ST_INVALID;
	}
	/* Written unproven first: a crash before the proof leaves it
	 * invalid. */
	t->c.proof_fs.tv_sec = t->c.proof_clock.tv_sec = 0;
	r = ctk_write(t->fd, &t->c, true, false);
	/* Later writes by anyone must get a later timestamp than recorded. */
	if (!r && t->c.state == ST_CLEAN)
		r = ctk_prove(t->fd, &t->c);
	if (r)
		bdev_err_set(e, -r, "change-tracking file: cannot update: %s",
			     strerror(-r));
	close(t->fd);
	free(t->c.marks);
	free_paths(t->paths, t->c.nlayers);
	free(t);
	return r;
}

/* ---- the backup side ---- */

struct bkp_ctk_session {
	int fd;
	char *ctk;
	struct ctk c;
	uint32_t epoch_before;           /* marks <= this; valid sessions */
	char *paths[CTK_MAX_LAYERS];
	struct layer_id ids[CTK_MAX_LAYERS];  /* state at begin */
	uint32_t n;
	bool frozen;                     /* a frozen file: never written */
};

void bkp_ctk_abort(struct bkp_ctk_session *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->c.marks);
	free_paths(s->paths, s->n);
	free(s->ctk);
	free(s);
}

struct bkp_ctk_session *bkp_ctk_begin(struct bdev *src, const char *path,
				      bool *valid, char *why, size_t wl)
{
	struct bkp_ctk_session *s = calloc(1, sizeof(*s));
	bool created;
	int r;

	*valid = false;
	if (!s) {
		snprintf(why, wl, "out of memory");
		return NULL;
	}
	s->fd = -1;
	if (is_tmpname(path)) {
		snprintf(why, wl, "temporary files are not tracked");
		goto fail;
	}
	r = collect(src, path, s->paths, s->ids, &s->n, why, wl);
	if (r)
		goto fail;
	s->ctk = ctk_name(path);
	if (!s->ctk) {
		snprintf(why, wl, "out of memory");
		goto fail;
	}
	created = access(s->ctk, F_OK) < 0;
	s->fd = ctk_open_locked(s->ctk, true);
	if (s->fd == -EWOULDBLOCK) {
		snprintf(why, wl, "change tracking is held by a process writing the image");
		goto fail;
	}
	if (s->fd < 0) {
		snprintf(why, wl, "cannot open %s: %s", s->ctk, strerror(-s->fd));
		goto fail;
	}
	r = created ? -ENOENT : ctk_read(s->fd, &s->c, why, wl);
	if (created)
		snprintf(why, wl, "no change tracking yet (first backup of this image)");
	if (!r && ctk_valid(&s->c, s->ids, s->n, src->size, fd_dev(s->fd),
			    why, wl) &&
	    s->c.epoch < UINT32_MAX - 1) {
		*valid = true;
		s->epoch_before = s->c.epoch;
		s->c.epoch++;
		r = ctk_write(s->fd, &s->c, false, false);
	} else {
		/* A new record of the layers: proven before the backup
		 * reads, so that any write after that point shows. */
		r = ctk_reset(&s->c, src->size, s->ids, s->n, ST_CLEAN);
		if (!r)
			r = ctk_write(s->fd, &s->c, true, true);
		if (!r)
			r = ctk_prove(s->fd, &s->c);
	}
	if (r) {
		snprintf(why, wl, "cannot update %s: %s", s->ctk, strerror(-r));
		*valid = false;
		goto fail;
	}
	return s;
fail:
	bkp_ctk_abort(s);
	return NULL;
}

struct bkp_ctk_session *bkp_ctk_begin_frozen(struct bdev *src, const char *path,
					     const char *ctk_path, char *why, size_t wl)
{
	struct bkp_ctk_session *s = calloc(1, sizeof(*s));
	int r;

	if (!s) {
		snprintf(why, wl, "out of memory");
		return NULL;
	}
	s->frozen = true;
	s->fd = open(ctk_path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		snprintf(why, wl, "cannot open %s: %s", ctk_path, strerror(errno));
		goto fail;
	}
	r = collect(src, path, s->paths, s->ids, &s->n, why, wl);
	if (r)
		goto fail;
	if (ctk_read(s->fd, &s->c, why, wl) ||
	    !ctk_valid(&s->c, s->ids, s->n, src->size, fd_dev(s->fd), why, wl))
		goto fail;
	if (s->c.epoch >= UINT32_MAX - 1) {
		snprintf(why, wl, "change tracking invalid: the epoch is exhausted");
		goto fail;
	}
	/* The writer moved on to epoch + 1 at the freeze: memory only here. */
	s->epoch_before = s->c.epoch;
	s->c.epoch++;
	return s;
fail:
	bkp_ctk_abort(s);
	return NULL;
}

void bkp_ctk_ids(const struct bkp_ctk_session *s, char gen[33],
		 uint32_t *since)
{
	bkp_hex(s->c.gen, sizeof(s->c.gen), gen);
	*since = s->c.epoch;
}

uint32_t bkp_ctk_epoch(const struct bkp_ctk_session *s)
{
	return s->epoch_before;
}

bool bkp_ctk_changed(const struct bkp_ctk_session *s, uint32_t since,
		     uint64_t off, uint64_t len)
{
	uint64_t first = off / s->c.granule, last;

	if (!len)
		return false;
	last = (off + len - 1) / s->c.granule;
	if (last >= s->c.nmarks)
		return true;
	for (uint64_t i = first; i <= last; i++)
		if (s->c.marks[i] >= since)
			return true;
	return false;
}

bool bkp_ctk_end(struct bkp_ctk_session *s)
{
	struct layer_id now[CTK_MAX_LAYERS];
	bool same = restat(s->paths, s->n, s->ids, now) == 0 &&
		    same_layers(s->ids, now, s->n, NULL, 0);

	if (!same && !s->frozen) {
		s->c.state = ST_INVALID;
		(void)ctk_write(s->fd, &s->c, false, false);
	}
	bkp_ctk_abort(s);
	return same;
}
