/* storvsc: the guest side of the synthetic SCSI controller, for tests and
 * benchmarks running in a process attached through the vmbus transport.
 * Does what Linux's hv_storvsc does: VMBus contact (5.3 refused, falls
 * back), offers, GPADL + OPENCHANNEL for the primary, the vstor init
 * (BEGIN, QUERY_PROTOCOL_VERSION 6.2 -> 6.0 -> 5.1, QUERY_PROPERTIES,
 * END), CREATE_SUB_CHANNELS and opening the offered sub-channels, then
 * EXECUTE_SRB with GPA-direct packets (one range, Linux's layout).
 *
 * Single-threaded; no cmocka (usable by helper programs).  Returns 0 or
 * -errno; svc_error() says what went wrong.
 */
#ifndef TESTS_STORVSC_H
#define TESTS_STORVSC_H

#include <stdbool.h>
#include <stdint.h>

#include "storvsp/storvsp.h"
#include "vmbus/vmbus.h"

#define SVC_MAX_CHANNELS 8
#define SVC_MAX_REQS 4096

struct svc;

struct svc_opts {
	int subchannels;	/* sub-channels to ask for (capped by the host) */
	uint32_t ring_pages;	/* per direction incl. control page; 0: 33 */
	bool old_init_sizes;	/* 48-byte init packets (vmscsi_size_delta) */
	uint16_t first_version;	/* 0: 0x0602 (then 0x0600, 0x0501) */
};

struct svc_req {
	/* filled by the caller */
	uint8_t cdb[16];
	uint8_t cdb_len;
	uint8_t lun;
	uint8_t path_id, target_id;
	uint8_t data_in;	/* VSP_DATA_* */
	void *buf;		/* in guest memory (svc_alloc) */
	uint32_t len;
	/* results */
	bool done;
	uint32_t nt_status;
	uint8_t srb_status, scsi_status, sense_len;
	uint8_t sense[20];
	uint32_t xfer;
	int chan;
	uint64_t t_submit;	/* ns, for latency */
};

int svc_attach(const char *sock, const struct svc_opts *o, struct svc **out);
/* CLOSECHANNEL, GPADL_TEARDOWN, UNLOAD, detach. */
int svc_detach(struct svc *s);
const char *svc_error(struct svc *s);

/* Guest memory: page-aligned bump allocation below guest_bytes. */
void *svc_alloc(struct svc *s, uint64_t bytes);
struct vmbus_guest *svc_guest(struct svc *s);
struct vmbus_guest_chan *svc_chan(struct svc *s, int i);
int svc_nchan(struct svc *s);
uint16_t svc_version(struct svc *s);
const struct vsp_channel_props *svc_props(struct svc *s);
/* ENUMERATE_BUS / REMOVE_DEVICE packets received so far. */
int svc_rescans(struct svc *s);
/* RESCIND_CHANNELOFFER messages seen for our sub-channels (each answered
 * with RELID_RELEASED, as Linux does). */
int svc_rescinded(struct svc *s);
/* Close every channel (sub-channels first) and tear down their GPADLs,
 * then wait up to wait_ms for the host to rescind the sub-channels.
 * svc_detach does this (without waiting) when it was not done. */
int svc_close_all(struct svc *s, int wait_ms);

/* Queue r on channel chan: -EAGAIN when the ring or the id table is
 * full (reap first). */
int svc_submit(struct svc *s, int chan, struct svc_req *r);
/* Reap completions on every channel, waiting up to timeout_ms for at
 * least one; returns how many requests completed (their done set). */
int svc_poll(struct svc *s, int timeout_ms);
int svc_inflight(struct svc *s);
/* Submit and wait. */
int svc_exec(struct svc *s, int chan, struct svc_req *r, int timeout_ms);

/* Convenience: a CDB request; returns 0 when it completed (check the
 * statuses). */
int svc_cmd(struct svc *s, uint8_t lun, const uint8_t *cdb, uint8_t cdb_len,
	    uint8_t data_in, void *buf, uint32_t len, struct svc_req *r);
/* Send one raw packet on a channel (hostile tests); no id bookkeeping. */
int svc_raw(struct svc *s, int chan, uint16_t type, uint16_t flags,
	    uint64_t trans_id, uint32_t hdr_len, const void *data, uint32_t len);
/* Read one raw packet from a channel's host->guest ring (payload copied
 * into buf); its length, 0 on timeout, < 0 on error. */
int svc_raw_recv(struct svc *s, int chan, void *buf, uint32_t max,
		 uint64_t *trans_id, int timeout_ms);

#endif
