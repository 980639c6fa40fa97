/* vmm-abi: what the VMM and its built-in guest agree on: the guest-physical
 * layout, the I/O ports, the interrupt vectors and the boot page.
 *
 * Freestanding: included by the host (vmm-mini/) and by the guest
 * (vmm-mini/guest/); only <stdint.h> and <stddef.h>.
 *
 * The machine (../shared/notes/kvm-on-this-host.md): the guest runs at CPL3
 * in 64-bit long mode with an identity map (GVA == GPA); everything the VMM
 * builds for the CPU (page tables, GDT, IDT, TSSs, the CPL0 stubs and their
 * stacks) lies below 1 MiB on supervisor pages, everything the guest uses
 * lies at or above 1 MiB on user pages.  Guest RAM ends at boot->mem_bytes;
 * addresses above it are not mapped (a #PF), except the local APIC page,
 * which only CPL0 can reach.
 */
#ifndef VMM_ABI_H
#define VMM_ABI_H

#include <stddef.h>
#include <stdint.h>

#define VMM_MAX_CPUS 8

/* ---- guest-physical layout ------------------------------------------- */
/* System area (supervisor pages, built by the VMM; page 0 is not mapped so
 * that a NULL dereference faults). */
#define VMM_GPA_PML4      0x00000ull
#define VMM_GPA_PDPT      0x01000ull
#define VMM_GPA_PD        0x02000ull	/* 4 pages: 0-4 GiB */
#define VMM_GPA_PT0       0x06000ull	/* 4 KiB pages of the first 2 MiB */
#define VMM_GPA_GDT       0x07000ull
#define VMM_GPA_IDT       0x08000ull
#define VMM_GPA_STUBS     0x09000ull	/* CPL0 stubs, 8 KiB */
#define VMM_GPA_TSS       0x10000ull	/* + cpu * VMM_TSS_STRIDE */
#define VMM_TSS_STRIDE    0x4000ull	/* 104-byte TSS, 8 KiB I/O bitmap, 0xff */
#define VMM_GPA_KSTACK    0x30000ull	/* + (cpu + 1) * 4 KiB = rsp0 of cpu */
#define VMM_SYSTEM_END    0x100000ull

/* Guest area (user pages). */
#define VMM_GPA_IMAGE     0x100000ull	/* flat image, entry at its first byte */
#define VMM_IMAGE_MAX     0xf0000ull
#define VMM_GPA_BOOT      0x1f0000ull	/* struct vmm_boot, one page */
#define VMM_GPA_CONSOLE   0x1f1000ull	/* + cpu * 4 KiB: console line buffer */
#define VMM_CONSOLE_BYTES 4096u
#define VMM_GPA_USTACK    0x200000ull	/* + (cpu + 1) * 64 KiB = initial rsp */
#define VMM_USTACK_BYTES  0x10000ull
#define VMM_GPA_FREE      0x300000ull	/* first byte the guest may use freely */

#define VMM_MEM_MIN       (4ull << 20)
#define VMM_MEM_MAX       (3ull << 30)	/* below the 0xc0000000 device hole */
#define VMM_GPA_IOWIN     0xfe000000ull	/* port window: see "I/O ports" */
#define VMM_GPA_LAPIC     0xfee00000ull

/* ---- I/O ports -------------------------------------------------------- */
/* The TSS I/O bitmap lets CPL3 reach VMM_PORT_CONSOLE, VMM_PORT_EXIT,
 * VMM_PORT_NOP and the doorbells, nothing else (any other port is a #GP).
 * VMM_PORT_FAULT is written only by the CPL0 fault stubs (a real `out`;
 * a CPL3 store to it through the port window below is refused as an
 * unknown port and ends the run, so a guest cannot forge a fault report).
 *
 * Some hosts' hypervisors refuse every port instruction at CPL3 whatever
 * the TSS and IOPL say (a PVM-style host seen in 2026-12).  So on KVM the
 * guest writes a port as a 32-bit store to the port window instead:
 * boot->io_window + 4 * port, an uncached user page with no RAM behind it
 * (KVM_EXIT_MMIO, or an MMIO ioeventfd for a doorbell).  boot->io_window
 * = 0 (the user-mode backend) means `outl` itself. */
#define VMM_IOWIN_BYTES   (4u * 0x10000u)	/* 4 bytes a port */
#define VMM_PORT_CONSOLE  0x510	/* outl: length of the line in this CPU's
				   console buffer (VMM_GPA_CONSOLE) */
#define VMM_PORT_EXIT     0x511	/* outl: exit status; the VM stops */
#define VMM_PORT_FAULT    0x512	/* CPL0 stub: rsp points at {vector, error,
				   rip, cs, rflags, rsp, ss} */
#define VMM_PORT_NOP      0x513	/* outl: ignored (measures a userspace exit) */
#define VMM_PORT_DOORBELL 0x520	/* + n, n < VMM_DOORBELLS: outl, an
				   ioeventfd (no userspace exit) */
#define VMM_DOORBELLS     16
#define VMM_DOORBELL_VMBUS 2	/* the VMBus transport's doorbell (0, 1: echo) */

/* ---- vectors --------------------------------------------------------- */
/* 0-31 report a fault; 3 (INT3, the only INT allowed at CPL3) is a DPL3
 * trap gate to the sleep stub: "sleep until an interrupt, unless the
 * 64-bit word at rdx no longer holds rax" (rdx = 0: no condition), a
 * futex-like wait.  The guest runs with IF=0, so an interrupt that arrives
 * while it is awake stays pending and the next sleep returns at once; the
 * re-check covers a host that would deliver it anyway.  VMM_VEC_WAKE is the
 * interrupt the VMM's irqfds deliver; its stub does an EOI and returns. */
#define VMM_VEC_SLEEP     3
#define VMM_VEC_WAKE      0x40
#define VMM_VEC_SPURIOUS  0xff

/* ---- boot page -------------------------------------------------------- */
#define VMM_BOOT_MAGIC    0x31746f6f426d6d56ull	/* "VmmBoot1" */
#define VMM_WORKLOAD_MAX  256

/* Filled by the VMM before the first run; read-only for the guest.  The
 * guest finds it at VMM_GPA_BOOT (also in rsi at entry; rdi = cpu index). */
struct vmm_boot {
	uint64_t magic;		/* VMM_BOOT_MAGIC */
	uint32_t cpus;		/* number of vCPUs */
	uint32_t doorbells;	/* doorbell ports registered (VMM_PORT_DOORBELL + n) */
	uint64_t mem_bytes;	/* guest RAM is [0, mem_bytes) */
	uint64_t tsc_khz;	/* RDTSC ticks per millisecond; 0 = unknown */
	uint64_t free_start;	/* [free_start, free_end): RAM for the guest */
	uint64_t free_end;
	volatile uint64_t wake_seq[VMM_MAX_CPUS]; /* bumped by the VMM before each
						     wake interrupt to cpu i */
	char workload[VMM_WORKLOAD_MAX]; /* "NAME[,ARGS]", NUL-terminated */
	/* Set by the VMM (then a wake-up of vCPU 0) to ask the guest to stop:
	 * finish in-flight I/O, flush its disks, exit 0. */
	volatile uint64_t stop_req;
	/* VMBus (vmm-mini run --disk): the partition transport in guest RAM
	 * (docs/vmbus-transport.md; vmbus_event_gpa = 0: no VMBus).  Signal
	 * the host by setting relid's bit in the event page's guest->host
	 * flags, then `outl` to VMM_PORT_DOORBELL + vmbus_doorbell; the host
	 * wakes vCPU 0 (wake_seq[0]) after setting host->guest flags. */
	uint64_t vmbus_event_gpa;
	uint64_t vmbus_msg_g2h_gpa;
	uint64_t vmbus_msg_h2g_gpa;
	uint32_t vmbus_msg_ring_bytes;
	uint32_t vmbus_doorbell;
	/* Where the guest writes its ports (see "I/O ports"); 0: `outl`. */
	uint64_t io_window;
};

_Static_assert(sizeof(struct vmm_boot) <= 4096, "boot page");
_Static_assert(VMM_GPA_IOWIN % (2u << 20) == 0 && VMM_IOWIN_BYTES <= (2u << 20) &&
	       VMM_GPA_IOWIN >= VMM_MEM_MAX && VMM_GPA_IOWIN + (2u << 20) <= VMM_GPA_LAPIC,
	       "port window: one 2 MiB page above RAM, below the LAPIC");
_Static_assert(VMM_GPA_TSS + VMM_MAX_CPUS * VMM_TSS_STRIDE <= VMM_GPA_KSTACK,
	       "TSSs overlap the CPL0 stacks");
_Static_assert(VMM_GPA_CONSOLE + VMM_MAX_CPUS * VMM_CONSOLE_BYTES <= VMM_GPA_USTACK,
	       "console buffers overlap the stacks");
_Static_assert(VMM_GPA_USTACK + VMM_MAX_CPUS * VMM_USTACK_BYTES <= VMM_GPA_FREE,
	       "stacks overlap the free area");

#endif
