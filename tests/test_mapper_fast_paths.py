"""The mapper's fast paths against Detectron2's own code: box annotations transformed as one
array (``transformed_box_instances``) and the decoded-image cache."""
import copy

import numpy as np
import pytest
import torch
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from PIL import Image

from zoominnet_d2.data.cross_scale_mapper import ZoomInDatasetMapper
from zoominnet_d2.data.image_cache import DecodedImageCache


def _annotations(rng, n, h, w):
    """``n`` boxes over and beyond an (h, w) image, in both box modes, a few crowd ones and
    a few of zero size."""
    out = []
    for i in range(n):
        x0, y0 = rng.uniform(-20, w + 5), rng.uniform(-20, h + 5)
        bw, bh = (0.0, 0.0) if i % 17 == 0 else (rng.uniform(1, 60), rng.uniform(1, 60))
        if i % 2:
            box, mode = [x0, y0, bw, bh], BoxMode.XYWH_ABS
        else:
            box, mode = [x0, y0, x0 + bw, y0 + bh], BoxMode.XYXY_ABS
        out.append({"bbox": [float(v) for v in box], "bbox_mode": mode, "category_id": int(rng.integers(10)),
                    "iscrowd": int(i % 13 == 5)})
    return out


def _mapper(**kwargs):
    return ZoomInDatasetMapper(is_train=True, augmentations=[], image_format="BGR", **kwargs)


def _chains(rng, h, w):
    """Crop, downscale and flip in several orders, as the configs' augmentations give them."""
    cx, cy, cw, ch = int(rng.integers(0, w // 3)), int(rng.integers(0, h // 3)), w // 2, h // 2
    crop = T.CropTransform(cx, cy, cw, ch)
    down = T.ResizeTransform(ch, cw, ch // 2, cw // 2)
    yield T.TransformList([crop, down, T.HFlipTransform(cw // 2)]), (ch // 2, cw // 2)
    yield T.TransformList([T.HFlipTransform(w), crop, T.VFlipTransform(ch)]), (ch, cw)
    yield T.TransformList([T.ResizeTransform(h, w, 64, 64)]), (64, 64)
    yield T.TransformList([]), (h, w)


@pytest.mark.parametrize("seed", range(4))
def test_box_instances_equal_detectron2_per_annotation_code(seed):
    rng = np.random.default_rng(seed)
    h, w = 300, 420
    mapper = _mapper()
    for transforms, shape in _chains(rng, h, w):
        record = {"annotations": _annotations(rng, 120, h, w)}
        reference = copy.deepcopy(record)
        DatasetMapper._transform_annotations(mapper, reference, transforms, shape)
        mapper._transform_annotations(record, transforms, shape)
        ours, theirs = record["instances"], reference["instances"]
        assert len(theirs) > 0
        assert ours.image_size == theirs.image_size
        assert torch.equal(ours.gt_boxes.tensor, theirs.gt_boxes.tensor)
        assert torch.equal(ours.gt_classes, theirs.gt_classes)


def test_no_annotations_and_all_dropped():
    mapper = _mapper()
    record = {"annotations": []}
    mapper._transform_annotations(record, T.TransformList([]), (50, 60))
    assert len(record["instances"]) == 0 and record["instances"].gt_boxes.tensor.shape == (0, 4)
    outside = [{"bbox": [100.0, 100.0, 5.0, 5.0], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 1}]
    record = {"annotations": outside}
    mapper._transform_annotations(record, T.TransformList([T.CropTransform(0, 0, 50, 50)]), (50, 50))
    assert len(record["instances"]) == 0 and mapper.dropped_boxes == 1


def test_masks_in_use_take_detectron2_path():
    mapper = _mapper(use_instance_mask=True)
    polygon = [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0]]
    record = {"annotations": [{"bbox": [10.0, 10.0, 20.0, 20.0], "bbox_mode": BoxMode.XYWH_ABS,
                               "category_id": 2, "segmentation": polygon}]}
    given = copy.deepcopy(record)
    mapper._transform_annotations(record, T.TransformList([T.HFlipTransform(40)]), (40, 40))
    assert record["instances"].has("gt_masks")
    assert torch.equal(record["instances"].gt_boxes.tensor, torch.tensor([[10.0, 10.0, 30.0, 30.0]]))
    assert given["annotations"][0]["segmentation"] == polygon


def _write_image(path, seed, h=40, w=56):
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return utils.read_image(str(path), format="BGR")


def test_mapper_leaves_the_dataset_dict_unchanged(tmp_path):
    path = tmp_path / "a.png"
    _write_image(path, 0)
    record = {"file_name": str(path), "height": 40, "width": 56, "image_id": 0, "ignore_regions": [[0, 0, 5, 5]],
              "annotations": _annotations(np.random.default_rng(1), 30, 40, 56)}
    given = copy.deepcopy(record)
    mapper = _mapper()
    mapper.augmentations = T.AugmentationList([T.RandomCrop("absolute", (30, 30)), T.RandomFlip()])
    for _ in range(3):
        out = mapper(record)
        out["ignore_regions"].append("changed by a consumer")
    assert record == given


def test_cache_decodes_once_within_its_budget(tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    expected = _write_image(first, 0)
    _write_image(second, 1)
    cache = DecodedImageCache(budget_mb=expected.nbytes * 1.5 / 2**20)  # room for one image
    assert np.array_equal(cache.read(str(first), "BGR"), expected)
    cache.read(str(second), "BGR")
    assert len(cache) == 1 and cache.used_bytes == expected.nbytes and cache.full
    first.unlink(), second.unlink()
    cached = cache.read(str(first), "BGR")  # from memory
    assert np.array_equal(cached, expected) and not cached.flags.writeable
    with pytest.raises(FileNotFoundError):
        cache.read(str(second), "BGR")  # not kept: decoded again
    with pytest.raises(ValueError, match="DECODED_IMAGE_CACHE_MB"):
        DecodedImageCache(-1)


def test_mapper_with_cache_gives_the_same_samples(tmp_path):
    path = tmp_path / "a.png"
    _write_image(path, 2)
    record = {"file_name": str(path), "height": 40, "width": 56, "image_id": 0,
              "annotations": _annotations(np.random.default_rng(3), 20, 40, 56)}
    outputs = []
    for cache in (None, DecodedImageCache(1)):
        mapper = _mapper(image_cache=cache)
        mapper.augmentations = T.AugmentationList([T.RandomCrop("absolute", (30, 30)), T.RandomFlip()])
        np.random.seed(0)
        outputs.append([mapper(record) for _ in range(4)])
    for plain, cached in zip(*outputs):
        assert torch.equal(plain["image"], cached["image"])
        assert torch.equal(plain["instances"].gt_boxes.tensor, cached["instances"].gt_boxes.tensor)
