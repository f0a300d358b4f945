"""Per-image inference of the students and the teacher, and why the tables run on one thread.

Inference is batch 1, ``model.eval()`` under ``torch.no_grad()``, the student built by
``build_model(cfg)`` alone as at test time: preprocessing, backbone, head, decoding, NMS.
"""
import gc
import os
from pathlib import Path

import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes

from count_flops import count_gflops
from zoominnet_d2.modeling.akdp import akdp_mask

from .akdp import akdp_boxes, akdp_inputs
from .common import autocast, log, med, run_rounds, sized_config, synchronize

# (row name, config file in --config-dir, input size as a multiple of --size)
INFERENCE_MODELS = [
    ("SNet", "snet.yaml", 1),
    ("SNet + LA", "la.yaml", 1),
    ("SNet + FA ThinHead", "fa_thin.yaml", 1),
    ("SNet + FA", "fa.yaml", 1),
    ("TNet", "tnet.yaml", 2),
]


def inference_task(model, inputs, amp: bool = False):
    """A task for :func:`run_rounds`: one forward of ``model`` on ``inputs``, synchronised."""
    def run():
        with torch.no_grad(), autocast(model.device, amp):
            model(inputs)
        synchronize(model.device)
    return run


def bench_inference(config_dir: Path, size: int, warmup: int, repeats: int, flops: bool = True,
                    models=INFERENCE_MODELS, device: str = "cpu", amp: bool = False) -> dict:
    """Per-image inference time of each model on one (3, s, s) uint8 image, interleaved
    rounds; with ``flops``, its fvcore GFLOPs (``tools/count_flops.py``); ratios to the first."""
    gen = torch.Generator().manual_seed(1)
    entries = []
    for name, file, scale in models:
        s = size * scale
        model = build_model(sized_config(config_dir, file, s, device=device)).eval()
        image = torch.randint(0, 256, (3, s, s), generator=gen, dtype=torch.uint8)
        entries.append((name, file, s, model, [{"image": image, "height": s, "width": s}]))

    samples = run_rounds({e[0]: inference_task(e[3], e[4], amp) for e in entries}, warmup, repeats,
                         f"inference{' AMP' if amp else ''} {device}")
    rows = [{"model": name, "config": file, "input": s, "times": [x["total"] for x in samples[name]],
             "median_s": med(samples[name])} for name, file, s, _, _ in entries]
    del entries
    gc.collect()
    if flops:
        for row in rows:
            row["gflops"] = count_gflops(sized_config(config_dir, row["config"], row["input"]), row["input"])
            log(f"GFLOPs {row['model']}: {row['gflops']:.2f}")
    base = rows[0]
    for row in rows:
        row["time_ratio"] = row["median_s"] / base["median_s"]
        if flops:
            row["gflops_ratio"] = row["gflops"] / base["gflops"]
    return {"size": size, "warmup": warmup, "repeats": repeats, "rows": rows}


def bench_threads(config_dir: Path, size: int, warmup: int, repeats: int) -> dict:
    """The same work at 1 thread and at ``os.cpu_count()`` threads, interleaved: SNet
    inference per image and AKDP of one image (LA anchors, 100 boxes)."""
    counts = sorted({1, os.cpu_count() or 1})
    previous = torch.get_num_threads()
    model = build_model(sized_config(config_dir, "snet.yaml", size)).eval()
    inputs = [{"image": torch.randint(0, 256, (3, size, size), generator=torch.Generator().manual_seed(3),
                                      dtype=torch.uint8), "height": size, "width": size}]
    anchors, grids, kwargs = akdp_inputs(config_dir, "la.yaml", size)
    gt = Boxes(akdp_boxes(100, size))

    def with_threads(n, fn):
        def run():
            torch.set_num_threads(n)
            try:
                fn()
            finally:
                torch.set_num_threads(previous)
        return run

    tasks = {}
    for n in counts:
        tasks[f"SNet inference per image, {n} thread(s)"] = with_threads(n, inference_task(model, inputs))
    for n in counts:
        tasks[f"AKDP, LA anchors, 100 boxes, {n} thread(s)"] = with_threads(
            n, lambda: akdp_mask(anchors, grids, gt, **kwargs))
    samples = run_rounds(tasks, warmup, repeats, "threads")
    return {"size": size, "warmup": warmup, "repeats": repeats,
            "rows": [{"task": k, "median_s": med(v), "times": [x["total"] for x in v]} for k, v in samples.items()]}
