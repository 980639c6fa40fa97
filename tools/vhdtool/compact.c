/* vhdtool compact: reclaim empty blocks of a dynamic or differencing image
 * in place (vhd_compact) and report what was reclaimed. */
#include "vhdtool.h"

#include <errno.h>
#include <getopt.h>

#include "common/json.h"
#include "common/util.h"
#include "vhd/vhd.h"

static int run_compact(int argc, char **argv);
VHDTOOL_COMMAND(compact, .name = "compact",
	.usage = "compact [-p|--progress] [--output=human|json] IMAGE",
	.summary = "reclaim all-zero (dynamic) or empty (differencing) blocks in place",
	.run = run_compact)

static int run_compact(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "progress", no_argument, NULL, 'p' },
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	struct vt_progress p;
	struct vhd_compact_opts o = { .progress = vt_progress_cb, .opaque = &p };
	struct vhd_compact_stats st;
	struct bdev_err e = { 0 };
	bool show = false, json = false;
	char a[32], b[32], d[32];
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p", lo, NULL)) != -1) {
		if (c == 'p') {
			show = true;
			continue;
		}
		r = vt_shared_opt(c, optarg, NULL, &json);
		if (r <= 0)
			return r < 0 ? VT_EXIT_USAGE : vt_usage(&compact_cmd);
	}
	if (argc - optind != 1)
		return vt_usage(&compact_cmd);
	vt_catch_signals();
	vt_progress_init(&p, "compacting", show);
	r = vhd_compact(argv[optind], &o, &st, &e);
	vt_progress_end(&p);
	if (r == -ECANCELED) {
		vt_err(argv[optind], "interrupted; the image is intact and reads as before");
		return 1;
	}
	if (r) {
		vt_err(NULL, "%s", e.msg);
		return 1;
	}
	if (json) {
		struct json j;

		json_begin(&j, stdout);
		json_obj(&j);
		json_kv_str(&j, "filename", argv[optind]);
		json_kv_u64(&j, "blocks-before", st.blocks_before);
		json_kv_u64(&j, "blocks-dropped", st.blocks_dropped);
		json_kv_u64(&j, "blocks-moved", st.blocks_moved);
		json_kv_u64(&j, "file-size-before", st.size_before);
		json_kv_u64(&j, "file-size-after", st.size_after);
		json_end_obj(&j);
		json_finish(&j);
		return VT_EXIT_OK;
	}
	printf("%s: %u of %u blocks dropped, %u moved; file %s -> %s (%s reclaimed)\n",
	       argv[optind], st.blocks_dropped, st.blocks_before, st.blocks_moved,
	       util_fmt_size(st.size_before, a, sizeof(a)),
	       util_fmt_size(st.size_after, b, sizeof(b)),
	       util_fmt_size(st.size_before - st.size_after, d, sizeof(d)));
	return 0;
}
