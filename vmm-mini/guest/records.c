/* records: numbered records written across every LUN, read back and
 * verified, flushed at intervals; the format is vmm-mini/vmm-records.h,
 * checked again from the host by `vmm-mini check-records`.
 *
 *   records[,seconds=N][,count=N][,qd=N][,batch=N][,slots=N][,flush_ms=N]
 *          [,progress_ms=N][,vss=on|off|refuse|hang]
 *
 * Rounds: every active LUN gets `batch` writes (qd in flight in all), then
 * each is read back and compared, then at most every flush_ms each LUN
 * gets a SYNCHRONIZE CACHE; once it succeeds the console says
 * "records: flushed LUN:SEQ ..." — every write up to SEQ on that LUN
 * completed before the flush was sent, so it must survive a crash of the
 * VMM.  Hot add and remove (ENUMERATE_BUS / REMOVE_DEVICE) trigger a
 * rescan between rounds; a LUN whose I/O fails is dropped with one line
 * and the others carry on.  On the VMM's stop request (or after seconds /
 * count) the round in flight completes, every LUN is flushed, and the
 * workload returns 0 unless a record read back differed.
 *
 * VSS (gvss.h; vss=on by default): a FREEZE from the host is taken between
 * rounds: the round's writes have all completed, every LUN gets a
 * SYNCHRONIZE CACHE, then FREEZE is answered S_OK (HV_E_FAIL when a flush
 * failed).  Until THAW the rounds only read the last batch back and
 * verify it.  The console reports each freeze and thaw, and the longest
 * stall: the longest time between two completed writes (TSC).
 */
#include "vmm-mini/guest/gsc.h"
#include "vmm-mini/guest/gvss.h"
#include "vmm-mini/guest/rt.h"
#include "vmm-mini/guest/workloads.h"
#include "vmm-mini/vmm-records.h"

struct rlun {
	bool active;
	uint8_t lun;
	uint32_t bs, slots;
	uint64_t blocks;
	uint64_t seq;		/* last sequence written (completed) */
	uint64_t flushed;	/* last sequence known flushed */
	uint8_t *wbuf, *rbuf;	/* batch records each */
};

static struct {
	struct rlun l[GSC_MAX_LUNS];
	struct gsc_req *reqs;
	uint64_t batch, qd, slots, run_id;
	uint64_t written, verified, mismatches, io_errors;
	uint64_t frozen_reads;	/* records read back while frozen */
	uint64_t stall_max;	/* TSC ticks: the longest write stall */
	unsigned rescans_seen;
} R;

static void drop_lun(struct rlun *L, const char *what, const struct gsc_req *r)
{
	rt_printf("records: lun %u: %s failed (srb 0x%x, scsi 0x%x, nt 0x%x): no more I/O to it",
		  L->lun, what, r->srb_status, r->scsi_status, r->nt_status);
	L->active = false;
	R.io_errors++;
}

/* REPORT LUNS and friends: new LUNs join, missing ones leave. */
static int rescan(void)
{
	struct gsc_lun found[GSC_MAX_LUNS];
	bool seen[GSC_MAX_LUNS] = { false };
	int n;

	R.rescans_seen = gsc_rescans();
	n = gsc_scan(found, GSC_MAX_LUNS);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		struct rlun *L = &R.l[found[i].lun];

		seen[found[i].lun] = true;
		if (L->active)
			continue;
		if (L->blocks) {
			/* dropped after an error; it stays dropped */
			continue;
		}
		L->lun = found[i].lun;
		L->bs = found[i].block_size;
		L->blocks = found[i].blocks;
		L->slots = (uint32_t)(L->blocks * L->bs / VMM_REC_BYTES < R.slots
					      ? L->blocks * L->bs / VMM_REC_BYTES : R.slots);
		if (L->slots < R.batch) {
			rt_printf("records: lun %u: too small (%llu blocks)", L->lun,
				  (unsigned long long)L->blocks);
			continue;
		}
		if (!L->wbuf) {
			L->wbuf = gv_alloc(R.batch * VMM_REC_BYTES);
			L->rbuf = gv_alloc(R.batch * VMM_REC_BYTES);
			if (!L->wbuf || !L->rbuf) {
				rt_printf("records: out of guest memory for lun %u", L->lun);
				return GV_E_NOMEM;
			}
		}
		L->active = true;
		rt_printf("records: lun %u: %llu blocks of %u bytes (%s %s), %u slots",
			  L->lun, (unsigned long long)L->blocks, L->bs, found[i].vendor,
			  found[i].product, L->slots);
	}
	for (int i = 0; i < GSC_MAX_LUNS; i++)
		if (R.l[i].active && !seen[i]) {
			R.l[i].active = false;
			rt_printf("records: lun %d removed (last sequence %llu, flushed %llu)", i,
				  (unsigned long long)R.l[i].seq,
				  (unsigned long long)R.l[i].flushed);
		}
	return 0;
}

/* Run reqs[0..n) with at most qd in flight; all done on return. */
static int run_all(struct gsc_req *reqs, unsigned n)
{
	unsigned next = 0, done = 0;

	while (done < n) {
		while (next < n && gsc_inflight() < R.qd) {
			int e = gsc_submit(&reqs[next]);

			if (e == GV_E_RING)
				break;
			if (e < 0)
				return e;
			next++;
		}
		int got = gsc_wait();

		if (got < 0)
			return got;
		done += (unsigned)got;
	}
	return 0;
}

/* Read back each active LUN's last batch (the records in its wbuf) and
 * compare.  Returns how many were read, or < 0. */
static int read_back(void)
{
	unsigned n = 0;
	int e;

	for (int i = 0; i < GSC_MAX_LUNS; i++) {
		struct rlun *L = &R.l[i];

		if (!L->active || L->seq < R.batch)
			continue;
		for (uint64_t k = 0; k < R.batch; k++) {
			uint64_t seq = L->seq - R.batch + 1 + k;
			uint64_t off = (seq - 1) % L->slots * VMM_REC_BYTES;

			gsc_rw16(&R.reqs[n], false, L->lun, off / L->bs, VMM_REC_BYTES / L->bs,
				 L->rbuf + k * VMM_REC_BYTES, VMM_REC_BYTES);
			R.reqs[n].tag = (uint64_t)i << 32 | k;
			n++;
		}
	}
	if (!n)
		return 0;
	if ((e = run_all(R.reqs, n)) < 0)
		return e;
	for (unsigned j = 0; j < n; j++) {
		struct rlun *L = &R.l[R.reqs[j].tag >> 32];
		uint64_t k = R.reqs[j].tag & 0xffffffffu;
		const struct vmm_rec *w = (const void *)(L->wbuf + k * VMM_REC_BYTES);
		const struct vmm_rec *r = (const void *)(L->rbuf + k * VMM_REC_BYTES);

		if (!L->active)
			continue;
		if (!gsc_ok(&R.reqs[j])) {
			drop_lun(L, "read", &R.reqs[j]);
			continue;
		}
		if (memcmp(w, r, VMM_REC_BYTES)) {
			R.mismatches++;
			rt_printf("records: MISMATCH lun %u sequence %llu at offset %llu: read back sequence %llu magic 0x%llx",
				  L->lun, (unsigned long long)w->seq,
				  (unsigned long long)w->offset, (unsigned long long)r->seq,
				  (unsigned long long)r->magic);
		} else {
			R.verified++;
		}
	}
	return (int)n;
}

/* One round: batch writes a LUN, then the reads. */
static int round_rw(void)
{
	unsigned n = 0;
	int e;

	for (int i = 0; i < GSC_MAX_LUNS; i++) {
		struct rlun *L = &R.l[i];

		if (!L->active)
			continue;
		for (uint64_t k = 0; k < R.batch; k++) {
			uint64_t seq = L->seq + 1 + k;
			uint8_t *b = L->wbuf + k * VMM_REC_BYTES;
			uint64_t off = (seq - 1) % L->slots * VMM_REC_BYTES;

			vmm_rec_fill(b, seq, L->slots, L->bs, L->lun, R.run_id);
			gsc_rw16(&R.reqs[n], true, L->lun, off / L->bs, VMM_REC_BYTES / L->bs, b,
				 VMM_REC_BYTES);
			R.reqs[n++].tag = (uint64_t)i;
		}
	}
	if (!n)
		return 0;
	if ((e = run_all(R.reqs, n)) < 0)
		return e;
	for (unsigned j = 0; j < n; j++) {
		struct rlun *L = &R.l[R.reqs[j].tag];

		if (L->active && !gsc_ok(&R.reqs[j]))
			drop_lun(L, "write", &R.reqs[j]);
	}
	for (int i = 0; i < GSC_MAX_LUNS; i++) {
		struct rlun *L = &R.l[i];

		if (!L->active)
			continue;
		L->seq += R.batch;
		R.written += R.batch;
	}
	return read_back();
}

/* SYNCHRONIZE CACHE on every active LUN; one line with what is flushed. */
static int flush_all(void)
{
	char line[1024];
	uint64_t upto[GSC_MAX_LUNS];
	unsigned n = 0, len;
	int e;

	for (int i = 0; i < GSC_MAX_LUNS; i++) {
		if (!R.l[i].active)
			continue;
		upto[i] = R.l[i].seq;
		gsc_sync_cache(&R.reqs[n], R.l[i].lun);
		R.reqs[n++].tag = (uint64_t)i;
	}
	if (!n)
		return 0;
	if ((e = run_all(R.reqs, n)) < 0)
		return e;
	memcpy(line, "records: flushed", 17);
	len = 16;
	for (unsigned j = 0; j < n; j++) {
		struct rlun *L = &R.l[R.reqs[j].tag];

		if (!gsc_ok(&R.reqs[j])) {
			if (L->active)
				drop_lun(L, "flush", &R.reqs[j]);
			continue;
		}
		L->flushed = upto[R.reqs[j].tag];
		/* " LUN:SEQ" */
		if (len + 32 < sizeof(line)) {
			char tmp[24];
			unsigned t = 0;
			uint64_t v = L->flushed;

			line[len++] = ' ';
			if (L->lun >= 10)
				line[len++] = (char)('0' + L->lun / 10);
			line[len++] = (char)('0' + L->lun % 10);
			line[len++] = ':';
			do {
				tmp[t++] = (char)('0' + v % 10);
				v /= 10;
			} while (v);
			while (t)
				line[len++] = tmp[--t];
		}
	}
	line[len] = '\0';
	rt_printf("%s", line);
	return 0;
}

/* The longest write stall since the last call (TSC ticks); R.stall_max
 * keeps the longest of all. */
static uint64_t stall_take(void)
{
	uint64_t v = gsc_write_gap_take();

	if (v > R.stall_max)
		R.stall_max = v;
	return v;
}

static unsigned long long us(uint64_t ticks)
{
	return (unsigned long long)(rt_ticks_ns(ticks) / 1000);
}

/* Between rounds: answer the host's VSS messages; a FREEZE is carried
 * out here (the round's writes completed: flush every LUN, answer);
 * *in_freeze is set when the guest froze. */
static int vss_step(bool *in_freeze, uint64_t *reads_at_freeze)
{
	int e = gvss_poll();

	if (e < 0)
		rt_printf("records: vss: the service failed (%d); the records go on", e);
	if (gvss_freeze_pending()) {
		uint64_t errs = R.io_errors;

		(void)stall_take();	/* stalls before the freeze are not its own */
		if ((e = flush_all()) < 0)
			return e;
		if (gvss_freeze_done(R.io_errors == errs) < 0)
			rt_printf("records: vss: could not answer FREEZE; the records go on");
		if (gvss_frozen()) {
			*in_freeze = true;
			*reads_at_freeze = R.frozen_reads;
			rt_printf("records: vss: frozen (freeze %u): writes stopped, every LUN flushed",
				  gvss_freezes());
		}
	}
	return 0;
}

static unsigned active_luns(void)
{
	unsigned n = 0;

	for (int i = 0; i < GSC_MAX_LUNS; i++)
		n += R.l[i].active;
	return n;
}

int w_records(const char *args)
{
	uint64_t seconds = 0, count = 0, flush_ms = 100, progress_ms = 1000;
	uint64_t t0, last_flush, last_prog, last_written = 0, reads_at_freeze = 0;
	bool in_freeze = false, thawed = false;
	enum gvss_mode vss;
	int e;

	R.qd = 8;
	R.batch = 16;
	R.slots = 4096;
	rt_arg(args, "seconds", &seconds);
	rt_arg(args, "count", &count);
	rt_arg(args, "qd", &R.qd);
	rt_arg(args, "batch", &R.batch);
	rt_arg(args, "slots", &R.slots);
	rt_arg(args, "flush_ms", &flush_ms);
	rt_arg(args, "progress_ms", &progress_ms);
	if (!R.qd || R.qd > GSC_MAX_INFLIGHT || !R.batch || R.batch > 256 || R.slots < R.batch) {
		rt_printf("records: want 1 <= qd <= %u, 1 <= batch <= 256, slots >= batch",
			  GSC_MAX_INFLIGHT);
		return 2;
	}
	if (!gvss_parse(args, &vss)) {
		rt_printf("records: vss= wants on, off, refuse or hang");
		return 2;
	}
	R.run_id = rt_rdtsc();
	R.reqs = gv_alloc(GSC_MAX_LUNS * R.batch * sizeof(struct gsc_req));
	if (!R.reqs)
		return 2;
	if ((e = gsc_init()) < 0 || (e = gvss_open(vss)) < 0 || (e = rescan()) < 0)
		return e == GV_E_STOP ? 0 : 1;
	rt_printf("records: %u LUN(s), qd %llu, batch %llu, run 0x%llx", active_luns(),
		  (unsigned long long)R.qd, (unsigned long long)R.batch,
		  (unsigned long long)R.run_id);
	t0 = last_flush = last_prog = gv_now_ns();
	for (;;) {
		uint64_t now = gv_now_ns();

		if (gv_stop_requested() || (seconds && now - t0 >= seconds * 1000000000ull) ||
		    (count && R.written >= count))
			break;
		if (gsc_rescans() != R.rescans_seen && (e = rescan()) < 0)
			break;
		if ((e = vss_step(&in_freeze, &reads_at_freeze)) < 0)
			break;
		if (in_freeze && !gvss_frozen()) {
			in_freeze = false;
			thawed = true;
		}
		if (!active_luns()) {
			/* nothing to write to: wait for a hot add or the stop */
			if ((e = gsc_idle()) < 0)
				break;
			continue;
		}
		if (gvss_frozen()) {
			/* frozen: no writes; reads go on */
			if ((e = read_back()) < 0)
				break;
			R.frozen_reads += (uint64_t)e;
			if (!e && (e = gsc_idle()) < 0)
				break;
			continue;
		}
		if ((e = round_rw()) < 0)
			break;
		if (thawed) {
			/* the first writes after the THAW completed: the stall is over */
			uint64_t st = stall_take();

			thawed = false;
			rt_printf("records: vss: thawed (freeze %u): %llu records read while frozen, writes stalled %llu us, longest stall %llu us",
				  gvss_freezes(),
				  (unsigned long long)(R.frozen_reads - reads_at_freeze), us(st),
				  us(R.stall_max));
		}
		now = gv_now_ns();
		if (now - last_flush >= flush_ms * 1000000ull) {
			if ((e = flush_all()) < 0)
				break;
			last_flush = now;
		}
		if (progress_ms && now - last_prog >= progress_ms * 1000000ull) {
			rt_printf("records: %llu written, %llu verified, %u LUN(s), %llu mismatches, %llu/s",
				  (unsigned long long)R.written, (unsigned long long)R.verified,
				  active_luns(), (unsigned long long)R.mismatches,
				  (unsigned long long)((R.written - last_written) * 1000000000ull /
						       (now - last_prog)));
			last_written = R.written;
			last_prog = now;
		}
	}
	if (e < 0 && e != GV_E_STOP) {
		rt_printf("records: the controller failed (%d)", e);
		return 1;
	}
	/* stop: the last round completed; make it durable */
	if ((e = flush_all()) < 0 && e != GV_E_STOP)
		return 1;
	(void)stall_take();
	rt_printf("records: stopped: %llu written, %llu verified, %llu mismatches, %llu I/O errors, "
		  "%u freezes, %u thaws, longest stall %llu us",
		  (unsigned long long)R.written, (unsigned long long)R.verified,
		  (unsigned long long)R.mismatches, (unsigned long long)R.io_errors,
		  gvss_freezes(), gvss_thaws(), us(R.stall_max));
	return R.mismatches ? 1 : 0;
}
