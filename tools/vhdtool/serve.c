/* vhdtool serve: export a disk (raw, fixed, dynamic, differencing chain)
 * over NBD until SIGINT/SIGTERM (or, with --once, until the clients have
 * gone).  --snapshot serves a temporary differencing child so the image
 * itself is never written. */
#include "vhdtool.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/listen.h"
#include "common/util.h"
#include "nbd/nbdsrv.h"
#include "rbd/rbd.h"
#include "vhd/vhd.h"

static struct nbdsrv *the_server;

static void on_signal(int sig)
{
	(void)sig;
	if (the_server)
		nbdsrv_stop(the_server);
}

static void on_log(void *opaque, int level, const char *msg)
{
	bool verbose = *(bool *)opaque;

	if (level == NBDSRV_LOG_ERROR || verbose)
		vt_err("serve", "%s", msg);
}

/* Open a fresh differencing child of path in a private temporary folder;
 * the file is unlinked at once (the open descriptor keeps it), so it goes
 * away when we exit, however we exit. */
struct bdev *vt_open_snapshot(const char *path)
{
	/* -U: the image (the child's parent) is read without a reader lock. */
	unsigned share = vt_force_share() ? VHD_O_FORCE_SHARE : 0;
	struct vhd_open_opts oo = { .flags = VHD_O_RDONLY | share };
	struct vhd_create_opts co = { .type = VHD_TYPE_DIFF };
	struct bdev_err e = { 0 };
	const char *tmp = getenv("TMPDIR");
	char dir[PATH_MAX], child[PATH_MAX + 32], abs[PATH_MAX];
	struct bdev *b;

	if (rbd_is_name(path)) {
		vt_err(path, "--snapshot needs a VHD image (the temporary child is a VHD); "
		       "an RBD image is served unchanged at one of its snapshots "
		       "(rbd:POOL/IMAGE@SNAP) or with --read-only");
		return NULL;
	}
	b = vhd_open(path, &oo, &e);
	if (!b) {
		if (e.code == ENOVHD)
			vt_err(path, "--snapshot needs a VHD image (the temporary "
			       "differencing child is a VHD), but this file has no VHD "
			       "footer: it is raw; serve it with --read-only to keep it unchanged");
		else
			vt_err(NULL, "%s", e.msg);
		return NULL;
	}
	bdev_close(b);
	if (!realpath(path, abs)) {
		vt_err(path, "%s", strerror(errno));
		return NULL;
	}
	snprintf(dir, sizeof(dir), "%s/vhdtool-serve.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		vt_err(dir, "cannot create a temporary folder: %s", strerror(errno));
		return NULL;
	}
	snprintf(child, sizeof(child), "%s/snapshot.vhd", dir);
	co.parent = abs;
	if (vhd_create(child, &co, &e)) {
		vt_err(NULL, "%s", e.msg);
		rmdir(dir);
		return NULL;
	}
	oo.flags = share;
	b = vhd_open(child, &oo, &e);
	if (!b)
		vt_err(NULL, "%s", e.msg);
	unlink(child);
	rmdir(dir);
	return b;
}

bool vt_serve_opts_ok(bool read_only, bool snapshot, unsigned oflags)
{
	/* --snapshot already keeps the image unchanged; its temporary child
	 * is a VHD opened buffered. */
	return vt_exclusive("--snapshot", snapshot, "--read-only", read_only) &&
	       vt_exclusive("--snapshot", snapshot, "--direct",
			    oflags & VT_OPEN_DIRECT) &&
	       vt_exclusive("--snapshot", snapshot, "-f raw",
			    oflags & VT_OPEN_FMT_RAW);
}

static int run_serve(int argc, char **argv);
VHDTOOL_COMMAND(serve, .name = "serve",
	.usage = "serve [--socket PATH | --bind ADDR --port N] [--read-only] [--snapshot] "
		 "[--direct] [--export-name NAME] [--max-clients N] [--threads N] [--once] "
		 "[--exit-with-parent] [-v] [-f raw|vpc] [--output=human|json] IMAGE\n"
		 "serve --iscsi [--bind ADDR] [--port N] [--target-name IQN] [--read-only] "
		 "[--snapshot] [--direct] [--chap-user USER --chap-secret-file FILE] "
		 "[--login-timeout MS] [--sector-size 512|4096] [--exit-with-parent] [-v] [--output=human|json] IMAGE...",
	.summary = "export a disk (any VHD chain or raw file) over NBD, or disks as iSCSI LUNs",
	.run = run_serve)

static bool parse_uint(const char *what, const char *s, unsigned lo,
		       unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi || s[0] == '-') {
		vt_err(NULL, "%s '%s' is not a number from %u to %u", what, s, lo, hi);
		return false;
	}
	*out = (unsigned)v;
	return true;
}

/* Socket activation and --exit-with-parent, for both front ends
 * (common/listen): the count of activation sockets, 0, or -1 (printed). */
int vt_activation_fds(void)
{
	char msg[200];
	int n = listen_activation_fds(msg, sizeof(msg));

	if (n < 0)
		vt_err(NULL, "%s", msg);
	return n < 0 ? -1 : n;
}

bool vt_exit_with_parent(int parent)
{
	int r = listen_exit_with_parent(parent);

	if (r)
		vt_err(NULL, "--exit-with-parent: %s", strerror(-r));
	return !r;
}

/* Where the disk is served: a line, or with json one object. */
static void print_serving(const char *image, struct bdev *b,
			  const struct nbdsrv_opts *so, const char *sock,
			  const char *addr, unsigned port, bool json)
{
	bool v6 = addr && strchr(addr, ':');
	char uri[5000], sz[32];
	struct json j;

	if (sock)
		snprintf(uri, sizeof(uri), "nbd+unix:///%s?socket=%s",
			 so->export_name, sock);
	else
		snprintf(uri, sizeof(uri), "nbd://%s%s%s:%u/%s", v6 ? "[" : "",
			 addr ? addr : "127.0.0.1", v6 ? "]" : "", port,
			 so->export_name);
	if (!json) {
		printf("serving %s (%s) at %s\n", image,
		       util_fmt_size(b->size, sz, sizeof(sz)), uri);
		return;
	}
	json_begin(&j, stdout);
	json_obj(&j);
	json_kv_str(&j, "serving", image);
	json_kv_u64(&j, "virtual-size", b->size);
	json_kv_str(&j, "uri", uri);
	json_kv_bool(&j, "read-only", so->read_only);
	json_end_obj(&j);
	json_finish(&j);
}

/* Started by socket activation: where is systemd's business. */
static void print_activated(const char *image, struct bdev *b, int nact, bool json)
{
	char sz[32];
	struct json j;

	if (!json) {
		printf("serving %s (%s) on %d socket%s from systemd\n", image,
		       util_fmt_size(b->size, sz, sizeof(sz)), nact, nact > 1 ? "s" : "");
		return;
	}
	json_begin(&j, stdout);
	json_obj(&j);
	json_kv_str(&j, "serving", image);
	json_kv_u64(&j, "virtual-size", b->size);
	json_kv_u64(&j, "systemd-sockets", (uint64_t)nact);
	json_end_obj(&j);
	json_finish(&j);
}

void vt_serve_stats(const struct vt_stat *st, size_t n, bool json, bool verbose)
{
	char line[512];
	size_t len = 0;
	struct json j;

	if (json) {
		json_begin(&j, stdout);
		json_obj(&j);
		json_key(&j, "statistics");
		json_obj(&j);
		for (size_t i = 0; i < n; i++)
			json_kv_u64(&j, st[i].key, st[i].value);
		json_end_obj(&j);
		json_end_obj(&j);
		json_finish(&j);
		return;
	}
	if (!verbose)
		return;
	line[0] = 0;
	for (size_t i = 0; i < n && len < sizeof(line); i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%llu %s",
					i ? ", " : "", (unsigned long long)st[i].value,
					st[i].key);
	vt_err("serve", "at exit: %s", line);
}

/* The NBD server's counters at exit. */
static void print_stats(struct nbdsrv *s, bool json, bool verbose)
{
	struct nbdsrv_stats st;

	nbdsrv_get_stats(s, &st);
	vt_serve_stats((const struct vt_stat[]){
		{ "connections", st.accepted }, { "refused", st.refused },
		{ "protocol-errors", st.protocol_errors },
		{ "requests", st.requests }, { "buffer-peak-bytes", st.buf_peak },
	}, 5, json, verbose);
}

static int run_serve(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "bind", required_argument, NULL, 'b' },
		{ "port", required_argument, NULL, 'p' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "snapshot", no_argument, NULL, 'S' },
		{ "export-name", required_argument, NULL, 'e' },
		{ "max-clients", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "once", no_argument, NULL, 'o' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "direct", no_argument, NULL, 'D' },
		{ "exit-with-parent", no_argument, NULL, 'P' },
		VT_FORMAT_LONGOPT,
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	struct nbdsrv_opts so = { .export_name = "" };
	pid_t parent = getppid();
	bool with_parent = false;
	int nact;
	const char *sock = NULL, *addr = NULL, *image;
	unsigned port = NBDSRV_DEFAULT_PORT;
	bool port_set = false, snapshot = false, verbose = false, json = false;
	unsigned oflags = 0;
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	struct bdev_err e = { 0 };
	struct nbdsrv *s;
	struct bdev *b;
	char desc[600];
	int c, r;

	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--iscsi"))
			return vt_serve_iscsi(argc, argv, &serve_cmd);
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:b:p:rSe:m:t:ovDf:", lo, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'b': addr = optarg; break;
		case 'p':
			if (!parse_uint("port", optarg, 0, 65535, &port))
				return 2;
			port_set = true;
			break;
		case 'r': so.read_only = true; break;
		case 'S': snapshot = true; break;
		case 'e': so.export_name = optarg; break;
		case 'm':
			if (!parse_uint("max-clients", optarg, 1, 4096, &so.max_clients))
				return 2;
			break;
		case 't':
			if (!parse_uint("threads", optarg, 1, 64, &so.workers))
				return 2;
			break;
		case 'o': so.once = true; break;
		case 'v': verbose = true; break;
		case 'D': oflags |= VT_OPEN_DIRECT; break;
		case 'P': with_parent = true; break;
		default:
			r = vt_shared_opt(c, optarg, &oflags, &json);
			if (r <= 0)
				return r < 0 ? VT_EXIT_USAGE : vt_usage(&serve_cmd);
		}
	}
	if (!vt_exclusive("--socket", sock, "--bind/--port", addr || port_set) ||
	    !vt_serve_opts_ok(so.read_only, snapshot, oflags))
		return VT_EXIT_USAGE;
	if (argc - optind != 1)
		return vt_usage(&serve_cmd);
	nact = vt_activation_fds();
	if (nact < 0)
		return 2;
	if (nact && (sock || addr || port_set)) {
		vt_err(NULL, "started by socket activation (LISTEN_FDS): --socket, --bind and "
		       "--port cannot be used");
		return 2;
	}
	image = argv[optind];
	if (strlen(so.export_name) > 4096) {
		vt_err(NULL, "export name longer than 4096 bytes");
		return 2;
	}
	if (snapshot)
		b = vt_open_snapshot(image);
	else
		b = vt_open(image, (so.read_only ? VT_OPEN_RDONLY : 0) |
			    VT_OPEN_RAW_OK | oflags);
	if (!b)
		return 1;
	snprintf(desc, sizeof(desc), "%s (%s%s)", util_basename(image), vt_kind(b),
		 snapshot ? ", snapshot: writes are discarded at exit"
		 : so.read_only ? ", read-only" : "");
	so.description = desc;
	so.log = on_log;
	so.log_opaque = &verbose;
	s = nbdsrv_new(b, &so, &e);
	if (!s) {
		vt_err(NULL, "%s", e.msg);
		bdev_close(b);
		return 1;
	}
	if (nact) {
		r = 0;
		for (int i = 0; i < nact && !r; i++)
			r = nbdsrv_listen_fd(s, LISTEN_FDS_START + i);
	} else {
		r = sock ? nbdsrv_listen_unix(s, sock) : nbdsrv_listen_tcp(s, addr, port);
	}
	if (r) {
		vt_err(NULL, "%s", nbdsrv_errmsg(s));
		nbdsrv_free(s);
		bdev_close(b);
		return 1;
	}
	the_server = s;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (with_parent && !vt_exit_with_parent(parent)) {
		the_server = NULL;
		nbdsrv_free(s);
		bdev_close(b);
		return 1;
	}
	if (nact)
		print_activated(image, b, nact, json);
	else
		print_serving(image, b, &so, sock, addr, nbdsrv_tcp_port(s), json);
	fflush(stdout);
	r = nbdsrv_run(s);
	if (r)
		vt_err(NULL, "%s", nbdsrv_errmsg(s));
	the_server = NULL;
	print_stats(s, json, verbose);
	nbdsrv_free(s);
	bdev_close(b);
	return r ? 1 : 0;
}
