/* vhdtool map: allocation of a disk, like qemu-img map. */
#include "vhdtool.h"

#include <getopt.h>

#include "common/json.h"

static int run_map(int argc, char **argv);
VHDTOOL_COMMAND(map, .name = "map",
	.usage = "map [-f vpc|raw] [--output=human|json] IMAGE",
	.summary = "show which ranges hold data, read as zeros, and in which layer",
	.run = run_map)

/* j: the JSON document (NULL: a table). */
static void emit(struct json *j, bool *first, uint64_t start, uint64_t len,
		 const struct bdev_status *st)
{
	bool data = st->flags & BDEV_ST_DATA, zero = st->flags & BDEV_ST_ZERO;
	bool present = st->flags & BDEV_ST_ALLOC;

	if (j) {
		json_obj(j);
		json_kv_u64(j, "start", start);
		json_kv_u64(j, "length", len);
		json_key(j, "depth");
		json_i64(j, st->depth);
		json_kv_bool(j, "present", present);
		json_kv_bool(j, "zero", zero);
		json_kv_bool(j, "data", data);
		json_end_obj(j);
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
		VT_FORMAT_LONGOPT,
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	unsigned flags = VT_OPEN_RDONLY | VT_OPEN_RAW_OK;
	struct bdev_status cur = { 0 }, st;
	uint64_t off = 0, start = 0;
	bool json = false, first = true;
	struct json doc, *j = NULL;
	struct bdev *b;
	int c, r, rc = VT_EXIT_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jf:", lo, NULL)) != -1) {
		if (c == 'j')
			c = VT_OPT_JSON;
		r = vt_shared_opt(c, optarg, &flags, &json);
		if (r <= 0)
			return r < 0 ? VT_EXIT_USAGE : vt_usage(&map_cmd);
	}
	if (argc - optind != 1)
		return vt_usage(&map_cmd);
	b = vt_open(argv[optind], flags);
	if (!b)
		return VT_EXIT_FAIL;
	if (json) {
		j = &doc;
		json_begin(j, stdout);
		json_arr(j);
	}
	while (off < b->size) {
		if (bdev_block_status(b, off, b->size - off, &st)) {
			vt_bdev_err(b);
			rc = VT_EXIT_FAIL;
			break;
		}
		/* Merge extents that look the same. */
		if (off > start && (st.flags != cur.flags || st.depth != cur.depth)) {
			emit(j, &first, start, off - start, &cur);
			start = off;
		}
		cur = st;
		off += st.length;
	}
	if (rc == VT_EXIT_OK && off > start)
		emit(j, &first, start, off - start, &cur);
	/* A failed map leaves its document unfinished (and exits 1). */
	if (j && rc == VT_EXIT_OK) {
		json_end_arr(j);
		json_finish(j);
	}
	bdev_close(b);
	return rc;
}
