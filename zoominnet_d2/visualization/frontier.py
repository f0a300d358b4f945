"""Accuracy against cost, one marker per method, with the Pareto front: ``frontier.png``.

Rows are the ``results.json`` rows of ``tools/demo.py`` / ``tools/real_benchmark.py``:
``model`` (the label), ``GFLOPs``, ``cpu_ms`` and the metrics, each metric either a number or a
list over seeds (drawn as mean with a bar of one standard deviation).
"""
import math
import statistics
from typing import Dict, List, Sequence, Tuple

# (x key, x label) and (y key, y label) of the four panels.
COSTS = [("GFLOPs", "GFLOPs per image (log)"), ("cpu_ms", "CPU ms per image, 1 thread (log)")]
ACCURACIES = [("mAP", "mAP (COCO protocol)"), ("AP_S", "AP_S")]


def mean_and_spread(value) -> Tuple[float, float]:
    """(mean, standard deviation) of a number or of a list over seeds (None entries left out);
    NaN when there is no value."""
    values = [v for v in (value if isinstance(value, list) else [value]) if v is not None]
    if not values:
        return float("nan"), 0.0
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def pareto_front(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indices of the points no other point dominates (lower or equal cost and higher or
    equal accuracy, one of them strictly), ordered by cost. ``points``: (cost, accuracy)."""
    front = []
    for i, (cost, acc) in enumerate(points):
        dominated = any(c <= cost and a >= acc and (c < cost or a > acc)
                        for j, (c, a) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_frontier(rows: Sequence[Dict], path: str, title: str) -> None:
    """Write the 2 x 2 panels (mAP and AP_S against GFLOPs and CPU ms) of ``rows`` to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    markers = "osD^v<>pPX*h"
    for (y_key, y_label), axes_row in zip(ACCURACIES, axes):
        for (x_key, x_label), ax in zip(COSTS, axes_row):
            points = []
            for k, row in enumerate(rows):
                x = mean_and_spread(row.get(x_key))[0]
                y, spread = mean_and_spread(row.get(y_key))
                points.append((x, y))
                ax.errorbar([x], [y], yerr=[spread], fmt=markers[k % len(markers)], capsize=3, label=row["model"])
            drawn = [i for i, p in enumerate(points) if not any(map(math.isnan, p))]
            front = [drawn[i] for i in pareto_front([points[i] for i in drawn])]
            ax.step([points[i][0] for i in front], [points[i][1] for i in front], where="post",
                    color="gray", linestyle="--", linewidth=1, label="Pareto front")
            ax.set_xscale("log")
            # Plain numbers on the log axis: a few labelled ticks, no overlapping minor labels.
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 0.96))
    fig.savefig(path, dpi=90)
    plt.close(fig)
