/* vsp-int: what the files of storvsp/ share.  Private.
 *
 *   vsp.c   the controller: offers, sub-channels, LUNs, quiesce, stats
 *   chan.c  a channel's service thread: slots, the ring loop, completions
 *   proto.c vstor operations: the dispatch table and the init state machine
 *   srb.c   EXECUTE_SRB: GPA-direct checks, the iovec, SCSI results
 */
#ifndef STORVSP_VSP_INT_H
#define STORVSP_VSP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/uio.h>

#include "scsi/scsi.h"
#include "storvsp/storvsp.h"

#define VSP_MAX_SUBCHANNELS 15
#define VSP_DEFAULT_SLOTS 256
#define VSP_DEFAULT_MAX_TRANSFER (1u << 20)
#define VSP_INITIATOR 1		/* one guest: one I_T nexus on every channel */

/* Protocol state of the controller (kept by the primary channel). */
enum vsp_state {
	VSP_ST_BEGIN,		/* waiting for BEGIN_INITIALIZATION */
	VSP_ST_VERSION,		/* QUERY_PROTOCOL_VERSION until one is accepted */
	VSP_ST_PROPERTIES,	/* QUERY_PROPERTIES */
	VSP_ST_END,		/* END_INITIALIZATION */
	VSP_ST_READY,
};

struct vsp_chan;

/* A request slot: one guest packet from read to completion written. */
struct vsp_slot {
	struct scsi_cmd cmd;
	struct vsp_chan *c;
	uint64_t trans_id;
	uint32_t reply_len;	/* bytes of reply to send */
	uint32_t idx;
	uint32_t next_ready;	/* ready stack: the next slot's idx + 1, 0 = end */
	struct vsp_packet reply;
	struct vsp_srb req;	/* the request's SRB (copy) */
	struct iovec *iov;	/* cfg max pages + 1 entries */
};

/* One offer (primary = index 0, sub-channels 1..n): persists across opens. */
struct vsp_offer {
	struct vsp *v;
	uint16_t index;
	uint32_t relid;
	struct vsp_chan *chan;	/* while open (manager's thread) */
};

/* An open channel and its service thread.
 *
 * Ownership: `own` is the channel's service token.  The service thread
 * holds it while awake and releases it (after setting `sleeping`) to
 * sleep.  While it sleeps another thread may take the token with a
 * trylock and serve the channel itself for one pass, saving a hand-off:
 * a disk's completion thread writes its replies straight into the
 * host->guest ring, the vmbus manager's thread reads the requests the
 * guest signalled.  So each ring still has one producer and one consumer
 * at a time; fields marked (token) are used only by the token's holder. */
struct vsp_chan {
	struct vsp *v;
	struct vsp_offer *offer;
	struct vmbus_chan *vc;
	struct ring *in, *out;	/* (token) */
	pthread_t thr;
	int efd;		/* wakes the service thread */
	pthread_mutex_t own;	/* the service token */
	atomic_bool stop;	/* close: exit once nothing is in flight */
	atomic_bool sleeping;	/* the service thread released the token to
				 * sleep (or is about to) */
	atomic_bool wake_pending; /* efd written, the thread not yet awake */
	atomic_bool failed;	/* guest broke the rules: rings untouched since */
	bool fail_posted;	/* service thread only */
	bool out_blocked;	/* (token) waiting for the guest to free space */

	uint8_t *pkt;		/* (token) copy-out buffer */
	uint32_t pkt_max;
	struct vsp_slot *slots;
	uint32_t nslots;
	uint32_t *free_idx, nfree; /* (token) */
	/* completions ready to write: a lock-free stack pushed by any
	 * thread (slot idx + 1, linked through next_ready, 0 = empty),
	 * taken whole by the token's holder into the FIFO q (token) */
	_Atomic uint32_t ready;
	uint32_t *q, q_head, q_len;
	atomic_uint inflight;	/* slots in use */
};

struct vsp {
	struct vsp_cfg cfg;
	struct scsi_target *t;
	uint64_t guest_pages;
	uint32_t max_pages;	/* PFNs a transfer of max_transfer may span */
	struct vsp_offer offers[1 + VSP_MAX_SUBCHANNELS];
	uint16_t subs_offered;	/* manager's thread */
	uint32_t subs_epoch;
	bool drop_posted;	/* drop_subs_posted pending (manager's thread) */
	uint32_t drop_epoch;	/* epoch when the primary closed */
	/* protocol state: written by the primary's thread, read by others */
	_Atomic int state;	/* enum vsp_state */
	_Atomic uint16_t version;
	atomic_uint notify;	/* VSP_NOTIFY_* for the primary to send */
	atomic_bool quiesce;

	pthread_mutex_t mu;	/* chans[], stats */
	struct vsp_chan *chans[1 + VSP_MAX_SUBCHANNELS];
	struct vsp_stats st;
};

#define VSP_NOTIFY_ENUMERATE 0x1u
#define VSP_NOTIFY_REMOVE    0x2u

/* vsp.c */
void vsp_count(struct vsp *v, uint64_t *field, uint64_t n);
void vsp_note(struct vsp *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ask the manager's thread to offer n more sub-channels (service thread). */
int vsp_offer_subchannels(struct vsp *v, uint16_t n);

/* chan.c */
int vsp_chan_open(struct vsp_offer *o, struct vmbus_chan *vc);
void vsp_chan_close(struct vsp_chan *c);
void vsp_chan_wake(struct vsp_chan *c);
/* The guest signalled the channel (manager's thread): serve it here
 * when its thread sleeps, else wake that. */
void vsp_chan_signalled(struct vsp_chan *c);
/* Queue slot s's reply for writing (any thread); written at once when
 * the service thread sleeps and the token is free. */
void vsp_slot_ready(struct vsp_slot *s);
/* The guest broke the rules: stop serving this channel (service thread). */
void vsp_chan_fail(struct vsp_chan *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* proto.c: handle one copied-out packet in slot s (service thread).
 * Returns 0 when the slot was taken (it completes through
 * vsp_slot_ready) or -EPROTO after vsp_chan_fail. */
int vsp_handle_packet(struct vsp_chan *c, struct vsp_slot *s,
		      const struct ring_pkt *pkt, const uint8_t *buf);
/* A reply header for slot s: COMPLETE_IO with status, sized by version. */
void vsp_reply_init(struct vsp_chan *c, struct vsp_slot *s, uint32_t req_bytes,
		    uint32_t nt_status);

/* srb.c */
int vsp_execute_srb(struct vsp_chan *c, struct vsp_slot *s,
		    const struct ring_pkt *pkt, const uint8_t *buf,
		    const struct vsp_packet *vp);

#endif
