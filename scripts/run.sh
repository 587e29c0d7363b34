#!/usr/bin/env bash
# The main job: install, build, fine-tune DistilBERT on GoEmotions with the standard recipe
# (AdamW, lr 2e-5, batch 16, 3 epochs; sigmoid + BCE), evaluate on dev, and show predictions.
#
#   EMOTUNE_BASE_MODEL  base checkpoint directory (config.json, model.safetensors, vocab.txt); default:
#                       distilbert-base-uncased from the caches, downloaded when the machine is online
#   EMOTUNE_DATA_DIR    GoEmotions directory (train.tsv, dev.tsv, test.tsv); default: ../shared's copy,
#                       else the cached download (emotune fetch goemotions)
#   EMOTUNE_OUTPUT      where the run goes (default runs/goemotions-distilbert)
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
if [ -n "${EMOTUNE_BASE_MODEL:-}" ]; then
  base="$EMOTUNE_BASE_MODEL"
else
  # The emotune cache, then the Hugging Face cache, then the hub; here (offline) this fails in one line.
  base="$(build/emotune fetch distilbert-base-uncased)" || base="(not available)"
fi
out="${EMOTUNE_OUTPUT:-runs/goemotions-distilbert}"
tokenizer="$shared/models/distilbert-base-uncased"

if [ ! -f "$data/train.tsv" ]; then
  echo "main job: GoEmotions not found in $data: set EMOTUNE_DATA_DIR to a folder with train.tsv, dev.tsv, test.tsv" >&2
  exit 2
fi

if [ -f "$base/model.safetensors" ]; then
  resume=()
  [ -d "$out/checkpoints" ] && [ ! -f "$out/model.safetensors" ] && resume=(--resume)
  build/emotune train --base "$base" --data-dir "$data" --output "$out" "${resume[@]}" "$@"
else
  echo "main job: no base checkpoint ($base); run build/emotune fetch distilbert-base-uncased on a" \
       "connected machine, or set EMOTUNE_BASE_MODEL=DIR (or run build/emotune train --base DIR)."
  echo "main job: running a QUICK DEMO instead, from a RANDOMLY INITIALISED tiny model: its numbers say nothing" \
       "about DistilBERT."
  if [ ! -f "$tokenizer/vocab.txt" ]; then
    echo "main job: no tokenizer files at $tokenizer either: set EMOTUNE_SHARED" >&2
    exit 2
  fi
  out="${EMOTUNE_OUTPUT:-runs/demo-random-init}"
  build/emotune init --config configs/distilbert-tiny.json --tokenizer "$tokenizer" --out "$out/init" --seed 1 --overwrite
  build/emotune train --model "$out/init" --data-dir "$data" --output "$out/model" --overwrite \
    --max-steps 1500 --batch-size 32 --lr 5e-4 --warmup-ratio 0.05 --loss weighted-bce --eval-every 500 --log-every 100 \
    --note "RANDOM-INIT DEMO, not a pretrained model" "$@"
  out="$out/model"
fi

echo
echo "== example predictions ($out) =="
build/emotune predict --model "$out" --format pretty --top-k 3 \
  "Thank you so much, this made my day!" \
  "I can't believe they cancelled the show, I'm furious." \
  "Wait, what? How did that even happen?" \
  "I miss my grandmother so much."
