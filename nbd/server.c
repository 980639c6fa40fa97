/* nbd server: setup, the per-connection payload budget, a connection's
 * life (handshake, then transmission), stop, statistics.  The listening
 * sockets, the accept loop, the connection list and the stop with its
 * grace period are common/listen's, shared with the iSCSI target.
 *
 * Threads: listen_run's thread accepts; each connection gets a thread that
 * does the handshake and then becomes worker 0 of its transmission phase
 * (transmit.c).  A connection's fd is closed by listen (under s->ls.lock)
 * so that a stop can shut it down without racing with the close. */
#include "nbd-int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/util.h"

static int set_err(struct nbdsrv *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int set_err(struct nbdsrv *s, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return code < 0 ? code : -code;
}

const char *nbdsrv_errmsg(struct nbdsrv *s)
{
	return s->err[0] ? s->err : listen_errmsg(&s->ls);
}

void nbdsrv_logf(struct nbdsrv_conn *c, int level, const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	int n;

	if (!c->s->log)
		return;
	n = snprintf(msg, sizeof(msg), "client %u: ", c->lc.id);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	c->s->log(c->s->log_opaque, level, msg);
}

int nbdsrv_proto_error(struct nbdsrv_conn *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	nbdsrv_logf(c, NBDSRV_LOG_ERROR, "%s; disconnecting", msg);
	listen_proto_error(&c->s->ls);
	return -EPROTO;
}

/* ---- payload budget ---- */

void nbdsrv_budget_get(struct nbdsrv_conn *c, size_t n)
{
	struct nbdsrv *s = c->s;
	uint64_t now, peak;

	if (!n)
		return;
	pthread_mutex_lock(&c->block);
	while (c->bused + n > s->max_buffer)
		pthread_cond_wait(&c->bcond, &c->block);
	c->bused += n;
	pthread_mutex_unlock(&c->block);
	now = atomic_fetch_add(&s->buf_bytes, n) + n;
	peak = atomic_load(&s->buf_peak);
	while (now > peak && !atomic_compare_exchange_weak(&s->buf_peak, &peak, now))
		;
}

void nbdsrv_budget_put(struct nbdsrv_conn *c, size_t n)
{
	if (!n)
		return;
	atomic_fetch_sub(&c->s->buf_bytes, n);
	pthread_mutex_lock(&c->block);
	c->bused -= n;
	pthread_cond_broadcast(&c->bcond);
	pthread_mutex_unlock(&c->block);
}

/* ---- a connection (common/listen runs it) ---- */

static struct listen_conn *conn_new(void *opaque, int fd)
{
	struct nbdsrv_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->rbuf = malloc(NBDSRV_RBUF_SIZE);
	if (!c->rbuf) {
		free(c);
		return NULL;
	}
	listen_conn_init(&c->lc, fd);
	c->s = opaque;
	c->fd = fd;
	pthread_mutex_init(&c->rlock, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	pthread_mutex_init(&c->block, NULL);
	pthread_cond_init(&c->bcond, NULL);
	return &c->lc;
}

static void conn_free(struct listen_conn *lc)
{
	struct nbdsrv_conn *c = FS_CONTAINER_OF(lc, struct nbdsrv_conn, lc);

	pthread_mutex_destroy(&c->rlock);
	pthread_mutex_destroy(&c->wlock);
	pthread_mutex_destroy(&c->block);
	pthread_cond_destroy(&c->bcond);
	free(c->meta_name);
	free(c->rbuf);
	free(c);
}

/* Receive and send timeout of a socket (0: none). */
static void set_timeout(int fd, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Handshake, then transmission; listen closes the socket after. */
static int conn_serve(struct listen_conn *lc)
{
	struct nbdsrv_conn *c = FS_CONTAINER_OF(lc, struct nbdsrv_conn, lc);
	struct nbdsrv *s = c->s;
	int one = 1, r;

	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	nbdsrv_logf(c, NBDSRV_LOG_INFO, "connected");
	/* A client that connects and says nothing must not hold a slot: the
	 * handshake has a time limit, transmission has none. */
	set_timeout(c->fd, s->handshake_ms);
	r = nbdsrv_handshake(c);
	if (r == -EAGAIN || r == -EWOULDBLOCK)
		r = nbdsrv_proto_error(c, "no handshake within %u ms", s->handshake_ms);
	if (r == 1) {
		set_timeout(c->fd, 0);
		r = nbdsrv_transmit(c);
	}
	nbdsrv_logf(c, NBDSRV_LOG_INFO, "disconnected%s", r ? " after an error" : "");
	return r;
}

static void log_refused(void *opaque, const char *msg)
{
	struct nbdsrv *s = opaque;

	s->log(s->log_opaque, NBDSRV_LOG_ERROR, msg);
}

static const struct listen_ops conn_ops = {
	.conn_new = conn_new, .conn_serve = conn_serve, .conn_free = conn_free,
};

/* ---- setup ---- */

struct nbdsrv *nbdsrv_new(struct bdev *b, const struct nbdsrv_opts *o,
			  struct bdev_err *e)
{
	static const struct nbdsrv_opts defaults = { 0 };
	struct nbdsrv *s;
	size_t need;
	int r;

	if (!o)
		o = &defaults;
	if ((o->export_name && strlen(o->export_name) > NBD_MAX_STRING) ||
	    (o->description && strlen(o->description) > NBD_MAX_STRING)) {
		bdev_err_set(e, EINVAL, "export name or description longer than %u bytes",
			     NBD_MAX_STRING);
		return NULL;
	}
	if (o->workers > NBDSRV_MAX_WORKERS) {
		bdev_err_set(e, EINVAL, "%u workers per connection (at most %u)",
			     o->workers, NBDSRV_MAX_WORKERS);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	s->b = b;
	s->name = strdup(o->export_name ? o->export_name : "");
	s->desc = o->description ? strdup(o->description) : NULL;
	if (!s->name || (o->description && !s->desc))
		goto nomem_free;
	s->read_only = o->read_only || b->read_only;
	s->workers = o->workers ? o->workers : 8;
	/* One maximum request plus every worker's kept buffer always fits,
	 * so a worker waiting for budget cannot wait forever. */
	need = NBDSRV_MAX_PAYLOAD + (size_t)(s->workers + 1) * NBDSRV_KEEP_BUF;
	s->max_buffer = UTIL_MAX(o->max_buffer ? o->max_buffer : (size_t)64 << 20, need);
	s->handshake_ms = o->handshake_ms ? o->handshake_ms : 30000;
	s->log = o->log;
	s->log_opaque = o->log_opaque;
	r = listen_init(&s->ls, &conn_ops, s, &(struct listen_opts){
		.max_conns = o->max_clients ? o->max_clients : 16,
		.stop_grace_ms = o->stop_grace_ms, .once = o->once,
		.log = o->log ? log_refused : NULL });
	if (r) {
		bdev_err_set(e, -r, "cannot create a pipe: %s", strerror(-r));
		free(s->name);
		free(s->desc);
		free(s);
		return NULL;
	}
	return s;

nomem_free:
	free(s->name);
	free(s->desc);
	free(s);
nomem:
	bdev_err_set(e, ENOMEM, "out of memory");
	return NULL;
}

void nbdsrv_free(struct nbdsrv *s)
{
	if (!s)
		return;
	listen_fini(&s->ls);
	free(s->name);
	free(s->desc);
	free(s);
}

void nbdsrv_stop(struct nbdsrv *s)
{
	listen_stop(&s->ls);
}

void nbdsrv_get_stats(struct nbdsrv *s, struct nbdsrv_stats *st)
{
	listen_get_stats(&s->ls, &st->active, &st->accepted, &st->refused,
			 &st->protocol_errors);
	st->requests = atomic_load(&s->requests);
	st->buf_bytes = atomic_load(&s->buf_bytes);
	st->buf_peak = atomic_load(&s->buf_peak);
}

/* ---- listening (common/listen) ---- */

int nbdsrv_listen_fd(struct nbdsrv *s, int fd)
{
	return listen_fd(&s->ls, fd);
}

int nbdsrv_listen_unix(struct nbdsrv *s, const char *path)
{
	return listen_unix(&s->ls, path);
}

int nbdsrv_listen_tcp(struct nbdsrv *s, const char *addr, unsigned port)
{
	return listen_tcp(&s->ls, addr, port);
}

unsigned nbdsrv_tcp_port(struct nbdsrv *s)
{
	return listen_tcp_port(&s->ls);
}

/* ---- connections ---- */

int nbdsrv_serve_fd(struct nbdsrv *s, int fd)
{
	return listen_serve_fd(&s->ls, fd);
}

int nbdsrv_run(struct nbdsrv *s)
{
	int r = listen_run(&s->ls);   /* its message: nbdsrv_errmsg */

	if (!s->read_only) {
		int f = bdev_flush(s->b);

		if (f && !r) {
			char msg[512];

			r = set_err(s, f, "flush: %s", bdev_errmsg(s->b, msg, sizeof(msg)));
		}
	}
	return r;
}
