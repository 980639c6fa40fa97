/* flaky-proxy: a test-only HTTP/1.1 proxy that fails on purpose.
 *
 *   flaky-proxy [--port N] [--fail P] [--stall P] [--stall-every K] [--seed S]
 *               [--lifetime SECONDS] [--lose-once TEXT] [--deny TEXT]
 *               [--fail-match TEXT] [--stall-once TEXT] [--delay MS]
 *               [--flip-body TEXT] UPSTREAM_HOST:PORT
 *
 * Listens on 127.0.0.1 (port N, 0 = any; the port is printed on stdout,
 * one line), reads each request (head up to 64 KiB, then the body by
 * Content-Length, at most 256 MiB; "Expect: 100-continue" answered by the
 * proxy itself), and answers a fraction P (0..1, default 0.5) of them with
 * "503 Service Unavailable" and an S3 error body <Code>SlowDown</Code>
 * without forwarding; the others go to the upstream with "Connection:
 * close" in place of the client's Connection header (so every request is
 * one connection) and the upstream's answer is relayed back.  --stall P:
 * a fraction P (default 0) of the requests not failed gets no answer at
 * all: the proxy holds the connection until the client gives up (or 30 s),
 * for clients' timeouts; --stall-every K: every K-th request so (the K-th,
 * 2K-th, ... counted from the start), for a test that must see one.  Everything
 * else of the request, the Host header included, is forwarded byte for
 * byte, so signed requests (AWS SigV4) stay valid.  --lose-once TEXT: the
 * first PUT whose request line contains TEXT (not failed by --fail) is
 * forwarded and done upstream, but its answer is dropped (the client's
 * connection closes with nothing): a lost answer to a request that landed.
 * --deny TEXT: every request whose request line contains TEXT is answered
 * "403 Forbidden" with <Code>AccessDenied</Code> without forwarding (a
 * store or bucket policy refusing one kind of call, e.g. "retention=").
 * --fail-match TEXT: every request whose request line contains TEXT is
 * answered 503 (a store failing one object's reads, say "GET /b/r/lock ");
 * --stall-once TEXT: the first request whose request line contains TEXT
 * stalls as --stall does (not forwarded), the others go through: a test
 * holding one step of a client for a while.  --delay MS: every request is
 * held MS milliseconds before it is answered or forwarded: a distant
 * store's round trip, for benchmarks of request counts.  --flip-body TEXT:
 * every PUT whose request line contains TEXT and that has a body is
 * forwarded with the body's first byte inverted (the head unchanged):
 * damage in flight, which the store must refuse by the request's digest.
 *
 * Bounded: 64 connections at a time (more wait in the listen queue),
 * 30 s socket timeouts, a lifetime (default 600 s) after which it exits.
 * Prints nothing else; "requests=N failed=N stalled=N lost=0|1 denied=N flipped=N" on stderr when it ends by
 * SIGTERM or its lifetime. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (64 * 1024)
#define BODY_MAX (256ull << 20)
#define MAX_CONNS 64
#define IO_TIMEOUT_S 30

static const char *up_host, *up_port;
static double fail_p = 0.5, stall_p;
static unsigned long stall_every;
static long delay_ms;
static const char *lose_once, *deny, *fail_match, *stall_once, *flip_body;
static atomic_bool stalled_once;
static atomic_bool lost;
static unsigned seed = 1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int active;
static atomic_ulong n_requests, n_failed, n_stalled, n_denied, n_flipped;

static void timeouts(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static bool coin(double p)
{
	bool f;

	pthread_mutex_lock(&mu);
	f = (double)rand_r(&seed) / ((double)RAND_MAX + 1.0) < p;
	pthread_mutex_unlock(&mu);
	return f;
}

/* The value of header name in head (lines end with \r\n), or NULL. */
static const char *header(const char *head, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n");

	while (p && p[2] != '\r') {
		const char *line = p + 2, *end = strstr(line, "\r\n");

		if (!end)
			return NULL;
		if ((size_t)(end - line) > nl && !strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1;

			while (*v == ' ' || *v == '\t')
				v++;
			*vlen = (size_t)(end - v);
			return v;
		}
		p = end;
	}
	return NULL;
}

static int upstream_connect(void)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai, *a;
	int fd = -1;

	if (getaddrinfo(up_host, up_port, &hints, &ai))
		return -1;
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype, 0);
		if (fd < 0)
			continue;
		timeouts(fd);
		if (!connect(fd, a->ai_addr, a->ai_addrlen))
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* The request head with its Connection header replaced by "close". */
static char *rewrite_head(const char *head, size_t *len)
{
	size_t n = strlen(head);
	char *out = malloc(n + 32), *o = out;
	const char *p = head, *end;

	if (!out)
		return NULL;
	/* Request line. */
	end = strstr(p, "\r\n");
	memcpy(o, p, (size_t)(end - p) + 2);
	o += end - p + 2;
	p = end + 2;
	while (strncmp(p, "\r\n", 2)) {
		end = strstr(p, "\r\n");
		if (strncasecmp(p, "Connection:", 11)) {
			memcpy(o, p, (size_t)(end - p) + 2);
			o += end - p + 2;
		}
		p = end + 2;
	}
	memcpy(o, "Connection: close\r\n\r\n", 21);
	o += 21;
	*len = (size_t)(o - out);
	return out;
}

static void forward(int cfd, const char *head, const char *body, size_t blen, bool sent_100,
		    bool drop)
{
	char buf[65536];
	size_t hlen;
	char *nh = rewrite_head(head, &hlen);
	int ufd = nh ? upstream_connect() : -1;
	bool first = true;
	ssize_t n;

	if (ufd < 0) {
		static const char bad[] = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

		send_all(cfd, bad, sizeof(bad) - 1);
		free(nh);
		return;
	}
	if (send_all(ufd, nh, hlen) || send_all(ufd, body, blen))
		goto out;
	while ((n = recv(ufd, buf, sizeof(buf), 0)) > 0) {
		char *p = buf;

		/* Our client has had a 100 Continue from us: drop the upstream's. */
		if (first && sent_100 && n >= 12 && !memcmp(buf, "HTTP/1.1 100", 12)) {
			char *e = memmem(buf, (size_t)n, "\r\n\r\n", 4);

			if (e) {
				p = e + 4;
				n -= p - buf;
			}
		}
		first = false;
		if (n > 0 && !drop && send_all(cfd, p, (size_t)n))
			break;
	}
out:
	close(ufd);
	free(nh);
}

/* An S3 error answer (no body for a HEAD), connection closed after. */
static void answer_error(int cfd, const char *status, const char *code,
			 const char *msg, bool is_head)
{
	char xml[256], ans[512];
	int xl = snprintf(xml, sizeof(xml),
			  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
			  "<Message>%s</Message></Error>\n", code, msg);
	int l = snprintf(ans, sizeof(ans),
			 "HTTP/1.1 %s\r\nContent-Type: application/xml\r\n"
			 "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
			 status, xl, is_head ? "" : xml);

	send_all(cfd, ans, (size_t)l);
}

/* Whether the request line (the first line of head) contains text (NULL:
 * no). */
static bool line_has(const char *head, const char *text)
{
	const char *eol = strstr(head, "\r\n");

	return text && eol && memmem(head, (size_t)(eol - head), text, strlen(text));
}

static void *serve(void *opaque)
{
	int cfd = (int)(intptr_t)opaque;
	char *head = malloc(HEAD_MAX + 1), *body = NULL, *e = NULL;
	size_t hn = 0, blen = 0, vlen, have;
	const char *v;
	bool sent_100 = false, is_head;
	unsigned long nth;
	ssize_t n;

	timeouts(cfd);
	if (!head)
		goto out;
	while (hn < HEAD_MAX) {
		n = recv(cfd, head + hn, HEAD_MAX - hn, 0);
		if (n <= 0)
			goto out;
		hn += (size_t)n;
		head[hn] = 0;
		if ((e = memmem(head, hn, "\r\n\r\n", 4)))
			break;
	}
	if (!e)
		goto out;
	have = hn - (size_t)(e + 4 - head);
	/* The head as a string: the body bytes read with it move first. */
	body = malloc(have ? have : 1);
	if (!body)
		goto out;
	memcpy(body, e + 4, have);
	e[4] = 0;
	if ((v = header(head, "Content-Length", &vlen))) {
		unsigned long long cl = strtoull(v, NULL, 10);
		char *nb;

		if (cl > BODY_MAX)
			goto out;
		blen = (size_t)cl;
		if (have > blen || !(nb = realloc(body, blen ? blen : 1)))
			goto out;       /* pipelining is not for this proxy */
		body = nb;
	} else if (have) {
		goto out;
	}
	if (have < blen && (v = header(head, "Expect", &vlen)) && !strncasecmp(v, "100-continue", 12)) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		if (send_all(cfd, cont, sizeof(cont) - 1))
			goto out;
		sent_100 = true;
	}
	while (have < blen) {
		n = recv(cfd, body + have, blen - have, 0);
		if (n <= 0)
			goto out;
		have += (size_t)n;
	}
	nth = atomic_fetch_add(&n_requests, 1) + 1;
	is_head = !strncmp(head, "HEAD ", 5);
	if (delay_ms > 0) {
		struct timespec d = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };

		nanosleep(&d, NULL);
	}
	if (line_has(head, deny)) {
		atomic_fetch_add(&n_denied, 1);
		answer_error(cfd, "403 Forbidden", "AccessDenied", "Access Denied", is_head);
	} else if (line_has(head, fail_match) || coin(fail_p)) {
		atomic_fetch_add(&n_failed, 1);
		answer_error(cfd, "503 Service Unavailable", "SlowDown",
			     "Please reduce your request rate.", is_head);
	} else if ((stall_every && nth % stall_every == 0) || (stall_p > 0 && coin(stall_p)) ||
		   (line_has(head, stall_once) && !atomic_exchange(&stalled_once, true))) {
		char b;

		/* Until the client closes, or the socket timeout. */
		atomic_fetch_add(&n_stalled, 1);
		while (recv(cfd, &b, 1, 0) > 0)
			;
	} else {
		bool drop = !strncmp(head, "PUT ", 4) && line_has(head, lose_once) &&
			    !atomic_exchange(&lost, true);

		if (!strncmp(head, "PUT ", 4) && blen > 0 && line_has(head, flip_body)) {
			body[0] = (char)~body[0];
			atomic_fetch_add(&n_flipped, 1);
		}

		forward(cfd, head, body, blen, sent_100, drop);
	}
out:
	free(body);
	free(head);
	close(cfd);
	pthread_mutex_lock(&mu);
	active--;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	return NULL;
}

static volatile sig_atomic_t stop;

static void on_signal(int s)
{
	stop = 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int lifetime = 600, port = 0, lfd, one = 1, i;
	struct sigaction act = { .sa_handler = on_signal };
	time_t end;
	char *colon;

	for (i = 1; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--fail"))
			fail_p = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--stall-every"))
			stall_every = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--stall"))
			stall_p = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			seed = (unsigned)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--lose-once"))
			lose_once = argv[i + 1];
		else if (!strcmp(argv[i], "--deny"))
			deny = argv[i + 1];
		else if (!strcmp(argv[i], "--fail-match"))
			fail_match = argv[i + 1];
		else if (!strcmp(argv[i], "--stall-once"))
			stall_once = argv[i + 1];
		else if (!strcmp(argv[i], "--flip-body"))
			flip_body = argv[i + 1];
		else if (!strcmp(argv[i], "--delay"))
			delay_ms = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--lifetime"))
			lifetime = atoi(argv[i + 1]);
		else
			break;
	}
	if (i != argc - 1 || !(colon = strrchr(argv[i], ':')) || fail_p < 0 || fail_p > 1 ||
	    stall_p < 0 || stall_p > 1 || delay_ms < 0 || delay_ms > 60000) {
		fprintf(stderr, "usage: flaky-proxy [--port N] [--fail P] [--stall P] [--stall-every K] [--seed S] [--lifetime S] [--lose-once TEXT] [--deny TEXT] [--fail-match TEXT] [--stall-once TEXT] [--delay MS] [--flip-body TEXT] HOST:PORT\n");
		return 2;
	}
	*colon = 0;
	up_host = argv[i];
	up_port = colon + 1;
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons((uint16_t)port);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 128) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
		perror("flaky-proxy: listen");
		return 1;
	}
	printf("%u\n", ntohs(sa.sin_port));
	fflush(stdout);
	end = time(NULL) + lifetime;
	while (!stop && time(NULL) < end) {
		struct timeval tv = { .tv_sec = 1 };
		pthread_t th;
		fd_set fds;
		int cfd;

		FD_ZERO(&fds);
		FD_SET(lfd, &fds);
		/* Wake every second to notice the lifetime and signals. */
		if (select(lfd + 1, &fds, NULL, NULL, &tv) <= 0)
			continue;
		pthread_mutex_lock(&mu);
		while (active >= MAX_CONNS)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		cfd = accept(lfd, NULL, NULL);
		if (cfd < 0)
			continue;
		pthread_mutex_lock(&mu);
		active++;
		pthread_mutex_unlock(&mu);
		if (pthread_create(&th, NULL, serve, (void *)(intptr_t)cfd)) {
			close(cfd);
			pthread_mutex_lock(&mu);
			active--;
			pthread_mutex_unlock(&mu);
			continue;
		}
		pthread_detach(th);
	}
	fprintf(stderr, "requests=%lu failed=%lu stalled=%lu lost=%d denied=%lu flipped=%lu\n",
		atomic_load(&n_requests), atomic_load(&n_failed), atomic_load(&n_stalled),
		(int)atomic_load(&lost), atomic_load(&n_denied), atomic_load(&n_flipped));
	return 0;
}
