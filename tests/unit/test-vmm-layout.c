/* The machine vmm-mini builds for its guest, checked the way the CPU will
 * read it, without KVM: page walks (present, user, write bits), GDT
 * descriptors, IDT gates, the TSSs and their I/O bitmaps, the CPL0 stub
 * bytes and the boot page.  (On a machine with /dev/kvm the e2e tests
 * test-vmm-*.sh run the real thing.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm-mini/vmm-int.h"

#define MEM (64ull << 20)

static struct vmm *make_vm(unsigned cpus)
{
	static const uint8_t image[] = { 0x31, 0xed, 0xcc };
	struct vmm_config cfg = {
		.mem_bytes = MEM, .cpus = cpus, .image = image,
		.image_bytes = sizeof(image), .workload = "spin,42",
	};
	struct vmm *vm = calloc(1, sizeof(*vm));

	assert_non_null(vm);
	vm->mem = calloc(1, MEM);
	assert_non_null(vm->mem);
	vm->mem_bytes = MEM;
	vm->cpus = cpus;
	vm->tsc_khz = 2000000;
	assert_int_equal(vmm_machine_build(vm, &cfg), 0);
	return vm;
}

static void free_vm(struct vmm *vm)
{
	free(vm->mem);
	free(vm);
}

static uint64_t rd64(const struct vmm *vm, uint64_t gpa)
{
	uint64_t v;

	assert_true(gpa + 8 <= vm->mem_bytes);
	memcpy(&v, vm->mem + gpa, 8);
	return v;
}

/* 4-level walk as the CPU does it (no SMEP/SMAP, CR0.WP set): returns the
 * GPA, or -1 for a page fault. */
static int64_t walk(const struct vmm *vm, uint64_t va, bool user, bool write)
{
	uint64_t table = VMM_GPA_PML4;
	unsigned shifts[] = { 39, 30, 21, 12 };

	if (va >> 47)
		return -1;	/* non-canonical here: #GP, not a walk */
	for (unsigned lvl = 0; lvl < 4; lvl++) {
		uint64_t e = rd64(vm, table + 8 * ((va >> shifts[lvl]) & 511));

		if (!(e & 1) || (user && !(e & 4)) || (write && !(e & 2)))
			return -1;
		if (lvl == 2 && (e & 0x80))
			return (int64_t)((e & 0xfffffffe00000ull) | (va & 0x1fffff));
		if (lvl == 3)
			return (int64_t)((e & 0xffffffffff000ull) | (va & 0xfff));
		table = e & 0xffffffffff000ull;
	}
	return -1;
}

static void test_page_tables(void **state)
{
	struct vmm *vm = make_vm(1);

	(void)state;
	/* The guest's area: user, writable, identity. */
	assert_int_equal(walk(vm, VMM_GPA_IMAGE, true, true), VMM_GPA_IMAGE);
	assert_int_equal(walk(vm, VMM_GPA_BOOT + 8, true, false), VMM_GPA_BOOT + 8);
	assert_int_equal(walk(vm, VMM_GPA_USTACK + 100, true, true), VMM_GPA_USTACK + 100);
	assert_int_equal(walk(vm, 0x1fffff, true, true), 0x1fffff);
	assert_int_equal(walk(vm, 0x200000, true, true), 0x200000);
	assert_int_equal(walk(vm, MEM - 1, true, true), MEM - 1);
	/* Nothing beyond RAM, nothing at 0 (NULL). */
	assert_int_equal(walk(vm, MEM, false, false), -1);
	assert_int_equal(walk(vm, 0xdead0000, false, false), -1);
	assert_int_equal(walk(vm, 0, false, false), -1);
	assert_int_equal(walk(vm, 0xfff, false, false), -1);
	/* The system area: supervisor only. */
	for (uint64_t a = 0x1000; a < VMM_SYSTEM_END; a += 0x1000) {
		assert_int_equal(walk(vm, a, false, true), (int64_t)a);
		assert_int_equal(walk(vm, a, true, false), -1);
	}
	/* The LAPIC: CPL0 only, uncached. */
	assert_int_equal(walk(vm, 0xfee000b0, false, true), 0xfee000b0);
	assert_int_equal(walk(vm, 0xfee000b0, true, true), -1);
	assert_true(rd64(vm, VMM_GPA_PD + 8 * (0xfee00000 >> 21)) & 0x10);
	free_vm(vm);
}

struct desc {
	uint64_t base, limit;
	unsigned type, s, dpl, p, l, db, g;
};

static struct desc gdt_entry(const struct vmm *vm, unsigned sel)
{
	uint64_t d = rd64(vm, VMM_GPA_GDT + (sel & ~7u));
	struct desc r = {
		.base = (d >> 16 & 0xffffff) | (d >> 56 & 0xff) << 24,
		.limit = (d & 0xffff) | (d >> 48 & 0xf) << 16,
		.type = d >> 40 & 0xf, .s = d >> 44 & 1, .dpl = d >> 45 & 3,
		.p = d >> 47 & 1, .l = d >> 53 & 1, .db = d >> 54 & 1, .g = d >> 55 & 1,
	};

	if (!r.s)
		r.base |= rd64(vm, VMM_GPA_GDT + (sel & ~7u) + 8) << 32;
	return r;
}

static void test_gdt(void **state)
{
	struct vmm *vm = make_vm(2);
	struct desc d;

	(void)state;
	d = gdt_entry(vm, SEL_UCODE);
	assert_true(d.p && d.s && d.l && !d.db && d.dpl == 3 && (d.type & 8));
	assert_int_equal(SEL_UCODE & 3, 3);
	d = gdt_entry(vm, SEL_UDATA);
	assert_true(d.p && d.s && d.dpl == 3 && !(d.type & 8) && (d.type & 2));
	assert_int_equal(SEL_UDATA & 3, 3);
	d = gdt_entry(vm, SEL_KCODE);
	assert_true(d.p && d.s && d.l && d.dpl == 0 && (d.type & 8));
	for (unsigned i = 0; i < 2; i++) {
		d = gdt_entry(vm, SEL_TSS(i));
		assert_true(d.p && !d.s && d.type == 0xb && d.dpl == 0);
		assert_int_equal(d.base, VMM_GPA_TSS + i * VMM_TSS_STRIDE);
		assert_int_equal(d.limit, TSS_LIMIT);
	}
	free_vm(vm);
}

static void gate(const struct vmm *vm, unsigned v, uint64_t *target, unsigned *type,
		 unsigned *dpl, unsigned *sel)
{
	const uint8_t *g = vm->mem + VMM_GPA_IDT + 16 * v;
	uint16_t lo, mid, s;
	uint32_t hi;

	memcpy(&lo, g, 2);
	memcpy(&s, g + 2, 2);
	memcpy(&mid, g + 6, 2);
	memcpy(&hi, g + 8, 4);
	*target = lo | (uint64_t)mid << 16 | (uint64_t)hi << 32;
	*type = g[5] & 0xf;
	*dpl = g[5] >> 5 & 3;
	*sel = s;
	assert_true(g[5] & 0x80);	/* present */
	assert_int_equal(g[4], 0);	/* no IST */
}

static void test_idt_and_stubs(void **state)
{
	struct vmm *vm = make_vm(1);
	const uint8_t *stubs = vm->mem + VMM_GPA_STUBS;
	static const uint8_t common[] = { 0x66, 0xba, 0x12, 0x05, 0xef, 0xf4, 0xeb, 0xfd };
	static const uint8_t sleep[] = { 0xfa, 0x48, 0x85, 0xd2, 0x74, 0x05, 0x48, 0x3b,
					 0x02, 0x75, 0x02, 0xfb, 0xf4, 0x48, 0xcf };
	uint64_t target;
	unsigned type, dpl, sel;

	(void)state;
	assert_int_equal(VMM_PORT_FAULT, 0x512);
	for (unsigned v = 0; v < 256; v++) {
		gate(vm, v, &target, &type, &dpl, &sel);
		assert_int_equal(sel, SEL_KCODE);
		if (v == VMM_VEC_SLEEP) {
			assert_int_equal(target, VMM_GPA_STUBS + STUB_SLEEP);
			assert_int_equal(type, 0xf);	/* trap gate: IF kept */
			assert_int_equal(dpl, 3);	/* INT3 allowed from CPL3 */
		} else if (v == VMM_VEC_WAKE) {
			assert_int_equal(target, VMM_GPA_STUBS + STUB_WAKE);
			assert_true(type == 0xe && dpl == 0);
		} else if (v == VMM_VEC_SPURIOUS) {
			assert_int_equal(target, VMM_GPA_STUBS + STUB_SPURIOUS);
		} else {
			/* push [$0;] push $v; jmp common */
			const uint8_t *p = stubs + STUB_VEC(v);
			bool err = v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 ||
				   v == 29 || v == 30;
			int32_t rel;

			assert_int_equal(target, VMM_GPA_STUBS + STUB_VEC(v));
			assert_true(type == 0xe && dpl == 0);
			if (!err) {
				assert_true(p[0] == 0x6a && p[1] == 0);
				p += 2;
			}
			assert_int_equal(p[0], 0x68);
			assert_int_equal(p[1], v);
			assert_true(p[2] == 0 && p[3] == 0 && p[4] == 0);
			assert_int_equal(p[5], 0xe9);
			memcpy(&rel, p + 6, 4);
			assert_int_equal((uint64_t)(p + 10 - stubs) + (uint64_t)(int64_t)rel,
					 STUB_COMMON);
		}
	}
	assert_memory_equal(stubs + STUB_COMMON, common, sizeof(common));
	assert_memory_equal(stubs + STUB_SLEEP, sleep, sizeof(sleep));
	assert_int_equal(stubs[STUB_WAKE + 13], 0x48);
	assert_int_equal(stubs[STUB_WAKE + 14], 0xcf);	/* ends with iretq */
	free_vm(vm);
}

static bool port_allowed(const struct vmm *vm, unsigned cpu, unsigned port)
{
	const uint8_t *bm = vm->mem + VMM_GPA_TSS + cpu * VMM_TSS_STRIDE + TSS_IOPB;

	return !(bm[port / 8] >> (port % 8) & 1);
}

static void test_tss(void **state)
{
	struct vmm *vm = make_vm(2);

	(void)state;
	for (unsigned i = 0; i < 2; i++) {
		uint64_t base = VMM_GPA_TSS + i * VMM_TSS_STRIDE;
		uint64_t rsp0;
		uint16_t iopb;
		unsigned allowed = 0;

		memcpy(&rsp0, vm->mem + base + 4, 8);
		memcpy(&iopb, vm->mem + base + 102, 2);
		assert_int_equal(iopb, TSS_IOPB);
		assert_int_equal(rsp0, VMM_GPA_KSTACK + (i + 1) * 4096);
		assert_int_equal(walk(vm, rsp0 - 8, false, true), (int64_t)(rsp0 - 8));
		assert_int_equal(vm->mem[base + TSS_LIMIT], 0xff);
		for (unsigned p = 0; p < 65536; p++)
			allowed += port_allowed(vm, i, p);
		assert_int_equal(allowed, 3);
		assert_true(port_allowed(vm, i, VMM_PORT_CONSOLE));
		assert_true(port_allowed(vm, i, VMM_PORT_EXIT));
		assert_true(port_allowed(vm, i, VMM_PORT_NOP));
		assert_false(port_allowed(vm, i, VMM_PORT_FAULT));
		assert_false(port_allowed(vm, i, VMM_PORT_DOORBELL));
	}
	assert_int_equal(vmm_machine_allow_port(vm, VMM_PORT_DOORBELL + 1), 0);
	assert_true(port_allowed(vm, 0, VMM_PORT_DOORBELL + 1));
	assert_true(port_allowed(vm, 1, VMM_PORT_DOORBELL + 1));
	assert_false(port_allowed(vm, 1, VMM_PORT_DOORBELL));
	free_vm(vm);
}

static void test_boot_page(void **state)
{
	struct vmm *vm = make_vm(2);
	const struct vmm_boot *b = (const struct vmm_boot *)(vm->mem + VMM_GPA_BOOT);

	(void)state;
	assert_int_equal(b->magic, VMM_BOOT_MAGIC);
	assert_int_equal(b->cpus, 2);
	assert_int_equal(b->mem_bytes, MEM);
	assert_int_equal(b->tsc_khz, 2000000);
	assert_int_equal(b->free_start, VMM_GPA_FREE);
	assert_int_equal(b->free_end, MEM);
	assert_string_equal(b->workload, "spin,42");
	assert_int_equal(vm->mem[VMM_GPA_IMAGE + 2], 0xcc);
	free_vm(vm);
}

static void test_bad_image(void **state)
{
	struct vmm *vm = make_vm(1);
	struct vmm_config cfg = { .mem_bytes = MEM, .cpus = 1, .image = vm->mem,
				  .image_bytes = VMM_IMAGE_MAX + 1 };

	(void)state;
	assert_int_equal(vmm_machine_build(vm, &cfg), -EINVAL);
	assert_non_null(strstr(vmm_error(vm), "guest image"));
	free_vm(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_tables),
		cmocka_unit_test(test_gdt),
		cmocka_unit_test(test_idt_and_stubs),
		cmocka_unit_test(test_tss),
		cmocka_unit_test(test_boot_page),
		cmocka_unit_test(test_bad_image),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
