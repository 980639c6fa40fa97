/* bdev: the block-device interface every disk of the stack implements.
 *
 * A back-end (VHD, raw file, pass-through LUN) embeds `struct bdev` as its
 * first member and fills a `struct bdev_ops` table.  Callers never call the
 * ops directly: they use the bdev_* functions below, which check bounds and
 * the read-only flag once, record changed ranges for change tracking, and
 * then dispatch.
 *
 * Contract
 *  - Offsets and lengths are bytes; any alignment is accepted (back-ends do
 *    read-modify-write for partial sectors).
 *  - Every function returns 0 or -errno; a failure also leaves a one-line
 *    message readable with bdev_errmsg() ("what, where").  Library code
 *    never prints.
 *  - Requests may be issued concurrently from several threads.  Requests to
 *    different blocks proceed in parallel; back-ends serialise their own
 *    metadata updates.  Two overlapping concurrent writes land in an
 *    unspecified order (as on a real disk).
 *  - A write is durable after a successful bdev_flush() or when it was
 *    issued with BDEV_FUA.
 */
#ifndef BDEV_H
#define BDEV_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

/* Request flags. */
#define BDEV_FUA        0x1u  /* write: durable before returning */
#define BDEV_NO_FALLBACK 0x2u /* write_zeroes: fail with -ENOTSUP unless fast */
#define BDEV_MAY_UNMAP  0x4u  /* write_zeroes: may deallocate */

/* Block-status flags of an extent. */
#define BDEV_ST_DATA    0x1u  /* allocated in some layer (or a raw file's data) */
#define BDEV_ST_ZERO    0x2u  /* reads as zeros */
#define BDEV_ST_ALLOC   0x4u  /* some layer holds the range (qemu's "present") */

struct bdev_status {
	uint64_t length;   /* bytes from the queried offset with these flags */
	uint32_t flags;    /* BDEV_ST_* */
	int depth;         /* layer holding the range: 0 = this disk, 1 = its
	                    * parent...; where no layer holds it (no
	                    * BDEV_ST_ALLOC): the deepest layer's number */
};

/* An error report for calls that have no handle yet (open, create). */
struct bdev_err {
	int code;          /* positive errno */
	char msg[512];
};

struct bdev;

struct bdev_ops {
	const char *kind;  /* "raw", "vhd-fixed", ... */
	int (*read)(struct bdev *b, void *buf, uint64_t off, size_t len);
	int (*write)(struct bdev *b, const void *buf, uint64_t off, size_t len,
		     unsigned flags);
	int (*flush)(struct bdev *b);
	int (*discard)(struct bdev *b, uint64_t off, uint64_t len);
	int (*write_zeroes)(struct bdev *b, uint64_t off, uint64_t len,
			    unsigned flags);
	/* Describe the extent starting at off (st->length <= len, > 0). */
	int (*block_status)(struct bdev *b, uint64_t off, uint64_t len,
			    struct bdev_status *st);
	void (*close)(struct bdev *b);
	/* Optional hint: start writing dirty data back now, without waiting. */
	void (*writeback)(struct bdev *b);
};

/* Called after every successful write, write_zeroes and discard (change
 * tracking); must be thread-safe.  Set with bdev_set_write_hook(). */
typedef void (*bdev_write_hook_fn)(void *opaque, uint64_t off, uint64_t len);

struct bdev {
	const struct bdev_ops *ops;
	uint64_t size;          /* bytes */
	uint32_t sector_size;   /* logical sector size: 512 or 4096 */
	bool read_only;
	const char *name;       /* for messages: usually the file name; owned */
	bdev_write_hook_fn hook;
	void *hook_opaque;
	pthread_mutex_t err_lock;
	char errmsg[512];       /* last error, guarded by err_lock */
};

/* For back-ends: initialise the base (copies name). 0 or -ENOMEM. */
int bdev_init(struct bdev *b, const struct bdev_ops *ops, const char *name,
	      uint64_t size, uint32_t sector_size, bool read_only);
/* For back-ends: release what bdev_init allocated. */
void bdev_fini(struct bdev *b);
/* Record "name: message" as b's last error; returns -code. */
int bdev_set_error(struct bdev *b, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* For callers. */
int bdev_read(struct bdev *b, void *buf, uint64_t off, size_t len);
int bdev_write(struct bdev *b, const void *buf, uint64_t off, size_t len,
	       unsigned flags);
int bdev_flush(struct bdev *b);
int bdev_discard(struct bdev *b, uint64_t off, uint64_t len);
int bdev_write_zeroes(struct bdev *b, uint64_t off, uint64_t len,
		      unsigned flags);
int bdev_block_status(struct bdev *b, uint64_t off, uint64_t len,
		      struct bdev_status *st);
void bdev_close(struct bdev *b);
/* Start writeback of what was written so far without waiting for it (a
 * hint for long sequential writers such as convert: the final flush then
 * has little left to do).  A no-op where the back-end has no such hint. */
void bdev_writeback(struct bdev *b);
void bdev_set_write_hook(struct bdev *b, bdev_write_hook_fn fn, void *opaque);
/* Copies b's last error message into buf (thread-safe). */
const char *bdev_errmsg(struct bdev *b, char *buf, size_t buflen);

/* Fill an error report: "fmt..." with code; returns -code. */
int bdev_err_set(struct bdev_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The raw-file back-end: a regular file or block device, buffered I/O.
 * Holes (SEEK_HOLE) report as zero, not data.  NULL on error (e filled). */
#define BDEV_OPEN_RDONLY 0x1u
struct bdev *bdev_file_open(const char *path, unsigned flags,
			    struct bdev_err *e);

/* ---- Copying one disk into another (common/copy.c) ---- */

/* Called after each chunk the writer finished; a non-zero return cancels
 * the copy (bdev_copy then fails with -ECANCELED).  Runs on the calling
 * thread. */
typedef int (*bdev_progress_fn)(void *opaque, uint64_t done, uint64_t total);

struct bdev_copy_opts {
	uint32_t chunk;        /* bytes per request, a multiple of 4096;
	                        * 0: 2 MiB */
	int readers;           /* reader threads; 0: 2 */
	int max_depth;         /* > 0: copy only ranges a layer above this
	                        * depth holds (BDEV_ST_ALLOC and st.depth <
	                        * max_depth); leave the rest of dst alone */
	bool dst_zeroed;       /* dst reads as zeros everywhere: do not write
	                        * zero ranges at all (sparse output) */
	bdev_progress_fn progress;
	void *opaque;
};

struct bdev_copy_stats {
	uint64_t data_bytes;   /* written as data */
	uint64_t zero_bytes;   /* read as zeros: skipped or zeroed in dst */
	uint64_t skip_bytes;   /* left alone (max_depth) */
};

/* Copy bytes [0, len) of src to dst (len <= both sizes) and flush dst.
 * Ranges that src's block status reports as zero are never read; data
 * that reads as zeros is found in 4 KiB granules and not written as data:
 * with dst_zeroed it is skipped, else zeroed with bdev_write_zeroes
 * (BDEV_MAY_UNMAP).  Reads run ahead on reader threads; dst is written in
 * ascending order from the calling thread, so a sparse VHD destination
 * allocates its blocks in disk order.  Returns 0 or -errno with e filled
 * from the failing disk's message.  st may be NULL. */
int bdev_copy(struct bdev *src, struct bdev *dst, uint64_t len,
	      const struct bdev_copy_opts *o, struct bdev_copy_stats *st,
	      struct bdev_err *e);

#endif
