/* merge: live merge of a LUN's snapshot child into its parent while the
 * guest keeps reading and writing the LUN.
 *
 *   LUN -> switch -> [observe: dirty marks] -> child -> parent (read-only)
 *                                      parent (writable, second handle)
 *
 * 1. The parent is opened writable beside the chain's read-only handle of
 *    it (vhd/lock.c: the process's reader and writer share one lock, which
 *    becomes exclusive, so no other process reads or writes the parent
 *    meanwhile).
 * 2. An observe layer goes under the LUN's switch (a short hold): every
 *    write, write-zeroes or discard that completes marks its granules.
 * 3. Pass 1 copies every range the child holds (block status depth 0),
 *    read through the chain, into the parent in 1 MiB pieces, while the
 *    guest's I/O goes on to the child.  Then the granules marked meanwhile
 *    are taken (and cleared) and copied again where the child holds them,
 *    pass after pass, until little is left, a pass did not shrink what is
 *    left (a guest writing faster than the copy), or 16 passes ran.
 * 4. Final step, the LUN held: the last marked ranges are copied, the
 *    parent flushed, the child and CHILD.frozen.ctk unlinked (folder
 *    fsync'd), and the switch released onto the parent's writable handle.
 *    The old chain and the observe layer are closed after.
 *
 * Why the marks are enough: a mark is set after its write completed, and
 * a pass takes the marks before it reads.  A write that lands after a
 * range was read has its mark set after that read, so a later pass (or
 * the final step, which runs after every write in flight has completed)
 * copies the range again.  Writes to ranges the child does not hold (a
 * write-zeroes the child satisfied from a zero parent) change nothing the
 * parent must take.
 *
 * Crash safety (kill -9 at any moment): until the unlink the parent only
 * receives data the child holds, in ranges the child covers, so child +
 * parent still read exactly what the guest saw (the child's header keeps
 * the parent's UUID, which the parent's writes do not change; the
 * parent's timestamp is not checked on open); a later offline `vhdtool
 * merge CHILD` completes the merge.  The parent is flushed before the
 * unlink, so after it the parent alone holds everything the guest
 * wrote, flushed or not, and later writes go to it.  The parent's own
 * allocation rules keep it a valid image at every moment.
 *
 * Only the control thread calls this (stor.c's s->mu held), so nothing
 * else swaps the switch's disk meanwhile.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "vhd/vhd.h"
#include "vmm-mini/vmm-merge.h"
#include "vmm-mini/vmm.h"

#define PIECE (1u << 20)		/* bytes a copy request */
#define MAX_PASSES 16			/* copy passes before the held step anyway */
#define FINAL_BYTES (1u << 20)		/* marked bytes small enough to copy held */
#define MAX_BITS (1ull << 22)		/* marks: 512 KiB of bitmap at most */

struct marks {
	uint64_t gran;			/* bytes a bit, a power of two >= 4 KiB */
	uint64_t size;			/* the disk's bytes */
	size_t nwords;
	_Atomic uint64_t *w;		/* set by the observe layer */
	uint64_t *todo;			/* taken, not copied yet */
};

struct lm {
	struct bdev *child;		/* top of the chain: reads come from it */
	struct bdev *parent;		/* the writable handle copies go to */
	struct marks *m;		/* the observe layer's opaque */
	uint8_t *buf;			/* PIECE bytes, aligned */
	struct vmm_merge_stats *st;
	struct vmm_stor_err *e;
	unsigned delay_us;		/* VMM_TEST_MERGE_DELAY_US */
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#define fail vmm_stor_err_set

/* ---- marks: a bitmap set by the observe layer from any thread ---- */

static struct marks *marks_new(uint64_t size)
{
	struct marks *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->size = size;
	m->gran = 4096;
	while ((size + m->gran - 1) / m->gran > MAX_BITS)
		m->gran *= 2;
	m->nwords = (size_t)(((size + m->gran - 1) / m->gran + 63) / 64);
	if (!m->nwords)
		m->nwords = 1;
	m->w = calloc(m->nwords, sizeof(*m->w));
	m->todo = calloc(m->nwords, sizeof(*m->todo));
	if (!m->w || !m->todo) {
		free((void *)m->w);
		free(m->todo);
		free(m);
		return NULL;
	}
	return m;
}

static void marks_free(struct marks *m)
{
	if (!m)
		return;
	free((void *)m->w);
	free(m->todo);
	free(m);
}

/* Bits [b0, b1] in words of 64, as a mask per word. */
static uint64_t word_mask(uint64_t i, uint64_t b0, uint64_t b1)
{
	uint64_t lo = i * 64 < b0 ? b0 - i * 64 : 0;
	uint64_t hi = i * 64 + 63 > b1 ? b1 - i * 64 : 63;

	return (hi == 63 ? ~0ull : (2ull << hi) - 1) & ~((1ull << lo) - 1);
}

/* The observe layer's function: runs after a write completed. */
static void marks_set(void *opaque, uint64_t off, uint64_t len)
{
	struct marks *m = opaque;
	uint64_t b0, b1;

	if (!len || off >= m->size)
		return;
	b0 = off / m->gran;
	b1 = (UTIL_MIN(off + len, m->size) - 1) / m->gran;
	for (uint64_t i = b0 / 64; i <= b1 / 64; i++)
		atomic_fetch_or_explicit(&m->w[i], word_mask(i, b0, b1), memory_order_release);
}

/* Move the marks set so far into todo; returns the bytes todo covers. */
static uint64_t marks_take(struct marks *m)
{
	uint64_t bits = 0;

	for (size_t i = 0; i < m->nwords; i++) {
		m->todo[i] |= atomic_exchange_explicit(&m->w[i], 0, memory_order_acq_rel);
		bits += (uint64_t)__builtin_popcountll(m->todo[i]);
	}
	return bits * m->gran;
}

/* ---- copying ---- */

static bool all_zero(const uint8_t *p, size_t n)
{
	const uint64_t *w = (const uint64_t *)p;	/* n: a multiple of 512 */

	for (size_t i = 0; i < n / 8; i++)
		if (w[i])
			return false;
	for (size_t i = n / 8 * 8; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* [off, off+len), which the child holds: read through the chain, written
 * into the parent (zeros as write-zeroes, as vhd_merge's copy does). */
static int copy_held(struct lm *L, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = (size_t)UTIL_MIN(len, (uint64_t)PIECE);
		int r = bdev_read(L->child, L->buf, off, n);

		if (r)
			return fail(L->e, -r, "reading %s: %s", L->child->name,
				    bdev_last_error());
		r = all_zero(L->buf, n) ? bdev_write_zeroes(L->parent, off, n, BDEV_MAY_UNMAP)
					: bdev_write(L->parent, L->buf, off, n, 0);
		if (r)
			return fail(L->e, -r, "writing %s: %s", L->parent->name,
				    bdev_last_error());
		L->st->bytes += n;
		if (L->delay_us)
			usleep(L->delay_us);
		off += n;
		len -= n;
	}
	return 0;
}

/* The parts of [off, off+len) the child itself holds. */
static int copy_range(struct lm *L, uint64_t off, uint64_t len)
{
	while (len) {
		struct bdev_status bs;
		int r = bdev_block_status(L->child, off, len, &bs);

		if (r)
			return fail(L->e, -r, "%s: block status: %s", L->child->name,
				    bdev_last_error());
		if (!bs.length || bs.length > len)
			return fail(L->e, EIO, "%s: block status out of range", L->child->name);
		if ((bs.flags & BDEV_ST_ALLOC) && bs.depth == 0) {
			r = copy_held(L, off, bs.length);
			if (r)
				return r;
		}
		off += bs.length;
		len -= bs.length;
	}
	return 0;
}

/* Copy (and clear) the ranges in todo, a run of granules at a time. */
static int copy_todo(struct lm *L)
{
	struct marks *m = L->m;
	uint64_t nbits = m->nwords * 64, b = 0;

	while (b < nbits) {
		uint64_t e, off, end;
		int r;

		if (!(m->todo[b / 64] >> (b % 64) & 1)) {
			b++;
			continue;
		}
		for (e = b; e < nbits && (m->todo[e / 64] >> (e % 64) & 1); e++)
			m->todo[e / 64] &= ~(1ull << (e % 64));
		off = b * m->gran;
		end = UTIL_MIN(e * m->gran, m->size);
		if (off < end) {
			r = copy_range(L, off, end - off);
			if (r)
				return r;
		}
		b = e;
	}
	return 0;
}

/* ---- the merge ---- */

/* Hold the LUN's requests (drained, its disk flushed); *t: when. */
static int hold(struct lm *L, struct bdev *sw, struct bdev **cur, uint64_t *t)
{
	int r;

	*t = now_us();
	r = bdev_switch_hold(sw, cur);
	if (r)
		fail(L->e, -r, "drain: %s", bdev_last_error());
	return r;
}

/* The parent's writable handle, checked to be the child's parent and to
 * fit the LUN. */
static struct bdev *open_parent(struct bdev *sw, struct bdev *child, const char *path,
				struct vmm_stor_err *e)
{
	struct vhd_open_opts oo = { .flags = VHD_O_DIRECT };
	struct bdev_file_info cf, pf;
	struct bdev_err be = { 0 };
	struct bdev *p;

	/* the chain seen through the block layer: the child's file and the
	 * parent UUID its header names */
	if (bdev_file_info(child, &cf) || !cf.backing ||
	    strcmp(cf.format, "vhd-differencing")) {
		fail(e, EINVAL, "%s is not a differencing VHD", child->name);
		return NULL;
	}
	if (vhd_merge_check(child, &be)) {
		fail(e, be.code, "%s", be.msg);
		return NULL;
	}
	p = vhd_open(path, &oo, &be);
	if (!p) {
		fail(e, be.code ? be.code : EIO, "%s", be.msg);
		return NULL;
	}
	if (bdev_file_info(p, &pf) || memcmp(cf.backing_id, pf.id, 16)) {
		fail(e, EINVAL, "%s is not the parent of %s (UUIDs differ)", path, child->name);
	} else if (p->read_only || p->size != sw->size ||
		   p->limits.logical_block != sw->limits.logical_block) {
		fail(e, ENOTSUP, "%s: a live merge needs a writable parent of the disk's size and block size",
		     path);
	} else {
		return p;
	}
	bdev_close(p);
	return NULL;
}

/* Take the observe layer out from under the switch again (the chain
 * serves the LUN as before).  If the hold fails (the chain's flush), the
 * layer stays where it is, owning the chain, and so do its marks. */
static void unplug(struct bdev *sw, struct bdev *obs, struct bdev *child, struct lm *L)
{
	struct bdev *cur;

	if (bdev_switch_hold(sw, &cur)) {
		L->m = NULL;		/* still in use by the layer */
		return;
	}
	(void)bdev_switch_release(sw, child);	/* same disk as before */
	obs->owns_lower = false;
	bdev_close(obs);
}

int vmm_merge_live(struct bdev *sw, const char *child_path, const char *parent_path,
		   struct bdev **parent_out, struct vmm_merge_stats *st,
		   struct vmm_stor_err *e)
{
	struct vmm_merge_stats dummy;
	struct lm L = { .e = e };
	struct bdev_err be = { 0 };
	struct bdev *cur, *obs = NULL;
	uint64_t t0 = now_us(), th, left, prev = UINT64_MAX;
	char *ctk = NULL;
	int r;

	*parent_out = NULL;
	L.st = st ? st : &dummy;
	memset(L.st, 0, sizeof(*L.st));
	L.child = bdev_switch_lower(sw);
	/* For the crash tests only: a pause after each piece copied, so
	 * that kills land anywhere in a merge. */
	if (getenv("VMM_TEST_MERGE_DELAY_US"))
		L.delay_us = (unsigned)strtoul(getenv("VMM_TEST_MERGE_DELAY_US"), NULL, 10);
	L.parent = open_parent(sw, L.child, parent_path, e);
	if (!L.parent)
		return -e->code;
	L.buf = aligned_alloc(4096, PIECE);
	L.m = marks_new(sw->size);
	if (!L.buf || !L.m ||
	    asprintf(&ctk, "%s.frozen.ctk", child_path) < 0) {
		ctk = NULL;
		r = fail(e, ENOMEM, "out of memory");
		goto out;
	}

	/* the marks under the switch */
	r = hold(&L, sw, &cur, &th);
	if (r)
		goto out;
	obs = bdev_observe_open(cur, true, marks_set, L.m, &be);
	(void)bdev_switch_release(sw, obs);	/* NULL (no memory): nothing changes */
	L.st->held_us += now_us() - th;
	if (!obs) {
		r = fail(e, be.code, "%s", be.msg);
		goto out;
	}

	/* copy while the guest runs */
	L.st->passes = 1;
	r = copy_range(&L, 0, sw->size);
	while (!r) {
		/* Done when little is left, or when a pass did not shrink
		 * what is left (the guest writes faster than we copy: more
		 * passes would not make the held step shorter). */
		left = marks_take(L.m);
		if (left <= FINAL_BYTES || left >= prev || L.st->passes >= MAX_PASSES)
			break;
		prev = left;
		L.st->passes++;
		r = copy_todo(&L);
	}
	/* Both flushed now: less for the held step's flushes to do. */
	if (!r && bdev_flush(L.parent))
		r = fail(e, EIO, "flushing %s: %s", parent_path, bdev_last_error());
	if (!r && bdev_flush(sw))
		r = fail(e, EIO, "flushing %s: %s", child_path, bdev_last_error());
	if (r)
		goto unplug;

	/* the final step, held */
	r = hold(&L, sw, &cur, &th);
	if (r)
		goto unplug;
	marks_take(L.m);
	r = copy_todo(&L);
	if (!r && bdev_flush(L.parent))
		r = fail(e, EIO, "flushing %s: %s", parent_path, bdev_last_error());
	if (!r && unlink(child_path) < 0)
		r = fail(e, errno, "merged into %s, but cannot remove %s: %s", parent_path,
			 child_path, strerror(errno));
	if (r) {
		(void)bdev_switch_release(sw, L.child);
		L.st->held_us += now_us() - th;
		obs->owns_lower = false;
		bdev_close(obs);
		obs = NULL;
		goto out;
	}
	/* The parent holds everything now.  The removal must be durable
	 * before the guest writes to the parent: a child back after a crash
	 * would hide those writes.  A folder fsync fails only on a failing
	 * file system (EIO), which is not reported here: the merge is done
	 * and the LUN must go on to the parent. */
	(void)unlink(ctk);	/* beside the child: one folder fsync for both */
	(void)util_fsync_dir(child_path);
	(void)bdev_switch_release(sw, L.parent);	/* checked in open_parent */
	L.st->held_us += now_us() - th;
	*parent_out = L.parent;
	L.parent = NULL;
	bdev_close(obs);	/* and the old chain under it */
	obs = NULL;
	goto out;
unplug:
	unplug(sw, obs, L.child, &L);
	obs = NULL;
out:
	if (L.parent)
		bdev_close(L.parent);
	marks_free(L.m);
	free(L.buf);
	free(ctk);
	L.st->seconds = (double)(now_us() - t0) / 1e6;
	return r;
}
