#!/usr/bin/env bash
# Issue 20's measurements in one call of the lent GPU machine, on what scripts/pack-for-device.sh
# put in .device/ (carried). Everything is logged to $OUT (default /tmp/emotune-gpu), one file per
# part, and summarised in $OUT/summary.txt.
#   1. the CUDA unit tests: float32 logits against the CPU (TF32 off), 20 training steps, bf16 gap
#   2. `emotune bench train|infer --device cuda` (f32 and bf16) on the DistilBERT shape
#   3. a full 3-epoch fine-tune of the DistilBERT shape (random init) on GoEmotions, batch 16, bf16:
#      wall time; then Hugging Face Trainer (bf16, batch 16, same data, same initial weights) for
#      TRAINER_STEPS steps: examples/s and its 3-epoch time at that rate
#   4. inference over the 5,427 test texts: `emotune predict --device cuda` against transformers'
#      pipeline (batch 32 and 1) on the same card
#   5. exact resume on the GPU (dropout on): 40 steps straight against 20 + resumed 20, byte-equal
#   6. the real fine-tune: all-MiniLM-L6-v2 (float16 weights carried), the main job's recipe
#      (weighted BCE, lr 1e-4, 3 epochs, bf16), test macro-F1 with thresholds tuned on dev
# Usage (device tool): run(command="bench/gpu/device_check.sh", carry=[".device"], timeout_s=600)
# A rehearsal without a GPU (every step, a few steps each, on the CPU, with the CUDA build's libtorch):
#   CHECK_DEVICE=cpu CHECK_SMOKE=1 PYTHON=build/pyenv/bin/python TORCH_LIB=build-cuda/site/torch/lib \
#     OUT=/tmp/rehearsal bench/gpu/device_check.sh
# The first failed step ends the run (its name and line in the summary): later numbers would rest on it.
set -euo pipefail
cd "$(dirname "$0")/../.."
device="${CHECK_DEVICE:-cuda}"
smoke="${CHECK_SMOKE:-0}"
python="${PYTHON:-python3}"
out="${OUT:-/tmp/emotune-gpu}"
mkdir -p "$out"
summary="$out/summary.txt"
say() { echo "$*" | tee -a "$summary"; }
work="$(mktemp -d)"
trap 'say "FAILED: line $LINENO: $BASH_COMMAND (exit $?)"' ERR

# Unpack the carried binaries, libraries and data.
cp -r .device "$work/pack"
find "$work/pack" -name "*.xz" -exec xz -d {} +
chmod +x "$work/pack/bin/"*
emotune="$work/pack/bin/emotune"
data="$work/pack/shared/data/goemotions"
# The machine's PyTorch provides libtorch and, through its run path, the CUDA libraries.
torch_lib="${TORCH_LIB:-$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')}"
export LD_LIBRARY_PATH="$torch_lib:$work/pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
command -v nvidia-smi > /dev/null && say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
say "python side: $("$python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
# The rehearsal's short versions of each step.
if [ "$smoke" = 1 ]; then
  epochs=(--max-steps 6 --eval-every none); trainer_steps=3; texts=48; resume_steps=(4 2); bench_steps=(3 1)
else
  epochs=(--epochs 3); trainer_steps="${TRAINER_STEPS:-600}"; texts=0; resume_steps=(40 20); bench_steps=(200 20)
fi
# Built on Debian 12 (glibc 2.34 and GCC 12's libstdc++ needed): an older C++ runtime there is replaced.
if ldd "$emotune" 2>&1 | grep -q "GLIBCXX.*not found"; then
  export LD_LIBRARY_PATH="$work/pack/lib-cxx:$LD_LIBRARY_PATH"
  say "using the carried libstdc++ (the machine's is older than GCC 12's)"
fi
if ldd "$emotune" | grep -q "not found"; then
  ldd "$emotune" | grep "not found" | tee -a "$summary"
  exit 1
fi
say "$("$emotune" --version)"
timed() {  # NAME SECONDS COMMAND...: runs it for at most SECONDS, logs to $out/NAME.log, says its wall time
  local name="$1" limit="$2"; shift 2
  local t0 rc=0
  t0=$(date +%s%N)
  timeout "$limit" "$@" > "$out/$name.log" 2>&1 || rc=$?
  say "$name: rc $rc, wall $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  return $rc
}

# 1. Unit tests on the GPU.
timed unit_tests 120 "$work/pack/bin/emotune_tests" --gtest_filter='*Cuda*'
grep -E "^\[  (PASSED|FAILED|SKIPPED) *\] [0-9]|^\[  FAILED  \] [A-Z]|bf16     \]" "$out/unit_tests.log" | tee -a "$summary" || true

# 2. Throughput on random batches of the DistilBERT shape.
db="$work/distilbert"
"$emotune" init --config "$work/pack/shared/models/distilbert-base-uncased" --labels goemotions --out "$db" --seed 1 \
  > "$out/init.log" 2>&1
for p in f32 bf16; do
  [ "$device" = cpu ] && [ "$p" = bf16 ] && continue  # bf16 on the CPU needs oneDNN, which this build lacks
  for mode in train infer; do
    timeout 60 "$emotune" bench "$mode" --device "$device" --precision "$p" --model "$db" --data "$data/train.tsv" \
      --steps "${bench_steps[0]}" --warmup "${bench_steps[1]}" 2>>"$out/bench.log" | tee -a "$summary"
  done
done

# 3. The full fine-tune, then the Trainer on the same card.
precision=bf16
[ "$device" = cpu ] && precision=f32
timed "full_finetune_$precision" 240 "$emotune" train --model "$db" --data-dir "$data" --output "$work/full" "${epochs[@]}" \
  --batch-size 16 --lr 2e-5 --device "$device" --precision "$precision" --seed 42 --save-total-limit 1
{ grep '"eval"' "$work/full/metrics.jsonl" || true; } | tail -1 | tee -a "$summary"  # none in the rehearsal
PYTHONUNBUFFERED=1 timeout 200 "$python" bench/gpu/hf_gpu_peer.py trainer --model "$db" --data "$data/train.tsv" \
  --steps "$trainer_steps" 2>"$out/trainer.log" | tee -a "$summary"

# 4. Inference over the test texts.
cut -f1 "$data/test.tsv" | { [ "$texts" = 0 ] && cat || head -n "$texts"; } > "$work/test_texts.txt"
say "test texts: $(wc -l < "$work/test_texts.txt")"
for p in f32 bf16; do
  [ "$device" = cpu ] && [ "$p" = bf16 ] && continue
  timed "predict_$p" 60 "$emotune" predict --model "$work/full" --device "$device" --precision "$p" \
    --input "$work/test_texts.txt" --format jsonl
done
PYTHONUNBUFFERED=1 timeout 150 "$python" bench/gpu/hf_gpu_peer.py pipeline --model "$work/full" \
  --data "$data/test.tsv" --texts "$texts" 2>"$out/pipeline.log" | tee -a "$summary"

# 5. Exact resume with dropout on.
resume_args=(train --model "$db" --data-dir "$data" --output "$work/resume" --max-steps "${resume_steps[0]}"
             --save-every "${resume_steps[1]}" --batch-size 16 --lr 1e-4 --device "$device" --seed 3 --eval-every none)
timeout 90 "$emotune" "${resume_args[@]}" > "$out/resume.log" 2>&1
cp "$work/resume/model.safetensors" "$work/straight.safetensors"
rm -rf "$work/resume/checkpoints/step-${resume_steps[0]}" "$work/resume/model.safetensors"
timeout 90 "$emotune" "${resume_args[@]}" --resume >> "$out/resume.log" 2>&1
if cmp -s "$work/straight.safetensors" "$work/resume/model.safetensors"; then say "resume on $device: exact"
else say "resume on $device: NOT exact"; exit 1; fi

# 6. The real fine-tune: the main job's recipe on the GPU.
timed minilm_train 200 "$emotune" train --base "$work/pack/minilm" --data-dir "$data" --output "$work/minilm" \
  "${epochs[@]}" --lr 1e-4 --loss weighted-bce --device "$device" --precision "$precision" --seed 42 --save-total-limit 1
timeout 120 "$emotune" eval --model "$work/minilm" --data-dir "$data" --split test --thresholds tuned --device "$device" \
  > "$out/minilm_eval.txt" 2>&1
grep -i -m3 "macro\|micro" "$out/minilm_eval.txt" | tee -a "$summary"
cp "$work/full/metrics.jsonl" "$out/full_metrics.jsonl"
cp "$work/minilm/metrics.jsonl" "$out/minilm_metrics.jsonl"
rm -rf "$work"
