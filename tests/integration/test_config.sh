#!/bin/sh
# berthd's options as one table: the generated berthd.conf(5) is the one
# in docs/, defaults printed by -n are the ones documented, a file sets
# every key and the command line overrides it, errors name file and line;
# a berthd started from a file serves, with /healthz and /readyz; readyz
# says 503 when the disk is nearly full; --log-syslog logs to syslog.
# Prints TAP.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl not installed"
command -v python3 >/dev/null || skip_all "python3 not installed"
srcroot=${srcdir:-.}

check "the generated berthd.conf(5) is the one in docs/ (no drift)" sh -c \
	"$BERTHD --print-config-manual | cmp - $srcroot/docs/berthd.conf.5"
if command -v mandoc >/dev/null; then
	check "mandoc finds nothing to warn about in berthd.conf(5)" sh -c \
		"mandoc -T lint -W warning $srcroot/docs/berthd.conf.5"
fi
"$BERTHD" -n --data "$T/d" >"$T/n.out" 2>&1
rc=$?
"$BERTHD" --print-config-manual >"$T/man"
check "-n prints every key at its documented default" python3 - "$T/man" "$T/n.out" "$rc" <<'PY'
import re, sys
man = open(sys.argv[1]).read().split("\n")
got = {}
for line in open(sys.argv[2]):
    m = re.match(r"^([a-z-]+) = (.*)$", line.rstrip("\n"))
    if m:
        got.setdefault(m.group(1), m.group(2))
assert sys.argv[3] == "0", "exit " + sys.argv[3]
key, n = None, 0
for line in man:
    m = re.match(r"^\.It Cm ([a-z-]+) ", line)
    if m:
        key = m.group(1)
    m = re.match(r"^\.Ql (.*) \.$", line)
    if m and key:
        assert got.get(key) == m.group(1), (key, got.get(key), m.group(1))
        n += 1
assert n >= 15, n
PY

cat >"$T/conf" <<C
# a registry for tests
data = $T/data
listen = 127.0.0.1:1
listen = 127.0.0.1:2
no-tls = yes
max-uploads = 17
gc-interval = 0   # never
io-timeout = 90
access-log-format = json
C
"$BERTHD" -n --config "$T/conf" >"$T/c.out" 2>&1
check "a file sets keys; -n prints them" sh -c "
	grep -qx 'max-uploads = 17' $T/c.out && grep -qx 'no-tls = true' $T/c.out &&
	grep -qx 'gc-interval = 0s' $T/c.out && grep -qx 'io-timeout = 90s' $T/c.out &&
	grep -qx 'listen = 127.0.0.1:2' $T/c.out && grep -qx 'access-log-format = json' $T/c.out &&
	grep -q '^# berthd .*from $T/conf' $T/c.out"
"$BERTHD" -n --config "$T/conf" --max-uploads 5 --listen 127.0.0.1:3 >"$T/o.out" 2>&1
check "the command line overrides the file; a list is replaced, not added to" sh -c "
	grep -qx 'max-uploads = 5' $T/o.out && grep -qx 'listen = 127.0.0.1:3' $T/o.out &&
	! grep -q 'listen = 127.0.0.1:1' $T/o.out"
"$BERTHD" -n --config "$T/conf" --no-tls=false --max-uploads=9 >"$T/f.out" 2>&1
check "--name=value on the command line, and a flag the file set turned off" sh -c "
	grep -qx 'no-tls = false' $T/f.out && grep -qx 'max-uploads = 9' $T/f.out"
printf 'data = /x\nmax-uploads = many\n' >"$T/bad1"
printf 'data = /x\n\n# fine\nlisten-on = 1\n' >"$T/bad2"
printf 'data = /x\ngc-grace = soon\n' >"$T/bad3"
printf 'data\n' >"$T/bad4"
fails=0
for f in bad1:2 bad2:4 bad3:2 bad4:1; do
	"$BERTHD" -n --config "$T/${f%:*}" >"$T/e.out" 2>&1
	rc=$?
	[ "$rc" = 2 ] && grep -q "^berthd: $T/${f%:*}:${f#*:}: " "$T/e.out" &&
	    [ "$(wc -l <"$T/e.out")" -eq 1 ] || { fails=$((fails + 1)); sed 's/^/# /' "$T/e.out"; }
done
check "bad files: exit 2 and one line naming file and line" [ "$fails" -eq 0 ]
"$BERTHD" -n --config "$T/none" >"$T/e2.out" 2>&1
check "a missing --config file is an error" sh -c "[ $? = 2 ] && grep -q 'No such file' $T/e2.out"
"$BERTHD" -n --data "$T/d" --htpasswd "$T/none" >"$T/e3.out" 2>&1
check "-n also checks the files options name" sh -c "[ $? = 2 ] && grep -q 'none' $T/e3.out"

# A berthd started from a file alone.
cat >"$T/run.conf" <<C
data = $T/rdata
listen = 127.0.0.1:0
no-tls = true
C
"$BERTHD" --config "$T/run.conf" >"$T/berthd.log" 2>&1 &
BERTHD_PID=$!
URL=$(listening_url "$T/berthd.log")
check "berthd runs from a configuration file" sh -c "curl -sf $URL/v2/ | grep -qx '{}'"
check "/healthz and /readyz answer 200, unauthenticated" sh -c "
	curl -sf $URL/healthz | grep -q alive && curl -sf $URL/readyz | grep -q '\"ready\"' &&
	[ \$(curl -s -o /dev/null -w '%{http_code}' -I $URL/readyz) = 200 ]"
berthd_stop

if command -v htpasswd >/dev/null; then
	htpasswd -cbB -C 5 "$T/ht" alice pw 2>/dev/null
	berthd_start --no-tls --htpasswd "$T/ht" --token --token-realm https://registry.example/token
	check "--token-realm is the challenge's realm (a TLS proxy in front of --no-tls)" sh -c "
		curl -s -D - -o /dev/null $URL/v2/ | tr -d '\r' |
		grep -qx 'WWW-Authenticate: Bearer realm=\"https://registry.example/token\",service=\"berth\"'"
	berthd_stop
fi

if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	mkdir -p "$T/small"
	unshare -m sh -c "mount -t tmpfs -o size=64m tmpfs $T/small &&
		$BERTHD --data $T/small/d --listen 127.0.0.1:0 --no-tls >$T/small.log 2>&1 &
		p=\$!
		sleep 1
		u=\$(sed -n 's/.*listening on \([^ ]*\) .*/\1/p' $T/small.log)
		curl -s -o $T/ready.out -w '%{http_code}' \${u%/}/readyz >$T/ready.code
		kill \$p; wait \$p"
	check "/readyz says 503 and why on a nearly full disk" sh -c "
		[ \$(cat $T/ready.code) = 503 ] && grep -q 'disk is nearly full' $T/ready.out"
fi

if [ "$(id -u)" = 0 ] && [ ! -e /dev/log ]; then
	python3 - "$T/syslog.out" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
s.settimeout(0.5)
end = time.time() + 6
with open(sys.argv[1], "wb") as out:
    while time.time() < end:
        try:
            out.write(s.recv(4096) + b"\n")
            out.flush()
        except socket.timeout:
            pass
PY
	SL=$!
	sleep 0.5
	"$BERTHD" --data "$T/sdata" --listen 127.0.0.1:0 --no-tls --log-syslog >"$T/s.err" 2>&1 &
	SP=$!
	sleep 2
	kill "$SP"
	wait "$SP"
	wait "$SL"
	rm -f /dev/log
	check "--log-syslog sends the log to syslog, nothing to stderr" sh -c "
		grep -q 'berthd\[[0-9]*\]: berthd .* listening on' $T/syslog.out && [ ! -s $T/s.err ]"
else
	skip "--log-syslog: needs root and no syslog daemon on /dev/log"
fi
tap_end
