/* vmbus/ring: packet format, wrap-around, the never-full rule, signalling
 * (interrupt_mask, pending_send_sz) and a hostile-ring suite.  The ring
 * memory of the hostile cases is a heap block of exactly the ring's size,
 * so under `make SANITIZE=1` any read outside it fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmbus/ring.h"

#define DATA_PAGES 2
#define RING_BYTES (RING_PAGE_SIZE * (1 + DATA_PAGES))
#define D (RING_BYTES - RING_PAGE_SIZE)

struct pair {
	uint8_t *mem;
	struct ring prod, cons;
};

static struct pair *pair_new(uint32_t features)
{
	struct pair *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	p->mem = malloc(RING_BYTES);
	assert_non_null(p->mem);
	memset(p->mem, 0xa5, RING_BYTES);
	ring_format(p->mem, features);
	assert_int_equal(ring_attach(&p->prod, p->mem, RING_BYTES), RING_OK);
	assert_int_equal(ring_attach(&p->cons, p->mem, RING_BYTES), RING_OK);
	return p;
}

static void pair_free(struct pair *p)
{
	free(p->mem);
	free(p);
}

static struct ring_control *ctl(struct pair *p)
{
	return (struct ring_control *)p->mem;
}

static uint8_t *data(struct pair *p)
{
	return p->mem + RING_PAGE_SIZE;
}

static enum ring_status put(struct pair *p, const void *buf, uint32_t len,
			    uint64_t id, bool *sig)
{
	struct ring_iov iov = { buf, len };
	bool s;

	return ring_write(&p->prod, RING_PKT_DATA_INBAND, RING_PKT_F_COMPLETION,
			  id, 0, &iov, 1, sig ? sig : &s);
}

static void fill(uint8_t *b, uint32_t len, uint32_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed * 131 + i * 7 + 1);
}

static void test_roundtrip_format(void **state)
{
	struct pair *p = pair_new(RING_FEAT_PENDING_SEND_SZ);
	uint8_t msg[13], out[64];
	struct ring_pkt pkt;
	bool sig;
	uint64_t trailer;

	(void)state;
	fill(msg, sizeof(msg), 1);
	assert_int_equal(put(p, msg, sizeof(msg), 0x1122334455667788ull, &sig),
			 RING_OK);
	assert_true(sig);
	/* 16 + 13 = 29 -> 32 bytes, then an 8-byte trailer of old index 0 */
	assert_int_equal(ctl(p)->write_index, 40);
	assert_int_equal(ring_bytes_to_read(&p->cons), 40);
	struct ring_desc *d = (struct ring_desc *)data(p);
	assert_int_equal(d->type, RING_PKT_DATA_INBAND);
	assert_int_equal(d->offset8, 2);
	assert_int_equal(d->len8, 4);
	assert_int_equal(d->flags, 1);
	assert_true(d->trans_id == 0x1122334455667788ull);
	for (int i = 29; i < 32; i++)
		assert_int_equal(data(p)[i], 0);	/* zero padding */
	memcpy(&trailer, data(p) + 32, 8);
	assert_true(trailer == 0);

	assert_int_equal(put(p, msg, 8, 2, &sig), RING_OK);
	assert_false(sig);	/* not empty -> non-empty */
	memcpy(&trailer, data(p) + 40 + 24, 8);
	assert_true(trailer == (uint64_t)40 << 32);

	assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_OK);
	assert_int_equal(pkt.len, 32);
	assert_int_equal(pkt.payload_off, 16);
	assert_int_equal(pkt.type, RING_PKT_DATA_INBAND);
	assert_true(pkt.trans_id == 0x1122334455667788ull);
	assert_memory_equal(out + 16, msg, sizeof(msg));
	assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_OK);
	assert_true(pkt.trans_id == 2);
	assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_EMPTY);
	/* nothing published until commit */
	assert_int_equal(ctl(p)->read_index, 0);
	assert_false(ring_commit(&p->cons));
	assert_int_equal(ctl(p)->read_index, 72);
	pair_free(p);
}

static void test_extra_header(void **state)
{
	struct pair *p = pair_new(0);
	uint8_t hdr[24], body[5], out[128];
	struct ring_iov iov[2] = { { hdr, sizeof(hdr) }, { body, sizeof(body) } };
	struct ring_pkt pkt;
	bool sig;

	(void)state;
	fill(hdr, sizeof(hdr), 3);
	fill(body, sizeof(body), 4);
	assert_int_equal(ring_write(&p->prod, RING_PKT_DATA_GPA_DIRECT, 1, 9, 24,
				    iov, 2, &sig), RING_OK);
	assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_OK);
	assert_int_equal(pkt.payload_off, 40);
	assert_int_equal(pkt.len, 48);
	assert_memory_equal(out + 16, hdr, 24);
	assert_memory_equal(out + 40, body, 5);
	/* extra header not a multiple of 8, or longer than the packet */
	assert_int_equal(ring_write(&p->prod, 9, 1, 9, 20, iov, 2, &sig), RING_E_ARG);
	assert_int_equal(ring_write(&p->prod, 9, 1, 9, 32, iov, 1, &sig), RING_E_ARG);
	pair_free(p);
}

/* Packets of many sizes, so that descriptors, payloads and trailers all
 * land across the end of the data area at some point. */
static void test_wraparound_many(void **state)
{
	struct pair *p = pair_new(RING_FEAT_PENDING_SEND_SZ);
	static uint8_t in[1200], out[1300];
	uint32_t wseq = 0, rseq = 0, wraps = 0, last_w = 0;
	struct ring_pkt pkt;

	(void)state;
	while (rseq < 20000) {
		/* write a few */
		for (int k = 0; k < 3; k++) {
			uint32_t len = (wseq * 37) % sizeof(in);
			fill(in, len, wseq);
			enum ring_status st = put(p, in, len, wseq, NULL);
			if (st == RING_NOSPACE)
				break;
			assert_int_equal(st, RING_OK);
			if (ctl(p)->write_index < last_w)
				wraps++;
			last_w = ctl(p)->write_index;
			wseq++;
		}
		/* read a couple */
		for (int k = 0; k < 2; k++) {
			enum ring_status st = ring_read(&p->cons, out, sizeof(out), &pkt);
			if (st == RING_EMPTY)
				break;
			assert_int_equal(st, RING_OK);
			uint32_t len = (rseq * 37) % sizeof(in);
			assert_true(pkt.trans_id == rseq);
			assert_int_equal(pkt.len, (16 + len + 7) & ~7u);
			fill(in, len, rseq);
			assert_memory_equal(out + 16, in, len);
			rseq++;
		}
		ring_commit(&p->cons);
	}
	assert_true(wraps > 100);
	pair_free(p);
}

static void test_never_full(void **state)
{
	struct pair *p = pair_new(RING_FEAT_PENDING_SEND_SZ);
	static uint8_t big[D], out[D];
	struct ring_pkt pkt;
	uint32_t n = 0;
	bool sig;

	(void)state;
	/* fill with 64-byte packets (40 payload + 16 + 8) */
	while (put(p, big, 40, n, NULL) == RING_OK)
		n++;
	assert_int_equal(n, D / 64 - 1);	/* one slot short: never full */
	assert_int_equal(ring_bytes_free(&p->prod), 64);
	assert_int_equal(ring_bytes_to_read(&p->cons), D - 64);
	/* 56 bytes fit? free 64 > need 56: yes; then 8 free remain */
	assert_int_equal(put(p, big, 32, n, NULL), RING_OK);
	assert_int_equal(ring_bytes_free(&p->prod), 8);
	assert_int_equal(put(p, big, 0, n, NULL), RING_NOSPACE);
	pair_free(p);

	/* the largest packet: D - 8 bytes with trailer, in an empty ring */
	p = pair_new(0);
	assert_int_equal(put(p, big, D - 8 - 16 - 8, 1, &sig), RING_OK);
	assert_true(sig);
	assert_int_equal(ring_bytes_free(&p->prod), 8);
	assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_OK);
	assert_int_equal(pkt.len, D - 16);
	ring_commit(&p->cons);
	/* one more 8 bytes can never fit */
	assert_int_equal(put(p, big, D - 8 - 16, 1, &sig), RING_E_ARG);
	assert_int_equal(put(p, big, D, 1, &sig), RING_E_ARG);
	pair_free(p);
}

static void test_signal_mask(void **state)
{
	struct pair *p = pair_new(0);
	uint8_t b[32], out[64];
	struct ring_pkt pkt;
	bool sig;

	(void)state;
	ring_mask_interrupts(&p->cons);
	assert_int_equal(ctl(p)->interrupt_mask, 1);
	assert_int_equal(put(p, b, 8, 1, &sig), RING_OK);
	assert_false(sig);	/* masked */
	/* the consumer unmasks and sees the packet: keeps draining */
	assert_true(ring_unmask_interrupts(&p->cons));
	assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_OK);
	assert_false(ring_commit(&p->cons));
	assert_false(ring_unmask_interrupts(&p->cons));
	/* empty again, mask clear: the next write signals, then not again */
	assert_int_equal(put(p, b, 8, 2, &sig), RING_OK);
	assert_true(sig);
	assert_int_equal(put(p, b, 8, 3, &sig), RING_OK);
	assert_false(sig);
	/* reading without committing: the producer still sees it non-empty */
	assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_OK);
	assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_OK);
	assert_int_equal(put(p, b, 8, 4, &sig), RING_OK);
	assert_false(sig);
	pair_free(p);
}

static void test_pending_send_sz(void **state)
{
	struct pair *p = pair_new(RING_FEAT_PENDING_SEND_SZ);
	uint8_t b[200], out[256];
	struct ring_pkt pkt;
	uint32_t n = 0;

	(void)state;
	while (put(p, b, 40, n, NULL) == RING_OK)	/* 64 bytes each */
		n++;
	uint32_t need = ring_packet_bytes(200);	/* 224 */
	assert_int_equal(need, 224);
	assert_false(ring_want_space(&p->prod, need));
	assert_int_equal(ctl(p)->pending_send_sz, 224);
	/* free 64 -> 128 -> 192 -> 256: signal exactly when it passes 224 */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_OK);
		bool s = ring_commit(&p->cons);
		assert_int_equal(s, i == 2);
	}
	assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_OK);
	assert_false(ring_commit(&p->cons));	/* already enough before */
	assert_int_equal(put(p, b, 200, 99, NULL), RING_OK);
	assert_int_equal(ctl(p)->pending_send_sz, 0);	/* cleared by the write */

	/* a batch that crosses the threshold in one commit signals once */
	while (put(p, b, 40, n, NULL) == RING_OK)
		n++;
	assert_false(ring_want_space(&p->prod, need));
	for (int i = 0; i < 5; i++)
		assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_OK);
	assert_true(ring_commit(&p->cons));
	/* want_space when the space is there: true, pending cleared */
	assert_true(ring_want_space(&p->prod, need));
	assert_int_equal(ctl(p)->pending_send_sz, 0);
	pair_free(p);

	/* without the feature bit the consumer never signals */
	p = pair_new(0);
	n = 0;
	while (put(p, b, 40, n, NULL) == RING_OK)
		n++;
	ring_want_space(&p->prod, need);
	for (int i = 0; i < 6; i++)
		assert_int_equal(ring_read(&p->cons, out, sizeof(out), &pkt), RING_OK);
	assert_false(ring_commit(&p->cons));
	pair_free(p);
}

/* --- hostile rings --- */

/* A ring whose memory is exactly RING_BYTES of heap; the test writes the
 * control page and the data area by hand. */
static struct pair *hostile(void)
{
	struct pair *p = pair_new(RING_FEAT_PENDING_SEND_SZ);

	memset(data(p), 0, D);
	return p;
}

static void put_desc(struct pair *p, uint32_t at, uint16_t type,
		     uint16_t off8, uint16_t len8, uint16_t flags)
{
	struct ring_desc d = { type, off8, len8, flags, 7 };
	uint8_t *b = (uint8_t *)&d;

	for (uint32_t i = 0; i < sizeof(d); i++)
		data(p)[(at + i) % D] = b[i];
}

static enum ring_status peek_small(struct pair *p, uint32_t max)
{
	uint8_t *out = malloc(max ? max : 1);	/* exact size: ASan sees overruns */
	struct ring_pkt pkt;
	enum ring_status st;

	assert_non_null(out);
	st = ring_peek(&p->cons, out, max, &pkt);
	if (st == RING_OK) {
		assert_true(pkt.len <= max);
		assert_true(pkt.len >= 16 && pkt.payload_off >= 16 &&
			    pkt.payload_off <= pkt.len);
	}
	free(out);
	return st;
}

static void test_hostile_indices(void **state)
{
	struct pair *p = hostile();
	struct ring r;
	bool sig;
	uint8_t b[8] = { 0 };

	(void)state;
	/* write_index past the data area, at it, misaligned */
	ctl(p)->write_index = D;
	assert_int_equal(peek_small(p, 4096), RING_E_INDEX);
	ctl(p)->write_index = 0xfffffff8;
	assert_int_equal(peek_small(p, 4096), RING_E_INDEX);
	ctl(p)->write_index = 12;
	assert_int_equal(peek_small(p, 4096), RING_E_INDEX);
	assert_int_equal(ring_bytes_to_read(&p->cons), 0);
	/* read_index corrupt: the producer refuses to write */
	ctl(p)->write_index = 0;
	ctl(p)->read_index = D + 8;
	assert_int_equal(put(p, b, 8, 1, &sig), RING_E_INDEX);
	assert_false(ring_want_space(&p->prod, 64));
	assert_int_equal(ring_bytes_free(&p->prod), 0);
	ctl(p)->read_index = 4;
	assert_int_equal(put(p, b, 8, 1, &sig), RING_E_INDEX);
	/* attach to a corrupt ring */
	assert_int_equal(ring_attach(&r, p->mem, RING_BYTES), RING_E_INDEX);
	/* bad sizes */
	assert_int_equal(ring_attach(&r, p->mem, RING_PAGE_SIZE), RING_E_ARG);
	assert_int_equal(ring_attach(&r, p->mem, RING_BYTES + 8), RING_E_ARG);
	assert_int_equal(ring_attach(&r, NULL, RING_BYTES), RING_E_ARG);
	pair_free(p);
}

static void test_hostile_descriptors(void **state)
{
	struct pair *p;

	(void)state;
	/* offset8 < 2 */
	p = hostile();
	put_desc(p, 0, 6, 1, 4, 0);
	ctl(p)->write_index = 40;
	assert_int_equal(peek_small(p, 4096), RING_E_DESC);
	/* len8 < offset8 */
	put_desc(p, 0, 6, 5, 4, 0);
	assert_int_equal(peek_small(p, 4096), RING_E_DESC);
	/* reserved flag bits */
	put_desc(p, 0, 6, 2, 4, 0x8001);
	assert_int_equal(peek_small(p, 4096), RING_E_DESC);
	/* len8 past the published bytes (trailer missing) */
	put_desc(p, 0, 6, 2, 5, 0);
	assert_int_equal(peek_small(p, 4096), RING_E_SHORT);
	/* len8 = 0xffff: far past the ring */
	put_desc(p, 0, 6, 2, 0xffff, 0);
	assert_int_equal(peek_small(p, 1u << 20), RING_E_SHORT);
	/* offset8 = 0xffff with len8 = 0xffff */
	put_desc(p, 0, 6, 0xffff, 0xffff, 0);
	assert_int_equal(peek_small(p, 1u << 20), RING_E_SHORT);
	/* fewer bytes than descriptor + trailer published */
	put_desc(p, 0, 6, 2, 2, 0);
	ctl(p)->write_index = 16;
	assert_int_equal(peek_small(p, 4096), RING_E_SHORT);
	/* a valid packet: but longer than the caller's maximum; not consumed */
	ctl(p)->write_index = 40;
	put_desc(p, 0, 6, 2, 4, 0);
	assert_int_equal(peek_small(p, 31), RING_E_TOOBIG);
	assert_int_equal(peek_small(p, 32), RING_OK);
	assert_int_equal(peek_small(p, 32), RING_OK);	/* still there */
	pair_free(p);
}

/* Packets that wrap: a descriptor split across the end is legal and read
 * correctly; a packet claiming more than was published past the wrap is
 * refused. */
static void test_hostile_wrap(void **state)
{
	struct pair *p = hostile();
	uint8_t out[64];
	struct ring_pkt pkt;

	(void)state;
	ctl(p)->read_index = D - 8;
	assert_int_equal(ring_attach(&p->cons, p->mem, RING_BYTES), RING_OK);
	put_desc(p, D - 8, 6, 2, 3, 0);	/* 24-byte packet + 8 trailer */
	data(p)[16 - 8] = 0x77;		/* payload byte 0, after the wrap */
	ctl(p)->write_index = 24;	/* 8 + 24 = 32 bytes published */
	assert_int_equal(ring_peek(&p->cons, out, sizeof(out), &pkt), RING_OK);
	assert_int_equal(pkt.len, 24);
	assert_int_equal(out[16], 0x77);
	ring_advance(&p->cons);
	assert_int_equal(ring_peek(&p->cons, out, sizeof(out), &pkt), RING_EMPTY);

	/* same start, but the packet claims 5 units: ends after write_index */
	assert_int_equal(ring_attach(&p->cons, p->mem, RING_BYTES), RING_OK);
	put_desc(p, D - 8, 6, 2, 5, 0);
	assert_int_equal(peek_small(p, 4096), RING_E_SHORT);
	/* write index "behind" the read index by 8: the ring looks almost
	 * full (D - 8 bytes); a packet of 0xffff units still exceeds it */
	ctl(p)->write_index = D - 16;
	put_desc(p, D - 8, 6, 2, 0xffff, 0);
	assert_int_equal(peek_small(p, 1u << 20), RING_E_SHORT);
	/* a packet of exactly D - 8 bytes wrapping the whole ring is legal */
	put_desc(p, D - 8, 6, 2, (D - 16) / 8, 0);
	assert_int_equal(peek_small(p, D), RING_OK);
	pair_free(p);
}

/* Random control and data contents: whatever the ring says, the consumer
 * answers a status and never reads outside (checked by ASan). */
static void test_hostile_random(void **state)
{
	struct pair *p = hostile();
	uint64_t x = 0x9e3779b97f4a7c15ull;
	uint8_t *out = malloc(D);
	struct ring_pkt pkt;

	(void)state;
	assert_non_null(out);
	for (int it = 0; it < 20000; it++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		uint32_t rd = (uint32_t)(x % D) & ~7u;
		uint32_t w = (it & 7) ? (uint32_t)((x >> 20) % D) & ~7u
				      : (uint32_t)(x >> 32);
		ctl(p)->read_index = rd;
		ctl(p)->write_index = rd;
		if (ring_attach(&p->cons, p->mem, RING_BYTES) != RING_OK)
			continue;
		ctl(p)->write_index = w;
		put_desc(p, rd, (uint16_t)x, (uint16_t)(x >> 16) % 8,
			 (uint16_t)((x >> 24) % ((it & 1) ? 600 : 0x10000)),
			 (uint16_t)((it & 3) ? 0 : x >> 40));
		uint32_t max = (uint32_t)(x >> 45) % (D + 1);
		enum ring_status st;
		while ((st = ring_read(&p->cons, out, max, &pkt)) == RING_OK)
			assert_true(pkt.len <= max);
		assert_true(st != RING_NOSPACE && st != RING_E_ARG);
	}
	free(out);
	pair_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_format),
		cmocka_unit_test(test_extra_header),
		cmocka_unit_test(test_wraparound_many),
		cmocka_unit_test(test_never_full),
		cmocka_unit_test(test_signal_mask),
		cmocka_unit_test(test_pending_send_sz),
		cmocka_unit_test(test_hostile_indices),
		cmocka_unit_test(test_hostile_descriptors),
		cmocka_unit_test(test_hostile_wrap),
		cmocka_unit_test(test_hostile_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
