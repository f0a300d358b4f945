"""Tests of zoominnet_d2.evaluation: the VisDrone ignore rule, COCO-API metrics checked against
pycocotools called directly, maxDets=500, the saved files and the official result writer.
"""
import zoominnet_d2  # noqa: F401  (compat fixes, before any Detectron2 import)

import contextlib
import copy
import io
import json
import logging
import math
import os
import uuid

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import Boxes, BoxMode, Instances

from zoominnet_d2.evaluation import (
    VisDroneEvaluator,
    build_evaluator,
    format_visdrone_lines,
    ignored_area,
    in_ignored_regions,
    write_visdrone_results,
)

CLASSES = ["pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle",
           "awning-tricycle", "bus", "motor"]
HEIGHT, WIDTH = 600, 800
AP_KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl"]


# ----------------------------------------------------------------------------- helpers
def make_record(image_id, boxes, classes, regions=(), height=HEIGHT, width=WIDTH):
    """A Detectron2 dict as ``load_visdrone`` produces it (boxes XYWH)."""
    return {
        "file_name": f"/nonexistent/{image_id}.jpg",
        "image_id": image_id,
        "height": height,
        "width": width,
        "annotations": [
            {"bbox": [float(v) for v in box], "bbox_mode": BoxMode.XYWH_ABS,
             "category_id": int(cls), "iscrowd": 0, "truncation": 0, "occlusion": 0}
            for box, cls in zip(boxes, classes)
        ],
        "ignore_regions": [[float(v) for v in region] for region in regions],
    }


def make_output(boxes_xywh, scores, classes, height=HEIGHT, width=WIDTH):
    """A model output ``{"instances": Instances}`` (boxes XYXY) from XYWH boxes."""
    boxes = torch.as_tensor(np.asarray(boxes_xywh, dtype=np.float32).reshape(-1, 4))
    instances = Instances((height, width))
    instances.pred_boxes = Boxes(torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1))
    instances.scores = torch.as_tensor(np.asarray(scores, dtype=np.float32).reshape(-1))
    instances.pred_classes = torch.as_tensor(np.asarray(classes, dtype=np.int64).reshape(-1))
    return {"instances": instances}


@pytest.fixture
def register():
    """Register tiny datasets under unique names; remove them after the test."""
    names = []

    def _register(records, evaluator_type="visdrone"):
        name = f"test_visdrone_eval_{uuid.uuid4().hex[:10]}"
        DatasetCatalog.register(name, lambda: copy.deepcopy(records))
        MetadataCatalog.get(name).set(thing_classes=list(CLASSES), evaluator_type=evaluator_type)
        names.append(name)
        return name

    yield _register
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def run_evaluator(name, detections, **kwargs):
    """Feed ``{image_id: (boxes XYWH, scores, classes)}`` through a VisDroneEvaluator."""
    evaluator = VisDroneEvaluator(name, **kwargs)
    evaluator.reset()
    for image_id, (boxes, scores, classes) in detections.items():
        evaluator.process([{"image_id": image_id, "file_name": f"/nonexistent/{image_id}.jpg"}],
                          [make_output(boxes, scores, classes)])
    return evaluator.evaluate()


def perfect_detections(records, score=1.0):
    """Every ground-truth box detected with its class."""
    detections = {}
    for record in records:
        anns = record["annotations"]
        detections[record["image_id"]] = (
            [a["bbox"] for a in anns], [score] * len(anns), [a["category_id"] for a in anns])
    return detections


def sized_record(image_id="img0", regions=()):
    """Small (16x16), medium (48x48) and large (128x128) objects of classes 0, 3 and 8."""
    boxes = [[10, 10, 16, 16], [40, 10, 16, 16], [10, 100, 48, 48], [100, 100, 48, 48],
             [200, 300, 128, 128], [600, 20, 128, 128]]
    classes = [0, 3, 3, 8, 3, 0]
    return make_record(image_id, boxes, classes, regions)


def random_dataset(seed, n_images=6, n_gt=40, n_det=300, n_regions=3):
    """Random integer boxes of all COCO sizes, noisy detections and ignored regions.

    Half the objects are cars, as in VisDrone, so that an image has > 100 car detections
    (COCO's maxDets is per image and class). Coordinates are integers so that float32 (the
    model's outputs) and JSON agree exactly.
    """
    rng = np.random.default_rng(seed)
    class_prob = np.full(len(CLASSES), 0.5 / (len(CLASSES) - 1))
    class_prob[CLASSES.index("car")] = 0.5
    records, detections = [], {}
    for i in range(n_images):
        wh = np.exp(rng.uniform(np.log(4), np.log(160), (n_gt, 2))).round().astype(int)
        xy = rng.integers(0, [WIDTH, HEIGHT], (n_gt, 2)) % ([WIDTH, HEIGHT] - wh)
        gt = np.hstack([xy, wh])
        gt_cls = rng.choice(len(CLASSES), n_gt, p=class_prob)
        regions = np.hstack([rng.integers(0, [WIDTH - 200, HEIGHT - 200], (n_regions, 2)),
                             rng.integers(40, 200, (n_regions, 2))])
        records.append(make_record(f"img{i:04d}", gt, gt_cls, regions))

        source = rng.integers(0, n_gt, n_det)
        det = gt[source] + rng.integers(-4, 5, (n_det, 4))
        det[:, 2:] = np.maximum(det[:, 2:], 2)
        noise = rng.random(n_det) < 0.2  # some pure false positives anywhere
        det[noise, :2] = rng.integers(0, 600, (noise.sum(), 2))
        det_cls = np.where(rng.random(n_det) < 0.8, gt_cls[source],
                           rng.integers(0, len(CLASSES), n_det))
        scores = rng.random(n_det).round(4)
        detections[f"img{i:04d}"] = (det, scores, det_cls)
    return records, detections


def raster_in_ignored(boxes, regions):
    """Reference for the ignore rule on integer boxes: paint the regions into a pixel map."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.int64)
    for x, y, w, h in np.asarray(regions, dtype=int).reshape(-1, 4):
        mask[y:y + h, x:x + w] = 1
    return np.array([mask[y:y + h, x:x + w].sum() >= 0.5 * w * h
                     for x, y, w, h in np.asarray(boxes, dtype=int).reshape(-1, 4)], dtype=bool)


def pycocotools_stats(tmp_path, records, detections, max_dets=(1, 10, 100), cat_ids=None,
                      ignore_rule=False):
    """COCOeval.summarize() stats, computed from GT / result JSON files written here."""
    images, gt_anns, results = [], [], []
    for index, record in enumerate(records):
        image_id = 1000 + index  # ids of its own, unrelated to the evaluator's
        images.append({"id": image_id, "height": record["height"], "width": record["width"],
                       "file_name": record["file_name"]})
        boxes = np.array([a["bbox"] for a in record["annotations"]]).reshape(-1, 4)
        drop = raster_in_ignored(boxes, record["ignore_regions"]) if ignore_rule \
            else np.zeros(len(boxes), dtype=bool)
        for ann, box, dropped in zip(record["annotations"], boxes, drop):
            if not dropped:
                gt_anns.append({"id": len(gt_anns) + 1, "image_id": image_id,
                                "category_id": ann["category_id"] + 1, "bbox": box.tolist(),
                                "area": float(box[2] * box[3]), "iscrowd": 0})
        det, scores, classes = detections[record["image_id"]]
        det = np.asarray(det).reshape(-1, 4)
        drop = raster_in_ignored(det, record["ignore_regions"]) if ignore_rule \
            else np.zeros(len(det), dtype=bool)
        for box, score, cls, dropped in zip(det, scores, classes, drop):
            if not dropped:
                results.append({"image_id": image_id, "category_id": int(cls) + 1,
                                "bbox": [float(v) for v in box], "score": float(score)})
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "res.json"
    gt_path.write_text(json.dumps({"images": images, "annotations": gt_anns, "categories":
                                   [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)]}))
    res_path.write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(str(res_path)), "bbox")
        coco_eval.params.maxDets = list(max_dets)
        if cat_ids is not None:
            coco_eval.params.catIds = cat_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    stats = [float(s * 100) if s >= 0 else float("nan") for s in coco_eval.stats]
    if 100 not in max_dets:
        # summarize() computes stats[0] at a literal maxDets=100 (and the others at
        # maxDets[2]); read it at maxDets[2] from the accumulated precision instead.
        precision = coco_eval.eval["precision"][:, :, :, 0, 2]
        stats[0] = float(np.mean(precision[precision > -1]) * 100)
    return stats


def assert_same(ours, reference):
    assert ours == pytest.approx(reference, abs=1e-9, nan_ok=True)


# ----------------------------------------------------------------------------- ignore rule
def test_ignore_rule_threshold_is_half_of_own_area_inclusive():
    region = [[100, 100, 100, 100]]
    boxes = [[120, 120, 20, 20],  # inside
             [90, 120, 20, 20],  # exactly 50% inside
             [88, 120, 20, 20],  # 40% inside
             [300, 300, 20, 20],  # outside
             [0, 0, 400, 400]]  # contains the region, which is < 50% of the box
    np.testing.assert_allclose(ignored_area(boxes, region), [400, 200, 160, 0, 10000])
    assert in_ignored_regions(boxes, region).tolist() == [True, True, False, False, False]


def test_ignore_rule_uses_the_union_of_regions_like_the_toolkit():
    # 30% of the box in each of two regions: 60% in their union (the toolkit's ignore map),
    # so it is dropped although no single region holds half of it.
    two_regions = [[0, 0, 100, 100], [120, 0, 100, 100]]
    np.testing.assert_allclose(ignored_area([[85, 10, 50, 10]], two_regions), [300])
    assert in_ignored_regions([[85, 10, 50, 10]], two_regions).tolist() == [True]
    assert in_ignored_regions([[85, 10, 50, 10]], two_regions[:1]).tolist() == [False]
    # Overlapping regions are not counted twice: 40% inside all three copies stays 40%.
    overlapping = [[0, 0, 100, 100], [0, 0, 100, 100], [50, 0, 50, 100]]
    np.testing.assert_allclose(ignored_area([[90, 0, 25, 10]], overlapping), [100])
    assert in_ignored_regions([[90, 0, 25, 10]], overlapping).tolist() == [False]


def test_ignore_rule_edge_cases():
    assert in_ignored_regions(np.zeros((0, 4)), [[0, 0, 10, 10]]).shape == (0,)
    assert in_ignored_regions([[0, 0, 5, 5]], []).tolist() == [False]
    # Degenerate boxes: dropped when their centre is inside a region.
    assert in_ignored_regions([[5, 5, 0, 0], [50, 5, 0, 4], [5, 5, 4, 0]],
                              [[0, 0, 10, 10]]).tolist() == [True, False, True]


def test_ignore_rule_matches_a_pixel_map_on_random_boxes():
    rng = np.random.default_rng(0)
    for _ in range(20):
        # Inside the image, where the pixel map is exact.
        regions = np.hstack([rng.integers(0, 450, (8, 2)), rng.integers(10, 150, (8, 2))])
        boxes = np.hstack([rng.integers(0, 450, (300, 2)), rng.integers(1, 150, (300, 2))])
        mask = np.zeros((HEIGHT, WIDTH))
        for x, y, w, h in regions:
            mask[y:y + h, x:x + w] = 1
        covered = [mask[y:y + h, x:x + w].sum() for x, y, w, h in boxes]
        np.testing.assert_allclose(ignored_area(boxes, regions), covered)
        assert (in_ignored_regions(boxes, regions) == raster_in_ignored(boxes, regions)).all()


# ----------------------------------------------------------------------------- metrics
def test_perfect_predictions_give_ap_100_at_both_max_dets(register):
    records = [sized_record("a"), sized_record("b")]
    metrics = run_evaluator(register(records), perfect_detections(records))["bbox"]
    for key in AP_KEYS + ["AR@10", "AR@100", "ARs", "ARm", "ARl"]:
        assert metrics[key] == pytest.approx(100.0), key
    for key in ["AP@500", "AP50@500", "AP75@500", "APs@500", "APm@500", "APl@500", "AR@500",
                "ARs@500", "ARm@500", "ARl@500"]:
        assert metrics[key] == pytest.approx(100.0), key
    for k, name in enumerate(CLASSES):
        if k in (0, 3, 8):
            assert metrics[f"AP-{name}"] == pytest.approx(100.0)
        else:  # no ground truth of the class
            assert math.isnan(metrics[f"AP-{name}"])


def test_detection_in_ignored_region_is_no_false_positive_with_the_rule(register):
    region = [400, 300, 200, 200]
    record = sized_record("a", regions=[region])
    boxes, scores, classes = perfect_detections([record], score=0.9)["a"]
    # Two confident false positives: fully inside the region, and exactly half inside.
    detections = {"a": (boxes + [[450, 350, 40, 40], [380, 320, 40, 40]],
                        scores + [1.0, 1.0], classes + [3, 3])}
    name = register([record])
    with_rule = run_evaluator(name, detections)["bbox"]
    without_rule = run_evaluator(name, detections, ignore_rule=False)["bbox"]
    assert with_rule["AP"] == pytest.approx(100.0)
    assert with_rule["AP@500"] == pytest.approx(100.0)
    assert without_rule["AP"] < 99.0
    assert without_rule["AP-car"] < 99.0


def test_missed_ground_truth_in_ignored_region_is_no_miss_with_the_rule(register):
    region = [400, 300, 200, 200]
    base = sized_record("a")
    detections = perfect_detections([base])
    record = copy.deepcopy(base)
    record["ignore_regions"] = [region]
    record["annotations"].append(
        {"bbox": [420.0, 320.0, 30.0, 30.0], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 3,
         "iscrowd": 0, "truncation": 0, "occlusion": 0})  # never detected
    name = register([record])
    with_rule = run_evaluator(name, detections)["bbox"]
    without_rule = run_evaluator(name, detections, ignore_rule=False)["bbox"]
    assert with_rule["AP"] == pytest.approx(100.0)
    assert with_rule["AR@100"] == pytest.approx(100.0)
    assert without_rule["AP"] < 99.0
    assert without_rule["AR@100"] < 99.0


@pytest.mark.parametrize("ignore_rule", [False, True])
def test_metrics_equal_pycocotools_called_directly(register, tmp_path, ignore_rule):
    records, detections = random_dataset(seed=1)
    if ignore_rule:  # the rule must have something to do
        record = records[0]
        assert raster_in_ignored([a["bbox"] for a in record["annotations"]],
                                 record["ignore_regions"]).any()
        assert raster_in_ignored(detections[record["image_id"]][0],
                                 record["ignore_regions"]).any()
    metrics = run_evaluator(register(records), detections, ignore_rule=ignore_rule)["bbox"]

    stats = pycocotools_stats(tmp_path, records, detections, ignore_rule=ignore_rule)
    assert_same([metrics[k] for k in AP_KEYS], stats[0:6])
    assert_same([metrics[k] for k in ["AR@1", "AR@10", "AR@100", "ARs", "ARm", "ARl"]],
                stats[6:12])

    stats = pycocotools_stats(tmp_path, records, detections, max_dets=(1, 10, 500),
                              ignore_rule=ignore_rule)
    assert_same([metrics[k + "@500"] for k in AP_KEYS], stats[0:6])
    assert_same([metrics[k] for k in ["AR@500", "ARs@500", "ARm@500", "ARl@500"]],
                [stats[8], *stats[9:12]])
    assert metrics["AP@500"] != metrics["AP"]  # > 100 car detections per image

    for k, name in enumerate(CLASSES):
        stats = pycocotools_stats(tmp_path, records, detections, cat_ids=[k + 1],
                                  ignore_rule=ignore_rule)
        assert_same(metrics[f"AP-{name}"], stats[0])


def test_max_dets_500_counts_detections_beyond_100(register):
    grid = [[30 * (i % 15), 30 * (i // 15), 20, 20] for i in range(150)]
    record = make_record("crowd", grid, [3] * 150)
    detections = {"crowd": (grid, np.linspace(1.0, 0.5, 150), [3] * 150)}
    metrics = run_evaluator(register([record]), detections)["bbox"]
    assert metrics["AP"] < 100.0
    assert metrics["AR@100"] == pytest.approx(100.0 * 100 / 150)
    assert metrics["AP@500"] == pytest.approx(100.0)
    assert metrics["AR@500"] == pytest.approx(100.0)


def test_no_detections_give_ap_0_and_no_images_give_no_result(register):
    records = [sized_record("a")]
    name = register(records)
    metrics = run_evaluator(name, {"a": (np.zeros((0, 4)), [], [])})["bbox"]
    assert metrics["AP"] == 0.0 and metrics["AP@500"] == 0.0
    assert run_evaluator(name, {}) == {}


def test_prediction_for_unknown_image_is_an_error(register):
    name = register([sized_record("a")])
    with pytest.raises(ValueError, match="not in the dataset"):
        run_evaluator(name, {"zzz": ([[0, 0, 5, 5]], [1.0], [0])})


def test_report_names_the_protocols_and_the_ignore_rule(register, caplog):
    records = [sized_record("a")]
    name = register(records)
    logger = "zoominnet_d2.evaluation.visdrone_evaluation"
    with caplog.at_level(logging.INFO, logger=logger):
        run_evaluator(name, perfect_detections(records))
        run_evaluator(name, perfect_detections(records), ignore_rule=False)
    text = caplog.text
    assert "COCO API, maxDets=100 (paper protocol)" in text
    assert ("maxDets=500 (VisDrone toolkit's maxDets; note the official toolkit has no S/M/L "
            "split") in text
    assert "Bbox metrics [%], official VisDrone-DET toolkit protocol (AP at IoU" in text
    assert "Per-category bbox AP [%], official VisDrone-DET toolkit protocol" in text
    assert "VisDrone ignore rule applied" in text
    assert "VisDrone ignore rule NOT applied" in text
    assert "| pedestrian " in text and "nan" in text


# ----------------------------------------------------------------------------- outputs
def test_outputs_are_saved(register, tmp_path):
    region = [400, 300, 200, 200]
    records = [sized_record("a", regions=[region]), sized_record("b")]
    detections = perfect_detections(records, score=0.9)
    detections["a"] = (detections["a"][0] + [[450, 350, 40, 40]], detections["a"][1] + [0.95],
                       detections["a"][2] + [9])
    results = run_evaluator(register(records), detections, output_dir=str(tmp_path),
                            write_official_txt=True)
    metrics, metrics_visdrone = results["bbox"], results["visdrone"]

    results = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert len(results) == 13  # every prediction, also the one the rule removes
    assert {r["image_id"] for r in results} == {"a", "b"}
    assert {r["category_id"] for r in results} == {1, 4, 9, 10}

    saved = json.loads((tmp_path / "visdrone_metrics.json").read_text())
    assert saved["ignore_rule"] is True
    assert saved["counts"]["detections_ignored"] == 1
    assert saved["bbox"]["AP"] == pytest.approx(metrics["AP"])
    assert saved["bbox"]["AP-people"] is None  # NaN: no ground truth of the class
    assert "paper protocol" in saved["protocols"][""]

    folder = tmp_path / "visdrone_results"
    assert sorted(os.listdir(folder)) == ["a.txt", "b.txt"]
    lines = (folder / "a.txt").read_text().splitlines()
    # By descending score (the toolkit caps by line order); float32 values kept exactly.
    assert len(lines) == 7 and lines[0] == f"450,350,40,40,{float(np.float32(0.95))!r},10,-1,-1"
    assert saved["visdrone"]["AP"] == metrics_visdrone["AP"]
    assert saved["visdrone_counts"]["detections_in_ignored_regions"] == 1


def test_official_txt_writer(tmp_path):
    (tmp_path / "notes.md").write_text("keep me")
    predictions = [
        {"image_id": "0000001_00000_d_0000001",
         "boxes": np.array([[0.0, 1.0, 2.0, 3.0], [10.4, 20.6, 30.2, 40.7]], dtype=np.float32),
         "scores": np.array([0.1, 0.87654]), "classes": np.array([9, 0])},
        {"image_id": "empty", "boxes": np.zeros((0, 4)), "scores": np.zeros(0),
         "classes": np.zeros(0, dtype=np.int64)},
    ]
    paths = write_visdrone_results(predictions, str(tmp_path))
    assert sorted(os.path.basename(p) for p in paths) == ["0000001_00000_d_0000001.txt",
                                                           "empty.txt"]
    # Highest score first; decimals that read back as the same float64 (of the float32 boxes).
    lines = (tmp_path / "0000001_00000_d_0000001.txt").read_text().splitlines()
    assert lines == [
        "10.399999618530273,20.600000381469727,30.200000762939453,40.70000076293945,"
        "0.87654,1,-1,-1",
        "0,1,2,3,0.1,10,-1,-1"]
    values = np.array([[float(v) for v in line.split(",")[:4]] for line in lines])
    assert (values == predictions[0]["boxes"][::-1].astype(np.float64)).all()
    assert (tmp_path / "empty.txt").read_text() == ""
    assert (tmp_path / "notes.md").read_text() == "keep me"
    assert format_visdrone_lines([[1, 2, 3, 4]], [1.0], [4]) == ["1,2,3,4,1,5,-1,-1"]
    # Ties keep the given order.
    assert [line.split(",")[0] for line in format_visdrone_lines(
        [[1, 0, 1, 1], [2, 0, 1, 1], [3, 0, 1, 1]], [0.5, 0.7, 0.5], [0, 0, 0])] == ["2", "1", "3"]


def test_write_official_txt_needs_output_dir(register):
    with pytest.raises(ValueError, match="output_dir"):
        VisDroneEvaluator(register([sized_record()]), write_official_txt=True)


def test_build_evaluator(register, tmp_path):
    records = [sized_record("a")]
    visdrone, coco = register(records), register(records, evaluator_type="coco")
    cfg = get_cfg()  # without VISDRONE_IGNORE_RULE: the rule is on
    evaluator = build_evaluator(cfg, visdrone, str(tmp_path))
    assert isinstance(evaluator, VisDroneEvaluator) and evaluator._ignore_rule is True
    assert evaluator._write_official_txt is True
    cfg.TEST.VISDRONE_IGNORE_RULE = False
    assert build_evaluator(cfg, visdrone, str(tmp_path))._ignore_rule is False
    evaluator = build_evaluator(cfg, coco, str(tmp_path))
    assert isinstance(evaluator, COCOEvaluator) and evaluator._use_fast_impl is False
