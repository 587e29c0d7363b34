#!/usr/bin/env bash
# Unpacks the libtorch inside PyPI's torch wheel (headers, libraries, CMake files; CUDA 13.0 for
# torch 2.11.0, the version on the lent GPU machines) into DIR/torch for the CUDA build
# (EMOTUNE_CUDA=1 scripts/build.sh), beside the three libraries it loads that the CUDA toolkit does
# not install (cuSPARSELt, NVSHMEM, cuFile) in DIR/nvidia/*/lib: the layout of Python's
# site-packages, where libtorch's own run path looks for them. Skips what DIR already holds.
# Usage: scripts/fetch-libtorch.sh DIR [VERSION]
set -euo pipefail
dir="${1:?usage: scripts/fetch-libtorch.sh DIR [VERSION]}"
version="${2:-${EMOTUNE_TORCH_VERSION:-2.11.0}}"
if [ -f "$dir/torch/version.txt" ] && [ "$(cut -d+ -f1 "$dir/torch/version.txt")" = "$version" ]; then exit 0; fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
download() {  # the libraries in these wheels do not depend on the Python version; 3.12 is the device's
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux2014_x86_64 -d "$tmp" "$@" >&2
}
download "torch==$version"
python3 -m zipfile -e "$tmp"/torch-"$version"-*.whl "$tmp/unpacked"
# The versions this torch asks for, from its metadata (cuFile comes with its CUDA toolkit's pin).
requires() {
  grep -h "^Requires-Dist: $1==" "$tmp"/unpacked/torch-"$version".dist-info/METADATA | head -1 | sed 's/^Requires-Dist: //; s/;.*//; s/ //g'; }
extras=("$(requires nvidia-cusparselt-cu13)" "$(requires nvidia-nvshmem-cu13)" "nvidia-cufile==1.20.0.107")
download "${extras[@]}"
rm -rf "$dir"
mkdir -p "$dir/torch"
for part in include lib share version.py; do mv "$tmp/unpacked/torch/$part" "$dir/torch/"; done
for w in "$tmp"/nvidia_*.whl; do python3 -m zipfile -e "$w" "$dir"; done
python3 -c "import sys; sys.path.insert(0, '$dir/torch'); import version; print(version.__version__)" > "$dir/torch/version.txt"
echo "libtorch $(cat "$dir/torch/version.txt") in $dir/torch (with ${extras[*]})" >&2
