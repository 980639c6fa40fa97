/* vmbus host transport: a partition's memory in a memfd, two message rings
 * and an event page at its top, eventfd doorbells, and one outside process
 * ("guest") attached over a unix socket (docs/vmbus-transport.md).
 *
 * The same transport also runs over a VM's own RAM (vmbus_host_new_vm): the
 * VMM owns the memory, turns our doorbell eventfd into a guest port (an
 * ioeventfd under KVM) and wakes the guest through its own callback (an
 * irqfd interrupt); the guest is attached from the start and never leaves.
 *
 * Threads: one thread calls vmbus_host_run and everything else; device
 * callbacks run on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmbus/vmbus.h"
#include "vmbus/vmbus-int.h"

#define BACKLOG_MAX 256		/* host messages waiting for ring space */

struct backlog_msg {
	uint32_t len;
	uint8_t b[VMBUS_MAX_MSG_SIZE];
};

struct vmbus_host {
	int mem_fd;
	uint8_t *mem;
	uint64_t mem_bytes, guest_bytes;
	uint64_t ev_gpa, g2h_gpa, h2g_gpa;
	uint64_t *ev_g2h, *ev_h2g;
	struct ring msg_in;	/* guest -> host */
	struct ring msg_out;	/* host -> guest */
	int efd_host;		/* the guest writes, we read */
	int efd_guest;		/* we write, the guest reads */
	int listen_fd, conn_fd;
	bool attached;		/* a guest is there (always, for a VM) */
	bool vm;		/* vmbus_host_new_vm: memory and wake-ups are the VMM's */
	void (*vm_wake)(void *opaque);
	void *vm_opaque;
	struct vmbus_mgr *mgr;
	struct backlog_msg *backlog;
	unsigned nbacklog;
	bool failed;		/* the guest broke the message ring: detach */
};

static void signal_guest(void *opaque, uint32_t relid)
{
	struct vmbus_host *h = opaque;
	uint64_t one = 1;

	xport_flag_set(h->ev_h2g, relid);
	if (h->vm) {
		h->vm_wake(h->vm_opaque);
		return;
	}
	/* the eventfd counter cannot overflow from writes of 1 in practice;
	 * a failed write means the fd is gone, which run() notices */
	(void)!write(h->efd_guest, &one, sizeof(one));
}

/* vmbus_mgr_post from another thread: ring our own doorbell. */
static void wake_host(void *opaque)
{
	struct vmbus_host *h = opaque;
	uint64_t one = 1;

	(void)!write(h->efd_host, &one, sizeof(one));
}

static enum ring_status put_msg(struct vmbus_host *h, const void *msg, uint32_t len)
{
	struct ring_iov iov = { msg, len };
	enum ring_status st;
	bool sig;

	st = ring_write(&h->msg_out, RING_PKT_DATA_INBAND, 0, len, 0, &iov, 1, &sig);
	if (st == RING_OK && sig)
		signal_guest(h, 0);
	return st;
}

/* Move backlogged messages into the ring while it has room. */
static int flush_backlog(struct vmbus_host *h)
{
	unsigned done = 0;
	enum ring_status st = RING_OK;

	while (done < h->nbacklog) {
		st = put_msg(h, h->backlog[done].b, h->backlog[done].len);
		if (st != RING_OK)
			break;
		done++;
	}
	memmove(h->backlog, h->backlog + done,
		(h->nbacklog - done) * sizeof(h->backlog[0]));
	h->nbacklog -= done;
	if (st == RING_NOSPACE) {
		/* ask the guest to signal once a message fits */
		if (ring_want_space(&h->msg_out, ring_packet_bytes(VMBUS_MAX_MSG_SIZE)))
			return flush_backlog(h);
		return 0;
	}
	if (st != RING_OK) {
		h->failed = true;
		return 0;
	}
	return 0;
}

static int host_send(void *opaque, const void *msg, size_t len)
{
	struct vmbus_host *h = opaque;
	enum ring_status st = RING_NOSPACE;

	if (!h->attached)
		return 0;	/* nobody to tell */
	if (h->nbacklog == 0)
		st = put_msg(h, msg, (uint32_t)len);
	if (st == RING_OK)
		return 0;
	if (st != RING_NOSPACE) {
		h->failed = true;	/* the guest corrupted read_index */
		return 0;
	}
	if (h->nbacklog == BACKLOG_MAX) {
		/* the guest does not read its messages: it will be detached */
		h->failed = true;
		return 0;
	}
	h->backlog[h->nbacklog].len = (uint32_t)len;
	memcpy(h->backlog[h->nbacklog].b, msg, len);
	h->nbacklog++;
	return flush_backlog(h);
}

/* Fresh event page and message rings for a new guest. */
static void format_shared(struct vmbus_host *h)
{
	uint64_t cnt;

	memset(h->mem + h->ev_gpa, 0, RING_PAGE_SIZE);
	ring_format(h->mem + h->g2h_gpa, RING_FEAT_PENDING_SEND_SZ);
	ring_format(h->mem + h->h2g_gpa, RING_FEAT_PENDING_SEND_SZ);
	(void)ring_attach(&h->msg_in, h->mem + h->g2h_gpa, VMBUS_XPORT_MSG_RING_BYTES);
	(void)ring_attach(&h->msg_out, h->mem + h->h2g_gpa, VMBUS_XPORT_MSG_RING_BYTES);
	h->nbacklog = 0;
	h->failed = false;
	/* forget doorbells of an earlier guest (the fds are non-blocking) */
	if (h->efd_host >= 0)
		(void)!read(h->efd_host, &cnt, sizeof(cnt));
	if (h->efd_guest >= 0)
		(void)!read(h->efd_guest, &cnt, sizeof(cnt));
}

/* The transport pages at the top of the memory, the eventfds and the
 * manager; h->mem, h->mem_fd and h->mem_bytes are set. */
static int host_init(struct vmbus_host *h)
{
	struct vmbus_mgr_cfg cfg;
	uint64_t top = h->mem_bytes - (uint64_t)VMBUS_XPORT_PAGES * RING_PAGE_SIZE;

	h->guest_bytes = top;
	h->ev_gpa = top;
	h->g2h_gpa = top + RING_PAGE_SIZE;
	h->h2g_gpa = h->g2h_gpa + VMBUS_XPORT_MSG_RING_BYTES;
	h->ev_g2h = (uint64_t *)(h->mem + h->ev_gpa + XPORT_EV_G2H);
	h->ev_h2g = (uint64_t *)(h->mem + h->ev_gpa + XPORT_EV_H2G);
	format_shared(h);
	h->efd_host = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!h->vm)
		h->efd_guest = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->efd_host < 0 || (!h->vm && h->efd_guest < 0))
		return -errno;
	cfg = (struct vmbus_mgr_cfg){ .mem_fd = h->mem_fd,
				      .guest_pages = top / RING_PAGE_SIZE,
				      .send = host_send, .signal = signal_guest,
				      .wake = wake_host,
				      .opaque = h };
	return vmbus_mgr_new(&cfg, &h->mgr);
}

static struct vmbus_host *host_alloc(void)
{
	struct vmbus_host *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->mem_fd = h->efd_host = h->efd_guest = h->listen_fd = h->conn_fd = -1;
	h->backlog = calloc(BACKLOG_MAX, sizeof(h->backlog[0]));
	if (!h->backlog) {
		free(h);
		return NULL;
	}
	return h;
}

int vmbus_host_new(uint64_t mem_bytes, struct vmbus_host **out)
{
	struct vmbus_host *h;
	int r;

	if (mem_bytes % RING_PAGE_SIZE ||
	    mem_bytes <= (uint64_t)(VMBUS_XPORT_PAGES + 1) * RING_PAGE_SIZE)
		return -EINVAL;
	h = host_alloc();
	if (!h)
		return -ENOMEM;
	h->mem_fd = memfd_create("vmbus-partition", MFD_CLOEXEC);
	if (h->mem_fd < 0 || ftruncate(h->mem_fd, (off_t)mem_bytes) < 0) {
		r = -errno;
		goto err;
	}
	h->mem = mmap(NULL, mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, h->mem_fd, 0);
	if (h->mem == MAP_FAILED) {
		h->mem = NULL;
		r = -errno;
		goto err;
	}
	h->mem_bytes = mem_bytes;
	r = host_init(h);
	if (r < 0)
		goto err;
	*out = h;
	return 0;
err:
	vmbus_host_free(h);
	return r;
}

int vmbus_host_new_vm(const struct vmbus_host_vm_cfg *c, struct vmbus_host **out)
{
	struct vmbus_host *h;
	int r;

	if (c->mem_bytes % RING_PAGE_SIZE || !c->mem || c->mem_fd < 0 || !c->wake ||
	    c->mem_bytes <= (uint64_t)(VMBUS_XPORT_PAGES + 1) * RING_PAGE_SIZE)
		return -EINVAL;
	h = host_alloc();
	if (!h)
		return -ENOMEM;
	h->vm = true;
	h->attached = true;
	h->mem = c->mem;
	h->mem_bytes = c->mem_bytes;
	h->mem_fd = fcntl(c->mem_fd, F_DUPFD_CLOEXEC, 0);
	h->vm_wake = c->wake;
	h->vm_opaque = c->opaque;
	if (h->mem_fd < 0) {
		r = -errno;
		goto err;
	}
	r = host_init(h);
	if (r < 0)
		goto err;
	*out = h;
	return 0;
err:
	vmbus_host_free(h);
	return r;
}

void vmbus_host_layout(const struct vmbus_host *h, struct vmbus_xport_hello *out)
{
	memset(out, 0, sizeof(*out));
	out->magic = VMBUS_XPORT_MAGIC;
	out->version = VMBUS_XPORT_VERSION;
	out->page_size = RING_PAGE_SIZE;
	out->mem_bytes = h->mem_bytes;
	out->guest_bytes = h->guest_bytes;
	out->event_gpa = h->ev_gpa;
	out->msg_g2h_gpa = h->g2h_gpa;
	out->msg_h2g_gpa = h->h2g_gpa;
	out->msg_ring_bytes = VMBUS_XPORT_MSG_RING_BYTES;
}

static void detach(struct vmbus_host *h)
{
	vmbus_mgr_reset(h->mgr);
	if (h->conn_fd >= 0)
		close(h->conn_fd);
	h->conn_fd = -1;
	h->attached = h->vm;	/* a VM's guest stays: it starts over */
	format_shared(h);
}

void vmbus_host_free(struct vmbus_host *h)
{
	if (!h)
		return;
	if (h->mgr)
		vmbus_mgr_free(h->mgr);
	if (h->conn_fd >= 0)
		close(h->conn_fd);
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	if (h->efd_host >= 0)
		close(h->efd_host);
	if (h->efd_guest >= 0)
		close(h->efd_guest);
	if (h->mem && !h->vm)
		munmap(h->mem, h->mem_bytes);
	if (h->mem_fd >= 0)
		close(h->mem_fd);
	free(h->backlog);
	free(h);
}

struct vmbus_mgr *vmbus_host_mgr(struct vmbus_host *h)
{
	return h->mgr;
}

void *vmbus_host_guest_mem(struct vmbus_host *h, uint64_t *guest_bytes)
{
	if (guest_bytes)
		*guest_bytes = h->guest_bytes;
	return h->mem;
}

int vmbus_host_event_fd(const struct vmbus_host *h)
{
	return h->efd_host;
}

int vmbus_host_listen(struct vmbus_host *h, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	h->listen_fd = fd;
	return 0;
}

int vmbus_host_accept(struct vmbus_host *h, int timeout_ms)
{
	struct pollfd p = { .fd = h->listen_fd, .events = POLLIN };
	struct vmbus_xport_hello hello;
	int fds[3] = { h->mem_fd, h->efd_host, h->efd_guest };
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &hello, sizeof(hello) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	int fd, r;

	if (h->listen_fd < 0 || h->vm)
		return -EINVAL;
	if (h->attached)
		return -EBUSY;
	r = poll(&p, 1, timeout_ms);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;

	vmbus_host_layout(h, &hello);
	memset(&u, 0, sizeof(u));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	/* fresh rings before the guest can see them */
	format_shared(h);
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(hello)) {
		r = errno ? -errno : -EIO;
		close(fd);
		return r;
	}
	h->conn_fd = fd;
	h->attached = true;
	return 0;
}

/* Handle every message in the guest->host ring.  The ring is drained
 * without masking: after committing, re-check before going back to sleep
 * (see ring_commit). */
static int drain_messages(struct vmbus_host *h)
{
	union {
		uint8_t b[XPORT_MSG_PKT_MAX];
		uint64_t align;
	} buf;
	struct ring_pkt pkt;
	enum ring_status st;
	int r;

	for (;;) {
		while ((st = ring_read(&h->msg_in, buf.b, sizeof(buf), &pkt)) == RING_OK) {
			uint32_t room = pkt.len - pkt.payload_off;

			/* trans_id carries the message's exact length */
			if (pkt.type != RING_PKT_DATA_INBAND || pkt.trans_id > room ||
			    pkt.trans_id > VMBUS_MAX_MSG_SIZE) {
				h->failed = true;
				return 0;
			}
			r = vmbus_mgr_handle(h->mgr, buf.b + pkt.payload_off,
					     (size_t)pkt.trans_id);
			if (r < 0)
				return r;
		}
		if (st != RING_EMPTY) {
			h->failed = true;	/* corrupt ring, oversized packet */
			return 0;
		}
		if (ring_commit(&h->msg_in))
			signal_guest(h, 0);
		if (ring_bytes_to_read(&h->msg_in) == 0)
			return 0;
	}
}

int vmbus_host_run(struct vmbus_host *h, int timeout_ms)
{
	struct pollfd p[2] = {
		{ .fd = h->efd_host, .events = POLLIN },
		{ .fd = h->conn_fd, .events = POLLIN },
	};
	uint64_t cnt;
	int r;

	if (!h->attached)
		return -ENOTCONN;
	r = poll(p, 2, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (p[1].revents) {
		/* the guest sends nothing on the socket: readable = gone */
		detach(h);
		return -ENOTCONN;
	}
	if (read(h->efd_host, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	/* flags first (they were set before the doorbell), then the work */
	for (uint32_t i = 0; i < XPORT_EV_WORDS; i++) {
		uint64_t w = xport_flag_take(h->ev_g2h, i);

		while (w) {
			uint32_t bit = (uint32_t)__builtin_ctzll(w);

			w &= w - 1;
			if (i == 0 && bit == 0)
				continue;	/* messages: always drained below */
			vmbus_mgr_signal(h->mgr, i * 64 + bit);
		}
	}
	vmbus_mgr_run_posted(h->mgr);
	r = drain_messages(h);
	if (r < 0)
		return r;
	if (h->nbacklog)
		flush_backlog(h);
	if (h->failed) {
		/* a VM's guest broke its message ring: everything is reset and
		 * it may start over (INITIATE_CONTACT) */
		detach(h);
		return h->vm ? -EPROTO : -ENOTCONN;
	}
	return 0;
}
