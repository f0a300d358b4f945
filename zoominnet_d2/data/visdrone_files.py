"""The VisDrone-DET files: annotation lines, annotation files and the stem pairing of images
with annotation files. :mod:`zoominnet_d2.data.visdrone` builds Detectron2 datasets from them;
the tools that read the official release (``tools/visdrone_statistics.py``,
``tools/evaluate_visdrone.py``) use the same parsing.

Each annotation line reads ``left,top,width,height,score,category,truncation,occlusion``
(integers, pixels; some files end lines with a trailing comma). Categories: 0 ignored region,
1 pedestrian, 2 people, 3 bicycle, 4 car, 5 van, 6 truck, 7 tricycle, 8 awning-tricycle,
9 bus, 10 motor, 11 others.
"""
from collections import Counter
from pathlib import Path
from typing import AbstractSet, Dict, List, Tuple

from detectron2.structures import BoxMode
from PIL import Image, UnidentifiedImageError

#: The fields of an annotation line, in order.
ANNOTATION_FIELDS = ("left", "top", "width", "height", "score", "category", "truncation", "occlusion")
#: Category of an ignored region (its boxes are neither objects nor background).
IGNORED_REGION = 0
#: Category "others", not a training class.
OTHERS = 11
#: Image file suffixes of a VisDrone folder (lower case).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})
#: How many stems an error message lists.
MAX_LISTED = 5


def list_files(directory: Path, extensions: AbstractSet[str]) -> Dict[str, Path]:
    """Map stem -> path for the files of ``directory`` with one of ``extensions``."""
    if not directory.is_dir():
        raise FileNotFoundError(f"VisDrone directory not found: {directory}")
    files: Dict[str, Path] = {}
    for path in directory.iterdir():
        if path.suffix.lower() not in extensions or not path.is_file():
            continue
        if path.stem in files:
            raise ValueError(f"{directory}: two files with stem {path.stem!r}: "
                             f"{files[path.stem].name} and {path.name}")
        files[path.stem] = path
    return files


def describe_missing(stems: AbstractSet[str], what: str) -> str:
    """``"<count> <what> (<first stems>, ...)"``."""
    listed = ", ".join(sorted(stems)[:MAX_LISTED])
    more = ", ..." if len(stems) > MAX_LISTED else ""
    return f"{len(stems)} {what} ({listed}{more})"


def split_fields(path, lineno: int, line: str) -> List[str]:
    """The 8 comma-separated fields of an annotation or detection-result line (an optional
    trailing comma dropped), or a ValueError naming ``path:lineno``. Shared by the dataset
    reader (:func:`parse_line`, integers) and the evaluation's reader of official text files
    (:mod:`zoominnet_d2.evaluation.visdrone_txt`, numbers as MATLAB's ``load`` reads them)."""
    fields = line.split(",")
    if len(fields) == len(ANNOTATION_FIELDS) + 1 and not fields[-1].strip():
        fields.pop()
    if len(fields) != len(ANNOTATION_FIELDS):
        raise ValueError(
            f"{path}:{lineno}: expected {len(ANNOTATION_FIELDS)} comma-separated fields "
            f"({','.join(ANNOTATION_FIELDS)}), got {len(fields)}: {line!r}"
        )
    return fields


def parse_line(path: Path, lineno: int, line: str) -> Tuple[int, ...]:
    """Parse one annotation line into 8 integers, or raise ValueError naming path:lineno."""
    values = []
    for name, field in zip(ANNOTATION_FIELDS, split_fields(path, lineno, line)):
        try:
            values.append(int(field))
        except ValueError:
            raise ValueError(
                f"{path}:{lineno}: field {name!r} is not an integer: {field.strip()!r} "
                f"in {line!r}"
            ) from None
    category = values[5]
    if not IGNORED_REGION <= category <= OTHERS:
        raise ValueError(
            f"{path}:{lineno}: category {category} outside 0..{OTHERS}: {line!r}"
        )
    return tuple(values)


def clip_box(x: int, y: int, w: int, h: int, width: int, height: int) -> List[float]:
    """Clip an XYWH box to a ``width`` x ``height`` image; the result may be empty."""
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, width), min(y + h, height)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def image_size(path: Path) -> Tuple[int, int]:
    """(height, width) read from the image header, without decoding pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except UnidentifiedImageError as e:
        raise ValueError(f"{path}: not a readable image ({e})") from e
    return height, width


def load_annotation_file(
    path: Path, height: int, width: int, counts: Counter
) -> Tuple[List[dict], List[List[float]]]:
    """Parse one annotation file of a ``width`` x ``height`` image into (Detectron2
    annotations, ignore regions), dropping and clipping as :func:`zoominnet_d2.data.load_visdrone`
    documents; ``counts`` gains what was dropped or clipped ("others", "zero_size",
    "zero_size_ignored", "outside", "clipped")."""
    annotations: List[dict] = []
    ignore_regions: List[List[float]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        x, y, w, h, _score, category, truncation, occlusion = parse_line(path, lineno, line)
        if category == OTHERS:
            counts["others"] += 1
            continue
        if w <= 0 or h <= 0:
            counts["zero_size_ignored" if category == IGNORED_REGION else "zero_size"] += 1
            continue
        box = clip_box(x, y, w, h, width, height)
        if box[2] <= 0 or box[3] <= 0:
            counts["outside"] += 1
            continue
        if box != [float(x), float(y), float(w), float(h)]:
            counts["clipped"] += 1
        if category == IGNORED_REGION:
            ignore_regions.append(box)
            continue
        annotations.append(
            {
                "bbox": box,
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": category - 1,
                "iscrowd": 0,
                "truncation": truncation,
                "occlusion": occlusion,
            }
        )
    return annotations, ignore_regions
