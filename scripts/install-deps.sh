#!/usr/bin/env bash
# Installs emotune's Debian build and test dependencies; skips what is already present.
# Usage: scripts/install-deps.sh            (build + test dependencies)
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libtorch-dev libdnnl-dev libopenblas0-openmp libopenblas-openmp-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libutf8proc-dev libgtest-dev libssl-dev libcurl4-openssl-dev libcpp-httplib-dev
  # test-only: PyTorch and scikit-learn oracles, headless Chromium for the web page
  python3 python3-torch python3-numpy python3-sklearn chromium
)
# Node.js and npm drive the browser test; some machines bring their own build of Node.js (which
# includes npm and conflicts with Debian's npm package), so ask for them only when absent.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
