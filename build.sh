#!/usr/bin/env bash
# build.sh - install what is missing, build, and run one job.
#
#   ./build.sh demo    Release build; persist a million-node graph, reopen it
#                      in a new process, walk part of it, print what loaded
#   ./build.sh test    the whole suite: Debug build under both fault backends,
#                      then AddressSanitizer+UndefinedBehaviorSanitizer, then
#                      ThreadSanitizer
#   ./build.sh bench   Release build; run the benchmarks in bench/
#
# Needs root (or the packages already installed) on Debian.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(cmake make gcc pkg-config liblmdb-dev libzstd-dev libxxhash-dev libcmocka-dev)
JOBS=$(nproc 2>/dev/null || echo 2)

install_missing() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" ||
        { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
}

build() { # dir, cmake args...
    local dir=$1
    shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}

suite() { # dir, label
    echo "== tests: $2"
    (cd "$1" && ctest --output-on-failure -j "$JOBS")
}

job=${1:-}
case "$job" in
demo)
    install_missing
    build build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
    dir=$(mktemp -d)/demo.cairn
    ./build/release/bench/demo "$dir" 1000000 1000
    rm -rf "$(dirname "$dir")"
    ;;
test)
    install_missing
    build build/debug -DCMAKE_BUILD_TYPE=Debug
    suite build/debug "Debug, both fault backends"
    build build/asan -DCMAKE_BUILD_TYPE=Debug -DCAIRN_ASAN=ON
    suite build/asan "AddressSanitizer + UndefinedBehaviorSanitizer, both fault backends"
    build build/tsan -DCMAKE_BUILD_TYPE=Debug -DCAIRN_TSAN=ON
    suite build/tsan "ThreadSanitizer, both fault backends"
    ;;
bench)
    install_missing
    build build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
    ./build/release/bench/fault_cost
    ;;
*)
    echo "usage: $0 demo|test|bench" >&2
    exit 2
    ;;
esac
