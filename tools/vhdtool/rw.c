/* vhdtool read / write: bytes between a disk and stdout/stdin, at any
 * byte offset. */
#include "vhdtool.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

#define CHUNK (4u << 20)

/* Options of read and write: -f FMT only.  Returns the index of the first
 * operand, or -1 after a usage error (printed). */
static int rw_options(int argc, char **argv, const struct vhdtool_cmd *cmd,
		      unsigned *flags)
{
	static const struct option lo[] = { VT_FORMAT_LONGOPT, { 0 } };
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:", lo, NULL)) != -1) {
		if (c != 'f') {
			vt_usage(cmd);
			return -1;
		}
		if (!vt_format_opt(optarg, flags))
			return -1;
	}
	return optind;
}

static int run_read(int argc, char **argv);
VHDTOOL_COMMAND(read, .name = "read",
	.usage = "read [-f raw|vpc] IMAGE OFFSET LENGTH",
	.summary = "copy LENGTH bytes at OFFSET to standard output",
	.run = run_read)

static int run_read(int argc, char **argv)
{
	unsigned flags = VT_OPEN_RDONLY | VT_OPEN_RAW_OK;
	uint64_t off, len;
	struct bdev *b;
	uint8_t *buf;
	int rc = 0, i = rw_options(argc, argv, &read_cmd, &flags);

	if (i < 0)
		return VT_EXIT_USAGE;
	argc -= i - 1;
	argv += i - 1;
	if (argc != 4)
		return vt_usage(&read_cmd);
	if (!vt_parse_size("offset", argv[2], &off) ||
	    !vt_parse_size("length", argv[3], &len))
		return 2;
	b = vt_open(argv[1], flags);
	if (!b)
		return 1;
	if (!util_range_ok(off, len, b->size)) {
		vt_err(argv[1], "range %llu+%llu is past the end of the disk (%llu bytes)",
		       (unsigned long long)off, (unsigned long long)len,
		       (unsigned long long)b->size);
		bdev_close(b);
		return 1;
	}
	buf = malloc(CHUNK);
	while (buf && len && !rc) {
		size_t n = (size_t)UTIL_MIN(len, (uint64_t)CHUNK);

		if (bdev_read(b, buf, off, n)) {
			vt_bdev_err(b);
			rc = 1;
		} else if (fwrite(buf, 1, n, stdout) != n) {
			vt_err(NULL, "standard output: %s", strerror(errno));
			rc = 1;
		}
		off += n;
		len -= n;
	}
	if (fflush(stdout) && !rc) {
		vt_err(NULL, "standard output: %s", strerror(errno));
		rc = 1;
	}
	free(buf);
	bdev_close(b);
	return rc;
}

/* Read up to n bytes from stdin; returns bytes read (short only at EOF) or
 * -1 on error. */
static ssize_t read_stdin(uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(0, buf + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static int run_write(int argc, char **argv);
VHDTOOL_COMMAND(write, .name = "write",
	.usage = "write [-f raw|vpc] IMAGE OFFSET [LENGTH]",
	.summary = "write bytes from standard input at OFFSET (LENGTH: exactly that many)",
	.run = run_write)

static int run_write(int argc, char **argv)
{
	unsigned flags = VT_OPEN_RAW_OK;
	uint64_t off, len = UINT64_MAX, done = 0;
	char why[160] = "";
	struct bdev *b;
	uint8_t *buf;
	int rc = 0, i = rw_options(argc, argv, &write_cmd, &flags);

	if (i < 0)
		return VT_EXIT_USAGE;
	argc -= i - 1;
	argv += i - 1;
	if (argc != 3 && argc != 4)
		return vt_usage(&write_cmd);
	if (!vt_parse_size("offset", argv[2], &off) ||
	    (argc == 4 && !vt_parse_size("length", argv[3], &len)))
		return 2;
	b = vt_open(argv[1], flags);
	if (!b)
		return 1;
	if (off > b->size || (len != UINT64_MAX && !util_range_ok(off, len, b->size))) {
		vt_err(argv[1], "offset %llu%s is past the end of the disk (%llu bytes)",
		       (unsigned long long)off, len != UINT64_MAX ? " plus length" : "",
		       (unsigned long long)b->size);
		bdev_close(b);
		return 1;
	}
	buf = malloc(CHUNK);
	if (!buf) {
		vt_err(NULL, "out of memory");
		rc = 1;
	}
	while (buf && done < len && !rc && !why[0]) {
		size_t want = (size_t)UTIL_MIN(len - done, (uint64_t)CHUNK);
		ssize_t n = read_stdin(buf, want);

		if (n < 0) {
			snprintf(why, sizeof(why), "standard input: %s", strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (!util_range_ok(off + done, (uint64_t)n, b->size)) {
			snprintf(why, sizeof(why), "input runs past the end of the disk (%llu bytes)",
				 (unsigned long long)b->size);
			break;
		}
		if (bdev_write(b, buf, off + done, (size_t)n, 0)) {
			vt_bdev_err(b);
			rc = 1;
			break;
		}
		done += (uint64_t)n;
		if ((size_t)n < want)
			break;
	}
	if (!rc && !why[0] && len != UINT64_MAX && done < len)
		snprintf(why, sizeof(why), "standard input ended after %llu of %llu bytes",
			 (unsigned long long)done, (unsigned long long)len);
	/* Input that stopped short: say what reached the disk. */
	if (why[0]) {
		vt_err(argv[1], "%s: %llu bytes written at offset %llu, nothing after them",
		       why, (unsigned long long)done, (unsigned long long)off);
		rc = 1;
	}
	if (bdev_flush(b) && !rc) {
		vt_bdev_err(b);
		rc = 1;
	}
	free(buf);
	bdev_close(b);
	return rc;
}
