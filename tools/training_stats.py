#!/usr/bin/env python
"""Summarise training runs from their ``metrics.json``: losses and AKDP key-position coverage.

    python tools/training_stats.py demo_output/seeds/seed_*/cskd_la [--window 100]

For each run: the mean over the first and the last ``window`` iterations of the detection
losses (``loss_cls + loss_box_reg``), of ``loss_distill`` (already weighted) and their ratio,
and of the fraction of key positions per level (``akdp/key_fraction_l*``), plus the final
evaluation's mAP when the run has one. Prints a markdown table, then the per-class AP of the
classes that the synthetic data tells apart only by a 1-px pattern (readable at the
teacher's 2x, averaged away at the student's 1x: car/van, pedestrian/people), or of
``--classes`` (with ``--dataset visdrone2019_val`` for tools/real_benchmark.py's runs).
"""
import argparse
import json
import os
import statistics
from typing import Dict, List


def read_metrics(run_dir: str) -> List[Dict]:
    """The JSON lines of ``<run_dir>/metrics.json``; none for an evaluation-only folder."""
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarise(run_dir: str, window: int, dataset: str = "synthdrone_val") -> Dict:
    """Iterations, final mAP and, over the first and last ``window`` iterations, the mean
    detection loss, distillation loss, their ratio and key fractions per level of a run."""
    train = [r for r in read_metrics(run_dir) if "loss_cls" in r]
    ap = final_metrics(run_dir, dataset)
    out = {"run": run_dir, "iters": train[-1]["iteration"] + 1 if train else 0,
           "mAP": ap["AP"] / 100 if ap.get("AP") is not None else None}
    max_iter = out["iters"]
    for name, part in (("first", [r for r in train if r["iteration"] < window]),
                       ("last", [r for r in train if r["iteration"] >= max_iter - window])):
        det = [r["loss_cls"] + r["loss_box_reg"] for r in part]
        out[f"det_{name}"] = statistics.mean(det) if det else None
        if part and "loss_distill" in part[0]:
            distill = [r["loss_distill"] for r in part]
            out[f"distill_{name}"] = statistics.mean(distill)
            out[f"ratio_{name}"] = statistics.mean(distill) / statistics.mean(det)
        levels = sorted(k for k in part[0] if k.startswith("akdp/key_fraction_l")) if part else []
        out[f"keys_{name}"] = [statistics.mean(r[k] for r in part) for k in levels]
    return out


def final_metrics(run_dir: str, dataset: str = "synthdrone_val") -> Dict[str, float]:
    """The run's final evaluation on ``dataset`` (``visdrone_metrics.json``, percent), if it has one."""
    path = os.path.join(run_dir, "inference", dataset, "visdrone_metrics.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)["bbox"]


PATTERN_PAIRS = (("car", "van"), ("pedestrian", "people"))


def _f(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv=None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="OUTPUT_DIRs of training runs")
    parser.add_argument("--window", type=int, default=100, help="iterations averaged at each end")
    parser.add_argument("--dataset", default="synthdrone_val", help="the evaluated dataset (e.g. visdrone2019_val)")
    parser.add_argument("--classes", nargs="+", default=[n for pair in PATTERN_PAIRS for n in pair],
                        help="classes of the per-class AP table (default: the synthetic pattern pairs)")
    args = parser.parse_args(argv)
    stats = [summarise(run, args.window, args.dataset) for run in args.runs]
    print("| run | iters | mAP | det. loss first/last | loss_distill first/last | "
          "distill/det first/last | key fraction per level (last) |")
    print("|---|---|---|---|---|---|---|")
    for s in stats:
        keys = ", ".join(f"{k:.2f}" for k in s["keys_last"]) or "-"
        print(f"| {s['run']} | {s['iters']} | {_f(s['mAP'])} | {_f(s['det_first'])} / {_f(s['det_last'])} | "
              f"{_f(s.get('distill_first'))} / {_f(s.get('distill_last'))} | "
              f"{_f(s.get('ratio_first'), 2)} / {_f(s.get('ratio_last'), 2)} | {keys} |")
    names = args.classes
    print("\n| run | " + " | ".join(f"AP {n}" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for run in args.runs:
        ap = final_metrics(run, args.dataset)
        print(f"| {run} | " + " | ".join(_f(None if ap.get(f"AP-{n}") is None else ap[f"AP-{n}"] / 100)
                                        for n in names) + " |")
    return stats


if __name__ == "__main__":
    main()
