#!/usr/bin/env bash
# Installs emotune's Debian build and test dependencies; skips what is already present.
# Usage: scripts/install-deps.sh            (build + test dependencies)
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libtorch-dev libdnnl-dev libopenblas0-openmp libopenblas-openmp-dev libgloo-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libutf8proc-dev libgtest-dev libssl-dev libcurl4-openssl-dev libboost-dev
  # the Python package's native module (python/, docs/python.md)
  python3-dev pybind11-dev
  # test-only: PyTorch and scikit-learn under the oracles (scripts/install-test-deps.sh adds
  # transformers and playwright from PyPI in a virtual environment), headless Chromium for the web page
  python3 python3-venv python3-pip python3-torch python3-numpy python3-sklearn chromium
  # test-only: the sanitizer build and the fuzzers (scripts/check-sanitizers.sh)
  clang libclang-rt-14-dev
  # benchmarks: GNU time's peak memory (bench/quality.sh, bench/monitor_bench.sh)
  time
  # test-only: two "hosts" in network namespaces for the multi-host training test
  iproute2
)

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
