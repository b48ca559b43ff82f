#!/bin/sh
# Authentication and authorization against a real berthd over TLS: users
# from a file `htpasswd -B` wrote, rights from an access file. Every route
# with no credentials, a wrong password, a user without the right and a
# user with it; nothing leaks in refusals; the catalog shows only what the
# caller may pull; a mount from an unreadable repository is not a mount;
# SIGHUP reloads the files (and keeps the old ones when the new are bad);
# credentials never reach the log; skopeo and podman log in and copy.
# Prints TAP.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/oci_layout.sh"
command -v curl >/dev/null || skip_all "curl not installed"
command -v htpasswd >/dev/null || skip_all "htpasswd (apache2-utils) not installed"

private_blob_cache

htpasswd -cbB -C 5 "$T/htpasswd" alice apple-pie 2>/dev/null
htpasswd -bB -C 5 "$T/htpasswd" bob banana-split 2>/dev/null
htpasswd -bB -C 5 "$T/htpasswd" carol cherry-tart 2>/dev/null
cat >"$T/access" <<'EOF'
# alice runs team/, bob reads it, carol has a scratch space
allow alice team/** all
allow bob team/** pull
allow carol scratch/* pull,push
allow anonymous public/** pull
allow alice public/** all
EOF

berthd_start --htpasswd "$T/htpasswd" --access "$T/access"
CURL="curl -s --cacert $CA"
A="-u alice:apple-pie" B="-u bob:banana-split" C="-u carol:cherry-tart"
W="-u alice:not-her-password"

# What there is to read, pushed by alice.
CURL_OPTS="--cacert $CA $A" push_image "$T/app" team/app v1 300000 >"$T/push.out" 2>&1
CURL_OPTS="--cacert $CA $A" push_image "$T/pub" public/lib v1 200000 >>"$T/push.out" 2>&1
check "alice pushes to team/ and public/" sh -c "[ -s $T/app/digest ] && [ -s $T/pub/digest ]"
BD=$(cat "$T/app/digest")
MD="sha256:$(sha256sum "$T/app/man" | cut -d' ' -f1)"

# code METHOD URLPATH CREDS [curl args]: prints the status; body in $T/body
code() {
	m=$1 p=$2 cr=$3
	shift 3
	if [ "$m" = HEAD ]; then
		$CURL $cr -I -o "$T/body" -D "$T/hdrs" -w '%{http_code}' "$@" "$URL$p"
	else
		$CURL $cr -X "$m" -o "$T/body" -D "$T/hdrs" -w '%{http_code}' "$@" "$URL$p"
	fi
}

# matrix NAME METHOD PATH ALLOWED-CREDS DENIED-CREDS GOOD-STATUS [args]
matrix() {
	name=$1 m=$2 p=$3 yes=$4 no=$5 want=$6
	shift 6
	bad=""
	s=$(code "$m" "$p" "" "$@")
	[ "$s" = 401 ] && grep -qi '^WWW-Authenticate: Basic realm="berth"' "$T/hdrs" &&
	    ! grep -q 'v1' "$T/body" || bad="$bad none:$s"
	s=$(code "$m" "$p" "$W" "$@")
	[ "$s" = 401 ] && ! grep -q 'v1' "$T/body" || bad="$bad wrong:$s"
	s=$(code "$m" "$p" "$no" "$@")
	{ [ "$m" = HEAD ] || grep -q '"DENIED"' "$T/body"; } && [ "$s" = 403 ] &&
	    ! grep -q 'v1' "$T/body" && [ "$(stat -c %s "$T/body")" -lt 200 ] ||
	    bad="$bad denied:$s"
	s=$(code "$m" "$p" "$yes" "$@")
	[ "$s" = "$want" ] || bad="$bad allowed:$s"
	check "$name: 401, 401, 403, $want$bad" [ -z "$bad" ]
}

matrix "GET tags/list" GET /v2/team/app/tags/list "$B" "$C" 200
matrix "GET manifest" GET /v2/team/app/manifests/v1 "$B" "$C" 200
matrix "HEAD manifest" HEAD /v2/team/app/manifests/v1 "$B" "$C" 200
matrix "GET blob" GET "/v2/team/app/blobs/$BD" "$B" "$C" 200
matrix "HEAD blob" HEAD "/v2/team/app/blobs/$BD" "$B" "$C" 200
matrix "GET referrers" GET "/v2/team/app/referrers/$MD" "$B" "$C" 200
matrix "PUT manifest" PUT /v2/team/app/manifests/v2 "$A" "$B" 201 \
	-H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$T/app/man"
matrix "POST upload" POST /v2/team/app/blobs/uploads/ "$A" "$B" 202
loc=$($CURL $A -X POST -D - -o /dev/null "$URL/v2/team/app/blobs/uploads/" |
    sed -n 's/^Location: *//Ip' | tr -d '\r')
matrix "PATCH upload" PATCH "$loc" "$A" "$B" 202 --data-binary 'abc'
matrix "GET upload" GET "$loc" "$A" "$B" 204
matrix "PUT upload" PUT "$loc?digest=sha256:$(printf abc | sha256sum | cut -d' ' -f1)" "$A" "$B" 201
loc=$($CURL $A -X POST -D - -o /dev/null "$URL/v2/team/app/blobs/uploads/" |
    sed -n 's/^Location: *//Ip' | tr -d '\r')
matrix "DELETE upload" DELETE "$loc" "$A" "$B" 204
matrix "DELETE manifest" DELETE /v2/team/app/manifests/v2 "$A" "$B" 202
matrix "DELETE blob" DELETE "/v2/team/app/blobs/sha256:$(printf abc | sha256sum | cut -d' ' -f1)" "$A" "$B" 202

check "GET /v2/: 401 with a challenge without or with wrong credentials, 200 signed in" sh -c "
	[ \$($CURL -o /dev/null -w '%{http_code}' $URL/v2/) = 401 ] &&
	[ \$($CURL $W -o /dev/null -w '%{http_code}' $URL/v2/) = 401 ] &&
	[ \$($CURL $C -o /dev/null -w '%{http_code}' $URL/v2/) = 200 ]"
check "anonymous pull where the access file allows it, nothing else" sh -c "
	$CURL -f $URL/v2/public/lib/manifests/v1 | cmp - $T/pub/man &&
	[ \$($CURL -o /dev/null -w '%{http_code}' -X DELETE $URL/v2/public/lib/manifests/v1) = 401 ] &&
	[ \$($CURL -o /dev/null -w '%{http_code}' -X POST $URL/v2/public/lib/blobs/uploads/) = 401 ]"
check "the catalog lists only what the caller may pull" sh -c "
	$CURL $B $URL/v2/_catalog | grep -q '\"team/app\"' &&
	$CURL $C $URL/v2/_catalog | grep -qx '{\"repositories\":\\[\"public/lib\"\\]}' &&
	$CURL $URL/v2/_catalog | grep -qx '{\"repositories\":\\[\"public/lib\"\\]}' &&
	[ \$($CURL $W -o /dev/null -w '%{http_code}' $URL/v2/_catalog) = 401 ]"
check "catalog pages count only visible repositories" sh -c "
	$CURL $A '$URL/v2/_catalog?n=1' | grep -qx '{\"repositories\":\\[\"public/lib\"\\]}' &&
	$CURL $A '$URL/v2/_catalog?n=1&last=public/lib' | grep -qx '{\"repositories\":\\[\"team/app\"\\]}'"
s=$($CURL $C -X POST -o /dev/null -w '%{http_code}' "$URL/v2/scratch/c/blobs/uploads/?mount=$BD&from=team/app")
check "a mount from a repository the caller cannot pull starts an upload (202), not a mount" [ "$s" = 202 ]
s=$($CURL $C -o /dev/null -w '%{http_code}' "$URL/v2/scratch/c/blobs/$BD")
check "... and the blob is not readable through the caller's repository" [ "$s" = 404 ]

# Reload: carol may now read team/app; then a broken file is refused.
echo "allow carol team/app pull" >>"$T/access"
kill -HUP "$BERTHD_PID"
sleep 1
check "SIGHUP reloads the access file" sh -c "
	[ \$($CURL $C -o /dev/null -w '%{http_code}' $URL/v2/team/app/manifests/v1) = 200 ] &&
	grep -q 'auth: 3 users from' $T/berthd.log"
echo "allow mallory team/** all" >>"$T/access"
kill -HUP "$BERTHD_PID"
sleep 1
check "a broken file on SIGHUP is refused with its line; the old rules stay" sh -c "
	grep -q 'access:[0-9]*: unknown user mallory' $T/berthd.log &&
	grep -q 'keeping the old users' $T/berthd.log &&
	[ \$($CURL $C -o /dev/null -w '%{http_code}' $URL/v2/team/app/manifests/v1) = 200 ]"
htpasswd -bB -C 5 "$T/htpasswd" carol new-pass 2>/dev/null
sed -i '/mallory/d' "$T/access"
kill -HUP "$BERTHD_PID"
sleep 1
check "a changed password takes effect on SIGHUP" sh -c "
	[ \$($CURL $C -o /dev/null -w '%{http_code}' $URL/v2/) = 401 ] &&
	[ \$($CURL -u carol:new-pass -o /dev/null -w '%{http_code}' $URL/v2/) = 200 ]"

check "the access log names the user, never a password or credential" sh -c "
	grep -q 'access r[0-9a-f]* 127.0.0.1:[0-9]* alice PUT' $T/berthd.log &&
	! grep -q -e apple-pie -e banana-split -e cherry-tart -e not-her-password \
	    -e '$(printf alice:apple-pie | base64)' -e 'Authorization' $T/berthd.log"

BAD="$T/bad-access"
echo "allow nobody x pull" >"$BAD"
"$BERTHD" --data "$T/d2" --listen 127.0.0.1:0 --htpasswd "$T/htpasswd" --access "$BAD" >"$T/bad.log" 2>&1
check "berthd refuses to start on a bad access file, naming file and line" sh -c "
	[ $? -ne 0 ] && grep -q 'bad-access:1: unknown user nobody' $T/bad.log"

if command -v skopeo >/dev/null; then
	mkdir -p "$T/certs"
	cp "$CA" "$T/certs/ca.crt"
	mk_single "$T/img" amd64 2 v1 >/dev/null
	check "skopeo copy with --dest-creds" skopeo --insecure-policy copy \
		--dest-cert-dir "$T/certs" --dest-creds alice:apple-pie \
		"oci:$T/img:v1" "docker://$HOSTPORT/team/sk:v1"
	check "skopeo without credentials is refused" sh -c "
		! skopeo --insecure-policy copy --dest-cert-dir $T/certs \
		    oci:$T/img:v1 docker://$HOSTPORT/team/sk:v2 2>$T/sk.err &&
		grep -qi 'unauthorized\|authentication required' $T/sk.err"
	check "skopeo inspect --creds as a reader; refused for a user without rights" sh -c "
		skopeo inspect --cert-dir $T/certs --creds bob:banana-split docker://$HOSTPORT/team/sk:v1 >/dev/null &&
		! skopeo inspect --cert-dir $T/certs --creds carol:new-pass docker://$HOSTPORT/team/sk:v1 >/dev/null 2>&1"
fi
if command -v podman >/dev/null; then
	mkdir -p "$T/pd"
	PD="podman --root $T/pd/root --runroot $T/pd/run --storage-driver vfs"
	export REGISTRY_AUTH_FILE="$T/pd/auth.json"
	check "podman login with the right password; refused with a wrong one" sh -c "
		$PD login --cert-dir $T/certs -u bob -p banana-split $HOSTPORT | grep -q 'Login Succeeded' &&
		! $PD login --cert-dir $T/certs -u bob -p wrong $HOSTPORT >/dev/null 2>&1"
	check "podman pulls as the logged-in user" \
		$PD pull -q --cert-dir "$T/certs" "$HOSTPORT/team/sk:v1"
fi

tap_end
