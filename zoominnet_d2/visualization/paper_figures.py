"""The paper's result pictures: precision-recall curves (Figure 10) and detections side by side
(Figure 11), from saved COCO-format detections.

- :func:`load_coco_detections`: an evaluator's ``coco_instances_results.json`` as per-image
  predictions (what :func:`~zoominnet_d2.evaluation.coco_protocol.run_coco_eval` takes);
- :func:`pr_curves`: the curves at IoU 0.5 for small, medium and all objects, read from the
  COCO evaluation's own precision arrays;
- :func:`plot_pr_curves`: one panel per object size, one line per model;
- :func:`draw_detection_row`: ground truth and each model's detections above a score
  threshold, drawn with Detectron2's ``Visualizer`` (:func:`.rendering.draw_ground_truth`),
  side by side with titles.
"""
import json
from collections import defaultdict
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from ..evaluation.coco_protocol import precision_recall_curve, run_coco_eval
from .rendering import draw_ground_truth

PR_AREAS = (("small", "small objects"), ("medium", "medium objects"), ("all", "all objects"))


def load_coco_detections(path: str) -> Dict[str, dict]:
    """image id -> ``{"image_id", "boxes" (N, 4) XYWH, "scores", "classes" (contiguous)}`` of a
    COCO results file whose ``category_id`` is the contiguous class + 1 (the evaluator's)."""
    with open(path) as f:
        results = json.load(f)
    grouped = defaultdict(list)
    for r in results:
        grouped[r["image_id"]].append(r)
    return {image_id: {"image_id": image_id,
                       "boxes": np.array([r["bbox"] for r in rs], np.float64).reshape(-1, 4),
                       "scores": np.array([r["score"] for r in rs], np.float64),
                       "classes": np.array([r["category_id"] - 1 for r in rs], np.int64)}
            for image_id, rs in grouped.items()}


def pr_curves(dataset_dicts: Sequence[Mapping], predictions: Sequence[Mapping], num_classes: int,
              max_dets: int = 100) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """area -> (recall, precision) at IoU 0.5, class-averaged, from one COCOeval run with the
    VisDrone ignore rule (the evaluator's), for the areas of ``PR_AREAS``."""
    coco_eval, _ = run_coco_eval(dataset_dicts, predictions, num_classes, max_dets=(max_dets,))
    return {area: precision_recall_curve(coco_eval, max_dets, iou=0.5, area=area)
            for area, _ in PR_AREAS}


def plot_pr_curves(curves: Mapping[str, Mapping[str, Tuple[np.ndarray, np.ndarray]]], path: str,
                   title: str = "") -> None:
    """Save a figure of one panel per area of ``PR_AREAS``, a line per model of ``curves``
    (model label -> :func:`pr_curves`), its AP50 (the curve's mean) in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PR_AREAS), figsize=(4.2 * len(PR_AREAS), 4), squeeze=False)
    for ax, (area, name) in zip(axes[0], PR_AREAS):
        for label, by_area in curves.items():
            recall, precision = by_area[area]
            if np.isnan(precision).all():
                continue
            ax.plot(recall, precision, label=f"{label} (AP50 {np.nanmean(precision):.3f})")
        ax.set(title=f"{name}, IoU 0.5", xlabel="recall", ylabel="precision",
               xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="upper right")
        else:
            ax.text(0.5, 0.5, "no ground truth of this size", ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _as_annotations(prediction: Mapping, threshold: float) -> List[dict]:
    """Detections with a score of at least ``threshold`` as XYWH annotation dicts."""
    from detectron2.structures import BoxMode

    keep = np.asarray(prediction["scores"]) >= threshold
    return [{"bbox": list(map(float, box)), "bbox_mode": BoxMode.XYWH_ABS, "category_id": int(c)}
            for box, c in zip(np.asarray(prediction["boxes"])[keep],
                              np.asarray(prediction["classes"])[keep])]


def draw_detection_row(image_rgb: np.ndarray, record: Mapping,
                       predictions: Sequence[Tuple[str, Mapping]], path: str, *,
                       threshold: float, scale: float = 2.0) -> None:
    """Save ground truth (``record``: a dataset dict) and each ``(label, prediction)``'s
    detections with score >= ``threshold`` side by side, the image enlarged by ``scale``.

    Predictions are in ``image_rgb``'s pixels (XYWH boxes, contiguous classes); the same
    class has the same colour in every panel, ignored regions are grey in every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    h, w = image_rgb.shape[:2]
    big = np.asarray(Image.fromarray(image_rgb).resize((round(w * scale), round(h * scale)),
                                                       Image.NEAREST))
    regions = record.get("ignore_regions", [])
    panels = [(f"ground truth ({len(record.get('annotations', []))})",
               draw_ground_truth(big, record.get("annotations", []), regions, scale=scale))]
    for label, prediction in predictions:
        shown = _as_annotations(prediction, threshold)
        panels.append((f"{label} ({len(shown)})",
                       draw_ground_truth(big, shown, regions, scale=scale)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.5), squeeze=False)
    for ax, (label, picture) in zip(axes[0], panels):
        ax.imshow(picture)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{record['image_id']}: detections with score >= {threshold:g}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
