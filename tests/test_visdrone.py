"""Tests of the VisDrone-DET loader and registration (zoominnet_d2.data.visdrone)."""
import csv
import io
import logging
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from PIL import Image

import zoominnet_d2  # noqa: F401  (compat fixes before detectron2)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from zoominnet_d2.data import VISDRONE_CLASSES, load_visdrone, register_visdrone
from zoominnet_d2.data.visdrone import check_images, register_visdrone_split

LOGGER = "zoominnet_d2.data.visdrone"


# ----------------------------------------------------------------------------- helpers
def write_split(
    root: Path,
    annotations: Dict[str, Optional[str]],
    size=(40, 30),
    ext: str = ".png",
    extra_images=(),
) -> Path:
    """Write ``root/{images,annotations}``: one image per stem of ``annotations`` (plus
    ``extra_images``), and one annotation file per stem whose text is not None."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for stem in list(annotations) + list(extra_images):
        Image.new("RGB", size, (90, 120, 150)).save(root / "images" / f"{stem}{ext}")
    for stem, text in annotations.items():
        if text is not None:
            (root / "annotations" / f"{stem}.txt").write_text(text)
    return root


def load(root: Path) -> List[dict]:
    return load_visdrone(root / "images", root / "annotations")


@pytest.fixture
def unique_prefix():
    """A dataset-name prefix unique to the test; its registrations are removed afterwards."""
    prefix = f"visdrone_test_{uuid.uuid4().hex[:8]}"
    yield prefix
    for name in list(DatasetCatalog.list()):
        if name.startswith(prefix):
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)


# ----------------------------------------------------------------------------- real data
def _count_lines(path: Path):
    """Count lines with a parser independent of the module: (category 1-10 lines with
    positive width and height, category-0 lines, category-11 lines)."""
    objects = ignored = others = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        values = [int(v) for v in line.strip().rstrip(",").split(",")]
        _, _, w, h, _, category = values[:6]
        if category == 0:
            ignored += 1
        elif category == 11:
            others += 1
        elif w > 0 and h > 0:
            objects += 1
    return objects, ignored, others


def test_real_train_split_matches_files_and_manifest(visdrone_real_root, caplog):
    split = visdrone_real_root / "train"
    with open(visdrone_real_root / "MANIFEST.csv", newline="") as f:
        manifest = {row["stem"]: row for row in csv.DictReader(f) if row["split"] == "train"}

    caplog.set_level(logging.INFO, logger=LOGGER)
    dicts = load_visdrone(split / "images", split / "annotations")

    assert len(dicts) == len(manifest) == 225
    assert [d["image_id"] for d in dicts] == sorted(manifest)
    total_objects = total_others = 0
    for d in dicts:
        stem = d["image_id"]
        assert Path(d["file_name"]) == split / "images" / f"{stem}.jpg"
        assert (d["width"], d["height"]) == (
            int(manifest[stem]["width"]),
            int(manifest[stem]["height"]),
        )
        objects, ignored, others = _count_lines(split / "annotations" / f"{stem}.txt")
        assert len(d["annotations"]) == objects, stem
        assert len(d["ignore_regions"]) == ignored, stem
        total_objects += objects
        total_others += others
        for ann in d["annotations"]:
            x, y, w, h = ann["bbox"]
            assert ann["bbox_mode"] == BoxMode.XYWH_ABS
            assert 0 <= ann["category_id"] < len(VISDRONE_CLASSES)
            assert ann["iscrowd"] == 0
            assert w > 0 and h > 0
            assert x >= 0 and y >= 0 and x + w <= d["width"] and y + h <= d["height"], stem
        for x, y, w, h in d["ignore_regions"]:
            assert x >= 0 and y >= 0 and x + w <= d["width"] and y + h <= d["height"], stem

    summary = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(summary) == 1
    assert f"225 images, {total_objects} boxes" in summary[0]
    assert f"dropped {total_others} 'others'" in summary[0]


# ----------------------------------------------------------------------------- parsing
def test_trailing_comma_and_fields(tmp_path):
    root = write_split(tmp_path, {"a": "1,2,10,5,1,4,0,1,\n3,4,6,7,1,1,1,2\n"})
    (d,) = load(root)
    assert d["file_name"] == str(root / "images" / "a.png")
    assert (d["image_id"], d["height"], d["width"]) == ("a", 30, 40)
    assert d["annotations"] == [
        {"bbox": [1.0, 2.0, 10.0, 5.0], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 3,
         "iscrowd": 0, "truncation": 0, "occlusion": 1},
        {"bbox": [3.0, 4.0, 6.0, 7.0], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0,
         "iscrowd": 0, "truncation": 1, "occlusion": 2},
    ]
    assert all(isinstance(v, float) for v in d["annotations"][0]["bbox"])
    assert d["ignore_regions"] == []


def test_blank_lines_and_crlf_are_accepted(tmp_path):
    root = write_split(tmp_path, {"a": "1,2,10,5,1,4,0,1\r\n\r\n  \n3,4,6,7,1,10,0,0\r\n"})
    (d,) = load(root)
    assert [a["category_id"] for a in d["annotations"]] == [3, 9]


@pytest.mark.parametrize(
    "bad_line, fragment",
    [
        ("1,2,3,4,1,4,0", "expected 8 comma-separated fields"),
        ("1,2,3,4,1,4,0,0,0", "expected 8 comma-separated fields"),
        ("1,2,3,4,1,4,0,0,,", "expected 8 comma-separated fields"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad_line, fragment):
    root = write_split(tmp_path, {"img7": f"1,2,3,4,1,4,0,0\n\n{bad_line}\n"})
    with pytest.raises(ValueError) as e:
        load(root)
    message = str(e.value)
    assert "img7.txt:3:" in message
    assert fragment in message
    assert bad_line in message


def test_non_integer_field_names_the_field(tmp_path):
    root = write_split(tmp_path, {"a": "1,2,3,4,1,4,0,0\n1,2,3.5,4,1,4,0,0\n"})
    with pytest.raises(ValueError, match=r"a\.txt:2: field 'width' is not an integer: '3\.5'"):
        load(root)


def test_category_out_of_range(tmp_path):
    root = write_split(tmp_path, {"a": "1,2,3,4,1,12,0,0\n"})
    with pytest.raises(ValueError, match=r"a\.txt:1: category 12 outside 0\.\.11"):
        load(root)


def test_dropped_and_clipped_boxes_with_summary(tmp_path, caplog):
    # image 40 x 30
    text = "\n".join(
        [
            "5,5,10,10,1,4,0,0",  # kept as is
            "5,5,0,10,1,4,0,0",  # zero width: dropped
            "5,5,10,-3,1,4,0,0",  # negative height: dropped
            "5,5,10,10,0,11,0,0",  # others: dropped
            "-4,25,10,10,1,6,1,0",  # crosses left and bottom: clipped to [0, 25, 6, 5]
            "35,-2,20,4,1,1,1,0",  # crosses right and top: clipped to [35, 0, 5, 2]
            "50,5,10,10,1,1,0,0",  # entirely right of the image: dropped
            "0,0,10,10,0,0,0,0",  # ignored region
            "30,20,20,20,0,0,0,0",  # ignored region crossing the border: clipped
            "1,1,0,0,0,0,0,0",  # zero-size ignored region: dropped
        ]
    )
    root = write_split(tmp_path, {"a": text + "\n"})
    caplog.set_level(logging.INFO, logger=LOGGER)
    (d,) = load(root)

    assert [(a["bbox"], a["category_id"]) for a in d["annotations"]] == [
        ([5.0, 5.0, 10.0, 10.0], 3),
        ([0.0, 25.0, 6.0, 5.0], 5),
        ([35.0, 0.0, 5.0, 2.0], 0),
    ]
    assert d["ignore_regions"] == [[0.0, 0.0, 10.0, 10.0], [30.0, 20.0, 10.0, 10.0]]

    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert "1 images, 3 boxes, 2 ignored regions" in message
    assert "dropped 1 'others' (category 11)" in message
    assert "2 zero-size boxes" in message
    assert "1 zero-size ignored regions" in message
    assert "1 outside the image" in message
    assert "clipped 3 crossing the border" in message


def test_empty_annotation_file_is_an_image_without_boxes(tmp_path):
    root = write_split(tmp_path, {"b": "1,2,3,4,1,4,0,0\n", "a": ""})
    dicts = load(root)
    assert [d["image_id"] for d in dicts] == ["a", "b"]
    assert dicts[0]["annotations"] == [] and dicts[0]["ignore_regions"] == []
    assert len(dicts[1]["annotations"]) == 1


def test_jpeg_extensions_case_insensitive_and_other_files_ignored(tmp_path):
    root = write_split(tmp_path, {"a": ""}, ext=".JPG")
    Image.new("RGB", (8, 6)).save(root / "images" / "b.jpeg")
    (root / "annotations" / "b.txt").write_text("")
    (root / "images" / "notes.md").write_text("not an image")
    dicts = load(root)
    assert [(d["image_id"], d["width"], d["height"]) for d in dicts] == [
        ("a", 40, 30),
        ("b", 8, 6),
    ]


# ----------------------------------------------------------------------------- bad files
def test_missing_annotation_files_are_listed(tmp_path):
    stems = {f"s{i}": "" for i in range(3)}
    root = write_split(tmp_path, stems, extra_images=[f"x{i}" for i in range(7)])
    with pytest.raises(FileNotFoundError) as e:
        load(root)
    message = str(e.value)
    assert "7 images without annotation file" in message
    assert "x0, x1, x2, x3, x4, ..." in message
    assert "x5" not in message


def test_missing_images_are_listed(tmp_path):
    root = write_split(tmp_path, {"a": ""})
    (root / "annotations" / "orphan.txt").write_text("")
    with pytest.raises(FileNotFoundError, match=r"1 annotation files without image .*\(orphan\)"):
        load(root)


def test_missing_directory(tmp_path):
    root = write_split(tmp_path, {"a": ""})
    with pytest.raises(FileNotFoundError, match="nope"):
        load_visdrone(tmp_path / "nope", root / "annotations")
    with pytest.raises(FileNotFoundError, match="nope"):
        load_visdrone(root / "images", tmp_path / "nope")


def test_two_images_with_one_stem(tmp_path):
    root = write_split(tmp_path, {"a": ""})
    Image.new("RGB", (8, 6)).save(root / "images" / "a.jpg")
    with pytest.raises(ValueError, match="two files with stem 'a'"):
        load(root)


def test_not_an_image_names_the_file(tmp_path):
    root = write_split(tmp_path, {"a": "", "broken": ""})
    (root / "images" / "broken.png").write_bytes(b"this is not a PNG")
    with pytest.raises(ValueError, match=r"broken\.png: not a readable image"):
        load(root)


def test_truncated_jpeg_found_by_check_images(tmp_path):
    root = write_split(tmp_path, {"good": "", "cut": ""}, ext=".jpg")
    buffer = io.BytesIO()
    noise = Image.effect_noise((64, 48), 60).convert("RGB")
    noise.save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    (root / "images" / "cut.jpg").write_bytes(data[: len(data) // 2])

    dicts = load(root)  # header-only: the truncation is not seen here
    assert [(d["image_id"], d["width"]) for d in dicts] == [("cut", 64), ("good", 40)]
    assert check_images(dicts) == [str(root / "images" / "cut.jpg")]


# ----------------------------------------------------------------------------- registration
def test_register_reads_nothing_and_tolerates_repeats(tmp_path, unique_prefix):
    root = tmp_path / "does_not_exist"
    names = register_visdrone(root, prefix=unique_prefix)
    assert names == [f"{unique_prefix}_{s}" for s in ("train", "val", "test_dev")]
    assert not root.exists()
    assert register_visdrone(root, prefix=unique_prefix) == names  # same root: no error

    metadata = MetadataCatalog.get(f"{unique_prefix}_test_dev")
    assert metadata.thing_classes == VISDRONE_CLASSES
    assert metadata.evaluator_type == "visdrone"
    assert metadata.image_root == str(root / "VisDrone2019-DET-test-dev" / "images")
    assert metadata.annotation_root == str(root / "VisDrone2019-DET-test-dev" / "annotations")

    with pytest.raises(FileNotFoundError, match="VisDrone2019-DET-train"):
        DatasetCatalog.get(f"{unique_prefix}_train")  # the loader runs only now
    with pytest.raises(ValueError, match="already registered"):
        register_visdrone(tmp_path / "elsewhere", prefix=unique_prefix)


def test_register_default_root_from_environment(tmp_path, monkeypatch, unique_prefix):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    register_visdrone(prefix=unique_prefix)
    assert MetadataCatalog.get(f"{unique_prefix}_val").image_root == str(
        tmp_path / "VisDrone2019-DET-val" / "images"
    )


def test_dataset_catalog_get_loads_the_split(tmp_path, unique_prefix):
    write_split(tmp_path / "VisDrone2019-DET-val", {"a": "1,2,3,4,1,9,0,0\n"})
    register_visdrone(tmp_path, prefix=unique_prefix)
    (d,) = DatasetCatalog.get(f"{unique_prefix}_val")
    assert d["image_id"] == "a"
    assert d["annotations"][0]["category_id"] == 8
    assert MetadataCatalog.get(f"{unique_prefix}_val").thing_classes[8] == "bus"


def test_register_visdrone_split(tmp_path, unique_prefix):
    root = write_split(tmp_path, {"a": ""})
    name = f"{unique_prefix}_custom"
    register_visdrone_split(name, root / "images", root / "annotations")
    assert DatasetCatalog.get(name) == load(root)
    assert MetadataCatalog.get(name).evaluator_type == "visdrone"
