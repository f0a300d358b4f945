"""Stages of a Table 3-like experiment, shared by ``tools/demo.py`` and ``tools/real_benchmark.py``:
train and evaluate each model with ``train_net.py``, reusing finished stages, side by side on
the cores with an ETA. Their table rows are made by ``results_table.py``, their CPU times by
``cpu_timing.py``.

A stage is one model: a config, a label and a relative cost per iteration (for the ETA). Its
folder holds ``model_final.pth`` and ``inference/<dataset>/visdrone_metrics.json``; a stage
with both is finished and reused unless forced.
"""
import os
import re
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Set

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
