/* vm: the machine the guest sees, built from outside in guest RAM and in
 * the vCPUs' registers (the layout is vmm-abi.h's):
 *
 * - identity map of RAM with 2 MiB user pages; the first 2 MiB in 4 KiB
 *   pages so that the system area below 1 MiB is supervisor-only and page 0
 *   is not mapped; the LAPIC page, supervisor-only and uncached;
 * - GDT: 0x08/0x10 kernel code/data, 0x23/0x2b/0x33 user code32/data/code64,
 *   one TSS descriptor a vCPU at 0x40 + 16 * cpu;
 * - one TSS a vCPU: rsp0 on its own CPL0 stack, an I/O bitmap that lets CPL3
 *   reach only the console, exit, nop and registered doorbell ports;
 * - IDT: every vector on a CPL0 stub that reports it through VMM_PORT_FAULT,
 *   except INT3 (a DPL3 trap gate to the sleep stub), the wake-up vector
 *   and the spurious vector;
 * - the stubs, hand-assembled below: at CPL0 the host hypervisor emulates
 *   every instruction (1-3 M/s), so they are as short as they can be.
 *
 * The guest starts at CPL3 (CS 0x33, SS 0x2b) at VMM_GPA_IMAGE with
 * rdi = cpu index, rsi = VMM_GPA_BOOT, rsp = its stack, RFLAGS.IF = 0 (see
 * vmm-abi.h, "vectors").
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm-mini/vmm-int.h"

#define PTE_P   0x001ull
#define PTE_W   0x002ull
#define PTE_U   0x004ull
#define PTE_PWT 0x008ull
#define PTE_PCD 0x010ull
#define PTE_PS  0x080ull

_Static_assert(VMM_GPA_STUBS + 0x2000 <= VMM_GPA_TSS, "stubs overlap the TSSs");
_Static_assert(TSS_LIMIT + 1 <= VMM_TSS_STRIDE, "TSS stride");

static uint8_t *at(struct vmm *vm, uint64_t gpa)
{
	return vm->mem + gpa;
}

static void put64(struct vmm *vm, uint64_t gpa, uint64_t v)
{
	memcpy(at(vm, gpa), &v, sizeof(v));
}

static void build_page_tables(struct vmm *vm)
{
	put64(vm, VMM_GPA_PML4, VMM_GPA_PDPT | PTE_P | PTE_W | PTE_U);
	for (uint64_t i = 0; i < 4; i++)
		put64(vm, VMM_GPA_PDPT + 8 * i, (VMM_GPA_PD + 4096 * i) | PTE_P | PTE_W | PTE_U);
	/* RAM in 2 MiB user pages, the first one through PT0. */
	put64(vm, VMM_GPA_PD, VMM_GPA_PT0 | PTE_P | PTE_W | PTE_U);
	for (uint64_t a = 2ull << 20; a < vm->mem_bytes; a += 2ull << 20)
		put64(vm, VMM_GPA_PD + 8 * (a >> 21), a | PTE_P | PTE_W | PTE_U | PTE_PS);
	for (uint64_t k = 1; k < 512; k++) {
		uint64_t a = k * 4096;

		put64(vm, VMM_GPA_PT0 + 8 * k,
		      a | PTE_P | PTE_W | (a >= VMM_SYSTEM_END ? PTE_U : 0));
	}
	/* The port window (vmm-abi.h, "I/O ports"): user, uncached, no RAM
	 * behind it, so every store to it exits (or signals an ioeventfd). */
	put64(vm, VMM_GPA_PD + 8 * (VMM_GPA_IOWIN >> 21),
	      VMM_GPA_IOWIN | PTE_P | PTE_W | PTE_U | PTE_PS | PTE_PCD | PTE_PWT);
	/* The LAPIC, for the wake stub's EOI (CPL0 only). */
	put64(vm, VMM_GPA_PD + 8 * (VMM_GPA_LAPIC >> 21),
	      VMM_GPA_LAPIC | PTE_P | PTE_W | PTE_PS | PTE_PCD | PTE_PWT);
}

static void build_gdt(struct vmm *vm)
{
	static const uint64_t fixed[] = {
		0,
		0x00af9b000000ffffull,	/* 0x08 kernel code, 64-bit */
		0x00cf93000000ffffull,	/* 0x10 kernel data */
		0,
		0x00cffb000000ffffull,	/* 0x23 user code, 32-bit (unused) */
		0x00cff3000000ffffull,	/* 0x2b user data */
		0x00affb000000ffffull,	/* 0x33 user code, 64-bit */
		0,
	};

	memcpy(at(vm, VMM_GPA_GDT), fixed, sizeof(fixed));
	for (unsigned i = 0; i < vm->cpus; i++) {
		uint64_t base = VMM_GPA_TSS + i * VMM_TSS_STRIDE;
		uint64_t lo = (TSS_LIMIT & 0xffff) | (base & 0xffffff) << 16 |
			      0xbull << 40 /* busy 64-bit TSS */ | 1ull << 47 /* present */ |
			      (uint64_t)(TSS_LIMIT >> 16 & 0xf) << 48 |
			      (base >> 24 & 0xff) << 56;

		put64(vm, VMM_GPA_GDT + SEL_TSS(i), lo);
		put64(vm, VMM_GPA_GDT + SEL_TSS(i) + 8, base >> 32);
	}
}

static void set_port(uint8_t *bitmap, unsigned port, bool allow)
{
	if (allow)
		bitmap[port / 8] &= (uint8_t)~(1u << (port % 8));
	else
		bitmap[port / 8] |= (uint8_t)(1u << (port % 8));
}

int vmm_machine_allow_port(struct vmm *vm, unsigned port)
{
	if (port > 0xffff)
		return vmm_set_error(vm, -EINVAL, "port 0x%x", port);
	for (unsigned i = 0; i < vm->cpus; i++)
		set_port(at(vm, VMM_GPA_TSS + i * VMM_TSS_STRIDE + TSS_IOPB), port, true);
	return 0;
}

static void build_tss(struct vmm *vm)
{
	for (unsigned i = 0; i < vm->cpus; i++) {
		uint64_t base = VMM_GPA_TSS + i * VMM_TSS_STRIDE;
		uint64_t rsp0 = VMM_GPA_KSTACK + (i + 1) * 4096ull;
		uint16_t iopb = TSS_IOPB;

		memset(at(vm, base), 0, TSS_IOPB);
		put64(vm, base + 4, rsp0);
		memcpy(at(vm, base + 102), &iopb, sizeof(iopb));
		/* Every port denied, and the terminating byte. */
		memset(at(vm, base + TSS_IOPB), 0xff, 8192 + 1);
	}
	vmm_machine_allow_port(vm, VMM_PORT_CONSOLE);
	vmm_machine_allow_port(vm, VMM_PORT_EXIT);
	vmm_machine_allow_port(vm, VMM_PORT_NOP);
}

/* Vectors for which the CPU pushes an error code. */
static bool has_error_code(unsigned v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

static size_t emit(uint8_t *p, const uint8_t *bytes, size_t n)
{
	memcpy(p, bytes, n);
	return n;
}

static size_t emit_jmp(uint8_t *p, uint64_t from_gpa, uint64_t to_gpa)
{
	int32_t rel = (int32_t)(to_gpa - (from_gpa + 5));

	p[0] = 0xe9;
	memcpy(p + 1, &rel, 4);
	return 5;
}

static void build_stubs(struct vmm *vm)
{
	/* mov $VMM_PORT_FAULT, %dx; out %eax, %dx; 1: hlt; jmp 1b.
	 * The VMM reads the frame at rsp and never resumes this vCPU. */
	static const uint8_t common[] = { 0x66, 0xba, VMM_PORT_FAULT & 0xff, VMM_PORT_FAULT >> 8,
					  0xef, 0xf4, 0xeb, 0xfd };
	/* Sleep while *rdx == rax (rdx = 0: unconditionally):
	 *	cli; test %rdx,%rdx; jz 1f; cmp (%rdx),%rax; jne 2f;
	 *   1: sti; hlt;
	 *   2: iretq
	 * IF=1 only across the hlt (sti's one-instruction shadow makes
	 * sti; hlt atomic); the wake-up interrupt ends the hlt and iretq
	 * returns to CPL3 with the guest's own IF.  The cli and the re-check
	 * make a lost wake-up impossible even on a host that lets interrupts
	 * in at CPL3 despite IF=0 (five more emulated instructions, a few us). */
	static const uint8_t sleep[] = { 0xfa, 0x48, 0x85, 0xd2, 0x74, 0x05, 0x48, 0x3b,
					 0x02, 0x75, 0x02, 0xfb, 0xf4, 0x48, 0xcf };
	/* push %rax; mov $0xfee000b0, %eax; movl $0, (%rax); pop %rax; iretq:
	 * EOI (some hosts EOI at delivery, where this write is harmless). */
	static const uint8_t wake[] = { 0x50, 0xb8, 0xb0, 0x00, 0xe0, 0xfe, 0xc7, 0x00,
					0x00, 0x00, 0x00, 0x00, 0x58, 0x48, 0xcf };
	static const uint8_t iret[] = { 0x48, 0xcf };
	uint8_t *base = at(vm, VMM_GPA_STUBS);

	memset(base, 0xcc, 0x2000);
	for (unsigned v = 0; v < 256; v++) {
		uint64_t off = STUB_VEC(v);
		uint8_t *p = base + off;
		size_t n = 0;

		if (!has_error_code(v)) {
			p[n++] = 0x6a;	/* push $0 */
			p[n++] = 0x00;
		}
		p[n++] = 0x68;		/* push $v (imm32) */
		p[n++] = (uint8_t)v;
		p[n++] = 0;
		p[n++] = 0;
		p[n++] = 0;
		n += emit_jmp(p + n, VMM_GPA_STUBS + off + n, VMM_GPA_STUBS + STUB_COMMON);
	}
	emit(base + STUB_COMMON, common, sizeof(common));
	emit(base + STUB_SLEEP, sleep, sizeof(sleep));
	emit(base + STUB_WAKE, wake, sizeof(wake));
	emit(base + STUB_SPURIOUS, iret, sizeof(iret));
}

static void set_gate(struct vmm *vm, unsigned v, uint64_t target, unsigned dpl, bool trap)
{
	uint8_t *g = at(vm, VMM_GPA_IDT + 16 * v);
	uint16_t sel = SEL_KCODE;
	uint16_t lo = (uint16_t)target, mid = (uint16_t)(target >> 16);
	uint32_t hi = (uint32_t)(target >> 32);

	memset(g, 0, 16);
	memcpy(g, &lo, 2);
	memcpy(g + 2, &sel, 2);
	g[4] = 0;					/* IST: none */
	g[5] = (uint8_t)(0x80 | dpl << 5 | (trap ? 0xf : 0xe));
	memcpy(g + 6, &mid, 2);
	memcpy(g + 8, &hi, 4);
}

static void build_idt(struct vmm *vm)
{
	for (unsigned v = 0; v < 256; v++)
		set_gate(vm, v, VMM_GPA_STUBS + STUB_VEC(v), 0, false);
	/* INT3 from CPL3: a trap gate keeps the guest's IF (0) as it is. */
	set_gate(vm, VMM_VEC_SLEEP, VMM_GPA_STUBS + STUB_SLEEP, 3, true);
	set_gate(vm, VMM_VEC_WAKE, VMM_GPA_STUBS + STUB_WAKE, 0, false);
	set_gate(vm, VMM_VEC_SPURIOUS, VMM_GPA_STUBS + STUB_SPURIOUS, 0, false);
}

static int build_boot(struct vmm *vm, const struct vmm_config *cfg)
{
	struct vmm_boot *b = (struct vmm_boot *)at(vm, VMM_GPA_BOOT);
	size_t wl = cfg->workload ? strlen(cfg->workload) : 0;

	if (cfg->image_bytes == 0 || cfg->image_bytes > VMM_IMAGE_MAX)
		return vmm_set_error(vm, -EINVAL, "guest image of %zu bytes (at most %llu)",
				     cfg->image_bytes, VMM_IMAGE_MAX);
	if (wl >= VMM_WORKLOAD_MAX)
		return vmm_set_error(vm, -EINVAL, "workload longer than %d bytes",
				     VMM_WORKLOAD_MAX - 1);
	memcpy(at(vm, VMM_GPA_IMAGE), cfg->image, cfg->image_bytes);
	memset(b, 0, sizeof(*b));
	b->magic = VMM_BOOT_MAGIC;
	b->cpus = vm->cpus;
	b->mem_bytes = vm->mem_bytes;
	b->tsc_khz = vm->tsc_khz;
	b->free_start = VMM_GPA_FREE;
	b->free_end = vm->mem_bytes;
	b->io_window = vm->user_mode ? 0 : VMM_GPA_IOWIN;
	if (wl)
		memcpy(b->workload, cfg->workload, wl);
	return 0;
}

int vmm_machine_build(struct vmm *vm, const struct vmm_config *cfg)
{
	build_page_tables(vm);
	build_gdt(vm);
	build_tss(vm);
	build_stubs(vm);
	build_idt(vm);
	return build_boot(vm, cfg);
}

/* Called by vmm_run() before the first KVM_RUN of each vCPU. */
static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	*s = (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = sel,
		.type = type,
		.present = 1,
		.dpl = (uint8_t)(sel & 3),
		.db = code ? 0 : 1,
		.s = 1,
		.l = code ? 1 : 0,
		.g = 1,
	};
}

int vmm_machine_enter(struct vmm *vm, struct vmm_vcpu *vc)
{
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
	struct kvm_sregs s;
	struct kvm_regs r;
	unsigned i = vc->index;

	if (ioctl(vc->fd, KVM_GET_SREGS, &s) < 0)
		return vmm_set_error(vm, -errno, "KVM_GET_SREGS: %s", strerror(errno));
	seg(&s.cs, SEL_UCODE, 0xb, true);
	seg(&s.ss, SEL_UDATA, 0x3, false);
	s.ds = s.es = s.fs = s.gs = s.ss;
	s.tr = (struct kvm_segment){
		.base = VMM_GPA_TSS + i * VMM_TSS_STRIDE,
		.limit = TSS_LIMIT,
		.selector = SEL_TSS(i),
		.type = 0xb,
		.present = 1,
	};
	memset(&s.ldt, 0, sizeof(s.ldt));
	s.ldt.unusable = 1;
	s.ldt.type = 2;
	s.gdt.base = VMM_GPA_GDT;
	s.gdt.limit = (uint16_t)(SEL_TSS(vm->cpus) - 1);
	s.idt.base = VMM_GPA_IDT;
	s.idt.limit = 256 * 16 - 1;
	s.cr3 = VMM_GPA_PML4;
	s.cr4 = 0x20 | 0x200 | 0x400;	/* PAE, OSFXSR, OSXMMEXCPT */
	s.cr0 = 0x80010033;		/* PG, WP, NE, ET, MP, PE */
	s.efer = 0x500;			/* LMA, LME */
	if (ioctl(vc->fd, KVM_SET_SREGS, &s) < 0)
		return vmm_set_error(vm, -errno, "KVM_SET_SREGS: %s", strerror(errno));

	memset(&r, 0, sizeof(r));
	r.rip = VMM_GPA_IMAGE;
	r.rsp = VMM_GPA_USTACK + (i + 1) * VMM_USTACK_BYTES;
	r.rdi = i;
	r.rsi = VMM_GPA_BOOT;
	r.rflags = 0x2;			/* IF = 0: see vmm-abi.h */
	if (ioctl(vc->fd, KVM_SET_REGS, &r) < 0)
		return vmm_set_error(vm, -errno, "KVM_SET_REGS: %s", strerror(errno));
	/* With an in-kernel irqchip every vCPU but the first starts waiting
	 * for INIT/SIPI (some hosts run it anyway): all of ours start here. */
	if (ioctl(vc->fd, KVM_SET_MP_STATE, &mp) < 0)
		return vmm_set_error(vm, -errno, "KVM_SET_MP_STATE: %s", strerror(errno));
	return 0;
}
