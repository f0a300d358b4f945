"""The alternatives' rows (tools/alternatives.py), the fine-tuning configs and the frontier
picture, against formulas and brute force."""
import numpy as np
import pytest
import torch
from detectron2.solver import build_lr_scheduler

from zoominnet_d2.visualization.frontier import mean_and_spread, pareto_front, plot_frontier


@pytest.fixture
def alternatives(import_tool):
    return import_tool("alternatives")


def learning_rates(config: str, iterations):
    from count_flops import load_config

    cfg = load_config(config)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.SOLVER.BASE_LR)
    scheduler = build_lr_scheduler(cfg, optimizer)
    rates = []
    for it in range(cfg.SOLVER.MAX_ITER):
        if it in iterations:
            rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return cfg, rates


def test_finetune_schedules_follow_the_papers_two_settings(alternatives):
    """Table 9 scaled: half of TNet's iterations; lr1 = TNet's last rate for 3/10, then 0.1x;
    lr2 = 0.1x TNet's last rate throughout; no warm-up."""
    from count_flops import load_config

    teacher = load_config("configs/synth/tnet.yaml")
    last = teacher.SOLVER.BASE_LR * teacher.SOLVER.GAMMA ** len(teacher.SOLVER.STEPS)
    cfg, lr1 = learning_rates("configs/synth/finetune_lr1.yaml", [0, 134, 135, 449])
    assert cfg.SOLVER.MAX_ITER == teacher.SOLVER.MAX_ITER // 2
    assert cfg.INPUT.SQUARE_SIZE * 2 == teacher.INPUT.SQUARE_SIZE
    assert lr1 == pytest.approx([last, last, last / 10, last / 10])
    _, lr2 = learning_rates("configs/synth/finetune_lr2.yaml", [0, 200, 449])
    assert lr2 == pytest.approx([last / 10] * 3)
    assert {s.teacher_as for s in alternatives.finetune_stages("configs/synth")} == {"MODEL.WEIGHTS"}


def test_real_finetuning_continues_the_teachers_optimizer_at_its_last_rate():
    """configs/real: the teacher's optimizer (AdamW) at its last rate for 3/10 of half the
    students' iterations, then 0.1x (lr1); 0.1x throughout (lr2); the students keep SGD."""
    from count_flops import load_config

    teacher, student = load_config("configs/real/tnet.yaml"), load_config("configs/real/snet.yaml")
    last = teacher.SOLVER.BASE_LR * teacher.SOLVER.GAMMA ** len(teacher.SOLVER.STEPS)
    cfg, lr1 = learning_rates("configs/real/finetune_lr1.yaml", [0, 224, 225, 749])
    assert cfg.SOLVER.MAX_ITER == student.SOLVER.MAX_ITER // 2
    assert lr1 == pytest.approx([last, last, last / 10, last / 10])
    lr2_cfg, lr2 = learning_rates("configs/real/finetune_lr2.yaml", [0, 400, 749])
    assert lr2 == pytest.approx([last / 10] * 3)
    assert cfg.SOLVER.OPTIMIZER == lr2_cfg.SOLVER.OPTIMIZER == teacher.SOLVER.OPTIMIZER == "AdamW"
    assert student.SOLVER.OPTIMIZER == "SGD"


def test_teacher_input_opts_give_the_student_the_teachers_test_input(alternatives):
    from count_flops import load_config

    teacher = load_config("configs/synth/tnet.yaml")
    student = load_config("configs/synth/snet.yaml", alternatives.teacher_input_opts(teacher))
    for key in ("SQUARE_SIZE", "MIN_SIZE_TEST", "MAX_SIZE_TEST", "NATIVE_DOWNSCALE"):
        assert getattr(student.INPUT, key) == getattr(teacher.INPUT, key)
    assert student.MODEL.FPN.OUT_CHANNELS == teacher.MODEL.FPN.OUT_CHANNELS


def test_sliced_gflops_count_every_slice_and_the_full_pass(alternatives):
    """256 px at the teacher's input, 128 px slices, overlap 0.2: starts 0, 103, 128 on each
    axis (SAHI shifts the last slice inside), so 9 slices of the student's 128 px cost."""
    from count_flops import count_gflops, load_config

    student, teacher = load_config("configs/synth/snet.yaml"), load_config("configs/synth/tnet.yaml")
    one = count_gflops(student, 128)
    assert alternatives.sliced_gflops(student, teacher, [(256, 256)], False) == pytest.approx(9 * one)
    assert alternatives.sliced_gflops(student, teacher, [(256, 256)] * 3, True) == pytest.approx(10 * one)


def test_pareto_front_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        points = [tuple(p) for p in rng.integers(0, 6, size=(8, 2)).astype(float)]
        front = pareto_front(points)
        for i, (c, a) in enumerate(points):
            better = [j for j, (c2, a2) in enumerate(points) if (c2 < c and a2 >= a) or (c2 <= c and a2 > a)]
            assert (i in front) == (not better)
        assert [points[i][0] for i in front] == sorted(points[i][0] for i in front)


def test_frontier_picture_from_rows_with_seeds(tmp_path):
    rows = [{"model": "a", "GFLOPs": 0.07, "cpu_ms": [14.0, 15.0], "mAP": [0.01, 0.02], "AP_S": [0.0, 0.01]},
            {"model": "b", "GFLOPs": 0.3, "cpu_ms": [27.0, 28.0], "mAP": [0.04, 0.05], "AP_S": [None, None]}]
    assert mean_and_spread([0.01, 0.03]) == pytest.approx((0.02, 0.0141421356))
    assert np.isnan(mean_and_spread([None])[0])
    path = tmp_path / "frontier.png"
    plot_frontier(rows, str(path), "test")
    assert path.stat().st_size > 10_000


def test_slices_run_at_the_teachers_scale(alternatives):
    """Synthetic configs: a 128 px slice passes the 128 px square resize unchanged; real-frame
    configs: the student's 2x downscale becomes native pixels for slices."""
    from count_flops import load_config

    from detectron2.data import transforms as T

    from zoominnet_d2.data.cross_scale_mapper import build_zoomin_augmentation

    for config, side in (("configs/synth/snet.yaml", 128), ("configs/real/snet.yaml", 192)):
        cfg = alternatives.slicing_config(load_config(config))
        image = np.zeros((side, side, 3), np.uint8)
        out, _ = T.apply_augmentations(build_zoomin_augmentation(cfg, is_train=False), image)
        assert out.shape == image.shape, config
        assert alternatives.input_size(load_config(config)) == side


def sahi_rule_starts(length: int, side: int, overlap: float):
    """Slice starts along one axis by SAHI's rule, written out: steps of ``side`` minus the
    overlap in whole pixels, the last slice shifted back inside the image."""
    step, starts, start = side - int(overlap * side), [], 0
    while True:
        if start + side >= length:
            starts.append(max(0, length - side))
            return sorted(set(starts))
        starts.append(start)
        start += step


@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.2, 0.3, 0.5])
def test_slices_per_image_follow_sahis_rule(alternatives, overlap):
    """Synthetic configs: the teacher's 256 px square of any original, 128 px slices."""
    from count_flops import load_config

    student, teacher = load_config("configs/synth/snet.yaml"), load_config("configs/synth/tnet.yaml")
    per_axis = len(sahi_rule_starts(256, 128, overlap))
    assert alternatives.slices_per_image(student, teacher, [(256, 256), (300, 200)], overlap) == per_axis ** 2
    one = alternatives.sliced_gflops(student, teacher, [(256, 256)], False, overlap=0.0) / 4
    assert alternatives.sliced_gflops(student, teacher, [(256, 256)], True, overlap=overlap) == pytest.approx(
        (per_axis ** 2 + 1) * one)


def test_slice_overlap_tool_evaluates_every_overlap(import_tool, tmp_path):
    """Smoke run of tools/slice_overlap.py with a random-weight SNet on two synthetic images:
    a row per overlap and full-image pass, with SAHI's slice counts and a metrics file each."""
    from count_flops import load_config
    from detectron2.modeling import build_model

    from zoominnet_d2.data.synthetic import generate_dataset
    from zoominnet_d2.data.visdrone import register_visdrone_split

    tool = import_tool("slice_overlap")
    for stage in ("snet", "tnet"):
        cfg = load_config(f"configs/synth/{stage}.yaml")
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "config.yaml").write_text(cfg.dump())
        torch.manual_seed(0)
        torch.save({"model": build_model(cfg).state_dict()}, tmp_path / stage / "model_final.pth")
    generate_dataset(tmp_path / "data", num_train=0, num_val=2, size=256, seed=0)
    split = tmp_path / "data" / "VisDrone2019-DET-val"
    name = f"test_slice_overlap_{tmp_path.name}"
    register_visdrone_split(name, split / "images", split / "annotations")
    report = tool.main(["--snet", str(tmp_path / "snet"), "--tnet", str(tmp_path / "tnet"), "--dataset", name,
                        "--overlaps", "0", "0.2", "--output", str(tmp_path / "out")])
    rows = [line.split(" | ") for line in report.splitlines() if line.startswith("| 0")]
    assert [(r[0], r[1], r[2]) for r in rows] == [("| 0", "no", "4.0"), ("| 0", "yes", "4.0"),
                                                  ("| 0.2", "no", "9.0"), ("| 0.2", "yes", "9.0")]
    assert len(list((tmp_path / "out").glob(f"overlap_*/inference/{name}/visdrone_metrics.json"))) == 4
