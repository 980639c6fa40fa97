/* The header at the start of the freestanding test image
 * (tests/freestanding/guest/), read by tests/unit/test-fs-freestanding.c.
 * Shared by the freestanding and the hosted side: <stdint.h> only. */
#ifndef FS_TEST_HEAD_H
#define FS_TEST_HEAD_H

#include <stdint.h>

#define FS_TEST_MAGIC "FSGUEST1"
#define FS_TEST_LOAD_ADDR 0x100000u   /* scripts/freestanding.ld */

struct fs_test_head {
	char magic[8];           /* FS_TEST_MAGIC, no NUL */
	uint64_t load_addr;      /* where the linker placed the image */
	uint64_t image_size;     /* bytes from load_addr to the image's end */
	/* Runs the fs-*.h checks compiled freestanding; returns 0 when all
	 * pass, else the number of the first failing check. */
	uint32_t (*selftest)(void);
};

#endif
