"""The Table 3-like results of ``tools/demo.py`` and ``tools/real_benchmark.py``: a finished
stage's row (input, GFLOPs, metrics), the rows of several seeds merged, and ``results.md`` /
``results.json``."""
import json
import math
import os
from datetime import date
from typing import Dict, List, Optional, Sequence

from experiment import Stage, metrics_file, trained_config
from host import machine

# Table columns: (results.json key, header, visdrone_metrics.json section, key there).
COLUMNS = [("mAP", "mAP", "bbox", "AP"), ("AP_S", "AP_S", "bbox", "APs"), ("AP_M", "AP_M", "bbox", "APm"),
           ("AP_L", "AP_L", "bbox", "APl"), ("AR_S", "AR_S", "bbox", "ARs"), ("AP50", "AP50", "bbox", "AP50"),
           ("VisDrone_AP", "AP (official)", "visdrone", "AP")]
PROTOCOL_NOTE = ("mAP ... AP50: COCO API at maxDets=100 after the VisDrone ignore rule (the paper's protocol); "
                 "AP (official): the official VisDrone-DET toolkit protocol (maxDets=500, class-weighted).")


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
