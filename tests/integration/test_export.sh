#!/bin/sh
# berth-export against a real berthd: skopeo pushes images built here (a
# 3-layer OCI image under two tags, a Docker schema 2 image, a linux/amd64
# + linux/arm64 index); berth-export writes archives while berthd runs,
# also into a pipe; real loaders read them: skopeo (oci-archive: with the
# registry's manifest digest, docker-archive:), podman load and docker
# load with a dockerd of the test's own (image ID = config digest,
# RepoTags). Also: --uncompressed, --all-platforms, determinism (cmp), a
# corrupt blob aborting with no file left, unknown names. Prints TAP;
# the docker checks are reported skipped, with the reason, where dockerd
# cannot run.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/oci_layout.sh"
command -v skopeo >/dev/null || skip_all "skopeo not installed"
command -v python3 >/dev/null || skip_all "python3 not installed"

# skopeo and podman as root keep a blob-info cache that makes them skip
# uploads; give them an empty one in a private mount namespace.
private_blob_cache

EXPORT=${BERTH_EXPORT:-$top_builddir/tools/berth-export}
[ -x "$EXPORT" ] || { echo "Bail out! $EXPORT not built"; exit 1; }

berthd_start
mkdir -p "$T/certs"
cp "$CA" "$T/certs/ca.crt"
SK="skopeo --insecure-policy"
REG="docker://$HOSTPORT"
DST="--dest-cert-dir $T/certs"
unset DOCKER_CONFIG

# ---- images, pushed by skopeo ----------------------------------------------
M1=$(mk_single "$T/img" amd64 3 v1)
C1=$(json "$(blob_of "$T/img" "$M1")" 'j["config"]["digest"]')
$SK copy -q $DST "oci:$T/img:v1" "$REG/team/app:v1" >"$T/push.log" 2>&1 &&
	$SK copy -q $DST "oci:$T/img:v1" "$REG/team/app:v2" >>"$T/push.log" 2>&1 ||
	{ echo "Bail out! skopeo push failed"; cat "$T/push.log"; exit 1; }

M2=$(mk_single "$T/dimg" amd64 2 d1)
C2=$(json "$(blob_of "$T/dimg" "$M2")" 'j["config"]["digest"]')
$SK copy -q $DST --format v2s2 "oci:$T/dimg:d1" "$REG/team/dock:1" >>"$T/push.log" 2>&1 ||
	{ echo "Bail out! skopeo push (v2s2) failed"; cat "$T/push.log"; exit 1; }
M2REG=$($SK inspect --cert-dir "$T/certs" --format '{{.Digest}}' "$REG/team/dock:1")

set -- $(mk_image "$T/multi" amd64 2)
A=$1 AS=$2
set -- $(mk_image "$T/multi" arm64 2)
R=$1 RS=$2
set -- $(mk_index "$T/multi" "$A" "$AS" amd64 "$R" "$RS" arm64 latest)
IDX=$1
CA64=$(json "$(blob_of "$T/multi" "$A")" 'j["config"]["digest"]')
CR64=$(json "$(blob_of "$T/multi" "$R")" 'j["config"]["digest"]')
$SK copy -q --all $DST "oci:$T/multi:latest" "$REG/team/multi:latest" >>"$T/push.log" 2>&1 ||
	{ echo "Bail out! skopeo push of the index failed"; cat "$T/push.log"; exit 1; }

# export OUT ARGS...: runs berth-export with its stderr in $T/err.
export_to() {
	out=$1
	shift
	"$EXPORT" --data "$DATA" -o "$out" "$@" 2>"$T/err"
}
# no_tmp FILE: no temporary file of an export to FILE is left.
no_tmp() {
	[ -z "$(find "$(dirname "$1")" -maxdepth 1 -name "$(basename "$1").tmp*" -print)" ]
}

# Every blobs/sha256/ entry hashes to its name.
blobs_verify() {
	rm -rf "$T/x" && mkdir "$T/x" && tar -C "$T/x" -xf "$1" || return 1
	for b in "$T"/x/blobs/sha256/*; do
		[ "$(sha256sum "$b" | cut -d' ' -f1)" = "$(basename "$b")" ] || return 1
	done
}

# ---- the default mode: one image, into a pipe, while berthd runs -----------
t_pipe() {
	"$EXPORT" --data "$DATA" -o - team/app:v1 2>"$T/err" | cat >"$T/app.tar" &&
		kill -0 "$BERTHD_PID" &&
		grep -qx "berth-export: team/app:v1 -> linux/amd64 $M1" "$T/err"
}
check "single image into a pipe beside a running berthd" t_pipe
t_gnutar() {
	tar -tf "$T/app.tar" >"$T/names" && sort -c "$T/names" &&
		[ "$(head -n 2 "$T/names" | tr '\n' ' ')" = 'blobs/ blobs/sha256/ ' ] &&
		[ "$(tail -n 4 "$T/names" | tr '\n' ' ')" = 'index.json manifest.json oci-layout repositories ' ] &&
		[ "$(grep -c '^blobs/sha256/.' "$T/names")" = 5 ] &&
		tar --numeric-owner --utc -tvf "$T/app.tar" |
		awk '{ if ($2 != "0/0" || $4 != "1970-01-01") exit 1 }'
}
check "GNU tar reads it: dirs first, sorted names, uid 0, mtime 0" t_gnutar
t_bytes() {
	blobs_verify "$T/app.tar" || return 1
	for b in "$T"/img/blobs/sha256/*; do
		cmp "$b" "$T/x/blobs/sha256/$(basename "$b")" || return 1
	done
}
check "every blob is byte for byte the registry's, named by its digest" t_bytes
t_names() {
	[ "$(json "$T/x/manifest.json" 'j[0]["RepoTags"]')" = "['team/app:v1']" ] &&
		[ "$(json "$T/x/manifest.json" 'j[0]["Config"]')" = "blobs/sha256/${C1#sha256:}" ] &&
		[ "$(json "$T/x/index.json" 'j["manifests"][0]["annotations"]["io.containerd.image.name"]')" = team/app:v1 ] &&
		[ "$(json "$T/x/index.json" 'j["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]')" = v1 ] &&
		[ "$(json "$T/x/index.json" 'j["manifests"][0]["digest"]')" = "$M1" ]
}
check "manifest.json and index.json name the image as given" t_names
t_sk_oci() {
	$SK copy -q "oci-archive:$T/app.tar:v1" "oci:$T/sk1:v1" &&
		[ "$(json "$T/sk1/index.json" 'j["manifests"][0]["digest"]')" = "$M1" ]
}
check "skopeo oci-archive: keeps the registry's manifest digest" t_sk_oci
t_sk_docker() {
	$SK copy -q "docker-archive:$T/app.tar" "oci:$T/sk2:v1" &&
		cmp "$(blob_of "$T/img" "$C1")" "$(blob_of "$T/sk2" "$C1")"
}
check "skopeo docker-archive: reads it with the same config" t_sk_docker

# ---- several tags, several images ------------------------------------------
t_tags() {
	export_to "$T/tags.tar" team/app:v1 team/app:v2 team/app:v1 &&
		tar -xOf "$T/tags.tar" manifest.json >"$T/tags.json" &&
		[ "$(json "$T/tags.json" 'len(j)')" = 1 ] &&
		[ "$(json "$T/tags.json" 'j[0]["RepoTags"]')" = "['team/app:v1', 'team/app:v2']" ] &&
		tar -xOf "$T/tags.tar" index.json >"$T/tags.idx" &&
		[ "$(json "$T/tags.idx" 'len(j["manifests"])')" = 2 ]
}
check "two tags of one image (one given twice): one item, both RepoTags" t_tags
t_bare() {
	export_to "$T/bare.tar" --platform linux/amd64 team/multi team/multi:latest &&
		tar -xOf "$T/bare.tar" manifest.json >"$T/bare.json" &&
		[ "$(json "$T/bare.json" 'j[0]["RepoTags"]')" = "['team/multi:latest']" ] &&
		tar -xOf "$T/bare.tar" index.json >"$T/bare.idx" &&
		[ "$(json "$T/bare.idx" 'len(j["manifests"])')" = 1 ] &&
		[ "$(json "$T/bare.idx" 'j["manifests"][0]["annotations"]["io.containerd.image.name"]')" = team/multi:latest ] &&
		[ "$(json "$T/bare.idx" 'j["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]')" = latest ]
}
check "REPO and REPO:latest: one name, team/multi:latest, in RepoTags and index.json" t_bare
t_tmpfile() {
	ln -s "$T/victim" "$T/sl.tar.tmp" &&
		export_to "$T/sl.tar" team/app:v1 &&
		[ ! -e "$T/victim" ] && [ -L "$T/sl.tar.tmp" ] &&
		[ "$(stat -c %a "$T/sl.tar")" = 644 ] &&
		rm -f "$T/sl.tar.tmp" && no_tmp "$T/sl.tar" &&
		{ "$EXPORT" --data "$DATA" -o "$T/two.tar" team/app:v1 2>/dev/null &
		  "$EXPORT" --data "$DATA" -o "$T/two.tar" team/dock:1 2>/dev/null
		  r2=$?; wait $!; [ $? = 0 ] && [ $r2 = 0 ]; } &&
		blobs_verify "$T/two.tar" && no_tmp "$T/two.tar"
}
check "-o: a new temporary file (no symlink followed, none shared), mode 644" t_tmpfile
t_many() {
	export_to "$T/many.tar" team/app:v1 team/dock:1 team/multi:latest \
		--platform linux/arm64 &&
		[ "$(tar -tf "$T/many.tar" | sort | uniq -d | wc -l)" = 0 ] &&
		tar -xOf "$T/many.tar" manifest.json >"$T/many.json" &&
		[ "$(json "$T/many.json" 'len(j)')" = 3 ] && blobs_verify "$T/many.tar"
}
check "three images in one archive, no entry twice" t_many
t_dock() {
	grep -qx "berth-export: team/dock:1 -> linux/amd64 $M2REG" "$T/err" &&
		tar -C "$T/x" -xf "$T/many.tar" index.json &&
		[ "$(json "$T/x/index.json" '[m["mediaType"] for m in j["manifests"] if m["digest"] == "'"$M2REG"'"]')" = \
			"['application/vnd.docker.distribution.manifest.v2+json']" ] &&
		[ -f "$(blob_of "$T/x" "$M2REG")" ]
}
check "the Docker schema 2 image keeps its digest" t_dock
t_sk_names() {
	$SK copy -q "docker-archive:$T/many.tar:team/dock:1" "oci:$T/sk4:1" &&
		[ -f "$(blob_of "$T/sk4" "$C2")" ] &&
		$SK copy -q "docker-archive:$T/many.tar:team/multi:latest" "oci:$T/sk5:1" &&
		[ -f "$(blob_of "$T/sk5" "$CR64")" ]
}
check "skopeo docker-archive: finds each image by name" t_sk_names

# ---- multi-platform ----------------------------------------------------------
t_amd() {
	export_to "$T/amd.tar" --platform linux/amd64 team/multi:latest &&
		grep -qx "berth-export: team/multi:latest -> linux/amd64 $A" "$T/err" &&
		$SK copy -q "oci-archive:$T/amd.tar:latest" "oci:$T/sk6:l" &&
		[ "$(json "$T/sk6/index.json" 'j["manifests"][0]["digest"]')" = "$A" ]
}
check "--platform linux/amd64 takes the amd64 image of the index" t_amd
t_arm() {
	export_to "$T/arm.tar" --platform linux/arm64 team/multi:latest &&
		grep -qx "berth-export: team/multi:latest -> linux/arm64/v8 $R" "$T/err" &&
		$SK copy -q "oci-archive:$T/arm.tar:latest" "oci:$T/sk7:l" &&
		[ "$(json "$T/sk7/index.json" 'j["manifests"][0]["digest"]')" = "$R" ]
}
check "--platform linux/arm64 takes the arm64 one, reported as arm64/v8" t_arm
if [ "$(uname -m)" = x86_64 ]; then
	t_host() {
		export_to "$T/host.tar" team/multi:latest &&
			grep -qx "berth-export: team/multi:latest -> linux/amd64 $A" "$T/err"
	}
	check "no --platform: this host's, linux/amd64" t_host
else
	skip "no --platform: this host's: the test expects an x86_64 host"
fi
t_noplat() {
	export_to "$T/none.tar" --platform linux/s390x team/multi:latest
	[ $? = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] &&
		grep -q 'no image for linux/s390x; the index has linux/amd64, linux/arm64$' "$T/err" &&
		[ ! -e "$T/none.tar" ] && no_tmp "$T/none.tar"
}
check "no image for the platform: one line listing those there, exit 1" t_noplat
t_all() {
	export_to "$T/all.tar" --all-platforms --platform linux/amd64 team/multi:latest &&
		blobs_verify "$T/all.tar" &&
		$SK copy -q --all "oci-archive:$T/all.tar:latest" "oci:$T/sk8:l" &&
		[ "$(json "$T/sk8/index.json" 'j["manifests"][0]["digest"]')" = "$IDX" ] &&
		[ -f "$(blob_of "$T/sk8" "$A")" ] && [ -f "$(blob_of "$T/sk8" "$R")" ] &&
		[ "$(json "$T/x/manifest.json" 'j[0]["Config"]')" = "blobs/sha256/${CA64#sha256:}" ]
}
check "--all-platforms keeps the index and both images (skopeo copy --all)" t_all

# ---- --uncompressed --------------------------------------------------------
DIFFS=$(json "$(blob_of "$T/img" "$C1")" '" ".join(d[7:] for d in j["rootfs"]["diff_ids"])')
t_raw() {
	export_to "$T/raw.tar" --uncompressed team/app:v1 && blobs_verify "$T/raw.tar" &&
		for d in $DIFFS; do tar -tf "$T/x/blobs/sha256/$d" >/dev/null || return 1; done &&
		[ "$(json "$T/x/manifest.json" '" ".join(l[13:] for l in j[0]["Layers"])')" = "$DIFFS" ] &&
		m=$(json "$T/x/index.json" 'j["manifests"][0]["digest"]') &&
		[ "$(json "$T/x/blobs/sha256/${m#sha256:}" 'j["layers"][0]["mediaType"]')" = \
			application/vnd.oci.image.layer.v1.tar ]
}
check "--uncompressed: layers are the config's diff_ids, as plain tar" t_raw
t_raw_sk() {
	$SK copy -q "oci-archive:$T/raw.tar:v1" "oci:$T/sk9:v1" &&
		$SK copy -q "docker-archive:$T/raw.tar" "oci:$T/sk10:v1" &&
		[ -f "$(blob_of "$T/sk10" "$C1")" ]
}
check "--uncompressed: skopeo reads it both ways" t_raw_sk

# ---- determinism -------------------------------------------------------------
t_det() {
	export_to "$T/d1.tar" team/app:v1 team/dock:1 team/multi:latest &&
		"$EXPORT" --data "$DATA" -o - team/app:v1 team/dock:1 team/multi:latest \
			2>/dev/null >"$T/d2.tar" &&
		cmp "$T/d1.tar" "$T/d2.tar" &&
		export_to "$T/d3.tar" --uncompressed team/app:v1 &&
		export_to "$T/d4.tar" --uncompressed team/app:v1 &&
		cmp "$T/d3.tar" "$T/d4.tar"
}
check "the same export twice, to a file and a pipe: identical bytes" t_det

# ---- errors -----------------------------------------------------------------
t_unknown_tag() {
	export_to "$T/u.tar" team/app:nope
	[ $? = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] &&
		grep -q 'team/app:nope: no such tag' "$T/err" &&
		[ ! -e "$T/u.tar" ] && no_tmp "$T/u.tar"
}
check "unknown tag: one line naming it, exit 1, no file" t_unknown_tag
t_unknown_repo() {
	export_to "$T/u.tar" nosuch/repo:v1
	[ $? = 1 ] && grep -q 'nosuch/repo:v1: no such repository' "$T/err"
}
check "unknown repository: exit 1" t_unknown_repo
t_usage() {
	export_to "$T/u.tar" 'Team/App:v1'
	[ $? = 2 ] && [ "$(wc -l <"$T/err")" = 1 ] || return 1
	export_to "$T/u.tar" --platform linux team/app:v1
	[ $? = 2 ] || return 1
	"$EXPORT" --data "$DATA" team/app:v1 2>/dev/null
	[ $? = 2 ] && [ ! -e "$T/u.tar" ]
}
check "bad arguments: exit 2 with a one-line message" t_usage

# ---- loaders: podman ---------------------------------------------------------
if command -v podman >/dev/null && [ "$(id -u)" = 0 ]; then
	PM="podman --root $T/pstore --runroot $T/prun --storage-driver vfs"
	t_pm1() {
		$PM load -q -i "$T/app.tar" &&
			[ "$($PM image inspect --format '{{.Id}}' team/app:v1)" = "${C1#sha256:}" ]
	}
	check "podman load: the image, its ID the config digest" t_pm1
	t_pm2() {
		$PM load -q -i "$T/many.tar" &&
			[ "$($PM image inspect --format '{{.Id}}' team/dock:1)" = "${C2#sha256:}" ] &&
			[ "$($PM image inspect --format '{{.Id}} {{.Architecture}}' team/multi:latest)" = "${CR64#sha256:} arm64" ]
	}
	check "podman load of the three-image archive" t_pm2
	t_pm3() {
		$PM rmi -a -f >/dev/null && $PM load -q -i "$T/raw.tar" &&
			[ "$($PM image inspect --format '{{.Id}}' team/app:v1)" = "${C1#sha256:}" ]
	}
	check "podman load of an --uncompressed archive" t_pm3
	t_pm4() {
		$PM load -q -i "$T/all.tar" &&
			[ "$($PM image inspect --format '{{.Id}} {{.Architecture}}' team/multi:latest)" = "${CA64#sha256:} amd64" ]
	}
	if [ "$(uname -m)" = x86_64 ]; then
		check "podman load of an --all-platforms archive: this host's image" t_pm4
	else
		skip "podman load of an --all-platforms archive: expects an x86_64 host"
	fi
else
	for n in 1 2 3 4; do
		skip "podman load check $n: podman missing or not root"
	done
fi

# ---- loaders: docker ---------------------------------------------------------
dockerd_start
if [ -z "$DOCKER_WHY" ]; then
	# dk_is IMAGE FORMAT EXPECT: docker image inspect prints EXPECT.
	dk_is() {
		[ "$($DK image inspect --format "$2" "$1")" = "$3" ]
	}
	t_dk1() {
		$DK load -q -i "$T/app.tar" &&
			dk_is team/app:v1 '{{.Id}} {{.RepoTags}}' "$C1 [team/app:v1]"
	}
	check "docker load: image ID is the config digest, RepoTags as given" t_dk1
	t_dk2() {
		$DK rmi -f team/app:v1 >/dev/null && $DK load -q -i "$T/tags.tar" &&
			dk_is team/app:v2 '{{.Id}} {{.RepoTags}}' "$C1 [team/app:v1 team/app:v2]"
	}
	check "docker load of two tags: both name the image" t_dk2
	t_dk3() {
		$DK load -q -i "$T/many.tar" &&
			dk_is team/dock:1 '{{.Id}}' "$C2" &&
			dk_is team/multi:latest '{{.Id}} {{.Architecture}}' "$CR64 arm64"
	}
	check "docker load of the three-image archive (arm64 one included)" t_dk3
	t_dk4() {
		$DK load -q -i "$T/amd.tar" &&
			dk_is team/multi:latest '{{.Id}} {{.Architecture}}' "$CA64 amd64"
	}
	check "docker load of the linux/amd64 choice" t_dk4
	t_dk5() {
		$DK rmi -f team/app:v1 team/app:v2 >/dev/null && $DK load -q -i "$T/raw.tar" &&
			dk_is team/app:v1 '{{.Id}}' "$C1"
	}
	check "docker load of --uncompressed: the same image ID" t_dk5
	t_dk6() {
		$DK rmi -f team/multi:latest >/dev/null && $DK load -q -i "$T/all.tar" &&
			dk_is team/multi:latest '{{.Id}}' "$CA64"
	}
	check "docker load of --all-platforms: the amd64 image" t_dk6
	t_dk_bare() {
		$DK rmi -f team/multi:latest >/dev/null && $DK load -q -i "$T/bare.tar" &&
			dk_is team/multi:latest '{{.Id}} {{.RepoTags}}' "$CA64 [team/multi:latest]"
	}
	check "docker load of a bare REPO export: tagged REPO:latest" t_dk_bare
	t_dk7() {
		$DK rmi -f team/dock:1 >/dev/null &&
			"$EXPORT" --data "$DATA" -o - team/dock:1 2>/dev/null | $DK load -q &&
			dk_is team/dock:1 '{{.Id}}' "$C2"
	}
	check "docker load from a pipe of berth-export" t_dk7
else
	for n in 1 2 3 4 5 6 7; do
		skip "docker load check $n: $DOCKER_WHY"
	done
fi

# ---- a corrupt blob ----------------------------------------------------------
# A layer of known bytes, one byte of it flipped in data.mdb (layers that
# arrive gzip-compressed are stored as they are, so its bytes are there).
M3=$(mk_single "$T/bad" amd64 1 b1)
L3=$(json "$(blob_of "$T/bad" "$M3")" 'j["layers"][0]["digest"]')
$SK copy -q $DST "oci:$T/bad:b1" "$REG/team/bad:1" >>"$T/push.log" 2>&1
berthd_stop
t_flip() {
	python3 -c '
import sys
needle = open(sys.argv[2], "rb").read()[20000:20064]
with open(sys.argv[1], "r+b") as f:
    data = f.read()
    at = data.find(needle)
    if at < 0 or data.find(needle, at + 1) >= 0:
        sys.exit(1)
    f.seek(at + 10)
    f.write(bytes([data[at + 10] ^ 0xff]))
' "$DATA/data.mdb" "$(blob_of "$T/bad" "$L3")"
}
check "a byte of a stored layer is flipped in data.mdb" t_flip
t_bad_file() {
	export_to "$T/bad.tar" team/app:v1 team/bad:1
	[ $? = 1 ] && grep -q "layer $L3 of team/bad:1" "$T/err" &&
		[ "$(grep -c berth-export "$T/err")" = 3 ] &&
		[ ! -e "$T/bad.tar" ] && no_tmp "$T/bad.tar"
}
check "the export aborts naming the blob and image, no file left" t_bad_file
t_bad_pipe() {
	"$EXPORT" --data "$DATA" -o - team/bad:1 2>"$T/err" >"$T/bad.out"
	[ $? = 1 ] && grep -q "$L3" "$T/err" && ! tar -tf "$T/bad.out" >/dev/null 2>&1
}
check "into a pipe: exit 1 and no end-of-archive marker" t_bad_pipe
t_bad_raw() {
	"$EXPORT" --data "$DATA" -o - --uncompressed team/bad:1 2>"$T/err" >"$T/bad.out"
	[ $? = 1 ] && grep -q "$L3" "$T/err" && [ ! -s "$T/bad.out" ]
}
check "--uncompressed finds it before writing anything" t_bad_raw
t_still() {
	export_to "$T/ok.tar" team/app:v1 && blobs_verify "$T/ok.tar"
}
check "the other images still export" t_still
tap_end
