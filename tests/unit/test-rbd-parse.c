/* rbd: names (rbd_parse): qemu's spelling rbd:POOL/IMAGE[@SNAP][:conf=PATH]
 * [:id=USER] split into its parts; malformed names (no pool or image, an
 * empty snapshot or namespace, unknown options, too long); POOL/NS/IMAGE
 * names a namespace as qemu spells it refused with
 * EINVAL and a message naming the problem.  No cluster needed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rbd/rbd.h"

static void test_good(void **state)
{
	struct rbd_spec s;
	struct bdev_err e = { 0 };

	(void)state;
	assert_true(rbd_is_name("rbd:p/i"));
	assert_false(rbd_is_name("disk.vhd"));
	assert_false(rbd_is_name("rbd"));

	assert_int_equal(rbd_parse("rbd:pool/img", &s, &e), 0);
	assert_string_equal(s.pool, "pool");
	assert_string_equal(s.image, "img");
	assert_null(s.snap);
	assert_null(s.conf);
	assert_null(s.id);

	assert_int_equal(rbd_parse("rbd:vms/disk-1@before:conf=/etc/x.conf:id=admin", &s, &e), 0);
	assert_string_equal(s.pool, "vms");
	assert_string_equal(s.image, "disk-1");
	assert_string_equal(s.snap, "before");
	assert_string_equal(s.conf, "/etc/x.conf");
	assert_string_equal(s.id, "admin");

	assert_null(s.ns);
	assert_int_equal(rbd_parse("rbd:vms/tenant1/disk-1@s:conf=c", &s, &e), 0);
	assert_string_equal(s.pool, "vms");
	assert_string_equal(s.ns, "tenant1");
	assert_string_equal(s.image, "disk-1");
	assert_string_equal(s.snap, "s");
	assert_string_equal(s.conf, "c");

	assert_int_equal(rbd_parse("rbd:p/i:id=u:conf=c", &s, &e), 0);
	assert_string_equal(s.conf, "c");
	assert_string_equal(s.id, "u");
}

static void bad(const char *name, const char *why)
{
	struct rbd_spec s;
	struct bdev_err e = { 0 };

	assert_int_equal(rbd_parse(name, &s, &e), -EINVAL);
	assert_int_equal(e.code, EINVAL);
	if (!strstr(e.msg, why))
		fail_msg("%s: \"%s\" lacks \"%s\"", name, e.msg, why);
}

static void test_bad(void **state)
{
	char longname[1100];

	(void)state;
	bad("disk.vhd", "not an rbd: name");
	bad("rbd:", "expected rbd:POOL[/NAMESPACE]/IMAGE");
	bad("rbd:pool", "expected rbd:POOL[/NAMESPACE]/IMAGE");
	bad("rbd:/img", "expected rbd:POOL[/NAMESPACE]/IMAGE");
	bad("rbd:pool/", "expected rbd:POOL[/NAMESPACE]/IMAGE");
	bad("rbd:pool/img@", "empty image or snapshot");
	bad("rbd:pool/@snap", "empty image or snapshot");
	bad("rbd:pool/ns/", "expected rbd:POOL[/NAMESPACE]/IMAGE");
	bad("rbd:pool//img", "expected rbd:POOL[/NAMESPACE]/IMAGE");
	bad("rbd:pool/a/b/c", "expected rbd:POOL[/NAMESPACE]/IMAGE");
	bad("rbd:pool/img:bogus=1", "unknown option 'bogus=1'");
	bad("rbd:pool/img:conf=", "unknown option 'conf='");
	memset(longname, 'a', sizeof(longname) - 1);
	memcpy(longname, "rbd:p/", 6);
	longname[sizeof(longname) - 1] = '\0';
	bad(longname, "name too long");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
