/* bdev-io: drive a disk of the stack through bdev_submit() (tests and
 * bench/bdev.sh).
 *
 *   bdev-io [OPEN] [--info] MODE [OPTIONS] PATH
 *
 * OPEN: how PATH is opened
 *   (none)     vhd_open(); a file that is not a VHD: bdev_file_open()
 *   --direct   vhd_open() with VHD_O_DIRECT; not a VHD: pt_open()
 *   --pt       pt_open()
 *   --ro       read-only
 *   --info     first print the disk's size, limits and identity as one
 *              line of JSON
 *
 * MODE
 *   info       only --info
 *   verify [--qd N] [--ops N] [--seed N] [--init FILE] [--dump FILE]
 *              [--no-discard]
 *              Random reads, writes (FUA or not), write-zeroes, discards
 *              and flushes at queue depth N (default 32): aligned and
 *              misaligned offsets, lengths and buffers, one to eight
 *              segments a request, requests in flight never overlapping.
 *              Every completion is checked, every read compared with an
 *              in-memory model of the whole disk.  The model starts as
 *              FILE's bytes (so the first reads are checked too) or as the
 *              disk's content.  At the end: flush, the whole disk read back
 *              and compared, closed, reopened and compared again; --dump
 *              writes the model to FILE.  One summary line; exit 1 on the
 *              first difference or failed request.
 *   bench --rw randread|randwrite|read|write --bs N --qd N --seconds S
 *              Closed loop as fio runs it: each completion resubmits its
 *              slot.  One line of JSON: IOPS, MB/s (10^6 bytes), median,
 *              p99 and mean completion latency in microseconds.  Exit 1 if
 *              a request failed.
 *   faults [--bs N] [--qd N] [--expect-fail OFF:LEN[,OFF:LEN...]]...
 *          [--expect-class NAME] [--until-fail S]
 *              Read the whole disk in blocks of N (default 64 KiB); print
 *              "fail OFFSET LENGTH CLASS: ERROR" for each failing request.
 *              Exit 0 when every request overlapping an expected range
 *              failed (with class NAME, when given) and every other one
 *              succeeded.  With --until-fail: read the disk over and over
 *              until a request fails (the backing goes away meanwhile), then
 *              stop submitting and wait for what is in flight; exit 0 when
 *              the failures are of class "medium error" or "device gone",
 *              2 when nothing failed within S seconds.
 * Exit status 2: bad usage or the disk could not be opened. */
#include "common/bdev.h"
#include "common/json.h"
#include "common/util.h"
#include "passthrough/passthrough.h"
#include "vhd/vhd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_QD 256
#define MAX_SEG 8
#define MAX_LEN ((1u << 20) + (256u << 10))   /* largest verify request */
#define SLACK 4096u                           /* alignment and gaps */

static struct {
	bool pt, direct, ro, info, no_discard;
	int qd;
	uint64_t ops, seed, bs;
	double seconds, until_fail;
	const char *init, *dump, *rw, *expect_class;
	struct { uint64_t off, len; } expect[64];
	int nexpect;
} opt = { .qd = 32, .ops = 20000, .seed = 1, .seconds = 3 };

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						       noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("bdev-io: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: one state per user, no locking. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static void *xalloc(size_t n)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, n))
		die("out of memory (%zu bytes)", n);
	return p;
}

/* ---- opening and --info ---- */

static struct bdev *open_disk(const char *path)
{
	struct bdev_err e = { 0 };
	struct bdev *b;

	if (opt.pt) {
		b = pt_open(path, opt.ro ? PT_OPEN_RDONLY : 0, &e);
	} else {
		struct vhd_open_opts o = {
			.flags = (opt.ro ? VHD_O_RDONLY : 0) |
				 (opt.direct ? VHD_O_DIRECT : 0),
		};

		b = vhd_open(path, &o, &e);
		if (!b && e.code == ENOVHD)
			b = opt.direct ? pt_open(path, opt.ro ? PT_OPEN_RDONLY : 0, &e)
				       : bdev_file_open(path, opt.ro ? BDEV_OPEN_RDONLY : 0,
							&e);
	}
	if (!b) {
		fprintf(stderr, "bdev-io: %s\n", e.msg);
		exit(2);
	}
	return b;
}

static void print_info(struct bdev *b)
{
	const struct bdev_limits *l = &b->limits;

	printf("{\"kind\":");
	json_quote(stdout, b->ops->kind ? b->ops->kind : "?");
	printf(",\"size\":%" PRIu64 ",\"read_only\":%s,\"logical_block\":%u,"
	       "\"physical_block\":%u,\"align_off\":%u,\"align_mem\":%u,"
	       "\"max_transfer\":%u,\"opt_transfer\":%u,\"unmap_granularity\":%u,"
	       "\"unmap_zeroes\":%s,\"fua_native\":%s,\"serial\":",
	       b->size, b->read_only ? "true" : "false", l->logical_block,
	       l->physical_block, l->align_off, l->align_mem, l->max_transfer,
	       l->opt_transfer, l->unmap_granularity,
	       l->unmap_zeroes ? "true" : "false",
	       l->fua_native ? "true" : "false");
	json_quote(stdout, b->ident.serial);
	printf(",\"serial_from_device\":%s}\n",
	       b->ident.from_device ? "true" : "false");
	fflush(stdout);
}

static const char *op_name(enum bdev_op op)
{
	static const char *const n[] = { "read", "write", "flush", "discard",
					 "write-zeroes" };

	return (unsigned)op < 5 ? n[op] : "?";
}

/* ---- slots completed into a queue the main thread drains ----
 * verify and faults check completions on the main thread, so the model
 * needs no lock: done() only hands the slot over. */
struct slot {
	struct bdev_req rq;
	struct iovec iov[MAX_SEG];
	uint8_t *mem;
	size_t memlen;
	bool busy;
	struct slot *next;
	/* bench */
	uint64_t t0, rs;
	struct bench *bn;
};

static pthread_mutex_t cq_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cq_cv = PTHREAD_COND_INITIALIZER;
static struct slot *cq;

static void cq_done(struct bdev_req *rq)
{
	struct slot *s = rq->opaque;

	pthread_mutex_lock(&cq_mu);
	s->next = cq;
	cq = s;
	pthread_cond_signal(&cq_cv);
	pthread_mutex_unlock(&cq_mu);
}

/* Wait for at least one completion and take all of them. */
static struct slot *cq_take(void)
{
	struct slot *l;

	pthread_mutex_lock(&cq_mu);
	while (!cq)
		pthread_cond_wait(&cq_cv, &cq_mu);
	l = cq;
	cq = NULL;
	pthread_mutex_unlock(&cq_mu);
	return l;
}

static struct slot *slots_new(int n, size_t memlen)
{
	struct slot *s = calloc((size_t)n, sizeof(*s));

	if (!s)
		die("out of memory");
	for (int i = 0; i < n; i++) {
		s[i].mem = xalloc(memlen);
		s[i].memlen = memlen;
		s[i].rq.opaque = &s[i];
		s[i].rq.iov = s[i].iov;
	}
	return s;
}

static void slots_free(struct slot *s, int n)
{
	for (int i = 0; i < n; i++)
		free(s[i].mem);
	free(s);
}

/* ---- verify ---- */

struct vstats {
	uint64_t reads, writes, fua, zeroes, discards, flushes;
	uint64_t misaligned, multiseg, bytes_read, bytes_written;
};

static uint8_t *model;

/* Fill the model from FILE (its first size bytes) or from the disk. */
static void model_init(struct bdev *b)
{
	model = malloc(b->size ? b->size : 1);
	if (!model)
		die("out of memory for a %" PRIu64 "-byte model", b->size);
	if (opt.init) {
		int fd = open(opt.init, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || util_pread_full(fd, model, b->size, 0, false))
			die("%s: cannot read %" PRIu64 " bytes: %s", opt.init, b->size,
			    strerror(errno));
		close(fd);
		return;
	}
	for (uint64_t off = 0; off < b->size; off += 1u << 20) {
		size_t n = (size_t)UTIL_MIN(b->size - off, 1u << 20);

		if (bdev_read(b, model + off, off, n))
			die("initial read at %" PRIu64 ": %s", off, bdev_last_error());
	}
}

static bool overlaps(uint64_t a, uint64_t al, uint64_t b, uint64_t bl)
{
	return a < b + bl && b < a + al;
}

static bool range_busy(const struct slot *s, int n, uint64_t off, uint64_t len)
{
	for (int i = 0; i < n; i++)
		if (s[i].busy && s[i].rq.op != BDEV_OP_FLUSH &&
		    overlaps(off, len, s[i].rq.off, s[i].rq.len))
			return true;
	return false;
}

/* Lay rq->len bytes over up to MAX_SEG segments inside s->mem: aligned
 * (buffers and lengths multiples of 4 KiB, or of 512 bytes for requests
 * of 512-byte multiples, with 4 KiB gaps: separate pages, which the
 * back-end's native path takes as they are) or anywhere (the block layer
 * bounces). */
static void make_iov(struct slot *s, uint64_t *rs, bool aligned,
		     struct vstats *st)
{
	uint64_t len = s->rq.len, left = len, unit = len % 4096 ? 512 : 4096;
	int nseg = (rnd(rs) % 2) ? 1 : 1 + (int)(rnd(rs) % MAX_SEG);
	uint8_t *p = s->mem;

	if (aligned && len % unit)
		aligned = false;
	if (!aligned)
		p += rnd(rs) % 4096;
	if (aligned && (uint64_t)nseg > len / unit)
		nseg = (int)(len / unit);
	for (int i = 0; i < nseg; i++) {
		uint64_t n;

		if (i == nseg - 1)
			n = left;
		else if (aligned)
			n = unit * (1 + rnd(rs) % (left / unit - (uint64_t)(nseg - 1 - i)));
		else
			n = rnd(rs) % (left + 1);
		s->iov[i].iov_base = p;
		s->iov[i].iov_len = (size_t)n;
		left -= n;
		p += n + (aligned ? 4096 : rnd(rs) % 64);
	}
	s->rq.iovcnt = nseg;
	if (nseg > 1)
		st->multiseg++;
	if (!aligned)
		st->misaligned++;
}

/* Choose the next request for slot s; false when no free range was found
 * (try again after a completion). */
static bool gen(struct bdev *b, struct slot *all, int n, struct slot *s,
		uint64_t *rs, struct vstats *st)
{
	struct bdev_req *rq = &s->rq;
	uint64_t r = rnd(rs) % 100, kind = rnd(rs) % 10, len, off;
	bool aligned;

	memset(rq, 0, offsetof(struct bdev_req, done));
	rq->iov = s->iov;
	rq->done = cq_done;
	rq->opaque = s;
	if (!opt.ro && r < 4) {
		rq->op = BDEV_OP_FLUSH;
		return true;
	}
	rq->op = opt.ro || r < 46 ? BDEV_OP_READ
		 : r < 88 ? BDEV_OP_WRITE
		 : r < 95 || opt.no_discard || !b->limits.unmap_zeroes
			? BDEV_OP_WRITE_ZEROES : BDEV_OP_DISCARD;
	for (int tries = 0; tries < 16; tries++) {
		if (kind < 5) {          /* 4 KiB multiples */
			len = 4096 * (1 + rnd(rs) % 64);
			aligned = true;
		} else if (kind == 5) {  /* 512-byte multiples */
			len = 512 * (1 + rnd(rs) % 128);
			aligned = true;
		} else if (kind == 6) {  /* larger than most max transfers */
			len = (1u << 20) + 4096 * (rnd(rs) % 64);
			aligned = true;
		} else {                 /* anything */
			len = 1 + rnd(rs) % 70000;
			aligned = false;
		}
		len = UTIL_MIN(len, b->size);
		off = rnd(rs) % (b->size - len + 1);
		if (aligned)
			off -= off % (len % 4096 ? 512 : 4096);
		if (range_busy(all, n, off, len))
			continue;
		rq->off = off;
		rq->len = len;
		if (rq->op == BDEV_OP_READ || rq->op == BDEV_OP_WRITE) {
			aligned = aligned && rnd(rs) % 4;
			make_iov(s, rs, aligned, st);
		} else if (!aligned) {
			st->misaligned++;
		}
		if (rq->op == BDEV_OP_WRITE) {
			if (rnd(rs) % 6 == 0)
				rq->flags |= BDEV_FUA;
			for (int i = 0; i < rq->iovcnt; i++) {
				uint8_t *p = rq->iov[i].iov_base;

				for (size_t j = 0; j < rq->iov[i].iov_len; j += 8) {
					uint64_t v = rnd(rs);

					memcpy(p + j, &v, UTIL_MIN((size_t)8, rq->iov[i].iov_len - j));
				}
			}
		} else if (rq->op == BDEV_OP_READ) {
			for (int i = 0; i < rq->iovcnt; i++)
				memset(rq->iov[i].iov_base, 0xa5, rq->iov[i].iov_len);
		} else if (rq->op == BDEV_OP_WRITE_ZEROES) {
			rq->flags = (rnd(rs) % 2 ? BDEV_MAY_UNMAP : 0) |
				    (rnd(rs) % 8 ? 0 : BDEV_FUA);
		}
		return true;
	}
	return false;
}

static void fail_req(const struct bdev_req *rq, const char *what)
{
	die("verify: %s at offset %" PRIu64 " length %" PRIu64
	    " (%d segments, flags 0x%x) %s", op_name(rq->op), rq->off, rq->len,
	    rq->iovcnt, rq->flags, what);
}

/* Check a completion and apply it to the model. */
static void complete(struct slot *s, struct vstats *st)
{
	struct bdev_req *rq = &s->rq;
	uint64_t off = rq->off;
	char msg[160];

	if (rq->status) {
		snprintf(msg, sizeof(msg), "failed: %s (%s)", strerror(-rq->status),
			 bdev_errclass_name(rq->ec));
		fail_req(rq, msg);
	}
	switch (rq->op) {
	case BDEV_OP_READ:
		st->reads++;
		st->bytes_read += rq->len;
		for (int i = 0; i < rq->iovcnt; i++) {
			const uint8_t *p = rq->iov[i].iov_base;
			size_t n = rq->iov[i].iov_len;

			if (memcmp(p, model + off, n)) {
				size_t j = 0;

				while (p[j] == model[off + j])
					j++;
				snprintf(msg, sizeof(msg),
					 "returned wrong data: first difference at disk offset %" PRIu64
					 " (segment %d): got 0x%02x, model has 0x%02x",
					 off + j, i, p[j], model[off + j]);
				fail_req(rq, msg);
			}
			off += n;
		}
		break;
	case BDEV_OP_WRITE:
		st->writes++;
		st->bytes_written += rq->len;
		st->fua += !!(rq->flags & BDEV_FUA);
		for (int i = 0; i < rq->iovcnt; i++) {
			memcpy(model + off, rq->iov[i].iov_base, rq->iov[i].iov_len);
			off += rq->iov[i].iov_len;
		}
		break;
	case BDEV_OP_WRITE_ZEROES:
	case BDEV_OP_DISCARD:
		/* A discard is chosen only where unmapped ranges read as
		 * zeros. */
		*(rq->op == BDEV_OP_DISCARD ? &st->discards : &st->zeroes) += 1;
		memset(model + rq->off, 0, rq->len);
		break;
	case BDEV_OP_FLUSH:
		st->flushes++;
		break;
	}
}

static void compare_all(struct bdev *b, const char *when)
{
	uint8_t *buf = xalloc(1u << 20);

	for (uint64_t off = 0; off < b->size; off += 1u << 20) {
		size_t n = (size_t)UTIL_MIN(b->size - off, 1u << 20), j = 0;

		if (bdev_read(b, buf, off, n))
			die("verify: %s: read at %" PRIu64 " failed: %s", when, off,
			    bdev_last_error());
		if (!memcmp(buf, model + off, n))
			continue;
		while (buf[j] == model[off + j])
			j++;
		die("verify: %s: disk offset %" PRIu64 " reads 0x%02x, model has 0x%02x",
		    when, off + j, buf[j], model[off + j]);
	}
	free(buf);
}

static int mode_verify(struct bdev *b, const char *path)
{
	struct slot *s = slots_new(opt.qd, MAX_LEN + SLACK * (MAX_SEG + 1));
	uint64_t rs = opt.seed * 0x9E3779B97F4A7C15ULL + 1, issued = 0;
	struct vstats st = { 0 };
	uint64_t size = b->size;
	int inflight = 0, r;

	if (size < 4096)
		die("verify: disk of %" PRIu64 " bytes is too small", b->size);
	model_init(b);
	while (issued < opt.ops || inflight) {
		for (int i = 0; i < opt.qd && issued < opt.ops; i++) {
			if (s[i].busy)
				continue;
			if (!gen(b, s, opt.qd, &s[i], &rs, &st))
				break;
			s[i].busy = true;
			inflight++;
			issued++;
			bdev_submit(b, &s[i].rq);
		}
		if (!inflight)
			continue;
		for (struct slot *d = cq_take(), *nx; d; d = nx) {
			nx = d->next;
			complete(d, &st);
			d->busy = false;
			inflight--;
		}
	}
	slots_free(s, opt.qd);
	if (!opt.ro && (r = bdev_flush(b)))
		die("verify: final flush failed: %s", bdev_last_error());
	compare_all(b, "read-back");
	if ((r = bdev_close(b)))
		die("verify: close failed: %s", bdev_last_error());
	b = open_disk(path);
	compare_all(b, "after reopening");
	bdev_close(b);
	if (opt.dump) {
		int fd = open(opt.dump, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0 || util_pwrite_full(fd, model, size, 0) || close(fd))
			die("%s: cannot write the model", opt.dump);
	}
	printf("verify: %" PRIu64 " requests at QD %d OK: %" PRIu64 " reads (%" PRIu64
	       " MiB), %" PRIu64 " writes (%" PRIu64 " MiB, %" PRIu64 " FUA), %" PRIu64
	       " write-zeroes, %" PRIu64 " discards, %" PRIu64 " flushes; %" PRIu64
	       " misaligned, %" PRIu64 " multi-segment; read back and after reopening equal to the model\n",
	       issued, opt.qd, st.reads, st.bytes_read >> 20, st.writes,
	       st.bytes_written >> 20, st.fua, st.zeroes, st.discards, st.flushes,
	       st.misaligned, st.multiseg);
	free(model);
	return 0;
}

/* ---- bench ---- */

/* Latency histogram: exact below 256 ns, then 128 buckets per power of
 * two (< 1% error). */
#define HSUB 128
#define HBUCKETS (256 + 56 * HSUB)

struct bench {
	struct bdev *b;
	enum bdev_op op;
	bool seq;
	uint64_t bs, nblocks;
	uint64_t next_off;       /* atomic: sequential */
	uint64_t ios;            /* atomic */
	uint64_t lat_sum;        /* atomic */
	uint64_t hist[HBUCKETS]; /* atomic */
	bool stop;               /* atomic */
	int running;             /* atomic: slots still going */
	int errors;              /* atomic */
	int first_err;
	enum bdev_ec first_ec;
	uint64_t first_off;
	uint64_t t_end;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static int hidx(uint64_t v)
{
	int e;

	if (v < 256)
		return (int)v;
	e = 63 - __builtin_clzll(v);
	if (e > 62)
		e = 62;
	return 256 + (e - 8) * HSUB + (int)((v >> (e - 7)) & (HSUB - 1));
}

static double hval(int i)
{
	int e;

	if (i < 256)
		return i;
	e = (i - 256) / HSUB + 8;
	return (double)((uint64_t)(HSUB + (i - 256) % HSUB) << (e - 7)) +
	       (double)((uint64_t)1 << (e - 7)) / 2;
}

static double hpct(const struct bench *bn, uint64_t total, double pct)
{
	uint64_t want = (uint64_t)((double)total * pct), seen = 0;

	for (int i = 0; i < HBUCKETS; i++) {
		seen += bn->hist[i];
		if (seen > want || (seen == total && seen))
			return hval(i);
	}
	return 0;
}

static void bench_next(struct slot *s)
{
	struct bench *bn = s->bn;
	uint64_t blk;

	if (bn->seq)
		blk = __atomic_fetch_add(&bn->next_off, 1, __ATOMIC_RELAXED) %
		      bn->nblocks;
	else
		blk = rnd(&s->rs) % bn->nblocks;
	s->rq.off = blk * bn->bs;
	s->t0 = now_ns();
}

static void bench_slot_end(struct bench *bn)
{
	if (__atomic_sub_fetch(&bn->running, 1, __ATOMIC_ACQ_REL) == 0) {
		pthread_mutex_lock(&bn->mu);
		bn->t_end = now_ns();
		pthread_cond_signal(&bn->cv);
		pthread_mutex_unlock(&bn->mu);
	}
}

/* Runs on the back-end's completion thread (or a worker): record, then
 * resubmit the same slot unless the run is over. */
static void bench_done(struct bdev_req *rq)
{
	struct slot *s = rq->opaque;
	struct bench *bn = s->bn;
	uint64_t lat = now_ns() - s->t0;

	if (rq->status) {
		if (__atomic_fetch_add(&bn->errors, 1, __ATOMIC_ACQ_REL) == 0) {
			bn->first_err = rq->status;
			bn->first_ec = rq->ec;
			bn->first_off = rq->off;
		}
		bench_slot_end(bn);
		return;
	}
	__atomic_add_fetch(&bn->hist[hidx(lat)], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&bn->lat_sum, lat, __ATOMIC_RELAXED);
	__atomic_add_fetch(&bn->ios, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&bn->stop, __ATOMIC_ACQUIRE)) {
		bench_slot_end(bn);
		return;
	}
	bench_next(s);
	bdev_submit(bn->b, rq);
}

static int mode_bench(struct bdev *b)
{
	static struct bench bn;
	struct slot *s;
	uint64_t t0, ios;
	double secs;
	struct timespec ts;

	bn.b = b;
	bn.bs = opt.bs ? opt.bs : 4096;
	if (!opt.rw || !strcmp(opt.rw, "randread") || !strcmp(opt.rw, "read")) {
		bn.op = BDEV_OP_READ;
	} else if (!strcmp(opt.rw, "randwrite") || !strcmp(opt.rw, "write")) {
		bn.op = BDEV_OP_WRITE;
	} else {
		fprintf(stderr, "bdev-io: --rw: randread, randwrite, read or write\n");
		return 2;
	}
	bn.seq = opt.rw && (!strcmp(opt.rw, "read") || !strcmp(opt.rw, "write"));
	bn.nblocks = b->size / bn.bs;
	if (!bn.nblocks || bn.bs > SIZE_MAX / 2) {
		fprintf(stderr, "bdev-io: --bs larger than the disk\n");
		return 2;
	}
	if (bn.op == BDEV_OP_WRITE && b->read_only)
		die("bench: the disk is read-only");
	pthread_mutex_init(&bn.mu, NULL);
	pthread_cond_init(&bn.cv, NULL);
	s = slots_new(opt.qd, (size_t)bn.bs);
	bn.running = opt.qd;
	t0 = now_ns();
	for (int i = 0; i < opt.qd; i++) {
		s[i].bn = &bn;
		s[i].rs = opt.seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 7919 + 1;
		memset(s[i].mem, 0x5a + i, (size_t)bn.bs);
		s[i].iov[0] = (struct iovec){ s[i].mem, (size_t)bn.bs };
		s[i].rq = (struct bdev_req){ .op = bn.op, .len = bn.bs,
					     .iov = s[i].iov, .iovcnt = 1,
					     .done = bench_done, .opaque = &s[i] };
		bench_next(&s[i]);
		bdev_submit(b, &s[i].rq);
	}
	/* Run for --seconds, or until every slot stopped on an error. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)opt.seconds;
	ts.tv_nsec += (long)((opt.seconds - (double)(time_t)opt.seconds) * 1e9);
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_mutex_lock(&bn.mu);
	while (__atomic_load_n(&bn.running, __ATOMIC_ACQUIRE) &&
	       pthread_cond_timedwait(&bn.cv, &bn.mu, &ts) != ETIMEDOUT)
		;
	__atomic_store_n(&bn.stop, true, __ATOMIC_RELEASE);
	while (__atomic_load_n(&bn.running, __ATOMIC_ACQUIRE))
		pthread_cond_wait(&bn.cv, &bn.mu);
	pthread_mutex_unlock(&bn.mu);
	ios = bn.ios;
	secs = (double)(bn.t_end - t0) / 1e9;
	printf("{\"rw\":\"%s\",\"bs\":%" PRIu64 ",\"qd\":%d,\"seconds\":%.3f,"
	       "\"ios\":%" PRIu64 ",\"iops\":%.0f,\"mbps\":%.1f,"
	       "\"lat_median_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_mean_us\":%.1f,"
	       "\"errors\":%d}\n",
	       opt.rw ? opt.rw : "randread", bn.bs, opt.qd, secs, ios,
	       (double)ios / secs, (double)(ios * bn.bs) / secs / 1e6,
	       hpct(&bn, ios, 0.5) / 1e3, hpct(&bn, ios, 0.99) / 1e3,
	       ios ? (double)bn.lat_sum / (double)ios / 1e3 : 0.0, bn.errors);
	slots_free(s, opt.qd);
	if (bn.errors) {
		fprintf(stderr, "bdev-io: bench: %d requests failed; first at offset %"
			PRIu64 ": %s (%s)\n", bn.errors, bn.first_off,
			strerror(-bn.first_err), bdev_errclass_name(bn.first_ec));
		bdev_close(b);
		return 1;
	}
	return bdev_close(b) ? 1 : 0;
}

/* ---- faults ---- */

static bool expected_fail(uint64_t off, uint64_t len)
{
	for (int i = 0; i < opt.nexpect; i++)
		if (overlaps(off, len, opt.expect[i].off, opt.expect[i].len))
			return true;
	return false;
}

static int mode_faults(struct bdev *b)
{
	uint64_t bs = opt.bs ? opt.bs : 65536, next = 0, reqs = 0, failed = 0;
	uint64_t deadline = opt.until_fail > 0
			    ? now_ns() + (uint64_t)(opt.until_fail * 1e9) : 0;
	struct slot *s = slots_new(opt.qd, (size_t)bs);
	int inflight = 0, bad = 0, passes = 0;
	uint64_t by_class[BDEV_EC_RESOURCE + 1] = { 0 };

	for (;;) {
		bool more = deadline ? !failed && now_ns() < deadline
				     : next < b->size;

		for (int i = 0; i < opt.qd && more; i++) {
			struct bdev_req *rq = &s[i].rq;

			if (s[i].busy)
				continue;
			if (next >= b->size) {
				next = 0;
				passes++;
			}
			s[i].iov[0] = (struct iovec){ s[i].mem,
				(size_t)UTIL_MIN(bs, b->size - next) };
			*rq = (struct bdev_req){ .op = BDEV_OP_READ, .off = next,
						 .len = s[i].iov[0].iov_len,
						 .iov = s[i].iov, .iovcnt = 1,
						 .done = cq_done, .opaque = &s[i] };
			next += rq->len;
			s[i].busy = true;
			inflight++;
			reqs++;
			bdev_submit(b, rq);
			more = deadline ? true : next < b->size;
		}
		if (!inflight && !more)
			break;
		if (!inflight)
			continue;
		for (struct slot *d = cq_take(), *nx;
		     d; d = nx) {
			struct bdev_req *rq = &d->rq;
			bool exp = expected_fail(rq->off, rq->len);

			nx = d->next;
			d->busy = false;
			inflight--;
			if (rq->status) {
				failed++;
				by_class[rq->ec <= BDEV_EC_RESOURCE ? rq->ec : 0]++;
				printf("fail %" PRIu64 " %" PRIu64 " %s: %s\n", rq->off,
				       rq->len, bdev_errclass_name(rq->ec),
				       strerror(-rq->status));
			}
			if (deadline)
				continue;
			if (exp && !rq->status) {
				printf("unexpected success %" PRIu64 " %" PRIu64 "\n",
				       rq->off, rq->len);
				bad++;
			} else if (!exp && rq->status) {
				bad++;
			} else if (exp && opt.expect_class &&
				   strcmp(bdev_errclass_name(rq->ec), opt.expect_class)) {
				printf("wrong class at %" PRIu64 ": %s, expected %s\n",
				       rq->off, bdev_errclass_name(rq->ec),
				       opt.expect_class);
				bad++;
			}
		}
	}
	slots_free(s, opt.qd);
	bdev_close(b);
	if (deadline) {
		int other = 0;

		for (int c = 0; c <= BDEV_EC_RESOURCE; c++)
			if (c != BDEV_EC_MEDIUM && c != BDEV_EC_GONE)
				other += (int)by_class[c];
		printf("faults: %" PRIu64 " requests over %d passes, %" PRIu64
		       " failed (%" PRIu64 " medium error, %" PRIu64
		       " device gone, %d other)\n", reqs, passes, failed,
		       by_class[BDEV_EC_MEDIUM], by_class[BDEV_EC_GONE], other);
		return !failed ? 2 : other ? 1 : 0;
	}
	printf("faults: %" PRIu64 " requests of %" PRIu64 " bytes, %" PRIu64
	       " failed, %d not as expected\n", reqs, bs, failed, bad);
	return bad ? 1 : 0;
}

/* ---- main ---- */

static void add_expect(char *arg)
{
	for (char *tok = strtok(arg, ","); tok; tok = strtok(NULL, ",")) {
		char *colon = strchr(tok, ':');

		if (!colon || opt.nexpect == 64)
			die("--expect-fail OFF:LEN[,OFF:LEN...]");
		*colon = '\0';
		if (util_parse_size(tok, &opt.expect[opt.nexpect].off) ||
		    util_parse_size(colon + 1, &opt.expect[opt.nexpect].len))
			die("--expect-fail: bad number in %s:%s", tok, colon + 1);
		opt.nexpect++;
	}
}

static uint64_t num(const char *name, const char *s)
{
	uint64_t v;

	if (util_parse_size(s, &v))
		die("%s: bad number %s", name, s);
	return v;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bdev-io [--pt|--direct] [--ro] [--info] info|verify|bench|faults [options] PATH\n"
		"  verify: --qd N --ops N --seed N --init FILE --dump FILE --no-discard\n"
		"  bench:  --rw randread|randwrite|read|write --bs N --qd N --seconds S\n"
		"  faults: --bs N --qd N --expect-fail OFF:LEN,... --expect-class NAME --until-fail S\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pt", no_argument, NULL, 'p' },
		{ "direct", no_argument, NULL, 'd' },
		{ "ro", no_argument, NULL, 'r' },
		{ "info", no_argument, NULL, 'i' },
		{ "no-discard", no_argument, NULL, 'N' },
		{ "qd", required_argument, NULL, 'q' },
		{ "ops", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 's' },
		{ "init", required_argument, NULL, 'I' },
		{ "dump", required_argument, NULL, 'D' },
		{ "rw", required_argument, NULL, 'w' },
		{ "bs", required_argument, NULL, 'b' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "expect-fail", required_argument, NULL, 'e' },
		{ "expect-class", required_argument, NULL, 'c' },
		{ "until-fail", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode, *path;
	struct bdev *b;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p': opt.pt = true; break;
		case 'd': opt.direct = true; break;
		case 'r': opt.ro = true; break;
		case 'i': opt.info = true; break;
		case 'N': opt.no_discard = true; break;
		case 'q': opt.qd = (int)num("--qd", optarg); break;
		case 'o': opt.ops = num("--ops", optarg); break;
		case 's': opt.seed = num("--seed", optarg); break;
		case 'I': opt.init = optarg; break;
		case 'D': opt.dump = optarg; break;
		case 'w': opt.rw = optarg; break;
		case 'b': opt.bs = num("--bs", optarg); break;
		case 'S': opt.seconds = strtod(optarg, NULL); break;
		case 'e': add_expect(optarg); break;
		case 'c': opt.expect_class = optarg; break;
		case 'u': opt.until_fail = strtod(optarg, NULL); break;
		default: usage();
		}
	}
	if (argc - optind != 2 || opt.qd < 1 || opt.qd > MAX_QD)
		usage();
	mode = argv[optind];
	path = argv[optind + 1];
	if (strcmp(mode, "info") && strcmp(mode, "verify") &&
	    strcmp(mode, "bench") && strcmp(mode, "faults"))
		usage();
	b = open_disk(path);
	if (opt.info || !strcmp(mode, "info"))
		print_info(b);
	if (!strcmp(mode, "verify"))
		return mode_verify(b, path);
	if (!strcmp(mode, "bench"))
		return mode_bench(b);
	if (!strcmp(mode, "faults"))
		return mode_faults(b);
	return bdev_close(b) ? 1 : 0;
}
