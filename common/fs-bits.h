/* fs-bits: bit and alignment helpers for freestanding code (host and
 * guest).  Two bitmap layouts:
 *   fs_bit_*     bitmaps of uint64_t words, bit i is bit (i % 64) of word
 *                i / 64 (least significant first, as the Linux bitmap
 *                helpers and VMBus interrupt pages have it);
 *   fs_be_bit_*  byte bitmaps, most significant bit of each byte first (VHD
 *                sector bitmaps).
 * Includes only <stdint.h>, <stddef.h>, <stdbool.h> and fs-endian.h; prefix
 * fs_. */
#ifndef FS_BITS_H
#define FS_BITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs-endian.h"

static inline bool fs_is_power_of_2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Floor of log2(v); -1 for 0. */
static inline int fs_ilog2(uint64_t v)
{
	return v ? 63 - __builtin_clzll(v) : -1;
}

/* n / d rounded up, without overflow; d > 0. */
static inline uint64_t fs_div_round_up(uint64_t n, uint64_t d)
{
	return n / d + (n % d != 0);
}

/* v rounded down / up to a multiple of a (any a > 0, not only powers of
 * two).  fs_align_up wraps when the result does not fit 64 bits: check v
 * against the limit first where v is hostile. */
static inline uint64_t fs_align_down(uint64_t v, uint64_t a)
{
	return v - v % a;
}
static inline uint64_t fs_align_up(uint64_t v, uint64_t a)
{
	return fs_div_round_up(v, a) * a;
}

/* Word bitmaps (least significant bit first). */
static inline bool fs_bit_test(const uint64_t *map, size_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}
static inline void fs_bit_set(uint64_t *map, size_t i)
{
	map[i / 64] |= (uint64_t)1 << (i % 64);
}
static inline void fs_bit_clear(uint64_t *map, size_t i)
{
	map[i / 64] &= ~((uint64_t)1 << (i % 64));
}
/* Index of the first bit in [start, end) equal to value; end when none. */
static inline size_t fs_find_next_bit(const uint64_t *map, size_t start,
				      size_t end, bool value)
{
	while (start < end) {
		size_t base = start - start % 64;
		uint64_t w = value ? map[start / 64] : ~map[start / 64];

		w &= ~(uint64_t)0 << (start % 64);
		if (w) {
			size_t r = base + (size_t)__builtin_ctzll(w);

			return r < end ? r : end;
		}
		start = base + 64;
	}
	return end;
}

/* Byte bitmaps (most significant bit first). */
static inline bool fs_be_bit_test(const uint8_t *bm, uint64_t i)
{
	return bm[i >> 3] & (0x80u >> (i & 7));
}
static inline void fs_be_bit_set(uint8_t *bm, uint64_t i)
{
	bm[i >> 3] |= (uint8_t)(0x80u >> (i & 7));
}
static inline void fs_be_bit_clear(uint8_t *bm, uint64_t i)
{
	bm[i >> 3] &= (uint8_t)~(0x80u >> (i & 7));
}
/* Index of the first bit in [start, end) equal to value; end when none.
 * Bit by bit to a byte boundary, then skips 64 and 8 bits at a time while
 * none of them can match. */
static inline uint64_t fs_be_find_next_bit(const uint8_t *bm, uint64_t start,
					   uint64_t end, bool value)
{
	uint64_t i = start;

	if (i >= end)
		return end;
	while (i < end && (i & 7)) {
		if (fs_be_bit_test(bm, i) == value)
			return i;
		i++;
	}
	/* Here i <= end and i is a multiple of 8. */
	while (end - i >= 64 &&
	       fs_load_le64(bm + (i >> 3)) == (value ? 0 : ~(uint64_t)0))
		i += 64;
	while (end - i >= 8 && bm[i >> 3] == (value ? 0 : 0xff))
		i += 8;
	while (i < end && fs_be_bit_test(bm, i) != value)
		i++;
	return i;
}

#endif
