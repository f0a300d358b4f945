"""Crops across scales: the teacher sees the same region of the original as the student, at
INPUT_SCALE x the student's size (or at native resolution), and the boxes of both frames agree.

References are computed independently: the crop region is cut from the original with numpy
slicing and resized with PIL, boxes are clipped by formula.
"""
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoominnet_d2  # noqa: F401  (compat fixes first)
from detectron2.config import get_cfg
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from zoominnet_d2 import add_zoominnet_config
from zoominnet_d2.data.cross_scale_mapper import DownscaleBy, ZoomInDatasetMapper, scale_transforms
from zoominnet_d2.modeling import CrossScaleGeometry

SYNTH = Path(__file__).resolve().parents[1] / "configs" / "synth"
H, W = 90, 120


def _original(path: Path) -> np.ndarray:
    """A 1-px checkerboard with noise and asymmetric bright/dark bands (flips and upsampling show)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:H, :W]
    img = 60 + 80 * ((yy + xx) % 2)[..., None] + rng.integers(0, 40, (H, W, 3))
    img[:, : W // 3] //= 3
    img[: H // 4] += 60
    img = img.clip(0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return utils.read_image(str(path), format="BGR")


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((w, h), Image.BILINEAR))


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(img.transpose(2, 0, 1))).int()


def _cfg(opts=()):
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(str(SYNTH / "la.yaml"))
    cfg.merge_from_list(["INPUT.RANDOM_FLIP", "none"] + list(opts))
    return cfg


def _dataset_dict(path: Path, boxes_xyxy):
    return {
        "file_name": str(path), "height": H, "width": W, "image_id": 0,
        "annotations": [{"bbox": list(b), "bbox_mode": BoxMode.XYXY_ABS, "category_id": i % 10,
                         "iscrowd": 0} for i, b in enumerate(boxes_xyxy)],
    }


# crop (x0, y0, w, h) = (20, 10, 64, 48) of the 90x120 original, student 32x40 (resize)
CROP = (20, 10, 64, 48)
CHAINS = {
    "crop-flip-resize": [T.CropTransform(*CROP), T.HFlipTransform(64), T.ResizeTransform(48, 64, 32, 40)],
    "flip-crop-resize": [T.HFlipTransform(W), T.CropTransform(*CROP), T.ResizeTransform(48, 64, 32, 40)],
    "resize-crop-vflip": [T.ResizeTransform(H, W, 60, 80), T.CropTransform(10, 6, 40, 32), T.VFlipTransform(32)],
}


def _reference_views(original: np.ndarray, chain: str):
    """(student, teacher) views by slicing and PIL, independent of scale_transforms."""
    if chain == "crop-flip-resize":
        x0, y0, w, h = CROP
        region = original[y0:y0 + h, x0:x0 + w][:, ::-1]
        return _resize(region, 32, 40), _resize(region, 64, 80)
    if chain == "flip-crop-resize":
        x0, y0, w, h = CROP
        region = original[:, ::-1][y0:y0 + h, x0:x0 + w]
        return _resize(region, 32, 40), _resize(region, 64, 80)
    student = _resize(original, 60, 80)[6:38, 10:50][::-1]
    teacher = _resize(original, 120, 160)[12:76, 20:100][::-1]
    return student, teacher


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_teacher_view_is_the_same_region_at_2x(tmp_path, chain):
    original = _original(tmp_path / "img.png")
    tl = T.TransformList(CHAINS[chain])
    student, teacher = tl.apply_image(original), scale_transforms(tl, 2).apply_image(original)
    ref_s, ref_t = _reference_views(original, chain)
    assert student.shape[:2] == (32, 40) and teacher.shape[:2] == (64, 80)
    assert np.abs(student.astype(int) - ref_s.astype(int)).max() <= 1
    assert np.abs(teacher.astype(int) - ref_t.astype(int)).max() <= 1
    # not an upsampled student image
    up = _resize(student, 64, 80)
    assert np.abs(teacher.astype(int) - up.astype(int)).mean() > 4


@pytest.mark.parametrize("crop_type,size", [("relative_range", [0.5, 0.6]), ("relative", [0.5, 0.6]),
                                            ("absolute", [48, 64]), ("absolute_range", [40, 56])])
def test_every_random_crop_type(tmp_path, crop_type, size):
    original = _original(tmp_path / "img.png")
    np.random.seed(3)
    crop = T.RandomCrop(crop_type, size).get_transform(original)
    assert isinstance(crop, T.CropTransform)
    tl = T.TransformList([crop, T.ResizeTransform(crop.h, crop.w, 30, 36), T.HFlipTransform(36)])
    teacher = scale_transforms(tl, 2).apply_image(original)
    region = original[crop.y0:crop.y0 + crop.h, crop.x0:crop.x0 + crop.w]
    ref = _resize(region, 60, 72)[:, ::-1]
    assert np.abs(teacher.astype(int) - ref.astype(int)).max() <= 1


def test_chain_without_resize_is_refused():
    with pytest.raises(ValueError, match="needs a resize"):
        scale_transforms(T.TransformList([T.CropTransform(0, 0, 10, 10)]), 2)


def test_mapper_crops_teacher_and_clips_and_drops_boxes(tmp_path, caplog, monkeypatch):
    """Configured crop + square resize: both views of one region; a box cut by the crop is
    clipped, a box outside it dropped and counted."""
    import detectron2.utils.logger

    # log_every_n_seconds logs a call site once a minute per process: an earlier test that
    # dropped boxes (e.g. the data-loading benchmark's smoke run) would silence this one.
    monkeypatch.setattr(detectron2.utils.logger, "_LOG_TIMER", {})
    path = tmp_path / "img.png"
    original = _original(path)
    x0, y0, w, h = CROP
    crop_aug = T.CropTransform(*CROP)
    cfg = _cfg(["INPUT.SQUARE_SIZE", 32])
    kwargs = ZoomInDatasetMapper.from_config(cfg, is_train=True, with_teacher=True)
    kwargs["augmentations"] = [crop_aug, T.Resize((32, 32))]
    mapper = ZoomInDatasetMapper(**kwargs)
    inside, cut, outside = [30.0, 20.0, 50.0, 40.0], [70.0, 40.0, 100.0, 70.0], [0.0, 70.0, 15.0, 89.0]
    with caplog.at_level(logging.INFO):
        out = mapper(_dataset_dict(path, [inside, cut, outside]))
    assert out["image"].shape == (3, 32, 32) and out["teacher_image"].shape == (3, 64, 64)
    region = original[y0:y0 + h, x0:x0 + w]
    assert (out["teacher_image"].int() - _chw(_resize(region, 64, 64))).abs().max() <= 1
    assert (out["image"].int() - _chw(_resize(region, 32, 32))).abs().max() <= 1
    sx, sy = 32 / w, 32 / h
    expected = [[(30 - x0) * sx, (20 - y0) * sy, (50 - x0) * sx, (40 - y0) * sy],
                [(70 - x0) * sx, (40 - y0) * sy, (84 - x0) * sx, (58 - y0) * sy]]  # clipped at the crop's edge
    assert torch.allclose(out["instances"].gt_boxes.tensor, torch.tensor(expected), atol=1e-4)
    assert out["instances"].gt_classes.tolist() == [0, 1]
    assert mapper.dropped_boxes == 1 and mapper.mapped == 1
    assert any("1 boxes outside the augmented" in r.getMessage() for r in caplog.records)
    # the teacher's frame is 2x the student's: its boxes are the student's boxes x 2
    geometry = CrossScaleGeometry(2, "la")
    assert geometry.teacher_padded_size(out["image"].shape) == tuple(out["teacher_image"].shape[-2:])


def test_native_resolution_teacher_sees_original_pixels(tmp_path):
    """INPUT.NATIVE_DOWNSCALE 2 with INPUT.CROP: the teacher's view is the crop of the
    original, pixel for pixel; the student's is that crop downsampled 2x."""
    path = tmp_path / "img.png"
    original = _original(path)
    cfg = _cfg(["INPUT.SQUARE_SIZE", 0, "INPUT.NATIVE_DOWNSCALE", 2, "INPUT.CROP.ENABLED", True,
                "INPUT.CROP.TYPE", "absolute", "INPUT.CROP.SIZE", [64, 80]])
    mapper = ZoomInDatasetMapper(cfg, is_train=True, with_teacher=True)
    assert any(isinstance(a, DownscaleBy) for a in mapper.augmentations.augs)
    np.random.seed(0)
    out = mapper(_dataset_dict(path, [[0.0, 0.0, W, H]]))
    teacher = out["teacher_image"].numpy().transpose(1, 2, 0)
    assert teacher.shape == (64, 80, 3) and out["image"].shape == (3, 32, 40)
    # find the crop: the teacher view must be an exact window of the original
    found = [(y, x) for y in range(H - 64 + 1) for x in range(W - 80 + 1)
             if np.array_equal(original[y:y + 64, x:x + 80], teacher)]
    assert len(found) == 1
    y, x = found[0]
    ref_s = _resize(original[y:y + 64, x:x + 80], 32, 40)
    assert (out["image"].int() - _chw(ref_s)).abs().max() <= 1
    # the whole-image box, clipped to the crop, in the student's frame
    assert torch.allclose(out["instances"].gt_boxes.tensor, torch.tensor([[0.0, 0.0, 40.0, 32.0]]))
    # evaluation: the whole frame, downsampled 2x
    test_out = ZoomInDatasetMapper(cfg, is_train=False)(_dataset_dict(path, []))
    assert test_out["image"].shape == (3, 45, 60)


def test_native_downscale_config_checks(tmp_path):
    student = _cfg(["INPUT.SQUARE_SIZE", 0, "INPUT.NATIVE_DOWNSCALE", 2])
    teacher = _cfg(["INPUT.SQUARE_SIZE", 0, "INPUT.NATIVE_DOWNSCALE", 1])
    geometry = CrossScaleGeometry(2, "la")
    geometry.check_teacher_input(student, teacher, "t.yaml")
    for s_k, t_k in ((2, 2), (4, 1), (0, 1)):
        s = _cfg(["INPUT.NATIVE_DOWNSCALE", s_k] + (["INPUT.SQUARE_SIZE", 0] if s_k else []))
        t = _cfg(["INPUT.SQUARE_SIZE", 0, "INPUT.NATIVE_DOWNSCALE", t_k])
        with pytest.raises(ValueError, match="NATIVE_DOWNSCALE is .* t.yaml"):
            geometry.check_teacher_input(s, t, "t.yaml")
    both = _cfg(["INPUT.SQUARE_SIZE", 64, "INPUT.NATIVE_DOWNSCALE", 2])
    with pytest.raises(ValueError, match="exclude each other"):
        ZoomInDatasetMapper(both, is_train=True)
