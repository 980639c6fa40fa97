/* vhdtool: the options several commands share, parsed one way.
 *
 *   --output=human|json, --json   what a reporting command prints
 *   -f FMT, --format=FMT          the source's format, as qemu-img's -f:
 *                                 raw (the bytes of the file, even when it
 *                                 holds a VHD), vpc or vhd (a VHD image;
 *                                 anything else is refused)
 *
 * Commands list VT_OUTPUT_LONGOPTS / VT_FORMAT_LONGOPT in their option
 * tables and pass what getopt_long returned to vt_output_opt() /
 * vt_format_opt(). */
#include "vhdtool.h"

#include <string.h>

bool vt_output_opt(int c, const char *arg, bool *json)
{
	if (c == VT_OPT_JSON) {
		*json = true;
		return true;
	}
	if (!strcmp(arg, "json"))
		*json = true;
	else if (!strcmp(arg, "human"))
		*json = false;
	else {
		vt_err(NULL, "--output takes human or json, not '%s'", arg);
		return false;
	}
	return true;
}

bool vt_format_opt(const char *arg, unsigned *open_flags)
{
	*open_flags &= ~(VT_OPEN_FMT_RAW | VT_OPEN_FMT_VHD);
	if (!strcmp(arg, "raw"))
		*open_flags |= VT_OPEN_FMT_RAW;
	else if (!strcmp(arg, "vpc") || !strcmp(arg, "vhd"))
		*open_flags |= VT_OPEN_FMT_VHD;
	else {
		vt_err(NULL, "unknown format '%s' for -f (raw, vpc or vhd)", arg);
		return false;
	}
	return true;
}

int vt_shared_opt(int c, const char *arg, unsigned *open_flags, bool *json)
{
	if (c == 'f' && open_flags)
		return vt_format_opt(arg, open_flags) ? 1 : -1;
	if ((c == VT_OPT_OUTPUT || c == VT_OPT_JSON) && json)
		return vt_output_opt(c, arg, json) ? 1 : -1;
	return 0;
}

bool vt_exclusive(const char *a, bool has_a, const char *b, bool has_b)
{
	if (has_a && has_b) {
		vt_err(NULL, "%s and %s cannot be used together", a, b);
		return false;
	}
	return true;
}
