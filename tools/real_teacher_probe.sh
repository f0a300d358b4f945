#!/usr/bin/env bash
# Whether the real-frame teacher is limited by its schedule (RESULTS.md, "Real VisDrone frames"):
# the teacher of an earlier `tools/real_benchmark.py --output RUN` evaluated on val at every
# checkpoint it saved and, at the end, on its own training frames (a detector that is as weak on
# the frames it trained on underfits: more schedule or capacity, not more data). With --train,
# SNet is also trained for twice the students' schedule, to see whether the students are
# schedule-limited too. Tuned on the teacher and SNet only, never on a distilled student.
# Usage: bash tools/real_teacher_probe.sh RUN [out_dir] [--train | --variants | --levers]
#   without an option: the checkpoint evaluations only (5 min for three checkpoints on 2 cores);
#   --train: also SNet at 3000 iterations (twice its 6-10 min in RESULTS.md);
#   --variants: also variants of the plain teacher that configs/real/ had before it took BatchNorm,
#     6000 iterations and AdamW from these probes (no norm in the FPN and head, 3000 iterations,
#     SGD at lr 0.01), two
#     side by side on one thread each (~2.5 h on 2 cores), each at its checkpoints on val and at
#     the end on its own training frames: twice the
#     learning rate (0.02); twice the width (stem, res2 and FPN channels: 2.1x the time per
#     iteration) for half the iterations, the same compute as the teacher's; BatchNorm in the FPN
#     and, one BN per level, in the head (Detectron2's RETINANET.NORM "BN"), at the teacher's
#     3000 iterations and at 6000; then SNet with that BN at the students' schedule.
#     (GroupNorm in the head does not build on Detectron2 v0.6: its RetinaNetHead asks get_norm
#     for a 1-channel GroupNorm of 32 groups.)
#   --levers: also two changes to the teacher with BatchNorm in the FPN and head and SGD at lr
#     0.01 (configs/real/tnet.yaml before it took AdamW from this mode) at 3000 iterations, where
#     --variants' tnet_bn is the same teacher unchanged:
#     AdamW at lr 0.001 instead of SGD at 0.01 (SOLVER.OPTIMIZER), and RetinaNet's anchor
#     matching at IoU 0.3 / 0.4 instead of 0.4 / 0.5 (more positive anchors per small box);
#     then SNet with each change at the students' schedule, and beside them the teacher with
#     AdamW at its full 6000 iterations (~2.5 h on 2 cores in all).
# Prints one line per run: name, dataset, mAP, AP50, AP_S, AR@100, car AP, pedestrian AP (COCO protocol).
set -euo pipefail
RUN=$(cd "${1:?usage: bash tools/real_teacher_probe.sh RUN [out_dir] [--train | --variants | --levers]}" && pwd)
OUT=$(mkdir -p "${2:-$RUN/teacher_probe}" && cd "${2:-$RUN/teacher_probe}" && pwd)
cd "$(dirname "$0")/.."
OPTION=${3:-}
PY=${PYTHON:-.venv/bin/python}
export DETECTRON2_DATASETS=$RUN/data
# --variants and --levers need only RUN's split (RUN/data); the other modes start from RUN's teacher.
if [ ! -f "$RUN/tnet/model_final.pth" ] && [ "$OPTION" != --variants ] && [ "$OPTION" != --levers ]; then
  echo "$RUN/tnet/model_final.pth: no trained teacher (run tools/real_benchmark.py --output $RUN first)" >&2; exit 1
fi
report() {  # name dataset metrics.json
  "$PY" -c "import json, sys; b = json.load(open(sys.argv[1]))['bbox']
print(sys.argv[2], sys.argv[3], *(f'{k} {b[k] / 100:.4f}' for k in ('AP', 'AP50', 'APs', 'AR@100', 'AP-car', 'AP-pedestrian')))" \
    "$3" "$1" "$2"
}
evaluate() {  # name weights dataset [config, default RUN's teacher's]
  local metrics="$OUT/$1/inference/$3/visdrone_metrics.json"
  if [ ! -f "$metrics" ]; then
    "$PY" train_net.py --eval-only --config-file "${4:-$RUN/tnet/config.yaml}" MODEL.WEIGHTS "$2" \
      DATASETS.TEST "(\"$3\",)" OUTPUT_DIR "$OUT/$1" > "$OUT/$1.log" 2>&1
  fi
  report "$1" "$3" "$metrics"
}
trained() {  # name config opts...: trains unless finished earlier, then reports on val
  local name=$1 cfg=$2; shift 2
  if [ ! -f "$OUT/$name/inference/visdrone2019_val/visdrone_metrics.json" ]; then
    "$PY" train_net.py --config-file "$cfg" OUTPUT_DIR "$OUT/$name" SEED 0 "$@" > "$OUT/$name.log" 2>&1
  fi
  report "$name" visdrone2019_val "$OUT/$name/inference/visdrone2019_val/visdrone_metrics.json"
}
variant() {  # name config opts...: trains (one thread), then reports its checkpoints and the end
  local name=$1 cfg=$2; shift 2
  OMP_NUM_THREADS=1 trained "$name" "$cfg" "$@" > /dev/null
  for weights in "$OUT/$name"/model_0*.pth; do
    it=$(basename "$weights" .pth)
    evaluate "${name}_iter_${it#model_}" "$weights" visdrone2019_val "$OUT/$name/config.yaml"
  done
  report "$name" visdrone2019_val "$OUT/$name/inference/visdrone2019_val/visdrone_metrics.json"
  evaluate "${name}_on_train" "$OUT/$name/model_final.pth" visdrone2019_train "$OUT/$name/config.yaml"
}
if [ -f "$RUN/tnet/model_final.pth" ]; then
  for weights in "$RUN"/tnet/model_0*.pth; do
    it=$(basename "$weights" .pth)
    evaluate "tnet_iter_${it#model_}" "$weights" visdrone2019_val
  done
  evaluate tnet_final "$RUN/tnet/model_final.pth" visdrone2019_val
  evaluate tnet_final_on_train "$RUN/tnet/model_final.pth" visdrone2019_train
fi
case "$OPTION" in
  "") ;;
  --train) trained snet_3000x8 configs/real/snet.yaml SOLVER.MAX_ITER 3000 SOLVER.STEPS "(2000, 2700)" ;;
  --variants)
    PLAIN=(MODEL.FPN.NORM "" MODEL.RETINANET.NORM "" SOLVER.MAX_ITER 3000 SOLVER.STEPS "(2000, 2700)"
      SOLVER.OPTIMIZER SGD SOLVER.BASE_LR 0.01)
    BN=(MODEL.FPN.NORM BN MODEL.RETINANET.NORM BN)
    # Two one-thread processes side by side keep two cores busier than one two-thread process
    # (docs/DESIGN.md section 10); the lines are printed when all are done.
    variant tnet_lr02 configs/real/tnet.yaml "${PLAIN[@]}" SOLVER.BASE_LR 0.02 > "$OUT/tnet_lr02.report" &
    variant tnet_wide1500 configs/real/tnet.yaml "${PLAIN[@]}" MODEL.RESNETS.STEM_OUT_CHANNELS 32 \
      MODEL.RESNETS.RES2_OUT_CHANNELS 32 MODEL.FPN.OUT_CHANNELS 64 SOLVER.MAX_ITER 1500 \
      SOLVER.STEPS "(1000, 1350)" > "$OUT/tnet_wide1500.report" &
    wait
    variant tnet_bn6000 configs/real/tnet.yaml "${PLAIN[@]}" "${BN[@]}" SOLVER.MAX_ITER 6000 \
      SOLVER.STEPS "(4000, 5400)" > "$OUT/tnet_bn6000.report" &
    { variant tnet_bn configs/real/tnet.yaml "${PLAIN[@]}" "${BN[@]}" > "$OUT/tnet_bn.report"
      variant snet_bn configs/real/snet.yaml "${BN[@]}" > "$OUT/snet_bn.report"; } &
    wait
    cat "$OUT"/{tnet_lr02,tnet_wide1500,tnet_bn,tnet_bn6000,snet_bn}.report ;;
  --levers)
    T3000=(SOLVER.MAX_ITER 3000 SOLVER.STEPS "(2000, 2700)")
    ADAMW=(SOLVER.OPTIMIZER AdamW SOLVER.BASE_LR 0.001)
    SGD=(SOLVER.OPTIMIZER SGD SOLVER.BASE_LR 0.01)
    IOU34=(MODEL.RETINANET.IOU_THRESHOLDS "[0.3, 0.4]")
    variant tnet_adamw configs/real/tnet.yaml "${T3000[@]}" "${ADAMW[@]}" > "$OUT/tnet_adamw.report" &
    variant tnet_iou34 configs/real/tnet.yaml "${T3000[@]}" "${SGD[@]}" "${IOU34[@]}" > "$OUT/tnet_iou34.report" &
    wait
    variant tnet_adamw6000 configs/real/tnet.yaml "${ADAMW[@]}" > "$OUT/tnet_adamw6000.report" &
    { variant snet_adamw configs/real/snet.yaml "${ADAMW[@]}" > "$OUT/snet_adamw.report"
      variant snet_iou34 configs/real/snet.yaml "${IOU34[@]}" > "$OUT/snet_iou34.report"; } &
    wait
    cat "$OUT"/{tnet_adamw,tnet_iou34,tnet_adamw6000,snet_adamw,snet_iou34}.report ;;
  *) echo "unknown option $OPTION (--train, --variants or --levers)" >&2; exit 2 ;;
esac
