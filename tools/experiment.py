"""Stages of a Table 3-like experiment, shared by ``tools/demo.py`` and ``tools/real_benchmark.py``:
train and evaluate each model with ``train_net.py`` (reusing finished stages), time them, and
write ``results.md`` / ``results.json``.

A stage is one model: a config, a label and a relative cost per iteration (for the ETA). Its
folder holds ``model_final.pth`` and ``inference/<dataset>/visdrone_metrics.json``; a stage
with both is finished and reused unless forced.
"""
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Set

from host import machine
from side_by_side import Job, run_jobs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The stage whose weights a stage with ``teacher_as`` reads (unless run_stages gets teacher_dir).
TEACHER_STAGE = "tnet"


class Stage(NamedTuple):
    """One model of the table: how to train it and how to label and cost it."""

    name: str
    config: str
    label: str
    # Relative cost of the stage's training (SNet's = 1), from step times measured on the
    # 2-core CPU and the number of iterations; for the ETA only.
    cost: float
    # The config key that gets the teacher's ``model_final.pth`` (CSKD: the teacher to distil
    # from; fine-tuning: the initial weights), or "" for none.
    teacher_as: str = ""


# Table columns: (results.json key, header, visdrone_metrics.json section, key there).
COLUMNS = [("mAP", "mAP", "bbox", "AP"), ("AP_S", "AP_S", "bbox", "APs"), ("AP_M", "AP_M", "bbox", "APm"),
           ("AP_L", "AP_L", "bbox", "APl"), ("AR_S", "AR_S", "bbox", "ARs"), ("AP50", "AP50", "bbox", "AP50"),
           ("VisDrone_AP", "AP (official)", "visdrone", "AP")]
PROTOCOL_NOTE = ("mAP ... AP50: COCO API at maxDets=100 after the VisDrone ignore rule (the paper's protocol); "
                 "AP (official): the official VisDrone-DET toolkit protocol (maxDets=500, class-weighted).")
ETA_LINE = re.compile(r"eta: (\S+)\s+iter: (\d+)\s+total_loss: (\S+)")


def log(tag: str, msg: str) -> None:
    print(f"[{tag} {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def metrics_file(out_dir: str, dataset: str) -> str:
    return os.path.join(out_dir, "inference", dataset, "visdrone_metrics.json")


def detections_file(out_dir: str, dataset: str) -> str:
    """The evaluator's COCO-format detections of a stage (before the ignore rule)."""
    return os.path.join(out_dir, "inference", dataset, "coco_instances_results.json")


def stage_done(out_dir: str, dataset: str) -> bool:
    return os.path.isfile(os.path.join(out_dir, "model_final.pth")) and os.path.isfile(metrics_file(out_dir, dataset))


# train_net.py processes now running (several with side-by-side stages), for cancel_training.
_TRAINING: Set[subprocess.Popen] = set()


def run_train_net(args: List[str], env: Dict[str, str], tag: str, name: str, log_path: str) -> None:
    """``train_net.py args`` in a subprocess, relaying its progress lines; exits on failure."""
    cmd = [sys.executable, os.path.join(REPO, "train_net.py")] + args
    with subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        _TRAINING.add(proc)
        tail: List[str] = []
        try:
            for line in proc.stdout:
                tail = (tail + [line])[-40:]
                match = ETA_LINE.search(line)
                if match:
                    eta, it, loss = match.groups()
                    log(tag, f"{name}: iter {int(it) + 1}, total_loss {loss}, stage ETA {eta}")
                elif "Evaluation results" in line or "Start inference" in line:
                    log(tag, f"{name}: evaluating")
        finally:
            _TRAINING.discard(proc)
    if proc.returncode != 0:
        sys.stdout.write("".join(tail))
        raise SystemExit(f"stage {name} failed (exit {proc.returncode}); log: {log_path}")


def cancel_training() -> None:
    """Terminate every running train_net.py of :func:`run_train_net`."""
    for proc in list(_TRAINING):
        proc.terminate()


def machine_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def train_env(dataset_root: str, threads: Optional[int] = None) -> Dict[str, str]:
    """The environment of a train_net.py stage: ``threads`` intra-op threads (default every
    core) and data loading in that process (the configs' DATALOADER.NUM_WORKERS 0): on 2 cores
    a step of the synthetic SNet / TNet took 0.097 / 0.245 s against 0.154 / 0.418 s with one
    thread and one loader worker (SNet with one worker and 2 threads: 0.126 s; 2026-12-02)."""
    return dict(os.environ, DETECTRON2_DATASETS=dataset_root, OMP_NUM_THREADS=str(threads or machine_cores()))


def stage_jobs(stages: Sequence[Stage], out: str, seed: int, force: bool, dataset_root: str, dataset: str,
               tag: str, teacher_dir: Optional[str] = None, opts: Sequence[str] = ()) -> List[Job]:
    """The :class:`side_by_side.Job` that trains and evaluates each unfinished stage in
    ``out/<name>`` (finished ones are reused and logged).

    A stage with ``teacher_as`` gets ``teacher_dir/model_final.pth`` (default ``out/tnet``) in
    that config key and, without ``teacher_dir``, needs the "tnet" job; ``opts`` are extra
    config options for every stage."""
    os.makedirs(out, exist_ok=True)
    teacher = os.path.join(teacher_dir or os.path.join(out, TEACHER_STAGE), "model_final.pth")
    jobs = []
    for stage in stages:
        out_dir = os.path.join(out, stage.name)
        if not force and stage_done(out_dir, dataset):
            log(tag, f"{stage.name}: reusing {out_dir} (finished earlier; --force to redo)")
            continue
        args = ["--config-file", stage.config, "OUTPUT_DIR", out_dir, "SEED", str(seed)] + list(opts)
        if stage.teacher_as:
            args += [stage.teacher_as, teacher]

        def train(threads: int, stage=stage, args=args, out_dir=out_dir) -> None:
            log(tag, f"{stage.name}: training {stage.label} ({stage.config})")
            run_train_net(args, train_env(dataset_root, threads), tag, stage.name, os.path.join(out_dir, "log.txt"))

        needs = (TEACHER_STAGE,) if stage.teacher_as and teacher_dir is None else ()
        jobs.append(Job(stage.name, train, stage.cost, needs))
    return jobs


def run_stages(stages: Sequence[Stage], out: str, seed: int, force: bool, dataset_root: str, dataset: str,
               tag: str, teacher_dir: Optional[str] = None, opts: Sequence[str] = (), parallel: int = 1) -> None:
    """Train and evaluate each stage in ``out/<name>`` (:func:`stage_jobs`; finished ones
    reused), ``parallel`` at a time (:func:`side_by_side.run_jobs`), with an ETA."""
    jobs = stage_jobs(stages, out, seed, force, dataset_root, dataset, tag, teacher_dir, opts)
    run_jobs(jobs, parallel, machine_cores(), lambda msg: log(tag, msg), cancel=cancel_training)


def trained_config(stage: Stage, train_dir: str):
    """The config a stage was trained with (``train_dir/config.yaml``, written by train_net.py),
    else its config file."""
    from count_flops import load_config

    saved = os.path.join(train_dir, "config.yaml")
    return load_config(saved if os.path.isfile(saved) else os.path.join(REPO, stage.config))


def collect_row(stage: Stage, out_dir: str, dataset: str, train_dir: Optional[str] = None) -> Dict:
    """The table row of a finished stage (evaluated in ``out_dir``, trained in ``train_dir``,
    default the same): input, GFLOPs (fvcore, at the square training input) and the metrics."""
    from count_flops import count_gflops

    with open(metrics_file(out_dir, dataset)) as f:
        metrics = json.load(f)
    cfg = trained_config(stage, train_dir or out_dir)
    size = input_size(cfg)
    row = {"model": stage.label, "stage": stage.name, "input": size, "GFLOPs": round(count_gflops(cfg, size), 3)}
    for key, _, section, src in COLUMNS:
        value = (metrics.get(section) or {}).get(src)
        row[key] = None if value is None else round(value / 100, 4)
    return row


def input_size(cfg) -> int:
    """The square side a config trains at: SQUARE_SIZE, the crop side over NATIVE_DOWNSCALE, or
    the largest MIN_SIZE_TRAIN."""
    if cfg.INPUT.SQUARE_SIZE > 0:
        return cfg.INPUT.SQUARE_SIZE
    if cfg.INPUT.NATIVE_DOWNSCALE > 0 and cfg.INPUT.CROP.ENABLED and cfg.INPUT.CROP.TYPE == "absolute":
        return max(cfg.INPUT.CROP.SIZE) // cfg.INPUT.NATIVE_DOWNSCALE
    return max(cfg.INPUT.MIN_SIZE_TRAIN)


def stage_predictors(stages: Sequence[Stage], folders: Dict[str, str]) -> Dict[str, Callable]:
    """{stage name: BGR image -> Instances}: each stage's student (``folders[name]/model_final.pth``)
    with the config it was trained with."""
    from zoominnet_d2.deploy.predictor import TorchPredictor

    return {s.name: TorchPredictor(trained_config(s, folders[s.name]), os.path.join(folders[s.name], "model_final.pth"))
            for s in stages}


def cpu_ms_per_image(predictors: Dict[str, Callable], dataset: str, num_images: int = 20,
                     warmup: int = 3) -> Dict[str, float]:
    """Median CPU time per image (batch 1, one thread) of each predictor (BGR image ->
    detections: test-time resize, forward, decoding; slicing and merging for sliced ones) on
    the first ``num_images`` images of ``dataset``, after ``warmup`` runs on the first one, in ms.

    The predictors are timed round-robin on the same images (image i on every one, then
    image i + 1), so that a load change on a shared machine hits them alike.
    """
    import torch
    from detectron2.data import DatasetCatalog
    from detectron2.data.detection_utils import read_image

    images = [read_image(d["file_name"], format="BGR") for d in DatasetCatalog.get(dataset)[:num_images]]
    times = {name: [] for name in predictors}
    with torch.no_grad(), torch_threads(1):
        for predict in predictors.values():  # warm-up on the first image
            for _ in range(warmup):
                predict(images[0])
        for image in images:
            for name, predict in predictors.items():
                began = time.perf_counter()
                predict(image)
                times[name].append((time.perf_counter() - began) * 1000)
    return {name: round(statistics.median(t), 1) for name, t in times.items()}


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside the block, restored after it
    (the count is per process: in-process jobs beside train_net.py subprocesses use this)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def merge_seeds(per_seed: List[List[Dict]]) -> List[Dict]:
    """One row per model; with several seeds each metric becomes the list over the seeds."""
    if len(per_seed) == 1:
        return per_seed[0]
    keys = [c[0] for c in COLUMNS] + ["cpu_ms"]
    return [dict(rows[0], **{k: [r.get(k) for r in rows] for k in keys}) for rows in zip(*per_seed)]


def write_results(rows: List[Dict], out: str, name: str, title: str, notes: Sequence[str], extra: Dict) -> None:
    """``out/<name>.json`` (rows, date, machine and ``extra``) and ``out/<name>.md`` (the table)."""
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(dict({"date": str(date.today()), "machine": machine()}, **extra, rows=rows), f, indent=2)
    header = "| model | input | GFLOPs | " + " | ".join(h for _, h, _, _ in COLUMNS) + " | CPU ms/img |"
    lines = [f"# {title} ({date.today()})", "", f"Machine: {machine()}.", *notes, PROTOCOL_NOTE, "",
             header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        cells = [row["model"], str(row["input"]), f"{row['GFLOPs']:.3f}"]
        cells += [fmt(row, key) for key, _, _, _ in COLUMNS] + [fmt(row, "cpu_ms", 1)]
        lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def fmt(row: Dict, key: str, digits: int = 3) -> str:
    """A value, or mean ± std over seeds when the row holds a list."""
    from zoominnet_d2.visualization.frontier import mean_and_spread

    value = row.get(key)
    mean, spread = mean_and_spread(value)
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {spread:.{digits}f}" if isinstance(value, list) else f"{mean:.{digits}f}"
