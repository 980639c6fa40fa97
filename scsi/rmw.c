/* Writes that read the medium too.  WRITE AND VERIFY (10)/(12)/(16)
 * (SBC-3 5.39-5.41) writes the blocks through to the medium, reads them
 * back, and with BYTCHK 1 compares them with the data-out buffer (BYTCHK
 * 0: they only have to read).  ORWRITE (16) (SBC-3 5.9) reads the blocks,
 * ORs the data-out buffer into them and writes the result.
 *
 * Both hold their range exclusively from the first request to the last
 * (the range locks of caw.c), so no other write lands in between: the
 * compare cannot see someone else's data, the OR cannot lose it.  Like
 * WRITE, both move what the buffer holds in whole blocks and report the
 * rest as a residual (libiscsi's WriteVerify*.Residuals).  The extra
 * buffer is as large as the data moved, so it is bounded by the buffer
 * the front end already holds. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

/* Decode, check, and size the data to move; allocate tk->buf for it.
 * False when tk was answered (a zero-length transfer is GOOD). */
static bool rmw_prepare(struct scsi_task *tk)
{
	uint32_t bs = tk->lun->bs;

	tk->is_write = true;
	if (!scsi_rw_prepare(tk) || scsi_check_wp(tk))
		return false;
	tk->want = tk->nblocks * bs;
	tk->moved = UTIL_MIN(tk->want, scsi_task_room(tk, SCSI_DIR_OUT) / bs * bs);
	if (!tk->moved) {
		scsi_task_good(tk);
		return false;
	}
	tk->buflen = (size_t)tk->moved;
	tk->buf = malloc(tk->buflen);
	if (!tk->buf) {
		scsi_fail_status(tk, SCSI_BUSY);
		return false;
	}
	return true;
}

/* One request over the moved range; next(tk) runs when it completes. */
static void rmw_io(struct scsi_task *tk, enum bdev_op op,
		   const struct iovec *iov, int iovcnt,
		   void (*next)(struct scsi_task *))
{
	if (!scsi_task_reqs(tk, 1))
		return;
	tk->rqs[0] = (struct bdev_req){ .op = op,
		.flags = op == BDEV_OP_WRITE ? tk->wflags : 0,
		.off = tk->lba * tk->lun->bs, .len = tk->moved, .iov = iov,
		.iovcnt = iovcnt };
	scsi_task_submit(tk, next);
}

/* tk->buf as the only buffer of the next request. */
static void use_buf(struct scsi_task *tk)
{
	tk->iov[0] = (struct iovec){ tk->buf, tk->buflen };
	tk->iovcnt = 1;
}

/* ---- WRITE AND VERIFY ---- */

/* The first byte where tk->buf (read back) differs from the data-out
 * buffer, or -1. */
static int64_t first_diff(const struct scsi_task *tk)
{
	const struct scsi_cmd *c = tk->cmd;
	uint64_t off = 0;

	for (int i = 0; i < c->iovcnt && off < tk->moved; i++) {
		const uint8_t *p = c->iov[i].iov_base;
		size_t n = (size_t)UTIL_MIN((uint64_t)c->iov[i].iov_len,
					    tk->moved - off);

		if (memcmp(tk->buf + off, p, n)) {
			for (size_t k = 0; k < n; k++)
				if (tk->buf[off + k] != p[k])
					return (int64_t)(off + k);
		}
		off += n;
	}
	return -1;
}

static void wv_compare(struct scsi_task *tk)
{
	int64_t d;

	if (tk->ec) {
		scsi_fail_ec(tk, tk->ec);
		return;
	}
	if (tk->cdb[1] & 0x02) {                  /* BYTCHK 1 */
		d = first_diff(tk);
		if (d >= 0) {
			scsi_fail_miscompare(tk, (uint64_t)d);
			return;
		}
	}
	scsi_task_good(tk);
}

static void wv_read_back(struct scsi_task *tk)
{
	if (tk->ec) {
		scsi_fail_ec(tk, tk->ec);
		return;
	}
	tk->is_write = false;                     /* a failure now is a read's */
	use_buf(tk);
	rmw_io(tk, BDEV_OP_READ, tk->iov, tk->iovcnt, wv_compare);
}

/* Runs with the range held exclusively. */
static void wv_write(struct scsi_task *tk)
{
	rmw_io(tk, BDEV_OP_WRITE, tk->iov, tk->iovcnt, wv_read_back);
}

void scsi_h_write_verify(struct scsi_task *tk)
{
	/* BYTCHK is bits 2..1 in SBC-4; 10b is reserved and 11b (one block
	 * compared with each) is not implemented. */
	if (tk->cdb[1] & 0x04) {
		scsi_fail_cdb(tk, 1, 2);
		return;
	}
	if (!rmw_prepare(tk) || !scsi_task_trim_iov(tk, tk->moved))
		return;
	tk->wflags = BDEV_FUA;    /* verify what the medium holds, not a cache */
	scsi_rlock_acquire(tk, tk->lba, tk->moved / tk->lun->bs, true, wv_write);
}

/* ---- ORWRITE ---- */

static void or_merge(struct scsi_task *tk)
{
	const struct scsi_cmd *c = tk->cmd;
	uint64_t off = 0;

	if (tk->ec) {
		scsi_fail_ec(tk, tk->ec);
		return;
	}
	for (int i = 0; i < c->iovcnt && off < tk->moved; i++) {
		const uint8_t *p = c->iov[i].iov_base;
		size_t n = (size_t)UTIL_MIN((uint64_t)c->iov[i].iov_len,
					    tk->moved - off);

		for (size_t k = 0; k < n; k++)
			tk->buf[off + k] |= p[k];
		off += n;
	}
	tk->is_write = true;
	rmw_io(tk, BDEV_OP_WRITE, tk->iov, tk->iovcnt, scsi_task_end_io);
}

/* Runs with the range held exclusively. */
static void or_read(struct scsi_task *tk)
{
	tk->is_write = false;
	rmw_io(tk, BDEV_OP_READ, tk->iov, tk->iovcnt, or_merge);
}

void scsi_h_orwrite(struct scsi_task *tk)
{
	if (!rmw_prepare(tk))
		return;
	tk->iov = malloc(sizeof(*tk->iov));
	if (!tk->iov) {
		scsi_fail_status(tk, SCSI_BUSY);
		return;
	}
	use_buf(tk);
	if (tk->cdb[1] & 0x08 || !__atomic_load_n(&tk->lun->wce, __ATOMIC_RELAXED))
		tk->wflags = BDEV_FUA;
	scsi_rlock_acquire(tk, tk->lba, tk->moved / tk->lun->bs, true, or_read);
}
