/* bdev_copy: copy one disk into another (convert, merge).
 *
 * The disk is cut into chunks.  Reader threads take chunk numbers in
 * ascending order, ask the source for its block status, read only the
 * ranges that hold data, and describe the chunk as segments: data, zero
 * (reads as zeros) or skip (not ours to copy: max_depth).  The calling
 * thread writes the chunks strictly in order, so a sparse destination
 * allocates its blocks in disk order and a cancelled or failed copy has
 * written a prefix of the disk.
 *
 * Slots: chunk i is built in slot i % nslots.  A reader that took chunk i
 * waits until the writer released chunk i - nslots from that slot; readers
 * take numbers in order and the writer consumes them in order, so the
 * lowest unfinished chunk always has its slot: no deadlock.
 *
 * Work is proportional to the data, not to the disk's size: before the
 * readers start, the calling thread walks the source's block status once
 * (metadata only; a sparse VHD reports a run of unallocated blocks as one
 * extent) and plans the copy as items: a zero or skip extent of at least
 * one chunk is one item that no reader touches, everything else is cut
 * into items of at most one chunk that readers fill as before.  A 2 TiB
 * dynamic disk holding two blocks is a handful of items, not a million
 * chunk hand-offs.
 *
 * The destination is flushed once, at the end.  (Flushing it from another
 * thread while the copy goes on, to start writeback early, was measured:
 * on ext4 it made copies up to twice as slow, writes stalling behind the
 * concurrent fdatasync.)
 */
#include "bdev.h"
#include "pool.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CHUNK (2u << 20)
#define DEFAULT_READERS 2
#define MAX_READERS 16
#define ZERO_GRANULE 4096u
#define BUF_ALIGN 4096u

enum seg_kind { SEG_DATA, SEG_ZERO, SEG_SKIP };

struct seg {
	uint64_t off;          /* disk offset */
	uint64_t len;
	enum seg_kind kind;
};

struct slot {
	uint8_t *buf;          /* chunk bytes; data segments only */
	struct seg *segs;
	size_t nseg, cap;
	uint64_t idx;          /* chunk held when ready */
	uint64_t free_for;     /* next chunk allowed to fill this slot */
	bool ready;
};

/* One unit of work: [off, off + len).  kind SEG_DATA means "read it and
 * look" (len <= chunk); SEG_ZERO and SEG_SKIP are decided by the plan. */
struct item {
	uint64_t off, len;
	enum seg_kind kind;
};

struct copier {
	struct bdev *src, *dst;
	uint64_t len;
	uint32_t chunk;
	uint64_t nchunks;      /* items */
	struct item *items;
	const struct bdev_copy_opts *o;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t next;         /* next chunk to take */
	int err;               /* first failure: -errno */
	char msg[sizeof(((struct bdev_err *)0)->msg)];
	struct slot *slots;
	int nslots;
};

/* Record the first failure (mutex held or not: takes it). */
static void fail(struct copier *c, int r, struct bdev *who)
{
	char m[sizeof(c->msg)];

	if (who)
		bdev_errmsg(who, m, sizeof(m));
	else
		snprintf(m, sizeof(m), "%s", strerror(-r));
	pthread_mutex_lock(&c->mu);
	if (!c->err) {
		c->err = r;
		snprintf(c->msg, sizeof(c->msg), "%s", m);
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static int add_seg(struct slot *s, uint64_t off, uint64_t len,
		   enum seg_kind kind)
{
	struct seg *last = s->nseg ? &s->segs[s->nseg - 1] : NULL;

	if (last && last->kind == kind && last->off + last->len == off) {
		last->len += len;
		return 0;
	}
	if (s->nseg == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct seg *n = realloc(s->segs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->segs = n;
		s->cap = cap;
	}
	s->segs[s->nseg++] = (struct seg){ off, len, kind };
	return 0;
}

/* Split data just read at disk range [off, off+len) (bytes at p) into data
 * and zero segments on 4 KiB boundaries of the disk. */
static int scan_zero(struct slot *s, const uint8_t *p, uint64_t off,
		     uint64_t len)
{
	while (len) {
		uint64_t n = UTIL_MIN(len, util_align_up(off + 1, ZERO_GRANULE) - off);
		int r = add_seg(s, off, n, util_is_zero(p, (size_t)n) ? SEG_ZERO
							: SEG_DATA);

		if (r)
			return r;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* How the copy treats a block status extent. */
static enum seg_kind classify(const struct bdev_copy_opts *o, const struct bdev_status *st)
{
	if (o->max_depth > 0 && (!(st->flags & BDEV_ST_ALLOC) || st->depth >= o->max_depth))
		return SEG_SKIP;
	return st->flags & BDEV_ST_ZERO ? SEG_ZERO : SEG_DATA;
}

static int add_item(struct item **v, uint64_t *n, size_t *cap, uint64_t off,
		    uint64_t len, enum seg_kind kind)
{
	if (*n && kind != SEG_DATA && (*v)[*n - 1].kind == kind &&
	    (*v)[*n - 1].off + (*v)[*n - 1].len == off) {
		(*v)[*n - 1].len += len;
		return 0;
	}
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		struct item *nv = realloc(*v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = (struct item){ off, len, kind };
	return 0;
}

/* Cut [off, end) into read items of at most one chunk. */
static int add_reads(struct copier *c, size_t *cap, uint64_t off, uint64_t end)
{
	while (off < end) {
		uint64_t n = UTIL_MIN(end - off, (uint64_t)c->chunk);
		int r = add_item(&c->items, &c->nchunks, cap, off, n, SEG_DATA);

		if (r)
			return r;
		off += n;
	}
	return 0;
}

/* The plan (see the top of the file).  0 or -errno (failure recorded). */
static int plan(struct copier *c)
{
	uint64_t pos = 0, pend = 0;	/* [pend, pos): still to cut into reads */
	size_t cap = 0;
	int r = 0;

	while (pos < c->len && !r) {
		struct bdev_status st;
		enum seg_kind k;

		r = bdev_block_status(c->src, pos, c->len - pos, &st);
		if (r) {
			fail(c, r, c->src);
			return r;
		}
		if (!st.length || st.length > c->len - pos)
			st.length = c->len - pos;
		k = classify(c->o, &st);
		if (k != SEG_DATA && st.length >= c->chunk) {
			r = add_reads(c, &cap, pend, pos);
			if (!r)
				r = add_item(&c->items, &c->nchunks, &cap, pos, st.length, k);
			pend = pos + st.length;
		}
		pos += st.length;
	}
	if (!r)
		r = add_reads(c, &cap, pend, c->len);
	if (r)
		fail(c, r, NULL);
	return r;
}

/* Build item idx in slot s.  0 or -errno (failure recorded). */
static int fill(struct copier *c, struct slot *s, uint64_t idx)
{
	const struct item *it = &c->items[idx];
	uint64_t start = it->off;
	uint64_t end = it->off + it->len;
	uint64_t pos = start;
	int r = 0;

	s->nseg = 0;
	if (it->kind != SEG_DATA) {
		r = add_seg(s, it->off, it->len, it->kind);
		if (r)
			fail(c, r, NULL);
		return r;
	}
	while (pos < end && !r) {
		struct bdev_status st;
		uint64_t n;

		r = bdev_block_status(c->src, pos, end - pos, &st);
		if (r) {
			fail(c, r, c->src);
			return r;
		}
		n = UTIL_MIN(st.length, end - pos);
		if (!n)
			n = end - pos;
		if (classify(c->o, &st) == SEG_SKIP) {
			r = add_seg(s, pos, n, SEG_SKIP);
		} else if (classify(c->o, &st) == SEG_ZERO) {
			r = add_seg(s, pos, n, SEG_ZERO);
		} else {
			r = bdev_read(c->src, s->buf + (pos - start), pos, (size_t)n);
			if (r) {
				fail(c, r, c->src);
				return r;
			}
			r = scan_zero(s, s->buf + (pos - start), pos, n);
		}
		pos += n;
	}
	if (r)
		fail(c, r, NULL);
	return r;
}

static void reader(void *arg, int index)
{
	struct copier *c = arg;

	(void)index;
	pthread_mutex_lock(&c->mu);
	while (!c->err && c->next < c->nchunks) {
		uint64_t idx = c->next++;
		struct slot *s = &c->slots[idx % (uint64_t)c->nslots];
		int r;

		while (!c->err && s->free_for != idx)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->err)
			break;
		pthread_mutex_unlock(&c->mu);
		r = fill(c, s, idx);
		pthread_mutex_lock(&c->mu);
		if (r)
			break;
		s->idx = idx;
		s->ready = true;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

/* Write the segments of one chunk. */
static int put(struct copier *c, struct slot *s, uint64_t start,
	       struct bdev_copy_stats *st)
{
	for (size_t i = 0; i < s->nseg; i++) {
		const struct seg *g = &s->segs[i];
		int r = 0;

		switch (g->kind) {
		case SEG_DATA:
			r = bdev_write(c->dst, s->buf + (g->off - start), g->off,
				       (size_t)g->len, 0);
			st->data_bytes += g->len;
			break;
		case SEG_ZERO:
			if (!c->o->dst_zeroed)
				r = bdev_write_zeroes(c->dst, g->off, g->len,
						      BDEV_MAY_UNMAP);
			st->zero_bytes += g->len;
			break;
		case SEG_SKIP:
			st->skip_bytes += g->len;
			break;
		}
		if (r) {
			fail(c, r, c->dst);
			return r;
		}
	}
	return 0;
}

/* Data written between writeback hints to the destination. */
#define WRITEBACK_EVERY (32ull << 20)

/* The writer: chunks in order.  Returns 0 or -errno.  Every
 * WRITEBACK_EVERY bytes it asks the destination to start writing back
 * (without waiting), so the disk works while we copy and the final flush
 * finds little left. */
static int writer(struct copier *c, struct bdev_copy_stats *st)
{
	uint64_t hinted = 0;

	for (uint64_t idx = 0; idx < c->nchunks; idx++) {
		struct slot *s = &c->slots[idx % (uint64_t)c->nslots];
		uint64_t start = c->items[idx].off, end = start + c->items[idx].len;
		int r;

		pthread_mutex_lock(&c->mu);
		while (!c->err && !(s->ready && s->idx == idx))
			pthread_cond_wait(&c->cv, &c->mu);
		r = c->err;
		pthread_mutex_unlock(&c->mu);
		if (r)
			return r;
		r = put(c, s, start, st);
		if (r)
			return r;
		if (st->data_bytes - hinted >= WRITEBACK_EVERY) {
			bdev_writeback(c->dst);
			hinted = st->data_bytes;
		}
		pthread_mutex_lock(&c->mu);
		s->ready = false;
		s->free_for = idx + (uint64_t)c->nslots;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		if (c->o->progress &&
		    c->o->progress(c->o->opaque, end, c->len)) {
			fail(c, -ECANCELED, NULL);
			return -ECANCELED;
		}
	}
	return 0;
}

/* Chunk buffers are page-aligned (the kernel copies whole pages to and
 * from the page cache).  MADV_HUGEPAGE was tried: it halved the profile
 * share of the copies but made some runs 2-3x slower on a loaded machine
 * (direct compaction stalls), so it is not used. */
static uint8_t *alloc_buf(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, BUF_ALIGN, len))
		return NULL;
	return p;
}

static void free_slots(struct copier *c)
{
	for (int i = 0; i < c->nslots; i++) {
		free(c->slots[i].buf);
		free(c->slots[i].segs);
	}
	free(c->slots);
}

int bdev_copy(struct bdev *src, struct bdev *dst, uint64_t len,
	      const struct bdev_copy_opts *o, struct bdev_copy_stats *st,
	      struct bdev_err *e)
{
	static const struct bdev_copy_opts def;
	struct bdev_copy_stats dummy;
	struct copier c = { .src = src, .dst = dst, .len = len };
	struct pool pool;
	int nth = 0, started = 0, r = 0;

	if (!o)
		o = &def;
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	c.o = o;
	c.chunk = o->chunk ? o->chunk : DEFAULT_CHUNK;
	if (c.chunk % ZERO_GRANULE)
		return bdev_err_set(e, EINVAL, "copy chunk %u is not a multiple of 4096",
				    c.chunk);
	if (len > src->size || len > dst->size)
		return bdev_err_set(e, EINVAL,
				    "cannot copy %llu bytes from %s (%llu bytes) to %s (%llu bytes)",
				    (unsigned long long)len, src->name,
				    (unsigned long long)src->size, dst->name,
				    (unsigned long long)dst->size);
	pthread_mutex_init(&c.mu, NULL);
	pthread_cond_init(&c.cv, NULL);
	r = plan(&c);
	if (r) {
		bdev_err_set(e, -r, "%s", c.msg);
		goto out_plan;
	}
	nth = o->readers > 0 ? UTIL_MIN(o->readers, MAX_READERS) : DEFAULT_READERS;
	if ((uint64_t)nth > c.nchunks)
		nth = c.nchunks ? (int)c.nchunks : 1;
	c.nslots = nth * 2;
	c.slots = calloc((size_t)c.nslots, sizeof(*c.slots));
	if (!c.slots) {
		r = bdev_err_set(e, ENOMEM, "out of memory");
		goto out_plan;
	}
	for (int i = 0; i < c.nslots; i++) {
		c.slots[i].free_for = (uint64_t)i;
		c.slots[i].buf = alloc_buf(c.chunk);
		if (!c.slots[i].buf) {
			free_slots(&c);
			r = bdev_err_set(e, ENOMEM, "out of memory for copy buffers");
			goto out_plan;
		}
	}
	/* A reader that cannot start fails the copy with EAGAIN. */
	started = pool_start(&pool, nth, reader, &c, NULL);
	if (started < nth)
		fail(&c, -EAGAIN, NULL);
	if (!c.err)
		r = writer(&c, st);
	pthread_mutex_lock(&c.mu);
	if (r && !c.err)
		c.err = r;
	pthread_cond_broadcast(&c.cv);
	pthread_mutex_unlock(&c.mu);
	if (started > 0)
		pool_wait(&pool, 0, NULL, NULL, NULL);
	r = c.err;
	if (!r) {
		r = bdev_flush(dst);
		if (r)
			fail(&c, r, dst);
	}
	if (r)
		bdev_err_set(e, -r, "%s", c.msg);
	free_slots(&c);
out_plan:
	pthread_cond_destroy(&c.cv);
	pthread_mutex_destroy(&c.mu);
	free(c.items);
	return r;
}
