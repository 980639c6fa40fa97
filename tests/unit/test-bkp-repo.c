/* The repository through the library: full and incremental backups of raw
 * files (deduplication and counts), restore byte for byte, verify naming
 * damage, the prune rules on synthetic times, and gc's grace rule with a
 * registered running backup; what a backup records of its source (format,
 * disk id) for raw files, VHDs of each type and a disk under a layer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/bkp-int.h"
#include "common/util.h"
#include "vhd/vhd.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

struct fx {
	char dir[64];
	char repo[128];
	char src[128];
	struct bkp_repo *r;
};

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		p[i] = (uint8_t)seed;
	}
}

static void write_at(const char *path, uint64_t off, size_t len, uint64_t seed)
{
	uint8_t *buf = malloc(len);
	int fd = open(path, O_WRONLY | O_CREAT, 0644);

	assert_true(fd >= 0);
	fill(buf, len, seed);
	assert_int_equal(util_pwrite_full(fd, buf, len, off), 0);
	close(fd);
	free(buf);
}

static struct fx *make(uint32_t chunk)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct bdev_err e = { 0 };

	strcpy(f->dir, "/tmp/test-bkp-repo-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->src, sizeof(f->src), "%s/disk.raw", f->dir);
	if (bkp_init(f->repo, chunk, &e))
		fail_msg("init: %s", e.msg);
	f->r = bkp_open(f->repo, &e);
	if (!f->r)
		fail_msg("open: %s", e.msg);
	return f;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[200];

	bkp_close(f->r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int setup_small(void **state)
{
	*state = make(64 * KiB);
	return 0;
}

static int setup_default(void **state)
{
	*state = make(0);
	return 0;
}

static void backup(struct fx *f, bool full, struct bkp_info *out)
{
	struct bdev_err e = { 0 };
	struct bdev *b = bdev_file_open(f->src, BDEV_OPEN_RDONLY, &e);
	struct bkp_create_opts o = { .source = f->src, .full = full, .threads = 3 };

	assert_non_null(b);
	if (bkp_create(f->r, b, &o, out, &e))
		fail_msg("create: %s", e.msg);
	bdev_close(b);
}

static void files_equal(const char *a, const char *b)
{
	char *x, *y;
	size_t nx, ny;

	assert_int_equal(bkp_read_file(a, 1u << 30, &x, &nx), 0);
	assert_int_equal(bkp_read_file(b, 1u << 30, &y, &ny), 0);
	assert_int_equal(nx, ny);
	assert_memory_equal(x, y, nx);
	free(x);
	free(y);
}

/* Entries of folder dir whose name starts with prefix. */
static int count_entries(const char *dir, const char *prefix)
{
	DIR *dd = opendir(dir);
	int n = 0;

	assert_non_null(dd);
	for (struct dirent *de; (de = readdir(dd)); )
		n += !strncmp(de->d_name, prefix, strlen(prefix));
	closedir(dd);
	return n;
}

/* An image maker that creates its file, then refuses (as one refusing a
 * size its format cannot hold after it started would). */
static struct bdev *refuse_image(void *opaque, const char *path, int format,
				 uint64_t size, uint32_t *piece, struct bdev_err *e)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);

	(void)opaque;
	(void)format;
	(void)piece;
	if (fd >= 0)
		close(fd);
	bdev_err_set(e, EINVAL, "this format cannot hold %llu bytes",
		     (unsigned long long)size);
	return NULL;
}

static uint64_t count_chunk_files(const struct fx *f)
{
	uint64_t n = 0;

	for (int i = 0; i < 256; i++) {
		char d[200];
		DIR *dd;

		snprintf(d, sizeof(d), "%s/chunks/%02x", f->repo, i);
		dd = opendir(d);
		assert_non_null(dd);
		for (struct dirent *de; (de = readdir(dd)); )
			n += de->d_name[0] != '.';
		closedir(dd);
	}
	return n;
}

/* 3 MiB + 1000 bytes: random, a duplicate of an earlier chunk, zeros, an
 * odd tail; chunk size 64 KiB. */
static void test_full_dedup_restore(void **state)
{
	struct fx *f = *state;
	struct bkp_restore_opts ro = { .format = BKP_OUT_RAW };
	struct bdev_err e = { 0 };
	struct bkp_info b, c;
	char out[200];
	uint8_t *blk = malloc(64 * KiB);
	int fd;

	write_at(f->src, 0, 1 * MiB, 1);                 /* 16 chunks */
	fill(blk, 64 * KiB, 1);                           /* = chunk 0 */
	fd = open(f->src, O_WRONLY);
	assert_int_equal(util_pwrite_full(fd, blk, 64 * KiB, 2 * MiB), 0);
	close(fd);
	free(blk);
	write_at(f->src, 3 * MiB, 1000, 2);               /* short tail */
	backup(f, false, &b);
	assert_int_equal(b.chunks, 49);
	assert_int_equal(b.chunks_zero, 49 - 16 - 1 - 1);
	assert_int_equal(b.chunks_new, 17);               /* the duplicate once */
	assert_false(b.incremental);
	assert_int_equal(b.virtual_size, 3 * MiB + 1000);
	assert_int_equal(count_chunk_files(f), 17);
	assert_string_equal(b.consistency, "offline");

	snprintf(out, sizeof(out), "%s/out.raw", f->dir);
	if (bkp_restore(f->r, b.id, out, &ro, &e))
		fail_msg("restore: %s", e.msg);
	files_equal(f->src, out);
	/* Not over an existing file, unless asked. */
	assert_int_equal(bkp_restore(f->r, b.id, out, &ro, &e), -EEXIST);
	ro.overwrite = true;
	assert_int_equal(bkp_restore(f->r, "latest", out, &ro, &e), 0);
	files_equal(f->src, out);
	/* Other formats need the caller's image maker ... */
	ro.format = BKP_OUT_DYNAMIC;
	snprintf(out, sizeof(out), "%s/out.vhd", f->dir);
	assert_int_equal(bkp_restore(f->r, b.id, out, &ro, &e), -EINVAL);
	assert_int_equal(access(out, F_OK), -1);
	/* ... whose refusal names the backup, and leaves nothing behind
	 * (not even the file it created before failing) */
	ro.create = refuse_image;
	assert_int_equal(bkp_restore(f->r, b.id, out, &ro, &e), -EINVAL);
	assert_non_null(strstr(e.msg, b.id));
	assert_non_null(strstr(e.msg, "cannot hold"));
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(count_entries(f->dir, ".out.vhd"), 0);
	ro.create = NULL;

	/* The same data again: all deduplicated, nothing new. */
	backup(f, true, &c);
	assert_int_equal(c.chunks_new, 0);
	assert_int_equal(c.bytes_stored, 0);
	assert_int_equal(count_chunk_files(f), 17);
	assert_string_equal(c.reason, "full backup requested");
}

/* 32 MiB raw at 4 MiB chunks: writes through a tracked bdev in 2 chunks
 * make the next backup read exactly those 2. */
static void test_incremental_reads_changed(void **state)
{
	struct fx *f = *state;
	struct bkp_restore_opts ro = { .format = BKP_OUT_RAW };
	struct bdev_err e = { 0 };
	struct bkp_info a, b;
	struct bkp_track *t;
	struct bdev *w;
	char out[200];
	uint8_t buf[512];

	write_at(f->src, 0, 32 * MiB, 5);
	backup(f, false, &a);
	assert_int_equal(a.chunks_read, 8);
	assert_non_null(strstr(a.reason, "first backup"));

	w = bdev_file_open(f->src, 0, &e);
	assert_non_null(w);
	t = bkp_track_attach(w, f->src, &e);
	if (!t)
		fail_msg("attach: %s", e.msg);
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(bdev_write(w, buf, 9 * MiB, sizeof(buf), 0), 0);
	assert_int_equal(bdev_write(w, buf, 31 * MiB, sizeof(buf), 0), 0);
	bdev_close(w);
	assert_int_equal(bkp_track_close(t, &e), 0);

	backup(f, false, &b);
	assert_true(b.incremental);
	assert_string_equal(b.parent, a.id);
	assert_int_equal(b.chunks_read, 2);
	assert_int_equal(b.chunks_new, 2);
	snprintf(out, sizeof(out), "%s/out.raw", f->dir);
	assert_int_equal(bkp_restore(f->r, b.id, out, &ro, &e), 0);
	files_equal(f->src, out);
}

struct lines {
	char text[8192];
};

static void collect(void *opaque, const char *msg)
{
	struct lines *l = opaque;
	size_t n = strlen(l->text);

	snprintf(l->text + n, sizeof(l->text) - n, "%s\n", msg);
}

static void test_verify_names_damage(void **state)
{
	struct fx *f = *state;
	struct bkp_verify_result res;
	struct bdev_err e = { 0 };
	struct bkp_info a, b;
	struct lines l = { "" };
	char path[PATH_MAX], hex[65], needle[120];
	struct bkp_index x;
	int fd;

	write_at(f->src, 0, 256 * KiB, 11);
	backup(f, false, &a);
	write_at(f->src, 0, 64 * KiB, 12);     /* chunk 0 differs in b */
	backup(f, false, &b);
	assert_int_equal(bkp_verify(f->r, NULL, 2, collect, &l, &res, &e), 0);
	assert_int_equal(res.backups_damaged + res.chunks_damaged, 0);
	assert_int_equal(res.chunks, 5);

	/* Damage a's chunk 0 (only a has it). */
	assert_int_equal(bkp_index_read(f->r, a.id, a.index_sha256, &x, path,
					sizeof(path)), 0);
	bkp_chunk_path(f->r, x.d[0], path, sizeof(path));
	bkp_hex(x.d[0], BKP_DIGEST, hex);
	bkp_index_free(&x);
	fd = open(path, O_WRONLY);
	assert_int_equal(util_pwrite_full(fd, "\x01", 1, 1000), 0);
	close(fd);
	assert_int_equal(bkp_verify(f->r, NULL, 2, collect, &l, &res, &e), 0);
	assert_int_equal(res.chunks_damaged, 1);
	assert_int_equal(res.backups_damaged, 1);
	snprintf(needle, sizeof(needle), "chunk %s: payload checksum mismatch", hex);
	assert_non_null(strstr(l.text, needle));
	snprintf(needle, sizeof(needle), "backup %s: 1 of 4 chunks", a.id);
	assert_non_null(strstr(l.text, needle));
	assert_null(strstr(l.text, b.id));
	/* Verifying b alone finds nothing. */
	l.text[0] = '\0';
	assert_int_equal(bkp_verify(f->r, b.id, 2, collect, &l, &res, &e), 0);
	assert_int_equal(res.backups_damaged + res.chunks_damaged, 0);
	assert_string_equal(l.text, "");
}

/* Times in UTC: 2025-03-03 (Monday) 10:00 and back. */
static void test_prune_rules(void **state)
{
	const int64_t day = 86400, t0 = 1740996000;
	int64_t t[12];
	bool keep[12];
	char why[12][64];
	struct bkp_prune_opts o = { 0 };

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	/* Newest first: two today, one a day for 5 days, then weekly. */
	t[0] = t0;
	t[1] = t0 - 3600;
	for (int i = 2; i < 7; i++)
		t[i] = t0 - (i - 1) * day;
	for (int i = 7; i < 12; i++)
		t[i] = t0 - (i - 1) * 7 * day;
	o.keep_last = 1;
	bkp_prune_select(t, 12, &o, keep, why);
	assert_true(keep[0]);
	for (int i = 1; i < 12; i++)
		assert_false(keep[i]);
	assert_string_equal(why[0], "last");

	o.keep_last = 0;
	o.keep_daily = 3;
	bkp_prune_select(t, 12, &o, keep, why);
	/* Newest of today, yesterday, the day before. */
	assert_true(keep[0] && !keep[1] && keep[2] && keep[3] && !keep[4]);
	assert_string_equal(why[2], "daily");

	o.keep_daily = 0;
	o.keep_weekly = 2;
	bkp_prune_select(t, 12, &o, keep, why);
	/* Monday t0 is alone in its ISO week; the next week's newest is
	 * Sunday (t[2]). */
	assert_true(keep[0] && !keep[1] && keep[2]);
	for (int i = 3; i < 12; i++)
		assert_false(keep[i]);

	o.keep_weekly = 0;
	o.keep_monthly = 2;
	bkp_prune_select(t, 12, &o, keep, why);
	/* The newest of March (t0) and the newest of February. */
	int febs = 0, kept = 0;
	for (int i = 0; i < 12; i++) {
		kept += keep[i];
		if (keep[i] && i)
			febs++;
	}
	assert_true(keep[0]);
	assert_int_equal(kept, 2);
	assert_int_equal(febs, 1);
	for (int i = 0; i < 12; i++)
		if (keep[i] && i) {
			time_t tt = (time_t)t[i];
			struct tm tm;

			gmtime_r(&tt, &tm);
			assert_int_equal(tm.tm_mon, 1);   /* February */
			for (int k = 0; k < i; k++) {
				time_t tk = (time_t)t[k];

				gmtime_r(&tk, &tm);
				assert_int_equal(tm.tm_mon, 2);   /* newer: March */
			}
		}
	o.keep_monthly = 0;
	o.keep_last = 2;
	o.keep_daily = 2;
	bkp_prune_select(t, 12, &o, keep, why);
	assert_string_equal(why[0], "last, daily");
	assert_string_equal(why[1], "last");
	assert_string_equal(why[2], "daily");
}

static void sleep_tick(void)
{
	struct timespec d = { 0, 30 * 1000 * 1000 };

	nanosleep(&d, NULL);
}

/* gc: unreferenced chunks go, except those a running backup touched
 * after its registration; a dead backup's registration is removed. */
static void test_gc_grace_rule(void **state)
{
	struct fx *f = *state;
	struct bkp_gc_opts go = { .grace = 0 };
	struct bkp_gc_result res;
	struct bdev_err e = { 0 };
	struct bkp_info a;
	struct bkp_index x;
	struct bkp_store st;
	char why[200], wpath[200];
	int wfd, dead;

	write_at(f->src, 0, 512 * KiB, 21);                 /* 8 chunks */
	backup(f, false, &a);
	assert_int_equal(bkp_index_read(f->r, a.id, NULL, &x, why, sizeof(why)), 0);
	assert_int_equal(bkp_forget(f->r, a.id, &e), 0);
	sleep_tick();

	/* A dead backup (registration lock released) and a live one. */
	dead = bkp_writer_register(f->r, "20000101T000000Z-00000000",
				   (struct timespec){ 1, 0 }, &e);
	assert_true(dead >= 0);
	close(dead);
	wfd = bkp_writer_register(f->r, "20990101T000000Z-11111111",
				  bkp_now_coarse(), &e);
	assert_true(wfd >= 0);
	/* The live backup uses chunks 0 and 1 (dedup): it touches them. */
	assert_int_equal(bkp_store_init(&st, f->r, &e), 0);
	assert_int_equal(bkp_store_touch(&st, x.d[0]), 0);
	assert_int_equal(bkp_store_touch(&st, x.d[1]), 0);
	bkp_store_fini(&st);

	assert_int_equal(bkp_gc(f->r, &go, &res, &e), 0);
	assert_int_equal(res.chunks, 8);
	assert_int_equal(res.removed, 6);
	assert_int_equal(res.kept_grace, 2);
	assert_int_equal(count_chunk_files(f), 2);
	snprintf(wpath, sizeof(wpath), "%s/writers/20000101T000000Z-00000000",
		 f->repo);
	assert_int_equal(access(wpath, F_OK), -1);   /* dead one removed */

	/* Once the backup is gone, the rest goes too. */
	bkp_writer_unregister(f->r, "20990101T000000Z-11111111", wfd);
	sleep_tick();
	assert_int_equal(bkp_gc(f->r, &go, &res, &e), 0);
	assert_int_equal(res.removed, 2);
	assert_int_equal(count_chunk_files(f), 0);
	/* The default grace keeps young garbage. */
	backup(f, false, &a);
	assert_int_equal(bkp_forget(f->r, a.id, &e), 0);
	go.grace = -1;
	assert_int_equal(bkp_gc(f->r, &go, &res, &e), 0);
	assert_int_equal(res.removed, 0);
	assert_int_equal(res.kept_grace, 8);
	bkp_index_free(&x);
}

/* A disk whose first read also changes the file behind it, like a foreign
 * writer during the backup. */
struct meddling {
	struct bdev b;
	struct bdev *inner;
	const char *path;
	bool done;
};

static int med_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	struct meddling *m = (struct meddling *)b;

	if (!__atomic_exchange_n(&m->done, true, __ATOMIC_SEQ_CST)) {
		int fd = open(m->path, O_WRONLY);

		assert_int_equal(util_pwrite_full(fd, "meddle", 6, 12345), 0);
		close(fd);
	}
	return bdev_read(m->inner, buf, off, len);
}

static void med_close(struct bdev *b)
{
	bdev_fini(b);
}

static const struct bdev_ops med_ops = {
	.kind = "meddling", .read = med_read, .close = med_close,
};

static void test_changed_during_backup(void **state)
{
	struct fx *f = *state;
	struct bkp_create_opts o = { .source = f->src, .full = true };
	struct bdev_err e = { 0 };
	struct meddling m = { .path = f->src };
	struct bkp_info a, b;

	write_at(f->src, 0, 1 * MiB, 31);
	backup(f, false, &a);                     /* creates the .ctk */
	assert_string_equal(a.consistency, "offline");
	m.inner = bdev_file_open(f->src, BDEV_OPEN_RDONLY, &e);
	assert_non_null(m.inner);
	assert_int_equal(bdev_init(&m.b, &med_ops, f->src, m.inner->size, 512, true), 0);
	if (bkp_create(f->r, &m.b, &o, &b, &e))
		fail_msg("create: %s", e.msg);
	bdev_close(&m.b);
	bdev_close(m.inner);
	assert_string_equal(b.consistency, "inconsistent");
	assert_string_equal(b.ctk_generation, "");
	/* The tracking file no longer vouches for anything. */
	backup(f, false, &b);
	assert_false(b.incremental);
	assert_non_null(strstr(b.reason, "changed while a backup read it"));
	assert_string_equal(b.consistency, "offline");
}

/* Back up disk b from path and check the recorded format and disk id. */
static void check_described(struct fx *f, struct bdev *b, const char *path,
			    const char *format, const char *disk_id)
{
	struct bkp_create_opts o = { .source = path, .no_track = true };
	struct bdev_err e = { 0 };
	struct bkp_info out;

	assert_non_null(b);
	if (bkp_create(f->r, b, &o, &out, &e))
		fail_msg("create %s: %s", path, e.msg);
	assert_string_equal(out.source_format, format);
	assert_string_equal(out.disk_id, disk_id);
	bdev_close(b);
}

static void test_source_described(void **state)
{
	struct fx *f = *state;
	struct vhd_open_opts ro = { .flags = VHD_O_RDONLY };
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = 4 * MiB };
	struct bdev_err e = { 0 };
	static const char *const fmt[3] = { "vhd-dynamic", "vhd-fixed",
					    "vhd-differencing" };
	char base[200], child[200], fixed[200], want[64], u[40];
	struct vhd_info info;
	struct stat st;
	struct bdev *b, *l;

	/* A raw file: its device and inode. */
	write_at(f->src, 0, 64 * KiB, 1);
	assert_int_equal(stat(f->src, &st), 0);
	snprintf(want, sizeof(want), "raw:%llu:%llu",
		 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	check_described(f, bdev_file_open(f->src, BDEV_OPEN_RDONLY, &e), f->src,
			"raw", want);

	/* VHDs of each type: the type and the footer's UUID. */
	snprintf(base, sizeof(base), "%s/base.vhd", f->dir);
	snprintf(child, sizeof(child), "%s/child.vhd", f->dir);
	snprintf(fixed, sizeof(fixed), "%s/fixed.vhd", f->dir);
	assert_int_equal(vhd_create(base, &co, &e), 0);
	co.type = VHD_TYPE_FIXED;
	assert_int_equal(vhd_create(fixed, &co, &e), 0);
	co.type = VHD_TYPE_DIFF;
	co.parent = base;
	assert_int_equal(vhd_create(child, &co, &e), 0);
	for (int i = 0; i < 3; i++) {
		const char *path = i == 0 ? base : i == 1 ? fixed : child;

		b = vhd_open(path, &ro, &e);
		assert_non_null(b);
		assert_int_equal(vhd_get_info(vhd_of(b), &info), 0);
		vhd_uuid_str(info.uuid, u);
		check_described(f, b, path, fmt[i], u);
	}

	/* Under a layer (change tracking's observe layer): the disk below. */
	b = vhd_open(child, &ro, &e);
	assert_non_null(b);
	l = bdev_observe_open(b, true, NULL, NULL, &e);
	if (!l)
		fail_msg("observe: %s", e.msg);
	check_described(f, l, child, "vhd-differencing", u);
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	struct bdev_err e = { 0 };
	char p[200];
	int fd;

	assert_null(bkp_open(f->dir, &e));
	assert_non_null(strstr(e.msg, "not a backup repository"));
	assert_int_equal(bkp_init(f->repo, 0, &e), -EEXIST);
	snprintf(p, sizeof(p), "%s/other", f->dir);
	assert_int_equal(bkp_init(p, 3000, &e), -EINVAL);
	snprintf(p, sizeof(p), "%s/repo.json", f->repo);
	fd = open(p, O_WRONLY | O_TRUNC);
	assert_int_equal(util_pwrite_full(fd, "{\"format\": \"vhdstack-backup\", \"version\": 9}", 43, 0), 0);
	close(fd);
	assert_null(bkp_open(f->repo, &e));
	assert_non_null(strstr(e.msg, "version 9 is not supported"));
}

/* A cancelled backup (the flag a signal handler sets) stops with
 * -ECANCELED and leaves no backup; worker failures come back as -errno. */
static void test_cancel(void **state)
{
	struct fx *f = *state;
	static volatile sig_atomic_t stop = 1;
	struct bdev_err e = { 0 };
	struct bkp_create_opts o = { .source = f->src, .threads = 2, .cancel = &stop };
	struct bkp_info b, *v;
	struct bdev *src;
	size_t n;

	write_at(f->src, 0, 8 * MiB, 9);
	src = bdev_file_open(f->src, BDEV_OPEN_RDONLY, &e);
	assert_non_null(src);
	assert_int_equal(bkp_create(f->r, src, &o, &b, &e), -ECANCELED);
	assert_non_null(strstr(e.msg, "interrupted"));
	assert_int_equal(bkp_list(f->r, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	free(v);
	stop = 0;
	assert_int_equal(bkp_create(f->r, src, &o, &b, &e), 0);
	bdev_close(src);
}

/* The manifest's optional "snapshot" key (a disk's own snapshot as change
 * source): absent for an ordinary backup, kept through write and read,
 * and an empty one is damage. */
static void test_manifest_snapshot(void **state)
{
	struct fx *f = *state;
	struct bdev_err e = { 0 };
	struct bkp_info b, got;
	char why[200], *path, *text, *key;
	FILE *fp;

	write_at(f->src, 0, 256 * KiB, 7);
	backup(f, false, &b);
	assert_string_equal(b.snapshot, "");
	assert_int_equal(bkp_manifest_read(f->r, b.id, &got, why, sizeof(why)), 0);
	assert_string_equal(got.snapshot, "");

	snprintf(b.snapshot, sizeof(b.snapshot), "vhdstack-bkp-%s", b.id);
	assert_int_equal(bkp_manifest_write(f->r, &b, &e), 0);
	assert_int_equal(bkp_manifest_read(f->r, b.id, &got, why, sizeof(why)), 0);
	assert_string_equal(got.snapshot, b.snapshot);
	assert_string_equal(got.index_sha256, b.index_sha256);

	text = bkp_info_json(&b);
	assert_non_null(text);
	key = strstr(text, "\"snapshot\": \"vhdstack-bkp-");
	assert_non_null(key);
	strcpy(key, "\"snapshot\": \"\"}");   /* the last key, now empty */
	path = bkp_path(f->r, "backups/%s.json", b.id);
	assert_non_null(path);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "%s\n", text);
	fclose(fp);
	assert_int_equal(bkp_manifest_read(f->r, b.id, &got, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "snapshot"));
	free(path);
	free(text);
}

/* A store that lists one index but cannot answer whether its manifest
 * exists (an outage): the orphan listing gc deletes from must fail, not
 * call the backup an orphan. */
static int fake_head_rc;

static int fake_head(const struct bkp_repo *r, const char *key,
		     struct bkp_os_stat *st)
{
	(void)r;
	(void)key;
	(void)st;
	return fake_head_rc;
}

static int fake_list(const struct bkp_repo *r, const char *dir,
		     bkp_os_list_fn fn, void *opaque, struct bdev_err *e)
{
	(void)r;
	(void)e;
	assert_string_equal(dir, "backups");
	return fn(opaque, "20260101T000000Z-0a1b2c3d.idx", NULL);
}

static void test_orphans_need_a_clear_answer(void **state)
{
	static const struct bkp_os_ops ops = { .head = fake_head,
					       .list = fake_list };
	char url[] = "fake://";
	struct bkp_repo r = { .path = url, .os = &ops };
	struct bdev_err e = { 0 };
	char **ids = NULL;
	size_t n = 99;

	(void)state;
	fake_head_rc = -EIO;
	assert_int_equal(bkp_ids(&r, true, &ids, &n, &e), -EIO);
	assert_int_equal(e.code, EIO);
	assert_non_null(strstr(e.msg, "20260101T000000Z-0a1b2c3d.json"));

	fake_head_rc = -EACCES;
	assert_int_equal(bkp_ids(&r, true, &ids, &n, &e), -EACCES);

	fake_head_rc = 0;     /* the manifest is there: not an orphan */
	assert_int_equal(bkp_ids(&r, true, &ids, &n, &e), 0);
	assert_int_equal(n, 0);
	bkp_ids_free(ids, n);

	fake_head_rc = -ENOENT;   /* only a clear "absent" makes an orphan */
	assert_int_equal(bkp_ids(&r, true, &ids, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "20260101T000000Z-0a1b2c3d");
	bkp_ids_free(ids, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_dedup_restore, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_incremental_reads_changed, setup_default, teardown),
		cmocka_unit_test_setup_teardown(test_verify_names_damage, setup_small, teardown),
		cmocka_unit_test(test_prune_rules),
		cmocka_unit_test_setup_teardown(test_gc_grace_rule, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_changed_during_backup, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_source_described, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_snapshot, setup_small, teardown),
		cmocka_unit_test(test_orphans_need_a_clear_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
