/* checkrec: `vmm-mini check-records IMAGE[,flushed=SEQ]...`: verifies the
 * records workload's writes on images after the VM is gone
 * (vmm-mini/vmm-records.h).
 *
 * For each image (a VHD chain or a pass-through file/device, opened
 * read-only), every 4 KiB slot is read: a slot with the record magic must
 * pass its checksum, sit where its sequence says (offset, LBA, generation)
 * and agree with the other records on slots, LUN and run.  With
 * flushed=SEQ (the last "records: flushed" line of the guest's console),
 * every slot must hold at least the latest sequence up to SEQ written to
 * it: a write the guest saw flushed is never lost.  Prints one line per
 * image with the highest sequence found.  Exit 0 when clean, 1 when not,
 * 2 for usage errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm-mini/vmm-records.h"
#include "vmm-mini/vmm.h"

#define MAX_REPORT 10		/* problems printed per image */
#define CHUNK_SLOTS 256		/* slots read at once (1 MiB) */

struct ck {
	const char *path;
	uint64_t flushed;
	unsigned problems;
};

__attribute__((format(printf, 2, 3)))
static void problem(struct ck *c, const char *fmt, ...)
{
	va_list ap;

	if (c->problems++ >= MAX_REPORT)
		return;
	fprintf(stderr, "%s: ", c->path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int check_image(struct ck *c)
{
	struct bdev_err e = { 0 };
	struct vmm_disk d;
	uint64_t nslots, found = 0, maxseq = 0, run = 0;
	uint32_t slots = 0, lun = 0;
	uint64_t *seqs;
	uint8_t *buf;
	int r;

	r = vmm_disk_open(c->path, true, &d, &e);
	if (r) {
		fprintf(stderr, "%s: %s\n", c->path, e.msg);
		return 1;
	}
	nslots = d.bd->size / VMM_REC_BYTES;
	seqs = calloc(nslots ? nslots : 1, sizeof(*seqs));
	buf = aligned_alloc(4096, CHUNK_SLOTS * VMM_REC_BYTES);
	if (!seqs || !buf) {
		fprintf(stderr, "%s: out of memory\n", c->path);
		vmm_disk_close(&d, &e);
		free(seqs);
		free(buf);
		return 1;
	}
	for (uint64_t i = 0; i < nslots; i++) {
		const uint8_t *rec = buf + i % CHUNK_SLOTS * VMM_REC_BYTES;
		const struct vmm_rec *h = (const void *)rec;

		if (i % CHUNK_SLOTS == 0) {
			uint64_t n = nslots - i < CHUNK_SLOTS ? nslots - i : CHUNK_SLOTS;

			r = bdev_read(d.bd, buf, i * VMM_REC_BYTES, n * VMM_REC_BYTES);
			if (r) {
				problem(c, "slots %" PRIu64 "-%" PRIu64 ": read: %s", i, i + n - 1,
					bdev_last_error());
				i += n - 1;
				continue;
			}
		}
		if (h->magic != VMM_REC_MAGIC)
			continue;
		if (vmm_rec_sum(rec, VMM_REC_BYTES) != h->checksum) {
			problem(c, "slot %" PRIu64 ": checksum mismatch (sequence %" PRIu64 ")", i,
				h->seq);
			continue;
		}
		if (!found) {
			slots = h->slots;
			lun = h->lun;
			run = h->run_id;
		}
		if (h->seq == 0 || h->slots == 0 || h->slots != slots ||
		    (h->seq - 1) % h->slots != i || h->offset != i * VMM_REC_BYTES ||
		    !h->block_size || h->lba != h->offset / h->block_size ||
		    h->generation != (h->seq - 1) / h->slots) {
			problem(c, "slot %" PRIu64 ": record of sequence %" PRIu64
				" does not belong there (slots %u, offset %" PRIu64 ")",
				i, h->seq, h->slots, h->offset);
			continue;
		}
		if (h->lun != lun || h->run_id != run)
			problem(c, "slot %" PRIu64 ": LUN %u run 0x%" PRIx64
				" differ from the first record's (LUN %u run 0x%" PRIx64 ")",
				i, h->lun, h->run_id, lun, run);
		/* the whole record as the guest wrote it */
		{
			static uint8_t want[VMM_REC_BYTES] __attribute__((aligned(8)));

			vmm_rec_fill(want, h->seq, h->slots, h->block_size, h->lun, h->run_id);
			if (memcmp(want, rec, VMM_REC_BYTES))
				problem(c, "slot %" PRIu64 ": sequence %" PRIu64 ": content differs",
					i, h->seq);
		}
		seqs[i] = h->seq;
		found++;
		if (h->seq > maxseq)
			maxseq = h->seq;
	}
	if (c->flushed) {
		if (!slots) {
			problem(c, "no records, but sequence %" PRIu64 " was flushed", c->flushed);
		} else {
			for (uint64_t i = 0; i < slots && i < nslots; i++) {
				uint64_t s = i + 1, want;

				if (c->flushed < s)
					break;
				want = c->flushed - (c->flushed - s) % slots;
				if (seqs[i] < want)
					problem(c, "slot %" PRIu64 ": holds sequence %" PRIu64
						", but %" PRIu64 " was written there and flushed",
						i, seqs[i], want);
			}
		}
	}
	if (c->problems > MAX_REPORT)
		fprintf(stderr, "%s: %u more problems\n", c->path, c->problems - MAX_REPORT);
	printf("%s: %" PRIu64 " records, highest sequence %" PRIu64 ", LUN %u, %u slots, "
	       "flushed %" PRIu64 " checked: %s\n",
	       c->path, found, maxseq, lun, slots, c->flushed, c->problems ? "BAD" : "ok");
	vmm_disk_close(&d, &e);
	free(seqs);
	free(buf);
	return c->problems ? 1 : 0;
}

int vmm_cmd_check_records(int argc, char **argv)
{
	int rc = 0;

	if (argc < 2 || !strcmp(argv[1], "--help")) {
		fprintf(argc < 2 ? stderr : stdout,
			"usage: vmm-mini check-records IMAGE[,flushed=SEQ]...\n");
		return argc < 2 ? 2 : 0;
	}
	for (int i = 1; i < argc; i++) {
		struct ck c = { 0 };
		char *p = strdup(argv[i]), *comma;

		if (!p)
			return 1;
		comma = strstr(p, ",flushed=");
		if (comma) {
			char *end;

			*comma = '\0';
			c.flushed = strtoull(comma + 9, &end, 10);
			if (*end) {
				fprintf(stderr, "vmm-mini check-records: bad '%s'\n", argv[i]);
				free(p);
				return 2;
			}
		}
		c.path = p;
		if (check_image(&c))
			rc = 1;
		free(p);
	}
	return rc;
}
