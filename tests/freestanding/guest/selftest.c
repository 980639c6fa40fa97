/* Freestanding test image: compiles every fs-*.h header with the
 * freestanding flags (make's MODULE/guest/ rule) and checks, at run time,
 * that they compute there what the hosted unit tests expect.  The header
 * comes first in the image (section .head); the hosted test maps the image
 * at its load address and calls selftest(). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs-bits.h"
#include "fs-compiler.h"
#include "fs-endian.h"
#include "fs-overflow.h"
#include "tests/freestanding/fs-test-head.h"

extern char fs_image_start[], fs_image_size[];   /* scripts/freestanding.ld */

static uint32_t selftest(void);

__attribute__((section(".head"), used))
static const struct fs_test_head head = {
	.magic = FS_TEST_MAGIC,
	.load_addr = (uint64_t)fs_image_start,
	.image_size = (uint64_t)fs_image_size,
	.selftest = selftest,
};

struct pair {
	uint32_t a;
	uint16_t b;
};

/* Shared with nobody here, but read and written the way ring indices are. */
static uint32_t ring_index;
/* In .bss: the image must carry it as zeros. */
static uint64_t zero_map[2];

static uint32_t selftest(void)
{
	uint8_t buf[12] = { 0 };
	uint64_t words[2] = { 0 };
	uint8_t bm[16] = { 0 };
	struct pair p;
	uint64_t r64;
	uint32_t r32;
	size_t rs;

	fs_store_le32(buf + 1, 0x11223344u);
	if (buf[1] != 0x44 || buf[4] != 0x11 || fs_load_be32(buf + 1) != 0x44332211u)
		return 1;
	fs_store_be64(buf + 3, 0x0102030405060708ull);
	if (buf[3] != 1 || buf[10] != 8 || fs_load_le64(buf + 3) != 0x0807060504030201ull)
		return 2;
	fs_store_be16(buf, 0xabcd);
	if (fs_load_le16(buf) != 0xcdab)
		return 3;

	if (!fs_add_overflow_u32(UINT32_MAX, 1, &r32) || r32 != 0)
		return 4;
	if (fs_add_overflow_u64(1, 2, &r64) || r64 != 3)
		return 5;
	if (!fs_mul_overflow_size(SIZE_MAX / 2 + 1, 2, &rs))
		return 6;
	if (!fs_range_ok(10, 0, 10) || fs_range_ok(UINT64_MAX, 2, UINT64_MAX))
		return 7;

	fs_bit_set(words, 70);
	if (fs_find_next_bit(words, 0, 128, true) != 70 ||
	    fs_find_next_bit(words, 71, 128, true) != 128 ||
	    fs_find_next_bit(zero_map, 0, 128, false) != 0)
		return 8;
	fs_be_bit_set(bm, 9);
	if (bm[1] != 0x40 || fs_be_find_next_bit(bm, 0, 128, true) != 9)
		return 9;
	if (fs_ilog2(4096) != 12 || fs_align_up(4097, 4096) != 8192 ||
	    !fs_is_power_of_2(1u << 20) || fs_div_round_up(9, 4) != 3)
		return 10;

	FS_WRITE_ONCE(ring_index, 7u);
	fs_smp_mb();
	fs_smp_wmb();
	fs_smp_rmb();
	if (FS_READ_ONCE(ring_index) != 7)
		return 11;
	p.a = 1;
	p.b = 2;
	if (FS_CONTAINER_OF(&p.b, struct pair, b) != &p ||
	    FS_ARRAY_SIZE(buf) != 12 || FS_UNLIKELY(zero_map[1] != 0))
		return 12;
	return 0;
}
