/* client: the client side of the control socket (vmmc.h): connect, one
 * request line out, one reply line in, every wait bounded; and a strict
 * JSON reader for the reply, which comes from another process and is
 * checked whole before anyone reads it. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm-mini/vmmc.h"

#define MAX_DEPTH  32
#define MAX_VALUES 65536u

struct vmmc {
	int fd;
	char *path;
	char *buf;		/* bytes received after the last reply line */
	size_t have;
};

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (-1: none) for poll. */
static int left(int64_t deadline)
{
	int64_t l;

	if (deadline < 0)
		return -1;
	l = deadline - now_ms();
	return l < 0 ? 0 : l > 1000000 ? 1000000 : (int)l;
}

int vmmc_connect(const char *path, int timeout_ms, struct vmmc **out,
		 struct bdev_err *e)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	struct vmmc *c;
	int fd, r;

	*out = NULL;
	if (strlen(path) >= sizeof(a.sun_path))
		return bdev_err_set(e, ENAMETOOLONG, "%s: socket path too long", path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return bdev_err_set(e, errno, "socket: %s", strerror(errno));
	/* A unix socket connects at once or not at all; EAGAIN means the
	 * listen queue is full (the VMM serves one client at a time). */
	while ((r = connect(fd, (struct sockaddr *)&a, sizeof(a))) < 0 &&
	       (errno == EAGAIN || errno == EINTR) && now_ms() < deadline) {
		struct timespec ts = { 0, 20 * 1000000 };

		nanosleep(&ts, NULL);
	}
	if (r < 0) {
		r = errno;
		close(fd);
		return bdev_err_set(e, r, "%s: %s%s", path, strerror(r),
				    r == ENOENT || r == ECONNREFUSED
				    ? " (is the VMM running with --control on it?)" : "");
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(path))) {
		free(c);
		close(fd);
		return bdev_err_set(e, ENOMEM, "out of memory");
	}
	c->fd = fd;
	*out = c;
	return 0;
}

void vmmc_close(struct vmmc *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c->buf);
	free(c->path);
	free(c);
}

static int send_line(struct vmmc *c, const char *req, int64_t deadline,
		     struct bdev_err *e)
{
	size_t n = strlen(req), off = 0;
	char *line = malloc(n + 2);

	if (!line)
		return bdev_err_set(e, ENOMEM, "out of memory");
	memcpy(line, req, n);
	line[n++] = '\n';
	while (off < n) {
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		ssize_t w;

		if (poll(&p, 1, left(deadline)) == 0) {
			free(line);
			return bdev_err_set(e, ETIMEDOUT, "%s: the VMM did not take the request in time",
					    c->path);
		}
		w = send(c->fd, line + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w < 0) {
			int r = errno;

			free(line);
			return bdev_err_set(e, r, "%s: send: %s", c->path, strerror(r));
		}
		off += (size_t)w;
	}
	free(line);
	return 0;
}

int vmmc_call(struct vmmc *c, const char *request, int timeout_ms,
	      char **reply, struct bdev_err *e)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	char *nl;
	int r;

	*reply = NULL;
	if (strlen(request) > VMMC_REQUEST_MAX || strchr(request, '\n'))
		return bdev_err_set(e, EINVAL, "request too long or not one line");
	r = send_line(c, request, deadline, e);
	if (r)
		return r;
	if (!c->buf && !(c->buf = malloc(VMMC_REPLY_MAX + 1)))
		return bdev_err_set(e, ENOMEM, "out of memory");
	while (!(nl = memchr(c->buf, '\n', c->have))) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		ssize_t got;

		if (c->have == VMMC_REPLY_MAX)
			return bdev_err_set(e, EMSGSIZE, "%s: reply longer than %u bytes",
					    c->path, VMMC_REPLY_MAX);
		if (poll(&p, 1, left(deadline)) == 0)
			return bdev_err_set(e, ETIMEDOUT, "%s: no answer within %d s",
					    c->path, (timeout_ms + 999) / 1000);
		got = recv(c->fd, c->buf + c->have, VMMC_REPLY_MAX - c->have, 0);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got < 0)
			return bdev_err_set(e, errno, "%s: %s", c->path, strerror(errno));
		if (got == 0)
			return bdev_err_set(e, ECONNRESET, "%s: the VMM closed the connection without an answer",
					    c->path);
		c->have += (size_t)got;
	}
	*nl = '\0';
	if (strlen(c->buf) != (size_t)(nl - c->buf))
		r = bdev_err_set(e, EBADMSG, "%s: the answer holds a NUL byte", c->path);
	else if (!(*reply = strdup(c->buf)))
		r = bdev_err_set(e, ENOMEM, "out of memory");
	c->have -= (size_t)(nl + 1 - c->buf);
	memmove(c->buf, nl + 1, c->have);
	return r;
}

/* ---- the reader ----
 * One allocation for the document: the values (at most MAX_VALUES) and
 * the strings, unescaped into an arena no longer than the text. */

struct vmmc_doc {
	struct vmmc_val *v;
	uint32_t nv, capv;
	char *arena;
	size_t used;
};

struct parser {
	const char *p;
	struct vmmc_doc *d;
	const char *why;
};

static void skip_ws(struct parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || *ps->p == '\n')
		ps->p++;
}

static struct vmmc_val *new_val(struct parser *ps, enum vmmc_type t)
{
	struct vmmc_val *v;

	if (ps->d->nv == ps->d->capv) {
		ps->why = "too many values";
		return NULL;
	}
	v = &ps->d->v[ps->d->nv++];
	memset(v, 0, sizeof(*v));
	v->type = t;
	return v;
}

static int hex4(const char *p, unsigned *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++) {
		char h = p[i];

		*out <<= 4;
		if (h >= '0' && h <= '9')
			*out |= (unsigned)(h - '0');
		else if (h >= 'a' && h <= 'f')
			*out |= (unsigned)(h - 'a' + 10);
		else if (h >= 'A' && h <= 'F')
			*out |= (unsigned)(h - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

static void put_utf8(char **o, unsigned cp)
{
	char *q = *o;

	if (cp < 0x80) {
		*q++ = (char)cp;
	} else if (cp < 0x800) {
		*q++ = (char)(0xc0 | cp >> 6);
		*q++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*q++ = (char)(0xe0 | cp >> 12);
		*q++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*q++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*q++ = (char)(0xf0 | cp >> 18);
		*q++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*q++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*q++ = (char)(0x80 | (cp & 0x3f));
	}
	*o = q;
}

/* A string at ps->p (on the quote) into the arena.  An escape never
 * unescapes to more bytes than it took (\uXXXX: at most 3; a pair of 12:
 * 4), so the arena, as long as the text, always has room. */
static const char *string(struct parser *ps)
{
	static const char simple[] = "\"\\/bfnrt";	/* escapes of one character */
	char *start = ps->d->arena + ps->d->used, *o = start;
	const char *p = ps->p + 1;

	for (;;) {
		unsigned char ch = (unsigned char)*p++;
		unsigned cp, lo;

		if (ch == '"')
			break;
		if (ch < 0x20) {
			ps->why = ch ? "control character in a string" : "unterminated string";
			return NULL;
		}
		if (ch != '\\') {
			*o++ = (char)ch;
			continue;
		}
		ch = (unsigned char)*p++;
		if (ch && strchr(simple, ch)) {
			*o++ = "\"\\/\b\f\n\r\t"[strchr(simple, ch) - simple];
			continue;
		}
		if (ch != 'u') {
			ps->why = "bad escape";
			return NULL;
		}
		if (hex4(p, &cp)) {
			ps->why = "bad \\u escape";
			return NULL;
		}
		p += 4;
		if (cp >= 0xd800 && cp < 0xdc00) {
			if (p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) ||
			    lo < 0xdc00 || lo > 0xdfff) {
				ps->why = "unpaired surrogate";
				return NULL;
			}
			p += 6;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		} else if ((cp >= 0xdc00 && cp < 0xe000) || cp == 0) {
			ps->why = cp ? "unpaired surrogate" : "NUL in a string";
			return NULL;
		}
		put_utf8(&o, cp);
	}
	*o++ = '\0';
	ps->d->used += (size_t)(o - start);
	ps->p = p;
	return start;
}

static bool number(struct parser *ps, struct vmmc_val *v)
{
	const char *p = ps->p, *s = p;
	bool integral = true;
	char tmp[64];

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return false;
	if (*p == '.') {
		integral = false;
		if (!(*++p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		integral = false;
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if ((size_t)(p - s) >= sizeof(tmp))
		return false;
	memcpy(tmp, s, (size_t)(p - s));
	tmp[p - s] = '\0';
	v->num = strtod(tmp, NULL);
	if (!isfinite(v->num))
		return false;
	if (integral) {
		errno = 0;
		v->i = strtoll(tmp, NULL, 10);
		v->is_int = errno == 0;
	}
	ps->p = p;
	return true;
}

static struct vmmc_val *value(struct parser *ps, int depth);

/* Members of an array or object at ps->p (on the bracket). */
static bool members(struct parser *ps, struct vmmc_val *v, int depth)
{
	char close = v->type == VMMC_OBJ ? '}' : ']';
	const struct vmmc_val **tail = &v->first;

	ps->p++;
	skip_ws(ps);
	if (*ps->p == close) {
		ps->p++;
		return true;
	}
	for (;;) {
		const char *key = NULL;
		struct vmmc_val *m;

		if (v->type == VMMC_OBJ) {
			if (*ps->p != '"') {
				ps->why = "expected a member name";
				return false;
			}
			if (!(key = string(ps)))
				return false;
			skip_ws(ps);
			if (*ps->p++ != ':') {
				ps->why = "expected ':'";
				return false;
			}
		}
		m = value(ps, depth + 1);
		if (!m)
			return false;
		m->key = key;
		*tail = m;
		tail = &m->next;
		v->n++;
		skip_ws(ps);
		if (*ps->p == ',') {
			ps->p++;
			skip_ws(ps);
			continue;
		}
		if (*ps->p++ == close)
			return true;
		ps->why = v->type == VMMC_OBJ ? "expected ',' or '}'" : "expected ',' or ']'";
		return false;
	}
}

static struct vmmc_val *value(struct parser *ps, int depth)
{
	struct vmmc_val *v = NULL;
	char ch;

	if (depth > MAX_DEPTH) {
		ps->why = "nested too deeply";
		return NULL;
	}
	skip_ws(ps);
	ch = *ps->p;
	if (ch == '{' || ch == '[') {
		v = new_val(ps, ch == '{' ? VMMC_OBJ : VMMC_ARR);
		if (v && !members(ps, v, depth))
			v = NULL;
	} else if (ch == '"') {
		v = new_val(ps, VMMC_STR);
		if (v && !(v->s = string(ps)))
			v = NULL;
	} else if (!strncmp(ps->p, "true", 4) || !strncmp(ps->p, "false", 5)) {
		v = new_val(ps, VMMC_BOOL);
		if (v)
			v->b = ch == 't';
		ps->p += ch == 't' ? 4 : 5;
	} else if (!strncmp(ps->p, "null", 4)) {
		v = new_val(ps, VMMC_NULL);
		ps->p += 4;
	} else {
		v = new_val(ps, VMMC_NUM);
		if (v && !number(ps, v)) {
			ps->why = "unexpected character";
			v = NULL;
		}
	}
	return v;
}

struct vmmc_doc *vmmc_parse(const char *text, char *why, size_t wl)
{
	size_t len = strlen(text);
	struct vmmc_doc *d = calloc(1, sizeof(*d));
	struct parser ps = { .p = text, .d = d };

	if (d) {
		/* every value takes at least one byte of text */
		d->capv = len + 1 < MAX_VALUES ? (uint32_t)len + 1 : MAX_VALUES;
		d->v = calloc(d->capv, sizeof(*d->v));
		d->arena = malloc(len + 1);
	}
	if (!d || !d->v || !d->arena) {
		snprintf(why, wl, "out of memory");
		vmmc_doc_free(d);
		return NULL;
	}
	if (value(&ps, 0)) {
		skip_ws(&ps);
		if (!*ps.p)
			return d;
		ps.why = "trailing characters";
	}
	snprintf(why, wl, "%s at byte %zu", ps.why ? ps.why : "malformed",
		 (size_t)(ps.p - text));
	vmmc_doc_free(d);
	return NULL;
}

void vmmc_doc_free(struct vmmc_doc *d)
{
	if (!d)
		return;
	free(d->v);
	free(d->arena);
	free(d);
}

const struct vmmc_val *vmmc_root(const struct vmmc_doc *d)
{
	return &d->v[0];
}

const struct vmmc_val *vmmc_get(const struct vmmc_val *o, const char *key)
{
	if (!o || o->type != VMMC_OBJ)
		return NULL;
	for (const struct vmmc_val *m = o->first; m; m = m->next)
		if (!strcmp(m->key, key))
			return m;
	return NULL;
}

const char *vmmc_get_str(const struct vmmc_val *o, const char *key)
{
	const struct vmmc_val *v = vmmc_get(o, key);

	return v && v->type == VMMC_STR ? v->s : NULL;
}

bool vmmc_get_int(const struct vmmc_val *o, const char *key, int64_t *out)
{
	const struct vmmc_val *v = vmmc_get(o, key);

	if (!v || v->type != VMMC_NUM || !v->is_int)
		return false;
	*out = v->i;
	return true;
}
