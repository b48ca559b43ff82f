#!/bin/sh
# A request body dribbled slower than --min-body-rate is cut off once its
# average over --io-timeout falls short, though every byte arrives within
# the timeout; a body at a normal pace is not; 0 turns the limit off.
# Prints TAP.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip_all "python3 not installed"

# dribble HOSTPORT SECONDS: PATCHes an upload one byte every 0.4 s for at
# most SECONDS; prints how long until the server closed (or "open").
dribble() {
	python3 - "$1" "$2" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(b"POST /v2/slow/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
head = s.recv(4096).decode()
loc = [l.split(": ", 1)[1] for l in head.split("\r\n") if l.lower().startswith("location:")][0]
s.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" % loc).encode())
t0 = time.time()
s.settimeout(0.4)
while time.time() - t0 < float(sys.argv[2]):
    try:
        s.sendall(b"x")
        if s.recv(4096) == b"":
            break
    except socket.timeout:
        continue
    except OSError:
        break
else:
    print("open")
    sys.exit(0)
print("%.1f" % (time.time() - t0))
PY
}

berthd_start --no-tls --io-timeout 2 --min-body-rate 100
r=$(dribble "$HOSTPORT" 12)
check "a body at 2.5 bytes/s is cut off soon after 2 s (closed after ${r} s)" sh -c \
	"[ '$r' != open ] && python3 -c 'import sys; sys.exit(0 if $r < 5 else 1)'"
check "the log says why" grep -q 'body slower than 100 bytes/s: closed' "$T/berthd.log"
push_image "$T/img" slow/ok v1 3000000 >/dev/null 2>&1
check "a normal push still works" test -s "$T/img/digest"
berthd_stop
berthd_start --no-tls --io-timeout 2 --min-body-rate 0
r=$(dribble "$HOSTPORT" 5)
check "with --min-body-rate 0 the slow body is kept" [ "$r" = open ]
tap_end
