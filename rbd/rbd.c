/* The Ceph RBD back-end: see rbd.h.
 *
 * Requests go to librbd's rbd_aio_* calls; librbd runs the completion
 * callbacks on its own threads, which finish the bdev request.  FUA writes
 * take the synchronous path (write, then flush).  Block status asks
 * rbd_diff_iterate2 about a window of BS_WINDOW bytes at a time (whole
 * objects) and answers from that list until something is written. */
#include "rbd.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <rados/librados.h>
#include <rbd/librbd.h>

#define BS_WINDOW (1ull << 30)      /* block status: bytes asked at once */
#define RBD_MOUNT_TIMEOUT "30"      /* seconds librados waits for the mons */

/* Extents rbd_diff_iterate2 reports, in the order it reports them. */
struct ext_list {
	struct rbd_extent *v;
	size_t n, cap;
	int err;
};

struct rbd_bdev {
	struct bdev b;                  /* must be first */
	rados_t cluster;
	rados_ioctx_t io;
	rbd_image_t img;
	atomic_uint gen;                /* bumped by every change */
	pthread_mutex_t cmu;            /* the block-status cache below */
	unsigned c_gen;
	uint64_t c_start, c_end;        /* window cached; empty when equal */
	struct ext_list x;              /* data extents in it, sorted */
};

static struct rbd_bdev *RB(struct bdev *b)
{
	return (struct rbd_bdev *)b;
}

bool rbd_is_name(const char *name)
{
	return !strncmp(name, "rbd:", 4);
}

int rbd_parse(const char *name, struct rbd_spec *s, struct bdev_err *e)
{
	char *p, *opt, *at;

	memset(s, 0, sizeof(*s));
	if (!rbd_is_name(name))
		return bdev_err_set(e, EINVAL, "%s: not an rbd: name", name);
	if (strlen(name + 4) >= sizeof(s->buf))
		return bdev_err_set(e, EINVAL, "rbd: name too long (%zu bytes, at most %zu)",
				    strlen(name), sizeof(s->buf) + 3);
	strcpy(s->buf, name + 4);
	opt = strchr(s->buf, ':');
	if (opt)
		*opt++ = '\0';
	p = strchr(s->buf, '/');
	if (!p || p == s->buf || !p[1])
		return bdev_err_set(e, EINVAL, "%s: expected rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:conf=PATH]", name);
	*p++ = '\0';
	s->pool = s->buf;
	s->image = p;
	at = strchr(p, '@');
	if (at) {
		*at++ = '\0';
		if (!*at || !*p)
			return bdev_err_set(e, EINVAL, "%s: empty image or snapshot name", name);
		s->snap = at;
	}
	/* POOL/NAMESPACE/IMAGE, as qemu spells a namespace. */
	at = strchr(s->image, '/');
	if (at) {
		*at++ = '\0';
		if (!*at || !*s->image || strchr(at, '/'))
			return bdev_err_set(e, EINVAL, "%s: expected rbd:POOL[/NAMESPACE]/IMAGE", name);
		s->ns = s->image;
		s->image = at;
	}
	while (opt && *opt) {
		char *next = strchr(opt, ':');

		if (next)
			*next++ = '\0';
		if (!strncmp(opt, "conf=", 5) && opt[5])
			s->conf = opt + 5;
		else if (!strncmp(opt, "id=", 3) && opt[3])
			s->id = opt + 3;
		else
			return bdev_err_set(e, EINVAL, "%s: unknown option '%s' (conf=PATH or id=USER)", name, opt);
		opt = next;
	}
	return 0;
}

/* ---- block status ---- */

static int diff_cb(uint64_t off, size_t len, int exists, void *arg)
{
	struct ext_list *l = arg;

	(void)exists;   /* a difference either way; holes are "not exists" */
	if (!len)
		return 0;
	if (l->n && l->v[l->n - 1].off + l->v[l->n - 1].len == off) {
		l->v[l->n - 1].len += len;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct rbd_extent *x = realloc(l->v, cap * sizeof(*x));

		if (!x) {
			l->err = -ENOMEM;
			return -ENOMEM;
		}
		l->v = x;
		l->cap = cap;
	}
	l->v[l->n++] = (struct rbd_extent){ off, len };
	return 0;
}

/* Data only: block status skips what does not exist. */
static int data_cb(uint64_t off, size_t len, int exists, void *arg)
{
	return exists ? diff_cb(off, len, exists, arg) : 0;
}

static int cmp_ext(const void *a, const void *b)
{
	const struct rbd_extent *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Sort l and merge overlapping and touching extents. */
static void ext_sort(struct ext_list *l)
{
	size_t w = 0;

	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_ext);
	for (size_t i = 0; i < l->n; i++) {
		if (w && l->v[w - 1].off + l->v[w - 1].len >= l->v[i].off) {
			uint64_t e = l->v[i].off + l->v[i].len;

			if (e > l->v[w - 1].off + l->v[w - 1].len)
				l->v[w - 1].len = e - l->v[w - 1].off;
		} else {
			l->v[w++] = l->v[i];
		}
	}
	l->n = w;
}

/* Fill the cache with the window starting at off (cmu held). */
static int bs_query(struct rbd_bdev *r, uint64_t off)
{
	uint64_t end = off + BS_WINDOW < r->b.size ? off + BS_WINDOW : r->b.size;
	unsigned gen = atomic_load(&r->gen);
	int rc;

	r->x.n = 0;
	r->x.err = 0;
	r->c_start = r->c_end = 0;
	rc = rbd_diff_iterate2(r->img, NULL, off, end - off, 1, 1, data_cb, &r->x);
	if (r->x.err)
		rc = r->x.err;
	if (rc < 0)
		return bdev_set_error(&r->b, -rc, "block status at offset %llu failed: %s",
				      (unsigned long long)off, strerror(-rc));
	ext_sort(&r->x);
	r->c_start = off;
	r->c_end = end;
	r->c_gen = gen;
	return 0;
}

static int rbd_block_status(struct bdev *b, uint64_t off, uint64_t len,
			    struct bdev_status *st)
{
	struct rbd_bdev *r = RB(b);
	uint64_t end;
	size_t lo = 0, hi;
	int rc = 0;

	pthread_mutex_lock(&r->cmu);
	if (off < r->c_start || off >= r->c_end ||
	    r->c_gen != atomic_load(&r->gen))
		rc = bs_query(r, off);
	if (rc) {
		pthread_mutex_unlock(&r->cmu);
		return rc;
	}
	end = off + len < r->c_end ? off + len : r->c_end;
	/* The first extent ending after off. */
	hi = r->x.n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->x.v[mid].off + r->x.v[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	st->depth = 0;
	if (lo < r->x.n && r->x.v[lo].off <= off) {
		uint64_t e = r->x.v[lo].off + r->x.v[lo].len;

		st->flags = BDEV_ST_ALLOC | BDEV_ST_DATA;
		st->length = (e < end ? e : end) - off;
	} else {
		uint64_t e = lo < r->x.n ? r->x.v[lo].off : end;

		st->flags = BDEV_ST_ALLOC | BDEV_ST_ZERO;
		st->length = (e < end ? e : end) - off;
	}
	pthread_mutex_unlock(&r->cmu);
	return 0;
}

/* ---- synchronous operations ---- */

static void changed(struct rbd_bdev *r)
{
	atomic_fetch_add(&r->gen, 1);
}

static int fail(struct bdev *b, int rc, const char *what, uint64_t off)
{
	return bdev_set_error(b, -rc, "%s at offset %llu failed: %s", what,
			      (unsigned long long)off, strerror(-rc));
}

static int rbd_read_sync(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	ssize_t n = rbd_read2(RB(b)->img, off, len, buf, 0);

	if (n < 0)
		return fail(b, (int)n, "read", off);
	if ((size_t)n < len)     /* past the end of a shrunk image */
		memset((char *)buf + n, 0, len - (size_t)n);
	return 0;
}

static int rbd_flush_sync(struct bdev *b)
{
	int rc = rbd_flush(RB(b)->img);

	return rc < 0 ? bdev_set_error(b, -rc, "flush failed: %s", strerror(-rc)) : 0;
}

static int rbd_write_sync(struct bdev *b, const void *buf, uint64_t off,
			  size_t len, unsigned flags)
{
	ssize_t n = rbd_write2(RB(b)->img, off, len, buf, 0);

	changed(RB(b));
	if (n < 0)
		return fail(b, (int)n, "write", off);
	if ((size_t)n != len)
		return fail(b, -EIO, "short write", off);
	return (flags & BDEV_FUA) ? rbd_flush_sync(b) : 0;
}

static int rbd_discard_sync(struct bdev *b, uint64_t off, uint64_t len)
{
	int rc = rbd_discard(RB(b)->img, off, len);

	changed(RB(b));
	return rc < 0 ? fail(b, rc, "discard", off) : 0;
}

static int rbd_write_zeroes_sync(struct bdev *b, uint64_t off, uint64_t len,
				 unsigned flags)
{
	ssize_t n = rbd_write_zeroes(RB(b)->img, off, len, 0, 0);

	changed(RB(b));
	if (n < 0)
		return fail(b, (int)n, "write zeroes", off);
	return (flags & BDEV_FUA) ? rbd_flush_sync(b) : 0;
}

/* ---- asynchronous requests ---- */

static void aio_done(rbd_completion_t c, void *arg)
{
	struct bdev_req *rq = arg;
	ssize_t n = rbd_aio_get_return_value(c);

	rbd_aio_release(c);
	if (rq->op != BDEV_OP_READ && rq->op != BDEV_OP_FLUSH)
		changed(RB(rq->bd));
	if (n >= 0 && rq->op == BDEV_OP_READ && (uint64_t)n < rq->len) {
		/* Short read (image shrunk under us): the rest reads as zeros. */
		uint64_t skip = (uint64_t)n;

		for (int i = 0; i < rq->iovcnt; i++) {
			size_t l = rq->iov[i].iov_len;

			if (skip >= l) {
				skip -= l;
				continue;
			}
			memset((char *)rq->iov[i].iov_base + skip, 0, l - skip);
			skip = 0;
		}
	}
	bdev_req_complete(rq, n < 0 ? (int)n : 0);
}

static int rbd_submit(struct bdev *b, struct bdev_req *rq)
{
	rbd_image_t img = RB(b)->img;
	rbd_completion_t c;
	int rc;

	if (rq->flags & BDEV_FUA)
		return -ENOTSUP;          /* write + flush, synchronously */
	if ((rq->op == BDEV_OP_READ || rq->op == BDEV_OP_WRITE) &&
	    rq->iovcnt > IOV_MAX)
		return -ENOTSUP;
	rc = rbd_aio_create_completion(rq, aio_done, &c);
	if (rc < 0)
		return -ENOTSUP;
	switch (rq->op) {
	case BDEV_OP_READ:
		rc = rbd_aio_readv(img, rq->iov, rq->iovcnt, rq->off, c);
		break;
	case BDEV_OP_WRITE:
		rc = rbd_aio_writev(img, rq->iov, rq->iovcnt, rq->off, c);
		break;
	case BDEV_OP_FLUSH:
		rc = rbd_aio_flush(img, c);
		break;
	case BDEV_OP_DISCARD:
		rc = rbd_aio_discard(img, rq->off, rq->len, c);
		break;
	case BDEV_OP_WRITE_ZEROES:
		rc = rbd_aio_write_zeroes(img, rq->off, rq->len, c, 0, 0);
		break;
	default:
		rc = -ENOTSUP;
	}
	if (rc < 0) {
		/* Not queued: the callback will not run. */
		rbd_aio_release(c);
		return -ENOTSUP;
	}
	return 0;
}

/* ---- open and close ---- */

static void disconnect(rados_t cl, rados_ioctx_t io, rbd_image_t img)
{
	if (img)
		rbd_close(img);
	if (io)
		rados_ioctx_destroy(io);
	if (cl)
		rados_shutdown(cl);
}

static void rbd_close_bdev(struct bdev *b)
{
	struct rbd_bdev *r = RB(b);

	disconnect(r->cluster, r->io, r->img);
	pthread_mutex_destroy(&r->cmu);
	free(r->x.v);
	bdev_fini(b);
	free(r);
}

static const struct bdev_ops rbd_ops = {
	.kind = "rbd",
	.read = rbd_read_sync,
	.write = rbd_write_sync,
	.flush = rbd_flush_sync,
	.discard = rbd_discard_sync,
	.write_zeroes = rbd_write_zeroes_sync,
	.block_status = rbd_block_status,
	.close = rbd_close_bdev,
	.submit = rbd_submit,
};

/* Connect to the cluster and open the pool. */
static int connect_pool(const char *name, const struct rbd_spec *s,
			rados_t *cl, rados_ioctx_t *io, struct bdev_err *e)
{
	int rc;

	*cl = NULL;
	*io = NULL;
	rc = rados_create(cl, s->id);
	if (rc < 0) {
		*cl = NULL;
		return bdev_err_set(e, -rc, "%s: cannot create a RADOS handle: %s", name, strerror(-rc));
	}
	rc = rados_conf_read_file(*cl, s->conf);
	if (rc < 0) {
		bdev_err_set(e, -rc, "%s: cannot read the Ceph configuration %s: %s", name,
			     s->conf ? s->conf : "(CEPH_CONF or /etc/ceph/ceph.conf)",
			     strerror(-rc));
		goto fail;
	}
	(void)rados_conf_set(*cl, "client_mount_timeout", RBD_MOUNT_TIMEOUT);
	rc = rados_connect(*cl);
	if (rc < 0) {
		bdev_err_set(e, -rc, "%s: cannot connect to the Ceph cluster: %s", name, strerror(-rc));
		goto fail;
	}
	rc = rados_ioctx_create(*cl, s->pool, io);
	if (rc < 0) {
		*io = NULL;
		bdev_err_set(e, -rc, "%s: cannot open pool '%s': %s", name, s->pool, strerror(-rc));
		goto fail;
	}
	if (s->ns)
		rados_ioctx_set_namespace(*io, s->ns);
	return 0;
fail:
	disconnect(*cl, NULL, NULL);
	*cl = NULL;
	return rc;
}

static void make_ident(struct rbd_bdev *r, const struct rbd_spec *s)
{
	char key[512], id[128] = "";
	uint8_t d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	/* The image id stays the same across renames; a pool's name and the
	 * id together name one image in the cluster. */
	if (rbd_get_id(r->img, id, sizeof(id)) < 0)
		snprintf(id, sizeof(id), "%s", s->image);
	snprintf(key, sizeof(key), "rbd:%s/%s%s%s", s->pool, s->ns ? s->ns : "",
		 s->ns ? "/" : "", id);
	if (EVP_Digest(key, strlen(key), d, &n, EVP_sha256(), NULL) && n >= 16)
		memcpy(r->b.ident.id, d, 16);
	snprintf(r->b.ident.serial, sizeof(r->b.ident.serial), "rbd-%s", id);
}

static struct bdev *open_image(const char *name, const struct rbd_spec *s,
			       bool ro, struct bdev_err *e)
{
	rados_t cl;
	rados_ioctx_t io;
	rbd_image_t img = NULL;
	rbd_image_info_t info;
	struct rbd_bdev *r;
	int rc;

	if (connect_pool(name, s, &cl, &io, e))
		return NULL;
	rc = ro ? rbd_open_read_only(io, s->image, &img, s->snap) :
		  rbd_open(io, s->image, &img, s->snap);
	if (rc < 0) {
		img = NULL;
		bdev_err_set(e, -rc, "%s: cannot open image '%s'%s%s in pool '%s': %s", name,
			     s->image, s->snap ? " at snapshot " : "", s->snap ? s->snap : "",
			     s->pool, strerror(-rc));
		goto fail;
	}
	rc = rbd_stat(img, &info, sizeof(info));
	if (rc < 0) {
		bdev_err_set(e, -rc, "%s: cannot stat the image: %s", name, strerror(-rc));
		goto fail;
	}
	r = calloc(1, sizeof(*r));
	if (!r || bdev_init(&r->b, &rbd_ops, name, info.size, 512, ro)) {
		free(r);
		bdev_err_set(e, ENOMEM, "%s: out of memory", name);
		goto fail;
	}
	r->cluster = cl;
	r->io = io;
	r->img = img;
	pthread_mutex_init(&r->cmu, NULL);
	r->b.limits.physical_block = 4096;
	r->b.limits.opt_transfer = info.obj_size <= UINT32_MAX ? (uint32_t)info.obj_size : 0;
	/* librbd skips discards of partial objects below its discard
	 * granularity (64 KiB by default): they need not read as zeros. */
	r->b.limits.unmap_granularity = 64 * 1024;
	r->b.limits.unmap_zeroes = false;
	make_ident(r, s);
	return &r->b;
fail:
	disconnect(cl, io, img);
	return NULL;
}

struct bdev *rbd_open_bdev(const char *name, unsigned flags,
			   struct bdev_err *e)
{
	struct rbd_spec s;

	if (rbd_parse(name, &s, e))
		return NULL;
	return open_image(name, &s, (flags & RBD_OPEN_RDONLY) || s.snap, e);
}

struct bdev *rbd_create_bdev(const char *name, uint64_t size, bool replace,
			     struct bdev_err *e)
{
	struct rbd_spec s;
	rados_t cl;
	rados_ioctx_t io;
	int order = 0, rc;

	if (rbd_parse(name, &s, e))
		return NULL;
	if (s.snap) {
		bdev_err_set(e, EINVAL, "%s: a snapshot cannot be written", name);
		return NULL;
	}
	if (connect_pool(name, &s, &cl, &io, e))
		return NULL;
	rc = rbd_create(io, s.image, size, &order);
	if (rc == -EEXIST && replace) {
		rc = rbd_remove(io, s.image);
		if (rc < 0) {
			bdev_err_set(e, -rc, "%s: cannot remove the existing image: %s", name,
				     rc == -ENOTEMPTY ? "it has snapshots" : strerror(-rc));
			goto fail;
		}
		rc = rbd_create(io, s.image, size, &order);
	}
	if (rc < 0) {
		bdev_err_set(e, -rc, "%s: cannot create image '%s' in pool '%s': %s%s", name,
			     s.image, s.pool, strerror(-rc),
			     rc == -EEXIST ? " (give --force to replace it)" : "");
		goto fail;
	}
	disconnect(cl, io, NULL);
	return open_image(name, &s, false, e);
fail:
	disconnect(cl, io, NULL);
	return NULL;
}

/* ---- snapshots and differences ---- */

bool rbd_bdev_is(const struct bdev *b)
{
	return b->ops == &rbd_ops;
}

/* A handle of b's image of its own, writable at the head or read-only at
 * snap: b's own may be read-only or opened at a snapshot. */
static int other_handle(struct bdev *b, const char *snap, rbd_image_t *img,
			struct rbd_spec *s, struct bdev_err *e)
{
	int rc;

	if (rbd_parse(b->name, s, e))
		return -EINVAL;
	rc = snap ? rbd_open_read_only(RB(b)->io, s->image, img, snap) :
		    rbd_open(RB(b)->io, s->image, img, NULL);
	if (rc < 0)
		return bdev_err_set(e, -rc, "%s: cannot open image '%s'%s%s: %s", b->name,
				    s->image, snap ? " at snapshot " : "",
				    snap ? snap : "", strerror(-rc));
	return 0;
}

/* Create (create) or remove a snapshot of b's image. */
static int snap_op(struct bdev *b, const char *snap, bool create,
		   struct bdev_err *e)
{
	struct rbd_spec s;
	rbd_image_t img;
	int rc = other_handle(b, NULL, &img, &s, e);

	if (rc)
		return rc;
	rc = create ? rbd_snap_create(img, snap) : rbd_snap_remove(img, snap);
	rbd_close(img);
	if (rc < 0)
		return bdev_err_set(e, -rc, "%s: cannot %s snapshot '%s': %s", b->name,
				    create ? "create" : "remove", snap, strerror(-rc));
	return 0;
}

int rbd_bdev_snap_create(struct bdev *b, const char *snap, struct bdev_err *e)
{
	return snap_op(b, snap, true, e);
}

int rbd_bdev_snap_remove(struct bdev *b, const char *snap, struct bdev_err *e)
{
	return snap_op(b, snap, false, e);
}

int rbd_bdev_snap_list(struct bdev *b, const char *prefix, char ***names,
		       size_t *n, struct bdev_err *e)
{
	struct rbd_spec s;
	rbd_snap_info_t *v = NULL;
	rbd_image_t img;
	int max = 16, cnt, rc = other_handle(b, NULL, &img, &s, e);
	size_t k = 0, bytes = 0;
	char **out, *p;

	*names = NULL;
	*n = 0;
	if (rc)
		return rc;
	for (int tries = 0; ; tries++) {   /* max grows to what is needed */
		free(v);
		v = calloc((size_t)max, sizeof(*v));
		if (!v) {
			rbd_close(img);
			return bdev_err_set(e, ENOMEM, "out of memory");
		}
		cnt = rbd_snap_list(img, v, &max);
		if (cnt != -ERANGE || tries == 8)
			break;
	}
	rbd_close(img);
	if (cnt < 0) {
		free(v);
		return bdev_err_set(e, -cnt, "%s: cannot list snapshots: %s", b->name,
				    strerror(-cnt));
	}
	for (int i = 0; i < cnt; i++)
		if (!strncmp(v[i].name, prefix, strlen(prefix)))
			bytes += sizeof(char *) + strlen(v[i].name) + 1;
	out = malloc(bytes ? bytes : 1);
	if (!out) {
		rbd_snap_list_end(v);
		free(v);
		return bdev_err_set(e, ENOMEM, "out of memory");
	}
	p = (char *)out;
	for (int i = 0; i < cnt; i++)
		if (!strncmp(v[i].name, prefix, strlen(prefix)))
			p += sizeof(char *);
	for (int i = 0; i < cnt; i++) {
		if (strncmp(v[i].name, prefix, strlen(prefix)))
			continue;
		out[k++] = strcpy(p, v[i].name);
		p += strlen(p) + 1;
	}
	rbd_snap_list_end(v);
	free(v);
	*names = out;
	*n = k;
	return 0;
}

struct bdev *rbd_bdev_snap_open(struct bdev *b, const char *snap,
				struct bdev_err *e)
{
	struct rbd_spec s;
	char name[sizeof(s.buf) + 64];

	if (rbd_parse(b->name, &s, e))
		return NULL;
	if ((size_t)snprintf(name, sizeof(name), "rbd:%s/%s%s%s@%s%s%s%s%s", s.pool,
			     s.ns ? s.ns : "", s.ns ? "/" : "", s.image, snap,
			     s.conf ? ":conf=" : "", s.conf ? s.conf : "",
			     s.id ? ":id=" : "", s.id ? s.id : "") >= sizeof(name)) {
		bdev_err_set(e, EINVAL, "%s: name too long with snapshot %s", b->name, snap);
		return NULL;
	}
	return rbd_open_bdev(name, RBD_OPEN_RDONLY, e);
}

/* ---- Claims: which backup snapshots a live process still reads ----
 * A claim is a small RADOS object "vhdstack_bkp_claim.IMAGEID.SNAP" beside
 * the image header holding the claimer's RADOS instance id, plus a
 * read-write handle of the image kept open for as long as the claim is
 * held: librbd registers a watch on the header for it, so the claimer
 * shows among the image's watchers while it lives, and drops out of them
 * within the OSD's watch timeout when it is killed. */
struct rbd_claim {
	rbd_image_t img;
	rados_ioctx_t io;
	char obj[320];
};

static int claim_name(struct bdev *b, rbd_image_t img, const char *snap,
		      char *out, size_t n, struct bdev_err *e)
{
	char id[128];
	int rc = rbd_get_id(img, id, sizeof(id));

	if (rc < 0)
		return bdev_err_set(e, -rc, "%s: cannot read the image id: %s", b->name,
				    strerror(-rc));
	if ((size_t)snprintf(out, n, "vhdstack_bkp_claim.%s.%s", id, snap) >= n)
		return bdev_err_set(e, ENAMETOOLONG, "%s: snapshot name too long: %s",
				    b->name, snap);
	return 0;
}

struct rbd_claim *rbd_bdev_snap_claim(struct bdev *b, const char *snap,
				      struct bdev_err *e)
{
	struct rbd_claim *c = calloc(1, sizeof(*c));
	struct rbd_spec s;
	char gid[32];
	int rc;

	if (!c) {
		bdev_err_set(e, ENOMEM, "out of memory");
		return NULL;
	}
	c->io = RB(b)->io;
	if (other_handle(b, NULL, &c->img, &s, e)) {
		free(c);
		return NULL;
	}
	rc = claim_name(b, c->img, snap, c->obj, sizeof(c->obj), e);
	if (!rc) {
		snprintf(gid, sizeof(gid), "%llu\n",
			 (unsigned long long)rados_get_instance_id(RB(b)->cluster));
		rc = rados_write_full(c->io, c->obj, gid, strlen(gid));
		if (rc < 0)
			rc = bdev_err_set(e, -rc, "%s: cannot write %s: %s", b->name, c->obj,
					  strerror(-rc));
	}
	if (rc) {
		rbd_close(c->img);
		free(c);
		return NULL;
	}
	return c;
}

void rbd_bdev_snap_unclaim(struct rbd_claim *c)
{
	if (!c)
		return;
	(void)rados_remove(c->io, c->obj);
	rbd_close(c->img);
	free(c);
}

int rbd_bdev_snap_claimed(struct bdev *b, const char *snap, struct bdev_err *e)
{
	rbd_image_watcher_t w[64];
	size_t nw = sizeof(w) / sizeof(w[0]);
	char obj[320], buf[32];
	unsigned long long gid;
	struct rbd_spec s;
	rbd_image_t img;
	int rc = other_handle(b, NULL, &img, &s, e), live = 0, n;

	if (rc)
		return rc;
	rc = claim_name(b, img, snap, obj, sizeof(obj), e);
	if (rc)
		goto out;
	n = rados_read(RB(b)->io, obj, buf, sizeof(buf) - 1, 0);
	if (n == -ENOENT)
		goto out;                       /* never claimed, or released */
	if (n < 0) {
		rc = bdev_err_set(e, -n, "%s: cannot read %s: %s", b->name, obj, strerror(-n));
		goto out;
	}
	buf[n] = '\0';
	if (sscanf(buf, "%llu", &gid) != 1) {
		(void)rados_remove(RB(b)->io, obj);   /* not ours to read: stale */
		goto out;
	}
	rc = rbd_watchers_list(img, w, &nw);
	if (rc == -ERANGE) {
		rc = 0;                         /* too many to list: keep it */
		live = 1;
		goto out;
	}
	if (rc < 0) {
		rc = bdev_err_set(e, -rc, "%s: cannot list the image's watchers: %s",
				  b->name, strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < nw; i++)
		live |= (unsigned long long)w[i].id == gid;
	rbd_watchers_list_cleanup(w, nw);
	rc = 0;
	if (!live)
		(void)rados_remove(RB(b)->io, obj);   /* its holder is gone */
out:
	rbd_close(img);
	return rc ? rc : live;
}

/* Whether img's object map (at the snapshot it is opened at) can be
 * trusted: 0 yes, 1 no (why filled), -errno. */
static int map_valid(rbd_image_t img, const char *what, bool *fast,
		     char *why, size_t wl)
{
	uint64_t features = 0, flags = 0;
	int rc = rbd_get_features(img, &features);

	if (!rc)
		rc = rbd_get_flags(img, &flags);
	if (rc < 0)
		return rc;
	*fast = (features & RBD_FEATURE_FAST_DIFF) != 0;
	if (*fast && (flags & (RBD_FLAG_OBJECT_MAP_INVALID | RBD_FLAG_FAST_DIFF_INVALID))) {
		snprintf(why, wl, "the object map of %s is flagged invalid (rbd object-map rebuild repairs it)",
			 what);
		return 1;
	}
	return 0;
}

int rbd_bdev_diff(struct bdev *b, const char *from, struct rbd_extent **ext,
		  size_t *n, char *why, size_t wl, struct bdev_err *e)
{
	struct rbd_bdev *r = RB(b);
	struct ext_list l = { 0 };
	struct rbd_spec s;
	rbd_image_t old;
	bool exists = false, fast_new, fast_old;
	char what[300];
	int rc;

	*ext = NULL;
	*n = 0;
	rc = rbd_snap_exists(r->img, from, &exists);
	if (rc < 0)
		return bdev_err_set(e, -rc, "%s: cannot look up snapshot '%s': %s",
				    b->name, from, strerror(-rc));
	if (!exists) {
		snprintf(why, wl, "the snapshot of the previous backup (%s) is gone", from);
		return 1;
	}
	rc = other_handle(b, from, &old, &s, e);
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "snapshot %s", from);
	rc = map_valid(old, what, &fast_old, why, wl);
	rbd_close(old);
	if (!rc)
		rc = map_valid(r->img, s.snap ? "the new snapshot" : "the image",
			       &fast_new, why, wl);
	if (rc < 0)
		return bdev_err_set(e, -rc, "%s: cannot read the image's flags: %s",
				    b->name, strerror(-rc));
	if (rc)
		return 1;
	rc = rbd_diff_iterate2(r->img, from, 0, b->size, 1, fast_old && fast_new,
			       diff_cb, &l);
	if (l.err)
		rc = l.err;
	if (rc < 0) {
		free(l.v);
		return bdev_err_set(e, -rc, "%s: differences since snapshot '%s' failed: %s",
				    b->name, from, strerror(-rc));
	}
	ext_sort(&l);
	*ext = l.v;
	*n = l.n;
	return 0;
}
