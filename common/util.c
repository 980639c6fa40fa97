/* util: see util.h. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int util_pread_full(int fd, void *buf, size_t len, uint64_t off,
		    bool zero_past_eof)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			if (!zero_past_eof)
				return -EIO;
			memset(p, 0, len);
			return 0;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int util_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

void util_bit_set_range(uint8_t *bm, uint64_t i, uint64_t n)
{
	while (n && (i & 7)) {
		util_bit_set(bm, i++);
		n--;
	}
	if (n >= 8) {
		memset(bm + (i >> 3), 0xff, n >> 3);
		i += n & ~(uint64_t)7;
		n &= 7;
	}
	while (n--)
		util_bit_set(bm, i++);
}

void util_seek_extent(int fd, uint64_t off, uint64_t len, bool *data,
		      uint64_t *n)
{
	off_t d, h;

	*data = true;
	*n = len;
	d = lseek(fd, (off_t)off, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO)    /* only a hole after off */
			*data = false;
		return;
	}
	if ((uint64_t)d > off) {
		*data = false;
		*n = UTIL_MIN(len, (uint64_t)d - off);
		return;
	}
	h = lseek(fd, (off_t)off, SEEK_HOLE);
	if (h > (off_t)off)
		*n = UTIL_MIN(len, (uint64_t)h - off);
}

bool util_is_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	static const uint8_t zero[64];

	while (len >= 64) {
		if (memcmp(p, zero, 64))
			return false;
		p += 64;
		len -= 64;
	}
	while (len--)
		if (*p++)
			return false;
	return true;
}

int util_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	/* Digits first: strtoull would skip white space and accept a sign. */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s)
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	case 'b': case 'B': break;
	case '\0': break;
	default: return -EINVAL;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (ULLONG_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

char *util_fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double d = (double)v;
	unsigned u = 0;

	while (d >= 1024 && u + 1 < UTIL_ARRAY_SIZE(unit)) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)v);
	else
		snprintf(buf, len, "%.1f %s", d, unit[u]);
	return buf;
}

char *util_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

const char *util_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

char *util_tmpname(const char *dst)
{
	static unsigned counter;
	char *dir = util_dirname(dst), *out = NULL;

	if (!dir)
		return NULL;
	if (asprintf(&out, "%s/.%s.tmp.%ld.%u", dir, util_basename(dst),
		     (long)getpid(), __atomic_fetch_add(&counter, 1,
							__ATOMIC_RELAXED)) < 0)
		out = NULL;
	free(dir);
	return out;
}

int util_fsync_dir(const char *path)
{
	char *dir = util_dirname(path);
	int fd, r = 0;

	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int util_commit_file(int fd, const char *tmp, const char *dst)
{
	if (fd >= 0 && fsync(fd) < 0)
		return -errno;
	if (rename(tmp, dst) < 0)
		return -errno;
	return util_fsync_dir(dst);
}

int util_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int util_fd_size(int fd, const struct stat *st, uint64_t *size)
{
	if (S_ISREG(st->st_mode)) {
		*size = (uint64_t)st->st_size;
		return 0;
	}
	if (!S_ISBLK(st->st_mode))
		return -EINVAL;
	return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
}
