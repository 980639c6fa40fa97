/* storvsp: the storage virtualization service provider.  Serves a guest's
 * synthetic SCSI controller (Hyper-V's storvsc/storvsp protocol, "vstor")
 * over VMBus channels, routing SCSI requests to a scsi target.
 *
 * Wire facts: ../shared/notes/storvsp-protocol.md section 3 (packets,
 * versions, sizes, status codes), 1.5 (GPA-direct packets).  All structs
 * below are the wire format: packed, little-endian, sizes and offsets
 * asserted.
 *
 * Model: vsp_new() offers one SCSI controller channel on a vmbus manager.
 * Every open channel (the primary and each sub-channel the guest asks for
 * with CREATE_SUB_CHANNELS) gets its own service thread, the one producer
 * of its host->guest ring and consumer of its guest->host ring.  A request
 * lives in a preallocated slot (VSP default 256 a channel) from the
 * moment its packet is read until its completion is in the ring;
 * completions leave in the order the disks finish them.  A full ring makes
 * completions wait (pending_send_sz) for the guest, never drops them.
 *
 * Hostile guest: every packet is copied out of the ring, then validated on
 * the copy; data buffers are the guest's pages, checked one by one against
 * the partition's memory and handed to the SCSI target as an iovec into
 * guest memory (no bounce copy).  A channel whose guest breaks the framing
 * rules is closed (vmbus_chan_fail, from the manager's thread); the host
 * and the other channels carry on.  Errors in a request's meaning (a page
 * outside memory, a transfer over the maximum) fail that request only.
 *
 * Threads: vsp_new, vsp_free and the vmbus callbacks run on the vmbus
 * manager's thread; vsp_lun_add/remove, vsp_quiesce and vsp_get_stats on
 * any thread.  Return convention: 0 or -errno.  Nothing here prints.
 */
#ifndef STORVSP_STORVSP_H
#define STORVSP_STORVSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmbus/vmbus.h"

struct bdev;
struct scsi_target;

/* ---------------------------------------------------------------------- */
/* Wire formats (notes 3.1-3.6)                                            */

/* Protocol versions: major << 8 | minor. */
#define VSP_VER_WIN6	0x0200
#define VSP_VER_WIN7	0x0402
#define VSP_VER_WIN8	0x0501
#define VSP_VER_WIN8_1	0x0600
#define VSP_VER_WIN10	0x0602

enum vsp_op {
	VSP_OP_COMPLETE_IO = 1,
	VSP_OP_REMOVE_DEVICE = 2,
	VSP_OP_EXECUTE_SRB = 3,
	VSP_OP_RESET_LUN = 4,
	VSP_OP_RESET_ADAPTER = 5,
	VSP_OP_RESET_BUS = 6,
	VSP_OP_BEGIN_INITIALIZATION = 7,
	VSP_OP_END_INITIALIZATION = 8,
	VSP_OP_QUERY_PROTOCOL_VERSION = 9,
	VSP_OP_QUERY_PROPERTIES = 10,
	VSP_OP_ENUMERATE_BUS = 11,
	VSP_OP_FCHBA_DATA = 12,
	VSP_OP_CREATE_SUB_CHANNELS = 13,
};

#define VSP_FLAG_REQUEST_COMPLETION 0x1u
#define VSP_TRANS_ID_INIT  0xFFFFFFFFFFFFFFFDull /* Linux's init requests */
#define VSP_TRANS_ID_RESET 0xFFFFFFFFFFFFFFFCull /* Linux's host reset */

/* vmscsi_request: 52 bytes (Win8+); pre-Win8 ends at 0x24. */
#define VSP_SRB_LEN_WIN8     0x34
#define VSP_SRB_LEN_PRE_WIN8 0x24
#define VSP_SENSE_LEN_WIN8   0x14
#define VSP_SENSE_LEN_PRE_WIN8 0x12
#define VSP_PACKET_SIZE      64 /* 12 + 0x34 */
#define VSP_PACKET_SIZE_PRE_WIN8 48 /* 12 + 0x24 */
#define VSP_MAX_PKT_SIZE     80 /* storvsc's max_pkt_size: never send more */

enum vsp_data_in {
	VSP_DATA_OUT = 0,	/* write: guest -> device */
	VSP_DATA_IN = 1,	/* read: device -> guest */
	VSP_DATA_NONE = 2,
};

struct vsp_srb {
	uint16_t length;	/* @0 0x34 (Win8+) */
	uint8_t srb_status;	/* @2 host: VSP_SRB_* | flags */
	uint8_t scsi_status;	/* @3 host: SAM status */
	uint8_t port_number;	/* @4 guest's host number; ignored */
	uint8_t path_id;	/* @5 SCSI channel 0-7 */
	uint8_t target_id;	/* @6 0-1 */
	uint8_t lun;		/* @7 0-254 */
	uint8_t cdb_length;	/* @8 <= 16 */
	uint8_t sense_info_length; /* @9 request 0x14; completion: sense bytes */
	uint8_t data_in;	/* @10 enum vsp_data_in */
	uint8_t reserved;	/* @11 */
	uint32_t data_transfer_length; /* @12 request: buffer; completion: moved */
	union {
		uint8_t cdb[16];
		uint8_t sense_data[20];
	};			/* @16 */
	uint16_t reserve;	/* @36 Win8 extension from here */
	uint8_t queue_tag;	/* @38 */
	uint8_t queue_action;	/* @39 */
	uint32_t srb_flags;	/* @40 */
	uint32_t time_out_value; /* @44 */
	uint32_t queue_sort_key; /* @48 */
} __attribute__((packed));

struct vsp_channel_props {
	uint32_t reserved;	/* @0 */
	uint16_t max_channel_cnt; /* @4 sub-channels the host can offer */
	uint16_t reserved2;	/* @6 */
	uint32_t flags;		/* @8 VSP_PROP_MULTI_CHANNEL */
	uint32_t max_transfer_bytes; /* @12 */
	uint64_t reserved3;	/* @16 */
} __attribute__((packed));
#define VSP_PROP_MULTI_CHANNEL 0x1u

struct vsp_proto_version {
	uint16_t major_minor;	/* @0 */
	uint16_t revision;	/* @2 0 */
} __attribute__((packed));

/* vstor_packet: 12-byte header + 52-byte union. */
struct vsp_packet {
	uint32_t operation;	/* @0 enum vsp_op */
	uint32_t flags;		/* @4 guest: VSP_FLAG_REQUEST_COMPLETION; host: 0 */
	uint32_t status;	/* @8 NT status (host -> guest) */
	union {
		struct vsp_srb srb;
		struct vsp_channel_props props;
		struct vsp_proto_version version;
		uint16_t sub_channel_count;
		uint8_t raw[52];
	};			/* @12 */
} __attribute__((packed));

/* The extra header of a GPA-direct packet (after the 16-byte descriptor):
 * one range, then its PFNs (u64 each), then the vstor packet at offset8. */
struct vsp_gpa_range {
	uint32_t reserved;	/* @16 of the packet */
	uint32_t rangecount;	/* @20 1 */
	uint32_t byte_count;	/* @24 */
	uint32_t byte_offset;	/* @28 < 4096 */
} __attribute__((packed));

_Static_assert(sizeof(struct vsp_srb) == VSP_SRB_LEN_WIN8, "vmscsi_request size");
_Static_assert(offsetof(struct vsp_srb, srb_status) == 2, "srb_status");
_Static_assert(offsetof(struct vsp_srb, path_id) == 5, "path_id");
_Static_assert(offsetof(struct vsp_srb, lun) == 7, "lun");
_Static_assert(offsetof(struct vsp_srb, cdb_length) == 8, "cdb_length");
_Static_assert(offsetof(struct vsp_srb, data_in) == 10, "data_in");
_Static_assert(offsetof(struct vsp_srb, data_transfer_length) == 12, "dtl");
_Static_assert(offsetof(struct vsp_srb, cdb) == 16, "cdb");
_Static_assert(offsetof(struct vsp_srb, reserve) == VSP_SRB_LEN_PRE_WIN8, "win8 ext");
_Static_assert(offsetof(struct vsp_srb, queue_tag) == 38, "queue_tag");
_Static_assert(offsetof(struct vsp_srb, srb_flags) == 40, "srb_flags");
_Static_assert(offsetof(struct vsp_srb, time_out_value) == 44, "time_out_value");
_Static_assert(offsetof(struct vsp_srb, queue_sort_key) == 48, "queue_sort_key");
_Static_assert(sizeof(struct vsp_channel_props) == 24, "channel properties");
_Static_assert(offsetof(struct vsp_channel_props, max_channel_cnt) == 4, "max_channel_cnt");
_Static_assert(offsetof(struct vsp_channel_props, flags) == 8, "props flags");
_Static_assert(offsetof(struct vsp_channel_props, max_transfer_bytes) == 12, "max_transfer");
_Static_assert(sizeof(struct vsp_packet) == VSP_PACKET_SIZE, "vstor_packet size");
_Static_assert(offsetof(struct vsp_packet, flags) == 4, "vstor flags");
_Static_assert(offsetof(struct vsp_packet, status) == 8, "vstor status");
_Static_assert(offsetof(struct vsp_packet, srb) == 12, "vstor union");
_Static_assert(sizeof(struct vsp_gpa_range) == 16, "GPA range header");

/* SRB status (low 6 bits) and flags (notes 3.6). */
enum vsp_srb_status {
	VSP_SRB_PENDING = 0x00,
	VSP_SRB_SUCCESS = 0x01,
	VSP_SRB_ABORTED = 0x02,
	VSP_SRB_ERROR = 0x04,
	VSP_SRB_BUSY = 0x05,
	VSP_SRB_INVALID_REQUEST = 0x06,
	VSP_SRB_INVALID_PATH_ID = 0x07,
	VSP_SRB_NO_DEVICE = 0x08,
	VSP_SRB_TIMEOUT = 0x09,
	VSP_SRB_SELECTION_TIMEOUT = 0x0A,
	VSP_SRB_DATA_OVERRUN = 0x12,
	VSP_SRB_REQUEST_FLUSHED = 0x16,
	VSP_SRB_INVALID_LUN = 0x20,
	VSP_SRB_INVALID_TARGET_ID = 0x21,
	VSP_SRB_BAD_FUNCTION = 0x22,
	VSP_SRB_INTERNAL_ERROR = 0x30,
};
#define VSP_SRB_QUEUE_FROZEN   0x40u
#define VSP_SRB_AUTOSENSE_VALID 0x80u

/* NT status values of the vstor header. */
#define VSP_NT_SUCCESS			0x00000000u
#define VSP_NT_BUFFER_OVERFLOW		0x80000005u
#define VSP_NT_DEVICE_BUSY		0x80000011u
#define VSP_NT_UNSUCCESSFUL		0xC0000001u
#define VSP_NT_INVALID_PARAMETER	0xC000000Du
#define VSP_NT_INVALID_DEVICE_REQUEST	0xC0000010u
#define VSP_NT_REVISION_MISMATCH	0xC0000059u
#define VSP_NT_DEVICE_NOT_CONNECTED	0xC000009Du
#define VSP_NT_DEVICE_DOES_NOT_EXIST	0xC00000C0u
#define VSP_NT_INVALID_DEVICE_STATE	0xC0000184u
#define VSP_NT_IO_DEVICE_ERROR		0xC0000185u

/* Bytes of a COMPLETE_IO packet payload (notes 3.2, the vmscsi_size_delta
 * rule): before a version is negotiated, 12 + min(request - 12, 52), i.e.
 * min(request_bytes, 64), request_bytes being the request's payload as
 * framed (padded to 8); after it, 64 for Win8 and later, 48 before. */
uint32_t vsp_reply_size(uint16_t negotiated, uint32_t request_bytes);

/* Is this a protocol version we serve (6.2, 6.0, 5.1)? */
bool vsp_version_ok(uint16_t v);

/* ---------------------------------------------------------------------- */
/* The service                                                             */

struct vsp;

struct vsp_cfg {
	struct vmbus_mgr *mgr;	/* offers go here (manager's thread) */
	void *guest_mem;	/* the partition memory as mapped by the host */
	uint64_t guest_bytes;	/* GPAs below this are the guest's pages */
	struct vmbus_guid instance; /* the controller's instance GUID */
	uint32_t max_transfer;	/* bytes a request may move; 0: 1 MiB */
	uint16_t max_subchannels; /* 0: none offered; the default is yours */
	uint32_t slots;		/* requests in flight a channel; 0: 256 */
	uint32_t spin_us;	/* service threads poll this long before
				 * sleeping; 0: 50 */
	int cpu;		/* >= 0: pin service threads to this CPU */
};

struct vsp_stats {
	uint64_t packets;	/* guest packets handled */
	uint64_t srbs;		/* EXECUTE_SRB */
	uint64_t srb_errors;	/* completed with an SRB status other than SUCCESS */
	uint64_t rejected;	/* requests refused before reaching the target */
	uint64_t ring_full;	/* times a completion waited for ring space */
	uint64_t sleeps;	/* service thread sleeps */
	uint64_t wakes;		/* eventfd writes waking a service thread */
	uint64_t direct_replies; /* written by the thread that completed them */
	uint64_t direct_reads;	/* packets read on the manager's thread */
	uint64_t chan_failed;	/* channels closed for breaking the rules */
	uint64_t notifies;	/* ENUMERATE_BUS / REMOVE_DEVICE sent */
	uint32_t channels_open;
	uint32_t subchannels_offered;
	uint32_t inflight;	/* requests in slots now */
	uint16_t version;	/* negotiated protocol version, 0 = none */
	char last_error[160];	/* why the last channel was failed/request refused */
};

/* Offer a SCSI controller on cfg->mgr (call on the manager's thread).
 * The target is created empty; add LUNs with vsp_lun_add. */
int vsp_new(const struct vsp_cfg *cfg, struct vsp **out);
/* The channels must be closed (vmbus_mgr_free / reset did it); frees the
 * target (removing its LUNs: the caller closes their disks after). */
void vsp_free(struct vsp *v);
struct scsi_target *vsp_target(struct vsp *v);

/* Hot add / remove a LUN (0..63) and tell the guest (ENUMERATE_BUS on
 * add, REMOVE_DEVICE on remove, from the primary channel's thread).
 * vsp_lun_remove returns when the LUN's commands ended: bd may then be
 * closed.  Any thread. */
int vsp_lun_add(struct vsp *v, uint32_t lun, struct bdev *bd, unsigned flags);
int vsp_lun_remove(struct vsp *v, uint32_t lun);

/* Stop taking new requests on every channel and wait up to timeout_ms for
 * those in flight to complete and their completions to reach the rings.
 * 0, or -ETIMEDOUT.  Any thread; irreversible. */
int vsp_quiesce(struct vsp *v, int timeout_ms);

void vsp_get_stats(struct vsp *v, struct vsp_stats *st);

#endif
