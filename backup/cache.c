/* backup: a local cache of an object-storage repository's manifests.
 *
 * A manifest is written once under its final key and never changed (in an
 * Object Lock repository readers use its original version), so a copy
 * read once stays true: list, show and the base search of create read
 * CACHE/UUID-PLACE/backups/ID.json instead of a GET per backup.  A cached file
 * that does not parse, or names another backup, is dropped and fetched
 * again; list removes the files of backups no longer listed.  Writes are a
 * temporary file and a rename (no fsync: a file lost or cut by a crash is
 * fetched again).  Commands that judge the store (verify, restore, repair,
 * prune, gc) do not use it. */
#include "bkp-int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Make folder p (0700) or accept it when it exists as a folder of ours
 * that nobody else can write to: another local user must not be able to
 * plant copies in a shared --cache-dir (/tmp/x) by making it first. */
static int mkdir_private(const char *p, struct bdev_err *e)
{
	struct stat st;

	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return bdev_err_set(e, errno, "cache %s: %s", p, strerror(errno));
	if (lstat(p, &st) < 0)
		return bdev_err_set(e, errno, "cache %s: %s", p, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return bdev_err_set(e, ENOTDIR, "cache %s: not a folder", p);
	if (st.st_uid != geteuid() || (st.st_mode & 022))
		return bdev_err_set(e, EPERM, "cache %s: not a private folder of this user "
				    "(owner %u, mode %03o)", p, (unsigned)st.st_uid,
				    (unsigned)(st.st_mode & 0777));
	return 0;
}

static bool uuid_ok(const char *u)
{
	size_t n = strlen(u);

	if (n < 8 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f')))
			return false;
	return true;
}

int bkp_repo_set_cache(struct bkp_repo *r, const char *dir, struct bdev_err *e)
{
	uint8_t d[BKP_DIGEST];
	char *p = NULL, name[40 + 1 + 17];
	int rc;

	free(r->cache);
	r->cache = NULL;
	/* A folder is read where it is; a repository without a uuid of hex
	 * digits (ours have 32; the store's repo.json is not trusted to name
	 * a folder: "../x") has no name to keep its copies apart under. */
	if (!r->os || !r->place || !dir || !*dir || !uuid_ok(r->uuid))
		return 0;
	/* UUID-PLACE: the uuid comes from the store, so anyone who can write
	 * a repo.json somewhere can claim another repository's uuid; the
	 * place (endpoint, bucket, prefix: sha-256, 16 hex digits) keeps two
	 * locations apart whatever their repo.json says. */
	bkp_sha256(r->place, strlen(r->place), d);
	snprintf(name, sizeof(name), "%s-", r->uuid);
	bkp_hex(d, 8, name + strlen(name));
	/* DIR, DIR/NAME, DIR/NAME/backups: the parents of DIR exist or
	 * not as the caller left them (XDG: ~/.cache). */
	if ((rc = mkdir_private(dir, e)))
		return rc;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return bdev_err_set(e, ENOMEM, "out of memory");
	rc = mkdir_private(p, e);
	free(p);
	if (rc)
		return rc;
	if (asprintf(&p, "%s/%s/backups", dir, name) < 0)
		return bdev_err_set(e, ENOMEM, "out of memory");
	if ((rc = mkdir_private(p, e))) {
		free(p);
		return rc;
	}
	r->cache = p;
	return 0;
}

int bkp_cache_get(const struct bkp_repo *r, const char *id, size_t max,
		  char **out, size_t *len)
{
	char *p, *buf;
	struct stat st;
	size_t have = 0;
	int fd;

	if (!r->cache || !bkp_id_valid(id))
		return -ENOENT;
	if (asprintf(&p, "%s/%s.json", r->cache, id) < 0)
		return -ENOMEM;
	fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	free(p);
	if (fd < 0)
		return -ENOENT;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > max || !(buf = malloc((size_t)st.st_size + 1))) {
		close(fd);
		return -ENOENT;
	}
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);

		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	if (have != (size_t)st.st_size) {
		free(buf);
		return -ENOENT;
	}
	buf[have] = 0;
	*out = buf;
	*len = have;
	return 0;
}

void bkp_cache_put(const struct bkp_repo *r, const char *id, const char *text,
		   size_t len)
{
	static unsigned long seq;
	char *tmp = NULL, *p = NULL;
	size_t done = 0;
	int fd;

	if (!r->cache || !bkp_id_valid(id))
		return;
	if (asprintf(&p, "%s/%s.json", r->cache, id) < 0) {
		p = NULL;
		goto out;
	}
	if (asprintf(&tmp, "%s/.%s.tmp.%d.%lu", r->cache, id, (int)getpid(),
		     __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED)) < 0) {
		tmp = NULL;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);

		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (close(fd) < 0 || done != len || rename(tmp, p) < 0)
		unlink(tmp);
out:
	free(tmp);
	free(p);
}

void bkp_cache_drop(const struct bkp_repo *r, const char *id)
{
	char *p;

	if (r->cache && bkp_id_valid(id) && asprintf(&p, "%s/%s.json", r->cache, id) >= 0) {
		unlink(p);
		free(p);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void bkp_cache_prune(const struct bkp_repo *r, char **ids, size_t n)
{
	DIR *d;
	struct dirent *de;

	if (!r->cache || !(d = opendir(r->cache)))
		return;
	while ((de = readdir(d))) {
		char id[BKP_ID_MAX], *key = id;
		size_t l = strlen(de->d_name);
		bool stale;

		if (de->d_name[0] == '.') {
			/* A temporary file a killed writer left. */
			stale = strstr(de->d_name, ".tmp.") != NULL;
		} else {
			if (l < 6 || l - 5 >= sizeof(id) || strcmp(de->d_name + l - 5, ".json"))
				continue;
			memcpy(id, de->d_name, l - 5);
			id[l - 5] = 0;
			stale = !bsearch(&key, ids, n, sizeof(*ids), cmp_str);
		}
		if (stale)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}
