/* scsi: a SCSI disk target (SPC-4 / SBC-3 subset) on top of bdev.
 *
 * One target holds up to SCSI_MAX_LUNS logical units; each LUN is a
 * `struct bdev` the caller opened (and closes after scsi_lun_remove).  A
 * front end (iSCSI, the storage VSP) decodes its transport, fills a
 * `struct scsi_cmd` and calls scsi_submit().  Commands run asynchronously
 * through bdev_submit(): many may be in flight, and they complete in any
 * order.  done() receives the SCSI status, fixed-format sense data and the
 * residual.
 *
 * Threads: every function may be called from any thread.  done() runs
 * exactly once, on the submitting thread (possibly before scsi_submit()
 * returns) or on a bdev completion thread; it must not block for long
 * and must not call scsi_lun_remove() or scsi_target_free().
 */
#ifndef SCSI_H
#define SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct bdev;
struct scsi_target;

#define SCSI_MAX_LUNS     64
#define SCSI_SENSE_LEN    18    /* fixed-format sense data we return */

/* scsi_lun_add() flags */
#define SCSI_LUN_READ_ONLY 0x1u
/* 4096-byte logical blocks on a disk of 512-byte sectors (a 4Kn LUN): the
 * disk's size must be a multiple of 4096 bytes. */
#define SCSI_LUN_4K        0x2u

/* SCSI status codes (SAM-5) */
enum scsi_status {
	SCSI_GOOD = 0x00,
	SCSI_CHECK_CONDITION = 0x02,
	SCSI_CONDITION_MET = 0x04,
	SCSI_BUSY = 0x08,
	SCSI_RESERVATION_CONFLICT = 0x18,
	SCSI_TASK_SET_FULL = 0x28,
	SCSI_ACA_ACTIVE = 0x30,
	SCSI_TASK_ABORTED = 0x40,
};

/* Sense keys */
enum scsi_sense_key {
	SCSI_SK_NO_SENSE = 0x0,
	SCSI_SK_NOT_READY = 0x2,
	SCSI_SK_MEDIUM_ERROR = 0x3,
	SCSI_SK_HARDWARE_ERROR = 0x4,
	SCSI_SK_ILLEGAL_REQUEST = 0x5,
	SCSI_SK_UNIT_ATTENTION = 0x6,
	SCSI_SK_DATA_PROTECT = 0x7,
	SCSI_SK_ABORTED_COMMAND = 0xB,
	SCSI_SK_MISCOMPARE = 0xE,
};

/* Direction of the data phase, seen from the initiator. */
enum scsi_dir {
	SCSI_DIR_NONE = 0,
	SCSI_DIR_IN,     /* device to initiator (READ, INQUIRY...) */
	SCSI_DIR_OUT,    /* initiator to device (WRITE, UNMAP...) */
};

/* A command.  The front end owns it and keeps it and its buffers alive
 * until done() runs. */
struct scsi_cmd {
	/* Filled by the front end. */
	uint32_t lun;               /* 0..SCSI_MAX_LUNS-1; others: no LUN */
	uint8_t cdb[32];
	uint8_t cdb_len;            /* bytes valid in cdb (iSCSI: 16) */
	enum scsi_dir dir;          /* iov is used only in this direction:
	                             * a WRITE with a data-in buffer moves
	                             * nothing (overflow residual) */
	const struct iovec *iov;    /* the data buffer (expected length =
	                             * the iovec total) */
	int iovcnt;
	uint64_t initiator;         /* the I_T nexus: unit attentions and
	                             * reservations are per initiator */
	const char *initiator_name; /* optional (iSCSI initiator name, up to
	                             * 223 bytes): READ FULL STATUS */
	void (*done)(struct scsi_cmd *c);
	void *opaque;               /* the front end's */

	/* Set before done() runs. */
	uint8_t status;             /* enum scsi_status */
	uint8_t sense[SCSI_SENSE_LEN]; /* valid when sense_len > 0 */
	uint8_t sense_len;
	uint64_t xfer_len;          /* bytes moved to or from iov */
	int64_t residual;           /* iov total minus the bytes the command
	                             * wanted to move: > 0 underflow,
	                             * < 0 overflow (the buffer was short) */
};

/* A target with no LUNs; NULL with errno set. */
struct scsi_target *scsi_target_new(void);
/* Remove every LUN (waiting for their commands) and free t.  The caller
 * has stopped submitting. */
void scsi_target_free(struct scsi_target *t);

/* Make bd LUN number lun (flags: SCSI_LUN_READ_ONLY, SCSI_LUN_4K).  bd
 * stays the caller's; its logical block must be 512 or 4096 bytes.  Every initiator
 * gets REPORTED LUNS DATA HAS CHANGED on its other LUNs.  0, -EEXIST,
 * -EINVAL (lun out of range, bad block size, SCSI_LUN_4K on a size that
 * is not a multiple of 4096), -ENOMEM. */
int scsi_lun_add(struct scsi_target *t, uint32_t lun, struct bdev *bd,
		 unsigned flags);
/* Hot remove: new commands to lun fail with LOGICAL UNIT NOT SUPPORTED at
 * once; commands in flight complete with the same sense once their block
 * requests end.  Returns after the last of them, when bd may be closed.
 * 0 or -ENOENT.  Never call from done(). */
int scsi_lun_remove(struct scsi_target *t, uint32_t lun);

/* LOGICAL UNIT RESET (task management; the front end has aborted or
 * waited for the LUN's commands): RESERVE(6) is released, mode pages go
 * back to their defaults, every initiator gets 29/03.  Persistent
 * reservations stay.  0 or -ENOENT. */
int scsi_lun_reset(struct scsi_target *t, uint32_t lun);
/* The initiator's session ended (I_T nexus loss): its RESERVE(6)
 * reservations are released; when it returns it gets 29/07 first.
 * Its persistent registrations stay (SPC-4). */
void scsi_nexus_loss(struct scsi_target *t, uint64_t initiator);

/* Start cmd.  Never fails directly: every outcome reaches cmd->done(). */
void scsi_submit(struct scsi_target *t, struct scsi_cmd *cmd);

#endif
