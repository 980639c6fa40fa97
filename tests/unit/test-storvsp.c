/* storvsp end to end in two processes: the parent is the host (vmbus
 * transport + storvsp + in-memory disks completing in shuffled order), a
 * forked child is the guest (tests/unit/storvsc.c) and does what Linux
 * does: version fallbacks, properties, sub-channels, LUN scan (REPORT
 * LUNS, INQUIRY, READ CAPACITY 16), I/O checked against a model at queue
 * depth 128 over three channels, sense data for errors, INVALID_LUN, hot
 * add and remove while I/O runs; then a hostile suite: corrupt indices,
 * bad descriptors, page lists outside memory or overflowing, transfers
 * over the maximum, unknown operations, completions from the guest,
 * floods.  Each bad channel is closed; the others carry on.
 * tsan-test */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "scsi/scsi.h"
#include "storvsp/storvsp.h"
#include "tests/unit/memdisk.h"
#include "tests/unit/storvsc.h"

#define MEM_BYTES (64u << 20)
#define DISK_BYTES (8u << 20)
#define MAX_XFER (256u << 10)
#define SUBS 7

static int cmd_pipe[2], ack_pipe[2];

#define CHECK(step, cond) do { if (!(cond)) { \
	fprintf(stderr, "guest: step %d failed: %s (%s)\n", step, #cond, svc_error(s)); \
	_exit(step); } } while (0)

/* --- guest --------------------------------------------------------------- */

static void host_cmd(char op, uint8_t lun)
{
	char b[2] = { op, (char)lun }, a;

	if (write(cmd_pipe[1], b, 2) != 2 || read(ack_pipe[0], &a, 1) != 1)
		_exit(90);
}

static int io_chans;	/* 0: every channel */
static uint8_t model[3][DISK_BYTES / 4096];	/* per 4 KiB block: pattern seed */

static void fill(uint8_t *b, uint32_t len, uint8_t seed, uint64_t off)
{
	for (uint32_t i = 0; i < len; i++)
		b[i] = md_pat(seed, off + i);
}

static void rw10(uint8_t *cdb, bool write, uint32_t lba, uint16_t blocks)
{
	memset(cdb, 0, 10);
	cdb[0] = write ? 0x2A : 0x28;
	cdb[2] = (uint8_t)(lba >> 24);
	cdb[3] = (uint8_t)(lba >> 16);
	cdb[4] = (uint8_t)(lba >> 8);
	cdb[5] = (uint8_t)lba;
	cdb[7] = (uint8_t)(blocks >> 8);
	cdb[8] = (uint8_t)blocks;
}

static void scan(struct svc *s, int nluns)
{
	uint8_t *buf = svc_alloc(s, 8192);
	struct svc_req r;
	uint8_t rl[12] = { 0xA0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0 };
	uint8_t inq[6] = { 0x12, 0, 0, 0, 96, 0 };
	uint8_t rc16[16] = { 0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 };

	CHECK(30, svc_cmd(s, 0, rl, 12, VSP_DATA_IN, buf, 4096, &r) == 0);
	CHECK(31, r.srb_status == VSP_SRB_SUCCESS && r.scsi_status == 0);
	CHECK(32, (uint32_t)(buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3]) == 8u * (uint32_t)nluns);
	for (int i = 0; i < nluns; i++) {
		uint8_t lun = buf[8 + 8 * i + 1];

		/* unit attentions (power on, LUNs changed) first, as Linux
		 * retries them */
		uint8_t tur[6] = { 0 };
		for (int k = 0; k < 4; k++) {
			CHECK(33, svc_cmd(s, lun, tur, 6, VSP_DATA_NONE, NULL, 0, &r) == 0);
			if (r.srb_status == VSP_SRB_SUCCESS)
				break;
			CHECK(33, (r.srb_status & 0x80) && (r.sense[2] & 0xf) == 6);
		}
		CHECK(33, r.srb_status == VSP_SRB_SUCCESS);
		CHECK(33, svc_cmd(s, lun, inq, 6, VSP_DATA_IN, buf + 4096, 96, &r) == 0);
		CHECK(34, r.srb_status == VSP_SRB_SUCCESS && buf[4096] == 0x00 && r.xfer >= 36);
		CHECK(35, svc_cmd(s, lun, rc16, 16, VSP_DATA_IN, buf + 4096, 32, &r) == 0);
		if (r.srb_status != VSP_SRB_SUCCESS || r.xfer != 32) fprintf(stderr, "rc16 lun %u: srb %#x scsi %#x xfer %u sense %02x/%02x\n", lun, r.srb_status, r.scsi_status, r.xfer, r.sense[2], r.sense[12]);
		CHECK(36, r.srb_status == VSP_SRB_SUCCESS && r.xfer == 32);
		uint64_t last = 0;
		for (int k = 0; k < 8; k++)
			last = last << 8 | buf[4096 + k];
		CHECK(37, (last + 1) * 512 == DISK_BYTES);
	}
	/* INQUIRY to an absent LUN: peripheral qualifier 3, not an error */
	CHECK(38, svc_cmd(s, 9, inq, 6, VSP_DATA_IN, buf, 96, &r) == 0);
	CHECK(39, r.srb_status == VSP_SRB_SUCCESS && buf[0] == 0x7F);
}

static void errors(struct svc *s)
{
	uint8_t *buf = svc_alloc(s, 8192), cdb[16];
	uint8_t tur[6] = { 0 }, bad[6] = { 0xFF };
	struct svc_req r;

	/* absent LUN: INVALID_LUN, no sense */
	CHECK(40, svc_cmd(s, 7, tur, 6, VSP_DATA_NONE, NULL, 0, &r) == 0);
	CHECK(41, r.srb_status == VSP_SRB_INVALID_LUN && r.nt_status == VSP_NT_DEVICE_DOES_NOT_EXIST);
	/* another target: INVALID_LUN */
	memset(&r, 0, sizeof(r));
	r.target_id = 1;
	r.cdb_len = 6;
	r.data_in = VSP_DATA_NONE;
	CHECK(42, svc_exec(s, 0, &r, 5000) == 0 && r.srb_status == VSP_SRB_INVALID_LUN);
	/* LBA out of range: CHECK CONDITION, autosense 05/21/00 */
	rw10(cdb, false, DISK_BYTES / 512, 8);
	CHECK(43, svc_cmd(s, 0, cdb, 10, VSP_DATA_IN, buf, 4096, &r) == 0);
	CHECK(44, r.srb_status == (VSP_SRB_INVALID_REQUEST | VSP_SRB_AUTOSENSE_VALID) &&
		  r.scsi_status == 2 && r.sense_len >= 14 && (r.sense[2] & 0xf) == 5 &&
		  r.sense[12] == 0x21 && r.sense[13] == 0);
	/* unknown opcode: 05/20/00 */
	CHECK(45, svc_cmd(s, 0, bad, 6, VSP_DATA_NONE, NULL, 0, &r) == 0);
	CHECK(46, r.scsi_status == 2 && r.sense[12] == 0x20 && (r.srb_status & 0x80));
	/* write to the read-only LUN 1: 07/27/00 */
	rw10(cdb, true, 0, 8);
	CHECK(47, svc_cmd(s, 1, cdb, 10, VSP_DATA_OUT, buf, 4096, &r) == 0);
	CHECK(48, r.srb_status == (VSP_SRB_ERROR | VSP_SRB_AUTOSENSE_VALID) &&
		  (r.sense[2] & 0xf) == 7 && r.sense[12] == 0x27);
	/* buffer shorter than the CDB wants: DATA_OVERRUN, never SUCCESS */
	rw10(cdb, false, 0, 16);
	CHECK(49, svc_cmd(s, 0, cdb, 10, VSP_DATA_IN, buf, 4096, &r) == 0);
	CHECK(50, r.srb_status != VSP_SRB_SUCCESS);
}

/* Random 4 KiB-aligned reads and writes (1-8 blocks of 4 KiB) at queue
 * depth qd across every channel, on LUN 0 (model row 0); reads are
 * compared with the model.  Returns how many completed out of order. */
static int io_mix(struct svc *s, int total, int qd, uint8_t lun, bool tolerate_gone)
{
	struct svc_req *reqs = calloc((size_t)qd, sizeof(*reqs));
	uint8_t **bufs = calloc((size_t)qd, sizeof(*bufs));
	uint32_t *blk = calloc((size_t)qd, sizeof(uint32_t)), seq = 0, *seqs = calloc((size_t)qd, 4);
	uint32_t last_done = 0;
	int sent = 0, done = 0, ooo = 0, gone = 0;
	unsigned rnd = 12345;

	for (int i = 0; i < qd; i++)
		bufs[i] = svc_alloc(s, 8 * 4096);
	while (done < total) {
		for (int i = 0; i < qd && sent < total; i++) {
			struct svc_req *r = &reqs[i];
			bool busy = r->cdb_len && !r->done;
			if (busy)
				continue;
			rnd = rnd * 1103515245 + 12345;
			uint32_t nb = 1 + (rnd >> 8) % 8, b = (rnd >> 12) % (DISK_BYTES / 4096 - 8);
			bool wr = (rnd >> 20) & 1;
			/* one writer per block range at a time: avoid overlaps */
			bool clash = false;
			for (int k = 0; k < qd; k++)
				if (k != i && reqs[k].cdb_len && !reqs[k].done &&
				    blk[k] < b + 8 && b < blk[k] + 8)
					clash = true;
			if (clash)
				continue;
			memset(r, 0, sizeof(*r));
			rw10(r->cdb, wr, b * 8, (uint16_t)(nb * 8));
			r->cdb_len = 10;
			r->lun = lun;
			r->data_in = wr ? VSP_DATA_OUT : VSP_DATA_IN;
			r->buf = bufs[i];
			r->len = nb * 4096;
			blk[i] = b;
			seqs[i] = ++seq;
			if (wr) {
				uint8_t sd = (uint8_t)(1 + rnd % 250);
				for (uint32_t k = 0; k < nb; k++) {
					fill(bufs[i] + k * 4096, 4096, sd, (uint64_t)(b + k) * 4096);
					model[lun][b + k] = sd;
				}
			}
			CHECK(60, svc_submit(s, sent % (io_chans ? io_chans : svc_nchan(s)), r) == 0);
			sent++;
		}
		CHECK(61, svc_poll(s, 5000) >= 0);
		for (int i = 0; i < qd; i++) {
			struct svc_req *r = &reqs[i];
			if (!r->cdb_len || !r->done)
				continue;
			if (seqs[i] < last_done)
				ooo++;
			last_done = seqs[i];
			if (tolerate_gone && r->srb_status == VSP_SRB_INVALID_LUN) {
				gone++;
			} else {
				CHECK(62, r->srb_status == VSP_SRB_SUCCESS && r->xfer == r->len);
				if (r->data_in == VSP_DATA_IN) {
					uint8_t want[4096];
					for (uint32_t k = 0; k < r->len / 4096; k++) {
						fill(want, 4096, model[lun][blk[i] + k],
						     (uint64_t)(blk[i] + k) * 4096);
						CHECK(63, memcmp(want, bufs[i] + k * 4096, 4096) == 0);
					}
				}
			}
			r->cdb_len = 0;
			done++;
		}
	}
	free(reqs);
	free(bufs);
	free(blk);
	free(seqs);
	return tolerate_gone ? gone : ooo;
}

/* Raw bytes into channel c's guest->host ring at its write index,
 * published (what ring_write would refuse to produce). */
static void raw_bytes(struct svc *s, int c, const void *p, uint32_t n)
{
	struct ring *r = &svc_chan(s, c)->out;

	for (uint32_t i = 0; i < n; i++)
		r->data[(r->priv_write + i) % r->size] = ((const uint8_t *)p)[i];
	r->priv_write = (r->priv_write + ((n + 7) & ~7u) + 8) % r->size;
	__atomic_store_n(&r->ctl->write_index, r->priv_write, __ATOMIC_SEQ_CST);
	vmbus_guest_signal(svc_guest(s), svc_chan(s, c)->relid);
}

static void srb_packet(struct vsp_packet *p, uint8_t data_in, uint32_t dtl)
{
	memset(p, 0, sizeof(*p));
	p->operation = VSP_OP_EXECUTE_SRB;
	p->flags = 1;
	p->srb.length = VSP_SRB_LEN_WIN8;
	p->srb.cdb_length = 10;
	rw10(p->srb.cdb, false, 0, (uint16_t)(dtl / 512));
	p->srb.data_in = data_in;
	p->srb.data_transfer_length = dtl;
}

/* A GPA-direct packet: range header + pfns + vstor packet. */
static int gpa_send(struct svc *s, int c, uint32_t count, uint32_t off,
		    const uint64_t *pfn, uint32_t npfn, const struct vsp_packet *p,
		    uint32_t rangecount)
{
	uint8_t b[16 + 8 * 64 + 64];
	struct vsp_gpa_range rg = { 0, rangecount, count, off };

	memcpy(b, &rg, 16);
	memcpy(b + 16, pfn, 8 * npfn);
	memcpy(b + 16 + 8 * npfn, p, 64);
	return svc_raw(s, c, RING_PKT_DATA_GPA_DIRECT, 1, 77, 16 + 8 * npfn, b, 16 + 8 * npfn + 64);
}

static void expect_reply(struct svc *s, int c, uint8_t srb_status, uint32_t nt)
{
	struct vsp_packet p;
	uint64_t id;
	int n = svc_raw_recv(s, c, &p, sizeof(p), &id, 3000);

	CHECK(70, n == 64 && p.operation == VSP_OP_COMPLETE_IO);
	if (nt != 0xFFFFFFFF)
		CHECK(71, p.status == nt);
	if (srb_status)
		CHECK(72, p.srb.srb_status == srb_status);
}

static void hostile(struct svc *s)
{
	struct vsp_packet p;
	uint64_t pfn[64];
	uint8_t *buf = svc_alloc(s, 64 * 4096);
	uint64_t base = (uint64_t)(buf - (uint8_t *)vmbus_guest_mem(svc_guest(s))) / 4096;
	int c = 1;

	for (int i = 0; i < 64; i++)
		pfn[i] = base + (uint64_t)i;
	/* non-fatal, primary: a page outside the partition */
	srb_packet(&p, VSP_DATA_IN, 4096);
	uint64_t outside[1] = { vmbus_guest_pages(svc_guest(s)) + 3 };
	CHECK(80, gpa_send(s, 0, 4096, 0, outside, 1, &p, 1) == 0);
	expect_reply(s, 0, VSP_SRB_INVALID_REQUEST | VSP_SRB_AUTOSENSE_VALID, VSP_NT_INVALID_PARAMETER);
	uint64_t huge[1] = { UINT64_MAX / 4096 };
	CHECK(81, gpa_send(s, 0, 4096, 0, huge, 1, &p, 1) == 0);
	expect_reply(s, 0, VSP_SRB_INVALID_REQUEST | VSP_SRB_AUTOSENSE_VALID, VSP_NT_INVALID_PARAMETER);
	/* transfer over the maximum (the range too short for it) */
	srb_packet(&p, VSP_DATA_IN, MAX_XFER + 4096);
	CHECK(82, gpa_send(s, 0, 4096, 0, pfn, 1, &p, 1) == 0);
	expect_reply(s, 0, VSP_SRB_INVALID_REQUEST | VSP_SRB_AUTOSENSE_VALID, 0xFFFFFFFF);
	/* range shorter than data_transfer_length */
	srb_packet(&p, VSP_DATA_IN, 8192);
	CHECK(83, gpa_send(s, 0, 4096, 0, pfn, 1, &p, 1) == 0);
	expect_reply(s, 0, VSP_SRB_INVALID_REQUEST | VSP_SRB_AUTOSENSE_VALID, 0xFFFFFFFF);
	/* init operations again, out of order: INVALID_DEVICE_STATE */
	memset(&p, 0, sizeof(p));
	p.operation = VSP_OP_END_INITIALIZATION;
	p.flags = 1;
	CHECK(84, svc_raw(s, 0, RING_PKT_DATA_INBAND, 1, 5, 0, &p, 64) == 0);
	expect_reply(s, 0, 0, VSP_NT_INVALID_DEVICE_STATE);
	/* too many sub-channels: INVALID_PARAMETER */
	p.operation = VSP_OP_CREATE_SUB_CHANNELS;
	p.sub_channel_count = 100;
	CHECK(85, svc_raw(s, 0, RING_PKT_DATA_INBAND, 1, 6, 0, &p, 64) == 0);
	expect_reply(s, 0, 0, VSP_NT_INVALID_PARAMETER);
	/* init op on a sub-channel: INVALID_DEVICE_STATE, channel kept */
	p.operation = VSP_OP_BEGIN_INITIALIZATION;
	CHECK(86, svc_raw(s, 1, RING_PKT_DATA_INBAND, 1, 7, 0, &p, 64) == 0);
	expect_reply(s, 1, 0, VSP_NT_INVALID_DEVICE_STATE);

	/* fatal, one sub-channel each */
	/* 1: write index past the ring */
	svc_chan(s, c)->out.ctl->write_index = svc_chan(s, c)->out.size + 8;
	vmbus_guest_signal(svc_guest(s), svc_chan(s, c)->relid);
	c++;
	/* 2: len8 < offset8 */
	struct ring_desc d = { RING_PKT_DATA_INBAND, 10, 4, 1, 9 };
	uint8_t raw[96] = { 0 };
	memcpy(raw, &d, 16);
	raw_bytes(s, c++, raw, 32);
	/* 3: offset8 < 2, len8 past what was published */
	d = (struct ring_desc){ RING_PKT_DATA_INBAND, 1, 200, 1, 9 };
	memcpy(raw, &d, 16);
	raw_bytes(s, c++, raw, 80);
	/* 4: page count that overflows (offset + count > 2^32, PFNs missing) */
	srb_packet(&p, VSP_DATA_IN, 4096);
	CHECK(87, gpa_send(s, c++, 0xFFFFFFFFu, 0xFFF, pfn, 2, &p, 1) == 0);
	/* 5: unknown operation */
	memset(&p, 0, sizeof(p));
	p.operation = 99;
	CHECK(88, svc_raw(s, c++, RING_PKT_DATA_INBAND, 1, 8, 0, &p, 64) == 0);
	/* 6: a completion for an id the host never used */
	CHECK(89, svc_raw(s, c++, RING_PKT_COMP, 0, 0xdead, 0, &p, 64) == 0);
	/* 7: two ranges */
	srb_packet(&p, VSP_DATA_IN, 4096);
	CHECK(90, gpa_send(s, c++, 4096, 0, pfn, 1, &p, 2) == 0);

	/* the primary carries on: a flood of TEST UNIT READY without
	 * reading, then everything answered, nothing dropped */
	struct svc_req *fl = calloc(4000, sizeof(*fl));
	int sent = 0, done = 0;
	for (int round = 0; round < 4; round++) {
		while (sent < 4000) {
			fl[sent].cdb_len = 6;
			fl[sent].data_in = VSP_DATA_NONE;
			int e = svc_submit(s, 0, &fl[sent]);
			if (e == -EAGAIN)
				break;	/* guest->host ring full */
			CHECK(91, e == 0);
			sent++;
		}
		/* the host drains ours, fills its ring and waits
		 * (pending_send_sz) */
		usleep(50000);
	}
	while (done < sent) {
		int n = svc_poll(s, 5000);
		CHECK(92, n > 0);
		done += n;
	}
	for (int i = 0; i < sent; i++)
		CHECK(93, fl[i].done && fl[i].srb_status == VSP_SRB_SUCCESS);
	free(fl);
	io_chans = 1;	/* the sub-channels are gone */
	io_mix(s, 200, 16, 0, false);
}

static void guest_main(const char *path)
{
	struct svc_opts o = { .subchannels = SUBS, .first_version = 0x0700 };
	struct svc *s = NULL;
	int r;

	close(cmd_pipe[0]);
	close(ack_pipe[1]);
	r = svc_attach(path, &o, &s);
	CHECK(1, r == 0);
	CHECK(2, svc_version(s) == VSP_VER_WIN10);
	CHECK(3, svc_props(s)->max_transfer_bytes == MAX_XFER);
	CHECK(4, svc_props(s)->max_channel_cnt == SUBS && svc_nchan(s) == SUBS + 1);
	scan(s, 2);
	errors(s);
	/* I/O against the model: shuffled completions come back out of order */
	memset(model, 0, sizeof(model));
	for (uint32_t b = 0; b < DISK_BYTES / 4096; b++)
		model[0][b] = 1;
	int ooo = io_mix(s, 3000, 128, 0, false);
	fprintf(stderr, "guest: %d completions out of order\n", ooo);
	CHECK(20, ooo > 0);
	/* hot add LUN 2: ENUMERATE_BUS, then REPORT LUNS has 3 */
	int rescans = svc_rescans(s);
	host_cmd('a', 2);
	for (int i = 0; i < 100 && svc_rescans(s) == rescans; i++)
		svc_poll(s, 20);
	CHECK(21, svc_rescans(s) > rescans);
	scan(s, 3);
	for (uint32_t b = 0; b < DISK_BYTES / 4096; b++)
		model[2][b] = 3;
	io_mix(s, 300, 32, 2, false);
	/* hot remove LUN 2 while I/O runs: each request succeeds or gets
	 * INVALID_LUN; afterwards every one does */
	rescans = svc_rescans(s);
	char b2[2] = { 'R', 2 };
	CHECK(22, write(cmd_pipe[1], b2, 2) == 2);	/* removed asynchronously */
	int gone = io_mix(s, 2000, 64, 2, true);
	char a;
	CHECK(23, read(ack_pipe[0], &a, 1) == 1);
	uint8_t tur[6] = { 0 };
	struct svc_req rq;
	CHECK(24, svc_cmd(s, 2, tur, 6, VSP_DATA_NONE, NULL, 0, &rq) == 0 &&
		  rq.srb_status == VSP_SRB_INVALID_LUN);
	for (int i = 0; i < 100 && svc_rescans(s) == rescans; i++)
		svc_poll(s, 20);
	CHECK(25, svc_rescans(s) > rescans);
	fprintf(stderr, "guest: %d requests saw the LUN gone\n", gone);
	scan(s, 2);
	hostile(s);
	/* closing the primary revokes its sub-channels (as Hyper-V does) */
	CHECK(98, svc_close_all(s, 5000) == 0 && svc_rescinded(s) == svc_nchan(s) - 1);
	CHECK(99, svc_detach(s) == 0);
	_exit(0);
}

/* --- host ---------------------------------------------------------------- */

struct hotplug {
	struct vsp *v;
	uint8_t lun;
	struct memdisk *md;
};

static void *remove_thread(void *arg)
{
	struct hotplug *h = arg;

	usleep(20000);	/* let the guest's I/O start */
	if (vsp_lun_remove(h->v, h->lun) != 0)
		abort();
	bdev_close(&h->md->b);
	if (write(ack_pipe[1], "k", 1) != 1)
		abort();
	return NULL;
}

static void test_two_processes(void **state)
{
	char path[64];
	struct vmbus_host *h;
	struct vsp *v;
	struct vsp_cfg cfg = { 0 };
	struct vsp_stats st;
	struct memdisk *d0, *d1, *d2 = NULL;
	struct hotplug hp;
	pthread_t rm;
	bool rm_started = false;
	pid_t pid;
	int r, status, rounds = 0;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-storvsp-%d.sock", (int)getpid());
	assert_int_equal(pipe(cmd_pipe), 0);
	assert_int_equal(pipe(ack_pipe), 0);
	assert_int_equal(vmbus_host_new(MEM_BYTES, &h), 0);
	cfg.mgr = vmbus_host_mgr(h);
	cfg.guest_mem = vmbus_host_guest_mem(h, &cfg.guest_bytes);
	cfg.max_transfer = MAX_XFER;
	cfg.max_subchannels = SUBS;
	cfg.cpu = -1;
	assert_int_equal(vsp_new(&cfg, &v), 0);
	d0 = md_open(MD_NATIVE, DISK_BYTES, 1, 0, 1);
	d1 = md_open(MD_SYNC, DISK_BYTES, 1, 0, 2);
	assert_non_null(d0);
	assert_non_null(d1);
	/* LUN 0 starts as the model's pattern 1 */
	for (uint64_t i = 0; i < DISK_BYTES; i++)
		d0->data[i] = md_pat(1, i);
	assert_int_equal(vsp_lun_add(v, 0, &d0->b, 0), 0);
	assert_int_equal(vsp_lun_add(v, 1, &d1->b, SCSI_LUN_READ_ONLY), 0);
	assert_int_equal(vmbus_host_listen(h, path), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		guest_main(path);
	close(cmd_pipe[1]);
	close(ack_pipe[0]);
	fcntl(cmd_pipe[0], F_SETFL, O_NONBLOCK);

	assert_int_equal(vmbus_host_accept(h, 10000), 0);
	while ((r = vmbus_host_run(h, 20)) == 0) {
		char c[2];

		assert_true(++rounds < 2000000);
		/* statistics read while the service threads count (TSan) */
		if (rounds % 16 == 0)
			vsp_get_stats(v, &st);
		if (read(cmd_pipe[0], c, 2) == 2) {
			if (c[0] == 'a') {
				d2 = md_open(MD_NATIVE, DISK_BYTES, 1, 0, 3);
				for (uint64_t i = 0; i < DISK_BYTES; i++)
					d2->data[i] = md_pat(3, i);
				assert_int_equal(vsp_lun_add(v, (uint8_t)c[1], &d2->b, 0), 0);
				assert_int_equal(write(ack_pipe[1], "k", 1), 1);
			} else if (c[0] == 'R') {
				hp = (struct hotplug){ v, (uint8_t)c[1], d2 };
				assert_int_equal(pthread_create(&rm, NULL, remove_thread, &hp), 0);
				rm_started = true;
			}
		}
	}
	assert_int_equal(r, -ENOTCONN);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(path);
	if (rm_started)
		pthread_join(rm, NULL);
	vsp_get_stats(v, &st);
	fprintf(stderr, "host: %llu packets, %llu SRBs, %llu errors, %llu refused, "
		"%llu ring-full waits, %llu sleeps, %llu channels failed, %llu notifies; last: %s\n",
		(unsigned long long)st.packets, (unsigned long long)st.srbs,
		(unsigned long long)st.srb_errors, (unsigned long long)st.rejected,
		(unsigned long long)st.ring_full, (unsigned long long)st.sleeps,
		(unsigned long long)st.chan_failed, (unsigned long long)st.notifies,
		st.last_error);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("guest failed: status %#x (exit code = step)", status);
	assert_int_equal(st.chan_failed, 7);
	assert_true(st.ring_full > 0);
	assert_int_equal(st.channels_open, 0);
	vmbus_host_free(h);
	vsp_free(v);
	bdev_close(&d0->b);
	bdev_close(&d1->b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_processes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
