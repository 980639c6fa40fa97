/* The repository's object storage: whole small objects (repo.json,
 * indexes, manifests) put, read, listed and removed by key ("backups/ID.json"),
 * the same names on every backend.  A directory repository
 * (r->os NULL) keeps today's files: a put is a temporary file, fsync, rename, folder
 * fsync; a delete is unlink and folder fsync.  An s3:// repository goes to
 * os-s3.c.  Chunks, locks and writer registrations differ more between the
 * backends and have their own functions (store.c, repo.c, prune.c for
 * directories; os-s3.c for object storage). */
#include "bkp-int.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

int bkp_os_put(struct bkp_repo *r, const char *key, const void *data,
	       size_t len, struct bdev_err *e)
{
	char *p;
	int rc;

	if (r->os)
		return r->os->put(r, key, data, len, e);
	p = bkp_path(r, "%s", key);
	if (!p)
		return bdev_err_set(e, ENOMEM, "out of memory");
	rc = bkp_write_file(p, data, len, e);
	free(p);
	return rc;
}

int bkp_os_get(const struct bkp_repo *r, const char *key, size_t max,
	       char **out, size_t *len, struct bdev_err *e)
{
	char *p;
	int rc;

	if (r->os)
		return r->os->get(r, key, max, out, len, e);
	p = bkp_path(r, "%s", key);
	if (!p)
		return bdev_err_set(e, ENOMEM, "out of memory");
	rc = bkp_read_file(p, max, out, len);
	if (rc)
		bdev_err_set(e, -rc, "%s: %s", p, rc == -EFBIG ? "too large" : strerror(-rc));
	free(p);
	return rc;
}

int bkp_os_head(const struct bkp_repo *r, const char *key,
		struct bkp_os_stat *st)
{
	struct stat s;
	char *p;
	int rc = 0;

	if (r->os)
		return r->os->head(r, key, st);
	p = bkp_path(r, "%s", key);
	if (!p)
		return -ENOMEM;
	if (stat(p, &s) < 0)
		rc = -errno;
	else if (st) {
		st->size = (uint64_t)s.st_size;
		st->mtime = s.st_mtim;
	}
	free(p);
	return rc;
}

int bkp_os_delete(struct bkp_repo *r, const char *key, struct bdev_err *e)
{
	char *p;
	int rc = 0;

	if (r->os)
		return r->os->del(r, key, e);
	p = bkp_path(r, "%s", key);
	if (!p)
		return bdev_err_set(e, ENOMEM, "out of memory");
	if (unlink(p) < 0) {
		if (errno != ENOENT)
			rc = bdev_err_set(e, errno, "%s: cannot remove: %s", p,
					  strerror(errno));
	} else {
		(void)util_fsync_dir(p);
	}
	free(p);
	return rc;
}

int bkp_os_list(const struct bkp_repo *r, const char *dir,
		bkp_os_list_fn fn, void *opaque, struct bdev_err *e)
{
	char *p;
	DIR *d;
	int rc = 0;

	if (r->os)
		return r->os->list(r, dir, fn, opaque, e);
	p = bkp_path(r, "%s", dir);
	if (!p)
		return bdev_err_set(e, ENOMEM, "out of memory");
	d = opendir(p);
	if (!d) {
		rc = bdev_err_set(e, errno, "%s: %s", p, strerror(errno));
		free(p);
		return rc;
	}
	for (struct dirent *de; !rc && (de = readdir(d)); ) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		rc = fn(opaque, de->d_name, NULL);
	}
	closedir(d);
	free(p);
	return rc;
}

void bkp_chunk_key(const uint8_t d[BKP_DIGEST], char out[BKP_CHUNK_KEY])
{
	char hex[2 * BKP_DIGEST + 1];

	bkp_hex(d, BKP_DIGEST, hex);
	snprintf(out, BKP_CHUNK_KEY, "chunks/%.2s/%s", hex, hex);
}
