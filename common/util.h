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

#define UTIL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define UTIL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define UTIL_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline uint16_t util_get_be16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] << 8 | b[1]);
}
static inline uint32_t util_get_be32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | b[3];
}
static inline uint64_t util_get_be64(const void *p)
{
	const uint8_t *b = p;
	return (uint64_t)util_get_be32(b) << 32 | util_get_be32(b + 4);
}
static inline void util_put_be16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}
static inline void util_put_be32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}
static inline void util_put_be64(void *p, uint64_t v)
{
	util_put_be32(p, (uint32_t)(v >> 32));
	util_put_be32((uint8_t *)p + 4, (uint32_t)v);
}
static inline uint32_t util_get_le32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[1] << 8 | b[0];
}
static inline void util_put_le32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

/* Checked arithmetic: true on overflow. */
static inline bool util_add_overflow(uint64_t a, uint64_t b, uint64_t *r)
{
	return __builtin_add_overflow(a, b, r);
}
static inline bool util_mul_overflow(uint64_t a, uint64_t b, uint64_t *r)
{
	return __builtin_mul_overflow(a, b, r);
}
/* off + len within size, without overflow. */
static inline bool util_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}
static inline uint64_t util_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}
static inline bool util_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Whole-buffer pread/pwrite: retry short transfers and EINTR.  A read that
 * hits end of file fills the rest with zeros when zero_past_eof, else fails
 * with -EIO. */
int util_pread_full(int fd, void *buf, size_t len, uint64_t off,
		    bool zero_past_eof);
int util_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* MSB-first bit helpers (VHD sector bitmaps). */
static inline bool util_bit_test(const uint8_t *bm, uint64_t i)
{
	return bm[i >> 3] & (0x80u >> (i & 7));
}
static inline void util_bit_set(uint8_t *bm, uint64_t i)
{
	bm[i >> 3] |= (uint8_t)(0x80u >> (i & 7));
}
static inline void util_bit_clear(uint8_t *bm, uint64_t i)
{
	bm[i >> 3] &= (uint8_t)~(0x80u >> (i & 7));
}
/* Length of the run of equal bits starting at bit i, at most max. */
uint64_t util_bit_run(const uint8_t *bm, uint64_t i, uint64_t max);
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

/* Atomic file replacement: util_tmpname() makes "DIR/.BASE.tmp.PID.N" beside
 * dst (malloc'd, NULL on ENOMEM); util_commit_file() fsyncs fd, renames tmp
 * to dst and fsyncs the directory. */
char *util_tmpname(const char *dst);
int util_commit_file(int fd, const char *tmp, const char *dst);
/* fsync the directory holding path. */
int util_fsync_dir(const char *path);

/* Directory part of path (malloc'd: "." when there is none). */
char *util_dirname(const char *path);
/* Pointer to the last component of path. */
const char *util_basename(const char *path);

/* Write s as a JSON string (quoted, escaped) to f; NULL writes null. */
void util_json_str(FILE *f, const char *s);

/* Random bytes from getrandom(2). */
int util_random(void *buf, size_t len);

#endif
