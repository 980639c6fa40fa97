/* The dispatch table: every command the target implements, with its CDB
 * length (checked once by scsi_submit before the handler), its
 * reservation/unit-attention class and its CDB usage data; and REPORT
 * SUPPORTED OPERATION CODES, which reports this table. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

#define LUNLESS (SCSI_OPF_NO_LUN | SCSI_OPF_NO_UA | SCSI_OPF_PR_OK | \
		 SCSI_OPF_SPC2_OK)
#define C 0x04  /* control byte: NACA is evaluated */
#define F4 0xff, 0xff, 0xff, 0xff

const struct scsi_op scsi_ops[] = {
	{ 0x00, -1, 6, SCSI_OPF_PR_OK, scsi_h_tur, { 0x00, 0, 0, 0, 0, C } },
	{ 0x03, -1, 6, LUNLESS, scsi_h_request_sense,
	  { 0x03, 0x01, 0, 0, 0xff, C } },
	{ 0x08, -1, 6, SCSI_OPF_READ, scsi_h_read,
	  { 0x08, 0x1f, 0xff, 0xff, 0xff, C } },
	{ 0x0A, -1, 6, SCSI_OPF_WRITE, scsi_h_write,
	  { 0x0a, 0x1f, 0xff, 0xff, 0xff, C } },
	{ 0x12, -1, 6, LUNLESS, scsi_h_inquiry,
	  { 0x12, 0x01, 0xff, 0xff, 0xff, C } },
	{ 0x15, -1, 6, SCSI_OPF_WRITE, scsi_h_mode_select,
	  { 0x15, 0x11, 0, 0, 0xff, C } },
	{ 0x16, -1, 6, 0, scsi_h_reserve6, { 0x16, 0, 0, 0, 0, C } },
	{ 0x17, -1, 6, SCSI_OPF_SPC2_OK, scsi_h_release6,
	  { 0x17, 0, 0, 0, 0, C } },
	{ 0x1A, -1, 6, SCSI_OPF_READ, scsi_h_mode_sense,
	  { 0x1a, 0x08, 0xff, 0xff, 0xff, C } },
	{ 0x1B, -1, 6, SCSI_OPF_WRITE, scsi_h_start_stop,
	  { 0x1b, 0x01, 0, 0x0f, 0xf7, C } },
	{ 0x1E, -1, 6, SCSI_OPF_PR_OK, scsi_h_prevent_allow,
	  { 0x1e, 0, 0, 0, 0x03, C } },
	{ 0x25, -1, 10, SCSI_OPF_PR_OK, scsi_h_read_capacity10,
	  { 0x25, 0, F4, 0, 0, 0x01, C } },
	{ 0x28, -1, 10, SCSI_OPF_READ, scsi_h_read,
	  { 0x28, 0x18, F4, 0, 0xff, 0xff, C } },
	{ 0x2A, -1, 10, SCSI_OPF_WRITE, scsi_h_write,
	  { 0x2a, 0x18, F4, 0, 0xff, 0xff, C } },
	{ 0x2E, -1, 10, SCSI_OPF_WRITE, scsi_h_write_verify,
	  { 0x2e, 0x12, F4, 0, 0xff, 0xff, C } },
	{ 0x2F, -1, 10, SCSI_OPF_READ, scsi_h_verify,
	  { 0x2f, 0x16, F4, 0, 0xff, 0xff, C } },
	{ 0x34, -1, 10, SCSI_OPF_READ, scsi_h_prefetch,
	  { 0x34, 0x02, F4, 0, 0xff, 0xff, C } },
	{ 0x35, -1, 10, SCSI_OPF_WRITE, scsi_h_sync_cache,
	  { 0x35, 0x02, F4, 0, 0xff, 0xff, C } },
	{ 0x41, -1, 10, SCSI_OPF_WRITE, scsi_h_write_same,
	  { 0x41, 0x08, F4, 0, 0xff, 0xff, C } },
	{ 0x42, -1, 10, SCSI_OPF_WRITE, scsi_h_unmap,
	  { 0x42, 0, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x55, -1, 10, SCSI_OPF_WRITE, scsi_h_mode_select,
	  { 0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x5A, -1, 10, SCSI_OPF_READ, scsi_h_mode_sense,
	  { 0x5a, 0x08, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x5E, 0x00, 10, SCSI_OPF_PR_OK, scsi_h_pr_in,
	  { 0x5e, 0x00, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x5E, 0x01, 10, SCSI_OPF_PR_OK, scsi_h_pr_in,
	  { 0x5e, 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x5E, 0x02, 10, SCSI_OPF_PR_OK, scsi_h_pr_in,
	  { 0x5e, 0x02, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x5E, 0x03, 10, SCSI_OPF_PR_OK, scsi_h_pr_in,
	  { 0x5e, 0x03, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
#define PROUT(sa) { 0x5F, sa, 10, SCSI_OPF_PR_OK, scsi_h_pr_out, \
	  { 0x5f, sa, 0xff, 0, 0, F4, C } }
	PROUT(0x00), PROUT(0x01), PROUT(0x02), PROUT(0x03), PROUT(0x04),
	PROUT(0x05), PROUT(0x06),
#undef PROUT
	{ 0x88, -1, 16, SCSI_OPF_READ, scsi_h_read,
	  { 0x88, 0x18, F4, F4, F4, 0, C } },
	{ 0x89, -1, 16, SCSI_OPF_WRITE, scsi_h_caw,
	  { 0x89, 0x18, F4, F4, 0, 0, 0, 0xff, 0, C } },
	{ 0x8A, -1, 16, SCSI_OPF_WRITE, scsi_h_write,
	  { 0x8a, 0x18, F4, F4, F4, 0, C } },
	{ 0x8B, -1, 16, SCSI_OPF_WRITE, scsi_h_orwrite,
	  { 0x8b, 0x18, F4, F4, F4, 0, C } },
	{ 0x8E, -1, 16, SCSI_OPF_WRITE, scsi_h_write_verify,
	  { 0x8e, 0x12, F4, F4, F4, 0, C } },
	{ 0x8F, -1, 16, SCSI_OPF_READ, scsi_h_verify,
	  { 0x8f, 0x16, F4, F4, F4, 0, C } },
	{ 0x90, -1, 16, SCSI_OPF_READ, scsi_h_prefetch,
	  { 0x90, 0x02, F4, F4, F4, 0, C } },
	{ 0x91, -1, 16, SCSI_OPF_WRITE, scsi_h_sync_cache,
	  { 0x91, 0x02, F4, F4, F4, 0, C } },
	{ 0x93, -1, 16, SCSI_OPF_WRITE, scsi_h_write_same,
	  { 0x93, 0x09, F4, F4, F4, 0, C } },
	{ 0x9E, 0x10, 16, SCSI_OPF_PR_OK, scsi_h_read_capacity16,
	  { 0x9e, 0x10, F4, F4, F4, 0x01, C } },
	{ 0x9E, 0x12, 16, SCSI_OPF_READ, scsi_h_get_lba_status,
	  { 0x9e, 0x12, F4, F4, F4, 0, C } },
	{ 0xA0, -1, 12, LUNLESS, scsi_h_report_luns,
	  { 0xa0, 0, 0xff, 0, 0, 0, F4, 0, C } },
	{ 0xA3, 0x0C, 12, SCSI_OPF_PR_OK | SCSI_OPF_SPC2_OK, scsi_h_rsoc,
	  { 0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, F4, 0, C } },
	{ 0xA8, -1, 12, SCSI_OPF_READ, scsi_h_read,
	  { 0xa8, 0x18, F4, F4, 0, C } },
	{ 0xAA, -1, 12, SCSI_OPF_WRITE, scsi_h_write,
	  { 0xaa, 0x18, F4, F4, 0, C } },
	{ 0xAE, -1, 12, SCSI_OPF_WRITE, scsi_h_write_verify,
	  { 0xae, 0x12, F4, F4, 0, C } },
	{ 0xAF, -1, 12, SCSI_OPF_READ, scsi_h_verify,
	  { 0xaf, 0x16, F4, F4, 0, C } },
};
const size_t scsi_nops = UTIL_ARRAY_SIZE(scsi_ops);

/* ---- REPORT SUPPORTED OPERATION CODES (MAINTENANCE IN, SA 0x0C) ---- */

#define TIMEOUTS_LEN 12   /* command timeouts descriptor */

/* One command descriptor of the "all commands" form (8 bytes, + 12 with
 * RCTD); returns its length. */
static size_t put_desc(uint8_t *p, const struct scsi_op *o, bool rctd)
{
	memset(p, 0, 8);
	p[0] = o->opcode;
	util_put_be16(p + 2, o->sa < 0 ? 0 : (uint16_t)o->sa);
	p[5] = (uint8_t)((rctd ? 0x02 : 0) | (o->sa >= 0 ? 0x01 : 0));
	util_put_be16(p + 6, o->cdb_len);
	if (!rctd)
		return 8;
	memset(p + 8, 0, TIMEOUTS_LEN);
	util_put_be16(p + 8, 0x0A);
	return 8 + TIMEOUTS_LEN;
}

static void rsoc_all(struct scsi_task *tk, bool rctd, uint32_t alloc)
{
	size_t len = 4 + scsi_nops * (8 + TIMEOUTS_LEN), n = 4;
	uint8_t *p = calloc(1, len);

	if (!p) {
		scsi_fail_status(tk, SCSI_BUSY);
		return;
	}
	for (size_t i = 0; i < scsi_nops; i++)
		n += put_desc(p + n, &scsi_ops[i], rctd);
	util_put_be32(p, (uint32_t)(n - 4));
	scsi_task_data_in(tk, p, n, alloc);
	free(p);
}

/* One command: options 1 (opcode only: it must have no service actions),
 * 2 (opcode + service action: it must have them), 3 (either). */
static void rsoc_one(struct scsi_task *tk, unsigned opt, bool rctd,
		     uint32_t alloc)
{
	uint8_t op = tk->cdb[3];
	uint16_t sa = util_get_be16(tk->cdb + 4);
	const struct scsi_op *o = NULL;
	bool has_sa = false, no_sa = false;
	uint8_t p[4 + 16 + TIMEOUTS_LEN] = { 0 };
	size_t n = 4;

	for (size_t i = 0; i < scsi_nops; i++) {
		if (scsi_ops[i].opcode != op)
			continue;
		if (scsi_ops[i].sa >= 0)
			has_sa = true;
		else
			no_sa = true;
		if (scsi_ops[i].sa < 0 || (opt != 1 && scsi_ops[i].sa == sa))
			o = &scsi_ops[i];
	}
	if ((opt == 1 && has_sa) || (opt == 2 && no_sa)) {
		scsi_fail_cdb(tk, 2, 2);
		return;
	}
	if (opt == 3 && o && o->sa < 0 && sa) {
		o = NULL;        /* a service action for a command without */
	}
	p[1] = 0x01;             /* SUPPORT: not supported */
	if (o) {
		p[1] = (uint8_t)((rctd ? 0x80 : 0) | 0x03);
		util_put_be16(p + 2, o->cdb_len);
		memcpy(p + 4, o->usage, o->cdb_len);
		n += o->cdb_len;
		if (rctd) {
			util_put_be16(p + n, 0x0A);
			n += TIMEOUTS_LEN;
		}
	}
	scsi_task_data_in(tk, p, n, alloc);
}

void scsi_h_rsoc(struct scsi_task *tk)
{
	unsigned opt = tk->cdb[2] & 0x07;
	bool rctd = tk->cdb[2] & 0x80;
	uint32_t alloc = util_get_be32(tk->cdb + 6);

	if (tk->cdb[2] & 0x78) {
		scsi_fail_cdb(tk, 2, -1);
		return;
	}
	if (opt == 0)
		rsoc_all(tk, rctd, alloc);
	else if (opt <= 3)
		rsoc_one(tk, opt, rctd, alloc);
	else
		scsi_fail_cdb(tk, 2, 2);
}
