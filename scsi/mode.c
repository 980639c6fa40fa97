/* MODE SENSE (6)/(10) and MODE SELECT (6)/(10) (SPC-4 6.11-6.14) for the
 * caching page (0x08: WCE is changeable; off means writes go through with
 * FUA) and the control page (0x0A: nothing changeable). */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

#define CACHING_LEN 20
#define CONTROL_LEN 12
#define PC_CURRENT 0
#define PC_CHANGEABLE 1
#define PC_DEFAULT 2
#define PC_SAVED 3

static size_t page_caching(const struct scsi_lun *l, unsigned pc, uint8_t *p)
{
	memset(p, 0, CACHING_LEN);
	p[0] = 0x08;
	p[1] = CACHING_LEN - 2;
	if (pc == PC_CHANGEABLE || pc == PC_DEFAULT ||
	    __atomic_load_n(&l->wce, __ATOMIC_RELAXED))
		p[2] = 0x04;                          /* WCE */
	return CACHING_LEN;
}

static size_t page_control(const struct scsi_lun *l, unsigned pc, uint8_t *p)
{
	memset(p, 0, CONTROL_LEN);
	p[0] = 0x0A;
	p[1] = CONTROL_LEN - 2;
	if (pc == PC_CHANGEABLE)
		return CONTROL_LEN;
	p[3] = 0x10;                                  /* QAM: unrestricted */
	util_put_be16(p + 8, 0xFFFF);                 /* busy timeout: none */
	return CONTROL_LEN;
}

static const struct {
	uint8_t code;
	size_t (*fill)(const struct scsi_lun *l, unsigned pc, uint8_t *p);
} pages[] = {
	{ 0x08, page_caching },
	{ 0x0A, page_control },
};

/* The pages asked for after p; their length, or 0 when the page or
 * subpage is not one of ours. */
static size_t put_pages(const struct scsi_lun *l, uint8_t code, uint8_t sub,
			unsigned pc, uint8_t *p)
{
	size_t n = 0;

	if (code == 0x3F && (sub == 0 || sub == 0xFF)) {
		for (size_t i = 0; i < UTIL_ARRAY_SIZE(pages); i++)
			n += pages[i].fill(l, pc, p + n);
		return n;
	}
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(pages); i++)
		if (pages[i].code == code && sub == 0)
			return pages[i].fill(l, pc, p);
	return 0;
}

void scsi_h_mode_sense(struct scsi_task *tk)
{
	const struct scsi_lun *l = tk->lun;
	bool ten = tk->op->cdb_len == 10, dbd = tk->cdb[1] & 0x08;
	unsigned pc = tk->cdb[2] >> 6;
	uint8_t code = tk->cdb[2] & 0x3f, sub = tk->cdb[3];
	size_t hdr = ten ? 8 : 4, bdl = dbd ? 0 : 8, n;
	uint64_t blocks = scsi_lun_blocks(l);
	uint8_t p[8 + 8 + CACHING_LEN + CONTROL_LEN] = { 0 };
	uint8_t dsp = (uint8_t)((scsi_lun_ro(l) ? 0x80 : 0) | 0x10); /* WP, DPOFUA */

	if (pc == PC_SAVED) {
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x39, 0x00);
		return;
	}
	n = put_pages(l, code, sub, pc, p + hdr + bdl);
	if (!n) {
		scsi_fail_cdb(tk, (code == 0x08 || code == 0x0A || code == 0x3F)
				  ? 3 : 2, -1);
		return;
	}
	if (bdl) {
		util_put_be32(p + hdr, blocks > 0xFFFFFFFFu ? 0xFFFFFFFFu
							    : (uint32_t)blocks);
		util_put_be32(p + hdr + 4, l->bs);    /* density 0, length */
	}
	n += hdr + bdl;
	if (ten) {
		util_put_be16(p, (uint16_t)(n - 2));
		p[3] = dsp;
		util_put_be16(p + 6, (uint16_t)bdl);
	} else {
		p[0] = (uint8_t)(n - 1);
		p[2] = dsp;
		p[3] = (uint8_t)bdl;
	}
	scsi_task_data_in(tk, p, n, ten ? util_get_be16(tk->cdb + 7) : tk->cdb[4]);
}

/* ---- MODE SELECT ---- */

/* Check one page of the parameter list at buf[off] (len bytes in all)
 * against the current values: only the caching page's WCE may differ.
 * Returns -1 when tk was answered, else the new WCE (0/1) or 2 (not the
 * caching page). */
static int select_page(struct scsi_task *tk, const uint8_t *buf, size_t off,
		       size_t len)
{
	uint8_t cur[CACHING_LEN];
	size_t n = put_pages(tk->lun, buf[off] & 0x3f, 0, PC_CURRENT, cur);

	if ((buf[off] & 0x40) || !n) {
		scsi_fail_param(tk, (int)off, -1);     /* SPF, unknown page */
		return -1;
	}
	if (buf[off + 1] != n - 2) {
		scsi_fail_param(tk, (int)off + 1, -1);
		return -1;
	}
	if (off + n > len) {
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x1A, 0x00);
		return -1;
	}
	for (size_t i = 2; i < n; i++) {
		uint8_t mask = (cur[0] == 0x08 && i == 2) ? 0x04 : 0;

		if ((buf[off + i] ^ cur[i]) & (uint8_t)~mask) {
			scsi_fail_param(tk, (int)(off + i), -1);
			return -1;
		}
	}
	return cur[0] == 0x08 ? !!(buf[off + 2] & 0x04) : 2;
}

/* WCE changed: the other initiators get MODE PARAMETERS CHANGED. */
static void set_wce(struct scsi_task *tk, bool wce)
{
	struct scsi_target *t = tk->t;

	pthread_mutex_lock(&t->mu);
	if (tk->lun->wce != wce) {
		__atomic_store_n(&tk->lun->wce, wce, __ATOMIC_RELAXED);
		for (int i = 0; i < t->nitns; i++)
			if (t->itns[i].id != tk->cmd->initiator)
				t->itns[i].ua[tk->lun->num] |= SCSI_UA_MODE_CHANGED;
	}
	pthread_mutex_unlock(&t->mu);
}

/* Check the header and block descriptor; the offset of the first page,
 * or 0 when tk was answered. */
static size_t select_header(struct scsi_task *tk, const uint8_t *buf,
			    size_t len, bool ten)
{
	size_t hdr = ten ? 8 : 4, bdl;

	if (len < hdr) {
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x1A, 0x00);
		return 0;
	}
	bdl = ten ? util_get_be16(buf + 6) : buf[3];
	if (len < hdr + bdl) {
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x1A, 0x00);
		return 0;
	}
	if (bdl != 0 && bdl != 8) {
		scsi_fail_param(tk, ten ? 6 : 3, -1);
		return 0;
	}
	if (bdl && (util_get_be32(buf + hdr + 4) & 0xFFFFFF) != tk->lun->bs) {
		scsi_fail_param(tk, (int)hdr + 5, -1);
		return 0;
	}
	return hdr + bdl;
}

void scsi_h_mode_select(struct scsi_task *tk)
{
	bool ten = tk->op->cdb_len == 10;
	size_t plen = ten ? util_get_be16(tk->cdb + 7) : tk->cdb[4], off, got;
	int wce = -1, r;

	if (tk->cdb[1] & 0x01) {                       /* SP: cannot save */
		scsi_fail_cdb(tk, 1, 0);
		return;
	}
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
	off = select_header(tk, tk->buf, got, ten);
	if (!off)
		return;
	while (off < got) {
		if (off + 2 > got) {
			scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x1A, 0x00);
			return;
		}
		r = select_page(tk, tk->buf, off, got);
		if (r < 0)
			return;
		if (r < 2)
			wce = r;
		off += 2u + tk->buf[off + 1];
	}
	if (wce >= 0)
		set_wce(tk, wce);
	scsi_task_good(tk);
}
