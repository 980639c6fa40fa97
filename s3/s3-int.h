/* s3: internals shared by the module's files (not a public header). */
#ifndef S3_INT_H
#define S3_INT_H

#include "s3.h"

#include <stddef.h>
#include <stdint.h>

#define S3_KEY_MAX 1024         /* S3's limit on a key, bytes */
#define S3_XML_MAX (16u << 20)  /* largest XML answer parsed */
#define S3_XML_TEXT_MAX 4096    /* largest text of one element */
#define S3_XML_DEPTH 8          /* deepest nesting accepted */

/* Walk an XML document (xml, len; need not be NUL-terminated) and call
 * leaf(opaque, path, depth, text, tlen) for every element without child
 * elements: path[0..depth-1] are the element names from the root, text its
 * content with entities decoded (NUL-terminated; a NUL byte from an entity
 * is refused).  Elements with children are reported when they close, with
 * text NULL.  Strict: tags must nest and close, the document must end
 * after the root, sizes are capped (S3_XML_*).  leaf returning nonzero
 * stops the walk with that value.  -EPROTO (e) on malformed input. */
typedef int (*s3_xml_leaf_fn)(void *opaque, const char *const *path,
			      int depth, const char *text, size_t tlen);
int s3_xml_walk(const char *xml, size_t len, s3_xml_leaf_fn leaf,
		void *opaque, struct bdev_err *e);

/* The text of the first element named name at path depth 1 (a child of the
 * root) into out (size n); "" when absent.  0 or -EPROTO. */
int s3_xml_child(const char *xml, size_t len, const char *name, char *out,
		 size_t n);

/* Percent-encode s (S3 rules: unreserved characters kept; '/' kept when
 * keep_slash) into out (size n).  -ENAMETOOLONG when it does not fit. */
int s3_uri_encode(const char *s, bool keep_slash, char *out, size_t n);

/* "2026-11-30T22:53:33(.123)Z" -> Unix seconds; -1 when malformed. */
int64_t s3_iso8601_parse(const char *s);
/* Unix seconds -> "2026-11-30T22:53:33Z" (out >= 21 bytes). */
void s3_iso8601_format(int64_t t, char *out, size_t n);

/* An AWS shared config or credentials file, parsed: one entry per
 * property, sub-properties with their parent's name.  Section names are
 * kept as written, "profile  NAME" and "services  NAME" with one space. */
struct s3_ini_ent {
	char *sec, *parent, *key, *val;
};
struct s3_ini {
	struct s3_ini_ent *v;
	size_t n, cap;
	bool present;            /* the file exists */
	char path[512];
};
/* Parse path into f; a missing file gives an empty f (present false).
 * A line that is not a section, "key = value", a comment or blank fails
 * with -EINVAL (e: "PATH:LINE: ..."), as does a file over 1 MiB. */
int s3_ini_load(struct s3_ini *f, const char *path, struct bdev_err *e);
/* The value of key in section sec (under parent, or top level when parent
 * is NULL); the last one when repeated; NULL when absent. */
const char *s3_ini_get(const struct s3_ini *f, const char *sec,
		       const char *parent, const char *key);
/* True when the file has a section named sec. */
bool s3_ini_has(const struct s3_ini *f, const char *sec);
/* Free f's entries (values wiped first: they may be secrets). */
void s3_ini_free(struct s3_ini *f);

#endif
