#!/bin/sh
# podman and buildah against a real berthd over TLS with certificate
# checking: podman push, remove, pull with the same digest; buildah builds
# an amd64 and an arm64 image from scratch and pushes them as a manifest
# list (Docker) and as an OCI index with `manifest push --all`; podman
# pulls each platform back. Prints TAP.
. "$(dirname "$0")/lib.sh"
command -v podman >/dev/null || skip_all "podman not installed"
command -v buildah >/dev/null || skip_all "buildah not installed"
[ "$(id -u)" = 0 ] || skip_all "podman/buildah storage here needs root"

# As root they keep a blob-info cache that makes them skip uploads; give
# them an empty one in a private mount namespace.
private_blob_cache
unset DOCKER_CONFIG
berthd_start
mkdir -p "$T/certs"
cp "$CA" "$T/certs/ca.crt"
ST="--root $T/store --runroot $T/run --storage-driver vfs"
PM="podman $ST"
BA="buildah $ST"
IMG=$HOSTPORT/pod/app

mkdir -p "$T/rootfs"
head -c 1500000 /dev/urandom >"$T/rootfs/data.bin"
tar -C "$T/rootfs" -cf "$T/rootfs.tar" .
check "podman import and push" \
	sh -c "$PM import $T/rootfs.tar $IMG:v1 && $PM push --cert-dir $T/certs $IMG:v1"
D=$(skopeo inspect --cert-dir "$T/certs" --format '{{.Digest}}' "docker://$IMG:v1" 2>/dev/null)
check "podman rmi, pull: the same manifest digest" \
	sh -c "[ -n '$D' ] && $PM rmi $IMG:v1 && $PM pull --cert-dir $T/certs $IMG:v1 &&
	    $PM inspect --format '{{.Digest}}' $IMG:v1 | grep -qx '$D'"

for arch in amd64 arm64; do
	c=$($BA from --arch "$arch" scratch)
	head -c 700000 /dev/urandom >"$T/f-$arch"
	$BA copy "$c" "$T/f-$arch" "/f-$arch" >/dev/null
	$BA config --arch "$arch" --os linux "$c"
	$BA commit -q "$c" "localhost/bud-$arch" >/dev/null
done
check "buildah manifest list of amd64 + arm64" \
	sh -c "$BA manifest create localhost/bud-list &&
	    $BA manifest add localhost/bud-list containers-storage:localhost/bud-amd64 &&
	    $BA manifest add localhost/bud-list containers-storage:localhost/bud-arm64"
check "buildah manifest push --all as a Docker manifest list" \
	$BA manifest push --all --format v2s2 --cert-dir "$T/certs" localhost/bud-list \
	"docker://$HOSTPORT/bud/multi:v2s2"
check "buildah manifest push --all as an OCI index" \
	$BA manifest push --all --format oci --cert-dir "$T/certs" localhost/bud-list \
	"docker://$HOSTPORT/bud/multi:oci"
check "the pushed list and index carry their media types" \
	sh -c "curl -sf --cacert $CA -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
	        $URL/v2/bud/multi/manifests/v2s2 | grep -q manifest.list.v2 &&
	    curl -sf --cacert $CA -H 'Accept: application/vnd.oci.image.index.v1+json' \
	        $URL/v2/bud/multi/manifests/oci | grep -q image.index.v1"
check "podman pulls the arm64 image out of the index" \
	sh -c "$PM pull --arch arm64 --cert-dir $T/certs $HOSTPORT/bud/multi:oci &&
	    $PM inspect --format '{{.Architecture}}' $HOSTPORT/bud/multi:oci | grep -qx arm64"
check "and the amd64 one out of the manifest list" \
	sh -c "$PM pull --arch amd64 --cert-dir $T/certs $HOSTPORT/bud/multi:v2s2 &&
	    $PM inspect --format '{{.Architecture}}' $HOSTPORT/bud/multi:v2s2 | grep -qx amd64"
check "podman refuses berth without its certificate" \
	sh -c "! $PM pull $HOSTPORT/bud/multi:oci >/dev/null 2>&1"
tap_end
