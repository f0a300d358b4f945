"""FPN backbones for the student and the teacher.

``build_zoomin_retinanet_fpn_backbone`` is Detectron2's RetinaNet ResNet-FPN with two
generalisations, both needed by ZoomInNet:

- the pyramid may start at ``res2`` (FA: student P2-P6 on the teacher's P3-P7 grids); the
  extra top levels (P6, or P6 and P7) are stride-2 convs on C5 as in RetinaNet, as many as
  ``MODEL.RETINANET.IN_FEATURES`` needs beyond the lateral levels;
- ResNet-18/34 may be narrower than Detectron2 allows (``RES2_OUT_CHANNELS`` < 64), so that
  CPU-sized models train from scratch in minutes.

The input is padded to the coarsest pyramid stride (128 for P3-P7) rather than to C5's 32
(:class:`ZoomInFPN`, ``CrossScaleGeometry.padding_multiple``), so every level's grid is exactly
H / stride: a student padded this way and a teacher fed exactly twice the padded student size
have grids that match level for level.
"""
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import BACKBONE_REGISTRY, FPN, ResNet
from detectron2.modeling.backbone.fpn import LastLevelP6P7
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, build_resnet_backbone
from fvcore.nn import weight_init
from torch import nn

from .geometry import CrossScaleGeometry


class ZoomInFPN(FPN):
    """Detectron2's FPN, with inputs padded to the coarsest level's stride (not C5's)."""

    @property
    def size_divisibility(self) -> int:
        return CrossScaleGeometry.padding_multiple([s.stride for s in self.output_shape().values()])


class LastLevelP6(nn.Module):
    """One extra level, P6 = 3x3 stride-2 conv on C5 (RetinaNet's P6, without P7)."""

    def __init__(self, in_channels: int, out_channels: int, in_feature: str = "res5"):
        super().__init__()
        self.num_levels = 1
        self.in_feature = in_feature
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        weight_init.c2_xavier_fill(self.p6)

    def forward(self, c5):
        """(N, C_in, H, W) C5 -> [(N, C_out, ceil(H/2), ceil(W/2)) P6]."""
        return [self.p6(c5)]


def build_slim_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """ResNet-18/34 of any width (stages RES2_OUT_CHANNELS x 1, 2, 4, 8), else Detectron2's.

    Detectron2 asserts RES2_OUT_CHANNELS == 64 for BasicBlock ResNets; this builder only
    lifts that restriction and otherwise reads the same ``MODEL.RESNETS`` keys.
    """
    r = cfg.MODEL.RESNETS
    if r.DEPTH not in (18, 34) or r.RES2_OUT_CHANNELS == 64:
        return build_resnet_backbone(cfg, input_shape)
    blocks_per_stage = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}[r.DEPTH]
    stem = BasicStem(input_shape.channels, r.STEM_OUT_CHANNELS, norm=r.NORM)
    in_channels, out_channels, stages = r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS, []
    for idx, num_blocks in enumerate(blocks_per_stage):
        first_stride = 1 if idx == 0 else 2
        stages.append(
            ResNet.make_stage(
                block_class=BasicBlock,
                num_blocks=num_blocks,
                stride_per_block=[first_stride] + [1] * (num_blocks - 1),
                in_channels=in_channels,
                out_channels=out_channels,
                norm=r.NORM,
            )
        )
        in_channels, out_channels = out_channels, out_channels * 2
    return ResNet(stem, stages, out_features=r.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


@BACKBONE_REGISTRY.register()
def build_zoomin_retinanet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """RetinaNet ResNet-FPN whose levels are ``MODEL.RETINANET.IN_FEATURES`` (P3-P7 or P2-P6).

    The FPN builds one lateral level per ``MODEL.FPN.IN_FEATURES`` entry (res3-res5 -> P3-P5,
    res2-res5 -> P2-P5) and adds the remaining head levels as stride-2 convs on C5.
    """
    bottom_up = build_slim_resnet_backbone(cfg, input_shape)
    in_features = cfg.MODEL.FPN.IN_FEATURES
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    num_extra = len(cfg.MODEL.RETINANET.IN_FEATURES) - len(in_features)
    c5_channels = bottom_up.output_shape()["res5"].channels
    top_blocks = {1: LastLevelP6, 2: LastLevelP6P7}
    if num_extra not in top_blocks:
        raise ValueError(
            f"MODEL.RETINANET.IN_FEATURES {cfg.MODEL.RETINANET.IN_FEATURES} needs {num_extra} "
            f"levels on top of MODEL.FPN.IN_FEATURES {in_features}; supported: 1 (P2-P6) or "
            "2 (P3-P7)"
        )
    backbone = ZoomInFPN(
        bottom_up=bottom_up,
        in_features=in_features,
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=top_blocks[num_extra](c5_channels, out_channels),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
    missing = set(cfg.MODEL.RETINANET.IN_FEATURES) - set(backbone.output_shape())
    if missing:
        raise ValueError(
            f"MODEL.RETINANET.IN_FEATURES names {sorted(missing)}, which the FPN does not "
            f"produce (it gives {sorted(backbone.output_shape())})"
        )
    return backbone
