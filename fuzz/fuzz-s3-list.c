/* libFuzzer target: a ListObjectsV2 answer page from a hostile store, fed
 * to s3_list_parse() (the strict XML walker under it), as a
 * ListObjectVersions page to s3_versions_parse(), and the same bytes
 * as an error body and a retention answer (s3_xml_child).  Every key
 * handed out must be 1..1024 bytes without NUL; crashes, leaks, UB and
 * hangs are what the sanitizers and libFuzzer catch. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3-int.h"

static int check_version(void *opaque, const struct s3_version *v)
{
	size_t n = strlen(v->key), m = strlen(v->version_id);

	(void)opaque;
	if (n == 0 || n > 1024 || m == 0 || m > 255)
		abort();
	return 0;
}

static int check_key(void *opaque, const char *key, const struct s3_stat *st)
{
	size_t n = strlen(key);

	(void)opaque;
	(void)st;
	if (n == 0 || n > 1024)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bdev_err e = { 0 };
	char next[1100], code[64], vid[256];
	bool truncated;

	s3_list_parse((const char *)data, size, check_key, NULL, &truncated, next,
		      sizeof(next), &e);
	s3_versions_parse((const char *)data, size, check_version, NULL, &truncated,
			  next, sizeof(next), vid, sizeof(vid), &e);
	s3_xml_child((const char *)data, size, "Code", code, sizeof(code));
	return 0;
}
