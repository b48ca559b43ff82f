#!/bin/sh
# Peak resident memory of berthd while a client pushes one large layer
# docker-style (POST, one streamed PATCH, PUT) over TLS. Run by hand:
#
#   tests/bench/push_mem.sh [SIZE_MIB]     (default 2048)
#
# Prints berthd's VmRSS before, VmHWM after, the push speed, and whether
# the pushed blob reads back with the right digest.
set -eu
size=${1:-2048}
top=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/berth-mem-XXXXXX")
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$T"' EXIT
"$top/src/berthd" --data "$T/data" --listen 127.0.0.1:0 >"$T/log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do
	url=$(sed -n 's/.*listening on \([^ ]*\) .*/\1/p' "$T/log")
	[ -n "$url" ] && break
	sleep 0.1
done
url=${url%/}
C="curl -sf --cacert $T/data/tls/cert.pem"
rss0=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
loc=$($C -X POST -D - -o /dev/null "$url/v2/bench/mem/blobs/uploads/" |
    sed -n 's/^Location: *//Ip' | tr -d '\r')
# Incompressible bytes, fast: AES-CTR keystream.
t0=$(date +%s.%N)
openssl enc -aes-128-ctr -pass pass:berth -nosalt -pbkdf2 </dev/zero 2>/dev/null |
    head -c $((size * 1048576)) | tee "$T/fifo.sha" 2>/dev/null |
    $C -X PATCH -T - -H 'Content-Type: application/octet-stream' -o /dev/null "$url$loc" &
wait $!
digest="sha256:$(sha256sum "$T/fifo.sha" | cut -d' ' -f1)"
rm -f "$T/fifo.sha"
$C -X PUT -o /dev/null "$url$loc?digest=$digest"
t1=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
got=$($C "$url/v2/bench/mem/blobs/$digest" | sha256sum | cut -d' ' -f1)
echo "pushed ${size} MiB in $(echo "$t1 - $t0" | bc) s ($(echo "$size / ($t1 - $t0)" | bc) MiB/s, client and server on one machine)"
echo "berthd VmRSS at start: $((rss0 / 1024)) MiB"
echo "berthd VmHWM after the push: $((hwm / 1024)) MiB"
[ "sha256:$got" = "$digest" ] && echo "read back: digest matches" || { echo "read back: DIGEST MISMATCH"; exit 1; }
