"""CPU time per image of trained stages, for the tables of ``tools/demo.py`` and
``tools/real_benchmark.py``: batch 1, one thread, the predictors timed round-robin."""
import os
import statistics
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, Sequence

from experiment import Stage, trained_config


def stage_predictors(stages: Sequence[Stage], folders: Dict[str, str]) -> Dict[str, Callable]:
    """{stage name: BGR image -> Instances}: each stage's student (``folders[name]/model_final.pth``)
    with the config it was trained with."""
    from zoominnet_d2.deploy.predictor import TorchPredictor

    return {s.name: TorchPredictor(trained_config(s, folders[s.name]), os.path.join(folders[s.name], "model_final.pth"))
            for s in stages}


def cpu_ms_per_image(predictors: Dict[str, Callable], dataset: str, num_images: int = 20,
                     warmup: int = 3) -> Dict[str, float]:
    """Median CPU time per image (batch 1, one thread) of each predictor (BGR image ->
    detections: test-time resize, forward, decoding; slicing and merging for sliced ones) on
    the first ``num_images`` images of ``dataset``, after ``warmup`` runs on the first one, in ms.

    The predictors are timed round-robin on the same images (image i on every one, then
    image i + 1), so that a load change on a shared machine hits them alike.
    """
    import torch
    from detectron2.data import DatasetCatalog
    from detectron2.data.detection_utils import read_image

    images = [read_image(d["file_name"], format="BGR") for d in DatasetCatalog.get(dataset)[:num_images]]
    times = {name: [] for name in predictors}
    with torch.no_grad(), torch_threads(1):
        for predict in predictors.values():  # warm-up on the first image
            for _ in range(warmup):
                predict(images[0])
        for image in images:
            for name, predict in predictors.items():
                began = time.perf_counter()
                predict(image)
                times[name].append((time.perf_counter() - began) * 1000)
    return {name: round(statistics.median(t), 1) for name, t in times.items()}


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside the block, restored after it
    (the count is per process: in-process jobs beside train_net.py subprocesses use this)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
