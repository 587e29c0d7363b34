#!/usr/bin/env bash
# Installs the pinned peers of bench/requirements-peers.txt into build/peersenv (~4 GB: PyPI's torch
# wheel brings its CUDA libraries, which run on the CPU too); about a minute on a fast link. Skips
# the work when the venv already holds these pins.
set -euo pipefail
cd "$(dirname "$0")/.."
env=build/peersenv
stamp="$env/.requirements"
if [ -f "$stamp" ] && cmp -s "$stamp" bench/requirements-peers.txt; then exit 0; fi
python3 -m venv "$env"
"$env/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements-peers.txt
cp bench/requirements-peers.txt "$stamp"
echo "peers installed in $env: $("$env/bin/python" -c 'import torch, transformers, onnxruntime; print("torch", torch.__version__, "transformers", transformers.__version__, "onnxruntime", onnxruntime.__version__)')" >&2
