"""Tests of tools/distillation_levels.py: the per-level statistics against loops, and the
command on tiny untrained models (a teacher whose P7 map is 30x its own shows it 30x)."""
import json
import math

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from PIL import Image

from zoominnet_d2 import add_zoominnet_config
from tiny_models import SYNTH, write_teacher_yaml


def loop_statistics(student, teacher, mask, scores, teacher_scores, thresh):
    """The fields of level_statistics with Python loops (float64)."""
    s, t, m = student.double().numpy(), teacher.double().numpy(), mask.numpy()
    c, h, w = s.shape
    keys = [(y, x) for y in range(h) for x in range(w) if m[y, x]]
    return {
        "rms_student": math.sqrt(float((s ** 2).sum()) / s.size),
        "rms_teacher": math.sqrt(float((t ** 2).sum()) / t.size),
        "key_fraction": len(keys) / (h * w),
        "sq_norm_student": sum(s[k, y, x] ** 2 for y, x in keys for k in range(c)) / len(keys),
        "sq_norm_teacher": sum(t[k, y, x] ** 2 for y, x in keys for k in range(c)) / len(keys),
        "distance": sum((t[k, y, x] - s[k, y, x]) ** 2 for y, x in keys for k in range(c)) / len(keys),
        "fired": sum(1 for v in scores.flatten().tolist() if v > thresh) / scores.numel(),
        "max_score": max(scores.flatten().tolist()),
        "teacher_fired": sum(1 for v in teacher_scores.flatten().tolist() if v > thresh) / teacher_scores.numel(),
        "teacher_max_score": max(teacher_scores.flatten().tolist()),
    }


@pytest.mark.parametrize("seed", range(3))
def test_level_statistics_match_loops(import_tool, seed):
    tool = import_tool("distillation_levels")
    gen = torch.Generator().manual_seed(seed)
    student, teacher = torch.randn(4, 5, 6, generator=gen), 3 * torch.randn(4, 5, 6, generator=gen)
    mask = torch.rand(5, 6, generator=gen) < 0.4
    scores, teacher_scores = torch.rand(5, 6, 9, generator=gen), torch.rand(5, 6, 9, generator=gen) ** 2
    got = tool.level_statistics(student, teacher, mask, scores, teacher_scores, 0.5)
    expected = loop_statistics(student, teacher, mask, scores, teacher_scores, 0.5)
    assert got.keys() == expected.keys() == set(tool.FIELDS)
    for field in tool.FIELDS:
        assert math.isclose(got[field], expected[field], rel_tol=1e-5), field


def test_images_without_key_positions_do_not_count_for_key_fields(import_tool):
    tool = import_tool("distillation_levels")
    empty = tool.level_statistics(torch.ones(2, 3, 3), torch.ones(2, 3, 3), torch.zeros(3, 3, dtype=torch.bool),
                                  torch.zeros(9), torch.zeros(9), 0.05)
    assert math.isnan(empty["distance"]) and empty["key_fraction"] == 0.0
    full = tool.level_statistics(torch.zeros(2, 3, 3), torch.ones(2, 3, 3), torch.ones(3, 3, dtype=torch.bool),
                                 torch.ones(9), torch.ones(9), 0.05)
    (row,) = tool.mean_over_images([[empty], [full]])
    assert row["distance"] == 2.0 and row["key_fraction"] == 0.5 and row["fired"] == 0.5


def save_run(folder, yaml_text, scale_p7=1.0):
    """A train_net.py-like output folder: config.yaml and an untrained model_final.pth."""
    folder.mkdir()
    (folder / "source.yaml").write_text(yaml_text)
    cfg = get_cfg()
    add_zoominnet_config(cfg)
    cfg.merge_from_file(str(folder / "source.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    (folder / "config.yaml").write_text(cfg.dump())
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        model.backbone.top_block.p7.weight.mul_(scale_p7)
        model.backbone.top_block.p7.bias.mul_(scale_p7)
    torch.save({"model": model.state_dict()}, folder / "model_final.pth")


@pytest.mark.parametrize("crops", [0, 2])
def test_command_shows_a_teacher_levels_scale(import_tool, tmp_path, capsys, crops):
    """On whole images and on training crops (here the square resize and a random flip)."""
    tool = import_tool("distillation_levels")
    teacher_yaml = write_teacher_yaml(tmp_path / "tnet.yaml", square=128).read_text()
    save_run(tmp_path / "tnet", teacher_yaml)
    save_run(tmp_path / "tnet_p7x30", teacher_yaml, scale_p7=30.0)
    student_yaml = (f'_BASE_: "{SYNTH / "la.yaml"}"\n'
                    "MODEL: {RESNETS: {STEM_OUT_CHANNELS: 8, RES2_OUT_CHANNELS: 8}, FPN: {OUT_CHANNELS: 16},"
                    " RETINANET: {NUM_CONVS: 1}}\n"
                    "INPUT: {SQUARE_SIZE: 64, MIN_SIZE_TRAIN: [64], MIN_SIZE_TEST: 64}\n")
    save_run(tmp_path / "la", student_yaml)
    images, labels = tmp_path / "data" / "images", tmp_path / "data" / "annotations"
    images.mkdir(parents=True)
    labels.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(images / f"f{i}.jpg")
        (labels / f"f{i}.txt").write_text("10,20,30,24,1,4,0,0\n70,50,12,10,1,1,0,0\n")
    stats = {}
    for name in ("tnet", "tnet_p7x30"):
        out = tmp_path / f"{name}.json"
        tool.main(["--teacher", str(tmp_path / name), "--run", str(tmp_path / "la"), "--images", str(images),
                   "--output", str(out), "--crops", str(crops)])
        stats[name] = json.loads(out.read_text())["levels"][str(tmp_path / "la")]
    printed = capsys.readouterr().out
    assert "| level |" in printed and ("2 training crops of each of" in printed) == (crops == 2)
    plain, scaled = stats["tnet"], stats["tnet_p7x30"]
    assert len(plain) == 5
    assert math.isclose(scaled[4]["rms_teacher"], 30 * plain[4]["rms_teacher"], rel_tol=1e-4)
    for level in range(4):
        assert math.isclose(scaled[level]["rms_teacher"], plain[level]["rms_teacher"], rel_tol=1e-6)
        assert scaled[level]["rms_student"] == plain[level]["rms_student"]
        assert math.isclose(scaled[level]["teacher_max_score"], plain[level]["teacher_max_score"], rel_tol=1e-5)
    # The teacher's own head sees its 30x P7 (inference-mode BatchNorm does not undo it).
    assert scaled[4]["teacher_max_score"] != pytest.approx(plain[4]["teacher_max_score"], rel=1e-3)
    assert plain[0]["key_fraction"] > 0


def test_missing_checkpoint_names_the_file(import_tool, tmp_path):
    tool = import_tool("distillation_levels")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("")
    with pytest.raises(SystemExit, match="model_final.pth does not exist"):
        tool.main(["--teacher", str(tmp_path / "run"), "--run", str(tmp_path / "run"), "--images", str(tmp_path)])
