/* s3: a small S3 client (libcurl, AWS Signature V4 by CURLOPT_AWS_SIGV4)
 * for the backup repository's object storage: put-once objects, get,
 * head, list, delete, Object Lock retention.
 *
 * Path-style addressing (ENDPOINT/BUCKET/KEY) for custom endpoints
 * (radosgw, MinIO), virtual-host style for AWS when no endpoint is given.
 * TLS is verified by default.  Every request is retried with exponential
 * backoff and jitter on 5xx, 429, timeouts and connection errors (bounded
 * attempts); 4xx other than 429 are final.
 *
 * Thread-safe: one client may be used from many threads at once; each
 * request takes a connection (a curl easy handle) from the client's pool
 * of cfg.connections, waiting when all are busy.
 *
 * All functions return 0 or -errno and fill a struct bdev_err ("what,
 * where": the operation, bucket/key, HTTP status and the S3 error Code);
 * none prints.  Error mapping: 404 / NoSuchKey -ENOENT, 412 (If-None-Match)
 * -EEXIST, 403 / AccessDenied (including a delete refused by Object Lock)
 * -EACCES, 400 InvalidRequest / InvalidArgument -EINVAL, a bucket that does
 * not exist -ENXIO, anything else after the retries -EIO (timeouts
 * -ETIMEDOUT). */
#ifndef S3_H
#define S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bdev.h"

struct s3_config {
	char endpoint[512];     /* "http://127.0.0.1:7480"; "" = AWS for region */
	char region[64];        /* "" -> "us-east-1" */
	char access_key[256];
	char secret_key[256];
	char session_token[2048]; /* "" none */
	bool path_style;        /* forced true when endpoint is set */
	bool virtual_host;      /* BUCKET.HOST/KEY even with an endpoint
				 * (MinIO with MINIO_DOMAIN, radosgw with
				 * rgw_dns_name, AWS through an endpoint URL);
				 * wins over path_style */
	bool insecure;          /* do not verify TLS (never the default) */
	char ca_file[512];      /* "" system CAs */
	int connections;        /* parallel connections; 0 -> 8 */
	int retries;            /* attempts after the first; < 0 -> 6 */
	int timeout_ms;         /* stall bound, 0 -> 60000: a request (connect
				 * included, connect at most 10 s) moving under
				 * 1 KiB/s for this long (rounded up to whole
				 * seconds) fails ETIMEDOUT and is retried; a
				 * slow transfer that keeps moving is never cut */
};

/* Fill cfg from the environment as the AWS tools read it:
 * AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a pair) with
 * AWS_SESSION_TOKEN, AWS_REGION (then AWS_DEFAULT_REGION),
 * AWS_ENDPOINT_URL_S3 (then AWS_ENDPOINT_URL), AWS_CA_BUNDLE; then what
 * is still unset from the shared files of profile AWS_PROFILE (else
 * AWS_DEFAULT_PROFILE, else "default"): [NAME] of AWS_SHARED_CREDENTIALS_FILE
 * (~/.aws/credentials) for the credentials, else [profile NAME] ([default])
 * of AWS_CONFIG_FILE (~/.aws/config); region, ca_bundle and endpoint_url
 * from the credentials file's [NAME], else the config file's; the
 * endpoint first from the config's "services" section ("s3 = /
 * endpoint_url"); "s3 = / addressing_style" (unless path_style or
 * virtual_host was set).  AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true ignores
 * the endpoint variables and settings.  Fields already set (non-empty) are
 * kept, so options given on a command line win.  -EINVAL (e) when no
 * credentials are found, only one of the two key variables is set, a
 * named profile is in neither file, or a file has a malformed line (e
 * names file and line); -ENOTSUP for a profile that gets credentials from
 * a role, SSO, web identity or a process; -EFBIG for a file over 1 MiB. */
int s3_config_env(struct s3_config *cfg, struct bdev_err *e);

/* Split "s3://BUCKET[/PREFIX]" : bucket (<= 63 chars, valid S3 name) and
 * prefix (without leading or trailing '/', may be empty).  -EINVAL (e). */
int s3_url_parse(const char *url, char bucket[64], char prefix[1024],
		 struct bdev_err *e);
/* True when path starts with "s3://". */
bool s3_is_url(const char *path);

struct s3_client;

/* A client for one bucket.  Does no request. */
struct s3_client *s3_open(const struct s3_config *cfg, const char *bucket,
			  struct bdev_err *e);
void s3_close(struct s3_client *c);

/* Create the bucket; object_lock: with Object Lock enabled
 * (x-amz-bucket-object-lock-enabled).  -EEXIST when it exists already
 * (owned by us or not). */
int s3_bucket_create(struct s3_client *c, bool object_lock,
		     struct bdev_err *e);

struct s3_put_opts {
	bool if_none_match;     /* If-None-Match: *  ->  -EEXIST when the key
				 * exists.  Where the store ignores the header,
				 * s3_put still never replaces an existing
				 * object: it does HEAD then PUT (see
				 * s3_set_no_conditional).  A retried
				 * conditional PUT whose first attempt was
				 * stored but whose answer was lost is
				 * -EEXIST too: only for content-addressed
				 * keys, where that is harmless. */
	int64_t retain_until;   /* Unix seconds: Object Lock retention
				 * (COMPLIANCE mode) set with the PUT; 0 none */
};
/* Store data (len bytes) under key (the body's SHA-256 signed, which the
 * store checks; Content-MD5 too with retention, as Object Lock requires).
 * opts may be NULL. */
int s3_put(struct s3_client *c, const char *key, const void *data, size_t len,
	   const struct s3_put_opts *opts, struct bdev_err *e);

/* Read object key into a malloc'd buffer (*data, *len; a NUL is appended
 * after the data, not counted).  More than max bytes: -EFBIG. */
int s3_get(struct s3_client *c, const char *key, size_t max, void **data,
	   size_t *len, struct bdev_err *e);
/* Read len bytes at off of key into buf; *got bytes read (short at the
 * end of the object). */
int s3_get_range(struct s3_client *c, const char *key, uint64_t off,
		 size_t len, void *buf, size_t *got, struct bdev_err *e);

struct s3_stat {
	uint64_t size;
	int64_t mtime;          /* Last-Modified, Unix seconds */
	char etag[80];          /* without quotes */
	int64_t retain_until;   /* s3_head only: Object Lock retention (Unix
				 * seconds) from x-amz-object-lock-retain-until-date;
				 * 0 when the answer has none (no retention, or
				 * the caller may not read it: ask
				 * s3_retention_get), -1 when malformed */
};
/* A HEAD answer has no body, hence no S3 code: a missing bucket is
 * -ENOENT here, like a missing key. */
int s3_head(struct s3_client *c, const char *key, struct s3_stat *st,
	    struct bdev_err *e);

/* Delete key.  Deleting a key that does not exist is 0 (S3 semantics);
 * one under Object Lock retention -EACCES.  A HEAD first: in a versioned
 * bucket (every Object Lock bucket) the current version is deleted by its
 * id, not hidden behind a delete marker. */
int s3_delete(struct s3_client *c, const char *key, struct bdev_err *e);

/* Every key under prefix (ListObjectsV2, all pages), in the store's
 * order (lexicographic).  fn returning nonzero stops the walk and
 * s3_list returns that value. */
typedef int (*s3_list_fn)(void *opaque, const char *key,
			  const struct s3_stat *st);
int s3_list(struct s3_client *c, const char *prefix, s3_list_fn fn,
	    void *opaque, struct bdev_err *e);

/* One ListObjectsV2 answer page (xml, len; for s3_list and tests): fn
 * for every <Contents> (Key and Size required, LastModified and ETag
 * optional), *truncated from <IsTruncated>, next (size nnext) from
 * <NextContinuationToken> ("" when absent).  Strict and bounded: -EPROTO
 * (e) on malformed or oversized XML, a root other than
 * <ListBucketResult>, a key over 1024 bytes, a truncated page without a
 * token; fn returning nonzero stops with that value. */
int s3_list_parse(const char *xml, size_t len, s3_list_fn fn, void *opaque,
		  bool *truncated, char *next, size_t nnext,
		  struct bdev_err *e);

/* Object Lock: set or extend the retention of key (COMPLIANCE mode) to
 * until (Unix seconds).  Shortening is refused by the store (-EACCES). */
int s3_retention_set(struct s3_client *c, const char *key, int64_t until,
		     struct bdev_err *e);
/* The key's retention (0 when none). */
int s3_retention_get(struct s3_client *c, const char *key, int64_t *until,
		     struct bdev_err *e);
/* The same for version vid of key (NULL or "": the current one). */
int s3_retention_set_version(struct s3_client *c, const char *key,
			     const char *vid, int64_t until, struct bdev_err *e);
int s3_retention_get_version(struct s3_client *c, const char *key,
			     const char *vid, int64_t *until, struct bdev_err *e);

/* Where a store is known to ignore If-None-Match: do HEAD + PUT instead. */
void s3_set_no_conditional(struct s3_client *c, bool on);

/* Counters since s3_open (for progress lines and tests): requests sent,
 * retries, bytes sent and received. */
struct s3_counters {
	uint64_t requests, retries, bytes_up, bytes_down;
};
void s3_counters(struct s3_client *c, struct s3_counters *out);

/* ---- versions (versioned buckets: every Object Lock bucket) ---- */

/* Which version of an object a request met. */
struct s3_version_id {
	char version_id[256];   /* x-amz-version-id: "" when the store names
				 * none, "null" in an unversioned bucket */
	char etag[80];          /* without quotes */
};
/* s3_get of version vid of key (NULL or "": the current one), and which
 * version was read into id (may be NULL). */
int s3_get_version(struct s3_client *c, const char *key, const char *vid,
		   size_t max, void **data, size_t *len, struct s3_version_id *id,
		   struct bdev_err *e);

/* One entry of a ListObjectVersions page: a <Version> or a
 * <DeleteMarker>. */
struct s3_version {
	const char *key;
	const char *version_id;     /* "null" for an unversioned object */
	bool delete_marker;
	bool latest;                /* <IsLatest>true */
	struct s3_stat st;          /* size 0 for a delete marker */
};
typedef int (*s3_version_fn)(void *opaque, const struct s3_version *v);
/* One ListObjectVersions answer page (for s3_delete_all and tests): fn for
 * every <Version> and <DeleteMarker> (Key and VersionId required, Size
 * for a Version), *truncated from <IsTruncated>, the markers of the next
 * page from <NextKeyMarker> and <NextVersionIdMarker> (next_key size
 * nkey, next_vid size nvid; "" when absent).  Strict and bounded like
 * s3_list_parse: -EPROTO (e) on malformed or oversized XML, a root other
 * than <ListVersionsResult>, a key over 1024 bytes, a version id over 255,
 * a truncated page without a key marker; the whole page is checked before
 * fn sees an entry; fn returning nonzero stops with that value. */
int s3_versions_parse(const char *xml, size_t len, s3_version_fn fn,
		      void *opaque, bool *truncated, char *next_key,
		      size_t nkey, char *next_vid, size_t nvid,
		      struct bdev_err *e);

/* Every version and delete marker under prefix (ListObjectVersions
 * prefix=P&versions=, all pages, paged by key-marker and
 * version-id-marker), in the store's order: by key, and for one key the
 * newest first.  fn returning nonzero stops the walk and s3_list_versions
 * returns that value.  A store without version listing: -EPROTO, -EINVAL
 * or -ENOSYS (as s3_delete_all meets them). */
int s3_list_versions(struct s3_client *c, const char *prefix, s3_version_fn fn,
		     void *opaque, struct bdev_err *e);

/* The oldest version of key that is not a delete marker (one version
 * listing, prefix=key, exact key matches): its id into vid, its size and
 * LastModified into st (may be NULL); how many versions and delete
 * markers key has into *versions and *markers (may be NULL).  -ENOENT (e)
 * when key has no version (none at all, or only delete markers).  In an
 * Object Lock bucket whose objects are written once, the genuine one. */
int s3_oldest_version(struct s3_client *c, const char *key, char vid[256],
		      struct s3_stat *st, size_t *versions, size_t *markers,
		      struct bdev_err *e);

/* Delete every version of key (ListObjectVersions with prefix=key, exact
 * key matches only; versions and delete markers, the latest last), so
 * that no older version of a rewritten object becomes current again.  In
 * an unversioned bucket, or on a store that cannot list versions (501,
 * 400, an answer that is no version list) when if_latest is NULL, a plain
 * DELETE.  if_latest (NULL: none): only when
 * the latest version is that version id, else -EEXIST and nothing is
 * deleted (another writer's version is newer).  A key without versions:
 * 0.  Under Object Lock retention -EACCES (older versions may then be
 * gone already). */
int s3_delete_all(struct s3_client *c, const char *key, const char *if_latest,
		  struct bdev_err *e);

/* Delete that version of key (version_id "" or "null": a plain DELETE);
 * one that is gone already: 0.  Under retention -EACCES. */
int s3_delete_version(struct s3_client *c, const char *key,
		      const char *version_id, struct bdev_err *e);

#endif
