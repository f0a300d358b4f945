"""tools/visdrone_statistics.py against values computed by hand, and on the real frames.

The hand-made set (two frames, 100x50 and 200x100) has one box of each interesting kind: a
box crossing the border (clipped), a zero-size box, a score-0 object, a category-11 line, two
overlapping ignored regions and a trailing comma. Its expected numbers are worked out in the
comments below, not by the script's code. On the real frames (``../shared``, skipped when
absent) a plain parser written here gives the reference.
"""
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import visdrone_frames as vf  # noqa: E402
import visdrone_statistics as vs  # noqa: E402

FRAMES = {  # stem: ((width, height), annotation lines)
    "a": ((100, 50), ["0,0,10,20,1,1,0,0",  # pedestrian 10x20: area 200, side sqrt(200)
                      "10,10,40,40,1,4,0,0",  # car 40x40: area 1600 (medium), side 40
                      "90,40,20,20,1,4,0,0",  # car clipped to 10x10: area 100, side 10
                      "0,0,50,25,0,0,0,0", "25,0,50,25,0,0,0,0",  # ignored: union 75x25
                      "5,5,5,5,0,11,0,0",  # others: excluded
                      "5,5,0,5,1,4,0,0",  # zero width: excluded
                      "1,1,5,5,0,3,0,0"]),  # score 0: excluded
    "b": ((200, 100), ["0,0,100,100,1,9,0,0",  # bus 100x100: area 10000 (large), side 100
                       "150,50,8,4,1,10,0,0,"]),  # motor 8x4 (trailing comma): side sqrt(32)
}


@pytest.fixture
def handmade(tmp_path):
    """(annotation folder, sizes CSV, image folder) of FRAMES."""
    (tmp_path / "ann").mkdir()
    (tmp_path / "img").mkdir()
    with open(tmp_path / "sizes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "stem", "width", "height"])
        for stem, ((w, h), lines) in FRAMES.items():
            (tmp_path / "ann" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
            Image.new("RGB", (w, h)).save(tmp_path / "img" / f"{stem}.png")
            writer.writerow(["x", stem, w, h])
    return tmp_path / "ann", tmp_path / "sizes.csv", tmp_path / "img"


def _close(actual, expected, tol=0.01):
    assert actual == pytest.approx(expected, abs=tol), (actual, expected)


def test_handmade_statistics(handmade):
    ann, sizes_csv, _ = handmade
    # Student 100 x 100: frame a is scaled by (1, 2) -> sides x sqrt(2); b by (0.5, 1) -> x
    # sqrt(0.5). Student sides: 20, 56.57, 14.14 (a); 70.71, 4 (b). Teacher 200: twice that.
    s = vs.compute_statistics(vf.read_annotations([str(ann)]), vf.sizes_from_csv(sizes_csv),
                              student_size=100, teacher_size=200)
    assert (s["frames"], s["frames_with_size"], s["boxes"]) == (2, 2, 5)
    assert s["excluded_lines"] == {"ignored_regions": 2, "others_category_11": 1,
                                   "score_0_objects": 1, "zero_size": 1, "clipped": 1,
                                   "outside_frame": 0}
    assert s["shares"] == pytest.approx({"small": 0.6, "medium": 0.2, "large": 0.2})
    # Teacher sides 8, 28.3, 40, 113.1, 141.4: areas 64, 800 | 1600 | 12800, 20000.
    assert s["shares_teacher"] == pytest.approx({"small": 0.4, "medium": 0.2, "large": 0.4})
    _close(s["side"], [10, math.sqrt(200), 40])  # sorted 5.66, 10, 14.14, 40, 100
    # Over the long side (100 for a, 200 for b): .028, .1, .141, .4, .5.
    _close(s["side_relative"], [0.1, 0.1414, 0.4], 1e-4)
    _close(s["side_student"], [math.sqrt(200), 20, 40 * math.sqrt(2)])
    _close(s["side_teacher"], [2 * math.sqrt(200), 40, 80 * math.sqrt(2)])
    assert s["student_side_bins"] == pytest.approx(dict.fromkeys(
        ("<8", "8-16", "16-32", "32-64", ">=64"), 0.2))
    assert s["aspect"] == [1.0, 1.0, 1.0]  # w/h: 0.5, 1, 1, 1, 2
    assert s["aspect_input"] == [0.5, 0.5, 0.5]  # both frames squash w/h by 0.5
    assert s["boxes_per_frame"] == pytest.approx({"mean": 2.5, "median": 2.5, "p90": 2.9,
                                                  "max": 3})
    # Box centres fall in 5 of the 32 tiles, one each (a: tiles 0, 9, 15; b: 9, 11).
    assert s["boxes_per_tile"] == pytest.approx({"mean": 5 / 32, "median": 0, "p90": 1,
                                                 "max": 1})
    # Frame a: 75 x 25 of 100 x 50 ignored (the overlap counted once); b: none.
    assert s["ignored_coverage"] == pytest.approx({"mean": 0.1875, "frames_with_regions": 1})
    assert s["frame_sizes"] == {"100x50": 1, "200x100": 1}
    classes = s["classes"]
    assert {k: v["count"] for k, v in classes.items() if v["count"]} == {
        "pedestrian": 1, "car": 2, "bus": 1, "motor": 1}
    assert classes["car"]["share"] == 0.4 and classes["car"]["small"] == 0.5
    assert classes["pedestrian"]["aspect"] == [0.5, 0.5, 0.5]
    _close(classes["car"]["side_student"], [
        np.percentile([10 * math.sqrt(2), 40 * math.sqrt(2)], q) for q in (25, 50, 75)])
    assert classes["truck"]["side"] is None and classes["truck"]["small"] is None


def test_sizes_from_images_and_without_sizes(handmade):
    ann, sizes_csv, img = handmade
    annotations = vf.read_annotations([str(ann)])
    assert vf.sizes_from_images([str(img)]) == vf.sizes_from_csv(sizes_csv)
    s = vs.compute_statistics(annotations)
    # Unclipped, the border car is 20x20 (area 400, still small); nothing relative to a frame.
    assert s["boxes"] == 5 and s["frames_with_size"] == 0 and "clipped" not in s[
        "excluded_lines"]
    assert s["shares"] == pytest.approx({"small": 0.6, "medium": 0.2, "large": 0.2})
    _close(s["side"], [math.sqrt(200), 20, 40])
    assert s["side_student"] is None and s["ignored_coverage"]["mean"] is None
    assert s["boxes_per_frame"]["max"] == 3 and s["boxes_per_tile"]["mean"] is None
    assert "n/a" in vs.to_markdown([("no sizes", s)])


def test_sizes_from_yolo_labels(handmade, tmp_path):
    ann, _, _ = handmade
    labels = tmp_path / "labels"
    labels.mkdir()
    # VisDrone2YOLO writes class-1, cx, cy, w, h over the image size for score != 0, cat 1-10.
    (labels / "a.txt").write_text("0 0.05 0.2 0.1 0.4\n3 0.3 0.6 0.4 0.8\n3 1.0 1.0 0.2 0.4\n"
                                  "3 0.05 0.15 0.0 0.1\n")  # the zero-width car too
    (labels / "b.txt").write_text("8 0.25 0.5 0.5 1.0\n9 0.77 0.52 0.04 0.04\n")
    annotations = vf.read_annotations([str(ann)])
    assert vf.sizes_from_yolo(annotations, [str(labels)]) == {"a": (100, 50), "b": (200, 100)}
    (labels / "b.txt").write_text("8 0.25 0.5 0.5 1.0\n8 0.77 0.52 0.04 0.04\n")
    with pytest.raises(ValueError, match=r"b\.txt:2: .*category-10 box"):
        vf.sizes_from_yolo(annotations, [str(labels)])
    (labels / "b.txt").write_text("8 0.25 0.5 0.5 1.0\n9 0.77 0.52 x 0.04\n")
    with pytest.raises(ValueError, match=r"b\.txt:2: '9 0.77 0.52 x 0.04' is not"):
        vf.sizes_from_yolo(annotations, [str(labels)])
    (labels / "b.txt").write_text("8 0.25 0.5 0.5 1.0\n9 0.77 0.52 0.05 0.04\n")
    with pytest.raises(ValueError, match=r"b\.txt: the lines imply different frame sizes"):
        vf.sizes_from_yolo(annotations, [str(labels)])


def test_bad_line_names_file_and_line(tmp_path):
    (tmp_path / "x.txt").write_text("1,2,3,4,1,4,0,0\n1,2,3,four,1,4,0,0\n")
    with pytest.raises(ValueError, match=r"x\.txt:2: field 'height'"):
        vf.read_annotations([str(tmp_path)])
    (tmp_path / "sizes.csv").write_text("stem,width,height\nx,10,5\ny,0,5\n")
    with pytest.raises(ValueError, match=r"sizes\.csv:3: bad width/height"):
        vf.sizes_from_csv(tmp_path / "sizes.csv")


def test_command_json_and_table(handmade, tmp_path, capsys):
    ann, sizes_csv, _ = handmade
    out, md = tmp_path / "s.json", tmp_path / "s.md"
    vs.main(["--annotations", str(ann), "--sizes", str(sizes_csv), "--name", "hand",
             "--output", str(out), "--markdown", str(md)])
    data = json.loads(out.read_text())
    assert data["name"] == "hand" and "--sizes" in data["command"]
    assert "| small / medium / large %, original | 60.0 / 20.0 / 20.0 |" in md.read_text()
    vs.main(["--table", str(out), str(out)])
    assert "| | hand | hand |" in capsys.readouterr().out


def _plain_reference(root: Path):
    """Boxes (w, h) and frames of the real set, by a plain parser (no project code)."""
    sizes = {row["stem"]: (int(row["width"]), int(row["height"]))
             for row in csv.DictReader(open(root / "MANIFEST.csv"))}
    boxes, per_frame = [], []
    for path in sorted(root.glob("*/annotations/*.txt")):
        fields = [line.rstrip(",").split(",") for line in path.read_text().split()]
        frame = [(int(f[2]), int(f[3])) for f in fields
                 if 1 <= int(f[5]) <= 10 and f[4] == "1" and int(f[2]) > 0 and int(f[3]) > 0]
        boxes += frame
        per_frame.append(len(frame))
    return np.array(boxes, float), per_frame, sizes


def test_real_frames(visdrone_real_root):
    root = visdrone_real_root
    splits = ("train", "val")
    annotations = vf.read_annotations([str(root / s / "annotations") for s in splits])
    sizes = vf.sizes_from_images([str(root / s / "images") for s in splits])
    boxes, per_frame, manifest = _plain_reference(root)
    assert sizes == manifest
    s = vs.compute_statistics(annotations, sizes)
    area, side = boxes.prod(axis=1), np.sqrt(boxes.prod(axis=1))
    assert s["boxes"] == len(boxes) == 22942 and s["frames"] == len(per_frame) == 228
    assert s["shares"]["small"] == pytest.approx((area < 1024).mean())
    assert s["shares"]["large"] == pytest.approx((area >= 9216).mean())
    _close(s["side"], np.percentile(side, [25, 50, 75]))
    _close(s["aspect"], np.percentile(boxes[:, 0] / boxes[:, 1], [25, 50, 75]))
    assert s["boxes_per_frame"]["max"] == max(per_frame)
    assert s["boxes_per_frame"]["mean"] == pytest.approx(np.mean(per_frame))
    # Measured 2026-12 (docs/VISDRONE_STATISTICS.md).
    _close([100 * v for v in s["shares"].values()], [65.8, 31.3, 2.9], 0.05)
    _close(s["side"][1], 24.0, 0.05)
    _close(s["side_student"][1], 10.8, 0.05)
    assert 0 < s["ignored_coverage"]["mean"] < 0.05
