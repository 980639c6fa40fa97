/* nbd server commands, driven by libnbd: every command against a model of
 * the disk (unaligned too), structured reads with holes and DF, block
 * status through a differencing chain, FAST_ZERO, concurrent requests with
 * out-of-order replies, error replies, and what a flush at stop leaves on
 * disk. */
#include "nbd-harness.h"

#define SIZE (16u << 20)
#define MB (1u << 20)

struct fx {
	struct th t;
	struct gate_bdev *g;
	struct bdev *vhd;          /* under the gate */
	char path[PATH_MAX], base[PATH_MAX];
	uint8_t *model;            /* what the disk must read as */
};

static void serve(struct fx *f, struct nbdsrv_opts *o)
{
	f->g = gate_new(f->vhd);
	f->t.b = &f->g->b;
	th_server(&f->t, o);
}

/* Dynamic 16 MiB VHD (2 MiB blocks): pattern 1 at [0, 64K), pattern 2 at
 * [4M, 4M+4K).  A dynamic VHD allocates whole blocks: [0, 2M) and
 * [4M, 6M) are data, the rest unallocated. */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	th_init(&f->t);
	th_path(&f->t, "d.vhd", f->path, sizeof(f->path));
	th_vhd_create(f->path, VHD_TYPE_DYNAMIC, SIZE, NULL);
	f->vhd = th_vhd_open(f->path, false);
	th_write_pattern(f->vhd, 0, 65536, 1);
	th_write_pattern(f->vhd, 4 * MB, 4096, 2);
	f->model = calloc(1, SIZE);
	th_fill(f->model, 65536, 0, 1);
	th_fill(f->model + 4 * MB, 4096, 4 * MB, 2);
	*state = f;
	return 0;
}

/* A chain: base with pattern 1 at [0, 64K) and 3 at [4M, 5M); child with
 * pattern 4 at [64K, 128K) and 5 at [8M, 8M+4K), and zeros written at
 * [4M, 4M+64K).  The child is served.  The base, dynamic, allocates whole
 * 2 MiB blocks ([0, 2M) and [4M, 6M) hold data); the child, differencing,
 * marks 4 KiB granules. */
static int setup_chain(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct bdev *b;

	th_init(&f->t);
	th_path(&f->t, "base.vhd", f->base, sizeof(f->base));
	th_path(&f->t, "child.vhd", f->path, sizeof(f->path));
	th_vhd_create(f->base, VHD_TYPE_DYNAMIC, SIZE, NULL);
	b = th_vhd_open(f->base, false);
	th_write_pattern(b, 0, 65536, 1);
	th_write_pattern(b, 4 * MB, MB, 3);
	bdev_close(b);
	th_vhd_create(f->path, VHD_TYPE_DIFF, 0, f->base);
	f->vhd = th_vhd_open(f->path, false);
	th_write_pattern(f->vhd, 65536, 65536, 4);
	th_write_pattern(f->vhd, 8 * MB, 4096, 5);
	assert_int_equal(bdev_write_zeroes(f->vhd, 4 * MB, 65536, 0), 0);
	f->model = calloc(1, SIZE);
	th_fill(f->model, 65536, 0, 1);
	th_fill(f->model + 4 * MB, MB, 4 * MB, 3);
	th_fill(f->model + 65536, 65536, 65536, 4);
	th_fill(f->model + 8 * MB, 4096, 8 * MB, 5);
	memset(f->model + 4 * MB, 0, 65536);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->g)
		gate_release(f->g);
	th_close_all(&f->t);
	if (f->t.s)
		nbdsrv_stop(f->t.s);
	th_join(&f->t);
	if (f->t.s)
		nbdsrv_free(f->t.s);
	if (f->g)
		bdev_close(&f->g->b);
	if (f->vhd)
		bdev_close(f->vhd);
	th_fini(&f->t);
	free(f->model);
	free(f);
	return 0;
}

static void close_clean(struct fx *f, struct nbd_handle *h)
{
	assert_int_equal(nbd_shutdown(h, 0), 0);
	th_close(&f->t, h);
	assert_int_equal(th_join(&f->t), 0);
}

/* Compare [off, off+len) as read through h with the model. */
static void check_model(struct fx *f, struct nbd_handle *h, uint64_t off,
			size_t len)
{
	uint8_t *got = malloc(len);

	memset(got, 0xa5, len);
	if (nbd_pread(h, got, len, off, 0) == -1)
		fail_msg("pread %llu+%zu: %s", (unsigned long long)off, len,
			 nbd_get_error());
	if (memcmp(got, f->model + off, len)) {
		size_t i = 0;

		while (got[i] == f->model[off + i])
			i++;
		fail_msg("byte %llu differs: got 0x%02x, want 0x%02x",
			 (unsigned long long)(off + i), got[i], f->model[off + i]);
	}
	free(got);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Random writes (some FUA), zeroes (with and without NO_HOLE) and reads at
 * any alignment, checked against the model; then everything must be on
 * disk after the server stops and the image is reopened. */
static void test_commands_model(void **state)
{
	struct fx *f = *state;
	struct nbd_handle *h;
	uint64_t seed = 0x1234567;
	uint8_t *buf = malloc(256 << 10);

	serve(f, NULL);
	h = th_nbd_pair(&f->t, NULL);
	for (int i = 0; i < 300; i++) {
		uint64_t op = rnd(&seed) % 5;
		size_t len = 1 + rnd(&seed) % (op == 4 ? (256u << 10) : (96u << 10));
		uint64_t off = rnd(&seed) % (SIZE - len + 1);

		if (i % 7 == 0)
			off &= ~(uint64_t)4095;   /* some aligned requests too */
		switch (op) {
		case 0:
		case 1:
			th_fill(buf, len, off, (unsigned)i + 10);
			if (nbd_pwrite(h, buf, len, off, op ? LIBNBD_CMD_FLAG_FUA : 0))
				fail_msg("pwrite: %s", nbd_get_error());
			memcpy(f->model + off, buf, len);
			break;
		case 2:
			if (nbd_zero(h, len, off, rnd(&seed) & 1 ? LIBNBD_CMD_FLAG_NO_HOLE : 0))
				fail_msg("zero: %s", nbd_get_error());
			memset(f->model + off, 0, len);
			break;
		default:
			check_model(f, h, off, len);
			break;
		}
	}
	assert_int_equal(nbd_flush(h, 0), 0);
	check_model(f, h, 0, SIZE);
	close_clean(f, h);
	/* Reopen from disk.  The gate (the served disk) wraps f->vhd: it
	 * must not keep the closed one (teardown's close flushes through it). */
	bdev_close(f->vhd);
	f->vhd = th_vhd_open(f->path, true);
	if (f->g)
		f->g->inner = f->vhd;
	for (uint64_t off = 0; off < SIZE; off += 256 << 10) {
		assert_int_equal(bdev_read(f->vhd, buf, off, 256 << 10), 0);
		assert_memory_equal(buf, f->model + off, 256 << 10);
	}
	free(buf);
}

/* TRIM, CACHE, FLUSH, FUA: accepted; data outside a trimmed range stays. */
static void test_trim_cache_flush(void **state)
{
	struct fx *f = *state;
	struct nbd_handle *h;

	serve(f, NULL);
	h = th_nbd_pair(&f->t, NULL);
	assert_int_equal(nbd_cache(h, SIZE, 0, 0), 0);
	assert_int_equal(nbd_trim(h, 16384, 16384, 0), 0);
	assert_int_equal(nbd_trim(h, 4096, 32768, LIBNBD_CMD_FLAG_FUA), 0);
	assert_int_equal(nbd_flush(h, 0), 0);
	check_model(f, h, 0, 16384);
	check_model(f, h, 36864, SIZE - 36864);
	close_clean(f, h);
}

struct chunk {
	uint64_t off;
	size_t len;
	unsigned status;
};

struct chunks {
	int n;
	struct chunk c[16];
};

static int chunk_cb(void *opaque, const void *sub, size_t count,
		    uint64_t off, unsigned status, int *error)
{
	struct chunks *cs = opaque;

	(void)sub;
	(void)error;
	if (cs->n < 16)
		cs->c[cs->n] = (struct chunk){ off, count, status };
	cs->n++;
	return 0;
}

static void pread_chunks(struct nbd_handle *h, uint8_t *buf, size_t len,
			 uint64_t off, uint32_t flags, struct chunks *cs)
{
	memset(cs, 0, sizeof(*cs));
	if (nbd_pread_structured(h, buf, len, off,
				 (nbd_chunk_callback){ .callback = chunk_cb,
						       .user_data = cs }, flags))
		fail_msg("pread_structured: %s", nbd_get_error());
}

static void test_structured_holes(void **state)
{
	struct fx *f = *state;
	uint8_t *buf = malloc(8 * MB);
	struct nbd_handle *h;
	struct chunks cs;
	const struct chunk want[] = {
		{ MB, MB, LIBNBD_READ_DATA },
		{ 2 * MB, 2 * MB, LIBNBD_READ_HOLE },
		{ 4 * MB, 2 * MB, LIBNBD_READ_DATA },
		{ 6 * MB, MB + 5, LIBNBD_READ_HOLE },
	};

	serve(f, NULL);
	h = th_nbd_pair(&f->t, NULL);
	pread_chunks(h, buf, 6 * MB + 5, MB, 0, &cs);
	assert_int_equal(cs.n, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(cs.c[i].off, want[i].off);
		assert_int_equal(cs.c[i].len, want[i].len);
		assert_int_equal(cs.c[i].status, want[i].status);
	}
	assert_memory_equal(buf, f->model + MB, 6 * MB + 5);
	/* A read inside a hole: one hole chunk, no payload. */
	pread_chunks(h, buf, 65536, 3 * MB + 5, 0, &cs);
	assert_int_equal(cs.n, 1);
	assert_int_equal(cs.c[0].status, LIBNBD_READ_HOLE);
	assert_true(util_is_zero(buf, 65536));
	/* DF: one data chunk, zeros included. */
	pread_chunks(h, buf, 8 * MB, 0, LIBNBD_CMD_FLAG_DF, &cs);
	assert_int_equal(cs.n, 1);
	assert_int_equal(cs.c[0].status, LIBNBD_READ_DATA);
	assert_int_equal(cs.c[0].len, 8 * MB);
	assert_memory_equal(buf, f->model, 8 * MB);
	close_clean(f, h);
	free(buf);
}

struct extents {
	uint64_t next;             /* offset after the last extent seen */
	int n;
	uint64_t off[64], len[64];
	uint32_t flags[64];
};

static int extent_cb(void *opaque, const char *ctx, uint64_t off,
		     uint32_t *e, size_t n, int *error)
{
	struct extents *x = opaque;

	(void)error;
	assert_string_equal(ctx, "base:allocation");
	assert_int_equal(off, x->next);
	for (size_t i = 0; i + 1 < n; i += 2) {
		/* Merge equal neighbours: the server may split anywhere. */
		if (x->n && x->flags[x->n - 1] == e[i + 1]) {
			x->len[x->n - 1] += e[i];
		} else {
			assert_true(x->n < 64);
			x->off[x->n] = x->next;
			x->len[x->n] = e[i];
			x->flags[x->n++] = e[i + 1];
		}
		x->next += e[i];
	}
	return 0;
}

static void test_block_status_chain(void **state)
{
	struct fx *f = *state;
	struct extents x = { 0 };
	struct nbd_handle *h;
	const uint32_t H = LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO;
	const struct { uint64_t off, len; uint32_t flags; } want[] = {
		{ 0, 2 * MB, 0 },                        /* base + child data */
		{ 2 * MB, 2 * MB, H },
		{ 4 * MB, 2 * MB, 0 },                   /* child zeros + base data */
		{ 6 * MB, 2 * MB, H },
		{ 8 * MB, 4096, 0 },                     /* child granule */
		{ 8 * MB + 4096, 8 * MB - 4096, H },
	};

	serve(f, NULL);
	h = th_nbd_pair(&f->t, NULL);
	while (x.next < SIZE)
		if (nbd_block_status(h, SIZE - x.next, x.next,
				     (nbd_extent_callback){ .callback = extent_cb,
							    .user_data = &x }, 0))
			fail_msg("block_status: %s", nbd_get_error());
	assert_int_equal(x.n, 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(x.off[i], want[i].off);
		assert_int_equal(x.len[i], want[i].len);
		assert_int_equal(x.flags[i], want[i].flags);
	}
	/* REQ_ONE: exactly one extent, within the request. */
	memset(&x, 0, sizeof(x));
	x.next = 65536;
	assert_int_equal(nbd_block_status(h, 32768, 65536,
			(nbd_extent_callback){ .callback = extent_cb, .user_data = &x },
			LIBNBD_CMD_FLAG_REQ_ONE), 0);
	assert_int_equal(x.n, 1);
	assert_int_equal(x.len[0], 32768);
	assert_int_equal(x.flags[0], 0);
	/* Reads through the chain. */
	check_model(f, h, 0, SIZE);
	close_clean(f, h);
}

/* FAST_ZERO fails quickly (ENOTSUP, nothing changed) where zeroing would
 * mean writing (the parent has data); plain zeroing then works. */
static void test_fast_zero_chain(void **state)
{
	struct fx *f = *state;
	struct nbd_handle *h;

	serve(f, NULL);
	h = th_nbd_pair(&f->t, NULL);
	assert_int_equal(nbd_zero(h, 65536, 4 * MB + 131072, LIBNBD_CMD_FLAG_FAST_ZERO), -1);
	assert_int_equal(nbd_get_errno(), ENOTSUP);
	check_model(f, h, 4 * MB, MB);
	/* Nothing below: fast. */
	assert_int_equal(nbd_zero(h, MB, 12 * MB, LIBNBD_CMD_FLAG_FAST_ZERO), 0);
	assert_int_equal(nbd_zero(h, 65536, 4 * MB + 131072, 0), 0);
	memset(f->model + 4 * MB + 131072, 0, 65536);
	check_model(f, h, 0, SIZE);
	close_clean(f, h);
}

static bool wait_done(struct nbd_handle *h, int64_t cookie)
{
	for (int i = 0; i < 2000; i++) {
		int r = nbd_aio_command_completed(h, (uint64_t)cookie);

		if (r == 1)
			return true;
		if (r == -1)
			fail_msg("command failed: %s", nbd_get_error());
		if (nbd_poll(h, 10) == -1)
			fail_msg("poll: %s", nbd_get_error());
	}
	return false;
}

/* A read held inside the bdev does not hold up later requests of the same
 * connection: their replies overtake it. */
static void test_out_of_order(void **state)
{
	struct fx *f = *state;
	uint8_t a[4096], b[4096];
	struct nbd_handle *h;
	int64_t ca, cb;

	serve(f, NULL);
	h = th_nbd_pair(&f->t, NULL);
	gate_hold(f->g, 0, 4096);
	ca = nbd_aio_pread(h, a, sizeof(a), 0, NBD_NULL_COMPLETION, 0);
	assert_true(ca > 0);
	gate_wait_held(f->g, 1);
	cb = nbd_aio_pread(h, b, sizeof(b), MB, NBD_NULL_COMPLETION, 0);
	assert_true(cb > 0);
	assert_true(wait_done(h, cb));
	assert_int_equal(nbd_aio_command_completed(h, (uint64_t)ca), 0);
	assert_memory_equal(b, f->model + MB, sizeof(b));
	gate_release(f->g);
	assert_true(wait_done(h, ca));
	assert_memory_equal(a, f->model, sizeof(a));
	close_clean(f, h);
}

/* Many requests in flight on few workers: all complete, in budget. */
static void test_many_in_flight(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .workers = 2 };
	static uint8_t w[64][65536], r[64][65536];
	int64_t ck[128];
	struct nbdsrv_stats st;
	struct nbd_handle *h;

	serve(f, &o);
	h = th_nbd_pair(&f->t, NULL);
	for (int i = 0; i < 64; i++) {
		th_fill(w[i], sizeof(w[i]), (uint64_t)i * 131072, (unsigned)i + 50);
		ck[i] = nbd_aio_pwrite(h, w[i], sizeof(w[i]), (uint64_t)i * 131072,
				       NBD_NULL_COMPLETION, 0);
		assert_true(ck[i] > 0);
	}
	for (int i = 0; i < 64; i++)
		assert_true(wait_done(h, ck[i]));
	for (int i = 0; i < 64; i++) {
		ck[64 + i] = nbd_aio_pread(h, r[i], sizeof(r[i]), (uint64_t)i * 131072,
					   NBD_NULL_COMPLETION, 0);
		assert_true(ck[64 + i] > 0);
	}
	for (int i = 0; i < 64; i++) {
		assert_true(wait_done(h, ck[64 + i]));
		assert_memory_equal(r[i], w[i], sizeof(w[i]));
	}
	nbdsrv_get_stats(f->t.s, &st);
	assert_true(st.requests >= 128);
	assert_true(st.buf_peak <= 64u << 20);
	close_clean(f, h);
	nbdsrv_get_stats(f->t.s, &st);
	assert_int_equal(st.buf_bytes, 0);
}

struct writer {
	struct nbd_handle *h;
	int id;
	uint64_t base;
	int err;
};

#define PIECE 300
#define PIECES 200

/* Client id writes pieces id, id+4, id+8, ... of PIECE bytes from base:
 * neighbours come from other clients and share 4 KiB granules. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[PIECE];

	for (int j = 0; j < PIECES && !w->err; j++) {
		uint64_t off = w->base + (uint64_t)(j * 4 + w->id) * PIECE;

		th_fill(buf, PIECE, off, 77);
		if (nbd_pwrite(w->h, buf, PIECE, off, 0))
			w->err = nbd_get_errno() ? nbd_get_errno() : EIO;
	}
	return NULL;
}

/* Four clients write interleaved unaligned pieces at once into a
 * differencing image (granule read-modify-write races inside the server
 * and the VHD layer); a flush on one, then every byte reads back right. */
static void test_concurrent_clients(void **state)
{
	struct fx *f = *state;
	struct writer w[4];
	pthread_t t[4];
	uint64_t bases[2] = { 8 * MB - 100000, 4 * MB + 7 };
	struct nbd_handle *r;

	serve(f, NULL);
	th_listen(&f->t);
	for (int b = 0; b < 2; b++) {
		for (int i = 0; i < 4; i++) {
			w[i] = (struct writer){ th_nbd_unix(&f->t), i, bases[b], 0 };
			assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
		}
		for (int i = 0; i < 4; i++) {
			pthread_join(t[i], NULL);
			assert_int_equal(w[i].err, 0);
		}
		assert_int_equal(nbd_flush(w[0].h, 0), 0);
		for (int i = 0; i < 4; i++)
			th_close(&f->t, w[i].h);
		th_fill(f->model + bases[b], 4 * PIECES * PIECE, bases[b], 77);
	}
	r = th_nbd_unix(&f->t);
	check_model(f, r, 0, SIZE);
	th_close(&f->t, r);
	assert_int_equal(th_stop(&f->t), 0);
}

/* A failing read gets EIO; the session goes on. */
static void test_read_error(void **state)
{
	struct fx *f = *state;
	uint8_t buf[8192];
	struct nbd_handle *h;

	serve(f, NULL);
	h = th_nbd_pair(&f->t, NULL);
	f->g->fail_off = 32768;
	f->g->fail_len = 4096;
	assert_int_equal(nbd_pread(h, buf, sizeof(buf), 28672, 0), -1);
	assert_int_equal(nbd_get_errno(), EIO);
	assert_true(th_logged(&f->t, "injected read error"));
	check_model(f, h, MB, MB);
	close_clean(f, h);
}

static void lax(struct nbd_handle *h)
{
	nbd_set_strict_mode(h, 0);
}

/* Bad ranges and lengths get the protocol's errors; the session goes on. */
static void test_bad_requests(void **state)
{
	struct fx *f = *state;
	struct extents x = { 0 };
	uint8_t buf[4096] = { 0 };
	struct nbd_handle *h;

	serve(f, NULL);
	h = th_nbd_pair(&f->t, lax);
	assert_int_equal(nbd_pread(h, buf, 4096, SIZE - 512, 0), -1);
	assert_int_equal(nbd_get_errno(), EINVAL);
	assert_int_equal(nbd_pwrite(h, buf, 4096, SIZE - 512, 0), -1);
	assert_int_equal(nbd_get_errno(), ENOSPC);
	assert_int_equal(nbd_zero(h, 4096, SIZE, 0), -1);
	assert_int_equal(nbd_get_errno(), ENOSPC);
	assert_int_equal(nbd_trim(h, 4096, UINT64_MAX - 100, 0), -1);
	assert_int_equal(nbd_get_errno(), EINVAL);
	assert_int_equal(nbd_cache(h, 8192, SIZE - 4096, 0), -1);
	assert_int_equal(nbd_get_errno(), EINVAL);
	x.next = SIZE - 4096;
	assert_int_equal(nbd_block_status(h, 8192, SIZE - 4096,
			(nbd_extent_callback){ .callback = extent_cb, .user_data = &x }, 0), -1);
	assert_int_equal(nbd_get_errno(), EINVAL);
	/* DF is for reads only. */
	assert_int_equal(nbd_pwrite(h, buf, 4096, 0, LIBNBD_CMD_FLAG_DF), -1);
	assert_int_equal(nbd_get_errno(), EINVAL);
	/* Zero-length requests succeed without effect. */
	assert_int_equal(nbd_pread(h, buf, 0, 0, 0), 0);
	assert_int_equal(nbd_pwrite(h, buf, 0, 0, 0), 0);
	check_model(f, h, 0, MB + 4096);
	close_clean(f, h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commands_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trim_cache_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_structured_holes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_block_status_chain, setup_chain, teardown),
		cmocka_unit_test_setup_teardown(test_fast_zero_chain, setup_chain, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_clients, setup_chain, teardown),
		cmocka_unit_test_setup_teardown(test_read_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
