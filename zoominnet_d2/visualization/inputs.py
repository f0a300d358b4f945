"""One image as the feature-map pictures need it: its dataset dict and its mapped views."""
from collections import Counter
from pathlib import Path
from typing import Optional

from detectron2.data import detection_utils as utils

from ..data.cross_scale_mapper import ZoomInDatasetMapper, build_zoomin_augmentation
from ..data.visdrone_files import load_annotation_file


def load_image_dict(image_path: str, annotation_path: Optional[str] = None) -> dict:
    """A Detectron2 dataset dict for one image and (optionally) its VisDrone annotation file.

    The annotation file is parsed with the rules of :func:`zoominnet_d2.data.load_visdrone`
    ("others" and empty boxes dropped, boxes clipped to the image, category 0 to
    ``ignore_regions``). Height and width come from the decoded image.

    Returns:
        dict with ``file_name``, ``image_id`` (the stem), ``height``, ``width``,
        ``annotations`` and ``ignore_regions`` (both empty without an annotation file).
    """
    path = Path(image_path)
    image = utils.read_image(str(path), format="RGB")
    height, width = image.shape[:2]
    annotations, ignore_regions = [], []
    if annotation_path:
        annotations, ignore_regions = load_annotation_file(Path(annotation_path), height, width, Counter())
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
    the same student view (3, h, w) and, ``with_teacher``, teacher view (3, s*h, s*w)."""
    kwargs = ZoomInDatasetMapper.from_config(cfg, is_train=True, with_teacher=with_teacher)
    kwargs["augmentations"] = build_zoomin_augmentation(cfg, is_train=False)
    return ZoomInDatasetMapper(**kwargs)
