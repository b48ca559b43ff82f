#!/bin/sh
# skopeo against a real berthd over TLS with certificate checking: a
# 5-layer image and a two-platform index (linux/amd64 + linux/arm64) are
# copied in and back out with identical digests; inspect, list-tags, tag
# overwrite and delete. Prints TAP.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/oci_layout.sh"
command -v skopeo >/dev/null || skip_all "skopeo not installed"

# skopeo as root keeps a blob-info cache that makes it skip uploads; give
# it an empty one, in a private mount namespace when we may.
private_blob_cache

berthd_start
mkdir -p "$T/certs"
cp "$CA" "$T/certs/ca.crt"
SK="skopeo --insecure-policy"
DST="--dest-cert-dir $T/certs"
SRC="--src-cert-dir $T/certs"
CD="--cert-dir $T/certs"
REG="docker://$HOSTPORT"

M=$(mk_single "$T/img" amd64 5 v1)
check "copy a 5-layer image into berth" \
	$SK copy $DST "oci:$T/img:v1" "$REG/team/app:v1"
check "inspect reports the same manifest digest" \
	sh -c "$SK inspect $CD --format '{{.Digest}}' $REG/team/app:v1 | grep -qx '$M'"
check "copy it back out: same manifest digest" \
	sh -c "$SK copy $SRC $REG/team/app:v1 oci:$T/back:v1 &&
	    grep -q '$M' $T/back/index.json"
check "every layer came back byte for byte" \
	sh -c "for b in $T/img/blobs/sha256/*; do cmp \$b $T/back/blobs/sha256/\$(basename \$b) || exit 1; done"

set -- $(mk_image "$T/multi" amd64 2)
A=$1 AS=$2
set -- $(mk_image "$T/multi" arm64 2)
R=$1 RS=$2
set -- $(mk_index "$T/multi" "$A" "$AS" amd64 "$R" "$RS" arm64 latest)
IDX=$1
check "copy --all of a linux/amd64 + linux/arm64 index" \
	$SK copy --all $DST "oci:$T/multi:latest" "$REG/team/multi:latest"
check "the index comes back with its digest" \
	sh -c "$SK inspect $CD --raw $REG/team/multi:latest | sha256sum | grep -q '${IDX#sha256:}'"
check "each platform resolves from the index" \
	sh -c "$SK --override-arch arm64 inspect $CD --format '{{.Architecture}}' $REG/team/multi:latest | grep -qx arm64 &&
	    $SK --override-arch amd64 inspect $CD --format '{{.Architecture}}' $REG/team/multi:latest | grep -qx amd64"
check "copy --all back out keeps both platforms" \
	sh -c "$SK copy --all $SRC $REG/team/multi:latest oci:$T/multiback:latest &&
	    [ -f $T/multiback/blobs/sha256/${A#sha256:} ] && [ -f $T/multiback/blobs/sha256/${R#sha256:} ]"

check "copy the image under a second tag" \
	$SK copy $DST "oci:$T/img:v1" "$REG/team/app:v2"
check "list-tags shows both tags" \
	sh -c "$SK list-tags $CD $REG/team/app | tr -d ' \n' | grep -q '\"Tags\":\[\"v1\",\"v2\"\]'"
check "overwriting v2 with the arm64 image moves the tag" \
	sh -c "$SK --override-arch arm64 copy $DST $SRC $REG/team/multi:latest $REG/team/app:v2 &&
	    $SK inspect $CD --format '{{.Digest}}' $REG/team/app:v2 | grep -qx '$R'"
check "delete removes the manifest by digest (and its tag)" \
	sh -c "$SK delete $CD $REG/team/app:v1 &&
	    ! $SK inspect $CD $REG/team/app:v1 >/dev/null 2>&1"
check "an untrusted certificate is refused" \
	sh -c "! $SK inspect $REG/team/app:v2 >/dev/null 2>&1"
tap_end
