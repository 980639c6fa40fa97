/* vhdtool info: what an image is, and its chain (leaf first). */
#include "vhdtool.h"

#include <getopt.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "vhd/vhd.h"

static const char *type_name(int t)
{
	return t == VHD_TYPE_FIXED ? "fixed" : t == VHD_TYPE_DYNAMIC ? "dynamic"
	       : "differencing";
}

static void fmt_time(uint32_t t, char *buf, size_t len)
{
	time_t u = (time_t)vhd_time_to_unix(t);
	struct tm tm;

	gmtime_r(&u, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_layer(FILE *f, struct vhd *v, bool top)
{
	struct vhd_info i;
	char u[40], pu[40], ts[32];

	vhd_get_info(v, &i);
	fmt_time(i.timestamp, ts, sizeof(ts));
	fprintf(f, "%s{\"filename\": ", top ? "" : "    ");
	util_json_str(f, vhd_path(v));
	fprintf(f, ", \"format\": \"vhd\", \"type\": \"%s\", \"virtual-size\": %llu, "
		"\"file-size\": %llu, \"block-size\": %u, \"allocated-blocks\": %u, "
		"\"uuid\": \"%s\", \"creator\": ", type_name(i.type),
		(unsigned long long)i.size, (unsigned long long)i.file_size,
		i.block_size, i.allocated_blocks, vhd_uuid_str(i.uuid, u));
	util_json_str(f, i.creator_app);
	fprintf(f, ", \"creator-version\": \"%u.%u\", \"creator-os\": ",
		i.creator_version >> 16, i.creator_version & 0xffff);
	util_json_str(f, i.creator_os);
	fprintf(f, ", \"geometry\": {\"cylinders\": %u, \"heads\": %u, \"sectors\": %u}, "
		"\"current-size\": %llu, \"original-size\": %llu, \"timestamp\": \"%s\", "
		"\"saved-state\": %s, \"footer-copy-used\": %s, \"parent\": ",
		i.cylinders, i.heads, i.sectors, (unsigned long long)i.current_size,
		(unsigned long long)i.original_size, ts,
		i.saved_state ? "true" : "false",
		i.used_footer_copy ? "true" : "false");
	if (i.type == VHD_TYPE_DIFF) {
		util_json_str(f, i.parent_path[0] ? i.parent_path : NULL);
		fprintf(f, ", \"parent-name\": ");
		util_json_str(f, i.parent_name);
		fprintf(f, ", \"parent-uuid\": \"%s\"", vhd_uuid_str(i.parent_uuid, pu));
	} else {
		fputs("null", f);
	}
}

static void human_layer(FILE *f, struct vhd *v, int depth)
{
	struct vhd_info i;
	char u[40], pu[40], ts[32], sz[32];

	vhd_get_info(v, &i);
	fmt_time(i.timestamp, ts, sizeof(ts));
	if (depth)
		fprintf(f, "\nlayer %d (parent):\n", depth);
	fprintf(f, "filename:          %s\n", vhd_path(v));
	fprintf(f, "format:            vhd\n");
	fprintf(f, "type:              %s\n", type_name(i.type));
	fprintf(f, "virtual size:      %s (%llu bytes)\n",
		util_fmt_size(i.size, sz, sizeof(sz)), (unsigned long long)i.size);
	fprintf(f, "file size:         %llu bytes\n", (unsigned long long)i.file_size);
	if (i.type != VHD_TYPE_FIXED) {
		fprintf(f, "block size:        %u\n", i.block_size);
		fprintf(f, "allocated blocks:  %u of %u\n", i.allocated_blocks,
			(unsigned)((i.size + i.block_size - 1) / i.block_size));
	}
	fprintf(f, "uuid:              %s\n", vhd_uuid_str(i.uuid, u));
	fprintf(f, "creator:           \"%s\" %u.%u on \"%s\"\n", i.creator_app,
		i.creator_version >> 16, i.creator_version & 0xffff, i.creator_os);
	fprintf(f, "geometry:          %u/%u/%u (C/H/S)\n", i.cylinders, i.heads,
		i.sectors);
	fprintf(f, "timestamp:         %s\n", ts);
	if (i.used_footer_copy)
		fprintf(f, "warning:           end footer damaged; read with the copy at offset 0\n");
	if (i.type == VHD_TYPE_DIFF) {
		fprintf(f, "parent:            %s\n", i.parent_path[0] ? i.parent_path : "(not found)");
		fprintf(f, "parent name:       %s\n", i.parent_name);
		fprintf(f, "parent uuid:       %s\n", vhd_uuid_str(i.parent_uuid, pu));
	}
}

static int run_info(int argc, char **argv);
VHDTOOL_COMMAND(info, .name = "info",
	.usage = "info [--json] IMAGE",
	.summary = "show an image's type, size, layout and chain",
	.run = run_info)

static int run_info(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' }, { 0 }
	};
	bool json = false;
	struct bdev *b;
	struct vhd *v;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "j", lo, NULL)) != -1) {
		if (c != 'j')
			return vt_usage(&info_cmd);
		json = true;
	}
	if (argc - optind != 1)
		return vt_usage(&info_cmd);
	b = vt_open(argv[optind], VT_OPEN_RDONLY);
	if (!b)
		return 1;
	v = vhd_of(b);
	if (json) {
		json_layer(stdout, v, true);
		fputs(", \"chain\": [\n", stdout);
		for (struct vhd *l = v; l; ) {
			struct bdev *p = vhd_parent(l);

			json_layer(stdout, l, false);
			fputs("}", stdout);
			l = p ? vhd_of(p) : NULL;
			fputs(l ? ",\n" : "\n", stdout);
		}
		fputs("]}\n", stdout);
	} else {
		int d = 0;

		for (struct vhd *l = v; l; d++) {
			struct bdev *p = vhd_parent(l);

			human_layer(stdout, l, d);
			l = p ? vhd_of(p) : NULL;
		}
	}
	bdev_close(b);
	return 0;
}
