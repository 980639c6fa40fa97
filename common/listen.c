/* listen: listening sockets, the accept loop and connection lifecycle of
 * the NBD server and the iSCSI target (see listen.h). */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int set_err(struct listen *l, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int set_err(struct listen *l, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->err, sizeof(l->err), fmt, ap);
	va_end(ap);
	return code < 0 ? code : -code;
}

const char *listen_errmsg(struct listen *l)
{
	return l->err[0] ? l->err : "no error";
}

int listen_init(struct listen *l, const struct listen_ops *ops, void *opaque,
		const struct listen_opts *o)
{
	memset(l, 0, sizeof(*l));
	l->ops = ops;
	l->opaque = opaque;
	if (o)
		l->o = *o;
	if (!l->o.max_conns)
		l->o.max_conns = 16;
	if (!l->o.stop_grace_ms)
		l->o.stop_grace_ms = 10000;
	if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	atomic_init(&l->stopping, false);
	pthread_mutex_init(&l->lock, NULL);
	return 0;
}

void listen_fini(struct listen *l)
{
	for (int i = 0; i < l->nlfd; i++)
		close(l->lfd[i]);
	l->nlfd = 0;
	if (l->unix_path) {
		unlink(l->unix_path);
		free(l->unix_path);
		l->unix_path = NULL;
	}
	close(l->wake[0]);
	close(l->wake[1]);
	pthread_mutex_destroy(&l->lock);
}

void listen_conn_init(struct listen_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
}

void listen_stop(struct listen *l)
{
	int saved = errno;

	atomic_store(&l->stopping, true);
	(void)!write(l->wake[1], "s", 1);
	errno = saved;
}

bool listen_stopping(struct listen *l)
{
	return atomic_load(&l->stopping);
}

void listen_proto_error(struct listen *l)
{
	pthread_mutex_lock(&l->lock);
	l->protocol_errors++;
	pthread_mutex_unlock(&l->lock);
}

void listen_get_stats(struct listen *l, unsigned *active, uint64_t *accepted,
		      uint64_t *refused, uint64_t *protocol_errors)
{
	pthread_mutex_lock(&l->lock);
	*active = l->active;
	*accepted = l->accepted;
	*refused = l->refused;
	*protocol_errors = l->protocol_errors;
	pthread_mutex_unlock(&l->lock);
}

/* ---- listening ---- */

static int add_listener(struct listen *l, int fd)
{
	if (l->nlfd == LISTEN_MAX_FDS) {
		close(fd);
		return set_err(l, EMFILE, "more than %d listening sockets", LISTEN_MAX_FDS);
	}
	l->lfd[l->nlfd++] = fd;
	return 0;
}

int listen_fd(struct listen *l, int fd)
{
	int type = 0, acc = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(acc);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0)
		return set_err(l, errno, "descriptor %d is not a socket: %s", fd,
			       strerror(errno));
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l2) < 0 ||
	    type != SOCK_STREAM || !acc)
		return set_err(l, EINVAL, "descriptor %d is not a listening stream socket", fd);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return set_err(l, errno, "descriptor %d: %s", fd, strerror(errno));
	return add_listener(l, fd);
}

int listen_unix(struct listen *l, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (strlen(path) >= sizeof(a.sun_path))
		return set_err(l, ENAMETOOLONG, "%s: socket path longer than %zu bytes",
			       path, sizeof(a.sun_path) - 1);
	if (l->unix_path)
		return set_err(l, EBUSY, "%s: only one unix socket per server", path);
	strcpy(a.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return set_err(l, EEXIST, "%s: exists and is not a socket", path);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return set_err(l, errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		r = set_err(l, errno, "%s: cannot listen: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	l->unix_path = strdup(path);
	if (!l->unix_path) {
		close(fd);
		unlink(path);
		return set_err(l, ENOMEM, "out of memory");
	}
	return add_listener(l, fd);
}

int listen_tcp(struct listen *l, const char *addr, unsigned port)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				  .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	char ps[16];
	int r, n = 0, err = 0;

	if (port > 65535)
		return set_err(l, EINVAL, "port %u is out of range", port);
	if (!addr)
		addr = "127.0.0.1";
	snprintf(ps, sizeof(ps), "%u", port);
	r = getaddrinfo(addr, ps, &hints, &res);
	if (r)
		return set_err(l, EINVAL, "%s: %s", addr, gai_strerror(r));
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
		if (!l->tcp_port) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
				l->tcp_port = ntohs(ss.ss_family == AF_INET6 ?
					((struct sockaddr_in6 *)&ss)->sin6_port :
					((struct sockaddr_in *)&ss)->sin_port);
		}
		r = add_listener(l, fd);
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
		return set_err(l, err ? err : EADDRNOTAVAIL, "%s port %u: cannot listen: %s",
			       addr, port, strerror(err ? err : EADDRNOTAVAIL));
	return 0;
}

int listen_activation_fds(char *msg, size_t cap)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	unsigned long p, n;
	char *end;

	if (!pid || !fds)
		return 0;
	errno = 0;
	p = strtoul(pid, &end, 10);
	if (errno || end == pid || *end || p != (unsigned long)getpid())
		return 0;	/* meant for another process */
	n = strtoul(fds, &end, 10);
	if (errno || end == fds || *end || n < 1 || n > LISTEN_MAX_FDS) {
		snprintf(msg, cap, "socket activation: LISTEN_FDS='%s' is not a count from 1 to %d",
			 fds, LISTEN_MAX_FDS);
		return -EINVAL;
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return (int)n;
}

int listen_exit_with_parent(int parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		return -errno;
	if (getppid() != parent)
		raise(SIGTERM);
	return 0;
}

unsigned listen_tcp_port(struct listen *l)
{
	return l->tcp_port;
}

/* ---- connections ---- */

/* Register c as active (l->lock held). */
static void conn_link(struct listen *l, struct listen_conn *c)
{
	c->owner = l;
	c->id = ++l->next_id;
	c->next = l->conns;
	l->conns = c;
	l->active++;
	l->accepted++;
}

static void conn_unlink(struct listen *l, struct listen_conn *c)
{
	for (struct listen_conn **p = &l->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
}

/* The protocol's serve, then the socket closed under the lock. */
static int conn_serve(struct listen *l, struct listen_conn *c)
{
	int r = l->ops->conn_serve(c);

	pthread_mutex_lock(&l->lock);
	close(c->fd);
	c->fd = -1;
	l->active--;
	pthread_mutex_unlock(&l->lock);
	return r;
}

static void *conn_thread(void *arg)
{
	struct listen_conn *c = arg;
	struct listen *l = c->owner;

	c->result = conn_serve(l, c);
	pthread_mutex_lock(&l->lock);
	c->done = true;
	pthread_mutex_unlock(&l->lock);
	(void)!write(l->wake[1], "c", 1);
	return NULL;
}

int listen_serve_fd(struct listen *l, int fd)
{
	struct listen_conn *c = l->ops->conn_new(l->opaque, fd);
	int r;

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_lock(&l->lock);
	conn_link(l, c);
	pthread_mutex_unlock(&l->lock);
	r = conn_serve(l, c);
	pthread_mutex_lock(&l->lock);
	conn_unlink(l, c);
	pthread_mutex_unlock(&l->lock);
	l->ops->conn_free(c);
	return r;
}

/* Join and free the connections that ended (all of them when `all`,
 * waiting for each). */
static void reap(struct listen *l, bool all)
{
	for (;;) {
		struct listen_conn *c, *found = NULL;

		pthread_mutex_lock(&l->lock);
		for (c = l->conns; c && !found; c = c->next)
			if (c->detached_run && (c->done || all))
				found = c;
		if (found)
			conn_unlink(l, found);
		pthread_mutex_unlock(&l->lock);
		if (!found)
			return;
		pthread_join(found->thread, NULL);
		l->ops->conn_free(found);
	}
}

static void accept_one(struct listen *l, int lfd)
{
	struct listen_conn *c;
	pthread_attr_t attr;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;   /* EAGAIN, ECONNABORTED, EMFILE: try again later */
	pthread_mutex_lock(&l->lock);
	if (l->active >= l->o.max_conns) {
		l->refused++;
		pthread_mutex_unlock(&l->lock);
		if (l->o.log)
			l->o.log(l->opaque, "refused a connection: already serving the maximum number of connections");
		close(fd);
		return;
	}
	c = l->ops->conn_new(l->opaque, fd);
	if (!c) {
		pthread_mutex_unlock(&l->lock);
		close(fd);
		return;
	}
	c->detached_run = true;
	conn_link(l, c);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1u << 20);
	if (pthread_create(&c->thread, &attr, conn_thread, c)) {
		conn_unlink(l, c);
		l->active--;
		pthread_mutex_unlock(&l->lock);
		pthread_attr_destroy(&attr);
		close(fd);
		l->ops->conn_free(c);
		return;
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_unlock(&l->lock);
}

/* shutdown() every connection's socket (how: SHUT_RD or SHUT_RDWR). */
static void shutdown_conns(struct listen *l, int how)
{
	pthread_mutex_lock(&l->lock);
	for (struct listen_conn *c = l->conns; c; c = c->next)
		if (c->fd >= 0)
			shutdown(c->fd, how);
	pthread_mutex_unlock(&l->lock);
}

static void drain_wake(struct listen *l)
{
	char drain[64];

	while (read(l->wake[0], drain, sizeof(drain)) > 0)
		;
}

int listen_run(struct listen *l)
{
	struct pollfd pf[LISTEN_MAX_FDS + 1], wake;
	bool served = false;
	int r = 0;

	if (!l->nlfd)
		return set_err(l, EINVAL, "no listening socket");
	for (int i = 0; i < l->nlfd; i++) {
		pf[i].fd = l->lfd[i];
		pf[i].events = POLLIN;
		fcntl(l->lfd[i], F_SETFL, fcntl(l->lfd[i], F_GETFL) | O_NONBLOCK);
	}
	pf[l->nlfd].fd = l->wake[0];
	pf[l->nlfd].events = POLLIN;
	while (!atomic_load(&l->stopping)) {
		unsigned active;

		/* EMFILE and the like leave the socket readable: retry
		 * after a pause rather than spin. */
		if (poll(pf, (nfds_t)l->nlfd + 1, 1000) < 0 && errno != EINTR) {
			r = set_err(l, errno, "poll: %s", strerror(errno));
			break;
		}
		drain_wake(l);
		reap(l, false);
		for (int i = 0; i < l->nlfd && !atomic_load(&l->stopping); i++)
			if (pf[i].revents & POLLIN)
				accept_one(l, l->lfd[i]);
		pthread_mutex_lock(&l->lock);
		active = l->active;
		served |= l->accepted > 0;
		pthread_mutex_unlock(&l->lock);
		if (l->o.once && served && !active)
			break;
	}
	/* Stop listening, then let each connection finish what it serves:
	 * no more requests are read, replies still go out. */
	for (int i = 0; i < l->nlfd; i++)
		close(l->lfd[i]);
	l->nlfd = 0;
	atomic_store(&l->stopping, true);
	shutdown_conns(l, SHUT_RD);
	wake = (struct pollfd){ .fd = l->wake[0], .events = POLLIN };
	/* A peer that does not read its replies could hold us forever:
	 * after the grace period its sends fail. */
	for (unsigned waited = 0; waited < l->o.stop_grace_ms; waited += 50) {
		unsigned active;

		pthread_mutex_lock(&l->lock);
		active = l->active;
		pthread_mutex_unlock(&l->lock);
		if (!active)
			break;
		poll(&wake, 1, 50);
		drain_wake(l);
		reap(l, false);
	}
	shutdown_conns(l, SHUT_RDWR);
	reap(l, true);
	return r;
}
