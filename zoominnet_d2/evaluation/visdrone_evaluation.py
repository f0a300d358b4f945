"""VisDrone-DET evaluation for Detectron2: COCO-API box AP with the VisDrone ignore rule.

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
  points. For official numbers write the result files (``write_official_txt=True``, see
  :mod:`.result_writer`) and run the toolkit. A model only gives more than 100 detections
  per image if its config allows it (Detectron2's ``TEST.DETECTIONS_PER_IMAGE`` is 100).
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
import itertools
import json
import logging
import math
import os
import time
from collections import OrderedDict
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tabulate import tabulate

import detectron2.utils.comm as comm
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator
from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table

from .ignore_regions import IGNORE_THRESHOLD, in_ignored_regions
from .result_writer import write_visdrone_results

# (key, IoU threshold or None for 0.50:0.95, COCO area range)
_AP_METRICS = (
    ("AP", None, "all"),
    ("AP50", 0.5, "all"),
    ("AP75", 0.75, "all"),
    ("APs", None, "small"),
    ("APm", None, "medium"),
    ("APl", None, "large"),
)
_AR_AREAS = (("ARs", "small"), ("ARm", "medium"), ("ARl", "large"))
_RECALL_LIMITS = (1, 10)  # AR@1 and AR@10, reported with the paper protocol


def protocol_description(max_dets: int) -> str:
    """How the metrics computed with ``max_dets`` detections per image relate to the papers."""
    text = f"COCO API, maxDets={max_dets}"
    if max_dets == 100:
        text += " (paper protocol)"
    elif max_dets == 500:
        text += (
            " (VisDrone toolkit's maxDets; note the official toolkit has no S/M/L split, caps "
            "detections per image over all classes and integrates precision VOC-style, so "
            "these are not the toolkit's numbers)"
        )
    return text


def _gt_boxes_xywh(annotations: Sequence[Mapping]) -> np.ndarray:
    """The boxes of Detectron2 annotation dicts as an ``(N, 4)`` XYWH_ABS array."""
    boxes = [
        a["bbox"]
        if a["bbox_mode"] == BoxMode.XYWH_ABS
        else BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYWH_ABS)
        for a in annotations
    ]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _coco_results(predictions: Sequence[Mapping], image_ids: Sequence) -> List[Dict]:
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
        boxes = _gt_boxes_xywh(annotations)
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
    dt_anns = _coco_results(kept, kept_ids)
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
        coco_eval.params.maxDets = sorted({*_RECALL_LIMITS, *max_dets})
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
        for key, iou, area in _AP_METRICS:
            metrics[key + suffix] = average_precision(coco_eval, limit, iou=iou, area=area)
        if limit == primary:
            for small_limit in _RECALL_LIMITS:
                metrics[f"AR@{small_limit}"] = average_recall(coco_eval, small_limit)
        metrics[f"AR@{limit}"] = average_recall(coco_eval, limit)
        for key, area in _AR_AREAS:
            metrics[key + suffix] = average_recall(coco_eval, limit, area=area)
    for k, name in enumerate(class_names):
        metrics[f"AP-{name}"] = average_precision(coco_eval, primary, class_index=k)
    return metrics


class VisDroneEvaluator(DatasetEvaluator):
    """Box AP on a VisDrone-style dataset with the COCO API and the VisDrone ignore rule.

    Used like Detectron2's ``COCOEvaluator`` (``reset`` / ``process`` / ``evaluate``, e.g.
    through ``inference_on_dataset``). The ground truth is ``DatasetCatalog.get(dataset_name)``
    (Detectron2 dicts with ``ignore_regions``); the class names are the dataset's
    ``thing_classes``. See the module docstring for the protocols and metric keys.
    """

    def __init__(self, dataset_name: str, output_dir: str = None, *, ignore_rule: bool = True,
                 max_dets: Sequence[int] = (100, 500), write_official_txt: bool = False,
                 distributed: bool = True):
        """
        Args:
            dataset_name: a dataset registered in ``DatasetCatalog`` / ``MetadataCatalog``.
            output_dir: where to save ``coco_instances_results.json`` (all predictions, COCO
                results format, with the dataset's image ids and VisDrone category ids 1..10,
                before the ignore rule) and ``visdrone_metrics.json``; None saves nothing.
            ignore_rule: remove ground truth and detections with >= 50% of their area inside
                ignored regions before matching, as the VisDrone toolkit does.
            max_dets: detection limits per image; the first one (100: the paper protocol)
                gives the keys without suffix, every other one ``m`` the keys ``...@m``.
            write_official_txt: also write the predictions as official VisDrone result files
                into ``output_dir/visdrone_results/`` (needs ``output_dir``).
            distributed: gather the predictions of all processes and evaluate in the main
                one; otherwise evaluate the predictions of this process only.
        """
        max_dets = tuple(int(m) for m in max_dets)
        if not max_dets or min(max_dets) < 1 or len(set(max_dets)) != len(max_dets):
            raise ValueError(f"max_dets must be distinct positive integers, got {max_dets}.")
        if write_official_txt and not output_dir:
            raise ValueError("write_official_txt=True needs an output_dir.")
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._ignore_rule = ignore_rule
        self._max_dets = max_dets
        self._write_official_txt = write_official_txt
        self._distributed = distributed
        self._class_names = list(MetadataCatalog.get(dataset_name).thing_classes)
        self._logger = logging.getLogger(__name__)
        self.reset()

    def reset(self):
        """Forget the predictions of a previous round."""
        self._predictions = []

    def process(self, inputs, outputs):
        """Store the detections of a batch.

        Args:
            inputs: the model's inputs, dicts with ``image_id``.
            outputs: the model's outputs, dicts with ``instances`` (``pred_boxes`` XYXY in
                original image coordinates, ``scores``, ``pred_classes``).
        """
        for input_, output in zip(inputs, outputs):
            instances = output["instances"]
            boxes = instances.pred_boxes.tensor.detach().cpu().numpy().astype(np.float32)
            boxes[:, 2:] -= boxes[:, :2]  # XYXY -> XYWH
            self._predictions.append({
                "image_id": input_["image_id"],
                "boxes": boxes,
                "scores": instances.scores.detach().cpu().numpy().astype(np.float32),
                "classes": instances.pred_classes.detach().cpu().numpy().astype(np.int64),
            })

    def evaluate(self):
        """Evaluate the stored predictions; return ``{"bbox": metrics}`` (in the main process;
        the other processes return ``{}``), or ``{}`` if no image was processed."""
        if self._distributed:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
            if not comm.is_main_process():
                return {}
        else:
            predictions = self._predictions
        if not predictions:
            self._logger.warning("[VisDroneEvaluator] Did not receive valid predictions.")
            return {}

        if self._output_dir:
            self._save_predictions(predictions)

        start = time.perf_counter()
        coco_eval, counts = run_coco_eval(
            DatasetCatalog.get(self._dataset_name), predictions, len(self._class_names),
            ignore_rule=self._ignore_rule, max_dets=self._max_dets)
        metrics = derive_metrics(coco_eval, self._class_names, self._max_dets)
        self._log_report(metrics, counts, time.perf_counter() - start)
        if self._output_dir:
            self._save_metrics(metrics, counts)
        return OrderedDict(bbox=metrics)

    def _save_predictions(self, predictions: List[Mapping]):
        """Write ``coco_instances_results.json`` and, if asked, the official result files."""
        PathManager.mkdirs(self._output_dir)
        path = os.path.join(self._output_dir, "coco_instances_results.json")
        self._logger.info(f"Saving results to {path}")
        results = _coco_results(predictions, [p["image_id"] for p in predictions])
        with PathManager.open(path, "w") as f:
            json.dump(results, f)
        if self._write_official_txt:
            folder = os.path.join(self._output_dir, "visdrone_results")
            write_visdrone_results(predictions, folder)
            self._logger.info(f"Wrote {len(predictions)} VisDrone result files to {folder}")

    def _save_metrics(self, metrics: Mapping[str, float], counts: Mapping[str, int]):
        """Write ``visdrone_metrics.json``: metrics (NaN as null), protocols and box counts."""
        report = {
            "dataset": self._dataset_name,
            "ignore_rule": self._ignore_rule,
            "protocols": {("" if m == self._max_dets[0] else f"@{m}"): protocol_description(m)
                          for m in self._max_dets},
            "counts": dict(counts),
            "bbox": {k: (None if math.isnan(v) else v) for k, v in metrics.items()},
        }
        path = os.path.join(self._output_dir, "visdrone_metrics.json")
        with PathManager.open(path, "w") as f:
            json.dump(report, f, indent=2)

    def _log_report(self, metrics: Mapping[str, float], counts: Mapping[str, int],
                    seconds: float):
        """Log the metric tables, each headed by the protocol its numbers follow."""
        log = self._logger.info
        log(f"VisDrone evaluation of '{self._dataset_name}' ({seconds:.1f} s): "
            f"{counts['images']} images, {counts['gt']} ground-truth boxes, "
            f"{counts['detections']} detections.")
        if counts["images_without_predictions"]:
            self._logger.warning(
                f"{counts['images_without_predictions']} images received no predictions; "
                "their objects count as missed.")
        if self._ignore_rule:
            log(f"VisDrone ignore rule applied: removed {counts['gt_ignored']} ground-truth "
                f"boxes and {counts['detections_ignored']} detections with >= "
                f"{IGNORE_THRESHOLD:.0%} of their area inside ignored regions.")
        else:
            log("VisDrone ignore rule NOT applied: boxes inside ignored regions are evaluated "
                "like all others.")
        primary = self._max_dets[0]
        for limit in self._max_dets:
            suffix = "" if limit == primary else f"@{limit}"
            keys = [key + suffix for key, _, _ in _AP_METRICS]
            if limit == primary:
                keys += [f"AR@{m}" for m in _RECALL_LIMITS]
            keys += [f"AR@{limit}"] + [key + suffix for key, _ in _AR_AREAS]
            log(f"Bbox metrics [%], {protocol_description(limit)}:\n"
                + create_small_table({k: metrics[k] for k in keys}))
        per_class = [(name, metrics[f"AP-{name}"]) for name in self._class_names]
        n_cols = min(6, 2 * len(per_class))
        flat = list(itertools.chain(*per_class))
        table = tabulate(
            itertools.zip_longest(*[flat[i::n_cols] for i in range(n_cols)]),
            tablefmt="pipe", floatfmt=".3f", headers=["category", "AP"] * (n_cols // 2),
            numalign="left")
        log(f"Per-category bbox AP [%], {protocol_description(primary)}; nan where a class "
            "has no ground truth:\n" + table)
        if any(math.isnan(v) for v in metrics.values()):
            log("Some metrics cannot be computed (no ground truth in their range): shown as nan.")


def build_evaluator(cfg, dataset_name: str, output_folder: str) -> DatasetEvaluator:
    """The evaluator of a dataset, for ``train_net.py``.

    ``VisDroneEvaluator`` (ignore rule from ``cfg.TEST.VISDRONE_IGNORE_RULE``, default True)
    for datasets whose metadata has ``evaluator_type == "visdrone"``, else Detectron2's
    ``COCOEvaluator`` with the official COCO API (its fast implementation needs compiled
    Detectron2 ops).
    """
    if MetadataCatalog.get(dataset_name).get("evaluator_type") == "visdrone":
        return VisDroneEvaluator(dataset_name, output_folder,
                                 ignore_rule=bool(cfg.TEST.get("VISDRONE_IGNORE_RULE", True)))
    return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)
