"""tools/training_stats.py on a hand-made run folder: window means of the losses and the
per-class AP of the chosen dataset and classes."""
import json
from pathlib import Path

import pytest



@pytest.fixture
def training_stats(import_tool):
    return import_tool("training_stats")


def make_run(folder: Path, dataset: str) -> Path:
    folder.mkdir()
    lines = [{"iteration": i, "loss_cls": 1.0 + i, "loss_box_reg": 0.5, "loss_distill": 0.1 * (i + 1),
              "akdp/key_fraction_l0": 0.2} for i in range(6)]
    lines.append({"iteration": 5, "bbox/AP": 1.0})  # an evaluation line, not a training one
    (folder / "metrics.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    evaluation = folder / "inference" / dataset
    evaluation.mkdir(parents=True)
    (evaluation / "visdrone_metrics.json").write_text(json.dumps({"bbox": {"AP": 2.5, "AP-car": 8.0, "AP-motor": 0.5}}))
    return folder


def test_window_means_and_per_class_ap(training_stats, tmp_path, capsys):
    run = make_run(tmp_path / "run", "visdrone2019_val")
    s = training_stats.summarise(str(run), window=2, dataset="visdrone2019_val")
    assert s["iters"] == 6 and s["mAP"] == pytest.approx(0.025)
    assert s["det_first"] == pytest.approx((1.5 + 2.5) / 2)  # iterations 0, 1
    assert s["det_last"] == pytest.approx((5.5 + 6.5) / 2)  # iterations 4, 5
    assert s["ratio_last"] == pytest.approx(((0.5 + 0.6) / 2) / 6.0)
    assert s["keys_last"] == [pytest.approx(0.2)]
    training_stats.main([str(run), "--window", "2", "--dataset", "visdrone2019_val", "--classes", "car", "motor"])
    table = capsys.readouterr().out
    assert "| AP car | AP motor |" in table and f"| {run} | 0.080 | 0.005 |" in table
    # Another dataset's evaluation is not there: no mAP, no per-class AP.
    assert training_stats.summarise(str(run), window=2)["mAP"] is None
