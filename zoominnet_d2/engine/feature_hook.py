"""The feature-map panel of one fixed training image in TensorBoard, every N iterations."""
import logging
from typing import Optional, Tuple

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.data import detection_utils as utils
from detectron2.engine import HookBase
from detectron2.utils import comm
from torch import Tensor

from ..visualization.inputs import visualization_mapper
from ..visualization.introspection import collect_distillation_maps, unwrap_model
from ..visualization.panels import draw_feature_panels

logger = logging.getLogger(__name__)


class FeatureVisualizationHook(HookBase):
    """Every ``period`` iterations, put the panel of :func:`draw_feature_panels` for one
    fixed training image into the trainer's ``EventStorage`` as ``"zoominnet/features"``
    (Detectron2's TensorboardXWriter sends it to TensorBoard).

    The image is the first training image with at least one box (else the first one) of
    ``cfg.DATASETS.TRAIN[0]``, mapped once with :func:`visualization_mapper` (no random
    flip). Drawing runs on the main process only, under ``torch.no_grad()``, with the model
    in eval mode (BatchNorm statistics are not touched); every module's ``training`` flag
    is restored afterwards. A model wrapped in DDP is unwrapped (``model.module``).

    Args:
        cfg: the training config; ``period`` defaults to ``cfg.MODEL.ZOOMIN.VIS_PERIOD``
            (0: the hook does nothing).
        period: overrides the config.
        dataset_dict: a raw dataset dict to draw instead of the training set's first.
        tile_size: longest side of one panel tile.
    """

    def __init__(self, cfg, period: Optional[int] = None, dataset_dict: Optional[dict] = None,
                 tile_size: int = 256):
        self.period = int(cfg.MODEL.ZOOMIN.VIS_PERIOD if period is None else period)
        self.cfg = cfg.clone()
        self.tile_size = tile_size
        self._raw = dataset_dict
        self._mapped: Optional[dict] = None
        self._image: Optional[np.ndarray] = None

    def _sample(self, with_teacher: bool) -> Tuple[dict, dict, np.ndarray]:
        """(raw dataset dict, mapped dict, original (H, W, 3) uint8 RGB image)."""
        if self._raw is None:
            dicts = DatasetCatalog.get(self.cfg.DATASETS.TRAIN[0])
            self._raw = next((d for d in dicts if d.get("annotations")), dicts[0])
        if self._mapped is None or ("teacher_image" in self._mapped) != with_teacher:
            self._mapped = visualization_mapper(self.cfg, with_teacher)(self._raw)
            self._image = utils.read_image(self._raw["file_name"], format="RGB")
        return self._raw, self._mapped, self._image

    def draw(self) -> Tensor:
        """Draw the panel now; returns it as (3, H, W) float32 in [0, 1]."""
        model = unwrap_model(self.trainer.model)
        modes = [(m, m.training) for m in model.modules()]
        try:
            model.eval()
            raw, mapped, image = self._sample(model.teacher is not None)
            maps = collect_distillation_maps(model, mapped)
            panel = draw_feature_panels(maps, image, raw, tile_size=self.tile_size,
                                        include=("panel",))["panel"]
        finally:
            for m, mode in modes:
                m.training = mode
        return torch.from_numpy(np.ascontiguousarray(panel.transpose(2, 0, 1))).float().div_(255.0)

    def after_step(self):
        if self.period <= 0 or (self.trainer.iter + 1) % self.period or not comm.is_main_process():
            return
        try:
            panel = self.draw()
        except Exception:  # a drawing failure must not stop a long training run
            logger.exception(f"FeatureVisualizationHook: drawing failed at iteration "
                             f"{self.trainer.iter}")
            return
        self.trainer.storage.put_image("zoominnet/features", panel)
