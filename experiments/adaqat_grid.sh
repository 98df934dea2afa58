#!/bin/bash
# The AdaQAT results grid of docs/adaqat.md (issue 7): float baseline, fixed-width
# QAT at 8/8, 4/4, 3/3, 2/2 and AdaQAT at three lambdas, for the MLP and the CNN,
# over seeds. Runs only what is missing, so it can be stopped and resumed.
#
#   experiments/adaqat_grid.sh [OUT] [SEEDS] [MODELS]
#   python3 experiments/adaqat_table.py [OUT]     # the markdown table and the plot
set -u
OUT=${1:-build/adaqat-grid}
SEEDS=${2:-"0 1 2"}
MODELS=${3:-"mlp cnn"}
SRMAC=${SRMAC:-"python3 -m ref.cli"}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
C="--epochs 3 --limit-train 10000 --batch-size 64 --lr-schedule cosine"
mkdir -p "$OUT"
for seed in $SEEDS; do
  for model in $MODELS; do
    M="--model $model"; [ "$model" = mlp ] && M="$M --hidden 128"
    for mode in float l0.01 l0.05 l0.2 f8/8 f4/4 f3/3 f2/2; do
      out=$OUT/$model-$(echo $mode | tr / x)-s$seed
      [ -f "$out/summary.json" ] && continue
      echo "== $out"
      case $mode in
        float) $SRMAC train $M --mac fp32 --lr 0.02 $C --seed $seed --out "$out" --no-progress ;;
        l*) $SRMAC adaqat $M --lambda ${mode#l} $C --seed $seed --out "$out" --no-progress ;;
        f*) $SRMAC adaqat $M --fixed ${mode#f} $C --seed $seed --out "$out" --no-progress ;;
      esac > "$out.log" 2>&1 || { echo "FAILED $out (see $out.log)"; exit 1; }
    done
  done
done
