/* vmbus: VMBus channel management (host side), the partition transport
 * that carries it to an outside process, and a guest-side client library.
 *
 * Wire formats: ../shared/notes/storvsp-protocol.md section 2 (messages,
 * little-endian, packed, offsets from the start of the message including
 * its 8-byte header).  The transport: docs/vmbus-transport.md.  The ring
 * itself is vmbus/ring.h.
 *
 * Return convention: int 0 or -errno; pointers NULL with errno set.
 * Nothing here prints or exits; vmbus_last_error() says what went wrong
 * last on this thread (protocol violations by the guest included).
 */
#ifndef VMBUS_VMBUS_H
#define VMBUS_VMBUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmbus/ring.h"

/* ---------------------------------------------------------------------- */
/* Wire formats                                                            */

/* A GUID in wire order: first three fields little-endian. */
struct vmbus_guid {
	uint8_t b[16];
};

/* ba6163d9-04a1-4d29-b605-72e2ffb1dc7f: synthetic SCSI controller */
#define VMBUS_GUID_SCSI { { 0xd9, 0x63, 0x61, 0xba, 0xa1, 0x04, 0x29, 0x4d, \
			    0xb6, 0x05, 0x72, 0xe2, 0xff, 0xb1, 0xdc, 0x7f } }
/* 35fa2e29-ea23-4236-96ae-3a6ebacba440: VSS (backup) integration service */
#define VMBUS_GUID_VSS  { { 0x29, 0x2e, 0xfa, 0x35, 0x23, 0xea, 0x36, 0x42, \
			    0x96, 0xae, 0x3a, 0x6e, 0xba, 0xcb, 0xa4, 0x40 } }

#define VMBUS_VERSION(maj, min) ((uint32_t)(maj) << 16 | (uint32_t)(min))
#define VMBUS_MAX_MSG_SIZE 240	/* a message, its 8-byte header included */
#define VMBUS_MAX_RELID 2047	/* Linux keeps relids below 2048 */
#define VMBUS_GPADL_MAX_PFNS 8190 /* range_buflen is u16: (65535 - 8) / 8 */
#define VMBUS_GPADL_HEADER_PFNS 26 /* PFNs that fit one GPADL_HEADER */
#define VMBUS_GPADL_BODY_PFNS 28   /* ... one GPADL_BODY */

enum vmbus_msgtype {
	VMBUS_MSG_OFFERCHANNEL = 1,
	VMBUS_MSG_RESCIND_CHANNELOFFER = 2,
	VMBUS_MSG_REQUESTOFFERS = 3,
	VMBUS_MSG_ALLOFFERS_DELIVERED = 4,
	VMBUS_MSG_OPENCHANNEL = 5,
	VMBUS_MSG_OPENCHANNEL_RESULT = 6,
	VMBUS_MSG_CLOSECHANNEL = 7,
	VMBUS_MSG_GPADL_HEADER = 8,
	VMBUS_MSG_GPADL_BODY = 9,
	VMBUS_MSG_GPADL_CREATED = 10,
	VMBUS_MSG_GPADL_TEARDOWN = 11,
	VMBUS_MSG_GPADL_TORNDOWN = 12,
	VMBUS_MSG_RELID_RELEASED = 13,
	VMBUS_MSG_INITIATE_CONTACT = 14,
	VMBUS_MSG_VERSION_RESPONSE = 15,
	VMBUS_MSG_UNLOAD = 16,
	VMBUS_MSG_UNLOAD_RESPONSE = 17,
};

#define VMBUS_PACKED __attribute__((packed))
#define VMBUS_WIRE(type, size) \
	_Static_assert(sizeof(struct type) == (size), #type " size")
#define VMBUS_AT(type, field, off) \
	_Static_assert(offsetof(struct type, field) == (off), #type "." #field)

struct vmbus_msg_hdr {
	uint32_t msgtype;	/* @0 enum vmbus_msgtype */
	uint32_t padding;	/* @4 */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_hdr, 8);

/* INITIATE_CONTACT (G->H, 40) */
struct vmbus_msg_initiate_contact {
	struct vmbus_msg_hdr hdr;
	uint32_t version_requested; /* @8 major << 16 | minor */
	uint32_t target_vcpu;	    /* @12 VP for control messages */
	uint64_t interrupt_page;    /* @16 < 5.0; >= 5.0: msg_sint u8, msg_vtl u8, 6 reserved */
	uint64_t monitor_page1;	    /* @24 parent -> child */
	uint64_t monitor_page2;	    /* @32 child -> parent */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_initiate_contact, 40);
VMBUS_AT(vmbus_msg_initiate_contact, version_requested, 8);
VMBUS_AT(vmbus_msg_initiate_contact, target_vcpu, 12);
VMBUS_AT(vmbus_msg_initiate_contact, interrupt_page, 16);
VMBUS_AT(vmbus_msg_initiate_contact, monitor_page1, 24);
VMBUS_AT(vmbus_msg_initiate_contact, monitor_page2, 32);

/* VERSION_RESPONSE (H->G, 16) */
struct vmbus_msg_version_response {
	struct vmbus_msg_hdr hdr;
	uint8_t version_supported; /* @8 0 = rejected */
	uint8_t connection_state;  /* @9 0 = ok */
	uint16_t padding;	   /* @10 */
	uint32_t msg_conn_id;	   /* @12 connection id for later messages (>= 5.0) */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_version_response, 16);
VMBUS_AT(vmbus_msg_version_response, version_supported, 8);
VMBUS_AT(vmbus_msg_version_response, connection_state, 9);
VMBUS_AT(vmbus_msg_version_response, msg_conn_id, 12);

/* OFFERCHANNEL (H->G, 196) */
struct vmbus_msg_offer {
	struct vmbus_msg_hdr hdr;
	struct vmbus_guid if_type;     /* @8 device class */
	struct vmbus_guid if_instance; /* @24 this device */
	uint64_t reserved1;	       /* @40 */
	uint64_t reserved2;	       /* @48 */
	uint16_t chn_flags;	       /* @56 */
	uint16_t mmio_megabytes;       /* @58 */
	uint8_t user_def[120];	       /* @60 */
	uint16_t sub_channel_index;    /* @180 0 = primary */
	uint16_t reserved3;	       /* @182 */
	uint32_t child_relid;	       /* @184 */
	uint8_t monitorid;	       /* @188 */
	uint8_t monitor_allocated;     /* @189 bit 0; we always send 0 */
	uint16_t is_dedicated_interrupt; /* @190 bit 0 */
	uint32_t connection_id;	       /* @192 guest->host signal id */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_offer, 196);
VMBUS_AT(vmbus_msg_offer, if_type, 8);
VMBUS_AT(vmbus_msg_offer, if_instance, 24);
VMBUS_AT(vmbus_msg_offer, chn_flags, 56);
VMBUS_AT(vmbus_msg_offer, mmio_megabytes, 58);
VMBUS_AT(vmbus_msg_offer, user_def, 60);
VMBUS_AT(vmbus_msg_offer, sub_channel_index, 180);
VMBUS_AT(vmbus_msg_offer, child_relid, 184);
VMBUS_AT(vmbus_msg_offer, monitorid, 188);
VMBUS_AT(vmbus_msg_offer, monitor_allocated, 189);
VMBUS_AT(vmbus_msg_offer, is_dedicated_interrupt, 190);
VMBUS_AT(vmbus_msg_offer, connection_id, 192);

/* RESCIND_CHANNELOFFER (H->G), CLOSECHANNEL (G->H), RELID_RELEASED
 * (G->H): 12 bytes */
struct vmbus_msg_relid {
	struct vmbus_msg_hdr hdr;
	uint32_t child_relid;	/* @8 */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_relid, 12);
VMBUS_AT(vmbus_msg_relid, child_relid, 8);

/* OPENCHANNEL (G->H, 148) */
struct vmbus_msg_open {
	struct vmbus_msg_hdr hdr;
	uint32_t child_relid;	   /* @8 */
	uint32_t openid;	   /* @12 echoed in the result */
	uint32_t ringbuffer_gpadl; /* @16 GPADL holding both rings */
	uint32_t target_vp;	   /* @20 VP for this channel's interrupts */
	uint32_t downstream_off;   /* @24 host->guest ring's first page in the GPADL */
	uint8_t userdata[120];	   /* @28 */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_open, 148);
VMBUS_AT(vmbus_msg_open, openid, 12);
VMBUS_AT(vmbus_msg_open, ringbuffer_gpadl, 16);
VMBUS_AT(vmbus_msg_open, target_vp, 20);
VMBUS_AT(vmbus_msg_open, downstream_off, 24);
VMBUS_AT(vmbus_msg_open, userdata, 28);

/* OPENCHANNEL_RESULT (H->G, 20) */
struct vmbus_msg_open_result {
	struct vmbus_msg_hdr hdr;
	uint32_t child_relid;	/* @8 */
	uint32_t openid;	/* @12 */
	uint32_t status;	/* @16 0 = ok */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_open_result, 20);
VMBUS_AT(vmbus_msg_open_result, status, 16);

/* GPADL_HEADER (G->H, 28 + 8 * pfns); the PFNs follow at @28 */
struct vmbus_msg_gpadl_header {
	struct vmbus_msg_hdr hdr;
	uint32_t child_relid;	/* @8 */
	uint32_t gpadl;		/* @12 guest-chosen handle */
	uint16_t range_buflen;	/* @16 8 + 8 * all PFNs (header and bodies) */
	uint16_t rangecount;	/* @18 1 */
	uint32_t byte_count;	/* @20 range[0] */
	uint32_t byte_offset;	/* @24 range[0], < 4096 */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_gpadl_header, 28);
VMBUS_AT(vmbus_msg_gpadl_header, gpadl, 12);
VMBUS_AT(vmbus_msg_gpadl_header, range_buflen, 16);
VMBUS_AT(vmbus_msg_gpadl_header, rangecount, 18);
VMBUS_AT(vmbus_msg_gpadl_header, byte_count, 20);
VMBUS_AT(vmbus_msg_gpadl_header, byte_offset, 24);

/* GPADL_BODY (G->H, 16 + 8 * pfns); the PFNs follow at @16 */
struct vmbus_msg_gpadl_body {
	struct vmbus_msg_hdr hdr;
	uint32_t msgnumber;	/* @8 reserved */
	uint32_t gpadl;		/* @12 */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_gpadl_body, 16);
VMBUS_AT(vmbus_msg_gpadl_body, gpadl, 12);

/* GPADL_CREATED (H->G, 20) */
struct vmbus_msg_gpadl_created {
	struct vmbus_msg_hdr hdr;
	uint32_t child_relid;	  /* @8 */
	uint32_t gpadl;		  /* @12 */
	uint32_t creation_status; /* @16 0 = ok */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_gpadl_created, 20);
VMBUS_AT(vmbus_msg_gpadl_created, creation_status, 16);

/* GPADL_TEARDOWN (G->H, 16) */
struct vmbus_msg_gpadl_teardown {
	struct vmbus_msg_hdr hdr;
	uint32_t child_relid;	/* @8 */
	uint32_t gpadl;		/* @12 */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_gpadl_teardown, 16);

/* GPADL_TORNDOWN (H->G, 12) */
struct vmbus_msg_gpadl_torndown {
	struct vmbus_msg_hdr hdr;
	uint32_t gpadl;		/* @8 */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_msg_gpadl_torndown, 12);

/* Status values we put in GPADL_CREATED / OPENCHANNEL_RESULT (any
 * non-zero value is a failure to Linux). */
#define VMBUS_STATUS_OK		0u
#define VMBUS_STATUS_FAIL	0xC0000001u	/* STATUS_UNSUCCESSFUL */

/* ---------------------------------------------------------------------- */
/* Host-side channel manager (vmbus/channel.c)                              */

struct vmbus_mgr;
struct vmbus_chan;

/* What a device (storvsp, VSS) provides.  Called on the thread that feeds
 * messages (vmbus_mgr_handle / vmbus_host_run). */
struct vmbus_dev_ops {
	/* The guest opened the channel: its rings are mapped
	 * (vmbus_chan_in/out).  Return 0, or -errno to refuse (the guest
	 * gets a failed OPENCHANNEL_RESULT). */
	int (*open)(void *opaque, struct vmbus_chan *ch);
	/* The channel is closing (guest close, teardown, rescind, unload,
	 * failure, detach): stop using its rings; they are unmapped after. */
	void (*close)(void *opaque, struct vmbus_chan *ch);
	/* The guest signalled the channel (may be spurious). */
	void (*signal)(void *opaque, struct vmbus_chan *ch);
};

/* How the manager reaches the guest (the transport fills it). */
struct vmbus_mgr_cfg {
	int mem_fd;		/* partition memory (memfd), mapped MAP_SHARED */
	uint64_t guest_pages;	/* PFNs a GPADL may name: [0, guest_pages) */
	/* queue one message to the guest; 0 or -errno */
	int (*send)(void *opaque, const void *msg, size_t len);
	/* signal the guest for channel relid */
	void (*signal)(void *opaque, uint32_t relid);
	/* optional, any thread: make the manager's thread call
	 * vmbus_mgr_run_posted soon (vmbus_mgr_post) */
	void (*wake)(void *opaque);
	void *opaque;
};

/* Statistics of protocol violations seen (for tests and logs). */
struct vmbus_mgr_stats {
	uint64_t msgs;		/* messages handled */
	uint64_t dropped;	/* malformed, unknown or out-of-state: ignored */
	uint64_t gpadl_refused; /* GPADLs answered with a failure status */
	uint64_t open_refused;	/* OPENCHANNEL answered with a failure status */
	uint64_t chan_failed;	/* channels closed by vmbus_chan_fail */
};

int vmbus_mgr_new(const struct vmbus_mgr_cfg *cfg, struct vmbus_mgr **out);
/* Closes every channel (device close callbacks run) and frees. */
void vmbus_mgr_free(struct vmbus_mgr *m);

/* Offer a device: returns its relid (>= 1) or -errno.  Offered now when
 * the guest already asked for offers (hot add), else on REQUESTOFFERS. */
int vmbus_mgr_add_device(struct vmbus_mgr *m, const struct vmbus_guid *type,
			 const struct vmbus_guid *instance,
			 const struct vmbus_dev_ops *ops, void *opaque);
/* Offer sub-channel `index` (>= 1) of the primary channel `primary`:
 * same interface type and instance, sub_channel_index = index (notes
 * 2.5 step 4).  Returns its relid or -errno; offered at once when the
 * guest already asked for offers.  Sub-channels last one connection:
 * vmbus_mgr_reset frees them (see vmbus_mgr_epoch). */
int vmbus_mgr_add_subchannel(struct vmbus_mgr *m, uint32_t primary,
			     uint16_t index, const struct vmbus_dev_ops *ops,
			     void *opaque);
/* Counts resets (guest detach, INITIATE_CONTACT again, UNLOAD): a device
 * that remembers sub-channel relids knows they were freed when it
 * changed. */
uint32_t vmbus_mgr_epoch(const struct vmbus_mgr *m);

/* Any thread: queue fn(arg) to run on the manager's thread (the next
 * vmbus_mgr_run_posted, which vmbus_host_run calls), and wake it through
 * cfg.wake.  For device threads that need the manager (offers, failing a
 * channel).  0 or -ENOMEM. */
int vmbus_mgr_post(struct vmbus_mgr *m, void (*fn)(void *arg), void *arg);
void vmbus_mgr_run_posted(struct vmbus_mgr *m);

/* Hot remove: close the channel if open, send RESCIND_CHANNELOFFER; the
 * relid is freed when the guest answers RELID_RELEASED (or on unload). */
int vmbus_mgr_rescind(struct vmbus_mgr *m, uint32_t relid);

/* Handle one message from the guest (len bytes, copied out of guest
 * memory by the caller).  Malformed or out-of-state messages are counted
 * and ignored (0 returned): the guest cannot make this fail; a negative
 * return is a host-side failure (out of memory, send failed). */
int vmbus_mgr_handle(struct vmbus_mgr *m, const void *msg, size_t len);

/* The guest signalled relid: calls that device's signal op if open. */
void vmbus_mgr_signal(struct vmbus_mgr *m, uint32_t relid);

/* The guest went away: close everything, forget GPADLs and the version;
 * offers stay registered for the next guest. */
void vmbus_mgr_reset(struct vmbus_mgr *m);

uint32_t vmbus_mgr_version(const struct vmbus_mgr *m); /* 0 = not connected */
void vmbus_mgr_get_stats(const struct vmbus_mgr *m, struct vmbus_mgr_stats *st);

/* An open channel, as its device sees it. */
struct ring *vmbus_chan_in(struct vmbus_chan *ch);  /* guest -> host: we consume */
struct ring *vmbus_chan_out(struct vmbus_chan *ch); /* host -> guest: we produce */
uint32_t vmbus_chan_relid(const struct vmbus_chan *ch);
/* Signal the guest (after ring_write said so, or ring_commit did). */
void vmbus_chan_signal(struct vmbus_chan *ch);
/* The guest broke the channel's rules (corrupt ring, bad packet): close
 * it on the host side (the device's close op runs, now or when the
 * current callback returns).  The guest may close and re-open it. */
void vmbus_chan_fail(struct vmbus_chan *ch);

/* Text of the last error recorded on this thread ("" when none). */
const char *vmbus_last_error(void);

/* ---------------------------------------------------------------------- */
/* Partition transport (docs/vmbus-transport.md)                            */

#define VMBUS_XPORT_MAGIC   0x3154525058424d56ull /* "VMBXPRT1" as bytes */
#define VMBUS_XPORT_VERSION 1u
#define VMBUS_XPORT_MSG_RING_BYTES (5 * RING_PAGE_SIZE) /* each message ring */
#define VMBUS_XPORT_PAGES   11u	/* event page + two message rings, at the top */
#define VMBUS_XPORT_FLAG_BYTES 256 /* 2048 bits, one per relid; 0 = messages */

/* The hello the host sends on attach (with three fds: memory, the
 * guest->host eventfd, the host->guest eventfd). */
struct vmbus_xport_hello {
	uint64_t magic;		/* @0 VMBUS_XPORT_MAGIC */
	uint32_t version;	/* @8 VMBUS_XPORT_VERSION */
	uint32_t page_size;	/* @12 4096 */
	uint64_t mem_bytes;	/* @16 size of the memory fd */
	uint64_t guest_bytes;	/* @24 GPAs below this are the guest's own */
	uint64_t event_gpa;	/* @32 event flags page */
	uint64_t msg_g2h_gpa;	/* @40 guest -> host message ring */
	uint64_t msg_h2g_gpa;	/* @48 host -> guest message ring */
	uint32_t msg_ring_bytes; /* @56 bytes of each message ring */
	uint32_t reserved;	/* @60 0 */
} VMBUS_PACKED;
VMBUS_WIRE(vmbus_xport_hello, 64);
VMBUS_AT(vmbus_xport_hello, event_gpa, 32);
VMBUS_AT(vmbus_xport_hello, msg_ring_bytes, 56);

/* Host side (vmbus/host.c). */
struct vmbus_host;

/* A partition of mem_bytes (multiple of 4096, > the transport pages) in a
 * new memfd, its message rings formatted, no guest attached. */
int vmbus_host_new(uint64_t mem_bytes, struct vmbus_host **out);
void vmbus_host_free(struct vmbus_host *h);
struct vmbus_mgr *vmbus_host_mgr(struct vmbus_host *h);
/* Listen on a unix socket path (removed first if it exists). */
int vmbus_host_listen(struct vmbus_host *h, const char *path);
/* Wait up to timeout_ms (-1 = forever) for a guest to attach; sends the
 * hello.  -ETIMEDOUT, -EBUSY if one is attached. */
int vmbus_host_accept(struct vmbus_host *h, int timeout_ms);
/* Serve: wait up to timeout_ms for the guest's doorbell or its
 * departure, then handle every message and channel signal.  Returns 0,
 * -ENOTCONN when the guest detached (the manager is reset), -errno on
 * host failures. */
int vmbus_host_run(struct vmbus_host *h, int timeout_ms);
/* The partition memory as the host maps it; *guest_bytes: the part the
 * guest owns (GPAs below it), where its data buffers live. */
void *vmbus_host_guest_mem(struct vmbus_host *h, uint64_t *guest_bytes);
/* The fds to poll for vmbus_host_run (doorbell, socket); -1 if none. */
int vmbus_host_event_fd(const struct vmbus_host *h);

/* The transport over a VM's own RAM: the VMM gives the memory (its memfd
 * and its mapping, mem_bytes long; the top VMBUS_XPORT_PAGES pages become
 * the event page and the message rings, so the guest must keep out of
 * them), turns vmbus_host_event_fd() into a guest doorbell (the guest sets
 * its flag bit in the event page, then rings it), and wakes the guest with
 * `wake` (any thread; after the host->guest flag bit is set).  Signals are
 * suppressed the VMBus way (interrupt_mask, pending_send_sz) by the rings.
 * The guest is attached from the start: vmbus_host_run serves it, and
 * returns -EPROTO when it broke its message ring (everything was reset;
 * the guest may start over).  The memory stays the VMM's. */
struct vmbus_host_vm_cfg {
	int mem_fd;		/* the RAM memfd (duplicated: the caller keeps its own) */
	void *mem;		/* the VMM's MAP_SHARED mapping of [0, mem_bytes) */
	uint64_t mem_bytes;
	void (*wake)(void *opaque);
	void *opaque;
};
int vmbus_host_new_vm(const struct vmbus_host_vm_cfg *cfg, struct vmbus_host **out);
/* Where the transport lies (the hello a socket guest would receive). */
void vmbus_host_layout(const struct vmbus_host *h, struct vmbus_xport_hello *out);

/* Guest side (vmbus/guest.c): a client library for a process standing in
 * for a guest.  Single-threaded. */
struct vmbus_guest;

struct vmbus_guest_chan {
	uint32_t relid;
	struct ring out;	/* guest -> host (we produce) */
	struct ring in;		/* host -> guest (we consume) */
};

int vmbus_guest_attach(const char *path, struct vmbus_guest **out);
void vmbus_guest_detach(struct vmbus_guest *g);
/* The partition memory (guest_bytes usable from offset 0). */
void *vmbus_guest_mem(struct vmbus_guest *g);
uint64_t vmbus_guest_pages(const struct vmbus_guest *g);
/* Send one message (<= 240 bytes); waits (bounded) for ring space. */
int vmbus_guest_post(struct vmbus_guest *g, const void *msg, size_t len);
/* Receive one message into buf: its length, or -ETIMEDOUT. */
int vmbus_guest_recv(struct vmbus_guest *g, void *buf, size_t max, int timeout_ms);
/* Signal the host for relid (0: message ring). */
void vmbus_guest_signal(struct vmbus_guest *g, uint32_t relid);
/* Wait until the host signalled relid (or timeout: -ETIMEDOUT); spins
 * briefly on the ring first, then sleeps on the doorbell. */
int vmbus_guest_wait(struct vmbus_guest *g, struct vmbus_guest_chan *ch,
		     int timeout_ms);
/* Attach ring views for an opened channel whose GPADL is pages
 * [first_pfn, first_pfn + pages) with the host->guest ring at page off. */
int vmbus_guest_chan_init(struct vmbus_guest *g, struct vmbus_guest_chan *ch,
			  uint32_t relid, uint64_t first_pfn, uint32_t pages,
			  uint32_t off);

#endif
