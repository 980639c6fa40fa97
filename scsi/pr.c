/* Reservations: RESERVE(6)/RELEASE(6) and PERSISTENT RESERVE IN/OUT
 * (SPC-4 5.13, 6.15-6.16), and the conflict rules every other command is
 * checked against.  State lives in lun->pr under t->mu; it is not kept
 * across restarts (APTPL is refused). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "scsi/scsi-int.h"

enum {
	PR_WE = 1, PR_EA = 3, PR_WE_RO = 5, PR_EA_RO = 6, PR_WE_AR = 7,
	PR_EA_AR = 8,
};

/* PERSISTENT RESERVE OUT parameter list (basic form). */
struct scsi_prout_param {
	uint8_t key[8];        /* RESERVATION KEY */
	uint8_t sakey[8];      /* SERVICE ACTION RESERVATION KEY */
	uint8_t obsolete[4];
	uint8_t flags;         /* bit 3 SPEC_I_PT, 2 ALL_TG_PT, 0 APTPL */
	uint8_t reserved;
	uint8_t obsolete2[2];
} __attribute__((packed));

_Static_assert(sizeof(struct scsi_prout_param) == 24, "PR OUT parameters");
_Static_assert(offsetof(struct scsi_prout_param, flags) == 20, "flags");

static bool type_ok(uint8_t type)
{
	return type == PR_WE || type == PR_EA || type == PR_WE_RO ||
	       type == PR_EA_RO || type == PR_WE_AR || type == PR_EA_AR;
}

static bool all_regs(uint8_t type)
{
	return type == PR_WE_AR || type == PR_EA_AR;
}

static bool regs_only(uint8_t type)
{
	return type == PR_WE_RO || type == PR_EA_RO;
}

static bool excl_access(uint8_t type)
{
	return type == PR_EA || type == PR_EA_RO || type == PR_EA_AR;
}

static struct scsi_pr_reg *reg_find(struct scsi_pr *pr, uint64_t itn)
{
	for (int i = 0; i < pr->nregs; i++)
		if (pr->regs[i].itn == itn)
			return &pr->regs[i];
	return NULL;
}

static bool is_holder(struct scsi_pr *pr, uint64_t itn)
{
	return pr->resv && (all_regs(pr->type) ? reg_find(pr, itn) != NULL
					       : pr->holder == itn);
}

bool scsi_pr_conflict(struct scsi_task *tk)
{
	struct scsi_pr *pr = &tk->lun->pr;
	uint64_t itn = tk->cmd->initiator;
	unsigned f = tk->op->flags;
	uint8_t opc = tk->op->opcode;

	if (pr->spc2 && pr->spc2_holder != itn)
		return !(f & SCSI_OPF_SPC2_OK);
	if (!pr->resv)
		return false;
	if (opc == 0x16 || opc == 0x17)          /* RESERVE/RELEASE(6) */
		return true;
	if ((f & SCSI_OPF_PR_OK) || is_holder(pr, itn))
		return false;
	if (regs_only(pr->type) && reg_find(pr, itn))
		return false;
	if (f & SCSI_OPF_WRITE)
		return true;
	return (f & SCSI_OPF_READ) && excl_access(pr->type);
}

/* ---- RESERVE(6) / RELEASE(6) ---- */

void scsi_h_reserve6(struct scsi_task *tk)
{
	struct scsi_pr *pr = &tk->lun->pr;
	bool ok;

	if (tk->cdb[1] & 0x1f) {                 /* 3rdPty, extents */
		scsi_fail_cdb(tk, 1, -1);
		return;
	}
	pthread_mutex_lock(&tk->t->mu);
	ok = !pr->resv && (!pr->spc2 || pr->spc2_holder == tk->cmd->initiator);
	if (ok) {
		pr->spc2 = true;
		pr->spc2_holder = tk->cmd->initiator;
	}
	pthread_mutex_unlock(&tk->t->mu);
	if (ok)
		scsi_task_good(tk);
	else
		scsi_fail_status(tk, SCSI_RESERVATION_CONFLICT);
}

/* Only the holder releases; anyone else's RELEASE is a GOOD no-op. */
void scsi_h_release6(struct scsi_task *tk)
{
	struct scsi_pr *pr = &tk->lun->pr;

	if (tk->cdb[1] & 0x1f) {
		scsi_fail_cdb(tk, 1, -1);
		return;
	}
	pthread_mutex_lock(&tk->t->mu);
	if (pr->spc2 && pr->spc2_holder == tk->cmd->initiator)
		pr->spc2 = false;
	pthread_mutex_unlock(&tk->t->mu);
	scsi_task_good(tk);
}

/* ---- PERSISTENT RESERVE IN ---- */

#define PRIN_MAX (8 + SCSI_PR_MAX_REGS * (24 + 4 + 228))

static size_t prin_keys(struct scsi_pr *pr, uint8_t *p)
{
	size_t n = 8;

	for (int i = 0; i < pr->nregs; i++, n += 8)
		util_put_be64(p + n, pr->regs[i].key);
	util_put_be32(p + 4, (uint32_t)(n - 8));
	return n;
}

static size_t prin_resv(struct scsi_pr *pr, uint8_t *p)
{
	struct scsi_pr_reg *h = pr->resv ? reg_find(pr, pr->holder) : NULL;

	if (!pr->resv)
		return 8;
	util_put_be32(p + 4, 16);
	if (!all_regs(pr->type) && h)
		util_put_be64(p + 8, h->key);
	p[8 + 13] = pr->type;                     /* scope LU (0) | type */
	return 24;
}

/* REPORT CAPABILITIES: its header replaces the generation. */
static size_t prin_caps(struct scsi_pr *pr, uint8_t *p)
{
	util_put_be16(p, 8);
	p[2] = 0x10;                              /* CRH */
	p[3] = 0x80 | 0x10;                       /* TMV, allow commands 1 */
	p[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;  /* WR_EX_AR EX_AC_RO
	                                           * WR_EX_RO EX_AC WR_EX */
	p[5] = 0x01;                              /* EX_AC_AR */
	return 8;
}

/* An iSCSI TransportID (SPC-4 7.6.4.6) for a registration: the name
 * given with its commands, else "host.initiator.<id in hex>". */
static size_t transport_id(const struct scsi_pr_reg *r, uint8_t *p)
{
	char name[224];
	size_t n;

	if (r->name[0])
		snprintf(name, sizeof(name), "%s", r->name);
	else
		snprintf(name, sizeof(name), "host.initiator.%016llx",
			 (unsigned long long)r->itn);
	n = strlen(name) + 1;
	n = (n + 3) & ~(size_t)3;
	if (n < 16)
		n = 16;
	memset(p, 0, 4 + n);
	p[0] = 0x05;                              /* iSCSI, format 0 */
	util_put_be16(p + 2, (uint16_t)n);
	memcpy(p + 4, name, strlen(name));
	return 4 + n;
}

static size_t prin_full(struct scsi_pr *pr, uint8_t *p)
{
	size_t n = 8;

	for (int i = 0; i < pr->nregs; i++) {
		const struct scsi_pr_reg *r = &pr->regs[i];
		uint8_t *d = p + n;
		size_t tl;

		memset(d, 0, 24);
		util_put_be64(d, r->key);
		if (is_holder(pr, r->itn)) {
			d[12] = 0x01;                 /* R_HOLDER */
			d[13] = pr->type;
		}
		tl = transport_id(r, d + 24);
		util_put_be32(d + 20, (uint32_t)tl);
		n += 24 + tl;
	}
	util_put_be32(p + 4, (uint32_t)(n - 8));
	return n;
}

void scsi_h_pr_in(struct scsi_task *tk)
{
	static size_t (*const fill[])(struct scsi_pr *, uint8_t *) = {
		prin_keys, prin_resv, prin_caps, prin_full,
	};
	struct scsi_pr *pr = &tk->lun->pr;
	unsigned sa = tk->cdb[1] & 0x1f;     /* 0..3: the table has no others */
	uint8_t *p = calloc(1, PRIN_MAX);
	size_t n;

	if (!p) {
		scsi_fail_status(tk, SCSI_BUSY);
		return;
	}
	pthread_mutex_lock(&tk->t->mu);
	util_put_be32(p, pr->gen);
	n = fill[sa](pr, p);
	pthread_mutex_unlock(&tk->t->mu);
	scsi_task_data_in(tk, p, n, util_get_be16(tk->cdb + 7));
	free(p);
}

/* ---- PERSISTENT RESERVE OUT ---- */

enum pr_res {
	PR_DONE, PR_CONFLICT, PR_BAD_TYPE, PR_BAD_SCOPE, PR_NO_ROOM,
	PR_BAD_RELEASE, PR_BAD_SAKEY,
};

struct prout {
	struct scsi_task *tk;
	struct scsi_pr *pr;
	uint64_t itn, key, sakey;
	uint8_t scope, type;
	struct scsi_pr_reg *me;      /* this nexus's registration, or NULL */
};

/* Remove registration r (the reservation goes with its holder; when the
 * last registrant of an all-registrants reservation goes, so does it). */
static void reg_remove(struct prout *o, struct scsi_pr_reg *r, uint16_t ua)
{
	struct scsi_pr *pr = o->pr;
	uint64_t itn = r->itn;
	int i = (int)(r - pr->regs);

	if (ua)
		scsi_ua_raise_itn(o->tk->t, (int)o->tk->lun->num, itn, ua);
	memmove(&pr->regs[i], &pr->regs[i + 1],
		(size_t)(pr->nregs - i - 1) * sizeof(*r));
	pr->nregs--;
	if (pr->resv && (all_regs(pr->type) ? pr->nregs == 0 : pr->holder == itn))
		pr->resv = false;
}

static enum pr_res do_register(struct prout *o, bool ignore)
{
	struct scsi_pr *pr = o->pr;

	if (!o->me) {
		if (!ignore && o->key)
			return PR_CONFLICT;
		if (!o->sakey)
			return PR_DONE;
		if (pr->nregs >= SCSI_PR_MAX_REGS)
			return PR_NO_ROOM;
		o->me = &pr->regs[pr->nregs++];
		memset(o->me, 0, sizeof(*o->me));
		o->me->itn = o->itn;
		if (o->tk->cmd->initiator_name)
			snprintf(o->me->name, sizeof(o->me->name), "%s",
				 o->tk->cmd->initiator_name);
	} else if (!ignore && o->key != o->me->key) {
		return PR_CONFLICT;
	}
	if (o->sakey)
		o->me->key = o->sakey;
	else
		reg_remove(o, o->me, 0);
	pr->gen++;
	return PR_DONE;
}

static enum pr_res do_reserve(struct prout *o)
{
	struct scsi_pr *pr = o->pr;

	if (pr->resv)
		return is_holder(pr, o->itn) && pr->type == o->type ? PR_DONE
								   : PR_CONFLICT;
	pr->resv = true;
	pr->type = o->type;
	pr->holder = o->itn;
	return PR_DONE;
}

/* Registrants other than this nexus get ua. */
static void ua_others(struct prout *o, uint16_t ua)
{
	for (int i = 0; i < o->pr->nregs; i++)
		if (o->pr->regs[i].itn != o->itn)
			scsi_ua_raise_itn(o->tk->t, (int)o->tk->lun->num,
					  o->pr->regs[i].itn, ua);
}

static enum pr_res do_release(struct prout *o)
{
	struct scsi_pr *pr = o->pr;

	if (!pr->resv || !is_holder(pr, o->itn))
		return PR_DONE;
	if (pr->type != o->type)
		return PR_BAD_RELEASE;
	pr->resv = false;
	if (pr->type != PR_WE && pr->type != PR_EA)
		ua_others(o, SCSI_UA_RESV_RELEASED);
	return PR_DONE;
}

static enum pr_res do_clear(struct prout *o)
{
	ua_others(o, SCSI_UA_RESV_PREEMPTED);
	o->pr->nregs = 0;
	o->pr->resv = false;
	o->pr->gen++;
	return PR_DONE;
}

/* Remove the registrations holding key (not this nexus's); how many. */
static int remove_key(struct prout *o, uint64_t key)
{
	struct scsi_pr *pr = o->pr;
	int n = 0;

	for (int i = 0; i < pr->nregs;) {
		if (pr->regs[i].key == key && pr->regs[i].itn != o->itn) {
			reg_remove(o, &pr->regs[i], SCSI_UA_REGS_PREEMPTED);
			n++;
		} else {
			i++;
		}
	}
	return n;
}

static enum pr_res do_preempt(struct prout *o)
{
	struct scsi_pr *pr = o->pr;
	struct scsi_pr_reg *h = pr->resv && !all_regs(pr->type)
				? reg_find(pr, pr->holder) : NULL;
	bool take = false;

	if (pr->resv && all_regs(pr->type) && !o->sakey) {
		for (int i = pr->nregs - 1; i >= 0; i--)
			if (pr->regs[i].itn != o->itn)
				reg_remove(o, &pr->regs[i], SCSI_UA_REGS_PREEMPTED);
		take = true;
	} else if (h && h->key == o->sakey) {
		remove_key(o, o->sakey);
		take = true;
	} else {
		if (!o->sakey)
			return PR_BAD_SAKEY;
		if (!remove_key(o, o->sakey))
			return PR_CONFLICT;
	}
	if (take) {
		ua_others(o, SCSI_UA_RESV_PREEMPTED);
		pr->resv = true;
		pr->type = o->type;
		pr->holder = o->itn;
	}
	pr->gen++;
	return PR_DONE;
}

/* Run service action sa with t->mu held. */
static enum pr_res prout_run(struct prout *o, unsigned sa)
{
	bool needs_type = sa == 1 || sa == 2 || sa == 4 || sa == 5;

	if (sa != 0 && sa != 6 && (!o->me || o->me->key != o->key))
		return PR_CONFLICT;
	if (needs_type && o->scope)
		return PR_BAD_SCOPE;
	if (needs_type && !type_ok(o->type))
		return PR_BAD_TYPE;
	switch (sa) {
	case 0: return do_register(o, false);
	case 1: return do_reserve(o);
	case 2: return do_release(o);
	case 3: return do_clear(o);
	case 4:                                   /* PREEMPT */
	case 5: return do_preempt(o);             /* PREEMPT AND ABORT */
	default: return do_register(o, true);     /* 6: REGISTER AND IGNORE */
	}
}

void scsi_h_pr_out(struct scsi_task *tk)
{
	struct scsi_prout_param prm;
	struct prout o = { .tk = tk, .pr = &tk->lun->pr,
			   .itn = tk->cmd->initiator,
			   .scope = tk->cdb[2] >> 4, .type = tk->cdb[2] & 0x0f };
	enum pr_res r;

	if (util_get_be32(tk->cdb + 5) != sizeof(prm) ||
	    scsi_task_data_out(tk, &prm, sizeof(prm)) < sizeof(prm)) {
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x1A, 0x00);
		return;
	}
	if (prm.flags & 0x0d) {                   /* SPEC_I_PT, ALL_TG_PT, APTPL */
		scsi_fail_param(tk, 20, (prm.flags & 0x01) ? 0
				: (prm.flags & 0x08) ? 3 : 2);
		return;
	}
	o.key = util_get_be64(prm.key);
	o.sakey = util_get_be64(prm.sakey);
	pthread_mutex_lock(&tk->t->mu);
	o.me = reg_find(o.pr, o.itn);
	r = prout_run(&o, tk->cdb[1] & 0x1f);
	pthread_mutex_unlock(&tk->t->mu);
	switch (r) {
	case PR_DONE: scsi_task_good(tk); break;
	case PR_CONFLICT: scsi_fail_status(tk, SCSI_RESERVATION_CONFLICT); break;
	case PR_BAD_TYPE: scsi_fail_cdb(tk, 2, 3); break;
	case PR_BAD_SCOPE: scsi_fail_cdb(tk, 2, 7); break;
	case PR_NO_ROOM: /* INSUFFICIENT REGISTRATION RESOURCES */
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x55, 0x04); break;
	case PR_BAD_RELEASE: /* INVALID RELEASE OF PERSISTENT RESERVATION */
		scsi_fail(tk, SCSI_SK_ILLEGAL_REQUEST, 0x26, 0x04); break;
	case PR_BAD_SAKEY: scsi_fail_param(tk, 8, -1); break;
	}
}
