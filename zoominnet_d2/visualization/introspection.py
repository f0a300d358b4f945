"""What ZoomInNet distils for one image, on the CPU and cropped to the image.

:func:`collect_distillation_maps` runs :meth:`ZoomInNet.inspect_distillation` (the same
:meth:`~ZoomInNet.distillation_pairs` as the training loss) on one mapped image and keeps,
per level, the student map, the teacher map on the student's grid and the AKDP key
positions, without the grid cells that only see the padding to the backbone's size
divisibility.
"""
import copy
import math
from typing import List, Optional, Sequence, Tuple

import torch
from detectron2.structures import Boxes, Instances
from torch import nn


def valid_grid_sizes(height: int, width: int, strides: Sequence[int]) -> List[Tuple[int, int]]:
    """Per stride, the (H, W) grid cells of an image of ``height`` x ``width`` pixels: cells
    beyond ceil(size / stride) only see the padding to the size divisibility."""
    return [(math.ceil(height / s), math.ceil(width / s)) for s in strides]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel / DataParallel wrappers."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


@torch.no_grad()
def collect_distillation_maps(model: nn.Module, dataset_dict: dict, *,
                              with_teacher: Optional[bool] = None) -> dict:
    """The distilled tensors of student and teacher and the AKDP masks, for one image.

    Runs in ``torch.no_grad()``; it does not change ``model.training`` (call ``model.eval()``
    first for inference-mode BatchNorm, as :class:`FeatureVisualizationHook` does).

    Args:
        model: a :class:`ZoomInNet` (or DDP/DataParallel around one).
        dataset_dict: one output of :func:`visualization_mapper` (or of
            ``ZoomInDatasetMapper``): ``image`` (3, h, w), ``teacher_image`` (3, s*h, s*w)
            for the teacher's maps, ``instances`` with ``gt_boxes`` in the student's frame
            (optional: without it there is no key position).
        with_teacher: draw the teacher's maps (default: when the model has a teacher);
            False on a model with a teacher needs ``model.eval()``.

    Returns:
        dict with, for L levels (all tensors on the CPU, float32; grids cropped to the
        image, i.e. without the padding to the size divisibility):

        - ``student``: L tensors (C, Hi, Wi), the student's distilled maps;
        - ``teacher``: L tensors (C, Hi, Wi) (pooled to the student's grid for ALIGN
          "none"), or None without a teacher;
        - ``masks``: L bool tensors (Hi, Wi), the AKDP key positions;
        - ``grid_sizes``: L (Hi, Wi); ``strides``: L grid strides in student pixels;
        - ``level_names`` / ``teacher_level_names``: e.g. ["p3", ...] (None without teacher);
        - ``image_size``: (h, w) of the student image; ``gt_boxes``: (G, 4) XYXY in it;
        - ``align``, ``distill_features``.

    Raises:
        KeyError: the teacher's maps are asked for but the dict has no ``teacher_image``.
        ValueError: ``with_teacher`` but the model has no teacher attached.
        RuntimeError: teacher and student maps of a level differ in shape.
    """
    model = unwrap_model(model)
    if with_teacher is None:
        with_teacher = model.teacher is not None
    sample = copy.copy(dataset_dict)
    if with_teacher:
        if model.teacher is None:
            raise ValueError("collect_distillation_maps(with_teacher=True): the model has no teacher attached")
        if "teacher_image" not in sample:
            raise KeyError("collect_distillation_maps with a teacher needs 'teacher_image': map the "
                           "image with visualization_mapper(cfg, with_teacher=True)")
    else:
        sample.pop("teacher_image", None)
    h, w = (int(v) for v in sample["image"].shape[-2:])
    if "instances" not in sample:
        sample["instances"] = Instances((h, w), gt_boxes=Boxes(torch.zeros(0, 4)))
    pairs = model.inspect_distillation([sample])

    strides = list(model.grid_strides)
    valid = valid_grid_sizes(h, w, strides)

    def crop(x, hw):
        return x[0, ..., : hw[0], : hw[1]].cpu()

    return {
        "student": [crop(m, v).float() for m, v in zip(pairs.student, valid)],
        "teacher": None if pairs.teacher is None else [crop(t, v).float() for t, v in zip(pairs.teacher, valid)],
        "masks": [crop(m, v) for m, v in zip(pairs.masks, valid)],
        "grid_sizes": valid,
        "strides": strides,
        "level_names": list(model.head_in_features),
        "teacher_level_names": list(model.teacher.model.head_in_features) if pairs.teacher is not None else None,
        "image_size": (h, w),
        "gt_boxes": sample["instances"].gt_boxes.tensor.float().cpu(),
        "align": model.align,
        "distill_features": model.distill_features,
    }
