/* The repository on object storage (s3://BUCKET/PREFIX), through the s3
 * client (s3/s3.h).  The same keys as the files of a folder repository,
 * under PREFIX/ (docs/backup-format.md, "Storage mapping of version 1 on
 * object storage").  Object stores have no rename, no flock and no cheap
 * mtime touch, so:
 *   - every chunk, index and manifest is written once under its final key
 *     (If-None-Match: *), with Object Lock retention when repo.json says;
 *   - a running backup announces itself with a heartbeat object
 *     writers/ID (its start time; rewritten every BKP_S3_HEARTBEAT s), and
 *     before its index and manifest uploads writers/ID.touched, the chunks
 *     it reused without writing them, then waits out any maintenance lock
 *     and checks that every one of them is still there;
 *   - gc marks from every index and the touched lists of live writers, and
 *     sweeps only chunks whose LastModified is older than the grace period
 *     and than the start of every live writer; while a live writer has not
 *     published its touched list it sweeps nothing;
 *   - prune, gc and forget hold a lock object (owner, expiry; rewritten
 *     while they run) instead of flock.
 * The manifest is the last object a backup writes: killed at any moment,
 * no half backup is visible. */
#include "bkp-int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "common/util.h"
#include "s3/s3.h"

#define HEARTBEAT_S   10      /* writers/ID rewritten this often */
#define WRITER_DEAD_S 60      /* a heartbeat older than this (and than the
				 * gc grace period), store time: dead writer */
#define LOCK_REFRESH_S 20
#define LOCK_TTL_S    90      /* a lock object not refreshed for this long is stale */
#define KEY_MAX       1200
#define TOUCHED_MAX   ((size_t)1 << 30)
#define INFLIGHT      64      /* worker threads at most (create.c) */

/* A thread rewriting one small object every period seconds until stopped
 * (heartbeats, the lock's expiry). */
struct keeper {
	pthread_t t;
	bool on, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct bkp_repo *r;
	char key[64];
	int period;
	char *(*body)(struct bkp_repo *r);
};

struct s3r {
	struct s3_client *c;
	char bucket[64], prefix[1030];   /* prefix: "" or ending in "/" */
	int connections;
	pthread_mutex_t mu;
	uint8_t (*touched)[BKP_DIGEST];  /* chunks reused without writing */
	size_t nt, capt;
	char writer[BKP_ID_MAX];         /* registered backup ("" none) */
	struct timespec start;
	struct keeper hb, lk;
	char lock_what[32];
	/* chunks being stored (os3_store_put), under mu */
	pthread_cond_t cv;
	uint8_t inflight[INFLIGHT][BKP_DIGEST];
	bool busy[INFLIGHT];
	int cond;                        /* COND_*: If-None-Match, under mu */
};

/* Whether the store honours If-None-Match (os3_cond_probe, once per open,
 * before the first chunk is stored). */
enum { COND_UNKNOWN, COND_PROBING, COND_HONOURED, COND_IGNORED, COND_FAILED };

static struct s3r *S(const struct bkp_repo *r)
{
	return r->osd;
}

static void full_key(const struct bkp_repo *r, const char *key,
		     char out[KEY_MAX])
{
	snprintf(out, KEY_MAX, "%s%s", S(r)->prefix, key);
}

static int64_t retain_until(const struct bkp_repo *r)
{
	return r->object_lock_days > 0
	       ? (int64_t)time(NULL) + (int64_t)r->object_lock_days * 86400 : 0;
}

/* ---- small objects ---- */

static int put_opts(struct bkp_repo *r, const char *key, const void *data,
		    size_t len, bool once, struct bdev_err *e)
{
	struct s3_put_opts po = { .if_none_match = once,
				  .retain_until = once ? retain_until(r) : 0 };
	char k[KEY_MAX];

	full_key(r, key, k);
	return s3_put(S(r)->c, k, data, len, &po, e);
}

static int os3_get(const struct bkp_repo *r, const char *key, size_t max,
		   char **out, size_t *len)
{
	struct bdev_err e = { 0 };
	char k[KEY_MAX];
	void *d = NULL;
	int rc;

	full_key(r, key, k);
	rc = s3_get(S(r)->c, k, max, &d, len, &e);
	if (!rc)
		*out = d;
	return rc;
}

/* A put-once (If-None-Match) of metadata: manifest, index, repo.json, the
 * lock.  A PUT that landed but whose answer was lost is retried by the
 * client and meets 412: the object there is then read back, and only the
 * very same bytes count as success; anything else stays -EEXIST. */
static int put_once(struct bkp_repo *r, const char *key, const void *data,
		    size_t len, struct bdev_err *e)
{
	int rc = put_opts(r, key, data, len, true, e);
	char *got = NULL;
	size_t glen = 0;
	bool same;

	if (rc != -EEXIST || os3_get(r, key, len + 1, &got, &glen))
		return rc;
	same = glen == len && !memcmp(got, data, len);
	free(got);
	if (!same)
		return rc;
	if (e) {
		e->code = 0;
		e->msg[0] = '\0';
	}
	return 0;
}

static int os3_put(struct bkp_repo *r, const char *key, const void *data,
		   size_t len, struct bdev_err *e)
{
	return put_once(r, key, data, len, e);
}

static int os3_head(const struct bkp_repo *r, const char *key,
		    struct bkp_os_stat *st)
{
	struct bdev_err e = { 0 };
	struct s3_stat s;
	char k[KEY_MAX];
	int rc;

	full_key(r, key, k);
	rc = s3_head(S(r)->c, k, &s, &e);
	if (!rc && st) {
		st->size = s.size;
		st->mtime.tv_sec = (time_t)s.mtime;
		st->mtime.tv_nsec = 0;
	}
	return rc;
}

static int os3_del(struct bkp_repo *r, const char *key, struct bdev_err *e)
{
	char k[KEY_MAX];

	full_key(r, key, k);
	return s3_delete(S(r)->c, k, e);
}

struct list_ctx {
	size_t skip;
	bkp_os_list_fn fn;
	void *opaque;
};

static int list_one(void *opaque, const char *key, const struct s3_stat *st)
{
	struct list_ctx *l = opaque;
	struct bkp_os_stat os = { .size = st->size,
				  .mtime = { .tv_sec = (time_t)st->mtime } };

	if (strlen(key) <= l->skip)
		return 0;
	return l->fn(l->opaque, key + l->skip, &os);
}

static int os3_list(const struct bkp_repo *r, const char *dir,
		    bkp_os_list_fn fn, void *opaque, struct bdev_err *e)
{
	struct list_ctx l = { .fn = fn, .opaque = opaque };
	char k[KEY_MAX];

	snprintf(k, sizeof(k), "%s%s/", S(r)->prefix, dir);
	l.skip = strlen(k);
	return s3_list(S(r)->c, k, list_one, &l, e);
}

static int os3_chunks(const struct bkp_repo *r, bkp_os_list_fn fn,
		      void *opaque, struct bdev_err *e)
{
	return os3_list(r, "chunks", fn, opaque, e);
}

/* ---- chunks ---- */

static void note_touched(struct bkp_repo *r, const uint8_t d[BKP_DIGEST])
{
	struct s3r *s = S(r);

	pthread_mutex_lock(&s->mu);
	if (s->nt == s->capt) {
		size_t nc = s->capt ? 2 * s->capt : 1024;
		void *nv = realloc(s->touched, nc * BKP_DIGEST);

		if (!nv) {
			/* Cannot record it: the sync step fails the backup. */
			s->capt = SIZE_MAX;
			pthread_mutex_unlock(&s->mu);
			return;
		}
		s->touched = nv;
		s->capt = nc;
	}
	if (s->capt != SIZE_MAX)
		memcpy(s->touched[s->nt++], d, BKP_DIGEST);
	pthread_mutex_unlock(&s->mu);
}

/* A chunk object that exists and is at least a header long counts as
 * present (0); verify proves the content.  -EBADMSG: it exists but is
 * shorter than a header (damaged: to be replaced); -ENOENT, -errno. */
static int os3_touch(struct bkp_store *st, const uint8_t d[BKP_DIGEST])
{
	struct bkp_os_stat s;
	char key[BKP_CHUNK_KEY];
	int rc;

	bkp_chunk_key(d, key);
	rc = os3_head(st->r, key, &s);
	if (rc)
		return rc;
	if (s.size < BKP_CHUNK_HDR)
		return -EBADMSG;
	note_touched(st->r, d);
	return 0;
}

/* --full: the existing object read back and compared. 0 same, -EBADMSG
 * different or damaged, -ENOENT missing, -errno. */
static int prove(struct bkp_store *st, const char *key, const void *data,
		 size_t len)
{
	char why[128];
	size_t got = 0;
	ssize_t n;
	int rc;

	rc = s3_get_range(S(st->r)->c, key, 0, st->enccap, st->chk, &got, NULL);
	if (rc)
		return rc == -ENOENT ? -ENOENT : rc;
	n = bkp_chunk_decode(st->chk, got, st->dec, st->r->chunk_size, why,
			     sizeof(why));
	return n == (ssize_t)len && !memcmp(st->dec, data, len) ? 0 : -EBADMSG;
}

/* Does the store honour If-None-Match?  A scratch key (probe/HEX) put
 * twice with it: the second put must be refused (412, -EEXIST).  A store
 * that takes it ignores the header: every put-once of this open is then
 * HEAD + PUT (s3_set_no_conditional), and chunks are looked for first.
 * Any other answer leaves the chunk path on HEAD + PUT for this open
 * (COND_FAILED).  The key is deleted. */
static int os3_cond_probe(struct bkp_repo *r)
{
	struct s3_put_opts po = { .if_none_match = true };
	struct bdev_err e = { 0 };
	uint8_t rnd[8];
	char key[64], k[KEY_MAX];
	int rc, res;

	if (util_random(rnd, sizeof(rnd)))
		return COND_FAILED;
	memcpy(key, "probe/if-none-match-", 20);
	for (int i = 0; i < 8; i++)
		snprintf(key + 20 + 2 * i, 3, "%02x", rnd[i]);
	full_key(r, key, k);
	if (s3_put(S(r)->c, k, "1", 1, &po, &e))
		return COND_FAILED;
	rc = s3_put(S(r)->c, k, "2", 1, &po, &e);
	res = rc == -EEXIST ? COND_HONOURED : rc == 0 ? COND_IGNORED : COND_FAILED;
	if (res == COND_IGNORED)
		s3_set_no_conditional(S(r)->c, true);
	s3_delete(S(r)->c, k, &e);
	return res;
}

/* Store chunk d.  look: find out first whether it is there (a HEAD, or
 * --full's read back).  Where the store honours If-None-Match and the
 * caller has no reason to expect the chunk (look false), the PUT goes
 * first: one request per new chunk; a 412 answer means present or
 * damaged, and the HEAD then tells which. */
static int store_put_one(struct bkp_store *st, const uint8_t d[BKP_DIGEST],
			 const void *data, size_t len, bool look,
			 uint64_t *added, struct bdev_err *e)
{
	struct bkp_repo *r = st->r;
	char key[BKP_CHUNK_KEY], k[KEY_MAX];
	bool damaged = false;
	size_t n = 0;
	int rc;

	*added = 0;
	bkp_chunk_key(d, key);
	full_key(r, key, k);
	look = look || st->deep || S(r)->cond != COND_HONOURED;
	for (;;) {
		if (look) {
			/* --full reads the object back; otherwise a HEAD
			 * (os3_touch notes the chunk as touched when it is
			 * there) */
			rc = st->deep ? prove(st, k, data, len) : os3_touch(st, d);
			if (!rc) {
				if (st->deep)
					note_touched(r, d);
				return 0;
			}
			if (rc == -EBADMSG) {
				/* Known damaged: a put-once would meet it and
				 * take it for the same data.  Replace it:
				 * delete, then put-once below. */
				damaged = true;
				rc = s3_delete(S(r)->c, k, e);
				if (rc)
					return rc;
			}
		}
		if (!n)
			n = bkp_chunk_encode(data, len, st->enc, st->enccap);
		if (!n)
			return bdev_err_set(e, EINVAL, "chunk of %zu bytes cannot be encoded",
					    len);
		rc = put_opts(r, key, st->enc, n, true, e);
		if (rc != -EEXIST || look)
			break;
		/* 412 to a PUT sent without a look: there, or damaged */
		look = true;
	}
	if (rc == -EEXIST && damaged && os3_touch(st, d) != 0)
		return bdev_err_set(e, EEXIST, "%s: a damaged chunk object came back while it was being replaced",
				    k);
	if (rc == -EEXIST) {
		/* Stored meanwhile by another thread or backup: content
		 * addressed, the same data. */
		note_touched(r, d);
		return 0;
	}
	if (rc)
		return rc;
	*added = n;
	st->replaced += damaged;
	return 0;
}

/* Two threads of one backup storing the same new chunk (repeated data)
 * would both send it: the second waits for the first here, then looks
 * for it first (a HEAD) instead of uploading it again for a 412.  The
 * first chunk stored probes the store's If-None-Match (os3_cond_probe)
 * while the others wait. */
static int os3_store_put(struct bkp_store *st, const uint8_t d[BKP_DIGEST],
			 const void *data, size_t len, uint64_t *added,
			 struct bdev_err *e)
{
	struct s3r *s = S(st->r);
	bool waited = false;
	int slot = -1, rc;

	pthread_mutex_lock(&s->mu);
	while (s->cond == COND_UNKNOWN || s->cond == COND_PROBING) {
		if (s->cond == COND_PROBING) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		s->cond = COND_PROBING;
		pthread_mutex_unlock(&s->mu);
		rc = os3_cond_probe(st->r);
		pthread_mutex_lock(&s->mu);
		s->cond = rc;
		pthread_cond_broadcast(&s->cv);
	}
	for (int i = 0; i < INFLIGHT; i++) {
		if (s->busy[i] && !memcmp(s->inflight[i], d, BKP_DIGEST)) {
			pthread_cond_wait(&s->cv, &s->mu);
			waited = true;
			i = -1;        /* look again */
			slot = -1;
			continue;
		}
		if (!s->busy[i] && slot < 0)
			slot = i;
	}
	if (slot >= 0) {
		s->busy[slot] = true;
		memcpy(s->inflight[slot], d, BKP_DIGEST);
	}
	pthread_mutex_unlock(&s->mu);
	rc = store_put_one(st, d, data, len, waited, added, e);
	if (slot >= 0) {
		pthread_mutex_lock(&s->mu);
		s->busy[slot] = false;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	return rc;
}

static ssize_t os3_chunk_get(const struct bkp_repo *r,
			     const uint8_t d[BKP_DIGEST], void *buf, size_t cap,
			     char *why, size_t wl)
{
	char key[BKP_CHUNK_KEY + 4], k[KEY_MAX];
	struct bdev_err e = { 0 };
	size_t got = 0;
	int rc;

	bkp_chunk_key(d, key);
	full_key(r, key, k);
	rc = s3_get_range(S(r)->c, k, 0, cap, buf, &got, &e);
	if (rc == -ENOENT) {
		strcat(key, ".bad");
		if (os3_head(r, key, NULL) == 0) {
			snprintf(why, wl, "damaged, quarantined as %s (run backup repair, or back up the data again)",
				 util_basename(key));
			return -ENOENT;
		}
		snprintf(why, wl, "missing from the repository");
		return -ENOENT;
	}
	if (rc) {
		snprintf(why, wl, "%s", e.msg);
		return -EIO;
	}
	return (ssize_t)got;
}

static int os3_quarantine(const struct bkp_repo *r, const uint8_t d[BKP_DIGEST],
			  struct bdev_err *e)
{
	size_t fcap = bkp_chunk_bound(r->chunk_size);
	uint8_t *buf = malloc(r->chunk_size), *fbuf = malloc(fcap);
	char key[BKP_CHUNK_KEY + 4], why[200];
	ssize_t n;
	int rc = 0;

	if (!buf || !fbuf) {
		free(buf);
		free(fbuf);
		return bdev_err_set(e, ENOMEM, "out of memory");
	}
	/* No lock to hold here: check again, keep the damaged bytes as
	 * HEX.bad (evidence, as in a folder), then remove HEX.  A backup that
	 * stored a good copy in between has its copy deleted and stores it
	 * again next time: content-addressed, nothing refers to it yet. */
	n = os3_chunk_get(r, d, fbuf, fcap, why, sizeof(why));
	if (n >= 0) {
		size_t flen = (size_t)n;

		n = bkp_chunk_decode(fbuf, flen, buf, r->chunk_size, why, sizeof(why));
		if (n >= 0) {
			uint8_t got[BKP_DIGEST];

			bkp_sha256(buf, (size_t)n, got);
			n = memcmp(got, d, BKP_DIGEST) ? -EBADMSG : n;
		}
		if (n == -EBADMSG) {
			bkp_chunk_key(d, key);
			strcat(key, ".bad");
			rc = put_opts((struct bkp_repo *)r, key, fbuf, flen, true, e);
			if (rc == -EEXIST)
				rc = 0;
			key[strlen(key) - 4] = '\0';
			if (!rc)
				rc = os3_del((struct bkp_repo *)r, key, e);
			if (!rc)
				rc = 1;
		}
	}
	free(buf);
	free(fbuf);
	return rc;
}

/* ---- keepers: heartbeat and lock refresh ---- */

static void *keeper_main(void *arg)
{
	struct keeper *k = arg;
	struct timespec until;

	pthread_mutex_lock(&k->mu);
	while (!k->stop) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += k->period;
		while (!k->stop &&
		       pthread_cond_timedwait(&k->cv, &k->mu, &until) != ETIMEDOUT)
			;
		if (k->stop)
			break;
		pthread_mutex_unlock(&k->mu);
		char *body = k->body(k->r);

		if (body)
			(void)put_opts(k->r, k->key, body, strlen(body), false, NULL);
		free(body);
		pthread_mutex_lock(&k->mu);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

static int keeper_start(struct keeper *k, struct bkp_repo *r, const char *key,
			int period, char *(*body)(struct bkp_repo *),
			struct bdev_err *e)
{
	char *b = body(r);
	int rc;

	if (!b)
		return bdev_err_set(e, ENOMEM, "out of memory");
	free(b);
	k->r = r;
	snprintf(k->key, sizeof(k->key), "%s", key);
	k->period = period;
	k->body = body;
	k->stop = false;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	rc = pthread_create(&k->t, NULL, keeper_main, k);
	if (rc) {
		pthread_mutex_destroy(&k->mu);
		pthread_cond_destroy(&k->cv);
		return bdev_err_set(e, rc, "cannot start a thread: %s", strerror(rc));
	}
	k->on = true;
	return 0;
}

static void keeper_stop(struct keeper *k)
{
	if (!k->on)
		return;
	pthread_mutex_lock(&k->mu);
	k->stop = true;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
	pthread_join(k->t, NULL);
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
	k->on = false;
}

/* ---- writers ---- */

static char *heartbeat_body(struct bkp_repo *r)
{
	char *s = NULL;

	if (asprintf(&s, "%lld.%09ld\n", (long long)S(r)->start.tv_sec,
		     S(r)->start.tv_nsec) < 0)
		return NULL;
	return s;
}

static int os3_writer_register(struct bkp_repo *r, const char *id,
			       struct timespec start, struct bdev_err *e)
{
	struct s3r *s = S(r);
	char key[BKP_ID_MAX + 16], *body;
	int rc;

	snprintf(s->writer, sizeof(s->writer), "%s", id);
	s->start = start;
	snprintf(key, sizeof(key), "writers/%s", id);
	body = heartbeat_body(r);
	if (!body)
		return bdev_err_set(e, ENOMEM, "out of memory");
	rc = put_opts(r, key, body, strlen(body), false, e);
	free(body);
	if (!rc)
		rc = keeper_start(&s->hb, r, key, HEARTBEAT_S, heartbeat_body, e);
	if (rc)
		s->writer[0] = '\0';
	return rc;
}

static void os3_writer_unregister(struct bkp_repo *r, const char *id)
{
	struct s3r *s = S(r);
	char key[BKP_ID_MAX + 16];

	keeper_stop(&s->hb);
	snprintf(key, sizeof(key), "writers/%s.touched", id);
	(void)os3_del(r, key, NULL);
	snprintf(key, sizeof(key), "writers/%s", id);
	(void)os3_del(r, key, NULL);
	s->writer[0] = '\0';
}

/* ---- the maintenance lock ---- */

static char *lock_body(struct bkp_repo *r)
{
	char host[128] = "?", *s = NULL;

	gethostname(host, sizeof(host) - 1);
	if (asprintf(&s, "%s pid %ld on %s\nexpires %lld\n", S(r)->lock_what,
		     (long)getpid(), host,
		     (long long)time(NULL) + LOCK_TTL_S) < 0)
		return NULL;
	return s;
}

static int os3_lock(struct bkp_repo *r, const char *what, struct bdev_err *e)
{
	struct s3r *s = S(r);
	char *body;
	int rc = -EEXIST;

	snprintf(s->lock_what, sizeof(s->lock_what), "%s", what);
	for (int attempt = 0; attempt < 2 && rc == -EEXIST; attempt++) {
		char *old = NULL, *ex;
		size_t len;
		long long until = 0;

		body = lock_body(r);
		if (!body)
			return bdev_err_set(e, ENOMEM, "out of memory");
		rc = put_once(r, "lock", body, strlen(body), e);
		free(body);
		if (rc != -EEXIST)
			break;
		/* Held, or left by a holder that died: stale once its expiry
		 * passed (the holder rewrites it every LOCK_REFRESH_S). */
		if (os3_get(r, "lock", 4096, &old, &len) == 0) {
			ex = strstr(old, "expires ");
			if (ex)
				until = atoll(ex + 8);
			if (until > time(NULL)) {
				char *nl = strchr(old, '\n');

				if (nl)
					*nl = '\0';
				rc = bdev_err_set(e, EBUSY, "%s: the repository is locked by %s (until %lld, renewed while it runs)",
						  r->path, old, until);
				free(old);
				return rc;
			}
			free(old);
		}
		(void)os3_del(r, "lock", NULL);
	}
	if (rc == -EEXIST)
		return bdev_err_set(e, EBUSY, "%s: the repository lock keeps being taken",
				    r->path);
	if (rc)
		return rc;
	rc = keeper_start(&s->lk, r, "lock", LOCK_REFRESH_S, lock_body, e);
	if (rc)
		(void)os3_del(r, "lock", NULL);
	return rc;
}

static void os3_unlock(struct bkp_repo *r)
{
	keeper_stop(&S(r)->lk);
	(void)os3_del(r, "lock", NULL);
}

/* Whether a fresh lock object exists (a prune, gc or forget runs). */
static bool lock_held(struct bkp_repo *r)
{
	char *old = NULL, *ex;
	size_t len;
	bool held = false;

	if (os3_get(r, "lock", 4096, &old, &len) == 0) {
		ex = strstr(old, "expires ");
		held = ex && atoll(ex + 8) > time(NULL);
		free(old);
	}
	return held;
}

/* ---- the commit step of a backup ---- */

static int os3_sync(struct bkp_repo *r, struct bdev_err *e)
{
	struct s3r *s = S(r);
	char key[BKP_ID_MAX + 16];
	uint64_t missing = 0;
	size_t u = 0;
	int rc;

	if (!s->writer[0])
		return 0;           /* repair: no index follows */
	if (s->capt == SIZE_MAX)
		return bdev_err_set(e, ENOMEM, "out of memory (touched chunk list)");
	if (s->nt) {
		qsort(s->touched, s->nt, BKP_DIGEST, bkp_digest_cmp);
		for (size_t i = 0; i < s->nt; i++)
			if (!u || memcmp(s->touched[u - 1], s->touched[i], BKP_DIGEST))
				memcpy(s->touched[u++], s->touched[i], BKP_DIGEST);
		s->nt = u;
	}
	snprintf(key, sizeof(key), "writers/%s.touched", s->writer);
	rc = put_opts(r, key, s->nt ? (void *)s->touched : "", s->nt * BKP_DIGEST,
		      false, e);
	if (rc)
		return rc;
	/* A gc that started before the list was visible may be sweeping
	 * chunks this backup reused: let it finish (bounded by the lock's
	 * expiry, which it renews), then check every one of them. */
	for (int i = 0; i < 3600 && lock_held(r); i++)
		sleep(1);
	for (size_t i = 0; i < s->nt; i++) {
		char ck[BKP_CHUNK_KEY];

		bkp_chunk_key(s->touched[i], ck);
		if (os3_head(r, ck, NULL) == -ENOENT)
			missing++;
	}
	if (missing)
		return bdev_err_set(e, EAGAIN, "%s: %llu chunks this backup reuses were removed by a concurrent gc; run the backup again",
				    r->path, (unsigned long long)missing);
	return 0;
}

/* ---- gc ---- */

struct gc_ctx {
	struct bkp_repo *r;
	const struct bkp_gc_opts *o;
	struct bkp_gc_result *res;
	struct timespec cutoff;
	bool no_sweep;
	int64_t now;             /* the store's clock: LastModified of our lock */
	int64_t dead_s;          /* a heartbeat older than this: dead writer */
	uint8_t (*ref)[BKP_DIGEST];
	size_t nref, capref;
	char last[2 * BKP_DIGEST + 4];   /* the last plain chunk name listed */
	char **dead;
	size_t ndead;
	int err;
};

static int add_ref(struct gc_ctx *g, const uint8_t *d, size_t n)
{
	if (g->nref + n > g->capref) {
		size_t nc = UTIL_MAX(2 * g->capref, g->nref + n);
		void *nv = realloc(g->ref, nc * BKP_DIGEST);

		if (!nv)
			return -ENOMEM;
		g->ref = nv;
		g->capref = nc;
	}
	memcpy(g->ref[g->nref], d, n * BKP_DIGEST);
	g->nref += n;
	return 0;
}

static int writer_one(void *opaque, const char *name,
		      const struct bkp_os_stat *st)
{
	struct gc_ctx *g = opaque;
	char key[BKP_ID_MAX + 32], *text = NULL;
	size_t len;
	long long sec = 0;
	long ns = 0;

	if (!bkp_id_valid(name))
		return 0;           /* ID.touched: read with its writer */
	if (g->now - (int64_t)st->mtime.tv_sec > g->dead_s) {
		char **nv = realloc(g->dead, (g->ndead + 1) * sizeof(*nv));

		if (!nv || !(nv[g->ndead] = strdup(name))) {
			if (nv)
				g->dead = nv;
			return -ENOMEM;
		}
		g->dead = nv;
		g->ndead++;
		return 0;
	}
	snprintf(key, sizeof(key), "writers/%s", name);
	if (os3_get(g->r, key, 64, &text, &len) == 0 &&
	    sscanf(text, "%lld.%ld", &sec, &ns) == 2 && ns >= 0 &&
	    ns < 1000000000) {
		struct timespec t = { (time_t)sec, ns };

		if (bkp_ts_cmp(t, g->cutoff) < 0)
			g->cutoff = t;
	} else {
		g->cutoff.tv_sec = 0;
	}
	free(text);
	text = NULL;
	snprintf(key, sizeof(key), "writers/%s.touched", name);
	if (os3_get(g->r, key, TOUCHED_MAX, &text, &len) == 0) {
		int rc = add_ref(g, (uint8_t *)text, len / BKP_DIGEST);

		free(text);
		return rc;
	}
	/* Live, its reused chunks not yet published. */
	g->no_sweep = true;
	return 0;
}

static int sweep_one(void *opaque, const char *name,
		     const struct bkp_os_stat *st)
{
	struct gc_ctx *g = opaque;
	uint8_t dg[BKP_DIGEST];
	char key[BKP_CHUNK_KEY + 8];
	struct bdev_err e = { 0 };
	bool bad, ref;
	int rc;

	char hex[2 * BKP_DIGEST + 1];

	/* "XX/HEX" or "XX/HEX.bad" */
	if (strlen(name) < 3 + 2 * BKP_DIGEST || name[2] != '/' ||
	    strncmp(name, name + 3, 2))
		return 0;
	snprintf(hex, sizeof(hex), "%.*s", 2 * BKP_DIGEST, name + 3);
	if (bkp_unhex(hex, dg, BKP_DIGEST))
		return 0;
	bad = !strcmp(name + 3 + 2 * BKP_DIGEST, ".bad");
	if (!bad && name[3 + 2 * BKP_DIGEST])
		return 0;
	if (!bad) {
		g->res->chunks++;
		snprintf(g->last, sizeof(g->last), "%s", name);
	}
	ref = g->nref && bsearch(dg, g->ref, g->nref, BKP_DIGEST, bkp_digest_cmp);
	/* HEX sorts right before HEX.bad: a good copy is back when the last
	 * plain name listed is HEX. */
	if (ref && (!bad || strncmp(g->last, name, 3 + 2 * BKP_DIGEST)))
		return 0;
	if (bkp_ts_cmp(st->mtime, g->cutoff) >= 0 || g->no_sweep) {
		g->res->kept_grace++;
		return 0;
	}
	if (!g->o->dry_run) {
		snprintf(key, sizeof(key), "chunks/%s", name);
		rc = os3_del(g->r, key, &e);
		if (rc == -EACCES) {
			g->res->locked++;
			return 0;
		}
		if (rc)
			return rc;
	}
	g->res->removed++;
	g->res->bytes_removed += st->size;
	return 0;
}

/* Object Lock, in generations: an object with less than DAYS of
 * retention left gets now + 2 * DAYS, so each is extended once per DAYS
 * however often gc runs.  -EACCES is tolerated (reported in the count
 * of failures). */
static int extend_one(struct bkp_repo *r, const char *key,
		      struct bkp_gc_result *res)
{
	int64_t d = (int64_t)r->object_lock_days * 86400, now = time(NULL);
	int64_t until = 0;
	char k[KEY_MAX];

	full_key(r, key, k);
	if (s3_retention_get(S(r)->c, k, &until, NULL))
		return 0;
	if (until - now >= d)
		return 0;
	if (s3_retention_set(S(r)->c, k, now + 2 * d, NULL) == 0)
		res->retention_extended++;
	return 0;
}

static int extend_meta(void *opaque, const char *name,
		       const struct bkp_os_stat *st)
{
	struct gc_ctx *g = opaque;
	char key[300];

	(void)st;
	snprintf(key, sizeof(key), "backups/%s", name);
	return extend_one(g->r, key, g->res);
}

static void extend_retention(struct gc_ctx *g, struct bdev_err *e)
{
	for (size_t i = 0; i < g->nref; i++) {
		char key[BKP_CHUNK_KEY];

		if (i && !memcmp(g->ref[i - 1], g->ref[i], BKP_DIGEST))
			continue;
		bkp_chunk_key(g->ref[i], key);
		extend_one(g->r, key, g->res);
	}
	(void)os3_list(g->r, "backups", extend_meta, g, e);
}

static int os3_gc(struct bkp_repo *r, const struct bkp_gc_opts *o,
		  struct bkp_gc_result *res, struct bdev_err *e)
{
	int64_t grace = o->grace < 0 ? BKP_DEFAULT_GRACE : o->grace;
	struct gc_ctx g = { .r = r, .o = o, .res = res };
	uint8_t (*idx)[BKP_DIGEST] = NULL;
	size_t nidx = 0;
	int rc;

	rc = os3_lock(r, "gc", e);
	if (rc)
		return rc;
	/* Ages are judged on the store's clock, never this host's: "now" is
	 * the LastModified of the lock object just written (a skewed host
	 * clock or a late heartbeat must not make a running backup look
	 * dead, nor a fresh chunk look old). */
	{
		struct bkp_os_stat ls;

		rc = os3_head(r, "lock", &ls);
		if (rc) {
			rc = bdev_err_set(e, -rc, "%s: cannot read the store's time (HEAD of the lock): %s",
					  r->path, strerror(-rc));
			goto out;
		}
		g.cutoff.tv_sec = ls.mtime.tv_sec;
		g.cutoff.tv_nsec = 0;
		g.now = ls.mtime.tv_sec;
	}
	g.dead_s = UTIL_MAX((int64_t)WRITER_DEAD_S, grace);
	rc = os3_list(r, "writers", writer_one, &g, e);
	if (rc == -ENOMEM)
		rc = bdev_err_set(e, ENOMEM, "out of memory");
	if (rc)
		goto out;
	/* LastModified has whole seconds. */
	g.cutoff.tv_sec -= (time_t)grace + 1;
	rc = bkp_gc_mark(r, g.cutoff, o->dry_run, &idx, &nidx, e);
	if (rc)
		goto out;
	if (nidx && add_ref(&g, idx[0], nidx)) {
		rc = bdev_err_set(e, ENOMEM, "out of memory");
		goto out;
	}
	if (g.nref)
		qsort(g.ref, g.nref, BKP_DIGEST, bkp_digest_cmp);
	rc = os3_chunks(r, sweep_one, &g, e);
	if (!rc && !o->dry_run && r->object_lock_days > 0)
		extend_retention(&g, e);
	for (size_t i = 0; !rc && !o->dry_run && i < g.ndead; i++) {
		char key[BKP_ID_MAX + 32];

		snprintf(key, sizeof(key), "writers/%s.touched", g.dead[i]);
		(void)os3_del(r, key, NULL);
		snprintf(key, sizeof(key), "writers/%s", g.dead[i]);
		(void)os3_del(r, key, NULL);
		res->tmp_removed++;
	}
out:
	for (size_t i = 0; i < g.ndead; i++)
		free(g.dead[i]);
	free(g.dead);
	free(idx);
	free(g.ref);
	os3_unlock(r);
	return rc;
}

/* ---- open, init ---- */

static void os3_close(struct bkp_repo *r)
{
	struct s3r *s = S(r);

	if (!s)
		return;
	keeper_stop(&s->hb);
	keeper_stop(&s->lk);
	s3_close(s->c);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->touched);
	free(s);
	r->osd = NULL;
}

static const struct bkp_os_ops s3_ops = {
	.put = os3_put, .get = os3_get, .head = os3_head, .del = os3_del,
	.list = os3_list, .close = os3_close,
	.store_put = os3_store_put, .store_touch = os3_touch,
	.chunk_get = os3_chunk_get, .quarantine = os3_quarantine,
	.chunks = os3_chunks, .sync = os3_sync,
	.writer_register = os3_writer_register,
	.writer_unregister = os3_writer_unregister,
	.lock = os3_lock, .unlock = os3_unlock, .gc = os3_gc,
};

bool bkp_is_remote(const char *path)
{
	return s3_is_url(path);
}

/* r->path is the URL: connect (no request yet). */
static int attach(struct bkp_repo *r, const struct bkp_remote *o,
		  struct bdev_err *e)
{
	struct s3_config cfg = { .retries = -1 };
	char prefix[1024];
	struct s3r *s;
	int rc;

	s = calloc(1, sizeof(*s));
	if (!s)
		return bdev_err_set(e, ENOMEM, "out of memory");
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	r->osd = s;
	r->os = &s3_ops;
	rc = s3_url_parse(r->path, s->bucket, prefix, e);
	if (rc)
		return rc;
	if (prefix[0])
		snprintf(s->prefix, sizeof(s->prefix), "%s/", prefix);
	if (o && o->endpoint)
		snprintf(cfg.endpoint, sizeof(cfg.endpoint), "%s", o->endpoint);
	if (o && o->region)
		snprintf(cfg.region, sizeof(cfg.region), "%s", o->region);
	s->connections = o && o->connections > 0 ? o->connections
						 : bkp_default_threads();
	cfg.connections = s->connections;
	if (o && o->retries > 0)
		cfg.retries = o->retries;
	rc = s3_config_env(&cfg, e);
	if (rc)
		return rc;
	s->c = s3_open(&cfg, s->bucket, e);
	if (!s->c)
		return e->code ? -e->code : -EIO;
	return 0;
}

struct bkp_repo *bkp_open_remote(const char *url, const struct bkp_remote *o,
				 struct bdev_err *e)
{
	struct bkp_repo *r = calloc(1, sizeof(*r));

	if (!r || !(r->path = strdup(url))) {
		free(r);
		bdev_err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	if (attach(r, o, e) || bkp_repo_parse(r, e)) {
		bkp_close(r);
		return NULL;
	}
	return r;
}

int bkp_init_remote(const char *url, uint32_t chunk_size,
		    const struct bkp_remote *o, struct bdev_err *e)
{
	struct bkp_repo r = { .path = (char *)url };
	struct bdev_err e2 = { 0 };
	char *json = NULL;
	int rc;

	if (!chunk_size)
		chunk_size = BKP_DEFAULT_CHUNK_SIZE;
	rc = attach(&r, o, e);
	if (rc)
		goto out;
	if (o && o->object_lock_days < 0) {
		rc = bdev_err_set(e, EINVAL, "object lock days must be positive");
		goto out;
	}
	r.object_lock_days = o ? o->object_lock_days : 0;
	rc = bkp_repo_json(chunk_size, r.object_lock_days, &json, e);
	if (rc)
		goto out;
	/* The bucket: created (with Object Lock when asked) if missing. */
	rc = s3_bucket_create(S(&r)->c, r.object_lock_days > 0, &e2);
	if (rc && rc != -EEXIST) {
		rc = bdev_err_set(e, -rc, "%s", e2.msg);
		goto out;
	}
	/* Anything under the prefix: not empty. */
	rc = os3_head(&r, "repo.json", NULL);
	if (rc == 0) {
		rc = bdev_err_set(e, EEXIST, "%s: a repository exists there already",
				  url);
		goto out;
	}
	/* repo.json is the only object init writes: put-once, so two inits
	 * racing cannot both succeed. */
	rc = os3_put(&r, "repo.json", json, strlen(json), e);
	if (rc == -EEXIST)
		rc = bdev_err_set(e, EEXIST, "%s: a repository exists there already",
				  url);
out:
	free(json);
	if (r.os)
		os3_close(&r);
	return rc;
}

void bkp_io_counters(const struct bkp_repo *r, uint64_t *sent,
		     uint64_t *received)
{
	struct s3_counters c = { 0 };

	if (r->os)
		s3_counters(S(r)->c, &c);
	*sent = c.bytes_up;
	*received = c.bytes_down;
}

int bkp_repo_threads(const struct bkp_repo *r, int threads)
{
	if (threads > 0)
		return threads;
	return r->os ? S(r)->connections : bkp_default_threads();
}
