"""The inputs of ``tools/visdrone_statistics.py``: the annotation lines of pooled folders and
the frame sizes, from image headers, a CSV or VisDrone2YOLO's label files (whose lines are
normalised by the frame size; see visdrone_statistics.py's docstring).
"""
import csv
import os
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from zoominnet_d2.data.visdrone_files import IMAGE_EXTENSIONS, image_size, list_files, parse_line  # noqa: E402

Sizes = Dict[str, Tuple[int, int]]  # stem -> (width, height)


def _stem_files(dirs: List[str], extensions) -> Dict[str, Path]:
    """stem -> file over several folders; a stem found in two folders is an error."""
    files: Dict[str, Path] = {}
    for directory in dirs:
        for stem, path in list_files(Path(directory), extensions).items():
            if stem in files:
                raise ValueError(f"stem {stem!r} in two folders: {files[stem]} and {path}")
            files[stem] = path
    return files


def read_annotations(dirs: List[str]) -> Dict[str, np.ndarray]:
    """stem -> ``(N, 8)`` int array of the annotation lines of the pooled folders."""
    rows = {}
    for stem, path in sorted(_stem_files(dirs, {".txt"}).items()):
        lines = path.read_text().splitlines()
        parsed = [parse_line(path, n, line) for n, line in enumerate(lines, 1) if line.strip()]
        rows[stem] = np.array(parsed, dtype=np.int64).reshape(-1, 8)
    return rows


def sizes_from_images(dirs: List[str]) -> Sizes:
    """stem -> (width, height) from the image headers of ``dirs``."""
    files = _stem_files(dirs, IMAGE_EXTENSIONS)
    return {stem: image_size(path)[::-1] for stem, path in files.items()}


def sizes_from_csv(path: str) -> Sizes:
    """stem -> (width, height) from a CSV with ``stem``, ``width`` and ``height`` columns."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"stem", "width", "height"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}:1: header must name stem, width and height columns")
        sizes = {}
        for row in reader:
            try:
                sizes[row["stem"]] = size = (int(row["width"]), int(row["height"]))
                if min(size) <= 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{reader.line_num}: bad width/height: {row}") from None
    return sizes


def sizes_from_yolo(annotations: Dict[str, np.ndarray], dirs: List[str]) -> Sizes:
    """stem -> (width, height) from VisDrone2YOLO label files (see the module docstring)."""
    sizes = {}
    for stem, path in _stem_files(dirs, {".txt"}).items():
        rows = annotations.get(stem, np.zeros((0, 8), np.int64))
        rows = rows[(rows[:, 4] != 0) & (rows[:, 5] >= 1) & (rows[:, 5] <= 10)]
        labels = [line.split() for line in path.read_text().splitlines() if line.strip()]
        if len(labels) != len(rows):
            raise ValueError(f"{path}: {len(labels)} label lines for {len(rows)} converted "
                             "annotation lines")
        estimates = []
        for n, (label, row) in enumerate(zip(labels, rows), 1):
            try:
                cls, w_norm, h_norm = int(label[0]), float(label[3]), float(label[4])
            except (IndexError, ValueError):
                cls = None
            if len(label) != 5 or cls != row[5] - 1:
                raise ValueError(f"{path}:{n}: {' '.join(label)!r} is not the YOLO line of a "
                                 f"category-{row[5]} box")
            if w_norm > 0 and h_norm > 0:
                estimates.append((row[2] / w_norm, row[3] / h_norm))
        if not estimates:  # no line gives the size
            continue
        est = np.array(estimates)
        size = np.rint(np.median(est, axis=0))
        if np.abs(est - size).max() > 1e-3:
            raise ValueError(f"{path}: the lines imply different frame sizes "
                             f"({est.min(0)} .. {est.max(0)})")
        sizes[stem] = (int(size[0]), int(size[1]))
    return sizes
