/* nbd server against malformed and hostile traffic, from a raw-socket
 * client: bad flags and magic numbers, oversized and truncated options,
 * EXPORT_NAME with and without zero padding, bad requests (range, length,
 * flags, command, read-only), abrupt disconnects; each must get the
 * protocol's error reply or a disconnect of that client only, with no
 * growth in threads, descriptors or buffers.  Also: stop lets in-flight
 * requests finish.
 *
 * The protocol numbers below are written out from the NBD protocol
 * document on purpose, independently of the server's own header. */
#include "nbd-harness.h"

#include <dirent.h>
#include <sys/time.h>
#include <sys/un.h>

#define SIZE (4u << 20)

#define MAGIC        0x4e42444d41474943ull
#define IHAVEOPT     0x49484156454f5054ull
#define REPLY_MAGIC  0x0003e889045565a9ull
#define REQ_MAGIC    0x25609513u
#define SIMPLE_MAGIC 0x67446698u
#define CHUNK_MAGIC  0x668e33efu
#define OPT_EXPORT_NAME 1
#define OPT_LIST     3
#define OPT_GO       7
#define OPT_SR       8
#define OPT_LIST_META 9
#define OPT_SET_META 10
#define REP_META     4u
#define REP_ACK      1u
#define REP_INFO     3u
#define ERR_UNSUP    0x80000001u
#define ERR_INVALID  0x80000003u
#define CMD_READ     0
#define CMD_WRITE    1
#define CMD_DISC     2
#define CMD_BLOCK_STATUS 7
#define CHUNK_ERROR  0x8001u

struct fx {
	struct th t;
	struct gate_bdev *g;
	struct bdev *vhd;
	char path[PATH_MAX];
	int cfd;                   /* raw client of a socketpair, or -1 */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	th_init(&f->t);
	th_path(&f->t, "d.vhd", f->path, sizeof(f->path));
	th_vhd_create(f->path, VHD_TYPE_DYNAMIC, SIZE, NULL);
	f->vhd = th_vhd_open(f->path, false);
	th_write_pattern(f->vhd, 0, 65536, 1);
	f->g = gate_new(f->vhd);
	f->t.b = &f->g->b;
	f->cfd = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	gate_release(f->g);
	if (f->cfd >= 0)
		close(f->cfd);   /* a failed test left it: the server sees EOF */
	th_close_all(&f->t);
	if (f->t.s)
		nbdsrv_stop(f->t.s);
	th_join(&f->t);
	if (f->t.s)
		nbdsrv_free(f->t.s);
	bdev_close(&f->g->b);
	bdev_close(f->vhd);
	th_fini(&f->t);
	free(f);
	return 0;
}

/* ---- a raw client ---- */

static void timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 20 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int raw_unix(struct fx *f)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(a.sun_path, f->t.sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	timeouts(fd);
	return fd;
}

static int raw_pair(struct fx *f)
{
	int fd = th_serve_pair(&f->t);

	timeouts(fd);
	f->cfd = fd;
	return fd;
}

static void put(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		assert_true(r > 0);
		b += r;
		n -= (size_t)r;
	}
}

static void get(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = recv(fd, b, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fail_msg("server closed or timed out (%zd, %s)", r, strerror(errno));
		b += r;
		n -= (size_t)r;
	}
}

/* True when the server closed the connection (EOF or reset). */
static bool closed_by_server(int fd)
{
	uint8_t b[256];

	for (;;) {
		ssize_t r = recv(fd, b, sizeof(b), 0);

		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return true;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return false;   /* timed out: still open */
	}
}

static void greet(int fd, uint32_t cflags)
{
	uint8_t b[18];

	get(fd, b, sizeof(b));
	assert_int_equal(util_get_be64(b), MAGIC);
	assert_int_equal(util_get_be64(b + 8), IHAVEOPT);
	assert_int_equal(util_get_be16(b + 16), 3);   /* FIXED_NEWSTYLE | NO_ZEROES */
	util_put_be32(b, cflags);
	put(fd, b, 4);
}

static void opt(int fd, uint32_t code, const void *data, uint32_t len)
{
	uint8_t h[16];

	util_put_be64(h, IHAVEOPT);
	util_put_be32(h + 8, code);
	util_put_be32(h + 12, len);
	put(fd, h, sizeof(h));
	if (len)
		put(fd, data, len);
}

/* Read one option reply; returns its type, payload into buf (<= 4096). */
static uint32_t opt_reply(int fd, uint32_t code, uint8_t *buf, uint32_t *len)
{
	uint8_t h[20];
	uint32_t n;

	get(fd, h, sizeof(h));
	assert_int_equal(util_get_be64(h), REPLY_MAGIC);
	assert_int_equal(util_get_be32(h + 8), code);
	n = util_get_be32(h + 16);
	assert_true(n <= 4096);
	get(fd, buf, n);
	if (len)
		*len = n;
	return util_get_be32(h + 12);
}

static void expect_reply(int fd, uint32_t code, uint32_t type)
{
	uint8_t buf[4096];

	assert_int_equal(opt_reply(fd, code, buf, NULL), type);
}

/* GO on the default export; returns the transmission flags. */
static uint16_t go(int fd)
{
	uint8_t d[6] = { 0 }, buf[4096];
	uint16_t flags = 0;
	uint32_t t, n;

	opt(fd, OPT_GO, d, sizeof(d));
	while ((t = opt_reply(fd, OPT_GO, buf, &n)) == REP_INFO)
		if (util_get_be16(buf) == 0) {
			assert_int_equal(n, 12);
			assert_int_equal(util_get_be64(buf + 2), SIZE);
			flags = util_get_be16(buf + 10);
		}
	assert_int_equal(t, REP_ACK);
	return flags;
}

static void request(int fd, uint16_t flags, uint16_t type, uint64_t cookie,
		    uint64_t off, uint32_t len)
{
	uint8_t h[28];

	util_put_be32(h, REQ_MAGIC);
	util_put_be16(h + 4, flags);
	util_put_be16(h + 6, type);
	util_put_be64(h + 8, cookie);
	util_put_be64(h + 16, off);
	util_put_be32(h + 24, len);
	put(fd, h, sizeof(h));
}

/* A simple reply: returns the error, checks the cookie. */
static uint32_t simple_reply(int fd, uint64_t cookie)
{
	uint8_t h[16];

	get(fd, h, sizeof(h));
	assert_int_equal(util_get_be32(h), SIMPLE_MAGIC);
	assert_int_equal(util_get_be64(h + 8), cookie);
	return util_get_be32(h + 4);
}

/* A structured ERROR chunk (final): returns the error. */
static uint32_t error_chunk(int fd, uint64_t cookie)
{
	uint8_t h[20], p[4200];
	uint32_t n;

	get(fd, h, sizeof(h));
	assert_int_equal(util_get_be32(h), CHUNK_MAGIC);
	assert_int_equal(util_get_be16(h + 4), 1);          /* DONE */
	assert_int_equal(util_get_be16(h + 6), CHUNK_ERROR);
	assert_int_equal(util_get_be64(h + 8), cookie);
	n = util_get_be32(h + 16);
	assert_true(n >= 6 && n <= sizeof(p));
	get(fd, p, n);
	assert_int_equal(util_get_be16(p + 4), n - 6);      /* message length */
	return util_get_be32(p);
}

/* A simple READ of [off, off+len) must return pattern 1 / zeros. */
static void simple_read_ok(int fd, uint64_t cookie, uint64_t off, uint32_t len)
{
	uint8_t *got = malloc(len), *want = calloc(1, len);

	request(fd, 0, CMD_READ, cookie, off, len);
	assert_int_equal(simple_reply(fd, cookie), 0);
	get(fd, got, len);
	if (off < 65536)
		th_fill(want, UTIL_MIN((uint64_t)len, 65536 - off), off, 1);
	assert_memory_equal(got, want, len);
	free(got);
	free(want);
}

static void drop(struct fx *f, int fd)
{
	close(fd);
	if (f->cfd == fd)
		f->cfd = -1;
}

static void disc(struct fx *f, int fd)
{
	request(fd, 0, CMD_DISC, 0, 0, 0);
	assert_true(closed_by_server(fd));
	drop(f, fd);
}

/* ---- handshake ---- */

static void test_bad_client_flags(void **state)
{
	struct fx *f = *state;
	int fd;

	th_server(&f->t, NULL);
	fd = raw_pair(f);
	greet(fd, 0x80);
	assert_true(closed_by_server(fd));
	drop(f, fd);
	assert_int_equal(th_join(&f->t), -EPROTO);
	assert_true(th_logged(&f->t, "unknown client flags"));
}

static void test_bad_option_magic(void **state)
{
	struct fx *f = *state;
	uint8_t h[16] = "NOTAMAGIC";
	int fd;

	th_server(&f->t, NULL);
	fd = raw_pair(f);
	greet(fd, 3);
	put(fd, h, sizeof(h));
	assert_true(closed_by_server(fd));
	drop(f, fd);
	assert_int_equal(th_join(&f->t), -EPROTO);
	assert_true(th_logged(&f->t, "bad option magic"));
}

/* The length is refused before anything is allocated or read. */
static void test_huge_option(void **state)
{
	struct fx *f = *state;
	const uint32_t lens[] = { 0xffffffffu, (64u << 10) + 1 };

	th_server(&f->t, NULL);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(lens); i++) {
		uint8_t h[16];
		int fd = raw_pair(f);

		greet(fd, 3);
		util_put_be64(h, IHAVEOPT);
		util_put_be32(h + 8, OPT_GO);
		util_put_be32(h + 12, lens[i]);
		put(fd, h, sizeof(h));
		assert_true(closed_by_server(fd));
		drop(f, fd);
		assert_int_equal(th_join(&f->t), -EPROTO);
	}
	assert_true(th_logged(&f->t, "(limit 65536)"));
}

/* Unknown and malformed options get error replies; the session goes on. */
static void test_bad_options_continue(void **state)
{
	struct fx *f = *state;
	uint8_t d[64] = { 0 };
	int fd;

	th_server(&f->t, NULL);
	fd = raw_pair(f);
	greet(fd, 3);
	opt(fd, 99, d, 10);
	expect_reply(fd, 99, ERR_UNSUP);
	/* GO: name length beyond the data. */
	util_put_be32(d, 100);
	opt(fd, OPT_GO, d, 6);
	expect_reply(fd, OPT_GO, ERR_INVALID);
	/* GO: 2 information requests announced, 1 present. */
	util_put_be32(d, 0);
	util_put_be16(d + 4, 2);
	opt(fd, OPT_GO, d, 8);
	expect_reply(fd, OPT_GO, ERR_INVALID);
	/* GO: too short to hold a name length. */
	opt(fd, OPT_GO, d, 3);
	expect_reply(fd, OPT_GO, ERR_INVALID);
	/* LIST takes no data. */
	opt(fd, OPT_LIST, d, 4);
	expect_reply(fd, OPT_LIST, ERR_INVALID);
	/* LIST_META_CONTEXT is answered before structured replies (as
	 * qemu-nbd does); "base:" lists our one context. */
	memset(d, 0, sizeof(d));
	util_put_be32(d + 4, 1);
	util_put_be32(d + 8, 5);
	memcpy(d + 12, "base:", 5);
	opt(fd, OPT_LIST_META, d, 17);
	{
		uint8_t buf[4096];
		uint32_t n;

		assert_int_equal(opt_reply(fd, OPT_LIST_META, buf, &n), REP_META);
		assert_int_equal(n, 4 + 15);
		assert_memory_equal(buf + 4, "base:allocation", 15);
		expect_reply(fd, OPT_LIST_META, REP_ACK);
	}
	/* SET_META_CONTEXT needs structured replies first. */
	memset(d, 0, sizeof(d));
	opt(fd, OPT_SET_META, d, 8);
	expect_reply(fd, OPT_SET_META, ERR_INVALID);
	opt(fd, OPT_SR, NULL, 0);
	expect_reply(fd, OPT_SR, REP_ACK);
	/* A query whose length runs past the option. */
	util_put_be32(d + 4, 1);        /* one query */
	util_put_be32(d + 8, 1000);     /* of 1000 bytes */
	opt(fd, OPT_SET_META, d, 16);
	expect_reply(fd, OPT_SET_META, ERR_INVALID);
	/* Still fine: go, then read. */
	go(fd);
	request(fd, 0, CMD_READ, 7, 4096, 4096);
	{
		uint8_t h[20], off[8], data[4096], want[4096];

		get(fd, h, sizeof(h));
		assert_int_equal(util_get_be32(h), CHUNK_MAGIC);
		assert_int_equal(util_get_be16(h + 6), 1);   /* OFFSET_DATA */
		assert_int_equal(util_get_be32(h + 16), 8 + 4096);
		get(fd, off, 8);
		assert_int_equal(util_get_be64(off), 4096);
		get(fd, data, sizeof(data));
		th_fill(want, sizeof(want), 4096, 1);
		assert_memory_equal(data, want, sizeof(data));
	}
	/* Block status without a context selected. */
	request(fd, 0, CMD_BLOCK_STATUS, 8, 0, 4096);
	assert_int_equal(error_chunk(fd, 8), 22);
	disc(f, fd);
	assert_int_equal(th_join(&f->t), 0);
}

/* EXPORT_NAME: size, flags and 124 zero bytes, unless NO_ZEROES. */
static void test_export_name_padding(void **state)
{
	struct fx *f = *state;

	th_server(&f->t, NULL);
	for (uint32_t cflags = 1; cflags <= 3; cflags += 2) {
		uint8_t b[134], zero[124] = { 0 };
		int fd = raw_pair(f);
		size_t n = cflags & 2 ? 10 : 134;

		greet(fd, cflags);
		opt(fd, OPT_EXPORT_NAME, NULL, 0);
		get(fd, b, n);
		assert_int_equal(util_get_be64(b), SIZE);
		assert_true(util_get_be16(b + 8) & 1);          /* HAS_FLAGS */
		assert_false(util_get_be16(b + 8) & (1u << 7)); /* no DF: simple */
		if (n > 10)
			assert_memory_equal(b + 10, zero, 124);
		/* The very next bytes are the reply to this read. */
		simple_read_ok(fd, 1, 0, 512);
		disc(f, fd);
		assert_int_equal(th_join(&f->t), 0);
	}
}

static void test_export_name_unknown(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .export_name = "disk" };
	int fd;

	th_server(&f->t, &o);
	fd = raw_pair(f);
	greet(fd, 3);
	opt(fd, OPT_EXPORT_NAME, "other", 5);
	assert_true(closed_by_server(fd));
	drop(f, fd);
	assert_int_equal(th_join(&f->t), -ENOENT);
}

/* A client that connects and then says nothing is dropped after the
 * handshake time limit, and the limit is gone in transmission. */
static void test_handshake_limit(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .handshake_ms = 200 };
	int fd;

	th_server(&f->t, &o);
	fd = raw_pair(f);
	greet(fd, 3);
	assert_true(closed_by_server(fd));
	drop(f, fd);
	assert_int_equal(th_join(&f->t), -EPROTO);
	assert_true(th_logged(&f->t, "no handshake within 200 ms"));
	fd = raw_pair(f);
	greet(fd, 3);
	go(fd);
	usleep(400000);
	simple_read_ok(fd, 1, 0, 4096);
	disc(f, fd);
	assert_int_equal(th_join(&f->t), 0);
}

/* ---- transmission ---- */

static int transmission(struct fx *f, struct nbdsrv_opts *o)
{
	int fd;

	th_server(&f->t, o);
	fd = raw_pair(f);
	greet(fd, 3);
	go(fd);
	return fd;
}

static void test_bad_request_magic(void **state)
{
	struct fx *f = *state;
	uint8_t junk[28] = "GET / HTTP/1.1\r\n";
	int fd = transmission(f, NULL);

	put(fd, junk, sizeof(junk));
	assert_true(closed_by_server(fd));
	drop(f, fd);
	assert_int_equal(th_join(&f->t), -EPROTO);
	assert_true(th_logged(&f->t, "bad request magic"));
}

/* Oversized READ: an error reply; oversized WRITE: disconnect without
 * waiting for (or buffering) the payload. */
static void test_oversized(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_stats st;
	int fd = transmission(f, NULL);

	request(fd, 0, CMD_READ, 1, 0, (32u << 20) + 1);
	assert_int_equal(simple_reply(fd, 1), 22);
	simple_read_ok(fd, 2, 0, 4096);
	request(fd, 0, CMD_WRITE, 3, 0, 64u << 20);
	assert_true(closed_by_server(fd));
	drop(f, fd);
	assert_int_equal(th_join(&f->t), -EPROTO);
	assert_true(th_logged(&f->t, "exceeds the maximum payload"));
	nbdsrv_get_stats(f->t.s, &st);
	assert_true(st.buf_peak < (32u << 20));
	assert_int_equal(st.buf_bytes, 0);
}

/* Refused writes still consume their payload: the next request parses. */
static void test_refused_writes(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .read_only = true };
	uint8_t data[8192];
	int fd = transmission(f, &o);

	memset(data, 0x5a, sizeof(data));
	request(fd, 0, CMD_WRITE, 1, 0, 4096);
	put(fd, data, 4096);
	assert_int_equal(simple_reply(fd, 1), 1);        /* EPERM */
	simple_read_ok(fd, 2, 0, 8192);
	disc(f, fd);
	assert_int_equal(th_join(&f->t), 0);
}

static void test_bad_ranges(void **state)
{
	struct fx *f = *state;
	uint8_t data[4096] = { 0 };
	int fd = transmission(f, NULL);

	request(fd, 0, CMD_READ, 1, UINT64_MAX - 10, 4096);      /* wraps */
	assert_int_equal(simple_reply(fd, 1), 22);
	request(fd, 0, CMD_READ, 2, SIZE, 1);
	assert_int_equal(simple_reply(fd, 2), 22);
	request(fd, 0, CMD_WRITE, 3, SIZE - 1, 4096);
	put(fd, data, sizeof(data));
	assert_int_equal(simple_reply(fd, 3), 28);       /* ENOSPC */
	request(fd, 0, 42, 4, 0, 0);                     /* unknown command */
	assert_int_equal(simple_reply(fd, 4), 22);
	request(fd, 0x8000, CMD_READ, 5, 0, 512);        /* unknown flag */
	assert_int_equal(simple_reply(fd, 5), 22);
	request(fd, 4, CMD_READ, 6, 0, 512);             /* DF, no structured */
	assert_int_equal(simple_reply(fd, 6), 22);
	simple_read_ok(fd, 7, SIZE - 4096, 4096);
	disc(f, fd);
	assert_int_equal(th_join(&f->t), 0);
}

/* ---- many clients, abrupt ends, no growth ---- */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

static int count_threads(void)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;

	while (fp && fgets(line, sizeof(line), fp))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (fp)
		fclose(fp);
	return n;
}

/* Threads end a little after their connection is counted out. */
static void wait_threads(int n)
{
	for (int i = 0; i < 2000 && count_threads() != n; i++)
		usleep(5000);
	assert_int_equal(count_threads(), n);
}

static void wait_idle(struct fx *f, unsigned active)
{
	struct nbdsrv_stats st;

	for (int i = 0; i < 2000; i++) {
		nbdsrv_get_stats(f->t.s, &st);
		if (st.active == active)
			return;
		usleep(5000);
	}
	fail_msg("%u connections still active", st.active);
}

static void check_good(struct fx *f, struct nbd_handle *h)
{
	uint8_t got[4096], want[4096];

	th_fill(want, sizeof(want), 8192, 1);
	if (nbd_pread(h, got, sizeof(got), 8192, 0))
		fail_msg("good client: %s", nbd_get_error());
	assert_memory_equal(got, want, sizeof(got));
}

/* Clients that vanish at every stage: mid-greeting, mid-option, mid-
 * header, mid-payload, with requests in flight.  A well-behaved client
 * connected throughout is served; afterwards no connection, thread,
 * descriptor or buffer is left over. */
static void test_abrupt_disconnects(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .workers = 4 };
	struct nbdsrv_stats st;
	struct nbd_handle *good;
	uint8_t data[65536] = { 0 };
	int fds0, threads0;

	th_server(&f->t, &o);
	th_listen(&f->t);
	good = th_nbd_unix(&f->t);
	check_good(f, good);
	wait_idle(f, 1);
	/* main, nbdsrv_run, and the good client's workers (the first is its
	 * connection thread), once they have all started. */
	threads0 = 2 + (int)o.workers;
	wait_threads(threads0);
	fds0 = count_fds();
	for (int i = 0; i < 40; i++) {
		int fd = raw_unix(f);

		switch (i % 5) {
		case 0:                 /* before the client flags */
			break;
		case 1:                 /* half an option header */
			greet(fd, 3);
			put(fd, "IHAVEOPT\0\0", 10);
			break;
		case 2:                 /* half a request header */
			greet(fd, 3);
			go(fd);
			put(fd, "\x25\x60\x95\x13\0\0", 6);
			break;
		case 3:                 /* a 32 MiB write with 64 KiB sent */
			greet(fd, 3);
			go(fd);
			request(fd, 0, CMD_WRITE, 1, 0, 32u << 20);
			put(fd, data, sizeof(data));
			break;
		case 4:                 /* reads in flight, replies unread */
			greet(fd, 3);
			go(fd);
			for (int k = 0; k < 16; k++)
				request(fd, 0, CMD_READ, (uint64_t)k, 0, 1u << 20);
			break;
		}
		drop(f, fd);
		check_good(f, good);
	}
	wait_idle(f, 1);
	check_good(f, good);
	assert_int_equal(count_fds(), fds0);
	wait_threads(threads0);
	nbdsrv_get_stats(f->t.s, &st);
	assert_true(st.protocol_errors >= 24);   /* cases 1-3 */
	/* Only the good client's kept buffers remain. */
	th_close(&f->t, good);
	wait_idle(f, 0);
	nbdsrv_get_stats(f->t.s, &st);
	assert_int_equal(st.buf_bytes, 0);
	assert_true(st.buf_peak <= 2 * (64u << 20));
	assert_int_equal(th_stop(&f->t), 0);
}

/* Stop: a request being served finishes and its reply arrives; then the
 * server flushes and returns, and no new client is accepted. */
static void test_stop_finishes_inflight(void **state)
{
	struct fx *f = *state;
	struct nbd_handle *h;
	uint8_t got[4096], want[4096];
	int64_t ck;

	th_server(&f->t, NULL);
	th_listen(&f->t);
	h = th_nbd_unix(&f->t);
	gate_hold(f->g, 0, 4096);
	ck = nbd_aio_pread(h, got, sizeof(got), 0, NBD_NULL_COMPLETION, 0);
	assert_true(ck > 0);
	gate_wait_held(f->g, 1);
	nbdsrv_stop(f->t.s);
	usleep(100000);
	assert_int_equal(pthread_tryjoin_np(f->t.thr, NULL), EBUSY);
	gate_release(f->g);
	for (int i = 0; i < 2000 && nbd_aio_command_completed(h, (uint64_t)ck) == 0; i++)
		nbd_poll(h, 10);
	th_fill(want, sizeof(want), 0, 1);
	assert_memory_equal(got, want, sizeof(got));
	assert_int_equal(th_join(&f->t), 0);
	/* The connection was closed after the reply; the socket is gone. */
	assert_int_equal(nbd_pread(h, got, sizeof(got), 0, 0), -1);
	th_close(&f->t, h);
	h = nbd_create();
	assert_int_equal(nbd_connect_unix(h, f->t.sock), -1);
	nbd_close(h);
}

/* Stop with a client that never reads its replies: after the grace
 * period the server cuts it off and returns. */
static void test_stop_stuck_client(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .stop_grace_ms = 300 };
	int fd;

	th_server(&f->t, &o);
	th_listen(&f->t);
	fd = raw_unix(f);
	greet(fd, 3);
	go(fd);
	for (int k = 0; k < 32; k++)   /* 32 MiB of replies, none read */
		request(fd, 0, CMD_READ, (uint64_t)k, 0, 1u << 20);
	wait_idle(f, 1);
	usleep(100000);                /* let the workers block in send */
	assert_int_equal(th_stop(&f->t), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_client_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_option_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_option, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options_continue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_name_padding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_name_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_request_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abrupt_disconnects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_finishes_inflight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_stuck_client, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
