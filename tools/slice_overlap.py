#!/usr/bin/env python
"""SAHI's slice overlap for the sliced rows of ``tools/alternatives.py``, measured: a trained
SNet on slices of the image at the teacher's resolution (slice = the student's input size),
at several overlaps, without and with the full-image pass, each evaluated like the table's rows.

    python tools/slice_overlap.py --snet demo_output/snet --tnet demo_output/tnet \\
        --dataset synthdrone_val [--overlaps 0.1 0.2 0.3] [--output DIR]

``--snet`` / ``--tnet``: stage folders of a finished run (``model_final.pth`` and the
``config.yaml`` it was trained with; the teacher's config only gives the test resolution).
Each evaluation goes to ``<output>/overlap_<o>[_full]/inference/<dataset>/`` (default output:
``<snet>/../slice_overlap``) and is reused when there. Prints a markdown table: slices per
image, GFLOPs per image (every slice plus the full pass), mAP, AP_S, AP_M, AP50.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from alternatives import SlicedPredictor, sliced_gflops, slices_per_image  # noqa: E402
from experiment import REPO, Stage, metrics_file, trained_config  # noqa: E402


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snet", required=True, help="SNet's stage folder")
    parser.add_argument("--tnet", required=True, help="TNet's stage folder (test resolution)")
    parser.add_argument("--dataset", required=True, help="registered dataset to evaluate on")
    parser.add_argument("--datasets", default=os.path.join(REPO, "datasets"), help="DETECTRON2_DATASETS root")
    parser.add_argument("--overlaps", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--output", help="where the evaluations go (default <snet>/../slice_overlap)")
    args = parser.parse_args(argv)
    for folder in (args.snet, args.tnet):
        if not os.path.isfile(os.path.join(folder, "model_final.pth")):
            parser.error(f"{folder}: no model_final.pth (a finished stage folder is needed)")
    if any(not 0 <= o < 1 for o in args.overlaps):
        parser.error(f"--overlaps must be in [0, 1), got {args.overlaps}")
    os.environ["DETECTRON2_DATASETS"] = os.path.abspath(args.datasets)
    import zoominnet_d2  # noqa: F401  (after DETECTRON2_DATASETS: registers the datasets)
    from detectron2.data import DatasetCatalog

    from zoominnet_d2.evaluation.predictor_evaluation import evaluate_predictor

    out = args.output or os.path.join(os.path.dirname(os.path.abspath(args.snet)), "slice_overlap")
    student = trained_config(Stage("snet", "", "", 0.0), args.snet)
    teacher = trained_config(Stage("tnet", "", "", 0.0), args.tnet)
    weights = os.path.join(args.snet, "model_final.pth")
    sizes = [(d["height"], d["width"]) for d in DatasetCatalog.get(args.dataset)]
    lines = [f"SNet ({args.snet}) on SAHI slices at the teacher's resolution, `{args.dataset}`, COCO API "
             "maxDets=100 after the ignore rule.", "",
             "| overlap | full-image pass | slices / image | GFLOPs / image | mAP | AP_S | AP_M | AP50 |",
             "|---|---|---|---|---|---|---|---|"]
    for overlap in args.overlaps:
        for full in (False, True):
            folder = os.path.join(out, f"overlap_{overlap:g}" + ("_full" if full else ""))
            if not os.path.isfile(metrics_file(folder, args.dataset)):
                print(f"evaluating overlap {overlap:g}{' + full image' if full else ''} into {folder}", flush=True)
                evaluate_predictor(SlicedPredictor(student, weights, teacher, full, overlap=overlap), student,
                                   args.dataset, os.path.dirname(metrics_file(folder, args.dataset)))
            with open(metrics_file(folder, args.dataset)) as f:
                b = json.load(f)["bbox"]
            slices = slices_per_image(student, teacher, sizes, overlap)
            gflops = sliced_gflops(student, teacher, sizes, full, overlap=overlap)
            lines.append(f"| {overlap:g} | {'yes' if full else 'no'} | {slices:.1f} | {gflops:.3f} | "
                         + " | ".join(f"{b[k] / 100:.4f}" for k in ("AP", "APs", "APm", "AP50")) + " |")
    report = "\n".join(lines)
    print(report)
    return report


if __name__ == "__main__":
    main()
