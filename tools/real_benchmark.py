#!/usr/bin/env python
"""Table 3 on real VisDrone frames: teacher, SNet, SNet + LA and SNet + LA + CSKD trained on
native-resolution crops (``configs/real/``) and evaluated on whole frames.

    python tools/real_benchmark.py --data ../shared/data/visdrone_real --output real_output [--seeds 0 1]
    python tools/real_benchmark.py --output real_output --eval-images DIR --eval-annotations DIR

The frames under ``--data`` (any ``images/<stem>.jpg`` with ``annotations/<stem>.txt``) are
split by video sequence (``zoominnet_d2.data.sequence_split``; ``<output>/split.json``) and
linked, not copied, into ``<output>/data``. The teacher is trained once (first seed) and shared
by the students of every seed (``<output>/seed_<k>/``); finished stages are reused. Results:
``<output>/results.md`` / ``results.json``. With ``--eval-images/--eval-annotations`` the
trained models of an earlier run are evaluated on another folder of frames, without
retraining: ``<output>/eval_<folder name>.md`` / ``.json``.

The students of every seed are trained before any alternative, and their table (without CPU
times) is written first. Unless ``--no-alternatives``, the table then gets the alternatives of
``tools/alternatives.py``
(the teacher fine-tuned at 1x with ``configs/real/finetune_lr*.yaml``, per seed; SNet tested at
native resolution; SNet on SAHI slices of the native frame), and ``frontier.png``
(``eval_<folder name>_frontier.png``) draws accuracy against cost of every row.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from alternatives import evaluate_test_time_rows, finetune_stages, test_time_predictors  # noqa: E402
from cpu_timing import cpu_ms_per_image, stage_predictors, torch_threads  # noqa: E402
from experiment import (REPO, Stage, cancel_training, log, machine_cores, run_stages, run_train_net,  # noqa: E402
                        stage_jobs, train_env)
from results_table import collect_row, merge_seeds, write_results  # noqa: E402
from side_by_side import Job, run_jobs  # noqa: E402

SNET = Stage("snet", "configs/real/snet.yaml", "SNet (crops / 2)", 1.0)
TEACHER = Stage("tnet", "configs/real/tnet.yaml", "TNet (native crops)", 8.0)
STUDENTS = [
    SNET,
    Stage("la", "configs/real/la.yaml", "SNet + LA", 2.0),
    Stage("cskd_la", "configs/real/cskd_la.yaml", "SNet + LA + CSKD", 2.8,
          teacher_as="MODEL.ZOOMIN.TEACHER.WEIGHTS"),
]
DATASET = "visdrone2019_val"
TAG = "real"


def prepare_split(data: Path, out: Path, val_every: int) -> Dict:
    """Split ``data`` by sequence into ``out/data`` (links) and record it in ``out/split.json``;
    an output folder made with another split is refused."""
    from zoominnet_d2.data.sequence_split import find_frames, link_split, sequence_of, split_by_sequence

    frames = find_frames(data)
    train, val = split_by_sequence(list(frames), val_every)
    split = {"data": str(data.resolve()), "val_every": val_every, "train": train, "val": val,
             "train_sequences": sorted({sequence_of(s) for s in train}),
             "val_sequences": sorted({sequence_of(s) for s in val})}
    path = out / "split.json"
    if path.is_file():
        earlier = json.loads(path.read_text())
        if {k: earlier.get(k) for k in ("train", "val")} != {"train": train, "val": val}:
            raise SystemExit(f"{out} was made with another split ({path}); use another --output")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split, indent=1))
    link_split(frames, train, out / "data" / "VisDrone2019-DET-train")
    link_split(frames, val, out / "data" / "VisDrone2019-DET-val")
    return split


def stage_dirs(out: Path, seeds: List[int]) -> Dict[int, Dict[str, Path]]:
    """{seed: {stage name: folder}}: the shared teacher and each seed's students and fine-tuned models."""
    return {seed: dict({TEACHER.name: out / TEACHER.name},
                       **{s.name: out / f"seed_{seed}" / s.name for s in STUDENTS + finetune_stages("configs/real")})
            for seed in seeds}


def train(args, out: Path) -> None:
    """The teacher, then the students of every seed, then (unless ``--no-alternatives``) the
    alternatives of every seed: a run cut short still has the students' table of every seed
    (``results.md``, rewritten with the alternatives' rows when they are done)."""
    split = prepare_split(Path(args.data), out, args.val_every)
    log(TAG, f"split by sequence: {len(split['train'])} train frames ({len(split['train_sequences'])} "
             f"sequences), {len(split['val'])} val frames ({len(split['val_sequences'])} sequences)")
    root = str(out / "data")
    began = time.time()
    run_stages([TEACHER], str(out), args.seeds[0], args.force, root, DATASET, TAG, opts=args.opts)
    dirs = stage_dirs(out, args.seeds)
    run_jobs(seed_jobs(STUDENTS, args, out), args.parallel, machine_cores(), lambda msg: log(TAG, msg),
             cancel=cancel_training)
    per_seed = [[collect_row(s, str(dirs[seed][s.name]), DATASET) for s in [TEACHER] + STUDENTS]
                for seed in args.seeds]
    if not args.no_alternatives:
        write_train_results(args, out, split, per_seed, complete=False)
        finetunes = finetune_stages("configs/real")
        test_time: Dict[int, List[Dict]] = {}

        def test_time_job(seed: int) -> Job:
            def run(threads: int) -> None:
                with torch_threads(threads):
                    test_time[seed] = evaluate_test_time_rows(
                        alternative_predictors(dirs[seed]), str(out / f"seed_{seed}"), SNET,
                        str(dirs[seed]["snet"]), TEACHER, str(dirs[seed]["tnet"]), DATASET, args.force, TAG)

            # In this process, whose thread count is global: one seed's rows after the other's.
            earlier = args.seeds[:args.seeds.index(seed)]
            return Job(f"seed {seed} test_time_rows", run, 1.5,
                       needs=(f"seed {earlier[-1]} test_time_rows",) if earlier else ())

        jobs = [test_time_job(seed) for seed in args.seeds] + seed_jobs(finetunes, args, out)
        run_jobs(jobs, args.parallel, machine_cores(), lambda msg: log(TAG, msg), cancel=cancel_training)
        for seed, rows in zip(args.seeds, per_seed):
            rows += [collect_row(s, str(dirs[seed][s.name]), DATASET) for s in finetunes] + test_time[seed]
    write_train_results(args, out, split, per_seed, complete=True)
    print((out / "results.md").read_text())
    log(TAG, f"finished in {(time.time() - began) / 60:.1f} min; results in {out}/results.md")


def seed_jobs(stages: List[Stage], args, out: Path) -> List[Job]:
    """The unfinished ``stages`` of every seed (``out/seed_<k>/<name>``, the shared teacher's
    weights for the distilled and fine-tuned ones) as one list of side-by-side jobs, the
    costliest stages first, so that ``--parallel`` jobs keep the cores busy across seeds."""
    return [job._replace(name=f"seed {seed} {job.name}")
            for stage in sorted(stages, key=lambda s: -s.cost) for seed in args.seeds
            for job in stage_jobs([stage], str(out / f"seed_{seed}"), seed, args.force, str(out / "data"),
                                  DATASET, TAG, teacher_dir=str(out / TEACHER.name), opts=args.opts)]


def write_train_results(args, out: Path, split: Dict, per_seed: List[List[Dict]], complete: bool) -> None:
    """``results.md`` / ``results.json`` of the rows so far. The ``complete`` table has the CPU
    times of the first seed's models (all rows timed round-robin, once) and, with the
    alternatives, ``frontier.png``; the students' table written before the alternatives has none."""
    rows = merge_seeds(per_seed)
    alternatives = not args.no_alternatives
    if complete:
        add_cpu_times(rows, trained_stages(args.no_alternatives), stage_dirs(out, args.seeds[:1])[args.seeds[0]],
                      args.timing_images, alternatives)
    pending = [] if complete else [
        "The alternatives' rows are still being trained and evaluated; this table (without CPU times) is "
        "rewritten with them and the CPU times of every row."]
    notes = [f"Command: `{command()}`; seeds {args.seeds} (one teacher, trained with seed {args.seeds[0]}, "
             "shared by the students of every seed).",
             f"Data: {split['data']}, split by sequence: {len(split['train'])} train frames, "
             f"{len(split['val'])} val frames (sequences {', '.join(split['val_sequences'])}).",
             "Trained on native crops (students at 1/2), evaluated on whole val frames (students at 1/2 of "
             "native, the teacher at native); GFLOPs by fvcore at the square training input; CPU ms per "
             "whole val frame: median at batch 1, one thread, models timed round-robin.", *pending]
    write_results(rows, str(out), "results", "ZoomInNet on real VisDrone frames", notes,
                  {"command": command(), "seeds": args.seeds, "split": {k: split[k] for k in (
                      "data", "val_every", "train_sequences", "val_sequences")}})
    if complete and alternatives:
        from zoominnet_d2.visualization.frontier import plot_frontier

        plot_frontier(rows, str(out / "frontier.png"),
                      f"real VisDrone val frames: accuracy against cost (seeds {args.seeds})")


def evaluate(args, out: Path) -> None:
    """Evaluate every trained model of ``out`` on the frames of ``--eval-images``."""
    from zoominnet_d2.data.sequence_split import link_split
    from zoominnet_d2.data.visdrone_files import IMAGE_EXTENSIONS

    images, annotations = Path(args.eval_images), Path(args.eval_annotations)
    name = eval_name(images)
    frames = {p.stem: (p, annotations / f"{p.stem}.txt") for p in sorted(images.iterdir())
              if p.suffix.lower() in IMAGE_EXTENSIONS}
    missing = [str(a) for _, a in frames.values() if not a.is_file()]
    if not frames or missing:
        raise SystemExit(f"--eval-annotations: no annotation file for {missing[:3]}" if missing
                         else f"--eval-images: no images in {images}")
    folder = out / f"eval_{name}"
    link_split(frames, list(frames), folder / "data" / "VisDrone2019-DET-val")
    seeds = sorted(int(p.name.split("_")[1]) for p in out.glob("seed_*"))
    if not seeds or not (out / TEACHER.name / "model_final.pth").is_file():
        raise SystemExit(f"--output {out}: no trained models (run without --eval-images first)")
    env = train_env(str(folder / "data"))
    per_seed, stages = [], trained_stages(args.no_alternatives)
    for seed, dirs in stage_dirs(out, seeds).items():
        rows = []
        for stage in stages:
            eval_dir = folder / dirs[stage.name].relative_to(out)
            if args.force or not (eval_dir / "inference" / DATASET / "visdrone_metrics.json").is_file():
                log(TAG, f"evaluating {stage.name} (seed {seed}) on {len(frames)} frames of {images}")
                weights = str(dirs[stage.name] / "model_final.pth")
                run_train_net(["--config-file", stage.config, "--eval-only", "MODEL.WEIGHTS", weights,
                               "OUTPUT_DIR", str(eval_dir)], env, TAG, stage.name, str(eval_dir / "log.txt"))
            rows.append(collect_row(stage, str(eval_dir), DATASET, train_dir=str(dirs[stage.name])))
        if not args.no_alternatives:
            rows += evaluate_test_time_rows(alternative_predictors(dirs), str(folder / f"seed_{seed}"), SNET,
                                            str(dirs["snet"]), TEACHER, str(dirs["tnet"]), DATASET, args.force, TAG)
        per_seed.append(rows)
    rows = merge_seeds(per_seed)
    add_cpu_times(rows, stages, stage_dirs(out, seeds[:1])[seeds[0]], args.timing_images, not args.no_alternatives)
    notes = [f"Command: `{command()}`; the models of {out} (seeds {seeds}) on {len(frames)} frames of {images}."]
    write_results(rows, str(out), f"eval_{name}", f"ZoomInNet real-frame models on {name}", notes,
                  {"command": command(), "seeds": seeds, "images": str(images), "annotations": str(annotations)})
    from zoominnet_d2.visualization.frontier import plot_frontier

    plot_frontier(rows, str(out / f"eval_{name}_frontier.png"), f"{name}: accuracy against cost (seeds {seeds})")
    print((out / f"eval_{name}.md").read_text())


def trained_stages(no_alternatives: bool) -> List[Stage]:
    """The teacher, the students and, unless ``no_alternatives``, the fine-tuning stages."""
    return [TEACHER] + STUDENTS + ([] if no_alternatives else finetune_stages("configs/real"))


def alternative_predictors(dirs: Dict[str, Path]) -> Dict:
    """The test-time alternatives (``tools/alternatives.py``) of one seed's SNet."""
    return test_time_predictors(SNET, str(dirs["snet"]), TEACHER, str(dirs["tnet"]))


def add_cpu_times(rows: List[Dict], stages: List[Stage], dirs: Dict[str, Path], num_images: int,
                  alternatives: bool) -> None:
    """CPU ms per whole val frame of each row (the first seed's models), round-robin."""
    predictors = stage_predictors(stages, {s.name: str(dirs[s.name]) for s in stages})
    if alternatives:
        predictors.update(alternative_predictors(dirs))
    times = cpu_ms_per_image(predictors, DATASET, num_images=num_images)
    for row in rows:
        row["cpu_ms"] = times[row["stage"]]


def eval_name(images: Path) -> str:
    """The name of an evaluation folder: its own, or its parent's for ``.../<name>/images``."""
    return images.resolve().parent.name if images.name == "images" else images.resolve().name


def command() -> str:
    return "python tools/real_benchmark.py " + " ".join(sys.argv[1:])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder with the real frames (images/ and annotations/ at any depth)")
    parser.add_argument("--output", required=True, help="where the split, the stages and the results go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds of the students")
    parser.add_argument("--val-every", type=int, default=5, help="every k-th sequence goes to val (default 5)")
    parser.add_argument("--force", action="store_true", help="redo finished stages")
    parser.add_argument("--parallel", type=int, default=1, help="the students (then the alternatives) of "
                        "every seed trained and evaluated this many at a time, each on cores / parallel threads "
                        "(default 1: one at a time)")
    parser.add_argument("--timing-images", type=int, default=20, help="val frames timed per model")
    parser.add_argument("--no-alternatives", action="store_true", help="leave out the alternatives' rows "
                        "(TNet fine-tuned at 1x, SNet tested at 2x, SAHI slices) and the frontier picture")
    parser.add_argument("--eval-images", help="evaluate an earlier run's models on these images ...")
    parser.add_argument("--eval-annotations", help="... with these annotations")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config options for every stage (KEY VALUE ...)")
    args = parser.parse_args(argv)
    for key in ("data", "eval_images", "eval_annotations"):  # before the chdir below
        if getattr(args, key):
            setattr(args, key, str(Path(getattr(args, key)).resolve()))
    out = Path(args.output).resolve()
    if args.eval_images or args.eval_annotations:
        if not (args.eval_images and args.eval_annotations):
            parser.error("--eval-images and --eval-annotations go together")
        data_root = out / f"eval_{eval_name(Path(args.eval_images))}" / "data"
    elif not args.data:
        parser.error("--data is required (unless --eval-images/--eval-annotations)")
    else:
        data_root = out / "data"
    # Before zoominnet_d2 registers visdrone2019_* (at import) under $DETECTRON2_DATASETS.
    os.environ["DETECTRON2_DATASETS"] = str(data_root)
    import zoominnet_d2  # noqa: F401
    os.chdir(REPO)
    (evaluate if args.eval_images else train)(args, out)


if __name__ == "__main__":
    main()
