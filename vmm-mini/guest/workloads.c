/* workloads: what the guest does, chosen by the boot page's
 * "NAME[,ARG...]" (vmm-mini run --workload).  vCPU 0 runs the workload;
 * the others report that they are up and sleep until the VM stops. */
#include "vmm-mini/guest/rt.h"
#include "vmm-mini/guest/workloads.h"

#define MAX_ARGS 4

struct workload {
	const char *name;
	int (*run)(const uint64_t *arg, unsigned nargs);
	const char *usage;
	int (*run_kv)(const char *args);	/* KEY=N arguments instead */
};

static volatile uint32_t cpu_up[VMM_MAX_CPUS];

/* hello: prints the machine it found and how many vCPUs came up. */
static int w_hello(const uint64_t *arg, unsigned nargs)
{
	const struct vmm_boot *b = rt_boot();
	unsigned up = 0;

	(void)arg;
	(void)nargs;
	/* Bounded wait (about 1e8 PAUSEs at most) for the other vCPUs. */
	for (uint64_t spin = 0; spin < 100000000; spin++) {
		up = 0;
		for (unsigned i = 0; i < b->cpus && i < VMM_MAX_CPUS; i++)
			up += cpu_up[i];
		if (up == b->cpus)
			break;
		rt_pause();
	}
	rt_printf("hello from the guest: %u of %u vCPUs up, %llu MiB, TSC %llu kHz",
		  up, b->cpus, (unsigned long long)(b->mem_bytes >> 20),
		  (unsigned long long)b->tsc_khz);
	return up == b->cpus ? 0 : 1;
}

/* fault[,ADDR]: stores to an address with no page (default 0xdead0000,
 * above any RAM this VMM gives): the VMM reports a #PF and exits non-zero. */
static int w_fault(const uint64_t *arg, unsigned nargs)
{
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)(nargs ? arg[0] : 0xdead0000ull);

	rt_printf("fault: storing to 0x%llx", (unsigned long long)(uintptr_t)p);
	*p = 1;
	rt_printf("fault: the store to 0x%llx did not fault", (unsigned long long)(uintptr_t)p);
	return 1;
}

/* spin[,N]: N rounds of xorshift at CPL3, no exits; prints the rate. */
static int w_spin(const uint64_t *arg, unsigned nargs)
{
	uint64_t n = nargs ? arg[0] : 100000000ull;
	uint64_t x = 88172645463325252ull, acc = 0, t0, t1;

	t0 = rt_rdtsc();
	for (uint64_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		acc += x;
	}
	t1 = rt_rdtsc();
	rt_printf("spin: %llu rounds in %llu us (%llu ticks), checksum %llx",
		  (unsigned long long)n, (unsigned long long)rt_ticks_ns(t1 - t0) / 1000,
		  (unsigned long long)(t1 - t0), (unsigned long long)acc);
	return 0;
}

static void report(const char *what, uint64_t n, uint64_t sum, uint64_t min, uint64_t max)
{
	rt_printf("%s: %llu round trips, average %llu.%02llu us, min %llu.%02llu us, "
		  "max %llu.%02llu us",
		  what, (unsigned long long)n,
		  (unsigned long long)(rt_ticks_ns(sum / n) / 1000),
		  (unsigned long long)(rt_ticks_ns(sum / n) % 1000 / 10),
		  (unsigned long long)(rt_ticks_ns(min) / 1000),
		  (unsigned long long)(rt_ticks_ns(min) % 1000 / 10),
		  (unsigned long long)(rt_ticks_ns(max) / 1000),
		  (unsigned long long)(rt_ticks_ns(max) % 1000 / 10));
}

/* doorbell[,N]: N times: ring doorbell 0, sleep until the VMM's echo
 * service has bumped wake_seq[0] and interrupted us.  Each round trip is
 * an ioeventfd exit, a host thread, an irqfd and a sleep exit. */
static int w_doorbell(const uint64_t *arg, unsigned nargs)
{
	const struct vmm_boot *b = rt_boot();
	uint64_t n = nargs ? arg[0] : 1000, sum = 0, min = ~0ull, max = 0;

	if (b->doorbells < 1) {
		rt_printf("doorbell: the VMM registered no doorbell");
		return 2;
	}
	if (n == 0)
		n = 1;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t seq = b->wake_seq[0], t0 = rt_rdtsc(), dt;
		/* Bounded: a lost wake-up fails the workload, not the host. */
		unsigned sleeps = 0;

		rt_doorbell(0);
		while (b->wake_seq[0] == seq) {
			if (++sleeps > 1000) {
				rt_printf("doorbell: no wake-up after round trip %llu",
					  (unsigned long long)i);
				return 1;
			}
			rt_sleep_while(&b->wake_seq[0], seq);
		}
		dt = rt_rdtsc() - t0;
		sum += dt;
		min = dt < min ? dt : min;
		max = dt > max ? dt : max;
	}
	report("doorbell", n, sum, min, max);
	return 0;
}

/* exits[,N]: the cost of one exit of each kind the guest can cause on
 * purpose: an OUT served in userspace (VMM_PORT_NOP) and, when the VMM
 * registered doorbell 1 as a sink, an OUT to an ioeventfd. */
static int w_exits(const uint64_t *arg, unsigned nargs)
{
	const struct vmm_boot *b = rt_boot();
	uint64_t n = nargs ? arg[0] : 1000;
	uint64_t t0, t1;

	if (n == 0)
		n = 1;
	t0 = rt_rdtsc();
	for (uint64_t i = 0; i < n; i++)
		rt_outl(VMM_PORT_NOP, 0);
	t1 = rt_rdtsc();
	rt_printf("exits: OUT to a userspace port: %llu ns each (%llu)",
		  (unsigned long long)rt_ticks_ns((t1 - t0) / n), (unsigned long long)n);
	if (b->doorbells >= 2) {
		t0 = rt_rdtsc();
		for (uint64_t i = 0; i < n; i++)
			rt_doorbell(1);
		t1 = rt_rdtsc();
		rt_printf("exits: OUT to an ioeventfd port: %llu ns each (%llu)",
			  (unsigned long long)rt_ticks_ns((t1 - t0) / n), (unsigned long long)n);
	}
	t0 = rt_rdtsc();
	for (uint64_t i = 0; i < n; i++)
		(void)rt_rdtsc();
	t1 = rt_rdtsc();
	rt_printf("exits: RDTSC (no exit): %llu ns each", (unsigned long long)rt_ticks_ns((t1 - t0) / n));
	return 0;
}

static const struct workload workloads[] = {
	{ "hello", w_hello, "hello", NULL },
	{ "fault", w_fault, "fault[,ADDR]", NULL },
	{ "spin", w_spin, "spin[,N]", NULL },
	{ "doorbell", w_doorbell, "doorbell[,N]", NULL },
	{ "exits", w_exits, "exits[,N]", NULL },
	{ "records", NULL, "records[,seconds=N][,count=N][,qd=N][,batch=N][,slots=N][,flush_ms=N]"
			   "[,vss=on|off|refuse|hang]",
	  w_records },
	{ "randrw", NULL, "randrw[,lun=N][,bs=N][,qd=N][,seconds=N][,read=PCT][,seq=1][,span_mb=N]",
	  w_randrw },
};

/* Splits "NAME[,N[,N...]]"; returns the workload or NULL. */
static const struct workload *parse(const char *s, uint64_t *arg, unsigned *nargs)
{
	size_t len = 0;

	while (s[len] && s[len] != ',')
		len++;
	*nargs = 0;
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (workloads[i].run_kv && strlen(workloads[i].name) == len &&
		    rt_strncmp(workloads[i].name, s, len) == 0)
			return &workloads[i];
	for (const char *p = s + len; *p == ',';) {
		p++;
		if (*nargs == MAX_ARGS || !rt_parse_u64(&p, &arg[*nargs]))
			return NULL;
		++*nargs;
		if (*p && *p != ',')
			return NULL;
	}
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (strlen(workloads[i].name) == len &&
		    rt_strncmp(workloads[i].name, s, len) == 0)
			return &workloads[i];
	return NULL;
}

int guest_main(unsigned cpu, const struct vmm_boot *boot)
{
	const char *name = boot->workload[0] ? boot->workload : "hello";
	const struct workload *w;
	uint64_t arg[MAX_ARGS];
	unsigned nargs;

	if (boot->magic != VMM_BOOT_MAGIC)
		return 3;	/* no console contract without a boot page */
	if (cpu != 0) {
		if (cpu < VMM_MAX_CPUS)
			cpu_up[cpu] = 1;
		for (;;)	/* until the VM stops */
			rt_sleep();
	}
	cpu_up[0] = 1;
	w = parse(name, arg, &nargs);
	if (!w) {
		rt_printf("unknown workload or bad arguments: \"%s\"; workloads:", name);
		for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
			rt_printf("  %s", workloads[i].usage);
		return 2;
	}
	if (w->run_kv) {
		const char *a = name;

		while (*a && *a != ',')
			a++;
		return w->run_kv(*a ? a + 1 : a);
	}
	return w->run(arg, nargs);
}
