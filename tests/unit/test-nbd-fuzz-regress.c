/* The fuzz-nbd-server session (what a client sends, served by
 * nbdsrv_serve_fd over a socketpair, replies drained) over every file of
 * fuzz/corpus/fuzz-nbd-server/: the seed sessions and every input that
 * once crashed the server (crash-*).  The seeds must reach transmission
 * and end cleanly, or the fuzzer would only explore the handshake's error
 * paths.  Runs from the repository root, like every test of `make check`. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "common/util.h"

#define FUZZ_NBD_SERVER_NO_ENTRY
#include "fuzz/fuzz-nbd-server.c"

#define CORPUS "fuzz/corpus/fuzz-nbd-server"

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(util_pread_full(fd, buf, *len, 0, false), 0);
	close(fd);
	return buf;
}

static int setup(void **state)
{
	(void)state;
	return fz_setup() ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	fz_cleanup();
	return 0;
}

static void test_corpus_replays_clean(void **state)
{
	DIR *d = opendir(CORPUS);
	struct dirent *de;
	int files = 0;

	(void)state;
	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[512];
		uint8_t *data;
		size_t len;
		int r;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", CORPUS, de->d_name);
		data = slurp(path, &len);
		r = fz_one(data, len);
		print_message("  %s (%zu bytes): %d\n", de->d_name, len, r);
		free(data);
		files++;
	}
	closedir(d);
	assert_true(files >= 4);
}

/* The seeds that are whole sessions get their requests served and end
 * with DISC (or ABORT): a clean end. */
static void test_seed_sessions_reach_transmission(void **state)
{
	static const char *const seeds[] = {
		"go-structured.bin", "go-simple.bin", "export-name.bin",
	};
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(seeds); i++) {
		struct nbdsrv_stats before, after;
		char path[512];
		uint8_t *data;
		size_t len;

		snprintf(path, sizeof(path), "%s/%s", CORPUS, seeds[i]);
		data = slurp(path, &len);
		nbdsrv_get_stats(fz_s, &before);
		assert_int_equal(fz_one(data, len), 0);
		nbdsrv_get_stats(fz_s, &after);
		free(data);
		if (after.requests - before.requests < 10)
			fail_msg("%s: only %llu requests served", seeds[i],
				 (unsigned long long)(after.requests - before.requests));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_replays_clean),
		cmocka_unit_test(test_seed_sessions_reach_transmission),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
