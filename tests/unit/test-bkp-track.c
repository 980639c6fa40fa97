/* Change tracking on real files: writes through an attached bdev are
 * recorded per granule and survive close/reopen; anything that changes
 * the image behind its back (a plain write, a crashed writer, a second
 * writer, a changed parent, a damaged tracking file) makes it invalid.
 * Live backups: a running tracker frozen at a snapshot gives a frozen
 * tracking file for the frozen image, valid (backup side, read only) while
 * the tracker keeps running, with the marks as of the freeze; later writes
 * carry the next epoch. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup/bkp-int.h"
#include "common/util.h"
#include "vhd/vhd.h"

#define MiB (1u << 20)
#define G (4 * MiB)            /* the tracking granule */

struct fx {
	char dir[64];
	char img[128];
	char ctk[140];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	int fd;

	strcpy(f->dir, "/tmp/test-bkp-track-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->img, sizeof(f->img), "%s/disk.raw", f->dir);
	snprintf(f->ctk, sizeof(f->ctk), "%s.ctk", f->img);
	fd = open(f->img, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 40 * MiB), 0);
	assert_int_equal(util_pwrite_full(fd, "data", 4, 3 * MiB), 0);
	close(fd);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static struct bdev *open_raw(const char *path, bool rw)
{
	struct bdev_err e = { 0 };
	struct bdev *b = bdev_file_open(path, rw ? 0 : BDEV_OPEN_RDONLY, &e);

	if (!b)
		fail_msg("%s", e.msg);
	return b;
}

/* A backup's view: begin, note validity and ids, end.  Returns validity;
 * why gets the reason when invalid. */
static bool backup_view(const char *img, bool vhd, char gen[33],
			uint32_t *before, char *why, size_t wl,
			struct bkp_ctk_session **keep)
{
	struct bdev_err e = { 0 };
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY };
	struct bdev *b = vhd ? vhd_open(img, &o, &e) : open_raw(img, false);
	struct bkp_ctk_session *s;
	uint32_t since;
	bool valid;

	assert_non_null(b);
	why[0] = '\0';
	s = bkp_ctk_begin(b, img, &valid, why, wl);
	assert_non_null(s);
	bkp_ctk_ids(s, gen, &since);
	if (before)
		*before = valid ? bkp_ctk_epoch(s) : 0;
	if (keep)
		*keep = s;
	else
		assert_true(bkp_ctk_end(s));
	bdev_close(b);
	return valid;
}

static void test_no_ctk_no_tracking(void **state)
{
	struct fx *f = *state;
	struct bdev_err e = { 0 };
	struct bdev *b = open_raw(f->img, true);

	assert_null(bkp_track_attach(b, f->img, &e));
	assert_int_equal(e.code, ENOENT);
	assert_null(b->hook);
	bdev_close(b);
	assert_int_equal(access(f->ctk, F_OK), -1);
}

static void write_tracked(const char *img, bool vhd)
{
	struct bdev_err e = { 0 };
	struct vhd_open_opts o = { 0 };
	struct bdev *b = vhd ? vhd_open(img, &o, &e) : open_raw(img, true);
	struct bkp_track *t;
	uint8_t buf[8192];

	assert_non_null(b);
	t = bkp_track_attach(b, img, &e);
	if (!t)
		fail_msg("attach: %s", e.msg);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(bdev_write(b, buf, 1 * G + 100, 1000, 0), 0);    /* g1 */
	assert_int_equal(bdev_write_zeroes(b, 5 * G - 4096, 8192, 0), 0);  /* g4,g5 */
	assert_int_equal(bdev_discard(b, 8 * G, 4096), 0);                 /* g8 */
	bdev_close(b);
	assert_int_equal(bkp_track_close(t, &e), 0);
}

static void test_tracks_writes(void **state)
{
	struct fx *f = *state;
	struct bkp_ctk_session *s;
	char gen[33], gen2[33], why[300];
	uint32_t before, since;
	bool valid;

	/* The first backup creates the file: nothing to compare with. */
	assert_false(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	assert_non_null(strstr(why, "first backup"));
	write_tracked(f->img, false);

	valid = backup_view(f->img, false, gen2, &before, why, sizeof(why), &s);
	assert_true(valid);
	assert_string_equal(gen, gen2);
	assert_int_equal(before, 1);
	bkp_ctk_ids(s, gen2, &since);
	assert_int_equal(since, 2);
	for (int g = 0; g < 10; g++) {
		bool want = g == 1 || g == 4 || g == 5 || g == 8;

		if (bkp_ctk_changed(s, 1, (uint64_t)g * G, G) != want)
			fail_msg("granule %d: changed should be %d", g, want);
	}
	/* Ranges and partial overlaps. */
	assert_true(bkp_ctk_changed(s, 1, 2 * G - 1, 2));
	assert_false(bkp_ctk_changed(s, 1, 2 * G, 2 * G));
	assert_true(bkp_ctk_changed(s, 1, 0, 40 * MiB));
	assert_true(bkp_ctk_end(s));

	/* No writes since: nothing changed since epoch 2, but marks remain
	 * for a repository whose last backup is older. */
	assert_true(backup_view(f->img, false, gen2, &before, why, sizeof(why), &s));
	assert_int_equal(before, 2);
	assert_false(bkp_ctk_changed(s, 2, 0, 40 * MiB));
	assert_true(bkp_ctk_changed(s, 1, 1 * G, G));
	assert_true(bkp_ctk_end(s));
}

static void test_foreign_write_invalidates(void **state)
{
	struct fx *f = *state;
	char gen[33], gen2[33], why[300];
	int fd;

	assert_false(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	write_tracked(f->img, false);
	/* Straight to the file, as qemu-io or dd would: same size. */
	fd = open(f->img, O_WRONLY);
	assert_int_equal(util_pwrite_full(fd, "X", 1, 30 * MiB), 0);
	close(fd);
	assert_false(backup_view(f->img, false, gen2, NULL, why, sizeof(why), NULL));
	assert_non_null(strstr(why, "modified outside vhdstack"));
	assert_string_not_equal(gen, gen2);  /* a new generation */
	/* The reset file is valid again for the next one. */
	assert_true(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	assert_string_equal(gen, gen2);
}

static void test_crashed_writer_invalidates(void **state)
{
	struct fx *f = *state;
	char gen[33], why[300];
	pid_t pid;
	int st;

	assert_false(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct bdev_err e;
		struct bdev *b = bdev_file_open(f->img, 0, &e);

		if (!b || !bkp_track_attach(b, f->img, &e) ||
		    bdev_write(b, "crash", 5, 0, 0))
			_exit(1);
		_exit(0);   /* no close, no atexit: like SIGKILL */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_false(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	assert_non_null(strstr(why, "did not close it cleanly"));
}

static void test_second_writer_marks_stale(void **state)
{
	struct fx *f = *state;
	struct bkp_ctk_session *s;
	struct bdev_err e = { 0 };
	char gen[33], why[300];
	struct bdev *b;

	assert_false(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	/* A backup holds the file; a writer comes along. */
	backup_view(f->img, false, gen, NULL, why, sizeof(why), &s);
	b = open_raw(f->img, true);
	assert_null(bkp_track_attach(b, f->img, &e));
	assert_int_equal(e.code, EBUSY);
	bdev_close(b);
	assert_true(bkp_ctk_end(s));
	assert_false(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	assert_non_null(strstr(why, "second writer"));
}

static void test_damaged_file(void **state)
{
	struct fx *f = *state;
	char gen[33], why[300];
	int fd;

	assert_false(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	write_tracked(f->img, false);
	fd = open(f->ctk, O_WRONLY);
	assert_int_equal(util_pwrite_full(fd, "\xff", 1, 4096), 0);   /* a mark */
	close(fd);
	assert_false(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	assert_non_null(strstr(why, "damaged"));
	fd = open(f->ctk, O_WRONLY);
	assert_int_equal(ftruncate(fd, 100), 0);
	close(fd);
	assert_false(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	assert_non_null(strstr(why, "truncated"));
}

static void test_chain_parent_change(void **state)
{
	struct fx *f = *state;
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = 40 * MiB };
	struct bdev_err e = { 0 };
	char base[160], child[160], gen[33], why[300];
	int fd;

	snprintf(base, sizeof(base), "%s/base.vhd", f->dir);
	snprintf(child, sizeof(child), "%s/child.vhd", f->dir);
	assert_int_equal(vhd_create(base, &co, &e), 0);
	co.type = VHD_TYPE_DIFF;
	co.parent = base;
	assert_int_equal(vhd_create(child, &co, &e), 0);
	assert_false(backup_view(child, true, gen, NULL, why, sizeof(why), NULL));
	write_tracked(child, true);
	assert_true(backup_view(child, true, gen, NULL, why, sizeof(why), NULL));
	/* The parent's bytes change (same size): the child reads differently. */
	fd = open(base, O_WRONLY);
	assert_int_equal(util_pwrite_full(fd, "\0", 1, 511), 0);
	close(fd);
	assert_false(backup_view(child, true, gen, NULL, why, sizeof(why), NULL));
	assert_non_null(strstr(why, "a parent image"));

	/* The parent changes while a writer of the child has it open. */
	{
		struct vhd_open_opts o = { 0 };
		struct bdev *b = vhd_open(child, &o, &e);
		struct bkp_track *t;

		assert_non_null(b);
		t = bkp_track_attach(b, child, &e);
		assert_non_null(t);
		assert_int_equal(bdev_write(b, "w", 1, 0, 0), 0);
		fd = open(base, O_WRONLY);
		assert_int_equal(util_pwrite_full(fd, "\1", 1, 511), 0);
		close(fd);
		bdev_close(b);
		assert_int_equal(bkp_track_close(t, &e), 0);
	}
	assert_false(backup_view(child, true, gen, NULL, why, sizeof(why), NULL));
	assert_non_null(strstr(why, "a parent changed under a writer"));
}

static void test_size_change(void **state)
{
	struct fx *f = *state;
	char gen[33], why[300];

	assert_false(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	assert_int_equal(truncate(f->img, 44 * MiB), 0);
	assert_false(backup_view(f->img, false, gen, NULL, why, sizeof(why), NULL));
	assert_non_null(strstr(why, "size changed"));
}

/* ---- live backups: a running tracker frozen at a snapshot ---- */

/* A write through the writer's own layer: the disk, then the note. */
static void put(struct bdev *b, struct bkp_track *t, uint64_t off, uint32_t len)
{
	static uint8_t buf[8192];

	memset(buf, (int)(off / G) + 1, sizeof(buf));
	assert_int_equal(bdev_write(b, buf, off, len, 0), 0);
	bkp_track_note(t, off, len);
}

struct live {
	char base[160], child[160], frozen_ctk[200];
	struct bkp_track *t;
	struct bdev *top;	/* the child, with the frozen base as its parent */
	uint32_t e;		/* the frozen epoch */
};

/* base.vhd written while tracked (granules 1 and 6, the ctk made at
 * open), frozen, switched to a child (granules 6 and 9 after the freeze),
 * the frozen tracking file written beside the child. */
static void live_snapshot(struct fx *f, struct live *L)
{
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = 40 * MiB };
	struct vhd_open_opts o = { 0 };
	struct bdev_err e = { 0 };
	struct bkp_track_frozen *fr;
	struct bdev *b;

	snprintf(L->base, sizeof(L->base), "%s/base.vhd", f->dir);
	snprintf(L->child, sizeof(L->child), "%s/base-snap1.vhd", f->dir);
	snprintf(L->frozen_ctk, sizeof(L->frozen_ctk), "%s.frozen.ctk", L->child);
	assert_int_equal(vhd_create(L->base, &co, &e), 0);
	b = vhd_open(L->base, &o, &e);
	assert_non_null(b);
	L->t = bkp_track_open(b, L->base, true, &e);
	if (!L->t)
		fail_msg("track: %s", e.msg);
	put(b, L->t, 1 * G + 512, 4096);
	put(b, L->t, 6 * G, 8192);
	/* the writer's requests held: freeze, then the child takes over */
	assert_int_equal(bdev_flush(b), 0);
	fr = bkp_track_freeze(L->t, &e);
	assert_non_null(fr);
	L->e = bkp_track_frozen_epoch(fr);
	co.type = VHD_TYPE_DIFF;
	co.parent = L->base;
	assert_int_equal(vhd_create(L->child, &co, &e), 0);
	bdev_close(b);
	L->top = vhd_open(L->child, &o, &e);
	assert_non_null(L->top);
	put(L->top, L->t, 6 * G + 4096, 4096);
	put(L->top, L->t, 9 * G, 4096);
	/* writes flowing again: the file for the frozen image */
	if (bkp_track_frozen_write(fr, vhd_parent(vhd_of(L->top)), L->base, L->frozen_ctk, &e))
		fail_msg("frozen write: %s", e.msg);
	bkp_track_frozen_free(fr);
	put(L->top, L->t, 3 * G, 4096);
}

/* The backup side of the frozen image: valid, read only. */
static struct bkp_ctk_session *frozen_view(struct live *L, struct bdev **src, char *why,
					   size_t wl)
{
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY };
	struct bdev_err e = { 0 };

	*src = vhd_open(L->base, &o, &e);
	assert_non_null(*src);
	return bkp_ctk_begin_frozen(*src, L->base, L->frozen_ctk, why, wl);
}

static void test_frozen_file(void **state)
{
	struct fx *f = *state;
	struct bkp_ctk_session *s;
	struct bdev_err e = { 0 };
	struct stat st0, st1;
	struct bdev *src;
	struct live L;
	char gen[33], gen2[33], why[300] = "";
	uint32_t since;

	live_snapshot(f, &L);
	assert_true(L.e >= 1);
	/* the live tracker still runs (it holds base.vhd.ctk) */
	assert_int_equal(stat(L.frozen_ctk, &st0), 0);
	s = frozen_view(&L, &src, why, sizeof(why));
	if (!s)
		fail_msg("frozen file invalid: %s", why);
	assert_int_equal(bkp_ctk_epoch(s), L.e);
	bkp_ctk_ids(s, gen, &since);
	assert_int_equal(since, L.e + 1);
	/* its marks: exactly the writes before the freeze */
	for (int g = 0; g < 10; g++) {
		bool want = g == 1 || g == 6;

		if (bkp_ctk_changed(s, 1, (uint64_t)g * G, G) != want)
			fail_msg("granule %d: changed should be %d", g, want);
	}
	assert_false(bkp_ctk_changed(s, L.e + 1, 0, 40 * MiB));
	assert_true(bkp_ctk_end(s));
	bdev_close(src);
	assert_int_equal(stat(L.frozen_ctk, &st1), 0);
	assert_true(st0.st_mtim.tv_sec == st1.st_mtim.tv_sec &&
		    st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec && st0.st_size == st1.st_size);

	/* the writer finishes: the live file has the same generation, and
	 * the writes after the freeze carry the next epoch */
	bdev_close(L.top);
	assert_int_equal(bkp_track_close(L.t, &e), 0);
	assert_true(backup_view(L.base, true, gen2, NULL, why, sizeof(why), &s));
	assert_string_equal(gen, gen2);
	for (int g = 0; g < 10; g++) {
		bool want = g == 3 || g == 6 || g == 9;

		if (bkp_ctk_changed(s, L.e + 1, (uint64_t)g * G, G) != want)
			fail_msg("granule %d: changed since %u should be %d", g, L.e + 1, want);
	}
	assert_true(bkp_ctk_changed(s, L.e, 1 * G, G));
	assert_true(bkp_ctk_end(s));
}

/* A frozen image written after the freeze (a merge, a foreign tool) no
 * longer matches the frozen file: the backup reads everything. */
static void test_frozen_file_outdated(void **state)
{
	struct fx *f = *state;
	struct bkp_ctk_session *s;
	struct bdev_err e = { 0 };
	struct bdev *src;
	struct live L;
	char why[300] = "";
	int fd;

	live_snapshot(f, &L);
	bdev_close(L.top);
	assert_int_equal(bkp_track_close(L.t, &e), 0);
	fd = open(L.base, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(util_pwrite_full(fd, "\0", 1, 511), 0);
	close(fd);
	s = frozen_view(&L, &src, why, sizeof(why));
	assert_null(s);
	assert_non_null(strstr(why, "modified outside vhdstack"));
	bdev_close(src);
	/* missing */
	unlink(L.frozen_ctk);
	s = frozen_view(&L, &src, why, sizeof(why));
	assert_null(s);
	assert_non_null(strstr(why, "cannot open"));
	bdev_close(src);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_no_ctk_no_tracking),
		T(test_tracks_writes),
		T(test_foreign_write_invalidates),
		T(test_crashed_writer_invalidates),
		T(test_second_writer_marks_stale),
		T(test_damaged_file),
		T(test_chain_parent_change),
		T(test_size_change),
		T(test_frozen_file),
		T(test_frozen_file_outdated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
