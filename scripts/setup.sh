#!/usr/bin/env bash
# Create ./.venv (once) and install cxrsynth with its test extras. Idempotent: a second run only checks.
# torch/torchvision are pinned to the releases this project is tested with (CPU runs; the wheels are CUDA builds).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/python -m pip install -q -e ".[test]"
# numba's cache of pynndescent (imported with UMAP, for the benchmark's figures), compiled once for this venv
# as pip byte-compiles: 10 to 15 s of CPU that every test run would otherwise pay (tests/conftest.py)
if [ ! -d .venv/cache/numba ]; then
  mkdir -p .venv/cache
  NUMBA_CACHE_DIR=.venv/cache/numba.tmp .venv/bin/python -W ignore -c "import umap" \
    && mv .venv/cache/numba.tmp .venv/cache/numba
fi

# Headless Chromium, for the test that opens the benchmark report in a browser (skipped without it).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "note: could not install chromium; the report-in-a-browser test will be skipped" >&2
fi
