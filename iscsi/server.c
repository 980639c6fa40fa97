/* iscsi server: setup, listening sockets, the accept loop, connection
 * lifecycle, stop and statistics (the NBD server's structure: nbd/server.c).
 *
 * Threads: iscsi_run's thread accepts; each connection gets a reader
 * thread (login, then full feature phase) which starts the connection's
 * writer thread.  s->lock guards the connection list and counters; a
 * connection's fd is closed under s->lock so that a stop can shut it down
 * without racing with the close.  The wake pipe tells the accept loop
 * about stop requests (from a signal handler) and connections that ended. */
#include "iscsi-int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/util.h"

static int set_err(struct iscsi_srv *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int set_err(struct iscsi_srv *s, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return code < 0 ? code : -code;
}

const char *iscsi_errmsg(struct iscsi_srv *s)
{
	return s->err[0] ? s->err : "no error";
}

void iscsi_logf(struct iscsi_conn *c, int level, const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	int n;

	if (!c->s->log)
		return;
	n = snprintf(msg, sizeof(msg), "connection %u: ", c->id);
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
	pthread_mutex_lock(&c->s->lock);
	c->s->protocol_errors++;
	pthread_mutex_unlock(&c->s->lock);
	return -EPROTO;
}

/* ---- setup ---- */

struct iscsi_srv *iscsi_new(struct scsi_target *t, const struct iscsi_opts *o,
			    const char **msg)
{
	static const struct iscsi_opts defaults = { 0 };
	const char *name;
	struct iscsi_srv *s;

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
	s->max_conns = o->max_conns ? o->max_conns : 64;
	s->max_buffer = UTIL_MAX(o->max_buffer ? o->max_buffer : (size_t)128 << 20,
				 (size_t)2 * ISCSI_MAX_XFER);
	s->login_ms = o->login_ms ? o->login_ms : 15000;
	s->stop_grace_ms = o->stop_grace_ms ? o->stop_grace_ms : 10000;
	s->log = o->log;
	s->log_opaque = o->log_opaque;
	s->wake[0] = s->wake[1] = -1;
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		int e = errno;

		if (msg)
			*msg = "cannot create a pipe";
		free(s->target_name);
		free(s->chap_user);
		free(s->chap_secret);
		free(s);
		errno = e;
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
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
	for (int i = 0; i < s->nlfd; i++)
		close(s->lfd[i]);
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_mutex_destroy(&s->lock);
	free(s->target_name);
	if (s->chap_secret)
		memset(s->chap_secret, 0, strlen(s->chap_secret));
	free(s->chap_user);
	free(s->chap_secret);
	free(s);
}

void iscsi_stop(struct iscsi_srv *s)
{
	int saved = errno;

	atomic_store(&s->stopping, true);
	(void)!write(s->wake[1], "s", 1);
	errno = saved;
}

void iscsi_get_stats(struct iscsi_srv *s, struct iscsi_stats *st)
{
	pthread_mutex_lock(&s->lock);
	st->active = s->active;
	st->accepted = s->accepted;
	st->refused = s->refused;
	st->logins = s->logins;
	st->protocol_errors = s->protocol_errors;
	pthread_mutex_unlock(&s->lock);
	st->commands = atomic_load(&s->commands);
	st->buf_bytes = atomic_load(&s->buf_bytes);
}

int iscsi_listen_tcp(struct iscsi_srv *s, const char *addr, unsigned port)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				  .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	char ps[16];
	int r, n = 0, err = 0;

	if (port > 65535)
		return set_err(s, EINVAL, "port %u is out of range", port);
	if (!addr)
		addr = "127.0.0.1";
	snprintf(ps, sizeof(ps), "%u", port);
	r = getaddrinfo(addr, ps, &hints, &res);
	if (r)
		return set_err(s, EINVAL, "%s: %s", addr, gai_strerror(r));
	for (ai = res; ai && s->nlfd < ISCSI_MAX_LISTEN; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
				ai->ai_protocol), one = 1;

		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
			err = errno;
			close(fd);
			continue;
		}
		if (!s->tcp_port) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
				s->tcp_port = ntohs(ss.ss_family == AF_INET6 ?
					((struct sockaddr_in6 *)&ss)->sin6_port :
					((struct sockaddr_in *)&ss)->sin_port);
		}
		s->lfd[s->nlfd++] = fd;
		n++;
		if (!port)
			break;
	}
	freeaddrinfo(res);
	if (!n)
		return set_err(s, err ? err : EADDRNOTAVAIL, "%s port %u: cannot listen: %s",
			       addr, port, strerror(err ? err : EADDRNOTAVAIL));
	return 0;
}

unsigned iscsi_tcp_port(struct iscsi_srv *s)
{
	return s->tcp_port;
}

/* ---- connections ---- */

static struct iscsi_conn *conn_new(struct iscsi_srv *s, int fd)
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
	c->s = s;
	c->fd = fd;
	c->cq_tail = &c->cq;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	pthread_cond_init(&c->cv, NULL);
	return c;
}

static void conn_free(struct iscsi_conn *c)
{
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->wlock);
	pthread_cond_destroy(&c->cv);
	free(c->rbuf);
	free(c->rx);
	free(c);
}

static void conn_link(struct iscsi_srv *s, struct iscsi_conn *c)
{
	c->id = ++s->next_id;
	c->next = s->conns;
	s->conns = c;
	s->active++;
	s->accepted++;
}

static void conn_unlink(struct iscsi_srv *s, struct iscsi_conn *c)
{
	for (struct iscsi_conn **p = &s->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
}

/* Login, then full feature phase; closes the socket. */
static int conn_serve(struct iscsi_conn *c)
{
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
		pthread_mutex_lock(&s->lock);
		s->logins++;
		pthread_mutex_unlock(&s->lock);
		c->ffp = true;
		r = iscsi_ffp(c);
	}
	iscsi_logf(c, ISCSI_LOG_INFO, "disconnected%s", r ? " after an error" : "");
	pthread_mutex_lock(&s->lock);
	close(c->fd);
	c->fd = -1;
	s->active--;
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void *conn_thread(void *arg)
{
	struct iscsi_conn *c = arg;
	struct iscsi_srv *s = c->s;

	c->result = conn_serve(c);
	pthread_mutex_lock(&s->lock);
	c->done = true;
	pthread_mutex_unlock(&s->lock);
	(void)!write(s->wake[1], "c", 1);
	return NULL;
}

int iscsi_serve_fd(struct iscsi_srv *s, int fd)
{
	struct iscsi_conn *c = conn_new(s, fd);
	int r;

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_lock(&s->lock);
	conn_link(s, c);
	pthread_mutex_unlock(&s->lock);
	r = conn_serve(c);
	pthread_mutex_lock(&s->lock);
	conn_unlink(s, c);
	pthread_mutex_unlock(&s->lock);
	conn_free(c);
	return r;
}

static void reap(struct iscsi_srv *s, bool all)
{
	for (;;) {
		struct iscsi_conn *c, *found = NULL;

		pthread_mutex_lock(&s->lock);
		for (c = s->conns; c && !found; c = c->next)
			if (c->detached_run && (c->done || all))
				found = c;
		if (found)
			conn_unlink(s, found);
		pthread_mutex_unlock(&s->lock);
		if (!found)
			return;
		pthread_join(found->thread, NULL);
		conn_free(found);
	}
}

static void accept_one(struct iscsi_srv *s, int lfd)
{
	struct iscsi_conn *c;
	pthread_attr_t attr;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->active >= s->max_conns) {
		s->refused++;
		pthread_mutex_unlock(&s->lock);
		if (s->log)
			s->log(s->log_opaque, ISCSI_LOG_ERROR,
			       "refused a connection: already serving the maximum number");
		close(fd);
		return;
	}
	c = conn_new(s, fd);
	if (!c) {
		pthread_mutex_unlock(&s->lock);
		close(fd);
		return;
	}
	c->detached_run = true;
	conn_link(s, c);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1u << 20);
	if (pthread_create(&c->thread, &attr, conn_thread, c)) {
		conn_unlink(s, c);
		s->active--;
		pthread_mutex_unlock(&s->lock);
		pthread_attr_destroy(&attr);
		close(fd);
		conn_free(c);
		return;
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_unlock(&s->lock);
}

static void shutdown_conns(struct iscsi_srv *s, int how)
{
	pthread_mutex_lock(&s->lock);
	for (struct iscsi_conn *c = s->conns; c; c = c->next)
		if (c->fd >= 0)
			shutdown(c->fd, how);
	pthread_mutex_unlock(&s->lock);
}

int iscsi_run(struct iscsi_srv *s)
{
	struct pollfd pf[ISCSI_MAX_LISTEN + 1], wake;
	char drain[64];
	int r = 0;

	if (!s->nlfd)
		return set_err(s, EINVAL, "no listening socket");
	for (int i = 0; i < s->nlfd; i++) {
		pf[i].fd = s->lfd[i];
		pf[i].events = POLLIN;
		fcntl(s->lfd[i], F_SETFL, fcntl(s->lfd[i], F_GETFL) | O_NONBLOCK);
	}
	pf[s->nlfd].fd = s->wake[0];
	pf[s->nlfd].events = POLLIN;
	while (!atomic_load(&s->stopping)) {
		if (poll(pf, (nfds_t)s->nlfd + 1, 1000) < 0 && errno != EINTR) {
			r = set_err(s, errno, "poll: %s", strerror(errno));
			break;
		}
		while (read(s->wake[0], drain, sizeof(drain)) > 0)
			;
		reap(s, false);
		for (int i = 0; i < s->nlfd && !atomic_load(&s->stopping); i++)
			if (pf[i].revents & POLLIN)
				accept_one(s, s->lfd[i]);
	}
	for (int i = 0; i < s->nlfd; i++)
		close(s->lfd[i]);
	s->nlfd = 0;
	atomic_store(&s->stopping, true);
	/* No more requests; running commands finish and are answered. */
	shutdown_conns(s, SHUT_RD);
	wake = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
	for (unsigned waited = 0; waited < s->stop_grace_ms; waited += 50) {
		unsigned active;

		pthread_mutex_lock(&s->lock);
		active = s->active;
		pthread_mutex_unlock(&s->lock);
		if (!active)
			break;
		poll(&wake, 1, 50);
		while (read(s->wake[0], drain, sizeof(drain)) > 0)
			;
		reap(s, false);
	}
	shutdown_conns(s, SHUT_RDWR);
	reap(s, true);
	return r;
}
