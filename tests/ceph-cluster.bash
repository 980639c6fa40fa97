# Sourced by the RBD and S3 tests: a throw-away single-node Ceph cluster on
# 127.0.0.1 (one monitor, one OSD on memstore, auth none, a random fsid,
# radosgw on demand), all in a scratch folder.  Not a test itself (no .sh).
#
#   ceph_cluster_start DIR   start it under DIR (exit 77 with a reason when
#                            the Ceph packages are missing or the cluster is
#                            not up within CEPH_START_TIMEOUT, 60 s);
#                            exports CEPH_CONF and creates the pool "rbd"
#   ceph_rgw_start           after ceph_cluster_start: radosgw (S3 only, beast
#                            frontend) on 127.0.0.1 on a free port and an S3
#                            user; exports AWS_ACCESS_KEY_ID,
#                            AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL,
#                            AWS_REGION, and AWS_CONFIG_FILE and
#                            AWS_SHARED_CREDENTIALS_FILE as /dev/null,
#                            XDG_CACHE_HOME in the cluster's folder (exit
#                            77 with a reason when radosgw is
#                            missing or does not answer within
#                            CEPH_RGW_TIMEOUT, 90 s)
#                            CEPH_RGW_TLS=1: also HTTPS on a second port with
#                            a self-signed certificate for IP 127.0.0.1;
#                            exports CEPH_RGW_HTTPS_URL and CEPH_RGW_CA (the
#                            certificate, to trust it; it names no host, so
#                            https://localhost:PORT must fail verification)
#                            CEPH_RGW_STS=1: also the STS and IAM APIs with a
#                            signing key, so that AssumeRole hands out
#                            temporary credentials (see test-backup-s3-sts.sh)
#                            CEPH_RGW_DNS_NAME (default 127.0.0.1): rgw dns
#                            name; "localhost" also serves virtual-host
#                            requests to BUCKET.localhost:PORT
#   ceph_cluster_stop        kill what it started, by PID (ceph_cluster_start
#                            has tests/lib.bash's at_exit run it)
#
# Needs tests/lib.bash (skip, at_exit), which the area helpers source;
# a bench script defines its own ceph_skip and stops the cluster itself.
#
# CEPH_MEMSTORE_BYTES sizes the OSD's in-memory store (1 GiB by default).
#
# Every command that talks to the cluster runs under `timeout`.

ceph_pids=()

ceph_skip() {
	# CEPH_FAIL_LOGS=DIR keeps the cluster's logs for a look.
	[ -z "${CEPH_FAIL_LOGS:-}" ] || cp -r "$ceph_dir/log" "$CEPH_FAIL_LOGS" 2>/dev/null || true
	skip "$*"
}

ceph_cluster_stop() {
	local p

	for p in "${ceph_pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	# a throw-away cluster: 2 s for all of them to go (radosgw takes more
	# than 5 s on SIGTERM), then KILL what is left
	for _ in $(seq 20); do
		local alive=0
		for p in "${ceph_pids[@]}"; do
			kill -0 "$p" 2>/dev/null && alive=1
		done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for p in "${ceph_pids[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	ceph_pids=()
}

# ceph_t SECONDS CMD...: CMD bounded in time (the config from CEPH_CONF).
ceph_t() {
	timeout -k 2 "$@"
}

# ceph_retry SECONDS CMD...: ceph_t SECONDS CMD, tried up to 5 times a
# second apart: a monitor that has just formed its quorum may answer
# "EPERM: problem getting command descriptions from mon" for a moment.
ceph_retry() {
	local k
	for k in 1 2 3 4 5; do
		ceph_t "$@" && return 0
		sleep 1
	done
	return 1
}

ceph_cluster_start() {
	local d=$1 port fsid deadline t

	ceph_dir=$d
	# (bench scripts do not source lib.bash: they stop it in their own trap)
	if declare -F at_exit >/dev/null; then at_exit ceph_cluster_stop; fi

	for t in ceph-mon ceph-osd ceph monmaptool rbd; do
		command -v "$t" >/dev/null 2>&1 ||
			ceph_skip "$t is not installed (scripts/deps.sh installs ceph-mon ceph-osd ceph-common)"
	done
	mkdir -p "$d/mon.a" "$d/osd.0" "$d/run" "$d/log"
	fsid=$(cat /proc/sys/kernel/random/uuid)
	port=$(ceph_free_port) || ceph_skip "no free port for the monitor"
	export CEPH_CONF=$d/ceph.conf
	cat >"$CEPH_CONF" <<CONF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$port
public addr = 127.0.0.1
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
run dir = $d/run
admin socket = $d/run/\$name.asok
log file = $d/log/\$name.log
pid file = $d/run/\$name.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-1073741824}
osd op num shards = 1
# The OSD's own crush update at start races its monitor session (it may
# send the command before it knows the fsid: "wrong fsid"): placed below.
osd crush update on start = false
osd class update on start = false
osd op num threads per shard = 1
client mount timeout = 30
[mon.a]
mon data = $d/mon.a
[osd.0]
osd data = $d/osd.0
CONF
	monmaptool --create --clobber --fsid "$fsid" --addv a "[v1:127.0.0.1:$port]" \
		"$d/monmap" >"$d/log/setup.log" 2>&1 || ceph_skip "monmaptool failed: $(tail -1 "$d/log/setup.log")"
	timeout 30 ceph-mon --conf "$CEPH_CONF" --mkfs -i a --monmap "$d/monmap" \
		>>"$d/log/setup.log" 2>&1 || ceph_skip "ceph-mon --mkfs failed: $(tail -1 "$d/log/setup.log")"
	ceph-mon --conf "$CEPH_CONF" -i a -f >>"$d/log/mon.out" 2>&1 &
	ceph_pids+=($!)
	deadline=$((SECONDS + ${CEPH_START_TIMEOUT:-60}))
	local uuid

	uuid=$(cat /proc/sys/kernel/random/uuid)
	until ceph_t 20 ceph osd new "$uuid" >"$d/osd.id" 2>>"$d/log/setup.log"; do
		[ $SECONDS -lt "$deadline" ] ||
			ceph_skip "the monitor did not answer in time: $(tail -1 "$d/log/setup.log")"
		sleep 0.5
	done
	[ "$(cat "$d/osd.id")" = 0 ] || ceph_skip "unexpected OSD id $(cat "$d/osd.id")"
	ceph_retry 20 ceph osd crush add osd.0 1.0 root=default >>"$d/log/setup.log" 2>&1 ||
		ceph_skip "cannot place the OSD in the crush map: $(tail -1 "$d/log/setup.log")"
	timeout 30 ceph-osd --conf "$CEPH_CONF" -i 0 --mkfs --osd-uuid "$uuid" \
		>>"$d/log/setup.log" 2>&1 || ceph_skip "ceph-osd --mkfs failed: $(tail -1 "$d/log/setup.log")"
	ceph-osd --conf "$CEPH_CONF" -i 0 -f >>"$d/log/osd.out" 2>&1 &
	ceph_pids+=($!)
	ceph_retry 20 ceph osd pool create rbd 8 8 >>"$d/log/setup.log" 2>&1 ||
		ceph_skip "cannot create the pool: $(tail -1 "$d/log/setup.log")"
	ceph_retry 20 ceph osd pool application enable rbd rbd >>"$d/log/setup.log" 2>&1 || true
	# Up when an image can be created (the PGs are active).
	until ceph_t 5 rbd create --size 1M rbd/probe >>"$d/log/setup.log" 2>&1; do
		[ $SECONDS -lt "$deadline" ] ||
			ceph_skip "the cluster did not come up in ${CEPH_START_TIMEOUT:-60} s: $(tail -1 "$d/log/setup.log")"
		sleep 0.5
	done
	ceph_t 10 rbd rm --no-progress rbd/probe >>"$d/log/setup.log" 2>&1 || true
}

# A port in 20000-39999 that nothing listens on.
ceph_free_port() {
	local p

	for _ in $(seq 20); do
		p=$((20000 + RANDOM % 20000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
	done
	return 1
}

ceph_rgw_start() {
	local d=$ceph_dir port deadline pid code

	for t in radosgw radosgw-admin curl; do
		command -v "$t" >/dev/null 2>&1 ||
			ceph_skip "$t is not installed (scripts/deps.sh installs radosgw)"
	done
	port=$(ceph_free_port) || ceph_skip "no free port for radosgw"
	mkdir -p "$d/rgw"
	local tls=
	if [ "${CEPH_RGW_TLS:-0}" = 1 ]; then
		local sport
		command -v openssl >/dev/null 2>&1 || ceph_skip "openssl is not installed"
		sport=$(ceph_free_port) || ceph_skip "no free port for radosgw's HTTPS"
		ceph_t 30 openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
			-keyout "$d/rgw/key.pem" -out "$d/rgw/cert.pem" -subj /CN=127.0.0.1 \
			-addext subjectAltName=IP:127.0.0.1 >>"$d/log/setup.log" 2>&1 ||
			ceph_skip "openssl cannot make a certificate"
		tls=" ssl_endpoint=127.0.0.1:$sport ssl_certificate=$d/rgw/cert.pem ssl_private_key=$d/rgw/key.pem"
		export CEPH_RGW_HTTPS_URL=https://127.0.0.1:$sport
		export CEPH_RGW_CA=$d/rgw/cert.pem
	fi
	local apis=s3 sts=
	if [ "${CEPH_RGW_STS:-0}" = 1 ]; then
		apis="s3, sts, iam"
		sts="rgw sts key = $(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
rgw s3 auth use sts = true"
	fi
	# S3 only; the pools (.rgw.root, default.rgw.*) are created by radosgw
	# itself with the cluster's defaults (size 1, 8 PGs).  Few threads: the
	# machine is small.  No garbage collection or lifecycle threads: a test
	# lives for a minute.
	cat >>"$CEPH_CONF" <<CONF
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$port tcp_nodelay=1$tls
rgw enable apis = $apis
$sts
rgw data = $d/rgw
rgw thread pool size = 32
rgw enable gc threads = false
rgw enable lc threads = false
rgw dns name = ${CEPH_RGW_DNS_NAME:-127.0.0.1}
CONF
	radosgw --conf "$CEPH_CONF" -n client.rgw.a -f >>"$d/log/rgw.out" 2>&1 &
	pid=$!
	ceph_pids+=("$pid")
	deadline=$((SECONDS + ${CEPH_RGW_TIMEOUT:-90}))
	# Up when an anonymous request gets an HTTP answer.
	until code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$port/") &&
		[ "$code" != 000 ]; do
		kill -0 "$pid" 2>/dev/null || ceph_skip "radosgw exited: $(tail -3 "$d/log/rgw.out" | tr '\n' ' ')"
		[ $SECONDS -lt "$deadline" ] ||
			ceph_skip "radosgw did not answer in ${CEPH_RGW_TIMEOUT:-90} s: $(tail -1 "$d/log/client.rgw.a.log" 2>/dev/null)"
		sleep 0.5
	done
	export AWS_ACCESS_KEY_ID=TESTACCESSKEY$RANDOM$RANDOM
	export AWS_SECRET_ACCESS_KEY=testsecret$RANDOM$RANDOM$RANDOM
	ceph_t 30 radosgw-admin user create --uid=test --display-name=test \
		--access-key="$AWS_ACCESS_KEY_ID" --secret-key="$AWS_SECRET_ACCESS_KEY" \
		>>"$d/log/setup.log" 2>&1 || ceph_skip "radosgw-admin user create failed: $(tail -1 "$d/log/setup.log")"
	export AWS_ENDPOINT_URL=http://127.0.0.1:$port
	export AWS_REGION=us-east-1
	unset AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3 AWS_DEFAULT_REGION AWS_CA_BUNDLE
	unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
	# Not the shared files of the machine's user (~/.aws): empty ones;
	# vhdtool's manifest cache under the cluster's folder, not ~/.cache.
	export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
	export XDG_CACHE_HOME=$d/xdg-cache
}
