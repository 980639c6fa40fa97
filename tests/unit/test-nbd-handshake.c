/* nbd server handshake, driven by libnbd: GO and EXPORT_NAME (fixed and
 * plain newstyle, with and without NO_ZEROES), INFO, LIST, meta contexts,
 * ABORT, unsupported options, read-only exports, several clients, the
 * client limit and --once. */
#include "nbd-harness.h"

#define SIZE (4u << 20)

struct fx {
	struct th t;
	char path[PATH_MAX];
};

/* A 4 MiB dynamic VHD with pattern 1 at [0, 64K) and 2 at [1M, 1M+4K). */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	th_init(&f->t);
	th_path(&f->t, "d.vhd", f->path, sizeof(f->path));
	th_vhd_create(f->path, VHD_TYPE_DYNAMIC, SIZE, NULL);
	f->t.b = th_vhd_open(f->path, false);
	th_write_pattern(f->t.b, 0, 65536, 1);
	th_write_pattern(f->t.b, 1 << 20, 4096, 2);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	th_close_all(&f->t);
	if (f->t.s)
		nbdsrv_stop(f->t.s);
	th_join(&f->t);
	if (f->t.s)
		nbdsrv_free(f->t.s);
	bdev_close(f->t.b);
	th_fini(&f->t);
	free(f);
	return 0;
}

static void check_pattern(struct nbd_handle *h, uint64_t off, size_t len,
			  unsigned seed)
{
	uint8_t *got = malloc(len), *want = malloc(len);

	th_fill(want, len, off, seed);
	if (nbd_pread(h, got, len, off, 0) == -1)
		fail_msg("pread: %s", nbd_get_error());
	assert_memory_equal(got, want, len);
	free(got);
	free(want);
}

static void check_zero(struct nbd_handle *h, uint64_t off, size_t len)
{
	uint8_t *got = malloc(len);

	memset(got, 0xaa, len);
	if (nbd_pread(h, got, len, off, 0) == -1)
		fail_msg("pread: %s", nbd_get_error());
	assert_true(util_is_zero(got, len));
	free(got);
}

static void close_clean(struct fx *f, struct nbd_handle *h)
{
	assert_int_equal(nbd_shutdown(h, 0), 0);
	th_close(&f->t, h);
	assert_int_equal(th_join(&f->t), 0);
}

static void named_full(struct nbd_handle *h)
{
	nbd_set_export_name(h, "disk");
	nbd_set_full_info(h, true);
}

static void test_go_structured(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .export_name = "disk", .description = "a test disk" };
	struct nbd_handle *h;
	char *s;

	th_server(&f->t, &o);
	h = th_nbd_pair(&f->t, named_full);
	assert_string_equal(nbd_get_protocol(h), "newstyle-fixed");
	assert_int_equal(nbd_get_structured_replies_negotiated(h), 1);
	assert_int_equal(nbd_get_size(h), SIZE);
	assert_int_equal(nbd_is_read_only(h), 0);
	assert_int_equal(nbd_can_flush(h), 1);
	assert_int_equal(nbd_can_fua(h), 1);
	assert_int_equal(nbd_can_trim(h), 1);
	assert_int_equal(nbd_can_zero(h), 1);
	assert_int_equal(nbd_can_fast_zero(h), 1);
	assert_int_equal(nbd_can_df(h), 1);
	assert_int_equal(nbd_can_cache(h), 1);
	assert_int_equal(nbd_can_multi_conn(h), 1);
	assert_int_equal(nbd_can_meta_context(h, "base:allocation"), 1);
	assert_int_equal(nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM), 1);
	assert_int_equal(nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED), 4096);
	assert_int_equal(nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM), 32 << 20);
	s = nbd_get_canonical_export_name(h);
	assert_non_null(s);
	assert_string_equal(s, "disk");
	free(s);
	s = nbd_get_export_description(h);
	assert_non_null(s);
	assert_string_equal(s, "a test disk");
	free(s);
	check_pattern(h, 0, 65536, 1);
	check_pattern(h, 1 << 20, 4096, 2);
	close_clean(f, h);
}

static void full_info(struct nbd_handle *h)
{
	nbd_set_full_info(h, true);
}

/* The default export "" names the one export. */
static void test_default_name(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .export_name = "disk" };
	struct nbd_handle *h;
	char *s;

	th_server(&f->t, &o);
	h = th_nbd_pair(&f->t, full_info);
	s = nbd_get_canonical_export_name(h);
	assert_string_equal(s, "disk");
	free(s);
	check_pattern(h, 0, 4096, 1);
	close_clean(f, h);
}

static void name_other(struct nbd_handle *h)
{
	nbd_set_export_name(h, "other");
}

static void test_unknown_export(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .export_name = "disk" };
	struct nbd_handle *h = nbd_create();

	th_server(&f->t, &o);
	name_other(h);
	assert_int_equal(nbd_connect_socket(h, th_serve_pair(&f->t)), -1);
	assert_non_null(strstr(nbd_get_error(), "no export named"));
	nbd_close(h);
	/* The client gave up politely: no protocol error on our side. */
	assert_int_equal(th_join(&f->t), 0);
	assert_true(th_logged(&f->t, "option 7 refused"));
}

static void test_read_only(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .read_only = true };
	struct nbd_handle *h;
	uint8_t buf[4096] = { 0xee };

	th_server(&f->t, &o);
	h = th_nbd_pair(&f->t, NULL);
	assert_int_equal(nbd_is_read_only(h), 1);
	assert_int_equal(nbd_can_trim(h), 0);
	assert_int_equal(nbd_can_zero(h), 0);
	assert_int_equal(nbd_can_fua(h), 0);
	assert_int_equal(nbd_can_flush(h), 1);
	/* Past libnbd's own check, the server must refuse too. */
	assert_int_equal(nbd_set_strict_mode(h, 0), 0);
	assert_int_equal(nbd_pwrite(h, buf, sizeof(buf), 0, 0), -1);
	assert_int_equal(nbd_get_errno(), EPERM);
	assert_int_equal(nbd_zero(h, 4096, 0, 0), -1);
	assert_int_equal(nbd_get_errno(), EPERM);
	assert_int_equal(nbd_trim(h, 4096, 0, 0), -1);
	assert_int_equal(nbd_get_errno(), EPERM);
	check_pattern(h, 0, 65536, 1);
	assert_int_equal(nbd_flush(h, 0), 0);
	close_clean(f, h);
}

static void no_sr(struct nbd_handle *h)
{
	nbd_set_request_structured_replies(h, false);
}

static void test_no_structured(void **state)
{
	struct fx *f = *state;
	struct nbd_handle *h;

	th_server(&f->t, NULL);
	h = th_nbd_pair(&f->t, no_sr);
	assert_int_equal(nbd_get_structured_replies_negotiated(h), 0);
	assert_int_equal(nbd_can_df(h), 0);
	assert_int_equal(nbd_can_meta_context(h, "base:allocation"), 0);
	check_pattern(h, 0, 65536, 1);       /* simple replies */
	check_zero(h, 65536, 8192);          /* unallocated */
	close_clean(f, h);
}

static void plain_newstyle(struct nbd_handle *h)
{
	nbd_set_handshake_flags(h, 0);
}

static void plain_no_zeroes(struct nbd_handle *h)
{
	nbd_set_handshake_flags(h, LIBNBD_HANDSHAKE_FLAG_NO_ZEROES);
}

/* A client that does not speak fixed newstyle can only send EXPORT_NAME;
 * the reply has 124 zero bytes unless NO_ZEROES was agreed. */
static void test_export_name(void **state)
{
	struct fx *f = *state;
	void (*cfg[])(struct nbd_handle *) = { plain_newstyle, plain_no_zeroes };

	th_server(&f->t, NULL);
	for (size_t i = 0; i < UTIL_ARRAY_SIZE(cfg); i++) {
		struct nbd_handle *h = th_nbd_pair(&f->t, cfg[i]);

		assert_string_equal(nbd_get_protocol(h), "newstyle");
		assert_int_equal(nbd_get_size(h), SIZE);
		check_pattern(h, 1 << 20, 4096, 2);
		close_clean(f, h);
	}
}

struct listed {
	int n;
	char name[64], desc[64];
};

static int list_cb(void *opaque, const char *name, const char *desc)
{
	struct listed *l = opaque;

	l->n++;
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->desc, sizeof(l->desc), "%s", desc);
	return 0;
}

static int ctx_cb(void *opaque, const char *name)
{
	struct listed *l = opaque;

	l->n++;
	snprintf(l->name, sizeof(l->name), "%s", name);
	return 0;
}

static void opt_mode(struct nbd_handle *h)
{
	nbd_set_opt_mode(h, true);
}

static void test_opt_list_info_go(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .export_name = "disk", .description = "about" };
	struct listed l = { 0 }, m = { 0 };
	struct nbd_handle *h;

	th_server(&f->t, &o);
	h = th_nbd_pair(&f->t, opt_mode);
	assert_int_equal(nbd_aio_is_negotiating(h), 1);
	assert_int_equal(nbd_opt_list(h, (nbd_list_callback){ .callback = list_cb,
							     .user_data = &l }), 1);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.name, "disk");
	assert_string_equal(l.desc, "about");
	/* An unknown name fails INFO; the session goes on. */
	nbd_set_export_name(h, "nope");
	assert_int_equal(nbd_opt_info(h), -1);
	nbd_set_export_name(h, "disk");
	assert_int_equal(nbd_opt_info(h), 0);
	assert_int_equal(nbd_get_size(h), SIZE);
	assert_int_equal(nbd_opt_list_meta_context(h,
			(nbd_context_callback){ .callback = ctx_cb, .user_data = &m }), 1);
	assert_string_equal(m.name, "base:allocation");
	assert_int_equal(nbd_opt_go(h), 0);
	assert_int_equal(nbd_can_meta_context(h, "base:allocation"), 1);
	check_pattern(h, 0, 4096, 1);
	close_clean(f, h);
}

static void test_opt_abort(void **state)
{
	struct fx *f = *state;
	struct nbd_handle *h;

	th_server(&f->t, NULL);
	h = th_nbd_pair(&f->t, opt_mode);
	assert_int_equal(nbd_opt_abort(h), 0);
	th_close(&f->t, h);
	assert_int_equal(th_join(&f->t), 0);
	assert_false(th_logged(&f->t, "disconnecting"));
}

static void tls_allow(struct nbd_handle *h)
{
	assert_int_equal(nbd_set_tls(h, LIBNBD_TLS_ALLOW), 0);
}

/* STARTTLS is not supported: an error reply, and the session goes on. */
static void test_unsupported_option(void **state)
{
	struct fx *f = *state;
	struct nbd_handle *probe = nbd_create();
	struct nbd_handle *h;
	bool tls = nbd_supports_tls(probe);

	nbd_close(probe);
	if (!tls)
		skip();
	th_server(&f->t, NULL);
	h = th_nbd_pair(&f->t, tls_allow);
	assert_int_equal(nbd_get_tls_negotiated(h), 0);
	assert_true(th_logged(&f->t, "option 5 refused"));
	check_pattern(h, 0, 4096, 1);
	close_clean(f, h);
}

/* Two clients at once through nbdsrv_run: a flushed write on one is seen
 * by the other (CAN_MULTI_CONN). */
static void test_multi_conn(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_stats st;
	struct nbd_handle *a, *b;
	uint8_t buf[8192];

	th_server(&f->t, NULL);
	th_listen(&f->t);
	a = th_nbd_unix(&f->t);
	b = th_nbd_unix(&f->t);
	assert_int_equal(nbd_can_multi_conn(a), 1);
	th_fill(buf, sizeof(buf), 2 << 20, 3);
	assert_int_equal(nbd_pwrite(a, buf, sizeof(buf), 2 << 20, 0), 0);
	assert_int_equal(nbd_flush(a, 0), 0);
	check_pattern(b, 2 << 20, sizeof(buf), 3);
	nbdsrv_get_stats(f->t.s, &st);
	assert_int_equal(st.active, 2);
	assert_int_equal(st.accepted, 2);
	th_close(&f->t, a);
	th_close(&f->t, b);
	assert_int_equal(th_stop(&f->t), 0);
	nbdsrv_get_stats(f->t.s, &st);
	assert_int_equal(st.active, 0);
	assert_int_equal(st.protocol_errors, 0);
}

static void test_max_clients(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .max_clients = 1 };
	struct nbdsrv_stats st;
	struct nbd_handle *a, *b;

	th_server(&f->t, &o);
	th_listen(&f->t);
	a = th_nbd_unix(&f->t);
	b = nbd_create();
	assert_int_equal(nbd_connect_unix(b, f->t.sock), -1);
	nbd_close(b);
	check_pattern(a, 0, 4096, 1);
	nbdsrv_get_stats(f->t.s, &st);
	assert_int_equal(st.refused, 1);
	th_close(&f->t, a);
	assert_int_equal(th_stop(&f->t), 0);
}

/* once: the server runs until the first client and those that joined it
 * are gone. */
static void test_once(void **state)
{
	struct fx *f = *state;
	struct nbdsrv_opts o = { .once = true };
	struct nbdsrv_stats st;
	struct nbd_handle *a, *b;

	th_server(&f->t, &o);
	th_listen(&f->t);
	a = th_nbd_unix(&f->t);
	b = th_nbd_unix(&f->t);
	th_close(&f->t, a);
	check_pattern(b, 0, 4096, 1);   /* still served */
	th_close(&f->t, b);
	assert_int_equal(th_join(&f->t), 0);   /* returned by itself */
	nbdsrv_get_stats(f->t.s, &st);
	assert_int_equal(st.accepted, 2);
	assert_int_equal(st.active, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_go_structured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_export, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_structured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_opt_list_info_go, setup, teardown),
		cmocka_unit_test_setup_teardown(test_opt_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_option, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multi_conn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_once, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
