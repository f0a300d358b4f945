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
would take 800 MB, and nearly all of it is zeros. Two exact ways of evaluating it, chosen per
level; both feed the same per-box max and float64 sums, so a scope may mix them:

- Window path, for levels whose anchors form a *separable grid*: anchor (y*Wi + x)*A + a is
  ``(x1[x, a], y1[y, a], x2[x, a], y2[y, a])``, its x coordinates independent of its row and
  its y coordinates of its column. ``DefaultAnchorGenerator`` anchors (cell anchor + meshgrid
  shift) are, bit for bit, whatever the strides; this is checked exactly on every anchor
  (:func:`_separable_grid`), and anything else (per-cell sizes, NaN, one moved anchor) takes
  the dense path. Per box, only a window of grid columns x rows can hold anchors that overlap
  it: with ``L`` the suffix minimum over columns of the smallest anchor x1 and ``R`` the prefix
  maximum of the largest anchor x2 (both non-decreasing), every overlapping column has
  ``L < box x2`` and ``R > box x1``, so the window between the two ``searchsorted`` bounds
  contains them all (likewise for rows). This needs no stride or size assumption: the window
  is a superset, exact for any separable layout. The IoU is computed elementwise on the
  (box, cell, anchor) candidates only, with ``pairwise_iou``'s own float32 operations (same
  values bit for bit, tested; ``pairwise_iou`` itself would compute all anchors x boxes); the
  1-d overlaps ``clamp(min(x2) - max(x1), 0)`` are computed once per (box, window column,
  anchor) and per (box, window row, anchor) and multiplied per candidate. Every entry outside
  the windows is exactly 0: it changes neither the max, nor the sums (``n`` counts every entry
  of the map), nor ``IoU > thresh`` with ``thresh >= 0``. Candidates are enumerated box by box
  in a flattened (ragged) order and processed in chunks of at most ``chunk_entries`` IoU
  entries (at least one cell); pass 1 takes the per-box max (scatter-max) and the float64 sums,
  pass 2 marks the cells holding an anchor above its box's threshold (scatter-OR). Pass 2 only
  needs, per candidate (box, cell), the max IoU over the cell's anchors: that, the box and the
  cell (12 bytes, counted as 3 entries) are kept from pass 1 while they fit in
  ``chunk_entries``; chunks beyond are recomputed. Cost and memory grow with the number of candidates (~the boxes' areas plus the
  anchor extent), not anchors x boxes: LA anchors at 512 (196k), 90 boxes: ~7 ms instead of
  ~180 ms on one thread; 1,000 boxes x 786k anchors: ~0.15 s and < 100 MB.
- Dense path, for any other level: the IoU map is computed with ``pairwise_iou`` in blocks of
  consecutive anchors (a block never spans two levels) of at most ``chunk_entries`` IoU
  entries (``pairwise_iou``'s temporaries, ~24 bytes per entry, bring the transient peak to
  ~50 MB at the default budget). When the dense levels' whole map fits in one budget it is
  computed once; otherwise in two passes: pass 1 accumulates the per-box max IoU and the sums,
  pass 2 recomputes the blocks and marks the anchors above threshold. Within a block, only the
  boxes that overlap the block's bounding box enter ``pairwise_iou`` (the others have IoU 0
  with all of its anchors). Anchors come in (y, x, a) order, so a block is a band of rows and
  meets only a fraction of the boxes of a crowded image.

``chunk_entries`` defaults to :data:`IOU_CHUNK_ENTRIES` (2**21 = 2M entries = 8 MB in float32).
Lambda from the float64 sums: mean = sum / n, var = (sumsq - sum^2 / n) / (n - 1), clamped
at 0, with n = numA * G over the scope (zeros included). The two paths add the same float32
values in a different order, so lambda may differ in its last float64 bits between them; the
threshold is rounded to float32 afterwards (tested identical on random grid cases).

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


def _separable_grid(t: Tensor, h: int, w: int, a: int) -> Optional[Tuple[Tensor, ...]]:
    """The per-column x and per-row y coordinates of a level whose anchors form a separable
    grid, else None.

    Separable: ``anchors[(y*w + x)*a + k] == (x1[x, k], y1[y, k], x2[x, k], y2[y, k])``
    exactly, i.e. the x coordinates of an anchor do not depend on its row and the y
    coordinates not on its column. ``DefaultAnchorGenerator`` anchors (``shift + cell
    anchor``, the shifts from a meshgrid) are separable bit for bit, whatever the strides;
    anchors with per-cell sizes (or NaN) are not. Checked exactly on every anchor (a few
    comparisons per anchor, cheap next to the IoU work).

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


class _WindowLevel:
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


def _key_positions(
    levels: Sequence[Tuple[Tensor, Tuple[int, int, int]]],
    gt: Boxes,
    lam: Optional[float],
    chunk_entries: int,
) -> List[Tensor]:
    """AKDP over one scope: ``levels`` are the (anchors (numA_l, 4), (h, w, a)) of the levels
    that share ``max_IOU`` and lambda. Returns one bool mask (h, w) per level: the positions
    with an anchor whose IoU with some box exceeds that box's threshold.

    Separable-grid levels take the window path (:class:`_WindowLevel`), the others the dense
    block path (:func:`_overlap_iou`). Both feed the same per-box max and float64 sums."""
    num_gt = len(gt)
    g = gt.tensor
    device = g.device
    total_entries = sum(int(t.shape[0]) for t, _ in levels) * num_gt  # n of Eq. 15
    masks = [torch.zeros(h * w, dtype=torch.bool, device=device) for _, (h, w, _a) in levels]
    if total_entries == 0:
        return [m.view(h, w) for m, (_, (h, w, _a)) in zip(masks, levels)]

    dense, windows = [], []  # dense: level index; windows: (level index, _WindowLevel)
    for i, (t, (h, w, a)) in enumerate(levels):
        grid = _separable_grid(t, h, w, a)
        if grid is None:
            dense.append(i)
        else:
            windows.append((i, _WindowLevel(grid, h, w, a, g, chunk_entries // a)))
    dense_anchors = [int(levels[i][0].shape[0]) for i in dense]
    blocks = [(dense[j], s, e) for j, s, e in _blocks(dense_anchors, num_gt, chunk_entries)]
    # Dense blocks: one pass when their whole map fits the budget, keeping the blocks for
    # the marking step; otherwise pass 2 recomputes them. Window chunks: cached as long as
    # the cached entries fit the budget; the others are recomputed in pass 2.
    cache_dense = sum(dense_anchors) * num_gt <= chunk_entries
    dense_cache: List[Tuple[Tensor, Tensor]] = []
    window_cache = {}
    cached_entries = 0

    max_iou = torch.zeros(num_gt, dtype=g.dtype, device=device)  # Eq. 13, (G,)
    total = torch.zeros((), dtype=torch.float64, device=device)
    total_sq = torch.zeros((), dtype=torch.float64, device=device)

    def accumulate(iou: Tensor) -> None:
        nonlocal total, total_sq
        if lam is None:
            total += iou.sum(dtype=torch.float64)
            total_sq += iou.square().sum(dtype=torch.float64)

    for level, start, end in blocks:  # pass 1: per-box max and (adaptive lambda) the sums
        iou, idx = _overlap_iou(levels[level][0][start:end], gt)  # (end - start, G')
        if cache_dense:
            dense_cache.append((iou, idx))
        if idx.numel() == 0:
            continue
        max_iou[idx] = torch.maximum(max_iou[idx], iou.max(dim=0).values)
        accumulate(iou)
    for level, win in windows:
        for c, chunk in enumerate(win.chunks):
            iou, box, cell = win.iou(chunk)  # (K, a), (K,), (K,)
            cell_max = iou.amax(dim=1)  # a cell is key for a box iff its best anchor is
            max_iou.scatter_reduce_(0, box, cell_max, reduce="amax")
            accumulate(iou)
            # keep (cell max, box, cell) for pass 2: 12 bytes = 3 float32 entries per cell
            if cached_entries + 3 * len(box) <= chunk_entries:
                window_cache[level, c] = (cell_max, box.to(torch.int32), cell.to(torch.int32))
                cached_entries += 3 * len(box)

    if lam is None:  # Eq. 15
        lam = _lambda_from_sums(total.item(), total_sq.item(), total_entries)
    thresh = (max_iou.to(torch.float64) * lam).to(max_iou.dtype)  # Eq. 14, (G,)

    keys = {i: torch.zeros(int(levels[i][0].shape[0]), dtype=torch.bool, device=device)
            for i in dense}
    for b, (level, start, end) in enumerate(blocks):  # pass 2: Eqs. 16-17
        if cache_dense:
            iou, idx = dense_cache[b]
        else:
            iou, idx = _overlap_iou(levels[level][0][start:end], gt)
        if idx.numel():
            keys[level][start:end] = (iou > thresh[idx]).any(dim=1)
    for i, k in keys.items():
        h, w, a = levels[i][1]
        masks[i] = k.view(h * w, a).any(dim=1)
    for level, win in windows:
        for c, chunk in enumerate(win.chunks):
            cached = window_cache.pop((level, c), None)
            if cached is None:
                iou, box, cell = win.iou(chunk)
                cell_max = iou.amax(dim=1)
            else:
                cell_max, box, cell = cached
            hit = cell_max > thresh.index_select(0, box)
            masks[level][cell[hit].long()] = True
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
