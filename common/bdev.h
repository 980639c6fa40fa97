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

#include <sys/uio.h>

/* Request flags. */
#define BDEV_FUA        0x1u  /* write: durable before completing */
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

/* ---- Requests ----
 *
 * A request is an object the submitter owns: it fills the first group of
 * fields, calls bdev_submit(), and keeps the request and its buffers alive
 * until done() runs.  done() runs exactly once, on any thread: a worker, a
 * back-end's completion thread, or the submitting thread itself before
 * bdev_submit() returns (requests refused at once, or served at once).  It
 * must not block for long; it may submit new requests. */
enum bdev_op {
	BDEV_OP_READ = 0,
	BDEV_OP_WRITE,
	BDEV_OP_FLUSH,
	BDEV_OP_DISCARD,
	BDEV_OP_WRITE_ZEROES,
};

/* What went wrong, in classes a SCSI target turns into sense data without
 * parsing text (bdev_errclass() maps an errno). */
enum bdev_ec {
	BDEV_EC_OK = 0,
	BDEV_EC_MEDIUM,      /* the data could not be read or written: EIO... */
	BDEV_EC_RANGE,       /* outside the disk */
	BDEV_EC_READ_ONLY,   /* write to a read-only disk */
	BDEV_EC_NO_SPACE,    /* the backing store is full: ENOSPC, EDQUOT, EFBIG */
	BDEV_EC_UNSUPPORTED, /* the operation or flag is not supported */
	BDEV_EC_GONE,        /* the device or its backing went away */
	BDEV_EC_INVALID,     /* a malformed request (iovec total != len...) */
	BDEV_EC_RESOURCE,    /* out of memory or too busy: may work if retried */
};

struct bdev_req {
	/* Filled by the submitter. */
	enum bdev_op op;
	unsigned flags;          /* BDEV_FUA, BDEV_NO_FALLBACK, BDEV_MAY_UNMAP */
	uint64_t off;            /* bytes, any alignment */
	uint64_t len;            /* bytes; READ/WRITE: the iovec total */
	const struct iovec *iov; /* READ/WRITE buffers (any alignment) */
	int iovcnt;
	void (*done)(struct bdev_req *rq);
	void *opaque;            /* the submitter's */
	/* Set before done() runs. */
	int status;              /* 0 or -errno */
	enum bdev_ec ec;
	/* Private to the block layer and the back-end serving the request. */
	struct bdev *bd;
	struct bdev_req *next;   /* queues */
	void *be;                /* back-end's per-request state */
	unsigned priv_flags;
};

/* ---- Limits and identity, filled at open (bdev_init sets defaults) ---- */
struct bdev_limits {
	uint32_t logical_block;   /* 512 or 4096: what the disk addresses */
	uint32_t physical_block;  /* >= logical_block */
	uint32_t align_off;       /* offsets and lengths the back-end needs
	                           * (1 = any; the block layer pads/bounces) */
	uint32_t align_mem;       /* buffer address alignment it needs (1 = any) */
	uint32_t max_transfer;    /* bytes a request should not exceed; 0 = none */
	uint32_t opt_transfer;    /* preferred request size; 0 = unknown */
	uint32_t unmap_granularity; /* bytes; 0 = discard does nothing */
	bool unmap_zeroes;        /* discarded ranges then read as zeros */
	bool fua_native;          /* FUA costs no extra flush */
};

struct bdev_ident {
	uint8_t id[16];           /* stable designator: VHD UUID, device WWN,
	                           * or a hash of device+inode for plain files */
	char serial[64];          /* printable: VHD UUID, device serial... */
	bool from_device;         /* taken from a device's serial/WWN */
};

struct bdev;

/* The file behind a disk, for callers that work with the files a disk is
 * made of (change tracking records each one's identity; a backup names
 * its source's format).  Filled by bdev_file_info(). */
struct bdev_file_info {
	const char *path;         /* the file as opened; owned by the disk */
	const char *format;       /* "raw", "vhd-fixed", "vhd-dynamic",
	                           * "vhd-differencing" */
	uint8_t id[16];           /* the format's id of the file (a VHD's
	                           * footer UUID); zeros when it has none */
	struct bdev *backing;     /* the disk that serves what this file does
	                           * not hold (a differencing VHD's parent),
	                           * owned by this one; NULL when none */
	uint8_t backing_id[16];   /* the id this file names its backing file
	                           * by (a differencing VHD's parent UUID);
	                           * zeros when it names none */
};

struct bdev_ops {
	const char *kind;  /* "raw", "vhd-fixed", ... */
	/* Synchronous operations, run on the caller's or a worker's thread. */
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
	/* Optional native asynchronous I/O.  Called with a request already
	 * checked (range, read-only) and aligned to limits.align_off/mem.
	 * Returns 0 when the back-end took it (it later calls
	 * bdev_req_complete()), or -ENOTSUP to have this one request served
	 * by the generic worker adapter through the synchronous ops. */
	int (*submit)(struct bdev *b, struct bdev_req *rq);
	/* Optional: describe the file behind the disk (see
	 * bdev_file_info()). */
	int (*file_info)(struct bdev *b, struct bdev_file_info *fi);
};

/* Called after every successful write, write_zeroes and discard (change
 * tracking); must be thread-safe.  Set with bdev_set_write_hook(). */
typedef void (*bdev_write_hook_fn)(void *opaque, uint64_t off, uint64_t len);

struct bdev {
	const struct bdev_ops *ops;
	uint64_t size;          /* bytes */
	uint32_t sector_size;   /* = limits.logical_block */
	bool read_only;
	const char *name;       /* for messages: usually the file name; owned */
	struct bdev_limits limits;
	struct bdev_ident ident;
	struct bdev *lower;     /* layers: the disk this one wraps, else NULL */
	bool owns_lower;        /* closing this layer closes lower */
	bdev_write_hook_fn hook;
	void *hook_opaque;
	/* Block layer state. */
	int inflight;           /* requests and synchronous calls running */
	int drain_waiters;
	pthread_mutex_t mu;     /* drain waits; the RMW gate */
	pthread_cond_t cv;
	int gate_writes;        /* aligned writes in flight (gate.c) */
	int gate_rmw;           /* read-modify-writes running or waiting */
	bool gate_rmw_running;
	struct bdev_req *gate_held, **gate_tail; /* writes held while RMW runs */
};

/* For back-ends: initialise the base (copies name) with default limits
 * (logical = physical = sector_size, no alignment needed, no unmap, FUA
 * not native, empty identity).  0 or -ENOMEM. */
int bdev_init(struct bdev *b, const struct bdev_ops *ops, const char *name,
	      uint64_t size, uint32_t sector_size, bool read_only);
/* For back-ends: release what bdev_init allocated. */
void bdev_fini(struct bdev *b);

/* ---- Errors ----
 * Synchronous calls that fail leave a one-line message ("NAME: what,
 * where") in a thread-local buffer, as libnbd does: read it on the same
 * thread with bdev_last_error() right after the failure.  Asynchronous
 * requests carry their own status and class instead. */
/* Record "name: message" as this thread's last error; returns -code. */
int bdev_set_error(struct bdev *b, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *bdev_last_error(void);
/* Copies this thread's last error into buf (b is unused, kept for the
 * callers written before errors were thread-local). */
const char *bdev_errmsg(struct bdev *b, char *buf, size_t buflen);
/* Fill an error report: "fmt..." with code (also this thread's last
 * error); returns -code. */
int bdev_err_set(struct bdev_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The class of a -errno (or errno) from a back-end. */
enum bdev_ec bdev_errclass(int err);
const char *bdev_errclass_name(enum bdev_ec ec);

/* ---- For callers ---- */

/* Submit a request (see struct bdev_req).  Never fails directly: a bad
 * request completes with its status. */
void bdev_submit(struct bdev *b, struct bdev_req *rq);
/* For back-ends: finish rq with status (0 or -errno).  The class is taken
 * from the status unless the back-end set rq->ec already. */
void bdev_req_complete(struct bdev_req *rq, int status);
/* Plugging (one thread): between bdev_plug() and the matching
 * bdev_unplug(), back-ends may hold the requests this thread submits and
 * pass them to the kernel together at the outermost unplug (the
 * pass-through engine: one io_submit for the batch, so one device kick).
 * Nests.  Completions (errors too) may run inside bdev_unplug(). */
void bdev_plug(void);
void bdev_unplug(void);
/* For back-ends: while this thread is plugged, have fn(arg) run at its
 * outermost unplug (once for each distinct arg).  False when not
 * plugged or too many are registered: submit now. */
bool bdev_plug_defer(void (*fn)(void *), void *arg);
/* Wait until no request or synchronous call is running on b.  The caller
 * stops submitting first (the switch layer below does this for its
 * users). */
void bdev_drain(struct bdev *b);

/* Submit-and-wait forms; the synchronous back-end ops are called directly
 * when the back-end has no native submit. */
int bdev_read(struct bdev *b, void *buf, uint64_t off, size_t len);
int bdev_write(struct bdev *b, const void *buf, uint64_t off, size_t len,
	       unsigned flags);
int bdev_readv(struct bdev *b, const struct iovec *iov, int iovcnt,
	       uint64_t off);
int bdev_writev(struct bdev *b, const struct iovec *iov, int iovcnt,
		uint64_t off, unsigned flags);
int bdev_flush(struct bdev *b);
int bdev_discard(struct bdev *b, uint64_t off, uint64_t len);
int bdev_write_zeroes(struct bdev *b, uint64_t off, uint64_t len,
		      unsigned flags);
int bdev_block_status(struct bdev *b, uint64_t off, uint64_t len,
		      struct bdev_status *st);
/* Close b.  0, or the -errno of the final flush (the disk is closed and
 * freed either way; the message is this thread's last error). */
int bdev_close(struct bdev *b);
/* Start writeback of what was written so far without waiting for it (a
 * hint for long sequential writers such as convert: the final flush then
 * has little left to do).  A no-op where the back-end has no such hint. */
void bdev_writeback(struct bdev *b);
void bdev_set_write_hook(struct bdev *b, bdev_write_hook_fn fn, void *opaque);
/* The file behind b (through layers: the file behind the disk they wrap);
 * the files a disk is made of are fi->backing's, in turn.  0, or -ENOTSUP
 * when the back-end does not describe its file (pass-through LUNs). */
int bdev_file_info(struct bdev *b, struct bdev_file_info *fi);

/* ---- Layers (common/bdev-layer.c) ----
 * A layer is a bdev wrapping another (nbdkit filters are the model).  Its
 * ops may leave any operation NULL: the block layer then passes that
 * operation to b->lower unchanged (sync calls and requests alike).  The
 * layer's size, limits and identity start as the lower disk's. */
int bdev_layer_init(struct bdev *b, const struct bdev_ops *ops,
		    const char *name, struct bdev *lower, bool owns_lower);

/* An observing layer: fn(opaque, off, len) runs when a write, write-zeroes
 * or discard through it completes successfully, before the submitter
 * learns of it (change tracking).  Layers stack: two observers see every
 * write.  Closing it closes lower when owns_lower.  NULL with e filled. */
struct bdev *bdev_observe_open(struct bdev *lower, bool owns_lower,
			       bdev_write_hook_fn fn, void *opaque,
			       struct bdev_err *e);

/* A switch layer: the disk behind a consumer (a LUN) that can be replaced
 * while running.  bdev_switch_swap() holds new requests, drains those in
 * flight, flushes the old disk, puts new_lower in place, then lets the
 * held requests go to it.  new_lower must have the same size and logical
 * block size.  The switch owns its lower disk; *old (the one replaced)
 * is returned to the caller to close. 0 or -errno (nothing changed). */
struct bdev *bdev_switch_open(struct bdev *lower, struct bdev_err *e);
int bdev_switch_swap(struct bdev *sw, struct bdev *new_lower,
		     struct bdev **old);
/* The same in two steps, for work that needs the disk quiet in between
 * (creating a snapshot child, merging it back): bdev_switch_hold() holds
 * new requests, waits for those in flight, flushes and gives the disk
 * behind the switch in *cur (still in place; a failed flush resumes and
 * returns -errno).  bdev_switch_release() puts new_lower in place when not
 * NULL (the caller then owns *cur) and lets the held requests go; a
 * new_lower of another size, block size or writability is refused
 * (-EINVAL, the old disk stays, the requests go to it).  Call release
 * exactly once after a successful hold, from any thread. */
int bdev_switch_hold(struct bdev *sw, struct bdev **cur);
int bdev_switch_release(struct bdev *sw, struct bdev *new_lower);
/* The disk currently behind the switch (valid until the next swap). */
struct bdev *bdev_switch_lower(struct bdev *sw);

/* The raw-file back-end: a regular file or block device, buffered I/O.
 * Holes (SEEK_HOLE) report as zero, not data.  NULL on error (e filled). */
#define BDEV_OPEN_RDONLY 0x1u
#define BDEV_OPEN_DIRECT 0x2u  /* O_DIRECT + libaio where the back-end can */
#define BDEV_OPEN_NOLOCK 0x4u  /* read-only: take no image lock (-U) */
/* Every open takes the image lock of common/imglock.h (exclusive when
 * writable, shared when read-only): EBUSY "in use: ..." when another
 * process holds a conflicting one. */
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
