/* libFuzzer target: arbitrary commands to a SCSI target.
 *
 * The target has LUN 0 (512-byte blocks, thin, 1 MiB) and LUN 1 (4 KiB
 * blocks, read-only, 1 MiB) on memory disks.  The input is a sequence of
 * records {lun, initiator, direction, buffer length (BE16), CDB length,
 * CDB (16 bytes)} each followed by its data-out bytes (as many as the
 * buffer length, or what is left).  Each command runs to completion
 * through scsi_submit(); then:
 *   - done() ran exactly once;
 *   - the status is one SCSI defines, CHECK CONDITION carries 18 bytes of
 *     fixed-format sense with additional length 10, other statuses none;
 *   - no more bytes moved than the buffer holds.
 * Crashes, leaks and UB are found by the sanitizers; broken invariants
 * abort with a message.
 *
 * tests/unit/test-scsi-hostile.c includes this file with
 * FUZZ_SCSI_NO_ENTRY defined and feeds it pseudo-random inputs in
 * `make check`.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bdev.h"
#include "common/util.h"
#include "scsi/scsi.h"

#ifndef FUZZ_FAIL
#define FUZZ_FAIL(...) do { fprintf(stderr, "fuzz-scsi-cdb: " __VA_ARGS__); \
			    fputc('\n', stderr); abort(); } while (0)
#endif

#define FZ_DISK (1u << 20)
#define FZ_REC 22

struct fz_disk {
	struct bdev b;
	uint8_t *data;
};

static int fz_read(struct bdev *b, void *buf, uint64_t off, size_t len)
{
	memcpy(buf, ((struct fz_disk *)b)->data + off, len);
	return 0;
}

static int fz_write(struct bdev *b, const void *buf, uint64_t off, size_t len,
		    unsigned flags)
{
	memcpy(((struct fz_disk *)b)->data + off, buf, len);
	return 0;
}

static int fz_flush(struct bdev *b)
{
	return 0;
}

static int fz_zero(struct bdev *b, uint64_t off, uint64_t len, unsigned flags)
{
	memset(((struct fz_disk *)b)->data + off, 0, len);
	return 0;
}

static int fz_discard(struct bdev *b, uint64_t off, uint64_t len)
{
	return fz_zero(b, off, len, 0);
}

/* Alternating 64 KiB extents of data and holes. */
static int fz_status(struct bdev *b, uint64_t off, uint64_t len,
		     struct bdev_status *st)
{
	uint64_t end = (off / 65536 + 1) * 65536;

	st->length = UTIL_MIN(end, off + len) - off;
	st->flags = (off / 65536) % 2 ? BDEV_ST_ZERO : BDEV_ST_DATA | BDEV_ST_ALLOC;
	st->depth = 0;
	return 0;
}

static void fz_close(struct bdev *b)
{
	free(((struct fz_disk *)b)->data);
	bdev_fini(b);
	free(b);
}

static const struct bdev_ops fz_ops = {
	.kind = "fuzz-mem", .read = fz_read, .write = fz_write,
	.flush = fz_flush, .discard = fz_discard, .write_zeroes = fz_zero,
	.block_status = fz_status, .close = fz_close,
};

static struct bdev *fz_disk_new(uint32_t bs, bool unmap)
{
	struct fz_disk *d = calloc(1, sizeof(*d));

	if (!d || bdev_init(&d->b, &fz_ops, "fuzz", FZ_DISK, bs, false))
		abort();
	d->data = calloc(1, FZ_DISK);
	if (!d->data)
		abort();
	d->b.limits.unmap_granularity = unmap ? bs : 0;
	d->b.limits.unmap_zeroes = unmap;
	d->b.limits.physical_block = 4096;
	return &d->b;
}

struct fz_cmd {
	struct scsi_cmd c;
	struct iovec iov[2];
	int calls;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void fz_done(struct scsi_cmd *c)
{
	struct fz_cmd *x = c->opaque;

	pthread_mutex_lock(&x->mu);
	x->calls++;
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

static void fz_check(const struct fz_cmd *x, uint64_t total)
{
	const struct scsi_cmd *c = &x->c;

	if (x->calls != 1)
		FUZZ_FAIL("done() ran %d times", x->calls);
	switch (c->status) {
	case SCSI_GOOD: case SCSI_BUSY: case SCSI_RESERVATION_CONFLICT:
	case SCSI_TASK_SET_FULL:
		if (c->sense_len)
			FUZZ_FAIL("status 0x%x with sense", c->status);
		break;
	case SCSI_CHECK_CONDITION:
		if (c->sense_len != 18 || (c->sense[0] & 0x7f) != 0x70 ||
		    c->sense[7] != 10)
			FUZZ_FAIL("bad sense for opcode 0x%02x", c->cdb[0]);
		break;
	default:
		FUZZ_FAIL("status 0x%x", c->status);
	}
	if (c->xfer_len > total)
		FUZZ_FAIL("moved %llu of %llu bytes", (unsigned long long)c->xfer_len,
			  (unsigned long long)total);
}

/* Run one record at p (n bytes left); returns the bytes it used. */
static size_t fz_one(struct scsi_target *t, const uint8_t *p, size_t n)
{
	static uint8_t buf[65536 + 512];
	struct fz_cmd x;
	size_t len = util_get_be16(p + 3), data = UTIL_MIN(len, n - FZ_REC);

	memset(&x, 0, sizeof(x));
	pthread_mutex_init(&x.mu, NULL);
	pthread_cond_init(&x.cv, NULL);
	x.c.lun = p[0] & 3;
	x.c.initiator = p[1] & 3;
	x.c.dir = (enum scsi_dir)(p[2] % 3);
	x.c.cdb_len = p[5] % 33;
	memcpy(x.c.cdb, p + 6, 16);
	memset(buf, 0xEE, len);
	memcpy(buf, p + FZ_REC, data);
	/* two pieces, split in the middle */
	x.iov[0] = (struct iovec){ buf, len / 2 };
	x.iov[1] = (struct iovec){ buf + len / 2, len - len / 2 };
	x.c.iov = x.iov;
	x.c.iovcnt = 2;
	x.c.done = fz_done;
	x.c.opaque = &x;
	scsi_submit(t, &x.c);
	pthread_mutex_lock(&x.mu);
	while (!x.calls)
		pthread_cond_wait(&x.cv, &x.mu);
	pthread_mutex_unlock(&x.mu);
	fz_check(&x, len);
	pthread_mutex_destroy(&x.mu);
	pthread_cond_destroy(&x.cv);
	return FZ_REC + data;
}

static int fz_run(const uint8_t *in, size_t n)
{
	struct scsi_target *t = scsi_target_new();
	struct bdev *d0 = fz_disk_new(512, true), *d1 = fz_disk_new(4096, false);

	if (!t || scsi_lun_add(t, 0, d0, 0) || scsi_lun_add(t, 1, d1, SCSI_LUN_READ_ONLY))
		abort();
	while (n >= FZ_REC) {
		size_t k = fz_one(t, in, n);

		in += k;
		n -= k;
	}
	scsi_target_free(t);
	bdev_close(d0);
	bdev_close(d1);
	return 0;
}

#ifndef FUZZ_SCSI_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_run(data, size);
}
#endif
