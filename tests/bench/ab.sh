#!/bin/bash
# Two berthd builds, old and new, alternating on fresh stores: the way
# each change in docs/PERFORMANCE.md was measured. Run by hand, nothing
# else busy (these machines are noisy; read the medians and the ranges):
#
#   tests/bench/ab.sh [--rounds N] [--size MIB] [--conc] OLD NEW [-- ARGS]
#
# OLD and NEW are berthd binaries (copy a build aside before changing the
# tree); ARGS go to both. Each round starts OLD, then NEW, each on a fresh
# data folder with its own certificate, and times with curl over TLS:
#   push  a SIZE MiB incompressible blob docker-style (POST, one PATCH,
#         PUT): MB/s, server CPU-s per GB, VmHWM during it
#   pull  the blob back to /dev/null: MB/s, server CPU-s per GB
#   conc  (--conc) 8 docker-style pushes of SIZE/8 MiB at once: MB/s,
#         CPU-s per GB, VmHWM
# Prints each run, then the median of each figure and NEW/OLD.
set -eu
rounds=4 size=1024 conc=0
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--conc) conc=1; shift ;;
	--) break ;;
	-*) echo "usage: $0 [--rounds N] [--size MIB] [--conc] OLD NEW [-- ARGS]" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 2 ] || { echo "usage: $0 [--rounds N] [--size MIB] [--conc] OLD NEW [-- ARGS]" >&2; exit 2; }
old=$1 new=$2
shift 2
[ "${1:-}" = -- ] && shift
for b in "$old" "$new"; do
	[ -x "$b" ] || { echo "ab.sh: $b is not an executable" >&2; exit 2; }
done
case $size in ''|*[!0-9]*) echo "ab.sh: --size takes MiB" >&2; exit 2 ;; esac
[ "$size" -ge 8 ] || { echo "ab.sh: --size is at least 8 MiB" >&2; exit 2; }

W=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-ab-XXXXXX")
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$W"' EXIT
# Incompressible bytes, fast: AES-CTR keystreams.
keystream() {
	openssl enc -aes-128-ctr -pass "pass:$1" -nosalt -pbkdf2 </dev/zero 2>/dev/null |
	    head -c "$2"
}
keystream berth-ab $((size * 1048576)) >"$W/blob"
echo "sha256:$(sha256sum "$W/blob" | cut -d' ' -f1)" >"$W/blob.dig"
part=$((size / 8))
if [ "$conc" = 1 ]; then
	for i in 1 2 3 4 5 6 7 8; do
		keystream "berth-ab-$i" $((part * 1048576)) >"$W/part$i"
		echo "sha256:$(sha256sum "$W/part$i" | cut -d' ' -f1)" >"$W/part$i.dig"
	done
fi

cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }
now() { date +%s.%N; }
calc() { echo "scale=3; $1" | bc; }

start() {
	rm -rf "$W/data"
	"$1" --data "$W/data" --listen 127.0.0.1:0 "${@:2}" >"$W/log" 2>&1 &
	pid=$!
	url=
	for _ in $(seq 1 100); do
		url=$(sed -n 's/.*listening on \([^ ]*\) .*/\1/p' "$W/log")
		[ -n "$url" ] && break
		sleep 0.1
	done
	[ -n "$url" ] || { echo "ab.sh: $1 did not start:" >&2; cat "$W/log" >&2; exit 1; }
	url=${url%/}
	C="curl -sf --cacert $W/data/tls/cert.pem"
}

stop() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}

# push REPO FILE: one docker-style upload.
push() {
	local loc h="$W/h.$BASHPID"
	loc=$($C -X POST -D - -o /dev/null "$url/v2/$1/blobs/uploads/" |
	    sed -n 's/^Location: *//Ip' | tr -d '\r')
	$C -X PATCH -T "$2" -H 'Content-Type: application/octet-stream' \
	    -D "$h" -o /dev/null "$url$loc"
	loc=$(sed -n 's/^Location: *//Ip' "$h" | tr -d '\r')
	case $loc in http*) ;; *) loc=$url$loc ;; esac
	case $loc in *\?*) loc="$loc&" ;; *) loc="$loc?" ;; esac
	$C -X PUT -o /dev/null "${loc}digest=$(cat "$2.dig")"
}

# run LABEL BIN: one round's figures, appended to $W/rows.
run() {
	local label=$1 bin=$2 c0 c1 t0 t1 gb row
	shift 2
	start "$bin" "$@"
	gb=$(calc "$size / 1024 * 1.073741824")
	sync
	echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
	c0=$(cpu); t0=$(now)
	push ab/one "$W/blob"
	t1=$(now); c1=$(cpu)
	row="$label push_MBps $(calc "$size * 1.048576 / ($t1 - $t0)")"
	row="$row push_cpus_per_GB $(calc "($c1 - $c0) / 100 / $gb")"
	row="$row push_hwm_MiB $(calc "$(hwm) / 1024")"
	c0=$(cpu); t0=$(now)
	$C -o /dev/null "$url/v2/ab/one/blobs/$(cat "$W/blob.dig")"
	t1=$(now); c1=$(cpu)
	row="$row pull_MBps $(calc "$size * 1.048576 / ($t1 - $t0)")"
	row="$row pull_cpus_per_GB $(calc "($c1 - $c0) / 100 / $gb")"
	if [ "$conc" = 1 ]; then
		local pids="" i
		sync
		sleep 3
		echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
		c0=$(cpu); t0=$(now)
		for i in 1 2 3 4 5 6 7 8; do
			push "ab/c$i" "$W/part$i" &
			pids="$pids $!"
		done
		for i in $pids; do wait "$i"; done
		t1=$(now); c1=$(cpu)
		gb=$(calc "8 * $part / 1024 * 1.073741824")
		row="$row conc_MBps $(calc "8 * $part * 1.048576 / ($t1 - $t0)")"
		row="$row conc_cpus_per_GB $(calc "($c1 - $c0) / 100 / $gb")"
		row="$row conc_hwm_MiB $(calc "$(hwm) / 1024")"
	fi
	stop
	echo "$row" | tee -a "$W/rows"
}

for r in $(seq 1 "$rounds"); do
	run old "$old" "$@"
	run new "$new" "$@"
done

python3 - "$W/rows" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    d = runs.setdefault(f[0], {})
    for k, v in zip(f[1::2], f[2::2]):
        d.setdefault(k, []).append(float(v))
print("%-18s %10s %10s %7s   %s" % ("median", "old", "new", "new/old", "ranges old | new"))
for k in runs["old"]:
    o, n = runs["old"][k], runs["new"][k]
    mo, mn = statistics.median(o), statistics.median(n)
    print("%-18s %10.2f %10.2f %7.3f   %.2f-%.2f | %.2f-%.2f" % (
        k, mo, mn, mn / mo if mo else float("nan"), min(o), max(o), min(n), max(n)))
EOF
