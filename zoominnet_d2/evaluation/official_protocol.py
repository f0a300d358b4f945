"""The official VisDrone-DET metrics, computed as the MATLAB toolkit computes them.

The toolkit is VisDrone2018-DET-toolkit (``evalDET.m`` and ``utils/``); the VisDrone
literature reports its numbers. Its rules, each with the code it follows:

* Input (``saveAnnoRes.m``): per image, the annotation lines and the result lines in file
  order, and the image size. Annotation score 0 marks a box "ignore" (lines 14-15), matched
  as in :mod:`.official_matching`.
* Ignored regions (``dropObjectsInIgr.m``): the category-0 boxes, each coordinate raised to
  >= 1 (line 9), are painted into one ``height x width`` map over the 1-based inclusive
  rows ``y .. min(H, y+h)`` and columns ``x .. min(W, x+w)`` (line 14), so a region covers
  one more pixel row and column at its top and left than ``[x, x+w) x [y, y+h)``. Every other
  annotation line (also category 11) and every detection is rounded half away from zero
  (MATLAB's ``round``), raised to >= 1, its corner clamped into the image (lines 19-23); the
  map's sum over rows ``y+1 .. min(H, y+h)`` and columns ``x+1 .. min(W, x+w)`` (the integral
  image differences of lines 24-28) divided by the rounded ``w * h`` must be < 0.5 to keep it
  (line 29). Without ignored regions nothing is dropped (line 10).
* Detection cap (``calcAccuracy.m`` line 29): of the kept detections of an image, the first
  ``k`` lines, whatever their class, for ``k`` in 1, 10, 100, 500; lines of categories other
  than 1..10 take their place in the cap and match nothing.
* Matching (``evalRes.m``, ``compOas.m``) at the IoU thresholds ``0.5:0.05:0.95``
  (line 18), per image and class, highest score first with MATLAB's stable ``sort``.
* Accumulation (lines 25-46): the matches of all images are concatenated in image order and
  stably sorted by descending score; recall is ``tp / max(1, n)`` with ``n`` counting every
  annotation line of the class that survived the ignored regions, "ignore" ones included;
  AR at a cap is the final recall; AP (at cap 500) is VOC's all-point area
  (``VOCap.m``).
* Averages (lines 11-16, 50-56): a class enters once per image that has an annotation line
  of it, so classes are weighted by the number of images containing them; AP, AP50 (first
  threshold), AP75 (sixth), AR1..AR500 are means over those rows, in percent.

Sums are numpy's, so results equal MATLAB's up to floating-point summation order.
"""
from collections import Counter, OrderedDict
from typing import Dict, Sequence, Tuple

import numpy as np

from .ignore_regions import IGNORE_THRESHOLD, ignored_area
from .official_matching import greedy_match, image_pairs

CAPS = (1, 10, 100, 500)
NUM_CLASSES = 10
METRIC_KEYS = ("AP", "AP50", "AP75", "AR1", "AR10", "AR100", "AR500")


def iou_thresholds() -> np.ndarray:
    """MATLAB's ``0.5:0.05:0.95``, ``(10,)``.

    MATLAB builds ``a:d:b`` from both ends (the first half as ``a + k*d``, the second as
    ``b - k*d``), which gives 0.7999999999999999 where ``np.linspace`` gives 0.8.
    """
    k = np.arange(5.0)
    return np.concatenate([0.5 + k * 0.05, (0.95 - k * 0.05)[::-1]])


def matlab_round(values: np.ndarray) -> np.ndarray:
    """MATLAB's ``round``: to the nearest integer, halves away from zero (numpy rounds
    halves to even)."""
    magnitude = np.abs(values)
    floor = np.floor(magnitude)
    return np.copysign(floor + (magnitude - floor >= 0.5), values)


def outside_ignored_regions(boxes: np.ndarray, regions: np.ndarray, height: int,
                            width: int) -> np.ndarray:
    """``dropObjectsInIgr.m``: which boxes are kept.

    The painted map and the integral-image sums are pixel counts over integer rectangles,
    computed here exactly as areas of rectangle unions (:func:`.ignored_area`) instead of
    painting ``height x width`` pixels.

    Args:
        boxes: ``(N, 4)`` XYWH annotation or detection boxes, as read.
        regions: ``(M, 4)`` XYWH ignored regions (integers, as in annotation files).
        height, width: the image size.

    Returns:
        ``(N,)`` bool, True for the boxes kept.
    """
    if len(regions) == 0:
        return np.ones(len(boxes), dtype=bool)
    if not np.array_equal(regions, np.round(regions)):
        raise ValueError("Ignored regions must have integer coordinates (MATLAB indexes "
                         f"pixels with them), got {regions[regions != np.round(regions)][:3]}")
    rx, ry, rw, rh = np.maximum(1.0, regions).T
    painted = np.stack([rx - 1, ry - 1, np.minimum(width, rx + rw) - (rx - 1),
                        np.minimum(height, ry + rh) - (ry - 1)], axis=1)
    painted = painted[(painted[:, 2] > 0) & (painted[:, 3] > 0)]
    x, y, w, h = np.maximum(1.0, matlab_round(boxes)).T
    x, y = np.minimum(width, x), np.minimum(height, y)
    summed = np.stack([x, y, np.minimum(width, x + w) - x, np.minimum(height, y + h) - y], 1)
    return ignored_area(summed, painted) / (h * w) < IGNORE_THRESHOLD


def _voc_ap(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """``VOCap.m`` for each column of ``(n, T)`` recall / precision curves; ``(T,)``."""
    edge = np.zeros((1, recall.shape[1]))
    mrec = np.concatenate([edge, recall, edge + 1])
    mpre = np.concatenate([edge, precision, edge])
    mpre = np.maximum.accumulate(mpre[::-1], axis=0)[::-1]
    return ((mrec[1:] - mrec[:-1]) * mpre[1:]).sum(axis=0)  # steps of 0 add nothing


def _prepare(images: Sequence[Tuple[np.ndarray, np.ndarray, int, int]], counts: Dict):
    """Drop what the ignored regions cover, cap at 500 lines, find the candidate pairs.

    Returns per-detection arrays (image, class, line position, score, largest ignore-box
    overlap), per-class counts of annotation lines and of images, the pairs and the number
    of ground-truth boxes.
    """
    classes = np.arange(1, NUM_CLASSES + 1)
    min_overlap = iou_thresholds()[0]
    dets, pairs, n_gt, n_images = [], [], np.zeros(NUM_CLASSES), np.zeros(NUM_CLASSES, int)
    other_categories = Counter()
    offset_dt = offset_gt = 0
    for index, (gt, det, height, width) in enumerate(images):
        gt, det = np.asarray(gt, float).reshape(-1, 6), np.asarray(det, float).reshape(-1, 6)
        objects, regions = gt[gt[:, 5] != 0], gt[gt[:, 5] == 0, :4]
        kept_gt = outside_ignored_regions(objects[:, :4], regions, height, width)
        kept_dt = outside_ignored_regions(det[:, :4], regions, height, width)
        counts["gt_in_ignored_regions"] += int((~kept_gt).sum())
        counts["detections"] += len(det)
        other_categories.update(det[~np.isin(det[:, 5], classes), 5].tolist())
        counts["detections_in_ignored_regions"] += int((~kept_dt).sum())
        objects, det = objects[kept_gt], det[kept_dt]
        counts["detections_beyond_cap"] += max(0, len(det) - CAPS[-1])
        det = det[:CAPS[-1]]
        position = np.arange(len(det))
        in_classes = np.isin(det[:, 5], classes)
        det, position = det[in_classes], position[in_classes]
        objects = objects[np.isin(objects[:, 5], classes)]
        ignore = objects[:, 4] == 0
        counts["gt"] += len(objects)
        counts["gt_score_0"] += int(ignore.sum())

        cls = objects[:, 5].astype(int) - 1
        n_gt += np.bincount(cls, minlength=NUM_CLASSES)
        n_images[np.unique(cls)] += 1
        pair_dt, pair_gt, overlap, max_ignore = image_pairs(
            det[:, :4], det[:, 5], objects[:, :4], objects[:, 5], ignore, min_overlap)
        pairs.append((pair_dt + offset_dt, pair_gt + offset_gt, overlap))
        dets.append(np.column_stack([np.full(len(det), index), det[:, 5] - 1, position,
                                     det[:, 4], max_ignore]))
        offset_dt, offset_gt = offset_dt + len(det), offset_gt + len(objects)
    counts["detection_categories_outside_1_10"] = {
        f"{category:g}": n for category, n in sorted(other_categories.items())}
    pairs = [(np.zeros(0, int), np.zeros(0, int), np.zeros(0))] + pairs
    dets = np.concatenate([np.zeros((0, 5))] + dets)
    return dets, n_gt, n_images, tuple(np.concatenate(p) for p in zip(*pairs)), offset_gt


def evaluate_official(images: Sequence[Tuple[np.ndarray, np.ndarray, int, int]],
                      class_names: Sequence[str]) -> Tuple["OrderedDict[str, float]", Dict]:
    """The toolkit's AP, AP50, AP75, AR1, AR10, AR100, AR500 and per-class AP, in percent.

    Args:
        images: per image, in the toolkit's order (annotation file names, sorted), the tuple
            ``(gt, det, height, width)``: ``gt`` ``(G, 6)`` annotation lines and ``det``
            ``(D, 6)`` result lines ``[left, top, width, height, score, category]``, in file
            order (see :func:`.read_visdrone_txt`).
        class_names: the names of categories 1..10, for the keys ``AP-<name>``.

    Returns:
        ``(metrics, counts)``: the metrics (``METRIC_KEYS``, then ``AP-<name>`` per class:
        the mean over the thresholds of the class's AP; NaN where no image has the class,
        and all NaN without any ground truth), and counts: ``images``; ``gt``, the
        annotation lines of classes 1..10 left by the ignored regions, ``gt_score_0`` of
        them "ignore"; ``gt_in_ignored_regions`` (any category but 0); ``detections`` (all
        lines), ``detections_in_ignored_regions``, ``detections_beyond_cap`` (kept lines
        after the 500th); ``detection_categories_outside_1_10`` (``{category: lines}``).
    """
    counts = dict.fromkeys(("gt", "gt_score_0", "gt_in_ignored_regions", "detections",
                            "detections_in_ignored_regions", "detections_beyond_cap"), 0)
    counts["images"] = len(images)
    dets, n_gt, n_images, pairs, num_gt = _prepare(images, counts)
    image, cls, position, score, max_ignore = dets.T
    cls = cls.astype(int)
    thresholds = iou_thresholds()

    # Entries: (cap, detection) for the detections within each cap; rank within (cap, image,
    # class) by descending score, stable in line order (evalRes.m line 64).
    cap = np.concatenate([np.full(int((position < k).sum()), q) for q, k in enumerate(CAPS)])
    entry_dt = np.concatenate([np.nonzero(position < k)[0] for k in CAPS])
    order = np.lexsort((position[entry_dt], -score[entry_dt], cls[entry_dt],
                        image[entry_dt], cap))
    group = np.stack([cap, image[entry_dt], cls[entry_dt]])[:, order]
    new_group = np.r_[True, (group[:, 1:] != group[:, :-1]).any(axis=0)]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(order)), 0))
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(len(order)) - group_start
    tp = greedy_match(entry_dt, cap, rank, pairs, len(dets), num_gt, len(CAPS), thresholds)
    flag = np.where(tp, 1, np.where(max_ignore[entry_dt, None] >= thresholds, -1, 0))

    group_of_entry = cap * NUM_CLASSES + cls[entry_dt]
    recall = np.stack([np.bincount(group_of_entry, weights=tp[:, j],
                                   minlength=len(CAPS) * NUM_CLASSES)
                       for j in range(len(thresholds))], axis=1)
    recall = recall.reshape(len(CAPS), NUM_CLASSES, -1) / np.maximum(1, n_gt)[:, None] * 100

    ap = np.zeros((NUM_CLASSES, len(thresholds)))
    last = cap == len(CAPS) - 1
    e = entry_dt[last]
    rows = flag[last][np.lexsort((position[e], image[e], -score[e], cls[e]))]
    bounds = np.searchsorted(np.sort(cls[e]), np.arange(NUM_CLASSES + 1))
    for c in range(NUM_CLASSES):
        f = rows[bounds[c]:bounds[c + 1]]
        tps, fps = np.cumsum(f == 1, axis=0), np.cumsum(f == 0, axis=0)
        ap[c] = _voc_ap(tps / max(1, n_gt[c]), tps / np.maximum(1, tps + fps)) * 100

    weighted = np.repeat(np.arange(NUM_CLASSES), n_images)
    metrics = OrderedDict()
    nan = float("nan")
    for key, values in zip(METRIC_KEYS, (ap, ap[:, :1], ap[:, 5:6], *recall)):
        metrics[key] = float(values[weighted].mean()) if len(weighted) else nan
    for c, name in enumerate(class_names):
        metrics[f"AP-{name}"] = float(ap[c].mean()) if n_images[c] else nan
    return metrics, counts
