"""ZoomInNet modeling: backbones, cross-scale geometry, LA head, AKDP, loss, frozen teacher,
meta-architecture."""
from . import backbone  # noqa: F401  (registers build_zoomin_retinanet_fpn_backbone)
from .akdp import akdp_mask, akdp_masks_batch
from .geometry import CrossScaleGeometry
from .losses import distillation_loss, position_aware_l2
from .teacher import FrozenTeacher, build_teacher
from .zoominnet import DistillationPairs, ZoomInNet, attach_configured_teacher, build_model_with_teacher

__all__ = ["CrossScaleGeometry", "DistillationPairs", "FrozenTeacher", "ZoomInNet", "akdp_mask",
           "akdp_masks_batch", "attach_configured_teacher", "build_model_with_teacher", "build_teacher",
           "distillation_loss", "position_aware_l2"]
