/* vmbus-int: what the transport's two sides (host.c, guest.c) share.
 * Private to vmbus/.  The layout is documented in docs/vmbus-transport.md. */
#ifndef VMBUS_INT_H
#define VMBUS_INT_H

#include <stdint.h>

#include "vmbus/vmbus.h"

/* Event page: guest->host flags at 0, host->guest flags at 256; bit n of
 * the little-endian u64 word n / 64 is relid n (0 = message ring). */
#define XPORT_EV_G2H 0
#define XPORT_EV_H2G VMBUS_XPORT_FLAG_BYTES
#define XPORT_EV_WORDS (VMBUS_XPORT_FLAG_BYTES / 8)

/* Message packets: DATA_INBAND, flags 0, trans_id = message bytes. */
#define XPORT_MSG_PKT_MAX (RING_DESC_SIZE + VMBUS_MAX_MSG_SIZE)

/* Polling before sleeping on a doorbell: bounded (2-core machine). */
#define XPORT_SPIN_NS 50000

static inline void xport_flag_set(uint64_t *words, uint32_t bit)
{
	__atomic_fetch_or(&words[bit / 64], 1ull << (bit % 64), __ATOMIC_SEQ_CST);
}

static inline uint64_t xport_flag_take(uint64_t *words, uint32_t i)
{
	return __atomic_exchange_n(&words[i], 0, __ATOMIC_SEQ_CST);
}

#endif
