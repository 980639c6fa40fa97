/* bkp_verify: check manifests and index checksums, then re-read and
 * re-hash every chunk the selected backups reference (and, for the whole
 * repository, every chunk file), on all cores; name each damaged chunk and
 * each backup that references a damaged or missing one.  A damaged chunk
 * file is quarantined (renamed HEX.bad, as Proxmox Backup Server does):
 * the next backup that reads that data stores it again, and a backup
 * that reuses it from its parent reads it from the source again. */
#include "bkp-int.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/pool.h"
#include "common/util.h"

struct vchunk {
	uint8_t d[BKP_DIGEST];
	bool referenced;         /* by a backup (else only found on disk) */
	bool gone;               /* unreferenced and removed meanwhile (gc) */
	bool damaged;            /* there but bad (not merely missing) */
	char *why;               /* NULL: intact */
};

struct vjob {
	const struct bkp_repo *r;
	struct vchunk *c;
	size_t n;
	uint64_t next, bytes;    /* atomics */
};

struct vbackup {
	char id[BKP_ID_MAX];
	struct bkp_index x;
};

static void vworker(void *arg, int index)
{
	struct vjob *j = arg;
	uint8_t *buf = malloc(j->r->chunk_size);
	uint8_t *fbuf = malloc(bkp_chunk_bound(j->r->chunk_size));

	(void)index;
	for (;;) {
		size_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		uint64_t stored = 0;
		char why[200];
		ssize_t n;

		if (i >= j->n)
			break;
		if (!buf || !fbuf) {
			j->c[i].why = strdup("not checked: out of memory");
			continue;
		}
		n = bkp_chunk_load(j->r, j->c[i].d, buf, j->r->chunk_size, fbuf,
				   &stored, why, sizeof(why));
		__atomic_fetch_add(&j->bytes, stored, __ATOMIC_RELAXED);
		if (n == -ENOENT && !j->c[i].referenced)
			j->c[i].gone = true;    /* garbage a gc just removed */
		else if (n < 0)
			j->c[i].why = strdup(why);
		j->c[i].damaged = n == -EBADMSG;
	}
	free(buf);
	free(fbuf);
}

static int run_checks(struct vjob *j, int threads, struct bdev_err *e)
{
	struct pool p;
	int r;

	if (threads <= 0)
		threads = bkp_repo_threads(j->r, 0);
	r = pool_start(&p, threads, vworker, j, e);
	return r < 0 ? r : pool_wait(&p, 0, NULL, NULL, e);
}

static int cmp_vchunk(const void *a, const void *b)
{
	return memcmp(((const struct vchunk *)a)->d,
		      ((const struct vchunk *)b)->d, BKP_DIGEST);
}

/* Append digest d to the growing array. */
static int push(struct vchunk **v, size_t *n, size_t *cap, const uint8_t *d,
		bool referenced)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 1024;
		struct vchunk *nv = realloc(*v, nc * sizeof(**v));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	memcpy((*v)[*n].d, d, BKP_DIGEST);
	(*v)[*n].referenced = referenced;
	(*v)[*n].gone = false;
	(*v)[*n].damaged = false;
	(*v)[*n].why = NULL;
	(*n)++;
	return 0;
}

struct walk {
	struct vchunk **v;
	size_t *n, *cap;
};

static int walk_one(void *opaque, const char *name,
		    const struct bkp_os_stat *st)
{
	struct walk *w = opaque;
	uint8_t dg[BKP_DIGEST];

	(void)st;
	/* "XX/HEX" only: not HEX.bad */
	if (strlen(name) != 3 + 2 * BKP_DIGEST || name[2] != '/' ||
	    strncmp(name, name + 3, 2) || bkp_unhex(name + 3, dg, BKP_DIGEST))
		return 0;
	return push(w->v, w->n, w->cap, dg, false);
}

/* Every well-named chunk file of the repository. */
static int walk_chunks(const struct bkp_repo *r, struct vchunk **v,
		       size_t *n, size_t *cap, struct bdev_err *e)
{
	if (r->os) {
		struct walk w = { v, n, cap };

		return r->os->chunks(r, walk_one, &w, e);
	}
	for (int i = 0; i < 256; i++) {
		char *dir = bkp_path(r, "chunks/%02x", i), pre[3];
		DIR *d;

		if (!dir)
			return -ENOMEM;
		d = opendir(dir);
		free(dir);
		if (!d)
			continue;
		snprintf(pre, sizeof(pre), "%02x", i);
		for (struct dirent *de; (de = readdir(d)); ) {
			uint8_t dg[BKP_DIGEST];

			if (strncmp(de->d_name, pre, 2) ||
			    bkp_unhex(de->d_name, dg, BKP_DIGEST))
				continue;
			if (push(v, n, cap, dg, false)) {
				closedir(d);
				return -ENOMEM;
			}
		}
		closedir(d);
	}
	return 0;
}

static void reportf(bkp_report_fn report, void *opaque, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void reportf(bkp_report_fn report, void *opaque, const char *fmt, ...)
{
	char msg[700];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (report)
		report(opaque, msg);
}

int bkp_verify(struct bkp_repo *r, const char *id, int threads,
	       bkp_report_fn report, void *opaque,
	       struct bkp_verify_result *res, struct bdev_err *e)
{
	struct vbackup *bk = NULL;
	struct vchunk *c = NULL;
	size_t nids = 0, nb = 0, nc = 0, cap = 0, u = 0;
	char **ids = NULL, why[300], hex[2 * BKP_DIGEST + 1];
	struct vjob j = { .r = r };
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (id) {
		struct bkp_info b;

		rc = bkp_show(r, id, &b, e);
		if (rc == -EBADMSG) {
			/* A manifest too damaged to read is a finding. */
			reportf(report, opaque, "%s", e->msg);
			res->backups = res->backups_damaged = 1;
			return 0;
		}
		if (rc)
			return rc;
		ids = calloc(1, sizeof(*ids));
		if (!ids || !(ids[0] = strdup(b.id)))
			goto nomem;
		nids = 1;
	} else {
		rc = bkp_ids(r, false, &ids, &nids, e);
		if (rc)
			return rc;
	}
	bk = calloc(nids ? nids : 1, sizeof(*bk));
	if (!bk)
		goto nomem;
	res->backups = nids;
	for (size_t i = 0; i < nids; i++) {
		struct bkp_info b;

		rc = bkp_manifest_read(r, ids[i], &b, why, sizeof(why));
		if (!rc)
			rc = bkp_index_read(r, ids[i], b.index_sha256, &bk[nb].x,
					    why, sizeof(why));
		if (!rc && (bk[nb].x.virtual_size != b.virtual_size ||
			    bk[nb].x.chunk_size != b.chunk_size)) {
			snprintf(why, sizeof(why), "index does not match its manifest");
			bkp_index_free(&bk[nb].x);
			rc = -EBADMSG;
		}
		if (rc == -ENOMEM)
			goto nomem;
		if (rc) {
			reportf(report, opaque, "backup %s: %s", ids[i], why);
			res->backups_damaged++;
			continue;
		}
		snprintf(bk[nb].id, sizeof(bk[nb].id), "%s", ids[i]);
		for (uint64_t k = 0; k < bk[nb].x.n; k++)
			if (!bkp_digest_is_zero(bk[nb].x.d[k]) &&
			    push(&c, &nc, &cap, bk[nb].x.d[k], true))
				goto nomem;
		nb++;
	}
	rc = id ? 0 : walk_chunks(r, &c, &nc, &cap, e);
	if (rc == -ENOMEM)
		goto nomem;
	if (rc)
		goto out;
	if (nc)
		qsort(c, nc, sizeof(*c), cmp_vchunk);
	for (size_t i = 0; i < nc; i++) {
		if (!u || memcmp(c[u - 1].d, c[i].d, BKP_DIGEST))
			c[u++] = c[i];
		else
			c[u - 1].referenced |= c[i].referenced;
	}
	j.c = c;
	j.n = u;
	rc = run_checks(&j, threads, e);
	if (rc)
		goto out;
	res->bytes = j.bytes;
	for (size_t i = 0; i < u; i++) {
		res->chunks += !c[i].gone;
		if (c[i].why) {
			struct bdev_err qe = { 0 };
			int q = c[i].damaged ? bkp_chunk_quarantine(r, c[i].d, &qe) : 0;

			bkp_hex(c[i].d, BKP_DIGEST, hex);
			if (q == 1) {
				reportf(report, opaque, "chunk %s: %s; quarantined as %s.bad",
					hex, c[i].why, hex);
				res->chunks_quarantined++;
			} else if (q < 0) {
				reportf(report, opaque, "chunk %s: %s; %s", hex, c[i].why,
					qe.msg);
			} else {
				reportf(report, opaque, "chunk %s: %s", hex, c[i].why);
			}
			res->chunks_damaged++;
		}
	}
	for (size_t i = 0; i < nb; i++) {
		uint64_t bad = 0, first = 0;

		for (uint64_t k = 0; k < bk[i].x.n && res->chunks_damaged; k++) {
			struct vchunk key, *hit;

			if (bkp_digest_is_zero(bk[i].x.d[k]))
				continue;
			memcpy(key.d, bk[i].x.d[k], BKP_DIGEST);
			hit = bsearch(&key, c, u, sizeof(*c), cmp_vchunk);
			if (hit && hit->why && !bad++)
				first = k;
		}
		if (bad) {
			reportf(report, opaque,
				"backup %s: %llu of %llu chunks damaged or missing (first: chunk %llu at disk offset %llu)",
				bk[i].id, (unsigned long long)bad,
				(unsigned long long)bk[i].x.n,
				(unsigned long long)first,
				(unsigned long long)(first * bk[i].x.chunk_size));
			res->backups_damaged++;
		}
	}
	goto out;
nomem:
	rc = bdev_err_set(e, ENOMEM, "out of memory");
out:
	for (size_t i = 0; i < u; i++)
		free(c[i].why);
	free(c);
	for (size_t i = 0; i < nb; i++)
		bkp_index_free(&bk[i].x);
	free(bk);
	bkp_ids_free(ids, nids);
	return rc;
}
