/* vcpu: vmm_run(): one thread a vCPU, pinned, looping on KVM_RUN and
 * serving the exits the guest may cause; the first thread that ends the
 * run records the result and wakes the caller, which kicks the others
 * (immediate_exit + SIGUSR1) and joins them.
 *
 * Exits the guest causes on purpose are few (each costs 25-70 us here):
 * a console line (one exit a line, not a character), the exit port, and
 * the fault report of a CPL0 stub.  Doorbells are ioeventfds and never
 * reach this file unless the guest used the wrong operand size.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm-mini/vmm-int.h"

const char *vmm_vector_name(uint64_t v)
{
	static const char *const names[32] = {
		"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
		"#DF", "", "#TS", "#NP", "#SS", "#GP", "#PF", "",
		"#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "", "",
		"", "", "", "", "#HV", "#VC", "#SX", "",
	};

	return v < 32 ? names[v] : "";
}

/* Records how the run ended (the first caller wins) and wakes vmm_run(). */
void vmm_end_run(struct vmm *vm, const struct vmm_result *res)
{
	uint64_t one = 1;

	pthread_mutex_lock(&vm->lock);
	if (!vm->have_result) {
		vm->result = *res;
		vm->have_result = true;
	}
	pthread_mutex_unlock(&vm->lock);
	vm->stopping = 1;
	(void)!write(vm->stop_efd, &one, sizeof(one));
}

void vmm_end_error(struct vmm *vm, unsigned cpu, const char *fmt, ...)
{
	struct vmm_result res = { .kind = VMM_EXIT_ERROR };
	va_list ap;
	int n = snprintf(res.msg, sizeof(res.msg), "vCPU %u: ", cpu);

	va_start(ap, fmt);
	vsnprintf(res.msg + n, sizeof(res.msg) - (size_t)n, fmt, ap);
	va_end(ap);
	vmm_end_run(vm, &res);
}

/* A CPL0 stub reported an exception: the frame {vector, error, rip, cs,
 * rflags, rsp, ss} is at the vCPU's rsp (on its CPL0 stack, in RAM; read
 * it through vmm_gpa() all the same: the guest controls its memory). */
static void on_fault(struct vmm *vm, struct vmm_vcpu *vc)
{
	struct vmm_fault fault, *f = &fault;
	struct kvm_regs r;
	struct kvm_sregs s;
	uint64_t frame[7];
	const void *p;

	if (ioctl(vc->fd, KVM_GET_REGS, &r) < 0 || ioctl(vc->fd, KVM_GET_SREGS, &s) < 0) {
		vmm_end_error(vm, vc->index, "guest fault, registers unreadable: %s",
			  strerror(errno));
		return;
	}
	p = vmm_gpa(vm, r.rsp, sizeof(frame));
	if (!p) {
		vmm_end_error(vm, vc->index, "guest fault with its frame outside RAM (rsp 0x%llx)",
			  (unsigned long long)r.rsp);
		return;
	}
	memcpy(frame, p, sizeof(frame));
	f->cpu = vc->index;
	f->vector = frame[0];
	f->error = frame[1];
	f->rip = frame[2];
	f->cs = frame[3];
	f->rflags = frame[4];
	f->rsp = frame[5];
	f->cr2 = s.cr2;
	vmm_end_fault(vm, f);
}

void vmm_end_fault(struct vmm *vm, const struct vmm_fault *f)
{
	struct vmm_result res = { .kind = VMM_EXIT_FAULT, .fault = *f };

	if (f->vector < 32)
		snprintf(res.msg, sizeof(res.msg),
			 "guest fault: vector %" PRIu64 " (%s) error 0x%" PRIx64
			 " at RIP 0x%" PRIx64 " CR2 0x%" PRIx64 " (cpu %u, CS 0x%" PRIx64
			 ", RSP 0x%" PRIx64 ")",
			 f->vector, vmm_vector_name(f->vector), f->error, f->rip, f->cr2,
			 f->cpu, f->cs, f->rsp);
	else
		snprintf(res.msg, sizeof(res.msg),
			 "guest fault: unexpected interrupt vector %" PRIu64 " at RIP 0x%" PRIx64
			 " (cpu %u)", f->vector, f->rip, f->cpu);
	vmm_end_run(vm, &res);
}

/* One console line: the guest wrote its length; the text is in its
 * console buffer.  Copied out before use (the guest may change it). */
static void on_console(struct vmm *vm, struct vmm_vcpu *vc, uint32_t len)
{
	char line[VMM_CONSOLE_BYTES];
	const void *p = vmm_gpa(vm, VMM_GPA_CONSOLE + vc->index * VMM_CONSOLE_BYTES,
				VMM_CONSOLE_BYTES);

	if (len > VMM_CONSOLE_BYTES)
		len = VMM_CONSOLE_BYTES;
	if (!p)
		return;
	memcpy(line, p, len);
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (vm->console)
		vm->console(vm->opaque, vc->index, line, len);
}

bool vmm_port_out(struct vmm *vm, struct vmm_vcpu *vc, unsigned port, unsigned size,
		  uint32_t v)
{
	switch (port) {
	case VMM_PORT_CONSOLE:
		on_console(vm, vc, v);
		return true;
	case VMM_PORT_NOP:
		return true;
	case VMM_PORT_EXIT: {
		struct vmm_result res = { .kind = VMM_EXIT_GUEST, .code = (int)v };

		snprintf(res.msg, sizeof(res.msg), "guest exited with status %d", (int)v);
		vmm_end_run(vm, &res);
		return false;
	}
	}
	if (port >= VMM_PORT_DOORBELL && port < VMM_PORT_DOORBELL + VMM_DOORBELLS &&
	    vm->doorbell_efd[port - VMM_PORT_DOORBELL] >= 0) {
		/* A doorbell written with another size than the ioeventfd's (or
		 * the user-mode backend, which has no ioeventfd). */
		uint64_t one = 1;

		(void)!write(vm->doorbell_efd[port - VMM_PORT_DOORBELL], &one, sizeof(one));
		return true;
	}
	vmm_end_error(vm, vc->index, "OUT of %u bytes to unknown port 0x%x", size, port);
	return false;
}

/* Returns false when the run ends. */
static bool on_io(struct vmm *vm, struct vmm_vcpu *vc)
{
	struct kvm_run *run = vc->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint32_t v = 0;
	unsigned port = run->io.port;

	if (run->io.direction == KVM_EXIT_IO_IN) {
		/* Nothing to read: all ones, as from an absent device. */
		memset(data, 0xff, (size_t)run->io.size * run->io.count);
		return true;
	}
	if (run->io.count != 1 || run->io.size > 4) {
		vmm_end_error(vm, vc->index, "string or wide OUT to port 0x%x", port);
		return false;
	}
	memcpy(&v, data, run->io.size);
	if (port == VMM_PORT_FAULT) {
		on_fault(vm, vc);
		return false;
	}
	return vmm_port_out(vm, vc, port, run->io.size, v);
}

/* A store to the port window is that port's OUT (vmm-abi.h, "I/O ports");
 * a load from it reads all ones, as IN does.  Returns false when the run
 * ends. */
static bool on_mmio(struct vmm *vm, struct vmm_vcpu *vc)
{
	struct kvm_run *run = vc->run;
	uint64_t gpa = run->mmio.phys_addr;
	uint32_t v = 0;

	if (gpa >= VMM_GPA_IOWIN && gpa - VMM_GPA_IOWIN < VMM_IOWIN_BYTES) {
		uint64_t off = gpa - VMM_GPA_IOWIN;

		if (!run->mmio.is_write) {
			memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
			return true;
		}
		if (off % 4 == 0 && run->mmio.len == 4) {
			memcpy(&v, run->mmio.data, sizeof(v));
			return vmm_port_out(vm, vc, (unsigned)(off / 4), 4, v);
		}
		vmm_end_error(vm, vc->index,
			      "guest store of %u bytes at GPA 0x%llx: the port window takes "
			      "aligned 4-byte stores",
			      run->mmio.len, (unsigned long long)gpa);
		return false;
	}
	vmm_end_error(vm, vc->index, "guest %s at GPA 0x%llx: no device there",
		      run->mmio.is_write ? "store" : "load", (unsigned long long)gpa);
	return false;
}

static bool on_exit(struct vmm *vm, struct vmm_vcpu *vc)
{
	struct kvm_run *run = vc->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return on_io(vm, vc);
	case KVM_EXIT_MMIO:
		return on_mmio(vm, vc);
	case KVM_EXIT_SHUTDOWN:
		vmm_end_error(vm, vc->index, "guest shut down (triple fault)");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		vmm_end_error(vm, vc->index, "KVM could not enter the guest: reason 0x%llx",
			  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		vmm_end_error(vm, vc->index, "KVM internal error, suberror %u",
			  run->internal.suberror);
		return false;
	case KVM_EXIT_HLT:
		vmm_end_error(vm, vc->index, "guest halted with no interrupt source");
		return false;
	case KVM_EXIT_INTR:
		return true;
	default:
		vmm_end_error(vm, vc->index, "unexpected KVM exit %u", run->exit_reason);
		return false;
	}
}

static void kick_handler(int sig)
{
	(void)sig;
}

/* CPUs the process could use when the VM was made, in order; returns how
 * many.  Not this thread's affinity: the caller may have pinned itself to
 * the service CPU already (vmm-mini run does), and the vCPUs must still go
 * to the others. */
static int allowed_cpus(const struct vmm *vm, int *list, int max)
{
	int n = 0;

	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &vm->host_cpus))
			list[n++] = c;
	return n;
}

/* vCPU i goes to the i-th CPU from the end; service threads to the first
 * (a different one whenever there are more CPUs than vCPUs).  On two CPUs
 * an unpinned spinning pair showed 10-100 ms tails (the notes). */
static int vcpu_host_cpu(const struct vmm *vm, unsigned i)
{
	int list[CPU_SETSIZE];
	int n = allowed_cpus(vm, list, CPU_SETSIZE);

	return n ? list[(n - 1 - (int)(i % (unsigned)n))] : -1;
}

int vmm_pin_service_thread(const struct vmm *vm)
{
	int list[CPU_SETSIZE];
	int n = allowed_cpus(vm, list, CPU_SETSIZE);
	cpu_set_t set;
	int err;

	if (n == 0)
		return -ENODEV;
	CPU_ZERO(&set);
	CPU_SET(list[0], &set);
	err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	return err ? -err : list[0];
}

void vmm_pin_vcpu_thread(const struct vmm_vcpu *vc)
{
	char name[16];
	cpu_set_t set;

	/* named, so that its placement can be seen (ps -L, /proc/PID/task) */
	snprintf(name, sizeof(name), "vcpu%u", vc->index);
	(void)pthread_setname_np(pthread_self(), name);
	if (vc->host_cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(vc->host_cpu, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *vcpu_thread(void *arg)
{
	struct vmm_vcpu *vc = arg;
	struct vmm *vm = vc->vm;
	sigset_t kick;

	vmm_pin_vcpu_thread(vc);
	sigemptyset(&kick);
	sigaddset(&kick, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);

	while (!vm->stopping) {
		if (vm->paused) {
			vmm_pause_point(vm);
			if (vm->stopping)
				break;
			__atomic_store_n(&vc->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			/* kick_all sets stopping before immediate_exit: a stop
			 * whose immediate_exit we just cleared is seen here; a
			 * pause that came after the check makes KVM_RUN return
			 * at once and we come back here */
			if (vm->stopping)
				break;
			if (vm->paused)
				continue;
		}
		if (ioctl(vc->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vmm_end_error(vm, vc->index, "KVM_RUN: %s", strerror(errno));
			break;
		}
		if (!on_exit(vm, vc))
			break;
	}
	return NULL;
}

static void kick_all(struct vmm *vm)
{
	vm->stopping = 1;
	for (unsigned i = 0; i < vm->cpus; i++) {
		struct vmm_vcpu *vc = &vm->vcpu[i];

		if (!vc->started)
			continue;
		/* immediate_exit covers a thread about to enter KVM_RUN, the
		 * signal one inside it. */
		if (vc->run)
			__atomic_store_n(&vc->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(vc->thread, SIGUSR1);
	}
}

static int start_vcpus(struct vmm *vm)
{
	sigset_t kick, old;
	int err = 0;

	/* Only the vCPU threads take SIGUSR1: they inherit it blocked and
	 * unblock it themselves. */
	sigemptyset(&kick);
	sigaddset(&kick, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &kick, &old);
	for (unsigned i = 0; i < vm->cpus && !err; i++) {
		struct vmm_vcpu *vc = &vm->vcpu[i];

		err = vm->user_mode ? 0 : vmm_machine_enter(vm, vc);
		if (err)
			break;
		vc->host_cpu = vcpu_host_cpu(vm, i);
		err = -pthread_create(&vc->thread, NULL,
				      vm->user_mode ? vmm_user_thread : vcpu_thread, vc);
		if (err)
			vmm_set_error(vm, err, "vCPU thread: %s", strerror(-err));
		else
			vc->started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

int vmm_run(struct vmm *vm, unsigned timeout_ms, struct vmm_result *res)
{
	struct sigaction sa;
	struct pollfd pfd = { .fd = vm->stop_efd, .events = POLLIN };
	int err;

	memset(res, 0, sizeof(*res));
	if (vm->ran)
		return vmm_set_error(vm, -EBUSY, "the VM already ran");
	vm->ran = true;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;	/* no SA_RESTART: KVM_RUN returns EINTR */
	sigemptyset(&sa.sa_mask);
	if (vm->user_mode)
		err = vmm_user_signals(vm, true);
	else if (sigaction(SIGUSR1, &sa, NULL) < 0)
		err = vmm_set_error(vm, -errno, "sigaction: %s", strerror(errno));
	else
		err = 0;
	if (err)
		return err;

	err = start_vcpus(vm);
	if (!err) {
		while (poll(&pfd, 1, timeout_ms ? (int)timeout_ms : -1) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_lock(&vm->lock);
	if (!vm->have_result) {
		vm->have_result = true;
		if (err) {
			vm->result.kind = VMM_EXIT_ERROR;
			snprintf(vm->result.msg, sizeof(vm->result.msg), "%s", vm->err);
		} else if (pfd.revents & POLLIN) {
			vm->result.kind = VMM_EXIT_STOPPED;
			snprintf(vm->result.msg, sizeof(vm->result.msg), "VM stopped");
		} else {
			vm->result.kind = VMM_EXIT_TIMEOUT;
			snprintf(vm->result.msg, sizeof(vm->result.msg),
				 "guest still running after %u ms: stopped", timeout_ms);
		}
	}
	*res = vm->result;
	pthread_mutex_unlock(&vm->lock);

	kick_all(vm);
	for (unsigned i = 0; i < vm->cpus; i++)
		if (vm->vcpu[i].started)
			pthread_join(vm->vcpu[i].thread, NULL);
	if (vm->user_mode)
		vmm_user_signals(vm, false);
	return 0;
}

void vmm_pause_point(struct vmm *vm)
{
	struct pollfd p = { .fd = vm->stop_efd, .events = POLLIN };

	while (vm->paused && !vm->stopping)
		(void)poll(&p, 1, 10);
}

void vmm_pause(struct vmm *vm, bool pause)
{
	__atomic_store_n(&vm->paused, pause ? 1 : 0, __ATOMIC_SEQ_CST);
	if (!pause)
		return;
	for (unsigned i = 0; i < vm->cpus; i++) {
		struct vmm_vcpu *vc = &vm->vcpu[i];

		if (!vc->started)
			continue;
		if (vc->run)
			__atomic_store_n(&vc->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(vc->thread, SIGUSR1);
	}
}

bool vmm_paused(const struct vmm *vm)
{
	return vm->paused;
}

void vmm_stop(struct vmm *vm)
{
	uint64_t one = 1;

	if (vm->stop_efd >= 0)
		(void)!write(vm->stop_efd, &one, sizeof(one));
}
