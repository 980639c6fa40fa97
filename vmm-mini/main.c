/* vmm-mini: the program.  One subcommand a file, dispatched from a table:
 *   host  serve one outside partition (the storvsp branch; not here yet)
 *   run   boot the built-in guest on KVM (run.c)
 * Kept small on purpose: the `host` side brings its own entry. */
#include <stdio.h>
#include <string.h>

#include "vmm-mini/vmm-kvm.h"

static int cmd_host(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "vmm-mini host: not implemented yet\n");
	return 2;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} cmds[] = {
	{ "host", cmd_host },
	{ "run", vmm_cmd_run },
};

int main(int argc, char **argv)
{
	if (argc >= 2)
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			if (strcmp(argv[1], cmds[i].name) == 0)
				return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "usage: vmm-mini host|run [OPTIONS]  (vmm-mini run --help)\n");
	return 2;
}
