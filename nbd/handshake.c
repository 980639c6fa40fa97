/* nbd handshake: fixed newstyle negotiation and option haggling.
 *
 * Runs in the connection's thread before any worker exists.  Every option
 * is read whole (at most NBDSRV_MAX_OPTION_LEN bytes, checked before any
 * allocation), parsed with explicit bounds, and answered; malformed data
 * gets NBD_REP_ERR_INVALID and the haggling goes on.  Only a bad magic
 * number, unknown client flags, an oversized option or an EXPORT_NAME for
 * an export we do not have end the connection (the protocol leaves no
 * other way to answer them). */
#include "nbd-int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct opt {
	uint32_t code;
	uint32_t len;
	const uint8_t *data;
};

static int send_buf(struct nbdsrv_conn *c, const void *p, size_t n)
{
	struct iovec iov = { (void *)p, n };

	return nbdsrv_send_all(c->fd, &iov, 1, false);
}

static int reply(struct nbdsrv_conn *c, uint32_t opt, uint32_t type,
		 const void *data, uint32_t len)
{
	uint8_t h[20];
	struct iovec iov[2] = { { h, sizeof(h) }, { (void *)data, len } };

	util_put_be64(h, NBD_REP_MAGIC);
	util_put_be32(h + 8, opt);
	util_put_be32(h + 12, type);
	util_put_be32(h + 16, len);
	return nbdsrv_send_all(c->fd, iov, len ? 2 : 1, false);
}

static int reply_ack(struct nbdsrv_conn *c, uint32_t opt)
{
	return reply(c, opt, NBD_REP_ACK, NULL, 0);
}

/* An error reply with a message for the user. */
static int reply_err(struct nbdsrv_conn *c, uint32_t opt, uint32_t type,
		     const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int reply_err(struct nbdsrv_conn *c, uint32_t opt, uint32_t type,
		     const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	nbdsrv_logf(c, NBDSRV_LOG_INFO, "option %u refused: %s", opt, msg);
	return reply(c, opt, type, msg, (uint32_t)n);
}

static bool name_is_export(struct nbdsrv_conn *c, const uint8_t *name,
			   uint32_t len)
{
	return len == 0 || (len == strlen(c->s->name) &&
			    memcmp(name, c->s->name, len) == 0);
}

static uint16_t trans_flags(struct nbdsrv_conn *c)
{
	/* CAN_MULTI_CONN: every connection serves the same struct bdev, whose
	 * flush makes every completed write durable whichever thread issued
	 * it, and which has no per-connection cache: a flush or FUA write on
	 * one connection is visible on all. */
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
		     NBD_FLAG_SEND_CACHE | NBD_FLAG_CAN_MULTI_CONN;

	if (c->s->read_only)
		f |= NBD_FLAG_READ_ONLY;
	else
		f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
		     NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
	if (c->structured)
		f |= NBD_FLAG_SEND_DF;
	return f;
}

static int reply_info(struct nbdsrv_conn *c, uint32_t opt, uint16_t type,
		      const void *p, size_t n)
{
	uint8_t buf[2 + NBD_MAX_STRING];

	util_put_be16(buf, type);
	memcpy(buf + 2, p, n);
	return reply(c, opt, NBD_REP_INFO, buf, (uint32_t)(2 + n));
}

/* NBD_OPT_INFO and NBD_OPT_GO.  Returns 1 when GO succeeded. */
static int opt_info_go(struct nbdsrv_conn *c, const struct opt *o)
{
	const char *name = c->s->name, *desc = c->s->desc;
	bool want_name = false, want_desc = false;
	uint32_t nlen;
	uint16_t nreq;
	uint8_t b[14];
	int r;

	if (o->len < 6)
		return reply_err(c, o->code, NBD_REP_ERR_INVALID,
				 "option data of %u bytes is too short", o->len);
	nlen = util_get_be32(o->data);
	if (nlen > o->len - 6)
		return reply_err(c, o->code, NBD_REP_ERR_INVALID,
				 "export name length %u runs past the option data", nlen);
	nreq = util_get_be16(o->data + 4 + nlen);
	if (o->len != 6 + nlen + 2 * (uint32_t)nreq)
		return reply_err(c, o->code, NBD_REP_ERR_INVALID,
				 "option data is %u bytes, %u information requests need %u",
				 o->len, nreq, 6 + nlen + 2 * (uint32_t)nreq);
	for (uint32_t i = 0; i < nreq; i++) {
		uint16_t t = util_get_be16(o->data + 6 + nlen + 2 * i);

		want_name |= t == NBD_INFO_NAME;
		want_desc |= t == NBD_INFO_DESCRIPTION;
	}
	if (!name_is_export(c, o->data + 4, nlen))
		return reply_err(c, o->code, NBD_REP_ERR_UNKNOWN,
				 "no export named \"%.*s\" (this server exports \"%s\")",
				 (int)UTIL_MIN(nlen, 256u), (const char *)o->data + 4, name);
	c->eflags = trans_flags(c);
	util_put_be64(b, c->s->b->size);
	util_put_be16(b + 8, c->eflags);
	r = reply_info(c, o->code, NBD_INFO_EXPORT, b, 10);
	if (!r && want_name)
		r = reply_info(c, o->code, NBD_INFO_NAME, name, strlen(name));
	if (!r && want_desc && desc)
		r = reply_info(c, o->code, NBD_INFO_DESCRIPTION, desc, strlen(desc));
	/* Sent whether asked or not, from the disk's limits: any alignment
	 * works (the block layer bounces), but a disk on O_DIRECT does a
	 * read-modify-write below its direct-I/O block, so that is the
	 * minimum we ask for, as qemu-nbd does with cache=none; the
	 * preferred size is the physical block, at least a page. */
	util_put_be32(b, c->s->b->limits.align_off > 1 ? c->s->b->limits.align_off : 1);
	util_put_be32(b + 4, UTIL_MAX(4096u, c->s->b->limits.physical_block));
	util_put_be32(b + 8, NBDSRV_MAX_PAYLOAD);
	if (!r)
		r = reply_info(c, o->code, NBD_INFO_BLOCK_SIZE, b, 12);
	if (!r)
		r = reply_ack(c, o->code);
	if (r || o->code != NBD_OPT_GO)
		return r;
	/* Block status needs the contexts to have been set for this name. */
	if (c->meta && (!c->meta_name || strlen(c->meta_name) != nlen ||
			memcmp(c->meta_name, o->data + 4, nlen)))
		c->meta = false;
	return 1;
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT. */
static int opt_meta(struct nbdsrv_conn *c, const struct opt *o)
{
	static const char ctx[] = "base:allocation";
	bool set = o->code == NBD_OPT_SET_META_CONTEXT, found = false;
	uint32_t nlen, nq, pos;
	uint8_t rep[4 + sizeof(ctx) - 1];
	int r;

	if (set) {
		/* Replaced even when the option fails. */
		c->meta = false;
		free(c->meta_name);
		c->meta_name = NULL;
	}
	/* Listing is answered before structured replies are negotiated, as
	 * qemu-nbd does (the spec lets a server refuse it; clients such as
	 * nbdinfo --list ask early); setting a context needs them. */
	if (set && !c->structured)
		return reply_err(c, o->code, NBD_REP_ERR_INVALID,
				 "structured replies must be negotiated first");
	if (o->len < 8)
		return reply_err(c, o->code, NBD_REP_ERR_INVALID,
				 "option data of %u bytes is too short", o->len);
	nlen = util_get_be32(o->data);
	if (nlen > o->len - 8)
		return reply_err(c, o->code, NBD_REP_ERR_INVALID,
				 "export name length %u runs past the option data", nlen);
	nq = util_get_be32(o->data + 4 + nlen);
	pos = 8 + nlen;
	/* Parse every query before answering any. */
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t ql;
		const char *q;

		if (o->len - pos < 4)
			return reply_err(c, o->code, NBD_REP_ERR_INVALID,
					 "query %u runs past the option data", i);
		ql = util_get_be32(o->data + pos);
		pos += 4;
		if (ql > o->len - pos)
			return reply_err(c, o->code, NBD_REP_ERR_INVALID,
					 "query %u length %u runs past the option data", i, ql);
		q = (const char *)o->data + pos;
		pos += ql;
		if (set)
			found |= ql == sizeof(ctx) - 1 && !memcmp(q, ctx, ql);
		else
			found |= (ql == 5 && !memcmp(q, "base:", 5)) ||
				 (ql == sizeof(ctx) - 1 && !memcmp(q, ctx, ql));
	}
	if (pos != o->len)
		return reply_err(c, o->code, NBD_REP_ERR_INVALID,
				 "%u bytes of option data after the last query",
				 o->len - pos);
	if (nq == 0 && !set)
		found = true;   /* list everything */
	if (!name_is_export(c, o->data + 4, nlen))
		return reply_err(c, o->code, NBD_REP_ERR_UNKNOWN,
				 "no export named \"%.*s\"",
				 (int)UTIL_MIN(nlen, 256u), (const char *)o->data + 4);
	if (found) {
		util_put_be32(rep, set ? NBD_META_ID : 0);
		memcpy(rep + 4, ctx, sizeof(ctx) - 1);
		r = reply(c, o->code, NBD_REP_META_CONTEXT, rep, sizeof(rep));
		if (r)
			return r;
	}
	if (set && found) {
		c->meta_name = strndup((const char *)o->data + 4, nlen);
		if (!c->meta_name)
			return -ENOMEM;
		c->meta = true;
	}
	return reply_ack(c, o->code);
}

static int opt_list(struct nbdsrv_conn *c, const struct opt *o)
{
	const char *name = c->s->name, *desc = c->s->desc;
	size_t nl = strlen(name), dl = desc ? strlen(desc) : 0;
	uint8_t *buf;
	int r;

	if (o->len)
		return reply_err(c, o->code, NBD_REP_ERR_INVALID,
				 "NBD_OPT_LIST takes no data");
	buf = malloc(4 + nl + dl);
	if (!buf)
		return -ENOMEM;
	util_put_be32(buf, (uint32_t)nl);
	memcpy(buf + 4, name, nl);
	if (dl)
		memcpy(buf + 4 + nl, desc, dl);
	r = reply(c, o->code, NBD_REP_SERVER, buf, (uint32_t)(4 + nl + dl));
	free(buf);
	return r ? r : reply_ack(c, o->code);
}

/* NBD_OPT_EXPORT_NAME: no way to refuse but to disconnect. */
static int opt_export_name(struct nbdsrv_conn *c, const struct opt *o)
{
	uint8_t b[8 + 2 + 124] = { 0 };
	struct iovec iov = { b, sizeof(b) };

	if (!name_is_export(c, o->data, o->len)) {
		nbdsrv_logf(c, NBDSRV_LOG_ERROR,
			    "client asked for unknown export \"%.*s\"; disconnecting",
			    (int)UTIL_MIN(o->len, 256u), (const char *)o->data);
		return -ENOENT;
	}
	c->eflags = trans_flags(c);
	util_put_be64(b, c->s->b->size);
	util_put_be16(b + 8, c->eflags);
	if (c->no_zeroes)
		iov.iov_len = 10;
	if (c->meta && (!c->meta_name || strlen(c->meta_name) != o->len ||
			memcmp(c->meta_name, o->data, o->len)))
		c->meta = false;
	return nbdsrv_send_all(c->fd, &iov, 1, false) ?: 1;
}

/* Answer one option: 1 = go to transmission, 0 = continue, 2 = aborted,
 * -errno = drop the connection. */
static int do_option(struct nbdsrv_conn *c, const struct opt *o)
{
	if (listen_stopping(&c->s->ls) && o->code != NBD_OPT_ABORT) {
		if (o->code == NBD_OPT_EXPORT_NAME)
			return -ESHUTDOWN;
		return reply_err(c, o->code, NBD_REP_ERR_SHUTDOWN,
				 "the server is shutting down");
	}
	switch (o->code) {
	case NBD_OPT_EXPORT_NAME:
		return opt_export_name(c, o);
	case NBD_OPT_ABORT:
		(void)reply_ack(c, o->code);   /* the client may be gone */
		return 2;
	case NBD_OPT_LIST:
		return opt_list(c, o);
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info_go(c, o);
	case NBD_OPT_STRUCTURED_REPLY:
		if (o->len)
			return reply_err(c, o->code, NBD_REP_ERR_INVALID,
					 "NBD_OPT_STRUCTURED_REPLY takes no data");
		c->structured = true;
		return reply_ack(c, o->code);
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		return opt_meta(c, o);
	default:
		return reply_err(c, o->code, NBD_REP_ERR_UNSUP,
				 "option %u is not supported by this server", o->code);
	}
}

static int greet(struct nbdsrv_conn *c)
{
	uint8_t b[18];
	uint32_t cflags;
	int r;

	util_put_be64(b, NBD_MAGIC);
	util_put_be64(b + 8, NBD_OPTS_MAGIC);
	util_put_be16(b + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	r = send_buf(c, b, sizeof(b));
	if (r)
		return r;
	r = nbdsrv_in_read(c, b, 4);
	if (r)
		return r == -ENODATA ? 0 : r;
	cflags = util_get_be32(b);
	if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))
		return nbdsrv_proto_error(c, "unknown client flags 0x%x", cflags);
	c->fixed = cflags & NBD_FLAG_C_FIXED_NEWSTYLE;
	c->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;
	return 1;
}

int nbdsrv_handshake(struct nbdsrv_conn *c)
{
	int r = greet(c);

	while (r == 1) {
		uint8_t h[16], *data = NULL;
		struct opt o;

		r = nbdsrv_in_read(c, h, sizeof(h));
		if (r == -ENODATA)
			return 0;
		if (r == -EPIPE)
			return nbdsrv_proto_error(c, "client disconnected in the middle of an option");
		if (r)
			return r;
		if (util_get_be64(h) != NBD_OPTS_MAGIC)
			return nbdsrv_proto_error(c, "bad option magic 0x%016llx",
						  (unsigned long long)util_get_be64(h));
		o.code = util_get_be32(h + 8);
		o.len = util_get_be32(h + 12);
		if (o.len > NBDSRV_MAX_OPTION_LEN)
			return nbdsrv_proto_error(c, "option %u has %u bytes of data (limit %u)",
						  o.code, o.len, NBDSRV_MAX_OPTION_LEN);
		if (o.len) {
			data = malloc(o.len);
			if (!data)
				return -ENOMEM;
			r = nbdsrv_in_read(c, data, o.len);
			if (r) {
				free(data);
				if (r == -ENODATA || r == -EPIPE)
					return nbdsrv_proto_error(c, "client disconnected in the middle of an option");
				return r;
			}
		}
		o.data = data;
		r = do_option(c, &o);
		free(data);
		if (r == 1)
			return 1;
		if (r == 2)
			return 0;
		if (r == 0)
			r = 1;
	}
	return r;
}
