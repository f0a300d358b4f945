"""Reading official VisDrone-DET text files: annotations and detection results.

Both kinds hold one line per box, comma-separated::

    <bbox_left>,<bbox_top>,<bbox_width>,<bbox_height>,<score>,<object_category>,<truncation>,<occlusion>

(detections write -1 for the last two fields; some annotation files end lines with a comma).
The official toolkit reads them with MATLAB's ``load`` into a numeric matrix, so decimals are
accepted in both, except in the coordinates of an ignored region (category 0), which the
toolkit uses as pixel indices and so must be integers. Annotation scores are 0 or 1 (0: the box is not considered in evaluation)
and categories 0..11 (0 ignored region, 1..10 the classes, 11 others); anything else is
rejected here, with the file and line. Detection categories are not checked: the toolkit
evaluates classes 1..10 and lets any other category take its place in the per-image
detection cap without matching anything (see :mod:`.official_protocol`).
"""
import math

import numpy as np

from ..data.visdrone_files import ANNOTATION_FIELDS, split_fields

_GT_SCORES = (0.0, 1.0)
_GT_CATEGORIES = range(0, 12)


def _parse_line(path: str, lineno: int, line: str) -> list:
    """The 8 numbers of one line, or a ValueError naming ``path:lineno``."""
    values = []
    for name, field in zip(ANNOTATION_FIELDS, split_fields(path, lineno, line)):
        try:
            value = float(field)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"{path}:{lineno}: field {name!r} is not a finite number: "
                             f"{field.strip()!r} in {line!r}")
        values.append(value)
    return values


def read_visdrone_txt(path: str, annotation: bool) -> np.ndarray:
    """The lines of one annotation or result file, in file order.

    Args:
        path: the ``.txt`` file.
        annotation: True for a ground-truth file (scores must be 0 or 1, categories 0..11,
            ignored regions integer coordinates), False for a detector's result file.

    Returns:
        ``(N, 6)`` float64 array ``[left, top, width, height, score, category]`` (the last two
        fields are read and checked for being numbers, then dropped: the toolkit does not use
        them). Blank lines are skipped; an empty file gives ``(0, 6)``.

    Raises:
        ValueError: a malformed line, named as ``path:lineno``.
    """
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            values = _parse_line(path, lineno, line.rstrip("\r\n"))
            if annotation and (values[4] not in _GT_SCORES
                               or values[5] not in _GT_CATEGORIES):
                raise ValueError(f"{path}:{lineno}: an annotation line needs score 0 or 1 and "
                                 f"category 0..11, got score {values[4]:g}, category "
                                 f"{values[5]:g}: {line.strip()!r}")
            if annotation and values[5] == 0 and any(v != round(v) for v in values[:4]):
                raise ValueError(f"{path}:{lineno}: an ignored region (category 0) needs integer "
                                 f"coordinates (the toolkit indexes pixels with them): {line.strip()!r}")
            rows.append(values[:6])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 6)
