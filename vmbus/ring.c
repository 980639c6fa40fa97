/* ring: the VMBus ring buffer, producer and consumer (see ring.h).
 *
 * Freestanding: no libc.  Copies use __builtin_memcpy/__builtin_memset,
 * which the compiler may turn into calls to memcpy/memset: the guest image
 * provides its own (a freestanding C environment must).
 *
 * Rules followed (notes section 1): indices are byte offsets in [0, D),
 * multiples of 8; bytes to read = (w >= r) ? w - r : D - r + w; never fill
 * the ring completely; the producer copies the packet, barrier, publishes
 * write_index, barrier, and signals only on empty -> non-empty with the
 * consumer's interrupt_mask clear; the consumer loads write_index then
 * barrier before reading packet bytes, barrier before publishing
 * read_index, and signals a waiting producer once enough space is free.
 */
#include "vmbus/ring.h"
#include "common/fs-compiler.h"
#include "common/fs-overflow.h"

#define RING_CTL_BYTES RING_PAGE_SIZE

const char *ring_status_str(enum ring_status st)
{
	switch (st) {
	case RING_OK: return "ok";
	case RING_EMPTY: return "ring empty";
	case RING_NOSPACE: return "not enough free space in the ring";
	case RING_E_INDEX: return "ring index out of range or misaligned";
	case RING_E_DESC: return "invalid packet descriptor";
	case RING_E_SHORT: return "packet longer than the published bytes";
	case RING_E_TOOBIG: return "packet longer than the maximum";
	case RING_E_ARG: return "invalid ring arguments";
	}
	return "unknown ring status";
}

static bool index_ok(const struct ring *r, uint32_t idx)
{
	return idx < r->size && (idx & 7) == 0;
}

/* Bytes between read index rd and write index wr (both valid). */
static uint32_t used_bytes(const struct ring *r, uint32_t rd, uint32_t wr)
{
	return wr >= rd ? wr - rd : r->size - rd + wr;
}

static uint32_t advance(const struct ring *r, uint32_t idx, uint32_t n)
{
	/* idx < size and n <= size, so idx + n < 2^32 (size <= 2^31) */
	idx += n;
	return idx >= r->size ? idx - r->size : idx;
}

/* Copy len bytes (len <= size) out of the data area starting at off,
 * wrapping at the end. */
static void copy_from_ring(const struct ring *r, uint32_t off, void *dst,
			   uint32_t len)
{
	uint32_t first = r->size - off;

	if (first >= len) {
		__builtin_memcpy(dst, r->data + off, len);
	} else {
		__builtin_memcpy(dst, r->data + off, first);
		__builtin_memcpy((uint8_t *)dst + first, r->data, len - first);
	}
}

/* Copy len bytes into the data area at off, wrapping; returns the index
 * after them.  src NULL writes zeros. */
static uint32_t copy_to_ring(const struct ring *r, uint32_t off,
			     const void *src, uint32_t len)
{
	uint32_t first = r->size - off;

	if (first > len)
		first = len;
	if (src) {
		__builtin_memcpy(r->data + off, src, first);
		__builtin_memcpy(r->data, (const uint8_t *)src + first,
				 len - first);
	} else {
		__builtin_memset(r->data + off, 0, first);
		__builtin_memset(r->data, 0, len - first);
	}
	return advance(r, off, len);
}

void ring_format(void *mem, uint32_t feature_bits)
{
	struct ring_control *ctl = mem;

	__builtin_memset(ctl, 0, sizeof(*ctl));
	ctl->feature_bits = feature_bits;
}

enum ring_status ring_attach(struct ring *r, void *mem, size_t bytes)
{
	uint32_t w, rd;

	if (!mem || bytes < RING_MIN_BYTES || bytes > RING_MAX_BYTES ||
	    bytes % RING_PAGE_SIZE)
		return RING_E_ARG;
	r->ctl = mem;
	r->data = (uint8_t *)mem + RING_CTL_BYTES;
	r->size = (uint32_t)(bytes - RING_CTL_BYTES);
	r->peeked = false;
	r->pending_set = false;
	w = FS_READ_ONCE(r->ctl->write_index);
	rd = FS_READ_ONCE(r->ctl->read_index);
	if (!index_ok(r, w) || !index_ok(r, rd))
		return RING_E_INDEX;
	r->priv_write = w;
	r->priv_read = rd;
	r->pub_read = rd;
	r->next_read = rd;
	return RING_OK;
}

/* --- producer --- */

uint32_t ring_packet_bytes(uint32_t len)
{
	uint64_t n = (uint64_t)RING_DESC_SIZE + len;

	n = (n + 7) & ~(uint64_t)7;
	n += RING_TRAILER_SIZE;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* Free bytes given the consumer's read index rd (valid). */
static uint32_t free_bytes(const struct ring *r, uint32_t rd)
{
	return r->size - used_bytes(r, rd, r->priv_write);
}

enum ring_status ring_write(struct ring *r, uint16_t type, uint16_t flags,
			    uint64_t trans_id, uint32_t hdr_len,
			    const struct ring_iov *iov, unsigned niov,
			    bool *signal)
{
	uint64_t total = 0;
	uint32_t need, rd, old_w, w, pad, mask;
	uint64_t trailer;
	struct ring_desc d;
	unsigned i;

	*signal = false;
	for (i = 0; i < niov; i++)
		total += iov[i].len;	/* niov * 2^32 cannot overflow u64 for any real niov */
	if ((hdr_len & 7) || hdr_len > total)
		return RING_E_ARG;
	if (total > r->size)
		return RING_E_ARG;
	need = ring_packet_bytes((uint32_t)total);
	/* the packet alone (without trailer) in 8-byte units must fit len8 */
	if (need >= r->size || (need - RING_TRAILER_SIZE) / 8 > UINT16_MAX)
		return RING_E_ARG;

	rd = FS_READ_ONCE(r->ctl->read_index);
	if (!index_ok(r, rd))
		return RING_E_INDEX;
	/* never fill completely: free must stay > 0 after the write */
	if (free_bytes(r, rd) <= need)
		return RING_NOSPACE;

	old_w = r->priv_write;
	d.type = type;
	d.offset8 = (uint16_t)((RING_DESC_SIZE + hdr_len) / 8);
	d.len8 = (uint16_t)((need - RING_TRAILER_SIZE) / 8);
	d.flags = flags;
	d.trans_id = trans_id;
	w = copy_to_ring(r, old_w, &d, sizeof(d));
	for (i = 0; i < niov; i++)
		if (iov[i].len)
			w = copy_to_ring(r, w, iov[i].base, iov[i].len);
	pad = (uint32_t)(need - RING_TRAILER_SIZE - RING_DESC_SIZE - total);
	if (pad)
		w = copy_to_ring(r, w, NULL, pad);
	trailer = (uint64_t)old_w << 32;
	w = copy_to_ring(r, w, &trailer, sizeof(trailer));

	/* packet bytes visible before the index that publishes them */
	fs_smp_mb();
	FS_WRITE_ONCE(r->ctl->write_index, w);
	r->priv_write = w;
	if (r->pending_set) {
		FS_WRITE_ONCE(r->ctl->pending_send_sz, 0);
		r->pending_set = false;
	}

	/* the index store before the loads of mask and read_index: pairs
	 * with the consumer's unmask, barrier, re-check */
	fs_smp_mb();
	mask = FS_READ_ONCE(r->ctl->interrupt_mask);
	if (mask)
		return RING_OK;
	rd = FS_READ_ONCE(r->ctl->read_index);
	*signal = rd == old_w;
	return RING_OK;
}

bool ring_want_space(struct ring *r, uint32_t need)
{
	uint32_t rd;

	FS_WRITE_ONCE(r->ctl->pending_send_sz, need);
	r->pending_set = true;
	/* pending_send_sz visible before we read read_index: pairs with the
	 * consumer's read_index store, barrier, pending_send_sz load */
	fs_smp_mb();
	rd = FS_READ_ONCE(r->ctl->read_index);
	if (index_ok(r, rd) && free_bytes(r, rd) > need) {
		FS_WRITE_ONCE(r->ctl->pending_send_sz, 0);
		r->pending_set = false;
		return true;
	}
	return false;
}

uint32_t ring_bytes_free(struct ring *r)
{
	uint32_t rd = FS_READ_ONCE(r->ctl->read_index);

	return index_ok(r, rd) ? free_bytes(r, rd) : 0;
}

/* --- consumer --- */

uint32_t ring_bytes_to_read(struct ring *r)
{
	uint32_t w = FS_READ_ONCE(r->ctl->write_index);

	return index_ok(r, w) ? used_bytes(r, r->priv_read, w) : 0;
}

enum ring_status ring_peek(struct ring *r, void *buf, uint32_t max,
			   struct ring_pkt *pkt)
{
	struct ring_desc d;
	uint32_t w, avail, len, off;

	r->peeked = false;
	w = FS_READ_ONCE(r->ctl->write_index);
	if (!index_ok(r, w))
		return RING_E_INDEX;
	/* write_index before the packet bytes it publishes */
	fs_smp_rmb();
	avail = used_bytes(r, r->priv_read, w);
	if (avail == 0)
		return RING_EMPTY;
	/* a packet is at least a descriptor plus a trailer */
	if (avail < RING_DESC_SIZE + RING_TRAILER_SIZE)
		return RING_E_SHORT;

	/* the descriptor is read once, into private memory; everything
	 * below uses this copy, never the ring again */
	copy_from_ring(r, r->priv_read, &d, sizeof(d));
	if (d.offset8 < 2 || d.len8 < d.offset8 ||
	    (d.flags & ~RING_PKT_F_COMPLETION))
		return RING_E_DESC;
	len = (uint32_t)d.len8 * 8;
	/* len + trailer within what was published (so <= D - 8) */
	if (len > avail - RING_TRAILER_SIZE)
		return RING_E_SHORT;
	if (len > max)
		return RING_E_TOOBIG;

	__builtin_memcpy(buf, &d, sizeof(d));
	off = advance(r, r->priv_read, RING_DESC_SIZE);
	copy_from_ring(r, off, (uint8_t *)buf + RING_DESC_SIZE,
		       len - RING_DESC_SIZE);

	pkt->type = d.type;
	pkt->flags = d.flags;
	pkt->trans_id = d.trans_id;
	pkt->len = len;
	pkt->payload_off = (uint32_t)d.offset8 * 8;
	r->next_read = advance(r, r->priv_read, len + RING_TRAILER_SIZE);
	r->peeked = true;
	return RING_OK;
}

void ring_advance(struct ring *r)
{
	if (r->peeked) {
		r->priv_read = r->next_read;
		r->peeked = false;
	}
}

enum ring_status ring_read(struct ring *r, void *buf, uint32_t max,
			   struct ring_pkt *pkt)
{
	enum ring_status st = ring_peek(r, buf, max, pkt);

	if (st == RING_OK)
		ring_advance(r);
	return st;
}

bool ring_commit(struct ring *r)
{
	uint32_t old = r->pub_read, freed, pending, w, free_now;

	if (r->priv_read == old)
		return false;
	/* our reads of the packets done before the producer may reuse them */
	fs_smp_mb();
	FS_WRITE_ONCE(r->ctl->read_index, r->priv_read);
	r->pub_read = r->priv_read;
	freed = used_bytes(r, old, r->priv_read);
	/* read_index store before any later load: the pending_send_sz load
	 * below (pairs with ring_want_space) and the caller's re-check of
	 * write_index (pairs with ring_write's store, barrier, load of
	 * read_index: one of the two sides sees the other) */
	fs_smp_mb();

	if (!(FS_READ_ONCE(r->ctl->feature_bits) & RING_FEAT_PENDING_SEND_SZ))
		return false;
	pending = FS_READ_ONCE(r->ctl->pending_send_sz);
	if (!pending)
		return false;
	fs_smp_rmb();
	w = FS_READ_ONCE(r->ctl->write_index);
	if (!index_ok(r, w))
		return false;
	free_now = r->size - used_bytes(r, r->priv_read, w);
	/* signal only on the transition: it was not enough before this batch
	 * (free_now - freed <= pending) and is now (free_now > pending) */
	if (free_now <= pending)
		return false;
	if (free_now >= freed && free_now - freed > pending)
		return false;
	return true;
}

void ring_mask_interrupts(struct ring *r)
{
	FS_WRITE_ONCE(r->ctl->interrupt_mask, 1);
	fs_smp_mb();
}

bool ring_unmask_interrupts(struct ring *r)
{
	FS_WRITE_ONCE(r->ctl->interrupt_mask, 0);
	/* the mask store before re-reading write_index: pairs with the
	 * producer's write_index store, barrier, interrupt_mask load */
	fs_smp_mb();
	return ring_bytes_to_read(r) != 0;
}
