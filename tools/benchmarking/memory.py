"""Peak memory (resident set size) of a call, and of training steps, in fresh subprocesses.

The kernel's peak-RSS mark ``VmHWM`` is reset through ``/proc/self/clear_refs`` just before
the measured call and read after it (Linux). A fresh process per point keeps memory that the
allocator cached for earlier work out of the figure; ``tracemalloc`` would not see torch's
allocations. Subprocesses run ``tools/benchmark.py --worker <json spec>``.
"""
import gc
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict

import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from zoominnet_d2.modeling import build_teacher

from .common import REPO, TrainStep, cskd_config, log, make_batch


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


def run_worker(spec: dict) -> dict:
    """Run the worker task ``spec["task"]`` in a fresh ``tools/benchmark.py`` process."""
    cmd = [sys.executable, str(REPO / "tools" / "benchmark.py"), "--threads", str(torch.get_num_threads()),
           "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"worker {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


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


def step_memory_task(spec: dict) -> dict:
    """Worker task "step-memory": the LA student and the configured teacher are built (both
    resident in either variant); "cskd" attaches the teacher, "la" trains the student alone."""
    config_dir, size = Path(spec["config_dir"]), spec["size"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = cskd_config(config_dir, size, Path(tmp))
        model, teacher = build_model(cfg), build_teacher(cfg)
    if spec["variant"] == "cskd":
        model.attach_teacher(teacher)
    model.train()
    step = TrainStep(model, make_batch(size, spec["batch"], num_classes=cfg.MODEL.RETINANET.NUM_CLASSES))
    peaks = []

    def steps():
        with EventStorage():
            for _ in range(spec["steps"]):
                step()
                peaks.append(read_status_kb("VmHWM"))

    res = rss_peak_kb(steps)
    res["peak_after_step_kb"] = peaks
    return res
