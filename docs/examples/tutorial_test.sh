#!/bin/sh
# tutorial_test.sh PROGRAM - the command sequence of docs/TUTORIAL.md, with
# its crashes: a commit followed by SIGKILL must be there after reopening,
# a transaction killed before its commit must not be.
set -u
prog=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-tutorial.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
g=$tmp/graph.cairn
fail() {
    echo "tutorial_test: FAIL: $*" >&2
    exit 1
}

"$prog" "$g" add A B || fail "add A B"
"$prog" "$g" add B C || fail "add B C"
"$prog" "$g" add C A || fail "add C A"
out=$("$prog" "$g" show) || fail "show"
echo "$out"
[ "$out" = "3 nodes, 3 edges
  A -> B
  B -> C
  C -> A
first edges from A: A B C A (a cycle)" ] || fail "show after three adds"

clean=$(stat -c %s "$g/wal") # a closed store's log: just its header
"$prog" "$g" add C D --crash-after-commit
rc=$?
[ $rc -eq 137 ] || fail "--crash-after-commit: exit status $rc, expected 137 (SIGKILL)"
crashed=$(stat -c %s "$g/wal")
[ "$crashed" -gt "$clean" ] || fail "the log holds nothing after a commit and a crash ($crashed bytes)"
out=$("$prog" "$g" show) || fail "show after the first crash"
echo "$out"
[ "$out" = "4 nodes, 4 edges
  A -> B
  B -> C
  C -> A D
  D ->
first edges from A: A B C A (a cycle)" ] || fail "show after --crash-after-commit: C -> D must be there"
[ "$(stat -c %s "$g/wal")" -eq "$clean" ] || fail "the log was not emptied by the recovering open"

"$prog" "$g" add D A --crash-before-commit
rc=$?
[ $rc -eq 137 ] || fail "--crash-before-commit: exit status $rc, expected 137 (SIGKILL)"
out=$("$prog" "$g" show) || fail "show after the second crash"
echo "$out"
[ "$out" = "4 nodes, 4 edges
  A -> B
  B -> C
  C -> A D
  D ->
first edges from A: A B C A (a cycle)" ] || fail "show after --crash-before-commit: D -> A must not be there"
"$prog" "$g" add D A || fail "add D A after the crashes"
out=$("$prog" "$g" show) || fail "show at the end"
echo "$out"
[ "$out" = "4 nodes, 5 edges
  A -> B
  B -> C
  C -> A D
  D -> A
first edges from A: A B C A (a cycle)" ] || fail "show at the end"
echo "ok"
