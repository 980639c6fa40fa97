/* listen: the listening half of a network server, shared by the NBD
 * server (nbd/server.c) and the iSCSI target (iscsi/server.c): listening
 * sockets (TCP, a unix socket, descriptors handed over by systemd socket
 * activation), the accept loop with its connection limit, one thread a
 * connection, stop (async-signal-safe) with a grace period for replies,
 * and the counters both servers report.
 *
 * A server embeds a struct listen and gives three operations: make its
 * connection for an accepted descriptor (embedding a struct listen_conn,
 * found back with FS_CONTAINER_OF), serve it until it ends, free it.  The
 * descriptor is closed here, under l->lock, after conn_serve returns, so
 * that a stop can shut connections down without racing with the close.
 *
 * Threads: listen_run's thread accepts and reaps; each connection runs on
 * its own thread.  l->lock guards the connection list and the counters; a
 * server may take it for small state of its own (the iSCSI target's login
 * count and session handles).  The wake pipe tells the accept loop about
 * stop requests and about connections that ended.
 *
 * Library rules: 0 or -errno, never prints; the message of a failed setup
 * call is listen_errmsg(). */
#ifndef LISTEN_H
#define LISTEN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LISTEN_MAX_FDS 16

struct listen;

struct listen_conn {
	struct listen *owner;
	int fd;                    /* -1 once closed (l->lock) */
	unsigned id;               /* 1, 2, ... in accept order */
	pthread_t thread;
	bool detached_run;         /* started by listen_run */
	bool done;                 /* its thread finished (l->lock) */
	int result;                /* conn_serve's: 0, -EPROTO, -errno */
	struct listen_conn *next;
};

struct listen_ops {
	/* A connection for the accepted fd, its struct listen_conn filled
	 * by listen_conn_init; NULL when out of memory (fd is closed here). */
	struct listen_conn *(*conn_new)(void *opaque, int fd);
	/* Serve c until it ends; must not close c->fd.  0, -EPROTO after
	 * a violation (count it with listen_proto_error), -errno. */
	int (*conn_serve)(struct listen_conn *c);
	void (*conn_free)(struct listen_conn *c);
};

struct listen_opts {
	unsigned max_conns;        /* more are refused; 0: 16 */
	unsigned stop_grace_ms;    /* at stop, time for replies; 0: 10000 */
	bool once;                 /* listen_run returns after the first
	                            * connections have all gone */
	/* "refused a connection: ..." (over max_conns); NULL: silent. */
	void (*log)(void *opaque, const char *msg);
};

struct listen {
	const struct listen_ops *ops;
	void *opaque;
	struct listen_opts o;

	int lfd[LISTEN_MAX_FDS];
	int nlfd;
	unsigned tcp_port;
	char *unix_path;           /* ours to unlink */
	int wake[2];               /* pipe: stop requests, connection ends */
	atomic_bool stopping;

	pthread_mutex_t lock;      /* conns and the counters below */
	struct listen_conn *conns;
	unsigned active, next_id;
	uint64_t accepted, refused, protocol_errors;
	char err[256];
};

/* Set l up (the wake pipe); 0 or -errno. */
int listen_init(struct listen *l, const struct listen_ops *ops, void *opaque,
		const struct listen_opts *o);
/* Close the listening sockets (unlinking our unix socket) and the pipe.
 * No connection may be active. */
void listen_fini(struct listen *l);
void listen_conn_init(struct listen_conn *c, int fd);

/* Listen on addr (NULL: 127.0.0.1) port (0: one socket on a free port). */
int listen_tcp(struct listen *l, const char *addr, unsigned port);
/* Listen on a unix socket at path (one per server; a stale socket file
 * is replaced, any other file refused). */
int listen_unix(struct listen *l, const char *path);
/* Use fd, an already listening stream socket (socket activation). */
int listen_fd(struct listen *l, int fd);
/* systemd socket activation (sd_listen_fds(3), as nbdkit does): the
 * listening sockets are descriptors LISTEN_FDS_START .. +LISTEN_FDS-1 when
 * LISTEN_PID is this process.  The variables are removed so that nothing
 * started later inherits them.  Returns the count, 0 when not activated,
 * -EINVAL (why in msg) when LISTEN_FDS is malformed. */
#define LISTEN_FDS_START 3
int listen_activation_fds(char *msg, size_t cap);
/* --exit-with-parent: SIGTERM (a clean stop) when the process whose pid
 * is parent (the one that started us) goes, also when it went already.
 * 0 or -errno. */
int listen_exit_with_parent(int parent);
/* The port of the first TCP socket, or 0. */
unsigned listen_tcp_port(struct listen *l);
const char *listen_errmsg(struct listen *l);

/* Accept and serve until listen_stop() (or, with once, until the
 * connections have gone): then stop listening, shut the connections'
 * input, let them finish their replies (cut off after stop_grace_ms) and
 * join them.  0 or -errno. */
int listen_run(struct listen *l);
/* Ask listen_run to stop.  Async-signal-safe. */
void listen_stop(struct listen *l);
bool listen_stopping(struct listen *l);
/* Serve one connection on fd in the calling thread (takes fd). */
int listen_serve_fd(struct listen *l, int fd);

/* Count a connection dropped for a protocol violation. */
void listen_proto_error(struct listen *l);
/* The counters, read together: connections now, so far, refused (over
 * max_conns), dropped for a protocol violation. */
void listen_get_stats(struct listen *l, unsigned *active, uint64_t *accepted,
		      uint64_t *refused, uint64_t *protocol_errors);

#endif
