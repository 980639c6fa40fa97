/* vhdtool: shared declarations of the command-line front end.
 *
 * Each subcommand lives in its own file and registers itself with
 * VHDTOOL_COMMAND(); main.c dispatches by name.  A subcommand returns the
 * process exit status: 0 success, 1 failure, 2 usage error (VT_EXIT_*);
 * check has qemu-img's codes instead (check.c). */
#ifndef VHDTOOL_H
#define VHDTOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/bdev.h"

#define VT_EXIT_OK    0
#define VT_EXIT_FAIL  1
#define VT_EXIT_USAGE 2

struct vhdtool_cmd {
	const char *name;
	const char *usage;   /* one or more lines after "vhdtool " */
	const char *summary;
	int (*run)(int argc, char **argv);
};

void vhdtool_register(const struct vhdtool_cmd *cmd);

#define VHDTOOL_COMMAND(id, ...)                                        \
	static const struct vhdtool_cmd id##_cmd = { __VA_ARGS__ };     \
	static void __attribute__((constructor)) id##_register(void)    \
	{ vhdtool_register(&id##_cmd); }

/* "vhdtool: WHAT: message" on stderr, always one line. */
void vt_err(const char *what, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print the usage of cmd to stderr and return 2. */
int vt_usage(const struct vhdtool_cmd *cmd);
/* Parse a size/offset argument; prints the error and returns false. */
bool vt_parse_size(const char *what, const char *s, uint64_t *out);

/* Open any disk: a VHD (any type, with its chain) or, when the file has
 * no VHD footer and allow_raw is set, a raw file or block device.
 * Prints the error and returns NULL on failure. */
#define VT_OPEN_RDONLY     0x1u
#define VT_OPEN_RAW_OK     0x2u
#define VT_OPEN_NO_UUID    0x4u   /* do not verify parent UUIDs */
#define VT_OPEN_SIZE_FOOTER 0x8u  /* use the footer's current size */
#define VT_OPEN_SIZE_CHS   0x10u  /* use the CHS geometry size */
#define VT_OPEN_FORCE_SHARE 0x40u /* -U: read an image in use (no reader
                                   * lock); refused for writable opens */
#define VT_OPEN_DIRECT     0x20u  /* O_DIRECT + libaio (VHD data, raw files,
                                   * block devices) */
#define VT_OPEN_FMT_RAW    0x80u  /* -f raw: the file's bytes, VHD or not */
#define VT_OPEN_FMT_VHD    0x100u /* -f vpc: a VHD image, never raw */
struct bdev *vt_open(const char *path, unsigned flags);
/* A fresh temporary differencing child of the VHD at path (writes go to
 * it and vanish at exit); prints the error and returns NULL on failure. */
struct bdev *vt_open_snapshot(const char *path);
/* vhdtool serve --iscsi (serve-iscsi.c); cmd: for usage errors. */
int vt_serve_iscsi(int argc, char **argv, const struct vhdtool_cmd *cmd);
/* A server's counters at exit (serve.c, serve-iscsi.c): with json one
 * object {"statistics": {KEY: VALUE...}} on stdout, else with verbose one
 * line "vhdtool: serve: at exit: VALUE KEY, ..." on stderr. */
struct vt_stat {
	const char *key;
	uint64_t value;
};
void vt_serve_stats(const struct vt_stat *st, size_t n, bool json, bool verbose);
/* Socket activation (LISTEN_FDS/LISTEN_PID): the count of listening
 * sockets from descriptor LISTEN_FDS_START (common/listen.h) on, 0 when
 * not activated, -1 (printed) when malformed. */
int vt_activation_fds(void);
/* --exit-with-parent: false (printed) when it cannot be set up. */
bool vt_exit_with_parent(int parent);
/* serve's options that cannot go together (both front ends): false,
 * printed, for --snapshot with --read-only, --direct or -f raw. */
bool vt_serve_opts_ok(bool read_only, bool snapshot, unsigned oflags);
/* True when -U/--force-share was given (commands that do not open through
 * vt_open apply it themselves: check). */
bool vt_force_share(void);
/* Print bdev b's last error as "vhdtool: message". */
void vt_bdev_err(struct bdev *b);
/* The kind of the disk at the bottom of b's layers (vhd-sparse, raw...). */
const char *vt_kind(const struct bdev *b);

/* Backups of an RBD image with its snapshots as change source
 * (backup-rbd.c): vt_rbd_snaps_init fills v->s for bkp_create_opts.snaps
 * when img is an RBD image at its head (false otherwise: also for @SNAP);
 * img stays open meanwhile. */
#include "backup/bkp.h"
#include "rbd/rbd.h"
struct vt_rbd_snaps {
	struct bkp_snapshots s;
	struct bdev *img;               /* the live image */
	struct bdev *snap;              /* the new snapshot, read */
	struct rbd_claim *claim;        /* held on it while the backup runs */
	char name[BKP_SNAP_MAX];
	struct rbd_extent *ext;         /* changed since the base */
	size_t n;
};
bool vt_rbd_snaps_init(struct vt_rbd_snaps *v, struct bdev *img);
void vt_rbd_snaps_fini(struct vt_rbd_snaps *v);

/* --output human|json: false (message printed) when neither. */
bool vt_parse_output(const char *s, bool *json);

/* The VMM's control socket (vm.c; client: vmm-mini/vmmc.h). */
struct vmmc;
struct vmmc_doc;
struct vmmc_val;
struct vt_vm_answer {
	char *line;                   /* the answer as received */
	struct vmmc_doc *doc;
	const struct vmmc_val *root;  /* an object */
};
/* Connect (5 s while the VMM's queue is full); prints and returns NULL on
 * failure. */
struct vmmc *vt_vm_connect(const char *ctl);
/* One request and its answer, parsed into *a (vt_vm_answer_free it in
 * any case).  Returns 1 after printing "vhdtool: CTL: why" when the call
 * failed, the answer is not a JSON object, or it is {"error": ...} (the
 * VMM's message); 0 otherwise. */
int vt_vm_call(struct vmmc *c, const char *ctl, const char *req, int timeout_ms,
	       struct vt_vm_answer *a);
void vt_vm_answer_free(struct vt_vm_answer *a);
/* The backup-snapshot request (luns "0,2" or NULL for every writable VHD
 * LUN; freeze_ms <= 0 for the VMM's default). */
void vt_vm_snapshot_req(char *req, size_t cap, const char *luns, long freeze_ms,
			bool require_app);
/* Append the LUN arg to the list "0,2" (prints and returns false when it
 * is not a LUN). */
bool vt_vm_add_lun(char *luns, size_t cap, const char *arg);
/* Milliseconds, 1 to 3600000; prints and returns false otherwise. */
bool vt_parse_ms(const char *what, const char *s, long *out);
/* backup create REPO --vm CTL (backup-vm.c): snapshot, back up each frozen
 * image with base's options, merge back; the exit status. */
struct bkp_create_opts;
struct bkp_repo;
/* Open a backup repository (backup.c) with the S3 options given to
 * "backup" (--s3-endpoint, --connections, ...) and, for list, show and
 * create, the manifest cache; prints and returns NULL on failure. */
struct bkp_repo *vt_backup_open(const char *path, bool cached);
int vt_backup_vm(const char *repo, const char *ctl, const char *luns, long freeze_ms,
		 bool require_app, const struct bkp_create_opts *base, bool json);

/* Shared options (options.c).  VT_OUTPUT_LONGOPTS go into a command's
 * getopt_long table; vt_output_opt() takes what getopt_long returned for
 * them (VT_OPT_OUTPUT with its argument, or VT_OPT_JSON) and sets *json;
 * false (message printed) for a value that is not human or json. */
#define VT_OPT_OUTPUT 0x1001
#define VT_OPT_JSON   0x1002
#define VT_OUTPUT_LONGOPTS                                              \
	{ "output", required_argument, NULL, VT_OPT_OUTPUT },           \
	{ "json", no_argument, NULL, VT_OPT_JSON }
bool vt_output_opt(int c, const char *arg, bool *json);
/* -f FMT / --format=FMT (qemu-img's source format): raw, vpc or vhd into
 * VT_OPEN_FMT_* of *open_flags; false (printed) for another name. */
#define VT_FORMAT_LONGOPT { "format", required_argument, NULL, 'f' }
bool vt_format_opt(const char *arg, unsigned *open_flags);
/* The shared options in one call, for a getopt_long loop's default case:
 * -f FMT when open_flags is not NULL, --output/--json when json is not
 * NULL.  1 when c was one of them (taken), 0 when it was not (a usage
 * error for the caller), -1 after a value that is not valid (printed). */
int vt_shared_opt(int c, const char *arg, unsigned *open_flags, bool *json);
/* Refuse two options that make no sense together: false (printed,
 * "A and B cannot be used together") when both were given. */
bool vt_exclusive(const char *a, bool has_a, const char *b, bool has_b);

/* Progress bars and interruption (progress.c), for long operations:
 * convert, compact, merge.  vt_progress_cb() matches bdev_progress_fn and
 * vhd_progress_fn: it draws the bar (percent, MiB/s, ETA) on a terminal
 * when enabled, and returns 1 once SIGINT/SIGTERM/SIGHUP arrived (after
 * vt_catch_signals()) so the operation stops cleanly. */
struct vt_progress {
	const char *what;
	bool enabled, tty;
	double start, last;
	int last_pct;
	unsigned step_delay_us;   /* VHDTOOL_TEST_STEP_DELAY_US (crash tests) */
	char extra[64];           /* shown after the rate when set (the
				   * caller updates it: "12.0 MiB/s to s3") */
};
void vt_progress_init(struct vt_progress *p, const char *what, bool enabled);
int vt_progress_cb(void *opaque, uint64_t done, uint64_t total);
void vt_progress_end(struct vt_progress *p);
void vt_catch_signals(void);
bool vt_interrupted(void);

#endif
