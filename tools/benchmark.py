#!/usr/bin/env python
"""Performance benchmark of ZoomInNet on the CPU: inference, CSKD training step, AKDP, memory.

    python tools/benchmark.py --output BENCHMARKS.md     # full run (5-15 min on 2 shared cores)
    python tools/benchmark.py --quick                    # smoke version (< 2 min)

Everything is timed in this one process as medians of repeats (after warm-up rounds), and the
models of a table are timed in interleaved rounds (model 1, 2, ..., then again), so that a
change of the machine's load hits all of them alike and the ratios stay meaningful. Peak
memory is measured in fresh subprocesses (see ``rss_peak_kb``). The script prints a markdown
report and, with ``--output``, writes it; every number of BENCHMARKS.md comes from it.

Models have random weights (no checkpoint can be downloaded here): the cost of dense
convolutions does not depend on the weights. Inputs are uint8 noise images with
VisDrone-like ground truth (50-100 small boxes per image, see ``visdrone_like_boxes``).
"""
import argparse
import gc
import json
import logging
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import zoominnet_d2  # noqa: E402,F401  (first: compat fixes, registrations)
import torch  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

import zoominnet_d2.modeling.zoominnet as zoominnet_module  # noqa: E402
from count_flops import count_gflops, load_config  # noqa: E402
from zoominnet_d2.modeling import student_config  # noqa: E402
from zoominnet_d2.modeling.akdp import akdp_mask  # noqa: E402
from zoominnet_d2.modeling.losses import position_aware_l2  # noqa: E402

# (row name, config file in --config-dir, input size as a multiple of --size)
INFERENCE_MODELS = [
    ("SNet", "snet.yaml", 1),
    ("SNet + LA", "la.yaml", 1),
    ("SNet + FA ThinHead", "fa_thin.yaml", 1),
    ("SNet + FA", "fa.yaml", 1),
    ("TNet", "tnet.yaml", 2),
]
# (row name, config whose anchors are used, input size as a multiple of --size): AKDP runs on
# the anchors of the distilled student; the LA student at 512 has the anchor count of a 1024
# RetinaNet (grids 128x128..8x8, ~196k anchors), the last row 4x that.
AKDP_ANCHOR_SETS = [
    ("SNet (P3-P7)", "snet.yaml", 1),
    ("SNet + LA (2x grid)", "la.yaml", 1),
    ("SNet + LA (2x grid), 2x input", "la.yaml", 2),
]
AKDP_BOXES = (10, 100, 1000)
TARGET_AKDP_LOSS_FRACTION = 0.03
TARGET_STEP_RATIO = 1.10
SECTIONS = ("threads", "inference", "train", "akdp", "memory")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# configs, models, inputs
# --------------------------------------------------------------------------------------


def size_opts(size: int) -> List[str]:
    """Config overrides for a square ``size`` input (train and test)."""
    return ["INPUT.SQUARE_SIZE", str(size), "INPUT.MIN_SIZE_TRAIN", f"({size},)",
            "INPUT.MIN_SIZE_TEST", str(size)]


def config_path(config_dir: Path, name: str) -> Path:
    path = Path(config_dir) / name
    return path if path.is_absolute() else REPO / path


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
    """Training inputs: uint8 noise images, the teacher's view (nearest 2x) and GT."""
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


def build_cskd(config_dir: Path, size: int, workdir: Path):
    """The SNet + LA + CSKD student (``cskd_la.yaml``) with a random teacher (``tnet.yaml``)
    saved to ``workdir`` and loaded through the normal config path."""
    t_size = 2 * size
    t_model = build_model(load_config(str(config_path(config_dir, "tnet.yaml")), size_opts(t_size)))
    weights = workdir / "teacher.pth"
    torch.save({"model": t_model.state_dict()}, weights)
    del t_model
    t_yaml = workdir / "teacher.yaml"
    t_yaml.write_text(
        f'_BASE_: "{config_path(config_dir, "tnet.yaml")}"\n'
        f"INPUT: {{SQUARE_SIZE: {t_size}, MIN_SIZE_TRAIN: [{t_size}], MIN_SIZE_TEST: {t_size}}}\n"
    )
    opts = size_opts(size) + ["MODEL.ZOOMIN.TEACHER.CONFIG_FILE", str(t_yaml),
                              "MODEL.ZOOMIN.TEACHER.WEIGHTS", str(weights)]
    cfg = load_config(str(config_path(config_dir, "cskd_la.yaml")), opts)
    return build_model(cfg), cfg


def make_optimizer(model):
    # lr 0: the same arithmetic as SGD (momentum, weight decay) but the random weights stay
    # put, so that every repeat runs the same model (no divergence to inf/NaN).
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=0.0, momentum=0.9, weight_decay=1e-4)


def train_step(model, optimizer, batch) -> Dict[str, float]:
    """One SimpleTrainer-like step; returns the wall times of its phases (s)."""
    t0 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    losses = model(batch)
    loss = sum(losses.values())
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    optimizer.step()
    t3 = time.perf_counter()
    return {"forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2, "step": t3 - t0}


@contextmanager
def without_teacher(model):
    """The CSKD model as the plain LA student (same weights, no teacher, no distillation)."""
    teacher, model.teacher = model.teacher, None
    try:
        yield model
    finally:
        model.teacher = teacher


class Probe:
    """Wraps a function and adds its wall time to ``elapsed``; keeps the last call's args."""

    def __init__(self, fn: Callable):
        self.fn, self.elapsed, self.calls, self.last = fn, 0.0, [], None

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self.fn(*args, **kwargs)
        self.elapsed += time.perf_counter() - t0
        self.calls.append((args, kwargs))
        return out

    def reset(self):
        self.elapsed, self.calls = 0.0, []


@contextmanager
def probed(model):
    """Time ``teacher.features``, ``akdp_masks_batch`` and ``position_aware_l2`` inside
    :meth:`ZoomInNet.distillation_loss` (the module-level names it calls are swapped)."""
    probes = {
        "teacher": Probe(model.teacher.features),
        "akdp": Probe(zoominnet_module.akdp_masks_batch),
        "loss": Probe(zoominnet_module.position_aware_l2),
    }
    model.teacher.features = probes["teacher"]
    zoominnet_module.akdp_masks_batch = probes["akdp"]
    zoominnet_module.position_aware_l2 = probes["loss"]
    try:
        yield probes
    finally:
        del model.teacher.features
        zoominnet_module.akdp_masks_batch = probes["akdp"].fn
        zoominnet_module.position_aware_l2 = probes["loss"].fn


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


# --------------------------------------------------------------------------------------
# 1. inference
# --------------------------------------------------------------------------------------


def bench_inference(config_dir: Path, size: int, warmup: int, repeats: int, flops: bool = True,
                    models=INFERENCE_MODELS) -> dict:
    """Per-image inference (batch 1, ``model.eval()``, no_grad, with pre/post-processing)."""
    gen = torch.Generator().manual_seed(1)
    entries = []
    for name, file, scale in models:
        s = size * scale
        cfg = load_config(str(config_path(config_dir, file)), size_opts(s))
        model = build_model(student_config(cfg)).eval()
        image = torch.randint(0, 256, (3, s, s), generator=gen, dtype=torch.uint8)
        entries.append((name, file, s, cfg, model, [{"image": image, "height": s, "width": s}]))

    def task(model, inputs):
        def run():
            with torch.no_grad():
                model(inputs)
        return run

    samples = run_rounds({e[0]: task(e[4], e[5]) for e in entries}, warmup, repeats, "inference")
    rows = []
    for name, file, s, cfg, model, _ in entries:
        rows.append({"model": name, "config": file, "input": s, "times": [x["total"] for x in samples[name]],
                     "median_s": med(samples[name])})
    del entries
    gc.collect()
    if flops:
        for row in rows:
            cfg = load_config(str(config_path(config_dir, row["config"])), size_opts(row["input"]))
            row["gflops"] = count_gflops(cfg, row["input"])
            log(f"GFLOPs {row['model']}: {row['gflops']:.2f}")
    base = rows[0]
    for row in rows:
        row["time_ratio"] = row["median_s"] / base["median_s"]
        if flops:
            row["gflops_ratio"] = row["gflops"] / base["gflops"]
    return {"size": size, "warmup": warmup, "repeats": repeats, "rows": rows}


# --------------------------------------------------------------------------------------
# 2. training step and its breakdown
# --------------------------------------------------------------------------------------


def bench_train(config_dir: Path, size: int, batch_size: int, warmup: int, repeats: int,
                boxes_range=(50, 100)) -> dict:
    """SNet step, SNet + LA student step and SNet + LA + CSKD step, interleaved rounds.

    The CSKD step is instrumented (:func:`probed`): the teacher forward, AKDP and the loss
    forward are timed inside the very step; "student" is the rest of the forward. The LA
    student step runs the same model (same weights) with its teacher detached. The
    distillation loss's backward is timed on its own, on the tensors of the last step.
    """
    with tempfile.TemporaryDirectory() as tmp:
        cskd, cfg = build_cskd(config_dir, size, Path(tmp))
    snet = build_model(load_config(str(config_path(config_dir, "snet.yaml")), size_opts(size)))
    cskd.train()
    snet.train()
    opt_cskd, opt_snet = make_optimizer(cskd), make_optimizer(snet)
    batch = make_batch(size, batch_size, boxes_range, num_classes=cfg.MODEL.RETINANET.NUM_CLASSES)
    num_boxes = [len(x["instances"]) for x in batch]
    num_anchors = None
    last_probes = {}

    def snet_step():
        return train_step(snet, opt_snet, batch)

    def la_step():
        with without_teacher(cskd):
            return train_step(cskd, opt_cskd, batch)

    def cskd_step():
        with probed(cskd) as probes:
            t = train_step(cskd, opt_cskd, batch)
        for key in ("teacher", "akdp", "loss"):
            t[key] = probes[key].elapsed
        t["student_forward"] = t["forward"] - t["teacher"] - t["akdp"] - t["loss"]
        last_probes.update(probes)
        return t

    with EventStorage():
        samples = run_rounds({"snet": snet_step, "la": la_step, "cskd": cskd_step}, warmup, repeats, "train")

        # The loss alone, forward + backward, on the last step's tensors (cheap: 5 repeats).
        calls = last_probes["loss"].calls
        level_args = [(a[0].detach(), a[1].detach(), a[2]) for a, _ in calls]
        num_anchors = [int(b.tensor.shape[0]) for b in last_probes["akdp"].calls[-1][0][0]]
        key_fraction = [float(m.float().mean()) for _, _, m in level_args]

        def loss_fwd_bwd():
            students = [s.clone().requires_grad_(True) for _, s, _ in level_args]
            t0 = time.perf_counter()
            total = sum(position_aware_l2(t, s, m) for (t, _, m), s in zip(level_args, students))
            t1 = time.perf_counter()
            total.backward()
            t2 = time.perf_counter()
            return {"forward": t1 - t0, "backward": t2 - t1, "total": t2 - t0}

        loss_samples = run_rounds({"loss": loss_fwd_bwd}, 1, max(5, repeats), "loss")["loss"]
    del last_probes, level_args

    m = {name: {k: med(v, k) for k in v[0]} for name, v in samples.items()}
    loss_fb = {k: med(loss_samples, k) for k in loss_samples[0]}
    c = m["cskd"]
    akdp_loss = c["akdp"] + loss_fb["total"]
    ratio = c["step"] / (m["la"]["step"] + c["teacher"])
    return {
        "size": size, "batch": batch_size, "warmup": warmup, "repeats": repeats,
        "boxes_range": list(boxes_range), "num_boxes": num_boxes, "num_anchors": num_anchors,
        "key_fraction": key_fraction,
        "medians": m, "loss_fwd_bwd": loss_fb,
        "samples": {k: v for k, v in samples.items()},
        "akdp_loss_fraction": akdp_loss / c["step"],
        "step_ratio": ratio,
    }


# --------------------------------------------------------------------------------------
# 3. AKDP against boxes and anchors; peak memory
# --------------------------------------------------------------------------------------


def read_status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+)\s+kB", f.read(), re.M).group(1))


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_peak_kb(fn: Callable[[], None]) -> Dict[str, int]:
    """RSS before ``fn`` and the process's peak RSS while it ran (kB), from /proc/self/status
    with the peak mark reset just before. Meant for a fresh process: memory the allocator
    already holds would be reused without showing up."""
    gc.collect()
    before = read_status_kb("VmRSS")
    reset = reset_peak_rss()
    fn()
    peak = read_status_kb("VmHWM")
    return {"rss_before_kb": before, "peak_kb": peak, "delta_kb": peak - before, "hwm_reset": reset}


def akdp_inputs(config_dir: Path, config: str, size: int):
    """The anchors and grid sizes of the model of ``config`` on a size x size input, taken from
    its own anchor generator (LA: the 2x grid)."""
    cfg = load_config(str(config_path(config_dir, config)), size_opts(size))
    model = build_model(student_config(cfg))
    shapes = model.backbone.output_shape()
    feats = [torch.zeros(1, 1, math.ceil(size / shapes[f].stride), math.ceil(size / shapes[f].stride))
             for f in model.head_in_features]
    anchors = model.anchor_generator(feats)
    grids = []
    for f, a in zip(feats, anchors):
        h, w = f.shape[-2:]
        u = 2 if cfg.MODEL.ZOOMIN.ALIGN == "la" else 1
        grids.append((h * u, w * u))
    kwargs = {"scope": cfg.MODEL.ZOOMIN.AKDP.SCOPE,
              "lam": cfg.MODEL.ZOOMIN.AKDP.LAMBDA if cfg.MODEL.ZOOMIN.AKDP.LAMBDA >= 0 else None}
    return anchors, grids, kwargs


def bench_akdp(config_dir: Path, size: int, warmup: int, repeats: int, boxes=AKDP_BOXES,
               anchor_sets=AKDP_ANCHOR_SETS, memory: bool = True) -> dict:
    """AKDP of one image (:func:`akdp_mask`, the model's scope/lambda) per (anchors, boxes);
    the boxes of a size are the same for every anchor set of that size."""
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
        del anchors, gts
    if memory:
        for row in rows:
            res = run_worker({"task": "akdp-memory", "config_dir": str(config_dir), "config": row["config"],
                              "size": row["input"], "num_boxes": row["num_boxes"]})
            row.update(peak_mb=res["delta_kb"] / 1024, hwm_reset=res["hwm_reset"])
            log(f"akdp memory {row['anchors_name']} {row['num_boxes']} boxes: +{row['peak_mb']:.1f} MB")
    return {"size": size, "warmup": warmup, "repeats": repeats, "rows": rows,
            "scope": kwargs.get("scope"), "lam": kwargs.get("lam")}


def akdp_boxes(n: int, size: int) -> torch.Tensor:
    """The AKDP benchmark's n boxes on a size x size image (fixed seed per (n, size))."""
    return visdrone_like_boxes(n, size, torch.Generator().manual_seed(1000 * n + size))


def bench_threads(config_dir: Path, size: int, warmup: int, repeats: int) -> dict:
    """The same work at 1 thread and at ``os.cpu_count()`` threads, interleaved: SNet
    inference per image and AKDP of one image (LA anchors, 100 boxes)."""
    counts = sorted({1, os.cpu_count() or 1})
    previous = torch.get_num_threads()
    cfg = load_config(str(config_path(config_dir, "snet.yaml")), size_opts(size))
    model = build_model(student_config(cfg)).eval()
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

    def infer():
        with torch.no_grad():
            model(inputs)

    tasks = {}
    for n in counts:
        tasks[f"SNet inference per image, {n} thread(s)"] = with_threads(n, infer)
    for n in counts:
        tasks[f"AKDP, LA anchors, 100 boxes, {n} thread(s)"] = with_threads(
            n, lambda: akdp_mask(anchors, grids, gt, **kwargs))
    samples = run_rounds(tasks, warmup, repeats, "threads")
    return {"size": size, "warmup": warmup, "repeats": repeats,
            "rows": [{"task": k, "median_s": med(v), "times": [x["total"] for x in v]} for k, v in samples.items()]}


def bench_step_memory(config_dir: Path, size: int, batch_size: int, steps: int = 2,
                      variants=("la", "cskd")) -> dict:
    """Peak RSS of training steps, each variant in a fresh subprocess."""
    rows = []
    for variant in variants:
        res = run_worker({"task": "step-memory", "config_dir": str(config_dir), "size": size,
                          "batch": batch_size, "steps": steps, "variant": variant})
        res.update(variant=variant, config_dir=str(config_dir), size=size, batch=batch_size, steps=steps)
        rows.append(res)
        log(f"step memory {config_dir} {variant}: before {res['rss_before_kb'] / 1024:.0f} MB, "
            f"peak {res['peak_kb'] / 1024:.0f} MB")
    return {"rows": rows}


# --------------------------------------------------------------------------------------
# subprocess workers
# --------------------------------------------------------------------------------------


def run_worker(spec: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--threads", str(torch.get_num_threads()),
           "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"worker {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def worker(spec: dict) -> dict:
    if spec["task"] == "akdp-memory":
        anchors, grids, kwargs = akdp_inputs(Path(spec["config_dir"]), spec["config"], spec["size"])
        gt = Boxes(akdp_boxes(spec["num_boxes"], spec["size"]))
        return rss_peak_kb(lambda: akdp_mask(anchors, grids, gt, **kwargs))
    if spec["task"] == "step-memory":
        config_dir, size = Path(spec["config_dir"]), spec["size"]
        with tempfile.TemporaryDirectory() as tmp:
            model, cfg = build_cskd(config_dir, size, Path(tmp))
        model.train()
        opt = make_optimizer(model)
        batch = make_batch(size, spec["batch"], num_classes=cfg.MODEL.RETINANET.NUM_CLASSES)
        peaks = []

        def steps():
            with EventStorage():
                for _ in range(spec["steps"]):
                    if spec["variant"] == "cskd":
                        train_step(model, opt, batch)
                    else:
                        with without_teacher(model):
                            train_step(model, opt, batch)
                    peaks.append(read_status_kb("VmHWM"))

        res = rss_peak_kb(steps)
        res["peak_after_step_kb"] = peaks
        return res
    raise ValueError(f"unknown worker task {spec['task']!r}")


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------


def machine_info() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {
        "date": subprocess.run(["date"], capture_output=True, text=True).stdout.strip(),
        "nproc": os.cpu_count(), "cpu": cpu, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "python": sys.version.split()[0], "load_start": load,
    }


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def render_markdown(res: dict) -> str:
    mi = res["machine"]
    a = res["args"]
    out = ["# ZoomInNet performance benchmark", ""]
    out += [
        f"- Date: {mi['date']}",
        f"- Machine: {mi['nproc']} CPU cores (`nproc`), {mi['cpu']}; no accelerator",
        f"- torch {mi['torch']}, {mi['threads']} intra-op thread(s) for every table except 'Threads'; "
        f"Python {mi['python']}",
        f"- Load average (1/5/15 min) at start: {mi['load_start']}; at end: {res.get('load_end', '?')} "
        "(the machine is shared with other jobs: absolute times are noisy, the ratios measured "
        "in one process in interleaved rounds much less)",
        f"- Total run time: {res['elapsed_s'] / 60:.1f} min",
        "",
        "Command:",
        "",
        "```",
        res["command"],
        "```",
        "",
        "## Method",
        "",
        "- Every time is the **median** of the timed repeats, after warm-up rounds, all in one "
        "process. The models of a table run in interleaved rounds (A, B, C, A, B, C, ...), so a "
        "change of the machine's load affects all of them and their ratios alike.",
        "- Models are built from the repository's configs with random weights (no checkpoint "
        "can be downloaded here); dense convolution cost does not depend on the weights. The "
        "optimizer is SGD (momentum 0.9, weight decay 1e-4) with lr 0, i.e. the same arithmetic "
        "as training while the weights stay fixed, so every repeat runs the same model.",
        "- Inputs are uint8 noise images; the teacher's view is the 2x nearest upsampling; ground "
        "truth is VisDrone-like: box sides log-uniform in [4, 48] px at 512 (scaled with the size), "
        "random classes.",
    ]
    if "threads" in res:
        th = res["threads"]
        out += ["", "## Threads", "",
                f"Why the tables run on {mi['threads']} thread(s): the same work at 1 thread and at "
                f"`nproc` threads, interleaved, in this process ({th['warmup']} warm-up + {th['repeats']} "
                f"timed rounds, {th['size']}x{th['size']}). On a shared machine whose load average exceeds "
                "its cores, an OpenMP thread of ours is often descheduled and every parallel op waits "
                "for it at its barrier; short ops (AKDP, losses) suffer most.", "",
                "| work | median (s) |", "|---|---|"]
        for r in th["rows"]:
            out.append(f"| {r['task']} | {fmt(r['median_s'])} |")
    if "inference" in res:
        inf = res["inference"]
        out += ["", "## Inference per image", "",
                f"Batch 1, `model.eval()` under `torch.no_grad()`, the student alone as at test time "
                f"(preprocessing, backbone, head, decoding, NMS; with random weights few boxes pass the "
                f"0.05 score threshold, so NMS is cheap). {inf['warmup']} warm-up + {inf['repeats']} "
                f"timed rounds. GFLOPs: `tools/count_flops.py` (fvcore, one multiply-add = one flop, "
                "backbone + FPN + head).", "",
                "| model | config | input | time / image (s) | time ratio to SNet | GFLOPs | GFLOPs ratio to SNet |",
                "|---|---|---|---|---|---|---|"]
        for r in inf["rows"]:
            g = f"{r['gflops']:.2f}" if "gflops" in r else "-"
            gr = f"{r['gflops_ratio']:.2f}" if "gflops_ratio" in r else "-"
            out.append(f"| {r['model']} | `{r['config']}` | {r['input']}x{r['input']} | {fmt(r['median_s'])} "
                       f"| {r['time_ratio']:.2f} | {g} | {gr} |")
    if "train" in res:
        tr = res["train"]
        m, lf = tr["medians"], tr["loss_fwd_bwd"]
        c = m["cskd"]
        out += ["", "## Training step", "",
                f"Batch {tr['batch']} at {tr['size']}x{tr['size']} (teacher {2 * tr['size']}x{2 * tr['size']}), "
                f"{', '.join(map(str, tr['num_boxes']))} GT boxes in the two images "
                f"(drawn from {tr['boxes_range'][0]}-{tr['boxes_range'][1]} per image). A step is "
                "`zero_grad` + forward (losses) + backward + `optimizer.step()`. The teacher is a "
                "random R50 built from `tnet.yaml`, saved as `{\"model\": state_dict}` and loaded "
                "strictly through `MODEL.ZOOMIN.TEACHER.CONFIG_FILE/WEIGHTS`, as in training. "
                f"{tr['warmup']} warm-up + {tr['repeats']} timed rounds of (SNet step, SNet + LA step, "
                "SNet + LA + CSKD step).", "",
                "How the breakdown is measured: the CSKD step is the real `ZoomInNet.forward`; "
                "`teacher.features`, `akdp_masks_batch` and `position_aware_l2` (all levels) are "
                "wrapped with timers for the step (the module-level names that "
                "`ZoomInNet.distillation_loss` calls are swapped), so their times are taken inside "
                "the very step; \"student forward\" is the forward time minus those three. The "
                "SNet + LA student step is the same model with its teacher detached (same weights, "
                "anchors, GT). The loss's backward runs inside the step's backward; it is timed on "
                "its own (forward + backward on the last step's tensors) and that figure is used "
                "for the target.", "",
                "| step / component | median (s) | share of the CSKD step |",
                "|---|---|---|",
                f"| SNet step (`snet.yaml`) | {fmt(m['snet']['step'])} | - |",
                f"| SNet + LA student step (`la` without teacher) | {fmt(m['la']['step'])} | - |",
                f"| **SNet + LA + CSKD step** (`cskd_la.yaml`) | **{fmt(c['step'])}** | 100% |",
                f"| - student forward (backbone, head, anchors, matching, focal/box losses, 2x maps) "
                f"| {fmt(c['student_forward'])} | {100 * c['student_forward'] / c['step']:.1f}% |",
                f"| - teacher forward (`teacher.features`, R50 at {2 * tr['size']}, no_grad) "
                f"| {fmt(c['teacher'])} | {100 * c['teacher'] / c['step']:.1f}% |",
                f"| - AKDP (`akdp_masks_batch`, {tr['batch']} images, {sum(tr['num_anchors'])} anchors) "
                f"| {fmt(c['akdp'])} | {100 * c['akdp'] / c['step']:.1f}% |",
                f"| - distillation loss forward (`position_aware_l2`, {len(tr['num_anchors'])} levels) "
                f"| {fmt(c['loss'], 4)} | {100 * c['loss'] / c['step']:.2f}% |",
                f"| - backward (student, incl. the distillation loss) | {fmt(c['backward'])} "
                f"| {100 * c['backward'] / c['step']:.1f}% |",
                f"| - optimizer step | {fmt(c['optimizer'])} | {100 * c['optimizer'] / c['step']:.1f}% |",
                f"| distillation loss forward + backward, on its own | {fmt(lf['total'], 4)} "
                f"| {100 * lf['total'] / c['step']:.2f}% |",
                "",
                f"SNet + LA student step breakdown: forward {fmt(m['la']['forward'])} s, backward "
                f"{fmt(m['la']['backward'])} s, optimizer {fmt(m['la']['optimizer'])} s. SNet: forward "
                f"{fmt(m['snet']['forward'])} s, backward {fmt(m['snet']['backward'])} s. Key positions "
                f"(last step, per level): {', '.join(f'{100 * k:.0f}%' for k in tr['key_fraction'])}."]
    if "akdp" in res:
        ak = res["akdp"]
        out += ["", "## AKDP against boxes and anchors", "",
                f"`akdp_mask` for one image (scope `{ak['scope']}`, lambda "
                f"{'adaptive (mean + std)' if ak['lam'] is None else ak['lam']}), on the anchors of the "
                "model's own anchor generator (LA: the 2x grid), VisDrone-like boxes (sides 4-48 px at 512). "
                f"Time: median of {ak['repeats']} after {ak['warmup']} warm-up. Peak memory: the rise "
                "of the resident set size above its value just before the call, in a fresh "
                "subprocess per point (the kernel's peak-RSS mark `VmHWM` is reset through "
                "`/proc/self/clear_refs` just before the call and read after it). Why RSS: "
                "`tracemalloc` does not see torch's allocations and psutil is not installed; a "
                "fresh process keeps memory cached by the allocator from earlier points out of the "
                "figure. It includes the outputs and every temporary of `pairwise_iou`.", "",
                "| anchors | input | grids | #anchors | #boxes | IoU entries | time (s) | peak memory (MB) | key positions |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in ak["rows"]:
            mem = f"{r['peak_mb']:.1f}" if "peak_mb" in r else "-"
            grids = f"{r['grids'][0][0]}x{r['grids'][0][1]}..{r['grids'][-1][0]}x{r['grids'][-1][1]}"
            out.append(f"| {r['anchors_name']} | {r['input']} | {grids} | {r['num_anchors']:,} | {r['num_boxes']:,} "
                       f"| {r['num_anchors'] * r['num_boxes'] / 1e6:.1f} M | {fmt(r['median_s'])} | {mem} "
                       f"| {100 * r['key_fraction']:.0f}% |")
    if "memory" in res:
        out += ["", "## Peak memory of a training step", "",
                "Fresh subprocess per row: build the CSKD model (student + frozen teacher) and the "
                "batch, then run the steps; `before` is the RSS after building (weights of both "
                "models, the inputs), `peak` the peak RSS during the steps (VmHWM reset before the "
                "first step). \"SNet + LA student\" is the same process setup with the teacher "
                "detached (its weights still resident).", "",
                "| configs | step | input / batch | steps | RSS before (MB) | peak RSS (MB) | rise (MB) | peak after each step (MB) |",
                "|---|---|---|---|---|---|---|---|"]
        for r in res["memory"]["rows"]:
            name = "SNet + LA + CSKD" if r["variant"] == "cskd" else "SNet + LA student"
            out.append(f"| `{r['config_dir']}` | {name} | {r['size']} / {r['batch']} | {r['steps']} "
                       f"| {r['rss_before_kb'] / 1024:.0f} | {r['peak_kb'] / 1024:.0f} "
                       f"| {r['delta_kb'] / 1024:.0f} "
                       f"| {', '.join(f'{p / 1024:.0f}' for p in r['peak_after_step_kb'])} |")
    if "train" in res:
        tr = res["train"]
        c = tr["medians"]["cskd"]
        f_ok = tr["akdp_loss_fraction"] <= TARGET_AKDP_LOSS_FRACTION
        r_ok = tr["step_ratio"] <= TARGET_STEP_RATIO
        out += ["", "## Targets", "",
                "| target | measured | met |", "|---|---|---|",
                f"| AKDP + distillation loss <= {100 * TARGET_AKDP_LOSS_FRACTION:.0f}% of the CSKD step "
                f"| ({fmt(c['akdp'])} + {fmt(tr['loss_fwd_bwd']['total'], 4)}) s / {fmt(c['step'])} s = "
                f"{100 * tr['akdp_loss_fraction']:.1f}% | {'met' if f_ok else 'NOT met'} |",
                f"| CSKD step <= {TARGET_STEP_RATIO}x (student step + teacher forward) "
                f"| {fmt(c['step'])} s / ({fmt(tr['medians']['la']['step'])} + {fmt(c['teacher'])}) s = "
                f"{tr['step_ratio']:.3f}x | {'met' if r_ok else 'NOT met'} |"]
        la, t = tr["medians"]["la"]["step"], c["teacher"]
        extra = c["step"] - la - t
        out += ["",
                f"- AKDP is {100 * c['akdp'] / c['step']:.1f}% and the loss (forward + backward) "
                f"{100 * tr['loss_fwd_bwd']['total'] / c['step']:.2f}% of the CSKD step"
                + ("." if f_ok else "; AKDP is what exceeds the budget. `akdp_mask` evaluates dense IoU "
                   "blocks - every anchor of a band of full-width grid rows against every box that meets "
                   "the band - and computes them twice (two passes) when a level's map exceeds its 2M-entry "
                   "budget (the finest levels here), although only a window of a few cells around each box "
                   "can have a nonzero IoU; its cost grows with anchors x boxes (AKDP table)."),
                f"- The CSKD step costs {extra:+.3f} s against (student step + teacher forward): AKDP, the "
                "loss, the 2x upsampled student maps and run-to-run noise of the shared machine "
                "(student step and CSKD step are separate runs).",
                f"- All shares are at {mi['threads']} thread(s); on CPU the teacher forward at 2x input "
                f"({100 * t / c['step']:.0f}% of the step) and the student's own forward and backward "
                "dominate the step."]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke version (< 2 min): 256 px, no warm-up, 1 repeat, no GFLOPs, two AKDP "
                             "anchor sets, step memory on the synth configs only")
    parser.add_argument("--config-dir", default="configs",
                        help="folder with snet/la/fa_thin/fa/tnet/cskd_la.yaml (default: configs)")
    parser.add_argument("--size", type=int, help="student input side, px (default 512; --quick 256)")
    parser.add_argument("--batch", type=int, default=2, help="training batch size (default 2)")
    parser.add_argument("--warmup", type=int, help="warm-up rounds (default 1; --quick 0)")
    parser.add_argument("--repeats", type=int, help="timed rounds (default 3; --quick 1)")
    parser.add_argument("--train-repeats", type=int,
                        help="timed rounds of the training steps (default 5; --quick 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: see the 'threads' table)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--no-flops", action="store_true", help="skip the GFLOPs column")
    parser.add_argument("--memory-configs", default=None,
                        help="comma-separated config folders for the step-memory table "
                             "(default: --config-dir and configs/synth; --quick: configs/synth)")
    parser.add_argument("--output", help="write the markdown report here")
    parser.add_argument("--json", help="also write the raw results as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return {}

    size = args.size or (256 if args.quick else 512)
    warmup = args.warmup if args.warmup is not None else (0 if args.quick else 1)
    repeats = args.repeats or (1 if args.quick else 3)
    train_repeats = args.train_repeats or (1 if args.quick else 5)
    config_dir = Path(args.config_dir)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    start = time.perf_counter()
    res = {"machine": machine_info(), "args": vars(args), "settings": {
               "size": size, "warmup": warmup, "repeats": repeats, "train_repeats": train_repeats},
           "command": " ".join(["python", "tools/benchmark.py"] + list(argv if argv is not None else sys.argv[1:]))}
    log(f"machine: {res['machine']}")
    if "threads" in sections:
        res["threads"] = bench_threads(config_dir, size, warmup, repeats)
    if "inference" in sections:
        res["inference"] = bench_inference(config_dir, size, warmup, repeats,
                                           flops=not (args.no_flops or args.quick))
    if "train" in sections:
        res["train"] = bench_train(config_dir, size, args.batch, warmup, train_repeats)
    if "akdp" in sections:
        sets = AKDP_ANCHOR_SETS[:2] if args.quick else AKDP_ANCHOR_SETS
        res["akdp"] = bench_akdp(config_dir, size, warmup, repeats, anchor_sets=sets)
    if "memory" in sections:
        if args.memory_configs is not None:
            folders = [f for f in args.memory_configs.split(",") if f]
        else:
            folders = ([] if args.quick else [str(config_dir)]) + ["configs/synth"]
        rows = []
        for folder in dict.fromkeys(folders):
            synth = config_path(Path(folder), ".").resolve() == (REPO / "configs" / "synth").resolve()
            rows += bench_step_memory(Path(folder), 128 if synth else size, args.batch)["rows"]
        res["memory"] = {"rows": rows}
    with open("/proc/loadavg") as f:
        res["load_end"] = " ".join(f.read().split()[:3])
    res["elapsed_s"] = time.perf_counter() - start
    report = render_markdown(res)
    print(report)
    if args.output:
        Path(args.output).write_text(report)
        log(f"wrote {args.output}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    return res


if __name__ == "__main__":
    main()
