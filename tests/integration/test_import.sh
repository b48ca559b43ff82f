#!/bin/sh
# berth-import against real stores and clients: images pushed by skopeo
# (an OCI image, a Docker schema 2 image, a linux/amd64 + linux/arm64
# index) are exported with berth-export and imported into a second store,
# once offline and once beside a berthd serving it (also from a pipe);
# skopeo then pulls them from that berthd with the registry's manifest
# digests. Archives written by skopeo (oci-archive:), podman save and
# docker save (Docker 20.10's classic layout, with a dockerd of the
# test's own) are imported and pulled back with the same config digest
# (image ID). Hostile and broken archives (.. and absolute names, a
# symlink, a blob that does not match its name, a truncated archive, a
# manifest.json naming a missing layer, an index child with the wrong
# size, archives whose plan would be huge) are refused with one line and
# exit 1, leaving the store as it was: same counts and tags, no upload,
# fsck clean; so is an import interrupted by SIGINT while it reads a
# FIFO. Prints TAP; what cannot run here is reported skipped.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/oci_layout.sh"
command -v skopeo >/dev/null || skip_all "skopeo not installed"
command -v python3 >/dev/null || skip_all "python3 not installed"

# skopeo and podman as root keep a blob-info cache that makes them skip
# uploads; give them an empty one in a private mount namespace.
private_blob_cache

EXPORT=$top_builddir/tools/berth-export
IMPORT=$top_builddir/tools/berth-import
STAT=$top_builddir/tools/berth-stat
FSCK=$top_builddir/tools/berth-fsck
for b in "$EXPORT" "$IMPORT" "$STAT" "$FSCK"; do
	[ -x "$b" ] || { echo "Bail out! $b not built"; exit 1; }
done

# check as lib.sh's, also showing the tool's stderr kept in $T/err.
check() {
	name=$1
	shift
	: >"$T/err"
	if "$@" >"$T/check.out" 2>&1; then ok "$name"; else notok "$name" "$T/check.out" "$T/err"; fi
}

# ---- a source store with images pushed by skopeo ------------------------
berthd_start
SRC=$DATA
mkdir -p "$T/certs"
cp "$CA" "$T/certs/ca.crt"
SK="skopeo --insecure-policy"
DST="--dest-cert-dir $T/certs"
SRCREG="docker://$HOSTPORT"
unset DOCKER_CONFIG

M1=$(mk_single "$T/img" amd64 3 v1)
$SK copy -q $DST "oci:$T/img:v1" "$SRCREG/team/app:v1" >"$T/push.log" 2>&1 ||
	{ echo "Bail out! skopeo push failed"; cat "$T/push.log"; exit 1; }
# The same image in a second repository: an archive of both holds each
# blob once, and the import links it into the second repository.
$SK copy -q $DST "oci:$T/img:v1" "$SRCREG/team/twin:v1" >>"$T/push.log" 2>&1 ||
	{ echo "Bail out! skopeo push (twin) failed"; cat "$T/push.log"; exit 1; }
M2=$(mk_single "$T/dimg" amd64 2 d1)
$SK copy -q $DST --format v2s2 "oci:$T/dimg:d1" "$SRCREG/team/dock:1" >>"$T/push.log" 2>&1 ||
	{ echo "Bail out! skopeo push (v2s2) failed"; cat "$T/push.log"; exit 1; }
M2REG=$($SK inspect --cert-dir "$T/certs" --format '{{.Digest}}' "$SRCREG/team/dock:1")
set -- $(mk_image "$T/multi" amd64 2)
A=$1 AS=$2
set -- $(mk_image "$T/multi" arm64 2)
R=$1 RS=$2
set -- $(mk_index "$T/multi" "$A" "$AS" amd64 "$R" "$RS" arm64 latest)
IDX=$1
$SK copy -q --all $DST "oci:$T/multi:latest" "$SRCREG/team/multi:latest" >>"$T/push.log" 2>&1 ||
	{ echo "Bail out! skopeo push of the index failed"; cat "$T/push.log"; exit 1; }

check "berth-export: two images (default mode)" \
	"$EXPORT" --data "$SRC" -o "$T/app.tar" team/app:v1 team/dock:1
"$EXPORT" --data "$SRC" -o "$T/twins.tar" team/app:v1 team/twin:v1 2>/dev/null ||
	echo "Bail out! export of the twins failed"
check "berth-export: the index with --all-platforms" \
	"$EXPORT" --data "$SRC" -o "$T/all.tar" --all-platforms team/multi:latest
berthd_stop

# ---- import into a second store ----------------------------------------
DATA=$T/data2
"$STAT" --data "$DATA" --init >/dev/null
t_offline() {
	"$IMPORT" --data "$DATA" "$T/app.tar" >"$T/out" 2>"$T/err" &&
		grep -qx "berth-import: imported team/app:v1 $M1" "$T/out" &&
		grep -qx "berth-import: imported team/dock:1 $M2REG" "$T/out" &&
		[ "$(wc -l <"$T/out")" = 2 ] && [ ! -s "$T/err" ]
}
check "offline import: one line per image with its manifest digest" t_offline
berthd_start
cp "$CA" "$T/certs/ca.crt"
REG="docker://$HOSTPORT"
t_online() {
	"$IMPORT" --data "$DATA" --quiet - <"$T/all.tar" >"$T/out" 2>"$T/err" &&
		grep -qx "berth-import: imported team/multi:latest $IDX" "$T/out" &&
		kill -0 "$BERTHD_PID"
}
check "import from a pipe beside a running berthd: the whole index" t_online
# digest_of REF: sha256 of the manifest skopeo gets from berthd.
digest_of() {
	$SK inspect --cert-dir "$T/certs" --raw "$REG/$1" | sha256sum | cut -d' ' -f1
}
t_pull() {
	[ "sha256:$(digest_of team/app:v1)" = "$M1" ] &&
		[ "sha256:$(digest_of team/dock:1)" = "$M2REG" ] &&
		[ "sha256:$(digest_of team/multi:latest)" = "$IDX" ] &&
		[ "sha256:$(digest_of team/multi@$A)" = "$A" ] &&
		[ "sha256:$(digest_of team/multi@$R)" = "$R" ]
}
check "skopeo inspect --raw: the registry's manifest digests" t_pull
t_copy() {
	$SK copy -q --all --src-cert-dir "$T/certs" "$REG/team/multi:latest" "oci:$T/back:l" &&
		[ "$(json "$T/back/index.json" 'j["manifests"][0]["digest"]')" = "$IDX" ] &&
		for d in "$T"/multi/blobs/sha256/*; do
			cmp "$d" "$T/back/blobs/sha256/$(basename "$d")" || return 1
		done &&
		$SK copy -q --src-cert-dir "$T/certs" "$REG/team/app:v1" "oci:$T/back1:v1" &&
		for d in "$T"/img/blobs/sha256/*; do
			cmp "$d" "$T/back1/blobs/sha256/$(basename "$d")" || return 1
		done
}
check "skopeo copy pulls every blob back byte for byte" t_copy
t_fsck() {
	"$FSCK" --data "$DATA" --quiet
}
check "fsck is clean after the imports" t_fsck
t_again() {
	"$IMPORT" --data "$DATA" -q "$T/app.tar" >/dev/null 2>"$T/err" &&
		"$STAT" --data "$DATA" | grep -qx 'uploads	0' &&
		[ "sha256:$(digest_of team/app:v1)" = "$M1" ]
}
check "importing the same archive again changes nothing" t_again

# ---- archives of other tools ----------------------------------------------
t_sk_oci() {
	$SK copy -q --src-cert-dir "$T/certs" "$REG/team/app:v1" \
		"oci-archive:$T/sk.tar:docker.io/skopeo/app:s1" &&
		"$IMPORT" --data "$DATA" -q "$T/sk.tar" >"$T/out" 2>"$T/err" &&
		grep -qx "berth-import: imported skopeo/app:s1 $M1" "$T/out" &&
		[ "sha256:$(digest_of skopeo/app:s1)" = "$M1" ]
}
check "skopeo oci-archive: (name docker.io/skopeo/app:s1 -> skopeo/app:s1)" t_sk_oci
t_sk_tag() {
	$SK copy -q --src-cert-dir "$T/certs" "$REG/team/app:v1" "oci-archive:$T/skt.tar:only" &&
		{ "$IMPORT" --data "$DATA" -q "$T/skt.tar" >/dev/null 2>"$T/err"; [ $? = 1 ]; } &&
		grep -q 'give --repo' "$T/err" &&
		"$IMPORT" --data "$DATA" -q --repo team/bytag "$T/skt.tar" >"$T/out" &&
		grep -qx "berth-import: imported team/bytag:only $M1" "$T/out"
}
check "a tag-only name needs --repo" t_sk_tag
t_sk_docker() {
	$SK copy -q --src-cert-dir "$T/certs" "$REG/team/app:v1" \
		"docker-archive:$T/skd.tar:skd/app:1" &&
		"$IMPORT" --data "$DATA" -q "$T/skd.tar" >"$T/out" 2>"$T/err" &&
		C1=$(json "$(blob_of "$T/img" "$M1")" 'j["config"]["digest"]') &&
		[ "$($SK inspect --cert-dir "$T/certs" --config --raw "$REG/skd/app:1" | sha256sum | cut -d' ' -f1)" = "${C1#sha256:}" ]
}
check "skopeo docker-archive: (classic layout): same config digest" t_sk_docker

mkdir -p "$T/rootfs/etc"
head -c 300000 /dev/urandom >"$T/rootfs/etc/data.bin"
echo "berth import" >"$T/rootfs/etc/motd"
tar -C "$T/rootfs" -cf "$T/rootfs.tar" .
if command -v podman >/dev/null && [ "$(id -u)" = 0 ]; then
	PM="podman --root $T/pstore --runroot $T/prun --storage-driver vfs"
	t_podman() {
		$PM import -q "$T/rootfs.tar" pm/app:v1 >/dev/null &&
			PID=$($PM image inspect --format '{{.Id}}' pm/app:v1) &&
			$PM save -q --format docker-archive -o "$T/pm.tar" pm/app:v1 &&
			"$IMPORT" --data "$DATA" -q "$T/pm.tar" >"$T/out" 2>"$T/err" &&
			grep -q "^berth-import: imported pm/app:v1 " "$T/out" &&
			$PM pull -q --cert-dir "$T/certs" "$HOSTPORT/pm/app:v1" >/dev/null &&
			[ "$($PM image inspect --format '{{.Id}}' "$HOSTPORT/pm/app:v1")" = "$PID" ]
	}
	check "podman save (localhost/pm/app:v1) imported, pulled back: same ID" t_podman
else
	skip "podman save import: podman missing or not root"
fi

dockerd_start
if [ -z "$DOCKER_WHY" ]; then
	t_docker() {
		$DK import "$T/rootfs.tar" dk/app:v1 >/dev/null &&
			DID=$($DK image inspect --format '{{.Id}}' dk/app:v1) &&
			$DK save -o "$T/dk.tar" dk/app:v1 &&
			tar -tf "$T/dk.tar" | grep -q '/layer.tar$' &&
			"$IMPORT" --data "$DATA" -q "$T/dk.tar" >"$T/out" 2>"$T/err" &&
			grep -q "^berth-import: imported dk/app:v1 " "$T/out" &&
			$DK rmi dk/app:v1 >/dev/null &&
			$DK pull -q "$HOSTPORT/dk/app:v1" >/dev/null &&
			[ "$($DK image inspect --format '{{.Id}}' "$HOSTPORT/dk/app:v1")" = "$DID" ]
	}
	check "docker save (classic layout) imported, docker pull: same image ID" t_docker
	# skopeo converts the image to OCI on the way (a new config and
	# manifest): docker must pull the archive's config as the image ID.
	t_docker_sk() {
		$SK copy -q --src-cert-dir "$T/certs" "$REG/dk/app:v1" \
			"oci-archive:$T/dks.tar:dk/fromsk:v1" &&
			$SK inspect --raw "oci-archive:$T/dks.tar:dk/fromsk:v1" >"$T/dks.json" &&
			"$IMPORT" --data "$DATA" -q "$T/dks.tar" >/dev/null 2>"$T/err" &&
			$DK pull -q "$HOSTPORT/dk/fromsk:v1" >/dev/null &&
			[ "$($DK image inspect --format '{{.Id}}' "$HOSTPORT/dk/fromsk:v1")" = \
				"$(json "$T/dks.json" 'j["config"]["digest"]')" ]
	}
	check "its skopeo oci-archive: copy imported, docker pull: the config digest" t_docker_sk
else
	skip "docker save import: $DOCKER_WHY"
	skip "docker pull of a skopeo oci-archive: import: $DOCKER_WHY"
fi

# ---- refusals: the store stays as it was --------------------------------
snapshot() {
	"$STAT" --data "$DATA" | grep -v '^map_used' >"$1" &&
		for r in team/app team/dock team/multi skopeo/app; do
			curl -sf --cacert "$CA" "$URL/v2/$r/tags/list" >>"$1" || return 1
		done
}
snapshot "$T/before"
# hostile NAME KIND: writes $T/h-NAME.tar: some real blobs of the image
# first (so uploads are open when the bad entry comes), then the defect.
python3 - "$T" "$T/img" <<'P'
import io, os, sys, tarfile
t, img = sys.argv[1], sys.argv[2]
blobs = sorted(os.listdir(img + "/blobs/sha256"))
def start(name):
    tf = tarfile.open(f"{t}/h-{name}.tar", "w", format=tarfile.USTAR_FORMAT)
    for b in blobs:
        tf.add(f"{img}/blobs/sha256/{b}", f"blobs/sha256/{b}")
    return tf
def data(tf, name, b):
    ti = tarfile.TarInfo(name); ti.size = len(b)
    tf.addfile(ti, io.BytesIO(b))
def finish(tf):
    tf.add(img + "/oci-layout", "oci-layout"); tf.add(img + "/index.json", "index.json")
    tf.close()
tf = start("dotdot"); data(tf, "blobs/../../x", b"x"); finish(tf)
tf = start("abs"); data(tf, "/tmp/berth-evil", b"x"); finish(tf)
tf = start("symlink")
ti = tarfile.TarInfo("blobs/sha256/" + "0" * 64); ti.type = tarfile.SYMTYPE; ti.linkname = "/etc/passwd"
tf.addfile(ti); finish(tf)
tf = start("mismatch"); data(tf, "blobs/sha256/" + "1" * 64, b"not what the name says"); finish(tf)
tf = tarfile.open(f"{t}/h-legacy.tar", "w", format=tarfile.USTAR_FORMAT)
cfg = b'{"rootfs":{"type":"layers","diff_ids":["sha256:' + b"2" * 64 + b'"]}}'
import hashlib
h = hashlib.sha256(cfg).hexdigest()
data(tf, h + ".json", cfg)
data(tf, "manifest.json", ('[{"Config":"%s.json","RepoTags":["team/app:v1"],"Layers":["abc/layer.tar"]}]' % h).encode())
tf.close()
tf = tarfile.open(f"{t}/h-legacylink.tar", "w", format=tarfile.USTAR_FORMAT)
data(tf, h + ".json", cfg)
ti = tarfile.TarInfo("abc/layer.tar"); ti.type = tarfile.SYMTYPE; ti.linkname = "../../../etc/passwd"
tf.addfile(ti)
data(tf, "manifest.json", ('[{"Config":"%s.json","RepoTags":["team/app:v1"],"Layers":["abc/layer.tar"]}]' % h).encode())
tf.close()
P
head -c $(($(stat -c %s "$T/app.tar") / 2)) "$T/app.tar" >"$T/h-truncated.tar"
# refused NAME PATTERN: exit 1, one line on stderr matching PATTERN.
refused() {
	"$IMPORT" --data "$DATA" -q "$T/h-$1.tar" >"$T/out" 2>"$T/err"
	refused_check $? "$2"
}
# refused_check RC PATTERN: what refused checks once the import ran.
refused_check() {
	rc=$1
	set -- "" "$2"
	cat "$T/err"
	[ $rc = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q -- "$2" "$T/err" &&
		[ ! -s "$T/out" ] && snapshot "$T/after" && diff "$T/before" "$T/after" &&
		"$STAT" --data "$DATA" | grep -qx 'uploads	0'
}
check "'../' entry: refused, store unchanged" refused dotdot 'entry blobs/../../x: refused'
check "absolute path: refused, store unchanged" refused abs 'entry /tmp/berth-evil: refused'
check "symlink entry: refused, store unchanged" refused symlink "entry blobs/sha256/0000.*symbolic link"
check "blob not matching its name: refused, store unchanged" refused mismatch "entry blobs/sha256/1111.*does not match"
check "truncated archive: refused, store unchanged" refused truncated 'truncated'
check "manifest.json names a missing layer: refused, store unchanged" refused legacy 'layer abc/layer.tar is not in the archive'
check "manifest.json names a symlink: refused, store unchanged" refused legacylink 'entry abc/layer.tar: refused: a symbolic link'
[ -e /tmp/berth-evil ] && notok "nothing was written outside the store" || ok "nothing was written outside the store"

# Planning bounds: a small archive must not buy a large plan.
python3 - "$T" <<'P'
import hashlib, io, json, sys, tarfile
t = sys.argv[1]
def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()
def put(tf, name, b):
    ti = tarfile.TarInfo(name); ti.size = len(b)
    tf.addfile(ti, io.BytesIO(b))
# classic: one item naming one layer 4095 times under 1024 RepoTags, and
# a second item whose config is missing (refused after the first).
layer = b"L"
cfg = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha(layer)] * 4095}}).encode()
items = [{"Config": "c.json", "RepoTags": ["many/r%d:t" % i for i in range(1024)],
          "Layers": ["l.tar"] * 4095},
         {"Config": "gone.json", "RepoTags": ["many/z:t"], "Layers": []}]
with tarfile.open(t + "/h-manytags.tar", "w", format=tarfile.USTAR_FORMAT) as tf:
    put(tf, "l.tar", layer); put(tf, "c.json", cfg)
    put(tf, "manifest.json", json.dumps(items).encode())
# OCI: 4095 tiny layers, one manifest named by 64 repositories.
layers = [b"l%d" % i for i in range(4095)]
c = b'{"rootfs":{"type":"layers","diff_ids":[]}}'
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(c), "size": len(c)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(l), "size": len(l)}
               for l in layers]}).encode()
idx = {"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(m), "size": len(m),
     "annotations": {"io.containerd.image.name": "many/o%d:t" % i}} for i in range(64)]}
with tarfile.open(t + "/h-manyrepos.tar", "w", format=tarfile.USTAR_FORMAT) as tf:
    for b in layers + [c, m]:
        put(tf, "blobs/sha256/" + hashlib.sha256(b).hexdigest(), b)
    put(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    put(tf, "index.json", json.dumps(idx).encode())
# an index whose child descriptor claims a size its manifest does not have
cm = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(c), "size": len(c)},
    "layers": []}).encode()
ix = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(cm),
                   "size": len(cm) + 1, "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
with tarfile.open(t + "/h-kidsize.tar", "w", format=tarfile.USTAR_FORMAT) as tf:
    for b in [c, cm, ix]:
        put(tf, "blobs/sha256/" + hashlib.sha256(b).hexdigest(), b)
    put(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    put(tf, "index.json", json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(ix), "size": len(ix),
         "annotations": {"io.containerd.image.name": "team/kid:1"}}]}).encode())
P
# bounded NAME PATTERN: refused as above within 5 s and 200 MB.
bounded() {
	/usr/bin/time -f '%e %M' -o "$T/time" \
		"$IMPORT" --data "$DATA" -q "$T/h-$1.tar" >"$T/out" 2>"$T/err"
	refused_check $? "$2" || return 1
	read -r secs kb <<E
$(tail -n 1 "$T/time")
E
	echo "$1: $secs s, $kb KB"
	[ "${secs%.*}" -lt 5 ] && [ "$kb" -lt 204800 ]
}
if [ -x /usr/bin/time ]; then
	check "1024 RepoTags x 4095 layers: refused in < 5 s and < 200 MB, store unchanged" \
		bounded manytags 'config gone.json is not in the archive'
	check "64 repositories x 4095 layers: refused by the planning limit, store unchanged" \
		bounded manyrepos 'references planned across'
else
	skip "planning bounds: /usr/bin/time missing"
	skip "planning bounds: /usr/bin/time missing"
fi
check "an index's child descriptor with the wrong size: refused, store unchanged" \
	refused kidsize 'bytes, its descriptor says'

# SIGINT while the archive is read from a FIFO: exit 1, nothing imported,
# and the next FILE is reported as not imported rather than skipped.
t_sigint() {
	rm -f "$T/fifo" && mkfifo "$T/fifo" || return 1
	{ head -c $(($(stat -c %s "$T/app.tar") / 2)) "$T/app.tar"; sleep 3; } >"$T/fifo" &
	feeder=$!
	"$IMPORT" --data "$DATA" -q "$T/fifo" "$T/app.tar" >"$T/out" 2>"$T/err" &
	imp=$!
	sleep 1
	kill -INT "$imp"
	wait "$imp"
	rc=$?
	kill "$feeder" 2>/dev/null
	wait "$feeder" 2>/dev/null
	cat "$T/err"
	[ $rc = 1 ] && grep -q "fifo: interrupted; nothing imported" "$T/err" &&
		grep -q "app.tar: not imported: interrupted" "$T/err" &&
		[ ! -s "$T/out" ] && snapshot "$T/after" && diff "$T/before" "$T/after" &&
		"$STAT" --data "$DATA" | grep -qx 'uploads	0'
}
check "SIGINT during an import from a FIFO: exit 1, store unchanged" t_sigint
t_prefix_repo() {
	"$IMPORT" --data "$DATA" -q --repo-prefix pfx --repo team/bytag "$T/skt.tar" >"$T/out" 2>"$T/err" &&
		grep -qx "berth-import: imported pfx/team/bytag:only $M1" "$T/out"
}
check "--repo-prefix applies to the --repo name too" t_prefix_repo
berthd_stop
check "fsck is clean after the refusals" t_fsck

# One archive, one image in two repositories: every blob the second needs
# is linked to it (in one batch of durable links), so a client pulls the
# second repository's image whole, and fsck agrees.
DATA=$T/data3
"$STAT" --data "$DATA" --init >/dev/null
t_twins() {
	"$IMPORT" --data "$DATA" -q "$T/twins.tar" >"$T/out" 2>"$T/err" &&
		grep -qx "berth-import: imported team/twin:v1 $M1" "$T/out"
}
check "import of one image in two repositories" t_twins
berthd_start
cp "$CA" "$T/certs/ca.crt"
REG="docker://$HOSTPORT"
t_twin_pull() {
	rm -rf "$T/twinpull"
	$SK copy -q --src-cert-dir "$T/certs" "$REG/team/twin:v1" \
		"oci:$T/twinpull:v1" &&
		for d in "$T"/img/blobs/sha256/*; do
			cmp "$d" "$T/twinpull/blobs/sha256/$(basename "$d")" || return 1
		done
}
check "the second repository's blobs are linked: pulled byte for byte" t_twin_pull
berthd_stop
check "fsck is clean after the linked import" t_fsck
t_usage() {
	"$IMPORT" --data "$DATA" 2>/dev/null
	[ $? = 2 ] || return 1
	"$IMPORT" --data "$DATA" --bogus "$T/app.tar" 2>/dev/null
	[ $? = 2 ] || return 1
	"$IMPORT" --help | grep -q 'usage: berth-import'
}
check "bad arguments: exit 2; --help" t_usage
tap_end
