#!/bin/sh
# Bearer tokens (berthd --token): the challenge names berthd's own realm
# and the scope a request needs; /token issues ES256 tokens to users (and
# anonymous clients where rules allow) granting only what the access file
# gives; tokens are checked on every route (scope, tampering, another
# service); Basic credentials keep working; skopeo and podman complete the
# flow unchanged. Prints TAP.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/oci_layout.sh"
command -v curl >/dev/null || skip_all "curl not installed"
command -v htpasswd >/dev/null || skip_all "htpasswd (apache2-utils) not installed"
command -v python3 >/dev/null || skip_all "python3 not installed"

private_blob_cache

htpasswd -cbB -C 5 "$T/htpasswd" alice apple-pie 2>/dev/null
htpasswd -bB -C 5 "$T/htpasswd" bob banana-split 2>/dev/null
cat >"$T/access" <<'A'
allow alice team/** all
allow bob team/** pull
allow anonymous public/** pull
allow alice public/** all
A
berthd_start --htpasswd "$T/htpasswd" --access "$T/access" --token
CURL="curl -s --cacert $CA"
check "the signing key is made in the data folder, private" sh -c \
	"[ \$(stat -c %a $DATA/auth/token-key.pem) = 600 ]"
CURL_OPTS="--cacert $CA -u alice:apple-pie" push_image "$T/app" team/app v1 200000 >/dev/null 2>&1
CURL_OPTS="--cacert $CA -u alice:apple-pie" push_image "$T/pub" public/lib v1 100000 >/dev/null 2>&1
check "Basic credentials still push in token mode" test -s "$T/pub/digest"

$CURL -D "$T/h1" -o /dev/null "$URL/v2/"
$CURL -D "$T/h2" -o /dev/null "$URL/v2/team/app/manifests/v1"
$CURL -D "$T/h3" -o /dev/null -X POST "$URL/v2/team/app/blobs/uploads/"
check "challenges name the realm, the service and the scope needed" sh -c "
	grep -qi '^WWW-Authenticate: Bearer realm=\"$URL/token\",service=\"berth\"' $T/h1 &&
	grep -qi 'scope=\"repository:team/app:pull\"' $T/h2 &&
	grep -qi 'scope=\"repository:team/app:pull,push\"' $T/h3"

# token CREDS SCOPE...: prints the token
token() {
	cr=$1
	shift
	q="service=berth"
	for sc in "$@"; do q="$q&scope=$sc"; done
	$CURL $cr "$URL/token?$q" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
# claims TOKEN: the payload, decoded
claims() {
	python3 -c 'import base64,sys; p=sys.argv[1].split(".")[1]; print(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)).decode())' "$1"
}
AT=$(token "-u alice:apple-pie" repository:team/app:pull,push registry:catalog:*)
BT=$(token "-u bob:banana-split" repository:team/app:pull,push,delete repository:public/lib:push)
NT=$(token "" repository:public/lib:pull repository:team/app:pull)
claims "$AT" >"$T/at.json"
claims "$BT" >"$T/bt.json"
claims "$NT" >"$T/nt.json"
check "tokens grant what the rules give: alice pull+push, bob pull only, anonymous public pull" sh -c "
	grep -q '\"sub\":\"alice\".*\"name\":\"team/app\",\"actions\":\\[\"pull\",\"push\"\\]' $T/at.json &&
	grep -q '\"name\":\"team/app\",\"actions\":\\[\"pull\"\\]' $T/bt.json &&
	! grep -q 'public/lib' $T/bt.json &&
	grep -q '\"sub\":\"\".*\"name\":\"public/lib\"' $T/nt.json &&
	! grep -q 'team/app' $T/nt.json"
check "a wrong password gets no token" sh -c \
	"[ \$($CURL -u alice:nope -o /dev/null -w '%{http_code}' '$URL/token?service=berth') = 401 ]"
check "another service gets no token" sh -c \
	"[ \$($CURL -u alice:apple-pie -o /dev/null -w '%{http_code}' '$URL/token?service=elsewhere') = 400 ]"

s1=$($CURL -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BT" "$URL/v2/team/app/manifests/v1")
s2=$($CURL -o "$T/b2" -w '%{http_code}' -H "Authorization: Bearer $BT" -X DELETE "$URL/v2/team/app/manifests/v1")
s3=$($CURL -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $NT" "$URL/v2/public/lib/manifests/v1")
s4=$($CURL -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $NT" "$URL/v2/team/app/manifests/v1")
check "bob's token pulls, is denied a delete; an anonymous token pulls public only" sh -c \
	"[ $s1 = 200 ] && [ $s2 = 403 ] && grep -q DENIED $T/b2 && [ $s3 = 200 ] && [ $s4 = 401 ]"
PT=$(token "-u alice:apple-pie" repository:team/app:pull)
$CURL -D "$T/h4" -o /dev/null -H "Authorization: Bearer $PT" -X POST "$URL/v2/team/app/blobs/uploads/"
check "a token without the action alice has: 401 asking for the scope" sh -c \
	"grep -q '^HTTP/1.1 401' $T/h4 && grep -qi 'scope=\"repository:team/app:pull,push\"' $T/h4"
s5=$($CURL -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $AT" -X POST "$URL/v2/team/app/blobs/uploads/")
check "with the scope granted alice starts an upload" [ "$s5" = 202 ]
TT=$(printf '%s' "$AT" | sed 's/\.\(.\)/.X\1/')
s6=$($CURL -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TT" "$URL/v2/team/app/manifests/v1")
s7=$($CURL -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${AT%?}" "$URL/v2/team/app/manifests/v1")
check "a changed or cut token is refused" sh -c "[ $s6 = 401 ] && [ $s7 = 401 ]"
CT=$(token "-u bob:banana-split" registry:catalog:*)
check "the catalog needs a token for it, and lists what its user may pull" sh -c "
	[ \$($CURL -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $BT' $URL/v2/_catalog) = 401 ] &&
	$CURL -H 'Authorization: Bearer $CT' $URL/v2/_catalog | grep -qx '{\"repositories\":\\[\"public/lib\",\"team/app\"\\]}'"
BD=$(cat "$T/app/digest")
MT=$(token "-u alice:apple-pie" repository:team/other:pull,push)
s8=$($CURL -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $MT" -X POST \
    "$URL/v2/team/other/blobs/uploads/?mount=$BD&from=team/app")
check "a mount from a repository the token does not cover is an upload (202), not a mount" [ "$s8" = 202 ]
htpasswd -D "$T/htpasswd" bob 2>/dev/null
cp "$T/access" "$T/access.keep"
sed -i '/bob/d' "$T/access"
kill -HUP "$BERTHD_PID"
sleep 1
s9=$($CURL -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BT" "$URL/v2/team/app/manifests/v1")
check "a removed user's token stops working at the reload" [ "$s9" = 401 ]
htpasswd -bB -C 5 "$T/htpasswd" bob banana-split 2>/dev/null
cp "$T/access.keep" "$T/access"
kill -HUP "$BERTHD_PID"
sleep 1
check "tokens never reach the log" sh -c "! grep -q -e '$(printf '%s' "$AT" | cut -c1-40)' -e Bearer $T/berthd.log"

if command -v skopeo >/dev/null; then
	mkdir -p "$T/certs"
	cp "$CA" "$T/certs/ca.crt"
	mk_single "$T/img" amd64 2 v1 >/dev/null
	check "skopeo copy with --dest-creds through the token flow" skopeo --insecure-policy copy \
		--dest-cert-dir "$T/certs" --dest-creds alice:apple-pie \
		"oci:$T/img:v1" "docker://$HOSTPORT/team/tok:v1"
	check "skopeo inspect as bob; copy as bob is refused" sh -c "
		skopeo inspect --cert-dir $T/certs --creds bob:banana-split docker://$HOSTPORT/team/tok:v1 >/dev/null &&
		! skopeo --insecure-policy copy --dest-cert-dir $T/certs --dest-creds bob:banana-split \
		    oci:$T/img:v1 docker://$HOSTPORT/team/tok:v2 >/dev/null 2>&1"
fi
if command -v podman >/dev/null; then
	mkdir -p "$T/pd"
	PD="podman --root $T/pd/root --runroot $T/pd/run --storage-driver vfs"
	export REGISTRY_AUTH_FILE="$T/pd/auth.json"
	check "podman login, pull, tag, push with tokens" sh -c "
		$PD login --cert-dir $T/certs -u alice -p apple-pie $HOSTPORT | grep -q 'Login Succeeded' &&
		$PD pull -q --cert-dir $T/certs $HOSTPORT/team/tok:v1 >/dev/null &&
		$PD tag $HOSTPORT/team/tok:v1 $HOSTPORT/team/tok:v3 &&
		$PD push -q --cert-dir $T/certs $HOSTPORT/team/tok:v3"
fi

tap_end
