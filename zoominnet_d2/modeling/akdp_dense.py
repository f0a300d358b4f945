"""AKDP's dense path: the IoU map of a scope's levels computed with ``pairwise_iou`` in blocks
of consecutive anchors, for levels whose anchors are not a separable grid.

A block holds at most ``chunk_entries`` IoU entries (at least one anchor) and never spans two
levels. Within a block only the boxes that overlap the block's bounding box enter
``pairwise_iou``: the others have IoU 0 with all of its anchors. Anchors come in (y, x, a)
order, so a block is a band of rows and meets only part of the boxes of a crowded image.
When the whole map of the dense levels fits in one budget it is computed once and kept for the
marking pass; otherwise the marking pass recomputes the blocks.
"""
from typing import Dict, Iterator, List, Sequence, Tuple

import torch
from detectron2.structures import Boxes, pairwise_iou
from torch import Tensor

__all__ = ["DenseLevels"]


def _blocks(num_anchors: Sequence[int], num_gt: int, chunk_entries: int) -> Iterator[Tuple[int, int, int]]:
    """Yield (level position, start, end): anchor ranges of at most ``chunk_entries`` IoU
    entries (at least one anchor per block); a block never straddles two levels."""
    rows = max(1, chunk_entries // max(1, num_gt))
    for level, n in enumerate(num_anchors):
        for start in range(0, n, rows):
            yield level, start, min(n, start + rows)


def _overlap_iou(anchors: Tensor, gt: Boxes) -> Tuple[Tensor, Tensor]:
    """IoU of a block of anchors (K, 4) with the boxes that can overlap it.

    A box that does not overlap the bounding box of the whole block has IoU 0 with every
    anchor of it (``pairwise_iou`` returns 0 unless the intersection is positive), so it is
    left out. Zeros change neither the max, nor the sums (the entry count is the full one),
    nor ``iou > thresh`` with ``thresh >= 0``.

    Returns:
        iou: (K, G') IoU with the selected boxes; idx: (G',) their indices into ``gt``.
    """
    g = gt.tensor
    x1, y1 = anchors[:, 0].min(), anchors[:, 1].min()
    x2, y2 = anchors[:, 2].max(), anchors[:, 3].max()
    near = (g[:, 0] < x2) & (g[:, 2] > x1) & (g[:, 1] < y2) & (g[:, 3] > y1)
    idx = near.nonzero().squeeze(1)
    if idx.numel() == 0:
        return anchors.new_zeros((anchors.shape[0], 0)), idx
    return pairwise_iou(Boxes(anchors), Boxes(g[idx])), idx


class DenseLevels:
    """The dense-path levels of one AKDP scope.

    Args:
        levels: {level index in the scope: (anchors (numA, 4), (h, w, a))}.
        gt: the G ground-truth boxes.
        chunk_entries: IoU entries computed at once.
    """

    def __init__(self, levels: Dict[int, Tuple[Tensor, Tuple[int, int, int]]], gt: Boxes, chunk_entries: int):
        self.levels = levels
        self.gt = gt
        order = list(levels)
        counts = [int(levels[i][0].shape[0]) for i in order]
        self.blocks = [(order[j], s, e) for j, s, e in _blocks(counts, len(gt), chunk_entries)]
        self.keep = sum(counts) * len(gt) <= chunk_entries
        self.kept: List[Tuple[Tensor, Tensor]] = []

    def _iou(self, block: Tuple[int, int, int]) -> Tuple[Tensor, Tensor]:
        level, start, end = block
        return _overlap_iou(self.levels[level][0][start:end], self.gt)

    def accumulate(self, stats) -> None:
        """Pass 1: feed every block's IoU to ``stats`` (per-box max, sums)."""
        for block in self.blocks:
            iou, idx = self._iou(block)
            if self.keep:
                self.kept.append((iou, idx))
            if idx.numel():
                stats.add_dense(iou, idx)

    def mark(self, thresh: Tensor) -> Dict[int, Tensor]:
        """Pass 2 (Eqs. 16-17): {level index: (h*w,) bool}, the positions with an anchor whose
        IoU with some box exceeds that box's threshold ``thresh`` (G,)."""
        keys = {i: torch.zeros(int(t.shape[0]), dtype=torch.bool, device=t.device)
                for i, (t, _) in self.levels.items()}
        for b, block in enumerate(self.blocks):
            iou, idx = self.kept[b] if self.keep else self._iou(block)
            if idx.numel():
                level, start, end = block
                keys[level][start:end] = (iou > thresh[idx]).any(dim=1)
        return {i: k.view(h * w, a).any(dim=1) for i, k in keys.items()
                for h, w, a in [self.levels[i][1]]}
