"""Position-aware L2 distillation loss, ZoomInNet section 3.3.2, Eqs. 19-21.

    loss = sum_{n, c, i, j} mask(n, i, j) * (T(n, c, i, j) - S(n, c, i, j))^2 / sum mask

i.e. the squared error summed over the key positions of :mod:`.akdp` and over channels,
divided by the number of key positions in the batch (in multi-process training the caller
passes the whole batch's count over the processes divided by their number, so that DDP's
average of the processes' gradients is the gradient over the whole batch). The weight lambda_distill of Eq. 21
(0.01 in the paper) is applied by the caller. FGFI divides by 2 x (number of masked
positions); ZoomInNet's Eq. 21 does not, and neither do we.
"""
from typing import Optional

import torch
from torch import Tensor

__all__ = ["position_aware_l2"]


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
