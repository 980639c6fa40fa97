/* vhd: Microsoft VHD v1 images (fixed, dynamic, differencing) as bdevs.
 *
 * vhd_open() returns a struct bdev whose ops serve the image; a
 * differencing image holds its parent chain open (read-only) and reads
 * through it.  All calls return 0 or -errno and never print; failures fill
 * a struct bdev_err or the bdev's last error with "FILE: what is wrong".
 *
 * Crash safety: a newly allocated block's data and bitmap are durable
 * before the BAT entry that points at them reaches the disk; BAT and bitmap
 * updates are written at flush time (two fdatasync calls per flush, however
 * many blocks were allocated); the file always ends with a valid footer.
 */
#ifndef VHD_H
#define VHD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/bdev.h"

/* vhd_open() fails with this code when the file has no VHD footer at all
 * (neither at the end nor at offset 0): it may be a raw image. */
#define ENOVHD EMEDIUMTYPE

#define VHD_TYPE_FIXED   2
#define VHD_TYPE_DYNAMIC 3
#define VHD_TYPE_DIFF    4

#define VHD_DEFAULT_BLOCK_SIZE (2u << 20)
#define VHD_MAX_SIZE ((uint64_t)2040 << 30)   /* Hyper-V's and qemu's limit */
#define VHD_DEFAULT_MAX_DEPTH 32

/* vhd_open_opts.flags */
#define VHD_O_RDONLY              0x1u
#define VHD_O_IGNORE_PARENT_UUID  0x2u  /* open even if a parent's UUID differs */
#define VHD_O_SIZE_FOOTER         0x4u  /* always use the footer's current size */
#define VHD_O_SIZE_CHS            0x8u  /* always use the CHS geometry size */
#define VHD_O_NO_PARENT           0x10u /* do not open the parent (info only;
                                         * reads of parent ranges fail) */
#define VHD_O_PARENT_RW           0x20u /* open the parent read-write too */
#define VHD_O_DIRECT              0x40u /* data I/O with O_DIRECT + libaio:
                                         * fixed images' data area, and the
                                         * allocated blocks of sparse ones */
#define VHD_O_FORCE_SHARE         0x80u /* read-only: take no reader lock, so
                                         * an image another process writes
                                         * can be read (qemu's -U) */

struct vhd_open_opts {
	unsigned flags;
	int max_depth;            /* 0: VHD_DEFAULT_MAX_DEPTH */
};

struct bdev *vhd_open(const char *path, const struct vhd_open_opts *o,
		      struct bdev_err *e);

struct vhd;
/* The VHD behind a bdev, or NULL when b is not a VHD. */
struct vhd *vhd_of(struct bdev *b);
/* The parent of a differencing VHD (NULL otherwise); owned by v. */
struct bdev *vhd_parent(struct vhd *v);

struct vhd_create_opts {
	int type;                 /* VHD_TYPE_* */
	uint64_t size;            /* bytes, a multiple of 512 (ignored for diff) */
	uint32_t block_size;      /* 0: default (diff: the parent's) */
	const char *parent;       /* differencing: the parent's path */
	bool overwrite;           /* replace an existing file */
};

/* Create an image; the file appears under its name only when complete. */
int vhd_create(const char *path, const struct vhd_create_opts *o,
	       struct bdev_err *e);

struct vhd_info {
	int type;
	uint64_t size;            /* the size the disk is served with */
	uint64_t current_size;    /* footer fields */
	uint64_t original_size;
	uint64_t file_size;
	uint16_t cylinders;
	uint8_t heads, sectors;
	char creator_app[5];
	uint32_t creator_version;
	char creator_os[5];
	uint32_t timestamp;       /* seconds since 2000-01-01 UTC */
	uint8_t uuid[16];
	bool saved_state;
	bool used_footer_copy;    /* end footer damaged, opened with the copy */
	/* dynamic and differencing */
	uint32_t block_size;
	uint32_t max_table_entries;
	uint32_t allocated_blocks;
	uint64_t table_offset;
	/* differencing */
	uint8_t parent_uuid[16];
	uint32_t parent_timestamp;
	char parent_name[1024];   /* UTF-8 of the header's parent name */
	char parent_path[4096];   /* where the parent was found ("" if not) */
};

int vhd_get_info(struct vhd *v, struct vhd_info *out);
/* Path the image was opened with. */
const char *vhd_path(struct vhd *v);

/* Format a UUID as 8-4-4-4-12 lower-case hex (buf >= 37 bytes). */
char *vhd_uuid_str(const uint8_t uuid[16], char *buf);
/* Seconds since 2000-01-01 UTC to Unix time. */
int64_t vhd_time_to_unix(uint32_t t);
/* The CHS geometry of the VHD specification for a sector count. */
void vhd_chs(uint64_t sectors, uint16_t *c, uint8_t *h, uint8_t *s);

/* check: every problem is passed to report(); with VHD_CHECK_REPAIR what
 * can be repaired is, and reported with repaired = true.  Returns the
 * number of problems left (0 = clean) or -errno when the check could not
 * run (e filled): -ENOVHD when the file has no VHD footer at all (it is
 * not a VHD; a damaged footer is a problem).  Messages that start with
 * VHD_CHECK_LEAK are leaked space (file space nothing uses: the image
 * reads correctly; compact reclaims it, repair does not); they count as
 * problems.  Messages that start with "note: " do not count. */
#define VHD_CHECK_LEAK "leaked: "
#define VHD_CHECK_REPAIR 0x1u
#define VHD_CHECK_FORCE_SHARE 0x2u   /* no reader lock (without REPAIR) */
typedef void (*vhd_check_report_fn)(void *opaque, bool repaired,
				    const char *msg);
int vhd_check(const char *path, unsigned flags, vhd_check_report_fn report,
	      void *opaque, struct bdev_err *e);

/* ---- Operations on whole images: compact.c, merge.c, resize.c ----
 * Each works on closed image files (nobody else may have them open), is
 * crash-safe (a kill at any moment leaves valid images that read either the
 * old or the new content, as each function describes) and reports progress
 * through an optional callback: a non-zero return stops the operation at
 * the next safe point with -ECANCELED. */
typedef int (*vhd_progress_fn)(void *opaque, uint64_t done, uint64_t total);

struct vhd_compact_opts {
	vhd_progress_fn progress;
	void *opaque;
};
struct vhd_compact_stats {
	uint32_t blocks_before;   /* allocated blocks found */
	uint32_t blocks_dropped;  /* empty: all zeros / nothing present */
	uint32_t blocks_moved;    /* moved into holes */
	uint64_t size_before, size_after;   /* file bytes */
};
/* Drop the blocks of a dynamic image that read as zeros (of a differencing
 * image: that hold no sector), move blocks from the end of the file into
 * the holes, and shorten the file.  Fixed images: -EINVAL. */
int vhd_compact(const char *path, const struct vhd_compact_opts *o,
		struct vhd_compact_stats *st, struct bdev_err *e);

struct vhd_merge_opts {
	const char *into;         /* ancestor to merge into; NULL: the parent */
	bool keep;                /* keep the merged-away files */
	bool force;               /* merge even when other children depend on
	                           * a file the merge changes or removes */
	vhd_progress_fn progress;
	void *opaque;
};
struct vhd_merge_stats {
	int layers;               /* files merged into the ancestor */
	int removed;              /* of them deleted */
	uint64_t bytes;           /* bytes written into the ancestor */
	bool grown;               /* the ancestor was resized to the child's
	                           * (larger) size first */
	bool shrunk;              /* the ancestor was cut to the child's
	                           * (smaller) size, its data past it dropped */
	char into[4096];          /* the ancestor's path */
};
/* Merge differencing image `child` (and the layers between it and the
 * ancestor) into the ancestor, then delete the merged files unless keep.
 * Restartable: interrupted, the child's chain still reads the same and a
 * second run completes the merge.  An ancestor smaller than the child (the
 * child was resized) is grown first; a larger one is shrunk to the child's
 * size after the copy (what lay past the child's end is dropped), and where
 * the chain reads zeros past a shrunk layer's end the ancestor is zeroed,
 * so the merged disk reads exactly as the child did.  -EBUSY (message names the file) when
 * another image in the chain's folders depends on a file the merge changes
 * or removes, unless force. */
int vhd_merge(const char *child, const struct vhd_merge_opts *o,
	      struct vhd_merge_stats *st, struct bdev_err *e);

/* The check vhd_merge makes before it writes, for a caller that merges an
 * open child into its parent by its own means (a VMM's live merge): 0, or
 * -EBUSY (e names the file) when another image in the folders of the chain
 * depends on the parent (which the merge changes) or on the child (which
 * it removes).  child: the open top of the chain. */
int vhd_merge_check(struct bdev *child, struct bdev_err *e);

#define VHD_RESIZE_SHRINK 0x1u    /* allow a smaller size */
#define VHD_RESIZE_DISCARD 0x2u   /* with SHRINK: drop data past the new end
                                   * instead of refusing (merge) */
struct vhd_resize_stats {
	uint64_t old_size, new_size;
	uint32_t blocks_moved;    /* moved to the end to make room for the BAT */
	uint32_t blocks_dropped;  /* empty blocks past a shrunk end (their
	                           * space is reclaimed by vhd_compact) */
	bool locators_moved;      /* parent locators moved for the BAT */
	uint32_t blocks_hiding;   /* differencing, grown: blocks made to read
	                           * zeros over the parent's data in the new
	                           * range */
};
/* Change the disk size of a fixed, dynamic or differencing image in place
 * (size: a multiple of 512).  Growing a sparse image grows its BAT, moving
 * locator data and blocks out of the way when its sectors have no room.
 * Shrinking needs VHD_RESIZE_SHRINK and fails with -ENOTEMPTY, changing
 * nothing, when data lies past the new end.  Both footer sizes (current and
 * original) and the geometry are set for the new size. */
int vhd_resize(const char *path, uint64_t size, unsigned flags,
	       struct vhd_resize_stats *st, struct bdev_err *e);

#endif
