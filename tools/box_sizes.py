#!/usr/bin/env python
"""Object sizes against a model's anchors, and the sizes of what a trained model detects.

    python tools/box_sizes.py anchors --config-file configs/synth/snet.yaml [--train] [KEY VALUE ...]
    python tools/box_sizes.py detections --stage DIR [DIR ...] [--dataset NAME] [--score 0.3]

``anchors``: every ground-truth box of ``DATASETS.TEST[0]`` (``--train``: ``DATASETS.TRAIN[0]``,
one random training view per image, seeded by ``--seed``) in the model's input pixels (the config's own test-time
resize, or its training augmentation with ``--train``), against the anchors the model's
anchor generator makes for that input (the head's feature maps of the config's backbone,
so LA's 2x grid too). Reported: the box side ``sqrt(w h)`` (median, quartiles), the share of
boxes whose best anchor has IoU >= 0.5 (a foreground match of RetinaNet's ``Matcher`` without
its low-quality rule) and >= 0.4 (not background), and the mean number of anchors at IoU >= 0.5
per box. Pairwise IoU is Detectron2's ``pairwise_iou``.

``detections``: the evaluated detections of each stage folder
(``<DIR>/inference/<dataset>/coco_instances_results.json``) with score >= ``--score``:
their count per image and median width / height in original pixels, next to the ground truth's.
"""
import argparse
import json
import os
import sys
from typing import Dict, List

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import zoominnet_d2  # noqa: E402,F401  (registers the datasets)


def anchor_coverage(cfg, train: bool = False, max_images: int = 0) -> Dict:
    """Box sides and best-anchor IoUs of one split's ground truth at the model's input."""
    import torch
    from detectron2.data import DatasetCatalog
    from detectron2.structures import Boxes, pairwise_iou

    from zoominnet_d2.data.cross_scale_mapper import ZoomInDatasetMapper
    from zoominnet_d2.deploy.student import build_student
    from zoominnet_d2.visualization.inputs import visualization_mapper

    dataset = (cfg.DATASETS.TRAIN if train else cfg.DATASETS.TEST)[0]
    mapper = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=False) if train else \
        visualization_mapper(cfg, with_teacher=False)
    model = build_student(cfg)
    dicts = DatasetCatalog.get(dataset)[:max_images or None]
    sides, best, positives = [], [], []
    with torch.no_grad():
        for record in dicts:
            mapped = mapper(dict(record))
            gt = mapped["instances"].gt_boxes
            if len(gt) == 0:
                continue
            images = model.preprocess_image([mapped])
            features = model.backbone(images.tensor)
            anchors = Boxes.cat(model.anchor_generator([features[f] for f in model.head_in_features]))
            iou = pairwise_iou(gt, anchors)  # (G, total anchors)
            sides.append(gt.area().sqrt())
            best.append(iou.max(dim=1).values)
            positives.append((iou >= 0.5).sum(dim=1).float())
    sides, best, positives = (torch.cat(t).numpy() for t in (sides, best, positives))
    return {"dataset": dataset, "view": "training" if train else "test", "images": len(dicts),
            "boxes": int(len(sides)), "side_quartiles": [round(float(v), 1) for v in np.percentile(sides, [25, 50, 75])],
            "best_iou_ge_0.5": round(float((best >= 0.5).mean()), 3),
            "best_iou_ge_0.4": round(float((best >= 0.4).mean()), 3),
            "anchors_iou_ge_0.5_per_box": round(float(positives.mean()), 2)}


def detection_sizes(stage_dirs: List[str], dataset: str, score: float) -> List[Dict]:
    """Median width / height (original pixels) of each stage's detections scoring >= ``score``,
    and of the ground truth (first row)."""
    from detectron2.data import DatasetCatalog

    records = DatasetCatalog.get(dataset)
    gt = np.array([a["bbox"][2:] for r in records for a in r["annotations"]]).reshape(-1, 2)
    rows = [{"boxes": "ground truth", "per_image": round(len(gt) / len(records), 1),
             "median_w": round(float(np.median(gt[:, 0])), 1), "median_h": round(float(np.median(gt[:, 1])), 1)}]
    for stage in stage_dirs:
        path = os.path.join(stage, "inference", dataset, "coco_instances_results.json")
        if not os.path.isfile(path):
            raise SystemExit(f"--stage {stage}: no detections file {path} (an evaluated stage folder?)")
        with open(path) as f:
            found = np.array([d["bbox"][2:] for d in json.load(f) if d["score"] >= score]).reshape(-1, 2)
        rows.append({"boxes": f"{stage} (score >= {score})", "per_image": round(len(found) / len(records), 1),
                     "median_w": round(float(np.median(found[:, 0])), 1) if len(found) else None,
                     "median_h": round(float(np.median(found[:, 1])), 1) if len(found) else None})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    anchors = commands.add_parser("anchors", help="ground-truth sizes against the model's anchors")
    anchors.add_argument("--config-file", required=True)
    anchors.add_argument("--train", action="store_true", help="the training split and augmentation")
    anchors.add_argument("--seed", type=int, default=0, help="seed of the training augmentation's randomness")
    anchors.add_argument("--max-images", type=int, default=0, help="the first N images only (0: all)")
    anchors.add_argument("opts", nargs=argparse.REMAINDER, help="config options (KEY VALUE ...)")
    detections = commands.add_parser("detections", help="sizes of a trained model's confident detections")
    detections.add_argument("--stage", nargs="+", required=True, help="evaluated stage folders")
    detections.add_argument("--dataset", default="synthdrone_val")
    detections.add_argument("--score", type=float, default=0.3)
    args = parser.parse_args(argv)
    if args.command == "anchors":
        from detectron2.utils.env import seed_all_rng

        from zoominnet_d2 import load_config

        seed_all_rng(args.seed)
        result = anchor_coverage(load_config(args.config_file, args.opts), args.train, args.max_images)
        print(json.dumps(dict(config=args.config_file, **result)))
    else:
        for row in detection_sizes(args.stage, args.dataset, args.score):
            print(json.dumps(row))


if __name__ == "__main__":
    main()
