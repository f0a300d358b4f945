"""Whether the demo's training stages would finish sooner two at a time on a 2-core machine.

The training step of the demo's SNet and SNet + LA + CSKD (``configs/synth``: 128 px student,
256 px teacher, batch 8; random weights, learning rate 0, noise images with 50-100 boxes, as
the other benchmark tables) is run in three ways:

- "1 process x 2 threads": one process, 2 intra-op threads (how ``tools/demo.py`` trains a stage);
- "1 process x 1 thread": one process, 1 thread;
- "2 processes x 1 thread": two processes of 1 thread each at the same time (two stages side
  by side).

Each way runs in fresh worker processes (``--worker``) that build the model, warm up, report
ready and start their timed steps together on a signal, so that imports and start-up are not
timed and two workers' steps overlap. The figure is the machine's training steps per second:
1 / median step time of a worker, summed over the workers. The three ways are run round-robin,
``rounds`` times, and the median over rounds is reported, so that a load change hits them alike.

``python tools/benchmark_training_threads.py [--rounds N] [--steps N]`` prints the markdown; ``measure()`` returns the
figures and ``render(result)`` the markdown lines.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools"
CONFIGS = {"SNet": "snet.yaml", "SNet + LA + CSKD": "cskd_la.yaml"}
#: Way -> threads of each of its worker processes (one entry per process).
WAYS = {"1 process x 2 threads": [2], "1 process x 1 thread": [1], "2 processes x 1 thread": [1, 1]}
SIZE, BATCH = 128, 8


def worker(config: str, threads: int, steps: int, warmup: int) -> None:
    """Build ``config``'s model, run ``warmup`` steps, print "ready", wait for a line on stdin,
    run ``steps`` timed steps and print their wall times (s) as a JSON list."""
    import torch

    warnings.filterwarnings("ignore", message="torch.meshgrid")  # Detectron2's anchors, every worker
    torch.set_num_threads(threads)
    sys.path.insert(0, str(TOOLS))
    from benchmarking.common import TrainStep, cskd_config, make_batch, sized_config, student_and_cskd
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    with tempfile.TemporaryDirectory() as tmp, EventStorage():
        config_dir = REPO / "configs" / "synth"
        if config == "cskd_la.yaml":
            model = student_and_cskd(cskd_config(config_dir, SIZE, Path(tmp)))[1]
        else:
            model = build_model(sized_config(config_dir, config, SIZE))
        model.train()
        step = TrainStep(model, make_batch(SIZE, BATCH))
        for _ in range(warmup):
            step()
        print("ready", flush=True)
        sys.stdin.readline()
        times = [step()["step"] for _ in range(steps)]
    print(json.dumps(times), flush=True)


def run_way(config: str, threads: List[int], steps: int, warmup: int) -> float:
    """Training steps per second of ``len(threads)`` workers of ``config`` run together."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", config]
    procs = []
    for n in threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
        procs.append(subprocess.Popen(command + [str(n), str(steps), str(warmup)], env=env, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE))
    try:
        for proc in procs:
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"training-threads worker for {config} failed before its steps "
                                   f"(it said {line!r}; its error is above)")
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        rate = 0.0
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode:
                raise RuntimeError(f"training-threads worker for {config} exited with {proc.returncode}")
            rate += 1.0 / statistics.median(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return rate


def measure(rounds: int = 3, steps: int = 20, warmup: int = 3, models=tuple(CONFIGS)) -> dict:
    """{"rates": {model: {way: steps/s}}, ...} for ``models`` (keys of ``CONFIGS``), medians
    over ``rounds`` round-robin rounds."""
    rates: Dict[str, Dict[str, List[float]]] = {m: {w: [] for w in WAYS} for m in models}
    for _ in range(rounds):
        for model in models:
            for way, threads in WAYS.items():
                rates[model][way].append(run_way(CONFIGS[model], threads, steps, warmup))
    return {"rounds": rounds, "steps": steps, "warmup": warmup, "cpus": os.cpu_count(),
            "rates": {m: {w: statistics.median(r) for w, r in ways.items()} for m, ways in rates.items()}}


def render(result: dict) -> List[str]:
    ways = list(WAYS)
    lines = ["## Training stages side by side", "",
             f"Training steps per second of the whole machine ({result['cpus']} CPUs), the demo's configs "
             f"(`configs/synth`, {SIZE} px student, batch {BATCH}), median of {result['rounds']} round-robin "
             f"rounds of {result['steps']} steps per worker (`tools/benchmark_training_threads.py`). "
             f"The last column is two stages side by side against one stage at a time.", "",
             "| model | " + " | ".join(ways) + " | side by side / one at a time |",
             "|---" * (len(ways) + 2) + "|"]
    for model, rate in result["rates"].items():
        gain = rate["2 processes x 1 thread"] / rate["1 process x 2 threads"]
        lines.append(f"| {model} | " + " | ".join(f"{rate[w]:.2f}" for w in ways) + f" | {gain:.2f} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds (the median is reported)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per worker and round")
    args = parser.parse_args(argv)
    print("\n".join(render(measure(rounds=args.rounds, steps=args.steps))))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:  # internal: one timed worker process, started by run_way
        sys.path.insert(0, str(REPO))
        import zoominnet_d2  # noqa: F401  (its compat shims before Detectron2's imports)

        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(main())
