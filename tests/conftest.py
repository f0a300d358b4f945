"""Shared pytest fixtures."""
import importlib
import os
import sys
from pathlib import Path

# One intra-op thread for the suite and the subprocesses it starts: on a shared 2-core
# machine two OpenMP threads per process make tiny-model steps several times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import zoominnet_d2  # noqa: E402,F401  (applies the Detectron2 compat fixes before any test imports it)

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def visdrone_real_root() -> Path:
    """Folder of the real VisDrone-DET examples, kept outside the repository."""
    root = Path(__file__).resolve().parents[1].parent / "shared/data/visdrone_real"
    if not root.is_dir():
        pytest.skip("../shared/data/visdrone_real not present (only on developer machines)")
    return root


@pytest.fixture
def import_tool(monkeypatch):
    """``import_tool(name)``: a fresh import of ``tools/<name>.py``, with ``tools/`` on the
    path for this test only (the tools import each other by module name)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "tools"))

    def load(name: str):
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    return load
