/* Hostile commands: the fuzz target fuzz/fuzz-scsi-cdb.c run over
 * pseudo-random command sequences (fixed seed) for every implemented
 * opcode: random CDB bytes biased towards values that pass the first
 * checks (zeros, small LBAs and counts, all-ones), random lengths, CDB
 * lengths, directions, LUNs, initiators and data.  Every command must
 * complete once with a valid status and well-formed sense and never move
 * more than its buffer; the sanitizer build checks memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define FUZZ_SCSI_NO_ENTRY
#define FUZZ_FAIL(...) fail_msg(__VA_ARGS__)
#include "fuzz/fuzz-scsi-cdb.c"

static const uint8_t opcodes[] = {
	0x00, 0x03, 0x08, 0x0A, 0x12, 0x15, 0x16, 0x17, 0x1A, 0x1B, 0x1E, 0x25,
	0x28, 0x2A, 0x2E, 0x2F, 0x34, 0x35, 0x41, 0x42, 0x55, 0x5A, 0x5E, 0x5F,
	0x88, 0x89, 0x8A, 0x8B, 0x8E, 0x8F, 0x90, 0x91, 0x93, 0x9E, 0xA0, 0xA3,
	0xA8, 0xAA, 0xAE, 0xAF, 0xC7,
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static uint8_t biased(void)
{
	switch (rnd() % 6) {
	case 0: case 1: case 2: return 0;
	case 3: return 0xff;
	case 4: return (uint8_t)(rnd() % 8);
	default: return (uint8_t)rnd();
	}
}

/* One record: a command of opcode op, its data right after. */
static size_t record(uint8_t *p, uint8_t op)
{
	uint16_t len = (uint16_t)(rnd() % 3 ? rnd() % 4200 : rnd() % 65536);
	size_t data = rnd() % 4 ? len : rnd() % (len + 1u);

	p[0] = (uint8_t)(rnd() % 8 ? 0 : rnd());
	p[1] = (uint8_t)rnd();
	p[2] = (uint8_t)(rnd() % 5 ? (op == 0x0A || op == 0x2A || op == 0x8A ||
				      op == 0xAA || op == 0x15 || op == 0x55 ||
				      op == 0x5F || op == 0x42 || op == 0x41 ||
				      op == 0x93 || op == 0x89 || op == 0x2F ||
				      op == 0x8F || op == 0xAF || op == 0x2E ||
				      op == 0xAE || op == 0x8E || op == 0x8B) ? 2 : 1 : rnd());
	util_put_be16(p + 3, len);
	p[5] = (uint8_t)(rnd() % 8 ? 16 : rnd());
	for (int i = 0; i < 16; i++)
		p[6 + i] = biased();
	p[6] = op;
	if (op == 0x9E || op == 0xA3 || op == 0x5E || op == 0x5F)
		p[7] = (uint8_t)(rnd() % 2 ? (op == 0xA3 ? 0x0C : rnd() % 0x14) : rnd());
	for (size_t i = 0; i < data; i++)
		p[FZ_REC + i] = rnd() % 3 ? 0 : (uint8_t)rnd();
	/* a plausible UNMAP or MODE SELECT header now and then */
	if (op == 0x42 && data >= 8) {
		util_put_be16(p + FZ_REC, (uint16_t)(data - 2));
		util_put_be16(p + FZ_REC + 2, (uint16_t)(data - 8));
	}
	return FZ_REC + data;
}

static void test_random_commands(void **state)
{
	static uint8_t in[16 * (FZ_REC + 65536)];

	for (int round = 0; round < 400; round++) {
		size_t n = 0;
		int cmds = 1 + (int)(rnd() % 16);

		for (int i = 0; i < cmds; i++)
			n += record(in + n, opcodes[rnd() % sizeof(opcodes)]);
		fz_run(in, n);
	}
}

/* Truncated records and empty input. */
static void test_short_inputs(void **state)
{
	uint8_t in[FZ_REC + 8] = { 0 };

	fz_run(in, 0);
	fz_run(in, FZ_REC - 1);
	in[6] = 0x2A;
	util_put_be16(in + 3, 4096);      /* claims 4 KiB, has 8 bytes */
	in[5] = 16;
	in[2] = 2;
	fz_run(in, sizeof(in));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_commands),
		cmocka_unit_test(test_short_inputs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
