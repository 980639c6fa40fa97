/* vhdtool convert: any disk (raw file, block device, fixed, dynamic,
 * differencing chain) into a raw file, a fixed or a dynamic VHD.
 *
 * The output is built under a temporary name beside DST (".DST.tmp.PID.N"),
 * flushed, and renamed over DST, then the folder is synced: DST is either
 * absent (or the old file) or complete.  A killed convert can leave the
 * temporary file behind; it is never under DST's name.  The output is
 * sparse: zero ranges of the source are neither read (when its block status
 * says so) nor written.  An existing block device as DST (-O raw --force)
 * is written in place, zero ranges zeroed.  common/publish.c decides what
 * DST is: symlinks are followed, character devices and FIFOs refused, and
 * a replaced file keeps its owner and mode. */
#include "vhdtool.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/publish.h"
#include "common/util.h"
#include "rbd/rbd.h"
#include "vhd/vhd.h"

enum out_fmt { OUT_NONE, OUT_RAW, OUT_FIXED, OUT_DYNAMIC };

struct conv {
	const char *src_path, *dst_path;
	enum out_fmt fmt;
	uint32_t block_size;
	uint64_t align;
	bool progress, force, json;
	unsigned src_flags;        /* vt_open flags: -f FMT */
	struct bdev_copy_stats st; /* what the copy wrote */
};

static int run_convert(int argc, char **argv);
VHDTOOL_COMMAND(convert, .name = "convert",
	.usage = "convert [-f raw|vpc] [-O raw|fixed|dynamic] [--block-size N] [--fixed-align N] [-p|--progress] [--force] [--output=human|json] SRC DST",
	.summary = "copy any disk or chain (flattened) into a raw file or a fixed/dynamic VHD",
	.run = run_convert)

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcasecmp(s + n - m, suffix);
}

/* The output format from DST's name when -O is not given. */
static enum out_fmt guess_fmt(const char *dst)
{
	if (ends_with(dst, ".vhd") || ends_with(dst, ".avhd"))
		return OUT_DYNAMIC;
	if (rbd_is_name(dst) || ends_with(dst, ".raw") || ends_with(dst, ".img") ||
	    ends_with(dst, ".bin"))
		return OUT_RAW;
	return OUT_NONE;
}

/* True (and message printed) when DST is SRC or a layer of its chain:
 * replacing it would pull the data out from under the copy. */
static bool dst_in_chain(struct bdev *src, const char *src_path,
			 const struct stat *dst_st)
{
	struct vhd *v = vhd_of(src);
	struct stat st;

	if (!v)
		return stat(src_path, &st) == 0 && st.st_dev == dst_st->st_dev &&
		       st.st_ino == dst_st->st_ino;
	while (v) {
		struct bdev *p;

		if (stat(vhd_path(v), &st) == 0 && st.st_dev == dst_st->st_dev &&
		    st.st_ino == dst_st->st_ino)
			return true;
		p = vhd_parent(v);
		v = p ? vhd_of(p) : NULL;
	}
	return false;
}

/* A library message about the temporary file, without its name (the
 * message is printed under DST's name). */
static const char *tmp_msg(const struct publish *pub, const char *msg)
{
	size_t n = strlen(pub->tmp);

	return !strncmp(msg, pub->tmp, n) && !strncmp(msg + n, ": ", 2)
	       ? msg + n + 2 : msg;
}

/* Create the destination file under its temporary name and open it, with
 * the owner and mode of a file it replaces.  NULL on error (printed). */
static struct bdev *make_dst(const struct conv *cv, struct publish *pub,
			     uint64_t size)
{
	struct bdev_err e = { 0 };
	struct bdev *b = NULL;

	if (cv->fmt == OUT_RAW) {
		int fd = open(pub->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			      publish_mode(pub));

		if (fd < 0) {
			vt_err(cv->dst_path, "cannot create: %s", strerror(errno));
			return NULL;
		}
		if (ftruncate(fd, (off_t)size) < 0) {
			vt_err(cv->dst_path, "cannot set the size: %s", strerror(errno));
			close(fd);
			return NULL;
		}
		close(fd);
	} else {
		struct vhd_create_opts o = {
			.type = cv->fmt == OUT_FIXED ? VHD_TYPE_FIXED : VHD_TYPE_DYNAMIC,
			.size = size,
			.block_size = cv->block_size,
		};

		if (vhd_create(pub->tmp, &o, &e)) {
			vt_err(cv->dst_path, "%s", tmp_msg(pub, e.msg));
			return NULL;
		}
	}
	if (publish_adopt(pub, -1, &e)) {
		vt_err(NULL, "%s", e.msg);
		return NULL;
	}
	if (cv->fmt == OUT_RAW) {
		b = bdev_file_open(pub->tmp, 0, &e);
	} else {
		struct vhd_open_opts oo = { 0 };

		b = vhd_open(pub->tmp, &oo, &e);
	}
	if (!b)
		vt_err(cv->dst_path, "%s", tmp_msg(pub, e.msg));
	return b;
}

static int copy(struct conv *cv, struct bdev *src, struct bdev *dst,
		bool dst_zeroed)
{
	struct vt_progress p;
	struct bdev_copy_opts o = {
		.dst_zeroed = dst_zeroed,
		.progress = vt_progress_cb,
		.opaque = &p,
	};
	struct bdev_err e = { 0 };
	int r;

	vt_progress_init(&p, "converting", cv->progress);
	r = bdev_copy(src, dst, src->size, &o, &cv->st, &e);
	vt_progress_end(&p);
	if (r == -ECANCELED)
		vt_err(cv->dst_path, "interrupted; nothing was written under this name");
	else if (r)
		vt_err(NULL, "%s", e.msg);
	return r;
}

/* Raw output onto an existing block device, in place. */
static int to_device(struct conv *cv, const char *dev, struct bdev *src)
{
	struct bdev_err e = { 0 };
	struct bdev *dst = bdev_file_open(dev, 0, &e);
	int r;

	if (!dst) {
		vt_err(NULL, "%s", e.msg);
		return 1;
	}
	if (dst->size < src->size) {
		vt_err(cv->dst_path, "device holds %llu bytes; the disk needs %llu",
		       (unsigned long long)dst->size,
		       (unsigned long long)src->size);
		bdev_close(dst);
		return 1;
	}
	r = copy(cv, src, dst, false);
	bdev_close(dst);
	return r ? 1 : 0;
}

/* Raw output into a Ceph RBD image, created (or with --force replaced). */
static int to_rbd(struct conv *cv, struct bdev *src)
{
	struct bdev_err e = { 0 };
	struct bdev *dst = rbd_create_bdev(cv->dst_path, src->size, cv->force, &e);
	int r;

	if (!dst) {
		vt_err(NULL, "%s", e.msg);
		return 1;
	}
	r = copy(cv, src, dst, true);
	if (bdev_close(dst) && !r) {
		vt_err(cv->dst_path, "%s", bdev_last_error());
		r = 1;
	}
	return r ? 1 : 0;
}

static int convert(struct conv *cv, struct bdev *src)
{
	struct bdev_err e = { 0 };
	struct publish pub;
	struct stat dst_st;
	uint64_t size = src->size;
	struct bdev *dst;
	int r;

	if (rbd_is_name(cv->dst_path)) {
		if (cv->fmt != OUT_RAW) {
			vt_err(cv->dst_path, "an RBD image holds a raw disk: give -O raw");
			return 1;
		}
		return to_rbd(cv, src);
	}
	if (stat(cv->dst_path, &dst_st) == 0 &&
	    dst_in_chain(src, cv->src_path, &dst_st)) {
		vt_err(cv->dst_path, "is the source or part of its chain; choose another destination");
		return 1;
	}
	/* Symlinks followed; devices other than block devices refused. */
	if (publish_begin(&pub, cv->dst_path,
			  (cv->force ? PUBLISH_REPLACE : 0) |
			  (cv->fmt == OUT_RAW ? PUBLISH_DEVICE : 0), &e)) {
		vt_err(NULL, "%s", e.msg);
		publish_end(&pub);
		return 1;
	}
	if (pub.in_place) {
		r = to_device(cv, pub.target, src);
		publish_end(&pub);
		return r;
	}
	if (cv->fmt != OUT_RAW)
		size = util_align_up(size, 512);
	if (cv->align)
		size = util_align_up(size, cv->align);
	if (cv->fmt != OUT_RAW && size > VHD_MAX_SIZE) {
		vt_err(cv->src_path, "disk of %llu bytes is larger than the VHD limit of 2040 GiB",
		       (unsigned long long)size);
		publish_end(&pub);
		return 1;
	}
	dst = make_dst(cv, &pub, size);
	if (!dst) {
		publish_end(&pub);
		return 1;
	}
	r = copy(cv, src, dst, true);
	bdev_close(dst);
	if (!r) {
		r = publish_commit(&pub, -1, &e);
		if (r)
			vt_err(NULL, "%s", e.msg);
	}
	publish_end(&pub);
	return r ? 1 : 0;
}

static void print_json(const struct conv *cv, struct bdev *src)
{
	static const char *const names[] = { "", "raw", "fixed", "dynamic" };
	struct json j;

	json_begin(&j, stdout);
	json_obj(&j);
	json_kv_str(&j, "source", cv->src_path);
	json_kv_str(&j, "source-format", vhd_of(src) ? "vhd" : "raw");
	json_kv_str(&j, "destination", cv->dst_path);
	json_kv_str(&j, "output-format", names[cv->fmt]);
	json_kv_u64(&j, "virtual-size", src->size);
	json_kv_u64(&j, "data-bytes", cv->st.data_bytes);
	json_kv_u64(&j, "zero-bytes", cv->st.zero_bytes);
	json_end_obj(&j);
	json_finish(&j);
}

static int run_convert(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "output-format", required_argument, NULL, 'O' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "fixed-align", required_argument, NULL, 'a' },
		{ "progress", no_argument, NULL, 'p' },
		{ "force", no_argument, NULL, 'F' },
		VT_FORMAT_LONGOPT,
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	struct conv cv = { .fmt = OUT_NONE };
	struct bdev *src;
	uint64_t v;
	int c, rc;

	optind = 1;
	/* -f is the source format, as in qemu-img; force is --force only. */
	while ((c = getopt_long(argc, argv, "O:pf:", lo, NULL)) != -1) {
		switch (c) {
		case 'O':
			if (!strcmp(optarg, "raw"))
				cv.fmt = OUT_RAW;
			else if (!strcmp(optarg, "fixed"))
				cv.fmt = OUT_FIXED;
			else if (!strcmp(optarg, "dynamic") || !strcmp(optarg, "vhd"))
				cv.fmt = OUT_DYNAMIC;
			else {
				vt_err(NULL, "unknown output format '%s' (raw, fixed or dynamic)",
				       optarg);
				return 2;
			}
			break;
		case 'b':
			if (!vt_parse_size("block size", optarg, &v))
				return 2;
			if (v > UINT32_MAX || !util_is_pow2(v) || v < (512u << 10) ||
			    v > (256u << 20)) {
				vt_err(NULL, "block size '%s' is not a power of two from 512K to 256M",
				       optarg);
				return 2;
			}
			cv.block_size = (uint32_t)v;
			break;
		case 'a':
			if (!vt_parse_size("alignment", optarg, &v))
				return 2;
			if (v == 0 || v % 512 || v > (1ull << 30)) {
				vt_err(NULL, "alignment '%s' is not a multiple of 512 up to 1G",
				       optarg);
				return 2;
			}
			cv.align = v;
			break;
		case 'p':
			cv.progress = true;
			break;
		case 'F':
			cv.force = true;
			break;
		default:
			rc = vt_shared_opt(c, optarg, &cv.src_flags, &cv.json);
			if (rc <= 0)
				return rc < 0 ? VT_EXIT_USAGE : vt_usage(&convert_cmd);
		}
	}
	if (argc - optind != 2)
		return vt_usage(&convert_cmd);
	cv.src_path = argv[optind];
	cv.dst_path = argv[optind + 1];
	if (cv.fmt == OUT_NONE)
		cv.fmt = guess_fmt(cv.dst_path);
	if (cv.fmt == OUT_NONE) {
		vt_err(cv.dst_path, "cannot tell the output format from the name: give -O raw, fixed or dynamic");
		return 2;
	}
	if (cv.block_size && cv.fmt != OUT_DYNAMIC) {
		vt_err(NULL, "--block-size applies to -O dynamic only");
		return 2;
	}
	src = vt_open(cv.src_path, VT_OPEN_RDONLY | VT_OPEN_RAW_OK | cv.src_flags);
	if (!src)
		return VT_EXIT_FAIL;
	vt_catch_signals();
	rc = convert(&cv, src);
	if (rc == 0 && cv.json)
		print_json(&cv, src);
	bdev_close(src);
	return rc;
}
