#!/bin/sh
# berth-fsck against a real berthd's data folder: clean while pushes and
# deletes run beside it (text and --json), then a byte flipped in a stored
# layer: exit 4 naming the image, --repair exit 1, pulls get BLOB_UNKNOWN,
# a clean second run, a re-push heals the blob. Usage errors and exit
# codes. Prints TAP.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl not installed"
command -v python3 >/dev/null || skip_all "python3 not installed"
FSCK=${FSCK:-$top_builddir/tools/berth-fsck}

berthd_start --no-tls

push_image "$T/base" fsck/app v1 3000000 >"$T/push.out" 2>&1
check "an image is pushed" test -s "$T/base/digest"

# Load beside fsck: pushes of new images and deletes of old ones.
(
	i=0
	while [ ! -f "$T/stop" ]; do
		i=$((i + 1))
		push_image "$T/l$i" "fsck/load$((i % 3))" "t$i" $((200000 + i * 4099)) || echo "push $i failed"
		if [ $((i % 2)) -eq 0 ] && [ -f "$T/l$((i - 1))/digest" ]; then
			curl -sf -X DELETE -o /dev/null \
			    "$URL/v2/fsck/load$(((i - 1) % 3))/manifests/t$((i - 1))" ||
			    echo "delete $i failed"
		fi
	done
) >"$T/load.out" 2>&1 &
LOAD=$!
sleep 1
runs_ok=0
for n in 1 2 3 4; do
	"$FSCK" --data "$DATA" --quiet >"$T/run$n.out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ] && grep -q ' 0 errors (0 left), 0 warnings' "$T/run$n.out"; then
		runs_ok=$((runs_ok + 1))
	else
		echo "# run $n exit $rc"; sed 's/^/# /' "$T/run$n.out"
	fi
done
"$FSCK" --data "$DATA" --json --quiet >"$T/json.out" 2>"$T/json.err"
jrc=$?
touch "$T/stop"
wait "$LOAD"
check "4 runs beside pushes and deletes exit 0 with nothing found" [ "$runs_ok" -eq 4 ]
check "the load itself never failed" sh -c "! grep -q failed $T/load.out && [ -d $T/l4 ]"
check "--json prints one document: clean, exit 0, blobs counted" python3 -c "
import json, sys
d = json.load(open('$T/json.out'))
assert $jrc == 0 and d['exit'] == 0, d['exit']
assert d['summary']['errors'] == 0 and d['problems'] == [], d['problems']
assert d['checked']['blobs'] >= 2 and d['checked']['bytes_hashed'] >= 3000000
"

berthd_stop
# Flip one byte of the stored layer (stored raw: random bytes do not compress).
python3 - "$DATA/data.mdb" "$T/base/blob" <<'EOF'
import sys
db = bytearray(open(sys.argv[1], 'rb').read())
needle = open(sys.argv[2], 'rb').read()[2000000:2000064]
i = db.find(needle)
assert i >= 0, "layer bytes not found"
db[i + 10] ^= 0x20
open(sys.argv[1], 'r+b').write(db)
EOF
"$FSCK" --data "$DATA" --quiet >"$T/bad.out" 2>&1
rc=$?
check "a flipped byte: exit 4" [ "$rc" -eq 4 ]
check "the report names the problem, the blob and the image" sh -c \
	"grep -q '^error   chunk-corrupt: blob $(cat "$T/base/digest")' $T/bad.out &&
	 grep -q 'images: fsck/app:v1' $T/bad.out && grep -q 'repair with --repair' $T/bad.out"
"$FSCK" --data "$DATA" --json --quiet >"$T/bad.json" 2>&1
check "--json reports it too, with exit 4" python3 -c "
import json
d = json.load(open('$T/bad.json'))
p = [p for p in d['problems'] if p['id'] == 'chunk-corrupt']
assert d['exit'] == 4 and len(p) == 1 and p[0]['images'] == ['fsck/app:v1'], d
assert p[0]['severity'] == 'error' and p[0]['state'] == 'found'
"
"$FSCK" --data "$DATA" --repair --quiet >"$T/repair.out" 2>&1
rc=$?
check "--repair: exit 1, the blob quarantined" sh -c \
	"[ $rc -eq 1 ] && grep -q 'repaired: quarantined' $T/repair.out"
"$FSCK" --data "$DATA" --quiet >"$T/again.out" 2>&1
rc=$?
check "a second run: exit 0, a notice about the quarantined blob" sh -c \
	"[ $rc -eq 0 ] && grep -q '^notice  blob-quarantined' $T/again.out"

berthd_start --no-tls
bd=$(cat "$T/base/digest")
code=$(curl -s -o "$T/get.out" -w '%{http_code}' "$URL/v2/fsck/app/blobs/$bd")
check "a pull of the quarantined blob gets 404 BLOB_UNKNOWN, not bad bytes" sh -c \
	"[ $code = 404 ] && grep -q BLOB_UNKNOWN $T/get.out"
check "pushing the blob again heals it" sh -c \
	"curl -sf -X POST --data-binary @$T/base/blob -o /dev/null '$URL/v2/fsck/app/blobs/uploads/?digest=$bd' &&
	 curl -sf $URL/v2/fsck/app/blobs/$bd | cmp - $T/base/blob"
"$FSCK" --data "$DATA" --quiet >"$T/healed.out" 2>&1
rc=$?
check "after the heal fsck finds nothing (berthd running)" sh -c \
	"[ $rc -eq 0 ] && grep -q ' 0 errors (0 left), 0 warnings, 0 notices' $T/healed.out"

"$FSCK" >"$T/u1.out" 2>&1
rc1=$?
"$FSCK" --data "$DATA" --jobs 0 >"$T/u2.out" 2>&1
rc2=$?
"$FSCK" --data "$DATA" --upload-expiry 3x >"$T/u3.out" 2>&1
rc3=$?
check "usage errors exit 16 with a message" sh -c \
	"[ $rc1 -eq 16 ] && [ $rc2 -eq 16 ] && [ $rc3 -eq 16 ] &&
	 grep -q 'is required' $T/u1.out && grep -q -- '--jobs' $T/u2.out &&
	 grep -q 'not a duration' $T/u3.out"
"$FSCK" --data "$T/nowhere" >"$T/op.out" 2>&1
rc=$?
mkdir "$T/empty"
"$FSCK" --data "$T/empty" >"$T/op2.out" 2>&1
rc2=$?
check "a missing folder or one that is not a store: exit 8, one line" sh -c \
	"[ $rc -eq 8 ] && [ $rc2 -eq 8 ] && [ \$(wc -l <$T/op.out) -eq 1 ] &&
	 [ \$(wc -l <$T/op2.out) -eq 1 ] && [ ! -e $T/empty/data.mdb ]"

tap_end
