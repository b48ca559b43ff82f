#!/bin/sh
# Writes OCI image layouts of ordinary files from this system, for
# measuring a registry's disk use (push them with skopeo, then du the
# store). Run by hand:
#
#   tests/bench/corpus.sh OUTDIR
#
#   OUTDIR/gz/img01 .. img20   3 gzip layers each: one base layer (~20 MB,
#                              shared libraries) common to all 20 images,
#                              then 2 layers of the image's own (1-10 MB):
#                              programs, then data (locales, docs, Python)
#   OUTDIR/tar/img01 .. img05  3 uncompressed tar layers each (programs,
#                              shared libraries, text: docs, headers,
#                              Python sources), 30-60 MB an image, none
#                              shared
#
# Each image is its own OCI layout (oci-layout, index.json naming one
# manifest "latest", blobs/sha256/), e.g. oci:OUTDIR/gz/img01:latest for
# skopeo. Blobs common to several images are hard links (copies where
# links fail). No two layers of a corpus hold the same file: each layer
# is the next run of files from a sorted list, so the output depends only
# on this machine's files. Prints the bytes of the distinct blobs of each
# corpus:
#
#   logical_gz BYTES
#   logical_tar BYTES
#
# Uses tar, gzip, sha256sum, find, sort, awk and stat; about 400 MB of
# output and under a minute on an idle machine.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
W=$out/.work
rm -rf "$out/gz" "$out/tar" "$W"
mkdir -p "$W/blobs"
trap 'rm -rf "$W"' EXIT
LC_ALL=C
export LC_ALL
MiB=1048576

# pool NAME FINDARGS DIR...: writes $W/NAME.pool, lines "SIZE PATH" (path
# relative to /), regular files under 8 MiB, each DIR sorted by path.
pool() {
	name=$1 args=$2
	shift 2
	: >"$W/$name.pool"
	echo 0 >"$W/$name.cur"
	for d in "$@"; do
		[ -d "/$d" ] || continue
		# shellcheck disable=SC2086 # $args is a list of find tests
		(cd / && set -f && find "$d" -type f -readable -size -8192k \
			! -path '*/__pycache__/*' ! -name '*
*' $args -printf '%s %p\n') | sort -k2 >>"$W/$name.pool"
	done
}

# take POOL BYTES LIST: the next files of POOL, as many as fit in BYTES
# (at least one), their paths into LIST.
take() {
	awk -v start="$(cat "$W/$1.cur")" -v want="$2" -v list="$3" \
		-v curf="$W/$1.cur" -v name="$1" '
		NR <= start { next }
		sum > 0 && sum + $1 > want { print NR - 1 > curf; done = 1; exit }
		{
			print substr($0, index($0, " ") + 1) > list
			sum += $1
			if (sum >= want) { print NR > curf; done = 1; exit }
		}
		END {
			if (!done) { print "corpus.sh: pool " name " ran out" > "/dev/stderr"; exit 1 }
		}' "$W/$1.pool"
}

# layer KEY LIST gz|tar: makes a layer blob in $W/blobs from the files of
# LIST; prints "DIGEST SIZE DIFFID" (hex) into $W/KEY.layer.
layer() {
	tar -C / -cf "$W/$1.tar" --format=gnu --sort=name --mtime=@0 \
		--owner=0 --group=0 --numeric-owner --verbatim-files-from -T "$2"
	diff=$(sha256sum <"$W/$1.tar" | cut -d' ' -f1)
	if [ "$3" = gz ]; then
		gzip -n -c "$W/$1.tar" >"$W/$1.blob"
		rm -f "$W/$1.tar"
	else
		mv "$W/$1.tar" "$W/$1.blob"
	fi
	dig=$(sha256sum <"$W/$1.blob" | cut -d' ' -f1)
	size=$(stat -c %s "$W/$1.blob")
	mv "$W/$1.blob" "$W/blobs/$dig"
	echo "$dig $size $diff" >"$W/$1.layer"
}

# put DIR FILE: moves FILE into DIR's blobs; prints "HEX SIZE".
put() {
	h=$(sha256sum <"$2" | cut -d' ' -f1)
	s=$(stat -c %s "$2")
	mv "$2" "$1/blobs/sha256/$h"
	echo "$h $s"
}

# image DIR MEDIATYPE KEY...: an OCI layout of the layers KEY... (made by
# layer), with config, manifest and index.json tagged "latest".
image() {
	dir=$1 mt=$2
	shift 2
	mkdir -p "$dir/blobs/sha256"
	printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
	layers="" diffs=""
	for key in "$@"; do
		read -r dig size diff <"$W/$key.layer"
		[ -e "$dir/blobs/sha256/$dig" ] ||
			ln "$W/blobs/$dig" "$dir/blobs/sha256/$dig" 2>/dev/null ||
			cp "$W/blobs/$dig" "$dir/blobs/sha256/$dig"
		layers="$layers${layers:+,}{\"mediaType\":\"$mt\",\"digest\":\"sha256:$dig\",\"size\":$size}"
		diffs="$diffs${diffs:+,}\"sha256:$diff\""
	done
	printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
		"$diffs" >"$W/cfg"
	# shellcheck disable=SC2046 # "HEX SIZE" into $1 $2
	set -- $(put "$dir" "$W/cfg")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
		"$1" "$2" "$layers" >"$W/man"
	# shellcheck disable=SC2046
	set -- $(put "$dir" "$W/man")
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
		"$1" "$2" >"$dir/index.json"
}

# logical DIR: bytes of the distinct blobs (by digest) under DIR.
logical() {
	find "$1" -path '*/blobs/sha256/*' -type f -printf '%f %s\n' |
		sort -u | awk '{ s += $2 } END { printf "%.0f\n", s }'
}

GZ=application/vnd.oci.image.layer.v1.tar+gzip
TAR=application/vnd.oci.image.layer.v1.tar

# gz corpus: a base of shared libraries, then per image some programs and
# some data, of sizes varying with the image's number.
pool gzbase "" usr/lib/x86_64-linux-gnu
pool gzprog "" usr/bin usr/sbin usr/libexec usr/lib/gcc
pool gzdata "" usr/share/locale usr/share/doc usr/lib/python3 \
	usr/lib/python3.11 usr/include usr/share/perl
take gzbase $((88 * MiB)) "$W/list"
layer base "$W/list" gz
i=1
while [ $i -le 20 ]; do
	n=$(printf '%02d' $i)
	take gzprog $(((4 + i * 7 % 16) * MiB)) "$W/list"
	layer "gz${n}a" "$W/list" gz
	take gzdata $(((3 + i * 5 % 13) * MiB)) "$W/list"
	layer "gz${n}b" "$W/list" gz
	image "$out/gz/img$n" $GZ base "gz${n}a" "gz${n}b"
	i=$((i + 1))
done
rm -f "$W"/blobs/*

# tar corpus: programs, shared libraries and text, uncompressed.
pool tarprog "" usr/bin usr/sbin
pool tarlib "-name *.so*" usr/lib/x86_64-linux-gnu
pool tartext "" usr/share/doc usr/include usr/lib/python3.11 usr/share/perl
i=1
while [ $i -le 5 ]; do
	n=$(printf '%02d' $i)
	take tarprog $(((10 + i * 3 % 9) * MiB)) "$W/list"
	layer "tar${n}a" "$W/list" tar
	take tarlib $(((14 + i * 5 % 11) * MiB)) "$W/list"
	layer "tar${n}b" "$W/list" tar
	take tartext $(((6 + i * 7 % 9) * MiB)) "$W/list"
	layer "tar${n}c" "$W/list" tar
	image "$out/tar/img$n" $TAR "tar${n}a" "tar${n}b" "tar${n}c"
	rm -f "$W"/blobs/*
	i=$((i + 1))
done

echo "logical_gz $(logical "$out/gz")"
echo "logical_tar $(logical "$out/tar")"
