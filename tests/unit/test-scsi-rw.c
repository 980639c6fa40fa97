/* tsan-test: a concurrency test, run under ThreadSanitizer by make check TSAN=1.
 * The SCSI target's data path on memory disks of 512 and 4096-byte
 * blocks: READ/WRITE 6/10/12/16 with FUA, residuals, range and overflow
 * checks, read-only LUNs, block-layer errors as sense, VERIFY, WRITE
 * SAME, UNMAP, SYNCHRONIZE CACHE, GET LBA STATUS; many commands in flight
 * completing out of order; hot removal with commands in flight. */
#include "scsi-harness.h"
#include "ut.h"
#include "vhd/vhd.h"

#define DISK (4u << 20)

struct fx {
	struct scsi_target *t;
	struct memdisk *m0, *m1;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->t = scsi_target_new();
	f->m0 = md_new(DISK, 512, 512, true);
	f->m1 = md_new(DISK, 4096, 4096, false);
	assert_int_equal(scsi_lun_add(f->t, 0, &f->m0->b, 0), 0);
	assert_int_equal(scsi_lun_add(f->t, 1, &f->m1->b, 0), 0);
	clear_ua(f->t, 0, 1);
	clear_ua(f->t, 1, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	scsi_target_free(f->t);
	if (f->m0)
		bdev_close(&f->m0->b);
	bdev_close(&f->m1->b);
	free(f);
	return 0;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed * 13 + 1);
}

static void test_read_write_sizes(void **state)
{
	struct fx *f = *state;
	static const uint8_t rops[] = { 0x08, 0x28, 0xA8, 0x88 };
	static const uint8_t wops[] = { 0x0A, 0x2A, 0xAA, 0x8A };
	static const uint8_t lens[] = { 6, 10, 12, 16 };
	uint8_t c[16], w[3 * 4096], r[3 * 4096];
	struct tc x;

	for (uint32_t lun = 0; lun < 2; lun++) {
		uint32_t bs = lun ? 4096 : 512;

		for (int k = 0; k < 4; k++) {
			uint32_t lba = 5 + (uint32_t)k * 3;

			memset(c, 0, sizeof(c));
			c[0] = wops[k];
			if (lens[k] == 6) {
				c[3] = (uint8_t)lba;
				c[4] = 3;
			} else if (lens[k] == 10) {
				util_put_be32(c + 2, lba);
				util_put_be16(c + 7, 3);
			} else if (lens[k] == 12) {
				util_put_be32(c + 2, lba);
				util_put_be32(c + 6, 3);
			} else {
				util_put_be64(c + 2, lba);
				util_put_be32(c + 10, 3);
			}
			fill(w, 3 * bs, lun * 4 + (unsigned)k);
			assert_int_equal(run(f->t, &x, lun, 1, c, lens[k], SCSI_DIR_OUT,
					     w, 3 * bs), SCSI_GOOD);
			assert_int_equal(x.c.xfer_len, 3 * bs);
			assert_int_equal(x.c.residual, 0);
			assert_memory_equal((lun ? f->m1 : f->m0)->data + lba * bs, w, 3 * bs);
			c[0] = rops[k];
			memset(r, 0, sizeof(r));
			assert_int_equal(run(f->t, &x, lun, 1, c, lens[k], SCSI_DIR_IN,
					     r, 3 * bs), SCSI_GOOD);
			assert_memory_equal(r, w, 3 * bs);
		}
	}
}

static void test_fua_and_zero_length(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[512] = { 9 };
	struct tc x;

	cdb10(c, 0x2A, 1, 1);
	c[1] = 0x08;                                  /* FUA */
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 512), SCSI_GOOD);
	assert_true(f->m0->last_flags[BDEV_OP_WRITE] & BDEV_FUA);
	c[1] = 0x10;                                  /* DPO: ignored */
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 512), SCSI_GOOD);
	assert_false(f->m0->last_flags[BDEV_OP_WRITE] & BDEV_FUA);
	/* length 0: nothing moves; READ(6) length 0 means 256 blocks */
	cdb10(c, 0x28, 7, 0);
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_int_equal(x.c.xfer_len, 0);
	memset(c, 0, 6);
	c[0] = 0x08;
	assert_int_equal(run(f->t, &x, 0, 1, c, 6, SCSI_DIR_IN, NULL, 0), SCSI_GOOD);
	assert_int_equal(x.c.residual, -256 * 512);
	/* RDPROTECT */
	cdb10(c, 0x28, 0, 1);
	c[1] = 0x20;
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_IN, b, 512);
	assert_field(&x, 1, 7);
}

static void test_range_and_overflow(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[1024];
	struct tc x;
	uint64_t blocks = DISK / 512;

	cdb16(c, 0x88, blocks - 1, 2);                 /* one past the end */
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_IN, b, 1024);
	assert_sense(&x, 5, 0x21, 0);
	cdb16(c, 0x88, blocks - 2, 2);
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_IN, b, 1024), SCSI_GOOD);
	cdb16(c, 0x88, UINT64_MAX, 2);                 /* LBA + count wraps */
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_IN, b, 1024);
	assert_sense(&x, 5, 0x21, 0);
	cdb16(c, 0x8A, UINT64_MAX - 1, 4);
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 1024);
	assert_sense(&x, 5, 0x21, 0);
	cdb16(c, 0x88, blocks, 0);                     /* length 0 past the end */
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_IN, NULL, 0);
	assert_sense(&x, 5, 0x21, 0);
	/* a CDB shorter than its opcode needs */
	cdb16(c, 0x88, 0, 1);
	tc_prep(&x, 0, 1, c, 16, SCSI_DIR_IN, b, 512);
	x.c.cdb_len = 10;
	scsi_submit(f->t, &x.c);
	tc_wait(&x);
	assert_sense(&x, 5, 0x24, 0);
}

static void test_residuals(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[4096];
	struct tc x;

	memset(f->m0->data, 0xAB, 8 * 512);
	/* buffer larger than the command: underflow */
	cdb10(c, 0x28, 0, 2);
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_IN, b, 4096), SCSI_GOOD);
	assert_int_equal(x.c.xfer_len, 1024);
	assert_int_equal(x.c.residual, 3072);
	/* smaller: overflow, what fits moves */
	memset(b, 0, sizeof(b));
	cdb10(c, 0x28, 0, 4);
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_IN, b, 700), SCSI_GOOD);
	assert_int_equal(x.c.xfer_len, 700);
	assert_int_equal(x.c.residual, -(2048 - 700));
	assert_int_equal(b[699], 0xAB);
	assert_int_equal(b[700], 0);
	/* write of 2 blocks with 1.5 blocks of data: one block written */
	memset(b, 0x11, sizeof(b));
	cdb10(c, 0x2A, 0, 2);
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 768), SCSI_GOOD);
	assert_int_equal(x.c.xfer_len, 512);
	assert_int_equal(x.c.residual, 768 - 1024);
	assert_int_equal(f->m0->data[511], 0x11);
	assert_int_equal(f->m0->data[512], 0xAB);
	/* a WRITE whose buffer was declared data-in writes nothing */
	memset(b, 0x99, sizeof(b));
	cdb10(c, 0x2A, 0, 1);
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_IN, b, 512), SCSI_GOOD);
	assert_int_equal(x.c.xfer_len, 0);
	assert_int_equal(f->m0->data[0], 0x11);
	/* VERIFY of more than we buffer */
	cdb16(c, 0x8F, 0, 1u << 30);
	c[1] = 0x06;
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 512);
	assert_sense(&x, 5, 0x24, 0);
	/* scattered buffer */
	{
		uint8_t a[100], z[924];

		cdb10(c, 0x28, 0, 2);
		tc_prep(&x, 0, 1, c, 10, SCSI_DIR_IN, a, sizeof(a));
		x.iov[1] = (struct iovec){ z, sizeof(z) };
		x.c.iovcnt = 2;
		scsi_submit(f->t, &x.c);
		tc_wait(&x);
		assert_int_equal(x.c.status, SCSI_GOOD);
		assert_int_equal(x.c.xfer_len, 1024);
		assert_memory_equal(a, f->m0->data, 100);
		assert_memory_equal(z, f->m0->data + 100, 924);
	}
}

static void test_read_only(void **state)
{
	struct fx *f = *state;
	struct memdisk *m = md_new(DISK, 512, 512, true);
	uint8_t c[16], b[512] = { 0 };
	struct tc x;

	assert_int_equal(scsi_lun_add(f->t, 2, &m->b, SCSI_LUN_READ_ONLY), 0);
	clear_ua(f->t, 2, 1);
	cdb10(c, 0x2A, 0, 1);
	run(f->t, &x, 2, 1, c, 10, SCSI_DIR_OUT, b, 512);
	assert_sense(&x, 7, 0x27, 0);
	cdb16(c, 0x93, 0, 1);
	run(f->t, &x, 2, 1, c, 16, SCSI_DIR_OUT, b, 512);
	assert_sense(&x, 7, 0x27, 0);
	memset(c, 0, 10);
	c[0] = 0x42;
	c[8] = 24;
	run(f->t, &x, 2, 1, c, 10, SCSI_DIR_OUT, b, 24);
	assert_sense(&x, 7, 0x27, 0);
	cdb10(c, 0x28, 0, 1);
	assert_int_equal(run(f->t, &x, 2, 1, c, 10, SCSI_DIR_IN, b, 512), SCSI_GOOD);
	assert_int_equal(m->count[BDEV_OP_WRITE] + m->count[BDEV_OP_WRITE_ZEROES] +
			 m->count[BDEV_OP_DISCARD], 0);
	/* a disk opened read-only is a read-only LUN too */
	assert_int_equal(scsi_lun_remove(f->t, 2), 0);
	m->b.read_only = true;
	assert_int_equal(scsi_lun_add(f->t, 2, &m->b, 0), 0);
	clear_ua(f->t, 2, 1);
	cdb10(c, 0x2A, 0, 1);
	run(f->t, &x, 2, 1, c, 10, SCSI_DIR_OUT, b, 512);
	assert_sense(&x, 7, 0x27, 0);
	assert_int_equal(scsi_lun_remove(f->t, 2), 0);
	bdev_close(&m->b);
}

static void test_bdev_errors(void **state)
{
	struct fx *f = *state;
	static const struct {
		int op, err;
		uint8_t cmd, status, key, asc, ascq;
	} cases[] = {
		{ BDEV_OP_READ, EIO, 0x28, SCSI_CHECK_CONDITION, 3, 0x11, 0 },
		{ BDEV_OP_WRITE, EIO, 0x2A, SCSI_CHECK_CONDITION, 3, 0x0C, 0 },
		{ BDEV_OP_WRITE, ENOSPC, 0x2A, SCSI_CHECK_CONDITION, 7, 0x27, 7 },
		{ BDEV_OP_WRITE, EROFS, 0x2A, SCSI_CHECK_CONDITION, 7, 0x27, 0 },
		{ BDEV_OP_READ, ENXIO, 0x28, SCSI_CHECK_CONDITION, 2, 0x3A, 0 },
		{ BDEV_OP_READ, ENOMEM, 0x28, SCSI_TASK_SET_FULL, 0, 0, 0 },
		{ BDEV_OP_FLUSH, EIO, 0x35, SCSI_CHECK_CONDITION, 3, 0x0C, 0 },
	};
	uint8_t c[10], b[512] = { 0 };
	struct tc x;

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
		f->m0->fail_op = cases[i].op + 1;
		f->m0->fail_err = cases[i].err;
		cdb10(c, cases[i].cmd, 3, 1);
		run(f->t, &x, 0, 1, c, 10,
		    cases[i].cmd == 0x28 ? SCSI_DIR_IN : SCSI_DIR_OUT, b, 512);
		assert_int_equal(x.c.status, cases[i].status);
		if (cases[i].status == SCSI_CHECK_CONDITION)
			assert_sense(&x, cases[i].key, cases[i].asc, cases[i].ascq);
	}
	f->m0->fail_op = 0;
}

static void test_verify(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[2048];
	struct tc x;

	fill(f->m0->data + 10 * 512, 2048, 3);
	cdb10(c, 0x2F, 10, 4);                       /* BYTCHK 0 */
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	cdb10(c, 0x2F, DISK / 512 - 1, 4);
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 5, 0x21, 0);
	memcpy(b, f->m0->data + 10 * 512, 2048);
	cdb16(c, 0x8F, 10, 4);
	c[1] = 0x02;                                 /* BYTCHK 1 */
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 2048), SCSI_GOOD);
	b[1500] ^= 1;
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 2048);
	assert_sense(&x, 0x0E, 0x1D, 0);
	assert_int_equal(x.c.sense[0], 0xF0);        /* VALID */
	assert_int_equal(util_get_be32(x.c.sense + 3), 1500);
	/* BYTCHK 3: one block against each */
	memset(f->m0->data + 20 * 512, 0x5A, 4 * 512);
	memset(b, 0x5A, 512);
	cdb10(c, 0x2F, 20, 4);
	c[1] = 0x06;
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 512), SCSI_GOOD);
	f->m0->data[23 * 512 + 5] = 0;
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 512);
	assert_sense(&x, 0x0E, 0x1D, 0);
	assert_int_equal(util_get_be32(x.c.sense + 3), 3 * 512 + 5);
	c[1] = 0x04;                                 /* BYTCHK 2: reserved */
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 512);
	assert_field(&x, 1, 2);
}

static void test_write_same(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[4096];
	struct tc x;

	/* a pattern over several chunks */
	fill(b, 512, 8);
	cdb16(c, 0x93, 100, 3000);
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 512), SCSI_GOOD);
	for (int i = 0; i < 3000; i++)
		assert_memory_equal(f->m0->data + (100 + i) * 512, b, 512);
	assert_int_equal(f->m0->data[99 * 512 + 511], 0);
	assert_int_equal(f->m0->data[3100 * 512], 0);
	/* zeros with UNMAP: write-zeroes that may deallocate */
	memset(b, 0, 512);
	c[1] = 0x08;
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 512), SCSI_GOOD);
	assert_true(f->m0->last_flags[BDEV_OP_WRITE_ZEROES] & BDEV_MAY_UNMAP);
	assert_int_equal(f->m0->data[(100 + 2999) * 512], 0);
	assert_int_equal(f->m0->alloc[200], 0);
	/* NDOB: no data-out buffer at all */
	fill(f->m0->data, 4096, 1);
	c[1] = 0x01;
	cdb16(c + 2 - 2, 0x93, 0, 8);
	c[1] = 0x01;
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_false(f->m0->last_flags[BDEV_OP_WRITE_ZEROES] & BDEV_MAY_UNMAP);
	assert_int_equal(f->m0->data[4095], 0);
	/* WRITE SAME(10) on 4 KiB blocks */
	fill(b, 4096, 2);
	cdb10(c, 0x41, 3, 2);
	assert_int_equal(run(f->t, &x, 1, 1, c, 10, SCSI_DIR_OUT, b, 4096), SCSI_GOOD);
	assert_memory_equal(f->m1->data + 4 * 4096, b, 4096);
	/* zero blocks (WSNZ 0): from the LBA to the end of the disk */
	fill(b, 4096, 5);
	cdb10(c, 0x41, 1000, 0);
	assert_int_equal(run(f->t, &x, 1, 1, c, 10, SCSI_DIR_OUT, b, 4096), SCSI_GOOD);
	assert_memory_equal(f->m1->data + 1000 * 4096, b, 4096);
	assert_memory_equal(f->m1->data + DISK - 4096, b, 4096);
	assert_int_not_equal(f->m1->data[999 * 4096], b[0]);
	cdb10(c, 0x41, DISK / 4096, 0);               /* at the end: nothing left */
	run(f->t, &x, 1, 1, c, 10, SCSI_DIR_OUT, b, 4096);
	assert_sense(&x, 5, 0x21, 0);
	/* too long, anchor, out of range */
	cdb16(c, 0x93, 0, 1u << 30);
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 512);
	assert_field(&x, 10, -1);
	cdb16(c, 0x93, 0, 1);
	c[1] = 0x10;
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 512);
	assert_field(&x, 1, 4);
	cdb16(c, 0x93, DISK / 512, 1);
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 512);
	assert_sense(&x, 5, 0x21, 0);
	/* a data-out buffer of other than one block: INVALID FIELD IN CDB at
	 * the block count, nothing written (libiscsi InvalidDataOutSize) */
	memset(f->m0->data, 0, 4096);
	memset(b, 0xA6, sizeof(b));
	cdb16(c, 0x93, 0, 1);
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 256);
	assert_field(&x, 10, -1);
	cdb10(c, 0x41, 0, 1);
	c[1] = 0x08;                                  /* UNMAP, as libiscsi */
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 1024);
	assert_field(&x, 7, -1);
	assert_int_equal(x.c.residual, 512);
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_IN, b, 512);
	assert_field(&x, 7, -1);
	assert_int_equal(f->m0->data[0], 0);
	cdb16(c, 0x93, 0, 1);
	c[1] = 0x01;                                  /* NDOB with data */
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 512);
	assert_field(&x, 10, -1);
	/* write protection first, whatever the buffer (libiscsi ReadOnly) */
	cdb10(c, 0x41, 0, 1);
	c[1] = 0x08;
	assert_int_equal(scsi_lun_remove(f->t, 0), 0);
	assert_int_equal(scsi_lun_add(f->t, 0, &f->m0->b, SCSI_LUN_READ_ONLY), 0);
	clear_ua(f->t, 0, 1);
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, NULL, 0);
	assert_sense(&x, 7, 0x27, 0);
}

/* An UNMAP parameter list with n descriptors. */
static size_t unmap_list(uint8_t *p, const uint64_t (*d)[2], int n)
{
	memset(p, 0, 8 + 16 * (size_t)n);
	util_put_be16(p, (uint16_t)(6 + 16 * n));
	util_put_be16(p + 2, (uint16_t)(16 * n));
	for (int i = 0; i < n; i++) {
		util_put_be64(p + 8 + 16 * i, d[i][0]);
		util_put_be32(p + 8 + 16 * i + 8, (uint32_t)d[i][1]);
	}
	return 8 + 16 * (size_t)n;
}

static void test_unmap(void **state)
{
	struct fx *f = *state;
	static const uint64_t good[][2] = { { 10, 4 }, { 100, 0 }, { 200, 8 } };
	static const uint64_t bad[][2] = { { 10, 4 }, { DISK / 512 - 2, 4 } };
	static const uint64_t wrap[][2] = { { UINT64_MAX - 1, 4 } };
	uint8_t c[10] = { 0x42 }, p[8 + 16 * 300];
	size_t n;
	struct tc x;

	memset(f->m0->data, 0x77, DISK);
	memset(f->m0->alloc, 1, DISK / 512);
	n = unmap_list(p, good, 3);
	util_put_be16(c + 7, (uint16_t)n);
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, p, n), SCSI_GOOD);
	assert_int_equal(f->m0->count[BDEV_OP_DISCARD], 2);
	assert_int_equal(f->m0->data[10 * 512], 0);
	assert_int_equal(f->m0->data[14 * 512 - 1], 0);
	assert_int_equal(f->m0->data[14 * 512], 0x77);
	assert_int_equal(f->m0->data[207 * 512], 0);
	assert_int_equal(f->m0->data[208 * 512], 0x77);
	/* one descriptor out of range: nothing is unmapped */
	memset(f->m0->data, 0x77, DISK);
	n = unmap_list(p, bad, 2);
	util_put_be16(c + 7, (uint16_t)n);
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, p, n);
	assert_sense(&x, 5, 0x21, 0);
	assert_int_equal(f->m0->data[10 * 512], 0x77);
	n = unmap_list(p, wrap, 1);
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, p, n);
	assert_sense(&x, 5, 0x21, 0);
	/* too many descriptors */
	{
		static uint64_t many[257][2];

		for (int i = 0; i < 257; i++) {
			many[i][0] = (uint64_t)i;
			many[i][1] = 1;
		}
		n = unmap_list(p, (const uint64_t (*)[2])many, 257);
		util_put_be16(c + 7, (uint16_t)n);
		run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, p, n);
		assert_sense(&x, 5, 0x26, 0);
	}
	/* short parameter list; length 0 is a no-op; anchor */
	util_put_be16(c + 7, 6);
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, p, 6);
	assert_sense(&x, 5, 0x1A, 0);
	util_put_be16(c + 7, 0);
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	c[1] = 1;
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_NONE, NULL, 0);
	assert_field(&x, 1, 0);
	/* a LUN that cannot unmap */
	c[1] = 0;
	util_put_be16(c + 7, 24);
	run(f->t, &x, 1, 1, c, 10, SCSI_DIR_OUT, p, 24);
	assert_sense(&x, 5, 0x24, 0);
}

static void test_sync_cache(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];
	struct tc x;
	int n = f->m0->count[BDEV_OP_FLUSH];

	cdb10(c, 0x35, 0, 0);
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	cdb16(c, 0x91, 5, 10);
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_int_equal(f->m0->count[BDEV_OP_FLUSH], n + 2);
	cdb16(c, 0x91, DISK / 512, 1);
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 5, 0x21, 0);
}

static void test_get_lba_status(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[8 + 16 * 8];
	struct tc x;

	/* blocks 0-9 mapped, 10-19 deallocated, 20-end mapped */
	memset(f->m0->alloc, 1, DISK / 512);
	memset(f->m0->alloc + 10, 0, 10);
	cdb16(c, 0x9E, 4, sizeof(b));
	c[1] = 0x12;
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_IN, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be32(b), 4 + 3 * 16);
	assert_int_equal(util_get_be64(b + 8), 4);
	assert_int_equal(util_get_be32(b + 16), 6);
	assert_int_equal(b[20] & 0x0f, 0);
	assert_int_equal(util_get_be64(b + 24), 10);
	assert_int_equal(util_get_be32(b + 32), 10);
	assert_int_equal(b[36] & 0x0f, 1);
	assert_int_equal(util_get_be64(b + 40), 20);
	assert_int_equal(util_get_be32(b + 48), DISK / 512 - 20);
	assert_int_equal(b[52] & 0x0f, 0);
	/* room for one descriptor only */
	util_put_be32(c + 10, 24);
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_IN, b, 24), SCSI_GOOD);
	assert_int_equal(util_get_be32(b), 4 + 16);
	/* the last LBA works; past the end is out of range */
	cdb16(c, 0x9E, DISK / 512 - 1, sizeof(b));
	c[1] = 0x12;
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_IN, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be32(b + 16), 1);
	cdb16(c, 0x9E, DISK / 512, sizeof(b));
	c[1] = 0x12;
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_IN, b, sizeof(b));
	assert_sense(&x, 5, 0x21, 0);
}

/* A dynamic VHD: blocks never written are deallocated, a written one is
 * mapped. */
static void test_get_lba_status_vhd(void **state)
{
	struct fx *f = *state;
	char dir[] = "/tmp/test-scsi-rw.XXXXXX";
	struct vhd_create_opts co = { .type = VHD_TYPE_DYNAMIC, .size = 8u << 20 };
	struct vhd_open_opts oo = { 0 };
	struct bdev_err e = { 0 };
	struct bdev *v;
	uint8_t c[16], b[8 + 16 * 8], w[4096];
	struct tc x;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(vhd_create(ut_path(dir, "d.vhd"), &co, &e), 0);
	v = vhd_open(ut_path(dir, "d.vhd"), &oo, &e);
	assert_non_null(v);
	assert_int_equal(scsi_lun_add(f->t, 3, v, 0), 0);
	clear_ua(f->t, 3, 1);
	memset(w, 0x3C, sizeof(w));
	cdb10(c, 0x2A, 4096, 8);                      /* at 2 MiB */
	assert_int_equal(run(f->t, &x, 3, 1, c, 10, SCSI_DIR_OUT, w, 4096), SCSI_GOOD);
	cdb16(c, 0x9E, 0, sizeof(b));
	c[1] = 0x12;
	assert_int_equal(run(f->t, &x, 3, 1, c, 16, SCSI_DIR_IN, b, sizeof(b)), SCSI_GOOD);
	assert_true(util_get_be32(b) >= 4 + 2 * 16);
	assert_int_equal(util_get_be64(b + 8), 0);
	assert_int_equal(util_get_be32(b + 16), 4096);
	assert_int_equal(b[20] & 0x0f, 1);            /* deallocated */
	assert_int_equal(util_get_be64(b + 24), 4096);
	assert_true(util_get_be32(b + 32) >= 8);
	assert_int_equal(b[36] & 0x0f, 0);            /* mapped */
	/* one block unmapped inside the 2 MiB block (which stays: a dynamic
	 * VHD frees whole blocks only): asked from the next LBA, the first
	 * descriptor starts there, mapped (libiscsi UnmapSingle's check) */
	{
		uint8_t u[24] = { 0, 22, 0, 16 };

		util_put_be64(u + 8, 4096);
		util_put_be32(u + 16, 1);
		cdb10(c, 0x42, 0, sizeof(u));
		assert_int_equal(run(f->t, &x, 3, 1, c, 10, SCSI_DIR_OUT, u, sizeof(u)),
				 SCSI_GOOD);
	}
	cdb16(c, 0x9E, 4097, 24);
	c[1] = 0x12;
	assert_int_equal(run(f->t, &x, 3, 1, c, 16, SCSI_DIR_IN, b, 24), SCSI_GOOD);
	assert_int_equal(util_get_be64(b + 8), 4097);
	assert_int_equal(b[20] & 0x0f, 0);
	assert_int_equal(scsi_lun_remove(f->t, 3), 0);
	bdev_close(v);
	ut_rmtree(dir);
}

/* 64 commands in flight at once, completed in reverse order. */
static void test_many_in_flight(void **state)
{
	struct fx *f = *state;
	enum { N = 64 };
	static struct tc xs[N];
	static uint8_t bufs[N][1024], cdbs[N][10];

	f->m0->hold = true;
	for (int i = 0; i < N; i++) {
		bool wr = i % 2 == 0;

		fill(bufs[i], 1024, (unsigned)i);
		if (!wr)
			fill(f->m0->data + (uint64_t)i * 1024, 1024, 1000u + (unsigned)i);
		cdb10(cdbs[i], wr ? 0x2A : 0x28, (uint32_t)i * 2, 2);
		tc_prep(&xs[i], 0, 1, cdbs[i], 10, wr ? SCSI_DIR_OUT : SCSI_DIR_IN,
			bufs[i], 1024);
		scsi_submit(f->t, &xs[i].c);
	}
	assert_int_equal(md_wait_held(f->m0, N), N);
	for (int i = 0; i < N; i++)
		assert_false(tc_is_done(&xs[i]));
	md_release(f->m0);
	for (int i = 0; i < N; i++) {
		uint8_t want[1024];

		tc_wait(&xs[i]);
		assert_int_equal(xs[i].c.status, SCSI_GOOD);
		if (i % 2 == 0) {
			assert_memory_equal(f->m0->data + (uint64_t)i * 1024, bufs[i], 1024);
		} else {
			fill(want, 1024, 1000u + (unsigned)i);
			assert_memory_equal(bufs[i], want, 1024);
		}
	}
}

struct remover {
	struct scsi_target *t;
	int r;
	bool done;
};

static void *remove_thread(void *arg)
{
	struct remover *rm = arg;

	rm->r = scsi_lun_remove(rm->t, 0);
	__atomic_store_n(&rm->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Hot removal: the commands in flight end with errors, the remove waits
 * for them, later commands get LOGICAL UNIT NOT SUPPORTED. */
static void test_hot_remove(void **state)
{
	struct fx *f = *state;
	static struct tc xs[8];
	static uint8_t bufs[8][512], cdbs[8][10];
	struct remover rm = { .t = f->t };
	pthread_t th;
	struct tc x;

	f->m0->hold = true;
	for (int i = 0; i < 8; i++) {
		cdb10(cdbs[i], i % 2 ? 0x28 : 0x2A, (uint32_t)i, 1);
		tc_prep(&xs[i], 0, 1, cdbs[i], 10, i % 2 ? SCSI_DIR_IN : SCSI_DIR_OUT,
			bufs[i], 512);
		scsi_submit(f->t, &xs[i].c);
	}
	assert_int_equal(md_wait_held(f->m0, 8), 8);
	assert_int_equal(pthread_create(&th, NULL, remove_thread, &rm), 0);
	usleep(50000);
	assert_false(__atomic_load_n(&rm.done, __ATOMIC_SEQ_CST));
	/* new commands are refused at once, while the old ones still run */
	run(f->t, &x, 0, 1, cdbs[1], 10, SCSI_DIR_IN, bufs[1], 512);
	assert_sense(&x, 5, 0x25, 0);
	md_release(f->m0);
	pthread_join(th, NULL);
	assert_int_equal(rm.r, 0);
	for (int i = 0; i < 8; i++) {
		assert_true(tc_is_done(&xs[i]));
		assert_sense(&xs[i], 5, 0x25, 0);
	}
	/* the disk is free to close; LUN 1 still works, after its UA */
	bdev_close(&f->m0->b);
	f->m0 = NULL;
	run(f->t, &x, 1, 1, cdbs[1], 10, SCSI_DIR_IN, bufs[1], 512);
	assert_sense(&x, 6, 0x3F, 0x0E);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_write_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fua_and_zero_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_and_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_residuals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bdev_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_same, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unmap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_lba_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_lba_status_vhd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hot_remove, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
