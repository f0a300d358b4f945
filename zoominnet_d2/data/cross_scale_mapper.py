"""Dataset mapper that gives each sample to the student at 1x and to the teacher at 2x.

Both views are made from the *original* image with the same augmentation (same flip, same
resize target up to the scale): the teacher never sees an upsampled student image. Each
teacher image is exactly ``scale`` times its student image, so the padded teacher batch can
be made exactly ``scale`` times the padded student batch.
"""
import copy
from typing import List

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from ..modeling.geometry import CrossScaleGeometry


def build_zoomin_augmentation(cfg, is_train: bool) -> List[T.Augmentation]:
    """Detectron2's default augmentation, with the resize replaced by a fixed square resize
    (``INPUT.SQUARE_SIZE``, aspect ratio not kept, as the authors' configs) when it is set."""
    augs = utils.build_augmentation(cfg, is_train)
    if cfg.INPUT.SQUARE_SIZE > 0:
        size = cfg.INPUT.SQUARE_SIZE
        augs = [T.Resize((size, size)) if isinstance(a, T.ResizeShortestEdge) else a for a in augs]
    return augs


def scale_transforms(transforms: T.TransformList, scale: int) -> T.TransformList:
    """The same geometric transforms, producing an output ``scale`` times larger.

    Supports what RetinaNet training uses: resizes, flips and no-ops. Resizes target
    ``scale`` x the student's size from the teacher-chain's current size, and flips use the
    teacher-chain's width/height.

    Raises:
        NotImplementedError: for any other transform (named in the message).
    """
    out, ratio = [], 1  # ratio: teacher-chain size / student-chain size at this point
    for t in transforms.transforms:
        if isinstance(t, T.ResizeTransform):
            out.append(T.ResizeTransform(t.h * ratio, t.w * ratio, t.new_h * scale, t.new_w * scale, t.interp))
            ratio = scale
        elif isinstance(t, T.HFlipTransform):
            out.append(T.HFlipTransform(t.width * ratio))
        elif isinstance(t, T.VFlipTransform):
            out.append(T.VFlipTransform(t.height * ratio))
        elif isinstance(t, T.NoOpTransform):
            continue
        else:
            raise NotImplementedError(
                f"cross-scale input supports resize and flip augmentations, not {type(t).__name__}"
            )
    return T.TransformList(out)


class ZoomInDatasetMapper(DatasetMapper):
    """:class:`DatasetMapper` plus ``dataset_dict["teacher_image"]`` (uint8, 3 x sH x sW) when
    ``teacher_scale`` > 0, and the square resize of ``INPUT.SQUARE_SIZE``."""

    @configurable
    def __init__(self, is_train: bool, *, teacher_scale: int = 0, **kwargs):
        super().__init__(is_train, **kwargs)
        self.teacher_scale = teacher_scale

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, with_teacher: bool = False):
        ret = super().from_config(cfg, is_train)
        augs = build_zoomin_augmentation(cfg, is_train)
        if cfg.INPUT.CROP.ENABLED and is_train:
            # The crop that DatasetMapper.from_config puts first for INPUT.CROP.ENABLED, kept
            # in front of the square resize. With the teacher, scale_transforms rejects it by name.
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


def _to_chw_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
