#!/bin/bash
# S3 repositories with temporary credentials (AWS_SESSION_TOKEN) against a
# real radosgw with its STS API (tests/ceph-cluster.bash, CEPH_RGW_STS=1):
# the test user assumes a role (AssumeRole, signed by curl) and gets an
# access key, a secret and a session token;
#  - with the three, init, a backup, verify and a restore work, and the
#    restore equals the source;
#  - the same key and secret without the token, or with another token, are
#    refused with one clear message and a non-zero exit;
#  - (sharing this test's cluster, whose radosgw has rgw_dns_name localhost)
#    virtual-host addressing against a real radosgw: --s3-addressing virtual
#    through http://localhost:PORT sends BUCKET.localhost requests (curl
#    resolves *.localhost to the loopback; the path is the key alone, so
#    radosgw must take the bucket from the Host header): init, backup,
#    restore; the same repository listed path-style through 127.0.0.1.
. "$(dirname "$0")/../lib.bash"
. "$(dirname "$0")/../ceph-cluster.bash"
T=${VHDTOOL:?}
M=$((1 << 20))
TO() { timeout -k 5 120 "$@"; }
requires python3 curl
fail_show "$dir/err"
CEPH_RGW_STS=1
CEPH_RGW_DNS_NAME=localhost
ceph_cluster_start "$dir/ceph"
ceph_rgw_start

# A role the test user may assume, allowed everything on S3.
ceph_t 30 radosgw-admin caps add --uid=test --caps="roles=*" >>"$dir/setup.log" 2>&1 ||
	fail "radosgw-admin caps add: $(tail -1 "$dir/setup.log")"
ceph_t 30 radosgw-admin role create --role-name=backup --path=/ \
	--assume-role-policy-doc='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam:::user/test"]},"Action":["sts:AssumeRole"]}]}' \
	>>"$dir/setup.log" 2>&1 || fail "radosgw-admin role create: $(tail -1 "$dir/setup.log")"
ceph_t 30 radosgw-admin role-policy put --role-name=backup --policy-name=s3 \
	--policy-doc='{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["s3:*"],"Resource":"arn:aws:s3:::*"}}' \
	>>"$dir/setup.log" 2>&1 || fail "radosgw-admin role-policy put: $(tail -1 "$dir/setup.log")"

body="Action=AssumeRole&RoleArn=arn:aws:iam:::role/backup&RoleSessionName=vhdtool-test&DurationSeconds=3600"
sha=$(printf %s "$body" | sha256sum | cut -d' ' -f1)
TO curl -sS --aws-sigv4 "aws:amz:$AWS_REGION:sts" -u "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
	-H "x-amz-content-sha256: $sha" -d "$body" "$AWS_ENDPOINT_URL/" >"$dir/cred.xml" ||
	fail "AssumeRole: curl failed"
python3 - "$dir/cred.xml" >"$dir/cred.env" <<'PY' || fail "AssumeRole answered no credentials: $(head -c 400 "$dir/cred.xml")"
import sys, shlex, xml.etree.ElementTree as E
c = E.parse(sys.argv[1]).find(".//Credentials")
for var, tag in (("AWS_ACCESS_KEY_ID", "AccessKeyId"), ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"),
                 ("AWS_SESSION_TOKEN", "SessionToken")):
    print("export %s=%s" % (var, shlex.quote(c.find(tag).text)))
PY
user_key=$AWS_ACCESS_KEY_ID
printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$AWS_SECRET_ACCESS_KEY" >"$dir/user.env"
. "$dir/cred.env"
[ "$AWS_ACCESS_KEY_ID" != "$user_key" ] && [ -n "$AWS_SESSION_TOKEN" ] ||
	fail "AssumeRole did not hand out temporary credentials"
url=s3://sts-bucket/repo

head -c $((5 * M)) /dev/urandom >"$dir/disk.raw"
head -c $((3 * M)) /dev/zero >>"$dir/disk.raw"
TO "$T" backup init "$url" >/dev/null 2>"$dir/err" || fail "init with a session token: $(cat "$dir/err")"
id=$(TO "$T" backup create "$url" "$dir/disk.raw" 2>"$dir/err") || fail "backup with a session token: $(cat "$dir/err")"
TO "$T" backup verify "$url" >/dev/null 2>"$dir/err" || fail "verify with a session token: $(cat "$dir/err")"
TO "$T" backup restore -O raw "$url" "$id" "$dir/out.raw" >/dev/null 2>"$dir/err" ||
	fail "restore with a session token: $(cat "$dir/err")"
cmp "$dir/disk.raw" "$dir/out.raw" || fail "the restore differs from the source"

# The temporary key is nothing without its token.
for tok in "" "${AWS_SESSION_TOKEN%????}AAAA"; do
	if [ -z "$tok" ]; then
		(unset AWS_SESSION_TOKEN; TO "$T" backup list "$url") >/dev/null 2>"$dir/err" && fail "the temporary key worked without its token"
	else
		AWS_SESSION_TOKEN=$tok TO "$T" backup list "$url" >/dev/null 2>"$dir/err" && fail "the temporary key worked with another token"
	fi
	[ "$(wc -l <"$dir/err")" = 1 ] || fail "not one clear message: $(cat "$dir/err")"
	grep -qE "HTTP 40[0-3]" "$dir/err" || fail "the refusal does not give the store's answer: $(cat "$dir/err")"
done

# ---- virtual-host addressing (the test user's own credentials) ----
unset AWS_SESSION_TOKEN
AWS_ACCESS_KEY_ID=$user_key
. "$dir/user.env"
VH=(--s3-endpoint "http://localhost:${AWS_ENDPOINT_URL##*:}" --s3-addressing virtual)
vurl=s3://vhost-bucket/repo
TO "$T" backup init "${VH[@]}" "$vurl" >/dev/null 2>"$dir/err" || fail "init, virtual-host: $(cat "$dir/err")"
id=$(TO "$T" backup create "${VH[@]}" "$vurl" "$dir/disk.raw" 2>"$dir/err") || fail "backup, virtual-host: $(cat "$dir/err")"
rm -f "$dir/out.raw"
TO "$T" backup restore -O raw "${VH[@]}" "$vurl" "$id" "$dir/out.raw" >/dev/null 2>"$dir/err" ||
	fail "restore, virtual-host: $(cat "$dir/err")"
cmp "$dir/disk.raw" "$dir/out.raw" || fail "the virtual-host restore differs from the source"
TO "$T" backup list "$vurl" 2>"$dir/err" | grep -q "^$id " || fail "path-style list of the virtual-host repository: $(cat "$dir/err")"
# radosgw's access log: virtual-host requests name the key alone
# ("PUT /repo/..."), path-style ones the bucket first ("/vhost-bucket/repo/")
grep -q '"PUT /repo/backups/[^ ]*\.json HTTP/1.1" 200 ' "$dir/ceph/log/client.rgw.a.log" ||
	fail "radosgw saw no virtual-host PUT of the manifest"
grep -q '"GET /vhost-bucket?list-type=2&prefix=repo%2Fbackups%2F HTTP/1.1" 200 ' "$dir/ceph/log/client.rgw.a.log" ||
	fail "radosgw saw no path-style listing"
echo "S3 with a session token (radosgw STS AssumeRole): round trip, refused without or with another token; virtual-host addressing round trip: fine"
