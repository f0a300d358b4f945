"""Pictures of the maps of :func:`collect_distillation_maps`, over the original image.

:func:`draw_feature_panels` draws, from the per-level student maps (C, Hi, Wi), teacher maps
(C, Hi, Wi) and key-position masks (Hi, Wi):

- "gt": the image with its ground truth (:func:`draw_ground_truth`);
- "student_l{l}" / "teacher_l{l}": the channel-norm heatmap of level l over the image (Figure 9);
- "akdp": one tile per level, the key positions over the image with the GT boxes (Figure 5);
- "panel": rows = levels, columns = student / teacher / ``||t - s||`` / AKDP mask; the
  difference map is what the position-aware L2 loss (Eq. 21) penalises where the mask is on.

Every heatmap is normalised on its own (:func:`feature_heatmap`), so tile titles give each
map's raw maximum norm to keep magnitudes comparable. The tiles are laid out 1:1 (one image
pixel per figure pixel) in a matplotlib figure rendered with the Agg canvas.
"""
import math
import textwrap
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor

from ..data.visdrone import VISDRONE_CLASSES
from .rendering import (
    DEFAULT_MAX_SIZE,
    annotation_boxes,
    display_size,
    draw_ground_truth,
    feature_heatmap,
    mask_to_image,
    overlay_heatmap,
    overlay_mask,
    resize_rgb,
)

#: Default longest side (px) of one tile of the combined panel.
DEFAULT_TILE_SIZE = 320
#: Names of what :func:`draw_feature_panels` can draw.
PANEL_KINDS = ("gt", "levels", "akdp", "panel")

_BOX_COLOR_AKDP = (0.2, 1.0, 0.2)


def _figure_to_array(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _max_str(x: Tensor) -> str:
    return f"{float(torch.nan_to_num(x.float().norm(dim=0)).max()) if x.numel() else 0.0:.3g}"


def _rect_outlines(boxes: np.ndarray) -> List[np.ndarray]:
    return [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
            for x0, y0, x1, y1 in boxes]


def _add_boxes(ax, boxes: np.ndarray, ignore: np.ndarray) -> None:
    """GT boxes (green) and ignored regions (white, dashed) as two line collections (one
    artist each: hundreds of VisDrone boxes stay fast)."""
    if len(ignore):
        ax.add_collection(LineCollection(_rect_outlines(ignore), colors="white", linestyles="--",
                                         linewidths=0.8), autolim=False)
    if len(boxes):
        ax.add_collection(LineCollection(_rect_outlines(boxes), colors=[_BOX_COLOR_AKDP],
                                         linewidths=0.6), autolim=False)


def _grid_figure(tiles: List[List[Optional[dict]]], tile_hw: Tuple[int, int], suptitle: str,
                 row_labels: Optional[List[str]] = None, dpi: int = 100) -> np.ndarray:
    """Tiles (dicts with ``image``, ``title``, optional ``boxes``/``ignore`` in tile pixels)
    in a rows x cols grid, each shown 1:1 under its title, rendered to a (H, W, 3) uint8 array."""
    rows, cols = len(tiles), max(len(r) for r in tiles)
    th, tw = (v / dpi for v in tile_hw)  # inches
    title_lines = max(t["title"].count("\n") + 1 for r in tiles for t in r if t is not None)
    title_h = 0.08 + 0.13 * title_lines
    left = 0.42 if row_labels else 0.06
    gap, right, bottom = 0.08, 0.06, 0.06
    width = left + cols * tw + (cols - 1) * gap + right
    # Wrap the title to the figure (8 pt DejaVu Sans: at most ~6.5 px per character at 100 dpi).
    chars = max(20, int(width * dpi / 6.5))
    suptitle = "\n".join(textwrap.fill(line, chars) for line in suptitle.split("\n"))
    top = 0.12 + 0.16 * (suptitle.count("\n") + 1)
    height = top + rows * (title_h + th) + bottom
    fig = Figure(figsize=(width, height), dpi=dpi)
    fig.text(0.5, 1 - 0.06 / height, suptitle, ha="center", va="top", fontsize=8)
    for r in range(rows):
        for c in range(cols):
            tile = tiles[r][c] if c < len(tiles[r]) else None
            if tile is None:
                continue
            x = left + c * (tw + gap)
            y = height - top - r * (title_h + th) - title_h - th
            ax = fig.add_axes([x / width, y / height, tw / width, th / height])
            ax.set_xticks([])
            ax.set_yticks([])
            image = tile["image"]
            ax.imshow(image, interpolation="nearest", extent=(0, image.shape[1], image.shape[0], 0))
            ax.set_title(tile["title"], fontsize=7, pad=2)
            if "boxes" in tile:
                _add_boxes(ax, tile["boxes"], tile.get("ignore", np.zeros((0, 4))))
            ax.set_xlim(0, image.shape[1])
            ax.set_ylim(image.shape[0], 0)
            if row_labels and c == 0:
                ax.set_ylabel(row_labels[r], fontsize=7)
    return _figure_to_array(fig)


def _level_label(maps: dict, level: int) -> str:
    gh, gw = maps["grid_sizes"][level]
    name = maps["level_names"][level]
    if maps.get("teacher_level_names"):
        name = f"{name}/T{maps['teacher_level_names'][level]}"
    return f"l{level} {name}\n{gh}x{gw}, stride {maps['strides'][level]:g}px"


def _mask_title(mask: Tensor) -> str:
    return f"AKDP: {int(mask.sum())} key ({100.0 * float(mask.float().mean()) if mask.numel() else 0:.1f}%)"


def _suptitle(maps: dict, dataset_dict: dict, what: str, note: str = "") -> str:
    name = dataset_dict.get("image_id", "")
    text = (f"{name}: {what}\nALIGN {maps['align']}, {maps['distill_features']} maps, "
            f"student input {maps['image_size'][1]}x{maps['image_size'][0]}, "
            f"{len(maps['gt_boxes'])} GT boxes{note}")
    if maps["teacher"] is None:
        text += "\nno teacher: student maps and AKDP only"
    return text


def draw_feature_panels(maps: dict, image_rgb: np.ndarray, dataset_dict: Optional[dict] = None, *,
                        max_size: Optional[int] = DEFAULT_MAX_SIZE, tile_size: int = DEFAULT_TILE_SIZE,
                        alpha: float = 0.5, cmap: str = "jet",
                        class_names: Sequence[str] = VISDRONE_CLASSES,
                        include: Iterable[str] = PANEL_KINDS) -> Dict[str, np.ndarray]:
    """Draw the maps of :func:`collect_distillation_maps` over the original image.

    Args:
        maps: the output of :func:`collect_distillation_maps`.
        image_rgb: (H0, W0, 3) uint8 RGB, the original image (the maps cover all of it).
        dataset_dict: for the ground truth drawn: ``annotations`` and ``ignore_regions`` in
            ``image_rgb``'s coordinates (e.g. from :func:`load_image_dict`); None: no boxes.
        max_size: longest side of the full-size pictures ("gt", "student_l*", ...).
        tile_size: longest side of one tile of "panel" ("akdp" uses up to 2x).
        alpha, cmap: heatmap blending, see :func:`overlay_heatmap`.
        class_names: names of ``category_id`` for "gt".
        include: which of "gt", "levels", "akdp", "panel" to draw.

    Returns:
        dict name -> (h, w, 3) uint8 RGB:

        - "gt": the image with its ground truth, (h, w) = :func:`display_size` (H0, W0, max_size);
        - "levels": for each level l, "student_l{l}" and (with a teacher) "teacher_l{l}":
          heatmaps blended over the image, same size as "gt";
        - "akdp": a grid with one tile per level: key positions over the image, GT boxes;
        - "panel": rows = levels, columns = student / teacher / ||t - s|| / AKDP mask
          (student / AKDP mask without a teacher).
    """
    include = set(include)
    unknown = include - set(PANEL_KINDS)
    if unknown:
        raise ValueError(f"unknown panel kinds {sorted(unknown)}; choose from {PANEL_KINDS}")
    image_rgb = np.asarray(image_rgb)
    h0, w0 = image_rgb.shape[:2]
    dataset_dict = dataset_dict or {}
    annotations = dataset_dict.get("annotations", []) or []
    ignore_xywh = np.asarray(dataset_dict.get("ignore_regions", []) or [], np.float64).reshape(-1, 4)
    gt_xyxy = annotation_boxes(annotations)
    ignore_xyxy = np.concatenate([ignore_xywh[:, :2], ignore_xywh[:, :2] + ignore_xywh[:, 2:]], axis=1)

    student, teacher, masks = maps["student"], maps["teacher"], maps["masks"]
    num_levels = len(student)
    out: Dict[str, np.ndarray] = {}

    dh, dw = display_size(h0, w0, max_size)
    if include & {"gt", "levels"}:
        shown = resize_rgb(image_rgb, (dh, dw))
    if "gt" in include:
        out["gt"] = draw_ground_truth(shown, annotations, ignore_xywh.tolist(), scale=dh / h0,
                                      class_names=class_names)
    if "levels" in include:
        for level in range(num_levels):
            heat = feature_heatmap(student[level], (dh, dw))
            out[f"student_l{level}"] = overlay_heatmap(shown, heat, alpha, cmap)
            if teacher is not None:
                heat = feature_heatmap(teacher[level], (dh, dw))
                out[f"teacher_l{level}"] = overlay_heatmap(shown, heat, alpha, cmap)

    if "akdp" in include:
        ah, aw = display_size(h0, w0, min(2 * tile_size, max_size or 2 * tile_size))
        base = resize_rgb(image_rgb, (ah, aw))
        s = ah / h0
        cols = min(num_levels, 3)
        tiles = [[None] * cols for _ in range(math.ceil(num_levels / cols))]
        for level in range(num_levels):
            tiles[level // cols][level % cols] = {
                "image": overlay_mask(base, mask_to_image(masks[level], (ah, aw))),
                "title": _level_label(maps, level).replace("\n", ", ") + "\n" + _mask_title(masks[level]),
                "boxes": gt_xyxy * s, "ignore": ignore_xyxy * s,
            }
        out["akdp"] = _grid_figure(tiles, (ah, aw), _suptitle(maps, dataset_dict, "AKDP key positions"))

    if "panel" in include:
        th, tw = display_size(h0, w0, tile_size)
        base = resize_rgb(image_rgb, (th, tw))
        s = th / h0

        def heat_tile(feature: Tensor, what: str) -> dict:
            return {"image": overlay_heatmap(base, feature_heatmap(feature, (th, tw)), alpha, cmap),
                    "title": f"{what} (max {_max_str(feature)})"}

        rows = []
        for level in range(num_levels):
            row = [heat_tile(student[level], "student ||s||")]
            if teacher is not None:
                row.append(heat_tile(teacher[level], "teacher ||t||"))
                row.append(heat_tile(teacher[level] - student[level], "||t - s||"))
            row.append({"image": overlay_mask(base, mask_to_image(masks[level], (th, tw))),
                        "title": _mask_title(masks[level]), "boxes": gt_xyxy * s, "ignore": ignore_xyxy * s})
            rows.append(row)
        title = _suptitle(maps, dataset_dict, "distillation maps",
                          "; heatmaps: channel L2 norm, normalised per map")
        out["panel"] = _grid_figure(rows, (th, tw), title,
                                    row_labels=[_level_label(maps, level) for level in range(num_levels)])
    return out
