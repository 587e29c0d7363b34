#!/usr/bin/env bash
# Runs emotune and its Hugging Face peers back to back and prints each result and the ratios:
# training against the plain PyTorch loop and the Trainer, batch inference against the plain loop,
# whole-split prediction against the loop and pipeline(). The model is the full DistilBERT shape by
# default (random init: speed does not depend on the weights); EMOTUNE_BENCH_CONFIG picks another
# config (a directory with config.json and the tokenizer), e.g. ../shared/models/sentence-transformers--all-MiniLM-L6-v2.
# Needs a built emotune (scripts/build.sh), the test environment (scripts/install-test-deps.sh) and
# $EMOTUNE_SHARED (default ../shared). Every side runs with the same OPENBLAS_* settings.
#   bench/run.sh [train|infer|predict|tokenize|all] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
steps="${2:-20}"
shared="${EMOTUNE_SHARED:-../shared}"
data="$shared/data/goemotions"
config="${EMOTUNE_BENCH_CONFIG:-$shared/models/distilbert-base-uncased}"
model="${EMOTUNE_BENCH_MODEL:-/tmp/emotune-bench-$(basename "$config")}"
py=build/pyenv/bin/python
[ -f "$model/model.safetensors" ] || build/emotune init --config "$config" --labels goemotions --out "$model" --seed 1 2>/dev/null
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; model: $model"
ratio() { $py -c "import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); \
print(f\"ratio emotune/{b['impl']}: examples/s {a['examples_per_s']/b['examples_per_s']:.2f}x, real tokens/s {a['tokens_per_s']/b['tokens_per_s']:.2f}x\")" "$1" "$2"; }
for mode in train infer; do
  if [ "$what" = all ] || [ "$what" = "$mode" ]; then
    bs=16; [ "$mode" = infer ] && bs=32
    e=$(build/emotune bench "$mode" --model "$model" --data "$data/train.tsv" --steps "$steps" --batch-size $bs 2>/dev/null)
    p=$($py bench/pytorch_bench.py "$mode" --model "$model" --data "$data/train.tsv" --steps "$steps" --batch-size $bs)
    echo "$e"; echo "$p"; ratio "$e" "$p"
    if [ "$mode" = train ]; then
      b=$(build/emotune bench train --model "$model" --data "$data/train.tsv" --steps "$steps" --batch-size $bs --products blas 2>/dev/null)
      echo "$b"; echo -n "products through libtorch's BLAS: "; ratio "$b" "$p"
      t=$($py bench/pytorch_bench.py trainer --model "$model" --data "$data/train.tsv" --steps "$steps" --batch-size $bs)
      echo "$t"; ratio "$e" "$t"
    fi
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
  for tok in distilbert-base-uncased roberta-base; do
    build/tokenize_bench "$shared/models/$tok" "$data"/{train,dev,test}.tsv
    $py bench/tokenize_peer.py "$shared/models/$tok" "$data"/{train,dev,test}.tsv
  done
fi
