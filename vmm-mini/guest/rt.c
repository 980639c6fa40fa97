/* rt: the guest runtime: the libc functions the compiler expects, the
 * console, the exit port, time and number parsing.  See rt.h. */
#include "vmm-mini/guest/rt.h"

/* gcc may turn these loops into calls to themselves: say it must not. */
#define NO_LIBCALL __attribute__((optimize("no-tree-loop-distribute-patterns")))

NO_LIBCALL void *memcpy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	while (n--)
		*d++ = *s++;
	return dst;
}

NO_LIBCALL void *memmove(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	if (d <= s || d >= s + n)
		return memcpy(dst, src, n);
	while (n--)
		d[n] = s[n];
	return dst;
}

NO_LIBCALL void *memset(void *dst, int c, size_t n)
{
	uint8_t *d = dst;

	while (n--)
		*d++ = (uint8_t)c;
	return dst;
}

NO_LIBCALL int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x < *y ? -1 : 1;
	return 0;
}

NO_LIBCALL size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int rt_strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		if (!*a)
			break;
	}
	return 0;
}

uint64_t rt_ticks_ns(uint64_t ticks)
{
	uint64_t khz = rt_boot()->tsc_khz;

	if (!khz)
		return 0;
	/* ticks * 1e6 / khz without overflowing for ticks below ~1.8e13. */
	return ticks / khz * 1000000 + ticks % khz * 1000000 / khz;
}

__attribute__((noreturn)) void rt_exit(int status)
{
	rt_outl(VMM_PORT_EXIT, (uint32_t)status);
	/* The VMM never resumes a vCPU after the exit port. */
	for (;;)
		rt_pause();
}

bool rt_parse_u64(const char **s, uint64_t *v)
{
	const char *p = *s;
	unsigned base = 10;
	uint64_t x = 0;
	bool any = false;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (;; p++) {
		unsigned d;

		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned)(*p - 'A' + 10);
		else
			break;
		x = x * base + d;
		any = true;
	}
	if (any) {
		*v = x;
		*s = p;
	}
	return any;
}

/* ---- console ---------------------------------------------------------- */

struct out {
	char *buf;
	size_t len, cap;
};

static void put(struct out *o, char c)
{
	if (o->len < o->cap)
		o->buf[o->len++] = c;
}

static void put_num(struct out *o, uint64_t v, unsigned base, bool neg, unsigned width,
		    char padc)
{
	char tmp[24];
	unsigned n = 0;

	do {
		unsigned d = (unsigned)(v % base);

		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	for (unsigned i = n; i < width; i++)
		put(o, padc);
	while (n)
		put(o, tmp[--n]);
}

static void vformat(struct out *o, const char *fmt, __builtin_va_list ap)
{
	for (; *fmt; fmt++) {
		unsigned width = 0, lng = 0;
		char padc = ' ';

		if (*fmt != '%') {
			put(o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0')
			padc = '0';
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (unsigned)(*fmt++ - '0');
		while (*fmt == 'l') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd': {
			int64_t v = lng ? __builtin_va_arg(ap, int64_t) : __builtin_va_arg(ap, int);

			put_num(o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, width, padc);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = lng ? __builtin_va_arg(ap, uint64_t)
					 : __builtin_va_arg(ap, unsigned int);

			put_num(o, v, *fmt == 'u' ? 10 : 16, false, width, padc);
			break;
		}
		case 's': {
			const char *s = __builtin_va_arg(ap, const char *);
			size_t n = strlen(s ? s : "(null)");

			for (size_t i = n; i < width; i++)
				put(o, ' ');
			for (s = s ? s : "(null)"; *s; s++)
				put(o, *s);
			break;
		}
		case 'c':
			put(o, (char)__builtin_va_arg(ap, int));
			break;
		case '%':
			put(o, '%');
			break;
		case '\0':
			return;
		default:
			put(o, '%');
			put(o, *fmt);
			break;
		}
	}
}

void rt_printf(const char *fmt, ...)
{
	unsigned cpu = rt_cpu();
	struct out o = {
		.buf = (char *)(VMM_GPA_CONSOLE + (uint64_t)cpu * VMM_CONSOLE_BYTES),
		.cap = VMM_CONSOLE_BYTES,
	};
	__builtin_va_list ap;

	if (cpu >= VMM_MAX_CPUS)
		return;
	__builtin_va_start(ap, fmt);
	vformat(&o, fmt, ap);
	__builtin_va_end(ap);
	rt_outl(VMM_PORT_CONSOLE, (uint32_t)o.len);
}

/* The value of key in "KEY=V,...": its first byte, or NULL when absent. */
static const char *arg_value(const char *args, const char *key)
{
	size_t k = strlen(key);
	const char *p = args;

	while (p && *p) {
		if (!rt_strncmp(p, key, k) && p[k] == '=')
			return p + k + 1;
		while (*p && *p != ',')
			p++;
		if (*p == ',')
			p++;
	}
	return NULL;
}

bool rt_arg(const char *args, const char *key, uint64_t *v)
{
	const char *q = arg_value(args, key);

	return q && rt_parse_u64(&q, v) && (*q == ',' || *q == '\0');
}

bool rt_arg_str(const char *args, const char *key, char *out, size_t cap)
{
	const char *q = arg_value(args, key);
	size_t n = 0;

	if (!q || !cap)
		return false;
	for (; q[n] && q[n] != ',' && n + 1 < cap; n++)
		out[n] = q[n];
	out[n] = '\0';
	return true;
}
