#!/usr/bin/env python
"""Per pyramid level: the scale of a student's and its teacher's distilled maps, the AKDP key
positions, the position-aware L2 distance, and how strongly the student's head fires there.

    python tools/distillation_levels.py --teacher real_output/tnet \\
        --run real_output/seed_0/la --run real_output/seed_0/cskd_la \\
        --images real_output/data/VisDrone2019-DET-val/images [--annotations DIR] \\
        [--max-images 12] [--crops 2] [--output levels.json]

Each ``--run`` and ``--teacher`` is a training output folder (``config.yaml`` and
``model_final.pth``, as ``train_net.py`` writes them); every student is paired with the
``--teacher`` (whatever teacher it was trained with, if any). The images are seen as
evaluation sees them: the student's view at its test size, the teacher's at INPUT_SCALE x
(:func:`zoominnet_d2.visualization.visualization_mapper`); or, with ``--crops K``, as training
sees them: K random crops of each image through the run's training augmentation (crop, flip;
the same crops for every run, numpy seeded with 0). BatchNorm is in inference mode. The
annotations (default ``../annotations`` next to the images) give the key positions.

Printed (and written to ``--output`` as JSON), per run and level, averaged over the images:

- ``rms_student`` / ``rms_teacher``: root mean square of the whole distilled map;
- ``key_fraction``: share of the level's grid cells that are AKDP key positions;
- ``sq_norm_student`` / ``sq_norm_teacher``: squared channel norm at the key positions;
- ``distance``: squared channel distance teacher - student at the key positions, i.e. the
  level's term of Eq. 21 before its weight (what ``DISTILL_SCALE: raw`` trains on);
- ``fired``: share of the level's anchors whose class score passes
  ``MODEL.RETINANET.SCORE_THRESH_TEST``;
- ``max_score``: the highest class score of the level;
- ``teacher_fired`` / ``teacher_max_score``: the same for the teacher's head on its own view.
"""
import argparse
import json
import os
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import zoominnet_d2  # noqa: F401,E402  (first: compat fixes, registrations)
from zoominnet_d2 import load_config  # noqa: E402
from zoominnet_d2.checkpoint import SafeDetectionCheckpointer  # noqa: E402
from zoominnet_d2.data.cross_scale_mapper import ZoomInDatasetMapper  # noqa: E402
from zoominnet_d2.modeling.teacher import FrozenTeacher, load_teacher_config  # noqa: E402
from zoominnet_d2.visualization import (collect_distillation_maps, load_image_dict, valid_grid_sizes,  # noqa: E402
                                        visualization_mapper)

FIELDS = ("rms_student", "rms_teacher", "key_fraction", "sq_norm_student", "sq_norm_teacher", "distance",
          "fired", "max_score", "teacher_fired", "teacher_max_score")


def level_statistics(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor,
                     scores: torch.Tensor, teacher_scores: torch.Tensor, score_thresh: float) -> Dict[str, float]:
    """The statistics of one level of one image.

    Args:
        student, teacher: (C, H, W) distilled maps on the same grid.
        mask: (H, W) bool AKDP key positions.
        scores, teacher_scores: any shape: the level's class scores (after the sigmoid) of
            the student's and the teacher's head.
        score_thresh: the test-time score threshold.

    Returns:
        dict of :data:`FIELDS`; the key-position fields are NaN when there is no key position.
    """
    keys = mask.sum()
    nan = float("nan")
    s_keys, t_keys = student[:, mask], teacher[:, mask]
    return {
        "rms_student": float(student.square().mean().sqrt()),
        "rms_teacher": float(teacher.square().mean().sqrt()),
        "key_fraction": float(mask.float().mean()),
        "sq_norm_student": float(s_keys.square().sum() / keys) if keys else nan,
        "sq_norm_teacher": float(t_keys.square().sum() / keys) if keys else nan,
        "distance": float((t_keys - s_keys).square().sum() / keys) if keys else nan,
        "fired": float((scores > score_thresh).float().mean()),
        "max_score": float(scores.max()),
        "teacher_fired": float((teacher_scores > score_thresh).float().mean()),
        "teacher_max_score": float(teacher_scores.max()),
    }


def mean_over_images(per_image: List[List[Dict[str, float]]]) -> List[Dict[str, float]]:
    """Per level, each field averaged over the images where it is defined (not NaN)."""
    levels = []
    for stats in zip(*per_image):
        row = {}
        for field in FIELDS:
            values = [s[field] for s in stats if s[field] == s[field]]
            row[field] = sum(values) / len(values) if values else float("nan")
        levels.append(row)
    return levels


def build_student(run: Path, teacher: FrozenTeacher):
    """The run's student (inference mode) with ``teacher`` attached, and its config."""
    from detectron2.modeling import build_model

    cfg = load_config(str(run / "config.yaml"), ["MODEL.DEVICE", "cpu"], file_key="--run")
    model = build_model(cfg)
    SafeDetectionCheckpointer(model).load(str(run / "model_final.pth"))
    model.attach_teacher(teacher)
    return model.eval(), cfg


@torch.no_grad()
def run_statistics(run: Path, teacher: FrozenTeacher, images: List[Path], annotations: Path,
                   crops: int = 0) -> List[Dict]:
    """:func:`level_statistics` of ``run``'s student and ``teacher`` per level, averaged over
    the whole ``images`` or, with ``crops`` > 0, over that many training crops of each."""
    model, cfg = build_student(run, teacher)
    if crops:
        mapper = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=True)
        np.random.seed(0)
    else:
        mapper = visualization_mapper(cfg, with_teacher=True)
    thresh = cfg.MODEL.RETINANET.SCORE_THRESH_TEST
    per_image = []
    for image in [i for i in images for _ in range(max(crops, 1))]:
        label = annotations / f"{image.stem}.txt"
        sample = mapper(load_image_dict(str(image), str(label) if label.is_file() else None))
        maps = collect_distillation_maps(model, sample)
        batch = model.preprocess_image([sample])
        features = model.backbone(batch.tensor)
        logits = model.head([features[f] for f in model.head_in_features])[0]
        teacher_maps = teacher.features(batch.teacher_images, model.geometry.teacher_padded_size(batch.tensor.shape),
                                        with_towers=False)["fpn"]
        teacher_logits = teacher.model.head(teacher_maps)[0]
        th, tw = sample["teacher_image"].shape[-2:]
        teacher_grids = valid_grid_sizes(th, tw, teacher.strides)
        per_image.append([
            level_statistics(s, t, m, lg[0, :, : hw[0], : hw[1]].sigmoid(),
                             tlg[0, :, : thw[0], : thw[1]].sigmoid(), thresh)
            for s, t, m, lg, hw, tlg, thw in zip(maps["student"], maps["teacher"], maps["masks"], logits,
                                                 maps["grid_sizes"], teacher_logits, teacher_grids)
        ])
    return mean_over_images(per_image)


def format_table(results: Dict[str, List[Dict]]) -> str:
    lines = ["| run | level | " + " | ".join(FIELDS) + " |", "|---|---|" + "---|" * len(FIELDS)]
    for run, levels in results.items():
        for level, row in enumerate(levels):
            lines.append(f"| {run} | {level} | " + " | ".join(f"{row[f]:.4g}" for f in FIELDS) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, type=Path,
                        help="the teacher's training output folder (config.yaml, model_final.pth)")
    parser.add_argument("--run", required=True, type=Path, action="append",
                        help="a student's training output folder (repeat for several)")
    parser.add_argument("--images", required=True, type=Path, help="folder of .jpg frames")
    parser.add_argument("--annotations", type=Path,
                        help="their VisDrone .txt annotations (default: ../annotations next to --images)")
    parser.add_argument("--max-images", type=int, default=12,
                        help="the first N frames in name order (default 12)")
    parser.add_argument("--crops", type=int, default=0,
                        help="K > 0: K random training crops of each image instead of the whole image")
    parser.add_argument("--output", type=Path, help="also write the statistics here as JSON")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    for folder in [args.teacher] + args.run:
        for name in ("config.yaml", "model_final.pth"):
            if not (folder / name).is_file():
                sys.exit(f"error: {folder / name} does not exist (a train_net.py output folder is needed)")
    images = sorted(args.images.glob("*.jpg"))[: args.max_images]
    if not images:
        sys.exit(f"error: no .jpg frames in {args.images}")
    annotations = args.annotations or args.images.parent / "annotations"
    teacher = FrozenTeacher.from_files(load_teacher_config(str(args.teacher / "config.yaml")),
                                       str(args.teacher / "model_final.pth"),
                                       config_file=str(args.teacher / "config.yaml"))
    results = {str(run): run_statistics(run, teacher, images, annotations, args.crops) for run in args.run}
    view = f"{args.crops} training crops of each of" if args.crops else "whole"
    print(f"{view} {len(images)} frames of {args.images}, teacher {args.teacher}")
    print(format_table(results))
    if args.output:
        args.output.write_text(json.dumps({"teacher": str(args.teacher), "images": [str(i) for i in images],
                                           "crops_per_image": args.crops, "levels": results}, indent=1))


if __name__ == "__main__":
    main()
