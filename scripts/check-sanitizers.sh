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
  cmake -S . -B build-asan -DEMOTUNE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
  cmake --build build-asan -j"$jobs" --target emotune_tests
  # Leaks are left to the fuzzers (which do not load libtorch): libtorch keeps allocations to exit.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build-asan/tests/emotune_tests --gtest_brief=1
fi
if [ "$what" = all ] || [ "$what" = fuzz ]; then
  cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DEMOTUNE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
  cmake --build build-fuzz -j"$jobs"
  for target in fuzz/corpus/*/; do
    name="$(basename "$target")"
    mkdir -p "build-fuzz/corpus/$name"
    log="build-fuzz/fuzz_$name.log"
    if ! (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 "fuzz/fuzz_$name" -max_total_time="${EMOTUNE_FUZZ_SECONDS:-20}" \
            -rss_limit_mb=2048 -timeout=10 "corpus/$name" "../fuzz/corpus/$name" > "fuzz_$name.log" 2>&1); then
      tail -40 "$log"
      echo "fuzz_$name failed: the input is in build-fuzz/ (crash-*, leak-*, timeout-*)"
      exit 1
    fi
    echo "fuzz_$name: $(grep -E '^Done' "$log")"
  done
fi
