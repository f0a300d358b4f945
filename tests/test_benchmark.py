"""Smoke test of tools/benchmark.py: its functions on the synth configs at tiny sizes, one
repeat, checking the structure of the results and of the report only (never timings)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

import zoominnet_d2  # noqa: F401  (compat fixes first)
import zoominnet_d2.modeling.zoominnet as zoominnet_module

REPO = Path(__file__).resolve().parents[1]
SYNTH = Path("configs/synth")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("zoominnet_benchmark", REPO / "tools" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(previous)


def test_benchmark_functions_and_report(bench):
    original = (zoominnet_module.akdp_masks_batch, zoominnet_module.position_aware_l2)
    inference = bench.bench_inference(SYNTH, 64, warmup=0, repeats=1, flops=False,
                                      models=bench.INFERENCE_MODELS[:2] + bench.INFERENCE_MODELS[-1:])
    assert [r["model"] for r in inference["rows"]] == ["SNet", "SNet + LA", "TNet"]
    assert inference["rows"][-1]["input"] == 128
    assert inference["rows"][0]["time_ratio"] == 1.0
    assert all(r["median_s"] > 0 and len(r["times"]) == 1 for r in inference["rows"])

    train = bench.bench_train(SYNTH, 64, 2, warmup=0, repeats=1, boxes_range=(3, 5))
    # the probes are removed again after the step
    assert (zoominnet_module.akdp_masks_batch, zoominnet_module.position_aware_l2) == original
    assert set(train["medians"]) == {"snet", "la", "cskd"}
    cskd = train["medians"]["cskd"]
    for key in ("step", "forward", "backward", "optimizer", "teacher", "akdp", "loss", "student_forward"):
        assert key in cskd
    assert cskd["teacher"] > 0 and cskd["akdp"] > 0 and cskd["loss"] > 0
    assert len(train["num_boxes"]) == 2 and all(3 <= n <= 5 for n in train["num_boxes"])
    assert len(train["num_anchors"]) == len(train["key_fraction"]) == 5
    assert 0 < train["akdp_loss_fraction"] < 1 and train["step_ratio"] > 0

    akdp = bench.bench_akdp(SYNTH, 64, warmup=0, repeats=1, boxes=(10,),
                            anchor_sets=bench.AKDP_ANCHOR_SETS[1:2], memory=False)
    (row,) = akdp["rows"]
    assert row["num_boxes"] == 10 and row["num_anchors"] == sum(h * w * 9 for h, w in row["grids"])
    assert 0 <= row["key_fraction"] <= 1

    mem = bench.rss_peak_kb(lambda: torch.ones(1 << 20).sum())
    assert set(mem) >= {"rss_before_kb", "peak_kb", "delta_kb", "hwm_reset"}
    if mem["hwm_reset"]:
        assert mem["peak_kb"] >= mem["rss_before_kb"]

    res = {"machine": bench.machine_info(), "args": {}, "command": "python tools/benchmark.py --test",
           "elapsed_s": 1.0, "inference": inference, "train": train, "akdp": akdp,
           "memory": {"rows": [dict(variant="cskd", config_dir=str(SYNTH), size=64, batch=2, steps=1,
                                    peak_after_step_kb=[mem["peak_kb"]], **mem)]}}
    report = bench.render_markdown(res)
    for heading in ("# ZoomInNet performance benchmark", "## Inference per image", "## Training step",
                    "## AKDP against boxes and anchors", "## Peak memory of a training step", "## Targets"):
        assert heading in report
    assert report.count("| SNet + LA + CSKD step") == 0 and "**SNet + LA + CSKD step**" in report
    json.dumps(res, default=str)  # the --json output is serialisable
