/* nbd server: setup, listening sockets, the accept loop, connection
 * lifecycle, stop, statistics and the per-connection payload budget.
 *
 * Threads: nbdsrv_run's thread accepts; each connection gets a thread that
 * does the handshake and then becomes worker 0 of its transmission phase
 * (transmit.c).  s->lock guards the connection list and counters; a
 * connection's fd is closed under s->lock so that nbdsrv_run can shut it
 * down (on stop) without racing with the close.  The wake pipe tells the
 * accept loop about stop requests (from a signal handler) and about
 * connections that ended (to join their threads). */
#include "nbd-int.h"

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
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
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
	return s->err[0] ? s->err : "no error";
}

void nbdsrv_logf(struct nbdsrv_conn *c, int level, const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	int n;

	if (!c->s->log)
		return;
	n = snprintf(msg, sizeof(msg), "client %u: ", c->id);
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
	pthread_mutex_lock(&c->s->lock);
	c->s->protocol_errors++;
	pthread_mutex_unlock(&c->s->lock);
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

/* ---- setup ---- */

struct nbdsrv *nbdsrv_new(struct bdev *b, const struct nbdsrv_opts *o,
			  struct bdev_err *e)
{
	static const struct nbdsrv_opts defaults = { 0 };
	struct nbdsrv *s;
	size_t need;

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
	s->max_clients = o->max_clients ? o->max_clients : 16;
	s->workers = o->workers ? o->workers : 8;
	/* One maximum request plus every worker's kept buffer always fits,
	 * so a worker waiting for budget cannot wait forever. */
	need = NBDSRV_MAX_PAYLOAD + (size_t)(s->workers + 1) * NBDSRV_KEEP_BUF;
	s->max_buffer = UTIL_MAX(o->max_buffer ? o->max_buffer : (size_t)64 << 20, need);
	s->once = o->once;
	s->stop_grace_ms = o->stop_grace_ms ? o->stop_grace_ms : 10000;
	s->handshake_ms = o->handshake_ms ? o->handshake_ms : 30000;
	s->log = o->log;
	s->log_opaque = o->log_opaque;
	s->wake[0] = s->wake[1] = -1;
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		bdev_err_set(e, errno, "cannot create a pipe: %s", strerror(errno));
		free(s->name);
		free(s->desc);
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
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
	for (int i = 0; i < s->nlfd; i++)
		close(s->lfd[i]);
	if (s->unix_path) {
		unlink(s->unix_path);
		free(s->unix_path);
	}
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_mutex_destroy(&s->lock);
	free(s->name);
	free(s->desc);
	free(s);
}

void nbdsrv_stop(struct nbdsrv *s)
{
	int saved = errno;

	atomic_store(&s->stopping, true);
	(void)!write(s->wake[1], "s", 1);
	errno = saved;
}

void nbdsrv_get_stats(struct nbdsrv *s, struct nbdsrv_stats *st)
{
	pthread_mutex_lock(&s->lock);
	st->active = s->active;
	st->accepted = s->accepted;
	st->refused = s->refused;
	st->protocol_errors = s->protocol_errors;
	pthread_mutex_unlock(&s->lock);
	st->requests = atomic_load(&s->requests);
	st->buf_bytes = atomic_load(&s->buf_bytes);
	st->buf_peak = atomic_load(&s->buf_peak);
}

/* ---- listening ---- */

static int add_listener(struct nbdsrv *s, int fd)
{
	if (s->nlfd == NBDSRV_MAX_LISTEN) {
		close(fd);
		return set_err(s, EMFILE, "more than %d listening sockets",
			       NBDSRV_MAX_LISTEN);
	}
	s->lfd[s->nlfd++] = fd;
	return 0;
}

int nbdsrv_listen_fd(struct nbdsrv *s, int fd)
{
	int type = 0, acc = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(acc);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0)
		return set_err(s, errno, "descriptor %d is not a socket: %s", fd,
			       strerror(errno));
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l2) < 0 ||
	    type != SOCK_STREAM || !acc)
		return set_err(s, EINVAL, "descriptor %d is not a listening stream socket", fd);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return set_err(s, errno, "descriptor %d: %s", fd, strerror(errno));
	return add_listener(s, fd);
}

int nbdsrv_listen_unix(struct nbdsrv *s, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (strlen(path) >= sizeof(a.sun_path))
		return set_err(s, ENAMETOOLONG, "%s: socket path longer than %zu bytes",
			       path, sizeof(a.sun_path) - 1);
	if (s->unix_path)
		return set_err(s, EBUSY, "%s: only one unix socket per server", path);
	strcpy(a.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return set_err(s, EEXIST, "%s: exists and is not a socket", path);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return set_err(s, errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		r = set_err(s, errno, "%s: cannot listen: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	s->unix_path = strdup(path);
	if (!s->unix_path) {
		close(fd);
		unlink(path);
		return set_err(s, ENOMEM, "out of memory");
	}
	return add_listener(s, fd);
}

int nbdsrv_listen_tcp(struct nbdsrv *s, const char *addr, unsigned port)
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
	for (ai = res; ai; ai = ai->ai_next) {
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
		r = add_listener(s, fd);
		if (r) {
			freeaddrinfo(res);
			return r;
		}
		n++;
		if (!port)
			break;   /* port 0: one socket, one port */
	}
	freeaddrinfo(res);
	if (!n)
		return set_err(s, err ? err : EADDRNOTAVAIL, "%s port %u: cannot listen: %s",
			       addr, port, strerror(err ? err : EADDRNOTAVAIL));
	return 0;
}

unsigned nbdsrv_tcp_port(struct nbdsrv *s)
{
	return s->tcp_port;
}

/* ---- connections ---- */

static struct nbdsrv_conn *conn_new(struct nbdsrv *s, int fd)
{
	struct nbdsrv_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->rbuf = malloc(NBDSRV_RBUF_SIZE);
	if (!c->rbuf) {
		free(c);
		return NULL;
	}
	c->s = s;
	c->fd = fd;
	pthread_mutex_init(&c->rlock, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	pthread_mutex_init(&c->block, NULL);
	pthread_cond_init(&c->bcond, NULL);
	return c;
}

static void conn_free(struct nbdsrv_conn *c)
{
	pthread_mutex_destroy(&c->rlock);
	pthread_mutex_destroy(&c->wlock);
	pthread_mutex_destroy(&c->block);
	pthread_cond_destroy(&c->bcond);
	free(c->meta_name);
	free(c->rbuf);
	free(c);
}

/* Register c as active (s->lock held). */
static void conn_link(struct nbdsrv *s, struct nbdsrv_conn *c)
{
	c->id = ++s->next_id;
	c->next = s->conns;
	s->conns = c;
	s->active++;
	s->accepted++;
}

static void conn_unlink(struct nbdsrv *s, struct nbdsrv_conn *c)
{
	for (struct nbdsrv_conn **p = &s->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
}

/* Receive and send timeout of a socket (0: none). */
static void set_timeout(int fd, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Handshake, then transmission; closes the socket. */
static int conn_serve(struct nbdsrv_conn *c)
{
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
	pthread_mutex_lock(&s->lock);
	close(c->fd);
	c->fd = -1;
	s->active--;
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void *conn_thread(void *arg)
{
	struct nbdsrv_conn *c = arg;
	struct nbdsrv *s = c->s;

	c->result = conn_serve(c);
	pthread_mutex_lock(&s->lock);
	c->done = true;
	pthread_mutex_unlock(&s->lock);
	(void)!write(s->wake[1], "c", 1);
	return NULL;
}

int nbdsrv_serve_fd(struct nbdsrv *s, int fd)
{
	struct nbdsrv_conn *c = conn_new(s, fd);
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

/* Join and free the connections that ended (all of them when `all`,
 * waiting for each). */
static void reap(struct nbdsrv *s, bool all)
{
	for (;;) {
		struct nbdsrv_conn *c, *found = NULL;

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

static void accept_one(struct nbdsrv *s, int lfd)
{
	struct nbdsrv_conn *c;
	pthread_attr_t attr;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;   /* EAGAIN, ECONNABORTED, EMFILE: try again later */
	pthread_mutex_lock(&s->lock);
	if (s->active >= s->max_clients) {
		s->refused++;
		pthread_mutex_unlock(&s->lock);
		if (s->log)
			s->log(s->log_opaque, NBDSRV_LOG_ERROR,
			       "refused a client: already serving the maximum number of clients");
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

/* shutdown() every connection's socket (how: SHUT_RD or SHUT_RDWR). */
static void shutdown_conns(struct nbdsrv *s, int how)
{
	pthread_mutex_lock(&s->lock);
	for (struct nbdsrv_conn *c = s->conns; c; c = c->next)
		if (c->fd >= 0)
			shutdown(c->fd, how);
	pthread_mutex_unlock(&s->lock);
}

int nbdsrv_run(struct nbdsrv *s)
{
	struct pollfd pf[NBDSRV_MAX_LISTEN + 1], wake;
	bool served = false;
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
		unsigned active;

		/* EMFILE and the like leave the socket readable: retry
		 * after a pause rather than spin. */
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
		pthread_mutex_lock(&s->lock);
		active = s->active;
		served |= s->accepted > 0;
		pthread_mutex_unlock(&s->lock);
		if (s->once && served && !active)
			break;
	}
	/* Stop listening, then let each connection finish what it serves:
	 * no more requests are read, replies still go out. */
	for (int i = 0; i < s->nlfd; i++)
		close(s->lfd[i]);
	s->nlfd = 0;
	atomic_store(&s->stopping, true);
	shutdown_conns(s, SHUT_RD);
	wake = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
	/* A client that does not read its replies could hold us forever:
	 * after the grace period its sends fail. */
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
	if (!s->read_only) {
		int f = bdev_flush(s->b);

		if (f && !r) {
			char msg[512];

			r = set_err(s, f, "flush: %s", bdev_errmsg(s->b, msg, sizeof(msg)));
		}
	}
	return r;
}
