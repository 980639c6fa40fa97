/* libFuzzer target: the VSS message parser (vss/wire.c) in both
 * directions.  The input is a packet payload exactly as it would leave a
 * ring (copied into a buffer of its own length, so ASan sees any read past
 * it):
 *  - as a guest's reply to each request the host sends (NEGOTIATE,
 *    HOT_BACKUP, FREEZE with LUNs): vss_check_reply, then
 *    vss_dec_negotiate_reply / vss_msg_flags on what passed;
 *  - as a host's request to a guest: vss_decode, vss_guest_negotiate with
 *    Linux's version lists, vss_guest_reply.
 * Invariants checked: a reply that passes has the request's length, type
 * and operation; a negotiated version is one the host offered; the
 * guest's answer to a NEGOTIATE keeps its length and passes the host's
 * checks when the request was the host's own.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vss/vss.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n);

static const struct vss_ic_version host_fw[] = { { 3, 0 }, { 1, 0 } };
static const struct vss_ic_version host_msg[] = { { 5, 0 } };
static const struct vss_ic_version linux_fw[] = { { 3, 0 } };
static const struct vss_ic_version linux_msg[] = { { 5, 0 } };

static void as_reply(const uint8_t *req, uint32_t req_len, const uint8_t *rep,
		     uint32_t len)
{
	struct vss_ic_version fw, msg;
	struct vss_frame f;

	if (vss_check_reply(req, req_len, rep, len, &f) != VSS_W_OK)
		return;
	if (len != req_len || f.type != req[12] ||
	    (f.type == VSS_ICMSG_VSS && rep[28] != req[28]))
		abort();
	if (f.type == VSS_ICMSG_NEGOTIATE &&
	    vss_dec_negotiate_reply(req, req_len, rep, len, &fw, &msg) == VSS_W_OK &&
	    !((fw.major == 3 || fw.major == 1) && fw.minor == 0 && msg.major == 5 &&
	      msg.minor == 0))
		abort();
	(void)vss_msg_flags(rep, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	static uint8_t req[VSS_MAX_PKT];
	struct vss_ic_version fw, msg;
	struct vss_lun_info luns[3];
	struct vss_frame f;
	uint8_t *buf;
	uint32_t len, rl;

	if (n > VSS_MAX_PKT + 64)
		return 0;
	len = (uint32_t)n;
	buf = malloc(n ? n : 1);
	if (!buf)
		return 0;

	/* host side: the input answers each of our requests */
	memcpy(buf, in, n);
	if (vss_enc_negotiate(req, sizeof(req), host_fw, 2, host_msg, 1, &rl) != VSS_W_OK)
		abort();
	memset(req + rl, 0, 4);
	as_reply(req, (rl + 7) & ~7u, buf, len);
	if (vss_enc_request(req, sizeof(req), VSS_VER(3, 0), VSS_VER(5, 0),
			    VSS_OP_HOT_BACKUP, 0, NULL, 0, &rl) != VSS_W_OK)
		abort();
	as_reply(req, rl, buf, len);
	memset(luns, 0x11, sizeof(luns));
	if (vss_enc_request(req, sizeof(req), VSS_VER(3, 0), VSS_VER(5, 0),
			    VSS_OP_FREEZE, 0, luns, 3, &rl) != VSS_W_OK)
		abort();
	as_reply(req, rl, buf, len);

	/* guest side: the input is a host's request */
	if (vss_decode(buf, len, &f) == VSS_W_OK) {
		if (f.type == VSS_ICMSG_NEGOTIATE) {
			enum vss_wstatus st = vss_guest_negotiate(buf, len, linux_fw, 1,
								  linux_msg, 1, &fw, &msg);

			if (st == VSS_W_OK && (fw.major != 3 || msg.major != 5))
				abort();
			if (st == VSS_W_OK || st == VSS_W_NOMATCH) {
				vss_guest_reply(buf, len, 0);
				if (vss_check_reply(in, len, buf, len, &f) == VSS_W_OK &&
				    st == VSS_W_OK &&
				    vss_dec_negotiate_reply(in, len, buf, len, &fw, &msg) != VSS_W_OK &&
				    (in[25] & 0x07) == 0x03)
					abort();
			}
		} else if (len >= VSS_IC_HDR + sizeof(struct vss_msg)) {
			vss_set_msg_flags(buf, len, VSS_HBU_NO_AUTO_RECOVERY);
			vss_guest_reply(buf, len, VSS_E_FAIL);
		}
	}
	free(buf);
	return 0;
}
