#!/bin/sh
# Hostile clients against a live berthd with small limits: request
# smuggling shapes, bad chunk framing, over-long lines, slow heads and
# bodies, a connection flood, a busy upload table, JSON nesting bombs and
# a 1 GiB highly compressible layer. After each attack a normal push and
# pull must still succeed, and berthd's peak memory (VmHWM) must stay under
# HOSTILE_RSS_MAX_KB. Then TLS: protocol versions and every cipher suite
# the server accepts. Prints TAP.
#
# Covered in test_api_curl.sh and not repeated here: Content-Length with
# Transfer-Encoding on a GET, a malformed request line, a malformed chunk
# on a GET, a HEAD with a body, a 20 KiB header value (431), a head that
# never ends (--header-timeout), bodies over --max-blob-size (chunked and
# not), a manifest over 4 MiB, broken JSON, TLS 1.1 and a CBC suite
# refused. test_plain_concurrency.sh covers the eviction of an idle upload
# when --max-uploads is reached.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl not installed"
command -v python3 >/dev/null || skip_all "python3 not installed"
command -v openssl >/dev/null || skip_all "openssl not installed"

# Peak resident memory allowed: 64 MiB. Under AddressSanitizer (shadow
# memory, a 256 MiB quarantine of freed blocks) the same work needs more.
if asan_build; then
	HOSTILE_RSS_MAX_KB=${HOSTILE_RSS_MAX_KB:-786432}
else
	HOSTILE_RSS_MAX_KB=${HOSTILE_RSS_MAX_KB:-65536}
fi
BIG_BYTES=${BIG_BYTES:-1073741824}

MAXCONN=12
berthd_start --header-timeout 3 --io-timeout 2 --max-connections $MAXCONN \
	--max-uploads 2 --max-headers 32 --max-url-bytes 2048
C="curl -s --cacert $CA"
CURL_OPTS="--cacert $CA"

# The raw client: a TLS socket that writes exact bytes and reads the
# answer until the server closes (or a timeout).
cat >"$T/raw.py" <<'PY'
import socket, ssl, sys, time

def connect(hp):
    host, port = hp.rsplit(':', 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((host, int(port)), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=host)

def read_to_eof(s, limit):
    """Reads until EOF or limit seconds; returns (bytes, eof, seconds)."""
    t0 = time.monotonic()
    out = b''
    eof = False
    while time.monotonic() - t0 < limit:
        s.settimeout(max(0.05, limit - (time.monotonic() - t0)))
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        except (ConnectionError, ssl.SSLError, OSError):
            eof = True
            break
        if not b:
            eof = True
            break
        out += b
    return out, eof, time.monotonic() - t0

def status(resp):
    line = resp.split(b'\r\n', 1)[0].split(b' ')
    return line[1].decode() if len(line) > 1 else '-'

def request(s, data):
    """Sends one keep-alive request; returns the status of its answer."""
    s.sendall(data)
    s.settimeout(10)
    buf = b''
    while b'\r\n\r\n' not in buf:
        b = s.recv(65536)
        if not b:
            return '-'
        buf += b
    head, body = buf.split(b'\r\n\r\n', 1)
    n = 0
    for l in head.split(b'\r\n')[1:]:
        k, _, v = l.partition(b':')
        if k.strip().lower() == b'content-length':
            n = int(v)
    while len(body) < n:
        body += s.recv(65536)
    return status(buf)

def send(hp, limit):
    """stdin's bytes in one write: prints 'STATUS eof|open SECONDS'."""
    s = connect(hp)
    s.sendall(sys.stdin.buffer.read())
    out, eof, secs = read_to_eof(s, limit)
    print(status(out), 'eof' if eof else 'open', '%.1f' % secs)

def dribble(hp, limit, gap):
    """stdin's bytes one at a time, gap seconds apart, until the server
    closes: prints 'closed|open SECONDS'."""
    data = sys.stdin.buffer.read()
    s = connect(hp)
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < limit:
        try:
            s.sendall(data[i % len(data):i % len(data) + 1])
        except (ConnectionError, ssl.SSLError, OSError):
            print('closed', '%.1f' % (time.monotonic() - t0))
            return
        i += 1
        s.settimeout(gap)
        try:
            if s.recv(65536) == b'':
                print('closed', '%.1f' % (time.monotonic() - t0))
                return
        except socket.timeout:
            pass
        except (ConnectionError, ssl.SSLError, OSError):
            print('closed', '%.1f' % (time.monotonic() - t0))
            return
    print('open', '%.1f' % (time.monotonic() - t0))

def flood(hp, n):
    """A keep-alive client, then n bare TCP connections: prints the
    client's status before, how many of the n were closed at once, the
    client's status after, and a new client's status once they are gone."""
    get = b'GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'
    k = connect(hp)
    first = request(k, get)
    host, port = hp.rsplit(':', 1)
    socks = [socket.create_connection((host, int(port))) for _ in range(n)]
    time.sleep(0.5)
    closed = 0
    for s in socks:
        s.settimeout(0.05)
        try:
            if s.recv(1) == b'':
                closed += 1
        except socket.timeout:
            pass
        except (ConnectionError, OSError):
            closed += 1
    second = request(k, get)
    for s in socks:
        s.close()
    time.sleep(0.5)
    print(first, closed, second, request(connect(hp), get))

def uploads(hp, loc1, loc2):
    """Two uploads kept busy by bodies half sent, a POST beside them, then
    the two bodies finished: prints the three statuses and the POST body."""
    body = b'x' * 100
    conns = []
    for loc in (loc1, loc2):
        s = connect(hp)
        s.sendall(b'PATCH ' + loc.encode() + b' HTTP/1.1\r\nHost: x\r\n'
                  b'Content-Length: 100\r\n\r\n' + body[:10])
        conns.append(s)
    time.sleep(0.3)
    p = connect(hp)
    p.sendall(b'POST /v2/hostile/up/blobs/uploads/ HTTP/1.1\r\nHost: x\r\n'
              b'Connection: close\r\n\r\n')
    out, _, _ = read_to_eof(p, 5)
    res = [status(out)]
    for s in conns:
        s.sendall(body[10:])
        got, _, _ = read_to_eof(s, 1)
        res.append(status(got))
    print(res[0], res[1], res[2], out.split(b'\r\n\r\n', 1)[-1].decode())

cmd = sys.argv[1]
if cmd == 'send':
    send(sys.argv[2], float(sys.argv[3]))
elif cmd == 'dribble':
    dribble(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
elif cmd == 'flood':
    flood(sys.argv[2], int(sys.argv[3]))
elif cmd == 'uploads':
    uploads(sys.argv[2], sys.argv[3], sys.argv[4])
PY
raw() {  # raw FILE: its bytes in one write; prints "STATUS eof|open SECONDS"
	python3 "$T/raw.py" send "$HOSTPORT" 5 <"$1"
}

# refused NAME STATUS BYTES: printf-formatted BYTES get STATUS and a close
# at once, not at the header timeout (3 s).
refused() {
	name=$1 want=$2
	printf "$3" >"$T/req"
	got=$(raw "$T/req")
	case "$got" in
	"$want eof "[01].*) ok "$name: $want and close" ;;
	*) echo "# got: $got"; notok "$name: $want and close" ;;
	esac
}

vmhwm() {
	awk '$1 == "VmHWM:" {print $2}' "/proc/$BERTHD_PID/status"
}

# still_serves WHAT: berthd is alive, a push and a pull succeed, and its
# peak memory stayed under the limit.
img=0
still_serves() {
	img=$((img + 1))
	d=$T/img$img
	if kill -0 "$BERTHD_PID" 2>/dev/null &&
	    push_image "$d" hostile/ok "t$img" 300000 >"$T/push.out" 2>&1 &&
	    $C -f "$URL/v2/hostile/ok/manifests/t$img" | cmp -s - "$d/man" &&
	    $C -f "$URL/v2/hostile/ok/blobs/$(cat "$d/digest")" | cmp -s - "$d/blob"; then
		ok "after $1: a push and a pull still succeed"
	else
		notok "after $1: a push and a pull still succeed" "$T/push.out" "$T/berthd.log"
	fi
	hwm=$(vmhwm)
	check "after $1: peak RSS ${hwm:-?} KiB < $HOSTILE_RSS_MAX_KB KiB" \
		[ "${hwm:-999999999}" -lt "$HOSTILE_RSS_MAX_KB" ]
}

CL='Content-Length'
TE='Transfer-Encoding'
# ---- framing and smuggling (RFC 9112 6.1, 6.3) -----------------------------
refused "two different Content-Length" 400 \
	"POST /v2/ HTTP/1.1\r\nHost: x\r\n$CL: 1\r\n$CL: 2\r\n\r\nab"
refused "a Content-Length list (1, 1)" 400 \
	"POST /v2/ HTTP/1.1\r\nHost: x\r\n$CL: 1, 1\r\n\r\na"
refused "a signed Content-Length" 400 "POST /v2/ HTTP/1.1\r\nHost: x\r\n$CL: +1\r\n\r\na"
refused "an overflowing Content-Length" 400 \
	"POST /v2/ HTTP/1.1\r\nHost: x\r\n$CL: 99999999999999999999999\r\n\r\n"
refused "Transfer-Encoding before Content-Length" 400 \
	"POST /v2/ HTTP/1.1\r\nHost: x\r\n$TE: chunked\r\n$CL: 3\r\n\r\n0\r\n\r\n"
refused "Transfer-Encoding: chunked, chunked" 501 \
	"POST /v2/ HTTP/1.1\r\nHost: x\r\n$TE: chunked, chunked\r\n\r\n0\r\n\r\n"
refused "two Transfer-Encoding lines" 501 \
	"POST /v2/ HTTP/1.1\r\nHost: x\r\n$TE: chunked\r\n$TE: chunked\r\n\r\n0\r\n\r\n"
refused "chunked over HTTP/1.0" 400 "POST /v2/ HTTP/1.0\r\n$TE: chunked\r\n\r\n0\r\n\r\n"
refused "whitespace before a header colon" 400 \
	"POST /v2/ HTTP/1.1\r\nHost: x\r\n$CL : 1\r\n\r\na"
refused "a second Host" 400 "GET /v2/ HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"
refused "obs-fold (a header continued on the next line)" 400 \
	"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n"
refused "obs-fold with a tab" 400 "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n"
refused "a bare CR in the request line" 400 "GET /v2/ HTTP/1.1\rHost: x\r\n\r\n"
refused "a bare CR inside a header" 400 "GET /v2/ HTTP/1.1\r\nHost: x\rX: y\r\n\r\n"
refused "a bare LF among CRLF lines" 400 "GET /v2/ HTTP/1.1\r\nHost: x\nX: y\r\n\r\n"
refused "bare LF line ends only" 400 "GET /v2/ HTTP/1.1\nHost: x\n\n"
refused "a NUL in a header value" 400 "GET /v2/ HTTP/1.1\r\nHost: x\r\nX: a\000b\r\n\r\n"
refused "an absolute-form target" 400 "GET https://x/v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
refused "HTTP/2.0 in the request line" 505 "GET /v2/ HTTP/2.0\r\n\r\n"
refused "an Expect other than 100-continue" 417 \
	"GET /v2/ HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n"

# Chunk framing, on a real upload (its body is read).
chunked_bad() {
	name=$1
	loc=$($C -X POST -D - -o /dev/null "$URL/v2/hostile/chunk/blobs/uploads/" |
	    sed -n 's/^Location: *//Ip' | tr -d '\r')
	printf "PATCH %s HTTP/1.1\r\nHost: x\r\n$TE: chunked\r\n\r\n$2" "$loc" >"$T/req"
	got=$(raw "$T/req")
	case "$got" in
	"400 eof "[01].*) ok "chunked body, $name: 400 and close" ;;
	*) echo "# got: $got"; notok "chunked body, $name: 400 and close" ;;
	esac
}
chunked_bad "a chunk size overflowing 64 bits" 'fffffffffffffffffffff\r\n'
chunked_bad "16 hex digits" '1000000000000000\r\nabc'
chunked_bad "a negative chunk size" '-1\r\nabc\r\n0\r\n\r\n'
chunked_bad "a 0x prefix" '0x3\r\nabc\r\n0\r\n\r\n'
chunked_bad "space after the size" '3 \r\nabc\r\n0\r\n\r\n'
chunked_bad "no CRLF after the data" '3\r\nabcX\r\n0\r\n\r\n'
chunked_bad "a bare LF after the size" '3\nabc\r\n0\r\n\r\n'
chunked_bad "an empty size line" '\r\nabc\r\n0\r\n\r\n'
chunked_bad "a size line over 1 KiB of extensions" \
	"3;$(head -c 1100 /dev/zero | tr '\0' e)\r\nabc\r\n0\r\n\r\n"
chunked_bad "trailers over 8 KiB" \
	"0\r\n$(for i in $(seq 1 300); do printf 'X-T%03d: %s\\r\\n' "$i" aaaaaaaaaaaaaaaaaaaaaaa; done)\r\n"

# Over-long lines and floods (--max-header-bytes 16 KiB default,
# --max-headers 32, --max-url-bytes 2048).
long=$(head -c 20000 /dev/zero | tr '\0' a)
refused "a request line of 20 KB without an end" 431 "GET /$long"
refused "a target of 3000 bytes" 414 "GET /v2/$(echo "$long" | head -c 3000) HTTP/1.1\r\nHost: x\r\n\r\n"
refused "a header line of 20 KB without an end" 431 "GET /v2/ HTTP/1.1\r\nX-Long: $long"
refused "40 header lines (over --max-headers 32)" 431 \
	"GET /v2/ HTTP/1.1\r\n$(for i in $(seq 1 40); do printf 'X-H%d: v\\r\\n' "$i"; done)\r\n"
refused "a head of 2000 tiny headers" 431 \
	"GET /v2/ HTTP/1.1\r\n$(for i in $(seq 1 2000); do printf 'X:\\r\\n'; done)\r\n"
s=$($C -o /dev/null -w '%{http_code}' "$URL/v2/hostile/$(echo "$long" | head -c 10000)/tags/list")
check "curl with a 10 KB URL: 414" [ "$s" = 414 ]
still_serves "framing attacks"

# ---- slow clients -----------------------------------------------------------
printf 'GET /v2/ HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa' >"$T/slow"
got=$(python3 "$T/raw.py" dribble "$HOSTPORT" 10 0.2 <"$T/slow")
check "slowloris: a head dribbled a byte per 0.2 s is cut at --header-timeout 3 ($got)" \
	sh -c "case '$got' in 'closed '[2-5].*) exit 0;; esac; exit 1"
loc=$($C -X POST -D - -o /dev/null "$URL/v2/hostile/slow/blobs/uploads/" |
	sed -n 's/^Location: *//Ip' | tr -d '\r')
printf "PATCH %s HTTP/1.1\r\nHost: x\r\n$CL: 1000\r\n\r\n0123456789" "$loc" >"$T/req"
got=$(python3 "$T/raw.py" send "$HOSTPORT" 8 <"$T/req")
check "a body that stalls is cut at --io-timeout 2 ($got)" \
	sh -c "case '$got' in *' eof '[1-4].*) exit 0;; esac; exit 1"
still_serves "slow clients"

# ---- connection flood (--max-connections 12) --------------------------------
got=$(python3 "$T/raw.py" flood "$HOSTPORT" $((MAXCONN + 8)))
set -- $got
check "a flood of $((MAXCONN + 8)) connections: the keep-alive client is served before (${1:-?}) and after (${3:-?})" \
	sh -c "[ '${1:-}' = 200 ] && [ '${3:-}' = 200 ]"
check "... the connections beyond the limit are closed at once (${2:-?} of $((MAXCONN + 8)))" \
	sh -c "[ '${2:-0}' -ge 8 ]"
check "... a new client is served once the flood is gone (${4:-?})" [ "${4:-}" = 200 ]
check "... and berthd logged the refusals" grep -q 'connection limit (12) reached' "$T/berthd.log"
still_serves "a connection flood"

# ---- a busy upload table (--max-uploads 2) ----------------------------------
post_loc() {
	$C -X POST -D - -o /dev/null "$URL/v2/hostile/up/blobs/uploads/" |
	    sed -n 's/^Location: *//Ip' | tr -d '\r'
}
U1=$(post_loc)
U2=$(post_loc)
got=$(python3 "$T/raw.py" uploads "$HOSTPORT" "$U1" "$U2")
set -- $got
check "two uploads busy with bodies: a third POST gets 429 TOOMANYREQUESTS (${1:-?})" \
	sh -c "[ '${1:-}' = 429 ] && echo '$got' | grep -q TOOMANYREQUESTS"
check "... and both busy uploads finish their PATCH: 202 (${2:-?} ${3:-?})" \
	sh -c "[ '${2:-}' = 202 ] && [ '${3:-}' = 202 ]"
head -c 100 /dev/zero | tr '\0' x >"$T/x100"
XD="sha256:$(sha256sum "$T/x100" | cut -d' ' -f1)"
s1=$($C -o /dev/null -w '%{http_code}' -X PUT "$URL$U1?digest=$XD")
s2=$($C -o /dev/null -w '%{http_code}' -X PUT "$URL$U2?digest=$XD")
check "... and complete: 201 201 ($s1 $s2)" sh -c "[ $s1 = 201 ] && [ $s2 = 201 ]"
still_serves "a busy upload table"

# ---- JSON bombs and nested indexes -----------------------------------------
MT=application/vnd.oci.image.manifest.v1+json
IT=application/vnd.oci.image.index.v1+json
head -c 100000 /dev/zero | tr '\0' '[' >"$T/bomb"
put_manifest() {  # put_manifest FILE TYPE TAG: prints "STATUS SECONDS"
	$C -o "$T/body" -w '%{http_code} %{time_total}' -X PUT --data-binary @"$1" \
	    -H "Content-Type: $2" "$URL/v2/hostile/json/manifests/$3"
}
quick_invalid() {  # quick_invalid NAME "STATUS SECONDS"
	set -- "$1" $2
	check "$1: 400 MANIFEST_INVALID in ${3:-?} s" sh -c "[ '$2' = 400 ] &&
	    grep -q 'code.:.MANIFEST_INVALID' $T/body && awk 'BEGIN{exit !(${3:-99} < 2)}'"
}
quick_invalid "100 000 '[' as a manifest" "$(put_manifest "$T/bomb" "$MT" bomb)"
{ head -c 100000 /dev/zero | tr '\0' '{' | sed 's/{/{"a":/g'; } >"$T/bomb2"
quick_invalid "100 000 nested objects as an index" "$(put_manifest "$T/bomb2" "$IT" bomb2)"
python3 - "$T/nested" <<'PY'
import sys
# An index whose first child descriptor nests an index 20 000 deep.
depth = 20000
inner = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
with open(sys.argv[1], 'w') as f:
    f.write(inner * depth + ']}' * depth)
PY
quick_invalid "an index of indexes nested 20 000 deep" "$(put_manifest "$T/nested" "$IT" nested)"
wide() {  # wide N FILE: an index listing N children that do not exist
	python3 - "$1" "$2" <<'PY'
import sys
d = '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%064x","size":1}'
with open(sys.argv[2], 'w') as f:
    f.write('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[' +
            ','.join(d % i for i in range(1, int(sys.argv[1]) + 1)) + ']}')
PY
}
wide 20000 "$T/wide"
quick_invalid "an index of 20 000 children (over its cap of 4096)" "$(put_manifest "$T/wide" "$IT" wide)"
wide 4096 "$T/wide"
got=$(put_manifest "$T/wide" "$IT" wide)
check "an index of 4096 unknown children: 400 MANIFEST_BLOB_UNKNOWN in ${got#* } s" \
	sh -c "[ '${got%% *}' = 400 ] && grep -q MANIFEST_BLOB_UNKNOWN $T/body &&
	    awk 'BEGIN{exit !(${got#* } < 5)}'"
still_serves "JSON bombs"

# ---- a 1 GiB layer of zeros, streamed (chunked) -----------------------------
used() {
	"$top_builddir/tools/berth-stat" --data "$DATA" | awk '$1 == "map_used" {print $2}'
}
u0=$(used)
if [ "$BIG_BYTES" = 1073741824 ]; then
	BD=sha256:49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14
else
	BD="sha256:$(head -c "$BIG_BYTES" /dev/zero | openssl dgst -sha256 -r | cut -d' ' -f1)"
fi
loc=$(post_loc)
t0=$(date +%s)
s=$(head -c "$BIG_BYTES" /dev/zero |
	$C -o /dev/null -w '%{http_code}' -X PATCH -T - "$URL$loc")
s2=$($C -o /dev/null -w '%{http_code}' -X PUT "$URL$loc?digest=$BD")
check "a layer of $BIG_BYTES zero bytes streamed chunked: 202 then 201 ($s $s2, $(($(date +%s) - t0)) s)" \
	sh -c "[ $s = 202 ] && [ $s2 = 201 ]"
s=$($C -o /dev/null -D "$T/hdrs" -w '%{http_code}' -I "$URL/v2/hostile/up/blobs/$BD")
check "... its HEAD reports the full length" \
	sh -c "[ $s = 200 ] && grep -qi '^Content-Length: $BIG_BYTES' $T/hdrs"
u1=$(used)
check "... and it takes under 1% of its size in the store ($((u1 - u0)) bytes)" \
	[ $((u1 - u0)) -lt $((BIG_BYTES / 100)) ]
s=$($C -o "$T/tail" -w '%{http_code}' -H "Range: bytes=$((BIG_BYTES - 1000))-" \
	"$URL/v2/hostile/up/blobs/$BD")
check "... and its last 1000 bytes read back: 206, zeros" \
	sh -c "[ $s = 206 ] && head -c 1000 /dev/zero | cmp -s - $T/tail"
still_serves "a 1 GiB compressible layer"

# ---- TLS (beyond test_api_curl.sh) ------------------------------------------
tls() {  # tls VERSION: s_client's handshake at that version, certificate verified
	echo Q | timeout 10 openssl s_client -connect "$HOSTPORT" "-$1" -CAfile "$CA" \
	    -verify_return_error >"$T/tls.out" 2>&1
}
check "TLS 1.0 is refused, even offering every suite" sh -c "! $(command -v openssl) s_client \
	-connect $HOSTPORT -tls1 -cipher 'ALL:@SECLEVEL=0' </dev/null >/dev/null 2>&1"
check "TLS 1.1 is refused, even offering every suite" sh -c "! $(command -v openssl) s_client \
	-connect $HOSTPORT -tls1_1 -cipher 'ALL:@SECLEVEL=0' </dev/null >/dev/null 2>&1"
tls tls1_2
check "TLS 1.2 is accepted by s_client, certificate verified" grep -q 'New, TLSv1.2,' "$T/tls.out"
tls tls1_3
check "TLS 1.3 is accepted by s_client, certificate verified" grep -q 'New, TLSv1.3,' "$T/tls.out"
for class in RC4 3DES NULL eNULL aNULL EXPORT LOW MD5 SHA1 non-AEAD RSA PSK; do
	case $class in
	non-AEAD) spec='ALL:COMPLEMENTOFALL:!AESGCM:!ARIAGCM:!CHACHA20:!AESCCM:@SECLEVEL=0' ;;
	RSA) spec='kRSA:@SECLEVEL=0' ;;
	*) spec="$class:@SECLEVEL=0" ;;
	esac
	if ! openssl ciphers "$spec" >/dev/null 2>&1; then
		ok "TLS 1.2 with only $class suites # SKIP this OpenSSL offers none"
		continue
	fi
	check "TLS 1.2 offering only $class suites is refused" \
		sh -c "! $(command -v openssl) s_client -connect $HOSTPORT -tls1_2 \
		    -cipher '$spec' </dev/null >/dev/null 2>&1"
done
# Every suite this OpenSSL knows, one at a time over TLS 1.2: the accepted
# ones must all be ECDHE with an AEAD cipher.
python3 - "$HOSTPORT" >"$T/suites" 2>&1 <<'PY'
import socket, ssl, subprocess, sys
host, port = sys.argv[1].rsplit(':', 1)
names = subprocess.run(['openssl', 'ciphers', 'ALL:COMPLEMENTOFALL:@SECLEVEL=0'],
                       capture_output=True, text=True).stdout.strip().split(':')
for n in names:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.set_ciphers(n + ':@SECLEVEL=0')
    except ssl.SSLError:
        continue
    try:
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                print('accepted', s.cipher()[0])
    except (ssl.SSLError, OSError):
        print('refused', n)
PY
acc=$(grep -c '^accepted' "$T/suites")
check "every TLS 1.2 suite tried ($(wc -l <"$T/suites")): the $acc accepted are ECDHE with AES-GCM or ChaCha20-Poly1305" \
	sh -c "[ $acc -ge 1 ] && ! grep '^accepted' $T/suites |
	    grep -v -E '^accepted ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$'"
still_serves "TLS probes"

check "berthd is still the process started at the beginning" kill -0 "$BERTHD_PID"
tap_end
