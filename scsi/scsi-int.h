/* Internals of the SCSI target, shared by the scsi/ files only.
 *
 * Locking: one mutex per target (t->mu) protects the LUN table, the
 * initiator table (unit attentions), each LUN's reservation state, mode
 * state and range locks.  It is never held across bdev_submit() or a
 * done() callback.  A task keeps its LUN alive through lun->inflight:
 * scsi_lun_remove() waits for it to drop to zero. */
#ifndef SCSI_INT_H
#define SCSI_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/bdev.h"
#include "scsi/scsi.h"

#define SCSI_PR_MAX_REGS   64      /* registrations per LUN */
#define SCSI_MAX_ITNS      256     /* initiators tracked for unit attentions */
#define SCSI_MAX_UNMAP_DESC 256    /* block limits VPD: descriptors a command */
#define SCSI_MAX_WS_BYTES  (128u << 20) /* WRITE SAME: bytes a command */
#define SCSI_WS_CHUNK      (1u << 20)   /* WRITE SAME: bytes a bdev request */
#define SCSI_MAX_CAW_BLOCKS 255     /* COMPARE AND WRITE, capped by bytes: */
#define SCSI_MAX_CAW_BYTES (64u << 10)
#define SCSI_MAX_LBA_DESC  256      /* GET LBA STATUS descriptors a reply */

/* Pending unit attentions, a bit per condition (reported in this order). */
enum {
	SCSI_UA_POWER_ON = 1u << 0,        /* 29/00 */
	SCSI_UA_CAPACITY = 1u << 1,        /* 2A/09 */
	SCSI_UA_LUNS_CHANGED = 1u << 2,    /* 3F/0E */
	SCSI_UA_MODE_CHANGED = 1u << 3,    /* 2A/01 */
	SCSI_UA_RESV_PREEMPTED = 1u << 4,  /* 2A/03 */
	SCSI_UA_RESV_RELEASED = 1u << 5,   /* 2A/04 */
	SCSI_UA_REGS_PREEMPTED = 1u << 6,  /* 2A/05 */
	SCSI_UA_RESET = 1u << 7,           /* 29/03 LOGICAL UNIT RESET */
	SCSI_UA_NEXUS_LOSS = 1u << 8,      /* 29/07 I_T NEXUS LOSS */
};

/* An initiator (I_T nexus) the target has seen. */
struct scsi_itn {
	uint64_t id;
	uint16_t ua[SCSI_MAX_LUNS];  /* SCSI_UA_* per LUN */
};

struct scsi_pr_reg {
	uint64_t itn;
	uint64_t key;
	char name[224];              /* initiator name for READ FULL STATUS */
};

/* Reservation state of a LUN (SPC-4 5.13). */
struct scsi_pr {
	uint32_t gen;                /* PRgeneration */
	int nregs;
	struct scsi_pr_reg regs[SCSI_PR_MAX_REGS];
	bool resv;                   /* a persistent reservation exists */
	uint8_t type;                /* its type (SCSI_PR_*) */
	uint64_t holder;             /* its holder (not for all-registrants) */
	bool spc2;                   /* RESERVE(6) held by spc2_holder */
	uint64_t spc2_holder;
};

struct scsi_task;

/* A range lock entry (embedded in its task): COMPARE AND WRITE takes its
 * range exclusively, writes take theirs shared.  Entries queue per LUN in
 * arrival order; an entry is granted when no earlier overlapping entry
 * conflicts with it. */
struct scsi_rlock {
	uint64_t lba, n;
	bool excl, granted, queued;
	void (*cont)(struct scsi_task *tk);  /* runs once granted */
	struct scsi_task *tk;
	struct scsi_rlock *next;             /* the LUN's queue */
	struct scsi_rlock *run_next;         /* granted by one release */
};

struct scsi_lun {
	struct bdev *bd;
	uint32_t num;
	bool ro;
	uint32_t bs;                 /* logical block size */
	uint32_t phys;               /* physical block: the disk's, >= bs */
	uint64_t blocks;             /* capacity last reported */
	int inflight;                /* tasks using this LUN */
	bool removed;
	bool wce;                    /* caching mode page: write cache on */
	struct scsi_pr pr;
	struct scsi_rlock *locks;    /* range lock queue */
};

struct scsi_target {
	pthread_mutex_t mu;
	pthread_cond_t cv;           /* lun->inflight drops to zero */
	struct scsi_lun *luns[SCSI_MAX_LUNS];
	struct scsi_itn *itns;
	int nitns;
};

/* Operation flags */
#define SCSI_OPF_NO_LUN   0x01   /* runs without a LUN (absent LUN) */
#define SCSI_OPF_NO_UA    0x02   /* does not report unit attentions */
#define SCSI_OPF_PR_OK    0x04   /* allowed whatever the reservation */
#define SCSI_OPF_READ     0x08   /* reads the medium (conflicts: EA) */
#define SCSI_OPF_WRITE    0x10   /* changes the medium (conflicts: WE, EA) */
#define SCSI_OPF_SPC2_OK  0x20   /* allowed under another's RESERVE(6) */

/* An entry of the dispatch table (scsi/ops.c). */
struct scsi_op {
	uint8_t opcode;
	int16_t sa;                  /* service action, -1: none */
	uint8_t cdb_len;
	uint8_t flags;               /* SCSI_OPF_* */
	void (*handler)(struct scsi_task *tk);
	uint8_t usage[16];           /* CDB usage data (REPORT SUPPORTED
	                              * OPERATION CODES) */
};

extern const struct scsi_op scsi_ops[];
extern const size_t scsi_nops;

/* The state of one command, owned by the target from scsi_submit() until
 * done(). */
struct scsi_task {
	struct scsi_cmd *cmd;
	struct scsi_target *t;
	struct scsi_lun *lun;        /* NULL: no such LUN */
	const struct scsi_op *op;
	const uint8_t *cdb;          /* cmd->cdb */
	uint64_t avail;              /* bytes in cmd->iov */
	uint64_t want;               /* bytes the command wanted to move */
	uint64_t moved;              /* bytes moved */
	/* block requests: rqs[0..nrq) */
	struct bdev_req rq1, *rqs;
	int nrq;
	int pending;                 /* requests not done, +1 while submitting */
	enum bdev_ec ec;             /* the first failure's class */
	int status_err;
	void (*next)(struct scsi_task *tk); /* after all requests */
	/* buffers owned by the task (freed at the end) */
	uint8_t *buf;
	size_t buflen;
	struct iovec *iov;
	int iovcnt;
	/* command parameters decoded by the handlers */
	uint64_t lba;
	uint64_t nblocks;
	unsigned wflags;             /* BDEV_FUA... */
	bool is_write;
	struct scsi_rlock rl;
};

/* ---- target.c ---- */
/* Finish tk: fill the command's results, free the task, call done(). */
void scsi_task_finish(struct scsi_task *tk);
/* GOOD status and finish. */
void scsi_task_good(struct scsi_task *tk);
/* Copy up to len bytes of data (the command's full answer) to the data-in
 * buffer, cut to alloc (allocation length); GOOD and finish. */
void scsi_task_data_in(struct scsi_task *tk, const void *data, size_t len,
		       size_t alloc);
/* Copy the data-out buffer's first min(len, avail) bytes to dst (the
 * command wants len); returns the bytes copied. */
size_t scsi_task_data_out(struct scsi_task *tk, void *dst, size_t len);
/* Bytes of the command's buffer usable in direction d: all of it when
 * the front end declared that direction, else none (a WRITE whose buffer
 * was declared data-in writes nothing). */
static inline uint64_t scsi_task_room(const struct scsi_task *tk,
				      enum scsi_dir d)
{
	return tk->cmd->dir == d ? tk->avail : 0;
}
/* Commands whose data-out buffer has one exact size (COMPARE AND WRITE:
 * the verify and write data; WRITE SAME: one block, none with NDOB): true
 * when the buffer is len bytes in the data-out direction.  Otherwise
 * ILLEGAL REQUEST, INVALID FIELD IN CDB pointing at the CDB's length
 * field (byte) is sent and false returned: the CDB and the transfer
 * disagree, and unlike a WRITE's blocks the data cannot be cut. */
bool scsi_check_out_len(struct scsi_task *tk, uint64_t len, int byte);
/* Allocate tk->rqs for n requests (zeroed); false (BUSY sent) on ENOMEM. */
bool scsi_task_reqs(struct scsi_task *tk, int n);
/* Submit tk->rqs[0..nrq) to the LUN's disk; when the last completes,
 * next(tk) runs with tk->ec set to the first failure's class. */
void scsi_task_submit(struct scsi_task *tk, void (*next)(struct scsi_task *));
/* A `next` that finishes: GOOD, or sense from tk->ec. */
void scsi_task_end_io(struct scsi_task *tk);
/* An iovec for the first len bytes of the command's buffer in tk->iov;
 * false (BUSY sent) on ENOMEM. */
bool scsi_task_trim_iov(struct scsi_task *tk, uint64_t len);
/* Raise ua on every initiator for LUN lun (all LUNs: lun < 0).  Called
 * with t->mu held. */
void scsi_ua_raise(struct scsi_target *t, int lun, uint16_t ua);
/* Raise ua on LUN lun for one initiator.  Called with t->mu held. */
void scsi_ua_raise_itn(struct scsi_target *t, int lun, uint64_t itn,
		       uint16_t ua);
/* Take and clear the pending unit attention of tk's initiator on its LUN;
 * false if none.  Called with t->mu held. */
bool scsi_ua_take(struct scsi_task *tk, uint8_t *asc, uint8_t *ascq);

/* ---- sense.c ---- */
void scsi_sense_fill(uint8_t *sense, uint8_t key, uint8_t asc, uint8_t ascq);
/* CHECK CONDITION with key/asc/ascq, then finish. */
void scsi_fail(struct scsi_task *tk, uint8_t key, uint8_t asc, uint8_t ascq);
/* ILLEGAL REQUEST, INVALID FIELD IN CDB, pointing at byte/bit (bit < 0:
 * the whole byte); finish. */
void scsi_fail_cdb(struct scsi_task *tk, int byte, int bit);
/* ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST at byte/bit; finish. */
void scsi_fail_param(struct scsi_task *tk, int byte, int bit);
/* ILLEGAL REQUEST, LBA OUT OF RANGE; finish. */
void scsi_fail_range(struct scsi_task *tk);
/* MISCOMPARE (1D/00) with the offset in INFORMATION; finish. */
void scsi_fail_miscompare(struct scsi_task *tk, uint64_t offset);
/* Status and sense for a block-layer failure class; finish. */
void scsi_fail_ec(struct scsi_task *tk, enum bdev_ec ec);
/* Status only (BUSY, RESERVATION CONFLICT, TASK SET FULL); finish. */
void scsi_fail_status(struct scsi_task *tk, uint8_t status);

/* ---- handlers (one file a concern) ---- */
void scsi_h_inquiry(struct scsi_task *tk);          /* inquiry.c */
void scsi_h_read_capacity10(struct scsi_task *tk);  /* unit.c */
void scsi_h_read_capacity16(struct scsi_task *tk);
void scsi_h_report_luns(struct scsi_task *tk);
void scsi_h_tur(struct scsi_task *tk);
void scsi_h_request_sense(struct scsi_task *tk);
void scsi_h_start_stop(struct scsi_task *tk);
void scsi_h_prevent_allow(struct scsi_task *tk);
void scsi_h_rsoc(struct scsi_task *tk);             /* ops.c */
void scsi_h_read(struct scsi_task *tk);             /* rw.c */
void scsi_h_write(struct scsi_task *tk);
void scsi_h_verify(struct scsi_task *tk);
void scsi_h_sync_cache(struct scsi_task *tk);
void scsi_h_prefetch(struct scsi_task *tk);
void scsi_h_write_verify(struct scsi_task *tk);      /* rmw.c */
void scsi_h_orwrite(struct scsi_task *tk);
void scsi_h_write_same(struct scsi_task *tk);       /* ws.c */
void scsi_h_unmap(struct scsi_task *tk);
void scsi_h_caw(struct scsi_task *tk);              /* caw.c */
void scsi_h_mode_sense(struct scsi_task *tk);       /* mode.c */
void scsi_h_mode_select(struct scsi_task *tk);
void scsi_h_pr_in(struct scsi_task *tk);            /* pr.c */
void scsi_h_pr_out(struct scsi_task *tk);
void scsi_h_reserve6(struct scsi_task *tk);
void scsi_h_release6(struct scsi_task *tk);
void scsi_h_get_lba_status(struct scsi_task *tk);   /* lba-status.c */

/* ---- pr.c ---- */
/* Whether tk's command conflicts with the LUN's reservations (SPC-4
 * table 66 and RESERVE(6)).  Called with t->mu held. */
bool scsi_pr_conflict(struct scsi_task *tk);

/* ---- caw.c: range locks ---- */
/* Queue tk->rl for [lba, lba+n); cont(tk) runs once it is granted (maybe
 * at once, on this thread). */
void scsi_rlock_acquire(struct scsi_task *tk, uint64_t lba, uint64_t n,
			bool excl, void (*cont)(struct scsi_task *));
/* Release tk->rl if queued, and start the waiters it was blocking. */
void scsi_rlock_release(struct scsi_task *tk);

/* ---- helpers for handlers ---- */
/* Check [lba, lba+n) against the capacity; false (LBA OUT OF RANGE sent)
 * when it is outside or overflows. */
bool scsi_check_range(struct scsi_task *tk, uint64_t lba, uint64_t n);
/* LBA and block count of a READ/WRITE/VERIFY/SYNCHRONIZE CACHE/WRITE SAME
 * CDB by its length (6: count 0 = 256); *count_byte: where the count is. */
void scsi_cdb_lba(const struct scsi_task *tk, uint64_t *lba, uint64_t *n,
		  int *count_byte);
/* Decode and check what READ, WRITE, WRITE AND VERIFY and ORWRITE share
 * (rw.c): protection field, length against the maximum transfer, range.
 * False when tk was answered; true with tk->lba/nblocks set (nblocks 0:
 * nothing to do, GOOD sent and false returned). */
bool scsi_rw_prepare(struct scsi_task *tk);
/* Read-only LUN: true (WRITE PROTECTED sent). */
bool scsi_check_wp(struct scsi_task *tk);
static inline bool scsi_lun_ro(const struct scsi_lun *l)
{
	return l->ro || l->bd->read_only;
}
static inline bool scsi_lun_can_unmap(const struct scsi_lun *l)
{
	return l->bd->limits.unmap_granularity > 0;
}
static inline uint64_t scsi_lun_blocks(const struct scsi_lun *l)
{
	return l->bd->size / l->bs;
}

#endif
