/* The target: LUNs, initiators and unit attentions, command submission
 * (dispatch through scsi_ops[]), and the task helpers the handlers share:
 * data-in/out copies, block request fan-out, completion. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

struct scsi_target *scsi_target_new(void)
{
	struct scsi_target *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	return t;
}

void scsi_target_free(struct scsi_target *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < SCSI_MAX_LUNS; i++)
		if (t->luns[i])
			scsi_lun_remove(t, i);
	free(t->itns);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* ---- unit attentions ---- */

void scsi_ua_raise(struct scsi_target *t, int lun, uint16_t ua)
{
	for (int i = 0; i < t->nitns; i++) {
		if (lun >= 0) {
			t->itns[i].ua[lun] |= ua;
			continue;
		}
		for (int l = 0; l < SCSI_MAX_LUNS; l++)
			t->itns[i].ua[l] |= ua;
	}
}

void scsi_ua_raise_itn(struct scsi_target *t, int lun, uint64_t itn,
		       uint16_t ua)
{
	for (int i = 0; i < t->nitns; i++)
		if (t->itns[i].id == itn)
			t->itns[i].ua[lun] |= ua;
}

/* The initiator's entry, added (with POWER ON on every LUN) when new;
 * NULL when the table is full (that initiator then sees no UAs). */
static struct scsi_itn *itn_get(struct scsi_target *t, uint64_t id)
{
	struct scsi_itn *n;

	for (int i = 0; i < t->nitns; i++)
		if (t->itns[i].id == id)
			return &t->itns[i];
	if (t->nitns >= SCSI_MAX_ITNS)
		return NULL;
	n = realloc(t->itns, (size_t)(t->nitns + 1) * sizeof(*n));
	if (!n)
		return NULL;
	t->itns = n;
	n = &t->itns[t->nitns++];
	n->id = id;
	for (int l = 0; l < SCSI_MAX_LUNS; l++)
		n->ua[l] = SCSI_UA_POWER_ON;
	return n;
}

static const struct { uint16_t bit; uint8_t asc, ascq; } ua_codes[] = {
	{ SCSI_UA_POWER_ON, 0x29, 0x00 },
	{ SCSI_UA_RESET, 0x29, 0x03 },
	{ SCSI_UA_NEXUS_LOSS, 0x29, 0x07 },
	{ SCSI_UA_CAPACITY, 0x2A, 0x09 },
	{ SCSI_UA_LUNS_CHANGED, 0x3F, 0x0E },
	{ SCSI_UA_MODE_CHANGED, 0x2A, 0x01 },
	{ SCSI_UA_RESV_PREEMPTED, 0x2A, 0x03 },
	{ SCSI_UA_RESV_RELEASED, 0x2A, 0x04 },
	{ SCSI_UA_REGS_PREEMPTED, 0x2A, 0x05 },
};

bool scsi_ua_take(struct scsi_task *tk, uint8_t *asc, uint8_t *ascq)
{
	struct scsi_itn *n = itn_get(tk->t, tk->cmd->initiator);
	uint32_t l = tk->cmd->lun;

	if (!n || l >= SCSI_MAX_LUNS || !n->ua[l])
		return false;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(ua_codes); i++) {
		if (n->ua[l] & ua_codes[i].bit) {
			/* A power-on makes the other conditions moot. */
			if (ua_codes[i].bit == SCSI_UA_POWER_ON)
				n->ua[l] = 0;
			n->ua[l] &= (uint16_t)~ua_codes[i].bit;
			*asc = ua_codes[i].asc;
			*ascq = ua_codes[i].ascq;
			return true;
		}
	}
	return false;
}

/* ---- LUNs ---- */

int scsi_lun_add(struct scsi_target *t, uint32_t lun, struct bdev *bd,
		 unsigned flags)
{
	struct scsi_lun *l;
	uint32_t bs = bd->limits.logical_block;

	if (lun >= SCSI_MAX_LUNS || (bs != 512 && bs != 4096))
		return -EINVAL;
	if (flags & SCSI_LUN_4K) {
		if (bd->size % 4096)
			return -EINVAL;
		bs = 4096;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->bd = bd;
	l->num = lun;
	l->ro = flags & SCSI_LUN_READ_ONLY;
	l->bs = bs;
	l->phys = UTIL_MAX(bd->limits.physical_block, bs);
	l->wce = true;
	pthread_mutex_lock(&t->mu);
	if (t->luns[lun]) {
		pthread_mutex_unlock(&t->mu);
		free(l);
		return -EEXIST;
	}
	l->blocks = scsi_lun_blocks(l);
	scsi_ua_raise(t, -1, SCSI_UA_LUNS_CHANGED);
	scsi_ua_raise(t, (int)lun, SCSI_UA_POWER_ON);
	t->luns[lun] = l;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

int scsi_lun_remove(struct scsi_target *t, uint32_t lun)
{
	struct scsi_lun *l;

	if (lun >= SCSI_MAX_LUNS)
		return -ENOENT;
	pthread_mutex_lock(&t->mu);
	l = t->luns[lun];
	if (!l) {
		pthread_mutex_unlock(&t->mu);
		return -ENOENT;
	}
	t->luns[lun] = NULL;
	l->removed = true;
	scsi_ua_raise(t, -1, SCSI_UA_LUNS_CHANGED);
	while (l->inflight)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
	free(l);
	return 0;
}

int scsi_lun_reset(struct scsi_target *t, uint32_t lun)
{
	struct scsi_lun *l;

	if (lun >= SCSI_MAX_LUNS)
		return -ENOENT;
	pthread_mutex_lock(&t->mu);
	l = t->luns[lun];
	if (l) {
		l->pr.spc2 = false;
		l->wce = true;
		scsi_ua_raise(t, (int)lun, SCSI_UA_RESET);
	}
	pthread_mutex_unlock(&t->mu);
	return l ? 0 : -ENOENT;
}

void scsi_nexus_loss(struct scsi_target *t, uint64_t initiator)
{
	pthread_mutex_lock(&t->mu);
	for (int l = 0; l < SCSI_MAX_LUNS; l++) {
		if (!t->luns[l])
			continue;
		if (t->luns[l]->pr.spc2 && t->luns[l]->pr.spc2_holder == initiator)
			t->luns[l]->pr.spc2 = false;
		scsi_ua_raise_itn(t, l, initiator, SCSI_UA_NEXUS_LOSS);
	}
	pthread_mutex_unlock(&t->mu);
}

/* ---- task completion ---- */

void scsi_task_finish(struct scsi_task *tk)
{
	struct scsi_cmd *c = tk->cmd;
	struct scsi_target *t = tk->t;
	struct scsi_lun *l = tk->lun;

	scsi_rlock_release(tk);
	c->xfer_len = tk->moved;
	c->residual = (int64_t)tk->avail - (int64_t)tk->want;
	if (l) {
		pthread_mutex_lock(&t->mu);
		/* Removed while it ran: whatever happened, it failed. */
		if (l->removed) {
			c->status = SCSI_CHECK_CONDITION;
			scsi_sense_fill(c->sense, SCSI_SK_ILLEGAL_REQUEST, 0x25, 0);
			c->sense_len = SCSI_SENSE_LEN;
		}
		if (--l->inflight == 0 && l->removed)
			pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->mu);
	}
	if (tk->rqs != &tk->rq1)
		free(tk->rqs);
	free(tk->buf);
	free(tk->iov);
	free(tk);
	c->done(c);
}

void scsi_task_good(struct scsi_task *tk)
{
	tk->cmd->status = SCSI_GOOD;
	tk->cmd->sense_len = 0;
	scsi_task_finish(tk);
}

/* Copy len bytes into the command's iovec at byte 0 (as far as it goes);
 * returns the bytes copied. */
static size_t iov_copy(const struct scsi_cmd *c, void *p, size_t len, bool to)
{
	size_t done = 0;

	for (int i = 0; i < c->iovcnt && done < len; i++) {
		size_t n = UTIL_MIN(c->iov[i].iov_len, len - done);

		if (to)
			memcpy(c->iov[i].iov_base, (uint8_t *)p + done, n);
		else
			memcpy((uint8_t *)p + done, c->iov[i].iov_base, n);
		done += n;
	}
	return done;
}

void scsi_task_data_in(struct scsi_task *tk, const void *data, size_t len,
		       size_t alloc)
{
	tk->want = UTIL_MIN(len, alloc);
	tk->moved = iov_copy(tk->cmd, (void *)data,
			     UTIL_MIN(tk->want, scsi_task_room(tk, SCSI_DIR_IN)), true);
	scsi_task_good(tk);
}

size_t scsi_task_data_out(struct scsi_task *tk, void *dst, size_t len)
{
	tk->want = len;
	tk->moved = iov_copy(tk->cmd, dst,
			     UTIL_MIN(len, scsi_task_room(tk, SCSI_DIR_OUT)), false);
	return tk->moved;
}

bool scsi_task_trim_iov(struct scsi_task *tk, uint64_t len)
{
	const struct scsi_cmd *c = tk->cmd;
	uint64_t left = len;
	int n = 0;

	tk->iov = calloc((size_t)(c->iovcnt ? c->iovcnt : 1), sizeof(*tk->iov));
	if (!tk->iov) {
		scsi_fail_status(tk, SCSI_BUSY);
		return false;
	}
	for (int i = 0; i < c->iovcnt && left; i++) {
		size_t k = (size_t)UTIL_MIN((uint64_t)c->iov[i].iov_len, left);

		if (!k)
			continue;
		tk->iov[n].iov_base = c->iov[i].iov_base;
		tk->iov[n++].iov_len = k;
		left -= k;
	}
	tk->iovcnt = n;
	return true;
}

bool scsi_check_out_len(struct scsi_task *tk, uint64_t len, int byte)
{
	if (scsi_task_room(tk, SCSI_DIR_OUT) == len && (len || !tk->avail))
		return true;
	tk->want = len;
	scsi_fail_cdb(tk, byte, -1);
	return false;
}

/* ---- block request fan-out ---- */

bool scsi_task_reqs(struct scsi_task *tk, int n)
{
	if (n == 1) {
		memset(&tk->rq1, 0, sizeof(tk->rq1));
		tk->rqs = &tk->rq1;
	} else {
		tk->rqs = calloc((size_t)n, sizeof(*tk->rqs));
		if (!tk->rqs) {
			tk->rqs = &tk->rq1;
			scsi_fail_status(tk, SCSI_BUSY);
			return false;
		}
	}
	tk->nrq = n;
	return true;
}

static void task_put(struct scsi_task *tk)
{
	if (__atomic_sub_fetch(&tk->pending, 1, __ATOMIC_ACQ_REL) == 0) {
		if (tk->rqs != &tk->rq1)
			free(tk->rqs);
		tk->rqs = &tk->rq1;
		tk->nrq = 0;
		tk->next(tk);
	}
}

static void rq_done(struct bdev_req *rq)
{
	struct scsi_task *tk = rq->opaque;

	if (rq->status) {
		enum bdev_ec none = BDEV_EC_OK;

		__atomic_compare_exchange_n(&tk->ec, &none,
			rq->ec ? rq->ec : BDEV_EC_MEDIUM, false,
			__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	}
	task_put(tk);
}

void scsi_task_submit(struct scsi_task *tk, void (*next)(struct scsi_task *))
{
	int n = tk->nrq;

	tk->next = next;
	tk->ec = BDEV_EC_OK;
	/* One extra reference while submitting: a request completing before
	 * bdev_submit() returns must not end the task under our feet. */
	__atomic_store_n(&tk->pending, n + 1, __ATOMIC_RELEASE);
	for (int i = 0; i < n; i++) {
		tk->rqs[i].done = rq_done;
		tk->rqs[i].opaque = tk;
		bdev_submit(tk->lun->bd, &tk->rqs[i]);
	}
	task_put(tk);
}

void scsi_task_end_io(struct scsi_task *tk)
{
	if (tk->ec)
		scsi_fail_ec(tk, tk->ec);
	else
		scsi_task_good(tk);
}

/* ---- common checks ---- */

bool scsi_check_range(struct scsi_task *tk, uint64_t lba, uint64_t n)
{
	if (!util_range_ok(lba, n, scsi_lun_blocks(tk->lun))) {
		scsi_fail_range(tk);
		return false;
	}
	return true;
}

bool scsi_check_wp(struct scsi_task *tk)
{
	if (scsi_lun_ro(tk->lun)) {
		scsi_fail(tk, SCSI_SK_DATA_PROTECT, 0x27, 0x00);
		return true;
	}
	return false;
}

/* ---- submission ---- */

static const struct scsi_op *op_find(const uint8_t *cdb, bool *sa_bad)
{
	bool seen = false;

	for (size_t i = 0; i < scsi_nops; i++) {
		const struct scsi_op *o = &scsi_ops[i];

		if (o->opcode != cdb[0])
			continue;
		seen = true;
		if (o->sa < 0 || o->sa == (cdb[1] & 0x1f))
			return o;
	}
	*sa_bad = seen;
	return NULL;
}

static uint64_t iov_total(const struct scsi_cmd *c)
{
	uint64_t n = 0;

	for (int i = 0; i < c->iovcnt; i++)
		n += c->iov[i].iov_len;
	return n;
}

/* The checks every command passes before its handler, with t->mu held:
 * LUN present, unit attention, reservation conflict.  False when tk was
 * answered (the caller finishes it after unlocking). */
static bool precheck(struct scsi_task *tk)
{
	struct scsi_cmd *c = tk->cmd;
	uint8_t asc, ascq;

	if (!tk->lun && !(tk->op->flags & SCSI_OPF_NO_LUN)) {
		c->status = SCSI_CHECK_CONDITION;
		scsi_sense_fill(c->sense, SCSI_SK_ILLEGAL_REQUEST, 0x25, 0);
		c->sense_len = SCSI_SENSE_LEN;
		return false;
	}
	if (tk->lun && tk->lun->blocks != scsi_lun_blocks(tk->lun)) {
		tk->lun->blocks = scsi_lun_blocks(tk->lun);
		scsi_ua_raise(tk->t, (int)tk->lun->num, SCSI_UA_CAPACITY);
	}
	if (!(tk->op->flags & SCSI_OPF_NO_UA) && scsi_ua_take(tk, &asc, &ascq)) {
		c->status = SCSI_CHECK_CONDITION;
		scsi_sense_fill(c->sense, SCSI_SK_UNIT_ATTENTION, asc, ascq);
		c->sense_len = SCSI_SENSE_LEN;
		return false;
	}
	if (tk->lun && scsi_pr_conflict(tk)) {
		c->status = SCSI_RESERVATION_CONFLICT;
		c->sense_len = 0;
		return false;
	}
	return true;
}

/* The CDB's control byte: NACA (bit 2) is not supported. */
static bool control_ok(struct scsi_task *tk)
{
	if (tk->cdb[tk->op->cdb_len - 1] & 0x04) {
		scsi_fail_cdb(tk, tk->op->cdb_len - 1, 2);
		return false;
	}
	return true;
}

void scsi_submit(struct scsi_target *t, struct scsi_cmd *c)
{
	struct scsi_task *tk = calloc(1, sizeof(*tk));
	bool sa_bad = false, go;

	c->status = SCSI_GOOD;
	c->sense_len = 0;
	if (!tk) {
		c->status = SCSI_BUSY;
		c->xfer_len = 0;
		c->residual = (int64_t)iov_total(c);
		c->done(c);
		return;
	}
	tk->cmd = c;
	tk->t = t;
	tk->cdb = c->cdb;
	tk->rqs = &tk->rq1;
	tk->avail = iov_total(c);
	if (c->cdb_len == 0 || c->cdb_len > sizeof(c->cdb)) {
		scsi_fail_cdb(tk, 0, -1);
		return;
	}
	tk->op = op_find(c->cdb, &sa_bad);
	if (!tk->op) {
		if (sa_bad)
			scsi_fail_cdb(tk, 1, 4);
		else
			scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x20, 0x00);
		return;
	}
	/* The one length check: handlers may read cdb[0..cdb_len). */
	if (c->cdb_len < tk->op->cdb_len) {
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x24, 0x00);
		return;
	}
	pthread_mutex_lock(&t->mu);
	if (c->lun < SCSI_MAX_LUNS && t->luns[c->lun]) {
		tk->lun = t->luns[c->lun];
		tk->lun->inflight++;
	}
	go = precheck(tk);
	pthread_mutex_unlock(&t->mu);
	if (!go) {
		scsi_task_finish(tk);
		return;
	}
	if (control_ok(tk))
		tk->op->handler(tk);
}
