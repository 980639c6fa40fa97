/* crash-writer: a deterministic writer to be killed with SIGKILL, and the
 * verifier that runs afterwards.
 *
 *   crash-writer fill IMAGE SEED            fill a base image with a pattern
 *   crash-writer write IMAGE SEED JOURNAL   run the write sequence; after each
 *                                           flush returns, append "N\n" (ops
 *                                           0..N-1 are durable) to JOURNAL
 *   crash-writer verify IMAGE SEED JOURNAL OLD   OLD = zero | pattern
 *
 * Op i writes random bytes into its own 64 KiB slot (a random permutation
 * of slots), at a random unaligned offset and length, so slots never
 * overlap and the expected content is known exactly: ops before the last
 * journalled flush must read back whole; later ops may be absent, present,
 * or (killed mid-write) torn, but each 512-byte sector holds either the old
 * or the new bytes, never anything else.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bdev.h"
#include "vhd/vhd.h"

#define SLOT (64u << 10)

struct op {
	uint64_t off;
	uint32_t len;
	uint64_t seed;
	int flush_after;   /* 1: flush, 2: FUA write */
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed | 1;

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd(&s) >> 24);
}

/* Pattern of the base image: a function of the offset. */
static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 2654435761u >> 13) | 1;
}

static struct op *plan(uint64_t size, uint64_t seed, uint32_t *nops)
{
	uint32_t nslots = (uint32_t)(size / SLOT), *perm;
	struct op *ops;
	uint64_t s = seed * 0x9e3779b97f4a7c15ull | 1;

	perm = malloc(sizeof(*perm) * nslots);
	ops = malloc(sizeof(*ops) * nslots);
	if (!perm || !ops)
		exit(3);
	for (uint32_t i = 0; i < nslots; i++)
		perm[i] = i;
	for (uint32_t i = nslots - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(rnd(&s) % (i + 1)), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (uint32_t i = 0; i < nslots; i++) {
		uint32_t in = (uint32_t)(rnd(&s) % (SLOT / 2));
		uint32_t len = 1 + (uint32_t)(rnd(&s) % (SLOT - in - 1));

		if (rnd(&s) % 4 == 0) {        /* some sector-aligned ones too */
			in &= ~511u;
			len = (len + 511) & ~511u;
			if (in + len > SLOT)
				len = SLOT - in;
		}
		ops[i].off = (uint64_t)perm[i] * SLOT + in;
		ops[i].len = len;
		ops[i].seed = rnd(&s);
		ops[i].flush_after = (int)(rnd(&s) % 6 == 0) + (int)(rnd(&s) % 9 == 0);
	}
	free(perm);
	*nops = nslots;
	return ops;
}

static struct bdev *open_img(const char *path, bool ro)
{
	struct vhd_open_opts o = { .flags = ro ? VHD_O_RDONLY : 0 };
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(path, &o, &e);

	if (!b) {
		fprintf(stderr, "crash-writer: %s\n", e.msg);
		exit(2);
	}
	return b;
}

static int die_bdev(struct bdev *b, const char *what)
{
	char msg[600];

	fprintf(stderr, "crash-writer: %s: %s\n", what, bdev_errmsg(b, msg, sizeof(msg)));
	return 1;
}

static int do_fill(const char *path)
{
	struct bdev *b = open_img(path, false);
	uint8_t *buf = malloc(1 << 20);

	for (uint64_t off = 0; off < b->size; off += 1 << 20) {
		for (uint32_t i = 0; i < 1 << 20; i++)
			buf[i] = pattern(off + i);
		if (bdev_write(b, buf, off, 1 << 20, 0))
			return die_bdev(b, "fill");
	}
	if (bdev_flush(b))
		return die_bdev(b, "flush");
	bdev_close(b);
	free(buf);
	return 0;
}

static int do_write(const char *path, uint64_t seed, const char *journal)
{
	struct bdev *b = open_img(path, false);
	int jfd = open(journal, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	uint8_t *buf = malloc(SLOT);
	uint32_t n;
	struct op *ops = plan(b->size, seed, &n);

	if (jfd < 0 || !buf)
		return 3;
	for (uint32_t i = 0; i < n; i++) {
		char line[32];
		int len;

		fill(buf, ops[i].len, ops[i].seed);
		if (bdev_write(b, buf, ops[i].off, ops[i].len,
			       ops[i].flush_after == 2 ? BDEV_FUA : 0))
			return die_bdev(b, "write");
		if (ops[i].flush_after == 1 && bdev_flush(b))
			return die_bdev(b, "flush");
		if (ops[i].flush_after) {
			len = snprintf(line, sizeof(line), "%u\n", i + 1);
			if (write(jfd, line, (size_t)len) != len)
				return 3;
		}
	}
	if (bdev_flush(b))
		return die_bdev(b, "flush");
	if (write(jfd, "done\n", 5) != 5)
		return 3;
	bdev_close(b);
	free(buf);
	free(ops);
	close(jfd);
	return 0;
}

static uint32_t journal_durable(const char *journal, bool *done)
{
	FILE *f = fopen(journal, "r");
	char line[64];
	uint32_t n = 0;

	*done = false;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strchr(line, '\n'))
			break;          /* torn last line */
		if (!strcmp(line, "done\n"))
			*done = true;
		else
			n = (uint32_t)strtoul(line, NULL, 10);
	}
	fclose(f);
	return n;
}

static int do_verify(const char *path, uint64_t seed, const char *journal,
		     bool old_pattern)
{
	struct bdev *b = open_img(path, true);
	uint8_t *want = malloc(SLOT), *got = malloc(SLOT);
	bool done;
	uint32_t n, durable = journal_durable(journal, &done);
	struct op *ops = plan(b->size, seed, &n);
	uint32_t present = 0, torn = 0;

	if (done)
		durable = n;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = ops[i].off;
		uint32_t len = ops[i].len, new_sectors = 0, old_sectors = 0;

		fill(want, len, ops[i].seed);
		if (bdev_read(b, got, off, len))
			return die_bdev(b, "read");
		if (i < durable) {
			if (memcmp(want, got, len)) {
				fprintf(stderr, "crash-writer: op %u (offset %llu, %u bytes) was flushed but does not read back\n",
					i, (unsigned long long)off, len);
				return 1;
			}
			continue;
		}
		/* Unflushed: per sector, old or new. */
		for (uint32_t pos = 0; pos < len;) {
			uint32_t end = (uint32_t)(((off + pos) / 512 + 1) * 512 - off);
			bool is_new, is_old = true;

			if (end > len)
				end = len;
			is_new = !memcmp(want + pos, got + pos, end - pos);
			for (uint32_t k = pos; k < end; k++)
				if (got[k] != (old_pattern ? pattern(off + k) : 0))
					is_old = false;
			if (!is_new && !is_old) {
				fprintf(stderr, "crash-writer: op %u: sector at %llu holds neither the old nor the new data\n",
					i, (unsigned long long)((off + pos) / 512 * 512));
				return 1;
			}
			new_sectors += is_new && !is_old;
			old_sectors += is_old && !is_new;
			pos = end;
		}
		present += new_sectors && !old_sectors;
		torn += new_sectors && old_sectors;
	}
	printf("verified: %u ops durable of %u, %u later ops present, %u torn\n",
	       durable, n, present, torn);
	bdev_close(b);
	free(want);
	free(got);
	free(ops);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "fill"))
		return do_fill(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "write"))
		return do_write(argv[2], strtoull(argv[3], NULL, 10), argv[4]);
	if (argc == 6 && !strcmp(argv[1], "verify"))
		return do_verify(argv[2], strtoull(argv[3], NULL, 10), argv[4],
				 !strcmp(argv[5], "pattern"));
	fprintf(stderr, "usage: crash-writer fill IMAGE SEED | write IMAGE SEED JOURNAL | verify IMAGE SEED JOURNAL zero|pattern\n");
	return 2;
}
