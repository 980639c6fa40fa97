/* ctl: the control socket of `vmm-mini host` and `vmm-mini run`: a unix
 * stream socket, one client at a time, one JSON object a line each way.
 * The thread polls with a 200 ms timeout so that vmm_ctl_stop() is quick;
 * it never spins. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm-mini/vmm.h"

struct vmm_ctl {
	int fd;
	char *path;
	pthread_t thread;
	int quit;		/* atomic: vmm_ctl_stop sets it, the thread polls it */
	void (*handle)(void *opaque, const char *line, char *out, size_t cap);
	void *opaque;
};

static void send_all(int fd, const char *b, size_t n)
{
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		b += w;
		n -= (size_t)w;
	}
}

/* Serve one client until it leaves or we stop.  Lines longer than the
 * buffer are answered with an error and skipped. */
static void serve(struct vmm_ctl *c, int fd)
{
	static char out[16384];	/* one client at a time, one thread */
	char buf[4096];
	size_t have = 0;
	bool skipping = false;

	while (!__atomic_load_n(&c->quit, __ATOMIC_RELAXED)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char *nl;
		ssize_t r;

		if (poll(&p, 1, 200) <= 0)
			continue;
		r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		while ((nl = memchr(buf, '\n', have))) {
			size_t len = (size_t)(nl - buf) + 1;

			*nl = '\0';
			if (!skipping) {
				c->handle(c->opaque, buf, out, sizeof(out) - 1);
				strcat(out, "\n");
				send_all(fd, out, strlen(out));
			}
			skipping = false;
			memmove(buf, buf + len, have - len);
			have -= len;
			buf[have] = '\0';
		}
		if (have == sizeof(buf) - 1) {
			if (!skipping) {
				const char *e = "{\"error\":\"line too long\"}\n";

				send_all(fd, e, strlen(e));
			}
			skipping = true;
			have = 0;
		}
	}
	close(fd);
}

static void *ctl_thread(void *arg)
{
	struct vmm_ctl *c = arg;

	while (!__atomic_load_n(&c->quit, __ATOMIC_RELAXED)) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 200) <= 0)
			continue;
		fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			serve(c, fd);
	}
	return NULL;
}

int vmm_ctl_start(const char *path,
		  void (*handle)(void *opaque, const char *line, char *out, size_t cap),
		  void *opaque, struct vmm_ctl **out)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct vmm_ctl *c;
	int r;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->handle = handle;
	c->opaque = opaque;
	c->path = strdup(path);
	strcpy(a.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!c->path || c->fd < 0) {
		r = c->path ? -errno : -ENOMEM;
		goto fail;
	}
	unlink(path);
	if (bind(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(c->fd, 4) < 0) {
		r = -errno;
		goto fail;
	}
	r = -pthread_create(&c->thread, NULL, ctl_thread, c);
	if (r)
		goto fail;
	*out = c;
	return 0;
fail:
	if (c->fd >= 0)
		close(c->fd);
	free(c->path);
	free(c);
	return r;
}

void vmm_ctl_stop(struct vmm_ctl *c)
{
	if (!c)
		return;
	__atomic_store_n(&c->quit, 1, __ATOMIC_RELAXED);
	pthread_join(c->thread, NULL);
	close(c->fd);
	unlink(c->path);
	free(c->path);
	free(c);
}
