#!/usr/bin/env python
"""Compare two runs' ``results.json`` (tools/demo.py or tools/real_benchmark.py): does the
second run reproduce the first within the seed spread?

    python tools/compare_runs.py real_output/results.json real_rerun/results.json \\
        [--metrics mAP AP_S VisDrone_AP] [--above "SNet + LA + CSKD" "SNet + LA"]

For every model both runs have and every metric: each run's mean over its seeds, the
difference of the means and each run's seed range (max - min over its seeds). A difference no
larger than the larger of the two ranges is ``within``, else ``outside``. A metric with the
same value in every seed of both runs (a row trained once and shared by the seeds, like the
real benchmark's teacher, or a metric at 0) has no seed spread to compare with: it is reported
as ``no seed spread`` with its relative difference and does not decide the verdict. ``--above A B`` checks a claim of the table:
model A's metric is higher than model B's in every seed of both runs.

Prints a markdown table and the verdict; the exit status is 1 when a row is outside the seed
spread or a claim fails, so a script can check a rerun.
"""
import argparse
import json
import statistics
import sys
from typing import Dict, List, Optional, Sequence, Tuple

DEFAULT_METRICS = ("mAP", "AP_S", "VisDrone_AP")


def load_rows(path: str) -> Dict[str, Dict]:
    """{model label: row} of a ``results.json``."""
    try:
        with open(path) as f:
            results = json.load(f)
        return {row["model"]: row for row in results["rows"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"{path}: not a results.json of tools/demo.py or tools/real_benchmark.py ({e!r})")


def seed_values(row: Dict, metric: str) -> List[float]:
    """The metric's per-seed values (a single number counts as one seed); missing ones left out."""
    value = row.get(metric)
    return [v for v in (value if isinstance(value, list) else [value]) if v is not None]


def compare_metric(first: Sequence[float], second: Sequence[float]) -> Dict:
    """Means, their difference and the seed ranges of one metric of one model in two runs;
    ``verdict``: within / outside the larger seed range, or ``no seed spread`` when neither run
    has a spread (one value, or the same value in every seed)."""
    mean_1, mean_2 = statistics.mean(first), statistics.mean(second)
    range_1, range_2 = max(first) - min(first), max(second) - min(second)
    difference = abs(mean_2 - mean_1)
    if range_1 == 0 and range_2 == 0:
        verdict = "no seed spread"
    else:
        verdict = "within" if difference <= max(range_1, range_2) else "outside"
    return {"mean_1": mean_1, "mean_2": mean_2, "difference": difference,
            "range_1": range_1, "range_2": range_2, "verdict": verdict}


def compare(rows_1: Dict[str, Dict], rows_2: Dict[str, Dict], metrics: Sequence[str]) -> List[Dict]:
    """One entry per (model in both runs, metric with values in both)."""
    out = []
    for model in (m for m in rows_1 if m in rows_2):
        for metric in metrics:
            first, second = seed_values(rows_1[model], metric), seed_values(rows_2[model], metric)
            if first and second:
                out.append(dict(compare_metric(first, second), model=model, metric=metric))
    return out


def claim_holds(rows: Dict[str, Dict], above: str, below: str, metric: str) -> Optional[bool]:
    """Whether ``above``'s metric beats ``below``'s in every seed of one run; None when the run
    lacks either model or their seeds do not pair up."""
    if above not in rows or below not in rows:
        return None
    high, low = rows[above].get(metric), rows[below].get(metric)
    if not isinstance(high, list) or not isinstance(low, list) or len(high) != len(low) or None in high + low:
        return None
    return all(h > l for h, l in zip(high, low))


def relative(entry: Dict) -> str:
    base = entry["mean_1"]
    return f" ({entry['difference'] / base:.0%})" if base else ""


def print_table(entries: List[Dict], names: Tuple[str, str]) -> None:
    print(f"| model | metric | mean {names[0]} | mean {names[1]} | difference | seed range {names[0]} | "
          f"seed range {names[1]} | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for e in entries:
        note = relative(e) if e["verdict"] == "no seed spread" else ""
        print(f"| {e['model']} | {e['metric']} | {e['mean_1']:.4f} | {e['mean_2']:.4f} | {e['difference']:.4f}{note} | "
              f"{e['range_1']:.4f} | {e['range_2']:.4f} | {e['verdict']} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", help="results.json of the reference run")
    parser.add_argument("second", help="results.json of the rerun")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS),
                        help="results.json keys to compare (default: %(default)s)")
    parser.add_argument("--above", nargs=2, action="append", default=[], metavar=("A", "B"),
                        help="claim: model A beats model B in every seed of both runs (repeatable)")
    args = parser.parse_args(argv)
    rows_1, rows_2 = load_rows(args.first), load_rows(args.second)
    entries = compare(rows_1, rows_2, args.metrics)
    if not entries:
        raise SystemExit(f"{args.first} and {args.second} have no model with {', '.join(args.metrics)} in common")
    print_table(entries, ("1", "2"))
    print(f"\n1 = {args.first}, 2 = {args.second}")
    for model in sorted(set(rows_1) ^ set(rows_2)):
        print(f"only in {'1' if model in rows_1 else '2'}: {model}")
    outside = [e for e in entries if e["verdict"] == "outside"]
    failed = []
    for above, below in args.above:
        for metric in args.metrics:
            holds = [claim_holds(rows, above, below, metric) for rows in (rows_1, rows_2)]
            status = "holds" if all(holds) else ("cannot be checked" if None in holds else "fails")
            print(f"claim {above} > {below} in {metric}, every seed of both runs: {status}")
            if status != "holds":
                failed.append((above, below, metric))
    compared = sum(e["verdict"] != "no seed spread" for e in entries)
    print(f"\n{compared - len(outside)} of {compared} seed-spread comparisons within, "
          f"{len(entries) - compared} without seed spread; {len(failed)} claim(s) not holding")
    return 1 if outside or failed else 0


if __name__ == "__main__":
    sys.exit(main())
