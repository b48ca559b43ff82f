#!/bin/sh
# Side-by-side benchmark of berthd and CNCF Distribution 2.8 (Debian's
# docker-registry) on this machine, run by hand:
#
#   tests/bench/compare.sh [--rounds N] [--size MIB]
#
# Each registry runs alone, on loopback, with TLS (the same certificate),
# on a fresh data folder; the two alternate A B A B over the rounds so that
# machine drift hits both. Workloads, all with curl:
#   push   docker-style: POST, one streamed PATCH of SIZE MiB, PUT (MB/s)
#   mono   monolithic: POST, then PUT ?digest= with the body (MB/s)
#   pull   GET of the blob to /dev/null (MB/s)
#   range  GET of its last MiB (ms)
#   manifest GET by tag with wrk, 64 keep-alive TLS connections, 10 s:
#          requests/s, p50 and p99 latency (ms), if wrk is installed
# plus each server's CPU time (user+system, /proc/PID/stat) per GB pushed.
# Prints the median of each figure per registry and the berth/Distribution
# ratio, then the same rows as TSV lines starting with "tsv".
set -eu
rounds=3 size=512
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	*) echo "usage: $0 [--rounds N] [--size MIB]" >&2; exit 2 ;;
	esac
done
top=$(cd "$(dirname "$0")/../.." && pwd)
command -v docker-registry >/dev/null || { echo "apt-get install docker-registry" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/berth-cmp-XXXXXX")
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$T"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
openssl enc -aes-128-ctr -pass pass:berth -nosalt -pbkdf2 </dev/zero 2>/dev/null |
	head -c $((size * 1048576)) >"$T/blob"
digest="sha256:$(sha256sum "$T/blob" | cut -d' ' -f1)"
port=$((20000 + $$ % 20000))
C="curl -sf --cacert $T/cert.pem"

start_berth() {
	rm -rf "$T/data"
	"$top/src/berthd" --data "$T/data" --listen 127.0.0.1:$port \
		--tls-cert "$T/cert.pem" --tls-key "$T/key.pem" --log-level warn \
		>"$T/server.log" 2>&1 &
	pid=$!
}

start_distribution() {
	rm -rf "$T/data"
	cat >"$T/config.yml" <<Y
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $T/data
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

wait_up() {
	for _ in $(seq 1 100); do
		$C -o /dev/null "https://127.0.0.1:$port/v2/" && return 0
		sleep 0.1
	done
	echo "server did not start" >&2
	cat "$T/server.log" >&2
	exit 1
}

cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$pid/stat"
}

now() {
	date +%s.%N
}

to_ms() {  # wrk's "1.23ms" / "456.00us" / "1.20s" -> milliseconds
	sed -e 's/us$/ 0.001/' -e 's/ms$/ 1/' -e 's/s$/ 1000/' | awk '{print $1 * $2}'
}

# run_one NAME: one round of every workload; appends "name figure value".
run_one() {
	name=$1 u="https://127.0.0.1:$port"
	wait_up
	c0=$(cpu_ticks)
	t0=$(now)
	loc=$($C -X POST -D - -o /dev/null "$u/v2/bench/a/blobs/uploads/" |
	    sed -n 's/^Location: *//Ip' | tr -d '\r')
	case $loc in http*) ;; *) loc="$u$loc" ;; esac
	$C -X PATCH -H 'Content-Type: application/octet-stream' -T "$T/blob" -D "$T/h" -o /dev/null "$loc"
	loc=$(sed -n 's/^Location: *//Ip' "$T/h" | tr -d '\r')
	case $loc in http*) ;; *) loc="$u$loc" ;; esac
	case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
	$C -X PUT -o /dev/null "$loc${sep}digest=$digest"
	t1=$(now)
	c1=$(cpu_ticks)
	echo "$name push_MBps $(echo "$size * 1.048576 / ($t1 - $t0)" | bc -l)" >>"$T/results"
	echo "$name push_cpu_s_per_GB $(echo "($c1 - $c0) / 100 / ($size * 1.048576 / 1000)" | bc -l)" >>"$T/results"
	t0=$(now)
	loc=$($C -X POST -D - -o /dev/null "$u/v2/bench/b/blobs/uploads/" |
	    sed -n 's/^Location: *//Ip' | tr -d '\r')
	case $loc in http*) ;; *) loc="$u$loc" ;; esac
	case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
	$C -X PUT -H 'Content-Type: application/octet-stream' -T "$T/blob" \
	    -o /dev/null "$loc${sep}digest=$digest"
	t1=$(now)
	echo "$name mono_MBps $(echo "$size * 1.048576 / ($t1 - $t0)" | bc -l)" >>"$T/results"
	t0=$(now)
	$C -o /dev/null "$u/v2/bench/a/blobs/$digest"
	t1=$(now)
	echo "$name pull_MBps $(echo "$size * 1.048576 / ($t1 - $t0)" | bc -l)" >>"$T/results"
	last=$((size * 1048576 - 1))
	t0=$(now)
	$C -o /dev/null -H "Range: bytes=$((last - 1048575))-$last" "$u/v2/bench/a/blobs/$digest"
	t1=$(now)
	echo "$name range_ms $(echo "($t1 - $t0) * 1000" | bc -l)" >>"$T/results"
	if command -v wrk >/dev/null; then
		printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/cfg"
		cd_=$(sha256sum "$T/cfg" | cut -d' ' -f1)
		loc=$($C -X POST -D - -o /dev/null "$u/v2/bench/a/blobs/uploads/" |
		    sed -n 's/^Location: *//Ip' | tr -d '\r')
		case $loc in http*) ;; *) loc="$u$loc" ;; esac
		case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
		$C -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$T/cfg" \
		    -o /dev/null "$loc${sep}digest=sha256:$cd_"
		printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
		    "$cd_" "$(stat -c %s "$T/cfg")" "$digest" "$((size * 1048576))" >"$T/man"
		$C -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
		    --data-binary @"$T/man" -o /dev/null "$u/v2/bench/a/manifests/latest"
		wrk -t2 -c64 -d10s --latency \
		    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		    "$u/v2/bench/a/manifests/latest" >"$T/wrk" 2>&1
		echo "$name manifest_get_rps $(awk '/Requests\/sec/ {print $2}' "$T/wrk")" >>"$T/results"
		echo "$name manifest_p50_ms $(awk '$1 == "50%" {print $2}' "$T/wrk" | to_ms)" >>"$T/results"
		echo "$name manifest_p99_ms $(awk '$1 == "99%" {print $2}' "$T/wrk" | to_ms)" >>"$T/results"
	fi
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
}

: >"$T/results"
for r in $(seq 1 "$rounds"); do
	echo "round $r/$rounds" >&2
	start_berth
	run_one berth
	start_distribution
	run_one distribution
done

median() {  # median NAME FIGURE
	grep "^$1 $2 " "$T/results" | awk '{print $3}' | sort -g |
	    awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
printf '%-20s %12s %14s %8s\n' figure berth distribution ratio
for f in push_MBps mono_MBps pull_MBps range_ms push_cpu_s_per_GB \
    manifest_get_rps manifest_p50_ms manifest_p99_ms; do
	grep -q " $f " "$T/results" || continue
	b=$(median berth $f)
	d=$(median distribution $f)
	ratio=$(echo "$b / $d" | bc -l)
	printf '%-20s %12.1f %14.1f %8.2f\n' "$f" "$b" "$d" "$ratio"
	printf 'tsv\t%s\t%.1f\t%.1f\t%.3f\n' "$f" "$b" "$d" "$ratio"
done
