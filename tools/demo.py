#!/usr/bin/env python
"""The main job (``make demo``): ZoomInNet end to end on the embedded dataset, on a CPU.

    python tools/demo.py [--output demo_output] [--seed 0] [--force] [--stages ...]
    python tools/demo.py --seeds 0 1 2 --output demo_output/seeds   # RESULTS.md table

Stages, each reused when its output is complete (``--force`` redoes them):

1. ``data``: the synthetic drone dataset in VisDrone layout (``datasets/synthdrone``);
2. ``tnet``: the teacher, RetinaNet at 2x input (256 px);
3. ``snet``: the student baseline at 1x (128 px);
4. ``la``: the student with layer adaption, no distillation;
5. ``cskd_la``: the student with LA distilled from the teacher (AKDP + position-aware L2);
6. the alternatives a user weighs (``tools/alternatives.py``; ``--no-alternatives`` leaves them
   out): TNet fine-tuned at 1x with the paper's two learning-rate settings, SNet tested at 2x,
   SNet on SAHI slices at 2x without and with the full-image pass;

every model trained with the same schedule (``configs/synth/``) and evaluated on
``synthdrone_val``; then a Table 3-like ``results.md`` / ``results.json`` (GFLOPs, mAP, AP_S,
AP_M, AP_L, AR_S, CPU ms per image), the feature-map pictures of the distilled student, and the
paper's result pictures from each stage's saved detections: ``pr_curves.png`` (precision-recall
at IoU 0.5 for small, medium and all objects, Figure 10) and ``detections/<image>.png`` for the
first ``NUM_PICTURES`` val images in stem order (ground truth, SNet + LA, SNet + LA + CSKD and
TNet at one score threshold, Figure 11), and ``frontier.png`` (mAP and AP_S against GFLOPs and
CPU ms of every row, with the Pareto front).
"""
import argparse
import os
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from alternatives import evaluate_test_time_rows, finetune_stages, test_time_predictors  # noqa: E402
from cpu_timing import cpu_ms_per_image, stage_predictors, torch_threads  # noqa: E402
from experiment import REPO, Stage, cancel_training, detections_file, log, machine_cores, stage_jobs  # noqa: E402
from results_table import collect_row, merge_seeds, write_results  # noqa: E402
from side_by_side import Job, run_jobs  # noqa: E402

STAGES = [
    Stage("tnet", "configs/synth/tnet.yaml", "TNet (2x image)", 1.9),
    Stage("snet", "configs/synth/snet.yaml", "SNet (1x image)", 1.0),
    Stage("la", "configs/synth/la.yaml", "SNet + LA", 1.4),
    Stage("cskd_la", "configs/synth/cskd_la.yaml", "SNet + LA + CSKD", 2.2, teacher_as="MODEL.ZOOMIN.TEACHER.WEIGHTS"),
]
# Stages only on request (--stages ...): the paper's FA students with the thin head.
OPTIONAL_STAGES = [
    Stage("fa_thin", "configs/synth/fa_thin.yaml", "SNet + FA ThinHead", 2.0),
    Stage("cskd_fa_thin", "configs/synth/cskd_fa_thin.yaml", "SNet + FA ThinHead + CSKD", 3.0,
          teacher_as="MODEL.ZOOMIN.TEACHER.WEIGHTS"),
]
DATASET = "synthdrone_val"
TAG = "demo"
PICTURE_STAGES = ("la", "cskd_la", "tnet")  # Figure 11's columns after the ground truth
NUM_PICTURES = 3
SCORE_THRESHOLD = 0.3  # the same for every model in the detection pictures


def run_pipeline(out: str, seed: int, force: bool, stage_names: List[str], dataset_root: str,
                 alternatives: bool, parallel: int) -> List[Dict]:
    """Train and evaluate the stages of one seed in ``out`` and, with ``alternatives``, the
    alternatives' rows (``tools/alternatives.py``; they need TNet and SNet), ``parallel`` jobs
    side by side; the table rows with CPU times."""
    stages = [s for s in STAGES + OPTIONAL_STAGES if s.name in stage_names]
    alternatives = alternatives and {"tnet", "snet"} <= set(stage_names)
    finetunes = finetune_stages("configs/synth") if alternatives else []
    snet, tnet = (next(s for s in STAGES if s.name == name) for name in ("snet", "tnet"))
    snet_dir, tnet_dir = os.path.join(out, snet.name), os.path.join(out, tnet.name)

    test_time: Dict = {}  # the test-time rows' predictors and table rows, from their job

    def test_time_rows(threads: int) -> None:
        with torch_threads(threads):
            test_time["predictors"] = test_time_predictors(snet, snet_dir, tnet, tnet_dir)
            test_time["rows"] = evaluate_test_time_rows(test_time["predictors"], out, snet, snet_dir, tnet,
                                                        tnet_dir, DATASET, force, TAG)

    # The test-time rows need only SNet and TNet, so they are evaluated beside the other stages,
    # before the fine-tuning (which is shorter: it ends closer to the distilled stage).
    extra = [Job("test_time_rows", test_time_rows, 1.5, needs=("snet", "tnet"))] if alternatives else []
    jobs = (stage_jobs(stages, out, seed, force, dataset_root, DATASET, TAG) + extra
            + stage_jobs(finetunes, out, seed, force, dataset_root, DATASET, TAG))
    run_jobs(jobs, parallel, machine_cores(), lambda msg: log(TAG, msg), cancel=cancel_training)
    trained = stages + finetunes
    rows = [collect_row(stage, os.path.join(out, stage.name), DATASET) for stage in trained]
    rows += test_time.get("rows", [])
    predictors = stage_predictors(trained, {s.name: os.path.join(out, s.name) for s in trained})
    predictors.update(test_time.get("predictors", {}))
    for row in rows:
        log(TAG, f"{row['stage']}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("model", "stage")))
    log(TAG, "timing inference of all models (round-robin, 1 thread)")
    times = cpu_ms_per_image(predictors, DATASET)
    for row in rows:
        row["cpu_ms"] = times[row["stage"]]
    return rows


def draw_features(out: str, dataset_root: str) -> None:
    """Feature maps and AKDP positions of the distilled student for one validation image."""
    from detectron2.data import DatasetCatalog

    import visualize_features

    first = DatasetCatalog.get("synthdrone_val")[0]
    annotation = first["file_name"].replace("images", "annotations").rsplit(".", 1)[0] + ".txt"
    visualize_features.main([
        "--config-file", os.path.join(REPO, "configs/synth/cskd_la.yaml"),
        "--input", first["file_name"], "--annotations", annotation,
        "--teacher-weights", os.path.join(out, "tnet", "model_final.pth"),
        "--student-weights", os.path.join(out, "cskd_la", "model_final.pth"),
        "--output", os.path.join(out, "features"),
    ])


def draw_results(out: str, stages) -> None:
    """``out/pr_curves.png`` for ``stages`` and ``out/detections/<image>.png`` for the first
    ``NUM_PICTURES`` val images with the ``PICTURE_STAGES`` among them."""
    from detectron2.data import DatasetCatalog
    from detectron2.data.detection_utils import read_image

    from zoominnet_d2.data.visdrone import VISDRONE_CLASSES
    from zoominnet_d2.visualization.paper_figures import (draw_detection_row, load_coco_detections,
                                                          plot_pr_curves, pr_curves)

    dicts = DatasetCatalog.get(DATASET)
    found = {s.name: load_coco_detections(detections_file(os.path.join(out, s.name), DATASET)) for s in stages}
    curves = {s.label: pr_curves(dicts, list(found[s.name].values()), len(VISDRONE_CLASSES)) for s in stages}
    plot_pr_curves(curves, os.path.join(out, "pr_curves.png"), f"{DATASET}, COCO API, maxDets=100, ignore rule")
    folder = os.path.join(out, "detections")
    os.makedirs(folder, exist_ok=True)
    labels = {s.name: s.label for s in stages}
    columns = [name for name in PICTURE_STAGES if name in found]
    empty = {"boxes": [], "scores": [], "classes": []}
    for record in dicts[:NUM_PICTURES]:
        shown = [(labels[name], found[name].get(record["image_id"], empty)) for name in columns]
        draw_detection_row(read_image(record["file_name"], format="RGB"), record, shown,
                           os.path.join(folder, f"{record['image_id']}.png"), threshold=SCORE_THRESHOLD)
    log(TAG, f"pictures: {out}/pr_curves.png, {folder}/ ({min(NUM_PICTURES, len(dicts))} images)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo_output", help="where stages and results go")
    parser.add_argument("--seed", type=int, default=0, help="training seed (SEED)")
    parser.add_argument("--seeds", type=int, nargs="+", help="run the pipeline once per seed and "
                        "report mean ± std (each seed in <output>/seed_<k>)")
    parser.add_argument("--force", action="store_true", help="redo finished stages")
    parser.add_argument("--stages", nargs="+", default=[s.name for s in STAGES],
                        choices=[s.name for s in STAGES + OPTIONAL_STAGES],
                        help="training stages (default: the four of Table 3; also fa_thin, cskd_fa_thin)")
    parser.add_argument("--no-alternatives", action="store_true", help="leave out the alternatives' rows "
                        "(SNet tested at 2x, SAHI slices, TNet fine-tuned at 1x) and frontier.png")
    parser.add_argument("--parallel", type=int, default=min(2, machine_cores()),
                        help="jobs side by side, each on cores / parallel threads (default: 2 on 2+ cores)")
    parser.add_argument("--datasets", default=os.path.join(REPO, "datasets"),
                        help="DETECTRON2_DATASETS root; the synthetic set goes in <root>/synthdrone")
    args = parser.parse_args(argv)
    dataset_root = os.path.abspath(args.datasets)
    os.environ["DETECTRON2_DATASETS"] = dataset_root
    os.chdir(REPO)
    import zoominnet_d2  # noqa: F401  (after DETECTRON2_DATASETS: registers synthdrone_*)
    from zoominnet_d2.data import synthetic
    from zoominnet_d2.visualization.frontier import plot_frontier

    began = time.time()
    log(TAG, "data: synthetic drone dataset")
    synthetic.main(["--out", os.path.join(dataset_root, "synthdrone")])
    seeds = args.seeds or [args.seed]
    per_seed = []
    for seed in seeds:
        out = args.output if args.seeds is None else os.path.join(args.output, f"seed_{seed}")
        per_seed.append(run_pipeline(out, seed, args.force, args.stages, dataset_root, not args.no_alternatives,
                                     args.parallel))
    rows = merge_seeds(per_seed)
    command = ("python tools/demo.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    notes = [f"Command: `{command}`; seeds {seeds}.",
             f"On `{DATASET}`; GFLOPs by fvcore at the model's input size; CPU ms per image: median over "
             "20 images at batch 1, one thread, models timed round-robin.",
             "GFLOPs and CPU ms of the sliced rows count every slice (and the full-image pass); CPU ms "
             "includes the test-time resize, decoding, and SAHI's slicing and merging.",
             f"Pictures (single seed): `pr_curves.png`, `detections/` (the first {NUM_PICTURES} val images, "
             f"score >= {SCORE_THRESHOLD:g} for every model); `frontier.png`: accuracy against cost of every row."]
    write_results(rows, args.output, "results", "ZoomInNet demo on the synthetic drone dataset", notes,
                  {"command": command, "seeds": seeds})
    plot_frontier(rows, os.path.join(args.output, "frontier.png"),
                  f"{DATASET}: accuracy against cost (seeds {', '.join(map(str, seeds))})")
    if args.seeds is None and {"tnet", "cskd_la"} <= set(args.stages):
        draw_features(args.output, dataset_root)
    if args.seeds is None:
        draw_results(args.output, [s for s in STAGES + OPTIONAL_STAGES if s.name in args.stages])
    with open(os.path.join(args.output, "results.md")) as f:
        print(f.read())
    log(TAG, f"finished in {(time.time() - began) / 60:.1f} min; results in {args.output}/results.md")


if __name__ == "__main__":
    main()
