#!/bin/sh
# Garbage collection with real clients: berthd collecting every second
# (grace 3 s, untagged manifests too) while curl pushes images, moves tags
# and deletes manifests; afterwards every tag pulls whole, fsck finds
# nothing and the log shows what was reclaimed. Then berth-gc beside a
# running berthd: --dry-run lists and keeps, a real run deletes, usage
# errors. Prints TAP.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl not installed"
GC=${GC:-$top_builddir/tools/berth-gc}
FSCK=${FSCK:-$top_builddir/tools/berth-fsck}

berthd_start --no-tls --gc-interval 1s --gc-grace 3s --gc-untagged
check "berthd announces the periodic collection" \
	grep -q 'garbage collection every 1 s, grace 3 s, untagged' "$T/berthd.log"

end=$(($(date +%s) + 12))
i=0
fails=0
while [ "$(date +%s)" -lt "$end" ]; do
	i=$((i + 1))
	# five tags in two repositories, overwritten again and again
	repo=gc/r$((i % 2))
	push_image "$T/i$i" "$repo" "t$((i % 5))" $((100000 + i * 3001)) || fails=$((fails + 1))
	if [ $((i % 4)) -eq 0 ]; then
		# delete an older image by digest (its tag goes with it)
		j=$((i - 3))
		md="sha256:$(sha256sum "$T/i$j/man" | cut -d' ' -f1)"
		curl -sf -X DELETE -o /dev/null "$URL/v2/gc/r$((j % 2))/manifests/$md" ||
		    fails=$((fails + 1))
	fi
done
sleep 5         # past the grace period: one more collection runs
check "$i pushes and deletes while collecting, none refused" [ "$fails" -eq 0 ]
check "the collections deleted manifests and blobs" sh -c \
	"grep 'gc: deleted [1-9][0-9]* manifests, [1-9][0-9]* blobs' $T/berthd.log | grep -q ."

pulled=0 bad=0
for repo in gc/r0 gc/r1; do
	for tag in $(curl -sf "$URL/v2/$repo/tags/list" | tr -d '{}[]"' | sed 's/.*tags://' | tr ',' ' '); do
		curl -sf "$URL/v2/$repo/manifests/$tag" >"$T/m.json" || { bad=$((bad + 1)); continue; }
		for d in $(grep -o 'sha256:[0-9a-f]*' "$T/m.json"); do
			curl -sf "$URL/v2/$repo/blobs/$d" | sha256sum | grep -q "${d#sha256:}" ||
			    bad=$((bad + 1))
		done
		pulled=$((pulled + 1))
	done
done
check "every tag still pulls whole ($pulled images, each blob re-hashed)" sh -c \
	"[ $bad -eq 0 ] && [ $pulled -ge 5 ]"
"$FSCK" --data "$DATA" --quiet >"$T/fsck.out" 2>&1
check "fsck beside berthd: clean, no broken image" sh -c \
	"grep -q ' 0 errors (0 left), 0 warnings' $T/fsck.out"

# berth-gc by hand, beside berthd (whose own collection is off now).
berthd_stop
berthd_start --no-tls --gc-interval 0
push_image "$T/keep" gc/cli v1 50000 >/dev/null
push_image "$T/drop" gc/cli v2 60000 >/dev/null
md="sha256:$(sha256sum "$T/drop/man" | cut -d' ' -f1)"
curl -sf -X DELETE -o /dev/null "$URL/v2/gc/cli/manifests/$md"
"$GC" --data "$DATA" >"$T/young.out" 2>&1
check "berth-gc keeps what is younger than the grace period" sh -c \
	"grep -q 'deleted 0 manifests, 0 blobs' $T/young.out && grep -q '[1-9][0-9]* kept by the grace' $T/young.out"
"$GC" --data "$DATA" --grace 0 --dry-run >"$T/dry.out" 2>&1
check "--dry-run lists the layer and keeps it" sh -c \
	"grep -q 'would delete blob $(cat "$T/drop/digest")' $T/dry.out &&
	 curl -sf -o /dev/null $URL/v2/gc/cli/blobs/$(cat "$T/drop/digest")"
"$GC" --data "$DATA" --grace 0 --verbose >"$T/run.out" 2>&1
rc=$?
check "berth-gc --grace 0 deletes it beside berthd, the kept image pulls" sh -c \
	"[ $rc -eq 0 ] && grep -q 'deleted blob $(cat "$T/drop/digest")' $T/run.out &&
	 [ \$(curl -s -o /dev/null -w '%{http_code}' $URL/v2/gc/cli/blobs/$(cat "$T/drop/digest")) = 404 ] &&
	 curl -sf $URL/v2/gc/cli/blobs/$(cat "$T/keep/digest") | cmp - $T/keep/blob"
"$GC" >"$T/u1.out" 2>&1
rc1=$?
"$GC" --data "$DATA" --grace soon >"$T/u2.out" 2>&1
rc2=$?
"$GC" --data "$T/none" >"$T/u3.out" 2>&1
rc3=$?
check "usage errors exit 2, a missing store exits 1, one line each" sh -c \
	"[ $rc1 -eq 2 ] && [ $rc2 -eq 2 ] && [ $rc3 -eq 1 ] && [ \$(wc -l <$T/u3.out) -eq 1 ] &&
	 grep -q 'not a duration' $T/u2.out"
"$BERTHD" --data "$T/x" --gc-interval 5q >"$T/u4.out" 2>&1
check "berthd refuses a bad --gc-interval" sh -c "[ $? -ne 0 ] && grep -q 'want a duration' $T/u4.out"

tap_end
