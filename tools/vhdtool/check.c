/* vhdtool check: exit codes as qemu-img check's:
 *   0  no problems
 *   1  the check could not complete (cannot open or read, image in use,
 *      usage error)
 *   2  corruption found (anything but leaked space)
 *   3  only leaked space found (file space nothing uses; compact reclaims)
 *   63 not a format check supports (a raw file, or -f raw)
 * --output=json prints one object with the counts and every message. */
#include "vhdtool.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "vhd/vhd.h"

#define CHECK_EXIT_ERROR   1
#define CHECK_EXIT_CORRUPT 2
#define CHECK_EXIT_LEAKS   3
#define CHECK_EXIT_UNSUPPORTED 63

struct msg {
	char *text;
	bool repaired;
};

struct report {
	const char *path;
	bool json;
	int leaks, repairs;
	struct msg *m;
	size_t n;
};

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static void report(void *opaque, bool repaired, const char *msg)
{
	struct report *r = opaque;

	if (repaired)
		r->repairs++;
	else if (starts(msg, VHD_CHECK_LEAK))
		r->leaks++;
	if (r->json) {
		struct msg *m = realloc(r->m, (r->n + 1) * sizeof(*m));

		if (m) {
			r->m = m;
			m[r->n].text = strdup(msg);
			m[r->n].repaired = repaired;
			if (m[r->n].text)
				r->n++;
		}
		return;
	}
	if (starts(msg, "note: ") || starts(msg, VHD_CHECK_LEAK))
		printf("%s: %s\n", r->path, msg);
	else
		printf("%s: %s%s\n", r->path, repaired ? "repaired: " : "", msg);
}

static void print_json(struct report *r, int problems)
{
	struct json j;

	json_begin(&j, stdout);
	json_obj(&j);
	json_kv_str(&j, "filename", r->path);
	json_kv_str(&j, "format", "vhd");
	json_kv_u64(&j, "check-errors", 0);
	json_kv_u64(&j, "corruptions", (uint64_t)(problems - r->leaks));
	json_kv_u64(&j, "leaks", (uint64_t)r->leaks);
	json_kv_u64(&j, "repairs", (uint64_t)r->repairs);
	json_key(&j, "messages");
	json_arr(&j);
	for (size_t i = 0; i < r->n; i++) {
		const char *t = r->m[i].text;

		json_obj(&j);
		json_kv_str(&j, "kind", r->m[i].repaired ? "repaired" :
			    starts(t, "note: ") ? "note" :
			    starts(t, VHD_CHECK_LEAK) ? "leak" : "corruption");
		json_kv_str(&j, "message", t);
		json_end_obj(&j);
	}
	json_end_arr(&j);
	json_end_obj(&j);
	json_finish(&j);
}

static int run_check(int argc, char **argv);
VHDTOOL_COMMAND(check, .name = "check",
	.usage = "check [-r|--repair] [-f vpc|raw] [--output=human|json] IMAGE",
	.summary = "verify an image's metadata and chain (exit 0 clean, 1 could not check, 2 corrupt, 3 leaks only, 63 not a VHD)",
	.run = run_check)

static int run_check(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "repair", no_argument, NULL, 'r' },
		VT_FORMAT_LONGOPT,
		VT_OUTPUT_LONGOPTS,
		{ 0 }
	};
	unsigned flags = vt_force_share() ? VHD_CHECK_FORCE_SHARE : 0, fmt = 0;
	struct report r = { 0 };
	struct bdev_err e = { 0 };
	int c, n;

	optind = 1;
	while ((c = getopt_long(argc, argv, "rf:", lo, NULL)) != -1) {
		switch (c) {
		case 'r':
			flags |= VHD_CHECK_REPAIR;
			break;
		default:
			/* A usage error: the check did not run (qemu-img: 1). */
			n = vt_shared_opt(c, optarg, &fmt, &r.json);
			if (n == 0)
				vt_usage(&check_cmd);
			if (n <= 0)
				return CHECK_EXIT_ERROR;
		}
	}
	if (argc - optind != 1) {
		vt_usage(&check_cmd);
		return CHECK_EXIT_ERROR;
	}
	r.path = argv[optind];
	if (!vt_exclusive("--repair", flags & VHD_CHECK_REPAIR,
			  "-U/--force-share", flags & VHD_CHECK_FORCE_SHARE))
		return CHECK_EXIT_ERROR;
	if (fmt & VT_OPEN_FMT_RAW) {
		vt_err(r.path, "raw images have no metadata to check (check supports VHD images)");
		return CHECK_EXIT_UNSUPPORTED;
	}
	n = vhd_check(r.path, flags, report, &r, &e);
	if (n < 0) {
		vt_err(NULL, "%s", e.msg);
		/* A raw file: 63, as qemu-img; but -f vpc said it was a VHD. */
		n = e.code == ENOVHD && !(fmt & VT_OPEN_FMT_VHD) ?
		    CHECK_EXIT_UNSUPPORTED : CHECK_EXIT_ERROR;
		goto out;
	}
	if (r.json)
		print_json(&r, n);
	else if (n == 0)
		printf("%s: no problems found\n", r.path);
	else if (n == r.leaks)
		printf("%s: %d problem%s found, all leaked space (the image reads correctly; compact reclaims it)\n",
		       r.path, n, n == 1 ? "" : "s");
	else
		printf("%s: %d problem%s found\n", r.path, n, n == 1 ? "" : "s");
	n = n == 0 ? 0 : n == r.leaks ? CHECK_EXIT_LEAKS : CHECK_EXIT_CORRUPT;
out:
	for (size_t i = 0; i < r.n; i++)
		free(r.m[i].text);
	free(r.m);
	return n;
}
