/* vmm-records: the on-disk format of the built-in guest's `records`
 * workload, shared by the guest (which writes and verifies them) and
 * `vmm-mini check-records` (which verifies an image after the VM is gone).
 *
 * Freestanding: only <stdint.h> and <stddef.h>.
 *
 * A LUN's record area is `slots` records of VMM_REC_BYTES from byte 0.
 * The guest numbers its writes to one LUN 1, 2, 3...; write `seq` goes to
 * slot (seq - 1) % slots and is that slot's generation (seq - 1) / slots.
 * So from the highest sequence S the guest saw flushed, a checker knows
 * which sequence each slot must hold at least.  The whole record is
 * covered by its checksum (computed with the checksum field zero); the
 * bytes after the header are a pattern derived from the sequence.
 */
#ifndef VMM_RECORDS_H
#define VMM_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#define VMM_REC_MAGIC 0x31306365526d6d56ull	/* "VmmRec01" */
#define VMM_REC_BYTES 4096u

struct vmm_rec {
	uint64_t magic;		/* @0 VMM_REC_MAGIC */
	uint64_t seq;		/* @8 1, 2, ... per LUN */
	uint64_t offset;	/* @16 byte offset of this record on the disk */
	uint64_t lba;		/* @24 offset / block_size */
	uint64_t generation;	/* @32 (seq - 1) / slots */
	uint32_t slots;		/* @40 records in the area */
	uint32_t block_size;	/* @44 the LUN's logical block size */
	uint32_t lun;		/* @48 the LUN the guest wrote it to */
	uint32_t reserved;	/* @52 0 */
	uint64_t run_id;	/* @56 the guest's boot (TSC at start) */
	uint64_t checksum;	/* @64 vmm_rec_sum() with this field 0 */
	/* @72: pattern bytes up to VMM_REC_BYTES */
};

_Static_assert(sizeof(struct vmm_rec) == 72, "record header");
_Static_assert(offsetof(struct vmm_rec, checksum) == 64, "checksum");

/* 64-bit FNV-1a over 8-byte words (b is 8-aligned, n a multiple of 8),
 * skipping the checksum field. */
static inline uint64_t vmm_rec_sum(const void *b, size_t n)
{
	const uint64_t *w = (const uint64_t *)b;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n / 8; i++) {
		h ^= i == offsetof(struct vmm_rec, checksum) / 8 ? 0 : w[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* The whole record for (seq, lun...) into b (VMM_REC_BYTES, 8-aligned). */
static inline void vmm_rec_fill(void *b, uint64_t seq, uint32_t slots, uint32_t block_size,
				uint32_t lun, uint64_t run_id)
{
	struct vmm_rec *r = (struct vmm_rec *)b;
	uint64_t *w = (uint64_t *)b;
	uint64_t x = seq * 0x9e3779b97f4a7c15ull ^ run_id;

	for (size_t i = sizeof(*r) / 8; i < VMM_REC_BYTES / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
	r->magic = VMM_REC_MAGIC;
	r->seq = seq;
	r->offset = (seq - 1) % slots * (uint64_t)VMM_REC_BYTES;
	r->lba = r->offset / block_size;
	r->generation = (seq - 1) / slots;
	r->slots = slots;
	r->block_size = block_size;
	r->lun = lun;
	r->reserved = 0;
	r->run_id = run_id;
	r->checksum = 0;
	r->checksum = vmm_rec_sum(b, VMM_REC_BYTES);
}

#endif
