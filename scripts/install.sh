#!/usr/bin/env bash
# Install MQF pipeline into ./.venv (Python 3.11): the CPU build of torch first, then the project.
# Usage: bash scripts/install.sh [--dev]     (--dev adds the test and lint tools)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" - <<'PY' || { echo "install.sh: Python 3.11 is required" >&2; exit 2; }
import sys
sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)
PY

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)

# torch before anything that needs it (stable-baselines3): 2.13.0 resolves to the local CPU wheel;
# a bare or newer torch would pull several GB of CUDA packages.
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "==> installing torch==2.13.0 (CPU)"
  "${PIP[@]}" install --quiet "torch==2.13.0"
fi

extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"
echo "==> installing mqf-pipeline${extra} (editable)"
"${PIP[@]}" install --quiet -e ".${extra}"
echo "==> done: .venv/bin/mqf --help"
