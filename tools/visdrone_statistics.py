"""Statistics of VisDrone-DET annotations that decide detection difficulty.

    python tools/visdrone_statistics.py --annotations DIR [DIR ...] \
        [--images DIR ... | --sizes FILE.csv | --yolo-labels DIR ...] [--student-size 512] \
        [--teacher-size 1024] [--name NAME] [--output FILE.json] [--markdown FILE.md]
    python tools/visdrone_statistics.py --table A.json B.json ... [--markdown FILE.md]

The annotation folders (official ``<stem>.txt`` files) are pooled into one set and parsed by
the project's parser (:mod:`zoominnet_d2.data.visdrone_files`; bad lines are named by file and
line). Boxes are the lines evaluated: categories 1-10, score 1, positive width and height,
clipped to the frame when its size is known, as ``load_visdrone`` does. Computed: COCO
small/medium/large shares (areas 32^2, 96^2) at the original resolution and at the teacher
input; box side ``sqrt(w h)`` (quartiles: numpy's linear percentiles) at the original
resolution, over the frame's long side and at the square student / teacher inputs (the
frame squashed to ``S x S``: ``sqrt(w S / W * h S / H)``); aspect ``w / h``; boxes per frame
and per 1/4 x 1/4 tile of the frame (by box centre); per-class shares, sizes and aspects; the
mean fraction of the frame covered by the union of its ignored regions (category 0); frame
sizes.

Frame sizes: ``--images`` (image headers), ``--sizes`` (a CSV whose header names ``stem``,
``width``, ``height``, e.g. ``visdrone_real/MANIFEST.csv``) or ``--yolo-labels``: the label
folders of VisDrone2YOLO's converter, which writes one ``class cx cy w h`` line normalised by
the image size per annotation line of score != 0 and category 1-10, in file order, so the
size is ``w / w_norm``, ``h / h_norm`` (checked to be one integer on every line). Without
them only the size-independent statistics are given. ``--table`` tabulates ``--output`` files.
"""
import argparse
import json
import os
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from visdrone_frames import Sizes, read_annotations, sizes_from_csv, sizes_from_images, sizes_from_yolo  # noqa: E402

from zoominnet_d2.data.visdrone import VISDRONE_CLASSES  # noqa: E402
from zoominnet_d2.data.visdrone_files import clip_box  # noqa: E402
from zoominnet_d2.evaluation.ignore_regions import ignored_area  # noqa: E402

SMALL_AREA, MEDIUM_AREA = 32 ** 2, 96 ** 2  # COCO: small < 32^2 <= medium < 96^2 <= large


def _quartiles(values: np.ndarray, digits: int = 2) -> Optional[List[float]]:
    """``[q1, median, q3]`` of ``values`` (None when empty)."""
    return [round(float(v), digits) for v in np.percentile(values, [25, 50, 75])] if len(
        values) else None


def _shares(area: np.ndarray) -> Dict[str, Optional[float]]:
    """COCO small / medium / large shares of boxes with areas ``area`` (None when empty)."""
    counts = np.histogram(area, [0, SMALL_AREA, MEDIUM_AREA, np.inf])[0]  # [a, b) bins
    return {k: float(c / len(area)) if len(area) else None
            for k, c in zip(("small", "medium", "large"), counts)}


def _frame(rows: np.ndarray, size, excluded: Counter):
    """Evaluated boxes ``(K, 5)``: w, h, category, frame w, h; ignored coverage (or None);
    per-tile box counts (a 4 x 4 grid by box centre; None without a frame size)."""
    objects = rows[(rows[:, 5] >= 1) & (rows[:, 5] <= 10)]
    excluded["ignored_regions"] += int((rows[:, 5] == 0).sum())
    excluded["others_category_11"] += int((rows[:, 5] == 11).sum())
    excluded["score_0_objects"] += int((objects[:, 4] != 1).sum())
    objects = objects[objects[:, 4] == 1]
    positive = (objects[:, 2] > 0) & (objects[:, 3] > 0)
    excluded["zero_size"] += int((~positive).sum())
    xywh, cls = objects[positive][:, :4].astype(float), objects[positive][:, 5]
    if size is None:
        return np.column_stack([xywh[:, 2:], cls, np.full((len(cls), 2), np.nan)]), None, None
    width, height = size
    clipped = np.array([clip_box(*map(int, b), width, height) for b in xywh]).reshape(-1, 4)
    excluded["clipped"] += int((clipped != xywh).any(axis=1).sum())
    inside = (clipped[:, 2] > 0) & (clipped[:, 3] > 0)
    excluded["outside_frame"] += int((~inside).sum())
    xywh, cls = clipped[inside], cls[inside]
    covered = ignored_area([[0, 0, width, height]], rows[rows[:, 5] == 0][:, :4])[0]
    tx = np.minimum((xywh[:, 0] + xywh[:, 2] / 2) * 4 // width, 3).astype(int)
    ty = np.minimum((xywh[:, 1] + xywh[:, 3] / 2) * 4 // height, 3).astype(int)
    tiles = np.bincount(ty * 4 + tx, minlength=16)
    boxes = np.column_stack([xywh[:, 2:], cls, np.broadcast_to(size, (len(cls), 2))])
    return boxes, covered / (width * height), tiles


def _counts(values) -> dict:
    """mean / median / 90th percentile / max of a list of counts."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p90": float(
        np.percentile(v, 90)), "max": int(v.max())} if len(v) else dict.fromkeys(
        ("mean", "median", "p90", "max"))


def compute_statistics(annotations: Dict[str, np.ndarray], sizes: Optional[Sizes] = None,
                       student_size: int = 512, teacher_size: int = 1024) -> dict:
    """The statistics of one pooled set (see the module docstring); JSON-serialisable."""
    sizes, excluded, frame_sizes = sizes or {}, Counter(), Counter()
    boxes, coverage, tiles, per_frame = [np.zeros((0, 5))], [], [], []
    for stem, rows in annotations.items():
        frame_boxes, covered, frame_tiles = _frame(rows, sizes.get(stem), excluded)
        boxes.append(frame_boxes)
        per_frame.append(len(frame_boxes))
        if covered is not None:
            frame_sizes["{}x{}".format(*sizes[stem])] += 1
            coverage.append(covered)
            tiles.extend(frame_tiles)
    w, h, cls, fw, fh = np.concatenate(boxes).T
    side, aspect, known = np.sqrt(w * h), w / h, ~np.isnan(fw)
    aspect_input = aspect * fh / fw  # w / h after squashing the frame to a square (NaN: unknown)
    student = np.sqrt(w * student_size / fw * h * student_size / fh)  # NaN: size unknown
    teacher = student * teacher_size / student_size
    bins = np.histogram(student[known], [0, 8, 16, 32, 64, np.inf])[0] / max(known.sum(), 1)
    stats = {
        "frames": len(annotations), "frames_with_size": len(coverage), "boxes": len(w),
        "excluded_lines": dict(excluded),
        "student_size": student_size, "teacher_size": teacher_size,
        "shares": _shares(w * h), "shares_teacher": _shares(teacher[known] ** 2),
        "side": _quartiles(side),
        "side_relative": _quartiles((side / np.maximum(fw, fh))[known], 4),
        "side_student": _quartiles(student[known]), "side_teacher": _quartiles(teacher[known]),
        "student_side_bins": dict(zip(("<8", "8-16", "16-32", "32-64", ">=64"),
                                      bins.tolist())) if known.any() else None,
        "aspect": _quartiles(aspect), "aspect_input": _quartiles(aspect_input[known]),
        "boxes_per_frame": _counts(per_frame), "boxes_per_tile": _counts(tiles),
        "ignored_coverage": {"mean": float(np.mean(coverage)) if coverage else None,
                             "frames_with_regions": int(np.count_nonzero(coverage))},
        "frame_sizes": dict(frame_sizes.most_common()), "classes": {},
    }
    for c, name in enumerate(VISDRONE_CLASSES, 1):
        m = cls == c
        stats["classes"][name] = {
            "count": int(m.sum()), "share": float(m.sum() / max(len(w), 1)),
            "side": _quartiles(side[m]), "side_student": _quartiles(student[m & known]),
            "aspect": _quartiles(aspect[m]), "aspect_input": _quartiles(aspect_input[m & known]),
            "small": _shares(w[m] * h[m])["small"]}
    return stats


def _q(quartiles, fmt="{:.1f}") -> str:
    """``median [q1, q3]`` or ``n/a``."""
    if quartiles is None:
        return "n/a"
    q1, med, q3 = (fmt.format(v) for v in quartiles)
    return f"{med} [{q1}, {q3}]"


def _pct(x) -> str:
    """A share as a percentage with one decimal, or ``n/a``."""
    return "n/a" if x is None else f"{100 * x:.1f}"


_ROWS = [  # (label, cell of one column's statistics)
    ("frames (with known size)", lambda s: f"{s['frames']} ({s['frames_with_size']})"),
    ("boxes (classes 1-10, score 1)", lambda s: str(s["boxes"])),
    ("small / medium / large %, original", lambda s: " / ".join(map(_pct, s["shares"].values()))),
    ("small / medium / large %, at teacher input",
     lambda s: " / ".join(map(_pct, s["shares_teacher"].values()))),
    ("box side px, original: median [q1, q3]", lambda s: _q(s["side"])),
    ("box side / frame long side", lambda s: _q(s["side_relative"], "{:.4f}")),
    ("student / teacher input (squashed square) px",
     lambda s: f"{s['student_size']} / {s['teacher_size']}"),
    ("box side at student input px", lambda s: _q(s["side_student"])),
    ("box side at teacher input px", lambda s: _q(s["side_teacher"])),
    ("student side <8 / 8-16 / 16-32 / 32-64 / >=64 px, %", lambda s: "n/a" if not s[
        "student_side_bins"] else " / ".join(map(_pct, s["student_side_bins"].values()))),
    ("aspect w/h, all classes, original", lambda s: _q(s["aspect"], "{:.2f}")),
    ("aspect w/h, all classes, at the square inputs", lambda s: _q(s["aspect_input"], "{:.2f}")),
    ("boxes per frame: mean / median / p90 / max",
     lambda s: "{mean:.1f} / {median:g} / {p90:g} / {max}".format(**s["boxes_per_frame"])),
    ("boxes per 1/4 x 1/4 tile: mean / median / p90 / max", lambda s: "n/a" if s[
        "boxes_per_tile"]["mean"] is None else "{mean:.1f} / {median:g} / {p90:g} / "
        "{max}".format(**s["boxes_per_tile"])),
    ("ignored-region coverage, mean % of frame (frames with regions)", lambda s: "{} ({})".format(
        _pct(s["ignored_coverage"]["mean"]), s["ignored_coverage"]["frames_with_regions"])),
    ("frame sizes (most common)", lambda s: ", ".join(
        f"{k}: {v}" for k, v in list(s["frame_sizes"].items())[:3]) or "n/a"),
    ("excluded / clipped lines", lambda s: ", ".join(
        f"{k} {v}" for k, v in s["excluded_lines"].items() if v) or "none"),
]


def _class_cell(c: dict) -> str:
    """share % / median student side / aspect (original, input) / small % of one class."""
    side, asp = ("n/a" if c[k] is None else f"{c[k][1]:{f}}" for k, f in (
        ("side_student", ".1f"), ("aspect_input", ".2f")))
    return (f"{_pct(c['share'])} / {side} / {_q(c['aspect'], '{:.2f}')} / {asp} / "
            f"{_pct(c['small'])}")


def to_markdown(columns: List[Tuple[str, dict]]) -> str:
    """Side-by-side markdown tables (overall, then per class) of ``(name, stats)`` columns."""
    head = ["| | " + " | ".join(name for name, _ in columns) + " |",
            "|---" * (len(columns) + 1) + "|"]
    lines = head + [f"| {label} | " + " | ".join(cell(s) for _, s in columns) + " |"
                    for label, cell in _ROWS]
    lines += ["", "Per class: share % / median side px at the student input / aspect w/h "
              "median [q1, q3], original / median aspect at the inputs / small % (original)",
              ""] + head
    lines += [f"| {name} | " + " | ".join(_class_cell(s["classes"][name]) for _, s in columns)
              + " |" for name in VISDRONE_CLASSES]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", nargs="+", help="folders of <stem>.txt annotations")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--images", nargs="+", help="folders of the images (for frame sizes)")
    sizes.add_argument("--sizes", help="CSV with stem,width,height columns (a header)")
    sizes.add_argument("--yolo-labels", nargs="+", help="VisDrone2YOLO label folders")
    parser.add_argument("--student-size", type=int, default=512, help="student input side")
    parser.add_argument("--teacher-size", type=int, default=1024, help="teacher input side")
    parser.add_argument("--name", help="column name (default: the annotation folders)")
    parser.add_argument("--output", help="write the statistics to this JSON file")
    parser.add_argument("--markdown", help="write the markdown tables to this file")
    parser.add_argument("--table", nargs="+", help="JSON files of earlier runs: tabulate them")
    args = parser.parse_args(argv)
    if bool(args.annotations) == bool(args.table):
        parser.error("give either --annotations or --table")
    if args.table:
        tables = [json.loads(Path(path).read_text()) for path in args.table]
        columns = [(data["name"], data["statistics"]) for data in tables]
    else:
        annotations = read_annotations(args.annotations)
        frame_sizes = (sizes_from_images(args.images) if args.images else
                       sizes_from_csv(args.sizes) if args.sizes else
                       sizes_from_yolo(annotations, args.yolo_labels) if args.yolo_labels else {})
        unsized = len(annotations.keys() - frame_sizes.keys())
        if frame_sizes and unsized:
            print(f"warning: no frame size for {unsized} of {len(annotations)} frames: left out "
                  "of the size-dependent statistics", file=sys.stderr)
        stats = compute_statistics(annotations, frame_sizes, args.student_size,
                                   args.teacher_size)
        name = args.name or " + ".join(args.annotations)
        columns = [(name, stats)]
        if args.output:
            Path(args.output).write_text(json.dumps(
                {"name": name, "command": shlex.join(["python", "tools/visdrone_statistics.py"] + (
                    sys.argv[1:] if argv is None else list(argv))), "statistics": stats},
                indent=1) + "\n")
    text = to_markdown(columns)
    if args.markdown:
        Path(args.markdown).write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
