/* vmm-merge: private to vmm-mini/ (stor.c calls it).  The live merge of
 * merge.c: a LUN's top snapshot child folded into its parent while the
 * guest keeps using the LUN.
 */
#ifndef VMM_MERGE_H
#define VMM_MERGE_H

#include "common/bdev.h"
#include "vmm-mini/vmm.h"

/* sw: the LUN's switch layer, whose disk is the chain child_path ->
 * parent_path (opened by the caller, which serialises switches of sw).
 * The parent is opened writable beside the chain; every range the child
 * holds is copied into it while I/O goes on, then the ranges written
 * meanwhile, pass after pass; the last ones under a short hold of sw, then
 * the parent is flushed, the child and CHILD.frozen.ctk are removed and sw
 * serves the parent's writable handle (*parent_out) from then on; the old
 * chain is closed.  On failure (e filled) sw serves the chain as before
 * and both files are still a valid chain. */
int vmm_merge_live(struct bdev *sw, const char *child_path, const char *parent_path,
		   struct bdev **parent_out, struct vmm_merge_stats *st,
		   struct vmm_stor_err *e);

/* stor.c: fill e ("fmt...", code) and return -code. */
int vmm_stor_err_set(struct vmm_stor_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
