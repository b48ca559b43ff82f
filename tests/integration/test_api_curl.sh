#!/bin/sh
# The API edge by edge with curl against a real berthd over TLS: uploads
# (streamed, chunked, monolithic, mount), ranges, resume after restart,
# manifests and tags, listings, and the error answers. Prints TAP.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl not installed"

berthd_start --max-blob-size 8000000 --header-timeout 3
C="curl -s --cacert $CA"

# status METHOD PATH [curl args...]: prints the HTTP status only.
status() {
	m=$1 p=$2
	shift 2
	$C -o "$T/body" -D "$T/hdrs" -w '%{http_code}' -X "$m" "$@" "$URL$p"
}
hdr() {
	sed -n "s/^$1: *//Ip" "$T/hdrs" | tr -d '\r' | head -n 1
}
sha() {
	echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"
}

head -c 3000000 /dev/urandom >"$T/blob"
D=$(sha "$T/blob")

check "GET /v2/ answers 200 with the API version header, certificate verified" \
	sh -c "[ \$($C -o /dev/null -D $T/h0 -w '%{http_code}' $URL/v2/) = 200 ] &&
	    grep -qi '^Docker-Distribution-API-Version: registry/2.0' $T/h0"

# Docker-style: POST, one streamed PATCH, PUT ?digest=.
s=$(status POST /v2/it/app/blobs/uploads/)
LOC=$(hdr Location)
check "POST starts an upload: 202, Location, Docker-Upload-UUID, Range 0-0" \
	sh -c "[ $s = 202 ] && [ -n '$LOC' ] && [ -n '$(hdr Docker-Upload-UUID)' ] &&
	    [ '$(hdr Range)' = 0-0 ]"
s=$(status PATCH "$LOC" --data-binary @"$T/blob" -H 'Content-Type: application/octet-stream')
check "PATCH streams the body: 202 with Range 0-2999999" \
	sh -c "[ $s = 202 ] && [ '$(hdr Range)' = 0-2999999 ]"
s=$(status GET "$LOC")
check "GET on the upload reports its offset: 204, Range" \
	sh -c "[ $s = 204 ] && [ '$(hdr Range)' = 0-2999999 ]"
s=$(status PUT "$LOC?digest=sha256:0000000000000000000000000000000000000000000000000000000000000000")
check "PUT with the wrong digest: 400 DIGEST_INVALID, nothing stored" \
	sh -c "[ $s = 400 ] && grep -q DIGEST_INVALID $T/body &&
	    [ \$($C -o /dev/null -w '%{http_code}' -I $URL/v2/it/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000) = 404 ]"
s=$(status PUT "$LOC?digest=$D")
check "PUT with the right digest: 201, Location, Docker-Content-Digest" \
	sh -c "[ $s = 201 ] && [ '$(hdr Docker-Content-Digest)' = '$D' ] &&
	    [ '$(hdr Location)' = '/v2/it/app/blobs/$D' ]"
s=$(status GET "$LOC")
check "the finished upload is gone: 404 BLOB_UPLOAD_UNKNOWN" \
	sh -c "[ $s = 404 ] && grep -q BLOB_UPLOAD_UNKNOWN $T/body"

check "GET returns the blob byte for byte" \
	sh -c "$C $URL/v2/it/app/blobs/$D | cmp - $T/blob"
s=$(status HEAD "/v2/it/app/blobs/$D" -I)
check "HEAD: 200, Content-Length, Docker-Content-Digest" \
	sh -c "[ $s = 200 ] && [ '$(hdr Content-Length)' = 3000000 ] &&
	    [ '$(hdr Docker-Content-Digest)' = '$D' ]"
s=$(status GET "/v2/it/app/blobs/$D" -H 'Range: bytes=2999990-')
check "Range bytes=2999990-: 206, Content-Range, last 10 bytes" \
	sh -c "[ $s = 206 ] && [ '$(hdr Content-Range)' = 'bytes 2999990-2999999/3000000' ] &&
	    tail -c 10 $T/blob | cmp - $T/body"
s=$(status GET "/v2/it/app/blobs/$D" -H 'Range: bytes=1048000-1049999')
check "Range across a chunk boundary: 206 and the right 2000 bytes" \
	sh -c "[ $s = 206 ] && dd if=$T/blob bs=1 skip=1048000 count=2000 2>/dev/null | cmp - $T/body"
s=$(status GET "/v2/it/app/blobs/$D" -H 'Range: bytes=3000000-')
check "Range past the end: 416 with Content-Range bytes */size" \
	sh -c "[ $s = 416 ] && [ '$(hdr Content-Range)' = 'bytes */3000000' ]"
s=$(status GET "/v2/other/blobs/$D")
check "a blob is not readable from a repository it is not linked to" \
	sh -c "[ $s = 404 ] && grep -q BLOB_UNKNOWN $T/body"

# Chunked upload with Content-Range, out of order refused.
head -c 100000 "$T/blob" >"$T/part1"
tail -c +100001 "$T/blob" | head -c 50000 >"$T/part2"
s=$(status POST /v2/it/chunks/blobs/uploads/)
LOC=$(hdr Location)
s=$(status PATCH "$LOC" --data-binary @"$T/part1" -H 'Content-Range: 0-99999')
check "PATCH with Content-Range 0-99999: 202" sh -c "[ $s = 202 ]"
s=$(status PATCH "$LOC" --data-binary @"$T/part2" -H 'Content-Range: 200000-249999')
check "PATCH out of order: 416 with the current Range" \
	sh -c "[ $s = 416 ] && [ '$(hdr Range)' = 0-99999 ]"
s=$(status PATCH "$LOC" --data-binary @"$T/part2" -H 'Content-Range: 100000-149999' \
	-H 'Transfer-Encoding: chunked')
check "PATCH in order, body sent chunked: 202 Range 0-149999" \
	sh -c "[ $s = 202 ] && [ '$(hdr Range)' = 0-149999 ]"
cat "$T/part1" "$T/part2" >"$T/both"
s=$(status PUT "$LOC?digest=$(sha "$T/both")")
check "PUT completes the chunked upload: 201" sh -c "[ $s = 201 ]"

# DELETE cancels an upload.
s=$(status POST /v2/it/cancel/blobs/uploads/)
LOC=$(hdr Location)
s=$(status PATCH "$LOC" --data-binary @"$T/part1")
s=$(status DELETE "$LOC")
s2=$(status GET "$LOC")
check "DELETE on an upload cancels it: 204, then 404 BLOB_UPLOAD_UNKNOWN" \
	sh -c "[ $s = 204 ] && [ $s2 = 404 ] && grep -q 'code.:.BLOB_UPLOAD_UNKNOWN' $T/body"

# Monolithic POST ?digest= and cross-repository mount.
head -c 5000 /dev/urandom >"$T/small"
s=$(status POST "/v2/it/mono/blobs/uploads/?digest=$(sha "$T/small")" \
	--data-binary @"$T/small" -H 'Content-Type: application/octet-stream')
check "monolithic POST ?digest= with body: 201" sh -c "[ $s = 201 ]"
head -c 4000 /dev/urandom >"$T/small2"
s=$(status POST "/v2/it/mono/blobs/uploads?digest=$(sha "$T/small2")" \
	--data-binary @"$T/small2" -H 'Content-Type: application/octet-stream')
check "POST .../blobs/uploads without the trailing slash: 201, readable" \
	sh -c "[ $s = 201 ] && $C $URL/v2/it/mono/blobs/$(sha "$T/small2") | cmp - $T/small2"
s=$(status POST "/v2/it/mounted/blobs/uploads/?mount=$D&from=it/app")
check "mount from a repository holding the blob: 201, then readable" \
	sh -c "[ $s = 201 ] && $C $URL/v2/it/mounted/blobs/$D | cmp - $T/blob"
s=$(status POST "/v2/it/mounted2/blobs/uploads/?mount=$D&from=it/nothing")
check "mount from a repository without it: 202, an ordinary upload" \
	sh -c "[ $s = 202 ] && [ -n '$(hdr Location)' ]"

# Resume after a restart.
s=$(status POST /v2/it/resume/blobs/uploads/)
LOC=$(hdr Location)
s=$(status PATCH "$LOC" --data-binary @"$T/part1")
berthd_stop
berthd_start --max-blob-size 8000000 --header-timeout 3
C="curl -s --cacert $CA"
s=$(status GET "$LOC")
check "after a restart the upload reports its offset: 204 Range 0-99999" \
	sh -c "[ $s = 204 ] && [ '$(hdr Range)' = 0-99999 ]"
s=$(status PATCH "$LOC" --data-binary @"$T/part2")
s=$(status PUT "$LOC?digest=$(sha "$T/both")")
check "and continues to the right digest: 201" \
	sh -c "[ $s = 201 ] && $C $URL/v2/it/resume/blobs/$(sha "$T/both") | cmp - $T/both"

# Limits.
head -c 9000000 /dev/zero >"$T/big"
s=$(status POST /v2/it/big/blobs/uploads/)
LOC=$(hdr Location)
s=$(status PATCH "$LOC" --data-binary @"$T/big" -H 'Expect: 100-continue')
check "a body over --max-blob-size is refused before it is read: 413 SIZE_INVALID" \
	sh -c "[ $s = 413 ] && grep -q 'code.:.SIZE_INVALID' $T/body"
s=$(status POST /v2/it/big2/blobs/uploads/)
LOC=$(hdr Location)
s=$(status PATCH "$LOC" --data-binary @"$T/big" -H 'Transfer-Encoding: chunked')
check "a chunked body crossing --max-blob-size: 413, received (not a reset)" sh -c "[ $s = 413 ]"

# Manifests and tags.
printf '{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/cfg"
s=$(status POST "/v2/it/app/blobs/uploads/?digest=$(sha "$T/cfg")" --data-binary @"$T/cfg")
cat >"$T/m1" <<M
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$(sha "$T/cfg")","size":$(stat -c %s "$T/cfg")},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$D","size":3000000}]}
M
MT=application/vnd.oci.image.manifest.v1+json
s=$(status PUT /v2/it/app/manifests/v1 --data-binary @"$T/m1" -H "Content-Type: $MT")
M1=$(sha "$T/m1")
check "manifest PUT by tag: 201 with its digest" \
	sh -c "[ $s = 201 ] && [ '$(hdr Docker-Content-Digest)' = '$M1' ]"
s=$(status GET /v2/it/app/manifests/v1 -H "Accept: $MT")
check "manifest GET by tag: the exact bytes, media type and digest" \
	sh -c "[ $s = 200 ] && cmp $T/body $T/m1 && [ '$(hdr Content-Type)' = '$MT' ] &&
	    [ '$(hdr Docker-Content-Digest)' = '$M1' ]"
s=$(status GET /v2/it/app/manifests/v1 -H 'Accept: application/vnd.docker.distribution.manifest.v2+json')
check "Accept without the manifest's media type: 404 MANIFEST_UNKNOWN (no conversion)" \
	sh -c "[ $s = 404 ] && grep -q 'code.:.MANIFEST_UNKNOWN' $T/body"
s=$(status GET /v2/it/app/manifests/v1 -H "Accept: application/vnd.docker.distribution.manifest.v2+json, $MT;q=0.9")
check "Accept listing it among others: 200" sh -c "[ $s = 200 ] && cmp $T/body $T/m1"
s=$(status GET /v2/it/app/manifests/v1 -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' -H "Accept: $MT")
check "Accept split over several header lines, as dockerd sends it: 200" sh -c "[ $s = 200 ]"
s=$(status HEAD /v2/it/app/manifests/$M1 -I)
check "manifest HEAD by digest: 200" sh -c "[ $s = 200 ]"
sed 's/"size":3000000/"size":3000000,"annotations":{"n":"2"}/' "$T/m1" >"$T/m2"
s=$(status PUT /v2/it/app/manifests/v1 --data-binary @"$T/m2" -H "Content-Type: $MT")
s=$(status GET /v2/it/app/manifests/v1)
check "pushing a tag again moves it" sh -c "cmp $T/body $T/m2"
s=$(status GET /v2/it/app/manifests/$M1)
check "the old manifest stays reachable by digest" sh -c "[ $s = 200 ] && cmp $T/body $T/m1"
s=$(status PUT /v2/it/app/manifests/sha256:1111111111111111111111111111111111111111111111111111111111111111 \
	--data-binary @"$T/m1" -H "Content-Type: $MT")
check "manifest PUT by a digest that does not match: 400 DIGEST_INVALID" \
	sh -c "[ $s = 400 ] && grep -q 'code.:.DIGEST_INVALID' $T/body"
sed "s/$D/sha256:2222222222222222222222222222222222222222222222222222222222222222/" "$T/m1" >"$T/m3"
s=$(status PUT /v2/it/app/manifests/v3 --data-binary @"$T/m3" -H "Content-Type: $MT")
check "manifest naming an unknown layer: 400 MANIFEST_BLOB_UNKNOWN" \
	sh -c "[ $s = 400 ] && grep -q 'code.:.MANIFEST_BLOB_UNKNOWN' $T/body"
printf '{"schemaVersion":2,' >"$T/m4"
s=$(status PUT /v2/it/app/manifests/v4 --data-binary @"$T/m4" -H "Content-Type: $MT")
check "broken JSON: 400 MANIFEST_INVALID" sh -c "[ $s = 400 ] && grep -q 'code.:.MANIFEST_INVALID' $T/body"
s=$(status PUT /v2/it/app/manifests/v5 --data-binary @"$T/m1" \
	-H 'Content-Type: application/vnd.oci.image.index.v1+json')
check "media type and Content-Type disagreeing: 400 MANIFEST_INVALID" \
	sh -c "[ $s = 400 ] && grep -q 'code.:.MANIFEST_INVALID' $T/body"
head -c 5000000 /dev/zero | tr '\0' ' ' >"$T/huge"
s=$(status PUT /v2/it/app/manifests/huge --data-binary @"$T/huge" -H "Content-Type: $MT")
check "manifest over 4 MiB: 413" sh -c "[ $s = 413 ]"

for t in b a c d e; do
	status PUT /v2/it/app/manifests/$t --data-binary @"$T/m1" -H "Content-Type: $MT" >/dev/null
done
s=$(status GET '/v2/it/app/tags/list?n=2')
check "tags/list?n=2: the first two in lexical order, Link to the next page" \
	sh -c "[ $s = 200 ] && grep -q '\"tags\":\[\"a\",\"b\"\]' $T/body &&
	    echo '$(hdr Link)' | grep -q 'last=b'"
s=$(status GET '/v2/it/app/tags/list?n=10&last=c')
check "tags/list?last=c: the rest" sh -c "grep -q '\"tags\":\[\"d\",\"e\",\"v1\"\]' $T/body"
s=$(status DELETE /v2/it/app/manifests/a)
s2=$(status GET /v2/it/app/manifests/$M1)
check "DELETE by tag untags; the manifest stays" \
	sh -c "[ $s = 202 ] && [ $s2 = 200 ] && [ \$($C -o /dev/null -w '%{http_code}' $URL/v2/it/app/manifests/a) = 404 ]"
s=$(status GET '/v2/_catalog?n=100')
check "catalog lists repositories in lexical order" \
	sh -c "[ $s = 200 ] && grep -q '\"repositories\":\[\"it/app\",\"it/chunks\"' $T/body"

# Referrers: an artifact whose subject is the v1 manifest.
printf '{}' >"$T/empty"
s=$(status POST "/v2/it/app/blobs/uploads/?digest=$(sha "$T/empty")" --data-binary @"$T/empty")
cat >"$T/sbom" <<M
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom","annotations":{"org.example.kind":"sbom"},"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"$(sha "$T/empty")","size":2},"layers":[{"mediaType":"application/vnd.oci.empty.v1+json","digest":"$(sha "$T/empty")","size":2}],"subject":{"mediaType":"$MT","digest":"$M1","size":$(stat -c %s "$T/m1")}}
M
s=$(status PUT "/v2/it/app/manifests/$(sha "$T/sbom")" --data-binary @"$T/sbom" -H "Content-Type: $MT")
check "an artifact with a subject: 201 and OCI-Subject" \
	sh -c "[ $s = 201 ] && [ '$(hdr OCI-Subject)' = '$M1' ]"
s=$(status GET "/v2/it/app/referrers/$M1")
check "referrers lists it with its artifactType and annotations, as an OCI index" \
	sh -c "[ $s = 200 ] && grep -q '$(sha "$T/sbom")' $T/body && grep -q org.example.kind $T/body &&
	    grep -q 'application/vnd.example.sbom' $T/body && grep -q image.index.v1 $T/body"
s=$(status GET "/v2/it/app/referrers/$M1?artifactType=application/vnd.example.other")
check "an artifactType filter that matches nothing: empty list, OCI-Filters-Applied" \
	sh -c "[ $s = 200 ] && grep -q '\"manifests\":\[\]' $T/body &&
	    [ '$(hdr OCI-Filters-Applied)' = artifactType ]"

# Names, references, unknown things.
s=$(status GET /v2/It/App/tags/list)
check "an invalid repository name: 400 NAME_INVALID" sh -c "[ $s = 400 ] && grep -q 'code.:.NAME_INVALID' $T/body"
s=$(status GET /v2/it/app/manifests/-bad-)
check "an invalid tag: 400 TAG_INVALID" sh -c "[ $s = 400 ] && grep -q 'code.:.TAG_INVALID' $T/body"
s=$(status GET /v2/it/app/blobs/sha256:xyz)
check "a malformed digest: 400 DIGEST_INVALID, not 500" sh -c "[ $s = 400 ] && grep -q 'code.:.DIGEST_INVALID' $T/body"
s=$(status PATCH /v2/it/app/blobs/uploads/00000000000000000000000000000000 --data-binary x)
check "an unknown upload: 404 BLOB_UPLOAD_UNKNOWN" sh -c "[ $s = 404 ] && grep -q 'code.:.BLOB_UPLOAD_UNKNOWN' $T/body"
s=$(status GET /v2/it/none/tags/list)
check "tags of an unknown repository: 404 NAME_UNKNOWN" sh -c "[ $s = 404 ] && grep -q 'code.:.NAME_UNKNOWN' $T/body"
s=$(status GET /not/the/api)
check "a path outside the API: 404 with JSON" sh -c "[ $s = 404 ] && grep -q errors $T/body"

# Protocol abuse.
check "pipelined requests are answered in order" sh -c "
	printf 'GET /v2/it/app/manifests/v1 HTTP/1.1\r\nHost: x\r\n\r\nGET /v2/_catalog HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
	    timeout 10 openssl s_client -quiet -connect $HOSTPORT -CAfile $CA 2>/dev/null >$T/pipe;
	grep -n 'HTTP/1.1 200' $T/pipe | wc -l | grep -q 2 &&
	awk '/schemaVersion/{m=NR} /repositories/{r=NR} END{exit !(m && r && m < r)}' $T/pipe"
check "a malformed request line: 400 and close" sh -c "
	printf 'GET  /v2/ HTTP/1.1\r\n\r\n' | timeout 10 openssl s_client -quiet -connect $HOSTPORT -CAfile $CA 2>/dev/null |
	    head -n 1 | grep -q '400'"
check "Content-Length with Transfer-Encoding: 400" sh -c "
	printf 'PATCH /v2/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n' |
	    timeout 10 openssl s_client -quiet -connect $HOSTPORT -CAfile $CA 2>/dev/null | head -n 1 | grep -q '400'"
raw() {  # raw FILE: sends FILE's bytes over TLS, prints the first line back
	timeout 10 openssl s_client -quiet -connect "$HOSTPORT" -CAfile "$CA" <"$1" 2>/dev/null | head -n 1
}
printf 'GET /v2/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n' >"$T/badchunk"
check "a GET with a malformed chunked body is answered, and berthd lives on" \
	sh -c "raw_out=\$(timeout 10 openssl s_client -quiet -connect $HOSTPORT -CAfile $CA <$T/badchunk 2>/dev/null | head -n 1);
	    echo \"\$raw_out\" | grep -q 'HTTP/1.1' && kill -0 $BERTHD_PID &&
	    [ \$($C -o /dev/null -w '%{http_code}' $URL/v2/) = 200 ]"
printf 'HEAD /v2/it/app/blobs/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx' "$D" >"$T/headbody"
check "a HEAD carrying a body is answered, and berthd lives on" \
	sh -c "timeout 10 openssl s_client -quiet -connect $HOSTPORT -CAfile $CA <$T/headbody 2>/dev/null |
	    head -n 1 | grep -q '200' && kill -0 $BERTHD_PID"
s=$(status POST /v2/)
check "a method a path does not take: 405 with Allow" \
	sh -c "[ $s = 405 ] && [ '$(hdr Allow)' = 'GET, HEAD' ]"
s=$(status GET /v2/ -H 'Expect: something')
check "an Expect other than 100-continue: 417" sh -c "[ $s = 417 ]"
printf '\r\nGET /v2/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' >"$T/lead"
check "an empty line before the request line is ignored; HTTP/1.0 keep-alive is confirmed" \
	sh -c "timeout 5 openssl s_client -quiet -connect $HOSTPORT -CAfile $CA <$T/lead 2>/dev/null >$T/leadout;
	    head -n 1 $T/leadout | grep -q '200' && grep -qi '^Connection: keep-alive' $T/leadout"
# A body cut short is an aborted upload, never a stored blob.
head -c 200000 /dev/urandom >"$T/whole"
head -c 50000 "$T/whole" >"$T/half"
{ printf 'POST /v2/it/cut/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n' \
	"$(sha "$T/whole")"; cat "$T/half"; } >"$T/cutreq"
timeout 10 openssl s_client -quiet -connect "$HOSTPORT" -CAfile "$CA" <"$T/cutreq" >/dev/null 2>&1
sleep 0.5
check "a monolithic upload cut short stores nothing" \
	sh -c "[ \$($C -o /dev/null -w '%{http_code}' -I $URL/v2/it/cut/blobs/$(sha "$T/whole")) = 404 ] &&
	    [ \$($C -o /dev/null -w '%{http_code}' -I $URL/v2/it/cut/blobs/$(sha "$T/half")) = 404 ]"
s=$(status POST /v2/it/cut2/blobs/uploads/)
LOC=$(hdr Location)
{ printf 'PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n' "$LOC"; cat "$T/half"; } >"$T/cutpatch"
timeout 10 openssl s_client -quiet -connect "$HOSTPORT" -CAfile "$CA" <"$T/cutpatch" >/dev/null 2>&1
sleep 0.5
s=$(status PUT "$LOC?digest=$(sha "$T/half")")
check "a PATCH cut short cannot be finished as if it were whole" \
	sh -c "[ $s != 201 ] && [ \$($C -o /dev/null -w '%{http_code}' -I $URL/v2/it/cut2/blobs/$(sha "$T/half")) = 404 ]"

s=$(status POST /v2/it/nolen/blobs/uploads/)
LOC=$(hdr Location)
s=$(status GET "$LOC")
check "a 204 carries no Content-Length (RFC 9110 8.6)" \
	sh -c "[ $s = 204 ] && ! grep -qi '^Content-Length' $T/hdrs"
flood=$(head -c 20000 /dev/zero | tr '\0' a)
s=$($C -o /dev/null -w '%{http_code}' -H "X-Flood: $flood" "$URL/v2/")
check "a header flood past 16 KiB: 431" sh -c "[ $s = 431 ]"
(printf 'GET /v2/ HTTP/1.1\r\n'; sleep 20) |
	openssl s_client -quiet -connect "$HOSTPORT" -CAfile "$CA" >/dev/null 2>&1 &
slow=$!
sleep 6
if kill -0 "$slow" 2>/dev/null; then
	kill "$slow" 2>/dev/null
	notok "a slow client that never finishes its head is cut off (--header-timeout 3)"
else
	ok "a slow client that never finishes its head is cut off (--header-timeout 3)"
fi

# A monolithic PUT of a blob the store already holds (in another
# repository) hashes the body and stores nothing; a body that does not
# match is refused and leaves nothing behind.
used() {
	"$top_builddir/tools/berth-stat" --data "$DATA" |
	    awk '$1 == "map_used" {print $2}'
}
u0=$(used)
status POST /v2/it/again/blobs/uploads/ >/dev/null
LOC=$(hdr Location)
s=$(status PUT "$LOC?digest=$D" --data-binary @"$T/blob" -H 'Content-Type: application/octet-stream')
u1=$(used)
check "a monolithic PUT of a blob stored elsewhere: 201, readable in the new repository" \
	sh -c "[ $s = 201 ] && $C $URL/v2/it/again/blobs/$D | cmp - $T/blob"
check "... and the store did not grow by the blob's size" \
	sh -c "[ $u1 -lt \$(($u0 + 1000000)) ]"
head -c 3000000 /dev/urandom >"$T/other"
status POST /v2/it/wrong/blobs/uploads/ >/dev/null
LOC=$(hdr Location)
s=$(status PUT "$LOC?digest=$D" --data-binary @"$T/other" -H 'Content-Type: application/octet-stream')
check "the same PUT with other bytes: 400 DIGEST_INVALID, the upload is gone" \
	sh -c "[ $s = 400 ] && grep -q DIGEST_INVALID $T/body &&
	    [ \$($C -o /dev/null -w '%{http_code}' $URL$LOC) = 404 ]"
check "... and the blob is not linked to that repository" \
	sh -c "[ \$($C -o /dev/null -w '%{http_code}' -I $URL/v2/it/wrong/blobs/$D) = 404 ]"

# TLS: AEAD suites only, AES-128-GCM preferred; nothing below TLS 1.2.
check "TLS 1.3 negotiates TLS_AES_128_GCM_SHA256" \
	sh -c "$C -v -o /dev/null $URL/v2/ 2>&1 | grep -q 'TLSv1.3 / TLS_AES_128_GCM_SHA256'"
check "TLS 1.2 negotiates ECDHE-ECDSA-AES128-GCM-SHA256" \
	sh -c "$C -v --tls-max 1.2 -o /dev/null $URL/v2/ 2>&1 | grep -q 'TLSv1.2 / ECDHE-ECDSA-AES128-GCM-SHA256'"
check "a CBC suite over TLS 1.2 is refused" \
	sh -c "! $C --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-SHA -o /dev/null $URL/v2/"
check "TLS 1.1 is refused" \
	sh -c "! openssl s_client -connect $HOSTPORT -tls1_1 </dev/null >/dev/null 2>&1"

# SIGHUP reloads the certificate: a new one is served afterwards.
mv "$DATA/tls/cert.pem" "$T/old.pem"
mv "$DATA/tls/key.pem" "$T/old.key"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$DATA/tls/key.pem" -out "$DATA/tls/cert.pem" >/dev/null 2>&1
kill -HUP "$BERTHD_PID"
sleep 0.5
check "SIGHUP reloads the certificate for new connections" \
	sh -c "curl -sf --cacert $DATA/tls/cert.pem $URL/v2/ >/dev/null &&
	    ! curl -sf --cacert $T/old.pem $URL/v2/ >/dev/null 2>&1"
tap_end
