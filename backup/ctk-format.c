/* Change tracking, the file format: IMAGE.ctk beside an image (format in
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
 *
 * This file holds what the writer side (track-writer.c) and the backup
 * side (ctk-backup.c) share: encoding and decoding the file, the image's
 * identity (its layers' files), validation and the proof of timestamps.
 */
#include "bkp-int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/util.h"

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

static uint32_t marks_crc(const struct bkp_ctkf *c)
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

static void encode_hdr(const struct bkp_ctkf *c, uint8_t *h)
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
		const struct bkp_ctk_layer *x = &c->layer[i];

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
int bkp_ctkf_read(int fd, struct bkp_ctkf *c, char *why, size_t wl)
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
		struct bkp_ctk_layer *x = &c->layer[i];

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
int bkp_ctkf_write(int fd, const struct bkp_ctkf *c, bool marks,
		   bool with_stale)
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

static void fill_stat(struct bkp_ctk_layer *x, const struct stat *st)
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
 * identities, the files bdev_file_info() names (a disk that describes no
 * file is the file at path).  -ENOTSUP for block devices and chains too
 * deep. */
int bkp_ctkf_collect(struct bdev *b, const char *path,
		     char *paths[CTK_MAX_LAYERS], struct bkp_ctk_layer *ids,
		     uint32_t *n, char *why, size_t wl)
{
	struct bdev_file_info fi;
	bool known = bdev_file_info(b, &fi) == 0;
	struct stat st;

	*n = 0;
	memset(ids, 0, sizeof(*ids) * CTK_MAX_LAYERS);
	for (;;) {
		const char *p = known ? fi.path : path;

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
		if (known)
			memcpy(ids[*n].uuid, fi.id, 16);
		(*n)++;
		if (!known || !fi.backing)
			return 0;
		if (bdev_file_info(fi.backing, &fi)) {
			snprintf(why, wl, "chain has a parent that names no file");
			return -ENOTSUP;
		}
	}
}

/* Re-stat saved paths, keeping the recorded UUIDs. */
int bkp_ctkf_restat(char *const *paths, uint32_t n,
		    const struct bkp_ctk_layer *old, struct bkp_ctk_layer *out)
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

void bkp_ctkf_free_paths(char **paths, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		free(paths[i]);
		paths[i] = NULL;
	}
}

bool bkp_ctkf_same_layers(const struct bkp_ctk_layer *a,
			  const struct bkp_ctk_layer *b, uint32_t n,
			  char *why, size_t wl)
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

static struct timespec latest_change(const struct bkp_ctk_layer *x, uint32_t n)
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
static bool layer_proven(const struct bkp_ctkf *c,
			 const struct bkp_ctk_layer *x, uint64_t ctk_dev)
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
uint64_t bkp_ctkf_fd_dev(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_dev : 0;
}

static bool layers_proven(const struct bkp_ctkf *c, uint64_t ctk_dev)
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
int bkp_ctkf_prove(int fd, struct bkp_ctkf *c)
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
bool bkp_ctkf_valid(const struct bkp_ctkf *c, const struct bkp_ctk_layer *ids,
		    uint32_t n, uint64_t vsize, uint64_t ctk_dev,
		    char *why, size_t wl)
{
	if (c->state == CTK_ST_OPEN) {
		snprintf(why, wl, "change tracking invalid: the last writer did not close it cleanly (crash, or still writing)");
		return false;
	}
	if (c->state != CTK_ST_CLEAN) {
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
	if (!bkp_ctkf_same_layers(c->layer, ids, n, why, wl))
		return false;
	if (!layers_proven(c, ctk_dev)) {
		snprintf(why, wl, "change tracking invalid: the image's timestamps were recorded within the filesystem's timestamp resolution of a write, so a later write could not be told apart");
		return false;
	}
	return true;
}

/* A new generation for disk size vsize: epoch 1, no marks. */
int bkp_ctkf_reset(struct bkp_ctkf *c, uint64_t vsize,
		   const struct bkp_ctk_layer *ids, uint32_t n, uint32_t state)
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

char *bkp_ctkf_name(const char *image)
{
	char *p = NULL;

	return asprintf(&p, "%s.ctk", image) < 0 ? NULL : p;
}

/* Open (O_CREAT when create) and lock the tracking file without waiting.
 * -EWOULDBLOCK when another process holds it. */
int bkp_ctkf_open_locked(const char *path, bool create)
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


bool bkp_ctkf_is_tmpname(const char *path)
{
	const char *b = util_basename(path);

	return b[0] == '.' && strstr(b, ".tmp.");
}
