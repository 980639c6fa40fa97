/* vmbus channel manager: version negotiation, offers (and hot add),
 * GPADLs (multi-message; page numbers outside the partition, overflowing
 * and inconsistent counts refused), open/close, teardown, rescind, unload,
 * a channel failed by its device, and random messages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmbus/vmbus.h"

#define MEM_PAGES 64
#define GUEST_PAGES 60	/* the last 4 pages are not the guest's */

struct sent {
	uint8_t b[VMBUS_MAX_MSG_SIZE];
	size_t len;
};

struct fx {
	int fd;
	uint8_t *mem;
	struct vmbus_mgr *m;
	struct sent q[64];
	int nq, head;
	int opens, closes, signals, guest_signals;
	bool fail_on_signal;
	struct vmbus_chan *last;
};

static int cb_send(void *opaque, const void *msg, size_t len)
{
	struct fx *f = opaque;

	assert_true(len <= VMBUS_MAX_MSG_SIZE);
	assert_true(f->nq < 64);
	memcpy(f->q[f->nq].b, msg, len);
	f->q[f->nq].len = len;
	f->nq++;
	return 0;
}

static void cb_signal(void *opaque, uint32_t relid)
{
	((struct fx *)opaque)->guest_signals++;
}

static int dev_open(void *opaque, struct vmbus_chan *ch)
{
	struct fx *f = opaque;

	f->opens++;
	f->last = ch;
	return 0;
}

static void dev_close(void *opaque, struct vmbus_chan *ch)
{
	((struct fx *)opaque)->closes++;
}

static void dev_signal(void *opaque, struct vmbus_chan *ch)
{
	struct fx *f = opaque;

	f->signals++;
	if (f->fail_on_signal)
		vmbus_chan_fail(ch);
}

static const struct vmbus_dev_ops ops = {
	.open = dev_open, .close = dev_close, .signal = dev_signal,
};
static const struct vmbus_guid scsi = VMBUS_GUID_SCSI, vss = VMBUS_GUID_VSS;
static const struct vmbus_guid inst1 = { { 1 } }, inst2 = { { 2 } };

static struct fx *fx_new(void)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vmbus_mgr_cfg cfg;

	assert_non_null(f);
	f->fd = memfd_create("test-vmbus", 0);
	assert_true(f->fd >= 0);
	assert_int_equal(ftruncate(f->fd, MEM_PAGES * 4096), 0);
	f->mem = mmap(NULL, MEM_PAGES * 4096, PROT_READ | PROT_WRITE, MAP_SHARED,
		      f->fd, 0);
	assert_true(f->mem != MAP_FAILED);
	cfg = (struct vmbus_mgr_cfg){ .mem_fd = f->fd, .guest_pages = GUEST_PAGES,
				      .send = cb_send, .signal = cb_signal,
				      .opaque = f };
	assert_int_equal(vmbus_mgr_new(&cfg, &f->m), 0);
	return f;
}

static void fx_free(struct fx *f)
{
	vmbus_mgr_free(f->m);
	munmap(f->mem, MEM_PAGES * 4096);
	close(f->fd);
	free(f);
}

/* Next message the host sent: its type and bytes. */
static struct sent *next(struct fx *f, uint32_t type)
{
	uint32_t t;

	assert_true(f->head < f->nq);
	memcpy(&t, f->q[f->head].b, 4);
	if (t != type)
		fail_msg("host sent message type %u, expected %u", t, type);
	return &f->q[f->head++];
}

static void none_pending(struct fx *f)
{
	assert_int_equal(f->head, f->nq);
}

static void handle(struct fx *f, void *msg, size_t len, uint32_t type)
{
	((struct vmbus_msg_hdr *)msg)->msgtype = type;
	assert_int_equal(vmbus_mgr_handle(f->m, msg, len), 0);
}

static void contact(struct fx *f, uint32_t version, bool ok)
{
	struct vmbus_msg_initiate_contact c = { .version_requested = version };
	struct vmbus_msg_version_response r;

	handle(f, &c, sizeof(c), VMBUS_MSG_INITIATE_CONTACT);
	memcpy(&r, next(f, VMBUS_MSG_VERSION_RESPONSE)->b, sizeof(r));
	assert_int_equal(r.version_supported, ok);
}

static uint64_t dropped(struct fx *f)
{
	struct vmbus_mgr_stats st;

	vmbus_mgr_get_stats(f->m, &st);
	return st.dropped;
}

static void test_version(void **state)
{
	struct fx *f = fx_new();
	struct vmbus_msg_hdr h;

	(void)state;
	/* before contact everything else is dropped */
	handle(f, &h, sizeof(h), VMBUS_MSG_REQUESTOFFERS);
	assert_int_equal(dropped(f), 1);
	none_pending(f);
	contact(f, VMBUS_VERSION(5, 3), false);	/* would need MODIFYCHANNEL acks */
	contact(f, 0x12345678, false);
	assert_int_equal(vmbus_mgr_version(f->m), 0);
	contact(f, VMBUS_VERSION(5, 2), true);
	assert_int_equal(vmbus_mgr_version(f->m), VMBUS_VERSION(5, 2));
	contact(f, VMBUS_VERSION(4, 0), true);	/* contact again: a reset */
	/* short, long and unknown messages */
	assert_int_equal(vmbus_mgr_handle(f->m, &h, 4), 0);
	uint8_t big[300] = { 1 };
	assert_int_equal(vmbus_mgr_handle(f->m, big, sizeof(big)), 0);
	handle(f, big, 12, 99);
	handle(f, big, 20, VMBUS_MSG_INITIATE_CONTACT);	/* < 40 bytes */
	assert_int_equal(dropped(f), 5);
	none_pending(f);
	fx_free(f);
}

static void expect_offer(struct fx *f, const struct vmbus_guid *type,
			 const struct vmbus_guid *inst, uint32_t relid)
{
	struct vmbus_msg_offer o;

	memcpy(&o, next(f, VMBUS_MSG_OFFERCHANNEL)->b, sizeof(o));
	assert_memory_equal(&o.if_type, type, 16);
	assert_memory_equal(&o.if_instance, inst, 16);
	assert_int_equal(o.child_relid, relid);
	assert_int_equal(o.monitor_allocated, 0);
	assert_int_equal(o.sub_channel_index, 0);
}

static void test_offers(void **state)
{
	struct fx *f = fx_new();
	struct vmbus_msg_hdr h;
	int r1, r2, r3;

	(void)state;
	r1 = vmbus_mgr_add_device(f->m, &scsi, &inst1, &ops, f);
	r2 = vmbus_mgr_add_device(f->m, &vss, &inst2, &ops, f);
	assert_int_equal(r1, 1);
	assert_int_equal(r2, 2);
	none_pending(f);
	contact(f, VMBUS_VERSION(4, 0), true);
	handle(f, &h, sizeof(h), VMBUS_MSG_REQUESTOFFERS);
	expect_offer(f, &scsi, &inst1, 1);
	expect_offer(f, &vss, &inst2, 2);
	next(f, VMBUS_MSG_ALLOFFERS_DELIVERED);
	/* a second request is ignored */
	handle(f, &h, sizeof(h), VMBUS_MSG_REQUESTOFFERS);
	none_pending(f);
	/* hot add: offered at once */
	r3 = vmbus_mgr_add_device(f->m, &scsi, &inst2, &ops, f);
	assert_int_equal(r3, 3);
	expect_offer(f, &scsi, &inst2, 3);
	fx_free(f);
}

static int posted_runs;

static void posted_fn(void *arg)
{
	posted_runs += *(int *)arg;
}

/* Sub-channels: same type and instance, their index; gone after a reset
 * (the epoch changes).  Calls posted from a device thread run on the
 * manager's thread in order. */
static void test_subchannels_post(void **state)
{
	struct fx *f = fx_new();
	struct vmbus_msg_hdr h;
	struct vmbus_msg_offer o;
	int one = 1, ten = 10;
	uint32_t epoch;

	(void)state;
	assert_int_equal(vmbus_mgr_add_device(f->m, &scsi, &inst1, &ops, f), 1);
	/* no primary, index 0, a sub-channel of a sub-channel: refused */
	assert_int_equal(vmbus_mgr_add_subchannel(f->m, 9, 1, &ops, f), -EINVAL);
	assert_int_equal(vmbus_mgr_add_subchannel(f->m, 1, 0, &ops, f), -EINVAL);
	contact(f, VMBUS_VERSION(5, 2), true);
	handle(f, &h, sizeof(h), VMBUS_MSG_REQUESTOFFERS);
	expect_offer(f, &scsi, &inst1, 1);
	next(f, VMBUS_MSG_ALLOFFERS_DELIVERED);
	assert_int_equal(vmbus_mgr_add_subchannel(f->m, 1, 1, &ops, f), 2);
	assert_int_equal(vmbus_mgr_add_subchannel(f->m, 1, 2, &ops, f), 3);
	assert_int_equal(vmbus_mgr_add_subchannel(f->m, 2, 1, &ops, f), -EINVAL);
	for (uint16_t i = 1; i <= 2; i++) {
		memcpy(&o, next(f, VMBUS_MSG_OFFERCHANNEL)->b, sizeof(o));
		assert_memory_equal(&o.if_type, &scsi, 16);
		assert_memory_equal(&o.if_instance, &inst1, 16);
		assert_int_equal(o.sub_channel_index, i);
		assert_int_equal(o.child_relid, 1 + i);
	}
	none_pending(f);
	/* a reset frees them: the next guest sees only the primary */
	epoch = vmbus_mgr_epoch(f->m);
	vmbus_mgr_reset(f->m);
	assert_int_not_equal(vmbus_mgr_epoch(f->m), epoch);
	contact(f, VMBUS_VERSION(5, 2), true);
	handle(f, &h, sizeof(h), VMBUS_MSG_REQUESTOFFERS);
	expect_offer(f, &scsi, &inst1, 1);
	next(f, VMBUS_MSG_ALLOFFERS_DELIVERED);
	none_pending(f);
	/* posted calls */
	assert_int_equal(vmbus_mgr_post(f->m, posted_fn, &one), 0);
	assert_int_equal(vmbus_mgr_post(f->m, posted_fn, &ten), 0);
	assert_int_equal(posted_runs, 0);
	vmbus_mgr_run_posted(f->m);
	assert_int_equal(posted_runs, 11);
	vmbus_mgr_run_posted(f->m);
	assert_int_equal(posted_runs, 11);
	assert_int_equal(vmbus_mgr_post(f->m, posted_fn, &one), 0);
	fx_free(f);	/* frees what was never run */
}

/* --- GPADLs --- */

/* Send a GPADL of n PFNs (header + bodies as Linux splits them). */
static void gpadl(struct fx *f, uint32_t relid, uint32_t id, const uint64_t *pfn,
		  uint32_t n, uint32_t byte_count, uint32_t byte_offset)
{
	uint8_t m[VMBUS_MAX_MSG_SIZE];
	struct vmbus_msg_gpadl_header h = {
		.child_relid = relid, .gpadl = id,
		.range_buflen = (uint16_t)(8 + 8 * n), .rangecount = 1,
		.byte_count = byte_count, .byte_offset = byte_offset,
	};
	uint32_t k = n < VMBUS_GPADL_HEADER_PFNS ? n : VMBUS_GPADL_HEADER_PFNS;

	memcpy(m, &h, sizeof(h));
	memcpy(m + sizeof(h), pfn, k * 8);
	handle(f, m, sizeof(h) + k * 8, VMBUS_MSG_GPADL_HEADER);
	while (k < n) {
		struct vmbus_msg_gpadl_body b = { .gpadl = id };
		uint32_t c = n - k < VMBUS_GPADL_BODY_PFNS ? n - k : VMBUS_GPADL_BODY_PFNS;

		memcpy(m, &b, sizeof(b));
		memcpy(m + sizeof(b), pfn + k, c * 8);
		handle(f, m, sizeof(b) + c * 8, VMBUS_MSG_GPADL_BODY);
		k += c;
	}
}

static void expect_created(struct fx *f, uint32_t id, bool ok)
{
	struct vmbus_msg_gpadl_created c;

	memcpy(&c, next(f, VMBUS_MSG_GPADL_CREATED)->b, sizeof(c));
	assert_int_equal(c.gpadl, id);
	if (ok)
		assert_int_equal(c.creation_status, 0);
	else
		assert_int_not_equal(c.creation_status, 0);
}

static struct fx *connected(void)
{
	struct fx *f = fx_new();
	struct vmbus_msg_hdr h;

	assert_int_equal(vmbus_mgr_add_device(f->m, &scsi, &inst1, &ops, f), 1);
	contact(f, VMBUS_VERSION(4, 0), true);
	handle(f, &h, sizeof(h), VMBUS_MSG_REQUESTOFFERS);
	next(f, VMBUS_MSG_OFFERCHANNEL);
	next(f, VMBUS_MSG_ALLOFFERS_DELIVERED);
	return f;
}

static void test_gpadl_ok(void **state)
{
	struct fx *f = connected();
	uint64_t pfn[40];

	(void)state;
	for (int i = 0; i < 40; i++)
		pfn[i] = (uint64_t)(i * 7 % 40);
	gpadl(f, 1, 0xe1e10, pfn, 4, 4 * 4096, 0);
	expect_created(f, 0xe1e10, true);
	/* 40 PFNs: header + one body; the answer only after the body */
	gpadl(f, 1, 0xe1e11, pfn, 40, 40 * 4096 - 100, 50);
	expect_created(f, 0xe1e11, true);
	none_pending(f);
	/* a partial last page and a first page entered mid-way */
	gpadl(f, 1, 0xe1e12, pfn, 2, 4096, 2048);
	expect_created(f, 0xe1e12, true);
	fx_free(f);
}

static void test_gpadl_hostile(void **state)
{
	struct fx *f = connected();
	uint64_t pfn[40] = { 0 };
	uint8_t m[VMBUS_MAX_MSG_SIZE];
	struct vmbus_msg_gpadl_header h;

	(void)state;
	/* page numbers outside the guest's memory: the transport's pages,
	 * past the memory, and one whose byte address overflows */
	pfn[3] = GUEST_PAGES;
	gpadl(f, 1, 1, pfn, 4, 4 * 4096, 0);
	expect_created(f, 1, false);
	pfn[3] = MEM_PAGES + 1000;
	gpadl(f, 1, 2, pfn, 4, 4 * 4096, 0);
	expect_created(f, 2, false);
	pfn[3] = UINT64_MAX;
	gpadl(f, 1, 3, pfn, 4, 4 * 4096, 0);
	expect_created(f, 3, false);
	pfn[3] = 0;
	/* the bad one in a body message */
	pfn[35] = 1ull << 52;
	gpadl(f, 1, 4, pfn, 40, 40 * 4096, 0);
	expect_created(f, 4, false);
	pfn[35] = 0;
	/* counts that disagree or overflow */
	gpadl(f, 1, 5, pfn, 4, 5 * 4096, 0);	/* 5 pages, 4 PFNs */
	expect_created(f, 5, false);
	gpadl(f, 1, 6, pfn, 4, 0xffffffff, 0xfff); /* 2^20 + 1 pages */
	expect_created(f, 6, false);
	gpadl(f, 1, 7, pfn, 1, 0, 0);		/* empty range */
	expect_created(f, 7, false);
	gpadl(f, 1, 8, pfn, 2, 4096, 4096);	/* offset past the page */
	expect_created(f, 8, false);
	gpadl(f, 9, 9, pfn, 1, 4096, 0);	/* unknown relid */
	expect_created(f, 9, false);
	/* range_buflen: not 8 + 8n, too small, the u16 maximum */
	memset(&h, 0, sizeof(h));
	h.child_relid = 1;
	h.rangecount = 1;
	h.byte_count = 4096;
	h.gpadl = 10;
	h.range_buflen = 13;
	memcpy(m, &h, sizeof(h));
	memset(m + sizeof(h), 0, 8);
	handle(f, m, sizeof(h) + 8, VMBUS_MSG_GPADL_HEADER);
	expect_created(f, 10, false);
	h.range_buflen = 8;
	memcpy(m, &h, sizeof(h));
	handle(f, m, sizeof(h) + 8, VMBUS_MSG_GPADL_HEADER);
	expect_created(f, 10, false);
	h.range_buflen = 0xffff;
	memcpy(m, &h, sizeof(h));
	handle(f, m, sizeof(h) + 8, VMBUS_MSG_GPADL_HEADER);
	expect_created(f, 10, false);
	/* two ranges */
	h.range_buflen = 16;
	h.rangecount = 2;
	memcpy(m, &h, sizeof(h));
	handle(f, m, sizeof(h) + 8, VMBUS_MSG_GPADL_HEADER);
	expect_created(f, 10, false);
	/* more PFNs in the header than announced */
	h.rangecount = 1;
	memcpy(m, &h, sizeof(h));
	handle(f, m, sizeof(h) + 16, VMBUS_MSG_GPADL_HEADER);
	expect_created(f, 10, false);
	/* bodies with more than announced: 30 announced, 26 + 28 sent */
	h.range_buflen = 8 + 30 * 8;
	h.byte_count = 30 * 4096;
	memcpy(m, &h, sizeof(h));
	memset(m + sizeof(h), 0, 26 * 8);
	handle(f, m, sizeof(h) + 26 * 8, VMBUS_MSG_GPADL_HEADER);
	none_pending(f);
	struct vmbus_msg_gpadl_body b = { .gpadl = 10 };
	memcpy(m, &b, sizeof(b));
	memset(m + sizeof(b), 0, 28 * 8);
	handle(f, m, sizeof(b) + 28 * 8, VMBUS_MSG_GPADL_BODY);
	expect_created(f, 10, false);
	/* a body for a GPADL not in progress, and an empty one */
	uint64_t d0 = dropped(f);
	handle(f, m, sizeof(b) + 8, VMBUS_MSG_GPADL_BODY);
	handle(f, m, sizeof(b), VMBUS_MSG_GPADL_BODY);
	assert_int_equal(dropped(f), d0 + 2);
	none_pending(f);
	/* a duplicate id is refused, the first one stays */
	gpadl(f, 1, 11, pfn, 1, 4096, 0);
	expect_created(f, 11, true);
	gpadl(f, 1, 11, pfn, 1, 4096, 0);
	expect_created(f, 11, false);
	fx_free(f);
}

/* --- open / close / teardown / rescind / unload --- */

static void open_chan(struct fx *f, uint32_t relid, uint32_t gp, uint32_t off,
		      bool ok)
{
	struct vmbus_msg_open o = { .child_relid = relid, .openid = relid,
				    .ringbuffer_gpadl = gp, .downstream_off = off };
	struct vmbus_msg_open_result r;

	handle(f, &o, sizeof(o), VMBUS_MSG_OPENCHANNEL);
	memcpy(&r, next(f, VMBUS_MSG_OPENCHANNEL_RESULT)->b, sizeof(r));
	assert_int_equal(r.child_relid, relid);
	assert_int_equal(r.openid, relid);
	if (ok)
		assert_int_equal(r.status, 0);
	else
		assert_int_not_equal(r.status, 0);
}

static void relid_msg(struct fx *f, uint32_t type, uint32_t relid)
{
	struct vmbus_msg_relid c = { .child_relid = relid };

	handle(f, &c, sizeof(c), type);
}

static void teardown(struct fx *f, uint32_t relid, uint32_t gp, bool answered)
{
	struct vmbus_msg_gpadl_teardown t = { .child_relid = relid, .gpadl = gp };
	struct vmbus_msg_gpadl_torndown r;

	handle(f, &t, sizeof(t), VMBUS_MSG_GPADL_TEARDOWN);
	if (!answered) {
		none_pending(f);
		return;
	}
	memcpy(&r, next(f, VMBUS_MSG_GPADL_TORNDOWN)->b, sizeof(r));
	assert_int_equal(r.gpadl, gp);
}

static void test_open_close(void **state)
{
	struct fx *f = connected();
	uint64_t pfn[8] = { 20, 21, 10, 11, 30, 31, 32, 33 };	/* scattered */
	uint8_t buf[64];
	struct ring_pkt pkt;
	struct ring g2h;
	bool sig;

	(void)state;
	/* the guest formats its rings (pages 20-21, 10-11 | 30-33) */
	ring_format(f->mem + 20 * 4096, RING_FEAT_PENDING_SEND_SZ);
	ring_format(f->mem + 30 * 4096, RING_FEAT_PENDING_SEND_SZ);
	gpadl(f, 1, 0x100, pfn, 8, 8 * 4096, 0);
	expect_created(f, 0x100, true);
	gpadl(f, 1, 0x101, pfn, 8, 8 * 4096 - 1, 0);	/* not whole pages */
	expect_created(f, 0x101, true);

	open_chan(f, 1, 0x101, 4, false);	/* byte_count not pages */
	open_chan(f, 1, 0x100, 1, false);	/* upstream ring of 1 page */
	open_chan(f, 1, 0x100, 7, false);	/* downstream ring of 1 page */
	open_chan(f, 1, 0x100, 9, false);
	open_chan(f, 1, 0x999, 4, false);	/* unknown GPADL */
	open_chan(f, 5, 0x100, 4, false);	/* unknown relid */
	assert_int_equal(f->opens, 0);
	open_chan(f, 1, 0x100, 4, true);
	assert_int_equal(f->opens, 1);
	open_chan(f, 1, 0x100, 4, false);	/* already open */

	/* a packet the "guest" writes through pages 20-21 (and wrapping
	 * into pages 10-11) reaches the host's view of the ring */
	assert_int_equal(ring_attach(&g2h, f->mem + 20 * 4096, 2 * 4096), RING_OK);
	/* the host maps 4 pages: control 20, data 21, 10, 11; our view here
	 * has only 1 data page, so stay within it */
	struct ring_iov iov = { "hello", 5 };
	assert_int_equal(ring_write(&g2h, RING_PKT_DATA_INBAND, 0, 42, 0, &iov, 1, &sig),
			 RING_OK);
	/* the guest-side view thinks D = 4096: fix up nothing; host reads */
	assert_int_equal(ring_read(vmbus_chan_in(f->last), buf, sizeof(buf), &pkt),
			 RING_OK);
	assert_true(pkt.trans_id == 42);
	assert_memory_equal(buf + 16, "hello", 5);
	/* a signal reaches the device; the device signals the guest */
	vmbus_mgr_signal(f->m, 1);
	assert_int_equal(f->signals, 1);
	vmbus_chan_signal(f->last);
	assert_int_equal(f->guest_signals, 1);

	/* close: the device's close runs, no reply; close again dropped */
	relid_msg(f, VMBUS_MSG_CLOSECHANNEL, 1);
	assert_int_equal(f->closes, 1);
	none_pending(f);
	vmbus_mgr_signal(f->m, 1);	/* closed: not delivered */
	assert_int_equal(f->signals, 1);
	teardown(f, 1, 0x100, true);
	teardown(f, 1, 0x100, false);	/* unknown now */

	/* teardown of the rings of an open channel closes it first */
	gpadl(f, 1, 0x102, pfn, 8, 8 * 4096, 0);
	expect_created(f, 0x102, true);
	open_chan(f, 1, 0x102, 4, true);
	teardown(f, 1, 0x102, true);
	assert_int_equal(f->closes, 2);
	fx_free(f);
}

static void test_rescind_unload_fail(void **state)
{
	struct fx *f = connected();
	uint64_t pfn[4] = { 1, 2, 3, 4 };
	struct vmbus_msg_hdr h;
	struct vmbus_msg_relid r;

	(void)state;
	gpadl(f, 1, 7, pfn, 4, 4 * 4096, 0);
	expect_created(f, 7, true);
	open_chan(f, 1, 7, 2, true);
	/* the device fails the channel from its signal callback */
	f->fail_on_signal = true;
	vmbus_mgr_signal(f->m, 1);
	assert_int_equal(f->closes, 1);
	f->fail_on_signal = false;
	/* the guest can open it again */
	open_chan(f, 1, 7, 2, true);
	assert_int_equal(f->opens, 2);

	/* rescind: closed, the guest told, relid held until released */
	assert_int_equal(vmbus_mgr_rescind(f->m, 1), 0);
	assert_int_equal(f->closes, 2);
	memcpy(&r, next(f, VMBUS_MSG_RESCIND_CHANNELOFFER)->b, sizeof(r));
	assert_int_equal(r.child_relid, 1);
	open_chan(f, 1, 7, 2, false);
	assert_int_equal(vmbus_mgr_add_device(f->m, &vss, &inst2, &ops, f), 2);
	expect_offer(f, &vss, &inst2, 2);
	relid_msg(f, VMBUS_MSG_RELID_RELEASED, 1);
	assert_int_equal(vmbus_mgr_add_device(f->m, &scsi, &inst1, &ops, f), 1);
	expect_offer(f, &scsi, &inst1, 1);
	uint64_t d0 = dropped(f);
	relid_msg(f, VMBUS_MSG_RELID_RELEASED, 1);	/* not rescinded */
	assert_int_equal(dropped(f), d0 + 1);

	/* unload: every channel closed, GPADLs gone, answered */
	uint64_t pfn2[4] = { 8, 9, 10, 11 };
	gpadl(f, 2, 8, pfn2, 4, 4 * 4096, 0);
	expect_created(f, 8, true);
	open_chan(f, 2, 8, 2, true);
	handle(f, &h, sizeof(h), VMBUS_MSG_UNLOAD);
	next(f, VMBUS_MSG_UNLOAD_RESPONSE);
	assert_int_equal(f->closes, 3);
	assert_int_equal(vmbus_mgr_version(f->m), 0);
	/* after unload: contact again, offers again (both devices) */
	contact(f, VMBUS_VERSION(5, 0), true);
	handle(f, &h, sizeof(h), VMBUS_MSG_REQUESTOFFERS);
	expect_offer(f, &scsi, &inst1, 1);
	expect_offer(f, &vss, &inst2, 2);
	next(f, VMBUS_MSG_ALLOFFERS_DELIVERED);
	teardown(f, 2, 8, false);	/* gone with the unload */
	fx_free(f);
}

/* Random messages of every type: nothing crashes, nothing maps pages
 * outside the partition (ASan), every GPADL answer is consistent. */
static void test_random_messages(void **state)
{
	struct fx *f = connected();
	uint64_t x = 88172645463325252ull;
	uint8_t m[VMBUS_MAX_MSG_SIZE];

	(void)state;
	for (int it = 0; it < 20000; it++) {
		size_t len;

		for (size_t i = 0; i < sizeof(m); i += 8) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			memcpy(m + i, &x, 8);
		}
		/* small ids and page numbers, so some messages make sense */
		for (size_t i = 8; i < sizeof(m); i += 8)
			if (m[i] & 1)
				memset(m + i + 1, 0, 7), m[i] >>= 3;
		len = 8 + (size_t)(x >> 5) % (sizeof(m) - 7);
		uint32_t t = 1 + (uint32_t)(x >> 40) % 18;
		if (t == VMBUS_MSG_INITIATE_CONTACT || t == VMBUS_MSG_UNLOAD)
			t = VMBUS_MSG_GPADL_HEADER;
		memcpy(m, &t, 4);
		assert_int_equal(vmbus_mgr_handle(f->m, m, len), 0);
		f->nq = f->head = 0;	/* forget what was sent */
	}
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_offers),
		cmocka_unit_test(test_subchannels_post),
		cmocka_unit_test(test_gpadl_ok),
		cmocka_unit_test(test_gpadl_hostile),
		cmocka_unit_test(test_open_close),
		cmocka_unit_test(test_rescind_unload_fail),
		cmocka_unit_test(test_random_messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
