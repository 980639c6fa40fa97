/* bkp internals shared by the files of backup/ (and its unit tests).
 * On-disk layouts are described in docs/backup-format.md. */
#ifndef BKP_INT_H
#define BKP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "bkp.h"

#define BKP_DIGEST 32

/* ---- chunk files (chunk.c) ---- */

/* Header of a chunk file, little-endian; the payload follows. */
struct bkp_chunk_hdr_disk {
	char magic[4];        /* "VBKC" */
	uint8_t version;      /* 1 */
	uint8_t method;       /* BKP_METHOD_* */
	uint8_t reserved[2];  /* 0 */
	uint32_t raw_len;     /* bytes of the chunk's content */
	uint32_t stored_len;  /* bytes of payload */
	uint32_t payload_crc; /* CRC-32 (zlib) of the payload */
	uint32_t hdr_crc;     /* CRC-32 of bytes 0..19 */
} __attribute__((packed));
_Static_assert(sizeof(struct bkp_chunk_hdr_disk) == 24, "chunk header size");

#define BKP_CHUNK_HDR     24u
#define BKP_METHOD_STORED 0
#define BKP_METHOD_ZLIB   1

/* Bytes an encoded chunk of len content bytes may need. */
size_t bkp_chunk_bound(size_t len);
/* Encode content into out (cap >= bkp_chunk_bound(len)): a cheap zlib
 * probe of a sample decides whether to compress; compression is kept only
 * when it saves at least 1/32.  Returns the file length, or 0 on error. */
size_t bkp_chunk_encode(const void *data, size_t len, void *out, size_t cap);
/* Validate a chunk file's header alone (24 bytes) against the file size:
 * 0 or -EBADMSG (why filled). */
int bkp_chunk_check_hdr(const void *hdr, uint64_t file_size, char *why,
			size_t wl);
/* Decode a whole chunk file into dst (cap bytes): header, CRC, inflate.
 * Returns the content length or -EBADMSG / -ENOMEM (why filled). */
ssize_t bkp_chunk_decode(const void *file, size_t flen, void *dst,
			 size_t cap, char *why, size_t wl);

void bkp_sha256(const void *data, size_t len, uint8_t out[BKP_DIGEST]);
void bkp_hex(const uint8_t *d, size_t n, char *out);
int bkp_unhex(const char *s, uint8_t *d, size_t n);
bool bkp_digest_is_zero(const uint8_t d[BKP_DIGEST]);
int bkp_digest_cmp(const void *a, const void *b);

/* ---- the repository (repo.c) ---- */

struct bkp_os_ops;

struct bkp_repo {
	char *path;               /* the folder, or the s3:// URL */
	uint32_t chunk_size;
	char uuid[40];
	const struct bkp_os_ops *os; /* NULL: a folder (os.c); else os-s3.c */
	void *osd;                /* the backend's state */
	int object_lock_days;     /* repo.json "object-lock-days" (0 none) */
	char *cache;              /* manifest cache folder (cache.c), NULL none */
	char *place;              /* an object store's location (endpoint,
				   * region, bucket, prefix), NULL a folder;
				   * set and freed by os-s3.c */
};

/* ---- the manifest cache (cache.c; r->cache set by bkp_repo_set_cache) ----
 * All do nothing without r->cache.  get: the cached text of backup id
 * (at most max bytes, NUL added), 0 or -ENOENT (absent or unreadable).
 * put: store text for id (temporary file, rename; failures ignored).
 * drop: remove id's copy.  prune: remove the copies of backups not in ids
 * (sorted) and temporary files left behind. */
int bkp_cache_get(const struct bkp_repo *r, const char *id, size_t max,
		  char **out, size_t *len);
void bkp_cache_put(const struct bkp_repo *r, const char *id, const char *text,
		   size_t len);
void bkp_cache_drop(const struct bkp_repo *r, const char *id);
void bkp_cache_prune(const struct bkp_repo *r, char **ids, size_t n);

/* ---- object storage (os.c) ----
 * Whole small objects by key ("repo.json", "backups/ID.idx"): the same
 * names in a folder and under an s3:// prefix. */
struct bkp_os_stat {
	uint64_t size;
	struct timespec mtime;
};
/* name: relative to the listed folder; st NULL when the backend did not
 * say (a folder listing).  Nonzero stops the walk and is returned. */
typedef int (*bkp_os_list_fn)(void *opaque, const char *name,
			      const struct bkp_os_stat *st);

/* Store data under key, complete or not at all (folder: temporary file,
 * fsync, rename, folder fsync; object storage: one PUT). */
int bkp_os_put(struct bkp_repo *r, const char *key, const void *data,
	       size_t len, struct bdev_err *e);
/* Read key (at most max bytes, NUL added): 0, -ENOENT, -EFBIG, -errno
 * (e, when not NULL, says what failed: the store's or the system's words). */
int bkp_os_get(const struct bkp_repo *r, const char *key, size_t max,
	       char **out, size_t *len, struct bdev_err *e);
/* 0 (st filled when not NULL), -ENOENT, -errno. */
int bkp_os_head(const struct bkp_repo *r, const char *key,
		struct bkp_os_stat *st);
/* Remove key; a missing key is 0. */
int bkp_os_delete(struct bkp_repo *r, const char *key, struct bdev_err *e);
/* Names directly in folder dir ("backups"), in no particular order. */
int bkp_os_list(const struct bkp_repo *r, const char *dir,
		bkp_os_list_fn fn, void *opaque, struct bdev_err *e);

struct bkp_store;
struct bkp_gc_opts;
struct bkp_gc_result;

/* An object-storage backend: the small-object calls above, and its own
 * chunk store, registration and maintenance lock, and gc. */
struct bkp_os_ops {
	int (*put)(struct bkp_repo *r, const char *key, const void *data,
		   size_t len, struct bdev_err *e);
	int (*get)(const struct bkp_repo *r, const char *key, size_t max,
		   char **out, size_t *len, struct bdev_err *e);
	int (*head)(const struct bkp_repo *r, const char *key,
		    struct bkp_os_stat *st);
	int (*del)(struct bkp_repo *r, const char *key, struct bdev_err *e);
	int (*list)(const struct bkp_repo *r, const char *dir,
		    bkp_os_list_fn fn, void *opaque, struct bdev_err *e);
	void (*close)(struct bkp_repo *r);
	/* as bkp_store_put / bkp_store_touch */
	int (*store_put)(struct bkp_store *s, const uint8_t d[32],
			 const void *data, size_t len, uint64_t *added,
			 struct bdev_err *e);
	int (*store_touch)(struct bkp_store *s, const uint8_t d[32]);
	/* read chunk file d into buf (cap): length, -ENOENT, -EBADMSG, -EFBIG */
	ssize_t (*chunk_get)(const struct bkp_repo *r, const uint8_t d[32],
			     void *buf, size_t cap, char *why, size_t wl);
	/* after a chunk_get whose content is bad: another (the original)
	 * version of it, same answers; -ENOENT none (NULL: no versions) */
	ssize_t (*chunk_orig)(const struct bkp_repo *r, const uint8_t d[32],
			      void *buf, size_t cap, char *why, size_t wl);
	int (*quarantine)(const struct bkp_repo *r, const uint8_t d[32],
			  struct bdev_err *e);
	/* every chunk object: name "XX/HEX" or "XX/HEX.bad" */
	int (*chunks)(const struct bkp_repo *r, bkp_os_list_fn fn,
		      void *opaque, struct bdev_err *e);
	/* the backup's chunks are safe to reference (bkp_sync_repo) */
	int (*sync)(struct bkp_repo *r, struct bdev_err *e);
	int (*writer_register)(struct bkp_repo *r, const char *id,
			       struct timespec start, struct bdev_err *e);
	void (*writer_unregister)(struct bkp_repo *r, const char *id);
	/* maintenance lock (prune, gc, forget): 0 or -errno (-EBUSY held) */
	int (*lock)(struct bkp_repo *r, const char *what, struct bdev_err *e);
	void (*unlock)(struct bkp_repo *r);
	int (*gc)(struct bkp_repo *r, const struct bkp_gc_opts *o,
		  struct bkp_gc_result *res, struct bdev_err *e);
	/* Object Lock: backup id's manifest could not be deleted (locked):
	 * record it as forgotten (backups/ID.forgotten, put once, no
	 * retention) with the manifest's retention in *until (0 unknown) */
	int (*forget_mark)(struct bkp_repo *r, const char *id, int64_t *until,
			   struct bdev_err *e);
};

/* "REPO/chunks/ab/abcd..." into out (PATH_MAX). */
void bkp_chunk_path(const struct bkp_repo *r, const uint8_t d[BKP_DIGEST],
		    char *out, size_t outlen);
/* "chunks/ab/abcd...": the chunk's key (os.c). */
#define BKP_CHUNK_KEY (8 + 2 * BKP_DIGEST + 8)
void bkp_chunk_key(const uint8_t d[BKP_DIGEST], char out[BKP_CHUNK_KEY]);
/* "REPO/NAME" (malloc'd). */
char *bkp_path(const struct bkp_repo *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Per-thread state for storing chunks. */
struct bkp_store {
	struct bkp_repo *r;
	int lockfd;           /* chunks.lock, held shared around each insert */
	uint8_t *enc;         /* encode buffer */
	size_t enccap;
	uint8_t *chk;         /* an existing chunk file read back (enccap) */
	uint8_t *dec;         /* its content, inflated (chunk size) */
	bool deep;            /* also inflate compressed files to compare */
	uint64_t replaced;    /* damaged files bkp_store_put replaced */
};
int bkp_store_init(struct bkp_store *s, struct bkp_repo *r,
		   struct bdev_err *e);
void bkp_store_fini(struct bkp_store *s);
/* Make sure chunk d (content data) is in the repository: an existing
 * file proven to hold data (header, size, payload CRC; a stored payload
 * compared; a compressed one inflated and compared when s->deep) is
 * touched (mtime now, for gc), else it is written, replacing a damaged one
 * (counted in s->replaced).  *added is the file size when this call
 * stored it, else 0. */
int bkp_store_put(struct bkp_store *s, const uint8_t d[BKP_DIGEST],
		  const void *data, size_t len, uint64_t *added,
		  struct bdev_err *e);
/* Touch chunk d if an intact file exists: 0, or -ENOENT to store it. */
int bkp_store_touch(struct bkp_store *s, const uint8_t d[BKP_DIGEST]);
/* Make every chunk stored so far durable (by anyone: a backup may use
 * chunks a concurrent one stored): syncfs() of the repository. */
int bkp_sync_repo(struct bkp_repo *r, struct bdev_err *e);

/* Move damaged chunk d aside to chunks/XX/HEX.bad, so that the next
 * backup having its data stores it again (as Proxmox Backup Server does),
 * holding chunks.lock exclusively after checking that it is still
 * damaged (a backup may have stored a good copy since).  1 moved, 0 not
 * damaged (any more) or missing, -errno with e filled. */
int bkp_chunk_quarantine(const struct bkp_repo *r, const uint8_t d[BKP_DIGEST],
			 struct bdev_err *e);
/* Read and decode chunk d into dst (cap), checking its digest.  Returns
 * the length, -ENOENT (missing; why says when it was quarantined) or
 * -EBADMSG (damaged); why filled.
 * filebuf (bkp_chunk_bound(cap) bytes) is scratch; *stored gets the file
 * size when not NULL. */
ssize_t bkp_chunk_load(const struct bkp_repo *r, const uint8_t d[BKP_DIGEST],
		       void *dst, size_t cap, void *filebuf,
		       uint64_t *stored, char *why, size_t wl);

/* Index files. */
struct bkp_index {
	uint32_t chunk_size;
	uint64_t virtual_size;
	uint64_t n;
	uint8_t (*d)[BKP_DIGEST];
};
int bkp_index_write(struct bkp_repo *r, const char *id,
		    const struct bkp_index *x, char sha_hex[65],
		    struct bdev_err *e);
/* Load backups/ID.idx; with expect_sha (hex) also check its checksum.
 * -ENOENT missing, -EBADMSG damaged (why filled). */
int bkp_index_read(const struct bkp_repo *r, const char *id,
		   const char *expect_sha, struct bkp_index *x, char *why,
		   size_t wl);
void bkp_index_free(struct bkp_index *x);

int bkp_manifest_write(struct bkp_repo *r, const struct bkp_info *b,
		       struct bdev_err *e);
/* -ENOENT missing, -EBADMSG unreadable (why filled).  Through the
 * manifest cache when the repository has one. */
int bkp_manifest_read(const struct bkp_repo *r, const char *id,
		      struct bkp_info *b, char *why, size_t wl);
/* The same; size: what the store's listing says the manifest has
 * (UINT64_MAX: unknown), a cached copy of another size is fetched again;
 * store_first: never a cached copy (one explicitly asked for: the store
 * says whether it still exists). */
int bkp_manifest_read_ex(const struct bkp_repo *r, const char *id,
			 uint64_t size, bool store_first, struct bkp_info *b,
			 char *why, size_t wl);
/* IDs of backups with a manifest and no forgotten marker (malloc'd array
 * of malloc'd strings), sorted; or, with orphans, IDs with an index but no
 * manifest. */
int bkp_ids(const struct bkp_repo *r, bool orphans, char ***ids, size_t *n,
	    struct bdev_err *e);
/* bkp_ids (orphans false) with the manifests' listed sizes (*sizes
 * malloc'd, UINT64_MAX where the listing gave none; in an Object Lock
 * repository the original version's, which readers take) and the number
 * of backups left out for a forgotten marker. */
int bkp_ids_sized(const struct bkp_repo *r, char ***ids, uint64_t **sizes,
		  size_t *n, size_t *nforgotten, struct bdev_err *e);
void bkp_ids_free(char **ids, size_t n);
/* The newest readable backup for which match returns true (the order of
 * bkp_list, from the end), reading manifests a batch at a time instead of
 * all of them.  1 found, 0 none, -errno with e set. */
int bkp_find_newest(struct bkp_repo *r,
		    bool (*match)(void *opaque, const struct bkp_info *b),
		    void *opaque, struct bdev_err *e);
/* IDs of backups with a manifest and a forgotten marker, sorted. */
int bkp_forgotten_ids(const struct bkp_repo *r, char ***ids, size_t *n,
		      struct bdev_err *e);
/* Object Lock: a backup forgotten (prune, forget) whose objects could not
 * be deleted yet is marked by backups/ID.forgotten, body
 * "forgotten UNIX\nlocked-until UNIX\n" (docs/backup-format.md); every
 * reader treats it as gone and gc deletes its objects once their
 * retention ended, then the marker. */
#define BKP_FORGOTTEN_EXT ".forgotten"
/* 1 marked (*until: the recorded end of its retention, 0 unknown), 0 not,
 * -errno when the store cannot tell. */
int bkp_forgotten(const struct bkp_repo *r, const char *id, int64_t *until);
/* "why" text for a forgotten backup: "forgotten; its objects stay under
 * Object Lock retention until YYYY-MM-DDTHH:MM:SSZ, then gc deletes them". */
void bkp_forgotten_why(int64_t until, char *out, size_t n);
/* A live backup's group: 1 to BKP_ID_MAX - 1 of [A-Za-z0-9-]. */
bool bkp_group_valid(const char *g);
/* A backup ID is "YYYYMMDDTHHMMSSZ-xxxxxxxx". */
bool bkp_id_valid(const char *id);
int bkp_id_new(struct timespec ts, char id[BKP_ID_MAX]);

/* Locks: flock on REPO/lock (maintenance, exclusive) and REPO/chunks.lock
 * (shared around chunk inserts, exclusive while gc sweeps).  Return the
 * fd to close, or -errno. */
int bkp_lock(const struct bkp_repo *r, const char *name, bool exclusive,
	     struct bdev_err *e);

/* The maintenance lock (prune, gc, forget; what names the command):
 * folder: flock of REPO/lock, the fd returned; object storage: the lock
 * object (0).  Release with bkp_maint_unlock. */
int bkp_maint_lock(struct bkp_repo *r, const char *what, struct bdev_err *e);
void bkp_maint_unlock(struct bkp_repo *r, int fd);
/* repo.json's text for a new repository (malloc'd). */
int bkp_repo_json(uint32_t chunk_size, int lock_days, char **out,
		  struct bdev_err *e);
/* Read and check repo.json of r (r->path, r->os set): chunk size, uuid,
 * object-lock-days. */
int bkp_repo_parse(struct bkp_repo *r, struct bdev_err *e);

/* Writer registration (folder: writers/ID, flock held while the backup
 * runs, the fd returned; object storage: a heartbeat object, 0). */
int bkp_writer_register(struct bkp_repo *r, const char *id,
			struct timespec start, struct bdev_err *e);
void bkp_writer_unregister(struct bkp_repo *r, const char *id, int fd);

/* Time of the coarse clock file timestamps are taken from. */
struct timespec bkp_now_coarse(void);
int bkp_ts_cmp(struct timespec a, struct timespec b);

/* Worker threads when the caller does not say: 2 per CPU, 4 to 64. */
int bkp_default_threads(void);
/* threads, or when 0 the repository's default (object storage: its
 * connections). */
int bkp_repo_threads(const struct bkp_repo *r, int threads);
/* Write a whole small file atomically (temporary name, fsync, rename,
 * directory fsync). */
int bkp_write_file(const char *path, const void *data, size_t len,
		   struct bdev_err *e);
/* Read a whole small file (at most max bytes; NUL added). */
int bkp_read_file(const char *path, size_t max, char **out, size_t *len);

/* ---- JSON (json.c): a small strict parser for our own files ---- */

enum bkp_jtype { BKP_J_NULL, BKP_J_BOOL, BKP_J_NUM, BKP_J_STR, BKP_J_ARR,
		 BKP_J_OBJ };

struct bkp_json {
	enum bkp_jtype type;
	bool b;
	double num;
	bool is_u64;          /* a plain non-negative integer */
	uint64_t u64;
	bool is_i64;          /* an integer (possibly negative) */
	int64_t i64;
	char *s;              /* string (NUL-free, NUL-terminated) */
	size_t n;             /* array / object members */
	char **keys;
	struct bkp_json **v;
};

/* Parse text (len bytes); NULL with why filled on malformed input. */
struct bkp_json *bkp_json_parse(const char *text, size_t len, char *why,
				size_t wl);
void bkp_json_free(struct bkp_json *j);
/* Member key of object o, or NULL. */
const struct bkp_json *bkp_json_get(const struct bkp_json *o,
				    const char *key);

/* ---- change tracking, the file format (ctk-format.c) ----
 * IMAGE.ctk: docs/backup-format.md, "Change-tracking file".  Used by the
 * writer side (track-writer.c) and the backup side (ctk-backup.c). */

#define CTK_HDR        4096u
#define CTK_CRC_OFF    4088u   /* CRC-32 of bytes 0..4087 */
#define CTK_STALE_OFF  4092u   /* not covered by the CRC */
#define CTK_LAYERS_OFF 128u
#define CTK_LAYER_SIZE 64u
#define CTK_MAX_LAYERS 32
#define CTK_GRANULE    (4u << 20)
#define CTK_MAX_MARKS  (1u << 24)   /* 64 TiB at 4 MiB */

#define CTK_ST_CLEAN   1u
#define CTK_ST_OPEN    2u
#define CTK_ST_INVALID 3u

_Static_assert(CTK_LAYERS_OFF + CTK_MAX_LAYERS * CTK_LAYER_SIZE <= CTK_CRC_OFF,
	       "ctk layers fit the header");

struct bkp_ctk_layer {
	uint8_t uuid[16];        /* VHD footer UUID; zero for raw files */
	uint64_t dev, ino, size;
	int64_t mtime_sec, ctime_sec;
	uint32_t mtime_nsec, ctime_nsec;
};

struct bkp_ctkf {
	uint32_t state, granule, epoch, nlayers, stale;
	uint64_t vsize, nmarks;
	uint8_t gen[16];
	/* When the layer records were proven (bkp_ctkf_prove), on the tracking
	 * file's own filesystem clock (its mtime) and on the system clock;
	 * zero: not proven. */
	struct timespec proof_fs, proof_clock;
	struct bkp_ctk_layer layer[CTK_MAX_LAYERS];
	uint32_t *marks;
};

/* Read and check the file; -EBADMSG with why when damaged, -ENOMEM. */
int bkp_ctkf_read(int fd, struct bkp_ctkf *c, char *why, size_t wl);
/* Write marks (when marks) and header (the stale word only when
 * with_stale: a reset), then fdatasync. */
int bkp_ctkf_write(int fd, const struct bkp_ctkf *c, bool marks,
		   bool with_stale);
/* Layers of the disk b opened from path: real paths (malloc'd, into
 * paths) and identities (ids), *n of them.  -ENOTSUP for block devices
 * and chains too deep (why filled). */
int bkp_ctkf_collect(struct bdev *b, const char *path,
		     char *paths[CTK_MAX_LAYERS], struct bkp_ctk_layer *ids,
		     uint32_t *n, char *why, size_t wl);
/* Re-stat saved paths into out, keeping old's recorded UUIDs. */
int bkp_ctkf_restat(char *const *paths, uint32_t n,
		    const struct bkp_ctk_layer *old, struct bkp_ctk_layer *out);
void bkp_ctkf_free_paths(char **paths, uint32_t n);
/* Whether n layer records match; why (when not NULL) says which differs. */
bool bkp_ctkf_same_layers(const struct bkp_ctk_layer *a,
			  const struct bkp_ctk_layer *b, uint32_t n,
			  char *why, size_t wl);
/* Device of the open file fd (0 if unknown). */
uint64_t bkp_ctkf_fd_dev(int fd);
/* Prove c's layer records (written to fd) by rewriting the header until
 * the file's mtime is past them; records the proof, or leaves it unproven
 * (hence invalid) after a few seconds. */
int bkp_ctkf_prove(int fd, struct bkp_ctkf *c);
/* Whether c describes the disk now (ids, n layers, size vsize); ctk_dev
 * is the tracking file's device.  why says why not. */
bool bkp_ctkf_valid(const struct bkp_ctkf *c, const struct bkp_ctk_layer *ids,
		    uint32_t n, uint64_t vsize, uint64_t ctk_dev,
		    char *why, size_t wl);
/* A new generation for disk size vsize: epoch 1, no marks, in state. */
int bkp_ctkf_reset(struct bkp_ctkf *c, uint64_t vsize,
		   const struct bkp_ctk_layer *ids, uint32_t n, uint32_t state);
/* "IMAGE.ctk" (malloc'd), or NULL. */
char *bkp_ctkf_name(const char *image);
/* Open (O_CREAT when create) and lock the tracking file without waiting.
 * -EWOULDBLOCK when another process holds it. */
int bkp_ctkf_open_locked(const char *path, bool create);
/* Whether path is one of our temporary names (never tracked). */
bool bkp_ctkf_is_tmpname(const char *path);

/* ---- change tracking, the backup side (ctk-backup.c) ---- */

struct bkp_ctk_session;

/* Begin a backup of src from path: lock SOURCE.ctk (creating it), decide
 * whether it is valid.  Never fails the backup: NULL means no tracking
 * (why says why).  On success: *gen and *epoch identify the marks; the
 * file's epoch is advanced so that later writes are newer. */
struct bkp_ctk_session *bkp_ctk_begin(struct bdev *src, const char *path,
				      bool *valid, char *why, size_t wl);
/* A backup of a frozen image (a live backup's snapshot) from path, with
 * the frozen tracking file ctk_path a running writer left for it
 * (bkp_track_frozen_write): read only, never locked nor written.  NULL
 * (why says why) unless it is valid for src: then the session is used like
 * a valid one of bkp_ctk_begin (since = the frozen epoch + 1). */
struct bkp_ctk_session *bkp_ctk_begin_frozen(struct bdev *src, const char *path,
					     const char *ctk_path, char *why, size_t wl);
/* Tracking generation (hex) and the epoch later writes get ("since"). */
void bkp_ctk_ids(const struct bkp_ctk_session *s, char gen[33],
		 uint32_t *since);
/* Whether any write of epoch >= since touched [off, off+len). */
bool bkp_ctk_changed(const struct bkp_ctk_session *s, uint32_t since,
		     uint64_t off, uint64_t len);
/* The current epoch of a valid session (marks <= it). */
uint32_t bkp_ctk_epoch(const struct bkp_ctk_session *s);
/* End: true when the image did not change since begin; if it did, the
 * tracking file is invalidated (a frozen one is left as it is).  Frees s. */
bool bkp_ctk_end(struct bkp_ctk_session *s);
/* Drop the session, leaving the file as begin left it. */
void bkp_ctk_abort(struct bkp_ctk_session *s);

/* ---- prune (prune.c) ---- */

/* gc's mark: the digests every index references (sorted, unique, zero
 * digests left out; *out malloc'd); orphan indexes (no manifest) older
 * than cutoff are removed unless dry_run.  An unreadable index is an
 * error. */
int bkp_gc_mark(struct bkp_repo *r, struct timespec cutoff, bool dry_run,
		uint8_t (**out)[BKP_DIGEST], size_t *nout, struct bdev_err *e);

/* Which of n backups (times in Unix seconds, newest first) the rules
 * keep: keep[i] set, why[i] (>= 64 bytes) says which rules. */
void bkp_prune_select(const int64_t *t, size_t n,
		      const struct bkp_prune_opts *o, bool *keep,
		      char (*why)[64]);

#endif
