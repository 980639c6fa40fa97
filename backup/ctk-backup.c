/* Change tracking, the backup side: a backup locks IMAGE.ctk for its whole
 * read (bkp_ctk_begin), or reads a live backup's frozen tracking file
 * (bkp_ctk_begin_frozen), asks which granules changed since its base
 * (bkp_ctk_changed) and checks at the end that the image did not change
 * under it (bkp_ctk_end).  The file format is in ctk-format.c.
 */
#include "bkp-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the backup side ---- */

struct bkp_ctk_session {
	int fd;
	char *ctk;
	struct bkp_ctkf c;
	uint32_t epoch_before;           /* marks <= this; valid sessions */
	char *paths[CTK_MAX_LAYERS];
	struct bkp_ctk_layer ids[CTK_MAX_LAYERS];  /* state at begin */
	uint32_t n;
	bool frozen;                     /* a frozen file: never written */
};

void bkp_ctk_abort(struct bkp_ctk_session *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->c.marks);
	bkp_ctkf_free_paths(s->paths, s->n);
	free(s->ctk);
	free(s);
}

struct bkp_ctk_session *bkp_ctk_begin(struct bdev *src, const char *path,
				      bool *valid, char *why, size_t wl)
{
	struct bkp_ctk_session *s = calloc(1, sizeof(*s));
	bool created;
	int r;

	*valid = false;
	if (!s) {
		snprintf(why, wl, "out of memory");
		return NULL;
	}
	s->fd = -1;
	if (bkp_ctkf_is_tmpname(path)) {
		snprintf(why, wl, "temporary files are not tracked");
		goto fail;
	}
	r = bkp_ctkf_collect(src, path, s->paths, s->ids, &s->n, why, wl);
	if (r)
		goto fail;
	s->ctk = bkp_ctkf_name(path);
	if (!s->ctk) {
		snprintf(why, wl, "out of memory");
		goto fail;
	}
	created = access(s->ctk, F_OK) < 0;
	s->fd = bkp_ctkf_open_locked(s->ctk, true);
	if (s->fd == -EWOULDBLOCK) {
		snprintf(why, wl, "change tracking is held by a process writing the image");
		goto fail;
	}
	if (s->fd < 0) {
		snprintf(why, wl, "cannot open %s: %s", s->ctk, strerror(-s->fd));
		goto fail;
	}
	r = created ? -ENOENT : bkp_ctkf_read(s->fd, &s->c, why, wl);
	if (created)
		snprintf(why, wl, "no change tracking yet (first backup of this image)");
	if (!r && bkp_ctkf_valid(&s->c, s->ids, s->n, src->size,
				  bkp_ctkf_fd_dev(s->fd), why, wl) &&
	    s->c.epoch < UINT32_MAX - 1) {
		*valid = true;
		s->epoch_before = s->c.epoch;
		s->c.epoch++;
		r = bkp_ctkf_write(s->fd, &s->c, false, false);
	} else {
		/* A new record of the layers: proven before the backup
		 * reads, so that any write after that point shows. */
		r = bkp_ctkf_reset(&s->c, src->size, s->ids, s->n, CTK_ST_CLEAN);
		if (!r)
			r = bkp_ctkf_write(s->fd, &s->c, true, true);
		if (!r)
			r = bkp_ctkf_prove(s->fd, &s->c);
	}
	if (r) {
		snprintf(why, wl, "cannot update %s: %s", s->ctk, strerror(-r));
		*valid = false;
		goto fail;
	}
	return s;
fail:
	bkp_ctk_abort(s);
	return NULL;
}

struct bkp_ctk_session *bkp_ctk_begin_frozen(struct bdev *src, const char *path,
					     const char *ctk_path, char *why, size_t wl)
{
	struct bkp_ctk_session *s = calloc(1, sizeof(*s));
	int r;

	if (!s) {
		snprintf(why, wl, "out of memory");
		return NULL;
	}
	s->frozen = true;
	s->fd = open(ctk_path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		snprintf(why, wl, "cannot open %s: %s", ctk_path, strerror(errno));
		goto fail;
	}
	r = bkp_ctkf_collect(src, path, s->paths, s->ids, &s->n, why, wl);
	if (r)
		goto fail;
	if (bkp_ctkf_read(s->fd, &s->c, why, wl) ||
	    !bkp_ctkf_valid(&s->c, s->ids, s->n, src->size,
			    bkp_ctkf_fd_dev(s->fd), why, wl))
		goto fail;
	if (s->c.epoch >= UINT32_MAX - 1) {
		snprintf(why, wl, "change tracking invalid: the epoch is exhausted");
		goto fail;
	}
	/* The writer moved on to epoch + 1 at the freeze: memory only here. */
	s->epoch_before = s->c.epoch;
	s->c.epoch++;
	return s;
fail:
	bkp_ctk_abort(s);
	return NULL;
}

void bkp_ctk_ids(const struct bkp_ctk_session *s, char gen[33],
		 uint32_t *since)
{
	bkp_hex(s->c.gen, sizeof(s->c.gen), gen);
	*since = s->c.epoch;
}

uint32_t bkp_ctk_epoch(const struct bkp_ctk_session *s)
{
	return s->epoch_before;
}

bool bkp_ctk_changed(const struct bkp_ctk_session *s, uint32_t since,
		     uint64_t off, uint64_t len)
{
	uint64_t first = off / s->c.granule, last;

	if (!len)
		return false;
	last = (off + len - 1) / s->c.granule;
	if (last >= s->c.nmarks)
		return true;
	for (uint64_t i = first; i <= last; i++)
		if (s->c.marks[i] >= since)
			return true;
	return false;
}

bool bkp_ctk_end(struct bkp_ctk_session *s)
{
	struct bkp_ctk_layer now[CTK_MAX_LAYERS];
	bool same = bkp_ctkf_restat(s->paths, s->n, s->ids, now) == 0 &&
		    bkp_ctkf_same_layers(s->ids, now, s->n, NULL, 0);

	if (!same && !s->frozen) {
		s->c.state = CTK_ST_INVALID;
		(void)bkp_ctkf_write(s->fd, &s->c, false, false);
	}
	bkp_ctk_abort(s);
	return same;
}

