/* gvmbus: the guest's VMBus client (see gvmbus.h). */
#include "vmm-mini/guest/gvmbus.h"
#include "vmm-mini/guest/rt.h"

#define MAX_OFFERS 16
#define SPIN_NS 50000		/* poll this long before sleeping */
#define GPADL_BASE 0xE1E10u

static struct {
	bool up;
	uint64_t *ev_g2h;	/* guest -> host flags */
	struct ring msg_out, msg_in;
	uint64_t next, end;	/* bump allocator */
	struct vmbus_msg_offer offers[MAX_OFFERS];
	unsigned noffers;
	uint32_t ngpadl;
	struct gv_chan *watch[GV_MAX_WATCH];
	unsigned nwatch;
} gv;

bool gv_stop_requested(void)
{
	return rt_boot()->stop_req != 0;
}

uint64_t gv_now_ns(void)
{
	return rt_ticks_ns(rt_rdtsc());
}

void *gv_alloc(uint64_t bytes)
{
	uint64_t n = (bytes + 4095) & ~4095ull;
	void *p;

	if (!gv.next) {
		gv.next = rt_boot()->free_start;
		gv.end = rt_boot()->free_end;
	}
	if (n > gv.end - gv.next)
		return NULL;
	p = (void *)(uintptr_t)gv.next;
	gv.next += n;
	return p;
}

void gv_signal(uint32_t relid)
{
	__atomic_fetch_or(&gv.ev_g2h[relid / 64], 1ull << (relid % 64), __ATOMIC_SEQ_CST);
	rt_doorbell(rt_boot()->vmbus_doorbell);
}

int gv_send(struct gv_chan *c, uint16_t type, uint16_t flags, uint64_t trans_id,
	    uint32_t hdr_len, const void *data, uint32_t len)
{
	struct ring_iov iov = { data, len };
	enum ring_status st;
	bool sig;

	st = ring_write(&c->out, type, flags, trans_id, hdr_len, &iov, 1, &sig);
	if (st == RING_NOSPACE)
		return GV_E_RING;
	if (st != RING_OK) {
		rt_printf("vmbus: channel %u: ring write: %s", c->relid, ring_status_str(st));
		return GV_E_PROTO;
	}
	if (sig)
		gv_signal(c->relid);
	return 0;
}

bool gv_watch(struct gv_chan *c)
{
	if (gv.nwatch == GV_MAX_WATCH)
		return false;
	gv.watch[gv.nwatch++] = c;
	return true;
}

void gv_idle(struct gv_chan *const *chans, int n)
{
	const struct vmm_boot *b = rt_boot();
	uint64_t seen = b->wake_seq[0];
	bool any = false;

	/* Unmask each ring we consume; a true return means data came in
	 * meanwhile (it would not have been signalled). */
	any |= ring_unmask_interrupts(&gv.msg_in);
	for (int i = 0; i < n; i++)
		if (chans[i])
			any |= ring_unmask_interrupts(&chans[i]->in);
	for (unsigned i = 0; i < gv.nwatch; i++)
		any |= ring_unmask_interrupts(&gv.watch[i]->in);
	if (!any && !b->stop_req)
		rt_sleep_while(&b->wake_seq[0], seen);
	ring_mask_interrupts(&gv.msg_in);
	for (int i = 0; i < n; i++)
		if (chans[i])
			ring_mask_interrupts(&chans[i]->in);
	for (unsigned i = 0; i < gv.nwatch; i++)
		ring_mask_interrupts(&gv.watch[i]->in);
}

static int post(const void *msg, uint32_t len)
{
	struct ring_iov iov = { msg, len };
	uint64_t t0 = gv_now_ns();
	enum ring_status st;
	bool sig;

	/* the message ring is 5 pages; the host drains it on every doorbell */
	while ((st = ring_write(&gv.msg_out, RING_PKT_DATA_INBAND, 0, len, 0, &iov, 1,
				&sig)) == RING_NOSPACE) {
		if (gv_now_ns() - t0 > 5000000000ull) {
			rt_printf("vmbus: the host does not read its messages");
			return GV_E_PROTO;
		}
		gv_signal(0);
		rt_pause();
	}
	if (st != RING_OK) {
		rt_printf("vmbus: message ring: %s", ring_status_str(st));
		return GV_E_PROTO;
	}
	if (sig)
		gv_signal(0);
	return 0;
}

/* One message if there is one: its length, 0 when none, < 0 on error. */
static int recv_now(void *buf, uint32_t max)
{
	union {
		uint8_t b[RING_DESC_SIZE + VMBUS_MAX_MSG_SIZE + 8];
		uint64_t align;
	} u;
	struct ring_pkt p;
	enum ring_status st = ring_read(&gv.msg_in, u.b, sizeof(u.b), &p);
	uint32_t n;

	if (st == RING_EMPTY)
		return 0;
	if (st != RING_OK) {
		rt_printf("vmbus: message ring from the host: %s", ring_status_str(st));
		return GV_E_PROTO;
	}
	if (ring_commit(&gv.msg_in))
		gv_signal(0);
	n = (uint32_t)p.trans_id;
	if (n > p.len - p.payload_off || n > max || n < 8)
		return GV_E_PROTO;
	memcpy(buf, u.b + p.payload_off, n);
	return (int)n;
}

static uint32_t msg_type(const void *m)
{
	uint32_t t;

	memcpy(&t, m, 4);
	return t;
}

/* Remember an offer (any time one comes). */
static void note_offer(const uint8_t *m, int n)
{
	if (n < (int)sizeof(struct vmbus_msg_offer) || gv.noffers == MAX_OFFERS)
		return;
	memcpy(&gv.offers[gv.noffers++], m, sizeof(struct vmbus_msg_offer));
}

/* Wait for a message of `type` (others noted or dropped); its length. */
static int wait_msg(uint32_t type, uint8_t *m)
{
	uint64_t t0 = gv_now_ns(), spin = t0;

	for (;;) {
		int n = recv_now(m, VMBUS_MAX_MSG_SIZE);

		if (n < 0)
			return n;
		if (n > 0) {
			if (msg_type(m) == type)
				return n;
			if (msg_type(m) == VMBUS_MSG_OFFERCHANNEL)
				note_offer(m, n);
			spin = gv_now_ns();
			continue;
		}
		if (gv_stop_requested())
			return GV_E_STOP;
		if (gv_now_ns() - spin < SPIN_NS) {
			rt_pause();
			continue;
		}
		gv_idle(NULL, 0);
		spin = gv_now_ns();
	}
}

int gv_connect(void)
{
	static const uint32_t vers[] = { VMBUS_VERSION(5, 3), VMBUS_VERSION(5, 2),
					 VMBUS_VERSION(5, 1), VMBUS_VERSION(5, 0),
					 VMBUS_VERSION(4, 1), VMBUS_VERSION(4, 0) };
	const struct vmm_boot *b = rt_boot();
	uint8_t m[VMBUS_MAX_MSG_SIZE];
	bool ok = false;
	int n;

	if (!b->vmbus_event_gpa) {
		rt_printf("vmbus: the VMM gave no VMBus (run with --disk)");
		return GV_E_NODEV;
	}
	gv.ev_g2h = (uint64_t *)(uintptr_t)b->vmbus_event_gpa;
	if (ring_attach(&gv.msg_out, (void *)(uintptr_t)b->vmbus_msg_g2h_gpa,
			b->vmbus_msg_ring_bytes) != RING_OK ||
	    ring_attach(&gv.msg_in, (void *)(uintptr_t)b->vmbus_msg_h2g_gpa,
			b->vmbus_msg_ring_bytes) != RING_OK) {
		rt_printf("vmbus: the message rings are not usable");
		return GV_E_PROTO;
	}
	ring_mask_interrupts(&gv.msg_in);
	/* newest first; 5.3 is refused by this host, as by old Hyper-V */
	for (unsigned i = 0; i < sizeof(vers) / sizeof(vers[0]) && !ok; i++) {
		struct vmbus_msg_initiate_contact c = { { VMBUS_MSG_INITIATE_CONTACT, 0 },
							vers[i], 0, 2, 0, 0 };

		if ((n = post(&c, sizeof(c))) < 0 ||
		    (n = wait_msg(VMBUS_MSG_VERSION_RESPONSE, m)) < 0)
			return n;
		ok = m[8] != 0;
		if (ok)
			rt_printf("vmbus: version %u.%u", vers[i] >> 16, vers[i] & 0xffff);
	}
	if (!ok) {
		rt_printf("vmbus: no version accepted");
		return GV_E_PROTO;
	}
	struct vmbus_msg_hdr ro = { VMBUS_MSG_REQUESTOFFERS, 0 };
	if ((n = post(&ro, sizeof(ro))) < 0)
		return n;
	/* the offers come first; wait_msg notes them */
	if ((n = wait_msg(VMBUS_MSG_ALLOFFERS_DELIVERED, m)) < 0)
		return n;
	gv.up = true;
	return 0;
}

uint32_t gv_find_offer(const struct vmbus_guid *type)
{
	for (unsigned i = 0; i < gv.noffers; i++)
		if (!memcmp(&gv.offers[i].if_type, type, sizeof(*type)) &&
		    gv.offers[i].sub_channel_index == 0)
			return gv.offers[i].child_relid;
	return 0;
}

int gv_open(struct gv_chan *c, uint32_t relid, uint32_t ring_pages)
{
	uint8_t m[VMBUS_MAX_MSG_SIZE];
	uint32_t pages = 2 * ring_pages, id = GPADL_BASE + gv.ngpadl++, k, done;
	uint8_t *base = gv_alloc((uint64_t)pages * 4096);
	uint64_t first, pfn[VMBUS_GPADL_BODY_PFNS];
	int n;

	if (!base)
		return GV_E_NOMEM;
	first = (uint64_t)(uintptr_t)base / 4096;
	ring_format(base, RING_FEAT_PENDING_SEND_SZ);
	ring_format(base + (uint64_t)ring_pages * 4096, RING_FEAT_PENDING_SEND_SZ);

	struct vmbus_msg_gpadl_header gh = {
		{ VMBUS_MSG_GPADL_HEADER, 0 }, relid, id,
		(uint16_t)(8 + 8 * pages), 1, pages * 4096, 0 };
	k = pages < VMBUS_GPADL_HEADER_PFNS ? pages : VMBUS_GPADL_HEADER_PFNS;
	for (uint32_t j = 0; j < k; j++)
		pfn[j] = first + j;
	memcpy(m, &gh, sizeof(gh));
	memcpy(m + sizeof(gh), pfn, k * 8);
	if ((n = post(m, (uint32_t)sizeof(gh) + k * 8)) < 0)
		return n;
	for (done = k; done < pages; done += k) {
		struct vmbus_msg_gpadl_body gb = { { VMBUS_MSG_GPADL_BODY, 0 }, 0, id };

		k = pages - done < VMBUS_GPADL_BODY_PFNS ? pages - done : VMBUS_GPADL_BODY_PFNS;
		for (uint32_t j = 0; j < k; j++)
			pfn[j] = first + done + j;
		memcpy(m, &gb, sizeof(gb));
		memcpy(m + sizeof(gb), pfn, k * 8);
		if ((n = post(m, (uint32_t)sizeof(gb) + k * 8)) < 0)
			return n;
	}
	if ((n = wait_msg(VMBUS_MSG_GPADL_CREATED, m)) < 0)
		return n;
	struct vmbus_msg_gpadl_created gc;
	memcpy(&gc, m, sizeof(gc));
	if (gc.creation_status) {
		rt_printf("vmbus: GPADL refused (status 0x%x)", gc.creation_status);
		return GV_E_REFUSED;
	}
	struct vmbus_msg_open op = { { VMBUS_MSG_OPENCHANNEL, 0 }, relid, relid, id, 0,
				     ring_pages, { 0 } };
	if ((n = post(&op, sizeof(op))) < 0 ||
	    (n = wait_msg(VMBUS_MSG_OPENCHANNEL_RESULT, m)) < 0)
		return n;
	struct vmbus_msg_open_result orr;
	memcpy(&orr, m, sizeof(orr));
	if (orr.status) {
		rt_printf("vmbus: OPENCHANNEL refused (status 0x%x)", orr.status);
		return GV_E_REFUSED;
	}
	c->relid = relid;
	c->gpadl = id;
	if (ring_attach(&c->out, base, (uint64_t)ring_pages * 4096) != RING_OK ||
	    ring_attach(&c->in, base + (uint64_t)ring_pages * 4096,
			(uint64_t)ring_pages * 4096) != RING_OK)
		return GV_E_PROTO;
	ring_mask_interrupts(&c->in);
	return 0;
}
