#!/usr/bin/env bash
# The one prepared check of idmm's CUDA path (a few minutes on one H100/H200; runs on a CPU too, with
# the CUDA parts skipped). Writes OUT_DIR/gpu_check.json (keys: see scripts/gpu_check.py) and
# OUT_DIR/gpu_check.log.
#
#   scripts/gpu_check.sh OUT_DIR
#
# The GPU machine has no network and lacks some of idmm's dependencies (textual, plotext, pydantic,
# tomli-w, ...): bring them as wheels, made here with `scripts/gpu_wheels.sh` into .gpu-wheels/, and
# this script installs them and the project without the network. It uses the torch it finds.
set -uo pipefail
OUT=${1:?usage: scripts/gpu_check.sh OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
PY=${PYTHON:-python3}
echo "gpu_check: $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') python $($PY -V 2>&1)"
nvidia-smi 2>/dev/null || echo "nvidia-smi: not found (no NVIDIA driver here)"

if ! $PY -c "import idmm_tui.cli, pydantic, textual, plotext, tomli_w, pytest" 2>/dev/null; then
  if [ -d .gpu-wheels ]; then
    echo "installing dependencies from .gpu-wheels (no network)"
    $PY -m pip install -q --no-index --find-links .gpu-wheels pydantic tomli-w textual textual-plotext plotext pytest \
      || echo "warning: some wheels did not install"
  fi
  $PY -m pip install -q --no-deps --no-build-isolation -e . || { echo "cannot install idmm"; exit 2; }
fi
$PY scripts/gpu_check.py --out "$OUT"
