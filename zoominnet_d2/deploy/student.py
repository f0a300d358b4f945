"""The student alone: its config, its model, its weights, a student-only checkpoint.

Nothing here reads a teacher's config or weights, also for a CSKD config.
"""
import logging
import os
from typing import Sequence

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.modeling import build_model
from torch import nn

from ..checkpoint import SafeDetectionCheckpointer
from ..config import add_zoominnet_config

logger = logging.getLogger(__name__)


def load_config(config_file: str, opts: Sequence[str] = ()) -> CfgNode:
    """The project's config from ``config_file`` plus ``KEY VALUE`` overrides, on the CPU
    unless CUDA is there and the config asks for it."""
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file not found: {config_file}")
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    if not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    return cfg


def build_student(cfg: CfgNode) -> nn.Module:
    """The student of ``cfg`` with random weights, in eval mode; no file is read (a CSKD
    config's teacher is attached only for training)."""
    return build_model(cfg).eval()


class _StrictCheckpointer(SafeDetectionCheckpointer):
    """A checkpointer whose loading fails when the file lacks weights of the model.

    Detectron2 only logs missing keys (right for initialising from ImageNet weights); a
    student to deploy with random parts would silently give wrong detections.
    """

    def _log_incompatible_keys(self, incompatible) -> None:  # fvcore's hook after loading
        super()._log_incompatible_keys(incompatible)
        if incompatible.missing_keys:
            keys = ", ".join(incompatible.missing_keys[:5])
            raise KeyError(f"{self._loading}: no weights for {len(incompatible.missing_keys)} "
                           f"parameters of the student (e.g. {keys}); is it a checkpoint of this config?")

    def load(self, path: str, *args, **kwargs):
        self._loading = path
        return super().load(path, *args, **kwargs)


def load_student(cfg: CfgNode, weights: str, allow_unsafe: bool = False) -> nn.Module:
    """The student of ``cfg`` with the weights of ``weights`` (a Detectron2 ``.pth``/``.pkl``,
    e.g. a training checkpoint; teacher weights and optimizer state in it are ignored)."""
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"weights file not found: {weights}")
    model = build_student(cfg)
    _StrictCheckpointer(model, allow_unsafe=allow_unsafe).load(weights)
    return model


def save_student_checkpoint(model: nn.Module, path: str) -> None:
    """Write ``{"model": state_dict}`` of the student (no teacher, optimizer or scheduler),
    which ``train_net.py --eval-only`` and ``tools/predict.py`` load.

    ``torch.save`` rather than ``DetectionCheckpointer.save``: the latter also writes a
    ``last_checkpoint`` file beside it, which would replace a training run's.
    """
    torch.save({"model": model.state_dict()}, path)
