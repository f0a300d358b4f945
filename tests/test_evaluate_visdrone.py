"""tools/evaluate_visdrone.py and results["visdrone"] against the MATLAB-faithful reference.

The command's bad-input behaviour is tested on tiny made-up folders. On real VisDrone frames
(``../shared/data/visdrone_real``, skipped when absent) with perturbed detections:
``evaluate_official`` on unsorted lines, the evaluator's ``results["visdrone"]``, and the
command on the files the evaluator wrote must equal the reference (``official_reference``,
plain loops from the MATLAB code) fed with the files as a plain parser reads them.
"""
import json
import math
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances

import official_reference as reference
from zoominnet_d2.data.visdrone import VISDRONE_CLASSES, register_visdrone_split
from zoominnet_d2.evaluation import VisDroneEvaluator, evaluate_official

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import evaluate_visdrone  # noqa: E402

KEYS = reference.KEYS
# Val frames and train frames with ignored regions (some at the border), category 11, boxes
# at the image edge, and one dense frame (356 lines: over 500 detections).
REAL_STEMS = {
    "val": ["0000001_02999_d_0000005", "0000001_07999_d_0000012", "0000315_01601_d_0000509"],
    "train": ["0000002_00448_d_0000015", "0000010_05149_d_0000057", "0000050_00500_d_0000104",
              "0000046_00000_d_0000087", "0000039_05300_d_0000061",
              "0000137_01824_d_0000162"],
}


def plain_read(path):
    """The first six numbers of each line of an official txt file (the test's own parser)."""
    return [[float(v) for v in line.split(",")[:6]] for line in Path(path).read_text().split("\n")
            if line.strip()]


def reference_on_files(annotation_dir, image_sizes, result_dir):
    """The reference on the files of two folders (annotation file names sorted)."""
    images = []
    for path in sorted(Path(annotation_dir).glob("*.txt")):
        result = Path(result_dir) / path.name
        images.append((plain_read(path), plain_read(result) if result.exists() else [],
                       *image_sizes[path.stem]))
    return reference.evaluate(images)


def as_json(metrics):
    return {k: (None if math.isnan(v) else v) for k, v in metrics.items()}


def assert_equal_to_reference(metrics, expected, per_class):
    reference.assert_equal(metrics, expected, per_class, VISDRONE_CLASSES)


# ----------------------------------------------------------------------------- the command
@pytest.fixture
def folders(tmp_path):
    """Two 64x48 images with annotations, and a result folder for the first."""
    dirs = {name: tmp_path / name for name in ("images", "annotations", "results")}
    for d in dirs.values():
        d.mkdir()
    for stem in ("a", "b"):
        Image.new("RGB", (64, 48)).save(dirs["images"] / f"{stem}.jpg")
        (dirs["annotations"] / f"{stem}.txt").write_text("10,10,20,20,1,1,0,0\n0,30,10,10,0,0,0,0,\n")
    (dirs["results"] / "a.txt").write_text("10,10,20,20,0.5,11,-1,-1\n10.5,10,20,20,0.9,1,-1,-1\n")
    return dirs


def run(folders, *extra):
    return evaluate_visdrone.main(["--annotations", str(folders["annotations"]), "--images",
                                   str(folders["images"]), "--results", str(folders["results"]),
                                   *map(str, extra)])


def test_command_reports_the_official_metrics(folders, tmp_path, capsys):
    output = tmp_path / "out" / "metrics.json"
    report = run(folders, "--output", output)
    err = capsys.readouterr().err
    assert "1 images without a result file" in err and "(b)" in err
    saved = json.loads(output.read_text())
    assert saved == json.loads(json.dumps(report))
    assert list(saved["visdrone"])[:7] == list(KEYS)
    assert saved["images_without_results"] == ["b"]
    assert saved["counts"]["detection_categories_outside_1_10"] == {"11": 1}
    # a: one hit (IoU 0.95) after the category-11 line; b: missed. Pedestrians in 2 images.
    expected, per_class = reference_on_files(folders["annotations"], {"a": (48, 64),
                                                                       "b": (48, 64)},
                                             folders["results"])
    assert_equal_to_reference({k: math.nan if v is None else v
                               for k, v in saved["visdrone"].items()}, expected, per_class)
    assert saved["visdrone"]["AR1"] == 0.0 and saved["visdrone"]["AR10"] == 50.0


def test_command_keeps_an_existing_output(folders, tmp_path, capsys):
    output = tmp_path / "metrics.json"
    output.write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        run(folders, "--output", output)
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert output.read_text() == "mine"
    run(folders, "--output", output, "--overwrite")
    assert json.loads(output.read_text())["protocol"] == "official VisDrone-DET toolkit protocol"


def test_command_names_a_malformed_line(folders, capsys):
    path = folders["results"] / "a.txt"
    path.write_text("10,10,20,20,0.9,1,-1,-1\n10,10,20,x,0.9,1,-1,-1\n")
    with pytest.raises(SystemExit) as exit_info:
        run(folders)
    assert exit_info.value.code == 1
    assert f"{path}:2: field 'height' is not a finite number" in capsys.readouterr().err
    path.write_text("10,10,20,20,0.9\n")
    with pytest.raises(SystemExit):
        run(folders)
    assert f"{path}:1: expected 8 comma-separated fields" in capsys.readouterr().err
    annotation = folders["annotations"] / "b.txt"
    annotation.write_text("10,10,20,20,2,1,0,0\n")
    path.unlink()
    with pytest.raises(SystemExit):
        run(folders)
    assert f"{annotation}:1: an annotation line needs score 0 or 1" in capsys.readouterr().err
    # Decimals are fine in a box, not in an ignored region (the toolkit indexes pixels with it).
    annotation.write_text("10.5,10,20,20,1,1,0,0\n0,0,5.5,5,0,0,0,0\n")
    with pytest.raises(SystemExit):
        run(folders)
    assert f"{annotation}:2: an ignored region (category 0) needs integer coordinates" in capsys.readouterr().err


def test_command_names_a_result_file_without_image(folders, capsys):
    (folders["results"] / "c.txt").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        run(folders)
    assert exit_info.value.code == 1
    assert "1 result files without annotation file" in capsys.readouterr().err
    (folders["results"] / "c.txt").unlink()
    (folders["images"] / "b.jpg").unlink()
    with pytest.raises(SystemExit):
        run(folders)
    assert "1 annotation files without image" in capsys.readouterr().err


# ----------------------------------------------------------------------------- real frames
@pytest.fixture
def real_split(visdrone_real_root, tmp_path):
    """The chosen real frames linked into one split folder; its image sizes."""
    split = {name: tmp_path / name for name in ("images", "annotations")}
    for d in split.values():
        d.mkdir()
    sizes = {}
    for source, stems in REAL_STEMS.items():
        for stem in stems:
            image = visdrone_real_root / source / "images" / f"{stem}.jpg"
            (split["images"] / image.name).symlink_to(image)
            (split["annotations"] / f"{stem}.txt").symlink_to(
                visdrone_real_root / source / "annotations" / f"{stem}.txt")
            with Image.open(image) as im:
                sizes[stem] = (im.height, im.width)
    return split, sizes


def perturbed_lines(gt, height, width, rng, other_categories):
    """Realistic imperfect detections of one frame: jittered (decimals), missed, confused
    and duplicated objects, false positives anywhere and in ignored regions, scores with
    ties; with ``other_categories`` also lines of categories 0 and 11."""
    objects, regions = gt[(gt[:, 5] >= 1) & (gt[:, 5] <= 10)], gt[gt[:, 5] == 0]
    found = objects[rng.random(len(objects)) < 0.85]
    found = np.concatenate([found, found[rng.random(len(found)) < 0.3]])
    lines = found.copy()
    lines[:, :4] += rng.normal(0, 0.08, (len(found), 4)) * found[:, [2, 3, 2, 3]]
    confused = rng.random(len(lines)) < 0.1
    lines[confused, 5] = rng.integers(1, 11, confused.sum())
    n = max(40, len(objects) // 2)
    false = np.column_stack([rng.uniform(0, width - 40, (n, 1)), rng.uniform(0, height - 40, (n, 1)),
                             rng.uniform(4, 40, (n, 2)), np.zeros(n), rng.integers(1, 11, n)])
    inside = regions[:5].copy()
    inside[:, 2:4] /= 2
    inside[:, 5] = 4
    lines = np.concatenate([lines, false, inside])
    if other_categories:
        extra = lines[rng.integers(0, len(lines), 10)].copy()
        extra[:, 5] = [0] * 5 + [11] * 5
        lines = np.concatenate([lines, extra])
    lines[:, 4] = np.round(rng.uniform(0.05, 1, len(lines)), 2)
    return lines


def test_implementation_equals_reference_on_real_frames(real_split):
    split, sizes = real_split
    rng = np.random.default_rng(0)
    images = []
    for path in sorted(split["annotations"].glob("*.txt")):
        gt = np.array(plain_read(path))
        lines = perturbed_lines(gt, *sizes[path.stem], rng, other_categories=True)
        lines = lines[np.argsort(-lines[:, 4] + rng.normal(0, 0.05, len(lines)), kind="stable")]
        images.append((gt, lines, *sizes[path.stem]))  # nearly, not exactly, score order
    metrics, counts = evaluate_official(images, VISDRONE_CLASSES)
    assert counts["detections_beyond_cap"] > 0 and counts["detections_in_ignored_regions"] > 0
    assert counts["gt_in_ignored_regions"] > 0
    assert_equal_to_reference(metrics, *reference.evaluate(images))


def test_evaluator_writer_and_command_agree_with_reference_on_real_frames(real_split, tmp_path):
    split, sizes = real_split
    name = f"test_visdrone_official_{uuid.uuid4().hex[:8]}"
    register_visdrone_split(name, split["images"], split["annotations"])
    try:
        rng = np.random.default_rng(1)
        evaluator = VisDroneEvaluator(name, str(tmp_path / "out"), write_official_txt=True,
                                      distributed=False)
        evaluator.reset()
        for record in DatasetCatalog.get(name):
            gt = np.array(plain_read(split["annotations"] / f"{record['image_id']}.txt"))
            lines = perturbed_lines(gt, record["height"], record["width"], rng, False)
            xyxy = np.column_stack([lines[:, :2], lines[:, :2] + lines[:, 2:4]])
            instances = Instances((record["height"], record["width"]),
                                  pred_boxes=Boxes(torch.tensor(xyxy, dtype=torch.float32)),
                                  scores=torch.tensor(lines[:, 4], dtype=torch.float32),
                                  pred_classes=torch.tensor(lines[:, 5] - 1).long())
            evaluator.process([{"image_id": record["image_id"]}], [{"instances": instances}])
        results = evaluator.evaluate()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    written = tmp_path / "out" / "visdrone_results"
    report = evaluate_visdrone.main(["--annotations", str(split["annotations"]), "--images",
                                     str(split["images"]), "--results", str(written)])
    assert report["visdrone"] == as_json(results["visdrone"])  # exactly: no rounding
    assert_equal_to_reference(results["visdrone"], *reference_on_files(
        split["annotations"], sizes, written))
    assert results["visdrone"]["AP"] != results["bbox"]["AP@500"]
