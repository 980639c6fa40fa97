/* Live backups in the library: a backup of a frozen image with the frozen
 * tracking file the VMM writes at the freeze (IMAGE.ctk's format, used read
 * only) is incremental and reads exactly the chunks marked >= its base's
 * since; an invalid or missing frozen file makes it read everything and
 * record no tracking; SOURCE.ctk and the frozen file are never changed;
 * the manifest carries consistency, group, LUN and freeze window, and
 * ordinary manifests do not.
 *
 * Until the VMM's writer exists, the frozen file is made the way the VMM
 * will make it: a copy of IMAGE.ctk as a clean tracker left it (state
 * clean, epoch E, the marks, the layers' proven records). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/bkp-int.h"
#include "common/util.h"
#include "ut.h"

#define MiB (1024u * 1024u)
#define C (4 * MiB)            /* chunk = tracking granule */

struct fx {
	char dir[64];
	char repo[128];
	char src[128];
	char ctk[140];
	char frozen[160];
	struct bkp_repo *r;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct bdev_err e = { 0 };
	uint8_t *buf = malloc(32 * MiB);
	int fd;

	strcpy(f->dir, "/tmp/test-bkp-frozen-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->src, sizeof(f->src), "%s/base.raw", f->dir);
	snprintf(f->ctk, sizeof(f->ctk), "%s.ctk", f->src);
	snprintf(f->frozen, sizeof(f->frozen), "%s/base-snap1.vhd.frozen.ctk", f->dir);
	if (bkp_init(f->repo, 0, &e))
		fail_msg("init: %s", e.msg);
	f->r = bkp_open(f->repo, &e);
	assert_non_null(f->r);
	/* 32 MiB of distinct data: 8 chunks, none zero */
	for (size_t i = 0; i < 32 * MiB; i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	fd = open(f->src, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(util_pwrite_full(fd, buf, 32 * MiB, 0), 0);
	close(fd);
	free(buf);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	bkp_close(f->r);
	ut_rmtree(f->dir);
	free(f);
	return 0;
}

/* A backup of f->src; live when group is set (frozen: the tracking file). */
static void backup(struct fx *f, const char *group, const char *frozen,
		   struct bkp_info *out)
{
	struct bdev_err e = { 0 };
	struct bdev *b = bdev_file_open(f->src, BDEV_OPEN_RDONLY, &e);
	struct bkp_create_opts o = { .source = f->src, .threads = 2,
				     .group = group, .frozen_ctk = frozen,
				     .consistency = "application", .vm_lun = 3,
				     .freeze_window_us = 4321 };

	assert_non_null(b);
	if (bkp_create(f->r, b, &o, out, &e))
		fail_msg("create: %s", e.msg);
	bdev_close(b);
}

/* Tracked writes (as the VMM's tracker records them) into chunks first..,
 * one byte each, then the tracker closes clean. */
static void write_tracked(struct fx *f, const int *chunks, int n)
{
	struct bdev_err e = { 0 };
	struct bdev *w = bdev_file_open(f->src, 0, &e);
	struct bkp_track *t;

	assert_non_null(w);
	t = bkp_track_attach(w, f->src, &e);
	if (!t)
		fail_msg("attach: %s", e.msg);
	for (int i = 0; i < n; i++) {
		uint8_t v = (uint8_t)(0xa0 + i);

		assert_int_equal(bdev_write(w, &v, (uint64_t)chunks[i] * C + 77, 1, 0), 0);
	}
	bdev_close(w);
	assert_int_equal(bkp_track_close(t, &e), 0);
}

static void copy_file(const char *from, const char *to)
{
	char *text;
	size_t len;
	struct bdev_err e = { 0 };

	assert_int_equal(bkp_read_file(from, 64 * MiB, &text, &len), 0);
	assert_int_equal(bkp_write_file(to, text, len, &e), 0);
	free(text);
}

static void same_file(const char *path, const char *text, size_t len)
{
	char *now;
	size_t n;

	assert_int_equal(bkp_read_file(path, 64 * MiB, &now, &n), 0);
	assert_int_equal(n, len);
	assert_memory_equal(now, text, len);
	free(now);
}

static void restored_equals_src(struct fx *f, const char *id)
{
	struct bkp_restore_opts ro = { .format = BKP_OUT_RAW };
	struct bdev_err e = { 0 };
	char out[200], *a, *b;
	size_t na, nb;

	snprintf(out, sizeof(out), "%s/out.raw", f->dir);
	unlink(out);
	if (bkp_restore(f->r, id, out, &ro, &e))
		fail_msg("restore: %s", e.msg);
	assert_int_equal(bkp_read_file(out, 64 * MiB, &a, &na), 0);
	assert_int_equal(bkp_read_file(f->src, 64 * MiB, &b, &nb), 0);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	free(a);
	free(b);
}

/* Full A (creates the tracking, since 1); write chunk 1; incremental B
 * (epoch 1 -> 2, since 2); write chunks 2 and 5 at epoch 2; the freeze
 * copies the tracking file.  Returns B. */
static void two_backups_and_freeze(struct fx *f, struct bkp_info *b)
{
	static const int first[] = { 1 }, second[] = { 2, 5 };
	struct bkp_info a;

	backup(f, NULL, NULL, &a);
	assert_int_equal(a.chunks_read, 8);
	write_tracked(f, first, 1);
	backup(f, NULL, NULL, b);
	assert_true(b->incremental);
	assert_int_equal(b->chunks_read, 1);
	assert_int_equal(b->ctk_since, 2);
	write_tracked(f, second, 2);
	copy_file(f->ctk, f->frozen);
}

static void test_frozen_incremental(void **state)
{
	struct fx *f = *state;
	struct bkp_info b, c;
	char *ctk_before, *frozen_before;
	size_t nc, nf;
	struct stat st0, st1;

	two_backups_and_freeze(f, &b);
	assert_int_equal(bkp_read_file(f->ctk, 64 * MiB, &ctk_before, &nc), 0);
	assert_int_equal(bkp_read_file(f->frozen, 64 * MiB, &frozen_before, &nf), 0);
	assert_int_equal(stat(f->frozen, &st0), 0);

	backup(f, "grp-1", f->frozen, &c);
	assert_true(c.incremental);
	assert_string_equal(c.parent, b.id);
	assert_int_equal(c.chunks_read, 2);           /* chunks 2 and 5, not 1 */
	assert_string_equal(c.reason, "");
	assert_string_equal(c.consistency, "application");
	assert_string_equal(c.ctk_generation, b.ctk_generation);
	assert_int_equal(c.ctk_since, 3);             /* E + 1 */
	assert_string_equal(c.group, "grp-1");
	assert_int_equal(c.vm_lun, 3);
	assert_int_equal(c.freeze_window_us, 4321);
	restored_equals_src(f, c.id);

	/* read only: neither file changed, the frozen one not even touched */
	same_file(f->ctk, ctk_before, nc);
	same_file(f->frozen, frozen_before, nf);
	assert_int_equal(stat(f->frozen, &st1), 0);
	assert_int_equal(st0.st_mtim.tv_sec, st1.st_mtim.tv_sec);
	assert_int_equal(st0.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
	free(ctk_before);
	free(frozen_before);

	/* the same frozen file again: the base is now C (since 3 > E = 2 is
	 * refused), so B serves again and the same 2 chunks are read */
	backup(f, "grp-2", f->frozen, &c);
	assert_true(c.incremental);
	assert_string_equal(c.parent, b.id);
	assert_int_equal(c.chunks_read, 2);
}

/* The same with the VMM's own writer of the frozen file: a running
 * tracker notes a write, freezes (epoch E -> E + 1), notes a write that
 * went to the snapshot child (not into the frozen image), and writes the
 * frozen file.  The live backup reads the chunk written before the freeze
 * and not the one after. */
static void test_frozen_from_running_tracker(void **state)
{
	static const int first[] = { 1 };
	struct fx *f = *state;
	struct bdev_err e = { 0 };
	struct bkp_track_frozen *fr;
	struct bkp_info a, b, c;
	struct bkp_track *t;
	struct bdev *w;
	uint8_t v = 0x77;

	backup(f, NULL, NULL, &a);
	write_tracked(f, first, 1);
	backup(f, NULL, NULL, &b);                    /* since 2 */
	w = bdev_file_open(f->src, 0, &e);
	assert_non_null(w);
	t = bkp_track_open(w, f->src, false, &e);
	if (!t)
		fail_msg("track: %s", e.msg);
	assert_int_equal(bdev_write(w, &v, 3 * C + 5, 1, 0), 0);
	bkp_track_note(t, 3 * C + 5, 1);
	fr = bkp_track_freeze(t, &e);
	assert_non_null(fr);
	assert_int_equal(bkp_track_frozen_epoch(fr), 2);
	bkp_track_note(t, 6 * C, 4096);               /* landed in the child */
	assert_int_equal(bdev_flush(w), 0);
	if (bkp_track_frozen_write(fr, w, f->src, f->frozen, &e))
		fail_msg("frozen write: %s", e.msg);
	bkp_track_frozen_free(fr);

	backup(f, "g", f->frozen, &c);
	assert_true(c.incremental);
	assert_string_equal(c.parent, b.id);
	assert_int_equal(c.chunks_read, 1);           /* chunk 3, not 6 */
	assert_int_equal(c.ctk_since, 3);
	restored_equals_src(f, c.id);
	bdev_close(w);
	assert_int_equal(bkp_track_close(t, &e), 0);
}

static void test_frozen_invalid_reads_all(void **state)
{
	struct fx *f = *state;
	struct bkp_info b, c;
	char *text;
	size_t len;
	uint8_t one = 1;
	int fd;

	two_backups_and_freeze(f, &b);
	/* a damaged header: CRC fails */
	assert_int_equal(bkp_read_file(f->frozen, 64 * MiB, &text, &len), 0);
	text[16] = 3;                                  /* state invalid */
	fd = open(f->frozen, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(util_pwrite_full(fd, text, len, 0), 0);
	close(fd);
	free(text);
	backup(f, "g", f->frozen, &c);
	assert_false(c.incremental);
	assert_int_equal(c.chunks_read, 8);
	assert_non_null(strstr(c.reason, "frozen tracking file"));
	assert_string_equal(c.ctk_generation, "");
	assert_string_equal(c.consistency, "application");
	restored_equals_src(f, c.id);

	/* the image written behind the tracking's back after the freeze
	 * (its layer record no longer matches) */
	copy_file(f->ctk, f->frozen);
	fd = open(f->src, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(util_pwrite_full(fd, &one, 1, 6 * C), 0);
	close(fd);
	backup(f, "g", f->frozen, &c);
	assert_false(c.incremental);
	assert_int_equal(c.chunks_read, 8);
	assert_non_null(strstr(c.reason, "modified"));
	restored_equals_src(f, c.id);

	/* missing */
	unlink(f->frozen);
	backup(f, "g", f->frozen, &c);
	assert_false(c.incremental);
	assert_int_equal(c.chunks_read, 8);
	assert_non_null(strstr(c.reason, "No such file"));

	/* none given (an untracked LUN): SOURCE.ctk is not used either */
	backup(f, "g", NULL, &c);
	assert_false(c.incremental);
	assert_int_equal(c.chunks_read, 8);
	assert_string_equal(c.ctk_generation, "");
}

static void test_manifest_live_fields(void **state)
{
	struct fx *f = *state;
	struct bdev_err e = { 0 };
	struct bkp_create_opts o = { .source = f->src, .group = "bad group",
				     .consistency = "application" };
	struct bkp_info a, b, s;
	struct bdev *src;
	char *json;

	backup(f, NULL, NULL, &a);
	json = bkp_info_json(&a);
	assert_null(strstr(json, "\"group\""));
	assert_null(strstr(json, "vm-lun"));
	assert_null(strstr(json, "freeze-window-us"));
	free(json);
	assert_int_equal(bkp_show(f->r, a.id, &s, &e), 0);
	assert_string_equal(s.group, "");
	assert_string_equal(s.consistency, "offline");

	backup(f, "20260101T000000Z-0123abcd", NULL, &b);
	json = bkp_info_json(&b);
	assert_non_null(strstr(json, "\"consistency\": \"application\""));
	assert_non_null(strstr(json, "\"group\": \"20260101T000000Z-0123abcd\""));
	assert_non_null(strstr(json, "\"vm-lun\": 3"));
	assert_non_null(strstr(json, "\"freeze-window-us\": 4321"));
	free(json);
	assert_int_equal(bkp_show(f->r, b.id, &s, &e), 0);
	assert_string_equal(s.group, b.group);
	assert_int_equal(s.vm_lun, 3);
	assert_int_equal(s.freeze_window_us, 4321);
	assert_string_equal(s.consistency, "application");

	/* refused: a bad group, a consistency a live backup cannot have */
	src = bdev_file_open(f->src, BDEV_OPEN_RDONLY, &e);
	assert_non_null(src);
	assert_int_equal(bkp_create(f->r, src, &o, &s, &e), -EINVAL);
	o.group = "g";
	o.consistency = "offline";
	assert_int_equal(bkp_create(f->r, src, &o, &s, &e), -EINVAL);
	o.consistency = "crash";
	assert_int_equal(bkp_create(f->r, src, &o, &s, &e), 0);
	assert_string_equal(s.consistency, "crash");
	bdev_close(src);
}

/* A manifest whose live fields are damaged is reported, not misread. */
static void test_manifest_live_damaged(void **state)
{
	static const char *const bad[][2] = {
		{ "\"vm-lun\": 3", "\"vm-lun\": -3" },
		{ "\"vm-lun\": 3", "\"vm-lun\": \"3\"" },
		{ "\"freeze-window-us\": 4321", "\"freeze-window-us\": 1.5" },
		{ "\"group\": \"g-1\"", "\"group\": \"g/1\"" },
		{ "\"group\": \"g-1\"", "\"group\": null" },
	};
	struct fx *f = *state;
	struct bdev_err e = { 0 };
	struct bkp_info b, s;
	char path[300], *text, *p;
	size_t len;

	backup(f, "g-1", NULL, &b);
	snprintf(path, sizeof(path), "%s/backups/%s.json", f->repo, b.id);
	assert_int_equal(bkp_read_file(path, MiB, &text, &len), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *t2 = NULL;

		p = strstr(text, bad[i][0]);
		assert_non_null(p);
		assert_true(asprintf(&t2, "%.*s%s%s", (int)(p - text), text, bad[i][1],
				     p + strlen(bad[i][0])) > 0);
		assert_int_equal(bkp_write_file(path, t2, strlen(t2), &e), 0);
		assert_int_equal(bkp_show(f->r, b.id, &s, &e), -EBADMSG);
		free(t2);
	}
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_frozen_incremental, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frozen_from_running_tracker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frozen_invalid_reads_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_live_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_live_damaged, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
