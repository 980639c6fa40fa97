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
 *   - prune, gc and forget hold a lock object (owner, expiry, a random
 *     token; rewritten while they run, only while it is still ours)
 *     instead of flock; once it is found lost, no further delete is done.
 * The manifest is the last object a backup writes: killed at any moment,
 * no half backup is visible. */
#include "bkp-int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <zlib.h>

#include "common/pool.h"
#include "common/util.h"
#include "s3/s3.h"

#define HEARTBEAT_S   10      /* writers/ID rewritten this often */
#define WRITER_DEAD_S 60      /* a heartbeat older than this (and than the
				 * gc grace period), store time: dead writer */
#define LOCK_REFRESH_S 20
#define LOCK_TTL_S    90      /* a lock object not refreshed for this long is stale */
#define LOCK_MARGIN_S 30      /* our lock counts as lost this long before
				 * the expiry we last wrote (not renewed in
				 * time: another process may take it soon) */
#define LOCK_WAIT_MAX_S (6 * 3600) /* a backup's commit waits this long at
				    * most for a running prune/gc/forget */
#define LOCK_READ_TRIES 3     /* lock reads failing (after the client's
			       * own retries) before giving up */
#define KEY_MAX       1200
#define TOUCHED_MAX   ((size_t)1 << 30)
#define INFLIGHT      64      /* worker threads at most (create.c) */

/* A thread calling tick every period seconds until stopped (heartbeats,
 * the lock's refresh). */
struct keeper {
	pthread_t t;
	bool on, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct bkp_repo *r;
	int period;
	void (*tick)(struct bkp_repo *r);
};

struct s3r {
	struct s3_client *c;
	char bucket[64], prefix[1030];   /* prefix: "" or ending in "/" */
	int connections;
	pthread_mutex_t mu;
	uint8_t (*touched)[BKP_DIGEST];  /* chunks reused without writing */
	size_t nt, capt;
	uint8_t (*replaced)[BKP_DIGEST]; /* damaged chunks this backup replaced */
	size_t nr, capr;
	char writer[BKP_ID_MAX];         /* registered backup ("" none) */
	struct timespec start;
	struct keeper hb, lk;
	char hb_key[BKP_ID_MAX + 16];
	char lock_what[32];
	char lock_token[33];             /* ours, in the lock's body */
	atomic_llong lock_expires;       /* the expiry we last wrote */
	atomic_bool lock_lost;           /* found taken, gone or not renewed */
	char lock_why[160];              /* why it was lost (under mu) */
	/* chunks being stored (os3_store_put), under mu */
	pthread_cond_t cv;
	uint8_t inflight[INFLIGHT][BKP_DIGEST];
	bool busy[INFLIGHT];
	int cond;                        /* COND_*: If-None-Match, under mu */
	atomic_int look_run;             /* > 0: HEAD before PUT (duplicates seen) */
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

/* Object Lock, in generations: an object whose retention ends before
 * now + DAYS (+ an hour, so that one checked at a backup's commit is
 * never held shorter than the manifest written right after) gets now + 2 *
 * DAYS, so each is extended about once per DAYS however often gc runs. */
#define LOCK_SLACK_S 3600
static bool lock_short(const struct bkp_repo *r, int64_t until, int64_t now)
{
	return until < now + (int64_t)r->object_lock_days * 86400 + LOCK_SLACK_S;
}

static int64_t lock_next(const struct bkp_repo *r, int64_t now)
{
	return now + 2 * (int64_t)r->object_lock_days * 86400;
}

static void fmt_utc(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t > 0 && gmtime_r(&tt, &tm))
		strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	else
		snprintf(out, 32, "%s", t ? "(unreadable)" : "(none)");
}

/* ---- small objects ---- */

/* Object Lock retention goes with every put-once object (chunks,
 * indexes, manifests, HEX.bad, repo.json) but the maintenance lock and the
 * forgotten markers, which must stay deletable: a lock under retention
 * stays in the way of every later maintainer, a marker would outlive
 * the backup it names. */
static bool retained(const char *key)
{
	size_t l = strlen(key), fl = strlen(BKP_FORGOTTEN_EXT);

	return strcmp(key, "lock") &&
	       (l < fl || strcmp(key + l - fl, BKP_FORGOTTEN_EXT));
}

static int put_opts(struct bkp_repo *r, const char *key, const void *data,
		    size_t len, bool once, struct bdev_err *e)
{
	struct s3_put_opts po = { .if_none_match = once,
				  .retain_until = once && retained(key)
						  ? retain_until(r) : 0 };
	char k[KEY_MAX];

	full_key(r, key, k);
	return s3_put(S(r)->c, k, data, len, &po, e);
}

/* ---- Object Lock: the original versions ----
 * Every backup object is written once, so in an Object Lock (versioned)
 * bucket the oldest version of a key is the genuine, locked one.  The
 * client's own credentials can still hide it behind a delete marker (a
 * DELETE without a version id) or put a newer version over it (radosgw
 * ignores If-None-Match in a versioned bucket): readers of a locked
 * repository read the oldest version of backups/ and repo.json always,
 * and of a chunk when the current version is missing or not its digest's
 * content.  The rewritten lock, writers/ and probe/ objects read the
 * current version. */
static bool locked_key(const struct bkp_repo *r, const char *key)
{
	return r->object_lock_days > 0 && !strncmp(key, "backups/", 8);
}

/* The oldest version of full key k (max bytes at most). */
static int get_oldest(const struct bkp_repo *r, const char *k, size_t max,
		      void **out, size_t *len, struct bdev_err *e)
{
	char vid[256];
	int rc = s3_oldest_version(S(r)->c, k, vid, NULL, NULL, NULL, e);

	return rc ? rc : s3_get_version(S(r)->c, k, vid, max, out, len, NULL, e);
}

/* repo.json, read before the lock days are known: the current version
 * (one GET, as ever); when the answer names a version (a versioned bucket,
 * every Object Lock one) or there is none, the oldest version instead.  A
 * store without version listing keeps the first answer. */
static int repo_json_get(const struct bkp_repo *r, const char *k, size_t max,
			 void **out, size_t *len, struct bdev_err *e)
{
	struct bdev_err e2 = { 0 };
	struct s3_version_id id = { .version_id = "" };
	char vid[256];
	void *d = NULL;
	int rc, rc2;

	rc = s3_get_version(S(r)->c, k, NULL, max, &d, len, &id, e);
	if (rc == 0 && (!id.version_id[0] || !strcmp(id.version_id, "null"))) {
		*out = d;
		return 0;
	}
	if (rc && rc != -ENOENT)
		return rc;
	rc2 = s3_oldest_version(S(r)->c, k, vid, NULL, NULL, NULL, &e2);
	if (rc2 || (rc == 0 && !strcmp(vid, id.version_id))) {
		*out = d;       /* no other: what the GET answered */
		return rc;
	}
	free(d);
	if (e) {
		e->code = 0;
		e->msg[0] = '\0';
	}
	return s3_get_version(S(r)->c, k, vid, max, out, len, NULL, e);
}

static int os3_get_e(const struct bkp_repo *r, const char *key, size_t max,
		     char **out, size_t *len, struct bdev_err *e)
{
	char k[KEY_MAX];
	void *d = NULL;
	int rc;

	full_key(r, key, k);
	if (!strcmp(key, "repo.json"))
		rc = repo_json_get(r, k, max, &d, len, e);
	else if (locked_key(r, key))
		rc = get_oldest(r, k, max, &d, len, e);
	else
		rc = s3_get(S(r)->c, k, max, &d, len, e);
	if (!rc)
		*out = d;
	return rc;
}

static int os3_get(const struct bkp_repo *r, const char *key, size_t max,
		   char **out, size_t *len)
{
	return os3_get_e(r, key, max, out, len, NULL);
}

/* A put-once (If-None-Match) of metadata: manifest, index, repo.json, the
 * lock.  A PUT that landed but whose answer was lost is retried by the
 * client and meets 412: the object there is then read back, and only the
 * very same bytes count as success; anything else stays -EEXIST. */
static int put_once_r(struct bkp_repo *r, const char *key, const void *data,
		      size_t len, bool retain, struct bdev_err *e)
{
	struct s3_put_opts po = { .if_none_match = true,
				  .retain_until = retain ? retain_until(r) : 0 };
	char k[KEY_MAX], *got = NULL;
	int rc;
	size_t glen = 0;
	bool same;

	full_key(r, key, k);
	rc = s3_put(S(r)->c, k, data, len, &po, e);
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

/* With Object Lock retention when the repository has it. */
static int put_once(struct bkp_repo *r, const char *key, const void *data,
		    size_t len, struct bdev_err *e)
{
	return put_once_r(r, key, data, len, true, e);
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
	if (rc == -ENOENT && locked_key(r, key)) {
		char vid[256];  /* hidden behind a delete marker */

		rc = s3_oldest_version(S(r)->c, k, vid, &s, NULL, NULL, &e);
	}
	if (!rc && st) {
		st->size = s.size;
		st->mtime.tv_sec = (time_t)s.mtime;
		st->mtime.tv_nsec = 0;
	}
	return rc;
}

static int lock_check(struct bkp_repo *r, struct bdev_err *e);

/* While this process holds the lock (prune, gc, forget), every delete
 * first checks that the lock is still ours.  all: every version (objects
 * rewritten in place, whose older versions a versioned bucket keeps). */
static int del_key(struct bkp_repo *r, const char *key, bool all,
		   struct bdev_err *e)
{
	char k[KEY_MAX];
	int rc = lock_check(r, e);

	if (rc)
		return rc;
	full_key(r, key, k);
	return all ? s3_delete_all(S(r)->c, k, NULL, e) : s3_delete(S(r)->c, k, e);
}

/* In a locked repository a backups/ key goes with every version: its
 * listing and reads see the oldest version even behind a delete marker. */
static int os3_del(struct bkp_repo *r, const char *key, struct bdev_err *e)
{
	return del_key(r, key, locked_key(r, key), e);
}

/* writers/NAME and writers/NAME.touched, every version. */
static void writer_remove(struct bkp_repo *r, const char *name)
{
	char key[BKP_ID_MAX + 32];

	snprintf(key, sizeof(key), "writers/%s.touched", name);
	(void)del_key(r, key, true, NULL);
	snprintf(key, sizeof(key), "writers/%s", name);
	(void)del_key(r, key, true, NULL);
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

/* A versions listing grouped by key (the versions of a key come together,
 * newest first): done(g, opaque) once per key, with its count of versions
 * and delete markers and its oldest version that is not a delete marker
 * (have false: none). */
struct key_versions {
	char key[KEY_MAX], vid[256];
	struct s3_stat st;
	bool have;
	size_t count;
	int (*done)(const struct key_versions *g, void *opaque);
	void *opaque;
};

static int kv_flush(struct key_versions *g)
{
	int rc = g->count ? g->done(g, g->opaque) : 0;

	g->count = 0;
	g->have = false;
	return rc;
}

static int kv_one(void *opaque, const struct s3_version *v)
{
	struct key_versions *g = opaque;
	int rc = 0;

	if (strcmp(v->key, g->key)) {
		rc = kv_flush(g);
		snprintf(g->key, sizeof(g->key), "%s", v->key);
	}
	g->count++;
	if (!v->delete_marker) {        /* the last one listed is the oldest */
		g->have = true;
		g->st = v->st;
		snprintf(g->vid, sizeof(g->vid), "%s", v->version_id);
	}
	return rc;
}

/* Every key under full prefix k, grouped, to done. */
static int kv_walk(const struct bkp_repo *r, const char *k,
		   int (*done)(const struct key_versions *g, void *opaque),
		   void *opaque, struct bdev_err *e)
{
	struct key_versions *g = calloc(1, sizeof(*g));
	int rc;

	if (!g)
		return bdev_err_set(e, ENOMEM, "out of memory");
	g->done = done;
	g->opaque = opaque;
	rc = s3_list_versions(S(r)->c, k, kv_one, g, e);
	if (!rc)
		rc = kv_flush(g);
	free(g);
	return rc;
}

/* backups/ of a locked repository: each key once, with its oldest
 * version's size and time, also behind a delete marker or a newer
 * (forged) version. */
static int list_orig(const struct key_versions *g, void *opaque)
{
	return g->have ? list_one(opaque, g->key, &g->st) : 0;
}

static int os3_list(const struct bkp_repo *r, const char *dir,
		    bkp_os_list_fn fn, void *opaque, struct bdev_err *e)
{
	struct list_ctx l = { .fn = fn, .opaque = opaque };
	char k[KEY_MAX];

	snprintf(k, sizeof(k), "%s%s/", S(r)->prefix, dir);
	l.skip = strlen(k);
	if (r->object_lock_days > 0 && !strcmp(dir, "backups")) {
		return kv_walk(r, k, list_orig, &l, e);
	}
	return s3_list(S(r)->c, k, list_one, &l, e);
}

static int os3_chunks(const struct bkp_repo *r, bkp_os_list_fn fn,
		      void *opaque, struct bdev_err *e)
{
	return os3_list(r, "chunks", fn, opaque, e);
}

/* ---- chunks ---- */

/* Append d to a list of digests (v, *n, *cap) under s->mu; *cap
 * SIZE_MAX once memory ran out (the sync step then fails the backup). */
static void digest_add(struct s3r *s, uint8_t (**v)[BKP_DIGEST], size_t *n,
		       size_t *cap, const uint8_t d[BKP_DIGEST])
{
	pthread_mutex_lock(&s->mu);
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 1024;
		void *nv = realloc(*v, nc * BKP_DIGEST);

		if (!nv) {
			*cap = SIZE_MAX;
			pthread_mutex_unlock(&s->mu);
			return;
		}
		*v = nv;
		*cap = nc;
	}
	if (*cap != SIZE_MAX)
		memcpy((*v)[(*n)++], d, BKP_DIGEST);
	pthread_mutex_unlock(&s->mu);
}

static void note_touched(struct bkp_repo *r, const uint8_t d[BKP_DIGEST])
{
	struct s3r *s = S(r);

	digest_add(s, &s->touched, &s->nt, &s->capt, d);
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
	/* Every version: in a versioned bucket (where radosgw ignores the
	 * header) the second PUT made a second version, and deleting only the
	 * current one would bring the first back. */
	s3_delete_all(S(r)->c, k, NULL, &e);
	return res;
}

/* Store chunk d.  look: find out first whether it is there (a HEAD, or
 * --full's read back).  Where the store honours If-None-Match and the
 * caller has no reason to expect the chunk (look false), the PUT goes
 * first: one request per new chunk; a 412 answer means present or
 * damaged, and the HEAD then tells which.  Duplicates come in runs (a
 * second disk cloned from the same template, data moved on a disk): once
 * a PUT meets a chunk that is there, the next chunks are looked for first
 * (a HEAD, not an upload of the whole chunk for a 412), until LOOK_RUN
 * HEADs in a row find nothing. */
#define LOOK_RUN 16
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
	look = look || st->deep || S(r)->cond != COND_HONOURED ||
	       atomic_load(&S(r)->look_run) > 0;
	for (;;) {
		if (look) {
			/* --full reads the object back; otherwise a HEAD
			 * (os3_touch notes the chunk as touched when it is
			 * there) */
			rc = st->deep ? prove(st, k, data, len) : os3_touch(st, d);
			if (!rc) {
				if (st->deep)
					note_touched(r, d);
				atomic_store(&S(r)->look_run, LOOK_RUN);
				return 0;
			}
			if (rc == -ENOENT && atomic_load(&S(r)->look_run) > 0)
				atomic_fetch_sub(&S(r)->look_run, 1);
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
		/* 412 to a PUT sent without a look: there, or damaged (the
		 * HEAD that finds it there also starts a look run) */
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
	if (damaged)      /* a verify may be quarantining it: os3_sync */
		digest_add(S(r), &S(r)->replaced, &S(r)->nr, &S(r)->capr, d);
	return 0;
}

/* Probe the store's If-None-Match once per open (the first caller probes,
 * the others wait).  Called and returns with s->mu held. */
static void cond_known(struct bkp_repo *r)
{
	struct s3r *s = S(r);

	while (s->cond == COND_UNKNOWN || s->cond == COND_PROBING) {
		if (s->cond == COND_PROBING) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		s->cond = COND_PROBING;
		pthread_mutex_unlock(&s->mu);
		int rc = os3_cond_probe(r);
		pthread_mutex_lock(&s->mu);
		s->cond = rc;
		pthread_cond_broadcast(&s->cv);
	}
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
	cond_known(st->r);
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

/* The oldest version of chunk object k into buf (cap) when k has another
 * version or a delete marker: its length; -ENOENT when there is none other
 * than the current one; -EIO (why) on failure. */
static ssize_t chunk_orig(const struct bkp_repo *r, const char *k, void *buf,
			  size_t cap, char *why, size_t wl)
{
	struct bdev_err e = { 0 };
	size_t versions = 0, markers = 0, len = 0;
	char vid[256];
	void *d = NULL;
	int rc;

	rc = s3_oldest_version(S(r)->c, k, vid, NULL, &versions, &markers, &e);
	if (rc == -ENOENT || (!rc && versions + markers < 2))
		return -ENOENT;
	if (!rc)
		rc = s3_get_version(S(r)->c, k, vid, cap, &d, &len, NULL, &e);
	if (rc) {
		snprintf(why, wl, "%s", e.msg);
		return rc == -ENOENT ? -ENOENT : -EIO;
	}
	memcpy(buf, d, len);
	free(d);
	return (ssize_t)len;
}

/* A chunk read bad (bkp_chunk_load): in a locked repository, its
 * original version when it has one. */
static ssize_t os3_chunk_orig(const struct bkp_repo *r,
			      const uint8_t d[BKP_DIGEST], void *buf, size_t cap,
			      char *why, size_t wl)
{
	char key[BKP_CHUNK_KEY + 4], k[KEY_MAX];

	if (r->object_lock_days <= 0)
		return -ENOENT;
	bkp_chunk_key(d, key);
	full_key(r, key, k);
	return chunk_orig(r, k, buf, cap, why, wl);
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
	if (rc == -ENOENT && r->object_lock_days > 0) {
		ssize_t n = chunk_orig(r, k, buf, cap, why, wl);

		if (n != -ENOENT)
			return n;
	}
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

/* Keep the damaged bytes as HEX.bad (evidence, as in a folder; also the
 * marker a backup's commit step looks for), then remove HEX, only the
 * version that was read bad: a backup --full may replace HEX with a good
 * copy (store_put_one: DELETE, PUT) at any moment.  After the marker, HEX
 * is looked at again and left alone when it changed (ETag).  In a
 * versioned bucket the DELETE names the version read, so a good copy is
 * never hit; in an unversioned one a good copy PUT between that look and
 * the DELETE is lost, and the backup that wrote it sees HEX.bad in its
 * commit step (os3_sync) and fails with EAGAIN instead of committing.
 * 1 quarantined, 0 not (good, gone or replaced meanwhile), -errno. */
static int os3_quarantine(const struct bkp_repo *cr, const uint8_t d[BKP_DIGEST],
			  struct bdev_err *e)
{
	struct bkp_repo *r = (struct bkp_repo *)cr;
	size_t fcap = bkp_chunk_bound(r->chunk_size), flen = 0;
	uint8_t *buf = malloc(r->chunk_size);
	char key[BKP_CHUNK_KEY + 4], k[KEY_MAX], why[200];
	struct s3_version_id id;
	struct s3_stat now;
	void *fbuf = NULL;
	ssize_t n;
	int rc;

	if (!buf)
		return bdev_err_set(e, ENOMEM, "out of memory");
	bkp_chunk_key(d, key);
	full_key(r, key, k);
	rc = s3_get_version(S(r)->c, k, NULL, fcap, &fbuf, &flen, &id, e);
	if (rc == -ENOENT)
		rc = 0;         /* gone meanwhile */
	if (rc || !fbuf)
		goto out;
	n = bkp_chunk_decode(fbuf, flen, buf, r->chunk_size, why, sizeof(why));
	if (n >= 0) {
		uint8_t got[BKP_DIGEST];

		bkp_sha256(buf, (size_t)n, got);
		if (!memcmp(got, d, BKP_DIGEST))
			goto out;       /* good (replaced meanwhile) */
	}
	strcat(key, ".bad");
	rc = put_opts(r, key, fbuf, flen, true, e);
	if (rc && rc != -EEXIST)
		goto out;
	rc = s3_head(S(r)->c, k, &now, e);
	if (rc == -ENOENT) {
		rc = 1;         /* removed meanwhile; the copy is kept */
		goto out;
	}
	if (rc)
		goto out;
	if (strcmp(now.etag, id.etag)) {
		rc = 0;         /* a new copy is there: not ours to remove */
		goto out;
	}
	rc = s3_delete_version(S(r)->c, k, id.version_id, e);
	if (!rc)
		rc = 1;
out:
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
		k->tick(k->r);
		pthread_mutex_lock(&k->mu);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

static int keeper_start(struct keeper *k, struct bkp_repo *r, int period,
			void (*tick)(struct bkp_repo *), struct bdev_err *e)
{
	int rc;

	k->r = r;
	k->period = period;
	k->tick = tick;
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

static int heartbeat_put(struct bkp_repo *r, struct bdev_err *e)
{
	char *body = heartbeat_body(r);
	int rc;

	if (!body)
		return bdev_err_set(e, ENOMEM, "out of memory");
	rc = put_opts(r, S(r)->hb_key, body, strlen(body), false, e);
	free(body);
	return rc;
}

static void heartbeat_tick(struct bkp_repo *r)
{
	(void)heartbeat_put(r, NULL);
}

static int os3_writer_register(struct bkp_repo *r, const char *id,
			       struct timespec start, struct bdev_err *e)
{
	struct s3r *s = S(r);
	int rc;

	snprintf(s->writer, sizeof(s->writer), "%s", id);
	s->start = start;
	snprintf(s->hb_key, sizeof(s->hb_key), "writers/%s", id);
	rc = heartbeat_put(r, e);
	if (!rc)
		rc = keeper_start(&s->hb, r, HEARTBEAT_S, heartbeat_tick, e);
	if (rc)
		s->writer[0] = '\0';
	return rc;
}

static void os3_writer_unregister(struct bkp_repo *r, const char *id)
{
	struct s3r *s = S(r);

	keeper_stop(&s->hb);
	writer_remove(r, id);
	s->writer[0] = '\0';
}

/* ---- the maintenance lock ---- */

/* The lock object: "WHAT pid PID on HOST\nexpires UNIX\ntoken HEX\n".  The
 * token (random, one per os3_lock) tells the holder's own lock from one
 * another process took after it expired. */
static char *lock_body(struct bkp_repo *r, int64_t expires)
{
	char host[128] = "?", *s = NULL;

	gethostname(host, sizeof(host) - 1);
	if (asprintf(&s, "%s pid %ld on %s\nexpires %lld\ntoken %s\n", S(r)->lock_what,
		     (long)getpid(), host, (long long)expires, S(r)->lock_token) < 0)
		return NULL;
	return s;
}

/* The expiry and token of a lock body; -EBADMSG when it has no expiry. */
static int lock_parse(const char *body, long long *until, char token[33])
{
	const char *ex = strstr(body, "\nexpires "), *tk = strstr(body, "\ntoken ");

	token[0] = '\0';
	if (tk)
		sscanf(tk + 7, "%32[0-9a-f]", token);
	if (!ex || sscanf(ex + 9, "%lld", until) != 1)
		return -EBADMSG;
	return 0;
}

/* GET the lock object (body NUL-terminated, *out; its version into id),
 * tried LOCK_READ_TRIES times (each with the client's own retries) unless
 * it is missing: 0, -ENOENT, -errno (e). */
static int lock_read(struct bkp_repo *r, char **out, struct s3_version_id *id,
		     struct bdev_err *e)
{
	char k[KEY_MAX];
	void *d = NULL;
	size_t len;
	int rc = -EIO;

	full_key(r, "lock", k);
	for (int i = 0; i < LOCK_READ_TRIES; i++) {
		if (i)
			sleep(1);
		rc = s3_get_version(S(r)->c, k, NULL, 4096, &d, &len, id, e);
		if (rc == 0)
			*out = d;
		if (rc == 0 || rc == -ENOENT)
			break;
	}
	return rc;
}

/* The version id to pass as s3_delete_all's if_latest (NULL when the
 * store named none: an unversioned bucket). */
static const char *vid_or_null(const char *vid)
{
	return vid[0] && strcmp(vid, "null") ? vid : NULL;
}

/* Remove the lock object, every version, when it is still what we read
 * (vid in a versioned bucket; unversioned: no such check). */
static int lock_remove(struct bkp_repo *r, const char *vid, struct bdev_err *e)
{
	char k[KEY_MAX];

	full_key(r, "lock", k);
	return s3_delete_all(S(r)->c, k, vid_or_null(vid), e);
}

/* Mark the lock lost (the first reason is kept); the reason into why
 * (size n) when it is not NULL.  From the keeper and the deleting threads:
 * under s->mu. */
static void lock_lose(struct bkp_repo *r, const char *reason, char *why,
		      size_t n)
{
	struct s3r *s = S(r);

	pthread_mutex_lock(&s->mu);
	if (!atomic_load(&s->lock_lost)) {
		snprintf(s->lock_why, sizeof(s->lock_why), "%s", reason);
		atomic_store(&s->lock_lost, true);
	}
	if (why)
		snprintf(why, n, "%s", s->lock_why);
	pthread_mutex_unlock(&s->mu);
}

/* Fewer than LOCK_MARGIN_S seconds left of the expiry we wrote last. */
static bool lock_late(struct s3r *s)
{
	return time(NULL) >= atomic_load(&s->lock_expires) - LOCK_MARGIN_S;
}

/* The keeper's tick: renew the lock only while it is ours (read, compare
 * the token, write).  radosgw 16.2 does not honour If-Match on a PUT in a
 * versioned bucket (412 even for the current ETag), hence the read.  The
 * window between the read and the write is closed by time: we never
 * write once fewer than LOCK_MARGIN_S seconds are left of the expiry we
 * wrote last, and another process takes the lock only after it. */
static void lock_refresh(struct bkp_repo *r)
{
	struct s3r *s = S(r);
	int64_t until = (int64_t)time(NULL) + LOCK_TTL_S;
	char token[33], *old = NULL, *body;
	struct s3_version_id vid;
	long long ex = 0;
	int rc;

	if (atomic_load(&s->lock_lost))
		return;
	if (lock_late(s)) {
		lock_lose(r, "not renewed in time", NULL, 0);
		return;
	}
	rc = lock_read(r, &old, &vid, NULL);
	if (rc == -ENOENT) {
		lock_lose(r, "the lock object was removed", NULL, 0);
		return;
	}
	if (rc)
		return;         /* unknown: next tick, until the margin */
	rc = lock_parse(old, &ex, token);
	free(old);
	if (rc || strcmp(token, s->lock_token)) {
		lock_lose(r, "another process holds it now", NULL, 0);
		return;
	}
	if (lock_late(s)) {     /* the read took that long */
		lock_lose(r, "not renewed in time", NULL, 0);
		return;
	}
	body = lock_body(r, until);
	if (body && put_opts(r, "lock", body, strlen(body), false, NULL) == 0)
		atomic_store(&s->lock_expires, until);
	free(body);
}

/* 0 when this process holds no lock or still holds it; -ESTALE (e) once
 * it is lost or was not renewed in time. */
static int lock_check(struct bkp_repo *r, struct bdev_err *e)
{
	struct s3r *s = S(r);
	char why[sizeof(s->lock_why)];

	if (!s->lk.on)
		return 0;
	if (!atomic_load(&s->lock_lost) && !lock_late(s))
		return 0;
	lock_lose(r, "not renewed in time", why, sizeof(why));
	return bdev_err_set(e, ESTALE, "%s: the repository lock of this %s was lost (%s); stopped before deleting anything more: run it again",
			    r->path, s->lock_what, why);
}

static int os3_lock(struct bkp_repo *r, const char *what, struct bdev_err *e)
{
	struct s3r *s = S(r);
	uint8_t rnd[16];
	int64_t until = 0;
	int rc = -EEXIST;

	snprintf(s->lock_what, sizeof(s->lock_what), "%s", what);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return bdev_err_set(e, EIO, "no random bytes for the lock token");
	bkp_hex(rnd, sizeof(rnd), s->lock_token);
	atomic_store(&s->lock_lost, false);
	/* Where the store ignores If-None-Match (radosgw in a versioned
	 * bucket) the lock's put-once becomes HEAD + PUT. */
	pthread_mutex_lock(&s->mu);
	cond_known(r);
	pthread_mutex_unlock(&s->mu);
	for (int attempt = 0; attempt < 3 && rc == -EEXIST; attempt++) {
		char *old = NULL, *body, token[33];
		struct s3_version_id vid;
		struct bdev_err e2 = { 0 };
		long long ex = 0;

		until = (int64_t)time(NULL) + LOCK_TTL_S;
		body = lock_body(r, until);
		if (!body)
			return bdev_err_set(e, ENOMEM, "out of memory");
		/* never under retention: it must go when we are done */
		rc = put_once_r(r, "lock", body, strlen(body), false, e);
		free(body);
		if (rc != -EEXIST)
			break;
		/* Held, or left by a holder that died: stale once its expiry
		 * passed (the holder renews it every LOCK_REFRESH_S).  Only a
		 * lock read and found expired is removed: a read that fails
		 * says nothing about its holder. */
		rc = lock_read(r, &old, &vid, &e2);
		if (rc == -ENOENT) {
			rc = -EEXIST;   /* removed meanwhile: try again */
			continue;
		}
		if (rc)
			return bdev_err_set(e, -rc, "%s: the repository lock object exists and cannot be read (%s); not taking it: run again later",
					    r->path, e2.msg);
		if (lock_parse(old, &ex, token)) {
			free(old);
			return bdev_err_set(e, EBUSY, "%s: the repository lock object has no expiry; remove %s/lock by hand if no prune, gc or forget runs",
					    r->path, r->path);
		}
		if (ex > time(NULL)) {
			char *nl = strchr(old, '\n');

			if (nl)
				*nl = '\0';
			rc = bdev_err_set(e, EBUSY, "%s: the repository is locked by %s (until %lld, renewed while it runs)",
					  r->path, old, ex);
			free(old);
			return rc;
		}
		free(old);
		/* That very version (a holder that renewed meanwhile wrote a
		 * newer one: -EEXIST, look again). */
		rc = lock_remove(r, vid.version_id, &e2);
		if (rc && rc != -EEXIST)
			return bdev_err_set(e, -rc, "%s: cannot remove a stale lock: %s",
					    r->path, e2.msg);
		rc = -EEXIST;
	}
	if (rc == -EEXIST)
		return bdev_err_set(e, EBUSY, "%s: the repository lock keeps being taken",
				    r->path);
	if (rc)
		return rc;
	atomic_store(&s->lock_expires, until);
	rc = keeper_start(&s->lk, r, LOCK_REFRESH_S, lock_refresh, e);
	if (rc)
		(void)lock_remove(r, "", NULL);
	return rc;
}

/* Delete the lock only when it is still ours (token; in a versioned
 * bucket also that very version). */
static void os3_unlock(struct bkp_repo *r)
{
	struct s3r *s = S(r);
	char *old = NULL, token[33];
	struct s3_version_id vid;
	long long ex;
	bool ours;

	keeper_stop(&s->lk);
	if (atomic_load(&s->lock_lost) || lock_read(r, &old, &vid, NULL))
		return;
	ours = !lock_parse(old, &ex, token) && !strcmp(token, s->lock_token);
	free(old);
	if (ours)
		(void)lock_remove(r, vid.version_id, NULL);
}

/* Whether a fresh lock object exists (a prune, gc or forget runs): 1, 0
 * (none, or expired), -errno (e) when it cannot be read: never "free". */
static int lock_held(struct bkp_repo *r, struct bdev_err *e)
{
	char *old = NULL, token[33];
	struct s3_version_id vid;
	long long ex = 0;
	int rc = lock_read(r, &old, &vid, e);

	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	rc = lock_parse(old, &ex, token);
	free(old);
	if (rc)
		return bdev_err_set(e, EBADMSG, "the lock object has no expiry (remove %s/lock by hand if no prune, gc or forget runs)",
				    r->path);
	return ex > time(NULL);
}

/* ---- tampered keys (Object Lock) ---- */

/* Append a copy of name to (*v, *n). */
static int add_name(char ***v, size_t *n, const char *name)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(name)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* The keys under a prefix with more than one version or a delete marker
 * (tampered with, or a chunk rewritten after damage) and the id of their
 * oldest version: their retention is extended on that one, not on the
 * current.  Sorted (the listings' byte order). */
struct tampered {
	size_t skip;
	char **key, **vid;
	size_t n, nv;
};

static int tampered_one(const struct key_versions *g, void *opaque)
{
	struct tampered *t = opaque;
	int rc = 0;

	if (g->count >= 2 && g->have && strlen(g->key) > t->skip) {
		rc = add_name(&t->key, &t->n, g->key + t->skip);
		if (!rc)
			rc = add_name(&t->vid, &t->nv, g->vid);
	}
	return rc;
}

static int tampered_list(struct bkp_repo *r, struct tampered *t,
			 struct bdev_err *e)
{
	char k[KEY_MAX];
	int rc = 0;

	t->skip = strlen(S(r)->prefix);
	for (int i = 0; !rc && i < 2; i++) {
		/* backups/ before chunks/: the keys stay sorted (bsearch) */
		snprintf(k, sizeof(k), "%s%s", S(r)->prefix, i ? "chunks/" : "backups/");
		rc = kv_walk(r, k, tampered_one, t, e);
	}
	if (rc == -ENOMEM || t->n != t->nv)
		return bdev_err_set(e, ENOMEM, "out of memory");
	return rc;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The oldest version of key when tampered with, else NULL. */
static const char *tampered_vid(const struct tampered *t, const char *key)
{
	char *const *f = t->n ? bsearch(&key, t->key, t->n, sizeof(*t->key), str_cmp)
			      : NULL;

	return f ? t->vid[f - t->key] : NULL;
}

static void tampered_free(struct tampered *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->key[i]);
	for (size_t i = 0; i < t->nv; i++)
		free(t->vid[i]);
	free(t->key);
	free(t->vid);
}

/* ---- the commit step of a backup ---- */

/* Extends the retention (until) of version vid (NULL: the current one)
 * of reused chunk ck (full key k) when it is short of the repository's
 * days; -errno (e) when it cannot be. */
static int keep_locked(struct bkp_repo *r, const char *ck, const char *k, const char *vid,
		       int64_t until, int64_t now, struct bdev_err *e)
{
	struct bdev_err e2 = { 0 };
	char ts[32];
	int rc;

	if (!lock_short(r, until, now))
		return 0;
	rc = s3_retention_set_version(S(r)->c, k, vid, lock_next(r, now), &e2);
	if (rc) {
		fmt_utc(until, ts);
		return bdev_err_set(e, -rc, "%s: chunk %s%s%s this backup reuses is under Object Lock only until %s, less than the repository's %d days, and its retention cannot be extended (%s): the backup is not committed",
				    r->path, ck, vid ? ", original version " : "", vid ? vid : "",
				    ts, r->object_lock_days, e2.msg);
	}
	return 0;
}

/* A chunk the backup reuses: there (0), -ENOENT, or -errno (e) when, in
 * an Object Lock repository, its retention is shorter than the manifest's
 * will be and cannot be extended: never commit a backup whose chunks are
 * less protected than its manifest.  HEAD answers the retention
 * (x-amz-object-lock-retain-until-date) where the caller may read it,
 * else one GET of it.
 * vid: the id of the chunk's original (oldest) version where the chunk
 * has several (tampered_vid: a newer one was written over it), else NULL.
 * A reader falls back to that one when the current version is damaged or
 * forged, so its retention is kept too, not only the current version's. */
static int check_reused(struct bkp_repo *r, const char *ck, const char *vid,
			struct bdev_err *e)
{
	struct bdev_err e2 = { 0 };
	struct s3_stat st;
	char k[KEY_MAX];
	int64_t until, now = time(NULL);
	int rc;

	full_key(r, ck, k);
	rc = s3_head(S(r)->c, k, &st, &e2);
	if (rc == -ENOENT || r->object_lock_days <= 0)
		return rc == -ENOENT ? rc : 0;   /* other errors: as before */
	if (rc)
		return bdev_err_set(e, -rc, "%s: chunk %s this backup reuses: %s; the backup is not committed",
				    r->path, ck, e2.msg);
	until = st.retain_until;
	if (until <= 0 && (rc = s3_retention_get(S(r)->c, k, &until, &e2)))
		return bdev_err_set(e, -rc, "%s: cannot read the Object Lock retention of chunk %s this backup reuses: %s; the backup is not committed",
				    r->path, ck, e2.msg);
	rc = keep_locked(r, ck, k, NULL, until, now, e);
	if (rc || !vid)
		return rc;
	rc = s3_retention_get_version(S(r)->c, k, vid, &until, &e2);
	if (rc == -ENOENT)
		return 0;	/* the original went (its retention ended): the current one stands */
	if (rc)
		return bdev_err_set(e, -rc, "%s: cannot read the Object Lock retention of the original version %s of chunk %s this backup reuses: %s; the backup is not committed",
				    r->path, vid, ck, e2.msg);
	return keep_locked(r, ck, k, vid, until, now, e);
}

/* check_reused of every touched chunk, on the repository's threads (a
 * request each: in sequence they were most of a small incremental's
 * commit). */
struct reuse_job {
	struct bkp_repo *r;
	const struct tampered *t;
	struct pool p;
	size_t next;              /* atomic */
	uint64_t missing;         /* atomic */
};

static void reuse_worker(void *arg, int index)
{
	struct reuse_job *j = arg;
	struct s3r *s = S(j->r);

	(void)index;
	while (!pool_stopping(&j->p)) {
		size_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		struct bdev_err e = { 0 };
		char ck[BKP_CHUNK_KEY];
		int rc;

		if (i >= s->nt)
			break;
		bkp_chunk_key(s->touched[i], ck);
		rc = check_reused(j->r, ck, tampered_vid(j->t, ck), &e);
		if (rc == -ENOENT)
			__atomic_fetch_add(&j->missing, 1, __ATOMIC_RELAXED);
		else if (rc)
			pool_fail(&j->p, rc, &e);
	}
}

static int reused_check_all(struct bkp_repo *r, const struct tampered *t,
			    uint64_t *missing, struct bdev_err *e)
{
	struct reuse_job j = { .r = r, .t = t };
	int threads = bkp_repo_threads(r, 0), rc;

	if ((size_t)threads > S(r)->nt / 4 + 1)   /* a few: not worth a thread */
		threads = (int)(S(r)->nt / 4 + 1);
	rc = pool_start(&j.p, threads, reuse_worker, &j, e);
	if (rc < 0)
		return rc;
	rc = pool_wait(&j.p, 0, NULL, NULL, e);
	*missing = j.missing;
	return rc;
}

/* Every damaged chunk this backup replaced must still be there, and no
 * verify may be quarantining it (HEX.bad, the marker os3_quarantine PUTs
 * before it removes HEX): its removal could land after this check.  An
 * old HEX.bad beside a chunk damaged again fails one backup too (the next
 * finds the chunk present and good). */
static int replaced_check(struct bkp_repo *r, struct bdev_err *e)
{
	struct s3r *s = S(r);

	if (s->capr == SIZE_MAX)
		return bdev_err_set(e, ENOMEM, "out of memory (replaced chunk list)");
	for (size_t i = 0; i < s->nr; i++) {
		char ck[BKP_CHUNK_KEY], bad[BKP_CHUNK_KEY + 4];
		bool gone, marked;

		bkp_chunk_key(s->replaced[i], ck);
		snprintf(bad, sizeof(bad), "%s.bad", ck);
		gone = os3_head(r, ck, NULL) == -ENOENT;
		marked = os3_head(r, bad, NULL) != -ENOENT;
		if (gone || marked)
			return bdev_err_set(e, EAGAIN, "%s: %s, which this backup replaced because it was damaged, is %s by a concurrent verify (or cannot be checked); the backup is not committed: run it again",
					    r->path, ck, gone ? "gone, quarantined" : "being quarantined");
	}
	return 0;
}

static int os3_sync(struct bkp_repo *r, struct bdev_err *e)
{
	struct s3r *s = S(r);
	char key[BKP_ID_MAX + 16];
	struct tampered t = { 0 };
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
	 * chunks this backup reused: let it finish (as long as it renews its
	 * lock, LOCK_WAIT_MAX_S at most), then check every one of them.  A
	 * lock that cannot be read, or a wait too long, fails the backup:
	 * never check while a sweep may still run. */
	for (time_t t0 = time(NULL);;) {
		struct bdev_err e2 = { 0 };

		rc = lock_held(r, &e2);
		if (rc < 0)
			return bdev_err_set(e, EAGAIN, "%s: cannot tell whether a prune or gc runs (%s); the backup is not committed: run it again",
					    r->path, e2.msg);
		if (!rc)
			break;
		if (time(NULL) - t0 >= LOCK_WAIT_MAX_S)
			return bdev_err_set(e, EAGAIN, "%s: a prune, gc or forget has held the repository lock for over %d s; the backup is not committed: run it again",
					    r->path, LOCK_WAIT_MAX_S);
		sleep(1);
	}
	/* Object Lock: which reused chunks have a newer version written over
	 * their original (one versions listing of the repository). */
	if (r->object_lock_days > 0 && s->nt && (rc = tampered_list(r, &t, e))) {
		tampered_free(&t);
		return rc;
	}
	rc = reused_check_all(r, &t, &missing, e);
	tampered_free(&t);
	if (rc)
		return rc;
	if (missing)
		return bdev_err_set(e, EAGAIN, "%s: %llu chunks this backup reuses were removed by a concurrent gc; run the backup again",
				    r->path, (unsigned long long)missing);
	return replaced_check(r, e);
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
	char **forgot;           /* backups marked forgotten */
	size_t nforgot;
	int err;
	struct bdev_err *e;      /* a failed delete's message */
};

/* A probe/ scratch key older than the cutoff: left by a backup killed
 * between the probe's PUT and its delete (a live one deletes its own in
 * well under the grace period). */
static int sweep_probe(void *opaque, const char *name,
		       const struct bkp_os_stat *st)
{
	struct gc_ctx *g = opaque;
	char key[128];

	if (bkp_ts_cmp(st->mtime, g->cutoff) >= 0 ||
	    strncmp(name, "if-none-match-", 14) || strlen(name) > 64)
		return 0;
	snprintf(key, sizeof(key), "probe/%s", name);
	if (del_key(g->r, key, true, NULL) == 0)
		g->res->tmp_removed++;
	return 0;
}

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
	if (g->now - (int64_t)st->mtime.tv_sec > g->dead_s)
		return add_name(&g->dead, &g->ndead, name);
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
		if (rc) {
			if (g->e)
				*g->e = e;
			return rc;
		}
	}
	g->res->removed++;
	g->res->bytes_removed += st->size;
	return 0;
}

/* Object Lock: extend key's retention when short (lock_short); vid (NULL:
 * the current version) the version to extend.  A failure to read or
 * extend it is counted (gc reports it and fails), the first one's message
 * kept; a key gone meanwhile is not one. */
static void extend_one(struct bkp_repo *r, const char *key, const char *vid,
		       struct bkp_gc_result *res)
{
	struct bdev_err e2 = { 0 };
	int64_t now = time(NULL), until = 0;
	char k[KEY_MAX];
	int rc;

	full_key(r, key, k);
	rc = s3_retention_get_version(S(r)->c, k, vid, &until, &e2);
	if (!rc && !lock_short(r, until, now))
		return;
	if (!rc)
		rc = s3_retention_set_version(S(r)->c, k, vid, lock_next(r, now), &e2);
	if (!rc)
		res->retention_extended++;
	if (!rc || rc == -ENOENT)
		return;
	if (!res->retention_failed++)
		snprintf(res->retention_error, sizeof(res->retention_error), "%.250s",
			 e2.msg[0] ? e2.msg : strerror(-rc));
}

static int extend_retention(struct gc_ctx *g, struct bdev_err *e)
{
	struct tampered *t = calloc(1, sizeof(*t));
	char **ids = NULL;
	size_t nids = 0;
	int rc;

	if (!t)
		return bdev_err_set(e, ENOMEM, "out of memory");
	rc = tampered_list(g->r, t, e);
	for (size_t i = 0; !rc && i < g->nref; i++) {
		char key[BKP_CHUNK_KEY];

		if (i && !memcmp(g->ref[i - 1], g->ref[i], BKP_DIGEST))
			continue;
		bkp_chunk_key(g->ref[i], key);
		extend_one(g->r, key, tampered_vid(t, key), g->res);
	}
	/* The manifests and indexes of the backups there are: not those
	 * forgotten (they are to expire), not orphan indexes. */
	if (!rc)
		rc = bkp_ids(g->r, false, &ids, &nids, e);
	for (size_t i = 0; !rc && i < nids; i++) {
		static const char *const ext[] = { "json", "idx" };

		for (size_t x = 0; x < 2; x++) {
			char key[BKP_ID_MAX + 16];

			snprintf(key, sizeof(key), "backups/%s.%s", ids[i], ext[x]);
			extend_one(g->r, key, tampered_vid(t, key), g->res);
		}
	}
	bkp_ids_free(ids, nids);
	tampered_free(t);
	free(t);
	return rc;
}

static int forgotten_one(void *opaque, const char *name,
			 const struct bkp_os_stat *st)
{
	struct gc_ctx *g = opaque;
	size_t l = strlen(name), fl = strlen(BKP_FORGOTTEN_EXT);
	char id[BKP_ID_MAX];

	(void)st;
	if (l <= fl || l - fl >= sizeof(id) ||
	    strcmp(name + l - fl, BKP_FORGOTTEN_EXT))
		return 0;
	snprintf(id, sizeof(id), "%.*s", (int)(l - fl), name);
	return bkp_id_valid(id) ? add_name(&g->forgot, &g->nforgot, id) : 0;
}

/* Forgotten backups: their manifest and index are deleted once the store
 * lets us (retention ended), then the marker; until then they are only
 * counted (their chunks are not marked, so the sweep deletes those as
 * their own retention ends).  A dry run reads each marker's locked-until
 * instead and counts by the store's time (g->now). */
static int sweep_forgotten(struct gc_ctx *g, bool dry_run, struct bdev_err *e)
{
	int rc = os3_list(g->r, "backups", forgotten_one, g, e);

	if (rc == -ENOMEM)
		return bdev_err_set(e, ENOMEM, "out of memory");
	for (size_t i = 0; !rc && dry_run && i < g->nforgot; i++) {
		int64_t until;

		rc = bkp_forgotten(g->r, g->forgot[i], &until);
		if (rc < 0)
			return bdev_err_set(e, -rc, "%s: backup %s: cannot read its forgotten marker: %s",
					    g->r->path, g->forgot[i], strerror(-rc));
		if (rc == 0)	/* gone meanwhile */
			continue;
		rc = 0;
		if (until > g->now)
			g->res->forgotten_locked++;
		else
			g->res->forgotten_removed++;
	}
	for (size_t i = 0; !rc && !dry_run && i < g->nforgot; i++) {
		static const char *const ext[] = { "json", "idx",
						   BKP_FORGOTTEN_EXT + 1 };
		bool locked = false;

		for (size_t x = 0; !rc && !locked && x < 3; x++) {
			char key[BKP_ID_MAX + 32];

			snprintf(key, sizeof(key), "backups/%s.%s", g->forgot[i],
				 ext[x]);
			rc = os3_del(g->r, key, e);
			locked = rc == -EACCES;
		}
		if (locked) {
			g->res->forgotten_locked++;
			rc = 0;
		} else if (!rc) {
			g->res->forgotten_removed++;
		}
	}
	return rc;
}

static int os3_gc(struct bkp_repo *r, const struct bkp_gc_opts *o,
		  struct bkp_gc_result *res, struct bdev_err *e)
{
	int64_t grace = o->grace < 0 ? BKP_DEFAULT_GRACE : o->grace;
	struct gc_ctx g = { .r = r, .o = o, .res = res, .e = e };
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
		rc = extend_retention(&g, e);
	if (!rc)
		rc = sweep_forgotten(&g, o->dry_run, e);
	for (size_t i = 0; !rc && !o->dry_run && i < g.ndead; i++) {
		writer_remove(r, g.dead[i]);
		res->tmp_removed++;
	}
	if (!rc && !o->dry_run)
		(void)os3_list(r, "probe", sweep_probe, &g, NULL);
	if (!rc)
		rc = lock_check(r, e);  /* a sweep cut short says so */
out:
	for (size_t i = 0; i < g.ndead; i++)
		free(g.dead[i]);
	free(g.dead);
	for (size_t i = 0; i < g.nforgot; i++)
		free(g.forgot[i]);
	free(g.forgot);
	free(idx);
	free(g.ref);
	os3_unlock(r);
	return rc;
}

/* ---- forgotten backups (Object Lock) ---- */

static int os3_forget_mark(struct bkp_repo *r, const char *id, int64_t *until,
			   struct bdev_err *e)
{
	char key[BKP_ID_MAX + 32], k[KEY_MAX], *body = NULL;
	int rc;

	snprintf(key, sizeof(key), "backups/%s.json", id);
	full_key(r, key, k);
	if (s3_retention_get(S(r)->c, k, until, NULL) || *until < 0)
		*until = 0;
	if (asprintf(&body, "forgotten %lld\nlocked-until %lld\n",
		     (long long)time(NULL), (long long)*until) < 0)
		return bdev_err_set(e, ENOMEM, "out of memory");
	snprintf(key, sizeof(key), "backups/%s" BKP_FORGOTTEN_EXT, id);
	rc = put_opts(r, key, body, strlen(body), true, e);
	free(body);
	if (rc == -EEXIST && e) {   /* marked already (an earlier prune) */
		e->code = 0;
		e->msg[0] = '\0';
	}
	if (rc == -EEXIST)
		rc = 0;
	return rc;
}

/* ---- open, init ---- */

static void os3_close(struct bkp_repo *r)
{
	struct s3r *s = S(r);

	free(r->place);
	r->place = NULL;
	if (!s)
		return;
	keeper_stop(&s->hb);
	keeper_stop(&s->lk);
	s3_close(s->c);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->touched);
	free(s->replaced);
	free(s);
	r->osd = NULL;
}

static const struct bkp_os_ops s3_ops = {
	.put = os3_put, .get = os3_get_e, .head = os3_head, .del = os3_del,
	.list = os3_list, .close = os3_close,
	.store_put = os3_store_put, .store_touch = os3_touch,
	.chunk_get = os3_chunk_get, .chunk_orig = os3_chunk_orig,
	.quarantine = os3_quarantine,
	.chunks = os3_chunks, .sync = os3_sync,
	.writer_register = os3_writer_register,
	.writer_unregister = os3_writer_unregister,
	.lock = os3_lock, .unlock = os3_unlock, .gc = os3_gc,
	.forget_mark = os3_forget_mark,
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
	rc = 0;
	if (o && o->addressing) {
		if (!strcmp(o->addressing, "virtual"))
			cfg.virtual_host = true;
		else if (!strcmp(o->addressing, "path"))
			cfg.path_style = true;
		else
			rc = bdev_err_set(e, EINVAL, "S3 addressing \"%s\": path or virtual",
					  o->addressing);
	}
	if (!rc)
		rc = s3_config_env(&cfg, e);
	if (!rc) {
		s->c = s3_open(&cfg, s->bucket, e);
		rc = s->c ? 0 : e->code ? -e->code : -EIO;
	}
	/* Where this repository is, for the manifest cache's folder name. */
	if (!rc && asprintf(&r->place, "s3 %s %s %s %s", cfg.endpoint,
			    cfg.endpoint[0] ? "" : cfg.region, s->bucket, s->prefix) < 0) {
		r->place = NULL;
		rc = bdev_err_set(e, ENOMEM, "out of memory");
	}
	/* The client keeps its own copy of the secret. */
	explicit_bzero(&cfg, sizeof(cfg));
	return rc;
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
