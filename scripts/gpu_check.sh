#!/usr/bin/env bash
# The GPU checks, in one go, for a session lent a CUDA machine (under 8 minutes on one data-centre GPU):
#   1. pytest -m gpu: bf16/float16 autocast and the scaler, a bf16 + channels_last + compiled run, the in-memory
#      data held on the GPU, a float16 run stopped mid-epoch and resumed (tests/test_resume.py)
#   2. python scripts/bench.py --gpu-only: ResNet-18/50 at bf16 + channels_last, batch 256, 224 x 224 synthetic,
#      against the hand-written loop and the published ~2,470 img/s of ResNet-50 AMP on one A100; ResNet-50 with
#      torch.compile against without; the in-memory data path on the GPU against torchvision's DataLoader
# Figures go to $OUT (the device tool's folder) or runs/gpu_check: gpu.txt, pytest_gpu.txt, bench.txt, bench.json.
#
#   bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "no CUDA device here: nothing to check"; exit 2; }
out="${OUT:-runs/gpu_check}"
mkdir -p "$out"
status=0
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
} 2>&1 | tee "$out/gpu.txt"

timeout 240 python -m pytest -m gpu -q -p no:cacheprovider -rs 2>&1 | tee "$out/pytest_gpu.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

timeout 300 python scripts/bench.py --gpu-only --out "$out/bench.json" 2>&1 | tee "$out/bench.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit $status
