/* memdisk: an in-memory test disk for the block-layer unit tests
 * (test-bdev-req.c, test-bdev-layer.c).  Linked into every unit test
 * program; uses no cmocka so it can run on any thread.
 *
 *  - MD_NATIVE: only a native submit op (no synchronous op at all); a
 *    completion thread serves queued requests in a shuffled order.
 *  - MD_SYNC: only synchronous ops; the generic worker pool serves
 *    bdev_submit().
 *
 * Every request the disk receives (submit or synchronous op) is checked
 * against limits.align_off / align_mem; a violation is counted in
 * bad_align (tests assert it stays 0), never asserted on the serving
 * thread.  Faults fail any request touching a chosen byte. */
#ifndef MEMDISK_H
#define MEMDISK_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>

#include "common/bdev.h"

/* MD_SYNC_NOWZ: MD_SYNC without a write_zeroes op (the block layer's
 * fallback writes zeros). */
enum md_mode { MD_NATIVE, MD_SYNC, MD_SYNC_NOWZ };

#define MD_MAX_FAULTS 16

struct memdisk {
	struct bdev b;              /* must be first */
	uint8_t *data;              /* the disk's bytes */
	int id;                     /* for the switch tests */
	pthread_mutex_t mu;         /* everything below, and data */
	pthread_cond_t cv;
	/* Native mode: the queue the completion thread serves. */
	struct bdev_req **q;
	int nq, capq;
	bool stall;                 /* completion thread waits while set */
	bool stop;
	bool has_thread;
	pthread_t thr;
	unsigned seed;
	unsigned decline_ops;       /* 1 << op: submit returns -ENOTSUP */
	struct { uint64_t off; int err; unsigned ops; } faults[MD_MAX_FAULTS];
	int nfaults;
	int flush_err;              /* flush fails with this -errno */
	/* Counters (under mu). */
	int received;               /* requests taken by submit */
	int sync_ops;               /* synchronous ops called */
	int flushes;
	int bad_align;              /* alignment violations seen */
	int max_queued;
	long first_write_seq, flush_seq; /* order stamps (md_seq) */
	int *closed;                /* set to 1 by close when non-NULL */
	uint8_t *written_by;        /* per 4 KiB block: id of the last
	                             * writer disk (shared by tests), or NULL */
};

/* Open a disk of size bytes (filled with fill), logical block 512,
 * alignment align (1, 512 or 4096) for offsets and memory. */
struct memdisk *md_open(enum md_mode mode, uint64_t size, uint32_t align,
			int fill, unsigned seed);
/* Fail requests of ops (mask of 1 << BDEV_OP_*) touching byte off. */
void md_fault(struct memdisk *m, uint64_t off, int err, unsigned ops);
void md_clear_faults(struct memdisk *m);
void md_set_stall(struct memdisk *m, bool stall);
int md_queued(struct memdisk *m);
int md_get(struct memdisk *m, const int *field);
/* A global, increasing stamp (orders events across disks). */
long md_seq(void);

/* Counting completions across threads. */
struct md_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n;
};
void md_wait_init(struct md_wait *w);
void md_wait_add(struct md_wait *w);
int md_wait_count(struct md_wait *w);
/* Wait until n completions were counted. */
void md_wait_for(struct md_wait *w, int n);
void md_wait_fini(struct md_wait *w);

/* A test byte pattern: differs per offset and seed, never zero. */
static inline uint8_t md_pat(unsigned seed, uint64_t off)
{
	return (uint8_t)((((off + 7) * 2654435761u) >> 11) + seed * 131 + 1) | 1;
}

/* A test request with its buffers. */
struct md_req {
	struct bdev_req rq;
	struct iovec iov[64];
	uint8_t *mem;               /* the buffers' allocation; free() it */
	struct md_wait *w;          /* counts its completion */
	void *ctx;                  /* the test's */
};

/* Prepare t as op on [off, off+len), done() counting in w.  READ and
 * WRITE get nseg segments of odd sizes (at most 64) in one buffer that
 * starts skew bytes past a 4 KiB boundary; a write's bytes are pattern
 * seed, copied into model when not NULL; write-zeroes and discard zero
 * model's range.  0 or -ENOMEM. */
int md_req_prep(struct md_req *t, struct md_wait *w, enum bdev_op op,
		uint64_t off, uint64_t len, int nseg, unsigned skew,
		unsigned seed, uint8_t *model);
void md_req_done(struct bdev_req *rq);
/* The bytes of a READ or WRITE (its segments are contiguous). */
const uint8_t *md_req_data(const struct md_req *t);

#define MD_RW ((1u << BDEV_OP_READ) | (1u << BDEV_OP_WRITE))
#define MD_ALL 0x1fu

#endif
