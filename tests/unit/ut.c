/* Shared helpers of the unit tests; see ut.h. */
#include "ut.h"

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

static int rm_one(const char *p, const struct stat *sb, int type,
		  struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(p);
}

void ut_rmtree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *ut_path(const char *dir, const char *name)
{
	static char buf[8][PATH_MAX];
	static int k;
	char *p = buf[k++ % 8];

	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	return p;
}
