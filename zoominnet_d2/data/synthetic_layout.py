"""Where the synthetic drone dataset's objects and ignored regions go.

At VisDrone's pixel sizes the 128 px student frame is a 1/4 x 1/4 tile of the paper's 512 px
input, so a frame's box count follows VisDrone's non-empty tiles: ``1 + NegativeBinomial``
with mean ``BOXES_MEAN`` and shape ``BOXES_SHAPE`` (mean 6, median 3, 90th percentile 15),
capped at ``BOXES_CAP``. Objects come in groups as in VisDrone: people in crowds (Gaussian
scatter around a centre), vehicles in rows, along a road of the background when there is one,
each next to the previous with a small gap. A box that cannot be placed there (outside the
frame, on an ignored region, or overlapping a placed box by more than ``MAX_OVERLAP`` of the
smaller one) is tried at uniform random positions with the same class and size, so placement
decides positions only, not the class mix or the sizes.
"""
from typing import List, Sequence, Tuple

import numpy as np

from .synthetic_objects import CLASSES, IDS, WEIGHTS, sample_size

BOXES_MEAN, BOXES_SHAPE, BOXES_CAP = 6.0, 0.6, 60
GROUP_MEAN = 4.0  # mean members of a crowd or row
MAX_OVERLAP = 0.15
RANDOM_TRIES = 40
SIZE_REDRAWS = 3  # new sizes of the same class for a box that found no room
IGNORED_PROBABILITY = 0.5  # frames with ignored regions
IGNORED_SIDES = (14, 40)  # side range of an ignored rectangle at 256 px
Box = Tuple[int, int, int, int]  # x, y, w, h
Road = Tuple[int, int, int]  # axis (0: horizontal band, 1: vertical band), offset, width


def sample_count(rng, area_scale: float) -> int:
    """Boxes in a frame of ``area_scale`` times the reference frame's area (at least 1)."""
    extra = BOXES_MEAN - 1
    count = 1 + rng.negative_binomial(BOXES_SHAPE, BOXES_SHAPE / (BOXES_SHAPE + extra))
    return max(1, round(min(count, BOXES_CAP) * area_scale))


def sample_classes(rng, count: int) -> np.ndarray:
    """``count`` categories drawn independently with the VisDrone shares."""
    return rng.choice(IDS, count, p=WEIGHTS)


def ignored_regions(rng, size: int, scale: float) -> List[Box]:
    """0 (half the frames) or 1-2 rectangles of ``IGNORED_SIDES`` px (times ``scale``)."""
    if rng.random() >= IGNORED_PROBABILITY:
        return []
    regions = []
    for _ in range(rng.integers(1, 3)):
        rw, rh = (max(4, round(s * scale)) for s in rng.integers(*IGNORED_SIDES, 2))
        regions.append((int(rng.integers(0, size - rw + 1)), int(rng.integers(0, size - rh + 1)),
                        rw, rh))
    return regions


def _overlap(a: Box, b: Box) -> int:
    """Intersection area of boxes ``a`` and ``b``."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(iw, 0) * max(ih, 0)


def _fits(box: Box, size: int, placed: Sequence[Box], ignored: Sequence[Box]) -> bool:
    """Inside the frame, off the ignored regions, and overlapping no placed box much."""
    x, y, w, h = box
    return (x >= 0 and y >= 0 and x + w <= size and y + h <= size
            and not any(_overlap(box, r) for r in ignored)
            and all(_overlap(box, o) <= MAX_OVERLAP * min(w * h, o[2] * o[3]) for o in placed))


def _groups(rng, members: np.ndarray) -> List[np.ndarray]:
    """Split object indices into consecutive groups of ``1 + Poisson(GROUP_MEAN - 1)``."""
    groups, start = [], 0
    while start < len(members):
        n = 1 + int(rng.poisson(GROUP_MEAN - 1))
        groups.append(members[start:start + n])
        start += n
    return groups


def _crowd(rng, sizes, size: int) -> List[Tuple[int, int]]:
    """Top-left corners of a crowd: box centres scattered around a random centre."""
    cx, cy = rng.uniform(0, size, 2)
    spread = 0.8 * np.mean([np.sqrt(w * h) for w, h in sizes]) * np.sqrt(len(sizes))
    return [(int(round(cx + dx - w / 2)), int(round(cy + dy - h / 2)))
            for (w, h), (dx, dy) in zip(sizes, rng.normal(0, spread, (len(sizes), 2)))]


def _row(rng, sizes, size: int, roads: Sequence[Road], scale: float) -> List[Tuple[int, int]]:
    """Top-left corners of a row: along a road (70%, when there is one) or a random line,
    each box after the previous with a gap of 1-8 px (times ``scale``)."""
    if roads and rng.random() < 0.7:
        axis, offset, width = roads[rng.integers(len(roads))]
        lateral = offset + rng.uniform(0, width)
    else:
        axis, lateral = int(rng.integers(2)), rng.uniform(0, size)
    position = rng.uniform(-0.2, 0.8) * size
    corners = []
    for w, h in sizes:
        along, across = (w, h) if axis == 0 else (h, w)
        jitter = rng.normal(0, 1.5 * scale)
        start, side = int(round(position)), int(round(lateral - across / 2 + jitter))
        corners.append((start, side) if axis == 0 else (side, start))
        position += along + rng.uniform(1, 8) * scale
    return corners


def _find_room(rng, corner, w: int, h: int, size: int, placed, ignored):
    """The box at ``corner``, else at the first of ``RANDOM_TRIES`` random corners, that fits."""
    candidates = [corner] + [(int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1)))
                             for _ in range(RANDOM_TRIES)]
    boxes = [o[:4] for o in placed]
    return next(((x, y, w, h) for x, y in candidates if _fits((x, y, w, h), size, boxes, ignored)),
                None)


def place_objects(rng, classes: np.ndarray, size: int, roads: Sequence[Road],
                  ignored: Sequence[Box], scale: float) -> List[tuple]:
    """``(x, y, w, h, category)`` of objects of ``classes`` (sizes drawn here), largest first.

    A box that fits neither its group position nor a random one gets a new size of its class
    (up to ``SIZE_REDRAWS`` times, then it is left out), so failures keep the class mix; they
    are rare (a few percent, mostly frames holding a box of nearly the frame's size)."""
    sizes = [sample_size(rng, int(c), scale) for c in classes]
    kinds = np.array([CLASSES[int(c)].kind for c in classes])
    groups = [(kind, group) for kind in ("vehicle", "person")
              for group in _groups(rng, np.flatnonzero(kinds == kind))]
    corners = {}
    for kind, group in groups:
        group_sizes = [sizes[i] for i in group]
        corners.update(zip(group, _row(rng, group_sizes, size, roads, scale) if kind == "vehicle"
                           else _crowd(rng, group_sizes, size)))
    placed: List[tuple] = []
    # Largest first: a large box finds room before the small ones fill the frame.
    for i in sorted(corners, key=lambda i: -sizes[i][0] * sizes[i][1]):
        box = _find_room(rng, corners[i], *sizes[i], size, placed, ignored)
        for _ in range(SIZE_REDRAWS if box is None else 0):
            w, h = sample_size(rng, int(classes[i]), scale)
            box = _find_room(rng, corners[i], w, h, size, placed, ignored)
            if box is not None:
                break
        if box is not None:
            placed.append(box + (int(classes[i]),))
    return placed
