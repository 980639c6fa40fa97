/* Shared LUNs: RESERVE(6)/RELEASE(6), PERSISTENT RESERVE IN/OUT across two
 * initiators with each reservation type enforced (RESERVATION CONFLICT),
 * and COMPARE AND WRITE: match, miscompare with the offset, and atomicity
 * against writes racing it. */
#include "scsi-harness.h"

#define DISK (1u << 20)
#define A 0xA1   /* initiators */
#define B 0xB2
#define C 0xC3

struct fx {
	struct scsi_target *t;
	struct memdisk *m;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->t = scsi_target_new();
	f->m = md_new(DISK, 512, 512, true);
	assert_int_equal(scsi_lun_add(f->t, 0, &f->m->b, 0), 0);
	clear_ua(f->t, 0, A);
	clear_ua(f->t, 0, B);
	clear_ua(f->t, 0, C);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	scsi_target_free(f->t);
	bdev_close(&f->m->b);
	free(f);
	return 0;
}

static uint8_t prout(struct fx *f, uint64_t itn, uint8_t sa, uint8_t type,
		     uint64_t key, uint64_t sakey)
{
	uint8_t c[10] = { 0x5F, sa, type, 0, 0, 0, 0, 0, 24, 0 }, p[24] = { 0 };
	struct tc x;

	util_put_be64(p, key);
	util_put_be64(p + 8, sakey);
	return run(f->t, &x, 0, itn, c, 10, SCSI_DIR_OUT, p, 24);
}

static uint8_t prin(struct fx *f, uint64_t itn, uint8_t sa, uint8_t *buf,
		    uint16_t len)
{
	uint8_t c[10] = { 0x5E, sa };
	struct tc x;

	util_put_be16(c + 7, len);
	return run(f->t, &x, 0, itn, c, 10, SCSI_DIR_IN, buf, len);
}

static uint8_t rd(struct fx *f, uint64_t itn)
{
	uint8_t c[10], b[512];
	struct tc x;

	cdb10(c, 0x28, 0, 1);
	return run(f->t, &x, 0, itn, c, 10, SCSI_DIR_IN, b, 512);
}

static uint8_t wr(struct fx *f, uint64_t itn)
{
	uint8_t c[10], b[512] = { 0 };
	struct tc x;

	cdb10(c, 0x2A, 0, 1);
	return run(f->t, &x, 0, itn, c, 10, SCSI_DIR_OUT, b, 512);
}

static void test_reserve6(void **state)
{
	struct fx *f = *state;
	uint8_t res[6] = { 0x16 }, rel[6] = { 0x17 }, inq[6] = { 0x12, 0, 0, 0, 36 };
	uint8_t b[36];
	struct tc x;

	assert_int_equal(run(f->t, &x, 0, A, res, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_int_equal(run(f->t, &x, 0, A, res, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_int_equal(rd(f, A), SCSI_GOOD);
	assert_int_equal(wr(f, A), SCSI_GOOD);
	assert_int_equal(rd(f, B), SCSI_RESERVATION_CONFLICT);
	assert_int_equal(wr(f, B), SCSI_RESERVATION_CONFLICT);
	assert_int_equal(run(f->t, &x, 0, B, res, 6, SCSI_DIR_NONE, NULL, 0),
			 SCSI_RESERVATION_CONFLICT);
	assert_int_equal(run(f->t, &x, 0, B, inq, 6, SCSI_DIR_IN, b, 36), SCSI_GOOD);
	/* B's RELEASE does nothing */
	assert_int_equal(run(f->t, &x, 0, B, rel, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_int_equal(rd(f, B), SCSI_RESERVATION_CONFLICT);
	assert_int_equal(run(f->t, &x, 0, A, rel, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_int_equal(wr(f, B), SCSI_GOOD);
	res[1] = 0x01;                                  /* extent */
	run(f->t, &x, 0, A, res, 6, SCSI_DIR_NONE, NULL, 0);
	assert_field(&x, 1, -1);
}

/* LUN reset and nexus loss release RESERVE(6) and raise their unit
 * attentions; persistent registrations survive. */
static void test_reset_and_nexus_loss(void **state)
{
	struct fx *f = *state;
	uint8_t res[6] = { 0x16 }, tur[6] = { 0 }, b[64];
	struct tc x;

	assert_int_equal(prout(f, A, 0, 0, 0, 0xA), SCSI_GOOD);
	assert_int_equal(run(f->t, &x, 0, A, res, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	assert_int_equal(rd(f, B), SCSI_RESERVATION_CONFLICT);
	assert_int_equal(scsi_lun_reset(f->t, 0), 0);
	assert_int_equal(scsi_lun_reset(f->t, 9), -ENOENT);
	run(f->t, &x, 0, B, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 6, 0x29, 0x03);
	assert_int_equal(rd(f, B), SCSI_GOOD);
	run(f->t, &x, 0, A, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 6, 0x29, 0x03);
	assert_int_equal(run(f->t, &x, 0, A, res, 6, SCSI_DIR_NONE, NULL, 0), SCSI_GOOD);
	scsi_nexus_loss(f->t, A);
	assert_int_equal(rd(f, B), SCSI_GOOD);
	run(f->t, &x, 0, A, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 6, 0x29, 0x07);
	assert_int_equal(prin(f, A, 0, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be32(b + 4), 8);
}

static void test_register_and_keys(void **state)
{
	struct fx *f = *state;
	uint8_t b[64];

	assert_int_equal(prout(f, A, 0, 0, 0, 0xAAAA), SCSI_GOOD);
	assert_int_equal(prout(f, B, 0, 0, 0, 0xBBBB), SCSI_GOOD);
	/* registering again with a wrong key conflicts; ignore-existing works */
	assert_int_equal(prout(f, A, 0, 0, 0x1234, 0xAAAB), SCSI_RESERVATION_CONFLICT);
	assert_int_equal(prout(f, A, 6, 0, 0x1234, 0xAAAB), SCSI_GOOD);
	assert_int_equal(prin(f, A, 0, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be32(b), 3);           /* generation */
	assert_int_equal(util_get_be32(b + 4), 16);
	assert_int_equal(util_get_be64(b + 8), 0xAAAB);
	assert_int_equal(util_get_be64(b + 16), 0xBBBB);
	/* unregister B */
	assert_int_equal(prout(f, B, 0, 0, 0xBBBB, 0), SCSI_GOOD);
	assert_int_equal(prin(f, A, 0, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be32(b + 4), 8);
	/* an unregistered nexus cannot reserve */
	assert_int_equal(prout(f, B, 1, 1, 0xBBBB, 0), SCSI_RESERVATION_CONFLICT);
	/* capabilities */
	assert_int_equal(prin(f, A, 2, b, 8), SCSI_GOOD);
	assert_int_equal(util_get_be16(b), 8);
	assert_int_equal(b[4], 0xEA);
	assert_int_equal(b[5], 0x01);
}

/* Each type: who may read and write while A holds it (B registered, C
 * not). */
static void test_types(void **state)
{
	struct fx *f = *state;
	static const struct {
		uint8_t type;
		uint8_t b_rd, b_wr, c_rd, c_wr;
	} t[] = {
		{ 1, SCSI_GOOD, SCSI_RESERVATION_CONFLICT, SCSI_GOOD, SCSI_RESERVATION_CONFLICT },
		{ 3, SCSI_RESERVATION_CONFLICT, SCSI_RESERVATION_CONFLICT,
		     SCSI_RESERVATION_CONFLICT, SCSI_RESERVATION_CONFLICT },
		{ 5, SCSI_GOOD, SCSI_GOOD, SCSI_GOOD, SCSI_RESERVATION_CONFLICT },
		{ 6, SCSI_GOOD, SCSI_GOOD, SCSI_RESERVATION_CONFLICT, SCSI_RESERVATION_CONFLICT },
		{ 7, SCSI_GOOD, SCSI_GOOD, SCSI_GOOD, SCSI_RESERVATION_CONFLICT },
		{ 8, SCSI_GOOD, SCSI_GOOD, SCSI_RESERVATION_CONFLICT, SCSI_RESERVATION_CONFLICT },
	};
	uint8_t b[64];

	assert_int_equal(prout(f, A, 0, 0, 0, 0xA), SCSI_GOOD);
	assert_int_equal(prout(f, B, 0, 0, 0, 0xB), SCSI_GOOD);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(t); i++) {
		assert_int_equal(prout(f, A, 1, t[i].type, 0xA, 0), SCSI_GOOD);
		assert_int_equal(rd(f, A), SCSI_GOOD);
		assert_int_equal(wr(f, A), SCSI_GOOD);
		assert_int_equal(rd(f, B), t[i].b_rd);
		assert_int_equal(wr(f, B), t[i].b_wr);
		assert_int_equal(rd(f, C), t[i].c_rd);
		assert_int_equal(wr(f, C), t[i].c_wr);
		assert_int_equal(prin(f, C, 1, b, sizeof(b)), SCSI_GOOD);
		assert_int_equal(util_get_be32(b + 4), 16);
		assert_int_equal(b[21], t[i].type);
		assert_int_equal(util_get_be64(b + 8), t[i].type >= 7 ? 0 : 0xA);
		/* another reservation conflicts; the same one is fine */
		assert_int_equal(prout(f, A, 1, t[i].type, 0xA, 0), SCSI_GOOD);
		if (t[i].type < 7)
			assert_int_equal(prout(f, B, 1, t[i].type, 0xB, 0),
					 SCSI_RESERVATION_CONFLICT);
		/* releasing with the wrong type is refused */
		prout(f, A, 2, t[i].type == 1 ? 3 : 1, 0xA, 0);
		assert_int_equal(prout(f, A, 2, t[i].type, 0xA, 0), SCSI_GOOD);
		assert_int_equal(wr(f, C), SCSI_GOOD);
		clear_ua(f->t, 0, B);
	}
}

static void test_release_errors_and_clear(void **state)
{
	struct fx *f = *state;
	uint8_t c[10] = { 0x5F, 2, 3, 0, 0, 0, 0, 0, 24, 0 }, p[24] = { 0 }, b[64];
	struct tc x;

	assert_int_equal(prout(f, A, 0, 0, 0, 0xA), SCSI_GOOD);
	assert_int_equal(prout(f, B, 0, 0, 0, 0xB), SCSI_GOOD);
	assert_int_equal(prout(f, A, 1, 1, 0xA, 0), SCSI_GOOD);
	util_put_be64(p, 0xA);
	run(f->t, &x, 0, A, c, 10, SCSI_DIR_OUT, p, 24);       /* wrong type */
	assert_sense(&x, 5, 0x26, 0x04);
	/* bad type, scope, list length, APTPL */
	assert_int_equal(prout(f, A, 1, 2, 0xA, 0), SCSI_CHECK_CONDITION);
	assert_int_equal(prout(f, A, 1, 0x11, 0xA, 0), SCSI_CHECK_CONDITION);
	c[8] = 20;
	run(f->t, &x, 0, A, c, 10, SCSI_DIR_OUT, p, 20);
	assert_sense(&x, 5, 0x1A, 0);
	c[8] = 24;
	c[2] = 1;
	p[20] = 1;
	run(f->t, &x, 0, A, c, 10, SCSI_DIR_OUT, p, 24);
	assert_sense(&x, 5, 0x26, 0);
	/* B clears everything: A loses its reservation and learns of it */
	assert_int_equal(prout(f, B, 3, 0, 0xB, 0), SCSI_GOOD);
	assert_int_equal(prin(f, C, 0, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be32(b + 4), 0);
	assert_int_equal(prin(f, C, 1, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be32(b + 4), 0);
	assert_int_equal(wr(f, C), SCSI_GOOD);
	{
		uint8_t tur[6] = { 0 };

		run(f->t, &x, 0, A, tur, 6, SCSI_DIR_NONE, NULL, 0);
		assert_sense(&x, 6, 0x2A, 0x03);
	}
}

static void test_preempt_and_full_status(void **state)
{
	struct fx *f = *state;
	uint8_t b[512];
	struct tc x;
	uint8_t tur[6] = { 0 };

	assert_int_equal(prout(f, A, 0, 0, 0, 0xA), SCSI_GOOD);
	assert_int_equal(prout(f, B, 0, 0, 0, 0xB), SCSI_GOOD);
	assert_int_equal(prout(f, A, 1, 3, 0xA, 0), SCSI_GOOD);
	assert_int_equal(wr(f, B), SCSI_RESERVATION_CONFLICT);
	/* B preempts A (a failover): A is unregistered, B holds WE */
	assert_int_equal(prout(f, B, 4, 1, 0xB, 0xA), SCSI_GOOD);
	assert_int_equal(wr(f, B), SCSI_GOOD);
	assert_int_equal(wr(f, A), SCSI_CHECK_CONDITION);      /* UA first */
	assert_int_equal(wr(f, A), SCSI_RESERVATION_CONFLICT);
	assert_int_equal(rd(f, A), SCSI_GOOD);
	assert_int_equal(prout(f, A, 1, 1, 0xA, 0), SCSI_RESERVATION_CONFLICT);
	/* preempting a key nobody holds conflicts; key 0 is invalid */
	assert_int_equal(prout(f, B, 4, 1, 0xB, 0x99), SCSI_RESERVATION_CONFLICT);
	assert_int_equal(prout(f, B, 4, 1, 0xB, 0), SCSI_CHECK_CONDITION);
	/* READ FULL STATUS: B, holder, with its TransportID */
	assert_int_equal(prout(f, C, 0, 0, 0, 0xC), SCSI_GOOD);
	assert_int_equal(prin(f, A, 3, b, sizeof(b)), SCSI_GOOD);
	{
		uint32_t len = util_get_be32(b + 4), off = 8;
		int holders = 0, n = 0;

		while (off < 8 + len) {
			uint32_t tl = util_get_be32(b + off + 20);

			if (b[off + 12] & 1) {
				holders++;
				assert_int_equal(util_get_be64(b + off), 0xB);
				assert_int_equal(b[off + 13], 1);
			}
			assert_int_equal(b[off + 24], 0x05);      /* iSCSI */
			off += 24 + tl;
			n++;
		}
		assert_int_equal(n, 2);
		assert_int_equal(holders, 1);
	}
	/* PREEMPT AND ABORT of an all-registrants reservation by key 0 */
	assert_int_equal(prout(f, B, 2, 1, 0xB, 0), SCSI_GOOD);
	assert_int_equal(prout(f, B, 1, 8, 0xB, 0), SCSI_GOOD);
	assert_int_equal(rd(f, C), SCSI_GOOD);
	assert_int_equal(prout(f, C, 5, 3, 0xC, 0), SCSI_GOOD);
	assert_int_equal(prin(f, A, 0, b, sizeof(b)), SCSI_GOOD);
	assert_int_equal(util_get_be32(b + 4), 8);
	assert_int_equal(util_get_be64(b + 8), 0xC);
	run(f->t, &x, 0, B, tur, 6, SCSI_DIR_NONE, NULL, 0);
	assert_sense(&x, 6, 0x2A, 0x05);
	assert_int_equal(rd(f, B), SCSI_RESERVATION_CONFLICT);
}

/* ---- COMPARE AND WRITE ---- */

static uint8_t caw(struct fx *f, struct tc *x, uint64_t lba, uint8_t n,
		   uint8_t *buf, size_t len)
{
	uint8_t c[16] = { 0x89 };

	util_put_be64(c + 2, lba);
	c[13] = n;
	return run(f->t, x, 0, A, c, 16, SCSI_DIR_OUT, buf, len);
}

static void test_caw(void **state)
{
	struct fx *f = *state;
	uint8_t b[2048];
	struct tc x;

	memset(f->m->data + 8 * 512, 0x11, 1024);
	memset(b, 0x11, 1024);
	memset(b + 1024, 0x22, 1024);
	assert_int_equal(caw(f, &x, 8, 2, b, 2048), SCSI_GOOD);
	assert_int_equal(f->m->data[8 * 512], 0x22);
	assert_int_equal(f->m->data[10 * 512 - 1], 0x22);
	/* now the compare fails at offset 0; nothing written */
	memset(b + 1024, 0x33, 1024);
	caw(f, &x, 8, 2, b, 2048);
	assert_sense(&x, 0x0E, 0x1D, 0);
	assert_int_equal(x.c.sense[0], 0xF0);
	assert_int_equal(util_get_be32(x.c.sense + 3), 0);
	assert_int_equal(f->m->data[8 * 512], 0x22);
	memset(b, 0x22, 1024);
	b[700] = 0;
	caw(f, &x, 8, 2, b, 2048);
	assert_int_equal(util_get_be32(x.c.sense + 3), 700);
	/* bad: too long, out of range, short data, protect field */
	caw(f, &x, 0, 255, b, 2048);
	assert_field(&x, 13, -1);
	caw(f, &x, DISK / 512 - 1, 2, b, 2048);
	assert_sense(&x, 5, 0x21, 0);
	/* a data-out buffer of the wrong size: INVALID FIELD IN CDB at the
	 * block count, nothing compared or written (libiscsi
	 * CompareAndWrite.InvalidDataOutSize: too short, too long; Simple:
	 * 256 blocks wrap to 0 with 512 blocks of data) */
	memset(b, 0x22, 2048);
	caw(f, &x, 8, 2, b, 1024);
	assert_field(&x, 13, -1);
	caw(f, &x, 8, 1, b, 2048);
	assert_field(&x, 13, -1);
	caw(f, &x, 8, 0, b, 2048);
	assert_field(&x, 13, -1);
	assert_int_equal(f->m->count[BDEV_OP_READ], 3);   /* the three above */
	assert_int_equal(caw(f, &x, 0, 0, NULL, 0), SCSI_GOOD);
}

/* COMPARE AND WRITE as a lock: four initiators each try to move a counter
 * block from v to v+1 with CAW, while two others read it and write the
 * block next to it (shared range locks queued among the exclusive ones).
 * Were a CAW's read and write not atomic, two could take the same value
 * and an increment would be lost: the counter must equal the number of
 * CAWs that succeeded. */
struct racer {
	struct fx *f;
	int id, wins;
	bool writer;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	uint8_t b[1024], cur[512], c[16];
	struct tc x;

	for (int i = 0; i < 200; i++) {
		if (r->writer) {
			cdb10(c, 0x28, 3, 1);
			run(r->f->t, &x, 0, 100 + (uint64_t)r->id, c, 10, SCSI_DIR_IN, cur, 512);
			cdb10(c, 0x2A, 4, 1);              /* a neighbour write */
			run(r->f->t, &x, 0, 100 + (uint64_t)r->id, c, 10, SCSI_DIR_OUT, cur, 512);
			continue;
		}
		cdb10(c, 0x28, 3, 1);
		run(r->f->t, &x, 0, 100 + (uint64_t)r->id, c, 10, SCSI_DIR_IN, cur, 512);
		memcpy(b, cur, 512);
		memcpy(b + 512, cur, 512);
		util_put_be32(b + 512, util_get_be32(cur) + 1);
		memset(c, 0, 16);
		c[0] = 0x89;
		util_put_be64(c + 2, 3);
		c[13] = 1;
		if (run(r->f->t, &x, 0, 100 + (uint64_t)r->id, c, 16, SCSI_DIR_OUT, b,
			1024) == SCSI_GOOD)
			r->wins++;
		else
			assert_int_equal(x.c.sense[2] & 0x0f, 0x0E);
	}
	return NULL;
}

static void test_caw_races(void **state)
{
	struct fx *f = *state;
	struct racer r[6];
	pthread_t th[6];
	int wins = 0;

	for (int i = 0; i < 6; i++) {
		r[i] = (struct racer){ .f = f, .id = i, .writer = i >= 4 };
		clear_ua(f->t, 0, 100 + (uint64_t)i);
	}
	for (int i = 0; i < 6; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		wins += r[i].wins;
	}
	assert_true(wins > 0);
	assert_int_equal(util_get_be32(f->m->data + 3 * 512), (uint32_t)wins);
}

/* A write overlapping a COMPARE AND WRITE in flight waits for it: with
 * the CAW's read held in the disk, the write is not even submitted. */
static void test_caw_blocks_write(void **state)
{
	struct fx *f = *state;
	static struct tc cx, wx, rx;
	static uint8_t cb[1024], wb[512], rb[512], c1[16], c2[10], c3[10];

	memset(cb, 0, 512);
	memset(cb + 512, 0x44, 512);
	memset(wb, 0x55, 512);
	f->m->hold = true;
	c1[0] = 0x89;
	util_put_be64(c1 + 2, 5);
	c1[13] = 1;
	tc_prep(&cx, 0, A, c1, 16, SCSI_DIR_OUT, cb, 1024);
	scsi_submit(f->t, &cx.c);
	assert_int_equal(md_wait_held(f->m, 1), 1);      /* its read */
	cdb10(c2, 0x2A, 5, 1);
	tc_prep(&wx, 0, B, c2, 10, SCSI_DIR_OUT, wb, 512);
	scsi_submit(f->t, &wx.c);
	cdb10(c3, 0x28, 6, 1);                          /* no overlap: goes */
	tc_prep(&rx, 0, B, c3, 10, SCSI_DIR_IN, rb, 512);
	scsi_submit(f->t, &rx.c);
	assert_int_equal(md_wait_held(f->m, 2), 2);
	usleep(20000);
	assert_int_equal(md_wait_held(f->m, 3), 2);      /* the write waits */
	md_release(f->m);
	tc_wait(&cx);
	tc_wait(&wx);
	tc_wait(&rx);
	assert_int_equal(cx.c.status, SCSI_GOOD);
	assert_int_equal(wx.c.status, SCSI_GOOD);
	assert_int_equal(f->m->data[5 * 512], 0x55);     /* the write came last */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reserve6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_and_nexus_loss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_and_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_errors_and_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preempt_and_full_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caw_races, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caw_blocks_write, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
