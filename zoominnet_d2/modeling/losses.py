"""Position-aware L2 distillation loss, ZoomInNet section 3.3.2, Eqs. 19-21.

    loss = sum_{n, c, i, j} mask(n, i, j) * (T(n, c, i, j) - S(n, c, i, j))^2 / sum mask

i.e. the squared error summed over the key positions of :mod:`.akdp` and over channels,
divided by the number of key positions in the batch (in multi-process training the caller
passes the whole batch's count over the processes divided by their number, so that DDP's
average of the processes' gradients is the gradient over the whole batch). The weight lambda_distill of Eq. 21
(0.01 in the paper) is applied by the caller. FGFI divides by 2 x (number of masked
positions); ZoomInNet's Eq. 21 does not, and neither do we.

:func:`level_scale_normalized` is the option ``MODEL.ZOOMIN.DISTILL_SCALE: "level_rms"``: each
level's teacher and student maps divided by their own root mean square before Eq. 19, so
that the loss ignores a per-level scale of either map (see the function).
:func:`distillation_loss` sums Eq. 21 over the level pairs that ZoomInNet distils.
"""
from typing import Optional, Sequence

import torch
from detectron2.utils import comm
from torch import Tensor
from torch.profiler import record_function

__all__ = ["distillation_loss", "level_scale_normalized", "position_aware_l2"]


def position_aware_l2(teacher: Tensor, student: Tensor, mask: Tensor,
                      num_positions: Optional[Tensor] = None) -> Tensor:
    """Eq. 21 without its weight.

    Args:
        teacher: (N, C, H, W) teacher feature; treated as a constant (detached).
        student: (N, C, H, W) student feature (after any adaptation layer).
        mask: (N, H, W) bool, True at the key distillation positions.
        num_positions: the normaliser, a scalar tensor; default: ``mask``'s count.

    Returns:
        Tensor: scalar, the summed squared error over masked positions and channels divided
        by the number of masked positions. Exactly 0 when nothing is masked (an image
        without boxes), still attached to ``student``'s graph so that backward gives a zero
        gradient instead of an error.

    Raises:
        ValueError: when the shapes do not match; TypeError when ``mask`` is not bool.
    """
    if teacher.dim() != 4 or teacher.shape != student.shape:
        raise ValueError(
            "teacher and student must both be (N, C, H, W) of the same shape, got "
            f"teacher {tuple(teacher.shape)} and student {tuple(student.shape)}"
        )
    n, _, h, w = student.shape
    if mask.shape != (n, h, w):
        raise ValueError(
            f"mask must be (N, H, W) = {(n, h, w)} for student {tuple(student.shape)}, "
            f"got mask {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")

    # Gather the masked positions first: (P, C) each, no (N, C, H, W) temporaries.
    idx_n, idx_y, idx_x = mask.to(student.device).nonzero(as_tuple=True)
    count = idx_n.numel()
    if count == 0:
        # `+ 0.0` turns the -0.0 of a negative sum times 0 into +0.0.
        return student.sum() * 0.0 + 0.0
    t = teacher.detach()[idx_n, :, idx_y, idx_x]
    s = student[idx_n, :, idx_y, idx_x]
    return (t - s).square().sum() / (count if num_positions is None else num_positions)


def level_scale_normalized(x: Tensor, eps: float = 1e-12) -> Tensor:
    """``x`` divided by its root mean square over all of its elements.

    A RetinaNet head with a BatchNorm per level (``MODEL.RETINANET.NORM``) gives the same
    output when a level's input map is multiplied by a positive number, so a teacher's
    per-level scale can drift in training without changing its detections: Detectron2's
    P6/P7 (``LastLevelP6P7``) have no normalisation of their own. Eq. 19 on such maps asks
    the student to copy that arbitrary scale. After this normalisation the distilled
    quantity is the map's pattern, and ``position_aware_l2`` of two normalised maps does not
    change when either map is scaled (its gradient has no component along the student map).

    Args:
        x: (N, C, H, W) one level's map of the whole batch (the student's keeps its graph).
        eps: floor of the mean square (an all-zero map stays zero).

    Returns:
        Tensor (N, C, H, W): ``x / sqrt(max(mean(x ** 2), eps))``.
    """
    return x / x.square().mean().clamp_min(eps).sqrt()


def distillation_loss(pairs, scale: str = "raw", levels: Optional[Sequence[int]] = None) -> Tensor:
    """Sum over the level pairs ``levels`` (default: all) of the position-aware L2 loss
    (Eq. 21) on the key positions; with ``scale`` "level_rms", of each level's maps divided
    by their root mean square.

    Args:
        pairs: a :class:`~zoominnet_d2.modeling.zoominnet.DistillationPairs` (``teacher``,
            ``student``: #lvl (N, C, H, W) maps; ``masks``: #lvl (N, H, W) bool).
        scale: "raw" or "level_rms" (``MODEL.ZOOMIN.DISTILL_SCALE``).
        levels: indices of the distilled pairs (``MODEL.ZOOMIN.DISTILL_LEVELS``).

    With several training processes each level's normaliser is the mean key-position count
    per process, so that DDP's gradient average equals the gradient of the loss over the whole
    batch (and the loss averaged over processes equals that loss). The root mean squares of
    "level_rms" are each process's own (of its part of the batch)."""
    with record_function("zoominnet.distill_loss"):
        normalisers = [None] * len(pairs.masks)
        world = comm.get_world_size()
        if world > 1:
            counts = torch.stack([m.sum() for m in pairs.masks]).float()
            torch.distributed.all_reduce(counts)
            normalisers = list(counts / world)
        total = 0.0
        levels = range(len(pairs.masks)) if levels is None else levels
        for level in levels:
            t, s, mask, n = pairs.teacher[level], pairs.student[level], pairs.masks[level], normalisers[level]
            if scale == "level_rms":
                t, s = level_scale_normalized(t), level_scale_normalized(s)
            total = total + position_aware_l2(t, s, mask, n)
        return total
