/* storvsp EXECUTE_SRB: the GPA-direct page list checked and turned into an
 * iovec straight into guest memory, the CDB handed to the SCSI target, its
 * result turned into SRB status, SCSI status and sense (notes 1.5, 3.5-3.7).
 *
 * Hostile input: the range header and PFNs are read from the private copy
 * of the packet.  Framing errors (no range, too many ranges, PFNs missing
 * from the packet, byte_offset past the page) fail the channel; errors of
 * meaning (a page outside the partition, a transfer over the maximum, a
 * buffer shorter than data_transfer_length) fail the request with
 * INVALID_REQUEST + ILLEGAL REQUEST sense.  Arithmetic is 64-bit on 32-bit
 * inputs or overflow-checked.
 */
#include <errno.h>
#include <string.h>

#include "scsi/scsi.h"
#include "storvsp/vsp-int.h"

#define PAGE 4096u

/* Fixed-format sense: key/asc/ascq (18 bytes). */
static void sense(uint8_t *b, uint8_t key, uint8_t asc, uint8_t ascq)
{
	memset(b, 0, SCSI_SENSE_LEN);
	b[0] = 0x70;
	b[2] = key;
	b[7] = 10;
	b[12] = asc;
	b[13] = ascq;
}

static void fill_srb_reply(struct vsp_chan *c, struct vsp_slot *s,
			   uint32_t nt, uint8_t srb_status, uint8_t scsi_status,
			   const uint8_t *sense_data, uint8_t sense_len,
			   uint32_t moved)
{
	uint16_t ver = atomic_load(&c->v->version);
	struct vsp_srb *r = &s->reply.srb;
	uint8_t max_sense = ver >= VSP_VER_WIN8 ? VSP_SENSE_LEN_WIN8 : VSP_SENSE_LEN_PRE_WIN8;

	vsp_reply_init(c, s, VSP_PACKET_SIZE, nt);
	r->length = ver >= VSP_VER_WIN8 ? VSP_SRB_LEN_WIN8 : VSP_SRB_LEN_PRE_WIN8;
	r->srb_status = srb_status;
	r->scsi_status = scsi_status;
	r->port_number = s->req.port_number;
	r->path_id = s->req.path_id;
	r->target_id = s->req.target_id;
	r->lun = s->req.lun;
	r->data_in = s->req.data_in;
	r->data_transfer_length = moved;
	if (sense_len) {
		if (sense_len > max_sense)
			sense_len = max_sense;
		memcpy(r->sense_data, sense_data, sense_len);
		r->sense_info_length = sense_len;
	}
	if (srb_status != VSP_SRB_SUCCESS)
		vsp_count(c->v, &c->v->st.srb_errors, 1);
}

/* Refuse a request before the target sees it: ILLEGAL REQUEST sense. */
static int refuse(struct vsp_chan *c, struct vsp_slot *s, uint8_t asc,
		  const char *why)
{
	uint8_t sd[SCSI_SENSE_LEN];

	sense(sd, SCSI_SK_ILLEGAL_REQUEST, asc, 0);
	vsp_note(c->v, "channel %u: request %#llx refused: %s", c->offer->relid,
		 (unsigned long long)s->trans_id, why);
	vsp_count(c->v, &c->v->st.rejected, 1);
	fill_srb_reply(c, s, VSP_NT_INVALID_PARAMETER,
		       VSP_SRB_INVALID_REQUEST | VSP_SRB_AUTOSENSE_VALID,
		       SCSI_CHECK_CONDITION, sd, SCSI_SENSE_LEN, 0);
	vsp_slot_ready(s);
	return 0;
}

/* The SCSI target finished: any thread. */
static void srb_done(struct scsi_cmd *cmd)
{
	struct vsp_slot *s = cmd->opaque;
	struct vsp_chan *c = s->c;
	uint32_t moved = cmd->xfer_len > UINT32_MAX ? UINT32_MAX : (uint32_t)cmd->xfer_len;

	if (cmd->status == SCSI_GOOD && cmd->residual >= 0) {
		fill_srb_reply(c, s, VSP_NT_SUCCESS, VSP_SRB_SUCCESS, SCSI_GOOD,
			       NULL, 0, moved);
	} else if (cmd->status == SCSI_GOOD) {
		/* the guest's buffer was shorter than the command wanted */
		fill_srb_reply(c, s, VSP_NT_BUFFER_OVERFLOW, VSP_SRB_DATA_OVERRUN,
			       SCSI_GOOD, NULL, 0, moved);
	} else if (cmd->status == SCSI_CHECK_CONDITION && cmd->sense_len >= 14 &&
		   (cmd->sense[2] & 0xf) == SCSI_SK_ILLEGAL_REQUEST &&
		   cmd->sense[12] == 0x25 && cmd->sense[13] == 0) {
		/* LOGICAL UNIT NOT SUPPORTED: Linux wants INVALID_LUN (it
		 * then removes the device), no sense */
		fill_srb_reply(c, s, VSP_NT_DEVICE_DOES_NOT_EXIST, VSP_SRB_INVALID_LUN,
			       SCSI_CHECK_CONDITION, NULL, 0, 0);
	} else if (cmd->status == SCSI_CHECK_CONDITION && cmd->sense_len) {
		bool illegal = (cmd->sense[2] & 0xf) == SCSI_SK_ILLEGAL_REQUEST;

		fill_srb_reply(c, s, VSP_NT_IO_DEVICE_ERROR,
			       (illegal ? VSP_SRB_INVALID_REQUEST : VSP_SRB_ERROR) |
			       VSP_SRB_AUTOSENSE_VALID,
			       SCSI_CHECK_CONDITION, cmd->sense, cmd->sense_len, moved);
	} else {
		/* BUSY, RESERVATION CONFLICT...: never a failure with GOOD */
		fill_srb_reply(c, s, VSP_NT_IO_DEVICE_ERROR, VSP_SRB_ERROR,
			       cmd->status, NULL, 0, moved);
	}
	vsp_slot_ready(s);
}

/* Parse the GPA-direct extra header of the copied packet into s->iov,
 * covering the first dtl bytes.  Returns the iovec count (>= 0), -EPROTO
 * for framing errors (channel fails), -EFAULT for a page outside guest
 * memory, -EMSGSIZE for a range shorter than dtl or over the maximum. */
static int gpa_iov(struct vsp_chan *c, struct vsp_slot *s,
		   const struct ring_pkt *pkt, const uint8_t *buf, uint32_t dtl)
{
	struct vsp *v = c->v;
	struct vsp_gpa_range rg;
	uint64_t end, npfn, left = dtl;
	uint32_t hdr_end = pkt->payload_off;	/* the range area ends here */
	int n = 0;

	if (hdr_end < RING_DESC_SIZE + sizeof(rg))
		return -EPROTO;
	memcpy(&rg, buf + RING_DESC_SIZE, sizeof(rg));
	if (rg.rangecount != 1 || rg.byte_count == 0 || rg.byte_offset >= PAGE)
		return -EPROTO;
	end = (uint64_t)rg.byte_offset + rg.byte_count;	/* < 2^33 */
	npfn = (end + PAGE - 1) / PAGE;
	/* the PFNs must all be in the packet's extra header */
	if (npfn > (hdr_end - RING_DESC_SIZE - sizeof(rg)) / 8)
		return -EPROTO;
	if (rg.byte_count < dtl)
		return -EMSGSIZE;
	for (uint64_t i = 0; left; i++) {
		uint64_t pfn, off = i ? 0 : rg.byte_offset, len;
		uint8_t *p;

		memcpy(&pfn, buf + RING_DESC_SIZE + sizeof(rg) + 8 * i, 8);
		if (pfn >= v->guest_pages)	/* no overflow: pfn * PAGE < guest_bytes */
			return -EFAULT;
		len = PAGE - off < left ? PAGE - off : left;
		p = (uint8_t *)v->cfg.guest_mem + pfn * PAGE + off;
		if (n && (uint8_t *)s->iov[n - 1].iov_base + s->iov[n - 1].iov_len == p) {
			s->iov[n - 1].iov_len += len;	/* contiguous pages: merge */
		} else {
			if ((uint32_t)n > v->max_pages)
				return -EMSGSIZE;
			s->iov[n].iov_base = p;
			s->iov[n].iov_len = len;
			n++;
		}
		left -= len;
	}
	return n;
}

int vsp_execute_srb(struct vsp_chan *c, struct vsp_slot *s,
		    const struct ring_pkt *pkt, const uint8_t *buf,
		    const struct vsp_packet *vp)
{
	struct vsp *v = c->v;
	const struct vsp_srb *r = &vp->srb;
	struct scsi_cmd *cmd = &s->cmd;
	uint32_t dtl = r->data_transfer_length;
	int niov = 0;

	vsp_count(v, &v->st.srbs, 1);
	s->req = *r;
	if (r->data_in > VSP_DATA_NONE)
		return refuse(c, s, 0x24, "data_in out of range");
	if (r->data_in == VSP_DATA_NONE)
		dtl = 0;
	if (pkt->type == RING_PKT_DATA_GPA_DIRECT) {
		niov = gpa_iov(c, s, pkt, buf, dtl);
		if (niov == -EPROTO) {
			vsp_chan_fail(c, "malformed GPA-direct range (id %#llx)",
				      (unsigned long long)s->trans_id);
			return -EPROTO;
		}
	} else if (dtl) {
		return refuse(c, s, 0x24, "data transfer without a page list");
	}
	if (dtl > v->cfg.max_transfer)
		return refuse(c, s, 0x24, "transfer over the maximum");
	if (niov == -EFAULT)
		return refuse(c, s, 0x21, "page outside guest memory");
	if (niov < 0)
		return refuse(c, s, 0x24, "page list shorter than the transfer");
	if (r->cdb_length == 0 || r->cdb_length > 16)
		return refuse(c, s, 0x24, "CDB length");
	if (r->path_id != 0 || r->target_id != 0) {
		/* one target: every other path/target has no LUN */
		fill_srb_reply(c, s, VSP_NT_DEVICE_DOES_NOT_EXIST, VSP_SRB_INVALID_LUN,
			       SCSI_CHECK_CONDITION, NULL, 0, 0);
		vsp_slot_ready(s);
		return 0;
	}
	memset(cmd, 0, sizeof(*cmd));
	cmd->lun = r->lun;
	memcpy(cmd->cdb, r->cdb, r->cdb_length);
	cmd->cdb_len = r->cdb_length;
	cmd->dir = !dtl ? SCSI_DIR_NONE :
		   r->data_in == VSP_DATA_IN ? SCSI_DIR_IN : SCSI_DIR_OUT;
	cmd->iov = niov ? s->iov : NULL;
	cmd->iovcnt = niov;
	cmd->initiator = VSP_INITIATOR;
	cmd->done = srb_done;
	cmd->opaque = s;
	scsi_submit(v->t, cmd);
	return 0;
}
