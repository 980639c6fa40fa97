/* nbd socket I/O: buffered input and whole-message output.
 *
 * Input goes through a per-connection buffer so that one recv() picks up
 * many pipelined request headers (a client at queue depth 32 sends them
 * back to back); payloads larger than half the buffer are received straight
 * into their destination.  Only one thread reads at a time (the handshake
 * thread, then the worker holding c->rlock). */
#include "nbd-int.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "common/util.h"

/* Receive into buf (up to n bytes).  Returns bytes, 0 at end of input, or
 * -errno. */
static ssize_t recv_some(int fd, void *buf, size_t n)
{
	for (;;) {
		ssize_t r = recv(fd, buf, n, 0);

		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

/* Copy or discard (dst NULL) the next n bytes of input.  Returns 0,
 * -ENODATA when input ended before the first byte, -EPIPE when it ended
 * part way, or -errno. */
static int in_take(struct nbdsrv_conn *c, uint8_t *dst, size_t n)
{
	bool started = false;

	while (n) {
		size_t have = c->rend - c->rpos;
		ssize_t r;

		if (have) {
			size_t m = UTIL_MIN(have, n);

			if (dst) {
				memcpy(dst, c->rbuf + c->rpos, m);
				dst += m;
			}
			c->rpos += m;
			n -= m;
			started = true;
			continue;
		}
		if (dst && n >= NBDSRV_RBUF_SIZE / 2) {
			r = recv_some(c->fd, dst, n);
			if (r > 0) {
				dst += r;
				n -= (size_t)r;
			}
		} else {
			c->rpos = c->rend = 0;
			r = recv_some(c->fd, c->rbuf, NBDSRV_RBUF_SIZE);
			if (r > 0)
				c->rend = (size_t)r;
		}
		if (r == 0)
			return started ? -EPIPE : -ENODATA;
		if (r < 0)
			return (int)r;
		started = true;
	}
	return 0;
}

int nbdsrv_in_read(struct nbdsrv_conn *c, void *dst, size_t n)
{
	return in_take(c, dst, n);
}

int nbdsrv_in_skip(struct nbdsrv_conn *c, size_t n)
{
	return in_take(c, NULL, n);
}

/* Send every byte described by iov (modified).  `more` sets MSG_MORE so
 * that the kernel may merge this message with the one that follows. */
int nbdsrv_send_all(int fd, struct iovec *iov, int n, bool more)
{
	struct msghdr m = { 0 };

	m.msg_iov = iov;
	m.msg_iovlen = (size_t)n;
	while (m.msg_iovlen) {
		ssize_t r = sendmsg(fd, &m, MSG_NOSIGNAL | (more ? MSG_MORE : 0));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (m.msg_iovlen && (size_t)r >= m.msg_iov->iov_len) {
			r -= (ssize_t)m.msg_iov->iov_len;
			m.msg_iov++;
			m.msg_iovlen--;
		}
		if (m.msg_iovlen) {
			m.msg_iov->iov_base = (uint8_t *)m.msg_iov->iov_base + r;
			m.msg_iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}
