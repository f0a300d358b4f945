#!/usr/bin/env python
"""Performance benchmark of ZoomInNet: inference, CSKD training step, AKDP, memory.

    python tools/benchmark.py --output BENCHMARKS.md     # full run on the CPU (5-15 min on 2 shared cores)
    python tools/benchmark.py --quick                    # smoke version (< 2 min)
    python tools/benchmark.py --device cuda              # inference and CSKD-step tables on CUDA, AMP off/on

Everything is timed in this one process as medians of repeats (after warm-up rounds), and the
models of a table are timed in interleaved rounds (model 1, 2, ..., then again), so that a
change of the machine's load hits all of them alike and the ratios stay meaningful. Peak
memory is measured in fresh subprocesses (``--worker``). The script prints a markdown report
and, with ``--output``, writes it; every number of BENCHMARKS.md comes from it. The
measurements live in ``tools/benchmarking/`` (one module per table), the report in
``tools/benchmarking/render.py``.

Models have random weights (no checkpoint can be downloaded here): the cost of dense
convolutions does not depend on the weights. Inputs are uint8 noise images with
VisDrone-like ground truth (50-100 small boxes per image).

Optional sections, measured by standalone modules of ``tools/`` that expose
``measure() -> dict`` and ``render(result) -> List[str]``, are added with ``--sections``:
``official_eval`` (``benchmark_official_eval.py``), ``deploy`` (``benchmark_deploy.py``),
``data_loading`` (``benchmark_data_loading.py``) and ``training_threads``
(``benchmark_training_threads.py``).
"""
import argparse
import importlib
import json
import logging
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import zoominnet_d2  # noqa: E402,F401  (first: compat fixes, registrations)
import torch  # noqa: E402

from benchmarking.akdp import AKDP_ANCHOR_SETS, akdp_memory_task, bench_akdp  # noqa: E402
from benchmarking.common import config_path, load_average, log, machine_info  # noqa: E402
from benchmarking.device import bench_device  # noqa: E402
from benchmarking.inference import bench_inference, bench_threads  # noqa: E402
from benchmarking.memory import bench_step_memory, step_memory_task  # noqa: E402
from benchmarking.render import render_markdown  # noqa: E402
from benchmarking.train import bench_train  # noqa: E402

SECTIONS = ("threads", "inference", "train", "akdp", "memory")
#: Section name -> module of tools/ with ``measure() -> dict`` and ``render(result) -> List[str]``.
OPTIONAL_SECTIONS = {"official_eval": "benchmark_official_eval", "deploy": "benchmark_deploy",
                     "data_loading": "benchmark_data_loading",
                     "training_threads": "benchmark_training_threads"}
WORKER_TASKS = {"akdp-memory": akdp_memory_task, "step-memory": step_memory_task}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke version (< 2 min): 256 px, no warm-up, 1 repeat, no GFLOPs, two AKDP "
                             "anchor sets, step memory on the synth configs only")
    parser.add_argument("--config-dir", default="configs",
                        help="folder with snet/la/fa_thin/fa/tnet/cskd_la.yaml (default: configs)")
    parser.add_argument("--size", type=int, help="student input side, px (default 512; --quick 256)")
    parser.add_argument("--batch", type=int, default=2, help="training batch size (default 2)")
    parser.add_argument("--warmup", type=int, help="warm-up rounds (default 1; --quick 0)")
    parser.add_argument("--repeats", type=int, help="timed rounds (default 3; --quick 1)")
    parser.add_argument("--train-repeats", type=int,
                        help="timed rounds of the training steps (default 5; --quick 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: see the 'threads' table)")
    parser.add_argument("--sections",
                        help=f"comma-separated subset of {','.join(SECTIONS + ('device',) + tuple(OPTIONAL_SECTIONS))} "
                             f"(default: {','.join(SECTIONS)}; with --device: device)")
    parser.add_argument("--device",
                        help="also (without --sections: only) the inference and CSKD-step tables on this "
                             "device (cuda, cuda:1, or cpu for a dry run), AMP off and on; skipped with a "
                             "message where the device does not exist")
    parser.add_argument("--no-flops", action="store_true", help="skip the GFLOPs column")
    parser.add_argument("--memory-configs", default=None,
                        help="comma-separated config folders for the step-memory table "
                             "(default: --config-dir and configs/synth; --quick: configs/synth)")
    parser.add_argument("--output", help="write the markdown report here")
    parser.add_argument("--json", help="also write the raw results as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser


def optional_module(name: str):
    """The module of an optional section, or None when its file is not in tools/."""
    module = OPTIONAL_SECTIONS[name]
    if not (REPO / "tools" / f"{module}.py").is_file():
        return None
    return importlib.import_module(module)


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker:
        spec = json.loads(args.worker)
        print("RESULT " + json.dumps(WORKER_TASKS[spec["task"]](spec)), flush=True)
        return {}

    size = args.size or (256 if args.quick else 512)
    warmup = args.warmup if args.warmup is not None else (0 if args.quick else 1)
    repeats = args.repeats or (1 if args.quick else 3)
    train_repeats = args.train_repeats or (1 if args.quick else 5)
    config_dir = Path(args.config_dir)
    default = "device" if args.device else ",".join(SECTIONS)
    sections = [s.strip() for s in (args.sections or default).split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS) - {"device"} - set(OPTIONAL_SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from "
                     f"{SECTIONS + ('device',) + tuple(OPTIONAL_SECTIONS)}")
    start = time.perf_counter()
    res = {"machine": machine_info(), "args": vars(args), "settings": {
               "size": size, "warmup": warmup, "repeats": repeats, "train_repeats": train_repeats},
           "command": " ".join(["python", "tools/benchmark.py"] + list(argv if argv is not None else sys.argv[1:]))}
    log(f"machine: {res['machine']}")
    if "threads" in sections:
        res["threads"] = bench_threads(config_dir, size, warmup, repeats)
    if "inference" in sections:
        res["inference"] = bench_inference(config_dir, size, warmup, repeats,
                                           flops=not (args.no_flops or args.quick))
    if "train" in sections:
        res["train"] = bench_train(config_dir, size, args.batch, warmup, train_repeats)
    if "akdp" in sections:
        sets = AKDP_ANCHOR_SETS[:2] if args.quick else AKDP_ANCHOR_SETS
        res["akdp"] = bench_akdp(config_dir, size, warmup, repeats, anchor_sets=sets)
    if "memory" in sections:
        if args.memory_configs is not None:
            folders = [f for f in args.memory_configs.split(",") if f]
        else:
            folders = ([] if args.quick else [str(config_dir)]) + ["configs/synth"]
        rows = []
        for folder in dict.fromkeys(folders):
            synth = config_path(Path(folder), ".").resolve() == (REPO / "configs" / "synth").resolve()
            rows += bench_step_memory(Path(folder), 128 if synth else size, args.batch)["rows"]
        res["memory"] = {"rows": rows}
    if "device" in sections:
        res["device"] = bench_device(config_dir, size, args.batch, warmup, repeats, train_repeats,
                                     args.device or "cuda")
    renderers = {}
    for name in OPTIONAL_SECTIONS:
        if name in sections:
            module = optional_module(name)
            if module is None:
                log(f"section {name}: tools/{OPTIONAL_SECTIONS[name]}.py is not in this checkout, skipped")
                continue
            res[name], renderers[name] = module.measure(), module.render
    res["load_end"] = load_average()
    res["elapsed_s"] = time.perf_counter() - start
    report = render_markdown(res, renderers)
    print(report)
    if args.output:
        Path(args.output).write_text(report)
        log(f"wrote {args.output}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    return res


if __name__ == "__main__":
    # Quiet console for the command (Detectron2 logs every model it builds); not in main(),
    # which tests call in-process.
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    main()
