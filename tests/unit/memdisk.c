/* memdisk: the in-memory test disk; see memdisk.h. */
#include "memdisk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long seq;

long md_seq(void)
{
	return __atomic_add_fetch(&seq, 1, __ATOMIC_SEQ_CST);
}

static struct memdisk *MD(struct bdev *b)
{
	return (struct memdisk *)b;
}

/* Called with m->mu held. */
static void check_align(struct memdisk *m, const char *what, uint64_t off,
			uint64_t len, const struct iovec *iov, int iovcnt)
{
	uint32_t ao = m->b.limits.align_off, am = m->b.limits.align_mem;
	bool bad = (off % ao) || (len % ao);

	for (int i = 0; i < iovcnt; i++)
		bad |= ((uintptr_t)iov[i].iov_base % am) || (iov[i].iov_len % ao);
	if (bad) {
		if (!m->bad_align++)
			fprintf(stderr, "memdisk %d: misaligned %s at %llu+%llu\n",
				m->id, what, (unsigned long long)off,
				(unsigned long long)len);
	}
}

/* Called with m->mu held: the injected error for op on [off, off+len). */
static int fault(struct memdisk *m, enum bdev_op op, uint64_t off,
		 uint64_t len)
{
	for (int i = 0; i < m->nfaults; i++)
		if ((m->faults[i].ops & (1u << op)) && m->faults[i].off >= off &&
		    m->faults[i].off - off < len)
			return m->faults[i].err;
	return 0;
}

static void mark_written(struct memdisk *m, uint64_t off, uint64_t len)
{
	if (!m->first_write_seq)
		m->first_write_seq = md_seq();
	if (m->written_by && len)
		for (uint64_t blk = off / 4096; blk <= (off + len - 1) / 4096; blk++)
			m->written_by[blk] = (uint8_t)m->id;
}

/* Serve one operation on the bytes; called with m->mu held. */
static int serve(struct memdisk *m, enum bdev_op op, const struct iovec *iov,
		 int iovcnt, uint64_t off, uint64_t len)
{
	int r = op == BDEV_OP_FLUSH ? m->flush_err : fault(m, op, off, len);

	if (r)
		return r;
	switch (op) {
	case BDEV_OP_READ:
	case BDEV_OP_WRITE:
		for (int i = 0; i < iovcnt; i++) {
			if (op == BDEV_OP_READ)
				memcpy(iov[i].iov_base, m->data + off, iov[i].iov_len);
			else
				memcpy(m->data + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
		break;
	case BDEV_OP_FLUSH:
		m->flushes++;
		m->flush_seq = md_seq();
		return 0;
	case BDEV_OP_DISCARD:
	case BDEV_OP_WRITE_ZEROES:
		memset(m->data + off, 0, (size_t)len);
		break;
	}
	if (op != BDEV_OP_READ)
		mark_written(m, off - (op == BDEV_OP_WRITE ? len : 0), len);
	return 0;
}

/* ---- synchronous ops ---- */

static int sync_op(struct bdev *b, enum bdev_op op, const void *buf,
		   uint64_t off, uint64_t len)
{
	struct memdisk *m = MD(b);
	struct iovec v = { (void *)buf, (size_t)len };
	int r;

	pthread_mutex_lock(&m->mu);
	m->sync_ops++;
	if (op != BDEV_OP_FLUSH)
		check_align(m, "sync op", off, len, buf ? &v : NULL, buf ? 1 : 0);
	r = serve(m, op, &v, 1, off, len);
	pthread_mutex_unlock(&m->mu);
	return r;
}

static int md_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	return sync_op(b, BDEV_OP_READ, buf, off, len);
}

static int md_write(struct bdev *b, const void *buf, uint64_t off, size_t len,
		    unsigned flags)
{
	return sync_op(b, BDEV_OP_WRITE, buf, off, len);
}

static int md_flush(struct bdev *b)
{
	return sync_op(b, BDEV_OP_FLUSH, NULL, 0, 0);
}

static int md_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	return sync_op(b, BDEV_OP_DISCARD, NULL, off, len);
}

static int md_write_zeroes(struct bdev *b, uint64_t off, uint64_t len,
			   unsigned flags)
{
	return sync_op(b, BDEV_OP_WRITE_ZEROES, NULL, off, len);
}

/* ---- native submit and the completion thread ---- */

static int md_submit(struct bdev *b, struct bdev_req *rq)
{
	struct memdisk *m = MD(b);

	pthread_mutex_lock(&m->mu);
	if (m->decline_ops & (1u << rq->op)) {
		pthread_mutex_unlock(&m->mu);
		return -ENOTSUP;
	}
	if (rq->op != BDEV_OP_FLUSH)
		check_align(m, "submit", rq->off, rq->len, rq->iov,
			    rq->op == BDEV_OP_READ || rq->op == BDEV_OP_WRITE ?
			    rq->iovcnt : 0);
	if (m->nq == m->capq) {
		int cap = m->capq ? 2 * m->capq : 64;
		struct bdev_req **q = realloc(m->q, (size_t)cap * sizeof(*q));

		if (!q) {
			pthread_mutex_unlock(&m->mu);
			return -ENOMEM;
		}
		m->q = q;
		m->capq = cap;
	}
	m->q[m->nq++] = rq;
	m->received++;
	if (m->nq > m->max_queued)
		m->max_queued = m->nq;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	return 0;
}

static void *completer(void *arg)
{
	struct memdisk *m = arg;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		struct bdev_req **batch;
		int n;

		while (!m->stop && (!m->nq || m->stall))
			pthread_cond_wait(&m->cv, &m->mu);
		if (m->stop && !m->nq)
			break;
		/* Take the whole queue and serve it in a shuffled order. */
		batch = m->q;
		n = m->nq;
		m->q = NULL;
		m->nq = m->capq = 0;
		for (int i = n - 1; i > 0; i--) {
			int j = (int)(rand_r(&m->seed) % (unsigned)(i + 1));
			struct bdev_req *t = batch[i];

			batch[i] = batch[j];
			batch[j] = t;
		}
		for (int i = 0; i < n; i++) {
			struct bdev_req *rq = batch[i];
			int r = serve(m, rq->op, rq->iov, rq->iovcnt, rq->off,
				      rq->len);

			/* done() may submit again: complete without mu. */
			pthread_mutex_unlock(&m->mu);
			bdev_req_complete(rq, r);
			pthread_mutex_lock(&m->mu);
		}
		free(batch);
		pthread_cond_broadcast(&m->cv);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

static void md_close(struct bdev *b)
{
	struct memdisk *m = MD(b);

	if (m->has_thread) {
		pthread_mutex_lock(&m->mu);
		m->stop = true;
		m->stall = false;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->thr, NULL);
	}
	if (m->closed)
		*m->closed = 1;
	free(m->q);
	free(m->data);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	bdev_fini(b);
	free(m);
}

static const struct bdev_ops native_ops = {
	.kind = "memdisk-native",
	.submit = md_submit,
	.close = md_close,
};

static const struct bdev_ops sync_ops = {
	.kind = "memdisk-sync",
	.read = md_read,
	.write = md_write,
	.flush = md_flush,
	.discard = md_discard,
	.write_zeroes = md_write_zeroes,
	.close = md_close,
};

static const struct bdev_ops sync_nowz_ops = {
	.kind = "memdisk-sync-nowz",
	.read = md_read,
	.write = md_write,
	.flush = md_flush,
	.discard = md_discard,
	.close = md_close,
};

struct memdisk *md_open(enum md_mode mode, uint64_t size, uint32_t align,
			int fill, unsigned seed)
{
	static int next_id;
	const struct bdev_ops *ops = mode == MD_NATIVE ? &native_ops :
				     mode == MD_SYNC ? &sync_ops : &sync_nowz_ops;
	struct memdisk *m = calloc(1, sizeof(*m));
	char name[32];

	if (!m)
		return NULL;
	m->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_SEQ_CST);
	snprintf(name, sizeof(name), "mem%d", m->id);
	m->data = malloc(size);
	if (!m->data || bdev_init(&m->b, ops, name, size, 512, false)) {
		free(m->data);
		free(m);
		return NULL;
	}
	memset(m->data, fill, size);
	m->b.limits.align_off = align;
	m->b.limits.align_mem = align;
	m->b.limits.unmap_granularity = 4096;
	m->b.limits.unmap_zeroes = true;
	m->seed = seed;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	if (mode == MD_NATIVE) {
		if (pthread_create(&m->thr, NULL, completer, m)) {
			bdev_close(&m->b);
			return NULL;
		}
		m->has_thread = true;
	}
	return m;
}

void md_fault(struct memdisk *m, uint64_t off, int err, unsigned ops)
{
	pthread_mutex_lock(&m->mu);
	if (m->nfaults < MD_MAX_FAULTS) {
		m->faults[m->nfaults].off = off;
		m->faults[m->nfaults].err = err;
		m->faults[m->nfaults].ops = ops;
		m->nfaults++;
	}
	pthread_mutex_unlock(&m->mu);
}

void md_clear_faults(struct memdisk *m)
{
	pthread_mutex_lock(&m->mu);
	m->nfaults = 0;
	pthread_mutex_unlock(&m->mu);
}

void md_set_stall(struct memdisk *m, bool stall)
{
	pthread_mutex_lock(&m->mu);
	m->stall = stall;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

int md_queued(struct memdisk *m)
{
	int n;

	pthread_mutex_lock(&m->mu);
	n = m->nq;
	pthread_mutex_unlock(&m->mu);
	return n;
}

int md_get(struct memdisk *m, const int *field)
{
	int v;

	pthread_mutex_lock(&m->mu);
	v = *field;
	pthread_mutex_unlock(&m->mu);
	return v;
}

void md_wait_init(struct md_wait *w)
{
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->n = 0;
}

void md_wait_add(struct md_wait *w)
{
	pthread_mutex_lock(&w->mu);
	w->n++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int md_wait_count(struct md_wait *w)
{
	int n;

	pthread_mutex_lock(&w->mu);
	n = w->n;
	pthread_mutex_unlock(&w->mu);
	return n;
}

void md_wait_for(struct md_wait *w, int n)
{
	pthread_mutex_lock(&w->mu);
	while (w->n < n)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

void md_wait_fini(struct md_wait *w)
{
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

/* ---- test requests ---- */

#define MIN_U64(a, b) ((a) < (b) ? (a) : (b))

void md_req_done(struct bdev_req *rq)
{
	struct md_req *t = rq->opaque;

	md_wait_add(t->w);
}

/* Point t's iovec at nseg pieces of odd sizes covering buf[0, len). */
static void split(struct md_req *t, uint8_t *buf, uint64_t len, int nseg)
{
	uint64_t left = len;

	if ((uint64_t)nseg > len)
		nseg = len ? (int)len : 1;
	for (int i = 0; i < nseg; i++) {
		uint64_t n = i + 1 == nseg ? left :
			MIN_U64(left - (uint64_t)(nseg - 1 - i),
				 1 + (uint64_t)(i * 37 + 11) % 151 * 2);

		t->iov[i].iov_base = buf;
		t->iov[i].iov_len = (size_t)n;
		buf += n;
		left -= n;
	}
	t->rq.iov = t->iov;
	t->rq.iovcnt = nseg;
}

int md_req_prep(struct md_req *t, struct md_wait *w, enum bdev_op op,
		    uint64_t off, uint64_t len, int nseg, unsigned skew,
		    unsigned seed, uint8_t *model)
{
	memset(t, 0, sizeof(*t));
	t->w = w;
	t->rq.op = op;
	t->rq.off = off;
	t->rq.len = len;
	t->rq.done = md_req_done;
	t->rq.opaque = t;
	if (op != BDEV_OP_READ && op != BDEV_OP_WRITE) {
		if (model)
			memset(model + off, 0, (size_t)len);
		return 0;
	}
	t->mem = aligned_alloc(4096, (len + skew + 4096) / 4096 * 4096);
	if (!t->mem)
		return -ENOMEM;
	memset(t->mem, 0xee, len + skew);
	if (op == BDEV_OP_WRITE)
		for (uint64_t i = 0; i < len; i++) {
			t->mem[skew + i] = md_pat(seed, off + i);
			if (model)
				model[off + i] = t->mem[skew + i];
		}
	split(t, t->mem + skew, len, nseg);
	return 0;
}

const uint8_t *md_req_data(const struct md_req *t)
{
	return t->rq.iovcnt ? t->iov[0].iov_base : NULL;
}
