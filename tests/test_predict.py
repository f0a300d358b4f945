"""tools/predict.py: images (folder, glob), a video, bad inputs, the output-folder guard."""
import importlib.util
import json
from pathlib import Path

import cv2
import pytest

from deploy_helpers import TINY, save_tiny_student, synthetic_images, tiny_cfg

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/synth/cskd_la.yaml"  # a CSKD config: its teacher must not be needed


@pytest.fixture(scope="module")
def predict():
    spec = importlib.util.spec_from_file_location("zoominnet_predict", REPO / "tools" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_tiny_student(tiny_cfg(CONFIG), tmp_path_factory.mktemp("w") / "student.pth")


def cli(weights, source, out, *extra):
    return ["--config-file", CONFIG, "--weights", weights, "--input", str(source), "--output", str(out),
            *extra, "MODEL.ZOOMIN.TEACHER.WEIGHTS", "/nonexistent/teacher.pth", *TINY]


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(synthetic_images(2, 200, seed=2)):
        cv2.imwrite(str(folder / f"img{i}.jpg"), image)
    good = (folder / "img0.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "garbage.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not an input")
    return folder


def test_folder_of_images(predict, weights, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    result = predict.run(predict.parse_args(cli(weights, image_folder, out, "--score-thresh", "0.05")))
    assert result["images"] == 2 and result["images_per_s"] > 0
    assert sorted(Path(p).name for p in result["skipped"]) == ["garbage.png", "truncated.jpg"]
    printed = capsys.readouterr()
    assert "truncated.jpg" in printed.out + printed.err and "images/s" in printed.out
    assert sorted(p.name for p in (out / "pictures").iterdir()) == ["img0.jpg", "img1.jpg"]
    assert cv2.imread(str(out / "pictures" / "img0.jpg")).shape == (200, 200, 3)
    coco = json.loads((out / "coco_results.json").read_text())
    assert coco and {d["image_id"] for d in coco} <= {"img0", "img1"}
    for name in ("img0", "img1"):
        lines = (out / "visdrone" / f"{name}.txt").read_text().splitlines()
        mine = [d for d in coco if d["image_id"] == name]
        assert len(lines) == len(mine)
        scores = [float(line.split(",")[4]) for line in lines]
        assert scores == sorted(scores, reverse=True) and all(s > 0.05 for s in scores)


def test_glob_and_higher_threshold(predict, weights, image_folder, tmp_path):
    low = predict.run(predict.parse_args(cli(weights, image_folder / "img*.jpg", tmp_path / "a")))
    high = predict.run(predict.parse_args(cli(weights, image_folder / "img*.jpg", tmp_path / "b",
                                              "--score-thresh", "0.1")))
    assert low["images"] == high["images"] == 2 and not low["skipped"]
    n_low = len(json.loads((tmp_path / "a" / "coco_results.json").read_text()))
    n_high = len(json.loads((tmp_path / "b" / "coco_results.json").read_text()))
    assert n_high < n_low


def test_video(predict, weights, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (160, 96))
    for image in synthetic_images(3, 160, seed=4):
        writer.write(image[:96])
    writer.release()
    out = tmp_path / "out"
    assert predict.run(predict.parse_args(cli(weights, video, out)))["images"] == 3
    assert sorted(p.name for p in (out / "visdrone").iterdir()) == [f"clip_{i:06d}.txt" for i in range(3)]
    annotated = cv2.VideoCapture(str(out / "clip.mp4"))
    assert annotated.isOpened() and int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert (annotated.get(cv2.CAP_PROP_FRAME_WIDTH), annotated.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (160, 96)


def test_unopenable_video_is_one_line(predict, weights, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    assert predict.main(cli(weights, bad, tmp_path / "out")) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "broken.mp4" in err
    assert not (tmp_path / "out").exists()


def test_output_folder_with_files_is_refused(predict, weights, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert predict.main(cli(weights, image_folder, out)) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert predict.main(cli(weights, image_folder, out, "--overwrite")) == 0
    assert (out / "mine.txt").read_text() == "keep me" and (out / "coco_results.json").exists()


def test_missing_input_and_weights_are_named(predict, weights, image_folder, tmp_path, capsys):
    assert predict.main(cli(weights, tmp_path / "nothing*.jpg", tmp_path / "o1")) == 1
    assert "nothing*.jpg" in capsys.readouterr().err
    assert predict.main(cli(str(tmp_path / "absent.pth"), image_folder, tmp_path / "o2")) == 1
    assert "absent.pth" in capsys.readouterr().err and not (tmp_path / "o2").exists()
