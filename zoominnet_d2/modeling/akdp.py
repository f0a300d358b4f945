"""Adaptive Key Distillation Positions (AKDP), ZoomInNet section 3.3.1, Eqs. 11-18.

For one image, one feature level with an Hi x Wi grid and A anchors per position, and G
ground-truth boxes:

- Eq. 11-12: ``IOU_map = pairwise_iou(anchors, gts)``, shape (Hi*Wi*A, G);
- Eq. 13: ``max_IOU(g)`` = max over the anchors of ``IOU_map[:, g]``, shape (G,);
- Eq. 15: ``lambda = mean(IOU_map) + std(IOU_map)`` over all entries;
- Eq. 14: ``thresh(g) = lambda * max_IOU(g)``;
- Eq. 16-18: a position (y, x) is key when ``IOU_map[(y*Wi + x)*A + a, g] > thresh(g)`` for
  some anchor a and some ground truth g (Eq. 17 sums the 0/1 mask over a and g; the paper
  then states that ``mask_final`` holds only 0 and 1, i.e. the sum is read as "any").

What the paper leaves open, and what this module chooses (DESIGN-NOTES section 4):

- Scope of Eqs. 13 and 15 when the detector has several FPN levels. ``scope="level"``
  (default): every level on its own - its own ``max_IOU``, mean and std - which is the
  paper's single-feature-map description applied per level. ``scope="image"``: ``max_IOU``
  and lambda over the anchors of all levels together (the concatenated IoU map); the mask
  is still returned per level. The scope is always one image.
- The std of Eq. 15 is torch's default, the unbiased (n - 1) estimator. With a single entry
  in scope (one anchor and one box) that is NaN: we take std = 0 then, so lambda = the IoU.
- ``lam`` replaces the adaptive lambda by a constant (FGFI, Wang et al. CVPR 2019, uses 0.5).
- Eq. 15's mean and std are over every entry of the map, zeros included (as written). Each box
  overlaps only a small fraction of the anchors, so the map is mostly zeros and lambda is
  small: measured 0.01-0.03 on 1024x1088 RetinaNet anchors with 5-1,000 small boxes, where
  the threshold is then 1-3 % of each box's best IoU and nearly every anchor touching a box
  is key (coarse levels become all key). ``lam=0.5`` (FGFI) gives much sparser masks.
- Comparisons are strict (``>``), as in Eq. 16. A level whose IoU map is all zero has
  ``max_IOU = 0``, so ``thresh = 0`` and no position is key; an image without ground truth
  has no key position at all.

Memory and time: the IoU map of a crowded VisDrone image (1,000 boxes x 200,000 anchors)
would take 800 MB. It is computed in blocks of consecutive anchors (a block never spans two
levels) of at most ``chunk_entries`` IoU entries (default :data:`IOU_CHUNK_ENTRIES`,
2**21 = 2M entries = 8 MB in float32; ``pairwise_iou``'s temporaries, ~24 bytes per entry,
bring the transient peak to ~50 MB). When a scope's whole map fits in one budget it is computed
once; otherwise in two passes: pass 1 accumulates the per-box max IoU and, in float64, the
sum and sum of squares of all entries (var = (sumsq - sum^2/n) / (n - 1), clamped at 0);
pass 2 recomputes the blocks and marks the anchors above threshold. Within a block, only the
boxes that overlap the block's bounding box enter ``pairwise_iou``: the others have IoU 0
with all of its anchors, which changes neither the max, nor the sums (``n`` counts every
entry), nor ``IoU > thresh``. Anchors come in (y, x, a) order, so a block is a band of rows
and meets only a fraction of the boxes of a crowded image.

Detectron2's ``Boxes`` hold float32, so the IoU is float32; the threshold is computed in
float64 and rounded to float32 for the comparison.
"""
import math
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from detectron2.structures import Boxes, pairwise_iou
from torch import Tensor

__all__ = ["IOU_CHUNK_ENTRIES", "akdp_mask", "akdp_masks_batch"]

#: Default upper bound on the number of IoU entries (anchors x boxes) computed at once.
IOU_CHUNK_ENTRIES = 1 << 21

_SCOPES = ("level", "image")


def _blocks(
    num_anchors: Sequence[int], num_gt: int, chunk_entries: int
) -> Iterator[Tuple[int, int, int]]:
    """Yield (level, start, end): anchor ranges of at most ``chunk_entries`` IoU entries
    (at least one anchor per block); a block never straddles two levels."""
    rows = max(1, chunk_entries // max(1, num_gt))
    for level, n in enumerate(num_anchors):
        for start in range(0, n, rows):
            yield level, start, min(n, start + rows)


def _lambda_from_sums(total: float, total_sq: float, n: int) -> float:
    """mean + unbiased std from float64 sums over n entries (std = 0 when n <= 1)."""
    if n == 0:
        return 0.0
    mean = total / n
    if n == 1:
        return mean
    var = max(0.0, (total_sq - total * total / n) / (n - 1))
    return mean + math.sqrt(var)


def _overlap_iou(anchors: Tensor, gt: Boxes) -> Tuple[Tensor, Tensor]:
    """IoU of a block of anchors with the boxes that can overlap it.

    A box that does not overlap the bounding box of the whole block has IoU 0 with every
    anchor of it (``pairwise_iou`` returns 0 unless the intersection is positive), so it is
    left out: in a crowded image most boxes are far from a given block of anchors, which
    makes the blocks much cheaper. Zeros change neither the max, nor the sums (the entry
    count ``n`` is the full one), nor ``iou > thresh`` with ``thresh >= 0``.

    Returns:
        iou: (numA_block, G') IoU with the selected boxes;
        idx: (G',) their indices into ``gt``.
    """
    g = gt.tensor
    x1, y1 = anchors[:, 0].min(), anchors[:, 1].min()
    x2, y2 = anchors[:, 2].max(), anchors[:, 3].max()
    near = (g[:, 0] < x2) & (g[:, 2] > x1) & (g[:, 1] < y2) & (g[:, 3] > y1)
    idx = near.nonzero().squeeze(1)
    if idx.numel() == 0:
        return anchors.new_zeros((anchors.shape[0], 0)), idx
    return pairwise_iou(Boxes(anchors), Boxes(g[idx])), idx


def _key_anchors(
    anchors: Sequence[Tensor], gt: Boxes, lam: Optional[float], chunk_entries: int
) -> List[Tensor]:
    """AKDP over one scope: ``anchors`` are the (numA_l, 4) anchor tensors of the levels that
    share ``max_IOU`` and lambda. Returns one bool tensor (numA_l,) per level: the anchors
    whose IoU with some box exceeds that box's threshold."""
    num_gt = len(gt)
    num_anchors = [int(a.shape[0]) for a in anchors]
    total_entries = sum(num_anchors) * num_gt
    device = gt.tensor.device
    keys = [torch.zeros(n, dtype=torch.bool, device=device) for n in num_anchors]
    if total_entries == 0:
        return keys
    blocks = list(_blocks(num_anchors, num_gt, chunk_entries))
    # One pass when the whole map fits the budget: keep the blocks for the marking step.
    cache: Optional[List[Tuple[Tensor, Tensor]]] = [] if total_entries <= chunk_entries else None

    max_iou = torch.zeros(num_gt, dtype=gt.tensor.dtype, device=device)  # Eq. 13, (G,)
    total = torch.zeros((), dtype=torch.float64, device=device)
    total_sq = torch.zeros((), dtype=torch.float64, device=device)
    for level, start, end in blocks:  # pass 1: per-box max and (adaptive lambda) the sums
        iou, idx = _overlap_iou(anchors[level][start:end], gt)  # (end - start, G')
        if cache is not None:
            cache.append((iou, idx))
        if idx.numel() == 0:
            continue
        max_iou[idx] = torch.maximum(max_iou[idx], iou.max(dim=0).values)
        if lam is None:
            total += iou.sum(dtype=torch.float64)
            total_sq += iou.square().sum(dtype=torch.float64)

    if lam is None:  # Eq. 15
        lam = _lambda_from_sums(total.item(), total_sq.item(), total_entries)
    thresh = (max_iou.to(torch.float64) * lam).to(max_iou.dtype)  # Eq. 14, (G,)
    for i, (level, start, end) in enumerate(blocks):  # pass 2: Eqs. 16-17
        iou, idx = cache[i] if cache is not None else _overlap_iou(anchors[level][start:end], gt)
        if idx.numel():
            keys[level][start:end] = (iou > thresh[idx]).any(dim=1)
    return keys


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
        chunk_entries: at most this many IoU entries are materialised at once (default
            :data:`IOU_CHUNK_ENTRIES`).

    Returns:
        list[BoolTensor]: #lvl masks, each of shape (Hi, Wi), on the anchors' device; True at
        key positions. All False when G == 0.

    Raises:
        ValueError: for an unknown scope, a length mismatch between ``anchors`` and
            ``grid_sizes``, or a level whose number of anchors is not a multiple of Hi*Wi.
    """
    if scope not in _SCOPES:
        raise ValueError(f"scope must be one of {_SCOPES}, got {scope!r}")
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
    if scope == "image":
        keys = _key_anchors(tensors, gt_boxes, lam, chunk_entries)
    else:
        keys = [_key_anchors([t], gt_boxes, lam, chunk_entries)[0] for t in tensors]
    return [k.view(h, w, a).any(dim=2) for k, (h, w, a) in zip(keys, shapes)]


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
