#!/bin/sh
# run_example.sh PROGRAM COUNT - the test of one example: build its data in
# a fresh store (the program reopens and checks it itself), then check it
# again from a second process with --check.  Fails if either run fails.
set -eu
prog=$1
count=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-example.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$prog" "$tmp/store" "$count"
"$prog" --check "$tmp/store" "$count"
