#!/bin/sh
# check_install.sh BUILD_DIR SOURCE_DIR CC [CFLAGS] - the packaging test.
#
# Installs the build in BUILD_DIR into a temporary prefix (cmake --install),
# checks the files a consumer needs are there, then builds
# consumer/hello.c against that installed copy four ways:
#   pkg-config, shared library     cc ... $(pkg-config --cflags --libs cairn)
#   pkg-config, static library     the same with --static and libcairn.a
#   CMake find_package(cairn)      cairn::cairn and cairn::cairn_static
# checks each binary took the library it should from the prefix, and runs
# each twice under both fault backends: the first run writes a store and
# reads it back, the second (a new process) must find what the first wrote.
# CFLAGS are the sanitizer flags of the build, if any: a consumer of an
# instrumented library must be built with them too.
set -eu
build=$1
src=$2
cc=$3
cflags=${4:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() {
    echo "check_install: FAIL: $*" >&2
    exit 1
}

echo "== cmake --install $build --prefix <tmp>/prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
    cat "$tmp/install.log"
    fail "cmake --install"
}

# The files.
cmp "$prefix/include/cairn.h" "$src/include/cairn.h" || fail "installed cairn.h differs from include/cairn.h"
pc=$(find "$prefix" -name cairn.pc)
[ -n "$pc" ] || fail "no cairn.pc installed"
libdir=$(dirname "$(dirname "$pc")")
for f in libcairn.a libcairn.so libcairn.so.0; do
    [ -e "$libdir/$f" ] || fail "$libdir/$f not installed"
done
config=$(find "$prefix" -name cairnConfig.cmake)
[ -n "$config" ] || fail "no cairnConfig.cmake installed"
[ -e "$(dirname "$config")/cairnConfigVersion.cmake" ] || fail "no cairnConfigVersion.cmake installed"
[ -x "$prefix/bin/cairn" ] || fail "the cairn command is not installed in bin/"
"$prefix/bin/cairn" --help >/dev/null || fail "the installed cairn command does not run"
echo "installed: include/cairn.h, ${libdir#$prefix/}/{libcairn.so,libcairn.a}, ${pc#$prefix/}, ${config#$prefix/}, bin/cairn"

# NEEDED entries of a binary.
needed() {
    readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
}
# The binary must load libcairn.so from the prefix, not from anywhere else.
expect_shared() {
    needed "$1" | grep -qx 'libcairn.so.0' || fail "$1 does not link libcairn.so.0"
    where=$(env -u LD_LIBRARY_PATH ldd "$1" | sed -n 's/^[[:space:]]*libcairn.so.0 => \([^ ]*\).*/\1/p')
    [ "$(readlink -f "$where")" = "$(readlink -f "$libdir/libcairn.so.0")" ] ||
        fail "$1 loads libcairn.so.0 from '$where', not from the installed prefix"
}
expect_static() {
    if needed "$1" | grep -q '^libcairn'; then
        fail "$1 should have libcairn linked in statically"
    fi
}

# pkg-config.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
echo "== pkg-config: cairn $(pkg-config --modversion cairn)"
[ "$(pkg-config --variable=libdir cairn)" -ef "$libdir" ] || fail "pkg-config libdir is not the installed one"
# shellcheck disable=SC2046,SC2086
"$cc" $cflags -o "$tmp/hello_pc_shared" "$src/docs/examples/consumer/hello.c" \
    $(pkg-config --cflags --libs cairn) -Wl,-rpath,"$libdir" || fail "pkg-config shared build"
expect_shared "$tmp/hello_pc_shared"
# Static: the same flags with --static (adds lmdb, zstd, xxhash, pthread),
# and the archive named instead of -lcairn, which would pick the .so.
static_libs=$(pkg-config --static --libs cairn | sed 's/-lcairn\b/-l:libcairn.a/')
# shellcheck disable=SC2046,SC2086
"$cc" $cflags -o "$tmp/hello_pc_static" "$src/docs/examples/consumer/hello.c" \
    $(pkg-config --cflags cairn) $static_libs || fail "pkg-config static build"
expect_static "$tmp/hello_pc_static"
unset PKG_CONFIG_PATH

# CMake.
echo "== CMake: find_package(cairn) with CMAKE_PREFIX_PATH=<tmp>/prefix"
CC=$cc cmake -S "$src/docs/examples/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="$cflags" >"$tmp/consumer.log" 2>&1 || {
    cat "$tmp/consumer.log"
    fail "configuring the find_package consumer"
}
found=$(sed -n 's/^cairn_DIR:PATH=//p' "$tmp/consumer/CMakeCache.txt")
[ "$found" -ef "$(dirname "$config")" ] || fail "find_package found cairn in '$found', not in the prefix"
cmake --build "$tmp/consumer" >>"$tmp/consumer.log" 2>&1 || {
    cat "$tmp/consumer.log"
    fail "building the find_package consumer"
}
expect_shared "$tmp/consumer/hello_shared"
expect_static "$tmp/consumer/hello_static"

# Run them all.
for prog in hello_pc_shared hello_pc_static consumer/hello_shared consumer/hello_static; do
    for backend in uffd mprotect; do
        dir=$tmp/store.$(basename "$prog").$backend
        out1=$(CAIRN_FAULT_BACKEND=$backend "$tmp/$prog" "$dir") || fail "$prog ($backend), first run: $out1"
        out2=$(CAIRN_FAULT_BACKEND=$backend "$tmp/$prog" "$dir") || fail "$prog ($backend), second run: $out2"
        case $out1 in *"wrote the note"*"read back"*) ;; *) fail "$prog ($backend), first run printed: $out1" ;; esac
        case $out2 in *"wrote"*) fail "$prog ($backend), second run wrote again: $out2" ;; esac
        case $out2 in *"read back"*) ;; *) fail "$prog ($backend), second run printed: $out2" ;; esac
    done
    echo "ok: $prog, both backends"
done
