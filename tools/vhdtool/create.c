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
	.usage = "create [-f vpc] [-t fixed|dynamic] [--block-size N] [--force] IMAGE SIZE\n"
		 "create [-f vpc] --parent PARENT [--force] IMAGE",
	.summary = "create a fixed, dynamic or differencing image",
	.run = run_create)

static int run_create(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "type", required_argument, NULL, 't' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "parent", required_argument, NULL, 'p' },
		{ "force", no_argument, NULL, 'F' },
		VT_FORMAT_LONGOPT,
		{ 0 }
	};
	struct vhd_create_opts o = { .type = VHD_TYPE_DYNAMIC };
	unsigned fmt = 0;
	bool typed = false;
	uint64_t v;
	int c;

	optind = 1;
	/* -f is the image format as in qemu-img create; force is --force. */
	while ((c = getopt_long(argc, argv, "t:b:p:f:", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			typed = true;
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
		case 'F':
			o.overwrite = true;
			break;
		case 'f':
			if (!vt_format_opt(optarg, &fmt))
				return VT_EXIT_USAGE;
			if (fmt & VT_OPEN_FMT_RAW) {
				vt_err(NULL, "create makes VHD images (-f vpc); for a raw file use truncate");
				return VT_EXIT_USAGE;
			}
			break;
		default:
			return vt_usage(&create_cmd);
		}
	}
	if (o.parent && (typed || o.block_size)) {
		vt_err(NULL, "--parent makes a differencing image: -t and --block-size do not apply (the parent's size and block size are used)");
		return VT_EXIT_USAGE;
	}
	if (o.type == VHD_TYPE_FIXED && o.block_size) {
		vt_err(NULL, "-t fixed has no blocks: --block-size applies to dynamic images");
		return VT_EXIT_USAGE;
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
