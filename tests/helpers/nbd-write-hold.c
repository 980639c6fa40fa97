/* nbd-write-hold URI OFFSET LENGTH BYTE: connect to an NBD server, write
 * LENGTH bytes of BYTE at OFFSET without FUA or flush, print "written",
 * then stay connected (idle) until killed.  For tests that need a write
 * the server acknowledged but nobody flushed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnbd.h>

int main(int argc, char **argv)
{
	struct nbd_handle *h;
	size_t len;
	char *buf;

	if (argc != 5) {
		fprintf(stderr, "usage: nbd-write-hold URI OFFSET LENGTH BYTE\n");
		return 2;
	}
	len = strtoull(argv[3], NULL, 0);
	buf = malloc(len);
	h = nbd_create();
	if (!buf || !h || nbd_connect_uri(h, argv[1]) == -1) {
		fprintf(stderr, "nbd-write-hold: %s\n", nbd_get_error());
		return 1;
	}
	memset(buf, (int)strtol(argv[4], NULL, 0), len);
	if (nbd_pwrite(h, buf, len, strtoull(argv[2], NULL, 0), 0) == -1) {
		fprintf(stderr, "nbd-write-hold: %s\n", nbd_get_error());
		return 1;
	}
	printf("written\n");
	fflush(stdout);
	for (;;)
		pause();
}
