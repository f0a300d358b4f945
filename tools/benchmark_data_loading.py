"""Time of mapping one training sample: Detectron2's ``DatasetMapper`` against the project's
cross-scale mapper (student and teacher views), without and with the decoded-image cache.

Two data sets: synthetic 256 px images written by the project's generator (the demo's
training images), and, where ``../shared/data/visdrone_real`` exists (developer machines), its
first real VisDrone training frames (960x540 to 1920x1080, ~100 boxes each). Each uses the
augmentation of its CSKD config (``configs/synth/cskd_la.yaml``: square resize and flip;
``configs/real/cskd_la.yaml``: 384 px native crop, 2x downscale, flip). The mappers are run
round-robin, one pass over the images each per repeat, with the same augmentation draws
(``np.random`` seeded per repeat); the cached mapper's cache is filled before the first repeat.
One thread. The figure is the median over repeats of a pass's mean ms per image.

``python tools/benchmark_data_loading.py`` prints the markdown; ``measure()`` returns the
figures and ``render(result)`` the markdown lines.
"""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import zoominnet_d2  # noqa: E402,F401  (its compat shims before Detectron2's imports)
from detectron2.data import DatasetMapper  # noqa: E402
from zoominnet_d2.data.cross_scale_mapper import ZoomInDatasetMapper  # noqa: E402
from zoominnet_d2.data.synthetic import generate_split  # noqa: E402
from zoominnet_d2.data.visdrone import load_visdrone  # noqa: E402
from zoominnet_d2 import load_config  # noqa: E402

REAL_TRAIN = REPO.parent / "shared" / "data" / "visdrone_real" / "train"
IMAGES, REPEATS = 16, 5


def mappers(config_file: str) -> Dict[str, Callable[[dict], dict]]:
    """The three mappers of one config, in the order of the table."""
    cfg = load_config(str(REPO / config_file), ["DATALOADER.DECODED_IMAGE_CACHE_MB", 0])
    plain = ZoomInDatasetMapper.from_config(cfg, is_train=True, with_teacher=True)
    detectron2_args = {k: v for k, v in plain.items() if k not in ("teacher_scale", "image_cache")}
    cfg.DATALOADER.DECODED_IMAGE_CACHE_MB = 4096
    return {
        "Detectron2 DatasetMapper (student view only)": DatasetMapper(**detectron2_args),
        "ZoomInDatasetMapper (both views)": ZoomInDatasetMapper(**plain),
        "ZoomInDatasetMapper, decoded images cached": ZoomInDatasetMapper(cfg, is_train=True, with_teacher=True),
    }


def time_mappers(dataset_dicts: List[dict], config_file: str, repeats: int) -> Dict[str, float]:
    """{mapper: median ms per image} (see the module docstring)."""
    candidates = mappers(config_file)
    for d in dataset_dicts:  # fill the cache
        candidates["ZoomInDatasetMapper, decoded images cached"](d)
    passes: Dict[str, List[float]] = {name: [] for name in candidates}
    for repeat in range(repeats):
        for name, mapper in candidates.items():
            np.random.seed(repeat)
            start = time.perf_counter()
            for d in dataset_dicts:
                mapper(d)
            passes[name].append(1000 * (time.perf_counter() - start) / len(dataset_dicts))
    return {name: statistics.median(ms) for name, ms in passes.items()}


def measure(repeats: int = REPEATS, num_images: int = IMAGES) -> dict:
    """{"sets": {data set: {mapper: ms per image}}, ...}; the real frames only where present."""
    torch.set_num_threads(1)
    result = {"images": num_images, "repeats": repeats, "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        generate_split(tmp, "train", num_images, 256, seed=0)
        root = Path(tmp) / "VisDrone2019-DET-train"
        synthetic = load_visdrone(root / "images", root / "annotations")
        result["sets"]["synthetic 256 px (configs/synth/cskd_la.yaml)"] = time_mappers(
            synthetic, "configs/synth/cskd_la.yaml", repeats)
    if REAL_TRAIN.is_dir():
        real = load_visdrone(REAL_TRAIN / "images", REAL_TRAIN / "annotations")[:num_images]
        boxes = sum(len(d["annotations"]) for d in real) / len(real)
        name = f"real VisDrone frames, {boxes:.0f} boxes each (configs/real/cskd_la.yaml)"
        result["sets"][name] = time_mappers(real, "configs/real/cskd_la.yaml", repeats)
    else:
        result["skipped"] = f"{REAL_TRAIN} not present: real frames not timed"
    return result


def render(result: dict) -> List[str]:
    lines = ["## Training data: mapping one sample", "",
             f"ms per training sample, 1 thread, median of {result['repeats']} passes over "
             f"{result['images']} images (`tools/benchmark_data_loading.py`).", ""]
    names = list(next(iter(result["sets"].values())))
    lines += ["| data | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for data, ms in result["sets"].items():
        lines.append(f"| {data} | " + " | ".join(f"{ms[n]:.1f}" for n in names) + " |")
    if "skipped" in result:
        lines += ["", result["skipped"]]
    return lines


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print("\n".join(render(measure())))
