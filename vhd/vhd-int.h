/* vhd internals: on-disk layouts, the in-memory handle and the functions
 * the files of vhd/ share.  Not for use outside vhd/ (tests excepted). */
#ifndef VHD_INT_H
#define VHD_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bdev.h"
#include "common/imglock.h"
#include "common/util.h"
#include "vhd.h"

#define VHD_SECTOR 512u
#define VHD_BAT_UNUSED 0xffffffffu
#define VHD_NO_OFFSET 0xffffffffffffffffull
#define VHD_MAX_GEOMETRY_SECTORS (65535ull * 16 * 255)
#define VHD_MIN_BLOCK_SIZE 512u
#define VHD_MAX_BLOCK_SIZE (256u << 20)
#define VHD_MAX_LOCATOR_LEN 65536u
/* Most BAT entries we accept: what a disk of VHD_MAX_SIZE can use with
 * blocks of bs bytes, and never more than 2^25 (a 2040 GiB disk with
 * 64 KiB blocks; Hyper-V uses 512 KiB or 2 MiB).  The cap bounds the
 * memory a hostile image can make open take (13 bytes an entry, 416 MiB at
 * most).  Open and check refuse larger BATs before reading them. */
#define VHD_BAT_ENTRIES_CAP (1ull << 25)
#define VHD_MAX_TABLE_ENTRIES(bs) \
	UTIL_MIN((VHD_MAX_SIZE + (uint64_t)(bs) - 1) / (uint64_t)(bs), \
		 VHD_BAT_ENTRIES_CAP)
/* Data blocks are placed so that their data starts on this boundary. */
#define VHD_DATA_ALIGN 4096u

/* ---- On-disk layouts (all integers big-endian). ---- */

struct vhd_footer_disk {
	char cookie[8];            /* "conectix" */
	uint32_t features;         /* bit 1 (0x2) reserved, always set */
	uint32_t version;          /* 0x00010000 */
	uint64_t data_offset;      /* dynamic header; all ones for fixed */
	uint32_t timestamp;        /* seconds since 2000-01-01 00:00 UTC */
	char creator_app[4];
	uint32_t creator_version;
	char creator_os[4];        /* "Wi2k" */
	uint64_t original_size;
	uint64_t current_size;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t disk_type;        /* 2 fixed, 3 dynamic, 4 differencing */
	uint32_t checksum;         /* ~sum of bytes, this field as zero */
	uint8_t uuid[16];
	uint8_t saved_state;
	uint8_t reserved[427];
} __attribute__((packed));
_Static_assert(sizeof(struct vhd_footer_disk) == 512, "footer size");
_Static_assert(offsetof(struct vhd_footer_disk, checksum) == 64, "footer csum");
_Static_assert(offsetof(struct vhd_footer_disk, uuid) == 68, "footer uuid");

struct vhd_locator_disk {
	char code[4];              /* "W2ru", "W2ku", "MacX", ... or zeros */
	uint32_t data_space;       /* sectors (spec) or bytes (Hyper-V) */
	uint32_t data_length;      /* bytes */
	uint32_t reserved;
	uint64_t data_offset;      /* absolute file offset */
} __attribute__((packed));
_Static_assert(sizeof(struct vhd_locator_disk) == 24, "locator size");

struct vhd_header_disk {
	char cookie[8];            /* "cxsparse" */
	uint64_t data_offset;      /* unused: all ones */
	uint64_t table_offset;     /* BAT */
	uint32_t version;          /* 0x00010000 */
	uint32_t max_table_entries;
	uint32_t block_size;
	uint32_t checksum;
	uint8_t parent_uuid[16];
	uint32_t parent_timestamp;
	uint32_t reserved1;
	uint8_t parent_name[512];  /* UTF-16BE */
	struct vhd_locator_disk loc[8];
	uint8_t reserved2[256];
} __attribute__((packed));
_Static_assert(sizeof(struct vhd_header_disk) == 1024, "header size");
_Static_assert(offsetof(struct vhd_header_disk, checksum) == 36, "hdr csum");
_Static_assert(offsetof(struct vhd_header_disk, parent_name) == 64, "hdr name");
_Static_assert(offsetof(struct vhd_header_disk, loc) == 576, "hdr loc");

/* ---- Decoded (host-order) forms. ---- */

struct vhd_footer {
	uint32_t features, version;
	uint64_t data_offset;
	uint32_t timestamp;
	char creator_app[4];
	uint32_t creator_version;
	char creator_os[4];
	uint64_t original_size, current_size;
	uint16_t cylinders;
	uint8_t heads, sectors;
	uint32_t type;
	uint32_t checksum;
	uint8_t uuid[16];
	uint8_t saved_state;
};

struct vhd_locator {
	char code[4];
	uint32_t data_space, data_length;
	uint64_t data_offset;
};

struct vhd_header {
	uint64_t table_offset;
	uint32_t version;
	uint32_t max_table_entries;
	uint32_t block_size;
	uint32_t checksum;
	uint8_t parent_uuid[16];
	uint32_t parent_timestamp;
	uint8_t parent_name[512];  /* raw UTF-16BE */
	struct vhd_locator loc[8];
};

/* ---- format.c ---- */

uint32_t vhd_checksum(const void *buf, size_t len);
/* Decode and validate; on failure returns -EINVAL and writes a reason. */
int vhd_footer_decode(const void *buf, struct vhd_footer *f, char *why,
		      size_t whylen);
void vhd_footer_encode(const struct vhd_footer *f, void *buf);
int vhd_header_decode(const void *buf, struct vhd_header *h, char *why,
		      size_t whylen);
void vhd_header_encode(const struct vhd_header *h, void *buf);
/* True if the 8 bytes at buf are the footer cookie. */
bool vhd_is_footer_cookie(const void *buf);
uint32_t vhd_time_now(void);
uint32_t vhd_time_from_unix(int64_t t);
int vhd_uuid_generate(uint8_t uuid[16]);
/* Bytes of the sector bitmap of a block, padded to whole sectors. */
uint32_t vhd_bitmap_size(uint32_t block_size);
/* The size a footer describes: current size, or CHS for "vpc "/"qemu"
 * creators (like qemu), subject to VHD_O_SIZE_* flags. */
uint64_t vhd_footer_disk_size(const struct vhd_footer *f, unsigned flags);
/* Geometry to write for a new disk of `size` bytes: the spec's CHS when it
 * gives exactly `size`, else the maximum 65535/16/255. */
void vhd_geometry_for_size(uint64_t size, uint16_t *c, uint8_t *h,
			   uint8_t *s);

/* UTF-8 <-> UTF-16 (le = little-endian).  Encode returns the byte length or
 * -EINVAL (bad UTF-8) / -ENAMETOOLONG (does not fit); decode returns the
 * UTF-8 length or -EINVAL.  Output of decode is NUL-terminated. */
int vhd_utf16_encode(const char *s, uint8_t *out, size_t outlen, bool le);
int vhd_utf16_decode(const uint8_t *in, size_t inlen, char *out,
		     size_t outlen, bool le);
/* Turn a locator path into a POSIX one: '\' -> '/', drop a "./" prefix,
 * strip "file://" (MacX).  Returns 0, or -EINVAL for Windows drive paths
 * ("C:/...") which cannot be used as such (basename still set). */
int vhd_locator_to_posix(const char *in, char *out, size_t outlen,
			 const char **basename_out);
/* Relative path from directory `from_dir` to file `to` (both absolute,
 * normalised).  Returns 0 or -ENAMETOOLONG. */
int vhd_relpath(const char *from_dir, const char *to, char *out,
		size_t outlen);

/* ---- the open image (open.c, io.c) ---- */

struct pt_aio;

struct vhd {
	struct bdev b;             /* must be first */
	int fd;
	int dfd;                   /* VHD_O_DIRECT: the file again, O_DIRECT;
	                            * else -1 */
	struct pt_aio *aio;        /* data I/O on dfd; NULL without direct */
	char *path;
	unsigned open_flags;
	struct vhd_footer footer;
	struct vhd_header hdr;     /* dynamic and differencing */
	bool used_copy;
	bool on_blockdev;         /* the image is a block device's bytes */
	uint64_t file_size;        /* at open */
	uint64_t footer_off;       /* end footer; the next block goes here */
	uint32_t block_size;
	uint32_t bm_size;          /* sector bitmap bytes, padded */
	uint32_t spb;              /* sectors per block */
	uint32_t nblocks;          /* blocks covering the disk size */
	uint32_t *bat;             /* host order, max_table_entries */
	uint8_t **bm;              /* cached bitmaps, NULL until loaded */
	uint8_t *bm_dirty;         /* per block: bitmap to write at flush */
	uint8_t *bat_dirty;        /* per BAT sector: to write at flush */
	bool meta_dirty;
	int unsynced;              /* data written since the last flush (atomic) */
	pthread_mutex_t lock;      /* bat, bm[] pointers, dirty flags, footer_off */
	pthread_mutex_t alloc_lock;/* one block allocation at a time, held
	                            * across its I/O (lock is not) */
	pthread_mutex_t flush_lock;/* one flush at a time */
	pthread_rwlock_t rmw_lock; /* writes shared; partial-sector RMW exclusive */
	struct bdev *parent;       /* differencing: the parent chain */
	char *parent_path;
	int layers;                /* 1 + the parent's layers */
	struct img_lock lock_img;  /* common/imglock.h: this open's image lock */
};

/* io.c: the bdev ops. */
extern const struct bdev_ops vhd_fixed_ops;
extern const struct bdev_ops vhd_sparse_ops;
/* bdev_ops.file_info of both (open.c). */
int vhd_file_info(struct bdev *b, struct bdev_file_info *fi);

/* open.c: free everything without flushing (close flushes first). */
void vhd_destroy(struct vhd *v);

/* open.c helpers shared with check.c. */
/* Images in use: every open takes the image lock of common/imglock.h
 * (exclusive for read-write, shared for read-only, none with
 * VHD_O_FORCE_SHARE) in struct vhd's lock_img. */
/* Read and validate the BAT of a dynamic/differencing image: every used
 * entry inside [meta_end, footer_off) and no two blocks overlapping.
 * Fills why and returns -EINVAL on the first bad entry. */
int vhd_bat_validate(const uint32_t *bat, uint32_t entries,
		     uint32_t block_size, uint64_t meta_end,
		     uint64_t footer_off, char *why, size_t whylen);
/* Find the parent of a differencing image: locators W2ru, W2ku (and MacX),
 * then the header's parent name, all beside the child.  Writes the path
 * found; -ENOENT when none exists (why lists what was tried). */
int vhd_find_parent(int fd, const char *child_path,
		    const struct vhd_header *h, uint64_t file_size,
		    char *out, size_t outlen, char *why, size_t whylen);

/* ---- layout.c: file-layout helpers of compact, resize and merge ---- */

struct vhd_range {
	uint64_t off, len;
};

/* Bytes a block takes in the file: sector bitmap + data. */
static inline uint64_t vhd_block_span(const struct vhd *v)
{
	return (uint64_t)v->bm_size + v->block_size;
}
/* Where blocks may start: after the header and the BAT (vhd_bat_validate's
 * rule). */
uint64_t vhd_meta_end(const struct vhd *v);
/* The metadata ranges of a sparse image's file (footer copy, header, BAT,
 * parent locator data, sized generously), sorted by offset.  *out is
 * malloc'd; returns the count or -ENOMEM. */
int vhd_meta_ranges(const struct vhd *v, struct vhd_range **out);
/* Sort ranges by offset. */
void vhd_range_sort(struct vhd_range *r, size_t n);
/* The same as vhd_meta_ranges from a decoded footer and header (check works on the raw file),
 * with room for `extra` more ranges after the count returned. */
int vhd_meta_ranges_of(const struct vhd_footer *f, const struct vhd_header *h,
		       size_t extra, struct vhd_range **out);
/* fdatasync with a message on failure. */
int vhd_datasync(struct vhd *v);
/* Copy len bytes of v's file from `from` to `to` (ranges apart). */
int vhd_file_copy(struct vhd *v, uint64_t from, uint64_t to, uint64_t len);
/* Write the BAT sectors holding entries [first, last] from v->bat. */
int vhd_bat_store(struct vhd *v, uint32_t first, uint32_t last);
/* Whether allocated block blk holds nothing the disk shows: in a dynamic
 * image every present sector reads as zeros, in a differencing one no
 * sector is present.  Sectors past the disk end do not count. */
int vhd_block_empty(struct vhd *v, uint32_t blk, bool *empty);
/* Whether every present sector of allocated block blk (inside the disk)
 * reads as zeros, in any image type: nothing the disk shows but zeros. */
int vhd_block_zero(struct vhd *v, uint32_t blk, bool *zero);
/* Copy allocated block blk to the end of the file (bitmap + data, data on
 * a 4 KiB boundary).  The footer is written past the copy first, so the
 * file always ends with a footer; v->footer_off moves on.  The BAT is not
 * changed: *new_off is the copy's bitmap offset. */
int vhd_block_append(struct vhd *v, uint32_t blk, uint64_t *new_off);
/* Append a new block (for no BAT entry yet) with bitmap bm and data that
 * reads as zeros (a hole in the file); the footer is written past it
 * first.  *new_off is its bitmap offset; the caller writes data into it
 * and stores the BAT entry after a sync. */
int vhd_block_append_new(struct vhd *v, const uint8_t *bm, uint64_t *new_off);
/* Read the end footer's raw bytes. */
int vhd_footer_read_raw(struct vhd *v, uint8_t raw[512]);
/* Write the footer bytes raw at off (checksum recomputed first). */
int vhd_footer_write_raw(struct vhd *v, uint8_t raw[512], uint64_t off);
/* Report through e what went wrong on v (its last error). */
int vhd_err_from(struct vhd *v, int r, struct bdev_err *e);

#endif
