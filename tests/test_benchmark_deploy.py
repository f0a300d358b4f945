"""tools/benchmark_deploy.py: its measure/render on tiny synth models (no timing asserted:
the machine is shared; only that every number is there and the table renders)."""
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is in the dev extra (pip install -e .[dev])")

from deploy_helpers import TINY  # noqa: E402


def test_measure_and_render(import_tool):
    bench = import_tool("benchmark_deploy")
    models = {"SNet": "configs/synth/snet.yaml", "SNet + LA": "configs/synth/la.yaml"}
    result = bench.measure(size=128, threads=(1,), repeats=1, num_frames=1, models=models, opts=TINY)
    assert len(result["latency"]) == 2 * 4 + 2 * 2  # models x runtimes + the saturated pair x 2
    assert all(t > 0 for t in result["latency"].values()) and result["cpu"].keys() == result["latency"].keys()
    assert set(result["profiles"]) == {"SNet", "SNet + LA", "SNet (saturated)", "SNet + LA (saturated)",
                                       "SNet, fast decoding", "SNet + LA, fast decoding"}
    lines = bench.render(result)
    table = [line for line in lines if line.startswith("| SNet")]
    assert len(table) == 2 and all(line.count("|") == 9 for line in table)
    assert any("fast decoding" in line for line in lines)
    if bench.real_frames():
        assert set(result["predictor"]) == {"torch", "onnx"} and "images/s" in lines[-1]
