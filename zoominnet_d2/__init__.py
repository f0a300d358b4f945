"""ZoomInNet on Detectron2: cross-scale knowledge distillation for small objects.

Importing the package applies the Detectron2 v0.6 compatibility fixes (``compat``) before
anything from Detectron2 is imported, then registers the meta-architecture, the backbone
and the datasets, so that config names resolve.
"""
from . import compat

compat.apply()

from . import modeling  # noqa: E402,F401  (registers ZoomInNet and the backbone)
from .config import ConfigError, add_zoominnet_config, load_config  # noqa: E402
from .data import builtin  # noqa: E402,F401  (registers visdrone2019_* and synthdrone_*)
from .data import register_visdrone  # noqa: E402

__all__ = ["ConfigError", "add_zoominnet_config", "load_config", "register_visdrone"]
