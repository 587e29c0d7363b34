#!/usr/bin/env bash
# Runs emotune and its PyTorch peer back to back on the full DistilBERT shape (random init: speed
# does not depend on the weights) and prints each result and the ratios. Needs a built emotune
# (scripts/build.sh) and $EMOTUNE_SHARED (default ../shared).
#   bench/run.sh [train|infer|predict|tokenize|all] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
steps="${2:-20}"
shared="${EMOTUNE_SHARED:-../shared}"
data="$shared/data/goemotions"
model="${EMOTUNE_BENCH_MODEL:-/tmp/emotune-bench-distilbert}"
py=/usr/bin/python3
[ -f "$model/model.safetensors" ] || build/emotune init --config "$shared/models/distilbert-base-uncased" \
  --labels goemotions --out "$model" --seed 1 2>/dev/null
ratio() { $py -c "import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); \
print(f\"ratio emotune/pytorch: examples/s {a['examples_per_s']/b['examples_per_s']:.2f}x, real tokens/s {a['tokens_per_s']/b['tokens_per_s']:.2f}x\")" "$1" "$2"; }
for mode in train infer; do
  if [ "$what" = all ] || [ "$what" = "$mode" ]; then
    bs=16; [ "$mode" = infer ] && bs=32
    e=$(build/emotune bench "$mode" --model "$model" --data "$data/train.tsv" --steps "$steps" --batch-size $bs 2>/dev/null)
    p=$($py bench/pytorch_bench.py "$mode" --model "$model" --data "$data/train.tsv" --steps "$steps" --batch-size $bs)
    echo "$e"; echo "$p"; ratio "$e" "$p"
    if [ "$mode" = infer ]; then
      q=$(build/emotune bench infer --model "$model" --data "$data/train.tsv" --steps "$steps" --batch-size $bs --quantize int8 2>/dev/null)
      echo "$q"; echo -n "int8: "; ratio "$q" "$p"
    fi
  fi
done
if [ "$what" = all ] || [ "$what" = predict ]; then
  $py bench/predict_bench.py build/emotune "$model" "$data/dev.tsv"
fi
if [ "$what" = all ] || [ "$what" = tokenize ]; then
  build/tokenize_bench "$shared/models/distilbert-base-uncased" "$data"/{train,dev,test}.tsv
fi
