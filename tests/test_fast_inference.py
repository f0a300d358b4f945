"""zoominnet_d2.modeling.fast_inference: the same detections as Detectron2's decoding, bit
for bit, whatever the scores (few or many candidates, ties, saturated scores)."""
from types import SimpleNamespace

import pytest
import torch
from detectron2.data import transforms as T
from detectron2.data.detection_utils import read_image
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.structures import Boxes

from deploy_helpers import synthetic_images, tiny_cfg, tiny_student
from zoominnet_d2.modeling import fast_inference
from zoominnet_d2.modeling.fast_inference import _distinct_top_candidates, decode_per_level, with_detectron2_decoding

COCODER = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0))


def assert_identical(a, b):
    assert a.image_size == b.image_size
    assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)
    assert torch.equal(a.scores, b.scores)
    assert torch.equal(a.pred_classes, b.pred_classes)


def reference(*args):
    # The Detectron2 method reads only box2box_transform from its model.
    return DenseDetector._decode_per_level_predictions(SimpleNamespace(box2box_transform=COCODER), *args)


def level(num_anchors=3000, num_classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_anchors, 2, generator=g) * 500
    anchors = Boxes(torch.cat([xy, xy + 8 + torch.rand(num_anchors, 2, generator=g) * 50], dim=1))
    deltas = torch.randn(num_anchors, 4, generator=g) * 0.2
    logits = torch.randn(num_anchors, num_classes, generator=g)
    return anchors, logits, deltas


@pytest.mark.parametrize("case", ["few", "many distinct", "tie at the k-th", "tie inside the top k",
                                  "saturated", "nan", "topk above all"])
def test_decode_per_level_equals_detectron2(case):
    anchors, logits, deltas = level(seed=len(case))
    thresh, topk = 0.05, 200
    if case == "few":
        logits -= 6.0  # ~30 of 30,000 scores above the threshold
    elif case == "tie at the k-th":
        top = logits.flatten().topk(topk + 1).indices
        logits.view(-1)[top[-2:]] = logits.view(-1)[top[-1]].item()  # k-th = (k+1)-th
    elif case == "tie inside the top k":
        top = logits.flatten().topk(10).indices
        logits.view(-1)[top[3]] = logits.view(-1)[top[4]].item()
    elif case == "saturated":
        logits *= 60.0  # many scores exactly 1.0, as with random R50 weights
    elif case == "nan":
        logits.view(-1)[::97] = float("nan")
    elif case == "topk above all":
        topk = logits.numel() + 1
    scores = logits.sigmoid()
    fast_path = _distinct_top_candidates(scores.flatten(), thresh, topk) is not None
    assert fast_path == (case == "many distinct")
    args = (anchors, scores, deltas, thresh, topk, (512, 512))
    assert_identical(reference(*args), decode_per_level(COCODER, *args))


def images(visdrone_root=None):
    found = synthetic_images(3, 128, seed=5)
    if visdrone_root is not None:
        for f in sorted((visdrone_root / "train" / "images").glob("*.jpg"))[:2]:
            image = read_image(str(f), format="BGR")
            found.append(T.Resize((128, 128)).get_transform(image).apply_image(image))
    return [torch.as_tensor(i.transpose(2, 0, 1).copy()).float() for i in found]


def same_model_detections(config, scale, topk, pictures, monkeypatch) -> int:
    """Detections of a tiny student with Detectron2's decoding and with the fast one are
    identical; returns on how many levels the fast path (no full sort) was taken."""
    taken = []

    def counted(*args):
        found = _distinct_top_candidates(*args)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(fast_inference, "_distinct_top_candidates", counted)
    cfg = tiny_cfg(config, "MODEL.RETINANET.TOPK_CANDIDATES_TEST", str(topk))
    model = tiny_student(cfg, seed=7)
    with torch.no_grad():
        model.head.cls_score.weight.mul_(scale)
        reference = with_detectron2_decoding(model)
        for image in pictures:
            expected = reference([{"image": image}])[0]["instances"]
            assert len(expected) > 0
            assert_identical(expected, model([{"image": image}])[0]["instances"])
    return sum(taken)


@pytest.mark.parametrize("config", ["configs/synth/la.yaml", "configs/synth/snet.yaml"])
@pytest.mark.parametrize("scale", [1.0, 3.0, 300.0])  # few, many, saturated candidates
def test_identical_detections_synthetic(config, scale, monkeypatch):
    fast_levels = same_model_detections(config, scale, topk=100, pictures=images(), monkeypatch=monkeypatch)
    if scale == 3.0:
        assert fast_levels > 0


def test_identical_detections_real_frames(visdrone_real_root, monkeypatch):
    fast_levels = same_model_detections("configs/synth/la.yaml", 3.0, topk=1000,
                                        pictures=images(visdrone_real_root), monkeypatch=monkeypatch)
    assert fast_levels > 0
