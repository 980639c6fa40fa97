/* vmm disks: a LUN's image opened for the storage VSP, and the
 * control protocol's tiny JSON subset. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/bkp.h"
#include "common/json.h"
#include "passthrough/passthrough.h"
#include "rbd/rbd.h"
#include "vhd/vhd.h"
#include "vmm-mini/vmm.h"

/* The image at path, and its tracking layer when layer. */
static int disk_open(const char *path, bool ro, bool layer, struct vmm_disk *d,
		     struct bdev_err *e)
{
	struct vhd_open_opts o = { .flags = VHD_O_DIRECT | (ro ? VHD_O_RDONLY : 0) };
	struct bdev_err te = { 0 };
	struct bdev *b, *l;

	memset(d, 0, sizeof(*d));
	if (rbd_is_name(path)) {
		/* A Ceph RBD image: no IMAGE.ctk (its snapshots tell changes). */
		b = rbd_open_bdev(path, ro ? RBD_OPEN_RDONLY : 0, e);
		layer = false;
	} else {
		b = vhd_open(path, &o, e);
	}
	if (!b && e->code == ENOVHD)
		b = pt_open(path, ro ? PT_OPEN_RDONLY : 0, e);
	if (!b)
		return -e->code;
	d->kind = b->ops->kind;
	d->path = strdup(path);
	if (!d->path) {
		bdev_close(b);
		return bdev_err_set(e, ENOMEM, "out of memory");
	}
	d->ro = ro || b->read_only;
	d->bd = b;
	if (!d->ro && layer) {
		/* change tracking as a layer, when the image has IMAGE.ctk */
		l = bkp_track_layer(b, path, &d->track, &te);
		if (l)
			d->bd = l;
	}
	return 0;
}

int vmm_disk_open(const char *path, bool ro, struct vmm_disk *d,
		  struct bdev_err *e)
{
	return disk_open(path, ro, true, d, e);
}

int vmm_disk_open_bare(const char *path, bool ro, struct vmm_disk *d,
		       struct bdev_err *e)
{
	return disk_open(path, ro, false, d, e);
}

int vmm_disk_close(struct vmm_disk *d, struct bdev_err *e)
{
	int r = 0, r2;

	if (!d->bd)
		return 0;
	if (!d->ro)
		r = bdev_flush(d->bd);
	if (r)
		bdev_err_set(e, -r, "%s: flush: %s", d->path, bdev_last_error());
	r2 = bdev_close(d->bd);
	if (r2 && !r)
		r = bdev_err_set(e, -r2, "%s: close: %s", d->path, bdev_last_error());
	if (d->track) {
		r2 = bkp_track_close(d->track, e);
		if (r2 && !r)
			r = r2;
	}
	free(d->path);
	memset(d, 0, sizeof(*d));
	return r;
}

int vmm_disk_spec(const char *arg, char **path, int *lun, bool *ro)
{
	char *s = strdup(arg), *save = NULL, *tok;

	if (!s)
		return -ENOMEM;
	*lun = -1;
	*ro = false;
	*path = NULL;
	tok = strtok_r(s, ",", &save);
	if (!tok || !*tok) {
		free(s);
		return -EINVAL;
	}
	*path = strdup(tok);
	while ((tok = strtok_r(NULL, ",", &save))) {
		char *end;

		if (!strcmp(tok, "ro")) {
			*ro = true;
		} else if (!strncmp(tok, "lun=", 4)) {
			long v = strtol(tok + 4, &end, 10);

			if (*end || end == tok + 4 || v < 0 || v > 63)
				goto bad;
			*lun = (int)v;
		} else {
			goto bad;
		}
	}
	free(s);
	return *path ? 0 : -ENOMEM;
bad:
	free(s);
	free(*path);
	*path = NULL;
	return -EINVAL;
}

/* --- JSON subset --------------------------------------------------------- */

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* A string at p (after the quote); copied into out (cap bytes). */
static const char *str(const char *p, char *out, size_t cap, const char **why)
{
	size_t n = 0;

	for (;;) {
		char c = *p++;

		if (c == '"')
			break;
		if (c == '\0' || (unsigned char)c < 0x20) {
			*why = "unterminated string";
			return NULL;
		}
		if (c == '\\') {
			c = *p++;
			switch (c) {
			case '"': case '\\': case '/': break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'u': {
				unsigned v = 0;

				for (int i = 0; i < 4; i++) {
					char h = *p++;

					v <<= 4;
					if (h >= '0' && h <= '9') v |= (unsigned)(h - '0');
					else if (h >= 'a' && h <= 'f') v |= (unsigned)(h - 'a' + 10);
					else if (h >= 'A' && h <= 'F') v |= (unsigned)(h - 'A' + 10);
					else { *why = "bad \\u escape"; return NULL; }
				}
				if (v == 0 || v > 0x7f) {
					*why = "only ASCII \\u escapes";
					return NULL;
				}
				c = (char)v;
				break;
			}
			default:
				*why = "bad escape";
				return NULL;
			}
		}
		if (n + 1 >= cap) {
			*why = "string too long";
			return NULL;
		}
		out[n++] = c;
	}
	out[n] = '\0';
	return p;
}

/* "0,2": LUN numbers below 64, comma separated, no empty item. */
static bool luns_ok(const char *s)
{
	for (;;) {
		int v = 0, digits = 0;

		while (*s >= '0' && *s <= '9' && digits < 3) {
			v = v * 10 + (*s++ - '0');
			digits++;
		}
		if (!digits || v > 63)
			return false;
		if (!*s)
			return true;
		if (*s++ != ',')
			return false;
	}
}

int vmm_req_parse(const char *line, struct vmm_req *r, const char **why)
{
	const char *p = ws(line);

	memset(r, 0, sizeof(*r));
	r->lun = -1;
	r->freeze_timeout = 10000;
	if (*p++ != '{') {
		*why = "not a JSON object";
		return -EINVAL;
	}
	p = ws(p);
	if (*p == '}')
		goto end;
	for (;;) {
		char key[32], sval[1024];

		if (*p++ != '"' || !(p = str(p, key, sizeof(key), why))) {
			if (p)
				*why = "expected a member name";
			return -EINVAL;
		}
		p = ws(p);
		if (*p++ != ':') {
			*why = "expected ':'";
			return -EINVAL;
		}
		p = ws(p);
		if (*p == '"') {
			if (!(p = str(p + 1, sval, sizeof(sval), why)))
				return -EINVAL;
			if (!strcmp(key, "cmd")) {
				if (strlen(sval) >= sizeof(r->cmd)) {
					*why = "unknown command";
					return -EINVAL;
				}
				memcpy(r->cmd, sval, strlen(sval) + 1);
			} else if (!strcmp(key, "path")) {
				memcpy(r->path, sval, strlen(sval) + 1);
			} else if (!strcmp(key, "luns")) {
				if (strlen(sval) >= sizeof(r->luns) || !luns_ok(sval)) {
					*why = "\"luns\" is not a list of LUNs (\"0,2\")";
					return -EINVAL;
				}
				memcpy(r->luns, sval, strlen(sval) + 1);
			}
		} else if (*p >= '0' && *p <= '9') {
			int64_t v = 0;

			while (*p >= '0' && *p <= '9') {
				if (v > 1000000000) {
					*why = "number too large";
					return -EINVAL;
				}
				v = v * 10 + (*p++ - '0');
			}
			if (!strcmp(key, "lun"))
				r->lun = v;
			else if (!strcmp(key, "freeze_timeout"))
				r->freeze_timeout = v;
		} else if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
			bool t = *p == 't';

			p += t ? 4 : 5;
			if (!strcmp(key, "ro"))
				r->ro = t;
			else if (!strcmp(key, "require_app"))
				r->require_app = t;
		} else {
			*why = "unsupported value";
			return -EINVAL;
		}
		p = ws(p);
		if (*p == ',') {
			p = ws(p + 1);
			continue;
		}
		if (*p == '}')
			break;
		*why = "expected ',' or '}'";
		return -EINVAL;
	}
end:
	p = ws(p + 1);
	if (*p) {
		*why = "trailing characters";
		return -EINVAL;
	}
	if (!r->cmd[0]) {
		*why = "no \"cmd\"";
		return -EINVAL;
	}
	return 0;
}

size_t vmm_json_str(char *out, size_t cap, const char *s)
{
	return json_quote_buf(out, cap, s);
}
