"""tools/compare_runs.py on hand-made results.json files: the means, differences and seed
ranges by hand, the verdicts, the claims and the exit status."""
import json
from pathlib import Path

import pytest


@pytest.fixture
def compare_runs(import_tool):
    return import_tool("compare_runs")


def write_results(path: Path, rows) -> str:
    path.write_text(json.dumps({"date": "2026-12-06", "seeds": [0, 1], "rows": rows}))
    return str(path)


REFERENCE = [
    {"model": "Teacher", "mAP": [0.0340, 0.0340]},
    {"model": "SNet", "mAP": [0.0050, 0.0030]},
    {"model": "CSKD", "mAP": [0.0085, 0.0079]},
    {"model": "Only here", "mAP": [0.1, 0.1]},
]


def test_means_differences_and_verdicts_by_hand(compare_runs, tmp_path, capsys):
    rerun = [
        {"model": "Teacher", "mAP": [0.0300, 0.0300]},
        # mean 0.0050 against 0.0040: difference 0.0010, ranges 0.0020 and 0.0 -> within.
        {"model": "SNet", "mAP": [0.0050, 0.0050]},
        # mean 0.0070 against 0.0082: difference 0.0012 > ranges 0.0006 and 0.0002 -> outside.
        {"model": "CSKD", "mAP": [0.0071, 0.0069]},
    ]
    first = write_results(tmp_path / "a.json", REFERENCE)
    second = write_results(tmp_path / "b.json", rerun)
    entries = {e["model"]: e for e in compare_runs.compare(compare_runs.load_rows(first),
                                                           compare_runs.load_rows(second), ["mAP", "AP_S"])}
    assert set(entries) == {"Teacher", "SNet", "CSKD"}  # no AP_S anywhere; "Only here" in one run
    assert entries["SNet"]["mean_1"] == pytest.approx(0.0040)
    assert entries["SNet"]["difference"] == pytest.approx(0.0010)
    assert entries["SNet"]["range_1"] == pytest.approx(0.0020) and entries["SNet"]["range_2"] == 0
    assert entries["SNet"]["verdict"] == "within"
    assert entries["CSKD"]["difference"] == pytest.approx(0.0012)
    assert entries["CSKD"]["verdict"] == "outside"
    assert entries["Teacher"]["verdict"] == "no seed spread"
    assert compare_runs.main([first, second, "--metrics", "mAP"]) == 1
    out = capsys.readouterr().out
    assert "| Teacher | mAP | 0.0340 | 0.0300 | 0.0040 (12%) |" in out
    assert "only in 1: Only here" in out
    assert "1 of 2 seed-spread comparisons within, 1 without seed spread" in out


def test_claims_and_a_clean_rerun(compare_runs, tmp_path, capsys):
    rerun = [dict(row) for row in REFERENCE[:3]]
    rerun[2] = {"model": "CSKD", "mAP": [0.0080, 0.0084]}
    first = write_results(tmp_path / "a.json", REFERENCE)
    second = write_results(tmp_path / "b.json", rerun)
    assert compare_runs.main([first, second, "--metrics", "mAP", "--above", "CSKD", "SNet"]) == 0
    assert "claim CSKD > SNet in mAP, every seed of both runs: holds" in capsys.readouterr().out
    # SNet never beats CSKD; a model the runs lack cannot be checked: both fail the check.
    assert compare_runs.main([first, second, "--metrics", "mAP", "--above", "SNet", "CSKD"]) == 1
    assert "fails" in capsys.readouterr().out
    assert compare_runs.main([first, second, "--metrics", "mAP", "--above", "Only here", "SNet"]) == 1
    assert "cannot be checked" in capsys.readouterr().out
    # Claims compare seeds of the same run: one seed where CSKD loses fails the claim.
    assert compare_runs.claim_holds({"CSKD": {"mAP": [0.01, 0.002]}, "SNet": {"mAP": [0.005, 0.003]}},
                                    "CSKD", "SNet", "mAP") is False


def test_a_file_that_is_not_a_results_json_is_named(compare_runs, tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text('{"bbox": {"AP": 1.0}}')
    good = write_results(tmp_path / "a.json", REFERENCE)
    with pytest.raises(SystemExit, match="metrics.json: not a results.json"):
        compare_runs.main([good, str(bad)])
    with pytest.raises(SystemExit, match="no model with VisDrone_AP in common"):
        compare_runs.main([good, good, "--metrics", "VisDrone_AP"])
