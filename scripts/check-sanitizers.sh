#!/usr/bin/env bash
# The checking builds, beside the normal one: emotune's unit tests under AddressSanitizer and
# UndefinedBehaviorSanitizer (g++, build-asan/), and every libFuzzer target (clang, build-fuzz/) for
# EMOTUNE_FUZZ_SECONDS each (default 20) from its seed corpus in fuzz/corpus/. Any report fails.
# Crash inputs are left in build-fuzz/ (crash-*) to add to the corpus once fixed.
# Usage: scripts/check-sanitizers.sh [all|asan|fuzz]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
jobs="$(nproc)"
if [ "$what" = all ] || [ "$what" = asan ]; then
  # -O1 -g1 (line tables): what ASan's own documentation suggests, and half the compile time of -O2 -g
  # over libtorch's headers, with file:line in every report still.
  cmake -S . -B build-asan -DEMOTUNE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" > /dev/null
  cmake --build build-asan -j"$jobs" --target emotune_tests
  # Leaks are left to the fuzzers (which do not load libtorch): libtorch keeps allocations to exit.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build-asan/tests/emotune_tests --gtest_brief=1
fi
if [ "$what" = all ] || [ "$what" = fuzz ]; then
  cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DEMOTUNE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
  cmake --build build-fuzz -j"$jobs"
  # Two fuzzers at a time (each is one process on one core); the first failure is reported.
  fuzz_one() {
    local name=$1 log="build-fuzz/fuzz_$1.log"
    mkdir -p "build-fuzz/corpus/$name"
    if ! (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 "fuzz/fuzz_$name" -max_total_time="${EMOTUNE_FUZZ_SECONDS:-20}" \
            -rss_limit_mb=2048 -timeout=10 "corpus/$name" "../fuzz/corpus/$name" > "fuzz_$name.log" 2>&1); then
      tail -40 "$log"
      echo "fuzz_$name failed: the input is in build-fuzz/ (crash-*, leak-*, timeout-*)"
      return 1
    fi
    echo "fuzz_$name: $(grep -E '^Done' "$log")"
  }
  export -f fuzz_one
  export EMOTUNE_FUZZ_SECONDS
  ls fuzz/corpus | xargs -P "$jobs" -I{} bash -c 'fuzz_one {}' || exit 1
fi
