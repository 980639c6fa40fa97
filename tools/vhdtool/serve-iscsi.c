/* vhdtool serve --iscsi: export disks as the LUNs of one iSCSI target
 * (LUN 0 = the first image...) until SIGINT/SIGTERM, then drain the
 * connections and flush every disk.  Socket activation and
 * --exit-with-parent as for NBD (common/listen).  At exit the target's counters, as
 * the NBD serve prints them: one JSON object on stdout with
 * --output=json, a line on stderr with -v. */
#include "vhdtool.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/listen.h"
#include "common/util.h"
#include "iscsi/iscsi.h"
#include "scsi/scsi.h"

static struct iscsi_srv *the_target;

static void on_signal(int sig)
{
	(void)sig;
	if (the_target)
		iscsi_stop(the_target);
}

static void on_log(void *opaque, int level, const char *msg)
{
	bool verbose = *(bool *)opaque;

	if (level == ISCSI_LOG_ERROR || verbose)
		vt_err("serve", "%s", msg);
}

/* The secret: the file's first line, without its newline. */
static char *read_secret(const char *path)
{
	char buf[512];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		vt_err(path, "%s", strerror(errno));
		return NULL;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		vt_err(path, "%s", strerror(errno));
		return NULL;
	}
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (strlen(buf) < 12 || strlen(buf) > 255) {
		vt_err(path, "the CHAP secret must be 12 to 255 bytes on the first line");
		return NULL;
	}
	return strdup(buf);
}

/* Where the disks are served: a line each, or with json one object with
 * the LUNs as an array. */
static void print_serving(char **images, struct bdev **disks, int n,
			  const char *addr, unsigned port, const char *iqn,
			  const char *mode, bool read_only, int nact, bool json)
{
	bool v6 = addr && strchr(addr, ':');
	struct json j;

	if (json) {
		json_begin(&j, stdout);
		json_obj(&j);
		json_kv_str(&j, "target", iqn);
		json_kv_bool(&j, "read-only", read_only);
		if (nact)
			json_kv_u64(&j, "systemd-sockets", (uint64_t)nact);
		json_key(&j, "luns");
		json_arr(&j);
	}
	for (int i = 0; i < n; i++) {
		char uri[1200], sz[32];

		snprintf(uri, sizeof(uri), "iscsi://%s%s%s:%u/%s/%d", v6 ? "[" : "",
			 addr ? addr : "127.0.0.1", v6 ? "]" : "", port, iqn, i);
		if (!json && nact) {   /* where is systemd's business */
			printf("serving %s (%s, %s%s) as %s LUN %d on %d socket%s from systemd\n",
			       images[i], util_fmt_size(disks[i]->size, sz, sizeof(sz)),
			       vt_kind(disks[i]), mode, iqn, i, nact, nact > 1 ? "s" : "");
			continue;
		}
		if (!json) {
			printf("serving %s (%s, %s%s) at %s\n", images[i],
			       util_fmt_size(disks[i]->size, sz, sizeof(sz)),
			       vt_kind(disks[i]), mode, uri);
			continue;
		}
		json_obj(&j);
		json_kv_u64(&j, "lun", (uint64_t)i);
		json_kv_str(&j, "serving", images[i]);
		json_kv_u64(&j, "virtual-size", disks[i]->size);
		json_kv_str(&j, "kind", vt_kind(disks[i]));
		json_kv_str(&j, "uri", nact ? NULL : uri);
		json_end_obj(&j);
	}
	if (json) {
		json_end_arr(&j);
		json_end_obj(&j);
		json_finish(&j);
	}
}

/* The target's counters at exit, as serve.c prints the NBD server's. */
static void print_stats(struct iscsi_srv *s, bool json, bool verbose)
{
	struct iscsi_stats st;

	iscsi_get_stats(s, &st);
	vt_serve_stats((const struct vt_stat[]){
		{ "connections", st.accepted }, { "refused", st.refused },
		{ "protocol-errors", st.protocol_errors }, { "logins", st.logins },
		{ "commands", st.commands },
	}, 5, json, verbose);
}

static bool parse_num(const char *what, const char *s, unsigned long hi,
		      unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > hi || s[0] == '-') {
		vt_err(NULL, "%s '%s' is not a number from 0 to %lu", what, s, hi);
		return false;
	}
	*out = (unsigned)v;
	return true;
}

int vt_serve_iscsi(int argc, char **argv, const struct vhdtool_cmd *cmd)
{
	static const struct option lo[] = {
		{ "iscsi", no_argument, NULL, 'I' },
		{ "bind", required_argument, NULL, 'b' },
		{ "port", required_argument, NULL, 'p' },
		{ "target-name", required_argument, NULL, 'n' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "snapshot", no_argument, NULL, 'S' },
		{ "direct", no_argument, NULL, 'D' },
		{ "chap-user", required_argument, NULL, 'u' },
		{ "chap-secret-file", required_argument, NULL, 'C' },
		VT_FORMAT_LONGOPT,
		{ "login-timeout", required_argument, NULL, 'L' },
		{ "sector-size", required_argument, NULL, 'B' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "exit-with-parent", no_argument, NULL, 'P' },
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	struct iscsi_opts io = { 0 };
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	const char *addr = NULL, *secret_file = NULL, *msg = "";
	unsigned port = ISCSI_DEFAULT_PORT, oflags = 0, sector = 0;
	bool read_only = false, snapshot = false, verbose = false, json = false;
	bool port_set = false, with_parent = false;
	int parent = (int)getppid(), nact;
	struct bdev *disks[SCSI_MAX_LUNS] = { 0 };
	struct scsi_target *t = NULL;
	struct iscsi_srv *s = NULL;
	char *secret = NULL;
	int c, n = 0, rc = 1, r;

	optind = 1;
	/* -f is the images' format (as everywhere); the secret file has
	 * only its long name. */
	while ((c = getopt_long(argc, argv, "b:p:n:rSDu:f:L:B:v", lo, NULL)) != -1) {
		switch (c) {
		case 'I': break;
		case 'b': addr = optarg; break;
		case 'p':
			if (!parse_num("port", optarg, 65535, &port))
				return 2;
			port_set = true;
			break;
		case 'P': with_parent = true; break;
		case 'n': io.target_name = optarg; break;
		case 'r': read_only = true; break;
		case 'S': snapshot = true; break;
		case 'D': oflags |= VT_OPEN_DIRECT; break;
		case 'u': io.chap_user = optarg; break;
		case 'C': secret_file = optarg; break;
		case 'f':
		case VT_OPT_OUTPUT:
		case VT_OPT_JSON:
			if (vt_shared_opt(c, optarg, &oflags, &json) < 0)
				return VT_EXIT_USAGE;
			break;
		case 'L':
			if (!parse_num("login-timeout", optarg, 3600000, &io.login_ms))
				return 2;
			break;
		case 'B':
			if (!parse_num("sector-size", optarg, 4096, &sector))
				return 2;
			if (sector != 512 && sector != 4096) {
				vt_err(NULL, "--sector-size is 512 or 4096");
				return 2;
			}
			break;
		case 'v': verbose = true; break;
		default:
			return vt_usage(cmd);
		}
	}
	if (!vt_serve_opts_ok(read_only, snapshot, oflags))
		return VT_EXIT_USAGE;
	if (!io.chap_user != !secret_file) {
		vt_err(NULL, "--chap-user and --chap-secret-file go together");
		return VT_EXIT_USAGE;
	}
	if (optind == argc)
		return vt_usage(cmd);
	if (argc - optind > SCSI_MAX_LUNS) {
		vt_err(NULL, "at most %d images (one LUN each)", SCSI_MAX_LUNS);
		return 2;
	}
	nact = vt_activation_fds();
	if (nact < 0)
		return 2;
	if (nact && (addr || port_set)) {
		vt_err(NULL, "started by socket activation (LISTEN_FDS): --bind and --port "
		       "cannot be used");
		return 2;
	}
	if (secret_file && !(secret = read_secret(secret_file)))
		return 2;
	io.chap_secret = secret;
	t = scsi_target_new();
	if (!t) {
		vt_err(NULL, "%s", strerror(errno));
		goto out;
	}
	for (int i = optind; i < argc; i++, n++) {
		const char *img = argv[i];

		disks[n] = snapshot ? vt_open_snapshot(img) :
			vt_open(img, (read_only ? VT_OPEN_RDONLY : 0) | VT_OPEN_RAW_OK | oflags);
		if (!disks[n])
			goto out;
		if (sector && sector != disks[n]->limits.logical_block &&
		    (sector < disks[n]->limits.logical_block || disks[n]->size % sector)) {
			vt_err(img, "cannot have %u-byte sectors (its own are %u bytes, its "
			       "size %llu bytes)", sector, disks[n]->limits.logical_block,
			       (unsigned long long)disks[n]->size);
			bdev_close(disks[n]);
			disks[n] = NULL;
			goto out;
		}
		r = scsi_lun_add(t, (uint32_t)n, disks[n], (read_only ? SCSI_LUN_READ_ONLY : 0) |
				 (sector == 4096 ? SCSI_LUN_4K : 0));
		if (r) {
			vt_err(img, "cannot be LUN %d: %s", n, r == -EINVAL ?
			       "its logical block is neither 512 nor 4096 bytes" : strerror(-r));
			bdev_close(disks[n]);
			disks[n] = NULL;
			goto out;
		}
	}
	io.log = on_log;
	io.log_opaque = &verbose;
	s = iscsi_new(t, &io, &msg);
	if (!s) {
		vt_err(NULL, "%s", msg);
		goto out;
	}
	r = 0;
	for (int i = 0; i < nact && !r; i++)
		r = iscsi_listen_fd(s, LISTEN_FDS_START + i);
	if (r || (!nact && iscsi_listen_tcp(s, addr, port))) {
		vt_err(NULL, "%s", iscsi_errmsg(s));
		goto out;
	}
	the_target = s;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (with_parent && !vt_exit_with_parent(parent)) {
		the_target = NULL;
		goto out;
	}
	print_serving(argv + optind, disks, n, addr, iscsi_tcp_port(s),
		      io.target_name ? io.target_name : ISCSI_DEFAULT_TARGET,
		      snapshot ? ", snapshot" : read_only ? ", read-only" : "",
		      read_only, nact, json);
	fflush(stdout);
	r = iscsi_run(s);
	the_target = NULL;
	rc = r ? 1 : 0;
	if (r)
		vt_err(NULL, "%s", iscsi_errmsg(s));
	print_stats(s, json, verbose);
out:
	iscsi_free(s);
	/* LUNs out first (waits for their commands), then flush and close. */
	for (int i = 0; i < n; i++)
		if (disks[i])
			scsi_lun_remove(t, (uint32_t)i);
	if (t)
		scsi_target_free(t);
	for (int i = 0; i < n; i++) {
		if (disks[i] && bdev_close(disks[i])) {
			vt_err(NULL, "%s", bdev_last_error());
			rc = 1;
		}
	}
	if (secret) {
		memset(secret, 0, strlen(secret));
		free(secret);
	}
	return rc;
}
