#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test. Shared data (GoEmotions, tokenizer files)
# is read from $EMOTUNE_SHARED, by default ../shared beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# The browser test drives Chromium with playwright-core from the npm registry (pinned by the lock file).
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) || echo "test.sh: npm ci failed: the browser test will be skipped"
if [ -z "${EMOTUNE_SHARED:-}" ] && [ -d ../shared ]; then
  EMOTUNE_SHARED="$(cd ../shared && pwd)"
fi
export EMOTUNE_SHARED="${EMOTUNE_SHARED:-}"
[ -n "$EMOTUNE_SHARED" ] || echo "test.sh: no shared data found: tests that need it will be skipped"
cd build
ctest --output-on-failure --timeout 900 -j"$(nproc)"
