/* libFuzzer target: the VMBus channel manager (vmbus/channel.c) fed a
 * guest's control messages, with devices that read and answer packets on
 * the rings the guest opened (so ring memory the guest describes through
 * GPADLs is used for real).
 *
 * The partition is a 64-page memfd of which 60 pages are the guest's.
 * Each input starts connected (version 4.0, offers requested, two devices)
 * and is a list of records: kind u8, len u8, then len bytes.  kind % 4:
 * 0 a message, 1 signal relid byte[0], 2 rescind relid byte[0], 3 add a
 * device.  The memory's first pages come from the input's tail so that
 * rings have arbitrary contents.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmbus/vmbus.h"

#define PAGES 64

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n);

static int mem_fd = -1;
static uint8_t *mem;

static int f_send(void *opaque, const void *msg, size_t len)
{
	if (len > VMBUS_MAX_MSG_SIZE || len < 8)
		abort();
	return 0;
}

static void f_signal(void *opaque, uint32_t relid)
{
}

static int d_open(void *opaque, struct vmbus_chan *ch)
{
	return 0;
}

static void d_close(void *opaque, struct vmbus_chan *ch)
{
}

/* An echo device: every packet back as a completion. */
static void d_signal(void *opaque, struct vmbus_chan *ch)
{
	uint8_t buf[256];
	struct ring_pkt pkt;
	enum ring_status st;
	bool sig;

	for (int i = 0; i < 64; i++) {
		st = ring_read(vmbus_chan_in(ch), buf, sizeof(buf), &pkt);
		if (st == RING_EMPTY)
			break;
		if (st != RING_OK) {
			vmbus_chan_fail(ch);
			return;
		}
		struct ring_iov iov = { buf + pkt.payload_off, pkt.len - pkt.payload_off };
		st = ring_write(vmbus_chan_out(ch), RING_PKT_COMP, 0, pkt.trans_id, 0,
				&iov, 1, &sig);
		if (st == RING_E_INDEX) {
			vmbus_chan_fail(ch);
			return;
		}
	}
	(void)ring_commit(vmbus_chan_in(ch));
}

static const struct vmbus_dev_ops ops = { d_open, d_close, d_signal };
static const struct vmbus_guid t1 = VMBUS_GUID_SCSI, t2 = VMBUS_GUID_VSS;

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	struct vmbus_mgr_cfg cfg;
	struct vmbus_mgr *m;
	struct vmbus_msg_initiate_contact c = { { VMBUS_MSG_INITIATE_CONTACT, 0 },
						VMBUS_VERSION(4, 0), 0, 0, 0, 0 };
	struct vmbus_msg_hdr ro = { VMBUS_MSG_REQUESTOFFERS, 0 };
	size_t i = 0;

	if (mem_fd < 0) {
		mem_fd = memfd_create("fuzz-vmbus", 0);
		if (mem_fd < 0 || ftruncate(mem_fd, PAGES * 4096))
			abort();
		mem = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_SHARED,
			   mem_fd, 0);
		if (mem == MAP_FAILED)
			abort();
	}
	memset(mem, 0, 16 * 4096);
	memcpy(mem, in, n < 16 * 4096 ? n : 16 * 4096);

	cfg = (struct vmbus_mgr_cfg){ .mem_fd = mem_fd, .guest_pages = PAGES - 4,
				      .send = f_send, .signal = f_signal };
	if (vmbus_mgr_new(&cfg, &m))
		abort();
	vmbus_mgr_add_device(m, &t1, &t2, &ops, NULL);
	vmbus_mgr_add_device(m, &t2, &t1, &ops, NULL);
	if (vmbus_mgr_handle(m, &c, sizeof(c)) || vmbus_mgr_handle(m, &ro, sizeof(ro)))
		abort();
	while (i + 2 <= n) {
		uint8_t kind = in[i], len = in[i + 1];
		const uint8_t *p = in + i + 2;

		if ((size_t)len > n - i - 2)
			len = (uint8_t)(n - i - 2);
		switch (kind % 4) {
		case 0:
			if (vmbus_mgr_handle(m, p, len))
				abort();	/* the guest cannot make it fail */
			break;
		case 1:
			vmbus_mgr_signal(m, len ? p[0] : 0);
			break;
		case 2:
			vmbus_mgr_rescind(m, len ? p[0] : 0);
			break;
		case 3:
			vmbus_mgr_add_device(m, &t1, &t1, &ops, NULL);
			break;
		}
		i += 2 + (size_t)len;
	}
	vmbus_mgr_free(m);
	return 0;
}
