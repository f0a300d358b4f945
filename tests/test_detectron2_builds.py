"""Which Detectron2 this run of the suite uses, and which of the project's back-ports it needs.

``make test`` runs the suite twice: on the default install (``tools/install_detectron2.py``:
pure-Python v0.6, unless an official build was already there) and on Detectron2 main built by
``tools/install_detectron2_main.py``, with ``ZOOMINNET_DETECTRON2_MAIN`` naming that build's
folder. The second run must import that build, compiled ops included, and the project must
then use Detectron2 main's own launch, query handling and optimizer state instead of its
back-ports; the first, on pure-Python v0.6, the back-ports.
"""
import importlib
import os
import sys

import pytest
import torch

import zoominnet_d2  # noqa: F401  (compat fixes before Detectron2)
import detectron2
from detectron2.checkpoint import DetectionCheckpointer

from zoominnet_d2 import compat
from zoominnet_d2.checkpoint import SafeDetectionCheckpointer

launch_module = importlib.import_module("zoominnet_d2.engine.launch")  # (the package exports the function)

MAIN_BUILD = os.environ.get("ZOOMINNET_DETECTRON2_MAIN", "")
PURE_PYTHON = isinstance(sys.modules["detectron2._C"], compat._MissingCompiledOps)


@pytest.mark.skipif(not MAIN_BUILD, reason="not make test's Detectron2 main run (ZOOMINNET_DETECTRON2_MAIN unset)")
def test_main_run_imports_the_main_build_with_compiled_ops():
    assert os.path.realpath(detectron2.__file__).startswith(os.path.realpath(MAIN_BUILD) + os.sep)
    from detectron2 import _C
    from detectron2.layers import nms_rotated

    assert not PURE_PYTHON and _C.__file__.endswith(".so")
    boxes = torch.tensor([[5.0, 5.0, 4.0, 4.0, 0.0], [5.0, 5.0, 4.0, 4.0, 1.0], [20.0, 20.0, 2.0, 2.0, 0.0]])
    keep = nms_rotated(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)  # a compiled op
    assert keep.tolist() == [0, 2]


@pytest.mark.skipif(not MAIN_BUILD, reason="not make test's Detectron2 main run (ZOOMINNET_DETECTRON2_MAIN unset)")
def test_main_run_uses_detectron2_main_instead_of_back_ports():
    assert SafeDetectionCheckpointer.__bases__ == (DetectionCheckpointer,)
    assert hasattr(DetectionCheckpointer, "_torch_load")
    assert launch_module.D2_LAUNCHES_CPU_PROCESSES
    assert not compat.detectron2_uses_pil_linear() and not compat.detectron2_uses_numpy_aliases()


@pytest.mark.skipif(bool(MAIN_BUILD) or not PURE_PYTHON, reason="not a run on the pure-Python Detectron2 v0.6")
def test_v06_run_uses_the_back_ports():
    assert "site-packages" in detectron2.__file__
    assert SafeDetectionCheckpointer.__bases__[0].__name__ == "_PathQueryCheckpointer"
    assert not hasattr(DetectionCheckpointer, "_torch_load")
    assert not launch_module.D2_LAUNCHES_CPU_PROCESSES
    assert compat.detectron2_uses_pil_linear() and compat.detectron2_uses_numpy_aliases()
