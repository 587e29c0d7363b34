#!/usr/bin/env bash
# Data-parallel training on one host, in one run: `emotune train` as 1 process x 2 threads, 2 processes
# x 1 thread (--nproc-per-node 2, gloo over loopback) and 1 process x 1 thread at the same global
# batch 16; then the PyTorch peers the same three ways (the plain loop, and DistributedDataParallel
# under torchrun). emotune's rate is over its training steps (start-up and tokenizing excluded), from
# the last progress line; PyTorch's over its timed steps (bench/pytorch_bench.py). Compare the ratios.
# The DDP ranks are started with torchrun's environment by hand: Debian's torchrun (1.13) fails under
# Python 3.11 before it starts any worker.
#   bench/distributed_bench.sh MODEL_DIR [STEPS]     (default 30 steps of batch 16)
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; steps="${2:-30}"
data="${EMOTUNE_SHARED:-../shared}/data/goemotions"
py=build/pyenv/bin/python
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; model: $model"
emotune() {  # LABEL FLAGS...
  local label="$1"; shift
  build/emotune train --base "$model" --train-file "$data/train.tsv" --eval-every none --max-steps "$steps" \
    --batch-size 16 --log-every "$steps" --output "$tmp/run" --overwrite "$@" 2> "$tmp/err" || { cat "$tmp/err"; exit 1; }
  printf 'emotune  %-24s %s\n' "$label" "$(grep -o '[0-9.]* ex/s' "$tmp/err" | tail -1)"
}
pytorch() {  # LABEL COMMAND...
  local label="$1"; shift
  local rate; rate=$("$@" --model "$model" --data "$data/train.tsv" --steps "$steps" --batch-size 16 2>/dev/null |
    $py -c "import json,sys; print(f\"{json.loads(sys.stdin.read())['examples_per_s']:.1f} ex/s\")")
  printf 'pytorch  %-24s %s\n' "$label" "$rate"
}
emotune "1 process x 2 threads" --threads 2
emotune "2 processes x 1 thread" --nproc-per-node 2 --threads 1
emotune "1 process x 1 thread" --threads 1
pytorch "1 process x 2 threads" $py bench/pytorch_bench.py train --threads 2
pytorch "2 processes x 1 thread" bench/ddp2.sh $py bench/pytorch_bench.py ddp --threads 1
pytorch "1 process x 1 thread" $py bench/pytorch_bench.py train --threads 1
