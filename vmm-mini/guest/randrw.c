/* randrw: fio-like I/O on one LUN through the whole path, timed in the
 * guest with RDTSC.
 *
 *   randrw[,lun=N][,bs=BYTES][,qd=N][,seconds=N][,read=PERCENT][,seq=1]
 *         [,span_mb=N]
 *
 * qd requests stay in flight; each completion is timed (submit to reap)
 * into a histogram (1 us buckets to 4 ms, 64 us buckets to 262 ms) and
 * replaced at once.  Random offsets are bs-aligned over the first span_mb
 * MiB (default: the whole LUN); seq=1 walks them in order.  Prints IOPS,
 * MiB/s and latency percentiles; exit 0 unless requests failed.
 */
#include "vmm-mini/guest/gsc.h"
#include "vmm-mini/guest/rt.h"
#include "vmm-mini/guest/workloads.h"

#define FINE 4096u		/* 1 us buckets */
#define COARSE 4096u		/* 64 us buckets after them */

static uint64_t pct(const uint32_t *h, uint64_t total, uint64_t permille_x10)
{
	uint64_t want = (total * permille_x10 + 9999) / 10000, acc = 0;

	for (uint32_t i = 0; i < FINE + COARSE + 1; i++) {
		acc += h[i];
		if (acc >= want && want)
			return i < FINE ? i : FINE + (uint64_t)(i - FINE) * 64;
	}
	return 0;
}

int w_randrw(const char *args)
{
	uint64_t lun = 0, bs = 4096, qd = 32, seconds = 5, readpct = 100, seq = 0, span_mb = 0;
	struct gsc_lun luns[GSC_MAX_LUNS];
	const struct gsc_lun *L = NULL;
	struct gsc_req *reqs;
	uint32_t *hist;
	uint8_t *bufs;
	uint64_t x = rt_rdtsc() | 1, nblk, next = 0, done = 0, errors = 0, maxlat = 0;
	uint64_t t0, t_end, elapsed;
	int n, e;

	rt_arg(args, "lun", &lun);
	rt_arg(args, "bs", &bs);
	rt_arg(args, "qd", &qd);
	rt_arg(args, "seconds", &seconds);
	rt_arg(args, "read", &readpct);
	rt_arg(args, "seq", &seq);
	rt_arg(args, "span_mb", &span_mb);
	if (!qd || qd > GSC_MAX_INFLIGHT || bs < 512 || bs > (1u << 20) || readpct > 100) {
		rt_printf("randrw: want 1 <= qd <= %u, 512 <= bs <= 1 MiB, read <= 100",
			  GSC_MAX_INFLIGHT);
		return 2;
	}
	reqs = gv_alloc(qd * sizeof(*reqs));
	hist = gv_alloc((FINE + COARSE + 1) * sizeof(*hist));
	bufs = gv_alloc(qd * bs);
	if (!reqs || !hist || !bufs) {
		rt_printf("randrw: not enough guest memory (--mem)");
		return 2;
	}
	if ((e = gsc_init()) < 0)
		return 1;
	n = gsc_scan(luns, GSC_MAX_LUNS);
	for (int i = 0; i < n; i++)
		if (luns[i].lun == lun)
			L = &luns[i];
	if (!L) {
		rt_printf("randrw: no LUN %llu", (unsigned long long)lun);
		return 1;
	}
	if (bs % L->block_size || bs > gsc_max_transfer()) {
		rt_printf("randrw: bs %llu: not a multiple of %u or over the maximum transfer",
			  (unsigned long long)bs, L->block_size);
		return 2;
	}
	nblk = L->blocks * L->block_size / bs;
	if (span_mb && span_mb * 1048576 / bs < nblk)
		nblk = span_mb * 1048576 / bs;
	if (!nblk)
		return 2;
	for (uint64_t i = 0; i < bs * qd; i++)
		bufs[i] = (uint8_t)(i * 7);

	t0 = rt_rdtsc();
	t_end = gv_now_ns() + seconds * 1000000000ull;
	for (uint64_t i = 0; i < qd; i++)
		reqs[i].done = true;
	for (bool running = true; running || gsc_inflight();) {
		if (running && (gv_now_ns() >= t_end || gv_stop_requested()))
			running = false;
		for (uint64_t i = 0; i < qd; i++) {
			struct gsc_req *r = &reqs[i];
			uint64_t blk;
			bool wr;

			if (!r->done)
				continue;
			if (r->tag) {	/* a completed request: account it */
				uint64_t ns = rt_ticks_ns(r->t_done - r->t_submit) / 1000;
				uint32_t b = ns < FINE ? (uint32_t)ns
					     : ns < FINE + (uint64_t)COARSE * 64
						     ? FINE + (uint32_t)((ns - FINE) / 64)
						     : FINE + COARSE;

				hist[b]++;
				maxlat = ns > maxlat ? ns : maxlat;
				done++;
				if (!gsc_ok(r))
					errors++;
				r->tag = 0;
			}
			if (!running)
				continue;
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			blk = seq ? next++ % nblk : x % nblk;
			wr = x % 100 >= readpct;
			gsc_rw16(r, wr, L->lun, blk * (bs / L->block_size),
				 (uint32_t)(bs / L->block_size), bufs + i * bs, (uint32_t)bs);
			r->tag = 1;
			e = gsc_submit(r);
			if (e == GV_E_RING) {
				r->tag = 0;
				r->done = true;
				break;
			}
			if (e < 0)
				return 1;
		}
		if (gsc_inflight() && (e = gsc_wait()) < 0)
			return 1;
	}
	elapsed = rt_ticks_ns(rt_rdtsc() - t0);
	if (!elapsed)
		elapsed = 1;
	rt_printf("randrw: lun %u, %s %llu%% read, bs %llu, qd %llu: %llu requests in %llu ms, "
		  "%llu IOPS, %llu MiB/s, %llu errors",
		  L->lun, seq ? "sequential" : "random", (unsigned long long)readpct,
		  (unsigned long long)bs, (unsigned long long)qd, (unsigned long long)done,
		  (unsigned long long)(elapsed / 1000000),
		  (unsigned long long)(done * 1000000000ull / elapsed),
		  (unsigned long long)(done * bs * 1000000000ull / elapsed / 1048576),
		  (unsigned long long)errors);
	rt_printf("randrw: latency us: p50 %llu, p90 %llu, p99 %llu, p99.9 %llu, max %llu",
		  (unsigned long long)pct(hist, done, 5000), (unsigned long long)pct(hist, done, 9000),
		  (unsigned long long)pct(hist, done, 9900), (unsigned long long)pct(hist, done, 9990),
		  (unsigned long long)maxlat);
	return errors ? 1 : 0;
}
