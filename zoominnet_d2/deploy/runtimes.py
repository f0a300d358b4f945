"""Run an exported student: ONNX Runtime or TorchScript, same inputs, same outputs.

Both take a (1, 3, H, W) float image (the config's channel order, 0-255, resized to the
graph's input size) and return the flat output list of
:class:`~zoominnet_d2.deploy.graph.DenseStudentGraph` as float32 tensors.
"""
import os
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .exporters import TORCHSCRIPT_SIZE_FILE


class OnnxRuntimeGraph:
    """An exported ``.onnx`` student on ONNX Runtime's CPU provider."""

    def __init__(self, path: str, num_threads: Optional[int] = None):
        import onnxruntime as ort  # optional dependency: only the ONNX backend needs it

        if not os.path.isfile(path):
            raise FileNotFoundError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    @property
    def input_size(self) -> Tuple[int, int]:
        """(H, W) the graph was exported for."""
        return tuple(self.session.get_inputs()[0].shape[-2:])

    def __call__(self, image: Tensor) -> List[Tensor]:
        outputs = self.session.run(None, {self.input_name: image.numpy()})
        return [torch.from_numpy(o) for o in outputs]


class TorchScriptGraph:
    """An exported TorchScript (traced) student."""

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"TorchScript model not found: {path}")
        extra = {TORCHSCRIPT_SIZE_FILE: ""}
        self.module = torch.jit.load(path, map_location="cpu", _extra_files=extra)
        if not extra[TORCHSCRIPT_SIZE_FILE]:
            raise ValueError(f"{path}: not a TorchScript export of tools/export.py (no input size)")
        size = int(extra[TORCHSCRIPT_SIZE_FILE])
        self.input_size = (size, size)

    @torch.no_grad()
    def __call__(self, image: Tensor) -> List[Tensor]:
        return list(self.module(image))
