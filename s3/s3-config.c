/* s3: configuration from the environment, s3:// URLs, S3's percent
 * encoding and ISO 8601 dates. */
#include "s3-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Copy the first set variable of names into dst (size n) unless dst is
 * already set.  -ENAMETOOLONG when the value does not fit. */
static int env_fill(char *dst, size_t n, const char *const *names,
		    struct bdev_err *e)
{
	if (dst[0])
		return 0;
	for (; *names; names++) {
		const char *v = getenv(*names);

		if (!v || !*v)
			continue;
		if (strlen(v) >= n)
			return bdev_err_set(e, ENAMETOOLONG, "%s: value too long (%zu bytes, at most %zu)",
					    *names, strlen(v), n - 1);
		memcpy(dst, v, strlen(v) + 1);
		return 0;
	}
	return 0;
}

/* Copy val (from where, for the message) into dst (size n) unless dst is
 * already set or val is NULL or empty. */
static int file_fill(char *dst, size_t n, const char *val, const char *where,
		     const char *key, struct bdev_err *e)
{
	if (dst[0] || !val || !*val)
		return 0;
	if (strlen(val) >= n)
		return bdev_err_set(e, ENAMETOOLONG, "%s: %s: value too long (%zu bytes, at most %zu)",
				    where, key, strlen(val), n - 1);
	memcpy(dst, val, strlen(val) + 1);
	return 0;
}

/* AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE, else ~/.aws/NAME; a
 * leading "~/" is the home folder as the AWS tools read it. */
static void shared_path(char *out, size_t n, const char *var, const char *name)
{
	const char *v = getenv(var), *home = getenv("HOME");

	if (v && *v) {
		if (!strncmp(v, "~/", 2) && home)
			snprintf(out, n, "%s/%s", home, v + 2);
		else
			snprintf(out, n, "%s", v);
	} else {
		snprintf(out, n, "%s/.aws/%s", home ? home : "", name);
	}
}

static bool env_set(const char *name)
{
	const char *v = getenv(name);

	return v && *v;
}

/* key of a profile: the credentials file's section csec, else the config
 * file's fsec; *from says which file (cpath or fpath).  NULL when neither
 * has it (set or empty). */
static const char *profile_get(const struct s3_ini *cred, const char *csec,
			       const struct s3_ini *conf, const char *fsec,
			       const char *key, const char *cpath, const char *fpath,
			       const char **from)
{
	const char *v = s3_ini_get(cred, csec, NULL, key);

	*from = cpath;
	if (v && *v)
		return v;
	*from = fpath;
	v = s3_ini_get(conf, fsec, NULL, key);
	return v && *v ? v : NULL;
}

int s3_config_env(struct s3_config *cfg, struct bdev_err *e)
{
	static const char *const key[] = { "AWS_ACCESS_KEY_ID", NULL };
	static const char *const secret[] = { "AWS_SECRET_ACCESS_KEY", NULL };
	static const char *const token[] = { "AWS_SESSION_TOKEN", NULL };
	static const char *const region[] = { "AWS_REGION", "AWS_DEFAULT_REGION", NULL };
	/* The service's own variable wins over the global one. */
	static const char *const endpoint[] = { "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", NULL };
	static const char *const ca[] = { "AWS_CA_BUNDLE", NULL };
	struct s3_ini cred = { 0 }, conf = { 0 };
	char cpath[512], fpath[512], csec[300], fsec[300], where[900];
	const char *src_path;
	const char *profile = getenv("AWS_PROFILE"), *v, *svc;
	const char *ign = getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	bool had_endpoint = cfg->endpoint[0] != 0, explicit_profile;
	bool addressing_chosen = cfg->path_style || cfg->virtual_host;
	bool use_endpoints = !(ign && !strcasecmp(ign, "true"));
	const char *endpoint_from = "AWS_ENDPOINT_URL";
	int r;

	if (!profile || !*profile)
		profile = getenv("AWS_DEFAULT_PROFILE");
	explicit_profile = profile && *profile;
	if (!explicit_profile)
		profile = "default";
	if (strlen(profile) > 200)
		return bdev_err_set(e, ENAMETOOLONG, "AWS_PROFILE: name too long");
	shared_path(cpath, sizeof(cpath), "AWS_SHARED_CREDENTIALS_FILE", "credentials");
	shared_path(fpath, sizeof(fpath), "AWS_CONFIG_FILE", "config");
	if ((r = s3_ini_load(&cred, cpath, e)) || (r = s3_ini_load(&conf, fpath, e)))
		goto out;
	/* The credentials file names a profile [NAME], the config file
	 * [profile NAME] ([default] for the default one). */
	snprintf(csec, sizeof(csec), "%s", profile);
	snprintf(fsec, sizeof(fsec), "profile %s", profile);
	if (!strcmp(profile, "default") && !s3_ini_has(&conf, fsec))
		snprintf(fsec, sizeof(fsec), "default");
	if (explicit_profile && !s3_ini_has(&cred, csec) && !s3_ini_has(&conf, fsec)) {
		r = bdev_err_set(e, EINVAL, "AWS profile \"%s\": not in %s nor in %s", profile,
				 cpath, fpath);
		goto out;
	}

	/* Credentials come as a set: both variables (one alone is an error,
	 * as in the AWS CLI: never silently someone else's keys), else the
	 * profile of the credentials file, else the profile of the config
	 * file.  A profile that gets its credentials another way (a role,
	 * SSO, web identity, a process), which the AWS tools would use
	 * before or instead of static keys, is refused rather than read as
	 * a different identity. */
	if (!cfg->access_key[0] && env_set("AWS_ACCESS_KEY_ID") != env_set("AWS_SECRET_ACCESS_KEY")) {
		r = bdev_err_set(e, EINVAL, "partial credentials in the environment: %s is set, %s is not",
				 env_set("AWS_ACCESS_KEY_ID") ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
				 env_set("AWS_ACCESS_KEY_ID") ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		goto out;
	}
	if (env_set("AWS_ACCESS_KEY_ID") && env_set("AWS_SECRET_ACCESS_KEY")) {
		if ((r = env_fill(cfg->access_key, sizeof(cfg->access_key), key, e)) ||
		    (r = env_fill(cfg->secret_key, sizeof(cfg->secret_key), secret, e)) ||
		    (r = env_fill(cfg->session_token, sizeof(cfg->session_token), token, e)))
			goto out;
	} else {
		static const char *const other[] = { "role_arn", "web_identity_token_file",
						     "sso_session", "sso_start_url", NULL };
		const struct s3_ini *src = NULL;
		const char *sec = NULL, *path = NULL;

		for (const char *const *o = other; *o && !cfg->access_key[0]; o++) {
			if (!(v = profile_get(&cred, csec, &conf, fsec, *o, cpath, fpath, &path)))
				continue;
			r = bdev_err_set(e, ENOTSUP, "%s [%s]: %s: credentials from a role, SSO or web "
					 "identity are not supported; give keys (AWS_ACCESS_KEY_ID, "
					 "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)", path,
					 path == cpath ? csec : fsec, *o);
			goto out;
		}
		if (s3_ini_get(&cred, csec, NULL, "aws_access_key_id") &&
		    s3_ini_get(&cred, csec, NULL, "aws_secret_access_key"))
			src = &cred, sec = csec, path = cpath;
		else if (s3_ini_get(&conf, fsec, NULL, "aws_access_key_id") &&
			 s3_ini_get(&conf, fsec, NULL, "aws_secret_access_key"))
			src = &conf, sec = fsec, path = fpath;
		if (src) {
			snprintf(where, sizeof(where), "%s [%s]", path, sec);
			if ((r = file_fill(cfg->access_key, sizeof(cfg->access_key),
					   s3_ini_get(src, sec, NULL, "aws_access_key_id"),
					   where, "aws_access_key_id", e)) ||
			    (r = file_fill(cfg->secret_key, sizeof(cfg->secret_key),
					   s3_ini_get(src, sec, NULL, "aws_secret_access_key"),
					   where, "aws_secret_access_key", e)) ||
			    (r = file_fill(cfg->session_token, sizeof(cfg->session_token),
					   s3_ini_get(src, sec, NULL, "aws_session_token"),
					   where, "aws_session_token", e)))
				goto out;
		} else if (!cfg->access_key[0] &&
			   (v = profile_get(&cred, csec, &conf, fsec, "credential_process",
					    cpath, fpath, &path))) {
			r = bdev_err_set(e, ENOTSUP, "%s [%s]: credential_process is not supported; "
					 "give keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)", path,
					 path == cpath ? csec : fsec);
			goto out;
		} else if ((r = env_fill(cfg->access_key, sizeof(cfg->access_key), key, e)) ||
			   (r = env_fill(cfg->secret_key, sizeof(cfg->secret_key), secret, e)) ||
			   (r = env_fill(cfg->session_token, sizeof(cfg->session_token), token, e))) {
			goto out;
		}
	}

	/* A profile's settings: the credentials file's [NAME] over the
	 * config file's (the AWS tools merge the two, the credentials file
	 * last). */
	if ((r = env_fill(cfg->region, sizeof(cfg->region), region, e)))
		goto out;
	v = profile_get(&cred, csec, &conf, fsec, "region", cpath, fpath, &src_path);
	snprintf(where, sizeof(where), "%s [%s]", src_path, src_path == cpath ? csec : fsec);
	if ((r = file_fill(cfg->region, sizeof(cfg->region), v, where, "region", e)) ||
	    (r = env_fill(cfg->ca_file, sizeof(cfg->ca_file), ca, e)))
		goto out;
	v = profile_get(&cred, csec, &conf, fsec, "ca_bundle", cpath, fpath, &src_path);
	snprintf(where, sizeof(where), "%s [%s]", src_path, src_path == cpath ? csec : fsec);
	if ((r = file_fill(cfg->ca_file, sizeof(cfg->ca_file), v, where, "ca_bundle", e)))
		goto out;

	/* Endpoint: the variables, then the profile's services section
	 * ("s3 =" / "  endpoint_url = URL"), then its endpoint_url;
	 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true ignores all of them. */
	if (use_endpoints && !had_endpoint) {
		if (env_set("AWS_ENDPOINT_URL_S3"))
			endpoint_from = "AWS_ENDPOINT_URL_S3";
		if ((r = env_fill(cfg->endpoint, sizeof(cfg->endpoint), endpoint, e)))
			goto out;
		svc = s3_ini_get(&conf, fsec, NULL, "services");
		if (!cfg->endpoint[0] && svc && *svc) {
			char ssec[300];

			snprintf(ssec, sizeof(ssec), "services %s", svc);
			v = s3_ini_get(&conf, ssec, "s3", "endpoint_url");
			snprintf(where, sizeof(where), "%s [%s] s3", fpath, ssec);
			if ((r = file_fill(cfg->endpoint, sizeof(cfg->endpoint), v, where,
					   "endpoint_url", e)))
				goto out;
			if (v && *v)
				endpoint_from = where;
		}
		if (!cfg->endpoint[0]) {
			v = profile_get(&cred, csec, &conf, fsec, "endpoint_url", cpath, fpath,
					&src_path);
			snprintf(where, sizeof(where), "%s [%s] endpoint_url", src_path,
				 src_path == cpath ? csec : fsec);
			if ((r = file_fill(cfg->endpoint, sizeof(cfg->endpoint), v, where,
					   "endpoint_url", e)))
				goto out;
			if (v && *v)
				endpoint_from = where;
		}
		if (cfg->endpoint[0] && strncmp(cfg->endpoint, "http://", 7) &&
		    strncmp(cfg->endpoint, "https://", 8)) {
			r = bdev_err_set(e, EINVAL, "%s \"%s\": not an http:// or https:// URL",
					 endpoint_from, cfg->endpoint);
			goto out;
		}
	}
	if (cfg->endpoint[0])
		cfg->path_style = true;
	/* "s3 =" / "  addressing_style = virtual|path|auto" in the profile,
	 * unless an option chose. */
	v = s3_ini_get(&conf, fsec, "s3", "addressing_style");
	if (v && !addressing_chosen) {
		if (!strcmp(v, "virtual"))
			cfg->virtual_host = true;
		else if (!strcmp(v, "path"))
			cfg->path_style = true;
		else if (strcmp(v, "auto")) {
			r = bdev_err_set(e, EINVAL, "%s [%s] s3 addressing_style \"%s\": path, virtual or auto",
					 fpath, fsec, v);
			goto out;
		}
	}
	if (!cfg->access_key[0] || !cfg->secret_key[0])
		r = bdev_err_set(e, EINVAL, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or aws_access_key_id and aws_secret_access_key in %s [%s]",
				 cpath, csec);
out:
	s3_ini_free(&cred);
	s3_ini_free(&conf);
	return r;
}

bool s3_is_url(const char *path)
{
	return path && !strncmp(path, "s3://", 5);
}

/* S3 bucket naming rules: 3-63 characters of a-z 0-9 . -, starting and
 * ending with a letter or digit, no "..", not an IPv4 address. */
static bool bucket_ok(const char *b, size_t n)
{
	unsigned a, c, d, f;
	char tail;

	if (n < 3 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = b[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');

		if (!alnum && ch != '.' && ch != '-')
			return false;
		if ((i == 0 || i == n - 1) && !alnum)
			return false;
		if (ch == '.' && i + 1 < n && b[i + 1] == '.')
			return false;
	}
	if (sscanf(b, "%u.%u.%u.%u%c", &a, &c, &d, &f, &tail) == 4)
		return false;
	return true;
}

int s3_url_parse(const char *url, char bucket[64], char prefix[1024],
		 struct bdev_err *e)
{
	const char *b, *slash, *p;
	size_t bl, pl;

	bucket[0] = prefix[0] = 0;
	if (!s3_is_url(url))
		return bdev_err_set(e, EINVAL, "%s: not an s3://BUCKET[/PREFIX] URL", url ? url : "(null)");
	b = url + 5;
	slash = strchr(b, '/');
	bl = slash ? (size_t)(slash - b) : strlen(b);
	/* bucket_ok reads b[0..bl): copy first so sscanf stops at the end. */
	if (bl > 63)
		return bdev_err_set(e, EINVAL, "%s: bucket name longer than 63 characters", url);
	memcpy(bucket, b, bl);
	bucket[bl] = 0;
	if (!bucket_ok(bucket, bl)) {
		bucket[0] = 0;
		return bdev_err_set(e, EINVAL,
				    "%s: bad bucket name (3-63 of a-z 0-9 . -, starting and ending with a letter or digit)",
				    url);
	}
	p = slash ? slash : "";
	while (*p == '/')
		p++;
	pl = strlen(p);
	while (pl && p[pl - 1] == '/')
		pl--;
	if (pl >= 1024) {
		bucket[0] = 0;
		return bdev_err_set(e, EINVAL, "%s: prefix longer than 1023 bytes", url);
	}
	for (size_t i = 0; i < pl; i++) {
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f ||
		    (p[i] == '/' && p[i + 1] == '/')) {
			bucket[0] = 0;
			return bdev_err_set(e, EINVAL, "%s: control character or empty segment in the prefix", url);
		}
	}
	memcpy(prefix, p, pl);
	prefix[pl] = 0;
	return 0;
}

int s3_uri_encode(const char *s, bool keep_slash, char *out, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool keep = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
			    ch == '.' || ch == '~' || (ch == '/' && keep_slash);

		if (o + (keep ? 1 : 3) >= n)
			return -ENAMETOOLONG;
		if (keep) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	if (o >= n)
		return -ENAMETOOLONG;
	out[o] = 0;
	return 0;
}

int64_t s3_iso8601_parse(const char *s)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, sec, used = 0;
	const char *q;
	time_t t;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
	    used != 19)
		return -1;
	q = s + used;
	if (*q == '.') {
		q++;
		if (*q < '0' || *q > '9')
			return -1;
		while (*q >= '0' && *q <= '9')
			q++;
	}
	if (strcmp(q, "Z") && strcmp(q, "+00:00"))
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	return t < 0 ? -1 : (int64_t)t;
}

void s3_iso8601_format(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
