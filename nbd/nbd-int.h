/* nbd internals: protocol constants (values from the NBD protocol document,
 * doc/proto.md of the reference implementation), the server and
 * connection structures, and the functions the files of nbd/ share.  Not
 * for use outside nbd/. */
#ifndef NBD_INT_H
#define NBD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/listen.h"
#include "nbdsrv.h"

/* ---- wire constants (all integers big-endian on the wire) ---- */

#define NBD_MAGIC                 0x4e42444d41474943ull  /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC            0x49484156454f5054ull  /* "IHAVEOPT" */
#define NBD_REP_MAGIC             0x0003e889045565a9ull
#define NBD_REQUEST_MAGIC         0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC    0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE   0x1u
#define NBD_FLAG_NO_ZEROES        0x2u
#define NBD_FLAG_C_FIXED_NEWSTYLE 0x1u
#define NBD_FLAG_C_NO_ZEROES      0x2u

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS        (1u << 0)
#define NBD_FLAG_READ_ONLY        (1u << 1)
#define NBD_FLAG_SEND_FLUSH       (1u << 2)
#define NBD_FLAG_SEND_FUA         (1u << 3)
#define NBD_FLAG_SEND_TRIM        (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF          (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN   (1u << 8)
#define NBD_FLAG_SEND_CACHE       (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO   (1u << 11)

/* Options. */
#define NBD_OPT_EXPORT_NAME       1u
#define NBD_OPT_ABORT             2u
#define NBD_OPT_LIST              3u
#define NBD_OPT_INFO              6u
#define NBD_OPT_GO                7u
#define NBD_OPT_STRUCTURED_REPLY  8u
#define NBD_OPT_LIST_META_CONTEXT 9u
#define NBD_OPT_SET_META_CONTEXT  10u

/* Option replies; errors have bit 31 set. */
#define NBD_REP_ACK               1u
#define NBD_REP_SERVER            2u
#define NBD_REP_INFO              3u
#define NBD_REP_META_CONTEXT      4u
#define NBD_REP_ERR(n)            (0x80000000u | (n))
#define NBD_REP_ERR_UNSUP         NBD_REP_ERR(1)
#define NBD_REP_ERR_INVALID       NBD_REP_ERR(3)
#define NBD_REP_ERR_UNKNOWN       NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN      NBD_REP_ERR(7)

/* NBD_REP_INFO types. */
#define NBD_INFO_EXPORT           0u
#define NBD_INFO_NAME             1u
#define NBD_INFO_DESCRIPTION      2u
#define NBD_INFO_BLOCK_SIZE       3u

/* Commands and command flags. */
#define NBD_CMD_READ              0u
#define NBD_CMD_WRITE             1u
#define NBD_CMD_DISC              2u
#define NBD_CMD_FLUSH             3u
#define NBD_CMD_TRIM              4u
#define NBD_CMD_CACHE             5u
#define NBD_CMD_WRITE_ZEROES      6u
#define NBD_CMD_BLOCK_STATUS      7u

#define NBD_CMD_FLAG_FUA          (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE      (1u << 1)
#define NBD_CMD_FLAG_DF           (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE      (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO    (1u << 4)

/* Structured reply chunks. */
#define NBD_REPLY_FLAG_DONE       (1u << 0)
#define NBD_REPLY_TYPE_NONE       0u
#define NBD_REPLY_TYPE_OFFSET_DATA 1u
#define NBD_REPLY_TYPE_OFFSET_HOLE 2u
#define NBD_REPLY_TYPE_BLOCK_STATUS 5u
#define NBD_REPLY_TYPE_ERROR      0x8001u

/* Error values. */
#define NBD_EPERM                 1u
#define NBD_EIO                   5u
#define NBD_ENOMEM                12u
#define NBD_EINVAL                22u
#define NBD_ENOSPC                28u
#define NBD_EOVERFLOW             75u
#define NBD_ENOTSUP               95u
#define NBD_ESHUTDOWN             108u

/* base:allocation flags. */
#define NBD_STATE_HOLE            (1u << 0)
#define NBD_STATE_ZERO            (1u << 1)

#define NBD_REQUEST_SIZE          28u
#define NBD_SIMPLE_REPLY_SIZE     16u
#define NBD_CHUNK_HDR_SIZE        20u
#define NBD_MAX_STRING            4096u   /* names, messages */
#define NBD_META_ID               1u      /* our id for base:allocation */

/* ---- server state ---- */

#define NBDSRV_MAX_WORKERS 64
#define NBDSRV_RBUF_SIZE   (64u << 10)   /* input buffer of a connection */
#define NBDSRV_KEEP_BUF    (2u << 20)    /* a worker keeps buffers up to this */

struct nbdsrv_conn;

struct nbdsrv {
	struct bdev *b;
	char *name;                /* export name, never NULL */
	char *desc;                /* may be NULL */
	bool read_only;
	unsigned workers;
	size_t max_buffer;
	unsigned handshake_ms;
	nbdsrv_log_fn log;
	void *log_opaque;

	/* Sockets, accept loop, connection list and counters (common/listen;
	 * its lock guards them). */
	struct listen ls;

	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t buf_bytes, buf_peak;
	char err[512];
};

struct nbdsrv_conn {
	struct listen_conn lc;     /* id, thread; the socket closed by listen */
	struct nbdsrv *s;
	int fd;                    /* lc.fd, open while the connection is served */
	int result;                /* transmission: first error, 0, -EPROTO */

	/* Negotiated in the handshake; constant during transmission. */
	bool fixed, no_zeroes, structured, meta;
	char *meta_name;           /* export name SET_META_CONTEXT used */
	uint16_t eflags;

	/* Input: one reader at a time. */
	pthread_mutex_t rlock;
	uint8_t *rbuf;
	size_t rpos, rend;

	/* Output: one writer at a time; wwait counts writers queued. */
	pthread_mutex_t wlock;
	atomic_int wwait;

	atomic_bool quit;          /* stop reading requests */

	/* Payload buffer budget. */
	pthread_mutex_t block;
	pthread_cond_t bcond;
	size_t bused;
};

/* server.c */
void nbdsrv_logf(struct nbdsrv_conn *c, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Record a protocol violation of c (log + counter); returns -EPROTO. */
int nbdsrv_proto_error(struct nbdsrv_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Take / give back n bytes of c's payload budget (blocks while over). */
void nbdsrv_budget_get(struct nbdsrv_conn *c, size_t n);
void nbdsrv_budget_put(struct nbdsrv_conn *c, size_t n);

/* io.c: buffered input (caller is the only reader), whole output. */
int nbdsrv_in_read(struct nbdsrv_conn *c, void *dst, size_t n);
int nbdsrv_in_skip(struct nbdsrv_conn *c, size_t n);
int nbdsrv_send_all(int fd, struct iovec *iov, int n, bool more);

/* handshake.c: 1 = enter transmission, 0 = client ended the session
 * (ABORT or end of input), -EPROTO / -errno = drop the connection. */
int nbdsrv_handshake(struct nbdsrv_conn *c);

/* transmit.c: serve requests until the client leaves; 0 or -errno. */
int nbdsrv_transmit(struct nbdsrv_conn *c);

#endif
