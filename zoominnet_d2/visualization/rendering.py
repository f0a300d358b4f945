"""Pixel-level drawing of distillation maps: heatmaps, key-position masks, ground truth.

- :func:`feature_heatmap`: the per-position L2 norm over channels of a (C, H, W) map,
  min-max normalised to [0, 1] on its grid, upsampled (bilinear) to the picture;
- :func:`overlay_heatmap`: a heatmap blended over an image with a matplotlib colormap
  (the paper's Figure 9);
- :func:`mask_to_image` + :func:`overlay_mask`: a (Hi, Wi) key-position mask upsampled with
  nearest neighbours, tinting its cells over the dimmed image (Figure 5);
- :func:`draw_ground_truth`: boxes and VisDrone ignored regions with Detectron2's
  :class:`Visualizer`.

Images are (H, W, 3) uint8 RGB numpy arrays throughout.
"""
import functools
from typing import Iterable, List, Optional, Sequence, Tuple

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from detectron2.structures import BoxMode
from detectron2.utils.visualizer import Visualizer
from torch import Tensor

from ..data.visdrone import VISDRONE_CLASSES

#: Default longest side (px) of the full-size pictures (PNG size stays moderate).
DEFAULT_MAX_SIZE = 1024
#: Colour of the AKDP key positions (RGB).
MASK_COLOR = (255, 40, 40)

_IGNORE_COLOR = (0.75, 0.75, 0.75)


def display_size(height: int, width: int,
                 max_size: Optional[int] = DEFAULT_MAX_SIZE) -> Tuple[int, int]:
    """(h, w) of a ``height`` x ``width`` image shrunk to ``max_size`` on its longest side
    (never enlarged; ``max_size`` None or <= 0 keeps the size)."""
    if not max_size or max_size <= 0 or max(height, width) <= max_size:
        return int(height), int(width)
    s = max_size / max(height, width)
    return max(1, int(round(height * s))), max(1, int(round(width * s)))


def feature_heatmap(feature: Tensor, size: Tuple[int, int]) -> np.ndarray:
    """Channel L2 norm of a feature map, min-max normalised, upsampled bilinearly.

    Args:
        feature: (C, H, W) feature map; a (H, W) tensor is taken as the values to draw.
        size: (h, w) of the result.

    Returns:
        float32 ndarray (h, w) in [0, 1]. The grid is normalised (1 at the largest norm, 0
        at the smallest) before the upsampling, whose samples fall between cell centres: a
        one-cell peak shows slightly below 1. A map whose norm is constant (to 1e-6
        relative), empty or non-finite everywhere gives zeros; non-finite entries count
        as 0. Never NaN.
    """
    f = feature.detach().float().cpu()
    if f.dim() == 3:
        values = f.norm(dim=0)
    elif f.dim() == 2:
        values = f
    else:
        raise ValueError(f"feature must be (C, H, W) or (H, W), got shape {tuple(f.shape)}")
    h, w = int(size[0]), int(size[1])
    if values.numel() == 0:
        return np.zeros((h, w), np.float32)
    values = torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = values.min(), values.max()
    span = float(hi - lo)
    if span <= 1e-6 * max(abs(float(hi)), abs(float(lo))) or span == 0.0:
        return np.zeros((h, w), np.float32)
    values = (values - lo) / span
    up = F.interpolate(values[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    return up.clamp_(0.0, 1.0).numpy().astype(np.float32)


def mask_to_image(mask: Tensor, size: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of a grid mask.

    Args:
        mask: (Hi, Wi) bool tensor (or array).
        size: (h, w).

    Returns:
        bool ndarray (h, w): pixel (y, x) takes cell (y * Hi // h, x * Wi // w).
    """
    m = np.asarray(mask.detach().cpu().numpy() if isinstance(mask, Tensor) else mask, dtype=bool)
    h, w = int(size[0]), int(size[1])
    if m.size == 0:
        return np.zeros((h, w), bool)
    rows = np.arange(h) * m.shape[0] // h
    cols = np.arange(w) * m.shape[1] // w
    return m[rows[:, None], cols[None, :]]


def resize_rgb(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize a (H, W, 3) uint8 image to (h, w) (area-like antialiased bilinear)."""
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] == (h, w):
        return np.ascontiguousarray(image)
    t = torch.from_numpy(np.require(image, np.uint8, ["C", "W"])).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


@functools.lru_cache(maxsize=8)
def _colormap_lut(cmap: str) -> np.ndarray:
    """(256, 3) float32 RGB in 0..255 of a matplotlib colormap."""
    return (matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).astype(np.float32)


def overlay_heatmap(image_rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.5,
                    cmap: str = "jet") -> np.ndarray:
    """Blend a colormapped heatmap over an image (Figure 9).

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        heat: (h, w) floats in [0, 1]; resized (bilinear) to (H, W) if needed.
        alpha: weight of the heatmap (0: the image, 1: the heatmap alone).
        cmap: a matplotlib colormap name ("jet": warm = high, as in the paper).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image_rgb must be (H, W, 3), got {image.shape}")
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape != image.shape[:2]:
        t = torch.from_numpy(np.ascontiguousarray(heat))[None, None]
        heat = F.interpolate(t, size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0].numpy()
    heat = np.clip(np.nan_to_num(heat), 0.0, 1.0)
    colored = _colormap_lut(cmap)[np.rint(heat * 255.0).astype(np.intp)]  # (H, W, 3)
    out = (1.0 - alpha) * image.astype(np.float32) + alpha * colored
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def overlay_mask(image_rgb: np.ndarray, mask: np.ndarray, color: Sequence[int] = MASK_COLOR,
                 alpha: float = 0.55, dim: float = 0.45) -> np.ndarray:
    """Tint the True pixels of ``mask`` with ``color`` and dim the rest (Figure 5).

    Args:
        image_rgb: (H, W, 3) uint8.
        mask: (H, W) bool, e.g. from :func:`mask_to_image`.
        alpha: weight of ``color`` on the mask.
        dim: brightness factor outside the mask.

    Returns:
        (H, W, 3) uint8.
    """
    image = np.asarray(image_rgb).astype(np.float32)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")
    out = image * dim
    tinted = (1.0 - alpha) * image + alpha * np.asarray(color, np.float32)
    out[mask] = tinted[mask]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _class_colors(num_classes: int) -> List[Tuple[float, float, float]]:
    cmap = matplotlib.colormaps["tab10" if num_classes <= 10 else "tab20"]
    return [tuple(float(c) for c in cmap(i % cmap.N)[:3]) for i in range(num_classes)]


def annotation_boxes(annotations: Iterable[dict]) -> np.ndarray:
    """(G, 4) float64 XYXY_ABS boxes of Detectron2 annotation dicts (``bbox``, ``bbox_mode``)."""
    boxes = [BoxMode.convert(list(a["bbox"]), a.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYXY_ABS)
             for a in annotations]
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def draw_ground_truth(image_rgb: np.ndarray, annotations: Sequence[dict] = (),
                      ignore_regions: Sequence[Sequence[float]] = (), *, scale: float = 1.0,
                      class_names: Sequence[str] = VISDRONE_CLASSES, labels: bool = True) -> np.ndarray:
    """Ground truth drawn with Detectron2's :class:`Visualizer`.

    Boxes are coloured per class (tab10) and labelled with the class name; VisDrone ignored
    regions are grey, filled and dashed.

    Args:
        image_rgb: (H, W, 3) uint8 RGB, the picture to draw on.
        annotations: Detectron2 annotation dicts (``bbox``, ``bbox_mode``, ``category_id``).
        ignore_regions: [x, y, w, h] boxes.
        scale: factor from the annotations' coordinates to ``image_rgb``'s.
        class_names: names indexed by ``category_id``.
        labels: write the class names.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    v = Visualizer(image_rgb, metadata=None, scale=1.0)
    for x, y, w, h in ignore_regions:
        x0, y0, x1, y1 = x * scale, y * scale, (x + w) * scale, (y + h) * scale
        v.draw_polygon(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), _IGNORE_COLOR,
                       edge_color=_IGNORE_COLOR, alpha=0.35)
        v.draw_box((x0, y0, x1, y1), alpha=0.9, edge_color="white", line_style="--")
    if annotations:
        boxes = annotation_boxes(annotations) * scale
        ids = [int(a["category_id"]) for a in annotations]
        colors = _class_colors(max(len(class_names), max(ids) + 1))
        names = [class_names[i] if i < len(class_names) else str(i) for i in ids] if labels else None
        v.overlay_instances(boxes=boxes, labels=names, assigned_colors=[colors[i] for i in ids])
    return v.output.get_image()
