#!/bin/sh
# berth-backup beside a berthd under push load: plain and compacted copies,
# each a store that berth-fsck finds clean and a berthd serves with every
# image pushed before the copy began. Refusals: an existing destination,
# missing arguments, a source that is not a store. Prints TAP.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl not installed"
BACKUP=${BACKUP:-$top_builddir/tools/berth-backup}
FSCK=${FSCK:-$top_builddir/tools/berth-fsck}

berthd_start --no-tls
push_image "$T/base" bak/app v1 2500000 >/dev/null 2>&1
check "an image is pushed" test -s "$T/base/digest"

(
	i=0
	while [ ! -f "$T/stop" ]; do
		i=$((i + 1))
		push_image "$T/l$i" bak/load "t$i" $((300000 + i * 7001)) && echo "$i" >>"$T/done" ||
		    echo "push $i failed"
	done
) >"$T/load.out" 2>&1 &
LOAD=$!
for _ in $(seq 1 100); do
	[ -s "$T/done" ] && break
	sleep 0.1
done
cp "$T/done" "$T/before1"
"$BACKUP" --data "$DATA" --quiet "$T/copy1" >"$T/b1.out" 2>&1
rc1=$?
cp "$T/done" "$T/before2"
"$BACKUP" --data "$DATA" --compact --verify --quiet "$T/copy2" >"$T/b2.out" 2>&1
rc2=$?
touch "$T/stop"
wait "$LOAD"
check "a copy beside pushes: exit 0, one line" sh -c \
	"[ $rc1 -eq 0 ] && grep -q 'copied to $T/copy1' $T/b1.out && [ -f $T/copy1/data.mdb ]"
check "a compacted, verified copy: exit 0, no errors" sh -c \
	"[ $rc2 -eq 0 ] && grep -q 'compacted' $T/b2.out && grep -q ', 0 errors' $T/b2.out"
check "no temporary folder is left" sh -c "! ls -d $T/copy*.partial-* 2>/dev/null"
check "the pushes went on during the copies" sh -c \
	"! grep -q failed $T/load.out && [ \$(wc -l <$T/done) -gt \$(wc -l <$T/before2) ]"
check "berth-fsck finds both copies clean" sh -c \
	"$FSCK --data $T/copy1 --quiet && $FSCK --data $T/copy2 --quiet"
# Free pages (deleted blobs) are copied as they are, or left out by --compact.
for i in 1 2 3; do
	curl -sf -X DELETE -o /dev/null "$URL/v2/bak/load/blobs/$(cat "$T/l$i/digest")"
done
"$BACKUP" --data "$DATA" --quiet "$T/plain" >/dev/null 2>&1 &&
    "$BACKUP" --data "$DATA" --compact --quiet "$T/compact" >/dev/null 2>&1
check "after deletes, the compacted copy of the same store is smaller" sh -c \
	"[ \$(stat -c %s $T/compact/data.mdb) -lt \$(stat -c %s $T/plain/data.mdb) ] &&
	 $FSCK --data $T/compact --quiet"

berthd_stop
for c in copy1 copy2; do
	DATA=$T/$c berthd_start --no-tls
	n=0 bad=0
	for i in $(cat "$T/before${c#copy}"); do
		n=$((n + 1))
		curl -sf "$URL/v2/bak/load/manifests/t$i" | cmp -s - "$T/l$i/man" &&
		    curl -sf "$URL/v2/bak/load/blobs/$(cat "$T/l$i/digest")" | cmp -s - "$T/l$i/blob" ||
		    bad=$((bad + 1))
	done
	check "berthd on $c serves the base image and all $n images pushed before the copy" sh -c \
		"[ $bad -eq 0 ] && [ $n -gt 0 ] &&
		 curl -sf $URL/v2/bak/app/manifests/v1 | cmp - $T/base/man &&
		 curl -sf $URL/v2/bak/app/blobs/$(cat "$T/base/digest") | cmp - $T/base/blob"
	berthd_stop
done

"$BACKUP" --data "$T/copy1" "$T/copy2" >"$T/e1.out" 2>&1
rc1=$?
"$BACKUP" --data "$T/copy1" >"$T/e2.out" 2>&1
rc2=$?
mkdir "$T/notastore"
"$BACKUP" --data "$T/notastore" "$T/copy3" >"$T/e3.out" 2>&1
rc3=$?
check "an existing destination is refused (exit 1, untouched)" sh -c \
	"[ $rc1 -eq 1 ] && grep -q 'already exists' $T/e1.out && $FSCK --data $T/copy2 --quiet"
check "a missing DEST is a usage error (exit 2)" sh -c \
	"[ $rc2 -eq 2 ] && grep -q 'required' $T/e2.out"
check "a source that is not a store: exit 1, one line, nothing created" sh -c \
	"[ $rc3 -eq 1 ] && [ \$(wc -l <$T/e3.out) -eq 1 ] && [ ! -e $T/copy3 ]"

tap_end
