"""The frozen 2x teacher: built from its own config file, loaded strictly, never trained.

The teacher is deliberately *not* a registered submodule of the student. That one choice
gives what the method needs without special cases elsewhere:

- ``model.train()`` (called by ``SimpleTrainer`` and the evaluator) cannot flip it out of
  eval mode, so its BatchNorm statistics never move;
- its parameters are invisible to the optimizer, to DDP and to ``state_dict()``: student
  checkpoints carry no copy of it (unless asked) and loading ``MODEL.WEIGHTS`` into the
  student cannot collide with ``teacher.*`` keys through Detectron2's suffix matching.
"""
import os
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from detectron2.modeling import build_model
from detectron2.structures import ImageList
from torch import Tensor, nn

from ..checkpoint import StrictCheckpointer
from ..config import load_config


def load_teacher_config(config_file: str, device: str = "cpu"):
    """The teacher's Detectron2 config (with the ZoomInNet keys) on ``device``, frozen.

    Raises:
        ConfigError: no such file or a bad key in it, naming MODEL.ZOOMIN.TEACHER.CONFIG_FILE.
    """
    cfg = load_config(config_file, file_key="MODEL.ZOOMIN.TEACHER.CONFIG_FILE")
    cfg.MODEL.DEVICE = device
    cfg.freeze()
    return cfg


def load_teacher_weights(model: nn.Module, weights: str) -> None:
    """Load the teacher checkpoint ``weights`` into ``model``; any missing, unexpected or
    mis-shaped key is a ``ValueError`` that names the file and the keys
    (:class:`StrictCheckpointer`, which never runs code from the file)."""
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"MODEL.ZOOMIN.TEACHER.WEIGHTS: no such file: {weights}")
    StrictCheckpointer(model, role="the teacher config (MODEL.ZOOMIN.TEACHER.CONFIG_FILE)").load(weights)


def build_teacher(cfg) -> Optional["FrozenTeacher"]:
    """The frozen teacher that ``MODEL.ZOOMIN.TEACHER`` names, read from its config file and
    checkpoint; None when ``CONFIG_FILE`` is empty.

    Raises:
        ConfigError: the config file does not exist or does not load.
        FileNotFoundError: the checkpoint does not exist.
        ValueError: the teacher's input size is not ``INPUT_SCALE`` x the student's, the
            checkpoint is empty or does not fit the teacher's config.
    """
    from .geometry import CrossScaleGeometry

    z = cfg.MODEL.ZOOMIN.TEACHER
    if not z.CONFIG_FILE:
        return None
    teacher_cfg = load_teacher_config(z.CONFIG_FILE, cfg.MODEL.DEVICE)
    CrossScaleGeometry.from_config(cfg).check_teacher_input(cfg, teacher_cfg, z.CONFIG_FILE)
    if not z.WEIGHTS:
        raise ValueError(
            "MODEL.ZOOMIN.TEACHER.WEIGHTS is empty: distillation needs a trained teacher "
            f"checkpoint for {z.CONFIG_FILE}"
        )
    return FrozenTeacher.from_files(teacher_cfg, z.WEIGHTS, config_file=z.CONFIG_FILE)


class FrozenTeacher:
    """A RetinaNet in eval mode with ``requires_grad=False`` everywhere, run under no_grad.

    Args:
        model: the teacher RetinaNet (any Detectron2 ``DenseDetector`` with an FPN backbone
            and a ``RetinaNetHead``).
        config_file: the config it was built from, for error messages ("" if none).
    """

    def __init__(self, model: nn.Module, config_file: str = ""):
        self.model = model.eval()
        self.config_file = config_file
        for p in self.model.parameters():
            p.requires_grad_(False)

    @classmethod
    def from_files(cls, teacher_cfg, weights: str, config_file: str = "") -> "FrozenTeacher":
        """The teacher of ``teacher_cfg`` (see :func:`load_teacher_config`, read from
        ``config_file``) with the checkpoint ``weights`` loaded strictly."""
        model = build_model(teacher_cfg)
        load_teacher_weights(model, weights)
        return cls(model, config_file)

    @property
    def strides(self) -> List[int]:
        """Strides of the teacher's head levels, in teacher pixels."""
        shapes = self.model.backbone.output_shape()
        return [shapes[f].stride for f in self.model.head_in_features]

    @property
    def channels(self) -> int:
        """Channels of the teacher's FPN maps (``MODEL.FPN.OUT_CHANNELS``)."""
        return self.model.backbone.output_shape()[self.model.head_in_features[0]].channels

    @torch.no_grad()
    def features(self, images: List[Tensor], padded_size: Tuple[int, int], with_towers: bool
                 ) -> Dict[str, List[Tensor]]:
        """Run the teacher on its (2x) images.

        Args:
            images: N uint8/float tensors (3, Hi, Wi), the teacher's view of each sample.
            padded_size: (H, W) to pad the batch to: exactly 2x the student's padded batch,
                so that the teacher's grids are exactly the student's grids times 2.
            with_towers: also compute the head's tower outputs.

        Returns:
            {"fpn": #lvl (N, C, H/s, W/s)} and, with towers, {"tower": #lvl (N, 2C, ...)}.
        """
        self.model.eval()
        device = self.model.pixel_mean.device
        images = [(x.to(device) - self.model.pixel_mean) / self.model.pixel_std for x in images]
        batch = ImageList.from_tensors(images).tensor
        pad_h, pad_w = padded_size[0] - batch.shape[-2], padded_size[1] - batch.shape[-1]
        if pad_h < 0 or pad_w < 0:
            raise ValueError(f"teacher batch {tuple(batch.shape[-2:])} larger than {padded_size}")
        batch = F.pad(batch, (0, pad_w, 0, pad_h))
        feats = self.model.backbone(batch)
        fpn = [feats[f] for f in self.model.head_in_features]
        out = {"fpn": fpn}
        if with_towers:
            head = self.model.head
            out["tower"] = [torch.cat([head.cls_subnet(f), head.bbox_subnet(f)], 1) for f in fpn]
        return out
