"""Feature maps of the cross-scale distillation, drawn (the paper's Figures 5 and 9).

For one image, :func:`collect_distillation_maps` runs the student (1x input) and the frozen
teacher (2x input) exactly as ``ZoomInNet.distillation_loss`` pairs them, and returns per
level the two distilled tensors on the common grid and the AKDP key positions:

- student: ``model._to_grid(fpn)`` (``DISTILL_FEATURES: fpn``; LA: 2x nearest upsampling)
  or the head's tower outputs (``tower``);
- teacher: its FPN (or tower) maps at 2x input, average-pooled to the student's grid when
  ``ALIGN`` is "none" (for LA and FA the grids match already);
- masks: :func:`akdp_mask` of the student's anchors and the ground truth, with the model's
  ``akdp_scope`` / ``akdp_lambda``.

Drawing (:func:`draw_feature_panels`): a heatmap is the per-position L2 norm over channels,
min-max normalised to [0, 1] per map, upsampled (bilinear) to the picture and blended over
the image with a matplotlib colormap (Figure 9); the difference map is ``||t - s||_2`` per
position, i.e. what the position-aware L2 loss penalises where the mask is on; AKDP masks are
upsampled with nearest neighbours and tint their cells over the dimmed image, with the
ground-truth boxes on top (Figure 5). Because every map is normalised on its own, titles
give each map's raw maximum so that magnitudes can still be compared.

The maps cover the whole student image (the mapper's resize keeps the full field of view; the
padding added to reach the backbone's size divisibility is cropped away), so they are drawn
over the *original* image, at its size or reduced to ``max_size`` on its longest side.

:class:`FeatureVisualizationHook` draws the combined panel of one fixed training image to
the trainer's ``EventStorage`` every ``MODEL.ZOOMIN.VIS_PERIOD`` iterations (TensorBoard).
"""
import functools
import logging
import math
import textwrap
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog
from detectron2.data import detection_utils as utils
from detectron2.engine import HookBase
from detectron2.structures import Boxes, BoxMode
from detectron2.utils import comm
from detectron2.utils.visualizer import Visualizer
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor, nn

from .data.cross_scale_mapper import ZoomInDatasetMapper, build_zoomin_augmentation
from .data.visdrone import VISDRONE_CLASSES
from .modeling.akdp import akdp_mask

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DEFAULT_TILE_SIZE",
    "FeatureVisualizationHook",
    "collect_distillation_maps",
    "display_size",
    "draw_feature_panels",
    "draw_ground_truth",
    "feature_heatmap",
    "load_image_dict",
    "mask_to_image",
    "overlay_heatmap",
    "overlay_mask",
    "visualization_mapper",
]

logger = logging.getLogger(__name__)

#: Default longest side (px) of the full-size pictures (PNG size stays moderate).
DEFAULT_MAX_SIZE = 1024
#: Default longest side (px) of one tile of the combined panel.
DEFAULT_TILE_SIZE = 320
#: Colour of the AKDP key positions (RGB).
MASK_COLOR = (255, 40, 40)
#: Names of what :func:`draw_feature_panels` can draw.
PANEL_KINDS = ("gt", "levels", "akdp", "panel")

_IGNORE_COLOR = (0.75, 0.75, 0.75)
_BOX_COLOR_AKDP = (0.2, 1.0, 0.2)


# --------------------------------------------------------------------------- small pieces


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


def _resize_rgb(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
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


def _xyxy(annotations: Iterable[dict]) -> np.ndarray:
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
        boxes = _xyxy(annotations) * scale
        ids = [int(a["category_id"]) for a in annotations]
        colors = _class_colors(max(len(class_names), max(ids) + 1))
        names = [class_names[i] if i < len(class_names) else str(i) for i in ids] if labels else None
        v.overlay_instances(boxes=boxes, labels=names, assigned_colors=[colors[i] for i in ids])
    return v.output.get_image()


# --------------------------------------------------------------------------- inputs


def load_image_dict(image_path: str, annotation_path: Optional[str] = None) -> dict:
    """A Detectron2 dataset dict for one image and (optionally) its VisDrone annotation file.

    The annotation file is parsed with the rules of :func:`zoominnet_d2.data.load_visdrone`
    ("others" and empty boxes dropped, boxes clipped to the image, category 0 to
    ``ignore_regions``). Height and width come from the decoded image.

    Returns:
        dict with ``file_name``, ``image_id`` (the stem), ``height``, ``width``,
        ``annotations`` and ``ignore_regions`` (both empty without an annotation file).
    """
    from collections import Counter
    from pathlib import Path

    from .data.visdrone import _load_annotations

    path = Path(image_path)
    image = utils.read_image(str(path), format="RGB")
    height, width = image.shape[:2]
    annotations, ignore_regions = [], []
    if annotation_path:
        annotations, ignore_regions = _load_annotations(Path(annotation_path), height, width, Counter())
    return {
        "file_name": str(path),
        "image_id": path.stem,
        "height": height,
        "width": width,
        "annotations": annotations,
        "ignore_regions": ignore_regions,
    }


def visualization_mapper(cfg, with_teacher: bool) -> ZoomInDatasetMapper:
    """A :class:`ZoomInDatasetMapper` that keeps the annotations (``instances``) but applies
    the deterministic test-time resize only (no random flip): the same image always gives
    the same student and teacher views."""
    kwargs = ZoomInDatasetMapper.from_config(cfg, is_train=True, with_teacher=with_teacher)
    kwargs["augmentations"] = build_zoomin_augmentation(cfg, is_train=False)
    return ZoomInDatasetMapper(**kwargs)


def _unwrap(model: nn.Module) -> nn.Module:
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


# --------------------------------------------------------------------------- the maps


@torch.no_grad()
def collect_distillation_maps(model: nn.Module, teacher, dataset_dict: dict) -> dict:
    """The distilled tensors of student and teacher and the AKDP masks, for one image.

    Runs in ``torch.no_grad()``; it does not change ``model.training`` (call ``model.eval()``
    first for inference-mode BatchNorm, as :class:`FeatureVisualizationHook` does).

    Args:
        model: a :class:`ZoomInNet` (or DDP/DataParallel around one).
        teacher: a :class:`FrozenTeacher` (usually ``model.teacher``) or None.
        dataset_dict: one output of :func:`visualization_mapper` (or of
            ``ZoomInDatasetMapper``): ``image`` (3, h, w), ``teacher_image`` (3, s*h, s*w)
            when ``teacher`` is given, ``instances`` with ``gt_boxes`` in the student's
            frame (optional: without it there is no key position).

    Returns:
        dict with, for L levels (all tensors on the CPU, float32; grids cropped to the
        image, i.e. without the padding to the size divisibility):

        - ``student``: L tensors (C, Hi, Wi), the student's distilled maps;
        - ``teacher``: L tensors (C, Hi, Wi) (pooled to the student's grid for ALIGN
          "none"), or None without a teacher;
        - ``masks``: L bool tensors (Hi, Wi), the AKDP key positions;
        - ``grid_sizes``: L (Hi, Wi); ``strides``: L grid strides in student pixels;
        - ``level_names`` / ``teacher_level_names``: e.g. ["p3", ...] (None without teacher);
        - ``image_size``: (h, w) of the student image; ``gt_boxes``: (G, 4) XYXY in it;
        - ``align``, ``distill_features``.

    Raises:
        KeyError: a teacher is given but the dict has no ``teacher_image``.
        RuntimeError: teacher and student maps of a level differ in shape.
    """
    model = _unwrap(model)
    images = model.preprocess_image([dataset_dict])
    h, w = images.image_sizes[0]
    pad_h, pad_w = images.tensor.shape[-2:]
    feats = model.backbone(images.tensor)
    feats = [feats[f] for f in model.head_in_features]
    if model.distill_features == "tower":
        student = model.head.forward_with_towers(feats)[2]
    else:
        student = [model._to_grid(f) for f in feats]
    grid_sizes = [tuple(m.shape[-2:]) for m in student]
    anchors = model.anchor_generator(feats)

    if "instances" in dataset_dict:
        gt = dataset_dict["instances"].gt_boxes.tensor.to(anchors[0].tensor.device)
    else:
        gt = anchors[0].tensor.new_zeros((0, 4))
    masks = akdp_mask(anchors, grid_sizes, Boxes(gt), scope=model.akdp_scope, lam=model.akdp_lambda)

    t_maps, t_names = None, None
    if teacher is not None:
        if "teacher_image" not in dataset_dict:
            raise KeyError("collect_distillation_maps with a teacher needs 'teacher_image': map the "
                           "image with visualization_mapper(cfg, with_teacher=True)")
        s = model.teacher_scale
        t_maps = teacher.features([dataset_dict["teacher_image"]], (pad_h * s, pad_w * s),
                                  with_towers=model.distill_features == "tower")[model.distill_features]
        t_maps = [F.adaptive_avg_pool2d(t, m.shape[-2:]) if model.align == "none" else t
                  for t, m in zip(t_maps, student)]
        for level, (t, m) in enumerate(zip(t_maps, student)):
            if t.shape != m.shape:
                raise RuntimeError(
                    f"level {level}: teacher map {tuple(t.shape)} != student map {tuple(m.shape)}"
                )
        t_names = list(teacher.model.head_in_features)

    # Crop the grids to the image: cells beyond ceil(h / stride) only see padding.
    valid = [(math.ceil(h * gh / pad_h), math.ceil(w * gw / pad_w)) for gh, gw in grid_sizes]

    def crop(x: Tensor, hw) -> Tensor:
        return x[..., : hw[0], : hw[1]].float().cpu()

    return {
        "student": [crop(m[0], v) for m, v in zip(student, valid)],
        "teacher": None if t_maps is None else [crop(t[0], v) for t, v in zip(t_maps, valid)],
        "masks": [m[: v[0], : v[1]].cpu() for m, v in zip(masks, valid)],
        "grid_sizes": valid,
        "strides": [pad_h / gh for gh, _ in grid_sizes],
        "level_names": list(model.head_in_features),
        "teacher_level_names": t_names,
        "image_size": (int(h), int(w)),
        "gt_boxes": gt.float().cpu(),
        "align": model.align,
        "distill_features": model.distill_features,
    }


# --------------------------------------------------------------------------- drawing


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
    in a rows x cols grid, each shown 1:1 (one image pixel per figure pixel) under its
    title, rendered to an RGB array."""
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

        - "gt": the image with its ground truth (:func:`draw_ground_truth`), (h, w) =
          :func:`display_size` (H0, W0, max_size);
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
    gt_xyxy = _xyxy(annotations)
    ignore_xyxy = np.concatenate([ignore_xywh[:, :2], ignore_xywh[:, :2] + ignore_xywh[:, 2:]], axis=1)

    student, teacher, masks = maps["student"], maps["teacher"], maps["masks"]
    num_levels = len(student)
    out: Dict[str, np.ndarray] = {}

    dh, dw = display_size(h0, w0, max_size)
    scale = dh / h0
    if include & {"gt", "levels"}:
        shown = _resize_rgb(image_rgb, (dh, dw))
    if "gt" in include:
        out["gt"] = draw_ground_truth(shown, annotations, ignore_xywh.tolist(), scale=scale,
                                      class_names=class_names)
    if "levels" in include:
        for level in range(num_levels):
            heat = feature_heatmap(student[level], (dh, dw))
            out[f"student_l{level}"] = overlay_heatmap(shown, heat, alpha, cmap)
            if teacher is not None:
                heat = feature_heatmap(teacher[level], (dh, dw))
                out[f"teacher_l{level}"] = overlay_heatmap(shown, heat, alpha, cmap)

    def level_label(level: int) -> str:
        gh, gw = maps["grid_sizes"][level]
        name = maps["level_names"][level]
        if maps.get("teacher_level_names"):
            name = f"{name}/T{maps['teacher_level_names'][level]}"
        return f"l{level} {name}\n{gh}x{gw}, stride {maps['strides'][level]:g}px"

    def mask_title(level: int) -> str:
        m = masks[level]
        return f"AKDP: {int(m.sum())} key ({100.0 * float(m.float().mean()) if m.numel() else 0:.1f}%)"

    if "akdp" in include:
        ah, aw = display_size(h0, w0, min(2 * tile_size, max_size or 2 * tile_size))
        base = _resize_rgb(image_rgb, (ah, aw))
        s = ah / h0
        cols = min(num_levels, 3)
        tiles = [[None] * cols for _ in range(math.ceil(num_levels / cols))]
        for level in range(num_levels):
            tiles[level // cols][level % cols] = {
                "image": overlay_mask(base, mask_to_image(masks[level], (ah, aw))),
                "title": level_label(level).replace("\n", ", ") + "\n" + mask_title(level),
                "boxes": gt_xyxy * s, "ignore": ignore_xyxy * s,
            }
        out["akdp"] = _grid_figure(tiles, (ah, aw), _suptitle(maps, dataset_dict, "AKDP key positions"))

    if "panel" in include:
        th, tw = display_size(h0, w0, tile_size)
        base = _resize_rgb(image_rgb, (th, tw))
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
                        "title": mask_title(level), "boxes": gt_xyxy * s, "ignore": ignore_xyxy * s})
            rows.append(row)
        title = _suptitle(maps, dataset_dict, "distillation maps",
                          "; heatmaps: channel L2 norm, normalised per map")
        out["panel"] = _grid_figure(rows, (th, tw), title,
                                    row_labels=[level_label(level) for level in range(num_levels)])
    return out


def _suptitle(maps: dict, dataset_dict: dict, what: str, note: str = "") -> str:
    name = dataset_dict.get("image_id", "")
    text = (f"{name}: {what}\nALIGN {maps['align']}, {maps['distill_features']} maps, "
            f"student input {maps['image_size'][1]}x{maps['image_size'][0]}, "
            f"{len(maps['gt_boxes'])} GT boxes{note}")
    if maps["teacher"] is None:
        text += "\nno teacher: student maps and AKDP only"
    return text


# --------------------------------------------------------------------------- training hook


class FeatureVisualizationHook(HookBase):
    """Every ``period`` iterations, put the panel of :func:`draw_feature_panels` for one
    fixed training image into the trainer's ``EventStorage`` as ``"zoominnet/features"``
    (Detectron2's TensorboardXWriter sends it to TensorBoard).

    The image is the first training image with at least one box (else the first one) of
    ``cfg.DATASETS.TRAIN[0]``, mapped once with :func:`visualization_mapper` (no random
    flip). Drawing runs on the main process only, under ``torch.no_grad()``, with the model
    in eval mode (BatchNorm statistics are not touched); every module's ``training`` flag
    is restored afterwards. A model wrapped in DDP is unwrapped (``model.module``).

    Args:
        cfg: the training config; ``period`` defaults to ``cfg.MODEL.ZOOMIN.VIS_PERIOD``
            (0 or absent: the hook does nothing).
        period: overrides the config.
        dataset_dict: a raw dataset dict to draw instead of the training set's first.
        tile_size: longest side of one panel tile.
    """

    def __init__(self, cfg, period: Optional[int] = None, dataset_dict: Optional[dict] = None,
                 tile_size: int = 256):
        self.period = int(cfg.MODEL.ZOOMIN.get("VIS_PERIOD", 0) if period is None else period)
        self.cfg = cfg.clone()
        self.tile_size = tile_size
        self._raw = dataset_dict
        self._mapped: Optional[dict] = None
        self._image: Optional[np.ndarray] = None

    def _sample(self, with_teacher: bool) -> Tuple[dict, dict, np.ndarray]:
        if self._raw is None:
            dicts = DatasetCatalog.get(self.cfg.DATASETS.TRAIN[0])
            self._raw = next((d for d in dicts if d.get("annotations")), dicts[0])
        if self._mapped is None or ("teacher_image" in self._mapped) != with_teacher:
            self._mapped = visualization_mapper(self.cfg, with_teacher)(self._raw)
            self._image = utils.read_image(self._raw["file_name"], format="RGB")
        return self._raw, self._mapped, self._image

    def draw(self) -> Tensor:
        """Draw the panel now; returns it as (3, H, W) float32 in [0, 1]."""
        model = _unwrap(self.trainer.model)
        modes = [(m, m.training) for m in model.modules()]
        try:
            model.eval()
            with torch.no_grad():
                teacher = getattr(model, "teacher", None)
                raw, mapped, image = self._sample(teacher is not None)
                maps = collect_distillation_maps(model, teacher, mapped)
            panel = draw_feature_panels(maps, image, raw, tile_size=self.tile_size,
                                        include=("panel",))["panel"]
        finally:
            for m, mode in modes:
                m.training = mode
        return torch.from_numpy(np.ascontiguousarray(panel.transpose(2, 0, 1))).float().div_(255.0)

    def after_step(self):
        if self.period <= 0 or (self.trainer.iter + 1) % self.period or not comm.is_main_process():
            return
        try:
            panel = self.draw()
        except Exception:  # a drawing failure must not stop a long training run
            logger.exception(f"FeatureVisualizationHook: drawing failed at iteration "
                             f"{self.trainer.iter}")
            return
        self.trainer.storage.put_image("zoominnet/features", panel)
