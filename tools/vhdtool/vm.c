/* vhdtool vm: commands to a running VMM over its control socket
 * (vmm-mini run/host --control CTL; client: vmm-mini/vmmc.h).
 *
 *   vm [--output=human|json] [--timeout SECONDS] CTL COMMAND [ARGS]
 *
 * Prints the VMM's answer (readable by default, the JSON line with
 * --output=json); an {"error": ...} answer is printed on stderr and exits 1.
 */
#include "vhdtool.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "vmm-mini/vmm.h"
#include "vmm-mini/vmmc.h"

static int run_vm(int argc, char **argv);
VHDTOOL_COMMAND(vm, .name = "vm",
	.usage = "vm [--output=human|json] [--timeout SECONDS] CTL status|disks|stats|pause|resume|quit\n"
		 "vm [OPTIONS] CTL disk-add [--lun N] [--ro] IMAGE\n"
		 "vm [OPTIONS] CTL disk-remove|snapshot|merge LUN\n"
		 "vm [OPTIONS] CTL backup-snapshot [--disk LUN]... [--freeze-timeout MS] [--require-app-consistent]",
	.summary = "talk to a running VMM: its state and disks, hot add/remove, snapshot, merge",
	.run = run_vm)

void vt_vm_answer_free(struct vt_vm_answer *a)
{
	vmmc_doc_free(a->doc);
	free(a->line);
	memset(a, 0, sizeof(*a));
}

int vt_vm_call(struct vmmc *c, const char *ctl, const char *req, int timeout_ms,
	       struct vt_vm_answer *a)
{
	struct bdev_err e = { 0 };
	char why[200];
	const char *msg;

	memset(a, 0, sizeof(*a));
	if (vmmc_call(c, req, timeout_ms, &a->line, &e)) {
		vt_err(ctl, "%s", e.msg);
		return 1;
	}
	a->doc = vmmc_parse(a->line, why, sizeof(why));
	if (!a->doc || vmmc_root(a->doc)->type != VMMC_OBJ) {
		vt_err(ctl, "the VMM's answer is not a JSON object (%s)",
		       a->doc ? "another value" : why);
		vt_vm_answer_free(a);
		return 1;
	}
	a->root = vmmc_root(a->doc);
	if (vmmc_get(a->root, "error")) {
		const char *cmd = vmmc_get_str(a->root, "cmd");

		msg = vmmc_get_str(a->root, "error");
		vt_err(ctl, "%s%s%s", msg ? msg : "the VMM answered an error without a message",
		       cmd ? ": " : "", cmd ? cmd : "");
		return 1;
	}
	return 0;
}

struct vmmc *vt_vm_connect(const char *ctl)
{
	struct bdev_err e = { 0 };
	struct vmmc *c;

	if (vmmc_connect(ctl, 5000, &c, &e)) {
		vt_err(NULL, "%s", e.msg);
		return NULL;
	}
	return c;
}

/* ---- readable answers ---- */

/* A scalar as text into buf. */
static const char *scalar(const struct vmmc_val *v, char *buf, size_t len)
{
	switch (v->type) {
	case VMMC_NULL: return "-";
	case VMMC_BOOL: return v->b ? "yes" : "no";
	case VMMC_STR: return v->s;
	case VMMC_NUM:
		if (v->is_int)
			snprintf(buf, len, "%lld", (long long)v->i);
		else
			snprintf(buf, len, "%g", v->num);
		return buf;
	default: return v->type == VMMC_ARR ? "[...]" : "{...}";
	}
}

/* "key: value" lines; arrays of objects as one indented line each. */
static void print_generic(const struct vmmc_val *o)
{
	bool any = false;
	char b[64];

	for (const struct vmmc_val *m = o->first; m; m = m->next) {
		if (!strcmp(m->key, "ok"))
			continue;
		any = true;
		if (m->type != VMMC_ARR) {
			printf("%s: %s\n", m->key, scalar(m, b, sizeof(b)));
			continue;
		}
		printf("%s:\n", m->key);
		for (const struct vmmc_val *x = m->first; x; x = x->next) {
			if (x->type != VMMC_OBJ) {
				printf("  - %s\n", scalar(x, b, sizeof(b)));
				continue;
			}
			printf("  -");
			for (const struct vmmc_val *k = x->first; k; k = k->next)
				printf(" %s=%s", k->key, scalar(k, b, sizeof(b)));
			putchar('\n');
		}
	}
	if (!any)
		printf("ok\n");
}

static void print_disks(const struct vmmc_val *o)
{
	const struct vmmc_val *d = vmmc_get(o, "disks");
	char b[64], s[32];

	printf("%-4s %-14s %10s %-3s %-7s %-5s %s\n", "LUN", "KIND", "SIZE", "RO",
	       "TRACKED", "SNAPS", "IMAGE (TOP)");
	for (const struct vmmc_val *x = d && d->type == VMMC_ARR ? d->first : NULL; x;
	     x = x->next) {
		const char *path = vmmc_get_str(x, "path"), *top = vmmc_get_str(x, "top");
		const struct vmmc_val *ro = vmmc_get(x, "ro"), *tr = vmmc_get(x, "tracked");
		int64_t lun = -1, size = 0, snaps = 0;

		vmmc_get_int(x, "lun", &lun);
		vmmc_get_int(x, "size", &size);
		vmmc_get_int(x, "snapshots", &snaps);
		printf("%-4lld %-14s %10s %-3s %-7s %-5lld %s", (long long)lun,
		       vmmc_get_str(x, "kind") ? vmmc_get_str(x, "kind") : "?",
		       util_fmt_size(size > 0 ? (uint64_t)size : 0, s, sizeof(s)),
		       ro ? scalar(ro, b, sizeof(b)) : "?", tr ? scalar(tr, b, sizeof(b)) : "?",
		       (long long)snaps, path ? path : "?");
		if (top && path && strcmp(top, path))
			printf(" (writes go to %s)", top);
		putchar('\n');
	}
}

/* ---- requests ---- */

/* Appends ,"key":"value" (escaped) to req. */
static void add_str(char *req, size_t cap, const char *key, const char *val)
{
	char js[VMMC_REQUEST_MAX];
	size_t n = strlen(req);

	vmm_json_str(js, sizeof(js), val);
	snprintf(req + n, cap - n, ",\"%s\":%s", key, js);
}

static bool parse_lun(const char *s, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	if (errno || *end || end == s || *out < 0 || *out > 63) {
		vt_err(NULL, "'%s' is not a LUN (0 to 63)", s);
		return false;
	}
	return true;
}

void vt_vm_snapshot_req(char *req, size_t cap, const char *luns, long freeze_ms,
			bool require_app)
{
	snprintf(req, cap, "{\"cmd\":\"backup-snapshot\"");
	if (luns && luns[0])
		add_str(req, cap, "luns", luns);
	if (freeze_ms > 0)
		snprintf(req + strlen(req), cap - strlen(req), ",\"freeze_timeout\":%ld",
			 freeze_ms);
	if (require_app)
		snprintf(req + strlen(req), cap - strlen(req), ",\"require_app\":true");
	snprintf(req + strlen(req), cap - strlen(req), "}");
}

bool vt_vm_add_lun(char *luns, size_t cap, const char *arg)
{
	size_t n = strlen(luns);
	long v;

	if (!parse_lun(arg, &v))
		return false;
	snprintf(luns + n, cap - n, "%s%ld", n ? "," : "", v);
	return true;
}

bool vt_parse_ms(const char *what, const char *s, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	if (errno || *end || end == s || *out < 1 || *out > 3600000) {
		vt_err(NULL, "%s '%s' is not milliseconds (1 to 3600000)", what, s);
		return false;
	}
	return true;
}

static int snapshot_request(int argc, char **argv, char *req, size_t cap)
{
	static const struct option lo[] = {
		{ "disk", required_argument, NULL, 'd' },
		{ "freeze-timeout", required_argument, NULL, 'f' },
		{ "require-app-consistent", no_argument, NULL, 'a' },
		{ 0 }
	};
	char luns[256] = "";
	long ms = -1;
	bool app = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!vt_vm_add_lun(luns, sizeof(luns), optarg))
				return 2;
			break;
		case 'f':
			if (!vt_parse_ms("--freeze-timeout", optarg, &ms))
				return 2;
			break;
		case 'a': app = true; break;
		default: return vt_usage(&vm_cmd);
		}
	}
	if (optind != argc)
		return vt_usage(&vm_cmd);
	vt_vm_snapshot_req(req, cap, luns, ms, app);
	return 0;
}

/* The request for COMMAND ARGS (argv[0] = COMMAND) into req; 0, or the
 * exit status of a usage error. */
static int build_request(int argc, char **argv, char *req, size_t cap)
{
	static const char *const simple[] = { "status", "disks", "stats", "pause", "resume",
					      "quit" };
	const char *cmd = argv[0];
	long lun = -1;

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(simple); i++)
		if (!strcmp(cmd, simple[i])) {
			if (argc != 1)
				return vt_usage(&vm_cmd);
			snprintf(req, cap, "{\"cmd\":\"%s\"}", cmd);
			return 0;
		}
	if (!strcmp(cmd, "disk-remove") || !strcmp(cmd, "snapshot") || !strcmp(cmd, "merge")) {
		if (argc != 2)
			return vt_usage(&vm_cmd);
		if (!parse_lun(argv[1], &lun))
			return 2;
		snprintf(req, cap, "{\"cmd\":\"%s\",\"lun\":%ld}", cmd, lun);
		return 0;
	}
	if (!strcmp(cmd, "backup-snapshot"))
		return snapshot_request(argc, argv, req, cap);
	if (!strcmp(cmd, "disk-add")) {
		static const struct option lo[] = {
			{ "lun", required_argument, NULL, 'l' },
			{ "ro", no_argument, NULL, 'r' },
			{ 0 }
		};
		bool ro = false;
		char *real;
		int c;

		optind = 1;
		while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
			if (c == 'l' && !parse_lun(optarg, &lun))
				return 2;
			if (c == 'r')
				ro = true;
			else if (c != 'l')
				return vt_usage(&vm_cmd);
		}
		if (argc - optind != 1)
			return vt_usage(&vm_cmd);
		/* the VMM resolves paths from its own folder: send ours */
		real = realpath(argv[optind], NULL);
		snprintf(req, cap, "{\"cmd\":\"disk-add\"");
		add_str(req, cap, "path", real ? real : argv[optind]);
		free(real);
		if (lun >= 0)
			snprintf(req + strlen(req), cap - strlen(req), ",\"lun\":%ld", lun);
		snprintf(req + strlen(req), cap - strlen(req), "%s}", ro ? ",\"ro\":true" : "");
		return 0;
	}
	vt_err(NULL, "unknown vm command '%s' (see vhdtool vm --help)", cmd);
	return 2;
}

/* Seconds to wait for the answer when --timeout is not given: the slow
 * commands (a merge copies data; a backup snapshot waits for the guest)
 * get longer. */
static int default_timeout_ms(const char *cmd)
{
	static const char *const slow[] = { "merge", "snapshot", "backup-snapshot",
					    "disk-add", "disk-remove" };

	for (size_t i = 0; i < UTIL_ARRAY_SIZE(slow); i++)
		if (!strcmp(cmd, slow[i]))
			return 3600 * 1000;
	return 30 * 1000;
}

bool vt_parse_output(const char *s, bool *json)
{
	if (!strcmp(s, "json") || !strcmp(s, "human")) {
		*json = s[0] == 'j';
		return true;
	}
	vt_err(NULL, "--output '%s': want human or json", s);
	return false;
}

static int run_vm(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "timeout", required_argument, NULL, 't' },
		{ 0 }
	};
	char req[VMMC_REQUEST_MAX + 96];
	struct vt_vm_answer a;
	long timeout_s = -1;
	bool json = false;
	struct vmmc *c;
	char *end;
	int o, rc;

	optind = 1;
	/* "+": options of the VM command itself come after CTL COMMAND */
	while ((o = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		if (o == 'o' && !vt_parse_output(optarg, &json))
			return 2;
		if (o == 't') {
			errno = 0;
			timeout_s = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || timeout_s < 1 || timeout_s > 86400) {
				vt_err(NULL, "--timeout '%s' is not seconds (1 to 86400)", optarg);
				return 2;
			}
		} else if (o != 'o') {
			return vt_usage(&vm_cmd);
		}
	}
	if (argc - optind < 2)
		return vt_usage(&vm_cmd);
	{
		const char *ctl = argv[optind];
		char **cargv = argv + optind + 1;
		int cargc = argc - optind - 1;

		rc = build_request(cargc, cargv, req, sizeof(req));
		if (rc)
			return rc;
		if (strlen(req) > VMMC_REQUEST_MAX) {
			vt_err(NULL, "the request is too long for the control socket");
			return 2;
		}
		c = vt_vm_connect(ctl);
		if (!c)
			return 1;
		rc = vt_vm_call(c, ctl, req, timeout_s > 0 ? (int)timeout_s * 1000
							   : default_timeout_ms(cargv[0]), &a);
		vmmc_close(c);
		if (json && a.line)
			printf("%s\n", a.line);
		if (rc) {
			vt_vm_answer_free(&a);
			return 1;
		}
		if (!json && !strcmp(cargv[0], "disks"))
			print_disks(a.root);
		else if (!json)
			print_generic(a.root);
	}
	vt_vm_answer_free(&a);
	return 0;
}
