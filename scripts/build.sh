#!/usr/bin/env bash
# Configures (once) and builds emotune into build/ against Debian's libtorch 1.13 (CPU); the binary
# is build/emotune.
# EMOTUNE_CUDA=1 builds into build-cuda/ instead, against the libtorch 2.x (CUDA) of PyPI's torch
# wheel (scripts/fetch-libtorch.sh puts it in build-cuda/site/torch) and the CUDA toolkit at CUDA_HOME
# (default /usr/local/cuda; nvcc and its libraries). The binary is build-cuda/emotune.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${EMOTUNE_CUDA:-0}" = 1 ]; then
  cuda="${CUDA_HOME:-/usr/local/cuda}"
  [ -x "$cuda/bin/nvcc" ] || { echo "build.sh: EMOTUNE_CUDA=1 needs the CUDA toolkit (no $cuda/bin/nvcc; set CUDA_HOME)" >&2; exit 1; }
  scripts/fetch-libtorch.sh build-cuda/site
  [ -f build-cuda/CMakeCache.txt ] || cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$PWD/build-cuda/site/torch/share/cmake" -DCUDAToolkit_ROOT="$cuda" \
    -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc" -DTORCH_CUDA_ARCH_LIST=9.0
  cmake --build build-cuda -j"$(nproc)"
  exit 0
fi
[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
