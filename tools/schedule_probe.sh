#!/usr/bin/env bash
# The schedule probe behind configs/synth/Base-Synth.yaml's MAX_ITER (RESULTS.md, "Why 900
# iterations"): SNet (and TNet) of the demo, seed 0, trained with other schedules, batch sizes,
# learning rates and anchors, each evaluated on synthdrone_val. Tuned on SNet and the teacher
# only, never on a distilled student.
# Usage: bash tools/schedule_probe.sh [out_dir]   (~25 min on 2 cores; one run at a time)
# Prints one line per run: name, mAP, AP_S, AP_M, AP50 (COCO protocol).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo_output/schedule_probe}
PY=${PYTHON:-.venv/bin/python}
export DETECTRON2_DATASETS=${DETECTRON2_DATASETS:-datasets}
mkdir -p "$OUT"
A16='[[16.0, 20.16, 25.4], [32.0, 40.3, 50.8], [64.0, 80.6, 101.6], [128.0, 161.3, 203.2], [256.0, 322.5, 406.4]]'
run() {  # name config opts...
  local name=$1 cfg=$2; shift 2
  if [ ! -f "$OUT/$name/inference/synthdrone_val/visdrone_metrics.json" ]; then
    "$PY" train_net.py --config-file "$cfg" OUTPUT_DIR "$OUT/$name" SEED 0 "$@" > "$OUT/$name.log" 2>&1
  fi
  "$PY" -c "import json, sys; b = json.load(open(sys.argv[1]))['bbox']
print(sys.argv[2], *(f'{k} {b[k] / 100:.4f}' for k in ('AP', 'APs', 'APm', 'AP50')))" \
    "$OUT/$name/inference/synthdrone_val/visdrone_metrics.json" "$name"
}
run snet_600x8 configs/synth/snet.yaml SOLVER.MAX_ITER 600 SOLVER.STEPS "(400, 530)" SOLVER.WARMUP_ITERS 50
run snet_600x8_lr02 configs/synth/snet.yaml SOLVER.MAX_ITER 600 SOLVER.STEPS "(400, 530)" SOLVER.WARMUP_ITERS 50 SOLVER.BASE_LR 0.02
run snet_600x8_anchors16 configs/synth/snet.yaml SOLVER.MAX_ITER 600 SOLVER.STEPS "(400, 530)" SOLVER.WARMUP_ITERS 50 \
  MODEL.ANCHOR_GENERATOR.SIZES "$A16" MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS "[[0.5, 1.0, 2.0, 3.0]]"
run snet_1200x4 configs/synth/snet.yaml SOLVER.IMS_PER_BATCH 4 SOLVER.MAX_ITER 1200 SOLVER.STEPS "(800, 1060)"
run snet_2400x2_lr005 configs/synth/snet.yaml SOLVER.IMS_PER_BATCH 2 SOLVER.BASE_LR 0.005 \
  SOLVER.MAX_ITER 2400 SOLVER.STEPS "(1600, 2120)"
run snet_1200x8 configs/synth/snet.yaml SOLVER.MAX_ITER 1200 SOLVER.STEPS "(800, 1060)"
run tnet_1200x8 configs/synth/tnet.yaml SOLVER.MAX_ITER 1200 SOLVER.STEPS "(800, 1060)"
run snet_1800x8 configs/synth/snet.yaml SOLVER.MAX_ITER 1800 SOLVER.STEPS "(1200, 1590)" SOLVER.WARMUP_ITERS 50
