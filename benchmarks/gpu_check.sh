#!/usr/bin/env bash
# GPU check of the emulated GEMM (srmac issue 13): one call, within a time budget
# (GPU_CHECK_BUDGET seconds, default 540: a 10-minute command limit less the margin), in the
# order of what matters most:
#   1. the CUDA tests: the Triton kernels code for code against the reference (compiled on the
#      GPU), the CUDA cases of the fast path, backends, torch API and simulator layers;
#   2. the benchmark: 256^3, 1024^3, 4096^3 and the ResNet-20 / ResNet-18 conv GEMMs (forward,
#      input and weight gradients), eager SR r=4 and RN, against torch.mm float32 (TF32 off),
#      with the epoch time they imply (projection.md);
#   3. training: one timed Fashion-MNIST epoch of the CNN on the GPU (emulated eager SR, and the
#      float baseline), the same CNN on the CPU (a slice, for the per-sample rate), and a slice
#      of the ResNet-20-style model on the GPU;
#   4. tile shapes of the kernel on two GEMMs.
# Each step gets what is left of the budget; a step that would start with too little is
# skipped and says so. Tables (markdown, ready for docs/data/gpu/), CSVs, logs and the training
# runs go to $GPU_CHECK_DIR (default build/gpu_check); summary.md is rewritten after every
# step, so a run cut short still leaves what it measured. Where $OUT is set (the device
# tool's result folder, which returns at most 8 files), the 7 files that matter (summary.md,
# emulation.csv/.md, projection.md, train.md, tiles.md and log.txt, every log in one) are
# copied there after every step. The device machine's own python3 has every package needed;
# only the data has to travel:
#
#   bash benchmarks/gpu_check.sh --prepare                       # here
#   run: bash benchmarks/gpu_check.sh, carry build/data/fashion-mnist, timeout_s 600
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --prepare    # on the development machine, before: copies the
#                                             # Fashion-MNIST files to build/data/fashion-mnist
#                                             # (carry that folder if the GPU machine lacks them)
#   bash benchmarks/gpu_check.sh --rehearse   # no GPU: every step on the CPU at toy sizes
#                                             # (kernel tests in Triton's interpreter), to check
#                                             # the script itself (tests/test_gpu_check.py)
set -u
cd "$(dirname "$0")/.."
DATA_SYS=/usr/share/datasets/fashion-mnist
DATA_LOCAL=build/data/fashion-mnist
REHEARSE=0
case "${1:-}" in
  "") ;;
  --prepare)
    mkdir -p "$DATA_LOCAL" && cp "$DATA_SYS"/*.gz "$DATA_LOCAL"/ && ls -l "$DATA_LOCAL"
    exit $? ;;
  --rehearse) REHEARSE=1 ;;
  -h|--help) sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "gpu_check: unknown option '$1' (use --prepare, --rehearse, --help or nothing)" >&2
     exit 2 ;;
esac
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TRITON_DEFAULT_FP_FUSION=${TRITON_DEFAULT_FP_FUSION:-1}
unset TRITON_INTERPRET
DEST=${GPU_CHECK_DIR:-build/gpu_check}
RESULTS=${OUT:-}
BUDGET=${GPU_CHECK_BUDGET:-540}
for d in "$DEST" ${RESULTS:+"$RESULTS"}; do
  if ! mkdir -p "$d" 2>/dev/null || [ ! -w "$d" ]; then
    echo "gpu_check: cannot write to $d; set GPU_CHECK_DIR (or OUT) to a writable folder" >&2
    exit 2
  fi
done
T0=$(date +%s)
status=0
SKIPPED=""

# What differs between the real check and the rehearsal: the device, the sizes, the tests.
if [ "$REHEARSE" = 1 ]; then
  DEV=cpu
  TEST_ENV=(env TRITON_INTERPRET=1)
  TESTS=(tests/test_device_kernel.py -k "test_shapes or test_dispatch_sends_cuda_tensors")
  BENCH_SIZE=(--scale 64 --repeat 1)
  TILES=(16x16:2)
  TILE_SHAPES=64x64x64
  GPU_SLICE=(--limit-train 256 --limit-test 128)
  CPU_SLICE=(--limit-train 128 --limit-test 64)
  RESNET_SLICE=(--limit-train 32 --limit-test 16)
else
  DEV=cuda
  TEST_ENV=(env)
  TESTS=(tests/test_device_kernel.py tests/test_fast_path.py tests/test_backends.py
         tests/test_torch_api.py tests/test_sim_cuda.py)
  BENCH_SIZE=(--repeat 3)
  TILES=(16x16:2 16x16:4 32x32:4 32x32:8 64x32:4 64x64:8)
  TILE_SHAPES=1024x1024x1024,64x100352x576
  GPU_SLICE=()
  CPU_SLICE=(--limit-train 4096 --limit-test 1024)
  RESNET_SLICE=(--limit-train 4096 --limit-test 1024)
fi

elapsed() { echo $(( $(date +%s) - T0 )); }
step() { echo; echo "== $* ($(elapsed) s)"; }
# limit WANT: seconds a step may take (WANT, or what is left of the budget); 0: skip it
limit() {
  local left=$(( BUDGET - $(elapsed) ))
  if [ "$left" -lt "${2:-20}" ]; then echo 0; elif [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}
skip() { SKIPPED="$SKIPPED $1"; echo "gpu_check: skipped $1: out of time (budget $BUDGET s)"; }
summary() {
  {
    echo "# GPU check $(date -u +%F) on $DEVICE_NAME"
    echo
    echo "Command: \`bash benchmarks/gpu_check.sh${1:+ $1}\` (status $status, $(elapsed) s of a $BUDGET s budget${SKIPPED:+; skipped:$SKIPPED})"
    echo; echo "## Tests"; echo; echo '```'; tail -3 "$DEST/tests.log" 2>/dev/null; echo '```'
    echo; echo "## Emulated GEMM vs torch.mm"; echo; cat "$DEST/emulation.md" 2>/dev/null
    echo; echo "## Projected epochs"; echo; cat "$DEST/projection.md" 2>/dev/null
    echo; echo "## Training (one epoch or a slice)"; echo; cat "$DEST/train.md" 2>/dev/null
    echo; echo "## Tile shapes"; echo; cat "$DEST/tiles.md" 2>/dev/null
  } > "$DEST/summary.md.tmp" && mv "$DEST/summary.md.tmp" "$DEST/summary.md"
  cat "$DEST"/env.txt "$DEST"/tests.log "$DEST"/bench.log "$DEST"/train.log > "$DEST/log.txt" 2>/dev/null
  if [ -n "$RESULTS" ]; then
    for f in summary.md emulation.csv emulation.md projection.md train.md tiles.md log.txt; do
      [ -f "$DEST/$f" ] && cp "$DEST/$f" "$RESULTS/$f.tmp" && mv "$RESULTS/$f.tmp" "$RESULTS/$f"
    done
  fi
}

{
  echo "== $(date -u +%FT%TZ) $(uname -n)$([ "$REHEARSE" = 1 ] && echo " (rehearsal on the CPU)")"
  $PY -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
  $PY -c "import triton; print('triton', triton.__version__)" || echo "triton: not installed"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.sm --format=csv
  nproc
} 2>&1 | tee "$DEST/env.txt"

if [ "$REHEARSE" = 1 ]; then
  DEVICE_NAME="the CPU (rehearsal: toy sizes, numbers not to quote)"
elif $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  DEVICE_NAME=$($PY -c 'import torch; print(torch.cuda.get_device_name())')
else
  echo "gpu_check: torch.cuda.is_available() is False: no GPU here (bash benchmarks/gpu_check.sh --rehearse checks the script on a CPU)" | tee -a "$DEST/env.txt" >&2
  exit 2
fi
DATA=$DATA_SYS
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || DATA=$DATA_LOCAL
MODE_ARG=""
[ "$REHEARSE" = 1 ] && MODE_ARG="--rehearse"

# 1. correctness on the device (~2 min: Triton compiles each configuration once)
step "1. CUDA tests" | tee "$DEST/tests.log"
XDIST=()
[ "$REHEARSE" = 0 ] && $PY -c "import xdist" 2>/dev/null && XDIST=(-n 6)
t=$(limit 240 30)
if [ "$t" -gt 0 ]; then
  "${TEST_ENV[@]}" timeout "$t" $PY -m pytest -q -p no:cacheprovider "${XDIST[@]}" \
    -m "not slow" -rs "${TESTS[@]}" 2>&1 | tail -40 | tee -a "$DEST/tests.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  skip tests; echo "skipped: out of time" >> "$DEST/tests.log"
fi
summary "$MODE_ARG"

# 2. throughput (~2 min): the suite (tables rewritten after every row)
step "2. benchmark" | tee "$DEST/bench.log"
t=$(limit 200 60)
if [ "$t" -gt 0 ]; then
  timeout "$t" $PY benchmarks/emulation.py --device "$DEV" --suite gpu "${BENCH_SIZE[@]}" \
    --out "$DEST" 2>&1 | tee -a "$DEST/bench.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  skip benchmark
fi
summary "$MODE_ARG"

# 3. training epochs (~3 min)
step "3. training" | tee "$DEST/train.log"
{ echo "| run | device | training samples | seconds (train + test) | full 60k epoch, s (scaled) | emulated G MAC/s |"
  echo "|---|---|---:|---:|---:|---:|"; } > "$DEST/train.md"
train() {  # name device seconds args...
  local name=$1 dev=$2 t
  t=$(limit "$3" 30)
  shift 3
  if [ "$t" -eq 0 ]; then skip "training:$name"; return; fi
  timeout "$t" $PY -m ref.cli train --device "$dev" --data-dir "$DATA" --epochs 1 --no-progress \
    --out "$DEST/train_$name" "$@" 2>&1 | tail -4 | tee -a "$DEST/train.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { status=1; echo "| $name | $dev | - | failed or out of time | - | - |" >> "$DEST/train.md"; return; }
  $PY - "$DEST/train_$name" "$name" "$dev" >> "$DEST/train.md" <<'EOF' || status=1
import csv, json, sys
from pathlib import Path
d = Path(sys.argv[1])
row = list(csv.DictReader(open(d / "log.csv")))[-1]
options = json.loads((d / "summary.json").read_text())["options"]
n = options.get("limit_train") or 60000
sec, rate = float(row["time_s"]), float(row["mac_per_s"] or 0)
print(f"| {sys.argv[2]} | {sys.argv[3]} | {n} | {sec:.1f} | {sec * 60000 / n:,.0f} | "
      + (f"{rate / 1e9:.2f} |" if rate > 0 else "- (float) |"))
EOF
  summary "$MODE_ARG"
}
# (the runs named -gpu use $DEV: the CPU in the rehearsal)
train cnn-sr_eager4-gpu "$DEV" 120 --model cnn --mac e5m2:e6m5:sr_eager:4 "${GPU_SLICE[@]}"
train cnn-fp32-gpu "$DEV" 60 --model cnn --mac fp32 "${GPU_SLICE[@]}"
train cnn-sr_eager4-cpu cpu 60 --model cnn --mac e5m2:e6m5:sr_eager:4 "${CPU_SLICE[@]}"
train resnet20-sr_eager4-gpu "$DEV" 120 --model resnet20 --mac e5m2:e6m5:sr_eager:4 "${RESNET_SLICE[@]}"

# 4. tile shapes (what is left of the budget)
step "4. tile shapes" | tee -a "$DEST/bench.log"
{ echo "| tile BM x BN : warps | GEMM | eager SR r=4 G MAC/s |"; echo "|---|---|---:|"; } > "$DEST/tiles.md"
for tile in "${TILES[@]}"; do
  t=$(limit 40 20)
  if [ "$t" -eq 0 ]; then skip "tile:$tile"; continue; fi
  SRMAC_TRITON_BLOCK=$tile timeout "$t" $PY benchmarks/emulation.py --device "$DEV" --repeat 2 \
    --configs e5m2:e6m5:sr_eager:4 --no-reference --shapes "$TILE_SHAPES" \
    --out "$DEST/tile_$tile" 2>&1 | tail -3 | tee -a "$DEST/bench.log"
  $PY - "$DEST/tile_$tile/emulation.csv" "$tile" >> "$DEST/tiles.md" <<'EOF' || true
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    print(f"| {sys.argv[2]} | {r['M']}x{r['K']}x{r['N']} | {float(r['mac_per_s']) / 1e9:.1f} |")
EOF
done

# 0: all done and passed; 1: a step failed; 3: all that ran passed, but steps were skipped
[ "$status" = 0 ] && [ -n "$SKIPPED" ] && status=3
step "done: status $status" | tee -a "$DEST/env.txt"
summary "$MODE_ARG"
echo "gpu_check: status $status; results in $DEST (summary.md)${RESULTS:+, copied to $RESULTS}"
exit $status
