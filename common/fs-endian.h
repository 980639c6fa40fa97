/* fs-endian: little- and big-endian loads and stores of 16, 32 and 64-bit
 * values at any byte address (no alignment needed), for wire and on-disk
 * formats, in freestanding code (host and guest).  Byte shifts: correct on
 * any host byte order and compiled to one load or store plus a byte swap
 * where needed.  Includes only <stdint.h>; prefix fs_load_ / fs_store_. */
#ifndef FS_ENDIAN_H
#define FS_ENDIAN_H

#include <stdint.h>

static inline uint16_t fs_load_le16(const void *p)
{
	const uint8_t *b = p;

	return (uint16_t)(b[0] | b[1] << 8);
}
static inline uint32_t fs_load_le32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] | (uint32_t)b[1] << 8 |
	       (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static inline uint64_t fs_load_le64(const void *p)
{
	const uint8_t *b = p;

	return (uint64_t)fs_load_le32(b) | (uint64_t)fs_load_le32(b + 4) << 32;
}
static inline uint16_t fs_load_be16(const void *p)
{
	const uint8_t *b = p;

	return (uint16_t)(b[0] << 8 | b[1]);
}
static inline uint32_t fs_load_be32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | b[3];
}
static inline uint64_t fs_load_be64(const void *p)
{
	const uint8_t *b = p;

	return (uint64_t)fs_load_be32(b) << 32 | fs_load_be32(b + 4);
}

static inline void fs_store_le16(void *p, uint16_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}
static inline void fs_store_le32(void *p, uint32_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}
static inline void fs_store_le64(void *p, uint64_t v)
{
	fs_store_le32(p, (uint32_t)v);
	fs_store_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}
static inline void fs_store_be16(void *p, uint16_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}
static inline void fs_store_be32(void *p, uint32_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}
static inline void fs_store_be64(void *p, uint64_t v)
{
	fs_store_be32(p, (uint32_t)(v >> 32));
	fs_store_be32((uint8_t *)p + 4, (uint32_t)v);
}

#endif
