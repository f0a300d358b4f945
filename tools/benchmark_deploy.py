#!/usr/bin/env python
"""Deployment speed of the student on the CPU: per-image latency of SNet, SNet + LA and
SNet + FA (R50 configs) in PyTorch eager, TorchScript and ONNX Runtime at 1 and 2 threads;
where SNet + LA's time beyond its FLOPs goes (profiler); the predictor's images/s on real
1920x1080 frames, JPEG decoding included.

    python tools/benchmark_deploy.py [--size 512] [--repeats 5] [--output deploy.md]

``measure(...)`` returns the numbers as a dict, ``render(result)`` the markdown lines.

Method: every latency is the median of ``repeats`` timed rounds after one warm-up round, all
(model, runtime, threads) combinations interleaved in each round, so that a change in the
shared machine's load hits all of them alike; ratios are taken within the run. A latency is
one image of ``size`` x ``size`` (a real VisDrone frame resized, else a synthetic image):
normalisation, network, decoding, top-k and NMS (eager: ``model.forward``; exported:
the graph + ``zoominnet_d2.deploy.postprocess.detect``). Weights are random, with the
classification layer rescaled so that its P3 logits on that image have the mean and spread of
a trained student's (TRAINED_LOGITS): decoding time depends on how many scores pass the
threshold, and a random R50 saturates them (about 40% of all scores above 0.05 and many
exactly 1.0). The SNet + LA ratio is also given for those unscaled random weights, as in
BENCHMARKS.md.
"""
import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import zoominnet_d2  # noqa: F401  (first: compat fixes, registrations)
import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.data.detection_utils import read_image
from PIL import Image
from torch.profiler import ProfilerActivity, profile

from host import machine
from zoominnet_d2.data.synthetic import render_image
from zoominnet_d2.deploy import build_predictor, build_student, export_student, load_config
from zoominnet_d2.deploy.graph import split_outputs
from zoominnet_d2.deploy.postprocess import DecodeSettings, detect
from zoominnet_d2.deploy.runtimes import OnnxRuntimeGraph, TorchScriptGraph
from zoominnet_d2.modeling.fast_inference import with_detectron2_decoding

REPO = Path(__file__).resolve().parents[1]
REAL_FRAMES = REPO.parent / "shared/data/visdrone_real/train/images"
MODELS = {"SNet": "configs/snet.yaml", "SNet + LA": "configs/la.yaml", "SNet + FA": "configs/fa.yaml"}
RUNTIMES = ("eager", "eager, fast decoding", "TorchScript", "ONNX Runtime")
#: Mean and std of the P3 classification logits of the demo's trained synth SNet + LA
#: (demo_output/la/model_final.pth) on the first real VisDrone frame (2026-12-01).
TRAINED_LOGITS = (-3.55, 0.91)
#: Self-time groups of the profile: (label, substrings of op names).
OP_GROUPS = (("convolutions", ("conv",)), ("batch norm", ("batch_norm",)),
             ("nearest upsampling", ("upsample",)), ("sort / top-k", ("sort", "topk")),
             ("threshold, nonzero, gather", ("nonzero", "index", "::gt", "::ge", "masked")),
             ("NMS", ("nms",)), ("copies (permute, cat, pad)", ("copy_", "::cat", "pad")))


def real_frames(width: int = 1920, height: int = 1080) -> List[str]:
    """The real VisDrone frames of that size (none where ../shared is absent)."""
    if not REAL_FRAMES.is_dir():
        return []
    return [str(p) for p in sorted(REAL_FRAMES.glob("*.jpg")) if Image.open(p).size == (width, height)]


def benchmark_image(size: int) -> torch.Tensor:
    """(3, size, size) float BGR 0-255: the first real frame resized, else a synthetic image."""
    frames = real_frames()
    image = read_image(frames[0], "BGR") if frames else render_image(np.random.default_rng(0), 1024)[0][:, :, ::-1]
    image = T.Resize((size, size)).get_transform(image).apply_image(image)
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)), dtype=torch.float32)


@torch.no_grad()
def calibrate_scores(model, image: torch.Tensor, mean: float, std: float) -> None:
    """Rescale ``head.cls_score`` so that its P3 logits on ``image`` have ``mean`` and ``std``."""
    features = model.backbone(model.preprocess_image([{"image": image}]).tensor)
    logits = model.head([features[f] for f in model.head_in_features])[0][0]
    k = std / float(logits.std())
    model.head.cls_score.weight.mul_(k)
    model.head.cls_score.bias.mul_(k).add_(mean - k * float(logits.mean()))


def exported_runner(runtime, settings: DecodeSettings, size: int):
    def run(image: torch.Tensor):
        scores, deltas, anchors = split_outputs(runtime(image[None]))
        return detect(scores, deltas, anchors, (size, size), settings)
    return run


def eager_runner(model):
    return lambda image: model([{"image": image}])


def round_robin(runners: Dict[tuple, callable], image: torch.Tensor, repeats: int) -> Dict[str, Dict[tuple, float]]:
    """Median seconds per (model, runtime, threads): "wall" (latency) and "cpu" (this
    process's CPU time, which excludes the time other jobs hold the cores: at 1 thread the
    steadier figure on a shared machine). One warm-up round, then ``repeats``."""
    times = {clock: {key: [] for key in runners} for clock in ("wall", "cpu")}
    with torch.no_grad():
        for round_ in range(repeats + 1):
            for key, run in runners.items():
                torch.set_num_threads(key[2])
                wall, cpu = time.perf_counter(), time.process_time()
                run(image)
                if round_:
                    times["wall"][key].append(time.perf_counter() - wall)
                    times["cpu"][key].append(time.process_time() - cpu)
    return {clock: {key: statistics.median(v) for key, v in per_key.items()} for clock, per_key in times.items()}


@torch.no_grad()
def profile_groups(model, image: torch.Tensor, runs: int = 2) -> Dict[str, float]:
    """Self CPU ms per image of each OP_GROUPS group (and "other") in ``model.forward``."""
    model([{"image": image}])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            model([{"image": image}])
    groups = {label: 0.0 for label, _ in OP_GROUPS}
    groups["other"] = 0.0
    for event in prof.key_averages():
        label = next((lab for lab, keys in OP_GROUPS if any(k in event.key for k in keys)), "other")
        groups[label] += event.self_cpu_time_total / 1e3 / runs
    return groups


def predictor_rate(cfg, weights: str, onnx_path: str, num_frames: int, threads: int) -> Dict[str, float]:
    """Images/s of ``tools/predict.py``'s predictors on real 1920x1080 frames (read + predict)."""
    frames = real_frames()[:num_frames]
    if not frames:
        return {}
    torch.set_num_threads(threads)
    rates = {}
    for backend, kwargs in (("torch", {"weights": weights}), ("onnx", {"model_path": onnx_path})):
        predictor = build_predictor(cfg, backend, **kwargs)
        predictor(read_image(frames[0], cfg.INPUT.FORMAT))  # warm-up
        start = time.perf_counter()
        for path in frames:
            predictor(read_image(path, cfg.INPUT.FORMAT))
        rates[backend] = len(frames) / (time.perf_counter() - start)
    return rates


def measure(size: int = 512, threads=(1, 2), repeats: int = 5, num_frames: int = 8,
            models: Dict[str, str] = MODELS, opts=()) -> dict:
    """All numbers of the deployment benchmark (see the module docstring).

    Args:
        models: {name: config file}; must contain "SNet" and "SNet + LA".
        opts: config overrides for every model (``KEY VALUE`` list).
    """
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="benchmark_deploy_") as workdir:
        result = _measure(workdir, size, threads, repeats, num_frames, models, opts)
    result["minutes"] = (time.time() - started) / 60
    return result


def _measure(workdir: str, size: int, threads, repeats: int, num_frames: int, models, opts) -> dict:
    image = benchmark_image(size)
    runners, profiles, files = {}, {}, {}
    for name, config in models.items():
        cfg = load_config(str(REPO / config), ["INPUT.SQUARE_SIZE", str(size), *opts])
        if name in ("SNet", "SNet + LA"):  # the BENCHMARKS.md case: random weights as built
            torch.manual_seed(0)
            saturated = build_student(cfg)
            runners[(f"{name} (saturated)", "eager", 1)] = eager_runner(with_detectron2_decoding(saturated))
            runners[(f"{name} (saturated)", "eager, fast decoding", 1)] = eager_runner(saturated)
            profiles[f"{name} (saturated)"] = profile_groups(with_detectron2_decoding(saturated), image)
        torch.manual_seed(0)
        model = build_student(cfg)
        calibrate_scores(model, image, *TRAINED_LOGITS)
        profiles[name] = profile_groups(with_detectron2_decoding(model), image)
        if name in ("SNet", "SNet + LA"):
            profiles[f"{name}, fast decoding"] = profile_groups(model, image)
        files[name] = {fmt: os.path.join(workdir, f"{name}.{fmt}") for fmt in ("onnx", "torchscript", "pth")}
        for fmt, path in files[name].items():
            export_student(model, fmt, path, size)
        settings = DecodeSettings.from_config(cfg)
        scripted = TorchScriptGraph(files[name]["torchscript"])
        for n in threads:
            runners[(name, "eager", n)] = eager_runner(with_detectron2_decoding(model))
            runners[(name, "eager, fast decoding", n)] = eager_runner(model)
            runners[(name, "TorchScript", n)] = exported_runner(scripted, settings, size)
            onnx = OnnxRuntimeGraph(files[name]["onnx"], num_threads=n)
            runners[(name, "ONNX Runtime", n)] = exported_runner(onnx, settings, size)
        if name == "SNet + LA":
            la_cfg = cfg
    load = os.getloadavg()
    latency = round_robin(runners, image, repeats)
    rates = predictor_rate(la_cfg, files["SNet + LA"]["pth"], files["SNet + LA"]["onnx"], num_frames, max(threads))
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{machine()}, torch {torch.__version__}",
        "load": [load, os.getloadavg()], "size": size, "threads": list(threads), "repeats": repeats,
        "models": list(models),
        "latency": {" | ".join(map(str, k)): v for k, v in latency["wall"].items()},
        "cpu": {" | ".join(map(str, k)): v for k, v in latency["cpu"].items()},
        "profiles": profiles, "predictor": rates, "num_frames": num_frames,
    }


def render(result: dict) -> List[str]:
    """Markdown lines of ``measure``'s result."""
    clocks = {clock: {tuple(k.split(" | ")): v for k, v in result[clock].items()} for clock in ("latency", "cpu")}
    get = lambda model, rt, n, clock="latency": clocks[clock][(model, rt, str(n))]  # noqa: E731
    lines = ["## Deployment: latency per runtime", "",
             "Per-image latency of the student (preprocessing, network, decoding, NMS) in PyTorch "
             "eager, TorchScript and ONNX Runtime, R50 configs with random weights (the classifier "
             "scaled to a trained model's logits).", "",
             f"Measured {result['date']} on {result['machine']}; load average "
             f"{result['load'][0][0]:.2f} at the start, {result['load'][1][0]:.2f} at the end; "
             f"median of {result['repeats']} interleaved rounds; {result['size']}x{result['size']} input.", "",
             "| model | threads | " + " | ".join(f"{rt} (ms)" for rt in RUNTIMES)
             + " | ONNX Runtime / eager | eager / SNet eager |", "|---" * (len(RUNTIMES) + 4) + "|"]
    for n in result["threads"]:
        for model in result["models"]:
            times = [get(model, rt, n) for rt in RUNTIMES]
            lines.append(f"| {model} | {n} | " + " | ".join(f"{1e3 * t:.0f}" for t in times)
                         + f" | {times[3] / times[0]:.2f} | {times[0] / get('SNet', 'eager', n):.2f} |")
    lines += ["", "SNet + LA / SNet, eager, 1 thread (FLOPs ratio 1.09), both with the same decoding; "
              "wall-clock latency and CPU time:", "",
              "| weights | Detectron2 decoding | fast decoding (`FastDecodeMixin`) | "
              "Detectron2 decoding, CPU time | fast decoding, CPU time |", "|---|---|---|---|---|"]
    for label, suffix in (("classifier scaled to trained logits", ""), ("random, saturated scores", " (saturated)")):
        ratios = [get(f"SNet + LA{suffix}", rt, 1, clock) / get(f"SNet{suffix}", rt, 1, clock)
                  for clock in ("latency", "cpu") for rt in RUNTIMES[:2]]
        lines.append(f"| {label} | " + " | ".join(f"{r:.3f}" for r in ratios) + " |")
    names = list(result["profiles"])
    lines += ["", "Profile of `model.forward` (self CPU ms per image, torch.profiler, 1 thread):", "",
              "| op group | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for group in result["profiles"][names[0]]:
        lines.append(f"| {group} | " + " | ".join(f"{result['profiles'][m][group]:.1f}" for m in names) + " |")
    if result["predictor"]:
        lines += ["", f"Predictor on {result['num_frames']} real 1920x1080 frames (SNet + LA, JPEG decoding, "
                  f"resize, network, post-processing; {max(result['threads'])} threads): "
                  + ", ".join(f"{b} {r:.2f} images/s" for b, r in result["predictor"].items()) + "."]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8, help="real frames for the predictor's images/s")
    parser.add_argument("--output", help="also write the markdown here")
    args = parser.parse_args(argv)
    result = measure(args.size, repeats=args.repeats, num_frames=args.frames)
    text = "\n".join(render(result) + ["", f"Run time: {result['minutes']:.1f} min."]) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
