#!/bin/bash
# S3 repositories over HTTPS against a real radosgw with a self-signed
# certificate (tests/ceph-cluster.bash, CEPH_RGW_TLS=1):
#  - TLS is verified by default: without the certificate in AWS_CA_BUNDLE
#    `backup init` fails with a clear message naming the certificate
#    problem, and nothing is created;
#  - trusting the certificate (AWS_CA_BUNDLE), init, a backup, verify and a
#    restore work over HTTPS, and the restore equals the source;
#  - the certificate is for IP 127.0.0.1 only: the same server reached as
#    https://localhost:PORT fails verification on the name.
. "$(dirname "$0")/../lib.bash"
. "$(dirname "$0")/../ceph-cluster.bash"
T=${VHDTOOL:?}
M=$((1 << 20))
TO() { timeout -k 5 120 "$@"; }
fail_show "$dir/err"
CEPH_RGW_TLS=1
ceph_cluster_start "$dir/ceph"
ceph_rgw_start
export AWS_ENDPOINT_URL=$CEPH_RGW_HTTPS_URL
url=s3://secure-bucket/repo

# Not trusted: refused, saying why; the bucket is not created.
TO "$T" backup init "$url" >/dev/null 2>"$dir/err" && fail "init over HTTPS with an unknown certificate succeeded"
grep -qiE "certificate|SSL" "$dir/err" || fail "the refusal does not say it is the certificate: $(cat "$dir/err")"
[ "$(wc -l <"$dir/err")" -le 2 ] || fail "more than a clear message: $(cat "$dir/err")"
export AWS_CA_BUNDLE=$CEPH_RGW_CA
TO "$T" backup list "$url" >/dev/null 2>"$dir/err" && fail "a repository exists after the refused init"

# Trusted: round trip over HTTPS.
head -c $((6 * M)) /dev/urandom >"$dir/disk.raw"
head -c $((2 * M)) /dev/zero >>"$dir/disk.raw"
TO "$T" backup init "$url" >/dev/null 2>"$dir/err" || fail "init over HTTPS: $(cat "$dir/err")"
id=$(TO "$T" backup create "$url" "$dir/disk.raw" 2>"$dir/err") || fail "backup over HTTPS: $(cat "$dir/err")"
TO "$T" backup verify "$url" >/dev/null 2>"$dir/err" || fail "verify over HTTPS: $(cat "$dir/err")"
TO "$T" backup restore -O raw "$url" "$id" "$dir/out.raw" >/dev/null 2>"$dir/err" || fail "restore over HTTPS: $(cat "$dir/err")"
cmp "$dir/disk.raw" "$dir/out.raw" || fail "the restore over HTTPS differs from the source"

# The certificate names 127.0.0.1, not localhost.
AWS_ENDPOINT_URL=${CEPH_RGW_HTTPS_URL/127.0.0.1/localhost} TO "$T" backup list "$url" >/dev/null 2>"$dir/err" &&
	fail "a certificate for 127.0.0.1 was accepted for localhost"
grep -qiE "certificate.*name|name.*certificate|host ?name" "$dir/err" || fail "the name mismatch is not explained: $(cat "$dir/err")"
echo "S3 over HTTPS: verified by default, refused untrusted and misnamed, round trip with the CA: fine"
