/* Chunk files: a 24-byte header (lengths, method, CRCs) and the payload,
 * zlib-compressed when a cheap probe says it pays.  Plus SHA-256 and hex
 * helpers.  Layout: docs/backup-format.md. */
#include "bkp-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "common/util.h"

#define PROBE_SLICE 8192u
#define ZLEVEL 1

void bkp_sha256(const void *data, size_t len, uint8_t out[BKP_DIGEST])
{
	unsigned int n = BKP_DIGEST;

	if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
		memset(out, 0, BKP_DIGEST);  /* never: no engine, no alloc */
}

void bkp_hex(const uint8_t *d, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = '\0';
}

int bkp_unhex(const char *s, uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int v = 0;

		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + k];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= c - '0';
			else if (c >= 'a' && c <= 'f')
				v |= c - 'a' + 10;
			else
				return -EINVAL;
		}
		d[i] = (uint8_t)v;
	}
	return s[2 * n] ? -EINVAL : 0;
}

bool bkp_digest_is_zero(const uint8_t d[BKP_DIGEST])
{
	return util_is_zero(d, BKP_DIGEST);
}

int bkp_digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, BKP_DIGEST);
}

size_t bkp_chunk_bound(size_t len)
{
	return BKP_CHUNK_HDR + (size_t)compressBound((uLong)len);
}

/* Whether compressing len bytes of data is worth trying: deflate up to
 * three slices (start, middle, end) and see whether they shrink by 10%. */
static bool worth_compressing(const uint8_t *data, size_t len)
{
	uint8_t out[PROBE_SLICE + PROBE_SLICE / 8 + 64];
	size_t in = 0, outn = 0;
	size_t at[3] = { 0, len / 2, len > PROBE_SLICE ? len - PROBE_SLICE : 0 };

	if (len <= 3 * PROBE_SLICE)
		return true;    /* small: just compress it */
	for (int i = 0; i < 3; i++) {
		uLongf n = sizeof(out);

		if (compress2(out, &n, data + at[i], PROBE_SLICE, ZLEVEL) != Z_OK)
			return true;
		in += PROBE_SLICE;
		outn += n;
	}
	return outn * 10 < in * 9;
}

static void put_hdr(uint8_t *h, int method, uint32_t raw, uint32_t stored,
		    const uint8_t *payload)
{
	memcpy(h, "VBKC", 4);
	h[4] = 1;
	h[5] = (uint8_t)method;
	h[6] = h[7] = 0;
	util_put_le32(h + 8, raw);
	util_put_le32(h + 12, stored);
	util_put_le32(h + 16, (uint32_t)crc32(0, payload, stored));
	util_put_le32(h + 20, (uint32_t)crc32(0, h, 20));
}

size_t bkp_chunk_encode(const void *data, size_t len, void *out, size_t cap)
{
	uint8_t *o = out;

	if (len == 0 || len > BKP_MAX_CHUNK_SIZE || cap < bkp_chunk_bound(len))
		return 0;
	if (worth_compressing(data, len)) {
		uLongf n = (uLongf)(cap - BKP_CHUNK_HDR);

		if (compress2(o + BKP_CHUNK_HDR, &n, data, (uLong)len, ZLEVEL) ==
		    Z_OK && n < len - len / 32) {
			put_hdr(o, BKP_METHOD_ZLIB, (uint32_t)len, (uint32_t)n,
				o + BKP_CHUNK_HDR);
			return BKP_CHUNK_HDR + n;
		}
	}
	memcpy(o + BKP_CHUNK_HDR, data, len);
	put_hdr(o, BKP_METHOD_STORED, (uint32_t)len, (uint32_t)len,
		o + BKP_CHUNK_HDR);
	return BKP_CHUNK_HDR + len;
}

int bkp_chunk_check_hdr(const void *hdr, uint64_t file_size, char *why,
			size_t wl)
{
	const uint8_t *h = hdr;
	uint32_t raw, stored;

	if (file_size < BKP_CHUNK_HDR) {
		snprintf(why, wl, "file is %llu bytes, shorter than a chunk header",
			 (unsigned long long)file_size);
		return -EBADMSG;
	}
	if (memcmp(h, "VBKC", 4)) {
		snprintf(why, wl, "not a chunk file (bad magic)");
		return -EBADMSG;
	}
	if (util_get_le32(h + 20) != (uint32_t)crc32(0, h, 20)) {
		snprintf(why, wl, "chunk header checksum mismatch");
		return -EBADMSG;
	}
	raw = util_get_le32(h + 8);
	stored = util_get_le32(h + 12);
	if (h[4] != 1 || h[5] > BKP_METHOD_ZLIB || h[6] || h[7] || raw == 0 ||
	    raw > BKP_MAX_CHUNK_SIZE ||
	    (h[5] == BKP_METHOD_STORED && stored != raw)) {
		snprintf(why, wl, "chunk header has bad fields (version %u, method %u, length %u/%u)",
			 h[4], h[5], raw, stored);
		return -EBADMSG;
	}
	if (file_size != (uint64_t)BKP_CHUNK_HDR + stored) {
		snprintf(why, wl, "file is %llu bytes, header says %llu (truncated or extended)",
			 (unsigned long long)file_size,
			 (unsigned long long)BKP_CHUNK_HDR + stored);
		return -EBADMSG;
	}
	return 0;
}

ssize_t bkp_chunk_decode(const void *file, size_t flen, void *dst,
			 size_t cap, char *why, size_t wl)
{
	const uint8_t *h = file;
	uint32_t raw, stored;
	int r = bkp_chunk_check_hdr(file, flen, why, wl);

	if (r)
		return r;
	raw = util_get_le32(h + 8);
	stored = util_get_le32(h + 12);
	if (raw > cap) {
		snprintf(why, wl, "chunk of %u bytes is larger than the repository's chunk size",
			 raw);
		return -EBADMSG;
	}
	if (util_get_le32(h + 16) != (uint32_t)crc32(0, h + BKP_CHUNK_HDR, stored)) {
		snprintf(why, wl, "payload checksum mismatch");
		return -EBADMSG;
	}
	if (h[5] == BKP_METHOD_STORED) {
		memcpy(dst, h + BKP_CHUNK_HDR, raw);
	} else {
		uLongf n = raw;

		if (uncompress(dst, &n, h + BKP_CHUNK_HDR, stored) != Z_OK ||
		    n != raw) {
			snprintf(why, wl, "compressed payload does not inflate to %u bytes",
				 raw);
			return -EBADMSG;
		}
	}
	return raw;
}
