"""AKDP's window path, for levels whose anchors form a separable grid (all
``DefaultAnchorGenerator`` levels): the IoU is computed only on the (box, cell) pairs that can
overlap, never on the whole anchors x boxes map.

Separable: anchor (y*Wi + x)*A + a is ``(x1[x, a], y1[y, a], x2[x, a], y2[y, a])``, its x
coordinates independent of its row and its y coordinates of its column; checked exactly on
every anchor (:func:`separable_grid`). Per box, only a window of grid columns x rows can hold
anchors that overlap it (:func:`_ragged_overlaps`); the candidate cells are enumerated box by
box and processed in chunks of a bounded number of IoU entries (:class:`WindowLevel`). Pass 2
needs per candidate (box, cell) only the best IoU over the cell's anchors, which is kept from
pass 1 while it fits an entry budget (:class:`EntryBudget`) and recomputed otherwise.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["EntryBudget", "WindowLevel", "separable_grid"]


class EntryBudget:
    """How many more IoU-sized entries (4 bytes each) may be kept from pass 1 to pass 2."""

    def __init__(self, entries: int):
        self.left = entries

    def take(self, entries: int) -> bool:
        """Reserve ``entries`` if they fit; returns whether they did."""
        if entries > self.left:
            return False
        self.left -= entries
        return True


def separable_grid(t: Tensor, h: int, w: int, a: int) -> Optional[Tuple[Tensor, ...]]:
    """The per-column x and per-row y coordinates of a level whose anchors form a separable
    grid, else None.

    Separable: ``anchors[(y*w + x)*a + k] == (x1[x, k], y1[y, k], x2[x, k], y2[y, k])``
    exactly, i.e. the x coordinates of an anchor do not depend on its row and the y
    coordinates not on its column. ``DefaultAnchorGenerator`` anchors (``shift + cell
    anchor``, the shifts from a meshgrid) are separable bit for bit, whatever the strides;
    anchors with per-cell sizes (or NaN) are not. Checked exactly on every anchor (a few
    comparisons per anchor, cheap next to the IoU work).

    Args:
        t: (h * w * a, 4) XYXY anchors of one level, in the order above.
        h, w, a: the level's grid height, width and anchors per cell.

    Returns:
        (x1, x2) of shape (w, a) and (y1, y2) of shape (h, a), contiguous float tensors.
    """
    if h * w * a == 0:
        return None
    g = t.reshape(h, w, a, 4)
    xs = g[0, :, :, 0::2]  # (w, a, 2): x1, x2 of row 0
    ys = g[:, 0, :, 1::2]  # (h, a, 2): y1, y2 of column 0
    if not torch.equal(g[..., 0::2], xs[None].expand(h, w, a, 2)):
        return None
    if not torch.equal(g[..., 1::2], ys[:, None].expand(h, w, a, 2)):
        return None
    return (xs[..., 0].contiguous(), xs[..., 1].contiguous(),
            ys[..., 0].contiguous(), ys[..., 1].contiguous())


def _ragged_overlaps(lo1: Tensor, hi2: Tensor, g_lo: Tensor, g_hi: Tensor):
    """Along one axis (x or y) of a separable grid, the window of grid columns (rows) of each
    box, and per window entry and cell anchor the 1-d overlap and anchor side length.

    ``lo1``/``hi2``: (n, a) anchor x1/x2 (or y1/y2) per column (row); ``g_lo``/``g_hi``: (G,)
    box x1/x2 (or y1/y2).

    A column can hold an anchor overlapping the box only if ``min_k lo1[x, k] < g_hi`` and
    ``max_k hi2[x, k] > g_lo``. With ``L`` the suffix minimum of ``min_k lo1`` and ``R`` the
    prefix maximum of ``max_k hi2`` (both non-decreasing), every such column satisfies
    ``L[x] < g_hi`` (a prefix of columns) and ``R[x] > g_lo`` (a suffix): the window
    ``[lo, hi)`` between them contains all of them, for any separable layout (no assumption
    on strides or monotonic anchors). Columns outside the window have overlap <= 0 with the
    box on this axis for all their anchors, hence intersection 0 and IoU 0.

    Returns:
        lo (G,) first column of each window, n_win (G,) its width (>= 0), off (G,) the offset
        of each box's window in the ragged arrays, ov (M, a) the overlap
        ``clamp(min(hi2, g_hi) - max(lo1, g_lo), 0)`` (pairwise_intersection's formula),
        side (M, a) ``hi2 - lo1``; M = n_win.sum().
    """
    suffix_min = lo1.amin(dim=1).flip(0).cummin(0).values.flip(0).contiguous()
    prefix_max = hi2.amax(dim=1).cummax(0).values.contiguous()
    lo = torch.searchsorted(prefix_max, g_lo.contiguous(), right=True)  # first R > g_lo
    hi = torch.searchsorted(suffix_min, g_hi.contiguous(), right=False)  # count of L < g_hi
    n_win = (hi - lo).clamp_(min=0)
    ends = n_win.cumsum(0)
    off = ends - n_win
    m = int(ends[-1]) if ends.numel() else 0
    box = torch.repeat_interleave(torch.arange(len(n_win), device=lo1.device), n_win, output_size=m)
    col = lo[box] + (torch.arange(m, device=lo1.device) - off[box])
    ov = torch.min(hi2[col], g_hi[box, None]) - torch.max(lo1[col], g_lo[box, None])
    ov.clamp_(min=0)
    side = hi2[col] - lo1[col]
    return lo, n_win, off, ov, side


class WindowLevel:
    """IoU of one separable-grid level on the candidate (box, cell) pairs only: for each box,
    the cells of its row window x column window (see :func:`_ragged_overlaps`), all ``a``
    anchors of each cell. Every other (anchor, box) entry of the IoU map is exactly 0.

    The candidate cells are numbered box by box (box-major, then row, then column) and
    processed in chunks of consecutive numbers, ``cells_per_chunk`` cells (x ``a`` IoU
    entries) at a time: memory stays bounded whatever the number of boxes.

    IoU is computed elementwise on the candidate pairs, not with ``pairwise_iou`` (which
    computes every anchor x box pair of its inputs), with the very same float32 operations:
    intersection = ``clamp(min(x2) - max(x1), 0) * clamp(min(y2) - max(y1), 0)``, areas
    ``(x2 - x1) * (y2 - y1)``, ``iou = where(inter > 0, inter / (area_anchor + area_box -
    inter), 0)`` - so the values are bit-identical to ``pairwise_iou``'s (tested).
    """

    def __init__(self, grid: Tuple[Tensor, ...], h: int, w: int, a: int, gt: Tensor,
                 cells_per_chunk: int):
        x1, x2, y1, y2 = grid
        self.w, self.a = w, a
        self.lo_x, self.nx, self.off_x, self.ov_x, self.side_x = _ragged_overlaps(
            x1, x2, gt[:, 0], gt[:, 2])
        self.lo_y, ny, self.off_y, self.ov_y, self.side_y = _ragged_overlaps(
            y1, y2, gt[:, 1], gt[:, 3])
        cells = self.nx * ny
        self.ends = cells.cumsum(0)
        self.starts = self.ends - cells
        self.num_cells = int(self.ends[-1]) if len(gt) else 0
        self.gt_area = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])  # Boxes.area
        # per box: first candidate number, window width, ragged offsets, window origin
        self.per_box = torch.stack(
            [self.starts, self.nx, self.off_x, self.off_y, self.lo_x, self.lo_y], dim=1)
        step = max(1, cells_per_chunk)
        self.chunks = [(s, min(self.num_cells, s + step)) for s in range(0, self.num_cells, step)]
        # chunk number -> (cell max (K,), box (K,), cell (K,)) kept by accumulate for mark
        self.kept = {}

    def iou(self, chunk: Tuple[int, int]) -> Tuple[Tensor, Tensor, Tensor]:
        """Returns iou (K, a) float32, box (K,) and cell index y*w + x (K,) of the chunk's
        K candidate cells."""
        k = torch.arange(chunk[0], chunk[1], device=self.ends.device)
        box = torch.searchsorted(self.ends, k, right=True)  # starts[box] <= k < ends[box]
        start, nx, off_x, off_y, lo_x, lo_y = self.per_box.index_select(0, box).unbind(1)
        local = k - start
        q = torch.div(local, nx, rounding_mode="floor")  # row within the window
        r = local - q * nx  # column within the window
        ix = off_x + r
        iy = off_y + q
        inter = self.ov_x.index_select(0, ix) * self.ov_y.index_select(0, iy)  # (K, a)
        area = self.side_x.index_select(0, ix) * self.side_y.index_select(0, iy)
        union = area + self.gt_area.index_select(0, box)[:, None] - inter
        iou = torch.where(inter > 0, inter / union,
                          torch.zeros(1, dtype=inter.dtype, device=inter.device))
        cell = (lo_y + q) * self.w + (lo_x + r)
        return iou, box, cell

    def accumulate(self, stats, budget: EntryBudget) -> None:
        """Pass 1: feed every chunk's IoU to ``stats``; keep (cell max, box, cell) of the
        chunks that fit ``budget`` (12 bytes = 3 entries per candidate cell)."""
        for c, chunk in enumerate(self.chunks):
            iou, box, cell = self.iou(chunk)  # (K, a), (K,), (K,)
            cell_max = iou.amax(dim=1)  # a cell is key for a box iff its best anchor is
            stats.add_window(iou, box, cell_max)
            if budget.take(3 * len(box)):
                self.kept[c] = (cell_max, box.to(torch.int32), cell.to(torch.int32))

    def mark(self, thresh: Tensor, mask: Tensor) -> None:
        """Pass 2 (Eqs. 16-17): set ``mask`` (h*w,) True at the cells with an anchor whose IoU
        with some box exceeds that box's threshold ``thresh`` (G,)."""
        for c, chunk in enumerate(self.chunks):
            kept = self.kept.pop(c, None)
            if kept is None:
                iou, box, cell = self.iou(chunk)
                cell_max = iou.amax(dim=1)
            else:
                cell_max, box, cell = kept
            hit = cell_max > thresh.index_select(0, box)
            mask[cell[hit].long()] = True
