/* vmm-int: private to vmm-mini/.  The VM handle and the functions its
 * files share:
 *   kvm.c    /dev/kvm, the VM, guest RAM, vCPUs, irqchip, eventfds, stats
 *   vm.c     the machine the guest sees: page tables, GDT, IDT, TSSs, CPL0
 *            stubs, boot page, image, initial registers
 *   vcpu.c   vmm_run(): vCPU threads, exits, stop
 *   ubackend.c  the user-mode backend: the guest in host threads (tests)
 */
#ifndef VMM_INT_H
#define VMM_INT_H

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "vmm-mini/vmm-kvm.h"

struct vmm_vcpu {
	unsigned index;
	int fd;
	struct kvm_run *run;	/* mmap of the vCPU, run_size bytes */
	int stats_fd;		/* -1 when KVM has no binary stats */
	int host_cpu;		/* pinned to it; -1 = not pinned */
	pthread_t thread;
	bool started;
	struct vmm *vm;
};

struct vmm {
	int kvm_fd, vm_fd;
	int mem_fd;
	uint8_t *mem;		/* MAP_SHARED mapping of mem_fd */
	uint64_t mem_bytes;
	size_t run_size;
	uint64_t tsc_khz;

	unsigned cpus;
	struct vmm_vcpu vcpu[VMM_MAX_CPUS];
	/* The host CPUs the process could use when the VM was made, before
	 * any thread pinned itself: vCPU and service threads are placed
	 * among these (vcpu.c). */
	cpu_set_t host_cpus;
	int vm_stats_fd;

	/* Wake-up MSI routes: GSI VMM_GSI_BASE + cpu when wake_efd[cpu] >= 0. */
	int wake_efd[VMM_MAX_CPUS];
	unsigned doorbells;	/* highest registered doorbell + 1 */
	int doorbell_efd[VMM_DOORBELLS];

	void (*console)(void *opaque, unsigned cpu, const char *line, size_t len);
	void *opaque;

	/* Run state.  lock protects result and have_result. */
	pthread_mutex_t lock;
	int stop_efd;		/* written by vmm_stop() and by a vCPU that ends the run */
	volatile int stopping;	/* vCPU threads leave their loop */
	volatile int paused;	/* vmm_pause(): vCPU threads wait outside the guest */
	bool ran;
	bool have_result;
	struct vmm_result result;

	/* The user-mode backend (ubackend.c). */
	bool user_mode;
	void *user_map;		/* guest area mapped at its guest address */
	void *user_guard;	/* PROT_NONE above RAM, up to 4 GiB */
	struct sigaction user_old_sa[6];

	char err[256];
};

#define VMM_GSI_BASE 24	/* above the irqchip's legacy pins */

/* The machine vm.c builds (tests/unit/test-vmm-layout.c checks it). */
#define SEL_KCODE  0x08
#define SEL_UDATA  0x2b
#define SEL_UCODE  0x33
#define SEL_TSS(i) (0x40 + 16 * (i))

#define TSS_IOPB       104u			/* I/O bitmap offset in the TSS */
#define TSS_LIMIT      (TSS_IOPB + 8192u)	/* last byte: the 0xff terminator */

/* Stub area offsets from VMM_GPA_STUBS. */
#define STUB_VEC(v)    ((uint64_t)(v) * 16)	/* 256 x 16 bytes: report vector v */
#define STUB_COMMON    0x1000ull
#define STUB_SLEEP     0x1040ull
#define STUB_WAKE      0x1080ull
#define STUB_SPURIOUS  0x10c0ull

/* Records a message and returns err (a -errno). */
int vmm_set_error(struct vmm *vm, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* kvm.c */
int vmm_kvm_open(struct vmm *vm);
int vmm_kvm_mem(struct vmm *vm);
int vmm_kvm_vcpus(struct vmm *vm);
void vmm_kvm_close(struct vmm *vm);
int vmm_kvm_signal_msi(struct vmm *vm, unsigned cpu, unsigned vector);

/* vcpu.c */
/* Ends the run (the first call wins) with res, or with an error line. */
void vmm_end_run(struct vmm *vm, const struct vmm_result *res);
void vmm_end_error(struct vmm *vm, unsigned cpu, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Called by a vCPU thread outside the guest: waits (sleeping, polling the
 * stop eventfd every 10 ms) while the VM is paused and not stopping. */
void vmm_pause_point(struct vmm *vm);
/* Pins the calling thread to vc->host_cpu (when there is one). */
void vmm_pin_vcpu_thread(const struct vmm_vcpu *vc);
/* Ends the run with a guest fault (one line: vector, error, RIP, CR2). */
void vmm_end_fault(struct vmm *vm, const struct vmm_fault *f);
/* A guest OUT of `size` bytes (value v) to an allowed port other than the
 * fault port.  Returns false when the run ends. */
bool vmm_port_out(struct vmm *vm, struct vmm_vcpu *vc, unsigned port, unsigned size,
		  uint32_t v);

/* ubackend.c: the user-mode backend (no KVM; a test aid). */
int vmm_user_map(struct vmm *vm);
void vmm_user_unmap(struct vmm *vm);
int vmm_user_signals(struct vmm *vm, bool install);
void *vmm_user_thread(void *arg);

/* vm.c */
int vmm_machine_build(struct vmm *vm, const struct vmm_config *cfg);
int vmm_machine_enter(struct vmm *vm, struct vmm_vcpu *vc);
int vmm_machine_allow_port(struct vmm *vm, unsigned port);

#endif
