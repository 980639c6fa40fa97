/* vhd-alloc-stall IMAGE: 64 reader threads (queue depth 64) read 4 KiB
 * pieces of the allocated first half of a dynamic VHD while one writer
 * allocates new blocks in the second half (1 MiB into every 2 MiB block, a
 * flush every 16 blocks); prints the readers' latency percentiles.
 * Measures whether a block allocation stalls readers of other blocks
 * (bench/vhd-alloc.sh; issue 8: the metadata lock used to be held across
 * an allocation's I/O). */
#include "common/bdev.h"
#include "vhd/vhd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define READERS 64
#define SAMPLES (400000 / READERS)

struct reader {
	pthread_t thr;
	struct bdev *disk;
	uint64_t half;
	unsigned seed;
	int n;
	double lat[SAMPLES];
};

static int stop;

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void *reader(void *arg)
{
	struct reader *rd = arg;
	char buf[4096];

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED) && rd->n < SAMPLES) {
		uint64_t off = (uint64_t)(rand_r(&rd->seed) % (rd->half / 4096)) * 4096;
		double t = now_us();

		if (bdev_read(rd->disk, buf, off, sizeof(buf))) {
			fprintf(stderr, "vhd-alloc-stall: read: %s\n", bdev_last_error());
			exit(1);
		}
		rd->lat[rd->n++] = now_us() - t;
	}
	return NULL;
}

static int by_value(const void *x, const void *y)
{
	double a = *(const double *)x, c = *(const double *)y;

	return a < c ? -1 : a > c;
}

int main(int argc, char **argv)
{
	static struct reader rds[READERS];
	static double all[READERS * SAMPLES];
	struct bdev_err e = { 0 };
	struct bdev *disk;
	uint64_t half, off;
	char *w;
	double t0, wt;
	int blocks = 0, n = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: vhd-alloc-stall IMAGE\n");
		return 2;
	}
	disk = vhd_open(argv[1], NULL, &e);
	if (!disk) {
		fprintf(stderr, "vhd-alloc-stall: %s\n", e.msg);
		return 1;
	}
	half = disk->size / 2;
	for (int i = 0; i < READERS; i++) {
		rds[i].disk = disk;
		rds[i].half = half;
		rds[i].seed = (unsigned)i + 1;
		pthread_create(&rds[i].thr, NULL, reader, &rds[i]);
	}
	w = malloc(1 << 20);
	if (!w)
		return 1;
	memset(w, 7, 1 << 20);
	t0 = now_us();
	for (off = half; off + (1 << 20) <= disk->size; off += 2 << 20) {
		if (bdev_write(disk, w, off, 1 << 20, 0)) {
			fprintf(stderr, "vhd-alloc-stall: write: %s\n", bdev_last_error());
			return 1;
		}
		if (++blocks % 16 == 0)
			(void)bdev_flush(disk);
	}
	wt = now_us() - t0;
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < READERS; i++) {
		pthread_join(rds[i].thr, NULL);
		memcpy(all + n, rds[i].lat, sizeof(double) * (size_t)rds[i].n);
		n += rds[i].n;
	}
	free(w);
	if (!n)
		return 1;
	qsort(all, (size_t)n, sizeof(double), by_value);
	printf("writer: %d blocks in %.0f ms; reads %d: p50 %.1f p99 %.1f p99.9 %.1f max %.1f us\n",
	       blocks, wt / 1000, n, all[n / 2], all[(long)n * 99 / 100],
	       all[(long)n * 999 / 1000], all[n - 1]);
	return bdev_close(disk) ? 1 : 0;
}
