/* Provisioning commands: WRITE SAME (10)/(16) and UNMAP (SBC-3 5.28,
 * 5.42-5.44).  Both may need several block requests; the command
 * completes when the last one does. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

/* UNMAP block descriptor (parameter list, after an 8-byte header). */
struct scsi_unmap_desc {
	uint8_t lba[8];        /* big-endian */
	uint8_t count[4];      /* logical blocks, big-endian */
	uint8_t reserved[4];
} __attribute__((packed));

_Static_assert(sizeof(struct scsi_unmap_desc) == 16, "unmap descriptor");

#define UNMAP_HDR 8

/* Runs with the range lock held: the requests are ready. */
static void go(struct scsi_task *tk)
{
	scsi_task_submit(tk, scsi_task_end_io);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* The block to repeat into tk->buf (one block; zeros for NDOB); the
 * buffer's size was checked.  False when tk was answered. */
static bool ws_block(struct scsi_task *tk, bool ndob)
{
	uint32_t bs = tk->lun->bs;

	tk->buf = calloc(1, bs);
	if (!tk->buf) {
		scsi_fail_status(tk, SCSI_BUSY);
		return false;
	}
	tk->buflen = bs;
	if (!ndob)
		scsi_task_data_out(tk, tk->buf, bs);
	return true;
}

/* Non-zero data: the block repeated into a chunk buffer, written by
 * chunk-sized requests that all share it. */
static bool ws_pattern(struct scsi_task *tk, uint64_t off, uint64_t len)
{
	uint32_t bs = tk->lun->bs;
	size_t chunk = (size_t)UTIL_MIN(len, (uint64_t)SCSI_WS_CHUNK);
	int n = (int)((len + chunk - 1) / chunk);
	uint8_t *p = malloc(chunk);

	if (!p) {
		scsi_fail_status(tk, SCSI_BUSY);
		return false;
	}
	for (size_t i = 0; i < chunk; i += bs)
		memcpy(p + i, tk->buf, bs);
	free(tk->buf);
	tk->buf = p;
	tk->buflen = chunk;
	tk->iov = malloc(sizeof(*tk->iov) * (size_t)n);
	if (!tk->iov) {
		scsi_fail_status(tk, SCSI_BUSY);
		return false;
	}
	if (!scsi_task_reqs(tk, n))
		return false;
	for (int i = 0; i < n; i++) {
		uint64_t o = (uint64_t)i * chunk;
		size_t k = (size_t)UTIL_MIN((uint64_t)chunk, len - o);

		tk->iov[i] = (struct iovec){ p, k };
		tk->rqs[i] = (struct bdev_req){ .op = BDEV_OP_WRITE,
			.flags = tk->wflags, .off = off + o, .len = k,
			.iov = &tk->iov[i], .iovcnt = 1 };
	}
	return true;
}

void scsi_h_write_same(struct scsi_task *tk)
{
	const struct scsi_lun *l = tk->lun;
	bool ws16 = tk->op->cdb_len == 16, unmap = tk->cdb[1] & 0x08;
	bool ndob = ws16 && (tk->cdb[1] & 0x01);
	int cb;

	tk->is_write = true;
	scsi_cdb_lba(tk, &tk->lba, &tk->nblocks, &cb);
	if (tk->cdb[1] & 0xe0) {          /* WRPROTECT */
		scsi_fail_cdb(tk, 1, 7);
		return;
	}
	if (tk->cdb[1] & 0x10) {          /* ANCHOR */
		scsi_fail_cdb(tk, 1, 4);
		return;
	}
	if (!ws16 && (tk->cdb[1] & 0x01)) {
		scsi_fail_cdb(tk, 1, 0);
		return;
	}
	/* UNMAP on a LUN without logical block provisioning (LBPME 0, no
	 * LBPWS in VPD B2): refused, as libiscsi's UnmapVPD tests expect. */
	if (unmap && !scsi_lun_can_unmap(l)) {
		scsi_fail_cdb(tk, 1, 3);
		return;
	}
	/* Zero blocks: from the LBA to the end of the medium (WSNZ 0). */
	if (!tk->nblocks) {
		if (!scsi_check_range(tk, tk->lba, 1))
			return;
		tk->nblocks = scsi_lun_blocks(l) - tk->lba;
	}
	if (tk->nblocks > SCSI_MAX_WS_BYTES / l->bs) {  /* max write same length */
		scsi_fail_cdb(tk, cb, -1);
		return;
	}
	if (!scsi_check_range(tk, tk->lba, tk->nblocks) || scsi_check_wp(tk))
		return;
	/* Exactly one block of data-out, none with NDOB (libiscsi's
	 * WriteSame10/16.InvalidDataOutSize); checked after write protection,
	 * which libiscsi's ReadOnly expects whatever the buffer. */
	if (!scsi_check_out_len(tk, ndob ? 0 : l->bs, cb) || !ws_block(tk, ndob))
		return;
	if (!__atomic_load_n(&tk->lun->wce, __ATOMIC_RELAXED))
		tk->wflags = BDEV_FUA;
	if (all_zero(tk->buf, l->bs)) {
		if (!scsi_task_reqs(tk, 1))
			return;
		tk->rqs[0] = (struct bdev_req){ .op = BDEV_OP_WRITE_ZEROES,
			.flags = tk->wflags |
				 (unmap && scsi_lun_can_unmap(l) ? BDEV_MAY_UNMAP : 0),
			.off = tk->lba * l->bs, .len = tk->nblocks * l->bs };
	} else if (!ws_pattern(tk, tk->lba * l->bs, tk->nblocks * l->bs)) {
		return;
	}
	scsi_rlock_acquire(tk, tk->lba, tk->nblocks, false, go);
}

/* ---- UNMAP ---- */

/* Parse and check the descriptors in tk->buf (n of them): each inside the
 * disk; build one DISCARD a non-empty one.  False when tk was answered. */
static bool unmap_build(struct scsi_task *tk, size_t n)
{
	const struct scsi_unmap_desc *d =
		(const struct scsi_unmap_desc *)(tk->buf + UNMAP_HDR);
	uint64_t lo = UINT64_MAX, hi = 0, blocks = scsi_lun_blocks(tk->lun);
	int k = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t lba = util_get_be64(d[i].lba);
		uint32_t cnt = util_get_be32(d[i].count);

		if (!util_range_ok(lba, cnt, blocks)) {
			scsi_fail_range(tk);
			return false;
		}
		k += cnt > 0;
	}
	if (!k) {
		scsi_task_good(tk);
		return false;
	}
	if (!scsi_task_reqs(tk, k))
		return false;
	k = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t lba = util_get_be64(d[i].lba);
		uint32_t cnt = util_get_be32(d[i].count);

		if (!cnt)
			continue;
		lo = UTIL_MIN(lo, lba);
		hi = UTIL_MAX(hi, lba + cnt);
		tk->rqs[k++] = (struct bdev_req){ .op = BDEV_OP_DISCARD,
			.off = lba * tk->lun->bs, .len = (uint64_t)cnt * tk->lun->bs };
	}
	tk->lba = lo;
	tk->nblocks = hi - lo;
	return true;
}

void scsi_h_unmap(struct scsi_task *tk)
{
	uint16_t plen = util_get_be16(tk->cdb + 7), bdl;
	size_t got, n;

	tk->is_write = true;
	if (tk->cdb[1] & 0x01) {          /* ANCHOR */
		scsi_fail_cdb(tk, 1, 0);
		return;
	}
	if (!scsi_lun_can_unmap(tk->lun)) {
		scsi_fail_cdb(tk, 0, -1);
		return;
	}
	if (scsi_check_wp(tk))
		return;
	if (!plen) {
		scsi_task_good(tk);
		return;
	}
	tk->buf = calloc(1, plen);
	if (!tk->buf) {
		scsi_fail_status(tk, SCSI_BUSY);
		return;
	}
	got = scsi_task_data_out(tk, tk->buf, plen);
	if (got < UNMAP_HDR) {            /* PARAMETER LIST LENGTH ERROR */
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x1A, 0x00);
		return;
	}
	bdl = util_get_be16(tk->buf + 2);
	if (util_get_be16(tk->buf) < 6 && bdl) {
		scsi_fail_param(tk, 0, -1);
		return;
	}
	n = UTIL_MIN((size_t)bdl, got - UNMAP_HDR) / sizeof(struct scsi_unmap_desc);
	if (n > SCSI_MAX_UNMAP_DESC) {
		scsi_fail_param(tk, 2, -1);
		return;
	}
	if (unmap_build(tk, n))
		scsi_rlock_acquire(tk, tk->lba, tk->nblocks, false, go);
}
