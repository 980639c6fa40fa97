/* s3: the S3 client (see s3.h) on libcurl.
 *
 * Signing: CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3" with CURLOPT_USERPWD
 * key:secret.  curl 7.88 (Debian 12) does not send x-amz-content-sha256,
 * which S3 and radosgw require for SigV4 ("SignatureDoesNotMatch"
 * without it): we send it ourselves, the SHA-256 of the body (a signed
 * payload), and curl signs the header as it signs every x-amz-* header
 * given to it.  curl 7.88 signs the query string as given, unsorted: every
 * query here is built in canonical form (names sorted, values encoded,
 * "name=" for empty values).
 *
 * Bodies are sent from memory (CURLOPT_POSTFIELDS with a custom method),
 * answers land in a growing buffer bounded by the caller's max (or in the
 * caller's buffer for ranges); error answers (status >= 300) in a separate
 * buffer capped at ERR_BODY_MAX, parsed for <Code>.
 *
 * Pool: cfg.connections curl easy handles; a request takes one (waiting on
 * a condition variable when all are busy) and gives it back, keeping its
 * connection alive for the next request. */
#include "s3-int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#define ERR_BODY_MAX (64 * 1024)
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000
#define URL_MAX (4096 + 512)
#define SMALL_XML_MAX (1u << 20)        /* retention answers */
#define LIST_PAGE_MAX (S3_XML_MAX)

struct s3_client {
	struct s3_config cfg;
	char bucket[64];
	char base[1024];        /* URL up to the key: ".../BUCKET" or "https://BUCKET.s3..." */
	char userpwd[520];
	char sigv4[128];
	char token_hdr[2100];

	pthread_mutex_t mu;
	pthread_cond_t cv;
	CURL **free_h;          /* stack of idle handles */
	int nfree, nhandles;

	atomic_bool no_conditional;
	atomic_uint_fast64_t requests, retries, bytes_up, bytes_down;
	atomic_uint_fast64_t seed;
};

/* One request and its answer. */
struct rq {
	const char *op;                 /* for messages: "put", "get", ... */
	const char *method;             /* GET HEAD PUT DELETE */
	const char *key;                /* raw key; NULL: the bucket itself */
	const char *query;              /* canonical query, NULL none */
	const char *const *hdrs;        /* extra headers, NULL-terminated */
	const void *body;
	size_t body_len;
	/* answer */
	char ebuf[CURL_ERROR_SIZE];     /* curl's detail of a failed transfer */
	char *buf;                      /* malloc'd, grown to at most max */
	size_t len, cap, max;
	void *fixed;                    /* instead of buf: a caller's buffer */
	size_t fixed_len;
	uint64_t range_off, fixed_skip;
	bool too_big;
	bool discard;                   /* a success body is not wanted (PUT,
					 * DELETE): dropped, ERR_BODY_MAX at most */
	char *err;                      /* error body, ERR_BODY_MAX at most */
	size_t err_len;
	long status;
	uint64_t content_length;
	bool has_length;
	char etag[80];
	char version_id[256];
	char code[64];                  /* S3 error <Code> */
	int64_t mtime;
	int64_t retain_until;           /* x-amz-object-lock-retain-until-date,
					 * 0 none, -1 unreadable */
	CURL *h;                        /* the handle carrying it */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Copy src into dst (size n), cut to fit. */
static void cpy(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);

	if (l >= n)
		l = n - 1;
	memcpy(dst, src, l);
	dst[l] = 0;
}

/* ---- pool ---- */

static CURL *conn_get(struct s3_client *c)
{
	CURL *h;

	pthread_mutex_lock(&c->mu);
	while (c->nfree == 0)
		pthread_cond_wait(&c->cv, &c->mu);
	h = c->free_h[--c->nfree];
	pthread_mutex_unlock(&c->mu);
	return h;
}

static void conn_put(struct s3_client *c, CURL *h)
{
	pthread_mutex_lock(&c->mu);
	c->free_h[c->nfree++] = h;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* ---- callbacks ---- */

static size_t on_data(char *p, size_t sz, size_t nm, void *opaque)
{
	struct rq *q = opaque;
	size_t n = sz * nm;
	long status = 0;

	curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 300) {
		size_t take = ERR_BODY_MAX - q->err_len;

		if (!q->err && !(q->err = malloc(ERR_BODY_MAX + 1)))
			return 0;
		if (take > n)
			take = n;
		memcpy(q->err + q->err_len, p, take);
		q->err_len += take;
		return n;
	}
	if (q->fixed) {
		/* A range into the caller's buffer; a store that ignored the
		 * Range header sends the whole object: skip to the offset. */
		size_t skip = status != 200 ? 0 : q->fixed_skip < n ? (size_t)q->fixed_skip : n;
		size_t take;

		q->fixed_skip -= skip;
		take = n - skip;
		if (take > q->fixed_len - q->len)
			take = q->fixed_len - q->len;
		memcpy((char *)q->fixed + q->len, p + skip, take);
		q->len += take;
		return n;
	}
	if (q->discard) {
		/* Some stores answer a PUT with a small XML body: drop it,
		 * within reason. */
		if (n > ERR_BODY_MAX - q->len) {
			q->too_big = true;
			return 0;
		}
		q->len += n;
		return n;
	}
	if (n > q->max - q->len) {
		q->too_big = true;
		return 0;
	}
	if (q->len + n + 1 > q->cap) {
		size_t cap = q->cap ? q->cap : 64 * 1024;
		char *nb;

		while (cap < q->len + n + 1)
			cap *= 2;
		if (cap > q->max + 1)
			cap = q->max + 1;
		nb = realloc(q->buf, cap);
		if (!nb)
			return 0;
		q->buf = nb;
		q->cap = cap;
	}
	memcpy(q->buf + q->len, p, n);
	q->len += n;
	return n;
}

/* Copy a header's value (after "name:") trimmed into out (size n) when
 * line starts with name; true when it did. */
static bool header_value(const char *line, size_t len, const char *name,
			 char *out, size_t n)
{
	size_t nl = strlen(name), b, e;

	if (len <= nl || strncasecmp(line, name, nl) || line[nl] != ':')
		return false;
	for (b = nl + 1; b < len && (line[b] == ' ' || line[b] == '\t'); b++)
		;
	for (e = len; e > b && (line[e - 1] == '\r' || line[e - 1] == '\n' ||
				line[e - 1] == ' '); e--)
		;
	if (e - b >= n)
		e = b + n - 1;
	memcpy(out, line + b, e - b);
	out[e - b] = 0;
	return true;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *opaque)
{
	struct rq *q = opaque;
	size_t n = sz * nm;
	char v[256];

	if (header_value(p, n, "ETag", v, sizeof(v))) {
		size_t l = strlen(v);
		char *s = v;

		if (l >= 2 && s[0] == '"' && s[l - 1] == '"') {
			s[l - 1] = 0;
			s++;
		}
		cpy(q->etag, sizeof(q->etag), s);
	} else if (header_value(p, n, "x-amz-version-id", v, sizeof(v))) {
		cpy(q->version_id, sizeof(q->version_id), v);
	} else if (header_value(p, n, "x-amz-object-lock-retain-until-date", v,
				sizeof(v))) {
		q->retain_until = s3_iso8601_parse(v);
	} else if (header_value(p, n, "Content-Length", v, sizeof(v))) {
		char *end;
		unsigned long long x;

		errno = 0;
		x = strtoull(v, &end, 10);
		q->has_length = !errno && end != v && !*end;
		q->content_length = x;
	}
	return n;
}

/* ---- requests ---- */

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = 0;
}

static int digest(const char *alg, const void *data, size_t len,
		  unsigned char *md, unsigned *mdlen)
{
	return EVP_Digest(data, len, md, mdlen, EVP_get_digestbyname(alg), NULL) ? 0 : -EIO;
}

static void b64(const unsigned char *b, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, b, (int)n);
}

static uint64_t rnd(struct s3_client *c)
{
	/* xorshift64*, good enough for jitter. */
	uint_fast64_t x = atomic_load(&c->seed), y;

	do {
		y = x;
		y ^= y >> 12;
		y ^= y << 25;
		y ^= y >> 27;
	} while (!atomic_compare_exchange_weak(&c->seed, &x, y));
	return y * 2685821657736338717ull;
}

static void backoff(struct s3_client *c, int attempt)
{
	uint64_t ms = BACKOFF_BASE_MS;
	struct timespec ts;

	for (int i = 0; i < attempt && ms < BACKOFF_CAP_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_CAP_MS)
		ms = BACKOFF_CAP_MS;
	/* Jitter: between half and all of the step. */
	ms = ms / 2 + rnd(c) % (ms / 2 + 1);
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool retryable_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

static bool retryable_status(const struct rq *q)
{
	return q->status >= 500 || q->status == 429 ||
	       !strcmp(q->code, "SlowDown") || !strcmp(q->code, "RequestTimeout");
}

/* Where: "bucket/key" or "bucket". */
static const char *where(const struct s3_client *c, const struct rq *q,
			 char *buf, size_t n)
{
	snprintf(buf, n, "s3://%s%s%.300s", c->bucket, q->key ? "/" : "", q->key ? q->key : "");
	return buf;
}

/* The -errno for a final HTTP answer. */
static int status_errno(const struct rq *q)
{
	if (q->status == 404)
		return !strcmp(q->code, "NoSuchBucket") ? -ENXIO : -ENOENT;
	if (q->status == 412)
		return -EEXIST;
	if (q->status == 403 || !strcmp(q->code, "AccessDenied"))
		return -EACCES;
	if (q->status == 409 && (!strcmp(q->code, "BucketAlreadyExists") ||
				 !strcmp(q->code, "BucketAlreadyOwnedByYou")))
		return -EEXIST;
	if (q->status == 400 && (!strcmp(q->code, "InvalidRequest") ||
				 !strcmp(q->code, "InvalidArgument")))
		return -EINVAL;
	if (q->status == 416)
		return -ERANGE;
	if (q->status == 501)
		return -ENOSYS;         /* NotImplemented */
	return -EIO;
}

static void rq_reset(struct rq *q)
{
	q->len = 0;
	q->fixed_skip = q->range_off;
	q->too_big = false;
	q->err_len = 0;
	q->status = 0;
	q->has_length = false;
	q->content_length = 0;
	q->etag[0] = q->version_id[0] = q->code[0] = 0;
	q->mtime = -1;
	q->retain_until = 0;
}

static int build_url(const struct s3_client *c, const struct rq *q,
		     char *url, size_t n)
{
	char *enc;
	int r, len;

	enc = malloc(3 * S3_KEY_MAX + 1);
	if (!enc)
		return -ENOMEM;
	enc[0] = 0;
	if (q->key && (strlen(q->key) > S3_KEY_MAX ||
		       s3_uri_encode(q->key, true, enc, 3 * S3_KEY_MAX + 1) < 0)) {
		free(enc);
		return -ENAMETOOLONG;
	}
	len = snprintf(url, n, "%s%s%s%s%s", c->base, q->key ? "/" : "", enc,
		       q->query ? "?" : "", q->query ? q->query : "");
	r = len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
	free(enc);
	return r;
}

/* One attempt on handle h.  Returns the curl code. */
static CURLcode attempt(struct s3_client *c, CURL *h, struct rq *q,
			const char *url, struct curl_slist *hl)
{
	curl_easy_reset(h);
	q->h = h;
	q->ebuf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, q->ebuf);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
	curl_easy_setopt(h, CURLOPT_USERPWD, c->userpwd);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	/* timeout_ms bounds a stall, not the transfer: a request moving
	 * less than 1 KiB/s for that long (whole seconds, at least 1) gives
	 * up, so a 512 MiB object on a slow but moving link completes. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
			 (long)((c->cfg.timeout_ms + 999) / 1000));
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(c->cfg.timeout_ms < 10000 ? c->cfg.timeout_ms : 10000));
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, q);
	curl_easy_setopt(h, CURLOPT_FILETIME, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->cfg.insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->cfg.ca_file[0])
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg.ca_file);
	if (!strcmp(q->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(q->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(q->method, "PUT") || !strcmp(q->method, "POST")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body ? (const char *)q->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
	}
	return curl_easy_perform(h);
}

/* Append line to *hl; on failure free the list, *hl NULL, false. */
static bool hdr_add(struct curl_slist **hl, const char *line)
{
	struct curl_slist *t = curl_slist_append(*hl, line);

	if (!t)
		curl_slist_free_all(*hl);
	*hl = t;
	return t != NULL;
}

/* Send q with retries; 0 for a 2xx answer, else -errno (e). */
static int perform(struct s3_client *c, struct rq *q, struct bdev_err *e)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char sha[2 * 32 + 1], w[400];
	char hbuf[128];
	char *url = NULL;
	struct curl_slist *hl = NULL;
	bool ok;
	CURLcode rc = CURLE_OK;
	unsigned mdlen;
	int r, tries = 1 + c->cfg.retries;

	url = malloc(URL_MAX);
	if (!url)
		return bdev_err_set(e, ENOMEM, "out of memory");
	r = build_url(c, q, url, URL_MAX);
	if (r < 0) {
		free(url);
		return bdev_err_set(e, r, "%s %s: key too long", q->op, where(c, q, w, sizeof(w)));
	}
	if (digest("SHA256", q->body ? q->body : "", q->body_len, md, &mdlen) < 0) {
		free(url);
		return bdev_err_set(e, EIO, "%s: SHA-256 unavailable", q->op);
	}
	hex(md, 32, sha);
	snprintf(hbuf, sizeof(hbuf), "x-amz-content-sha256: %s", sha);
	/* Not a form.  (An "Expect:" line to drop curl's 100-continue would
	 * be signed as a header by curl 7.88 and break the signature.  Kept:
	 * the 100-continue round trip costs about 1.5 ms per PUT over 1 MiB
	 * against radosgw on 127.0.0.1, which answers 100 at once, measured;
	 * docs/ARCHITECTURE.md.) */
	ok = hdr_add(&hl, hbuf) &&
	     (!q->body || hdr_add(&hl, "Content-Type: application/octet-stream")) &&
	     (!c->token_hdr[0] || hdr_add(&hl, c->token_hdr));
	for (const char *const *p = q->hdrs; ok && p && *p; p++)
		ok = hdr_add(&hl, *p);
	if (!hl) {
		free(url);
		return bdev_err_set(e, ENOMEM, "out of memory");
	}
	for (int i = 0; i < tries; i++) {
		CURL *h;

		if (i > 0) {
			atomic_fetch_add(&c->retries, 1);
			backoff(c, i - 1);
		}
		rq_reset(q);
		h = conn_get(c);
		atomic_fetch_add(&c->requests, 1);
		rc = attempt(c, h, q, url, hl);
		if (rc == CURLE_OK) {
			curl_off_t ft = -1, up = 0, down = 0;

			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &q->status);
			curl_easy_getinfo(h, CURLINFO_FILETIME_T, &ft);
			curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
			curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
			q->mtime = ft;
			atomic_fetch_add(&c->bytes_up, (uint64_t)up);
			atomic_fetch_add(&c->bytes_down, (uint64_t)down);
		}
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
		conn_put(c, h);
		if (q->too_big) {
			r = bdev_err_set(e, EFBIG, "%s %s: answer larger than %zu bytes",
					 q->op, where(c, q, w, sizeof(w)),
					 q->discard ? (size_t)ERR_BODY_MAX : q->max);
			goto out;
		}
		if (rc != CURLE_OK) {
			if (retryable_curl(rc))
				continue;
			r = bdev_err_set(e, EIO, "%s %s: %s", q->op, where(c, q, w, sizeof(w)),
					 q->ebuf[0] ? q->ebuf : curl_easy_strerror(rc));
			goto out;
		}
		if (q->err_len) {
			q->err[q->err_len] = 0;
			if (s3_xml_child(q->err, q->err_len, "Code", q->code, sizeof(q->code)) < 0)
				q->code[0] = 0;
		}
		if (q->status >= 200 && q->status < 300) {
			r = 0;
			goto out;
		}
		if (!retryable_status(q))
			break;
	}
	if (rc != CURLE_OK) {
		r = bdev_err_set(e, rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : EIO,
				 "%s %s: %s (after %d attempts)", q->op, where(c, q, w, sizeof(w)),
				 q->ebuf[0] ? q->ebuf : curl_easy_strerror(rc), tries);
		goto out;
	}
	r = status_errno(q);
	bdev_err_set(e, r, "%s %s: HTTP %ld%s%s%s", q->op, where(c, q, w, sizeof(w)),
		     q->status, q->code[0] ? " " : "", q->code,
		     retryable_status(q) ? " (retries exhausted)" : "");
out:
	curl_slist_free_all(hl);
	free(url);
	return r;
}

static void rq_free(struct rq *q)
{
	free(q->buf);
	free(q->err);
	q->buf = q->err = NULL;
}

/* ---- open / close ---- */

struct s3_client *s3_open(const struct s3_config *cfg, const char *bucket,
			  struct bdev_err *e)
{
	struct s3_client *c;
	const char *region;
	char url[80];

	snprintf(url, sizeof(url), "s3://%s", bucket ? bucket : "");
	{
		char b[64], p[1024];

		if (!bucket || s3_url_parse(url, b, p, e) < 0 || p[0]) {
			bdev_err_set(e, EINVAL, "\"%s\": not a valid bucket name", bucket ? bucket : "");
			return NULL;
		}
	}
	if (!cfg->access_key[0] || !cfg->secret_key[0]) {
		bdev_err_set(e, EINVAL, "no S3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
		return NULL;
	}
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		bdev_err_set(e, EIO, "curl_global_init: %s", curl_easy_strerror(curl_init_rc));
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		bdev_err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	c->cfg = *cfg;
	if (c->cfg.connections <= 0)
		c->cfg.connections = 8;
	if (c->cfg.connections > 256)
		c->cfg.connections = 256;
	if (c->cfg.retries < 0)
		c->cfg.retries = 6;
	if (c->cfg.timeout_ms <= 0)
		c->cfg.timeout_ms = 60000;
	if (!c->cfg.region[0])
		snprintf(c->cfg.region, sizeof(c->cfg.region), "us-east-1");
	region = c->cfg.region;
	snprintf(c->bucket, sizeof(c->bucket), "%s", bucket);
	if (c->cfg.endpoint[0]) {
		size_t l = strlen(c->cfg.endpoint);
		const char *host = strstr(c->cfg.endpoint, "://");

		while (l && c->cfg.endpoint[l - 1] == '/')
			c->cfg.endpoint[--l] = 0;
		if (c->cfg.virtual_host && host) {
			/* scheme://BUCKET.host[:port][/path] */
			host += 3;
			snprintf(c->base, sizeof(c->base), "%.*s%s.%s",
				 (int)(host - c->cfg.endpoint), c->cfg.endpoint, bucket, host);
		} else {
			c->cfg.path_style = true;
			c->cfg.virtual_host = false;
			snprintf(c->base, sizeof(c->base), "%s/%s", c->cfg.endpoint, bucket);
		}
	} else if (c->cfg.virtual_host) {
		snprintf(c->base, sizeof(c->base), "https://%s.s3.%s.amazonaws.com", bucket, region);
	} else if (c->cfg.path_style || strchr(bucket, '.')) {
		snprintf(c->base, sizeof(c->base), "https://s3.%s.amazonaws.com/%s", region, bucket);
	} else {
		snprintf(c->base, sizeof(c->base), "https://%s.s3.%s.amazonaws.com", bucket, region);
	}
	snprintf(c->userpwd, sizeof(c->userpwd), "%s:%s", c->cfg.access_key, c->cfg.secret_key);
	snprintf(c->sigv4, sizeof(c->sigv4), "aws:amz:%s:s3", region);
	if (c->cfg.session_token[0])
		snprintf(c->token_hdr, sizeof(c->token_hdr), "X-Amz-Security-Token: %s",
			 c->cfg.session_token);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	atomic_init(&c->seed, (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uintptr_t)c);
	if (atomic_load(&c->seed) == 0)
		atomic_init(&c->seed, 1);
	c->free_h = calloc((size_t)c->cfg.connections, sizeof(*c->free_h));
	if (!c->free_h)
		goto nomem;
	for (int i = 0; i < c->cfg.connections; i++) {
		CURL *h = curl_easy_init();

		if (!h)
			goto nomem;
		c->free_h[c->nfree++] = h;
		c->nhandles++;
	}
	return c;
nomem:
	s3_close(c);
	bdev_err_set(e, ENOMEM, "out of memory");
	return NULL;
}

void s3_close(struct s3_client *c)
{
	if (!c)
		return;
	/* Every request has given its handle back by now (the caller's
	 * contract: no request in flight at close). */
	for (int i = 0; i < c->nfree; i++)
		curl_easy_cleanup(c->free_h[i]);
	free(c->free_h);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	/* The secret goes with the client (curl's own copy of USERPWD is
	 * freed by curl_easy_cleanup without being cleared: not ours). */
	explicit_bzero(c->userpwd, sizeof(c->userpwd));
	explicit_bzero(c->cfg.secret_key, sizeof(c->cfg.secret_key));
	explicit_bzero(c->cfg.session_token, sizeof(c->cfg.session_token));
	explicit_bzero(c->token_hdr, sizeof(c->token_hdr));
	free(c);
}

void s3_set_no_conditional(struct s3_client *c, bool on)
{
	atomic_store(&c->no_conditional, on);
}

void s3_counters(struct s3_client *c, struct s3_counters *out)
{
	out->requests = atomic_load(&c->requests);
	out->retries = atomic_load(&c->retries);
	out->bytes_up = atomic_load(&c->bytes_up);
	out->bytes_down = atomic_load(&c->bytes_down);
}

/* ---- operations ---- */

int s3_bucket_create(struct s3_client *c, bool object_lock,
		     struct bdev_err *e)
{
	struct rq head = { .op = "create bucket", .method = "HEAD" };
	struct rq q = { .op = "create bucket", .method = "PUT", .discard = true };
	static const char *const lock_hdr[] = { "x-amz-bucket-object-lock-enabled: true", NULL };
	char body[256];
	int r;

	/* radosgw answers 200 to a CreateBucket of a bucket its caller owns
	 * (as AWS does in us-east-1): ask first, so that an existing bucket
	 * is -EEXIST everywhere. */
	r = perform(c, &head, e);
	rq_free(&head);
	if (r == 0)
		return bdev_err_set(e, EEXIST, "create bucket s3://%s: exists already", c->bucket);
	/* 403: someone else's bucket (the PUT says 409 BucketAlreadyExists)
	 * or bad credentials (the PUT says why, with a code: a HEAD answer
	 * has no body). */
	if (r != -ENOENT && r != -ENXIO && r != -EACCES)
		return r;
	if (object_lock)
		q.hdrs = lock_hdr;
	if (!c->cfg.endpoint[0] && strcmp(c->cfg.region, "us-east-1")) {
		snprintf(body, sizeof(body),
			 "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			 "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
			 c->cfg.region);
		q.body = body;
		q.body_len = strlen(body);
	}
	r = perform(c, &q, e);
	rq_free(&q);
	return r;
}

/* "Content-MD5: base64" for data. */
static int md5_header(const void *data, size_t len, char out[64])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen;
	int r = digest("MD5", data ? data : "", len, md, &mdlen);

	if (r < 0)
		return r;
	memcpy(out, "Content-MD5: ", 13);
	b64(md, 16, out + 13);
	return 0;
}

int s3_put(struct s3_client *c, const char *key, const void *data, size_t len,
	   const struct s3_put_opts *opts, struct bdev_err *e)
{
	struct rq q = { .op = "put", .method = "PUT", .key = key, .discard = true,
			.body = data ? data : "", .body_len = len };
	char md5[64], until[40], lockdate[96];
	const char *hdrs[5];
	int n = 0, r;
	bool cond = opts && opts->if_none_match;

	/* The body's integrity in flight is x-amz-content-sha256, signed and
	 * checked by the store (tests/e2e/test-s3-client.sh damages a body on
	 * the way).  Content-MD5 costs another pass over the data (MD5 is
	 * slower here than SHA-256 with the CPU's SHA instructions) and is
	 * sent only where S3 requires it: with Object Lock retention. */
	if (opts && opts->retain_until > 0) {
		if (md5_header(data, len, md5) < 0)
			return bdev_err_set(e, EIO, "put: MD5 unavailable");
		hdrs[n++] = md5;
	}
	if (cond && atomic_load(&c->no_conditional)) {
		/* The store ignores If-None-Match: look first.  Not atomic: two
		 * writers of one key may both write.  The backup repository
		 * only does this for content-addressed chunks, where the two
		 * writes carry the same bytes. */
		struct s3_stat st;

		r = s3_head(c, key, &st, e);
		if (r == 0)
			return bdev_err_set(e, EEXIST, "put s3://%s/%s: exists already", c->bucket, key);
		if (r != -ENOENT)
			return r;
	} else if (cond) {
		hdrs[n++] = "If-None-Match: *";
	}
	if (opts && opts->retain_until > 0) {
		s3_iso8601_format(opts->retain_until, until, sizeof(until));
		snprintf(lockdate, sizeof(lockdate), "x-amz-object-lock-retain-until-date: %s", until);
		hdrs[n++] = "x-amz-object-lock-mode: COMPLIANCE";
		hdrs[n++] = lockdate;
	}
	hdrs[n] = NULL;
	q.hdrs = hdrs;
	r = perform(c, &q, e);
	rq_free(&q);
	return r;
}

int s3_get(struct s3_client *c, const char *key, size_t max, void **data,
	   size_t *len, struct bdev_err *e)
{
	return s3_get_version(c, key, NULL, max, data, len, NULL, e);
}

int s3_get_range(struct s3_client *c, const char *key, uint64_t off,
		 size_t len, void *buf, size_t *got, struct bdev_err *e)
{
	char range[80];
	const char *hdrs[] = { range, NULL };
	struct rq q = { .op = "get range", .method = "GET", .key = key, .hdrs = hdrs,
			.fixed = buf, .fixed_len = len, .range_off = off };
	int r;

	*got = 0;
	if (len == 0)
		return 0;
	snprintf(range, sizeof(range), "Range: bytes=%llu-%llu", (unsigned long long)off,
		 (unsigned long long)(off + len - 1));
	/* A store that ignores Range answers 200 with the whole object:
	 * on_data then skips to off. */
	r = perform(c, &q, e);
	if (r == -ERANGE)
		r = 0;  /* at or past the end */
	if (r == 0)
		*got = q.len;
	rq_free(&q);
	return r;
}

int s3_head(struct s3_client *c, const char *key, struct s3_stat *st,
	    struct bdev_err *e)
{
	struct rq q = { .op = "head", .method = "HEAD", .key = key };
	int r;

	memset(st, 0, sizeof(*st));
	r = perform(c, &q, e);
	if (r == 0) {
		st->size = q.content_length;
		st->mtime = q.mtime > 0 ? q.mtime : 0;
		cpy(st->etag, sizeof(st->etag), q.etag);
		st->retain_until = q.retain_until;
		if (!q.has_length)
			r = bdev_err_set(e, EPROTO, "head s3://%s/%s: no Content-Length", c->bucket, key);
	}
	rq_free(&q);
	return r;
}

int s3_delete(struct s3_client *c, const char *key, struct bdev_err *e)
{
	struct rq head = { .op = "delete", .method = "HEAD", .key = key };
	struct rq q = { .op = "delete", .method = "DELETE", .key = key, .discard = true };
	char query[300], enc[280];
	int r;

	/* In a versioned bucket (every Object Lock bucket is one) a DELETE
	 * without a version only adds a delete marker and hides the object:
	 * delete the current version itself, which Object Lock refuses. */
	r = perform(c, &head, e);
	if (r == -ENOENT) {
		rq_free(&head);
		return 0;
	}
	if (r < 0) {
		rq_free(&head);
		return r;
	}
	if (head.version_id[0] && strcmp(head.version_id, "null")) {
		if (s3_uri_encode(head.version_id, false, enc, sizeof(enc)) < 0) {
			rq_free(&head);
			return bdev_err_set(e, EPROTO, "delete s3://%s/%s: version id too long",
					    c->bucket, key);
		}
		snprintf(query, sizeof(query), "versionId=%s", enc);
		q.query = query;
	}
	rq_free(&head);
	r = perform(c, &q, e);
	rq_free(&q);
	return r == -ENOENT ? 0 : r;
}

/* A truncated page's next token: 0 when new (remembered), -EIO when
 * empty or seen before (the listing would loop), -ENOMEM. */
static int list_token_new(const char *token, uint64_t **seen, size_t *n)
{
	uint64_t h = 1469598103934665603ull;
	uint64_t *nv;

	if (!token[0])
		return -EIO;
	for (const char *p = token; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	for (size_t i = 0; i < *n; i++)
		if ((*seen)[i] == h)
			return -EIO;
	nv = realloc(*seen, (*n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = h;
	*seen = nv;
	return 0;
}

int s3_list(struct s3_client *c, const char *prefix, s3_list_fn fn,
	    void *opaque, struct bdev_err *e)
{
	char *token, *query, *enc_p, *enc_t;
	size_t qn = 3 * S3_XML_TEXT_MAX + 3 * S3_KEY_MAX + 64;
	uint64_t *seen = NULL;      /* FNV-1a of every token used so far */
	size_t nseen = 0;
	bool truncated;
	int r;

	token = malloc(S3_XML_TEXT_MAX + 1);
	query = malloc(qn);
	enc_p = malloc(3 * S3_KEY_MAX + 1);
	enc_t = malloc(3 * S3_XML_TEXT_MAX + 1);
	if (!token || !query || !enc_p || !enc_t) {
		r = bdev_err_set(e, ENOMEM, "out of memory");
		goto out;
	}
	token[0] = 0;
	if (s3_uri_encode(prefix ? prefix : "", false, enc_p, 3 * S3_KEY_MAX + 1) < 0) {
		r = bdev_err_set(e, ENAMETOOLONG, "list s3://%s: prefix too long", c->bucket);
		goto out;
	}
	do {
		struct rq q = { .op = "list", .method = "GET", .max = LIST_PAGE_MAX };

		/* Canonical order: continuation-token, list-type, prefix. */
		if (s3_uri_encode(token, false, enc_t, 3 * S3_XML_TEXT_MAX + 1) < 0) {
			r = bdev_err_set(e, EPROTO, "list s3://%s: continuation token too long", c->bucket);
			goto out;
		}
		if ((size_t)snprintf(query, qn, "%s%s%slist-type=2&prefix=%s",
				     token[0] ? "continuation-token=" : "", enc_t,
				     token[0] ? "&" : "", enc_p) >= qn) {
			r = bdev_err_set(e, EPROTO, "list s3://%s: continuation token too long", c->bucket);
			goto out;
		}
		q.query = query;
		r = perform(c, &q, e);
		if (r == 0)
			r = s3_list_parse(q.buf ? q.buf : "", q.len, fn, opaque, &truncated,
					  token, S3_XML_TEXT_MAX + 1, e);
		rq_free(&q);
		if (r)
			goto out;
		if (truncated) {
			r = list_token_new(token, &seen, &nseen);
			if (r == -ENOMEM) {
				r = bdev_err_set(e, ENOMEM, "out of memory");
				goto out;
			}
			if (r) {
				r = bdev_err_set(e, EIO, "list s3://%s/%s: listing did not advance (the server repeated a continuation token)",
						 c->bucket, prefix ? prefix : "");
				goto out;
			}
		}
	} while (truncated);
out:
	free(seen);
	free(token);
	free(query);
	free(enc_p);
	free(enc_t);
	return r;
}

/* pre (a query before it, e.g. "retention=&", or "") then
 * "versionId=VID" into query (size 300). */
static int vid_query(const struct s3_client *c, const char *key,
		     const char *pre, const char *vid, char query[300],
		     struct bdev_err *e)
{
	char enc[3 * 256 + 1];

	if (s3_uri_encode(vid, false, enc, sizeof(enc)) < 0 ||
	    snprintf(query, 300, "%sversionId=%s", pre, enc) >= 300)
		return bdev_err_set(e, EPROTO, "s3://%s/%s: version id too long",
				    c->bucket, key);
	return 0;
}

/* "retention=" and, for version vid (NULL, "": the current one),
 * "&versionId=VID" into query (size 300). */
static int retention_query(const struct s3_client *c, const char *key,
			   const char *vid, char query[300], struct bdev_err *e)
{
	if (!vid || !vid[0]) {
		snprintf(query, 300, "retention=");
		return 0;
	}
	return vid_query(c, key, "retention=&", vid, query, e);
}

int s3_retention_set(struct s3_client *c, const char *key, int64_t until,
		     struct bdev_err *e)
{
	return s3_retention_set_version(c, key, NULL, until, e);
}

int s3_retention_set_version(struct s3_client *c, const char *key,
			     const char *vid, int64_t until, struct bdev_err *e)
{
	char body[256], date[40], md5[64], query[300];
	const char *hdrs[] = { md5, NULL };
	struct rq q = { .op = "set retention", .method = "PUT", .key = key, .discard = true,
			.query = query, .hdrs = hdrs };
	int r = retention_query(c, key, vid, query, e);

	if (r)
		return r;
	s3_iso8601_format(until, date, sizeof(date));
	snprintf(body, sizeof(body),
		 "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		 "<Mode>COMPLIANCE</Mode><RetainUntilDate>%s</RetainUntilDate></Retention>", date);
	q.body = body;
	q.body_len = strlen(body);
	if (md5_header(body, q.body_len, md5) < 0)
		return bdev_err_set(e, EIO, "set retention: MD5 unavailable");
	r = perform(c, &q, e);
	rq_free(&q);
	return r;
}

int s3_retention_get(struct s3_client *c, const char *key, int64_t *until,
		     struct bdev_err *e)
{
	return s3_retention_get_version(c, key, NULL, until, e);
}

int s3_retention_get_version(struct s3_client *c, const char *key,
			     const char *vid, int64_t *until, struct bdev_err *e)
{
	char query[300];
	struct rq q = { .op = "get retention", .method = "GET", .key = key,
			.query = query, .max = SMALL_XML_MAX };
	char date[80];
	int r;

	*until = 0;
	r = retention_query(c, key, vid, query, e);
	if (r)
		return r;
	r = perform(c, &q, e);
	if (r == -ENOENT && strcmp(q.code, "NoSuchKey") &&
	    (strstr(q.code, "ObjectLock") || strstr(q.code, "Retention"))) {
		/* NoSuchObjectLockConfiguration: no retention. */
		rq_free(&q);
		return 0;
	}
	if (r == 0) {
		r = s3_xml_child(q.buf ? q.buf : "", q.len, "RetainUntilDate", date, sizeof(date));
		if (r == 0 && date[0]) {
			*until = s3_iso8601_parse(date);
			if (*until < 0) {
				*until = 0;
				r = -EPROTO;
			}
		}
		if (r < 0)
			bdev_err_set(e, EPROTO, "get retention s3://%s/%s: malformed answer", c->bucket, key);
	}
	rq_free(&q);
	return r;
}

/* ---- versions ---- */

int s3_get_version(struct s3_client *c, const char *key, const char *vid,
		   size_t max, void **data, size_t *len, struct s3_version_id *id,
		   struct bdev_err *e)
{
	struct rq q = { .op = "get", .method = "GET", .key = key, .max = max };
	char query[300];
	int r;

	*data = NULL;
	*len = 0;
	if (vid && vid[0]) {
		if ((r = vid_query(c, key, "", vid, query, e)))
			return r;
		q.query = query;
	}
	r = perform(c, &q, e);
	if (r < 0) {
		rq_free(&q);
		return r;
	}
	if (!q.buf && !(q.buf = malloc(1))) {
		rq_free(&q);
		return bdev_err_set(e, ENOMEM, "out of memory");
	}
	q.buf[q.len] = 0;
	if (q.has_length && q.content_length != q.len) {
		rq_free(&q);
		return bdev_err_set(e, EIO, "get s3://%s/%s: %zu bytes received, %llu announced",
				    c->bucket, key, q.len, (unsigned long long)q.content_length);
	}
	*data = q.buf;
	*len = q.len;
	if (id) {
		cpy(id->version_id, sizeof(id->version_id), q.version_id);
		cpy(id->etag, sizeof(id->etag), q.etag);
	}
	free(q.err);
	return 0;
}

#define VERSIONS_MAX 1000000    /* versions of one key deleted at most */
#define VERSIONS_DONE 1         /* a walk's callback: stop, no error */

struct vcollect {
	const char *key;
	char (*vid)[256];
	bool *latest;
	size_t n, cap;
};

static int vcollect_one(void *opaque, const struct s3_version *v)
{
	struct vcollect *vc = opaque;

	if (strcmp(v->key, vc->key))
		return strcmp(v->key, vc->key) > 0 ? VERSIONS_DONE : 0;
	if (vc->n == vc->cap) {
		size_t nc = vc->cap ? 2 * vc->cap : 16;
		void *a, *b;

		if (nc > VERSIONS_MAX)
			return -EFBIG;
		a = realloc(vc->vid, nc * sizeof(*vc->vid));
		if (a)
			vc->vid = a;
		b = a ? realloc(vc->latest, nc * sizeof(*vc->latest)) : NULL;
		if (!b)
			return -ENOMEM;
		vc->latest = b;
		vc->cap = nc;
	}
	cpy(vc->vid[vc->n], sizeof(vc->vid[0]), v->version_id);
	vc->latest[vc->n++] = v->latest && !v->delete_marker;
	return 0;
}

/* Every version under prefix (all pages) to fn; only_key (NULL: none):
 * stop as soon as the next page starts after that key. */
static int versions_walk(struct s3_client *c, const char *prefix,
			 const char *only_key, s3_version_fn fn, void *opaque,
			 struct bdev_err *e)
{
	size_t qn = 3 * S3_KEY_MAX * 2 + 3 * 256 + 64;
	char *query = malloc(qn), *enc_p = malloc(3 * S3_KEY_MAX + 1);
	char *km = malloc(S3_KEY_MAX + 1), *enc_k = malloc(3 * S3_KEY_MAX + 1);
	char vm[256], enc_v[3 * 256 + 1];
	bool truncated = false;
	size_t pages = 0;
	int r;

	if (!query || !enc_p || !km || !enc_k) {
		r = bdev_err_set(e, ENOMEM, "out of memory");
		goto out;
	}
	km[0] = vm[0] = 0;
	if (s3_uri_encode(prefix, false, enc_p, 3 * S3_KEY_MAX + 1) < 0) {
		r = bdev_err_set(e, ENAMETOOLONG, "versions s3://%s: key too long", c->bucket);
		goto out;
	}
	do {
		struct rq q = { .op = "list versions", .method = "GET", .max = LIST_PAGE_MAX };
		char okm[S3_KEY_MAX + 1], ovm[256];

		if (s3_uri_encode(km, false, enc_k, 3 * S3_KEY_MAX + 1) < 0 ||
		    s3_uri_encode(vm, false, enc_v, sizeof(enc_v)) < 0) {
			r = bdev_err_set(e, EPROTO, "versions s3://%s/%s: marker too long", c->bucket, prefix);
			goto out;
		}
		/* Canonical order: key-marker, prefix, version-id-marker, versions. */
		snprintf(query, qn, "%s%s%sprefix=%s&%s%s%sversions=",
			 km[0] ? "key-marker=" : "", enc_k, km[0] ? "&" : "", enc_p,
			 vm[0] ? "version-id-marker=" : "", enc_v, vm[0] ? "&" : "");
		q.query = query;
		snprintf(okm, sizeof(okm), "%s", km);
		snprintf(ovm, sizeof(ovm), "%s", vm);
		r = perform(c, &q, e);
		if (r == 0)
			r = s3_versions_parse(q.buf ? q.buf : "", q.len, fn, opaque,
					      &truncated, km, S3_KEY_MAX + 1, vm, sizeof(vm), e);
		rq_free(&q);
		if (r)
			goto out;
		if (truncated && ((!strcmp(km, okm) && !strcmp(vm, ovm)) || ++pages > VERSIONS_MAX / 100)) {
			r = bdev_err_set(e, EIO, "versions s3://%s/%s: listing did not advance", c->bucket, prefix);
			goto out;
		}
	} while (truncated && (!only_key || !strcmp(km, only_key)));
out:
	free(query);
	free(enc_p);
	free(km);
	free(enc_k);
	return r;
}

int s3_list_versions(struct s3_client *c, const char *prefix, s3_version_fn fn,
		     void *opaque, struct bdev_err *e)
{
	return versions_walk(c, prefix, NULL, fn, opaque, e);
}

/* Every version of key (all pages) into vc. */
static int versions_of(struct s3_client *c, const char *key,
		       struct vcollect *vc, struct bdev_err *e)
{
	int r = versions_walk(c, key, key, vcollect_one, vc, e);

	if (r == -ENOMEM || r == -EFBIG)
		return bdev_err_set(e, -r, "versions s3://%s/%s: %s", c->bucket, key,
				    r == -EFBIG ? "too many versions" : "out of memory");
	return r == VERSIONS_DONE ? 0 : r;
}

struct oldest {
	const char *key;
	char *vid;              /* 256 bytes */
	struct s3_stat *st;
	size_t versions, markers;
};

static int oldest_one(void *opaque, const struct s3_version *v)
{
	struct oldest *o = opaque;
	int cmp = strcmp(v->key, o->key);

	if (cmp)
		return cmp > 0 ? VERSIONS_DONE : 0;
	if (v->delete_marker) {
		o->markers++;
		return 0;
	}
	/* Newest first: the last one listed is the oldest. */
	o->versions++;
	cpy(o->vid, 256, v->version_id);
	if (o->st)
		*o->st = v->st;
	return 0;
}

int s3_oldest_version(struct s3_client *c, const char *key, char vid[256],
		      struct s3_stat *st, size_t *versions, size_t *markers,
		      struct bdev_err *e)
{
	struct oldest o = { .key = key, .vid = vid, .st = st };
	int r;

	vid[0] = 0;
	r = versions_walk(c, key, key, oldest_one, &o, e);
	if (r == VERSIONS_DONE)
		r = 0;
	if (versions)
		*versions = o.versions;
	if (markers)
		*markers = o.markers;
	if (!r && !o.versions)
		r = bdev_err_set(e, ENOENT, "get s3://%s/%s: no version (only %zu delete markers)",
				 c->bucket, key, o.markers);
	return r;
}

int s3_delete_version(struct s3_client *c, const char *key,
		      const char *vid, struct bdev_err *e)
{
	struct rq q = { .op = "delete", .method = "DELETE", .key = key, .discard = true };
	char query[300];
	int r;

	if (vid[0] && strcmp(vid, "null")) {
		if ((r = vid_query(c, key, "", vid, query, e)))
			return r;
		q.query = query;
	}
	r = perform(c, &q, e);
	rq_free(&q);
	return r == -ENOENT ? 0 : r;
}

int s3_delete_all(struct s3_client *c, const char *key, const char *if_latest,
		  struct bdev_err *e)
{
	struct vcollect vc = { .key = key };
	size_t latest = SIZE_MAX;
	int r;

	r = versions_of(c, key, &vc, e);
	if ((r == -EPROTO || r == -EINVAL || r == -ENOSYS) && !if_latest) {
		/* A store without ListObjectVersions (501 NotImplemented, 400, or
		 * an answer that is no version list): an unversioned one, where a
		 * plain DELETE is the whole job. */
		free(vc.vid);
		free(vc.latest);
		return s3_delete(c, key, e);
	}
	for (size_t i = 0; !r && i < vc.n; i++)
		if (vc.latest[i])
			latest = i;
	if (!r && if_latest && (latest == SIZE_MAX || strcmp(vc.vid[latest], if_latest)))
		r = bdev_err_set(e, EEXIST, "delete s3://%s/%s: a newer version is there",
				 c->bucket, key);
	/* Older versions first, the latest last: none comes back meanwhile. */
	for (size_t i = 0; !r && i < vc.n; i++)
		if (i != latest)
			r = s3_delete_version(c, key, vc.vid[i], e);
	if (!r && latest != SIZE_MAX)
		r = s3_delete_version(c, key, vc.vid[latest], e);
	free(vc.vid);
	free(vc.latest);
	return r;
}
