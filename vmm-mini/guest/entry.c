/* entry: the first bytes of the image (section .head, loaded at 1 MiB).
 * The VMM starts every vCPU here at CPL3 with rdi = cpu index, rsi = the
 * boot page and rsp = the top of that vCPU's stack (16-byte aligned); the
 * return value of guest_main() becomes the VM's exit status. */
#include "vmm-mini/guest/rt.h"

__asm__("	.section .head, \"ax\"\n"
	"	.globl guest_entry\n"
	"guest_entry:\n"
	"	xor %ebp, %ebp\n"
	"	call guest_main\n"
	"	mov %eax, %edi\n"
	"	call rt_exit\n"
	"	ud2\n"
	"	.previous\n");
