#!/usr/bin/env bash
# build.sh - install what is missing, build, and run one job.
#
#   ./build.sh demo    Release build; persist a million-node graph, reopen it
#                      in a new process, walk part of it, print what loaded
#   ./build.sh test    the whole suite: Debug build under both fault backends,
#                      then AddressSanitizer+UndefinedBehaviorSanitizer, then
#                      the threaded tests under ThreadSanitizer
#   ./build.sh bench   Release build; run the benchmarks in bench/
#   ./build.sh compare [NODES]  Release build; cairn against malloc, raw mmap,
#                      LMDB, SQLite and PMDK on one graph of NODES nodes
#                      (default 2,000,000); tables, data and plot in
#                      bench/results/ (see docs/PERFORMANCE.md)
#   ./build.sh fuzz [SECONDS]   libFuzzer (clang) on the log, extent and
#                      catalog decoders and on damaged data.mdb files,
#                      SECONDS each (default 60)
#   ./build.sh soak [CYCLES]    the SIGKILL loop, CYCLES per fault backend
#                      (default 10000; about 0.2 s a cycle)
#   ./build.sh powerloss        simulated power loss at every sync point of
#                      every workload, full damage patterns
#   ./build.sh scale   the scale figures at full size: a 16 GiB store with a
#                      random quarter of its pages touched (both backends),
#                      pager memory per page, two threads against one, open
#                      time against store and log size (about 25 minutes)
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

suite() { # dir, label, [ctest selection args]
    local dir=$1 label=$2
    shift 2
    echo "== tests: $label"
    (cd "$dir" && ctest --output-on-failure -j "$JOBS" "$@")
}

# Tests that run several threads in one store: these also run under
# ThreadSanitizer (the single-threaded crash and fuzz suites do not need to).
THREADED='^(threads|evict|pager|txn|checkpoint|alloc|smoke|readers|killthreads)\.'

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
    # bench/compare's CI run links SQLite and PMDK.
    PACKAGES+=(libsqlite3-dev libpmemobj-dev)
    install_missing
    build build/debug -DCMAKE_BUILD_TYPE=Debug
    suite build/debug "Debug, both fault backends"
    build build/asan -DCMAKE_BUILD_TYPE=Debug -DCAIRN_ASAN=ON
    suite build/asan "AddressSanitizer + UndefinedBehaviorSanitizer, both fault backends"
    build build/tsan -DCMAKE_BUILD_TYPE=Debug -DCAIRN_TSAN=ON
    suite build/tsan "ThreadSanitizer, threaded tests, both fault backends" -R "$THREADED"
    ;;
fuzz)
    PACKAGES+=(clang libclang-rt-14-dev)
    install_missing
    secs=${2:-60}
    CC=clang cmake -S . -B build/fuzz -DCAIRN_FUZZ=ON -DCAIRN_BUILD_BENCH=OFF >/dev/null
    cmake --build build/fuzz -j "$JOBS" --target fuzzers
    for h in wal extent catalog lmdb; do
        mkdir -p "build/fuzz/corpus/$h"
        # The scratch corpus comes first: libFuzzer adds new inputs there,
        # so the committed seeds in tests/fuzz/corpus do not grow.
        "build/fuzz/tests/fuzz/fuzz_$h" -max_total_time="$secs" -timeout=30 -dict="tests/fuzz/$h.dict" \
            -artifact_prefix="build/fuzz/$h-" "build/fuzz/corpus/$h" "tests/fuzz/corpus/$h"
    done
    ;;
soak)
    install_missing
    build build/debug -DCMAKE_BUILD_TYPE=Debug
    for b in uffd mprotect; do
        echo "== kill loop, $b backend"
        CAIRN_FAULT_BACKEND=$b ./build/debug/tests/crash/killloop --cycles "${2:-10000}"
    done
    ;;
powerloss)
    install_missing
    build build/debug -DCMAKE_BUILD_TYPE=Debug
    for b in uffd mprotect; do
        echo "== power loss, $b backend"
        CAIRN_FAULT_BACKEND=$b ./build/debug/tests/powerloss/powerloss
    done
    ;;
scale)
    install_missing
    build build/release -DCMAKE_BUILD_TYPE=Release
    for b in uffd mprotect; do
        echo "== 16 GiB store, random quarter of its pages touched, $b backend"
        CAIRN_FAULT_BACKEND=$b CAIRN_SCALE_GIB=16 CAIRN_SCALE_FRACTION=4 ./build/release/tests/test_scale
    done
    for b in uffd mprotect; do
        echo "== $b backend"
        CAIRN_FAULT_BACKEND=$b ./build/release/bench/footprint 4
        CAIRN_FAULT_BACKEND=$b ./build/release/bench/scale_threads
    done
    echo "== open time: 64 MiB and 10 GiB stores, clean and after a crash"
    ./build/release/bench/open_time 10
    ;;
bench)
    install_missing
    build build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
    for b in fault_cost scale_threads evict_policy alloc_overhead readahead hugepages readers log_sync commit_rate; do
        echo "== $b"
        "./build/release/bench/$b"
    done
    ;;
compare)
    PACKAGES+=(libsqlite3-dev libpmemobj-dev gnuplot-nox)
    install_missing
    build build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
    ./build/release/bench/compare/compare -n "${2:-2000000}" -o bench/results
    ;;
*)
    echo "usage: $0 demo|test|bench|compare|fuzz|soak|powerloss|scale" >&2
    exit 2
    ;;
esac
