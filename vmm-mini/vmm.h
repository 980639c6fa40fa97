/* vmm: the library half of vmm-mini (the program's entry point is
 * vmm-mini/main.c): disks for LUNs, and the control protocol's requests.
 *
 * Return convention: 0 or -errno; messages in a struct bdev_err.  Nothing
 * here prints or exits.
 */
#ifndef VMM_MINI_VMM_H
#define VMM_MINI_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bdev.h"

struct bkp_track;

/* A LUN's disk: a VHD chain (opened O_DIRECT), a Ceph RBD image
 * (rbd:POOL[/NS]/IMAGE[:conf=PATH], rbd/rbd.h; never tracked), else a
 * pass-through file or block device (O_DIRECT + libaio), wrapped in change
 * tracking as a layer when IMAGE.ctk exists and the disk is writable. */
struct vmm_disk {
	struct bdev *bd;	/* what the SCSI target gets */
	struct bkp_track *track; /* NULL: not tracked */
	char *path;
	bool ro;
	const char *kind;	/* "vhd-fixed", "passthrough"... */
};

int vmm_disk_open(const char *path, bool ro, struct vmm_disk *d,
		  struct bdev_err *e);
/* The same without the tracking layer (d->bd is the image, d->track
 * NULL): for a LUN whose tracking sits above a switch (stor.c). */
int vmm_disk_open_bare(const char *path, bool ro, struct vmm_disk *d,
		       struct bdev_err *e);
/* Flush, close, finalise tracking.  0 or the first -errno. */
int vmm_disk_close(struct vmm_disk *d, struct bdev_err *e);

/* "--disk" argument: IMAGE[,lun=N][,ro].  *lun = -1 when not given.
 * path is malloc'd. */
int vmm_disk_spec(const char *arg, char **path, int *lun, bool *ro);

/* One control request: a JSON object on one line with string,
 * unsigned integer and boolean members only
 * ({"cmd":"disk-add","path":"x","lun":2}).  Unknown members are ignored;
 * strings may hold \" \\ \/ \n \t \uXXXX (ASCII).  -EINVAL with *why on
 * malformed input (also a "luns" that is not a list of LUNs). */
struct vmm_req {
	char cmd[32];
	char path[1024];
	int64_t lun;		/* -1: absent */
	bool ro;
	/* backup-snapshot: */
	char luns[256];		/* "0,2": LUN numbers (< 64) and commas; "": absent */
	int64_t freeze_timeout;	/* ms; 10000 when absent */
	bool require_app;	/* false when absent */
};
int vmm_req_parse(const char *line, struct vmm_req *r, const char **why);
/* Append s to out as a JSON string (quotes included); returns the bytes
 * it needed (like snprintf). */
size_t vmm_json_str(char *out, size_t cap, const char *s);

/* ---- stor.c: a SCSI controller's disks (host and run) ---- */

struct vmbus_mgr;
struct vsp;
struct vmm_stor;

struct vmm_stor_cfg {
	struct vmbus_mgr *mgr;	/* the controller is offered here */
	void *guest_mem;	/* the partition's memory as the host maps it */
	uint64_t guest_bytes;	/* GPAs below this are the guest's */
	uint32_t max_transfer;	/* 0: 1 MiB */
	uint16_t subchannels;
	int cpu;		/* >= 0: pin the storvsp threads there */
	/* Each LUN behind a switch layer: snapshot and merge while running.
	 * A writable LUN's stack is then: the LUN -> a hold switch (drains
	 * everything above the chain for a snapshot's freeze) -> the change
	 * tracking observer (IMAGE.ctk of the image given; writes recorded
	 * whichever file of the chain takes them) -> the switch -> the VHD
	 * chain.  Two mutexes more a request. */
	bool switchable;
};

struct vmm_stor_err {
	int code;		/* positive errno */
	char msg[600];
};

/* vsp_new on cfg->mgr (the manager's thread). */
int vmm_stor_new(const struct vmm_stor_cfg *cfg, struct vmm_stor **out);
/* After the channels closed: removes the LUNs, closes (flushing) their
 * disks.  0 or the first -errno (*e says which). */
int vmm_stor_free(struct vmm_stor *s, struct vmm_stor_err *e);
struct vsp *vmm_stor_vsp(struct vmm_stor *s);

/* Open IMAGE (vmm_disk_open) as LUN lun (-1: the first free) and hot add
 * it.  Returns the LUN or -errno. */
int vmm_stor_add(struct vmm_stor *s, const char *path, int lun, bool ro,
		 struct vmm_stor_err *e);
/* Hot remove (waits for the LUN's commands), flush and close. */
int vmm_stor_remove(struct vmm_stor *s, int lun, struct vmm_stor_err *e);
/* Switchable writable VHD LUNs: create a differencing child beside its
 * top image (NAME-snapN.vhd), drain the LUN, switch the LUN's writes to
 * it (the phases below, one after the other).  *parent and *child
 * (malloc'd) name both files. */
int vmm_stor_snapshot(struct vmm_stor *s, int lun, char **parent, char **child,
		      struct vmm_stor_err *e);
/* ---- A snapshot in phases, for a live backup (several LUNs at one
 * point in time, the guest frozen in between):
 *   prepare  (I/O flows)  create the differencing child NAME-snapN.vhd
 *                         beside the LUN's top image; the LUN is busy
 *                         (other control operations on it: -EBUSY) until
 *                         finish or abort
 *   hold     hold new requests, wait for those in flight, flush
 *   commit   (held)       open the child over the now quiet top image; for
 *                         a tracked LUN, freeze the change-tracking marks
 *                         and bump the tracker's epoch (memory only)
 *   release               the LUN's requests go on, to the child when
 *                         committed (else to the image as before)
 *   finish   (I/O flows)  for a tracked LUN write the frozen tracking file
 *                         CHILD.frozen.ctk; fill *info; free p
 *   abort                 instead of finish, at any point: before release
 *                         (held or not) nothing stays switched and the child
 *                         file goes; after a committed release the snapshot
 *                         stays (mergeable with vmm_stor_merge), only the
 *                         frozen tracking file goes
 * hold, commit and release take no lock a running request needs; prepare,
 * finish and abort take the controller's lock for a moment.  Each phase is
 * called at most once and in this order (hold/commit may be skipped; a hold
 * needs its release).  The caller finishes or aborts every prepared
 * snapshot before vmm_stor_free. */
struct vmm_stor_snap;
/* -ENOENT: no such LUN; -ENOTSUP: not a writable VHD behind a switch (so
 * "every writable VHD LUN" is the LUNs 0..63 where prepare does not say
 * ENOENT or ENOTSUP); -EBUSY: another snapshot runs on it; -EMLINK: too
 * many snapshot children already. */
int vmm_stor_snap_prepare(struct vmm_stor *s, int lun, struct vmm_stor_snap **out,
			  struct vmm_stor_err *e);
int vmm_stor_snap_hold(struct vmm_stor_snap *p, struct vmm_stor_err *e);
int vmm_stor_snap_commit(struct vmm_stor_snap *p, struct vmm_stor_err *e);
void vmm_stor_snap_release(struct vmm_stor_snap *p);
struct vmm_stor_snap_info {
	int lun;
	char frozen[4096];	/* the image frozen at the snapshot (absolute) */
	char child[4096];	/* the child taking the writes now (absolute) */
	char ctk[4096];		/* its frozen tracking file; "": untracked LUN */
};
/* After release.  0 with *info filled, or -errno (the snapshot is in place
 * all the same, info still filled, ctk ""); p is freed either way. */
int vmm_stor_snap_finish(struct vmm_stor_snap *p, struct vmm_stor_snap_info *info,
			 struct vmm_stor_err *e);
void vmm_stor_snap_abort(struct vmm_stor_snap *p);

/* What a live merge did (merge.c). */
struct vmm_merge_stats {
	double seconds;		/* the whole merge */
	uint64_t held_us;	/* the LUN's I/O was held (short steps only) */
	uint64_t bytes;		/* copied into the parent, re-copies included */
	int passes;		/* copy passes: the first, then the re-copies */
};
/* Fold the top snapshot child back into its parent LIVE and serve the
 * parent again: the guest keeps reading and writing while the child's
 * data is copied; its requests are held only for the last step (merge.c).
 * *into and *child (malloc'd, the child's file is gone) name both; st
 * (may be NULL) says how long it took. */
int vmm_stor_merge(struct vmm_stor *s, int lun, char **into, char **child,
		   struct vmm_merge_stats *st, struct vmm_stor_err *e);
/* {"disks":[...]} into out. */
int vmm_stor_disks_json(struct vmm_stor *s, char *out, size_t cap);
int vmm_stor_flush(struct vmm_stor *s, struct vmm_stor_err *e);
int vmm_stor_quiesce(struct vmm_stor *s, int timeout_ms);
/* Serve the control requests about disks (disks, disk-add, disk-remove,
 * snapshot, merge, stats): false when q is none of them.  A merge also
 * removes the merged child's frozen tracking file (CHILD.frozen.ctk). */
bool vmm_stor_control(struct vmm_stor *s, const struct vmm_req *q, char *out, size_t cap);

/* `vmm-mini check-records IMAGE[,flushed=SEQ]...` (checkrec.c): prints
 * and returns the exit status. */
int vmm_cmd_check_records(int argc, char **argv);

/* ---- ctl.c: the control socket (one JSON object a line each way) ---- */

struct vmm_ctl;
/* Listen on path (replaced if it exists) and serve one client at a time
 * from a thread: handle(opaque, request line, answer buffer, its size)
 * for each line.  0 or -errno. */
int vmm_ctl_start(const char *path,
		  void (*handle)(void *opaque, const char *line, char *out, size_t cap),
		  void *opaque, struct vmm_ctl **out);
/* Stop the thread, close and remove the socket. */
void vmm_ctl_stop(struct vmm_ctl *c);

/* ---- vsscmd.c: the VSS channel and the backup-snapshot command ---- */

struct vss;
/* Offer this VMM's VSS integration channel on mgr (the manager's
 * thread, before the guest connects).  0 or -errno. */
int vmm_vss_offer(struct vmbus_mgr *mgr, struct vss **out);
/* Serve {"cmd":"backup-snapshot",["luns":"0,2"],["freeze_timeout":MS],
 * ["require_app":true]}: vss_backup over the LUNs' snapshot phases
 * (vmm_stor_snap_*), one answer line into out.  v may be NULL (no
 * channel: crash-consistent).  false when q is another command. */
bool vmm_vss_control(struct vmm_stor *s, struct vss *v, const struct vmm_req *q, char *out,
		     size_t cap);

#endif
