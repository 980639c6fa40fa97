/* s3: the little XML S3 answers need (list pages, error bodies,
 * retention): a strict, bounded walker over elements and their text, and
 * the ListObjectsV2 page parser on top of it.  Input is hostile: every
 * length is checked against the end of the buffer, sizes and nesting are
 * capped, and anything this walker does not understand (DOCTYPE,
 * unbalanced tags, unknown entities) is refused rather than guessed. */
#include "s3-int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 64

struct walker {
	const char *p, *end;
	char names[S3_XML_DEPTH][NAME_MAX_LEN];
	const char *path[S3_XML_DEPTH];
	int depth;
	bool had_child[S3_XML_DEPTH];
	char text[S3_XML_TEXT_MAX + 1];
	size_t tlen;
};

static int bad(struct bdev_err *e, const struct walker *w, const char *why)
{
	return bdev_err_set(e, EPROTO, "malformed XML from the store: %s", why);
}

static bool is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
	       ch == '.' || ch == ':';
}

/* Append one code point (UTF-8) to the text. */
static int put_cp(struct walker *w, uint32_t cp)
{
	unsigned char b[4];
	size_t n;

	if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | (cp >> 6));
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (cp >> 12));
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (cp >> 18));
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (w->tlen + n > S3_XML_TEXT_MAX)
		return -1;
	memcpy(w->text + w->tlen, b, n);
	w->tlen += n;
	return 0;
}

/* An entity at w->p ('&'), decoded into the text. */
static int entity(struct walker *w)
{
	static const struct { const char *name; char ch; } named[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' },
		{ "quot;", '"' }, { "apos;", '\'' },
	};
	const char *q = w->p + 1;
	size_t left = (size_t)(w->end - q);
	uint32_t cp = 0;
	int digits = 0;

	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		size_t l = strlen(named[i].name);

		if (left >= l && !memcmp(q, named[i].name, l)) {
			w->p = q + l;
			return put_cp(w, (unsigned char)named[i].ch);
		}
	}
	if (left < 3 || *q != '#')
		return -1;
	q++;
	if (*q == 'x') {
		for (q++; q < w->end && *q != ';'; q++, digits++) {
			int v;

			if (*q >= '0' && *q <= '9')
				v = *q - '0';
			else if (*q >= 'a' && *q <= 'f')
				v = *q - 'a' + 10;
			else if (*q >= 'A' && *q <= 'F')
				v = *q - 'A' + 10;
			else
				return -1;
			if (digits >= 6)
				return -1;
			cp = cp * 16 + (uint32_t)v;
		}
	} else {
		for (; q < w->end && *q != ';'; q++, digits++) {
			if (*q < '0' || *q > '9' || digits >= 7)
				return -1;
			cp = cp * 10 + (uint32_t)(*q - '0');
		}
	}
	if (q >= w->end || digits == 0)
		return -1;
	w->p = q + 1;
	return put_cp(w, cp);
}

/* Skip "<?...?>" and "<!--...-->" at w->p. */
static int skip_misc(struct walker *w, bool *skipped)
{
	const char *q;

	*skipped = false;
	if (w->end - w->p >= 2 && !memcmp(w->p, "<?", 2)) {
		q = memmem(w->p + 2, (size_t)(w->end - w->p - 2), "?>", 2);
		if (!q)
			return -1;
		w->p = q + 2;
		*skipped = true;
	} else if (w->end - w->p >= 4 && !memcmp(w->p, "<!--", 4)) {
		q = memmem(w->p + 4, (size_t)(w->end - w->p - 4), "-->", 3);
		if (!q)
			return -1;
		w->p = q + 3;
		*skipped = true;
	}
	return 0;
}

/* A tag name at w->p into out. */
static int tag_name(struct walker *w, char out[NAME_MAX_LEN])
{
	size_t n = 0;

	while (w->p < w->end && is_name_char(*w->p)) {
		if (n + 1 >= NAME_MAX_LEN)
			return -1;
		out[n++] = *w->p++;
	}
	out[n] = 0;
	return n ? 0 : -1;
}

/* Past the attributes of a start tag, to '>' or "/>"; *empty for "/>". */
static int tag_rest(struct walker *w, bool *empty)
{
	char quote = 0;

	for (; w->p < w->end; w->p++) {
		char ch = *w->p;

		if (quote) {
			if (ch == quote)
				quote = 0;
		} else if (ch == '"' || ch == '\'') {
			quote = ch;
		} else if (ch == '<') {
			return -1;
		} else if (ch == '>') {
			*empty = w->p[-1] == '/';
			w->p++;
			return 0;
		}
	}
	return -1;
}

int s3_xml_walk(const char *xml, size_t len, s3_xml_leaf_fn leaf,
		void *opaque, struct bdev_err *e)
{
	struct walker *w;
	bool done = false, skipped, empty;
	char name[NAME_MAX_LEN];
	int r = 0;

	if (len > S3_XML_MAX)
		return bdev_err_set(e, EPROTO, "XML answer of %zu bytes (more than %u)",
				    len, S3_XML_MAX);
	w = calloc(1, sizeof(*w));
	if (!w)
		return bdev_err_set(e, ENOMEM, "out of memory");
	w->p = xml;
	w->end = xml + len;
	for (int i = 0; i < S3_XML_DEPTH; i++)
		w->path[i] = w->names[i];
	while (w->p < w->end) {
		if (*w->p != '<') {
			if (w->depth == 0) {
				/* Only white space outside the root. */
				if (*w->p != ' ' && *w->p != '\n' &&
				    *w->p != '\r' && *w->p != '\t') {
					r = bad(e, w, "text outside the root element");
					goto out;
				}
				w->p++;
			} else if (*w->p == '&') {
				if (entity(w) < 0) {
					r = bad(e, w, "bad entity or text too long");
					goto out;
				}
			} else {
				if (w->tlen >= S3_XML_TEXT_MAX || *w->p == 0) {
					r = bad(e, w, "text too long or NUL byte");
					goto out;
				}
				w->text[w->tlen++] = *w->p++;
			}
			continue;
		}
		if (skip_misc(w, &skipped) < 0) {
			r = bad(e, w, "unterminated declaration or comment");
			goto out;
		}
		if (skipped)
			continue;
		if (w->end - w->p >= 2 && w->p[1] == '!') {
			r = bad(e, w, "DOCTYPE or CDATA");
			goto out;
		}
		if (w->end - w->p >= 2 && w->p[1] == '/') {
			/* An end tag: must close the innermost element. */
			w->p += 2;
			if (w->depth == 0 || tag_name(w, name) < 0 ||
			    strcmp(name, w->names[w->depth - 1]) ||
			    w->p >= w->end || *w->p != '>') {
				r = bad(e, w, "end tag does not match");
				goto out;
			}
			w->p++;
			w->text[w->tlen] = 0;
			r = leaf(opaque, w->path, w->depth,
				 w->had_child[w->depth - 1] ? NULL : w->text,
				 w->had_child[w->depth - 1] ? 0 : w->tlen);
			if (r)
				goto out;
			w->tlen = 0;
			if (--w->depth == 0)
				done = true;
			continue;
		}
		/* A start tag. */
		w->p++;
		if (done) {
			r = bad(e, w, "a second root element");
			goto out;
		}
		if (w->depth >= S3_XML_DEPTH) {
			r = bad(e, w, "nested too deep");
			goto out;
		}
		if (tag_name(w, w->names[w->depth]) < 0 || tag_rest(w, &empty) < 0) {
			r = bad(e, w, "bad start tag");
			goto out;
		}
		if (w->depth > 0)
			w->had_child[w->depth - 1] = true;
		w->tlen = 0;
		if (empty) {
			w->text[0] = 0;
			r = leaf(opaque, w->path, w->depth + 1, w->text, 0);
			if (r)
				goto out;
			if (w->depth == 0)
				done = true;
			continue;
		}
		w->had_child[w->depth] = false;
		w->depth++;
	}
	if (w->depth != 0 || !done)
		r = bad(e, w, "truncated document");
out:
	free(w);
	return r;
}

struct child_find {
	const char *name;
	char *out;
	size_t n;
	bool found;
};

static int child_leaf(void *opaque, const char *const *path, int depth,
		      const char *text, size_t tlen)
{
	struct child_find *f = opaque;

	if (depth == 2 && text && !f->found && !strcmp(path[1], f->name)) {
		snprintf(f->out, f->n, "%s", text);
		f->found = true;
	}
	return 0;
}

int s3_xml_child(const char *xml, size_t len, const char *name, char *out,
		 size_t n)
{
	struct child_find f = { name, out, n, false };

	out[0] = 0;
	return s3_xml_walk(xml, len, child_leaf, &f, NULL);
}

/* ---- ListObjectsV2 pages ---- */

struct list_page {
	s3_list_fn fn;
	void *opaque;
	bool *truncated;
	char *next;
	size_t nnext;
	bool validate;          /* first pass: check only, no fn */
	bool root_ok, has_key, has_size;
	char key[S3_KEY_MAX + 1];
	struct s3_stat st;
	struct bdev_err *e;
};

static int parse_u64(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		uint64_t d = (uint64_t)(*s - '0');

		if (*s < '0' || *s > '9' || x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

/* The fields a <Contents>, <Version> or <DeleteMarker> entry shares:
 * Key, Size, LastModified, ETag (name, its text) into key/st, has_key and
 * has_size noted.  0, or -EPROTO (e; what names the answer). */
static int entry_field(const char *what, const char *name, const char *text,
		       size_t tlen, char key[S3_KEY_MAX + 1], bool *has_key,
		       struct s3_stat *st, bool *has_size, struct bdev_err *e)
{
	if (!strcmp(name, "Key")) {
		if (tlen == 0 || tlen > S3_KEY_MAX || *has_key)
			return bdev_err_set(e, EPROTO, "%s answer: key of %zu bytes, or a second <Key>", what, tlen);
		memcpy(key, text, tlen + 1);
		*has_key = true;
	} else if (!strcmp(name, "Size")) {
		if (parse_u64(text, &st->size) < 0)
			return bdev_err_set(e, EPROTO, "%s answer: size \"%.32s\"", what, text);
		*has_size = true;
	} else if (!strcmp(name, "LastModified")) {
		st->mtime = s3_iso8601_parse(text);
		if (st->mtime < 0)
			return bdev_err_set(e, EPROTO, "%s answer: date \"%.40s\"", what, text);
	} else if (!strcmp(name, "ETag")) {
		const char *s = text;
		size_t l = tlen;

		if (l >= 2 && s[0] == '"' && s[l - 1] == '"') {
			s++;
			l -= 2;
		}
		if (l >= sizeof(st->etag))
			return bdev_err_set(e, EPROTO, "%s answer: ETag of %zu bytes", what, l);
		memcpy(st->etag, s, l);
		st->etag[l] = 0;
	}
	return 0;
}

static int list_leaf(void *opaque, const char *const *path, int depth,
		     const char *text, size_t tlen)
{
	struct list_page *lp = opaque;

	if (strcmp(path[0], "ListBucketResult"))
		return bdev_err_set(lp->e, EPROTO,
				    "list answer: root <%s>, not <ListBucketResult>", path[0]);
	if (depth == 1) {
		lp->root_ok = true;
		return 0;
	}
	if (depth == 2 && !strcmp(path[1], "Contents")) {
		int r;

		if (text || !lp->has_key || !lp->has_size)
			return bdev_err_set(lp->e, EPROTO,
					    "list answer: <Contents> without <Key> or <Size>");
		r = lp->validate ? 0 : lp->fn(lp->opaque, lp->key, &lp->st);
		lp->has_key = lp->has_size = false;
		memset(&lp->st, 0, sizeof(lp->st));
		return r;
	}
	if (depth == 2 && text && !strcmp(path[1], "IsTruncated")) {
		if (!strcmp(text, "true"))
			*lp->truncated = true;
		else if (!strcmp(text, "false"))
			*lp->truncated = false;
		else
			return bdev_err_set(lp->e, EPROTO, "list answer: IsTruncated \"%s\"", text);
		return 0;
	}
	if (depth == 2 && text && !strcmp(path[1], "NextContinuationToken")) {
		if (tlen >= lp->nnext)
			return bdev_err_set(lp->e, EPROTO, "list answer: continuation token of %zu bytes", tlen);
		memcpy(lp->next, text, tlen + 1);
		return 0;
	}
	if (depth != 3 || strcmp(path[1], "Contents"))
		return 0;
	if (!text)
		return 0;       /* <Owner> and the like */
	return entry_field("list", path[2], text, tlen, lp->key, &lp->has_key,
			   &lp->st, &lp->has_size, lp->e);
}

int s3_list_parse(const char *xml, size_t len, s3_list_fn fn, void *opaque,
		  bool *truncated, char *next, size_t nnext,
		  struct bdev_err *e)
{
	struct list_page *lp;
	int r;

	lp = calloc(1, sizeof(*lp));
	if (!lp)
		return bdev_err_set(e, ENOMEM, "out of memory");
	*truncated = false;
	next[0] = 0;
	lp->fn = fn;
	lp->opaque = opaque;
	lp->truncated = truncated;
	lp->next = next;
	lp->nnext = nnext;
	lp->e = e;
	/* Two passes: the whole page is checked before fn sees any key, so a
	 * malformed page yields nothing. */
	lp->validate = true;
	r = s3_xml_walk(xml, len, list_leaf, lp, e);
	if (!r && !lp->root_ok)
		r = bdev_err_set(e, EPROTO, "list answer: empty");
	if (!r && *truncated && !next[0])
		r = bdev_err_set(e, EPROTO, "list answer: truncated without a continuation token");
	if (!r) {
		lp->validate = false;
		r = s3_xml_walk(xml, len, list_leaf, lp, e);
	}
	free(lp);
	return r;
}

/* ---- ListObjectVersions pages ---- */

struct version_page {
	s3_version_fn fn;
	void *opaque;
	bool *truncated;
	char *next_key, *next_vid;
	size_t nkey, nvid;
	bool validate;          /* first pass: check only, no fn */
	bool root_ok, has_key, has_vid, has_size, latest;
	char key[S3_KEY_MAX + 1];
	char vid[256];
	struct s3_stat st;
	struct bdev_err *e;
};

/* Copy a marker (text, tlen) into out (size n); -EPROTO when too long. */
static int marker_copy(struct version_page *vp, const char *what,
		       const char *text, size_t tlen, char *out, size_t n)
{
	if (tlen >= n)
		return bdev_err_set(vp->e, EPROTO, "versions answer: %s of %zu bytes", what, tlen);
	memcpy(out, text, tlen + 1);
	return 0;
}

static int version_leaf(void *opaque, const char *const *path, int depth,
			const char *text, size_t tlen)
{
	struct version_page *vp = opaque;
	bool marker;

	if (strcmp(path[0], "ListVersionsResult"))
		return bdev_err_set(vp->e, EPROTO,
				    "versions answer: root <%s>, not <ListVersionsResult>", path[0]);
	if (depth == 1) {
		vp->root_ok = true;
		return 0;
	}
	marker = !strcmp(path[1], "DeleteMarker");
	if (depth == 2 && (marker || !strcmp(path[1], "Version"))) {
		struct s3_version v = { .key = vp->key, .version_id = vp->vid,
					.delete_marker = marker, .latest = vp->latest,
					.st = vp->st };
		int r;

		if (text || !vp->has_key || !vp->has_vid || (!marker && !vp->has_size))
			return bdev_err_set(vp->e, EPROTO,
					    "versions answer: <%s> without <Key>, <VersionId> or <Size>",
					    path[1]);
		r = vp->validate ? 0 : vp->fn(vp->opaque, &v);
		vp->has_key = vp->has_vid = vp->has_size = vp->latest = false;
		memset(&vp->st, 0, sizeof(vp->st));
		return r;
	}
	if (depth == 2 && text && !strcmp(path[1], "IsTruncated")) {
		if (!strcmp(text, "true"))
			*vp->truncated = true;
		else if (!strcmp(text, "false"))
			*vp->truncated = false;
		else
			return bdev_err_set(vp->e, EPROTO, "versions answer: IsTruncated \"%.16s\"", text);
		return 0;
	}
	if (depth == 2 && text && !strcmp(path[1], "NextKeyMarker"))
		return marker_copy(vp, "key marker", text, tlen, vp->next_key, vp->nkey);
	if (depth == 2 && text && !strcmp(path[1], "NextVersionIdMarker"))
		return marker_copy(vp, "version id marker", text, tlen, vp->next_vid, vp->nvid);
	if (depth != 3 || !text || (!marker && strcmp(path[1], "Version")))
		return 0;       /* <Owner> and the like */
	if (!strcmp(path[2], "VersionId")) {
		if (tlen == 0 || tlen >= sizeof(vp->vid) || vp->has_vid)
			return bdev_err_set(vp->e, EPROTO, "versions answer: version id of %zu bytes, or a second <VersionId>", tlen);
		memcpy(vp->vid, text, tlen + 1);
		vp->has_vid = true;
		return 0;
	}
	if (!strcmp(path[2], "IsLatest")) {
		if (strcmp(text, "true") && strcmp(text, "false"))
			return bdev_err_set(vp->e, EPROTO, "versions answer: IsLatest \"%.16s\"", text);
		vp->latest = !strcmp(text, "true");
		return 0;
	}
	return entry_field("versions", path[2], text, tlen, vp->key, &vp->has_key,
			   &vp->st, &vp->has_size, vp->e);
}

int s3_versions_parse(const char *xml, size_t len, s3_version_fn fn,
		      void *opaque, bool *truncated, char *next_key,
		      size_t nkey, char *next_vid, size_t nvid,
		      struct bdev_err *e)
{
	struct version_page *vp;
	int r;

	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return bdev_err_set(e, ENOMEM, "out of memory");
	*truncated = false;
	next_key[0] = next_vid[0] = 0;
	vp->fn = fn;
	vp->opaque = opaque;
	vp->truncated = truncated;
	vp->next_key = next_key;
	vp->nkey = nkey;
	vp->next_vid = next_vid;
	vp->nvid = nvid;
	vp->e = e;
	/* Two passes, as for list pages: nothing from a malformed page. */
	vp->validate = true;
	r = s3_xml_walk(xml, len, version_leaf, vp, e);
	if (!r && !vp->root_ok)
		r = bdev_err_set(e, EPROTO, "versions answer: empty");
	if (!r && *truncated && !next_key[0])
		r = bdev_err_set(e, EPROTO, "versions answer: truncated without a key marker");
	if (!r) {
		vp->validate = false;
		vp->has_key = vp->has_vid = vp->has_size = vp->latest = false;
		r = s3_xml_walk(xml, len, version_leaf, vp, e);
	}
	free(vp);
	return r;
}
