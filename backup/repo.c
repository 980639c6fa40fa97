/* The repository directory: init, open, locks, writer registration, backup
 * IDs, small-file helpers and clocks.  Layout: docs/backup-format.md. */
#include "bkp-int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/publish.h"
#include "common/util.h"

#define REPO_JSON_MAX 65536

char *bkp_path(const struct bkp_repo *r, const char *fmt, ...)
{
	char *tail = NULL, *out = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&tail, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	if (asprintf(&out, "%s/%s", r->path, tail) < 0)
		out = NULL;
	free(tail);
	return out;
}

uint32_t bkp_chunk_size(const struct bkp_repo *r)
{
	return r->chunk_size;
}

struct timespec bkp_now_coarse(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME_COARSE, &t);
	return t;
}

int bkp_ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	if (a.tv_nsec != b.tv_nsec)
		return a.tv_nsec < b.tv_nsec ? -1 : 1;
	return 0;
}

int bkp_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	/* Two per CPU, at least 4: while some wait for the disk (reads,
	 * writeback throttling), the others hash and compress. */
	n = n < 1 ? 2 : 2 * n;
	return n < 4 ? 4 : n > 64 ? 64 : (int)n;
}

int bkp_write_file(const char *path, const void *data, size_t len,
		   struct bdev_err *e)
{
	struct publish p;
	int fd = -1, r;

	r = publish_begin(&p, path, PUBLISH_REPLACE, e);
	if (r)
		goto out;
	fd = open(p.tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		  publish_mode(&p));
	if (fd < 0) {
		r = bdev_err_set(e, errno, "%s: cannot create: %s", path,
				 strerror(errno));
		goto out;
	}
	r = util_pwrite_full(fd, data, len, 0);
	if (r)
		bdev_err_set(e, r, "%s: cannot write: %s", path, strerror(-r));
	else
		r = publish_commit(&p, fd, e);
out:
	if (fd >= 0)
		close(fd);
	publish_end(&p);
	return r;
}

int bkp_read_file(const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	char *buf;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	r = util_pread_full(fd, buf, (size_t)st.st_size, 0, false);
	close(fd);
	if (r) {
		free(buf);
		return r;
	}
	buf[st.st_size] = '\0';
	*out = buf;
	*len = (size_t)st.st_size;
	return 0;
}

static int mkdir_p1(const char *path, struct bdev_err *e)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return bdev_err_set(e, errno, "%s: cannot create directory: %s",
				    path, strerror(errno));
	return 0;
}

int bkp_repo_json(uint32_t chunk_size, int lock_days, char **out,
		  struct bdev_err *e)
{
	char uuid_hex[33], ts[32], lock[48] = "";
	uint8_t uuid[16];
	struct timespec now;
	struct tm tm;
	int r;

	if (!util_is_pow2(chunk_size) || chunk_size < BKP_MIN_CHUNK_SIZE ||
	    chunk_size > BKP_MAX_CHUNK_SIZE)
		return bdev_err_set(e, EINVAL,
			"chunk size %u: must be a power of two from %u to %u",
			chunk_size, BKP_MIN_CHUNK_SIZE, BKP_MAX_CHUNK_SIZE);
	r = util_random(uuid, sizeof(uuid));
	if (r)
		return bdev_err_set(e, -r, "random bytes: %s", strerror(-r));
	bkp_hex(uuid, sizeof(uuid), uuid_hex);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (lock_days > 0)
		snprintf(lock, sizeof(lock), ", \"object-lock-days\": %d",
			 lock_days);
	if (asprintf(out,
		     "{\"format\": \"vhdstack-backup\", \"version\": %d, "
		     "\"chunk-size\": %u, \"hash\": \"sha256\", "
		     "\"compression\": \"zlib\", \"uuid\": \"%s\", "
		     "\"created\": \"%s\"%s}\n",
		     BKP_FORMAT_VERSION, chunk_size, uuid_hex, ts, lock) < 0)
		return bdev_err_set(e, ENOMEM, "out of memory");
	return 0;
}

int bkp_init(const char *path, uint32_t chunk_size, struct bdev_err *e)
{
	char sub[PATH_MAX], *json = NULL;
	DIR *d;
	int r;

	if (bkp_is_remote(path))
		return bkp_init_remote(path, chunk_size, NULL, e);
	if (!chunk_size)
		chunk_size = BKP_DEFAULT_CHUNK_SIZE;
	if (!util_is_pow2(chunk_size) || chunk_size < BKP_MIN_CHUNK_SIZE ||
	    chunk_size > BKP_MAX_CHUNK_SIZE)
		return bdev_err_set(e, EINVAL,
			"chunk size %u: must be a power of two from %u to %u",
			chunk_size, BKP_MIN_CHUNK_SIZE, BKP_MAX_CHUNK_SIZE);
	if (strlen(path) > PATH_MAX - 100)
		return bdev_err_set(e, ENAMETOOLONG, "%s: path too long", path);
	r = mkdir_p1(path, e);
	if (r)
		return r;
	d = opendir(path);
	if (!d)
		return bdev_err_set(e, errno, "%s: %s", path, strerror(errno));
	for (struct dirent *de; (de = readdir(d)); )
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			closedir(d);
			return bdev_err_set(e, EEXIST,
				"%s: directory is not empty (a repository already, or other files)",
				path);
		}
	closedir(d);
	static const char *const dirs[] = { "chunks", "backups", "writers" };
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(dirs); i++) {
		snprintf(sub, sizeof(sub), "%s/%s", path, dirs[i]);
		if ((r = mkdir_p1(sub, e)))
			return r;
	}
	for (int i = 0; i < 256; i++) {
		snprintf(sub, sizeof(sub), "%s/chunks/%02x", path, i);
		if ((r = mkdir_p1(sub, e)))
			return r;
	}
	static const char *const locks[] = { "lock", "chunks.lock" };
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(locks); i++) {
		int fd;

		snprintf(sub, sizeof(sub), "%s/%s", path, locks[i]);
		fd = open(sub, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return bdev_err_set(e, errno, "%s: cannot create: %s",
					    sub, strerror(errno));
		close(fd);
	}
	r = bkp_repo_json(chunk_size, 0, &json, e);
	if (r)
		return r;
	/* repo.json last: a directory without it is not a repository. */
	snprintf(sub, sizeof(sub), "%s/repo.json", path);
	r = bkp_write_file(sub, json, strlen(json), e);
	free(json);
	return r;
}

int bkp_repo_parse(struct bkp_repo *r, struct bdev_err *e)
{
	const struct bkp_json *fmt, *ver, *cs, *uu, *ld;
	char why[200], *text;
	struct bkp_json *j;
	size_t len;
	int rc;

	rc = bkp_os_get(r, "repo.json", REPO_JSON_MAX, &text, &len, e);
	if (rc == -ENOENT)
		return bdev_err_set(e, ENOENT, "%s: not a backup repository (no repo.json; create one with 'vhdtool backup init')",
				    r->path);
	if (rc)
		return bdev_err_set(e, -rc, "%s: cannot read repo.json: %s", r->path,
				    e->msg[0] ? e->msg : strerror(-rc));
	j = bkp_json_parse(text, len, why, sizeof(why));
	free(text);
	if (!j)
		return bdev_err_set(e, EBADMSG, "%s/repo.json: damaged: %s",
				    r->path, why);
	fmt = bkp_json_get(j, "format");
	ver = bkp_json_get(j, "version");
	cs = bkp_json_get(j, "chunk-size");
	uu = bkp_json_get(j, "uuid");
	ld = bkp_json_get(j, "object-lock-days");
	if (!fmt || fmt->type != BKP_J_STR || strcmp(fmt->s, "vhdstack-backup") ||
	    !ver || !ver->is_u64) {
		bkp_json_free(j);
		return bdev_err_set(e, EBADMSG, "%s/repo.json: not a vhdstack backup repository description",
				    r->path);
	}
	if (ver->u64 != BKP_FORMAT_VERSION) {
		rc = bdev_err_set(e, ENOTSUP, "%s/repo.json: repository format version %llu is not supported (this vhdtool reads version %d)",
				  r->path, (unsigned long long)ver->u64,
				  BKP_FORMAT_VERSION);
		bkp_json_free(j);
		return rc;
	}
	if (!cs || !cs->is_u64 || !util_is_pow2(cs->u64) ||
	    cs->u64 < BKP_MIN_CHUNK_SIZE || cs->u64 > BKP_MAX_CHUNK_SIZE) {
		bkp_json_free(j);
		return bdev_err_set(e, EBADMSG, "%s/repo.json: bad chunk-size",
				    r->path);
	}
	r->chunk_size = (uint32_t)cs->u64;
	if (uu && uu->type == BKP_J_STR)
		snprintf(r->uuid, sizeof(r->uuid), "%s", uu->s);
	if (ld && ld->is_u64 && ld->u64 > 0 && ld->u64 <= 36500)
		r->object_lock_days = (int)ld->u64;
	bkp_json_free(j);
	return 0;
}

struct bkp_repo *bkp_open(const char *path, struct bdev_err *e)
{
	struct bkp_repo *r;

	if (bkp_is_remote(path))
		return bkp_open_remote(path, NULL, e);
	r = calloc(1, sizeof(*r));
	if (!r || !(r->path = strdup(path))) {
		free(r);
		bdev_err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	if (bkp_repo_parse(r, e)) {
		bkp_close(r);
		return NULL;
	}
	return r;
}

void bkp_close(struct bkp_repo *r)
{
	if (!r)
		return;
	if (r->os)
		r->os->close(r);
	free(r->cache);
	free(r->path);
	free(r);
}

int bkp_lock(const struct bkp_repo *r, const char *name, bool exclusive,
	     struct bdev_err *e)
{
	char *p = bkp_path(r, "%s", name);
	int fd, rc;

	if (!p)
		return bdev_err_set(e, ENOMEM, "out of memory");
	fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = bdev_err_set(e, errno, "%s: cannot open lock: %s", p,
				  strerror(errno));
		free(p);
		return rc;
	}
	while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
		if (errno == EINTR)
			continue;
		rc = bdev_err_set(e, errno, "%s: cannot lock: %s", p,
				  strerror(errno));
		close(fd);
		free(p);
		return rc;
	}
	free(p);
	return fd;
}

int bkp_maint_lock(struct bkp_repo *r, const char *what, struct bdev_err *e)
{
	if (r->os)
		return r->os->lock(r, what, e);
	return bkp_lock(r, "lock", true, e);
}

void bkp_maint_unlock(struct bkp_repo *r, int fd)
{
	if (r->os)
		r->os->unlock(r);
	else if (fd >= 0)
		close(fd);
}

/* One attempt: 0 with *fd_out registered and locked, -EAGAIN when a gc
 * swept the temporary name away before the rename, or -errno (e filled). */
static int register_once(const char *path, struct timespec start,
			 int *fd_out, struct bdev_err *e)
{
	char *tmp = util_tmpname(path), buf[64];
	int fd, rc;

	if (!tmp)
		return bdev_err_set(e, ENOMEM, "out of memory");
	/* Lock before the final name is visible: gc treats an unlocked
	 * registration as left by a dead writer. */
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		rc = bdev_err_set(e, errno, "%s: cannot register the backup: %s",
				  tmp, strerror(errno));
		goto out;
	}
	snprintf(buf, sizeof(buf), "%lld.%09ld\n", (long long)start.tv_sec,
		 start.tv_nsec);
	rc = util_pwrite_full(fd, buf, strlen(buf), 0);
	if (!rc && rename(tmp, path) < 0)
		rc = errno == ENOENT ? -EAGAIN : -errno;
	if (rc == -EAGAIN)
		goto out;
	if (rc) {
		bdev_err_set(e, rc, "%s: cannot register the backup: %s", path,
			     strerror(-rc));
		goto out;
	}
	free(tmp);
	*fd_out = fd;
	return 0;
out:
	if (fd >= 0) {
		unlink(tmp);
		close(fd);
	}
	free(tmp);
	return rc;
}

int bkp_writer_register(struct bkp_repo *r, const char *id,
			struct timespec start, struct bdev_err *e)
{
	char *path;
	int fd = -1, rc = -EAGAIN;

	if (r->os)
		return r->os->writer_register(r, id, start, e);
	path = bkp_path(r, "writers/%s", id);
	if (!path)
		return bdev_err_set(e, ENOMEM, "out of memory");
	/* A gc sweeping temporary files can remove ours between its
	 * creation and the rename (seen with gc looping beside backups):
	 * make a new one. */
	for (int i = 0; i < 20 && rc == -EAGAIN; i++)
		rc = register_once(path, start, &fd, e);
	if (rc == -EAGAIN)
		rc = bdev_err_set(e, EAGAIN, "%s: cannot register the backup: its temporary file keeps being removed",
				  path);
	free(path);
	return rc ? rc : fd;
}

void bkp_writer_unregister(struct bkp_repo *r, const char *id, int fd)
{
	char *path;

	if (r->os) {
		r->os->writer_unregister(r, id);
		return;
	}
	path = bkp_path(r, "writers/%s", id);
	if (path)
		unlink(path);
	free(path);
	if (fd >= 0)
		close(fd);
}

bool bkp_id_valid(const char *id)
{
	/* YYYYMMDDTHHMMSSZ-xxxxxxxx */
	if (strlen(id) != 25)
		return false;
	for (int i = 0; i < 25; i++) {
		char c = id[i];
		bool digit = c >= '0' && c <= '9';

		if (i == 8 ? c != 'T' : i == 15 ? c != 'Z' : i == 16 ? c != '-' :
		    i < 16 ? !digit : !(digit || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

int bkp_id_new(struct timespec ts, char id[BKP_ID_MAX])
{
	uint8_t rnd[4];
	char hex[9];
	struct tm tm;
	int r = util_random(rnd, sizeof(rnd));

	if (r)
		return r;
	bkp_hex(rnd, sizeof(rnd), hex);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(id, BKP_ID_MAX, "%Y%m%dT%H%M%SZ-", &tm);
	strcat(id, hex);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void bkp_ids_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

struct id_size {
	char id[BKP_ID_MAX];
	uint64_t size;
};

struct ids_walk {
	const struct bkp_repo *r;
	bool orphans;
	char **v;
	size_t n, cap;
	char **f;                 /* IDs with a forgotten marker */
	size_t nf, capf;
	struct id_size *sz;       /* the listed manifest sizes (when wanted) */
	size_t nsz, capsz;
	bool want_sizes;
	struct bdev_err *e;
};

static int push_id(char ***v, size_t *n, size_t *cap, const char *id)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 64;
		char **nv = realloc(*v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	if (!((*v)[*n] = strdup(id)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* 1 when backups/ID.ext exists, 0 when the store says it does not
 * (-ENOENT only), else -errno with w->e set: an unreadable store must never
 * pass for a missing manifest (gc would delete the backup as an orphan). */
static int has_file(struct ids_walk *w, const char *id, const char *ext)
{
	char key[BKP_ID_MAX + 16];
	int rc;

	snprintf(key, sizeof(key), "backups/%s.%s", id, ext);
	rc = bkp_os_head(w->r, key, NULL);
	if (rc == 0)
		return 1;
	if (rc == -ENOENT)
		return 0;
	return bdev_err_set(w->e, -rc, "%s: cannot tell whether it exists: %s",
			    key, strerror(-rc));
}

static int ids_one(void *opaque, const char *name,
		   const struct bkp_os_stat *st)
{
	struct ids_walk *w = opaque;
	const char *want = w->orphans ? ".idx" : ".json";
	size_t l = strlen(name), fl = strlen(BKP_FORGOTTEN_EXT);
	char id[BKP_ID_MAX];
	int rc;

	(void)st;
	if (!w->orphans && l > fl && l - fl < sizeof(id) &&
	    !strcmp(name + l - fl, BKP_FORGOTTEN_EXT)) {
		snprintf(id, sizeof(id), "%.*s", (int)(l - fl), name);
		return bkp_id_valid(id) ? push_id(&w->f, &w->nf, &w->capf, id) : 0;
	}
	if (l < 6 || l - 5 >= sizeof(id) ||
	    strcmp(name + l - strlen(want), want))
		return 0;
	snprintf(id, sizeof(id), "%.*s", (int)(l - strlen(want)), name);
	if (!bkp_id_valid(id))
		return 0;
	if (w->orphans && (rc = has_file(w, id, "json")) != 0)
		return rc < 0 ? rc : 0;
	if (w->want_sizes && st) {
		if (w->nsz == w->capsz) {
			size_t nc = w->capsz ? 2 * w->capsz : 64;
			struct id_size *nv = realloc(w->sz, nc * sizeof(*nv));

			if (!nv)
				return -ENOMEM;
			w->sz = nv;
			w->capsz = nc;
		}
		snprintf(w->sz[w->nsz].id, sizeof(w->sz[w->nsz].id), "%s", id);
		w->sz[w->nsz++].size = st->size;
	}
	return push_id(&w->v, &w->n, &w->cap, id);
}

static int cmp_id_size(const void *a, const void *b)
{
	return strcmp(((const struct id_size *)a)->id, ((const struct id_size *)b)->id);
}

/* forgotten: keep only the IDs with a manifest and a forgotten marker
 * (else only those without a marker; *nother, when not NULL, counts the
 * ones left out for theirs).  sizes (not NULL): the manifests' sizes the
 * listing gave, UINT64_MAX where it gave none (a folder), malloc'd. */
static int ids_walk(const struct bkp_repo *r, bool orphans, bool forgotten,
		    char ***ids, uint64_t **sizes, size_t *n, size_t *nother,
		    struct bdev_err *e)
{
	struct ids_walk w = { .r = r, .orphans = orphans, .e = e, .want_sizes = sizes != NULL };
	int rc = bkp_os_list(r, "backups", ids_one, &w, e);
	size_t k = 0, other = 0;

	if (rc) {
		bkp_ids_free(w.v, w.n);
		bkp_ids_free(w.f, w.nf);
		free(w.sz);
		return rc == -ENOMEM ? bdev_err_set(e, ENOMEM, "out of memory")
				     : rc;
	}
	if (w.n)
		qsort(w.v, w.n, sizeof(*w.v), cmp_str);
	/* A forgotten backup is gone for every reader (Object Lock keeps
	 * its objects until gc can delete them). */
	if (w.nf)
		qsort(w.f, w.nf, sizeof(*w.f), cmp_str);
	for (size_t i = 0; i < w.n; i++) {
		bool marked = w.nf && bsearch(&w.v[i], w.f, w.nf, sizeof(*w.f),
					      cmp_str);

		if (marked != forgotten) {
			free(w.v[i]);
			other++;
		} else {
			w.v[k++] = w.v[i];
		}
	}
	w.n = k;
	bkp_ids_free(w.f, w.nf);
	if (sizes) {
		*sizes = malloc((w.n ? w.n : 1) * sizeof(**sizes));
		if (!*sizes) {
			bkp_ids_free(w.v, w.n);
			free(w.sz);
			return bdev_err_set(e, ENOMEM, "out of memory");
		}
		if (w.nsz)
			qsort(w.sz, w.nsz, sizeof(*w.sz), cmp_id_size);
		for (size_t i = 0; i < w.n; i++) {
			struct id_size key, *hit = NULL;

			if (w.nsz) {
				snprintf(key.id, sizeof(key.id), "%s", w.v[i]);
				hit = bsearch(&key, w.sz, w.nsz, sizeof(*w.sz), cmp_id_size);
			}
			(*sizes)[i] = hit ? hit->size : UINT64_MAX;
		}
	}
	free(w.sz);
	if (nother)
		*nother = other;
	*ids = w.v;
	*n = w.n;
	return 0;
}

int bkp_ids(const struct bkp_repo *r, bool orphans, char ***ids, size_t *n,
	    struct bdev_err *e)
{
	return ids_walk(r, orphans, false, ids, NULL, n, NULL, e);
}

int bkp_ids_sized(const struct bkp_repo *r, char ***ids, uint64_t **sizes,
		  size_t *n, size_t *nforgotten, struct bdev_err *e)
{
	return ids_walk(r, false, false, ids, sizes, n, nforgotten, e);
}

int bkp_forgotten_ids(const struct bkp_repo *r, char ***ids, size_t *n,
		      struct bdev_err *e)
{
	return ids_walk(r, false, true, ids, NULL, n, NULL, e);
}

int bkp_forgotten(const struct bkp_repo *r, const char *id, int64_t *until)
{
	char key[BKP_ID_MAX + 32], *text = NULL, *p;
	size_t len;
	int rc;

	*until = 0;
	snprintf(key, sizeof(key), "backups/%s" BKP_FORGOTTEN_EXT, id);
	rc = bkp_os_get(r, key, 256, &text, &len, NULL);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	/* Written by us, but read as anything: only a number is taken. */
	p = strstr(text, "locked-until ");
	if (p)
		*until = strtoll(p + 13, NULL, 10);
	if (*until < 0)
		*until = 0;
	free(text);
	return 1;
}

void bkp_forgotten_why(int64_t until, char *out, size_t n)
{
	char ts[32] = "its retention ends";
	time_t t = (time_t)until;
	struct tm tm;

	if (until > 0 && gmtime_r(&t, &tm))
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(out, n, "forgotten; its objects stay under Object Lock retention until %s, then gc deletes them",
		 ts);
}
