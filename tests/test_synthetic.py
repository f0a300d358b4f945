"""Tests of the synthetic VisDrone-format dataset generator (zoominnet_d2.data.synthetic)."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from zoominnet_d2.data.synthetic import FORMAT_VERSION, MARKER, generate_dataset, generate_split, main
from zoominnet_d2.data.synthetic_layout import BOXES_CAP
from zoominnet_d2.data.synthetic_objects import CLASSES

STEM = re.compile(r"\d{7}_synth_\d{7}")


def read_annotations(split_dir):
    """{stem: [[left, top, width, height, score, category, truncation, occlusion], ...]}."""
    out = {}
    for path in sorted((split_dir / "annotations").glob("*.txt")):
        rows = []
        for line in path.read_text().splitlines():
            fields = line.split(",")
            assert len(fields) == 8 and all(re.fullmatch(r"-?\d+", f) for f in fields), line
            rows.append([int(f) for f in fields])
        out[path.stem] = rows
    return out


def all_files(root):
    """{relative path: bytes} of every file under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def high_freq(rgb):
    """Mean absolute difference between neighbouring pixels (both axes) of the grey image."""
    grey = rgb.mean(axis=-1)
    return (np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean()) / 2


@pytest.fixture(scope="module")
def stats_split(tmp_path_factory):
    """300 train images at 256 px, seed 0 (~1700 objects)."""
    root = tmp_path_factory.mktemp("stats")
    generate_split(root, "train", 300, 256, 0)
    return root / "VisDrone2019-DET-train"


def objects_of(annotations):
    """All object rows (category > 0) of ``read_annotations``' result."""
    return [r for rows in annotations.values() for r in rows if r[5] > 0]


def test_layout_and_line_format(tmp_path):
    out = tmp_path / "synthdrone"
    counts = generate_dataset(out, num_train=6, num_val=2, size=128, seed=3)
    for split, num in (("train", 6), ("val", 2)):
        split_dir = out / f"VisDrone2019-DET-{split}"
        images = sorted(p.stem for p in (split_dir / "images").glob("*.jpg"))
        annotations = read_annotations(split_dir)
        assert images == sorted(annotations) and len(images) == num
        assert all(STEM.fullmatch(stem) for stem in images), images
        num_objects = 0
        for stem, rows in annotations.items():
            with Image.open(split_dir / "images" / f"{stem}.jpg") as im:
                assert im.format == "JPEG" and im.mode == "RGB" and im.size == (128, 128)
            for x, y, w, h, score, cat, trunc, occl in rows:
                assert 0 <= cat <= 10 and score == (1 if cat > 0 else 0), (stem, cat, score)
                assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 128 and y + h <= 128
                assert trunc == 0 and occl == 0
                num_objects += cat > 0
        assert counts[split] == {"images": num, "boxes": num_objects}
    assert json.loads((out / MARKER).read_text())["counts"] == counts
    assert [p.name for p in tmp_path.iterdir()] == ["synthdrone"], "temporary folder left over"


def test_deterministic(tmp_path):
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate_dataset(tmp_path / name, num_train=4, num_val=2, size=128, seed=seed)
        runs[name] = all_files(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"].keys() == runs["c"].keys()
    differing = [k for k in runs["a"] if k != MARKER and runs["a"][k] != runs["c"][k]]
    assert len(differing) == len(runs["a"]) - 1, "a different seed must change every file"


def test_box_statistics(stats_split):
    annotations = read_annotations(stats_split)
    objects = objects_of(annotations)
    classes = {r[5] for r in objects}
    assert len(classes) >= 8, f"classes present: {sorted(classes)}"
    for rows in annotations.values():
        for ix, iy, iw, ih, *_ in (r for r in rows if r[5] == 0):
            for x, y, w, h, *_ in (r for r in rows if r[5] > 0):
                inter_w = max(0, min(x + w, ix + iw) - max(x, ix))
                inter_h = max(0, min(y + h, iy + ih) - max(y, iy))
                assert inter_w * inter_h < 0.5 * w * h, "object inside an ignored region"


def test_class_shares_and_sizes_follow_visdrone(stats_split):
    """Loose bounds around the VisDrone train targets (synthetic_objects.CLASSES, at 256 px)."""
    objects = np.array(objects_of(read_annotations(stats_split)))
    side, aspect = np.sqrt(objects[:, 2] * objects[:, 3]), objects[:, 2] / objects[:, 3]
    for cls, spec in CLASSES.items():
        mine = objects[:, 5] == cls
        share = mine.mean()
        assert abs(share - spec.share) <= 0.25 * spec.share + 0.01, (cls, share, spec.share)
        if mine.sum() >= 100:  # enough boxes for a median within sampling noise
            assert abs(np.median(side[mine]) / spec.side - 1) < 0.25, (cls, np.median(side[mine]))
            assert abs(np.median(aspect[mine]) / spec.aspect - 1) < 0.25, cls
    upright = np.isin(objects[:, 5], (1, 2))
    assert np.median(aspect[upright]) < 0.5, "pedestrians and people stand upright"
    area = side ** 2
    small, large = (area < 32 ** 2).mean(), (area >= 96 ** 2).mean()
    assert 0.6 < small < 0.8 and 0.01 < large < 0.07, (small, large)  # VisDrone: 66-69, 3%


def test_density_and_ignored_regions_follow_visdrone_tiles(stats_split):
    annotations = read_annotations(stats_split)
    counts = np.array([sum(r[5] > 0 for r in rows) for rows in annotations.values()])
    assert counts.min() >= 1 and counts.max() <= BOXES_CAP
    assert 4 <= counts.mean() <= 8 and 10 <= np.percentile(counts, 90) <= 20, (
        counts.mean(), np.percentile(counts, 90))  # VisDrone's non-empty tiles: 6, 15
    regions = [[r for r in rows if r[5] == 0] for rows in annotations.values()]
    with_regions = np.mean([bool(r) for r in regions])
    assert 0.35 < with_regions < 0.65, with_regions
    coverage = np.mean([sum(r[2] * r[3] for r in rs) for rs in regions]) / 256 ** 2
    assert 0.003 < coverage < 0.015, coverage  # union <= sum: an upper bound of the union


@pytest.mark.parametrize("flat, patterned", [(4, 5), (1, 2)], ids=["car-van", "pedestrian-people"])
def test_fine_pattern_vanishes_at_half_resolution(stats_split, flat, patterned):
    mean_colour = {flat: [], patterned: []}
    energy_full = {flat: [], patterned: []}
    energy_half = {flat: [], patterned: []}
    for stem, rows in read_annotations(stats_split).items():
        with Image.open(stats_split / "images" / f"{stem}.jpg") as im:
            full = np.asarray(im.convert("RGB"), float)
            half = np.asarray(im.convert("RGB").resize((im.width // 2, im.height // 2),
                                                       Image.BOX), float)
        for x, y, w, h, _, cat, _, _ in rows:
            if cat in mean_colour and min(w, h) >= 4:  # >= 2 px per axis at half resolution
                crop = full[y:y + h, x:x + w]
                mean_colour[cat].append(crop.reshape(-1, 3).mean(axis=0))
                energy_full[cat].append(high_freq(crop))
                energy_half[cat].append(high_freq(half[y // 2:-(-(y + h) // 2),
                                                       x // 2:-(-(x + w) // 2)]))
    assert min(len(v) for v in mean_colour.values()) >= 50, "too few objects of the pair"
    # Both classes draw from one palette: their mean colours may differ by sampling noise only
    # (less than 3 standard errors, and at most 12 grey levels).
    colour_gap = np.abs(np.mean(mean_colour[flat], 0) - np.mean(mean_colour[patterned], 0))
    noise = np.sqrt(sum(np.var(v, axis=0) / len(v) for v in mean_colour.values()))
    full_gap = np.mean(energy_full[patterned]) - np.mean(energy_full[flat])
    half_gap = abs(np.mean(energy_half[patterned]) - np.mean(energy_half[flat]))
    assert (colour_gap < np.minimum(3 * noise, 12)).all(), (
        f"mean RGB of classes {flat}/{patterned} differ by {colour_gap.round(1)} "
        f"(standard error {noise.round(1)})")
    assert full_gap > 15, f"full-resolution high-frequency gap only {full_gap:.2f}"
    assert half_gap < 0.15 * full_gap, (
        f"after a 2x downsample the high-frequency gap is {half_gap:.2f} "
        f"(full resolution: {full_gap:.2f}); the pattern must average out")


def test_skip_if_complete_and_replace_own_dataset(tmp_path, capsys):
    out = tmp_path / "synthdrone"
    argv = ["--out", str(out), "--train", "2", "--val", "1", "--size", "128", "--seed", "0"]
    main(argv)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capsys.readouterr()
    main(argv)
    assert "skipping" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    main(argv[:-1] + ["1"])  # same folder, other parameters: it carries our marker, so replaced
    assert json.loads((out / MARKER).read_text())["params"]["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["synthdrone"]


def test_older_format_version_is_replaced_not_mixed(tmp_path, capsys):
    out = tmp_path / "synthdrone"
    generate_dataset(out, num_train=2, num_val=1, size=64, seed=0)
    marker = json.loads((out / MARKER).read_text())
    marker["params"]["format_version"] = FORMAT_VERSION - 1  # as a version-2 dataset's marker
    (out / MARKER).write_text(json.dumps(marker))
    (out / "VisDrone2019-DET-train" / "images" / "old_only.jpg").write_bytes(b"v2")
    capsys.readouterr()
    generate_dataset(out, num_train=2, num_val=1, size=64, seed=0)
    assert "replacing" in capsys.readouterr().out
    assert json.loads((out / MARKER).read_text())["params"]["format_version"] == FORMAT_VERSION
    assert not (out / "VisDrone2019-DET-train" / "images" / "old_only.jpg").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["synthdrone"]


def test_refuses_foreign_non_empty_folder(tmp_path, capsys):
    foreign = tmp_path / "mydata"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="mydata"):
        generate_dataset(foreign, num_train=1, num_val=1, size=64, seed=0)
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(foreign), "--train", "1", "--val", "1", "--size", "64"])
    assert str(foreign) in str(exc.value.code)
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["mydata"]
    empty = tmp_path / "empty"
    empty.mkdir()  # an existing empty folder is fine
    assert generate_dataset(empty, num_train=1, num_val=0, size=64, seed=0)["train"]["images"] == 1


@pytest.mark.parametrize("flag, value, name", [("--size", "32", "size"), ("--train", "-1", "num_train"),
                                               ("--val", "-2", "num_val"), ("--seed", "-3", "seed")])
def test_a_bad_parameter_is_named_with_its_value(tmp_path, capsys, flag, value, name):
    out = tmp_path / "synth"
    args = {"--train": "1", "--val": "1", "--size": "64", "--seed": "0", flag: value}
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(out)] + [x for item in args.items() for x in item])
    assert exc.value.code == 2
    assert f"{name} ({flag}) must be >= " in (err := capsys.readouterr().err) and f"got {value}" in err
    assert not out.exists()
