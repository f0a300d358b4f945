"""Objects of the synthetic drone dataset: per-class size statistics, appearance and drawing.

Sizes follow VisDrone-DET train (``docs/VISDRONE_STATISTICS.md``, measured by
``tools/visdrone_statistics.py``) at the synthetic frame's 256 px, which stands for the
teacher's input (VisDrone squashed to 1024 x 1024; the student sees 128 px for 512). Per class
the side ``s = sqrt(w h)`` and the aspect ``a = w / h`` are log-normal with the measured
median and sigma of their logarithm, ``w = s sqrt(a)``, ``h = s / sqrt(a)``; objects keep the
orientation of their aspect (no rotation), so pedestrians stand upright as in VisDrone.

Classes differ by shape (ellipse, ring, rounded or plain rectangle), colour palette and a
coarse internal pattern (truck cab, bus windows, ...), except two fine-pattern pairs:
car/van and pedestrian/people share palette and shape; van adds 1-px horizontal stripes and
people a 1-px checkerboard of +-``FINE_AMPLITUDE`` grey levels in absolute image coordinates
(row / row + column parity). Every 2x2 block aligned with the pixel grid averages back to the
flat colour, so the student's 2x downsampled view loses the difference the teacher's view
shows. Patterns are luminance only and colours stay within ``[_LO, _HI]``, so they never clip.
"""
from typing import NamedTuple, Tuple

import numpy as np

FINE_AMPLITUDE = 30.0
_LO, _HI = 60.0, 190.0  # object colour range: +-FINE_AMPLITUDE after contrast stays in 0..255
REFERENCE_SIZE = 256  # frame side the size statistics are given for; other sizes scale them
SIDE_RANGE = (4.0, 200.0)  # clip of the side s at REFERENCE_SIZE, px

_VEHICLES = np.array([[190, 190, 190], [150, 150, 155], [170, 55, 50], [55, 75, 150],
                      [75, 75, 80], [185, 175, 140]], float)
_CLOTHES = np.array([[180, 65, 60], [65, 85, 170], [190, 170, 75], [75, 140, 85]], float)
_BICYCLES = np.array([[45, 45, 50], [95, 75, 55]], float)
_TRUCKS = np.array([[200, 120, 45], [90, 130, 95]], float)
_TRICYCLES = np.array([[60, 140, 170], [170, 90, 150]], float)
_AWNINGS = np.array([[70, 150, 60], [190, 65, 55]], float)
_BUSES = np.array([[200, 180, 45], [60, 120, 180]], float)
_MOTORS = np.array([[45, 45, 50], [150, 35, 35]], float)


class ObjectClass(NamedTuple):
    share: float  # VisDrone train share of the boxes, used as the sampling weight
    side: float  # median side sqrt(w h) at REFERENCE_SIZE, px
    side_sigma: float  # standard deviation of ln(side)
    aspect: float  # median w / h at the square input
    aspect_sigma: float  # standard deviation of ln(w / h)
    shape: str
    pattern: str
    palette: np.ndarray
    kind: str  # how objects group: "person" (crowds) or "vehicle" (rows)


CLASSES = {
    1: ObjectClass(0.231, 15.8, 0.61, 0.30, 0.41, "ellipse", "flat", _CLOTHES, "person"),
    2: ObjectClass(0.084, 14.6, 0.58, 0.39, 0.37, "ellipse", "checker", _CLOTHES, "person"),
    3: ObjectClass(0.031, 19.4, 0.59, 0.56, 0.70, "ring", "flat", _BICYCLES, "vehicle"),
    4: ObjectClass(0.416, 28.3, 0.78, 0.81, 0.56, "rrect", "flat", _VEHICLES, "vehicle"),
    5: ObjectClass(0.071, 31.2, 0.72, 0.72, 0.59, "rrect", "stripes", _VEHICLES, "vehicle"),
    6: ObjectClass(0.036, 39.7, 0.76, 0.67, 0.68, "rect", "cab", _TRUCKS, "vehicle"),
    7: ObjectClass(0.015, 30.5, 0.64, 0.62, 0.59, "rect", "centre", _TRICYCLES, "vehicle"),
    8: ObjectClass(0.010, 29.9, 0.64, 0.57, 0.52, "rect", "awning", _AWNINGS, "vehicle"),
    9: ObjectClass(0.016, 44.0, 0.74, 0.57, 0.66, "rect", "windows", _BUSES, "vehicle"),
    10: ObjectClass(0.090, 19.4, 0.58, 0.56, 0.66, "ellipse", "dot", _MOTORS, "vehicle"),
}
IDS = np.array(list(CLASSES))
WEIGHTS = np.array([c.share for c in CLASSES.values()]) / sum(c.share for c in CLASSES.values())
CLUTTER_IDS = np.array([1, 2, 4, 5, 10])  # small confusers drawn inside ignored regions


def sample_size(rng, cls: int, scale: float) -> Tuple[int, int]:
    """(w, h) in px of an object of class ``cls`` in a frame of ``scale * REFERENCE_SIZE``."""
    spec = CLASSES[cls]
    side = np.clip(spec.side * np.exp(rng.normal(0, spec.side_sigma)), *SIDE_RANGE) * scale
    root = np.sqrt(spec.aspect * np.exp(rng.normal(0, spec.aspect_sigma)))
    limit = REFERENCE_SIZE * scale - 2
    return (int(np.clip(round(side * root), 2, limit)), int(np.clip(round(side / root), 2, limit)))


def unit_grid(h: int, w: int):
    """Pixel-centre coordinates of an ``h x w`` box scaled to [-1, 1]: ``(u, v)`` = (x, y)."""
    v, u = np.mgrid[0:h, 0:w].astype(float)
    return (u + 0.5) / w * 2 - 1, (v + 0.5) / h * 2 - 1


def shape_mask(shape: str, h: int, w: int) -> np.ndarray:
    """Boolean ``h x w`` mask of an ellipse, elliptic ring, rectangle or rounded rectangle."""
    u, v = unit_grid(h, w)
    r = u * u + v * v
    if shape == "ellipse":
        return r <= 1
    if shape == "ring":
        return (r <= 1) & (r >= 0.3)
    mask = np.ones((h, w), bool)
    if shape == "rrect":
        mask[[0, 0, -1, -1], [0, -1, 0, -1]] = False
    return mask


def paste(img: np.ndarray, x: int, y: int, mask: np.ndarray, colour) -> None:
    """Paint ``colour`` ((3,) or (h, w, 3)) where ``mask`` is set, top-left at (x, y), clipped."""
    h, w = mask.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, img.shape[1]), min(y + h, img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    m = mask[y0 - y:y1 - y, x0 - x:x1 - x]
    c = np.broadcast_to(colour, mask.shape + (3,))[y0 - y:y1 - y, x0 - x:x1 - x]
    img[y0:y1, x0:x1][m] = c[m]


def draw_object(img: np.ndarray, rng, cls: int, x: int, y: int, w: int, h: int) -> None:
    """Draw one object of class ``cls`` in the box (x, y, w, h); its long axis is the box's."""
    spec = CLASSES[cls]
    colour = np.clip(spec.palette[rng.integers(len(spec.palette))] + rng.normal(0, 8, 3), _LO, _HI)
    patch = np.tile(colour, (h, w, 1))
    u, v = unit_grid(h, w)
    horizontal = w >= h
    along, across = (u, v) if horizontal else (v, u)
    rows, cols = np.mgrid[y:y + h, x:x + w]
    if spec.pattern == "stripes":  # 1-px rows, cancels in any grid-aligned 2x2 block
        patch += np.where(rows % 2 == 0, FINE_AMPLITUDE, -FINE_AMPLITUDE)[..., None]
    elif spec.pattern == "checker":
        patch += np.where((rows + cols) % 2 == 0, FINE_AMPLITUDE, -FINE_AMPLITUDE)[..., None]
    elif spec.pattern == "cab":
        patch[along < -0.4] *= 0.55
    elif spec.pattern == "centre":
        patch[(np.abs(u) < 0.45) & (np.abs(v) < 0.45)] *= 0.4
    elif spec.pattern == "awning":
        patch[along > 0] = (225, 220, 200)
    elif spec.pattern == "windows":
        step = (cols - x) if horizontal else (rows - y)
        patch[(np.abs(across) > 0.4) & (np.abs(across) < 0.85) & (np.abs(along) < 0.9)
              & (step % 6 < 3)] = (40, 50, 60)
    elif spec.pattern == "dot":
        patch[(np.abs(u) < 0.35) & (np.abs(v) < 0.35)] = (230, 230, 230)
    paste(img, x, y, shape_mask(spec.shape, h, w), patch)
