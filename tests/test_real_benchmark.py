"""The real-data experiment: the sequence split, the linked layout, and a smoke run of
``tools/real_benchmark.py`` (training, evaluation, ``--eval-images``) on a few real frames."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from zoominnet_d2.data.sequence_split import find_frames, link_split, sequence_of, split_by_sequence

REPO = Path(__file__).resolve().parents[1]


def _stems(num_sequences=12, frames=4):
    return [f"{q:07d}_{f * 100:05d}_d_{q * 10 + f:07d}" for q in range(1, num_sequences + 1) for f in range(frames)]


def test_split_never_puts_a_sequence_on_both_sides():
    stems = _stems()
    train, val = split_by_sequence(stems, val_every=5)
    assert sorted(train + val) == sorted(stems)
    train_seq, val_seq = {sequence_of(s) for s in train}, {sequence_of(s) for s in val}
    assert not train_seq & val_seq
    # the fixed rule: sorted sequences at positions 2, 7 (val_every 5)
    assert val_seq == {"0000003", "0000008"}
    assert split_by_sequence(list(reversed(stems)), val_every=5) == (train, val)  # order-free


def test_split_needs_two_sequences():
    with pytest.raises(ValueError, match="at least 2 sequences"):
        split_by_sequence(["0000001_00001_d_0000001", "0000001_00002_d_0000002"])


def _write_frames(root: Path, stems):
    for stem in stems:
        for sub, ext in (("images", ".jpg"), ("annotations", ".txt")):
            (root / sub).mkdir(parents=True, exist_ok=True)
            (root / sub / f"{stem}{ext}").write_text(stem)


def test_find_frames_and_link_split(tmp_path):
    stems = _stems(3, 2)
    _write_frames(tmp_path / "data" / "train", stems[:4])
    _write_frames(tmp_path / "data" / "val", stems[4:])
    frames = find_frames(tmp_path / "data")
    assert sorted(frames) == sorted(stems)
    target = tmp_path / "out" / "VisDrone2019-DET-val"
    link_split(frames, stems[4:], target)
    links = sorted(p.name for p in (target / "images").iterdir())
    assert links == sorted(f"{s}.jpg" for s in stems[4:])
    assert all((target / "images" / n).is_symlink() for n in links)
    link_split(frames, stems[4:], target)  # the same split again: unchanged
    with pytest.raises(FileExistsError, match="other files"):
        link_split(frames, stems[:2], target)
    (tmp_path / "data" / "train" / "annotations" / f"{stems[0]}.txt").unlink()
    with pytest.raises(FileNotFoundError, match=stems[0]):
        find_frames(tmp_path / "data")


ROWS = ["tnet", "snet", "la", "cskd_la", "finetune_lr1", "finetune_lr2", "snet_test2x", "snet_sliced",
        "snet_sliced_full"]


def test_real_pipeline_smoke(visdrone_real_root, tmp_path):
    """Four 960x540 frames of three sequences, one iteration per model: the command trains,
    evaluates, writes the tables, reuses its stages, and evaluates on another folder."""
    manifest = [line.split(",") for line in (visdrone_real_root / "MANIFEST.csv").read_text().splitlines()[1:]]
    small = [row[1] for row in manifest if row[0] == "train" and row[2] == "960"]
    picked = [s for s in small if sequence_of(s) in sorted({sequence_of(x) for x in small})[:3]][:4]
    data = tmp_path / "frames"
    for stem in picked:
        for sub, ext in (("images", ".jpg"), ("annotations", ".txt")):
            (data / sub).mkdir(parents=True, exist_ok=True)
            (data / sub / f"{stem}{ext}").symlink_to(visdrone_real_root / "train" / sub / f"{stem}{ext}")
    out = tmp_path / "out"
    opts = ["SOLVER.MAX_ITER", "1", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "0",
            "SOLVER.STEPS", "()", "INPUT.CROP.SIZE", "[128,128]",
            # Few detections per image and slice: SAHI's per-detection bookkeeping over the
            # ~200 slices of a native frame is what would take the time here.
            "TEST.DETECTIONS_PER_IMAGE", "20"]
    cmd = [sys.executable, str(REPO / "tools" / "real_benchmark.py"), "--data", str(data), "--output",
           str(out), "--val-every", "3", "--timing-images", "1", "--parallel", "2"] + opts
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    split = json.loads((out / "split.json").read_text())
    assert not set(split["train_sequences"]) & set(split["val_sequences"]) and split["val"]
    result = json.loads((out / "results.json").read_text())
    assert [r["stage"] for r in result["rows"]] == ROWS
    assert all(r["mAP"] is not None and r["VisDrone_AP"] is not None and r["cpu_ms"] > 0 for r in result["rows"])
    # native crops, students at 1/2; SNet at 2x sees the teacher's native input
    assert [r["input"] for r in result["rows"]][:7] == [128, 64, 64, 64, 64, 64, 128]
    assert (out / "frontier.png").stat().st_size > 10_000
    assert "| SNet + LA + CSKD |" in (out / "results.md").read_text()
    log = (out / "seed_0" / "cskd_la" / "log.txt").read_text()
    assert "loss_distill" in log

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and again.stdout.count("reusing") == 6

    evaluation = tmp_path / "kept_back"
    stem = split["val"][0]
    for sub, ext in (("images", ".jpg"), ("annotations", ".txt")):
        (evaluation / sub).mkdir(parents=True)
        (evaluation / sub / f"{stem}{ext}").symlink_to(data / sub / f"{stem}{ext}")
    ev = subprocess.run([sys.executable, str(REPO / "tools" / "real_benchmark.py"), "--output", str(out),
                         "--eval-images", str(evaluation / "images"), "--eval-annotations",
                         str(evaluation / "annotations"), "--timing-images", "1"],
                        capture_output=True, text=True, timeout=900)
    assert ev.returncode == 0, ev.stdout[-3000:] + ev.stderr[-3000:]
    rows = json.loads((out / "eval_kept_back.json").read_text())["rows"]
    assert [r["stage"] for r in rows] == ROWS
    assert (out / "eval_kept_back" / "seed_0" / "cskd_la" / "inference").is_dir()
    assert (out / "eval_kept_back" / "seed_0" / "snet_sliced" / "inference").is_dir()
    assert (out / "eval_kept_back.md").is_file()


def test_seed_jobs_span_the_seeds_costliest_first_with_the_shared_teacher(import_tool, tmp_path, monkeypatch):
    real_benchmark = import_tool("real_benchmark")
    experiment = sys.modules["experiment"]
    done = tmp_path / "seed_1" / "snet"  # finished earlier: reused, not a job
    metrics = Path(experiment.metrics_file(str(done), real_benchmark.DATASET))
    metrics.parent.mkdir(parents=True)
    metrics.touch()
    (done / "model_final.pth").touch()
    args = real_benchmark.argparse.Namespace(seeds=[0, 1], force=False, opts=["SOLVER.MAX_ITER", "5"])
    jobs = real_benchmark.seed_jobs(real_benchmark.STUDENTS, args, tmp_path)
    assert [j.name for j in jobs] == ["seed 0 cskd_la", "seed 1 cskd_la", "seed 0 la", "seed 1 la", "seed 0 snet"]
    assert all(j.needs == () for j in jobs)  # the teacher is trained before
    calls = []
    monkeypatch.setattr(experiment, "run_train_net", lambda args, env, *rest: calls.append(args))
    jobs[1].run(1)
    (args_,) = calls
    assert args_[args_.index("OUTPUT_DIR") + 1] == str(tmp_path / "seed_1" / "cskd_la")
    assert args_[args_.index("SEED") + 1] == "1" and args_[args_.index("SOLVER.MAX_ITER") + 1] == "5"
    assert args_[args_.index("MODEL.ZOOMIN.TEACHER.WEIGHTS") + 1] == str(tmp_path / "tnet" / "model_final.pth")
