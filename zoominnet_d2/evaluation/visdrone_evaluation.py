"""VisDrone-DET evaluation for Detectron2: the COCO-API metrics of :mod:`.coco_protocol`
(``results["bbox"]``) and the official toolkit's metrics of :mod:`.official_protocol`
(``results["visdrone"]``), from one set of in-memory predictions.
"""
import itertools
import json
import logging
import math
import os
import time
from collections import OrderedDict
from typing import List, Mapping, Optional, Sequence

import numpy as np

import detectron2.utils.comm as comm
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table

from .coco_protocol import (
    AP_METRICS,
    AR_AREAS,
    RECALL_LIMITS,
    coco_results,
    derive_metrics,
    gt_boxes_xywh,
    protocol_description,
    run_coco_eval,
)
from .ignore_regions import IGNORE_THRESHOLD
from .official_protocol import evaluate_official
from .report import OFFICIAL_PROTOCOL, official_report, per_class_table
from .result_writer import result_lines, write_visdrone_results
from .visdrone_txt import read_visdrone_txt


def _ground_truth_lines(record: Mapping, annotation_root: Optional[str]) -> np.ndarray:
    """The annotation lines of an image, ``(G, 6)`` ``[left, top, width, height, score,
    category]``: read from ``<annotation_root>/<image_id>.txt`` when the dataset has its
    annotation files (the toolkit reads them as they are: unclipped, with category 11 and
    score-0 lines), else rebuilt from the dict (objects with score 1, ignored regions as
    category 0)."""
    if annotation_root:
        return read_visdrone_txt(os.path.join(annotation_root, f"{record['image_id']}.txt"),
                                 annotation=True)
    objects = [[*box, 1, annotation["category_id"] + 1] for annotation, box in zip(
        record["annotations"], gt_boxes_xywh(record["annotations"]).tolist())]
    regions = [[*region, 0, 0] for region in record.get("ignore_regions", [])]
    return np.asarray(objects + regions, dtype=np.float64).reshape(-1, 6)


def official_inputs(dataset_dicts: Sequence[Mapping], predictions: Sequence[Mapping],
                    annotation_root: Optional[str] = None) -> List[tuple]:
    """The per-image input of :func:`evaluate_official` for a dataset and its predictions.

    Images are ordered as the toolkit lists them (by annotation file name,
    ``<image_id>.txt``); each prediction becomes its result lines as the writer writes them
    (:func:`result_lines`), so evaluating written files gives the same numbers. An image
    without a prediction has no detections.

    Returns:
        ``[(gt, det, height, width), ...]``: ``(G, 6)`` annotation and ``(D, 6)`` result
        lines per image.
    """
    by_image = {}
    for prediction in predictions:
        if prediction["image_id"] in by_image:
            raise ValueError(f"Image {prediction['image_id']!r} has two predictions.")
        by_image[prediction["image_id"]] = result_lines(
            prediction["boxes"], prediction["scores"], prediction["classes"])
    records = sorted(dataset_dicts, key=lambda r: f"{r['image_id']}.txt")
    return [(_ground_truth_lines(r, annotation_root),
             by_image.get(r["image_id"], np.zeros((0, 6))), r["height"], r["width"])
            for r in records]


class VisDroneEvaluator(DatasetEvaluator):
    """Box AP on a VisDrone-style dataset: COCO API with the VisDrone ignore rule, and the
    official toolkit's metrics.

    Used like Detectron2's ``COCOEvaluator`` (``reset`` / ``process`` / ``evaluate``, e.g.
    through ``inference_on_dataset``). The ground truth is ``DatasetCatalog.get(dataset_name)``
    (Detectron2 dicts with ``ignore_regions``); for the official metrics the annotation
    files themselves when the dataset's metadata has ``annotation_root`` (as
    :func:`register_visdrone_split` sets it). The class names are the dataset's
    ``thing_classes``. ``evaluate()`` returns ``{"bbox": COCO-API metrics (see
    :mod:`.coco_protocol`), "visdrone": official metrics (see :mod:`.official_protocol`)}``.
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
            ignore_rule: for the COCO-API metrics, remove ground truth and detections with
                >= 50% of their area inside ignored regions before matching, as the VisDrone
                toolkit does (the official metrics always apply the toolkit's own rule).
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
        """Evaluate the stored predictions; return ``{"bbox": COCO-API metrics, "visdrone":
        official metrics}`` (in the main process; the other processes return ``{}``), or
        ``{}`` if no image was processed."""
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

        dataset = DatasetCatalog.get(self._dataset_name)
        start = time.perf_counter()
        coco_eval, counts = run_coco_eval(
            dataset, predictions, len(self._class_names),
            ignore_rule=self._ignore_rule, max_dets=self._max_dets)
        metrics = derive_metrics(coco_eval, self._class_names, self._max_dets)
        self._log_report(metrics, counts, time.perf_counter() - start)

        start = time.perf_counter()
        annotation_root = MetadataCatalog.get(self._dataset_name).get("annotation_root")
        inputs = official_inputs(dataset, predictions, annotation_root)
        official, official_counts = evaluate_official(inputs, self._class_names)
        self._logger.info(
            f"{OFFICIAL_PROTOCOL} ({time.perf_counter() - start:.1f} s, ground truth from "
            f"{annotation_root or 'the dataset dicts'}):\n"
            + official_report(official, self._class_names))
        if self._output_dir:
            self._save_metrics(metrics, counts, official, official_counts)
        return OrderedDict(bbox=metrics, visdrone=official)

    def _save_predictions(self, predictions: List[Mapping]):
        """Write ``coco_instances_results.json`` and, if asked, the official result files."""
        PathManager.mkdirs(self._output_dir)
        path = os.path.join(self._output_dir, "coco_instances_results.json")
        self._logger.info(f"Saving results to {path}")
        results = coco_results(predictions, [p["image_id"] for p in predictions])
        with PathManager.open(path, "w") as f:
            json.dump(results, f)
        if self._write_official_txt:
            folder = os.path.join(self._output_dir, "visdrone_results")
            write_visdrone_results(predictions, folder)
            self._logger.info(f"Wrote {len(predictions)} VisDrone result files to {folder}")

    def _save_metrics(self, metrics: Mapping[str, float], counts: Mapping[str, int],
                      official: Mapping[str, float], official_counts: Mapping):
        """Write ``visdrone_metrics.json``: metrics (NaN as null), protocols and box counts."""
        report = {
            "dataset": self._dataset_name,
            "ignore_rule": self._ignore_rule,
            "protocols": {("" if m == self._max_dets[0] else f"@{m}"): protocol_description(m)
                          for m in self._max_dets},
            "counts": dict(counts),
            "bbox": {k: (None if math.isnan(v) else v) for k, v in metrics.items()},
            "visdrone_protocol": OFFICIAL_PROTOCOL,
            "visdrone_counts": dict(official_counts),
            "visdrone": {k: (None if math.isnan(v) else v) for k, v in official.items()},
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
            keys = [key + suffix for key, _, _ in AP_METRICS]
            if limit == primary:
                keys += [f"AR@{m}" for m in RECALL_LIMITS]
            keys += [f"AR@{limit}"] + [key + suffix for key, _ in AR_AREAS]
            log(f"Bbox metrics [%], {protocol_description(limit)}:\n"
                + create_small_table({k: metrics[k] for k in keys}))
        table = per_class_table(metrics, self._class_names)
        log(f"Per-category bbox AP [%], {protocol_description(primary)}; nan where a class "
            "has no ground truth:\n" + table)
        if any(math.isnan(v) for v in metrics.values()):
            log("Some metrics cannot be computed (no ground truth in their range): shown as nan.")


def build_evaluator(cfg, dataset_name: str, output_folder: str) -> DatasetEvaluator:
    """The evaluator of a dataset, for ``train_net.py``.

    ``VisDroneEvaluator`` (ignore rule from ``cfg.TEST.VISDRONE_IGNORE_RULE``, default True;
    official result files written into ``output_folder/visdrone_results/``, for the toolkit,
    the evaluation server or ``tools/evaluate_visdrone.py``) for datasets whose metadata has
    ``evaluator_type == "visdrone"``, else Detectron2's
    ``COCOEvaluator`` with the official COCO API (its fast implementation needs compiled
    Detectron2 ops).
    """
    if MetadataCatalog.get(dataset_name).get("evaluator_type") == "visdrone":
        return VisDroneEvaluator(dataset_name, output_folder,
                                 ignore_rule=bool(cfg.TEST.get("VISDRONE_IGNORE_RULE", True)),
                                 write_official_txt=bool(output_folder))
    return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)
