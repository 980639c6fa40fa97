/* vssguest: the guest side of the VSS integration service for tests, in a
 * process attached through the vmbus transport (as storvsc.c is for
 * storage).  Answers as Linux hv_utils + hv_vss_daemon do: NEGOTIATE
 * (framework 3.0, VSS 5.0 only), HOT_BACKUP (S_OK, flags 5), GET_DM_INFO
 * (flags 0), FREEZE (hook: let in-flight writes finish, flush, stop
 * writing), THAW (hook: resume), BU_COMPLETE and the rest (S_OK).
 * Variants refuse FREEZE, never answer it, answer like a guest without
 * the daemon, or misbehave on purpose.
 *
 * Single-threaded; no cmocka.  0 or -errno.
 */
#ifndef TESTS_VSSGUEST_H
#define TESTS_VSSGUEST_H

#include <stdbool.h>
#include <stdint.h>

enum vssg_mode {
	VSSG_NORMAL,
	VSSG_REFUSE_FREEZE,	/* FREEZE answered HV_E_FAIL */
	VSSG_SILENT_FREEZE,	/* FREEZE frozen but never answered */
	VSSG_NO_DAEMON,		/* HOT_BACKUP/FREEZE/THAW: HV_E_FAIL at once */
	VSSG_BAD_LENGTH,	/* HOT_BACKUP answered 8 bytes short */
	VSSG_WRONG_ID,		/* HOT_BACKUP answered with the wrong trans_id */
	VSSG_FLOOD,		/* 3000 junk packets instead of answering */
	VSSG_REQUEST_FLAGS,	/* HOT_BACKUP answered with icflags 0x03 */
};

struct vssg_hooks {
	void (*freeze)(void *opaque);	/* before answering FREEZE */
	void (*thaw)(void *opaque);	/* before answering THAW */
	void *opaque;
};

struct vssg;

/* Attach, contact, offers; open the VSS channel when open_vss (a guest
 * without the service leaves it closed).  -ENODEV: no VSS offer. */
int vssg_attach(const char *sock, bool open_vss, struct vssg **out);
void vssg_detach(struct vssg *g);
/* Serve until stop_fd is readable (or hung up) or timeout_ms passed. */
int vssg_serve(struct vssg *g, enum vssg_mode mode, const struct vssg_hooks *h,
	       int stop_fd, int timeout_ms);
bool vssg_frozen(const struct vssg *g);
/* Messages handled by operation (index enum vss_op), negotiations. */
int vssg_count(const struct vssg *g, int op);
int vssg_negotiations(const struct vssg *g);

#endif
