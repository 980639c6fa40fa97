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

#define MAX_LUNS SCSI_MAX_LUNS

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

struct host {
	struct vmbus_host *h;
	struct vsp *v;
	pthread_mutex_t mu;	/* disks[] */
	struct vmm_disk disks[MAX_LUNS];
	int ctl_fd;
	volatile int quit;
};

static int add_disk(struct host *H, const char *path, int lun, bool ro, char *err, size_t el)
{
	struct bdev_err e = { 0 };
	struct vmm_disk d;
	int r;

	pthread_mutex_lock(&H->mu);
	if (lun < 0)
		for (lun = 0; lun < MAX_LUNS && H->disks[lun].bd; lun++)
			;
	if (lun >= MAX_LUNS || H->disks[lun].bd) {
		pthread_mutex_unlock(&H->mu);
		snprintf(err, el, lun >= MAX_LUNS ? "no free LUN" : "LUN %d is in use", lun);
		return -EEXIST;
	}
	r = vmm_disk_open(path, ro, &d, &e);
	if (r) {
		pthread_mutex_unlock(&H->mu);
		snprintf(err, el, "%s", e.msg);
		return r;
	}
	r = vsp_lun_add(H->v, (uint32_t)lun, d.bd, d.ro ? SCSI_LUN_READ_ONLY : 0);
	if (r) {
		vmm_disk_close(&d, &e);
		pthread_mutex_unlock(&H->mu);
		snprintf(err, el, "LUN %d: %s", lun, strerror(-r));
		return r;
	}
	H->disks[lun] = d;
	pthread_mutex_unlock(&H->mu);
	return lun;
}

static int remove_disk(struct host *H, int lun, char *err, size_t el)
{
	struct bdev_err e = { 0 };
	int r;

	pthread_mutex_lock(&H->mu);
	if (lun < 0 || lun >= MAX_LUNS || !H->disks[lun].bd) {
		pthread_mutex_unlock(&H->mu);
		snprintf(err, el, "no LUN %d", lun);
		return -ENOENT;
	}
	r = vsp_lun_remove(H->v, (uint32_t)lun);	/* waits for its commands */
	if (!r)
		r = vmm_disk_close(&H->disks[lun], &e);
	pthread_mutex_unlock(&H->mu);
	if (r)
		snprintf(err, el, "%s", e.msg[0] ? e.msg : strerror(-r));
	return r;
}

/* One control request -> one answer line (without newline). */
static void control_line(struct host *H, const char *line, char *out, size_t cap)
{
	struct vmm_req q;
	const char *why = NULL;
	char err[600], js[1200];
	int r;

	if (vmm_req_parse(line, &q, &why)) {
		vmm_json_str(js, sizeof(js), why);
		snprintf(out, cap, "{\"error\":%s}", js);
		return;
	}
	if (!strcmp(q.cmd, "disks")) {
		size_t n = (size_t)snprintf(out, cap, "{\"disks\":[");

		pthread_mutex_lock(&H->mu);
		for (int i = 0; i < MAX_LUNS && n < cap; i++) {
			struct vmm_disk *d = &H->disks[i];

			if (!d->bd)
				continue;
			vmm_json_str(js, sizeof(js), d->path);
			n += (size_t)snprintf(out + n, cap - n,
					      "%s{\"lun\":%d,\"path\":%s,\"kind\":\"%s\",\"size\":%llu,\"ro\":%s,\"tracked\":%s}",
					      out[n - 1] == '[' ? "" : ",", i, js, d->kind,
					      (unsigned long long)d->bd->size, d->ro ? "true" : "false",
					      d->track ? "true" : "false");
		}
		pthread_mutex_unlock(&H->mu);
		if (n < cap)
			snprintf(out + n, cap - n, "]}");
	} else if (!strcmp(q.cmd, "disk-add")) {
		if (!q.path[0]) {
			snprintf(out, cap, "{\"error\":\"disk-add needs \\\"path\\\"\"}");
			return;
		}
		r = add_disk(H, q.path, (int)q.lun, q.ro, err, sizeof(err));
		if (r < 0) {
			vmm_json_str(js, sizeof(js), err);
			snprintf(out, cap, "{\"error\":%s}", js);
		} else {
			snprintf(out, cap, "{\"ok\":true,\"lun\":%d}", r);
		}
	} else if (!strcmp(q.cmd, "disk-remove")) {
		if (q.lun < 0) {
			snprintf(out, cap, "{\"error\":\"disk-remove needs \\\"lun\\\"\"}");
			return;
		}
		r = remove_disk(H, (int)q.lun, err, sizeof(err));
		if (r < 0) {
			vmm_json_str(js, sizeof(js), err);
			snprintf(out, cap, "{\"error\":%s}", js);
		} else {
			snprintf(out, cap, "{\"ok\":true}");
		}
	} else if (!strcmp(q.cmd, "stats")) {
		struct vsp_stats st;

		vsp_get_stats(H->v, &st);
		snprintf(out, cap, "{\"packets\":%llu,\"srbs\":%llu,\"errors\":%llu,\"channels_open\":%u,\"channels_failed\":%llu,\"version\":%u}",
			 (unsigned long long)st.packets, (unsigned long long)st.srbs,
			 (unsigned long long)st.srb_errors, st.channels_open,
			 (unsigned long long)st.chan_failed, st.version);
	} else if (!strcmp(q.cmd, "quit")) {
		H->quit = 1;
		snprintf(out, cap, "{\"ok\":true}");
	} else {
		vmm_json_str(js, sizeof(js), q.cmd);
		snprintf(out, cap, "{\"error\":\"unknown command\",\"cmd\":%s}", js);
	}
}

static void *control_thread(void *arg)
{
	struct host *H = arg;

	while (!H->quit && !got_term) {
		struct pollfd p = { .fd = H->ctl_fd, .events = POLLIN };
		char line[4096], out[8192];
		size_t n = 0;
		FILE *f;
		int fd;

		if (poll(&p, 1, 200) <= 0)
			continue;
		fd = accept4(H->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		f = fdopen(fd, "r+");
		if (!f) {
			close(fd);
			continue;
		}
		while (!H->quit && fgets(line, sizeof(line), f)) {
			n = strlen(line);
			if (n && line[n - 1] != '\n' && !feof(f)) {
				int c;

				while ((c = fgetc(f)) != EOF && c != '\n')
					;
				snprintf(out, sizeof(out), "{\"error\":\"line too long\"}");
			} else {
				control_line(H, line, out, sizeof(out));
			}
			fprintf(f, "%s\n", out);
			fflush(f);
		}
		fclose(f);
	}
	return NULL;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
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
	struct host H = { .ctl_fd = -1 };
	struct vsp_cfg cfg = { 0 };
	pthread_t ctl_thr;
	bool ctl_started = false;
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
	pthread_mutex_init(&H.mu, NULL);
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
	cfg.max_subchannels = (uint16_t)subs;
	cfg.cpu = cpu;
	cfg.instance = (struct vmbus_guid){ { 0x76, 0x6d, 0x6d, 0x2d, 0x6d, 0x69, 0x6e, 0x69,
					      0x73, 0x63, 0x73, 0x69, 0x00, 0x00, 0x00, 0x01 } };
	r = vsp_new(&cfg, &H.v);
	if (r) {
		fprintf(stderr, "vmm-mini: storvsp: %s\n", strerror(-r));
		vmbus_host_free(H.h);
		return 1;
	}
	for (int i = 0; i < ndisks; i++) {
		char *path, err[600];
		int lun;
		bool ro;

		if (vmm_disk_spec(disks[i], &path, &lun, &ro)) {
			fprintf(stderr, "vmm-mini: bad --disk '%s' (IMAGE[,lun=N][,ro], N < 64)\n",
				disks[i]);
			rc = 2;
			goto out;
		}
		r = add_disk(&H, path, lun, ro, err, sizeof(err));
		free(path);
		if (r < 0) {
			fprintf(stderr, "vmm-mini: %s\n", err);
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
		H.ctl_fd = listen_unix(ctl_path);
		if (H.ctl_fd < 0) {
			fprintf(stderr, "vmm-mini: control socket %s: %s\n", ctl_path,
				strerror(-H.ctl_fd));
			rc = 1;
			goto out;
		}
		if (pthread_create(&ctl_thr, NULL, control_thread, &H) == 0)
			ctl_started = true;
	}
	fprintf(stderr, "vmm-mini: serving %d disk(s) on %s\n", ndisks, listen_path);
	while (!got_term && !H.quit) {
		r = vmbus_host_accept(H.h, 200);
		if (r == -ETIMEDOUT || r == -EINTR)
			continue;
		if (r) {
			fprintf(stderr, "vmm-mini: accept: %s\n", strerror(-r));
			rc = 1;
			break;
		}
		while (!got_term && !H.quit && (r = vmbus_host_run(H.h, 200)) == 0)
			;
		if (r && r != -ENOTCONN) {
			fprintf(stderr, "vmm-mini: %s\n", strerror(-r));
			rc = 1;
			break;
		}
	}
	/* drain: no new requests; those in flight complete into the rings */
	if (vsp_quiesce(H.v, 10000))
		fprintf(stderr, "vmm-mini: requests still in flight after 10 s\n");
out:
	H.quit = 1;
	if (ctl_started)
		pthread_join(ctl_thr, NULL);
	/* flush every disk before the channels go */
	for (int i = 0; i < MAX_LUNS; i++)
		if (H.disks[i].bd && !H.disks[i].ro && bdev_flush(H.disks[i].bd)) {
			fprintf(stderr, "vmm-mini: LUN %d: flush: %s\n", i, bdev_last_error());
			rc = 1;
		}
	vmbus_host_free(H.h);	/* closes the channels: service threads end */
	vsp_free(H.v);		/* removes the LUNs */
	for (int i = 0; i < MAX_LUNS; i++) {
		struct bdev_err e = { 0 };

		if (H.disks[i].bd && vmm_disk_close(&H.disks[i], &e)) {
			fprintf(stderr, "vmm-mini: LUN %d: %s\n", i, e.msg);
			rc = 1;
		}
	}
	if (H.ctl_fd >= 0) {
		close(H.ctl_fd);
		unlink(ctl_path);
	}
	unlink(listen_path);
	pthread_mutex_destroy(&H.mu);
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
	{ "run", vmm_cmd_run, "boot the built-in guest on KVM" },
};

int main(int argc, char **argv)
{
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
