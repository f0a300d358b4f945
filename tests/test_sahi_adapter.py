"""The SAHI adapter (zoominnet_d2/deploy/sahi_model.py) on a real frame: SAHI's sliced
prediction of a project model against the plain predictor run on the same pixels."""
import cv2
import numpy as np
import pytest
import torch
from detectron2.structures import Instances
from torchvision.ops import batched_nms

from deploy_helpers import TINY, assert_same_detections, save_tiny_student, tiny_cfg
from zoominnet_d2.deploy import TorchPredictor
from zoominnet_d2.deploy.sahi_model import ZoomInSahiModel, sliced_instances

CONFIG = "configs/synth/snet.yaml"  # a 128 px square test resize


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    cfg = tiny_cfg(CONFIG)
    weights = save_tiny_student(cfg, tmp_path_factory.mktemp("sahi") / "student.pth")
    model = ZoomInSahiModel(model_path=weights, config_path=CONFIG, opts=TINY,
                            confidence_threshold=cfg.MODEL.RETINANET.SCORE_THRESH_TEST, device="cpu")
    return model, TorchPredictor(cfg, weights)


@pytest.fixture
def frame(visdrone_real_root):
    """A 128 x 256 BGR region of the first real frame."""
    path = sorted(visdrone_real_root.rglob("images/*.jpg"))[0]
    image = cv2.imread(str(path))
    return np.ascontiguousarray(image[200:328, 300:556])


def shifted(instances: Instances, dx: int, size) -> Instances:
    out = Instances(size, scores=instances.scores, pred_classes=instances.pred_classes)
    out.pred_boxes = instances.pred_boxes.clone()
    out.pred_boxes.tensor[:, 0::2] += dx
    return out


def merged(instances: Instances, threshold: float) -> Instances:
    """Class-wise NMS of torchvision: the reference for SAHI's merging."""
    return instances[batched_nms(instances.pred_boxes.tensor, instances.scores, instances.pred_classes, threshold)]


def test_one_slice_is_the_plain_predictor_merged(adapter, frame):
    """A slice as large as the image: SAHI returns the predictor's detections, merged by
    class-wise NMS at the model's threshold (it removes boxes that clipping to the image
    made equal). Channel order and category ids are handed over right, or they would differ."""
    model, predictor = adapter
    expected = merged(predictor(frame), model.model.cfg.MODEL.RETINANET.NMS_THRESH_TEST)
    assert len(expected) > 10
    found = sliced_instances(model, frame[:, :, ::-1].copy(), slice_size=256, overlap=0.0, full_image_pass=False)
    assert_same_detections(expected, found)


def test_two_slices_are_the_halves_merged_by_nms(adapter, frame):
    """Two 128 px slices without overlap cover the 128 x 256 region: the result is the
    predictor's detections on each half, shifted into the region, merged by class-wise NMS
    at the model's threshold (torchvision's NMS as the reference for SAHI's)."""
    model, predictor = adapter
    left, right = predictor(frame[:, :128].copy()), predictor(frame[:, 128:].copy())
    both = Instances.cat([shifted(left, 0, frame.shape[:2]), shifted(right, 128, frame.shape[:2])])
    found = sliced_instances(model, frame[:, :, ::-1].copy(), slice_size=128, overlap=0.0, full_image_pass=False)
    assert len(left) > 0 and len(right) > 0
    assert_same_detections(merged(both, model.model.cfg.MODEL.RETINANET.NMS_THRESH_TEST), found)
    assert found.pred_boxes.tensor[:, 0].max() > 128 and found.pred_boxes.tensor[:, 2].min() < 128


def test_max_detections_keeps_the_highest_scores(adapter, frame):
    model, _ = adapter
    everything = sliced_instances(model, frame[:, :, ::-1].copy(), 128, 0.0, full_image_pass=True)
    top = sliced_instances(model, frame[:, :, ::-1].copy(), 128, 0.0, full_image_pass=True, max_detections=5)
    assert len(everything) > 5 and len(top) == 5
    assert torch.equal(top.scores, torch.sort(everything.scores, descending=True).values[:5])


def test_category_names_are_visdrone_classes(adapter):
    model, _ = adapter
    assert model.category_mapping["0"] == "pedestrian" and model.category_mapping["9"] == "motor"
