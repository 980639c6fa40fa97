/* storvsc-client: the guest side of a synthetic SCSI controller, in its own
 * process, attached to `vmm-mini host` through the vmbus transport
 * (tests/unit/storvsc.c does the protocol).
 *
 *   storvsc-client SOCKET scan                      list LUNs (lun size)
 *   storvsc-client SOCKET verify LUN SEED MB        write a pattern, read back
 *   storvsc-client SOCKET check LUN SEED MB         read back only
 *   storvsc-client SOCKET hotplug CTL IMAGE         add IMAGE as LUN 5 through
 *                         the control socket, I/O on it, remove it while I/O runs
 *   storvsc-client SOCKET bench LUN MODE BS QD SECONDS [CPU]
 *                         MODE randread|randwrite|read; prints one line:
 *                         iops=.. mbps=.. host_cpu_us=.. client_cpu_us=..
 *
 * Options before SOCKET: --subchannels N.  Exit 0 on success, 1 with a
 * message on stderr otherwise.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/storvsc.h"

static struct svc *s;

static void die(const char *what)
{
	fprintf(stderr, "storvsc-client: %s%s%s\n", what, s ? ": " : "", s ? svc_error(s) : "");
	exit(1);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint8_t pat(unsigned seed, uint64_t off)
{
	return (uint8_t)((((off + 7) * 2654435761u) >> 11) + seed * 131 + 1) | 1;
}

static void rw16(uint8_t *cdb, bool wr, uint64_t lba, uint32_t blocks)
{
	memset(cdb, 0, 16);
	cdb[0] = wr ? 0x8A : 0x88;
	for (int i = 0; i < 8; i++)
		cdb[2 + i] = (uint8_t)(lba >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		cdb[10 + i] = (uint8_t)(blocks >> (24 - 8 * i));
}

/* TEST UNIT READY until the unit attentions are gone. */
static void ready(uint8_t lun)
{
	uint8_t tur[6] = { 0 };
	struct svc_req r;

	for (int i = 0; i < 5; i++) {
		if (svc_cmd(s, lun, tur, 6, VSP_DATA_NONE, NULL, 0, &r))
			die("TEST UNIT READY");
		if (r.srb_status == VSP_SRB_SUCCESS)
			return;
	}
	fprintf(stderr, "storvsc-client: LUN %u not ready (srb %#x)\n", lun, r.srb_status);
	exit(1);
}

/* REPORT LUNS; fills luns, returns the count. */
static int report_luns(uint8_t *luns, int max)
{
	uint8_t *buf = svc_alloc(s, 4096);
	uint8_t rl[12] = { 0xA0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0 };
	struct svc_req r;
	int n;

	if (svc_cmd(s, 0, rl, 12, VSP_DATA_IN, buf, 4096, &r) || r.srb_status != VSP_SRB_SUCCESS)
		die("REPORT LUNS");
	n = (int)((uint32_t)buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3]) / 8;
	for (int i = 0; i < n && i < max; i++)
		luns[i] = buf[8 + 8 * i + 1];
	return n;
}

static uint64_t capacity(uint8_t lun)
{
	uint8_t *buf = svc_alloc(s, 4096);
	uint8_t rc16[16] = { 0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 };
	uint8_t inq[6] = { 0x12, 0, 0, 0, 96, 0 };
	struct svc_req r;
	uint64_t last = 0;

	if (svc_cmd(s, lun, inq, 6, VSP_DATA_IN, buf, 96, &r) || r.srb_status != VSP_SRB_SUCCESS ||
	    (buf[0] & 0x1f) != 0)
		die("INQUIRY");
	ready(lun);
	if (svc_cmd(s, lun, rc16, 16, VSP_DATA_IN, buf, 32, &r) || r.srb_status != VSP_SRB_SUCCESS)
		die("READ CAPACITY(16)");
	for (int k = 0; k < 8; k++)
		last = last << 8 | buf[k];
	return (last + 1) * ((uint32_t)buf[8] << 24 | buf[9] << 16 | buf[10] << 8 | buf[11]);
}

/* Write (if wr) then read back MB MiB of pattern SEED at QD 32, 64 KiB
 * requests spread over the channels. */
static void pattern(uint8_t lun, unsigned seed, uint64_t mb, bool wr)
{
	enum { QD = 32, BS = 64 << 10 };
	struct svc_req reqs[QD];
	uint8_t *bufs[QD];
	uint64_t total = mb << 20, offs[QD];

	for (int i = 0; i < QD; i++)
		bufs[i] = svc_alloc(s, BS);
	for (int pass = wr ? 0 : 1; pass < 2; pass++) {
		uint64_t next = 0, done = 0;

		memset(reqs, 0, sizeof(reqs));
		while (done < total) {
			for (int i = 0; i < QD && next < total; i++) {
				struct svc_req *r = &reqs[i];

				if (r->cdb_len && !r->done)
					continue;
				if (r->cdb_len)
					continue;
				memset(r, 0, sizeof(*r));
				rw16(r->cdb, pass == 0, next / 512, BS / 512);
				r->cdb_len = 16;
				r->lun = lun;
				r->data_in = pass == 0 ? VSP_DATA_OUT : VSP_DATA_IN;
				r->buf = bufs[i];
				r->len = BS;
				offs[i] = next;
				if (pass == 0)
					for (uint32_t k = 0; k < BS; k++)
						bufs[i][k] = pat(seed, next + k);
				if (svc_submit(s, (int)(next / BS) % svc_nchan(s), r))
					die("submit");
				next += BS;
			}
			if (svc_poll(s, 5000) < 0)
				die("poll");
			for (int i = 0; i < QD; i++) {
				struct svc_req *r = &reqs[i];

				if (!r->cdb_len || !r->done)
					continue;
				if (r->srb_status != VSP_SRB_SUCCESS || r->xfer != BS) {
					fprintf(stderr, "storvsc-client: I/O at %llu: srb %#x scsi %#x sense %02x/%02x\n",
						(unsigned long long)offs[i], r->srb_status,
						r->scsi_status, r->sense[2], r->sense[12]);
					exit(1);
				}
				if (pass == 1)
					for (uint32_t k = 0; k < BS; k++)
						if (bufs[i][k] != pat(seed, offs[i] + k)) {
							fprintf(stderr, "storvsc-client: data differs at %llu\n",
								(unsigned long long)(offs[i] + k));
							exit(1);
						}
				r->cdb_len = 0;
				done += BS;
			}
		}
	}
}

static int ctl(const char *path, const char *req, char *ans, size_t cap)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ssize_t n, got = 0;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -1;
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		return -1;
	while ((size_t)got < cap - 1 && (n = read(fd, ans + got, cap - 1 - (size_t)got)) > 0) {
		got += n;
		if (ans[got - 1] == '\n')
			break;
	}
	ans[got] = 0;
	close(fd);
	return 0;
}

static void wait_rescan(int before)
{
	for (int i = 0; i < 250 && svc_rescans(s) == before; i++)
		svc_poll(s, 20);
	if (svc_rescans(s) == before)
		die("no ENUMERATE_BUS / REMOVE_DEVICE from the host");
}

static void hotplug(const char *ctlp, const char *image)
{
	char req[1200], ans[4096];
	uint8_t luns[64];
	int rs = svc_rescans(s), n;

	snprintf(req, sizeof(req), "{\"cmd\":\"disk-add\",\"path\":\"%s\",\"lun\":5}\n", image);
	if (ctl(ctlp, req, ans, sizeof(ans)) || !strstr(ans, "\"ok\""))
		die(ans);
	wait_rescan(rs);
	n = report_luns(luns, 64);
	if (n < 2 || luns[n - 1] != 5)
		die("REPORT LUNS after the add does not list LUN 5");
	(void)capacity(5);
	pattern(5, 9, 4, true);
	/* remove while I/O runs: requests succeed or get INVALID_LUN */
	enum { QD = 64 };
	struct svc_req reqs[QD];
	uint8_t *buf = svc_alloc(s, 4096);
	int gone = 0, ok = 0;
	rs = svc_rescans(s);
	for (int i = 0; i < QD; i++) {
		memset(&reqs[i], 0, sizeof(reqs[i]));
		rw16(reqs[i].cdb, false, (uint64_t)i * 8, 8);
		reqs[i].cdb_len = 16;
		reqs[i].lun = 5;
		reqs[i].data_in = VSP_DATA_IN;
		reqs[i].buf = buf;
		reqs[i].len = 4096;
		if (svc_submit(s, i % svc_nchan(s), &reqs[i]))
			die("submit");
	}
	if (ctl(ctlp, "{\"cmd\":\"disk-remove\",\"lun\":5}\n", ans, sizeof(ans)) ||
	    !strstr(ans, "\"ok\""))
		die(ans);
	while (svc_inflight(s))
		if (svc_poll(s, 5000) <= 0)
			die("requests lost across the remove");
	for (int i = 0; i < QD; i++) {
		if (reqs[i].srb_status == VSP_SRB_SUCCESS)
			ok++;
		else if (reqs[i].srb_status == VSP_SRB_INVALID_LUN)
			gone++;
		else
			die("unexpected status across the remove");
	}
	wait_rescan(rs);
	struct svc_req r;
	uint8_t tur[6] = { 0 };
	if (svc_cmd(s, 5, tur, 6, VSP_DATA_NONE, NULL, 0, &r) || r.srb_status != VSP_SRB_INVALID_LUN)
		die("LUN 5 still answers after its removal");
	/* errors as JSON */
	if (ctl(ctlp, "{\"cmd\":\"disk-remove\",\"lun\":5}\n", ans, sizeof(ans)) || !strstr(ans, "\"error\""))
		die("removing an absent LUN did not fail");
	if (ctl(ctlp, "not json\n", ans, sizeof(ans)) || !strstr(ans, "\"error\""))
		die("bad JSON did not fail");
	printf("hotplug ok: %d completed, %d saw the LUN gone\n", ok, gone);
}

static double cpu_us(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void bench(uint8_t lun, const char *mode, uint32_t bs, int qd, double secs)
{
	struct svc_req *reqs = calloc((size_t)qd, sizeof(*reqs));
	uint8_t **bufs = calloc((size_t)qd, sizeof(*bufs));
	uint64_t size = capacity(lun), blocks = size / bs, seq = 0, n = 0;
	bool wr = !strcmp(mode, "randwrite"), rnd = strncmp(mode, "rand", 4) == 0;
	unsigned x = 88172645;
	double t0, c0 = cpu_us(RUSAGE_SELF), t;

	for (int i = 0; i < qd; i++) {
		bufs[i] = svc_alloc(s, bs);
		if (!bufs[i])
			die("guest memory");
		memset(bufs[i], 0x5a, bs);
	}
	t0 = now();
	for (int i = 0; i < qd; i++) {
		struct svc_req *r = &reqs[i];

		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		uint64_t b = rnd ? x % blocks : seq++ % blocks;
		rw16(r->cdb, wr, b * bs / 512, bs / 512);
		r->cdb_len = 16;
		r->lun = lun;
		r->data_in = wr ? VSP_DATA_OUT : VSP_DATA_IN;
		r->buf = bufs[i];
		r->len = bs;
		if (svc_submit(s, i % svc_nchan(s), r))
			die("submit");
	}
	while ((t = now()) - t0 < secs) {
		if (svc_poll(s, 5000) <= 0)
			die("poll");
		for (int i = 0; i < qd; i++) {
			struct svc_req *r = &reqs[i];

			if (!r->done)
				continue;
			if (r->srb_status != VSP_SRB_SUCCESS)
				die("I/O error");
			n++;
			x ^= x << 13; x ^= x >> 17; x ^= x << 5;
			uint64_t b = rnd ? x % blocks : seq++ % blocks;
			rw16(r->cdb, wr, b * bs / 512, bs / 512);
			if (svc_submit(s, i % svc_nchan(s), r))
				die("submit");
		}
	}
	while (svc_inflight(s))
		if (svc_poll(s, 5000) <= 0)
			die("drain");
	t = now() - t0;
	printf("iops=%.0f mbps=%.1f client_cpu_us_per_req=%.2f requests=%llu\n",
	       (double)n / t, (double)n * bs / t / 1e6, (cpu_us(RUSAGE_SELF) - c0) / (double)n,
	       (unsigned long long)n);
}

int main(int argc, char **argv)
{
	struct svc_opts o = { 0 };
	int i = 1;

	if (i + 1 < argc && !strcmp(argv[i], "--subchannels")) {
		o.subchannels = atoi(argv[i + 1]);
		i += 2;
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: storvsc-client [--subchannels N] SOCKET scan|verify|check|hotplug|bench ...\n");
		return 2;
	}
	const char *sock = argv[i], *cmd = argv[i + 1];
	char **a = argv + i + 2;
	int na = argc - i - 2;

	if (!strcmp(cmd, "bench") && na >= 6) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(atoi(a[5]), &set);
		(void)sched_setaffinity(0, sizeof(set), &set);
	}
	if (svc_attach(sock, &o, &s))
		die("attach");
	if (!strcmp(cmd, "scan")) {
		uint8_t luns[64];
		int n = report_luns(luns, 64);

		printf("version=%#x channels=%d max_transfer=%u\n", svc_version(s), svc_nchan(s),
		       svc_props(s)->max_transfer_bytes);
		for (int k = 0; k < n && k < 64; k++)
			printf("lun %u %llu\n", luns[k], (unsigned long long)capacity(luns[k]));
	} else if ((!strcmp(cmd, "verify") || !strcmp(cmd, "check")) && na == 3) {
		uint8_t lun = (uint8_t)atoi(a[0]);

		(void)capacity(lun);
		pattern(lun, (unsigned)atoi(a[1]), (uint64_t)atoll(a[2]), cmd[0] == 'v');
		printf("%s ok\n", cmd);
	} else if (!strcmp(cmd, "hotplug") && na == 2) {
		hotplug(a[0], a[1]);
	} else if (!strcmp(cmd, "bench") && na >= 5) {
		bench((uint8_t)atoi(a[0]), a[1], (uint32_t)atoi(a[2]), atoi(a[3]), atof(a[4]));
	} else {
		fprintf(stderr, "storvsc-client: bad command\n");
		return 2;
	}
	if (svc_detach(s))
		die("detach");
	return 0;
}
