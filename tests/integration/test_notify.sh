#!/bin/sh
# berthd tells a Type=notify unit what it does: READY=1 once it listens,
# RELOADING=1 and READY=1 around a SIGHUP, STOPPING=1 on SIGTERM (the
# sd_notify(3) protocol, through $NOTIFY_SOCKET). Prints TAP.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip_all "python3 not installed"

python3 - "$T/notify.sock" "$T/notify.out" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.5)
end = time.time() + 15
with open(sys.argv[2], "w") as out:
    while time.time() < end:
        try:
            m = s.recv(4096).decode()
        except socket.timeout:
            continue
        out.write(m.replace("\n", " ") + "\n")
        out.flush()
        if "STOPPING=1" in m:
            break
PY
LISTENER=$!
for _ in $(seq 1 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$T/notify.sock berthd_start --no-tls
sleep 0.5
check "READY=1 once berthd listens" grep -q 'READY=1' "$T/notify.out"
kill -HUP "$BERTHD_PID"
sleep 1
check "RELOADING=1, then READY=1 again, on SIGHUP" sh -c "
	sed -n '2,\$p' $T/notify.out | grep -q 'RELOADING=1' &&
	[ \$(grep -c 'READY=1' $T/notify.out) -ge 2 ]"
berthd_stop
wait "$LISTENER"
check "STOPPING=1 on SIGTERM" grep -q 'STOPPING=1' "$T/notify.out"
tap_end
