/* The data path: READ and WRITE (6)/(10)/(12)/(16), VERIFY
 * (10)/(12)/(16), SYNCHRONIZE CACHE (10)/(16), PRE-FETCH (10)/(16).  Data moves straight between the
 * command's scatter list and the disk; a buffer shorter than the command
 * wants moves what fits (whole blocks for writes) and reports an
 * overflow residual, as iSCSI initiators expect. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

void scsi_cdb_lba(const struct scsi_task *tk, uint64_t *lba, uint64_t *n,
		  int *count_byte)
{
	const uint8_t *c = tk->cdb;

	switch (tk->op->cdb_len) {
	case 6:
		*lba = (uint64_t)(c[1] & 0x1f) << 16 | util_get_be16(c + 2);
		*n = c[4] ? c[4] : 256;
		*count_byte = 4;
		break;
	case 10:
		*lba = util_get_be32(c + 2);
		*n = util_get_be16(c + 7);
		*count_byte = 7;
		break;
	case 12:
		*lba = util_get_be32(c + 2);
		*n = util_get_be32(c + 6);
		*count_byte = 6;
		break;
	default:
		*lba = util_get_be64(c + 2);
		*n = util_get_be32(c + 10);
		*count_byte = 10;
		break;
	}
}

bool scsi_rw_prepare(struct scsi_task *tk)
{
	const struct scsi_lun *l = tk->lun;
	uint32_t maxb = l->bd->limits.max_transfer / l->bs;
	int cb;

	scsi_cdb_lba(tk, &tk->lba, &tk->nblocks, &cb);
	if (tk->op->cdb_len > 6 && (tk->cdb[1] & 0xe0)) {
		scsi_fail_cdb(tk, 1, 7);          /* RD/WRPROTECT */
		return false;
	}
	if (maxb && tk->nblocks > maxb) {
		scsi_fail_cdb(tk, cb, -1);
		return false;
	}
	if (!scsi_check_range(tk, tk->lba, tk->nblocks ? tk->nblocks : 1))
		return false;
	if (!tk->nblocks) {
		scsi_task_good(tk);
		return false;
	}
	return true;
}

/* Queue one READ or WRITE of the first `bytes` of the command's buffer
 * at tk->lba. */
static void rw_submit(struct scsi_task *tk)
{
	struct bdev_req *rq = &tk->rqs[0];

	rq->op = tk->is_write ? BDEV_OP_WRITE : BDEV_OP_READ;
	rq->flags = tk->wflags;
	rq->off = tk->lba * tk->lun->bs;
	rq->len = tk->moved;
	rq->iov = tk->iov;
	rq->iovcnt = tk->iovcnt;
	scsi_task_submit(tk, scsi_task_end_io);
}

void scsi_h_read(struct scsi_task *tk)
{
	if (!scsi_rw_prepare(tk))
		return;
	tk->want = tk->nblocks * tk->lun->bs;
	tk->moved = UTIL_MIN(tk->want, scsi_task_room(tk, SCSI_DIR_IN));
	if (!tk->moved) {
		scsi_task_good(tk);
		return;
	}
	if (!scsi_task_trim_iov(tk, tk->moved) || !scsi_task_reqs(tk, 1))
		return;
	rw_submit(tk);
}

void scsi_h_write(struct scsi_task *tk)
{
	uint32_t bs = tk->lun->bs;
	bool fua = tk->op->cdb_len > 6 && (tk->cdb[1] & 0x08);

	tk->is_write = true;
	if (!scsi_rw_prepare(tk) || scsi_check_wp(tk))
		return;
	tk->want = tk->nblocks * bs;
	tk->moved = UTIL_MIN(tk->want, scsi_task_room(tk, SCSI_DIR_OUT) / bs * bs);
	if (!tk->moved) {
		scsi_task_good(tk);
		return;
	}
	/* Write-through when the initiator turned the write cache off. */
	if (fua || !__atomic_load_n(&tk->lun->wce, __ATOMIC_RELAXED))
		tk->wflags = BDEV_FUA;
	if (!scsi_task_trim_iov(tk, tk->moved) || !scsi_task_reqs(tk, 1))
		return;
	/* Shared range lock: waits only for a COMPARE AND WRITE. */
	scsi_rlock_acquire(tk, tk->lba, tk->moved / bs, false, rw_submit);
}

/* ---- VERIFY ---- */

/* After the medium was read into buf[want..): compare with the data-out
 * copy in buf[0..want) (BYTCHK 1), or each block with the one block sent
 * (BYTCHK 3). */
static void verify_compare(struct scsi_task *tk)
{
	uint64_t len = tk->nblocks * tk->lun->bs;
	const uint8_t *medium = tk->buf + tk->buflen - len;
	size_t step = (tk->cdb[1] & 0x06) == 0x06 ? tk->lun->bs : len;

	if (tk->ec) {
		scsi_fail_ec(tk, tk->ec);
		return;
	}
	for (uint64_t off = 0; off < len; off++) {
		if (medium[off] != tk->buf[off % step]) {
			scsi_fail_miscompare(tk, off);
			return;
		}
	}
	scsi_task_good(tk);
}

void scsi_h_verify(struct scsi_task *tk)
{
	unsigned bytchk = (tk->cdb[1] >> 1) & 3;
	uint64_t len, out;
	int cb;

	scsi_cdb_lba(tk, &tk->lba, &tk->nblocks, &cb);
	if (tk->cdb[1] & 0xe0) {
		scsi_fail_cdb(tk, 1, 7);          /* VRPROTECT */
		return;
	}
	if (bytchk == 2) {
		scsi_fail_cdb(tk, 1, 2);
		return;
	}
	len = tk->nblocks * tk->lun->bs;
	if (bytchk && len > SCSI_MAX_WS_BYTES) {  /* bounds the read buffer */
		scsi_fail_cdb(tk, cb, -1);
		return;
	}
	if (!scsi_check_range(tk, tk->lba, tk->nblocks ? tk->nblocks : 1))
		return;
	if (!tk->nblocks || !bytchk) {
		scsi_task_good(tk);               /* range check only */
		return;
	}
	len = tk->nblocks * tk->lun->bs;
	out = bytchk == 3 ? tk->lun->bs : len;
	tk->want = out;
	if (scsi_task_room(tk, SCSI_DIR_OUT) < out) {
		tk->moved = 0;
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x1A, 0x00);
		return;
	}
	tk->buflen = out + len;
	tk->buf = malloc(tk->buflen);
	if (!tk->buf) {
		scsi_fail_status(tk, SCSI_BUSY);
		return;
	}
	scsi_task_data_out(tk, tk->buf, out);
	if (!scsi_task_reqs(tk, 1))
		return;
	tk->iovcnt = 1;
	tk->iov = malloc(sizeof(*tk->iov));
	if (!tk->iov) {
		scsi_fail_status(tk, SCSI_BUSY);
		return;
	}
	tk->iov[0] = (struct iovec){ tk->buf + out, len };
	tk->rqs[0] = (struct bdev_req){ .op = BDEV_OP_READ,
		.off = tk->lba * tk->lun->bs, .len = len, .iov = tk->iov,
		.iovcnt = 1 };
	scsi_task_submit(tk, verify_compare);
}

/* ---- SYNCHRONIZE CACHE: the range is checked, the whole disk flushed ---- */

void scsi_h_sync_cache(struct scsi_task *tk)
{
	int cb;

	scsi_cdb_lba(tk, &tk->lba, &tk->nblocks, &cb);
	if (!scsi_check_range(tk, tk->lba, tk->nblocks ? tk->nblocks : 1))
		return;
	if (!scsi_task_reqs(tk, 1))
		return;
	tk->is_write = true;
	tk->rqs[0].op = BDEV_OP_FLUSH;
	scsi_task_submit(tk, scsi_task_end_io);
}

/* ---- PRE-FETCH: the range is checked; nothing is read ahead ----
 * The disks below keep no cache of ours to fill (the host's page cache
 * and the image's own reads decide), so the command is advisory: GOOD,
 * never CONDITION MET (which would promise the blocks fit a cache). */

void scsi_h_prefetch(struct scsi_task *tk)
{
	int cb;

	scsi_cdb_lba(tk, &tk->lba, &tk->nblocks, &cb);
	if (scsi_check_range(tk, tk->lba, tk->nblocks ? tk->nblocks : 1))
		scsi_task_good(tk);
}
