"""Evaluate official VisDrone-DET result files with the official toolkit's metrics.

    python tools/evaluate_visdrone.py --annotations DIR --images DIR --results DIR \
        [--output FILE.json [--overwrite]]

``--annotations``: the official ``<stem>.txt`` annotation files (e.g.
``VisDrone2019-DET-val/annotations``); ``--images``: the images, for their sizes (read from
the headers); ``--results``: one ``<stem>.txt`` per image in the official result format,
``left,top,width,height,score,category,-1,-1`` (decimals accepted). Computes what the MATLAB
toolkit (VisDrone2018-DET-toolkit, ``evalDET.m``) computes -- AP, AP50, AP75 at 500
detections per image, AR1, AR10, AR100, AR500, and the per-class AP -- prints them and, with
``--output``, writes them as JSON (``{"visdrone": {...}, "counts": {...}, ...}``; an existing
file is kept unless ``--overwrite``).

Images without a result file are evaluated as having no detections (listed in a warning); a
result file without an annotation file and image is an error, as is a malformed line (named
with its file and line). Result lines of categories other than 1..10 are kept in their place
of the per-image detection cap, as the toolkit does, and counted in the output.
"""
import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from zoominnet_d2.data.visdrone import VISDRONE_CLASSES  # noqa: E402
from zoominnet_d2.data.visdrone_files import (  # noqa: E402
    IMAGE_EXTENSIONS, describe_missing, image_size, list_files)
from zoominnet_d2.evaluation import (  # noqa: E402
    OFFICIAL_PROTOCOL,
    evaluate_official,
    read_visdrone_txt,
)
from zoominnet_d2.evaluation.report import official_report  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", required=True, help="folder of <stem>.txt annotations")
    parser.add_argument("--images", required=True, help="folder of the <stem>.jpg images")
    parser.add_argument("--results", required=True, help="folder of <stem>.txt result files")
    parser.add_argument("--output", help="write the metrics to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    return parser


def evaluate_folders(annotation_dir: str, image_dir: str, result_dir: str) -> Dict:
    """Evaluate a result folder; the report as written to ``--output``.

    Raises:
        FileNotFoundError: a folder is missing, or annotation files without image, or result
            files without annotation file (the message names them).
        ValueError: a malformed line (named ``path:lineno``), an unreadable image.
    """
    annotations = list_files(Path(annotation_dir), {".txt"})
    images = list_files(Path(image_dir), IMAGE_EXTENSIONS)
    results = list_files(Path(result_dir), {".txt"})
    problems = []
    if annotations.keys() - images.keys():
        problems.append(describe_missing(annotations.keys() - images.keys(),
                                          f"annotation files without image in {image_dir}"))
    if results.keys() - annotations.keys():
        problems.append(describe_missing(results.keys() - annotations.keys(),
                                          f"result files without annotation file in "
                                          f"{annotation_dir} (or image)"))
    if problems:
        raise FileNotFoundError("; ".join(problems))
    without_results = sorted(annotations.keys() - results.keys())
    if without_results:
        print("warning: " + describe_missing(set(without_results), f"images without a result "
                                              f"file in {result_dir}")
              + ": evaluated as having no detections", file=sys.stderr)

    stems = sorted(annotations, key=lambda stem: annotations[stem].name)  # the toolkit's order
    inputs = []
    for stem in stems:
        det = (read_visdrone_txt(str(results[stem]), annotation=False) if stem in results
               else np.zeros((0, 6)))
        inputs.append((read_visdrone_txt(str(annotations[stem]), annotation=True), det,
                       *image_size(images[stem])))
    metrics, counts = evaluate_official(inputs, VISDRONE_CLASSES)
    return {
        "protocol": OFFICIAL_PROTOCOL,
        "annotations": str(annotation_dir), "images": str(image_dir), "results": str(result_dir),
        "visdrone": {k: (None if math.isnan(v) else v) for k, v in metrics.items()},
        "counts": counts,
        "images_without_results": without_results,
    }


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.output and os.path.exists(args.output) and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it")
    try:
        report = evaluate_folders(args.annotations, args.images, args.results)
    except (FileNotFoundError, ValueError) as e:
        parser.exit(1, f"error: {e}\n")
    metrics = {k: (math.nan if v is None else v) for k, v in report["visdrone"].items()}
    print(official_report(metrics, VISDRONE_CLASSES))
    counts = report["counts"]
    print(f"{counts['images']} images, {counts['gt']} annotated objects of classes 1-10 "
          f"outside ignored regions ({counts['gt_score_0']} with score 0, matched as 'ignore'), "
          f"{counts['detections']} detections; dropped in ignored regions: "
          f"{counts['gt_in_ignored_regions']} annotations, "
          f"{counts['detections_in_ignored_regions']} detections; beyond the first 500 lines: "
          f"{counts['detections_beyond_cap']} detections.")
    if counts["detection_categories_outside_1_10"]:
        print("Detections of categories outside 1-10 (they take their place in the per-image "
              f"cap and match nothing): {counts['detection_categories_outside_1_10']}")
    if args.output:
        directory = os.path.dirname(os.path.abspath(args.output))
        os.makedirs(directory, exist_ok=True)
        with open(args.output, "w" if args.overwrite else "x") as f:
            json.dump(report, f, indent=2)
        print(f"Wrote {args.output}")
    return report


if __name__ == "__main__":
    main()
