/* storvsc: guest side of the synthetic SCSI controller (see storvsc.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/unit/storvsc.h"

#define GPADL_BASE 0xE1E10u

struct svc {
	struct vmbus_guest *g;
	uint8_t *mem;
	uint64_t pages, next_pfn;
	uint32_t ring_pages;
	int nchan;
	uint32_t relid[SVC_MAX_CHANNELS];
	struct vmbus_guest_chan ch[SVC_MAX_CHANNELS];
	uint32_t gpadl[SVC_MAX_CHANNELS];
	uint16_t version;
	struct vsp_channel_props props;
	bool old_sizes;
	int rescans;
	int rescinded;		/* RESCIND_CHANNELOFFER of our sub-channels */
	bool closed;		/* svc_close_all done */
	struct svc_req *reqs[SVC_MAX_REQS];	/* trans_id = index + 1 */
	uint32_t free_ids[SVC_MAX_REQS], nfree;
	int inflight;
	char err[256];
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

__attribute__((format(printf, 3, 4)))
static int fail(struct svc *s, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return code;
}

const char *svc_error(struct svc *s)
{
	return s->err;
}

void *svc_alloc(struct svc *s, uint64_t bytes)
{
	uint64_t n = (bytes + 4095) / 4096;
	void *p;

	if (n > s->pages - s->next_pfn)
		return NULL;
	p = s->mem + s->next_pfn * 4096;
	s->next_pfn += n;
	return p;
}

struct vmbus_guest *svc_guest(struct svc *s) { return s->g; }
struct vmbus_guest_chan *svc_chan(struct svc *s, int i) { return &s->ch[i]; }
int svc_nchan(struct svc *s) { return s->nchan; }
uint16_t svc_version(struct svc *s) { return s->version; }
const struct vsp_channel_props *svc_props(struct svc *s) { return &s->props; }
int svc_rescans(struct svc *s) { return s->rescans; }
int svc_rescinded(struct svc *s) { return s->rescinded; }
int svc_inflight(struct svc *s) { return s->inflight; }

static uint32_t msg_type(const uint8_t *m)
{
	uint32_t t;

	memcpy(&t, m, 4);
	return t;
}

/* A RESCIND_CHANNELOFFER: counted when it names one of our sub-channels,
 * and answered as Linux does (the channel is closed: RELID_RELEASED). */
static bool note_rescind(struct svc *s, const uint8_t *m, int n)
{
	struct vmbus_msg_relid rc, rel = { { VMBUS_MSG_RELID_RELEASED, 0 }, 0 };

	if (msg_type(m) != VMBUS_MSG_RESCIND_CHANNELOFFER ||
	    (size_t)n < sizeof(struct vmbus_msg_relid))
		return false;
	memcpy(&rc, m, sizeof(rc));
	for (int k = 1; k < SVC_MAX_CHANNELS; k++)
		if (s->relid[k] && s->relid[k] == rc.child_relid)
			s->rescinded++;
	rel.child_relid = rc.child_relid;
	(void)vmbus_guest_post(s->g, &rel, sizeof(rel));
	return true;
}

/* Next control message of type `type`, skipping others (offers of
 * sub-channels arrive whenever the host makes them). */
static int recv_msg(struct svc *s, uint32_t type, uint8_t *m, int timeout_ms)
{
	for (int i = 0; i < 64; i++) {
		int n = vmbus_guest_recv(s->g, m, VMBUS_MAX_MSG_SIZE, timeout_ms);

		if (n < 0)
			return fail(s, n, "waiting for message %u: %s", type, strerror(-n));
		if (msg_type(m) == type)
			return n;
		if (note_rescind(s, m, n))
			continue;
		if (msg_type(m) == VMBUS_MSG_OFFERCHANNEL && n >= 196) {
			struct vmbus_msg_offer o;

			memcpy(&o, m, sizeof(o));
			if (o.sub_channel_index && s->nchan + 1 < SVC_MAX_CHANNELS &&
			    s->relid[o.sub_channel_index] == 0 &&
			    o.sub_channel_index < SVC_MAX_CHANNELS)
				s->relid[o.sub_channel_index] = o.child_relid;
		}
	}
	return fail(s, -EPROTO, "message %u never came", type);
}

/* GPADL + OPENCHANNEL for channel i (relid known). */
static int open_chan(struct svc *s, int i)
{
	uint8_t m[VMBUS_MAX_MSG_SIZE];
	uint32_t pages = 2 * s->ring_pages, id = GPADL_BASE + (uint32_t)i;
	uint8_t *base = svc_alloc(s, (uint64_t)pages * 4096);
	uint64_t first, pfn[VMBUS_GPADL_HEADER_PFNS + VMBUS_GPADL_BODY_PFNS];
	struct vmbus_msg_gpadl_header gh = {
		{ VMBUS_MSG_GPADL_HEADER, 0 }, s->relid[i], id,
		(uint16_t)(8 + 8 * pages), 1, pages * 4096, 0 };
	uint32_t k, done = 0;
	int n;

	if (!base)
		return fail(s, -ENOMEM, "no guest memory for rings");
	first = (uint64_t)(base - s->mem) / 4096;
	ring_format(base, RING_FEAT_PENDING_SEND_SZ);
	ring_format(base + (size_t)s->ring_pages * 4096, RING_FEAT_PENDING_SEND_SZ);
	k = pages < VMBUS_GPADL_HEADER_PFNS ? pages : VMBUS_GPADL_HEADER_PFNS;
	for (uint32_t j = 0; j < k; j++)
		pfn[j] = first + j;
	memcpy(m, &gh, sizeof(gh));
	memcpy(m + sizeof(gh), pfn, k * 8);
	n = vmbus_guest_post(s->g, m, sizeof(gh) + k * 8);
	done = k;
	while (!n && done < pages) {
		struct vmbus_msg_gpadl_body gb = { { VMBUS_MSG_GPADL_BODY, 0 }, 0, id };

		k = pages - done < VMBUS_GPADL_BODY_PFNS ? pages - done : VMBUS_GPADL_BODY_PFNS;
		for (uint32_t j = 0; j < k; j++)
			pfn[j] = first + done + j;
		memcpy(m, &gb, sizeof(gb));
		memcpy(m + sizeof(gb), pfn, k * 8);
		n = vmbus_guest_post(s->g, m, sizeof(gb) + k * 8);
		done += k;
	}
	if (n)
		return fail(s, n, "posting the GPADL");
	n = recv_msg(s, VMBUS_MSG_GPADL_CREATED, m, 5000);
	if (n < 0)
		return n;
	struct vmbus_msg_gpadl_created gc;
	memcpy(&gc, m, sizeof(gc));
	if (gc.creation_status)
		return fail(s, -EIO, "GPADL refused");
	struct vmbus_msg_open op = { { VMBUS_MSG_OPENCHANNEL, 0 }, s->relid[i], s->relid[i],
				     id, 0, s->ring_pages, { 0 } };
	n = vmbus_guest_post(s->g, &op, sizeof(op));
	if (n)
		return fail(s, n, "posting OPENCHANNEL");
	n = recv_msg(s, VMBUS_MSG_OPENCHANNEL_RESULT, m, 5000);
	if (n < 0)
		return n;
	struct vmbus_msg_open_result orr;
	memcpy(&orr, m, sizeof(orr));
	if (orr.status)
		return fail(s, -EIO, "OPENCHANNEL refused");
	s->gpadl[i] = id;
	n = vmbus_guest_chan_init(s->g, &s->ch[i], s->relid[i], first, pages, s->ring_pages);
	if (n)
		return fail(s, n, "ring views");
	return 0;
}

int svc_raw(struct svc *s, int chan, uint16_t type, uint16_t flags,
	    uint64_t trans_id, uint32_t hdr_len, const void *data, uint32_t len)
{
	struct vmbus_guest_chan *c = &s->ch[chan];
	struct ring_iov iov = { data, len };
	enum ring_status st;
	bool sig;

	st = ring_write(&c->out, type, flags, trans_id, hdr_len, &iov, 1, &sig);
	if (st == RING_NOSPACE)
		return -EAGAIN;
	if (st != RING_OK)
		return -EPROTO;
	if (sig)
		vmbus_guest_signal(s->g, c->relid);
	return 0;
}

int svc_raw_recv(struct svc *s, int chan, void *buf, uint32_t max,
		 uint64_t *trans_id, int timeout_ms)
{
	struct vmbus_guest_chan *c = &s->ch[chan];
	uint8_t pkt[256];
	struct ring_pkt p;
	enum ring_status st;
	uint32_t n;

	for (;;) {
		st = ring_read(&c->in, pkt, sizeof(pkt), &p);
		if (st == RING_OK)
			break;
		if (st != RING_EMPTY)
			return -EPROTO;
		if (vmbus_guest_wait(s->g, c, timeout_ms) < 0)
			return 0;
	}
	if (ring_commit(&c->in))
		vmbus_guest_signal(s->g, c->relid);
	n = p.len - p.payload_off;
	if (n > max)
		n = max;
	memcpy(buf, pkt + p.payload_off, n);
	if (trans_id)
		*trans_id = p.trans_id;
	return (int)n;
}

/* One init-phase vstor request on the primary, synchronously. */
static int vstor_op(struct svc *s, struct vsp_packet *p)
{
	uint32_t len = s->old_sizes ? VSP_PACKET_SIZE_PRE_WIN8 : VSP_PACKET_SIZE;
	uint64_t id;
	int n, r;

	p->flags = VSP_FLAG_REQUEST_COMPLETION;
	r = svc_raw(s, 0, RING_PKT_DATA_INBAND, RING_PKT_F_COMPLETION,
		    VSP_TRANS_ID_INIT, 0, p, len);
	if (r)
		return fail(s, r, "sending operation %u", p->operation);
	for (;;) {
		memset(p, 0, sizeof(*p));
		n = svc_raw_recv(s, 0, p, sizeof(*p), &id, 5000);
		if (n <= 0)
			return fail(s, -ETIMEDOUT, "no reply to an init operation");
		if (id == 0 && (p->operation == VSP_OP_ENUMERATE_BUS ||
				p->operation == VSP_OP_REMOVE_DEVICE)) {
			s->rescans++;
			continue;
		}
		/* Linux: a completion with id != 0 must be >= the packet size */
		if (id != VSP_TRANS_ID_INIT || p->operation != VSP_OP_COMPLETE_IO ||
		    (uint32_t)n < len)
			return fail(s, -EPROTO, "bad init reply (id %#llx op %u len %d)",
				    (unsigned long long)id, p->operation, n);
		return 0;
	}
}

int svc_attach(const char *sock, const struct svc_opts *o, struct svc **out)
{
	static const uint16_t vers[] = { VSP_VER_WIN10, VSP_VER_WIN8_1, VSP_VER_WIN8 };
	static const uint32_t vmbus_vers[] = { VMBUS_VERSION(5, 3), VMBUS_VERSION(5, 2),
					       VMBUS_VERSION(5, 1), VMBUS_VERSION(5, 0),
					       VMBUS_VERSION(4, 1), VMBUS_VERSION(4, 0) };
	const struct vmbus_guid scsi = VMBUS_GUID_SCSI;
	struct svc *s = calloc(1, sizeof(*s));
	uint8_t m[VMBUS_MAX_MSG_SIZE];
	struct vsp_packet p;
	int n, r;
	bool ok = false;

	if (!s)
		return -ENOMEM;
	*out = s;
	r = vmbus_guest_attach(sock, &s->g);
	if (r)
		return fail(s, r, "attach %s: %s", sock, strerror(-r));
	s->mem = vmbus_guest_mem(s->g);
	s->pages = vmbus_guest_pages(s->g);
	s->next_pfn = 16;
	s->ring_pages = o && o->ring_pages ? o->ring_pages : 33;
	s->old_sizes = o && o->old_init_sizes;
	for (uint32_t i = 0; i < SVC_MAX_REQS; i++)
		s->free_ids[s->nfree++] = SVC_MAX_REQS - 1 - i;

	/* VMBus: newest first, as Linux does */
	for (size_t i = 0; i < sizeof(vmbus_vers) / sizeof(vmbus_vers[0]) && !ok; i++) {
		struct vmbus_msg_initiate_contact c = { { VMBUS_MSG_INITIATE_CONTACT, 0 },
							vmbus_vers[i], 0, 2, 0, 0 };

		if ((r = vmbus_guest_post(s->g, &c, sizeof(c))))
			return fail(s, r, "INITIATE_CONTACT");
		if ((n = recv_msg(s, VMBUS_MSG_VERSION_RESPONSE, m, 5000)) < 0)
			return n;
		ok = m[8] != 0;
	}
	if (!ok)
		return fail(s, -EPROTO, "no VMBus version accepted");
	struct vmbus_msg_hdr ro = { VMBUS_MSG_REQUESTOFFERS, 0 };
	if ((r = vmbus_guest_post(s->g, &ro, sizeof(ro))))
		return fail(s, r, "REQUESTOFFERS");
	for (;;) {
		n = vmbus_guest_recv(s->g, m, sizeof(m), 5000);
		if (n < 8)
			return fail(s, -EPROTO, "offers");
		if (msg_type(m) == VMBUS_MSG_ALLOFFERS_DELIVERED)
			break;
		struct vmbus_msg_offer of;
		memcpy(&of, m, sizeof(of));
		if (msg_type(m) == VMBUS_MSG_OFFERCHANNEL && !memcmp(&of.if_type, &scsi, 16) &&
		    of.sub_channel_index == 0 && !s->relid[0])
			s->relid[0] = of.child_relid;
	}
	if (!s->relid[0])
		return fail(s, -ENODEV, "no SCSI controller offered");
	if ((r = open_chan(s, 0)))
		return r;
	s->nchan = 1;

	/* vstor init */
	memset(&p, 0, sizeof(p));
	p.operation = VSP_OP_BEGIN_INITIALIZATION;
	if ((r = vstor_op(s, &p)))
		return r;
	if (p.status)
		return fail(s, -EPROTO, "BEGIN_INITIALIZATION: status %#x", p.status);
	ok = false;
	for (size_t i = 0; i < 3 && !ok; i++) {
		if (o && o->first_version && i == 0 && o->first_version != vers[0]) {
			/* try the caller's (unsupported) version first */
			memset(&p, 0, sizeof(p));
			p.operation = VSP_OP_QUERY_PROTOCOL_VERSION;
			p.version.major_minor = o->first_version;
			if ((r = vstor_op(s, &p)))
				return r;
			if (p.status == 0) {
				s->version = o->first_version;
				ok = true;
				break;
			}
		}
		memset(&p, 0, sizeof(p));
		p.operation = VSP_OP_QUERY_PROTOCOL_VERSION;
		p.version.major_minor = vers[i];
		if ((r = vstor_op(s, &p)))
			return r;
		if (p.status == 0) {
			s->version = vers[i];
			ok = true;
		}
	}
	if (!ok)
		return fail(s, -EPROTO, "Obsolete Hyper-V version");
	s->old_sizes = false;	/* Win8+: 64-byte packets from now on */
	memset(&p, 0, sizeof(p));
	p.operation = VSP_OP_QUERY_PROPERTIES;
	if ((r = vstor_op(s, &p)))
		return r;
	if (p.status)
		return fail(s, -EPROTO, "QUERY_PROPERTIES: status %#x", p.status);
	s->props = p.props;
	memset(&p, 0, sizeof(p));
	p.operation = VSP_OP_END_INITIALIZATION;
	if ((r = vstor_op(s, &p)))
		return r;
	if (p.status)
		return fail(s, -EPROTO, "END_INITIALIZATION: status %#x", p.status);

	/* sub-channels: min(wanted, max_channel_cnt) */
	int want = o ? o->subchannels : 0;
	if (want > s->props.max_channel_cnt)
		want = s->props.max_channel_cnt;
	if (want > SVC_MAX_CHANNELS - 1)
		want = SVC_MAX_CHANNELS - 1;
	if (want > 0 && (s->props.flags & VSP_PROP_MULTI_CHANNEL)) {
		memset(&p, 0, sizeof(p));
		p.operation = VSP_OP_CREATE_SUB_CHANNELS;
		p.sub_channel_count = (uint16_t)want;
		if ((r = vstor_op(s, &p)))
			return r;
		if (p.status)
			return fail(s, -EPROTO, "CREATE_SUB_CHANNELS: status %#x", p.status);
		for (int i = 1; i <= want; i++) {
			while (!s->relid[i]) {
				n = vmbus_guest_recv(s->g, m, sizeof(m), 5000);
				if (n < 0)
					return fail(s, n, "sub-channel offer %d never came", i);
				struct vmbus_msg_offer of;
				memcpy(&of, m, sizeof(of));
				if (msg_type(m) == VMBUS_MSG_OFFERCHANNEL && n >= 196 &&
				    of.sub_channel_index > 0 && of.sub_channel_index < SVC_MAX_CHANNELS)
					s->relid[of.sub_channel_index] = of.child_relid;
			}
			if ((r = open_chan(s, i)))
				return r;
			s->nchan = i + 1;
		}
	}
	return 0;
}

int svc_close_all(struct svc *s, int wait_ms)
{
	uint8_t m[VMBUS_MAX_MSG_SIZE];
	int r = 0;

	if (s->closed)
		return 0;
	s->closed = true;
	/* sub-channels first, the primary last (Linux's order) */
	for (int i = s->nchan - 1; i >= 0; i--) {
		struct vmbus_msg_relid cl = { { VMBUS_MSG_CLOSECHANNEL, 0 }, s->relid[i] };
		struct vmbus_msg_gpadl_teardown td = { { VMBUS_MSG_GPADL_TEARDOWN, 0 },
						       s->relid[i], s->gpadl[i] };

		if (vmbus_guest_post(s->g, &cl, sizeof(cl)) ||
		    vmbus_guest_post(s->g, &td, sizeof(td)) ||
		    recv_msg(s, VMBUS_MSG_GPADL_TORNDOWN, m, 5000) < 0)
			r = -EPROTO;
	}
	/* the host revokes the sub-channels with the primary */
	for (int t = 0; t < wait_ms / 20 && s->rescinded < s->nchan - 1; t++) {
		int n = vmbus_guest_recv(s->g, m, VMBUS_MAX_MSG_SIZE, 20);

		if (n == -ETIMEDOUT || n == -EAGAIN)
			continue;
		if (n < 0)
			break;
		note_rescind(s, m, n);
	}
	return r;
}

int svc_detach(struct svc *s)
{
	uint8_t m[VMBUS_MAX_MSG_SIZE];
	int r = 0;

	if (!s)
		return 0;
	if (s->g) {
		r = svc_close_all(s, 0);
		struct vmbus_msg_hdr ul = { VMBUS_MSG_UNLOAD, 0 };
		if (vmbus_guest_post(s->g, &ul, sizeof(ul)) ||
		    recv_msg(s, VMBUS_MSG_UNLOAD_RESPONSE, m, 5000) < 0)
			r = -EPROTO;
		vmbus_guest_detach(s->g);
	}
	free(s);
	return r;
}

int svc_submit(struct svc *s, int chan, struct svc_req *r)
{
	union {
		uint8_t b[32 + 8 * 300 + 64];
		uint64_t align;
	} pk;
	struct vsp_packet p;
	uint32_t hdr = 0, npfn = 0, id;
	int e;

	if (!s->nfree)
		return -EAGAIN;
	memset(&p, 0, sizeof(p));
	p.operation = VSP_OP_EXECUTE_SRB;
	p.flags = VSP_FLAG_REQUEST_COMPLETION;
	p.srb.length = VSP_SRB_LEN_WIN8;
	p.srb.path_id = r->path_id;
	p.srb.target_id = r->target_id;
	p.srb.lun = r->lun;
	p.srb.cdb_length = r->cdb_len;
	memcpy(p.srb.cdb, r->cdb, r->cdb_len);
	p.srb.sense_info_length = VSP_SENSE_LEN_WIN8;
	p.srb.data_in = r->len ? r->data_in : VSP_DATA_NONE;
	p.srb.data_transfer_length = r->len;
	p.srb.queue_tag = 0xFF;
	p.srb.queue_action = 0x20;
	p.srb.srb_flags = 0x8 | 0x2 | 0x100 |
			  (!r->len ? 0 : r->data_in == VSP_DATA_IN ? 0x40 : 0x80);
	p.srb.time_out_value = 60;
	id = s->free_ids[s->nfree - 1];
	if (r->len) {
		uint64_t gpa = (uint64_t)((uint8_t *)r->buf - s->mem);
		struct vsp_gpa_range rg = { 0, 1, r->len, (uint32_t)(gpa % 4096) };

		npfn = (uint32_t)((gpa % 4096 + r->len + 4095) / 4096);
		if (npfn > 300)
			return -EINVAL;
		memcpy(pk.b, &rg, sizeof(rg));
		for (uint32_t i = 0; i < npfn; i++) {
			uint64_t pfn = gpa / 4096 + i;

			memcpy(pk.b + 16 + 8 * i, &pfn, 8);
		}
		hdr = 16 + 8 * npfn;
	}
	memcpy(pk.b + hdr, &p, sizeof(p));
	e = svc_raw(s, chan, r->len ? RING_PKT_DATA_GPA_DIRECT : RING_PKT_DATA_INBAND,
		    RING_PKT_F_COMPLETION, (uint64_t)id + 1, hdr, pk.b, hdr + sizeof(p));
	if (e)
		return e;
	s->nfree--;
	s->reqs[id] = r;
	r->done = false;
	r->chan = chan;
	r->t_submit = now_ns();
	s->inflight++;
	return 0;
}

/* Handle one packet from channel c's ring: 1 if a request completed. */
static int reap_one(struct svc *s, int c, const uint8_t *pkt, const struct ring_pkt *rp)
{
	struct vsp_packet p;
	uint32_t n = rp->len - rp->payload_off;
	struct svc_req *r;
	uint64_t id = rp->trans_id;

	memset(&p, 0, sizeof(p));
	memcpy(&p, pkt + rp->payload_off, n < sizeof(p) ? n : sizeof(p));
	if (id == 0) {
		if (p.operation == VSP_OP_ENUMERATE_BUS || p.operation == VSP_OP_REMOVE_DEVICE)
			s->rescans++;
		return 0;
	}
	if (n < VSP_PACKET_SIZE || id > SVC_MAX_REQS || !s->reqs[id - 1] ||
	    p.operation != VSP_OP_COMPLETE_IO) {
		fail(s, 0, "bad completion id %#llx on channel %d", (unsigned long long)id, c);
		return 0;
	}
	r = s->reqs[id - 1];
	s->reqs[id - 1] = NULL;
	s->free_ids[s->nfree++] = (uint32_t)(id - 1);
	s->inflight--;
	r->nt_status = p.status;
	r->srb_status = p.srb.srb_status;
	r->scsi_status = p.srb.scsi_status;
	r->sense_len = p.srb.sense_info_length > 20 ? 20 : p.srb.sense_info_length;
	memcpy(r->sense, p.srb.sense_data, r->sense_len);
	r->xfer = p.srb.data_transfer_length;
	r->done = true;
	return 1;
}

int svc_poll(struct svc *s, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u, spin_start = now_ns();
	uint8_t pkt[256];
	int got = 0;

	for (;;) {
		for (int c = 0; c < s->nchan; c++) {
			struct vmbus_guest_chan *ch = &s->ch[c];
			struct ring_pkt rp;
			enum ring_status st;
			bool any = false;

			ring_mask_interrupts(&ch->in);
			for (;;) {
				while ((st = ring_read(&ch->in, pkt, sizeof(pkt), &rp)) == RING_OK) {
					got += reap_one(s, c, pkt, &rp);
					any = true;
				}
				if (st != RING_EMPTY)
					return fail(s, -EPROTO, "host->guest ring: %s",
						    ring_status_str(st));
				if (any && ring_commit(&ch->in))
					vmbus_guest_signal(s->g, ch->relid);
				if (!ring_unmask_interrupts(&ch->in))
					break;
			}
		}
		if (got)
			return got;
		if (now_ns() >= deadline)
			return 0;
		if (now_ns() - spin_start < 50000)
			continue;	/* bounded polling, then sleep */
		/* any channel's doorbell wakes us (one eventfd) */
		(void)vmbus_guest_wait(s->g, &s->ch[0], 1);
		spin_start = now_ns();
	}
}

int svc_exec(struct svc *s, int chan, struct svc_req *r, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	int e;

	while ((e = svc_submit(s, chan, r)) == -EAGAIN) {
		if (svc_poll(s, 10) < 0 || now_ns() > deadline)
			return -ETIMEDOUT;
	}
	if (e)
		return e;
	while (!r->done) {
		if (svc_poll(s, 100) < 0)
			return -EPROTO;
		if (now_ns() > deadline)
			return fail(s, -ETIMEDOUT, "request timed out");
	}
	return 0;
}

int svc_cmd(struct svc *s, uint8_t lun, const uint8_t *cdb, uint8_t cdb_len,
	    uint8_t data_in, void *buf, uint32_t len, struct svc_req *r)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->cdb, cdb, cdb_len);
	r->cdb_len = cdb_len;
	r->lun = lun;
	r->data_in = data_in;
	r->buf = buf;
	r->len = len;
	return svc_exec(s, 0, r, 10000);
}
