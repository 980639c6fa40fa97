/* vmbus guest-side client: attach to a host's partition transport
 * (docs/vmbus-transport.md), post and receive control messages, signal
 * and wait on channels.  For a process standing in for a guest (tests,
 * the storvsc-side client).  Single-threaded.
 *
 * The host is trusted no more than necessary: the hello's addresses are
 * checked against the memory size before anything is mapped or attached.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmbus/vmbus.h"
#include "common/fs-compiler.h"
#include "common/fs-overflow.h"
#include "vmbus/vmbus-int.h"

struct vmbus_guest {
	int sock, mem_fd, efd_host, efd_guest;
	uint8_t *mem;
	uint64_t mem_bytes, guest_bytes;
	uint64_t *ev_g2h, *ev_h2g;
	struct ring msg_out;	/* guest -> host */
	struct ring msg_in;	/* host -> guest */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int recv_hello(int sock, struct vmbus_xport_hello *hello, int fds[3])
{
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { hello, sizeof(*hello) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t n;

	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	if (n < 0)
		return -errno;
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(3 * sizeof(int)))
		return -EPROTO;
	memcpy(fds, CMSG_DATA(c), 3 * sizeof(int));
	if (n != (ssize_t)sizeof(*hello) || (mh.msg_flags & MSG_CTRUNC)) {
		for (int i = 0; i < 3; i++)
			close(fds[i]);
		return -EPROTO;
	}
	return 0;
}

static bool hello_ok(const struct vmbus_xport_hello *hl, uint64_t fd_size)
{
	uint64_t rb = hl->msg_ring_bytes;

	return hl->magic == VMBUS_XPORT_MAGIC && hl->version == VMBUS_XPORT_VERSION &&
	       hl->page_size == RING_PAGE_SIZE && hl->mem_bytes == fd_size &&
	       hl->mem_bytes % RING_PAGE_SIZE == 0 && hl->guest_bytes <= hl->mem_bytes &&
	       hl->guest_bytes % RING_PAGE_SIZE == 0 &&
	       hl->event_gpa % RING_PAGE_SIZE == 0 &&
	       fs_range_ok(hl->event_gpa, RING_PAGE_SIZE, hl->mem_bytes) &&
	       hl->msg_g2h_gpa % RING_PAGE_SIZE == 0 &&
	       fs_range_ok(hl->msg_g2h_gpa, rb, hl->mem_bytes) &&
	       hl->msg_h2g_gpa % RING_PAGE_SIZE == 0 &&
	       fs_range_ok(hl->msg_h2g_gpa, rb, hl->mem_bytes);
}

int vmbus_guest_attach(const char *path, struct vmbus_guest **out)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct vmbus_xport_hello hello;
	struct vmbus_guest *g;
	struct stat st;
	int fds[3], r;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->mem_fd = g->efd_host = g->efd_guest = -1;
	g->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (g->sock < 0 || connect(g->sock, (struct sockaddr *)&a, sizeof(a)) < 0) {
		r = -errno;
		goto err;
	}
	r = recv_hello(g->sock, &hello, fds);
	if (r < 0)
		goto err;
	g->mem_fd = fds[0];
	g->efd_host = fds[1];
	g->efd_guest = fds[2];
	if (fstat(g->mem_fd, &st) < 0) {
		r = -errno;
		goto err;
	}
	if (!hello_ok(&hello, (uint64_t)st.st_size)) {
		r = -EPROTO;
		goto err;
	}
	g->mem = mmap(NULL, hello.mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
		      g->mem_fd, 0);
	if (g->mem == MAP_FAILED) {
		g->mem = NULL;
		r = -errno;
		goto err;
	}
	g->mem_bytes = hello.mem_bytes;
	g->guest_bytes = hello.guest_bytes;
	g->ev_g2h = (uint64_t *)(g->mem + hello.event_gpa + XPORT_EV_G2H);
	g->ev_h2g = (uint64_t *)(g->mem + hello.event_gpa + XPORT_EV_H2G);
	if (ring_attach(&g->msg_out, g->mem + hello.msg_g2h_gpa, hello.msg_ring_bytes) ||
	    ring_attach(&g->msg_in, g->mem + hello.msg_h2g_gpa, hello.msg_ring_bytes)) {
		r = -EPROTO;
		goto err;
	}
	*out = g;
	return 0;
err:
	vmbus_guest_detach(g);
	return r;
}

void vmbus_guest_detach(struct vmbus_guest *g)
{
	if (!g)
		return;
	if (g->mem)
		munmap(g->mem, g->mem_bytes);
	if (g->sock >= 0)
		close(g->sock);
	if (g->mem_fd >= 0)
		close(g->mem_fd);
	if (g->efd_host >= 0)
		close(g->efd_host);
	if (g->efd_guest >= 0)
		close(g->efd_guest);
	free(g);
}

void *vmbus_guest_mem(struct vmbus_guest *g)
{
	return g->mem;
}

uint64_t vmbus_guest_pages(const struct vmbus_guest *g)
{
	return g->guest_bytes / RING_PAGE_SIZE;
}

void vmbus_guest_signal(struct vmbus_guest *g, uint32_t relid)
{
	uint64_t one = 1;

	xport_flag_set(g->ev_g2h, relid);
	(void)!write(g->efd_host, &one, sizeof(one));
}

/* Wait for a doorbell from the host up to deadline (ns, CLOCK_MONOTONIC;
 * < 0 forever).  Host->guest flags are only hints here: each caller
 * checks its own ring, so they are cleared and dropped.  -ETIMEDOUT when
 * the deadline passed. */
static int sleep_doorbell(struct vmbus_guest *g, int64_t deadline)
{
	struct pollfd p = { .fd = g->efd_guest, .events = POLLIN };
	int ms = -1, r;
	uint64_t cnt;

	if (deadline >= 0) {
		int64_t left = deadline - now_ns();

		if (left <= 0)
			return -ETIMEDOUT;
		ms = (int)((left + 999999) / 1000000);
	}
	r = poll(&p, 1, ms);
	if (r < 0 && errno != EINTR)
		return -errno;
	if (r > 0) {
		(void)!read(g->efd_guest, &cnt, sizeof(cnt));
		for (uint32_t i = 0; i < XPORT_EV_WORDS; i++)
			(void)xport_flag_take(g->ev_h2g, i);
	}
	return 0;
}

/* Until ring r has bytes to read: poll it for XPORT_SPIN_NS with the
 * ring's interrupts masked (the host need not signal a reader that is
 * polling: that saves it a doorbell write a reply, VMBus-style
 * suppression), then unmask, re-check and sleep on the doorbell.  The
 * mask is always cleared on return.  0, or -ETIMEDOUT. */
static int wait_ring(struct vmbus_guest *g, struct ring *r, int timeout_ms)
{
	int64_t start = now_ns();
	int64_t deadline = timeout_ms < 0 ? -1 : start + (int64_t)timeout_ms * 1000000;
	bool masked = false;
	int e = 0;

	while (ring_bytes_to_read(r) == 0) {
		if (now_ns() - start < XPORT_SPIN_NS) {
			if (!masked) {
				ring_mask_interrupts(r);
				masked = true;
			}
			cpu_relax();
			continue;
		}
		if (masked) {
			masked = false;
			if (ring_unmask_interrupts(r))
				break;	/* arrived meanwhile: no signal sent */
		}
		e = sleep_doorbell(g, deadline);
		if (e < 0)
			break;
	}
	if (masked)
		(void)ring_unmask_interrupts(r);
	return e;
}

int vmbus_guest_post(struct vmbus_guest *g, const void *msg, size_t len)
{
	struct ring_iov iov = { msg, (uint32_t)len };
	enum ring_status st;
	bool sig;

	if (len < sizeof(struct vmbus_msg_hdr) || len > VMBUS_MAX_MSG_SIZE)
		return -EINVAL;
	for (int tries = 0; tries < 1000; tries++) {
		st = ring_write(&g->msg_out, RING_PKT_DATA_INBAND, 0, len, 0, &iov, 1, &sig);
		if (st == RING_OK) {
			if (sig)
				vmbus_guest_signal(g, 0);
			return 0;
		}
		if (st != RING_NOSPACE)
			return -EPROTO;
		if (!ring_want_space(&g->msg_out, ring_packet_bytes((uint32_t)len)))
			if (sleep_doorbell(g, now_ns() + 10 * 1000000LL) < 0)
				continue;
	}
	return -ETIMEDOUT;
}

int vmbus_guest_recv(struct vmbus_guest *g, void *buf, size_t max, int timeout_ms)
{
	union {
		uint8_t b[XPORT_MSG_PKT_MAX];
		uint64_t align;
	} pkt_buf;
	struct ring_pkt pkt;
	enum ring_status st;
	int r;

	for (;;) {
		st = ring_read(&g->msg_in, pkt_buf.b, sizeof(pkt_buf), &pkt);
		if (st == RING_OK)
			break;
		if (st != RING_EMPTY)
			return -EPROTO;
		r = wait_ring(g, &g->msg_in, timeout_ms);
		if (r < 0)
			return r;
	}
	if (ring_commit(&g->msg_in))
		vmbus_guest_signal(g, 0);
	if (pkt.trans_id > pkt.len - pkt.payload_off || pkt.trans_id > max)
		return -EPROTO;
	memcpy(buf, pkt_buf.b + pkt.payload_off, (size_t)pkt.trans_id);
	return (int)pkt.trans_id;
}

int vmbus_guest_wait(struct vmbus_guest *g, struct vmbus_guest_chan *ch,
		     int timeout_ms)
{
	return wait_ring(g, &ch->in, timeout_ms);
}

int vmbus_guest_chan_init(struct vmbus_guest *g, struct vmbus_guest_chan *ch,
			  uint32_t relid, uint64_t first_pfn, uint32_t pages,
			  uint32_t off)
{
	uint8_t *base;

	if (off < 2 || off > pages || pages - off < 2 ||
	    first_pfn > vmbus_guest_pages(g) || pages > vmbus_guest_pages(g) - first_pfn)
		return -EINVAL;
	base = g->mem + first_pfn * RING_PAGE_SIZE;
	ch->relid = relid;
	if (ring_attach(&ch->out, base, (size_t)off * RING_PAGE_SIZE) ||
	    ring_attach(&ch->in, base + (size_t)off * RING_PAGE_SIZE,
			(size_t)(pages - off) * RING_PAGE_SIZE))
		return -EPROTO;
	return 0;
}
