/* vhdtool resize: change the disk size of an image in place (vhd_resize).
 * SIZE is absolute, or relative with a leading + or -.  A shrink that
 * dropped empty blocks is followed by a compact to give their space back. */
#include "vhdtool.h"

#include <errno.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "vhd/vhd.h"

static int run_resize(int argc, char **argv);
VHDTOOL_COMMAND(resize, .name = "resize",
	.usage = "resize [-f vpc] [--allow-shrink] [--output=human|json] IMAGE [+|-]SIZE",
	.summary = "grow (or with --allow-shrink shrink) a fixed, dynamic or differencing image",
	.run = run_resize)

/* Current disk size of path (prints errors).  The parent is not needed
 * (nor opened): a differencing image whose parent is elsewhere resizes. */
static bool disk_size(const char *path, uint64_t *size)
{
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY | VHD_O_NO_PARENT };
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(path, &o, &e);

	if (!b) {
		vt_err(NULL, "%s", e.msg);
		return false;
	}
	*size = b->size;
	bdev_close(b);
	return true;
}

/* cs: the compact that followed a shrink (blocks_dropped), else zeros. */
static void print_human(const char *path, const struct vhd_resize_stats *st,
			const struct vhd_compact_stats *cs)
{
	char a[32], b[32];

	printf("%s: %s -> %s", path, util_fmt_size(st->old_size, a, sizeof(a)),
	       util_fmt_size(st->new_size, b, sizeof(b)));
	if (st->blocks_moved)
		printf("; %u block%s moved to make room for the BAT", st->blocks_moved,
		       st->blocks_moved == 1 ? "" : "s");
	if (st->locators_moved)
		printf("; parent locators moved");
	if (st->blocks_hiding)
		printf("; %u block%s made to read zeros over the parent's data in the new range",
		       st->blocks_hiding, st->blocks_hiding == 1 ? "" : "s");
	printf("\n");
	if (st->blocks_dropped)
		printf("%s: %u empty block%s past the new end dropped; file %s -> %s\n",
		       path, st->blocks_dropped, st->blocks_dropped == 1 ? "" : "s",
		       util_fmt_size(cs->size_before, a, sizeof(a)),
		       util_fmt_size(cs->size_after, b, sizeof(b)));
}

static void print_json(const char *path, const struct vhd_resize_stats *st,
		       const struct vhd_compact_stats *cs)
{
	struct json j;

	json_begin(&j, stdout);
	json_obj(&j);
	json_kv_str(&j, "filename", path);
	json_kv_u64(&j, "old-size", st->old_size);
	json_kv_u64(&j, "new-size", st->new_size);
	json_kv_u64(&j, "blocks-moved", st->blocks_moved);
	json_kv_bool(&j, "locators-moved", st->locators_moved);
	json_kv_u64(&j, "blocks-hiding-parent", st->blocks_hiding);
	json_kv_u64(&j, "blocks-dropped", st->blocks_dropped);
	if (st->blocks_dropped) {
		json_kv_u64(&j, "file-size-before", cs->size_before);
		json_kv_u64(&j, "file-size-after", cs->size_after);
	}
	json_end_obj(&j);
	json_finish(&j);
}

static int run_resize(int argc, char **argv)
{
	struct vhd_resize_stats st;
	struct vhd_compact_stats cs = { 0 };
	struct bdev_err e = { 0 };
	unsigned flags = 0;
	const char *path, *arg, *pos[2];
	uint64_t size, cur;
	int c, npos = 0, sign = 0;
	unsigned fmt = 0;
	bool json = false;

	/* By hand: "-1G" is a size, not an option. */
	for (c = 1; c < argc; c++) {
		if (!strcmp(argv[c], "--allow-shrink"))
			flags |= VHD_RESIZE_SHRINK;
		else if (!strcmp(argv[c], "--json"))
			json = true;
		else if ((!strcmp(argv[c], "-f") || !strcmp(argv[c], "--format")) &&
			 c + 1 < argc) {
			if (!vt_format_opt(argv[++c], &fmt))
				return VT_EXIT_USAGE;
		} else if (!strncmp(argv[c], "--format=", 9)) {
			if (!vt_format_opt(argv[c] + 9, &fmt))
				return VT_EXIT_USAGE;
		}
		else if (!strncmp(argv[c], "--output=", 9)) {
			if (!vt_output_opt(VT_OPT_OUTPUT, argv[c] + 9, &json))
				return VT_EXIT_USAGE;
		} else if (!strcmp(argv[c], "--output") && c + 1 < argc) {
			if (!vt_output_opt(VT_OPT_OUTPUT, argv[++c], &json))
				return VT_EXIT_USAGE;
		} else if (argv[c][0] == '-' && argv[c][1] == '-')
			return vt_usage(&resize_cmd);
		else if (npos < 2)
			pos[npos++] = argv[c];
		else
			return vt_usage(&resize_cmd);
	}
	if (npos != 2)
		return vt_usage(&resize_cmd);
	if (fmt & VT_OPEN_FMT_RAW) {
		vt_err(NULL, "resize works on VHD images (-f vpc); a raw file is resized with truncate");
		return VT_EXIT_USAGE;
	}
	path = pos[0];
	arg = pos[1];
	if (*arg == '+' || *arg == '-')
		sign = *arg++ == '+' ? 1 : -1;
	if (!vt_parse_size("size", arg, &size))
		return 2;
	if (size % 512) {
		vt_err(NULL, "size '%s' is not a multiple of 512 bytes", pos[1]);
		return 2;
	}
	if (sign) {
		if (!disk_size(path, &cur))
			return 1;
		if (sign < 0 && size >= cur) {
			vt_err(path, "cannot shrink a %llu-byte disk by %llu bytes",
			       (unsigned long long)cur, (unsigned long long)size);
			return 2;
		}
		if (sign > 0 && size > VHD_MAX_SIZE - cur) {
			vt_err(path, "the new size would pass the VHD limit of 2040 GiB");
			return 2;
		}
		size = sign > 0 ? cur + size : cur - size;
	}
	if (vhd_resize(path, size, flags, &st, &e)) {
		vt_err(NULL, "%s", e.msg);
		return 1;
	}
	if (st.blocks_dropped && vhd_compact(path, NULL, &cs, &e)) {
		vt_err(NULL, "resized, but compacting failed: %s", e.msg);
		return VT_EXIT_FAIL;
	}
	if (json)
		print_json(path, &st, &cs);
	else
		print_human(path, &st, &cs);
	return VT_EXIT_OK;
}
