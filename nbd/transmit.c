/* nbd transmission phase: requests, commands and replies.
 *
 * A connection runs `workers` threads that take turns at the input: the
 * worker holding c->rlock reads one request (header and, for WRITE, its
 * payload), lets go of the lock, serves the request against the bdev and
 * sends the reply under c->wlock.  Requests of one connection are thus
 * served concurrently and their replies may leave out of order, as the
 * protocol allows; the number of requests in flight is at most the number
 * of workers, and their buffers come out of the connection's budget.
 *
 * No per-request allocation on the fast path: each worker keeps a buffer
 * of up to NBDSRV_KEEP_BUF bytes; only larger requests allocate (and free)
 * a buffer of their own.  Replies go out in one sendmsg() each, header and
 * payload together, with MSG_MORE while other replies are queued behind.
 */
#include "nbd-int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/util.h"

/* Most chunks of one structured read reply (more extents are merged into
 * a data chunk); most descriptors of one block status reply. */
#define MAX_READ_EXTENTS 64
#define MAX_STATUS_DESC  (64u << 10)

struct request {
	uint16_t flags, type;
	uint64_t cookie, off;
	uint32_t len;
	uint32_t err;              /* NBD_E*: refused before it was served */
	char msg[160];             /* for err */
	uint8_t *data;             /* WRITE payload */
};

struct extent {
	uint64_t off;
	uint32_t len;
	bool zero;
};

struct worker {
	struct nbdsrv_conn *c;
	pthread_t thread;
	uint8_t *keep;             /* kept buffer */
	size_t keep_cap;
	uint8_t *big;              /* this request's own buffer */
	size_t big_len;
	struct extent ext[MAX_READ_EXTENTS];
	uint8_t hdr[MAX_READ_EXTENTS][NBD_CHUNK_HDR_SIZE + 12];
	struct iovec iov[2 * MAX_READ_EXTENTS];
};

/* ---- buffers ---- */

/* A buffer of n bytes for the current request, or NULL (ENOMEM). */
static uint8_t *get_buf(struct worker *w, size_t n)
{
	struct nbdsrv_conn *c = w->c;
	void *p;

	if (n <= w->keep_cap)
		return w->keep;
	if (n <= NBDSRV_KEEP_BUF) {
		size_t cap = 64u << 10;

		while (cap < n)
			cap <<= 1;
		nbdsrv_budget_get(c, cap);
		if (posix_memalign(&p, 4096, cap)) {
			nbdsrv_budget_put(c, cap);
			return NULL;
		}
		free(w->keep);
		nbdsrv_budget_put(c, w->keep_cap);
		w->keep = p;
		w->keep_cap = cap;
		return w->keep;
	}
	nbdsrv_budget_get(c, n);
	if (posix_memalign(&p, 4096, n)) {
		nbdsrv_budget_put(c, n);
		return NULL;
	}
	w->big = p;
	w->big_len = n;
	return w->big;
}

static void put_buf(struct worker *w)
{
	if (w->big) {
		free(w->big);
		nbdsrv_budget_put(w->c, w->big_len);
		w->big = NULL;
		w->big_len = 0;
	}
}

/* ---- replies ---- */

static void quit(struct nbdsrv_conn *c)
{
	atomic_store(&c->quit, true);
	/* Wakes the worker waiting in recv() for the next request; replies
	 * still being sent are not affected. */
	shutdown(c->fd, SHUT_RD);
}

/* Send iov as one message under the write lock. */
static int send_reply(struct nbdsrv_conn *c, struct iovec *iov, int n)
{
	int r;

	atomic_fetch_add(&c->wwait, 1);
	pthread_mutex_lock(&c->wlock);
	atomic_fetch_sub(&c->wwait, 1);
	r = nbdsrv_send_all(c->fd, iov, n, atomic_load(&c->wwait) > 0);
	pthread_mutex_unlock(&c->wlock);
	if (r)
		quit(c);
	return r;
}

static void put_chunk_hdr(uint8_t *p, uint16_t flags, uint16_t type,
			  uint64_t cookie, uint32_t len)
{
	util_put_be32(p, NBD_STRUCTURED_REPLY_MAGIC);
	util_put_be16(p + 4, flags);
	util_put_be16(p + 6, type);
	util_put_be64(p + 8, cookie);
	util_put_be32(p + 16, len);
}

static int simple_reply(struct nbdsrv_conn *c, const struct request *rq,
			uint32_t err, const void *data, size_t len)
{
	uint8_t h[NBD_SIMPLE_REPLY_SIZE];
	struct iovec iov[2] = { { h, sizeof(h) }, { (void *)data, len } };

	util_put_be32(h, NBD_SIMPLE_REPLY_MAGIC);
	util_put_be32(h + 4, err);
	util_put_be64(h + 8, rq->cookie);
	return send_reply(c, iov, !err && len ? 2 : 1);
}

/* Success without payload: a simple reply, or NONE when structured. */
static int reply_ok(struct nbdsrv_conn *c, const struct request *rq)
{
	uint8_t h[NBD_CHUNK_HDR_SIZE];
	struct iovec iov = { h, sizeof(h) };

	if (!c->structured)
		return simple_reply(c, rq, 0, NULL, 0);
	put_chunk_hdr(h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, rq->cookie, 0);
	return send_reply(c, &iov, 1);
}

/* An error: with structured replies an ERROR chunk carrying msg. */
static int reply_err(struct nbdsrv_conn *c, const struct request *rq,
		     uint32_t err, const char *msg)
{
	uint8_t h[NBD_CHUNK_HDR_SIZE + 6];
	size_t ml = msg ? strlen(msg) : 0;
	struct iovec iov[2] = { { h, sizeof(h) }, { (void *)msg, ml } };

	if (!c->structured)
		return simple_reply(c, rq, err, NULL, 0);
	ml = UTIL_MIN(ml, (size_t)NBD_MAX_STRING);
	iov[1].iov_len = ml;
	put_chunk_hdr(h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, rq->cookie,
		      (uint32_t)(6 + ml));
	util_put_be32(h + NBD_CHUNK_HDR_SIZE, err);
	util_put_be16(h + NBD_CHUNK_HDR_SIZE + 4, (uint16_t)ml);
	return send_reply(c, iov, ml ? 2 : 1);
}

static uint32_t nbd_errno(int r)
{
	switch (-r) {
	case EPERM:
	case EROFS:
		return NBD_EPERM;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	case ENOTSUP:
		return NBD_ENOTSUP;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}

/* Reply to a failed bdev call with its errno and message. */
static int reply_bdev_err(struct nbdsrv_conn *c, const struct request *rq,
			  int r)
{
	char msg[512];

	bdev_errmsg(c->s->b, msg, sizeof(msg));
	nbdsrv_logf(c, NBDSRV_LOG_ERROR, "request at offset %llu length %u: %s",
		    (unsigned long long)rq->off, rq->len, msg);
	return reply_err(c, rq, nbd_errno(r), msg);
}

/* ---- request intake (c->rlock held) ---- */

/* Mark rq refused with err and a message; returns false. */
static bool refuse(struct request *rq, uint32_t err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool refuse(struct request *rq, uint32_t err, const char *fmt, ...)
{
	va_list ap;

	rq->err = err;
	va_start(ap, fmt);
	vsnprintf(rq->msg, sizeof(rq->msg), fmt, ap);
	va_end(ap);
	return false;
}

/* Check a request's command, flags, length and range.  False (rq->err
 * set) when it is refused. */
static bool validate(struct nbdsrv_conn *c, struct request *rq)
{
	uint16_t ok = NBD_CMD_FLAG_FUA;
	bool writes = false, payload = false;
	uint64_t size = c->s->b->size;

	switch (rq->type) {
	case NBD_CMD_READ:
		payload = true;
		if (c->structured)
			ok |= NBD_CMD_FLAG_DF;
		break;
	case NBD_CMD_WRITE:
		payload = writes = true;
		break;
	case NBD_CMD_TRIM:
		writes = true;
		break;
	case NBD_CMD_WRITE_ZEROES:
		writes = true;
		ok |= NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
		break;
	case NBD_CMD_BLOCK_STATUS:
		ok |= NBD_CMD_FLAG_REQ_ONE;
		if (!c->meta)
			return refuse(rq, NBD_EINVAL,
				      "block status needs the base:allocation context");
		if (!rq->len)
			return refuse(rq, NBD_EINVAL, "block status of 0 bytes");
		break;
	case NBD_CMD_FLUSH:
	case NBD_CMD_CACHE:
		break;
	default:
		return refuse(rq, NBD_EINVAL, "unknown command %u", rq->type);
	}
	if (rq->flags & ~ok)
		return refuse(rq, NBD_EINVAL, "flags 0x%x not valid for command %u",
			      rq->flags & ~ok, rq->type);
	if (payload && rq->len > NBDSRV_MAX_PAYLOAD)
		return refuse(rq, NBD_EINVAL, "length %u exceeds the maximum payload %u",
			      rq->len, NBDSRV_MAX_PAYLOAD);
	if (writes && c->s->read_only)
		return refuse(rq, NBD_EPERM, "the export is read-only");
	if (rq->type != NBD_CMD_FLUSH && !util_range_ok(rq->off, rq->len, size))
		return refuse(rq, writes && rq->type != NBD_CMD_TRIM ? NBD_ENOSPC
								     : NBD_EINVAL,
			      "offset %llu length %u is past the end of the export (%llu bytes)",
			      (unsigned long long)rq->off, rq->len,
			      (unsigned long long)size);
	return true;
}

/* Read the next request.  0: rq to serve; 1: the client is done (DISC or
 * end of input between requests); -EPROTO / -errno: drop the connection. */
static int read_request(struct worker *w, struct request *rq)
{
	struct nbdsrv_conn *c = w->c;
	uint8_t h[NBD_REQUEST_SIZE];
	uint32_t magic;
	int r;

	if (atomic_load(&c->quit) || listen_stopping(&c->s->ls))
		return 1;
	r = nbdsrv_in_read(c, h, sizeof(h));
	if (r == -ENODATA)
		return 1;
	if (r == -EPIPE)
		return nbdsrv_proto_error(c, "client disconnected in the middle of a request");
	if (r)
		return r;
	magic = util_get_be32(h);
	if (magic != NBD_REQUEST_MAGIC)
		return nbdsrv_proto_error(c, "bad request magic 0x%08x", magic);
	memset(rq, 0, offsetof(struct request, msg));
	rq->msg[0] = 0;
	rq->data = NULL;
	rq->flags = util_get_be16(h + 4);
	rq->type = util_get_be16(h + 6);
	rq->cookie = util_get_be64(h + 8);
	rq->off = util_get_be64(h + 16);
	rq->len = util_get_be32(h + 24);
	if (rq->type == NBD_CMD_DISC)
		return 1;
	validate(c, rq);
	if (rq->type != NBD_CMD_WRITE)
		return 0;
	if (rq->len > NBDSRV_MAX_PAYLOAD) {
		/* Skipping that much input is what a denial of service looks
		 * like; the protocol allows dropping the client. */
		return nbdsrv_proto_error(c, "write of %u bytes exceeds the maximum payload %u",
					  rq->len, NBDSRV_MAX_PAYLOAD);
	}
	if (!rq->len)
		return 0;
	if (rq->err) {
		r = nbdsrv_in_skip(c, rq->len);
	} else {
		rq->data = get_buf(w, rq->len);
		if (!rq->data) {
			refuse(rq, NBD_ENOMEM, "out of memory");
			r = nbdsrv_in_skip(c, rq->len);
		} else {
			r = nbdsrv_in_read(c, rq->data, rq->len);
		}
	}
	if (r == -ENODATA || r == -EPIPE)
		return nbdsrv_proto_error(c, "client disconnected in the middle of a write payload");
	return r;
}

/* ---- commands ---- */

/* Read [off, off+len) into buf and send it as one data chunk (DF, no
 * holes) or as a simple reply. */
static int read_whole(struct nbdsrv_conn *c, struct worker *w,
		      const struct request *rq)
{
	uint8_t *buf = get_buf(w, rq->len);
	uint8_t h[NBD_CHUNK_HDR_SIZE + 8];
	struct iovec iov[2] = { { h, sizeof(h) }, { buf, rq->len } };
	int r;

	if (!buf)
		return reply_err(c, rq, NBD_ENOMEM, "out of memory");
	r = bdev_read(c->s->b, buf, rq->off, rq->len);
	if (r)
		return reply_bdev_err(c, rq, r);
	if (!c->structured)
		return simple_reply(c, rq, 0, buf, rq->len);
	put_chunk_hdr(h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
		      rq->cookie, 8 + rq->len);
	util_put_be64(h + NBD_CHUNK_HDR_SIZE, rq->off);
	return send_reply(c, iov, 2);
}

/* The extents of [off, off+len) as data or zero runs, merged; the tail
 * beyond MAX_READ_EXTENTS - 1 becomes one data extent.  Returns the count
 * or -errno. */
static int read_extents(struct nbdsrv_conn *c, struct worker *w,
			uint64_t off, uint32_t len)
{
	uint32_t pos = 0;
	int n = 0;

	while (pos < len) {
		struct bdev_status st;
		bool zero;
		uint32_t l;
		int r;

		if (n == MAX_READ_EXTENTS - 1) {
			w->ext[n++] = (struct extent){ off + pos, len - pos, false };
			break;
		}
		r = bdev_block_status(c->s->b, off + pos, len - pos, &st);
		if (r)
			return r;
		zero = st.flags & BDEV_ST_ZERO;
		l = (uint32_t)st.length;   /* <= len - pos */
		if (n && w->ext[n - 1].zero == zero)
			w->ext[n - 1].len += l;
		else
			w->ext[n++] = (struct extent){ off + pos, l, zero };
		pos += l;
	}
	return n;
}

static int cmd_read(struct nbdsrv_conn *c, struct worker *w,
		    const struct request *rq)
{
	uint8_t *buf;
	int n, k = 0;

	if (!rq->len)
		return c->structured ? reply_ok(c, rq) : simple_reply(c, rq, 0, NULL, 0);
	if (!c->structured || (rq->flags & NBD_CMD_FLAG_DF))
		return read_whole(c, w, rq);
	n = read_extents(c, w, rq->off, rq->len);
	if (n < 0)
		return reply_bdev_err(c, rq, n);
	if (n == 1 && !w->ext[0].zero)
		return read_whole(c, w, rq);
	buf = n > 1 ? get_buf(w, rq->len) : w->keep;   /* n == 1: a hole */
	if (n > 1 && !buf)
		return reply_err(c, rq, NBD_ENOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		struct extent *e = &w->ext[i];
		uint8_t *h = w->hdr[i];
		uint16_t fl = i == n - 1 ? NBD_REPLY_FLAG_DONE : 0;

		if (e->zero) {
			put_chunk_hdr(h, fl, NBD_REPLY_TYPE_OFFSET_HOLE, rq->cookie, 12);
			util_put_be64(h + NBD_CHUNK_HDR_SIZE, e->off);
			util_put_be32(h + NBD_CHUNK_HDR_SIZE + 8, e->len);
			w->iov[k++] = (struct iovec){ h, NBD_CHUNK_HDR_SIZE + 12 };
			continue;
		}
		uint8_t *p = buf + (e->off - rq->off);
		int r = bdev_read(c->s->b, p, e->off, e->len);

		if (r)
			return reply_bdev_err(c, rq, r);
		put_chunk_hdr(h, fl, NBD_REPLY_TYPE_OFFSET_DATA, rq->cookie,
			      8 + e->len);
		util_put_be64(h + NBD_CHUNK_HDR_SIZE, e->off);
		w->iov[k++] = (struct iovec){ h, NBD_CHUNK_HDR_SIZE + 8 };
		w->iov[k++] = (struct iovec){ p, e->len };
	}
	return send_reply(c, w->iov, k);
}

static uint32_t nbd_state(const struct bdev_status *st)
{
	return (st->flags & BDEV_ST_DATA ? 0 : NBD_STATE_HOLE) |
	       (st->flags & BDEV_ST_ZERO ? NBD_STATE_ZERO : 0);
}

static int cmd_block_status(struct nbdsrv_conn *c, struct worker *w,
			    const struct request *rq)
{
	bool one = rq->flags & NBD_CMD_FLAG_REQ_ONE;
	size_t cap = one ? 1 : UTIL_MIN((size_t)MAX_STATUS_DESC,
					(size_t)rq->len / 512 + 2);
	uint8_t *buf = get_buf(w, NBD_CHUNK_HDR_SIZE + 4 + 8 * cap);
	uint8_t *d;
	uint32_t pos = 0;
	size_t n = 0;
	struct iovec iov;

	if (!buf)
		return reply_err(c, rq, NBD_ENOMEM, "out of memory");
	d = buf + NBD_CHUNK_HDR_SIZE + 4;
	while (pos < rq->len) {
		struct bdev_status st;
		uint32_t fl, l;
		int r = bdev_block_status(c->s->b, rq->off + pos, rq->len - pos, &st);

		if (r)
			return reply_bdev_err(c, rq, r);
		fl = nbd_state(&st);
		l = (uint32_t)st.length;
		if (n && util_get_be32(d + 8 * (n - 1) + 4) == fl) {
			util_put_be32(d + 8 * (n - 1),
				      util_get_be32(d + 8 * (n - 1)) + l);
		} else {
			if (n == cap)
				break;
			util_put_be32(d + 8 * n, l);
			util_put_be32(d + 8 * n + 4, fl);
			n++;
		}
		pos += l;
		if (one)
			break;
	}
	put_chunk_hdr(buf, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
		      rq->cookie, (uint32_t)(4 + 8 * n));
	util_put_be32(buf + NBD_CHUNK_HDR_SIZE, NBD_META_ID);
	iov = (struct iovec){ buf, NBD_CHUNK_HDR_SIZE + 4 + 8 * n };
	return send_reply(c, &iov, 1);
}

/* Read the data extents of the range, so later reads hit the cache. */
static int cmd_cache(struct nbdsrv_conn *c, struct worker *w,
		     const struct request *rq)
{
	size_t chunk = UTIL_MIN((size_t)rq->len, (size_t)(1u << 20));
	uint8_t *buf = chunk ? get_buf(w, chunk) : NULL;
	uint64_t pos = rq->off, end = rq->off + rq->len;

	if (chunk && !buf)
		return reply_err(c, rq, NBD_ENOMEM, "out of memory");
	while (pos < end) {
		struct bdev_status st;
		int r = bdev_block_status(c->s->b, pos, end - pos, &st);

		if (r)
			return reply_bdev_err(c, rq, r);
		for (uint64_t p = pos; !(st.flags & BDEV_ST_ZERO) &&
		     p < pos + st.length; p += chunk) {
			size_t m = (size_t)UTIL_MIN((uint64_t)chunk, pos + st.length - p);

			r = bdev_read(c->s->b, buf, p, m);
			if (r)
				return reply_bdev_err(c, rq, r);
		}
		pos += st.length;
	}
	return reply_ok(c, rq);
}

static int serve(struct nbdsrv_conn *c, struct worker *w,
		 const struct request *rq)
{
	struct bdev *b = c->s->b;
	unsigned zf = 0;
	int r = 0;

	if (rq->err)
		return reply_err(c, rq, rq->err, rq->msg);
	switch (rq->type) {
	case NBD_CMD_READ:
		return cmd_read(c, w, rq);
	case NBD_CMD_BLOCK_STATUS:
		return cmd_block_status(c, w, rq);
	case NBD_CMD_CACHE:
		return cmd_cache(c, w, rq);
	case NBD_CMD_WRITE:
		r = bdev_write(b, rq->data, rq->off, rq->len,
			       rq->flags & NBD_CMD_FLAG_FUA ? BDEV_FUA : 0);
		break;
	case NBD_CMD_FLUSH:
		r = bdev_flush(b);
		break;
	case NBD_CMD_TRIM:
		r = bdev_discard(b, rq->off, rq->len);
		if (!r && (rq->flags & NBD_CMD_FLAG_FUA))
			r = bdev_flush(b);
		break;
	case NBD_CMD_WRITE_ZEROES:
		if (rq->flags & NBD_CMD_FLAG_FUA)
			zf |= BDEV_FUA;
		if (!(rq->flags & NBD_CMD_FLAG_NO_HOLE))
			zf |= BDEV_MAY_UNMAP;
		if (rq->flags & NBD_CMD_FLAG_FAST_ZERO)
			zf |= BDEV_NO_FALLBACK;
		r = bdev_write_zeroes(b, rq->off, rq->len, zf);
		if (r == -ENOTSUP && (zf & BDEV_NO_FALLBACK))
			return reply_err(c, rq, NBD_ENOTSUP,
					 "zeroing this range is not faster than writing zeros");
		break;
	}
	return r ? reply_bdev_err(c, rq, r) : reply_ok(c, rq);
}

/* ---- workers ---- */

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct nbdsrv_conn *c = w->c;

	for (;;) {
		struct request rq;
		int r;

		pthread_mutex_lock(&c->rlock);
		r = read_request(w, &rq);
		if (r < 0 && !c->result)
			c->result = r;
		pthread_mutex_unlock(&c->rlock);
		if (r) {
			quit(c);
			break;
		}
		atomic_fetch_add(&c->s->requests, 1);
		r = serve(c, w, &rq);
		put_buf(w);
		if (r)
			break;   /* the client is gone: send_reply quit */
	}
	return NULL;
}

int nbdsrv_transmit(struct nbdsrv_conn *c)
{
	unsigned nw = c->s->workers;
	struct worker *w = calloc(nw, sizeof(*w));
	pthread_attr_t attr;
	unsigned started = 1;

	if (!w)
		return -ENOMEM;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1u << 20);
	for (unsigned i = 0; i < nw; i++)
		w[i].c = c;
	/* This thread is worker 0. */
	for (unsigned i = 1; i < nw; i++, started++)
		if (pthread_create(&w[i].thread, &attr, worker_main, &w[i]))
			break;
	pthread_attr_destroy(&attr);
	worker_main(&w[0]);
	for (unsigned i = 1; i < started; i++)
		pthread_join(w[i].thread, NULL);
	for (unsigned i = 0; i < nw; i++) {
		free(w[i].keep);
		nbdsrv_budget_put(c, w[i].keep_cap);
	}
	free(w);
	return c->result;
}
