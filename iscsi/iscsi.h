/* iscsi: an iSCSI target (RFC 7143) in front of a SCSI target (scsi/).
 *
 * One target name, served on one or more TCP portals; each LUN of the
 * scsi_target is a LUN of the iSCSI target.  Sessions are single
 * connection (MaxConnections=1), ErrorRecoveryLevel 0.  Each connection
 * has a reader thread (PDUs in, commands submitted to scsi_submit()) and
 * a writer thread (Data-In and responses of completed commands out).
 *
 * Negotiated: HeaderDigest and DataDigest (None, CRC32C),
 * MaxRecvDataSegmentLength, MaxBurstLength, FirstBurstLength,
 * ImmediateData, InitialR2T, MaxOutstandingR2T (1), DataPDUInOrder and
 * DataSequenceInOrder (Yes), ErrorRecoveryLevel (0), MaxConnections (1);
 * discovery sessions answer SendTargets.  Optional CHAP (one user and
 * secret; the target does not authenticate itself to the initiator).
 *
 * Hostile initiators: a header is copied out of the input buffer before it
 * is read, every length is checked against the negotiated limits before
 * any allocation, and a connection that breaks the protocol gets a Reject
 * or is dropped; logins that take longer than login_ms are dropped.
 * Memory per connection is bounded: at most ISCSI_CMD_WINDOW commands in
 * flight (the CmdSN window) and at most max_buffer bytes of data buffers.
 *
 * Library rules: functions return 0 or -errno and never print; messages go
 * to the log callback (connections) or iscsi_errmsg() (setup calls).
 */
#ifndef ISCSI_H
#define ISCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct scsi_target;

#define ISCSI_DEFAULT_PORT   3260
#define ISCSI_CMD_WINDOW     128          /* commands in flight a session */
#define ISCSI_MAX_XFER       (32u << 20)  /* largest write a command */

#define ISCSI_LOG_ERROR 0   /* a protocol violation, a failed login */
#define ISCSI_LOG_INFO  1   /* logins and logouts */

typedef void (*iscsi_log_fn)(void *opaque, int level, const char *msg);

struct iscsi_opts {
	const char *target_name;   /* NULL: ISCSI_DEFAULT_TARGET */
	const char *chap_user;     /* both set: CHAP required */
	const char *chap_secret;   /* 12..255 bytes */
	unsigned max_conns;        /* iscsi_run: 0 = 64; more are refused */
	size_t max_buffer;         /* data buffer bytes a connection: 0 =
	                            * 128 MiB, at least 2 * ISCSI_MAX_XFER */
	unsigned login_ms;         /* time a login may take: 0 = 15000 */
	unsigned stop_grace_ms;    /* at stop, time for replies: 0 = 10000 */
	iscsi_log_fn log;          /* NULL: no messages; any thread */
	void *log_opaque;
};

#define ISCSI_DEFAULT_TARGET "iqn.2024-01.local.vhdtool:target"

struct iscsi_stats {
	unsigned active;           /* connections now */
	uint64_t accepted;         /* connections so far */
	uint64_t refused;          /* over max_conns */
	uint64_t logins;           /* logins that reached full feature phase */
	uint64_t protocol_errors;  /* connections dropped for a violation */
	uint64_t commands;         /* SCSI commands received */
	uint64_t buf_bytes;        /* data buffer bytes held now */
};

struct iscsi_srv;

/* A target in front of t (not owned: free it after iscsi_free).  NULL with
 * errno set; *msg (if msg) then points at a static explanation. */
struct iscsi_srv *iscsi_new(struct scsi_target *t, const struct iscsi_opts *o,
			    const char **msg);

/* Listen on addr (NULL: 127.0.0.1) port (0: any free port). */
int iscsi_listen_tcp(struct iscsi_srv *s, const char *addr, unsigned port);
/* Use fd, an already listening stream socket (socket activation). */
int iscsi_listen_fd(struct iscsi_srv *s, int fd);
/* The port of the first listening socket, or 0. */
unsigned iscsi_tcp_port(struct iscsi_srv *s);

/* Serve one connection on fd in the calling thread until it ends (takes
 * fd).  0 after a logout or end of input, -EPROTO after a violation. */
int iscsi_serve_fd(struct iscsi_srv *s, int fd);

/* Accept and serve until iscsi_stop(): then stop listening, let each
 * connection finish the commands it is running and send their responses
 * (cut off after stop_grace_ms), and return 0 or -errno. */
int iscsi_run(struct iscsi_srv *s);
/* Ask iscsi_run to stop.  Async-signal-safe. */
void iscsi_stop(struct iscsi_srv *s);

void iscsi_get_stats(struct iscsi_srv *s, struct iscsi_stats *st);
const char *iscsi_errmsg(struct iscsi_srv *s);
/* Close the listening sockets and free s.  No connection may be active. */
void iscsi_free(struct iscsi_srv *s);

#endif
