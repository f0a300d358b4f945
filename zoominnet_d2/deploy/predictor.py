"""Detections of the student on one image, from PyTorch or from an exported graph.

Both predictors take an (H, W, 3) uint8 image in the config's INPUT.FORMAT and return
Detectron2 ``Instances`` in that image's pixels (``pred_boxes`` XYXY, ``scores``,
``pred_classes``), as ``model(inputs)[i]["instances"]`` does.
"""
from typing import Tuple

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import transforms as T
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Instances

from ..data.cross_scale_mapper import build_zoomin_augmentation
from .graph import split_outputs
from .postprocess import DecodeSettings, detect
from .runtimes import OnnxRuntimeGraph, TorchScriptGraph
from .student import load_student

BACKENDS = ("torch", "onnx", "torchscript")


def _chw(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) array -> (3, H, W) float tensor."""
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)), dtype=torch.float32)


class TorchPredictor:
    """The student in PyTorch eager: the test-time resize of the config, ``model.forward``."""

    def __init__(self, cfg: CfgNode, weights: str):
        self.cfg = cfg
        self.model = load_student(cfg, weights)
        self.augmentations = build_zoomin_augmentation(cfg, is_train=False)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> Instances:
        resized, _ = T.apply_augmentations(self.augmentations, image)
        inputs = {"image": _chw(resized), "height": image.shape[0], "width": image.shape[1]}
        return self.model([inputs])[0]["instances"].to("cpu")


class ExportedPredictor:
    """An exported graph (ONNX Runtime or TorchScript) + :func:`detect`.

    The image is resized to the graph's fixed input size with Detectron2's ``Resize``, as
    the config's square test resize does.
    """

    def __init__(self, cfg: CfgNode, runtime):
        self.runtime = runtime
        self.settings = DecodeSettings.from_config(cfg)
        self.input_size: Tuple[int, int] = tuple(runtime.input_size)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> Instances:
        resized = T.Resize(self.input_size).get_transform(image).apply_image(image)
        scores, deltas, anchors = split_outputs(self.runtime(_chw(resized)[None]))
        instances = detect(scores, deltas, anchors, self.input_size, self.settings)
        return detector_postprocess(instances, image.shape[0], image.shape[1])


def build_predictor(cfg: CfgNode, backend: str, weights: str = "", model_path: str = ""):
    """The predictor of ``backend``: "torch" (``weights``) or "onnx" / "torchscript"
    (``model_path``, a file of ``tools/export.py``)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        if not weights:
            raise ValueError("the torch backend needs --weights")
        return TorchPredictor(cfg, weights)
    if not model_path:
        raise ValueError(f"the {backend} backend needs --model (a file of tools/export.py)")
    runtime = OnnxRuntimeGraph(model_path) if backend == "onnx" else TorchScriptGraph(model_path)
    return ExportedPredictor(cfg, runtime)
