/* rt: the built-in guest's runtime (freestanding, CPL3, 64-bit).
 *
 * What a CPL3 guest may do here (../shared/notes/kvm-on-this-host.md):
 * RDTSC and PAUSE run natively; OUT to the ports the TSS I/O bitmap allows
 * (a console line, the exit status, doorbells); INT3, which the VMM's IDT
 * turns into "sleep until an interrupt".  No HLT, CPUID, VMCALL, SYSCALL or
 * INT n (they fault or hang), no MMIO.
 *
 * The guest runs with interrupts disabled (IF=0) outside the sleep stub, so
 * a wake-up that arrives while it is awake stays pending and the next
 * rt_sleep() returns at once: test the condition, then sleep, in a loop
 * (rt_sleep_while() re-checks a word with interrupts off, in the stub).
 */
#ifndef GUEST_RT_H
#define GUEST_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm-mini/vmm-abi.h"

/* libc functions the compiler may call on its own. */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

int rt_strncmp(const char *a, const char *b, size_t n);

static inline const struct vmm_boot *rt_boot(void);

/* Writes a port: a store to the VMM's port window where it has one (KVM),
 * else `outl` (vmm-abi.h, "I/O ports"). */
static inline void rt_outl(uint16_t port, uint32_t v)
{
	uint64_t win = rt_boot()->io_window;

	if (win)
		*(volatile uint32_t *)(win + 4ull * port) = v;
	else
		__asm__ __volatile__("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint64_t rt_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static inline void rt_pause(void)
{
	__asm__ __volatile__("pause" ::: "memory");
}

/* Sleeps until the next interrupt (or returns at once if one is pending).
 * One exit, about 20-80 us on this host. */
static inline void rt_sleep(void)
{
	__asm__ __volatile__("int3" : : "d"(0ull), "a"(0ull) : "memory");
}

/* Sleeps until the next interrupt unless *p != v already (checked with
 * interrupts off, in the sleep stub): the wait to use when a peer changes
 * *p and then interrupts us. */
static inline void rt_sleep_while(const volatile uint64_t *p, uint64_t v)
{
	__asm__ __volatile__("int3" : : "d"(p), "a"(v) : "memory");
}

/* Rings doorbell n: an ioeventfd in the VMM, no userspace exit. */
static inline void rt_doorbell(unsigned n)
{
	rt_outl((uint16_t)(VMM_PORT_DOORBELL + n), 1);
}

/* This CPU's index, from the stack it runs on (one stack a vCPU). */
static inline unsigned rt_cpu(void)
{
	uint64_t sp;

	__asm__("mov %%rsp, %0" : "=r"(sp));
	return (unsigned)((sp - VMM_GPA_USTACK - 1) / VMM_USTACK_BYTES);
}

/* The boot page the VMM filled. */
static inline const struct vmm_boot *rt_boot(void)
{
	return (const struct vmm_boot *)VMM_GPA_BOOT;
}

/* Nanoseconds in `ticks` TSC ticks (0 when the TSC rate is unknown). */
uint64_t rt_ticks_ns(uint64_t ticks);

/* Formats one console line (one exit): %d %u %x %s %c %%, with an optional
 * 'l' or 'll' (64-bit) and a field width ("%8llu", "%08x").  A trailing
 * newline is optional. */
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Ends the VM with `status` (0 = success).  Does not return. */
__attribute__((noreturn)) void rt_exit(int status);

/* Parses a decimal or 0x-prefixed number at *s, advancing *s.  Returns
 * false when there is none. */
bool rt_parse_u64(const char **s, uint64_t *v);

/* In "KEY=N,KEY=N..." (args; may be NULL), the number given for key:
 * true and *v set when present and well-formed. */
bool rt_arg(const char *args, const char *key, uint64_t *v);
/* In the same "KEY=V,..." args, the text given for key (up to the next
 * comma, cut to cap - 1 bytes) into out, NUL-terminated: true when
 * present. */
bool rt_arg_str(const char *args, const char *key, char *out, size_t cap);

/* The workload selector (workloads.c), called by the entry stub on every
 * vCPU; its return value is the exit status. */
int guest_main(unsigned cpu, const struct vmm_boot *boot);

#endif
