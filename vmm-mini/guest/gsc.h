/* gsc: the guest's synthetic SCSI controller driver, what Linux's
 * hv_storvsc does: open the controller's primary channel, the vstor init
 * (BEGIN_INITIALIZATION, QUERY_PROTOCOL_VERSION 6.2 -> 6.0 -> 5.1,
 * QUERY_PROPERTIES, END_INITIALIZATION), then EXECUTE_SRB with GPA-direct
 * packets (one range, Linux's layout), completions reaped by polling with
 * the ring masked, ENUMERATE_BUS / REMOVE_DEVICE counted for the caller's
 * rescans, and the LUN scan (REPORT LUNS, INQUIRY, READ CAPACITY 16).
 *
 * Freestanding, single-threaded.  Functions return 0 or a GV_E* code.
 */
#ifndef GUEST_GSC_H
#define GUEST_GSC_H

#include <stdbool.h>
#include <stdint.h>

#include "storvsp/storvsp.h"
#include "vmm-mini/guest/gvmbus.h"

#define GSC_MAX_INFLIGHT 128
#define GSC_MAX_LUNS 64

struct gsc_req {
	/* the caller's */
	uint8_t cdb[16];
	uint8_t cdb_len;
	uint8_t lun;
	uint8_t data_in;	/* VSP_DATA_* */
	void *buf;		/* guest memory, any alignment */
	uint32_t len;
	uint64_t tag;		/* free for the caller */
	uint8_t retries;	/* 0 (set by the gsc_rw16... helpers) */
	/* results */
	bool done;
	uint32_t nt_status;
	uint8_t srb_status, scsi_status;
	uint8_t sense[20];
	uint32_t xfer;
	uint64_t t_submit, t_done; /* TSC */
};

/* Did r succeed (SRB SUCCESS, SCSI GOOD)? */
bool gsc_ok(const struct gsc_req *r);

int gsc_init(void);
uint16_t gsc_version(void);
uint32_t gsc_max_transfer(void);
/* ENUMERATE_BUS and REMOVE_DEVICE seen so far. */
unsigned gsc_rescans(void);

/* Queue r: GV_E_RING when the ring or the id table is full (reap). */
int gsc_submit(struct gsc_req *r);
/* Reap what completed (r->done set): how many, or < 0 on a broken ring. */
int gsc_reap(void);
unsigned gsc_inflight(void);
/* The longest time (TSC ticks) between two successful writes' completions
 * since the last call (the longest write stall), and start again. */
uint64_t gsc_write_gap_take(void);
/* Reap, polling SPIN_NS then sleeping, until at least one completed (or
 * nothing is in flight). */
int gsc_wait(void);
/* Nothing in flight, nothing to do: reap, else sleep until the host
 * writes (a notice) or the VMM wakes us; then reap again. */
int gsc_idle(void);
/* Submit and wait for r alone. */
int gsc_exec(struct gsc_req *r);

struct gsc_lun {
	uint8_t lun;
	uint32_t block_size;
	uint64_t blocks;
	char vendor[9], product[17];
};
/* REPORT LUNS (any LUN: it is LUN-less here), then INQUIRY and READ
 * CAPACITY 16 for each LUN found.  Fills luns, returns how many (or < 0). */
int gsc_scan(struct gsc_lun *luns, int max);

/* CDB helpers. */
void gsc_rw16(struct gsc_req *r, bool write, uint8_t lun, uint64_t lba, uint32_t blocks,
	      void *buf, uint32_t len);
void gsc_sync_cache(struct gsc_req *r, uint8_t lun);

#endif
