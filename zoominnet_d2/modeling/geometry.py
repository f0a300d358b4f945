"""The cross-scale geometry: how the student's grids, the teacher's grids and the two input
sizes relate. Every other module asks :class:`CrossScaleGeometry` instead of assuming "2x".

With a teacher input ``s`` times the student's (``MODEL.ZOOMIN.TEACHER.INPUT_SCALE``):

- both inputs are padded so that every pyramid level divides them: the student's batch to a
  multiple of its coarsest stride (:meth:`padding_multiple`), the teacher's to exactly ``s``
  times the student's padded size (:meth:`teacher_padded_size`); then level ``l`` of the
  teacher has exactly ``s`` times the rows and columns of the student's level ``l``;
- LA (``ALIGN: la``) puts the student's predictions on a grid ``s`` times denser than its
  feature maps (``grid_upsample``): the tower outputs and the distilled FPN maps are upsampled
  there (:meth:`to_prediction_grid`, nearest) and the anchors sit on it at the student's
  strides divided by ``s`` (:meth:`prediction_strides`), i.e. the teacher's strides in the
  student's input pixels; this pairs student P3-P7 with teacher P3-P7 cell for cell;
- FA (``ALIGN: fa``) reaches the same grids with a P2-P6 student pyramid (no upsampling);
- no alignment (``ALIGN: none``) keeps the student's grids; the teacher's maps are
  average-pooled down to them (:meth:`teacher_on_student_grid`).

LA and FA move the student one pyramid level, a factor of 2, so they need ``s = 2``.
"""
from typing import List, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor

ALIGNMENTS = ("none", "la", "fa")


class CrossScaleGeometry:
    """Scale and grids of a student/teacher pair.

    Args:
        scale: teacher input size / student input size (a positive integer).
        align: "none", "la" or "fa".
    """

    def __init__(self, scale: int = 2, align: str = "none"):
        if align not in ALIGNMENTS:
            raise ValueError(f"MODEL.ZOOMIN.ALIGN must be one of {ALIGNMENTS}, got {align!r}")
        if isinstance(scale, bool) or int(scale) != scale or scale < 1:
            raise ValueError(f"MODEL.ZOOMIN.TEACHER.INPUT_SCALE must be a positive integer, got {scale}")
        if align in ("la", "fa") and scale != 2:
            raise ValueError(f"MODEL.ZOOMIN.ALIGN={align!r} needs a teacher at 2x input, got {scale:g}x")
        self.scale = int(scale)
        self.align = align

    @classmethod
    def from_config(cls, cfg) -> "CrossScaleGeometry":
        """The geometry of ``MODEL.ZOOMIN.TEACHER.INPUT_SCALE`` and ``MODEL.ZOOMIN.ALIGN``."""
        return cls(cfg.MODEL.ZOOMIN.TEACHER.INPUT_SCALE, cfg.MODEL.ZOOMIN.ALIGN)

    def __repr__(self) -> str:
        return f"CrossScaleGeometry(scale={self.scale}, align={self.align!r})"

    @property
    def grid_upsample(self) -> int:
        """Prediction grid cells per feature-map cell along each axis (LA: the scale, else 1)."""
        return self.scale if self.align == "la" else 1

    def prediction_strides(self, feature_strides: Sequence[int]) -> List[int]:
        """Strides (student pixels) of the grids on which predictions and anchors sit."""
        return [s // self.grid_upsample for s in feature_strides]

    def to_prediction_grid(self, feature: Tensor) -> Tensor:
        """A (N, C, H, W) map on the prediction grid: (N, C, u*H, u*W), nearest, u = grid_upsample."""
        if self.grid_upsample == 1:
            return feature
        return F.interpolate(feature, scale_factor=self.grid_upsample, mode="nearest")

    @staticmethod
    def padding_multiple(strides: Sequence[int]) -> int:
        """What a pyramid's input is padded to: its coarsest stride, so that every level's
        grid is exactly (H / stride, W / stride)."""
        return max(strides)

    def teacher_padded_size(self, student_padded_size: Sequence[int]) -> Tuple[int, int]:
        """(H, W) of the teacher's padded batch: exactly ``scale`` x the student's."""
        h, w = student_padded_size[-2:]
        return h * self.scale, w * self.scale

    def teacher_strides(self, prediction_strides: Sequence[int]) -> List[int]:
        """The teacher strides (teacher pixels) that LA/FA need: the prediction strides x scale."""
        return [s * self.scale for s in prediction_strides]

    def teacher_on_student_grid(self, teacher_map: Tensor, grid_size: Sequence[int]) -> Tensor:
        """A teacher map (N, C, h, w) on the student's (Hi, Wi) grid: average-pooled for
        ALIGN "none", unchanged for LA and FA (their grids already match)."""
        if self.align == "none":
            return F.adaptive_avg_pool2d(teacher_map, tuple(grid_size))
        return teacher_map

    def check_teacher_input(self, cfg, teacher_cfg, where: str) -> None:
        """The teacher config's training input must be ``scale`` x the student config's: the
        square or shortest-edge sizes, or with ``INPUT.NATIVE_DOWNSCALE`` the student's factor
        ``scale`` x the teacher's (both downscale the same crops of the original).

        Raises:
            ValueError: naming ``where`` (the teacher's config file) and both inputs.
        """
        s_k, t_k = cfg.INPUT.NATIVE_DOWNSCALE, teacher_cfg.INPUT.NATIVE_DOWNSCALE
        if s_k or t_k:
            if not (s_k and t_k and s_k == self.scale * t_k):
                raise ValueError(
                    f"MODEL.ZOOMIN.TEACHER.INPUT_SCALE is {self.scale} but the student's "
                    f"INPUT.NATIVE_DOWNSCALE is {s_k} and the teacher config {where} has {t_k} "
                    f"(needs {self.scale} x the teacher's, both > 0)"
                )
            return
        student, teacher = _input_size(cfg), _input_size(teacher_cfg)
        if teacher != self.scale * student:
            raise ValueError(
                f"MODEL.ZOOMIN.TEACHER.INPUT_SCALE is {self.scale} but the teacher config {where} "
                f"trains at {teacher} px and the student at {student} px (scale {teacher / student:g})"
            )


def _input_size(cfg) -> int:
    """The training input size a config describes: SQUARE_SIZE, else the largest short side."""
    return cfg.INPUT.SQUARE_SIZE if cfg.INPUT.SQUARE_SIZE > 0 else max(cfg.INPUT.MIN_SIZE_TRAIN)
