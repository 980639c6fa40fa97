/* iscsi PDU framing: CRC32C digests, buffered input of headers and data
 * segments, and whole-PDU output with padding and digests.
 *
 * Input has one reader (the connection's reader thread); headers are
 * copied out of the input buffer before anyone looks at them, so a field
 * is read once.  Output may come from the reader (login, R2T, NOP-In,
 * Reject, TMF and Logout responses) and from the writer thread (Data-In,
 * SCSI Response): c->wlock serialises them, and StatSN is taken under it
 * so that responses leave in StatSN order. */
#include "iscsi-int.h"

#include <errno.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include "common/util.h"

/* ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) ---- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* crc is the running value (start with 0); returns the finished CRC of
 * everything fed so far, ready to chain. */
uint32_t iscsi_crc32c(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (n >= 8) {   /* slicing by 8 */
		uint32_t lo = util_get_le32(b) ^ crc, hi = util_get_le32(b + 4);

		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
		      crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
		b += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *b++) & 0xff];
	return ~crc;
}

/* ---- input ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void iscsi_set_deadline(struct iscsi_conn *c, unsigned ms)
{
	c->deadline = ms ? now_ms() + ms : 0;
}

/* Receive up to n bytes; with a deadline set (login), input that has not
 * arrived by then is -ETIMEDOUT however slowly it trickles in. */
static ssize_t recv_some(struct iscsi_conn *c, void *buf, size_t n)
{
	for (;;) {
		ssize_t r;

		if (c->deadline) {
			uint64_t now = now_ms();
			struct pollfd pf = { .fd = c->fd, .events = POLLIN };

			if (now >= c->deadline)
				return -ETIMEDOUT;
			r = poll(&pf, 1, (int)(c->deadline - now));
			if (r < 0 && errno == EINTR)
				continue;
			if (r == 0)
				return -ETIMEDOUT;
		}
		r = recv(c->fd, buf, n, 0);

		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

int iscsi_in_read(struct iscsi_conn *c, void *dst, size_t n)
{
	uint8_t *d = dst;
	bool started = false;

	while (n) {
		size_t have = c->rend - c->rpos;
		ssize_t r;

		if (have) {
			size_t m = UTIL_MIN(have, n);

			if (d) {
				memcpy(d, c->rbuf + c->rpos, m);
				d += m;
			}
			c->rpos += m;
			n -= m;
			started = true;
			continue;
		}
		if (d && n >= ISCSI_RBUF_SIZE / 2) {
			r = recv_some(c, d, n);
			if (r > 0) {
				d += r;
				n -= (size_t)r;
			}
		} else {
			c->rpos = c->rend = 0;
			r = recv_some(c, c->rbuf, ISCSI_RBUF_SIZE);
			if (r > 0)
				c->rend = (size_t)r;
		}
		if (r == 0)
			return started ? -EPIPE : -ENODATA;
		if (r < 0)
			return (int)r;
		started = true;
	}
	return 0;
}

int iscsi_read_header(struct iscsi_conn *c, struct iscsi_bhs *bhs,
		      uint8_t *ahs, size_t *ahs_len)
{
	uint8_t dig[4];
	size_t alen;
	int r = iscsi_in_read(c, bhs, sizeof(*bhs));

	if (r)
		return r;
	alen = (size_t)bhs->ahs_len * 4;   /* at most 1020 */
	*ahs_len = alen;
	if (alen && (r = iscsi_in_read(c, ahs, alen)))
		return r == -ENODATA ? -EPIPE : r;
	if (c->hdigest) {
		uint32_t crc;

		if ((r = iscsi_in_read(c, dig, 4)))
			return r == -ENODATA ? -EPIPE : r;
		crc = iscsi_crc32c(0, bhs, sizeof(*bhs));
		crc = iscsi_crc32c(crc, ahs, alen);
		if (util_get_le32(dig) != crc)
			return iscsi_proto_error(c, "header digest mismatch");
	}
	return 0;
}

int iscsi_read_data_to(struct iscsi_conn *c, void *dst, uint32_t dlen)
{
	uint8_t tail[8];
	uint32_t pad = iscsi_pad4(dlen);
	int r;

	if (!dlen)
		return 0;
	if ((r = iscsi_in_read(c, dst, dlen)) ||
	    (r = iscsi_in_read(c, tail, pad + (c->ddigest ? 4 : 0))))
		return r == -ENODATA ? -EPIPE : r;
	if (c->ddigest) {
		uint32_t crc = iscsi_crc32c(0, dst, dlen);

		crc = iscsi_crc32c(crc, tail, pad);
		if (util_get_le32(tail + pad) != crc)
			return iscsi_proto_error(c, "data digest mismatch");
	}
	return 0;
}

int iscsi_read_data(struct iscsi_conn *c, uint32_t dlen)
{
	if (dlen + 1 > c->rx_size)   /* callers checked dlen <= mrdsl_rx */
		return -EOVERFLOW;
	c->rx[dlen] = 0;             /* text is always terminated */
	return iscsi_read_data_to(c, c->rx, dlen);
}

/* ---- output ---- */

static int send_all(int fd, struct iovec *iov, int n)
{
	struct msghdr m = { 0 };

	m.msg_iov = iov;
	m.msg_iovlen = (size_t)n;
	while (m.msg_iovlen) {
		ssize_t r = sendmsg(fd, &m, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (m.msg_iovlen && (size_t)r >= m.msg_iov->iov_len) {
			r -= (ssize_t)m.msg_iov->iov_len;
			m.msg_iov++;
			m.msg_iovlen--;
		}
		if (m.msg_iovlen) {
			m.msg_iov->iov_base = (uint8_t *)m.msg_iov->iov_base + r;
			m.msg_iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

int iscsi_send_pdu_locked(struct iscsi_conn *c, void *bhs,
			  const struct iovec *data, int n)
{
	static const uint8_t zeros[4];
	struct iovec iov[8];
	uint8_t hd[4], dd[4];
	uint32_t dlen = iscsi_dlen(bhs), pad = iscsi_pad4(dlen);
	int k = 0, r;

	if (c->wdead)
		return -EPIPE;
	if (n > 4)
		return -EINVAL;
	iov[k++] = (struct iovec){ bhs, ISCSI_BHS_LEN };
	if (c->hdigest) {
		util_put_le32(hd, iscsi_crc32c(0, bhs, ISCSI_BHS_LEN));
		iov[k++] = (struct iovec){ hd, 4 };
	}
	if (dlen) {
		uint32_t crc = 0;

		for (int i = 0; i < n; i++) {
			iov[k++] = data[i];
			if (c->ddigest)
				crc = iscsi_crc32c(crc, data[i].iov_base, data[i].iov_len);
		}
		if (pad)
			iov[k++] = (struct iovec){ (void *)zeros, pad };
		if (c->ddigest) {
			crc = iscsi_crc32c(crc, zeros, pad);
			util_put_le32(dd, crc);
			iov[k++] = (struct iovec){ dd, 4 };
		}
	}
	r = send_all(c->fd, iov, k);
	if (r)
		c->wdead = true;
	return r;
}

int iscsi_send_pdu(struct iscsi_conn *c, void *bhs, const struct iovec *data,
		   int n)
{
	int r;

	pthread_mutex_lock(&c->wlock);
	r = iscsi_send_pdu_locked(c, bhs, data, n);
	pthread_mutex_unlock(&c->wlock);
	return r;
}

uint32_t iscsi_max_cmd_sn(struct iscsi_conn *c)
{
	uint32_t m = c->exp_cmd_sn - 1 + ISCSI_CMD_WINDOW - c->n_win;

	if (iscsi_sn_lt(c->max_cmd_sn, m))
		c->max_cmd_sn = m;
	return c->max_cmd_sn;
}

void iscsi_fill_sn(struct iscsi_conn *c, uint32_t *exp, uint32_t *max)
{
	pthread_mutex_lock(&c->mu);
	*exp = htobe32(c->exp_cmd_sn);
	*max = htobe32(iscsi_max_cmd_sn(c));
	pthread_mutex_unlock(&c->mu);
}

int iscsi_send_reject(struct iscsi_conn *c, const struct iscsi_bhs *hdr,
		      uint8_t reason)
{
	struct iscsi_reject rj = { .op = ISCSI_OP_REJECT, .flags = 0x80,
				   .reason = reason, .tag = ISCSI_RSVD_TAG };
	struct iovec iov = { (void *)hdr, ISCSI_BHS_LEN };
	int r;

	iscsi_set_dlen(&rj, ISCSI_BHS_LEN);
	pthread_mutex_lock(&c->wlock);
	pthread_mutex_lock(&c->mu);
	rj.stat_sn = htobe32(c->stat_sn++);
	rj.exp_cmd_sn = htobe32(c->exp_cmd_sn);
	rj.max_cmd_sn = htobe32(iscsi_max_cmd_sn(c));
	pthread_mutex_unlock(&c->mu);
	r = iscsi_send_pdu_locked(c, &rj, &iov, 1);
	pthread_mutex_unlock(&c->wlock);
	return r;
}
