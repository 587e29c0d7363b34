#!/usr/bin/env bash
# Load benchmark of `emotune serve` on loopback with wrk (Debian's): single-text requests at
# 1, 8 and 64 connections on the full DistilBERT shape (random init; speed does not depend on
# the weights), then in-process single-text latency through `emotune predict` for comparison.
#   bench/serve_bench.sh [SECONDS per level] [extra serve flags, e.g. --quantize int8]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-15}"
shift || true
shared="${EMOTUNE_SHARED:-../shared}"
model="${EMOTUNE_BENCH_MODEL:-/tmp/emotune-bench-distilbert}"
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
[ -f "$model/model.safetensors" ] || build/emotune init --config "$shared/models/distilbert-base-uncased" \
  --labels goemotions --out "$model" --seed 1 2>/dev/null
port=18181
build/emotune serve --model "$model" --port $port --max-batch 32 --max-wait-ms 5 "$@" 2>/dev/null &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
for c in 1 8 64; do
  t=$(( c < 2 ? 1 : 2 ))
  echo -n "connections=$c "
  wrk -t$t -c$c -d"${secs}s" --timeout 30s -s bench/serve_post.lua "http://127.0.0.1:$port" | grep RESULT
done
curl -s "http://127.0.0.1:$port/metrics" | grep -E "^emotune_batch_size_(sum|count)"
