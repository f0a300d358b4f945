"""A 3x3 convolution of a 2x nearest-upsampled map, computed on the 1x grid.

LA's final convs run on tower outputs upsampled 2x (nearest). Every 2x2 block of the
upsampled map repeats one input pixel, so the output pixel at (2i + a, 2j + b) of
``conv3x3(upsample2(x))`` only reads the 2x2 input pixels rows {i - 1 + a, i + a}, columns
{j - 1 + b, j + b}, with the 3x3 kernel's rows (and columns) summed into 2: phase 0 takes
[w0, w1 + w2], phase 1 [w0 + w1, w2]. Four 2x2 convolutions on the 1x grid (one per output
phase) and a pixel shuffle give the same values, up to floating-point summation order, with
16 instead of 36 multiply-adds per input pixel and no upsampled copy of the towers.

The paper's GFLOPs (Table 3) count the upsample-then-conv form; ``tools/count_flops.py``
counts that form; ``MODEL.ZOOMIN.SUBPIXEL_INFERENCE`` turns this one on for inference.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# For output phase p (0 or 1), which of the 3 kernel rows add into each of the 2 rows of the
# phase's 2x2 kernel: row 0 reads input row i - 1 + p, row 1 input row i + p.
_PHASE_ROWS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]],
                            [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


def phase_kernels(weight: Tensor) -> Tensor:
    """The four 2x2 kernels of a 3x3 kernel applied after 2x nearest upsampling.

    Args:
        weight: (O, C, 3, 3).

    Returns:
        (2, 2, O, C, 2, 2): ``[a, b]`` is the kernel of the output phase (row a, column b).
    """
    rows = _PHASE_ROWS.to(dtype=weight.dtype, device=weight.device)
    return torch.einsum("api,ocij,bqj->abocpq", rows, weight, rows)


def check_conv(conv: nn.Conv2d) -> None:
    """Refuse a conv that the phase decomposition does not cover."""
    if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) or conv.groups != 1 \
            or conv.dilation != (1, 1):
        raise ValueError(f"needs a 3x3, stride 1, padding 1, ungrouped conv; got {conv}")


def phase_conv(x: Tensor, kernels: Tensor, bias: Optional[Tensor]) -> Tensor:
    """The four phase convolutions of ``kernels`` (from :func:`phase_kernels`) on ``x``,
    interleaved into the 2x grid.

    Args:
        x: (N, C, H, W).

    Returns:
        (N, O, 2H, 2W).
    """
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    phases = [F.conv2d(padded[:, :, a:a + h + 1, b:b + w + 1], kernels[a, b], bias)
              for a in (0, 1) for b in (0, 1)]
    # (N, O, 4, H, W) -> channels o * 4 + 2a + b, the layout pixel_shuffle interleaves.
    stacked = torch.stack(phases, dim=2).flatten(1, 2)
    return F.pixel_shuffle(stacked, 2)


def conv3x3_of_upsampled(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(F.interpolate(x, scale_factor=2, mode="nearest"))`` for a 3x3, stride-1,
    padding-1, ungrouped ``conv``, computed on the 1x grid.

    Args:
        x: (N, C, H, W).

    Returns:
        (N, O, 2H, 2W).
    """
    check_conv(conv)
    return phase_conv(x, phase_kernels(conv.weight), conv.bias)
