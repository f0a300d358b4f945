"""Tests of the one config loader (zoominnet_d2.config.load_config) that training, the teacher,
deployment and the tools share: what a mistake's message names, overrides, the CPU fallback."""
from pathlib import Path

import pytest
import torch

import zoominnet_d2  # noqa: F401  (compat fixes and registrations before Detectron2)
from zoominnet_d2 import ConfigError, load_config
from zoominnet_d2.modeling.teacher import load_teacher_config

SNET = str(Path(__file__).resolve().parents[1] / "configs" / "synth" / "snet.yaml")


def test_file_and_overrides_are_merged_with_the_project_keys():
    cfg = load_config(SNET, ["SOLVER.MAX_ITER", "7", "MODEL.ZOOMIN.DISTILL_WEIGHT", "0.5"])
    assert (cfg.SOLVER.MAX_ITER, cfg.MODEL.ZOOMIN.DISTILL_WEIGHT) == (7, 0.5)
    assert cfg.INPUT.SQUARE_SIZE == 128  # from configs/synth/Base-Synth.yaml
    assert not cfg.is_frozen()


def test_missing_file_names_the_key_it_came_from(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"^--config-file: no such file: '{missing}'$"):
        load_config(str(missing))
    with pytest.raises(ConfigError, match=r"^MODEL\.ZOOMIN\.TEACHER\.CONFIG_FILE: no such file"):
        load_teacher_config(str(missing))


def test_unknown_key_names_the_file_or_the_options(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'_BASE_: "{SNET}"\nSOLVER:\n  NOT_A_KEY: 1\n')
    with pytest.raises(ConfigError, match=rf"^config file {bad}: .*SOLVER\.NOT_A_KEY"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match=r"^command-line options: Non-existent key: SOLVER\.NOT_A_KEY"):
        load_config(SNET, ["SOLVER.NOT_A_KEY", "1"])
    with pytest.raises(ConfigError, match=r"^command-line options: .*odd"):
        load_config(SNET, ["SOLVER.MAX_ITER"])


def test_unknown_optimizer_is_refused_when_the_config_is_loaded():
    with pytest.raises(ConfigError, match=r"^SOLVER\.OPTIMIZER: 'Adam' is not one of SGD, AdamW$"):
        load_config(SNET, ["SOLVER.OPTIMIZER", "Adam"])


def test_malformed_yaml_names_the_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("SOLVER: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"^config file {bad}: "):
        load_config(str(bad))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback is for machines without CUDA")
def test_cuda_device_falls_back_to_cpu_without_cuda():
    assert load_config(SNET, ["MODEL.DEVICE", "cuda"]).MODEL.DEVICE == "cpu"
    assert load_teacher_config(SNET, "cpu").is_frozen()
