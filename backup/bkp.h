/* bkp: backups of any struct bdev into a deduplicating chunk repository,
 * incremental through change tracking; restore, verify, prune, gc.
 *
 * The repository is a directory (format: docs/backup-format.md): chunks of
 * the disk named by their SHA-256, zlib-compressed when that pays, and per
 * backup an index (digests in disk order) and a JSON manifest.  Every file
 * appears under its final name only when complete (temporary name, fsync,
 * rename), so an interrupted backup leaves no visible half backup.
 *
 * Change tracking: IMAGE.ctk beside an image records, per 4 MiB of the
 * disk, the tracking epoch in which it was last written.  The first backup
 * of an image creates the file; from then on every write through a bdev
 * with bkp_track_attach() is recorded.  The file is tied to the image by
 * UUID (VHD) or device/inode (raw), size, ctime/mtime of every layer and a
 * random generation id; an image written by anything else or a writer that
 * died leaves it invalid, and the next backup reads everything.
 *
 * Locking: prune, gc and forget take the repository lock (exclusive);
 * backups register themselves and run alongside each other and alongside
 * gc (the grace rule in docs/backup-format.md); readers take no lock.
 *
 * All functions return 0 or -errno and fill a struct bdev_err ("what,
 * where"); none prints.  Functions taking a repository handle may be
 * called from one thread at a time per handle; each call runs its own
 * worker threads.
 */
#ifndef BKP_H
#define BKP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/bdev.h"

#define BKP_FORMAT_VERSION      1
#define BKP_DEFAULT_CHUNK_SIZE  (4u << 20)
#define BKP_MIN_CHUNK_SIZE      (64u << 10)
#define BKP_MAX_CHUNK_SIZE      (64u << 20)
#define BKP_DEFAULT_GRACE       300       /* seconds, see gc */
#define BKP_ID_MAX              40
#define BKP_SNAP_MAX            96        /* a change-source snapshot's name */

/* ---- repository ---- */

/* Create a repository in directory path (must not exist, or be empty).
 * chunk_size: 0 for the default; else a power of two within the limits. */
int bkp_init(const char *path, uint32_t chunk_size, struct bdev_err *e);

struct bkp_repo;
struct bkp_repo *bkp_open(const char *path, struct bdev_err *e);

/* A repository on object storage: path "s3://BUCKET[/PREFIX]"
 * (docs/backup-format.md, "Storage mapping of version 1 on object
 * storage").  bkp_init and bkp_open accept such URLs too, configured from
 * the environment and the AWS shared files (s3_config_env:
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL,
 * ~/.aws/credentials, ~/.aws/config, ...); these take options that win
 * over it. */
struct bkp_remote {
	const char *endpoint;     /* "http://127.0.0.1:7480"; NULL: environment */
	const char *region;       /* NULL: environment, else us-east-1 */
	int connections;          /* parallel requests and worker threads;
				   * 0: two per CPU */
	int object_lock_days;     /* init: create the bucket with Object Lock
				   * and retain every object this long */
	int retries;              /* attempts after the first on 5xx, 429,
				   * timeouts; 0: the client's default (6) */
	const char *addressing;   /* "path" (ENDPOINT/BUCKET/KEY), "virtual"
				   * (BUCKET.ENDPOINT/KEY); NULL: path with an
				   * endpoint, virtual for AWS */
};
/* Bytes sent to and received from the store since open (object storage;
 * 0 for a folder), for progress lines. */
void bkp_io_counters(const struct bkp_repo *r, uint64_t *sent,
		     uint64_t *received);
/* Whether path is an object-storage URL (s3://). */
bool bkp_is_remote(const char *path);
int bkp_init_remote(const char *url, uint32_t chunk_size,
		    const struct bkp_remote *o, struct bdev_err *e);
struct bkp_repo *bkp_open_remote(const char *url, const struct bkp_remote *o,
				 struct bdev_err *e);
void bkp_close(struct bkp_repo *r);
uint32_t bkp_chunk_size(const struct bkp_repo *r);

/* A backup, as its manifest describes it. */
struct bkp_info {
	char id[BKP_ID_MAX];
	char source[4096];        /* the path backed up */
	char source_format[24];   /* raw, block-device, vhd-fixed, ... */
	char disk_id[64];         /* VHD footer UUID, or raw:DEV:INODE */
	uint64_t virtual_size;
	int64_t time;             /* Unix seconds when the backup started */
	uint32_t time_nsec;
	char consistency[24];     /* offline, inconsistent, unverified; live
				   * backups: application, crash */
	char parent[BKP_ID_MAX];  /* the backup an incremental builds on */
	bool incremental;         /* kind: incremental (true) or full */
	char reason[200];         /* why it was full (empty for incremental) */
	uint32_t chunk_size;
	uint64_t chunks;          /* index entries */
	uint64_t chunks_zero;     /* all-zero chunks (never stored) */
	uint64_t chunks_read;     /* chunks read from the source */
	uint64_t chunks_new;      /* chunk files this backup added */
	uint64_t chunks_replaced; /* damaged chunk files it stored again */
	uint64_t bytes_read;
	uint64_t bytes_new;       /* uncompressed bytes of the new chunks */
	uint64_t bytes_stored;    /* bytes of the chunk files it added */
	double seconds;           /* duration */
	char index_sha256[65];
	char ctk_generation[33];  /* change tracking this backup is tied to ("" none) */
	uint32_t ctk_since;       /* the next incremental reads marks >= this */
	char snapshot[BKP_SNAP_MAX]; /* the disk's own snapshot this backup
				   * read, kept as the next one's base (RBD:
				   * "vhdstack-bkp-ID"); "" none */
	/* Live backups (vhdtool backup create --vm) only; group "" otherwise. */
	char group[BKP_ID_MAX];   /* shared by the disks of one point in time */
	uint32_t vm_lun;          /* the disk's LUN in the VM */
	uint64_t freeze_window_us; /* FREEZE sent -> THAW sent (0: no freeze) */
};

/* Manifest JSON of a backup (malloc'd, one object, no newline at the
 * end); NULL on ENOMEM. */
char *bkp_info_json(const struct bkp_info *b);

/* All readable backups, oldest first (*out malloc'd, free() it).  A
 * manifest that cannot be read is skipped here; bkp_list_damaged and
 * bkp_verify name it. */
int bkp_list(struct bkp_repo *r, struct bkp_info **out, size_t *n,
	     struct bdev_err *e);

/* A backup whose manifest exists but cannot be read. */
struct bkp_damaged {
	char id[BKP_ID_MAX];
	char why[256];            /* "manifest damaged: ..." */
};
/* The backups bkp_list leaves out because their manifest is damaged, by
 * ID (oldest first); *out malloc'd. */
int bkp_list_damaged(struct bkp_repo *r, struct bkp_damaged **out, size_t *n,
		     struct bdev_err *e);
/* Read the manifests of an object-storage repository through a local
 * cache in dir (made 0700, with UUID/backups/ under it): list, show,
 * bkp_find_newest and create then read a manifest from the store once.
 * Manifests are never rewritten, so a copy stays true; a copy that does
 * not parse is fetched again, and bkp_list removes the copies of backups
 * no longer listed.  Meant for list, show and create: verify, restore,
 * repair, prune and gc should judge the store itself and not set it.
 * dir NULL or "" turns the cache off; a folder repository ignores it.
 * 0, or -errno (e) when the cache folder cannot be made. */
int bkp_repo_set_cache(struct bkp_repo *r, const char *dir, struct bdev_err *e);

/* Both from one listing and one read of each manifest: bkp_list's *out
 * and *n, and bkp_list_damaged's *bad and *nbad (bad may be NULL); and,
 * when nforgotten is not NULL, how many backups a forgotten marker hides
 * (bkp_list_forgotten names them). */
int bkp_list_checked(struct bkp_repo *r, struct bkp_info **out, size_t *n,
		     struct bkp_damaged **bad, size_t *nbad, size_t *nforgotten,
		     struct bdev_err *e);
/* A backup forgotten (prune, forget) whose manifest Object Lock still
 * keeps: backups/ID.forgotten hides it from every reader, and gc deletes
 * it once its retention ends. */
struct bkp_forgotten_info {
	struct bkp_info b;        /* b.id always; the rest when readable */
	bool readable;            /* its manifest could be read */
	int64_t until;            /* the recorded end of its retention (0: unknown) */
};
/* The forgotten backups still there, by ID (oldest first); *out malloc'd.
 * Only object storage with Object Lock has any. */
int bkp_list_forgotten(struct bkp_repo *r, struct bkp_forgotten_info **out,
		       size_t *n, struct bdev_err *e);
/* One backup; id "latest" is the newest. */
int bkp_show(struct bkp_repo *r, const char *id, struct bkp_info *out,
	     struct bdev_err *e);

/* ---- create ---- */

/* A disk that records its own changes between snapshots (an RBD image with
 * fast-diff), as change source in place of SOURCE.ctk.  The caller
 * implements it on its back-end; the backup engine sees only this. */
struct bkp_snapshots {
	void *opaque;
	/* Take a snapshot for backup id before anything is read: its name
	 * in name (recorded in the manifest) and the disk as of the
	 * snapshot in *snap (read-only; the source owns it and closes it in
	 * end()).  0 or -errno with e filled: the backup fails. */
	int (*take)(void *opaque, const char *id, char name[BKP_SNAP_MAX],
		    struct bdev **snap, struct bdev_err *e);
	/* Prepare the differences between snapshot base and the new one:
	 * 0, then changed() answers; 1 when they are not known (why says
	 * so: the backup reads everything); -errno with e filled. */
	int (*diff)(void *opaque, const char *base, char *why, size_t wl,
		    struct bdev_err *e);
	/* Whether [off, off+len) differs (thread-safe, after diff() = 0). */
	bool (*changed)(void *opaque, uint64_t off, uint64_t len);
	/* After the backup: committed, drop every other snapshot of this
	 * source (exactly the new one stays, the next backup's base); not
	 * committed, drop the new one.  Closes *snap. */
	void (*end)(void *opaque, bool committed);
};

/* Progress: done of total bytes of the disk handled. */
typedef void (*bkp_progress_fn)(void *opaque, uint64_t done, uint64_t total);

struct bkp_create_opts {
	const char *source;       /* path of src: recorded; SOURCE.ctk beside it */
	bool full;                /* read everything even with valid tracking,
				   * and inflate existing chunks to compare */
	bool no_track;            /* do not create or use SOURCE.ctk */
	/* A live backup: src is a frozen image a running VMM snapshotted
	 * (backup-snapshot).  frozen_ctk: the frozen tracking file the VMM
	 * wrote, used read-only instead of SOURCE.ctk (NULL: none, read
	 * everything); consistency: "application" or "crash" as the VMM
	 * reported; group (<= BKP_ID_MAX - 1 characters of [A-Za-z0-9-]),
	 * vm_lun and freeze_window_us go into the manifest.  group NULL: an
	 * ordinary backup, the other live fields are ignored. */
	const char *group;
	const char *frozen_ctk;
	const char *consistency;
	uint32_t vm_lun;
	uint64_t freeze_window_us;
	/* The disk's own snapshots as change source (not with group or
	 * no_track): the backup reads the snapshot it takes, and an
	 * incremental only what changed since the newest earlier backup of
	 * the same disk id recording a snapshot.  NULL: SOURCE.ctk. */
	const struct bkp_snapshots *snaps;
	int threads;              /* 0: two per online CPU (at least 4) */
	bkp_progress_fn progress; /* called from the calling thread */
	void *opaque;
	/* When *cancel becomes nonzero (a signal handler) the backup stops
	 * within a quarter second with -ECANCELED, nothing made visible. */
	const volatile sig_atomic_t *cancel;
};

/* A new group id for the disks of one live backup (like a backup ID). */
int bkp_group_new(char group[BKP_ID_MAX]);

/* Back up src (open read-only) into r; on success *out is the new
 * backup's manifest. */
int bkp_create(struct bkp_repo *r, struct bdev *src,
	       const struct bkp_create_opts *o, struct bkp_info *out,
	       struct bdev_err *e);

/* ---- restore ---- */

#define BKP_OUT_RAW     0
#define BKP_OUT_FIXED   1   /* fixed VHD */
#define BKP_OUT_DYNAMIC 2   /* dynamic VHD */

/* Create a new image of format (BKP_OUT_FIXED or BKP_OUT_DYNAMIC) for a
 * disk of size bytes at path (the temporary name the restore publishes
 * when complete) and open it read-write; *piece: the write size that suits
 * it (its block size).  NULL with e filled; EINVAL when the format cannot
 * hold such a disk.  The backup engine sees images only through bdev: the
 * caller (vhdtool) knows how to make one. */
typedef struct bdev *(*bkp_image_create_fn)(void *opaque, const char *path,
					    int format, uint64_t size,
					    uint32_t *piece, struct bdev_err *e);

struct bkp_restore_opts {
	int format;               /* BKP_OUT_* */
	bool overwrite;           /* replace an existing dest */
	int threads;
	bkp_progress_fn progress;
	void *opaque;
	bkp_image_create_fn create;  /* needed for formats other than raw */
	void *create_opaque;
};

/* Write backup id to dest (sparse: zero ranges are not written), every
 * chunk verified against its digest, under a temporary name renamed to
 * dest when complete.  On failure nothing is left under dest. */
int bkp_restore(struct bkp_repo *r, const char *id, const char *dest,
		const struct bkp_restore_opts *o, struct bdev_err *e);

/* ---- verify ---- */

/* One line per problem: "chunk HEX: ..." or "backup ID: ...". */
typedef void (*bkp_report_fn)(void *opaque, const char *msg);

struct bkp_verify_result {
	uint64_t backups, backups_damaged;
	uint64_t chunks, chunks_damaged;   /* chunk files checked / bad or missing */
	uint64_t chunks_quarantined;       /* damaged files moved to HEX.bad */
	uint64_t bytes;                    /* stored bytes read */
};

/* Check backup id (NULL: every backup and every chunk file): manifests,
 * index checksums, and each chunk re-hashed.  A damaged chunk file is
 * renamed chunks/XX/HEX.bad (quarantined) so that the next backup having
 * its data stores it again.  Returns 0 when it ran (res tells what it
 * found), -errno when it could not. */
int bkp_verify(struct bkp_repo *r, const char *id, int threads,
	       bkp_report_fn report, void *opaque,
	       struct bkp_verify_result *res, struct bdev_err *e);

/* ---- repair ---- */

struct bkp_repair_result {
	struct bkp_verify_result verify;   /* the verify pass that comes first */
	uint64_t chunks_needed;            /* referenced, missing or quarantined */
	uint64_t chunks_restored;          /* stored again from a source */
	uint64_t backups_repaired;         /* were damaged, are complete now */
	uint64_t backups_lost;             /* stay damaged */
};

/* Verify the whole repository (quarantining damaged chunks, reported like
 * bkp_verify), then read each source disk in src[0..nsrc) at the
 * repository's chunk boundaries (and at the shorter last chunk of each
 * damaged backup's disk size), hash, and store again every chunk a backup
 * needs and lacks.  Reports "chunk HEX: stored again from NAME at offset
 * N", then for each backup that was damaged "backup ID: repaired" or
 * "backup ID: stays damaged: ...".  0 when it ran (res says what it did),
 * -errno when it could not. */
int bkp_repair(struct bkp_repo *r, struct bdev *const *src, size_t nsrc,
	       int threads, bkp_report_fn report, void *opaque,
	       struct bkp_repair_result *res, struct bdev_err *e);

/* ---- prune, forget, gc ---- */

struct bkp_prune_opts {
	int keep_last, keep_daily, keep_weekly, keep_monthly;  /* 0: rule off */
	bool dry_run;
};

/* Called for each backup, oldest first: kept or removed, and why. */
typedef void (*bkp_prune_fn)(void *opaque, const struct bkp_info *b,
			     bool keep, const char *why);

/* Keep what the rules select, per source path (local time buckets, like
 * restic's forget); remove the other backups.  Chunks stay until gc.  A
 * backup whose manifest the store refuses to delete (Object Lock) is
 * marked forgotten instead (backups/ID.forgotten): gone for list, show,
 * restore, verify and gc's marks; gc deletes its objects once their
 * retention ended (why says until when). */
int bkp_prune(struct bkp_repo *r, const struct bkp_prune_opts *o,
	      bkp_prune_fn fn, void *opaque, struct bdev_err *e);

/* Remove one backup (manifest and index).  1 when it was marked
 * forgotten instead (Object Lock, as in prune; e->msg says until when,
 * e->code 0). */
int bkp_forget(struct bkp_repo *r, const char *id, struct bdev_err *e);
/* Undo a forget that Object Lock held back (or a marker someone else
 * wrote): removes backups/ID.forgotten while the manifest is still there,
 * so the backup is listed, restorable and marked by gc again.  Its chunks
 * may have been deleted meanwhile when their retention ended first: run
 * bkp_verify on it.  -ENOENT when it is not forgotten or already gone. */
int bkp_unforget(struct bkp_repo *r, const char *id, struct bdev_err *e);

struct bkp_gc_opts {
	int64_t grace;            /* seconds; < 0: BKP_DEFAULT_GRACE */
	bool dry_run;
};

struct bkp_gc_result {
	uint64_t chunks;          /* chunk files seen */
	uint64_t removed, bytes_removed;
	uint64_t kept_grace;      /* unreferenced but too young */
	uint64_t tmp_removed;     /* leftovers of interrupted writers */
	uint64_t locked;          /* object storage: unreferenced but under
				   * Object Lock retention (kept) */
	uint64_t retention_extended; /* Object Lock: referenced objects whose
				   * retention gc extended */
	uint64_t forgotten_removed; /* Object Lock: forgotten backups (prune,
				   * forget) whose retention ended: gc deleted
				   * their manifest, index and marker (dry run:
				   * would delete, by their markers) */
	uint64_t forgotten_locked; /* forgotten backups still under retention
				   * (neither extended nor marked: they go
				   * once it ends) */
	uint64_t retention_failed; /* Object Lock: objects whose retention gc
				   * could not read or extend.  gc still returns
				   * 0 (everything else was done); a caller must
				   * report it as a failure (vhdtool exits 1) */
	char retention_error[256]; /* the first such failure's message */
};

/* Mark every chunk an index references, sweep the others older than the
 * cutoff min(gc start, start of every running backup) - grace. */
int bkp_gc(struct bkp_repo *r, const struct bkp_gc_opts *o,
	   struct bkp_gc_result *res, struct bdev_err *e);

/* ---- change tracking (the write side) ---- */

struct bkp_track;

/* Record the writes to b, a disk opened read-write from image_path, in
 * IMAGE.ctk when that file exists (created by the first backup).  Marks
 * the file "open" before returning, so a crash leaves it invalid.
 * Returns NULL without tracking when there is no tracking file (e->code
 * ENOENT), when b is a block device or a temporary file, or on error; a
 * tracking file another process holds is marked stale (invalid).  The
 * tracking is finalised by bkp_track_close() or at process exit. */
struct bkp_track *bkp_track_attach(struct bdev *b, const char *image_path,
				   struct bdev_err *e);
/* The same as a layer (for long-lived writers such as the storage VSP):
 * when IMAGE.ctk exists, an observing layer over b (owning it) that records
 * every write completed through it, and *t for bkp_track_close() after
 * the layer was closed.  NULL with e->code ENOENT when there is nothing to
 * track (use b itself), or another error; b stays the caller's then. */
struct bdev *bkp_track_layer(struct bdev *b, const char *image_path,
			     struct bkp_track **t, struct bdev_err *e);
/* The tracking alone, for a writer that sees the writes through a layer
 * of its own (vmm-mini: above a switch layer, so that the writes are
 * recorded whichever file of a snapshot chain takes them): it calls
 * bkp_track_note() for every write, zeroing or discard that completed.
 * create: IMAGE.ctk is made when absent (a new generation, so the first
 * backup after it reads everything).  NULL as for bkp_track_attach(). */
struct bkp_track *bkp_track_open(struct bdev *b, const char *image_path,
				 bool create, struct bdev_err *e);
void bkp_track_note(struct bkp_track *t, uint64_t off, uint64_t len);

/* Live backups: the tracking of a running writer frozen at the point in
 * time of a snapshot.  bkp_track_freeze(), called while no write runs
 * through the tracker (the writer holds them; every note of an earlier
 * write has returned), copies the marks and the epoch E and moves the
 * tracker to epoch E + 1: memory only, fast.  Later writes carry E + 1.
 * NULL (e) on ENOMEM, after a write past the tracked size, or when the
 * epochs are exhausted: the backup then reads everything. */
struct bkp_track_frozen;
struct bkp_track_frozen *bkp_track_freeze(struct bkp_track *t, struct bdev_err *e);
uint32_t bkp_track_frozen_epoch(const struct bkp_track_frozen *f);
/* Later, with writes flowing: write the frozen marks as a complete, valid,
 * proven tracking file (state clean, epoch E, the tracker's generation,
 * the layer records of frozen's chain as they are now) at ctk_path
 * (temporary name, fsync, rename).  frozen: the image as of the freeze,
 * opened from frozen_path, no longer written (the read-only parent of a
 * snapshot child).  A backup of it uses the file read-only (backup side:
 * incremental from a backup with the same generation and since <= E,
 * recording since E + 1).  0 or -errno (e). */
int bkp_track_frozen_write(const struct bkp_track_frozen *f, struct bdev *frozen,
			   const char *frozen_path, const char *ctk_path,
			   struct bdev_err *e);
void bkp_track_frozen_free(struct bkp_track_frozen *f);
/* Finalise after the disk was closed (or no longer written): write the
 * changed chunks and the image's state, mark the file clean.  Frees t. */
int bkp_track_close(struct bkp_track *t, struct bdev_err *e);

#endif
