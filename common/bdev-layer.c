/* Layers: a bdev that wraps another (nbdkit filters are the model).
 *
 * A layer fills only the operations it changes; the block layer passes
 * the others to b->lower (bdev.c: op_sync() for synchronous calls,
 * bdev_dispatch() -> bdev_layer_forward() for requests).  A layer needs no
 * alignment of its own: the disk at the bottom bounces what it must.
 *
 * Two layers are built here:
 *  - observe: calls a function for every write that completed (change
 *    tracking); observers stack;
 *  - switch: the disk behind a consumer, replaceable while it runs
 *    (drain, flush, swap, release the held requests), for a snapshot that
 *    redirects a running disk's writes to a new differencing child.
 */
#include "bdev-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bdev_layer_init(struct bdev *b, const struct bdev_ops *ops,
		    const char *name, struct bdev *lower, bool owns_lower)
{
	int r = bdev_init(b, ops, name ? name : lower->name, lower->size,
			  lower->sector_size, lower->read_only);

	if (r)
		return r;
	b->limits = lower->limits;
	b->limits.align_off = 1;
	b->limits.align_mem = 1;
	b->ident = lower->ident;
	b->lower = lower;
	b->owns_lower = owns_lower;
	return 0;
}

bool bdev_layer_passes(const struct bdev *b, enum bdev_op op)
{
	const struct bdev_ops *o = b->ops;

	switch (op) {
	case BDEV_OP_READ:
		return !o->read;
	case BDEV_OP_WRITE:
		return !o->write;
	case BDEV_OP_FLUSH:
		return !o->flush;
	case BDEV_OP_DISCARD:
		return !o->discard;
	case BDEV_OP_WRITE_ZEROES:
		return !o->write_zeroes;
	}
	return false;
}

/* A request sent down for a parent; after() runs before the parent
 * completes. */
struct fwd {
	struct bdev_req c;
	struct bdev_req *parent;
	void (*after)(struct bdev *layer, struct bdev_req *parent, int status);
};

static void fwd_done(struct bdev_req *c)
{
	struct fwd *f = (struct fwd *)c;
	struct bdev_req *p = f->parent;
	int st = c->status;

	p->ec = c->ec;
	if (f->after)
		f->after(p->bd, p, st);
	free(f);
	bdev_req_complete(p, st);
}

static void forward(struct bdev *b, struct bdev *lower, struct bdev_req *rq,
		    void (*after)(struct bdev *, struct bdev_req *, int))
{
	struct fwd *f = malloc(sizeof(*f));

	if (!f) {
		if (after)
			after(b, rq, -ENOMEM);
		bdev_req_complete(rq, -ENOMEM);
		return;
	}
	f->parent = rq;
	f->after = after;
	f->c = (struct bdev_req){
		.op = rq->op, .flags = rq->flags, .off = rq->off, .len = rq->len,
		.iov = rq->iov, .iovcnt = rq->iovcnt, .done = fwd_done,
		.opaque = f,
	};
	bdev_submit(lower, &f->c);
}

void bdev_layer_forward(struct bdev *b, struct bdev_req *rq)
{
	forward(b, b->lower, rq, NULL);
}

static void layer_close(struct bdev *b)
{
	if (b->owns_lower)
		bdev_close(b->lower);
	bdev_fini(b);
	free(b);
}

/* ---- observe ---- */

struct observe {
	struct bdev b;          /* must be first */
	bdev_write_hook_fn fn;
	void *opaque;
};

static struct observe *OB(struct bdev *b)
{
	return (struct observe *)b;
}

static int ob_write(struct bdev *b, const void *buf, uint64_t off,
		    size_t len, unsigned flags)
{
	int r = bdev_write(b->lower, buf, off, len, flags);

	if (!r)
		OB(b)->fn(OB(b)->opaque, off, len);
	return r;
}

static int ob_write_zeroes(struct bdev *b, uint64_t off, uint64_t len,
			   unsigned flags)
{
	int r = bdev_write_zeroes(b->lower, off, len, flags);

	if (!r)
		OB(b)->fn(OB(b)->opaque, off, len);
	return r;
}

static int ob_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	int r = bdev_discard(b->lower, off, len);

	if (!r)
		OB(b)->fn(OB(b)->opaque, off, len);
	return r;
}

static void ob_after(struct bdev *b, struct bdev_req *rq, int status)
{
	if (!status && rq->len && rq->op != BDEV_OP_READ &&
	    rq->op != BDEV_OP_FLUSH)
		OB(b)->fn(OB(b)->opaque, rq->off, rq->len);
}

static int ob_submit(struct bdev *b, struct bdev_req *rq)
{
	forward(b, b->lower, rq, ob_after);
	return 0;
}

static const struct bdev_ops observe_ops = {
	.kind = "observe",
	.write = ob_write,
	.write_zeroes = ob_write_zeroes,
	.discard = ob_discard,
	.submit = ob_submit,
	.close = layer_close,
};

struct bdev *bdev_observe_open(struct bdev *lower, bool owns_lower,
			       bdev_write_hook_fn fn, void *opaque,
			       struct bdev_err *e)
{
	struct observe *o = calloc(1, sizeof(*o));

	if (!o || bdev_layer_init(&o->b, &observe_ops, NULL, lower, owns_lower)) {
		free(o);
		bdev_err_set(e, ENOMEM, "%s: out of memory", lower->name);
		return NULL;
	}
	o->fn = fn;
	o->opaque = opaque;
	return &o->b;
}

/* ---- switch ----
 * sw->mu guards paused, active, the held queue and b.lower.  Every
 * operation enters (waits while paused, counts itself active, takes the
 * current lower disk) and leaves; a swap pauses, waits for active to reach
 * zero, flushes, swaps, and releases the held requests. */

struct sw {
	struct bdev b;          /* must be first */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool paused;
	int active;
	struct bdev_req *held, **tail;
};

static struct sw *SW(struct bdev *b)
{
	return (struct sw *)b;
}

static struct bdev *sw_enter(struct sw *s)
{
	struct bdev *l;

	pthread_mutex_lock(&s->mu);
	while (s->paused)
		pthread_cond_wait(&s->cv, &s->mu);
	s->active++;
	l = s->b.lower;
	pthread_mutex_unlock(&s->mu);
	return l;
}

static void sw_leave(struct sw *s)
{
	pthread_mutex_lock(&s->mu);
	if (--s->active == 0 && s->paused)
		pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static int sw_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	struct bdev *l = sw_enter(SW(b));
	int r = bdev_read(l, buf, off, len);

	sw_leave(SW(b));
	return r;
}

static int sw_write(struct bdev *b, const void *buf, uint64_t off,
		    size_t len, unsigned flags)
{
	struct bdev *l = sw_enter(SW(b));
	int r = bdev_write(l, buf, off, len, flags);

	sw_leave(SW(b));
	return r;
}

static int sw_flush(struct bdev *b)
{
	struct bdev *l = sw_enter(SW(b));
	int r = bdev_flush(l);

	sw_leave(SW(b));
	return r;
}

static int sw_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	struct bdev *l = sw_enter(SW(b));
	int r = bdev_discard(l, off, len);

	sw_leave(SW(b));
	return r;
}

static int sw_write_zeroes(struct bdev *b, uint64_t off, uint64_t len,
			   unsigned flags)
{
	struct bdev *l = sw_enter(SW(b));
	int r = bdev_write_zeroes(l, off, len, flags);

	sw_leave(SW(b));
	return r;
}

static int sw_block_status(struct bdev *b, uint64_t off, uint64_t len,
			   struct bdev_status *st)
{
	struct bdev *l = sw_enter(SW(b));
	int r = bdev_block_status(l, off, len, st);

	sw_leave(SW(b));
	return r;
}

static void sw_writeback(struct bdev *b)
{
	struct bdev *l = sw_enter(SW(b));

	bdev_writeback(l);
	sw_leave(SW(b));
}

static void sw_after(struct bdev *b, struct bdev_req *rq, int status)
{
	sw_leave(SW(b));
}

static int sw_submit(struct bdev *b, struct bdev_req *rq)
{
	struct sw *s = SW(b);
	struct bdev *l;

	pthread_mutex_lock(&s->mu);
	if (s->paused) {
		rq->next = NULL;
		*s->tail = rq;
		s->tail = &rq->next;
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	s->active++;
	l = s->b.lower;
	pthread_mutex_unlock(&s->mu);
	forward(b, l, rq, sw_after);
	return 0;
}

static void sw_close(struct bdev *b)
{
	struct sw *s = SW(b);

	bdev_close(b->lower);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	bdev_fini(b);
	free(s);
}

static const struct bdev_ops switch_ops = {
	.kind = "switch",
	.read = sw_read,
	.write = sw_write,
	.flush = sw_flush,
	.discard = sw_discard,
	.write_zeroes = sw_write_zeroes,
	.block_status = sw_block_status,
	.writeback = sw_writeback,
	.submit = sw_submit,
	.close = sw_close,
};

struct bdev *bdev_switch_open(struct bdev *lower, struct bdev_err *e)
{
	struct sw *s = calloc(1, sizeof(*s));

	if (!s || bdev_layer_init(&s->b, &switch_ops, NULL, lower, true)) {
		free(s);
		bdev_err_set(e, ENOMEM, "%s: out of memory", lower->name);
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->tail = &s->held;
	return &s->b;
}

struct bdev *bdev_switch_lower(struct bdev *sw)
{
	struct sw *s = SW(sw);
	struct bdev *l;

	pthread_mutex_lock(&s->mu);
	l = s->b.lower;
	pthread_mutex_unlock(&s->mu);
	return l;
}

/* Pause: new requests are held; wait for those in flight. */
static struct bdev *sw_pause(struct sw *s)
{
	struct bdev *cur;

	pthread_mutex_lock(&s->mu);
	while (s->paused)   /* one swap or hold at a time */
		pthread_cond_wait(&s->cv, &s->mu);
	s->paused = true;
	while (s->active)
		pthread_cond_wait(&s->cv, &s->mu);
	cur = s->b.lower;
	pthread_mutex_unlock(&s->mu);
	return cur;
}

/* Unpause (with new_lower in place when not NULL) and resubmit the held
 * requests. */
static void sw_resume(struct bdev *swb, struct bdev *new_lower)
{
	struct sw *s = SW(swb);
	struct bdev_req *held;

	pthread_mutex_lock(&s->mu);
	if (new_lower)
		s->b.lower = new_lower;
	s->paused = false;
	held = s->held;
	s->held = NULL;
	s->tail = &s->held;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	while (held) {
		struct bdev_req *rq = held;

		held = rq->next;
		if (sw_submit(swb, rq))
			bdev_req_complete(rq, -EIO);
	}
}

int bdev_switch_hold(struct bdev *swb, struct bdev **cur)
{
	int r;

	if (swb->ops != &switch_ops)
		return bdev_set_error(swb, EINVAL, "not a switch layer");
	*cur = sw_pause(SW(swb));
	r = (*cur)->read_only ? 0 : bdev_flush(*cur);
	if (r)
		sw_resume(swb, NULL);
	return r;
}

int bdev_switch_release(struct bdev *swb, struct bdev *new_lower)
{
	if (swb->ops != &switch_ops)
		return bdev_set_error(swb, EINVAL, "not a switch layer");
	if (new_lower && (new_lower->size != swb->size ||
			  new_lower->limits.logical_block != swb->limits.logical_block ||
			  (new_lower->read_only && !swb->read_only))) {
		/* the caller keeps new_lower; the old disk stays */
		sw_resume(swb, NULL);
		return bdev_set_error(swb, EINVAL,
			"cannot switch to %s: not the same size, block size or writability",
			new_lower->name);
	}
	sw_resume(swb, new_lower);
	return 0;
}

int bdev_switch_swap(struct bdev *swb, struct bdev *new_lower,
		     struct bdev **old)
{
	struct sw *s = SW(swb);
	struct bdev_req *held;
	struct bdev *cur;
	int r;

	if (swb->ops != &switch_ops)
		return bdev_set_error(swb, EINVAL, "not a switch layer");
	if (new_lower->size != swb->size ||
	    new_lower->limits.logical_block != swb->limits.logical_block)
		return bdev_set_error(swb, EINVAL,
			"cannot switch to %s: %llu bytes in %u-byte blocks, need %llu in %u-byte blocks",
			new_lower->name, (unsigned long long)new_lower->size,
			new_lower->limits.logical_block,
			(unsigned long long)swb->size, swb->limits.logical_block);
	if (new_lower->read_only && !swb->read_only)
		return bdev_set_error(swb, EROFS, "cannot switch to %s: read-only",
				      new_lower->name);
	pthread_mutex_lock(&s->mu);
	while (s->paused)   /* one swap at a time */
		pthread_cond_wait(&s->cv, &s->mu);
	s->paused = true;
	while (s->active)
		pthread_cond_wait(&s->cv, &s->mu);
	cur = s->b.lower;
	pthread_mutex_unlock(&s->mu);

	/* Nothing runs on cur now: what it acknowledged becomes durable
	 * before the new disk sees a request. */
	r = cur->read_only ? 0 : bdev_flush(cur);

	pthread_mutex_lock(&s->mu);
	if (!r) {
		s->b.lower = new_lower;
		*old = cur;
	}
	s->paused = false;
	held = s->held;
	s->held = NULL;
	s->tail = &s->held;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	while (held) {
		struct bdev_req *rq = held;

		held = rq->next;
		if (sw_submit(swb, rq))
			bdev_req_complete(rq, -EIO);
	}
	return r;
}
