"""What every benchmark table shares: configs, models, inputs, timing rounds, a training step.

Models have random weights (the cost of dense convolutions does not depend on them). Inputs
are uint8 noise images (3, size, size), their teacher view (3, 2 size, 2 size) by nearest 2x
upsampling, and VisDrone-like ground truth (:func:`visdrone_like_boxes`). Times are wall
times (``time.perf_counter``); on CUDA every timed piece ends with a device synchronisation
(:func:`synchronize`), on the CPU that is a no-op, so the same code measures both.
"""
import copy
import gc
import math
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from count_flops import load_config
from host import cpu_model
from zoominnet_d2.modeling import ZoomInNet, attach_configured_teacher

REPO = Path(__file__).resolve().parents[2]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def size_opts(size: int) -> List[str]:
    """Config overrides for a square ``size`` input (train and test)."""
    return ["INPUT.SQUARE_SIZE", str(size), "INPUT.MIN_SIZE_TRAIN", f"({size},)",
            "INPUT.MIN_SIZE_TEST", str(size)]


def config_path(config_dir: Path, name: str) -> Path:
    path = Path(config_dir) / name
    return path if path.is_absolute() else REPO / path


def sized_config(config_dir: Path, name: str, size: int, opts=(), device: str = "cpu"):
    """The config ``config_dir/name`` at a square ``size`` input on ``device``, no weights file."""
    cfg = load_config(str(config_path(config_dir, name)), size_opts(size) + list(opts))
    cfg.MODEL.DEVICE = device
    return cfg


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, amp: bool):
    """``torch.autocast`` of the device (CUDA float16, CPU bfloat16) when ``amp``, as
    Detectron2's ``AMPTrainer`` (``SOLVER.AMP.ENABLED``) runs the forward."""
    return torch.autocast(device.type) if amp else nullcontext()


def visdrone_like_boxes(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 4) XYXY boxes inside a size x size image, VisDrone-like: small objects, sides
    log-uniform in [4, 48] px at 512 (scaled with ``size``)."""
    scale = size / 512
    lo, hi = math.log(max(1.0, 4 * scale)), math.log(max(2.0, 48 * scale))
    wh = torch.empty(n, 2).uniform_(lo, hi, generator=gen).exp()
    xy = torch.rand(n, 2, generator=gen) * (size - wh)
    return torch.cat([xy, xy + wh], dim=1)


def make_batch(size: int, batch: int, boxes_range=(50, 100), num_classes: int = 10, seed: int = 0,
               teacher_scale: int = 2) -> List[dict]:
    """Training inputs: ``image`` (3, size, size) uint8 noise, ``teacher_image`` (its nearest
    ``teacher_scale`` x view) and ``instances`` with 50-100 VisDrone-like boxes."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        image = torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8)
        n = int(torch.randint(boxes_range[0], boxes_range[1] + 1, (1,), generator=gen))
        inst = Instances((size, size))
        inst.gt_boxes = Boxes(visdrone_like_boxes(n, size, gen))
        inst.gt_classes = torch.randint(0, num_classes, (n,), generator=gen)
        teacher_image = image.repeat_interleave(teacher_scale, 1).repeat_interleave(teacher_scale, 2)
        out.append({"image": image, "teacher_image": teacher_image, "instances": inst})
    return out


def cskd_config(config_dir: Path, size: int, workdir: Path, device: str = "cpu"):
    """The SNet + LA + CSKD config (``cskd_la.yaml``) whose teacher is a random ``tnet.yaml``
    model at 2x ``size``, saved to ``workdir`` and named by ``MODEL.ZOOMIN.TEACHER``."""
    t_size = 2 * size
    weights = workdir / "teacher.pth"
    torch.save({"model": build_model(sized_config(config_dir, "tnet.yaml", t_size)).state_dict()}, weights)
    t_yaml = workdir / "teacher.yaml"
    t_yaml.write_text(
        f'_BASE_: "{config_path(config_dir, "tnet.yaml")}"\n'
        f"INPUT: {{SQUARE_SIZE: {t_size}, MIN_SIZE_TRAIN: [{t_size}], MIN_SIZE_TEST: {t_size}}}\n"
    )
    return sized_config(config_dir, "cskd_la.yaml", size, device=device,
                        opts=["MODEL.ZOOMIN.TEACHER.CONFIG_FILE", str(t_yaml),
                              "MODEL.ZOOMIN.TEACHER.WEIGHTS", str(weights)])


def student_and_cskd(cfg) -> Tuple[ZoomInNet, ZoomInNet]:
    """The LA student alone (``build_model``) and a copy of it, same weights, with the
    configured teacher attached (read from its files, as in training)."""
    student = build_model(cfg)
    return student, attach_configured_teacher(copy.deepcopy(student), cfg)


def make_optimizer(model):
    # lr 0: the same arithmetic as SGD (momentum, weight decay) but the random weights stay
    # put, so that every repeat runs the same model (no divergence to inf/NaN).
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=0.0, momentum=0.9, weight_decay=1e-4)


class TrainStep:
    """One training step as Detectron2's ``SimpleTrainer`` (``amp=False``) or ``AMPTrainer``
    (``amp=True``: forward under autocast, loss scaled by a ``GradScaler``) runs it.

    Calling it returns the wall times (s) of "forward" (losses), "backward", "optimizer"
    and the whole "step" (from ``zero_grad`` to the end of ``optimizer.step``; also "total").
    """

    def __init__(self, model, batch: List[dict], amp: bool = False):
        self.model, self.batch, self.amp = model, batch, amp
        self.device = model.device
        self.optimizer = make_optimizer(model)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp)

    def __call__(self) -> Dict[str, float]:
        synchronize(self.device)
        t0 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp):
            losses = self.model(self.batch)
        loss = sum(losses.values())
        synchronize(self.device)
        t1 = time.perf_counter()
        self.scaler.scale(loss).backward()
        synchronize(self.device)
        t2 = time.perf_counter()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        synchronize(self.device)
        t3 = time.perf_counter()
        return {"forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2, "step": t3 - t0, "total": t3 - t0}


def run_rounds(tasks: Dict[str, Callable[[], Optional[Dict[str, float]]]], warmup: int, repeats: int,
               label: str) -> Dict[str, List[Dict[str, float]]]:
    """Run every task once per round, interleaved, ``warmup + repeats`` rounds; keep the
    timed rounds. A task returns None (its wall time is recorded as "total") or a dict of
    times (with "total" added if missing)."""
    out = {name: [] for name in tasks}
    for r in range(warmup + repeats):
        for name, fn in tasks.items():
            gc.collect()
            t0 = time.perf_counter()
            extra = fn() or {}
            dt = time.perf_counter() - t0
            extra.setdefault("total", dt)
            log(f"{label} round {r + 1}/{warmup + repeats}{' (warm-up)' if r < warmup else ''}: "
                f"{name} {extra['total']:.3f} s")
            if r >= warmup:
                out[name].append(extra)
    return out


def med(samples: List[Dict[str, float]], key: str = "total") -> float:
    return statistics.median(s[key] for s in samples)


def medians(samples: List[Dict[str, float]]) -> Dict[str, float]:
    """The median of every key of a task's rounds."""
    return {k: med(samples, k) for k in samples[0]}


def machine_info() -> dict:
    cpu = cpu_model()
    return {
        "date": subprocess.run(["date"], capture_output=True, text=True).stdout.strip(),
        "nproc": os.cpu_count(), "cpu": cpu, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "python": sys.version.split()[0], "load_start": load_average(),
    }


def load_average() -> str:
    """The 1/5/15-minute load averages."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
