/* vmbus channel manager, host side: the VMBus control messages (notes
 * section 2) dispatched from a table, channel offers and lifetimes, and
 * GPADLs checked page by page against the partition's memory.
 *
 * Threads: a manager is used by one thread (the one calling
 * vmbus_mgr_handle); device callbacks run on it.
 *
 * Hostile guest: every message arrives as a private copy; lengths are
 * checked once, by the dispatch table, before the handler runs; a message
 * that breaks the rules is counted and ignored or answered with a failure
 * status, never trusted.  GPADL page numbers are checked against
 * cfg.guest_pages before anything maps them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vmbus/vmbus.h"
#include "common/fs-compiler.h"
#include "common/fs-overflow.h"

#define MAX_CHANNELS 64		/* relid = slot + 1 */
#define MAX_GPADLS 256

enum chan_state { CH_FREE, CH_OFFERED, CH_OPEN, CH_RESCINDED };

struct vmbus_chan {
	struct vmbus_mgr *m;
	uint32_t relid;
	enum chan_state state;
	struct vmbus_guid type, instance;
	uint16_t sub_index;	/* 0: primary; else a sub-channel, freed on reset */
	const struct vmbus_dev_ops *ops;
	void *opaque;
	/* while open */
	uint32_t gpadl;
	void *map;
	size_t map_bytes;
	struct ring in, out;
	bool in_callback;	/* a device op is running */
	bool fail_pending;	/* vmbus_chan_fail called from that op */
};

struct gpadl {
	bool used;
	bool complete;
	bool in_use;		/* the rings of an open channel */
	uint32_t id, relid;
	uint32_t total, have;	/* PFNs announced, received */
	uint32_t byte_count, byte_offset;
	uint64_t *pfns;
};

struct vmbus_mgr {
	struct vmbus_mgr_cfg cfg;
	uint32_t version;	/* 0: no contact yet */
	bool offers_requested;
	struct vmbus_chan ch[MAX_CHANNELS];
	struct gpadl gp[MAX_GPADLS];
	struct vmbus_mgr_stats st;
	uint32_t epoch;		/* bumped by every reset */
	/* calls posted from other threads (vmbus_mgr_post) */
	pthread_mutex_t post_mu;
	struct posted *posted, **posted_tail;
};

struct posted {
	void (*fn)(void *arg);
	void *arg;
	struct posted *next;
};

static __thread char last_error[256];

const char *vmbus_last_error(void)
{
	return last_error;
}

__attribute__((format(printf, 1, 2)))
static void set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

/* A guest message we ignore: recorded and counted, returns 0. */
__attribute__((format(printf, 2, 3)))
static int drop(struct vmbus_mgr *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	m->st.dropped++;
	return 0;
}

static int send_msg(struct vmbus_mgr *m, void *msg, size_t len, uint32_t type)
{
	struct vmbus_msg_hdr *h = msg;

	h->msgtype = type;
	h->padding = 0;
	return m->cfg.send(m->cfg.opaque, msg, len);
}

static struct vmbus_chan *chan_by_relid(struct vmbus_mgr *m, uint32_t relid)
{
	if (relid == 0 || relid > MAX_CHANNELS)
		return NULL;
	if (m->ch[relid - 1].state == CH_FREE)
		return NULL;
	return &m->ch[relid - 1];
}

static struct gpadl *gpadl_find(struct vmbus_mgr *m, uint32_t id)
{
	for (int i = 0; i < MAX_GPADLS; i++)
		if (m->gp[i].used && m->gp[i].id == id)
			return &m->gp[i];
	return NULL;
}

static void gpadl_free(struct gpadl *g)
{
	free(g->pfns);
	memset(g, 0, sizeof(*g));
}

/* --- mapping ring pages ------------------------------------------------ */

/* A contiguous view of n guest pages (PFNs already checked < guest_pages):
 * address space reserved, then each run of consecutive PFNs mapped from
 * the memory fd over it.  NULL with errno on failure. */
static void *map_pfns(struct vmbus_mgr *m, const uint64_t *pfns, uint32_t n)
{
	size_t bytes = (size_t)n * RING_PAGE_SIZE;
	uint8_t *base = mmap(NULL, bytes, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint32_t i = 0;

	if (base == MAP_FAILED)
		return NULL;
	while (i < n) {
		uint32_t run = 1;

		while (i + run < n && pfns[i + run] == pfns[i] + run)
			run++;
		if (mmap(base + (size_t)i * RING_PAGE_SIZE,
			 (size_t)run * RING_PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, m->cfg.mem_fd,
			 (off_t)(pfns[i] * RING_PAGE_SIZE)) == MAP_FAILED) {
			int e = errno;

			munmap(base, bytes);
			errno = e;
			return NULL;
		}
		i += run;
	}
	return base;
}

/* --- channel lifetime -------------------------------------------------- */

static void chan_close(struct vmbus_chan *ch)
{
	struct gpadl *g;

	if (ch->state != CH_OPEN)
		return;
	if (ch->ops && ch->ops->close)
		ch->ops->close(ch->opaque, ch);
	munmap(ch->map, ch->map_bytes);
	ch->map = NULL;
	ch->map_bytes = 0;
	g = gpadl_find(ch->m, ch->gpadl);
	if (g)
		g->in_use = false;
	ch->state = CH_OFFERED;
	ch->fail_pending = false;
}

static int send_offer(struct vmbus_mgr *m, struct vmbus_chan *ch)
{
	struct vmbus_msg_offer o;

	memset(&o, 0, sizeof(o));
	o.if_type = ch->type;
	o.if_instance = ch->instance;
	o.sub_channel_index = ch->sub_index;
	o.child_relid = ch->relid;
	o.monitor_allocated = 0;	/* no monitor pages: plain signals */
	o.is_dedicated_interrupt = 1;
	o.connection_id = ch->relid;	/* the transport signals by relid */
	return send_msg(m, &o, sizeof(o), VMBUS_MSG_OFFERCHANNEL);
}

/* Close every channel, free every GPADL, forget rescinded relids. */
static void reset_all(struct vmbus_mgr *m)
{
	for (int i = 0; i < MAX_CHANNELS; i++) {
		chan_close(&m->ch[i]);
		/* sub-channels exist for one connection: the next guest
		 * asks for its own */
		if (m->ch[i].state == CH_RESCINDED || m->ch[i].sub_index)
			m->ch[i].state = CH_FREE;
		m->ch[i].sub_index = 0;
	}
	m->epoch++;
	for (int i = 0; i < MAX_GPADLS; i++)
		if (m->gp[i].used)
			gpadl_free(&m->gp[i]);
	m->offers_requested = false;
}

/* --- handlers: msg is a private copy of len bytes, len >= min_len ------- */

static const uint32_t versions_ok[] = {
	VMBUS_VERSION(5, 2), VMBUS_VERSION(5, 1), VMBUS_VERSION(5, 0),
	VMBUS_VERSION(4, 1), VMBUS_VERSION(4, 0), VMBUS_VERSION(3, 0),
	VMBUS_VERSION(2, 4),
};

static int h_initiate_contact(struct vmbus_mgr *m, const void *msg, size_t len)
{
	const struct vmbus_msg_initiate_contact *c = msg;
	struct vmbus_msg_version_response r;
	uint32_t v = c->version_requested;
	bool ok = false;

	/* contact again: a new guest (or a reset one) starts from scratch */
	if (m->version) {
		reset_all(m);
		m->version = 0;
	}
	for (size_t i = 0; i < sizeof(versions_ok) / sizeof(versions_ok[0]); i++)
		if (versions_ok[i] == v)
			ok = true;
	memset(&r, 0, sizeof(r));
	r.version_supported = ok;
	/* >= 5.0: the connection id for later messages; this transport has
	 * one message ring, so any value works; 1 is VMBus's classic id */
	r.msg_conn_id = ok && v >= VMBUS_VERSION(5, 0) ? 1 : v;
	if (ok)
		m->version = v;
	return send_msg(m, &r, sizeof(r), VMBUS_MSG_VERSION_RESPONSE);
}

static int h_request_offers(struct vmbus_mgr *m, const void *msg, size_t len)
{
	struct vmbus_msg_hdr done;
	int r;

	if (m->offers_requested)
		return drop(m, "second REQUESTOFFERS ignored");
	m->offers_requested = true;
	for (int i = 0; i < MAX_CHANNELS; i++) {
		struct vmbus_chan *ch = &m->ch[i];

		if (ch->state == CH_OFFERED || ch->state == CH_OPEN) {
			r = send_offer(m, ch);
			if (r < 0)
				return r;
		}
	}
	return send_msg(m, &done, sizeof(done), VMBUS_MSG_ALLOFFERS_DELIVERED);
}

static int gpadl_reply(struct vmbus_mgr *m, uint32_t relid, uint32_t id,
		       uint32_t status)
{
	struct vmbus_msg_gpadl_created c;

	memset(&c, 0, sizeof(c));
	c.child_relid = relid;
	c.gpadl = id;
	c.creation_status = status;
	if (status != VMBUS_STATUS_OK)
		m->st.gpadl_refused++;
	return send_msg(m, &c, sizeof(c), VMBUS_MSG_GPADL_CREATED);
}

/* Refuse GPADL id for relid: free what was kept, answer a failure. */
__attribute__((format(printf, 5, 6)))
static int gpadl_refuse(struct vmbus_mgr *m, struct gpadl *g, uint32_t relid,
			uint32_t id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	if (g)
		gpadl_free(g);
	return gpadl_reply(m, relid, id, VMBUS_STATUS_FAIL);
}

/* Append n PFNs read from src (unaligned, little-endian); when complete,
 * check every page against the partition and answer. */
static int gpadl_add(struct vmbus_mgr *m, struct gpadl *g, const uint8_t *src,
		     uint32_t n)
{
	if (n > g->total - g->have)
		return gpadl_refuse(m, g, g->relid, g->id,
				    "GPADL %#x: %u PFNs more than announced",
				    g->id, n - (g->total - g->have));
	memcpy(&g->pfns[g->have], src, (size_t)n * 8);
	g->have += n;
	if (g->have < g->total)
		return 0;
	for (uint32_t i = 0; i < g->total; i++)
		if (g->pfns[i] >= m->cfg.guest_pages)
			return gpadl_refuse(m, g, g->relid, g->id,
					    "GPADL %#x: PFN %#llx (entry %u) outside the partition's %llu pages",
					    g->id, (unsigned long long)g->pfns[i], i,
					    (unsigned long long)m->cfg.guest_pages);
	g->complete = true;
	return gpadl_reply(m, g->relid, g->id, VMBUS_STATUS_OK);
}

static int h_gpadl_header(struct vmbus_mgr *m, const void *msg, size_t len)
{
	const struct vmbus_msg_gpadl_header *h = msg;
	uint32_t relid = h->child_relid, id = h->gpadl, total, here;
	uint64_t end, pages;
	struct gpadl *g = NULL;

	if (!chan_by_relid(m, relid) || chan_by_relid(m, relid)->state == CH_RESCINDED)
		return gpadl_refuse(m, NULL, relid, id, "GPADL %#x for unknown relid %u", id, relid);
	if (gpadl_find(m, id))
		return gpadl_refuse(m, NULL, relid, id, "GPADL %#x already exists", id);
	if (h->rangecount != 1)
		return gpadl_refuse(m, NULL, relid, id, "GPADL %#x: %u ranges (1 supported)",
				    id, h->rangecount);
	if (h->range_buflen < 16 || (h->range_buflen - 8) % 8)
		return gpadl_refuse(m, NULL, relid, id, "GPADL %#x: range_buflen %u",
				    id, h->range_buflen);
	total = (h->range_buflen - 8u) / 8u;	/* <= 8190 by the u16 */
	if (h->byte_count == 0 || h->byte_offset >= RING_PAGE_SIZE)
		return gpadl_refuse(m, NULL, relid, id, "GPADL %#x: range %u bytes at offset %u",
				    id, h->byte_count, h->byte_offset);
	/* pages the range spans: u64 arithmetic, cannot overflow from u32s */
	end = (uint64_t)h->byte_offset + h->byte_count;
	pages = (end + RING_PAGE_SIZE - 1) / RING_PAGE_SIZE;
	if (pages != total)
		return gpadl_refuse(m, NULL, relid, id,
				    "GPADL %#x: range spans %llu pages, %u PFNs announced",
				    id, (unsigned long long)pages, total);
	here = (uint32_t)((len - sizeof(*h)) / 8);
	if (here == 0 || here > total)
		return gpadl_refuse(m, NULL, relid, id, "GPADL %#x: %u PFNs in the header of %u",
				    id, here, total);
	for (int i = 0; i < MAX_GPADLS && !g; i++)
		if (!m->gp[i].used)
			g = &m->gp[i];
	if (!g)
		return gpadl_refuse(m, NULL, relid, id, "GPADL %#x: too many GPADLs", id);
	g->pfns = calloc(total, sizeof(uint64_t));
	if (!g->pfns) {
		set_error("GPADL %#x: out of memory", id);
		return -ENOMEM;
	}
	g->used = true;
	g->id = id;
	g->relid = relid;
	g->total = total;
	g->byte_count = h->byte_count;
	g->byte_offset = h->byte_offset;
	return gpadl_add(m, g, (const uint8_t *)msg + sizeof(*h), here);
}

static int h_gpadl_body(struct vmbus_mgr *m, const void *msg, size_t len)
{
	const struct vmbus_msg_gpadl_body *b = msg;
	struct gpadl *g = gpadl_find(m, b->gpadl);
	uint32_t n = (uint32_t)((len - sizeof(*b)) / 8);

	if (!g || g->complete)
		return drop(m, "GPADL_BODY for GPADL %#x not in progress", b->gpadl);
	if (n == 0)
		return gpadl_refuse(m, g, g->relid, g->id, "GPADL %#x: empty body", g->id);
	return gpadl_add(m, g, (const uint8_t *)msg + sizeof(*b), n);
}

static int open_reply(struct vmbus_mgr *m, const struct vmbus_msg_open *o,
		      uint32_t status)
{
	struct vmbus_msg_open_result r;

	memset(&r, 0, sizeof(r));
	r.child_relid = o->child_relid;
	r.openid = o->openid;
	r.status = status;
	if (status != VMBUS_STATUS_OK)
		m->st.open_refused++;
	return send_msg(m, &r, sizeof(r), VMBUS_MSG_OPENCHANNEL_RESULT);
}

static int h_open(struct vmbus_mgr *m, const void *msg, size_t len)
{
	const struct vmbus_msg_open *o = msg;
	struct vmbus_chan *ch = chan_by_relid(m, o->child_relid);
	struct gpadl *g = gpadl_find(m, o->ringbuffer_gpadl);
	uint32_t off = o->downstream_off;
	uint8_t *base;
	size_t bytes;

	if (!ch || ch->state != CH_OFFERED) {
		set_error("OPENCHANNEL: relid %u not offered or already open", o->child_relid);
		return open_reply(m, o, VMBUS_STATUS_FAIL);
	}
	if (!g || !g->complete || g->in_use || g->relid != ch->relid) {
		set_error("OPENCHANNEL relid %u: GPADL %#x unusable", ch->relid,
			  o->ringbuffer_gpadl);
		return open_reply(m, o, VMBUS_STATUS_FAIL);
	}
	/* one page-aligned range, each ring at least control + one data page */
	if (g->byte_offset != 0 || (uint64_t)g->byte_count != (uint64_t)g->total * RING_PAGE_SIZE ||
	    off < 2 || off > g->total || g->total - off < 2) {
		set_error("OPENCHANNEL relid %u: ring layout (offset %u of %u pages, %u bytes at %u)",
			  ch->relid, off, g->total, g->byte_count, g->byte_offset);
		return open_reply(m, o, VMBUS_STATUS_FAIL);
	}
	base = map_pfns(m, g->pfns, g->total);
	if (!base) {
		set_error("OPENCHANNEL relid %u: mapping the rings: %s", ch->relid,
			  strerror(errno));
		return open_reply(m, o, VMBUS_STATUS_FAIL);
	}
	bytes = (size_t)g->total * RING_PAGE_SIZE;
	if (ring_attach(&ch->in, base, (size_t)off * RING_PAGE_SIZE) != RING_OK ||
	    ring_attach(&ch->out, base + (size_t)off * RING_PAGE_SIZE,
			(size_t)(g->total - off) * RING_PAGE_SIZE) != RING_OK) {
		munmap(base, bytes);
		set_error("OPENCHANNEL relid %u: ring indices corrupt", ch->relid);
		return open_reply(m, o, VMBUS_STATUS_FAIL);
	}
	ch->map = base;
	ch->map_bytes = bytes;
	ch->gpadl = g->id;
	ch->state = CH_OPEN;
	g->in_use = true;
	if (ch->ops && ch->ops->open) {
		int r = ch->ops->open(ch->opaque, ch);

		if (r < 0) {
			/* not opened for the device: no close callback */
			const struct vmbus_dev_ops *ops = ch->ops;

			ch->ops = NULL;
			chan_close(ch);
			ch->ops = ops;
			set_error("OPENCHANNEL relid %u: device refused (%s)", ch->relid,
				  strerror(-r));
			return open_reply(m, o, VMBUS_STATUS_FAIL);
		}
	}
	return open_reply(m, o, VMBUS_STATUS_OK);
}

static int h_close(struct vmbus_mgr *m, const void *msg, size_t len)
{
	const struct vmbus_msg_relid *c = msg;
	struct vmbus_chan *ch = chan_by_relid(m, c->child_relid);

	if (!ch || ch->state != CH_OPEN)
		return drop(m, "CLOSECHANNEL: relid %u not open", c->child_relid);
	chan_close(ch);
	return 0;	/* no reply to CLOSECHANNEL */
}

static int h_gpadl_teardown(struct vmbus_mgr *m, const void *msg, size_t len)
{
	const struct vmbus_msg_gpadl_teardown *t = msg;
	struct vmbus_msg_gpadl_torndown r;
	struct gpadl *g = gpadl_find(m, t->gpadl);

	if (!g)
		return drop(m, "GPADL_TEARDOWN: GPADL %#x unknown", t->gpadl);
	if (g->in_use) {
		/* rings of an open channel: the guest broke the close order;
		 * close the channel before its pages go */
		for (int i = 0; i < MAX_CHANNELS; i++)
			if (m->ch[i].state == CH_OPEN && m->ch[i].gpadl == g->id)
				chan_close(&m->ch[i]);
	}
	memset(&r, 0, sizeof(r));
	r.gpadl = g->id;
	gpadl_free(g);
	return send_msg(m, &r, sizeof(r), VMBUS_MSG_GPADL_TORNDOWN);
}

static int h_relid_released(struct vmbus_mgr *m, const void *msg, size_t len)
{
	const struct vmbus_msg_relid *c = msg;
	struct vmbus_chan *ch = chan_by_relid(m, c->child_relid);

	if (!ch || ch->state != CH_RESCINDED)
		return drop(m, "RELID_RELEASED: relid %u not rescinded", c->child_relid);
	ch->state = CH_FREE;
	return 0;
}

static int h_unload(struct vmbus_mgr *m, const void *msg, size_t len)
{
	struct vmbus_msg_hdr r;

	reset_all(m);
	m->version = 0;
	return send_msg(m, &r, sizeof(r), VMBUS_MSG_UNLOAD_RESPONSE);
}

/* The dispatch table: the length check happens here, once; `connected`
 * messages are dropped before INITIATE_CONTACT succeeded. */
static const struct {
	uint32_t msgtype;
	size_t min_len;
	bool connected;
	int (*handler)(struct vmbus_mgr *m, const void *msg, size_t len);
} handlers[] = {
	{ VMBUS_MSG_INITIATE_CONTACT, sizeof(struct vmbus_msg_initiate_contact), false, h_initiate_contact },
	{ VMBUS_MSG_REQUESTOFFERS, sizeof(struct vmbus_msg_hdr), true, h_request_offers },
	{ VMBUS_MSG_GPADL_HEADER, sizeof(struct vmbus_msg_gpadl_header) + 8, true, h_gpadl_header },
	{ VMBUS_MSG_GPADL_BODY, sizeof(struct vmbus_msg_gpadl_body) + 8, true, h_gpadl_body },
	{ VMBUS_MSG_OPENCHANNEL, sizeof(struct vmbus_msg_open), true, h_open },
	{ VMBUS_MSG_CLOSECHANNEL, sizeof(struct vmbus_msg_relid), true, h_close },
	{ VMBUS_MSG_GPADL_TEARDOWN, sizeof(struct vmbus_msg_gpadl_teardown), true, h_gpadl_teardown },
	{ VMBUS_MSG_RELID_RELEASED, sizeof(struct vmbus_msg_relid), true, h_relid_released },
	{ VMBUS_MSG_UNLOAD, sizeof(struct vmbus_msg_hdr), true, h_unload },
};

int vmbus_mgr_handle(struct vmbus_mgr *m, const void *msg, size_t len)
{
	/* a private, aligned, zero-extended copy: handlers read fixed
	 * offsets below min_len and nothing past len */
	union {
		uint8_t b[VMBUS_MAX_MSG_SIZE];
		uint64_t align;
	} copy;
	uint32_t type;

	m->st.msgs++;
	if (len < sizeof(struct vmbus_msg_hdr) || len > VMBUS_MAX_MSG_SIZE)
		return drop(m, "message of %zu bytes", len);
	memset(&copy, 0, sizeof(copy));
	memcpy(copy.b, msg, len);
	memcpy(&type, copy.b, sizeof(type));
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
		if (handlers[i].msgtype != type)
			continue;
		if (len < handlers[i].min_len)
			return drop(m, "message type %u: %zu bytes, %zu needed",
				    type, len, handlers[i].min_len);
		if (handlers[i].connected && !m->version)
			return drop(m, "message type %u before INITIATE_CONTACT", type);
		return handlers[i].handler(m, copy.b, len);
	}
	return drop(m, "unknown message type %u", type);
}

/* --- API --------------------------------------------------------------- */

int vmbus_mgr_new(const struct vmbus_mgr_cfg *cfg, struct vmbus_mgr **out)
{
	struct vmbus_mgr *m;

	if (!cfg || !cfg->send || cfg->mem_fd < 0) {
		set_error("vmbus_mgr_new: invalid configuration");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	pthread_mutex_init(&m->post_mu, NULL);
	m->posted_tail = &m->posted;
	for (int i = 0; i < MAX_CHANNELS; i++) {
		m->ch[i].m = m;
		m->ch[i].relid = (uint32_t)i + 1;
	}
	*out = m;
	return 0;
}

void vmbus_mgr_free(struct vmbus_mgr *m)
{
	if (!m)
		return;
	reset_all(m);
	while (m->posted) {
		struct posted *p = m->posted;

		m->posted = p->next;
		free(p);
	}
	pthread_mutex_destroy(&m->post_mu);
	free(m);
}

static int add_chan(struct vmbus_mgr *m, const struct vmbus_guid *type,
		    const struct vmbus_guid *instance, uint16_t sub_index,
		    const struct vmbus_dev_ops *ops, void *opaque)
{
	for (int i = 0; i < MAX_CHANNELS; i++) {
		struct vmbus_chan *ch = &m->ch[i];

		if (ch->state != CH_FREE)
			continue;
		ch->state = CH_OFFERED;
		ch->type = *type;
		ch->instance = *instance;
		ch->sub_index = sub_index;
		ch->ops = ops;
		ch->opaque = opaque;
		if (m->version && m->offers_requested) {
			int r = send_offer(m, ch);

			if (r < 0) {
				ch->state = CH_FREE;
				return r;
			}
		}
		return (int)ch->relid;
	}
	set_error("no free relid (%d channels)", MAX_CHANNELS);
	return -ENOSPC;
}

int vmbus_mgr_add_device(struct vmbus_mgr *m, const struct vmbus_guid *type,
			 const struct vmbus_guid *instance,
			 const struct vmbus_dev_ops *ops, void *opaque)
{
	return add_chan(m, type, instance, 0, ops, opaque);
}

int vmbus_mgr_add_subchannel(struct vmbus_mgr *m, uint32_t primary,
			     uint16_t index, const struct vmbus_dev_ops *ops,
			     void *opaque)
{
	struct vmbus_chan *p = chan_by_relid(m, primary);

	if (!p || p->sub_index || p->state == CH_RESCINDED || index == 0) {
		set_error("sub-channel %u of relid %u: no such primary", index, primary);
		return -EINVAL;
	}
	return add_chan(m, &p->type, &p->instance, index, ops, opaque);
}

uint32_t vmbus_mgr_epoch(const struct vmbus_mgr *m)
{
	return m->epoch;
}

int vmbus_mgr_post(struct vmbus_mgr *m, void (*fn)(void *arg), void *arg)
{
	struct posted *p = malloc(sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	p->next = NULL;
	pthread_mutex_lock(&m->post_mu);
	*m->posted_tail = p;
	m->posted_tail = &p->next;
	pthread_mutex_unlock(&m->post_mu);
	if (m->cfg.wake)
		m->cfg.wake(m->cfg.opaque);
	return 0;
}

void vmbus_mgr_run_posted(struct vmbus_mgr *m)
{
	struct posted *list;

	pthread_mutex_lock(&m->post_mu);
	list = m->posted;
	m->posted = NULL;
	m->posted_tail = &m->posted;
	pthread_mutex_unlock(&m->post_mu);
	while (list) {
		struct posted *p = list;

		list = p->next;
		p->fn(p->arg);
		free(p);
	}
}

int vmbus_mgr_rescind(struct vmbus_mgr *m, uint32_t relid)
{
	struct vmbus_chan *ch = chan_by_relid(m, relid);
	struct vmbus_msg_relid r;
	bool told;

	if (!ch || ch->state == CH_RESCINDED) {
		set_error("rescind: relid %u not offered", relid);
		return -ENOENT;
	}
	chan_close(ch);
	told = m->version && m->offers_requested;
	/* a guest that never saw the offer has nothing to release */
	ch->state = told ? CH_RESCINDED : CH_FREE;
	if (!told)
		return 0;
	memset(&r, 0, sizeof(r));
	r.child_relid = relid;
	return send_msg(m, &r, sizeof(r), VMBUS_MSG_RESCIND_CHANNELOFFER);
}

void vmbus_mgr_signal(struct vmbus_mgr *m, uint32_t relid)
{
	struct vmbus_chan *ch = chan_by_relid(m, relid);

	if (!ch || ch->state != CH_OPEN || !ch->ops || !ch->ops->signal)
		return;
	ch->in_callback = true;
	ch->ops->signal(ch->opaque, ch);
	ch->in_callback = false;
	if (ch->fail_pending)
		chan_close(ch);
}

void vmbus_mgr_reset(struct vmbus_mgr *m)
{
	reset_all(m);
	m->version = 0;
}

uint32_t vmbus_mgr_version(const struct vmbus_mgr *m)
{
	return m->version;
}

void vmbus_mgr_get_stats(const struct vmbus_mgr *m, struct vmbus_mgr_stats *st)
{
	*st = m->st;
}

struct ring *vmbus_chan_in(struct vmbus_chan *ch)
{
	return &ch->in;
}

struct ring *vmbus_chan_out(struct vmbus_chan *ch)
{
	return &ch->out;
}

uint32_t vmbus_chan_relid(const struct vmbus_chan *ch)
{
	return ch->relid;
}

void vmbus_chan_signal(struct vmbus_chan *ch)
{
	if (ch->state == CH_OPEN && ch->m->cfg.signal)
		ch->m->cfg.signal(ch->m->cfg.opaque, ch->relid);
}

void vmbus_chan_fail(struct vmbus_chan *ch)
{
	if (ch->state != CH_OPEN)
		return;
	ch->m->st.chan_failed++;
	if (ch->in_callback)
		ch->fail_pending = true;
	else
		chan_close(ch);
}
