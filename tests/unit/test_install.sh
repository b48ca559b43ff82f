#!/bin/sh
# `make install` into a temporary DESTDIR, run from the build tree (also
# under make distcheck: VPATH build, read-only sources): berthd in sbin,
# the tools in bin, every man page of man/, the example configuration and,
# when configured, the systemd unit with the build's paths substituted;
# then `make uninstall` leaves no file behind. Prints TAP.
set -u
top=${top_builddir:-.}
srcdir=${srcdir:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; }
check() { # check DESCRIPTION COMMAND...
	d=$1
	shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}

# A make of our own: not the caller's jobserver, command-line variables
# (TESTS=...) or -j.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
# The Makefile's own value of a variable, fully expanded.
printf 'berth-print-%%:\n\t@echo "$($*)"\n' >"$tmp/print.mk"
var() { make -s -C "$top" -f Makefile -f "$tmp/print.mk" "berth-print-$1"; }

sbindir=$(var sbindir) bindir=$(var bindir) mandir=$(var mandir)
sysconfdir=$(var sysconfdir) unitdir=$(var systemdsystemunitdir)
if [ -z "$sbindir" ] || [ -z "$bindir" ] || [ -z "$mandir" ]; then
	echo "1..0 # SKIP cannot read the install folders from $top/Makefile"
	exit 0
fi

echo "1..10"
if make -C "$top" install DESTDIR="$root" >"$tmp/install.log" 2>&1; then
	ok "make install DESTDIR=..."
else
	notok "make install DESTDIR=..."
	sed 's/^/# /' "$tmp/install.log" | tail -30
fi

check "berthd in sbin runs" sh -c \
    '"$1" --version | grep -q "^berthd "' sh "$root$sbindir/berthd"

missing=""
for t in berth-stat berth-fsck berth-backup berth-gc berth-export berth-import; do
	[ -x "$root$bindir/$t" ] || missing="$missing $t"
done
check "the tools in bin${missing:+ (missing:$missing)}" test -z "$missing"

missing=""
pages=$(ls "$srcdir"/man/*.[1-9] 2>/dev/null)
# berthd.conf(5), once the Makefile names it.
pages="$pages $(var BERTHD_CONF_MAN)"
for p in $pages; do
	b=$(basename "$p")
	[ -f "$root$mandir/man${b##*.}/$b" ] || missing="$missing $b"
done
check "every man page of man/ installed${missing:+ (missing:$missing)}" \
    test -n "$pages" -a -z "$missing"

check "example configuration in sysconfdir/berth" \
    test -f "$root$sysconfdir/berth/berthd.conf.example"

unit=$root$unitdir/berthd.service
if [ -z "$unitdir" ]; then
	for i in 1 2 3 4; do
		ok "# SKIP configured --with-systemdsystemunitdir=no"
	done
else
	check "systemd unit installed in $unitdir" test -f "$unit"
	check "no @...@ left in the unit" sh -c \
	    '! grep -n "@[A-Za-z_]*@" "$1"' sh "$unit"
	check "ExecStart names the installed berthd and configuration" \
	    grep -qx "ExecStart=$sbindir/berthd --config $sysconfdir/berth/berthd.conf" \
	    "$unit"
	if command -v systemd-analyze >/dev/null 2>&1; then
		# Only the unit's syntax: its paths are not installed here.
		systemd-analyze verify "$unit" >"$tmp/verify" 2>&1
		if grep -v "Command .* is not executable\|No such file\|is not executable" \
		    "$tmp/verify" | grep -qi "unknown\|invalid\|failed to parse"; then
			notok "systemd-analyze verify: no syntax error"
			sed 's/^/# /' "$tmp/verify"
		else
			ok "systemd-analyze verify: no syntax error"
		fi
	else
		ok "# SKIP no systemd-analyze"
	fi
fi

make -C "$top" uninstall DESTDIR="$root" >"$tmp/uninstall.log" 2>&1
left=$(find "$root" -type f -o -type l | sed "s|^$root||")
if [ -z "$left" ]; then
	ok "make uninstall removes every installed file"
else
	notok "make uninstall removes every installed file"
	echo "$left" | sed 's/^/# left: /'
fi
