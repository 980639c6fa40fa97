/* json: the one JSON writer (see json.h for the escaping and layout). */
#include "json.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* Where quoted text goes: a stream, or a buffer that counts what it could
 * not hold (as snprintf). */
struct sink {
	FILE *f;
	char *buf;
	size_t cap, n;
};

static void put(struct sink *s, const char *p, size_t len)
{
	if (s->f) {
		fwrite(p, 1, len, s->f);
		return;
	}
	for (size_t i = 0; i < len; i++, s->n++)
		if (s->n + 1 < s->cap)
			s->buf[s->n] = p[i];
}

/* The character at p (NUL-terminated): returns how many bytes it takes
 * and sets *ok when it is valid UTF-8.  The rules are qemu's
 * (mod_utf8_codepoint), so both write the same \uFFFD for the same
 * bytes: a stray continuation byte or 0xFE/0xFF is one bad byte; a lead
 * byte takes the continuation bytes that follow it, up to its length, and
 * the whole sequence is bad when it is cut short, overlong, a surrogate,
 * past U+10FFFF or a noncharacter (U+FDD0-U+FDEF, U+xFFFE, U+xFFFF). */
static size_t utf8_char(const unsigned char *p, bool *ok)
{
	static const uint32_t min_cp[] = { 0x80, 0x800, 0x10000, 0x200000,
					   0x4000000 };
	unsigned char c = p[0];
	size_t len = 0;
	uint32_t cp;

	*ok = c < 0x80;
	if (c < 0x80 || c >= 0xfe || !(c & 0x40))
		return 1;
	while (c & (0x40 >> len))
		len++;
	cp = c & (0x3fu >> len);
	for (size_t i = 0; i < len; i++) {
		if ((p[1 + i] & 0xc0) != 0x80)
			return 1 + i;     /* cut short (a NUL stops it too) */
		cp = cp << 6 | (p[1 + i] & 0x3fu);
	}
	*ok = cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) &&
	      !(cp >= 0xfdd0 && cp <= 0xfdef) && (cp & 0xfffe) != 0xfffe &&
	      cp >= min_cp[len - 1];
	return 1 + len;
}

static void quote(struct sink *s, const char *str)
{
	const unsigned char *p = (const unsigned char *)str;

	if (!str) {
		put(s, "null", 4);
		return;
	}
	put(s, "\"", 1);
	while (*p) {
		bool ok;
		size_t n = utf8_char(p, &ok);
		char esc[8];

		if (!ok) {
			put(s, "\\uFFFD", 6);
			p += n;
			continue;
		}
		if (n > 1 || (*p >= 0x20 && *p != '"' && *p != '\\')) {
			put(s, (const char *)p, n);
			p += n;
			continue;
		}
		switch (*p) {
		case '"': put(s, "\\\"", 2); break;
		case '\\': put(s, "\\\\", 2); break;
		case '\n': put(s, "\\n", 2); break;
		case '\t': put(s, "\\t", 2); break;
		case '\r': put(s, "\\r", 2); break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04X", *p);
			put(s, esc, 6);
		}
		p++;
	}
	put(s, "\"", 1);
}

void json_quote(FILE *f, const char *s)
{
	struct sink k = { .f = f };

	quote(&k, s);
}

size_t json_quote_buf(char *out, size_t cap, const char *s)
{
	struct sink k = { .buf = out, .cap = cap };

	quote(&k, s);
	if (cap)
		out[k.n < cap ? k.n : cap - 1] = '\0';
	return k.n;
}

void json_begin(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

/* Before any value: the separator from the previous item of the enclosing
 * array (and the new line of an array element); nothing after a key. */
static void before_value(struct json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth == 0)
		return;
	if (j->has_items[j->depth - 1])
		fputc(',', j->f);
	j->has_items[j->depth - 1] = true;
	if (j->is_array[j->depth - 1])
		fprintf(j->f, "\n%*s", 2 * j->depth, "");
}

static void open_scope(struct json *j, bool array)
{
	before_value(j);
	assert(j->depth < JSON_MAX_DEPTH);
	j->is_array[j->depth] = array;
	j->has_items[j->depth] = false;
	j->depth++;
	fputc(array ? '[' : '{', j->f);
}

static void close_scope(struct json *j, bool array)
{
	assert(j->depth > 0 && j->is_array[j->depth - 1] == array);
	j->depth--;
	if (array && j->has_items[j->depth])
		fprintf(j->f, "\n%*s", 2 * j->depth, "");
	fputc(array ? ']' : '}', j->f);
}

void json_obj(struct json *j) { open_scope(j, false); }
void json_end_obj(struct json *j) { close_scope(j, false); }
void json_arr(struct json *j) { open_scope(j, true); }
void json_end_arr(struct json *j) { close_scope(j, true); }

void json_key(struct json *j, const char *key)
{
	assert(j->depth > 0 && !j->is_array[j->depth - 1] && !j->after_key);
	if (j->has_items[j->depth - 1])
		fputs(", ", j->f);
	j->has_items[j->depth - 1] = true;
	json_quote(j->f, key);
	fputs(": ", j->f);
	j->after_key = true;
}

void json_str(struct json *j, const char *s)
{
	before_value(j);
	json_quote(j->f, s);
}

void json_u64(struct json *j, uint64_t v)
{
	before_value(j);
	fprintf(j->f, "%" PRIu64, v);
}

void json_i64(struct json *j, int64_t v)
{
	before_value(j);
	fprintf(j->f, "%" PRId64, v);
}

void json_bool(struct json *j, bool v)
{
	before_value(j);
	fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j)
{
	before_value(j);
	fputs("null", j->f);
}

void json_double(struct json *j, double v, int decimals)
{
	before_value(j);
	/* JSON has no NaN or infinity. */
	if (v != v || v > 1e300 || v < -1e300)
		fputs("null", j->f);
	else
		fprintf(j->f, "%.*f", decimals, v);
}

void json_raw(struct json *j, const char *text)
{
	before_value(j);
	fputs(text ? text : "null", j->f);
}

void json_kv_str(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_str(j, s);
}

void json_kv_u64(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	json_u64(j, v);
}

void json_kv_bool(struct json *j, const char *key, bool v)
{
	json_key(j, key);
	json_bool(j, v);
}

int json_finish(struct json *j)
{
	assert(j->depth == 0);
	fputc('\n', j->f);
	return ferror(j->f) ? -EIO : 0;
}
