/* vhdtool info: what an image is, and its chain (leaf first). */
#include "vhdtool.h"

#include <getopt.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/json.h"
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

/* One layer's fields (the caller opens and closes the object). */
static void json_layer(struct json *j, struct vhd *v)
{
	struct vhd_info i;
	char u[40], pu[40], ts[32], ver[16];

	vhd_get_info(v, &i);
	fmt_time(i.timestamp, ts, sizeof(ts));
	snprintf(ver, sizeof(ver), "%u.%u", i.creator_version >> 16,
		 i.creator_version & 0xffff);
	json_kv_str(j, "filename", vhd_path(v));
	json_kv_str(j, "format", "vhd");
	json_kv_str(j, "type", type_name(i.type));
	json_kv_u64(j, "virtual-size", i.size);
	json_kv_u64(j, "file-size", i.file_size);
	json_kv_u64(j, "block-size", i.block_size);
	json_kv_u64(j, "allocated-blocks", i.allocated_blocks);
	json_kv_str(j, "uuid", vhd_uuid_str(i.uuid, u));
	json_kv_str(j, "creator", i.creator_app);
	json_kv_str(j, "creator-version", ver);
	json_kv_str(j, "creator-os", i.creator_os);
	json_key(j, "geometry");
	json_obj(j);
	json_kv_u64(j, "cylinders", i.cylinders);
	json_kv_u64(j, "heads", i.heads);
	json_kv_u64(j, "sectors", i.sectors);
	json_end_obj(j);
	json_kv_u64(j, "current-size", i.current_size);
	json_kv_u64(j, "original-size", i.original_size);
	json_kv_str(j, "timestamp", ts);
	json_kv_bool(j, "saved-state", i.saved_state);
	json_kv_bool(j, "footer-copy-used", i.used_footer_copy);
	if (i.type == VHD_TYPE_DIFF) {
		json_kv_str(j, "parent", i.parent_path[0] ? i.parent_path : NULL);
		json_kv_str(j, "parent-name", i.parent_name);
		json_kv_str(j, "parent-uuid", vhd_uuid_str(i.parent_uuid, pu));
	} else {
		json_key(j, "parent");
		json_null(j);
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

/* A disk that is not a VHD (a raw file or block device, or -f raw). */
static void raw_info(const char *path, struct bdev *b, bool json)
{
	struct stat st;
	const char *kind = stat(path, &st) == 0 && S_ISBLK(st.st_mode) ?
			   "block device" : "file";
	char sz[32];
	struct json j;

	if (!json) {
		printf("filename:          %s\n", path);
		printf("format:            raw (%s)\n", kind);
		printf("virtual size:      %s (%llu bytes)\n",
		       util_fmt_size(b->size, sz, sizeof(sz)),
		       (unsigned long long)b->size);
		return;
	}
	json_begin(&j, stdout);
	json_obj(&j);
	json_kv_str(&j, "filename", path);
	json_kv_str(&j, "format", "raw");
	json_kv_str(&j, "kind", kind);
	json_kv_u64(&j, "virtual-size", b->size);
	json_end_obj(&j);
	json_finish(&j);
}

static int run_info(int argc, char **argv);
VHDTOOL_COMMAND(info, .name = "info",
	.usage = "info [-f vpc|raw] [--output=human|json] IMAGE",
	.summary = "show a disk's format, size, layout and chain (VHD, raw file or block device)",
	.run = run_info)

static int run_info(int argc, char **argv)
{
	static const struct option lo[] = {
		VT_FORMAT_LONGOPT,
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	unsigned flags = VT_OPEN_RDONLY | VT_OPEN_RAW_OK;
	bool json = false;
	struct bdev *b;
	struct vhd *v;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jf:", lo, NULL)) != -1) {
		if (c == 'j')
			c = VT_OPT_JSON;
		r = vt_shared_opt(c, optarg, &flags, &json);
		if (r <= 0)
			return r < 0 ? VT_EXIT_USAGE : vt_usage(&info_cmd);
	}
	if (argc - optind != 1)
		return vt_usage(&info_cmd);
	b = vt_open(argv[optind], flags);
	if (!b)
		return VT_EXIT_FAIL;
	v = vhd_of(b);
	if (!v) {
		raw_info(argv[optind], b, json);
	} else if (json) {
		struct json j;

		json_begin(&j, stdout);
		json_obj(&j);
		json_layer(&j, v);
		json_key(&j, "chain");
		json_arr(&j);
		for (struct vhd *l = v; l; ) {
			struct bdev *p = vhd_parent(l);

			json_obj(&j);
			json_layer(&j, l);
			json_end_obj(&j);
			l = p ? vhd_of(p) : NULL;
		}
		json_end_arr(&j);
		json_end_obj(&j);
		json_finish(&j);
	} else {
		int d = 0;

		for (struct vhd *l = v; l; d++) {
			struct bdev *p = vhd_parent(l);

			human_layer(stdout, l, d);
			l = p ? vhd_of(p) : NULL;
		}
	}
	bdev_close(b);
	return VT_EXIT_OK;
}
