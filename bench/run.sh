#!/usr/bin/env bash
# Runs emotune and the peers users pick instead, back to back on the same batches, and prints each
# result (one JSON line) and then the ratios, like for like (bench/compare.py):
#   train    emotune f32 and bf16 against a current PyTorch (bench/requirements-peers.txt): the plain
#            loop eager and torch.compile'd, and the Trainer, each in f32 and bf16 autocast; batches of 16
#   infer    batches of 16: emotune f32, bf16, int8 against ONNX Runtime (fused f32, quantize_dynamic
#            int8) and the current PyTorch (eager, compiled, bf16)
#   latency  one text at a time (p50 over STEPS x 5 texts): emotune f32 and int8 against ONNX Runtime's
#   predict  whole-split prediction against build/pyenv's loop and pipeline()
#   tokenize tokenizers (build/peersenv's), one thread, ids only, equal word caches
# Debian's torch 1.13 (build/pyenv), the peer of the earlier figures, runs too, marked as such.
# Every side runs with the same threads (every core) and the best OpenBLAS kernels this CPU allows
# (OPENBLAS_CORETYPE: SkylakeX with AVX-512, Haswell with AVX2 and FMA), whatever the environment set.
# The model is the full DistilBERT shape by default (random init: speed does not depend on the
# weights); EMOTUNE_BENCH_CONFIG picks another config directory (config.json and tokenizer).
# Needs a built emotune (scripts/build.sh), the test environment (scripts/install-test-deps.sh), the
# peers (bench/install-peers.sh, run here when missing) and $EMOTUNE_SHARED (default ../shared).
#   bench/run.sh [train|infer|latency|predict|tokenize|all] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
steps="${2:-20}"
shared="${EMOTUNE_SHARED:-../shared}"
data="$shared/data/goemotions"
config="${EMOTUNE_BENCH_CONFIG:-$shared/models/distilbert-base-uncased}"
model="${EMOTUNE_BENCH_MODEL:-/tmp/emotune-bench-$(basename "$config")}"
py=build/pyenv/bin/python
peers=build/peersenv/bin/python
bench/install-peers.sh
[ -f "$model/model.safetensors" ] || build/emotune init --config "$config" --labels goemotions --out "$model" --seed 1 2>/dev/null
rm -rf "$model/onnx"  # exported again from these weights

flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { [[ "$flags" == *" $1 "* ]]; }
if has avx512f && has avx512bw && has avx512dq && has avx512vl; then export OPENBLAS_CORETYPE=SkylakeX
elif has avx2 && has fma; then export OPENBLAS_CORETYPE=Haswell
fi
bf16=no
if has avx512_bf16 || has amx_bf16; then bf16=yes; fi
threads=$(nproc)
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} for every side; threads $threads; bf16 products: $bf16; model: $model"

results="$(mktemp)"
trap 'rm -f "$results" "$results.err"' EXIT
# record GROUP COMMAND...: runs one side, prints its line, keeps it for the ratios.
record() {
  local group=$1 line
  shift
  if ! line=$("$@" 2> "$results.err" | tail -1) || [ -z "$line" ]; then
    echo "failed ($group): $* -- $(grep -v Warning "$results.err" | tail -1)"
    return 0
  fi
  echo "$line"
  $py -c "import json,sys; r=json.loads(sys.argv[1]); r['group']=sys.argv[2]; print(json.dumps(r))" "$line" "$group" >> "$results"
}
emotune_bench() { build/emotune bench "$@" --model "$model" --data "$data/train.tsv" --threads "$threads"; }
torch_bench() { local python=$1; shift; (cd bench && "../$python" pytorch_bench.py "$@" --model "$model" --data "$data/train.tsv" --threads "$threads"); }
ort_bench() { (cd bench && "../$peers" onnx_bench.py "$@" --model "$model" --data "$data/train.tsv" --threads "$threads"); }
precisions=(f32); [ $bf16 = yes ] && precisions+=(bf16)

if [ "$what" = all ] || [ "$what" = train ]; then
  for p in "${precisions[@]}"; do
    record train emotune_bench train --steps "$steps" --batch-size 16 --precision "$p"
    record train torch_bench "$peers" train --steps "$steps" --batch-size 16 --precision "$p"
    record train torch_bench "$peers" train --steps "$steps" --batch-size 16 --precision "$p" --compile
    record train torch_bench "$peers" trainer --steps "$steps" --batch-size 16 --precision "$p"
  done
  record train torch_bench "$py" train --steps "$steps" --batch-size 16
fi
if [ "$what" = all ] || [ "$what" = infer ]; then
  for p in "${precisions[@]}" int8; do record infer emotune_bench infer --steps "$steps" --batch-size 16 --precision "$p"; done
  record infer ort_bench --steps "$steps" --batch-size 16
  record infer ort_bench --steps "$steps" --batch-size 16 --quantize int8
  for p in "${precisions[@]}"; do
    record infer torch_bench "$peers" infer --steps "$steps" --batch-size 16 --precision "$p"
    record infer torch_bench "$peers" infer --steps "$steps" --batch-size 16 --precision "$p" --compile
  done
  record infer torch_bench "$py" infer --steps "$steps" --batch-size 16
fi
if [ "$what" = all ] || [ "$what" = latency ]; then
  n=$((steps * 5))
  for p in f32 int8; do record latency emotune_bench infer --steps "$n" --batch-size 1 --precision "$p"; done
  record latency ort_bench --steps "$n" --batch-size 1
  record latency ort_bench --steps "$n" --batch-size 1 --quantize int8
  record latency torch_bench "$peers" infer --steps "$n" --batch-size 1
fi
if [ -s "$results" ]; then
  echo "--- ratios (emotune against the best peer of the same precision; CPU and settings above)"
  $py bench/compare.py "$results"
fi
if [ "$what" = all ] || [ "$what" = predict ]; then
  $py bench/predict_bench.py build/emotune "$model" "$data/dev.tsv"
fi
if [ "$what" = all ] || [ "$what" = tokenize ]; then
  for tok in distilbert-base-uncased roberta-base; do
    build/tokenize_bench "$shared/models/$tok" "$data"/{train,dev,test}.tsv
    $peers bench/tokenize_peer.py "$shared/models/$tok" "$data"/{train,dev,test}.tsv
  done
fi
