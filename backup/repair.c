/* bkp_repair: store again, from source disks that still hold the data,
 * the chunks that backups reference but the repository lost (missing, or
 * quarantined by verify as HEX.bad), and say which backups stay damaged.
 *
 * A chunk is found by content: every chunk of a backup lies at a multiple
 * of the repository's chunk size, so each source is read at those
 * boundaries (plus the shorter last chunk of each damaged backup's disk
 * size), hashed, and a chunk whose SHA-256 a backup needs is stored.  The
 * source need not be the disk that was backed up: any disk holding the
 * same data at a chunk boundary serves. */
#include "bkp-int.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

struct need {
	uint8_t d[BKP_DIGEST];
	bool found;
};

struct rbackup {
	char id[BKP_ID_MAX];
	struct bkp_index x;       /* x.d NULL: manifest or index unreadable */
	char why[300];
};

/* A shorter last chunk to look for: [off, off+len). */
struct tail {
	uint64_t off;
	uint32_t len;
};

struct rjob {
	struct bkp_repo *r;
	struct need *need;
	size_t nneed, left;
	struct tail *tails;
	size_t ntails;
	struct bkp_store st;
	uint8_t *buf;
	bkp_report_fn report;
	void *opaque;
	struct bkp_repair_result *res;
};

static void reportf(struct rjob *j, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reportf(struct rjob *j, const char *fmt, ...)
{
	char msg[700];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (j->report)
		j->report(j->opaque, msg);
}

static int cmp_need(const void *a, const void *b)
{
	return memcmp(((const struct need *)a)->d, ((const struct need *)b)->d,
		      BKP_DIGEST);
}

static struct need *find_need(struct rjob *j, const uint8_t d[BKP_DIGEST])
{
	struct need key;

	memcpy(key.d, d, BKP_DIGEST);
	return j->nneed ? bsearch(&key, j->need, j->nneed, sizeof(key), cmp_need)
			: NULL;
}

/* Whether chunk d has a file under its name (damaged ones were moved
 * aside by the verify pass). */
static bool present(const struct bkp_repo *r, const uint8_t d[BKP_DIGEST])
{
	char key[BKP_CHUNK_KEY];

	bkp_chunk_key(d, key);
	return bkp_os_head(r, key, NULL) == 0;
}

/* Load every backup; unreadable ones are kept with x.d NULL and why. */
static int load_backups(struct bkp_repo *r, struct rbackup **out, size_t *n,
			struct bdev_err *e)
{
	struct rbackup *v;
	char **ids;
	size_t cnt;
	int rc = bkp_ids(r, false, &ids, &cnt, e);

	if (rc)
		return rc;
	v = calloc(cnt ? cnt : 1, sizeof(*v));
	if (!v) {
		bkp_ids_free(ids, cnt);
		return bdev_err_set(e, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < cnt; i++) {
		struct bkp_info b;

		snprintf(v[i].id, sizeof(v[i].id), "%s", ids[i]);
		rc = bkp_manifest_read(r, ids[i], &b, v[i].why, sizeof(v[i].why));
		if (!rc)
			rc = bkp_index_read(r, ids[i], b.index_sha256, &v[i].x,
					    v[i].why, sizeof(v[i].why));
		if (rc == -ENOMEM) {
			for (size_t k = 0; k <= i; k++)
				bkp_index_free(&v[k].x);
			free(v);
			bkp_ids_free(ids, cnt);
			return bdev_err_set(e, ENOMEM, "out of memory");
		}
		if (rc)
			v[i].x.d = NULL;
	}
	bkp_ids_free(ids, cnt);
	*out = v;
	*n = cnt;
	return 0;
}

/* The chunks the backups reference and the repository lacks (sorted,
 * unique), and the shorter last chunks of the backups that need one. */
static int collect_needs(struct rjob *j, struct rbackup *b, size_t nb)
{
	size_t cap = 0, u = 0;

	for (size_t i = 0; i < nb; i++) {
		bool needs = false;

		for (uint64_t k = 0; b[i].x.d && k < b[i].x.n; k++) {
			if (bkp_digest_is_zero(b[i].x.d[k]) || present(j->r, b[i].x.d[k]))
				continue;
			needs = true;
			if (j->nneed == cap) {
				size_t nc = cap ? 2 * cap : 256;
				struct need *nv = realloc(j->need, nc * sizeof(*nv));

				if (!nv)
					return -ENOMEM;
				j->need = nv;
				cap = nc;
			}
			memcpy(j->need[j->nneed].d, b[i].x.d[k], BKP_DIGEST);
			j->need[j->nneed++].found = false;
		}
		if (needs && b[i].x.virtual_size % b[i].x.chunk_size) {
			struct tail *nt = realloc(j->tails, (j->ntails + 1) * sizeof(*nt));

			if (!nt)
				return -ENOMEM;
			j->tails = nt;
			j->tails[j->ntails].off = (b[i].x.n - 1) * b[i].x.chunk_size;
			j->tails[j->ntails++].len =
				(uint32_t)(b[i].x.virtual_size % b[i].x.chunk_size);
		}
	}
	if (j->nneed)
		qsort(j->need, j->nneed, sizeof(*j->need), cmp_need);
	for (size_t i = 0; i < j->nneed; i++)
		if (!u || memcmp(j->need[u - 1].d, j->need[i].d, BKP_DIGEST))
			j->need[u++] = j->need[i];
	j->nneed = j->left = u;
	return 0;
}

/* Look at [off, off+len) of src: store it if a backup needs it. */
static int probe(struct rjob *j, struct bdev *src, uint64_t off, size_t len,
		 struct bdev_err *e)
{
	uint8_t d[BKP_DIGEST];
	char hex[2 * BKP_DIGEST + 1], msg[600];
	struct bdev_status st;
	struct need *n;
	uint64_t added;
	int r;

	r = bdev_block_status(src, off, len, &st);
	if (!r && (st.flags & BDEV_ST_ZERO) && st.length >= len)
		return 0;   /* zero chunks are never stored */
	r = bdev_read(src, j->buf, off, len);
	if (r)
		return bdev_err_set(e, -r, "%s", bdev_errmsg(src, msg, sizeof(msg)));
	if (util_is_zero(j->buf, len))
		return 0;
	bkp_sha256(j->buf, len, d);
	n = find_need(j, d);
	if (!n || n->found)
		return 0;
	r = bkp_store_put(&j->st, d, j->buf, len, &added, e);
	if (r)
		return r;
	n->found = true;
	j->left--;
	j->res->chunks_restored++;
	bkp_hex(d, BKP_DIGEST, hex);
	reportf(j, "chunk %s: stored again from %s at offset %llu", hex,
		src->name ? src->name : "the source", (unsigned long long)off);
	return 0;
}

static int scan_source(struct rjob *j, struct bdev *src, struct bdev_err *e)
{
	uint32_t cs = j->r->chunk_size;
	int r = 0;

	for (uint64_t off = 0; !r && j->left && off < src->size; off += cs)
		r = probe(j, src, off, (size_t)UTIL_MIN((uint64_t)cs, src->size - off), e);
	for (size_t i = 0; !r && j->left && i < j->ntails; i++) {
		const struct tail *t = &j->tails[i];

		/* Already probed when the source's own chunk there is as short. */
		if (t->off + t->len <= src->size && src->size - t->off != t->len)
			r = probe(j, src, t->off, t->len, e);
	}
	return r;
}

/* Say, for each backup that was damaged, whether it is whole now. */
static void conclude(struct rjob *j, struct rbackup *b, size_t nb)
{
	for (size_t i = 0; i < nb; i++) {
		uint64_t lost = 0, had = 0, first = 0;

		if (!b[i].x.d) {
			reportf(j, "backup %s: stays damaged: %s (a source cannot rebuild it)",
				b[i].id, b[i].why);
			j->res->backups_lost++;
			continue;
		}
		for (uint64_t k = 0; k < b[i].x.n; k++) {
			struct need *n = bkp_digest_is_zero(b[i].x.d[k]) ? NULL
					 : find_need(j, b[i].x.d[k]);

			if (!n)
				continue;
			had++;
			if (!n->found && !lost++)
				first = k;
		}
		if (lost) {
			reportf(j, "backup %s: stays damaged: %llu of %llu chunks found in no source (first: chunk %llu at disk offset %llu)",
				b[i].id, (unsigned long long)lost,
				(unsigned long long)b[i].x.n, (unsigned long long)first,
				(unsigned long long)(first * b[i].x.chunk_size));
			j->res->backups_lost++;
		} else if (had) {
			reportf(j, "backup %s: repaired", b[i].id);
			j->res->backups_repaired++;
		}
	}
}

int bkp_repair(struct bkp_repo *r, struct bdev *const *src, size_t nsrc,
	       int threads, bkp_report_fn report, void *opaque,
	       struct bkp_repair_result *res, struct bdev_err *e)
{
	struct rjob j = { .r = r, .report = report, .opaque = opaque, .res = res };
	struct rbackup *b = NULL;
	size_t nb = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	j.st.lockfd = -1;
	/* Finds and quarantines the damage; its findings are reported. */
	rc = bkp_verify(r, NULL, threads, report, opaque, &res->verify, e);
	if (rc)
		return rc;
	rc = load_backups(r, &b, &nb, e);
	if (rc)
		return rc;
	if (collect_needs(&j, b, nb)) {
		rc = bdev_err_set(e, ENOMEM, "out of memory");
		goto out;
	}
	res->chunks_needed = j.nneed;
	if (j.nneed) {
		rc = bkp_store_init(&j.st, r, e);
		if (rc)
			goto out;
		j.st.deep = true;
		j.buf = malloc(r->chunk_size);
		if (!j.buf) {
			rc = bdev_err_set(e, ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < nsrc && !rc && j.left; i++)
			rc = scan_source(&j, src[i], e);
		/* What was stored is durable before it is reported repaired. */
		if (!rc && res->chunks_restored)
			rc = bkp_sync_repo(r, e);
		if (rc)
			goto out;
	}
	conclude(&j, b, nb);
out:
	bkp_store_fini(&j.st);
	free(j.buf);
	free(j.need);
	free(j.tails);
	for (size_t i = 0; i < nb; i++)
		bkp_index_free(&b[i].x);
	free(b);
	return rc;
}
