"""COCO-API box AP with the VisDrone ignore rule: the paper protocol and maxDets=500.

Protocols
---------
Every number comes from one pycocotools ``COCOeval`` (bbox) run; nothing here matches boxes
or integrates precision by hand.

* **Paper protocol** -- COCO API, maxDets=100. The ZoomInNet paper reports COCO-style
  metrics: ``AP`` (IoU 0.50:0.95), ``AP50``, ``AP75``, ``APs``/``APm``/``APl`` (COCO area
  ranges: < 32^2, 32^2..96^2, > 96^2 pixels), plus the recalls ``AR@1``, ``AR@10``,
  ``AR@100`` and ``ARs``/``ARm``/``ARl``, and the per-class ``AP-<class name>``. The keys
  are Detectron2's (``COCOEvaluator``) where it has them; values are in percent, NaN where
  a metric has no ground truth to be computed on.
* **maxDets=500** -- the same COCO-API metrics with up to 500 detections per image and class,
  keys suffixed ``@500`` (``AP@500``, ``AP50@500``, ``APs@500``, ``AR@500``, ``ARs@500``...).
  500 is the limit of the official VisDrone toolkit (``calcAccuracy.m``), but these are
  still COCO-API numbers, not the toolkit's: the toolkit reports AP, AP50, AP75 and
  AR@1/10/100/500 only (no S/M/L split), caps the detections of an image over all classes
  rather than per class, and integrates precision VOC-style rather than at 101 recall
  points. The toolkit's own numbers are computed by :mod:`.official_protocol`. A model only
  gives more than 100 detections per image if its config allows it (Detectron2's
  ``TEST.DETECTIONS_PER_IMAGE`` is 100).
* **Ignore rule** (``ignore_rule=True``, the default, as in the toolkit) -- ground-truth
  boxes and detections with >= 50% of their own area inside the ignored regions of their
  image are removed before matching (see :mod:`.ignore_regions`). With ``ignore_rule=False``
  every box is evaluated: plain COCO evaluation of the annotated objects.

The COCOeval run uses ``params.maxDets = [1, 10, 100, 500]``; the metrics are read from its
accumulated ``eval["precision"]`` / ``eval["recall"]`` arrays the way ``COCOeval.summarize()``
reads them (``summarize()`` itself reads AP at maxDets[2], and the main AP at a literal
maxDets=100, so it cannot report a second limit). Because COCOeval matches detections
greedily in score order, the maxDets=100 numbers of this run equal those of a run with the
default ``[1, 10, 100]`` (the tests check this against pycocotools called directly).
"""
import contextlib
import copy
import io
from collections import OrderedDict
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detectron2.structures import BoxMode

from .ignore_regions import in_ignored_regions

AP_METRICS = (
    ("AP", None, "all"),
    ("AP50", 0.5, "all"),
    ("AP75", 0.75, "all"),
    ("APs", None, "small"),
    ("APm", None, "medium"),
    ("APl", None, "large"),
)
AR_AREAS = (("ARs", "small"), ("ARm", "medium"), ("ARl", "large"))
RECALL_LIMITS = (1, 10)  # AR@1 and AR@10, reported with the paper protocol


def protocol_description(max_dets: int) -> str:
    """How the metrics computed with ``max_dets`` detections per image relate to the papers."""
    text = f"COCO API, maxDets={max_dets}"
    if max_dets == 100:
        text += " (paper protocol)"
    elif max_dets == 500:
        text += (
            " (VisDrone toolkit's maxDets; note the official toolkit has no S/M/L split, caps "
            "detections per image over all classes and integrates precision VOC-style, so "
            "these are not the toolkit's numbers: see the official VisDrone-DET toolkit "
            "protocol table)"
        )
    return text


def gt_boxes_xywh(annotations: Sequence[Mapping]) -> np.ndarray:
    """The boxes of Detectron2 annotation dicts as an ``(N, 4)`` XYWH_ABS array."""
    boxes = [
        a["bbox"]
        if a["bbox_mode"] == BoxMode.XYWH_ABS
        else BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYWH_ABS)
        for a in annotations
    ]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def coco_results(predictions: Sequence[Mapping], image_ids: Sequence) -> List[Dict]:
    """COCO result dicts of per-image predictions; ``image_ids[i]`` names ``predictions[i]``.

    Category ids are the VisDrone ones (contiguous id + 1).
    """
    results = []
    for prediction, image_id in zip(predictions, image_ids):
        for box, score, cls in zip(
            prediction["boxes"].tolist(),
            prediction["scores"].tolist(),
            prediction["classes"].tolist(),
        ):
            results.append(
                {"image_id": image_id, "category_id": cls + 1, "bbox": box, "score": score}
            )
    return results


def run_coco_eval(
    dataset_dicts: Sequence[Mapping],
    predictions: Sequence[Mapping],
    num_classes: int,
    *,
    ignore_rule: bool = True,
    max_dets: Sequence[int] = (100, 500),
) -> Tuple[COCOeval, Dict[str, int]]:
    """Evaluate per-image predictions against Detectron2 dataset dicts with COCOeval.

    The COCO ground truth is built in memory: image ``i`` of ``dataset_dicts`` gets COCO id
    ``i``, class ``k`` gets category id ``k + 1``, ``area`` is ``w * h``. Every image of the
    dataset is evaluated; an image without predictions has all its objects missed.

    Args:
        dataset_dicts: Detectron2 dicts with ``image_id``, ``file_name``, ``height``,
            ``width``, ``annotations`` and (optionally) ``ignore_regions`` (XYWH).
        predictions: per-image dicts with ``image_id``, ``boxes`` (``(N, 4)`` XYWH_ABS),
            ``scores`` and ``classes`` (contiguous ids) -- see :class:`VisDroneEvaluator`.
        num_classes: the number of classes.
        ignore_rule: remove the boxes in ignored regions first (VisDrone rule).
        max_dets: the detection limits per image to evaluate (1 and 10 are always added,
            for AR@1 and AR@10).

    Returns:
        The evaluated and accumulated ``COCOeval`` and counts of images and boxes
        (``images``, ``images_without_predictions``, ``gt``, ``gt_ignored``, ``detections``,
        ``detections_ignored``).
    """
    images, gt_anns, regions_of, index_of = [], [], [], {}
    counts = dict.fromkeys(
        ("images", "images_without_predictions", "gt", "gt_ignored", "detections",
         "detections_ignored"), 0)
    for index, record in enumerate(dataset_dicts):
        if record["image_id"] in index_of:
            raise ValueError(f"Image id {record['image_id']!r} appears twice in the dataset.")
        index_of[record["image_id"]] = index
        images.append({"id": index, "file_name": record["file_name"],
                       "height": record["height"], "width": record["width"]})
        annotations = record.get("annotations", [])
        boxes = gt_boxes_xywh(annotations)
        regions = np.asarray(record.get("ignore_regions", []), dtype=np.float64).reshape(-1, 4)
        regions_of.append(regions)
        if ignore_rule:
            dropped = in_ignored_regions(boxes, regions)
        else:
            dropped = np.zeros(len(boxes), dtype=bool)
        counts["gt"] += len(boxes)
        counts["gt_ignored"] += int(dropped.sum())
        for annotation, box, drop in zip(annotations, boxes.tolist(), dropped.tolist()):
            if not drop:
                gt_anns.append({
                    "id": len(gt_anns) + 1,  # COCOeval needs ids > 0
                    "image_id": index,
                    "category_id": annotation["category_id"] + 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": annotation.get("iscrowd", 0),
                })
    counts["images"] = len(images)

    kept, kept_ids = [], []
    for prediction in predictions:
        if prediction["image_id"] not in index_of:
            raise ValueError(f"Prediction for image {prediction['image_id']!r}, which is not "
                             "in the dataset being evaluated.")
        classes = np.asarray(prediction["classes"])
        if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
            raise ValueError(f"Image {prediction['image_id']!r} has a predicted class outside "
                             f"[0, {num_classes - 1}].")
        index = index_of[prediction["image_id"]]
        if ignore_rule:
            keep = ~in_ignored_regions(prediction["boxes"], regions_of[index])
        else:
            keep = np.ones(len(classes), dtype=bool)
        counts["detections"] += len(keep)
        counts["detections_ignored"] += int((~keep).sum())
        kept.append({key: np.asarray(prediction[key])[keep]
                     for key in ("boxes", "scores", "classes")})
        kept_ids.append(index)
    counts["images_without_predictions"] = len(images) - len(set(kept_ids))

    coco_gt = COCO()
    coco_gt.dataset = {
        "images": images,
        "annotations": gt_anns,
        "categories": [{"id": k + 1, "name": str(k)} for k in range(num_classes)],
    }
    dt_anns = coco_results(kept, kept_ids)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt.createIndex()
        if dt_anns:
            coco_dt = coco_gt.loadRes(dt_anns)
        else:  # loadRes cannot take an empty list; no detections means AP 0, not an error
            coco_dt = COCO()
            coco_dt.dataset = {"images": images, "annotations": [],
                               "categories": copy.deepcopy(coco_gt.dataset["categories"])}
            coco_dt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_dt, "bbox")
        coco_eval.params.maxDets = sorted({*RECALL_LIMITS, *max_dets})
        coco_eval.evaluate()
        coco_eval.accumulate()
    return coco_eval, counts


def _mean_valid_percent(values: np.ndarray) -> float:
    """Mean of the entries > -1 (COCOeval's "not computable" mark) in percent, else NaN."""
    values = values[values > -1]
    return float(np.mean(values) * 100) if values.size else float("nan")


def average_precision(coco_eval: COCOeval, max_dets: int, *, iou: float = None,
                      area: str = "all", class_index: int = None) -> float:
    """AP in percent from an accumulated COCOeval, as ``COCOeval.summarize()`` computes it.

    Args:
        max_dets: one of ``coco_eval.params.maxDets``.
        iou: a single IoU threshold (0.5, 0.75...), or None for the mean over 0.50:0.95.
        area: a COCO area range label ("all", "small", "medium", "large").
        class_index: one class (its position in ``params.catIds``), or None for all.
    """
    params = coco_eval.params
    precision = coco_eval.eval["precision"][
        :, :, :, params.areaRngLbl.index(area), params.maxDets.index(max_dets)
    ]  # (IoU thresholds, recall points, classes)
    if iou is not None:
        precision = precision[np.isclose(params.iouThrs, iou)]
    if class_index is not None:
        precision = precision[:, :, class_index]
    return _mean_valid_percent(precision)


def average_recall(coco_eval: COCOeval, max_dets: int, *, area: str = "all") -> float:
    """AR in percent (mean over IoU 0.50:0.95 and classes), as ``summarize()`` computes it."""
    params = coco_eval.params
    recall = coco_eval.eval["recall"][
        :, :, params.areaRngLbl.index(area), params.maxDets.index(max_dets)
    ]
    return _mean_valid_percent(recall)


def derive_metrics(coco_eval: COCOeval, class_names: Sequence[str],
                   max_dets: Sequence[int] = (100, 500)) -> "OrderedDict[str, float]":
    """The metric dict: ``max_dets[0]`` without key suffix, each other limit ``m`` with
    ``@m``, then the per-class AP at ``max_dets[0]``. See the module docstring for the keys."""
    primary = max_dets[0]
    metrics = OrderedDict()
    for limit in max_dets:
        suffix = "" if limit == primary else f"@{limit}"
        for key, iou, area in AP_METRICS:
            metrics[key + suffix] = average_precision(coco_eval, limit, iou=iou, area=area)
        if limit == primary:
            for small_limit in RECALL_LIMITS:
                metrics[f"AR@{small_limit}"] = average_recall(coco_eval, small_limit)
        metrics[f"AR@{limit}"] = average_recall(coco_eval, limit)
        for key, area in AR_AREAS:
            metrics[key + suffix] = average_recall(coco_eval, limit, area=area)
    for k, name in enumerate(class_names):
        metrics[f"AP-{name}"] = average_precision(coco_eval, primary, class_index=k)
    return metrics


def precision_recall_curve(coco_eval: COCOeval, max_dets: int = 100, *, iou: float = 0.5,
                           area: str = "all") -> Tuple[np.ndarray, np.ndarray]:
    """The precision-recall curve behind ``average_precision(coco_eval, max_dets, iou=iou,
    area=area)``: COCOeval's recall points and, at each, the precision averaged over the
    classes with ground truth in ``area`` (the mean of the curve is that AP / 100).

    Returns ``(recall, precision)``, two arrays of ``len(params.recThrs)``; precision is NaN
    where no class has ground truth.
    """
    params = coco_eval.params
    precision = coco_eval.eval["precision"][
        np.isclose(params.iouThrs, iou), :, :, params.areaRngLbl.index(area),
        params.maxDets.index(max_dets)][0]  # (recall points, classes)
    valid = precision > -1
    counts = valid.sum(axis=1)
    total = np.where(valid, precision, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(params.recThrs), np.where(counts > 0, total / counts, np.nan)
