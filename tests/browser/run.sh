#!/usr/bin/env bash
# CTest entry for the browser test: a tiny random model, then page_test.mjs in headless Chromium.
# Usage: run.sh EMOTUNE_BINARY SCREENSHOT_DIR   (exit 77 = skipped)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
emotune="$1"; shots="$2"
shared="${EMOTUNE_SHARED:-}"
if [ -z "$shared" ] || [ ! -d "$shared/models/distilbert-base-uncased" ]; then echo "SKIPPED: EMOTUNE_SHARED not set"; exit 77; fi
if [ ! -d "$here/node_modules/playwright-core" ]; then echo "SKIPPED: run npm ci in tests/browser"; exit 77; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$emotune" init --config "$here/../../configs/distilbert-tiny.json" --tokenizer "$shared/models/distilbert-base-uncased" \
  --out "$tmp/model" --seed 3 2>/dev/null
mkdir -p "$shots"
node "$here/page_test.mjs" "$emotune" "$tmp/model" "$shots"
