/* s3probe: a test-only command line over the s3 client (s3/s3.h), for the
 * shell tests.  Credentials, endpoint and region come from the environment
 * (s3_config_env); options override.
 *
 *   s3probe [OPTIONS] mb s3://BUCKET [--lock]
 *   s3probe [OPTIONS] put s3://BUCKET/KEY [FILE|-] [--if-none-match]
 *                                          [--retain-until UNIX_SECONDS]
 *   s3probe [OPTIONS] get s3://BUCKET/KEY [FILE|-] [--max BYTES]
 *   s3probe [OPTIONS] range s3://BUCKET/KEY OFF LEN [FILE|-]
 *   s3probe [OPTIONS] head s3://BUCKET/KEY        size mtime etag retain-until
 *   s3probe [OPTIONS] list s3://BUCKET[/PREFIX] [--count]   KEY<TAB>SIZE lines
 *   s3probe [OPTIONS] delete s3://BUCKET/KEY [--marker]  (--marker: no version id)
 *   s3probe [OPTIONS] retention s3://BUCKET/KEY [UNIX_SECONDS] [--version VID]
 *                    get or set (--version: of that version)
 *   s3probe [OPTIONS] versions s3://BUCKET[/PREFIX]
 *                    KEY<TAB>VERSION-ID<TAB>version|marker<TAB>latest|old
 *                    lines, the store's order (for a key the newest first)
 *   s3probe [OPTIONS] putmany s3://BUCKET/PREFIX N [--threads T]
 *                    [--size BYTES] [--if-none-match]
 *                    N objects PREFIXNNNNNN (6 digits) of a few bytes each
 *                    (--size: BYTES of random data each, all different),
 *                    from T threads sharing one client; the store's ceiling
 *                    for bench/s3.sh
 *   s3probe [OPTIONS] getmany s3://BUCKET/PREFIX N [--threads T]
 *                    GET the N objects putmany made (PREFIXNNNNNN), data
 *                    dropped, from T threads: the download ceiling
 *
 * OPTIONS: --endpoint URL, --secret KEY, --retries N, --connections N,
 * --timeout-ms N, --no-conditional, --stats (counters on stderr at the
 * end: "requests=N retries=N up=N down=N").
 * Errors: "s3probe: ERRNAME: message" on stderr, exit 1. */
#include "s3/s3.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct s3_client *cl;
static struct bdev_err err;
static char bucket[64], key[1024];

static int fail(int r)
{
	const char *name = strerrorname_np(-r);

	fprintf(stderr, "s3probe: %s: %s\n", name ? name : "?", err.msg[0] ? err.msg : strerror(-r));
	return 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: s3probe [--endpoint URL] [--secret KEY] [--retries N] "
		"[--connections N] [--timeout-ms N] [--no-conditional] [--stats] "
		"mb|put|get|range|head|list|delete [--marker]|retention|versions|putmany|getmany s3://BUCKET[/KEY] ...\n");
	return 2;
}

static int read_all(const char *path, char **data, size_t *len)
{
	int fd = (!path || !strcmp(path, "-")) ? 0 : open(path, O_RDONLY);
	size_t cap = 1 << 16, n = 0;
	char *b;
	ssize_t got;

	if (fd < 0)
		return -errno;
	b = malloc(cap);
	if (!b)
		return -ENOMEM;
	while ((got = read(fd, b + n, cap - n)) > 0) {
		n += (size_t)got;
		if (n == cap) {
			char *nb = realloc(b, cap *= 2);

			if (!nb) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
		}
	}
	if (fd)
		close(fd);
	if (got < 0) {
		free(b);
		return -errno;
	}
	*data = b;
	*len = n;
	return 0;
}

static int write_all(const char *path, const void *data, size_t len)
{
	int fd = (!path || !strcmp(path, "-")) ? 1 : open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	const char *p = data;

	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fd != 1 && close(fd) < 0)
		return -errno;
	return 0;
}

static int print_key(void *opaque, const char *k, const struct s3_stat *st)
{
	uint64_t *count = opaque;

	(*count)++;
	if (!getenv("S3PROBE_COUNT_ONLY"))
		printf("%s\t%llu\n", k, (unsigned long long)st->size);
	return 0;
}

static int print_version(void *opaque, const struct s3_version *v)
{
	(void)opaque;
	printf("%s\t%s\t%s\t%s\n", v->key, v->version_id,
	       v->delete_marker ? "marker" : "version", v->latest ? "latest" : "old");
	return 0;
}

struct many {
	atomic_long next;
	long n;
	size_t size;            /* 0: "object N\n" bodies */
	bool cond;
	bool get;               /* getmany */
	int rc;
	struct bdev_err e;
	pthread_mutex_t mu;
};

static void *put_worker(void *opaque)
{
	struct many *m = opaque;
	struct s3_put_opts o = { .if_none_match = m->cond };
	char k[1100], small[32], *body = small;
	uint64_t x = (uint64_t)(uintptr_t)&o ^ (uint64_t)time(NULL) << 20;
	size_t len = 0;
	long i;
	struct bdev_err e = { 0 };

	if (m->size && !(body = malloc(m->size)))
		return NULL;
	while ((i = atomic_fetch_add(&m->next, 1)) < m->n) {
		int r;

		snprintf(k, sizeof(k), "%s%06ld", key, i);
		if (m->get) {
			void *data = NULL;
			size_t got;

			r = s3_get(cl, k, (size_t)1 << 30, &data, &got, &e);
			free(data);
			if (r >= 0)
				continue;
		} else if (m->size) {
			/* xorshift64: incompressible enough, cheaper than
			 * /dev/urandom; a new body for every object */
			for (size_t j = 0; j + 8 <= m->size; j += 8) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				memcpy(body + j, &x, 8);
			}
			len = m->size;
		} else {
			snprintf(small, sizeof(small), "object %ld\n", i);
			len = strlen(small);
		}
		if (!m->get)
			r = s3_put(cl, k, body, len, &o, &e);
		if (r < 0) {
			pthread_mutex_lock(&m->mu);
			if (!m->rc) {
				m->rc = r;
				m->e = e;
			}
			pthread_mutex_unlock(&m->mu);
			break;
		}
	}
	if (body != small)
		free(body);
	return NULL;
}

static int cmd_putmany(int argc, char **argv, bool get)
{
	struct many m = { .mu = PTHREAD_MUTEX_INITIALIZER, .get = get };
	pthread_t th[64];
	int t = 8, n;

	if (argc < 1)
		return usage();
	m.n = atol(argv[0]);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			t = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			m.size = (size_t)atoll(argv[++i]);
		else if (!strcmp(argv[i], "--if-none-match"))
			m.cond = true;
		else
			return usage();
	}
	if (t < 1 || t > 64 || m.n < 0 || m.size > ((size_t)1 << 30))
		return usage();
	for (n = 0; n < t; n++)
		if (pthread_create(&th[n], NULL, put_worker, &m))
			break;
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	if (m.rc) {
		err = m.e;
		return fail(m.rc);
	}
	return n == t ? 0 : 1;
}

static int run(const char *cmd, int argc, char **argv)
{
	int r;

	if (!strcmp(cmd, "mb")) {
		r = s3_bucket_create(cl, argc >= 1 && !strcmp(argv[0], "--lock"), &err);
		return r < 0 ? fail(r) : 0;
	}
	if (!strcmp(cmd, "put")) {
		struct s3_put_opts o = { 0 };
		const char *file = "-";
		char *data = NULL;
		size_t len = 0;

		for (int i = 0; i < argc; i++) {
			if (!strcmp(argv[i], "--if-none-match"))
				o.if_none_match = true;
			else if (!strcmp(argv[i], "--retain-until") && i + 1 < argc)
				o.retain_until = atoll(argv[++i]);
			else
				file = argv[i];
		}
		if ((r = read_all(file, &data, &len)) < 0)
			return fail(r);
		r = s3_put(cl, key, data, len, &o, &err);
		free(data);
		return r < 0 ? fail(r) : 0;
	}
	if (!strcmp(cmd, "get")) {
		const char *file = "-";
		size_t max = (size_t)1 << 30, len;
		void *data;

		for (int i = 0; i < argc; i++) {
			if (!strcmp(argv[i], "--max") && i + 1 < argc)
				max = (size_t)atoll(argv[++i]);
			else
				file = argv[i];
		}
		if ((r = s3_get(cl, key, max, &data, &len, &err)) < 0)
			return fail(r);
		r = write_all(file, data, len);
		free(data);
		return r < 0 ? fail(r) : 0;
	}
	if (!strcmp(cmd, "range")) {
		size_t len, got;
		uint64_t off;
		char *buf;

		if (argc < 2)
			return usage();
		off = (uint64_t)atoll(argv[0]);
		len = (size_t)atoll(argv[1]);
		buf = malloc(len ? len : 1);
		if (!buf)
			return fail(-ENOMEM);
		r = s3_get_range(cl, key, off, len, buf, &got, &err);
		if (r == 0)
			r = write_all(argc >= 3 ? argv[2] : "-", buf, got);
		free(buf);
		return r < 0 ? fail(r) : 0;
	}
	if (!strcmp(cmd, "head")) {
		struct s3_stat st;

		if ((r = s3_head(cl, key, &st, &err)) < 0)
			return fail(r);
		printf("%llu %lld %s %lld\n", (unsigned long long)st.size, (long long)st.mtime, st.etag,
		       (long long)st.retain_until);
		return 0;
	}
	if (!strcmp(cmd, "list")) {
		uint64_t count = 0;

		if (argc >= 1 && !strcmp(argv[0], "--count"))
			setenv("S3PROBE_COUNT_ONLY", "1", 1);
		if ((r = s3_list(cl, key, print_key, &count, &err)) < 0)
			return fail(r);
		if (getenv("S3PROBE_COUNT_ONLY"))
			printf("%llu\n", (unsigned long long)count);
		return 0;
	}
	if (!strcmp(cmd, "delete")) {
		/* --marker: a DELETE without a version id (in a versioned
		 * bucket: a delete marker over the object) */
		if (argc >= 1 && !strcmp(argv[0], "--marker"))
			r = s3_delete_version(cl, key, "", &err);
		else
			r = s3_delete(cl, key, &err);
		return r < 0 ? fail(r) : 0;
	}
	if (!strcmp(cmd, "retention")) {
		const char *vid = NULL, *set = NULL;
		int64_t until;

		for (int i = 0; i < argc; i++) {
			if (!strcmp(argv[i], "--version") && i + 1 < argc)
				vid = argv[++i];
			else
				set = argv[i];
		}
		if (set)
			r = s3_retention_set_version(cl, key, vid, atoll(set), &err);
		else if ((r = s3_retention_get_version(cl, key, vid, &until, &err)) == 0)
			printf("%lld\n", (long long)until);
		return r < 0 ? fail(r) : 0;
	}
	if (!strcmp(cmd, "versions")) {
		r = s3_list_versions(cl, key, print_version, NULL, &err);
		return r < 0 ? fail(r) : 0;
	}
	if (!strcmp(cmd, "putmany") || !strcmp(cmd, "getmany"))
		return cmd_putmany(argc, argv, !strcmp(cmd, "getmany"));
	return usage();
}

int main(int argc, char **argv)
{
	struct s3_config cfg = { .retries = -1 };
	bool stats = false, nocond = false;
	int i, rc;

	for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(argv[i], "--stats")) {
			stats = true;
		} else if (!strcmp(argv[i], "--no-conditional")) {
			nocond = true;
		} else if (!v) {
			return usage();
		} else if (!strcmp(argv[i], "--endpoint")) {
			snprintf(cfg.endpoint, sizeof(cfg.endpoint), "%s", v), i++;
		} else if (!strcmp(argv[i], "--secret")) {
			snprintf(cfg.secret_key, sizeof(cfg.secret_key), "%s", v), i++;
		} else if (!strcmp(argv[i], "--retries")) {
			cfg.retries = atoi(v), i++;
		} else if (!strcmp(argv[i], "--connections")) {
			cfg.connections = atoi(v), i++;
		} else if (!strcmp(argv[i], "--timeout-ms")) {
			cfg.timeout_ms = atoi(v), i++;
		} else {
			return usage();
		}
	}
	if (argc - i < 2)
		return usage();
	if ((rc = s3_config_env(&cfg, &err)) < 0 ||
	    (rc = s3_url_parse(argv[i + 1], bucket, key, &err)) < 0)
		return fail(rc);
	cl = s3_open(&cfg, bucket, &err);
	if (!cl)
		return fail(-err.code);
	s3_set_no_conditional(cl, nocond);
	rc = run(argv[i], argc - i - 2, argv + i + 2);
	if (stats) {
		struct s3_counters c;

		s3_counters(cl, &c);
		fprintf(stderr, "requests=%llu retries=%llu up=%llu down=%llu\n",
			(unsigned long long)c.requests, (unsigned long long)c.retries,
			(unsigned long long)c.bytes_up, (unsigned long long)c.bytes_down);
	}
	s3_close(cl);
	return rc;
}
