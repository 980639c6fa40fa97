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

/* A LUN's disk: a VHD chain (opened O_DIRECT), else a pass-through file
 * or block device (O_DIRECT + libaio), wrapped in change tracking as a
 * layer when IMAGE.ctk exists and the disk is writable. */
struct vmm_disk {
	struct bdev *bd;	/* what the SCSI target gets */
	struct bkp_track *track; /* NULL: not tracked */
	char *path;
	bool ro;
	const char *kind;	/* "vhd-fixed", "passthrough"... */
};

int vmm_disk_open(const char *path, bool ro, struct vmm_disk *d,
		  struct bdev_err *e);
/* Flush, close, finalise tracking.  0 or the first -errno. */
int vmm_disk_close(struct vmm_disk *d, struct bdev_err *e);

/* "--disk" argument: IMAGE[,lun=N][,ro].  *lun = -1 when not given.
 * path is malloc'd. */
int vmm_disk_spec(const char *arg, char **path, int *lun, bool *ro);

/* One control request: a JSON object on one line with string and
 * unsigned integer members only ({"cmd":"disk-add","path":"x","lun":2}).
 * Unknown members are ignored; strings may hold \" \\ \/ \n \t \uXXXX
 * (ASCII).  -EINVAL with *why on malformed input. */
struct vmm_req {
	char cmd[32];
	char path[1024];
	int64_t lun;		/* -1: absent */
	bool ro;
};
int vmm_req_parse(const char *line, struct vmm_req *r, const char **why);
/* Append s to out as a JSON string (quotes included); returns the bytes
 * it needed (like snprintf). */
size_t vmm_json_str(char *out, size_t cap, const char *s);

#endif
