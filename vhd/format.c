/* VHD on-disk structures: checksums, encode/decode and validation of the
 * footer and dynamic header, geometry, timestamps, UUIDs and the UTF-16
 * strings of parent names and locators. */
#include "vhd-int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

/* 2000-01-01 00:00:00 UTC as Unix time. */
#define VHD_EPOCH 946684800

uint32_t vhd_checksum(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t sum = 0;

	while (len--)
		sum += *p++;
	return ~sum;
}

bool vhd_is_footer_cookie(const void *buf)
{
	return memcmp(buf, "conectix", 8) == 0;
}

int vhd_footer_decode(const void *buf, struct vhd_footer *f, char *why,
		      size_t whylen)
{
	struct vhd_footer_disk d;
	uint32_t want;

	memcpy(&d, buf, sizeof(d));
	if (memcmp(d.cookie, "conectix", 8)) {
		snprintf(why, whylen, "no footer cookie \"conectix\"");
		return -EINVAL;
	}
	f->checksum = util_get_be32(&d.checksum);
	d.checksum = 0;
	want = vhd_checksum(&d, sizeof(d));
	if (f->checksum != want) {
		snprintf(why, whylen, "footer checksum is 0x%08x, should be 0x%08x",
			 f->checksum, want);
		return -EINVAL;
	}
	f->features = util_get_be32(&d.features);
	f->version = util_get_be32(&d.version);
	f->data_offset = util_get_be64(&d.data_offset);
	f->timestamp = util_get_be32(&d.timestamp);
	memcpy(f->creator_app, d.creator_app, 4);
	f->creator_version = util_get_be32(&d.creator_version);
	memcpy(f->creator_os, d.creator_os, 4);
	f->original_size = util_get_be64(&d.original_size);
	f->current_size = util_get_be64(&d.current_size);
	f->cylinders = util_get_be16(&d.cylinders);
	f->heads = d.heads;
	f->sectors = d.sectors;
	f->type = util_get_be32(&d.disk_type);
	memcpy(f->uuid, d.uuid, 16);
	f->saved_state = d.saved_state;
	if (f->version >> 16 != 1) {
		snprintf(why, whylen, "unsupported footer version %u.%u",
			 f->version >> 16, f->version & 0xffff);
		return -EINVAL;
	}
	if (f->type != VHD_TYPE_FIXED && f->type != VHD_TYPE_DYNAMIC &&
	    f->type != VHD_TYPE_DIFF) {
		snprintf(why, whylen, "unknown disk type %u", f->type);
		return -EINVAL;
	}
	if (f->current_size % VHD_SECTOR) {
		snprintf(why, whylen, "disk size %llu is not a multiple of 512",
			 (unsigned long long)f->current_size);
		return -EINVAL;
	}
	if (f->type == VHD_TYPE_FIXED ? f->data_offset != VHD_NO_OFFSET
	    : (f->data_offset == VHD_NO_OFFSET || f->data_offset % VHD_SECTOR)) {
		snprintf(why, whylen, "bad data offset 0x%llx for disk type %u",
			 (unsigned long long)f->data_offset, f->type);
		return -EINVAL;
	}
	return 0;
}

void vhd_footer_encode(const struct vhd_footer *f, void *buf)
{
	struct vhd_footer_disk d;

	memset(&d, 0, sizeof(d));
	memcpy(d.cookie, "conectix", 8);
	util_put_be32(&d.features, f->features);
	util_put_be32(&d.version, f->version);
	util_put_be64(&d.data_offset, f->data_offset);
	util_put_be32(&d.timestamp, f->timestamp);
	memcpy(d.creator_app, f->creator_app, 4);
	util_put_be32(&d.creator_version, f->creator_version);
	memcpy(d.creator_os, f->creator_os, 4);
	util_put_be64(&d.original_size, f->original_size);
	util_put_be64(&d.current_size, f->current_size);
	util_put_be16(&d.cylinders, f->cylinders);
	d.heads = f->heads;
	d.sectors = f->sectors;
	util_put_be32(&d.disk_type, f->type);
	memcpy(d.uuid, f->uuid, 16);
	d.saved_state = f->saved_state;
	util_put_be32(&d.checksum, vhd_checksum(&d, sizeof(d)));
	memcpy(buf, &d, sizeof(d));
}

int vhd_header_decode(const void *buf, struct vhd_header *h, char *why,
		      size_t whylen)
{
	struct vhd_header_disk d;
	uint32_t want;

	memcpy(&d, buf, sizeof(d));
	if (memcmp(d.cookie, "cxsparse", 8)) {
		snprintf(why, whylen, "no dynamic header cookie \"cxsparse\"");
		return -EINVAL;
	}
	h->checksum = util_get_be32(&d.checksum);
	d.checksum = 0;
	want = vhd_checksum(&d, sizeof(d));
	if (h->checksum != want) {
		snprintf(why, whylen,
			 "dynamic header checksum is 0x%08x, should be 0x%08x",
			 h->checksum, want);
		return -EINVAL;
	}
	h->table_offset = util_get_be64(&d.table_offset);
	h->version = util_get_be32(&d.version);
	h->max_table_entries = util_get_be32(&d.max_table_entries);
	h->block_size = util_get_be32(&d.block_size);
	memcpy(h->parent_uuid, d.parent_uuid, 16);
	h->parent_timestamp = util_get_be32(&d.parent_timestamp);
	memcpy(h->parent_name, d.parent_name, sizeof(h->parent_name));
	for (int i = 0; i < 8; i++) {
		memcpy(h->loc[i].code, d.loc[i].code, 4);
		h->loc[i].data_space = util_get_be32(&d.loc[i].data_space);
		h->loc[i].data_length = util_get_be32(&d.loc[i].data_length);
		h->loc[i].data_offset = util_get_be64(&d.loc[i].data_offset);
	}
	if (h->version >> 16 != 1) {
		snprintf(why, whylen, "unsupported dynamic header version %u.%u",
			 h->version >> 16, h->version & 0xffff);
		return -EINVAL;
	}
	if (!util_is_pow2(h->block_size) || h->block_size < VHD_MIN_BLOCK_SIZE ||
	    h->block_size > VHD_MAX_BLOCK_SIZE) {
		snprintf(why, whylen,
			 "block size %u is not a power of two between 512 bytes and 256 MiB",
			 h->block_size);
		return -EINVAL;
	}
	if (h->table_offset % VHD_SECTOR || h->table_offset == 0) {
		snprintf(why, whylen, "BAT offset 0x%llx is not a sector boundary",
			 (unsigned long long)h->table_offset);
		return -EINVAL;
	}
	return 0;
}

void vhd_header_encode(const struct vhd_header *h, void *buf)
{
	struct vhd_header_disk d;

	memset(&d, 0, sizeof(d));
	memcpy(d.cookie, "cxsparse", 8);
	util_put_be64(&d.data_offset, VHD_NO_OFFSET);
	util_put_be64(&d.table_offset, h->table_offset);
	util_put_be32(&d.version, h->version);
	util_put_be32(&d.max_table_entries, h->max_table_entries);
	util_put_be32(&d.block_size, h->block_size);
	memcpy(d.parent_uuid, h->parent_uuid, 16);
	util_put_be32(&d.parent_timestamp, h->parent_timestamp);
	memcpy(d.parent_name, h->parent_name, sizeof(d.parent_name));
	for (int i = 0; i < 8; i++) {
		memcpy(d.loc[i].code, h->loc[i].code, 4);
		util_put_be32(&d.loc[i].data_space, h->loc[i].data_space);
		util_put_be32(&d.loc[i].data_length, h->loc[i].data_length);
		util_put_be64(&d.loc[i].data_offset, h->loc[i].data_offset);
	}
	util_put_be32(&d.checksum, vhd_checksum(&d, sizeof(d)));
	memcpy(buf, &d, sizeof(d));
}

uint32_t vhd_time_from_unix(int64_t t)
{
	if (t < VHD_EPOCH)
		return 0;
	if (t - VHD_EPOCH > UINT32_MAX)
		return UINT32_MAX;
	return (uint32_t)(t - VHD_EPOCH);
}

uint32_t vhd_time_now(void)
{
	return vhd_time_from_unix((int64_t)time(NULL));
}

int64_t vhd_time_to_unix(uint32_t t)
{
	return (int64_t)t + VHD_EPOCH;
}

int vhd_uuid_generate(uint8_t uuid[16])
{
	int r = util_random(uuid, 16);

	if (r)
		return r;
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);   /* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
	return 0;
}

char *vhd_uuid_str(const uint8_t u[16], char *buf)
{
	sprintf(buf, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		"%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5],
		u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
	return buf;
}

uint32_t vhd_bitmap_size(uint32_t block_size)
{
	uint32_t bits = block_size / VHD_SECTOR;

	return (uint32_t)util_align_up((bits + 7) / 8, VHD_SECTOR);
}

/* The algorithm of the VHD specification, appendix "CHS calculation". */
void vhd_chs(uint64_t sectors, uint16_t *c, uint8_t *h, uint8_t *s)
{
	uint64_t spt, heads, cth;

	if (sectors > VHD_MAX_GEOMETRY_SECTORS)
		sectors = VHD_MAX_GEOMETRY_SECTORS;
	if (sectors >= 65535ull * 16 * 63) {
		spt = 255;
		heads = 16;
		cth = sectors / spt;
	} else {
		spt = 17;
		cth = sectors / spt;
		heads = (cth + 1023) / 1024;
		if (heads < 4)
			heads = 4;
		if (cth >= heads * 1024 || heads > 16) {
			spt = 31;
			heads = 16;
			cth = sectors / spt;
		}
		if (cth >= heads * 1024) {
			spt = 63;
			heads = 16;
			cth = sectors / spt;
		}
	}
	*c = (uint16_t)(cth / heads);
	*h = (uint8_t)heads;
	*s = (uint8_t)spt;
}

void vhd_geometry_for_size(uint64_t size, uint16_t *c, uint8_t *h,
			   uint8_t *s)
{
	vhd_chs(size / VHD_SECTOR, c, h, s);
	if ((uint64_t)*c * *h * *s * VHD_SECTOR != size) {
		*c = 65535;
		*h = 16;
		*s = 255;
	}
}

uint64_t vhd_footer_disk_size(const struct vhd_footer *f, unsigned flags)
{
	uint64_t chs = (uint64_t)f->cylinders * f->heads * f->sectors;
	bool use_chs = !memcmp(f->creator_app, "vpc ", 4) ||
		       !memcmp(f->creator_app, "qemu", 4);

	if (flags & VHD_O_SIZE_CHS)
		use_chs = true;
	if (flags & VHD_O_SIZE_FOOTER)
		use_chs = false;
	/* Like qemu: maximum geometry means "use the current size". */
	if (chs == VHD_MAX_GEOMETRY_SECTORS || chs == 0)
		use_chs = false;
	return use_chs ? chs * VHD_SECTOR : f->current_size;
}

int vhd_utf16_encode(const char *s, uint8_t *out, size_t outlen, bool le)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = 0;

	while (*p) {
		uint32_t cp;
		int extra;

		if (*p < 0x80) {
			cp = *p;
			extra = 0;
		} else if ((*p & 0xe0) == 0xc0) {
			cp = *p & 0x1f;
			extra = 1;
		} else if ((*p & 0xf0) == 0xe0) {
			cp = *p & 0x0f;
			extra = 2;
		} else if ((*p & 0xf8) == 0xf0) {
			cp = *p & 0x07;
			extra = 3;
		} else {
			return -EINVAL;
		}
		p++;
		for (int i = 0; i < extra; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return -EINVAL;
			cp = cp << 6 | (*p & 0x3f);
		}
		/* Overlong forms ("\xc0\xaf" for '/') are not UTF-8. */
		if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
		    (extra == 3 && cp < 0x10000))
			return -EINVAL;
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return -EINVAL;
		uint16_t units[2];
		int nu = 1;

		if (cp >= 0x10000) {
			cp -= 0x10000;
			units[0] = (uint16_t)(0xd800 | (cp >> 10));
			units[1] = (uint16_t)(0xdc00 | (cp & 0x3ff));
			nu = 2;
		} else {
			units[0] = (uint16_t)cp;
		}
		for (int i = 0; i < nu; i++) {
			if (n + 2 > outlen)
				return -ENAMETOOLONG;
			out[n + (le ? 0 : 1)] = (uint8_t)units[i];
			out[n + (le ? 1 : 0)] = (uint8_t)(units[i] >> 8);
			n += 2;
		}
	}
	return (int)n;
}

static int put_utf8(char *out, size_t outlen, size_t *n, uint32_t cp)
{
	uint8_t b[4];
	int len;

	if (cp < 0x80) {
		b[0] = (uint8_t)cp;
		len = 1;
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xc0 | cp >> 6);
		b[1] = (uint8_t)(0x80 | (cp & 0x3f));
		len = 2;
	} else if (cp < 0x10000) {
		b[0] = (uint8_t)(0xe0 | cp >> 12);
		b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (uint8_t)(0x80 | (cp & 0x3f));
		len = 3;
	} else {
		b[0] = (uint8_t)(0xf0 | cp >> 18);
		b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (uint8_t)(0x80 | (cp & 0x3f));
		len = 4;
	}
	if (*n + (size_t)len + 1 > outlen)
		return -EINVAL;
	memcpy(out + *n, b, (size_t)len);
	*n += (size_t)len;
	return 0;
}

int vhd_utf16_decode(const uint8_t *in, size_t inlen, char *out,
		     size_t outlen, bool le)
{
	size_t n = 0;

	if (outlen == 0)
		return -EINVAL;
	for (size_t i = 0; i + 1 < inlen; i += 2) {
		uint32_t u = le ? (uint32_t)(in[i] | in[i + 1] << 8)
				: (uint32_t)(in[i] << 8 | in[i + 1]);

		if (u == 0)
			break;
		if (u >= 0xd800 && u <= 0xdbff) {
			uint32_t lo;

			if (i + 3 >= inlen)
				return -EINVAL;
			lo = le ? (uint32_t)(in[i + 2] | in[i + 3] << 8)
				: (uint32_t)(in[i + 2] << 8 | in[i + 3]);
			if (lo < 0xdc00 || lo > 0xdfff)
				return -EINVAL;
			u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			i += 2;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return -EINVAL;
		}
		if (put_utf8(out, outlen, &n, u))
			return -EINVAL;
	}
	out[n] = '\0';
	return (int)n;
}

int vhd_locator_to_posix(const char *in, char *out, size_t outlen,
			 const char **basename_out)
{
	const char *p = in;
	size_t n;

	if (!strncmp(p, "file://", 7))
		p += 7;
	n = strlen(p);
	if (n + 1 > outlen)
		return -ENAMETOOLONG;
	for (size_t i = 0; i <= n; i++)
		out[i] = p[i] == '\\' ? '/' : p[i];
	while (out[0] == '.' && out[1] == '/')
		memmove(out, out + 2, strlen(out + 2) + 1);
	if (basename_out)
		*basename_out = util_basename(out);
	if (((out[0] >= 'A' && out[0] <= 'Z') || (out[0] >= 'a' && out[0] <= 'z')) &&
	    out[1] == ':')
		return -EINVAL;
	return 0;
}

int vhd_relpath(const char *from_dir, const char *to, char *out,
		size_t outlen)
{
	size_t common = 0, i = 0, n = 0;

	/* Longest common prefix ending at a '/'. */
	while (from_dir[i] && to[i] && from_dir[i] == to[i]) {
		if (to[i] == '/')
			common = i + 1;
		i++;
	}
	if (!from_dir[i] && to[i] == '/')
		common = i + 1;
	out[0] = '\0';
	/* One ".." per remaining component of from_dir (none when to is
	 * inside from_dir: common is then past from_dir's end). */
	for (const char *p = from_dir + UTIL_MIN(common, i); *p;) {
		const char *slash = strchr(p, '/');

		if (n + 3 >= outlen)
			return -ENAMETOOLONG;
		memcpy(out + n, "../", 3);
		n += 3;
		if (!slash)
			break;
		p = slash + 1;
	}
	if (n + strlen(to + common) + 1 > outlen)
		return -ENAMETOOLONG;
	strcpy(out + n, to + common);
	return 0;
}
