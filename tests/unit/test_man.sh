#!/bin/sh
# Every man page under man/ (and berthd.conf.5 once it is generated, in
# man/ or docs/ of the build or the source tree) passes `mandoc -T lint` without a message
# of any level, style included. The one exception is "referenced manual
# not found": whether docker(1) or cron(8) are found depends on the pages
# installed on this machine, and berth's own are not installed while
# testing. Skipped, with the reason, when mandoc is missing (Debian
# package mandoc). Prints TAP.
set -u
srcdir=${srcdir:-.}
top=${top_builddir:-.}

pages=$(ls "$srcdir"/man/*.[1-9] 2>/dev/null)
# berthd.conf(5), generated from the option table: the first found.
case " $pages " in
*"/man/berthd.conf.5 "*) ;;
*)
	for p in "$top/man/berthd.conf.5" "$top/docs/berthd.conf.5" \
	    "$srcdir/docs/berthd.conf.5"; do
		if [ -f "$p" ]; then
			pages="$pages $p"
			break
		fi
	done ;;
esac
if [ -z "$pages" ]; then
	echo "1..0 # SKIP no man pages under $srcdir/man"
	exit 0
fi
if ! command -v mandoc >/dev/null 2>&1; then
	echo "1..0 # SKIP mandoc is not installed (apt-get install mandoc)"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
set -- $pages
echo "1..$(($# + 2))"
n=0
for p in "$@"; do
	n=$((n + 1))
	# Messages name the file; other lines (an outdated mandoc.db of the
	# system) are not about the page.
	mandoc -T lint "$p" >"$tmp/out" 2>&1
	grep -F "$p:" "$tmp/out" | grep -v "STYLE: referenced manual not found" \
	    >"$tmp/msgs"
	if [ -s "$tmp/msgs" ]; then
		echo "not ok $n - mandoc -T lint $(basename "$p")"
		sed 's/^/# /' "$tmp/msgs"
	else
		echo "ok $n - mandoc -T lint $(basename "$p")"
	fi
done

# References to berth's own pages (.Xr berth... N) must name a page of
# man/ with its section. berthd.conf(5) comes with the option table and
# may not exist yet.
n=$((n + 1))
have=" berthd.conf.5 "
for p in "$@"; do have="$have$(basename "$p") "; done
bad=""
for p in "$@"; do
	for ref in $(sed -n 's/^\.Xr \(berth[^ ]*\) \([1-9]\).*/\1.\2/p' "$p"); do
		case "$have" in
		*" $ref "*) ;;
		*) bad="$bad $(basename "$p")->$ref" ;;
		esac
	done
done
if [ -z "$bad" ]; then
	echo "ok $n - references between berth's pages resolve"
else
	echo "not ok $n - references to missing berth pages:$bad"
fi

# berthd(8) describes every option berthd --help lists.
n=$((n + 1))
berthd=$top/src/berthd
if [ ! -x "$berthd" ]; then
	echo "ok $n # SKIP $berthd is not built"
	exit 0
fi
missing=""
for o in $("$berthd" --help | sed -n 's/^  --\([a-z0-9-]*\).*/\1/p'); do
	case $o in help | version | config) continue ;; esac
	grep -q "^\.It .*Fl -$o\( \|\$\)" "$srcdir/man/berthd.8" ||
	    missing="$missing --$o"
done
if [ -z "$missing" ]; then
	echo "ok $n - berthd.8 describes every option of berthd --help"
else
	echo "not ok $n - berthd.8 lacks$missing"
fi
