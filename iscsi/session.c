/* iscsi full feature phase: the PDU dispatch table, SCSI commands with
 * immediate, unsolicited and solicited (R2T) data, the writer thread that
 * answers completed commands (Data-In with status, SCSI Response), NOP,
 * Text (SendTargets), task management and logout.
 *
 * Threads and locks: the reader thread (this file's iscsi_ffp) owns input
 * and the tasks in state DATA_OUT; scsi completions (any thread) queue a
 * task on c->cq; the writer thread answers them and frees them.  c->mu
 * guards the task list, the queue, sequence numbers and the budget;
 * c->wlock (pdu.c) serialises sends and is taken before c->mu.
 *
 * Limits: at most ISCSI_CMD_WINDOW non-immediate commands live (MaxCmdSN
 * is ExpCmdSN - 1 + window - live, so a compliant initiator never exceeds
 * it, and commands outside the window are ignored as RFC 7143 4.2.2.1
 * says); at most ISCSI_MAX_IMMEDIATE_TASKS immediate ones; data buffers at
 * most s->max_buffer bytes, where a command that would wait for budget
 * held only by commands waiting for our own input gets BUSY instead of
 * deadlocking. */
#include "iscsi-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/util.h"

/* ---- windows, budget, task lifetime (c->mu) ---- */

/* Take n bytes of budget.  False when they cannot be had without waiting
 * for input (the caller answers BUSY). */
static bool budget_get(struct iscsi_conn *c, size_t n)
{
	bool ok;

	pthread_mutex_lock(&c->mu);
	while (c->bused + n > c->s->max_buffer && c->brun > 0)
		pthread_cond_wait(&c->cv, &c->mu);
	ok = c->bused + n <= c->s->max_buffer;
	if (ok)
		c->bused += n;
	pthread_mutex_unlock(&c->mu);
	if (ok)
		atomic_fetch_add(&c->s->buf_bytes, n);
	return ok;
}

/* Unlink tk and give back what it holds.  Called with c->mu held; the
 * caller frees tk after dropping the lock. */
static void task_unlink(struct iscsi_conn *c, struct iscsi_task *tk)
{
	for (struct iscsi_task **p = &c->tasks; *p; p = &(*p)->next)
		if (*p == tk) {
			*p = tk->next;
			break;
		}
	if (tk->state == ISCSI_T_RUNNING) {
		c->n_running--;
		c->brun -= tk->budget;
	}
	c->bused -= tk->budget;
	if (tk->immediate)
		c->n_imm--;
	else
		c->n_win--;
	pthread_cond_broadcast(&c->cv);
}

static void task_free(struct iscsi_conn *c, struct iscsi_task *tk)
{
	atomic_fetch_sub(&c->s->buf_bytes, tk->budget);
	free(tk->buf);
	free(tk);
}

static struct iscsi_task *task_find(struct iscsi_conn *c, uint32_t itt)
{
	for (struct iscsi_task *tk = c->tasks; tk; tk = tk->next)
		if (tk->itt == itt)
			return tk;
	return NULL;
}

/* ---- LUN field (SAM-5 4.7): single level, peripheral or flat ---- */

static uint32_t lun_decode(const uint8_t *l)
{
	for (int i = 2; i < 8; i++)
		if (l[i])
			return UINT32_MAX;
	switch (l[0] >> 6) {
	case 0:
		return l[0] ? UINT32_MAX : l[1];
	case 1:
		return (uint32_t)(l[0] & 0x3f) << 8 | l[1];
	default:
		return UINT32_MAX;
	}
}

/* ---- CmdSN ---- */

/* Check and take the CmdSN of a non-immediate request.  False: outside
 * the window or a duplicate, to be ignored. */
static bool cmdsn_take(struct iscsi_conn *c, uint32_t sn)
{
	bool ok;

	pthread_mutex_lock(&c->mu);
	ok = !iscsi_sn_lt(sn, c->exp_cmd_sn) && !iscsi_sn_lt(c->max_cmd_sn, sn);
	if (ok) {
		c->exp_cmd_sn = sn + 1;
	}
	pthread_mutex_unlock(&c->mu);
	return ok;
}

/* ---- answers (writer thread) ---- */

/* The residual count (big-endian) of tk; sets O or U in *flags. */
static uint32_t residual_of(const struct iscsi_task *tk, uint8_t *flags)
{
	/* scsi's residual is relative to the buffer; ours to the EDTL. */
	int64_t res = tk->sc.residual + (int64_t)tk->edtl - (int64_t)tk->iov.iov_len;

	if (res > 0) {
		*flags |= ISCSI_F_UNDERFLOW;
		return htobe32((uint32_t)UTIL_MIN(res, (int64_t)UINT32_MAX));
	}
	if (res < 0) {
		*flags |= ISCSI_F_OVERFLOW;
		return htobe32((uint32_t)UTIL_MIN(-res, (int64_t)UINT32_MAX));
	}
	return 0;
}

/* Send tk's Data-In PDUs and status.  Called with c->wlock held. */
static void answer(struct iscsi_conn *c, struct iscsi_task *tk)
{
	struct scsi_cmd *sc = &tk->sc;
	uint64_t len = sc->dir == SCSI_DIR_IN ? UTIL_MIN(sc->xfer_len, (uint64_t)tk->iov.iov_len) : 0;
	bool collapse = sc->status == SCSI_GOOD && sc->sense_len == 0 && len > 0;
	uint32_t data_sn = 0;
	struct iscsi_scsi_rsp r = { .op = ISCSI_OP_SCSI_RSP, .flags = 0x80 };
	uint8_t sbuf[2 + SCSI_SENSE_LEN], fl = 0;
	struct iovec iov;

	for (uint64_t off = 0; off < len;) {
		uint32_t burst_end = (uint32_t)UTIL_MIN(len, (off / c->max_burst + 1) * c->max_burst);
		uint32_t n = (uint32_t)UTIL_MIN((uint64_t)c->mrdsl_tx, burst_end - off);
		struct iscsi_data d = { .op = ISCSI_OP_DATA_IN };
		bool last = off + n == len;

		memcpy(d.lun, tk->lun_raw, 8);
		d.itt = tk->itt;
		d.ttt = ISCSI_RSVD_TAG;
		d.data_sn = htobe32(data_sn++);
		d.offset = htobe32((uint32_t)off);
		if (off + n == burst_end)
			d.flags |= ISCSI_F_FINAL;
		iscsi_set_dlen(&d, n);
		pthread_mutex_lock(&c->mu);
		if (last && collapse) {
			d.flags |= ISCSI_F_FINAL | ISCSI_F_STATUS;
			d.status = sc->status;
			d.residual = residual_of(tk, &fl);
			d.flags |= fl;
			d.stat_sn = htobe32(c->stat_sn++);
		}
		d.exp_sn = htobe32(c->exp_cmd_sn);
		d.max_cmd_sn = htobe32(iscsi_max_cmd_sn(c));
		pthread_mutex_unlock(&c->mu);
		iov = (struct iovec){ tk->buf + off, n };
		if (iscsi_send_pdu_locked(c, &d, &iov, 1))
			return;
		off += n;
	}
	if (collapse)
		return;
	r.status = sc->status;
	r.itt = tk->itt;
	fl = 0;
	r.residual = residual_of(tk, &fl);
	r.flags |= fl;
	r.exp_data_sn = htobe32(sc->dir == SCSI_DIR_IN ? data_sn : tk->r2t_sn);
	if (sc->sense_len) {
		util_put_be16(sbuf, sc->sense_len);
		memcpy(sbuf + 2, sc->sense, sc->sense_len);
		iov = (struct iovec){ sbuf, 2u + sc->sense_len };
		iscsi_set_dlen(&r, (uint32_t)iov.iov_len);
	}
	pthread_mutex_lock(&c->mu);
	r.stat_sn = htobe32(c->stat_sn++);
	r.exp_cmd_sn = htobe32(c->exp_cmd_sn);
	r.max_cmd_sn = htobe32(iscsi_max_cmd_sn(c));
	pthread_mutex_unlock(&c->mu);
	iscsi_send_pdu_locked(c, &r, &iov, sc->sense_len ? 1 : 0);
}

static void *writer_thread(void *arg)
{
	struct iscsi_conn *c = arg;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		struct iscsi_task *tk = c->cq;

		if (!tk) {
			if (c->wquit && !c->n_running)
				break;
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		c->cq = tk->cq_next;
		if (!c->cq)
			c->cq_tail = &c->cq;
		/* Decided under c->mu: either an ABORT TASK found it first (no
		 * response) or its response goes out and a later ABORT TASK
		 * finds no task (it must not answer FUNCTION COMPLETE for a
		 * command whose good status the initiator gets). */
		tk->answering = !tk->aborted;
		pthread_mutex_unlock(&c->mu);
		if (tk->answering) {
			pthread_mutex_lock(&c->wlock);
			answer(c, tk);
			pthread_mutex_unlock(&c->wlock);
		}
		pthread_mutex_lock(&c->mu);
		task_unlink(c, tk);
		pthread_mutex_unlock(&c->mu);
		task_free(c, tk);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* scsi's done(): any thread; queue for the writer. */
static void task_done(struct scsi_cmd *sc)
{
	struct iscsi_task *tk = sc->opaque;
	struct iscsi_conn *c = tk->c;

	pthread_mutex_lock(&c->mu);
	tk->cq_next = NULL;
	*c->cq_tail = tk;
	c->cq_tail = &tk->cq_next;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void task_submit(struct iscsi_conn *c, struct iscsi_task *tk)
{
	pthread_mutex_lock(&c->mu);
	tk->state = ISCSI_T_RUNNING;
	c->n_running++;
	c->brun += tk->budget;
	pthread_mutex_unlock(&c->mu);
	scsi_submit(c->s->t, &tk->sc);
}

/* Answer tk at once with a status of our own (no data moved). */
static void task_status(struct iscsi_conn *c, struct iscsi_task *tk,
			uint8_t status, uint8_t key, uint8_t asc, uint8_t ascq)
{
	tk->sc.status = status;
	if (key) {
		memset(tk->sc.sense, 0, sizeof(tk->sc.sense));
		tk->sc.sense[0] = 0x70;
		tk->sc.sense[2] = key;
		tk->sc.sense[7] = 10;
		tk->sc.sense[12] = asc;
		tk->sc.sense[13] = ascq;
		tk->sc.sense_len = SCSI_SENSE_LEN;
	}
	tk->sc.xfer_len = 0;
	tk->sc.residual = (int64_t)tk->iov.iov_len;
	tk->sc.dir = SCSI_DIR_NONE;
	pthread_mutex_lock(&c->mu);
	tk->state = ISCSI_T_RUNNING;
	c->n_running++;
	c->brun += tk->budget;
	pthread_mutex_unlock(&c->mu);
	task_done(&tk->sc);
}

/* ---- requests (reader thread) ---- */

struct req {
	struct iscsi_bhs *h;
	const uint8_t *ahs;
	size_t alen;
	uint32_t dlen;
	const uint8_t *data;       /* c->rx unless the handler reads its own */
};

static int send_r2t(struct iscsi_conn *c, struct iscsi_task *tk)
{
	struct iscsi_r2t r = { .op = ISCSI_OP_R2T, .flags = 0x80 };
	uint32_t len = UTIL_MIN(c->max_burst, tk->edtl - tk->received);

	memcpy(r.lun, tk->lun_raw, 8);
	r.itt = tk->itt;
	r.ttt = htobe32(tk->ttt);
	r.offset = htobe32(tk->received);
	r.length = htobe32(len);
	tk->burst_end = tk->received + len;
	tk->data_sn = 0;
	tk->in_sequence = true;
	r.r2t_sn = htobe32(tk->r2t_sn++);
	pthread_mutex_lock(&c->wlock);
	pthread_mutex_lock(&c->mu);
	r.stat_sn = htobe32(c->stat_sn);
	r.exp_cmd_sn = htobe32(c->exp_cmd_sn);
	r.max_cmd_sn = htobe32(iscsi_max_cmd_sn(c));
	pthread_mutex_unlock(&c->mu);
	iscsi_send_pdu_locked(c, &r, NULL, 0);
	pthread_mutex_unlock(&c->wlock);
	return 0;
}

/* After data arrived: submit when complete, else ask for more. */
static int write_progress(struct iscsi_conn *c, struct iscsi_task *tk)
{
	if (tk->received == tk->edtl) {
		task_submit(c, tk);
		return 0;
	}
	if (!tk->in_sequence)
		return send_r2t(c, tk);
	return 0;
}

/* Extended CDB AHS (type 1): CDB bytes beyond 16. */
static int ext_cdb(struct iscsi_conn *c, const struct req *q, struct scsi_cmd *sc)
{
	for (size_t i = 0; i + 4 <= q->alen;) {
		uint16_t l = util_get_be16(q->ahs + i);
		uint8_t type = q->ahs[i + 2];
		size_t step = 3 + (size_t)l;

		step = (step + 3) & ~(size_t)3;
		if (i + 3 + l > q->alen)
			return iscsi_proto_error(c, "AHS runs past its segment");
		if (type == 1 && l >= 1) {
			size_t n = UTIL_MIN((size_t)l - 1, sizeof(sc->cdb) - 16);

			memcpy(sc->cdb + 16, q->ahs + i + 4, n);
			sc->cdb_len = (uint8_t)(16 + n);
		}
		i += step;
	}
	return 0;
}

static int h_scsi_cmd(struct iscsi_conn *c, const struct req *q)
{
	struct iscsi_scsi_cmd *h = (struct iscsi_scsi_cmd *)q->h;
	bool imm = h->op & ISCSI_OP_IMMEDIATE;
	bool rd = h->flags & ISCSI_F_READ, wr = h->flags & ISCSI_F_WRITE;
	uint32_t edtl = be32toh(h->edtl), buflen;
	struct iscsi_task *tk;
	int r;

	if (c->discovery) {
		iscsi_send_reject(c, q->h, ISCSI_REJ_PROTOCOL);
		return iscsi_in_read(c, NULL, q->dlen + iscsi_pad4(q->dlen) +
				     (q->dlen && c->ddigest ? 4 : 0));
	}
	if (!imm && !cmdsn_take(c, be32toh(h->cmd_sn)))
		return iscsi_in_read(c, NULL, q->dlen + iscsi_pad4(q->dlen) +
				     (q->dlen && c->ddigest ? 4 : 0));
	if (q->dlen && (!wr || !c->immediate_data || q->dlen > c->first_burst ||
			q->dlen > edtl))
		return iscsi_proto_error(c, "immediate data of %u bytes not allowed "
					 "(EDTL %u, FirstBurstLength %u)", q->dlen,
					 edtl, c->first_burst);
	if (wr && edtl > ISCSI_MAX_XFER) {
		iscsi_send_reject(c, q->h, ISCSI_REJ_PROTOCOL);
		return iscsi_proto_error(c, "write of %u bytes (at most %u)", edtl,
					 ISCSI_MAX_XFER);
	}
	pthread_mutex_lock(&c->mu);
	if (imm && c->n_imm >= ISCSI_MAX_IMMEDIATE_TASKS) {
		pthread_mutex_unlock(&c->mu);
		iscsi_send_reject(c, q->h, ISCSI_REJ_IMM_REJECT);
		return iscsi_in_read(c, NULL, q->dlen + iscsi_pad4(q->dlen) +
				     (q->dlen && c->ddigest ? 4 : 0));
	}
	if (task_find(c, h->itt)) {
		pthread_mutex_unlock(&c->mu);
		iscsi_send_reject(c, q->h, ISCSI_REJ_TASK_IN_PROGRESS);
		return iscsi_proto_error(c, "ITT 0x%08x already in use", be32toh(h->itt));
	}
	pthread_mutex_unlock(&c->mu);
	atomic_fetch_add(&c->s->commands, 1);
	tk = calloc(1, sizeof(*tk));
	if (!tk)
		return -ENOMEM;
	tk->c = c;
	tk->itt = h->itt;
	tk->immediate = imm;
	tk->edtl = edtl;
	memcpy(tk->lun_raw, h->lun, 8);
	tk->lun = lun_decode(h->lun);
	tk->sc.lun = tk->lun;
	memcpy(tk->sc.cdb, h->cdb, 16);
	tk->sc.cdb_len = 16;
	tk->sc.dir = rd ? SCSI_DIR_IN : wr ? SCSI_DIR_OUT : SCSI_DIR_NONE;
	tk->sc.initiator = c->nexus;
	tk->sc.initiator_name = c->initiator;
	tk->sc.done = task_done;
	tk->sc.opaque = tk;
	tk->state = ISCSI_T_DATA_OUT;
	buflen = UTIL_MIN(edtl, ISCSI_MAX_XFER);
	pthread_mutex_lock(&c->mu);
	tk->ttt = c->next_ttt++;
	if (tk->ttt == ISCSI_RSVD_TAG)
		tk->ttt = c->next_ttt++;
	tk->next = c->tasks;
	c->tasks = tk;
	if (imm)
		c->n_imm++;
	else
		c->n_win++;
	pthread_mutex_unlock(&c->mu);
	if ((r = ext_cdb(c, q, &tk->sc)))
		return r;   /* the task goes with the connection */
	if (rd && wr) {
		task_status(c, tk, SCSI_CHECK_CONDITION, SCSI_SK_ILLEGAL_REQUEST, 0x24, 0);
		return iscsi_in_read(c, NULL, q->dlen + iscsi_pad4(q->dlen) +
				     (q->dlen && c->ddigest ? 4 : 0));
	}
	if (buflen && !budget_get(c, buflen)) {
		task_status(c, tk, SCSI_BUSY, 0, 0, 0);
		return iscsi_in_read(c, NULL, q->dlen + iscsi_pad4(q->dlen) +
				     (q->dlen && c->ddigest ? 4 : 0));
	}
	tk->budget = buflen;
	if (buflen && !(tk->buf = malloc(buflen)))
		return -ENOMEM;
	tk->iov = (struct iovec){ tk->buf, buflen };
	tk->sc.iov = &tk->iov;
	tk->sc.iovcnt = 1;
	if (!wr) {
		task_submit(c, tk);
		return 0;
	}
	if ((r = iscsi_read_data_to(c, tk->buf, q->dlen)))
		return r;
	tk->received = q->dlen;
	if (!c->initial_r2t && !(h->flags & ISCSI_F_FINAL) && tk->received < edtl) {
		/* Unsolicited Data-Out PDUs follow (DataSN from 0). */
		tk->in_sequence = true;
		tk->burst_end = UTIL_MIN(edtl, c->first_burst);
		if (tk->burst_end <= tk->received)
			return iscsi_proto_error(c, "F bit clear with FirstBurstLength "
						 "already sent");
		tk->ttt_unsolicited = true;
	}
	return write_progress(c, tk);
}

static int h_data_out(struct iscsi_conn *c, const struct req *q)
{
	struct iscsi_data *h = (struct iscsi_data *)q->h;
	uint32_t off = be32toh(h->offset), sn = be32toh(h->data_sn);
	uint32_t ttt = be32toh(h->ttt);
	struct iscsi_task *tk;
	int r;

	pthread_mutex_lock(&c->mu);
	tk = task_find(c, h->itt);
	if (tk && tk->state != ISCSI_T_DATA_OUT)
		tk = NULL;
	pthread_mutex_unlock(&c->mu);
	if (!tk)   /* an aborted task's data, or noise: drop it */
		return iscsi_in_read(c, NULL, q->dlen + iscsi_pad4(q->dlen) +
				     (q->dlen && c->ddigest ? 4 : 0));
	if (!tk->in_sequence)
		return iscsi_proto_error(c, "Data-Out for ITT 0x%08x without an R2T",
					 be32toh(h->itt));
	if (tk->ttt_unsolicited ? ttt != ISCSI_RSVD_TAG : ttt != tk->ttt)
		return iscsi_proto_error(c, "Data-Out TTT 0x%08x does not match", ttt);
	if (q->dlen > c->mrdsl_rx)
		return iscsi_proto_error(c, "Data-Out of %u bytes (MaxRecvDataSegmentLength %u)",
					 q->dlen, c->mrdsl_rx);
	if (q->dlen > tk->burst_end - tk->received)
		return iscsi_proto_error(c, "Data-Out of %u bytes at %u runs past the "
					 "burst ending at %u", q->dlen, tk->received,
					 tk->burst_end);
	if (!tk->datasn_error && sn != tk->data_sn) {
		/* RFC 7143 7.9: a Data-Out out of DataSN order means an
		 * earlier one was lost, an implied digest error (7.8).  At
		 * ErrorRecoveryLevel 0 there is no recovery R2T: the task
		 * ends with CHECK CONDITION "protocol service CRC error"
		 * once the sequence's last PDU (F bit) is in.  Until then the
		 * rest of the sequence is read and discarded, still bounded
		 * by the burst; the connection and its other tasks go on. */
		iscsi_logf(c, ISCSI_LOG_ERROR, "Data-Out DataSN %u for ITT 0x%08x, "
			   "expected %u; the command ends with CHECK CONDITION",
			   sn, be32toh(h->itt), tk->data_sn);
		tk->datasn_error = true;
	}
	if (!tk->datasn_error && off != tk->received)
		return iscsi_proto_error(c, "Data-Out offset %u, expected %u", off,
					 tk->received);
	/* In bounds: received + dlen <= burst_end <= EDTL, the buffer's size
	 * (after a DataSN error the bytes land there unused). */
	if ((r = iscsi_read_data_to(c, tk->buf + tk->received, q->dlen)))
		return r;
	tk->received += q->dlen;
	tk->data_sn++;
	if (h->flags & ISCSI_F_FINAL) {
		if (tk->datasn_error) {
			task_status(c, tk, SCSI_CHECK_CONDITION, SCSI_SK_ABORTED_COMMAND,
				    0x47, 0x05);
			return 0;
		}
		if (tk->received != tk->burst_end)
			return iscsi_proto_error(c, "Data-Out sequence ended at %u, "
						 "expected %u", tk->received, tk->burst_end);
		tk->in_sequence = false;
		tk->ttt_unsolicited = false;
		return write_progress(c, tk);
	}
	if (tk->received == tk->burst_end)
		return iscsi_proto_error(c, "Data-Out sequence complete without the F bit");
	return 0;
}

static int h_nop_out(struct iscsi_conn *c, const struct req *q)
{
	struct iscsi_bhs *h = q->h;
	struct iscsi_bhs in = { .op = ISCSI_OP_NOP_IN, .flags = 0x80 };
	struct iovec iov = { (void *)q->data, UTIL_MIN(q->dlen, c->mrdsl_tx) };
	int r;

	if (!(h->op & ISCSI_OP_IMMEDIATE) && !cmdsn_take(c, be32toh(h->w24)))
		return 0;
	if (h->itt == ISCSI_RSVD_TAG)
		return 0;   /* an answer to a NOP-In we never send, or a ping
			     * that wants no answer */
	memcpy(in.lun, h->lun, 8);
	in.itt = h->itt;
	in.w20 = ISCSI_RSVD_TAG;
	iscsi_set_dlen(&in, (uint32_t)iov.iov_len);
	pthread_mutex_lock(&c->wlock);
	pthread_mutex_lock(&c->mu);
	in.w24 = htobe32(c->stat_sn++);
	in.w28 = htobe32(c->exp_cmd_sn);
	in.w32 = htobe32(iscsi_max_cmd_sn(c));
	pthread_mutex_unlock(&c->mu);
	r = iscsi_send_pdu_locked(c, &in, &iov, iov.iov_len ? 1 : 0);
	pthread_mutex_unlock(&c->wlock);
	return r;
}

void iscsi_send_targets(struct iscsi_conn *c, const char *val,
			struct iscsi_text *out)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[64] = "127.0.0.1";
	unsigned port = ISCSI_DEFAULT_PORT;

	if (strcmp(val, "All") && strcmp(val, c->s->target_name) && *val)
		return;   /* not ours: an empty answer */
	if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			host[0] = '[';
			inet_ntop(AF_INET6, &a->sin6_addr, host + 1, sizeof(host) - 2);
			strcat(host, "]");
			port = ntohs(a->sin6_port);
		}
	}
	iscsi_text_add(out, "TargetName", "%s", c->s->target_name);
	iscsi_text_add(out, "TargetAddress", "%s:%u,1", host, port);
}

static int h_text(struct iscsi_conn *c, const struct req *q)
{
	struct iscsi_bhs *h = q->h;
	struct iscsi_bhs rsp = { .op = ISCSI_OP_TEXT_RSP, .flags = 0x80 };
	struct iscsi_kv kv[32];
	struct iscsi_text out = { 0 };
	struct iovec iov;
	int n, r;

	if (!(h->op & ISCSI_OP_IMMEDIATE) && !cmdsn_take(c, be32toh(h->w24)))
		return 0;
	if (h->flags & ISCSI_F_CONT) {
		iscsi_send_reject(c, h, ISCSI_REJ_UNSUPPORTED);
		return 0;
	}
	n = iscsi_kv_parse((char *)c->rx, q->dlen, kv, 32);
	if (n < 0) {
		iscsi_send_reject(c, h, ISCSI_REJ_INVALID_FIELD);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		if (!strcmp(kv[i].key, "SendTargets"))
			iscsi_send_targets(c, kv[i].val, &out);
		else
			iscsi_text_add(&out, kv[i].key, "NotUnderstood");
	}
	if (out.overflow || out.len > c->mrdsl_tx) {
		free(out.buf);
		iscsi_send_reject(c, h, ISCSI_REJ_OUT_OF_RESOURCES);
		return 0;
	}
	memcpy(rsp.lun, h->lun, 8);
	rsp.itt = h->itt;
	rsp.w20 = ISCSI_RSVD_TAG;
	iscsi_set_dlen(&rsp, (uint32_t)out.len);
	iov = (struct iovec){ out.buf, out.len };
	pthread_mutex_lock(&c->wlock);
	pthread_mutex_lock(&c->mu);
	rsp.w24 = htobe32(c->stat_sn++);
	rsp.w28 = htobe32(c->exp_cmd_sn);
	rsp.w32 = htobe32(iscsi_max_cmd_sn(c));
	pthread_mutex_unlock(&c->mu);
	r = iscsi_send_pdu_locked(c, &rsp, &iov, out.len ? 1 : 0);
	pthread_mutex_unlock(&c->wlock);
	free(out.buf);
	return r;
}

/* The session ends (I_T nexus loss): its RESERVE(6) goes.  Once, and
 * before a logout or cold reset is answered: an initiator that logs in
 * again with the same ISID is the same nexus, and must not have its new
 * reservation dropped by the end of the old connection. */
static void session_end(struct iscsi_conn *c)
{
	if (c->discovery || c->nexus_lost)
		return;
	c->nexus_lost = true;
	scsi_nexus_loss(c->s->t, c->nexus);
}

/* Abort the tasks that match (all: every task; else lun, or one itt):
 * tasks waiting for data go at once, running ones complete unanswered;
 * returns when none is left.  The number found. */
static int abort_tasks(struct iscsi_conn *c, bool all, uint32_t lun,
		       bool by_itt, uint32_t itt)
{
	struct iscsi_task *drop = NULL;
	int found = 0;

	pthread_mutex_lock(&c->mu);
	for (struct iscsi_task *tk = c->tasks, *nx; tk; tk = nx) {
		nx = tk->next;
		if (!all && (by_itt ? tk->itt != itt : tk->lun != lun))
			continue;
		if (tk->answering)	/* done: its response is on the way */
			continue;
		found++;
		if (tk->state == ISCSI_T_DATA_OUT) {
			task_unlink(c, tk);
			tk->cq_next = drop;
			drop = tk;
		} else {
			tk->aborted = true;
		}
	}
	for (;;) {
		bool left = false;

		for (struct iscsi_task *tk = c->tasks; tk && !left; tk = tk->next)
			left = tk->aborted;
		if (!left)
			break;
		pthread_cond_wait(&c->cv, &c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	while (drop) {
		struct iscsi_task *nx = drop->cq_next;

		task_free(c, drop);
		drop = nx;
	}
	return found;
}

static int h_tmf(struct iscsi_conn *c, const struct req *q)
{
	struct iscsi_tmf *h = (struct iscsi_tmf *)q->h;
	struct iscsi_bhs rsp = { .op = ISCSI_OP_TMF_RSP, .flags = 0x80 };
	uint8_t fn = h->function & 0x7f, result = ISCSI_TMF_RSP_COMPLETE;
	uint32_t lun = lun_decode(h->lun);
	int r;

	if (c->discovery) {
		iscsi_send_reject(c, q->h, ISCSI_REJ_PROTOCOL);
		return 0;
	}
	if (!(h->op & ISCSI_OP_IMMEDIATE) && !cmdsn_take(c, be32toh(h->cmd_sn)))
		return 0;
	switch (fn) {
	case ISCSI_TMF_ABORT_TASK:
		if (!abort_tasks(c, false, 0, true, h->ref_itt))
			result = ISCSI_TMF_RSP_NO_TASK;
		break;
	case ISCSI_TMF_ABORT_TASK_SET:
	case ISCSI_TMF_CLEAR_TASK_SET:
	case ISCSI_TMF_LUN_RESET:
		if (lun >= SCSI_MAX_LUNS) {
			result = ISCSI_TMF_RSP_NO_LUN;
			break;
		}
		abort_tasks(c, false, lun, false, 0);
		if (fn == ISCSI_TMF_LUN_RESET && scsi_lun_reset(c->s->t, lun))
			result = ISCSI_TMF_RSP_NO_LUN;
		break;
	case ISCSI_TMF_WARM_RESET:
	case ISCSI_TMF_COLD_RESET:
		/* This session's tasks end; every LUN is reset. */
		abort_tasks(c, true, 0, false, 0);
		for (uint32_t l = 0; l < SCSI_MAX_LUNS; l++)
			scsi_lun_reset(c->s->t, l);
		break;
	case ISCSI_TMF_CLEAR_ACA:
	case ISCSI_TMF_TASK_REASSIGN:
		result = ISCSI_TMF_RSP_NOT_SUPPORTED;
		break;
	default:
		result = ISCSI_TMF_RSP_REJECTED;
		break;
	}
	if (fn == ISCSI_TMF_COLD_RESET)
		session_end(c);
	rsp.b2 = result;
	rsp.itt = h->itt;
	pthread_mutex_lock(&c->wlock);
	pthread_mutex_lock(&c->mu);
	rsp.w24 = htobe32(c->stat_sn++);
	rsp.w28 = htobe32(c->exp_cmd_sn);
	rsp.w32 = htobe32(iscsi_max_cmd_sn(c));
	pthread_mutex_unlock(&c->mu);
	r = iscsi_send_pdu_locked(c, &rsp, NULL, 0);
	pthread_mutex_unlock(&c->wlock);
	if (!r && fn == ISCSI_TMF_COLD_RESET)
		return 1;   /* a cold reset ends the connection */
	return r;
}

/* Wait until every running task has been answered.  Tasks waiting for
 * data are dropped (the initiator asked to leave). */
static void drain_tasks(struct iscsi_conn *c)
{
	struct iscsi_task *drop = NULL;

	pthread_mutex_lock(&c->mu);
	for (struct iscsi_task *tk = c->tasks, *nx; tk; tk = nx) {
		nx = tk->next;
		if (tk->state == ISCSI_T_DATA_OUT) {
			task_unlink(c, tk);
			tk->cq_next = drop;
			drop = tk;
		}
	}
	while (c->tasks)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	while (drop) {
		struct iscsi_task *nx = drop->cq_next;

		task_free(c, drop);
		drop = nx;
	}
}

static int h_logout(struct iscsi_conn *c, const struct req *q)
{
	struct iscsi_bhs *h = q->h;
	struct iscsi_bhs rsp = { .op = ISCSI_OP_LOGOUT_RSP, .flags = 0x80 };
	uint8_t reason = h->flags & 0x7f;

	if (!(h->op & ISCSI_OP_IMMEDIATE) && !cmdsn_take(c, be32toh(h->w24)))
		return 0;
	drain_tasks(c);
	session_end(c);
	rsp.b2 = reason == 2 ? 2 : 0;   /* recovery: not supported at ERL 0 */
	rsp.itt = h->itt;
	pthread_mutex_lock(&c->wlock);
	pthread_mutex_lock(&c->mu);
	rsp.w24 = htobe32(c->stat_sn++);
	rsp.w28 = htobe32(c->exp_cmd_sn);
	rsp.w32 = htobe32(iscsi_max_cmd_sn(c));
	pthread_mutex_unlock(&c->mu);
	iscsi_send_pdu_locked(c, &rsp, NULL, 0);
	pthread_mutex_unlock(&c->wlock);
	iscsi_logf(c, ISCSI_LOG_INFO, "logout");
	return 1;
}

static int h_snack(struct iscsi_conn *c, const struct req *q)
{
	iscsi_send_reject(c, q->h, ISCSI_REJ_SNACK);   /* ERL 0 */
	return 0;
}

/* ---- dispatch ---- */

#define OWN_DATA 0x1   /* the handler reads the data segment itself */

struct pdu_op {
	uint8_t opcode;
	uint32_t max_dlen;         /* beyond: Reject (UINT32_MAX: MRDSL) */
	unsigned flags;
	int (*handler)(struct iscsi_conn *c, const struct req *q);
};

static const struct pdu_op pdu_ops[] = {
	{ ISCSI_OP_NOP_OUT,    UINT32_MAX, 0,        h_nop_out },
	{ ISCSI_OP_SCSI_CMD,   UINT32_MAX, OWN_DATA, h_scsi_cmd },
	{ ISCSI_OP_TMF_REQ,    0,          0,        h_tmf },
	{ ISCSI_OP_TEXT_REQ,   UINT32_MAX, 0,        h_text },
	{ ISCSI_OP_DATA_OUT,   UINT32_MAX, OWN_DATA, h_data_out },
	{ ISCSI_OP_LOGOUT_REQ, 0,          0,        h_logout },
	{ ISCSI_OP_SNACK,      0,          0,        h_snack },
};

static const struct pdu_op *op_find(uint8_t opcode)
{
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(pdu_ops); i++)
		if (pdu_ops[i].opcode == opcode)
			return &pdu_ops[i];
	return NULL;
}

int iscsi_ffp(struct iscsi_conn *c)
{
	int r = 0;

	c->mrdsl_rx = ISCSI_OUR_MRDSL;
	c->cq_tail = &c->cq;
	if (pthread_create(&c->writer, NULL, writer_thread, c))
		return -EAGAIN;
	c->writer_started = true;
	for (;;) {
		struct iscsi_bhs h;
		uint8_t ahs[1024];
		struct req q = { .h = &h, .ahs = ahs, .data = c->rx };
		const struct pdu_op *op;

		r = iscsi_read_header(c, &h, ahs, &q.alen);
		if (r) {
			if (r == -ENODATA)
				r = 0;
			break;
		}
		q.dlen = iscsi_dlen(&h);
		if (q.dlen > c->mrdsl_rx) {
			iscsi_send_reject(c, &h, ISCSI_REJ_PROTOCOL);
			r = iscsi_proto_error(c, "data segment of %u bytes "
					      "(MaxRecvDataSegmentLength %u)", q.dlen, c->mrdsl_rx);
			break;
		}
		op = op_find(h.op & ISCSI_OP_MASK);
		if (!op || q.dlen > op->max_dlen) {
			r = iscsi_in_read(c, NULL, q.dlen + iscsi_pad4(q.dlen) +
					  (q.dlen && c->ddigest ? 4 : 0));
			if (r)
				break;
			iscsi_send_reject(c, &h, op ? ISCSI_REJ_PROTOCOL : ISCSI_REJ_UNSUPPORTED);
			continue;
		}
		if (!(op->flags & OWN_DATA) && (r = iscsi_read_data(c, q.dlen)))
			break;
		r = op->handler(c, &q);
		if (r)
			break;
	}
	/* Answer what runs (a stop or a logout), drop what waits for data,
	 * then let the writer finish. */
	drain_tasks(c);
	pthread_mutex_lock(&c->mu);
	c->wquit = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->writer, NULL);
	c->writer_started = false;
	session_end(c);
	return r > 0 ? 0 : r;
}
