#!/usr/bin/env bash
# Whether the real-frame teacher is limited by its schedule (RESULTS.md, "Real VisDrone frames"):
# the teacher of an earlier `tools/real_benchmark.py --output RUN` evaluated on val at every
# checkpoint it saved and, at the end, on its own training frames (a detector that is as weak on
# the frames it trained on underfits: more schedule or capacity, not more data). With --train,
# SNet is also trained with the teacher's schedule (configs/real/tnet.yaml: twice the
# students'), to see whether the students are schedule-limited too. Tuned on the teacher and
# SNet only, never on a distilled student.
# Usage: bash tools/real_teacher_probe.sh RUN [out_dir] [--train]
#   without --train: the checkpoint evaluations only (5 min for three checkpoints on 2 cores);
#   with --train: also SNet at 3000 iterations (twice its 6-10 min in RESULTS.md).
# Prints one line per run: name, dataset, mAP, AP50, AP_S, AR@100, car AP, pedestrian AP (COCO protocol).
set -euo pipefail
RUN=$(cd "${1:?usage: bash tools/real_teacher_probe.sh RUN [out_dir] [--train]}" && pwd)
OUT=$(mkdir -p "${2:-$RUN/teacher_probe}" && cd "${2:-$RUN/teacher_probe}" && pwd)
cd "$(dirname "$0")/.."
TRAIN=${3:-}
PY=${PYTHON:-.venv/bin/python}
export DETECTRON2_DATASETS=$RUN/data
test -f "$RUN/tnet/model_final.pth" || { echo "$RUN/tnet/model_final.pth: no trained teacher (run tools/real_benchmark.py --output $RUN first)" >&2; exit 1; }
report() {  # name dataset metrics.json
  "$PY" -c "import json, sys; b = json.load(open(sys.argv[1]))['bbox']
print(sys.argv[2], sys.argv[3], *(f'{k} {b[k] / 100:.4f}' for k in ('AP', 'AP50', 'APs', 'AR@100', 'AP-car', 'AP-pedestrian')))" \
    "$3" "$1" "$2"
}
evaluate() {  # name weights dataset
  local metrics="$OUT/$1/inference/$3/visdrone_metrics.json"
  if [ ! -f "$metrics" ]; then
    "$PY" train_net.py --eval-only --config-file "$RUN/tnet/config.yaml" MODEL.WEIGHTS "$2" \
      DATASETS.TEST "(\"$3\",)" OUTPUT_DIR "$OUT/$1" > "$OUT/$1.log" 2>&1
  fi
  report "$1" "$3" "$metrics"
}
train() {  # name config opts...
  local name=$1 cfg=$2; shift 2
  if [ ! -f "$OUT/$name/inference/visdrone2019_val/visdrone_metrics.json" ]; then
    "$PY" train_net.py --config-file "$cfg" OUTPUT_DIR "$OUT/$name" SEED 0 "$@" > "$OUT/$name.log" 2>&1
  fi
  report "$name" visdrone2019_val "$OUT/$name/inference/visdrone2019_val/visdrone_metrics.json"
}
for weights in "$RUN"/tnet/model_0*.pth; do
  it=$(basename "$weights" .pth)
  evaluate "tnet_iter_${it#model_}" "$weights" visdrone2019_val
done
evaluate tnet_final "$RUN/tnet/model_final.pth" visdrone2019_val
evaluate tnet_final_on_train "$RUN/tnet/model_final.pth" visdrone2019_train
if [ "$TRAIN" = "--train" ]; then
  train snet_3000x8 configs/real/snet.yaml SOLVER.MAX_ITER 3000 SOLVER.STEPS "(2000, 2700)"
fi
