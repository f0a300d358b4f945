"""The student alone: its config, its model, its weights, a student-only checkpoint.

Nothing here reads a teacher's config or weights, also for a CSKD config.
"""
import os
from typing import Sequence

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.modeling import build_model
from torch import nn

from ..checkpoint import StrictCheckpointer
from ..config import add_zoominnet_config


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
