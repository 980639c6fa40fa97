/* vhdpatch: edit the metadata fields of a VHD file in place, for tests
 * that need malformed images (tests/bad/).
 *
 *   vhdpatch FILE EDIT...
 *
 * EDIT is one of
 *   foot.FIELD=VAL      the end footer and, if it has the cookie, the copy
 *                       at offset 0
 *   foot-end.FIELD=VAL  the end footer only
 *   foot-copy.FIELD=VAL the copy at offset 0 only
 *   hdr.FIELD=VAL       the dynamic header (at the footer's data offset)
 *   loc.N.FIELD=VAL     parent locator N (0-7) of the dynamic header
 *   bat.N=VAL           BAT entry N (at the header's table offset)
 *   bytes.OFF=VAL       raw bytes at file offset OFF
 *   ?WHAT               print the current value of a field (WHAT as above
 *                       without "=VAL"), one line each: a number, or x:HEX
 *                       for byte fields (usable as a VAL)
 *
 * VAL is a number (decimal or 0x hex) for numeric fields; for byte fields
 * (cookies, creator, uuid, parent_name, locator code, bytes.OFF) it is
 * s:TEXT (raw characters, zero padded), x:HEX (raw bytes) or u16be:TEXT /
 * u16le:TEXT (ASCII as UTF-16).  Header and footer locations are those of
 * the file before any edit.  The checksum of every edited footer or header
 * is recomputed, unless the same command line sets that checksum.
 * Exit 0, or 1 with a message on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "vhd/vhd-int.h"

struct field {
	const char *name;
	size_t off, len;
	bool bytes;        /* raw bytes, not a big-endian number */
};

#define F(s, m, b) { #m, offsetof(struct s, m), sizeof(((struct s *)0)->m), b }
static const struct field foot_fields[] = {
	F(vhd_footer_disk, cookie, true),
	F(vhd_footer_disk, features, false),
	F(vhd_footer_disk, version, false),
	F(vhd_footer_disk, data_offset, false),
	F(vhd_footer_disk, timestamp, false),
	F(vhd_footer_disk, creator_app, true),
	F(vhd_footer_disk, creator_version, false),
	F(vhd_footer_disk, creator_os, true),
	F(vhd_footer_disk, original_size, false),
	F(vhd_footer_disk, current_size, false),
	F(vhd_footer_disk, cylinders, false),
	F(vhd_footer_disk, heads, false),
	F(vhd_footer_disk, sectors, false),
	F(vhd_footer_disk, disk_type, false),
	F(vhd_footer_disk, checksum, false),
	F(vhd_footer_disk, uuid, true),
	F(vhd_footer_disk, saved_state, false),
	{ NULL, 0, 0, false }
};
static const struct field hdr_fields[] = {
	F(vhd_header_disk, cookie, true),
	F(vhd_header_disk, data_offset, false),
	F(vhd_header_disk, table_offset, false),
	F(vhd_header_disk, version, false),
	F(vhd_header_disk, max_table_entries, false),
	F(vhd_header_disk, block_size, false),
	F(vhd_header_disk, checksum, false),
	F(vhd_header_disk, parent_uuid, true),
	F(vhd_header_disk, parent_timestamp, false),
	F(vhd_header_disk, parent_name, true),
	{ NULL, 0, 0, false }
};
static const struct field loc_fields[] = {
	F(vhd_locator_disk, code, true),
	F(vhd_locator_disk, data_space, false),
	F(vhd_locator_disk, data_length, false),
	F(vhd_locator_disk, reserved, false),
	F(vhd_locator_disk, data_offset, false),
	{ NULL, 0, 0, false }
};
#undef F

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("vhdpatch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static const struct field *find(const struct field *t, const char *name,
				size_t n)
{
	for (; t->name; t++)
		if (strlen(t->name) == n && !strncmp(t->name, name, n))
			return t;
	die("unknown field '%.*s'", (int)n, name);
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

/* Parse a byte value into out (at most max bytes); returns its length. */
static size_t parse_bytes(const char *v, uint8_t *out, size_t max)
{
	size_t n = 0;

	if (!strncmp(v, "s:", 2)) {
		n = strlen(v + 2);
		if (n > max)
			die("'%s' is longer than %zu bytes", v, max);
		memcpy(out, v + 2, n);
	} else if (!strncmp(v, "x:", 2)) {
		for (v += 2; v[0] && v[1]; v += 2) {
			int hi = hexval(v[0]), lo = hexval(v[1]);

			if (hi < 0 || lo < 0 || n >= max)
				die("bad or too long hex value");
			out[n++] = (uint8_t)(hi << 4 | lo);
		}
		if (*v)
			die("odd number of hex digits");
	} else if (!strncmp(v, "u16be:", 6) || !strncmp(v, "u16le:", 6)) {
		bool le = v[4] == 'l';

		for (v += 6; *v; v++) {
			if (n + 2 > max)
				die("UTF-16 value too long");
			out[n + !le] = (uint8_t)*v;
			out[n + le] = 0;
			n += 2;
		}
	} else {
		die("byte value '%s' needs s:, x:, u16be: or u16le:", v);
	}
	return n;
}

static uint64_t parse_num(const char *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v, &end, 0);
	if (errno || end == v || *end)
		die("'%s' is not a number", v);
	return x;
}

static uint64_t get_num(const uint8_t *p, size_t len)
{
	uint64_t x = 0;

	for (size_t i = 0; i < len; i++)
		x = x << 8 | p[i];
	return x;
}

static void put_num(uint8_t *p, size_t len, uint64_t x)
{
	for (size_t i = len; i-- > 0; x >>= 8)
		p[i] = (uint8_t)x;
}

/* Apply "FIELD=VAL" (or query "FIELD" when val is NULL) to buf. */
static void apply(uint8_t *buf, const struct field *t, const char *spec,
		  const char *val, bool *csum_set)
{
	const char *eq = val ? val - 1 : spec + strlen(spec);
	const struct field *f = find(t, spec, (size_t)(eq - spec));

	if (!val) {
		if (!f->bytes) {
			printf("%llu\n", (unsigned long long)get_num(buf + f->off, f->len));
			return;
		}
		fputs("x:", stdout);
		for (size_t i = 0; i < f->len; i++)
			printf("%02x", buf[f->off + i]);
		putchar('\n');
		return;
	}
	if (!strcmp(f->name, "checksum"))
		*csum_set = true;
	if (f->bytes) {
		memset(buf + f->off, 0, f->len);
		parse_bytes(val, buf + f->off, f->len);
	} else {
		put_num(buf + f->off, f->len, parse_num(val));
	}
}

static void xpread(int fd, void *buf, size_t len, uint64_t off, const char *what)
{
	if (util_pread_full(fd, buf, len, off, false))
		die("cannot read %s at offset %llu", what, (unsigned long long)off);
}

static void xpwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	int r = util_pwrite_full(fd, buf, len, off);

	if (r)
		die("write at %llu: %s", (unsigned long long)off, strerror(-r));
}

static void fix_csum(uint8_t *buf, size_t len, size_t csum_off)
{
	memset(buf + csum_off, 0, 4);
	put_num(buf + csum_off, 4, vhd_checksum(buf, len));
}

int main(int argc, char **argv)
{
	uint8_t fe[512] = { 0 }, fc[512] = { 0 }, hdr[1024] = { 0 };
	bool fe_ok, fc_cookie, hdr_ok = false;
	bool fe_dirty = false, fc_dirty = false, hdr_dirty = false;
	bool fe_cs = false, fc_cs = false, hdr_cs = false;
	uint64_t size, hoff, toff = 0;
	struct stat st;
	int fd;

	if (argc < 3)
		die("usage: vhdpatch FILE EDIT... (see the source)");
	fd = open(argv[1], O_RDWR);
	if (fd < 0 || fstat(fd, &st) < 0)
		die("%s: %s", argv[1], strerror(errno));
	size = (uint64_t)st.st_size;
	if (size < 512)
		die("%s: too small", argv[1]);
	xpread(fd, fe, 512, size - 512, "end footer");
	xpread(fd, fc, 512, 0, "footer copy");
	fe_ok = vhd_is_footer_cookie(fe);
	fc_cookie = vhd_is_footer_cookie(fc);
	hoff = get_num((fe_ok ? fe : fc) + offsetof(struct vhd_footer_disk, data_offset), 8);
	if (hoff != VHD_NO_OFFSET && util_range_ok(hoff, 1024, size)) {
		xpread(fd, hdr, 1024, hoff, "header");
		hdr_ok = true;
		toff = get_num(hdr + offsetof(struct vhd_header_disk, table_offset), 8);
	}
	for (int i = 2; i < argc; i++) {
		bool query = argv[i][0] == '?';
		char *spec = argv[i] + query;
		char *eq = strchr(spec, '=');
		const char *val = query ? NULL : eq ? eq + 1 : NULL;

		if (!query && !eq)
			die("'%s': missing '='", spec);
		if (!strncmp(spec, "foot.", 5)) {
			apply(fe, foot_fields, spec + 5, val, &fe_cs);
			fe_dirty |= !query;
			if (fc_cookie && !query) {
				apply(fc, foot_fields, spec + 5, val, &fc_cs);
				fc_dirty = true;
			}
		} else if (!strncmp(spec, "foot-end.", 9)) {
			apply(fe, foot_fields, spec + 9, val, &fe_cs);
			fe_dirty |= !query;
		} else if (!strncmp(spec, "foot-copy.", 10)) {
			apply(fc, foot_fields, spec + 10, val, &fc_cs);
			fc_dirty |= !query;
		} else if (!strncmp(spec, "hdr.", 4)) {
			if (!hdr_ok)
				die("no dynamic header");
			apply(hdr, hdr_fields, spec + 4, val, &hdr_cs);
			hdr_dirty |= !query;
		} else if (!strncmp(spec, "loc.", 4)) {
			char *end;
			unsigned long n = strtoul(spec + 4, &end, 10);

			if (!hdr_ok || n > 7 || *end != '.')
				die("'%s': bad locator", spec);
			apply(hdr + offsetof(struct vhd_header_disk, loc) +
			      n * sizeof(struct vhd_locator_disk), loc_fields,
			      end + 1, val, &hdr_cs);
			hdr_dirty |= !query;
		} else if (!strncmp(spec, "bat.", 4)) {
			uint64_t n = strtoull(spec + 4, NULL, 10);
			uint8_t e[4];

			if (!hdr_ok)
				die("no dynamic header");
			if (query) {
				xpread(fd, e, 4, toff + 4 * n, "BAT entry");
				printf("%llu\n", (unsigned long long)get_num(e, 4));
				continue;
			}
			put_num(e, 4, parse_num(val));
			xpwrite(fd, e, 4, toff + 4 * n);
		} else if (!strncmp(spec, "bytes.", 6) && !query) {
			continue;   /* written last, below */
		} else {
			die("'%s': unknown edit", argv[i]);
		}
	}
	if (fe_dirty) {
		if (!fe_cs)
			fix_csum(fe, 512, offsetof(struct vhd_footer_disk, checksum));
		xpwrite(fd, fe, 512, size - 512);
	}
	if (fc_dirty) {
		if (!fc_cs)
			fix_csum(fc, 512, offsetof(struct vhd_footer_disk, checksum));
		xpwrite(fd, fc, 512, 0);
	}
	if (hdr_dirty) {
		if (!hdr_cs)
			fix_csum(hdr, 1024, offsetof(struct vhd_header_disk, checksum));
		xpwrite(fd, hdr, 1024, hoff);
	}
	/* Raw bytes last, so that they can override anything above. */
	for (int i = 2; i < argc; i++) {
		uint8_t b[4096];
		char *end;
		uint64_t off;
		size_t n;

		if (strncmp(argv[i], "bytes.", 6))
			continue;
		errno = 0;
		off = strtoull(argv[i] + 6, &end, 0);
		if (errno || *end != '=')
			die("'%s': bad offset", argv[i]);
		n = parse_bytes(end + 1, b, sizeof(b));
		xpwrite(fd, b, n, off);
	}
	if (close(fd) < 0)
		die("%s: %s", argv[1], strerror(errno));
	return 0;
}
