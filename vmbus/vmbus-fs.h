/* vmbus-fs: the few freestanding helpers ring.c and the channel code need,
 * until common/fs-compiler.h and common/fs-overflow.h (branch "build") land
 * in main.  Names and semantics are theirs, so switching is replacing this
 * include by theirs and deleting the file.  Private to vmbus/.
 *
 * Includes only <stdint.h>, <stddef.h> and <stdbool.h>. */
#ifndef VMBUS_FS_H
#define VMBUS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Stops the compiler from moving memory accesses across it; no CPU fence. */
static inline void fs_barrier(void)
{
	__asm__ __volatile__("" ::: "memory");
}

/* CPU barriers for memory shared with another processor.  On x86-64 (TSO)
 * only store->load needs a fence; a locked add on the stack is the one
 * Linux uses.  (A standalone __atomic_thread_fence is refused by gcc under
 * -fsanitize=thread, hence the asm.) */
#if defined(__x86_64__)
static inline void fs_smp_mb(void)
{
	__asm__ __volatile__("lock; addl $0,-4(%%rsp)" ::: "memory", "cc");
}
static inline void fs_smp_rmb(void)
{
	fs_barrier();
}
static inline void fs_smp_wmb(void)
{
	fs_barrier();
}
#else
static inline void fs_smp_mb(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}
static inline void fs_smp_rmb(void)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
}
static inline void fs_smp_wmb(void)
{
	__atomic_thread_fence(__ATOMIC_RELEASE);
}
#endif

/* One untorn access the compiler may not repeat or omit: for memory the
 * peer writes.  No CPU ordering: pair with fs_smp_*(). */
#define FS_READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define FS_WRITE_ONCE(x, v) \
	do { *(volatile __typeof__(x) *)&(x) = (v); } while (0)

static inline bool fs_add_overflow_u32(uint32_t a, uint32_t b, uint32_t *r)
{
	return __builtin_add_overflow(a, b, r);
}
static inline bool fs_add_overflow_u64(uint64_t a, uint64_t b, uint64_t *r)
{
	return __builtin_add_overflow(a, b, r);
}
static inline bool fs_mul_overflow_u64(uint64_t a, uint64_t b, uint64_t *r)
{
	return __builtin_mul_overflow(a, b, r);
}

/* True when [off, off + len) lies within [0, size), without overflow. */
static inline bool fs_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

#endif
