/* vhdtool check: exit 0 clean, 1 problems found, 2 could not run. */
#include "vhdtool.h"

#include <getopt.h>
#include <string.h>

#include "vhd/vhd.h"

static void report(void *opaque, bool repaired, const char *msg)
{
	const char *path = opaque;

	if (!strncmp(msg, "note: ", 6))
		printf("%s: %s\n", path, msg);
	else
		printf("%s: %s%s\n", path, repaired ? "repaired: " : "", msg);
}

static int run_check(int argc, char **argv);
VHDTOOL_COMMAND(check, .name = "check",
	.usage = "check [--repair] IMAGE",
	.summary = "verify an image's metadata and chain (exit 0 clean, 1 problems, 2 could not run)",
	.run = run_check)

static int run_check(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "repair", no_argument, NULL, 'r' }, { 0 }
	};
	unsigned flags = vt_force_share() ? VHD_CHECK_FORCE_SHARE : 0;
	struct bdev_err e = { 0 };
	int c, n;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r", lo, NULL)) != -1) {
		if (c != 'r')
			return vt_usage(&check_cmd);
		flags |= VHD_CHECK_REPAIR;
	}
	if (argc - optind != 1)
		return vt_usage(&check_cmd);
	if ((flags & VHD_CHECK_REPAIR) && (flags & VHD_CHECK_FORCE_SHARE)) {
		vt_err(NULL, "-U/--force-share is for reading only: it cannot go with --repair");
		return 2;
	}
	n = vhd_check(argv[optind], flags, report, argv[optind], &e);
	if (n < 0) {
		vt_err(NULL, "%s", e.msg);
		return 2;
	}
	if (n == 0) {
		printf("%s: no problems found\n", argv[optind]);
		return 0;
	}
	printf("%s: %d problem%s found\n", argv[optind], n, n == 1 ? "" : "s");
	return 1;
}
