"""Detections in the official VisDrone-DET result format, for the MATLAB toolkit or the server.

One text file per image, ``<image_id>.txt``, one line per detection::

    <bbox_left>,<bbox_top>,<bbox_width>,<bbox_height>,<score>,<object_category>,-1,-1

with the box in integer pixels (rounded), the score with 4 decimals and the VisDrone
category (1 pedestrian ... 10 motor, i.e. the contiguous class id + 1); the last two fields,
truncation and occlusion, are -1 for detections.
"""
import os
from typing import Iterable, List, Mapping

import numpy as np


def format_visdrone_lines(boxes, scores, classes) -> List[str]:
    """The result lines of one image.

    Args:
        boxes: ``(N, 4)`` boxes, XYWH (absolute pixels).
        scores: ``(N,)`` confidences.
        classes: ``(N,)`` contiguous class ids (0..9).
    """
    boxes = np.rint(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    return [
        f"{x},{y},{w},{h},{score:.4f},{cls + 1},-1,-1"
        for (x, y, w, h), score, cls in zip(boxes.tolist(), scores.tolist(), classes.tolist())
    ]


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
