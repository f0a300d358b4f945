"""Text tables of the metrics, for the evaluator's log and ``tools/evaluate_visdrone.py``."""
import itertools
from typing import Mapping, Sequence

from tabulate import tabulate

from detectron2.utils.logger import create_small_table

from .official_protocol import CAPS, METRIC_KEYS

OFFICIAL_PROTOCOL = "official VisDrone-DET toolkit protocol"


def per_class_table(metrics: Mapping[str, float], class_names: Sequence[str]) -> str:
    """The ``AP-<name>`` values of ``metrics`` as a markdown table, three classes a row."""
    flat = list(itertools.chain(*[(name, metrics[f"AP-{name}"]) for name in class_names]))
    n_cols = min(6, len(flat))
    return tabulate(
        itertools.zip_longest(*[flat[i::n_cols] for i in range(n_cols)]),
        tablefmt="pipe", floatfmt=".3f", headers=["category", "AP"] * (n_cols // 2),
        numalign="left")


def official_report(metrics: Mapping[str, float], class_names: Sequence[str]) -> str:
    """The official metrics and the per-class AP, headed by :data:`OFFICIAL_PROTOCOL`."""
    caps = ", ".join(map(str, CAPS))
    return (f"Bbox metrics [%], {OFFICIAL_PROTOCOL} (AP at IoU 0.50:0.95, AP50, AP75 with "
            f"{CAPS[-1]} detections per image; AR with the first {caps} detections of each "
            f"image; classes weighted by the number of images containing them):\n"
            + create_small_table({key: metrics[key] for key in METRIC_KEYS})
            + f"\nPer-category bbox AP [%], {OFFICIAL_PROTOCOL}; nan where no image has the "
              "class:\n" + per_class_table(metrics, class_names))
