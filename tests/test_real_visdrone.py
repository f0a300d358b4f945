"""Evaluation and inference on real VisDrone-DET images (../shared/data/visdrone_real).

Skipped where the folder is absent (it is not part of the repository). The images are dense
1920x1080 / 1360x765 / 960x540 frames with hundreds of boxes and ignored regions.
"""
import contextlib
import io
import json

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from zoominnet_d2 import add_zoominnet_config
from zoominnet_d2.data.cross_scale_mapper import ZoomInDatasetMapper
from zoominnet_d2.data.visdrone import register_visdrone_split
from zoominnet_d2.evaluation import VisDroneEvaluator

NUM_IMAGES = 12


@pytest.fixture
def real_train(visdrone_real_root):
    """The first NUM_IMAGES real train images, registered as a dataset for the test."""
    name = "test_visdrone_real_subset"
    split = visdrone_real_root / "train"
    register_visdrone_split(name + "_all", split / "images", split / "annotations")
    DatasetCatalog.register(name, lambda: DatasetCatalog.get(name + "_all")[:NUM_IMAGES])
    MetadataCatalog.get(name).set(**{k: v for k, v in MetadataCatalog.get(name + "_all").as_dict().items()
                                     if k != "name"})
    yield name
    for n in (name, name + "_all"):
        DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)


def noisy_outputs(dicts, seed=0):
    """Model-like outputs: each GT box jittered by a few px, random scores, some false
    positives (a few of them inside ignored regions)."""
    rng = np.random.default_rng(seed)
    inputs, outputs = [], []
    for d in dicts:
        gt = np.array([a["bbox"] for a in d["annotations"]], dtype=np.float64).reshape(-1, 4)
        classes = np.array([a["category_id"] for a in d["annotations"]], dtype=np.int64)
        boxes = gt + rng.normal(0, 1.5, gt.shape)
        fp = np.column_stack([rng.uniform(0, d["width"] - 40, 30), rng.uniform(0, d["height"] - 40, 30),
                              rng.uniform(5, 40, 30), rng.uniform(5, 40, 30)])
        regions = np.array(d["ignore_regions"], dtype=np.float64).reshape(-1, 4)[:5]
        boxes = np.concatenate([boxes, fp, regions])
        classes = np.concatenate([classes, rng.integers(0, 10, 30 + len(regions))])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], 1.0)
        scores = rng.uniform(0.05, 1.0, len(boxes))
        xyxy = np.column_stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]])
        inst = Instances((d["height"], d["width"]), pred_boxes=Boxes(torch.tensor(xyxy, dtype=torch.float32)),
                         scores=torch.tensor(scores, dtype=torch.float32),
                         pred_classes=torch.tensor(classes))
        inputs.append({"image_id": d["image_id"], "file_name": d["file_name"]})
        outputs.append({"instances": inst})
    return inputs, outputs


def direct_pycocotools(dicts, outputs):
    """AP etc. from pycocotools called directly on GT / result JSON written here."""
    images, anns, results = [], [], []
    for i, (d, out) in enumerate(zip(dicts, outputs)):
        images.append({"id": i, "height": d["height"], "width": d["width"], "file_name": d["file_name"]})
        for a in d["annotations"]:
            x, y, w, h = a["bbox"]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": a["category_id"] + 1,
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        inst = out["instances"]
        for box, score, cls in zip(inst.pred_boxes.tensor.tolist(), inst.scores.tolist(), inst.pred_classes.tolist()):
            results.append({"image_id": i, "category_id": cls + 1, "score": score,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    gt = COCO()
    gt.dataset = json.loads(json.dumps({"images": images, "annotations": anns,
                                        "categories": [{"id": k + 1, "name": str(k)} for k in range(10)]}))
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def evaluate(name, inputs, outputs, **kwargs):
    evaluator = VisDroneEvaluator(name, distributed=False, **kwargs)
    evaluator.reset()
    evaluator.process(inputs, outputs)
    return evaluator.evaluate()["bbox"]


def test_evaluator_matches_pycocotools_on_real_images(real_train):
    dicts = DatasetCatalog.get(real_train)
    assert sum(len(d["annotations"]) for d in dicts) > 500  # dense real frames
    inputs, outputs = noisy_outputs(dicts)
    ours = evaluate(real_train, inputs, outputs, ignore_rule=False)
    stats = direct_pycocotools(dicts, outputs)
    keys = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    for key, value in zip(keys, stats[:6]):
        if value >= 0:
            assert ours[key] == pytest.approx(100 * value, abs=1e-6), key
    assert ours["ARs"] == pytest.approx(100 * stats[9], abs=1e-6)


def test_ignore_rule_on_real_images(real_train):
    """Perfect detections plus false positives exactly on ignored regions: under the VisDrone
    rule the false positives vanish (AP 100 wherever there is ground truth); without it they
    count against AP."""
    dicts = DatasetCatalog.get(real_train)
    assert sum(len(d["ignore_regions"]) for d in dicts) > 0
    inputs, outputs = [], []
    for d in dicts:
        gt = np.array([a["bbox"] for a in d["annotations"]], dtype=np.float32).reshape(-1, 4)
        regions = np.array(d["ignore_regions"], dtype=np.float32).reshape(-1, 4)
        # Ground truth that lies in ignored regions is removed too; keep the rest perfect.
        boxes = np.concatenate([gt, regions])
        xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        classes = [a["category_id"] for a in d["annotations"]] + [3] * len(regions)
        scores = [0.5] * len(gt) + [1.0] * len(regions)  # the ignored ones rank first
        inputs.append({"image_id": d["image_id"]})
        outputs.append({"instances": Instances(
            (d["height"], d["width"]), pred_boxes=Boxes(torch.from_numpy(xyxy)),
            scores=torch.tensor(scores), pred_classes=torch.tensor(classes))})
    with_rule = evaluate(real_train, inputs, outputs, ignore_rule=True, max_dets=(500,))
    without = evaluate(real_train, inputs, outputs, ignore_rule=False, max_dets=(500,))
    assert with_rule["AP50"] == pytest.approx(100.0)
    assert without["AP50"] < with_rule["AP50"]


def test_tiny_model_inference_and_evaluation_on_real_images(real_train, tmp_path):
    """The whole inference path on dense 1920x1080 frames: square resize, model, rescale to
    the original size, VisDrone evaluation with the ignore rule (an untrained model: only the
    plumbing and the report are checked)."""
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file("configs/synth/la.yaml")
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.RESNETS.STEM_OUT_CHANNELS", 8,
                         "MODEL.RESNETS.RES2_OUT_CHANNELS", 8, "MODEL.FPN.OUT_CHANNELS", 16,
                         "MODEL.RETINANET.SCORE_THRESH_TEST", 0.0, "DATALOADER.NUM_WORKERS", 0])
    model = build_model(cfg).eval()
    loader = build_detection_test_loader(cfg, real_train, mapper=ZoomInDatasetMapper(cfg, is_train=False))
    evaluator = VisDroneEvaluator(real_train, str(tmp_path), distributed=False)
    with contextlib.redirect_stdout(io.StringIO()):
        results = inference_on_dataset(model, loader, evaluator)["bbox"]
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "ARs", "ARm", "ARl", "AP@500", "AP-car"):
        assert key in results
    report = json.loads((tmp_path / "visdrone_metrics.json").read_text())
    assert report["ignore_rule"] is True
    # Every annotation of the 12 frames reaches the evaluation (the rule itself: test above).
    assert report["counts"]["gt"] == sum(len(d["annotations"]) for d in DatasetCatalog.get(real_train))
    predictions = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert predictions, "an untrained model with threshold 0 still predicts boxes"
    widths = {d["image_id"]: d["width"] for d in DatasetCatalog.get(real_train)}
    # Boxes come back in original-image coordinates (1920 px wide frames), not 128 px ones.
    assert max(p["bbox"][0] + p["bbox"][2] for p in predictions) > 256
    assert all(p["bbox"][0] <= widths[p["image_id"]] + 1 for p in predictions)
