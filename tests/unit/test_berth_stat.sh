#!/bin/sh
# berth-stat against a real store: creates one with --init, reads it back
# read-only, and refuses a missing folder with a one-line error and exit 1.
# Prints TAP.
set -u
bin=${top_builddir:-.}/tools/berth-stat
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; }
echo "1..4"

if "$bin" --data "$tmp/s" --init >"$tmp/out" 2>&1 &&
	grep -q "^format	1$" "$tmp/out"; then ok "init creates a format-1 store"
else notok "init creates a format-1 store"; cat "$tmp/out"; fi

if "$bin" --data "$tmp/s" >"$tmp/out" 2>&1 && grep -q "^blobs	0$" "$tmp/out"
then ok "read-only open of an existing store"
else notok "read-only open of an existing store"; cat "$tmp/out"; fi

"$bin" --data "$tmp/missing" >"$tmp/out" 2>"$tmp/err"; rc=$?
if [ $rc -eq 1 ] && grep -q "berth-stat: .*missing: not found" "$tmp/err" &&
	[ ! -e "$tmp/missing" ]; then ok "missing store: error, exit 1, nothing created"
else notok "missing store: error, exit 1, nothing created"; cat "$tmp/err"; fi

"$bin" --bogus >"$tmp/out" 2>"$tmp/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "unknown argument" "$tmp/err"; then ok "bad argument: usage, exit 2"
else notok "bad argument: usage, exit 2"; fi
