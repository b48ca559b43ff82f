# Shared helpers for the integration scenarios: a real berthd on a loopback
# port with a temporary data folder, TAP output, and cleanup on any exit.
# Source it; then call berthd_start [berthd options].

set -u
top_builddir=${top_builddir:-.}
top_srcdir=${srcdir:-.}
BERTHD=${BERTHD:-$top_builddir/src/berthd}
T=$(mktemp -d "${TMPDIR:-/tmp}/berth-it-XXXXXX")
tap_n=0
tap_failed=0
BERTHD_PID=

# BERTH_KEEP_LOG=FILE keeps berthd's log (e.g. of a sanitizer build).
cleanup() {
	[ -n "$BERTHD_PID" ] && kill "$BERTHD_PID" 2>/dev/null && wait "$BERTHD_PID" 2>/dev/null
	[ -n "${BERTH_KEEP_LOG:-}" ] && cat "$T/berthd.old.log" "$T/berthd.log" >"$BERTH_KEEP_LOG" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

ok() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $1"
}

notok() {
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $1"
	shift
	for f in "$@"; do
		[ -f "$f" ] && sed 's/^/# /' "$f" | tail -n 20
	done
}

# check NAME COMMAND...: ok if the command succeeds.
check() {
	name=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then ok "$name"; else notok "$name" "$T/check.out"; fi
}

# skip REASON: one test reported skipped.
skip() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n # SKIP $1"
}

# json FILE EXPR: prints a value of a JSON file (EXPR in Python, j the doc).
json() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# blob_of LAYOUT DIGEST: the path of a blob in an OCI layout.
blob_of() {
	echo "$1/blobs/sha256/${2#sha256:}"
}

skip_all() {
	echo "1..0 # SKIP $1"
	exit 0
}

# asan_build: true when the berthd under test is built with
# AddressSanitizer (whose allocator and shadow memory change its size).
asan_build() {
	grep -q __asan_init "$BERTHD" 2>/dev/null
}

# listening_url LOG: waits (up to 5 s) for a berthd started with its log
# in LOG to say where it listens; prints that URL without a trailing /.
listening_url() {
	for _ in $(seq 1 50); do
		lu=$(sed -n 's/.*listening on \([^ ]*\) .*/\1/p' "$1" | tail -n 1)
		[ -n "$lu" ] && break
		sleep 0.1
	done
	echo "${lu%/}"
}

# Starts berthd on 127.0.0.1 with a kernel-chosen port; sets URL, HOSTPORT,
# DATA and CA (the generated certificate, for clients that verify).
berthd_start() {
	DATA=${DATA:-$T/data}
	[ -f "$T/berthd.log" ] && cat "$T/berthd.log" >>"$T/berthd.old.log"
	: >"$T/berthd.log"
	"$BERTHD" --data "$DATA" --listen 127.0.0.1:0 "$@" >>"$T/berthd.log" 2>&1 &
	BERTHD_PID=$!
	for _ in $(seq 1 100); do
		URL=$(sed -n 's/.*listening on \([^ ]*\) .*/\1/p' "$T/berthd.log" | tail -n 1)
		[ -n "$URL" ] && break
		kill -0 "$BERTHD_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$URL" ]; then
		echo "Bail out! berthd did not start"
		sed 's/^/# /' "$T/berthd.log"
		exit 1
	fi
	URL=${URL%/}
	HOSTPORT=${URL#*://}
	CA=$DATA/tls/cert.pem
}

berthd_stop() {
	if [ -n "$BERTHD_PID" ]; then
		kill -TERM "$BERTHD_PID" 2>/dev/null
		wait "$BERTHD_PID" 2>/dev/null
		BERTHD_PID=
	fi
}

# push_image DIR REPO TAG SIZE: pushes a random layer of SIZE bytes (POST,
# PATCH, PUT), a config (monolithic POST) and a manifest tagged TAG with
# curl to $URL (extra curl options in CURL_OPTS); leaves blob, cfg, man and
# digest (the layer's) in DIR.
push_image() {
	d=$1 repo=$2 tag=$3 size=$4
	mkdir -p "$d"
	head -c "$size" /dev/urandom >"$d/blob"
	bd="sha256:$(sha256sum "$d/blob" | cut -d' ' -f1)"
	printf '{"architecture":"amd64","os":"linux","tag":"%s"}' "$tag" >"$d/cfg"
	cd="sha256:$(sha256sum "$d/cfg" | cut -d' ' -f1)"
	loc=$(curl -sf ${CURL_OPTS:-} -X POST -D - -o /dev/null "$URL/v2/$repo/blobs/uploads/" |
	    sed -n 's/^Location: *//Ip' | tr -d '\r')
	[ -n "$loc" ] || return 1
	curl -sf ${CURL_OPTS:-} -X PATCH --data-binary @"$d/blob" -o /dev/null "$URL$loc" || return 1
	curl -sf ${CURL_OPTS:-} -X PUT -o /dev/null "$URL$loc?digest=$bd" || return 1
	curl -sf ${CURL_OPTS:-} -X POST --data-binary @"$d/cfg" -o /dev/null \
	    "$URL/v2/$repo/blobs/uploads/?digest=$cd" || return 1
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
	    "$cd" "$(stat -c %s "$d/cfg")" "$bd" "$(stat -c %s "$d/blob")" >"$d/man"
	curl -sf ${CURL_OPTS:-} -X PUT --data-binary @"$d/man" -o /dev/null \
	    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
	    "$URL/v2/$repo/manifests/$tag" || return 1
	echo "$bd" >"$d/digest"
}

# private_blob_cache: re-runs the calling script in a mount namespace of
# its own with an empty tmpfs over /var/lib/containers/cache, where podman,
# skopeo and buildah keep a blob-info cache as root: without it earlier
# runs make them skip uploads (CLIENTS.md). Does nothing when not root,
# without unshare, or once inside.
private_blob_cache() {
	if [ -z "${BERTH_IN_NS:-}" ] && [ "$(id -u)" = 0 ] &&
		unshare -m true 2>/dev/null; then
		export BERTH_IN_NS=1
		rm -rf "$T"     # the re-run makes its own
		exec unshare -m sh -c 'mkdir -p /var/lib/containers/cache &&
		    mount -t tmpfs tmpfs /var/lib/containers/cache && exec sh "$0"' "$0"
	fi
}

# dockerd_start: a containerd and a dockerd of the test's own, all state
# under $T (CLIENTS.md). Sets DK (a docker command bound to them) and
# CTD_SOCK; on failure sets DOCKER_WHY to the reason (to skip on).
dockerd_start() {
	DOCKER_WHY=
	for b in dockerd containerd docker; do
		command -v "$b" >/dev/null || DOCKER_WHY="$b not installed (docker.io)"
	done
	[ -n "$DOCKER_WHY" ] || [ "$(id -u)" = 0 ] || DOCKER_WHY="dockerd needs root"
	[ -z "$DOCKER_WHY" ] || return 1
	mkdir -p "$T/ctd" "$T/dcfg"
	CTD_SOCK=$T/ctd/containerd.sock
	cat >"$T/ctd/config.toml" <<C
version = 2
root = "$T/ctd/root"
state = "$T/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTD_SOCK"
C
	containerd --config "$T/ctd/config.toml" >"$T/containerd.log" 2>&1 &
	CTD_PID=$!
	dockerd --containerd="$CTD_SOCK" --containerd-namespace=moby \
		--storage-driver=vfs --exec-opt native.cgroupdriver=cgroupfs \
		--iptables=false --ip6tables=false --ip-masq=false --bridge=none \
		--data-root "$T/docker" --exec-root "$T/dexec" -H "unix://$T/docker.sock" \
		--pidfile "$T/dockerd.pid" >"$T/dockerd.log" 2>&1 &
	DOCKERD_PID=$!
	trap 'kill $DOCKERD_PID $CTD_PID 2>/dev/null; wait $DOCKERD_PID $CTD_PID 2>/dev/null; cleanup' EXIT
	DK="env DOCKER_HOST=unix://$T/docker.sock DOCKER_CONFIG=$T/dcfg docker"
	for _ in $(seq 1 100); do
		$DK version >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	DOCKER_WHY="dockerd did not start: $(tail -n 1 "$T/dockerd.log")"
	return 1
}

# ctr_hosts HOSTPORT CA: a hosts.toml under $T/hosts for ctr --hosts-dir,
# so that ctr speaks HTTPS to HOSTPORT and trusts CA.
ctr_hosts() {
	mkdir -p "$T/hosts/$1"
	cat >"$T/hosts/$1/hosts.toml" <<H
server = "https://$1"
[host."https://$1"]
  capabilities = ["pull", "resolve", "push"]
  ca = "$2"
H
}

tap_end() {
	echo "1..$tap_n"
	[ "$tap_failed" -eq 0 ]
}
