/* s3: the parts that need no store: s3:// URLs (s3_url_parse), the
 * configuration from the environment (s3_config_env: AWS variable names,
 * fallbacks, options kept over variables, no credentials refused) and from
 * the AWS shared config and credentials files (profiles, precedence,
 * services sections, malformed lines refused with where), and the
 * ListObjectsV2 page parser (s3_list_parse) on good pages (entities,
 * numeric references, pages, Owner blocks) and hostile ones (truncated,
 * unbalanced, oversized, nested too deep, bad entities, NUL references,
 * a key over 1024 bytes, a huge size, a truncated page without a token,
 * another root element). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "s3/s3.h"

static void test_url(void **state)
{
	char b[64], p[1024], longp[1100];
	struct bdev_err e = { 0 };

	(void)state;
	assert_true(s3_is_url("s3://x"));
	assert_false(s3_is_url("/tmp/repo"));
	assert_false(s3_is_url("S3:/x"));

	assert_int_equal(s3_url_parse("s3://my-bucket", b, p, &e), 0);
	assert_string_equal(b, "my-bucket");
	assert_string_equal(p, "");
	assert_int_equal(s3_url_parse("s3://my.bucket.1/", b, p, &e), 0);
	assert_string_equal(b, "my.bucket.1");
	assert_string_equal(p, "");
	assert_int_equal(s3_url_parse("s3://bkt//backups/host a/", b, p, &e), 0);
	assert_string_equal(b, "bkt");
	assert_string_equal(p, "backups/host a");

	/* Bad bucket names. */
	static const char *const bad[] = {
		"s3://", "s3://ab", "s3://Upper", "s3://-start", "s3://end-",
		"s3://a..b", "s3://192.168.1.1", "s3://under_score/x", "http://bkt/x",
		"s3://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"s3://bkt/a//b", "s3://bkt/a\nb",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.code = 0;
		assert_int_equal(s3_url_parse(bad[i], b, p, &e), -EINVAL);
		assert_int_equal(e.code, EINVAL);
		assert_true(strlen(e.msg) > 0);
	}
	memcpy(longp, "s3://bkt/", 9);
	memset(longp + 9, 'k', 1030);
	longp[1039] = 0;
	assert_int_equal(s3_url_parse(longp, b, p, &e), -EINVAL);
	longp[9 + 1023] = 0;
	assert_int_equal(s3_url_parse(longp, b, p, &e), 0);
	assert_int_equal(strlen(p), 1023);
}

static void clear_env(void)
{
	static const char *const v[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
		"AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		unsetenv(v[i]);
	/* Never the files of the machine running the test. */
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/vhdstack-test/credentials", 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent/vhdstack-test/config", 1);
}

static void test_env(void **state)
{
	struct s3_config c;
	struct bdev_err e = { 0 };
	char big[4000];

	(void)state;
	clear_env();
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "AWS_ACCESS_KEY_ID"));

	setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SECRET", 1);
	setenv("AWS_DEFAULT_REGION", "eu-west-3", 1);
	setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:7480", 1);
	setenv("AWS_CA_BUNDLE", "/etc/ca.pem", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.access_key, "AKID");
	assert_string_equal(c.secret_key, "SECRET");
	assert_string_equal(c.region, "eu-west-3");
	assert_string_equal(c.endpoint, "http://127.0.0.1:7480");
	assert_string_equal(c.ca_file, "/etc/ca.pem");
	assert_string_equal(c.session_token, "");
	assert_true(c.path_style);

	/* AWS_REGION wins over AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 over
	 * AWS_ENDPOINT_URL (the service's own over the global one); fields
	 * already set win over the environment. */
	setenv("AWS_REGION", "us-west-2", 1);
	setenv("AWS_ENDPOINT_URL", "https://s3.example", 1);
	setenv("AWS_SESSION_TOKEN", "TOKEN", 1);
	memset(&c, 0, sizeof(c));
	strcpy(c.secret_key, "from-option");
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.region, "us-west-2");
	assert_string_equal(c.endpoint, "http://127.0.0.1:7480");
	unsetenv("AWS_ENDPOINT_URL_S3");
	memset(&c, 0, sizeof(c));
	strcpy(c.secret_key, "from-option");
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.endpoint, "https://s3.example");
	assert_string_equal(c.secret_key, "from-option");
	assert_string_equal(c.session_token, "TOKEN");

	/* No endpoint: virtual-host style stays possible. */
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ENDPOINT_URL_S3");
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_false(c.path_style);

	/* A bad endpoint, a value too long. */
	setenv("AWS_ENDPOINT_URL", "ftp://x", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EINVAL);
	unsetenv("AWS_ENDPOINT_URL");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	setenv("AWS_SESSION_TOKEN", big, 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -ENAMETOOLONG);
	clear_env();
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* The shared files as the AWS tools read them: profiles, the credentials
 * file before the config file, the variables before both, services
 * sections, sub-properties, comments, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS,
 * a missing profile and a malformed line refused with where. */
static void test_profile(void **state)
{
	char dir[] = "/tmp/vhdstack-s3prof.XXXXXX", cred[64], conf[64];
	struct s3_config c;
	struct bdev_err e = { 0 };

	(void)state;
	clear_env();
	assert_non_null(mkdtemp(dir));
	snprintf(cred, sizeof(cred), "%s/credentials", dir);
	snprintf(conf, sizeof(conf), "%s/config", dir);
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
	setenv("AWS_CONFIG_FILE", conf, 1);
	write_file(cred,
		   "# a comment\n"
		   "[default]\n"
		   "aws_access_key_id = DEFKEY\n"
		   "aws_secret_access_key=DEFSECRET   # a comment after\n"
		   "\n"
		   "[dev]\n"
		   "  ; indented comment\n"
		   "aws_access_key_id = DEVKEY\n"
		   "aws_secret_access_key = DEVSECRET\n"
		   "aws_session_token = DEVTOKEN\n"
		   "[empty]\n");
	write_file(conf,
		   "[default]\n"
		   "region = eu-central-1\n"
		   "endpoint_url = http://127.0.0.1:9000\n"
		   "[profile   dev]\n"
		   "region = ap-south-1\n"
		   "endpoint_url = http://global.example\n"
		   "services = local\n"
		   "s3 =\n"
		   "  addressing_style = virtual\n"
		   "  max_concurrent_requests = 20\n"
		   "[services local]\n"
		   "s3 =\n"
		   "  endpoint_url = https://s3.local.example:8443\n"
		   "[profile inconf]\n"
		   "aws_access_key_id = CONFKEY\n"
		   "aws_secret_access_key = CONFSECRET\n"
		   "ca_bundle = /etc/ssl/inconf.pem\n");

	/* The default profile of both files. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.access_key, "DEFKEY");
	assert_string_equal(c.secret_key, "DEFSECRET");
	assert_string_equal(c.session_token, "");
	assert_string_equal(c.region, "eu-central-1");
	assert_string_equal(c.endpoint, "http://127.0.0.1:9000");
	assert_true(c.path_style);
	assert_false(c.virtual_host);

	/* A named profile: [dev] and [profile dev]; the services section's
	 * s3 endpoint wins over the profile's global one; addressing from
	 * the s3 sub-properties. */
	setenv("AWS_PROFILE", "dev", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.access_key, "DEVKEY");
	assert_string_equal(c.secret_key, "DEVSECRET");
	assert_string_equal(c.session_token, "DEVTOKEN");
	assert_string_equal(c.region, "ap-south-1");
	assert_string_equal(c.endpoint, "https://s3.local.example:8443");
	assert_true(c.virtual_host);
	/* An option's addressing wins over the file's. */
	memset(&c, 0, sizeof(c));
	c.path_style = true;
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_false(c.virtual_host);

	/* The variables win over the files: credentials as a set, region,
	 * endpoint; only the key set is an error (as in the AWS CLI), not
	 * the files' pair used quietly. */
	setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
	setenv("AWS_REGION", "us-east-2", 1);
	setenv("AWS_ENDPOINT_URL", "http://env.example", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.access_key, "ENVKEY");
	assert_string_equal(c.secret_key, "ENVSECRET");
	assert_string_equal(c.session_token, "");
	assert_string_equal(c.region, "us-east-2");
	assert_string_equal(c.endpoint, "http://env.example");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "partial credentials"));
	assert_non_null(strstr(e.msg, "AWS_SECRET_ACCESS_KEY is not"));
	unsetenv("AWS_ACCESS_KEY_ID");
	setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "AWS_ACCESS_KEY_ID is not"));
	/* Keys given as options: the lone variable does not matter. */
	memset(&c, 0, sizeof(c));
	strcpy(c.access_key, "OPTKEY");
	strcpy(c.secret_key, "OPTSECRET");
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.access_key, "OPTKEY");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_REGION");
	unsetenv("AWS_ENDPOINT_URL");

	/* Configured endpoints ignored on request. */
	setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.endpoint, "");
	unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");

	/* Credentials from the config file when the credentials file has
	 * none for the profile; ca_bundle. */
	setenv("AWS_PROFILE", "inconf", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.access_key, "CONFKEY");
	assert_string_equal(c.ca_file, "/etc/ssl/inconf.pem");
	assert_string_equal(c.endpoint, "");

	/* A profile with no credentials anywhere, a profile nowhere. */
	setenv("AWS_PROFILE", "empty", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "no S3 credentials"));
	assert_non_null(strstr(e.msg, "[empty]"));
	setenv("AWS_PROFILE", "nope", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "\"nope\""));
	unsetenv("AWS_PROFILE");

	/* The credentials file's settings win over the config file's for
	 * the same profile (region, ca_bundle, endpoint_url), as the AWS
	 * tools merge them; "key: value" as configparser reads it. */
	write_file(cred, "[default]\naws_access_key_id: K2\naws_secret_access_key = S2\n"
			 "region: eu-north-1\nca_bundle = /etc/ssl/cred.pem\n"
			 "endpoint_url = http://cred.example:7480\n");
	write_file(conf, "[default]\nregion = eu-central-1\nca_bundle = /etc/ssl/conf.pem\n"
			 "endpoint_url = http://conf.example\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.access_key, "K2");
	assert_string_equal(c.region, "eu-north-1");
	assert_string_equal(c.ca_file, "/etc/ssl/cred.pem");
	assert_string_equal(c.endpoint, "http://cred.example:7480");
	write_file(cred, "[default]\naws_access_key_id = K2\naws_secret_access_key = S2\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.region, "eu-central-1");
	assert_string_equal(c.endpoint, "http://conf.example");

	/* Profiles that get credentials another way are refused, not read
	 * as the static keys beside them (the AWS tools would assume the
	 * role); keys in the environment still win. */
	write_file(conf, "[default]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = base\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -ENOTSUP);
	assert_non_null(strstr(e.msg, "role_arn"));
	assert_non_null(strstr(e.msg, "config [default]"));
	setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), 0);
	assert_string_equal(c.access_key, "ENVKEY");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	write_file(conf, "[default]\nsso_session = corp\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -ENOTSUP);
	assert_non_null(strstr(e.msg, "sso_session"));
	write_file(cred, "[default]\n");
	write_file(conf, "[default]\ncredential_process = /bin/creds\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -ENOTSUP);
	assert_non_null(strstr(e.msg, "credential_process"));

	/* Not a config file: /dev/zero (refused after 1 MiB, never read to
	 * the end), a file over 1 MiB; /dev/null is an empty one. */
	setenv("AWS_CONFIG_FILE", "/dev/zero", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "/dev/zero"));
	setenv("AWS_CONFIG_FILE", "/dev/null", 1);
	setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), 0);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	setenv("AWS_CONFIG_FILE", conf, 1);
	{
		FILE *f = fopen(conf, "w");

		assert_non_null(f);
		fputs("[default]\n", f);
		for (int i = 0; i < 50000; i++)
			fputs("# padding padding padding\n", f);
		assert_int_equal(fclose(f), 0);
	}
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EFBIG);

	/* Malformed: a line that is no property, a header without ']', a bad
	 * endpoint and a bad addressing style in the file. */
	write_file(conf, "[default]\nregion = x\nthis is not a property\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "config:3:"));
	write_file(conf, "[default\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "config:1:"));
	write_file(conf, "[default]\nendpoint_url = ftp://x\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "ftp://x"));
	assert_non_null(strstr(e.msg, "endpoint_url"));
	write_file(conf, "[default]\ns3 =\n  addressing_style = sideways\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "sideways"));

	/* Neither file: no credentials, and the message names the file. */
	unlink(cred);
	unlink(conf);
	memset(&c, 0, sizeof(c));
	assert_int_equal(s3_config_env(&c, &e), -EINVAL);
	assert_non_null(strstr(e.msg, cred));
	assert_int_equal(rmdir(dir), 0);
	clear_env();
}

struct seen {
	int n;
	char keys[8][1100];
	struct s3_stat st[8];
	int stop_at;
};

static int collect(void *opaque, const char *key, const struct s3_stat *st)
{
	struct seen *s = opaque;

	if (s->n < 8) {
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
		s->st[s->n] = *st;
	}
	s->n++;
	return s->stop_at && s->n == s->stop_at ? 42 : 0;
}

static int parse(const char *xml, struct seen *s, bool *trunc, char *next)
{
	struct bdev_err e = { 0 };
	int r;

	memset(s->keys, 0, sizeof(s->keys));
	s->n = 0;
	r = s3_list_parse(xml, strlen(xml), collect, s, trunc, next, 256, &e);
	if (r < 0 && getenv("S3_TEST_VERBOSE"))
		fprintf(stderr, "%s\n", e.msg);
	if (r < 0) {
		assert_int_equal(e.code, -r);
		assert_true(strlen(e.msg) > 0);
	}
	return r;
}

#define HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" \
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"

static void test_list_good(void **state)
{
	struct seen s = { 0 };
	bool t;
	char next[256];

	(void)state;
	assert_int_equal(parse(HEAD "<Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount>"
			       "<IsTruncated>true</IsTruncated>"
			       "<NextContinuationToken>tok&amp;en/+=</NextContinuationToken>"
			       "<Contents><Key>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos;</Key>"
			       "<LastModified>2026-11-30T22:53:33.123Z</LastModified>"
			       "<ETag>&quot;0123abcd&quot;</ETag><Size>12</Size>"
			       "<Owner><ID>x</ID><DisplayName>y</DisplayName></Owner>"
			       "<StorageClass>STANDARD</StorageClass></Contents>\n"
			       "<Contents><Key>&#252;&#x441;/k</Key><Size>0</Size></Contents>"
			       "<Contents><Key>z</Key><Size>18446744073709551615</Size><Empty/></Contents>"
			       "</ListBucketResult>\n", &s, &t, next), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.keys[0], "a & b <c> \"d\" 'e'");
	assert_int_equal(s.st[0].size, 12);
	assert_int_equal(s.st[0].mtime, 1796079213);
	assert_string_equal(s.st[0].etag, "0123abcd");
	assert_string_equal(s.keys[1], "\xc3\xbc\xd1\x81/k");
	assert_int_equal(s.st[1].size, 0);
	assert_int_equal(s.st[1].mtime, 0);
	assert_int_equal(s.st[2].size, UINT64_MAX);
	assert_true(t);
	assert_string_equal(next, "tok&en/+=");

	/* A last page, empty. */
	assert_int_equal(parse(HEAD "<IsTruncated>false</IsTruncated></ListBucketResult>", &s, &t, next), 0);
	assert_int_equal(s.n, 0);
	assert_false(t);
	assert_string_equal(next, "");

	/* The callback stops the walk. */
	s.stop_at = 1;
	assert_int_equal(parse(HEAD "<Contents><Key>a</Key><Size>1</Size></Contents>"
			       "<Contents><Key>b</Key><Size>1</Size></Contents></ListBucketResult>",
			       &s, &t, next), 42);
	assert_int_equal(s.n, 1);
}

static void test_list_hostile(void **state)
{
	struct seen s = { 0 };
	bool t;
	char next[256];
	char *huge, *deep, *longkey, *longtok;
	size_t n;

	(void)state;
	static const char *const bad[] = {
		"",
		"   ",
		"not xml",
		HEAD,                                                   /* truncated */
		HEAD "<Contents><Key>a</Key><Size>1</Size></Contents>", /* no end */
		HEAD "<Contents><Key>a</Key><Size>1</Size>",
		HEAD "<Contents><Key>a</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult><X/>",
		HEAD "</ListBucketResult></ListBucketResult>",
		HEAD "<Contents><Key>a</Key></Contents></ListBucketResult>",   /* no size */
		HEAD "<Contents><Size>1</Size></Contents></ListBucketResult>", /* no key */
		HEAD "<Contents><Key></Key><Size>1</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a</Key><Key>b</Key><Size>1</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a</Key><Size>18446744073709551616</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a</Key><Size>1x</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a&bogus;</Key><Size>1</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a&amp</Key><Size>1</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a&#0;b</Key><Size>1</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a&#xD800;</Key><Size>1</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a&#x110000;</Key><Size>1</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a&#99999999999;</Key><Size>1</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a&#;</Key><Size>1</Size></Contents></ListBucketResult>",
		HEAD "<Contents><Key>a</Key><Size>1</Size><LastModified>yesterday</LastModified>"
		     "</Contents></ListBucketResult>",
		HEAD "<IsTruncated>maybe</IsTruncated></ListBucketResult>",
		HEAD "<IsTruncated>true</IsTruncated></ListBucketResult>",     /* no token */
		"<!DOCTYPE x [<!ENTITY e \"boom\">]>" HEAD "</ListBucketResult>",
		HEAD "<![CDATA[<Contents>]]></ListBucketResult>",
		"<Error><Contents><Key>a</Key><Size>1</Size></Contents></Error>",
		HEAD "<Contents <Key>a</Key><Size>1</Size></Contents></ListBucketResult>",
		HEAD "<Contents attr=\"unterminated></Contents></ListBucketResult>",
		HEAD "<!-- unterminated comment </ListBucketResult>",
		"<?xml unterminated",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = parse(bad[i], &s, &t, next);

		if (r != -EPROTO)
			fail_msg("case %zu accepted (%d): %s", i, r, bad[i]);
		assert_int_equal(s.n, 0);
	}

	/* A NUL byte inside the document (the length says more follows). */
	{
		static const char nul[] = HEAD "<Contents><Key>a\0b</Key><Size>1</Size></Contents></ListBucketResult>";
		struct bdev_err e = { 0 };

		assert_int_equal(s3_list_parse(nul, sizeof(nul) - 1, collect, &s, &t, next, 256, &e), -EPROTO);
	}

	/* Nested too deep. */
	n = 100;
	deep = malloc(n * 8 + 200);
	assert_non_null(deep);
	strcpy(deep, HEAD);
	for (size_t i = 0; i < n; i++)
		strcat(deep, "<a>");
	for (size_t i = 0; i < n; i++)
		strcat(deep, "</a>");
	strcat(deep, "</ListBucketResult>");
	assert_int_equal(parse(deep, &s, &t, next), -EPROTO);
	free(deep);

	/* A key over 1024 bytes; one of exactly 1024 is fine. */
	longkey = malloc(4000);
	assert_non_null(longkey);
	strcpy(longkey, HEAD "<Contents><Key>");
	memset(longkey + strlen(longkey), 'k', 1025);
	strcpy(longkey + strlen(HEAD "<Contents><Key>") + 1025, "</Key><Size>1</Size></Contents></ListBucketResult>");
	assert_int_equal(parse(longkey, &s, &t, next), -EPROTO);
	memmove(longkey + strlen(HEAD "<Contents><Key>") + 1024,
		longkey + strlen(HEAD "<Contents><Key>") + 1025,
		strlen(longkey + strlen(HEAD "<Contents><Key>") + 1025) + 1);
	assert_int_equal(parse(longkey, &s, &t, next), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(strlen(s.keys[0]), 1024);
	free(longkey);

	/* A continuation token larger than the caller's buffer. */
	longtok = malloc(2000);
	assert_non_null(longtok);
	strcpy(longtok, HEAD "<IsTruncated>true</IsTruncated><NextContinuationToken>");
	memset(longtok + strlen(longtok), 't', 300);
	strcpy(longtok + strlen(HEAD "<IsTruncated>true</IsTruncated><NextContinuationToken>") + 300,
	       "</NextContinuationToken></ListBucketResult>");
	assert_int_equal(parse(longtok, &s, &t, next), -EPROTO);
	free(longtok);

	/* Text of one element beyond the cap, and a document beyond the
	 * size cap (17 MiB of white space inside the root). */
	n = 17u << 20;
	huge = malloc(n + 200);
	assert_non_null(huge);
	strcpy(huge, HEAD "<Contents><Key>");
	memset(huge + strlen(huge), 'h', 100000);
	strcpy(huge + strlen(HEAD "<Contents><Key>") + 100000, "</Key><Size>1</Size></Contents></ListBucketResult>");
	assert_int_equal(parse(huge, &s, &t, next), -EPROTO);
	strcpy(huge, HEAD);
	memset(huge + strlen(HEAD), ' ', n);
	strcpy(huge + strlen(HEAD) + n, "</ListBucketResult>");
	assert_int_equal(parse(huge, &s, &t, next), -EPROTO);
	free(huge);
}

/* ---- ListObjectVersions pages ---- */

struct vseen {
	size_t n;
	char keys[8][32], vids[8][32];
	bool marker[8], latest[8];
	struct s3_stat st[8];
};

static int vcollect(void *opaque, const struct s3_version *v)
{
	struct vseen *s = opaque;

	if (s->n < 8) {
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", v->key);
		snprintf(s->vids[s->n], sizeof(s->vids[0]), "%s", v->version_id);
		s->marker[s->n] = v->delete_marker;
		s->latest[s->n] = v->latest;
		s->st[s->n] = v->st;
	}
	s->n++;
	return 0;
}

static int vparse(const char *xml, size_t len, struct vseen *s, bool *trunc,
		  char *nk, char *nv)
{
	struct bdev_err e = { 0 };
	int r;

	memset(s, 0, sizeof(*s));
	r = s3_versions_parse(xml, len, vcollect, s, trunc, nk, 64, nv, 64, &e);
	if (r < 0) {
		assert_int_equal(e.code, -r);
		assert_true(strlen(e.msg) > 0);
	}
	return r;
}

#define VHEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" \
	"<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"

static void test_versions_good(void **state)
{
	struct vseen s;
	bool t;
	char nk[64], nv[64];
	static const char page[] = VHEAD "<Name>b</Name><Prefix>r/lock</Prefix>"
		"<KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>"
		"<MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>"
		"<NextKeyMarker>r/lock</NextKeyMarker><NextVersionIdMarker>v&amp;2</NextVersionIdMarker>"
		"<DeleteMarker><Key>r/lock</Key><VersionId>m1</VersionId><IsLatest>true</IsLatest>"
		"<LastModified>2026-11-30T22:53:33.000Z</LastModified><Owner><ID>x</ID></Owner></DeleteMarker>"
		"<Version><Key>r/lock</Key><VersionId>v3</VersionId><IsLatest>false</IsLatest>"
		"<LastModified>2026-11-30T22:53:33.123Z</LastModified><ETag>&quot;ab&quot;</ETag>"
		"<Size>55</Size><StorageClass>STANDARD</StorageClass></Version>"
		"<Version><Key>r/lock.x</Key><VersionId>null</VersionId><Size>0</Size></Version>"
		"</ListVersionsResult>";

	(void)state;
	assert_int_equal(vparse(page, strlen(page), &s, &t, nk, nv), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.keys[0], "r/lock");
	assert_string_equal(s.vids[0], "m1");
	assert_true(s.marker[0]);
	assert_true(s.latest[0]);
	assert_int_equal(s.st[0].mtime, 1796079213);
	assert_string_equal(s.vids[1], "v3");
	assert_false(s.marker[1]);
	assert_false(s.latest[1]);
	assert_int_equal(s.st[1].size, 55);
	assert_string_equal(s.st[1].etag, "ab");
	assert_string_equal(s.keys[2], "r/lock.x");
	assert_string_equal(s.vids[2], "null");
	assert_true(t);
	assert_string_equal(nk, "r/lock");
	assert_string_equal(nv, "v&2");

	/* A last page without entries. */
	assert_int_equal(vparse(VHEAD "<IsTruncated>false</IsTruncated></ListVersionsResult>",
				strlen(VHEAD "<IsTruncated>false</IsTruncated></ListVersionsResult>"),
				&s, &t, nk, nv), 0);
	assert_int_equal(s.n, 0);
	assert_false(t);
	assert_string_equal(nk, "");
}

static void test_versions_hostile(void **state)
{
	struct vseen s;
	bool t;
	char nk[64], nv[64], *longv;
	static const char *const bad[] = {
		"",
		"not xml",
		VHEAD,
		HEAD "</ListBucketResult>",     /* the other listing's root */
		VHEAD "<Version><Key>a</Key><Size>1</Size></Version></ListVersionsResult>", /* no id */
		VHEAD "<Version><VersionId>v</VersionId><Size>1</Size></Version></ListVersionsResult>",
		VHEAD "<Version><Key>a</Key><VersionId>v</VersionId></Version></ListVersionsResult>", /* no size */
		VHEAD "<DeleteMarker><Key>a</Key></DeleteMarker></ListVersionsResult>",
		VHEAD "<Version><Key>a</Key><VersionId></VersionId><Size>1</Size></Version></ListVersionsResult>",
		VHEAD "<Version><Key>a</Key><VersionId>v</VersionId><VersionId>w</VersionId><Size>1</Size></Version></ListVersionsResult>",
		VHEAD "<Version><Key>a</Key><Key>b</Key><VersionId>v</VersionId><Size>1</Size></Version></ListVersionsResult>",
		VHEAD "<Version><Key>a</Key><VersionId>v</VersionId><Size>x</Size></Version></ListVersionsResult>",
		VHEAD "<Version><Key>a</Key><VersionId>v</VersionId><Size>1</Size><IsLatest>yes</IsLatest></Version></ListVersionsResult>",
		VHEAD "<Version><Key>a</Key><VersionId>v</VersionId><Size>1</Size><LastModified>now</LastModified></Version></ListVersionsResult>",
		VHEAD "<IsTruncated>true</IsTruncated></ListVersionsResult>",   /* no marker */
		VHEAD "<IsTruncated>maybe</IsTruncated></ListVersionsResult>",
		VHEAD "<Version>text<Key>a</Key></Version></ListVersionsResult>",
		VHEAD "<Version><Key>a</Key><VersionId>v</VersionId><Size>1</Size></Version>"
		      "<Version><Key>b</Key></Version></ListVersionsResult>",  /* a bad entry after a good one */
		VHEAD "<Version><Key>a</Key><VersionId>v</VersionId><Size>1</Size></Version></ListVersionsResult><X/>",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = vparse(bad[i], strlen(bad[i]), &s, &t, nk, nv);

		if (r != -EPROTO)
			fail_msg("case %zu accepted (%d): %s", i, r, bad[i]);
		assert_int_equal(s.n, 0);
	}
	/* A version id of 256 bytes (255 fit), a marker beyond the buffer. */
	longv = malloc(2000);
	assert_non_null(longv);
	strcpy(longv, VHEAD "<Version><Key>a</Key><VersionId>");
	memset(longv + strlen(longv), 'v', 256);
	strcpy(longv + strlen(VHEAD "<Version><Key>a</Key><VersionId>") + 256,
	       "</VersionId><Size>1</Size></Version></ListVersionsResult>");
	assert_int_equal(vparse(longv, strlen(longv), &s, &t, nk, nv), -EPROTO);
	memmove(longv + strlen(VHEAD "<Version><Key>a</Key><VersionId>") + 255,
		longv + strlen(VHEAD "<Version><Key>a</Key><VersionId>") + 256,
		strlen(longv + strlen(VHEAD "<Version><Key>a</Key><VersionId>") + 256) + 1);
	assert_int_equal(vparse(longv, strlen(longv), &s, &t, nk, nv), 0);
	assert_int_equal(s.n, 1);
	strcpy(longv, VHEAD "<IsTruncated>true</IsTruncated><NextKeyMarker>");
	memset(longv + strlen(longv), 'k', 64);
	strcpy(longv + strlen(VHEAD "<IsTruncated>true</IsTruncated><NextKeyMarker>") + 64,
	       "</NextKeyMarker></ListVersionsResult>");
	assert_int_equal(vparse(longv, strlen(longv), &s, &t, nk, nv), -EPROTO);
	free(longv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_profile),
		cmocka_unit_test(test_list_good),
		cmocka_unit_test(test_list_hostile),
		cmocka_unit_test(test_versions_good),
		cmocka_unit_test(test_versions_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
