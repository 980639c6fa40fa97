/* iscsi text keys: parsing "key=value\0" pairs and negotiating the
 * operational keys of RFC 7143 section 13.
 *
 * Our side of each key, and the rule that combines it with the
 * initiator's offer:
 *   HeaderDigest, DataDigest   CRC32C or None: the initiator's first choice
 *   MaxRecvDataSegmentLength   declarative both ways (ours: 256 KiB)
 *   MaxBurstLength             min(theirs, 16 MiB)
 *   FirstBurstLength           min(theirs, 16 MiB, MaxBurstLength)
 *   ImmediateData              theirs AND Yes
 *   InitialR2T                 theirs OR No
 *   MaxOutstandingR2T          1 (one R2T sequence at a time)
 *   DataPDUInOrder, DataSequenceInOrder   Yes
 *   ErrorRecoveryLevel         0
 *   MaxConnections             1
 *   DefaultTime2Wait/Retain    theirs / 0
 *   IFMarker, OFMarker         No
 */
#include "iscsi-int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

int iscsi_kv_parse(char *text, size_t len, struct iscsi_kv *kv, int max)
{
	size_t i = 0;
	int n = 0;

	while (i < len) {
		char *p = text + i, *eq;
		size_t l = strnlen(p, len - i);

		if (l == len - i)       /* the last pair must end with NUL */
			return -EINVAL;
		if (l == 0) {           /* padding NULs at the end */
			i++;
			continue;
		}
		eq = memchr(p, '=', l);
		if (!eq || eq == p || eq - p > 63 || n == max)
			return -EINVAL;
		*eq = 0;
		kv[n].key = p;
		kv[n].val = eq + 1;
		n++;
		i += l + 1;
	}
	return n;
}

void iscsi_text_add(struct iscsi_text *t, const char *key, const char *fmt, ...)
{
	char val[512];
	va_list ap;
	size_t need;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	need = strlen(key) + 1 + strlen(val) + 1;
	if (t->len + need > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		char *nb;

		while (cap < t->len + need)
			cap *= 2;
		if (cap > ISCSI_MAX_LOGIN_TEXT || !(nb = realloc(t->buf, cap))) {
			t->overflow = true;
			return;
		}
		t->buf = nb;
		t->cap = cap;
	}
	t->len += (size_t)sprintf(t->buf + t->len, "%s=%s", key, val) + 1;
}

/* A number value: decimal or 0x hex, at most max. */
static bool num(const char *v, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long x;

	if (!*v || *v == '-' || *v == '+' || *v == ' ')
		return false;
	errno = 0;
	x = strtoull(v, &end, 0);
	if (errno || *end || x > max)
		return false;
	*out = x;
	return true;
}

static bool yes_no(const char *v, bool *out)
{
	if (!strcmp(v, "Yes"))
		*out = true;
	else if (!strcmp(v, "No"))
		*out = false;
	else
		return false;
	return true;
}

/* The initiator's first choice among "CRC32C,None"-style lists. */
static const char *digest_choice(const char *v)
{
	char buf[256];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", v);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "CRC32C"))
			return "CRC32C";
		if (!strcmp(tok, "None"))
			return "None";
	}
	return NULL;
}

bool iscsi_negotiate(struct iscsi_conn *c, const char *key, const char *val,
		     struct iscsi_text *out)
{
	uint64_t x;
	bool b;

	if (!strcmp(key, "HeaderDigest") || !strcmp(key, "DataDigest")) {
		const char *ch = digest_choice(val);

		if (!ch) {
			iscsi_text_add(out, key, "Reject");
			return true;
		}
		if (key[0] == 'H')
			c->hdigest = ch[0] == 'C';
		else
			c->ddigest = ch[0] == 'C';
		iscsi_text_add(out, key, "%s", ch);
	} else if (!strcmp(key, "MaxRecvDataSegmentLength")) {
		if (!num(val, 16777215, &x) || x < 512)
			iscsi_text_add(out, key, "Reject");
		else
			c->mrdsl_tx = (uint32_t)x;
		/* Ours is declared once, in login.c, whatever they sent. */
	} else if (!strcmp(key, "MaxBurstLength")) {
		if (!num(val, 16777215, &x) || x < 512) {
			iscsi_text_add(out, key, "Reject");
			return true;
		}
		c->max_burst = (uint32_t)UTIL_MIN(x, (uint64_t)ISCSI_MAX_BURST);
		if (c->first_burst > c->max_burst)
			c->first_burst = c->max_burst;
		iscsi_text_add(out, key, "%u", c->max_burst);
	} else if (!strcmp(key, "FirstBurstLength")) {
		if (!num(val, 16777215, &x) || x < 512) {
			iscsi_text_add(out, key, "Reject");
			return true;
		}
		c->first_burst = (uint32_t)UTIL_MIN(x, (uint64_t)ISCSI_MAX_BURST);
		if (c->first_burst > c->max_burst)
			c->first_burst = c->max_burst;
		iscsi_text_add(out, key, "%u", c->first_burst);
	} else if (!strcmp(key, "ImmediateData")) {
		if (!yes_no(val, &b)) {
			iscsi_text_add(out, key, "Reject");
			return true;
		}
		c->immediate_data = b;
		iscsi_text_add(out, key, "%s", b ? "Yes" : "No");
	} else if (!strcmp(key, "InitialR2T")) {
		if (!yes_no(val, &b)) {
			iscsi_text_add(out, key, "Reject");
			return true;
		}
		c->initial_r2t = b;
		iscsi_text_add(out, key, "%s", b ? "Yes" : "No");
	} else if (!strcmp(key, "MaxOutstandingR2T") || !strcmp(key, "MaxConnections")) {
		if (!num(val, 65535, &x) || x < 1)
			iscsi_text_add(out, key, "Reject");
		else
			iscsi_text_add(out, key, "1");
	} else if (!strcmp(key, "DataPDUInOrder") || !strcmp(key, "DataSequenceInOrder")) {
		if (!yes_no(val, &b))
			iscsi_text_add(out, key, "Reject");
		else
			iscsi_text_add(out, key, "Yes");
	} else if (!strcmp(key, "ErrorRecoveryLevel")) {
		if (!num(val, 2, &x))
			iscsi_text_add(out, key, "Reject");
		else
			iscsi_text_add(out, key, "0");
	} else if (!strcmp(key, "DefaultTime2Wait")) {
		if (!num(val, 3600, &x))
			iscsi_text_add(out, key, "Reject");
		else
			iscsi_text_add(out, key, "%u", (unsigned)x);
	} else if (!strcmp(key, "DefaultTime2Retain")) {
		if (!num(val, 3600, &x))
			iscsi_text_add(out, key, "Reject");
		else
			iscsi_text_add(out, key, "0");
	} else if (!strcmp(key, "IFMarker") || !strcmp(key, "OFMarker")) {
		iscsi_text_add(out, key, "No");
	} else if (!strcmp(key, "IFMarkInt") || !strcmp(key, "OFMarkInt")) {
		iscsi_text_add(out, key, "Irrelevant");
	} else {
		return false;
	}
	return true;
}
