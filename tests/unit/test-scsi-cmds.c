/* The SCSI target's non-data commands, each with its sense on bad input:
 * INQUIRY and its VPD pages, READ CAPACITY, REPORT LUNS, TEST UNIT READY,
 * REQUEST SENSE, REPORT SUPPORTED OPERATION CODES, MODE SENSE/SELECT,
 * START STOP UNIT, PREVENT ALLOW; unit attentions (power on, capacity
 * changed, LUNs changed), absent LUNs, unknown opcodes. */
#include "scsi-harness.h"

#define DISK (1u << 20)

struct fx {
	struct scsi_target *t;
	struct memdisk *m0, *m1;
};

/* LUN 0: 512-byte blocks on 4 KiB physical, thin (unmap); LUN 1: 4 KiB
 * native, no unmap, read-only. */
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

static uint8_t inq(struct fx *f, struct tc *x, uint32_t lun, uint8_t b1,
		   uint8_t page, uint8_t *buf, uint16_t alloc)
{
	uint8_t c[6] = { 0x12, b1, page, 0, 0, 0 };

	util_put_be16(c + 3, alloc);
	return run(f->t, x, lun, 1, c, 6, SCSI_DIR_IN, buf, alloc);
}

static void test_inquiry_standard(void **state)
{
	struct fx *f = *state;
	uint8_t b[255];
	struct tc x;

	assert_int_equal(inq(f, &x, 0, 0, 0, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(x.c.xfer_len, 96);
	assert_int_equal(x.c.residual, 255 - 96);
	assert_int_equal(b[0], 0x00);
	assert_int_equal(b[4], 91);
	assert_int_equal(b[7] & 0x02, 0x02);             /* CMDQUE */
	assert_memory_equal(b + 8, "Msft    Virtual Disk    1.0 ", 28);
	/* allocation length 36: just 36 bytes */
	assert_int_equal(inq(f, &x, 0, 0, 0, b, 36), SCSI_GOOD);
	assert_int_equal(x.c.xfer_len, 36);
	assert_int_equal(x.c.residual, 0);
	/* no LUN 5: peripheral qualifier 3, type 0x1F */
	assert_int_equal(inq(f, &x, 5, 0, 0, b, 36), SCSI_GOOD);
	assert_int_equal(b[0], 0x7F);
	/* page code without EVPD, CMDDT */
	inq(f, &x, 0, 0, 0x80, b, 36);
	assert_field(&x, 2, -1);
	inq(f, &x, 0, 0x02, 0, b, 36);
	assert_field(&x, 1, 1);
}

static void test_inquiry_vpd(void **state)
{
	struct fx *f = *state;
	static const uint8_t pages[] = { 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2 };
	uint8_t b[255];
	struct tc x;

	assert_int_equal(inq(f, &x, 0, 1, 0x00, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(b[1], 0x00);
	assert_int_equal(util_get_be16(b + 2), sizeof(pages));
	assert_memory_equal(b + 4, pages, sizeof(pages));
	/* serial */
	assert_int_equal(inq(f, &x, 0, 1, 0x80, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be16(b + 2), 7);
	assert_memory_equal(b + 4, "SER-512", 7);
	/* device identification: T10 vendor id, then NAA 6 */
	assert_int_equal(inq(f, &x, 0, 1, 0x83, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be16(b + 2), 44 + 20);
	assert_int_equal(b[4] & 0x0f, 2);
	assert_int_equal(b[5] & 0x0f, 1);
	assert_memory_equal(b + 8, "Msft    30313233", 16);
	assert_int_equal(b[48] & 0x0f, 1);
	assert_int_equal(b[49] & 0x0f, 3);
	assert_int_equal(b[51], 16);
	assert_int_equal(b[52] >> 4, 6);
	/* block limits */
	assert_int_equal(inq(f, &x, 0, 1, 0xB0, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be16(b + 2), 0x3C);
	assert_int_equal(b[4] & 0x01, 0);                    /* WSNZ 0 */
	assert_int_equal(util_get_be16(b + 6), 8);           /* 4096/512 */
	assert_int_equal(util_get_be32(b + 12), 65536 / 512);
	assert_int_equal(util_get_be32(b + 20), UINT32_MAX);
	assert_int_equal(util_get_be32(b + 24), 256);
	assert_int_equal(util_get_be32(b + 28), 1);
	assert_true(util_get_be64(b + 36) > 0);
	/* characteristics: non-rotating */
	assert_int_equal(inq(f, &x, 0, 1, 0xB1, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be16(b + 4), 1);
	/* provisioning: LBPU LBPWS LBPWS10, LBPRZ, thin; none on LUN 1 */
	assert_int_equal(inq(f, &x, 0, 1, 0xB2, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(b[5], 0xE4);
	assert_int_equal(b[6] & 7, 2);
	assert_int_equal(inq(f, &x, 1, 1, 0xB2, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(b[5], 0);
	assert_int_equal(inq(f, &x, 1, 1, 0xB0, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be32(b + 24), 0);
	/* unknown page */
	inq(f, &x, 0, 1, 0x89, b, sizeof(b));
	assert_field(&x, 2, -1);
}

static void test_read_capacity(void **state)
{
	struct fx *f = *state;
	uint8_t c10[10] = { 0x25 }, c16[16] = { 0x9E, 0x10 }, b[32];
	struct tc x;

	assert_int_equal(run(f->t, &x, 0, 1, c10, 10, SCSI_DIR_IN, b, 8), SCSI_GOOD);
	assert_int_equal(util_get_be32(b), DISK / 512 - 1);
	assert_int_equal(util_get_be32(b + 4), 512);
	util_put_be32(c16 + 10, 32);
	assert_int_equal(run(f->t, &x, 0, 1, c16, 16, SCSI_DIR_IN, b, 32), SCSI_GOOD);
	assert_int_equal(util_get_be64(b), DISK / 512 - 1);
	assert_int_equal(util_get_be32(b + 8), 512);
	assert_int_equal(b[13] & 0x0f, 3);                  /* 4096/512 */
	assert_int_equal(b[14] & 0xC0, 0xC0);               /* LBPME LBPRZ */
	assert_int_equal(run(f->t, &x, 1, 1, c16, 16, SCSI_DIR_IN, b, 32), SCSI_GOOD);
	assert_int_equal(util_get_be64(b), DISK / 4096 - 1);
	assert_int_equal(util_get_be32(b + 8), 4096);
	assert_int_equal(b[13], 0);
	assert_int_equal(b[14], 0);
	/* allocation length 12: 12 bytes */
	util_put_be32(c16 + 10, 12);
	assert_int_equal(run(f->t, &x, 0, 1, c16, 16, SCSI_DIR_IN, b, 32), SCSI_GOOD);
	assert_int_equal(x.c.xfer_len, 12);
	assert_int_equal(x.c.residual, 20);
	/* PMI clear with an LBA */
	c10[5] = 1;
	run(f->t, &x, 0, 1, c10, 10, SCSI_DIR_IN, b, 8);
	assert_field(&x, 2, -1);
	/* unknown service action of 0x9E */
	c16[1] = 0x11;
	run(f->t, &x, 0, 1, c16, 16, SCSI_DIR_IN, b, 32);
	assert_field(&x, 1, 4);
}

/* SCSI_LUN_4K: 4096-byte logical blocks on disks of 512-byte sectors (one
 * with 512-byte physical blocks, LUN 2; the 512e disk of LUN 0, LUN 3):
 * capacity and block limits in 4 KiB blocks, LBA n at byte 4096 n; a
 * disk whose size is not a multiple of 4096 cannot be one. */
static void test_lun_4k(void **state)
{
	struct fx *f = *state;
	struct memdisk *m2 = md_new(DISK, 512, 512, true);
	struct memdisk *odd = md_new(DISK + 512, 512, 512, true);
	uint8_t c16[16] = { 0x9E, 0x10 }, b[255], w[4096];
	uint8_t cw[10] = { 0x2A, 0, 0, 0, 0, 2, 0, 0, 1, 0 };   /* WRITE 10 LBA 2 */
	uint8_t cr[10] = { 0x28, 0, 0, 0, 0, 2, 0, 0, 1, 0 };   /* READ 10 LBA 2 */
	struct tc x;

	assert_int_equal(scsi_lun_add(f->t, 4, &odd->b, SCSI_LUN_4K), -EINVAL);
	bdev_close(&odd->b);
	assert_int_equal(scsi_lun_add(f->t, 2, &m2->b, SCSI_LUN_4K), 0);
	assert_int_equal(scsi_lun_add(f->t, 3, &f->m0->b, SCSI_LUN_4K | SCSI_LUN_READ_ONLY), 0);
	clear_ua(f->t, 2, 1);
	clear_ua(f->t, 3, 1);
	for (uint32_t lun = 2; lun <= 3; lun++) {
		util_put_be32(c16 + 10, 32);
		assert_int_equal(run(f->t, &x, lun, 1, c16, 16, SCSI_DIR_IN, b, 32), SCSI_GOOD);
		assert_int_equal(util_get_be64(b), DISK / 4096 - 1);
		assert_int_equal(util_get_be32(b + 8), 4096);
		assert_int_equal(b[13] & 0x0f, 0);            /* one block a physical */
		assert_int_equal(inq(f, &x, lun, 1, 0xB0, b, sizeof(b)), SCSI_GOOD);
		assert_int_equal(util_get_be16(b + 6), 1);    /* granularity */
		assert_int_equal(util_get_be32(b + 28), 1);   /* unmap granularity */
	}
	for (size_t i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i * 5 + 3);
	assert_int_equal(run(f->t, &x, 2, 1, cw, 10, SCSI_DIR_OUT, w, sizeof(w)), SCSI_GOOD);
	assert_memory_equal(m2->data + 2 * 4096, w, sizeof(w));
	memcpy(f->m0->data + 2 * 4096, w, sizeof(w));
	{
		uint8_t r[4096];

		assert_int_equal(run(f->t, &x, 3, 1, cr, 10, SCSI_DIR_IN, r, sizeof(r)), SCSI_GOOD);
		assert_memory_equal(r, w, sizeof(w));
	}
	/* past the end in 4 KiB blocks */
	util_put_be32(cr + 2, DISK / 4096);
	run(f->t, &x, 2, 1, cr, 10, SCSI_DIR_IN, w, sizeof(w));
	assert_sense(&x, SCSI_SK_ILLEGAL_REQUEST, 0x21, 0x00);
	assert_int_equal(scsi_lun_remove(f->t, 2), 0);
	assert_int_equal(scsi_lun_remove(f->t, 3), 0);
	bdev_close(&m2->b);
}

static void test_report_luns(void **state)
{
	struct fx *f = *state;
	uint8_t c[12] = { 0xA0 }, b[64];
	struct tc x;

	util_put_be32(c + 6, sizeof(b));
	/* works on a LUN that does not exist */
	assert_int_equal(run(f->t, &x, 9, 1, c, 12, SCSI_DIR_IN, b, sizeof(b)),
			 SCSI_GOOD);
	assert_int_equal(util_get_be32(b), 16);
	assert_int_equal(b[9], 0);
	assert_int_equal(b[17], 1);
	assert_int_equal(x.c.xfer_len, 24);
	util_put_be32(c + 6, 8);                      /* < 16 */
	run(f->t, &x, 0, 1, c, 12, SCSI_DIR_IN, b, 8);
	assert_field(&x, 6, -1);
	util_put_be32(c + 6, 64);
	c[2] = 0x10;                                  /* select report */
	run(f->t, &x, 0, 1, c, 12, SCSI_DIR_IN, b, 64);
	assert_field(&x, 2, -1);
}

static void test_absent_lun_and_opcode(void **state)
{
	struct fx *f = *state;
	uint8_t tur[6] = { 0 }, rs[6] = { 0x03, 0, 0, 0, 18, 0 }, bad[6] = { 0xC7 };
	uint8_t b[18];
	struct tc x;

	run(f->t, &x, 7, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 5, 0x25, 0);
	run(f->t, &x, 1000, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 5, 0x25, 0);
	/* REQUEST SENSE on it returns that as data */
	assert_int_equal(run(f->t, &x, 7, 1, rs, 6, SCSI_DIR_IN, b, 18), SCSI_GOOD);
	assert_int_equal(b[2], 5);
	assert_int_equal(b[12], 0x25);
	run(f->t, &x, 0, 1, bad, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 5, 0x20, 0);
	/* NACA in the control byte */
	tur[5] = 0x04;
	run(f->t, &x, 0, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_field(&x, 5, 2);
}

static void test_unit_attentions(void **state)
{
	struct fx *f = *state;
	uint8_t tur[6] = { 0 }, rs[6] = { 0x03, 0, 0, 0, 18, 0 }, b[18];
	uint8_t inqc[6] = { 0x12, 0, 0, 0, 36, 0 }, ib[36];
	struct memdisk *m2 = md_new(DISK, 512, 512, false);
	struct tc x;

	/* a new initiator: POWER ON once; INQUIRY does not report it */
	assert_int_equal(run(f->t, &x, 0, 2, inqc, 6, SCSI_DIR_IN, ib, 36), SCSI_GOOD);
	run(f->t, &x, 0, 2, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 6, 0x29, 0);
	assert_int_equal(run(f->t, &x, 0, 2, tur, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	/* LUN added: REPORTED LUNS DATA HAS CHANGED on the others */
	assert_int_equal(scsi_lun_add(f->t, 2, &m2->b, 0), 0);
	assert_int_equal(scsi_lun_add(f->t, 2, &m2->b, 0), -EEXIST);
	run(f->t, &x, 0, 2, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 6, 0x3F, 0x0E);
	/* ... through REQUEST SENSE for initiator 1, which takes it */
	assert_int_equal(run(f->t, &x, 0, 1, rs, 6, SCSI_DIR_IN, b, 18), SCSI_GOOD);
	assert_int_equal(b[2], 6);
	assert_int_equal(b[12], 0x3F);
	assert_int_equal(b[13], 0x0E);
	assert_int_equal(run(f->t, &x, 0, 1, tur, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_int_equal(run(f->t, &x, 0, 1, rs, 6, SCSI_DIR_IN, b, 18), SCSI_GOOD);
	assert_int_equal(b[2], 0);
	/* capacity change */
	f->m0->b.size = DISK / 2;
	run(f->t, &x, 0, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 6, 0x2A, 0x09);
	assert_int_equal(run(f->t, &x, 0, 1, tur, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	run(f->t, &x, 0, 2, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 6, 0x2A, 0x09);
	f->m0->b.size = DISK;
	/* LUN removed */
	assert_int_equal(scsi_lun_remove(f->t, 2), 0);
	assert_int_equal(scsi_lun_remove(f->t, 2), -ENOENT);
	bdev_close(&m2->b);
	run(f->t, &x, 1, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 6, 0x3F, 0x0E);
	/* bad LUN numbers and block sizes */
	assert_int_equal(scsi_lun_add(f->t, 64, &f->m0->b, 0), -EINVAL);
}

static void test_tur_request_sense(void **state)
{
	struct fx *f = *state;
	uint8_t tur[6] = { 0 }, rs[6] = { 0x03, 0x01, 0, 0, 18, 0 }, b[18];
	struct tc x;

	assert_int_equal(run(f->t, &x, 0, 1, tur, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	run(f->t, &x, 0, 1, rs, 6, SCSI_DIR_IN, b, 18);   /* DESC=1 */
	assert_field(&x, 1, 0);
	rs[1] = 0;
	rs[4] = 8;                                        /* short allocation */
	assert_int_equal(run(f->t, &x, 0, 1, rs, 6, SCSI_DIR_IN, b, 18), SCSI_GOOD);
	assert_int_equal(x.c.xfer_len, 8);
	assert_int_equal(b[0], 0x70);
}

static void test_rsoc(void **state)
{
	struct fx *f = *state;
	uint8_t c[12] = { 0xA3, 0x0C }, b[1024];
	struct tc x;
	uint32_t len;
	bool saw_read10 = false;

	util_put_be32(c + 6, sizeof(b));
	assert_int_equal(run(f->t, &x, 0, 1, c, 12, SCSI_DIR_IN, b, sizeof(b)), SCSI_GOOD);
	len = util_get_be32(b);
	assert_true(len >= 30 * 8 && len % 8 == 0);
	for (uint32_t i = 4; i < 4 + len; i += 8) {
		if (b[i] == 0x28) {
			saw_read10 = true;
			assert_int_equal(util_get_be16(b + i + 6), 10);
			assert_int_equal(b[i + 5] & 1, 0);
		}
		if (b[i] == 0x9E)
			assert_int_equal(b[i + 5] & 1, 1);   /* SERVACTV */
	}
	assert_true(saw_read10);
	/* RCTD: 20-byte descriptors */
	c[2] = 0x80;
	assert_int_equal(run(f->t, &x, 0, 1, c, 12, SCSI_DIR_IN, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be32(b), len / 8 * 20);
	/* one command: WRITE(16), with its usage data */
	c[2] = 1;
	c[3] = 0x8A;
	assert_int_equal(run(f->t, &x, 0, 1, c, 12, SCSI_DIR_IN, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(b[1] & 7, 3);
	assert_int_equal(util_get_be16(b + 2), 16);
	assert_int_equal(b[4], 0x8A);
	assert_int_equal(b[5], 0x18);
	assert_int_equal(x.c.xfer_len, 20);
	/* unsupported opcode: SUPPORT = 1 */
	c[3] = 0xC7;
	assert_int_equal(run(f->t, &x, 0, 1, c, 12, SCSI_DIR_IN, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(b[1] & 7, 1);
	/* opcode-only form for a command with service actions */
	c[3] = 0x9E;
	run(f->t, &x, 0, 1, c, 12, SCSI_DIR_IN, b, sizeof(b));
	assert_field(&x, 2, 2);
	/* with the service action */
	c[2] = 2;
	util_put_be16(c + 4, 0x10);
	assert_int_equal(run(f->t, &x, 0, 1, c, 12, SCSI_DIR_IN, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(b[1] & 7, 3);
	assert_int_equal(b[5], 0x10);
	/* bad reporting options */
	c[2] = 7;
	run(f->t, &x, 0, 1, c, 12, SCSI_DIR_IN, b, sizeof(b));
	assert_field(&x, 2, 2);
}

static uint8_t msense(struct fx *f, struct tc *x, uint32_t lun, bool ten,
		      uint8_t b1, uint8_t b2, uint8_t sub, uint8_t *buf, size_t len)
{
	uint8_t c[10] = { 0 };

	c[0] = ten ? 0x5A : 0x1A;
	c[1] = b1;
	c[2] = b2;
	c[3] = sub;
	if (ten)
		util_put_be16(c + 7, (uint16_t)len);
	else
		c[4] = (uint8_t)len;
	return run(f->t, x, lun, 1, c, ten ? 10 : 6, SCSI_DIR_IN, buf, len);
}

static void test_mode_sense(void **state)
{
	struct fx *f = *state;
	uint8_t b[255];
	struct tc x;

	/* all pages, block descriptor: header 4 + 8 + 20 + 12 */
	assert_int_equal(msense(f, &x, 0, false, 0, 0x3F, 0, b, 255), SCSI_GOOD);
	assert_int_equal(b[0], 43);
	assert_int_equal(b[2], 0x10);                  /* DPOFUA, not WP */
	assert_int_equal(b[3], 8);
	assert_int_equal(util_get_be32(b + 4), DISK / 512);
	assert_int_equal(util_get_be32(b + 8) & 0xFFFFFF, 512);
	assert_int_equal(b[12], 0x08);
	assert_int_equal(b[13], 0x12);
	assert_int_equal(b[14] & 0x04, 0x04);          /* WCE */
	assert_int_equal(b[32], 0x0A);
	/* DBD, caching page only, read-only LUN: WP */
	assert_int_equal(msense(f, &x, 1, false, 0x08, 0x08, 0, b, 255), SCSI_GOOD);
	assert_int_equal(b[0], 23);
	assert_int_equal(b[2] & 0x80, 0x80);
	assert_int_equal(b[3], 0);
	assert_int_equal(b[4], 0x08);
	/* (10): header 8 */
	assert_int_equal(msense(f, &x, 0, true, 0x08, 0x0A, 0, b, 255), SCSI_GOOD);
	assert_int_equal(util_get_be16(b), 6 + 12);
	assert_int_equal(b[8], 0x0A);
	/* changeable values: WCE only */
	assert_int_equal(msense(f, &x, 0, false, 0x08, 0x48, 0, b, 255), SCSI_GOOD);
	assert_int_equal(b[6], 0x04);
	for (int i = 7; i < 24; i++)
		assert_int_equal(b[i], 0);
	/* saved values; unknown page; subpage of the control page */
	msense(f, &x, 0, false, 0, 0xC8, 0, b, 255);
	assert_sense(&x, 5, 0x39, 0);
	msense(f, &x, 0, false, 0, 0x19, 0, b, 255);
	assert_field(&x, 2, -1);
	msense(f, &x, 0, false, 0, 0x0A, 0x05, b, 255);
	assert_field(&x, 3, -1);
	/* short allocation: 4 bytes */
	assert_int_equal(msense(f, &x, 0, false, 0, 0x3F, 0, b, 4), SCSI_GOOD);
	assert_int_equal(x.c.xfer_len, 4);
}

static void test_mode_select(void **state)
{
	struct fx *f = *state;
	uint8_t c[6] = { 0x15, 0x10, 0, 0, 0, 0 }, p[4 + 20], b[64];
	uint8_t w[10] = { 0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0 }, blk[512] = { 1 };
	struct tc x;

	/* current caching page, with WCE cleared */
	assert_int_equal(msense(f, &x, 0, false, 0x08, 0x08, 0, b, 64), SCSI_GOOD);
	memset(p, 0, 4);
	memcpy(p + 4, b + 4, 20);
	p[4 + 2] &= (uint8_t)~0x04;
	c[4] = sizeof(p);
	assert_int_equal(run(f->t, &x, 0, 1, c, 6, SCSI_DIR_OUT, p, sizeof(p)), SCSI_GOOD);
	assert_int_equal(msense(f, &x, 0, false, 0x08, 0x08, 0, b, 64), SCSI_GOOD);
	assert_int_equal(b[6] & 0x04, 0);
	/* writes now go through with FUA */
	assert_int_equal(run(f->t, &x, 0, 1, w, 10, SCSI_DIR_OUT, blk, 512), SCSI_GOOD);
	assert_true(f->m0->last_flags[BDEV_OP_WRITE] & BDEV_FUA);
	/* the other initiator learns of it */
	clear_ua(f->t, 0, 2);
	/* changing something else: the field is pointed at */
	p[4 + 2] |= 0x01;                                /* RCD */
	run(f->t, &x, 0, 1, c, 6, SCSI_DIR_OUT, p, sizeof(p));
	assert_sense(&x, 5, 0x26, 0);
	assert_int_equal(x.c.sense[15], 0x80);
	assert_int_equal(util_get_be16(x.c.sense + 16), 6);
	p[4 + 2] = 0x04;                                 /* WCE back on */
	assert_int_equal(run(f->t, &x, 0, 1, c, 6, SCSI_DIR_OUT, p, sizeof(p)), SCSI_GOOD);
	assert_int_equal(run(f->t, &x, 0, 1, w, 10, SCSI_DIR_OUT, blk, 512), SCSI_GOOD);
	assert_false(f->m0->last_flags[BDEV_OP_WRITE] & BDEV_FUA);
	/* bad page length, unknown page, truncated list, SP */
	p[5] = 0x10;
	run(f->t, &x, 0, 1, c, 6, SCSI_DIR_OUT, p, sizeof(p));
	assert_sense(&x, 5, 0x26, 0);
	p[5] = 0x12;
	p[4] = 0x1C;
	run(f->t, &x, 0, 1, c, 6, SCSI_DIR_OUT, p, sizeof(p));
	assert_sense(&x, 5, 0x26, 0);
	p[4] = 0x08;
	c[4] = 10;
	run(f->t, &x, 0, 1, c, 6, SCSI_DIR_OUT, p, 10);
	assert_sense(&x, 5, 0x1A, 0);
	c[1] = 0x11;
	run(f->t, &x, 0, 1, c, 6, SCSI_DIR_OUT, p, 10);
	assert_field(&x, 1, 0);
	/* MODE SELECT(10) with a list shorter than its 8-byte header (found
	 * by fuzzing: the header was read before its length was checked) */
	{
		uint8_t c10[10] = { 0x55, 0x10, 0, 0, 0, 0, 0, 0, 4, 0 };

		run(f->t, &x, 0, 1, c10, 10, SCSI_DIR_OUT, p, 4);
		assert_sense(&x, 5, 0x1A, 0);
	}
}

static void test_start_stop_prevent(void **state)
{
	struct fx *f = *state;
	uint8_t ss[6] = { 0x1B, 0, 0, 0, 0x01, 0 }, pa[6] = { 0x1E, 0, 0, 0, 1, 0 };
	struct tc x;
	int flushes = f->m0->count[BDEV_OP_FLUSH];

	assert_int_equal(run(f->t, &x, 0, 1, ss, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_int_equal(f->m0->count[BDEV_OP_FLUSH], flushes);
	ss[4] = 0;                                         /* STOP: flush */
	assert_int_equal(run(f->t, &x, 0, 1, ss, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_int_equal(f->m0->count[BDEV_OP_FLUSH], flushes + 1);
	ss[4] = 0x02;                                      /* LOEJ */
	run(f->t, &x, 0, 1, ss, 6, SCSI_DIR_NONE, NULL, 0);
	assert_field(&x, 4, 1);
	assert_int_equal(run(f->t, &x, 0, 1, pa, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	pa[4] = 2;
	run(f->t, &x, 0, 1, pa, 6, SCSI_DIR_NONE, NULL, 0);
	assert_field(&x, 4, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inquiry_standard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inquiry_vpd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_capacity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_luns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absent_lun_and_opcode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unit_attentions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tur_request_sense, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rsoc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_sense, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_select, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_stop_prevent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lun_4k, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
