"""Smoke test of tools/benchmark.py and tools/benchmarking/: its measurements on the synth
configs at tiny sizes, one repeat, checking the structure of the results and of the report,
and the consistency of the profiler-based CSKD step breakdown (never absolute timings)."""
import importlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

import zoominnet_d2  # noqa: F401  (compat fixes first)
from detectron2.utils.events import EventStorage  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SYNTH = Path("configs/synth")


@pytest.fixture(scope="module")
def bench():
    """tools/benchmark.py as a module (it puts tools/ on sys.path for ``benchmarking``)."""
    spec = importlib.util.spec_from_file_location("zoominnet_benchmark", REPO / "tools" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def parts(bench):
    return {name: importlib.import_module(f"benchmarking.{name}")
            for name in ("akdp", "common", "device", "inference", "memory", "render", "train")}


@pytest.fixture(scope="module")
def train(parts):
    return parts["train"].bench_train(SYNTH, 64, 2, warmup=0, repeats=2, boxes_range=(3, 5))


def test_benchmark_functions_and_report(bench, parts, train):
    inf_mod = parts["inference"]
    inference = inf_mod.bench_inference(SYNTH, 64, warmup=0, repeats=1, flops=False,
                                        models=inf_mod.INFERENCE_MODELS[:2] + inf_mod.INFERENCE_MODELS[-1:])
    assert [r["model"] for r in inference["rows"]] == ["SNet", "SNet + LA", "TNet"]
    assert inference["rows"][-1]["input"] == 128
    assert inference["rows"][0]["time_ratio"] == 1.0
    assert all(r["median_s"] > 0 and len(r["times"]) == 1 for r in inference["rows"])

    assert set(train["medians"]) == {"snet", "la", "cskd"}
    cskd = train["medians"]["cskd"]
    for key in ("step", "forward", "backward", "optimizer", "teacher", "akdp", "loss", "student_forward"):
        assert key in cskd
    assert cskd["teacher"] > 0 and cskd["akdp"] > 0 and cskd["loss"] > 0
    assert len(train["num_boxes"]) == 2 and all(3 <= n <= 5 for n in train["num_boxes"])
    assert len(train["num_anchors"]) == len(train["key_fraction"]) == 5
    assert 0 < train["akdp_loss_fraction"] < 1 and train["step_ratio"] > 0

    akdp_mod = parts["akdp"]
    akdp = akdp_mod.bench_akdp(SYNTH, 64, warmup=0, repeats=1, boxes=(10,),
                               anchor_sets=akdp_mod.AKDP_ANCHOR_SETS[1:2], memory=False)
    (row,) = akdp["rows"]
    assert row["num_boxes"] == 10 and row["num_anchors"] == sum(h * w * 9 for h, w in row["grids"])
    assert 0 <= row["key_fraction"] <= 1

    mem = parts["memory"].rss_peak_kb(lambda: torch.ones(1 << 20).sum())
    assert set(mem) >= {"rss_before_kb", "peak_kb", "delta_kb", "hwm_reset"}
    if mem["hwm_reset"]:
        assert mem["peak_kb"] >= mem["rss_before_kb"]

    res = {"machine": parts["common"].machine_info(), "args": {}, "command": "python tools/benchmark.py --test",
           "elapsed_s": 1.0, "inference": inference, "train": train, "akdp": akdp,
           "memory": {"rows": [dict(variant="cskd", config_dir=str(SYNTH), size=64, batch=2, steps=1,
                                    peak_after_step_kb=[mem["peak_kb"]], **mem)]}}
    report = parts["render"].render_markdown(res)
    for heading in ("# ZoomInNet performance benchmark", "## Inference per image", "## Training step",
                    "## AKDP against boxes and anchors", "## Peak memory of a training step", "## Targets"):
        assert heading in report
    assert report.count("| SNet + LA + CSKD step") == 0 and "**SNet + LA + CSKD step**" in report
    json.dumps(res, default=str)  # the --json output is serialisable


def test_profiled_breakdown_fits_in_the_step(train):
    """Every timed CSKD step: each profiler region ran and took time, and the regions fit in
    the forward, which fits in the step."""
    rounds = train["samples"]["cskd"]
    assert len(rounds) == 2
    for t in rounds:
        for part in ("teacher", "akdp", "loss"):
            assert t[f"{part}_calls"] >= 1 and t[part] > 0
        assert t["teacher"] + t["akdp"] + t["loss"] <= t["forward"] <= t["step"]
        assert t["forward"] + t["backward"] + t["optimizer"] <= t["step"] * (1 + 1e-9)


def test_profiled_needs_the_distillation_regions(parts):
    """A step without a teacher has no distillation regions: the breakdown refuses it."""
    common = parts["common"]
    student = common.build_model(common.sized_config(SYNTH, "la.yaml", 64)).train()
    step = common.TrainStep(student, common.make_batch(64, 1, (2, 3)))
    with EventStorage(), pytest.raises(RuntimeError, match="zoominnet.teacher"):
        parts["train"].profiled(step)


def test_device_tables_cpu_dry_run(parts):
    """--device cpu runs the code path of --device cuda: fp32 and AMP, inference and steps."""
    dev = parts["device"].bench_device(SYNTH, 64, 1, warmup=0, repeats=1, train_repeats=1, device="cpu",
                                       models=parts["inference"].INFERENCE_MODELS[:1], boxes_range=(2, 3))
    assert dev["device"] == "cpu" and set(dev["runs"]) == {"fp32", "amp"}
    for run in dev["runs"].values():
        assert [r["model"] for r in run["inference"]["rows"]] == ["SNet"]
        c = run["train"]["medians"]["cskd"]
        assert c["teacher"] > 0 and c["akdp"] > 0 and c["loss"] > 0
        assert c["teacher"] + c["akdp"] + c["loss"] <= c["forward"] <= c["step"]
    assert dev["runs"]["amp"]["train"]["amp"] and not dev["runs"]["fp32"]["train"]["amp"]
    lines = parts["render"].render_device(dev)
    text = "\n".join(lines)
    assert "## Inference and training step on `cpu`, AMP off and on" in text
    assert "| SNet | 64x64 |" in text and "**SNet + LA + CSKD step**" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cli_device_cuda_skips_without_cuda(bench, tmp_path, capsys):
    out = tmp_path / "cuda.md"
    res = bench.main(["--device", "cuda", "--output", str(out)])
    assert set(res) >= {"device"} and not set(res) & {"threads", "inference", "train", "akdp", "memory"}
    report = out.read_text()
    assert "## Inference and training step on `cuda`, AMP off and on" in report
    assert "Skipped: no CUDA device on this machine" in report


def test_optional_sections_render_through_their_module(parts, bench):
    """An optional section's result is rendered by its module's ``render`` after the others."""
    res = {"machine": parts["common"].machine_info(), "command": "c", "elapsed_s": 1.0,
           "deploy": {"eager_s": 0.5}}
    report = parts["render"].render_markdown(res, {"deploy": lambda r: ["## Deployment", f"eager {r['eager_s']}"]})
    assert report.rstrip().endswith("## Deployment\neager 0.5")
    assert set(bench.OPTIONAL_SECTIONS) == {"official_eval", "deploy", "data_loading", "training_threads"}


def test_data_loading_section_times_every_mapper(import_tool):
    """Smoke run of the optional ``data_loading`` section: every mapper of every data set is
    timed (the real frames only where ``../shared`` is), and the table has a row per set."""
    module = import_tool("benchmark_data_loading")
    result = module.measure(repeats=1, num_images=2)
    expected_sets = 2 if module.REAL_TRAIN.is_dir() else 1
    assert len(result["sets"]) == expected_sets
    for ms in result["sets"].values():
        assert len(ms) == 3 and all(v > 0 for v in ms.values())
    lines = module.render(result)
    assert lines[0] == "## Training data: mapping one sample"
    assert sum(line.startswith("| synthetic") or line.startswith("| real") for line in lines) == expected_sets


def test_training_threads_section_runs_every_way(import_tool):
    """Smoke run of the optional ``training_threads`` section on SNet: every way (one process
    at 2 threads, at 1 thread, two processes at once) runs its workers to the end, and the
    table's gain column is side by side over one at a time."""
    module = import_tool("benchmark_training_threads")
    result = module.measure(rounds=1, steps=1, warmup=0, models=("SNet",))
    rates = result["rates"]["SNet"]
    assert set(rates) == set(module.WAYS) and all(r > 0 for r in rates.values())
    row = next(line for line in module.render(result) if line.startswith("| SNet |"))
    gain = rates["2 processes x 1 thread"] / rates["1 process x 2 threads"]
    assert row.rstrip(" |").endswith(f"{gain:.2f}")
