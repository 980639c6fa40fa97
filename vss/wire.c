/* vss wire codec: IC framing, NEGOTIATE, VSS messages (see vss.h).
 *
 * Freestanding: includes only vss/vss.h (<stdint.h>, <stddef.h>,
 * <stdbool.h>); no libc, no errno.  Every field is read and written byte
 * by byte in little-endian order, so buffers need no alignment and the
 * host's endianness does not matter.  Lengths are checked before any
 * access; a buffer is never read past len nor written past cap.
 */
#include "vss/vss.h"

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void zero(uint8_t *p, uint32_t n)
{
	while (n--)
		*p++ = 0;
}

#define OFF(type, field) ((uint32_t)offsetof(struct type, field))
#define HDR(field) OFF(vss_ic_hdr, field)

const char *vss_wstatus_str(enum vss_wstatus st)
{
	switch (st) {
	case VSS_W_OK: return "ok";
	case VSS_W_SHORT: return "packet too short";
	case VSS_W_LONG: return "packet longer than 8192 bytes";
	case VSS_W_SPACE: return "buffer too small";
	case VSS_W_ARG: return "bad arguments";
	case VSS_W_FLAGS: return "wrong icflags";
	case VSS_W_TYPE: return "wrong message type";
	case VSS_W_TXID: return "wrong IC transaction id";
	case VSS_W_MISMATCH: return "reply length differs from the request";
	case VSS_W_COUNT: return "bad version counts";
	case VSS_W_NOMATCH: return "no common version";
	case VSS_W_VERSION: return "version never offered";
	case VSS_W_OP: return "reply for another operation";
	}
	return "unknown status";
}

enum vss_wstatus vss_decode(const void *buf, uint32_t len, struct vss_frame *f)
{
	const uint8_t *p = buf;

	if (len < VSS_IC_HDR)
		return VSS_W_SHORT;
	if (len > VSS_MAX_PKT)
		return VSS_W_LONG;
	f->len = len;
	f->pipe_flags = get32(p + HDR(pipe_flags));
	f->pipe_msgsize = get32(p + HDR(pipe_msgsize));
	f->fw.major = get16(p + HDR(icverframe));
	f->fw.minor = get16(p + HDR(icverframe) + 2);
	f->type = get16(p + HDR(icmsgtype));
	f->msgver.major = get16(p + HDR(icvermsg));
	f->msgver.minor = get16(p + HDR(icvermsg) + 2);
	f->icmsgsize = get16(p + HDR(icmsgsize));
	f->status = get32(p + HDR(status));
	f->txid = p[HDR(ictransaction_id)];
	f->icflags = p[HDR(icflags)];
	return VSS_W_OK;
}

/* The 28 bytes of headers of a host request with a body of body bytes. */
static void put_hdr(uint8_t *p, struct vss_ic_version fw,
		    struct vss_ic_version msgver, uint16_t type, uint32_t body)
{
	zero(p, VSS_IC_HDR);
	put32(p + HDR(pipe_flags), VSS_PIPE_FLAG_DATA);
	put32(p + HDR(pipe_msgsize), VSS_IC_HDR - 8 + body);
	put16(p + HDR(icverframe), fw.major);
	put16(p + HDR(icverframe) + 2, fw.minor);
	put16(p + HDR(icmsgtype), type);
	put16(p + HDR(icvermsg), msgver.major);
	put16(p + HDR(icvermsg) + 2, msgver.minor);
	put16(p + HDR(icmsgsize), (uint16_t)body);
	p[HDR(icflags)] = VSS_ICF_TRANSACTION | VSS_ICF_REQUEST;
}

static void put_ver(uint8_t *p, struct vss_ic_version v)
{
	put16(p, v.major);
	put16(p + 2, v.minor);
}

static struct vss_ic_version get_ver(const uint8_t *p)
{
	return VSS_VER(get16(p), get16(p + 2));
}

enum vss_wstatus vss_enc_negotiate(void *buf, uint32_t cap,
				   const struct vss_ic_version *fw, unsigned nfw,
				   const struct vss_ic_version *msg, unsigned nmsg,
				   uint32_t *len)
{
	uint8_t *p = buf;
	uint32_t body, n;

	if (!nfw || !nmsg || nfw > VSS_NEGOTIATE_MAX_COUNT ||
	    nmsg > VSS_NEGOTIATE_MAX_COUNT)
		return VSS_W_ARG;
	body = (uint32_t)sizeof(struct vss_negotiate) + 4 * (nfw + nmsg);
	n = VSS_IC_HDR + body;
	if (cap < n)
		return VSS_W_SPACE;
	/* the headers' versions before negotiation: 1.0 / 1.0 (our choice;
	 * Linux ignores them; what Hyper-V sends is unconfirmed) */
	put_hdr(p, VSS_VER(1, 0), VSS_VER(1, 0), VSS_ICMSG_NEGOTIATE, body);
	p += VSS_IC_HDR;
	put16(p + OFF(vss_negotiate, fw_count), (uint16_t)nfw);
	put16(p + OFF(vss_negotiate, msg_count), (uint16_t)nmsg);
	put32(p + OFF(vss_negotiate, reserved), 0);
	p += sizeof(struct vss_negotiate);
	for (unsigned i = 0; i < nfw; i++, p += 4)
		put_ver(p, fw[i]);
	for (unsigned i = 0; i < nmsg; i++, p += 4)
		put_ver(p, msg[i]);
	*len = n;
	return VSS_W_OK;
}

enum vss_wstatus vss_enc_request(void *buf, uint32_t cap,
				 struct vss_ic_version fw,
				 struct vss_ic_version msgver, enum vss_op op,
				 uint32_t flags, const struct vss_lun_info *luns,
				 uint32_t nluns, uint32_t *len)
{
	uint8_t *p = buf;
	uint32_t body, n;

	if ((unsigned)op > VSS_OP_AUTO_RECOVER || nluns > VSS_MAX_LUNS ||
	    (nluns && (op != VSS_OP_FREEZE || !luns)))
		return VSS_W_ARG;
	if (op == VSS_OP_FREEZE)
		body = (uint32_t)sizeof(struct vss_freeze) +
		       nluns * (uint32_t)sizeof(struct vss_lun_info);
	else
		body = (uint32_t)sizeof(struct vss_msg);
	n = VSS_IC_HDR + body;	/* <= 28 + 20 + 260 * 24 = 6288 < 8192 */
	if (cap < n)
		return VSS_W_SPACE;
	put_hdr(p, fw, msgver, VSS_ICMSG_VSS, body);
	p += VSS_IC_HDR;
	zero(p, body);
	p[0] = (uint8_t)op;
	if (op == VSS_OP_FREEZE) {
		const uint8_t *src = (const uint8_t *)luns;

		put32(p + OFF(vss_freeze, flags), flags);
		put32(p + OFF(vss_freeze, lun_count), nluns);
		p += sizeof(struct vss_freeze);
		for (uint32_t i = 0; i < nluns * sizeof(struct vss_lun_info); i++)
			p[i] = src[i];	/* packed, byte-sized fields */
	} else {
		put32(p + OFF(vss_msg, flags), flags);
	}
	*len = n;
	return VSS_W_OK;
}

enum vss_wstatus vss_check_reply(const void *req, uint32_t req_len,
				 const void *rep, uint32_t rep_len,
				 struct vss_frame *f)
{
	struct vss_frame q;
	enum vss_wstatus st;

	st = vss_decode(req, req_len, &q);
	if (st != VSS_W_OK)
		return VSS_W_ARG;
	st = vss_decode(rep, rep_len, f);
	if (st != VSS_W_OK)
		return st;
	if (rep_len != req_len)
		return VSS_W_MISMATCH;
	if ((f->icflags & (VSS_ICF_TRANSACTION | VSS_ICF_RESPONSE)) !=
	    (VSS_ICF_TRANSACTION | VSS_ICF_RESPONSE) ||
	    (f->icflags & VSS_ICF_REQUEST))
		return VSS_W_FLAGS;
	if (f->type != q.type)
		return VSS_W_TYPE;
	if (f->txid != q.txid)
		return VSS_W_TXID;
	if (q.type == VSS_ICMSG_VSS &&
	    ((const uint8_t *)rep)[VSS_IC_HDR] != ((const uint8_t *)req)[VSS_IC_HDR])
		return VSS_W_OP;
	return VSS_W_OK;
}

/* Was v among the n versions at p? */
static bool offered(const uint8_t *p, unsigned n, struct vss_ic_version v)
{
	for (unsigned i = 0; i < n; i++, p += 4)
		if (get16(p) == v.major && get16(p + 2) == v.minor)
			return true;
	return false;
}

enum vss_wstatus vss_dec_negotiate_reply(const void *req, uint32_t req_len,
					 const void *rep, uint32_t rep_len,
					 struct vss_ic_version *fw,
					 struct vss_ic_version *msg)
{
	const uint8_t *q = (const uint8_t *)req + VSS_IC_HDR;
	const uint8_t *p = (const uint8_t *)rep + VSS_IC_HDR;
	const uint32_t nb = (uint32_t)sizeof(struct vss_negotiate);
	unsigned qfw, qmsg;

	/* the request is ours (well-formed); the reply has its length */
	if (req_len < VSS_IC_HDR + nb || rep_len != req_len)
		return VSS_W_SHORT;
	qfw = get16(q);
	qmsg = get16(q + 2);
	if (VSS_IC_HDR + nb + 4 * (qfw + qmsg) > req_len)
		return VSS_W_ARG;
	if (get16(p) == 0 && get16(p + 2) == 0)
		return VSS_W_NOMATCH;
	if (get16(p) != 1 || get16(p + 2) != 1 || 2 > qfw + qmsg)
		return VSS_W_COUNT;
	*fw = get_ver(p + nb);
	*msg = get_ver(p + nb + 4);
	if (!offered(q + nb, qfw, *fw) || !offered(q + nb + 4 * qfw, qmsg, *msg))
		return VSS_W_VERSION;
	return VSS_W_OK;
}

uint32_t vss_msg_flags(const void *buf, uint32_t len)
{
	const uint8_t *p = buf;

	if (len < VSS_IC_HDR + sizeof(struct vss_msg))
		return 0;
	return get32(p + VSS_IC_HDR + OFF(vss_msg, flags));
}

uint8_t vss_msg_op(const void *buf)
{
	return ((const uint8_t *)buf)[VSS_IC_HDR];
}

enum vss_wstatus vss_guest_negotiate(void *buf, uint32_t len,
				     const struct vss_ic_version *fw_pref,
				     unsigned nfw,
				     const struct vss_ic_version *msg_pref,
				     unsigned nmsg, struct vss_ic_version *fw,
				     struct vss_ic_version *msg)
{
	uint8_t *p = buf, *n = p + VSS_IC_HDR;
	const uint32_t nb = (uint32_t)sizeof(struct vss_negotiate);
	unsigned hfw, hmsg;
	bool found = false;

	/* Linux needs the two counts, then checks both against 100 and the
	 * whole list against the packet's length */
	if (len < VSS_IC_HDR + OFF(vss_negotiate, reserved) || len > VSS_MAX_PKT)
		return VSS_W_SHORT;
	hfw = get16(n);
	hmsg = get16(n + 2);
	if (hfw > VSS_NEGOTIATE_MAX_COUNT || hmsg > VSS_NEGOTIATE_MAX_COUNT ||
	    VSS_IC_HDR + nb + 4 * (hfw + hmsg) > len)
		return VSS_W_COUNT;
	put16(p + HDR(icmsgsize), 0x10);
	for (unsigned i = 0; i < nfw && !found; i++)
		if (offered(n + nb, hfw, fw_pref[i])) {
			*fw = fw_pref[i];
			found = true;
		}
	if (found) {
		found = false;
		for (unsigned i = 0; i < nmsg && !found; i++)
			if (offered(n + nb + 4 * hfw, hmsg, msg_pref[i])) {
				*msg = msg_pref[i];
				found = true;
			}
	}
	if (!found) {
		/* (Linux also overwrites entries 0 and 1 in its 8 KiB buffer;
		 * with counts 0/0 they mean nothing and may lie past len) */
		put16(n, 0);
		put16(n + 2, 0);
		return VSS_W_NOMATCH;
	}
	/* a match needs one entry of each list: len >= 28 + 8 + 8 */
	put16(n, 1);
	put16(n + 2, 1);
	put_ver(n + nb, *fw);
	put_ver(n + nb + 4, *msg);
	return VSS_W_OK;
}

void vss_guest_reply(void *buf, uint32_t len, uint32_t status)
{
	uint8_t *p = buf;

	if (len < VSS_IC_HDR)
		return;
	put32(p + HDR(status), status);
	p[HDR(icflags)] = VSS_ICF_TRANSACTION | VSS_ICF_RESPONSE;
}

void vss_set_msg_flags(void *buf, uint32_t len, uint32_t flags)
{
	uint8_t *p = buf;

	if (len >= VSS_IC_HDR + sizeof(struct vss_msg))
		put32(p + VSS_IC_HDR + OFF(vss_msg, flags), flags);
}
