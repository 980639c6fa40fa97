/* gvss: the guest's VSS integration service, what Linux's hv_utils
 * (hv_snapshot.c) and hv_vss_daemon do together: open the VSS channel the
 * host offers, answer NEGOTIATE (framework 3.0, VSS 5.0 only, as Linux),
 * HOT_BACKUP (S_OK, flags VSS_HBU_NO_AUTO_RECOVERY), GET_DM_INFO (flags
 * 0), FREEZE, THAW, BU_COMPLETE and the rest (S_OK), one transaction at a
 * time: while a FREEZE waits for its answer the ring is not read.
 *
 * A FREEZE is the workload's to carry out (stop issuing writes, let those
 * in flight finish, SYNCHRONIZE CACHE every LUN): gvss_poll() leaves it
 * pending, the workload answers it with gvss_freeze_done().  A THAW is
 * answered at once; gvss_frozen() turns false.
 *
 * Modes (the workload's vss= argument): on; off (the channel is never
 * opened: the host sees no service); refuse (FREEZE answered HV_E_FAIL);
 * hang (FREEZE never answered, writes go on; THAW answered when it comes).
 *
 * Freestanding, single-threaded (vCPU 0).  0 or a GV_E* code.
 */
#ifndef GUEST_GVSS_H
#define GUEST_GVSS_H

#include <stdbool.h>
#include <stdint.h>

enum gvss_mode { GVSS_ON, GVSS_OFF, GVSS_REFUSE, GVSS_HANG };

/* The vss= argument of "KEY=V,..." args: false when it names no mode
 * (absent: GVSS_ON). */
bool gvss_parse(const char *args, enum gvss_mode *m);
const char *gvss_mode_str(enum gvss_mode m);
/* After gv_connect (gsc_init): open the VSS channel unless the mode is
 * off; its ring joins what gv_idle() waits for.  No VSS offer is not an
 * error (one console line, the service stays off). */
int gvss_open(enum gvss_mode m);
/* Read and answer what the host sent, without waiting.  A FREEZE in mode
 * on stays pending (gvss_freeze_pending) and nothing more is read until
 * it is answered.  < 0: the channel broke (the service stops). */
int gvss_poll(void);
bool gvss_freeze_pending(void);
/* Answer the pending FREEZE: S_OK (frozen until THAW) or HV_E_FAIL. */
int gvss_freeze_done(bool ok);
/* Answered a FREEZE with S_OK and no THAW came yet. */
bool gvss_frozen(void);
/* FREEZEs answered S_OK, THAWs answered. */
unsigned gvss_freezes(void);
unsigned gvss_thaws(void);

#endif
