/* iscsi server: setup, a connection's life (login, then full feature
 * phase), stop and statistics.  The listening sockets, the accept loop,
 * the connection list and the stop with its grace period are
 * common/listen's, shared with the NBD server.
 *
 * Threads: listen_run's thread accepts; each connection gets a reader
 * thread (login, then full feature phase) which starts the connection's
 * writer thread.  A connection's fd is closed by listen (under s->ls.lock)
 * so that a stop can shut it down without racing with the close. */
#include "iscsi-int.h"

#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/util.h"

const char *iscsi_errmsg(struct iscsi_srv *s)
{
	return listen_errmsg(&s->ls);
}

void iscsi_logf(struct iscsi_conn *c, int level, const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	int n;

	if (!c->s->log)
		return;
	n = snprintf(msg, sizeof(msg), "connection %u: ", c->lc.id);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	c->s->log(c->s->log_opaque, level, msg);
}

int iscsi_proto_error(struct iscsi_conn *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	iscsi_logf(c, ISCSI_LOG_ERROR, "%s; dropping the connection", msg);
	listen_proto_error(&c->s->ls);
	return -EPROTO;
}

/* ---- a connection (common/listen runs it) ---- */

static struct listen_conn *conn_new(void *opaque, int fd)
{
	struct iscsi_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->rbuf = malloc(ISCSI_RBUF_SIZE);
	c->rx_size = ISCSI_OUR_MRDSL + 8;
	c->rx = malloc(c->rx_size);
	if (!c->rbuf || !c->rx) {
		free(c->rbuf);
		free(c->rx);
		free(c);
		return NULL;
	}
	listen_conn_init(&c->lc, fd);
	c->s = opaque;
	c->fd = fd;
	c->cq_tail = &c->cq;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	pthread_cond_init(&c->cv, NULL);
	return &c->lc;
}

static void conn_free(struct listen_conn *lc)
{
	struct iscsi_conn *c = FS_CONTAINER_OF(lc, struct iscsi_conn, lc);

	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->wlock);
	pthread_cond_destroy(&c->cv);
	free(c->rbuf);
	free(c->rx);
	free(c);
}

/* Login, then full feature phase; listen closes the socket after. */
static int conn_serve(struct listen_conn *lc)
{
	struct iscsi_conn *c = FS_CONTAINER_OF(lc, struct iscsi_conn, lc);
	struct iscsi_srv *s = c->s;
	struct timeval tv = { .tv_sec = 30 };
	int one = 1, r;

	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	/* An initiator that stops reading cannot hold our writer forever. */
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	iscsi_logf(c, ISCSI_LOG_INFO, "connected");
	iscsi_set_deadline(c, s->login_ms);
	r = iscsi_login(c);
	if (r == -ETIMEDOUT)
		r = iscsi_proto_error(c, "no login within %u ms", s->login_ms);
	iscsi_set_deadline(c, 0);
	if (r == 1) {
		pthread_mutex_lock(&s->ls.lock);
		s->logins++;
		pthread_mutex_unlock(&s->ls.lock);
		c->ffp = true;
		r = iscsi_ffp(c);
	}
	iscsi_logf(c, ISCSI_LOG_INFO, "disconnected%s", r ? " after an error" : "");
	return r;
}

static void log_refused(void *opaque, const char *msg)
{
	struct iscsi_srv *s = opaque;

	s->log(s->log_opaque, ISCSI_LOG_ERROR, msg);
}

static const struct listen_ops conn_ops = {
	.conn_new = conn_new, .conn_serve = conn_serve, .conn_free = conn_free,
};

/* ---- setup ---- */

struct iscsi_srv *iscsi_new(struct scsi_target *t, const struct iscsi_opts *o,
			    const char **msg)
{
	static const struct iscsi_opts defaults = { 0 };
	const char *name;
	struct iscsi_srv *s;
	int r;

	if (!o)
		o = &defaults;
	name = o->target_name ? o->target_name : ISCSI_DEFAULT_TARGET;
	if (!*name || strlen(name) > 223) {
		if (msg)
			*msg = "target name must be 1 to 223 bytes";
		errno = EINVAL;
		return NULL;
	}
	if (!o->chap_user != !o->chap_secret ||
	    (o->chap_user && (!*o->chap_user || strlen(o->chap_user) > 255 ||
			      strlen(o->chap_secret) < 12 || strlen(o->chap_secret) > 255))) {
		if (msg)
			*msg = "CHAP needs a user name and a secret of 12 to 255 bytes";
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	s->t = t;
	s->target_name = strdup(name);
	s->chap_user = o->chap_user ? strdup(o->chap_user) : NULL;
	s->chap_secret = o->chap_secret ? strdup(o->chap_secret) : NULL;
	if (!s->target_name || (o->chap_user && (!s->chap_user || !s->chap_secret)))
		goto nomem_free;
	s->max_buffer = UTIL_MAX(o->max_buffer ? o->max_buffer : (size_t)128 << 20,
				 (size_t)2 * ISCSI_MAX_XFER);
	s->login_ms = o->login_ms ? o->login_ms : 15000;
	s->log = o->log;
	s->log_opaque = o->log_opaque;
	r = listen_init(&s->ls, &conn_ops, s, &(struct listen_opts){
		.max_conns = o->max_conns ? o->max_conns : 64,
		.stop_grace_ms = o->stop_grace_ms,
		.log = o->log ? log_refused : NULL });
	if (r) {
		if (msg)
			*msg = "cannot create a pipe";
		free(s->target_name);
		free(s->chap_user);
		free(s->chap_secret);
		free(s);
		errno = -r;
		return NULL;
	}
	return s;

nomem_free:
	free(s->target_name);
	free(s->chap_user);
	free(s->chap_secret);
	free(s);
nomem:
	if (msg)
		*msg = "out of memory";
	errno = ENOMEM;
	return NULL;
}

void iscsi_free(struct iscsi_srv *s)
{
	if (!s)
		return;
	listen_fini(&s->ls);
	free(s->target_name);
	if (s->chap_secret)
		memset(s->chap_secret, 0, strlen(s->chap_secret));
	free(s->chap_user);
	free(s->chap_secret);
	free(s);
}

void iscsi_stop(struct iscsi_srv *s)
{
	listen_stop(&s->ls);
}

void iscsi_get_stats(struct iscsi_srv *s, struct iscsi_stats *st)
{
	listen_get_stats(&s->ls, &st->active, &st->accepted, &st->refused,
			 &st->protocol_errors);
	pthread_mutex_lock(&s->ls.lock);
	st->logins = s->logins;
	pthread_mutex_unlock(&s->ls.lock);
	st->commands = atomic_load(&s->commands);
	st->buf_bytes = atomic_load(&s->buf_bytes);
}

int iscsi_listen_tcp(struct iscsi_srv *s, const char *addr, unsigned port)
{
	return listen_tcp(&s->ls, addr, port);
}

int iscsi_listen_fd(struct iscsi_srv *s, int fd)
{
	return listen_fd(&s->ls, fd);
}

unsigned iscsi_tcp_port(struct iscsi_srv *s)
{
	return listen_tcp_port(&s->ls);
}

/* ---- connections ---- */

int iscsi_serve_fd(struct iscsi_srv *s, int fd)
{
	return listen_serve_fd(&s->ls, fd);
}

int iscsi_run(struct iscsi_srv *s)
{
	return listen_run(&s->ls);   /* its message: iscsi_errmsg */
}
