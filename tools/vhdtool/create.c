/* vhdtool create / snapshot */
#include "vhdtool.h"

#include <getopt.h>
#include <string.h>

#include "vhd/vhd.h"

static int do_create(const char *path, struct vhd_create_opts *o)
{
	struct bdev_err e = { 0 };

	if (vhd_create(path, o, &e)) {
		vt_err(NULL, "%s", e.msg);
		return 1;
	}
	return 0;
}

static int run_create(int argc, char **argv);
VHDTOOL_COMMAND(create, .name = "create",
	.usage = "create [-t fixed|dynamic] [--block-size N] [--force] IMAGE SIZE\n"
		 "create --parent PARENT IMAGE",
	.summary = "create a fixed, dynamic or differencing image",
	.run = run_create)

static int run_create(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "type", required_argument, NULL, 't' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "parent", required_argument, NULL, 'p' },
		{ "force", no_argument, NULL, 'f' },
		{ 0 }
	};
	struct vhd_create_opts o = { .type = VHD_TYPE_DYNAMIC };
	uint64_t v;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "t:b:p:f", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			if (!strcmp(optarg, "fixed"))
				o.type = VHD_TYPE_FIXED;
			else if (!strcmp(optarg, "dynamic"))
				o.type = VHD_TYPE_DYNAMIC;
			else {
				vt_err(NULL, "unknown type '%s' (fixed or dynamic)", optarg);
				return 2;
			}
			break;
		case 'b':
			if (!vt_parse_size("block size", optarg, &v))
				return 2;
			if (v > UINT32_MAX) {
				vt_err(NULL, "block size '%s' is too large", optarg);
				return 2;
			}
			o.block_size = (uint32_t)v;
			break;
		case 'p':
			o.parent = optarg;
			o.type = VHD_TYPE_DIFF;
			break;
		case 'f':
			o.overwrite = true;
			break;
		default:
			return vt_usage(&create_cmd);
		}
	}
	if (o.parent) {
		if (argc - optind != 1)
			return vt_usage(&create_cmd);
		return do_create(argv[optind], &o);
	}
	if (argc - optind != 2)
		return vt_usage(&create_cmd);
	if (!vt_parse_size("size", argv[optind + 1], &o.size))
		return 2;
	return do_create(argv[optind], &o);
}

static int run_snapshot(int argc, char **argv);
VHDTOOL_COMMAND(snapshot, .name = "snapshot",
	.usage = "snapshot IMAGE CHILD",
	.summary = "create a differencing child of IMAGE (same as create --parent)",
	.run = run_snapshot)

static int run_snapshot(int argc, char **argv)
{
	struct vhd_create_opts o = { .type = VHD_TYPE_DIFF };

	if (argc != 3 || argv[1][0] == '-')
		return vt_usage(&snapshot_cmd);
	o.parent = argv[1];
	return do_create(argv[2], &o);
}
