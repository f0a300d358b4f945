"""VisDrone-DET (VisDrone2019 object detection in images) as Detectron2 datasets.

Layout of one split, as released::

    VisDrone2019-DET-<split>/
        images/<stem>.jpg
        annotations/<stem>.txt

Each annotation line reads ``left,top,width,height,score,category,truncation,occlusion``
(integers, pixels; some files end lines with a trailing comma). Categories: 0 ignored region,
1 pedestrian, 2 people, 3 bicycle, 4 car, 5 van, 6 truck, 7 tricycle, 8 awning-tricycle,
9 bus, 10 motor, 11 others.

Nothing is registered at import time: call :func:`register_visdrone`.
"""
import logging
import os
from collections import Counter
from pathlib import Path
from typing import AbstractSet, Dict, List, Optional, Sequence, Tuple, Union

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image, ImageFile, UnidentifiedImageError

__all__ = [
    "VISDRONE_CLASSES",
    "VISDRONE_SPLITS",
    "check_images",
    "load_visdrone",
    "register_visdrone",
    "register_visdrone_split",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Training classes, VisDrone categories 1-10 in order (``category_id`` = category - 1).
VISDRONE_CLASSES = [
    "pedestrian",
    "people",
    "bicycle",
    "car",
    "van",
    "truck",
    "tricycle",
    "awning-tricycle",
    "bus",
    "motor",
]

#: Registered split suffix -> folder name of the official release.
VISDRONE_SPLITS = {
    "train": "VisDrone2019-DET-train",
    "val": "VisDrone2019-DET-val",
    "test_dev": "VisDrone2019-DET-test-dev",
}

_FIELDS = ("left", "top", "width", "height", "score", "category", "truncation", "occlusion")
_IGNORED_REGION = 0
_OTHERS = 11
_IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png"}
_MAX_LISTED = 5


def _list_files(directory: Path, extensions: AbstractSet[str]) -> Dict[str, Path]:
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


def _describe_missing(stems: AbstractSet[str], what: str) -> str:
    """``"<count> <what> (<first stems>, ...)"``."""
    listed = ", ".join(sorted(stems)[:_MAX_LISTED])
    more = ", ..." if len(stems) > _MAX_LISTED else ""
    return f"{len(stems)} {what} ({listed}{more})"


def _parse_line(path: Path, lineno: int, line: str) -> Tuple[int, ...]:
    """Parse one annotation line into 8 integers, or raise ValueError naming path:lineno."""
    fields = line.split(",")
    if len(fields) == len(_FIELDS) + 1 and not fields[-1].strip():
        fields.pop()  # optional trailing comma
    if len(fields) != len(_FIELDS):
        raise ValueError(
            f"{path}:{lineno}: expected {len(_FIELDS)} comma-separated fields "
            f"({','.join(_FIELDS)}), got {len(fields)}: {line!r}"
        )
    values = []
    for name, field in zip(_FIELDS, fields):
        try:
            values.append(int(field))
        except ValueError:
            raise ValueError(
                f"{path}:{lineno}: field {name!r} is not an integer: {field.strip()!r} "
                f"in {line!r}"
            ) from None
    category = values[5]
    if not _IGNORED_REGION <= category <= _OTHERS:
        raise ValueError(
            f"{path}:{lineno}: category {category} outside 0..{_OTHERS}: {line!r}"
        )
    return tuple(values)


def _clip(x: int, y: int, w: int, h: int, width: int, height: int) -> List[float]:
    """Clip an XYWH box to a ``width`` x ``height`` image; the result may be empty."""
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, width), min(y + h, height)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _image_size(path: Path) -> Tuple[int, int]:
    """(height, width) read from the image header, without decoding pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except UnidentifiedImageError as e:
        raise ValueError(f"{path}: not a readable image ({e})") from e
    return height, width


def _load_annotations(
    path: Path, height: int, width: int, counts: Counter
) -> Tuple[List[dict], List[List[float]]]:
    """Parse one annotation file into (Detectron2 annotations, ignore regions)."""
    annotations: List[dict] = []
    ignore_regions: List[List[float]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        x, y, w, h, _score, category, truncation, occlusion = _parse_line(path, lineno, line)
        if category == _OTHERS:
            counts["others"] += 1
            continue
        if w <= 0 or h <= 0:
            counts["zero_size_ignored" if category == _IGNORED_REGION else "zero_size"] += 1
            continue
        box = _clip(x, y, w, h, width, height)
        if box[2] <= 0 or box[3] <= 0:
            counts["outside"] += 1
            continue
        if box != [float(x), float(y), float(w), float(h)]:
            counts["clipped"] += 1
        if category == _IGNORED_REGION:
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


def load_visdrone(image_dir: PathLike, annotation_dir: PathLike) -> List[dict]:
    """Load one VisDrone-DET split as Detectron2 standard dataset dicts.

    Image sizes are read from the file headers only, so a truncated image (valid header, cut
    data) is not detected here: run :func:`check_images` on the result for that.

    Category 11 ("others") lines and boxes of zero or negative size are dropped; boxes that
    cross the image border are clipped to it, and dropped if nothing is left. Ignored regions
    (category 0) get the same treatment and go to ``ignore_regions``. One summary line with
    these counts (the clipped count includes ignored regions) is logged at INFO level.

    Args:
        image_dir: folder of ``<stem>.jpg`` / ``.jpeg`` / ``.png`` images.
        annotation_dir: folder of ``<stem>.txt`` annotation files, one per image (an empty
            file means an image without objects).

    Returns:
        list[dict]: one dict per image, sorted by stem, with ``file_name``, ``image_id``
        (the stem), ``height``, ``width``, ``annotations`` (``bbox`` as float XYWH_ABS,
        ``bbox_mode``, ``category_id`` in 0..9 indexing :data:`VISDRONE_CLASSES`,
        ``iscrowd`` = 0, ``truncation``, ``occlusion``) and ``ignore_regions`` (list of
        ``[x, y, w, h]``).

    Raises:
        FileNotFoundError: a directory is missing, or images and annotation files do not
            pair up by stem (the message gives the count and first stems of each side).
        ValueError: a malformed annotation line (the message gives ``path:lineno``), a
            file that is not an image, or two images (or annotation files) with one stem.
    """
    image_dir, annotation_dir = Path(image_dir), Path(annotation_dir)
    images = _list_files(image_dir, _IMAGE_EXTENSIONS)
    annotation_files = _list_files(annotation_dir, {".txt"})

    problems = []
    no_annotation = images.keys() - annotation_files.keys()
    no_image = annotation_files.keys() - images.keys()
    if no_annotation:
        problems.append(_describe_missing(no_annotation, f"images without annotation file in "
                                                         f"{annotation_dir}"))
    if no_image:
        problems.append(_describe_missing(no_image, f"annotation files without image in "
                                                    f"{image_dir}"))
    if problems:
        raise FileNotFoundError("VisDrone split does not pair up: " + "; ".join(problems))

    counts: Counter = Counter()
    dataset_dicts = []
    for stem in sorted(images):
        height, width = _image_size(images[stem])
        annotations, ignore_regions = _load_annotations(
            annotation_files[stem], height, width, counts
        )
        counts["boxes"] += len(annotations)
        counts["ignore_regions"] += len(ignore_regions)
        dataset_dicts.append(
            {
                "file_name": str(images[stem]),
                "image_id": stem,
                "height": height,
                "width": width,
                "annotations": annotations,
                "ignore_regions": ignore_regions,
            }
        )

    logger.info(
        f"load_visdrone({image_dir}): {len(dataset_dicts)} images, {counts['boxes']} boxes,"
        f" {counts['ignore_regions']} ignored regions; dropped {counts['others']} 'others'"
        f" (category 11), {counts['zero_size']} zero-size boxes,"
        f" {counts['zero_size_ignored']} zero-size ignored regions,"
        f" {counts['outside']} outside the image; clipped {counts['clipped']} crossing the border"
    )
    return dataset_dicts


def check_images(dataset_dicts: Sequence[dict]) -> List[str]:
    """Fully decode every image of ``dataset_dicts`` and return the files that fail.

    A pre-flight check for what :func:`load_visdrone` cannot see from headers, such as a
    truncated JPEG. Truncated images are treated as errors whatever the global
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` says. Each failure is logged with its reason.

    Args:
        dataset_dicts: dicts with a ``file_name`` key, e.g. from :func:`load_visdrone`.

    Returns:
        list[str]: the ``file_name`` of every image that could not be decoded, in order.
    """
    failed = []
    load_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        for record in dataset_dicts:
            try:
                with Image.open(record["file_name"]) as image:
                    image.load()
            except (OSError, SyntaxError, ValueError) as e:
                logger.warning(f"check_images: cannot decode {record['file_name']}: {e}")
                failed.append(record["file_name"])
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = load_truncated
    return failed


def register_visdrone_split(name: str, image_dir: PathLike, annotation_dir: PathLike) -> None:
    """Register one VisDrone-DET split in Detectron2's ``DatasetCatalog`` and ``MetadataCatalog``.

    Registration is lazy: no file is read until ``DatasetCatalog.get(name)``. A name that is
    already registered with the same folders is left as is.

    Args:
        name: dataset name, e.g. ``"visdrone2019_train"``.
        image_dir: folder of the split's images.
        annotation_dir: folder of the split's annotation files.

    Raises:
        ValueError: ``name`` is already registered with other folders.
    """
    image_root, annotation_root = str(image_dir), str(annotation_dir)
    if name in DatasetCatalog.list():
        metadata = MetadataCatalog.get(name)
        registered = (metadata.get("image_root"), metadata.get("annotation_root"))
        if registered != (image_root, annotation_root):
            raise ValueError(
                f"dataset {name!r} is already registered with image_root={registered[0]!r}, "
                f"annotation_root={registered[1]!r}; cannot register it again with "
                f"image_root={image_root!r}, annotation_root={annotation_root!r}"
            )
        return
    DatasetCatalog.register(name, lambda: load_visdrone(image_root, annotation_root))
    MetadataCatalog.get(name).set(
        thing_classes=list(VISDRONE_CLASSES),
        evaluator_type="visdrone",
        image_root=image_root,
        annotation_root=annotation_root,
    )


def register_visdrone(root: Optional[PathLike] = None, prefix: str = "visdrone2019") -> List[str]:
    """Register the train, val and test-dev splits of VisDrone-DET found under ``root``.

    Registers ``{prefix}_train``, ``{prefix}_val`` and ``{prefix}_test_dev`` for the folders
    ``VisDrone2019-DET-{train,val,test-dev}`` of ``root``. Reads no file, so the folders need
    not exist yet; see :func:`register_visdrone_split`.

    Args:
        root: folder holding the ``VisDrone2019-DET-*`` folders. Default:
            ``$DETECTRON2_DATASETS``, else ``datasets``.
        prefix: prefix of the registered names.

    Returns:
        list[str]: the registered names.
    """
    if root is None:
        root = os.environ.get("DETECTRON2_DATASETS", "datasets")
    names = []
    for split, folder in VISDRONE_SPLITS.items():
        name = f"{prefix}_{split}"
        split_dir = Path(root) / folder
        register_visdrone_split(name, split_dir / "images", split_dir / "annotations")
        names.append(name)
    return names
