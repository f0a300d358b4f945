"""Adaptive Key Distillation Positions (AKDP), ZoomInNet section 3.3.1, Eqs. 11-18.

For one image, one feature level with an Hi x Wi grid and A anchors per position, and G
ground-truth boxes:

- Eq. 11-12: ``IOU_map = pairwise_iou(anchors, gts)``, shape (Hi*Wi*A, G);
- Eq. 13: ``max_IOU(g)`` = max over the anchors of ``IOU_map[:, g]``, shape (G,);
- Eq. 15: ``lambda = mean(IOU_map) + std(IOU_map)`` over all entries (zeros included; the
  unbiased std, taken as 0 for a single entry), or a fixed ``lam``;
- Eq. 14: ``thresh(g) = lambda * max_IOU(g)``, computed in float64, compared in float32;
- Eq. 16-18: a position (y, x) is key when ``IOU_map[(y*Wi + x)*A + a, g] > thresh(g)`` for
  some anchor a and some ground truth g.

``scope="level"`` takes max_IOU and lambda per level, ``scope="image"`` over the anchors of all
levels together; the scope is always one image. An image without ground truth has no key
position. The IoU map of a crowded image (1,000 boxes x 200,000 anchors) is never held whole:
levels whose anchors form a separable grid take the window path (:mod:`.akdp_window`), the
others the dense block path (:mod:`.akdp_dense`), both bounded by ``chunk_entries``; they feed
the same :class:`IouStats`, so a scope may mix them. docs/DESIGN.md gives the reasoning and the
measured costs.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
from detectron2.structures import Boxes
from torch import Tensor

from .akdp_dense import DenseLevels
from .akdp_window import EntryBudget, WindowLevel, separable_grid

__all__ = ["IOU_CHUNK_ENTRIES", "akdp_mask", "akdp_masks_batch"]

#: Default upper bound on the number of IoU entries (anchors x boxes) computed at once.
IOU_CHUNK_ENTRIES = 1 << 21

AKDP_SCOPES = ("level", "image")


class IouStats:
    """Pass-1 statistics of one scope's IoU map: the per-box max (Eq. 13) and, for the
    adaptive lambda, float64 sums of the entries and their squares (Eq. 15)."""

    def __init__(self, gt: Tensor, adaptive: bool):
        self.max_iou = torch.zeros(len(gt), dtype=gt.dtype, device=gt.device)  # (G,)
        self.adaptive = adaptive
        self.total = torch.zeros((), dtype=torch.float64, device=gt.device)
        self.total_sq = torch.zeros((), dtype=torch.float64, device=gt.device)

    def _add_sums(self, iou: Tensor) -> None:
        if self.adaptive:
            self.total += iou.sum(dtype=torch.float64)
            self.total_sq += iou.square().sum(dtype=torch.float64)

    def add_dense(self, iou: Tensor, idx: Tensor) -> None:
        """A block's IoU (K, G') with the boxes ``idx`` (G',)."""
        self.max_iou[idx] = torch.maximum(self.max_iou[idx], iou.max(dim=0).values)
        self._add_sums(iou)

    def add_window(self, iou: Tensor, box: Tensor, cell_max: Tensor) -> None:
        """A chunk's IoU (K, a) of K candidate cells of boxes ``box`` (K,), best per cell (K,)."""
        self.max_iou.scatter_reduce_(0, box, cell_max, reduce="amax")
        self._add_sums(iou)

    def lam(self, num_entries: int) -> float:
        """mean + unbiased std over ``num_entries`` entries (std = 0 when there is one)."""
        if num_entries == 0:
            return 0.0
        total, total_sq = self.total.item(), self.total_sq.item()
        mean = total / num_entries
        if num_entries == 1:
            return mean
        var = max(0.0, (total_sq - total * total / num_entries) / (num_entries - 1))
        return mean + math.sqrt(var)


def _key_positions(levels: Sequence[Tuple[Tensor, Tuple[int, int, int]]], gt: Boxes,
                   lam: Optional[float], chunk_entries: int) -> List[Tensor]:
    """AKDP over one scope: ``levels`` are the (anchors (numA_l, 4), (h, w, a)) of the levels
    that share ``max_IOU`` and lambda. Returns one bool mask (h, w) per level."""
    g = gt.tensor
    masks = [torch.zeros(h * w, dtype=torch.bool, device=g.device) for _, (h, w, _a) in levels]
    num_entries = sum(int(t.shape[0]) for t, _ in levels) * len(gt)  # n of Eq. 15
    if num_entries:
        dense, windows = {}, {}
        for i, (t, (h, w, a)) in enumerate(levels):
            grid = separable_grid(t, h, w, a)
            if grid is None:
                dense[i] = levels[i]
            else:
                windows[i] = WindowLevel(grid, h, w, a, g, chunk_entries // a)
        dense_levels = DenseLevels(dense, gt, chunk_entries)
        stats = IouStats(g, adaptive=lam is None)
        dense_levels.accumulate(stats)
        budget = EntryBudget(chunk_entries)
        for win in windows.values():
            win.accumulate(stats, budget)
        if lam is None:
            lam = stats.lam(num_entries)
        thresh = (stats.max_iou.to(torch.float64) * lam).to(stats.max_iou.dtype)  # Eq. 14, (G,)
        for i, mask in dense_levels.mark(thresh).items():
            masks[i] = mask
        for i, win in windows.items():
            win.mark(thresh, masks[i])
    return [m.view(h, w) for m, (_, (h, w, _a)) in zip(masks, levels)]


def akdp_mask(
    anchors: List[Boxes],
    grid_sizes: List[Tuple[int, int]],
    gt_boxes: Boxes,
    *,
    scope: str = "level",
    lam: Optional[float] = None,
    chunk_entries: Optional[int] = None,
) -> List[Tensor]:
    """Key distillation positions of one image (Eqs. 11-18).

    Args:
        anchors: #lvl ``Boxes``, level l holding Hi*Wi*A anchors (XYXY) in Detectron2's
            ``DefaultAnchorGenerator`` order (y, x, a): anchor index (y*Wi + x)*A + a.
        grid_sizes: #lvl (Hi, Wi), the feature-map size of each level.
        gt_boxes: ``Boxes`` with G ground-truth boxes (XYXY, same frame as the anchors).
        scope: ``"level"`` - max_IOU and lambda per level; ``"image"`` - over the anchors of
            all levels together (see the module docstring).
        lam: a fixed lambda (e.g. 0.5 as in FGFI) instead of mean + std of the IoU map.
            With the adaptive lambda, a scope holding a single IoU entry has std = 0.
        chunk_entries: IoU entries per block (dense path) or chunk (window path), i.e. at
            most this many are computed at once, plus at most as many kept from pass 1 to
            pass 2 (default :data:`IOU_CHUNK_ENTRIES`; see the module docstring).

    Returns:
        list[BoolTensor]: #lvl masks, each of shape (Hi, Wi), on the anchors' device; True at
        key positions. All False when G == 0.

    Raises:
        ValueError: for an unknown scope, a length mismatch between ``anchors`` and
            ``grid_sizes``, or a level whose number of anchors is not a multiple of Hi*Wi.
    """
    if scope not in AKDP_SCOPES:
        raise ValueError(f"scope must be one of {AKDP_SCOPES}, got {scope!r}")
    if len(anchors) != len(grid_sizes):
        raise ValueError(f"{len(anchors)} anchor levels but {len(grid_sizes)} grid sizes")
    if chunk_entries is None:
        chunk_entries = IOU_CHUNK_ENTRIES
    if chunk_entries < 1:
        raise ValueError(f"chunk_entries must be >= 1, got {chunk_entries}")
    if not isinstance(gt_boxes, Boxes):
        gt_boxes = Boxes(gt_boxes)

    tensors, shapes = [], []  # per level: (numA, 4) anchors and (H, W, A)
    for level, (boxes, (h, w)) in enumerate(zip(anchors, grid_sizes)):
        t = (boxes if isinstance(boxes, Boxes) else Boxes(boxes)).tensor
        n = int(t.shape[0])
        if h * w == 0:
            if n:
                raise ValueError(f"level {level}: {n} anchors on an empty {h}x{w} grid")
            a = 0
        elif n % (h * w):
            raise ValueError(
                f"level {level}: {n} anchors is not a multiple of the grid size {h}x{w}={h * w}"
            )
        else:
            a = n // (h * w)
        tensors.append(t)
        shapes.append((h, w, a))

    device = tensors[0].device if tensors else gt_boxes.tensor.device
    if len(gt_boxes) == 0:
        return [torch.zeros(h, w, dtype=torch.bool, device=device) for h, w, _ in shapes]

    gt_boxes = Boxes(gt_boxes.tensor.to(device))
    levels = list(zip(tensors, shapes))
    if scope == "image":
        return _key_positions(levels, gt_boxes, lam, chunk_entries)
    return [_key_positions([lv], gt_boxes, lam, chunk_entries)[0] for lv in levels]


def akdp_masks_batch(
    anchors: List[Boxes],
    grid_sizes: List[Tuple[int, int]],
    gt_instances_boxes: List[Boxes],
    **kwargs,
) -> List[Tensor]:
    """:func:`akdp_mask` for a batch sharing the same anchors.

    Args:
        anchors, grid_sizes: as in :func:`akdp_mask` (#lvl entries).
        gt_instances_boxes: N ``Boxes``, the ground truth of each image
            (e.g. ``[x.gt_boxes for x in gt_instances]``).
        **kwargs: ``scope``, ``lam``, ``chunk_entries`` of :func:`akdp_mask`.

    Returns:
        list[BoolTensor]: #lvl masks, each of shape (N, Hi, Wi).
    """
    per_image = [akdp_mask(anchors, grid_sizes, gt, **kwargs) for gt in gt_instances_boxes]
    if not per_image:
        device = anchors[0].tensor.device if anchors else None
        return [torch.zeros(0, h, w, dtype=torch.bool, device=device) for h, w in grid_sizes]
    return [torch.stack(masks) for masks in zip(*per_image)]
