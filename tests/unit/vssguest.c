/* vssguest: guest side of the VSS integration service (see vssguest.h). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/unit/vssguest.h"
#include "vmbus/vmbus.h"
#include "vss/vss.h"

#define RING_PAGES 4		/* hv_utils: 16 KiB a direction */
#define GPADL_ID 0xE1E20u

struct vssg {
	struct vmbus_guest *g;
	uint8_t *mem;
	uint32_t relid;
	bool open;
	struct vmbus_guest_chan ch;
	bool frozen;
	int count[8], negotiations;
	uint8_t pkt[16 + VSS_MAX_PKT + 8];
};

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static uint32_t msg_type(const uint8_t *m)
{
	uint32_t t;

	memcpy(&t, m, 4);
	return t;
}

static int recv_type(struct vssg *g, uint32_t type, uint8_t *m)
{
	for (int i = 0; i < 64; i++) {
		int n = vmbus_guest_recv(g->g, m, VMBUS_MAX_MSG_SIZE, 5000);

		if (n < 0)
			return n;
		if (msg_type(m) == type)
			return n;
	}
	return -EPROTO;
}

static int open_chan(struct vssg *g)
{
	uint8_t m[VMBUS_MAX_MSG_SIZE];
	const uint32_t pages = 2 * RING_PAGES;
	const uint64_t first = 16;	/* pfn 16..23 */
	uint8_t *base = g->mem + first * 4096;
	struct vmbus_msg_gpadl_header gh = {
		{ VMBUS_MSG_GPADL_HEADER, 0 }, g->relid, GPADL_ID,
		(uint16_t)(8 + 8 * pages), 1, pages * 4096, 0 };
	struct vmbus_msg_open op = { { VMBUS_MSG_OPENCHANNEL, 0 }, g->relid, g->relid,
				     GPADL_ID, 0, RING_PAGES, { 0 } };
	int r;

	ring_format(base, RING_FEAT_PENDING_SEND_SZ);
	ring_format(base + RING_PAGES * 4096, RING_FEAT_PENDING_SEND_SZ);
	memcpy(m, &gh, sizeof(gh));
	for (uint32_t j = 0; j < pages; j++) {
		uint64_t pfn = first + j;

		memcpy(m + sizeof(gh) + 8 * j, &pfn, 8);
	}
	if ((r = vmbus_guest_post(g->g, m, sizeof(gh) + 8 * pages)))
		return r;
	if ((r = recv_type(g, VMBUS_MSG_GPADL_CREATED, m)) < 0)
		return r;
	if (m[16] | m[17] | m[18] | m[19])
		return -EIO;
	if ((r = vmbus_guest_post(g->g, &op, sizeof(op))))
		return r;
	if ((r = recv_type(g, VMBUS_MSG_OPENCHANNEL_RESULT, m)) < 0)
		return r;
	if (m[16] | m[17] | m[18] | m[19])
		return -EIO;
	g->open = true;
	return vmbus_guest_chan_init(g->g, &g->ch, g->relid, first, pages, RING_PAGES);
}

int vssg_attach(const char *sock, bool open_vss, struct vssg **out)
{
	const struct vmbus_guid vss = VMBUS_GUID_VSS;
	struct vmbus_msg_initiate_contact c = { { VMBUS_MSG_INITIATE_CONTACT, 0 },
						VMBUS_VERSION(5, 2), 0, 2, 0, 0 };
	struct vmbus_msg_hdr ro = { VMBUS_MSG_REQUESTOFFERS, 0 };
	uint8_t m[VMBUS_MAX_MSG_SIZE];
	struct vssg *g = calloc(1, sizeof(*g));
	int r, n;

	if (!g)
		return -ENOMEM;
	*out = g;
	if ((r = vmbus_guest_attach(sock, &g->g)))
		return r;
	g->mem = vmbus_guest_mem(g->g);
	if ((r = vmbus_guest_post(g->g, &c, sizeof(c))))
		return r;
	if ((r = recv_type(g, VMBUS_MSG_VERSION_RESPONSE, m)) < 0)
		return r;
	if (!m[8])
		return -EPROTO;
	if ((r = vmbus_guest_post(g->g, &ro, sizeof(ro))))
		return r;
	for (;;) {
		struct vmbus_msg_offer of;

		n = vmbus_guest_recv(g->g, m, sizeof(m), 5000);
		if (n < 8)
			return -EPROTO;
		if (msg_type(m) == VMBUS_MSG_ALLOFFERS_DELIVERED)
			break;
		memcpy(&of, m, sizeof(of));
		if (msg_type(m) == VMBUS_MSG_OFFERCHANNEL && !memcmp(&of.if_type, &vss, 16))
			g->relid = of.child_relid;
	}
	if (!g->relid)
		return -ENODEV;
	return open_vss ? open_chan(g) : 0;
}

void vssg_detach(struct vssg *g)
{
	if (!g)
		return;
	if (g->g)
		vmbus_guest_detach(g->g);
	free(g);
}

bool vssg_frozen(const struct vssg *g) { return g->frozen; }
int vssg_count(const struct vssg *g, int op) { return op >= 0 && op < 8 ? g->count[op] : 0; }
int vssg_negotiations(const struct vssg *g) { return g->negotiations; }

static int send_pkt(struct vssg *g, uint64_t id, const void *p, uint32_t len)
{
	struct ring_iov iov = { p, len };
	uint64_t until = now_ms() + 2000;

	for (;;) {
		bool sig;
		enum ring_status st = ring_write(&g->ch.out, RING_PKT_DATA_INBAND, 0, id,
						 0, &iov, 1, &sig);

		if (st == RING_OK) {
			if (sig)
				vmbus_guest_signal(g->g, g->relid);
			return 0;
		}
		if (st != RING_NOSPACE || now_ms() > until)
			return st == RING_NOSPACE ? -EAGAIN : -EPROTO;
		if (!ring_want_space(&g->ch.out, ring_packet_bytes(len)))
			(void)vmbus_guest_wait(g->g, &g->ch, 10);
	}
}

/* Answer one packet.  Returns 0, or < 0 when the ring broke. */
static int handle(struct vssg *g, enum vssg_mode mode, const struct vssg_hooks *h,
		  uint8_t *p, uint32_t len, uint64_t id)
{
	static const struct vss_ic_version fw[] = { { 3, 0 } }, msg[] = { { 5, 0 } };
	struct vss_ic_version sfw, smsg;
	struct vss_frame f;
	uint32_t status = VSS_S_OK;
	uint8_t op;

	if (vss_decode(p, len, &f) != VSS_W_OK)
		return 0;	/* Linux drops it */
	if (f.type == VSS_ICMSG_NEGOTIATE) {
		enum vss_wstatus ws = vss_guest_negotiate(p, len, fw, 1, msg, 1, &sfw, &smsg);

		if (ws != VSS_W_OK && ws != VSS_W_NOMATCH)
			return 0;
		g->negotiations++;
		vss_guest_reply(p, len, f.status);
		return send_pkt(g, id, p, len);
	}
	if (f.type != VSS_ICMSG_VSS || len < VSS_IC_HDR + sizeof(struct vss_msg))
		return 0;
	op = vss_msg_op(p);
	if (op < 8)
		g->count[op]++;
	switch (op) {
	case VSS_OP_HOT_BACKUP:
		if (mode == VSSG_NO_DAEMON) {
			status = VSS_E_FAIL;
			break;
		}
		vss_set_msg_flags(p, len, VSS_HBU_NO_AUTO_RECOVERY);
		if (mode == VSSG_BAD_LENGTH) {
			vss_guest_reply(p, len, 0);
			return send_pkt(g, id, p, len - 8);
		}
		if (mode == VSSG_WRONG_ID) {
			vss_guest_reply(p, len, 0);
			return send_pkt(g, id + 1000, p, len);
		}
		if (mode == VSSG_REQUEST_FLAGS)
			return send_pkt(g, id, p, len);	/* flags still 0x03 */
		if (mode == VSSG_FLOOD) {
			uint8_t junk[48] = { 1 };

			for (int i = 0; i < 3000; i++)
				if (send_pkt(g, (uint64_t)i * 7919, junk, (uint32_t)(8 + i % 40)))
					break;	/* the host closed the channel */
			return 0;
		}
		break;
	case VSS_OP_GET_DM_INFO:
		vss_set_msg_flags(p, len, 0);
		break;
	case VSS_OP_FREEZE:
		if (mode == VSSG_NO_DAEMON || mode == VSSG_REFUSE_FREEZE) {
			status = VSS_E_FAIL;
			break;
		}
		if (h && h->freeze)
			h->freeze(h->opaque);
		g->frozen = true;
		if (mode == VSSG_SILENT_FREEZE)
			return 0;
		break;
	case VSS_OP_THAW:
		if (mode == VSSG_NO_DAEMON) {
			status = VSS_E_FAIL;
			break;
		}
		if (g->frozen && h && h->thaw)
			h->thaw(h->opaque);
		g->frozen = false;
		break;
	default:
		break;
	}
	vss_guest_reply(p, len, status);
	return send_pkt(g, id, p, len);
}

int vssg_serve(struct vssg *g, enum vssg_mode mode, const struct vssg_hooks *h,
	       int stop_fd, int timeout_ms)
{
	uint64_t until = now_ms() + (uint64_t)timeout_ms;

	while (now_ms() < until) {
		struct pollfd pf = { .fd = stop_fd, .events = POLLIN };
		struct ring_pkt rp;
		enum ring_status st;

		if (stop_fd >= 0 && poll(&pf, 1, 0) > 0)
			return 0;
		if (!g->open) {
			(void)poll(NULL, 0, 10);
			continue;
		}
		st = ring_read(&g->ch.in, g->pkt, sizeof(g->pkt), &rp);
		if (st == RING_EMPTY) {
			(void)vmbus_guest_wait(g->g, &g->ch, 10);
			continue;
		}
		if (st != RING_OK)
			return -EPROTO;
		if (ring_commit(&g->ch.in))
			vmbus_guest_signal(g->g, g->relid);
		if (rp.type == RING_PKT_DATA_INBAND &&
		    handle(g, mode, h, g->pkt + rp.payload_off, rp.len - rp.payload_off,
			   rp.trans_id) == -EPROTO)
			return -EPROTO;
	}
	return -ETIMEDOUT;
}
