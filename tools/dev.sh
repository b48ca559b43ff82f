#!/bin/sh
# berth developer entry point, used by the README's quick start and by CI.
#
#   tools/dev.sh run     install build dependencies, build, start berthd on
#                        https://127.0.0.1:5443/ with ./data (the embedded
#                        default; BERTH_DATA and BERTH_LISTEN override)
#   tools/dev.sh check   install dependencies, build, run every test; the
#                        last line is "N passed, N failed, N skipped"
#   tools/dev.sh deps    only install the Debian packages that are missing
#   tools/dev.sh build   only bootstrap, configure and build
#
# Idempotent: each step is skipped when its result is already there.
set -eu

cd "$(dirname "$0")/.."
top=$(pwd)

# Debian 12 packages: build tools, required libraries, test framework.
BUILD_PKGS="build-essential autoconf automake libtool pkg-config"
LIB_PKGS="liblmdb-dev libzstd-dev libssl-dev libevent-dev libjansson-dev libxxhash-dev zlib1g-dev libcrypt-dev"
TEST_PKGS="libcmocka-dev lmdb-utils apache2-utils curl openssl ca-certificates skopeo podman buildah docker.io containerd"

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

deps() {
	missing=""
	for p in $BUILD_PKGS $LIB_PKGS $TEST_PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "dev.sh: installing:$missing" >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $missing >/dev/null
}

build() {
	[ -x configure ] || autoreconf -fi
	# CI and the quick start build with warnings as errors.
	if [ ! -f Makefile ]; then
		./configure CFLAGS="${CFLAGS:--O2 -g -Werror}" ${CONFIGURE_FLAGS:-}
	fi
	make -j"$(nproc)"
}

run() {
	data=${BERTH_DATA:-$top/data}
	listen=${BERTH_LISTEN:-127.0.0.1:5443}
	echo "dev.sh: starting berthd on https://$listen/ with data in $data" >&2
	echo "dev.sh: its certificate is $data/tls/cert.pem; stop with Ctrl-C" >&2
	exec ./src/berthd --data "$data" --listen "$listen"
}

check() {
	rc=0
	make -j"$(nproc)" check || rc=$?
	summarize
	return $rc
}

# Totals over every test program and script, from the automake harness.
summarize() {
	pass=0 fail=0 skip=0
	for trs in $(find tests -name '*.trs'); do
		while IFS= read -r line; do
			case "$line" in
			":test-result: PASS"*|":test-result: XFAIL"*) pass=$((pass + 1)) ;;
			":test-result: SKIP"*) skip=$((skip + 1)) ;;
			":test-result: "*) fail=$((fail + 1)) ;;
			esac
		done < "$trs"
	done
	[ $((pass + fail + skip)) -gt 0 ] || fail=1
	echo "$pass passed, $fail failed, $skip skipped"
}

case "${1:-}" in
deps) deps ;;
build) deps; build ;;
run) deps; build; run ;;
check) deps; build; check ;;
*) echo "usage: tools/dev.sh run|check|deps|build" >&2; exit 2 ;;
esac
