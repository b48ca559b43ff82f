#!/bin/bash
# Side-by-side benchmark of berthd and CNCF Distribution 2.8 (Debian's
# docker-registry) on this machine, run by hand (as root, for skopeo's
# private blob-info cache and /proc/PID/clear_refs):
#
#   tests/bench/compare.sh [--quick] [--rounds N] [--size MIB] [--out FILE]
#
# Default: 4 rounds of 1 GiB (about 28 minutes here); --quick: 1 round of
# 256 MiB (about 5).
#
# Each registry runs alone, on loopback, with TLS (the same certificate),
# on a fresh data folder; the two alternate A B A B over the rounds so that
# machine drift hits both, and the physical ceilings are measured in the
# same rounds. Workloads (README in this folder):
#   1 push    docker-style POST, one streamed PATCH, PUT; and monolithic
#             (POST, PUT with the body) of other bytes
#   2 pull    GET to /dev/null; Range GET of the last MiB
#   3 small   500 blobs of 16 KiB: one keep-alive connection, 8 in
#             parallel, and a new TLS connection per blob
#   4 manifest GET (wrk) and HEAD (hload) by tag, 64 keep-alive TLS
#             connections
#   5 skopeo  copy of a 5-layer 100 MB image to the registry and back,
#             with skopeo's own CPU time beside the server's
#   6 conc    8 concurrent docker-style pushes of SIZE/4 MiB each
#   7 memory  idle RSS after start; VmHWM during a 2*SIZE MiB push
#   8 disk    du of the data folder after a corpus of 20 gzip-layer images,
#             and of 5 images of uncompressed tar layers
#   9 start   time to the first answered GET /v2/ on a store holding the
#             gzip corpus
# Ceilings: openssl speed sha256 and aes-128-gcm (one core), dd with
# fdatasync (its speed, and its CPU time per GB: what writing the bytes
# through the page cache costs any server), and tls_ceiling (a minimal
# TLS server that only hashes what it receives, or only sends) driven by
# the same curl commands, whose resident size idle and during the 2*SIZE
# MiB body is the memory floor of any server built on this OpenSSL (a
# lower figure is better, so the ratio to it is at least 1); a push
# is also held against the slower of the TLS sink and the disk, since it
# is acknowledged only once on disk. Before each timed transfer the
# previous one's dirty pages are synced, so neither server pays for the
# other's (or its own earlier) writeback. Each server's pull is followed
# by one through the TLS source (the server idle meanwhile), and the
# table also holds the median of those per-round ratios: a pull's ratio
# to a ceiling measured minutes earlier moves with the machine's drift.
#
# Prints a table (medians, berth/Distribution ratio, berth against the
# ceiling where one applies) and writes the same rows as TSV to FILE
# (default ./compare-DATE.tsv).
set -eu
rounds= size= quick=0 out=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1; shift ;;
	--rounds) rounds=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) echo "usage: $0 [--quick] [--rounds N] [--size MIB] [--out FILE]" >&2; exit 2 ;;
	esac
done
if [ "$quick" = 1 ]; then
	rounds=${rounds:-1} size=${size:-256} small_n=200 newconn_n=30 wrk_s=3
else
	rounds=${rounds:-4} size=${size:-1024} small_n=500 newconn_n=100 wrk_s=10
fi
out=${out:-$PWD/compare-$(date +%Y%m%d-%H%M%S).tsv}
bench=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$bench/../.." && pwd)
for c in docker-registry wrk skopeo curl openssl python3 bc; do
	command -v $c >/dev/null || { echo "compare.sh: needs $c (apt-get install ${c/docker-registry/docker-registry})" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "compare.sh: run as root (skopeo cache namespace, clear_refs)" >&2; exit 1; }
[ -x "$top/src/berthd" ] || { echo "compare.sh: build berthd first (make)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-cmp-XXXXXX")
pid=
ppid_=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; [ -n "$ppid_" ] && kill $ppid_ 2>/dev/null; rm -rf "$T"' EXIT
for tool in tls_ceiling hload; do
	gcc -std=c11 -O2 -Wall -Wextra -o "$T/$tool" "$bench/$tool.c" \
	    $(pkg-config --cflags --libs openssl) -lm
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
mkdir -p "$T/certs" && cp "$T/cert.pem" "$T/certs/ca.crt"
incompressible() {  # incompressible BYTES SEED: AES-CTR keystream
	openssl enc -aes-128-ctr -pass "pass:$2" -nosalt -pbkdf2 </dev/zero 2>/dev/null |
	    head -c "$1"
}
echo "preparing data" >&2
incompressible $((size * 1048576)) berth >"$T/blob"
digest="sha256:$(sha256sum "$T/blob" | cut -d' ' -f1)"
# The monolithic push sends other bytes: a blob already stored would be
# deduplicated instead of written.
incompressible $((size * 1048576)) mono >"$T/blob2"
digest2="sha256:$(sha256sum "$T/blob2" | cut -d' ' -f1)"
conc_mib=$((size / 4))
for i in 1 2 3 4 5 6 7 8; do
	incompressible $((conc_mib * 1048576)) "conc$i" >"$T/conc$i"
	echo "sha256:$(sha256sum "$T/conc$i" | cut -d' ' -f1)" >"$T/conc$i.digest"
done
big_digest="sha256:$(cat "$T/blob" "$T/blob" | sha256sum | cut -d' ' -f1)"
# The skopeo image: 5 gzip layers of 20 MB of incompressible files.
. "$top/tests/integration/oci_layout.sh"
mk_skopeo_image() {
	dir=$1
	mkdir -p "$dir/blobs/sha256"
	printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
	layers="" diffs=""
	for i in 1 2 3 4 5; do
		w=$T/layer$i
		mkdir -p "$w"
		incompressible 20000000 "layer$i" >"$w/data$i"
		tar -C "$w" --sort=name --mtime=@0 --owner=0 --group=0 -cf "$w.tar" .
		diffs="$diffs${diffs:+,}\"sha256:$(sha256sum "$w.tar" | cut -d' ' -f1)\""
		gzip -n -1 -c "$w.tar" >"$w.tgz"
		set -- $(oci_blob "$dir" "$w.tgz")
		rm -rf "$w" "$w.tar"
		layers="$layers${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$1\",\"size\":$2}"
	done
	printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffs" >"$T/cfg.json"
	set -- $(oci_blob "$dir" "$T/cfg.json")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
	    "$1" "$2" "$layers" >"$T/man.json"
	set -- $(oci_blob "$dir" "$T/man.json")
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
	    "$1" "$2" >"$dir/index.json"
}
mk_skopeo_image "$T/skimg"
sh "$bench/corpus.sh" "$T/corpus" >"$T/corpus.log"
logical_gz=$(awk '$1 == "logical_gz" {print $2}' "$T/corpus.log")
logical_tar=$(awk '$1 == "logical_tar" {print $2}' "$T/corpus.log")

port=$((20000 + $$ % 20000))
u="https://127.0.0.1:$port"
C="curl -sf --cacert $T/cert.pem"
: >"$T/results"

record() {  # record WHO FIGURE VALUE
	echo "$1 $2 $3" >>"$T/results"
}

now() {
	date +%s.%N
}

calc() {
	echo "$*" | bc -l
}

start_berth() {  # start_berth [DATA]
	d=${1:-$T/data}
	"$top/src/berthd" --data "$d" --listen 127.0.0.1:$port \
		--tls-cert "$T/cert.pem" --tls-key "$T/key.pem" --log-level warn \
		>"$T/server.log" 2>&1 &
	pid=$!
}

start_distribution() {  # start_distribution [DATA]
	d=${1:-$T/data}
	cat >"$T/config.yml" <<Y
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $d
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  tls:
    certificate: $T/cert.pem
    key: $T/key.pem
Y
	docker-registry serve "$T/config.yml" >"$T/server.log" 2>&1 &
	pid=$!
}

start_sink() {
	"$T/tls_ceiling" --cert "$T/cert.pem" --key "$T/key.pem" --port $port \
		--mode "$1" --size $((size * 1048576)) >"$T/server.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do
		grep -q ready "$T/server.log" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "tls_ceiling did not start" >&2
	exit 1
}

stop_server() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}

wait_up() {
	for _ in $(seq 1 200); do
		$C -o /dev/null "$u/v2/" && return 0
		sleep 0.05
	done
	echo "server did not start" >&2
	cat "$T/server.log" >&2
	exit 1
}

settle() {  # the previous workload's dirty pages leave for the disk first
	sync
	sleep 0.5
}

cpu_ticks() {  # user + system clock ticks of the server
	awk '{print $14 + $15}' "/proc/$pid/stat"
}
tck=$(getconf CLK_TCK)

status_kib() {  # status_kib FIELD
	awk -v f="$1:" '$1 == f {print $2}' "/proc/$pid/status"
}

to_ms() {  # wrk's "1.23ms" / "456.00us" / "1.20s" -> milliseconds
	sed -e 's/us$/ 0.001/' -e 's/ms$/ 1/' -e 's/s$/ 1000/' | awk '{print $1 * $2}'
}

abs_loc() {  # a Location header's value made absolute
	case $1 in http*) echo "$1" ;; *) echo "$u$1" ;; esac
}

with_digest() {  # with_digest URL DIGEST
	case $1 in *\?*) echo "$1&digest=$2" ;; *) echo "$1?digest=$2" ;; esac
}

upload_start() {  # upload_start REPO -> absolute upload URL
	abs_loc "$($C -X POST -D - -o /dev/null "$u/v2/$1/blobs/uploads/" |
	    sed -n 's/^Location: *//Ip' | tr -d '\r')"
}

# push_docker REPO FILE DIGEST: POST, one streamed PATCH, PUT.
push_docker() {
	hdr=$T/h.$BASHPID
	loc=$(upload_start "$1")
	$C -X PATCH -H 'Content-Type: application/octet-stream' -T "$2" \
	    -D "$hdr" -o /dev/null "$loc"
	loc=$(abs_loc "$(sed -n 's/^Location: *//Ip' "$hdr" | tr -d '\r')")
	$C -X PUT -o /dev/null "$(with_digest "$loc" "$3")"
}

# push_mono REPO FILE DIGEST: POST, then PUT with the body.
push_mono() {
	loc=$(upload_start "$1")
	$C -X PUT -H 'Content-Type: application/octet-stream' -T "$2" \
	    -o /dev/null "$(with_digest "$loc" "$3")"
}

# push_layout DIR REPO TAG: every blob of an OCI layout's one manifest
# (HEAD first, as clients do), then the manifest, all with curl.
push_layout() {
	mdig=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$1/index.json")
	for b in $(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
for d in [m["config"]] + m["layers"]:
    print(d["digest"])' "$1/blobs/sha256/${mdig#sha256:}"); do
		$C -I -o /dev/null "$u/v2/$2/blobs/$b" && continue
		push_mono "$2" "$1/blobs/sha256/${b#sha256:}" "$b"
	done
	$C -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
	    --data-binary @"$1/blobs/sha256/${mdig#sha256:}" -o /dev/null "$u/v2/$2/manifests/$3"
}

# put_manifest: a config blob and a manifest tagged bench/a:latest.
put_manifest() {
	printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/mcfg"
	cd_="sha256:$(sha256sum "$T/mcfg" | cut -d' ' -f1)"
	push_mono bench/a "$T/mcfg" "$cd_"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
	    "$cd_" "$(stat -c %s "$T/mcfg")" "$digest" "$((size * 1048576))" >"$T/man"
	$C -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
	    --data-binary @"$T/man" -o /dev/null "$u/v2/bench/a/manifests/latest"
}

# load_run WHO KIND: 64 keep-alive TLS connections on the manifest by tag;
# GET with wrk, HEAD with hload (wrk and h2load wait for a body after a
# HEAD answer that announces its length, so they cannot measure HEAD).
load_run() {
	c0=$(cpu_ticks)
	if [ "$2" = get ]; then
		wrk -t2 -c64 -d${wrk_s}s --latency \
		    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		    "$u/v2/bench/a/manifests/latest" >"$T/wrk" 2>&1
		c1=$(cpu_ticks)
		n=$(awk '/requests in/ {print $1}' "$T/wrk")
		bad=$(awk '/Non-2xx/ {print $NF}' "$T/wrk")
		rps=$(awk '/Requests\/sec/ {print $2}' "$T/wrk")
		p50=$(awk '$1 == "50%" {print $2}' "$T/wrk" | to_ms)
		p99=$(awk '$1 == "99%" {print $2}' "$T/wrk" | to_ms)
	else
		"$T/hload" -c 64 -t 2 -d "$wrk_s" -m HEAD --cacert "$T/cert.pem" \
		    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		    "$u/v2/bench/a/manifests/latest" >"$T/wrk" 2>&1
		c1=$(cpu_ticks)
		n=$(awk '$1 == "requests" {print $2}' "$T/wrk")
		bad=$(awk '$1 == "non2xx" || $1 == "errors" {s += $2} END {if (s) print s}' "$T/wrk")
		rps=$(awk '$1 == "rps" {print $2}' "$T/wrk")
		p50=$(awk '$1 == "p50_ms" {print $2}' "$T/wrk")
		p99=$(awk '$1 == "p99_ms" {print $2}' "$T/wrk")
	fi
	[ -z "$bad" ] || { echo "$1 manifest $2: $bad bad answers" >&2; cat "$T/wrk" >&2; exit 1; }
	record "$1" "manifest_$2_rps" "$rps"
	record "$1" "manifest_$2_p50_ms" "$p50"
	record "$1" "manifest_$2_p99_ms" "$p99"
	record "$1" "manifest_$2_cpu_us_per_req" "$(calc "($c1 - $c0) / $tck * 1000000 / $n")"
}

# small_run WHO MODE COUNT ARGS...: blobs.py, blobs/s and CPU per blob.
small_run() {
	who=$1 mode=$2 n=$3
	shift 3
	c0=$(cpu_ticks)
	python3 "$bench/blobs.py" --url "$u" --cacert "$T/cert.pem" \
	    --repo "small/$mode" --count "$n" --size 16384 "$@" >"$T/small"
	c1=$(cpu_ticks)
	record "$who" "small_${mode}_blobs_per_s" "$(awk '{print $6}' "$T/small")"
	record "$who" "small_${mode}_cpu_ms_per_blob" "$(calc "($c1 - $c0) / $tck * 1000 / $n")"
}

# paired_source WHO: the TLS source's pull once more, right after WHO's
# own pull and under the same conditions (WHO idles meanwhile), so that
# each round's pull can be held against a ceiling of its own moment.
paired_source() {
	"$T/tls_ceiling" --cert "$T/cert.pem" --key "$T/key.pem" \
	    --port $((port + 1)) --mode source --size $((size * 1048576)) \
	    >"$T/paired.log" 2>&1 &
	ppid_=$!
	for _ in $(seq 1 100); do
		grep -q ready "$T/paired.log" 2>/dev/null && break
		sleep 0.05
	done
	settle
	t0=$(now)
	$C -o /dev/null "https://127.0.0.1:$((port + 1))/x" ||
	    { echo "paired TLS source did not answer" >&2; exit 1; }
	t1=$(now)
	kill "$ppid_" 2>/dev/null || true
	wait "$ppid_" 2>/dev/null || true
	ppid_=
	record "$1" pull_paired_ceiling_MBps "$(calc "$mb / ($t1 - $t0)")"
}

skopeo_private() {  # skopeo with an empty blob-info cache of its own
	mkdir -p /var/lib/containers/cache
	unshare -m sh -c 'mount -t tmpfs tmpfs /var/lib/containers/cache &&
	    exec skopeo --insecure-policy "$@"' sh "$@"
}

# transfer WHO NAME MB COMMAND...: runs the command after a settle and
# records NAME_MBps and NAME_cpu_s_per_GB for MB megabytes moved.
transfer() {
	who=$1 name=$2 tmb=$3
	shift 3
	settle
	c0=$(cpu_ticks); t0=$(now)
	"$@"
	t1=$(now); c1=$(cpu_ticks)
	record "$who" "${name}_MBps" "$(calc "$tmb / ($t1 - $t0)")"
	record "$who" "${name}_cpu_s_per_GB" "$(calc "($c1 - $c0) / $tck / ($tmb / 1000)")"
}

# push_conc: 8 docker-style pushes at once, each of its own blob.
push_conc() {
	cpids=
	for i in 1 2 3 4 5 6 7 8; do
		push_docker "bench/c$i" "$T/conc$i" "$(cat "$T/conc$i.digest")" &
		cpids="$cpids $!"
	done
	wait $cpids || true
}

# run_one WHO: one round of workloads 1-7 against a fresh server.
run_one() {
	who=$1
	wait_up
	rss=$(status_kib VmRSS)
	record "$who" idle_rss_MiB "$(calc "$rss / 1024")"
	record "$who" idle_anon_MiB "$(calc "$(status_kib RssAnon) / 1024")"
	mb=$(calc "$size * 1.048576")

	transfer "$who" push "$mb" push_docker bench/a "$T/blob" "$digest"
	transfer "$who" mono "$mb" push_mono bench/b "$T/blob2" "$digest2"
	transfer "$who" pull "$mb" $C -o /dev/null "$u/v2/bench/a/blobs/$digest"
	paired_source "$who"
	last=$((size * 1048576 - 1))
	t0=$(now)
	$C -o /dev/null -H "Range: bytes=$((last - 1048575))-$last" "$u/v2/bench/a/blobs/$digest"
	t1=$(now)
	record "$who" range_ms "$(calc "($t1 - $t0) * 1000")"

	small_run "$who" keepalive "$small_n"
	small_run "$who" parallel8 "$small_n" --parallel 8
	small_run "$who" newconn "$newconn_n" --new-connection

	put_manifest
	load_run "$who" get
	load_run "$who" head

	rm -rf "$T/skback"
	settle
	c0=$(cpu_ticks); t0=$(now)
	TIMEFORMAT='%U %S'
	{ time {
		skopeo_private copy -q --dest-cert-dir "$T/certs" oci:"$T/skimg":latest \
		    "docker://127.0.0.1:$port/bench/skopeo:latest"
		skopeo_private copy -q --src-cert-dir "$T/certs" \
		    "docker://127.0.0.1:$port/bench/skopeo:latest" oci:"$T/skback":latest
	} ; } 2>"$T/sktime"
	t1=$(now); c1=$(cpu_ticks)
	record "$who" skopeo_roundtrip_s "$(calc "$t1 - $t0")"
	record "$who" skopeo_server_cpu_s "$(calc "($c1 - $c0) / $tck")"
	record "$who" skopeo_client_cpu_s "$(awk '{print $1 + $2}' "$T/sktime")"

	transfer "$who" conc8 "$(calc "8 * $conc_mib * 1.048576")" push_conc
	for i in 1 2 3 4 5 6 7 8; do
		$C -I -o /dev/null "$u/v2/bench/c$i/blobs/$(cat "$T/conc$i.digest")" ||
		    { echo "$who: concurrent push $i did not land" >&2; exit 1; }
	done

	# What the concurrent pushes held is given back first (berthd does
	# 2 s after a transfer, Go's runtime later), so that the peak below
	# is the 2 GiB push's: both servers get the same pause.
	sync
	sleep 3
	echo 5 >"/proc/$pid/clear_refs"      # VmHWM := VmRSS
	# VmHWM counts mapped library pages too; sample the private part.
	( peak=0; while kill -0 "$pid" 2>/dev/null && [ ! -e "$T/stop_sampler" ]; do
		a=$(status_kib RssAnon); [ "${a:-0}" -gt "$peak" ] && peak=$a
		echo "$peak" >"$T/anon_peak"; sleep 0.02; done ) &
	sampler=$!
	loc=$(upload_start bench/big)
	cat "$T/blob" "$T/blob" | $C -X PATCH -H 'Content-Type: application/octet-stream' \
	    -T - -D "$T/h" -o /dev/null "$loc"
	loc=$(abs_loc "$(sed -n 's/^Location: *//Ip' "$T/h" | tr -d '\r')")
	$C -X PUT -o /dev/null "$(with_digest "$loc" "$big_digest")"
	record "$who" push2x_peak_MiB "$(calc "$(status_kib VmHWM) / 1024")"
	touch "$T/stop_sampler"; wait "$sampler" 2>/dev/null || true; rm -f "$T/stop_sampler"
	record "$who" push2x_peak_anon_MiB "$(calc "$(cat "$T/anon_peak") / 1024")"
	stop_server
}

# ceilings: the same curl transfers against tls_ceiling, and the tools.
ceilings() {
	mb=$(calc "$size * 1.048576")
	start_sink sink
	# The memory floor: a TLS server with OpenSSL and nothing else, idle
	# and while it takes the same 2*SIZE MiB body as workload 7.
	record ceiling idle_rss_MiB "$(calc "$(status_kib VmRSS) / 1024")"
	t0=$(now)
	$C -X PATCH -H 'Content-Type: application/octet-stream' -T "$T/blob" -o /dev/null "$u/x"
	t1=$(now)
	record ceiling push_MBps "$(calc "$mb / ($t1 - $t0)")"
	cat "$T/blob" "$T/blob" | $C -X PATCH -H 'Content-Type: application/octet-stream' \
	    -T - -o /dev/null "$u/x"
	record ceiling push2x_peak_MiB "$(calc "$(status_kib VmHWM) / 1024")"
	stop_server
	start_sink source
	t0=$(now)
	$C -o /dev/null "$u/x"
	t1=$(now)
	record ceiling pull_MBps "$(calc "$mb / ($t1 - $t0)")"
	stop_server
	s=$(openssl speed -evp sha256 -seconds 2 -bytes 16384 2>/dev/null | tail -n 1 | awk '{print $NF}' | tr -d k)
	record ceiling sha256_MBps "$(calc "$s / 1000")"
	s=$(openssl speed -evp aes-128-gcm -seconds 2 -bytes 16384 2>/dev/null | tail -n 1 | awk '{print $NF}' | tr -d k)
	record ceiling aes128gcm_MBps "$(calc "$s / 1000")"
	t0=$(now)
	TIMEFORMAT='%U %S'
	{ time dd if="$T/blob" of="$T/dd" bs=1M conv=fdatasync 2>/dev/null ; } 2>"$T/ddtime"
	t1=$(now)
	rm -f "$T/dd"
	record ceiling disk_MBps "$(calc "$mb / ($t1 - $t0)")"
	# What writing the bytes through the page cache costs in CPU alone.
	record ceiling disk_cpu_s_per_GB "$(awk -v mb="$mb" '{print ($1 + $2) * 1000 / mb}' "$T/ddtime")"
	# A push is acknowledged once on disk: it can go no faster than the
	# slower of the TLS sink and the disk.
	d=$(calc "$mb / ($t1 - $t0)")
	p=$(grep '^ceiling push_MBps ' "$T/results" | tail -n 1 | awk '{print $3}')
	record ceiling durable_push_MBps "$(echo "$d $p" | awk '{print ($1 < $2) ? $1 : $2}')"
}

for r in $(seq 1 "$rounds"); do
	echo "round $r/$rounds: ceilings" >&2
	ceilings
	for who in berth distribution; do
		echo "round $r/$rounds: $who" >&2
		rm -rf "$T/data"
		start_$who
		run_one $who
	done
done

# Disk use and start-up: the corpora on fresh stores, alternating too.
startup_rounds=$((quick ? 3 : 5))
for who in berth distribution; do
	echo "corpus: $who" >&2
	rm -rf "$T/data" "$T/data.tar"
	start_$who "$T/data.tar"
	wait_up
	for img in "$T/corpus/tar/"*; do
		push_layout "$img" "tar/$(basename "$img")" latest
	done
	stop_server
	sync
	record "$who" disk_tar_MiB "$(calc "$(du -sk "$T/data.tar" | cut -f1) / 1024")"
	rm -rf "$T/data.tar"
	start_$who
	wait_up
	for img in "$T/corpus/gz/"*; do
		push_layout "$img" "gz/$(basename "$img")" latest
	done
	stop_server
	sync
	record "$who" disk_gz_MiB "$(calc "$(du -sk "$T/data" | cut -f1) / 1024")"
	mv "$T/data" "$T/data.$who"
done
for r in $(seq 1 "$startup_rounds"); do
	for who in berth distribution; do
		s=$(python3 "$bench/startup.py" --url "$u/v2/" --cacert "$T/cert.pem" \
		    --pidfile "$T/startup.pid" -- $(
			if [ $who = berth ]; then
				echo "$top/src/berthd --data $T/data.$who --listen 127.0.0.1:$port --tls-cert $T/cert.pem --tls-key $T/key.pem --log-level warn"
			else
				sed -i "s|rootdirectory: .*|rootdirectory: $T/data.$who|" "$T/config.yml"
				echo "docker-registry serve $T/config.yml"
			fi))
		pid=$(cat "$T/startup.pid")
		$C -o /dev/null "$u/v2/gz/img01/manifests/latest" -H 'Accept: application/vnd.oci.image.manifest.v1+json' ||
		    { echo "$who: corpus manifest missing after restart" >&2; exit 1; }
		stop_server
		record "$who" startup_ms "$(calc "$s * 1000")"
	done
done
record logical disk_gz_MiB "$(calc "$logical_gz / 1048576")"
record logical disk_tar_MiB "$(calc "$logical_tar / 1048576")"

med() {  # the median of the numbers on standard input, one per line
	sort -g |
	    awk '{v[NR]=$1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

median() {  # median WHO FIGURE
	grep "^$1 $2 " "$T/results" | awk '{print $3}' | med
}

paired_ratio() {  # paired_ratio WHO FIGURE CEILING_FIGURE: median of per-round ratios
	paste -d' ' <(grep "^$1 $2 " "$T/results" | awk '{print $3}') \
	    <(grep "^$1 $3 " "$T/results" | awk '{print $3}') |
	    awk 'NF == 2 && $2 > 0 {print $1 / $2}' | med
}

# figure, the ceiling it is held against (or -), what is better.
cat >"$T/figures" <<'F'
push_MBps push_MBps higher
push_MBps durable_push_MBps higher
mono_MBps push_MBps higher
mono_MBps durable_push_MBps higher
push_cpu_s_per_GB disk_cpu_s_per_GB lower
mono_cpu_s_per_GB disk_cpu_s_per_GB lower
pull_MBps pull_MBps higher
pull_cpu_s_per_GB - lower
range_ms - lower
small_keepalive_blobs_per_s - higher
small_keepalive_cpu_ms_per_blob - lower
small_parallel8_blobs_per_s - higher
small_parallel8_cpu_ms_per_blob - lower
small_newconn_blobs_per_s - higher
small_newconn_cpu_ms_per_blob - lower
manifest_get_rps - higher
manifest_get_p50_ms - lower
manifest_get_p99_ms - lower
manifest_get_cpu_us_per_req - lower
manifest_head_rps - higher
manifest_head_p50_ms - lower
manifest_head_p99_ms - lower
manifest_head_cpu_us_per_req - lower
skopeo_roundtrip_s - lower
skopeo_server_cpu_s - lower
skopeo_client_cpu_s - lower
conc8_MBps durable_push_MBps higher
conc8_cpu_s_per_GB disk_cpu_s_per_GB lower
idle_rss_MiB idle_rss_MiB lower
idle_anon_MiB - lower
push2x_peak_MiB push2x_peak_MiB lower
push2x_peak_anon_MiB - lower
disk_gz_MiB disk_gz_MiB lower
disk_tar_MiB disk_tar_MiB lower
startup_ms - lower
F
{
	printf 'figure\tberth\tdistribution\tratio\tceiling\tberth_vs_ceiling\tbetter\n'
	while read -r f cf better; do
		b=$(median berth "$f")
		d=$(median distribution "$f")
		[ -n "$b" ] && [ -n "$d" ] || continue
		c=
		if [ "$cf" != - ]; then
			c=$(median ceiling "$cf")
			[ -n "$c" ] || c=$(median logical "$cf")
		fi
		printf '%s\t%.3f\t%.3f\t%.3f\t%s\t%s\t%s\n' "$f${c:+ vs $cf}" "$b" "$d" \
		    "$(calc "$b / $d")" "${c:+$(printf %.1f "$c")}" \
		    "${c:+$(printf %.3f "$(calc "$b / $c")")}" "$better"
	done <"$T/figures"
	# Pull against the source measured right after it, round by round:
	# the median of those ratios, beside the ratio of medians above.
	b=$(median berth pull_MBps)
	d=$(median distribution pull_MBps)
	c=$(median berth pull_paired_ceiling_MBps)
	r=$(paired_ratio berth pull_MBps pull_paired_ceiling_MBps)
	if [ -n "$b" ] && [ -n "$d" ] && [ -n "$c" ] && [ -n "$r" ]; then
		printf '%s\t%.3f\t%.3f\t%.3f\t%.1f\t%.3f\t%s\n' \
		    "pull_MBps vs paired pull_MBps" "$b" "$d" "$(calc "$b / $d")" \
		    "$c" "$r" higher
	fi
	for f in push_MBps pull_MBps sha256_MBps aes128gcm_MBps disk_MBps \
	    disk_cpu_s_per_GB durable_push_MBps idle_rss_MiB push2x_peak_MiB; do
		printf 'ceiling_%s\t\t\t\t%.1f\t\t\n' "$f" "$(median ceiling "$f")"
	done
} >"$out"
column -t -s "$(printf '\t')" "$out"
# Every round's value, for looking into a median: "WHO FIGURE VALUE".
cp "$T/results" "${out%.tsv}.rounds"
echo "rounds: $rounds, size: $size MiB; TSV in $out, each round's values in ${out%.tsv}.rounds"
