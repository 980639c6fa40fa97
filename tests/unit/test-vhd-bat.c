/* vhd_bat_validate: every used BAT entry must point at a whole block
 * (bitmap + data) that lies after the metadata and before the footer, and
 * no two blocks may overlap.  Blocks need not be in order or evenly spaced;
 * unused entries (0xffffffff) are skipped.  Also: an image whose BAT is
 * damaged that way is refused by vhd_open with that message. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "vhd/vhd-int.h"
#include "vhd/vhd.h"

#define BS (2u << 20)                 /* block size */
#define SPAN_SECS ((512 + BS) / 512)  /* bitmap sector + data, in sectors */
#define META_END 4096ull              /* first byte a block may use */
#define U VHD_BAT_UNUSED

static int validate(const uint32_t *bat, uint32_t n, uint64_t footer_off,
		    char *why, size_t whylen)
{
	why[0] = '\0';
	return vhd_bat_validate(bat, n, BS, META_END, footer_off, why, whylen);
}

static void test_empty_and_unused_tables_are_ok(void **state)
{
	uint32_t bat[5] = { U, U, U, U, U };
	char why[300];

	(void)state;
	assert_int_equal(validate(bat, 0, META_END, why, sizeof(why)), 0);
	assert_int_equal(validate(bat, 5, META_END, why, sizeof(why)), 0);
}

static void test_packed_blocks_in_any_order_are_ok(void **state)
{
	uint32_t s0 = META_END / 512;
	/* Three blocks back to back, listed out of order, with gaps in the
	 * table; the last one ends exactly at the footer. */
	uint32_t bat[6] = { s0 + 2 * SPAN_SECS, U, s0, U, s0 + SPAN_SECS, U };
	uint64_t footer = META_END + 3ull * SPAN_SECS * 512;
	char why[300];

	(void)state;
	assert_int_equal(validate(bat, 6, footer, why, sizeof(why)), 0);
	/* Unevenly spaced (a hole between blocks) is fine too. */
	bat[0] = s0 + 2 * SPAN_SECS + 7;
	assert_int_equal(validate(bat, 6, footer + 7 * 512, why, sizeof(why)), 0);
}

static void test_block_past_eof_is_refused(void **state)
{
	uint32_t s0 = META_END / 512;
	uint32_t bat[3] = { s0, U, s0 + SPAN_SECS };
	/* Room for one block and one sector short of the second. */
	uint64_t footer = META_END + 2ull * SPAN_SECS * 512 - 512;
	char why[300];

	(void)state;
	assert_int_equal(validate(bat, 3, footer, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "BAT entry 2"));
	assert_non_null(strstr(why, "past the end"));
	/* One more sector and it fits. */
	assert_int_equal(validate(bat, 3, footer + 512, why, sizeof(why)), 0);
	/* An entry far beyond (the largest sector number short of "unused")
	 * must not wrap around in the offset arithmetic. */
	bat[2] = 0xfffffffeu;
	assert_int_equal(validate(bat, 3, footer + 512, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "BAT entry 2"));
}

static void test_block_inside_metadata_is_refused(void **state)
{
	uint32_t bat[2] = { U, META_END / 512 - 1 };
	uint64_t footer = META_END + 4ull * SPAN_SECS * 512;
	char why[300];

	(void)state;
	assert_int_equal(validate(bat, 2, footer, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "BAT entry 1"));
	assert_non_null(strstr(why, "metadata"));
	/* Entry 0 (the footer copy / header) is metadata too. */
	bat[1] = 0;
	assert_int_equal(validate(bat, 2, footer, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "metadata"));
	/* Starting exactly at the end of the metadata is fine. */
	bat[1] = META_END / 512;
	assert_int_equal(validate(bat, 2, footer, why, sizeof(why)), 0);
}

static void test_overlapping_blocks_are_refused(void **state)
{
	uint32_t s0 = META_END / 512;
	uint64_t footer = META_END + 8ull * SPAN_SECS * 512;
	char why[300];
	/* Entry 4's block starts in the last sector of entry 1's. */
	uint32_t bat[5] = { s0 + 3 * SPAN_SECS, s0, U, s0 + 5 * SPAN_SECS,
			    s0 + SPAN_SECS - 1 };

	(void)state;
	assert_int_equal(validate(bat, 5, footer, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "overlapping"));
	assert_non_null(strstr(why, "entries 1 and 4"));
	/* Two entries pointing at the same block. */
	bat[4] = s0 + 5 * SPAN_SECS;
	assert_int_equal(validate(bat, 5, footer, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "overlapping"));
	/* Moved one sector on, they touch but do not overlap. */
	bat[4] = s0 + SPAN_SECS;
	assert_int_equal(validate(bat, 5, footer, why, sizeof(why)), 0);
}

static void test_many_entries_reverse_order(void **state)
{
	/* A larger table, in reverse order, to exercise the sort. */
	enum { N = 3000 };
	uint32_t *bat = malloc(N * sizeof(*bat));
	uint32_t s0 = META_END / 512, span = (512 + 4096) / 512;
	uint64_t footer = META_END + (uint64_t)N * span * 512;
	char why[300];

	(void)state;
	assert_non_null(bat);
	for (uint32_t i = 0; i < N; i++)
		bat[i] = s0 + (N - 1 - i) * span;
	why[0] = '\0';
	assert_int_equal(vhd_bat_validate(bat, N, 4096, META_END, footer, why,
					  sizeof(why)), 0);
	/* Entry 1234 now shares the start of entry 17's block. */
	bat[1234] = bat[17] + 1;
	assert_int_equal(vhd_bat_validate(bat, N, 4096, META_END, footer, why,
					  sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "17"));
	assert_non_null(strstr(why, "1234"));
	free(bat);
}

/* vhd_open refuses an image whose BAT points past the end of the file. */
static void test_open_refuses_bat_past_eof(void **state)
{
	char dir[] = "/tmp/test-vhd-bat.XXXXXX", path[64], pattern[4096];
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = 4u << 20,
				      .block_size = 512u << 10 };
	struct bdev_err e = { 0 };
	struct bdev *b;
	uint8_t ent[4];
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/d.vhd", dir);
	assert_int_equal(vhd_create(path, &co, &e), 0);
	/* Put real data in block 0 so the file has a block. */
	b = vhd_open(path, NULL, &e);
	assert_non_null(b);
	memset(pattern, 0xa5, sizeof(pattern));
	assert_int_equal(bdev_write(b, pattern, 0, sizeof(pattern), 0), 0);
	bdev_close(b);
	b = vhd_open(path, NULL, &e);
	assert_non_null(b);
	bdev_close(b);
	/* BAT is at 1536 (after the footer copy and header); entry 3. */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	util_put_be32(ent, (uint32_t)(lseek(fd, 0, SEEK_END) / 512));
	assert_int_equal(pwrite(fd, ent, 4, 1536 + 3 * 4), 4);
	close(fd);
	b = vhd_open(path, NULL, &e);
	assert_null(b);
	assert_int_equal(e.code, EINVAL);
	assert_non_null(strstr(e.msg, "BAT entry 3"));
	assert_non_null(strstr(e.msg, path));
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_unused_tables_are_ok),
		cmocka_unit_test(test_packed_blocks_in_any_order_are_ok),
		cmocka_unit_test(test_block_past_eof_is_refused),
		cmocka_unit_test(test_block_inside_metadata_is_refused),
		cmocka_unit_test(test_overlapping_blocks_are_refused),
		cmocka_unit_test(test_many_entries_reverse_order),
		cmocka_unit_test(test_open_refuses_bat_past_eof),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
