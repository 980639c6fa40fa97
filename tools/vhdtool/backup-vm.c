/* vhdtool backup create REPO --vm CTL: a live backup of a running VM's
 * disks (docs/ARCHITECTURE.md, "Live backups").
 *
 *  1. "disks": refuse a LUN that already has a snapshot child (a snapshot
 *     left behind; `vhdtool vm CTL merge LUN` first).
 *  2. "backup-snapshot": the VMM freezes the guest, switches each LUN's
 *     writes to a new child and thaws; the answer names, per LUN, the
 *     frozen image, the child and the frozen tracking file.  If it fails,
 *     nothing stays switched and nothing is backed up.
 *  3. One backup per frozen image (read only, as the child's parent the
 *     VMM does not write it), all with one group id.
 *  4. "merge" of every LUN, whatever step 3 did: the guest goes on on its
 *     original image.
 * Interrupted (SIGINT, SIGTERM, SIGHUP), the backup running stops and the
 * LUNs are still merged back.  Killed at any moment, the VMM still
 * finishes its part; a snapshot left behind is merged with `vhdtool vm CTL
 * merge LUN`.
 */
#include "vhdtool.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/bkp.h"
#include "common/json.h"
#include "common/util.h"
#include "vhd/vhd.h"
#include "vmm-mini/vmmc.h"

#define SLOW_MS (3600 * 1000)   /* snapshot and merge answers */

/* SIGINT/SIGTERM/SIGHUP once: stop backing up, still merge back, exit 1
 * (a second one kills as usual: SA_RESETHAND). */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}
#define MAX_DISKS 64

struct live_disk {
	int lun;
	const char *frozen, *child, *ctk;   /* in the snapshot answer */
	bool backed_up, merged;
	struct bkp_info info;
	char *merge_answer;
	double merge_s;                     /* from the answer, -1 unknown */
	int64_t merge_held_us;
};

/* The LUN list "0,2" holds lun (an empty list: every LUN). */
static bool listed(const char *luns, int64_t lun)
{
	char buf[256], *save = NULL;

	if (!luns[0])
		return true;
	snprintf(buf, sizeof(buf), "%s", luns);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (atoll(t) == lun)
			return true;
	return false;
}

/* Step 1: no LUN to back up may have a snapshot child already.  0 or 1. */
static int check_no_children(struct vmmc *c, const char *ctl, const char *luns)
{
	struct vt_vm_answer a = { 0 };
	const struct vmmc_val *d;
	int rc = 0;

	if (vt_vm_call(c, ctl, "{\"cmd\":\"disks\"}", 30000, &a)) {
		vt_vm_answer_free(&a);
		return 1;
	}
	d = vmmc_get(a.root, "disks");
	for (const struct vmmc_val *x = d && d->type == VMMC_ARR ? d->first : NULL; x;
	     x = x->next) {
		const char *kind = vmmc_get_str(x, "kind"), *top = vmmc_get_str(x, "top");
		const struct vmmc_val *ro = vmmc_get(x, "ro");
		int64_t lun, snaps;

		if (!vmmc_get_int(x, "lun", &lun) || !vmmc_get_int(x, "snapshots", &snaps))
			continue;
		/* without --disk: the LUNs the VMM snapshots (writable VHDs) */
		if (!luns[0] && (!kind || strncmp(kind, "vhd", 3) || (ro && ro->b)))
			continue;
		if (listed(luns, lun) && snaps > 0) {
			vt_err(ctl, "LUN %lld already has a snapshot child (%s): run `vhdtool vm %s merge %lld` first",
			       (long long)lun, top ? top : "?", ctl, (long long)lun);
			rc = 1;
		}
	}
	vt_vm_answer_free(&a);
	return rc;
}

/* The disks of the snapshot answer into v; false (printed) when it does
 * not have the shape the design gives.  LUNs found are kept in v even
 * then, so that they can be merged. */
static bool read_disks(const struct vmmc_val *root, const char *ctl,
		       struct live_disk *v, int *n)
{
	const struct vmmc_val *d = vmmc_get(root, "disks");
	bool ok = d && d->type == VMMC_ARR && d->n > 0;

	*n = 0;
	for (const struct vmmc_val *x = d && d->type == VMMC_ARR ? d->first : NULL;
	     x && *n < MAX_DISKS; x = x->next) {
		const struct vmmc_val *ctk = vmmc_get(x, "ctk");
		struct live_disk *l = &v[*n];
		int64_t lun;

		if (!vmmc_get_int(x, "lun", &lun) || lun < 0 || lun > 63) {
			ok = false;
			continue;
		}
		memset(l, 0, sizeof(*l));
		l->lun = (int)lun;
		l->frozen = vmmc_get_str(x, "frozen");
		l->child = vmmc_get_str(x, "child");
		l->ctk = ctk ? (ctk->type == VMMC_STR && ctk->s[0] ? ctk->s : NULL) : NULL;
		if (!l->frozen || !l->frozen[0] || !l->child ||
		    (ctk && ctk->type != VMMC_NULL && ctk->type != VMMC_STR))
			ok = false;
		(*n)++;
	}
	if (!ok)
		vt_err(ctl, "the VMM's backup-snapshot answer does not list its disks as expected");
	return ok;
}

/* The frozen image, read only.  The VMM holds it as its child's read-only
 * parent (a shared lock); if it holds it some other way, read it without
 * a lock (-U): it does not write it while the child is on top. */
static struct bdev *open_frozen(const char *path)
{
	struct vhd_open_opts o = { .flags = VHD_O_RDONLY };
	struct bdev_err e = { 0 };
	struct bdev *b = vhd_open(path, &o, &e);

	if (!b && e.code == EBUSY) {
		o.flags |= VHD_O_FORCE_SHARE;
		b = vhd_open(path, &o, &e);
	}
	if (!b)
		vt_err(NULL, "%s", e.msg);
	return b;
}

static int backup_one(struct bkp_repo *r, struct live_disk *l, const char *group,
		      const char *consistency, uint64_t window_us,
		      const struct bkp_create_opts *base)
{
	struct bkp_create_opts o = *base;
	struct bdev_err e = { 0 };
	struct bdev *src = open_frozen(l->frozen);
	int rc;

	if (!src)
		return 1;
	o.source = l->frozen;
	o.group = group;
	o.frozen_ctk = l->ctk;
	o.no_track = !l->ctk;
	o.consistency = consistency;
	o.vm_lun = (uint32_t)l->lun;
	o.freeze_window_us = window_us;
	o.cancel = &interrupted;
	rc = bkp_create(r, src, &o, &l->info, &e);
	bdev_close(src);
	if (rc) {
		vt_err(NULL, "LUN %d: backup of %s failed: %s", l->lun, l->frozen, e.msg);
		return 1;
	}
	l->backed_up = true;
	return 0;
}

/* Step 4 for one LUN. */
static int merge_one(struct vmmc *c, const char *ctl, struct live_disk *l)
{
	struct vt_vm_answer a = { 0 };
	char req[64];
	int rc;

	snprintf(req, sizeof(req), "{\"cmd\":\"merge\",\"lun\":%d}", l->lun);
	rc = vt_vm_call(c, ctl, req, SLOW_MS, &a);
	if (rc)
		vt_err(ctl, "LUN %d: the snapshot child %s is still there: run `vhdtool vm %s merge %d`",
		       l->lun, l->child ? l->child : "?", ctl, l->lun);
	else
		l->merged = true;
	l->merge_s = -1;
	if (!rc && vmmc_get(a.root, "seconds") && vmmc_get(a.root, "seconds")->type == VMMC_NUM)
		l->merge_s = vmmc_get(a.root, "seconds")->num;
	if (rc || !vmmc_get_int(a.root, "held_us", &l->merge_held_us))
		l->merge_held_us = -1;
	l->merge_answer = a.line;
	a.line = NULL;
	vt_vm_answer_free(&a);
	return rc;
}

static void report(const struct live_disk *v, int n, const char *group,
		   const char *consistency, const char *why, uint64_t window_us,
		   int64_t held_us, bool json)
{
	if (json) {
		struct json j;

		json_begin(&j, stdout);
		json_obj(&j);
		json_kv_str(&j, "group", group);
		json_kv_str(&j, "consistency", consistency);
		json_kv_str(&j, "why", why);
		json_kv_u64(&j, "window_us", window_us);
		json_key(&j, "held_us");
		json_i64(&j, held_us);
		json_key(&j, "disks");
		json_arr(&j);
		for (int i = 0; i < n; i++) {
			char *m = v[i].backed_up ? bkp_info_json(&v[i].info) : NULL;

			json_obj(&j);
			json_kv_u64(&j, "lun", (uint64_t)v[i].lun);
			json_key(&j, "backup");
			json_raw(&j, m ? m : "null");
			json_kv_bool(&j, "merged", v[i].merged);
			json_key(&j, "merge");
			json_raw(&j, v[i].merge_answer ? v[i].merge_answer : "null");
			json_end_obj(&j);
			free(m);
		}
		json_end_arr(&j);
		json_end_obj(&j);
		json_finish(&j);
		return;
	}
	fprintf(stderr, "live backup, group %s: %s-consistent%s%s, freeze window %.1f ms, I/O held %.1f ms\n",
		group, consistency, why[0] ? ": " : "", why, (double)window_us / 1000.0,
		(double)held_us / 1000.0);
	for (int i = 0; i < n; i++) {
		const struct bkp_info *b = &v[i].info;

		if (v[i].backed_up)
			printf("LUN %d: %s %s, read %llu of %llu chunks, %s\n", v[i].lun, b->id,
			       b->incremental ? "incremental" : "full",
			       (unsigned long long)b->chunks_read,
			       (unsigned long long)b->chunks, b->source);
		else
			printf("LUN %d: not backed up\n", v[i].lun);
		if (!v[i].merged)
			printf("LUN %d: NOT merged back\n", v[i].lun);
		else if (v[i].merge_s >= 0 && v[i].merge_held_us >= 0)
			printf("LUN %d: merged back in %.2f s (I/O held %.1f ms)\n", v[i].lun,
			       v[i].merge_s, (double)v[i].merge_held_us / 1000.0);
		else
			printf("LUN %d: merged back\n", v[i].lun);
	}
}

int vt_backup_vm(const char *repo, const char *ctl, const char *luns, long freeze_ms,
		 bool require_app, const struct bkp_create_opts *base, bool json)
{
	char req[512], group[BKP_ID_MAX], why[256] = "", consistency[24] = "";
	struct live_disk v[MAX_DISKS];
	struct vt_vm_answer a = { 0 };
	struct bkp_repo *r;
	int64_t window = 0, held = 0;
	struct vmmc *c;
	int n = 0, rc = 0;
	bool ok;

	r = vt_backup_open(repo, true);
	if (!r)
		return 1;
	if (bkp_group_new(group)) {
		vt_err(NULL, "no random bytes for the group id");
		bkp_close(r);
		return 1;
	}
	catch_signals();
	c = vt_vm_connect(ctl);
	if (!c || check_no_children(c, ctl, luns)) {
		vmmc_close(c);
		bkp_close(r);
		return 1;
	}
	vt_vm_snapshot_req(req, sizeof(req), luns, freeze_ms, require_app);
	if (interrupted || vt_vm_call(c, ctl, req, SLOW_MS, &a)) {
		vt_err(NULL, "no snapshot was taken: nothing backed up");
		vt_vm_answer_free(&a);
		vmmc_close(c);
		bkp_close(r);
		return 1;
	}
	ok = read_disks(a.root, ctl, v, &n);
	snprintf(consistency, sizeof(consistency), "%s",
		 vmmc_get_str(a.root, "consistency") ? vmmc_get_str(a.root, "consistency") : "");
	snprintf(why, sizeof(why), "%s", vmmc_get_str(a.root, "why") ? vmmc_get_str(a.root, "why") : "");
	if (!vmmc_get_int(a.root, "window_us", &window) || window < 0)
		window = 0;
	if (!vmmc_get_int(a.root, "held_us", &held))
		held = 0;
	if (ok && strcmp(consistency, "application") && strcmp(consistency, "crash")) {
		vt_err(ctl, "the snapshot's consistency '%s' is neither application nor crash",
		       consistency);
		ok = false;
	}
	for (int i = 0; ok && i < n; i++) {
		if (interrupted) {
			vt_err(NULL, "interrupted: LUN %d not backed up", v[i].lun);
			rc = 1;
			continue;
		}
		if (!json)
			fprintf(stderr, "LUN %d: backing up %s\n", v[i].lun, v[i].frozen);
		rc |= backup_one(r, &v[i], group, consistency, (uint64_t)window, base);
	}
	if (!ok)
		rc = 1;
	for (int i = 0; i < n; i++)
		rc |= merge_one(c, ctl, &v[i]);
	report(v, n, group, consistency[0] ? consistency : "none", why, (uint64_t)window,
	       held, json);
	for (int i = 0; i < n; i++)
		free(v[i].merge_answer);
	vt_vm_answer_free(&a);
	vmmc_close(c);
	bkp_close(r);
	return rc ? 1 : 0;
}
