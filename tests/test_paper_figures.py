"""Tests of the paper's result pictures (PR curves, detections side by side) on tiny inputs:
the curve read from COCOeval's precision array, the COCO-results reader, the drawings, and
``tools/demo.py``'s picture step on a 4-image dataset with made-up detections."""
import json
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from zoominnet_d2.data.synthetic import generate_dataset
from zoominnet_d2.data.visdrone import register_visdrone_split
from zoominnet_d2.evaluation.coco_protocol import (average_precision, coco_results,
                                                   precision_recall_curve, run_coco_eval)
from zoominnet_d2.visualization.paper_figures import (_as_annotations, draw_detection_row,
                                                      load_coco_detections, plot_pr_curves,
                                                      pr_curves)

REPO = Path(__file__).resolve().parents[1]


def record(image_id, boxes, classes, regions=()):
    """A 100 x 100 dataset dict with XYWH boxes."""
    return {"file_name": f"/nonexistent/{image_id}.jpg", "image_id": image_id, "height": 100,
            "width": 100, "ignore_regions": [list(map(float, r)) for r in regions],
            "annotations": [{"bbox": list(map(float, b)), "bbox_mode": BoxMode.XYWH_ABS,
                             "category_id": c, "iscrowd": 0} for b, c in zip(boxes, classes)]}


def prediction(image_id, boxes, scores, classes):
    return {"image_id": image_id, "boxes": np.array(boxes, float).reshape(-1, 4),
            "scores": np.array(scores, float), "classes": np.array(classes, np.int64)}


DICTS = [record("a", [[10, 10, 10, 10], [50, 50, 40, 40]], [0, 3]),
         record("b", [[20, 20, 8, 8]], [0], regions=[[70, 70, 30, 30]])]
# class 0: one hit (0.9), a false positive (0.8), one miss; class 3: a hit; one detection
# in the ignored region of "b", which the ignore rule removes.
PREDICTIONS = [prediction("a", [[10, 10, 10, 10], [60, 0, 10, 10], [50, 50, 40, 40]],
                          [0.9, 0.8, 0.7], [0, 0, 3]),
               prediction("b", [[75, 75, 10, 10]], [0.95], [0])]


def test_curve_is_cocoevals_precision_and_its_mean_is_the_ap():
    coco_eval, counts = run_coco_eval(DICTS, PREDICTIONS, 10, max_dets=(100,))
    assert counts["detections_ignored"] == 1
    for area in ("all", "small", "medium", "large"):
        recall, precision = precision_recall_curve(coco_eval, 100, iou=0.5, area=area)
        assert recall.shape == precision.shape == (101,)
        ap = average_precision(coco_eval, 100, iou=0.5, area=area)
        if np.isnan(ap):
            assert np.isnan(precision).all(), area  # no ground truth of that size
        else:
            assert np.nanmean(precision) * 100 == pytest.approx(ap)
    recall, precision = precision_recall_curve(coco_eval, 100, area="all")
    # class 0 reaches recall 1/2 at precision 1 (then the false positive), class 3 recall 1.
    assert precision[recall <= 0.5] == pytest.approx(1.0)
    assert precision[recall > 0.5] == pytest.approx(0.5)  # class 0 contributes 0 there
    _, medium = precision_recall_curve(coco_eval, 100, area="medium")
    assert medium == pytest.approx(1.0)  # the 40 x 40 car, found


def test_load_coco_detections_round_trips_the_evaluator_file(tmp_path):
    path = tmp_path / "coco_instances_results.json"
    path.write_text(json.dumps(coco_results(PREDICTIONS, ["a", "b"])))
    loaded = load_coco_detections(str(path))
    assert sorted(loaded) == ["a", "b"]
    for p in PREDICTIONS:
        got = loaded[p["image_id"]]
        for key in ("boxes", "scores", "classes"):
            np.testing.assert_allclose(got[key], p[key])


def test_threshold_applies_to_every_panel_and_pictures_are_written(tmp_path):
    assert [a["category_id"] for a in _as_annotations(PREDICTIONS[0], 0.75)] == [0, 0]
    assert _as_annotations(prediction("x", [], [], []), 0.3) == []
    image = np.full((100, 100, 3), 120, np.uint8)
    out = tmp_path / "row.png"
    draw_detection_row(image, DICTS[1], [("model A", PREDICTIONS[1]), ("model B", prediction(
        "b", [], [], []))], str(out), threshold=0.3, scale=1.0)
    with Image.open(out) as im:
        assert im.width > 2.5 * im.height  # three panels side by side
    curves = {"A": pr_curves(DICTS, PREDICTIONS, 10), "B": pr_curves(DICTS, [], 10)}
    plot_pr_curves(curves, str(tmp_path / "pr.png"), "tiny")
    with Image.open(tmp_path / "pr.png") as im:
        assert im.format == "PNG" and im.width > 2 * im.height


@pytest.fixture
def demo_module(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "tools"))
    sys.modules.pop("demo", None)
    import demo

    return demo


def test_demo_draws_pr_curves_and_the_first_val_images(tmp_path, demo_module, monkeypatch):
    data = tmp_path / "synthdrone"
    generate_dataset(data, num_train=0, num_val=4, size=64, seed=0)
    name = f"test_figures_{uuid.uuid4().hex[:8]}"
    split = data / "VisDrone2019-DET-val"
    register_visdrone_split(name, split / "images", split / "annotations")
    monkeypatch.setattr(demo_module, "DATASET", name)
    try:
        dicts = DatasetCatalog.get(name)
        perfect = [prediction(d["image_id"], [a["bbox"] for a in d["annotations"]],
                              [0.9] * len(d["annotations"]),
                              [a["category_id"] for a in d["annotations"]]) for d in dicts]
        out = tmp_path / "out"
        for stage, preds in (("tnet", perfect), ("la", []), ("cskd_la", perfect)):
            folder = out / stage / "inference" / name
            folder.mkdir(parents=True)
            ids = [p["image_id"] for p in preds]
            (folder / "coco_instances_results.json").write_text(json.dumps(coco_results(preds, ids)))
        stages = [s for s in demo_module.STAGES if s.name != "snet"]
        demo_module.draw_results(str(out), stages)
        assert (out / "pr_curves.png").is_file()
        pictures = sorted(p.stem for p in (out / "detections").glob("*.png"))
        assert pictures == sorted(d["image_id"] for d in dicts)[:demo_module.NUM_PICTURES]
        curves = pr_curves(dicts, perfect, 10)
        assert np.nanmean(curves["all"][1]) == pytest.approx(1.0)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
