/* nbdsrv: an NBD server (fixed newstyle protocol) that exports one bdev.
 *
 * One export, named by nbdsrv_opts.export_name (the default export ""
 * names it too), served to several clients at once.  Each connection has
 * its own thread for the handshake, then a small pool of worker threads
 * that take turns reading requests and serve them concurrently, so replies
 * may leave in another order than the requests came; reply writes are
 * serialised per connection.
 *
 * Supported: options EXPORT_NAME, ABORT, LIST, INFO, GO, STRUCTURED_REPLY,
 * LIST_META_CONTEXT and SET_META_CONTEXT (base:allocation); every other
 * option gets NBD_REP_ERR_UNSUP and the session goes on.  Commands READ
 * (structured replies send holes as OFFSET_HOLE chunks), WRITE, FLUSH,
 * TRIM, WRITE_ZEROES (FAST_ZERO), BLOCK_STATUS, CACHE and DISC with the
 * flags FUA, NO_HOLE, DF and REQ_ONE.  Block sizes: minimum 1, preferred
 * 4096, maximum payload 32 MiB.
 *
 * Hostile clients: every length is checked (overflow-safe) before use;
 * options longer than NBDSRV_MAX_OPTION_LEN, bad magic numbers, write
 * payloads over the maximum and handshakes that take longer than
 * handshake_ms end that client's connection; every other bad
 * request gets the protocol's error reply and the session goes on.  Memory
 * per connection is bounded: at most `workers` requests in flight and at
 * most `max_buffer` bytes of payload buffers.
 *
 * Library rules: functions return 0 or -errno and never print; messages go
 * to the log callback (connections) or nbdsrv_errmsg() (setup calls).
 */
#ifndef NBDSRV_H
#define NBDSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bdev.h"

#define NBDSRV_MAX_PAYLOAD   (32u << 20)  /* largest READ/WRITE payload */
#define NBDSRV_MAX_OPTION_LEN (64u << 10) /* longer option data: disconnect */
#define NBDSRV_DEFAULT_PORT  10809

/* Levels of log messages. */
#define NBDSRV_LOG_ERROR 0   /* a client broke the protocol, an I/O error */
#define NBDSRV_LOG_INFO  1   /* connections opened and closed */

typedef void (*nbdsrv_log_fn)(void *opaque, int level, const char *msg);

struct nbdsrv_opts {
	const char *export_name;   /* NULL: "" (the default export) */
	const char *description;   /* NBD_INFO_DESCRIPTION; NULL: none */
	bool read_only;            /* also implied by bdev->read_only */
	unsigned max_clients;      /* nbdsrv_run: 0 = 16; more are refused */
	unsigned workers;          /* threads per connection: 0 = 8, max 64 */
	size_t max_buffer;         /* payload bytes per connection: 0 = 64 MiB;
	                            * raised to what one maximum request and
	                            * the workers' kept buffers need */
	bool once;                 /* nbdsrv_run returns when the first client
	                            * (and any that came meanwhile) has gone */
	unsigned stop_grace_ms;    /* at stop, time for replies: 0 = 10000 */
	unsigned handshake_ms;     /* time a client has to finish the
	                            * handshake: 0 = 30000 */
	nbdsrv_log_fn log;         /* NULL: no messages; called from any thread */
	void *log_opaque;
};

struct nbdsrv_stats {
	unsigned active;           /* connections being served now */
	uint64_t accepted;         /* connections served so far */
	uint64_t refused;          /* over max_clients */
	uint64_t protocol_errors;  /* connections ended for a protocol violation */
	uint64_t requests;         /* transmission requests handled */
	uint64_t buf_bytes;        /* payload buffer bytes held now */
	uint64_t buf_peak;         /* ... at most, since nbdsrv_new */
};

struct nbdsrv;

/* A server for b (not owned: close it after nbdsrv_free).  NULL on error,
 * with e filled. */
struct nbdsrv *nbdsrv_new(struct bdev *b, const struct nbdsrv_opts *o,
			  struct bdev_err *e);

/* Serve one client on a connected socket, in the calling thread, until it
 * disconnects.  Takes ownership of fd.  Returns 0 when the session ended
 * cleanly (ABORT, DISC or end of input between requests), -EPROTO when
 * the client broke the protocol, or another -errno. */
int nbdsrv_serve_fd(struct nbdsrv *s, int fd);

/* Listening sockets for nbdsrv_run (several may be added).  A unix socket
 * path that exists as a socket is replaced; it is removed by nbdsrv_free.
 * addr NULL means 127.0.0.1; port 0 picks a free one (nbdsrv_tcp_port). */
int nbdsrv_listen_unix(struct nbdsrv *s, const char *path);
int nbdsrv_listen_tcp(struct nbdsrv *s, const char *addr, unsigned port);
/* A listening stream socket made by someone else (systemd socket
 * activation, LISTEN_FDS): checked to be a listening SOCK_STREAM socket,
 * then owned by s (closed by nbdsrv_free; never unlinked). */
int nbdsrv_listen_fd(struct nbdsrv *s, int fd);
/* The port of the first TCP socket, or 0. */
unsigned nbdsrv_tcp_port(struct nbdsrv *s);

/* Accept and serve clients until nbdsrv_stop() (or, with `once`, until
 * the clients have gone).  On stop: listening ends, each connection
 * finishes the requests it is serving, sends their replies and closes
 * (a client that does not read its replies within stop_grace_ms is cut
 * off), then
 * the bdev is flushed.  Returns 0 or the flush's -errno. */
int nbdsrv_run(struct nbdsrv *s);

/* Ask nbdsrv_run to stop.  Async-signal-safe; may be called before run. */
void nbdsrv_stop(struct nbdsrv *s);

void nbdsrv_get_stats(struct nbdsrv *s, struct nbdsrv_stats *st);

/* The message of the last failed setup call (listen, run). */
const char *nbdsrv_errmsg(struct nbdsrv *s);

/* Close listening sockets and free s.  No connection may be active. */
void nbdsrv_free(struct nbdsrv *s);

#endif
