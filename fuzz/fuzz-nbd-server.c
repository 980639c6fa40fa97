/* libFuzzer target: the NBD server driven through its real entry point.
 *
 * The input is everything a client sends: the handshake (client flags,
 * options) and then transmission requests, as raw bytes.  Like nbdkit's
 * server fuzzer, each input runs one session over a socketpair:
 * nbdsrv_serve_fd serves the server end in a thread while this thread
 * writes the input into the client end (then shuts down the writing half,
 * an end of input) and reads and throws away whatever the server replies,
 * until the server closes.  The export is a 1 MiB raw file in a private
 * folder (in /dev/shm when it exists), writable, so reads, writes, trims,
 * zeroes and block status all reach a real back-end.
 *
 * Crashes, leaks, UB and hangs are found by the sanitizers and libFuzzer's
 * timeout; the server's return value is not judged (a hostile client may
 * end the session any way it likes).
 *
 * Seeds: fuzz/corpus/fuzz-nbd-server/ (fuzz/mkseeds-nbd.py writes them).
 * tests/unit/test-nbd-fuzz-regress.c includes this file with
 * FUZZ_NBD_SERVER_NO_ENTRY defined and replays every file of that folder
 * (the seeds and the crash-* reproducers) in `make check`.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/bdev.h"
#include "nbd/nbdsrv.h"

#define FZ_DISK_SIZE (1u << 20)

static char fz_dir[64], fz_img[128];
static struct bdev *fz_b;
static struct nbdsrv *fz_s;

static void fz_cleanup(void)
{
	if (fz_s)
		nbdsrv_free(fz_s);
	if (fz_b)
		bdev_close(fz_b);
	fz_s = NULL;
	fz_b = NULL;
	if (fz_dir[0]) {
		unlink(fz_img);
		rmdir(fz_dir);
		fz_dir[0] = '\0';
	}
}

static int fz_setup(void)
{
	struct nbdsrv_opts o = { .export_name = "fuzz", .description = "fuzz",
				 .workers = 2, .handshake_ms = 5000,
				 .stop_grace_ms = 1000 };
	struct bdev_err e = { 0 };
	int fd;

	snprintf(fz_dir, sizeof(fz_dir), "/dev/shm/fuzz-nbd-XXXXXX");
	if (!mkdtemp(fz_dir)) {
		snprintf(fz_dir, sizeof(fz_dir), "/tmp/fuzz-nbd-XXXXXX");
		if (!mkdtemp(fz_dir))
			return -1;
	}
	snprintf(fz_img, sizeof(fz_img), "%s/disk.raw", fz_dir);
	fd = open(fz_img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, FZ_DISK_SIZE) ||
	    pwrite(fd, "data", 4, 8192) != 4) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	fz_b = bdev_file_open(fz_img, 0, &e);
	if (!fz_b) {
		fprintf(stderr, "fuzz-nbd-server: %s\n", e.msg);
		return -1;
	}
	fz_s = nbdsrv_new(fz_b, &o, &e);
	if (!fz_s) {
		fprintf(stderr, "fuzz-nbd-server: %s\n", e.msg);
		return -1;
	}
	return 0;
}

struct fz_srv {
	int fd;
	int result;
};

static void *fz_serve(void *arg)
{
	struct fz_srv *t = arg;

	t->result = nbdsrv_serve_fd(fz_s, t->fd);
	return NULL;
}

/* Write data into fd and drain what comes back until the peer closes. */
static void fz_talk(int fd, const uint8_t *data, size_t size)
{
	static uint8_t sink[65536];
	size_t sent = 0;
	bool wr_open = true;

	if (size == 0) {
		shutdown(fd, SHUT_WR);
		wr_open = false;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (wr_open)
			p.events |= POLLOUT;
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			r = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
			if (r == 0)
				return;              /* the server closed */
			if (r < 0 && errno != EAGAIN && errno != EINTR)
				return;
		}
		if (wr_open && (p.revents & POLLOUT)) {
			r = send(fd, data + sent, size - sent,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (r > 0)
				sent += (size_t)r;
			else if (r < 0 && errno != EAGAIN && errno != EINTR)
				wr_open = false;     /* server gone: keep draining */
			if (sent == size) {
				shutdown(fd, SHUT_WR);
				wr_open = false;
			}
		}
	}
}

/* One session: data is what the client sends.  Returns what
 * nbdsrv_serve_fd returned. */
static int fz_one(const uint8_t *data, size_t size)
{
	struct fz_srv t;
	pthread_t thr;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	t.fd = sv[1];
	if (pthread_create(&thr, NULL, fz_serve, &t))
		abort();
	fz_talk(sv[0], data, size);
	pthread_join(thr, NULL);
	close(sv[0]);
	return t.result;
}

#ifndef FUZZ_NBD_SERVER_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;

	if (!ready) {
		if (fz_setup())
			abort();
		atexit(fz_cleanup);
		ready = true;
	}
	(void)fz_one(data, size);
	return 0;
}
#endif
