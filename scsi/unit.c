/* Commands about the unit rather than its data: READ CAPACITY (10)/(16),
 * REPORT LUNS, TEST UNIT READY, REQUEST SENSE, START STOP UNIT, PREVENT
 * ALLOW MEDIUM REMOVAL. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

void scsi_h_read_capacity10(struct scsi_task *tk)
{
	uint64_t last = scsi_lun_blocks(tk->lun) - 1;
	uint8_t p[8];

	/* PMI clear needs a zero LBA (SBC-3). */
	if (!(tk->cdb[8] & 0x01) && util_get_be32(tk->cdb + 2)) {
		scsi_fail_cdb(tk, 2, -1);
		return;
	}
	util_put_be32(p, last > 0xFFFFFFFEu ? 0xFFFFFFFFu : (uint32_t)last);
	util_put_be32(p + 4, tk->lun->bs);
	scsi_task_data_in(tk, p, sizeof(p), sizeof(p));
}

static uint8_t log2u(uint32_t v)
{
	uint8_t n = 0;

	while (v > 1) {
		v >>= 1;
		n++;
	}
	return n;
}

void scsi_h_read_capacity16(struct scsi_task *tk)
{
	const struct scsi_lun *l = tk->lun;
	uint32_t phys = l->phys;
	uint8_t p[32] = { 0 };

	util_put_be64(p, scsi_lun_blocks(l) - 1);
	util_put_be32(p + 8, l->bs);
	if (phys > l->bs)
		p[13] = log2u(phys / l->bs) & 0x0f;
	if (scsi_lun_can_unmap(l)) {
		p[14] = 0x80;                         /* LBPME */
		if (l->bd->limits.unmap_zeroes)
			p[14] |= 0x40;                /* LBPRZ */
	}
	scsi_task_data_in(tk, p, sizeof(p), util_get_be32(tk->cdb + 10));
}

/* REPORT LUNS: peripheral addressing (byte 1 = LUN). */
void scsi_h_report_luns(struct scsi_task *tk)
{
	uint32_t alloc = util_get_be32(tk->cdb + 6);
	uint8_t p[8 + 8 * SCSI_MAX_LUNS] = { 0 };
	size_t n = 8;

	if (tk->cdb[2] > 0x02) {
		scsi_fail_cdb(tk, 2, -1);
		return;
	}
	if (alloc < 16) {
		scsi_fail_cdb(tk, 6, -1);
		return;
	}
	pthread_mutex_lock(&tk->t->mu);
	for (int i = 0; i < SCSI_MAX_LUNS; i++) {
		if (!tk->t->luns[i])
			continue;
		p[n + 1] = (uint8_t)i;
		n += 8;
	}
	pthread_mutex_unlock(&tk->t->mu);
	util_put_be32(p, (uint32_t)(n - 8));
	scsi_task_data_in(tk, p, n, alloc);
}

void scsi_h_tur(struct scsi_task *tk)
{
	scsi_task_good(tk);
}

/* REQUEST SENSE: a pending unit attention (taken), else NO SENSE; on a LUN
 * that does not exist, LOGICAL UNIT NOT SUPPORTED as data. */
void scsi_h_request_sense(struct scsi_task *tk)
{
	uint8_t s[SCSI_SENSE_LEN], asc = 0, ascq = 0;
	bool ua;

	if (tk->cdb[1] & 0x01) {             /* DESC: descriptor format */
		scsi_fail_cdb(tk, 1, 0);
		return;
	}
	pthread_mutex_lock(&tk->t->mu);
	ua = tk->lun && scsi_ua_take(tk, &asc, &ascq);
	pthread_mutex_unlock(&tk->t->mu);
	if (!tk->lun)
		scsi_sense_fill(s, SCSI_SK_ILLEGAL_REQUEST, 0x25, 0x00);
	else if (ua)
		scsi_sense_fill(s, SCSI_SK_UNIT_ATTENTION, asc, ascq);
	else
		scsi_sense_fill(s, SCSI_SK_NO_SENSE, 0, 0);
	scsi_task_data_in(tk, s, sizeof(s), tk->cdb[4]);
}

/* START STOP UNIT: the medium is always there; STOP flushes (unless
 * NO_FLUSH); LOEJ on a medium that cannot be removed is refused. */
void scsi_h_start_stop(struct scsi_task *tk)
{
	uint8_t b4 = tk->cdb[4];

	if (b4 & 0x02) {
		scsi_fail_cdb(tk, 4, 1);
		return;
	}
	if ((b4 & 0x01) || (b4 & 0x04) || (b4 & 0xf0) || scsi_lun_ro(tk->lun)) {
		scsi_task_good(tk);
		return;
	}
	if (!scsi_task_reqs(tk, 1))
		return;
	tk->rqs[0].op = BDEV_OP_FLUSH;
	tk->is_write = true;
	scsi_task_submit(tk, scsi_task_end_io);
}

void scsi_h_prevent_allow(struct scsi_task *tk)
{
	if (tk->cdb[4] & 0x02) {              /* obsolete persistent prevent */
		scsi_fail_cdb(tk, 4, 1);
		return;
	}
	scsi_task_good(tk);
}
