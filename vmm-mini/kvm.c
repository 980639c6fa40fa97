/* kvm: the VM's KVM objects: /dev/kvm, the VM, guest RAM (a memfd mapped
 * MAP_SHARED and pre-touched), the in-kernel irqchip, vCPUs with their
 * LAPIC, ioeventfd doorbells, irqfd wake-ups through MSI routes, and the
 * binary statistics (KVM_GET_STATS_FD).
 *
 * Facts of the host hypervisor that shaped this file are in
 * ../shared/notes/kvm-on-this-host.md ("What works").
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmm-mini/vmm-int.h"

int vmm_set_error(struct vmm *vm, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vm->err, sizeof(vm->err), fmt, ap);
	va_end(ap);
	return err;
}

const char *vmm_error(const struct vmm *vm)
{
	return vm->err;
}

int vmm_kvm_open(struct vmm *vm)
{
	int version;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = errno;
		return vmm_set_error(vm, e == ENOENT ? -ENODEV : -e,
				     "/dev/kvm: %s", strerror(e));
	}
	version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION)
		return vmm_set_error(vm, -ENODEV, "/dev/kvm: API version %d, want %d",
				     version, KVM_API_VERSION);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return vmm_set_error(vm, -errno, "KVM_CREATE_VM: %s", strerror(errno));
	/* Intel needs a TSS area for real mode only; harmless elsewhere, and
	 * refused by some hypervisors: not fatal. */
	(void)ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return vmm_set_error(vm, -errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	vm->run_size = (size_t)ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((ssize_t)vm->run_size < (ssize_t)sizeof(struct kvm_run))
		return vmm_set_error(vm, -ENODEV, "KVM_GET_VCPU_MMAP_SIZE: %s",
				     strerror(errno));
	vm->vm_stats_fd = ioctl(vm->vm_fd, KVM_GET_STATS_FD, 0);
	return 0;
}

/* Guest RAM: memfd, MAP_SHARED, every page written once by the host (the
 * notes: a first guest write to a page the host never touched costs
 * 26-45 us, 4-5 us after a pre-touch), then one memslot at GPA 0. */
int vmm_kvm_mem(struct vmm *vm)
{
	struct kvm_userspace_memory_region region;
	void *p;

	vm->mem_fd = memfd_create("vmm-ram", MFD_CLOEXEC);
	if (vm->mem_fd < 0)
		return vmm_set_error(vm, -errno, "memfd_create: %s", strerror(errno));
	if (ftruncate(vm->mem_fd, (off_t)vm->mem_bytes) < 0)
		return vmm_set_error(vm, -errno, "guest RAM of %llu bytes: %s",
				     (unsigned long long)vm->mem_bytes, strerror(errno));
	p = mmap(NULL, vm->mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vm->mem_fd, 0);
	if (p == MAP_FAILED)
		return vmm_set_error(vm, -errno, "mmap guest RAM: %s", strerror(errno));
	vm->mem = p;
#ifdef MADV_POPULATE_WRITE
	if (madvise(p, vm->mem_bytes, MADV_POPULATE_WRITE) < 0)
#endif
	{
		for (uint64_t off = 0; off < vm->mem_bytes; off += 4096)
			((volatile uint8_t *)vm->mem)[off] = 0;
	}
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = vm->mem_bytes,
		.userspace_addr = (uint64_t)(uintptr_t)vm->mem,
	};
	if (vm->user_mode)
		return vmm_user_map(vm);
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return vmm_set_error(vm, -errno, "KVM_SET_USER_MEMORY_REGION: %s",
				     strerror(errno));
	return 0;
}

/* RDTSC ticks per millisecond, from KVM or measured against the monotonic
 * clock (the guest's TSC runs at the host's rate: no TSC scaling here). */
static uint64_t tsc_khz(struct vmm *vm, int vcpu_fd)
{
	struct timespec a, b;
	uint64_t t0, t1, ns;
	int khz = vcpu_fd >= 0 ? ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0) : -1;

	if (khz > 0)
		return (uint64_t)khz;
	(void)vm;
	clock_gettime(CLOCK_MONOTONIC, &a);
	t0 = __builtin_ia32_rdtsc();
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000000ll + (b.tv_nsec - a.tv_nsec) < 20000000);
	t1 = __builtin_ia32_rdtsc();
	ns = (uint64_t)((b.tv_sec - a.tv_sec) * 1000000000ll + (b.tv_nsec - a.tv_nsec));
	return (t1 - t0) * 1000000 / ns;
}

/* CPUID table: what KVM supports.  The guest does not rely on it (CPUID is
 * intercepted and slow here), so a refusal is not fatal. */
static void set_cpuid(struct vmm *vm, int vcpu_fd)
{
	enum { NENT = 256 };
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + NENT * sizeof(c->entries[0]));

	if (!c)
		return;
	c->nent = NENT;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
		(void)ioctl(vcpu_fd, KVM_SET_CPUID2, c);
	free(c);
}

static void lapic_set(struct kvm_lapic_state *l, unsigned reg, uint32_t v)
{
	memcpy(&l->regs[reg], &v, sizeof(v));
}

/* Software-enabled LAPIC with every local interrupt masked: only MSIs
 * (wake-ups) reach the guest.  LINT0 must be masked or the PIC's vectors
 * get through too (the notes). */
static int lapic_setup(struct vmm *vm, struct vmm_vcpu *vc)
{
	struct kvm_lapic_state l;

	if (ioctl(vc->fd, KVM_GET_LAPIC, &l) < 0)
		return vmm_set_error(vm, -errno, "KVM_GET_LAPIC: %s", strerror(errno));
	lapic_set(&l, 0x80, 0);				/* TPR: accept all */
	lapic_set(&l, 0xf0, 0x100 | VMM_VEC_SPURIOUS);	/* SVR: enabled */
	lapic_set(&l, 0x320, 1u << 16);			/* LVT timer */
	lapic_set(&l, 0x340, 1u << 16);			/* LVT perf counters */
	lapic_set(&l, 0x350, 1u << 16);			/* LVT LINT0 */
	lapic_set(&l, 0x360, 1u << 16);			/* LVT LINT1 */
	lapic_set(&l, 0x370, 1u << 16);			/* LVT error */
	if (ioctl(vc->fd, KVM_SET_LAPIC, &l) < 0)
		return vmm_set_error(vm, -errno, "KVM_SET_LAPIC: %s", strerror(errno));
	return 0;
}

int vmm_kvm_vcpus(struct vmm *vm)
{
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);

	if (max > 0 && vm->cpus > (unsigned)max)
		return vmm_set_error(vm, -EINVAL, "%u vCPUs asked, KVM allows %d",
				     vm->cpus, max);
	for (unsigned i = 0; i < vm->cpus; i++) {
		struct vmm_vcpu *vc = &vm->vcpu[i];
		void *p;
		int err;

		vc->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (vc->fd < 0)
			return vmm_set_error(vm, -errno, "KVM_CREATE_VCPU %u: %s", i,
					     strerror(errno));
		p = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vc->fd, 0);
		if (p == MAP_FAILED)
			return vmm_set_error(vm, -errno, "mmap vCPU %u: %s", i, strerror(errno));
		vc->run = p;
		set_cpuid(vm, vc->fd);
		err = lapic_setup(vm, vc);
		if (err)
			return err;
		vc->stats_fd = ioctl(vc->fd, KVM_GET_STATS_FD, 0);
		if (i == 0)
			vm->tsc_khz = tsc_khz(vm, vc->fd);
	}
	return 0;
}

void vmm_kvm_close(struct vmm *vm)
{
	for (unsigned i = 0; i < VMM_MAX_CPUS; i++) {
		struct vmm_vcpu *vc = &vm->vcpu[i];

		if (vc->run)
			munmap(vc->run, vm->run_size);
		if (vc->stats_fd >= 0)
			close(vc->stats_fd);
		if (vc->fd >= 0)
			close(vc->fd);
	}
	for (unsigned i = 0; i < VMM_MAX_CPUS; i++)
		if (vm->wake_efd[i] >= 0)
			close(vm->wake_efd[i]);
	for (unsigned i = 0; i < VMM_DOORBELLS; i++)
		if (vm->doorbell_efd[i] >= 0)
			close(vm->doorbell_efd[i]);
	if (vm->vm_stats_fd >= 0)
		close(vm->vm_stats_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vmm_user_unmap(vm);
	if (vm->mem)
		munmap(vm->mem, vm->mem_bytes);
	if (vm->mem_fd >= 0)
		close(vm->mem_fd);
}

int vmm_mem_fd(const struct vmm *vm)
{
	return vm->mem_fd;
}

void *vmm_mem(const struct vmm *vm, uint64_t *size)
{
	if (size)
		*size = vm->mem_bytes;
	return vm->mem;
}

void *vmm_gpa(const struct vmm *vm, uint64_t gpa, uint64_t len)
{
	if (gpa > vm->mem_bytes || len > vm->mem_bytes - gpa)
		return NULL;
	return vm->mem + gpa;
}

/* ---- doorbells and wake-ups -------------------------------------------- */

int vmm_add_doorbell(struct vmm *vm, unsigned n, int efd)
{
	/* A store to the port window (vmm-abi.h, "I/O ports"). */
	struct kvm_ioeventfd io = {
		.addr = VMM_GPA_IOWIN + 4ull * (VMM_PORT_DOORBELL + n),
		.len = 4,
	};
	int err;

	if (n >= VMM_DOORBELLS || vm->doorbell_efd[n] >= 0)
		return vmm_set_error(vm, -EINVAL, "doorbell %u: out of range or taken", n);
	/* Our own descriptor: the caller may close theirs. */
	io.fd = fcntl(efd, F_DUPFD_CLOEXEC, 0);
	if (io.fd < 0)
		return vmm_set_error(vm, -errno, "doorbell %u: %s", n, strerror(errno));
	if (!vm->user_mode && ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0) {
		err = vmm_set_error(vm, -errno, "KVM_IOEVENTFD at GPA 0x%llx (port 0x%x): %s",
				    (unsigned long long)io.addr, VMM_PORT_DOORBELL + n,
				    strerror(errno));
		close(io.fd);
		return err;
	}
	vm->doorbell_efd[n] = io.fd;
	err = vmm_machine_allow_port(vm, VMM_PORT_DOORBELL + n);
	if (err)
		return err;
	if (n + 1 > vm->doorbells)
		vm->doorbells = n + 1;
	return 0;
}

/* MSI message to `vector` on the LAPIC whose id is `cpu` (KVM gives vCPU i
 * APIC id i): physical destination, fixed delivery, edge. */
static void msi_for(unsigned cpu, unsigned vector, uint32_t *addr, uint32_t *data)
{
	*addr = (uint32_t)VMM_GPA_LAPIC | (cpu << 12);
	*data = vector;
}

/* KVM_SET_GSI_ROUTING replaces the whole table: give every wake route. */
static int set_routes(struct vmm *vm)
{
	struct {
		struct kvm_irq_routing r;
		struct kvm_irq_routing_entry e[VMM_MAX_CPUS];
	} t;
	unsigned n = 0;

	memset(&t, 0, sizeof(t));
	for (unsigned i = 0; i < vm->cpus; i++) {
		struct kvm_irq_routing_entry *e = &t.e[n];

		if (vm->wake_efd[i] < 0)
			continue;
		e->gsi = VMM_GSI_BASE + i;
		e->type = KVM_IRQ_ROUTING_MSI;
		msi_for(i, VMM_VEC_WAKE, &e->u.msi.address_lo, &e->u.msi.data);
		n++;
	}
	t.r.nr = n;
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, &t) < 0)
		return vmm_set_error(vm, -errno, "KVM_SET_GSI_ROUTING: %s", strerror(errno));
	return 0;
}

int vmm_add_wake(struct vmm *vm, unsigned cpu, int efd)
{
	struct kvm_irqfd irqfd = { .gsi = VMM_GSI_BASE + cpu };
	int fd, err;

	if (cpu >= vm->cpus || vm->wake_efd[cpu] >= 0)
		return vmm_set_error(vm, -EINVAL, "wake-up of vCPU %u: no such vCPU or taken",
				     cpu);
	/* Our own descriptor: the caller may close theirs. */
	fd = fcntl(efd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return vmm_set_error(vm, -errno, "wake-up of vCPU %u: %s", cpu, strerror(errno));
	irqfd.fd = (uint32_t)fd;
	vm->wake_efd[cpu] = fd;
	err = vm->user_mode ? 0 : set_routes(vm);
	if (!err && !vm->user_mode && ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
		err = vmm_set_error(vm, -errno, "KVM_IRQFD: %s", strerror(errno));
	if (err) {
		vm->wake_efd[cpu] = -1;
		close(fd);
	}
	return err;
}

int vmm_kvm_signal_msi(struct vmm *vm, unsigned cpu, unsigned vector)
{
	struct kvm_msi msi = { 0 };

	msi_for(cpu, vector, &msi.address_lo, &msi.data);
	if (ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0)
		return -errno;
	return 0;
}

int vmm_wake(struct vmm *vm, unsigned cpu)
{
	struct vmm_boot *boot = (struct vmm_boot *)(vm->mem + VMM_GPA_BOOT);
	uint64_t one = 1;

	if (cpu >= vm->cpus)
		return -EINVAL;
	/* The sequence is visible before the interrupt: the write to the
	 * eventfd is a system call, a full barrier on x86. */
	__atomic_fetch_add(&boot->wake_seq[cpu], 1, __ATOMIC_SEQ_CST);
	if (vm->wake_efd[cpu] >= 0)
		return write(vm->wake_efd[cpu], &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
	return vmm_kvm_signal_msi(vm, cpu, VMM_VEC_WAKE);
}

/* ---- statistics -------------------------------------------------------- */

/* Adds statistic `name` of one stats fd to *sum.  Returns 1 when found. */
static int stat_from_fd(int fd, const char *name, uint64_t *sum)
{
	struct kvm_stats_header h;
	size_t dsz;
	char *descs;
	int found = 0;

	if (fd < 0 || pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return 0;
	if (h.num_desc > 4096 || h.name_size > 4096)
		return 0;
	dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	descs = malloc(dsz * h.num_desc);
	if (!descs)
		return 0;
	if (pread(fd, descs, dsz * h.num_desc, h.desc_offset) != (ssize_t)(dsz * h.num_desc))
		goto out;
	for (uint32_t i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *d = (struct kvm_stats_desc *)(descs + i * dsz);
		uint64_t v;

		if (strncmp(d->name, name, h.name_size) != 0)
			continue;
		if (pread(fd, &v, sizeof(v), (off_t)h.data_offset + d->offset) == sizeof(v)) {
			*sum += v;
			found = 1;
		}
		break;
	}
out:
	free(descs);
	return found;
}

int vmm_stat(struct vmm *vm, const char *name, uint64_t *value)
{
	int found = 0;

	*value = 0;
	found |= stat_from_fd(vm->vm_stats_fd, name, value);
	for (unsigned i = 0; i < vm->cpus; i++)
		found |= stat_from_fd(vm->vcpu[i].stats_fd, name, value);
	return found ? 0 : -ENOENT;
}

/* ---- lifetime ---------------------------------------------------------- */

static void vmm_init_fds(struct vmm *vm)
{
	vm->kvm_fd = vm->vm_fd = vm->mem_fd = vm->vm_stats_fd = vm->stop_efd = -1;
	for (unsigned i = 0; i < VMM_MAX_CPUS; i++) {
		vm->vcpu[i].fd = vm->vcpu[i].stats_fd = -1;
		vm->vcpu[i].host_cpu = -1;
		vm->vcpu[i].index = i;
		vm->vcpu[i].vm = vm;
		vm->wake_efd[i] = -1;
	}
	for (unsigned i = 0; i < VMM_DOORBELLS; i++)
		vm->doorbell_efd[i] = -1;
}

int vmm_create(const struct vmm_config *cfg, struct vmm **out, char *err, size_t errlen)
{
	struct vmm *vm = calloc(1, sizeof(*vm));
	int rc;

	*out = NULL;
	if (!vm) {
		if (err)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	vmm_init_fds(vm);
	pthread_mutex_init(&vm->lock, NULL);
	vm->console = cfg->console;
	vm->opaque = cfg->opaque;
	vm->cpus = cfg->cpus;
	vm->mem_bytes = cfg->mem_bytes;
	if (cfg->cpus < 1 || cfg->cpus > VMM_MAX_CPUS) {
		rc = vmm_set_error(vm, -EINVAL, "vCPUs: %u, want 1 to %u", cfg->cpus,
				   VMM_MAX_CPUS);
		goto fail;
	}
	if (cfg->mem_bytes < VMM_MEM_MIN || cfg->mem_bytes > VMM_MEM_MAX ||
	    cfg->mem_bytes % (2u << 20)) {
		rc = vmm_set_error(vm, -EINVAL,
				   "memory: %llu bytes, want a multiple of 2 MiB from %llu MiB to %llu MiB",
				   (unsigned long long)cfg->mem_bytes, VMM_MEM_MIN >> 20,
				   VMM_MEM_MAX >> 20);
		goto fail;
	}
	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_efd < 0) {
		rc = vmm_set_error(vm, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (sched_getaffinity(0, sizeof(vm->host_cpus), &vm->host_cpus) < 0)
		CPU_ZERO(&vm->host_cpus);	/* no pinning */
	vm->user_mode = cfg->user_mode;
	rc = vm->user_mode ? 0 : vmm_kvm_open(vm);
	if (!rc)
		rc = vmm_kvm_mem(vm);
	if (!rc && vm->user_mode)
		vm->tsc_khz = tsc_khz(vm, -1);
	else if (!rc)
		rc = vmm_kvm_vcpus(vm);
	if (!rc)
		rc = vmm_machine_build(vm, cfg);
	if (rc)
		goto fail;
	*out = vm;
	return 0;
fail:
	if (err)
		snprintf(err, errlen, "%s", vm->err);
	vmm_destroy(vm);
	return rc;
}

void vmm_destroy(struct vmm *vm)
{
	if (!vm)
		return;
	vmm_kvm_close(vm);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}
