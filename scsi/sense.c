/* Fixed-format sense data (SPC-4 4.5.3) and the failure helpers: each
 * sets the status and sense of a task and finishes it. */
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

/* Fixed format sense data, 18 bytes. */
struct scsi_sense_fixed {
	uint8_t response;      /* 0x70 current; bit 7 VALID (information) */
	uint8_t obsolete;
	uint8_t key;           /* bits 3:0 sense key; 5 ILI, 6 EOM, 7 FM */
	uint8_t info[4];       /* INFORMATION, big-endian */
	uint8_t add_len;       /* additional sense length: 10 */
	uint8_t cmd_info[4];   /* command-specific information */
	uint8_t asc;
	uint8_t ascq;
	uint8_t fru;
	uint8_t sks[3];        /* sense-key specific; bit 7 of sks[0]: SKSV */
} __attribute__((packed));

_Static_assert(sizeof(struct scsi_sense_fixed) == SCSI_SENSE_LEN, "sense size");
_Static_assert(offsetof(struct scsi_sense_fixed, info) == 3, "info");
_Static_assert(offsetof(struct scsi_sense_fixed, asc) == 12, "asc");
_Static_assert(offsetof(struct scsi_sense_fixed, sks) == 15, "sks");

void scsi_sense_fill(uint8_t *sense, uint8_t key, uint8_t asc, uint8_t ascq)
{
	struct scsi_sense_fixed s = {
		.response = 0x70,
		.key = key & 0x0f,
		.add_len = 10,
		.asc = asc,
		.ascq = ascq,
	};

	memcpy(sense, &s, sizeof(s));
}

void scsi_fail(struct scsi_task *tk, uint8_t key, uint8_t asc, uint8_t ascq)
{
	tk->cmd->status = SCSI_CHECK_CONDITION;
	scsi_sense_fill(tk->cmd->sense, key, asc, ascq);
	tk->cmd->sense_len = SCSI_SENSE_LEN;
	scsi_task_finish(tk);
}

/* The field pointer of INVALID FIELD IN CDB / PARAMETER LIST: SKSV,
 * C/D (1 = CDB), BPV + bit pointer, then the byte. */
static void fail_field(struct scsi_task *tk, uint8_t asc, bool cdb, int byte,
		       int bit)
{
	struct scsi_sense_fixed *s = (struct scsi_sense_fixed *)tk->cmd->sense;

	tk->cmd->status = SCSI_CHECK_CONDITION;
	scsi_sense_fill(tk->cmd->sense, SCSI_SK_ILLEGAL_REQUEST, asc, 0);
	s->sks[0] = (uint8_t)(0x80 | (cdb ? 0x40 : 0) |
			      (bit >= 0 ? 0x08 | (bit & 7) : 0));
	util_put_be16(&s->sks[1], (uint16_t)byte);
	tk->cmd->sense_len = SCSI_SENSE_LEN;
	scsi_task_finish(tk);
}

void scsi_fail_cdb(struct scsi_task *tk, int byte, int bit)
{
	fail_field(tk, 0x24, true, byte, bit);
}

void scsi_fail_param(struct scsi_task *tk, int byte, int bit)
{
	fail_field(tk, 0x26, false, byte, bit);
}

void scsi_fail_range(struct scsi_task *tk)
{
	scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x21, 0x00);
}

void scsi_fail_miscompare(struct scsi_task *tk, uint64_t offset)
{
	struct scsi_sense_fixed *s = (struct scsi_sense_fixed *)tk->cmd->sense;

	tk->cmd->status = SCSI_CHECK_CONDITION;
	scsi_sense_fill(tk->cmd->sense, SCSI_SK_MISCOMPARE, 0x1D, 0x00);
	s->response |= 0x80;
	util_put_be32(s->info, (uint32_t)UTIL_MIN(offset, UINT32_MAX));
	tk->cmd->sense_len = SCSI_SENSE_LEN;
	scsi_task_finish(tk);
}

void scsi_fail_status(struct scsi_task *tk, uint8_t status)
{
	tk->cmd->status = status;
	tk->cmd->sense_len = 0;
	scsi_task_finish(tk);
}

/* Block-layer failure classes (enum bdev_ec) to SCSI. */
void scsi_fail_ec(struct scsi_task *tk, enum bdev_ec ec)
{
	switch (ec) {
	case BDEV_EC_OK:
		scsi_task_good(tk);
		return;
	case BDEV_EC_MEDIUM:
		/* UNRECOVERED READ ERROR / WRITE ERROR */
		if (tk->is_write)
			scsi_fail(tk, SCSI_SK_MEDIUM_ERROR, 0x0C, 0x00);
		else
			scsi_fail(tk, SCSI_SK_MEDIUM_ERROR, 0x11, 0x00);
		return;
	case BDEV_EC_RANGE:
		scsi_fail_range(tk);
		return;
	case BDEV_EC_READ_ONLY:
		scsi_fail(tk, SCSI_SK_DATA_PROTECT, 0x27, 0x00);
		return;
	case BDEV_EC_NO_SPACE:
		/* SPACE ALLOCATION FAILED WRITE PROTECT */
		scsi_fail(tk, SCSI_SK_DATA_PROTECT, 0x27, 0x07);
		return;
	case BDEV_EC_UNSUPPORTED:
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x24, 0x00);
		return;
	case BDEV_EC_GONE:
		/* MEDIUM NOT PRESENT */
		scsi_fail(tk, SCSI_SK_NOT_READY, 0x3A, 0x00);
		return;
	case BDEV_EC_RESOURCE:
		scsi_fail_status(tk, SCSI_TASK_SET_FULL);
		return;
	case BDEV_EC_INVALID:
	default:
		/* INTERNAL TARGET FAILURE: a request we built was refused */
		scsi_fail(tk, SCSI_SK_HARDWARE_ERROR, 0x44, 0x00);
		return;
	}
}
