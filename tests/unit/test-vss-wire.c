/* vss wire codec against hand-written byte layouts derived from Linux's
 * structs (include/linux/hyperv.h vmbuspipe_hdr + icmsg_hdr +
 * icmsg_negotiate, include/uapi/linux/hyperv.h hv_vss_msg) and what
 * vmbus_prep_negotiate_resp / hv_snapshot.c answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vss/vss.h"

static const struct vss_ic_version host_fw[] = { { 3, 0 }, { 1, 0 } };
static const struct vss_ic_version host_msg[] = { { 5, 0 } };
static const struct vss_ic_version linux_fw[] = { { 3, 0 } };
static const struct vss_ic_version linux_msg[] = { { 5, 0 } };

/* The host's NEGOTIATE offering frameworks 3.0, 1.0 and VSS 5.0. */
static const uint8_t negotiate_req[48] = {
	0x01, 0, 0, 0,	0x28, 0, 0, 0,	/* pipe: DATA, 40 bytes follow */
	0x01, 0, 0x00, 0,		/* icverframe 1.0 */
	0x00, 0,			/* icmsgtype NEGOTIATE */
	0x01, 0, 0x00, 0,		/* icvermsg 1.0 */
	0x14, 0,			/* icmsgsize 20 */
	0, 0, 0, 0,			/* status */
	0x00, 0x03, 0, 0,		/* txid 0, TRANSACTION|REQUEST */
	0x02, 0, 0x01, 0, 0, 0, 0, 0,	/* 2 framework, 1 message version */
	0x03, 0, 0x00, 0,		/* 3.0 */
	0x01, 0, 0x00, 0,		/* 1.0 */
	0x05, 0, 0x00, 0,		/* 5.0 */
};

/* What Linux's VSS driver sends back. */
static const uint8_t negotiate_rep[48] = {
	0x01, 0, 0, 0,	0x28, 0, 0, 0,
	0x01, 0, 0x00, 0,	0x00, 0,	0x01, 0, 0x00, 0,
	0x10, 0,			/* icmsgsize 0x10 */
	0, 0, 0, 0,			/* status untouched */
	0x00, 0x05, 0, 0,		/* TRANSACTION|RESPONSE */
	0x01, 0, 0x01, 0, 0, 0, 0, 0,	/* counts 1/1 */
	0x03, 0, 0x00, 0,		/* framework 3.0 */
	0x05, 0, 0x00, 0,		/* VSS 5.0 */
	0x05, 0, 0x00, 0,		/* the rest of the buffer, echoed */
};

/* HOT_BACKUP after negotiation (framework 3.0, VSS 5.0). */
static const uint8_t hot_backup_req[40] = {
	0x01, 0, 0, 0,	0x20, 0, 0, 0,
	0x03, 0, 0x00, 0,	0x05, 0,	0x05, 0, 0x00, 0,
	0x0c, 0,	0, 0, 0, 0,	0x00, 0x03, 0, 0,
	0x02, 0, 0, 0, 0, 0, 0, 0,	/* op HOT_BACKUP, reserved */
	0, 0, 0, 0,			/* vss_cf.flags */
};

static void test_negotiate_bytes(void **state)
{
	uint8_t b[64];
	uint32_t len = 0;

	assert_int_equal(vss_enc_negotiate(b, sizeof(b), host_fw, 2, host_msg, 1, &len),
			 VSS_W_OK);
	assert_int_equal(len, 48);
	assert_memory_equal(b, negotiate_req, 48);
	assert_int_equal(vss_enc_negotiate(b, 47, host_fw, 2, host_msg, 1, &len), VSS_W_SPACE);
	assert_int_equal(vss_enc_negotiate(b, 64, host_fw, 0, host_msg, 1, &len), VSS_W_ARG);
}

static void test_guest_negotiate(void **state)
{
	struct vss_ic_version fw, msg;
	struct vss_frame f;
	uint8_t b[48];

	memcpy(b, negotiate_req, 48);
	assert_int_equal(vss_guest_negotiate(b, 48, linux_fw, 1, linux_msg, 1, &fw, &msg),
			 VSS_W_OK);
	vss_guest_reply(b, 48, 0);
	assert_memory_equal(b, negotiate_rep, 48);
	assert_int_equal(fw.major, 3);
	assert_int_equal(msg.major, 5);

	/* the host reads it back */
	assert_int_equal(vss_check_reply(negotiate_req, 48, b, 48, &f), VSS_W_OK);
	memset(&fw, 0, sizeof(fw));
	assert_int_equal(vss_dec_negotiate_reply(negotiate_req, 48, b, 48, &fw, &msg), VSS_W_OK);
	assert_true(fw.major == 3 && fw.minor == 0 && msg.major == 5 && msg.minor == 0);
}

static void test_negotiate_nomatch(void **state)
{
	static const struct vss_ic_version old_fw[] = { { 1, 0 } };
	static const struct vss_ic_version old_msg[] = { { 4, 0 } };
	struct vss_ic_version fw, msg;
	uint8_t req[64], b[64];
	uint32_t len;

	/* WS2012-like host: framework 1.0 only -> Linux answers 0/0 */
	assert_int_equal(vss_enc_negotiate(req, sizeof(req), old_fw, 1, host_msg, 1, &len),
			 VSS_W_OK);
	assert_int_equal(len, 44);
	memset(req + len, 0, 4);
	memcpy(b, req, 48);
	assert_int_equal(vss_guest_negotiate(b, 48, linux_fw, 1, linux_msg, 1, &fw, &msg),
			 VSS_W_NOMATCH);
	vss_guest_reply(b, 48, 0);
	assert_int_equal(b[28] | b[29] | b[30] | b[31], 0);
	assert_int_equal(vss_dec_negotiate_reply(req, 48, b, 48, &fw, &msg), VSS_W_NOMATCH);
	/* framework matches, message version does not */
	assert_int_equal(vss_enc_negotiate(req, sizeof(req), host_fw, 2, old_msg, 1, &len),
			 VSS_W_OK);
	memcpy(b, req, 48);
	assert_int_equal(vss_guest_negotiate(b, 48, linux_fw, 1, linux_msg, 1, &fw, &msg),
			 VSS_W_NOMATCH);
}

static void test_negotiate_hostile(void **state)
{
	struct vss_ic_version fw, msg;
	uint8_t b[64];

	/* counts over 100 */
	memcpy(b, negotiate_req, 48);
	b[28] = 101;
	assert_int_equal(vss_guest_negotiate(b, 48, linux_fw, 1, linux_msg, 1, &fw, &msg),
			 VSS_W_COUNT);
	/* a list longer than the packet */
	memcpy(b, negotiate_req, 48);
	b[30] = 3;
	assert_int_equal(vss_guest_negotiate(b, 48, linux_fw, 1, linux_msg, 1, &fw, &msg),
			 VSS_W_COUNT);
	/* too short for the counts */
	assert_int_equal(vss_guest_negotiate(b, 31, linux_fw, 1, linux_msg, 1, &fw, &msg),
			 VSS_W_SHORT);
	/* a reply choosing what the host never offered */
	memcpy(b, negotiate_rep, 48);
	b[36] = 7;
	assert_int_equal(vss_dec_negotiate_reply(negotiate_req, 48, b, 48, &fw, &msg),
			 VSS_W_VERSION);
	/* a reply with counts 2/1 */
	memcpy(b, negotiate_rep, 48);
	b[28] = 2;
	assert_int_equal(vss_dec_negotiate_reply(negotiate_req, 48, b, 48, &fw, &msg),
			 VSS_W_COUNT);
}

static void test_vss_request_bytes(void **state)
{
	uint8_t b[128], r[40];
	struct vss_frame f;
	uint32_t len;

	assert_int_equal(vss_enc_request(b, sizeof(b), VSS_VER(3, 0), VSS_VER(5, 0),
					 VSS_OP_HOT_BACKUP, 0, NULL, 0, &len), VSS_W_OK);
	assert_int_equal(len, 40);
	assert_memory_equal(b, hot_backup_req, 40);
	assert_int_equal(vss_msg_op(b), VSS_OP_HOT_BACKUP);

	/* Linux (daemon answered): flags 5, S_OK, TRANSACTION|RESPONSE */
	memcpy(r, b, 40);
	vss_set_msg_flags(r, 40, VSS_HBU_NO_AUTO_RECOVERY);
	vss_guest_reply(r, 40, VSS_S_OK);
	assert_int_equal(r[25], 0x05);
	assert_int_equal(r[36], 5);
	assert_int_equal(vss_check_reply(b, 40, r, 40, &f), VSS_W_OK);
	assert_int_equal(f.status, 0);
	assert_int_equal(vss_msg_flags(r, 40), 5);
	/* daemon absent: HV_E_FAIL */
	vss_guest_reply(r, 40, VSS_E_FAIL);
	assert_int_equal(vss_check_reply(b, 40, r, 40, &f), VSS_W_OK);
	assert_int_equal(f.status, 0x80004005u);
	assert_memory_equal(r + 20, "\x05\x40\x00\x80", 4);
}

static void test_freeze_bytes(void **state)
{
	struct vss_lun_info l[2];
	uint8_t b[256];
	uint32_t len;

	memset(l, 0, sizeof(l));
	for (int i = 0; i < 2; i++) {
		l[i].bus_type = 1;
		memset(l[i].controller, 0xc0 + i, 16);
		l[i].lun = (uint8_t)(3 + i);
	}
	assert_int_equal(vss_enc_request(b, sizeof(b), VSS_VER(3, 0), VSS_VER(5, 0),
					 VSS_OP_FREEZE, 0, l, 2, &len), VSS_W_OK);
	assert_int_equal(len, 28 + 20 + 48);
	assert_memory_equal(b + 4, "\x58\x00\x00\x00", 4);	/* 20 + 68 after the pipe header */
	assert_memory_equal(b + 18, "\x44\x00", 2);		/* icmsgsize 20 + 48 */
	assert_int_equal(b[28], VSS_OP_FREEZE);
	assert_memory_equal(b + 28 + 16, "\x02\x00\x00\x00", 4); /* lun_count */
	assert_int_equal(b[48], 1);			/* LUN 0 bus_type */
	assert_int_equal(b[48 + 4], 0xc0);		/* controller */
	assert_int_equal(b[48 + 22], 3);		/* lun */
	assert_int_equal(b[48 + 24 + 4], 0xc1);
	assert_int_equal(b[48 + 24 + 22], 4);
	assert_int_equal(vss_enc_request(b, 95, VSS_VER(3, 0), VSS_VER(5, 0),
					 VSS_OP_FREEZE, 0, l, 2, &len), VSS_W_SPACE);
	assert_int_equal(vss_enc_request(b, sizeof(b), VSS_VER(3, 0), VSS_VER(5, 0),
					 VSS_OP_THAW, 0, l, 2, &len), VSS_W_ARG);
	assert_int_equal(vss_enc_request(b, sizeof(b), VSS_VER(3, 0), VSS_VER(5, 0),
					 VSS_OP_FREEZE, 0, l, VSS_MAX_LUNS + 1, &len), VSS_W_ARG);
}

static void test_reply_hostile(void **state)
{
	uint8_t r[48];
	struct vss_frame f;

	memcpy(r, hot_backup_req, 40);
	vss_guest_reply(r, 40, 0);
	assert_int_equal(vss_check_reply(hot_backup_req, 40, r, 27, &f), VSS_W_SHORT);
	assert_int_equal(vss_check_reply(hot_backup_req, 40, r, 32, &f), VSS_W_MISMATCH);
	assert_int_equal(vss_check_reply(hot_backup_req, 40, r, 9000, &f), VSS_W_LONG);
	r[25] = 0x03;	/* still a request */
	assert_int_equal(vss_check_reply(hot_backup_req, 40, r, 40, &f), VSS_W_FLAGS);
	r[25] = 0x04;	/* no TRANSACTION */
	assert_int_equal(vss_check_reply(hot_backup_req, 40, r, 40, &f), VSS_W_FLAGS);
	r[25] = 0x05;
	r[24] = 9;	/* IC transaction id */
	assert_int_equal(vss_check_reply(hot_backup_req, 40, r, 40, &f), VSS_W_TXID);
	r[24] = 0;
	r[12] = VSS_ICMSG_SHUTDOWN;
	assert_int_equal(vss_check_reply(hot_backup_req, 40, r, 40, &f), VSS_W_TYPE);
	r[12] = VSS_ICMSG_VSS;
	r[28] = VSS_OP_THAW;
	assert_int_equal(vss_check_reply(hot_backup_req, 40, r, 40, &f), VSS_W_OP);
	r[28] = VSS_OP_HOT_BACKUP;
	assert_int_equal(vss_check_reply(hot_backup_req, 40, r, 40, &f), VSS_W_OK);
	assert_string_equal(vss_wstatus_str(VSS_W_TXID), "wrong IC transaction id");
	/* short buffers never read past len */
	assert_int_equal(vss_msg_flags(r, 39), 0);
	vss_guest_reply(r, 10, 7);	/* ignored */
	assert_int_equal(r[20], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_negotiate_bytes),
		cmocka_unit_test(test_guest_negotiate),
		cmocka_unit_test(test_negotiate_nomatch),
		cmocka_unit_test(test_negotiate_hostile),
		cmocka_unit_test(test_vss_request_bytes),
		cmocka_unit_test(test_freeze_bytes),
		cmocka_unit_test(test_reply_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
