#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian machine with Python >= 3.9:
# Paddle (CPU wheel), this package (editable), test references (torch/timm), and Debian's Fashion-MNIST.
# Idempotent: a second run finds everything installed and returns quickly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Debian/Ubuntu system Pythons refuse pip installs outside a virtualenv (PEP 668); this script is the documented
# way to set up a throw-away machine, so allow it there. In a venv or pyenv the variable changes nothing.
export PIP_BREAK_SYSTEM_PACKAGES=1
WITH_DEV=${WITH_DEV:-1}

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing Debian package dataset-fashion-mnist"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "[setup] Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu)" >&2
  fi
fi

if [ "$WITH_DEV" = 1 ]; then
  "$PY" -m pip install -q -r requirements-dev.txt
else
  # paddle2onnx + onnxruntime: the fastest verified CPU backend of tools/eval.py and predict.py (optional elsewhere)
  "$PY" -m pip install -q paddlepaddle==3.2.2 paddle2onnx==2.1.0 "onnxruntime>=1.17"
fi
"$PY" -m pip install -q -e .
"$PY" -c "import paddle, passl; print('[setup] paddle', paddle.__version__, '| passl', passl.__version__)" 2>/dev/null

# passl.ops: the fused CPU kernels (Paddle custom C++ operators) need g++; build them once now into their cache
# (~/.cache/passl/ops, keyed by source hash + Paddle version), so the first training run does not wait for it.
if ! command -v g++ >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing Debian package g++ (for the fused CPU kernels)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
  else
    echo "[setup] no g++: the fused CPU kernels will fall back to pure Paddle (sudo apt-get install g++)" >&2
  fi
fi
"$PY" -c "from passl.ops import build; print('[setup] passl.ops fused CPU kernels:', 'built in ' + build.cache_dir() if build.load() else 'unavailable, pure-Paddle fallback')" 2>/dev/null | grep '^\[setup\]' || true
