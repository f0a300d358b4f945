"""AKDP (:func:`akdp_mask`, Eqs. 11-18) of one image against the number of boxes and anchors.

The anchors are those of the distilled student's own anchor generator (LA: the 2x grid) on a
(1, 1, H/stride, W/stride) dummy pyramid; the boxes are VisDrone-like. Time: median of
interleaved rounds; peak memory: the RSS rise in a fresh subprocess per point (:mod:`.memory`).
"""
import math
from pathlib import Path

import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes

from zoominnet_d2.modeling.akdp import akdp_mask

from .common import log, med, run_rounds, sized_config, visdrone_like_boxes
from .memory import rss_peak_kb, run_worker

# (row name, config whose anchors are used, input size as a multiple of --size): AKDP runs on
# the anchors of the distilled student; the LA student at 512 has the anchor count of a 1024
# RetinaNet (grids 128x128..8x8, ~196k anchors), the last row 4x that.
AKDP_ANCHOR_SETS = [
    ("SNet (P3-P7)", "snet.yaml", 1),
    ("SNet + LA (2x grid)", "la.yaml", 1),
    ("SNet + LA (2x grid), 2x input", "la.yaml", 2),
]
AKDP_BOXES = (10, 100, 1000)


def akdp_inputs(config_dir: Path, config: str, size: int):
    """(anchors: #lvl Boxes, grid sizes: #lvl (Hi, Wi), akdp_mask kwargs) of the model of
    ``config`` on a size x size input."""
    model = build_model(sized_config(config_dir, config, size))
    shapes = model.backbone.output_shape()
    feats = [torch.zeros(1, 1, math.ceil(size / shapes[f].stride), math.ceil(size / shapes[f].stride))
             for f in model.head_in_features]
    u = model.geometry.grid_upsample
    grids = [(f.shape[-2] * u, f.shape[-1] * u) for f in feats]
    return model.anchor_generator(feats), grids, {"scope": model.akdp_scope, "lam": model.akdp_lambda}


def akdp_boxes(n: int, size: int) -> torch.Tensor:
    """The AKDP benchmark's (n, 4) boxes on a size x size image (fixed seed per (n, size))."""
    return visdrone_like_boxes(n, size, torch.Generator().manual_seed(1000 * n + size))


def bench_akdp(config_dir: Path, size: int, warmup: int, repeats: int, boxes=AKDP_BOXES,
               anchor_sets=AKDP_ANCHOR_SETS, memory: bool = True) -> dict:
    """AKDP of one image (the model's scope/lambda) per (anchors, boxes); the boxes of a size
    are the same for every anchor set of that size."""
    rows = []
    kwargs = {}
    for name, config, scale in anchor_sets:
        s = size * scale
        anchors, grids, kwargs = akdp_inputs(config_dir, config, s)
        gts = {n: Boxes(akdp_boxes(n, s)) for n in boxes}
        tasks = {n: (lambda g=gts[n]: akdp_mask(anchors, grids, g, **kwargs) and None) for n in boxes}
        samples = run_rounds(tasks, warmup, repeats, f"akdp {name}")
        num_anchors = sum(len(a) for a in anchors)
        for n in boxes:
            masks = akdp_mask(anchors, grids, gts[n], **kwargs)
            keys = sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
            rows.append({"anchors_name": name, "config": config, "input": s, "num_anchors": num_anchors,
                         "grids": [list(g) for g in grids], "num_boxes": n,
                         "times": [x["total"] for x in samples[n]], "median_s": med(samples[n]),
                         "key_fraction": keys})
    if memory:
        for row in rows:
            res = run_worker({"task": "akdp-memory", "config_dir": str(config_dir), "config": row["config"],
                              "size": row["input"], "num_boxes": row["num_boxes"]})
            row.update(peak_mb=res["delta_kb"] / 1024, hwm_reset=res["hwm_reset"])
            log(f"akdp memory {row['anchors_name']} {row['num_boxes']} boxes: +{row['peak_mb']:.1f} MB")
    return {"size": size, "warmup": warmup, "repeats": repeats, "rows": rows,
            "scope": kwargs.get("scope"), "lam": kwargs.get("lam")}


def akdp_memory_task(spec: dict) -> dict:
    """Worker task "akdp-memory": peak RSS of one :func:`akdp_mask` call (fresh process)."""
    anchors, grids, kwargs = akdp_inputs(Path(spec["config_dir"]), spec["config"], spec["size"])
    gt = Boxes(akdp_boxes(spec["num_boxes"], spec["size"]))
    return rss_peak_kb(lambda: akdp_mask(anchors, grids, gt, **kwargs))
