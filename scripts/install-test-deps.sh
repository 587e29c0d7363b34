#!/usr/bin/env bash
# Test-only Python packages (tests/requirements.txt: Hugging Face transformers/tokenizers as oracles
# and peers, playwright for the browser test) into build/pyenv, a virtual environment over Debian's
# python3 that also sees python3-torch, numpy and scikit-learn. Skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
env=build/pyenv
stamp="$env/.requirements.sha256"
want="$(sha256sum tests/requirements.txt | cut -d' ' -f1)"
if [ -x "$env/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "install-test-deps: $env up to date"
  exit 0
fi
mkdir -p build
/usr/bin/python3 -m venv --system-site-packages "$env"
"$env/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r tests/requirements.txt
"$env/bin/python" -c "import torch, transformers, tokenizers, playwright; print('install-test-deps: torch', torch.__version__, '/ transformers', transformers.__version__, '/ tokenizers', tokenizers.__version__)"
echo "$want" > "$stamp"
