/* fs-compiler: compiler and memory-ordering helpers for freestanding code
 * (built for the host and for a small guest alike).  Includes only
 * <stdint.h>, <stddef.h> and <stdbool.h>; everything is a macro or static
 * inline.  Prefix FS_ for macros, fs_ for functions. */
#ifndef FS_COMPILER_H
#define FS_COMPILER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FS_LIKELY(x)   __builtin_expect(!!(x), 1)
#define FS_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Compile-time checks.  FS_STATIC_ASSERT is a declaration (file or block
 * scope); FS_STATIC_ASSERT_EXPR is an expression of value 0 (size_t), for
 * use inside other macros. */
#define FS_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define FS_STATIC_ASSERT_EXPR(cond, msg) \
	(0 * sizeof(struct { _Static_assert(cond, msg); char fs_unused; }))

#define FS_SAME_TYPE(a, b) \
	__builtin_types_compatible_p(__typeof__(a), __typeof__(b))

/* Number of elements of an array; a pointer fails to compile. */
#define FS_ARRAY_SIZE(a) \
	(sizeof(a) / sizeof((a)[0]) + \
	 FS_STATIC_ASSERT_EXPR(!FS_SAME_TYPE(a, &(a)[0]), \
			       "FS_ARRAY_SIZE of a pointer"))

/* The struct of type `type` whose member `member` is at ptr.  ptr must
 * point to that member's type. */
#define FS_CONTAINER_OF(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member) + \
			  FS_STATIC_ASSERT_EXPR( \
				  FS_SAME_TYPE(*(ptr), ((type *)0)->member), \
				  "FS_CONTAINER_OF: pointer type differs from the member's")))

/* Stops the compiler from moving memory accesses across it; no CPU fence. */
static inline void fs_barrier(void)
{
	__asm__ __volatile__("" ::: "memory");
}

/* CPU memory barriers for memory shared with another processor (a guest and
 * its host, two threads).  smp_mb orders every earlier load and store
 * before every later one; smp_rmb loads before loads; smp_wmb stores before
 * stores.  On x86-64 (TSO) only store->load needs a fence, so rmb and wmb
 * are compiler barriers; a locked add on the stack is the fence Linux uses
 * (cheaper than mfence).  Other CPUs get the __atomic fences.
 * ThreadSanitizer does not model standalone fences (gcc refuses
 * __atomic_thread_fence under -fsanitize=thread): data handed between host
 * threads should use __atomic acquire/release accesses, which it sees. */
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

/* One access of exactly the given size that the compiler may neither tear,
 * merge, repeat nor omit: for indices in memory another party writes (read
 * once, then validate the copy).  Scalars of 1, 2, 4 or 8 bytes only.  No
 * CPU ordering: pair with fs_smp_*(). */
#define FS_ONCE_SIZE_OK(x) \
	(sizeof(x) == 1 || sizeof(x) == 2 || sizeof(x) == 4 || sizeof(x) == 8)
#define FS_READ_ONCE(x) \
	__extension__({ \
		FS_STATIC_ASSERT(FS_ONCE_SIZE_OK(x), \
				 "FS_READ_ONCE needs a 1, 2, 4 or 8 byte scalar"); \
		*(const volatile __typeof__(x) *)&(x); \
	})
#define FS_WRITE_ONCE(x, v) \
	do { \
		FS_STATIC_ASSERT(FS_ONCE_SIZE_OK(x), \
				 "FS_WRITE_ONCE needs a 1, 2, 4 or 8 byte scalar"); \
		*(volatile __typeof__(x) *)&(x) = (v); \
	} while (0)

#endif
