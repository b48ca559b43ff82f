# mk_image DIR ARCH NLAYERS: writes an OCI image (gzip layers of random
# files) into the OCI layout DIR and prints the manifest's digest and size.
# mk_index DIR M1 S1 ARCH1 M2 S2 ARCH2 TAG: adds an index of two manifests.
# Sourced by integration scenarios; uses sha256sum, tar and gzip only.

oci_blob() {  # oci_blob DIR FILE -> prints "sha256:HEX SIZE", moves FILE in
	h=$(sha256sum "$2" | cut -d' ' -f1)
	s=$(stat -c %s "$2")
	mkdir -p "$1/blobs/sha256"
	mv "$2" "$1/blobs/sha256/$h"
	echo "sha256:$h $s"
}

mk_image() {
	dir=$1 arch=$2 n=$3
	mkdir -p "$dir/blobs/sha256"
	printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
	layers="" diffs=""
	i=0
	while [ "$i" -lt "$n" ]; do
		i=$((i + 1))
		w=$(mktemp -d)
		head -c $((100000 * i)) /dev/urandom >"$w/file$i"
		printf 'layer %s of %s\n' "$i" "$arch" >"$w/note$i.txt"
		tar -C "$w" -cf "$w.tar" .
		diff="sha256:$(sha256sum "$w.tar" | cut -d' ' -f1)"
		gzip -n -c "$w.tar" >"$w.tgz"
		set -- $(oci_blob "$dir" "$w.tgz")
		rm -rf "$w" "$w.tar"
		layers="$layers${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$1\",\"size\":$2}"
		diffs="$diffs${diffs:+,}\"$diff\""
	done
	cfg=$(mktemp)
	printf '{"architecture":"%s","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
		"$arch" "$diffs" >"$cfg"
	set -- $(oci_blob "$dir" "$cfg")
	man=$(mktemp)
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
		"$1" "$2" "$layers" >"$man"
	oci_blob "$dir" "$man"
}

mk_index() {
	dir=$1
	idx=$(mktemp)
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"}}]}' \
		"$2" "$3" "$4" "$5" "$6" "$7" >"$idx"
	set -- $(oci_blob "$dir" "$idx") "$8"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
		"$1" "$2" "$3" >"$dir/index.json"
	echo "$1 $2"
}

# mk_single DIR ARCH N TAG: an OCI layout whose index.json names one image.
mk_single() {
	set -- "$1" "$2" "$3" "$4" $(mk_image "$1" "$2" "$3")
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
		"$5" "$6" "$4" >"$1/index.json"
	echo "$5"
}
