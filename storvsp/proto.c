/* storvsp vstor operations: the dispatch table and the initialisation
 * state machine (notes 3.3, 3.4).
 *
 * Every packet arrives as a private copy.  Framing rules are checked once,
 * here, before a handler runs: packet type, the completion-requested flag,
 * a known operation, the minimum length.  A guest that breaks them loses
 * the channel (OpenVMM's policy, notes 6).  Out-of-order operations are
 * answered with INVALID_DEVICE_STATE and the state is kept.
 */
#include <errno.h>
#include <string.h>

#include "storvsp/vsp-int.h"

static const uint16_t versions_ok[] = { VSP_VER_WIN10, VSP_VER_WIN8_1, VSP_VER_WIN8 };

bool vsp_version_ok(uint16_t ver)
{
	for (size_t i = 0; i < sizeof(versions_ok) / sizeof(versions_ok[0]); i++)
		if (versions_ok[i] == ver)
			return true;
	return false;
}

uint32_t vsp_reply_size(uint16_t negotiated, uint32_t request_bytes)
{
	if (negotiated)
		return negotiated >= VSP_VER_WIN8 ? VSP_PACKET_SIZE
						  : VSP_PACKET_SIZE_PRE_WIN8;
	return request_bytes < VSP_PACKET_SIZE ? request_bytes : VSP_PACKET_SIZE;
}

void vsp_reply_init(struct vsp_chan *c, struct vsp_slot *s, uint32_t req_bytes,
		    uint32_t nt_status)
{
	memset(&s->reply, 0, sizeof(s->reply));
	s->reply.operation = VSP_OP_COMPLETE_IO;
	s->reply.status = nt_status;
	s->reply_len = vsp_reply_size(atomic_load(&c->v->version), req_bytes);
}

/* Reply with status only. */
static int reply(struct vsp_chan *c, struct vsp_slot *s, uint32_t plen,
		 uint32_t nt_status)
{
	vsp_reply_init(c, s, plen, nt_status);
	vsp_slot_ready(s);
	return 0;
}

/* Move from state `from` to `to`, or answer INVALID_DEVICE_STATE. */
static bool step(struct vsp *v, int from, int to)
{
	return atomic_compare_exchange_strong(&v->state, &from, to);
}

typedef int (*op_fn)(struct vsp_chan *c, struct vsp_slot *s,
		     const struct ring_pkt *pkt, const uint8_t *buf,
		     const struct vsp_packet *vp, uint32_t plen);

static int op_begin(struct vsp_chan *c, struct vsp_slot *s, const struct ring_pkt *pkt,
		    const uint8_t *buf, const struct vsp_packet *vp, uint32_t plen)
{
	if (!step(c->v, VSP_ST_BEGIN, VSP_ST_VERSION))
		return reply(c, s, plen, VSP_NT_INVALID_DEVICE_STATE);
	return reply(c, s, plen, VSP_NT_SUCCESS);
}

static int op_version(struct vsp_chan *c, struct vsp_slot *s, const struct ring_pkt *pkt,
		      const uint8_t *buf, const struct vsp_packet *vp, uint32_t plen)
{
	struct vsp *v = c->v;
	uint16_t want = vp->version.major_minor;

	if (atomic_load(&v->state) != VSP_ST_VERSION)
		return reply(c, s, plen, VSP_NT_INVALID_DEVICE_STATE);
	/* sized by the request: no version yet (the reply to an old
	 * kernel's 48-byte query is 48 bytes) */
	vsp_reply_init(c, s, plen, VSP_NT_SUCCESS);
	s->reply.version.major_minor = want;	/* echoed either way */
	if (!vsp_version_ok(want)) {
		s->reply.status = VSP_NT_REVISION_MISMATCH;	/* state kept */
	} else {
		atomic_store(&v->version, want);
		atomic_store(&v->state, VSP_ST_PROPERTIES);
	}
	vsp_slot_ready(s);
	return 0;
}

static int op_properties(struct vsp_chan *c, struct vsp_slot *s, const struct ring_pkt *pkt,
			 const uint8_t *buf, const struct vsp_packet *vp, uint32_t plen)
{
	struct vsp *v = c->v;

	if (!step(v, VSP_ST_PROPERTIES, VSP_ST_END))
		return reply(c, s, plen, VSP_NT_INVALID_DEVICE_STATE);
	vsp_reply_init(c, s, plen, VSP_NT_SUCCESS);
	s->reply.props.max_channel_cnt = v->cfg.max_subchannels;
	s->reply.props.flags = v->cfg.max_subchannels ? VSP_PROP_MULTI_CHANNEL : 0;
	s->reply.props.max_transfer_bytes = v->cfg.max_transfer;
	vsp_slot_ready(s);
	return 0;
}

static int op_end(struct vsp_chan *c, struct vsp_slot *s, const struct ring_pkt *pkt,
		  const uint8_t *buf, const struct vsp_packet *vp, uint32_t plen)
{
	if (!step(c->v, VSP_ST_END, VSP_ST_READY))
		return reply(c, s, plen, VSP_NT_INVALID_DEVICE_STATE);
	return reply(c, s, plen, VSP_NT_SUCCESS);
}

static int op_subchannels(struct vsp_chan *c, struct vsp_slot *s, const struct ring_pkt *pkt,
			  const uint8_t *buf, const struct vsp_packet *vp, uint32_t plen)
{
	struct vsp *v = c->v;
	int st = atomic_load(&v->state);
	uint16_t n = vp->sub_channel_count;

	/* OpenVMM also takes it before END_INITIALIZATION */
	if (st != VSP_ST_END && st != VSP_ST_READY)
		return reply(c, s, plen, VSP_NT_INVALID_DEVICE_STATE);
	if (vsp_offer_subchannels(v, n) < 0)
		return reply(c, s, plen, VSP_NT_INVALID_PARAMETER);
	return reply(c, s, plen, VSP_NT_SUCCESS);
}

static int op_reset(struct vsp_chan *c, struct vsp_slot *s, const struct ring_pkt *pkt,
		    const uint8_t *buf, const struct vsp_packet *vp, uint32_t plen)
{
	/* nothing is queued anywhere but in the disks: a no-op success,
	 * as OpenVMM does */
	return reply(c, s, plen, VSP_NT_SUCCESS);
}

static int op_srb(struct vsp_chan *c, struct vsp_slot *s, const struct ring_pkt *pkt,
		  const uint8_t *buf, const struct vsp_packet *vp, uint32_t plen)
{
	if (atomic_load(&c->v->state) != VSP_ST_READY)
		return reply(c, s, plen, VSP_NT_INVALID_DEVICE_STATE);
	if (plen < vsp_reply_size(atomic_load(&c->v->version), 0)) {
		vsp_chan_fail(c, "EXECUTE_SRB of %u bytes", plen);
		return -EPROTO;
	}
	return vsp_execute_srb(c, s, pkt, buf, vp);
}

/* Operations a guest may send.  min_len: payload bytes needed (the old
 * kernels' init packets are 48 bytes); primary: refused with
 * INVALID_DEVICE_STATE on sub-channels; gpa: may come as GPA direct. */
static const struct {
	uint32_t op;
	uint32_t min_len;
	bool primary, gpa;
	op_fn fn;
} ops[] = {
	{ VSP_OP_BEGIN_INITIALIZATION, VSP_PACKET_SIZE_PRE_WIN8, true, false, op_begin },
	{ VSP_OP_QUERY_PROTOCOL_VERSION, VSP_PACKET_SIZE_PRE_WIN8, true, false, op_version },
	{ VSP_OP_QUERY_PROPERTIES, VSP_PACKET_SIZE_PRE_WIN8, true, false, op_properties },
	{ VSP_OP_END_INITIALIZATION, VSP_PACKET_SIZE_PRE_WIN8, true, false, op_end },
	{ VSP_OP_CREATE_SUB_CHANNELS, VSP_PACKET_SIZE_PRE_WIN8, true, false, op_subchannels },
	{ VSP_OP_EXECUTE_SRB, VSP_PACKET_SIZE_PRE_WIN8, false, true, op_srb },
	{ VSP_OP_RESET_LUN, VSP_PACKET_SIZE_PRE_WIN8, false, false, op_reset },
	{ VSP_OP_RESET_ADAPTER, VSP_PACKET_SIZE_PRE_WIN8, false, false, op_reset },
	{ VSP_OP_RESET_BUS, VSP_PACKET_SIZE_PRE_WIN8, false, false, op_reset },
};

int vsp_handle_packet(struct vsp_chan *c, struct vsp_slot *s,
		      const struct ring_pkt *pkt, const uint8_t *buf)
{
	uint32_t plen = pkt->len - pkt->payload_off;
	struct vsp_packet vp;

	vsp_count(c->v, &c->v->st.packets, 1);
	if (pkt->type != RING_PKT_DATA_INBAND && pkt->type != RING_PKT_DATA_GPA_DIRECT) {
		/* completions included: we never ask the guest for any */
		vsp_chan_fail(c, "packet type %#x (id %#llx)", pkt->type,
			      (unsigned long long)pkt->trans_id);
		return -EPROTO;
	}
	if (!(pkt->flags & RING_PKT_F_COMPLETION)) {
		vsp_chan_fail(c, "request without the completion flag");
		return -EPROTO;
	}
	if (plen < 12) {
		vsp_chan_fail(c, "vstor packet of %u bytes", plen);
		return -EPROTO;
	}
	/* a zero-extended private copy of the vstor packet */
	memset(&vp, 0, sizeof(vp));
	memcpy(&vp, buf + pkt->payload_off, plen < sizeof(vp) ? plen : sizeof(vp));
	s->trans_id = pkt->trans_id;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (ops[i].op != vp.operation)
			continue;
		if (plen < ops[i].min_len) {
			vsp_chan_fail(c, "operation %u: %u bytes, %u needed",
				      vp.operation, plen, ops[i].min_len);
			return -EPROTO;
		}
		if (pkt->type == RING_PKT_DATA_GPA_DIRECT && !ops[i].gpa) {
			vsp_chan_fail(c, "operation %u as GPA direct", vp.operation);
			return -EPROTO;
		}
		if (ops[i].primary && c->offer->index != 0)
			return reply(c, s, plen, VSP_NT_INVALID_DEVICE_STATE);
		return ops[i].fn(c, s, pkt, buf, &vp, plen);
	}
	vsp_chan_fail(c, "unknown operation %u", vp.operation);
	return -EPROTO;
}
