/* Test harness shared by tests/unit/test-nbd-*.c: scratch images, a server
 * running in a thread (one connection over a socketpair, or nbdsrv_run on
 * a unix socket), log capture, and a "gate" bdev that wraps a real one and
 * can hold reads of a range until released or fail them, to observe
 * concurrency and error replies.  Everything is static inline so each test
 * uses what it needs. */
#ifndef NBD_HARNESS_H
#define NBD_HARNESS_H

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libnbd.h>

#include "common/bdev.h"
#include "common/util.h"
#include "nbd/nbdsrv.h"
#include "vhd/vhd.h"

struct th {
	char dir[64];
	struct bdev *b;            /* what the server serves */
	struct nbdsrv *s;
	pthread_t thr;
	bool running;
	int result;                /* of nbdsrv_serve_fd / nbdsrv_run */
	int srv_fd;
	char sock[128];
	pthread_mutex_t loglock;
	char log[16384];
	struct nbd_handle *hs[8];  /* open clients, closed by th_close_all */
};

static inline void th_init(struct th *t)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "/tmp/nbdtest.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->sock, sizeof(t->sock), "%s/sock", t->dir);
	pthread_mutex_init(&t->loglock, NULL);
}

static inline void th_path(const struct th *t, const char *name, char *out,
			   size_t len)
{
	snprintf(out, len, "%s/%s", t->dir, name);
}

/* Remove the scratch folder (flat: tests make no subfolders). */
static inline void th_fini(struct th *t)
{
	DIR *d = opendir(t->dir);
	struct dirent *e;
	char p[PATH_MAX];

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' && (!e->d_name[1] ||
		    (e->d_name[1] == '.' && !e->d_name[2])))
			continue;
		snprintf(p, sizeof(p), "%s/%s", t->dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(t->dir);
	pthread_mutex_destroy(&t->loglock);
}

static inline void th_log(void *opaque, int level, const char *msg)
{
	struct th *t = opaque;
	size_t n;

	(void)level;
	pthread_mutex_lock(&t->loglock);
	n = strlen(t->log);
	snprintf(t->log + n, sizeof(t->log) - n, "%s\n", msg);
	pthread_mutex_unlock(&t->loglock);
}

/* True if the server logged a line containing s. */
static inline bool th_logged(struct th *t, const char *s)
{
	bool r;

	pthread_mutex_lock(&t->loglock);
	r = strstr(t->log, s) != NULL;
	pthread_mutex_unlock(&t->loglock);
	return r;
}

/* Deterministic bytes: byte i of a pattern with this seed. */
static inline void th_fill(uint8_t *buf, size_t len, uint64_t start, unsigned seed)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (start + i) * 0x9e3779b97f4a7c15ull + seed;

		buf[i] = (uint8_t)(x >> 29 ^ x >> 47);
	}
}

static inline struct bdev *th_vhd_open(const char *path, bool ro)
{
	struct vhd_open_opts o = { .flags = ro ? VHD_O_RDONLY : 0 };
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(path, &o, &e);

	if (!b)
		fail_msg("vhd_open %s: %s", path, e.msg);
	return b;
}

static inline void th_vhd_create(const char *path, int type, uint64_t size,
				 const char *parent)
{
	struct vhd_create_opts o = { .type = type, .size = size, .parent = parent };
	struct bdev_err e = { 0 };

	if (vhd_create(path, &o, &e))
		fail_msg("vhd_create %s: %s", path, e.msg);
}

/* Write the pattern `seed` at [off, off+len) of b. */
static inline void th_write_pattern(struct bdev *b, uint64_t off, size_t len,
				    unsigned seed)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	th_fill(buf, len, off, seed);
	assert_int_equal(bdev_write(b, buf, off, len, 0), 0);
	free(buf);
}

static inline struct nbdsrv *th_server(struct th *t, struct nbdsrv_opts *o)
{
	struct nbdsrv_opts d = { 0 };
	struct bdev_err e = { 0 };

	if (!o)
		o = &d;
	o->log = th_log;
	o->log_opaque = t;
	t->s = nbdsrv_new(t->b, o, &e);
	if (!t->s)
		fail_msg("nbdsrv_new: %s", e.msg);
	return t->s;
}

static inline void *th_serve_thread(void *arg)
{
	struct th *t = arg;

	t->result = nbdsrv_serve_fd(t->s, t->srv_fd);
	return NULL;
}

/* Serve one connection over a socketpair; returns the client end. */
static inline int th_serve_pair(struct th *t)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	t->srv_fd = sv[0];
	assert_int_equal(pthread_create(&t->thr, NULL, th_serve_thread, t), 0);
	t->running = true;
	return sv[1];
}

static inline void *th_run_thread(void *arg)
{
	struct th *t = arg;

	t->result = nbdsrv_run(t->s);
	return NULL;
}

/* Listen on t->sock and run the accept loop in a thread. */
static inline void th_listen(struct th *t)
{
	assert_int_equal(nbdsrv_listen_unix(t->s, t->sock), 0);
	assert_int_equal(pthread_create(&t->thr, NULL, th_run_thread, t), 0);
	t->running = true;
}

/* Wait for the server thread; returns its result. */
static inline int th_join(struct th *t)
{
	if (t->running)
		pthread_join(t->thr, NULL);
	t->running = false;
	return t->result;
}

static inline int th_stop(struct th *t)
{
	nbdsrv_stop(t->s);
	return th_join(t);
}

static inline void th_track(struct th *t, struct nbd_handle *h)
{
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(t->hs); i++)
		if (!t->hs[i]) {
			t->hs[i] = h;
			return;
		}
	fail_msg("too many clients");
}

/* Disconnect (politely if connected) and forget a client. */
static inline void th_close(struct th *t, struct nbd_handle *h)
{
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(t->hs); i++)
		if (t->hs[i] == h)
			t->hs[i] = NULL;
	if (nbd_aio_is_ready(h) == 1)
		nbd_shutdown(h, 0);
	nbd_close(h);
}

/* Teardown after a failed test: close what is left, so the server ends. */
static inline void th_close_all(struct th *t)
{
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(t->hs); i++)
		if (t->hs[i]) {
			nbd_close(t->hs[i]);
			t->hs[i] = NULL;
		}
}

/* A libnbd handle connected to a fresh socketpair connection; configure
 * is called before connecting (may be NULL). */
static inline struct nbd_handle *th_nbd_pair(struct th *t,
					     void (*configure)(struct nbd_handle *))
{
	struct nbd_handle *h = nbd_create();

	assert_non_null(h);
	assert_int_equal(nbd_add_meta_context(h, "base:allocation"), 0);
	if (configure)
		configure(h);
	th_track(t, h);
	if (nbd_connect_socket(h, th_serve_pair(t)) == -1)
		fail_msg("connect: %s", nbd_get_error());
	return h;
}

static inline struct nbd_handle *th_nbd_unix(struct th *t)
{
	struct nbd_handle *h = nbd_create();

	assert_non_null(h);
	assert_int_equal(nbd_add_meta_context(h, "base:allocation"), 0);
	th_track(t, h);
	if (nbd_connect_unix(h, t->sock) == -1)
		fail_msg("connect: %s", nbd_get_error());
	return h;
}

/* ---- the gate bdev ---- */

struct gate_bdev {
	struct bdev b;             /* must be first */
	struct bdev *inner;        /* not owned */
	pthread_mutex_t m;
	pthread_cond_t cv;
	uint64_t hold_off, hold_len;   /* reads touching this range wait... */
	bool holding;                  /* ...while this is set */
	int held;                      /* reads waiting now */
	uint64_t fail_off, fail_len;   /* reads touching this range: -EIO */
};

static inline bool gate_touch(uint64_t off, uint64_t len, uint64_t roff,
			      uint64_t rlen)
{
	return rlen && off < roff + rlen && roff < off + len;
}

static inline int gate_pass(struct gate_bdev *g, int r)
{
	char msg[512];

	if (r)
		bdev_set_error(&g->b, r, "%s", bdev_errmsg(g->inner, msg, sizeof(msg)));
	return r;
}

static inline int gate_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	struct gate_bdev *g = (struct gate_bdev *)b;

	if (gate_touch(off, len, g->fail_off, g->fail_len))
		return bdev_set_error(b, EIO, "injected read error at offset %llu",
				      (unsigned long long)off);
	pthread_mutex_lock(&g->m);
	if (gate_touch(off, len, g->hold_off, g->hold_len)) {
		g->held++;
		pthread_cond_broadcast(&g->cv);
		while (g->holding)
			pthread_cond_wait(&g->cv, &g->m);
		g->held--;
	}
	pthread_mutex_unlock(&g->m);
	return gate_pass(g, bdev_read(g->inner, buf, off, len));
}

static inline int gate_write(struct bdev *b, const void *buf, uint64_t off,
			     size_t len, unsigned flags)
{
	struct gate_bdev *g = (struct gate_bdev *)b;

	return gate_pass(g, bdev_write(g->inner, buf, off, len, flags));
}

static inline int gate_flush(struct bdev *b)
{
	struct gate_bdev *g = (struct gate_bdev *)b;

	return gate_pass(g, bdev_flush(g->inner));
}

static inline int gate_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	struct gate_bdev *g = (struct gate_bdev *)b;

	return gate_pass(g, bdev_discard(g->inner, off, len));
}

static inline int gate_zero(struct bdev *b, uint64_t off, uint64_t len,
			    unsigned flags)
{
	struct gate_bdev *g = (struct gate_bdev *)b;

	return gate_pass(g, bdev_write_zeroes(g->inner, off, len, flags));
}

static inline int gate_status(struct bdev *b, uint64_t off, uint64_t len,
			      struct bdev_status *st)
{
	struct gate_bdev *g = (struct gate_bdev *)b;

	return gate_pass(g, bdev_block_status(g->inner, off, len, st));
}

static inline void gate_close(struct bdev *b)
{
	struct gate_bdev *g = (struct gate_bdev *)b;

	pthread_mutex_destroy(&g->m);
	pthread_cond_destroy(&g->cv);
	bdev_fini(b);
	free(g);
}

static const struct bdev_ops gate_ops = {
	.kind = "gate",
	.read = gate_read,
	.write = gate_write,
	.flush = gate_flush,
	.discard = gate_discard,
	.write_zeroes = gate_zero,
	.block_status = gate_status,
	.close = gate_close,
};

static inline struct gate_bdev *gate_new(struct bdev *inner)
{
	struct gate_bdev *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	assert_int_equal(bdev_init(&g->b, &gate_ops, "gate", inner->size,
				   inner->sector_size, inner->read_only), 0);
	g->inner = inner;
	pthread_mutex_init(&g->m, NULL);
	pthread_cond_init(&g->cv, NULL);
	return g;
}

/* Hold reads touching [off, off+len) until gate_release(). */
static inline void gate_hold(struct gate_bdev *g, uint64_t off, uint64_t len)
{
	pthread_mutex_lock(&g->m);
	g->hold_off = off;
	g->hold_len = len;
	g->holding = true;
	pthread_mutex_unlock(&g->m);
}

/* Wait (at most 20 s) until n reads are held. */
static inline void gate_wait_held(struct gate_bdev *g, int n)
{
	struct timespec ts;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	pthread_mutex_lock(&g->m);
	while (g->held < n && r == 0)
		r = pthread_cond_timedwait(&g->cv, &g->m, &ts);
	pthread_mutex_unlock(&g->m);
	if (r)
		fail_msg("no read reached the gate");
}

static inline void gate_release(struct gate_bdev *g)
{
	pthread_mutex_lock(&g->m);
	g->holding = false;
	g->hold_len = 0;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->m);
}

#endif
