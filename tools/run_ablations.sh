#!/usr/bin/env bash
# Ablations behind RESULTS.md's analysis, on seed 0 of `python tools/demo.py --seeds 0 1 2
# --output demo_output/seeds` (its teacher and schedule). Each run: configs/synth, SEED 0.
#   lam05       CSKD-LA with AKDP's fixed lambda 0.5 (FGFI) instead of mean + std: sparser keys
#   w0001       CSKD-LA with DISTILL_WEIGHT 0.001 instead of 0.01: loss scale
#   la_2x       SNet + LA without distillation, twice the iterations: is the gain a schedule effect?
#   cskd_la_2x  CSKD-LA with twice the iterations: does distillation still help at that schedule?
#   weak_teach  CSKD-LA from the teacher's iteration-200 checkpoint: teacher quality
#   rand_teach  CSKD-LA from a teacher trained for 1 iteration at lr 0: knowledge or regulariser?
# Usage: bash tools/run_ablations.sh [seeds_dir] [out_dir]; two runs at a time, one thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-demo_output/seeds}
OUT=${2:-demo_output/ablations}
PY=${PYTHON:-.venv/bin/python}
TEACHER=$SEEDS/seed_0/tnet/model_final.pth
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
run() {  # name config opts...
  local name=$1 cfg=$2; shift 2
  if [ -f "$OUT/$name/model_final.pth" ]; then echo "reuse $OUT/$name"; return; fi
  "$PY" train_net.py --config-file "$cfg" OUTPUT_DIR "$OUT/$name" SEED 0 "$@" > "$OUT/$name.log" 2>&1
  echo "done $name"
}
run rand_teach_tnet configs/synth/tnet.yaml SOLVER.MAX_ITER 1 SOLVER.BASE_LR 0.0 DATASETS.TEST "()"
run lam05 configs/synth/cskd_la.yaml MODEL.ZOOMIN.TEACHER.WEIGHTS "$TEACHER" MODEL.ZOOMIN.AKDP.LAMBDA 0.5 &
run w0001 configs/synth/cskd_la.yaml MODEL.ZOOMIN.TEACHER.WEIGHTS "$TEACHER" MODEL.ZOOMIN.DISTILL_WEIGHT 0.001 &
wait
run weak_teach configs/synth/cskd_la.yaml MODEL.ZOOMIN.TEACHER.WEIGHTS "$SEEDS/seed_0/tnet/model_0000199.pth" &
run rand_teach configs/synth/cskd_la.yaml MODEL.ZOOMIN.TEACHER.WEIGHTS "$OUT/rand_teach_tnet/model_final.pth" &
wait
# The weak teacher's own quality (evaluation only, student-size files untouched).
if [ ! -f "$OUT/weak_teach_eval/inference/synthdrone_val/visdrone_metrics.json" ]; then
  "$PY" train_net.py --config-file configs/synth/tnet.yaml --eval-only \
    MODEL.WEIGHTS "$SEEDS/seed_0/tnet/model_0000199.pth" OUTPUT_DIR "$OUT/weak_teach_eval" > "$OUT/weak_teach_eval.log" 2>&1
fi
LONG=(SOLVER.MAX_ITER 1800 SOLVER.STEPS "(1200, 1580)" SOLVER.CHECKPOINT_PERIOD 900)
run la_2x configs/synth/la.yaml "${LONG[@]}" &
run cskd_la_2x configs/synth/cskd_la.yaml MODEL.ZOOMIN.TEACHER.WEIGHTS "$TEACHER" "${LONG[@]}" &
wait
"$PY" tools/training_stats.py "$SEEDS"/seed_0/{tnet,la,cskd_la} "$OUT"/{weak_teach_eval,lam05,w0001,weak_teach,rand_teach,la_2x,cskd_la_2x}
