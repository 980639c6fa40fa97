/* vhdtool merge: fold a differencing image into its parent or an ancestor
 * (vhd_merge), then remove the merged files unless --keep. */
#include "vhdtool.h"

#include <errno.h>
#include <getopt.h>

#include "common/json.h"
#include "common/util.h"
#include "vhd/vhd.h"

static int run_merge(int argc, char **argv);
VHDTOOL_COMMAND(merge, .name = "merge",
	.usage = "merge [--into ANCESTOR] [--keep] [--force] [-p|--progress] [--output=human|json] CHILD",
	.summary = "merge a differencing image into its parent (or an ancestor further up)",
	.run = run_merge)

static int run_merge(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "into", required_argument, NULL, 'i' },
		{ "keep", no_argument, NULL, 'k' },
		{ "force", no_argument, NULL, 'f' },
		{ "progress", no_argument, NULL, 'p' },
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	struct vt_progress p;
	struct vhd_merge_opts o = { .progress = vt_progress_cb, .opaque = &p };
	struct vhd_merge_stats st;
	struct vhd_compact_stats cs = { 0 };
	struct bdev_err e = { 0 };
	bool show = false, json = false;
	char sz[32];
	int c, r;

	optind = 1;
	/* No -f: that is a source format elsewhere (qemu-img); force is
	 * --force only. */
	while ((c = getopt_long(argc, argv, "i:kp", lo, NULL)) != -1) {
		switch (c) {
		case 'i': o.into = optarg; break;
		case 'k': o.keep = true; break;
		case 'f': o.force = true; break;
		case 'p': show = true; break;
		default:
			r = vt_shared_opt(c, optarg, NULL, &json);
			if (r <= 0)
				return r < 0 ? VT_EXIT_USAGE : vt_usage(&merge_cmd);
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
	/* A shrunk ancestor keeps its dropped blocks' space until compacted
	 * (check would report it as leaked): give it back, as resize does. */
	if (st.shrunk && vhd_compact(st.into, NULL, &cs, &e)) {
		vt_err(NULL, "merged, but compacting %s failed: %s", st.into, e.msg);
		return VT_EXIT_FAIL;
	}
	if (json) {
		struct json j;

		json_begin(&j, stdout);
		json_obj(&j);
		json_kv_str(&j, "filename", argv[optind]);
		json_kv_str(&j, "into", st.into);
		json_kv_u64(&j, "layers", (uint64_t)st.layers);
		json_kv_u64(&j, "bytes-written", st.bytes);
		json_kv_bool(&j, "grown", st.grown);
		json_kv_bool(&j, "shrunk", st.shrunk);
		json_kv_u64(&j, "files-removed", (uint64_t)st.removed);
		if (st.shrunk) {
			json_kv_u64(&j, "file-size-before-compact", cs.size_before);
			json_kv_u64(&j, "file-size-after", cs.size_after);
		}
		json_end_obj(&j);
		json_finish(&j);
		return VT_EXIT_OK;
	}
	printf("%s: merged %d layer%s into %s (%s written)%s%s\n", argv[optind],
	       st.layers, st.layers == 1 ? "" : "s", st.into,
	       util_fmt_size(st.bytes, sz, sizeof(sz)),
	       st.grown ? "; the ancestor was grown to the child's size" :
	       st.shrunk ? "; the ancestor was cut to the child's size" : "",
	       st.removed ? "; merged files removed" : "");
	return 0;
}
