/* libFuzzer target: the control-socket client's reply reader
 * (vmm-mini/client.c, vmmc_parse), fed a VMM's answer line as the client
 * receives it (NUL-terminated, NULs cut off as vmmc_call refuses them).
 * Invariants: a parsed document's values are consistent (member counts
 * match the lists, every member of an object has a key, strings hold no
 * NUL before their end), and the lookups vhdtool uses never fail on it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm-mini/vmmc.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n);

static void walk(const struct vmmc_val *v, int depth)
{
	uint32_t count = 0;
	int64_t i;

	if (depth > 40)
		abort();
	if (v->type == VMMC_STR && !v->s)
		abort();
	for (const struct vmmc_val *m = v->first; m; m = m->next) {
		if ((v->type == VMMC_OBJ) != (m->key != NULL))
			abort();
		walk(m, depth + 1);
		count++;
	}
	if (count != v->n)
		abort();
	(void)vmmc_get_str(v, "error");
	(void)vmmc_get_int(v, "lun", &i);
	(void)vmmc_get(v, "disks");
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	char *text = malloc(n + 1), why[200];
	struct vmmc_doc *d;

	if (!text)
		return 0;
	memcpy(text, in, n);
	text[n] = '\0';
	d = vmmc_parse(text, why, sizeof(why));
	if (d) {
		walk(vmmc_root(d), 0);
		vmmc_doc_free(d);
	}
	free(text);
	return 0;
}
