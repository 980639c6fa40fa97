/* vss channel: the VSS integration service offered on VMBus, and one
 * transaction at a time over its rings.
 *
 * Threads: the vmbus callbacks (open, close, signal) run on the manager's
 * thread; transactions run on the caller's (the coordinator's), which is
 * then the only producer of the host->guest ring and the only consumer of
 * the guest->host ring.  v->mu guards the channel pointer and every ring
 * access, so close (which unmaps the rings after it returns) never races
 * a transaction; a transaction waits for the reply with mu released.
 *
 * Hostile guest: a reply is copied out of the ring and checked on the
 * copy.  Packets that answer nothing we asked (stale replies to a
 * transaction that timed out, wrong trans_id, other packet types) are
 * counted and dropped; a reply to the current request that is malformed
 * (length, flags, type, operation), a corrupt ring, an oversized packet
 * or a flood of junk during one transaction closes the channel
 * (vmbus_chan_fail, posted to the manager's thread) and fails the
 * transaction with -EPROTO.  The host never waits longer than the
 * caller's timeout.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmbus/vmbus.h"
#include "vss/vss.h"

#define POLL_MS 20		/* re-check the ring at least this often */
#define MAX_JUNK 1024		/* unexpected packets tolerated per transaction */
#define PKT_MAX (RING_DESC_SIZE + VSS_MAX_PKT + 8)

struct vss {
	struct vmbus_mgr *mgr;
	int relid;
	pthread_mutex_t xact_mu; /* one transaction at a time */
	pthread_mutex_t mu;	/* everything below */
	pthread_cond_t cv;
	struct vmbus_chan *ch;	/* NULL: not open */
	uint64_t epoch;		/* opens so far */
	bool broken;		/* failed by us; close pending */
	bool fail_posted;
	bool signalled;
	uint64_t next_id;	/* VMBus trans_id of our requests */
	struct vss_stats st;
	uint8_t req[VSS_MAX_PKT];
	uint8_t pkt[PKT_MAX];
};

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Called with v->mu held. */
__attribute__((format(printf, 2, 3)))
static void note(struct vss *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->st.last_error, sizeof(v->st.last_error), fmt, ap);
	va_end(ap);
}

/* --- vmbus callbacks (manager's thread) ------------------------------------ */

static int cb_open(void *opaque, struct vmbus_chan *ch)
{
	struct vss *v = opaque;

	pthread_mutex_lock(&v->mu);
	v->ch = ch;
	v->epoch++;
	v->broken = false;
	v->signalled = false;
	v->st.open = true;
	v->st.negotiated = false;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
	return 0;
}

static void cb_close(void *opaque, struct vmbus_chan *ch)
{
	struct vss *v = opaque;

	pthread_mutex_lock(&v->mu);
	if (v->ch == ch) {
		v->ch = NULL;
		v->st.open = false;
		v->st.negotiated = false;
	}
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
}

static void cb_signal(void *opaque, struct vmbus_chan *ch)
{
	struct vss *v = opaque;

	pthread_mutex_lock(&v->mu);
	v->signalled = true;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
}

static const struct vmbus_dev_ops vss_ops = {
	.open = cb_open, .close = cb_close, .signal = cb_signal,
};

static void post_fail(void *arg)
{
	struct vss *v = arg;
	struct vmbus_chan *ch;

	/* manager's thread: nothing can open or close the channel meanwhile */
	pthread_mutex_lock(&v->mu);
	ch = v->fail_posted ? v->ch : NULL;
	v->fail_posted = false;
	pthread_mutex_unlock(&v->mu);
	if (ch)
		vmbus_chan_fail(ch);
}

/* The guest broke the rules: stop using the channel now, close it from
 * the manager's thread.  Called with v->mu held.  Returns -EPROTO. */
__attribute__((format(printf, 2, 3)))
static int fail_chan(struct vss *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->st.last_error, sizeof(v->st.last_error), fmt, ap);
	va_end(ap);
	if (!v->broken) {
		v->broken = true;
		v->st.chan_failed++;
		if (!v->fail_posted && !vmbus_mgr_post(v->mgr, post_fail, v))
			v->fail_posted = true;
	}
	return -EPROTO;
}

/* --- public ---------------------------------------------------------------- */

int vss_new(const struct vss_cfg *cfg, struct vss **out)
{
	static const struct vmbus_guid type = VMBUS_GUID_VSS;
	struct vmbus_guid inst;
	struct vss *v = calloc(1, sizeof(*v));
	int relid;

	if (!v)
		return -ENOMEM;
	v->mgr = cfg->mgr;
	pthread_mutex_init(&v->xact_mu, NULL);
	pthread_mutex_init(&v->mu, NULL);
	pthread_cond_init(&v->cv, NULL);
	memcpy(inst.b, cfg->instance, 16);
	relid = vmbus_mgr_add_device(cfg->mgr, &type, &inst, &vss_ops, v);
	if (relid < 0) {
		vss_free(v);
		return relid;
	}
	v->relid = relid;
	*out = v;
	return 0;
}

void vss_free(struct vss *v)
{
	if (!v)
		return;
	pthread_cond_destroy(&v->cv);
	pthread_mutex_destroy(&v->mu);
	pthread_mutex_destroy(&v->xact_mu);
	free(v);
}

void vss_get_stats(struct vss *v, struct vss_stats *st)
{
	pthread_mutex_lock(&v->mu);
	*st = v->st;
	pthread_mutex_unlock(&v->mu);
}

/* Wait on cv until signalled or the deadline (at most POLL_MS).  Called
 * with mu held.  false when the deadline passed. */
static bool wait_a_bit(struct vss *v, int64_t deadline)
{
	int64_t now = now_ns(), until;
	struct timespec ts;

	if (now >= deadline)
		return false;
	if (!v->signalled) {
		until = deadline - now < POLL_MS * 1000000ll ? deadline
							     : now + POLL_MS * 1000000ll;
		/* the condvar uses CLOCK_REALTIME: convert the interval */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(until - now);
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&v->cv, &v->mu, &ts);
	}
	v->signalled = false;
	return true;
}

/* Is the channel we started on still usable?  Called with mu held. */
static bool usable(const struct vss *v, uint64_t epoch)
{
	return v->ch && v->epoch == epoch && !v->broken;
}

/* Write v->req (len bytes, already padded to 8) as request id.  Called
 * with mu held. */
static int send_req(struct vss *v, uint64_t epoch, uint32_t len, uint64_t id,
		    int64_t deadline)
{
	struct ring_iov iov = { v->req, len };
	enum ring_status st;
	bool sig;

	for (;;) {
		if (!usable(v, epoch))
			return -ENOTCONN;
		st = ring_write(vmbus_chan_out(v->ch), RING_PKT_DATA_INBAND, 0, id,
				0, &iov, 1, &sig);
		if (st == RING_OK)
			break;
		if (st != RING_NOSPACE)
			return fail_chan(v, "host->guest ring: %s", ring_status_str(st));
		/* the guest is not reading: wait for its signal, bounded */
		if (ring_want_space(vmbus_chan_out(v->ch), ring_packet_bytes(len)))
			continue;
		if (!wait_a_bit(v, deadline)) {
			v->st.timeouts++;
			note(v, "the guest left no room in its ring");
			return -ETIMEDOUT;
		}
	}
	if (sig)
		vmbus_chan_signal(v->ch);
	v->st.sent++;
	return 0;
}

/* One transaction: v->req holds len bytes.  On 0 the reply (same length)
 * is at *rep and *f describes it.  Called with xact_mu held. */
static int xact(struct vss *v, uint32_t len, int timeout_ms,
		const uint8_t **rep, struct vss_frame *f)
{
	int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
	uint32_t padded = (len + 7) & ~7u, junk = 0;
	uint64_t epoch, id;
	int r;

	/* the guest sees the payload padded to 8 and answers that length */
	memset(v->req + len, 0, padded - len);
	pthread_mutex_lock(&v->mu);
	if (!usable(v, v->epoch)) {
		pthread_mutex_unlock(&v->mu);
		return -ENOTCONN;
	}
	epoch = v->epoch;
	id = ++v->next_id;
	r = send_req(v, epoch, padded, id, deadline);
	while (!r) {
		struct ring *in;
		struct ring_pkt p;
		enum ring_status st;
		enum vss_wstatus ws;
		const uint8_t *pl;
		uint32_t plen;

		if (!usable(v, epoch)) {
			r = -ENOTCONN;
			break;
		}
		in = vmbus_chan_in(v->ch);
		st = ring_read(in, v->pkt, sizeof(v->pkt), &p);
		if (st == RING_EMPTY) {
			if (!wait_a_bit(v, deadline)) {
				v->st.timeouts++;
				note(v, "no reply to request %llu in %d ms",
				     (unsigned long long)id, timeout_ms);
				r = -ETIMEDOUT;
			}
			continue;
		}
		if (st != RING_OK) {
			r = fail_chan(v, "guest->host ring: %s", ring_status_str(st));
			break;
		}
		if (ring_commit(in))
			vmbus_chan_signal(v->ch);
		pl = v->pkt + p.payload_off;
		plen = p.len - p.payload_off;
		if (p.type != RING_PKT_DATA_INBAND || p.trans_id != id) {
			if (p.type == RING_PKT_DATA_INBAND && p.trans_id < id &&
			    p.trans_id > 0)
				v->st.stale++;
			else
				v->st.bad++;
			if (++junk > MAX_JUNK)
				r = fail_chan(v, "more than %d unexpected packets", MAX_JUNK);
			continue;
		}
		ws = vss_check_reply(v->req, padded, pl, plen, f);
		if (ws != VSS_W_OK) {
			r = fail_chan(v, "reply to request %llu: %s",
				      (unsigned long long)id, vss_wstatus_str(ws));
			break;
		}
		v->st.replies++;
		*rep = pl;
		break;
	}
	pthread_mutex_unlock(&v->mu);
	return r;
}

static int negotiate_locked(struct vss *v, int timeout_ms)
{
	/* what hv_utils' VSS driver takes: framework 3.0, VSS 5.0 only; we
	 * also offer the older framework 1.0 as Hyper-V does */
	static const struct vss_ic_version fw[] = { { 3, 0 }, { 1, 0 } };
	static const struct vss_ic_version msg[] = { { 5, 0 } };
	struct vss_ic_version sfw, smsg;
	const uint8_t *rep;
	struct vss_frame f;
	enum vss_wstatus ws;
	uint32_t len;
	int r;

	pthread_mutex_lock(&v->mu);
	r = v->ch ? (v->st.negotiated ? 1 : 0) : -ENOTCONN;
	pthread_mutex_unlock(&v->mu);
	if (r)
		return r > 0 ? 0 : r;
	if (vss_enc_negotiate(v->req, sizeof(v->req), fw, 2, msg, 1, &len) != VSS_W_OK)
		return -EINVAL;
	r = xact(v, len, timeout_ms, &rep, &f);
	if (r)
		return r;
	pthread_mutex_lock(&v->mu);
	ws = vss_dec_negotiate_reply(v->req, (len + 7) & ~7u, rep, f.len, &sfw, &smsg);
	if (ws == VSS_W_NOMATCH) {
		note(v, "the guest supports none of our VSS versions");
		r = -ENOTSUP;
	} else if (ws != VSS_W_OK) {
		r = fail_chan(v, "negotiate reply: %s", vss_wstatus_str(ws));
	} else {
		v->st.negotiated = true;
		v->st.fw = sfw;
		v->st.msgver = smsg;
	}
	pthread_mutex_unlock(&v->mu);
	return r;
}

int vss_negotiate(struct vss *v, int timeout_ms)
{
	int r;

	pthread_mutex_lock(&v->xact_mu);
	r = negotiate_locked(v, timeout_ms);
	pthread_mutex_unlock(&v->xact_mu);
	return r;
}

int vss_transact(struct vss *v, enum vss_op op, uint32_t flags,
		 const struct vss_lun_info *luns, uint32_t nluns,
		 int timeout_ms, uint32_t *status, uint32_t *reply_flags)
{
	struct vss_ic_version fw, msgver;
	const uint8_t *rep;
	struct vss_frame f;
	uint32_t len;
	int r;

	pthread_mutex_lock(&v->xact_mu);
	r = negotiate_locked(v, timeout_ms);
	if (r)
		goto out;
	pthread_mutex_lock(&v->mu);
	fw = v->st.fw;
	msgver = v->st.msgver;
	pthread_mutex_unlock(&v->mu);
	if (vss_enc_request(v->req, sizeof(v->req), fw, msgver, op, flags, luns,
			    nluns, &len) != VSS_W_OK) {
		r = -EINVAL;
		goto out;
	}
	r = xact(v, len, timeout_ms, &rep, &f);
	if (r)
		goto out;
	*status = f.status;
	if (reply_flags)
		*reply_flags = vss_msg_flags(rep, f.len);
out:
	pthread_mutex_unlock(&v->xact_mu);
	return r;
}
