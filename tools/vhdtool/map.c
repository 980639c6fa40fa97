/* vhdtool map: allocation of a disk, like qemu-img map. */
#include "vhdtool.h"

#include <getopt.h>

static int run_map(int argc, char **argv);
VHDTOOL_COMMAND(map, .name = "map",
	.usage = "map [--json] IMAGE",
	.summary = "show which ranges hold data, read as zeros, and in which layer",
	.run = run_map)

static void emit(bool json, bool *first, uint64_t start, uint64_t len,
		 const struct bdev_status *st)
{
	bool data = st->flags & BDEV_ST_DATA, zero = st->flags & BDEV_ST_ZERO;
	bool present = st->flags & BDEV_ST_ALLOC;

	if (json) {
		printf("%s{ \"start\": %llu, \"length\": %llu, \"depth\": %d, "
		       "\"present\": %s, \"zero\": %s, \"data\": %s}",
		       *first ? "[" : ",\n", (unsigned long long)start,
		       (unsigned long long)len, st->depth, present ? "true" : "false",
		       zero ? "true" : "false", data ? "true" : "false");
	} else {
		if (*first)
			printf("%-20s %-20s %5s  %s\n", "Offset", "Length", "Depth", "State");
		printf("0x%-18llx 0x%-18llx %5d  %s\n", (unsigned long long)start,
		       (unsigned long long)len, st->depth,
		       data ? "data" : present ? "zero" : "unallocated (zero)");
	}
	*first = false;
}

static int run_map(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' }, { 0 }
	};
	struct bdev_status cur = { 0 }, st;
	uint64_t off = 0, start = 0;
	bool json = false, first = true;
	struct bdev *b;
	int c, rc = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "j", lo, NULL)) != -1) {
		if (c != 'j')
			return vt_usage(&map_cmd);
		json = true;
	}
	if (argc - optind != 1)
		return vt_usage(&map_cmd);
	b = vt_open(argv[optind], VT_OPEN_RDONLY | VT_OPEN_RAW_OK);
	if (!b)
		return 1;
	while (off < b->size) {
		if (bdev_block_status(b, off, b->size - off, &st)) {
			vt_bdev_err(b);
			rc = 1;
			break;
		}
		/* Merge extents that look the same. */
		if (off > start && (st.flags != cur.flags || st.depth != cur.depth)) {
			emit(json, &first, start, off - start, &cur);
			start = off;
		}
		cur = st;
		off += st.length;
	}
	if (!rc && off > start)
		emit(json, &first, start, off - start, &cur);
	if (json && !rc)
		printf("%s]\n", first ? "[" : "");
	bdev_close(b);
	return rc;
}
