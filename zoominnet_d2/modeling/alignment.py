"""Layer adaption (LA): a RetinaNet head whose final convs run on a 2x denser grid.

The GFLOPs of Table 3 pin LA down (docs/DESIGN.md, "LA and FA from their GFLOPs"): the cls and box towers run
at the student's resolution, their outputs are upsampled 2x (nearest) and only the final
``cls_score`` / ``bbox_pred`` convs run on the 2x grid. Anchors sit on that 2x grid at the
teacher's strides expressed in the student's input (strides and sizes halved).

FA needs no module of its own: it is the P2-P6 FPN of :mod:`.backbone` with the ordinary
head (ThinHead: ``MODEL.RETINANET.NUM_CONVS: 2``).
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
from detectron2.structures import Boxes
from torch import Tensor

from .subpixel import check_conv, phase_conv, phase_kernels


class ZoomInRetinaNetHead(RetinaNetHead):
    """RetinaNet head that can upsample its tower outputs before the final convs and that
    can also return the tower outputs (for tower distillation).

    With ``upsample=1`` and ``with_towers=False`` it computes exactly what
    :class:`RetinaNetHead` computes.

    Args:
        upsample: the prediction grid's cells per feature-map cell along each axis
            (``CrossScaleGeometry.grid_upsample``).
        with_towers: in training, also return the tower outputs (``forward`` gives
            [logits, bbox_reg, towers]); in eval mode never.
        subpixel_inference: in eval mode with ``upsample == 2``, run the final convs on the
            1x grid as sub-pixel convolutions (:mod:`.subpixel`): the same outputs, 16/36 of
            their multiply-adds, no upsampled towers (``MODEL.ZOOMIN.SUBPIXEL_INFERENCE``).
    """

    @configurable
    def __init__(self, *, upsample: int = 1, with_towers: bool = False, subpixel_inference: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.upsample = upsample
        self.with_towers = with_towers
        self.subpixel_inference = subpixel_inference

    @classmethod
    def from_config(cls, cfg, input_shape, upsample: int = 1, with_towers: bool = False):
        ret = super().from_config(cfg, input_shape)
        ret.update(upsample=upsample, with_towers=with_towers,
                   subpixel_inference=cfg.MODEL.ZOOMIN.SUBPIXEL_INFERENCE)
        return ret

    def forward_with_towers(
        self, features: List[Tensor]
    ) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
        """
        Args:
            features: #lvl FPN maps, each (N, C, Hi, Wi).

        Returns:
            logits: #lvl tensors (N, A*K, u*Hi, u*Wi), u = ``self.upsample``.
            bbox_reg: #lvl tensors (N, A*4, u*Hi, u*Wi).
            towers: #lvl tensors (N, 2*C', u*Hi, u*Wi): cls and box tower outputs
                (upsampled), concatenated along channels.
        """
        towers = self._towers(features)
        logits, bbox_reg = self._predict(towers)
        return logits, bbox_reg, [torch.cat(pair, dim=1) for pair in towers]

    def forward(self, features: List[Tensor]):
        """As :meth:`RetinaNetHead.forward`, on the ``upsample`` x denser grid; in training
        with ``with_towers``, [logits, bbox_reg, towers] as :meth:`forward_with_towers`."""
        if self.with_towers and self.training:
            return list(self.forward_with_towers(features))
        if self.upsample == 2 and self.subpixel_inference and not self.training:
            return self._predict_subpixel(features)
        return self._predict(self._towers(features))

    def _predict_subpixel(self, features: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """:meth:`_predict` of the upsampled towers, computed on the 1x towers (the phase
        kernels once per call, shared by the levels)."""
        check_conv(self.cls_score)
        check_conv(self.bbox_pred)
        cls_kernels, box_kernels = phase_kernels(self.cls_score.weight), phase_kernels(self.bbox_pred.weight)
        logits = [phase_conv(self.cls_subnet(f), cls_kernels, self.cls_score.bias) for f in features]
        bbox_reg = [phase_conv(self.bbox_subnet(f), box_kernels, self.bbox_pred.bias) for f in features]
        return logits, bbox_reg

    def _towers(self, features: List[Tensor]) -> List[Tuple[Tensor, Tensor]]:
        """Per level, the (cls, box) tower outputs, upsampled: each (N, C', u*Hi, u*Wi)."""
        return [(self._upsample(self.cls_subnet(f)), self._upsample(self.bbox_subnet(f))) for f in features]

    def _predict(self, towers: List[Tuple[Tensor, Tensor]]) -> Tuple[List[Tensor], List[Tensor]]:
        return [self.cls_score(c) for c, _ in towers], [self.bbox_pred(b) for _, b in towers]

    def _upsample(self, x: Tensor) -> Tensor:
        if self.upsample == 1:
            return x
        return F.interpolate(x, scale_factor=self.upsample, mode="nearest")


class UpsampledGridAnchorGenerator(DefaultAnchorGenerator):
    """Anchors on a grid ``grid_scale`` times denser than the feature maps it is given.

    RetinaNet asks its anchor generator for anchors with the backbone's feature maps; with LA
    the predictions live on a 2x grid, so this generator places its anchors there. The
    strides given to it must already be the 2x grid's (halved) strides.
    """

    @configurable
    def __init__(self, *, grid_scale: int, **kwargs):
        super().__init__(**kwargs)
        self.grid_scale = grid_scale

    @classmethod
    def from_config(cls, cfg, input_shape, grid_scale: int = 2):
        ret = super().from_config(cfg, input_shape)
        ret["grid_scale"] = grid_scale
        return ret

    def forward(self, features: List[Tensor]):
        """Anchors on grids ``grid_scale`` x finer than ``features``.

        Args:
            features: #lvl maps (N, C, H_l, W_l) at the student's strides.

        Returns:
            #lvl Boxes of (grid_scale H_l * grid_scale W_l * A, 4) XYXY anchors, in the
            student's input pixels.
        """
        grid_sizes = [[s * self.grid_scale for s in f.shape[-2:]] for f in features]
        anchors_over_all_feature_maps = self._grid_anchors(grid_sizes)
        return [Boxes(x) for x in anchors_over_all_feature_maps]
