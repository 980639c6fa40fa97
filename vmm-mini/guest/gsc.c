/* gsc: the guest's storvsc (see gsc.h). */
#include "vmm-mini/guest/gsc.h"
#include "vmm-mini/guest/rt.h"

#define RING_PAGES 64		/* each direction, control page included */
#define SPIN_NS 500000		/* poll this long before sleeping: a guest CPU of its own
				   polls for free, a sleep costs an exit and a wake-up
				   interrupt (40-80 us) on the request's path */
#define MAX_PFNS 260		/* 1 MiB + an unaligned start */

static const struct vmbus_guid scsi_guid = VMBUS_GUID_SCSI;

static struct {
	struct gv_chan ch;
	uint16_t version;
	struct vsp_channel_props props;
	unsigned rescans;
	struct gsc_req *reqs[GSC_MAX_INFLIGHT];	/* trans_id = index + 1 */
	uint32_t free_ids[GSC_MAX_INFLIGHT], nfree;
	unsigned inflight;
	uint64_t last_write, write_gap_max;	/* TSC */
} sc;

bool gsc_ok(const struct gsc_req *r)
{
	return (r->srb_status & 0x3f) == VSP_SRB_SUCCESS && r->scsi_status == 0;
}

uint16_t gsc_version(void)
{
	return sc.version;
}

uint32_t gsc_max_transfer(void)
{
	return sc.props.max_transfer_bytes;
}

unsigned gsc_rescans(void)
{
	return sc.rescans;
}

unsigned gsc_inflight(void)
{
	return sc.inflight;
}

uint64_t gsc_write_gap_take(void)
{
	uint64_t v = sc.write_gap_max;

	sc.write_gap_max = 0;
	return v;
}

/* One packet from the host->guest ring into *p (payload), 0 when none. */
static int read_pkt(struct vsp_packet *p, uint64_t *id)
{
	union {
		uint8_t b[256];
		uint64_t align;
	} u;
	struct ring_pkt rp;
	enum ring_status st = ring_read(&sc.ch.in, u.b, sizeof(u.b), &rp);
	uint32_t n;

	if (st == RING_EMPTY)
		return 0;
	if (st != RING_OK) {
		rt_printf("storvsc: host->guest ring: %s", ring_status_str(st));
		return GV_E_PROTO;
	}
	n = rp.len - rp.payload_off;
	memset(p, 0, sizeof(*p));
	memcpy(p, u.b + rp.payload_off, n < sizeof(*p) ? n : sizeof(*p));
	*id = rp.trans_id;
	return n ? (int)n : 1;
}

/* Commit what was read (signals a host waiting for room). */
static void commit(void)
{
	if (ring_commit(&sc.ch.in))
		gv_signal(sc.ch.relid);	/* the host waits for room */
}

/* Is this an unsolicited notice (hot add / remove)?  Counts it. */
static bool notice(const struct vsp_packet *p, uint64_t id)
{
	if (id == 0 && (p->operation == VSP_OP_ENUMERATE_BUS ||
			p->operation == VSP_OP_REMOVE_DEVICE)) {
		sc.rescans++;
		return true;
	}
	return false;
}

/* One init-phase request on the primary, synchronously. */
static int vstor_op(struct vsp_packet *p)
{
	struct gv_chan *chans[1] = { &sc.ch };
	uint64_t spin = gv_now_ns(), id;
	int n;

	p->flags = VSP_FLAG_REQUEST_COMPLETION;
	n = gv_send(&sc.ch, RING_PKT_DATA_INBAND, RING_PKT_F_COMPLETION, VSP_TRANS_ID_INIT,
		    0, p, VSP_PACKET_SIZE);
	if (n < 0)
		return n;
	for (;;) {
		n = read_pkt(p, &id);
		if (n < 0)
			return n;
		if (n == 0) {
			if (gv_stop_requested())
				return GV_E_STOP;
			if (gv_now_ns() - spin > SPIN_NS) {
				gv_idle(chans, 1);
				spin = gv_now_ns();
			}
			continue;
		}
		commit();
		if (notice(p, id))
			continue;
		if (id != VSP_TRANS_ID_INIT || p->operation != VSP_OP_COMPLETE_IO ||
		    (uint32_t)n < VSP_PACKET_SIZE) {
			rt_printf("storvsc: bad init reply (op %u, %d bytes)", p->operation, n);
			return GV_E_PROTO;
		}
		return 0;
	}
}

int gsc_init(void)
{
	static const uint16_t vers[] = { VSP_VER_WIN10, VSP_VER_WIN8_1, VSP_VER_WIN8 };
	struct vsp_packet p;
	uint32_t relid;
	bool ok = false;
	int r;

	if ((r = gv_connect()) < 0)
		return r;
	relid = gv_find_offer(&scsi_guid);
	if (!relid) {
		rt_printf("storvsc: no SCSI controller offered");
		return GV_E_NODEV;
	}
	if ((r = gv_open(&sc.ch, relid, RING_PAGES)) < 0)
		return r;
	for (uint32_t i = 0; i < GSC_MAX_INFLIGHT; i++)
		sc.free_ids[sc.nfree++] = GSC_MAX_INFLIGHT - 1 - i;

	memset(&p, 0, sizeof(p));
	p.operation = VSP_OP_BEGIN_INITIALIZATION;
	if ((r = vstor_op(&p)) < 0)
		return r;
	/* newest first, as Linux does; the host refuses what it lacks */
	for (unsigned i = 0; i < 3 && !ok; i++) {
		memset(&p, 0, sizeof(p));
		p.operation = VSP_OP_QUERY_PROTOCOL_VERSION;
		p.version.major_minor = vers[i];
		if ((r = vstor_op(&p)) < 0)
			return r;
		if (p.status == 0) {
			sc.version = vers[i];
			ok = true;
		}
	}
	if (!ok) {
		rt_printf("storvsc: no protocol version accepted");
		return GV_E_PROTO;
	}
	memset(&p, 0, sizeof(p));
	p.operation = VSP_OP_QUERY_PROPERTIES;
	if ((r = vstor_op(&p)) < 0)
		return r;
	sc.props = p.props;
	memset(&p, 0, sizeof(p));
	p.operation = VSP_OP_END_INITIALIZATION;
	if ((r = vstor_op(&p)) < 0)
		return r;
	if (p.status) {
		rt_printf("storvsc: END_INITIALIZATION: status 0x%x", p.status);
		return GV_E_PROTO;
	}
	rt_printf("storvsc: protocol %u.%u, max transfer %u KiB, channel %u",
		  sc.version >> 8, sc.version & 0xff, sc.props.max_transfer_bytes >> 10,
		  sc.ch.relid);
	return 0;
}

int gsc_submit(struct gsc_req *r)
{
	union {
		uint8_t b[sizeof(struct vsp_gpa_range) + 8 * MAX_PFNS + VSP_PACKET_SIZE];
		uint64_t align;
	} pk;
	struct vsp_packet p;
	uint32_t hdr = 0, id;
	int e;

	if (!sc.nfree)
		return GV_E_RING;
	memset(&p, 0, sizeof(p));
	p.operation = VSP_OP_EXECUTE_SRB;
	p.flags = VSP_FLAG_REQUEST_COMPLETION;
	p.srb.length = VSP_SRB_LEN_WIN8;
	p.srb.lun = r->lun;
	p.srb.cdb_length = r->cdb_len;
	memcpy(p.srb.cdb, r->cdb, r->cdb_len);
	p.srb.sense_info_length = VSP_SENSE_LEN_WIN8;
	p.srb.data_in = r->len ? r->data_in : VSP_DATA_NONE;
	p.srb.data_transfer_length = r->len;
	p.srb.queue_tag = 0xFF;
	p.srb.queue_action = 0x20;
	/* Linux: SRB_FLAGS_QUEUE_ACTION_ENABLE | DISABLE_SYNCH_TRANSFER |
	 * NO_QUEUE_FREEZE, and the data direction */
	p.srb.srb_flags = 0x8 | 0x2 | 0x100 |
			  (!r->len ? 0 : r->data_in == VSP_DATA_IN ? 0x40 : 0x80);
	p.srb.time_out_value = 60;
	id = sc.free_ids[sc.nfree - 1];
	if (r->len) {
		uint64_t gpa = (uint64_t)(uintptr_t)r->buf;
		struct vsp_gpa_range rg = { 0, 1, r->len, (uint32_t)(gpa % 4096) };
		uint32_t npfn = (uint32_t)((gpa % 4096 + r->len + 4095) / 4096);

		if (npfn > MAX_PFNS)
			return GV_E_PROTO;
		memcpy(pk.b, &rg, sizeof(rg));
		for (uint32_t i = 0; i < npfn; i++) {
			uint64_t pfn = gpa / 4096 + i;

			memcpy(pk.b + sizeof(rg) + 8 * i, &pfn, 8);
		}
		hdr = (uint32_t)sizeof(rg) + 8 * npfn;
	}
	memcpy(pk.b + hdr, &p, sizeof(p));
	e = gv_send(&sc.ch, r->len ? RING_PKT_DATA_GPA_DIRECT : RING_PKT_DATA_INBAND,
		    RING_PKT_F_COMPLETION, (uint64_t)id + 1, hdr, pk.b,
		    hdr + (uint32_t)sizeof(p));
	if (e < 0)
		return e;
	sc.nfree--;
	sc.reqs[id] = r;
	r->done = false;
	if (!r->retries)
		r->t_submit = rt_rdtsc();
	sc.inflight++;
	return 0;
}

int gsc_reap(void)
{
	struct vsp_packet p;
	uint64_t id;
	int n, got = 0;
	bool any = false;

	while ((n = read_pkt(&p, &id)) > 0) {
		struct gsc_req *r;

		any = true;
		if (notice(&p, id))
			continue;
		if (id == 0 || id > GSC_MAX_INFLIGHT || !sc.reqs[id - 1] ||
		    p.operation != VSP_OP_COMPLETE_IO) {
			rt_printf("storvsc: completion with a bad id 0x%llx (op %u)",
				  (unsigned long long)id, p.operation);
			continue;
		}
		r = sc.reqs[id - 1];
		sc.reqs[id - 1] = NULL;
		sc.free_ids[sc.nfree++] = (uint32_t)(id - 1);
		sc.inflight--;
		r->nt_status = p.status;
		r->srb_status = p.srb.srb_status;
		r->scsi_status = p.srb.scsi_status;
		memcpy(r->sense, p.srb.sense_data, sizeof(r->sense));
		r->xfer = p.srb.data_transfer_length;
		/* A UNIT ATTENTION (power on, LUN inventory changed, capacity
		 * changed) reports an event, not this command's failure: send
		 * it again, as Linux's SCSI layer does (a few times). */
		if (r->scsi_status == 0x02 && (r->srb_status & VSP_SRB_AUTOSENSE_VALID) &&
		    (r->sense[2] & 0xf) == 0x6 && r->retries < 3) {
			r->retries++;
			if (gsc_submit(r) == 0)
				continue;
		}
		r->t_done = rt_rdtsc();
		r->done = true;
		got++;
		if (r->data_in == VSP_DATA_OUT && gsc_ok(r)) {
			/* completions are reaped in the order they come */
			if (sc.last_write && r->t_done - sc.last_write > sc.write_gap_max)
				sc.write_gap_max = r->t_done - sc.last_write;
			sc.last_write = r->t_done;
		}
	}
	if (any)
		commit();
	return n < 0 ? n : got;
}

int gsc_wait(void)
{
	struct gv_chan *chans[1] = { &sc.ch };
	uint64_t spin = gv_now_ns();
	int n;

	for (;;) {
		n = gsc_reap();
		if (n != 0 || sc.inflight == 0)
			return n;
		if (gv_now_ns() - spin < SPIN_NS) {
			rt_pause();
			continue;
		}
		gv_idle(chans, 1);
		spin = gv_now_ns();
	}
}

int gsc_idle(void)
{
	struct gv_chan *chans[1] = { &sc.ch };
	unsigned seen = sc.rescans;
	int n = gsc_reap();

	if (n != 0 || sc.rescans != seen)
		return n;
	gv_idle(chans, 1);
	return gsc_reap();
}

int gsc_exec(struct gsc_req *r)
{
	int e;

	while ((e = gsc_submit(r)) == GV_E_RING)
		if ((e = gsc_wait()) < 0)
			return e;
	if (e < 0)
		return e;
	while (!r->done)
		if ((e = gsc_wait()) < 0)
			return e;
	return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void gsc_rw16(struct gsc_req *r, bool write, uint8_t lun, uint64_t lba, uint32_t blocks,
	      void *buf, uint32_t len)
{
	memset(r, 0, sizeof(*r));
	r->cdb[0] = write ? 0x8a : 0x88;
	put_be32(r->cdb + 2, (uint32_t)(lba >> 32));
	put_be32(r->cdb + 6, (uint32_t)lba);
	put_be32(r->cdb + 10, blocks);
	r->cdb_len = 16;
	r->lun = lun;
	r->data_in = write ? VSP_DATA_OUT : VSP_DATA_IN;
	r->buf = buf;
	r->len = len;
}

void gsc_sync_cache(struct gsc_req *r, uint8_t lun)
{
	memset(r, 0, sizeof(*r));
	r->cdb[0] = 0x35;	/* SYNCHRONIZE CACHE (10), whole disk */
	r->cdb_len = 10;
	r->lun = lun;
	r->data_in = VSP_DATA_NONE;
}

static void cmd(struct gsc_req *r, uint8_t lun, const uint8_t *cdb, uint8_t n, void *buf,
		uint32_t len)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->cdb, cdb, n);
	r->cdb_len = n;
	r->lun = lun;
	r->data_in = len ? VSP_DATA_IN : VSP_DATA_NONE;
	r->buf = buf;
	r->len = len;
}

static void text(char *dst, const uint8_t *src, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
	while (i && dst[i - 1] == ' ')
		i--;
	dst[i] = '\0';
}

int gsc_scan(struct gsc_lun *luns, int max)
{
	static uint8_t *buf;	/* one page of guest memory for the scan */
	uint8_t list[GSC_MAX_LUNS];
	struct gsc_req r;
	int found = 0, n = 0, e;

	if (!buf && !(buf = gv_alloc(4096)))
		return GV_E_NOMEM;
	/* REPORT LUNS: LUN-less, so any LUN number will do; try 0 first, as
	 * Linux does, then the others until one answers */
	for (int l = 0; l < GSC_MAX_LUNS; l++) {
		uint8_t c[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x08, 0, 0 };

		cmd(&r, (uint8_t)l, c, 12, buf, 8 + 8 * GSC_MAX_LUNS);
		if ((e = gsc_exec(&r)) < 0)
			return e;
		if (gsc_ok(&r)) {
			uint32_t bytes = get_be32(buf);

			for (uint32_t off = 8; off < 8 + bytes && off + 8 <= 8 + 8 * GSC_MAX_LUNS;
			     off += 8)
				if (buf[off + 1] < GSC_MAX_LUNS)
					list[n++] = buf[off + 1];
			break;
		}
		if (l == 0 && (r.srb_status & 0x3f) != VSP_SRB_INVALID_LUN)
			break;	/* not an absent LUN 0: give up */
	}
	for (int i = 0; i < n && found < max; i++) {
		struct gsc_lun *L = &luns[found];
		uint8_t inq[6] = { 0x12, 0, 0, 0, 96, 0 };
		uint8_t rc16[16] = { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 };

		cmd(&r, list[i], inq, 6, buf, 96);
		if ((e = gsc_exec(&r)) < 0)
			return e;
		if (!gsc_ok(&r) || (buf[0] & 0x1f) != 0)
			continue;	/* gone meanwhile, or not a disk */
		memset(L, 0, sizeof(*L));
		L->lun = list[i];
		text(L->vendor, buf + 8, 8);
		text(L->product, buf + 16, 16);
		cmd(&r, list[i], rc16, 16, buf, 32);
		if ((e = gsc_exec(&r)) < 0)
			return e;
		if (!gsc_ok(&r))
			continue;
		L->blocks = ((uint64_t)get_be32(buf) << 32 | get_be32(buf + 4)) + 1;
		L->block_size = get_be32(buf + 8);
		if (L->block_size < 512 || L->block_size > 4096)
			continue;
		found++;
	}
	return found;
}
