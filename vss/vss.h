/* vss: the VSS (backup) integration service, host side, and the
 * coordinator that takes a snapshot of a running guest's disks.
 *
 * Wire facts: ../shared/notes/storvsp-protocol.md section 5 (framing,
 * negotiation, VSS messages, what Linux answers), checked against Linux
 * include/linux/hyperv.h (vmbuspipe_hdr, icmsg_hdr, icmsg_negotiate),
 * include/uapi/linux/hyperv.h (hv_vss_msg), drivers/hv/channel_mgmt.c
 * (vmbus_prep_negotiate_resp) and drivers/hv/hv_snapshot.c.  All integers
 * little-endian; every struct below is the wire format, packed, sizes and
 * offsets asserted.
 *
 * This header includes only <stdint.h>, <stddef.h> and <stdbool.h>: the
 * codec half (vss/wire.c, freestanding: no libc, no errno, status enums)
 * is compiled into a small guest too.  The host half (vss/chan.c,
 * vss/coord.c) returns 0 or -errno and never prints.
 *
 * Every IC packet is a VMBus in-band packet whose payload is:
 *   pipe header (8) | icmsg header (20) | body
 * The host sends requests (icflags TRANSACTION|REQUEST); the guest answers
 * with the same buffer, same length, icflags TRANSACTION|RESPONSE, status
 * set, echoing the VMBus trans_id.  One transaction at a time: Linux does
 * not read the ring while one is in progress.
 */
#ifndef VSS_VSS_H
#define VSS_VSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------- */
/* Wire formats                                                            */

#define VSS_PACKED __attribute__((packed))
#define VSS_WIRE(type, size) \
	_Static_assert(sizeof(struct type) == (size), #type " size")
#define VSS_AT(type, field, off) \
	_Static_assert(offsetof(struct type, field) == (off), #type "." #field)

/* 35fa2e29-ea23-4236-96ae-3a6ebacba440 in wire order (= VMBUS_GUID_VSS) */
#define VSS_GUID_BYTES { 0x29, 0x2e, 0xfa, 0x35, 0x23, 0xea, 0x36, 0x42, \
			 0x96, 0xae, 0x3a, 0x6e, 0xba, 0xcb, 0xa4, 0x40 }

#define VSS_PIPE_FLAG_DATA 1u	/* pipe header flags the host writes */

enum vss_icmsg_type {
	VSS_ICMSG_NEGOTIATE = 0,
	VSS_ICMSG_HEARTBEAT = 1,
	VSS_ICMSG_KVP = 2,
	VSS_ICMSG_SHUTDOWN = 3,
	VSS_ICMSG_TIMESYNC = 4,
	VSS_ICMSG_VSS = 5,
};

#define VSS_ICF_TRANSACTION 0x1u
#define VSS_ICF_REQUEST     0x2u
#define VSS_ICF_RESPONSE    0x4u

/* VSS operations (hv_vss_msg.vss_hdr.operation). */
enum vss_op {
	VSS_OP_CREATE = 0,
	VSS_OP_DELETE = 1,
	VSS_OP_HOT_BACKUP = 2,
	VSS_OP_GET_DM_INFO = 3,
	VSS_OP_BU_COMPLETE = 4,
	VSS_OP_FREEZE = 5,
	VSS_OP_THAW = 6,
	VSS_OP_AUTO_RECOVER = 7,
};

/* Status (HRESULT) values in icmsg_hdr.status. */
#define VSS_S_OK		0x00000000u
#define VSS_E_FAIL		0x80004005u
#define VSS_S_CONT		0x80070103u
#define VSS_E_NOT_SUPPORTED	0x80070032u
#define VSS_E_INVALIDARG	0x80070057u

#define VSS_HBU_NO_AUTO_RECOVERY 0x5u	/* HOT_BACKUP reply flags (Linux) */

#define VSS_MAX_PKT 8192u	/* Linux's receive buffer: never send more */
#define VSS_NEGOTIATE_MAX_COUNT 100u /* Linux: versions per list */
#define VSS_MAX_LUNS 260u	/* LUN infos a FREEZE body may carry */

struct vss_ic_version {
	uint16_t major;		/* @0 */
	uint16_t minor;		/* @2 */
} VSS_PACKED;
VSS_WIRE(vss_ic_version, 4);

#define VSS_VER(maj, min) ((struct vss_ic_version){ (maj), (min) })

/* Pipe header + icmsg header: the 28 bytes before every body. */
struct vss_ic_hdr {
	uint32_t pipe_flags;	/* @0 VSS_PIPE_FLAG_DATA; Linux echoes */
	uint32_t pipe_msgsize;	/* @4 bytes after the pipe header */
	struct vss_ic_version icverframe; /* @8 framework version */
	uint16_t icmsgtype;	/* @12 enum vss_icmsg_type */
	struct vss_ic_version icvermsg; /* @14 message (service) version */
	uint16_t icmsgsize;	/* @18 body bytes after this header */
	uint32_t status;	/* @20 reply status (HRESULT) */
	uint8_t ictransaction_id; /* @24 0 */
	uint8_t icflags;	/* @25 VSS_ICF_* */
	uint8_t reserved[2];	/* @26 0 */
} VSS_PACKED;
VSS_WIRE(vss_ic_hdr, 28);
VSS_AT(vss_ic_hdr, pipe_msgsize, 4);
VSS_AT(vss_ic_hdr, icverframe, 8);
VSS_AT(vss_ic_hdr, icmsgtype, 12);
VSS_AT(vss_ic_hdr, icvermsg, 14);
VSS_AT(vss_ic_hdr, icmsgsize, 18);
VSS_AT(vss_ic_hdr, status, 20);
VSS_AT(vss_ic_hdr, ictransaction_id, 24);
VSS_AT(vss_ic_hdr, icflags, 25);
#define VSS_IC_HDR 28u

/* NEGOTIATE body: counts, then fw_count framework versions followed by
 * msg_count message versions (struct vss_ic_version each). */
struct vss_negotiate {
	uint16_t fw_count;	/* @28 of the packet */
	uint16_t msg_count;	/* @30 */
	uint32_t reserved;	/* @32 */
} VSS_PACKED;
VSS_WIRE(vss_negotiate, 8);
VSS_AT(vss_negotiate, msg_count, 2);

/* VSS body: Linux's hv_vss_msg is these 12 bytes. */
struct vss_msg {
	uint8_t op;		/* @28 enum vss_op */
	uint8_t reserved[7];	/* @29 */
	uint32_t flags;		/* @36 HOT_BACKUP: guest's vss_cf.flags;
				 * GET_DM_INFO: dm_info.flags */
} VSS_PACKED;
VSS_WIRE(vss_msg, 12);
VSS_AT(vss_msg, flags, 8);

/* FREEZE body (message version >= 5.0, OpenVMM's layout; Linux reads only
 * the first 12 bytes): LUN infos follow. */
struct vss_freeze {
	uint8_t op;		/* @0 VSS_OP_FREEZE */
	uint8_t reserved[7];	/* @1 */
	uint32_t backup_type;	/* @8 */
	uint32_t flags;		/* @12 */
	uint32_t lun_count;	/* @16 <= VSS_MAX_LUNS */
} VSS_PACKED;
VSS_WIRE(vss_freeze, 20);
VSS_AT(vss_freeze, backup_type, 8);
VSS_AT(vss_freeze, lun_count, 16);

struct vss_lun_info {
	uint8_t bus_type;	/* @0 */
	uint8_t reserved[3];	/* @1 */
	uint8_t controller[16];	/* @4 controller instance GUID, wire order */
	uint8_t port;		/* @20 */
	uint8_t target;		/* @21 */
	uint8_t lun;		/* @22 */
	uint8_t reserved2;	/* @23 */
} VSS_PACKED;
VSS_WIRE(vss_lun_info, 24);
VSS_AT(vss_lun_info, controller, 4);
VSS_AT(vss_lun_info, port, 20);
VSS_AT(vss_lun_info, lun, 22);

/* ---------------------------------------------------------------------- */
/* Codec (vss/wire.c, freestanding)                                        */

enum vss_wstatus {
	VSS_W_OK = 0,
	VSS_W_SHORT,	/* shorter than the headers / body it announces */
	VSS_W_LONG,	/* longer than VSS_MAX_PKT */
	VSS_W_SPACE,	/* encoder: the caller's buffer is too small */
	VSS_W_ARG,	/* encoder: bad arguments (counts, op) */
	VSS_W_FLAGS,	/* icflags wrong for the direction */
	VSS_W_TYPE,	/* icmsgtype not the one expected */
	VSS_W_TXID,	/* ictransaction_id differs from the request's */
	VSS_W_MISMATCH,	/* reply length differs from the request's */
	VSS_W_COUNT,	/* negotiate: counts over 100 or past the packet */
	VSS_W_NOMATCH,	/* negotiate: no common version (counts 0/0) */
	VSS_W_VERSION,	/* negotiate reply names a version never offered */
	VSS_W_OP,	/* VSS reply for another operation */
};

const char *vss_wstatus_str(enum vss_wstatus st);

/* A decoded header (values copied out of the buffer). */
struct vss_frame {
	uint32_t len;		/* whole payload */
	uint32_t pipe_flags, pipe_msgsize;
	struct vss_ic_version fw, msgver;
	uint16_t type, icmsgsize;
	uint32_t status;
	uint8_t txid, icflags;
};

/* Decode the 28-byte headers of a payload of len bytes.  VSS_W_SHORT when
 * len < 28, VSS_W_LONG when len > VSS_MAX_PKT.  Nothing else is checked
 * (Linux ignores the pipe header and icmsgsize; so does this). */
enum vss_wstatus vss_decode(const void *buf, uint32_t len, struct vss_frame *f);

/* Host: the NEGOTIATE request offering nfw framework and nmsg message
 * versions (each 1..100), preferred first.  *len: its length. */
enum vss_wstatus vss_enc_negotiate(void *buf, uint32_t cap,
				   const struct vss_ic_version *fw, unsigned nfw,
				   const struct vss_ic_version *msg, unsigned nmsg,
				   uint32_t *len);
/* Host: a VSS request.  A FREEZE carries nluns LUN infos (<= 260) after
 * its 20-byte header; the others a 12-byte body with flags. */
enum vss_wstatus vss_enc_request(void *buf, uint32_t cap,
				 struct vss_ic_version fw,
				 struct vss_ic_version msgver, enum vss_op op,
				 uint32_t flags, const struct vss_lun_info *luns,
				 uint32_t nluns, uint32_t *len);

/* Host: check a guest's reply (rep, rep_len) to the request (req,
 * req_len): same length, icflags TRANSACTION|RESPONSE, same type and
 * ictransaction_id, and for a VSS reply the same operation.  *f is
 * filled (status included) on VSS_W_OK. */
enum vss_wstatus vss_check_reply(const void *req, uint32_t req_len,
				 const void *rep, uint32_t rep_len,
				 struct vss_frame *f);
/* Host: the versions a checked NEGOTIATE reply selected.  VSS_W_NOMATCH
 * when the guest answered counts 0/0; VSS_W_VERSION when it picked one
 * the request did not offer. */
enum vss_wstatus vss_dec_negotiate_reply(const void *req, uint32_t req_len,
					 const void *rep, uint32_t rep_len,
					 struct vss_ic_version *fw,
					 struct vss_ic_version *msg);
/* The u32 at body offset 8 of a VSS packet (hv_vss_msg's flags). */
uint32_t vss_msg_flags(const void *buf, uint32_t len);
/* The operation of a VSS packet (len >= 28 + 12 checked by the caller). */
uint8_t vss_msg_op(const void *buf);

/* Guest: answer a NEGOTIATE request in place, as Linux does
 * (vmbus_prep_negotiate_resp): walk our own lists in preference order
 * and take the first version the host offered, framework then message;
 * counts become 1/1 with entry 0 = framework, 1 = message, or 0/0 when
 * nothing matched (*fw, *msg then undefined); icmsgsize = 16.  Flags and
 * status are left to vss_guest_reply.  VSS_W_OK or VSS_W_NOMATCH (a reply
 * was still built); VSS_W_SHORT / VSS_W_COUNT: the request is malformed,
 * nothing to send. */
enum vss_wstatus vss_guest_negotiate(void *buf, uint32_t len,
				     const struct vss_ic_version *fw_pref,
				     unsigned nfw,
				     const struct vss_ic_version *msg_pref,
				     unsigned nmsg, struct vss_ic_version *fw,
				     struct vss_ic_version *msg);
/* Guest: turn a request into its reply in place: status, icflags
 * TRANSACTION|RESPONSE.  The length stays the request's. */
void vss_guest_reply(void *buf, uint32_t len, uint32_t status);
/* Guest: set hv_vss_msg's flags (HOT_BACKUP, GET_DM_INFO replies). */
void vss_set_msg_flags(void *buf, uint32_t len, uint32_t flags);

/* ---------------------------------------------------------------------- */
/* Host channel (vss/chan.c)                                               */

struct vmbus_mgr;
struct vss;

struct vss_cfg {
	struct vmbus_mgr *mgr;	/* the offer goes here (manager's thread) */
	uint8_t instance[16];	/* instance GUID, wire order */
};

struct vss_stats {
	uint64_t sent;		/* requests written */
	uint64_t replies;	/* matching, valid replies */
	uint64_t stale;		/* replies to an earlier (timed-out) request */
	uint64_t bad;		/* packets dropped as malformed or unexpected */
	uint64_t timeouts;	/* transactions that got no reply in time */
	uint64_t chan_failed;	/* channels closed for breaking the rules */
	bool open;		/* the guest has the channel open */
	bool negotiated;
	struct vss_ic_version fw, msgver; /* when negotiated */
	char last_error[160];
};

/* Offer the VSS channel (call on the manager's thread). */
int vss_new(const struct vss_cfg *cfg, struct vss **out);
/* After the manager closed the channel (vmbus_mgr_free / reset). */
void vss_free(struct vss *v);
void vss_get_stats(struct vss *v, struct vss_stats *st);

/* Any thread, one caller at a time (the coordinator's): negotiate
 * (framework 3.0, VSS 5.0) if the open channel has not been yet.
 * 0; -ENOTCONN no channel; -ETIMEDOUT; -EPROTO the guest broke the
 * protocol (its channel is closed); -ENOTSUP no common version. */
int vss_negotiate(struct vss *v, int timeout_ms);
/* One VSS transaction (negotiates first if needed): send op, wait up to
 * timeout_ms for the reply.  *status: the guest's HRESULT; *flags (may be
 * NULL): the reply's hv_vss_msg flags.  Errors as vss_negotiate. */
int vss_transact(struct vss *v, enum vss_op op, uint32_t flags,
		 const struct vss_lun_info *luns, uint32_t nluns,
		 int timeout_ms, uint32_t *status, uint32_t *reply_flags);

/* ---------------------------------------------------------------------- */
/* Coordinator (vss/coord.c)                                               */

/* What the VMM does to the disks of one backup, numbered 0..ndisks-1.
 * Called on the thread running vss_backup. */
struct vss_snap_ops {
	/* Before the freeze (outside the window): get disk i's snapshot
	 * ready, e.g. create its differencing child.  0 or -errno. */
	int (*prepare)(void *opaque, unsigned disk);
	/* Hold new I/O to every disk of the backup and wait until the
	 * requests in flight completed (the VSP's drain).  0 or -errno;
	 * resume is called afterwards either way. */
	int (*drain)(void *opaque, unsigned ndisks);
	/* With I/O held: redirect disk i's writes to its new child
	 * (bdev_switch_swap).  0 or -errno. */
	int (*commit)(void *opaque, unsigned disk);
	/* Let I/O flow again. */
	void (*resume)(void *opaque, unsigned ndisks);
	/* Undo prepare of a disk that was not committed. */
	void (*abort)(void *opaque, unsigned disk);
};

struct vss_backup_opts {
	int freeze_timeout_ms;	/* FREEZE reply; 0: 10000 */
	int msg_timeout_ms;	/* every other message; 0: 5000 */
	bool require_app_consistent; /* fail instead of crash-consistent */
	bool skip_bu_complete;	/* do not send BU_COMPLETE */
	const struct vss_lun_info *luns; /* for the FREEZE body; may be NULL */
	uint32_t nluns;
};

enum vss_consistency {
	VSS_CONS_NONE = 0,	/* no snapshot taken */
	VSS_CONS_CRASH,		/* taken without the guest's help */
	VSS_CONS_APP,		/* taken while the guest was frozen */
};

struct vss_result {
	enum vss_consistency consistency;
	unsigned committed;	/* disks switched */
	bool freeze_sent, thaw_sent, thaw_ok;
	uint32_t hot_backup_status, freeze_status, thaw_status;
	uint32_t hot_backup_flags;
	uint64_t window_ns;	/* FREEZE sent -> THAW sent (0: no FREEZE) */
	uint64_t held_ns;	/* drain called -> resume returned */
	char why[200];		/* why crash-consistent, or why it failed */
};

const char *vss_consistency_str(enum vss_consistency c);

/* Take one snapshot of ndisks disks at one point in time:
 *   prepare each -> [HOT_BACKUP -> GET_DM_INFO -> FREEZE] -> drain ->
 *   commit each -> resume -> [THAW] -> [BU_COMPLETE]
 * v may be NULL (no integration channel).  Without a channel, or when the
 * guest refuses, fails, breaks the protocol or times out, the snapshot is
 * crash-consistent (res->why says why) unless require_app_consistent,
 * when no disk is switched and -EAGAIN is returned.  THAW is sent
 * whenever FREEZE was, whatever happened after.  Returns 0 when every
 * disk was committed; else -errno (disks committed before the failure
 * stay committed: res->committed of them, in order). */
int vss_backup(struct vss *v, const struct vss_snap_ops *ops, void *opaque,
	       unsigned ndisks, const struct vss_backup_opts *o,
	       struct vss_result *res);

#endif
