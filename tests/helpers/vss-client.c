/* vss-client: the guest side of the VSS integration service, in its own
 * process, attached to `vmm-mini host` through the vmbus transport
 * (tests/unit/vssguest.c does the protocol, as Linux hv_utils + its
 * daemon answer).
 *
 *   vss-client SOCKET MODE SECONDS
 *       MODE normal | refuse | hang | nodaemon | closed (the channel is
 *       left closed).  Prints "ready" once attached (and the channel is
 *       open), serves until stdin ends or SECONDS passed, then one line
 *       "freezes=N thaws=N hot_backups=N bu_completes=N frozen=0|1".
 *
 * Exit 0, or 1 with a message on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/vssguest.h"
#include "vss/vss.h"

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		enum vssg_mode mode;
	} modes[] = {
		{ "normal", VSSG_NORMAL }, { "refuse", VSSG_REFUSE_FREEZE },
		{ "hang", VSSG_SILENT_FREEZE }, { "nodaemon", VSSG_NO_DAEMON },
		{ "closed", VSSG_NORMAL },
	};
	struct vssg *g = NULL;
	enum vssg_mode mode = VSSG_NORMAL;
	bool found = false, open_vss;
	int secs, r;

	if (argc != 4) {
		fprintf(stderr, "usage: vss-client SOCKET normal|refuse|hang|nodaemon|closed SECONDS\n");
		return 1;
	}
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(argv[2], modes[i].name)) {
			mode = modes[i].mode;
			found = true;
		}
	secs = atoi(argv[3]);
	if (!found || secs <= 0) {
		fprintf(stderr, "vss-client: bad mode or seconds\n");
		return 1;
	}
	open_vss = strcmp(argv[2], "closed") != 0;
	r = vssg_attach(argv[1], open_vss, &g);
	if (r) {
		fprintf(stderr, "vss-client: attach to %s: %s\n", argv[1], strerror(-r));
		vssg_detach(g);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	r = vssg_serve(g, mode, NULL, 0, secs * 1000);
	if (r && r != -ETIMEDOUT) {
		fprintf(stderr, "vss-client: serve: %s\n", strerror(-r));
		vssg_detach(g);
		return 1;
	}
	printf("freezes=%d thaws=%d hot_backups=%d bu_completes=%d frozen=%d\n",
	       vssg_count(g, VSS_OP_FREEZE), vssg_count(g, VSS_OP_THAW),
	       vssg_count(g, VSS_OP_HOT_BACKUP), vssg_count(g, VSS_OP_BU_COMPLETE),
	       vssg_frozen(g));
	vssg_detach(g);
	return 0;
}
