/* gvss: the guest's VSS integration service (see gvss.h). */
#include "vmm-mini/guest/gvss.h"
#include "vmm-mini/guest/gvmbus.h"
#include "vmm-mini/guest/rt.h"
#include "vss/vss.h"

#define RING_PAGES 4		/* each direction, control page included (hv_utils) */

static const struct vmbus_guid vss_guid = VMBUS_GUID_VSS;

static struct {
	enum gvss_mode mode;
	bool open, broken;
	struct gv_chan ch;
	bool pending;		/* a FREEZE waits for gvss_freeze_done */
	uint8_t *pend;		/* its payload, in pkt */
	uint32_t pend_len;
	uint64_t pend_id;
	bool frozen;
	unsigned freezes, thaws;
	uint64_t t_frozen;	/* TSC when the last FREEZE was answered S_OK */
	/* one packet, copied out of the ring (descriptor + payload) */
	union {
		uint8_t b[RING_DESC_SIZE + VSS_MAX_PKT + 8];
		uint64_t align;
	} pkt;
} vs;

bool gvss_parse(const char *args, enum gvss_mode *m)
{
	static const char *const names[] = { "on", "off", "refuse", "hang" };
	char v[16];

	*m = GVSS_ON;
	if (!rt_arg_str(args, "vss", v, sizeof(v)))
		return true;
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!rt_strncmp(v, names[i], sizeof(v))) {
			*m = (enum gvss_mode)i;
			return true;
		}
	return false;
}

const char *gvss_mode_str(enum gvss_mode m)
{
	switch (m) {
	case GVSS_ON: return "on";
	case GVSS_OFF: return "off";
	case GVSS_REFUSE: return "refuse";
	case GVSS_HANG: return "hang";
	}
	return "?";
}

bool gvss_freeze_pending(void) { return vs.pending; }
bool gvss_frozen(void) { return vs.frozen; }
unsigned gvss_freezes(void) { return vs.freezes; }
unsigned gvss_thaws(void) { return vs.thaws; }

int gvss_open(enum gvss_mode m)
{
	uint32_t relid;
	int r;

	vs.mode = m;
	if (m == GVSS_OFF) {
		rt_printf("vss: off (the channel stays closed)");
		return 0;
	}
	relid = gv_find_offer(&vss_guid);
	if (!relid) {
		rt_printf("vss: no VSS integration service offered");
		return 0;
	}
	if ((r = gv_open(&vs.ch, relid, RING_PAGES)) < 0)
		return r;
	if (!gv_watch(&vs.ch))
		return GV_E_NOMEM;
	vs.open = true;
	rt_printf("vss: channel %u open (mode %s)", relid, gvss_mode_str(m));
	return 0;
}

/* The reply in vs.pkt's payload p (len bytes) back to the host.  The host
 * reads its ring during a transaction, so room comes: wait a bounded
 * while. */
static int reply(const uint8_t *p, uint32_t len, uint64_t id)
{
	uint64_t t0 = gv_now_ns();
	int r;

	while ((r = gv_send(&vs.ch, RING_PKT_DATA_INBAND, 0, id, 0, p, len)) == GV_E_RING) {
		if (gv_now_ns() - t0 > 2000000000ull) {
			rt_printf("vss: the host leaves no room for a reply");
			return GV_E_PROTO;
		}
		gv_signal(vs.ch.relid);
		rt_pause();
	}
	return r;
}

/* Answer (or leave pending) one packet; its payload p, len bytes. */
static int handle(uint8_t *p, uint32_t len, uint64_t id)
{
	static const struct vss_ic_version fw_pref[] = { { 3, 0 } }, msg_pref[] = { { 5, 0 } };
	struct vss_ic_version fw, msg;
	struct vss_frame f;
	uint32_t status = VSS_S_OK;
	enum vss_wstatus ws;

	if (vss_decode(p, len, &f) != VSS_W_OK)
		return 0;	/* Linux drops what is shorter than the headers */
	if (f.type == VSS_ICMSG_NEGOTIATE) {
		ws = vss_guest_negotiate(p, len, fw_pref, 1, msg_pref, 1, &fw, &msg);
		if (ws != VSS_W_OK && ws != VSS_W_NOMATCH)
			return 0;	/* malformed: nothing to answer */
		if (ws == VSS_W_OK)
			rt_printf("vss: negotiated framework %u.%u, VSS %u.%u", fw.major, fw.minor,
				  msg.major, msg.minor);
		else
			rt_printf("vss: the host offers no version we speak");
		vss_guest_reply(p, len, f.status);
		return reply(p, len, id);
	}
	if (f.type != VSS_ICMSG_VSS || len < VSS_IC_HDR + sizeof(struct vss_msg))
		return 0;	/* as Linux: not ours, or too short */
	switch (vss_msg_op(p)) {
	case VSS_OP_HOT_BACKUP:
		vss_set_msg_flags(p, len, VSS_HBU_NO_AUTO_RECOVERY);
		break;
	case VSS_OP_GET_DM_INFO:
		vss_set_msg_flags(p, len, 0);
		break;
	case VSS_OP_FREEZE:
		if (vs.mode == GVSS_REFUSE) {
			rt_printf("vss: FREEZE refused (vss=refuse)");
			status = VSS_E_FAIL;
			break;
		}
		if (vs.mode == GVSS_HANG) {
			rt_printf("vss: FREEZE left unanswered (vss=hang): writes go on");
			return 0;
		}
		/* the workload stops writing, flushes, then answers */
		vs.pending = true;
		vs.pend = p;
		vs.pend_len = len;
		vs.pend_id = id;
		return 0;
	case VSS_OP_THAW:
		if (vs.frozen) {
			vs.frozen = false;
			rt_printf("vss: THAW after %llu us frozen",
				  (unsigned long long)rt_ticks_ns(rt_rdtsc() - vs.t_frozen) / 1000);
		} else {
			rt_printf("vss: THAW (was not frozen)");
		}
		vs.thaws++;
		break;
	default:	/* CREATE, DELETE, BU_COMPLETE, AUTO_RECOVER, unknown: S_OK */
		break;
	}
	vss_guest_reply(p, len, status);
	return reply(p, len, id);
}

int gvss_poll(void)
{
	while (vs.open && !vs.broken && !vs.pending) {
		struct ring_pkt rp;
		enum ring_status st = ring_read(&vs.ch.in, vs.pkt.b, sizeof(vs.pkt.b), &rp);
		int r;

		if (st == RING_EMPTY)
			return 0;
		if (st != RING_OK) {
			/* a corrupt ring or a packet over 8 KiB: Linux would
			 * stop the service too */
			rt_printf("vss: host->guest ring: %s: the service stops",
				  ring_status_str(st));
			vs.broken = true;
			return GV_E_PROTO;
		}
		if (ring_commit(&vs.ch.in))
			gv_signal(vs.ch.relid);
		if (rp.type != RING_PKT_DATA_INBAND)
			continue;
		r = handle(vs.pkt.b + rp.payload_off, rp.len - rp.payload_off, rp.trans_id);
		if (r < 0) {
			vs.broken = true;
			return r;
		}
	}
	return 0;
}

int gvss_freeze_done(bool ok)
{
	int r;

	if (!vs.pending)
		return 0;
	vs.pending = false;
	/* the FREEZE is still where gvss_poll read it: nothing was read since */
	vss_guest_reply(vs.pend, vs.pend_len, ok ? VSS_S_OK : VSS_E_FAIL);
	r = reply(vs.pend, vs.pend_len, vs.pend_id);
	if (r < 0) {
		vs.broken = true;
		return r;
	}
	if (ok) {
		vs.frozen = true;
		vs.freezes++;
		vs.t_frozen = rt_rdtsc();
	}
	return 0;
}
