/* util: small helpers shared by every module: big-endian access, checked
 * arithmetic, whole-buffer file I/O, bit runs, size parsing, atomic file
 * replacement.  Functions return 0 or -errno unless stated otherwise. */
#ifndef UTIL_H
#define UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "fs-bits.h"
#include "fs-compiler.h"
#include "fs-endian.h"
#include "fs-overflow.h"

/* The helpers below are the util_ names of the freestanding ones in
 * fs-*.h (one implementation; these names predate them). */
#define UTIL_ARRAY_SIZE(a) FS_ARRAY_SIZE(a)
#define UTIL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define UTIL_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline uint16_t util_get_be16(const void *p)
{
	return fs_load_be16(p);
}
static inline uint32_t util_get_be32(const void *p)
{
	return fs_load_be32(p);
}
static inline uint64_t util_get_be64(const void *p)
{
	return fs_load_be64(p);
}
static inline void util_put_be16(void *p, uint16_t v)
{
	fs_store_be16(p, v);
}
static inline void util_put_be32(void *p, uint32_t v)
{
	fs_store_be32(p, v);
}
static inline void util_put_be64(void *p, uint64_t v)
{
	fs_store_be64(p, v);
}
static inline uint32_t util_get_le32(const void *p)
{
	return fs_load_le32(p);
}
static inline void util_put_le32(void *p, uint32_t v)
{
	fs_store_le32(p, v);
}

/* Checked arithmetic: true on overflow. */
static inline bool util_add_overflow(uint64_t a, uint64_t b, uint64_t *r)
{
	return fs_add_overflow_u64(a, b, r);
}
static inline bool util_mul_overflow(uint64_t a, uint64_t b, uint64_t *r)
{
	return fs_mul_overflow_u64(a, b, r);
}
/* off + len within size, without overflow. */
static inline bool util_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
	return fs_range_ok(off, len, size);
}
/* v rounded up to a multiple of a (a > 0). */
static inline uint64_t util_align_up(uint64_t v, uint64_t a)
{
	return fs_align_up(v, a);
}
static inline bool util_is_pow2(uint64_t v)
{
	return fs_is_power_of_2(v);
}

/* Whole-buffer pread/pwrite: retry short transfers and EINTR.  A read that
 * hits end of file fills the rest with zeros when zero_past_eof, else fails
 * with -EIO. */
int util_pread_full(int fd, void *buf, size_t len, uint64_t off,
		    bool zero_past_eof);
int util_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* The size in bytes of fd, which fstat() described as st: a regular
 * file's length or a block device's size.  0, -errno, or -EINVAL for any
 * other kind of file. */
struct stat;
int util_fd_size(int fd, const struct stat *st, uint64_t *size);

/* MSB-first bit helpers (VHD sector bitmaps): fs_be_bit_* of fs-bits.h. */
static inline bool util_bit_test(const uint8_t *bm, uint64_t i)
{
	return fs_be_bit_test(bm, i);
}
static inline void util_bit_set(uint8_t *bm, uint64_t i)
{
	fs_be_bit_set(bm, i);
}
static inline void util_bit_clear(uint8_t *bm, uint64_t i)
{
	fs_be_bit_clear(bm, i);
}
/* Length of the run of equal bits starting at bit i, at most max (0 when
 * max is 0). */
static inline uint64_t util_bit_run(const uint8_t *bm, uint64_t i,
				    uint64_t max)
{
	if (!max)
		return 0;
	return fs_be_find_next_bit(bm, i + 1, i + max,
				   !fs_be_bit_test(bm, i)) - i;
}
/* Set bits [i, i+n). */
void util_bit_set_range(uint8_t *bm, uint64_t i, uint64_t n);

/* Whether [off, off+len) of fd starts with data or a hole, and how long
 * that extent is (SEEK_DATA/SEEK_HOLE; all data when unsupported). */
void util_seek_extent(int fd, uint64_t off, uint64_t len, bool *data,
		      uint64_t *n);

/* True if buf is all zero bytes. */
bool util_is_zero(const void *buf, size_t len);

/* Parse a byte count: an integer with an optional K/M/G/T suffix (binary
 * units), optionally followed by "B" or "iB".  Returns 0 or -EINVAL/-ERANGE. */
int util_parse_size(const char *s, uint64_t *out);

/* Format bytes as "2.0 GiB" into buf; returns buf. */
char *util_fmt_size(uint64_t v, char *buf, size_t len);

/* util_tmpname() makes "DIR/.BASE.tmp.PID.N" beside dst (malloc'd, NULL on
 * ENOMEM); util_commit_file() fsyncs fd, renames tmp to dst and fsyncs the
 * directory (internal files such as a frozen tracking file; what a user
 * names is published with common/publish.h). */
char *util_tmpname(const char *dst);
int util_commit_file(int fd, const char *tmp, const char *dst);
/* fsync the directory holding path. */
int util_fsync_dir(const char *path);

/* Directory part of path (malloc'd: "." when there is none). */
char *util_dirname(const char *path);
/* Pointer to the last component of path. */
const char *util_basename(const char *path);

/* Random bytes from getrandom(2). */
int util_random(void *buf, size_t len);

#endif
