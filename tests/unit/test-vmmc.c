/* The control-socket client (vmm-mini/vmmc.h) against a hostile server in
 * a thread: answers in pieces, two answers in one packet, no answer (the
 * timeout), an endless line (the size cap), a NUL byte, a hang-up; and the
 * reply reader on valid and malformed JSON. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm-mini/vmmc.h"

enum mode { ECHO_PIECES, TWO_AT_ONCE, SILENT, ENDLESS, NUL_BYTE, HANG_UP };

struct srv {
	char path[108];
	int lfd;
	enum mode mode;
	pthread_t t;
};

static void send_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

static void *serve(void *arg)
{
	struct srv *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	char req[4096], big[65536];
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = recv(fd, req, sizeof(req) - 1, 0);	/* the request line */
	if (n <= 0)
		goto out;
	switch (s->mode) {
	case ECHO_PIECES:
		for (const char *p = "{\"ok\":true,\"lun\":3}\n"; *p; p++)
			send_all(fd, p, 1);
		break;
	case TWO_AT_ONCE:
		send_all(fd, "{\"a\":1}\n{\"b\":2}\n", 16);
		n = recv(fd, req, sizeof(req) - 1, 0);	/* the second request */
		break;
	case SILENT:
		n = recv(fd, req, sizeof(req), 0);	/* until the client leaves */
		break;
	case ENDLESS:
		memset(big, 'x', sizeof(big));
		for (int i = 0; i < 8; i++)
			send_all(fd, big, sizeof(big));
		break;
	case NUL_BYTE:
		send_all(fd, "{\"a\":\"b\0c\"}\n", 12);
		break;
	case HANG_UP:
		send_all(fd, "{\"ok\":", 6);
		break;
	}
out:
	close(fd);
	return NULL;
}

static struct srv *start(enum mode m)
{
	static int seq;
	struct srv *s = calloc(1, sizeof(*s));
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	snprintf(s->path, sizeof(s->path), "/tmp/test-vmmc-%d-%d.sock", (int)getpid(), seq++);
	strcpy(a.sun_path, s->path);
	unlink(s->path);
	s->mode = m;
	s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 1), 0);
	assert_int_equal(pthread_create(&s->t, NULL, serve, s), 0);
	return s;
}

static void stop(struct srv *s)
{
	pthread_join(s->t, NULL);
	close(s->lfd);
	unlink(s->path);
	free(s);
}

/* One call to a server in mode m: its status, the reply in *reply. */
static int one_call(enum mode m, int timeout_ms, char **reply, struct bdev_err *e)
{
	struct srv *s = start(m);
	struct vmmc *c;
	int r = vmmc_connect(s->path, 1000, &c, e);

	assert_int_equal(r, 0);
	r = vmmc_call(c, "{\"cmd\":\"x\"}", timeout_ms, reply, e);
	vmmc_close(c);
	stop(s);
	return r;
}

static void test_calls(void **state)
{
	struct bdev_err e = { 0 };
	struct srv *s;
	struct vmmc *c;
	char *reply;

	(void)state;
	assert_int_equal(one_call(ECHO_PIECES, 5000, &reply, &e), 0);
	assert_string_equal(reply, "{\"ok\":true,\"lun\":3}");
	free(reply);
	assert_int_equal(one_call(SILENT, 200, &reply, &e), -ETIMEDOUT);
	assert_null(reply);
	assert_int_equal(one_call(ENDLESS, 5000, &reply, &e), -EMSGSIZE);
	assert_int_equal(one_call(NUL_BYTE, 5000, &reply, &e), -EBADMSG);
	assert_null(reply);
	assert_int_equal(one_call(HANG_UP, 5000, &reply, &e), -ECONNRESET);
	assert_non_null(strstr(e.msg, "closed the connection"));

	/* two answers in one packet: the second is the next call's */
	s = start(TWO_AT_ONCE);
	assert_int_equal(vmmc_connect(s->path, 1000, &c, &e), 0);
	assert_int_equal(vmmc_call(c, "{}", 5000, &reply, &e), 0);
	assert_string_equal(reply, "{\"a\":1}");
	free(reply);
	assert_int_equal(vmmc_call(c, "{}", 5000, &reply, &e), 0);
	assert_string_equal(reply, "{\"b\":2}");
	free(reply);
	/* a request that is not one line is refused before sending */
	assert_int_equal(vmmc_call(c, "{}\n{}", 5000, &reply, &e), -EINVAL);
	vmmc_close(c);
	stop(s);

	/* nobody listening */
	assert_int_equal(vmmc_connect("/tmp/test-vmmc-none.sock", 100, &c, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "--control"));
}

static void test_reader(void **state)
{
	char why[200];
	struct vmmc_doc *d;
	const struct vmmc_val *r, *disks, *x;
	int64_t i;

	(void)state;
	d = vmmc_parse(" {\"ok\":true,\"window_us\":1234,\"seconds\":0.25,\"why\":\"a\\\"b\\u00e9\\ud83d\\ude00\","
		       "\"disks\":[{\"lun\":0,\"ctk\":null},{\"lun\":2,\"ctk\":\"/x\"}],\"neg\":-7} ",
		       why, sizeof(why));
	if (!d)
		fail_msg("%s", why);
	r = vmmc_root(d);
	assert_int_equal(r->type, VMMC_OBJ);
	assert_int_equal(r->n, 6);
	assert_true(vmmc_get(r, "ok")->b);
	assert_true(vmmc_get_int(r, "window_us", &i));
	assert_int_equal(i, 1234);
	assert_false(vmmc_get_int(r, "seconds", &i));
	assert_true(vmmc_get(r, "seconds")->num == 0.25);
	assert_true(vmmc_get_int(r, "neg", &i));
	assert_int_equal(i, -7);
	assert_string_equal(vmmc_get_str(r, "why"), "a\"b\xc3\xa9\xf0\x9f\x98\x80");
	assert_null(vmmc_get_str(r, "window_us"));
	assert_null(vmmc_get(r, "missing"));
	disks = vmmc_get(r, "disks");
	assert_int_equal(disks->type, VMMC_ARR);
	assert_int_equal(disks->n, 2);
	x = disks->first->next;
	assert_true(vmmc_get_int(x, "lun", &i));
	assert_int_equal(i, 2);
	assert_string_equal(vmmc_get_str(x, "ctk"), "/x");
	assert_int_equal(vmmc_get(disks->first, "ctk")->type, VMMC_NULL);
	assert_null(x->next);
	vmmc_doc_free(d);

	{
		static const char *const bad[] = {
			"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1 2]", "{\"a\":1}x",
			"\"abc", "\"a\\q\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00x\"",
			"\"\\u0000\"", "\"tab\there\"", "01", "1.", "-", "1e", "tru", "nul",
			"{a:1}", "1e999", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		};

		for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
			why[0] = '\0';
			d = vmmc_parse(bad[k], why, sizeof(why));
			if (d)
				fail_msg("accepted: %s", bad[k]);
			assert_true(why[0] != '\0');
		}
	}
	/* 32 levels are fine */
	d = vmmc_parse("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", why, sizeof(why));
	assert_non_null(d);
	vmmc_doc_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_calls),
		cmocka_unit_test(test_reader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
