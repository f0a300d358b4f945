"""Detections in the official VisDrone-DET result format, for the toolkit or the server.

One text file per image, ``<image_id>.txt``, one line per detection::

    <bbox_left>,<bbox_top>,<bbox_width>,<bbox_height>,<score>,<object_category>,-1,-1

with the VisDrone category (1 pedestrian ... 10 motor, i.e. the contiguous class id + 1);
the last two fields, truncation and occlusion, are -1 for detections. The toolkit caps the
detections of an image by line order (its first 1, 10, 100, 500 lines), so the lines are
written by descending score (ties in the given order). Boxes and scores are written with the
shortest decimals that read back to the same float64 values, so evaluating the files gives
exactly what :mod:`.official_protocol` computes from the predictions in memory (rounding
boxes to whole pixels would move AP75 on small objects).
"""
import os
from typing import Iterable, List, Mapping

import numpy as np


def result_lines(boxes, scores, classes) -> np.ndarray:
    """The result lines of one image as numbers, in the order they are written.

    Args:
        boxes: ``(N, 4)`` boxes, XYWH (absolute pixels).
        scores: ``(N,)`` confidences.
        classes: ``(N,)`` contiguous class ids (0..9).

    Returns:
        ``(N, 6)`` float64 ``[left, top, width, height, score, category]`` sorted by
        descending score, stable.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    categories = np.asarray(classes, dtype=np.int64).reshape(-1) + 1
    order = np.argsort(-scores, kind="stable")
    return np.column_stack([boxes, scores, categories])[order]


def _number(value: float) -> str:
    """The shortest decimal that reads back as the same float64 ("12", "0.8765400052070618")."""
    return np.format_float_positional(value, unique=True, trim="-")


def format_visdrone_lines(boxes, scores, classes) -> List[str]:
    """The text lines of one image (arguments as for :func:`result_lines`)."""
    return [",".join([*map(_number, row[:5]), str(int(row[5])), "-1", "-1"])
            for row in result_lines(boxes, scores, classes)]


def write_visdrone_results(predictions: Iterable[Mapping], output_dir: str) -> List[str]:
    """Write one official result file per image into ``output_dir``.

    Only the files named after the given images are (over)written; nothing else in
    ``output_dir`` is touched. An image without detections gets an empty file, as the
    toolkit expects a file for every image.

    Args:
        predictions: per-image dicts with ``image_id`` (the file stem), ``boxes`` (``(N, 4)``
            XYWH, absolute pixels), ``scores`` (``(N,)``) and ``classes`` (``(N,)``,
            contiguous ids 0..9), as stored by :class:`VisDroneEvaluator`.
        output_dir: the folder of the ``.txt`` files; created if missing.

    Returns:
        The paths written.
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for prediction in predictions:
        lines = format_visdrone_lines(
            prediction["boxes"], prediction["scores"], prediction["classes"]
        )
        path = os.path.join(output_dir, f"{prediction['image_id']}.txt")
        with open(path, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        paths.append(path)
    return paths
