/* gvmbus: the guest's side of VMBus over the VMM's partition transport
 * (docs/vmbus-transport.md; the boot page says where it lies): contact
 * with version fallback, offers, GPADLs, opening channels, signals and the
 * one way to wait (rings masked while busy, unmasked and re-checked before
 * sleeping, the sleep conditional on wake_seq[0]).
 *
 * Freestanding, single-threaded (vCPU 0).  Functions return 0 or a
 * negative GV_E* code and print what went wrong on the console.
 */
#ifndef GUEST_GVMBUS_H
#define GUEST_GVMBUS_H

#include <stdbool.h>
#include <stdint.h>

#include "vmbus/ring.h"
#include "vmbus/vmbus.h"

enum { GV_E_PROTO = -1, GV_E_NOMEM = -2, GV_E_NODEV = -3, GV_E_REFUSED = -4,
       GV_E_RING = -5, GV_E_STOP = -6 };

struct gv_chan {
	uint32_t relid;
	uint32_t gpadl;
	struct ring out;	/* guest -> host: we produce */
	struct ring in;		/* host -> guest: we consume (masked while busy) */
};

/* Maps the transport from the boot page, INITIATE_CONTACT (5.2 first,
 * falling back), REQUESTOFFERS; remembers the offers. */
int gv_connect(void);
/* The relid of the first offer of interface `type` with sub-channel index
 * 0, or 0 when none was offered. */
uint32_t gv_find_offer(const struct vmbus_guid *type);
/* GPADL over 2 * ring_pages fresh pages, OPENCHANNEL; ring views in c. */
int gv_open(struct gv_chan *c, uint32_t relid, uint32_t ring_pages);
/* Write one packet on the channel; signals the host when the ring says
 * so.  GV_E_RING when there is no room now. */
int gv_send(struct gv_chan *c, uint16_t type, uint16_t flags, uint64_t trans_id,
	    uint32_t hdr_len, const void *data, uint32_t len);
/* Signal the host for relid (0: the message ring): flag, doorbell. */
void gv_signal(uint32_t relid);
/* Sleep until the host may have written to one of the n channels or the
 * message ring (or the VMM asks us to stop): unmask, re-check, sleep,
 * mask again.  Returns at once when something is there. */
void gv_idle(struct gv_chan *const *chans, int n);
/* Make gv_idle() always wait for channel c too (a service, such as VSS,
 * whose packets must wake the guest whatever it waits for).  At most
 * GV_MAX_WATCH; false when full. */
#define GV_MAX_WATCH 4
bool gv_watch(struct gv_chan *c);
/* Page-aligned memory from the guest's free area; NULL when out. */
void *gv_alloc(uint64_t bytes);
/* Has the VMM asked us to stop? */
bool gv_stop_requested(void);
/* Monotonic nanoseconds from the TSC. */
uint64_t gv_now_ns(void);

#endif
