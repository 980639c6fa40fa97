/* ubackend: the user-mode backend, a test aid for machines without KVM.
 *
 * The guest's code is CPL3 x86-64 with an identity map, so a host thread
 * can run it as it is: the guest area of RAM ([1 MiB, mem_bytes) of the
 * memfd) is mapped a second time at its own guest address, and each vCPU
 * thread jumps to the image's entry on that vCPU's guest stack.  What a CPU
 * would deliver to the VMM's IDT arrives as signals on an alternate stack:
 *   OUT (a #GP at CPL3 without ioperm)   -> SIGSEGV: decoded, checked
 *        against the TSS I/O bitmap the VMM built, served by the same
 *        vmm_port_out() as a KVM exit, RIP stepped past it;
 *   INT3 (sleep)                          -> SIGTRAP: wait for the vCPU's
 *        wake-up eventfd (or the end of the run), then resume;
 *   any other fault                       -> the same one-line report as the
 *        CPL0 stubs give, vector from the kernel's trap number, CR2 from
 *        si_addr.
 * There is no isolation: a guest could write anywhere in the process.  It
 * exists so that the guest runtime, the workloads and the VMM's port,
 * doorbell and wake-up paths run in tests where /dev/kvm does not; it is
 * never the default.  (RAM above the guest's is reserved PROT_NONE up to
 * 4 GiB, so that a stray guest store faults instead of landing in the
 * host's memory.)
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "vmm-mini/vmm-int.h"

#define ALTSTACK_BYTES (64 * 1024)

static __thread struct vmm_vcpu *u_cur;		/* this thread's vCPU */
static __thread volatile sig_atomic_t u_in_guest;	/* guest code is running */
static __thread sigjmp_buf u_leave;

/* Jumps to the guest's entry (rcx) on its stack (rdx) with rdi = cpu and
 * rsi = boot page, as KVM_SET_REGS would start it.  Never returns: the
 * thread leaves the guest by siglongjmp from a signal handler. */
void vmm_user_enter(uint64_t cpu, uint64_t boot, uint64_t rsp, uint64_t rip);
__asm__("	.text\n"
	"	.globl vmm_user_enter\n"
	"	.hidden vmm_user_enter\n"
	"	.type vmm_user_enter, @function\n"
	"vmm_user_enter:\n"
	"	mov %rdx, %rsp\n"
	"	xor %ebp, %ebp\n"
	"	jmp *%rcx\n"
	"	.size vmm_user_enter, . - vmm_user_enter\n");

int vmm_user_map(struct vmm *vm)
{
	uint64_t len = vm->mem_bytes - VMM_GPA_IMAGE;
	void *p = mmap((void *)VMM_GPA_IMAGE, len, PROT_READ | PROT_WRITE | PROT_EXEC,
		       MAP_SHARED | MAP_FIXED_NOREPLACE, vm->mem_fd, VMM_GPA_IMAGE);

	if (p == MAP_FAILED)
		return vmm_set_error(vm, -errno,
				     "user mode: guest RAM at 0x%llx in this process: %s",
				     VMM_GPA_IMAGE, strerror(errno));
	if (p != (void *)VMM_GPA_IMAGE) {	/* a kernel without NOREPLACE */
		munmap(p, len);
		return vmm_set_error(vm, -EEXIST, "user mode: address 0x%llx is taken",
				     VMM_GPA_IMAGE);
	}
	vm->user_map = p;
	/* Best effort: holes that fault like the VM's unmapped pages. */
	p = mmap((void *)vm->mem_bytes, (4ull << 30) - vm->mem_bytes, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == (void *)vm->mem_bytes)
		vm->user_guard = p;
	else if (p != MAP_FAILED)
		munmap(p, (4ull << 30) - vm->mem_bytes);
	return 0;
}

void vmm_user_unmap(struct vmm *vm)
{
	if (vm->user_map)
		munmap(vm->user_map, vm->mem_bytes - VMM_GPA_IMAGE);
	if (vm->user_guard)
		munmap(vm->user_guard, (4ull << 30) - vm->mem_bytes);
}

static __attribute__((noreturn)) void leave(void)
{
	u_in_guest = 0;
	siglongjmp(u_leave, 1);
}

static bool port_allowed(const struct vmm *vm, unsigned cpu, unsigned port)
{
	const uint8_t *bm = vm->mem + VMM_GPA_TSS + cpu * VMM_TSS_STRIDE + TSS_IOPB;

	return !(bm[port / 8] >> (port % 8) & 1);
}

/* Decodes an OUT at ip.  Returns its length (0: not an OUT). */
static unsigned decode_out(const uint8_t *ip, const greg_t *g, unsigned *port,
			   unsigned *size, uint32_t *v)
{
	unsigned n = 0, opsize = 4;

	if (ip[0] == 0x66) {
		opsize = 2;
		n = 1;
	}
	switch (ip[n]) {
	case 0xee:
		*size = 1, *port = (unsigned)(g[REG_RDX] & 0xffff), n += 1;
		break;
	case 0xef:
		*size = opsize, *port = (unsigned)(g[REG_RDX] & 0xffff), n += 1;
		break;
	case 0xe6:
		*size = 1, *port = ip[n + 1], n += 2;
		break;
	case 0xe7:
		*size = opsize, *port = ip[n + 1], n += 2;
		break;
	default:
		return 0;
	}
	*v = (uint32_t)g[REG_RAX] & (*size == 4 ? 0xffffffffu : *size == 2 ? 0xffffu : 0xffu);
	return n;
}

static bool in_guest_ram(const struct vmm *vm, uint64_t a)
{
	return a >= VMM_GPA_IMAGE && a < vm->mem_bytes - 16;
}

static void on_fault_signal(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	struct vmm_vcpu *vc = u_cur;
	struct vmm_fault f;
	uint64_t rip = (uint64_t)g[REG_RIP];

	if (!vc || !u_in_guest) {
		/* The host itself crashed: the default action, as if we were
		 * not here (the instruction faults again on return). */
		signal(sig, SIG_DFL);
		return;
	}
	u_in_guest = 0;
	if (sig == SIGSEGV && in_guest_ram(vc->vm, rip)) {
		unsigned port, size, len;
		uint32_t v;

		len = decode_out((const uint8_t *)rip, g, &port, &size, &v);
		if (len && port != VMM_PORT_FAULT && port_allowed(vc->vm, vc->index, port)) {
			if (!vmm_port_out(vc->vm, vc, port, size, v) || vc->vm->stopping)
				leave();
			g[REG_RIP] += len;
			u_in_guest = 1;
			return;
		}
	}
	f = (struct vmm_fault){
		.cpu = vc->index,
		.vector = (uint64_t)g[REG_TRAPNO],
		.error = (uint64_t)g[REG_ERR],
		.rip = rip,
		.cs = 0x33,
		.rflags = (uint64_t)g[REG_EFL],
		.rsp = (uint64_t)g[REG_RSP],
		.cr2 = g[REG_TRAPNO] == 14 ? (uint64_t)(uintptr_t)si->si_addr : 0,
	};
	vmm_end_fault(vc->vm, &f);
	leave();
}

/* INT3: sleep until this vCPU's wake-up eventfd fires or the run ends. */
static void on_trap_signal(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	struct vmm_vcpu *vc = u_cur;
	struct vmm *vm;
	struct pollfd p[2];

	(void)si;
	if (!vc || !u_in_guest) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	u_in_guest = 0;
	vm = vc->vm;
	if (((const uint8_t *)uc->uc_mcontext.gregs[REG_RIP])[-1] != 0xcc) {
		struct vmm_fault f = { .cpu = vc->index, .vector = 1,
				       .rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP] };

		vmm_end_fault(vm, &f);
		leave();
	}
	/* The stub's condition: sleep only while *rdx == rax. */
	if (uc->uc_mcontext.gregs[REG_RDX]) {
		uint64_t a = (uint64_t)uc->uc_mcontext.gregs[REG_RDX];

		if (!in_guest_ram(vm, a)) {
			struct vmm_fault f = { .cpu = vc->index, .vector = 14, .cr2 = a,
					       .rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP] };

			vmm_end_fault(vm, &f);
			leave();
		}
		if (*(volatile uint64_t *)a != (uint64_t)uc->uc_mcontext.gregs[REG_RAX]) {
			u_in_guest = 1;
			return;
		}
	}
	p[0] = (struct pollfd){ .fd = vm->stop_efd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = vm->wake_efd[vc->index], .events = POLLIN };
	for (;;) {
		uint64_t n;

		if (vm->stopping || (poll(p, 2, -1) > 0 && (p[0].revents & POLLIN)))
			leave();
		if ((p[1].revents & POLLIN) && read(p[1].fd, &n, sizeof(n)) == sizeof(n))
			break;
	}
	u_in_guest = 1;
}

/* SIGUSR1 from vmm_run() when the run ends: leave the guest if this thread
 * is in it (if it is in one of the handlers above, SIGUSR1 is blocked
 * there and arrives as soon as they return to the guest). */
static void on_kick_signal(int sig)
{
	(void)sig;
	if (!u_cur || !u_in_guest)
		return;
	if (u_cur->vm->paused)
		vmm_pause_point(u_cur->vm);	/* poll(): async-signal-safe */
	if (u_cur->vm->stopping)
		leave();
}

static const int handled[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGUSR1 };

int vmm_user_signals(struct vmm *vm, bool install)
{
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++) {
		struct sigaction sa;

		if (!install) {
			sigaction(handled[i], &vm->user_old_sa[i], NULL);
			continue;
		}
		memset(&sa, 0, sizeof(sa));
		sigemptyset(&sa.sa_mask);
		sigaddset(&sa.sa_mask, SIGUSR1);
		sa.sa_flags = SA_ONSTACK;
		if (handled[i] == SIGUSR1) {
			sa.sa_handler = on_kick_signal;
		} else {
			sa.sa_flags |= SA_SIGINFO;
			sa.sa_sigaction = handled[i] == SIGTRAP ? on_trap_signal : on_fault_signal;
		}
		if (sigaction(handled[i], &sa, &vm->user_old_sa[i]) < 0)
			return vmm_set_error(vm, -errno, "sigaction: %s", strerror(errno));
	}
	return 0;
}

void *vmm_user_thread(void *arg)
{
	struct vmm_vcpu *vc = arg;
	stack_t ss = { .ss_size = ALTSTACK_BYTES };
	stack_t off = { .ss_flags = SS_DISABLE };
	sigset_t kick;

	vmm_pin_vcpu_thread(vc);
	ss.ss_sp = malloc(ALTSTACK_BYTES);
	if (!ss.ss_sp || sigaltstack(&ss, NULL) < 0) {
		vmm_end_error(vc->vm, vc->index, "user mode: no signal stack");
		free(ss.ss_sp);
		return NULL;
	}
	sigemptyset(&kick);
	sigaddset(&kick, SIGUSR1);
	u_cur = vc;
	if (sigsetjmp(u_leave, 1) == 0) {
		pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
		if (!vc->vm->stopping) {
			u_in_guest = 1;
			vmm_user_enter(vc->index, VMM_GPA_BOOT,
				       VMM_GPA_USTACK + (vc->index + 1) * VMM_USTACK_BYTES,
				       VMM_GPA_IMAGE);
		}
	}
	pthread_sigmask(SIG_BLOCK, &kick, NULL);
	u_in_guest = 0;
	u_cur = NULL;
	sigaltstack(&off, NULL);
	free(ss.ss_sp);
	return NULL;
}
