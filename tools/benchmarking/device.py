"""The inference and training-step tables on one device (``--device``), AMP off and on.

AMP is what ``SOLVER.AMP.ENABLED`` selects in Detectron2 (``AMPTrainer``): the forward under
``torch.autocast`` (CUDA float16; bfloat16 on the CPU) and the loss scaled by a
``GradScaler``; inference runs under the same autocast. The code is the CPU tables' code
(:func:`bench_inference`, :func:`bench_train`) with the models and inputs on ``device`` and a
device synchronisation closing every timed piece, so a ``--device cpu`` run exercises it all.
"""
from pathlib import Path

import torch

from .common import log
from .inference import INFERENCE_MODELS, bench_inference
from .train import bench_train

PRECISIONS = (("fp32", False), ("amp", True))


def device_unavailable(device: str) -> str:
    """Why ``device`` cannot be benchmarked here ("" when it can)."""
    kind = torch.device(device).type
    if kind == "cuda" and not torch.cuda.is_available():
        return "no CUDA device on this machine (`torch.cuda.is_available()` is False)"
    if kind not in ("cpu", "cuda"):
        return f"device type {kind!r} is not supported (cpu or cuda)"
    return ""


def device_name(device: str) -> str:
    kind = torch.device(device).type
    return torch.cuda.get_device_name(torch.device(device)) if kind == "cuda" else "CPU"


def bench_device(config_dir: Path, size: int, batch_size: int, warmup: int, repeats: int,
                 train_repeats: int, device: str, models=INFERENCE_MODELS, boxes_range=(50, 100)) -> dict:
    """``{"device", "skipped"}`` where the device is missing, else ``{"device", "name",
    "runs": {"fp32" | "amp": {"inference": ..., "train": ...}}}``."""
    skipped = device_unavailable(device)
    if skipped:
        log(f"device {device}: skipped, {skipped}")
        return {"device": device, "skipped": skipped}
    runs = {}
    for name, amp in PRECISIONS:
        runs[name] = {
            "inference": bench_inference(config_dir, size, warmup, repeats, flops=False, models=models,
                                         device=device, amp=amp),
            "train": bench_train(config_dir, size, batch_size, warmup, train_repeats, boxes_range,
                                 device=device, amp=amp),
        }
    return {"device": device, "name": device_name(device), "runs": runs}
