/* Embeds a flat freestanding image in a host object (make's guest-blob.o
 * rule).  make defines BLOB_NAME (the symbol prefix) and BLOB_FILE (the
 * image's path, quoted); the bytes lie between BLOB_NAME_start and
 * BLOB_NAME_end in read-only data. */
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define START CAT(BLOB_NAME, _start)
#define END CAT(BLOB_NAME, _end)

	.section .rodata.guest_blob, "a"
	.balign 64
	.globl START
	.globl END
	.type START, @object
START:
	.incbin BLOB_FILE
END:
	.size START, END - START

	.section .note.GNU-stack, "", @progbits
