/* Per-backup metadata: the index (binary, digests in disk order) and the
 * manifest (JSON, with the index's SHA-256).  A backup exists when its
 * manifest does; the index is written first. */
#include "bkp-int.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/util.h"

#define IDX_HDR 32u
#define MANIFEST_MAX (1u << 20)

int bkp_index_write(struct bkp_repo *r, const char *id,
		    const struct bkp_index *x, char sha_hex[65],
		    struct bdev_err *e)
{
	size_t len = IDX_HDR + (size_t)x->n * BKP_DIGEST;
	uint8_t *buf = malloc(len), sha[BKP_DIGEST];
	char key[BKP_ID_MAX + 16];
	int rc;

	if (!buf)
		return bdev_err_set(e, ENOMEM, "out of memory");
	snprintf(key, sizeof(key), "backups/%s.idx", id);
	memset(buf, 0, IDX_HDR);
	memcpy(buf, "VBKI", 4);
	util_put_le32(buf + 4, 1);
	util_put_le32(buf + 8, x->chunk_size);
	util_put_le32(buf + 16, (uint32_t)x->virtual_size);
	util_put_le32(buf + 20, (uint32_t)(x->virtual_size >> 32));
	util_put_le32(buf + 24, (uint32_t)x->n);
	util_put_le32(buf + 28, (uint32_t)(x->n >> 32));
	memcpy(buf + IDX_HDR, x->d, (size_t)x->n * BKP_DIGEST);
	bkp_sha256(buf, len, sha);
	bkp_hex(sha, BKP_DIGEST, sha_hex);
	rc = bkp_os_put(r, key, buf, len, e);
	free(buf);
	return rc;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)util_get_le32(p + 4) << 32 | util_get_le32(p);
}

int bkp_index_read(const struct bkp_repo *r, const char *id,
		   const char *expect_sha, struct bkp_index *x, char *why,
		   size_t wl)
{
	char key[BKP_ID_MAX + 16], *text = NULL, hex[65];
	struct bdev_err ge = { 0 };
	uint8_t sha[BKP_DIGEST], *b;
	size_t len;
	uint64_t want;
	int rc;

	memset(x, 0, sizeof(*x));
	snprintf(key, sizeof(key), "backups/%s.idx", id);
	/* 2^40 bytes of disk at the smallest chunk: 16M entries, 512 MiB. */
	rc = bkp_os_get(r, key, IDX_HDR + ((size_t)1 << 29), &text, &len, &ge);
	if (rc) {
		snprintf(why, wl, "index %s", rc == -ENOENT ? "missing"
			 : rc == -EFBIG ? "too large" : ge.msg);
		return rc == -ENOENT ? -ENOENT : -EBADMSG;
	}
	b = (uint8_t *)text;
	if (expect_sha) {
		bkp_sha256(b, len, sha);
		bkp_hex(sha, BKP_DIGEST, hex);
		if (strcmp(hex, expect_sha)) {
			snprintf(why, wl, "index checksum mismatch (damaged index)");
			goto bad;
		}
	}
	if (len < IDX_HDR || memcmp(b, "VBKI", 4) || util_get_le32(b + 4) != 1) {
		snprintf(why, wl, "index header damaged");
		goto bad;
	}
	x->chunk_size = util_get_le32(b + 8);
	x->virtual_size = get_le64(b + 16);
	x->n = get_le64(b + 24);
	if (!util_is_pow2(x->chunk_size) || x->chunk_size < BKP_MIN_CHUNK_SIZE ||
	    x->chunk_size > BKP_MAX_CHUNK_SIZE) {
		snprintf(why, wl, "index has a bad chunk size %u", x->chunk_size);
		goto bad;
	}
	want = x->virtual_size / x->chunk_size +
	       (x->virtual_size % x->chunk_size ? 1 : 0);
	if (x->n != want || (len - IDX_HDR) / BKP_DIGEST != x->n ||
	    (len - IDX_HDR) % BKP_DIGEST) {
		snprintf(why, wl, "index length does not match its disk size (%llu entries, %zu bytes)",
			 (unsigned long long)x->n, len);
		goto bad;
	}
	/* Reuse the buffer: move the entries to its start. */
	memmove(b, b + IDX_HDR, len - IDX_HDR);
	x->d = (uint8_t (*)[BKP_DIGEST])b;
	return 0;
bad:
	free(text);
	memset(x, 0, sizeof(*x));
	return -EBADMSG;
}

void bkp_index_free(struct bkp_index *x)
{
	free(x->d);
	x->d = NULL;
}

char *bkp_info_json(const struct bkp_info *b)
{
	char *out = NULL, ts[32];
	size_t len = 0;
	struct tm tm;
	time_t t = (time_t)b->time;
	FILE *f = open_memstream(&out, &len);
	struct json j;

	if (!f)
		return NULL;
	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_begin(&j, f);
	json_obj(&j);
	json_kv_u64(&j, "format", BKP_FORMAT_VERSION);
	json_kv_str(&j, "id", b->id);
	json_kv_str(&j, "source", b->source);
	json_kv_str(&j, "source-format", b->source_format);
	json_kv_str(&j, "disk-id", b->disk_id);
	json_kv_u64(&j, "virtual-size", b->virtual_size);
	json_kv_str(&j, "time", ts);
	json_key(&j, "unix-time");
	json_i64(&j, b->time);
	json_kv_u64(&j, "unix-nsec", b->time_nsec);
	json_kv_str(&j, "consistency", b->consistency);
	json_kv_str(&j, "parent", b->parent[0] ? b->parent : NULL);
	json_kv_str(&j, "kind", b->incremental ? "incremental" : "full");
	json_kv_str(&j, "reason", b->reason);
	json_kv_u64(&j, "chunk-size", b->chunk_size);
	json_kv_u64(&j, "chunks", b->chunks);
	json_kv_u64(&j, "chunks-zero", b->chunks_zero);
	json_kv_u64(&j, "chunks-read", b->chunks_read);
	json_kv_u64(&j, "chunks-new", b->chunks_new);
	json_kv_u64(&j, "chunks-replaced", b->chunks_replaced);
	json_kv_u64(&j, "bytes-read", b->bytes_read);
	json_kv_u64(&j, "bytes-new", b->bytes_new);
	json_kv_u64(&j, "bytes-stored", b->bytes_stored);
	json_key(&j, "seconds");
	json_double(&j, b->seconds, 3);
	json_kv_str(&j, "index-sha256", b->index_sha256);
	json_key(&j, "change-tracking");
	if (b->ctk_generation[0]) {
		json_obj(&j);
		json_kv_str(&j, "generation", b->ctk_generation);
		json_kv_u64(&j, "since", b->ctk_since);
		json_end_obj(&j);
	} else {
		json_null(&j);
	}
	if (b->snapshot[0])
		json_kv_str(&j, "snapshot", b->snapshot);
	if (b->group[0]) {
		json_kv_str(&j, "group", b->group);
		json_kv_u64(&j, "vm-lun", b->vm_lun);
		json_kv_u64(&j, "freeze-window-us", b->freeze_window_us);
	}
	json_end_obj(&j);
	if (fclose(f)) {
		free(out);
		return NULL;
	}
	return out;
}

int bkp_manifest_write(struct bkp_repo *r, const struct bkp_info *b,
		       struct bdev_err *e)
{
	char *json = bkp_info_json(b), key[BKP_ID_MAX + 16];
	char *text = NULL;
	int rc = -ENOMEM;

	snprintf(key, sizeof(key), "backups/%s.json", b->id);
	if (json && asprintf(&text, "%s\n", json) >= 0)
		rc = bkp_os_put(r, key, text, strlen(text), e);
	else
		bdev_err_set(e, ENOMEM, "out of memory");
	if (!rc)
		bkp_cache_put(r, b->id, text, strlen(text));
	free(text);
	free(json);
	return rc;
}

/* Field helpers for bkp_manifest_read: false when missing or mistyped. */
static bool get_str(const struct bkp_json *o, const char *k, char *out,
		    size_t len, bool null_ok)
{
	const struct bkp_json *v = bkp_json_get(o, k);

	if (v && v->type == BKP_J_NULL && null_ok) {
		out[0] = '\0';
		return true;
	}
	if (!v || v->type != BKP_J_STR || strlen(v->s) >= len)
		return false;
	strcpy(out, v->s);
	return true;
}

static bool get_u64(const struct bkp_json *o, const char *k, uint64_t *out)
{
	const struct bkp_json *v = bkp_json_get(o, k);

	if (!v || !v->is_u64)
		return false;
	*out = v->u64;
	return true;
}

static int parse_manifest(const struct bkp_json *j, struct bkp_info *b,
			  char *why, size_t wl)
{
	const struct bkp_json *v, *ctk;
	uint64_t u, cs, nsec, ctk_u = 0;
	char kind[16];
	const char *bad = NULL;

	memset(b, 0, sizeof(*b));
	if (!get_u64(j, "format", &u) || u != BKP_FORMAT_VERSION)
		bad = "format";
	else if (!get_str(j, "id", b->id, sizeof(b->id), false) ||
		 !bkp_id_valid(b->id))
		bad = "id";
	else if (!get_str(j, "source", b->source, sizeof(b->source), false))
		bad = "source";
	else if (!get_str(j, "source-format", b->source_format,
			  sizeof(b->source_format), false))
		bad = "source-format";
	else if (!get_str(j, "disk-id", b->disk_id, sizeof(b->disk_id), false))
		bad = "disk-id";
	else if (!get_u64(j, "virtual-size", &b->virtual_size))
		bad = "virtual-size";
	else if (!(v = bkp_json_get(j, "unix-time")) || !v->is_i64)
		bad = "unix-time";
	else if ((b->time = v->i64), !get_u64(j, "unix-nsec", &nsec) ||
		 nsec >= 1000000000)
		bad = "unix-nsec";
	else if (!get_str(j, "consistency", b->consistency,
			  sizeof(b->consistency), false))
		bad = "consistency";
	else if (!get_str(j, "parent", b->parent, sizeof(b->parent), true) ||
		 (b->parent[0] && !bkp_id_valid(b->parent)))
		bad = "parent";
	else if (!get_str(j, "kind", kind, sizeof(kind), false) ||
		 (strcmp(kind, "full") && strcmp(kind, "incremental")))
		bad = "kind";
	else if (!get_str(j, "reason", b->reason, sizeof(b->reason), false))
		bad = "reason";
	else if (!get_u64(j, "chunk-size", &cs) || !util_is_pow2(cs) ||
		 cs < BKP_MIN_CHUNK_SIZE || cs > BKP_MAX_CHUNK_SIZE)
		bad = "chunk-size";
	else if (!get_u64(j, "chunks", &b->chunks) ||
		 b->chunks != b->virtual_size / cs + (b->virtual_size % cs != 0))
		bad = "chunks";
	else if (!get_u64(j, "chunks-zero", &b->chunks_zero) ||
		 !get_u64(j, "chunks-read", &b->chunks_read) ||
		 !get_u64(j, "chunks-new", &b->chunks_new) ||
		 !get_u64(j, "bytes-read", &b->bytes_read) ||
		 !get_u64(j, "bytes-new", &b->bytes_new) ||
		 !get_u64(j, "bytes-stored", &b->bytes_stored))
		bad = "counters";
	else if (bkp_json_get(j, "chunks-replaced") &&   /* optional */
		 !get_u64(j, "chunks-replaced", &b->chunks_replaced))
		bad = "chunks-replaced";
	else if (!(v = bkp_json_get(j, "seconds")) || v->type != BKP_J_NUM)
		bad = "seconds";
	else if ((b->seconds = v->num),
		 !get_str(j, "index-sha256", b->index_sha256,
			  sizeof(b->index_sha256), false) ||
		 strlen(b->index_sha256) != 64)
		bad = "index-sha256";
	else if (!(ctk = bkp_json_get(j, "change-tracking")) ||
		 (ctk->type != BKP_J_NULL && ctk->type != BKP_J_OBJ))
		bad = "change-tracking";
	else if (ctk->type == BKP_J_OBJ &&
		 (!get_str(ctk, "generation", b->ctk_generation,
			   sizeof(b->ctk_generation), false) ||
		  strlen(b->ctk_generation) != 32 ||
		  !get_u64(ctk, "since", &ctk_u) || ctk_u == 0 || ctk_u > UINT32_MAX))
		bad = "change-tracking";
	else if (bkp_json_get(j, "snapshot") &&   /* optional */
		 (!get_str(j, "snapshot", b->snapshot, sizeof(b->snapshot), false) ||
		  !b->snapshot[0]))
		bad = "snapshot";
	else if (bkp_json_get(j, "group") &&   /* live backups only */
		 (!get_str(j, "group", b->group, sizeof(b->group), false) ||
		  !bkp_group_valid(b->group)))
		bad = "group";
	else if (b->group[0] && (!get_u64(j, "vm-lun", &u) || u > UINT32_MAX))
		bad = "vm-lun";
	else if (b->group[0] &&
		 !get_u64(j, "freeze-window-us", &b->freeze_window_us))
		bad = "freeze-window-us";
	else if (b->group[0])
		b->vm_lun = (uint32_t)u;
	if (bad) {
		snprintf(why, wl, "manifest damaged: field \"%s\" missing or invalid",
			 bad);
		return -EBADMSG;
	}
	b->time_nsec = (uint32_t)nsec;
	b->incremental = !strcmp(kind, "incremental");
	b->chunk_size = (uint32_t)cs;
	if (ctk->type == BKP_J_OBJ)
		b->ctk_since = (uint32_t)ctk_u;
	return 0;
}

/* The manifest text of backup id into b: 0, -EBADMSG (why), -ENOMEM. */
static int manifest_parse(const char *text, size_t len, const char *id,
			  struct bkp_info *b, char *why, size_t wl)
{
	char jwhy[160];
	struct bkp_json *j = bkp_json_parse(text, len, jwhy, sizeof(jwhy));
	int rc;

	if (!j) {
		snprintf(why, wl, "manifest damaged: %s", jwhy);
		return -EBADMSG;
	}
	rc = parse_manifest(j, b, why, wl);
	bkp_json_free(j);
	if (!rc && strcmp(b->id, id)) {
		snprintf(why, wl, "manifest damaged: it names backup %s", b->id);
		rc = -EBADMSG;
	}
	return rc;
}

int bkp_manifest_read_ex(const struct bkp_repo *r, const char *id,
			 uint64_t size, bool store_first, struct bkp_info *b,
			 char *why, size_t wl)
{
	char key[BKP_ID_MAX + 16], *text = NULL;
	struct bdev_err ge = { 0 };
	size_t len;
	int rc;

	/* The local copy first (cache.c), when there is one, has the size
	 * the store lists (a manifest replaced in the store is read again)
	 * and parses. */
	if (!store_first && bkp_cache_get(r, id, MANIFEST_MAX, &text, &len) == 0) {
		rc = size == UINT64_MAX || len == size
		     ? manifest_parse(text, len, id, b, why, wl) : -EBADMSG;
		free(text);
		if (rc != -EBADMSG)
			return rc;
		bkp_cache_drop(r, id);
	}
	snprintf(key, sizeof(key), "backups/%s.json", id);
	rc = bkp_os_get(r, key, MANIFEST_MAX, &text, &len, &ge);
	if (rc) {
		if (rc == -ENOENT)
			bkp_cache_drop(r, id);
		snprintf(why, wl, "manifest %s", rc == -ENOENT ? "missing"
			 : rc == -EFBIG ? "too large" : ge.msg);
		return rc == -ENOENT ? -ENOENT : -EBADMSG;
	}
	rc = manifest_parse(text, len, id, b, why, wl);
	if (!rc)
		bkp_cache_put(r, id, text, len);
	else
		bkp_cache_drop(r, id);
	free(text);
	return rc;
}

int bkp_manifest_read(const struct bkp_repo *r, const char *id,
		      struct bkp_info *b, char *why, size_t wl)
{
	return bkp_manifest_read_ex(r, id, UINT64_MAX, false, b, why, wl);
}

bool bkp_group_valid(const char *g)
{
	size_t n = strlen(g);

	if (n == 0 || n >= BKP_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((g[i] >= '0' && g[i] <= '9') || (g[i] >= 'a' && g[i] <= 'z') ||
		      (g[i] >= 'A' && g[i] <= 'Z') || g[i] == '-'))
			return false;
	return true;
}

int bkp_group_new(char group[BKP_ID_MAX])
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return bkp_id_new(t, group);
}

static int cmp_info(const void *a, const void *b)
{
	const struct bkp_info *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->time_nsec != y->time_nsec)
		return x->time_nsec < y->time_nsec ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Manifests read by several threads (object storage: one request each,
 * which on a distant store is a round trip each). */
struct list_job {
	struct bkp_repo *r;
	char **ids;
	const uint64_t *sizes;   /* listed sizes (NULL: unknown) */
	struct bkp_info *v;
	int *rc;
	struct bkp_damaged *why; /* NULL: not wanted */
	size_t cnt;
	size_t next;             /* atomic: the next id to read */
};

static void *list_worker(void *arg)
{
	struct list_job *j = arg;
	char why[256];

	for (;;) {
		size_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);

		if (i >= j->cnt)
			return NULL;
		j->rc[i] = bkp_manifest_read_ex(j->r, j->ids[i],
						j->sizes ? j->sizes[i] : UINT64_MAX, false,
						&j->v[i], j->why ? j->why[i].why : why,
						j->why ? sizeof(j->why[i].why) : sizeof(why));
	}
}

/* Reads the manifests of ids into v (rc[i]: 0 read and valid, else
 * bkp_manifest_read's error, with why[i] when why is not NULL): in this
 * thread for a folder, else also on up to 15 more (the repository's
 * threads at most; a listing, not a data transfer). */
static void read_manifests(struct bkp_repo *r, char **ids, const uint64_t *sizes,
			   size_t cnt, struct bkp_info *v, int *rc, struct bkp_damaged *why)
{
	struct list_job j = { .r = r, .ids = ids, .sizes = sizes, .v = v, .rc = rc,
			      .why = why, .cnt = cnt };
	pthread_t t[16];
	size_t nt = 0, want = r->os ? (size_t)bkp_repo_threads(r, 0) - 1 : 0;

	if (want > 16)
		want = 16;
	if (want > cnt / 4)	/* a few manifests: not worth a thread */
		want = cnt / 4;
	for (; nt < want; nt++)
		if (pthread_create(&t[nt], NULL, list_worker, &j))
			break;
	list_worker(&j);
	for (size_t i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
}

int bkp_list_checked(struct bkp_repo *r, struct bkp_info **out, size_t *n,
		     struct bkp_damaged **bad, size_t *nbad, size_t *nforgotten,
		     struct bdev_err *e)
{
	struct bkp_info *v;
	struct bkp_damaged *d = NULL;
	char **ids;
	uint64_t *sizes;
	int *rcs;
	size_t cnt, k = 0, kb = 0, nf;
	int rc = bkp_ids_sized(r, &ids, &sizes, &cnt, &nf, e);

	if (rc)
		return rc;
	v = calloc(cnt ? cnt : 1, sizeof(*v));
	rcs = calloc(cnt ? cnt : 1, sizeof(*rcs));
	if (bad)
		d = calloc(cnt ? cnt : 1, sizeof(*d));
	if (!v || !rcs || (bad && !d)) {
		free(v);
		free(rcs);
		free(d);
		free(sizes);
		bkp_ids_free(ids, cnt);
		return bdev_err_set(e, ENOMEM, "out of memory");
	}
	read_manifests(r, ids, sizes, cnt, v, rcs, d);
	free(sizes);
	for (size_t i = 0; i < cnt; i++) {
		if (rcs[i] == -ENOMEM) {
			free(v);
			free(rcs);
			free(d);
			bkp_ids_free(ids, cnt);
			return bdev_err_set(e, ENOMEM, "out of memory");
		}
		if (!rcs[i]) {
			if (k != i)
				v[k] = v[i];
			k++;
		} else if (d && rcs[i] != -ENOENT) {
			/* -ENOENT: removed meanwhile (prune), not damaged.
			 * The ids are sorted, so the damaged ones stay in
			 * ID order. */
			if (kb != i)
				d[kb] = d[i];
			snprintf(d[kb].id, sizeof(d[kb].id), "%s", ids[i]);
			kb++;
		}
	}
	free(rcs);
	bkp_cache_prune(r, ids, cnt);
	bkp_ids_free(ids, cnt);
	qsort(v, k, sizeof(*v), cmp_info);
	*out = v;
	*n = k;
	if (bad) {
		*bad = d;
		*nbad = kb;
	}
	if (nforgotten)
		*nforgotten = nf;
	return 0;
}

int bkp_list(struct bkp_repo *r, struct bkp_info **out, size_t *n,
	     struct bdev_err *e)
{
	return bkp_list_checked(r, out, n, NULL, NULL, NULL, e);
}

int bkp_find_newest(struct bkp_repo *r,
		    bool (*match)(void *opaque, const struct bkp_info *b),
		    void *opaque, struct bdev_err *e)
{
	char **ids;
	uint64_t *sizes;
	size_t cnt, end;
	int rc = bkp_ids_sized(r, &ids, &sizes, &cnt, NULL, e), found = 0;

	if (rc)
		return rc;
	/* IDs begin with their start time: newest first, a batch of
	 * manifests at a time (read in parallel), never splitting one second
	 * (a batch is ordered by the manifests' own times). */
	for (end = cnt; end > 0 && !found; ) {
		size_t start = end > 16 ? end - 16 : 0, k = 0;
		struct bkp_info *v;
		int *rcs;

		while (start > 0 && !strncmp(ids[start - 1], ids[start], 16))
			start--;
		v = calloc(end - start, sizeof(*v));
		rcs = calloc(end - start, sizeof(*rcs));
		if (!v || !rcs) {
			free(v);
			free(rcs);
			free(sizes);
			bkp_ids_free(ids, cnt);
			return bdev_err_set(e, ENOMEM, "out of memory");
		}
		read_manifests(r, ids + start, sizes + start, end - start, v, rcs, NULL);
		for (size_t i = 0; i < end - start; i++)
			if (!rcs[i])
				v[k++] = v[i];
		qsort(v, k, sizeof(*v), cmp_info);
		while (k-- > 0 && !found)
			found = match(opaque, &v[k]);
		free(v);
		free(rcs);
		end = start;
	}
	free(sizes);
	bkp_ids_free(ids, cnt);
	return found;
}

int bkp_list_forgotten(struct bkp_repo *r, struct bkp_forgotten_info **out,
		       size_t *n, struct bdev_err *e)
{
	struct bkp_forgotten_info *v;
	char **ids;
	size_t cnt;
	int rc = bkp_forgotten_ids(r, &ids, &cnt, e);

	if (rc)
		return rc;
	v = calloc(cnt ? cnt : 1, sizeof(*v));
	if (!v) {
		bkp_ids_free(ids, cnt);
		return bdev_err_set(e, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < cnt && !rc; i++) {
		char why[256];

		snprintf(v[i].b.id, sizeof(v[i].b.id), "%s", ids[i]);
		rc = bkp_forgotten(r, ids[i], &v[i].until);
		if (rc == 0)   /* unforgotten meanwhile: still listed */
			v[i].until = 0;
		else if (rc < 0)
			break;
		rc = bkp_manifest_read(r, ids[i], &v[i].b, why, sizeof(why));
		v[i].readable = rc == 0;
		if (rc == -ENOMEM)
			break;
		rc = 0;
		snprintf(v[i].b.id, sizeof(v[i].b.id), "%s", ids[i]);
	}
	if (rc) {
		free(v);
		bkp_ids_free(ids, cnt);
		return rc == -ENOMEM ? bdev_err_set(e, ENOMEM, "out of memory")
				     : bdev_err_set(e, -rc, "%s: cannot read the forgotten markers: %s",
						    r->path, strerror(-rc));
	}
	bkp_ids_free(ids, cnt);
	*out = v;
	*n = cnt;
	return 0;
}

int bkp_list_damaged(struct bkp_repo *r, struct bkp_damaged **out, size_t *n,
		     struct bdev_err *e)
{
	struct bkp_info *v;
	size_t nv;
	int rc = bkp_list_checked(r, &v, &nv, out, n, NULL, e);

	if (!rc)
		free(v);
	return rc;
}

static bool take_first(void *opaque, const struct bkp_info *b)
{
	*(struct bkp_info *)opaque = *b;
	return true;
}

int bkp_show(struct bkp_repo *r, const char *id, struct bkp_info *out,
	     struct bdev_err *e)
{
	char why[256];
	int rc;

	if (!strcmp(id, "latest")) {
		rc = bkp_find_newest(r, take_first, out, e);
		return rc < 0 ? rc : rc ? 0 : bdev_err_set(e, ENOENT, "%s: no backups", r->path);
	}
	if (!bkp_id_valid(id))
		return bdev_err_set(e, EINVAL,
			"'%s' is not a backup ID (like 20250101T120000Z-1a2b3c4d, or latest)",
			id);
	{
		int64_t until;

		rc = bkp_forgotten(r, id, &until);
		if (rc < 0)
			return bdev_err_set(e, -rc, "%s: backup %s: cannot tell whether it was forgotten: %s",
					    r->path, id, strerror(-rc));
		if (rc) {
			bkp_forgotten_why(until, why, sizeof(why));
			return bdev_err_set(e, ENOENT, "%s: no backup %s (%s)",
					    r->path, id, why);
		}
	}
	/* From the store, not a cached copy: a backup pruned or forgotten
	 * from another host is gone here too. */
	rc = bkp_manifest_read_ex(r, id, UINT64_MAX, true, out, why, sizeof(why));
	if (rc == -ENOENT)
		return bdev_err_set(e, ENOENT, "%s: no backup %s", r->path, id);
	if (rc)
		return bdev_err_set(e, -rc, "backup %s: %s", id, why);
	return 0;
}
