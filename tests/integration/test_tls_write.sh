#!/bin/sh
# berthd's TLS answers pass through a write buffer (HTTP_TLS_WBUF_BYTES,
# src/http/server.c) that must be flushed at the end of every answer,
# also when the socket is full at that moment. berthd runs with a shim
# (LD_PRELOAD) that gives each accepted socket an 8 KiB send buffer, so
# that the end of an answer must wait for the socket: the blob must still
# arrive whole, at a reader with a 4 KiB receive buffer too, the next
# answer on the same connection as well, and berthd's debug log must show
# that a flush did wait (or the test proves nothing). Without a C
# compiler there is no shim, and that check is skipped.
# Also: a 100 Continue is not held back in the buffer. Prints TAP.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl not installed"
command -v python3 >/dev/null || skip_all "python3 not installed"

shim=
if command -v "${CC:-cc}" >/dev/null; then
	cat >"$T/sndbuf.c" <<'EOF_C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>

static int
small(int s)
{
	int v = 8192;

	if (s >= 0)
		(void)setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	return s;
}

int
accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	int (*real)(int, struct sockaddr *, socklen_t *, int) =
	    (int (*)(int, struct sockaddr *, socklen_t *, int))
	    dlsym(RTLD_NEXT, "accept4");

	return small(real(fd, sa, len, flags));
}

int
accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	int (*real)(int, struct sockaddr *, socklen_t *) =
	    (int (*)(int, struct sockaddr *, socklen_t *))
	    dlsym(RTLD_NEXT, "accept");

	return small(real(fd, sa, len));
}
EOF_C
	"${CC:-cc}" -shared -fPIC -o "$T/sndbuf.so" "$T/sndbuf.c" -ldl &&
	    shim=$T/sndbuf.so
fi
if [ -n "$shim" ]; then
	# AddressSanitizer wants its runtime first; the shim only wraps
	# accept, which it does not intercept.
	asan_build && export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
	LD_PRELOAD=$shim berthd_start --log-level debug
else
	berthd_start --log-level debug
fi
C="curl -sf --cacert $CA"

# A 3 MB layer, pushed in one monolithic upload.
head -c 3000000 /dev/urandom >"$T/blob"
D="sha256:$(sha256sum "$T/blob" | cut -d' ' -f1)"
$C -X POST --data-binary @"$T/blob" -H "Content-Type: application/octet-stream" \
    -o /dev/null "$URL/v2/tls/write/blobs/uploads/?digest=$D"
check "the layer is stored" $C -I -o /dev/null "$URL/v2/tls/write/blobs/$D"

cat >"$T/slow.py" <<'PY'
import hashlib, socket, ssl, sys

host, port, path, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(30)
s.connect((host, port))
ctx = ssl.create_default_context(cafile=ca)
t = ctx.wrap_socket(s, server_hostname=host)
buf = b""

def answer(req):
    global buf
    t.sendall(req.encode())
    while b"\r\n\r\n" not in buf:
        d = t.recv(4096)
        if not d:
            raise SystemExit("closed in the head")
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    n = 0
    for l in lines[1:]:
        k, v = l.split(":", 1)
        if k.strip().lower() == "content-length":
            n = int(v)
    h = hashlib.sha256()
    got = 0
    while got < n:
        if not buf:
            buf = t.recv(4096)
            if not buf:
                raise SystemExit("closed in the body")
        take = buf[: n - got]
        buf = buf[len(take):]
        h.update(take)
        got += len(take)
    return lines[0].split()[1], "sha256:" + h.hexdigest()

req = "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n"
print(*answer(req % (path, host)))
print(*answer(req % ("/v2/", host)))
PY
python3 "$T/slow.py" 127.0.0.1 "${HOSTPORT##*:}" "/v2/tls/write/blobs/$D" "$CA" \
    >"$T/slow.out" 2>"$T/slow.err"
check "a reader with a 4 KiB receive buffer gets the whole layer ($(head -n 1 "$T/slow.out" | cut -c1-24))" \
    [ "$(sed -n 1p "$T/slow.out")" = "200 $D" ]
check "... and the next answer on the same connection" \
    sh -c "sed -n 2p $T/slow.out | grep -q '^200 '"
if [ -n "$shim" ]; then
	check "... while the end of an answer waited for the socket (berthd's log)" \
	    grep -q "wait for the socket" "$T/berthd.log"
else
	skip "the end of an answer waiting for the socket (no C compiler for the send-buffer shim)"
fi

# A 100 Continue is sent at once: curl would wait a second for it.
loc=$($C -X POST -D - -o /dev/null "$URL/v2/tls/write/blobs/uploads/" |
    sed -n 's/^Location: *//Ip' | tr -d '\r')
t=$($C -H 'Expect: 100-continue' -X PATCH -T "$T/blob" -o /dev/null \
    -w '%{time_total}' "$URL$loc")
check "a PATCH that expects 100 Continue gets it at once ($t s)" \
    python3 -c "import sys; sys.exit(0 if float('$t') < 0.8 else 1)"
berthd_stop
tap_end
