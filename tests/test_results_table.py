"""tools/results_table.py: seeds merged per model, mean ± sample std in the table, and the
two files it writes."""
import json
import statistics

import pytest


@pytest.fixture
def results_table(import_tool):
    return import_tool("results_table")


def row(model, m_ap, cpu):
    return {"model": model, "stage": model.lower(), "input": 128, "GFLOPs": 0.5, "mAP": m_ap, "AP_S": None,
            "cpu_ms": cpu}


def test_seeds_merge_into_lists_and_print_mean_and_sample_std(results_table, tmp_path):
    seeds = [[row("SNet", 0.0052, 70.0), row("CSKD", 0.0085, 130.0)],
             [row("SNet", 0.0033, 72.0), row("CSKD", 0.0079, 131.0)]]
    merged = results_table.merge_seeds(seeds)
    assert [r["model"] for r in merged] == ["SNet", "CSKD"]
    assert merged[0]["mAP"] == [0.0052, 0.0033] and merged[1]["cpu_ms"] == [130.0, 131.0]
    assert merged[0]["AP_S"] == [None, None]
    assert results_table.merge_seeds(seeds[:1]) == seeds[0]  # one seed: the rows as they are
    mean, std = statistics.mean([0.0052, 0.0033]), abs(0.0052 - 0.0033) / 2 ** 0.5
    assert results_table.fmt(merged[0], "mAP") == f"{mean:.3f} ± {std:.3f}"
    assert results_table.fmt(merged[0], "AP_S") == "n/a"
    assert results_table.fmt(seeds[0][0], "mAP", 4) == "0.0052"

    results_table.write_results(merged, str(tmp_path), "results", "Table", ["A note."], {"seeds": [0, 1]})
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["rows"] == merged and "machine" in saved
    table = (tmp_path / "results.md").read_text().splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("| model |"))
    assert table[header + 2].startswith(f"| SNet | 128 | 0.500 | {mean:.3f} ± {std:.3f} | n/a |")
    assert table[header + 2].endswith("| 71.0 ± 1.4 |")
    assert "A note." in table and results_table.PROTOCOL_NOTE in table
