#!/usr/bin/env bash
# GPU check of the fast emulated GEMM (srmac issue 4), under 5 minutes:
#   1. the CUDA cases of tests/test_fast_path.py (fast path vs reference, code for code);
#   2. the emulation benchmark on the GPU (quick shapes).
# Results (test log, CSV, markdown) go to $OUT if set, else build/gpu_check.
# Usage: bash benchmarks/gpu_check.sh        (from the repository root; needs torch with CUDA)
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DEST=${OUT:-build/gpu_check}
mkdir -p "$DEST"
status=0
{
  echo "== $(date -u +%FT%TZ) $(uname -n)"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
} 2>&1 | tee "$DEST/env.txt"

if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: torch.cuda.is_available() is False; nothing to check" | tee -a "$DEST/env.txt"
  exit 2
fi

# 1. correctness on the device (about a minute, JIT compile of the CPU kernel included)
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_fast_path.py -k "cuda or torch" \
  -rs 2>&1 | tee "$DEST/test_fast_path_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# 2. throughput on the device (quick shapes, one repeat each)
timeout 120 $PY benchmarks/emulation.py --device cuda --quick --no-reference --out "$DEST" \
  2>&1 | tee "$DEST/bench_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "gpu_check: status $status; results in $DEST"
exit $status
