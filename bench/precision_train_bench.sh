#!/usr/bin/env bash
# Training speed in float32 and bf16 (bfloat16 products, float32 master weights) in one run: `emotune
# bench train` and the plain PyTorch loop (bench/pytorch_bench.py; bf16 = torch.autocast("cpu",
# bfloat16)), each precision back to back on the same random batches, with the ratios.
#   bench/precision_train_bench.sh MODEL_DIR [STEPS]     (default 20 steps of batch 16)
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; steps="${2:-20}"
data="${EMOTUNE_SHARED:-../shared}/data/goemotions/train.tsv"
py=build/pyenv/bin/python
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; model: $model"
field() { $py -c "import json,sys; d=json.loads(sys.stdin.read()); print(d['$1'])"; }
declare -A rate
for precision in f32 bf16; do
  e=$(build/emotune bench train --model "$model" --data "$data" --steps "$steps" --batch-size 16 --precision "$precision" 2>/dev/null)
  p=$($py bench/pytorch_bench.py train --model "$model" --data "$data" --steps "$steps" --batch-size 16 --precision "$precision" 2>/dev/null)
  rate[e$precision]=$(echo "$e" | field tokens_per_s)
  rate[p$precision]=$(echo "$p" | field tokens_per_s)
  echo "$precision  emotune $(echo "$e" | field examples_per_s | xargs printf '%.1f') ex/s, ${rate[e$precision]%.*} tok/s (p50 step $(echo "$e" | field step_ms_p50 | xargs printf '%.0f') ms)" \
       " | pytorch $(echo "$p" | field examples_per_s | xargs printf '%.1f') ex/s, ${rate[p$precision]%.*} tok/s"
done
$py - "${rate[ef32]}" "${rate[ebf16]}" "${rate[pf32]}" "${rate[pbf16]}" <<'PY'
import sys
e32, e16, p32, p16 = map(float, sys.argv[1:])
print(f"emotune/pytorch: f32 {e32 / p32:.2f}x, bf16 {e16 / p16:.2f}x | bf16/f32: emotune {e16 / e32:.2f}x, "
      f"pytorch {p16 / p32:.2f}x | emotune bf16 / pytorch f32 {e16 / p32:.2f}x")
PY
