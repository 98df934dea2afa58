#!/usr/bin/env bash
# GPU check of the emulated GEMM (srmac issue 13), one call, under 10 minutes on an H200:
#   1. the CUDA tests: the Triton kernels code for code against the reference (compiled on the
#      GPU), the CUDA cases of the fast path, backends, torch API and simulator layers;
#   2. the benchmark: 256^3, 1024^3, 4096^3 and the ResNet-20 / ResNet-18 conv GEMMs (forward,
#      input and weight gradients), eager SR r=4 and RN, against torch.mm float32 (TF32 off),
#      with the epoch time they imply (projection.md), and a tile-shape sweep;
#   3. training: one timed Fashion-MNIST epoch of the CNN on the GPU (emulated eager SR, and the
#      float baseline), the same CNN on the CPU (a slice, for the per-sample rate), and the
#      ResNet-20-style model when the model zoo has it.
# Tables (markdown, ready for docs/data/gpu/), CSVs and logs go to $OUT (default build/gpu_check).
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --prepare    # on the development machine, before: copies the
#                                             # Fashion-MNIST files to build/data/fashion-mnist
#                                             # (carry that folder if the GPU machine lacks them)
set -u
cd "$(dirname "$0")/.."
DATA_SYS=/usr/share/datasets/fashion-mnist
DATA_LOCAL=build/data/fashion-mnist
if [ "${1:-}" = "--prepare" ]; then
  mkdir -p "$DATA_LOCAL" && cp "$DATA_SYS"/*.gz "$DATA_LOCAL"/ && ls -l "$DATA_LOCAL"
  exit $?
fi
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TRITON_DEFAULT_FP_FUSION=${TRITON_DEFAULT_FP_FUSION:-1}
unset TRITON_INTERPRET
DEST=${OUT:-build/gpu_check}
mkdir -p "$DEST"
T0=$(date +%s)
status=0
step() { echo; echo "== $* ($(( $(date +%s) - T0 )) s)"; }

{
  echo "== $(date -u +%FT%TZ) $(uname -n)"
  $PY -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
  $PY -c "import triton; print('triton', triton.__version__)" || echo "triton: not installed"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.sm --format=csv
  nproc
} 2>&1 | tee "$DEST/env.txt"

if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: torch.cuda.is_available() is False; nothing to check" | tee -a "$DEST/env.txt"
  exit 2
fi
DATA=$DATA_SYS
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || DATA=$DATA_LOCAL

# 1. correctness on the device (~2 min: Triton compiles each configuration once)
step "1. CUDA tests" | tee "$DEST/tests.log"
XDIST=""
$PY -c "import xdist" 2>/dev/null && XDIST="-n 6"
timeout 240 $PY -m pytest -q -p no:cacheprovider $XDIST -m "not slow" -rs \
  tests/test_device_kernel.py tests/test_fast_path.py tests/test_backends.py \
  tests/test_torch_api.py tests/test_sim_cuda.py 2>&1 | tail -40 | tee -a "$DEST/tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# 2. throughput (~2-3 min): the suite, then tile shapes on two shapes
step "2. benchmark" | tee "$DEST/bench.log"
timeout 240 $PY benchmarks/emulation.py --device cuda --suite gpu --repeat 3 --out "$DEST" \
  2>&1 | tee -a "$DEST/bench.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
step "2b. tile shapes" | tee -a "$DEST/bench.log"
echo "| tile BM x BN : warps | GEMM | eager SR r=4 G MAC/s |" > "$DEST/tiles.md"
echo "|---|---|---:|" >> "$DEST/tiles.md"
for tile in 16x16:2 16x16:4 32x32:4 32x32:8 64x32:4 64x64:8; do
  SRMAC_TRITON_BLOCK=$tile timeout 40 $PY benchmarks/emulation.py --device cuda --repeat 2 \
    --configs e5m2:e6m5:sr_eager:4 --no-reference --shapes 1024x1024x1024,64x100352x576 \
    --out "$DEST/tile_$tile" 2>&1 | tail -3 | tee -a "$DEST/bench.log"
  $PY - "$DEST/tile_$tile/emulation.csv" "$tile" >> "$DEST/tiles.md" <<'EOF' || true
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    print(f"| {sys.argv[2]} | {r['M']}x{r['K']}x{r['N']} | {float(r['mac_per_s']) / 1e9:.1f} |")
EOF
done

# 3. training epochs (~3 min)
step "3. training" | tee "$DEST/train.log"
echo "| run | device | samples | seconds (epoch, train + test) | emulated G MAC/s |" > "$DEST/train.md"
echo "|---|---|---:|---:|---:|" >> "$DEST/train.md"
train() {  # name device seconds-limit args...
  local name=$1 dev=$2 lim=$3; shift 3
  timeout "$lim" $PY -m ref.cli train --device "$dev" --data-dir "$DATA" --epochs 1 --no-progress \
    --out "$DEST/train_$name" "$@" 2>&1 | tail -4 | tee -a "$DEST/train.log"
  $PY - "$DEST/train_$name" "$name" "$dev" >> "$DEST/train.md" <<'EOF' || true
import csv, json, sys
from pathlib import Path
d = Path(sys.argv[1])
rows = list(csv.DictReader(open(d / "log.csv")))
s = json.loads((d / "summary.json").read_text())
r = rows[-1]
sec = next((float(r[k]) for k in ("seconds", "epoch_seconds", "time_s", "time") if k in r), float("nan"))
rate = next((float(r[k]) for k in ("mac_per_s", "macs_per_s") if k in r), float("nan"))
n = s.get("options", {}).get("limit_train") or 60000
print(f"| {sys.argv[2]} | {sys.argv[3]} | {n} | {sec:.1f} | {rate / 1e9:.2f} |")
EOF
}
train cnn-sr_eager4-gpu cuda 150 --model cnn --mac e5m2:e6m5:sr_eager:4
train cnn-fp32-gpu cuda 60 --model cnn --mac fp32
train cnn-sr_eager4-cpu cpu 90 --model cnn --mac e5m2:e6m5:sr_eager:4 --limit-train 4096 --limit-test 1024
if $PY -m ref.cli train --help 2>/dev/null | grep -q "resnet20"; then
  train resnet20-sr_eager4-gpu cuda 150 --model resnet20 --mac e5m2:e6m5:sr_eager:4 --limit-train 10000
fi

step "done: status $status" | tee -a "$DEST/env.txt"
{
  echo "# GPU check $(date -u +%F) on $($PY -c 'import torch; print(torch.cuda.get_device_name())')"
  echo; echo "Command: \`bash benchmarks/gpu_check.sh\` (status $status, $(( $(date +%s) - T0 )) s)"
  echo; echo "## Tests"; echo; echo '```'; tail -3 "$DEST/tests.log"; echo '```'
  echo; echo "## Emulated GEMM vs torch.mm"; echo; cat "$DEST/emulation.md" 2>/dev/null
  echo; echo "## Projected epochs"; echo; cat "$DEST/projection.md" 2>/dev/null
  echo; echo "## Tile shapes"; echo; cat "$DEST/tiles.md"
  echo; echo "## Training (one epoch)"; echo; cat "$DEST/train.md"
} > "$DEST/summary.md"
echo "gpu_check: status $status; results in $DEST (summary.md)"
exit $status
