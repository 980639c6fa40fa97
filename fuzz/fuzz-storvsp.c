/* libFuzzer target: the storage VSP (storvsp/) fed a guest's vstor packets
 * and ring contents through its real entry point: a vmbus channel manager
 * on an in-memory partition (a memfd), the SCSI controller offered and
 * opened by the harness as storvsc would (contact, offers, GPADL,
 * OPENCHANNEL), then packets written into the guest->host ring and the
 * channel signalled.  The VSP's service thread serves them against two
 * memory disks (LUN 0, LUN 1 read-only); the harness plays the guest:
 * it reads the host->guest ring, frees its space, signals.
 *
 * Input: byte 0 selects the setup (bit 0: the harness does the vstor
 * init first with version 6.2/6.0/5.1 chosen by bits 1-2; else the input
 * must).  Then records, kind = byte % 6:
 *   0 packet: t, len, then len payload bytes; type (t & 3) in {INBAND,
 *     GPA_DIRECT, COMP, XFER_PAGES}, flags bit 0 = !(t & 4), extra header
 *     (t >> 3) * 8 bytes of the payload
 *   1 srb: a GPA-direct EXECUTE_SRB from 28 bytes: cdb[16], cdb_len,
 *     lun, data_in, dtl (u16 * 16), byte_offset (u16 % 4096 or raw), 4
 *     page selectors (255: outside the partition, else a data page)
 *   2 raw: len, then len bytes straight into the ring at its write
 *     index (published as one packet of that size)
 *   3 poke: which (byte % 8), value (u32): a control field of either ring
 *   4 sync: signal, wait until the host took everything, read replies
 *   5 lun: add or remove LUN 2
 * Invariants checked: every reply is a well-formed COMPLETE_IO (or an
 * ENUMERATE_BUS / REMOVE_DEVICE) for an id the harness used, no id is
 * answered twice, and while the host kept the channel every request was
 * answered; the host never hangs (a 10 s wait aborts).  ASan covers
 * every access: guest memory is the memfd mapping, rings inside it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/bdev.h"
#include "scsi/scsi.h"
#include "storvsp/storvsp.h"
#include "vmbus/vmbus.h"

#define PAGES 64u		/* memfd: guest pages + a few host ones */
#define GUEST_PAGES 60u
#define RING_PAGES 4u		/* each direction, control page included */
#define DATA_PFN (2 * RING_PAGES) /* first data page */
#define DISK_BYTES (256u << 10)
#define MAX_IDS 4096

#define FAIL(...) do { fprintf(stderr, "fuzz-storvsp: " __VA_ARGS__); \
		       fputc('\n', stderr); abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n);

static int mem_fd = -1;
static uint8_t *mem;
static struct bdev *disk[3];

/* --- memory disks (synchronous ops: the block layer's workers) --- */

struct fz_disk {
	struct bdev b;
	uint8_t data[DISK_BYTES];
};

static int d_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	memcpy(buf, ((struct fz_disk *)b)->data + off, len);
	return 0;
}

static int d_write(struct bdev *b, const void *buf, uint64_t off, size_t len,
		   unsigned flags)
{
	memcpy(((struct fz_disk *)b)->data + off, buf, len);
	return 0;
}

static int d_flush(struct bdev *b)
{
	return 0;
}

static void d_close(struct bdev *b)
{
	bdev_fini(b);
	free(b);
}

static const struct bdev_ops d_ops = {
	.kind = "fuzz-mem", .read = d_read, .write = d_write,
	.flush = d_flush, .close = d_close,
};

static struct bdev *disk_new(uint32_t bs)
{
	struct fz_disk *d = calloc(1, sizeof(*d));

	if (!d || bdev_init(&d->b, &d_ops, "fuzz", DISK_BYTES, bs, false))
		abort();
	return &d->b;
}

/* --- the guest's side of the control messages --- */

struct fx {
	struct vmbus_mgr *m;
	struct vsp *v;
	uint32_t relid;		/* the controller's offer */
	uint32_t open_status;
	struct ring out, in;	/* guest -> host (we produce), host -> guest */
	uint64_t next_id;
	uint8_t answered[MAX_IDS]; /* per id we used: replies seen */
	bool clean;		/* only well-formed records so far */
	bool wedged;		/* after pokes: the host waits for nothing we
				 * can tell; stop waiting */
	bool lun2;
};

static struct fx *cur;

/* A word of a ring's control page (4-byte aligned: the page is). */
static uint32_t *ctl_word(struct ring_control *ctl, size_t off)
{
	return (uint32_t *)(void *)((uint8_t *)ctl + off);
}

static int f_send(void *opaque, const void *msg, size_t len)
{
	struct vmbus_msg_hdr h;

	if (len > VMBUS_MAX_MSG_SIZE || len < sizeof(h))
		FAIL("message of %zu bytes", len);
	memcpy(&h, msg, sizeof(h));
	if (h.msgtype == VMBUS_MSG_OFFERCHANNEL && !cur->relid) {
		struct vmbus_msg_offer o;

		memcpy(&o, msg, sizeof(o));
		cur->relid = o.child_relid;
	} else if (h.msgtype == VMBUS_MSG_OPENCHANNEL_RESULT) {
		struct vmbus_msg_open_result r;

		memcpy(&r, msg, sizeof(r));
		cur->open_status = r.status;
	}
	return 0;
}

static void f_signal(void *opaque, uint32_t relid)
{
}

static void handle(struct fx *f, const void *msg, size_t len)
{
	if (vmbus_mgr_handle(f->m, msg, len))
		FAIL("control message refused: %s", vmbus_last_error());
}

static void connect_and_open(struct fx *f)
{
	struct vmbus_msg_initiate_contact c = { { VMBUS_MSG_INITIATE_CONTACT, 0 },
						VMBUS_VERSION(4, 0), 0, 0, 0, 0 };
	struct vmbus_msg_hdr ro = { VMBUS_MSG_REQUESTOFFERS, 0 };
	uint8_t m[VMBUS_MAX_MSG_SIZE];
	struct vmbus_msg_gpadl_header h = {
		.hdr = { VMBUS_MSG_GPADL_HEADER, 0 }, .gpadl = 1,
		.range_buflen = (uint16_t)(8 + 8 * 2 * RING_PAGES), .rangecount = 1,
		.byte_count = 2 * RING_PAGES * 4096, .byte_offset = 0,
	};
	struct vmbus_msg_open o = { .hdr = { VMBUS_MSG_OPENCHANNEL, 0 },
				    .openid = 1, .ringbuffer_gpadl = 1,
				    .downstream_off = RING_PAGES };

	handle(f, &c, sizeof(c));
	handle(f, &ro, sizeof(ro));
	if (!f->relid)
		FAIL("no offer");
	h.child_relid = f->relid;
	memcpy(m, &h, sizeof(h));
	for (uint64_t i = 0; i < 2 * RING_PAGES; i++)
		memcpy(m + sizeof(h) + 8 * i, &i, 8);
	ring_format(mem, RING_FEAT_PENDING_SEND_SZ);
	ring_format(mem + RING_PAGES * 4096, RING_FEAT_PENDING_SEND_SZ);
	handle(f, m, sizeof(h) + 8 * 2 * RING_PAGES);
	o.child_relid = f->relid;
	f->open_status = 0xFFFFFFFF;
	handle(f, &o, sizeof(o));
	if (f->open_status != 0)
		FAIL("OPENCHANNEL failed");
	if (ring_attach(&f->out, mem, RING_PAGES * 4096) != RING_OK ||
	    ring_attach(&f->in, mem + RING_PAGES * 4096, RING_PAGES * 4096) != RING_OK)
		abort();
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Read every reply in the host->guest ring; check each.  false when the
 * ring is corrupt (the harness poked it). */
static bool reap(struct fx *f)
{
	uint8_t buf[512];
	struct ring_pkt pkt;
	enum ring_status st;
	struct vsp_packet p;

	while ((st = ring_read(&f->in, buf, sizeof(buf), &pkt)) == RING_OK) {
		uint32_t plen = pkt.len - pkt.payload_off;

		memset(&p, 0, sizeof(p));
		memcpy(&p, buf + pkt.payload_off, plen < sizeof(p) ? plen : sizeof(p));
		if (pkt.type == RING_PKT_DATA_INBAND) {
			if (p.operation != VSP_OP_ENUMERATE_BUS &&
			    p.operation != VSP_OP_REMOVE_DEVICE)
				FAIL("in-band packet with operation %u", p.operation);
			continue;
		}
		if (pkt.type != RING_PKT_COMP || p.operation != VSP_OP_COMPLETE_IO ||
		    plen > VSP_MAX_PKT_SIZE || plen < 8)
			FAIL("reply type %#x operation %u, %u bytes", pkt.type,
			     p.operation, plen);
		if (!f->clean)
			continue;	/* raw packets carry any id */
		if (pkt.trans_id == 0 || pkt.trans_id >= f->next_id)
			FAIL("reply for id %#llx never used",
			     (unsigned long long)pkt.trans_id);
		if (pkt.trans_id < MAX_IDS && f->answered[pkt.trans_id]++)
			FAIL("id %llu answered twice", (unsigned long long)pkt.trans_id);
	}
	if (ring_commit(&f->in))
		vmbus_mgr_signal(f->m, f->relid);
	return st == RING_EMPTY || st == RING_E_TOOBIG ? st == RING_EMPTY : false;
}

/* Signal the host and wait until it took everything we wrote (or closed
 * the channel) and nothing is in flight, reading replies meanwhile. */
static void sync_host(struct fx *f)
{
	int64_t start = now_ms(), deadline = start + (f->clean ? 10000 : 500);
	struct vsp_stats st;

	vmbus_mgr_signal(f->m, f->relid);
	if (f->wedged)
		deadline = start;
	for (;;) {
		bool taken, ok;

		vmbus_mgr_run_posted(f->m);	/* channel failures, offers */
		ok = reap(f);
		vsp_get_stats(f->v, &st);
		taken = __atomic_load_n(ctl_word(f->out.ctl, offsetof(struct ring_control, read_index)),
					__ATOMIC_ACQUIRE) ==
			__atomic_load_n(ctl_word(f->out.ctl, offsetof(struct ring_control, write_index)),
					__ATOMIC_ACQUIRE);
		if ((taken || !st.channels_open) && st.inflight == 0) {
			/* a last look: replies written just before */
			(void)reap(f);
			return;
		}
		if (!ok && st.inflight == 0)
			return;		/* we broke our own ring: stop */
		/* after pokes the indices may not tell: give up quietly */
		if (now_ms() > deadline && !f->clean) {
			f->wedged = true;
			return;
		}
		if (now_ms() > deadline)
			FAIL("host stuck: %u in flight, channels open %u, last: %s",
			     st.inflight, st.channels_open, st.last_error);
		vmbus_mgr_signal(f->m, f->relid);
		usleep(50);
	}
}

/* Write one packet; when the ring is full, let the host drain it first. */
static void put(struct fx *f, uint16_t type, uint16_t flags, uint32_t hdr,
		const void *data, uint32_t len, bool counted)
{
	struct ring_iov iov = { data, len };
	uint64_t id = counted ? f->next_id++ : 0x7777;
	enum ring_status st;
	bool sig;

	for (int tries = 0; tries < 2; tries++) {
		st = ring_write(&f->out, type, flags, id, hdr, &iov, 1, &sig);
		if (st != RING_NOSPACE)
			break;
		sync_host(f);
	}
	if (st == RING_OK && sig)
		vmbus_mgr_signal(f->m, f->relid);
}

static void init_vstor(struct fx *f, uint16_t version)
{
	static const uint32_t ops[] = { VSP_OP_BEGIN_INITIALIZATION,
					VSP_OP_QUERY_PROTOCOL_VERSION,
					VSP_OP_QUERY_PROPERTIES,
					VSP_OP_END_INITIALIZATION };

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		struct vsp_packet p;

		memset(&p, 0, sizeof(p));
		p.operation = ops[i];
		p.flags = VSP_FLAG_REQUEST_COMPLETION;
		p.version.major_minor = version;
		put(f, RING_PKT_DATA_INBAND, RING_PKT_F_COMPLETION, 0, &p, sizeof(p), true);
		sync_host(f);
	}
}

static uint32_t get16(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

/* A GPA-direct EXECUTE_SRB from 28 input bytes. */
static void srb(struct fx *f, const uint8_t *p)
{
	union {
		uint8_t b[16 + 8 * 4 + sizeof(struct vsp_packet)];
		uint64_t align;
	} pk;
	struct vsp_packet vp;
	struct vsp_gpa_range rg = { 0, 1, get16(p + 19) * 16u, get16(p + 21) };
	uint32_t npfn;

	memset(&vp, 0, sizeof(vp));
	vp.operation = VSP_OP_EXECUTE_SRB;
	vp.flags = VSP_FLAG_REQUEST_COMPLETION;
	vp.srb.length = VSP_SRB_LEN_WIN8;
	memcpy(vp.srb.cdb, p, 16);
	vp.srb.cdb_length = p[16] % 18;
	vp.srb.lun = p[17] % 4;
	vp.srb.data_in = p[18] % 4;
	vp.srb.data_transfer_length = rg.byte_count;
	vp.srb.sense_info_length = VSP_SENSE_LEN_WIN8;
	if (!(rg.byte_offset & 0x8000))
		rg.byte_offset %= 4096;	/* mostly valid */
	npfn = (uint32_t)(((uint64_t)rg.byte_offset % 4096 + rg.byte_count + 4095) / 4096);
	if (npfn > 4)
		npfn = 4;
	memcpy(pk.b, &rg, sizeof(rg));
	for (uint32_t i = 0; i < 4; i++) {
		uint64_t pfn = p[24 + i] == 255 ? GUEST_PAGES + p[24 + i] :
			       DATA_PFN + p[24 + i] % (GUEST_PAGES - DATA_PFN);

		memcpy(pk.b + 16 + 8 * i, &pfn, 8);
	}
	if (!rg.byte_count) {
		vp.srb.data_transfer_length = 0;
		put(f, RING_PKT_DATA_INBAND, RING_PKT_F_COMPLETION, 0, &vp, sizeof(vp), true);
		return;
	}
	memcpy(pk.b + 16 + 8 * npfn, &vp, sizeof(vp));
	put(f, RING_PKT_DATA_GPA_DIRECT, RING_PKT_F_COMPLETION, 16 + 8 * npfn,
	    pk.b, 16 + 8 * npfn + (uint32_t)sizeof(vp), true);
}

/* Raw bytes at the ring's write index, published as a packet's span. */
static void raw(struct fx *f, const uint8_t *p, uint32_t n)
{
	struct ring *r = &f->out;
	uint32_t span = ((n + 7) & ~7u) + 8;

	if (span >= ring_bytes_free(r))
		sync_host(f);
	if (span >= ring_bytes_free(r))
		return;
	for (uint32_t i = 0; i < n; i++)
		r->data[(r->priv_write + i) % r->size] = p[i];
	r->priv_write = (r->priv_write + span) % r->size;
	__atomic_store_n(ctl_word(r->ctl, offsetof(struct ring_control, write_index)),
			 r->priv_write, __ATOMIC_SEQ_CST);
	vmbus_mgr_signal(f->m, f->relid);
}

static void poke(struct fx *f, uint8_t which, uint32_t val)
{
	struct ring_control *ctl = which & 4 ? f->in.ctl : f->out.ctl;
	static const size_t field[] = {
		offsetof(struct ring_control, write_index),
		offsetof(struct ring_control, read_index),
		offsetof(struct ring_control, interrupt_mask),
		offsetof(struct ring_control, pending_send_sz),
	};

	__atomic_store_n(ctl_word(ctl, field[which & 3]), val, __ATOMIC_SEQ_CST);
	vmbus_mgr_signal(f->m, f->relid);
}

static void run(struct fx *f, const uint8_t *in, size_t n)
{
	size_t i = 1;

	connect_and_open(f);
	if (in[0] & 1)
		init_vstor(f, (const uint16_t[]){ VSP_VER_WIN10, VSP_VER_WIN8_1,
						  VSP_VER_WIN8, VSP_VER_WIN10 }[(in[0] >> 1) & 3]);
	while (i < n) {
		uint8_t kind = in[i++] % 6;
		size_t left = n - i;

		switch (kind) {
		case 0: {
			static const uint16_t types[] = { RING_PKT_DATA_INBAND,
							  RING_PKT_DATA_GPA_DIRECT,
							  RING_PKT_COMP,
							  RING_PKT_DATA_XFER_PAGES };
			uint8_t t, len;
			uint32_t hdr;

			if (left < 2)
				return;
			t = in[i];
			len = in[i + 1];
			i += 2;
			if (len > n - i)
				len = (uint8_t)(n - i);
			hdr = (uint32_t)(t >> 3) * 8;
			if (hdr > len)
				hdr = len & ~7u;
			put(f, types[t & 3], t & 4 ? 0 : RING_PKT_F_COMPLETION, hdr,
			    in + i, len, true);
			i += len;
			break;
		}
		case 1:
			if (left < 28)
				return;
			srb(f, in + i);
			i += 28;
			break;
		case 2: {
			uint8_t len;

			if (left < 1)
				return;
			len = in[i++];
			if (len > n - i)
				len = (uint8_t)(n - i);
			f->clean = false;
			raw(f, in + i, len);
			i += len;
			break;
		}
		case 3: {
			uint32_t val;

			if (left < 5)
				return;
			memcpy(&val, in + i + 1, 4);
			f->clean = false;
			poke(f, in[i], val);
			i += 5;
			break;
		}
		case 4:
			sync_host(f);
			break;
		case 5:
			if (f->lun2)
				(void)vsp_lun_remove(f->v, 2);
			else
				(void)vsp_lun_add(f->v, 2, disk[2], 0);
			f->lun2 = !f->lun2;
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	struct vmbus_mgr_cfg mcfg;
	struct vsp_cfg cfg;
	struct vsp_stats st;
	struct fx *f;

	if (n < 1)
		return 0;
	if (mem_fd < 0) {
		mem_fd = memfd_create("fuzz-storvsp", 0);
		if (mem_fd < 0 || ftruncate(mem_fd, PAGES * 4096))
			abort();
		mem = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_SHARED,
			   mem_fd, 0);
		if (mem == MAP_FAILED)
			abort();
		disk[0] = disk_new(512);
		disk[1] = disk_new(4096);
		disk[2] = disk_new(512);
	}
	memset(mem, 0, PAGES * 4096);
	f = calloc(1, sizeof(*f));
	if (!f)
		abort();
	cur = f;
	f->next_id = 1;
	f->clean = true;
	mcfg = (struct vmbus_mgr_cfg){ .mem_fd = mem_fd, .guest_pages = GUEST_PAGES,
				       .send = f_send, .signal = f_signal };
	if (vmbus_mgr_new(&mcfg, &f->m))
		abort();
	cfg = (struct vsp_cfg){ .mgr = f->m, .guest_mem = mem,
				.guest_bytes = GUEST_PAGES * 4096,
				.max_transfer = 64 << 10, .max_subchannels = 2,
				.slots = 16, .spin_us = 5, .cpu = -1 };
	if (vsp_new(&cfg, &f->v) ||
	    vsp_lun_add(f->v, 0, disk[0], 0) ||
	    vsp_lun_add(f->v, 1, disk[1], SCSI_LUN_READ_ONLY))
		abort();
	run(f, in, n);
	sync_host(f);

	vsp_get_stats(f->v, &st);
	if (f->clean && st.channels_open && !st.chan_failed) {
		for (uint64_t id = 1; id < f->next_id && id < MAX_IDS; id++)
			if (f->answered[id] != 1)
				FAIL("id %llu answered %u times (of %llu)",
				     (unsigned long long)id, f->answered[id],
				     (unsigned long long)f->next_id - 1);
	}
	vmbus_mgr_free(f->m);	/* closes the channel: the thread ends */
	vsp_free(f->v);		/* removes the LUNs; the disks stay */
	free(f);
	cur = NULL;
	return 0;
}
