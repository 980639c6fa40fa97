/* json: the one JSON writer.  Every document the project prints
 * (`vhdtool ... --output=json`) or stores (backup manifests) goes through
 * it, so all of them escape strings the same way and stay valid JSON
 * whatever bytes a file name holds.
 *
 * Strings: '"', '\\' and control characters are escaped (\n, \t, ... or
 * \u00XX); valid UTF-8 passes unchanged; a sequence that is not valid
 * UTF-8 (a stray continuation byte, a cut or overlong sequence, a
 * surrogate, past U+10FFFF, a noncharacter) becomes one \uFFFD, the
 * replacement character, by the rules of qemu's JSON writer, so qemu-img
 * and vhdtool print the same name for the same bytes (qemu also escapes
 * valid non-ASCII as \uXXXX: the same string once decoded).  Such a name
 * cannot be recovered from the JSON; it is for showing, not for opening.
 *
 * Layout: objects on one line ({"a": 1, "b": "x"}), each element of an
 * array on its own line, indented, so line-oriented tools (sed, grep) see
 * one record a line.  A document ends with a newline.
 *
 * Usage: struct json j; json_begin(&j, stdout); json_obj(&j);
 * json_key(&j, "size"); json_u64(&j, n); ... json_end_obj(&j);
 * json_finish(&j).  Nesting deeper than JSON_MAX_DEPTH is a caller bug
 * (asserted). */
#ifndef JSON_H
#define JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 32

struct json {
	FILE *f;
	int depth;
	bool after_key;               /* a key was written: the value follows */
	bool has_items[JSON_MAX_DEPTH];
	bool is_array[JSON_MAX_DEPTH];
};

void json_begin(struct json *j, FILE *f);
void json_obj(struct json *j);
void json_end_obj(struct json *j);
void json_arr(struct json *j);
void json_end_arr(struct json *j);
void json_key(struct json *j, const char *key);
/* A string value; NULL writes null. */
void json_str(struct json *j, const char *s);
void json_u64(struct json *j, uint64_t v);
void json_i64(struct json *j, int64_t v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);
/* A number with a fixed count of decimals (durations, rates). */
void json_double(struct json *j, double v, int decimals);
/* A value that is already JSON text (another document of this writer). */
void json_raw(struct json *j, const char *text);
/* Key and value in one call. */
void json_kv_str(struct json *j, const char *key, const char *s);
void json_kv_u64(struct json *j, const char *key, uint64_t v);
void json_kv_bool(struct json *j, const char *key, bool v);
/* Ends the document with a newline; 0, or -EIO when the stream had an
 * error. */
int json_finish(struct json *j);

/* s as a quoted JSON string on f (NULL: null), with the escaping above. */
void json_quote(FILE *f, const char *s);
/* The same into out (always terminated when cap > 0); returns the length
 * the whole quoted string needs, without the terminator, as snprintf. */
size_t json_quote_buf(char *out, size_t cap, const char *s);

#endif
