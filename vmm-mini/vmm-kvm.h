/* vmm-kvm: a small KVM virtual machine whose guest runs at CPL3 in long
 * mode (the `run` half of vmm-mini; vmm-mini/vmm.h of branch storvsp holds
 * the `host` half's disks and control requests: one module, prefix vmm_,
 * two headers until the branches meet, then one).
 *
 * The VMM sets the machine up from outside (vmm-abi.h gives the layout):
 * page tables, GDT, IDT, one TSS a vCPU with an I/O bitmap, a few CPL0
 * stubs, a boot page; it loads a flat guest image at 1 MiB and enters it at
 * CPL3 on every vCPU.  Guest RAM is a memfd mapped MAP_SHARED, so another
 * module or process can share it (vmm_mem_fd()); it is pre-touched before
 * the first KVM_RUN.
 *
 * Doorbells are KVM_IOEVENTFD ports (no userspace exit), wake-ups are MSI
 * routes fed by irqfds to VMM_VEC_WAKE.  Guest console lines go to a
 * callback; a guest exception ends the run with its vector, error code,
 * RIP and CR2.
 *
 * Library code: never prints or exits.  Functions return 0 or -errno and
 * record a message readable with vmm_error().
 *
 * Threads: vmm_run() starts one thread a vCPU, pinned to a CPU apart from
 * the caller's service threads when there are CPUs enough, and kicks them
 * with SIGUSR1 (a no-op handler is installed) when the VM stops.
 * vmm_stop() may be called from any thread or a signal handler.
 */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm-mini/vmm-abi.h"

struct vmm;

struct vmm_config {
	uint64_t mem_bytes;	/* multiple of 2 MiB in [VMM_MEM_MIN, VMM_MEM_MAX] */
	unsigned cpus;		/* 1 .. VMM_MAX_CPUS (and what KVM allows) */
	const void *image;	/* flat guest image, loaded at VMM_GPA_IMAGE */
	size_t image_bytes;
	const char *workload;	/* copied to the boot page; may be NULL */
	/* A guest console line (without its newline), from vCPU thread `cpu`.
	 * May be NULL (lines are dropped). */
	void (*console)(void *opaque, unsigned cpu, const char *line, size_t len);
	void *opaque;
	/* Test aid for machines without KVM: run the guest's CPL3 code in
	 * host threads, its OUTs and INT3s caught as signals (ubackend.c).  No
	 * isolation and no statistics; the guest must be the built-in one. */
	bool user_mode;
};

/* Creates the VM.  Returns 0 and *out, or -errno with a message in err
 * (which may be NULL).  -ENODEV/-EACCES: /dev/kvm missing or not usable. */
int vmm_create(const struct vmm_config *cfg, struct vmm **out, char *err, size_t errlen);
void vmm_destroy(struct vmm *vm);
const char *vmm_error(const struct vmm *vm);

/* Guest RAM: the memfd and the host mapping of [0, size). */
int vmm_mem_fd(const struct vmm *vm);
void *vmm_mem(const struct vmm *vm, uint64_t *size);
/* Host pointer to [gpa, gpa + len) if it lies in guest RAM, else NULL. */
void *vmm_gpa(const struct vmm *vm, uint64_t gpa, uint64_t len);

/* Doorbell n (port VMM_PORT_DOORBELL + n): a guest `outl` to the port
 * signals efd inside KVM.  Before vmm_run().  The VM keeps its own
 * duplicate of efd (here and in vmm_add_wake()): the caller may close its
 * own at any time. */
int vmm_add_doorbell(struct vmm *vm, unsigned n, int efd);
/* Wake-up of vCPU `cpu`: writing 1 to efd interrupts it with VMM_VEC_WAKE
 * (an MSI route and an irqfd).  Before vmm_run(). */
int vmm_add_wake(struct vmm *vm, unsigned cpu, int efd);
/* Bumps boot->wake_seq[cpu] then signals the wake-up registered for cpu
 * (or KVM_SIGNAL_MSI when none is).  Any thread. */
int vmm_wake(struct vmm *vm, unsigned cpu);

/* Pins the calling (service) thread to a CPU no vCPU thread uses when the
 * machine has more CPUs than vCPUs, else to the last vCPU's CPU's
 * neighbour.  Returns the CPU or -errno. */
int vmm_pin_service_thread(const struct vmm *vm);

enum vmm_exit_kind {
	VMM_EXIT_GUEST,		/* the guest wrote VMM_PORT_EXIT: code */
	VMM_EXIT_FAULT,		/* guest exception: fault */
	VMM_EXIT_STOPPED,	/* vmm_stop() */
	VMM_EXIT_TIMEOUT,	/* the run's time limit passed */
	VMM_EXIT_ERROR,		/* KVM failure, triple fault, bad port...: msg */
};

struct vmm_fault {
	unsigned cpu;
	uint64_t vector, error, rip, cs, rflags, rsp, cr2;
};

struct vmm_result {
	enum vmm_exit_kind kind;
	int code;		/* VMM_EXIT_GUEST */
	struct vmm_fault fault;	/* VMM_EXIT_FAULT */
	char msg[256];		/* one line describing how the run ended */
};

/* Runs every vCPU until the guest exits, faults, vmm_stop() is called or
 * timeout_ms passes (0 = none).  Returns 0 with *res filled, or -errno when
 * the run could not start.  Once per VM. */
int vmm_run(struct vmm *vm, unsigned timeout_ms, struct vmm_result *res);
void vmm_stop(struct vmm *vm);
/* Pause (every vCPU leaves the guest and waits) or resume the VM.  Any
 * thread, while vmm_run() runs.  A vCPU sleeping in the guest's sleep stub
 * stays asleep until its wake-up, then waits. */
void vmm_pause(struct vmm *vm, bool pause);
bool vmm_paused(const struct vmm *vm);

/* Name of an exception vector ("#PF"), or "" when it has none. */
const char *vmm_vector_name(uint64_t vector);

/* Statistic `name` (KVM_GET_STATS_FD) summed over the VM and its vCPUs.
 * -ENOENT: KVM has no such statistic. */
int vmm_stat(struct vmm *vm, const char *name, uint64_t *value);

/* The echo service behind the guest's `doorbell` and `exits` workloads:
 * doorbell 0 wakes vCPU 0 (vmm_wake()) from a service thread pinned apart
 * from the vCPUs; doorbell 1 is a sink nobody reads (an ioeventfd exit and
 * nothing else).  Start before vmm_run(), stop after it.  Returns 0 or
 * -errno (message in vmm_error()). */
struct vmm_echo;
int vmm_echo_start(struct vmm *vm, struct vmm_echo **out);
/* Stops the thread; returns how many doorbells it answered. */
uint64_t vmm_echo_stop(struct vmm_echo *e);

/* `vmm-mini run ...` (run.c): the program's subcommand; returns the exit
 * status and prints its messages. */
int vmm_cmd_run(int argc, char **argv);

#endif
