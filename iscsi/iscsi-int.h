/* iscsi internals: wire formats (RFC 7143 section 11), the server,
 * connection and task structures, and the functions the files of iscsi/
 * share.  Not for use outside iscsi/.
 *
 * Every multi-byte field on the wire is big-endian; the structs below keep
 * them as byte arrays or uint32_t read with be32toh, never as host
 * integers. */
#ifndef ISCSI_INT_H
#define ISCSI_INT_H

#include <endian.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/listen.h"
#include "iscsi/iscsi.h"
#include "scsi/scsi.h"

/* ---- opcodes (byte 0, low 6 bits; 0x40 = immediate) ---- */
#define ISCSI_OP_IMMEDIATE   0x40
#define ISCSI_OP_MASK        0x3f
/* initiator */
#define ISCSI_OP_NOP_OUT     0x00
#define ISCSI_OP_SCSI_CMD    0x01
#define ISCSI_OP_TMF_REQ     0x02
#define ISCSI_OP_LOGIN_REQ   0x03
#define ISCSI_OP_TEXT_REQ    0x04
#define ISCSI_OP_DATA_OUT    0x05
#define ISCSI_OP_LOGOUT_REQ  0x06
#define ISCSI_OP_SNACK       0x10
/* target */
#define ISCSI_OP_NOP_IN      0x20
#define ISCSI_OP_SCSI_RSP    0x21
#define ISCSI_OP_TMF_RSP     0x22
#define ISCSI_OP_LOGIN_RSP   0x23
#define ISCSI_OP_TEXT_RSP    0x24
#define ISCSI_OP_DATA_IN     0x25
#define ISCSI_OP_LOGOUT_RSP  0x26
#define ISCSI_OP_R2T         0x31
#define ISCSI_OP_REJECT      0x3f

/* flags (byte 1) */
#define ISCSI_F_FINAL        0x80   /* F; Login/Text: T (transit) */
#define ISCSI_F_CONT         0x40   /* Login/Text: C (continue) */
#define ISCSI_F_READ         0x40   /* SCSI Command: R */
#define ISCSI_F_WRITE        0x20   /* SCSI Command: W */
#define ISCSI_F_ATTR_MASK    0x07
#define ISCSI_F_ACK          0x40   /* Data-In: A */
#define ISCSI_F_OVERFLOW     0x04   /* Data-In, Response: O */
#define ISCSI_F_UNDERFLOW    0x02   /* Data-In, Response: U */
#define ISCSI_F_STATUS       0x01   /* Data-In: S */

#define ISCSI_RSVD_TAG       0xffffffffu

/* Reject reasons (11.17.1) */
#define ISCSI_REJ_DIGEST      0x02
#define ISCSI_REJ_SNACK       0x03
#define ISCSI_REJ_PROTOCOL    0x04
#define ISCSI_REJ_UNSUPPORTED 0x05
#define ISCSI_REJ_IMM_REJECT  0x06
#define ISCSI_REJ_TASK_IN_PROGRESS 0x07
#define ISCSI_REJ_INVALID_DATA_ACK 0x08
#define ISCSI_REJ_INVALID_FIELD 0x09
#define ISCSI_REJ_OUT_OF_RESOURCES 0x0a
#define ISCSI_REJ_WAITING_LOGOUT 0x0c

/* Task management functions (11.5.1) and responses (11.6.1) */
#define ISCSI_TMF_ABORT_TASK      1
#define ISCSI_TMF_ABORT_TASK_SET  2
#define ISCSI_TMF_CLEAR_ACA       3
#define ISCSI_TMF_CLEAR_TASK_SET  4
#define ISCSI_TMF_LUN_RESET       5
#define ISCSI_TMF_WARM_RESET      6
#define ISCSI_TMF_COLD_RESET      7
#define ISCSI_TMF_TASK_REASSIGN   8
#define ISCSI_TMF_RSP_COMPLETE    0
#define ISCSI_TMF_RSP_NO_TASK     1
#define ISCSI_TMF_RSP_NO_LUN      2
#define ISCSI_TMF_RSP_NOT_SUPPORTED 5
#define ISCSI_TMF_RSP_REJECTED    255

/* Login status (11.13.5): class << 8 | detail */
#define ISCSI_LOGIN_OK            0x0000
#define ISCSI_LOGIN_AUTH_FAILED   0x0201
#define ISCSI_LOGIN_FORBIDDEN     0x0202
#define ISCSI_LOGIN_NOT_FOUND     0x0203
#define ISCSI_LOGIN_INIT_ERROR    0x0200
#define ISCSI_LOGIN_UNSUPPORTED_VERSION 0x0205
#define ISCSI_LOGIN_MISSING_PARAM 0x0207
#define ISCSI_LOGIN_NO_SESSION    0x020a
#define ISCSI_LOGIN_INVALID_REQ   0x020b
#define ISCSI_LOGIN_TARGET_ERROR  0x0300
#define ISCSI_LOGIN_NO_RESOURCES  0x0302

/* Login stages (CSG/NSG) */
#define ISCSI_STAGE_SECURITY  0
#define ISCSI_STAGE_OPERATIONAL 1
#define ISCSI_STAGE_FULL      3

#define ISCSI_BHS_LEN          48
#define ISCSI_LOGIN_MRDSL      8192          /* during login (RFC default) */
#define ISCSI_OUR_MRDSL        (256u << 10)  /* what we declare we receive */
#define ISCSI_MAX_BURST        (16u << 20)   /* what we offer */
#define ISCSI_MAX_LOGIN_TEXT   (64u << 10)   /* login text over C-bit PDUs */
#define ISCSI_MAX_IMMEDIATE_TASKS 16         /* immediate commands in flight */
#define ISCSI_RBUF_SIZE        (64u << 10)

/* ---- wire structs ---- */

/* The Basic Header Segment common to every PDU (11.2.1). */
struct iscsi_bhs {
	uint8_t op;          /*  0: I bit | opcode */
	uint8_t flags;       /*  1: F bit and opcode-specific */
	uint8_t b2, b3;      /*  2: opcode-specific */
	uint8_t ahs_len;     /*  4: TotalAHSLength, 4-byte words */
	uint8_t dlen[3];     /*  5: DataSegmentLength (24-bit) */
	uint8_t lun[8];      /*  8: LUN or opcode-specific */
	uint32_t itt;        /* 16: Initiator Task Tag */
	uint32_t w20;        /* 20: TTT, CID, RefTaskTag... */
	uint32_t w24;        /* 24: CmdSN or StatSN */
	uint32_t w28;        /* 28: ExpStatSN or ExpCmdSN */
	uint32_t w32;        /* 32: MaxCmdSN, EDTL part, RefCmdSN... */
	uint32_t w36;        /* 36: DataSN, R2TSN, ExpDataSN... */
	uint32_t w40;        /* 40: Buffer Offset... */
	uint32_t w44;        /* 44: Residual Count, Desired length... */
} __attribute__((packed));
_Static_assert(sizeof(struct iscsi_bhs) == ISCSI_BHS_LEN, "BHS is 48 bytes");
_Static_assert(offsetof(struct iscsi_bhs, ahs_len) == 4, "TotalAHSLength");
_Static_assert(offsetof(struct iscsi_bhs, itt) == 16, "ITT");
_Static_assert(offsetof(struct iscsi_bhs, w44) == 44, "word 44");

/* SCSI Command (11.3). */
struct iscsi_scsi_cmd {
	uint8_t op;          /*  0: 0x01 | I */
	uint8_t flags;       /*  1: F R W ATTR */
	uint8_t rsvd2[2];
	uint8_t ahs_len;     /*  4 */
	uint8_t dlen[3];     /*  5: immediate data */
	uint8_t lun[8];      /*  8 */
	uint32_t itt;        /* 16 */
	uint32_t edtl;       /* 20: Expected Data Transfer Length */
	uint32_t cmd_sn;     /* 24 */
	uint32_t exp_stat_sn;/* 28 */
	uint8_t cdb[16];     /* 32 */
} __attribute__((packed));
_Static_assert(sizeof(struct iscsi_scsi_cmd) == ISCSI_BHS_LEN, "SCSI Command");
_Static_assert(offsetof(struct iscsi_scsi_cmd, edtl) == 20, "EDTL");
_Static_assert(offsetof(struct iscsi_scsi_cmd, cdb) == 32, "CDB");

/* SCSI Data-Out (11.7) and Data-In (11.8). */
struct iscsi_data {
	uint8_t op;          /*  0: 0x05 / 0x25 */
	uint8_t flags;       /*  1: F; Data-In: A O U S */
	uint8_t rsvd2;
	uint8_t status;      /*  3: Data-In with S: SCSI status */
	uint8_t ahs_len;     /*  4 */
	uint8_t dlen[3];     /*  5 */
	uint8_t lun[8];      /*  8 */
	uint32_t itt;        /* 16 */
	uint32_t ttt;        /* 20: Target Transfer Tag */
	uint32_t stat_sn;    /* 24: Data-In with S (Data-Out: reserved) */
	uint32_t exp_sn;     /* 28: Data-In: ExpCmdSN; Data-Out: ExpStatSN */
	uint32_t max_cmd_sn; /* 32: Data-In only */
	uint32_t data_sn;    /* 36 */
	uint32_t offset;     /* 40: Buffer Offset */
	uint32_t residual;   /* 44: Data-In with S */
} __attribute__((packed));
_Static_assert(sizeof(struct iscsi_data) == ISCSI_BHS_LEN, "Data PDU");
_Static_assert(offsetof(struct iscsi_data, data_sn) == 36, "DataSN");
_Static_assert(offsetof(struct iscsi_data, offset) == 40, "Buffer Offset");

/* SCSI Response (11.4). */
struct iscsi_scsi_rsp {
	uint8_t op;          /*  0: 0x21 */
	uint8_t flags;       /*  1: 0x80 | o u O U */
	uint8_t response;    /*  2: 0 = completed at target */
	uint8_t status;      /*  3: SCSI status */
	uint8_t ahs_len;
	uint8_t dlen[3];     /*  5: sense data segment */
	uint8_t rsvd8[8];
	uint32_t itt;        /* 16 */
	uint32_t snack_tag;  /* 20 */
	uint32_t stat_sn;    /* 24 */
	uint32_t exp_cmd_sn; /* 28 */
	uint32_t max_cmd_sn; /* 32 */
	uint32_t exp_data_sn;/* 36 */
	uint32_t bidi_residual; /* 40 */
	uint32_t residual;   /* 44 */
} __attribute__((packed));
_Static_assert(sizeof(struct iscsi_scsi_rsp) == ISCSI_BHS_LEN, "SCSI Response");
_Static_assert(offsetof(struct iscsi_scsi_rsp, residual) == 44, "Residual");

/* Ready To Transfer (11.8). */
struct iscsi_r2t {
	uint8_t op;          /*  0: 0x31 */
	uint8_t flags;       /*  1: 0x80 */
	uint8_t rsvd2[2];
	uint8_t ahs_len;
	uint8_t dlen[3];     /*  5: 0 */
	uint8_t lun[8];
	uint32_t itt;        /* 16 */
	uint32_t ttt;        /* 20 */
	uint32_t stat_sn;    /* 24: next StatSN (not advanced) */
	uint32_t exp_cmd_sn; /* 28 */
	uint32_t max_cmd_sn; /* 32 */
	uint32_t r2t_sn;     /* 36 */
	uint32_t offset;     /* 40: Buffer Offset */
	uint32_t length;     /* 44: Desired Data Transfer Length */
} __attribute__((packed));
_Static_assert(sizeof(struct iscsi_r2t) == ISCSI_BHS_LEN, "R2T");
_Static_assert(offsetof(struct iscsi_r2t, r2t_sn) == 36, "R2TSN");

/* Login Request (11.12) and Response (11.13). */
struct iscsi_login {
	uint8_t op;          /*  0: 0x43 / 0x23 */
	uint8_t flags;       /*  1: T C CSG(2) NSG(2) */
	uint8_t ver_max;     /*  2 */
	uint8_t ver_x;       /*  3: request VersionMin, response VersionActive */
	uint8_t ahs_len;
	uint8_t dlen[3];
	uint8_t isid[6];     /*  8 */
	uint16_t tsih;       /* 14 */
	uint32_t itt;        /* 16 */
	uint16_t cid;        /* 20: request only */
	uint16_t rsvd22;
	uint32_t sn1;        /* 24: request CmdSN, response StatSN */
	uint32_t sn2;        /* 28: request ExpStatSN, response ExpCmdSN */
	uint32_t max_cmd_sn; /* 32: response */
	uint8_t status_class;/* 36: response */
	uint8_t status_detail;
	uint8_t rsvd38[10];
} __attribute__((packed));
_Static_assert(sizeof(struct iscsi_login) == ISCSI_BHS_LEN, "Login");
_Static_assert(offsetof(struct iscsi_login, tsih) == 14, "TSIH");
_Static_assert(offsetof(struct iscsi_login, status_class) == 36, "Status-Class");

/* Task Management Function Request (11.5). */
struct iscsi_tmf {
	uint8_t op;          /*  0: 0x02 | I */
	uint8_t function;    /*  1: 0x80 | function */
	uint8_t rsvd2[2];
	uint8_t ahs_len;
	uint8_t dlen[3];
	uint8_t lun[8];
	uint32_t itt;        /* 16 */
	uint32_t ref_itt;    /* 20: Referenced Task Tag */
	uint32_t cmd_sn;     /* 24 */
	uint32_t exp_stat_sn;/* 28 */
	uint32_t ref_cmd_sn; /* 32 */
	uint32_t exp_data_sn;/* 36 */
	uint8_t rsvd40[8];
} __attribute__((packed));
_Static_assert(sizeof(struct iscsi_tmf) == ISCSI_BHS_LEN, "TMF");
_Static_assert(offsetof(struct iscsi_tmf, ref_cmd_sn) == 32, "RefCmdSN");

/* Reject (11.17). */
struct iscsi_reject {
	uint8_t op;          /*  0: 0x3f */
	uint8_t flags;       /*  1: 0x80 */
	uint8_t reason;      /*  2 */
	uint8_t rsvd3;
	uint8_t ahs_len;
	uint8_t dlen[3];     /*  5: 48 (the rejected header) */
	uint8_t rsvd8[8];
	uint32_t tag;        /* 16: 0xffffffff */
	uint32_t rsvd20;
	uint32_t stat_sn;    /* 24 */
	uint32_t exp_cmd_sn; /* 28 */
	uint32_t max_cmd_sn; /* 32 */
	uint32_t data_sn;    /* 36 */
	uint8_t rsvd40[8];
} __attribute__((packed));
_Static_assert(sizeof(struct iscsi_reject) == ISCSI_BHS_LEN, "Reject");

static inline uint32_t iscsi_dlen(const void *bhs)
{
	const uint8_t *p = (const uint8_t *)bhs + 5;

	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static inline void iscsi_set_dlen(void *bhs, uint32_t n)
{
	uint8_t *p = (uint8_t *)bhs + 5;

	p[0] = (uint8_t)(n >> 16);
	p[1] = (uint8_t)(n >> 8);
	p[2] = (uint8_t)n;
}

static inline uint32_t iscsi_pad4(uint32_t n)
{
	return (4 - (n & 3)) & 3;
}

/* Serial number arithmetic (RFC 1982, 32 bits): a < b. */
static inline bool iscsi_sn_lt(uint32_t a, uint32_t b)
{
	return a != b && (int32_t)(a - b) < 0;
}

/* ---- state ---- */

struct iscsi_conn;

/* A SCSI command of a session, from its SCSI Command PDU until its
 * response is sent (or it is aborted).  Lives in c->tasks. */
struct iscsi_task {
	struct scsi_cmd sc;
	struct iscsi_conn *c;
	uint32_t itt;
	uint32_t ttt;            /* our tag for its R2Ts */
	uint32_t lun;
	uint8_t lun_raw[8];
	bool immediate;          /* counted in c->n_imm, not the window */
	enum { ISCSI_T_DATA_OUT, ISCSI_T_RUNNING } state;
	bool aborted;            /* no response: a TMF ended it */
	bool answering;          /* completed and its response being sent: a
	                          * TMF no longer finds it (c->mu) */
	uint8_t *buf;            /* EDTL bytes (or fewer, see task_new) */
	uint32_t edtl;
	size_t budget;           /* bytes of c's budget held */
	struct iovec iov;
	/* Data-Out progress (DataPDUInOrder, DataSequenceInOrder). */
	uint32_t received;       /* bytes received, in order */
	uint32_t burst_end;      /* end offset of the current sequence */
	uint32_t data_sn;        /* next DataSN expected in the sequence */
	uint32_t r2t_sn;         /* next R2TSN */
	bool in_sequence;        /* a sequence (unsolicited or R2T) is open */
	bool ttt_unsolicited;    /* the open sequence is the unsolicited one */
	bool datasn_error;       /* a DataSN was wrong: discard the rest of the
				  * sequence, then CHECK CONDITION */
	struct iscsi_task *next; /* c->tasks */
	struct iscsi_task *cq_next; /* c->cq */
};

struct iscsi_srv {
	struct scsi_target *t;
	char *target_name;
	char *chap_user, *chap_secret;
	size_t max_buffer;
	unsigned login_ms;
	iscsi_log_fn log;
	void *log_opaque;

	/* Sockets, accept loop, connection list and counters (common/listen);
	 * its lock also guards logins and next_tsih. */
	struct listen ls;
	uint64_t logins;
	uint16_t next_tsih;
	atomic_uint_fast64_t commands, buf_bytes;
};

struct iscsi_conn {
	struct listen_conn lc;     /* id, thread; the socket closed by listen */
	struct iscsi_srv *s;
	int fd;                    /* lc.fd, open while the connection is served */

	/* Input: the reader thread only. */
	uint8_t *rbuf;
	size_t rpos, rend;
	uint64_t deadline;         /* monotonic ms input must arrive by; 0 */
	uint8_t *rx;               /* a PDU's data segment (+pad +digest) */
	size_t rx_size;

	/* Login results; constant in full feature phase. */
	bool ffp, discovery;
	bool nexus_lost;           /* scsi_nexus_loss() called */
	bool hdigest, ddigest;
	uint32_t mrdsl_tx;         /* the initiator's MaxRecvDataSegmentLength */
	uint32_t mrdsl_rx;         /* ours */
	uint32_t max_burst, first_burst;
	bool immediate_data, initial_r2t;
	char initiator[224];
	uint8_t isid[6];
	uint16_t tsih;
	uint64_t nexus;

	/* Session state: mu. */
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* writer: cq; reader: tasks ending, budget */
	uint32_t stat_sn;          /* next StatSN */
	uint32_t exp_cmd_sn, max_cmd_sn;
	unsigned n_win, n_imm;     /* live tasks in / out of the window */
	struct iscsi_task *tasks;
	struct iscsi_task *cq, **cq_tail;  /* completed, to answer */
	unsigned n_running;        /* tasks submitted to scsi, not yet answered */
	size_t bused, brun;        /* budget held; by running tasks */
	bool wquit;                /* writer: exit when cq is empty */
	uint32_t next_ttt;
	pthread_t writer;
	bool writer_started;

	pthread_mutex_t wlock;     /* one sender at a time */
	bool wdead;                /* a send failed: sends are dropped */
};

/* server.c */
void iscsi_logf(struct iscsi_conn *c, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int iscsi_proto_error(struct iscsi_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* pdu.c */
uint32_t iscsi_crc32c(uint32_t crc, const void *p, size_t n);
/* Input must arrive within ms from now (0: no limit). */
void iscsi_set_deadline(struct iscsi_conn *c, unsigned ms);
/* Read exactly n bytes of input (dst NULL: discard).  0, -ENODATA (end of
 * input before the first byte), -EPIPE (part way), -errno. */
int iscsi_in_read(struct iscsi_conn *c, void *dst, size_t n);
/* Read a PDU header (BHS, AHS, header digest) into bhs and ahs (up to
 * 1020 bytes; *ahs_len set).  0 or -errno; -EPROTO on a digest error. */
int iscsi_read_header(struct iscsi_conn *c, struct iscsi_bhs *bhs,
		      uint8_t *ahs, size_t *ahs_len);
/* Read the data segment of dlen bytes (+ padding + digest) into c->rx.
 * 0, -EPROTO (digest), -errno. */
int iscsi_read_data(struct iscsi_conn *c, uint32_t dlen);
/* Read dlen bytes of data into dst (+ padding + digest). */
int iscsi_read_data_to(struct iscsi_conn *c, void *dst, uint32_t dlen);
/* Send a PDU: bhs (48 bytes, dlen set by the caller) and data (iov,
 * n entries totalling dlen), with padding and digests.  Takes c->wlock.
 * 0 or -errno (the connection is then marked dead). */
int iscsi_send_pdu(struct iscsi_conn *c, void *bhs, const struct iovec *data,
		   int n);
/* The same with c->wlock held. */
int iscsi_send_pdu_locked(struct iscsi_conn *c, void *bhs,
			  const struct iovec *data, int n);
/* A Reject of hdr (reason). */
int iscsi_send_reject(struct iscsi_conn *c, const struct iscsi_bhs *hdr,
		      uint8_t reason);
/* The MaxCmdSN to send (c->mu held): the window, ExpCmdSN - 1 +
 * ISCSI_CMD_WINDOW - live non-immediate tasks, opens only here, as it is
 * told, so a command beyond the last MaxCmdSN sent is always ignored
 * (RFC 7143 4.2.2.1), never run because the window grew unannounced. */
uint32_t iscsi_max_cmd_sn(struct iscsi_conn *c);
/* Fill ExpCmdSN and MaxCmdSN (c->mu taken). */
void iscsi_fill_sn(struct iscsi_conn *c, uint32_t *exp, uint32_t *max);

/* params.c: login and text keys */
struct iscsi_kv {
	const char *key, *val;
};
/* Split text "k=v\0k=v\0" (modified in place) into at most max pairs.
 * Returns the count, or -EINVAL for a malformed pair. */
int iscsi_kv_parse(char *text, size_t len, struct iscsi_kv *kv, int max);
/* A growing output buffer of "k=v\0" pairs, bounded. */
struct iscsi_text {
	char *buf;
	size_t len, cap;
	bool overflow;
};
void iscsi_text_add(struct iscsi_text *t, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Negotiate one operational key (login stage 1); false when key is not an
 * operational key. */
bool iscsi_negotiate(struct iscsi_conn *c, const char *key, const char *val,
		     struct iscsi_text *out);

/* login.c: run the login phase.  1 = full feature phase, 0 = the
 * initiator went away, -errno = drop. */
int iscsi_login(struct iscsi_conn *c);

/* session.c: full feature phase until logout or end; 0 or -errno. */
int iscsi_ffp(struct iscsi_conn *c);
/* SendTargets answer for text (discovery and normal sessions). */
void iscsi_send_targets(struct iscsi_conn *c, const char *val,
			struct iscsi_text *out);

#endif
