"""The student alone: its model, its weights, a student-only checkpoint (its config:
:func:`zoominnet_d2.config.load_config`).

Nothing here reads a teacher's config or weights, also for a CSKD config.
"""
import os

import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model
from torch import nn

from ..checkpoint import StrictCheckpointer


def build_student(cfg: CfgNode) -> nn.Module:
    """The student of ``cfg`` with random weights, in eval mode; no file is read (a CSKD
    config's teacher is attached only for training)."""
    return build_model(cfg).eval()


def load_student(cfg: CfgNode, weights: str, allow_unsafe: bool = False) -> nn.Module:
    """The student of ``cfg`` with the weights of ``weights`` (a Detectron2 ``.pth``/``.pkl``,
    e.g. a training checkpoint; teacher weights and optimizer state in it are ignored)."""
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"weights file not found: {weights}")
    model = build_student(cfg)
    # Missing or mis-shaped weights would leave random parts; unexpected ones are fine (a
    # training checkpoint of a CSKD student may hold the teacher's as "teacher.*").
    StrictCheckpointer(model, refuse=("missing", "mis-shaped"), role="the student of this config",
                       allow_unsafe=allow_unsafe).load(weights)
    return model


def save_student_checkpoint(model: nn.Module, path: str) -> None:
    """Write ``{"model": state_dict}`` of the student (no teacher, optimizer or scheduler),
    which ``train_net.py --eval-only`` and ``tools/predict.py`` load.

    ``torch.save`` rather than ``DetectionCheckpointer.save``: the latter also writes a
    ``last_checkpoint`` file beside it, which would replace a training run's.
    """
    torch.save({"model": model.state_dict()}, path)
