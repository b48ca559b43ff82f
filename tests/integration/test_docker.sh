#!/bin/sh
# Docker Engine against a real berthd over TLS: a containerd and a dockerd
# of the test's own (all state under a temporary folder), then docker push,
# remove, pull with identical digests; a two-layer image built from
# scratch; re-pushing a tag moves it; the pushed image pulled by skopeo and
# containerd's ctr with the same digest. Prints TAP; skipped where dockerd
# cannot run (not root, no docker.io).
. "$(dirname "$0")/lib.sh"
berthd_start
mkdir -p "$T/certs"
cp "$CA" "$T/certs/ca.crt"
if ! dockerd_start; then
	case $DOCKER_WHY in
	"dockerd did not start"*)
		echo "Bail out! $DOCKER_WHY"
		sed 's/^/# /' "$T/dockerd.log" | tail -n 20
		exit 1 ;;
	*)
		skip_all "$DOCKER_WHY" ;;
	esac
fi
export DOCKER_HOST="unix://$T/docker.sock" DOCKER_CONFIG="$T/dcfg"
IMG=$HOSTPORT/dock/app
HOSTPORT_OLD=$HOSTPORT

mkdir -p "$T/rootfs/etc"
head -c 2000000 /dev/urandom >"$T/rootfs/etc/data.bin"
echo "berth test" >"$T/rootfs/etc/motd"
check "docker import makes an image" \
	sh -c "tar -C $T/rootfs -c . | docker import - $IMG:v1"
check "docker push to berth" docker push "$IMG:v1"
D1=$(docker inspect --format '{{index .RepoDigests 0}}' "$IMG:v1" | sed 's/.*@//')
check "docker rmi, then docker pull: same digest" \
	sh -c "docker rmi $IMG:v1 && docker pull $IMG:v1 &&
	    docker inspect --format '{{index .RepoDigests 0}}' $IMG:v1 | grep -q '$D1'"

mkdir -p "$T/ctx"
head -c 1000000 /dev/urandom >"$T/ctx/one"
head -c 1500000 /dev/urandom >"$T/ctx/two"
printf 'FROM scratch\nCOPY one /one\nCOPY two /two\n' >"$T/ctx/Dockerfile"
check "docker build of a two-layer image from scratch" \
	sh -c "DOCKER_BUILDKIT=0 docker build -q -t $IMG:multi $T/ctx"
check "push the two-layer image" docker push "$IMG:multi"
D2=$(docker inspect --format '{{index .RepoDigests 0}}' "$IMG:multi" | sed 's/.*@//')
check "remove and pull it back: same digest, both layers" \
	sh -c "docker rmi $IMG:multi && docker pull $IMG:multi &&
	    docker inspect --format '{{index .RepoDigests 0}} {{len .RootFS.Layers}}' $IMG:multi |
	    grep -q '$D2 2'"
check "re-pushing v1 with another image moves the tag" \
	sh -c "docker tag $IMG:multi $IMG:v1 && docker push $IMG:v1 &&
	    curl -sf --cacert $CA -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	        $URL/v2/dock/app/manifests/v1 | tr -d '\r' | grep -qi 'docker-content-digest: $D2'"
if command -v skopeo >/dev/null; then
	check "skopeo sees the docker-pushed image with the same digest" \
		sh -c "skopeo inspect --cert-dir $T/certs --format '{{.Digest}}' docker://$IMG:multi | grep -qx '$D2'"
fi
if command -v ctr >/dev/null; then
	ctr_hosts "$HOSTPORT" "$CA"
	CTR="ctr --address $T/ctd/containerd.sock -n berthtest"
	check "containerd ctr pulls the docker-pushed image" \
		sh -c "$CTR images pull --hosts-dir $T/hosts $IMG:multi &&
		    $CTR images ls | grep '$IMG:multi' | grep -q '$D2'"
	check "ctr pushes it under another name, and it reads back" \
		sh -c "$CTR images tag $IMG:multi $HOSTPORT/ctr/copy:1 &&
		    $CTR images push --hosts-dir $T/hosts $HOSTPORT/ctr/copy:1 &&
		    curl -sf --cacert $CA -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		        $URL/v2/ctr/copy/manifests/1 | tr -d '\r' | grep -qi 'docker-content-digest: $D2'"
fi
# With authentication: the same store served with users (docs/AUTH.md).
if command -v htpasswd >/dev/null; then
	htpasswd -cbB -C 5 "$T/htpasswd" alice apple-pie 2>/dev/null
	berthd_stop
	berthd_start --htpasswd "$T/htpasswd"
	IMG=$HOSTPORT/dock/auth
	docker tag "$HOSTPORT_OLD/dock/app:multi" "$IMG:1" 2>/dev/null ||
	    docker tag "$(docker images -q | head -n 1)" "$IMG:1"
	check "docker push without login is refused" sh -c \
		"! docker push $IMG:1 >$T/noauth.out 2>&1 && grep -qi 'unauthorized\|authentication required\|no basic auth' $T/noauth.out"
	check "docker login, push, rmi, pull" sh -c \
		"echo apple-pie | docker login -u alice --password-stdin $HOSTPORT | grep -q 'Login Succeeded' &&
		 docker push $IMG:1 && docker rmi $IMG:1 && docker pull $IMG:1"
	docker logout "$HOSTPORT" >/dev/null 2>&1
	if command -v ctr >/dev/null; then
		ctr_hosts "$HOSTPORT" "$CA"
		check "ctr pull --user with the password; refused without" sh -c \
			"$CTR images pull --hosts-dir $T/hosts --user alice:apple-pie $IMG:1 >/dev/null &&
			 ! $CTR images pull --hosts-dir $T/hosts $IMG:1 >/dev/null 2>&1"
	fi
	# Bearer tokens: the same clients through berthd's /token.
	berthd_stop
	berthd_start --htpasswd "$T/htpasswd" --token
	OLD=$IMG
	IMG=$HOSTPORT/dock/token
	docker tag "$OLD:1" "$IMG:1"
	check "token mode: docker push without login is refused" sh -c \
		"! docker push $IMG:1 >$T/notok.out 2>&1"
	check "token mode: docker login, push, rmi, pull" sh -c \
		"echo apple-pie | docker login -u alice --password-stdin $HOSTPORT | grep -q 'Login Succeeded' &&
		 docker push $IMG:1 && docker rmi $IMG:1 && docker pull $IMG:1"
	docker logout "$HOSTPORT" >/dev/null 2>&1
	if command -v ctr >/dev/null; then
		ctr_hosts "$HOSTPORT" "$CA"
		check "token mode: ctr pull --user; refused without" sh -c \
			"$CTR images pull --hosts-dir $T/hosts --user alice:apple-pie $IMG:1 >/dev/null &&
			 ! $CTR images pull --hosts-dir $T/hosts $IMG:1 >/dev/null 2>&1"
	fi
fi
tap_end
