#!/bin/sh
# Install the Debian packages the build and the tests need, when missing,
# plus any named on the command line (make fuzz adds clang's).
# As root with apt-get: installs them.  Otherwise: prints the exact command
# and stops.
PKGS="gcc make libaio-dev zlib1g-dev libnbd-dev libssl-dev libcmocka-dev \
libiscsi-bin tgt qemu-block-extra librbd-dev librados-dev \
ceph-mon ceph-osd ceph-common radosgw libcurl4-openssl-dev restic curl \
qemu-utils libvhdi-utils nbdkit libnbd-bin fio util-linux python3 $*"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "deps: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null || {
		echo "deps: apt-get install failed:$missing" >&2; exit 1; }
	exit 0
fi
echo "deps: missing packages; run as root:" >&2
echo "  apt-get install -y$missing" >&2
exit 1
