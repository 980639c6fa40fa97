/* fs-overflow: checked arithmetic for sizes and offsets that come from
 * hostile input (guest memory, the network, image metadata), usable in
 * freestanding code.  Each function stores the wrapped result in *r and
 * returns true when the exact result does not fit the type; the caller then
 * fails the request.  Includes only <stdint.h>, <stddef.h>, <stdbool.h>;
 * prefix fs_. */
#ifndef FS_OVERFLOW_H
#define FS_OVERFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool fs_add_overflow_u32(uint32_t a, uint32_t b, uint32_t *r)
{
	return __builtin_add_overflow(a, b, r);
}
static inline bool fs_add_overflow_u64(uint64_t a, uint64_t b, uint64_t *r)
{
	return __builtin_add_overflow(a, b, r);
}
static inline bool fs_add_overflow_size(size_t a, size_t b, size_t *r)
{
	return __builtin_add_overflow(a, b, r);
}
static inline bool fs_mul_overflow_u32(uint32_t a, uint32_t b, uint32_t *r)
{
	return __builtin_mul_overflow(a, b, r);
}
static inline bool fs_mul_overflow_u64(uint64_t a, uint64_t b, uint64_t *r)
{
	return __builtin_mul_overflow(a, b, r);
}
static inline bool fs_mul_overflow_size(size_t a, size_t b, size_t *r)
{
	return __builtin_mul_overflow(a, b, r);
}

/* True when [off, off + len) lies within [0, size), computed without
 * overflow (off + len itself may exceed UINT64_MAX).  An empty range at
 * off == size is within. */
static inline bool fs_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

#endif
