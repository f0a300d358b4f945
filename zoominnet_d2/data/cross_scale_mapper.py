"""Dataset mapper that gives each sample to the student at 1x and to the teacher at 2x.

Both views are made from the *original* image with the same augmentation (same crop region,
same flip, same resize target up to the scale): the teacher never sees an upsampled student
image. Each teacher image is exactly ``scale`` times its student image, so the padded teacher
batch can be made exactly ``scale`` times the padded student batch.

The resize is one of: Detectron2's shortest-edge resize, a fixed square (``INPUT.SQUARE_SIZE``,
the paper's setting), or a fixed downscale of the original (``INPUT.NATIVE_DOWNSCALE``): with
``k`` = ``scale`` for the student the teacher's view is the original pixels of the crop.
"""
import copy
import logging
from typing import List

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.utils.logger import log_every_n_seconds

from ..modeling.geometry import CrossScaleGeometry

logger = logging.getLogger(__name__)


class DownscaleBy(T.Augmentation):
    """Resize an image by the fixed factor 1 / ``factor`` (each side rounded; 1: unchanged)."""

    def __init__(self, factor: int, interp=None):
        super().__init__()
        self.factor = factor
        self.interp = interp

    def get_transform(self, image):
        h, w = image.shape[:2]
        if self.factor == 1:
            return T.NoOpTransform()
        new_h, new_w = max(1, round(h / self.factor)), max(1, round(w / self.factor))
        return T.ResizeTransform(h, w, new_h, new_w, self.interp)


def build_zoomin_augmentation(cfg, is_train: bool) -> List[T.Augmentation]:
    """Detectron2's default augmentation, with the resize replaced by a fixed square resize
    (``INPUT.SQUARE_SIZE``, aspect ratio not kept, as the authors' configs) or by a fixed
    downscale of the original (``INPUT.NATIVE_DOWNSCALE``) when one is set."""
    augs = utils.build_augmentation(cfg, is_train)
    if cfg.INPUT.NATIVE_DOWNSCALE > 0:
        if cfg.INPUT.SQUARE_SIZE > 0:
            raise ValueError("INPUT.NATIVE_DOWNSCALE and INPUT.SQUARE_SIZE exclude each other: set one to 0")
        resize = DownscaleBy(cfg.INPUT.NATIVE_DOWNSCALE)
    elif cfg.INPUT.SQUARE_SIZE > 0:
        resize = T.Resize((cfg.INPUT.SQUARE_SIZE, cfg.INPUT.SQUARE_SIZE))
    else:
        return augs
    return [resize if isinstance(a, T.ResizeShortestEdge) else a for a in augs]


def scale_transforms(transforms: T.TransformList, scale: int) -> T.TransformList:
    """The same geometric transforms, producing an output ``scale`` times larger.

    Supports resizes, crops (``CropTransform``, from any of Detectron2's ``RandomCrop`` types),
    flips and no-ops, in any order. A crop or a flip acts on the teacher chain's current
    image (the original before the first resize, ``scale`` x the student's after it), so the
    teacher sees the same region; a resize targets ``scale`` x the student's size.

    Raises:
        NotImplementedError: for any other transform (named in the message).
        ValueError: the chain has no resize, so the teacher's view could not be ``scale`` x
            the student's without upsampling the student's image.
    """
    out, ratio = [], 1  # ratio: teacher-chain size / student-chain size at this point
    for t in transforms.transforms:
        if isinstance(t, T.ResizeTransform):
            out.append(T.ResizeTransform(t.h * ratio, t.w * ratio, t.new_h * scale, t.new_w * scale, t.interp))
            ratio = scale
        elif isinstance(t, T.CropTransform):
            orig = {k: getattr(t, k) * ratio for k in ("orig_w", "orig_h") if getattr(t, k, None) is not None}
            out.append(T.CropTransform(t.x0 * ratio, t.y0 * ratio, t.w * ratio, t.h * ratio, **orig))
        elif isinstance(t, T.HFlipTransform):
            out.append(T.HFlipTransform(t.width * ratio))
        elif isinstance(t, T.VFlipTransform):
            out.append(T.VFlipTransform(t.height * ratio))
        elif isinstance(t, T.NoOpTransform):
            continue
        else:
            raise NotImplementedError(
                f"cross-scale input supports resize, crop and flip augmentations, not {type(t).__name__}"
            )
    if ratio != scale and scale != 1:
        raise ValueError(
            "cross-scale input needs a resize in the augmentation (INPUT.SQUARE_SIZE, "
            "INPUT.MIN_SIZE_TRAIN or INPUT.NATIVE_DOWNSCALE): without one the teacher's view "
            f"cannot be {scale}x the student's"
        )
    return T.TransformList(out)


class ZoomInDatasetMapper(DatasetMapper):
    """:class:`DatasetMapper` plus ``dataset_dict["teacher_image"]`` (uint8, 3 x sH x sW) when
    ``teacher_scale`` > 0, and the resizes of :func:`build_zoomin_augmentation`.

    Boxes cut by a crop are clipped to it and boxes left without area are dropped, as
    Detectron2's mapper does; the dropped ones are counted (``dropped_boxes``) and the running
    count is logged at most once a minute.
    """

    @configurable
    def __init__(self, is_train: bool, *, teacher_scale: int = 0, **kwargs):
        super().__init__(is_train, **kwargs)
        self.teacher_scale = teacher_scale
        self.mapped = 0
        self.dropped_boxes = 0

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, with_teacher: bool = False):
        ret = super().from_config(cfg, is_train)
        augs = build_zoomin_augmentation(cfg, is_train)
        if cfg.INPUT.CROP.ENABLED and is_train:
            # The crop that DatasetMapper.from_config puts first for INPUT.CROP.ENABLED, kept
            # in front of the resize; the teacher's view is cropped at the same region.
            augs.insert(0, T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
        ret["augmentations"] = augs
        ret["teacher_scale"] = CrossScaleGeometry.from_config(cfg).scale if with_teacher else 0
        return ret

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.deepcopy(dataset_dict)
        try:
            original = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        except OSError as e:  # unreadable or truncated file: name it, not a PIL stack
            raise ValueError(f"{dataset_dict['file_name']}: cannot decode image: {e}") from e
        utils.check_image_size(dataset_dict, original)
        aug_input = T.AugInput(original)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        dataset_dict["image"] = _to_chw_tensor(image)
        if self.teacher_scale:
            teacher_view = scale_transforms(transforms, self.teacher_scale).apply_image(original)
            dataset_dict["teacher_image"] = _to_chw_tensor(teacher_view)
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image.shape[:2])
        return dataset_dict

    def _transform_annotations(self, dataset_dict, transforms, image_shape):
        kept = sum(1 for a in dataset_dict["annotations"] if a.get("iscrowd", 0) == 0)
        super()._transform_annotations(dataset_dict, transforms, image_shape)
        self.mapped += 1
        dropped = kept - len(dataset_dict["instances"])
        if dropped:
            self.dropped_boxes += dropped
            log_every_n_seconds(
                logging.INFO, f"{self.dropped_boxes} boxes outside the augmented (cropped) images "
                f"dropped so far, in {self.mapped} training samples (this data-loader process)",
                n=60, name=__name__)


def _to_chw_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
