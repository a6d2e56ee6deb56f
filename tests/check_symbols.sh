#!/bin/sh
# check_symbols.sh LIBRARY - fail if the static library defines a global
# symbol outside the cairn_ prefix: a static consumer links every global
# of libcairn.a, so an internal name such as wal_open would collide with
# the program's own.  Names the compiler's sanitizers emit (__asan_*,
# __odr_asan*, __tsan_*, __ubsan_*, __sancov*) belong to the toolchain.
set -eu
lib=$1
command -v nm >/dev/null || { echo "check_symbols: nm not found" >&2; exit 1; }
all=$(nm -g --defined-only "$lib" | awk 'NF == 3 { print $3 }')
[ -n "$all" ] || { echo "check_symbols: $lib defines no global symbol at all" >&2; exit 1; }
bad=$(printf '%s\n' "$all" | grep -v -e '^cairn_' -e '^__asan' -e '^__odr_asan' -e '^__tsan' -e '^__ubsan' -e '^__sancov' || true)
if [ -n "$bad" ]; then
    echo "check_symbols: $lib exports globals outside cairn_*:" >&2
    printf '  %s\n' $bad >&2
    exit 1
fi
echo "check_symbols: $(printf '%s\n' "$all" | grep -c '^cairn_') globals, all cairn_*"
