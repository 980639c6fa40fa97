/* iscsi login phase (RFC 7143 sections 6 and 11.12-11.13): the security
 * stage (AuthMethod None or CHAP with MD5), the operational stage (keys
 * negotiated in params.c) and the move to full feature phase.
 *
 * Runs on the connection's reader thread before anything else exists.
 * Every Login Request is read whole (its data segment at most 8 KiB, the
 * text of C-bit continuations at most ISCSI_MAX_LOGIN_TEXT), and the whole
 * login must end within login_ms (iscsi_set_deadline).  A failed login
 * gets a Login Response with the error status, then the connection ends.
 */
#include "iscsi-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/util.h"

#define CHAP_CHALLENGE_LEN 16
#define MAX_KEYS 128

struct login {
	uint8_t isid[6];
	uint32_t itt;
	bool first_done;
	bool have_name, normal_seen;
	bool target_ok;
	bool auth_done;            /* security stage passed */
	bool chap_sent;            /* challenge sent, waiting for CHAP_N/R */
	bool chap_a_ok;
	bool declared;             /* our declaratives sent */
	uint8_t chap_id;
	uint8_t challenge[CHAP_CHALLENGE_LEN];
	int stage;                 /* current stage (CSG of the last response) */
	char *acc;                 /* C-bit text being gathered */
	size_t acc_len;
};

/* Send a Login Response: flags (T, CSG, NSG), status, text. */
static int login_rsp(struct iscsi_conn *c, struct login *l, uint8_t flags,
		     uint16_t status, const struct iscsi_text *t)
{
	struct iscsi_login r = { .op = ISCSI_OP_LOGIN_RSP, .flags = flags };
	struct iovec iov = { t ? t->buf : NULL, t ? t->len : 0 };

	memcpy(r.isid, l->isid, 6);
	r.tsih = htobe16(status == ISCSI_LOGIN_OK && (flags & ISCSI_F_FINAL) &&
			 (flags & 3) == ISCSI_STAGE_FULL ? c->tsih : 0);
	r.itt = l->itt;
	r.status_class = (uint8_t)(status >> 8);
	r.status_detail = (uint8_t)status;
	iscsi_set_dlen(&r, (uint32_t)iov.iov_len);
	pthread_mutex_lock(&c->wlock);
	pthread_mutex_lock(&c->mu);
	r.sn1 = htobe32(c->stat_sn++);
	r.sn2 = htobe32(c->exp_cmd_sn);
	r.max_cmd_sn = htobe32(iscsi_max_cmd_sn(c));
	pthread_mutex_unlock(&c->mu);
	{
		int e = iscsi_send_pdu_locked(c, &r, &iov, iov.iov_len ? 1 : 0);

		pthread_mutex_unlock(&c->wlock);
		return e;
	}
}

/* Fail the login with status; returns -EACCES (ends the connection). */
static int login_fail(struct iscsi_conn *c, struct login *l, uint16_t status,
		      const char *why)
{
	iscsi_logf(c, ISCSI_LOG_ERROR, "login refused (status %04x): %s", status, why);
	login_rsp(c, l, (uint8_t)(l->stage << 2), status, NULL);
	return -EACCES;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decode "0x..." hex into out (exactly n bytes); false otherwise. */
static bool unhex(const char *v, uint8_t *out, size_t n)
{
	if (v[0] != '0' || (v[1] != 'x' && v[1] != 'X') || strlen(v + 2) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(v[2 + 2 * i]), lo = hexval(v[3 + 2 * i]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static bool chap_verify(struct iscsi_conn *c, struct login *l, const char *resp)
{
	uint8_t want[16], got[16];
	unsigned wl = 0;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	bool ok = false;

	if (!m)
		return false;
	if (EVP_DigestInit_ex(m, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(m, &l->chap_id, 1) == 1 &&
	    EVP_DigestUpdate(m, c->s->chap_secret, strlen(c->s->chap_secret)) == 1 &&
	    EVP_DigestUpdate(m, l->challenge, sizeof(l->challenge)) == 1 &&
	    EVP_DigestFinal_ex(m, want, &wl) == 1 && wl == 16 &&
	    unhex(resp, got, 16)) {
		uint8_t diff = 0;

		for (int i = 0; i < 16; i++)   /* constant time */
			diff |= (uint8_t)(want[i] ^ got[i]);
		ok = diff == 0;
	}
	EVP_MD_CTX_free(m);
	return ok;
}

static bool list_has(const char *list, const char *item)
{
	size_t n = strlen(item);

	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == n && !memcmp(p, item, n))
			return true;
		if (!e)
			break;
		p = e + 1;
	}
	return false;
}

/* I_T nexus identifier: FNV-1a of initiator name and ISID (SAM: the
 * initiator port is the name plus the ISID). */
static uint64_t nexus_id(const char *name, const uint8_t *isid)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	for (int i = 0; i < 6; i++)
		h = (h ^ isid[i]) * 0x100000001b3ull;
	return h ? h : 1;
}

/* Apply one key of the current PDU.  Returns 0, or a login status. */
static uint16_t login_key(struct iscsi_conn *c, struct login *l, int csg,
			  const char *k, const char *v, struct iscsi_text *out,
			  const char **chap_n, const char **chap_r, bool *mutual)
{
	struct iscsi_srv *s = c->s;
	bool chap = s->chap_user != NULL;

	if (!strcmp(k, "InitiatorName")) {
		if (!*v || strlen(v) >= sizeof(c->initiator))
			return ISCSI_LOGIN_INIT_ERROR;
		snprintf(c->initiator, sizeof(c->initiator), "%s", v);
		l->have_name = true;
	} else if (!strcmp(k, "InitiatorAlias")) {
		/* informational */
	} else if (!strcmp(k, "SessionType")) {
		if (!strcmp(v, "Discovery"))
			c->discovery = true;
		else if (!strcmp(v, "Normal"))
			c->discovery = false;
		else
			return ISCSI_LOGIN_INIT_ERROR;
	} else if (!strcmp(k, "TargetName")) {
		if (strcmp(v, s->target_name))
			return ISCSI_LOGIN_NOT_FOUND;
		l->target_ok = true;
	} else if (!strcmp(k, "AuthMethod")) {
		if (csg != ISCSI_STAGE_SECURITY)
			return ISCSI_LOGIN_INIT_ERROR;
		if (chap && list_has(v, "CHAP"))
			iscsi_text_add(out, k, "CHAP");
		else if (!chap && list_has(v, "None"))
			iscsi_text_add(out, k, "None");
		else
			return ISCSI_LOGIN_AUTH_FAILED;
	} else if (!strcmp(k, "CHAP_A")) {
		if (!chap || csg != ISCSI_STAGE_SECURITY || !list_has(v, "5"))
			return ISCSI_LOGIN_AUTH_FAILED;
		l->chap_a_ok = true;
	} else if (!strcmp(k, "CHAP_N")) {
		*chap_n = v;
	} else if (!strcmp(k, "CHAP_R")) {
		*chap_r = v;
	} else if (!strcmp(k, "CHAP_I") || !strcmp(k, "CHAP_C")) {
		*mutual = true;
	} else if (!iscsi_negotiate(c, k, v, out)) {
		if (!strcmp(k, "TargetAlias") || !strcmp(k, "TargetAddress") ||
		    !strcmp(k, "TargetPortalGroupTag"))
			return ISCSI_LOGIN_INIT_ERROR;   /* target-only keys */
		iscsi_text_add(out, k, "NotUnderstood");
	}
	return 0;
}

/* One complete login request (text gathered).  Returns 1 to enter full
 * feature phase, 0 to go on, -errno to drop. */
static int login_step(struct iscsi_conn *c, struct login *l, uint8_t flags,
		      char *text, size_t len)
{
	struct iscsi_srv *s = c->s;
	struct iscsi_kv kv[MAX_KEYS];
	struct iscsi_text out = { 0 };
	const char *chap_n = NULL, *chap_r = NULL;
	bool mutual = false, transit = flags & ISCSI_F_FINAL;
	int csg = (flags >> 2) & 3, nsg = flags & 3, n, r;
	uint16_t st = 0;

	l->stage = csg;
	if (csg == 2 || csg == ISCSI_STAGE_FULL || (transit && (nsg == 2 || nsg <= csg)))
		return login_fail(c, l, ISCSI_LOGIN_INIT_ERROR, "bad stage numbers");
	n = iscsi_kv_parse(text, len, kv, MAX_KEYS);
	if (n < 0)
		return login_fail(c, l, ISCSI_LOGIN_INIT_ERROR, "malformed login text");
	for (int i = 0; i < n && !st; i++)
		st = login_key(c, l, csg, kv[i].key, kv[i].val, &out,
			       &chap_n, &chap_r, &mutual);
	if (st) {
		free(out.buf);
		return login_fail(c, l, st, st == ISCSI_LOGIN_NOT_FOUND ?
				  "no such target" : "bad key in login text");
	}
	if (!l->have_name) {
		free(out.buf);
		return login_fail(c, l, ISCSI_LOGIN_MISSING_PARAM, "no InitiatorName");
	}
	if (csg == ISCSI_STAGE_SECURITY && s->chap_user && !l->auth_done) {
		if (chap_n || chap_r) {
			if (!l->chap_sent || !chap_n || !chap_r || mutual ||
			    strcmp(chap_n, s->chap_user) || !chap_verify(c, l, chap_r)) {
				free(out.buf);
				return login_fail(c, l, ISCSI_LOGIN_AUTH_FAILED,
						  "CHAP authentication failed");
			}
			l->auth_done = true;
		} else if (l->chap_a_ok && !l->chap_sent) {
			char hex[2 * CHAP_CHALLENGE_LEN + 3];

			if (util_random(l->challenge, sizeof(l->challenge)) ||
			    util_random(&l->chap_id, 1)) {
				free(out.buf);
				return login_fail(c, l, ISCSI_LOGIN_TARGET_ERROR, "no random bytes");
			}
			strcpy(hex, "0x");
			for (int i = 0; i < CHAP_CHALLENGE_LEN; i++)
				sprintf(hex + 2 + 2 * i, "%02x", l->challenge[i]);
			iscsi_text_add(&out, "CHAP_A", "5");
			iscsi_text_add(&out, "CHAP_I", "%u", l->chap_id);
			iscsi_text_add(&out, "CHAP_C", "%s", hex);
			l->chap_sent = true;
		}
		if (!l->auth_done)
			transit = false;   /* the exchange goes on */
	} else if (csg == ISCSI_STAGE_SECURITY) {
		l->auth_done = true;
	} else if (!l->auth_done && s->chap_user) {
		free(out.buf);
		return login_fail(c, l, ISCSI_LOGIN_AUTH_FAILED,
				  "authentication required, security stage skipped");
	} else {
		l->auth_done = true;
	}
	if (transit && nsg == ISCSI_STAGE_FULL && !c->discovery && !l->target_ok) {
		free(out.buf);
		return login_fail(c, l, ISCSI_LOGIN_MISSING_PARAM, "no TargetName");
	}
	if (!l->normal_seen && !c->discovery) {
		iscsi_text_add(&out, "TargetPortalGroupTag", "1");
		l->normal_seen = true;
	}
	if (!l->declared && (csg == ISCSI_STAGE_OPERATIONAL || (transit && nsg == ISCSI_STAGE_OPERATIONAL))) {
		iscsi_text_add(&out, "MaxRecvDataSegmentLength", "%u", ISCSI_OUR_MRDSL);
		l->declared = true;
	}
	if (out.overflow) {
		free(out.buf);
		return login_fail(c, l, ISCSI_LOGIN_INIT_ERROR, "login text too long");
	}
	if (transit && nsg == ISCSI_STAGE_FULL) {
		pthread_mutex_lock(&s->ls.lock);
		if (!++s->next_tsih)
			s->next_tsih = 1;
		c->tsih = s->next_tsih;
		pthread_mutex_unlock(&s->ls.lock);
	}
	r = login_rsp(c, l, (uint8_t)((transit ? ISCSI_F_FINAL : 0) | csg << 2 |
				      (transit ? nsg : 0)), 0, &out);
	free(out.buf);
	if (r)
		return r;
	if (transit && nsg == ISCSI_STAGE_FULL) {
		memcpy(c->isid, l->isid, 6);
		c->nexus = nexus_id(c->initiator, c->isid);
		iscsi_logf(c, ISCSI_LOG_INFO, "%s session of %s", c->discovery ?
			   "discovery" : "normal", c->initiator);
		return 1;
	}
	return 0;
}

int iscsi_login(struct iscsi_conn *c)
{
	struct login l = { .stage = ISCSI_STAGE_SECURITY };
	int r;

	/* RFC defaults until negotiated otherwise. */
	c->mrdsl_tx = 8192;
	c->max_burst = 262144;
	c->first_burst = 65536;
	c->immediate_data = true;
	c->initial_r2t = true;
	for (;;) {
		struct iscsi_bhs h;
		struct iscsi_login *lr = (struct iscsi_login *)&h;
		uint8_t ahs[1024];
		size_t alen;
		uint32_t dlen;

		r = iscsi_read_header(c, &h, ahs, &alen);
		if (r == -ENODATA) {
			r = 0;
			break;
		}
		if (r)
			break;
		dlen = iscsi_dlen(&h);
		if ((h.op & ISCSI_OP_MASK) != ISCSI_OP_LOGIN_REQ) {
			r = iscsi_proto_error(c, "opcode 0x%02x during login", h.op);
			break;
		}
		if (dlen > ISCSI_LOGIN_MRDSL) {
			r = iscsi_proto_error(c, "login data segment of %u bytes", dlen);
			break;
		}
		if ((r = iscsi_read_data(c, dlen)))
			break;
		if (!l.first_done) {
			memcpy(l.isid, lr->isid, 6);
			l.itt = lr->itt;
			l.first_done = true;
			c->exp_cmd_sn = be32toh(lr->sn1);
			c->max_cmd_sn = c->exp_cmd_sn + ISCSI_CMD_WINDOW - 1;
			c->stat_sn = be32toh(lr->sn2);
			if (lr->ver_x > 0) {   /* VersionMin */
				r = login_fail(c, &l, ISCSI_LOGIN_UNSUPPORTED_VERSION,
					       "unsupported version");
				break;
			}
			if (lr->tsih) {
				r = login_fail(c, &l, ISCSI_LOGIN_NO_SESSION,
					       "adding a connection to a session (MaxConnections=1)");
				break;
			}
		} else if (memcmp(l.isid, lr->isid, 6)) {
			r = login_fail(c, &l, ISCSI_LOGIN_INIT_ERROR, "ISID changed");
			break;
		}
		l.itt = lr->itt;
		if (l.acc_len + dlen > ISCSI_MAX_LOGIN_TEXT) {
			r = login_fail(c, &l, ISCSI_LOGIN_INIT_ERROR, "login text too long");
			break;
		}
		if (dlen) {
			char *nb = realloc(l.acc, l.acc_len + dlen + 1);

			if (!nb) {
				r = -ENOMEM;
				break;
			}
			l.acc = nb;
			memcpy(l.acc + l.acc_len, c->rx, dlen);
			l.acc_len += dlen;
		}
		if (h.flags & ISCSI_F_CONT) {
			if (h.flags & ISCSI_F_FINAL) {
				r = login_fail(c, &l, ISCSI_LOGIN_INIT_ERROR, "both T and C set");
				break;
			}
			/* Ask for the rest: an empty response. */
			l.stage = (h.flags >> 2) & 3;
			if ((r = login_rsp(c, &l, (uint8_t)(l.stage << 2), 0, NULL)))
				break;
			continue;
		}
		r = login_step(c, &l, h.flags, l.acc ? l.acc : (char *)"", l.acc_len);
		l.acc_len = 0;
		if (r)
			break;
	}
	free(l.acc);
	return r;
}
