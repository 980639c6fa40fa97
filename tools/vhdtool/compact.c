/* vhdtool compact: reclaim empty blocks of a dynamic or differencing image
 * in place (vhd_compact) and report what was reclaimed. */
#include "vhdtool.h"

#include <errno.h>
#include <getopt.h>

#include "common/util.h"
#include "vhd/vhd.h"

static int run_compact(int argc, char **argv);
VHDTOOL_COMMAND(compact, .name = "compact",
	.usage = "compact [-p|--progress] IMAGE",
	.summary = "reclaim all-zero (dynamic) or empty (differencing) blocks in place",
	.run = run_compact)

static int run_compact(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "progress", no_argument, NULL, 'p' }, { 0 }
	};
	struct vt_progress p;
	struct vhd_compact_opts o = { .progress = vt_progress_cb, .opaque = &p };
	struct vhd_compact_stats st;
	struct bdev_err e = { 0 };
	bool show = false;
	char a[32], b[32], d[32];
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p", lo, NULL)) != -1) {
		if (c != 'p')
			return vt_usage(&compact_cmd);
		show = true;
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
	printf("%s: %u of %u blocks dropped, %u moved; file %s -> %s (%s reclaimed)\n",
	       argv[optind], st.blocks_dropped, st.blocks_before, st.blocks_moved,
	       util_fmt_size(st.size_before, a, sizeof(a)),
	       util_fmt_size(st.size_after, b, sizeof(b)),
	       util_fmt_size(st.size_before - st.size_after, d, sizeof(d)));
	return 0;
}
