/* prune (retention rules), forget (one backup) and gc (mark and sweep of
 * chunks), all under the exclusive repository lock.
 *
 * The grace rule (docs/backup-format.md): gc removes an unreferenced chunk
 * only if its mtime is before  cutoff = min(gc start, start of every
 * running backup) - grace.  A running backup registered itself before it
 * touched or stored any chunk, and touches or stores each chunk it uses
 * holding chunks.lock shared while gc sweeps a directory holding it
 * exclusive; so a chunk a running backup uses has an mtime after its
 * start (or it is stored again after the sweep), and is never swept. */
#include "bkp-int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

/* ---- prune ---- */

static long bucket(int64_t t, char kind)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[16];

	localtime_r(&tt, &tm);
	switch (kind) {
	case 'd':
		return (long)(tm.tm_year + 1900) * 1000 + tm.tm_yday;
	case 'w':
		strftime(buf, sizeof(buf), "%G%V", &tm);   /* ISO week */
		return atol(buf);
	default:
		return (long)(tm.tm_year + 1900) * 100 + tm.tm_mon;
	}
}

static void add_why(char *why, const char *rule)
{
	size_t l = strlen(why);

	snprintf(why + l, 64 - l, "%s%s", l ? ", " : "", rule);
}

void bkp_prune_select(const int64_t *t, size_t n,
		      const struct bkp_prune_opts *o, bool *keep,
		      char (*why)[64])
{
	static const struct { char kind; const char *name; } rules[] = {
		{ 'd', "daily" }, { 'w', "weekly" }, { 'm', "monthly" },
	};
	int want[3] = { o->keep_daily, o->keep_weekly, o->keep_monthly };

	for (size_t i = 0; i < n; i++) {
		keep[i] = (int64_t)i < o->keep_last;
		why[i][0] = '\0';
		if (keep[i])
			add_why(why[i], "last");
	}
	/* The newest backup of each of the newest N buckets. */
	for (size_t r = 0; r < UTIL_ARRAY_SIZE(rules); r++) {
		long last = -1;
		int kept = 0;

		for (size_t i = 0; i < n && kept < want[r]; i++) {
			long b = bucket(t[i], rules[r].kind);

			if (b == last)
				continue;
			last = b;
			kept++;
			keep[i] = true;
			add_why(why[i], rules[r].name);
		}
	}
}

/* 0 removed; 1 forgotten but kept by Object Lock (the store refused to
 * delete its manifest: backups/ID.forgotten records the decision, why
 * says until when); -errno. */
static int forget_locked(struct bkp_repo *r, const char *id, char *why,
			 size_t wl, struct bdev_err *e)
{
	char key[BKP_ID_MAX + 16];
	int64_t until = 0;
	int rc;

	/* Manifest first: the backup disappears at once; a leftover index
	 * is an orphan that gc removes. */
	snprintf(key, sizeof(key), "backups/%s.json", id);
	rc = bkp_os_delete(r, key, e);
	if (rc == -EACCES && r->os && r->os->forget_mark) {
		rc = r->os->forget_mark(r, id, &until, e);
		if (rc)
			return rc;
		bkp_forgotten_why(until, why, wl);
		if (e) {
			e->code = 0;
			snprintf(e->msg, sizeof(e->msg), "backup %s: %s", id, why);
		}
		return 1;
	}
	if (rc)
		return rc;
	snprintf(key, sizeof(key), "backups/%s.idx", id);
	return bkp_os_delete(r, key, e);
}

int bkp_forget(struct bkp_repo *r, const char *id, struct bdev_err *e)
{
	char key[BKP_ID_MAX + 16], why[200];
	int64_t until;
	int fd, rc;

	if (!bkp_id_valid(id))
		return bdev_err_set(e, EINVAL, "'%s' is not a backup ID", id);
	fd = bkp_maint_lock(r, "forget", e);
	if (fd < 0)
		return fd;
	snprintf(key, sizeof(key), "backups/%s.json", id);
	rc = bkp_forgotten(r, id, &until);
	if (rc > 0)
		rc = bdev_err_set(e, ENOENT, "%s: no backup %s (forgotten already)",
				  r->path, id);
	else if (rc == 0 && bkp_os_head(r, key, NULL) == -ENOENT)
		rc = bdev_err_set(e, ENOENT, "%s: no backup %s", r->path, id);
	else if (rc == 0)
		rc = forget_locked(r, id, why, sizeof(why), e);
	else
		rc = bdev_err_set(e, -rc, "%s: backup %s: cannot tell whether it was forgotten: %s",
				  r->path, id, strerror(-rc));
	bkp_maint_unlock(r, fd);
	return rc;
}

int bkp_unforget(struct bkp_repo *r, const char *id, struct bdev_err *e)
{
	char key[BKP_ID_MAX + 32];
	int64_t until;
	int fd, rc;

	if (!bkp_id_valid(id))
		return bdev_err_set(e, EINVAL, "'%s' is not a backup ID", id);
	/* Under the maintenance lock: no gc deletes it meanwhile. */
	fd = bkp_maint_lock(r, "unforget", e);
	if (fd < 0)
		return fd;
	snprintf(key, sizeof(key), "backups/%s.json", id);
	rc = bkp_forgotten(r, id, &until);
	if (rc == 0)
		rc = bkp_os_head(r, key, NULL) == -ENOENT
		     ? bdev_err_set(e, ENOENT, "%s: no backup %s", r->path, id)
		     : bdev_err_set(e, ENOENT, "%s: backup %s is not forgotten",
				    r->path, id);
	else if (rc < 0)
		rc = bdev_err_set(e, -rc, "%s: backup %s: cannot tell whether it was forgotten: %s",
				  r->path, id, strerror(-rc));
	else if ((rc = bkp_os_head(r, key, NULL)) == -ENOENT)
		rc = bdev_err_set(e, ENOENT, "%s: backup %s was forgotten and gc has deleted it",
				  r->path, id);
	else if (rc)
		rc = bdev_err_set(e, -rc, "%s: %s: %s", r->path, key, strerror(-rc));
	else {
		snprintf(key, sizeof(key), "backups/%s" BKP_FORGOTTEN_EXT, id);
		rc = bkp_os_delete(r, key, e);
	}
	bkp_maint_unlock(r, fd);
	return rc;
}

int bkp_prune(struct bkp_repo *r, const struct bkp_prune_opts *o,
	      bkp_prune_fn fn, void *opaque, struct bdev_err *e)
{
	struct bkp_info *v = NULL;
	size_t n = 0, *ix = NULL;
	bool *keep = NULL, *done = NULL, *kk = NULL;
	char (*why)[64] = NULL, (*ww)[64] = NULL;
	int64_t *t = NULL;
	int fd, rc;

	if (o->keep_last <= 0 && o->keep_daily <= 0 && o->keep_weekly <= 0 &&
	    o->keep_monthly <= 0)
		return bdev_err_set(e, EINVAL,
			"no --keep-* rule given: prune would remove every backup");
	fd = bkp_maint_lock(r, "prune", e);
	if (fd < 0)
		return fd;
	rc = bkp_list(r, &v, &n, e);
	if (rc)
		goto out;
	keep = calloc(n + 1, sizeof(*keep));
	done = calloc(n + 1, sizeof(*done));
	kk = calloc(n + 1, sizeof(*kk));
	why = calloc(n + 1, sizeof(*why));
	ww = calloc(n + 1, sizeof(*ww));
	t = calloc(n + 1, sizeof(*t));
	ix = calloc(n + 1, sizeof(*ix));
	if (!keep || !done || !kk || !why || !ww || !t || !ix) {
		rc = bdev_err_set(e, ENOMEM, "out of memory");
		goto out;
	}
	/* Per source path: its backups newest first (v is oldest first). */
	for (size_t g = n; g-- > 0; ) {
		size_t m = 0;

		if (done[g])
			continue;
		for (size_t i = g + 1; i-- > 0; )
			if (!done[i] && !strcmp(v[i].source, v[g].source)) {
				done[i] = true;
				ix[m] = i;
				t[m++] = v[i].time;
			}
		bkp_prune_select(t, m, o, kk, ww);
		for (size_t i = 0; i < m; i++) {
			keep[ix[i]] = kk[i];
			memcpy(why[ix[i]], ww[i], sizeof(ww[i]));
		}
	}
	for (size_t i = 0; i < n && !rc; i++) {
		const char *w = keep[i] ? why[i] : "no rule keeps it";
		char fw[200];

		if (!keep[i] && !o->dry_run) {
			rc = forget_locked(r, v[i].id, fw, sizeof(fw), e);
			/* Object Lock: forgotten now, deleted by a later gc. */
			if (rc == 1) {
				w = fw;
				rc = 0;
			}
		}
		if (fn && !rc)
			fn(opaque, &v[i], keep[i], w);
	}
out:
	free(v);
	free(keep);
	free(done);
	free(kk);
	free(why);
	free(ww);
	free(t);
	free(ix);
	bkp_maint_unlock(r, fd);
	return rc;
}

/* ---- gc ---- */

static bool is_tmp(const char *name)
{
	return name[0] == '.' && strstr(name, ".tmp.");
}

static bool older(const struct stat *st, struct timespec cutoff)
{
	return bkp_ts_cmp(st->st_mtim, cutoff) < 0;
}

/* Live writers lower the cutoff to their start; dead ones (lock free) are
 * removed. */
static int scan_writers(struct bkp_repo *r, struct timespec *cutoff,
			bool dry_run, struct bdev_err *e)
{
	char *dir = bkp_path(r, "writers");
	DIR *d;

	if (!dir)
		return bdev_err_set(e, ENOMEM, "out of memory");
	d = opendir(dir);
	if (!d) {
		int rc = bdev_err_set(e, errno, "%s: %s", dir, strerror(errno));

		free(dir);
		return rc;
	}
	for (struct dirent *de; (de = readdir(d)); ) {
		char *p, buf[64] = "";
		int fd;

		if (de->d_name[0] == '.' && !is_tmp(de->d_name))
			continue;
		p = bkp_path(r, "writers/%s", de->d_name);
		fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
		if (fd < 0) {
			free(p);
			continue;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			/* Its backup died.  A temporary name may instead be a
			 * registration being made (created, not yet locked):
			 * those are left to sweep_tmp, which goes by age. */
			if (!dry_run && !is_tmp(de->d_name))
				unlink(p);
		} else {
			long long s = 0;
			long ns = 0;

			if (util_pread_full(fd, buf, sizeof(buf) - 1, 0, true) == 0 &&
			    sscanf(buf, "%lld.%ld", &s, &ns) == 2 &&
			    ns >= 0 && ns < 1000000000) {
				struct timespec st = { (time_t)s, ns };

				if (bkp_ts_cmp(st, *cutoff) < 0)
					*cutoff = st;
			} else if (!is_tmp(de->d_name)) {
				/* Unreadable: assume it started long ago.
				 * (A registration still being written is
				 * not yet using chunks.) */
				cutoff->tv_sec = 0;
				cutoff->tv_nsec = 0;
			}
		}
		close(fd);
		free(p);
	}
	closedir(d);
	free(dir);
	return 0;
}

int bkp_gc_mark(struct bkp_repo *r, struct timespec cutoff, bool dry_run,
		uint8_t (**out)[BKP_DIGEST], size_t *nout, struct bdev_err *e)
{
	uint8_t (*v)[BKP_DIGEST] = NULL;
	size_t n = 0, cap = 0;
	char **ids = NULL, why[256];
	size_t nids = 0;
	int rc;

	for (int pass = 0; pass < 2; pass++) {
		rc = bkp_ids(r, pass == 1, &ids, &nids, e);
		if (rc)
			goto fail;
		for (size_t i = 0; i < nids; i++) {
			struct bkp_index x;
			struct bkp_os_stat st;
			char key[BKP_ID_MAX + 16];

			snprintf(key, sizeof(key), "backups/%s.idx", ids[i]);
			if (pass == 1 && bkp_os_head(r, key, &st) == 0 &&
			    bkp_ts_cmp(st.mtime, cutoff) < 0) {
				if (!dry_run)
					(void)bkp_os_delete(r, key, NULL);
				continue;
			}
			rc = bkp_index_read(r, ids[i], NULL, &x, why, sizeof(why));
			if (rc == -ENOENT)
				continue;    /* removed meanwhile, or manifest only */
			if (rc) {
				rc = bdev_err_set(e, EBADMSG,
					"backup %s: %s: gc cannot tell which chunks it needs; remove it with 'vhdtool backup forget' first",
					ids[i], why);
				goto fail;
			}
			if (n + x.n > cap) {
				size_t nc = UTIL_MAX(2 * cap, n + x.n);
				void *nv = realloc(v, nc * BKP_DIGEST);

				if (!nv) {
					bkp_index_free(&x);
					rc = bdev_err_set(e, ENOMEM, "out of memory");
					goto fail;
				}
				v = nv;
				cap = nc;
			}
			for (uint64_t k = 0; k < x.n; k++)
				if (!bkp_digest_is_zero(x.d[k]))
					memcpy(v[n++], x.d[k], BKP_DIGEST);
			bkp_index_free(&x);
		}
		bkp_ids_free(ids, nids);
		ids = NULL;
		nids = 0;
	}
	if (n)
		qsort(v, n, BKP_DIGEST, bkp_digest_cmp);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (!u || memcmp(v[u - 1], v[i], BKP_DIGEST))
			memcpy(v[u++], v[i], BKP_DIGEST);
	*out = v;
	*nout = u;
	return 0;
fail:
	bkp_ids_free(ids, nids);
	free(v);
	return rc;
}

/* Remove temporary files older than the cutoff in directory sub. */
static void sweep_tmp(struct bkp_repo *r, const char *sub,
		      struct timespec cutoff, bool dry_run,
		      struct bkp_gc_result *res)
{
	char *dir = bkp_path(r, "%s", sub);
	DIR *d = dir ? opendir(dir) : NULL;

	if (d) {
		for (struct dirent *de; (de = readdir(d)); ) {
			char *p;
			struct stat st;

			if (!is_tmp(de->d_name))
				continue;
			p = bkp_path(r, "%s/%s", sub, de->d_name);
			if (p && stat(p, &st) == 0 && older(&st, cutoff)) {
				res->tmp_removed++;
				if (!dry_run)
					unlink(p);
			}
			free(p);
		}
		closedir(d);
	}
	free(dir);
}

/* Whether the chunk file of quarantined NAME.bad (in folder sub) is back. */
static bool good_copy(struct bkp_repo *r, const char *sub, const char *bad)
{
	char *p = bkp_path(r, "%s/%.*s", sub, 2 * BKP_DIGEST, bad);
	bool there = p && access(p, F_OK) == 0;

	free(p);
	return there;
}

static int sweep_dir(struct bkp_repo *r, int i, struct timespec cutoff,
		     const struct bkp_gc_opts *o, uint8_t (*ref)[BKP_DIGEST],
		     size_t nref, struct bkp_gc_result *res, struct bdev_err *e)
{
	char sub[16], pre[3];
	uint64_t gone = res->removed + res->tmp_removed;
	char *dir;
	DIR *d;
	int lfd;

	snprintf(sub, sizeof(sub), "chunks/%02x", i);
	snprintf(pre, sizeof(pre), "%02x", i);
	/* Exclusive: no backup touches or inserts a chunk meanwhile. */
	lfd = bkp_lock(r, "chunks.lock", true, e);
	if (lfd < 0)
		return lfd;
	dir = bkp_path(r, "%s", sub);
	d = dir ? opendir(dir) : NULL;
	for (struct dirent *de; d && (de = readdir(d)); ) {
		char hex[2 * BKP_DIGEST + 1], *p;
		uint8_t dg[BKP_DIGEST];
		struct stat st;
		bool bad;

		/* HEX, or HEX.bad: quarantined by verify, kept as evidence
		 * while a backup references HEX and no good copy came back. */
		snprintf(hex, sizeof(hex), "%.*s", 2 * BKP_DIGEST, de->d_name);
		bad = strlen(de->d_name) == 2 * BKP_DIGEST + 4 &&
		      !strcmp(de->d_name + 2 * BKP_DIGEST, ".bad");
		if (strncmp(de->d_name, pre, 2) || bkp_unhex(hex, dg, BKP_DIGEST) ||
		    (!bad && de->d_name[2 * BKP_DIGEST]))
			continue;
		if (!bad)
			res->chunks++;
		if (nref && bsearch(dg, ref, nref, BKP_DIGEST, bkp_digest_cmp) &&
		    (!bad || !good_copy(r, sub, de->d_name)))
			continue;
		p = bkp_path(r, "%s/%s", sub, de->d_name);
		if (!p || stat(p, &st) < 0) {
			free(p);
			continue;
		}
		if (!older(&st, cutoff)) {
			res->kept_grace++;
		} else if (o->dry_run || unlink(p) == 0) {
			res->removed++;
			res->bytes_removed += (uint64_t)st.st_size;
		}
		free(p);
	}
	if (d)
		closedir(d);
	close(lfd);
	sweep_tmp(r, sub, cutoff, o->dry_run, res);
	free(dir);
	if (!o->dry_run && res->removed + res->tmp_removed != gone) {
		/* util_fsync_dir syncs the directory holding its argument. */
		char *child = bkp_path(r, "%s/.", sub);

		if (child)
			(void)util_fsync_dir(child);
		free(child);
	}
	return 0;
}

/* The sweep compares file mtimes with the cutoff, and filesystems
 * truncate mtimes to their granularity (1 s on ext3, ext4 with 128-byte
 * inodes and some NFS servers, 2 s on FAT): a chunk touched after the
 * cutoff can carry an mtime up to one granule before it.  So the cutoff
 * is lowered by the granularity of the repository's filesystem, found by
 * stamping the file fd (the repository lock) with the current time: no
 * nanoseconds means whole seconds (2 s assumed, FAT's), else the largest
 * power of ten dividing them. */
static struct timespec mtime_granularity(int fd)
{
	struct timespec g = { 2, 0 };
	struct stat st;
	long ns;

	if (futimens(fd, NULL) < 0 || fstat(fd, &st) < 0 ||
	    !st.st_mtim.tv_nsec)
		return g;
	g.tv_sec = 0;
	g.tv_nsec = 1;
	for (ns = st.st_mtim.tv_nsec; ns % 10 == 0; ns /= 10)
		g.tv_nsec *= 10;
	return g;
}

static struct timespec ts_sub(struct timespec a, struct timespec b)
{
	a.tv_sec -= b.tv_sec;
	a.tv_nsec -= b.tv_nsec;
	if (a.tv_nsec < 0) {
		a.tv_nsec += 1000000000;
		a.tv_sec--;
	}
	return a;
}

int bkp_gc(struct bkp_repo *r, const struct bkp_gc_opts *o,
	   struct bkp_gc_result *res, struct bdev_err *e)
{
	uint8_t (*ref)[BKP_DIGEST] = NULL;
	int64_t grace = o->grace < 0 ? BKP_DEFAULT_GRACE : o->grace;
	struct timespec cutoff;
	size_t nref = 0;
	int fd, rc;

	memset(res, 0, sizeof(*res));
	if (r->os)
		return r->os->gc(r, o, res, e);
	fd = bkp_lock(r, "lock", true, e);
	if (fd < 0)
		return fd;
	cutoff = bkp_now_coarse();
	rc = scan_writers(r, &cutoff, o->dry_run, e);
	if (rc)
		goto out;
	cutoff.tv_sec -= (time_t)grace;
	cutoff = ts_sub(cutoff, mtime_granularity(fd));
	rc = bkp_gc_mark(r, cutoff, o->dry_run, &ref, &nref, e);
	if (rc)
		goto out;
	for (int i = 0; i < 256 && !rc; i++)
		rc = sweep_dir(r, i, cutoff, o, ref, nref, res, e);
	sweep_tmp(r, "backups", cutoff, o->dry_run, res);
	sweep_tmp(r, "writers", cutoff, o->dry_run, res);
out:
	free(ref);
	close(fd);
	return rc;
}
