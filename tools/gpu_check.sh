#!/usr/bin/env bash
# The GPU check (tools/gpu_check.py): captioning, a paper-size training step and the cached CLIP-prefix epoch on CUDA,
# written to benchmarks/gpu.{json,md} with the device named. At most 8 minutes.
# The device machine has torch and transformers but no network: what else the package needs is installed from the
# wheels in wheels/ (make gpu-wheels writes them here, where the registry is reachable).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -d wheels ]; then "$PY" -m pip install -q --no-index --find-links wheels datasets fastcore accelerate pandas tabulate faiss-cpu diffusers && "$PY" -m pip install -q --no-index --no-deps --find-links wheels clip-interrogator; fi
"$PY" -m pip install -q --no-deps --no-build-isolation -e . || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false IMGCAP2TEXT_PROGRESS=0
timeout 480 "$PY" tools/gpu_check.py "$@"
