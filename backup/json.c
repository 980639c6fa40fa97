/* A small strict JSON parser for the repository's own files (manifests,
 * repo.json).  They may be damaged or hostile: nesting is limited, every
 * length is checked, strings with NUL or bad escapes are refused. */
#include "bkp-int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16
#define MAX_MEMBERS 100000

struct parser {
	const char *p, *end;
	char *why;
	size_t wl;
	int depth;
};

static struct bkp_json *fail(struct parser *ps, const char *msg)
{
	if (ps->why && !ps->why[0])
		snprintf(ps->why, ps->wl, "%s", msg);
	return NULL;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
				   *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int put_utf8(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* p at the opening quote; returns a malloc'd string. */
static char *parse_string(struct parser *ps)
{
	const char *s = ++ps->p;
	char *out, *o;

	/* The decoded string is never longer than the literal. */
	while (ps->p < ps->end && *ps->p != '"') {
		if (*ps->p == '\\')
			ps->p++;
		ps->p++;
	}
	if (ps->p >= ps->end) {
		fail(ps, "unterminated string");
		return NULL;
	}
	out = o = malloc((size_t)(ps->p - s) + 1);
	if (!out) {
		fail(ps, "out of memory");
		return NULL;
	}
	for (const char *q = s; q < ps->p; q++) {
		unsigned cp = 0;

		if ((unsigned char)*q < 0x20)
			goto bad;
		if (*q != '\\') {
			*o++ = *q;
			continue;
		}
		switch (*++q) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if (ps->p - q < 5)
				goto bad;
			for (int i = 1; i <= 4; i++) {
				int h = hexval(q[i]);

				if (h < 0)
					goto bad;
				cp = cp << 4 | (unsigned)h;
			}
			q += 4;
			/* No NUL, no lone surrogates (we never write them). */
			if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
				goto bad;
			o += put_utf8(o, cp);
			break;
		default:
			goto bad;
		}
	}
	*o = '\0';
	ps->p++;
	return out;
bad:
	free(out);
	fail(ps, "bad character or escape in a string");
	return NULL;
}

static struct bkp_json *parse_value(struct parser *ps);

static struct bkp_json *parse_number(struct parser *ps, struct bkp_json *j)
{
	const char *s = ps->p;
	char buf[64];
	char *end;
	size_t n;

	while (ps->p < ps->end && strchr("+-0123456789.eE", *ps->p))
		ps->p++;
	n = (size_t)(ps->p - s);
	if (n == 0 || n >= sizeof(buf) || *s == '+') {
		free(j);
		return fail(ps, "bad number");
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	j->num = strtod(buf, &end);
	if (*end || !isfinite(j->num)) {
		free(j);
		return fail(ps, "bad number");
	}
	j->type = BKP_J_NUM;
	if (strspn(buf, "0123456789") == n) {
		errno = 0;
		j->u64 = strtoull(buf, &end, 10);
		j->is_u64 = errno == 0;
		if (j->is_u64 && j->u64 <= INT64_MAX) {
			j->is_i64 = true;
			j->i64 = (int64_t)j->u64;
		}
	} else if (buf[0] == '-' && strspn(buf + 1, "0123456789") == n - 1 &&
		   n > 1) {
		errno = 0;
		j->i64 = strtoll(buf, &end, 10);
		j->is_i64 = errno == 0;
	}
	return j;
}

static bool add_member(struct bkp_json *j, char *key, struct bkp_json *v)
{
	char **k;
	struct bkp_json **vv;

	if (j->n >= MAX_MEMBERS)
		return false;
	vv = realloc(j->v, (j->n + 1) * sizeof(*vv));
	if (!vv)
		return false;
	j->v = vv;
	if (j->type == BKP_J_OBJ) {
		k = realloc(j->keys, (j->n + 1) * sizeof(*k));
		if (!k)
			return false;
		j->keys = k;
		j->keys[j->n] = key;
	}
	j->v[j->n++] = v;
	return true;
}

static struct bkp_json *parse_container(struct parser *ps,
					struct bkp_json *j, bool obj)
{
	char close = obj ? '}' : ']';

	j->type = obj ? BKP_J_OBJ : BKP_J_ARR;
	if (++ps->depth > MAX_DEPTH) {
		bkp_json_free(j);
		return fail(ps, "nested too deeply");
	}
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		ps->depth--;
		return j;
	}
	for (;;) {
		char *key = NULL;
		struct bkp_json *v;

		skip_ws(ps);
		if (obj) {
			if (ps->p >= ps->end || *ps->p != '"')
				goto bad;
			key = parse_string(ps);
			if (!key)
				goto bad;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				free(key);
				goto bad;
			}
			ps->p++;
		}
		v = parse_value(ps);
		if (!v || !add_member(j, key, v)) {
			free(key);
			bkp_json_free(v);
			goto bad;
		}
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			ps->depth--;
			return j;
		}
		goto bad;
	}
bad:
	bkp_json_free(j);
	return fail(ps, obj ? "malformed object" : "malformed array");
}

static bool literal(struct parser *ps, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n))
		return false;
	ps->p += n;
	return true;
}

static struct bkp_json *parse_value(struct parser *ps)
{
	struct bkp_json *j;

	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, "unexpected end of text");
	j = calloc(1, sizeof(*j));
	if (!j)
		return fail(ps, "out of memory");
	switch (*ps->p) {
	case '{':
		return parse_container(ps, j, true);
	case '[':
		return parse_container(ps, j, false);
	case '"':
		j->type = BKP_J_STR;
		j->s = parse_string(ps);
		if (!j->s) {
			free(j);
			return NULL;
		}
		return j;
	case 't':
	case 'f':
		j->type = BKP_J_BOOL;
		j->b = *ps->p == 't';
		if (literal(ps, j->b ? "true" : "false"))
			return j;
		break;
	case 'n':
		j->type = BKP_J_NULL;
		if (literal(ps, "null"))
			return j;
		break;
	default:
		return parse_number(ps, j);
	}
	free(j);
	return fail(ps, "unknown literal");
}

struct bkp_json *bkp_json_parse(const char *text, size_t len, char *why,
				size_t wl)
{
	struct parser ps = { text, text + len, why, wl, 0 };
	struct bkp_json *j;

	if (why && wl)
		why[0] = '\0';
	j = parse_value(&ps);
	if (!j)
		return NULL;
	skip_ws(&ps);
	if (ps.p != ps.end) {
		bkp_json_free(j);
		return fail(&ps, "text after the JSON value");
	}
	return j;
}

void bkp_json_free(struct bkp_json *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		if (j->keys)
			free(j->keys[i]);
		bkp_json_free(j->v[i]);
	}
	free(j->keys);
	free(j->v);
	free(j->s);
	free(j);
}

const struct bkp_json *bkp_json_get(const struct bkp_json *o,
				    const char *key)
{
	if (!o || o->type != BKP_J_OBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->keys[i], key))
			return o->v[i];
	return NULL;
}
