/* vhdtool: entry point, subcommand table and shared helpers. */
#include "vhdtool.h"
#include "passthrough/passthrough.h"
#include "rbd/rbd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/bkp.h"
#include "common/util.h"
#include "vhd/vhd.h"

#ifndef VERSION
#define VERSION "unknown"   /* the Makefile passes -DVERSION */
#endif

#define MAX_CMDS 64
static const struct vhdtool_cmd *cmds[MAX_CMDS];
static int ncmds;
/* Global options (before the command), applied by vt_open. */
static unsigned global_open_flags;

void vhdtool_register(const struct vhdtool_cmd *cmd)
{
	if (ncmds < MAX_CMDS)
		cmds[ncmds++] = cmd;
}

void vt_err(const char *what, const char *fmt, ...)
{
	va_list ap;

	fputs("vhdtool: ", stderr);
	if (what)
		fprintf(stderr, "%s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void print_usage(FILE *f, const struct vhdtool_cmd *cmd)
{
	const char *p = cmd->usage;

	fprintf(f, "usage:");
	while (*p) {
		const char *nl = strchr(p, '\n');
		int n = nl ? (int)(nl - p) : (int)strlen(p);

		fprintf(f, " vhdtool %.*s\n", n, p);
		p += n + (nl ? 1 : 0);
		if (*p)
			fprintf(f, "      ");
	}
}

int vt_usage(const struct vhdtool_cmd *cmd)
{
	print_usage(stderr, cmd);
	return 2;
}

bool vt_parse_size(const char *what, const char *s, uint64_t *out)
{
	int r = util_parse_size(s, out);

	if (r == -ERANGE)
		vt_err(NULL, "%s '%s' is too large", what, s);
	else if (r)
		vt_err(NULL, "%s '%s' is not a number of bytes (suffixes K, M, G, T allowed)",
		       what, s);
	return r == 0;
}

void vt_bdev_err(struct bdev *b)
{
	char buf[600];

	vt_err(NULL, "%s", bdev_errmsg(b, buf, sizeof(buf)));
}

/* Writable opens record their writes in IMAGE.ctk (change tracking for
 * incremental backups) when that file exists: an observing layer over the
 * disk (bkp_track_layer), so another tracker can stack on it; finalised at
 * exit. */
static struct bdev *tracked(struct bdev *b, const char *path, unsigned flags)
{
	struct bkp_track *t;
	struct bdev *l;

	if (flags & VT_OPEN_RDONLY)
		return b;
	l = bkp_track_layer(b, path, &t, NULL);
	return l ? l : b;
}

const char *vt_kind(const struct bdev *b)
{
	while (b->lower)
		b = b->lower;
	return b->ops->kind;
}

struct bdev *vt_open(const char *path, unsigned flags)
{
	struct vhd_open_opts o = { 0 };
	struct bdev_err e = { 0 };
	struct bdev *b;

	flags |= global_open_flags;
	if ((flags & VT_OPEN_FORCE_SHARE) && !(flags & VT_OPEN_RDONLY)) {
		vt_err(path, "-U/--force-share is for reading only: it cannot be written while it may be in use");
		return NULL;
	}
	if (rbd_is_name(path)) {   /* a Ceph RBD image: raw, no .ctk tracking */
		if (!(flags & VT_OPEN_RAW_OK)) {
			vt_err(path, "an RBD image is a raw disk: this command works on VHD images only");
			return NULL;
		}
		b = rbd_open_bdev(path, (flags & VT_OPEN_RDONLY) ? RBD_OPEN_RDONLY : 0, &e);
		if (!b)
			vt_err(NULL, "%s", e.msg);
		return b;
	}
	if (flags & VT_OPEN_FORCE_SHARE)
		o.flags |= VHD_O_FORCE_SHARE;
	if (flags & VT_OPEN_SIZE_CHS)
		o.flags |= VHD_O_SIZE_CHS;
	if (flags & VT_OPEN_RDONLY)
		o.flags |= VHD_O_RDONLY;
	if (flags & VT_OPEN_NO_UUID)
		o.flags |= VHD_O_IGNORE_PARENT_UUID;
	if (flags & VT_OPEN_SIZE_FOOTER)
		o.flags |= VHD_O_SIZE_FOOTER;
	if (flags & VT_OPEN_DIRECT)
		o.flags |= VHD_O_DIRECT;
	/* -f raw: the file's bytes, whatever they hold. */
	b = (flags & VT_OPEN_FMT_RAW) ? NULL : vhd_open(path, &o, &e);
	if (b)
		return tracked(b, path, flags);
	if (!(flags & VT_OPEN_FMT_RAW) && e.code == ENOVHD &&
	    (flags & VT_OPEN_FMT_VHD)) {
		vt_err(path, "not a VHD image (no VHD footer), but -f vpc was given");
		return NULL;
	}
	if ((flags & VT_OPEN_FMT_RAW) && !(flags & VT_OPEN_RAW_OK)) {
		vt_err(path, "-f raw: this command works on VHD images only");
		return NULL;
	}
	if ((flags & VT_OPEN_RAW_OK) &&
	    ((flags & VT_OPEN_FMT_RAW) || e.code == ENOVHD)) {
		bool noshare = flags & VT_OPEN_FORCE_SHARE;

		if (flags & VT_OPEN_DIRECT)
			b = pt_open(path, ((flags & VT_OPEN_RDONLY) ? PT_OPEN_RDONLY : 0) |
				    (noshare ? PT_OPEN_NOLOCK : 0), &e);
		else
			b = bdev_file_open(path, ((flags & VT_OPEN_RDONLY) ? BDEV_OPEN_RDONLY : 0) |
					   (noshare ? BDEV_OPEN_NOLOCK : 0), &e);
		if (b)
			return tracked(b, path, flags);
	}
	vt_err(NULL, "%s", e.msg);
	return NULL;
}

bool vt_force_share(void)
{
	return global_open_flags & VT_OPEN_FORCE_SHARE;
}

/* -U/--force-share may come before or after the command (qemu-img takes
 * it after): take it out of argv wherever it is, before "--". */
static int take_force_share(int argc, char **argv)
{
	int out = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			while (i < argc)
				argv[out++] = argv[i++];
			break;
		}
		if (!strcmp(argv[i], "-U") || !strcmp(argv[i], "--force-share"))
			global_open_flags |= VT_OPEN_FORCE_SHARE;
		else
			argv[out++] = argv[i];
	}
	argv[out] = NULL;
	return out;
}

static int cmp_cmd(const void *a, const void *b)
{
	const struct vhdtool_cmd *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static void help(FILE *f)
{
	fprintf(f, "vhdtool: Microsoft VHD images, NBD export and backups\n\n"
		   "usage: vhdtool [GLOBAL OPTIONS] COMMAND [ARGS...]   (vhdtool COMMAND --help)\n\n"
		   "global options:\n"
		   "  --size-from current|chs  disk size from the footer's current size or the CHS\n"
		   "                           geometry (default: CHS only for creators \"vpc \" and\n"
		   "                           \"qemu\" when they differ, as qemu does)\n"
		   "  --ignore-parent-uuid     open chains whose parent UUID does not match\n"
		   "  -U, --force-share        read images another process is writing (no reader\n"
		   "                           lock; what is read may be inconsistent)\n"
		   "  --version                print the program name and version\n\n"
		   "commands:\n");
	for (int i = 0; i < ncmds; i++)
		fprintf(f, "  %-10s %s\n", cmds[i]->name, cmds[i]->summary);
}

/* Consume global options; returns how many arguments they took or -1. */
static int global_options(int argc, char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-' && strcmp(argv[i], "--help") &&
	       strcmp(argv[i], "-h")) {
		const char *a = argv[i], *val = NULL;

		if (!strncmp(a, "--size-from=", 12)) {
			val = a + 12;
		} else if (!strcmp(a, "--size-from")) {
			if (i + 1 >= argc) {
				vt_err(NULL, "--size-from needs current or chs");
				return -1;
			}
			val = argv[++i];
		} else if (!strcmp(a, "--ignore-parent-uuid")) {
			global_open_flags |= VT_OPEN_NO_UUID;
		} else {
			vt_err(NULL, "unknown global option '%s' (see vhdtool --help)", a);
			return -1;
		}
		if (val && !strcmp(val, "current"))
			global_open_flags |= VT_OPEN_SIZE_FOOTER;
		else if (val && !strcmp(val, "chs"))
			global_open_flags |= VT_OPEN_SIZE_CHS;
		else if (val) {
			vt_err(NULL, "--size-from takes current or chs, not '%s'", val);
			return -1;
		}
		i++;
	}
	return i - 1;
}

/* Make sure descriptors 0, 1 and 2 are open before anything opens a file.
 * Started with one closed, the first image or temporary file opened would
 * get that number, and the image would then be read as standard input or
 * have messages and progress written into it.  /dev/null is opened in the
 * contrary mode (write-only as stdin, read-only as stdout and stderr, as
 * gnulib's stdopen does), so reading a closed stdin or writing a closed
 * stdout fails loudly instead of silently doing nothing.  False when one
 * cannot be opened (nothing can be reported then). */
static bool guard_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int nfd;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* The lowest free number is fd: the ones below are open. */
		nfd = open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
		if (nfd != fd) {
			if (nfd >= 0)
				close(nfd);
			return false;
		}
	}
	return true;
}

/* What a command printed must have reached standard output: a full disk or
 * a closed stdout turns success into failure (as coreutils' close_stdout). */
static int finish_stdout(int rc)
{
	errno = 0;
	if ((fflush(stdout) || ferror(stdout)) && rc == 0) {
		vt_err(NULL, "standard output: %s",
		       errno ? strerror(errno) : "write error");
		return 1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	int skip;

	if (!guard_std_fds())
		return 1;
	qsort(cmds, (size_t)ncmds, sizeof(cmds[0]), cmp_cmd);
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("vhdtool %s\n", VERSION);
		return finish_stdout(0);
	}
	argc = take_force_share(argc, argv);
	skip = global_options(argc, argv);
	if (skip < 0)
		return 2;
	argv[skip] = argv[0];
	argc -= skip;
	argv += skip;
	if (argc < 2) {
		help(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		help(stdout);
		return finish_stdout(0);
	}
	for (int i = 0; i < ncmds; i++) {
		if (strcmp(argv[1], cmds[i]->name))
			continue;
		for (int j = 2; j < argc; j++)
			if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h")) {
				print_usage(stdout, cmds[i]);
				fprintf(stdout, "\n%s\n", cmds[i]->summary);
				return finish_stdout(0);
			}
		return finish_stdout(cmds[i]->run(argc - 1, argv + 1));
	}
	vt_err(NULL, "unknown command '%s' (see vhdtool --help)", argv[1]);
	return 2;
}
