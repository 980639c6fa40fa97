/* bdev: the block layer every disk goes through; see bdev.h for the
 * contract.
 *
 * Paths
 *  - bdev_submit(): checks the request once (operation, iovec total, range,
 *    read-only), then sends it to the back-end's native submit when it is
 *    aligned to the back-end's limits, to the lower disk when b is a layer
 *    with no operation of its own, and otherwise to the worker pool, which
 *    serves it with the synchronous ops (bdev-worker.c).
 *  - bdev_read() and the other synchronous calls: the same checks, then the
 *    request is served on the calling thread by serve_sync(): the back-end's
 *    synchronous op when it has one, else a native submit and a wait.
 *  - Requests that break the back-end's alignment (O_DIRECT disks) are
 *    bounced once here, in serve_sync(), never in a back-end.  A bounced
 *    write that covers part of a block is a read-modify-write; the gate in
 *    bdev-gate.c keeps every other write to that disk out while it runs.
 *
 * Counting: b->inflight covers submitted requests until their done() has
 * returned and synchronous calls until they return; bdev_drain() waits for
 * it to reach zero.
 */
#include "bdev.h"
#include "bdev-int.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ---- */

static __thread char tls_msg[512];

static void vset(char *dst, size_t len, const char *prefix, int code,
		 const char *fmt, va_list ap)
{
	char tmp[512];
	int n = 0;

	/* fmt's arguments may point into dst (a message re-wrapped), so
	 * format into a copy first. */
	if (prefix)
		n = snprintf(tmp, sizeof(tmp), "%s: ", prefix);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		n = 0;
	if (fmt)
		vsnprintf(tmp + n, sizeof(tmp) - (size_t)n, fmt, ap);
	else
		snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%s", strerror(code));
	snprintf(dst, len, "%s", tmp);
}

int bdev_set_error(struct bdev *b, int code, const char *fmt, ...)
{
	va_list ap;

	if (code < 0)
		code = -code;
	va_start(ap, fmt);
	vset(tls_msg, sizeof(tls_msg), b ? b->name : NULL, code, fmt, ap);
	va_end(ap);
	return -code;
}

const char *bdev_last_error(void)
{
	return tls_msg[0] ? tls_msg : "unknown error";
}

const char *bdev_errmsg(struct bdev *b, char *buf, size_t buflen)
{
	(void)b;
	snprintf(buf, buflen, "%s", bdev_last_error());
	return buf;
}

int bdev_err_set(struct bdev_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (code < 0)
		code = -code;
	va_start(ap, fmt);
	vset(tls_msg, sizeof(tls_msg), NULL, code, fmt, ap);
	va_end(ap);
	if (e) {
		e->code = code;
		snprintf(e->msg, sizeof(e->msg), "%s", tls_msg);
	}
	return -code;
}

enum bdev_ec bdev_errclass(int err)
{
	switch (err < 0 ? -err : err) {
	case 0:
		return BDEV_EC_OK;
	case EROFS:
	case EPERM:
	case EACCES:
		return BDEV_EC_READ_ONLY;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return BDEV_EC_NO_SPACE;
	case ENOTSUP:
#if EOPNOTSUPP != ENOTSUP
	case EOPNOTSUPP:
#endif
	case ENOSYS:
		return BDEV_EC_UNSUPPORTED;
	case ENODEV:
	case ENXIO:
	case ENOTCONN:
	case ESHUTDOWN:
	case ENOMEDIUM:
	case EBADF:
	case ECONNRESET:
	case ECONNABORTED:   /* FUSE: the file system's daemon died */
	case EPIPE:
	case ESTALE:
		return BDEV_EC_GONE;
	case ERANGE:
		return BDEV_EC_RANGE;
	case EINVAL:
		return BDEV_EC_INVALID;
	case ENOMEM:
	case EAGAIN:
	case EBUSY:
		return BDEV_EC_RESOURCE;
	default:
		return BDEV_EC_MEDIUM;
	}
}

const char *bdev_errclass_name(enum bdev_ec ec)
{
	static const char *const names[] = {
		[BDEV_EC_OK] = "ok",
		[BDEV_EC_MEDIUM] = "medium error",
		[BDEV_EC_RANGE] = "out of range",
		[BDEV_EC_READ_ONLY] = "read-only",
		[BDEV_EC_NO_SPACE] = "no space",
		[BDEV_EC_UNSUPPORTED] = "unsupported",
		[BDEV_EC_GONE] = "device gone",
		[BDEV_EC_INVALID] = "invalid request",
		[BDEV_EC_RESOURCE] = "out of resources",
	};

	return (unsigned)ec < sizeof(names) / sizeof(names[0]) ? names[ec]
								: "unknown";
}

/* ---- setup ---- */

int bdev_init(struct bdev *b, const struct bdev_ops *ops, const char *name,
	      uint64_t size, uint32_t sector_size, bool read_only)
{
	memset(b, 0, sizeof(*b));
	b->ops = ops;
	b->size = size;
	b->sector_size = sector_size;
	b->read_only = read_only;
	b->limits = (struct bdev_limits){
		.logical_block = sector_size,
		.physical_block = sector_size,
		.align_off = 1,
		.align_mem = 1,
	};
	b->name = strdup(name ? name : "?");
	if (!b->name)
		return -ENOMEM;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->gate_tail = &b->gate_held;
	return 0;
}

void bdev_fini(struct bdev *b)
{
	free((char *)b->name);
	b->name = NULL;
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
}

/* ---- in-flight counting and drain ---- */

void bdev_inflight_inc(struct bdev *b)
{
	__atomic_add_fetch(&b->inflight, 1, __ATOMIC_SEQ_CST);
}

void bdev_inflight_dec(struct bdev *b)
{
	int v = __atomic_load_n(&b->inflight, __ATOMIC_SEQ_CST);

	/* Not the last one: nobody can be waiting for this count. */
	while (v > 1)
		if (__atomic_compare_exchange_n(&b->inflight, &v, v - 1, false,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return;
	/* Maybe the last one: decrement under b->mu.  A drainer reads
	 * inflight under b->mu, so it cannot return (and its caller free b)
	 * before we have let go of b; decrementing first and locking after
	 * would touch b after a drainer may have seen zero. */
	pthread_mutex_lock(&b->mu);
	if (__atomic_sub_fetch(&b->inflight, 1, __ATOMIC_SEQ_CST) == 0 &&
	    b->drain_waiters)
		pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void plug_flush(void);

void bdev_drain(struct bdev *b)
{
	plug_flush();
	pthread_mutex_lock(&b->mu);
	__atomic_add_fetch(&b->drain_waiters, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&b->inflight, __ATOMIC_SEQ_CST))
		pthread_cond_wait(&b->cv, &b->mu);
	__atomic_sub_fetch(&b->drain_waiters, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&b->mu);
}

/* ---- checks ---- */

static bool is_write_op(enum bdev_op op)
{
	return op == BDEV_OP_WRITE || op == BDEV_OP_DISCARD ||
	       op == BDEV_OP_WRITE_ZEROES;
}

/* Check rq against b: 0, or -errno with rq->ec set. */
static int check_req(struct bdev *b, struct bdev_req *rq)
{
	if ((unsigned)rq->op > BDEV_OP_WRITE_ZEROES) {
		rq->ec = BDEV_EC_INVALID;
		return -EINVAL;
	}
	if (rq->op == BDEV_OP_READ || rq->op == BDEV_OP_WRITE) {
		uint64_t total = 0;

		if (rq->iovcnt < 0 || (rq->iovcnt && !rq->iov)) {
			rq->ec = BDEV_EC_INVALID;
			return -EINVAL;
		}
		for (int i = 0; i < rq->iovcnt; i++) {
			if (util_add_overflow(total, rq->iov[i].iov_len,
						  &total)) {
				rq->ec = BDEV_EC_INVALID;
				return -EINVAL;
			}
		}
		if (total != rq->len) {
			rq->ec = BDEV_EC_INVALID;
			return -EINVAL;
		}
	}
	if (rq->op != BDEV_OP_FLUSH && !util_range_ok(rq->off, rq->len, b->size)) {
		rq->ec = BDEV_EC_RANGE;
		return -EINVAL;
	}
	if (is_write_op(rq->op) && b->read_only) {
		rq->ec = BDEV_EC_READ_ONLY;
		return -EROFS;
	}
	return 0;
}

static int check_msg(struct bdev *b, struct bdev_req *rq, int r)
{
	if (rq->ec == BDEV_EC_RANGE)
		return bdev_set_error(b, EINVAL,
			"request at offset %llu length %llu is past the end of the disk (%llu bytes)",
			(unsigned long long)rq->off, (unsigned long long)rq->len,
			(unsigned long long)b->size);
	if (rq->ec == BDEV_EC_READ_ONLY)
		return bdev_set_error(b, EROFS, "disk is open read-only");
	return bdev_set_error(b, r, "malformed request (operation %d, %d buffers)",
			      (int)rq->op, rq->iovcnt);
}

bool bdev_req_aligned(const struct bdev *b, const struct bdev_req *rq)
{
	uint32_t ao = b->limits.align_off, am = b->limits.align_mem;

	if (ao <= 1 && am <= 1)
		return true;
	if (rq->op == BDEV_OP_FLUSH)
		return true;
	if ((rq->off | rq->len) % ao)
		return false;
	if (rq->op != BDEV_OP_READ && rq->op != BDEV_OP_WRITE)
		return true;
	for (int i = 0; i < rq->iovcnt; i++)
		if ((uintptr_t)rq->iov[i].iov_base % am ||
		    rq->iov[i].iov_len % ao)
			return false;
	return true;
}

/* ---- completion ---- */

static void track(struct bdev *b, uint64_t off, uint64_t len)
{
	if (b->hook && len)
		b->hook(b->hook_opaque, off, len);
}

void bdev_req_complete(struct bdev_req *rq, int status)
{
	struct bdev *b = rq->bd;

	rq->status = status;
	if (status && rq->ec == BDEV_EC_OK)
		rq->ec = bdev_errclass(status);
	else if (!status)
		rq->ec = BDEV_EC_OK;
	if (!status && is_write_op(rq->op) && !(rq->priv_flags & BDEV_RQ_CHILD))
		track(b, rq->off, rq->len);
	if (rq->priv_flags & BDEV_RQ_GATED)
		bdev_gate_write_exit(b);
	rq->done(rq);
	bdev_inflight_dec(b);
}

/* ---- serving a checked request synchronously ---- */

static void wait_done(struct bdev_req *rq)
{
	struct bdev_waiter *w = rq->opaque;

	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int bdev_native_wait(struct bdev *b, struct bdev_req *parent,
		     const struct iovec *iov, int iovcnt, uint64_t off,
		     uint64_t len)
{
	struct bdev_waiter w = { .mu = PTHREAD_MUTEX_INITIALIZER,
				 .cv = PTHREAD_COND_INITIALIZER };
	struct bdev_req c = {
		.op = parent->op, .flags = parent->flags, .off = off,
		.len = len, .iov = iov, .iovcnt = iovcnt,
		.done = wait_done, .opaque = &w, .bd = b,
	};
	int r;

	/* Counted like any request: bdev_req_complete() decrements.  A
	 * child is neither tracked nor gated: its parent is. */
	c.priv_flags = BDEV_RQ_CHILD;
	bdev_inflight_inc(b);
	r = b->ops->submit(b, &c);
	if (r) {
		bdev_inflight_dec(b);
		return r;
	}
	plug_flush();
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return c.status;
}

/* The synchronous op for one contiguous piece; layers without the op pass
 * it down.  Returns -ENOTSUP when nobody has it. */
static int op_sync(struct bdev *b, enum bdev_op op, void *buf, uint64_t off,
		   uint64_t len, unsigned flags)
{
	const struct bdev_ops *o = b->ops;

	switch (op) {
	case BDEV_OP_READ:
		if (o->read)
			return o->read(b, buf, off, (size_t)len);
		return b->lower ? bdev_read(b->lower, buf, off, (size_t)len)
				: -ENOTSUP;
	case BDEV_OP_WRITE:
		if (o->write)
			return o->write(b, buf, off, (size_t)len, flags);
		return b->lower ? bdev_write(b->lower, buf, off, (size_t)len,
					     flags) : -ENOTSUP;
	case BDEV_OP_FLUSH:
		if (o->flush)
			return o->flush(b);
		return b->lower ? bdev_flush(b->lower) : 0;
	case BDEV_OP_DISCARD:
		if (o->discard)
			return o->discard(b, off, len);
		return b->lower ? bdev_discard(b->lower, off, len) : 0;
	case BDEV_OP_WRITE_ZEROES:
		if (o->write_zeroes)
			return o->write_zeroes(b, off, len, flags);
		return b->lower ? bdev_write_zeroes(b->lower, off, len, flags)
				: -EOPNOTSUPP;
	}
	return -EINVAL;
}

static int serve_plain(struct bdev *b, struct bdev_req *rq);

/* Fallback for back-ends without write_zeroes: write a zero buffer, as
 * aligned as the disk needs (rq is aligned, so are the 1 MiB pieces), through
 * serve_plain() so a disk with only a native submit gets it too. */
static int zero_by_writing(struct bdev *b, uint64_t off, uint64_t len,
			   unsigned flags)
{
	size_t chunk = (size_t)UTIL_MIN(len, (uint64_t)1 << 20);
	size_t al = UTIL_MAX(b->limits.align_mem, (uint32_t)sizeof(void *));
	void *zero = NULL;
	int r = 0;

	if (posix_memalign(&zero, al, chunk))
		return bdev_set_error(b, ENOMEM, "out of memory");
	memset(zero, 0, chunk);
	while (len && !r) {
		size_t n = (size_t)UTIL_MIN(len, chunk);
		struct iovec v = { zero, n };
		struct bdev_req c = {
			.op = BDEV_OP_WRITE, .flags = flags & BDEV_FUA,
			.off = off, .len = n, .iov = &v, .iovcnt = 1, .bd = b,
			.priv_flags = BDEV_RQ_CHILD,
		};

		r = serve_plain(b, &c);
		off += n;
		len -= n;
	}
	free(zero);
	return r;
}

static bool has_sync(struct bdev *b, enum bdev_op op)
{
	const struct bdev_ops *o = b->ops;

	switch (op) {
	case BDEV_OP_READ:
		return o->read || b->lower;
	case BDEV_OP_WRITE:
		return o->write || b->lower;
	case BDEV_OP_FLUSH:
		return o->flush || b->lower || !o->submit;
	case BDEV_OP_DISCARD:
		return o->discard || b->lower || !o->submit;
	case BDEV_OP_WRITE_ZEROES:
		return o->write_zeroes || b->lower || !o->submit;
	}
	return true;
}

/* Serve a checked, aligned request on this thread: the synchronous op
 * where the disk (or the layers under it) has one, which costs no thread
 * hand-off, else a native submit and a wait.  A flush, discard or
 * write-zeroes the native submit declines gets the defaults below (flush
 * and discard: nothing to do; write-zeroes: write zeros). */
static int serve_plain(struct bdev *b, struct bdev_req *rq)
{
	uint64_t off = rq->off;
	int r = 0;

	if (!has_sync(b, rq->op)) {
		r = b->ops->submit ? bdev_native_wait(b, rq, rq->iov, rq->iovcnt,
						      rq->off, rq->len)
				   : -ENOTSUP;
		if (r != -ENOTSUP || rq->op == BDEV_OP_READ ||
		    rq->op == BDEV_OP_WRITE)
			return r;
		r = 0;
	}
	switch (rq->op) {
	case BDEV_OP_READ:
	case BDEV_OP_WRITE:
		for (int i = 0; i < rq->iovcnt && !r; i++) {
			unsigned fl = rq->flags;

			/* FUA once, with the last piece. */
			if (i + 1 < rq->iovcnt)
				fl &= ~BDEV_FUA;
			if (rq->iov[i].iov_len)
				r = op_sync(b, rq->op, rq->iov[i].iov_base, off,
					    rq->iov[i].iov_len, fl);
			off += rq->iov[i].iov_len;
		}
		return r;
	case BDEV_OP_WRITE_ZEROES:
		r = op_sync(b, rq->op, NULL, rq->off, rq->len, rq->flags);
		if (r == -EOPNOTSUPP || r == -ENOTSUP)
			r = (rq->flags & BDEV_NO_FALLBACK) ? -ENOTSUP
				: zero_by_writing(b, rq->off, rq->len, rq->flags);
		return r;
	default:
		return op_sync(b, rq->op, NULL, rq->off, rq->len, rq->flags);
	}
}

int bdev_serve_sync(struct bdev *b, struct bdev_req *rq)
{
	int r;

	if (!rq->len && rq->op != BDEV_OP_FLUSH)
		return 0;
	if (!bdev_req_aligned(b, rq))
		return bdev_bounce(b, rq, serve_plain);
	if (b->limits.align_off <= 1 || !is_write_op(rq->op) ||
	    (rq->priv_flags & (BDEV_RQ_GATED | BDEV_RQ_CHILD)))
		return serve_plain(b, rq);
	/* An aligned write enters the gate here, on the thread that serves
	 * it, so it never holds the gate while it waits for a worker (see
	 * bdev_dispatch()). */
	bdev_gate_write_enter_wait(b);
	r = serve_plain(b, rq);
	bdev_gate_write_exit(b);
	return r;
}

/* ---- plugging ---- */

#define PLUG_MAX 8

static _Thread_local struct {
	int depth;
	int n;
	struct {
		void (*fn)(void *);
		void *arg;
	} cb[PLUG_MAX];
} plug;

void bdev_plug(void)
{
	plug.depth++;
}

/* Run what this thread's back-ends hold.  Also before this thread
 * waits for requests (bdev_native_wait, bdev_drain): what it holds would
 * otherwise never complete. */
static void plug_flush(void)
{
	while (plug.n) {
		plug.n--;
		plug.cb[plug.n].fn(plug.cb[plug.n].arg);
	}
}

void bdev_unplug(void)
{
	if (--plug.depth > 0)
		return;
	/* depth 0: what the flushes submit (completions resubmitting)
	 * goes straight through */
	plug_flush();
}

bool bdev_plug_defer(void (*fn)(void *), void *arg)
{
	if (plug.depth <= 0)
		return false;
	for (int i = 0; i < plug.n; i++)
		if (plug.cb[i].fn == fn && plug.cb[i].arg == arg)
			return true;
	if (plug.n == PLUG_MAX)
		return false;
	plug.cb[plug.n].fn = fn;
	plug.cb[plug.n].arg = arg;
	plug.n++;
	return true;
}

/* ---- submit ---- */

void bdev_submit(struct bdev *b, struct bdev_req *rq)
{
	int r;

	rq->bd = b;
	rq->status = 0;
	rq->ec = BDEV_EC_OK;
	rq->be = NULL;
	rq->priv_flags = 0;
	bdev_inflight_inc(b);
	r = check_req(b, rq);
	if (r || ((!rq->len && rq->op != BDEV_OP_FLUSH) ||
		  (rq->op == BDEV_OP_FLUSH && b->read_only))) {
		rq->status = r;
		if (!r)
			rq->ec = BDEV_EC_OK;
		rq->done(rq);
		bdev_inflight_dec(b);
		return;
	}
	if (b->limits.align_off > 1 && is_write_op(rq->op)) {
		if (!bdev_req_aligned(b, rq)) {
			/* A read-modify-write: worker, through the gate. */
			bdev_worker_queue(rq);
			return;
		}
		if (!bdev_gate_write_enter(b, rq))
			return;   /* held until the running RMW ends */
	}
	bdev_dispatch(b, rq);
}

void bdev_dispatch(struct bdev *b, struct bdev_req *rq)
{
	int r;

	if (b->ops->submit && bdev_req_aligned(b, rq)) {
		r = b->ops->submit(b, rq);
		if (!r)
			return;
		if (r != -ENOTSUP) {
			bdev_req_complete(rq, r);
			return;
		}
	} else if (b->lower && !b->ops->submit && bdev_layer_passes(b, rq->op)) {
		bdev_layer_forward(b, rq);
		return;
	}
	/* A write must not hold the gate while it waits in the worker queue:
	 * the workers ahead of it may all be read-modify-writes waiting for
	 * the gate to empty (a deadlock once every worker is one).  It
	 * leaves the gate now and enters it again on its worker
	 * (bdev_serve_sync()). */
	if (rq->priv_flags & BDEV_RQ_GATED) {
		rq->priv_flags &= ~BDEV_RQ_GATED;
		bdev_gate_write_exit(b);
	}
	bdev_worker_queue(rq);
}

/* ---- synchronous calls ---- */

static int sync_call(struct bdev *b, struct bdev_req *rq)
{
	int r = check_req(b, rq);

	if (r)
		return check_msg(b, rq, r);
	if (!rq->len && rq->op != BDEV_OP_FLUSH)
		return 0;
	if (rq->op == BDEV_OP_FLUSH && b->read_only)
		return 0;
	bdev_inflight_inc(b);
	rq->bd = b;
	tls_msg[0] = '\0';
	r = bdev_serve_sync(b, rq);
	if (r && !tls_msg[0])
		bdev_set_error(b, r, "%s at offset %llu length %llu failed: %s",
			       rq->op == BDEV_OP_READ ? "read" :
			       rq->op == BDEV_OP_FLUSH ? "flush" : "write",
			       (unsigned long long)rq->off,
			       (unsigned long long)rq->len, strerror(-r));
	if (!r && is_write_op(rq->op))
		track(b, rq->off, rq->len);
	bdev_inflight_dec(b);
	return r;
}

int bdev_readv(struct bdev *b, const struct iovec *iov, int iovcnt,
	       uint64_t off)
{
	struct bdev_req rq = { .op = BDEV_OP_READ, .off = off,
			       .iov = iov, .iovcnt = iovcnt };

	for (int i = 0; i < iovcnt; i++)
		rq.len += iov[i].iov_len;
	return sync_call(b, &rq);
}

int bdev_writev(struct bdev *b, const struct iovec *iov, int iovcnt,
		uint64_t off, unsigned flags)
{
	struct bdev_req rq = { .op = BDEV_OP_WRITE, .flags = flags, .off = off,
			       .iov = iov, .iovcnt = iovcnt };

	for (int i = 0; i < iovcnt; i++)
		rq.len += iov[i].iov_len;
	return sync_call(b, &rq);
}

int bdev_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	struct iovec v = { buf, len };

	return bdev_readv(b, &v, 1, off);
}

int bdev_write(struct bdev *b, const void *buf, uint64_t off, size_t len,
	       unsigned flags)
{
	struct iovec v = { (void *)buf, len };

	return bdev_writev(b, &v, 1, off, flags);
}

int bdev_flush(struct bdev *b)
{
	struct bdev_req rq = { .op = BDEV_OP_FLUSH };

	return sync_call(b, &rq);
}

int bdev_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	struct bdev_req rq = { .op = BDEV_OP_DISCARD, .off = off, .len = len };

	return sync_call(b, &rq);
}

int bdev_write_zeroes(struct bdev *b, uint64_t off, uint64_t len,
		      unsigned flags)
{
	struct bdev_req rq = { .op = BDEV_OP_WRITE_ZEROES, .flags = flags,
			       .off = off, .len = len };

	return sync_call(b, &rq);
}

int bdev_block_status(struct bdev *b, uint64_t off, uint64_t len,
		      struct bdev_status *st)
{
	int r;

	if (!util_range_ok(off, len, b->size))
		return bdev_set_error(b, EINVAL,
			"block status at offset %llu length %llu is past the end of the disk (%llu bytes)",
			(unsigned long long)off, (unsigned long long)len,
			(unsigned long long)b->size);
	if (!len)
		return bdev_set_error(b, EINVAL, "block status of an empty range");
	if (!b->ops->block_status) {
		if (b->lower)
			return bdev_block_status(b->lower, off, len, st);
		st->length = len;
		st->flags = BDEV_ST_DATA | BDEV_ST_ALLOC;
		st->depth = 0;
		return 0;
	}
	r = b->ops->block_status(b, off, len, st);
	if (!r && (st->length == 0 || st->length > len))
		return bdev_set_error(b, EIO, "back-end returned a bad extent");
	return r;
}

int bdev_file_info(struct bdev *b, struct bdev_file_info *fi)
{
	memset(fi, 0, sizeof(*fi));
	while (b && !b->ops->file_info)
		b = b->lower;
	return b ? b->ops->file_info(b, fi) : -ENOTSUP;
}

void bdev_writeback(struct bdev *b)
{
	if (b->read_only)
		return;
	if (b->ops->writeback)
		b->ops->writeback(b);
	else if (b->lower)
		bdev_writeback(b->lower);
}

int bdev_close(struct bdev *b)
{
	int r = 0;

	if (!b)
		return 0;
	bdev_drain(b);
	if (!b->read_only)
		r = bdev_flush(b);
	b->ops->close(b);
	return r;
}

void bdev_set_write_hook(struct bdev *b, bdev_write_hook_fn fn, void *opaque)
{
	b->hook_opaque = opaque;
	b->hook = fn;
}
