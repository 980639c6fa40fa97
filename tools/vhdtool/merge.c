/* vhdtool merge: fold a differencing image into its parent or an ancestor
 * (vhd_merge), then remove the merged files unless --keep. */
#include "vhdtool.h"

#include <errno.h>
#include <getopt.h>

#include "common/util.h"
#include "vhd/vhd.h"

static int run_merge(int argc, char **argv);
VHDTOOL_COMMAND(merge, .name = "merge",
	.usage = "merge [--into ANCESTOR] [--keep] [--force] [-p|--progress] CHILD",
	.summary = "merge a differencing image into its parent (or an ancestor further up)",
	.run = run_merge)

static int run_merge(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "into", required_argument, NULL, 'i' },
		{ "keep", no_argument, NULL, 'k' },
		{ "force", no_argument, NULL, 'f' },
		{ "progress", no_argument, NULL, 'p' },
		{ 0 }
	};
	struct vt_progress p;
	struct vhd_merge_opts o = { .progress = vt_progress_cb, .opaque = &p };
	struct vhd_merge_stats st;
	struct bdev_err e = { 0 };
	bool show = false;
	char sz[32];
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:kfp", lo, NULL)) != -1) {
		switch (c) {
		case 'i': o.into = optarg; break;
		case 'k': o.keep = true; break;
		case 'f': o.force = true; break;
		case 'p': show = true; break;
		default: return vt_usage(&merge_cmd);
		}
	}
	if (argc - optind != 1)
		return vt_usage(&merge_cmd);
	vt_catch_signals();
	vt_progress_init(&p, "merging", show);
	r = vhd_merge(argv[optind], &o, &st, &e);
	vt_progress_end(&p);
	if (r == -ECANCELED) {
		vt_err(argv[optind], "interrupted; the chain reads as before: run the merge again to complete it");
		return 1;
	}
	if (r) {
		vt_err(NULL, "%s", e.msg);
		return 1;
	}
	printf("%s: merged %d layer%s into %s (%s written)%s%s\n", argv[optind],
	       st.layers, st.layers == 1 ? "" : "s", st.into,
	       util_fmt_size(st.bytes, sz, sizeof(sz)),
	       st.grown ? "; the ancestor was grown to the child's size" :
	       st.shrunk ? "; the ancestor was cut to the child's size" : "",
	       st.removed ? "; merged files removed" : "");
	return 0;
}
