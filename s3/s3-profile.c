/* s3: the AWS shared config and credentials files (~/.aws/config,
 * ~/.aws/credentials), read as the AWS tools read them: INI sections,
 * "key = value" properties, and sub-properties indented under a property
 * with no value ("s3 =" then "  addressing_style = path").  Only the
 * parsing and the lookups are here; s3_config_env decides what wins. */
#include "s3-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define INI_FILE_MAX (1u << 20)   /* larger is not a config file */

static char *trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
		     s[n - 1] == '\n'))
		s[--n] = 0;
	return s;
}

/* A comment after a value starts with whitespace and then # or ;. */
static void cut_comment(char *v)
{
	for (char *p = v; *p; p++)
		if ((*p == '#' || *p == ';') && p > v && (p[-1] == ' ' || p[-1] == '\t')) {
			*p = 0;
			return;
		}
}

/* "profile   dev" -> "profile dev" (also "services NAME"); other names
 * are kept as written. */
static char *section_name(const char *raw)
{
	static const char *const kinds[] = { "profile", "services" };
	char *out;

	for (size_t k = 0; k < 2; k++) {
		size_t kl = strlen(kinds[k]);
		const char *rest = raw + kl;

		if (strncmp(raw, kinds[k], kl) || (*rest != ' ' && *rest != '\t'))
			continue;
		while (*rest == ' ' || *rest == '\t')
			rest++;
		out = malloc(kl + 2 + strlen(rest));
		if (out)
			sprintf(out, "%s %s", kinds[k], rest);
		return out;
	}
	return strdup(raw);
}

static int add(struct s3_ini *f, const char *sec, const char *parent,
	       const char *key, const char *val)
{
	struct s3_ini_ent *x;

	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct s3_ini_ent *v = realloc(f->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	x = &f->v[f->n];
	x->sec = strdup(sec);
	x->parent = parent ? strdup(parent) : NULL;
	x->key = strdup(key);
	x->val = strdup(val);
	if (!x->sec || !x->key || !x->val || (parent && !x->parent)) {
		free(x->sec);
		free(x->parent);
		free(x->key);
		free(x->val);
		return -ENOMEM;
	}
	f->n++;
	return 0;
}

/* The whole file (at most INI_FILE_MAX bytes, NUL added) in *out: a
 * character device such as /dev/zero or a FIFO is bounded too. */
static int slurp(int fd, const char *path, char **out, size_t *len, struct bdev_err *e)
{
	size_t cap = 4096, have = 0;
	char *buf = malloc(cap + 1);

	if (!buf)
		return bdev_err_set(e, ENOMEM, "out of memory");
	for (;;) {
		ssize_t n;

		if (have == cap) {
			char *nb;

			if (cap > INI_FILE_MAX) {
				explicit_bzero(buf, have);
				free(buf);
				return bdev_err_set(e, EFBIG, "%s: larger than %u bytes: not a config file",
						    path, INI_FILE_MAX);
			}
			cap *= 2;
			if (!(nb = realloc(buf, cap + 1))) {
				explicit_bzero(buf, have);
				free(buf);
				return bdev_err_set(e, ENOMEM, "out of memory");
			}
			buf = nb;
		}
		n = read(fd, buf + have, cap - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			explicit_bzero(buf, have);
			free(buf);
			return bdev_err_set(e, err, "%s: %s", path, strerror(err));
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	if (have > INI_FILE_MAX) {
		explicit_bzero(buf, have);
		free(buf);
		return bdev_err_set(e, EFBIG, "%s: larger than %u bytes: not a config file",
				    path, INI_FILE_MAX);
	}
	buf[have] = 0;
	*out = buf;
	*len = have;
	return 0;
}

int s3_ini_load(struct s3_ini *f, const char *path, struct bdev_err *e)
{
	char *text = NULL, *line, *next, *sec = NULL, *parent = NULL;
	size_t len = 0;
	unsigned lineno = 0;
	int fd, rc = 0;

	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s", path);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return bdev_err_set(e, errno, "%s: %s", path, strerror(errno));
	}
	rc = slurp(fd, path, &text, &len, e);
	close(fd);
	if (rc)
		return rc;
	f->present = true;
	for (line = text; line < text + len && !rc; line = next) {
		char *nl = memchr(line, '\n', (size_t)(text + len - line));
		bool indented = line[0] == ' ' || line[0] == '\t';
		char *t, *eq, *colon, *key, *val;

		next = nl ? nl + 1 : text + len;
		if (nl)
			*nl = 0;
		lineno++;
		if (strlen(line) != (size_t)((nl ? nl : text + len) - line)) {
			rc = bdev_err_set(e, EINVAL, "%s:%u: a NUL byte", path, lineno);
			break;
		}
		t = trim(line);
		if (!*t || *t == '#' || *t == ';')
			continue;
		if (!indented && *t == '[') {
			char *end = strchr(t, ']');

			if (!end) {
				rc = bdev_err_set(e, EINVAL, "%s:%u: a section header without ']'",
						  path, lineno);
				break;
			}
			*end = 0;
			free(sec);
			free(parent);
			parent = NULL;
			sec = section_name(trim(t + 1));
			/* An entry with no key marks the section as present,
			 * even when it holds nothing. */
			if (!sec || add(f, sec, NULL, "", "")) {
				rc = bdev_err_set(e, ENOMEM, "out of memory");
				break;
			}
			continue;
		}
		/* "key = value" or, as Python's configparser also takes,
		 * "key: value": whichever comes first. */
		eq = strchr(t, '=');
		colon = strchr(t, ':');
		if (colon && (!eq || colon < eq))
			eq = colon;
		if (!eq) {
			if (indented && !parent)
				continue;     /* the continuation of a value */
			rc = bdev_err_set(e, EINVAL, "%s:%u: not \"key = value\"", path, lineno);
			break;
		}
		*eq = 0;
		key = trim(t);
		val = eq + 1;
		cut_comment(val);
		val = trim(val);
		if (!*key) {
			rc = bdev_err_set(e, EINVAL, "%s:%u: a property without a name", path,
					  lineno);
			break;
		}
		if (!sec)
			continue;             /* before any section: ignored */
		if (indented && parent) {
			rc = add(f, sec, parent, key, val);
		} else {
			free(parent);
			parent = NULL;
			if (!*val && !(parent = strdup(key)))
				rc = -ENOMEM;
			else
				rc = add(f, sec, NULL, key, val);
		}
		if (rc)
			rc = bdev_err_set(e, ENOMEM, "out of memory");
	}
	explicit_bzero(text, len);
	free(text);
	free(sec);
	free(parent);
	if (rc)
		s3_ini_free(f);
	return rc;
}

const char *s3_ini_get(const struct s3_ini *f, const char *sec,
		       const char *parent, const char *key)
{
	const char *found = NULL;

	for (size_t i = 0; i < f->n; i++) {
		const struct s3_ini_ent *x = &f->v[i];

		if (strcmp(x->sec, sec) || strcasecmp(x->key, key))
			continue;
		if (parent ? !x->parent || strcasecmp(x->parent, parent) : x->parent != NULL)
			continue;
		found = x->val;      /* the last one wins */
	}
	return found;
}

bool s3_ini_has(const struct s3_ini *f, const char *sec)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->v[i].sec, sec))
			return true;
	return false;
}

void s3_ini_free(struct s3_ini *f)
{
	for (size_t i = 0; i < f->n; i++) {
		struct s3_ini_ent *x = &f->v[i];

		explicit_bzero(x->val, strlen(x->val));
		free(x->sec);
		free(x->parent);
		free(x->key);
		free(x->val);
	}
	free(f->v);
	f->v = NULL;
	f->n = f->cap = 0;
}
