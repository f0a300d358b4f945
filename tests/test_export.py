"""tools/export.py and the exported students: ONNX Runtime and TorchScript give PyTorch's
detections (same number, same classes, boxes within 1e-3 of their size, scores within 1e-4)
on synthetic images and on real VisDrone frames; the pth export is the student alone."""
import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is in the dev extra (pip install -e .[dev])")

from deploy_helpers import TINY, assert_same_detections, save_tiny_student, synthetic_images, tiny_cfg  # noqa: E402
from detectron2.data.detection_utils import read_image  # noqa: E402

from zoominnet_d2.deploy import build_predictor, build_student, export_student, load_student  # noqa: E402
from zoominnet_d2.deploy.postprocess import DecodeSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f"zoominnet_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=["la", "la subpixel", "fa", "snet"])
def exported(request, tmp_path_factory):
    """(cfg, {backend: predictor}) for a tiny student of configs/synth/<name>.yaml ("la
    subpixel": with MODEL.ZOOMIN.SUBPIXEL_INFERENCE, as configs/la.yaml)."""
    name, *variant = request.param.split()
    tmp = tmp_path_factory.mktemp(name)
    cfg = tiny_cfg(f"configs/synth/{name}.yaml", *(["MODEL.ZOOMIN.SUBPIXEL_INFERENCE", "True"] if variant else []))
    weights = save_tiny_student(cfg, tmp / "student.pth")
    model = load_student(cfg, weights)
    predictors = {"torch": build_predictor(cfg, "torch", weights=weights)}
    for backend, fmt in (("onnx", "onnx"), ("torchscript", "torchscript")):
        path = str(tmp / f"student.{fmt}")
        export_student(model, fmt, path, cfg.INPUT.SQUARE_SIZE)
        predictors[backend] = build_predictor(cfg, backend, model_path=path)
    return cfg, predictors


def test_exported_match_pytorch_on_synthetic_images(exported):
    _, predictors = exported
    counts = []
    for image in synthetic_images(3, 256, seed=1):  # 256 px originals, resized to 128 inside
        reference = predictors["torch"](image)
        counts.append(len(reference))
        for backend in ("onnx", "torchscript"):
            assert_same_detections(reference, predictors[backend](image), input_pixel=256 / 128)
    assert sum(counts) > 0, "the tiny students must detect something for the test to mean anything"


def test_exported_match_pytorch_on_real_frames(visdrone_real_root, tmp_path):
    cfg = tiny_cfg("configs/synth/la.yaml")
    weights = save_tiny_student(cfg, tmp_path / "student.pth", seed=3)
    path = str(tmp_path / "student.onnx")
    export_student(load_student(cfg, weights), "onnx", path, 128)
    torch_predictor = build_predictor(cfg, "torch", weights=weights)
    onnx_predictor = build_predictor(cfg, "onnx", model_path=path)
    files = sorted((visdrone_real_root / "train" / "images").glob("*.jpg"))[:3]
    for f in files:
        image = read_image(str(f), format="BGR")  # 1920x1080 etc., boxes back in its pixels
        reference = torch_predictor(image)
        assert len(reference) > 0
        assert_same_detections(reference, onnx_predictor(image), input_pixel=max(image.shape[:2]) / 128)


def test_pth_export_is_the_student_alone(tmp_path):
    """A CSKD config whose teacher files do not exist: export and reload need none of them."""
    cfg = tiny_cfg("configs/synth/cskd_la.yaml", "MODEL.ZOOMIN.TEACHER.WEIGHTS", str(tmp_path / "absent.pth"))
    model = build_student(cfg)
    out = tmp_path / "student_only.pth"
    export_student(model, "pth", str(out), 128)
    checkpoint = torch.load(out, weights_only=True)
    assert list(checkpoint) == ["model"]
    assert set(checkpoint["model"]) == set(model.state_dict())
    assert not any(k.startswith("teacher.") for k in checkpoint["model"])
    reloaded = load_student(cfg, str(out))
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key


def test_weights_of_another_model_are_refused(tmp_path):
    cfg_snet, cfg_fa = tiny_cfg("configs/synth/snet.yaml"), tiny_cfg("configs/synth/fa.yaml")
    weights = save_tiny_student(cfg_snet, tmp_path / "snet.pth")
    state = torch.load(weights, weights_only=True)
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("head.cls_score")}
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="partial.pth"):
        load_student(cfg_snet, str(tmp_path / "partial.pth"))
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        load_student(cfg_fa, str(tmp_path / "nothere.pth"))


def test_decode_settings_are_the_models():
    cfg = tiny_cfg("configs/synth/la.yaml", "MODEL.RETINANET.SCORE_THRESH_TEST", "0.3")
    model, settings = build_student(cfg), DecodeSettings.from_config(cfg)
    assert (settings.score_thresh, settings.topk_candidates, settings.nms_thresh, settings.max_detections) == (
        model.test_score_thresh, model.test_topk_candidates, model.test_nms_thresh, model.max_detections_per_image)
    assert settings.box2box_transform.weights == model.box2box_transform.weights


def test_export_cli(tmp_path, capsys):
    export = load_tool("export")
    cfg_file = "configs/synth/la.yaml"
    weights = save_tiny_student(tiny_cfg(cfg_file), tmp_path / "w.pth")
    out = tmp_path / "student.onnx"
    args = ["--config-file", cfg_file, "--weights", weights, "--format", "onnx", "--output", str(out)]
    assert export.main(args + TINY) == 0 and out.stat().st_size > 0
    before = out.read_bytes()
    assert export.main(args + TINY) == 1  # exists: refused, untouched
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert export.main(args + ["--overwrite", "--size", "100"] + TINY) == 1  # not a multiple of 128
    assert "multiple of 128" in capsys.readouterr().err
