"""ZoomInNet modeling: backbones, LA head, AKDP, loss, frozen teacher, meta-architecture."""
from . import backbone  # noqa: F401  (registers build_zoomin_retinanet_fpn_backbone)
from .akdp import akdp_mask, akdp_masks_batch
from .losses import position_aware_l2
from .zoominnet import ZoomInNet, student_config

__all__ = ["ZoomInNet", "akdp_mask", "akdp_masks_batch", "position_aware_l2", "student_config"]
