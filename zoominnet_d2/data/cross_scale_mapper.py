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
from typing import List, Optional, Tuple

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import Boxes, BoxMode, Instances
from detectron2.utils.logger import log_every_n_seconds

from ..modeling.geometry import CrossScaleGeometry
from .image_cache import DecodedImageCache

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
    count is logged at most once a minute. Box-only annotations (no masks or keypoints in use)
    are transformed as one array (:func:`transformed_box_instances`), the rest by Detectron2's
    per-annotation code. With an ``image_cache`` the originals are decoded once.
    """

    @configurable
    def __init__(self, is_train: bool, *, teacher_scale: int = 0, image_cache: Optional[DecodedImageCache] = None,
                 **kwargs):
        super().__init__(is_train, **kwargs)
        self.teacher_scale = teacher_scale
        self.image_cache = image_cache
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
        budget = cfg.DATALOADER.DECODED_IMAGE_CACHE_MB
        ret["image_cache"] = DecodedImageCache(budget) if is_train and budget > 0 else None
        return ret

    def __call__(self, dataset_dict: dict) -> dict:
        # A copy of everything but the annotations, which are only read (the per-annotation
        # fallback copies them before Detectron2's code changes them in place): a deep copy
        # of ~100 annotation dicts per VisDrone frame was a tenth of the mapping time.
        dataset_dict = {k: v if k == "annotations" else copy.deepcopy(v) for k, v in dataset_dict.items()}
        try:
            if self.image_cache is not None:
                original = self.image_cache.read(dataset_dict["file_name"], self.image_format)
            else:
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
        if self.use_instance_mask or self.use_keypoint:
            dataset_dict["annotations"] = copy.deepcopy(dataset_dict["annotations"])
            super()._transform_annotations(dataset_dict, transforms, image_shape)
        else:
            annotations = [a for a in dataset_dict.pop("annotations") if a.get("iscrowd", 0) == 0]
            instances = transformed_box_instances(annotations, transforms, image_shape)
            dataset_dict["instances"] = utils.filter_empty_instances(instances)
        self.mapped += 1
        dropped = kept - len(dataset_dict["instances"])
        if dropped:
            self.dropped_boxes += dropped
            log_every_n_seconds(
                logging.INFO, f"{self.dropped_boxes} boxes outside the augmented (cropped) images "
                f"dropped so far, in {self.mapped} training samples (this data-loader process)",
                n=60, name=__name__)


def transformed_box_instances(annotations: List[dict], transforms: T.TransformList,
                              image_shape: Tuple[int, int]) -> Instances:
    """``Instances`` (``gt_boxes`` (N, 4) XYXY, ``gt_classes`` (N,)) of box annotations after
    ``transforms``, equal to Detectron2's ``annotations_to_instances`` of its
    ``transform_instance_annotations`` (boxes clipped to the (h, w) ``image_shape``).

    Detectron2 transforms one box at a time: for VisDrone's ~100 boxes per frame that was over
    half of the mapping time. ``TransformList.apply_box`` takes all boxes of one array at once.
    """
    boxes = np.zeros((len(annotations), 4))
    for mode in {a["bbox_mode"] for a in annotations}:
        rows = [i for i, a in enumerate(annotations) if a["bbox_mode"] == mode]
        # As BoxMode.convert of one list box: a conversion in float32, none for XYXY_ABS; the
        # transforms then run in float64.
        dtype = np.float64 if mode == BoxMode.XYXY_ABS else np.float32
        given = np.asarray([annotations[i]["bbox"] for i in rows], dtype=dtype).reshape(-1, 4)
        boxes[rows] = BoxMode.convert(given, mode, BoxMode.XYXY_ABS)
    if len(boxes):
        h, w = image_shape
        boxes = np.minimum(transforms.apply_box(boxes).clip(min=0), [w, h, w, h])
    instances = Instances(image_shape)
    instances.gt_boxes = Boxes(boxes)
    instances.gt_classes = torch.tensor([int(a["category_id"]) for a in annotations], dtype=torch.int64)
    return instances


def _to_chw_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
