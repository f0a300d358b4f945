"""ZoomInNet on Detectron2: cross-scale knowledge distillation for small objects.

Importing the package applies the Detectron2 v0.6 compatibility fixes (``compat``) before
anything from Detectron2 is imported, then registers the meta-architecture and datasets.
"""
from . import compat

compat.apply()

from .config import add_zoominnet_config  # noqa: E402
from .data import register_visdrone  # noqa: E402

__all__ = ["add_zoominnet_config", "register_visdrone"]
