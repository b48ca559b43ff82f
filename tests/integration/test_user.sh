#!/bin/sh
# berthd --user: started as root, it opens its port, store and keys, then
# runs as the given user with no way back to root; pushes and pulls work
# as before. Prints TAP; skipped when not root or without a `nobody` user.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl not installed"
[ "$(id -u)" = 0 ] || skip_all "needs root to change user"
NOBODY=$(id -u nobody 2>/dev/null) || skip_all "no user nobody"

berthd_start --user nobody
check "berthd logs the user it runs as" grep -q "running as nobody (uid $NOBODY" "$T/berthd.log"
check "all its user and group ids are nobody's, no capabilities left" sh -c "
	grep -q '^Uid:[[:space:]]*$NOBODY[[:space:]]*$NOBODY[[:space:]]*$NOBODY[[:space:]]*$NOBODY\$' /proc/$BERTHD_PID/status &&
	! grep '^Gid:' /proc/$BERTHD_PID/status | grep -qw 0 &&
	grep -q '^CapEff:[[:space:]]*0*\$' /proc/$BERTHD_PID/status &&
	! grep '^Groups:' /proc/$BERTHD_PID/status | grep -qw 0"
CURL_OPTS="--cacert $CA" push_image "$T/img" user/app v1 400000 >"$T/push.out" 2>&1
check "a push and a pull work after the change" sh -c "
	[ -s $T/img/digest ] &&
	curl -sf --cacert $CA $URL/v2/user/app/blobs/\$(cat $T/img/digest) | cmp - $T/img/blob"
berthd_stop
"$BERTHD" --data "$T/d2" --listen 127.0.0.1:0 --user no-such-user-here >"$T/bad.log" 2>&1
check "an unknown user stops the start with a message" sh -c \
	"[ $? -ne 0 ] && grep -q 'no-such-user-here: no such user' $T/bad.log"
"$BERTHD" --data "$T/d3" --listen 127.0.0.1:0 --user root >"$T/root.log" 2>&1
check "--user root is refused" sh -c "[ $? -ne 0 ] && grep -q 'that is root' $T/root.log"
tap_end
