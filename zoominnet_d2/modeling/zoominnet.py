"""ZoomInNet: a RetinaNet student distilled from a frozen RetinaNet teacher at 2x input.

The student *is* the RetinaNet (``ZoomInNet`` subclasses it); what differs is configured:

- ``MODEL.ZOOMIN.ALIGN`` picks the alignment: "none" (teacher maps pooled to the student's
  grid), "la" (:class:`ZoomInRetinaNetHead` with a 2x upsampling and anchors on the 2x grid)
  or "fa" (a P2-P6 student FPN, :mod:`.backbone`);
- ``MODEL.ZOOMIN.TEACHER.CONFIG_FILE`` adds the frozen teacher for training; without it the
  model is the plain (possibly LA/FA) student and trains without distillation.

In training with a teacher, ``loss_distill`` = DISTILL_WEIGHT x sum over the level pairs of
the position-aware L2 loss on the AKDP key positions (Eqs. 11-21). Inference never touches
the teacher.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, RetinaNet
from detectron2.structures import Boxes, ImageList
from detectron2.utils.events import get_event_storage
from torch import Tensor

from .akdp import akdp_masks_batch
from .alignment import UpsampledGridAnchorGenerator, ZoomInRetinaNetHead
from .losses import position_aware_l2
from .teacher import FrozenTeacher, load_teacher_config

ALIGNMENTS = ("none", "la", "fa")
DISTILL_FEATURES = ("fpn", "tower")


def config_input_size(cfg) -> int:
    """The training input size a config describes: SQUARE_SIZE, else the largest short side."""
    return cfg.INPUT.SQUARE_SIZE if cfg.INPUT.SQUARE_SIZE > 0 else max(cfg.INPUT.MIN_SIZE_TRAIN)


def student_config(cfg):
    """A copy of ``cfg`` that builds the student alone (evaluation, inference, FLOPs)."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.ZOOMIN.TEACHER.CONFIG_FILE = ""
    cfg.freeze()
    return cfg


@META_ARCH_REGISTRY.register()
class ZoomInNet(RetinaNet):
    """RetinaNet student with LA/FA alignment and cross-scale distillation from a teacher."""

    @configurable
    def __init__(
        self,
        *,
        align: str = "none",
        teacher: Optional[FrozenTeacher] = None,
        teacher_scale: int = 2,
        distill_features: str = "fpn",
        distill_weight: float = 0.01,
        akdp_scope: str = "level",
        akdp_lambda: Optional[float] = None,
        save_teacher: bool = False,
        **kwargs,
    ):
        """
        Args:
            align: "none", "la" or "fa" (see ``add_zoominnet_config``).
            teacher: the frozen teacher, or None to train the student alone.
            teacher_scale: teacher input size / student input size.
            distill_features: "fpn" or "tower".
            distill_weight: lambda_distill of Eq. 22.
            akdp_scope, akdp_lambda: see :func:`akdp_mask`.
            save_teacher: also put the teacher's weights in ``state_dict()`` as "teacher.*".
            kwargs: :class:`RetinaNet` arguments; ``head`` must be a ZoomInRetinaNetHead.
        """
        super().__init__(**kwargs)
        if align not in ALIGNMENTS:
            raise ValueError(f"MODEL.ZOOMIN.ALIGN must be one of {ALIGNMENTS}, got {align!r}")
        if distill_features not in DISTILL_FEATURES:
            raise ValueError(
                f"MODEL.ZOOMIN.DISTILL_FEATURES must be one of {DISTILL_FEATURES}, got {distill_features!r}"
            )
        self.align = align
        self.teacher = teacher
        self.teacher_scale = teacher_scale
        self.distill_features = distill_features
        self.distill_weight = distill_weight
        self.akdp_scope = akdp_scope
        self.akdp_lambda = akdp_lambda
        if teacher is not None:
            self._check_teacher_fits()
            if save_teacher:
                self._register_state_dict_hook(_add_teacher_state)

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        z = cfg.MODEL.ZOOMIN
        feature_shapes = [ret["backbone"].output_shape()[f] for f in cfg.MODEL.RETINANET.IN_FEATURES]
        upsample = 2 if z.ALIGN == "la" else 1
        ret["head"] = ZoomInRetinaNetHead(cfg, feature_shapes, upsample=upsample)
        if z.ALIGN == "la":
            # The predictions live on a 2x grid: anchors there, at half the strides.
            dense = [ShapeSpec(channels=s.channels, stride=s.stride // 2) for s in feature_shapes]
            ret["anchor_generator"] = UpsampledGridAnchorGenerator(cfg, dense, grid_scale=2)
        teacher = None
        if z.TEACHER.CONFIG_FILE:
            _check_teacher_config(cfg, load_teacher_config(z.TEACHER.CONFIG_FILE))
            teacher = FrozenTeacher.from_files(z.TEACHER.CONFIG_FILE, z.TEACHER.WEIGHTS, cfg.MODEL.DEVICE)
        ret.update(
            align=z.ALIGN,
            teacher=teacher,
            teacher_scale=int(z.TEACHER.INPUT_SCALE),
            distill_features=z.DISTILL_FEATURES,
            distill_weight=z.DISTILL_WEIGHT,
            akdp_scope=z.AKDP.SCOPE,
            akdp_lambda=z.AKDP.LAMBDA if z.AKDP.LAMBDA >= 0 else None,
            save_teacher=z.TEACHER.SAVE_IN_CHECKPOINT,
        )
        return ret

    @property
    def grid_strides(self) -> List[float]:
        """Strides (student pixels) of the grids on which predictions and anchors sit."""
        return list(self.anchor_generator.strides)

    def _check_teacher_fits(self) -> None:
        """Level count, channels and grids of the teacher must pair with the student's."""
        t_strides = self.teacher.strides
        if len(t_strides) != len(self.grid_strides):
            raise ValueError(
                f"teacher has {len(t_strides)} head levels, the student {len(self.grid_strides)}"
            )
        s_channels = self.backbone.output_shape()[self.head_in_features[0]].channels
        if self.teacher.channels != s_channels:
            raise ValueError(
                f"MODEL.FPN.OUT_CHANNELS: teacher {self.teacher.channels} != student {s_channels}"
            )
        if self.align in ("la", "fa"):
            expected = [s * self.teacher_scale for s in self.grid_strides]
            if t_strides != expected:
                raise ValueError(
                    f"ALIGN={self.align!r}: the student's grids (strides {self.grid_strides} at 1x) "
                    f"do not match the teacher's (strides {t_strides} at {self.teacher_scale}x)"
                )

    def forward(self, batched_inputs: List[Dict]):
        """As :meth:`RetinaNet.forward`; in training with a teacher, also ``loss_distill``.

        Each input then also needs ``teacher_image`` (3, sH, sW), from
        :class:`ZoomInDatasetMapper` with the teacher enabled.
        """
        if not self.training or self.teacher is None:
            return super().forward(batched_inputs)
        if "teacher_image" not in batched_inputs[0]:
            raise KeyError(
                "ZoomInNet with a teacher needs 'teacher_image' in each input: use "
                "ZoomInDatasetMapper(cfg, is_train=True, with_teacher=True)"
            )
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        features = [features[f] for f in self.head_in_features]
        if self.distill_features == "tower":
            logits, deltas, student_maps = self.head.forward_with_towers(features)
        else:
            (logits, deltas), student_maps = self.head(features), [self._to_grid(f) for f in features]
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]

        pred_logits, pred_deltas = self._transpose_dense_predictions([logits, deltas], [self.num_classes, 4])
        anchors = self.anchor_generator(features)
        gt_labels, gt_boxes = self.label_anchors(anchors, gt_instances)
        losses = self.losses(anchors, pred_logits, gt_labels, pred_deltas, gt_boxes)

        teacher_images = [x["teacher_image"] for x in batched_inputs]
        losses["loss_distill"] = self.distill_weight * self.distillation_loss(
            student_maps, teacher_images, images, anchors, [x.gt_boxes for x in gt_instances]
        )
        return losses

    def distillation_loss(self, student_maps: List[Tensor], teacher_images: List[Tensor],
                          images: ImageList, anchors: List[Boxes], gt_boxes: List[Boxes]) -> Tensor:
        """Sum over level pairs of the position-aware L2 loss on AKDP key positions.

        Args:
            student_maps: #lvl (N, C, Hi, Wi) on the prediction grid.
            teacher_images: N tensors (3, s*hi, s*wi), the teacher's views.
            images: the student's padded batch (its size fixes the teacher's padding).
            anchors: #lvl Boxes (Hi*Wi*A, 4), the student's anchors on the prediction grid.
            gt_boxes: N Boxes, the ground truth in the student's frame.
        """
        h, w = images.tensor.shape[-2:]
        teacher = self.teacher.features(
            teacher_images, (h * self.teacher_scale, w * self.teacher_scale),
            with_towers=self.distill_features == "tower",
        )[self.distill_features]
        grid_sizes = [tuple(m.shape[-2:]) for m in student_maps]
        masks = akdp_masks_batch(anchors, grid_sizes, gt_boxes, scope=self.akdp_scope, lam=self.akdp_lambda)
        total = 0.0
        for level, (t, s, mask) in enumerate(zip(teacher, student_maps, masks)):
            if self.align == "none":
                t = F.adaptive_avg_pool2d(t, s.shape[-2:])
            if t.shape != s.shape:
                raise RuntimeError(f"level {level}: teacher map {tuple(t.shape)} != student map {tuple(s.shape)}")
            total = total + position_aware_l2(t, s, mask)
        # One device-to-host transfer for all levels' key fractions.
        fractions = torch.stack([m.float().mean() for m in masks]).tolist()
        get_event_storage().put_scalars(**{f"akdp/key_fraction_l{i}": f for i, f in enumerate(fractions)})
        return total

    def _to_grid(self, feature: Tensor) -> Tensor:
        """An FPN map on the prediction grid (LA: 2x nearest upsampling)."""
        if self.align == "la":
            return F.interpolate(feature, scale_factor=2, mode="nearest")
        return feature


def _check_teacher_config(cfg, teacher_cfg) -> None:
    """The teacher's input size must be INPUT_SCALE x the student's; LA and FA need 2x."""
    z = cfg.MODEL.ZOOMIN
    scale = config_input_size(teacher_cfg) / config_input_size(cfg)
    if scale != z.TEACHER.INPUT_SCALE:
        raise ValueError(
            f"MODEL.ZOOMIN.TEACHER.INPUT_SCALE is {z.TEACHER.INPUT_SCALE} but the teacher config "
            f"{z.TEACHER.CONFIG_FILE} trains at {config_input_size(teacher_cfg)} px and the student "
            f"at {config_input_size(cfg)} px (scale {scale:g})"
        )
    if z.ALIGN in ("la", "fa") and z.TEACHER.INPUT_SCALE != 2:
        raise ValueError(f"MODEL.ZOOMIN.ALIGN={z.ALIGN!r} needs a teacher at 2x input, got {scale:g}x")


def _add_teacher_state(module: ZoomInNet, state_dict, prefix: str, local_metadata) -> None:
    """state_dict hook: store the teacher's weights as "teacher.*" (SAVE_IN_CHECKPOINT)."""
    for key, value in module.teacher.model.state_dict().items():
        state_dict[f"{prefix}teacher.{key}"] = value
