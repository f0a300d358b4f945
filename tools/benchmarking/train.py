"""Training steps of SNet, the SNet + LA student and SNet + LA + CSKD, and the CSKD step's parts.

The CSKD step is the real ``ZoomInNet.forward`` + backward + ``optimizer.step``, run under
``torch.profiler``; its parts are the ``record_function`` regions of ZoomInNet's distillation
path, taken from that very step:

- "teacher": ``zoominnet.teacher`` (teacher forward at 2x input and its grid alignment);
- "akdp": ``zoominnet.akdp`` (anchors and the key-position masks of the batch);
- "loss": ``zoominnet.distill_loss`` (the position-aware L2 loss's forward, all levels);

each the total over the region's calls in the step: CPU wall time on the CPU, the time of the
device kernels launched inside on CUDA. "student_forward" is the forward minus the three.
The profiler's own cost (a few microseconds per op) is part of the CSKD step. The loss's
backward runs inside the step's backward; it is timed on its own (``distillation_loss`` on the
last batch's :meth:`ZoomInNet.inspect_distillation` pairs, forward + backward).
"""
import tempfile
import time
from pathlib import Path
from typing import Dict

from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from torch.profiler import ProfilerActivity, profile

from zoominnet_d2.modeling import DistillationPairs, distillation_loss

from .common import (TrainStep, autocast, cskd_config, make_batch, medians, run_rounds, sized_config, student_and_cskd,
                     synchronize)

#: Step part -> ``record_function`` region of ``zoominnet_d2.modeling.zoominnet``.
REGIONS = {"teacher": "zoominnet.teacher", "akdp": "zoominnet.akdp", "loss": "zoominnet.distill_loss"}


def profiled(step: TrainStep) -> Dict[str, float]:
    """Run ``step`` under ``torch.profiler``; its phase times plus each region's time (s) and
    number of calls ("<part>_calls"). Raises if a region did not run."""
    device = step.device
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        times = step()
    events = {e.key: e for e in prof.key_averages()}
    for part, region in REGIONS.items():
        if region not in events:
            raise RuntimeError(f"profiler region {region!r} did not run in the CSKD step")
        event = events[region]
        total_us = event.device_time_total if device.type == "cuda" else event.cpu_time_total
        times[part] = total_us / 1e6
        times[f"{part}_calls"] = event.count
    times["student_forward"] = times["forward"] - times["teacher"] - times["akdp"] - times["loss"]
    return times


def loss_forward_backward(pairs: DistillationPairs, amp: bool) -> Dict[str, float]:
    """Wall times (s) of ``distillation_loss`` forward and backward on ``pairs``' tensors."""
    device = pairs.student[0].device
    students = [s.detach().clone().requires_grad_(True) for s in pairs.student]
    synchronize(device)
    t0 = time.perf_counter()
    with autocast(device, amp):
        total = distillation_loss(DistillationPairs(students, pairs.teacher, pairs.masks))
    synchronize(device)
    t1 = time.perf_counter()
    total.backward()
    synchronize(device)
    t2 = time.perf_counter()
    return {"forward": t1 - t0, "backward": t2 - t1, "total": t2 - t0}


def bench_train(config_dir: Path, size: int, batch_size: int, warmup: int, repeats: int,
                boxes_range=(50, 100), device: str = "cpu", amp: bool = False) -> dict:
    """SNet step, SNet + LA student step and SNet + LA + CSKD step (:func:`profiled`), in
    interleaved rounds. The LA student is ``build_model(cfg)`` of the CSKD config; the CSKD
    model is a copy of it (same weights) with the configured teacher attached."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = cskd_config(config_dir, size, Path(tmp), device)
        la, cskd = student_and_cskd(cfg)
    snet = build_model(sized_config(config_dir, "snet.yaml", size, device=device))
    batch = make_batch(size, batch_size, boxes_range, num_classes=cfg.MODEL.RETINANET.NUM_CLASSES)
    steps = {name: TrainStep(model.train(), batch, amp) for name, model in (("snet", snet), ("la", la), ("cskd", cskd))}
    tasks = {"snet": steps["snet"], "la": steps["la"], "cskd": lambda: profiled(steps["cskd"])}

    with EventStorage():
        samples = run_rounds(tasks, warmup, repeats, f"train{' AMP' if amp else ''} {device}")
        with autocast(cskd.device, amp):
            pairs = cskd.inspect_distillation(batch)
        loss_samples = run_rounds({"loss": lambda: loss_forward_backward(pairs, amp)}, 1, max(5, repeats),
                                  "loss")["loss"]
    grids = [tuple(m.shape[-2:]) for m in pairs.masks]
    num_anchors = [h * w * a for (h, w), a in zip(grids, cskd.anchor_generator.num_cell_anchors)]
    key_fraction = [float(m.float().mean()) for m in pairs.masks]

    m = {name: medians(v) for name, v in samples.items()}
    loss_fb = medians(loss_samples)
    c = m["cskd"]
    return {
        "size": size, "batch": batch_size, "warmup": warmup, "repeats": repeats, "device": device, "amp": amp,
        "boxes_range": list(boxes_range), "num_boxes": [len(x["instances"]) for x in batch],
        "num_anchors": num_anchors, "key_fraction": key_fraction,
        "medians": m, "loss_fwd_bwd": loss_fb, "samples": samples,
        "akdp_loss_fraction": (c["akdp"] + loss_fb["total"]) / c["step"],
        "step_ratio": c["step"] / (m["la"]["step"] + c["teacher"]),
    }
