/* ring: one VMBus ring buffer (one direction of a channel), both sides.
 *
 * Freestanding: includes only <stdint.h>, <stddef.h>, <stdbool.h>; no libc,
 * no errno, no allocation.  The host and a small guest compile this same
 * code.  Wire facts: ../shared/notes/storvsp-protocol.md section 1.
 *
 * A ring is one control page (struct ring_control) followed by a data area
 * of D bytes (D = ring bytes - 4096, a multiple of 4096).  Packets are a
 * 16-byte descriptor, an optional extra header, the payload, zero padding
 * to 8 bytes, then an 8-byte trailer; they may wrap around the end of the
 * data area.  The ring is never filled completely (read == write means
 * empty), so the largest packet with trailer is D - 8.
 *
 * Each side keeps its own index in struct ring (private memory) and only
 * publishes it; the peer's index is read once per call and validated.  The
 * shared memory may change under us at any time: everything read from it
 * is copied first and checked on the copy.  A ring that breaks the rules
 * gives an error status (RING_E_*); the caller then stops serving it.
 *
 * Threads: one producer and one consumer per ring; a struct ring is used by
 * one of them only (each side attaches its own struct ring to the memory).
 */
#ifndef VMBUS_RING_H
#define VMBUS_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the ring's control page and descriptors are little-endian; "
	       "this code accesses them natively");

#define RING_PAGE_SIZE     4096u
#define RING_DESC_SIZE     16u	/* struct ring_desc */
#define RING_TRAILER_SIZE  8u	/* u64 after every packet */
#define RING_MIN_BYTES     (2 * RING_PAGE_SIZE)	/* control + one data page */
#define RING_MAX_BYTES     (1u << 31)	/* indices are u32 offsets */

/* feature_bits: the producer sets pending_send_sz when blocked and the
 * consumer signals it when enough space was freed. */
#define RING_FEAT_PENDING_SEND_SZ 0x1u

/* Control page, first 4096 bytes of a ring (wire format, little-endian). */
struct ring_control {
	uint32_t write_index;	  /* @0 producer: data offset of the next packet */
	uint32_t read_index;	  /* @4 consumer: data offset of the next unread packet */
	uint32_t interrupt_mask;  /* @8 consumer: non-zero = don't signal empty->non-empty */
	uint32_t pending_send_sz; /* @12 producer: free bytes it waits for; 0 = not waiting */
	uint32_t reserved1[12];	  /* @16 zero */
	uint32_t feature_bits;	  /* @64 producer: RING_FEAT_* */
	uint8_t reserved2[4028];  /* @68 pad to one page */
} __attribute__((packed));

_Static_assert(sizeof(struct ring_control) == 4096, "control page size");
_Static_assert(offsetof(struct ring_control, write_index) == 0, "write_index");
_Static_assert(offsetof(struct ring_control, read_index) == 4, "read_index");
_Static_assert(offsetof(struct ring_control, interrupt_mask) == 8, "interrupt_mask");
_Static_assert(offsetof(struct ring_control, pending_send_sz) == 12, "pending_send_sz");
_Static_assert(offsetof(struct ring_control, feature_bits) == 64, "feature_bits");

/* Packet descriptor, 16 bytes at the start of every packet (wire format). */
struct ring_desc {
	uint16_t type;	   /* @0 enum ring_pkt_type */
	uint16_t offset8;  /* @2 payload offset from packet start, 8-byte units, >= 2 */
	uint16_t len8;	   /* @4 packet length without trailer, 8-byte units, >= offset8 */
	uint16_t flags;	   /* @6 RING_PKT_F_COMPLETION; other bits zero */
	uint64_t trans_id; /* @8 request id, echoed by the completion */
} __attribute__((packed));

_Static_assert(sizeof(struct ring_desc) == RING_DESC_SIZE, "descriptor size");
_Static_assert(offsetof(struct ring_desc, offset8) == 2, "offset8");
_Static_assert(offsetof(struct ring_desc, len8) == 4, "len8");
_Static_assert(offsetof(struct ring_desc, flags) == 6, "flags");
_Static_assert(offsetof(struct ring_desc, trans_id) == 8, "trans_id");

enum ring_pkt_type {
	RING_PKT_DATA_INBAND = 0x6,
	RING_PKT_DATA_XFER_PAGES = 0x7,
	RING_PKT_DATA_GPA_DIRECT = 0x9,
	RING_PKT_COMP = 0xb,
};

#define RING_PKT_F_COMPLETION 0x1u	/* completion requested */

/* Results.  RING_OK and the two "try later" statuses are normal; RING_E_*
 * mean the peer broke the ring's rules (RING_E_ARG: the caller did). */
enum ring_status {
	RING_OK = 0,
	RING_EMPTY,	 /* consumer: nothing to read */
	RING_NOSPACE,	 /* producer: not enough free space now */
	RING_E_INDEX,	 /* an index past the data area or not a multiple of 8 */
	RING_E_DESC,	 /* descriptor: offset8 < 2, len8 < offset8, reserved flags */
	RING_E_SHORT,	 /* a packet longer than the bytes the producer published */
	RING_E_TOOBIG,	 /* a packet longer than the caller's maximum */
	RING_E_ARG,	 /* bad arguments from the caller (size, iov, too large) */
};

/* A text for messages ("index out of range"); never NULL. */
const char *ring_status_str(enum ring_status st);

/* One side's view of a ring.  Fields are private to ring.c. */
struct ring {
	struct ring_control *ctl; /* shared */
	uint8_t *data;		  /* shared, size bytes */
	uint32_t size;		  /* D */
	uint32_t priv_write;	  /* producer: our write index */
	uint32_t priv_read;	  /* consumer: next packet to read */
	uint32_t pub_read;	  /* consumer: last published read_index */
	uint32_t next_read;	  /* consumer: end of the packet ring_peek returned */
	bool peeked;		  /* consumer: next_read is valid */
	bool pending_set;	  /* producer: we set pending_send_sz */
};

/* One piece of a gather list. */
struct ring_iov {
	const void *base;
	uint32_t len;
};

/* A packet received: what the copy's validated descriptor says. */
struct ring_pkt {
	uint16_t type;
	uint16_t flags;
	uint64_t trans_id;
	uint32_t len;	      /* len8 * 8: bytes copied into the buffer (descriptor included) */
	uint32_t payload_off; /* offset8 * 8 (>= 16, <= len) */
};

/* Attach a view to a ring at mem (the control page), bytes long (a
 * multiple of 4096, from RING_MIN_BYTES to RING_MAX_BYTES).  Reads the
 * indices once: the producer view continues at write_index, the consumer
 * view at read_index; an index out of range gives RING_E_INDEX.  Writes
 * nothing to the shared memory. */
enum ring_status ring_attach(struct ring *r, void *mem, size_t bytes);

/* Zero the control page and set feature_bits (RING_FEAT_PENDING_SEND_SZ):
 * what the side allocating the ring does before anyone uses it.  Call
 * ring_attach afterwards. */
void ring_format(void *mem, uint32_t feature_bits);

/* --- producer --- */

/* Bytes a packet of desc + extra header + payload = len bytes takes in the
 * ring with its padding and trailer (what pending_send_sz is compared
 * with).  len is the gather list's total, without the 16-byte descriptor. */
uint32_t ring_packet_bytes(uint32_t len);

/* Write one packet: a descriptor built from type/flags/trans_id, then the
 * gather list, zero padding to 8 bytes, then the trailer.  The first
 * hdr_len bytes of the gather list are the extra header (offset8 =
 * (16 + hdr_len) / 8; hdr_len a multiple of 8).  On RING_OK *signal tells
 * whether to signal the consumer (the ring was empty and its interrupt_mask
 * is 0).  RING_NOSPACE: nothing written; see ring_want_space.  RING_E_ARG:
 * the packet can never fit (longer than D - 8 with trailer, or len8 past
 * 16 bits), or hdr_len is not a multiple of 8 or exceeds the total.
 * RING_E_INDEX: the consumer's read_index is corrupt. */
enum ring_status ring_write(struct ring *r, uint16_t type, uint16_t flags,
			    uint64_t trans_id, uint32_t hdr_len,
			    const struct ring_iov *iov, unsigned niov,
			    bool *signal);

/* The producer is blocked needing `need` bytes (ring_packet_bytes()):
 * publish pending_send_sz = need, then re-check.  Returns true when the
 * space is already there (pending cleared again: retry the write now);
 * false when the caller should wait for the consumer's signal and retry.
 * The next successful ring_write clears pending_send_sz. */
bool ring_want_space(struct ring *r, uint32_t need);

/* --- consumer --- */

/* Copy the next packet (descriptor included) into buf (max bytes), then
 * validate the copy; fills *pkt.  Does not consume it: ring_advance does.
 * Reads write_index once (then an acquire barrier) and each length once.
 * RING_EMPTY: nothing to read.  RING_E_TOOBIG: the packet is longer than
 * max (not consumed; nothing was written to buf past max).  Other RING_E_*:
 * the ring is corrupt.  Never reads outside the ring's data area. */
enum ring_status ring_peek(struct ring *r, void *buf, uint32_t max,
			   struct ring_pkt *pkt);

/* Consume the packet the last ring_peek returned (privately: ring_commit
 * publishes). */
void ring_advance(struct ring *r);

/* ring_peek + ring_advance. */
enum ring_status ring_read(struct ring *r, void *buf, uint32_t max,
			   struct ring_pkt *pkt);

/* Publish what was consumed (read_index).  Returns true when the producer
 * must be signalled: its feature bit is set, it waits for pending_send_sz
 * bytes and this batch freed enough (free space went from <= pending to >
 * pending).
 * A consumer that drains with interrupts unmasked must, after ring_commit,
 * re-check ring_bytes_to_read() before it sleeps: a packet written while
 * it was reading was not signalled (the ring did not look empty to the
 * producer).  ring_commit orders its store before that load. */
bool ring_commit(struct ring *r);

/* Batched reading: ring_mask_interrupts before draining (the producer then
 * does not signal); ring_unmask_interrupts when empty, which returns true
 * when packets arrived meanwhile (keep draining: no signal will come). */
void ring_mask_interrupts(struct ring *r);
bool ring_unmask_interrupts(struct ring *r);

/* Bytes available to read / free to write now (reading the peer's index
 * once; a corrupt index counts as 0 bytes). */
uint32_t ring_bytes_to_read(struct ring *r);
uint32_t ring_bytes_free(struct ring *r);

#endif
