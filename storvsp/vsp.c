/* storvsp controller: the offer of a synthetic SCSI controller, its
 * sub-channels, hot add and remove of LUNs, quiesce and statistics.
 *
 * Threads: the vmbus callbacks (open, close, signal) and the sub-channel
 * offers run on the vmbus manager's thread; each open channel has its
 * service thread (chan.c); LUN changes and quiesce come from any thread.
 * v->mu guards chans[] and the statistics.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storvsp/vsp-int.h"

/* A statistics counter of v->st: atomic, no lock (vsp_get_stats reads
 * each with an atomic load). */
void vsp_count(struct vsp *v, uint64_t *field, uint64_t n)
{
	__atomic_fetch_add(field, n, __ATOMIC_RELAXED);
	(void)v;
}

void vsp_note(struct vsp *v, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&v->mu);
	va_start(ap, fmt);
	vsnprintf(v->st.last_error, sizeof(v->st.last_error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&v->mu);
}

/* --- vmbus callbacks (manager's thread) ---------------------------------- */

/* Manager's thread: the sub-channels of the storvsc instance that opened
 * the primary go with it (as Hyper-V and OpenVMM revoke them when the
 * primary closes); a vmbus reset has freed them already (new epoch). */
static void drop_subs(struct vsp *v)
{
	if (v->subs_epoch == vmbus_mgr_epoch(v->cfg.mgr)) {
		for (uint16_t i = 1; i <= v->subs_offered; i++)
			(void)vmbus_mgr_rescind(v->cfg.mgr, v->offers[i].relid);
	}
	v->subs_offered = 0;
	v->subs_epoch = vmbus_mgr_epoch(v->cfg.mgr);
	pthread_mutex_lock(&v->mu);
	v->st.subchannels_offered = 0;
	pthread_mutex_unlock(&v->mu);
}

/* Posted by the primary's close: not from inside the close itself, which
 * may be part of a reset walking every channel. */
static void drop_subs_posted(void *arg)
{
	struct vsp *v = arg;

	v->drop_posted = false;
	pthread_mutex_lock(&v->mu);
	bool reopened = v->chans[0] != NULL;
	pthread_mutex_unlock(&v->mu);
	/* a reset since (new epoch) freed them; a new open dropped them */
	if (v->drop_epoch == vmbus_mgr_epoch(v->cfg.mgr) && !reopened)
		drop_subs(v);
}

static int cb_open(void *opaque, struct vmbus_chan *vc)
{
	struct vsp_offer *o = opaque;
	struct vsp *v = o->v;
	int r;

	if (o->index == 0) {
		/* a new storvsc instance: protocol from the start, and the
		 * sub-channels of an earlier one go */
		atomic_store(&v->state, VSP_ST_BEGIN);
		atomic_store(&v->version, 0);
		drop_subs(v);
	}
	r = vsp_chan_open(o, vc);
	if (r < 0)
		return r;
	pthread_mutex_lock(&v->mu);
	v->chans[o->index] = o->chan;
	v->st.channels_open++;
	pthread_mutex_unlock(&v->mu);
	return 0;
}

static void cb_close(void *opaque, struct vmbus_chan *vc)
{
	struct vsp_offer *o = opaque;
	struct vsp *v = o->v;
	struct vsp_chan *c = o->chan;

	if (!c)
		return;
	pthread_mutex_lock(&v->mu);
	v->chans[o->index] = NULL;
	v->st.channels_open--;
	pthread_mutex_unlock(&v->mu);
	vsp_chan_close(c);
	if (o->index == 0) {
		atomic_store(&v->state, VSP_ST_BEGIN);
		atomic_store(&v->version, 0);
		v->drop_epoch = vmbus_mgr_epoch(v->cfg.mgr);
		if (!v->drop_posted && v->subs_offered &&
		    vmbus_mgr_post(v->cfg.mgr, drop_subs_posted, v) == 0)
			v->drop_posted = true;	/* else the next open drops them */
	}
}

static void cb_signal(void *opaque, struct vmbus_chan *vc)
{
	struct vsp_offer *o = opaque;

	/* the guest wrote requests or freed ring space */
	if (o->chan)
		vsp_chan_signalled(o->chan);
}

static const struct vmbus_dev_ops vsp_ops = {
	.open = cb_open, .close = cb_close, .signal = cb_signal,
};

/* --- sub-channels ---------------------------------------------------------- */

struct sub_req {
	struct vsp *v;
	uint16_t n;
};

static void offer_subs(void *arg)
{
	struct sub_req *q = arg;
	struct vsp *v = q->v;

	if (v->subs_epoch != vmbus_mgr_epoch(v->cfg.mgr)) {
		free(q);	/* the guest that asked is gone */
		return;
	}
	for (uint16_t k = 0; k < q->n && v->subs_offered < v->cfg.max_subchannels; k++) {
		uint16_t idx = (uint16_t)(v->subs_offered + 1);
		int relid = vmbus_mgr_add_subchannel(v->cfg.mgr, v->offers[0].relid, idx,
						     &vsp_ops, &v->offers[idx]);

		if (relid < 0) {
			vsp_note(v, "sub-channel %u: %s", idx, vmbus_last_error());
			break;
		}
		v->offers[idx].relid = (uint32_t)relid;
		v->subs_offered = idx;
	}
	pthread_mutex_lock(&v->mu);
	v->st.subchannels_offered = v->subs_offered;
	pthread_mutex_unlock(&v->mu);
	free(q);
}

/* Service thread of the primary: CREATE_SUB_CHANNELS asked for n more.
 * The count is checked against what was asked before (pending offers
 * included); the offers are made on the manager's thread. */
int vsp_offer_subchannels(struct vsp *v, uint16_t n)
{
	struct sub_req *q;
	uint32_t asked;

	pthread_mutex_lock(&v->mu);
	asked = v->st.subchannels_offered;
	pthread_mutex_unlock(&v->mu);
	if ((uint32_t)n + asked > v->cfg.max_subchannels)
		return -EINVAL;
	if (n == 0)
		return 0;
	q = malloc(sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->v = v;
	q->n = n;
	if (vmbus_mgr_post(v->cfg.mgr, offer_subs, q) < 0) {
		free(q);
		return -ENOMEM;
	}
	return 0;
}

/* --- API -------------------------------------------------------------------- */

int vsp_new(const struct vsp_cfg *cfg, struct vsp **out)
{
	struct vsp *v;
	int relid;

	if (!cfg || !cfg->mgr || !cfg->guest_mem || cfg->guest_bytes < 4096 ||
	    cfg->max_subchannels > VSP_MAX_SUBCHANNELS)
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->cfg = *cfg;
	if (!v->cfg.max_transfer)
		v->cfg.max_transfer = VSP_DEFAULT_MAX_TRANSFER;
	v->cfg.max_transfer &= ~4095u;	/* Linux rounds it down to pages */
	if (!v->cfg.max_transfer)
		v->cfg.max_transfer = 4096;
	if (!v->cfg.slots)
		v->cfg.slots = VSP_DEFAULT_SLOTS;
	if (!v->cfg.spin_us)
		v->cfg.spin_us = 50;
	v->guest_pages = cfg->guest_bytes / 4096;
	v->max_pages = v->cfg.max_transfer / 4096 + 1;
	pthread_mutex_init(&v->mu, NULL);
	for (int i = 0; i <= VSP_MAX_SUBCHANNELS; i++) {
		v->offers[i].v = v;
		v->offers[i].index = (uint16_t)i;
	}
	v->t = scsi_target_new();
	if (!v->t) {
		int e = -errno;

		free(v);
		return e;
	}
	relid = vmbus_mgr_add_device(cfg->mgr, &(struct vmbus_guid)VMBUS_GUID_SCSI,
				     &cfg->instance, &vsp_ops, &v->offers[0]);
	if (relid < 0) {
		scsi_target_free(v->t);
		free(v);
		return relid;
	}
	v->offers[0].relid = (uint32_t)relid;
	v->subs_epoch = vmbus_mgr_epoch(cfg->mgr);
	*out = v;
	return 0;
}

void vsp_free(struct vsp *v)
{
	if (!v)
		return;
	scsi_target_free(v->t);
	pthread_mutex_destroy(&v->mu);
	free(v);
}

struct scsi_target *vsp_target(struct vsp *v)
{
	return v->t;
}

static void notify(struct vsp *v, unsigned bit)
{
	atomic_fetch_or(&v->notify, bit);
	pthread_mutex_lock(&v->mu);
	if (v->chans[0])
		vsp_chan_wake(v->chans[0]);
	pthread_mutex_unlock(&v->mu);
}

int vsp_lun_add(struct vsp *v, uint32_t lun, struct bdev *bd, unsigned flags)
{
	int r = scsi_lun_add(v->t, lun, bd, flags);

	if (r == 0)
		notify(v, VSP_NOTIFY_ENUMERATE);
	return r;
}

int vsp_lun_remove(struct vsp *v, uint32_t lun)
{
	int r = scsi_lun_remove(v->t, lun);

	if (r == 0)
		notify(v, VSP_NOTIFY_REMOVE);
	return r;
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int vsp_quiesce(struct vsp *v, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	atomic_store(&v->quiesce, true);
	for (;;) {
		unsigned busy = 0;

		pthread_mutex_lock(&v->mu);
		for (int i = 0; i <= VSP_MAX_SUBCHANNELS; i++)
			if (v->chans[i]) {
				busy += atomic_load(&v->chans[i]->inflight);
				vsp_chan_wake(v->chans[i]);
			}
		pthread_mutex_unlock(&v->mu);
		if (!busy)
			return 0;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

/* The counters are incremented atomically without v->mu (vsp_count), so
 * they are read one by one atomically too: a struct copy would race. */
#define LOAD_COUNTER(st, v, field) \
	((st)->field = __atomic_load_n(&(v)->st.field, __ATOMIC_RELAXED))

void vsp_get_stats(struct vsp *v, struct vsp_stats *st)
{
	memset(st, 0, sizeof(*st));
	LOAD_COUNTER(st, v, packets);
	LOAD_COUNTER(st, v, srbs);
	LOAD_COUNTER(st, v, srb_errors);
	LOAD_COUNTER(st, v, rejected);
	LOAD_COUNTER(st, v, ring_full);
	LOAD_COUNTER(st, v, sleeps);
	LOAD_COUNTER(st, v, chan_failed);
	LOAD_COUNTER(st, v, notifies);
	LOAD_COUNTER(st, v, wakes);
	LOAD_COUNTER(st, v, direct_replies);
	LOAD_COUNTER(st, v, direct_reads);
	pthread_mutex_lock(&v->mu);
	st->channels_open = v->st.channels_open;
	st->subchannels_offered = v->st.subchannels_offered;
	memcpy(st->last_error, v->st.last_error, sizeof(st->last_error));
	for (int i = 0; i <= VSP_MAX_SUBCHANNELS; i++)
		if (v->chans[i])
			st->inflight += atomic_load(&v->chans[i]->inflight);
	pthread_mutex_unlock(&v->mu);
	st->version = atomic_load(&v->version);
}
