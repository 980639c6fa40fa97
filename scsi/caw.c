/* COMPARE AND WRITE (SBC-3 5.2) and the per-LUN range locks that make it
 * atomic: it holds its range exclusively from the read through the write,
 * while every write, WRITE SAME and UNMAP holds its range shared. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

/* ---- range locks ---- */

static bool overlap(const struct scsi_rlock *a, const struct scsi_rlock *b)
{
	return a->lba < b->lba + b->n && b->lba < a->lba + a->n;
}

/* Whether r may run: no entry queued before it overlaps and conflicts
 * (FIFO among overlapping entries, so a COMPARE AND WRITE is not starved
 * by a stream of writes).  Called with t->mu held. */
static bool grantable(const struct scsi_lun *l, const struct scsi_rlock *r)
{
	for (const struct scsi_rlock *e = l->locks; e && e != r; e = e->next)
		if ((e->excl || r->excl) && overlap(e, r))
			return false;
	return true;
}

void scsi_rlock_acquire(struct scsi_task *tk, uint64_t lba, uint64_t n,
			bool excl, void (*cont)(struct scsi_task *))
{
	struct scsi_lun *l = tk->lun;
	struct scsi_rlock *r = &tk->rl, **pp;
	bool now;

	*r = (struct scsi_rlock){ .lba = lba, .n = n ? n : 1, .excl = excl,
				  .cont = cont, .tk = tk, .queued = true };
	pthread_mutex_lock(&tk->t->mu);
	for (pp = &l->locks; *pp; pp = &(*pp)->next)
		;
	*pp = r;
	now = r->granted = grantable(l, r);
	pthread_mutex_unlock(&tk->t->mu);
	/* Decided under the lock: once it is dropped, a release on another
	 * thread may grant r and run cont itself, so r->granted read here
	 * would run the task twice. */
	if (now)
		cont(tk);
}

void scsi_rlock_release(struct scsi_task *tk)
{
	struct scsi_lun *l = tk->lun;
	struct scsi_rlock *r = &tk->rl, **pp, *run = NULL, **tail = &run;

	if (!r->queued)
		return;
	pthread_mutex_lock(&tk->t->mu);
	for (pp = &l->locks; *pp != r; pp = &(*pp)->next)
		;
	*pp = r->next;
	r->queued = false;
	/* Waiters that may go now, in queue order; they stay queued (and
	 * keep blocking later conflicting entries) until they finish. */
	for (struct scsi_rlock *e = l->locks; e; e = e->next) {
		if (e->granted || !grantable(l, e))
			continue;
		e->granted = true;
		e->run_next = NULL;
		*tail = e;
		tail = &e->run_next;
	}
	pthread_mutex_unlock(&tk->t->mu);
	while (run) {
		struct scsi_rlock *e = run;

		run = e->run_next;   /* read before cont: it may finish e's task */
		e->cont(e->tk);
	}
}

/* ---- COMPARE AND WRITE ----
 * tk->buf holds three runs of len bytes: the verify data and the write
 * data (the data-out buffer), then what the medium held. */

static void caw_io(struct scsi_task *tk, enum bdev_op op, uint8_t *p,
		   void (*next)(struct scsi_task *))
{
	uint64_t len = tk->nblocks * tk->lun->bs;

	tk->iov[0] = (struct iovec){ p, len };
	if (!scsi_task_reqs(tk, 1))
		return;
	tk->rqs[0] = (struct bdev_req){ .op = op,
		.flags = op == BDEV_OP_WRITE ? tk->wflags : 0,
		.off = tk->lba * tk->lun->bs, .len = len, .iov = tk->iov,
		.iovcnt = 1 };
	scsi_task_submit(tk, next);
}

static void caw_compare(struct scsi_task *tk)
{
	uint64_t len = tk->nblocks * tk->lun->bs;
	const uint8_t *medium = tk->buf + 2 * len;

	if (tk->ec) {
		tk->is_write = false;
		scsi_fail_ec(tk, tk->ec);
		return;
	}
	for (uint64_t i = 0; i < len; i++) {
		if (medium[i] != tk->buf[i]) {
			scsi_fail_miscompare(tk, i);
			return;
		}
	}
	caw_io(tk, BDEV_OP_WRITE, tk->buf + len, scsi_task_end_io);
}

/* Runs with the range held exclusively. */
static void caw_read(struct scsi_task *tk)
{
	caw_io(tk, BDEV_OP_READ, tk->buf + 2 * tk->nblocks * tk->lun->bs,
	       caw_compare);
}

void scsi_h_caw(struct scsi_task *tk)
{
	uint32_t bs = tk->lun->bs;
	uint64_t len;

	tk->is_write = true;
	tk->lba = util_get_be64(tk->cdb + 2);
	tk->nblocks = tk->cdb[13];
	if (tk->cdb[1] & 0xe0) {
		scsi_fail_cdb(tk, 1, 7);                 /* WRPROTECT */
		return;
	}
	if (tk->nblocks > UTIL_MIN(SCSI_MAX_CAW_BLOCKS, SCSI_MAX_CAW_BYTES / bs)) {
		scsi_fail_cdb(tk, 13, -1);
		return;
	}
	if (!scsi_check_range(tk, tk->lba, tk->nblocks ? tk->nblocks : 1) ||
	    scsi_check_wp(tk))
		return;
	/* The buffer holds the verify and the write data, nothing else (a
	 * zero-block command has none): libiscsi's InvalidDataOutSize, and
	 * Simple, whose 256 blocks wrap to 0 in the one-byte field. */
	len = tk->nblocks * bs;
	if (!scsi_check_out_len(tk, 2 * len, 13))
		return;
	if (!tk->nblocks) {
		scsi_task_good(tk);
		return;
	}
	if (tk->cdb[1] & 0x08 || !__atomic_load_n(&tk->lun->wce, __ATOMIC_RELAXED))
		tk->wflags = BDEV_FUA;
	tk->buf = malloc(3 * len);
	tk->iov = malloc(sizeof(*tk->iov));
	if (!tk->buf || !tk->iov) {
		scsi_fail_status(tk, SCSI_BUSY);
		return;
	}
	scsi_task_data_out(tk, tk->buf, 2 * len);   /* all of it: checked */
	scsi_rlock_acquire(tk, tk->lba, tk->nblocks, true, caw_read);
}
