#!/usr/bin/env python
"""The main job (``make demo``): ZoomInNet end to end on the embedded dataset, on a CPU.

    python tools/demo.py [--output demo_output] [--seed 0] [--force] [--stages ...]
    python tools/demo.py --seeds 0 1 2 --output demo_output/seeds   # RESULTS.md table

Stages, each reused when its output is complete (``--force`` redoes them):

1. ``data``: the synthetic drone dataset in VisDrone layout (``datasets/synthdrone``);
2. ``tnet``: the teacher, RetinaNet at 2x input (256 px);
3. ``snet``: the student baseline at 1x (128 px);
4. ``la``: the student with layer adaption, no distillation;
5. ``cskd_la``: the student with LA distilled from the teacher (AKDP + position-aware L2);

every model trained with the same schedule (``configs/synth/``) and evaluated on
``synthdrone_val``; then a Table 3-like ``results.md`` / ``results.json`` (GFLOPs, mAP, AP_S,
AP_M, AP_L, AR_S, CPU ms per image) and the feature-map pictures of the distilled student.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import date
from typing import Dict, List, NamedTuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))


class Stage(NamedTuple):
    name: str
    config: str
    label: str
    # Relative cost of one iteration (SNet = 1), measured on the 2-core CPU; for the ETA only.
    cost: float


STAGES = [
    Stage("tnet", "configs/synth/tnet.yaml", "TNet (2x image)", 3.5),
    Stage("snet", "configs/synth/snet.yaml", "SNet (1x image)", 1.0),
    Stage("la", "configs/synth/la.yaml", "SNet + LA", 1.4),
    Stage("cskd_la", "configs/synth/cskd_la.yaml", "SNet + LA + CSKD", 2.6),
]
# Table columns: (results.json key, header, visdrone_metrics.json key).
COLUMNS = [("mAP", "mAP", "AP"), ("AP_S", "AP_S", "APs"), ("AP_M", "AP_M", "APm"),
           ("AP_L", "AP_L", "APl"), ("AR_S", "AR_S", "ARs"), ("AP50", "AP50", "AP50")]
ETA_LINE = re.compile(r"eta: (\S+)\s+iter: (\d+)\s+total_loss: (\S+)")


def log(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_stage(stage: Stage, out_dir: str, seed: int, teacher_weights: str, dataset_root: str,
              eta_hint: str) -> None:
    """Train and evaluate one model with ``train_net.py``, relaying progress lines."""
    cmd = [sys.executable, os.path.join(REPO, "train_net.py"), "--config-file", stage.config,
           "OUTPUT_DIR", out_dir, "SEED", str(seed)]
    if teacher_weights:
        cmd += ["MODEL.ZOOMIN.TEACHER.WEIGHTS", teacher_weights]
    # One intra-op thread: with the data-loader worker on the other core, two OpenMP threads
    # contend for 2 cores and a training step gets ~8x slower (measured, tools/benchmark.py).
    env = dict(os.environ, DETECTRON2_DATASETS=dataset_root, OMP_NUM_THREADS="1")
    log(f"{stage.name}: training {stage.label} ({stage.config}); {eta_hint}")
    start = time.time()
    with subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        tail: List[str] = []
        for line in proc.stdout:
            tail = (tail + [line])[-40:]
            match = ETA_LINE.search(line)
            if match:
                eta, it, loss = match.groups()
                log(f"{stage.name}: iter {int(it) + 1}, total_loss {loss}, stage ETA {eta}")
            elif "Evaluation results" in line or "Start inference" in line:
                log(f"{stage.name}: evaluating")
    if proc.returncode != 0:
        sys.stdout.write("".join(tail))
        raise SystemExit(f"stage {stage.name} failed (exit {proc.returncode}); log: {out_dir}/log.txt")
    log(f"{stage.name}: done in {time.time() - start:.0f} s")


def metrics_file(out_dir: str) -> str:
    return os.path.join(out_dir, "inference", "synthdrone_val", "visdrone_metrics.json")


def stage_done(out_dir: str) -> bool:
    return os.path.isfile(os.path.join(out_dir, "model_final.pth")) and os.path.isfile(metrics_file(out_dir))


def cpu_ms_per_image(stages: List[Stage], out: str, num_images: int = 20, warmup: int = 3) -> Dict[str, float]:
    """Median CPU inference time per image (batch 1, one thread) of each stage's model, in ms.

    The models are timed round-robin on the same images (image i on every model, then image
    i + 1), so that a load change on a shared machine hits them alike.
    """
    import torch
    from detectron2.data import DatasetCatalog
    from detectron2.modeling import build_model

    from count_flops import load_config
    from zoominnet_d2.checkpoint import SafeDetectionCheckpointer
    from zoominnet_d2.data.cross_scale_mapper import ZoomInDatasetMapper

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    models, inputs, times = {}, {}, {s.name: [] for s in stages}
    dicts = DatasetCatalog.get("synthdrone_val")[: num_images + warmup]
    for stage in stages:
        cfg = load_config(os.path.join(REPO, stage.config))
        models[stage.name] = build_model(cfg).eval()
        SafeDetectionCheckpointer(models[stage.name]).load(os.path.join(out, stage.name, "model_final.pth"))
        mapper = ZoomInDatasetMapper(cfg, is_train=False)
        inputs[stage.name] = [mapper(d) for d in dicts]
    with torch.no_grad():
        for i in range(len(dicts)):
            for name, model in models.items():
                start = time.perf_counter()
                model([inputs[name][i]])
                if i >= warmup:
                    times[name].append((time.perf_counter() - start) * 1000)
    torch.set_num_threads(threads)
    return {name: round(statistics.median(t), 1) for name, t in times.items()}


def collect_row(stage: Stage, out_dir: str) -> Dict:
    from count_flops import count_gflops, load_config

    with open(metrics_file(out_dir)) as f:
        bbox = json.load(f)["bbox"]
    cfg = load_config(os.path.join(REPO, stage.config))
    row = {"model": stage.label, "stage": stage.name, "input": cfg.INPUT.SQUARE_SIZE,
           "GFLOPs": round(count_gflops(cfg, cfg.INPUT.SQUARE_SIZE), 3)}
    for key, _, src in COLUMNS:
        row[key] = None if bbox.get(src) is None else round(bbox[src] / 100, 4)
    return row


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, {platform.platform()}"


def write_results(rows: List[Dict], out: str, seeds: List[int], command: str) -> None:
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"date": str(date.today()), "machine": machine(), "command": command, "seeds": seeds,
                   "rows": rows}, f, indent=2)
    header = "| model | input | GFLOPs | " + " | ".join(h for _, h, _ in COLUMNS) + " | CPU ms/img |"
    lines = [f"# ZoomInNet demo on the synthetic drone dataset ({date.today()})", "",
             f"Command: `{command}`; seeds {seeds}; machine: {machine()}.",
             "COCO API, maxDets=100, VisDrone ignore rule, on `synthdrone_val`; GFLOPs by fvcore at the "
             "model's input size; CPU ms per image: median over 20 images at batch 1, one thread, models "
             "timed round-robin.", "",
             header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        cells = [row["model"], str(row["input"]), f"{row['GFLOPs']:.3f}"]
        cells += [_fmt(row, key) for key, _, _ in COLUMNS] + [_fmt(row, "cpu_ms", 1)]
        lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _fmt(row: Dict, key: str, digits: int = 3) -> str:
    """A value, or mean +- std over seeds when the row holds a list."""
    value = row.get(key)
    if isinstance(value, list):
        vals = [v for v in value if v is not None]
        if not vals:
            return "n/a"
        spread = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return f"{statistics.mean(vals):.{digits}f} ± {spread:.{digits}f}"
    return "n/a" if value is None else f"{value:.{digits}f}"


def run_pipeline(out: str, seed: int, force: bool, stage_names: List[str], dataset_root: str) -> List[Dict]:
    os.makedirs(out, exist_ok=True)
    stages = [s for s in STAGES if s.name in stage_names]
    done_cost, start, rows = 0.0, time.time(), []
    total_cost = sum(s.cost for s in stages)
    for stage in stages:
        out_dir = os.path.join(out, stage.name)
        if stage_done(out_dir) and not force:
            log(f"{stage.name}: reusing {out_dir} (finished earlier; --force to redo)")
        else:
            if done_cost:
                left = (time.time() - start) / done_cost * (total_cost - done_cost)
                hint = f"about {left / 60:.0f} min left for all training stages"
            else:
                hint = "ETA after the first stage"
            teacher = os.path.join(out, "tnet", "model_final.pth") if "cskd" in stage.name else ""
            run_stage(stage, out_dir, seed, teacher, dataset_root, hint)
            done_cost += stage.cost
        rows.append(collect_row(stage, out_dir))
        log(f"{stage.name}: " + ", ".join(f"{k} {rows[-1][k]}" for k, _, _ in COLUMNS))
    log("timing inference of all models (round-robin, 1 thread)")
    for row, ms in zip(rows, cpu_ms_per_image(stages, out).values()):
        row["cpu_ms"] = ms
    return rows


def draw_features(out: str, dataset_root: str) -> None:
    """Feature maps and AKDP positions of the distilled student for one validation image."""
    from detectron2.data import DatasetCatalog

    import visualize_features

    first = DatasetCatalog.get("synthdrone_val")[0]
    annotation = first["file_name"].replace("images", "annotations").rsplit(".", 1)[0] + ".txt"
    visualize_features.main([
        "--config-file", os.path.join(REPO, "configs/synth/cskd_la.yaml"),
        "--input", first["file_name"], "--annotations", annotation,
        "--teacher-weights", os.path.join(out, "tnet", "model_final.pth"),
        "--student-weights", os.path.join(out, "cskd_la", "model_final.pth"),
        "--output", os.path.join(out, "features"),
    ])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo_output", help="where stages and results go")
    parser.add_argument("--seed", type=int, default=0, help="training seed (SEED)")
    parser.add_argument("--seeds", type=int, nargs="+", help="run the pipeline once per seed and "
                        "report mean ± std (each seed in <output>/seed_<k>)")
    parser.add_argument("--force", action="store_true", help="redo finished stages")
    parser.add_argument("--stages", nargs="+", default=[s.name for s in STAGES],
                        choices=[s.name for s in STAGES], help="subset of training stages")
    parser.add_argument("--datasets", default=os.path.join(REPO, "datasets"),
                        help="DETECTRON2_DATASETS root; the synthetic set goes in <root>/synthdrone")
    args = parser.parse_args(argv)
    dataset_root = os.path.abspath(args.datasets)
    os.environ["DETECTRON2_DATASETS"] = dataset_root
    os.chdir(REPO)
    import zoominnet_d2  # noqa: F401  (after DETECTRON2_DATASETS: registers synthdrone_*)
    from zoominnet_d2.data import synthetic

    began = time.time()
    log("data: synthetic drone dataset")
    synthetic.main(["--out", os.path.join(dataset_root, "synthdrone")])
    seeds = args.seeds or [args.seed]
    per_seed = []
    for seed in seeds:
        out = args.output if args.seeds is None else os.path.join(args.output, f"seed_{seed}")
        per_seed.append(run_pipeline(out, seed, args.force, args.stages, dataset_root))
    rows = per_seed[0] if len(per_seed) == 1 else [
        dict(rows[0], **{k: [r[k] for r in rows] for k in [c[0] for c in COLUMNS] + ["cpu_ms"]})
        for rows in zip(*per_seed)
    ]
    command = "python tools/demo.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_results(rows, args.output, seeds, command.strip())
    if args.seeds is None and {"tnet", "cskd_la"} <= set(args.stages):
        draw_features(args.output, dataset_root)
    with open(os.path.join(args.output, "results.md")) as f:
        print(f.read())
    log(f"finished in {(time.time() - began) / 60:.1f} min; results in {args.output}/results.md")


if __name__ == "__main__":
    main()
