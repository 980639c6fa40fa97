/* vmm-mini: a small virtualization host.  Subcommands from a table;
 * `host` serves one outside partition attached over the vmbus transport
 * with a synthetic SCSI controller (storvsp) holding the given LUNs.
 *
 *   vmm-mini host --listen SOCKET --disk IMAGE[,lun=N][,ro] [--disk ...]
 *                 [--control CTL] [--mem SIZE] [--subchannels N]
 *                 [--max-transfer SIZE] [--cpu N]
 *
 * Threads: the main thread runs the vmbus host (attach, control messages,
 * channel signals); each channel has a service thread (storvsp); the
 * control socket has one thread serving one client at a time.  SIGTERM:
 * stop taking requests, drain those in flight, flush the disks, exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "scsi/scsi.h"
#include "storvsp/storvsp.h"
#include "vmbus/vmbus.h"
#include "vmm-mini/vmm.h"
#include "vmm-mini/vmm-kvm.h"
#include "vss/vss.h"

#define MAX_LUNS SCSI_MAX_LUNS

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

struct host {
	struct vmbus_host *h;
	struct vmm_stor *st;
	struct vss *vss;	/* the VSS integration channel (backups) */
	int quit;		/* `quit` asked for (atomic: the control thread sets it) */
};

/* One control request -> one answer line (without newline). */
static void control_line(void *opaque, const char *line, char *out, size_t cap)
{
	struct host *H = opaque;
	struct vmm_req q;
	const char *why = NULL;
	char js[1200];

	if (vmm_req_parse(line, &q, &why)) {
		vmm_json_str(js, sizeof(js), why);
		snprintf(out, cap, "{\"error\":%s}", js);
		return;
	}
	if (vmm_vss_control(H->st, H->vss, &q, out, cap) ||
	    vmm_stor_control(H->st, &q, out, cap))
		return;
	if (!strcmp(q.cmd, "quit")) {
		__atomic_store_n(&H->quit, 1, __ATOMIC_RELAXED);
		snprintf(out, cap, "{\"ok\":true}");
	} else {
		vmm_json_str(js, sizeof(js), q.cmd);
		snprintf(out, cap, "{\"error\":\"unknown command\",\"cmd\":%s}", js);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vmm-mini host --listen SOCKET --disk IMAGE[,lun=N][,ro] [--disk ...]\n"
		   "                     [--control CTL] [--mem SIZE] [--subchannels N]\n"
		   "                     [--max-transfer SIZE] [--cpu N]\n");
}

static int cmd_host(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "disk", required_argument, NULL, 'd' },
		{ "control", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "subchannels", required_argument, NULL, 's' },
		{ "max-transfer", required_argument, NULL, 't' },
		{ "cpu", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen_path = NULL, *ctl_path = NULL, *disks[MAX_LUNS];
	uint64_t mem = 256ull << 20, maxx = 1 << 20;
	int ndisks = 0, subs = 1, cpu = -1, c, r, rc = 0;
	struct host H = { 0 };
	struct vmm_stor_cfg cfg = { 0 };
	struct vmm_stor_err se = { 0 };
	struct vmm_ctl *ctl = NULL;
	struct sigaction sa = { .sa_handler = on_term };

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen_path = optarg; break;
		case 'c': ctl_path = optarg; break;
		case 'd':
			if (ndisks == MAX_LUNS) {
				fprintf(stderr, "vmm-mini: too many disks\n");
				return 2;
			}
			disks[ndisks++] = optarg;
			break;
		case 'm':
			if (util_parse_size(optarg, &mem) || mem % 4096) {
				fprintf(stderr, "vmm-mini: bad --mem '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
			if (util_parse_size(optarg, &maxx) || maxx < 4096 || maxx > (16u << 20)) {
				fprintf(stderr, "vmm-mini: bad --max-transfer '%s'\n", optarg);
				return 2;
			}
			break;
		case 's': subs = atoi(optarg); break;
		case 'p': cpu = atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!listen_path || optind != argc || subs < 0 || subs > 15) {
		usage(stderr);
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		(void)sched_setaffinity(0, sizeof(set), &set);
	}
	r = vmbus_host_new(mem, &H.h);
	if (r) {
		fprintf(stderr, "vmm-mini: partition of %llu bytes: %s\n",
			(unsigned long long)mem, strerror(-r));
		return 1;
	}
	cfg.mgr = vmbus_host_mgr(H.h);
	cfg.guest_mem = vmbus_host_guest_mem(H.h, &cfg.guest_bytes);
	cfg.max_transfer = (uint32_t)maxx;
	cfg.subchannels = (uint16_t)subs;
	cfg.cpu = cpu;
	cfg.switchable = true;	/* snapshot, merge, backup-snapshot */
	r = vmm_stor_new(&cfg, &H.st);
	if (r) {
		fprintf(stderr, "vmm-mini: storvsp: %s\n", strerror(-r));
		vmbus_host_free(H.h);
		return 1;
	}
	/* the VSS integration service: a guest's hv_vss binds to it */
	r = vmm_vss_offer(cfg.mgr, &H.vss);
	if (r) {
		fprintf(stderr, "vmm-mini: vss: %s\n", strerror(-r));
		rc = 1;
		goto out;
	}
	for (int i = 0; i < ndisks; i++) {
		char *path;
		int lun;
		bool ro;

		if (vmm_disk_spec(disks[i], &path, &lun, &ro)) {
			fprintf(stderr, "vmm-mini: bad --disk '%s' (IMAGE[,lun=N][,ro], N < 64)\n",
				disks[i]);
			rc = 2;
			goto out;
		}
		r = vmm_stor_add(H.st, path, lun, ro, &se);
		free(path);
		if (r < 0) {
			fprintf(stderr, "vmm-mini: %s\n", se.msg);
			rc = 1;
			goto out;
		}
	}
	r = vmbus_host_listen(H.h, listen_path);
	if (r) {
		fprintf(stderr, "vmm-mini: listen on %s: %s\n", listen_path, strerror(-r));
		rc = 1;
		goto out;
	}
	if (ctl_path) {
		r = vmm_ctl_start(ctl_path, control_line, &H, &ctl);
		if (r) {
			fprintf(stderr, "vmm-mini: control socket %s: %s\n", ctl_path,
				strerror(-r));
			rc = 1;
			goto out;
		}
	}
	fprintf(stderr, "vmm-mini: serving %d disk(s) on %s\n", ndisks, listen_path);
	while (!got_term && !__atomic_load_n(&H.quit, __ATOMIC_RELAXED)) {
		r = vmbus_host_accept(H.h, 200);
		if (r == -ETIMEDOUT || r == -EINTR)
			continue;
		if (r) {
			fprintf(stderr, "vmm-mini: accept: %s\n", strerror(-r));
			rc = 1;
			break;
		}
		while (!got_term && !__atomic_load_n(&H.quit, __ATOMIC_RELAXED) &&
		       (r = vmbus_host_run(H.h, 200)) == 0)
			;
		if (r && r != -ENOTCONN) {
			fprintf(stderr, "vmm-mini: %s\n", strerror(-r));
			rc = 1;
			break;
		}
	}
	/* drain: no new requests; those in flight complete into the rings */
	if (vmm_stor_quiesce(H.st, 10000))
		fprintf(stderr, "vmm-mini: requests still in flight after 10 s\n");
out:
	__atomic_store_n(&H.quit, 1, __ATOMIC_RELAXED);
	vmm_ctl_stop(ctl);
	/* flush every disk before the channels go */
	if (vmm_stor_flush(H.st, &se)) {
		fprintf(stderr, "vmm-mini: %s\n", se.msg);
		rc = 1;
	}
	vmbus_host_free(H.h);	/* closes the channels: service threads end */
	vss_free(H.vss);
	if (vmm_stor_free(H.st, &se)) {	/* removes the LUNs, closes the disks */
		fprintf(stderr, "vmm-mini: %s\n", se.msg);
		rc = 1;
	}
	unlink(listen_path);
	if (!rc)
		fprintf(stderr, "vmm-mini: stopped\n");
	return rc;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} cmds[] = {
	{ "host", cmd_host, "serve an outside partition's SCSI disks over the vmbus transport" },
	{ "run", vmm_cmd_run, "boot the built-in guest on KVM (its disks on the same storage VSP)" },
	{ "check-records", vmm_cmd_check_records, "verify the records workload's writes on images" },
};

int main(int argc, char **argv)
{
#ifndef VERSION
#define VERSION "unknown"
#endif
	if (argc >= 2 && !strcmp(argv[1], "--version")) {
		printf("vmm-mini %s\n", VERSION);
		return 0;
	}
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fprintf(argc < 2 ? stderr : stdout, "vmm-mini: a small virtualization host\ncommands:\n");
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			fprintf(argc < 2 ? stderr : stdout, "  %-6s %s\n", cmds[i].name, cmds[i].summary);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "vmm-mini: unknown command '%s'\n", argv[1]);
	return 2;
}
