/* Commands that read the medium around a write or instead of one, on
 * memory disks of 512 and 4096-byte blocks: WRITE AND VERIFY 10/12/16
 * (write-through, read back, BYTCHK compare, residuals like WRITE),
 * ORWRITE 16 (read, OR, write; FUA), VERIFY 12, PRE-FETCH 10/16 (range
 * checks only); their errors with the sense bytes; their entries in
 * REPORT SUPPORTED OPERATION CODES. */
#include "scsi-harness.h"

#define DISK (1u << 20)

struct fx {
	struct scsi_target *t;
	struct memdisk *m0, *m1;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->t = scsi_target_new();
	f->m0 = md_new(DISK, 512, 4096, true);
	f->m1 = md_new(DISK, 4096, 4096, false);
	assert_int_equal(scsi_lun_add(f->t, 0, &f->m0->b, 0), 0);
	assert_int_equal(scsi_lun_add(f->t, 1, &f->m1->b, SCSI_LUN_READ_ONLY), 0);
	clear_ua(f->t, 0, 1);
	clear_ua(f->t, 1, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	scsi_target_free(f->t);
	bdev_close(&f->m0->b);
	bdev_close(&f->m1->b);
	free(f);
	return 0;
}

/* A 12-byte CDB (LBA in bytes 2-5, length in 6-9). */
static void cdb12(uint8_t *c, uint8_t op, uint32_t lba, uint32_t n)
{
	memset(c, 0, 12);
	c[0] = op;
	util_put_be32(c + 2, lba);
	util_put_be32(c + 6, n);
}

/* WRITE AND VERIFY in its three sizes: the data lands, written through
 * (FUA), then is read back; BYTCHK 0 and 1 both succeed. */
static void test_write_verify(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[4 * 512];
	struct tc x;

	for (int i = 0; i < 3; i++) {
		static const uint8_t len[] = { 10, 12, 16 };
		int reads = f->m0->count[BDEV_OP_READ];

		memset(b, 0x41 + i, sizeof(b));
		if (len[i] == 10)
			cdb10(c, 0x2E, 8, 4);
		else if (len[i] == 12)
			cdb12(c, 0xAE, 8, 4);
		else
			cdb16(c, 0x8E, 8, 4);
		c[1] = i == 1 ? 0x00 : 0x02 | 0x10;    /* BYTCHK 1, DPO */
		assert_int_equal(run(f->t, &x, 0, 1, c, len[i], SCSI_DIR_OUT, b,
				     sizeof(b)), SCSI_GOOD);
		assert_memory_equal(f->m0->data + 8 * 512, b, sizeof(b));
		assert_true(f->m0->last_flags[BDEV_OP_WRITE] & BDEV_FUA);
		assert_int_equal(f->m0->count[BDEV_OP_READ], reads + 1);
		assert_int_equal(x.c.residual, 0);
		assert_int_equal(x.c.xfer_len, sizeof(b));
	}
}

/* Residuals as libiscsi's WriteVerify*Residuals expect: a short buffer
 * moves its whole blocks (overflow), a long one the command's blocks
 * (underflow), and nothing beyond them is written. */
static void test_write_verify_residuals(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[3 * 512];
	struct tc x;

	memset(f->m0->data, 'a', 2 * 512);
	memset(b, 'b', sizeof(b));
	cdb10(c, 0x2E, 0, 2);
	c[1] = 0x02;
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 512), SCSI_GOOD);
	assert_int_equal(x.c.residual, -512);
	assert_int_equal(f->m0->data[0], 'b');
	assert_int_equal(f->m0->data[512], 'a');
	cdb10(c, 0x2E, 4, 1);
	c[1] = 0x02;
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(x.c.residual, 2 * 512);
	assert_int_equal(f->m0->data[5 * 512], 0);
	/* less than a block: nothing moves, GOOD with the overflow */
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 200), SCSI_GOOD);
	assert_int_equal(x.c.residual, 200 - 512);
	assert_int_equal(x.c.xfer_len, 0);
	/* zero blocks: GOOD, nothing touched */
	cdb10(c, 0x2E, 0, 0);
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
}

static void test_write_verify_errors(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[4096] = { 0 };
	struct tc x;

	cdb10(c, 0x2E, 0, 1);
	c[1] = 0x20;                                  /* WRPROTECT */
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 512);
	assert_field(&x, 1, 7);
	c[1] = 0x06;                                  /* BYTCHK 11b */
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 512);
	assert_field(&x, 1, 2);
	cdb16(c, 0x8E, DISK / 512 - 1, 2);
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 1024);
	assert_sense(&x, 5, 0x21, 0);
	cdb16(c, 0x8E, UINT64_MAX, 1);
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 512);
	assert_sense(&x, 5, 0x21, 0);
	cdb12(c, 0xAE, 0, 1);                         /* read-only LUN */
	run(f->t, &x, 1, 1, c, 12, SCSI_DIR_OUT, b, 4096);
	assert_sense(&x, 7, 0x27, 0);
	/* the write fails: WRITE ERROR; the read back fails: READ ERROR */
	f->m0->fail_op = BDEV_OP_WRITE + 1;
	f->m0->fail_err = EIO;
	cdb10(c, 0x2E, 0, 1);
	c[1] = 0x02;
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 512);
	assert_sense(&x, 3, 0x0C, 0);
	f->m0->fail_op = BDEV_OP_READ + 1;
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_OUT, b, 512);
	assert_sense(&x, 3, 0x11, 0);
}

/* ORWRITE: the medium becomes medium | data, with FUA when asked. */
static void test_orwrite(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[2 * 512];
	struct tc x;

	memset(f->m0->data + 16 * 512, 0xA0, 2 * 512);
	f->m0->data[16 * 512 + 3] = 0x01;
	memset(b, 0x05, sizeof(b));
	cdb16(c, 0x8B, 16, 2);
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(f->m0->data[16 * 512], 0xA5);
	assert_int_equal(f->m0->data[16 * 512 + 3], 0x05);
	assert_int_equal(f->m0->data[18 * 512 - 1], 0xA5);
	assert_int_equal(f->m0->data[18 * 512], 0);   /* nothing beyond */
	assert_false(f->m0->last_flags[BDEV_OP_WRITE] & BDEV_FUA);
	memset(b, 0x5A, sizeof(b));
	c[1] = 0x08 | 0x10;                           /* FUA, DPO */
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(f->m0->data[17 * 512 + 100], 0xFF);
	assert_true(f->m0->last_flags[BDEV_OP_WRITE] & BDEV_FUA);
	/* a short buffer ORs its whole blocks only */
	memset(f->m0->data + 40 * 512, 0, 2 * 512);
	cdb16(c, 0x8B, 40, 2);
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 700), SCSI_GOOD);
	assert_int_equal(x.c.residual, 700 - 1024);
	assert_int_equal(f->m0->data[40 * 512 + 511], 0x5A);
	assert_int_equal(f->m0->data[41 * 512], 0);
}

static void test_orwrite_errors(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[4096] = { 0 };
	struct tc x;
	int writes;

	cdb16(c, 0x8B, 0, 1);
	c[1] = 0x60;                                  /* ORPROTECT */
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 512);
	assert_field(&x, 1, 7);
	cdb16(c, 0x8B, DISK / 512, 0);                /* zero blocks past the end */
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 5, 0x21, 0);
	cdb16(c, 0x8B, 0, 0);
	assert_int_equal(run(f->t, &x, 0, 1, c, 16, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	cdb16(c, 0x8B, 0, 1);
	run(f->t, &x, 1, 1, c, 16, SCSI_DIR_OUT, b, 4096);
	assert_sense(&x, 7, 0x27, 0);
	/* the read fails: nothing is written */
	f->m0->fail_op = BDEV_OP_READ + 1;
	f->m0->fail_err = EIO;
	writes = f->m0->count[BDEV_OP_WRITE];
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_OUT, b, 512);
	assert_sense(&x, 3, 0x11, 0);
	assert_int_equal(f->m0->count[BDEV_OP_WRITE], writes);
}

/* VERIFY 12 shares VERIFY's handler: compare and miscompare offset. */
static void test_verify12(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], b[1024];
	struct tc x;

	memset(f->m0->data + 30 * 512, 0x77, sizeof(b));
	memset(b, 0x77, sizeof(b));
	cdb12(c, 0xAF, 30, 2);
	c[1] = 0x02 | 0x10;                           /* BYTCHK 1, DPO */
	assert_int_equal(run(f->t, &x, 0, 1, c, 12, SCSI_DIR_OUT, b, sizeof(b)), SCSI_GOOD);
	b[600] = 0;
	run(f->t, &x, 0, 1, c, 12, SCSI_DIR_OUT, b, sizeof(b));
	assert_sense(&x, 0x0E, 0x1D, 0);
	assert_int_equal(util_get_be32(x.c.sense + 3), 600);
	cdb12(c, 0xAF, DISK / 512, 1);
	run(f->t, &x, 0, 1, c, 12, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 5, 0x21, 0);
}

/* PRE-FETCH 10/16: GOOD inside the disk (IMMED and a group number too),
 * LBA OUT OF RANGE outside, no I/O either way. */
static void test_prefetch(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];
	struct tc x;
	int reads = f->m0->count[BDEV_OP_READ];

	cdb10(c, 0x34, 0, 256);
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	cdb10(c, 0x34, DISK / 512 - 1, 1);
	c[1] = 0x02;                                  /* IMMED */
	c[6] = 3;                                     /* group */
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	cdb10(c, 0x34, 0, 0);
	assert_int_equal(run(f->t, &x, 0, 1, c, 10, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	cdb10(c, 0x34, DISK / 512 + 1, 0);
	run(f->t, &x, 0, 1, c, 10, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 5, 0x21, 0);
	cdb16(c, 0x90, DISK / 512 - 1, 2);
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 5, 0x21, 0);
	cdb16(c, 0x90, UINT64_MAX, 0);
	run(f->t, &x, 0, 1, c, 16, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 5, 0x21, 0);
	cdb16(c, 0x90, 8, 8);
	assert_int_equal(run(f->t, &x, 1, 1, c, 16, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_int_equal(f->m0->count[BDEV_OP_READ], reads);
}

/* REPORT SUPPORTED OPERATION CODES, one command: the usage data libiscsi
 * checks (DPO/FUA for ORWRITE, DPO for WRITE AND VERIFY). */
static void test_rsoc_usage(void **state)
{
	struct fx *f = *state;
	static const struct { uint8_t op, len, byte1; } want[] = {
		{ 0x2E, 10, 0x12 }, { 0xAE, 12, 0x12 }, { 0x8E, 16, 0x12 },
		{ 0x8B, 16, 0x18 }, { 0xAF, 12, 0x16 }, { 0x34, 10, 0x02 },
		{ 0x90, 16, 0x02 },
	};
	uint8_t c[12] = { 0xA3, 0x0C, 0x01 }, b[64];
	struct tc x;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		c[3] = want[i].op;
		util_put_be32(c + 6, sizeof(b));
		assert_int_equal(run(f->t, &x, 0, 1, c, 12, SCSI_DIR_IN, b, sizeof(b)),
				 SCSI_GOOD);
		assert_int_equal(b[1] & 0x07, 3);     /* supported */
		assert_int_equal(util_get_be16(b + 2), want[i].len);
		assert_int_equal(b[4], want[i].op);
		assert_int_equal(b[5], want[i].byte1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_verify_residuals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_verify_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orwrite, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orwrite_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify12, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rsoc_usage, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
