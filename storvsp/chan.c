/* storvsp channel service thread: one a channel, the only consumer of the
 * guest->host ring and the only producer of the host->guest ring while it
 * is awake (it holds the channel's token, c->own).
 *
 * Loop: write ready completions (a lock-free stack pushed by the disks'
 * completion threads), read new packets while a slot is free, publish;
 * poll while there was work within the last spin_us (guest interrupts
 * masked), then unmask them, release the token and sleep on the channel's
 * eventfd.
 *
 * While it sleeps, the thread that has work serves the channel itself
 * for one pass instead of waking it (measured: every wake-up is a
 * context switch costing tens of microseconds on a loaded 2-core host):
 * a completion thread takes the token with a trylock and writes its reply
 * (and any others ready) into the ring; the manager's thread, signalled
 * by the guest, reads the new requests and submits them.  If the trylock
 * fails, or work is left after the pass, the service thread is woken
 * (one eventfd write).  `sleeping` and the ready stack are sequentially
 * consistent: a completer either sees the thread asleep or the thread
 * sees its reply before sleeping.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/bdev.h"
#include "storvsp/vsp-int.h"

#define READ_BATCH 32		/* packets read between publishing read_index */
#define SLEEP_MS 200		/* bounded sleep: re-check stop/quiesce */

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* One eventfd write per sleep: further wakes before the thread runs
 * again (each completion of a batch asks) would be syscalls for nothing.
 * The thread clears wake_pending when it wakes, before it looks for
 * work, so a wake that finds it set has its work seen. */
static void wake(struct vsp_chan *c)
{
	uint64_t one = 1;

	if (atomic_exchange(&c->wake_pending, true))
		return;
	vsp_count(c->v, &c->v->st.wakes, 1);
	(void)!write(c->efd, &one, sizeof(one));
}

void vsp_chan_wake(struct vsp_chan *c)
{
	if (atomic_load(&c->sleeping))
		wake(c);
}

static int send_ready(struct vsp_chan *c, uint32_t *freed);

void vsp_slot_ready(struct vsp_slot *s)
{
	struct vsp_chan *c = s->c;
	uint32_t head, freed = 0;
	bool hand_over;

	/* pin the channel: once the reply is pushed the service thread may
	 * write it and free the slot; c must outlive this function */
	atomic_fetch_add(&c->inflight, 1);
	head = atomic_load(&c->ready);
	do {
		s->next_ready = head;
	} while (!atomic_compare_exchange_weak(&c->ready, &head, s->idx + 1));
	if (!atomic_load(&c->sleeping))
		goto unpin;	/* awake: its loop takes it */
	if (pthread_mutex_trylock(&c->own) != 0) {
		wake(c);	/* someone else serves: make sure it is seen */
		goto unpin;
	}
	/* the service thread sleeps: write the replies from this thread
	 * (c stays valid: this slot keeps inflight above 0 until below) */
	(void)send_ready(c, &freed);
	vsp_count(c->v, &c->v->st.direct_replies, freed);
	/* Wake the service thread anyway: replies left over (ring full),
	 * closing, or, the common case, to poll for the guest's next
	 * request, which usually follows its reply within spin_us.  That
	 * wake-up is off the reply's path (the guest has it already) and
	 * spares the guest a doorbell and the manager's thread a hand-off
	 * (measured at QD1 on the loaded 2-core host: 580-800 requests a
	 * second without this wake-up, 890-1200 with it). */
	hand_over = freed || atomic_load(&c->ready) || atomic_load(&c->stop) ||
		    c->failed;
	pthread_mutex_unlock(&c->own);
	if (hand_over)
		wake(c);	/* after the unlock: it takes the token first */
unpin:
	/* last: once inflight may reach 0 the channel may be freed */
	atomic_fetch_sub(&c->inflight, freed + 1);
}

static void post_fail(void *arg)
{
	struct vsp_offer *o = arg;

	/* manager's thread: the channel may have been closed (and even
	 * re-opened) since; fail only the one that asked */
	if (o->chan && atomic_load(&o->chan->failed))
		vmbus_chan_fail(o->chan->vc);
}

void vsp_chan_fail(struct vsp_chan *c, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (atomic_load(&c->failed))
		return;
	atomic_store(&c->failed, true);
	vsp_note(c->v, "channel %u closed: %s", c->offer->relid, msg);
	vsp_count(c->v, &c->v->st.chan_failed, 1);
}

/* Called with the token held; the caller subtracts from c->inflight
 * (so a completion thread can do it last). */
static void slot_free(struct vsp_chan *c, struct vsp_slot *s)
{
	c->free_idx[c->nfree++] = s->idx;
}

/* Move the ready stack into the FIFO, oldest first.  Token held. */
static void take_ready(struct vsp_chan *c)
{
	uint32_t head = atomic_exchange(&c->ready, 0), n = 0, tmp;

	/* the stack is newest first: count, then fill the FIFO backwards */
	for (uint32_t i = head; i; i = c->slots[i - 1].next_ready)
		n++;
	tmp = n;
	for (uint32_t i = head; i; i = c->slots[i - 1].next_ready)
		c->q[(c->q_head + c->q_len + --tmp) % c->nslots] = i - 1;
	c->q_len += n;
}

/* Write queued completions while the ring has room, then signal the
 * guest once if any write asked for it (the ring was empty before it and
 * the guest's interrupts unmasked): one doorbell a batch, not one a
 * reply.  Token held.  Returns how many were handled; *freed counts the
 * slots freed. */
static int send_ready(struct vsp_chan *c, uint32_t *freed)
{
	bool want_sig = false;
	int n = 0;

	take_ready(c);
	while (c->q_len) {
		struct vsp_slot *s = &c->slots[c->q[c->q_head]];
		struct ring_iov iov;
		enum ring_status st;
		bool sig;

		if (!atomic_load(&c->failed) && !atomic_load(&c->stop)) {
			if (c->out_blocked)
				break;
			iov = (struct ring_iov){ &s->reply, s->reply_len };
			st = ring_write(c->out, RING_PKT_COMP, 0, s->trans_id, 0,
					&iov, 1, &sig);
			if (st == RING_NOSPACE) {
				vsp_count(c->v, &c->v->st.ring_full, 1);
				if (ring_want_space(c->out, ring_packet_bytes(s->reply_len)))
					continue;	/* room appeared meanwhile */
				c->out_blocked = true;	/* the guest signals */
				break;
			}
			if (st != RING_OK)
				vsp_chan_fail(c, "host->guest ring: %s", ring_status_str(st));
			else
				want_sig |= sig;
		}
		/* written (or dropped on a failed channel): free the slot */
		c->q_head = (c->q_head + 1) % c->nslots;
		c->q_len--;
		slot_free(c, s);
		(*freed)++;
		n++;
	}
	if (want_sig && !atomic_load(&c->failed))
		vmbus_chan_signal(c->vc);
	return n;
}

/* Unsolicited ENUMERATE_BUS / REMOVE_DEVICE (primary, Ready). */
static int send_notify(struct vsp_chan *c)
{
	struct vsp *v = c->v;
	unsigned bits;
	int n = 0;

	if (c->offer->index != 0 || c->failed || c->out_blocked ||
	    atomic_load(&v->state) != VSP_ST_READY || !atomic_load(&v->notify))
		return 0;
	bits = atomic_exchange(&v->notify, 0);
	for (unsigned b = VSP_NOTIFY_ENUMERATE; b <= VSP_NOTIFY_REMOVE; b <<= 1) {
		struct vsp_packet p;
		struct ring_iov iov = { &p, VSP_PACKET_SIZE };
		enum ring_status st;
		bool sig;

		if (!(bits & b))
			continue;
		memset(&p, 0, sizeof(p));
		p.operation = b == VSP_NOTIFY_ENUMERATE ? VSP_OP_ENUMERATE_BUS
							: VSP_OP_REMOVE_DEVICE;
		/* in-band, flags 0, trans_id 0, 64 bytes (notes 3.8) */
		st = ring_write(c->out, RING_PKT_DATA_INBAND, 0, 0, 0, &iov, 1, &sig);
		if (st == RING_NOSPACE) {
			atomic_fetch_or(&v->notify, b);	/* later */
			continue;
		}
		if (st != RING_OK) {
			vsp_chan_fail(c, "host->guest ring: %s", ring_status_str(st));
			return n;
		}
		if (sig)
			vmbus_chan_signal(c->vc);
		vsp_count(v, &v->st.notifies, 1);
		n++;
	}
	return n;
}

/* Read packets into free slots.  Returns how many. */
static int take_requests(struct vsp_chan *c)
{
	int n = 0;

	/* the batch's disk requests go to the kernel together (one
	 * io_submit, one device kick) at the unplug below */
	bdev_plug();
	while (c->nfree && !c->failed && n < READ_BATCH) {
		struct ring_pkt pkt;
		enum ring_status st = ring_peek(c->in, c->pkt, c->pkt_max, &pkt);
		struct vsp_slot *s;

		if (st == RING_EMPTY)
			break;
		if (st != RING_OK) {
			vsp_chan_fail(c, "guest->host ring: %s", ring_status_str(st));
			break;
		}
		ring_advance(c->in);
		s = &c->slots[c->free_idx[--c->nfree]];
		atomic_fetch_add(&c->inflight, 1);
		n++;
		if (vsp_handle_packet(c, s, &pkt, c->pkt) < 0) {
			slot_free(c, s);	/* the channel failed */
			atomic_fetch_sub(&c->inflight, 1);
		}
	}
	bdev_unplug();
	if (n && !c->failed && ring_commit(c->in))
		vmbus_chan_signal(c->vc);
	return n;
}

static bool has_ready(struct vsp_chan *c)
{
	return c->q_len > 0 || atomic_load(&c->ready) != 0;
}

void vsp_chan_signalled(struct vsp_chan *c)
{
	uint32_t freed = 0;
	int n;

	if (!atomic_load(&c->sleeping) || pthread_mutex_trylock(&c->own) != 0) {
		wake(c);
		return;
	}
	/* the service thread sleeps, interrupts unmasked: one pass here.
	 * The guest may have freed ring space for waiting replies. */
	c->out_blocked = false;
	(void)send_ready(c, &freed);
	atomic_fetch_sub(&c->inflight, freed);
	n = 0;
	if (!atomic_load(&c->v->quiesce) && !atomic_load(&c->stop))
		n = take_requests(c);
	vsp_count(c->v, &c->v->st.direct_reads, (uint64_t)n);
	/* more than one pass's worth, replies left, or something for the
	 * thread to do (failure, notifications): hand over */
	if (c->failed || c->out_blocked || atomic_load(&c->stop) ||
	    (c->nfree && ring_bytes_to_read(c->in)) || n >= READ_BATCH ||
	    (c->offer->index == 0 && atomic_load(&c->v->notify)))
		wake(c);
	pthread_mutex_unlock(&c->own);
}

/* Nothing to do for now?  Called with interrupts unmasked and
 * c->sleeping set. */
static bool idle(struct vsp_chan *c, bool quiescing)
{
	if (atomic_load(&c->stop) && atomic_load(&c->inflight) == 0)
		return false;
	if (has_ready(c) && (!c->out_blocked || c->failed))
		return false;
	if (c->failed)
		return true;
	if (!quiescing && c->nfree && ring_bytes_to_read(c->in))
		return false;
	if (c->offer->index == 0 && atomic_load(&c->v->notify) &&
	    atomic_load(&c->v->state) == VSP_ST_READY && !c->out_blocked)
		return false;
	return true;
}

static void *service(void *arg)
{
	struct vsp_chan *c = arg;
	int64_t spin_ns = (int64_t)c->v->cfg.spin_us * 1000, last = now_ns();
	bool masked = false;

	if (c->v->cfg.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(c->v->cfg.cpu, &set);
		(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	pthread_mutex_lock(&c->own);
	for (;;) {
		bool quiescing = atomic_load(&c->v->quiesce) || atomic_load(&c->stop);
		uint32_t freed = 0;
		int work = 0;

		if (c->failed && !c->fail_posted) {
			c->fail_posted = true;
			(void)vmbus_mgr_post(c->v->cfg.mgr, post_fail, c->offer);
		}
		if (!masked && !c->failed) {
			ring_mask_interrupts(c->in);	/* we are polling */
			masked = true;
		}
		work += send_ready(c, &freed);
		atomic_fetch_sub(&c->inflight, freed);
		work += send_notify(c);
		if (!quiescing)
			work += take_requests(c);
		if (atomic_load(&c->stop) && atomic_load(&c->inflight) == 0)
			break;
		if (work) {
			last = now_ns();
			continue;
		}
		if (now_ns() - last < spin_ns) {
			cpu_relax();
			continue;
		}
		/* sleep: unmask, announce, re-check, then poll */
		if (masked && !c->failed) {
			(void)ring_unmask_interrupts(c->in);
			masked = false;
		}
		atomic_store(&c->sleeping, true);
		if (idle(c, quiescing)) {
			struct pollfd p = { .fd = c->efd, .events = POLLIN };
			uint64_t cnt;

			vsp_count(c->v, &c->v->st.sleeps, 1);
			/* others may serve the channel while we sleep */
			pthread_mutex_unlock(&c->own);
			if (poll(&p, 1, atomic_load(&c->stop) ? 1 : SLEEP_MS) > 0)
				(void)!read(c->efd, &cnt, sizeof(cnt));
			atomic_store(&c->wake_pending, false);
			pthread_mutex_lock(&c->own);
		}
		atomic_store(&c->sleeping, false);
		c->out_blocked = false;	/* woken: try the ring again */
		last = now_ns();
	}
	pthread_mutex_unlock(&c->own);
	return NULL;
}

static void chan_free(struct vsp_chan *c)
{
	if (c->slots)
		for (uint32_t i = 0; i < c->nslots; i++)
			free(c->slots[i].iov);
	free(c->slots);
	free(c->free_idx);
	free(c->q);
	free(c->pkt);
	if (c->efd >= 0)
		close(c->efd);
	pthread_mutex_destroy(&c->own);
	free(c);
}

int vsp_chan_open(struct vsp_offer *o, struct vmbus_chan *vc)
{
	struct vsp *v = o->v;
	struct vsp_chan *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->own, NULL);
	c->v = v;
	c->offer = o;
	c->vc = vc;
	c->in = vmbus_chan_in(vc);
	c->out = vmbus_chan_out(vc);
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->nslots = v->cfg.slots;
	/* descriptor + range header + PFNs + vstor packet */
	c->pkt_max = RING_DESC_SIZE + sizeof(struct vsp_gpa_range) +
		     8 * v->max_pages + VSP_PACKET_SIZE;
	c->pkt = aligned_alloc(8, (c->pkt_max + 7) & ~7u);
	c->slots = calloc(c->nslots, sizeof(*c->slots));
	c->free_idx = calloc(c->nslots, sizeof(uint32_t));
	c->q = calloc(c->nslots, sizeof(uint32_t));
	if (c->efd < 0 || !c->pkt || !c->slots || !c->free_idx || !c->q) {
		r = c->efd < 0 ? -errno : -ENOMEM;
		goto err;
	}
	for (uint32_t i = 0; i < c->nslots; i++) {
		c->slots[i].c = c;
		c->slots[i].idx = i;
		c->slots[i].iov = calloc(v->max_pages + 1, sizeof(struct iovec));
		if (!c->slots[i].iov) {
			r = -ENOMEM;
			goto err;
		}
		c->free_idx[c->nfree++] = c->nslots - 1 - i;
	}
	r = -pthread_create(&c->thr, NULL, service, c);
	if (r)
		goto err;
	o->chan = c;
	return 0;
err:
	chan_free(c);
	return r;
}

/* Manager's thread (the channel's close op): the rings are unmapped when
 * this returns, so the service thread finishes first.  Requests in flight
 * point into guest memory, which stays mapped: they complete (their
 * replies dropped), then the thread exits. */
void vsp_chan_close(struct vsp_chan *c)
{
	uint64_t one = 1;

	atomic_store(&c->stop, true);	/* replies are dropped from now on */
	(void)!write(c->efd, &one, sizeof(one));
	pthread_join(c->thr, NULL);
	c->offer->chan = NULL;
	chan_free(c);
}
