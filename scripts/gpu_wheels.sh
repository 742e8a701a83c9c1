#!/usr/bin/env bash
# Wheels that scripts/gpu_check.sh installs on a GPU machine without network: idmm's dependencies that such
# a machine lacks (it has torch, torchvision, timm, typer, rich, safetensors, scipy, pillow, huggingface-hub).
# Run here (package registries reachable); .gpu-wheels/ is git-ignored: carry it to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q -d .gpu-wheels --only-binary=:all: --python-version "${GPU_PYTHON:-3.11}" \
  pydantic tomli-w textual textual-plotext plotext pytest
du -sh .gpu-wheels
