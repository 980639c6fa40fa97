/* GET LBA STATUS (SBC-3 5.6): the provisioning status of the blocks from
 * an LBA on, from bdev_block_status().  A range no layer holds, or one
 * that reads as zeros without data, is deallocated; the rest is mapped.
 * An extent that ends inside a block counts that block as mapped. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

#define LBA_HDR 8
#define LBA_DESC 16
#define MAX_EXTENTS 4096     /* block-status calls a command */

/* The status of the extent at block lba: 0 mapped, 1 deallocated, with
 * *end its end in blocks; -1 on failure (tk answered). */
static int extent(struct scsi_task *tk, uint64_t lba, uint64_t *end)
{
	const struct scsi_lun *l = tk->lun;
	uint64_t off = lba * l->bs, size = scsi_lun_blocks(l) * l->bs;
	struct bdev_status st;
	bool dealloc;
	int r = bdev_block_status(l->bd, off, size - off, &st);

	if (r) {
		scsi_fail_ec(tk, bdev_errclass(r));
		return -1;
	}
	dealloc = !(st.flags & BDEV_ST_ALLOC) ||
		  ((st.flags & BDEV_ST_ZERO) && !(st.flags & BDEV_ST_DATA));
	off += st.length;
	/* A partial last block is mapped: round a deallocated extent down
	 * (unless that leaves nothing: then the block is mapped), a mapped
	 * one up. */
	if (dealloc && off / l->bs > lba) {
		*end = off / l->bs;
	} else {
		*end = (off + l->bs - 1) / l->bs;
		dealloc = false;
	}
	*end = UTIL_MIN(*end, scsi_lun_blocks(l));
	return dealloc;
}

void scsi_h_get_lba_status(struct scsi_task *tk)
{
	uint64_t lba = util_get_be64(tk->cdb + 2), blocks = scsi_lun_blocks(tk->lun);
	uint32_t alloc = util_get_be32(tk->cdb + 10);
	size_t max = UTIL_MAX((size_t)1, UTIL_MIN((size_t)SCSI_MAX_LBA_DESC,
				(alloc > LBA_HDR ? alloc - LBA_HDR : 0) / LBA_DESC));
	uint8_t *p, *d = NULL;
	size_t n = 0;
	int prev = -1;

	if (lba >= blocks) {
		scsi_fail_range(tk);
		return;
	}
	p = calloc(1, LBA_HDR + max * LBA_DESC);
	if (!p) {
		scsi_fail_status(tk, SCSI_BUSY);
		return;
	}
	for (int i = 0; lba < blocks && i < MAX_EXTENTS; i++) {
		uint64_t end, cnt;
		int s = extent(tk, lba, &end);

		if (s < 0) {
			free(p);
			return;
		}
		if (s != prev || util_get_be32(d + 8) == UINT32_MAX) {
			if (n == max)
				break;
			d = p + LBA_HDR + n++ * LBA_DESC;
			util_put_be64(d, lba);
			d[12] = (uint8_t)s;
			prev = s;
		}
		cnt = UTIL_MIN(util_get_be32(d + 8) + (end - lba), (uint64_t)UINT32_MAX);
		end = util_get_be64(d) + cnt;
		util_put_be32(d + 8, (uint32_t)cnt);
		lba = end;
	}
	util_put_be32(p, (uint32_t)(4 + n * LBA_DESC));
	scsi_task_data_in(tk, p, LBA_HDR + n * LBA_DESC, alloc);
	free(p);
}
