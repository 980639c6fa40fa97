/* run: `vmm-mini run [--mem SIZE] [--cpus N] [--workload NAME[,ARGS]]
 * [--timeout SECONDS] [--stats] [--user-mode]`: boots the built-in guest
 * on KVM and prints its console on stderr ("guest: ...").  --user-mode runs
 * it without KVM, for tests on machines that have none (ubackend.c).
 *
 * Exit status: the guest's own status (0 = success; a non-zero status
 * stays non-zero); 1 when the guest faulted, the run timed out or KVM
 * failed, with one line saying which; 2 for a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "vmm-mini/vmm-kvm.h"

/* make's freestanding rule: the flat image of vmm-mini/guest/. */
extern const char vmm_mini_guest_start[], vmm_mini_guest_end[];

static struct vmm *running;

static void on_signal(int sig)
{
	(void)sig;
	if (running)
		vmm_stop(running);
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
		   "workloads: hello, fault[,ADDR], spin[,N], doorbell[,N], exits[,N]\n"
		   "--user-mode: no KVM; the guest's code runs in host threads, its port\n"
		   "  writes and INT3s caught as signals (a test aid, no isolation)\n");
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
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	rc = vmm_create(&cfg, &vm, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "vmm-mini run: %s\n", err);
		return 1;
	}
	rc = vmm_echo_start(vm, &echo);
	if (rc) {
		fprintf(stderr, "vmm-mini run: %s\n", vmm_error(vm));
		vmm_destroy(vm);
		return 1;
	}
	running = vm;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	rc = vmm_run(vm, timeout_s * 1000, &res);
	vmm_echo_stop(echo);
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
	vmm_destroy(vm);
	return rc;
}
