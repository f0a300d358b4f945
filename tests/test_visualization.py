"""Tests of zoominnet_d2.visualization and tools/visualize_features.py.

Models are the CPU synth configs shrunk further (8-channel stem and res2, 16-channel FPN),
with untrained weights: the tests check shapes, alignment and files, not what a trained
model shows.
"""
import zoominnet_d2  # noqa: F401  (compat fixes, before any Detectron2 import)

import csv
import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from PIL import Image
from torch import nn

from zoominnet_d2 import add_zoominnet_config
from zoominnet_d2.data.visdrone import register_visdrone_split
from zoominnet_d2.engine.feature_hook import FeatureVisualizationHook
from zoominnet_d2.modeling import build_model_with_teacher
from zoominnet_d2.visualization import (
    collect_distillation_maps,
    display_size,
    draw_feature_panels,
    feature_heatmap,
    load_image_dict,
    mask_to_image,
    overlay_heatmap,
    visualization_mapper,
)

REPO = Path(__file__).resolve().parents[1]
SYNTH = REPO / "configs" / "synth"
SHRINK = ["MODEL.RESNETS.STEM_OUT_CHANNELS", 8, "MODEL.RESNETS.RES2_OUT_CHANNELS", 8,
          "MODEL.FPN.OUT_CHANNELS", 16, "MODEL.DEVICE", "cpu"]
SHRINK_YAML = """
MODEL:
  DEVICE: "cpu"
  RESNETS:
    STEM_OUT_CHANNELS: 8
    RES2_OUT_CHANNELS: 8
  FPN:
    OUT_CHANNELS: 16
"""
# XYWH boxes of the synthetic image (256 x 256) and their VisDrone categories (1..10).
BOXES = [(30, 40, 20, 12, 4), (150, 60, 10, 18, 1), (100, 150, 40, 20, 9), (200, 200, 14, 8, 10)]
IGNORED = (10, 190, 40, 40)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The models are tiny: one intra-op thread is faster, by far on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory):
    """A shrunk synth teacher: (config yaml, untrained checkpoint)."""
    root = tmp_path_factory.mktemp("teacher")
    yaml = root / "tnet_tiny.yaml"
    yaml.write_text(f'_BASE_: "{SYNTH / "tnet.yaml"}"\n{SHRINK_YAML}')
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(str(yaml))
    torch.manual_seed(0)
    weights = root / "tnet_tiny.pth"
    torch.save({"model": build_model(cfg).state_dict()}, weights)
    return yaml, weights


@pytest.fixture(scope="module")
def synth_image(tmp_path_factory):
    """A 256 x 256 JPEG with four objects and an ignored region, in the VisDrone layout."""
    root = tmp_path_factory.mktemp("synth")
    (root / "images").mkdir()
    (root / "annotations").mkdir()
    rng = np.random.default_rng(0)
    image = (rng.random((256, 256, 3)) * 40 + 90).astype(np.uint8)
    lines = []
    for i, (x, y, w, h, cat) in enumerate(BOXES):
        image[y:y + h, x:x + w] = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (220, 220, 60)][i]
        lines.append(f"{x},{y},{w},{h},1,{cat},0,0")
    lines.append(",".join(str(v) for v in IGNORED) + ",0,0,0,0")
    path = root / "images" / "tiny_0001.jpg"
    Image.fromarray(image).save(path, quality=95)
    (root / "annotations" / "tiny_0001.txt").write_text("\n".join(lines) + "\n")
    return path, root / "annotations" / "tiny_0001.txt"


def student_cfg(teacher_files, config="cskd_la.yaml", opts=()):
    yaml, weights = teacher_files
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(str(SYNTH / config))
    cfg.merge_from_list(SHRINK + ["MODEL.ZOOMIN.TEACHER.CONFIG_FILE", str(yaml),
                                  "MODEL.ZOOMIN.TEACHER.WEIGHTS", str(weights)] + list(opts))
    return cfg


def load_cli():
    path = REPO / "tools" / "visualize_features.py"
    spec = importlib.util.spec_from_file_location("visualize_features", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(path):
    with Image.open(path) as im:
        im.load()
        return im.size  # (w, h)


# ----------------------------------------------------------------------------- heatmaps


def test_feature_heatmap_hot_spot():
    feature = torch.zeros(4, 8, 8)
    feature[:, 2, 5] = torch.tensor([3.0, -4.0, 0.0, 0.0])  # norm 5 at (y=2, x=5)
    feature[0, 6, 1] = 1.0  # a weaker second spot
    heat = feature_heatmap(feature, (64, 64))
    assert heat.shape == (64, 64) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert 16 <= y < 24 and 40 <= x < 48  # inside cell (2, 5), 8 px per cell
    # Normalised on the grid, then upsampled: the bilinear samples nearest to the cell
    # centre sit 1/16 cell off it, (15/16)^2 = 0.88 of the peak.
    assert heat.max() == pytest.approx((15 / 16) ** 2, abs=1e-3)
    assert heat[6 * 8 + 4, 1 * 8 + 4] == pytest.approx(0.2 * heat.max(), abs=1e-3)  # norm 1 of 5
    # Non-square output: cell (2, 5) of 8 x 8 covers rows 8..12 and columns 30..36 of 32 x 48.
    y, x = np.unravel_index(feature_heatmap(feature, (32, 48)).argmax(), (32, 48))
    assert 8 <= y < 12 and 30 <= x < 36


def test_feature_heatmap_degenerate_inputs():
    for feature in (torch.full((3, 5, 7), 2.5), torch.zeros(6, 4, 4), torch.zeros(3, 0, 4)):
        heat = feature_heatmap(feature, (20, 30))
        assert heat.shape == (20, 30) and not np.isnan(heat).any() and (heat == 0).all()
    with_nan = torch.ones(2, 4, 4)
    with_nan[0, 1, 1] = float("nan")
    with_nan[1, 3, 3] = 5.0
    heat = feature_heatmap(with_nan, (4, 4))
    assert not np.isnan(heat).any() and heat.max() == pytest.approx(1.0)
    np.testing.assert_allclose(feature_heatmap(torch.arange(4.0).view(2, 2), (2, 2)),
                               [[0.0, 1 / 3], [2 / 3, 1.0]], atol=1e-6)  # a 2-D map is drawn as is


def test_overlay_and_mask_helpers():
    image = np.full((10, 20, 3), 100, np.uint8)
    out = overlay_heatmap(image, np.ones((5, 10), np.float32), alpha=1.0, cmap="jet")
    assert out.shape == (10, 20, 3) and out.dtype == np.uint8
    assert (out == overlay_heatmap(image, np.ones((10, 20)), alpha=1.0)).all()
    assert (overlay_heatmap(image, np.ones((10, 20)), alpha=0.0) == image).all()
    mask = torch.tensor([[True, False], [False, False]])
    up = mask_to_image(mask, (4, 6))
    assert up[:2, :3].all() and up.sum() == 6
    assert display_size(1080, 1920, 1024) == (576, 1024)
    assert display_size(256, 256, 1024) == (256, 256)


# ----------------------------------------------------------------------------- maps


@pytest.mark.parametrize("config,opts", [
    ("cskd_la.yaml", ()),
    ("snet_cskd.yaml", ()),  # ALIGN none: the teacher is pooled to the student's grid
    ("cskd_fa.yaml", ("MODEL.ZOOMIN.DISTILL_FEATURES", "tower")),
])
def test_collect_distillation_maps(teacher_files, synth_image, config, opts):
    cfg = student_cfg(teacher_files, config, opts)
    model = build_model_with_teacher(cfg).eval()
    assert model.teacher is not None
    record = load_image_dict(*map(str, synth_image))
    sample = visualization_mapper(cfg, with_teacher=True)(record)
    assert tuple(sample["image"].shape) == (3, 128, 128)
    assert tuple(sample["teacher_image"].shape) == (3, 256, 256)
    maps = collect_distillation_maps(model, sample)

    assert len(maps["student"]) == len(maps["teacher"]) == len(maps["masks"]) == 5
    channels = 32 if cfg.MODEL.ZOOMIN.DISTILL_FEATURES == "tower" else 16
    key_at_centres = 0
    gt = maps["gt_boxes"]
    assert len(gt) == len(BOXES)
    for level, (s, t, m) in enumerate(zip(maps["student"], maps["teacher"], maps["masks"])):
        assert s.shape == t.shape
        assert s.shape[0] == channels
        assert tuple(m.shape) == tuple(s.shape[-2:]) == maps["grid_sizes"][level]
        assert m.dtype == torch.bool
        assert maps["strides"][level] * m.shape[0] == 128  # the grid covers the student image
        stride = maps["strides"][level]
        cx = ((gt[:, 0] + gt[:, 2]) / 2 / stride).long()
        cy = ((gt[:, 1] + gt[:, 3]) / 2 / stride).long()
        key_at_centres += int(m[cy, cx].sum())
    assert any(m.any() for m in maps["masks"])
    # The best anchor of a box sits at its centre: that cell is key (AKDP's threshold is a
    # fraction of the best IoU), on every level - unless masks and boxes are misaligned.
    assert key_at_centres == 5 * len(BOXES)

    # No ground truth: no key position; no teacher: no teacher maps.
    sample.pop("instances")
    maps = collect_distillation_maps(model, sample, with_teacher=False)
    assert maps["teacher"] is None and not any(m.any() for m in maps["masks"])


def test_collect_needs_teacher_image(teacher_files, synth_image):
    cfg = student_cfg(teacher_files)
    model = build_model_with_teacher(cfg).eval()
    sample = visualization_mapper(cfg, with_teacher=False)(load_image_dict(str(synth_image[0])))
    with pytest.raises(KeyError, match="teacher_image"):
        collect_distillation_maps(model, sample)


def test_draw_feature_panels_sizes(teacher_files, synth_image):
    cfg = student_cfg(teacher_files)
    model = build_model_with_teacher(cfg).eval()
    record = load_image_dict(*map(str, synth_image))
    maps = collect_distillation_maps(model, visualization_mapper(cfg, True)(record))
    image = np.asarray(Image.open(synth_image[0]).convert("RGB"))
    out = draw_feature_panels(maps, image, record, max_size=200, tile_size=100)
    expected = {"gt", "akdp", "panel"} | {f"{who}_l{level}" for who in ("student", "teacher")
                                         for level in range(5)}
    assert set(out) == expected
    for name in expected - {"akdp", "panel"}:
        assert out[name].shape == (200, 200, 3) and out[name].dtype == np.uint8
    assert out["panel"].shape[0] > 5 * 100 and out["panel"].shape[1] > 4 * 100
    only = draw_feature_panels(maps, image, record, include=("panel",))
    assert set(only) == {"panel"}


# ----------------------------------------------------------------------------- CLI


def test_cli_synthetic(teacher_files, synth_image, tmp_path, capsys):
    yaml, weights = teacher_files
    image, annotations = synth_image
    out_dir = tmp_path / "out" / "nested"  # created
    argv = ["--config-file", str(SYNTH / "cskd_la.yaml"), "--input", str(image),
            "--annotations", str(annotations), "--teacher-weights", str(weights),
            "--output", str(out_dir), "MODEL.ZOOMIN.TEACHER.CONFIG_FILE", str(yaml),
            *map(str, SHRINK)]
    written = load_cli().main(argv)
    names = {Path(p).name for p in written}
    stem = image.stem
    assert names == {f"{stem}_{n}.png" for n in ["gt", "akdp", "panel"]} | {
        f"{stem}_{who}_l{level}.png" for who in ("student", "teacher") for level in range(5)}
    assert {p.name for p in out_dir.iterdir()} == names  # nothing else written there ...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # ... nor beside it
    for path in written:
        size = png_size(path)
        if "_akdp" in path or "_panel" in path:
            assert size[0] > 256 and size[1] > 256
        else:
            assert size == (256, 256)
    printed = capsys.readouterr().out
    assert all(p in printed for p in written)

    # Without a teacher (and with the annotations found next to images/): student + AKDP.
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(str(SYNTH / "la.yaml"))
    cfg.merge_from_list(SHRINK)
    student_weights = tmp_path / "student.pth"
    torch.save({"model": build_model(cfg).state_dict()}, student_weights)
    written = load_cli().main(["--config-file", str(SYNTH / "la.yaml"), "--input", str(image),
                               "--student-weights", str(student_weights), "--output", str(out_dir),
                               *map(str, SHRINK)])
    printed = capsys.readouterr().out
    assert "No teacher" in printed and f"Student weights: {student_weights}" in printed
    assert "0 ignored regions" not in printed and "1 ignored regions" in printed
    assert not any("teacher" in Path(p).name for p in written)
    assert len(written) == 3 + 5


def test_cli_real_visdrone(visdrone_real_root, teacher_files, tmp_path):
    """One real 1920 x 1080 VisDrone image through the synth LA config (128 px student)."""
    with open(visdrone_real_root / "MANIFEST.csv") as f:
        stem = next(r["stem"] for r in csv.DictReader(f)
                    if r["split"] == "train" and r["width"] == "1920")
    _, weights = teacher_files
    train = visdrone_real_root / "train"
    argv = ["--config-file", str(SYNTH / "cskd_la.yaml"),
            "--input", str(train / "images" / f"{stem}.jpg"),
            "--annotations", str(train / "annotations" / f"{stem}.txt"),
            "--teacher-weights", str(weights),
            "--output", str(tmp_path / "real"),
            "MODEL.ZOOMIN.TEACHER.CONFIG_FILE", str(teacher_files[0])] + [str(v) for v in SHRINK]
    written = load_cli().main(argv)
    assert len(written) == 13
    sizes = {Path(p).name.split(stem)[1]: png_size(p) for p in written}
    assert sizes["_gt.png"] == sizes["_student_l0.png"] == sizes["_teacher_l4.png"] == (1024, 576)


# ----------------------------------------------------------------------------- hook


def test_hook_puts_panel_and_restores_modes(teacher_files, synth_image):
    cfg = student_cfg(teacher_files)
    model = build_model_with_teacher(cfg)
    record = load_image_dict(*map(str, synth_image))
    hook = FeatureVisualizationHook(cfg, period=3, dataset_dict=record)
    with EventStorage(0) as storage:
        for wrapped, training in ((model, True), (nn.DataParallel(model), False)):
            wrapped.train(training)
            model.backbone.bottom_up.stem.eval()  # a per-module mode must survive too
            hook.trainer = types.SimpleNamespace(model=wrapped, iter=0, storage=storage)
            storage._vis_data.clear()
            hook.after_step()  # iteration 1: not a multiple of 3
            assert storage._vis_data == []
            hook.trainer.iter = 2  # the 3rd iteration
            hook.after_step()
            assert len(storage._vis_data) == 1
            name, image, _ = storage._vis_data[0]
            assert name == "zoominnet/features"
            assert image.ndim == 3 and image.shape[0] == 3 and image.dtype == torch.float32
            assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0 and float(image.std()) > 0
            assert wrapped.training == training and model.training == training
            assert model.head.training == training and not model.backbone.bottom_up.stem.training


def test_hook_defaults(teacher_files, synth_image, tmp_path):
    """Period from the config (absent or 0: off); the image comes from DATASETS.TRAIN."""
    image, annotations = synth_image
    name = f"vis_hook_{tmp_path.name}"
    register_visdrone_split(name, image.parent, annotations.parent)
    try:
        cfg = student_cfg(teacher_files, opts=["DATASETS.TRAIN", f"('{name}',)"])
        model = build_model_with_teacher(cfg).train()
        assert FeatureVisualizationHook(cfg).period == 0  # MODEL.ZOOMIN.VIS_PERIOD's default
        cfg.MODEL.ZOOMIN.VIS_PERIOD = 7
        assert FeatureVisualizationHook(cfg).period == 7
        hook = FeatureVisualizationHook(cfg, period=1)
        with EventStorage(0) as storage:
            hook.trainer = types.SimpleNamespace(model=model, iter=0, storage=storage)
            hook.after_step()
            assert len(storage._vis_data) == 1 and model.training
            off = FeatureVisualizationHook(cfg, period=0)
            off.trainer = hook.trainer
            off.after_step()
            assert len(storage._vis_data) == 1
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_collect_crops_padding_of_non_square_input(teacher_files, tmp_path):
    """ResizeShortestEdge input (not square): the grids are cropped to the image, not the pad."""
    yaml, weights = teacher_files
    teacher_yaml = tmp_path / "tnet_ratio.yaml"
    teacher_yaml.write_text(f'_BASE_: "{yaml}"\nINPUT:\n  SQUARE_SIZE: 0\n  MIN_SIZE_TRAIN: (256,)\n'
                            "  MIN_SIZE_TEST: 256\n")
    cfg = student_cfg(teacher_files, opts=["INPUT.SQUARE_SIZE", 0, "MODEL.ZOOMIN.TEACHER.CONFIG_FILE",
                                           str(teacher_yaml)])
    path = tmp_path / "wide.jpg"
    Image.fromarray(np.full((180, 320, 3), 120, np.uint8)).save(path)
    model = build_model_with_teacher(cfg).eval()
    record = load_image_dict(str(path))
    sample = visualization_mapper(cfg, with_teacher=True)(record)
    assert tuple(sample["image"].shape[-2:]) == (128, 228)  # padded to 128 x 256 in the model
    maps = collect_distillation_maps(model, sample)
    for level, (s, t, m) in enumerate(zip(maps["student"], maps["teacher"], maps["masks"])):
        stride = maps["strides"][level]
        assert s.shape == t.shape and tuple(m.shape) == tuple(s.shape[-2:])
        assert tuple(m.shape) == (int(np.ceil(128 / stride)), int(np.ceil(228 / stride)))
    out = draw_feature_panels(maps, np.asarray(Image.open(path).convert("RGB")), record)
    assert out["student_l0"].shape == out["gt"].shape == (180, 320, 3)
