"""The VisDrone ignore rule: boxes mostly inside ignored regions are left out of evaluation.

VisDrone-DET annotates "ignored regions" (category 0): areas such as dense crowds or
far-away parking lots whose objects were not labelled one by one. The official toolkit
(VisDrone2018-DET-toolkit, ``utils/dropObjectsInIgr.m``) paints all ignored regions of an
image into one binary map and drops every ground-truth box and every detection whose area
covered by that map, divided by the box's own area, is >= 0.5. The map is the *union* of
the regions, so a box that lies 30% in one region and 30% in an adjacent one is dropped,
and a box inside two overlapping regions is not counted twice.

:func:`ignored_area` computes that covered area exactly, in continuous coordinates, without
painting a pixel map: the region edges split the plane into a grid of cells, each cell is
either inside the union or not, and the overlap of a box with the covered cells is a product
of 1-D overlaps, i.e. one matrix product per image. The COCO-API evaluation uses it on the
coordinates as they are (:func:`in_ignored_regions`). The toolkit instead paints each region
one pixel larger at its top and left edges, rounds the boxes and clamps them into the image,
so its decision differs for boxes within about a pixel of a region's edge;
:mod:`.official_protocol` reproduces it with :func:`ignored_area` on the toolkit's pixel
rectangles.
"""
import numpy as np

# A box with at least this share of its area inside ignored regions is left out (both protocols).
IGNORE_THRESHOLD = 0.5


def _as_xywh(array) -> np.ndarray:
    """``array`` as a float64 ``(N, 4)`` XYWH array (an empty input gives ``(0, 4)``)."""
    return np.asarray(array, dtype=np.float64).reshape(-1, 4)


def _overlap_1d(starts: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Length of ``[starts[n], ends[n]]`` inside each interval ``[edges[j], edges[j+1]]``."""
    lo = np.maximum(starts[:, None], edges[None, :-1])
    hi = np.minimum(ends[:, None], edges[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def ignored_area(boxes, regions) -> np.ndarray:
    """Area of each box covered by the union of the ignored regions.

    Args:
        boxes: ``(N, 4)`` boxes, XYWH (absolute pixels).
        regions: ``(M, 4)`` ignored regions, XYWH (absolute pixels).

    Returns:
        ``(N,)`` float64 array: the area of each box inside the union of ``regions``.
    """
    boxes, regions = _as_xywh(boxes), _as_xywh(regions)
    if len(boxes) == 0 or len(regions) == 0:
        return np.zeros(len(boxes))
    rx0, ry0 = regions[:, 0], regions[:, 1]
    rx1, ry1 = rx0 + regions[:, 2], ry0 + regions[:, 3]
    xs = np.unique(np.concatenate([rx0, rx1]))
    ys = np.unique(np.concatenate([ry0, ry1]))
    if len(xs) < 2 or len(ys) < 2:  # every region is degenerate (zero width or height)
        return np.zeros(len(boxes))
    # A grid cell is inside the union iff its centre is inside some region.
    cx, cy = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
    region_in_col = ((rx0[:, None] < cx) & (cx < rx1[:, None])).astype(np.float64)  # (M, X)
    region_in_row = ((ry0[:, None] < cy) & (cy < ry1[:, None])).astype(np.float64)  # (M, Y)
    covered = (region_in_row.T @ region_in_col) > 0  # (Y, X)

    bx0, by0 = boxes[:, 0], boxes[:, 1]
    overlap_x = _overlap_1d(bx0, bx0 + boxes[:, 2], xs)  # (N, X)
    overlap_y = _overlap_1d(by0, by0 + boxes[:, 3], ys)  # (N, Y)
    return ((overlap_y @ covered.astype(np.float64)) * overlap_x).sum(axis=1)


def in_ignored_regions(boxes, regions, threshold: float = IGNORE_THRESHOLD) -> np.ndarray:
    """Which boxes the VisDrone rule drops: ``ignored_area / own area >= threshold``.

    A degenerate box (zero width or height) has no area to divide by; it is dropped when its
    centre lies inside (or on the border of) an ignored region.

    Args:
        boxes: ``(N, 4)`` boxes, XYWH (absolute pixels).
        regions: ``(M, 4)`` ignored regions of the same image, XYWH (absolute pixels).
        threshold: the fraction of the box's own area (0.5 in the toolkit).

    Returns:
        ``(N,)`` bool array, True for the boxes to drop.
    """
    boxes, regions = _as_xywh(boxes), _as_xywh(regions)
    if len(boxes) == 0 or len(regions) == 0:
        return np.zeros(len(boxes), dtype=bool)
    area = boxes[:, 2] * boxes[:, 3]
    positive = area > 0
    drop = np.zeros(len(boxes), dtype=bool)
    drop[positive] = ignored_area(boxes[positive], regions) / area[positive] >= threshold

    centre = boxes[~positive, :2] + boxes[~positive, 2:] / 2  # (K, 2)
    inside = (
        (regions[None, :, :2] <= centre[:, None, :])
        & (centre[:, None, :] <= regions[None, :, :2] + regions[None, :, 2:])
    ).all(axis=2)  # (K, M)
    drop[~positive] = inside.any(axis=1)
    return drop
