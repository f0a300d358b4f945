"""Detection-to-ground-truth matching of the official VisDrone-DET toolkit, vectorised.

The toolkit (VisDrone2018-DET-toolkit, ``utils/evalRes.m`` with ``utils/compOas.m``) matches
the detections of one image and class, highest score first, to its ground truth:

* overlap (``compOas.m``): IoU ``t / (area_dt + area_gt - t)`` with an ordinary box, and
  ``t / area_dt`` with a box marked "ignore" (annotation score 0); ``t = 0`` unless both the
  width and the height of the intersection are > 0;
* a detection takes, among the not yet matched ordinary boxes with overlap >= the threshold,
  the one of largest overlap; on equal overlaps the later box in file order (``evalRes.m``
  lines 74-96: ``oa < bstOa`` skips, so an equal overlap replaces the best so far);
* a detection with no such box is "ignored" (neither true nor false positive) when some
  ignore box overlaps it by >= the threshold (lines 81-83 stop at the first), else it is a
  false positive. Ignore boxes are never used up.

pycocotools' ``COCOeval.evaluateImg`` could match one set of detections the same way (its
bbox overlap is ``compOas.m``'s, crowd boxes would play the ignore boxes), but it is a
Python loop over thresholds x detections x boxes and would run once per detection cap:
about 70 s for 548 images x 500 detections on a 2-core machine, against the 10 s budget of
a VisDrone-val evaluation. Hence the code here. The greedy choice depends on the detections
before it, so :func:`greedy_match` walks the score ranks in order (at most the per-image
cap, 500) and handles, at each rank, the detection of that rank of every image,
class, detection cap and IoU threshold at once.
"""
from typing import Tuple

import numpy as np


def overlaps(dt: np.ndarray, gt: np.ndarray, ignore: bool) -> np.ndarray:
    """``compOas.m``: ``(D, G)`` overlaps of XYWH boxes ``dt`` ``(D, 4)`` and ``gt``
    ``(G, 4)``; IoU, or intersection over the detection's area when ``ignore``.

    The arithmetic follows ``compOas.m`` operation by operation, so that overlaps that land
    exactly on a threshold compare as in MATLAB.
    """
    dt_end, gt_end = dt[:, :2] + dt[:, 2:], gt[:, :2] + gt[:, 2:]
    w = np.minimum(dt_end[:, None, 0], gt_end[None, :, 0]) - np.maximum(dt[:, None, 0],
                                                                         gt[None, :, 0])
    h = np.minimum(dt_end[:, None, 1], gt_end[None, :, 1]) - np.maximum(dt[:, None, 1],
                                                                         gt[None, :, 1])
    t = w * h
    dt_area = (dt[:, 2] * dt[:, 3])[:, None]
    union = np.broadcast_to(dt_area, t.shape) if ignore else dt_area + gt[:, 2] * gt[:, 3] - t
    positive = (w > 0) & (h > 0)
    return np.divide(t, union, out=np.zeros_like(t), where=positive)


def image_pairs(dt_boxes: np.ndarray, dt_classes: np.ndarray, gt_boxes: np.ndarray,
                gt_classes: np.ndarray, gt_ignore: np.ndarray, min_overlap: float
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The candidate matches of one image.

    Args:
        dt_boxes, dt_classes: ``(D, 4)`` XYWH detections and ``(D,)`` their classes.
        gt_boxes, gt_classes, gt_ignore: ``(G, 4)`` XYWH ground truth, ``(G,)`` classes and
            ``(G,)`` bool "ignore" marks.
        min_overlap: the lowest IoU threshold; pairs below it can never match.

    Returns:
        ``(pair_dt, pair_gt, pair_overlap, max_ignore_overlap)``: the ``(P,)`` indices and IoU
        of the same-class (detection, ordinary box) pairs with IoU >= ``min_overlap``, and the
        ``(D,)`` largest overlap of each detection with an ignore box of its class (0 if none).
    """
    same_class = dt_classes[:, None] == gt_classes[None, :]
    regular = same_class & ~gt_ignore[None, :]
    iou = overlaps(dt_boxes, gt_boxes, ignore=False)
    pair_dt, pair_gt = np.nonzero(regular & (iou >= min_overlap))
    max_ignore = np.zeros(len(dt_boxes))
    if gt_ignore.any():
        iof = overlaps(dt_boxes, gt_boxes[gt_ignore], ignore=True)
        iof[~same_class[:, gt_ignore]] = 0.0
        max_ignore = iof.max(axis=1)
    return pair_dt, pair_gt, iou[pair_dt, pair_gt], max_ignore


def greedy_match(entry_dt: np.ndarray, entry_cap: np.ndarray, entry_rank: np.ndarray,
                 pairs: Tuple[np.ndarray, np.ndarray, np.ndarray], num_dt: int, num_gt: int,
                 num_caps: int, thresholds: np.ndarray) -> np.ndarray:
    """``evalRes.m``'s greedy assignment for many groups and thresholds at once.

    A group is one (image, class, detection cap): its entries are the detections of the
    image and class among the first ``cap`` lines, ranked by score. Entries of one rank
    belong to different groups and never compete for a box, so they are matched together.

    Args:
        entry_dt: ``(E,)`` the detection (index into the pairs' detection indices) of each
            entry.
        entry_cap: ``(E,)`` the index of the entry's detection cap.
        entry_rank: ``(E,)`` the entry's position in its group, highest score first.
        pairs: ``(pair_dt, pair_gt, pair_overlap)``, the ``(P,)`` candidate matches with
            detection and ground-truth indices over all images.
        num_dt, num_gt: the numbers of detections and ground-truth boxes.
        num_caps: the number of detection caps.
        thresholds: ``(T,)`` IoU thresholds.

    Returns:
        ``(E, T)`` bool: True where the entry matched an ordinary box (a true positive).
    """
    pair_dt, pair_gt, pair_overlap = pairs
    # Pairs of a detection by increasing overlap, then box order: its last valid pair is the
    # one evalRes.m keeps (largest overlap, the later box on ties).
    order = np.lexsort((pair_gt, pair_overlap, pair_dt))
    pair_gt, pair_overlap = pair_gt[order], pair_overlap[order]
    count = np.bincount(pair_dt, minlength=num_dt)
    start = np.cumsum(count) - count

    # Entries with candidates, by rank; their pairs laid out contiguously in the same order.
    entries = np.nonzero(count[entry_dt] > 0)[0]
    entries = entries[np.argsort(entry_rank[entries], kind="stable")]
    sizes = count[entry_dt[entries]]
    seg_start = np.cumsum(sizes) - sizes
    within = np.arange(sizes.sum()) - np.repeat(seg_start, sizes)
    flat = np.repeat(start[entry_dt[entries]], sizes) + within
    flat_gt, flat_overlap = pair_gt[flat], pair_overlap[flat]
    flat_cap = np.repeat(entry_cap[entries], sizes)
    ranks = entry_rank[entries]
    bounds = np.searchsorted(ranks, np.arange(ranks.max() + 2)) if len(ranks) else [0]

    tp = np.zeros((len(entry_dt), len(thresholds)), dtype=bool)
    matched = np.zeros((num_caps, num_gt, len(thresholds)), dtype=bool)
    for first, last in zip(bounds[:-1], bounds[1:]):  # one score rank at a time
        if first == last:
            continue
        lo, hi = seg_start[first], seg_start[last - 1] + sizes[last - 1]
        gt, cap = flat_gt[lo:hi], flat_cap[lo:hi]
        valid = (flat_overlap[lo:hi, None] >= thresholds) & ~matched[cap, gt]  # (P_r, T)
        key = np.where(valid, np.arange(hi - lo)[:, None], -1)
        best = np.maximum.reduceat(key, seg_start[first:last] - lo, axis=0)  # (E_r, T)
        row, column = np.nonzero(best >= 0)
        chosen = best[row, column]
        matched[cap[chosen], gt[chosen], column] = True
        tp[entries[first + row], column] = True
    return tp
