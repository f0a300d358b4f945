"""ZoomInNet: a RetinaNet student distilled from a frozen RetinaNet teacher at 2x input.

The student *is* the RetinaNet (``ZoomInNet`` subclasses it); what differs is configured:

- ``MODEL.ZOOMIN.ALIGN`` picks the alignment (:mod:`.geometry`): "none" (teacher maps
  pooled to the student's grid), "la" (:class:`ZoomInRetinaNetHead` with a 2x upsampling and
  anchors on the 2x grid) or "fa" (a P2-P6 student FPN, :mod:`.backbone`);
- a teacher is attached for training (:meth:`ZoomInNet.attach_teacher`,
  :func:`build_model_with_teacher`); building the model itself reads no files, so
  ``build_model(cfg)`` is the student for evaluation, inference, export and FLOP counting.

With a teacher, :meth:`ZoomInNet.forward_training` adds ``loss_distill`` = DISTILL_WEIGHT x the
sum over level pairs (``MODEL.ZOOMIN.DISTILL_LEVELS``, default all) of the position-aware L2
loss (Eq. 21) on the AKDP key positions (Eqs. 11-18), i.e. Eq. 22's distillation term (with
``MODEL.ZOOMIN.DISTILL_SCALE`` "level_rms", of each level's maps divided by their root mean
square). :meth:`ZoomInNet.distillation_pairs` is the one place that computes what is distilled;
the loss, the feature visualizer and the benchmark use it.
Inference never touches the teacher.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, RetinaNet, build_model
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import get_event_storage
from torch import Tensor
from torch.profiler import record_function

from .akdp import AKDP_SCOPES, akdp_masks_batch
from .alignment import UpsampledGridAnchorGenerator, ZoomInRetinaNetHead
from .fast_inference import FastDecodeMixin
from .geometry import CrossScaleGeometry
from .losses import distillation_loss
from .teacher import FrozenTeacher, build_teacher

DISTILL_FEATURES = ("fpn", "tower")
DISTILL_SCALES = ("raw", "level_rms")


class CrossScaleImages(ImageList):
    """The student's padded batch, plus each sample's teacher view.

    Attributes:
        teacher_images: N uint8/float tensors (3, s*hi, s*wi), unpadded and unnormalised.
    """

    def __init__(self, images: ImageList, teacher_images: List[Tensor]):
        super().__init__(images.tensor, images.image_sizes)
        self.teacher_images = teacher_images


class DistillationPairs(NamedTuple):
    """What is distilled, per level pair (#lvl entries each).

    student: (N, C, Hi, Wi) maps on the prediction grid; teacher: (N, C, Hi, Wi) maps on the
    same grid, or None without a teacher; masks: (N, Hi, Wi) bool AKDP key positions.
    """

    student: List[Tensor]
    teacher: Optional[List[Tensor]]
    masks: List[Tensor]


@META_ARCH_REGISTRY.register()
class ZoomInNet(FastDecodeMixin, RetinaNet):
    """RetinaNet student with LA/FA alignment and cross-scale distillation from a teacher.

    Inference is RetinaNet's, with its per-level decoding from :mod:`.fast_inference` (the
    same detections without a sort of every candidate above the score threshold)."""

    @configurable
    def __init__(
        self,
        *,
        geometry: CrossScaleGeometry,
        distill_features: str = "fpn",
        distill_weight: float = 0.01,
        distill_scale: str = "raw",
        distill_levels: Sequence[int] = (),
        akdp_scope: str = "level",
        akdp_lambda: Optional[float] = None,
        save_teacher: bool = False,
        **kwargs,
    ):
        """
        Args:
            geometry: the student/teacher scale and alignment.
            distill_features: "fpn" or "tower".
            distill_weight: lambda_distill of Eq. 22.
            distill_scale: "raw" (Eq. 19 on the maps) or "level_rms" (on each level's maps
                divided by their root mean square, :func:`level_scale_normalized`).
            distill_levels: indices of the distilled level pairs; empty: all.
            akdp_scope, akdp_lambda: see :func:`akdp_mask`.
            save_teacher: also put an attached teacher's weights in ``state_dict()`` as "teacher.*".
            kwargs: :class:`RetinaNet` arguments; ``head`` must be a ZoomInRetinaNetHead.
        """
        super().__init__(**kwargs)
        if distill_features not in DISTILL_FEATURES:
            raise ValueError(
                f"MODEL.ZOOMIN.DISTILL_FEATURES must be one of {DISTILL_FEATURES}, got {distill_features!r}"
            )
        if distill_scale not in DISTILL_SCALES:
            raise ValueError(f"MODEL.ZOOMIN.DISTILL_SCALE must be one of {DISTILL_SCALES}, got {distill_scale!r}")
        num_levels = len(self.head_in_features)
        if any(not 0 <= i < num_levels for i in distill_levels):
            raise ValueError(f"MODEL.ZOOMIN.DISTILL_LEVELS must hold level indices 0..{num_levels - 1}, "
                             f"got {list(distill_levels)}")
        if akdp_scope not in AKDP_SCOPES:
            raise ValueError(f"MODEL.ZOOMIN.AKDP.SCOPE must be one of {AKDP_SCOPES}, got {akdp_scope!r}")
        self.geometry = geometry
        self.distill_features = distill_features
        self.distill_weight = distill_weight
        self.distill_scale = distill_scale
        self.distill_levels = tuple(distill_levels) or tuple(range(num_levels))
        self.akdp_scope = akdp_scope
        self.akdp_lambda = akdp_lambda
        self.save_teacher = save_teacher
        # Not a submodule (see FrozenTeacher): set by attach_teacher.
        self.teacher: Optional[FrozenTeacher] = None

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        z = cfg.MODEL.ZOOMIN
        geometry = CrossScaleGeometry.from_config(cfg)
        feature_shapes = [ret["backbone"].output_shape()[f] for f in cfg.MODEL.RETINANET.IN_FEATURES]
        ret["head"] = ZoomInRetinaNetHead(
            cfg, feature_shapes, upsample=geometry.grid_upsample, with_towers=z.DISTILL_FEATURES == "tower"
        )
        if geometry.grid_upsample > 1:
            strides = geometry.prediction_strides([s.stride for s in feature_shapes])
            dense = [ShapeSpec(channels=s.channels, stride=t) for s, t in zip(feature_shapes, strides)]
            ret["anchor_generator"] = UpsampledGridAnchorGenerator(cfg, dense, grid_scale=geometry.grid_upsample)
        ret.update(
            geometry=geometry,
            distill_features=z.DISTILL_FEATURES,
            distill_weight=z.DISTILL_WEIGHT,
            distill_scale=z.DISTILL_SCALE,
            distill_levels=tuple(z.DISTILL_LEVELS),
            akdp_scope=z.AKDP.SCOPE,
            akdp_lambda=z.AKDP.LAMBDA if z.AKDP.LAMBDA >= 0 else None,
            save_teacher=z.TEACHER.SAVE_IN_CHECKPOINT,
        )
        return ret

    @property
    def align(self) -> str:
        return self.geometry.align

    @property
    def grid_strides(self) -> List[float]:
        """Strides (student pixels) of the grids on which predictions and anchors sit."""
        return list(self.anchor_generator.strides)

    def attach_teacher(self, teacher: FrozenTeacher) -> None:
        """Distil from ``teacher`` in training from now on.

        Raises:
            ValueError: the teacher's level count, channels or grids do not pair with the student's.
        """
        t_strides = teacher.strides
        source = f" (MODEL.ZOOMIN.TEACHER.CONFIG_FILE {teacher.config_file})" if teacher.config_file else ""
        if len(t_strides) != len(self.grid_strides):
            raise ValueError(f"the teacher{source} has {len(t_strides)} head levels, "
                             f"the student {len(self.grid_strides)}")
        s_channels = self.backbone.output_shape()[self.head_in_features[0]].channels
        if teacher.channels != s_channels:
            raise ValueError(f"MODEL.FPN.OUT_CHANNELS: teacher{source} {teacher.channels} != student {s_channels}")
        if self.align in ("la", "fa"):
            expected = self.geometry.teacher_strides(self.grid_strides)
            if t_strides != expected:
                raise ValueError(
                    f"ALIGN={self.align!r}: the student's grids (strides {self.grid_strides} at 1x) "
                    f"do not match the teacher's{source} (strides {t_strides} at {self.geometry.scale}x)"
                )
        self.teacher = teacher
        if self.save_teacher:
            self.register_state_dict_post_hook(_add_teacher_state)

    def preprocess_image(self, batched_inputs: List[Dict]) -> ImageList:
        """As :meth:`RetinaNet.preprocess_image`; with a teacher, a :class:`CrossScaleImages`
        carrying each input's ``teacher_image`` (3, sH, sW) too (required in training)."""
        images = super().preprocess_image(batched_inputs)
        if self.teacher is None:
            return images
        if "teacher_image" not in batched_inputs[0]:
            if self.training:
                raise KeyError(
                    "ZoomInNet with a teacher needs 'teacher_image' in each input: use "
                    "ZoomInDatasetMapper(cfg, is_train=True, with_teacher=True)"
                )
            return images
        return CrossScaleImages(images, [x["teacher_image"] for x in batched_inputs])

    def forward_training(self, images: ImageList, features: List[Tensor], predictions: List[List[Tensor]],
                         gt_instances: List[Instances]) -> Dict[str, Tensor]:
        """RetinaNet's losses, plus ``loss_distill`` when a teacher is attached.

        ``predictions`` are the head's outputs: [logits, deltas] or, when towers are
        distilled, [logits, deltas, towers].
        """
        logits, deltas, *towers = predictions
        losses = super().forward_training(images, features, [logits, deltas], gt_instances)
        if self.teacher is None:
            return losses
        student = towers[0] if towers else [self.geometry.to_prediction_grid(f) for f in features]
        pairs = self.distillation_pairs(images, features, student, [x.gt_boxes for x in gt_instances])
        losses["loss_distill"] = self.distill_weight * distillation_loss(pairs, self.distill_scale, self.distill_levels)
        # One device-to-host transfer for all levels' key fractions.
        fractions = torch.stack([m.float().mean() for m in pairs.masks]).tolist()
        get_event_storage().put_scalars(**{f"akdp/key_fraction_l{i}": f for i, f in enumerate(fractions)})
        return losses

    def distillation_pairs(self, images: ImageList, features: List[Tensor], student: List[Tensor],
                           gt_boxes: List[Boxes]) -> DistillationPairs:
        """The student maps, the teacher maps and the AKDP key positions that are distilled.

        Args:
            images: the student's padded batch; a :class:`CrossScaleImages` for the teacher's maps.
            features: #lvl (N, C, hi, wi) student FPN maps (the anchors' feature maps).
            student: #lvl (N, C', Hi, Wi) distilled student maps on the prediction grid.
            gt_boxes: N Boxes, the ground truth in the student's frame.
        """
        teacher = None
        if self.teacher is not None and isinstance(images, CrossScaleImages):
            with record_function("zoominnet.teacher"):
                maps = self.teacher.features(
                    images.teacher_images, self.geometry.teacher_padded_size(images.tensor.shape),
                    with_towers=self.distill_features == "tower",
                )[self.distill_features]
                teacher = [self.geometry.teacher_on_student_grid(t, s.shape[-2:]) for t, s in zip(maps, student)]
            for level, (t, s) in enumerate(zip(teacher, student)):
                if t.shape != s.shape:
                    raise RuntimeError(f"level {level}: teacher map {tuple(t.shape)} != student map {tuple(s.shape)}")
        with record_function("zoominnet.akdp"):
            grid_sizes = [tuple(m.shape[-2:]) for m in student]
            masks = akdp_masks_batch(self.anchor_generator(features), grid_sizes, gt_boxes,
                                     scope=self.akdp_scope, lam=self.akdp_lambda)
        return DistillationPairs(student, teacher, masks)

    @torch.no_grad()
    def inspect_distillation(self, batched_inputs: List[Dict]) -> DistillationPairs:
        """:meth:`distillation_pairs` of a batch (``instances`` with ``gt_boxes``, and
        ``teacher_image`` for the teacher's maps), as training computes them, without grad."""
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        features = [features[f] for f in self.head_in_features]
        if self.distill_features == "tower":
            student = self.head.forward_with_towers(features)[2]
        else:
            student = [self.geometry.to_prediction_grid(f) for f in features]
        gt_boxes = [x["instances"].gt_boxes.to(self.device) for x in batched_inputs]
        return self.distillation_pairs(images, features, student, gt_boxes)


def attach_configured_teacher(model: ZoomInNet, cfg) -> ZoomInNet:
    """Attach the frozen teacher of ``MODEL.ZOOMIN.TEACHER`` (read from its files) to
    ``model`` when ``CONFIG_FILE`` is set; returns ``model``."""
    teacher = build_teacher(cfg)
    if teacher is not None:
        model.attach_teacher(teacher)
    return model


def build_model_with_teacher(cfg) -> ZoomInNet:
    """``build_model(cfg)`` with its configured teacher attached: the model training uses."""
    return attach_configured_teacher(build_model(cfg), cfg)


def _add_teacher_state(module: ZoomInNet, state_dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook: store the teacher's weights as "teacher.*" (SAVE_IN_CHECKPOINT)."""
    for key, value in module.teacher.model.state_dict().items():
        state_dict[f"{prefix}teacher.{key}"] = value
