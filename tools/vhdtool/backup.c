/* vhdtool backup: the front end of backup/ (bkp.h).
 *
 *   backup init [--chunk-size N] [--object-lock DAYS] REPO
 *   backup create [-f raw|vpc] [--full] [--no-track] [-p] [--threads N] REPO SOURCE
 *
 * Every subcommand that reports takes --output=human|json (--json): one
 * JSON object (an array for list and prune) on stdout, written by
 * common/json.c; the human lines stay as they were.  REPO is a folder or
 * s3://BUCKET[/PREFIX].
 *   backup create [--vm CTL [--disk LUN]... [--require-app-consistent]
 *                 [--freeze-timeout MS] [--output human|json]] REPO
 *   backup list [--output=json] REPO   backup show [--output=json] REPO ID
 *   backup restore [-O raw|fixed|dynamic] [--force] [-p] REPO ID DEST
 *   backup verify REPO [ID]            backup forget REPO ID
 *   backup list --forgotten REPO       backup unforget REPO ID
 *   backup repair REPO SOURCE...
 *   backup prune --keep-last N ... [--dry-run] REPO
 *   backup gc [--grace SECONDS] [--dry-run] REPO
 * REPO: a folder or s3://BUCKET[/PREFIX]; --s3-endpoint URL, --s3-region R,
 * --connections N, --s3-retries N, --s3-addressing path|virtual,
 * --cache-dir DIR, --no-cache anywhere after "backup".
 */
#include "vhdtool.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/bkp.h"
#include "common/json.h"
#include "common/util.h"
#include "vhd/vhd.h"

static int run_backup(int argc, char **argv);
VHDTOOL_COMMAND(backup, .name = "backup",
	.usage = "backup init [--chunk-size N] [--object-lock DAYS] REPO\n"
		 "backup create [-f raw|vpc] [--full] [--no-track] [-p] [--threads N] [--output=human|json] REPO SOURCE\n"
		 "backup create --vm CTL [--disk LUN]... [--require-app-consistent] [--freeze-timeout MS] [--output human|json] [--full] [-p] [--threads N] REPO\n"
		 "backup list [--forgotten] [--output=human|json] REPO\n"
		 "backup show [--output=human|json] REPO ID|latest\n"
		 "backup restore [-O raw|fixed|dynamic] [--force] [-p] [--output=human|json] REPO ID|latest DEST\n"
		 "backup verify [--threads N] [--output=human|json] REPO [ID|latest]\n"
		 "backup repair [--threads N] [--output=human|json] REPO SOURCE...\n"
		 "backup prune [--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--dry-run] [--output=human|json] REPO\n"
		 "backup gc [--grace SECONDS] [--dry-run] [--output=human|json] REPO\n"
		 "backup forget [--output=human|json] REPO ID\n"
		 "backup unforget [--threads N] [--output=human|json] REPO ID\n"
		 "REPO: a folder, or s3://BUCKET[/PREFIX] with [--s3-endpoint URL] [--s3-region R] [--connections N] [--s3-retries N]\n"
		 "      [--s3-addressing path|virtual] (default: path with an endpoint, virtual-host for AWS)\n"
		 "      [--cache-dir DIR | --no-cache] (manifests cached for list, show, create; default ~/.cache/vhdtool)\n"
		 "  (credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; AWS_ENDPOINT_URL, AWS_REGION;\n"
		 "   else ~/.aws/credentials and ~/.aws/config, profile AWS_PROFILE)",
	.summary = "deduplicating backups of disks: create, list, restore, verify, repair, prune, gc",
	.run = run_backup)

/* ---- shared helpers ---- */

/* --s3-endpoint, --s3-region, --connections: taken out of argv by
 * run_backup wherever they stand, for every subcommand. */
static struct bkp_remote remote;

static struct bkp_repo *open_repo(const char *path)
{
	struct bdev_err e = { 0 };
	struct bkp_repo *r = bkp_is_remote(path) ? bkp_open_remote(path, &remote, &e)
						  : bkp_open(path, &e);

	if (!r)
		vt_err(NULL, "%s", e.msg);
	return r;
}

/* --cache-dir DIR / --no-cache, taken out of argv with the S3 options. */
static const char *cache_dir;
static bool no_cache;

/* open_repo, and for an object store the manifest cache (list, show,
 * create): --cache-dir, else $XDG_CACHE_HOME/vhdtool, else
 * ~/.cache/vhdtool.  A cache that cannot be made is a warning: the
 * manifests are then read from the store. */
static struct bkp_repo *open_repo_cached(const char *path)
{
	struct bkp_repo *r = open_repo(path);
	struct bdev_err e = { 0 };
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char dir[4096];

	if (!r || no_cache || !bkp_is_remote(path))
		return r;
	if (cache_dir) {
		snprintf(dir, sizeof(dir), "%s", cache_dir);
	} else if (xdg && xdg[0] == '/') {
		(void)mkdir(xdg, 0700);
		snprintf(dir, sizeof(dir), "%s/vhdtool", xdg);
	} else if (home && home[0] == '/') {
		snprintf(dir, sizeof(dir), "%s/.cache", home);
		(void)mkdir(dir, 0700);
		snprintf(dir, sizeof(dir), "%s/.cache/vhdtool", home);
	} else {
		return r;
	}
	if (bkp_repo_set_cache(r, dir, &e))
		fprintf(stderr, "vhdtool: warning: %s; reading every manifest from the store\n",
			e.msg);
	return r;
}

static bool parse_count(const char *what, const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > 1000000) {
		vt_err(NULL, "%s '%s' is not a count", what, s);
		return false;
	}
	*out = (int)v;
	return true;
}

/* -p: the one progress printer (progress.c: a bar on a terminal, a line
 * every 10% elsewhere), behind the backup library's progress signature. */
struct progress {
	struct vt_progress vp;
	struct bkp_repo *r;       /* on object storage: MiB/s to/from it too */
	bool up;                  /* sent (backup) or received (restore) */
	struct timespec t0;
};

static void show_progress(void *opaque, uint64_t done, uint64_t total)
{
	struct progress *p = opaque;
	uint64_t sent = 0, got = 0;
	struct timespec t;
	double secs;

	if (p->r)
		bkp_io_counters(p->r, &sent, &got);
	if (sent || got) {    /* object storage */
		clock_gettime(CLOCK_MONOTONIC, &t);
		secs = (double)(t.tv_sec - p->t0.tv_sec) +
		       (double)(t.tv_nsec - p->t0.tv_nsec) / 1e9;
		snprintf(p->vp.extra, sizeof(p->vp.extra), "%.1f MiB/s %s the store",
			 secs > 0 ? (double)(p->up ? sent : got) / secs / 1048576.0 : 0.0,
			 p->up ? "to" : "from");
	}
	(void)vt_progress_cb(&p->vp, done, total);
}

static void start_progress(struct progress *p, const char *what, bool on,
			   struct bkp_repo *r, bool up)
{
	vt_progress_init(&p->vp, what, on);
	p->r = r;
	p->up = up;
	clock_gettime(CLOCK_MONOTONIC, &p->t0);
}

static void end_progress(struct progress *p)
{
	vt_progress_end(&p->vp);
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

/* The manifest of b as one JSON document (backup show --output=json). */
static void print_json(const struct bkp_info *b)
{
	char *j = bkp_info_json(b);

	fputs(j ? j : "null", stdout);
	putchar('\n');
	free(j);
}

struct bkp_repo *vt_backup_open(const char *path, bool cached)
{
	return cached ? open_repo_cached(path) : open_repo(path);
}

/* ---- init ---- */

static int cmd_init(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "object-lock", required_argument, NULL, 'L' }, { 0 }
	};
	struct bdev_err e = { 0 };
	uint64_t cs = 0;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:", lo, NULL)) != -1) {
		if (c == 'L') {
			if (!parse_count("object lock days", optarg,
					 &remote.object_lock_days))
				return 2;
			continue;
		}
		if (c != 'c')
			return vt_usage(&backup_cmd);
		if (!vt_parse_size("chunk size", optarg, &cs))
			return 2;
		if (cs > BKP_MAX_CHUNK_SIZE) {
			vt_err(NULL, "chunk size '%s' is too large", optarg);
			return 2;
		}
	}
	if (argc - optind != 1)
		return vt_usage(&backup_cmd);
	if (remote.object_lock_days && !bkp_is_remote(argv[optind])) {
		vt_err(NULL, "--object-lock needs an s3:// repository");
		return 2;
	}
	rc = bkp_is_remote(argv[optind])
	     ? bkp_init_remote(argv[optind], (uint32_t)cs, &remote, &e)
	     : bkp_init(argv[optind], (uint32_t)cs, &e);
	if (rc) {
		vt_err(NULL, "%s", e.msg);
		return 1;
	}
	return 0;
}

/* ---- create ---- */

static int cmd_create(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "full", no_argument, NULL, 'L' },
		VT_FORMAT_LONGOPT,
		{ "progress", no_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "no-track", no_argument, NULL, 'n' },
		{ "vm", required_argument, NULL, 'V' },
		{ "disk", required_argument, NULL, 'D' },
		{ "require-app-consistent", no_argument, NULL, 'A' },
		{ "freeze-timeout", required_argument, NULL, 'F' },
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	const char *vm = NULL;
	char luns[256] = "";
	long freeze_ms = -1;
	bool app = false, json = false, live_opt = false, fmt = false;
	unsigned oflags = VT_OPEN_RDONLY | VT_OPEN_RAW_OK;
	struct bkp_create_opts o = { 0 };
	struct vt_rbd_snaps rs = { 0 };
	struct progress pr = { 0 };
	struct bdev_err e = { 0 };
	struct bkp_repo *r;
	struct bkp_info b;
	struct bdev *src;
	char s1[32], s2[32];
	int c, rc;

	optind = 1;
	/* -f FMT: the source's format (qemu-img); --full is long only. */
	while ((c = getopt_long(argc, argv, "f:pt:", lo, NULL)) != -1) {
		switch (c) {
		case 'L': o.full = true; break;
		case 'f':
			if (!vt_format_opt(optarg, &oflags))
				return 2;
			fmt = true;
			break;
		case 'n': o.no_track = true; break;
		case 'p':
			o.progress = show_progress;
			o.opaque = &pr;
			break;
		case 't':
			if (!parse_count("thread count", optarg, &o.threads))
				return 2;
			break;
		case 'V': vm = optarg; break;
		case 'D':
			if (!vt_vm_add_lun(luns, sizeof(luns), optarg))
				return 2;
			live_opt = true;
			break;
		case 'A': app = live_opt = true; break;
		case 'F':
			if (!vt_parse_ms("--freeze-timeout", optarg, &freeze_ms))
				return 2;
			live_opt = true;
			break;
		case VT_OPT_OUTPUT:
		case VT_OPT_JSON:
			if (!vt_output_opt(c, optarg, &json))
				return 2;
			break;
		default:
			return vt_usage(&backup_cmd);
		}
	}
	if (vm) {
		/* The VMM's frozen images are VHDs: no source format. */
		if (!vt_exclusive("--vm", true, "-f/--format", fmt))
			return 2;
		if (argc - optind != 1 || o.no_track)
			return vt_usage(&backup_cmd);
		vt_progress_init(&pr.vp, "backup", o.progress != NULL);
		rc = vt_backup_vm(argv[optind], vm, luns, freeze_ms, app, &o, json);
		end_progress(&pr);
		return rc;
	}
	if (argc - optind != 2 || live_opt)
		return vt_usage(&backup_cmd);
	r = open_repo_cached(argv[optind]);
	if (!r)
		return 1;
	src = vt_open(argv[optind + 1], oflags);
	if (!src) {
		bkp_close(r);
		return 1;
	}
	o.source = argv[optind + 1];
	/* An RBD image: its snapshots tell what changed, not a .ctk file. */
	if (!o.no_track && vt_rbd_snaps_init(&rs, src))
		o.snaps = &rs.s;
	else if (rbd_is_name(o.source))
		o.no_track = true;   /* rbd:...@SNAP: read as it is; never a .ctk */
	start_progress(&pr, "backup", o.progress != NULL, r, true);
	rc = bkp_create(r, src, &o, &b, &e);
	end_progress(&pr);
	vt_rbd_snaps_fini(&rs);
	bdev_close(src);
	bkp_close(r);
	if (rc) {
		vt_err(NULL, "%s", e.msg);
		return 1;
	}
	if (json)
		print_json(&b);
	else
		printf("%s\n", b.id);
	fprintf(stderr, "backup %s: %s%s%s, read %llu of %llu chunks, %llu new (%s stored), %s in %.2f s\n",
		b.id, b.incremental ? "incremental" : "full",
		b.reason[0] ? ": " : "", b.reason,
		(unsigned long long)b.chunks_read, (unsigned long long)b.chunks,
		(unsigned long long)b.chunks_new,
		util_fmt_size(b.bytes_stored, s1, sizeof(s1)),
		util_fmt_size(b.virtual_size, s2, sizeof(s2)), b.seconds);
	if (b.chunks_replaced)
		fprintf(stderr, "vhdtool: %s: %llu damaged chunk files of the repository were stored again from %s\n",
			argv[optind], (unsigned long long)b.chunks_replaced,
			argv[optind + 1]);
	if (!strcmp(b.consistency, "inconsistent"))
		fprintf(stderr, "vhdtool: warning: %s changed while it was read; the backup is not a point-in-time image\n",
			argv[optind + 1]);
	return 0;
}

/* ---- list, show ---- */

static void print_human(const struct bkp_info *b)
{
	char ts[32], s[32];

	fmt_time(b->time, ts, sizeof(ts));
	printf("id:             %s\n", b->id);
	printf("source:         %s (%s, disk %s)\n", b->source, b->source_format,
	       b->disk_id);
	printf("time:           %s UTC\n", ts);
	printf("kind:           %s%s%s%s\n", b->incremental ? "incremental of " : "full",
	       b->incremental ? b->parent : "", b->reason[0] ? ": " : "", b->reason);
	printf("virtual size:   %s (%llu bytes)\n",
	       util_fmt_size(b->virtual_size, s, sizeof(s)),
	       (unsigned long long)b->virtual_size);
	printf("consistency:    %s\n", b->consistency);
	if (b->group[0])
		printf("live backup:    LUN %u of the VM, group %s, freeze window %.3f ms\n",
		       b->vm_lun, b->group, (double)b->freeze_window_us / 1000.0);
	printf("chunks:         %llu of %u bytes (%llu zero, %llu read, %llu new)\n",
	       (unsigned long long)b->chunks, b->chunk_size,
	       (unsigned long long)b->chunks_zero, (unsigned long long)b->chunks_read,
	       (unsigned long long)b->chunks_new);
	printf("stored:         %s new\n", util_fmt_size(b->bytes_stored, s, sizeof(s)));
	printf("duration:       %.2f s\n", b->seconds);
	printf("change tracking: %s",
	       b->ctk_generation[0] ? b->ctk_generation : "none\n");
	if (b->ctk_generation[0])
		printf(" since epoch %u\n", b->ctk_since);
	if (b->snapshot[0])
		printf("snapshot:       %s (the disk's own, kept for the next backup)\n",
		       b->snapshot);
}

/* backup list --forgotten: the backups Object Lock still keeps after a
 * prune or forget (or after someone else wrote a forgotten marker). */
static void list_forgotten(const struct bkp_forgotten_info *f, size_t n,
			   bool json)
{
	struct json j;

	if (json) {
		json_begin(&j, stdout);
		json_arr(&j);
	} else {
		printf("%-25s  %-19s  %-20s  %s\n", "ID", "TIME (UTC)",
		       "LOCKED UNTIL (UTC)", "SOURCE");
	}
	for (size_t i = 0; i < n; i++) {
		char ts[32] = "?", until[32] = "unknown";

		if (f[i].readable)
			fmt_time(f[i].b.time, ts, sizeof(ts));
		if (f[i].until > 0)
			fmt_time(f[i].until, until, sizeof(until));
		if (!json) {
			printf("%-25s  %-19s  %-20s  %s\n", f[i].b.id, ts, until,
			       f[i].readable ? f[i].b.source : "(manifest unreadable)");
			continue;
		}
		json_obj(&j);
		json_kv_str(&j, "id", f[i].b.id);
		json_key(&j, "locked-until");
		json_i64(&j, f[i].until);
		if (f[i].readable) {
			char *text = bkp_info_json(&f[i].b);

			json_key(&j, "manifest");
			json_raw(&j, text);
			free(text);
		}
		json_end_obj(&j);
	}
	if (json) {
		json_end_arr(&j);
		json_finish(&j);
	}
}

static int cmd_list(int argc, char **argv, bool show)
{
	static const struct option lo[] = {
		{ "forgotten", no_argument, NULL, 'F' },
		VT_OUTPUT_LONGOPTS, { 0 }
	};
	struct bdev_err e = { 0 };
	struct bkp_repo *r;
	struct bkp_info *v = NULL, one;
	struct bkp_damaged *bad = NULL;
	struct bkp_forgotten_info *fg = NULL;
	bool json = false, forgotten = false;
	size_t n = 0, nbad = 0, nfg = 0;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "j", lo, NULL)) != -1) {
		if (c == 'F' && !show) {
			forgotten = true;
			continue;
		}
		rc = vt_shared_opt(c == 'j' ? VT_OPT_JSON : c, optarg, NULL, &json);
		if (rc <= 0)
			return rc < 0 ? VT_EXIT_USAGE : vt_usage(&backup_cmd);
	}
	if (argc - optind != (show ? 2 : 1))
		return vt_usage(&backup_cmd);
	r = forgotten ? open_repo(argv[optind]) : open_repo_cached(argv[optind]);
	if (!r)
		return 1;
	if (forgotten) {
		rc = bkp_list_forgotten(r, &fg, &nfg, &e);
		bkp_close(r);
		if (rc) {
			vt_err(NULL, "%s", e.msg);
			return 1;
		}
		list_forgotten(fg, nfg, json);
		free(fg);
		return 0;
	}
	rc = show ? bkp_show(r, argv[optind + 1], &one, &e)
		  : bkp_list_checked(r, &v, &n, &bad, &nbad, &nfg, &e);
	/* Forgotten backups are hidden: say they exist, so that a forgotten
	 * marker nobody meant (same credentials, Object Lock) is seen
	 * before gc deletes the backup when its retention ends. */
	if (!rc && !show && !json && nfg)
		fprintf(stderr, "vhdtool: %s: %zu forgotten backups are kept by Object Lock until gc deletes them (backup list --forgotten; backup unforget undoes one)\n",
			argv[optind], nfg);
	bkp_close(r);
	if (rc) {
		free(v);
		vt_err(NULL, "%s", e.msg);
		return 1;
	}
	if (show) {
		if (json) {
			print_json(&one);
		} else {
			print_human(&one);
		}
		return 0;
	}
	if (json) {
		struct json j;

		json_begin(&j, stdout);
		json_arr(&j);
		for (size_t i = 0; i < n; i++) {
			char *text = bkp_info_json(&v[i]);

			json_raw(&j, text);
			free(text);
		}
		/* Damaged ones: {"id": ..., "damaged": "why"}. */
		for (size_t i = 0; i < nbad; i++) {
			json_obj(&j);
			json_kv_str(&j, "id", bad[i].id);
			json_kv_str(&j, "damaged", bad[i].why);
			json_end_obj(&j);
		}
		json_end_arr(&j);
		json_finish(&j);
	} else {
		printf("%-25s  %-19s  %-11s  %10s  %7s  %10s  %-12s  %s\n", "ID",
		       "TIME (UTC)", "KIND", "SIZE", "READ", "STORED", "CONSISTENCY",
		       "SOURCE");
		for (size_t i = 0; i < n; i++) {
			char ts[32], s1[32], s2[32];

			fmt_time(v[i].time, ts, sizeof(ts));
			printf("%-25s  %-19s  %-11s  %10s  %7llu  %10s  %-12s  %s", v[i].id,
			       ts, v[i].incremental ? "incremental" : "full",
			       util_fmt_size(v[i].virtual_size, s1, sizeof(s1)),
			       (unsigned long long)v[i].chunks_read,
			       util_fmt_size(v[i].bytes_stored, s2, sizeof(s2)),
			       v[i].consistency, v[i].source);
			if (v[i].group[0])
				printf(" (LUN %u, group %s)", v[i].vm_lun, v[i].group);
			putchar('\n');
		}
		for (size_t i = 0; i < nbad; i++)
			printf("%-25s  DAMAGED: %s\n", bad[i].id, bad[i].why);
	}
	/* Never silently fewer backups than there are. */
	for (size_t i = 0; i < nbad; i++)
		vt_err(NULL, "%s: backup %s: %s (see backup verify)",
		       argv[optind], bad[i].id, bad[i].why);
	free(v);
	free(bad);
	return nbad ? 1 : 0;
}

/* ---- restore ---- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcasecmp(s + a - b, suffix);
}

/* backup restore -O fixed|dynamic: the VHD the restore writes into (the
 * backup engine knows images only through bdev). */
static struct bdev *restore_vhd(void *opaque, const char *path, int format,
				uint64_t size, uint32_t *piece, struct bdev_err *e)
{
	struct vhd_create_opts co = { 0 };
	struct vhd_open_opts oo = { 0 };

	(void)opaque;
	if (size % 512 || size > VHD_MAX_SIZE || size == 0) {
		bdev_err_set(e, EINVAL,
			     "a disk of %llu bytes cannot be a VHD (a multiple of 512 up to 2040 GiB); restore with -O raw",
			     (unsigned long long)size);
		return NULL;
	}
	co.type = format == BKP_OUT_FIXED ? VHD_TYPE_FIXED : VHD_TYPE_DYNAMIC;
	co.size = size;
	if (vhd_create(path, &co, e))
		return NULL;
	/* a dynamic VHD's blocks whole: each allocated once, fully written */
	*piece = format == BKP_OUT_FIXED ? 0 : VHD_DEFAULT_BLOCK_SIZE;
	return vhd_open(path, &oo, e);
}

static int cmd_restore(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "format", required_argument, NULL, 'O' },
		{ "force", no_argument, NULL, 'F' },
		{ "progress", no_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	static const char *const fmt_names[] = {
		[BKP_OUT_RAW] = "raw", [BKP_OUT_FIXED] = "fixed",
		[BKP_OUT_DYNAMIC] = "dynamic",
	};
	struct bkp_restore_opts o = { .format = -1, .create = restore_vhd };
	struct bkp_info info = { 0 };
	bool json = false;
	struct progress pr = { 0 };
	struct bdev_err e = { 0 };
	struct bkp_repo *r;
	int c, rc;

	optind = 1;
	/* -f is refused with a word: force is --force only, and restore has
	 * no source image for a format (-f elsewhere, as qemu-img's); the
	 * output format is -O, as qemu-img convert's. */
	while ((c = getopt_long(argc, argv, "fO:pt:", lo, NULL)) != -1) {
		switch (c) {
		case 'F':
			o.overwrite = true;
			break;
		case 'O':
			if (!strcmp(optarg, "raw"))
				o.format = BKP_OUT_RAW;
			else if (!strcmp(optarg, "fixed"))
				o.format = BKP_OUT_FIXED;
			else if (!strcmp(optarg, "dynamic"))
				o.format = BKP_OUT_DYNAMIC;
			else {
				vt_err(NULL, "unknown output format '%s' (raw, fixed or dynamic)",
				       optarg);
				return 2;
			}
			break;
		case 'f':
			vt_err(NULL, "backup restore takes no -f: to overwrite DEST use --force; the output format is -O raw|fixed|dynamic");
			return 2;
		case 'p':
			o.progress = show_progress;
			o.opaque = &pr;
			break;
		case 't':
			if (!parse_count("thread count", optarg, &o.threads))
				return 2;
			break;
		case VT_OPT_OUTPUT:
		case VT_OPT_JSON:
			if (!vt_output_opt(c, optarg, &json))
				return 2;
			break;
		default:
			return vt_usage(&backup_cmd);
		}
	}
	if (argc - optind != 3)
		return vt_usage(&backup_cmd);
	if (o.format < 0)   /* by the name: *.vhd a dynamic VHD, else raw */
		o.format = ends_with(argv[optind + 2], ".vhd") ? BKP_OUT_DYNAMIC
							       : BKP_OUT_RAW;
	r = open_repo(argv[optind]);
	if (!r)
		return 1;
	start_progress(&pr, "restore", o.progress != NULL, r, false);
	rc = bkp_restore(r, argv[optind + 1], argv[optind + 2], &o, &e);
	end_progress(&pr);
	/* JSON names the backup by its ID, also when "latest" was asked. */
	if (!rc && json && bkp_show(r, argv[optind + 1], &info, &e))
		info.id[0] = 0;
	bkp_close(r);
	if (rc) {
		vt_err(NULL, "restore failed, %s not written: %s", argv[optind + 2],
		       e.msg);
		return 1;
	}
	if (json) {
		struct json j;

		json_begin(&j, stdout);
		json_obj(&j);
		json_kv_str(&j, "backup", info.id[0] ? info.id : argv[optind + 1]);
		json_kv_str(&j, "destination", argv[optind + 2]);
		json_kv_str(&j, "format", fmt_names[o.format]);
		if (info.id[0])
			json_kv_u64(&j, "virtual-size", info.virtual_size);
		json_end_obj(&j);
		json_finish(&j);
	}
	return 0;
}

/* ---- verify ---- */

/* What verify and repair report line by line: printed as it comes, or
 * kept for the "messages" array of the JSON document. */
struct report {
	bool json;
	char **v;
	size_t n;
	bool oom;
};

static void report_line(void *opaque, const char *msg)
{
	struct report *rp = opaque;
	char **v, *m;

	if (!rp->json) {
		printf("%s\n", msg);
		return;
	}
	v = realloc(rp->v, (rp->n + 1) * sizeof(*v));
	m = strdup(msg);
	if (v)
		rp->v = v;
	if (!v || !m) {
		free(m);
		rp->oom = true;
		return;
	}
	rp->v[rp->n++] = m;
}

static void report_free(struct report *rp)
{
	for (size_t i = 0; i < rp->n; i++)
		free(rp->v[i]);
	free(rp->v);
}

/* The keys of a verify result, into the object being written; then the
 * lines reported, as "messages". */
static void json_verify(struct json *j, const struct bkp_verify_result *res,
			const struct report *rp)
{
	json_kv_str(j, "status", res->backups_damaged || res->chunks_damaged ?
			"damaged" : "ok");
	json_kv_u64(j, "backups", res->backups);
	json_kv_u64(j, "backups-damaged", res->backups_damaged);
	json_kv_u64(j, "chunks", res->chunks);
	json_kv_u64(j, "chunks-damaged", res->chunks_damaged);
	json_kv_u64(j, "chunks-quarantined", res->chunks_quarantined);
	json_kv_u64(j, "bytes-read", res->bytes);
	json_key(j, "messages");
	json_arr(j);
	for (size_t i = 0; i < rp->n; i++)
		json_str(j, rp->v[i]);
	json_end_arr(j);
	if (rp->oom)
		json_kv_bool(j, "messages-truncated", true);
}

static void print_verify_summary(const struct bkp_verify_result *res)
{
	char s[32];

	printf("%s: %llu backups (%llu damaged), %llu chunks (%llu damaged or missing, %llu quarantined), %s read\n",
	       res->backups_damaged || res->chunks_damaged ? "damaged" : "ok",
	       (unsigned long long)res->backups,
	       (unsigned long long)res->backups_damaged,
	       (unsigned long long)res->chunks,
	       (unsigned long long)res->chunks_damaged,
	       (unsigned long long)res->chunks_quarantined,
	       util_fmt_size(res->bytes, s, sizeof(s)));
}

/* --threads N and --output/--json, the options of verify and repair. */
static int verify_opts(int argc, char **argv, int *threads, bool *json)
{
	static const struct option lo[] = {
		{ "threads", required_argument, NULL, 't' },
		VT_OUTPUT_LONGOPTS, { 0 }
	};
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "t:", lo, NULL)) != -1) {
		if (c == 't') {
			if (!parse_count("thread count", optarg, threads))
				return 2;
			continue;
		}
		rc = vt_shared_opt(c, optarg, NULL, json);
		if (rc <= 0)
			return rc < 0 ? VT_EXIT_USAGE : vt_usage(&backup_cmd);
	}
	return 0;
}

/* verify, and unforget (bring a forgotten backup back, then verify it:
 * its chunks may have outlived their retention).  Exit 1 damaged; errors
 * 2 for verify, 1 for unforget (as forget). */
static int verify_cmd(int argc, char **argv, bool unforget)
{
	struct bkp_verify_result res;
	struct bdev_err e = { 0 };
	struct report rp = { 0 };
	struct bkp_repo *r;
	const char *id;
	int threads = 0, fail = unforget ? 1 : 2, rc;

	rc = verify_opts(argc, argv, &threads, &rp.json);
	if (rc)
		return rc;
	if (argc - optind != 2 && (unforget || argc - optind != 1))
		return vt_usage(&backup_cmd);
	id = argc - optind == 2 ? argv[optind + 1] : NULL;
	r = open_repo(argv[optind]);
	if (!r)
		return fail;
	rc = unforget ? bkp_unforget(r, id, &e) : 0;
	if (!rc)
		rc = bkp_verify(r, id, threads, report_line, &rp, &res, &e);
	bkp_close(r);
	if (rc) {
		report_free(&rp);
		vt_err(NULL, "%s", e.msg);
		return fail;
	}
	if (rp.json) {
		struct json j;

		json_begin(&j, stdout);
		json_obj(&j);
		if (unforget) {
			json_kv_str(&j, "unforgotten", id);
			json_key(&j, "verify");
			json_obj(&j);
		}
		json_verify(&j, &res, &rp);
		if (unforget)
			json_end_obj(&j);
		json_end_obj(&j);
		json_finish(&j);
	} else {
		if (unforget)
			printf("unforgotten: %s\n", id);
		print_verify_summary(&res);
	}
	report_free(&rp);
	if (!res.backups_damaged && !res.chunks_damaged)
		return 0;
	if (unforget)
		vt_err(NULL, "backup %s is listed again, but it is damaged (chunks deleted when their retention ended): see backup repair",
		       id);
	return 1;
}

static int cmd_verify(int argc, char **argv)
{
	return verify_cmd(argc, argv, false);
}

static int cmd_unforget(int argc, char **argv)
{
	return verify_cmd(argc, argv, true);
}

/* ---- repair ---- */

static void print_repair_json(const struct bkp_repair_result *res,
			      const struct report *rp)
{
	struct json j;

	json_begin(&j, stdout);
	json_obj(&j);
	json_kv_u64(&j, "chunks-needed", res->chunks_needed);
	json_kv_u64(&j, "chunks-restored", res->chunks_restored);
	json_kv_u64(&j, "backups-repaired", res->backups_repaired);
	json_kv_u64(&j, "backups-lost", res->backups_lost);
	json_key(&j, "verify");
	json_obj(&j);
	json_verify(&j, &res->verify, rp);
	json_end_obj(&j);
	json_end_obj(&j);
	json_finish(&j);
}

static void print_repair_human(const struct bkp_repair_result *res)
{
	print_verify_summary(&res->verify);
	printf("repair: %llu chunks missing or damaged, %llu stored again from the sources; %llu backups repaired, %llu stay damaged\n",
	       (unsigned long long)res->chunks_needed,
	       (unsigned long long)res->chunks_restored,
	       (unsigned long long)res->backups_repaired,
	       (unsigned long long)res->backups_lost);
}

static int cmd_repair(int argc, char **argv)
{
	struct bkp_repair_result res;
	struct bdev_err e = { 0 };
	struct report rp = { 0 };
	struct bdev **src;
	struct bkp_repo *r;
	int threads = 0, rc, nsrc = 0;

	rc = verify_opts(argc, argv, &threads, &rp.json);
	if (rc)
		return rc;
	if (argc - optind < 2)
		return vt_usage(&backup_cmd);
	src = calloc((size_t)(argc - optind - 1), sizeof(*src));
	if (!src) {
		vt_err(NULL, "out of memory");
		return 2;
	}
	for (int i = optind + 1; i < argc && !rc; i++) {
		src[nsrc] = vt_open(argv[i], VT_OPEN_RDONLY | VT_OPEN_RAW_OK);
		if (src[nsrc])
			nsrc++;
		else
			rc = 2;
	}
	r = rc ? NULL : open_repo(argv[optind]);
	if (!rc && !r)
		rc = 2;
	if (!rc && bkp_repair(r, src, (size_t)nsrc, threads, report_line, &rp,
			      &res, &e)) {
		vt_err(NULL, "%s", e.msg);
		rc = 2;
	}
	if (r)
		bkp_close(r);
	for (int i = 0; i < nsrc; i++)
		bdev_close(src[i]);
	free(src);
	if (!rc && rp.json)
		print_repair_json(&res, &rp);
	else if (!rc)
		print_repair_human(&res);
	report_free(&rp);
	return rc ? rc : res.backups_lost ? 1 : 0;
}

/* ---- prune, forget, gc ---- */

/* Prune's decisions: a line each, or an element each of a JSON array
 * (j not NULL). */
struct prune_out {
	bool dry_run;
	struct json *j;
};

static void print_prune(void *opaque, const struct bkp_info *b, bool keep,
			const char *why)
{
	const struct prune_out *po = opaque;
	const char *action = keep ? "keep" : po->dry_run ? "would remove" : "remove";
	char ts[32];

	fmt_time(b->time, ts, sizeof(ts));
	if (po->j) {
		json_obj(po->j);
		json_kv_str(po->j, "id", b->id);
		json_kv_str(po->j, "action", action);
		json_kv_bool(po->j, "keep", keep);
		json_key(po->j, "time");
		json_i64(po->j, b->time);
		json_kv_str(po->j, "source", b->source);
		json_kv_str(po->j, "why", why);
		json_end_obj(po->j);
		return;
	}
	printf("%-13s %s  %s  %s  (%s)\n", action, b->id, ts, b->source, why);
}

static int cmd_prune(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "keep-last", required_argument, NULL, 'l' },
		{ "keep-daily", required_argument, NULL, 'd' },
		{ "keep-weekly", required_argument, NULL, 'w' },
		{ "keep-monthly", required_argument, NULL, 'm' },
		{ "dry-run", no_argument, NULL, 'n' },
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	struct bkp_prune_opts o = { 0 };
	struct bdev_err e = { 0 };
	struct prune_out po = { 0 };
	struct bkp_repo *r;
	struct json j;
	bool json = false;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "n", lo, NULL)) != -1) {
		int *dst = c == 'l' ? &o.keep_last : c == 'd' ? &o.keep_daily :
			   c == 'w' ? &o.keep_weekly : c == 'm' ? &o.keep_monthly : NULL;

		if (c == 'n')
			o.dry_run = true;
		else if (dst && !parse_count(lo[strchr("ldwm", c) - "ldwm"].name,
					     optarg, dst))
			return 2;
		else if (!dst && (rc = vt_shared_opt(c, optarg, NULL, &json)) <= 0)
			return rc < 0 ? VT_EXIT_USAGE : vt_usage(&backup_cmd);
	}
	if (argc - optind != 1)
		return vt_usage(&backup_cmd);
	r = open_repo(argv[optind]);
	if (!r)
		return 1;
	po.dry_run = o.dry_run;
	if (json) {   /* an array, even when prune stops half way */
		po.j = &j;
		json_begin(&j, stdout);
		json_arr(&j);
	}
	rc = bkp_prune(r, &o, print_prune, &po, &e);
	bkp_close(r);
	if (json) {
		json_end_arr(&j);
		json_finish(&j);
	}
	if (rc) {
		vt_err(NULL, "%s", e.msg);
		return rc == -EINVAL ? 2 : 1;
	}
	return 0;
}

static int cmd_forget(int argc, char **argv)
{
	static const struct option lo[] = { VT_OUTPUT_LONGOPTS, { 0 } };
	struct bdev_err e = { 0 };
	struct bkp_repo *r;
	bool json = false;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		rc = vt_shared_opt(c, optarg, NULL, &json);
		if (rc <= 0)
			return rc < 0 ? VT_EXIT_USAGE : vt_usage(&backup_cmd);
	}
	if (argc - optind != 2)
		return vt_usage(&backup_cmd);
	r = open_repo(argv[optind]);
	if (!r)
		return 1;
	rc = bkp_forget(r, argv[optind + 1], &e);
	bkp_close(r);
	if (rc == 1) {   /* Object Lock: forgotten, deleted by a later gc */
		fprintf(stderr, "vhdtool: %s\n", e.msg);
	} else if (rc) {
		vt_err(NULL, "%s", e.msg);
		return 1;
	}
	if (json) {
		struct json j;

		json_begin(&j, stdout);
		json_obj(&j);
		json_kv_str(&j, "forgotten", argv[optind + 1]);
		json_end_obj(&j);
		json_finish(&j);
	}
	return 0;
}

/* Object Lock retention gc could not extend: the backups are protected
 * only until it ends, so gc fails (after its report). */
static int gc_retention_failed(const char *repo, const struct bkp_gc_result *res)
{
	if (!res->retention_failed)
		return 0;
	vt_err(NULL, "%s: Object Lock retention could not be extended on %llu objects (the first: %s): their backups stay protected only until their current retention ends; fix the cause and run gc again",
	       repo, (unsigned long long)res->retention_failed, res->retention_error);
	return 1;
}

static int cmd_gc(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "grace", required_argument, NULL, 'g' },
		{ "dry-run", no_argument, NULL, 'n' },
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	struct bkp_gc_opts o = { .grace = -1 };
	struct bkp_gc_result res;
	struct bdev_err e = { 0 };
	struct bkp_repo *r;
	bool json = false;
	char s[32];
	int c, g, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "n", lo, NULL)) != -1) {
		if (c == 'n')
			o.dry_run = true;
		else if (c == 'g' && parse_count("grace", optarg, &g))
			o.grace = g;
		else if (c == 'g')
			return 2;
		else if ((rc = vt_shared_opt(c, optarg, NULL, &json)) <= 0)
			return rc < 0 ? VT_EXIT_USAGE : vt_usage(&backup_cmd);
	}
	if (argc - optind != 1)
		return vt_usage(&backup_cmd);
	r = open_repo(argv[optind]);
	if (!r)
		return 1;
	rc = bkp_gc(r, &o, &res, &e);
	bkp_close(r);
	if (rc) {
		vt_err(NULL, "%s", e.msg);
		return 1;
	}
	if (json) {
		struct json j;

		json_begin(&j, stdout);
		json_obj(&j);
		json_kv_bool(&j, "dry-run", o.dry_run);
		json_kv_u64(&j, "chunks", res.chunks);
		json_kv_u64(&j, "removed", res.removed);
		json_kv_u64(&j, "bytes-removed", res.bytes_removed);
		json_kv_u64(&j, "kept-grace", res.kept_grace);
		json_kv_u64(&j, "temporary-removed", res.tmp_removed);
		json_kv_u64(&j, "locked", res.locked);
		json_kv_u64(&j, "retention-extended", res.retention_extended);
		json_kv_u64(&j, "forgotten-removed", res.forgotten_removed);
		json_kv_u64(&j, "forgotten-locked", res.forgotten_locked);
		json_kv_u64(&j, "retention-failed", res.retention_failed);
		json_end_obj(&j);
		json_finish(&j);
		return gc_retention_failed(argv[optind], &res);
	}
	printf("gc: %llu chunks, %s %llu (%s), kept %llu unreferenced within the grace period, %llu temporary files %s\n",
	       (unsigned long long)res.chunks, o.dry_run ? "would remove" : "removed",
	       (unsigned long long)res.removed,
	       util_fmt_size(res.bytes_removed, s, sizeof(s)),
	       (unsigned long long)res.kept_grace,
	       (unsigned long long)res.tmp_removed,
	       o.dry_run ? "to remove" : "removed");
	/* Object Lock lines, each only when its count is not 0. */
	const struct { uint64_t n; const char *what; } ol[] = {
		{ res.locked, "unreferenced chunks are under Object Lock retention and stay until it ends" },
		{ res.retention_extended, "objects had their Object Lock retention extended" },
		{ res.forgotten_removed, o.dry_run
			? "forgotten backups to remove (their Object Lock retention ended)"
			: "forgotten backups removed (their Object Lock retention ended)" },
		{ res.forgotten_locked, "forgotten backups stay under Object Lock retention until it ends" },
		{ res.retention_failed, "objects' Object Lock retention could not be read or extended" },
	};
	for (size_t i = 0; i < sizeof(ol) / sizeof(ol[0]); i++)
		if (ol[i].n)
			printf("gc: %llu %s\n", (unsigned long long)ol[i].n, ol[i].what);
	return gc_retention_failed(argv[optind], &res);
}

static int run_backup(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} subs[] = {
		{ "init", cmd_init }, { "create", cmd_create },
		{ "restore", cmd_restore }, { "verify", cmd_verify },
		{ "prune", cmd_prune }, { "gc", cmd_gc }, { "forget", cmd_forget },
		{ "unforget", cmd_unforget },
		{ "repair", cmd_repair },
	};

	int k = 1;

	/* The object-storage options, wherever they stand (before "--"). */
	for (int i = 1; i < argc; i++) {
		static const char *const names[] = { "--s3-endpoint", "--s3-region",
						     "--connections", "--s3-retries",
						     "--s3-addressing", "--cache-dir" };
		const char *val = NULL;
		size_t which = UTIL_ARRAY_SIZE(names);

		if (!strcmp(argv[i], "--")) {
			while (i < argc)
				argv[k++] = argv[i++];
			break;
		}
		if (!strcmp(argv[i], "--no-cache")) {
			no_cache = true;
			continue;
		}
		for (size_t n = 0; n < UTIL_ARRAY_SIZE(names); n++) {
			size_t l = strlen(names[n]);

			if (!strncmp(argv[i], names[n], l) &&
			    (argv[i][l] == '=' || !argv[i][l])) {
				which = n;
				if (argv[i][l] == '=')
					val = argv[i] + l + 1;
				else if (i + 1 < argc)
					val = argv[++i];
			}
		}
		if (which == UTIL_ARRAY_SIZE(names)) {
			argv[k++] = argv[i];
			continue;
		}
		if (!val) {
			vt_err(NULL, "%s needs a value", names[which]);
			return 2;
		}
		if (which == 5) {
			if (!*val) {
				vt_err(NULL, "--cache-dir: an empty folder name");
				return 2;
			}
			cache_dir = val;
		} else if (which == 0)
			remote.endpoint = val;
		else if (which == 1)
			remote.region = val;
		else if (which == 4) {
			if (strcmp(val, "path") && strcmp(val, "virtual")) {
				vt_err(NULL, "--s3-addressing: path or virtual, not '%s'", val);
				return 2;
			}
			remote.addressing = val;
		} else if (which == 3) {
			if (!parse_count("retries", val, &remote.retries) ||
			    remote.retries > 100) {
				vt_err(NULL, "--s3-retries: 0 to 100");
				return 2;
			}
		} else if (!parse_count("connections", val, &remote.connections) ||
			 remote.connections < 1 || remote.connections > 64) {
			vt_err(NULL, "--connections: 1 to 64");
			return 2;
		}
	}
	argc = k;
	argv[argc] = NULL;
	if (argc < 2)
		return vt_usage(&backup_cmd);
	if (!strcmp(argv[1], "list"))
		return cmd_list(argc - 1, argv + 1, false);
	if (!strcmp(argv[1], "show"))
		return cmd_list(argc - 1, argv + 1, true);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(subs); i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].fn(argc - 1, argv + 1);
	vt_err(NULL, "unknown backup command '%s' (see vhdtool backup --help)",
	       argv[1]);
	return 2;
}
