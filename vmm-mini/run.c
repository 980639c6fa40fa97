/* run: `vmm-mini run [--mem SIZE] [--cpus N] [--workload NAME[,ARGS]]
 * [--timeout SECONDS] [--stats] [--user-mode] [--disk IMAGE[,lun=N][,ro]]...
 * [--control CTL]`: boots the built-in guest on KVM and prints its console
 * on stderr ("guest: ...").  --user-mode runs it without KVM, for tests on
 * machines that have none (ubackend.c).
 *
 * With disks, the guest gets a synthetic SCSI controller over VMBus: the
 * partition transport lies in the top pages of its RAM (vmbus_host_new_vm),
 * its doorbell is VMM doorbell VMM_DOORBELL_VMBUS (an ioeventfd), the
 * host's signals are wake-ups of vCPU 0 (an irqfd), and the same storvsp,
 * SCSI target and disks as `vmm-mini host` serve it (stor.c).  Threads: the
 * caller's (waits for the run), the bus thread (vmbus_host_run: control
 * messages and channel signals), one storvsp thread a channel, the
 * control socket's; all pinned to the service CPU, the vCPUs apart.
 * SIGTERM or `quit`: the guest is asked to stop (boot->stop_req + a
 * wake-up), completes its I/O, flushes and exits; 10 s later the VM is
 * stopped anyway.  Then in-flight requests drain and the disks are flushed.
 *
 * Exit status: the guest's own status (0 = success; a non-zero status
 * stays non-zero); 1 when the guest faulted, the run timed out or KVM
 * failed, with one line saying which; 2 for a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "scsi/scsi.h"
#include "storvsp/storvsp.h"
#include "util.h"
#include "vmbus/vmbus.h"
#include "vmm-mini/vmm.h"
#include "vmm-mini/vmm-kvm.h"
#include "vss/vss.h"

#define MAX_DISKS SCSI_MAX_LUNS
#define STOP_GRACE_MS 10000	/* a guest asked to stop gets this long */

/* make's freestanding rule: the flat image of vmm-mini/guest/. */
extern const char vmm_mini_guest_start[], vmm_mini_guest_end[];

static struct vmm *running;
static volatile sig_atomic_t got_term;
static bool term_asks_guest;	/* disks: SIGTERM asks the guest to stop */

static void on_signal(int sig)
{
	(void)sig;
	got_term = 1;
	if (running && !term_asks_guest)
		vmm_stop(running);
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* The storage half of a run (--disk). */
struct run_stor {
	struct vmm *vm;
	struct vmm_boot *boot;
	struct vmbus_host *h;
	struct vmm_stor *st;
	struct vss *vss;	/* the VSS integration channel (live backups) */
	struct vmm_ctl *ctl;
	const char *workload;
	pthread_t bus;
	bool bus_started;
	int bus_quit;		/* atomics: set by one thread, read by others */
	int stop_asked;
	uint64_t stop_at;	/* 0: not asked yet; then the deadline (ms) */
	uint64_t t_start;
};

/* The host's signal to the guest: a wake-up of vCPU 0 (irqfd). */
static void bus_wake(void *opaque)
{
	struct run_stor *R = opaque;

	(void)vmm_wake(R->vm, 0);
}

/* Ask the guest to stop (it flushes and exits); any thread. */
static void ask_stop(struct run_stor *R)
{
	if (__atomic_exchange_n(&R->stop_asked, 1, __ATOMIC_SEQ_CST))
		return;
	__atomic_store_n(&R->stop_at, now_ms() + STOP_GRACE_MS, __ATOMIC_SEQ_CST);
	__atomic_store_n(&R->boot->stop_req, 1, __ATOMIC_SEQ_CST);
	if (vmm_paused(R->vm))
		vmm_pause(R->vm, false);
	(void)vmm_wake(R->vm, 0);
}

static void *bus_thread(void *arg)
{
	struct run_stor *R = arg;

	while (!__atomic_load_n(&R->bus_quit, __ATOMIC_SEQ_CST)) {
		int r = vmbus_host_run(R->h, 100);
		uint64_t at;

		if (r == -EPROTO)
			fprintf(stderr, "vmm-mini run: the guest broke its VMBus message ring: reset\n");
		else if (r < 0)
			break;
		if (got_term)
			ask_stop(R);
		/* stop_at is set just after stop_asked: 0 means not yet */
		at = __atomic_load_n(&R->stop_at, __ATOMIC_SEQ_CST);
		if (at && now_ms() > at) {
			fprintf(stderr, "vmm-mini run: the guest did not stop within %u s: stopping it\n",
				STOP_GRACE_MS / 1000);
			vmm_stop(R->vm);
			__atomic_store_n(&R->stop_at, UINT64_MAX, __ATOMIC_SEQ_CST);
		}
	}
	return NULL;
}

static void control_line(void *opaque, const char *line, char *out, size_t cap)
{
	struct run_stor *R = opaque;
	struct vmm_req q;
	const char *why = NULL;
	char js[1200];

	if (vmm_req_parse(line, &q, &why)) {
		vmm_json_str(js, sizeof(js), why);
		snprintf(out, cap, "{\"error\":%s}", js);
		return;
	}
	if (vmm_vss_control(R->st, R->vss, &q, out, cap) ||
	    vmm_stor_control(R->st, &q, out, cap))
		return;
	if (!strcmp(q.cmd, "status")) {
		struct vsp_stats vs;
		const char *state = __atomic_load_n(&R->stop_asked, __ATOMIC_SEQ_CST) ? "stopping"
				    : vmm_paused(R->vm) ? "paused" : "running";

		vsp_get_stats(vmm_stor_vsp(R->st), &vs);
		vmm_json_str(js, sizeof(js), R->workload);
		snprintf(out, cap, "{\"state\":\"%s\",\"uptime_ms\":%llu,\"workload\":%s,"
			 "\"vstor_version\":%u,\"channels_open\":%u,\"srbs\":%llu,\"errors\":%llu,"
			 "\"inflight\":%u}",
			 state, (unsigned long long)(now_ms() - R->t_start), js, vs.version,
			 vs.channels_open, (unsigned long long)vs.srbs,
			 (unsigned long long)vs.srb_errors, vs.inflight);
	} else if (!strcmp(q.cmd, "pause") || !strcmp(q.cmd, "resume")) {
		if (__atomic_load_n(&R->stop_asked, __ATOMIC_SEQ_CST)) {
			snprintf(out, cap, "{\"error\":\"the guest is stopping\"}");
			return;
		}
		vmm_pause(R->vm, q.cmd[0] == 'p');
		snprintf(out, cap, "{\"ok\":true,\"state\":\"%s\"}",
			 q.cmd[0] == 'p' ? "paused" : "running");
	} else if (!strcmp(q.cmd, "quit")) {
		ask_stop(R);
		snprintf(out, cap, "{\"ok\":true}");
	} else {
		vmm_json_str(js, sizeof(js), q.cmd);
		snprintf(out, cap, "{\"error\":\"unknown command\",\"cmd\":%s}", js);
	}
}

/* Everything --disk needs, before vmm_run().  Prints and returns 1 on
 * failure (2 for a bad --disk). */
static int stor_start(struct run_stor *R, struct vmm *vm, char **disks, int ndisks,
		      const char *ctl_path)
{
	struct vmbus_host_vm_cfg hc = { 0 };
	struct vmm_stor_cfg sc = { 0 };
	struct vmm_stor_err se = { 0 };
	struct vmbus_xport_hello lay;
	uint64_t mem_bytes;
	int r, efd, cpu;

	R->vm = vm;
	R->t_start = now_ms();
	R->boot = vmm_gpa(vm, VMM_GPA_BOOT, sizeof(struct vmm_boot));
	hc.mem_fd = vmm_mem_fd(vm);
	hc.mem = vmm_mem(vm, &mem_bytes);
	hc.mem_bytes = mem_bytes;
	hc.wake = bus_wake;
	hc.opaque = R;
	r = vmbus_host_new_vm(&hc, &R->h);
	if (r) {
		fprintf(stderr, "vmm-mini run: VMBus in guest RAM: %s\n", strerror(-r));
		return 1;
	}
	vmbus_host_layout(R->h, &lay);
	efd = eventfd(0, EFD_CLOEXEC);
	r = efd < 0 ? -errno : vmm_add_doorbell(vm, VMM_DOORBELL_VMBUS, vmbus_host_event_fd(R->h));
	if (!r)
		r = vmm_add_wake(vm, 0, efd);
	if (efd >= 0)
		close(efd);	/* the VM keeps its own */
	if (r) {
		fprintf(stderr, "vmm-mini run: %s\n", vmm_error(vm));
		return 1;
	}
	R->boot->doorbells = VMM_DOORBELL_VMBUS + 1;
	R->boot->vmbus_doorbell = VMM_DOORBELL_VMBUS;
	R->boot->vmbus_event_gpa = lay.event_gpa;
	R->boot->vmbus_msg_g2h_gpa = lay.msg_g2h_gpa;
	R->boot->vmbus_msg_h2g_gpa = lay.msg_h2g_gpa;
	R->boot->vmbus_msg_ring_bytes = lay.msg_ring_bytes;
	R->boot->free_end = lay.guest_bytes;	/* the transport pages are the host's */

	/* this thread and those it starts (bus, storvsp, control) share the
	 * service CPU; the vCPU threads pin themselves apart */
	cpu = vmm_pin_service_thread(vm);
	sc.mgr = vmbus_host_mgr(R->h);
	sc.guest_mem = hc.mem;
	sc.guest_bytes = lay.guest_bytes;
	sc.cpu = cpu >= 0 ? cpu : -1;
	sc.switchable = true;
	r = vmm_stor_new(&sc, &R->st);
	if (r) {
		fprintf(stderr, "vmm-mini run: storvsp: %s\n", strerror(-r));
		return 1;
	}
	/* the VSS integration service: the guest freezes for live backups */
	r = vmm_vss_offer(sc.mgr, &R->vss);
	if (r) {
		fprintf(stderr, "vmm-mini run: vss: %s\n", strerror(-r));
		return 1;
	}
	for (int i = 0; i < ndisks; i++) {
		char *path;
		int lun;
		bool ro;

		if (vmm_disk_spec(disks[i], &path, &lun, &ro)) {
			fprintf(stderr, "vmm-mini run: bad --disk '%s' (IMAGE[,lun=N][,ro], N < 64)\n",
				disks[i]);
			return 2;
		}
		r = vmm_stor_add(R->st, path, lun, ro, &se);
		free(path);
		if (r < 0) {
			fprintf(stderr, "vmm-mini run: %s\n", se.msg);
			return 1;
		}
	}
	if (ctl_path) {
		r = vmm_ctl_start(ctl_path, control_line, R, &R->ctl);
		if (r) {
			fprintf(stderr, "vmm-mini run: control socket %s: %s\n", ctl_path,
				strerror(-r));
			return 1;
		}
	}
	r = -pthread_create(&R->bus, NULL, bus_thread, R);
	if (r) {
		fprintf(stderr, "vmm-mini run: bus thread: %s\n", strerror(-r));
		return 1;
	}
	R->bus_started = true;
	return 0;
}

/* After the run (or a failed start): drain, flush, close.  Returns 1 when
 * a disk could not be flushed or closed. */
static int stor_stop(struct run_stor *R)
{
	struct vmm_stor_err se = { 0 };
	int rc = 0;

	vmm_ctl_stop(R->ctl);
	R->ctl = NULL;
	if (R->st && vmm_stor_quiesce(R->st, 10000))
		fprintf(stderr, "vmm-mini run: requests still in flight after 10 s\n");
	__atomic_store_n(&R->bus_quit, 1, __ATOMIC_SEQ_CST);
	if (R->bus_started)
		pthread_join(R->bus, NULL);
	if (R->st && vmm_stor_flush(R->st, &se)) {
		fprintf(stderr, "vmm-mini run: %s\n", se.msg);
		rc = 1;
	}
	vmbus_host_free(R->h);	/* closes the channels: storvsp threads end */
	vss_free(R->vss);
	if (R->st && vmm_stor_free(R->st, &se)) {
		fprintf(stderr, "vmm-mini run: %s\n", se.msg);
		rc = 1;
	}
	return rc;
}

/* One guest console text, a line of stderr each (control characters other
 * than tab shown as '?': the guest's bytes are not trusted). */
static void console(void *opaque, unsigned cpu, const char *text, size_t len)
{
	char line[4096 + 1];
	size_t n = 0;

	(void)opaque;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || text[i] == '\n') {
			line[n] = '\0';
			if (cpu)
				fprintf(stderr, "guest cpu %u: %s\n", cpu, line);
			else
				fprintf(stderr, "guest: %s\n", line);
			n = 0;
			continue;
		}
		line[n++] = (text[i] == '\t' || (unsigned char)text[i] >= 0x20) &&
					    text[i] != 0x7f ? text[i] : '?';
	}
}

static void print_stats(struct vmm *vm, bool user_mode)
{
	static const char *const names[] = {
		"exits", "insn_emulation", "io_exits", "mmio_exits", "halt_exits",
		"irq_injections", "irq_exits", "pf_taken", "signal_exits",
	};
	char buf[512];
	size_t n = 0;

	n += (size_t)snprintf(buf, sizeof(buf), "stats:");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && n < sizeof(buf); i++) {
		uint64_t v;

		if (vmm_stat(vm, names[i], &v) == 0)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, " %s=%" PRIu64,
					      names[i], v);
	}
	fprintf(stderr, "%s\n", n > 6 ? buf : user_mode ? "stats: none in user mode"
						       : "stats: KVM gives no binary statistics");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vmm-mini run [--mem SIZE] [--cpus N] [--workload NAME[,ARGS]]\n"
		   "                    [--timeout SECONDS] [--stats] [--user-mode]\n"
		   "                    [--disk IMAGE[,lun=N][,ro]]... [--control CTL]\n"
		   "workloads: hello, fault[,ADDR], spin[,N], doorbell[,N], exits[,N]\n"
		   "  with disks: records[,seconds=N][,count=N][,qd=N][,batch=N][,slots=N][,flush_ms=N]\n"
		   "                     [,vss=on|off|refuse|hang]\n"
		   "              randrw[,lun=N][,bs=N][,qd=N][,seconds=N][,read=PCT][,seq=1][,span_mb=N]\n"
		   "--user-mode: no KVM; the guest's code runs in host threads, its port\n"
		   "  writes and INT3s caught as signals (a test aid, no isolation)\n"
		   "--control CTL: a unix socket, one JSON object a line: status, disks, pause,\n"
		   "  resume, disk-add, disk-remove, snapshot, merge, backup-snapshot, stats, quit\n");
}

int vmm_cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "workload", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "stats", no_argument, NULL, 's' },
		{ "user-mode", no_argument, NULL, 'u' },
		{ "disk", required_argument, NULL, 'd' },
		{ "control", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmm_config cfg = {
		.mem_bytes = 64ull << 20,
		.cpus = 1,
		.image = vmm_mini_guest_start,
		.image_bytes = (size_t)(vmm_mini_guest_end - vmm_mini_guest_start),
		.workload = "hello",
		.console = console,
	};
	unsigned timeout_s = 60;
	int stats = 0, c, rc;
	struct vmm_result res;
	struct vmm_echo *echo = NULL;
	struct run_stor R = { 0 };
	char *disks[MAX_DISKS];
	const char *ctl_path = NULL;
	int ndisks = 0;
	struct vmm *vm;
	char err[256];
	char *end;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (util_parse_size(optarg, &cfg.mem_bytes) < 0) {
				fprintf(stderr, "vmm-mini run: --mem %s: not a size\n", optarg);
				return 2;
			}
			break;
		case 'c':
			cfg.cpus = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !*optarg) {
				fprintf(stderr, "vmm-mini run: --cpus %s: not a number\n", optarg);
				return 2;
			}
			break;
		case 'w':
			cfg.workload = optarg;
			break;
		case 't':
			timeout_s = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !*optarg || timeout_s > 86400) {
				fprintf(stderr, "vmm-mini run: --timeout %s: want seconds (0 = none)\n",
					optarg);
				return 2;
			}
			break;
		case 's':
			stats = 1;
			break;
		case 'u':
			cfg.user_mode = true;
			break;
		case 'd':
			if (ndisks == MAX_DISKS) {
				fprintf(stderr, "vmm-mini run: too many disks\n");
				return 2;
			}
			disks[ndisks++] = optarg;
			break;
		case 'C':
			ctl_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (ctl_path && !ndisks)) {
		usage(stderr);
		return 2;
	}
	R.workload = cfg.workload;

	rc = vmm_create(&cfg, &vm, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "vmm-mini run: %s\n", err);
		return 1;
	}
	if (ndisks) {
		rc = stor_start(&R, vm, disks, ndisks, ctl_path);
		if (rc) {
			stor_stop(&R);
			vmm_destroy(vm);
			return rc;
		}
		term_asks_guest = true;
	} else {
		rc = vmm_echo_start(vm, &echo);
		if (rc) {
			fprintf(stderr, "vmm-mini run: %s\n", vmm_error(vm));
			vmm_destroy(vm);
			return 1;
		}
	}
	running = vm;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	rc = vmm_run(vm, timeout_s * 1000, &res);
	vmm_echo_stop(echo);
	if (ndisks && stor_stop(&R) && rc == 0 && res.kind == VMM_EXIT_GUEST && res.code == 0)
		res.code = 1;	/* the guest is fine, a disk is not */
	if (rc) {
		fprintf(stderr, "vmm-mini run: %s\n", vmm_error(vm));
		rc = 1;
	} else if (res.kind == VMM_EXIT_GUEST) {
		rc = res.code == 0 ? 0 : (res.code & 0xff) ? res.code & 0xff : 1;
		if (rc)
			fprintf(stderr, "vmm-mini run: %s\n", res.msg);
	} else {
		fprintf(stderr, "vmm-mini run: %s\n", res.msg);
		rc = 1;
	}
	if (stats)
		print_stats(vm, cfg.user_mode);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	running = NULL;
	term_asks_guest = false;
	vmm_destroy(vm);
	return rc;
}
