/* libFuzzer target: a PDU stream from an initiator, fed to the iSCSI
 * target through its real entry point, iscsi_serve_fd(), on one end of a
 * socketpair.  A 1 MiB raw file (in a private folder) is LUN 0.
 *
 * The first input byte picks a mode: odd = the stream starts after a
 * canned valid login (so the fuzzer reaches the full feature phase at
 * once), even = the stream is the whole conversation, login included.
 * A thread drains the target's answers so that it never blocks on a full
 * socket; the session ends at the end of the input.  Crashes, leaks, UB
 * and hangs are what the sanitizers and libFuzzer's timeout catch.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/bdev.h"
#include "iscsi/iscsi.h"
#include "scsi/scsi.h"

static struct scsi_target *fz_t;
static struct iscsi_srv *fz_s;
static char fz_dir[64], fz_img[128];

static void fz_cleanup(void)
{
	unlink(fz_img);
	rmdir(fz_dir);
}

static int fz_init(void)
{
	struct bdev_err e = { 0 };
	struct iscsi_opts o = { .target_name = "iqn.2024-01.local.vhdtool:fuzz",
				.login_ms = 2000, .stop_grace_ms = 100 };
	struct bdev *b;
	FILE *f;

	snprintf(fz_dir, sizeof(fz_dir), "/tmp/fuzz-iscsi.XXXXXX");
	if (!mkdtemp(fz_dir))
		return -1;
	snprintf(fz_img, sizeof(fz_img), "%s/lun0.img", fz_dir);
	f = fopen(fz_img, "w");
	if (!f || ftruncate(fileno(f), 1 << 20))
		return -1;
	fclose(f);
	atexit(fz_cleanup);
	b = bdev_file_open(fz_img, 0, &e);
	fz_t = scsi_target_new();
	if (!b || !fz_t || scsi_lun_add(fz_t, 0, b, 0))
		return -1;
	fz_s = iscsi_new(fz_t, &o, NULL);
	return fz_s ? 0 : -1;
}

/* A login from the security stage straight to full feature phase. */
static size_t canned_login(uint8_t *p)
{
	static const char keys[] =
		"InitiatorName=iqn.2024-01.fuzz:init\0SessionType=Normal\0"
		"TargetName=iqn.2024-01.local.vhdtool:fuzz\0AuthMethod=None\0"
		"HeaderDigest=None\0DataDigest=None\0InitialR2T=No\0"
		"ImmediateData=Yes\0MaxRecvDataSegmentLength=8192\0"
		"MaxBurstLength=65536\0FirstBurstLength=16384\0";
	size_t n = sizeof(keys) - 1, padded = (n + 3) & ~(size_t)3;

	memset(p, 0, 48 + padded);
	p[0] = 0x43;
	p[1] = 0x80 | 0 << 2 | 3;   /* T, CSG 0, NSG 3 */
	p[5] = (uint8_t)(n >> 16);
	p[6] = (uint8_t)(n >> 8);
	p[7] = (uint8_t)n;
	p[8] = 0x80;                /* ISID */
	memcpy(p + 48, keys, n);
	return 48 + padded;
}

static void *drain(void *arg)
{
	int fd = *(int *)arg;
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

struct serve_arg {
	int fd;
};

static void *serve(void *arg)
{
	struct serve_arg *a = arg;

	iscsi_serve_fd(fz_s, a->fd);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	uint8_t login[512];
	struct serve_arg sa;
	pthread_t st, dt;
	int sv[2];

	if (!inited) {
		if (fz_init()) {
			fprintf(stderr, "fuzz-iscsi-pdu: setup failed\n");
			abort();
		}
		inited = 1;
	}
	if (!size)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	sa.fd = sv[0];
	pthread_create(&st, NULL, serve, &sa);
	pthread_create(&dt, NULL, drain, &sv[1]);
	if (data[0] & 1) {
		size_t n = canned_login(login);

		if (write(sv[1], login, n) != (ssize_t)n)
			goto end;
	}
	for (size_t off = 1; off < size;) {
		ssize_t w = write(sv[1], data + off, size - off);

		if (w <= 0)
			break;
		off += (size_t)w;
	}
end:
	shutdown(sv[1], SHUT_WR);
	pthread_join(st, NULL);   /* the target closed sv[0] */
	pthread_join(dt, NULL);
	close(sv[1]);
	return 0;
}
