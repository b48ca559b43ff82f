#!/bin/sh
# berth developer entry point, used by the README's quick start and by CI.
#
#   tools/dev.sh run     install build dependencies, build, start berthd on
#                        https://127.0.0.1:5443/ with ./data (the embedded
#                        default; BERTH_DATA and BERTH_LISTEN override)
#   tools/dev.sh check   install dependencies, build, run every test, then
#                        the sanitizer pass (below); the last line is
#                        "N passed, N failed, N skipped" over both
#   tools/dev.sh sanitize  only the sanitizer pass: a second build of the
#                        same sources with --enable-sanitizers (ASan and
#                        UBSan) in build-san/, running the unit tests, the
#                        fuzz corpus replays and the integration scenarios
#                        of SAN_TESTS (not the docker/podman ones)
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
TEST_PKGS="libcmocka-dev lmdb-utils apache2-utils curl openssl ca-certificates skopeo podman buildah docker.io containerd mandoc"

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
	sanitize || rc=1
	summarize tests "$SAN_DIR/src/tests"
	return $rc
}

# The sanitizer pass. configure refuses a second build beside an in-tree
# one, so the sources are copied (make distdir: what the Makefile names,
# committed or not) into SAN_DIR/src and built there. Every report, from
# a test program or from a berthd a script started, lands in
# SAN_DIR/reports (log_path) and fails the pass, even when the process
# that hit it was a daemon whose exit status nobody reads.
SAN_DIR=${SAN_DIR:-$top/build-san}
SAN_TESTS="tests/integration/test_api_curl.sh tests/integration/test_hostile.sh \
	tests/integration/test_plain_concurrency.sh tests/integration/test_fsck.sh \
	tests/integration/test_gc.sh tests/integration/test_auth.sh \
	tests/integration/test_tls_write.sh"

sanitize() {
	src=$SAN_DIR/src
	rm -rf "$SAN_DIR"
	mkdir -p "$SAN_DIR/reports"
	make distdir distdir="$src" >/dev/null
	# Warnings are errors in the first build; at -O1 gcc warns about
	# things -O2 proves safe, so this one does not stop on them.
	(cd "$src" && ./configure --enable-sanitizers \
	    CFLAGS="${SAN_CFLAGS:--O1 -g}" ${CONFIGURE_FLAGS:-} >/dev/null &&
	    make -j"$(nproc)" >/dev/null) || return 1
	rc=0
	(
		cd "$src" || exit 1
		ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$SAN_DIR/reports/asan"
		UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$SAN_DIR/reports/ubsan"
		export ASAN_OPTIONS UBSAN_OPTIONS
		# shellcheck disable=SC2086
		make -j"$(nproc)" check \
		    TESTS="\$(check_PROGRAMS) tests/unit/test_berth_stat.sh $SAN_TESTS"
	) || rc=1
	# One more test result: no sanitizer report from any process.
	reports=$(find "$SAN_DIR/reports" -type f | sort)
	mkdir -p "$src/tests"
	{
		if [ -z "$reports" ]; then
			echo ":test-result: PASS no sanitizer report"
		else
			for r in $reports; do
				echo ":test-result: FAIL sanitizer report $r"
			done
		fi
	} >"$src/tests/sanitizer-reports.trs"
	for r in $reports; do
		echo "dev.sh: sanitizer report $r:" >&2
		cat "$r" >&2
		rc=1
	done
	return $rc
}

# Totals over every test program and script of the folders given, from
# the automake harness.
summarize() {
	pass=0 fail=0 skip=0
	for trs in $(find "$@" -name '*.trs' 2>/dev/null); do
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
sanitize)
	deps; build
	rc=0
	sanitize || rc=1
	summarize "$SAN_DIR/src/tests"
	exit $rc ;;
*) echo "usage: tools/dev.sh run|check|sanitize|deps|build" >&2; exit 2 ;;
esac
