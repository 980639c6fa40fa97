/* vmmc: a client of a VMM's control socket (vmm-mini/ctl.c): a unix stream
 * socket, one JSON object a line each way.  Used by `vhdtool vm` and
 * `vhdtool backup create --vm`.
 *
 * The VMM is a peer, not a trusted library: every wait is bounded by a
 * timeout, a reply is at most VMMC_REPLY_MAX bytes, and vmmc_parse checks
 * the whole reply (strict JSON, nesting and value counts capped) before a
 * caller reads any member of it.
 *
 * Return convention: 0 or -errno with a message in struct bdev_err.
 * Nothing here prints or exits.  A connection is used by one thread at a
 * time.
 */
#ifndef VMM_MINI_VMMC_H
#define VMM_MINI_VMMC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bdev.h"

#define VMMC_REPLY_MAX   (256u << 10)   /* bytes of one reply line */
#define VMMC_REQUEST_MAX 4000u          /* the VMM reads lines < 4 KiB */

struct vmmc;

/* Connect to the control socket at path, waiting at most timeout_ms while
 * its listen queue is full.  -ENOENT / -ECONNREFUSED when no VMM listens. */
int vmmc_connect(const char *path, int timeout_ms, struct vmmc **out,
		 struct bdev_err *e);
/* Send request (one JSON object, without the newline) and read one reply
 * line within timeout_ms (< 0: no limit): *reply is malloc'd, without the
 * newline, NUL-free.  -ETIMEDOUT, -ECONNRESET (the VMM went away), -EMSGSIZE
 * (reply over VMMC_REPLY_MAX), -EBADMSG (a NUL byte in it). */
int vmmc_call(struct vmmc *c, const char *request, int timeout_ms,
	      char **reply, struct bdev_err *e);
void vmmc_close(struct vmmc *c);

/* ---- reading a reply ---- */

enum vmmc_type { VMMC_NULL, VMMC_BOOL, VMMC_NUM, VMMC_STR, VMMC_ARR, VMMC_OBJ };

/* One value of a parsed reply; it lives as long as its document. */
struct vmmc_val {
	enum vmmc_type type;
	bool b;                        /* VMMC_BOOL */
	double num;                    /* VMMC_NUM */
	bool is_int;                   /* a VMMC_NUM without fraction or
					* exponent that fits int64_t: i */
	int64_t i;
	const char *s;                 /* VMMC_STR: UTF-8, no NUL inside */
	const char *key;               /* member name inside an object, else NULL */
	uint32_t n;                    /* VMMC_ARR / VMMC_OBJ: members */
	const struct vmmc_val *first;  /* the first member, then ->next */
	const struct vmmc_val *next;
};

struct vmmc_doc;

/* Parse one reply (strict JSON, at most 32 levels and 65536 values).  NULL
 * with why filled when malformed (or ENOMEM). */
struct vmmc_doc *vmmc_parse(const char *text, char *why, size_t wl);
void vmmc_doc_free(struct vmmc_doc *d);
const struct vmmc_val *vmmc_root(const struct vmmc_doc *d);
/* Member key of object o (NULL when o is not an object or has none). */
const struct vmmc_val *vmmc_get(const struct vmmc_val *o, const char *key);
/* The string member key of o, or NULL (missing, or not a string). */
const char *vmmc_get_str(const struct vmmc_val *o, const char *key);
/* The integer member key of o: false when missing or not an integer. */
bool vmmc_get_int(const struct vmmc_val *o, const char *key, int64_t *out);

#endif
