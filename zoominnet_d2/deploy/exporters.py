"""Write the student as ONNX, TorchScript or a student-only Detectron2 checkpoint.

ONNX and TorchScript hold :class:`~zoominnet_d2.deploy.graph.DenseStudentGraph` traced at
one square input size (its anchors are constants for that size); their outputs go through
:func:`zoominnet_d2.deploy.postprocess.detect`. Neither uses ``detectron2.export`` (in v0.6
it imports caffe2), so this works on Detectron2 v0.6 and main alike.
"""
import os
import warnings

import torch
from torch import nn

from .graph import DenseStudentGraph, output_names
from .student import save_student_checkpoint

FORMATS = ("onnx", "torchscript", "pth")
#: ONNX opset of the exported graphs (ONNX Runtime >= 1.12 runs it).
ONNX_OPSET = 17
#: Name of the extra file of a TorchScript export that holds its input side.
TORCHSCRIPT_SIZE_FILE = "input_size"


def example_input(size: int) -> torch.Tensor:
    """A (1, 3, size, size) float image, 0-255, for tracing."""
    return torch.full((1, 3, size, size), 128.0)


def export_student(model: nn.Module, fmt: str, path: str, size: int) -> None:
    """Write ``model`` (the student, eval mode) to ``path`` in format ``fmt``.

    Args:
        model: the student (``zoominnet_d2.deploy.student.load_student``).
        fmt: "onnx", "torchscript" or "pth".
        path: the file to write; its folder must exist.
        size: side of the square input the graph is traced for (onnx, torchscript).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "pth":
        save_student_checkpoint(model, path)
        return
    divisor = model.backbone.size_divisibility
    if size % divisor:
        raise ValueError(f"--size {size} is not a multiple of {divisor}, the backbone's padding "
                         f"divisor: the graph's input would be padded, which the traced graph fixes")
    graph = DenseStudentGraph(model)
    image = example_input(size)
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing warns that the anchors and shapes become constants: they are meant to.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        if fmt == "onnx":
            torch.onnx.export(graph, (image,), path, input_names=["image"],
                              output_names=output_names(graph.num_levels),
                              opset_version=ONNX_OPSET, dynamo=False)
        else:
            traced = torch.jit.trace(graph, (image,), check_trace=False)
            # A traced module does not record its input shape: stored beside the code.
            torch.jit.save(traced, path, _extra_files={TORCHSCRIPT_SIZE_FILE: str(size)})


def default_size(cfg) -> int:
    """The config's test input side: INPUT.SQUARE_SIZE, else MIN_SIZE_TEST."""
    return cfg.INPUT.SQUARE_SIZE or cfg.INPUT.MIN_SIZE_TEST


def check_writable(path: str, overwrite: bool) -> None:
    """Refuse to replace an existing file unless ``overwrite``; the folder must exist."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"output folder does not exist: {folder}")
