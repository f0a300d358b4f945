"""Helpers of the deployment tests: tiny students, synthetic images, detection matching."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

from zoominnet_d2.data.synthetic import render_image
from zoominnet_d2.deploy import build_student, load_config, save_student_checkpoint

#: Overrides that make a synth config tiny (a few hundred kB of weights), as a CLI tail.
TINY = ["MODEL.RESNETS.STEM_OUT_CHANNELS", "8", "MODEL.RESNETS.RES2_OUT_CHANNELS", "8",
        "MODEL.FPN.OUT_CHANNELS", "16", "MODEL.RETINANET.NUM_CONVS", "1"]
#: P3 classification logits of the tiny students on a synthetic image (mean, std): like a
#: trained detector's, most scores far below the 0.05 threshold and some hundreds above it.
TINY_LOGITS = (-5.5, 1.0)


def _benchmark_module():
    """tools/benchmark_deploy.py as a module; ``tools/`` is on the path while it loads, as
    when it runs as a script (it imports its sibling ``host``), so that this works in any
    test order."""
    tools = Path(__file__).resolve().parents[1] / "tools"
    spec = importlib.util.spec_from_file_location("zoominnet_benchmark_deploy_helpers", tools / "benchmark_deploy.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(tools))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(tools))
    return module


def tiny_cfg(config_file: str, *opts: str):
    return load_config(config_file, TINY + list(opts))


def tiny_student(cfg, seed: int = 0):
    """A random-weight student of ``cfg`` with scores like a trained one's (TINY_LOGITS),
    whatever the synthetic images look like."""
    torch.manual_seed(seed)
    model = build_student(cfg)
    size = cfg.INPUT.SQUARE_SIZE
    image = synthetic_images(1, size, seed, bgr=cfg.INPUT.FORMAT == "BGR")[0]
    _benchmark_module().calibrate_scores(model, torch.as_tensor(image.transpose(2, 0, 1).copy()).float(),
                                         *TINY_LOGITS)
    return model


def save_tiny_student(cfg, path, seed: int = 0) -> str:
    save_student_checkpoint(tiny_student(cfg, seed), str(path))
    return str(path)


def synthetic_images(n: int, size: int, seed: int, bgr: bool = True):
    """``n`` synthetic drone images (size, size, 3) uint8 in BGR (or RGB)."""
    rng = np.random.default_rng(seed)
    images = [render_image(rng, size)[0] for _ in range(n)]
    return [np.ascontiguousarray(i[:, :, ::-1]) if bgr else i for i in images]


def assert_same_detections(expected, actual, box_tol: float = 1e-3, score_tol: float = 1e-4,
                           input_pixel: float = 1.0):
    """Same number, same classes, boxes within ``box_tol`` x the box's size, scores within
    ``score_tol``; detections are matched one to one (near-equal scores may swap order).

    ``input_pixel``: the side of one model-input pixel in the detections' coordinates (e.g.
    7.5 for a 960 px wide frame resized to 128). A box smaller than that counts as that size:
    float32 rounding in the model's frame is magnified by the resize back, so a sliver box of
    1.8 px on a 960 px frame legitimately differs by 2e-3 px between backends."""
    assert len(actual) == len(expected), (len(actual), len(expected))
    e_boxes, a_boxes = expected.pred_boxes.tensor, actual.pred_boxes.tensor
    size = (e_boxes[:, 2:] - e_boxes[:, :2]).max(dim=1).values.clamp(min=max(1.0, input_pixel))
    unused = set(range(len(actual)))
    for i in range(len(expected)):
        match = [j for j in unused
                 if actual.pred_classes[j] == expected.pred_classes[i]
                 and abs(float(actual.scores[j] - expected.scores[i])) <= score_tol
                 and float((a_boxes[j] - e_boxes[i]).abs().max()) <= box_tol * float(size[i])]
        assert match, f"detection {i} ({expected[i]}) has no counterpart"
        unused.remove(match[0])
