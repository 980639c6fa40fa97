/* libFuzzer target: the VMBus ring consumer (vmbus/ring.c) on a ring whose
 * control page and data area the input supplies, as a hostile peer would.
 *
 * Input: 4-byte read_index, 4-byte write_index, 2-byte interrupt_mask and
 * pending_send_sz selectors, 4-byte caller maximum, then the data area
 * (padded with zeros to 2 pages).  The ring memory is a heap block of its
 * exact size, so ASan catches any access outside it.  Every packet read is
 * checked against the invariants ring.h promises; the producer side then
 * writes into the same ring to exercise its index checks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmbus/ring.h"

#define PAGES 3
#define BYTES (PAGES * RING_PAGE_SIZE)
#define DATA (BYTES - RING_PAGE_SIZE)

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n);

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	uint8_t *mem, *out;
	struct ring_control *ctl;
	struct ring r, w;
	struct ring_pkt pkt;
	enum ring_status st;
	uint32_t max;
	int count = 0;
	bool sig;

	if (n < 14)
		return 0;
	mem = calloc(1, BYTES);
	out = malloc(DATA);
	if (!mem || !out)
		abort();
	ctl = (struct ring_control *)mem;
	ctl->read_index = get32(in);
	ctl->write_index = get32(in + 4);
	ctl->feature_bits = in[8] & 1;
	ctl->interrupt_mask = in[8] >> 1;
	ctl->pending_send_sz = (uint32_t)in[9] << 4;
	max = get32(in + 10) % (DATA + 1);
	memcpy(mem + RING_PAGE_SIZE, in + 14, n - 14 < DATA ? n - 14 : DATA);

	if (ring_attach(&r, mem, BYTES) == RING_OK) {
		uint8_t *buf = malloc(max ? max : 1);	/* exact: overruns seen */
		if (!buf)
			abort();
		while ((st = ring_read(&r, buf, max, &pkt)) == RING_OK) {
			if (pkt.len > max || pkt.len < 16 || pkt.payload_off < 16 ||
			    pkt.payload_off > pkt.len || (pkt.len & 7) ||
			    (pkt.flags & ~RING_PKT_F_COMPLETION))
				abort();
			if (++count > (int)(DATA / 24))
				abort();	/* more packets than can fit */
		}
		if (st == RING_NOSPACE || st == RING_E_ARG)
			abort();
		(void)ring_commit(&r);
		(void)ring_unmask_interrupts(&r);
		free(buf);
	}
	/* the producer side on the same (possibly corrupt) memory */
	if (ring_attach(&w, mem, BYTES) == RING_OK) {
		struct ring_iov iov = { in, (uint32_t)(n < DATA ? n : DATA) };
		for (int i = 0; i < 4; i++) {
			st = ring_write(&w, RING_PKT_DATA_INBAND, 0, (uint64_t)i,
					0, &iov, 1, &sig);
			if (st == RING_NOSPACE)
				(void)ring_want_space(&w, ring_packet_bytes(iov.len));
			iov.len /= 2;
		}
	}
	free(out);
	free(mem);
	return 0;
}
