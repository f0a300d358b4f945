"""VisDrone-DET (VisDrone2019 object detection in images) as Detectron2 datasets.

Layout of one split, as released::

    VisDrone2019-DET-<split>/
        images/<stem>.jpg
        annotations/<stem>.txt

The annotation format and its parsing are in :mod:`zoominnet_d2.data.visdrone_files`.

Nothing is registered at import time: call :func:`register_visdrone`.
"""
import logging
import os
from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence, Union

from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image, ImageFile

from .visdrone_files import IMAGE_EXTENSIONS, describe_missing, image_size, list_files, load_annotation_file

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
    images = list_files(image_dir, IMAGE_EXTENSIONS)
    annotation_files = list_files(annotation_dir, {".txt"})

    problems = []
    no_annotation = images.keys() - annotation_files.keys()
    no_image = annotation_files.keys() - images.keys()
    if no_annotation:
        problems.append(describe_missing(no_annotation, f"images without annotation file in "
                                                         f"{annotation_dir}"))
    if no_image:
        problems.append(describe_missing(no_image, f"annotation files without image in "
                                                    f"{image_dir}"))
    if problems:
        raise FileNotFoundError("VisDrone split does not pair up: " + "; ".join(problems))

    counts: Counter = Counter()
    dataset_dicts = []
    for stem in sorted(images):
        height, width = image_size(images[stem])
        annotations, ignore_regions = load_annotation_file(
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


def register_visdrone(root: Optional[PathLike] = None, prefix: str = "visdrone2019",
                      splits: Sequence[str] = tuple(VISDRONE_SPLITS)) -> List[str]:
    """Register the train, val and test-dev splits of VisDrone-DET found under ``root``.

    Registers ``{prefix}_train``, ``{prefix}_val`` and ``{prefix}_test_dev`` for the folders
    ``VisDrone2019-DET-{train,val,test-dev}`` of ``root`` (those of ``splits``). Reads no
    file, so the folders need not exist yet; see :func:`register_visdrone_split`.

    Args:
        root: folder holding the ``VisDrone2019-DET-*`` folders. Default:
            ``$DETECTRON2_DATASETS``, else ``datasets``.
        prefix: prefix of the registered names.
        splits: the splits to register, keys of ``VISDRONE_SPLITS``.

    Returns:
        list[str]: the registered names.
    """
    if root is None:
        root = os.environ.get("DETECTRON2_DATASETS", "datasets")
    names = []
    unknown = set(splits) - set(VISDRONE_SPLITS)
    if unknown:
        raise ValueError(f"unknown VisDrone splits {sorted(unknown)}, expected some of {list(VISDRONE_SPLITS)}")
    for split in splits:
        name = f"{prefix}_{split}"
        split_dir = Path(root) / VISDRONE_SPLITS[split]
        register_visdrone_split(name, split_dir / "images", split_dir / "annotations")
        names.append(name)
    return names
