/* Chunk files: round trips (stored and compressed), the compression probe,
 * and that every kind of damage is caught by decode — bit flips anywhere,
 * truncation, extension — without trusting the file's name. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backup/bkp-int.h"

#define LEN (1u << 20)

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		p[i] = (uint8_t)seed;
	}
}

static void fill_text(uint8_t *p, size_t n)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog ";

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)words[(i * 7 + i / 300) % (sizeof(words) - 1)];
}

struct bufs {
	uint8_t *data, *enc, *dec;
	size_t cap;
};

static int setup(void **state)
{
	struct bufs *b = calloc(1, sizeof(*b));

	b->cap = bkp_chunk_bound(LEN);
	b->data = malloc(LEN);
	b->enc = malloc(b->cap);
	b->dec = malloc(LEN);
	*state = b;
	return 0;
}

static int teardown(void **state)
{
	struct bufs *b = *state;

	free(b->data);
	free(b->enc);
	free(b->dec);
	free(b);
	return 0;
}

static void test_random_is_stored(void **state)
{
	struct bufs *b = *state;
	char why[200];
	size_t n;

	fill_random(b->data, LEN, 42);
	n = bkp_chunk_encode(b->data, LEN, b->enc, b->cap);
	assert_int_equal(n, BKP_CHUNK_HDR + LEN);
	assert_memory_equal(b->enc, "VBKC", 4);
	assert_int_equal(b->enc[5], BKP_METHOD_STORED);
	assert_int_equal(bkp_chunk_decode(b->enc, n, b->dec, LEN, why, sizeof(why)),
			 LEN);
	assert_memory_equal(b->dec, b->data, LEN);
}

static void test_text_is_compressed(void **state)
{
	struct bufs *b = *state;
	char why[200];
	size_t n;

	fill_text(b->data, LEN);
	n = bkp_chunk_encode(b->data, LEN, b->enc, b->cap);
	assert_true(n > BKP_CHUNK_HDR);
	assert_true(n < LEN / 4);
	assert_int_equal(b->enc[5], BKP_METHOD_ZLIB);
	memset(b->dec, 0, LEN);
	assert_int_equal(bkp_chunk_decode(b->enc, n, b->dec, LEN, why, sizeof(why)),
			 LEN);
	assert_memory_equal(b->dec, b->data, LEN);
}

/* Mostly random with a compressible middle: the probe sees random start
 * and end but compressible middle; whatever it decides, the round trip
 * holds and the result is never larger than stored. */
static void test_mixed(void **state)
{
	struct bufs *b = *state;
	char why[200];
	size_t n;

	fill_random(b->data, LEN, 7);
	fill_text(b->data + LEN / 4, LEN / 2);
	n = bkp_chunk_encode(b->data, LEN, b->enc, b->cap);
	assert_true(n <= BKP_CHUNK_HDR + LEN);
	assert_int_equal(bkp_chunk_decode(b->enc, n, b->dec, LEN, why, sizeof(why)),
			 LEN);
	assert_memory_equal(b->dec, b->data, LEN);
}

static void test_short_chunk(void **state)
{
	struct bufs *b = *state;
	char why[200];
	size_t n;

	fill_random(b->data, 1000, 9);
	n = bkp_chunk_encode(b->data, 1000, b->enc, b->cap);
	assert_true(n > 0);
	assert_int_equal(bkp_chunk_decode(b->enc, n, b->dec, LEN, why, sizeof(why)),
			 1000);
	assert_memory_equal(b->dec, b->data, 1000);
	/* A chunk larger than the destination is refused. */
	assert_int_equal(bkp_chunk_decode(b->enc, n, b->dec, 999, why, sizeof(why)),
			 -EBADMSG);
}

/* Flip one bit at many positions of both kinds of file: always caught. */
static void test_bit_flips(void **state)
{
	struct bufs *b = *state;
	char why[200];

	for (int kind = 0; kind < 2; kind++) {
		size_t n;

		if (kind)
			fill_text(b->data, LEN);
		else
			fill_random(b->data, LEN, 3);
		n = bkp_chunk_encode(b->data, LEN, b->enc, b->cap);
		for (size_t pos = 0; pos < n; pos += pos < 64 ? 1 : n / 97) {
			for (int bit = 0; bit < 8; bit += 3) {
				b->enc[pos] ^= (uint8_t)(1u << bit);
				why[0] = '\0';
				assert_int_equal(bkp_chunk_decode(b->enc, n, b->dec, LEN,
								  why, sizeof(why)),
						 -EBADMSG);
				assert_true(why[0] != '\0');
				b->enc[pos] ^= (uint8_t)(1u << bit);
			}
		}
		assert_int_equal(bkp_chunk_decode(b->enc, n, b->dec, LEN, why,
						  sizeof(why)), LEN);
	}
}

static void test_truncate_extend(void **state)
{
	struct bufs *b = *state;
	char why[200];
	size_t n;

	fill_text(b->data, LEN);
	n = bkp_chunk_encode(b->data, LEN, b->enc, b->cap);
	for (size_t cut = 0; cut < n; cut += 1 + cut / 2) {
		assert_int_equal(bkp_chunk_decode(b->enc, cut, b->dec, LEN, why,
						  sizeof(why)), -EBADMSG);
		assert_int_equal(bkp_chunk_check_hdr(b->enc, cut, why, sizeof(why)),
				 -EBADMSG);
	}
	b->enc[n] = 0;
	assert_int_equal(bkp_chunk_decode(b->enc, n + 1, b->dec, LEN, why,
					  sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "truncated or extended"));
	assert_int_equal(bkp_chunk_check_hdr(b->enc, n, why, sizeof(why)), 0);
}

static void test_digest_and_hex(void **state)
{
	uint8_t d[BKP_DIGEST], back[BKP_DIGEST];
	char hex[2 * BKP_DIGEST + 1];

	(void)state;
	bkp_sha256("abc", 3, d);
	bkp_hex(d, BKP_DIGEST, hex);
	/* FIPS 180-2 test vector. */
	assert_string_equal(hex,
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(bkp_unhex(hex, back, BKP_DIGEST), 0);
	assert_memory_equal(back, d, BKP_DIGEST);
	hex[5] = 'G';
	assert_int_equal(bkp_unhex(hex, back, BKP_DIGEST), -EINVAL);
	assert_false(bkp_digest_is_zero(d));
	memset(d, 0, sizeof(d));
	assert_true(bkp_digest_is_zero(d));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_random_is_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_is_compressed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mixed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_chunk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bit_flips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncate_extend, setup, teardown),
		cmocka_unit_test(test_digest_and_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
